//! NEON codebook kernels: 4 lanes.
//!
//! Lookup: `tbl` over the 64 bytes of 16 centroids for ≤ 4 bits (byte
//! indices `4i … 4i + 3` per lane), per-lane loads above (NEON has no
//! gather). Quantisation: one compare per threshold for ≤ 4 bits (the mask
//! is all ones, so subtracting it counts), the scalar search per lane above.

use core::arch::aarch64::*;

use super::simd::{self, Lanes};
use crate::vector::F32x4;

pub(super) struct Lut4<'a> {
    table: uint8x16x4_t,
    /// The centroids, for the gathers (and lookups past 4 bits).
    centroids: &'a [f32],
    bits: u8,
}

pub(super) struct Thr4<'a> {
    t: [float32x4_t; 15],
    /// The thresholds, for the searches past 4 bits.
    thresholds: &'a [f32],
    count: usize,
    bits: u8,
}

/// `#{j : x > t[j]}` by binary search over `2^bits − 1` sorted thresholds.
fn search(t: &[f32], x: f32) -> u32 {
    let mut idx = 0usize;
    let mut step = t.len().div_ceil(2);
    while step > 0 {
        idx += step * usize::from(x > t[idx + step - 1]);
        step /= 2;
    }
    idx as u32
}

// SAFETY: every method uses NEON instructions only (baseline on aarch64,
// checked by the entry points). Pointer accesses: load/store touch 4 f32,
// widen reads 4 bytes, narrow writes 4 bytes; lookups read centroids at
// indices below 2^bits and the thresholds slice is rebuilt with its length.
unsafe impl Lanes for F32x4 {
    type Idx = uint32x4_t;
    type Lut<'a> = Lut4<'a>;
    type Thr<'a> = Thr4<'a>;

    #[inline(always)]
    unsafe fn lut(cb: &super::Codebook) -> Lut4<'_> {
        let c = cb.centroids();
        let mut bytes = [0u8; 64];
        for (dst, &v) in bytes.chunks_exact_mut(4).zip(c) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
        // SAFETY: the loads read the local 64-byte array.
        unsafe {
            let p = bytes.as_ptr();
            Lut4 {
                table: uint8x16x4_t(
                    vld1q_u8(p),
                    vld1q_u8(p.add(16)),
                    vld1q_u8(p.add(32)),
                    vld1q_u8(p.add(48)),
                ),
                centroids: c,
                bits: cb.bits(),
            }
        }
    }

    #[inline(always)]
    unsafe fn thr(cb: &super::Codebook) -> Thr4<'_> {
        let t = cb.thresholds();
        // SAFETY: NEON is available (trait contract); no memory access.
        let mut v = [unsafe { vdupq_n_f32(0.0) }; 15];
        for (vj, &tj) in v.iter_mut().zip(t) {
            // SAFETY: as above.
            *vj = unsafe { vdupq_n_f32(tj) };
        }
        Thr4 {
            t: v,
            thresholds: t,
            count: t.len(),
            bits: cb.bits(),
        }
    }

    #[inline(always)]
    unsafe fn widen(p: *const u8) -> uint32x4_t {
        // SAFETY: 4 readable bytes at p (caller), read without alignment.
        unsafe {
            let w = u32::from_le_bytes(p.cast::<[u8; 4]>().read_unaligned());
            vmovl_u16(vget_low_u16(vmovl_u8(vcreate_u8(w as u64))))
        }
    }

    #[inline(always)]
    unsafe fn narrow(i: uint32x4_t, p: *mut u8) {
        // SAFETY: 4 writable bytes at p (caller); lanes are below 256.
        unsafe {
            let h = vmovn_u32(i);
            let b = vmovn_u16(vcombine_u16(h, h));
            let w = vget_lane_u32::<0>(vreinterpret_u32_u8(b));
            p.cast::<[u8; 4]>().write_unaligned(w.to_le_bytes());
        }
    }

    #[inline(always)]
    unsafe fn lookup(lut: &Lut4<'_>, i: uint32x4_t) -> Self {
        // SAFETY: NEON available; lanes are below 2^bits (caller), so the
        // per-lane reads stay inside the codebook's centroids.
        unsafe {
            if lut.bits <= 4 {
                let bytes = vaddq_u32(vmulq_n_u32(i, 0x0404_0404), vdupq_n_u32(0x0302_0100));
                F32x4(vreinterpretq_f32_u8(vqtbl4q_u8(
                    lut.table,
                    vreinterpretq_u8_u32(bytes),
                )))
            } else {
                let c = lut.centroids.as_ptr();
                let c = [
                    *c.add(vgetq_lane_u32::<0>(i) as usize),
                    *c.add(vgetq_lane_u32::<1>(i) as usize),
                    *c.add(vgetq_lane_u32::<2>(i) as usize),
                    *c.add(vgetq_lane_u32::<3>(i) as usize),
                ];
                F32x4(vld1q_f32(c.as_ptr()))
            }
        }
    }

    #[inline(always)]
    unsafe fn quantize(thr: &Thr4<'_>, x: Self) -> uint32x4_t {
        // SAFETY: NEON available; registers and local arrays only.
        unsafe {
            if thr.bits <= 4 {
                let mut acc = vdupq_n_u32(0);
                for t in &thr.t[..thr.count] {
                    acc = vsubq_u32(acc, vcgtq_f32(x.0, *t));
                }
                acc
            } else {
                let t = thr.thresholds;
                let mut v = [0.0f32; 4];
                vst1q_f32(v.as_mut_ptr(), x.0);
                let idx = v.map(|xj| search(t, xj));
                vld1q_u32(idx.as_ptr())
            }
        }
    }
}

crate::backend::neon_features!(simd::entry_points { F32x4 });
