//! The NEON value kernels over rows of codes of at most 4 bits: the
//! weighted sums, for one weight set ([`value_groups`]) and for two to
//! four sharing each lookup ([`accumulate_rows_multi`]). The keys' scores
//! are in `key_rows`.

use core::arch::aarch64::*;

use super::entry_bytes;
use crate::codebook::pack::{group_word, rows_within};

/// `t[i]` per lane, `t` 16 floats of which the first `2^B` are used, for
/// the `B`-bit code in each lane of `i` (bits above it masked off by
/// `keep`): `tbl` on the code's four byte indices, over as many table
/// registers as `2^B` entries take (one up to 2 bits, two at 3, four at
/// 4).
///
/// # Safety
/// NEON is available; `keep` holds `2^B − 1` in every lane.
#[inline(always)]
unsafe fn look_up<const B: usize>(t: &[f32; 16], i: uint32x4_t, keep: uint32x4_t) -> float32x4_t {
    // SAFETY: NEON is the caller's promise; `look_up_bytes` reads inside `t`.
    unsafe { look_up_bytes::<B>(t, entry_bytes(vandq_u32(i, keep))) }
}

/// `t[i]` per lane from the `tbl` byte indices of the entries
/// ([`entry_bytes`]), each below `2^B`: the second half of [`look_up`],
/// for callers that look the same indices up in several tables.
///
/// # Safety
/// NEON is available.
#[inline(always)]
pub(super) unsafe fn look_up_bytes<const B: usize>(t: &[f32; 16], idx: uint8x16_t) -> float32x4_t {
    // SAFETY: NEON is the caller's promise; the loads read inside `t`.
    unsafe {
        let p = t.as_ptr().cast::<u8>();
        let bytes = match B {
            1 | 2 => vqtbl1q_u8(vld1q_u8(p), idx),
            3 => vqtbl2q_u8(vld1q_u8_x2(p), idx),
            _ => vqtbl4q_u8(vld1q_u8_x4(p), idx),
        };
        vreinterpretq_f32_u8(bytes)
    }
}

/// The lookup of groups of 8 codes of `B ≤ 4` bits from their word: the
/// centroids as a `tbl` table, and the shifts that bring codes `0–3` and
/// `4–7` of a word, duplicated in the lanes, to the bottom of each lane.
struct GroupLut<const B: usize> {
    t: [f32; 16],
    shifts: [int32x4_t; 2],
    keep: uint32x4_t,
}

impl<const B: usize> GroupLut<B> {
    /// # Safety
    /// NEON is available; `cb.bits() == B ≤ 4`.
    #[inline(always)]
    unsafe fn new(cb: &crate::codebook::Codebook) -> Self {
        let b = B as i32;
        let mut t = [0.0f32; 16];
        t[..cb.centroids().len()].copy_from_slice(cb.centroids());
        let (low, high) = ([0, -b, -2 * b, -3 * b], [-4 * b, -5 * b, -6 * b, -7 * b]);
        // SAFETY: NEON (caller); the loads read the local arrays.
        unsafe {
            GroupLut {
                t,
                shifts: [vld1q_s32(low.as_ptr()), vld1q_s32(high.as_ptr())],
                keep: vdupq_n_u32((1 << B) - 1),
            }
        }
    }

    /// The centroids of the 8 codes in the low `8·B` bits of `word` (the
    /// bits above ignored), 4 a register.
    ///
    /// # Safety
    /// NEON is available.
    #[inline(always)]
    unsafe fn centroids(&self, word: u32) -> [float32x4_t; 2] {
        // SAFETY: NEON (caller); `look_up` reads inside the table.
        unsafe {
            let all = vdupq_n_u32(word);
            self.shifts
                .map(|sh| look_up::<B>(&self.t, vshlq_u32(all, sh), self.keep))
        }
    }
}

/// `out[j] += Σ_r weights[r]·c[idx_{r,j}]` at `B ≤ 4` bits, `out.len()` a
/// multiple of 8: the `B` bytes of each 8 codes are one word load,
/// duplicated and shifted apart in the lanes of two registers, looked up
/// and added with one FMA each, 64 coordinates at a time over every row.
/// Rows whose words all lie in `rows` are read in place, the rest through
/// `group_word`. The same FMAs in the same row order as the generic
/// kernel, so the same bits.
///
/// # Safety
/// NEON is available; rows validated as by `accumulate_rows_on` (row `r`'s
/// `packed_len(out.len(), B)` bytes lie at `rows[r·stride..]`).
#[inline(always)]
pub(super) unsafe fn value_groups<const B: usize>(
    cb: &crate::codebook::Codebook,
    rows: &[u8],
    stride: usize,
    weights: &[f32],
    out: &mut [f32],
) {
    // SAFETY: NEON is the caller's promise. The in-place word loads of a
    // row lie inside `rows` (`rows_within`); `group_word` reads the other
    // rows' groups in bounds; the bytes past a group's own belong to the
    // next codes (or row) and land in bits the mask clears. Loads and
    // stores of `out` stay inside it.
    unsafe {
        let lut = GroupLut::<B>::new(cb);
        for (ci, chunk) in out.chunks_mut(64).enumerate() {
            let groups = chunk.len() / 8;
            let first = 8 * ci * B;
            let mut acc = [[vdupq_n_f32(0.0); 2]; 8];
            for (k, a) in acc.iter_mut().enumerate().take(groups) {
                for (h, v) in a.iter_mut().enumerate() {
                    *v = vld1q_f32(chunk.as_ptr().add(8 * k + 4 * h));
                }
            }
            // A whole chunk's eight words, the last at first + 7B.
            let direct = if groups == 8 {
                rows_within(rows.len(), stride, first + 7 * B + 4, weights.len())
            } else {
                0
            };
            let (near, far) = weights.split_at(direct);
            let mut row = rows.as_ptr().wrapping_add(first);
            for &w in near {
                let wv = vdupq_n_f32(w);
                for (k, a) in acc.iter_mut().enumerate() {
                    let c = lut.centroids(row.add(k * B).cast::<u32>().read_unaligned());
                    for (v, c) in a.iter_mut().zip(c) {
                        *v = vfmaq_f32(*v, c, wv);
                    }
                }
                row = row.wrapping_add(stride);
            }
            for (r, &w) in far.iter().enumerate() {
                let wv = vdupq_n_f32(w);
                let row = (direct + r) * stride + first;
                for (k, a) in acc.iter_mut().enumerate().take(groups) {
                    let c = lut.centroids(group_word::<B>(rows, row + k * B));
                    for (v, c) in a.iter_mut().zip(c) {
                        *v = vfmaq_f32(*v, c, wv);
                    }
                }
            }
            for (k, a) in acc.iter().enumerate().take(groups) {
                for (h, v) in a.iter().enumerate() {
                    vst1q_f32(chunk.as_mut_ptr().add(8 * k + 4 * h), *v);
                }
            }
        }
    }
}

/// `out[h·out_stride + j] += Σ_r weights[h·w_stride + r]·c[idx_{r,j}]` for
/// `g ∈ 2..=4` weight sets over the same `n` rows of `B ≤ 4` bits, `d` a
/// multiple of 8: each group of 8 codes is loaded and looked up once for
/// every set (as [`value_groups`] does for one), then one FMA per set and 4
/// codes. Coordinates go `8·⌊8/g⌋` at a time so that the sums stay in
/// registers. Each sum takes the FMAs of [`value_groups`] in the same row
/// order, so the bits equal `g` calls of it. Returns false (touching
/// nothing) for other shapes or backends, and for buffers that do not
/// hold the shape ([`WeightedCodes::fit`](crate::codebook::WeightedCodes::fit)).
pub(in crate::codebook) fn accumulate_rows_multi(
    backend: crate::backend::Checked,
    cb: &crate::codebook::Codebook,
    a: &crate::codebook::WeightedCodes<'_>,
    out: &mut [f32],
    g: usize,
) -> bool {
    if !a.takes(backend, crate::Backend::Neon, 4, cb, g, out.len()) {
        return false;
    }
    let b = cb.bits();
    // SAFETY: `Checked` proves NEON; the shape is one the kernel takes, and
    // the buffers hold it (checked above).
    unsafe {
        match (b, g) {
            (1, 2) => multi_simd::<1, 2, 4>(cb, a, out),
            (1, 3) => multi_simd::<1, 3, 2>(cb, a, out),
            (1, _) => multi_simd::<1, 4, 2>(cb, a, out),
            (2, 2) => multi_simd::<2, 2, 4>(cb, a, out),
            (2, 3) => multi_simd::<2, 3, 2>(cb, a, out),
            (2, _) => multi_simd::<2, 4, 2>(cb, a, out),
            (3, 2) => multi_simd::<3, 2, 4>(cb, a, out),
            (3, 3) => multi_simd::<3, 3, 2>(cb, a, out),
            (3, _) => multi_simd::<3, 4, 2>(cb, a, out),
            (_, 2) => multi_simd::<4, 2, 4>(cb, a, out),
            (_, 3) => multi_simd::<4, 3, 2>(cb, a, out),
            _ => multi_simd::<4, 4, 2>(cb, a, out),
        }
    }
    true
}

crate::backend::neon_features!(crate::backend::target_features {
    /// [`accumulate_rows_multi`] for `G` sets at `B` bits, `NG` groups of 8
    /// coordinates at a time (`2·G·NG ≤ 16` sums in registers).
    ///
    /// # Safety
    /// NEON is available; the shape is one [`accumulate_rows_multi`]
    /// accepts, and the buffers hold it.
    unsafe fn multi_simd<const B: usize, const G: usize, const NG: usize>(
        cb: &crate::codebook::Codebook,
        a: &crate::codebook::WeightedCodes<'_>,
        out: &mut [f32],
    ) {
        // SAFETY: NEON by this function's features. Group words of row r
        // (r < n) are read in place below `direct` (`rows_within`), else
        // by `group_word` inside `rows`; the bytes past a group's own land
        // in bits the mask clears. Weight (h, r) with h < G, r < n lies in
        // the h-th set, and the loads and stores of `out` inside the h-th
        // set's d sums (the buffers fit: checked by the caller).
        unsafe {
            let lut = GroupLut::<B>::new(cb);
            let groups = a.d / 8;
            let mut g0 = 0;
            while g0 < groups {
                let here = (groups - g0).min(NG);
                let mut acc = [[[vdupq_n_f32(0.0); 2]; NG]; G];
                for (h, acc) in acc.iter_mut().enumerate() {
                    for (k, pair) in acc.iter_mut().enumerate().take(here) {
                        for (half, v) in pair.iter_mut().enumerate() {
                            let at = h * a.out_stride + 8 * (g0 + k) + 4 * half;
                            *v = vld1q_f32(out.as_ptr().add(at));
                        }
                    }
                }
                // Rows whose `here` group words lie in `rows` are read in place.
                let last = (g0 + here - 1) * B;
                let direct = rows_within(a.rows.len(), a.stride, last + 4, a.n);
                for r in 0..a.n {
                    let row = r * a.stride + g0 * B;
                    let mut c = [[vdupq_n_f32(0.0); 2]; NG];
                    for (i, ci) in c.iter_mut().enumerate().take(here) {
                        let word = if r < direct {
                            a.rows.as_ptr().add(row + i * B).cast::<u32>().read_unaligned()
                        } else {
                            group_word::<B>(a.rows, row + i * B)
                        };
                        *ci = lut.centroids(word);
                    }
                    for (h, acc) in acc.iter_mut().enumerate() {
                        let w = vdupq_n_f32(*a.weights.get_unchecked(h * a.w_stride + r));
                        for (pair, ci) in acc.iter_mut().zip(&c).take(here) {
                            for (v, cv) in pair.iter_mut().zip(ci) {
                                *v = vfmaq_f32(*v, *cv, w);
                            }
                        }
                    }
                }
                for (h, acc) in acc.iter().enumerate() {
                    for (k, pair) in acc.iter().enumerate().take(here) {
                        for (half, v) in pair.iter().enumerate() {
                            let at = h * a.out_stride + 8 * (g0 + k) + 4 * half;
                            vst1q_f32(out.as_mut_ptr().add(at), *v);
                        }
                    }
                }
                g0 += here;
            }
        }
    }
});
