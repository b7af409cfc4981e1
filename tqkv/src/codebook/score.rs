//! Scores straight from packed codes: one query against one row ([`dot`])
//! or many ([`dot_rows`], and its 8-bit integer form), several queries
//! against the same rows (attention's grouped heads and positions), and
//! the uncompressed reference [`dot_f32`].

#[cfg(target_arch = "aarch64")]
use super::neon;
use super::pack::packed_len;
use super::{Codebook, scalar};
use super::{GROUP, int8};
#[cfg(target_arch = "x86_64")]
use super::{avx2, avx512};
use crate::backend::{Checked, on_backend};
use crate::error::{check_rows, finite, finite_on, need};
use crate::{Backend, Error};

/// `Σ_j q[j] · c[idx_j]` straight from packed codes (the row is never
/// materialised), for a row of `q.len()` codes, on the detected backend.
///
/// Backends sum in different orders: results agree with the scalar kernel
/// within `1e-5 · Σ_j |q[j] · c[idx_j]|` (tested), not bit for bit.
///
/// # Errors
/// [`Error::BufferTooShort`] if `packed` is shorter than
/// `packed_len(q.len(), bits)`; [`Error::NonFinite`] if `q` holds a NaN or an
/// infinity.
///
/// ```
/// use tqkv::{codebook, Codebook};
///
/// let cb = Codebook::gaussian(1)?;
/// let c = cb.centroids()[1];
/// // Codes 1, 0: +c and −c.
/// let d = codebook::dot(&cb, &[2.0, 1.0], &[0b01])?;
/// assert_eq!(d, 2.0 * c - c);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn dot(cb: &Codebook, q: &[f32], packed: &[u8]) -> Result<f32, Error> {
    dot_on(Backend::detect(), cb, q, packed)
}

/// [`dot`] on a chosen backend.
///
/// # Errors
/// As [`dot`], plus [`Error::BackendUnavailable`].
pub fn dot_on(backend: Backend, cb: &Codebook, q: &[f32], packed: &[u8]) -> Result<f32, Error> {
    let sum = dot_in(backend.check()?, cb, q, packed)?;
    // Every centroid is non-zero (the levels come in ± pairs), so a NaN or
    // ±∞ in `q` always makes the sum non-finite: checking `q` only then is
    // exact and keeps the scan off the common path.
    if !sum.is_finite() {
        finite(q)?;
    }
    Ok(sum)
}

/// [`dot_on`] on a backend already checked.
pub(crate) fn dot_in(
    backend: Checked,
    cb: &Codebook,
    q: &[f32],
    packed: &[u8],
) -> Result<f32, Error> {
    let needed = packed_len(q.len(), cb.bits());
    need(needed, packed.len())?;
    let packed = &packed[..needed];
    on_backend!(backend, scalar::dot(cb, q, packed), dot(cb, q, packed))
}

/// [`dot`] of one query against many rows, on the detected backend: row `r`
/// is the `packed_len(q.len(), bits)` bytes at `packed_rows[r·row_stride..]`,
/// and its score goes to `out[r]` (`out.len()` rows). The hot loop of
/// attention scoring.
///
/// # Errors
/// [`Error::BufferTooShort`] if `row_stride` is shorter than one packed row
/// or `packed_rows` does not hold `out.len()` rows; [`Error::NonFinite`] if `q`
/// holds a NaN or an infinity.
///
/// ```
/// use tqkv::{codebook, Codebook};
///
/// let cb = Codebook::gaussian(2)?;
/// let rows = [0b11_10_01_00u8, 0b00_00_00_00];
/// let mut scores = [0.0f32; 2];
/// codebook::dot_rows(&cb, &[1.0; 4], &rows, 1, &mut scores)?;
/// assert!(scores[0].abs() < 1e-6); // the four centroids sum to zero
/// assert_eq!(scores[1], 4.0 * cb.centroids()[0]);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn dot_rows(
    cb: &Codebook,
    q: &[f32],
    packed_rows: &[u8],
    row_stride: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    dot_rows_on(Backend::detect(), cb, q, packed_rows, row_stride, out)
}

/// [`dot_rows`] on a chosen backend.
///
/// # Errors
/// As [`dot_rows`], plus [`Error::BackendUnavailable`].
pub fn dot_rows_on(
    backend: Backend,
    cb: &Codebook,
    q: &[f32],
    packed_rows: &[u8],
    row_stride: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    let backend = backend.check()?;
    finite_on(backend, q)?;
    dot_rows_in(backend, cb, q, packed_rows, row_stride, out)
}

/// [`dot_rows_on`] on a backend already checked.
pub(crate) fn dot_rows_in(
    backend: Checked,
    cb: &Codebook,
    q: &[f32],
    packed_rows: &[u8],
    row_stride: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    let row = packed_len(q.len(), cb.bits());
    check_rows(row, packed_rows.len(), row_stride, out.len())?;
    // At 5 and 6 bits, AVX-512 scores whole blocks of 16 rows by the
    // multi-query kernel with one query (attention's path there), within
    // the tolerance rather than bit for bit: row by row took 2.5 times as
    // long (`codebook/dot_rows/avx512/b5/d128`).
    #[cfg(target_arch = "x86_64")]
    let done = match cb.bits() {
        5 | 6 => {
            let job = ScoreRows {
                q: Queries::one(q),
                rows: packed_rows,
                stride: row_stride,
                n: out.len(),
            };
            let n = out.len();
            avx512::multi::dot_rows(backend, cb, job, out, n)
        }
        _ => 0,
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    let (packed_rows, out) = (
        packed_rows.get(done * row_stride..).unwrap_or(&[]),
        &mut out[done..],
    );
    on_backend!(
        backend,
        scalar::dot_rows(cb, q, packed_rows, row_stride, out),
        dot_rows(cb, q, packed_rows, row_stride, out)
    )
}

/// Approximate [`dot_rows`] from 8-bit integers (opt-in): `q` and the
/// centroids are each rounded to integers of magnitude ≤ 127 under one
/// scale, `q ≈ s_q·q8`, `c ≈ s_c·c8` with `s_q = max|q|/127`,
/// `s_c = max|c|/127` and `q8_j = round(q_j/s_q)` (computed as
/// `q_j·(127/max|q|)` in f64, halves away from zero; the same for `c8`);
/// then `out[r] = (Σ_j q8_j·c8[idx_{r,j}]) · (s_q·s_c)`, the sum exact in
/// integers, rounded to f32, times the factor rounded to f32 once. The
/// scores are the same bits on every backend; on AVX-512 (codes of 1–6 bits) they take one lookup and one
/// `vpdpbusd` (VNNI) per 64 codes, about half the exact kernel's time at 4
/// bits (BENCHMARKS.md, `codebook/dot_rows_int8`).
///
/// The rounding bounds the difference from the exact score:
/// `|out[r] − Σ_j q_j·c[idx_{r,j}]| ≤ Σ_j (s_q/2·|c[idx_{r,j}]| + s_c/2·|q_j| + s_q·s_c/4)`
/// plus the float rounding of the final product (a few ulps). For a
/// 4-bit codebook at d = 128 that is well under 1 % of `‖q‖·‖c‖`; the cost
/// in attention KL on real heads is in `docs/evaluate/`.
///
/// # Errors
/// As [`dot_rows`], and [`Error::InvalidDim`] for a `q` longer than
/// [`MAX_DIM`](crate::quant::MAX_DIM).
///
/// ```
/// use tqkv::{codebook, Codebook};
///
/// let cb = Codebook::lloyd_max(64, 4)?;
/// let q: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
/// let idx: Vec<u8> = (0..64).map(|i| (i * 5 % 16) as u8).collect();
/// let mut row = [0u8; 32];
/// tqkv::pack::pack(4, &idx, &mut row)?;
/// let (mut exact, mut approx) = ([0.0f32], [0.0f32]);
/// codebook::dot_rows(&cb, &q, &row, 32, &mut exact)?;
/// codebook::dot_rows_int8(&cb, &q, &row, 32, &mut approx)?;
/// let bound: f32 = q.iter().zip(&idx).map(|(qj, &i)| qj.abs() * cb.centroids()[i as usize].abs()).sum();
/// assert!((exact[0] - approx[0]).abs() <= 0.02 * bound);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn dot_rows_int8(
    cb: &Codebook,
    q: &[f32],
    packed_rows: &[u8],
    row_stride: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    dot_rows_int8_on(Backend::detect(), cb, q, packed_rows, row_stride, out)
}

/// [`dot_rows_int8`] on a chosen backend.
///
/// # Errors
/// As [`dot_rows_int8`], plus [`Error::BackendUnavailable`].
pub fn dot_rows_int8_on(
    backend: Backend,
    cb: &Codebook,
    q: &[f32],
    packed_rows: &[u8],
    row_stride: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    let backend = backend.check()?;
    finite_on(backend, q)?;
    dot_rows_int8_in(backend, cb, q, packed_rows, row_stride, out)
}

/// [`dot_rows_int8_on`] on a backend already checked, for a finite `q`.
pub(crate) fn dot_rows_int8_in(
    backend: Checked,
    cb: &Codebook,
    q: &[f32],
    packed_rows: &[u8],
    row_stride: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    if q.len() > crate::quant::MAX_DIM {
        return Err(Error::InvalidDim { dim: q.len() });
    }
    let bits = cb.bits();
    check_rows(
        packed_len(q.len(), bits),
        packed_rows.len(),
        row_stride,
        out.len(),
    )?;
    if q.is_empty() {
        out.fill(0.0);
        return Ok(());
    }
    let cents = int8::Int8Centroids::of(cb);
    crate::stack::bytes(int8::padded(q.len()), |buf| {
        let query = int8::Int8Query::of(q, buf);
        let args = int8::Int8Rows {
            bits,
            c8: &cents.values,
            q: query,
            mult: int8::multiplier(query.max, cents.max),
            rows: packed_rows,
            stride: row_stride,
        };
        int8::score_rows(backend, &args, out);
    });
    Ok(())
}

/// [`dot_rows_int8_in`] for several query vectors over the same `n`
/// rows, each rounded beforehand by `int8::round_query` (`q.values` holds
/// query `h` as `int8::rounded_len(q.dim)` values from `h·q.stride`):
/// `out[h·out_stride + r]` is query `h`'s score of row `r`, the same bits
/// as one query at a time (the sums are exact). AVX-512 shares each row's
/// loads and lookups between up to four queries.
///
/// # Errors
/// As [`dot_rows_multi_in`]; [`Error::InvalidDim`] for queries longer
/// than [`MAX_DIM`](crate::quant::MAX_DIM).
#[allow(clippy::too_many_arguments)]
pub(crate) fn dot_rows_int8_multi_in(
    backend: Checked,
    cb: &Codebook,
    q: Queries<'_>,
    rows: &[u8],
    stride: usize,
    n: usize,
    out: &mut [f32],
    out_stride: usize,
) -> Result<(), Error> {
    if q.count == 0 {
        return Ok(());
    }
    if q.dim > crate::quant::MAX_DIM {
        return Err(Error::InvalidDim { dim: q.dim });
    }
    check_multi(cb, q, rows, stride, n, out.len(), out_stride)?;
    let words = int8::rounded_len(q.dim);
    need((q.count - 1) * q.stride + words, q.values.len())?;
    if q.stride < words {
        return Err(Error::InvalidParameter("overlapping rounded queries"));
    }
    let bits = cb.bits();
    let cents = int8::Int8Centroids::of(cb);
    let span = int8::padded(q.dim);
    let mut h = 0;
    while h < q.count {
        let g = (q.count - h).min(int8::GROUP);
        let o = &mut out[h * out_stride..];
        crate::stack::bytes(g * span, |buf| {
            let mut bufs = buf.chunks_exact_mut(span.max(1));
            let args: [int8::Int8Rows<'_>; int8::GROUP] = core::array::from_fn(|k| {
                let query = match bufs.next() {
                    Some(b) if k < g => {
                        let words = &q.values[(h + k) * q.stride..];
                        int8::Int8Query::from_rounded(words, q.dim, b)
                    }
                    _ => int8::Int8Query::of(&[], &mut []),
                };
                int8::Int8Rows {
                    bits,
                    c8: &cents.values,
                    q: query,
                    mult: int8::multiplier(query.max, cents.max),
                    rows,
                    stride,
                }
            });
            let done = if q.dim == 0 {
                0
            } else {
                int8::simd_rows(backend, &args[..g], n, o, out_stride)
            };
            for (k, a) in args[..g].iter().enumerate() {
                let rest = int8::Int8Rows {
                    rows: rows.get(done * stride..).unwrap_or(&[]),
                    ..*a
                };
                int8::score_rows(
                    backend,
                    &rest,
                    &mut o[k * out_stride + done..k * out_stride + n],
                );
            }
        });
        h += g;
    }
    Ok(())
}

/// Query vectors against the same rows: `q_h = queries[h·q_stride..][..dim]`
/// for `h < g`.
#[derive(Clone, Copy)]
pub(crate) struct Queries<'a> {
    /// The query values.
    pub values: &'a [f32],
    /// Values per query vector.
    pub dim: usize,
    /// From one query vector to the next.
    pub stride: usize,
    /// How many.
    pub count: usize,
}

#[cfg(target_arch = "x86_64")]
impl<'a> Queries<'a> {
    /// The one query vector `q`.
    pub(crate) fn one(q: &'a [f32]) -> Self {
        Queries {
            values: q,
            dim: q.len(),
            stride: q.len(),
            count: 1,
        }
    }
}

/// [`dot_rows_in`] for several query vectors over the same `n` rows:
/// `out[h·out_stride + r]` is query `h`'s score of row `r`. AVX-512 shares
/// a pass over the rows between up to four queries at 1 and 2 bits, each
/// with its own nibble tables (the scores equal [`dot_rows`]' bit for
/// bit), and shares the codes' work between up to four (or eight) queries
/// at 3 to 6 bits, AVX2 at 5 and 6 bits (the scores then agree with
/// [`dot_rows`] within its tolerance, not bit for bit); elsewhere, and for
/// a lone query at 1 to 4 bits, the queries run one after the other over
/// rows that stay in cache.
///
/// # Errors
/// As [`dot_rows_on`]; [`Error::BufferTooShort`] if `out` or the queries
/// are short.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dot_rows_multi_in(
    backend: Checked,
    cb: &Codebook,
    q: Queries<'_>,
    rows: &[u8],
    stride: usize,
    n: usize,
    out: &mut [f32],
    out_stride: usize,
) -> Result<(), Error> {
    if q.count == 0 {
        return Ok(());
    }
    check_multi(cb, q, rows, stride, n, out.len(), out_stride)?;
    let mut h = 0;
    while h < q.count {
        // AVX-512 scores eight queries in one pass too (keys of g = 8
        // 20 % faster than in two passes of four).
        #[cfg(target_arch = "x86_64")]
        let wide =
            backend.backend() == crate::Backend::Avx512 && q.count - h >= avx512::multi::WIDE_GROUP;
        #[cfg(target_arch = "x86_64")]
        let g = if wide {
            avx512::multi::WIDE_GROUP
        } else {
            (q.count - h).min(GROUP)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let g = (q.count - h).min(GROUP);
        let values = &q.values[h * q.stride..];
        let o = &mut out[h * out_stride..];
        // A lone query takes `dot_rows_in`: the single-query row blocks at
        // 1 to 4 bits (its scores equal the scalar ones bit for bit), this
        // kernel with one query at 5 and 6.
        let shared = g > 1;
        let done = if shared {
            let job = ScoreRows {
                q: Queries {
                    values,
                    count: g,
                    ..q
                },
                rows,
                stride,
                n,
            };
            scores_multi(backend, cb, job, o, out_stride)
        } else {
            0
        };
        let rest_rows = rows.get(done * stride..).unwrap_or(&[]);
        for k in 0..g {
            let qk = &values[k * q.stride..][..q.dim];
            let ok = &mut o[k * out_stride + done..k * out_stride + n];
            dot_rows_in(backend, cb, qk, rest_rows, stride, ok)?;
        }
        h += g;
    }
    Ok(())
}

/// The backend's kernel for the `job.q.count` queries of `job` sharing a
/// pass over the rows (AVX-512 up to eight, AVX2 and NEON up to four), if
/// it has one for the shape: how many rows it scored. NEON's shares each
/// code's index steps and keeps each query's tables, so a query's scores
/// are the bits it gets alone.
fn scores_multi(
    backend: Checked,
    cb: &Codebook,
    job: ScoreRows<'_>,
    out: &mut [f32],
    out_stride: usize,
) -> usize {
    #[cfg(target_arch = "x86_64")]
    return match avx512::key_rows::dot_rows_multi(backend, cb, job, out, out_stride) {
        0 => match avx512::multi::dot_rows(backend, cb, job, out, out_stride) {
            0 => avx2::dot_rows_multi_wide(backend, cb, job, out, out_stride),
            done => done,
        },
        done => done,
    };
    #[cfg(target_arch = "aarch64")]
    return neon::dot_rows_multi(backend, cb, job, out, out_stride);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (backend, cb, job, out, out_stride);
        0
    }
}

/// The arguments of the multi-query scores (`q.count ≥ 1`): `n` rows fit,
/// every query and output fits, and the strides do not overlap.
fn check_multi(
    cb: &Codebook,
    q: Queries<'_>,
    rows: &[u8],
    stride: usize,
    n: usize,
    out_len: usize,
    out_stride: usize,
) -> Result<(), Error> {
    check_rows(packed_len(q.dim, cb.bits()), rows.len(), stride, n)?;
    check_queries(q, n, out_len, out_stride)
}

/// The queries and outputs of a multi-query kernel (`q.count ≥ 1`): every
/// query inside its values, every query's `n` outputs inside `out_len`,
/// and neither overlapping the next.
pub(crate) fn check_queries(
    q: Queries<'_>,
    n: usize,
    out_len: usize,
    out_stride: usize,
) -> Result<(), Error> {
    let last = q.count.saturating_sub(1);
    let end = |stride: usize, len: usize| last.saturating_mul(stride).saturating_add(len);
    need(end(q.stride, q.dim), q.values.len())?;
    need(end(out_stride, n), out_len)?;
    if out_stride < n || q.stride < q.dim {
        return Err(Error::InvalidParameter(
            "overlapping query or output strides",
        ));
    }
    Ok(())
}

/// Whether `count` runs of `len` elements, `stride` apart, lie within
/// `room` elements (O(1); true for none). The multi-query kernels check
/// their buffers with it although their callers validated them, so that
/// each is sound as the safe function it is.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn runs_fit(count: usize, stride: usize, len: usize, room: usize) -> bool {
    count.checked_sub(1).is_none_or(|last| {
        last.checked_mul(stride)
            .and_then(|v| v.checked_add(len))
            .is_some_and(|v| v <= room)
    })
}

/// Query vectors against `n` rows (of packed codes, or of sketches),
/// `stride` apart: the arguments of the multi-query scoring kernels (the
/// SIMD ones check with [`ScoreRows::fits`] that their buffers hold them)
/// and of `qjl::signed_sum_rows_multi_in`.
#[derive(Clone, Copy)]
pub(crate) struct ScoreRows<'a> {
    /// The query vectors.
    pub q: Queries<'a>,
    /// The rows of codes.
    pub rows: &'a [u8],
    /// Bytes from one row to the next.
    pub stride: usize,
    /// Rows.
    pub n: usize,
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
impl ScoreRows<'_> {
    /// Whether the buffers hold the shape (O(1), no overflow): `n` rows of
    /// `bits`-bit codes in `rows`, every query in its values, and `count`
    /// runs of `n` scores `out_stride` apart in `out_len`.
    pub(crate) fn fits(&self, bits: u8, out_len: usize, out_stride: usize) -> bool {
        let q = self.q;
        runs_fit(
            self.n,
            self.stride,
            packed_len(q.dim, bits),
            self.rows.len(),
        ) && runs_fit(q.count, q.stride, q.dim, q.values.len())
            && runs_fit(q.count, out_stride, self.n, out_len)
    }

    /// Whether the grouped key kernel of `on`, for codes of 1 to
    /// `max_bits` bits, takes these rows of `cb`'s codes: `backend` is
    /// `on`, `dim` a nonzero multiple of 8, 2 to 4 queries, and the
    /// buffers hold the shape ([`fits`](Self::fits)).
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn takes(
        &self,
        backend: Checked,
        on: Backend,
        max_bits: u8,
        cb: &Codebook,
        out_len: usize,
        out_stride: usize,
    ) -> bool {
        let (d, b) = (self.q.dim, cb.bits());
        backend.backend() == on
            && (1..=max_bits).contains(&b)
            && d > 0
            && d.is_multiple_of(8)
            && (2..=4).contains(&self.q.count)
            && self.fits(b, out_len, out_stride)
    }
}

/// `Σ a[j]·b[j]` of two uncompressed f32 rows on the detected backend: the
/// reference that [`dot`] is measured against (and a building block for
/// attention on uncompressed data). Within `1e-5 · Σ|a·b|` of the scalar
/// sum on every backend.
///
/// # Errors
/// [`Error::LengthMismatch`] if the lengths differ.
///
/// ```
/// let d = tqkv::codebook::dot_f32(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0])?;
/// assert_eq!(d, 32.0);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn dot_f32(a: &[f32], b: &[f32]) -> Result<f32, Error> {
    dot_f32_on(Backend::detect(), a, b)
}

/// [`dot_f32`] on a chosen backend.
///
/// # Errors
/// As [`dot_f32`], plus [`Error::BackendUnavailable`].
pub fn dot_f32_on(backend: Backend, a: &[f32], b: &[f32]) -> Result<f32, Error> {
    dot_f32_in(backend.check()?, a, b)
}

/// [`dot_f32_on`] on a backend already checked.
pub(crate) fn dot_f32_in(backend: Checked, a: &[f32], b: &[f32]) -> Result<f32, Error> {
    if a.len() != b.len() {
        return Err(Error::LengthMismatch {
            expected: a.len(),
            found: b.len(),
        });
    }
    on_backend!(
        backend,
        a.iter().zip(b).map(|(x, y)| x * y).sum(),
        dot_f32(a, b)
    )
}
