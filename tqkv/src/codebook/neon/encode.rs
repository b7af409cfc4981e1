//! Quantise-and-pack of 64 elements in registers, for codes of 1–6 bits:
//! a compare per threshold with the thresholds in registers ([`count`]) up
//! to 4 bits, a binary search past ([`search_levels`]), the indices
//! narrowed to bytes, then packed by shifts that join two
//! codes a u16, four a u32, eight a u64. The generic path went through a
//! byte buffer and the scalar packer; this is its fast case, with the same
//! bytes.

use core::arch::aarch64::*;

use super::{Lut4, Thr4, count, search_levels};
use crate::codebook::simd::Lanes;
use crate::vector::F32x4;

/// Packs 16 codes of `BITS` bits (lane `l` of `idx[k]` is code `4k + l`)
/// into `out[..2·BITS]`.
///
/// # Safety
/// NEON is available; every lane is below `2^BITS`, `BITS ∈ 1..=6`.
#[inline(always)]
unsafe fn pack16<const BITS: u32>(idx: &[uint32x4_t], out: &mut [u8]) {
    // SAFETY: register operations on the caller's ISA; the stores go
    // through the slice.
    unsafe {
        // The low half of each lane, twice: byte j holds code j.
        let low = vuzp1q_u16(vreinterpretq_u16_u32(idx[0]), vreinterpretq_u16_u32(idx[1]));
        let high = vuzp1q_u16(vreinterpretq_u16_u32(idx[2]), vreinterpretq_u16_u32(idx[3]));
        let bytes = vuzp1q_u8(vreinterpretq_u8_u16(low), vreinterpretq_u8_u16(high));
        // Each wider lane: its low half, or'ed with its high half moved down
        // next to the low half's bits. Up to 4 bits the same shift moves
        // the low half's bits out (it is below 2^(half's bits − the
        // shift)); past 4 the high half is cut out first.
        let b = BITS as i16;
        let wide = BITS > 4;
        let w = vreinterpretq_u16_u8(bytes);
        let w_high = if wide {
            vandq_u16(w, vdupq_n_u16(0xff00))
        } else {
            w
        };
        let w = vorrq_u16(
            vandq_u16(w, vdupq_n_u16(0xff)),
            vshlq_u16(w_high, vdupq_n_s16(b - 8)),
        );
        let d = vreinterpretq_u32_u16(w);
        let d_high = if wide {
            vandq_u32(d, vdupq_n_u32(0xffff_0000))
        } else {
            d
        };
        let d = vorrq_u32(
            vandq_u32(d, vdupq_n_u32(0xffff)),
            vshlq_u32(d_high, vdupq_n_s32(2 * i32::from(b) - 16)),
        );
        let q = vreinterpretq_u64_u32(d);
        let q_high = if wide {
            vandq_u64(q, vdupq_n_u64(0xffff_ffff_0000_0000))
        } else {
            q
        };
        let q = vorrq_u64(
            vandq_u64(q, vdupq_n_u64(0xffff_ffff)),
            vshlq_u64(q_high, vdupq_n_s64(4 * i64::from(b) - 32)),
        );
        let n = BITS as usize;
        let lanes = [vgetq_lane_u64::<0>(q), vgetq_lane_u64::<1>(q)];
        for (dst, lane) in out.chunks_exact_mut(n).zip(lanes) {
            dst.copy_from_slice(&lane.to_le_bytes()[..n]);
        }
    }
}

/// Quantises `x` (64 values) against `thr`, writes the packed codes to
/// `out[..8·BITS]` and, with `centroids`, each value's centroid.
///
/// # Safety
/// NEON is available; `BITS ∈ 1..=6` and `thr`, `lut` are prepared for a
/// codebook of that width; `out.len() >= 8·BITS`.
#[inline(always)]
pub(super) unsafe fn pack64<const BITS: u32>(
    thr: &Thr4<'_>,
    x: &[f32; 64],
    out: &mut [u8],
    centroids: Option<(&Lut4<'_>, &mut [f32; 64])>,
) {
    // SAFETY: the loads read x's 64 floats, the stores write 64 centroids;
    // every index is below 2^BITS, inside the lookup table.
    unsafe {
        let mut idx = [vdupq_n_u32(0); 16];
        for (k, i) in idx.iter_mut().enumerate() {
            let v = vld1q_f32(x.as_ptr().add(4 * k));
            *i = match BITS {
                1..=4 => count::<BITS>(thr, v),
                _ => search_levels::<BITS>(thr, v),
            };
        }
        if let Some((lut, c)) = centroids {
            for (k, &i) in idx.iter().enumerate() {
                let v = <F32x4 as Lanes>::lookup(lut, i);
                vst1q_f32(c.as_mut_ptr().add(4 * k), v.0);
            }
        }
        let n = 2 * BITS as usize;
        for (group, dst) in idx
            .chunks_exact(4)
            .zip(out[..8 * BITS as usize].chunks_exact_mut(n))
        {
            pack16::<BITS>(group, dst);
        }
    }
}
