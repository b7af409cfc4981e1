//! [`F32x16`]: the AVX-512 register.

use core::arch::x86_64::*;

use super::F32Vector;

/// Sixteen f32 in a zmm register.
#[derive(Clone, Copy)]
pub(crate) struct F32x16(pub(crate) __m512);

// SAFETY: every method uses AVX-512F instructions only, which the trait's
// contract makes the caller's promise; loads and stores are unaligned and
// touch exactly 16 f32.
unsafe impl F32Vector for F32x16 {
    const LANES: usize = 16;

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: 16 readable f32 at p (caller).
        F32x16(unsafe { _mm512_loadu_ps(p) })
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: 16 writable f32 at p (caller).
        unsafe { _mm512_storeu_ps(p, self.0) }
    }

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: AVX-512F is available (trait contract).
        F32x16(unsafe { _mm512_setzero_ps() })
    }

    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        // SAFETY: AVX-512F is available (trait contract).
        F32x16(unsafe { _mm512_set1_ps(v) })
    }

    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        // SAFETY: AVX-512F is available (trait contract).
        F32x16(unsafe { _mm512_add_ps(self.0, o.0) })
    }

    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        // SAFETY: AVX-512F is available (trait contract).
        F32x16(unsafe { _mm512_sub_ps(self.0, o.0) })
    }

    #[inline(always)]
    unsafe fn mul_add(self, b: Self, acc: Self) -> Self {
        // SAFETY: AVX-512F is available (trait contract).
        F32x16(unsafe { _mm512_fmadd_ps(self.0, b.0, acc.0) })
    }

    #[inline(always)]
    unsafe fn mul(self, other: Self) -> Self {
        // SAFETY: AVX-512F is available (trait contract).
        F32x16(unsafe { _mm512_mul_ps(self.0, other.0) })
    }

    #[inline(always)]
    unsafe fn negate_where(self, bits: u32) -> Self {
        // SAFETY: AVX-512F is available (trait contract); registers only.
        unsafe {
            let x = _mm512_castps_si512(self.0);
            let sign = _mm512_set1_epi32(i32::MIN);
            F32x16(_mm512_castsi512_ps(_mm512_mask_xor_epi32(
                x,
                bits as __mmask16,
                x,
                sign,
            )))
        }
    }

    #[inline(always)]
    unsafe fn positive_bits(self) -> u32 {
        // SAFETY: AVX-512F is available (trait contract); registers only.
        unsafe {
            u32::from(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(
                self.0,
                _mm512_setzero_ps(),
            ))
        }
    }

    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        // SAFETY: AVX-512F is available (trait contract).
        unsafe { _mm512_reduce_add_ps(self.0) }
    }

    #[inline(always)]
    unsafe fn add_squares_f64(x: *const f32, sums: *mut f64) {
        // SAFETY: 16 readable f32 at x and 16 writable f64 at sums (caller);
        // AVX-512F is available (trait contract).
        unsafe {
            for half in 0..2 {
                let v = _mm512_cvtps_pd(_mm256_loadu_ps(x.add(8 * half)));
                let s = sums.add(8 * half);
                _mm512_storeu_pd(s, _mm512_fmadd_pd(v, v, _mm512_loadu_pd(s)));
            }
        }
    }
}
