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

use super::Scoring;
use super::rows::{Loops, exp_nonpositive};
use super::state::Partial;
use crate::backend::Checked;
use crate::codebook::{self, Codebook};
use crate::quant::{Fields, KvCache, Quantizer};
use crate::{Error, qjl};

/// Tokens per block: the key or value codes of a block at d = 128, 4 bits,
/// take 33 KB, so that they stay in L1 (48 KB on Zen 4) or L2 while every
/// query vector reads them; 256 was slower for one query (more calls per
/// token), 1024 no faster.
pub(super) const BLOCK: usize = 512;

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
    /// Head dimension of keys and queries.
    pub dim: usize,
    /// Head dimension of values and of the output.
    pub value_dim: usize,
    /// Sketch bits of the keys (0 unless prod).
    pub key_sketch: usize,
    /// Sketch bits of the values (0 unless prod).
    pub value_sketch: usize,
}

impl Shape {
    pub(super) fn of<B: AsRef<[u8]>>(cache: &KvCache<B>) -> Shape {
        Shape {
            dim: cache.config().dim,
            value_dim: cache.config().value_dim,
            key_sketch: sketch_bits(cache.key_quantizer()),
            value_sketch: sketch_bits(cache.value_quantizer()),
        }
    }

    /// f32 values of a prepared query: rotated, then sketched for prod
    /// keys, then rounded for [`Scoring::Int8`] (that part unused by
    /// exact scoring).
    pub(super) fn prepared(self) -> usize {
        self.rounded_at() + codebook::int8::rounded_len(self.dim)
    }

    /// Where a prepared query's rounded values start.
    fn rounded_at(self) -> usize {
        self.dim + self.key_sketch
    }

    /// f32 scratch of [`run`] for `queries` query vectors (the partial
    /// state excluded).
    pub(super) fn scratch(self, queries: usize) -> usize {
        queries
            .saturating_mul(self.prepared() + 3 * BLOCK)
            .saturating_add(BLOCK + self.value_dim)
    }
}

/// `field[range]` of rows `per_row` bytes each.
fn rows_of<'a>(field: &'a [u8], per_row: usize, range: &Range<usize>) -> Result<&'a [u8], Error> {
    field
        .get(range.start * per_row..range.end * per_row)
        .ok_or(Error::CorruptCache("a field is shorter than its tokens"))
}

/// Each query vector of `q` (`dim` values each) rotated into the key
/// quantiser's domain, then, for prod keys, sketched, and for
/// [`Scoring::Int8`] rounded (once a call: the blocks of keys share it):
/// `out` holds `Shape::prepared()` values per query vector.
pub(super) fn prepare(
    backend: Checked,
    scoring: Scoring,
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
        let (qr, rest) = prepared.split_at_mut(d);
        let (sq, rounded) = rest.split_at_mut(shape.key_sketch);
        qr.copy_from_slice(qi);
        match keys {
            Quantizer::Baseline(_) => {}
            Quantizer::Mse(m) => m.rotation().rotate_in(backend, qr)?,
            Quantizer::Prod(p) => {
                p.rotation().rotate_in(backend, qr)?;
                p.sketcher().project_in(backend, qr, sq)?;
            }
        }
        if scoring == Scoring::Int8 {
            codebook::int8::round_query(qr, rounded);
        }
    }
    Ok(())
}

/// Scores `q·k̂_t/√d` of the keys in `rows` for every query of `prepared`
/// (made by [`prepare`]): query `h`'s scores go to
/// `out[h·out_stride..][..rows.len()]`; `extra` holds at least
/// `rows.len()` values.
#[allow(clippy::too_many_arguments)]
pub(super) fn key_scores<B: AsRef<[u8]>>(
    backend: Checked,
    scoring: Scoring,
    cache: &KvCache<B>,
    keys: &Fields<'_>,
    prepared: &[f32],
    rows: Range<usize>,
    out: &mut [f32],
    out_stride: usize,
    extra: &mut [f32],
) -> Result<(), Error> {
    let shape = Shape::of(cache);
    let kq = cache.key_quantizer();
    let [norm_bytes, _, row, sketch] = kq.fields();
    let norm = cache.config().norm;
    let d = shape.dim;
    let n = rows.len();
    let queries = codebook::Queries {
        values: prepared,
        dim: d,
        stride: shape.prepared(),
        count: prepared.len() / shape.prepared(),
    };
    let norms = rows_of(keys.norms, norm_bytes, &rows)?;
    let codes = rows_of(keys.codes, row, &rows)?;
    let cb = codebook_of(kq);
    match scoring {
        Scoring::Exact => {
            codebook::dot_rows_multi_in(backend, cb, queries, codes, row, n, out, out_stride)?
        }
        Scoring::Int8 => {
            let rounded = codebook::Queries {
                values: &prepared[shape.rounded_at()..],
                ..queries
            };
            codebook::dot_rows_int8_multi_in(backend, cb, rounded, codes, row, n, out, out_stride)?
        }
    }
    let inv = (1.0 / libm::sqrt(d as f64)) as f32;
    let k = Loops(backend);
    for (h, pq) in prepared.chunks_exact(shape.prepared()).enumerate() {
        let out = &mut out[h * out_stride..][..n];
        if let Quantizer::Prod(p) = kq {
            let sk = p.sketcher();
            let extra = &mut extra[..n];
            let signs = rows_of(keys.signs, sketch, &rows)?;
            qjl::signed_sum_rows_in(backend, &pq[d..shape.rounded_at()], signs, sketch, extra)?;
            k.mul_norms(norm, out, norms, 1.0)?;
            // The sketch term c·γ·⟨S·q, s⟩ from the raw sums.
            let residual = rows_of(keys.residual_norms, norm_bytes, &rows)?;
            k.mul_norms(norm, extra, residual, sk.scale())?;
            k.add_scaled(out, extra, inv)?;
        } else {
            k.mul_norms(norm, out, norms, inv)?;
        }
    }
    Ok(())
}

/// `acc_h += Σ_t e_{h,t}·v̂_t` over the values in `rows` for every query `h`
/// (exponentials `e[h·BLOCK..][..rows.len()]`, zero past a query's limit),
/// in the rotated domain and, for prod values, the sketch domain, into the
/// accumulators of `state`. `work` holds `2·queries·BLOCK` values.
fn add_values<B: AsRef<[u8]>>(
    backend: Checked,
    cache: &KvCache<B>,
    vals: &Fields<'_>,
    e: &[f32],
    rows: Range<usize>,
    state: &mut Partial<'_>,
    work: &mut [f32],
) -> Result<(), Error> {
    let shape = Shape::of(cache);
    let vq = cache.value_quantizer();
    let [norm_bytes, _, row, sketch] = vq.fields();
    let norm = cache.config().norm;
    let k = Loops(backend);
    let n = rows.len();
    let queries = state.queries();
    let (weights, residual) = work.split_at_mut(queries * BLOCK);
    let norms = rows_of(vals.norms, norm_bytes, &rows)?;
    let prod = matches!(vq, Quantizer::Prod(_));
    for h in 0..queries {
        let w = &mut weights[h * BLOCK..][..n];
        w.copy_from_slice(&e[h * BLOCK..][..n]);
        k.mul_norms(norm, w, norms, 1.0)?;
        if prod {
            let gammas = rows_of(vals.residual_norms, norm_bytes, &rows)?;
            let r = &mut residual[h * BLOCK..][..n];
            r.copy_from_slice(&e[h * BLOCK..][..n]);
            k.mul_norms(norm, r, gammas, 1.0)?;
        }
    }
    let weighted = codebook::WeightedRows {
        codes: rows_of(vals.codes, row, &rows)?,
        code_stride: row,
        signs: if prod {
            rows_of(vals.signs, sketch, &rows)?
        } else {
            &[]
        },
        sign_stride: sketch,
        n,
        weights,
        sign_weights: if prod { residual } else { &[] },
        w_stride: BLOCK,
    };
    let (acc, stride) = state.all_accumulators();
    let (d, m) = (shape.value_dim, shape.value_sketch);
    codebook::accumulate_multi_in(
        backend,
        codebook_of(vq),
        &weighted,
        queries,
        d,
        m,
        acc,
        stride,
    )
}

/// Adds tokens `range` of KV head `head` to `state`, for the query vectors
/// of `q` (validated: `state` has their number and the cache's shape).
/// Query vectors come in `limits.len()` positions of equal size; position
/// `p` sees tokens below `limits[p]` only. `scratch` holds
/// `Shape::scratch(queries)` values.
#[allow(clippy::too_many_arguments)]
pub(super) fn run<B: AsRef<[u8]>>(
    backend: Checked,
    scoring: Scoring,
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
    let (prepared, rest) = scratch.split_at_mut(queries * shape.prepared());
    prepare(backend, scoring, cache.key_quantizer(), q, shape, prepared)?;
    run_prepared(
        backend, scoring, cache, head, prepared, limits, range, state, rest,
    )
}

/// [`run`] for query vectors already [`prepare`]d (`Shape::prepared()`
/// values each): the ranges of one split share one preparation. `scratch`
/// holds `Shape::scratch(queries)` values less the prepared ones.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_prepared<B: AsRef<[u8]>>(
    backend: Checked,
    scoring: Scoring,
    cache: &KvCache<B>,
    head: usize,
    prepared: &[f32],
    limits: &[usize],
    range: Range<usize>,
    state: &mut Partial<'_>,
    scratch: &mut [f32],
) -> Result<(), Error> {
    let shape = Shape::of(cache);
    let queries = prepared.len() / shape.prepared();
    let per_position = queries / limits.len().max(1);
    let heads = cache.config().heads;
    let keys = cache
        .key_fields(head)
        .ok_or(Error::InvalidHead { head, heads })?;
    let vals = cache
        .value_fields(head)
        .ok_or(Error::InvalidHead { head, heads })?;
    let (scores, rest) = scratch.split_at_mut(queries * BLOCK);
    let (extra, rest) = rest.split_at_mut(BLOCK);
    let work = &mut rest[..2 * queries * BLOCK];
    let k = Loops(backend);
    let mut start = range.start;
    while start < range.end {
        let end = (start + BLOCK).min(range.end);
        // Tokens start..stop(i) for query i; the block is read up to the
        // furthest of them.
        let stop = |i: usize| end.min(limits[i / per_position]).max(start);
        let far = (0..queries).map(stop).max().unwrap_or(start);
        if far == start {
            start = end;
            continue;
        }
        let n = far - start;
        key_scores(
            backend,
            scoring,
            cache,
            &keys,
            prepared,
            start..far,
            scores,
            BLOCK,
            extra,
        )?;
        // Each query's running softmax; exponentials past its limit are 0.
        for i in 0..queries {
            let s = &mut scores[i * BLOCK..][..n];
            let (mine, past) = s.split_at_mut(stop(i) - start);
            past.fill(0.0);
            if mine.is_empty() {
                continue;
            }
            // A finite query against finite norms can still overflow a score.
            let top = k.max_finite(mine)?.ok_or(Error::NonFinite)?;
            let max = state.raise_max(i, top);
            let sum = k.exp_sum(mine, max)?;
            state.add_sum(i, sum);
        }
        add_values(backend, cache, &vals, scores, start..far, state, work)?;
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
