//! AVX2 + FMA + BMI2 codebook kernels: 8 lanes.
//!
//! Lookup: `vpermps` on one register for ≤ 3 bits, then for each further
//! bit twice the registers and a blend on that bit of the index: 2 and a
//! blend for 4 bits; at 5 and 6 bits the lookup of the lower half (2 and a
//! blend, 4 and 3) and a sign flip, the upper half being its mirror
//! ([`pick_mirrored`]; all 32 entries took 4 and 3 at 5 bits, and a
//! gather of 8 lanes measured slower); a gather for 7 and 8 bits. Rows of
//! 4- to 6-bit codes go 32 codes at a time from the centroids' byte planes
//! by `vpshufb` instead (`planes`), these lookups taking what is left.
//! Quantisation: a binary search over the thresholds, in registers for
//! ≤ 6 bits (one `vpermps`, one compare and two integer operations a step,
//! and blends on the levels of 16 and 32 probes; a compare per threshold
//! took twice the instructions at 4 bits, and a gather per step four times
//! the time at 5 and 6 bits), gathered above. Packing 64 codes of ≤ 6 bits: in
//! registers (`encode`); else `pext`/`pdep`.

use core::arch::x86_64::*;

use super::bmi;
use super::simd::{self, Lanes};
use crate::vector::F32x8;

mod encode;
pub(in crate::codebook) mod int8;
mod planes;
mod rows;
mod wide;

pub(crate) use rows::nibble_table_rows;
use rows::{Groups, Narrow};
pub(super) use rows::{accumulate_groups, row_blocks};
pub(super) use wide::dot_rows_multi as dot_rows_multi_wide;

pub(super) struct Lut8<'a> {
    /// Centroids 8k … 8k + 7 in register k (up to 6 bits; zeros past the
    /// codebook).
    t: [__m256; 8],
    /// The centroids, for the gathers past 6 bits.
    centroids: &'a [f32],
    bits: u8,
}

pub(super) struct Thr8<'a> {
    /// For ≤ 6 bits, the levels of the search (see
    /// [`Codebook::search_order`](super::Codebook::search_order)): level 0's
    /// probe in every lane of register 0, level `l ∈ 1..=2` in lanes
    /// `0 … 2^l − 1` of both 128-bit halves of register `l` (an in-lane
    /// permute picks them), level 3 in lanes `0 … 7` of register 3, level 4
    /// in registers 4–5 and level 5 in registers 6–9, eight probes a
    /// register.
    levels: [__m256; 10],
    /// The thresholds, for the searches past 6 bits.
    thresholds: &'a [f32],
    bits: u8,
}

/// The first register of each level of the search in [`Thr8::levels`].
const LEVEL_AT: [usize; 6] = [0, 1, 2, 3, 4, 6];

/// The sums of the 8 lanes of each of four registers, in one register
/// (the several queries' scores of a row: they keep no documented order):
/// pairs of registers interleaved and added twice, then the halves (11
/// operations, where four sums one at a time took 24).
///
/// # Safety
/// AVX is available.
#[inline(always)]
pub(super) unsafe fn lane_sums(a: [__m256; 4]) -> __m128 {
    // SAFETY: AVX (caller); registers only.
    unsafe {
        // Lanes (per 128-bit half) a0₀+a0₂, a1₀+a1₂, a0₁+a0₃, a1₁+a1₃.
        let s01 = _mm256_add_ps(
            _mm256_unpacklo_ps(a[0], a[1]),
            _mm256_unpackhi_ps(a[0], a[1]),
        );
        let s23 = _mm256_add_ps(
            _mm256_unpacklo_ps(a[2], a[3]),
            _mm256_unpackhi_ps(a[2], a[3]),
        );
        let lo = _mm256_castpd_ps(_mm256_unpacklo_pd(
            _mm256_castps_pd(s01),
            _mm256_castps_pd(s23),
        ));
        let hi = _mm256_castpd_ps(_mm256_unpackhi_pd(
            _mm256_castps_pd(s01),
            _mm256_castps_pd(s23),
        ));
        let s = _mm256_add_ps(lo, hi);
        _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s))
    }
}

/// The sums of the 8 lanes of each of four registers, in one register,
/// each in `F32x8::sum`'s order (`t_i = l_i + l_{i+4}`, then `(t_0 +
/// t_2) + (t_1 + t_3)`), so the same bits: the halves of two registers
/// paired and added, the pairs interleaved and added, then the lanes'
/// neighbours (14 operations for the four).
///
/// # Safety
/// AVX is available.
#[inline(always)]
pub(super) unsafe fn ordered_sums(a: [__m256; 4]) -> __m128 {
    // SAFETY: AVX (caller); registers only.
    unsafe {
        // t of a[0] | t of a[1], and of a[2] | a[3].
        let ab = _mm256_add_ps(
            _mm256_permute2f128_ps::<0x20>(a[0], a[1]),
            _mm256_permute2f128_ps::<0x31>(a[0], a[1]),
        );
        let cd = _mm256_add_ps(
            _mm256_permute2f128_ps::<0x20>(a[2], a[3]),
            _mm256_permute2f128_ps::<0x31>(a[2], a[3]),
        );
        // t₀ + t₂, t₁ + t₃ of a[0], then of a[2] | the same of a[1], a[3].
        let u = _mm256_add_ps(
            _mm256_castpd_ps(_mm256_unpacklo_pd(
                _mm256_castps_pd(ab),
                _mm256_castps_pd(cd),
            )),
            _mm256_castpd_ps(_mm256_unpackhi_pd(
                _mm256_castps_pd(ab),
                _mm256_castps_pd(cd),
            )),
        );
        // a[0], a[2], a[0], a[2] | a[1], a[3], a[1], a[3].
        let s = _mm256_add_ps(
            _mm256_shuffle_ps::<0b10_00_10_00>(u, u),
            _mm256_shuffle_ps::<0b11_01_11_01>(u, u),
        );
        _mm_unpacklo_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s))
    }
}

/// Row `r`'s scores of `G ≤ 4` queries, the lane sums of `sums` ([`lane_sums`]),
/// stored at `out[h·out_stride + r]`.
///
/// # Safety
/// AVX is available; `G ≤ 4`; `(G − 1)·out_stride + r < out.len()`.
#[inline(always)]
pub(super) unsafe fn put_row_scores<const G: usize>(
    sums: &[__m256; G],
    out: &mut [f32],
    out_stride: usize,
    r: usize,
) {
    // SAFETY: AVX (caller); the stores below `out.len()` (caller).
    unsafe {
        let mut four = [_mm256_setzero_ps(); 4];
        four[..G].copy_from_slice(sums);
        let mut lanes = [0.0f32; 4];
        _mm_storeu_ps(lanes.as_mut_ptr(), lane_sums(four));
        for (h, s) in lanes.iter().enumerate().take(G) {
            *out.get_unchecked_mut(h * out_stride + r) = *s;
        }
    }
}

/// `values[at … at + 7]` in lanes 0–7, zeros past the end: a masked load
/// straight from the codebook (a table built on the stack and reloaded
/// whole would stall on store forwarding).
///
/// # Safety
/// AVX2 is available.
#[inline(always)]
unsafe fn lanes_from(values: &[f32], at: usize) -> __m256 {
    let n = values.len().saturating_sub(at).min(8) as i32;
    // SAFETY: the masked load reads only lanes below `n`, the values
    // `at … at + n − 1`, inside `values`; masked-off lanes do not fault.
    unsafe {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lanes);
        _mm256_maskload_ps(values.as_ptr().wrapping_add(at), mask)
    }
}

/// `#{j : x > t[j]}` per lane for a `BITS`-bit codebook (`BITS ≤ 6`): a
/// binary search down the levels of [`Thr8::levels`], where `c`, the node
/// reached so far, picks the next probe straight from its level's
/// registers (a `vpermilps` within each 128-bit half up to four probes,
/// a `vpermps` for eight, plus blends on its bits 3 and up past eight
/// probes: `vpermps`, across the halves, is the costly shuffle on Zen 3
/// and port 5's alone on Intel's cores); the compare's mask `gt` (−1 or
/// 0) gives the next node `c = 2c − gt`, and the node below the last
/// level is the index. It
/// equals the count because the thresholds are sorted; NaN compares false
/// and gets 0.
///
/// # Safety
/// AVX2 is available.
#[inline(always)]
unsafe fn search<const BITS: u32>(thr: &Thr8<'_>, x: __m256) -> __m256i {
    // SAFETY: register operations only, on the caller's ISA.
    unsafe {
        // Spelled out level by level: as a loop over the levels, the
        // levels stayed on the stack and the loop was not unrolled.
        let l = &thr.levels;
        let mut c = descend(x, l[0], _mm256_setzero_si256());
        if BITS > 1 {
            c = descend(x, _mm256_permutevar_ps(l[1], c), c);
        }
        if BITS > 2 {
            c = descend(x, _mm256_permutevar_ps(l[2], c), c);
        }
        if BITS > 3 {
            c = descend(x, _mm256_permutevar8x32_ps(l[3], c), c);
        }
        if BITS > 4 {
            c = descend(x, pick::<2>(&l[LEVEL_AT[4]..], c), c);
        }
        if BITS > 5 {
            c = descend(x, pick::<4>(&l[LEVEL_AT[5]..], c), c);
        }
        c
    }
}

/// One level of [`search`]: from node `c`, on to `2c + 1` where `x > t`,
/// else `2c`.
///
/// # Safety
/// AVX2 is available.
#[inline(always)]
unsafe fn descend(x: __m256, t: __m256, c: __m256i) -> __m256i {
    // SAFETY: register operations only, on the caller's ISA.
    unsafe {
        let gt = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GT_OQ>(x, t));
        _mm256_sub_epi32(_mm256_add_epi32(c, c), gt)
    }
}

// SAFETY: every method uses AVX, AVX2, FMA or BMI2 instructions only, which
// the trait's contract makes the caller check. Pointer accesses: load/store
// touch 8 f32, widen reads 8 bytes, narrow writes 8 bytes, as documented;
// the gathers read `centroids`/`thresholds` at indices below 2^bits (resp.
// 2^bits − 1), inside the codebook's arrays.
unsafe impl Lanes for F32x8 {
    type Idx = __m256i;
    type Lut<'a> = Lut8<'a>;
    type Thr<'a> = Thr8<'a>;

    #[inline(always)]
    unsafe fn lut(cb: &super::Codebook) -> Lut8<'_> {
        let c = cb.centroids();
        let used = c.len().min(64);
        // SAFETY: AVX2 is available (trait contract); `lanes_from` reads
        // only the centroids.
        unsafe {
            let mut t = [_mm256_setzero_ps(); 8];
            for (k, tk) in t.iter_mut().enumerate().take(used.div_ceil(8)) {
                *tk = lanes_from(c, 8 * k);
            }
            Lut8 {
                t,
                centroids: c,
                bits: cb.bits(),
            }
        }
    }

    #[inline(always)]
    unsafe fn thr(cb: &super::Codebook) -> Thr8<'_> {
        let bits = cb.bits();
        // SAFETY: AVX2 is available (trait contract); the width is checked,
        // and 10 registers hold the levels of 6 bits.
        let levels = unsafe {
            let mut levels = [_mm256_setzero_ps(); 10];
            if (1..=super::SEARCH_BITS).contains(&bits) {
                simd::search_levels::<F32x8>(cb, |reg, v| levels[reg] = v.0);
            }
            for level in &mut levels[1..3] {
                *level = _mm256_permute2f128_ps::<0x00>(*level, *level);
            }
            levels
        };
        Thr8 {
            levels,
            thresholds: cb.thresholds(),
            bits,
        }
    }

    #[inline(always)]
    unsafe fn widen(p: *const u8) -> __m256i {
        // SAFETY: 8 readable bytes at p (caller); AVX2 available.
        unsafe { _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast())) }
    }

    #[inline(always)]
    unsafe fn narrow(i: __m256i, p: *mut u8) {
        // SAFETY: AVX2 available; 8 writable bytes at p (caller). Lanes are
        // below 256, so the saturating packs keep them unchanged.
        unsafe {
            let w = _mm256_packs_epi32(i, i); // [i0..i3 i0..i3 | i4..i7 i4..i7] as i16
            let b = _mm256_packus_epi16(w, w); // bytes, lanes 0..3 then 4..7 per half
            let lo = _mm_cvtsi128_si32(_mm256_castsi256_si128(b)) as u32 as u64;
            let hi = _mm_cvtsi128_si32(_mm256_extracti128_si256::<1>(b)) as u32 as u64;
            p.cast::<[u8; 8]>()
                .write_unaligned((lo | hi << 32).to_le_bytes());
        }
    }

    #[inline(always)]
    unsafe fn lookup(lut: &Lut8<'_>, i: __m256i) -> Self {
        // SAFETY: forwarded from the caller.
        unsafe {
            match lut.bits {
                1..=3 => Self::lookup_bits::<3>(lut, i),
                4 => Self::lookup_bits::<4>(lut, i),
                5 => Self::lookup_bits::<5>(lut, i),
                6 => Self::lookup_bits::<6>(lut, i),
                _ => Self::lookup_bits::<8>(lut, i),
            }
        }
    }

    #[inline(always)]
    unsafe fn lookup_bits<const B: u8>(lut: &Lut8<'_>, i: __m256i) -> Self {
        // SAFETY: AVX2 available; the gather reads centroids[i] with every
        // lane below 2^bits (caller), inside the codebook's array.
        unsafe {
            F32x8(match B {
                1..=3 => _mm256_permutevar8x32_ps(lut.t[0], i),
                4 => pick::<2>(&lut.t, i),
                5 => pick_mirrored::<5, 2>(&lut.t, i),
                6 => pick_mirrored::<6, 4>(&lut.t, i),
                _ => _mm256_i32gather_ps::<4>(lut.centroids.as_ptr(), i),
            })
        }
    }

    #[inline(always)]
    unsafe fn quantize(thr: &Thr8<'_>, x: Self) -> __m256i {
        // SAFETY: AVX2 available; `search` reads registers only; the gathers
        // read thresholds[idx + step − 1] ≤ thresholds[2^bits − 2], inside
        // the codebook's array.
        unsafe {
            if thr.bits <= super::SEARCH_BITS {
                match thr.bits {
                    1 => search::<1>(thr, x.0),
                    2 => search::<2>(thr, x.0),
                    3 => search::<3>(thr, x.0),
                    4 => search::<4>(thr, x.0),
                    5 => search::<5>(thr, x.0),
                    _ => search::<6>(thr, x.0),
                }
            } else {
                let mut idx = _mm256_setzero_si256();
                let mut step = 1i32 << (thr.bits - 1);
                while step > 0 {
                    let probe = _mm256_add_epi32(idx, _mm256_set1_epi32(step - 1));
                    let t = _mm256_i32gather_ps::<4>(thr.thresholds.as_ptr(), probe);
                    let gt = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GT_OQ>(x.0, t));
                    idx = _mm256_add_epi32(idx, _mm256_and_si256(gt, _mm256_set1_epi32(step)));
                    step >>= 1;
                }
                idx
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
        // SAFETY: AVX2 and FMA are available (trait contract); the arguments
        // were validated by `dot_rows_on`.
        unsafe {
            if planes::plane_key_rows(cb, q, rows, stride, out) {
                out.len()
            } else if cb.bits() > 4 {
                wide::dot_rows_wide(cb, q, rows, stride, out)
            } else {
                row_blocks(cb, q, rows, stride, out)
            }
        }
    }

    #[inline(always)]
    unsafe fn dot_one(cb: &super::Codebook, q: &[f32], packed: &[u8]) -> Option<f32> {
        let mut score = [0.0f32];
        // SAFETY: AVX2 and FMA are available (trait contract); one row of
        // `packed.len()` bytes, validated by `dot_on`.
        let scored = unsafe { planes::plane_key_rows(cb, q, packed, packed.len(), &mut score) };
        scored.then_some(score[0])
    }

    #[inline(always)]
    unsafe fn accumulate_rows_whole(
        cb: &super::Codebook,
        rows: &[u8],
        stride: usize,
        weights: &[f32],
        out: &mut [f32],
    ) -> bool {
        // SAFETY: AVX2 and FMA are available (trait contract); the
        // arguments were validated by `accumulate_rows_on`.
        unsafe { rows::accumulate_groups(cb, rows, stride, weights, out) }
    }

    const PACK64_BITS: u8 = 6;

    #[inline(always)]
    unsafe fn pack64<const BITS: u32>(
        thr: &Thr8<'_>,
        x: &[f32; 64],
        out: &mut [u8],
        centroids: Option<(&Lut8<'_>, &mut [f32; 64])>,
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
        // SAFETY: BMI2 available (trait contract); arguments forwarded.
        unsafe { bmi::unpack(bits, packed, out) }
    }
}

/// `t[i >> 3][i & 7]` per lane for indices below `8·N` (`N` = 2, 4 or 8;
/// `t` holds at least `N` registers, and the index bits above bit
/// `log2(8·N) − 1` are ignored): a `vpermps` (which reads the low 3 bits)
/// in each register, then pairs merged by `blendv` on bits 3, 4 and 5 of
/// the index moved to the sign bit.
///
/// # Safety
/// AVX2 is available.
#[inline(always)]
unsafe fn pick<const N: usize>(t: &[__m256], i: __m256i) -> __m256 {
    // SAFETY: AVX2 is the caller's promise; registers only.
    unsafe {
        let mut v = [_mm256_setzero_ps(); N];
        for (vk, tk) in v.iter_mut().zip(t) {
            *vk = _mm256_permutevar8x32_ps(*tk, i);
        }
        let mut n = N;
        let mut bit = 3;
        while n > 1 {
            let sel = _mm256_castsi256_ps(_mm256_sll_epi32(i, _mm_cvtsi32_si128(31 - bit)));
            for k in 0..n / 2 {
                v[k] = _mm256_blendv_ps(v[2 * k], v[2 * k + 1], sel);
            }
            n /= 2;
            bit += 1;
        }
        v[0]
    }
}

/// `t[i]` for `B`-bit codes `i` (`B` = 5 or 6, bits above ignored) from
/// the lower half of the centroids alone, `t[0..N]` with `N = 2^B / 16`:
/// the upper half of a codebook is the mirror of the lower
/// (`c[2^B − 1 − k] = −c[k]` exactly, as `Codebook` builds it), so a code
/// with bit `B − 1` set looks up `k ⊕ (2^(B−1) − 1)` in the lower half and
/// negates it (a sign flip is exact). The lookup reads only the index's
/// low `B − 1` bits, so flipping every bit of the lane flips those, with
/// no mask. At 6 bits four permutes, three blends and five other
/// operations, where all 64 entries take eight permutes and seven blends;
/// at 5 bits two permutes and a blend where all 32 take four and three:
/// fewer operations on the shuffle pipes, which the lookups share. (At 4
/// bits one permute and the five operations measured slower than two
/// permutes and a blend.)
///
/// # Safety
/// AVX2 is available.
#[inline(always)]
unsafe fn pick_mirrored<const B: u32, const N: usize>(t: &[__m256], i: __m256i) -> __m256 {
    const { assert!((B == 5 || B == 6) && N == 1 << (B - 4)) };
    // SAFETY: AVX2 is the caller's promise; registers only.
    unsafe {
        // Bit B − 1 in the sign bit (a shift by an immediate), then spread
        // over the lane.
        let upper = match B {
            5 => _mm256_slli_epi32::<27>(i),
            _ => _mm256_slli_epi32::<26>(i),
        };
        let spread = _mm256_srai_epi32::<31>(upper);
        let mirror = _mm256_xor_si256(i, spread);
        let c = pick::<N>(t, mirror);
        let sign = _mm256_and_si256(upper, _mm256_set1_epi32(i32::MIN));
        _mm256_xor_ps(c, _mm256_castsi256_ps(sign))
    }
}

/// `out[h·out_stride + j] += Σ_r weights[h·w_stride + r]·c[idx_{r,j}]` for
/// `g ≤ 4` weight sets over the same `n` rows of `B ≤ 6` bits, `d` a
/// multiple of 8: each group of 8 codes is loaded and looked up once for
/// every set, then one FMA per set. Coordinates go `8·⌊8/g⌋` at a time so
/// the sums stay in registers. Each sum takes the FMAs of the one-set
/// kernel in the same row order, so the bits equal `g` calls of it.
/// Returns false (touching nothing) for other shapes or backends, and for
/// buffers that do not hold the shape
/// ([`WeightedCodes::fit`](super::WeightedCodes::fit)).
pub(super) fn accumulate_rows_multi(
    backend: crate::backend::Checked,
    cb: &super::Codebook,
    a: &super::WeightedCodes<'_>,
    out: &mut [f32],
    g: usize,
) -> bool {
    if !a.takes(backend, crate::Backend::Avx2, 6, cb, g, out.len()) {
        return false;
    }
    let b = cb.bits();
    // SAFETY: `Checked` proves the AVX2 feature list; the shape is one the
    // kernel takes, and the buffers hold it (checked above).
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
            (4, 2) => multi_simd::<4, 2, 4>(cb, a, out),
            (4, 3) => multi_simd::<4, 3, 2>(cb, a, out),
            (4, _) => multi_simd::<4, 4, 2>(cb, a, out),
            // The wide lookups hold six registers: fewer sums at a time.
            (5, 2) => multi_simd::<5, 2, 2>(cb, a, out),
            (5, 3) => multi_simd::<5, 3, 1>(cb, a, out),
            (5, _) => multi_simd::<5, 4, 1>(cb, a, out),
            (_, 2) => multi_simd::<6, 2, 2>(cb, a, out),
            (_, 3) => multi_simd::<6, 3, 1>(cb, a, out),
            _ => multi_simd::<6, 4, 1>(cb, a, out),
        }
    }
    true
}

crate::backend::avx2_features!(crate::backend::target_features {
    /// [`multi_groups`] compiled with the AVX2 feature list.
    ///
    /// # Safety
    /// As [`accumulate_rows_multi`], with AVX2 available and the shape
    /// accepted.
    unsafe fn multi_simd<const B: usize, const G: usize, const NG: usize>(
        cb: &super::Codebook,
        a: &super::WeightedCodes<'_>,
        out: &mut [f32],
    ) {
        // SAFETY: forwarded from the caller; the width picks its lookup.
        unsafe {
            match B {
                4 => planes_then_multi::<planes::Planes, B, G, NG>(cb, a, out),
                5 | 6 => planes_then_multi::<planes::MirrorPlanes<B>, B, G, NG>(cb, a, out),
                _ => multi_groups::<_, B, G, NG>(&Narrow::<B>::new(cb), a, out),
            }
        }
    }
});

/// [`accumulate_rows_multi`] at `B` bits (4, 5 or 6): 32 coordinates at a
/// time from the byte planes for one or two sets, 16 for more
/// (`planes::plane_values`), then the rest `NG` groups of 8 at a time by
/// `L::Rest`.
///
/// # Safety
/// As [`accumulate_rows_multi`], with AVX2 and FMA available, the shape
/// accepted, and `cb.bits() == B == L::BITS`.
#[inline(always)]
unsafe fn planes_then_multi<
    L: planes::PlaneLookup,
    const B: usize,
    const G: usize,
    const NG: usize,
>(
    cb: &super::Codebook,
    a: &super::WeightedCodes<'_>,
    out: &mut [f32],
) {
    debug_assert_eq!(L::BITS, B);
    // SAFETY: forwarded from the caller; the rest's rows start `done`
    // coordinates (`done·B/8` bytes, `done` a multiple of 16) into each row.
    unsafe {
        let done = match G {
            1 | 2 => planes::plane_values::<L, G, 4>(cb, a, out),
            _ => planes::plane_values::<L, G, 2>(cb, a, out),
        };
        if done < a.d {
            let rest = super::WeightedCodes {
                rows: a.rows.get(done * B / 8..).unwrap_or(&[]),
                d: a.d - done,
                ..*a
            };
            multi_groups::<_, B, G, NG>(&L::rest(cb), &rest, &mut out[done..])
        }
    }
}

/// [`accumulate_rows_multi`] for `G` sets, `NG` groups of 8 coordinates
/// at a time (`G·NG ≤ 8` sums in registers).
///
/// # Safety
/// As [`accumulate_rows_multi`], with AVX2 and FMA available and the shape
/// accepted.
#[inline(always)]
unsafe fn multi_groups<K: Groups, const B: usize, const G: usize, const NG: usize>(
    k: &K,
    a: &super::WeightedCodes<'_>,
    out: &mut [f32],
) {
    // SAFETY: AVX2 and FMA are the caller's promise. Group loads read row
    // r's bytes (r < n) in place below `direct`, else inside `rows`;
    // weights[h·w_stride + r] with h < G, r < n; out's groups of each set,
    // inside its d values.
    unsafe {
        let groups = a.d / 8;
        let mut g0 = 0;
        while g0 < groups {
            let here = (groups - g0).min(NG);
            let mut acc = [[_mm256_setzero_ps(); NG]; G];
            for (h, acc) in acc.iter_mut().enumerate() {
                for (k, v) in acc.iter_mut().enumerate().take(here) {
                    *v = _mm256_loadu_ps(out.as_ptr().add(h * a.out_stride + 8 * (g0 + k)));
                }
            }
            // Rows whose `here` group dwords lie in `rows` are read in place.
            let last = g0 * B + (here - 1) * B;
            let direct = super::pack::rows_within(a.rows.len(), a.stride, last + K::READ, a.n);
            for r in 0..a.n {
                let row = r * a.stride + g0 * B;
                let mut c = [_mm256_setzero_ps(); NG];
                for (i, ck) in c.iter_mut().enumerate().take(here) {
                    *ck = if r < direct {
                        k.centroids_at::<true>(a.rows, row + i * B)
                    } else {
                        k.centroids_at::<false>(a.rows, row + i * B)
                    };
                }
                for (h, acc) in acc.iter_mut().enumerate() {
                    let w = _mm256_set1_ps(*a.weights.get_unchecked(h * a.w_stride + r));
                    for (v, ck) in acc.iter_mut().zip(&c).take(here) {
                        *v = _mm256_fmadd_ps(*ck, w, *v);
                    }
                }
            }
            for (h, acc) in acc.iter().enumerate() {
                for (k, v) in acc.iter().enumerate().take(here) {
                    _mm256_storeu_ps(out.as_mut_ptr().add(h * a.out_stride + 8 * (g0 + k)), *v);
                }
            }
            g0 += here;
        }
    }
}

crate::backend::avx2_features!(simd::entry_points { F32x8 });
