//! Sign sums of several weight sets over the same sign sketches (and over
//! rows of 1-bit codes, which are sign sums too).

use core::arch::x86_64::*;

use super::super::sign_tables::{self, ROWS};
use super::MAX_GROUP;
use crate::codebook::Codebook;
use crate::qjl::SignSets;

/// `acc[h·acc_stride + j] += Σ_r w[h·w_stride + r]·s_{r,j}` (`s = ±1` from
/// the sign bits, `m` of them a row) for `G ≤` [`MAX_GROUP`] weight sets
/// over the same `n` sketches, as the AVX-512 sign kernel computes it
/// (`2·Σ_{bit set} w − Σ w`): each row's sign bytes read once for every
/// query. Returns false (touching nothing) unless `backend` is AVX-512,
/// the sets fit ([`SignSets::fit`]: whole steps of 16 signs, inside their
/// buffers) and every weight set is bounded (`qjl::weights_bounded`).
pub(in crate::codebook) fn accumulate_signs(
    backend: crate::backend::Checked,
    a: &SignSets<'_>,
    acc: &mut [f32],
    g: usize,
) -> bool {
    if backend.backend() != crate::Backend::Avx512
        || !(1..=MAX_GROUP).contains(&g)
        || !a.fit(g, acc.len())
        || !(0..g).all(|h| crate::qjl::weights_bounded(&a.weights[h * a.w_stride..][..a.n]))
    {
        return false;
    }
    // SAFETY: `Checked` proves the AVX-512 feature list; the shape is one
    // the kernel takes, and the sets fit their buffers (checked above).
    unsafe {
        match g {
            1 => signs_simd::<1>(a, acc),
            2 => signs_simd::<2>(a, acc),
            3 => signs_simd::<3>(a, acc),
            _ => signs_simd::<4>(a, acc),
        }
    }
    true
}

/// The four 16-bit sign masks of a chunk of up to 64 signs at `p`, `regs`
/// registers of 16 (masks past them zero). A whole chunk is read with
/// plain loads (the compiler takes its 8 bytes into a general register and
/// shifts the masks out there); a partial one with a masked load (it must
/// not read past its row), whose vector register the compiler unpacks lane
/// by lane (`vpextrw`): several instructions a mask on the vector pipes.
///
/// # Safety
/// AVX-512 BW/VL are available; `2·regs ≤ 8` bytes are readable at `p`.
#[inline(always)]
pub(super) unsafe fn chunk_masks(p: *const u8, regs: usize) -> [u16; 4] {
    // SAFETY: the caller's promises; a whole chunk's four loads read its
    // 8 bytes, a partial one's masked load its 2·regs bytes.
    unsafe {
        if regs == 4 {
            [0, 1, 2, 3].map(|k| core::ptr::read_unaligned(p.add(2 * k).cast::<u16>()))
        } else {
            let v = _mm_maskz_loadu_epi8(((1u32 << (2 * regs)) - 1) as __mmask16, p.cast());
            let bits = _mm_cvtsi128_si64(v) as u64;
            [0, 1, 2, 3].map(|k| (bits >> (16 * k)) as u16)
        }
    }
}

crate::backend::avx512_features!(crate::backend::target_features {
    /// [`signs_chunks`] compiled with the AVX-512 feature list.
    ///
    /// # Safety
    /// AVX-512 is available; the shape is one [`accumulate_signs`] accepts,
    /// and the sets fit their buffers.
    unsafe fn signs_simd<const G: usize>(a: &SignSets<'_>, acc: &mut [f32]) {
        // SAFETY: forwarded from the caller.
        unsafe { signs_chunks::<G>(a, acc) }
    }
});

/// [`accumulate_signs`], 64 signs (4 registers a query) at a time.
///
/// # Safety
/// AVX-512 F/BW are available; the shape is one [`accumulate_signs`]
/// accepts, and the sets fit their buffers.
#[inline(always)]
unsafe fn signs_chunks<const G: usize>(a: &SignSets<'_>, acc: &mut [f32]) {
    // SAFETY: the ISA is the caller's promise. Loads: 8 sign bytes of each
    // row's chunk, weights[h·w_stride + r] with r < n; each query's chunk of
    // acc is read and written.
    unsafe {
        if sign_tables::takes(a.m, a.sign_stride) {
            signs_by_tables::<G>(a, 1.0, acc);
            return;
        }
        for ch in 0..a.m.div_ceil(64) {
            // Registers of 16 signs in this chunk (fewer in a last one).
            let regs = (a.m - 64 * ch).min(64) / 16;
            let mut set = [[_mm512_setzero_ps(); 4]; G];
            let mut total = [_mm512_setzero_ps(); G];
            let mut sg = a.signs.as_ptr().add(8 * ch);
            for r in 0..a.n {
                let masks = chunk_masks(sg, regs);
                for h in 0..G {
                    let rv = _mm512_set1_ps(*a.weights.get_unchecked(h * a.w_stride + r));
                    total[h] = _mm512_add_ps(total[h], rv);
                    for (s, &mk) in set[h].iter_mut().zip(&masks) {
                        *s = _mm512_mask_add_ps(*s, mk, *s, rv);
                    }
                }
                sg = sg.wrapping_add(a.sign_stride);
            }
            for h in 0..G {
                for (k, s) in set[h].iter().enumerate().take(regs) {
                    let at = acc.as_mut_ptr().add(h * a.acc_stride + 64 * ch + 16 * k);
                    let sum = _mm512_sub_ps(_mm512_add_ps(*s, *s), total[h]);
                    _mm512_storeu_ps(at, _mm512_add_ps(_mm512_loadu_ps(at), sum));
                }
            }
        }
    }
}

/// Whether `g` weight sets over rows of `d` 1-bit value codes, `stride`
/// bytes apart, take the sign tables ([`signs_by_tables`]): the rows back
/// to back, `d` a multiple of 16 up to 256, every weight set bounded (as
/// for signs: the tables' sums of four weights must not overflow). A code
/// picks `c[1]` or `c[0] = −c[1]`, so a row adds `±w·c[1]`, a sign sum.
pub(super) fn code_bits(
    cb: &Codebook,
    stride: usize,
    d: usize,
    weights: &[f32],
    w_stride: usize,
    n: usize,
    g: usize,
) -> bool {
    cb.bits() == 1
        && sign_tables::takes(d, stride)
        && (0..g).all(|h| crate::qjl::weights_bounded(&weights[h * w_stride..][..n]))
}

crate::backend::avx512_features!(crate::backend::target_features {
    /// [`signs_by_tables`] for `g ≤` [`MAX_GROUP`] sets, each weight
    /// times `scale`.
    ///
    /// # Safety
    /// AVX-512 is available; the rows are back to back
    /// ([`sign_tables::takes`]) and the sets fit their buffers.
    pub(super) unsafe fn bits_simd(a: &SignSets<'_>, scale: f32, acc: &mut [f32], g: usize) {
        // SAFETY: forwarded from the caller.
        unsafe {
            match g {
                1 => signs_by_tables::<1>(a, scale, acc),
                2 => signs_by_tables::<2>(a, scale, acc),
                3 => signs_by_tables::<3>(a, scale, acc),
                _ => signs_by_tables::<4>(a, scale, acc),
            }
        }
    }
});

/// [`signs_chunks`] for signs back to back ([`sign_tables::takes`]), each
/// weight times `scale`: eight rows at a time through nibble tables, each
/// chunk's eight rows transposed once for all the queries. Rows of 1-bit
/// value codes take it too, with the positive centroid as the scale
/// ([`code_bits`]).
///
/// # Safety
/// As [`signs_chunks`], with GFNI available too.
#[inline(always)]
unsafe fn signs_by_tables<const G: usize>(a: &SignSets<'_>, scale: f32, acc: &mut [f32]) {
    let bytes = a.m / 8;
    // SAFETY: the ISA is the caller's promise. Loads: the masked bytes of
    // up to eight whole rows (validated), weights[h·w_stride + r] with
    // r < n; each query's chunk of acc is read and written.
    unsafe {
        for ch in 0..a.m.div_ceil(64) {
            let len = (a.m - 64 * ch).min(64);
            let mut set = [[_mm512_setzero_ps(); 4]; G];
            for (h, set) in set.iter_mut().enumerate() {
                *set = sign_tables::load_sums(&acc[h * a.acc_stride + 64 * ch..][..len]);
            }
            let permute = sign_tables::permute(bytes, ch);
            // Whole blocks with a constant row count, then the rest.
            macro_rules! block {
                ($t:expr, $rows:expr) => {
                    let sg = a.signs.as_ptr().wrapping_add($t * a.sign_stride);
                    let bits = sign_tables::Block::load(sg, $rows, bytes).bits(permute);
                    for (h, set) in set.iter_mut().enumerate() {
                        let w = a.weights.get_unchecked(h * a.w_stride + $t..);
                        let w = sign_tables::block_weights(w.get_unchecked(..$rows), scale);
                        sign_tables::add_chunk(set, bits, &sign_tables::tables(&w));
                    }
                };
            }
            let whole = a.n - a.n % ROWS;
            for t in (0..whole).step_by(ROWS) {
                block!(t, ROWS);
            }
            if whole < a.n {
                block!(whole, a.n - whole);
            }
            for (h, set) in set.iter().enumerate() {
                sign_tables::store_sums(set, &mut acc[h * a.acc_stride + 64 * ch..][..len]);
            }
        }
    }
}
