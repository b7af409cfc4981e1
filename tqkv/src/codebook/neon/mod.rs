//! NEON codebook kernels: 4 lanes.
//!
//! Lookup: `tbl` over the 64 bytes of 16 centroids for ≤ 4 bits (byte
//! indices `4i … 4i + 3` per lane), byte planes at 5 and 6 bits, per-lane
//! loads above (NEON has no gather). Quantisation: one compare per
//! threshold for ≤ 4 bits (the mask is all ones, so subtracting it counts),
//! a binary search in registers at 5 and 6 bits (a `tbl` a level picks each
//! lane's next probe), the scalar search per lane above; 64 codes of ≤ 6
//! bits are quantised and packed in registers (`encode`).
//! At 1–4 bits, keys are scored in row blocks (four rows, one a lane, from
//! their packed dwords transposed, with a table of `q_j·c` per coordinate:
//! the scalar kernel's products added in its order, so the same bits), and
//! value rows whose length is a multiple of 8 are read 8 codes to one word,
//! shifted apart in the lanes (no unpacking through memory; the generic
//! kernel's FMAs in its order, so its bits). At 5 and 6 bits the generic
//! loops unpack 16 codes at a time (a `tbl` puts each code's two bytes in
//! a u16 lane, then a shift and a mask) and look 16 centroids up at a time
//! from the codebook's byte planes (a `tbl` a plane, then zips): the same
//! values, so the generic kernel's bits.

use core::arch::aarch64::*;

use super::simd::{self, Lanes};
use crate::vector::F32x4;

mod encode;
pub(in crate::codebook) mod int8;
mod key_rows;
mod rows;

pub(in crate::codebook) use key_rows::dot_rows_multi;
use key_rows::row_blocks;
pub(crate) use key_rows::{Tables, nibble_table_rows};
pub(in crate::codebook) use rows::accumulate_rows_multi;
use rows::value_groups;

pub(super) struct Lut4<'a> {
    table: uint8x16x4_t,
    /// At 5 and 6 bits, byte `k` of every centroid (plane `k`, 32 or 64
    /// bytes), for [`Lanes::lookup_four`]; zeros at other widths.
    planes: [uint8x16x4_t; 4],
    /// The centroids, for the gathers (and lookups past 4 bits).
    centroids: &'a [f32],
    bits: u8,
}

pub(super) struct Thr4<'a> {
    /// Up to 4 bits, threshold `j` in every lane of register `j` (for
    /// [`count`]). At 5 and 6 bits, the levels of the search (see
    /// [`Codebook::search_order`](super::Codebook::search_order)): the root
    /// probe in every lane of register 0, then level `l` from register
    /// [`LEVEL_AT`]`[l]`, four probes a register (the bytes a `tbl` reads).
    t: [float32x4_t; 17],
    /// The thresholds, for the searches past 6 bits.
    thresholds: &'a [f32],
    bits: u8,
}

/// The first register of each level of the search in [`Thr4::t`].
const LEVEL_AT: [usize; 6] = [0, 1, 2, 3, 5, 9];

/// `#{j : x > t[j]}` per lane over the `2^BITS − 1` thresholds of a
/// codebook of `BITS ≤ 4` bits, held in registers (all ones from a compare,
/// so subtracting counts); a compile-time count, so the loop unrolls. NaN
/// compares false: 0.
///
/// # Safety
/// NEON is available; `thr` is prepared for a `BITS`-bit codebook.
#[inline(always)]
unsafe fn count<const BITS: u32>(thr: &Thr4<'_>, x: float32x4_t) -> uint32x4_t {
    // SAFETY: register operations on the caller's ISA.
    unsafe {
        let mut acc = vdupq_n_u32(0);
        for t in &thr.t[..(1 << BITS) - 1] {
            acc = vsubq_u32(acc, vcgtq_f32(x, *t));
        }
        acc
    }
}

/// `#{j : x > t[j]}` per lane for a codebook of `BITS ∈ 5..=6` bits: a
/// binary search down the levels of [`Thr4::t`], where `c`, the node
/// reached so far, picks the next probe from its level's registers with
/// one `tbl` (byte indices `4c … 4c + 3`; the 32 probes of level 5 take a
/// `tbl` over the first 64 bytes and a `tbx` over the rest). The compare's
/// mask gives the next node `2c + 1` where `x` is greater, else `2c`; the
/// node below the last level is the count, as the thresholds are sorted.
/// NaN compares false: 0.
///
/// # Safety
/// NEON is available; `thr` is prepared for a `BITS`-bit codebook.
#[inline(always)]
pub(super) unsafe fn search_levels<const BITS: u32>(thr: &Thr4<'_>, x: float32x4_t) -> uint32x4_t {
    // SAFETY: register operations on the caller's ISA.
    unsafe {
        let l = &thr.t;
        let mut c = descend(x, bytes(l[0]), vdupq_n_u32(0));
        c = descend(x, vqtbl1q_u8(bytes(l[LEVEL_AT[1]]), entry_bytes(c)), c);
        c = descend(x, vqtbl1q_u8(bytes(l[LEVEL_AT[2]]), entry_bytes(c)), c);
        let at = LEVEL_AT[3];
        let two = uint8x16x2_t(bytes(l[at]), bytes(l[at + 1]));
        c = descend(x, vqtbl2q_u8(two, entry_bytes(c)), c);
        c = descend(x, vqtbl4q_u8(four(l, LEVEL_AT[4]), entry_bytes(c)), c);
        if BITS > 5 {
            let i = entry_bytes(c);
            let low = vqtbl4q_u8(four(l, LEVEL_AT[5]), i);
            let t = vqtbx4q_u8(low, four(l, LEVEL_AT[5] + 4), vsubq_u8(i, vdupq_n_u8(64)));
            c = descend(x, t, c);
        }
        c
    }
}

/// One level of [`search_levels`]: from node `c`, on to `2c + 1` where
/// `x > t` (the four probes' bytes), else `2c`.
///
/// # Safety
/// NEON is available.
#[inline(always)]
unsafe fn descend(x: float32x4_t, t: uint8x16_t, c: uint32x4_t) -> uint32x4_t {
    // SAFETY: register operations on the caller's ISA.
    unsafe {
        let gt = vcgtq_f32(x, vreinterpretq_f32_u8(t));
        vsubq_u32(vaddq_u32(c, c), gt)
    }
}

/// The bytes of `v`, for `tbl`.
#[inline(always)]
fn bytes(v: float32x4_t) -> uint8x16_t {
    // SAFETY: a reinterpretation; NEON is baseline on aarch64.
    unsafe { vreinterpretq_u8_f32(v) }
}

/// Registers `at … at + 3` of `l` as one `tbl` table of 64 bytes.
#[inline(always)]
fn four(l: &[float32x4_t; 17], at: usize) -> uint8x16x4_t {
    uint8x16x4_t(
        bytes(l[at]),
        bytes(l[at + 1]),
        bytes(l[at + 2]),
        bytes(l[at + 3]),
    )
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
        // SAFETY: the loads read the local arrays.
        unsafe {
            let planes = byte_planes(cb);
            let p = bytes.as_ptr();
            Lut4 {
                planes,
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
        let thresholds = cb.thresholds();
        let bits = cb.bits();
        // SAFETY: NEON is available (trait contract); the width is checked,
        // and 17 registers hold the levels of 6 bits.
        let t = unsafe {
            let mut t = [vdupq_n_f32(0.0); 17];
            if bits <= 4 {
                for (tj, &v) in t.iter_mut().zip(thresholds) {
                    *tj = vdupq_n_f32(v);
                }
            } else if bits <= super::SEARCH_BITS {
                simd::search_levels::<F32x4>(cb, |reg, v| t[reg] = v.0);
            }
            t
        };
        Thr4 {
            t,
            thresholds,
            bits,
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
                F32x4(vreinterpretq_f32_u8(vqtbl4q_u8(lut.table, entry_bytes(i))))
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
    unsafe fn unpack(bits: u8, packed: &[u8], out: &mut [u8]) {
        // SAFETY: NEON is available (trait contract); `packed` holds the
        // packed length of `out.len()` codes (caller).
        unsafe {
            match bits {
                5 => unpack_windows::<5>(packed, out),
                6 => unpack_windows::<6>(packed, out),
                _ => super::pack::unpack_unchecked(bits, packed, out),
            }
        }
    }

    #[inline(always)]
    unsafe fn lookup_four<const B: u8>(lut: &Lut4<'_>, p: *const u8) -> [Self; 4] {
        // SAFETY: NEON is available (trait contract); 16 codes, each below
        // 2^B, are readable at p (caller).
        unsafe {
            match B {
                5 | 6 => planes_lookup::<B>(&lut.planes, vld1q_u8(p)),
                _ => simd::lookup_each::<Self, B>(lut, p),
            }
        }
    }

    const PACK64_BITS: u8 = 6;

    #[inline(always)]
    unsafe fn pack64<const BITS: u32>(
        thr: &Thr4<'_>,
        x: &[f32; 64],
        out: &mut [u8],
        centroids: Option<(&Lut4<'_>, &mut [f32; 64])>,
    ) {
        // SAFETY: forwarded from the caller (the ISA is the trait's
        // contract, the width and lengths the caller's promise).
        unsafe { encode::pack64::<BITS>(thr, x, out, centroids) }
    }

    #[inline(always)]
    unsafe fn dot_row_blocks(
        cb: &super::Codebook,
        q: &[f32],
        rows: &[u8],
        stride: usize,
        out: &mut [f32],
    ) -> usize {
        // SAFETY: NEON is available (trait contract); the arguments were
        // validated by `dot_rows_on`.
        unsafe { row_blocks(cb, q, rows, stride, out) }
    }

    #[inline(always)]
    unsafe fn accumulate_rows_whole(
        cb: &super::Codebook,
        rows: &[u8],
        stride: usize,
        weights: &[f32],
        out: &mut [f32],
    ) -> bool {
        let d = out.len();
        if d == 0 || !d.is_multiple_of(8) {
            return false;
        }
        // SAFETY: NEON is available (trait contract); the arguments were
        // validated by `accumulate_rows_on`.
        unsafe {
            match cb.bits() {
                1 => value_groups::<1>(cb, rows, stride, weights, out),
                2 => value_groups::<2>(cb, rows, stride, weights, out),
                3 => value_groups::<3>(cb, rows, stride, weights, out),
                4 => value_groups::<4>(cb, rows, stride, weights, out),
                _ => return false,
            }
        }
        true
    }

    #[inline(always)]
    unsafe fn quantize(thr: &Thr4<'_>, x: Self) -> uint32x4_t {
        // SAFETY: NEON available; registers and local arrays only.
        unsafe {
            if thr.bits <= 4 {
                match thr.bits {
                    1 => count::<1>(thr, x.0),
                    2 => count::<2>(thr, x.0),
                    3 => count::<3>(thr, x.0),
                    _ => count::<4>(thr, x.0),
                }
            } else if thr.bits == 5 {
                search_levels::<5>(thr, x.0)
            } else if thr.bits == 6 {
                search_levels::<6>(thr, x.0)
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

/// The `tbl` indices and right shifts that unpack 8 codes of `B` bits
/// from the `B` bytes at the start of a register: u16 lane `j` takes the
/// two bytes holding code `j` (bits `B·j …`), then shifts it down.
const fn windows<const B: usize>() -> ([u8; 16], [i16; 8]) {
    let (mut idx, mut shift) = ([0u8; 16], [0i16; 8]);
    let mut j = 0;
    while j < 8 {
        idx[2 * j] = (B * j / 8) as u8;
        idx[2 * j + 1] = (B * j / 8 + 1) as u8;
        shift[j] = -((B * j % 8) as i16);
        j += 1;
    }
    (idx, shift)
}

/// [`pack::unpack_unchecked`](super::pack::unpack_unchecked) for `B ∈ {5,
/// 6}`: 16 codes (`2B` bytes) at a time, each u16 lane taking a code's two
/// bytes by `tbl`, shifting it down and masking it, then narrowed to
/// bytes; the codes of a partial last group by the scalar loop. Same bytes.
///
/// # Safety
/// NEON is available; `packed` holds `packed_len(out.len(), B)` bytes.
#[inline(always)]
unsafe fn unpack_windows<const B: usize>(packed: &[u8], out: &mut [u8]) {
    let (idx, shift) = const { windows::<B>() };
    let whole = out.len() / 16;
    // SAFETY: NEON is the caller's promise; group g's 2B bytes start at
    // 2B·g < packed.len(), read in place when 16 bytes from there lie
    // inside `packed`, else copied; the store writes out[16g..16g + 16].
    unsafe {
        let (lo_idx, shift) = (vld1q_u8(idx.as_ptr()), vld1q_s16(shift.as_ptr()));
        let hi_idx = vaddq_u8(lo_idx, vdupq_n_u8(B as u8));
        let mask = vdupq_n_u16((1 << B) - 1);
        for g in 0..whole {
            let at = 2 * B * g;
            let src = if at + 16 <= packed.len() {
                vld1q_u8(packed.as_ptr().add(at))
            } else {
                let mut tail = [0u8; 16];
                tail[..2 * B].copy_from_slice(&packed[at..at + 2 * B]);
                vld1q_u8(tail.as_ptr())
            };
            let lo = vshlq_u16(vreinterpretq_u16_u8(vqtbl1q_u8(src, lo_idx)), shift);
            let hi = vshlq_u16(vreinterpretq_u16_u8(vqtbl1q_u8(src, hi_idx)), shift);
            let codes = vuzp1q_u8(
                vreinterpretq_u8_u16(vandq_u16(lo, mask)),
                vreinterpretq_u8_u16(vandq_u16(hi, mask)),
            );
            vst1q_u8(out.as_mut_ptr().add(16 * g), codes);
        }
    }
    super::pack::unpack_unchecked(B as u8, &packed[2 * B * whole..], &mut out[16 * whole..]);
}

/// Byte `k` of each centroid of a 5- or 6-bit codebook in plane `k` (the
/// 4-register table of `tbl`), zeros at other widths.
///
/// # Safety
/// NEON is available.
#[inline(always)]
unsafe fn byte_planes(cb: &super::Codebook) -> [uint8x16x4_t; 4] {
    let mut bytes = [[0u8; 64]; 4];
    if matches!(cb.bits(), 5 | 6) {
        for (v, c) in cb.centroids().iter().enumerate() {
            for (plane, b) in bytes.iter_mut().zip(c.to_le_bytes()) {
                plane[v] = b;
            }
        }
    }
    // SAFETY: NEON is the caller's promise; the loads read the local
    // 64-byte arrays.
    unsafe {
        let load = |plane: &[u8; 64]| {
            let p = plane.as_ptr();
            uint8x16x4_t(
                vld1q_u8(p),
                vld1q_u8(p.add(16)),
                vld1q_u8(p.add(32)),
                vld1q_u8(p.add(48)),
            )
        };
        [
            load(&bytes[0]),
            load(&bytes[1]),
            load(&bytes[2]),
            load(&bytes[3]),
        ]
    }
}

/// The centroids of 16 codes of `B ∈ {5, 6}` bits (one a byte) from the
/// byte planes: one `tbl` a plane gives byte `k` of all 16, and two rounds
/// of zips put each centroid's four bytes together, in code order. Four
/// lookups and eight zips for 16 values, where a lane-at-a-time read of the
/// table took about three instructions a value.
///
/// # Safety
/// NEON is available; every code is below `2^B`.
#[inline(always)]
unsafe fn planes_lookup<const B: u8>(planes: &[uint8x16x4_t; 4], codes: uint8x16_t) -> [F32x4; 4] {
    // SAFETY: NEON is the caller's promise; registers only (an index past
    // a table gives 0, and none is). Spelled out without closures, which
    // do not take the caller's target features.
    unsafe {
        let [b0, b1, b2, b3] = if B == 5 {
            [
                vqtbl2q_u8(uint8x16x2_t(planes[0].0, planes[0].1), codes),
                vqtbl2q_u8(uint8x16x2_t(planes[1].0, planes[1].1), codes),
                vqtbl2q_u8(uint8x16x2_t(planes[2].0, planes[2].1), codes),
                vqtbl2q_u8(uint8x16x2_t(planes[3].0, planes[3].1), codes),
            ]
        } else {
            [
                vqtbl4q_u8(planes[0], codes),
                vqtbl4q_u8(planes[1], codes),
                vqtbl4q_u8(planes[2], codes),
                vqtbl4q_u8(planes[3], codes),
            ]
        };
        // Bytes 0,1 and 2,3 of each value side by side (u16 lanes), then
        // the two halves of each value side by side (u32 lanes).
        let lo01 = vreinterpretq_u16_u8(vzip1q_u8(b0, b1));
        let hi01 = vreinterpretq_u16_u8(vzip2q_u8(b0, b1));
        let lo23 = vreinterpretq_u16_u8(vzip1q_u8(b2, b3));
        let hi23 = vreinterpretq_u16_u8(vzip2q_u8(b2, b3));
        [
            F32x4(vreinterpretq_f32_u16(vzip1q_u16(lo01, lo23))),
            F32x4(vreinterpretq_f32_u16(vzip2q_u16(lo01, lo23))),
            F32x4(vreinterpretq_f32_u16(vzip1q_u16(hi01, hi23))),
            F32x4(vreinterpretq_f32_u16(vzip2q_u16(hi01, hi23))),
        ]
    }
}

/// The `tbl` byte indices of the f32 entries `i` (each lane below 64):
/// `4i … 4i + 3`.
///
/// # Safety
/// NEON is available.
#[inline(always)]
unsafe fn entry_bytes(i: uint32x4_t) -> uint8x16_t {
    // SAFETY: NEON is the caller's promise; registers only.
    unsafe {
        vreinterpretq_u8_u32(vmlaq_u32(
            vdupq_n_u32(0x0302_0100),
            i,
            vdupq_n_u32(0x0404_0404),
        ))
    }
}

crate::backend::neon_features!(simd::entry_points { F32x4 });
