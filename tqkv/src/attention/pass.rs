//! The one pass of attention over a range of tokens, for any number of
//! query vectors (the query heads of a KV head, times query positions).
//!
//! Tokens go by blocks of [`BLOCK`]. For each block every query vector
//! scores the block's keys (the key codes of a block stay in L1 after the
//! first query, so the cache is read from memory once), folds the scores
//! into its running softmax (online: a larger maximum rescales what was
//! accumulated), then every query vector adds the block's values with its
//! weights (again one read of the value codes). Query vector `i` sees the
//! tokens below its position's causal limit only.

use core::ops::Range;

use super::rows::{Loops, exp_nonpositive};
use super::state::Partial;
use crate::backend::Checked;
use crate::codebook::{self, Codebook};
use crate::quant::{Fields, KvCache, Quantizer};
use crate::{Error, qjl};

/// Tokens per block: the key or value codes of a block at d = 128, 4 bits,
/// take 17 KB, so that they stay in L1 while every query vector reads them.
pub(super) const BLOCK: usize = 256;

/// Sketch bits of a prod quantiser, else 0.
pub(super) fn sketch_bits(q: &Quantizer) -> usize {
    match q {
        Quantizer::Prod(p) => p.sketcher().m(),
        _ => 0,
    }
}

/// The codebook a quantiser's codes index.
fn codebook_of(q: &Quantizer) -> &Codebook {
    match q {
        Quantizer::Baseline(b) => b.codebook(),
        Quantizer::Mse(m) => m.codebook(),
        Quantizer::Prod(p) => p.mse().codebook(),
    }
}

/// The sizes of one query vector's pieces.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Shape {
    /// Head dimension.
    pub dim: usize,
    /// Sketch bits of the keys (0 unless prod).
    pub key_sketch: usize,
    /// Sketch bits of the values (0 unless prod).
    pub value_sketch: usize,
}

impl Shape {
    pub(super) fn of<B: AsRef<[u8]>>(cache: &KvCache<B>) -> Shape {
        Shape {
            dim: cache.config().dim,
            key_sketch: sketch_bits(cache.key_quantizer()),
            value_sketch: sketch_bits(cache.value_quantizer()),
        }
    }

    /// f32 values of a prepared query: rotated, then sketched for prod keys.
    pub(super) fn prepared(self) -> usize {
        self.dim + self.key_sketch
    }

    /// f32 scratch of [`run`] for `queries` query vectors (the partial
    /// state excluded).
    pub(super) fn scratch(self, queries: usize) -> usize {
        queries
            .saturating_mul(self.prepared() + BLOCK)
            .saturating_add(3 * BLOCK + self.dim)
    }
}

/// `field[range]` of rows `per_row` bytes each.
fn rows_of<'a>(field: &'a [u8], per_row: usize, range: &Range<usize>) -> Result<&'a [u8], Error> {
    field
        .get(range.start * per_row..range.end * per_row)
        .ok_or(Error::CorruptCache("a field is shorter than its tokens"))
}

/// Each query vector of `q` (`dim` values each) rotated into the key
/// quantiser's domain, then, for prod keys, sketched: `out` holds
/// `Shape::prepared()` values per query vector.
pub(super) fn prepare(
    backend: Checked,
    keys: &Quantizer,
    q: &[f32],
    shape: Shape,
    out: &mut [f32],
) -> Result<(), Error> {
    let d = shape.dim;
    for (qi, prepared) in q
        .chunks_exact(d)
        .zip(out.chunks_exact_mut(shape.prepared()))
    {
        let (qr, sq) = prepared.split_at_mut(d);
        qr.copy_from_slice(qi);
        match keys {
            Quantizer::Baseline(_) => {}
            Quantizer::Mse(m) => m.rotation().rotate_in(backend, qr)?,
            Quantizer::Prod(p) => {
                p.rotation().rotate_in(backend, qr)?;
                p.sketcher().project_in(backend, qr, sq)?;
            }
        }
    }
    Ok(())
}

/// Scores `q·k̂_t/√d` of the keys in `rows` into `out` (one per row), for a
/// query prepared by [`prepare`]; `extra` holds at least as many values.
pub(super) fn key_scores<B: AsRef<[u8]>>(
    backend: Checked,
    cache: &KvCache<B>,
    keys: &Fields<'_>,
    prepared: &[f32],
    rows: Range<usize>,
    out: &mut [f32],
    extra: &mut [f32],
) -> Result<(), Error> {
    let kq = cache.key_quantizer();
    let [norm_bytes, _, row, sketch] = kq.fields();
    let norm = cache.config().norm;
    let d = cache.config().dim;
    let (qr, sq) = prepared.split_at(d);
    let norms = rows_of(keys.norms, norm_bytes, &rows)?;
    let codes = rows_of(keys.codes, row, &rows)?;
    codebook::dot_rows_in(backend, codebook_of(kq), qr, codes, row, out)?;
    let inv = (1.0 / libm::sqrt(d as f64)) as f32;
    let k = Loops(backend);
    if let Quantizer::Prod(p) = kq {
        let sk = p.sketcher();
        let extra = &mut extra[..out.len()];
        let signs = rows_of(keys.signs, sketch, &rows)?;
        qjl::signed_sum_rows_in(backend, sq, signs, sketch, extra)?;
        k.mul_norms(norm, out, norms, 1.0)?;
        // The sketch term c·γ·⟨S·q, s⟩ from the raw sums.
        let residual = rows_of(keys.residual_norms, norm_bytes, &rows)?;
        k.mul_norms(norm, extra, residual, sk.scale())?;
        k.add_scaled(out, extra, inv)?;
    } else {
        k.mul_norms(norm, out, norms, inv)?;
    }
    Ok(())
}

/// `acc += Σ_t e_t·v̂_t` over the values in `rows` (one exponential `e_t`
/// each), in the rotated domain (`acc[..dim]`) and, for prod values, the
/// sketch domain (`acc[dim..]`). `work` holds at least `2·e.len()` values.
fn add_values<B: AsRef<[u8]>>(
    backend: Checked,
    cache: &KvCache<B>,
    vals: &Fields<'_>,
    e: &[f32],
    rows: Range<usize>,
    acc: &mut [f32],
    work: &mut [f32],
) -> Result<(), Error> {
    let (weights, residual) = work.split_at_mut(e.len());
    let vq = cache.value_quantizer();
    let [norm_bytes, _, row, sketch] = vq.fields();
    let norm = cache.config().norm;
    let d = cache.config().dim;
    let k = Loops(backend);
    let weights = &mut weights[..e.len()];
    weights.copy_from_slice(e);
    k.mul_norms(norm, weights, rows_of(vals.norms, norm_bytes, &rows)?, 1.0)?;
    let codes = rows_of(vals.codes, row, &rows)?;
    let (rotated, sketched) = acc.split_at_mut(d);
    let cb = codebook_of(vq);
    if let Quantizer::Prod(_) = vq {
        let residual = &mut residual[..e.len()];
        residual.copy_from_slice(e);
        let gammas = rows_of(vals.residual_norms, norm_bytes, &rows)?;
        k.mul_norms(norm, residual, gammas, 1.0)?;
        // Codes and signs of the same tokens in one pass.
        let rows = codebook::SignedRows {
            codes,
            code_stride: row,
            weights,
            signs: rows_of(vals.signs, sketch, &rows)?,
            sign_stride: sketch,
            sign_weights: residual,
        };
        codebook::accumulate_rows_and_signs_in(backend, cb, &rows, rotated, sketched)
    } else {
        codebook::accumulate_rows_in(backend, cb, codes, row, weights, rotated)
    }
}

/// Adds tokens `range` of KV head `head` to `state`, for the query vectors
/// of `q` (validated: `state` has their number and the cache's shape).
/// Query vectors come in `limits.len()` positions of equal size; position
/// `p` sees tokens below `limits[p]` only. `scratch` holds
/// `Shape::scratch(queries)` values.
#[allow(clippy::too_many_arguments)]
pub(super) fn run<B: AsRef<[u8]>>(
    backend: Checked,
    cache: &KvCache<B>,
    head: usize,
    q: &[f32],
    limits: &[usize],
    range: Range<usize>,
    state: &mut Partial<'_>,
    scratch: &mut [f32],
) -> Result<(), Error> {
    let shape = Shape::of(cache);
    let queries = q.len() / shape.dim;
    let per_position = queries / limits.len().max(1);
    let heads = cache.config().heads;
    let keys = cache
        .key_fields(head)
        .ok_or(Error::InvalidHead { head, heads })?;
    let vals = cache
        .value_fields(head)
        .ok_or(Error::InvalidHead { head, heads })?;
    let (prepared, rest) = scratch.split_at_mut(queries * shape.prepared());
    prepare(backend, cache.key_quantizer(), q, shape, prepared)?;
    let (scores, rest) = rest.split_at_mut(queries * BLOCK);
    let (extra, rest) = rest.split_at_mut(BLOCK);
    let work = &mut rest[..2 * BLOCK];
    let k = Loops(backend);
    let mut start = range.start;
    while start < range.end {
        let end = (start + BLOCK).min(range.end);
        let stop = |i: usize| end.min(limits[i / per_position]);
        // Keys: scores, then each query's running softmax.
        for i in 0..queries {
            let stop = stop(i);
            if stop <= start {
                continue;
            }
            let s = &mut scores[i * BLOCK..][..stop - start];
            let pi = &prepared[i * shape.prepared()..][..shape.prepared()];
            key_scores(backend, cache, &keys, pi, start..stop, s, extra)?;
            // A finite query against finite norms can still overflow a score.
            let top = k.max_finite(s)?.ok_or(Error::NonFinite)?;
            let max = state.raise_max(i, top);
            let sum = k.exp_sum(s, max)?;
            state.add_sum(i, sum);
        }
        // Values, weighted by the exponentials.
        for i in 0..queries {
            let stop = stop(i);
            if stop <= start {
                continue;
            }
            let e = &scores[i * BLOCK..][..stop - start];
            let acc = state.accumulators(i);
            add_values(backend, cache, &vals, e, start..stop, acc, work)?;
        }
        start = end;
    }
    Ok(())
}

/// `e^(a − b)` for `a ≤ b` (0 for `a = −∞`).
pub(super) fn decay(a: f32, b: f32) -> f32 {
    if a == f32::NEG_INFINITY {
        0.0
    } else {
        exp_nonpositive(a - b)
    }
}
