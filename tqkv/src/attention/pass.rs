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
use super::rows::{Loops, ProdParts, ValueWeights, exp_nonpositive};
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
    /// state excluded): per query vector its preparation, scores, raw
    /// sketch sums and two sets of value weights; once, the block's four
    /// sets of norms ([`BlockNorms`]).
    pub(super) fn scratch(self, queries: usize) -> usize {
        queries
            .saturating_mul(self.prepared() + 4 * BLOCK)
            .saturating_add(NORM_SETS * BLOCK + self.value_dim)
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

/// Sets of norms a block decodes ([`BlockNorms`]).
pub(super) const NORM_SETS: usize = 4;

/// The norms of a block's tokens as f32, decoded once for every query
/// vector: the keys' `‖k‖` and (prod keys) residual norms, the values'
/// `‖v‖` and (prod values) residual norms γ. Empty for the parts a
/// quantiser does not have.
pub(super) struct BlockNorms<'s> {
    pub keys: &'s [f32],
    pub key_residuals: &'s [f32],
    pub values: &'s [f32],
    pub value_residuals: &'s [f32],
}

/// The norms of `rows` decoded into `buf` (`NORM_SETS·rows.len()` values
/// at least); with `vals`, the values' too.
fn decode_block_norms<'s, B: AsRef<[u8]>>(
    backend: Checked,
    cache: &KvCache<B>,
    keys: &Fields<'_>,
    vals: Option<&Fields<'_>>,
    rows: &Range<usize>,
    buf: &'s mut [f32],
) -> Result<BlockNorms<'s>, Error> {
    let n = rows.len();
    let needed = NORM_SETS * n;
    let found = buf.len();
    let buf = buf
        .get_mut(..needed)
        .ok_or(Error::BufferTooShort { needed, found })?;
    let (key_norms, rest) = buf.split_at_mut(n);
    let (key_residuals, rest) = rest.split_at_mut(n);
    let (values, value_residuals) = rest.split_at_mut(n);
    let kq = cache.key_quantizer();
    let key_norms = decode_norms(backend, cache, kq, keys.norms, rows, key_norms)?;
    let key_residuals = decode_residuals(backend, cache, kq, keys, rows, key_residuals)?;
    let (values, value_residuals) = match vals {
        Some(v) => {
            let vq = cache.value_quantizer();
            (
                decode_norms(backend, cache, vq, v.norms, rows, values)?,
                decode_residuals(backend, cache, vq, v, rows, value_residuals)?,
            )
        }
        None => (&[][..], &[][..]),
    };
    Ok(BlockNorms {
        keys: key_norms,
        key_residuals,
        values,
        value_residuals,
    })
}

/// The norms in `field` (stored as `q` stores them) of `rows`, into `out`.
fn decode_norms<'s, B: AsRef<[u8]>>(
    backend: Checked,
    cache: &KvCache<B>,
    q: &Quantizer,
    field: &[u8],
    rows: &Range<usize>,
    out: &'s mut [f32],
) -> Result<&'s [f32], Error> {
    let stored = rows_of(field, q.fields()[0], rows)?;
    Loops(backend).decode_norms(cache.config().norm, stored, out)?;
    Ok(out)
}

/// The residual norms of a prod quantiser's `rows` into `out`; empty for
/// the others.
fn decode_residuals<'s, B: AsRef<[u8]>>(
    backend: Checked,
    cache: &KvCache<B>,
    q: &Quantizer,
    f: &Fields<'_>,
    rows: &Range<usize>,
    out: &'s mut [f32],
) -> Result<&'s [f32], Error> {
    match q {
        Quantizer::Prod(_) => decode_norms(backend, cache, q, f.residual_norms, rows, out),
        _ => Ok(&[]),
    }
}

/// `x[..n]`, or [`Error::BufferTooShort`].
fn prefix(x: &[f32], n: usize) -> Result<&[f32], Error> {
    x.get(..n).ok_or(Error::BufferTooShort {
        needed: n,
        found: x.len(),
    })
}

/// The centroid sums `Σ_j q_j·c[idx_{t,j}]` of the keys in `rows` for
/// every query of `prepared` (made by [`prepare`]): query `h`'s go to
/// `out[h·out_stride..][..rows.len()]`, to be finished by [`finish_scores`].
#[allow(clippy::too_many_arguments)]
fn raw_scores<B: AsRef<[u8]>>(
    backend: Checked,
    scoring: Scoring,
    cache: &KvCache<B>,
    keys: &Fields<'_>,
    prepared: &[f32],
    rows: &Range<usize>,
    out: &mut [f32],
    out_stride: usize,
) -> Result<(), Error> {
    let shape = Shape::of(cache);
    let kq = cache.key_quantizer();
    let row = kq.fields()[2];
    let d = shape.dim;
    let n = rows.len();
    let queries = codebook::Queries {
        values: prepared,
        dim: d,
        stride: shape.prepared(),
        count: prepared.len() / shape.prepared(),
    };
    let codes = rows_of(keys.codes, row, rows)?;
    let cb = codebook_of(kq);
    match scoring {
        Scoring::Exact => {
            codebook::dot_rows_multi_in(backend, cb, queries, codes, row, n, out, out_stride)
        }
        Scoring::Int8 => {
            let rounded = codebook::Queries {
                values: &prepared[shape.rounded_at()..],
                ..queries
            };
            codebook::dot_rows_int8_multi_in(backend, cb, rounded, codes, row, n, out, out_stride)
        }
    }
}

/// Every query's raw sketch sums `⟨S·q, s_t⟩` of the prod keys in `rows`
/// into `out[h·out_stride..][..rows.len()]`, one pass over the signs for up
/// to four queries (`qjl::signed_sum_rows_multi_in`); nothing for other
/// keys.
fn sketch_sums<B: AsRef<[u8]>>(
    backend: Checked,
    cache: &KvCache<B>,
    keys: &Fields<'_>,
    prepared: &[f32],
    rows: &Range<usize>,
    out: &mut [f32],
    out_stride: usize,
) -> Result<(), Error> {
    let kq = cache.key_quantizer();
    if !matches!(kq, Quantizer::Prod(_)) {
        return Ok(());
    }
    let shape = Shape::of(cache);
    let sketch = kq.fields()[3];
    let signs = rows_of(keys.signs, sketch, rows)?;
    let queries = codebook::Queries {
        values: prepared.get(shape.dim..).unwrap_or(&[]),
        dim: shape.key_sketch,
        stride: shape.prepared(),
        count: prepared.len() / shape.prepared(),
    };
    let job = codebook::ScoreRows {
        q: queries,
        rows: signs,
        stride: sketch,
        n: rows.len(),
    };
    qjl::signed_sum_rows_multi_in(backend, job, out, out_stride)
}

/// One query's centroid sums over the first `out.len()` tokens of a
/// block (made by [`raw_scores`]) finished into the scores `q·k̂_t/√d`:
/// times the key norms, and for prod keys plus the sketch term
/// `c·γ·⟨S·q, s⟩` from its raw sketch sums `extra` (made by
/// [`sketch_sums`]; at least `out.len()` values). `norms` are the
/// block's.
fn finish_scores<B: AsRef<[u8]>>(
    backend: Checked,
    cache: &KvCache<B>,
    out: &mut [f32],
    extra: &[f32],
    norms: &BlockNorms<'_>,
) -> Result<(), Error> {
    let d = Shape::of(cache).dim;
    let n = out.len();
    let inv = (1.0 / libm::sqrt(d as f64)) as f32;
    let k = Loops(backend);
    let kq = cache.key_quantizer();
    let key_norms = prefix(norms.keys, n)?;
    if let Quantizer::Prod(p) = kq {
        let parts = ProdParts {
            norms: key_norms,
            extra: prefix(extra, n)?,
            residual: prefix(norms.key_residuals, n)?,
            c: p.sketcher().scale(),
            inv,
        };
        k.prod_scores(out, parts)
    } else {
        k.mul_by(out, key_norms, inv)
    }
}

/// Scores `q·k̂_t/√d` of the keys in `rows` for every query of `prepared`
/// (made by [`prepare`]): query `h`'s scores go to
/// `out[h·out_stride..][..rows.len()]`; `extra` holds at least
/// `(1 + NORM_SETS)·rows.len()` values.
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
    let n = rows.len();
    let queries = prepared.len() / Shape::of(cache).prepared();
    raw_scores(
        backend, scoring, cache, keys, prepared, &rows, out, out_stride,
    )?;
    let (extra, buf) = extra.split_at_mut((queries * n).min(extra.len()));
    sketch_sums(backend, cache, keys, prepared, &rows, extra, n)?;
    let norms = decode_block_norms(backend, cache, keys, None, &rows, buf)?;
    for h in 0..queries {
        let out = &mut out[h * out_stride..][..n];
        let extra = extra.get(h * n..).unwrap_or(&[]);
        finish_scores(backend, cache, out, extra, &norms)?;
    }
    Ok(())
}

/// `acc_h += Σ_t w_{h,t}·c[idx_t]` (and, for prod values, `Σ_t
/// r_{h,t}·s_t` in the sketch domain) over the values in `rows` for every
/// query `h`, into the accumulators of `state`: `work` holds the weights
/// `w_{h,t} = e_{h,t}·‖v_t‖` at `h·BLOCK` and after `queries·BLOCK` the
/// sign weights `r_{h,t} = e_{h,t}·γ_t` (zero past a query's limit).
fn add_values<B: AsRef<[u8]>>(
    backend: Checked,
    cache: &KvCache<B>,
    vals: &Fields<'_>,
    rows: Range<usize>,
    state: &mut Partial<'_>,
    work: &[f32],
) -> Result<(), Error> {
    let shape = Shape::of(cache);
    let vq = cache.value_quantizer();
    let [_, _, row, sketch] = vq.fields();
    let n = rows.len();
    let queries = state.queries();
    let (weights, residual) = work.split_at(queries * BLOCK);
    let prod = matches!(vq, Quantizer::Prod(_));
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
    let (extra, rest) = rest.split_at_mut(queries * BLOCK);
    let (work, rest) = rest.split_at_mut(2 * queries * BLOCK);
    let norm_buf = &mut rest[..NORM_SETS * BLOCK];
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
        let rows = start..far;
        raw_scores(
            backend, scoring, cache, &keys, prepared, &rows, scores, BLOCK,
        )?;
        sketch_sums(backend, cache, &keys, prepared, &rows, extra, BLOCK)?;
        let norms = decode_block_norms(backend, cache, &keys, Some(&vals), &rows, norm_buf)?;
        let (weights, residual) = work.split_at_mut(queries * BLOCK);
        // Each query's scores, running softmax and value weights; the
        // weights past its limit are 0.
        for i in 0..queries {
            let mine = stop(i) - start;
            let w = &mut weights[i * BLOCK..][..n];
            let r = &mut residual[i * BLOCK..][..n];
            w[mine..].fill(0.0);
            r[mine..].fill(0.0);
            if mine == 0 {
                continue;
            }
            let s = &mut scores[i * BLOCK..][..mine];
            finish_scores(backend, cache, s, &extra[i * BLOCK..], &norms)?;
            // A finite query against finite norms can still overflow a score.
            let top = k.max_finite(s)?.ok_or(Error::NonFinite)?;
            let max = state.raise_max(i, top);
            let weights = ValueWeights {
                norms: &norms.values[..mine],
                weights: &mut w[..mine],
                residuals: norms.value_residuals.get(..mine).unwrap_or(&[]),
                sign_weights: &mut r[..mine],
            };
            let sum = k.exp_weights(s, max, weights)?;
            state.add_sum(i, sum);
        }
        add_values(backend, cache, &vals, rows, state, work)?;
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
