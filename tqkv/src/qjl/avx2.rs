//! AVX2 QJL kernels: Hamming by nibble-table `vpshufb` popcount and
//! `vpsadbw` sums, for sketches and bit-planes alike (32 bytes at a time,
//! then a 16-byte step, then bytes); sign-masked f32 sums by expanding 8
//! bits to 8 lane masks.

use core::arch::x86_64::*;

use super::{Planes, SignSets};
use crate::vector::{F32x8, sign_mask};

/// Signed sums of whole blocks of 8 rows by the 4-bit key row blocks, as
/// the AVX-512 kernel does with 16 (see there): each four signs of a row
/// are a nibble picking one of 16 sums `±sq[4p] ± … ± sq[4p + 3]`, whose
/// lower half a register holds (the lookups mirror the upper). Returns the rows done (0 unless
/// [`nibble_sums_take`](super::nibble_sums_take) them). Within the
/// documented `1e-5 · Σ|sq|` of the scalar kernel.
///
/// # Safety
/// AVX2 and FMA are available; `rows` holds `out.len()` rows of `⌈m/8⌉`
/// bytes, `stride` apart.
#[inline(always)]
unsafe fn nibble_rows(sq: &[f32], rows: &[u8], stride: usize, out: &mut [f32]) -> usize {
    let m = sq.len();
    if !super::nibble_sums_take(sq, out.len(), 8) {
        return 0;
    }
    // The tables' lower halves (entries 0–7): the lookups mirror the upper.
    let mut table = [core::mem::MaybeUninit::<__m256>::uninit(); super::NIBBLE_MAX_SIGNS / 4];
    // SAFETY: AVX2 and FMA (caller), F32x8's ISA; lanes 0–7 of the sign
    // rows; `avx2_nibble_table_rows` gets the m/4 ≤ 64 entries written here and the caller's validated rows (⌈m/8⌉ =
    // ⌈(m/4)/2⌉ bytes each).
    unsafe {
        for (t, four) in table.iter_mut().zip(sq.as_chunks::<4>().0) {
            t.write(super::simd::nibble_sums::<F32x8>(four, 0).0);
        }
        let table = core::slice::from_raw_parts(table.as_ptr().cast::<__m256>(), m / 4);
        crate::codebook::avx2_nibble_table_rows(table, rows, stride, out)
    }
}

/// Popcount of 32 bytes, summed per 64-bit lane (nibble table).
///
/// # Safety
/// AVX2 is available.
#[inline(always)]
unsafe fn popcnt_lanes(v: __m256i) -> __m256i {
    // SAFETY: AVX2 is the caller's promise; registers only.
    unsafe {
        let table = _mm256_setr_epi8(
            0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2,
            3, 3, 4,
        );
        let low = _mm256_set1_epi8(0x0F);
        let lo = _mm256_shuffle_epi8(table, _mm256_and_si256(v, low));
        let hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16::<4>(v), low));
        _mm256_sad_epu8(_mm256_add_epi8(lo, hi), _mm256_setzero_si256())
    }
}

/// Popcount of 16 bytes, summed per 64-bit lane (nibble table).
///
/// # Safety
/// AVX2 is available.
#[inline(always)]
unsafe fn popcnt_lanes128(v: __m128i) -> __m128i {
    // SAFETY: AVX2 (so SSSE3) is the caller's promise; registers only.
    unsafe {
        let table = _mm_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
        let low = _mm_set1_epi8(0x0F);
        let lo = _mm_shuffle_epi8(table, _mm_and_si128(v, low));
        let hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16::<4>(v), low));
        _mm_sad_epu8(_mm_add_epi8(lo, hi), _mm_setzero_si128())
    }
}

crate::backend::avx2_features!(crate::backend::target_features {
    pub(super) unsafe fn hamming_simd(a: &[u8], b: &[u8]) -> u32 {
        let n = a.len().min(b.len());
        let mut i = 0;
        // SAFETY: AVX2 by this function's features; loads stay below n.
        let mut total = unsafe {
            let mut acc = _mm256_setzero_si256();
            while i + 32 <= n {
                let x = _mm256_loadu_si256(a.as_ptr().add(i).cast());
                let y = _mm256_loadu_si256(b.as_ptr().add(i).cast());
                acc = _mm256_add_epi64(acc, popcnt_lanes(_mm256_xor_si256(x, y)));
                i += 32;
            }
            // A 16-byte remainder (a 128-bit sketch, say) by the same
            // nibble table rather than byte by byte.
            let mut acc128 = _mm_add_epi64(
                _mm256_castsi256_si128(acc),
                _mm256_extracti128_si256::<1>(acc),
            );
            if i + 16 <= n {
                let x = _mm_loadu_si128(a.as_ptr().add(i).cast());
                let y = _mm_loadu_si128(b.as_ptr().add(i).cast());
                acc128 = _mm_add_epi64(acc128, popcnt_lanes128(_mm_xor_si128(x, y)));
                i += 16;
            }
            let mut lanes = [0u64; 2];
            _mm_storeu_si128(lanes.as_mut_ptr().cast(), acc128);
            (lanes[0] + lanes[1]) as u32
        };
        for (x, y) in a[i..n].iter().zip(&b[i..n]) {
            total += (x ^ y).count_ones();
        }
        total
    }

    pub(super) unsafe fn signed_sum_simd(sq: &[f32], signs: &[u8]) -> f32 {
        let n = sq.len();
        let mut j = 0;
        // SAFETY: AVX2 by this function's features; loads read sq[j..j + 8]
        // with j + 8 <= n, and signs[j/8] exists (the caller checked the length).
        let sum = unsafe {
            let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            while j + 16 <= n {
                for (k, acc) in [&mut acc0, &mut acc1].into_iter().enumerate() {
                    let at = j + 8 * k;
                    // Flip the sign where the bit is clear.
                    let flip = _mm256_castsi256_ps(sign_mask(!signs[at / 8]));
                    let x = _mm256_xor_ps(_mm256_loadu_ps(sq.as_ptr().add(at)), flip);
                    *acc = _mm256_add_ps(*acc, x);
                }
                j += 16;
            }
            let v = _mm256_add_ps(acc0, acc1);
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
        };
        super::scalar::signed_sum_from(sq, signs, j, sum)
    }

    /// `(|s|, Σ_p 2^p·|s ∧ plane_p|)` with nibble-table popcounts: four words
    /// per ymm, then two per xmm, then the POPCNT instruction for a last word.
    unsafe fn plane_counts_simd(signs: &[u8], planes: &[u64], words: usize, bits: usize) -> (u32, u64) {
        let mut w = 0;
        // SAFETY: AVX2 by this function's features. Sign loads read
        // signs[8w..8w + 32] (resp. + 16) with w + 4 <= words (resp. + 2), and
        // the caller passes 8·words bytes; plane loads read
        // planes[p·words + w..][..4] (resp. 2) inside plane p.
        let (mut ones, mut weighted) = unsafe {
            let (mut ones, mut weighted) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            while w + 4 <= words {
                let s = _mm256_loadu_si256(signs.as_ptr().add(8 * w).cast());
                ones = _mm256_add_epi64(ones, popcnt_lanes(s));
                for p in 0..bits {
                    let plane = _mm256_loadu_si256(planes.as_ptr().add(p * words + w).cast());
                    let c = popcnt_lanes(_mm256_and_si256(s, plane));
                    weighted =
                        _mm256_add_epi64(weighted, _mm256_sllv_epi64(c, _mm256_set1_epi64x(p as i64)));
                }
                w += 4;
            }
            let mut ones2 = _mm_add_epi64(
                _mm256_castsi256_si128(ones),
                _mm256_extracti128_si256::<1>(ones),
            );
            let mut weighted2 = _mm_add_epi64(
                _mm256_castsi256_si128(weighted),
                _mm256_extracti128_si256::<1>(weighted),
            );
            while w + 2 <= words {
                let s = _mm_loadu_si128(signs.as_ptr().add(8 * w).cast());
                ones2 = _mm_add_epi64(ones2, popcnt_lanes128(s));
                for p in 0..bits {
                    let plane = _mm_loadu_si128(planes.as_ptr().add(p * words + w).cast());
                    let c = popcnt_lanes128(_mm_and_si128(s, plane));
                    weighted2 = _mm_add_epi64(weighted2, _mm_sllv_epi64(c, _mm_set1_epi64x(p as i64)));
                }
                w += 2;
            }
            let mut o = [0u64; 2];
            let mut t = [0u64; 2];
            _mm_storeu_si128(o.as_mut_ptr().cast(), ones2);
            _mm_storeu_si128(t.as_mut_ptr().cast(), weighted2);
            ((o[0] + o[1]) as u32, t[0] + t[1])
        };
        if w < words {
            // The last odd word; plane p's copy sits at planes[p·words + w].
            let mut b = [0u8; 8];
            b.copy_from_slice(&signs[8 * w..8 * w + 8]);
            let s = u64::from_le_bytes(b);
            ones += s.count_ones();
            for p in 0..bits {
                weighted += ((s & planes[p * words + w]).count_ones() as u64) << p;
            }
        }
        (ones, weighted)
    }

    pub(super) unsafe fn plane_rows_simd(q: Planes<'_>, rows: &[u8], stride: usize, out: &mut [f32]) {
        // SAFETY: this function's target features are those of
        // `plane_counts_simd`; rows were validated by the caller.
        super::plane_rows_with(q, rows, stride, out, |s| unsafe {
            plane_counts_simd(s, q.planes, q.words, q.bits)
        })
    }

    pub(super) unsafe fn signed_rows_simd(sq: &[f32], rows: &[u8], stride: usize, out: &mut [f32]) {
        // SAFETY: this function's features include AVX2 and FMA; rows were
        // validated by the caller (every row's ⌈m/8⌉ bytes fit).
        let done = unsafe { nibble_rows(sq, rows, stride, out) };
        // SAFETY: this function's target features are those of
        // `signed_sum_simd`; rows were validated by the caller.
        super::signed_rows_with(sq, rows, stride, out, done, |q, s| unsafe {
            signed_sum_simd(q, s)
        })
    }

    pub(super) unsafe fn accumulate_signs_simd(rows: &[u8], stride: usize, weights: &[f32], acc: &mut [f32]) {
        let m = acc.len();
        let whole = m / 32 * 32;
        // Signs 32 at a time, every row for each: the sums stay in four
        // registers instead of being loaded and stored once per row (eight,
        // for 64 signs, left too few registers: two sums went through the
        // stack, their chains through store forwarding). Each sum adds the
        // same ±w in the same row order, so the bits are those of the
        // row-at-a-time loop below.
        // SAFETY: AVX2 by this function's features; acc[c..c + 32] with
        // c + 32 <= m; row r's bytes c/8 .. c/8 + 4 lie inside its ⌈m/8⌉
        // (the caller checked them).
        unsafe {
            // Each byte of signs picks its row of sign bits from a table
            // (`vector::sign_mask`), which flips −w to +w by an xor:
            // a load and two simple operations a register, where a shift
            // and an and moved each sign to the top bit (four; a `blendv`
            // is three micro-ops on Intel's large cores and eight,
            // microcoded, on its small ones).
            for c in (0..whole).step_by(32) {
                let mut sums = [_mm256_setzero_ps(); 4];
                for (k, v) in sums.iter_mut().enumerate() {
                    *v = _mm256_loadu_ps(acc.as_ptr().add(c + 8 * k));
                }
                for (r, &w) in weights.iter().enumerate() {
                    let at = rows.as_ptr().add(r * stride + c / 8);
                    // The first pass over the rows asks those ahead into L2.
                    if c == 0 {
                        crate::backend::prefetch_ahead(at, stride);
                    }
                    let bytes = at.cast::<[u8; 4]>().read_unaligned();
                    let minus = _mm256_set1_ps(-w);
                    for (v, byte) in sums.iter_mut().zip(bytes) {
                        let add = _mm256_xor_ps(minus, _mm256_castsi256_ps(sign_mask(byte)));
                        *v = _mm256_add_ps(*v, add);
                    }
                }
                for (k, v) in sums.iter().enumerate() {
                    _mm256_storeu_ps(acc.as_mut_ptr().add(c + 8 * k), *v);
                }
            }
        }
        for (r, &w) in weights.iter().enumerate() {
            let signs = &rows[r * stride..];
            let mut j = whole;
            // SAFETY: AVX2 by this function's features; acc[j..j + 8] with
            // j + 8 <= m; signs[j/8] exists (the caller checked ⌈m/8⌉ bytes).
            unsafe {
                let minus = _mm256_set1_ps(-w);
                while j + 8 <= m {
                    let add = _mm256_xor_ps(minus, _mm256_castsi256_ps(sign_mask(signs[j / 8])));
                    let at = acc.as_mut_ptr().add(j);
                    _mm256_storeu_ps(at, _mm256_add_ps(_mm256_loadu_ps(at), add));
                    j += 8;
                }
            }
            super::accumulate_signs_tail(signs, w, acc, j);
        }
    }
});

/// `acc[h·acc_stride + j] += Σ_r w[h·w_stride + r]·s_{r,j}` (`s = ±1` from
/// the sign bits, `m` of them a row) for `g ∈ 2..=4` weight sets over the
/// same `n` sketches: each row's 16 signs at a time become lanes of ∓1
/// once for every set, and each set subtracts `∓1·w` by one FMA (one
/// query head's kernel makes `±w` per head, two operations a register).
/// `1·w` is exact, so each FMA rounds `acc ± w` once, as
/// `accumulate_signs_simd`'s add does, in the same row order: the bits
/// are one head's at a time. No `blendv`: see `accumulate_signs_simd`. Returns
/// false (touching nothing) unless `backend` is AVX2, `g ∈ 2..=4` and the
/// sets fit ([`SignSets::fit`]: whole steps of 16 signs, inside their
/// buffers).
pub(crate) fn accumulate_signs_multi(
    backend: crate::backend::Checked,
    a: &SignSets<'_>,
    acc: &mut [f32],
    g: usize,
) -> bool {
    if !a.takes(backend, crate::Backend::Avx2, g, acc.len()) {
        return false;
    }
    // SAFETY: `Checked` proves the AVX2 feature list; the shape is one the
    // kernel takes, and the sets fit their buffers (checked above).
    unsafe {
        match g {
            2 => sign_sets_simd::<2>(a, acc),
            3 => sign_sets_simd::<3>(a, acc),
            _ => sign_sets_simd::<4>(a, acc),
        }
    }
    true
}

crate::backend::avx2_features!(crate::backend::target_features {
    /// [`accumulate_signs_multi`] for `G` weight sets.
    ///
    /// # Safety
    /// AVX2 is available; the shape is one [`accumulate_signs_multi`]
    /// accepts, and the sets fit their buffers.
    unsafe fn sign_sets_simd<const G: usize>(a: &SignSets<'_>, acc: &mut [f32]) {
        // SAFETY: AVX2 by this function's features. Row r's bytes c/8 and
        // c/8 + 1 lie inside its m/8 (c + 16 ≤ m), weight (h, r) inside the
        // h-th set's n, and acc[h·acc_stride + c .. + 16] inside the h-th
        // accumulator's m (the sets fit: the caller's promise).
        unsafe {
            let one = _mm256_set1_ps(1.0);
            for c in (0..a.m).step_by(16) {
                let mut sums = [[_mm256_setzero_ps(); 2]; G];
                for (h, s) in sums.iter_mut().enumerate() {
                    for (k, v) in s.iter_mut().enumerate() {
                        *v = _mm256_loadu_ps(acc.as_ptr().add(h * a.acc_stride + c + 8 * k));
                    }
                }
                for r in 0..a.n {
                    let at = a.signs.as_ptr().add(r * a.sign_stride + c / 8);
                    // −1 where the sign bit is set, +1 where clear: the
                    // byte's row of sign bits on the bits of 1.0.
                    let bytes = at.cast::<[u8; 2]>().read_unaligned();
                    let flip = bytes.map(|b| _mm256_xor_ps(one, _mm256_castsi256_ps(sign_mask(b))));
                    for (h, s) in sums.iter_mut().enumerate() {
                        let w = _mm256_set1_ps(*a.weights.get_unchecked(h * a.w_stride + r));
                        for (v, flip) in s.iter_mut().zip(flip) {
                            // acc − (∓1)·w: +w where the bit is set.
                            *v = _mm256_fnmadd_ps(flip, w, *v);
                        }
                    }
                }
                for (h, s) in sums.iter().enumerate() {
                    for (k, v) in s.iter().enumerate() {
                        _mm256_storeu_ps(acc.as_mut_ptr().add(h * a.acc_stride + c + 8 * k), *v);
                    }
                }
            }
        }
    }
});
