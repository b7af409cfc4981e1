//! AVX2 + FMA backend: 8 lanes, 3 in-register stages, groups of 8 registers.
//!
//! In-register stage with stride `h`: `t = x` with lanes `i` and `i ^ h`
//! swapped, then `x·s + t` as one FMA with `s = ±1` (`+1` where bit `h` of the
//! lane is clear). For the lower lane that is `a·1 + b = a + b`, for the upper
//! `b·(−1) + a = a − b`: the product by ±1 is exact, so the single rounding of
//! the FMA equals the reference's add or subtract bit for bit.

use core::arch::x86_64::*;

use super::simd::{self, Vector};
use crate::vector::F32x8;

// SAFETY: every method uses only AVX and FMA instructions, which the trait's
// contract makes the caller check; loads and stores are unaligned and touch
// exactly 8 f32.
unsafe impl Vector for F32x8 {
    // 8 data registers plus temporaries fit in the 16 ymm registers.
    const GROUP_LOG2: u32 = 3;

    #[inline(always)]
    unsafe fn in_register(self, stages: u32) -> Self {
        // SAFETY: AVX and FMA are available (trait contract); no memory access.
        unsafe {
            let x = self.0;
            // h = 1: swap neighbours.
            let t = _mm256_permute_ps::<0b10_11_00_01>(x);
            let s = _mm256_setr_ps(1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0);
            let x = _mm256_fmadd_ps(x, s, t);
            if stages == 1 {
                return F32x8(x);
            }
            // h = 2: swap pairs.
            let t = _mm256_permute_ps::<0b01_00_11_10>(x);
            let s = _mm256_setr_ps(1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0);
            let x = _mm256_fmadd_ps(x, s, t);
            if stages == 2 {
                return F32x8(x);
            }
            // h = 4: swap 128-bit halves.
            let t = _mm256_permute2f128_ps::<0x01>(x, x);
            let s = _mm256_setr_ps(1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0);
            F32x8(_mm256_fmadd_ps(x, s, t))
        }
    }

    #[inline(always)]
    fn packs(width: usize) -> bool {
        width == 4
    }

    #[inline(always)]
    unsafe fn xor_rows(self, _m: usize, _width: usize) -> Self {
        // SAFETY: AVX is available (trait contract); registers only. Rows of
        // 4 are the 128-bit halves, and m = 1: swap them.
        unsafe { F32x8(_mm256_permute2f128_ps::<0x01>(self.0, self.0)) }
    }
}

crate::backend::avx2_features!(simd::entry_points { F32x8 });
