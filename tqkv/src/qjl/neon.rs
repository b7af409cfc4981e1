//! NEON QJL kernels: Hamming with `cnt` on 16-byte blocks; sign-masked f32
//! sums by testing 4 bits at a time into lane masks, and for blocks of four
//! rows by the 4-bit key row blocks with a table per four signs; bit-plane
//! counts with `count_ones` (which is `cnt` on aarch64).

use core::arch::aarch64::*;

use super::Planes;
use crate::codebook::{Queries, ScoreRows};
use crate::vector::{F32Vector, F32x4};

/// Writes the 16 sums `±sq[4p] ± … ± sq[4p + 3]` of every nibble `p`
/// (entry `v`: `+` where bit `i` of `v` is set), `m = sq.len()` a multiple
/// of 4 up to `NIBBLE_MAX_SIGNS`, by `write(p, sums)`.
///
/// # Safety
/// NEON is available.
#[inline(always)]
unsafe fn nibble_tables(sq: &[f32], mut write: impl FnMut(usize, [f32; 16])) {
    for (p, four) in sq.as_chunks::<4>().0.iter().enumerate() {
        let mut sums = [0.0f32; 16];
        for (quarter, chunk) in sums.chunks_exact_mut(4).enumerate() {
            // SAFETY: NEON (caller), F32x4's ISA; lanes 4·quarter … + 3 < 16
            // of the sign rows, stored to the 4 floats of `chunk`.
            unsafe {
                super::simd::nibble_sums::<F32x4>(four, 4 * quarter).store(chunk.as_mut_ptr())
            };
        }
        write(p, sums);
    }
}

/// Signed sums of whole blocks of 4 rows by the 4-bit key row blocks, as
/// the x86 kernels do, for the `G` queries of `job.q` in one pass over the
/// rows: each four signs of a row are a nibble picking one of 16 sums
/// `±sq[4p] ± … ± sq[4p + 3]`, a query's own table, so each query's sums
/// are the ones it gets alone. Query `h`'s sums of the first `4·⌊n/4⌋`
/// rows go to `out[h·out_stride..]`. Returns the rows done (0 unless every
/// query's sums [`nibble_sums_take`](super::nibble_sums_take) them).
/// Within the documented `1e-5 · Σ|sq|` of the scalar kernel.
///
/// # Safety
/// NEON is available; `G ≤ 4`; the queries, the `n` rows of `⌈m/8⌉` bytes
/// `stride` apart and the sums lie inside their buffers.
#[inline(always)]
unsafe fn nibble_rows<const G: usize>(
    job: ScoreRows<'_>,
    out: &mut [f32],
    out_stride: usize,
) -> usize {
    let (q, n) = (job.q, job.n);
    let m = q.dim;
    let query = |h: usize| &q.values[h * q.stride..][..m];
    if !(0..G).all(|h| super::nibble_sums_take(query(h), n, 4)) {
        return 0;
    }
    // Query h's table p goes to p·G + h: a nibble's G tables side by side.
    let mut table = [core::mem::MaybeUninit::<[f32; 16]>::uninit(); super::NIBBLE_MAX_SIGNS];
    // SAFETY: NEON (caller); the G·m/4 ≤ NIBBLE_MAX_SIGNS tables are
    // written, then read as m/4 entries of G tables (Tables<G> is G arrays
    // [f32; 16] in a row, of their alignment); `neon_nibble_table_rows`
    // gets the caller's validated rows (⌈m/8⌉ = ⌈(m/4)/2⌉ bytes each) and
    // sums.
    unsafe {
        for h in 0..G {
            nibble_tables(query(h), |p, t| {
                table[p * G + h].write(t);
            });
        }
        let table = core::slice::from_raw_parts(
            table.as_ptr().cast::<crate::codebook::NeonTables<G>>(),
            m / 4,
        );
        crate::codebook::neon_nibble_table_rows::<G>(
            table, job.rows, job.stride, n, out, out_stride,
        )
    }
}

crate::backend::neon_features!(crate::backend::target_features {
    pub(super) unsafe fn hamming_simd(a: &[u8], b: &[u8]) -> u32 {
        let n = a.len().min(b.len());
        let mut i = 0;
        // SAFETY: NEON by this function's features; loads read 16 bytes at
        // i with i + 16 <= n.
        let mut total = unsafe {
            let mut acc = vdupq_n_u32(0);
            while i + 16 <= n {
                let x = veorq_u8(vld1q_u8(a.as_ptr().add(i)), vld1q_u8(b.as_ptr().add(i)));
                acc = vpadalq_u16(acc, vpaddlq_u8(vcntq_u8(x)));
                i += 16;
            }
            vaddvq_u32(acc)
        };
        for (x, y) in a[i..n].iter().zip(&b[i..n]) {
            total += (x ^ y).count_ones();
        }
        total
    }

    pub(super) unsafe fn signed_sum_simd(sq: &[f32], signs: &[u8]) -> f32 {
        let n = sq.len();
        let mut j = 0;
        const LOW: [u32; 4] = [1, 2, 4, 8];
        const HIGH: [u32; 4] = [16, 32, 64, 128];
        // SAFETY: NEON by this function's features; loads read sq[j..j + 8]
        // with j + 8 <= n and the two 4-element constants; signs[j/8] exists.
        let sum = unsafe {
            let (low, high) = (vld1q_u32(LOW.as_ptr()), vld1q_u32(HIGH.as_ptr()));
            let sign = vdupq_n_u32(0x8000_0000);
            let (mut acc0, mut acc1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
            while j + 8 <= n {
                let s = vdupq_n_u32(signs[j / 8] as u32);
                for (half, acc, lanes) in [(0, &mut acc0, low), (4, &mut acc1, high)] {
                    let set = vtstq_u32(s, lanes);
                    // Flip the sign where the bit is clear.
                    let flip = vbicq_u32(sign, set);
                    let x = vld1q_f32(sq.as_ptr().add(j + half));
                    let x = vreinterpretq_f32_u32(veorq_u32(vreinterpretq_u32_f32(x), flip));
                    *acc = vaddq_f32(*acc, x);
                }
                j += 8;
            }
            vaddvq_f32(vaddq_f32(acc0, acc1))
        };
        super::scalar::signed_sum_from(sq, signs, j, sum)
    }

    pub(super) unsafe fn signed_rows_simd(sq: &[f32], rows: &[u8], stride: usize, out: &mut [f32]) {
        let job = ScoreRows {
            q: Queries {
                values: sq,
                dim: sq.len(),
                stride: sq.len(),
                count: 1,
            },
            rows,
            stride,
            n: out.len(),
        };
        // SAFETY: this function's target feature is NEON; rows were
        // validated by the caller (every row's ⌈m/8⌉ bytes fit).
        let done = unsafe { nibble_rows::<1>(job, out, 0) };
        // SAFETY: this function's target feature is that of `signed_sum_simd`;
        // rows were validated by the caller.
        super::signed_rows_with(sq, rows, stride, out, done, |q, s| unsafe {
            signed_sum_simd(q, s)
        })
    }

    /// `signed_rows_simd` for the queries of `job.q` over the same rows,
    /// up to four in one pass: query `h`'s sums to
    /// `out[h·out_stride..][..n]`, the bits it gets alone.
    pub(super) unsafe fn signed_rows_multi_simd(job: ScoreRows<'_>, out: &mut [f32], out_stride: usize) {
        let (rows, stride) = (job.rows, job.stride);
        super::signed_rows_in_passes(
            job,
            out,
            out_stride,
            4,
            // SAFETY: this function's features (NEON) are the kernels';
            // the caller validated the queries, rows and sums; four queries' tables
            // take m ≤ NIBBLE_MAX_SIGNS entries.
            |pass, o| unsafe {
                match pass.q.count {
                    1 => nibble_rows::<1>(pass, o, out_stride),
                    2 => nibble_rows::<2>(pass, o, out_stride),
                    3 => nibble_rows::<3>(pass, o, out_stride),
                    _ => nibble_rows::<4>(pass, o, out_stride),
                }
            },
            // SAFETY: as above, for one query's rows.
            |sq, o| unsafe { signed_rows_simd(sq, rows, stride, o) },
            // SAFETY: as above, for one row.
            |q, s| unsafe { signed_sum_simd(q, s) },
        );
    }

    pub(super) unsafe fn plane_rows_simd(q: Planes<'_>, rows: &[u8], stride: usize, out: &mut [f32]) {
        // `count_ones` is already `cnt` on aarch64.
        super::plane_rows_with(q, rows, stride, out, |s| {
            super::scalar::plane_counts_scalar(s, q.planes, q.words, q.bits)
        })
    }

    pub(super) unsafe fn accumulate_signs_simd(rows: &[u8], stride: usize, weights: &[f32], acc: &mut [f32]) {
        const LOW: [u32; 4] = [1, 2, 4, 8];
        const HIGH: [u32; 4] = [16, 32, 64, 128];
        let m = acc.len();
        let whole = m / 32 * 32;
        // Signs 32 at a time, every row for each: the sums stay in eight
        // registers instead of being loaded and stored once per row (each
        // row's add then waited on the previous row's store). Each sum adds
        // the same ±w in the same row order, so the bits are those of the
        // row-at-a-time loop below.
        // SAFETY: NEON by this function's features; acc[c..c + 32] with
        // c + 32 <= m; row r's bytes c/8 .. c/8 + 4 lie inside its ⌈m/8⌉
        // (the caller checked them).
        unsafe {
            // Lane l of register k: bit 4k + l of a word of signs.
            let mut bits = [vdupq_n_u32(0); 8];
            for (k, b) in bits.iter_mut().enumerate() {
                *b = vshlq_u32(vld1q_u32(LOW.as_ptr()), vdupq_n_s32(4 * k as i32));
            }
            for c in (0..whole).step_by(32) {
                let mut sums = [vdupq_n_f32(0.0); 8];
                for (k, v) in sums.iter_mut().enumerate() {
                    *v = vld1q_f32(acc.as_ptr().add(c + 4 * k));
                }
                for (r, &w) in weights.iter().enumerate() {
                    let at = rows.as_ptr().add(r * stride + c / 8);
                    let word = vdupq_n_u32(at.cast::<u32>().read_unaligned());
                    let (plus, minus) = (vdupq_n_f32(w), vdupq_n_f32(-w));
                    for (v, b) in sums.iter_mut().zip(bits) {
                        *v = vaddq_f32(*v, vbslq_f32(vtstq_u32(word, b), plus, minus));
                    }
                }
                for (k, v) in sums.iter().enumerate() {
                    vst1q_f32(acc.as_mut_ptr().add(c + 4 * k), *v);
                }
            }
        }
        for (r, &w) in weights.iter().enumerate() {
            let signs = &rows[r * stride..];
            let mut j = whole;
            // SAFETY: NEON by this function's features; acc[j..j + 8] with
            // j + 8 <= m and the two 4-element constants; signs[j/8] exists.
            unsafe {
                let (low, high) = (vld1q_u32(LOW.as_ptr()), vld1q_u32(HIGH.as_ptr()));
                let (plus, minus) = (vdupq_n_f32(w), vdupq_n_f32(-w));
                while j + 8 <= m {
                    let s = vdupq_n_u32(signs[j / 8] as u32);
                    for (half, lanes) in [(0, low), (4, high)] {
                        let add = vbslq_f32(vtstq_u32(s, lanes), plus, minus);
                        let at = acc.as_mut_ptr().add(j + half);
                        vst1q_f32(at, vaddq_f32(vld1q_f32(at), add));
                    }
                    j += 8;
                }
            }
            super::accumulate_signs_tail(signs, w, acc, j);
        }
    }
});

/// `acc[h·acc_stride + j] += Σ_r w[h·w_stride + r]·s_{r,j}` (`s = ±1` from
/// the sign bits, `m` of them a row) for `g ∈ 2..=4` weight sets over the
/// same `n` sketches, as the AVX2 kernel of the same name: each row's 16
/// signs at a time become lanes of ±1 once for every set (a test and a
/// select per 4 signs), and each set adds `±1·w` by one FMA per 4 signs,
/// where one set alone takes a test, a select and an add. `1·w` is exact,
/// so the FMA rounds `acc ± w` once, as the add does, in the same row
/// order: the bits are one set's at a time. Returns false (touching
/// nothing) unless `backend` is NEON, `g ∈ 2..=4` and the sets fit
/// ([`SignSets::fit`](super::SignSets::fit): whole steps of 16 signs,
/// inside their buffers).
pub(crate) fn accumulate_signs_multi(
    backend: crate::backend::Checked,
    a: &super::SignSets<'_>,
    acc: &mut [f32],
    g: usize,
) -> bool {
    if !a.takes(backend, crate::Backend::Neon, g, acc.len()) {
        return false;
    }
    // SAFETY: `Checked` proves NEON; the shape is one the kernel takes, and
    // the sets fit their buffers (checked above).
    unsafe {
        match g {
            2 => sign_sets_simd::<2>(a, acc),
            3 => sign_sets_simd::<3>(a, acc),
            _ => sign_sets_simd::<4>(a, acc),
        }
    }
    true
}

crate::backend::neon_features!(crate::backend::target_features {
    /// [`accumulate_signs_multi`] for `G` weight sets.
    ///
    /// # Safety
    /// NEON is available; the shape is one [`accumulate_signs_multi`]
    /// accepts, and the sets fit their buffers.
    unsafe fn sign_sets_simd<const G: usize>(a: &super::SignSets<'_>, acc: &mut [f32]) {
        const LOW: [u32; 4] = [1, 2, 4, 8];
        // SAFETY: NEON by this function's features. Row r's bytes c/8 and
        // c/8 + 1 lie inside its m/8 (c + 16 ≤ m), weight (h, r) inside the
        // h-th set's n, and acc[h·acc_stride + c .. + 16] inside the h-th
        // accumulator's m (the sets fit: the caller's promise).
        unsafe {
            // Lane l of register k: bit 4k + l of a row's 16 signs.
            let mut bits = [vdupq_n_u32(0); 4];
            for (k, b) in bits.iter_mut().enumerate() {
                *b = vshlq_u32(vld1q_u32(LOW.as_ptr()), vdupq_n_s32(4 * k as i32));
            }
            let (one, minus_one) = (vdupq_n_f32(1.0), vdupq_n_f32(-1.0));
            for c in (0..a.m).step_by(16) {
                let mut sums = [[vdupq_n_f32(0.0); 4]; G];
                for (h, s) in sums.iter_mut().enumerate() {
                    for (k, v) in s.iter_mut().enumerate() {
                        *v = vld1q_f32(acc.as_ptr().add(h * a.acc_stride + c + 4 * k));
                    }
                }
                for r in 0..a.n {
                    let at = a.signs.as_ptr().add(r * a.sign_stride + c / 8);
                    let word = vdupq_n_u32(u32::from(at.cast::<u16>().read_unaligned()));
                    let sign = bits.map(|b| vbslq_f32(vtstq_u32(word, b), one, minus_one));
                    for (h, s) in sums.iter_mut().enumerate() {
                        let w = vdupq_n_f32(*a.weights.get_unchecked(h * a.w_stride + r));
                        for (v, sign) in s.iter_mut().zip(sign) {
                            *v = vfmaq_f32(*v, sign, w);
                        }
                    }
                }
                for (h, s) in sums.iter().enumerate() {
                    for (k, v) in s.iter().enumerate() {
                        vst1q_f32(acc.as_mut_ptr().add(h * a.acc_stride + c + 4 * k), *v);
                    }
                }
            }
        }
    }
});
