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
    unsafe fn xor_rows(self, m: usize, width: usize) -> Self {
        // Not reached while `packs` takes no width, but right for rows of 1
        // and 2 lanes: row `r ⊕ m` of `width` lanes puts lane `i ⊕ m·width`
        // in lane `i`, so swap neighbours for bit 0 of `m·width` and the
        // 64-bit halves for bit 1.
        let k = m * width;
        // SAFETY: NEON is available (trait contract); registers only.
        unsafe {
            let mut x = self.0;
            if k & 1 != 0 {
                x = vrev64q_f32(x);
            }
            if k & 2 != 0 {
                x = vextq_f32::<2>(x, x);
            }
            F32x4(x)
        }
    }
}

crate::backend::neon_features!(simd::entry_points { F32x4 });

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::F32Vector;

    #[test]
    fn xor_rows_puts_each_row_in_place_of_its_partner() {
        let x = [10.0f32, 11.0, 12.0, 13.0];
        for width in [1usize, 2] {
            for m in 1..4 / width {
                let mut got = [0.0f32; 4];
                // SAFETY: NEON is baseline on aarch64; both arrays hold 4 f32.
                unsafe {
                    F32x4::load(x.as_ptr())
                        .xor_rows(m, width)
                        .store(got.as_mut_ptr())
                };
                let want: [f32; 4] =
                    core::array::from_fn(|i| x[((i / width) ^ m) * width + i % width]);
                assert_eq!(got, want, "rows of {width}, m = {m}");
            }
        }
    }
}
