//! AVX-512 codebook kernels: 16 lanes.
//!
//! Lookup: one `vpermps` over a 16-entry register for ≤ 4 bits, `vpermt2ps`
//! over 32 entries for 5 bits, a gather for 6–8 bits. Quantisation: one
//! compare into a mask register per threshold for ≤ 4 bits, a gathered
//! binary search above. Unpacking 64 codes: `vpermb` + `vpmultishiftqb`
//! (VBMI); packing and short tails: `pext`/`pdep`.

use core::arch::x86_64::*;

use super::bmi;
use super::simd::{self, Lanes};
use crate::Backend;

#[derive(Clone, Copy)]
pub(super) struct F16(__m512);

pub(super) struct Lut16 {
    lo: __m512,
    hi: __m512,
    ptr: *const f32,
    bits: u8,
}

pub(super) struct Thr16 {
    t: [__m512; 15],
    count: usize,
    ptr: *const f32,
    bits: u8,
}

// SAFETY: every method uses AVX-512 F/BW/DQ/VL/VBMI or BMI2 instructions only,
// which the trait's contract makes the caller check. Pointer accesses:
// load/store touch 16 f32, widen reads 16 bytes, narrow writes 16 bytes; the
// gathers read `centroids`/`thresholds` at indices below 2^bits (resp.
// 2^bits − 1), inside the codebook's arrays.
unsafe impl Lanes for F16 {
    const LANES: usize = 16;
    type Idx = __m512i;
    type Lut = Lut16;
    type Thr = Thr16;

    #[inline(always)]
    unsafe fn lut(cb: &super::Codebook) -> Lut16 {
        let c = cb.centroids();
        let mut table = [0.0f32; 32];
        for (t, &v) in table.iter_mut().zip(c) {
            *t = v;
        }
        // SAFETY: the loads read the local 32-element array.
        unsafe {
            Lut16 {
                lo: _mm512_loadu_ps(table.as_ptr()),
                hi: _mm512_loadu_ps(table.as_ptr().add(16)),
                ptr: c.as_ptr(),
                bits: cb.bits(),
            }
        }
    }

    #[inline(always)]
    unsafe fn thr(cb: &super::Codebook) -> Thr16 {
        let t = cb.thresholds();
        // SAFETY: AVX-512F is available (trait contract); no memory access.
        let mut v = [unsafe { _mm512_setzero_ps() }; 15];
        let count = t.len().min(15);
        for (vj, &tj) in v.iter_mut().zip(t) {
            // SAFETY: as above.
            *vj = unsafe { _mm512_set1_ps(tj) };
        }
        Thr16 {
            t: v,
            count,
            ptr: t.as_ptr(),
            bits: cb.bits(),
        }
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: 16 readable f32 at p (caller).
        F16(unsafe { _mm512_loadu_ps(p) })
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: 16 writable f32 at p (caller).
        unsafe { _mm512_storeu_ps(p, self.0) }
    }

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: AVX-512F is available (trait contract).
        F16(unsafe { _mm512_setzero_ps() })
    }

    #[inline(always)]
    unsafe fn mul_add(self, b: Self, acc: Self) -> Self {
        // SAFETY: AVX-512F is available (trait contract).
        F16(unsafe { _mm512_fmadd_ps(self.0, b.0, acc.0) })
    }

    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        // SAFETY: AVX-512F is available (trait contract).
        unsafe { _mm512_reduce_add_ps(self.0) }
    }

    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        // SAFETY: AVX-512F is available (trait contract).
        F16(unsafe { _mm512_add_ps(a.0, b.0) })
    }

    #[inline(always)]
    unsafe fn widen(p: *const u8) -> __m512i {
        // SAFETY: 16 readable bytes at p (caller); AVX-512F available.
        unsafe { _mm512_cvtepu8_epi32(_mm_loadu_si128(p.cast())) }
    }

    #[inline(always)]
    unsafe fn narrow(i: __m512i, p: *mut u8) {
        // SAFETY: 16 writable bytes at p (caller); lanes are below 256, so
        // truncation keeps them.
        unsafe { _mm_storeu_si128(p.cast(), _mm512_cvtepi32_epi8(i)) }
    }

    #[inline(always)]
    unsafe fn lookup(lut: &Lut16, i: __m512i) -> Self {
        // SAFETY: AVX-512F available; the gather reads centroids[i] with
        // every lane below 2^bits (caller), inside the codebook's array.
        unsafe {
            F16(match lut.bits {
                1..=4 => _mm512_permutexvar_ps(i, lut.lo),
                5 => _mm512_permutex2var_ps(lut.lo, i, lut.hi),
                _ => _mm512_i32gather_ps::<4>(i, lut.ptr),
            })
        }
    }

    #[inline(always)]
    unsafe fn quantize(thr: &Thr16, x: Self) -> __m512i {
        // SAFETY: AVX-512F available; the gathers read thresholds[idx +
        // step − 1] ≤ thresholds[2^bits − 2], inside the codebook's array.
        unsafe {
            let one = _mm512_set1_epi32(1);
            if thr.bits <= 4 {
                let mut acc = _mm512_setzero_si512();
                for t in &thr.t[..thr.count] {
                    let gt = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x.0, *t);
                    acc = _mm512_mask_add_epi32(acc, gt, acc, one);
                }
                acc
            } else {
                let mut idx = _mm512_setzero_si512();
                let mut step = 1i32 << (thr.bits - 1);
                while step > 0 {
                    let probe = _mm512_add_epi32(idx, _mm512_set1_epi32(step - 1));
                    let t = _mm512_i32gather_ps::<4>(probe, thr.ptr);
                    let gt = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x.0, t);
                    idx = _mm512_mask_add_epi32(idx, gt, idx, _mm512_set1_epi32(step));
                    step >>= 1;
                }
                idx
            }
        }
    }

    #[inline(always)]
    unsafe fn prefetch(p: *const u8) {
        // SAFETY: SSE is baseline; a prefetch never faults, whatever `p` is.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
    }

    #[inline(always)]
    unsafe fn pack(bits: u8, indices: &[u8], out: &mut [u8]) {
        // SAFETY: BMI2 available (trait contract); arguments forwarded.
        unsafe { bmi::pack(bits, indices, out) }
    }

    #[inline(always)]
    unsafe fn unpack(bits: u8, packed: &[u8], out: &mut [u8]) {
        if out.len() == 64 {
            // SAFETY: VBMI available (trait contract); `packed` holds the
            // 8·bits bytes of 64 codes and `out` 64 bytes.
            unsafe { unpack64(bits, packed, out) }
        } else {
            // SAFETY: BMI2 available (trait contract); arguments forwarded.
            unsafe { bmi::unpack(bits, packed, out) }
        }
    }
}

/// `PERM[b][8k + j] = k·b + j`: gathers the `b` bytes of code group `k` (8
/// codes of `b` bits) into qword `k`.
const PERM: [[u8; 64]; 9] = {
    let mut t = [[0u8; 64]; 9];
    let mut b = 1;
    while b <= 8 {
        let mut i = 0;
        while i < 64 {
            t[b][i] = ((i / 8) * b + i % 8) as u8;
            i += 1;
        }
        b += 1;
    }
    t
};

/// Multishift control: byte `j` of every qword selects bits `j·b …`.
const fn shifts(b: u64) -> u64 {
    let mut v = 0u64;
    let mut j = 0;
    while j < 8 {
        v |= (j * b) << (8 * j);
        j += 1;
    }
    v
}

/// 64 codes unpacked with three instructions: `vpermb` puts each group's
/// bytes in its own qword, `vpmultishiftqb` moves every code to a byte of
/// its own, and a mask keeps its `b` bits; one 64-byte store.
///
/// # Safety
/// AVX-512 F/BW/VBMI are available; `packed.len() >= 8·bits`,
/// `out.len() >= 64`, `bits ∈ 1..=8`.
#[inline(always)]
unsafe fn unpack64(bits: u8, packed: &[u8], out: &mut [u8]) {
    let b = bits as usize;
    let bytes: u64 = if b == 8 {
        u64::MAX
    } else {
        (1u64 << (8 * b)) - 1
    };
    // SAFETY: the masked load touches only the first 8·b ≤ packed.len()
    // bytes (masked-off bytes are never accessed); PERM[b] is 64 bytes; the
    // store writes out[..64].
    unsafe {
        let data = _mm512_maskz_loadu_epi8(bytes, packed.as_ptr().cast());
        let perm = _mm512_loadu_si512(PERM[b].as_ptr().cast());
        let grouped = _mm512_permutexvar_epi8(perm, data);
        let shift = _mm512_set1_epi64(shifts(b as u64) as i64);
        let fields = _mm512_multishift_epi64_epi8(shift, grouped);
        let keep = _mm512_set1_epi8(((1u16 << b) - 1) as u8 as i8);
        _mm512_storeu_si512(out.as_mut_ptr().cast(), _mm512_and_si512(fields, keep));
    }
}

simd::entry_points!(
    Backend::Avx512,
    "avx512f,avx512bw,avx512dq,avx512vl,avx512vbmi,avx2,fma,bmi1,bmi2",
    F16
);
