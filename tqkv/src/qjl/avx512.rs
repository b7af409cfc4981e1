//! AVX-512 QJL kernels: Hamming and bit-plane counts with VPOPCNTDQ on
//! 64-byte blocks (masked loads for tails); sign-masked f32 sums with the
//! sign bits as a mask register, or, for sketches back to back as the
//! cache keeps them, eight rows at a time through nibble tables (the
//! codebook's `sign_tables`, which the fused value kernels share).

use core::arch::x86_64::*;

use super::Planes;
use crate::codebook::{Queries, ScoreRows};
use crate::vector::F32x16;

/// Several whole sketches per zmm, for contiguous rows of 1, 2, 4 or 8
/// words: AND and popcount against every plane at once, add the words of
/// each row within the register, and combine in f64 — the same operations
/// as the scalar `combine` (no FMA), so the results are bit-identical.
/// Returns the rows done (a multiple of 8 / words).
///
/// # Safety
/// AVX-512 F/BW/DQ/VL/VPOPCNTDQ are available; `rows` holds `out.len()`
/// contiguous rows of `8·words` bytes; `words` is 1, 2, 4 or 8.
#[inline(always)]
unsafe fn packed_rows(q: Planes<'_>, rows: &[u8], out: &mut [f32]) -> usize {
    let w = q.words;
    let per = 8 / w; // rows per register
    let chunks = out.len() / per;
    // SAFETY: the caller's promises. Loads read 64 bytes at c·64 with
    // (c + 1)·per <= out.len() rows of 8·w bytes, i.e. inside `rows`; the
    // masked stores write `per` floats at out[c·per..].
    unsafe {
        let mut planes = [_mm512_setzero_si512(); 8];
        for (p, plane) in planes.iter_mut().enumerate().take(q.bits) {
            let mut lanes = [0u64; 8];
            for (k, lane) in lanes.iter_mut().enumerate() {
                *lane = q.planes[p * w + k % w];
            }
            *plane = _mm512_loadu_si512(lanes.as_ptr().cast());
        }
        let lo = _mm512_set1_pd(q.lo as f64);
        let step = _mm512_set1_pd(q.step as f64);
        let two = _mm512_set1_pd(2.0);
        let total = _mm512_set1_pd(q.total as f64);
        let firsts: u8 = match w {
            1 => 0xFF,
            2 => 0x55,
            4 => 0x11,
            _ => 0x01,
        };
        let keep = ((1u16 << per) - 1) as u8;
        for c in 0..chunks {
            let s = _mm512_loadu_si512(rows.as_ptr().add(64 * c).cast());
            let mut ones = _mm512_popcnt_epi64(s);
            let mut weighted = _mm512_setzero_si512();
            for (p, plane) in planes.iter().enumerate().take(q.bits) {
                let count = _mm512_popcnt_epi64(_mm512_and_si512(s, *plane));
                weighted = _mm512_add_epi64(
                    weighted,
                    _mm512_sllv_epi64(count, _mm512_set1_epi64(p as i64)),
                );
            }
            // Sum the words of each row into its first lane.
            if w >= 2 {
                ones = _mm512_add_epi64(ones, _mm512_shuffle_epi32::<0x4E>(ones));
                weighted = _mm512_add_epi64(weighted, _mm512_shuffle_epi32::<0x4E>(weighted));
            }
            if w >= 4 {
                ones = _mm512_add_epi64(ones, _mm512_permutex_epi64::<0x4E>(ones));
                weighted = _mm512_add_epi64(weighted, _mm512_permutex_epi64::<0x4E>(weighted));
            }
            if w >= 8 {
                ones = _mm512_add_epi64(ones, _mm512_shuffle_i64x2::<0x4E>(ones, ones));
                weighted =
                    _mm512_add_epi64(weighted, _mm512_shuffle_i64x2::<0x4E>(weighted, weighted));
            }
            let positive = _mm512_add_pd(
                _mm512_mul_pd(lo, _mm512_cvtepu64_pd(ones)),
                _mm512_mul_pd(step, _mm512_cvtepu64_pd(weighted)),
            );
            let value = _mm512_cvtpd_ps(_mm512_sub_pd(_mm512_mul_pd(two, positive), total));
            let packed = _mm256_maskz_compress_ps(firsts, value);
            _mm256_mask_storeu_ps(out.as_mut_ptr().add(c * per), keep, packed);
        }
        chunks * per
    }
}

/// Adds `±w` of every row to the `16·N` sums from `acc[base]`, `N`
/// registers held across all rows. `Σ ±w = 2·Σ_{bit set} w − Σ w`: one
/// masked add per 16 signs and row (the set bits straight from memory into
/// a mask register), and the total `Σ w` once at the end. This sums in
/// another order than the scalar kernel; the difference is bounded by a
/// few ulps of `Σ |w|`, which the tests allow.
///
/// # Safety
/// AVX-512 F is available; `base + 16·N <= acc.len()`; every row's first
/// `⌈acc.len()/8⌉` bytes fit in `rows` (`stride` apart, one per weight).
#[inline(always)]
unsafe fn sign_group<const N: usize>(
    rows: &[u8],
    stride: usize,
    weights: &[f32],
    acc: &mut [f32],
    base: usize,
) {
    // SAFETY: the caller's promises cover every load and store below; the
    // sign loads read 2 bytes at base/8 + 2k < base/8 + 2·N of each row.
    unsafe {
        let mut set = [_mm512_setzero_ps(); N];
        let mut total = _mm512_setzero_ps();
        let mut signs = rows.as_ptr().add(base / 8);
        for &w in weights {
            let wv = _mm512_set1_ps(w);
            total = _mm512_add_ps(total, wv);
            for (k, s) in set.iter_mut().enumerate() {
                let bits = core::ptr::read_unaligned(signs.add(2 * k).cast::<u16>());
                *s = _mm512_mask_add_ps(*s, bits, *s, wv);
            }
            signs = signs.wrapping_add(stride);
        }
        for (k, s) in set.iter().enumerate() {
            let at = acc.as_mut_ptr().add(base + 16 * k);
            let sum = _mm512_sub_ps(_mm512_add_ps(*s, *s), total);
            _mm512_storeu_ps(at, _mm512_add_ps(_mm512_loadu_ps(at), sum));
        }
    }
}

/// Signed sums of whole blocks of 16 rows by the 4-bit key row blocks:
/// every four signs of a row are a nibble, which picks one of the 16 sums
/// `±sq[4p] ± … ± sq[4p + 3]` held in register `p`; rows go 16 to a block,
/// one per lane, with no horizontal sum (a row of 128 signs costs 32
/// lookups and adds shared by 16 rows, against 8 sign flips, 8 adds and a
/// horizontal sum each). Returns the rows done (0 unless
/// [`nibble_sums_take`](super::nibble_sums_take) them). Sums in another
/// order than the scalar kernel: within the documented `1e-5 · Σ|sq|`.
///
/// # Safety
/// AVX-512 F/BW are available; `rows` holds `out.len()` rows of
/// `⌈m/8⌉` bytes, `stride` apart.
#[inline(always)]
unsafe fn nibble_rows(sq: &[f32], rows: &[u8], stride: usize, out: &mut [f32]) -> usize {
    let job = ScoreRows {
        q: Queries::one(sq),
        rows,
        stride,
        n: out.len(),
    };
    // SAFETY: the caller's promises, for a set of one query (m/4 ≤
    // NIBBLE_MAX_SIGNS tables whenever they are taken).
    unsafe { nibble_rows_multi::<1>(job, out, 0) }
}

/// Writes the 16 sums `±sq[4p] ± … ± sq[4p + 3]` of every nibble `p`
/// (entry `v`: `+` where bit `i` of `v` is set) into the first `m/4`
/// entries of `out`, `m = sq.len()` a multiple of 4.
///
/// # Safety
/// AVX-512F is available; `out` holds `m/4` entries.
#[inline(always)]
unsafe fn write_nibble_tables(sq: &[f32], out: &mut [core::mem::MaybeUninit<__m512>]) {
    for (t, four) in out.iter_mut().zip(sq.as_chunks::<4>().0) {
        // SAFETY: AVX-512F (caller), F32x16's ISA; all 16 lanes.
        t.write(unsafe { super::simd::nibble_sums::<F32x16>(four, 0) }.0);
    }
}

/// [`nibble_rows`] for the `G` queries of `job.q` in one pass over the rows
/// (each query's tables its own, so its sums are the ones it gets alone):
/// query `h`'s sums of the first `16·⌊n/16⌋` rows go to
/// `out[h·out_stride..]`. Returns the rows done (0 unless every query's
/// sums [`nibble_sums_take`](super::nibble_sums_take) them).
///
/// # Safety
/// AVX-512 F/BW are available; `G·m/4 ≤ NIBBLE_MAX_SIGNS`; the queries,
/// the `n` rows of `⌈m/8⌉` bytes `stride` apart and the sums lie inside
/// their buffers.
#[inline(always)]
unsafe fn nibble_rows_multi<const G: usize>(
    job: ScoreRows<'_>,
    out: &mut [f32],
    out_stride: usize,
) -> usize {
    let (q, n) = (job.q, job.n);
    let m = q.dim;
    let query = |h: usize| &q.values[h * q.stride..][..m];
    if !(0..G).all(|h| super::nibble_sums_take(query(h), n, 16)) {
        return 0;
    }
    let mut table = [core::mem::MaybeUninit::<__m512>::uninit(); super::NIBBLE_MAX_SIGNS];
    // SAFETY: AVX-512 (caller); query `h`'s m/4 tables go from h·m/4, all
    // below G·m/4 ≤ NIBBLE_MAX_SIGNS, and are then initialised.
    unsafe {
        for h in 0..G {
            write_nibble_tables(query(h), &mut table[h * m / 4..]);
        }
        let table = core::slice::from_raw_parts(table.as_ptr().cast::<__m512>(), G * m / 4);
        crate::codebook::avx512_nibble_table_rows_multi::<G>(
            table, job.rows, job.stride, n, out, out_stride,
        )
    }
}

crate::backend::avx512_features!(crate::backend::target_features {
    pub(super) unsafe fn hamming_simd(a: &[u8], b: &[u8]) -> u32 {
        let n = a.len().min(b.len());
        let mut i = 0;
        // SAFETY: AVX-512 F/BW/VPOPCNTDQ by this function's features; full loads
        // read a[i..i + 64] with i + 64 <= n, the masked tail only the first
        // n − i bytes (masked-off bytes are never touched).
        unsafe {
            let mut acc = _mm512_setzero_si512();
            while i + 64 <= n {
                let x = _mm512_loadu_si512(a.as_ptr().add(i).cast());
                let y = _mm512_loadu_si512(b.as_ptr().add(i).cast());
                acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(x, y)));
                i += 64;
            }
            if i < n {
                let mask = (1u64 << (n - i)) - 1;
                let x = _mm512_maskz_loadu_epi8(mask, a.as_ptr().add(i).cast());
                let y = _mm512_maskz_loadu_epi8(mask, b.as_ptr().add(i).cast());
                acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(x, y)));
            }
            _mm512_reduce_add_epi64(acc) as u32
        }
    }

    pub(super) unsafe fn signed_sum_simd(sq: &[f32], signs: &[u8]) -> f32 {
        let n = sq.len();
        let mut j = 0;
        // SAFETY: AVX-512 F/DQ by this function's features; loads read
        // sq[j..j + 16] with j + 16 <= n; signs[j/8 + 1] exists because the
        // caller checked ⌈n/8⌉ bytes.
        let sum = unsafe {
            let sign = _mm512_set1_ps(-0.0);
            let (mut acc0, mut acc1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
            while j + 32 <= n {
                for (k, acc) in [&mut acc0, &mut acc1].into_iter().enumerate() {
                    let at = j + 16 * k;
                    let bits = u16::from_le_bytes([signs[at / 8], signs[at / 8 + 1]]);
                    let x = _mm512_loadu_ps(sq.as_ptr().add(at));
                    // Flip the sign where the bit is clear.
                    let x = _mm512_mask_xor_ps(x, !bits, x, sign);
                    *acc = _mm512_add_ps(*acc, x);
                }
                j += 32;
            }
            _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
        };
        super::scalar::signed_sum_from(sq, signs, j, sum)
    }

    unsafe fn plane_counts_simd(signs: &[u8], planes: &[u64], words: usize, bits: usize) -> (u32, u64) {
        // SAFETY: AVX-512 F/BW/VPOPCNTDQ by this function's features. Sign
        // words are read from `signs` (8·words bytes, checked by the caller) and
        // plane words from `planes[p·words..(p + 1)·words]`, p < bits, with masked
        // loads past the last whole 8-word block.
        unsafe {
            let mut ones = _mm512_setzero_si512();
            let mut weighted = _mm512_setzero_si512();
            let mut w = 0;
            while w < words {
                let take = (words - w).min(8);
                let mask = if take == 8 {
                    0xFF
                } else {
                    ((1u16 << take) - 1) as u8
                };
                let s = _mm512_maskz_loadu_epi64(mask, signs.as_ptr().add(8 * w).cast());
                ones = _mm512_add_epi64(ones, _mm512_popcnt_epi64(s));
                for p in 0..bits {
                    let plane =
                        _mm512_maskz_loadu_epi64(mask, planes.as_ptr().add(p * words + w).cast());
                    let c = _mm512_popcnt_epi64(_mm512_and_si512(s, plane));
                    weighted =
                        _mm512_add_epi64(weighted, _mm512_sllv_epi64(c, _mm512_set1_epi64(p as i64)));
                }
                w += 8;
            }
            (
                _mm512_reduce_add_epi64(ones) as u32,
                _mm512_reduce_add_epi64(weighted) as u64,
            )
        }
    }

    pub(super) unsafe fn plane_rows_simd(q: Planes<'_>, rows: &[u8], stride: usize, out: &mut [f32]) {
        let bytes = 8 * q.words;
        let mut done = 0;
        if stride == bytes && matches!(q.words, 1 | 2 | 4 | 8) {
            // SAFETY: this function's target features; rows were validated.
            done = unsafe { packed_rows(q, rows, out) };
        }
        // SAFETY: this function's target features are those of
        // `plane_counts_simd`; rows were validated by the caller.
        super::plane_rows_with(
            q,
            &rows[done * stride..],
            stride,
            &mut out[done..],
            |s| unsafe { plane_counts_simd(s, q.planes, q.words, q.bits) },
        )
    }

    pub(super) unsafe fn signed_rows_simd(sq: &[f32], rows: &[u8], stride: usize, out: &mut [f32]) {
        // SAFETY: this function's features include AVX-512 F/BW; rows were
        // validated by the caller (every row's ⌈m/8⌉ bytes fit).
        let done = unsafe { nibble_rows(sq, rows, stride, out) };
        // SAFETY: this function's target features are those of
        // `signed_sum_simd`; rows were validated by the caller.
        super::signed_rows_with(sq, rows, stride, out, done, |q, s| unsafe {
            signed_sum_simd(q, s)
        })
    }

    /// `signed_rows_simd` for the queries of `q` over the same `n` rows,
    /// up to four in one pass (fewer where their tables would pass
    /// `NIBBLE_MAX_SIGNS`): query `h`'s sums to `out[h·out_stride..][..n]`,
    /// the bits it gets alone.
    pub(super) unsafe fn signed_rows_multi_simd(job: ScoreRows<'_>, out: &mut [f32], out_stride: usize) {
        let per_pass = (super::NIBBLE_MAX_SIGNS / job.q.dim.div_ceil(4).max(1)).clamp(1, 4);
        let (rows, stride) = (job.rows, job.stride);
        super::signed_rows_in_passes(
            job,
            out,
            out_stride,
            per_pass,
            // SAFETY: this function's features (AVX-512 F/BW) are the kernels';
            // the caller validated the queries, rows and sums; a pass's tables take
            // count·m/4 ≤ NIBBLE_MAX_SIGNS entries.
            |pass, o| unsafe {
                match pass.q.count {
                    1 => nibble_rows_multi::<1>(pass, o, out_stride),
                    2 => nibble_rows_multi::<2>(pass, o, out_stride),
                    3 => nibble_rows_multi::<3>(pass, o, out_stride),
                    _ => nibble_rows_multi::<4>(pass, o, out_stride),
                }
            },
            // SAFETY: as above, for one query's rows.
            |sq, o| unsafe { signed_rows_simd(sq, rows, stride, o) },
            // SAFETY: as above, for one row.
            |q, s| unsafe { signed_sum_simd(q, s) },
        );
    }

    pub(super) unsafe fn accumulate_signs_simd(rows: &[u8], stride: usize, weights: &[f32], acc: &mut [f32]) {
        // `sign_group` sums 2·Σset − Σw, which would turn a ±∞ weight into NaN
        // and could overflow where Σ ±w does not: such weights take the
        // reference kernel.
        if !super::weights_bounded(weights) {
            super::scalar::accumulate_signs_scalar(rows, stride, weights, acc);
            return;
        }
        let m = acc.len();
        if crate::codebook::avx512_sign_tables_take(m, stride) {
            // SAFETY: this function's features are the AVX-512 list; the
            // rows are back to back, `m/8` bytes each, one per weight
            // (validated by the caller).
            unsafe { crate::codebook::avx512_sign_tables(rows, weights, 1.0, acc) };
            return;
        }
        // Up to 256 sums at a time stay in registers while every row is added:
        // register counts are constants, so that the sums are not spilled to
        // the stack (a dynamic count would index an array in memory).
        let mut base = 0;
        while base + 256 <= m {
            // SAFETY: AVX-512 F by this function's features; the sums acc[base
            // .. base + 16·N] lie inside acc (the loop condition), and each
            // row's bytes base/8 .. base/8 + 2·N lie inside its ⌈m/8⌉ bytes
            // (checked by the caller).
            unsafe { sign_group::<16>(rows, stride, weights, acc, base) };
            base += 256;
        }
        for n in [8, 4, 2, 1] {
            if base + 16 * n <= m {
                // SAFETY: as above, with the condition of this branch.
                unsafe {
                    match n {
                        8 => sign_group::<8>(rows, stride, weights, acc, base),
                        4 => sign_group::<4>(rows, stride, weights, acc, base),
                        2 => sign_group::<2>(rows, stride, weights, acc, base),
                        _ => sign_group::<1>(rows, stride, weights, acc, base),
                    }
                }
                base += 16 * n;
            }
        }
        for (r, &w) in weights.iter().enumerate() {
            super::accumulate_signs_tail(&rows[r * stride..], w, acc, base);
        }
    }
});
