//! AVX-512 backend: 16 lanes, 4 in-register stages, groups of 16 registers
//! (of the 32 zmm).
//!
//! In-register stages use the FMA trick of the AVX2 backend: swap the lanes
//! `h` apart, then `x·(±1) + t` in one exactly-rounded FMA, which equals the
//! reference's `a + b` / `a − b` bit for bit.

use core::arch::x86_64::*;

use super::simd::{self, Vector};
use crate::vector::F32x16;

// SAFETY: every method uses only AVX-512F instructions, which the trait's
// contract makes the caller check; loads and stores are unaligned and touch
// exactly 16 f32.
unsafe impl Vector for F32x16 {
    const GROUP_LOG2: u32 = 4;

    #[inline(always)]
    unsafe fn in_register(self, stages: u32) -> Self {
        // SAFETY: AVX-512F is available (trait contract); no memory access.
        unsafe {
            let x = self.0;
            let (p, m) = (1.0f32, -1.0f32);
            // h = 1: swap neighbours.
            let t = _mm512_permute_ps::<0b10_11_00_01>(x);
            let s = _mm512_setr_ps(p, m, p, m, p, m, p, m, p, m, p, m, p, m, p, m);
            let x = _mm512_fmadd_ps(x, s, t);
            if stages == 1 {
                return F32x16(x);
            }
            // h = 2: swap pairs.
            let t = _mm512_permute_ps::<0b01_00_11_10>(x);
            let s = _mm512_setr_ps(p, p, m, m, p, p, m, m, p, p, m, m, p, p, m, m);
            let x = _mm512_fmadd_ps(x, s, t);
            if stages == 2 {
                return F32x16(x);
            }
            // h = 4: swap neighbouring 128-bit blocks.
            let t = _mm512_shuffle_f32x4::<0b10_11_00_01>(x, x);
            let s = _mm512_setr_ps(p, p, p, p, m, m, m, m, p, p, p, p, m, m, m, m);
            let x = _mm512_fmadd_ps(x, s, t);
            if stages == 3 {
                return F32x16(x);
            }
            // h = 8: swap 256-bit halves.
            let t = _mm512_shuffle_f32x4::<0b01_00_11_10>(x, x);
            let s = _mm512_setr_ps(p, p, p, p, p, p, p, p, m, m, m, m, m, m, m, m);
            F32x16(_mm512_fmadd_ps(x, s, t))
        }
    }

    #[inline(always)]
    fn packs(width: usize) -> bool {
        matches!(width, 4 | 8)
    }

    #[inline(always)]
    unsafe fn xor_rows(self, m: usize, width: usize) -> Self {
        // SAFETY: AVX-512F is available (trait contract); registers only.
        unsafe {
            let x = self.0;
            // Rows of 8 are 256-bit halves, rows of 4 128-bit lanes: lane
            // i takes lane i ⊕ m.
            F32x16(match (width, m) {
                (8, _) | (_, 2) => _mm512_shuffle_f32x4::<0b01_00_11_10>(x, x),
                (_, 1) => _mm512_shuffle_f32x4::<0b10_11_00_01>(x, x),
                _ => _mm512_shuffle_f32x4::<0b00_01_10_11>(x, x),
            })
        }
    }
}

crate::backend::avx512_features!(simd::entry_points { F32x16 });
