//! [`F32x4`]: the NEON register.

use core::arch::aarch64::*;

use super::F32Vector;

/// Four f32 in a q register.
#[derive(Clone, Copy)]
pub(crate) struct F32x4(pub(crate) float32x4_t);

// SAFETY: every method uses NEON instructions only (baseline on aarch64);
// loads and stores touch exactly 4 f32.
unsafe impl F32Vector for F32x4 {
    const LANES: usize = 4;

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: 4 readable f32 at p (caller).
        F32x4(unsafe { vld1q_f32(p) })
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: 4 writable f32 at p (caller).
        unsafe { vst1q_f32(p, self.0) }
    }

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: NEON is available (trait contract).
        F32x4(unsafe { vdupq_n_f32(0.0) })
    }

    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        // SAFETY: NEON is available (trait contract).
        F32x4(unsafe { vdupq_n_f32(v) })
    }

    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        // SAFETY: NEON is available (trait contract).
        F32x4(unsafe { vaddq_f32(self.0, o.0) })
    }

    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        // SAFETY: NEON is available (trait contract).
        F32x4(unsafe { vsubq_f32(self.0, o.0) })
    }

    #[inline(always)]
    unsafe fn mul_add(self, b: Self, acc: Self) -> Self {
        // SAFETY: NEON is available (trait contract).
        F32x4(unsafe { vfmaq_f32(acc.0, self.0, b.0) })
    }

    #[inline(always)]
    unsafe fn mul(self, other: Self) -> Self {
        // SAFETY: NEON is available (trait contract).
        F32x4(unsafe { vmulq_f32(self.0, other.0) })
    }

    #[inline(always)]
    unsafe fn negate_where(self, bits: u32) -> Self {
        // SAFETY: NEON is available (trait contract); registers only; the
        // load reads the local four-element array.
        unsafe {
            let lane_bit = [1u32, 2, 4, 8];
            let lane_bit = vld1q_u32(lane_bit.as_ptr());
            let mask = vtstq_u32(vdupq_n_u32(bits), lane_bit);
            let flip = vshlq_n_u32::<31>(vshrq_n_u32::<31>(mask));
            F32x4(vreinterpretq_f32_u32(veorq_u32(
                vreinterpretq_u32_f32(self.0),
                flip,
            )))
        }
    }

    #[inline(always)]
    unsafe fn positive_bits(self) -> u32 {
        // SAFETY: NEON is available (trait contract); registers only; the
        // load reads the local four-element array.
        unsafe {
            let lane_bit = [1u32, 2, 4, 8];
            let above = vcgtq_f32(self.0, vdupq_n_f32(0.0));
            vaddvq_u32(vandq_u32(above, vld1q_u32(lane_bit.as_ptr())))
        }
    }

    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        // SAFETY: NEON is available (trait contract).
        unsafe { vaddvq_f32(self.0) }
    }

    #[inline(always)]
    unsafe fn add_squares_f64(x: *const f32, sums: *mut f64) {
        // SAFETY: 4 readable f32 at x and 4 writable f64 at sums (caller);
        // NEON is available (trait contract).
        unsafe {
            let v = vld1q_f32(x);
            let (low, high) = (vcvt_f64_f32(vget_low_f32(v)), vcvt_high_f64_f32(v));
            vst1q_f64(sums, vfmaq_f64(vld1q_f64(sums), low, low));
            vst1q_f64(sums.add(2), vfmaq_f64(vld1q_f64(sums.add(2)), high, high));
        }
    }
}
