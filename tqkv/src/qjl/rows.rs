//! The sketch kernels on an f32 query: signed sums of one sketch and of
//! many rows, Hamming distances, and the adjoint that accumulates weighted
//! signs (attention's sum over prod values).

use super::scalar::{accumulate_signs_scalar, signed_sum_scalar};
use crate::backend::{Checked, on_backend};
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use crate::codebook::Queries;
use crate::codebook::ScoreRows;
use crate::error::check_rows;
use crate::{Backend, Error};

#[cfg(target_arch = "aarch64")]
use super::neon;
#[cfg(target_arch = "x86_64")]
use super::{avx2, avx512};

/// `Σ_j s_j · sq[j]` with `s_j = +1` where bit `j` of `signs` is set, else
/// `−1` (the f32 query path), on the detected backend. Backends sum in
/// different orders: they agree with scalar within `1e-5 · Σ_j |sq[j]|`.
///
/// # Errors
/// [`Error::BufferTooShort`] if `signs` has fewer than `⌈sq.len()/8⌉` bytes.
///
/// ```
/// // Bits 0 and 2 set: +1 − 2 + 3 − 4.
/// assert_eq!(tqkv::qjl::signed_sum(&[1.0, 2.0, 3.0, 4.0], &[0b0101])?, -2.0);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn signed_sum(sq: &[f32], signs: &[u8]) -> Result<f32, Error> {
    signed_sum_on(Backend::detect(), sq, signs)
}

/// [`signed_sum`] on a chosen backend.
///
/// # Errors
/// As [`signed_sum`], plus [`Error::BackendUnavailable`].
pub fn signed_sum_on(backend: Backend, sq: &[f32], signs: &[u8]) -> Result<f32, Error> {
    signed_sum_in(backend.check()?, sq, signs)
}

/// [`signed_sum_on`] on a backend already checked.
pub(crate) fn signed_sum_in(backend: Checked, sq: &[f32], signs: &[u8]) -> Result<f32, Error> {
    let needed = sq.len().div_ceil(8);
    if signs.len() < needed {
        return Err(Error::BufferTooShort {
            needed,
            found: signs.len(),
        });
    }
    on_backend!(
        backend,
        signed_sum_scalar(sq, signs),
        signed_sum_simd(sq, signs)
    )
}

/// Every row's f32 signed sum from row `done` on (rows validated; a
/// kernel for blocks of rows did those before), with `sum` for one row.
#[inline(always)]
pub(super) fn signed_rows_with(
    sq: &[f32],
    rows: &[u8],
    stride: usize,
    out: &mut [f32],
    done: usize,
    sum: impl Fn(&[f32], &[u8]) -> f32,
) {
    let bytes = sq.len().div_ceil(8);
    for (r, o) in out.iter_mut().enumerate().skip(done) {
        *o = sum(sq, &rows[r * stride..r * stride + bytes]);
    }
}

/// The query sketches of `job.q` over the same rows in passes of up to
/// `per_pass` queries, as the backends that score several queries in one
/// pass run them: `pass(queries, out)` scores the leading rows of a
/// pass's queries into their sums (query `k`'s at `out[k·out_stride..]`)
/// and returns how many it did; each query then takes the rest row by
/// row with `sum`, or all of its rows with `alone` if the pass did none.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
pub(super) fn signed_rows_in_passes(
    job: ScoreRows<'_>,
    out: &mut [f32],
    out_stride: usize,
    per_pass: usize,
    mut pass: impl FnMut(ScoreRows<'_>, &mut [f32]) -> usize,
    mut alone: impl FnMut(&[f32], &mut [f32]),
    sum: impl Fn(&[f32], &[u8]) -> f32,
) {
    let (q, n) = (job.q, job.n);
    let mut h = 0;
    while h < q.count {
        let group = Queries {
            values: &q.values[h * q.stride..],
            count: (q.count - h).min(per_pass),
            ..q
        };
        let o = &mut out[h * out_stride..];
        let done = pass(ScoreRows { q: group, ..job }, o);
        for k in 0..group.count {
            let sq = &group.values[k * q.stride..][..q.dim];
            let ok = &mut o[k * out_stride..][..n];
            if done == 0 {
                alone(sq, ok);
            } else {
                signed_rows_with(sq, job.rows, job.stride, ok, done, &sum);
            }
        }
        h += group.count;
    }
}

/// The number of differing bits of two sketches, on the detected backend
/// (identical on every backend).
///
/// # Errors
/// [`Error::LengthMismatch`] if the lengths differ.
///
/// ```
/// assert_eq!(tqkv::qjl::hamming(&[0b1010, 0xFF], &[0b0110, 0x0F])?, 6);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn hamming(a: &[u8], b: &[u8]) -> Result<u32, Error> {
    hamming_on(Backend::detect(), a, b)
}

/// [`hamming`] on a chosen backend.
///
/// # Errors
/// As [`hamming`], plus [`Error::BackendUnavailable`].
pub fn hamming_on(backend: Backend, a: &[u8], b: &[u8]) -> Result<u32, Error> {
    hamming_in(backend.check()?, a, b)
}

/// [`hamming_on`] on a backend already checked.
pub(crate) fn hamming_in(backend: Checked, a: &[u8], b: &[u8]) -> Result<u32, Error> {
    if a.len() != b.len() {
        return Err(Error::LengthMismatch {
            expected: a.len(),
            found: b.len(),
        });
    }
    on_backend!(
        backend,
        a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum(),
        hamming_simd(a, b)
    )
}

/// [`signed_sum`] of one query against many sketches: row `r` is the
/// `⌈sq.len()/8⌉` bytes at `rows[r·stride..]`, its result goes to `out[r]`.
///
/// # Errors
/// [`Error::BufferTooShort`] if `stride` is shorter than a sketch or `rows`
/// does not hold `out.len()` rows.
///
/// ```
/// let mut out = [0.0f32; 2];
/// tqkv::qjl::signed_sum_rows(&[1.0, 2.0], &[0b01, 0b10], 1, &mut out)?;
/// assert_eq!(out, [-1.0, 1.0]);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn signed_sum_rows(
    sq: &[f32],
    rows: &[u8],
    stride: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    signed_sum_rows_on(Backend::detect(), sq, rows, stride, out)
}

/// [`signed_sum_rows`] on a chosen backend.
///
/// # Errors
/// As [`signed_sum_rows`], plus [`Error::BackendUnavailable`].
pub fn signed_sum_rows_on(
    backend: Backend,
    sq: &[f32],
    rows: &[u8],
    stride: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    signed_sum_rows_in(backend.check()?, sq, rows, stride, out)
}

/// [`signed_sum_rows_on`] on a backend already checked.
pub(crate) fn signed_sum_rows_in(
    backend: Checked,
    sq: &[f32],
    rows: &[u8],
    stride: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    let bytes = sq.len().div_ceil(8);
    check_rows(bytes, rows.len(), stride, out.len())?;
    on_backend!(
        backend,
        signed_rows_with(sq, rows, stride, out, 0, signed_sum_scalar),
        signed_rows_simd(sq, rows, stride, out)
    )
}

/// [`signed_sum_rows_in`] for the query sketches of `job.q` (`m =
/// q.dim` signs) over the same `job.n` rows: query `h`'s sums go to
/// `out[h·out_stride..][..n]`, the bits it gets alone. AVX-512 scores up
/// to four queries in one pass over the rows, each with its own nibble
/// tables; other backends take one query after another.
///
/// # Errors
/// [`Error::BufferTooShort`] if `stride` is shorter than a sketch, or the
/// rows, the queries or `out` do not hold the shape;
/// [`Error::InvalidParameter`] if queries or outputs overlap.
pub(crate) fn signed_sum_rows_multi_in(
    backend: Checked,
    job: ScoreRows<'_>,
    out: &mut [f32],
    out_stride: usize,
) -> Result<(), Error> {
    let (q, n) = (job.q, job.n);
    if q.count == 0 {
        return Ok(());
    }
    check_rows(q.dim.div_ceil(8), job.rows.len(), job.stride, n)?;
    crate::codebook::check_queries(q, n, out.len(), out_stride)?;
    #[cfg(target_arch = "x86_64")]
    if backend.backend() == Backend::Avx512 {
        // SAFETY: `Checked` proves the AVX-512 feature list; the rows, the
        // queries and the sums were checked above.
        unsafe { avx512::signed_rows_multi_simd(job, out, out_stride) };
        return Ok(());
    }
    #[cfg(target_arch = "aarch64")]
    if backend.backend() == Backend::Neon {
        // SAFETY: `Checked` proves NEON; the rows, the queries and the sums
        // were checked above.
        unsafe { neon::signed_rows_multi_simd(job, out, out_stride) };
        return Ok(());
    }
    for h in 0..q.count {
        let sq = &q.values[h * q.stride..][..q.dim];
        let o = &mut out[h * out_stride..][..n];
        signed_sum_rows_in(backend, sq, job.rows, job.stride, o)?;
    }
    Ok(())
}

/// `acc[j] += Σ_r s_{r,j}·weights[r]` with `s = ±1` from the sign bits of
/// row `r` (`⌈acc.len()/8⌉` bytes at `rows[r·stride..]`): the adjoint of
/// [`signed_sum_rows`], used by attention to sum values in the sketch domain.
/// Backends sum in different orders: within `1e-5 · Σ_r |w_r|` of scalar.
///
/// # Errors
/// [`Error::BufferTooShort`] if `stride` is shorter than a sketch or `rows`
/// does not hold `weights.len()` rows.
///
/// ```
/// let mut acc = [0.0f32; 2];
/// tqkv::qjl::accumulate_signs_rows(&[0b01, 0b11], 1, &[1.0, 0.5], &mut acc)?;
/// assert_eq!(acc, [1.5, -0.5]);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn accumulate_signs_rows(
    rows: &[u8],
    stride: usize,
    weights: &[f32],
    acc: &mut [f32],
) -> Result<(), Error> {
    accumulate_signs_rows_on(Backend::detect(), rows, stride, weights, acc)
}

/// [`accumulate_signs_rows`] on a chosen backend.
///
/// # Errors
/// As [`accumulate_signs_rows`], plus [`Error::BackendUnavailable`].
pub fn accumulate_signs_rows_on(
    backend: Backend,
    rows: &[u8],
    stride: usize,
    weights: &[f32],
    acc: &mut [f32],
) -> Result<(), Error> {
    accumulate_signs_rows_in(backend.check()?, rows, stride, weights, acc)
}

/// [`accumulate_signs_rows_on`] on a backend already checked.
pub(crate) fn accumulate_signs_rows_in(
    backend: Checked,
    rows: &[u8],
    stride: usize,
    weights: &[f32],
    acc: &mut [f32],
) -> Result<(), Error> {
    check_rows(acc.len().div_ceil(8), rows.len(), stride, weights.len())?;
    on_backend!(
        backend,
        accumulate_signs_scalar(rows, stride, weights, acc),
        accumulate_signs_simd(rows, stride, weights, acc)
    )
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
/// Whether `Σ|w|` is below 1e37 (so finite, and no NaN among the weights):
/// then kernels may sum `Σ ±w` as `2·Σ_{bit set} w − Σ w` without an
/// overflow the direct sum would not have, and without turning a ±∞ weight
/// into ∞ − ∞. Sixteen partial sums, so that it vectorises.
#[inline(always)]
pub(crate) fn weights_bounded(weights: &[f32]) -> bool {
    let mut parts = [0.0f32; 16];
    // The tail apart, so that the sums stay in registers.
    crate::loops::whole_chunks_then_tail::<16>(weights, |chunk| {
        for (p, &w) in parts.iter_mut().zip(chunk) {
            *p += w.abs();
        }
    });
    parts.iter().sum::<f32>() < 1e37
}

/// Lane `l` of row `i`: +1 where bit `i` of `l` is set, else −1 (the signs
/// that nibble `l` gives its four coordinates), for the sign sums that look
/// every four signs up in a table of the 16 sums `±sq[4p] ± … ± sq[4p + 3]`
/// (the row blocks of x86 and NEON), and for the value sign sums that look
/// four rows' signs up in a table of `±r_0 ± … ± r_3` (AVX-512).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) const NIBBLE_SIGNS: [[f32; 16]; 4] = {
    let mut t = [[0.0f32; 16]; 4];
    let mut i = 0;
    while i < 4 {
        let mut l = 0;
        while l < 16 {
            t[i][l] = if (l >> i) & 1 == 1 { 1.0 } else { -1.0 };
            l += 1;
        }
        i += 1;
    }
    t
};

/// Most signs the nibble-table sign sums take (64 tables of 16 sums).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(super) const NIBBLE_MAX_SIGNS: usize = 256;

/// Whether the nibble-table sign sums take `rows` sketches of `sq.len()`
/// signs in blocks of `lanes`: at least one block, a positive multiple of 4
/// signs up to [`NIBBLE_MAX_SIGNS`], and `sq` finite and small enough that
/// no table entry overflows.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
pub(super) fn nibble_sums_take(sq: &[f32], rows: usize, lanes: usize) -> bool {
    let m = sq.len();
    rows >= lanes && m > 0 && m.is_multiple_of(4) && m <= NIBBLE_MAX_SIGNS && weights_bounded(sq)
}

/// Several weight sets' sign sums over the same sketches (the grouped-query
/// value kernels): `acc[h·acc_stride + j] += Σ_r w[h·w_stride + r]·s_{r,j}`
/// for `s = ±1` from the sign bits, `m` of them a row, `n` rows
/// `sign_stride` bytes apart in `signs`.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code, reason = "read by the SIMD backends' kernels")
)]
pub(crate) struct SignSets<'a> {
    pub(crate) signs: &'a [u8],
    pub(crate) sign_stride: usize,
    pub(crate) n: usize,
    pub(crate) weights: &'a [f32],
    pub(crate) w_stride: usize,
    pub(crate) acc_stride: usize,
    pub(crate) m: usize,
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
impl SignSets<'_> {
    /// Whether the sketches are whole steps of 16 signs (`m` a positive
    /// multiple of 16, the grouped kernels' unit) and `g` weight sets and
    /// accumulators in `acc_len` values fit the buffers
    /// (`codebook::runs_fit`): the kernels read and write only inside them
    /// then.
    pub(crate) fn fit(&self, g: usize, acc_len: usize) -> bool {
        use crate::codebook::runs_fit;
        self.m > 0
            && self.m.is_multiple_of(16)
            && runs_fit(
                self.n,
                self.sign_stride,
                self.m.div_ceil(8),
                self.signs.len(),
            )
            && runs_fit(g, self.w_stride, self.n, self.weights.len())
            && runs_fit(g, self.acc_stride, self.m, acc_len)
    }

    /// Whether the grouped sign kernel of `on` takes these sets: `backend`
    /// is `on`, `g ∈ 2..=4`, and the sets [`fit`](Self::fit).
    pub(crate) fn takes(&self, backend: Checked, on: Backend, g: usize, acc_len: usize) -> bool {
        backend.backend() == on && (2..=4).contains(&g) && self.fit(g, acc_len)
    }
}

#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod tests {
    use super::weights_bounded;
    use std::vec;

    /// One weight that is NaN, ±∞ or too large, at any place of any
    /// length (whole chunks of 16 and every tail), makes the weights
    /// unbounded; small ones, and none, are bounded.
    #[test]
    fn one_unbounded_weight_anywhere_is_seen() {
        for n in 0..=40 {
            let w = vec![0.5f32; n];
            assert!(weights_bounded(&w), "n = {n}");
            for at in 0..n {
                for bad in [f32::NAN, f32::INFINITY, -f32::INFINITY, 2e37, -2e37] {
                    let mut w = w.clone();
                    w[at] = bad;
                    assert!(!weights_bounded(&w), "{bad} at {at} of {n}");
                }
            }
        }
    }
}

#[cfg(test)]
mod multi_tests {
    use super::{signed_sum_rows_in, signed_sum_rows_multi_in};
    use crate::codebook::{Queries, ScoreRows};
    use crate::rng::SplitMix64;
    use crate::{Backend, Error};
    use std::vec;
    use std::vec::Vec;

    fn uniform(g: &mut SplitMix64) -> f32 {
        (g.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    /// Several queries' sums over the same rows equal each query's alone,
    /// bit for bit, on every backend: 1 to 9 queries (passes of four and
    /// a rest), sketches of 4 to 256 signs and lengths the nibble tables
    /// refuse (not a multiple of 4, or a huge weight), rows back to back
    /// and apart, fewer rows than a block, whole blocks (an odd number of
    /// AVX2's blocks of 8 too) and a tail.
    #[test]
    fn several_queries_equal_each_alone() {
        let mut g = SplitMix64::new(41);
        // Miri interprets every sign: two small shapes there (a whole
        // block and a tail, and fewer rows than a block).
        let shapes: &[(usize, usize)] = if cfg!(miri) {
            &[(16, 17), (12, 5)]
        } else {
            &[
                (4, 16),
                (12, 17),
                (32, 25),
                (30, 40),
                (64, 33),
                (128, 100),
                (256, 48),
                (100, 5),
            ]
        };
        let counts: &[usize] = if cfg!(miri) {
            &[1, 5]
        } else {
            &[1, 2, 3, 4, 5, 8, 9]
        };
        for backend in Backend::available() {
            let b = backend.check().unwrap();
            for &(m, n) in shapes {
                for &count in counts {
                    let bytes = m.div_ceil(8);
                    let stride = bytes + (count % 2);
                    let rows: Vec<u8> = (0..n * stride).map(|_| g.next_u64() as u8).collect();
                    let q_stride = m + 3;
                    let mut values: Vec<f32> =
                        (0..count * q_stride).map(|_| uniform(&mut g)).collect();
                    if count == 5 {
                        values[q_stride + 1] = 3e37; // one query the tables refuse
                    }
                    let q = Queries {
                        values: &values,
                        dim: m,
                        stride: q_stride,
                        count,
                    };
                    let out_stride = n + 2;
                    let mut out = vec![f32::NAN; count * out_stride];
                    let job = ScoreRows {
                        q,
                        rows: &rows,
                        stride,
                        n,
                    };
                    signed_sum_rows_multi_in(b, job, &mut out, out_stride).unwrap();
                    for h in 0..count {
                        let mut alone = vec![0.0f32; n];
                        let sq = &values[h * q_stride..][..m];
                        signed_sum_rows_in(b, sq, &rows, stride, &mut alone).unwrap();
                        let got = &out[h * out_stride..][..n];
                        let same = got
                            .iter()
                            .zip(&alone)
                            .all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "{backend:?} m {m} n {n} count {count} query {h}");
                    }
                }
            }
        }
    }

    /// Short rows, queries or sums are errors, overlapping ones too, and
    /// they touch nothing.
    #[test]
    fn short_or_overlapping_buffers_are_errors() {
        let b = Backend::Scalar.check().unwrap();
        let values = [0.5f32; 2 * 16];
        let rows = [0u8; 2 * 10];
        let q = Queries {
            values: &values,
            dim: 16,
            stride: 16,
            count: 2,
        };
        let job = ScoreRows {
            q,
            rows: &rows,
            stride: 2,
            n: 10,
        };
        let mut out = [7.0f32; 2 * 10];
        let short = |e: Result<(), Error>| matches!(e, Err(Error::BufferTooShort { .. }));
        let eleven_rows = ScoreRows { n: 11, ..job };
        assert!(short(signed_sum_rows_multi_in(
            b,
            eleven_rows,
            &mut out,
            11
        )));
        assert!(short(signed_sum_rows_multi_in(b, job, &mut out, 11)));
        let three = ScoreRows {
            q: Queries { count: 3, ..q },
            ..job
        };
        assert!(short(signed_sum_rows_multi_in(b, three, &mut out, 5)));
        let narrow = ScoreRows { stride: 1, ..job };
        assert!(short(signed_sum_rows_multi_in(b, narrow, &mut out, 10)));
        let overlapping = signed_sum_rows_multi_in(b, job, &mut out, 9);
        assert!(matches!(overlapping, Err(Error::InvalidParameter(_))));
        assert!(out.iter().all(|&v| v == 7.0));
        assert!(signed_sum_rows_multi_in(b, job, &mut out, 10).is_ok());
    }
}
