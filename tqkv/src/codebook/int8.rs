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
use crate::quant::MAX_DIM;

/// Largest magnitude of a rounded query value or centroid.
const LEVEL: f64 = 127.0;

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
        *o = libm::round(v as f64 * factor).clamp(-LEVEL, LEVEL) as i8;
    }
    max
}

/// The factor from integer sums to scores, `max|q|·max|c| / 127²`,
/// rounded to f32 once.
pub(crate) fn multiplier(q_max: f32, c_max: f32) -> f32 {
    (q_max as f64 * c_max as f64 / (LEVEL * LEVEL)) as f32
}

/// A query rounded for [`dot_rows`]: `values[..dim]` (zeros after) and
/// `max|q|`.
pub(crate) struct Int8Query {
    pub values: [i8; MAX_DIM],
    pub dim: usize,
    pub max: f32,
}

impl Int8Query {
    /// `q` rounded (`q.len() ≤ MAX_DIM` and finite: the caller's promise).
    pub(crate) fn of(q: &[f32]) -> Int8Query {
        let mut values = [0i8; MAX_DIM];
        let max = round_into(q, &mut values);
        Int8Query {
            values,
            dim: q.len(),
            max,
        }
    }
}

/// The arguments of a call, rounded: `n` rows of `bits`-bit codes,
/// `stride` bytes apart (validated by `codebook::dot_rows_int8_in`: they
/// fit in `rows`, each `packed_len(q.dim, bits)` bytes long).
pub(crate) struct Int8Rows<'a> {
    pub bits: u8,
    /// The rounded centroids.
    pub c8: &'a [i8; 256],
    pub q: &'a Int8Query,
    /// From integer sums to scores ([`multiplier`]).
    pub mult: f32,
    pub rows: &'a [u8],
    pub stride: usize,
}

/// Rows scored by the backend's kernel, from the first (a whole number of
/// its blocks: all rows on AVX2 and NEON, sixteen at a time on AVX-512),
/// 0 where it has none for these codes (more than 6 bits; the scalar
/// backend); the portable loop scores the rest.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(super) fn simd_rows(backend: Checked, a: &Int8Rows<'_>, out: &mut [f32]) -> usize {
    match backend.backend() {
        #[cfg(target_arch = "x86_64")]
        crate::Backend::Avx512 => super::avx512::int8::dot_rows(backend, a, out),
        #[cfg(target_arch = "x86_64")]
        crate::Backend::Avx2 => super::avx2::int8::dot_rows(backend, a, out),
        #[cfg(target_arch = "aarch64")]
        crate::Backend::Neon => super::neon::int8::dot_rows(backend, a, out),
        _ => 0,
    }
}

/// No SIMD backend on this architecture: the portable loop scores every
/// row.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(super) fn simd_rows(_: Checked, _: &Int8Rows<'_>, _: &mut [f32]) -> usize {
    0
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
