//! Approximate row scores from 8-bit integers (opt-in; the exact `f32`
//! scores stay the default everywhere).
//!
//! The query and the centroids are each rounded to integers of magnitude
//! at most 127 under one scale of their own, `q ≈ s_q·q8` and
//! `c ≈ s_c·c8`, and a row's score is the integer dot product `Σ q8·c8[idx]`
//! times `s_q·s_c`. The sum is exact in `i32`, so every backend gives the
//! same bits; AVX-512 multiplies 64 code bytes an instruction (`vpdpbusd`,
//! VNNI) after looking them up with one `vpermb`, where the exact kernel
//! needs four lookups and four FMAs for the same codes. What it costs is
//! the rounding of `q` and `c`, bounded in [`dot_rows_int8`](super::dot_rows_int8).

use super::Codebook;
use super::pack::{packed_len, unpack_unchecked};
use crate::backend::Checked;

/// Largest magnitude of a rounded query value or centroid.
const LEVEL: f64 = 127.0;

/// Most queries rounded and scored together (AVX-512 shares each row's
/// loads and lookups between them).
pub(crate) const GROUP: usize = 4;

/// Codes unpacked per step of the portable loop.
const CHUNK: usize = 64;

/// The centroids of a codebook rounded to integers:
/// `c[j] ≈ max/127 · values[j]`.
pub(crate) struct Int8Centroids {
    /// One per level (the rest zero).
    pub values: [i8; 256],
    /// `max|c|`.
    pub max: f32,
}

impl Int8Centroids {
    pub(crate) fn of(cb: &Codebook) -> Int8Centroids {
        let mut values = [0i8; 256];
        let max = round_into(cb.centroids(), &mut values);
        Int8Centroids { values, max }
    }
}

/// `x` rounded into `out[..x.len()]` as `round(x·127/max|x|)`, computed in
/// f64 (so that no finite `x`, subnormals included, overflows the factor),
/// halves away from zero; returns `max|x|` (0 for an all-zero `x`, which
/// rounds to zeros). Finite `x` is the caller's promise.
pub(crate) fn round_into(x: &[f32], out: &mut [i8]) -> f32 {
    let max = max_abs(x);
    let factor = factor_of(max);
    for (o, &v) in out.iter_mut().zip(x) {
        *o = rounded(v, factor);
    }
    max
}

/// `max|x|` (0 for an empty or all-zero `x`).
fn max_abs(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// From values to rounded integers: `127/max` (0 for `max = 0`, which
/// rounds every value to 0).
fn factor_of(max: f32) -> f64 {
    if max == 0.0 { 0.0 } else { LEVEL / max as f64 }
}

/// One value rounded under `factor`.
fn rounded(v: f32, factor: f64) -> i8 {
    round_half_away(v as f64 * factor).clamp(-127, 127) as i8
}

/// f32 values a query takes rounded by [`round_query`].
pub(crate) const fn rounded_len(dim: usize) -> usize {
    dim + 1
}

/// `q` rounded as [`round_into`] rounds it, into
/// `out[..rounded_len(q.len())]`: `max|q|`, then the integers (exact as
/// f32). What `codebook::dot_rows_int8_multi_in` reads, so that attention
/// rounds a query once a call, not once a block of keys (rounding had
/// cost a fifth of a 512-key block's scoring). `q` finite: the caller's
/// promise.
pub(crate) fn round_query(q: &[f32], out: &mut [f32]) {
    let max = max_abs(q);
    let factor = factor_of(max);
    let (head, values) = out[..rounded_len(q.len())].split_at_mut(1);
    head[0] = max;
    for (o, &v) in values.iter_mut().zip(q) {
        *o = f32::from(rounded(v, factor));
    }
}

/// `y` rounded to the nearest integer, halves away from zero, for
/// `|y| < 2^31`: what `libm::round` gives, without its bit manipulation
/// (a query is rounded once per block of 512 keys; with `libm::round`,
/// two criterion runs had int8 decode slower than exact,
/// docs/benchmark-journal.md).
/// `y − trunc(y)` is exact at these magnitudes.
fn round_half_away(y: f64) -> i32 {
    let t = y as i32;
    let frac = y - t as f64;
    // Comparisons as numbers, not branches: which way a value rounds is a
    // coin toss, and a branch mispredicted every other value made
    // rounding a query cost half a microsecond.
    t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5)
}

/// The factor from integer sums to scores, `max|q|·max|c| / 127²`,
/// rounded to f32 once.
pub(crate) fn multiplier(q_max: f32, c_max: f32) -> f32 {
    (q_max as f64 * c_max as f64 / (LEVEL * LEVEL)) as f32
}

/// A query rounded for [`dot_rows`]: `values[..dim]`, then zeros up to a
/// whole number of 64-value chunks ([`padded`]); and `max|q|`.
#[derive(Clone, Copy)]
pub(crate) struct Int8Query<'a> {
    pub values: &'a [i8],
    pub dim: usize,
    pub max: f32,
}

/// The bytes a rounded query of `dim` values takes: whole chunks of 64.
pub(crate) const fn padded(dim: usize) -> usize {
    dim.div_ceil(CHUNK) * CHUNK
}

impl<'a> Int8Query<'a> {
    /// `q` rounded into `buf` (zeroed, at least [`padded`]`(q.len())`
    /// long; `q` finite: the caller's promises).
    pub(crate) fn of(q: &[f32], buf: &'a mut [i8]) -> Int8Query<'a> {
        let max = round_into(q, buf);
        Int8Query {
            values: &buf[..padded(q.len())],
            dim: q.len(),
            max,
        }
    }

    /// A query of `dim` values rounded by [`round_query`] into `words`,
    /// its bytes written to `buf` (zeroed, at least [`padded`]`(dim)`
    /// long).
    pub(crate) fn from_rounded(words: &[f32], dim: usize, buf: &'a mut [i8]) -> Int8Query<'a> {
        let (max, values) = (words[0], &words[1..rounded_len(dim)]);
        // 1.5·2^23 added to an integer of magnitude below 2^22 leaves it,
        // in two's complement, in the low bits of the sum's mantissa: adds
        // and truncations, which vectorise, where `as i8` checked each
        // value's range.
        const MAGIC: f32 = 12_582_912.0;
        for (b, &v) in buf.iter_mut().zip(values) {
            *b = (v + MAGIC).to_bits() as u8 as i8;
        }
        Int8Query {
            values: &buf[..padded(dim)],
            dim,
            max,
        }
    }
}

/// The arguments of a call, rounded: `n` rows of `bits`-bit codes,
/// `stride` bytes apart (validated by `codebook::dot_rows_int8_in`: they
/// fit in `rows`, each `packed_len(q.dim, bits)` bytes long).
#[derive(Clone, Copy)]
pub(crate) struct Int8Rows<'a> {
    pub bits: u8,
    /// The rounded centroids.
    pub c8: &'a [i8; 256],
    pub q: Int8Query<'a>,
    /// From integer sums to scores ([`multiplier`]).
    pub mult: f32,
    pub rows: &'a [u8],
    pub stride: usize,
}

/// Rows scored by the backend's kernel for every query of `a` (the same
/// rows, queries of their own; query `h`'s scores at
/// `out[h·out_stride..][..n]`), from the first: a whole number of the
/// kernel's blocks (all rows on AVX2 and NEON, sixteen at a time on
/// AVX-512), or 0 where it has none for this shape (more than 6 bits;
/// several queries outside AVX-512; the scalar backend). `a` is validated
/// for `n` rows and `out` for `a.len()` outputs.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[cfg_attr(target_arch = "aarch64", allow(unused_variables))]
pub(super) fn simd_rows(
    backend: Checked,
    a: &[Int8Rows<'_>],
    n: usize,
    out: &mut [f32],
    out_stride: usize,
) -> usize {
    match (backend.backend(), a) {
        #[cfg(target_arch = "x86_64")]
        (crate::Backend::Avx512, _) => {
            super::avx512::int8::dot_rows(backend, a, n, out, out_stride)
        }
        #[cfg(target_arch = "x86_64")]
        (crate::Backend::Avx2, [one]) => super::avx2::int8::dot_rows(backend, one, &mut out[..n]),
        #[cfg(target_arch = "aarch64")]
        (crate::Backend::Neon, [one]) => super::neon::int8::dot_rows(backend, one, &mut out[..n]),
        _ => 0,
    }
}

/// No SIMD backend on this architecture: the portable loop scores every
/// row.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(super) fn simd_rows(
    _: Checked,
    _: &[Int8Rows<'_>],
    _: usize,
    _: &mut [f32],
    _: usize,
) -> usize {
    0
}

/// One query's scores of `out.len()` rows (`a` validated for them): the
/// backend's kernel, then the portable loop for what it left.
pub(super) fn score_rows(backend: Checked, a: &Int8Rows<'_>, out: &mut [f32]) {
    let n = out.len();
    let done = simd_rows(backend, core::slice::from_ref(a), n, out, n);
    let rest = Int8Rows {
        rows: a.rows.get(done * a.stride..).unwrap_or(&[]),
        ..*a
    };
    dot_rows(&rest, &mut out[done..]);
}

/// The portable loop, the reference of the SIMD kernels: `out[r]` is row
/// `r`'s score, `Σ_i q8[i]·c8[idx_{r,i}]` (exact) times `mult`.
pub(super) fn dot_rows(a: &Int8Rows<'_>, out: &mut [f32]) {
    let (bits, c8, q, mult) = (a.bits, a.c8, a.q, a.mult);
    let (packed_rows, row_stride) = (a.rows, a.stride);
    let row_len = packed_len(q.dim, bits);
    let per_chunk = CHUNK / 8 * bits as usize;
    let mut idx = [0u8; CHUNK];
    for (r, o) in out.iter_mut().enumerate() {
        let row = &packed_rows[r * row_stride..][..row_len];
        let mut sum = 0i32;
        for (qs, src) in q.values[..q.dim].chunks(CHUNK).zip(row.chunks(per_chunk)) {
            let idx = &mut idx[..qs.len()];
            unpack_unchecked(bits, src, idx);
            for (&qi, &i) in qs.iter().zip(idx.iter()) {
                sum += qi as i32 * c8[i as usize] as i32;
            }
        }
        *o = sum as f32 * mult;
    }
}
