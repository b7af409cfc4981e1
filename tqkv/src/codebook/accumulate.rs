//! Weighted sums of decoded rows straight from packed codes (the value side
//! of attention): one weight set ([`accumulate_rows`]), codes and sign
//! sketches together, and several weight sets over the same rows.

use super::GROUP;
#[cfg(target_arch = "aarch64")]
use super::neon;
use super::pack::packed_len;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use super::runs_fit;
use super::{Codebook, scalar};
#[cfg(target_arch = "x86_64")]
use super::{avx2, avx512};
use crate::backend::{Checked, on_backend};
use crate::error::{check_rows, need};
use crate::{Backend, Error};

/// `out[j] += Σ_r weights[r] · c[idx_{r,j}]`: many packed rows (`out.len()`
/// codes each, row `r` at `packed_rows[r·row_stride..]`) dequantised,
/// weighted and summed into `out` in one pass, on the detected backend —
/// the value side of attention, `Σ_t p_t·v̂_t`, without materialising a row.
/// Backends sum in different orders: within `1e-5 · Σ_r |w_r| · max|c|` per
/// coordinate of the scalar result.
///
/// # Errors
/// [`Error::BufferTooShort`] if `row_stride` is shorter than one packed row
/// or `packed_rows` does not hold `weights.len()` rows.
///
/// ```
/// use tqkv::{codebook, Codebook};
///
/// let cb = Codebook::gaussian(1)?;
/// let c = cb.centroids()[1];
/// let mut out = [0.0f32; 2];
/// // Row 0 = codes (1, 0), row 1 = codes (1, 1).
/// codebook::accumulate_rows(&cb, &[0b01, 0b11], 1, &[0.5, 2.0], &mut out)?;
/// assert_eq!(out, [2.5 * c, 1.5 * c]);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn accumulate_rows(
    cb: &Codebook,
    packed_rows: &[u8],
    row_stride: usize,
    weights: &[f32],
    out: &mut [f32],
) -> Result<(), Error> {
    accumulate_rows_on(Backend::detect(), cb, packed_rows, row_stride, weights, out)
}

/// [`accumulate_rows`] on a chosen backend.
///
/// # Errors
/// As [`accumulate_rows`], plus [`Error::BackendUnavailable`].
pub fn accumulate_rows_on(
    backend: Backend,
    cb: &Codebook,
    packed_rows: &[u8],
    row_stride: usize,
    weights: &[f32],
    out: &mut [f32],
) -> Result<(), Error> {
    accumulate_rows_in(backend.check()?, cb, packed_rows, row_stride, weights, out)
}

/// [`accumulate_rows_on`] on a backend already checked.
pub(crate) fn accumulate_rows_in(
    backend: Checked,
    cb: &Codebook,
    packed_rows: &[u8],
    row_stride: usize,
    weights: &[f32],
    out: &mut [f32],
) -> Result<(), Error> {
    let row = packed_len(out.len(), cb.bits());
    check_rows(row, packed_rows.len(), row_stride, weights.len())?;
    // At 5 and 6 bits, AVX-512 takes the multi-query kernel with one
    // weight set (attention's path there): row by row took three times as
    // long (`codebook/accumulate_rows/avx512/b5/d128`).
    #[cfg(target_arch = "x86_64")]
    if matches!(cb.bits(), 5 | 6) {
        let rows = WeightedCodes {
            rows: packed_rows,
            stride: row_stride,
            n: weights.len(),
            weights,
            w_stride: weights.len(),
            out_stride: out.len(),
            d: out.len(),
        };
        if avx512::multi::accumulate_rows(backend, cb, &rows, out, 1) {
            return Ok(());
        }
    }
    on_backend!(
        backend,
        scalar::accumulate_rows(cb, packed_rows, row_stride, weights, out),
        accumulate_rows(cb, packed_rows, row_stride, weights, out)
    )
}

/// Codes and sign sketches of the same tokens with a weight each: the value
/// side of attention on prod values (see [`accumulate_rows_and_signs_in`]).
pub(crate) struct SignedRows<'a> {
    /// Packed codes, row `t` at `t·code_stride`.
    pub codes: &'a [u8],
    /// Bytes from one row of codes to the next.
    pub code_stride: usize,
    /// The weight of each row's codes.
    pub weights: &'a [f32],
    /// Sign sketches, row `t` at `t·sign_stride`.
    pub signs: &'a [u8],
    /// Bytes from one sketch to the next.
    pub sign_stride: usize,
    /// The weight of each row's signs (as many as `weights`).
    pub sign_weights: &'a [f32],
}

/// [`accumulate_rows_on`]`(cb, codes, code_stride, weights, out)` and
/// [`crate::qjl::accumulate_signs_rows_on`]`(signs, sign_stride,
/// sign_weights, acc)` over the same tokens. AVX-512 runs both in one pass
/// for `d = m ∈ {64, 128}` (the sign sums then cost almost nothing, see
/// `avx512`), with the same results as the two kernels bit for bit; every
/// other case calls the two kernels one after the other.
///
/// # Errors
/// As the two kernels; [`Error::LengthMismatch`] unless both kinds of rows
/// have as many weights.
pub(crate) fn accumulate_rows_and_signs_in(
    backend: Checked,
    cb: &Codebook,
    rows: &SignedRows<'_>,
    out: &mut [f32],
    acc: &mut [f32],
) -> Result<(), Error> {
    let r = rows;
    if r.weights.len() != r.sign_weights.len() {
        return Err(Error::LengthMismatch {
            expected: r.weights.len(),
            found: r.sign_weights.len(),
        });
    }
    let row = packed_len(out.len(), cb.bits());
    check_rows(row, r.codes.len(), r.code_stride, r.weights.len())?;
    check_rows(
        acc.len().div_ceil(8),
        r.signs.len(),
        r.sign_stride,
        r.sign_weights.len(),
    )?;
    #[cfg(target_arch = "x86_64")]
    if avx512::accumulate_rows_and_signs(backend, cb, r, out, acc) {
        return Ok(());
    }
    accumulate_rows_in(backend, cb, r.codes, r.code_stride, r.weights, out)?;
    crate::qjl::accumulate_signs_rows_in(backend, r.signs, r.sign_stride, r.sign_weights, acc)
}

/// Rows of codes with one weight set per query vector, and where each
/// query's sums go: the arguments of the multi-query value kernels
/// (validated by [`accumulate_multi_in`]).
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code, reason = "read by the SIMD backends' kernels")
)]
pub(crate) struct WeightedCodes<'a> {
    /// `n` rows of packed codes, `stride` apart.
    pub rows: &'a [u8],
    /// Bytes from one row to the next.
    pub stride: usize,
    /// Rows.
    pub n: usize,
    /// Query `h`'s weights: `weights[h·w_stride..][..n]`.
    pub weights: &'a [f32],
    /// From one query's weights to the next.
    pub w_stride: usize,
    /// From one query's sums to the next in the output.
    pub out_stride: usize,
    /// Coordinates a row.
    pub d: usize,
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
impl WeightedCodes<'_> {
    /// Whether `g` weight sets and sums in `out_len` values fit the buffers
    /// at `bits` bits ([`runs_fit`]).
    pub(crate) fn fit(&self, bits: u8, g: usize, out_len: usize) -> bool {
        runs_fit(
            self.n,
            self.stride,
            packed_len(self.d, bits),
            self.rows.len(),
        ) && runs_fit(g, self.w_stride, self.n, self.weights.len())
            && runs_fit(g, self.out_stride, self.d, out_len)
    }

    /// Whether the grouped value kernel of `on`, for codes of 1 to
    /// `max_bits` bits, takes `g` sets of `cb`'s codes: `backend` is `on`,
    /// `d` a nonzero multiple of 8, `g ∈ 2..=4`, and the buffers
    /// [`fit`](Self::fit).
    pub(crate) fn takes(
        &self,
        backend: Checked,
        on: crate::Backend,
        max_bits: u8,
        cb: &Codebook,
        g: usize,
        out_len: usize,
    ) -> bool {
        let b = cb.bits();
        backend.backend() == on
            && (1..=max_bits).contains(&b)
            && self.d > 0
            && self.d.is_multiple_of(8)
            && (2..=4).contains(&g)
            && self.fit(b, g, out_len)
    }
}

/// Rows of codes (and, for prod values, sign sketches) with one weight set
/// per query vector: the value side of attention for several queries.
#[derive(Clone, Copy)]
pub(crate) struct WeightedRows<'a> {
    /// Packed codes, row `t` at `t·code_stride`.
    pub codes: &'a [u8],
    /// Bytes from one row of codes to the next.
    pub code_stride: usize,
    /// Sign sketches, row `t` at `t·sign_stride` (empty without).
    pub signs: &'a [u8],
    /// Bytes from one sketch to the next.
    pub sign_stride: usize,
    /// Rows.
    pub n: usize,
    /// Query `h`'s weights of the codes: `weights[h·w_stride..][..n]`.
    pub weights: &'a [f32],
    /// Query `h`'s weights of the signs, laid out as `weights` (empty
    /// without signs).
    pub sign_weights: &'a [f32],
    /// From one query's weights to the next.
    pub w_stride: usize,
}

#[cfg(target_arch = "x86_64")]
impl WeightedRows<'_> {
    /// Whether `g` weight sets over rows of `d` `bits`-bit codes and `m`
    /// signs, with sums `out_stride` apart in `out_len` values (`d + m` a
    /// set), fit the buffers ([`runs_fit`]).
    pub(crate) fn fit(
        &self,
        bits: u8,
        (d, m): (usize, usize),
        g: usize,
        out: (usize, usize),
    ) -> bool {
        let (out_len, out_stride) = out;
        runs_fit(
            self.n,
            self.code_stride,
            packed_len(d, bits),
            self.codes.len(),
        ) && runs_fit(self.n, self.sign_stride, m.div_ceil(8), self.signs.len())
            && runs_fit(g, self.w_stride, self.n, self.weights.len())
            && (m == 0 || runs_fit(g, self.w_stride, self.n, self.sign_weights.len()))
            && runs_fit(g, out_stride, d + m, out_len)
    }
}

/// [`accumulate_rows_in`] (and, with signs, the sign sums of
/// [`accumulate_rows_and_signs_in`]) for `g` weight sets over the same
/// rows: query `h` adds into `acc[h·acc_stride..][..dim]` (codes) and
/// `acc[h·acc_stride + dim..][..m]` (signs, `m = 8·sign bytes`; `m = 0`
/// without). AVX-512 and AVX2 look each row's codes up once for up to four
/// queries, NEON at 1–4 bits ([`codes_multi`]), and each row's signs too
/// ([`signs_multi`]); elsewhere, and for a lone query, the queries run one
/// after the other over rows that stay in cache.
///
/// # Errors
/// As [`accumulate_rows_and_signs_in`]; [`Error::BufferTooShort`] if the
/// weights or `acc` are short.
#[allow(clippy::too_many_arguments)]
pub(crate) fn accumulate_multi_in(
    backend: Checked,
    cb: &Codebook,
    rows: &WeightedRows<'_>,
    g: usize,
    dim: usize,
    m: usize,
    acc: &mut [f32],
    acc_stride: usize,
) -> Result<(), Error> {
    let Some(last) = g.checked_sub(1) else {
        return Ok(());
    };
    let r = rows;
    let n = r.n;
    check_rows(packed_len(dim, cb.bits()), r.codes.len(), r.code_stride, n)?;
    need(last * r.w_stride + n, r.weights.len())?;
    need(last * acc_stride + dim + m, acc.len())?;
    if m > 0 {
        check_rows(m.div_ceil(8), r.signs.len(), r.sign_stride, n)?;
        need(last * r.w_stride + n, r.sign_weights.len())?;
    }
    if r.w_stride < n || acc_stride < dim + m {
        return Err(Error::InvalidParameter(
            "overlapping weight or accumulator strides",
        ));
    }
    let mut h = 0;
    while h < g {
        // Prod values with a sign per coordinate: codes and signs in one
        // pass, for a lone query too (KQV at 4 bits decoded 1.3× faster
        // that way than with the single-query kernels; 1–3-bit codes no
        // slower). Plain codes of a lone query at up to 4 bits keep the
        // single-query kernels (2 and 3 bits were slower in the shared
        // one once the cache was out of L2).
        let shared = g > 1 || matches!(cb.bits(), 5 | 6) || m == dim;
        #[cfg(target_arch = "x86_64")]
        let left = g - h;
        // Four queries or more with signs back to back: codes and signs in
        // separate passes of four (the sign tables made the sign pass
        // cheap; KQV n = 4 at g = 4 spent 12 % less on values than in two
        // fused passes of two, which decode every code twice).
        #[cfg(target_arch = "x86_64")]
        let separate = left >= GROUP && avx512::sign_tables::takes(m, r.sign_stride);
        #[cfg(target_arch = "x86_64")]
        if m == dim && shared && !separate {
            // Balanced groups (4 = 2 + 2, not 3 + 1): each costs a pass.
            let k = left.div_ceil(left.div_ceil(avx512::multi::MAX_FUSED_GROUP));
            let part = WeightedRows {
                weights: &r.weights[h * r.w_stride..],
                sign_weights: &r.sign_weights[h * r.w_stride..],
                ..*r
            };
            let a = &mut acc[h * acc_stride..];
            if avx512::multi::accumulate_fused(backend, cb, &part, a, acc_stride, dim, k) {
                h += k;
                continue;
            }
        }
        let k = (g - h).min(GROUP);
        let w = &r.weights[h * r.w_stride..];
        let a = &mut acc[h * acc_stride..];
        if k == 1 && !shared {
            // One query: the single-query kernels (fused codes and signs).
            let (out, sk) = a[..dim + m].split_at_mut(dim);
            if m > 0 {
                let one = SignedRows {
                    codes: r.codes,
                    code_stride: r.code_stride,
                    weights: &w[..n],
                    signs: r.signs,
                    sign_stride: r.sign_stride,
                    sign_weights: &r.sign_weights[h * r.w_stride..][..n],
                };
                accumulate_rows_and_signs_in(backend, cb, &one, out, sk)?;
            } else {
                accumulate_rows_in(backend, cb, r.codes, r.code_stride, &w[..n], out)?;
            }
            h += 1;
            continue;
        }
        let rows = WeightedCodes {
            rows: r.codes,
            stride: r.code_stride,
            n,
            weights: w,
            w_stride: r.w_stride,
            out_stride: acc_stride,
            d: dim,
        };
        if !codes_multi(backend, cb, &rows, a, k) {
            for j in 0..k {
                let wj = &w[j * r.w_stride..][..n];
                let out = &mut a[j * acc_stride..][..dim];
                accumulate_rows_in(backend, cb, r.codes, r.code_stride, wj, out)?;
            }
        }
        if m > 0 {
            let sw = &r.sign_weights[h * r.w_stride..];
            let sk = &mut a[dim..];
            let sets = crate::qjl::SignSets {
                signs: r.signs,
                sign_stride: r.sign_stride,
                n,
                weights: sw,
                w_stride: r.w_stride,
                acc_stride,
                m,
            };
            if !signs_multi(backend, &sets, sk, k) {
                for j in 0..k {
                    let wj = &sw[j * r.w_stride..][..n];
                    let out = &mut sk[j * acc_stride..][..m];
                    crate::qjl::accumulate_signs_rows_in(backend, r.signs, r.sign_stride, wj, out)?;
                }
            }
        }
        h += k;
    }
    Ok(())
}

/// The backend's kernel for `k` weight sets sharing each code's lookup
/// (AVX-512 and AVX2 up to 6 bits, NEON up to 4; 2 to 4 sets), if it has
/// one for the shape: whether it ran.
fn codes_multi(
    backend: Checked,
    cb: &Codebook,
    rows: &WeightedCodes<'_>,
    out: &mut [f32],
    k: usize,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    return avx512::multi::accumulate_rows(backend, cb, rows, out, k)
        || avx2::accumulate_rows_multi(backend, cb, rows, out, k);
    #[cfg(target_arch = "aarch64")]
    return neon::accumulate_rows_multi(backend, cb, rows, out, k);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (backend, cb, rows, out, k);
        false
    }
}

/// The backend's kernel for `k` weight sets sharing each row's signs
/// (AVX-512, AVX2 and NEON; 2 to 4 sets), if it has one for the shape:
/// whether it ran.
fn signs_multi(
    backend: Checked,
    sets: &crate::qjl::SignSets<'_>,
    acc: &mut [f32],
    k: usize,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    return avx512::multi::accumulate_signs(backend, sets, acc, k)
        || crate::qjl::avx2_accumulate_signs_multi(backend, sets, acc, k);
    #[cfg(target_arch = "aarch64")]
    return crate::qjl::neon_accumulate_signs_multi(backend, sets, acc, k);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (backend, sets, acc, k);
        false
    }
}
