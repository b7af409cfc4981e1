//! NEON backend: 4 lanes, 2 in-register stages, groups of 16 registers (of
//! the 32 q registers).
//!
//! In-register stages use `vfmaq_f32(t, x, ±1)` = `t + x·(±1)` with one
//! rounding: `b + a` on the lower lane and `a − b` on the upper, bit for bit
//! the reference's butterflies (the product by ±1 is exact).

use core::arch::aarch64::*;

use super::simd::{self, Vector};
use crate::vector::F32x4;

// SAFETY: every method uses only NEON instructions (baseline on aarch64, and
// checked by the safe entry points); loads and stores touch exactly 4 f32.
unsafe impl Vector for F32x4 {
    const GROUP_LOG2: u32 = 4;

    #[inline(always)]
    unsafe fn in_register(self, stages: u32) -> Self {
        const S1: [f32; 4] = [1.0, -1.0, 1.0, -1.0];
        const S2: [f32; 4] = [1.0, 1.0, -1.0, -1.0];
        // SAFETY: NEON is available (trait contract); the loads read the two
        // 4-element constant arrays above.
        unsafe {
            let x = self.0;
            // h = 1: swap neighbours.
            let t = vrev64q_f32(x);
            let x = vfmaq_f32(t, x, vld1q_f32(S1.as_ptr()));
            if stages == 1 {
                return F32x4(x);
            }
            // h = 2: swap 64-bit halves.
            let t = vextq_f32::<2>(x, x);
            F32x4(vfmaq_f32(t, x, vld1q_f32(S2.as_ptr())))
        }
    }

    #[inline(always)]
    fn packs(_width: usize) -> bool {
        // Rows shorter than 4 lanes take the portable loop.
        false
    }

    #[inline(always)]
    unsafe fn xor_rows(self, _m: usize, _width: usize) -> Self {
        // Not reached: `packs` takes no width.
        self
    }
}

crate::backend::neon_features!(simd::entry_points { F32x4 });
