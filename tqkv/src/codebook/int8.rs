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
    let max = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if max == 0.0 {
        out[..x.len()].fill(0);
        return 0.0;
    }
    let factor = LEVEL / max as f64;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = round_half_away(v as f64 * factor).clamp(-127, 127) as i8;
    }
    max
}

/// `y` rounded to the nearest integer, halves away from zero, for
/// `|y| < 2^31`: what `libm::round` gives, without its bit manipulation
/// (a query is rounded once per block of 512 keys; with `libm::round`,
/// two criterion runs had int8 decode slower than exact, BENCHMARKS.md).
/// `y − trunc(y)` is exact at these magnitudes.
fn round_half_away(y: f64) -> i32 {
    let t = y as i32;
    let frac = y - t as f64;
    if frac >= 0.5 {
        t + 1
    } else if frac <= -0.5 {
        t - 1
    } else {
        t
    }
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
