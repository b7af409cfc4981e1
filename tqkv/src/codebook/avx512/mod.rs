//! AVX-512 codebook kernels: 16 lanes.
//!
//! Lookup: one `vpermps` over a 16-entry register for ≤ 4 bits, `vpermt2ps`
//! over 32 entries for 5 bits, two and a blend for 6, a gather for 7 and 8.
//! Unpacking 64 codes: `vpermb` + `vpmultishiftqb` (VBMI); packing 64
//! codes of ≤ 6 bits: in registers (`encode`); other packing and short
//! tails: `pext`/`pdep`. Quantisation is a
//! binary search over the thresholds held in registers: `bits` steps of one
//! `vpermps`/`vpermt2ps` (two and a blend at 6 bits), one compare and one
//! masked add, a gather per step only past 6 bits. The search finds the
//! count of thresholds below `x`, the scalar kernel's index, because the
//! thresholds are sorted.

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::bmi;
use super::simd::{self, Lanes};
use crate::vector::F32x16;

mod encode;
pub(in crate::codebook) mod int8;
pub(in crate::codebook) mod key_rows;
pub(in crate::codebook) mod multi;
pub(crate) mod sign_tables;
mod values;

pub(in crate::codebook) use values::accumulate_rows_and_signs;
use values::accumulate_whole;

pub(super) struct Lut16<'a> {
    lo: __m512,
    hi: __m512,
    /// At 6 bits, centroids 32–47 and 48–63 (zeros otherwise).
    upper: [__m512; 2],
    /// The centroids, for the gathers past 6 bits.
    centroids: &'a [f32],
    bits: u8,
}

pub(super) struct Thr16<'a> {
    /// Thresholds 0..64 (as many as exist; the rest never probed).
    t: [__m512; 4],
    /// For ≤ 4 bits, register `j` holds thresholds `2^j − 1 ..`: the probe
    /// of the search step of size `2^j` is then the index itself.
    shifted: [__m512; 4],
    /// The thresholds, for the gathered searches past 6 bits.
    thresholds: &'a [f32],
    bits: u8,
}

/// `#{j : x > t[j]}` per lane for a `BITS`-bit codebook (`BITS ≤ 6`) whose
/// sorted thresholds are in `thr` (+∞ past the last): a binary search of
/// `BITS` steps, each one permute (plus an add at 5 bits, two permutes and
/// a blend at 6), one compare and one masked add. NaN compares false
/// throughout and gets 0.
///
/// # Safety
/// AVX-512F is available.
#[inline(always)]
unsafe fn search<const BITS: u32>(thr: &Thr16<'_>, x: __m512) -> __m512i {
    // SAFETY: register operations only, on the caller's ISA.
    unsafe {
        let mut idx = _mm512_setzero_si512();
        let mut s = BITS;
        while s > 0 {
            s -= 1;
            let th = probe_thresholds::<BITS>(thr, idx, s);
            let gt = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, th);
            idx = _mm512_mask_add_epi32(idx, gt, idx, _mm512_set1_epi32(1 << s));
        }
        idx
    }
}

/// The thresholds that step `2^s` of a `BITS`-bit search probes from the
/// indices `idx`: `t[idx + 2^s − 1]`.
///
/// # Safety
/// AVX-512F is available.
#[inline(always)]
unsafe fn probe_thresholds<const BITS: u32>(thr: &Thr16<'_>, idx: __m512i, s: u32) -> __m512 {
    let t = &thr.t;
    // SAFETY: register operations only, on the caller's ISA.
    unsafe {
        let probe = _mm512_add_epi32(idx, _mm512_set1_epi32((1 << s) - 1));
        match BITS {
            1..=4 => _mm512_permutexvar_ps(idx, thr.shifted[s as usize]),
            5 => _mm512_permutex2var_ps(t[0], probe, t[1]),
            _ => {
                // Bit 5 of the probe picks the upper 32 thresholds.
                let lo = _mm512_permutex2var_ps(t[0], probe, t[1]);
                let hi = _mm512_permutex2var_ps(t[2], probe, t[3]);
                let upper = _mm512_test_epi32_mask(probe, _mm512_set1_epi32(32));
                _mm512_mask_blend_ps(upper, lo, hi)
            }
        }
    }
}

/// The first `lanes` of 16 lanes (all 16 from 16 on) as a mask: the lanes
/// of a masked load or store that lie inside a slice.
#[inline(always)]
pub(super) fn lane_mask(lanes: usize) -> __mmask16 {
    if lanes >= 16 {
        0xffff
    } else {
        ((1u32 << lanes) - 1) as __mmask16
    }
}

/// Centroids `from … from + 15` in lanes 0–15 (zeros past the last): a
/// masked load straight from the codebook. A table built on the stack and
/// reloaded whole stalled on store forwarding, a quarter of a
/// quantise-and-pack at d = 128.
///
/// # Safety
/// AVX-512F is available.
#[inline(always)]
pub(super) unsafe fn centroid_lanes(c: &[f32], from: usize) -> __m512 {
    let n = c.len().saturating_sub(from).min(16);
    let mask = lane_mask(n);
    // SAFETY: the masked load reads only lanes below `n`, the centroids
    // `from … from + n − 1`, inside `c`; masked-off lanes never fault.
    unsafe { _mm512_maskz_loadu_ps(mask, c.as_ptr().wrapping_add(from)) }
}

// SAFETY: every method uses AVX-512 F/BW/DQ/VL/VBMI or BMI2 instructions only,
// which the trait's contract makes the caller check. Pointer accesses:
// load/store touch 16 f32, widen reads 16 bytes, narrow writes 16 bytes; the
// gathers read `centroids`/`thresholds` at indices below 2^bits (resp.
// 2^bits − 1), inside the codebook's arrays.
unsafe impl Lanes for F32x16 {
    type Idx = __m512i;
    type Lut<'a> = Lut16<'a>;
    type Thr<'a> = Thr16<'a>;

    #[inline(always)]
    unsafe fn lut(cb: &super::Codebook) -> Lut16<'_> {
        let c = cb.centroids();
        // SAFETY: AVX-512F is available (trait contract).
        unsafe {
            Lut16 {
                lo: centroid_lanes(c, 0),
                hi: centroid_lanes(c, 16),
                upper: match cb.bits() {
                    6 => [centroid_lanes(c, 32), centroid_lanes(c, 48)],
                    _ => [_mm512_setzero_ps(); 2],
                },
                centroids: c,
                bits: cb.bits(),
            }
        }
    }

    #[inline(always)]
    unsafe fn thr(cb: &super::Codebook) -> Thr16<'_> {
        let thresholds = cb.thresholds();
        // Masked loads straight from the codebook (a table built on the
        // stack and reloaded stalled on store forwarding); lanes past the
        // last threshold are +∞, which no finite value exceeds.
        // AVX-512F is available (trait contract); each masked load reads
        // only lanes below `thresholds.len()`, and masked-off lanes do not
        // fault.
        let load = |at: usize| {
            let mask = lane_mask(thresholds.len().saturating_sub(at));
            // SAFETY: as above.
            unsafe {
                _mm512_mask_loadu_ps(
                    _mm512_set1_ps(f32::INFINITY),
                    mask,
                    thresholds.as_ptr().wrapping_add(at),
                )
            }
        };
        // Only the registers the search of this width reads.
        let bits = cb.bits();
        // SAFETY: as above (no memory access).
        let inf = unsafe { _mm512_set1_ps(f32::INFINITY) };
        let (t, shifted) = match bits {
            1..=4 => ([inf; 4], [load(0), load(1), load(3), load(7)]),
            5 => ([load(0), load(16), inf, inf], [inf; 4]),
            6 => ([load(0), load(16), load(32), load(48)], [inf; 4]),
            _ => ([inf; 4], [inf; 4]),
        };
        Thr16 {
            t,
            shifted,
            thresholds,
            bits,
        }
    }

    #[inline(always)]
    unsafe fn widen(p: *const u8) -> __m512i {
        // SAFETY: 16 readable bytes at p (caller); AVX-512F available.
        unsafe { _mm512_cvtepu8_epi32(_mm_loadu_si128(p.cast())) }
    }

    #[inline(always)]
    unsafe fn narrow(i: __m512i, p: *mut u8) {
        // SAFETY: 16 writable bytes at p (caller); lanes are below 256, so
        // truncation keeps them.
        unsafe { _mm_storeu_si128(p.cast(), _mm512_cvtepi32_epi8(i)) }
    }

    #[inline(always)]
    unsafe fn lookup(lut: &Lut16<'_>, i: __m512i) -> Self {
        // SAFETY: forwarded from the caller.
        unsafe {
            match lut.bits {
                1..=4 => Self::lookup_bits::<4>(lut, i),
                5 => Self::lookup_bits::<5>(lut, i),
                6 => Self::lookup_bits::<6>(lut, i),
                _ => Self::lookup_bits::<8>(lut, i),
            }
        }
    }

    #[inline(always)]
    unsafe fn lookup_bits<const B: u8>(lut: &Lut16<'_>, i: __m512i) -> Self {
        // SAFETY: AVX-512F available; the gather reads centroids[i] with
        // every lane below 2^bits (caller), inside the codebook's array.
        unsafe {
            F32x16(match B {
                1..=4 => _mm512_permutexvar_ps(i, lut.lo),
                5 => _mm512_permutex2var_ps(lut.lo, i, lut.hi),
                6 => {
                    // Two 32-entry permutes (each reads the index's low 5
                    // bits), bit 5 picks: a gather measured 2–4 times slower.
                    let low = _mm512_permutex2var_ps(lut.lo, i, lut.hi);
                    let high = _mm512_permutex2var_ps(lut.upper[0], i, lut.upper[1]);
                    let upper = _mm512_test_epi32_mask(i, _mm512_set1_epi32(32));
                    _mm512_mask_blend_ps(upper, low, high)
                }
                _ => _mm512_i32gather_ps::<4>(i, lut.centroids.as_ptr()),
            })
        }
    }

    #[inline(always)]
    unsafe fn quantize(thr: &Thr16<'_>, x: Self) -> __m512i {
        // SAFETY: AVX-512F available (trait contract); `search` reads
        // registers only, the gathered search reads thresholds[idx + step −
        // 1] ≤ thresholds[2^bits − 2], inside the codebook's array.
        unsafe {
            match thr.bits {
                1 => search::<1>(thr, x.0),
                2 => search::<2>(thr, x.0),
                3 => search::<3>(thr, x.0),
                4 => search::<4>(thr, x.0),
                5 => search::<5>(thr, x.0),
                6 => search::<6>(thr, x.0),
                _ => {
                    let mut idx = _mm512_setzero_si512();
                    let mut step = 1i32 << (thr.bits - 1);
                    while step > 0 {
                        let probe = _mm512_add_epi32(idx, _mm512_set1_epi32(step - 1));
                        let t = _mm512_i32gather_ps::<4>(probe, thr.thresholds.as_ptr());
                        let gt = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x.0, t);
                        idx = _mm512_mask_add_epi32(idx, gt, idx, _mm512_set1_epi32(step));
                        step >>= 1;
                    }
                    idx
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn dot_row_blocks(
        cb: &super::Codebook,
        q: &[f32],
        rows: &[u8],
        stride: usize,
        out: &mut [f32],
    ) -> usize {
        // SAFETY: AVX-512 F/BW is available (trait contract); the arguments
        // were validated by `dot_rows_on`.
        unsafe { key_rows::row_blocks(cb, q, rows, stride, out) }
    }

    #[inline(always)]
    unsafe fn accumulate_rows_whole(
        cb: &super::Codebook,
        rows: &[u8],
        stride: usize,
        weights: &[f32],
        out: &mut [f32],
    ) -> bool {
        // Only 1–3 bits ask (the cached answer is one atomic load).
        let half_pipes = cb.bits() <= 3 && crate::backend::zmm_on_half_pipes();
        // SAFETY: AVX-512 F/BW/VBMI are available (trait contract); the
        // arguments were validated by `accumulate_rows_on`.
        unsafe { accumulate_rows_for(cb, rows, stride, weights, out, half_pipes) }
    }

    const PACK64_BITS: u8 = 6;

    #[inline(always)]
    unsafe fn pack64<const BITS: u32>(
        thr: &Thr16<'_>,
        x: &[f32; 64],
        out: &mut [u8],
        centroids: Option<(&Lut16<'_>, &mut [f32; 64])>,
    ) {
        // SAFETY: forwarded from the caller (the ISA is the trait's
        // contract, the width and lengths the caller's promise).
        unsafe { encode::pack64::<BITS>(thr, x, out, centroids) }
    }

    #[inline(always)]
    unsafe fn prefetch(p: *const u8) {
        // SAFETY: SSE is baseline; a prefetch never faults, whatever `p` is.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
    }

    #[inline(always)]
    unsafe fn pack(bits: u8, indices: &[u8], out: &mut [u8]) {
        // SAFETY: BMI2 available (trait contract); arguments forwarded.
        unsafe { bmi::pack(bits, indices, out) }
    }

    #[inline(always)]
    unsafe fn unpack(bits: u8, packed: &[u8], out: &mut [u8]) {
        if out.len() == 64 {
            // SAFETY: VBMI available (trait contract); `packed` holds the
            // 8·bits bytes of 64 codes and `out` 64 bytes.
            unsafe { unpack64(bits, packed, out) }
        } else {
            // SAFETY: BMI2 available (trait contract); arguments forwarded.
            unsafe { bmi::unpack(bits, packed, out) }
        }
    }
}

crate::backend::avx512_features!(crate::backend::target_features {
    /// [`Lanes::accumulate_rows_whole`] on AVX-512 for a core whose zmm
    /// operations run on half-width pipes or not (`half_pipes`, from
    /// [`crate::backend::zmm_on_half_pipes`]; a parameter so that tests run
    /// both choices on any host). Codes of 1–3 bits take the AVX2 group kernel
    /// first on half-width pipes (a dword broadcast, a shift, a `vpermps` and
    /// an FMA per 8 codes: fewer pipe slots there than the zmm rows' byte
    /// spread), the zmm rows first at full width (26 % faster on Zen 5 at d =
    /// 128); each falls back to the other for shapes it does not take. Both
    /// add one rounded product per code and row, in row order, onto `out`:
    /// the same bits either way. Rows of 1-bit codes back to back take the
    /// sign tables first at either width (a row adds `±w·c[1]`).
    ///
    /// # Safety
    /// AVX-512 F/BW/VBMI are available; the arguments are validated as by
    /// `accumulate_rows_on`.
    #[inline]
    pub(super) unsafe fn accumulate_rows_for(
        cb: &super::Codebook,
        rows: &[u8],
        stride: usize,
        weights: &[f32],
        out: &mut [f32],
        half_pipes: bool,
    ) -> bool {
        if cb.bits() == 1
            && sign_tables::takes(out.len(), stride)
            && crate::qjl::weights_bounded(weights)
        {
            // Rows of 1-bit codes back to back add `±w·c[1]` (`c[0] =
            // −c[1]`): sign sums, eight rows at a time, at either pipe
            // width.
            // SAFETY: AVX-512 with GFNI (this function's features); the
            // rows are back to back, `out.len()/8` bytes each, one per
            // weight (validated by the caller).
            unsafe { sign_tables::accumulate_simd(rows, weights, cb.centroids()[1], out) };
            return true;
        }
        let groups_first = half_pipes && cb.bits() <= 3;
        // SAFETY: the AVX-512 feature list includes AVX2 and FMA, which the
        // group kernel needs; the rest is forwarded from the caller.
        unsafe {
            if !groups_first && accumulate_whole(cb, rows, stride, weights, out) {
                return true;
            }
            if cb.bits() <= 3 && super::avx2::accumulate_groups(cb, rows, stride, weights, out) {
                return true;
            }
            groups_first && accumulate_whole(cb, rows, stride, weights, out)
        }
    }
});

/// The first two steps of a dword transpose: `out[4k + m]`'s 128-bit lane
/// `L` holds dword `m` of that lane of registers `4k … 4k + 3`.
///
/// # Safety
/// AVX-512F is available.
#[inline(always)]
unsafe fn transpose_quads<const R: usize>(r: &[__m512i; R]) -> [__m512i; R] {
    // SAFETY: AVX-512F is the caller's promise; registers only.
    unsafe {
        // In each 128-bit lane: the dwords of registers 2k and 2k + 1
        // interleaved.
        let mut t = [_mm512_setzero_si512(); R];
        for k in 0..R / 2 {
            t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
            t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
        }
        let mut u = [_mm512_setzero_si512(); R];
        for k in 0..R / 4 {
            u[4 * k] = _mm512_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
            u[4 * k + 1] = _mm512_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
            u[4 * k + 2] = _mm512_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
            u[4 * k + 3] = _mm512_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
        }
        u
    }
}

/// Transposes 16 rows of 16 dwords: `out[c]` lane `r` = `rows[r]` lane `c`.
///
/// # Safety
/// AVX-512F is available.
#[inline(always)]
unsafe fn transpose16(r: &[__m512i; 16]) -> [__m512i; 16] {
    // SAFETY: AVX-512F is the caller's promise; registers only.
    unsafe {
        // u[4k + m], 128-bit lane L = column 4L + m of rows 4k … 4k + 3.
        let u = transpose_quads(r);
        let mut o = [_mm512_setzero_si512(); 16];
        for m in 0..4 {
            let v = _mm512_shuffle_i32x4::<0x88>(u[m], u[4 + m]);
            let v2 = _mm512_shuffle_i32x4::<0xDD>(u[m], u[4 + m]);
            let w = _mm512_shuffle_i32x4::<0x88>(u[8 + m], u[12 + m]);
            let w2 = _mm512_shuffle_i32x4::<0xDD>(u[8 + m], u[12 + m]);
            o[m] = _mm512_shuffle_i32x4::<0x88>(v, w);
            o[8 + m] = _mm512_shuffle_i32x4::<0xDD>(v, w);
            o[4 + m] = _mm512_shuffle_i32x4::<0x88>(v2, w2);
            o[12 + m] = _mm512_shuffle_i32x4::<0xDD>(v2, w2);
        }
        o
    }
}

/// Where [`block_columns`] reads: `mask`ed bytes from `offset` into each
/// row, rows `stride` apart.
pub(super) struct Rows<'a> {
    pub(super) rows: &'a [u8],
    pub(super) stride: usize,
    pub(super) offset: usize,
    pub(super) mask: u64,
}

impl<'a> Rows<'a> {
    /// Chunk `chunk` of rows `row_len` bytes long cut into chunks of
    /// `chunk_bytes` (at most 64): its bytes, masked where the row ends
    /// inside it.
    #[inline(always)]
    pub(super) fn chunk(
        rows: &'a [u8],
        stride: usize,
        row_len: usize,
        chunk_bytes: usize,
        chunk: usize,
    ) -> Self {
        let offset = chunk * chunk_bytes;
        Rows {
            rows,
            stride,
            offset,
            mask: values::byte_mask((row_len - offset).min(chunk_bytes)),
        }
    }
}

/// The `NB` blocks of 16 rows from row `16·blk0`, each transposed to 16
/// dword columns (column `k` lane `r` = dword `k` of row `r`). Prefetches the same bytes of
/// the rows 8 blocks on into L2: past the last-level cache the hardware
/// prefetchers alone leave the loop waiting on memory (1M rows: 8.5 ms,
/// with this 6.0–6.4 ms; 4 blocks on or into L1 is slower).
///
/// # Safety
/// AVX-512 F/BW are available; the masked bytes
/// of the `16·NB` rows lie inside `at.rows`.
#[inline(always)]
pub(super) unsafe fn block_columns<'c, const NB: usize>(
    at: &Rows<'_>,
    blk0: usize,
    cols: &'c mut Columns<NB>,
) -> &'c [[__m512i; 16]; NB] {
    if at.mask >> 32 == 0 {
        // SAFETY: forwarded.
        unsafe { block_columns_half::<NB>(at, blk0, cols) };
    } else {
        // SAFETY: forwarded.
        unsafe { block_columns_full::<NB>(at, blk0, cols) };
    }
    // SAFETY: both fill every entry of `cols`; MaybeUninit<T> has T's
    // layout.
    unsafe { &*(cols as *const Columns<NB>).cast::<[[__m512i; 16]; NB]>() }
}

/// Room for the columns of `NB` blocks, filled by [`block_columns`]: not
/// zeroed first (4 KB at NB = 4; zeroing it and copying the returned array
/// out took 7 % of a decode).
pub(super) type Columns<const NB: usize> = [[MaybeUninit<__m512i>; 16]; NB];

/// [`block_columns`] for chunks of more than 32 bytes: a full 16 × 16
/// transpose per block.
///
/// # Safety
/// As [`block_columns`].
#[inline(always)]
unsafe fn block_columns_full<const NB: usize>(at: &Rows<'_>, blk0: usize, cols: &mut Columns<NB>) {
    // SAFETY: the caller's promises; prefetches never fault.
    unsafe {
        for (nb, col) in cols.iter_mut().enumerate() {
            let mut r = [_mm512_setzero_si512(); 16];
            for (i, ri) in r.iter_mut().enumerate() {
                let from = ((blk0 + nb) * 16 + i) * at.stride + at.offset;
                crate::backend::prefetch_ahead(at.rows.as_ptr().wrapping_add(from), at.stride);
                *ri = _mm512_maskz_loadu_epi8(at.mask, at.rows.as_ptr().add(from).cast());
            }
            for (c, v) in col.iter_mut().zip(transpose16(&r)) {
                c.write(v);
            }
        }
    }
}

/// [`block_columns`] where each row's masked bytes are at most 32 (8
/// dwords; columns 8–15 are zero, as the masked loads would leave them):
/// rows `r` and `r + 8` share a register, `r` in the low half and `r + 8`
/// in the high half (two masked loads), and each half is transposed 8 × 8.
/// That is 24 shuffles for 16 rows, against 64 for the full transpose,
/// which a half-empty last chunk (d = 192 at 4 bits) or a short row (d ≤
/// 64 at 4 bits, every row at 1 bit) would otherwise pay.
///
/// # Safety
/// As [`block_columns`], with `at.mask < 2^32`.
#[inline(always)]
unsafe fn block_columns_half<const NB: usize>(at: &Rows<'_>, blk0: usize, cols: &mut Columns<NB>) {
    let base = at.rows.as_ptr();
    // SAFETY: the caller's promises: every unmasked byte lies in its row
    // (the high half's load starts 32 bytes before row `r + 8`'s chunk and
    // reads only the 32 bytes from it, masked loads never touch masked-off
    // bytes); prefetches never fault.
    unsafe {
        // Output qwords: [u_m lane h, u_{4+m} lane h, u_m lane 2+h,
        // u_{4+m} lane 2+h] (128-bit lanes) for column 4h + m.
        let pick = [
            _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13),
            _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15),
        ];
        for (nb, col) in cols.iter_mut().enumerate() {
            let at_row = |i: usize| ((blk0 + nb) * 16 + i) * at.stride + at.offset;
            let mut r = [_mm512_setzero_si512(); 8];
            for (i, ri) in r.iter_mut().enumerate() {
                let (lo, hi) = (at_row(i), at_row(i + 8));
                crate::backend::prefetch_ahead(base.wrapping_add(lo), at.stride);
                crate::backend::prefetch_ahead(base.wrapping_add(hi), at.stride);
                let low = _mm512_maskz_loadu_epi8(at.mask, base.add(lo).cast());
                *ri = _mm512_mask_loadu_epi8(
                    low,
                    at.mask << 32,
                    base.wrapping_add(hi).wrapping_sub(32).cast(),
                );
            }
            // u[4k + m], 128-bit lane L: dword 4(L mod 2) + m of rows
            // 4k … 4k + 3 (L < 2) or 8 + 4k … 8 + 4k + 3 (L ≥ 2).
            let u = transpose_quads(&r);
            for h in 0..2 {
                for m in 0..4 {
                    col[4 * h + m].write(_mm512_permutex2var_epi64(u[m], pick[h], u[4 + m]));
                }
            }
            for c in &mut col[8..] {
                c.write(_mm512_setzero_si512());
            }
        }
    }
}

/// `PERM[b][8k + j] = k·b + j`: gathers the `b` bytes of code group `k` (8
/// codes of `b` bits) into qword `k`.
const PERM: [[u8; 64]; 9] = {
    let mut t = [[0u8; 64]; 9];
    let mut b = 1;
    while b <= 8 {
        let mut i = 0;
        while i < 64 {
            t[b][i] = ((i / 8) * b + i % 8) as u8;
            i += 1;
        }
        b += 1;
    }
    t
};

/// Multishift control: byte `j` of every qword selects bits `j·b …`.
const fn shifts(b: u64) -> u64 {
    let mut v = 0u64;
    let mut j = 0;
    while j < 8 {
        v |= (j * b) << (8 * j);
        j += 1;
    }
    v
}

/// The two instructions that give each of 64 packed `b`-bit codes a byte
/// of its own: `vpermb` puts the `b` bytes of each group of 8 codes in a
/// qword of their own, `vpmultishiftqb` moves every code to the low bits
/// of its byte. The bits above a code are the next code's: a caller masks
/// them, or looks up a table that repeats with period `2^b`. One piece of
/// code for every kernel that unpacks in registers (scores, values, int8).
#[derive(Clone, Copy)]
pub(super) struct Spread {
    perm: __m512i,
    shift: __m512i,
}

impl Spread {
    /// The controls for `bits`-bit codes.
    ///
    /// # Safety
    /// AVX-512F is available; `bits ∈ 1..=8`.
    #[inline(always)]
    pub(super) unsafe fn new(bits: usize) -> Spread {
        // SAFETY: the load reads the 64 bytes of `PERM[bits]`.
        unsafe {
            Spread {
                perm: _mm512_loadu_si512(PERM[bits].as_ptr().cast()),
                shift: _mm512_set1_epi64(shifts(bits as u64) as i64),
            }
        }
    }

    /// Code `i` of the 64 packed in `data`'s first `8·b` bytes, in the low
    /// bits of byte `i`.
    ///
    /// # Safety
    /// AVX-512 F/BW/VBMI are available.
    #[inline(always)]
    pub(super) unsafe fn codes(self, data: __m512i) -> __m512i {
        // SAFETY: register operations only, on the caller's ISA.
        unsafe {
            _mm512_multishift_epi64_epi8(self.shift, _mm512_permutexvar_epi8(self.perm, data))
        }
    }
}

/// 64 codes unpacked with three instructions: `vpermb` puts each group's
/// bytes in its own qword, `vpmultishiftqb` moves every code to a byte of
/// its own, and a mask keeps its `b` bits; one 64-byte store.
///
/// # Safety
/// AVX-512 F/BW/VBMI are available; `packed.len() >= 8·bits`,
/// `out.len() >= 64`, `bits ∈ 1..=8`.
#[inline(always)]
unsafe fn unpack64(bits: u8, packed: &[u8], out: &mut [u8]) {
    let b = bits as usize;
    let bytes: u64 = if b == 8 {
        u64::MAX
    } else {
        (1u64 << (8 * b)) - 1
    };
    // SAFETY: the masked load touches only the first 8·b ≤ packed.len()
    // bytes (masked-off bytes are never accessed); PERM[b] is 64 bytes; the
    // store writes out[..64].
    unsafe {
        let data = _mm512_maskz_loadu_epi8(bytes, packed.as_ptr().cast());
        let fields = Spread::new(b).codes(data);
        let keep = _mm512_set1_epi8(((1u16 << b) - 1) as u8 as i8);
        _mm512_storeu_si512(out.as_mut_ptr().cast(), _mm512_and_si512(fields, keep));
    }
}

crate::backend::avx512_features!(simd::entry_points { F32x16 });
