//! NEON backend: 4 lanes, 2 in-register stages, groups of 16 registers (of
//! the 32 q registers).
//!
//! In-register stages use `vfmaq_f32(t, x, ±1)` = `t + x·(±1)` with one
//! rounding: `b + a` on the lower lane and `a − b` on the upper, bit for bit
//! the reference's butterflies (the product by ±1 is exact).

use core::arch::aarch64::*;

use super::simd::{self, Vector};
use crate::Backend;

#[derive(Clone, Copy)]
struct Q(float32x4_t);

// SAFETY: every method uses only NEON instructions (baseline on aarch64, and
// checked by the safe entry points); loads and stores touch exactly 4 f32.
unsafe impl Vector for Q {
    const LANES: usize = 4;
    const GROUP_LOG2: u32 = 4;

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller provides 4 readable f32 at p.
        Q(unsafe { vld1q_f32(p) })
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller provides 4 writable f32 at p.
        unsafe { vst1q_f32(p, self.0) }
    }

    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        // SAFETY: NEON is available (trait contract).
        Q(unsafe { vaddq_f32(self.0, o.0) })
    }

    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        // SAFETY: NEON is available (trait contract).
        Q(unsafe { vsubq_f32(self.0, o.0) })
    }

    #[inline(always)]
    unsafe fn in_register(self) -> Self {
        const S1: [f32; 4] = [1.0, -1.0, 1.0, -1.0];
        const S2: [f32; 4] = [1.0, 1.0, -1.0, -1.0];
        // SAFETY: NEON is available (trait contract); the loads read the two
        // 4-element constant arrays above.
        unsafe {
            let x = self.0;
            // h = 1: swap neighbours.
            let t = vrev64q_f32(x);
            let x = vfmaq_f32(t, x, vld1q_f32(S1.as_ptr()));
            // h = 2: swap 64-bit halves.
            let t = vextq_f32::<2>(x, x);
            Q(vfmaq_f32(t, x, vld1q_f32(S2.as_ptr())))
        }
    }
}

simd::entry_points!(Backend::Neon, "neon", Q);
