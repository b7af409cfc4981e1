//! [`F32x8`]: the AVX2 register.

use core::arch::x86_64::*;

use super::F32Vector;

/// Row `b`: the sign bit in lane `i` where bit `i` of `b` is set. One
/// load a register where building the mask from the bits took five
/// operations (a rotation's sign flips were a fifth of its instructions).
#[repr(C, align(32))]
struct SignFlips([[u32; 8]; 256]);

static SIGN_FLIPS: SignFlips = {
    let mut rows = [[0u32; 8]; 256];
    let mut b = 0;
    while b < 256 {
        let mut i = 0;
        while i < 8 {
            if b >> i & 1 == 1 {
                rows[b][i] = 0x8000_0000;
            }
            i += 1;
        }
        b += 1;
    }
    SignFlips(rows)
};

/// The sign bit in lane `i` where bit `i` of `byte` is set: one aligned
/// load of a row of the table (also the QJL sign sums' `±w` and `∓1`: an
/// xor with it).
///
/// # Safety
/// AVX is available.
#[inline(always)]
pub(crate) unsafe fn sign_mask(byte: u8) -> __m256i {
    // SAFETY: AVX is the caller's promise; the load reads one 32-byte row
    // of the table, on its 32-byte boundary.
    unsafe { _mm256_load_si256(SIGN_FLIPS.0[usize::from(byte)].as_ptr().cast()) }
}

/// Eight f32 in a ymm register.
#[derive(Clone, Copy)]
pub(crate) struct F32x8(pub(crate) __m256);

// SAFETY: every method uses AVX or FMA instructions only, which the trait's
// contract makes the caller's promise; loads and stores are unaligned and
// touch exactly 8 f32.
unsafe impl F32Vector for F32x8 {
    const LANES: usize = 8;

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: 8 readable f32 at p (caller).
        F32x8(unsafe { _mm256_loadu_ps(p) })
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: 8 writable f32 at p (caller).
        unsafe { _mm256_storeu_ps(p, self.0) }
    }

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: AVX is available (trait contract).
        F32x8(unsafe { _mm256_setzero_ps() })
    }

    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        // SAFETY: AVX is available (trait contract).
        F32x8(unsafe { _mm256_set1_ps(v) })
    }

    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        // SAFETY: AVX is available (trait contract).
        F32x8(unsafe { _mm256_add_ps(self.0, o.0) })
    }

    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        // SAFETY: AVX is available (trait contract).
        F32x8(unsafe { _mm256_sub_ps(self.0, o.0) })
    }

    #[inline(always)]
    unsafe fn mul_add(self, b: Self, acc: Self) -> Self {
        // SAFETY: FMA is available (trait contract).
        F32x8(unsafe { _mm256_fmadd_ps(self.0, b.0, acc.0) })
    }

    #[inline(always)]
    unsafe fn mul(self, other: Self) -> Self {
        // SAFETY: AVX is available (trait contract).
        F32x8(unsafe { _mm256_mul_ps(self.0, other.0) })
    }

    #[inline(always)]
    unsafe fn negate_where(self, bits: u32) -> Self {
        // SAFETY: AVX is available (trait contract); registers and the
        // table only.
        unsafe {
            let flip = sign_mask(bits as u8);
            F32x8(_mm256_castsi256_ps(_mm256_xor_si256(
                _mm256_castps_si256(self.0),
                flip,
            )))
        }
    }

    #[inline(always)]
    unsafe fn positive_bits(self) -> u32 {
        // SAFETY: AVX is available (trait contract); registers only.
        unsafe {
            let above = _mm256_cmp_ps::<_CMP_GT_OQ>(self.0, _mm256_setzero_ps());
            _mm256_movemask_ps(above) as u32
        }
    }

    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        // SAFETY: AVX is available (trait contract); registers only.
        unsafe {
            let s = _mm_add_ps(
                _mm256_castps256_ps128(self.0),
                _mm256_extractf128_ps::<1>(self.0),
            );
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_movehdup_ps(s));
            _mm_cvtss_f32(s)
        }
    }

    #[inline(always)]
    unsafe fn add_squares_f64(x: *const f32, sums: *mut f64) {
        // SAFETY: 8 readable f32 at x and 8 writable f64 at sums (caller);
        // AVX and FMA are available (trait contract).
        unsafe {
            for half in 0..2 {
                let v = _mm256_cvtps_pd(_mm_loadu_ps(x.add(4 * half)));
                let s = sums.add(4 * half);
                _mm256_storeu_pd(s, _mm256_fmadd_pd(v, v, _mm256_loadu_pd(s)));
            }
        }
    }
}
