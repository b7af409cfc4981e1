//! Attention decode straight on the compressed cache (`ARCHITECTURE.md`, "The pipeline").
//!
//! For one query `q` and one KV head, `softmax(q·K̂ᵀ/√d)·V̂` without
//! decoding a single key or value to the original domain:
//!
//! - the query is rotated once (and, for prod keys, projected once);
//! - every key is scored from its packed codes, `‖k‖·⟨R·q, c[idx]⟩`, plus
//!   `√(π/2)/m·γ·⟨S·R·q, s⟩` for prod keys (row kernels of
//!   [`codebook`](crate::codebook) and [`qjl`](crate::qjl));
//! - the softmax is the stable one, computed online in one pass over blocks
//!   of tokens (a larger maximum rescales what was accumulated; the sum of
//!   exponentials carries about 48 bits);
//! - values are accumulated in the rotated domain (`Σ_t e_t‖v_t‖·c[idx_t]`)
//!   and, for prod values, in the sketch domain (`Σ_t e_t·γ_t·s_t`, mapped
//!   back once with `Sᵀ`); the sum is normalised and un-rotated once.
//!
//! The shapes a runtime needs share that one pass (its blocks of 512 tokens
//! keep their codes in L1 while every query vector reads them):
//!
//! - grouped-query attention: `q` holds the `g` query heads of a KV head;
//! - several query positions at once, each with its causal limit
//!   ([`attend_many`]: speculative decoding, chunked prefill);
//! - a range of tokens into a [`Partial`] state that merges exactly with
//!   the states of other ranges ([`attend_partial`], [`Partial::merge`]),
//!   to split one long decode across cores; with the `parallel` feature,
//!   [`attend_parallel`] does it on rayon's thread pool.
//!
//! Grouped-query heads, two positions of a chunk, and a split decode:
//!
//! ```
//! use tqkv::attention::{attend_many, attend_partial, scratch_len, Partial};
//! use tqkv::quant::{CacheConfig, KvCache, Scheme};
//!
//! // One KV head, d = 64, shared by 3 query heads (as in SmolLM2).
//! let config = CacheConfig::new(Scheme::Kqv, 4, 1, 64, 1000);
//! let mut cache = KvCache::new(config, vec![0u8; config.bytes_needed()?])?;
//! let (k, v): (Vec<f32>, Vec<f32>) =
//!     (0..1000 * 64).map(|i| (((i * 7) % 13) as f32 - 6.0, (i % 5) as f32)).unzip();
//! cache.push_batch(&k, &v)?; // a prefill
//! // Two positions of a chunk (tokens 0..999 and 0..1000), 3 heads each.
//! let q = vec![0.1f32; 2 * 3 * 64];
//! let mut out = vec![0.0f32; q.len()];
//! let mut scratch = vec![0.0f32; scratch_len(&cache, 6)];
//! attend_many(&cache, 0, &q, &[999, 1000], &mut out, &mut scratch)?;
//! // The last position again, as two halves (e.g. two cores) merged.
//! let n = Partial::len_for(&cache, 3);
//! let (mut a_buf, mut b_buf) = (vec![0.0f32; n], vec![0.0f32; n]);
//! let mut a = Partial::new(&cache, 3, &mut a_buf)?;
//! let mut b = Partial::new(&cache, 3, &mut b_buf)?;
//! attend_partial(&cache, 0, &q[192..], 0..500, &mut a, &mut scratch)?;
//! attend_partial(&cache, 0, &q[192..], 500..1000, &mut b, &mut scratch)?;
//! a.merge(&b)?;
//! let mut split = vec![0.0f32; 192];
//! a.finish(&cache, &mut split, &mut scratch)?;
//! let close = |x: &f32, y: &f32| (x - y).abs() <= 1e-4 * y.abs().max(1.0);
//! assert!(split.iter().zip(&out[192..]).all(|(x, y)| close(x, y)));
//! # Ok::<(), tqkv::Error>(())
//! ```
//!
//! The result equals attention over the decoded `K̂`, `V̂` up to float
//! reassociation (tests/attention.rs: within 1e-4 relative, on every
//! backend).
//!
//! That is with keys scored in f32, the default. The `_with` functions
//! ([`attend_many_with`], [`attend_partial_with`], [`probabilities_with`],
//! and `attend_parallel_with` with the `parallel` feature) also take
//! [`Scoring::Int8`]: key scores from the query and centroids
//! rounded to 8-bit integers, approximate, the same bits on every backend,
//! and faster to score on AVX-512.
//!
//! An empty cache attends to nothing: the output is zeros.
//!
//! ```
//! use tqkv::attention::{attend, scratch_len};
//! use tqkv::quant::{CacheConfig, KvCache, Scheme};
//!
//! let config = CacheConfig::new(Scheme::Kqv, 4, 1, 64, 16).with_seed(3);
//! let mut buf = vec![0u8; config.bytes_needed()?];
//! let mut cache = KvCache::new(config, &mut buf[..])?;
//! for t in 0..16 {
//!     let k: Vec<f32> = (0..64).map(|i| ((i + t) % 7) as f32 - 3.0).collect();
//!     cache.push(&k, &[t as f32; 64])?;
//! }
//! let q = [0.1f32; 64];
//! let mut out = [0.0f32; 64];
//! let mut scratch = vec![0.0f32; scratch_len(&cache, 1)];
//! attend(&cache, 0, &q, &mut out, &mut scratch)?;
//! // A convex combination of values 0 … 15.
//! assert!(out.iter().all(|&v| v > -1.0 && v < 16.0));
//! # Ok::<(), tqkv::Error>(())
//! ```

use core::ops::Range;

use crate::quant::KvCache;
use crate::{Backend, Error};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(feature = "parallel")]
mod parallel;
mod pass;
mod rows;
mod state;

#[cfg(feature = "parallel")]
pub use parallel::{attend_parallel, attend_parallel_on, attend_parallel_with};
pub use state::Partial;
#[cfg(feature = "capi")]
pub(crate) use state::{finish_buffer, merge_buffers};

use pass::{BLOCK, Shape};

/// How keys are scored against the query: the one choice of precision the
/// decode offers (values are always accumulated in f32).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Scoring {
    /// In f32, as [`codebook::dot_rows`](crate::codebook::dot_rows): the
    /// result equals attention over the decoded cache up to float
    /// reassociation. The default of every function without `_with`.
    #[default]
    Exact,
    /// The centroid part of each key score from 8-bit integers, as
    /// [`codebook::dot_rows_int8`](crate::codebook::dot_rows_int8): the
    /// rotated query and the centroids are rounded to integers of at most
    /// 127 and multiplied exactly. Approximate (about 0.5 % of a score's
    /// spread at 4 bits; its cost in attention KL on real heads is in
    /// `docs/evaluate/`), the same bits on every backend, and about twice
    /// as fast to score on AVX-512 (VNNI). The QJL part of prod keys stays
    /// exact.
    Int8,
}

/// f32 values of scratch that [`attend`], [`attend_many`],
/// [`attend_partial`] and [`probabilities`] need for `queries` query
/// vectors (the length of `q` over `dim`: query heads times positions).
/// It does not grow with the tokens in the cache.
pub fn scratch_len<B: AsRef<[u8]>>(cache: &KvCache<B>, queries: usize) -> usize {
    let shape = Shape::of(cache);
    shape
        .scratch(queries)
        .saturating_add(Partial::len_for(cache, queries))
}

/// Attention of the query head(s) `q` over KV head `head`, on the detected
/// backend: `q` holds `g·dim` values, `g` query heads that share the KV head
/// (grouped-query attention), and they are all scored in one pass over the
/// codes; `out` receives `g·value_dim` values (`value_dim` is `dim` unless
/// the cache's values have a dimension of their own).
///
/// # Errors
/// [`Error::InvalidHead`] if `head` is out of range; [`Error::LengthMismatch`]
/// unless `q.len()` is a positive multiple `g·dim` of `dim` and
/// `out.len() == g·value_dim`;
/// [`Error::BufferTooShort`] if `scratch` is shorter than
/// [`scratch_len`]`(cache, g)`; [`Error::NonFinite`] for a NaN or ∞ in `q`,
/// or a score that overflows f32 (a query of norm near
/// `f32::MAX / quant::MAX_NORM`).
pub fn attend<B: AsRef<[u8]>>(
    cache: &KvCache<B>,
    head: usize,
    q: &[f32],
    out: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), Error> {
    attend_on(Backend::detect(), cache, head, q, out, scratch)
}

/// [`attend`] on a chosen backend.
///
/// # Errors
/// As [`attend`], plus [`Error::BackendUnavailable`].
pub fn attend_on<B: AsRef<[u8]>>(
    backend: Backend,
    cache: &KvCache<B>,
    head: usize,
    q: &[f32],
    out: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), Error> {
    attend_many_on(backend, cache, head, q, &[cache.len()], out, scratch)
}

/// Attention of several query positions at once (speculative decoding,
/// chunked prefill), each with its own causal limit, reading the codes
/// once: `q` holds `limits.len()` positions of `g·dim` values each (the
/// same `g` query heads of KV head `head` per position), and position `p`
/// attends to tokens `0..limits[p]`. `out` receives `g·value_dim` values
/// per position (zeros for a position whose limit is 0).
///
/// ```
/// use tqkv::attention::{attend, attend_many, scratch_len};
/// use tqkv::quant::{CacheConfig, KvCache, Scheme};
///
/// let config = CacheConfig::new(Scheme::Kqv, 4, 1, 64, 8).with_seed(2);
/// let mut cache = KvCache::new(config, vec![0u8; config.bytes_needed()?])?;
/// for t in 0..8 {
///     cache.push(&[t as f32 - 3.5; 64], &[t as f32; 64])?;
/// }
/// // Positions 5 and 8 of a chunk: each sees its own prefix.
/// let q = [0.3f32; 128];
/// let mut out = [0.0f32; 128];
/// let mut scratch = vec![0.0f32; scratch_len(&cache, 2)];
/// attend_many(&cache, 0, &q, &[5, 8], &mut out, &mut scratch)?;
/// // The same as attending over the first 5 tokens, and over all 8.
/// let (mut first, mut second) = ([0.0f32; 64], [0.0f32; 64]);
/// attend(&cache.prefix(5)?, 0, &q[..64], &mut first, &mut scratch)?;
/// attend(&cache, 0, &q[64..], &mut second, &mut scratch)?;
/// let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
/// assert!(close(&out[..64], &first) && close(&out[64..], &second));
/// # Ok::<(), tqkv::Error>(())
/// ```
///
/// # Errors
/// As [`attend`] for the `limits.len()·g` query vectors; also
/// [`Error::LengthMismatch`] unless `q.len()` is a multiple of
/// `limits.len()·dim`, and [`Error::InvalidRange`] for a limit past
/// `len()` (or no limits).
pub fn attend_many<B: AsRef<[u8]>>(
    cache: &KvCache<B>,
    head: usize,
    q: &[f32],
    limits: &[usize],
    out: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), Error> {
    attend_many_on(Backend::detect(), cache, head, q, limits, out, scratch)
}

/// [`attend_many`] on a chosen backend.
///
/// # Errors
/// As [`attend_many`], plus [`Error::BackendUnavailable`].
pub fn attend_many_on<B: AsRef<[u8]>>(
    backend: Backend,
    cache: &KvCache<B>,
    head: usize,
    q: &[f32],
    limits: &[usize],
    out: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), Error> {
    attend_many_with(
        backend,
        Scoring::Exact,
        cache,
        head,
        q,
        limits,
        out,
        scratch,
    )
}

/// [`attend_many_on`] with the keys scored as `scoring` says
/// ([`Scoring::Int8`]: approximate, faster).
///
/// ```
/// use tqkv::attention::{attend_many_with, attend_on, scratch_len, Scoring};
/// use tqkv::quant::{CacheConfig, KvCache, Scheme};
/// use tqkv::Backend;
///
/// let config = CacheConfig::new(Scheme::Kqv, 4, 1, 128, 64);
/// let mut cache = KvCache::new(config, vec![0u8; config.bytes_needed()?])?;
/// for t in 0..64 {
///     let k: Vec<f32> = (0..128).map(|i| ((i * 7 + t * 3) % 11) as f32 - 5.0).collect();
///     cache.push(&k, &[t as f32; 128])?;
/// }
/// let q: Vec<f32> = (0..128).map(|i| (i % 5) as f32 * 0.05).collect();
/// let (mut exact, mut fast) = ([0.0f32; 128], [0.0f32; 128]);
/// let mut scratch = vec![0.0f32; scratch_len(&cache, 1)];
/// attend_on(Backend::detect(), &cache, 0, &q, &mut exact, &mut scratch)?;
/// attend_many_with(Backend::detect(), Scoring::Int8, &cache, 0, &q, &[64], &mut fast, &mut scratch)?;
/// assert!((exact[0] - fast[0]).abs() < 0.05 * exact[0].abs());
/// # Ok::<(), tqkv::Error>(())
/// ```
///
/// # Errors
/// As [`attend_many_on`].
#[allow(clippy::too_many_arguments)]
pub fn attend_many_with<B: AsRef<[u8]>>(
    backend: Backend,
    scoring: Scoring,
    cache: &KvCache<B>,
    head: usize,
    q: &[f32],
    limits: &[usize],
    out: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), Error> {
    let queries = check(cache, head, q, Some(out.len()), scratch.len())?;
    let len = cache.len();
    let end = check_limits(limits, queries, len)?;
    let backend = backend.check()?;
    let (state_buf, work) = scratch.split_at_mut(Partial::len_for(cache, queries));
    let mut state = Partial::new(cache, queries, state_buf)?;
    pass::run(
        backend,
        scoring,
        cache,
        head,
        q,
        limits,
        0..end,
        &mut state,
        work,
    )?;
    state.finish_in(backend, cache, out, &mut work[..cache.config().value_dim])
}

/// Adds tokens `range` of KV head `head` to the partial state of the query
/// vectors `q` (`g·dim` values, as for [`attend`]) on the detected backend:
/// the primitive for splitting one decode across cores (each core its own
/// range and state, then [`Partial::merge`] and [`Partial::finish`]). A
/// state may also take several ranges one after the other.
///
/// # Errors
/// As [`attend`]; also [`Error::InvalidRange`] for an empty range or one
/// past `len()`, and [`Error::PartialShape`] if `state` is not one of `g`
/// query vectors of this cache's shape.
pub fn attend_partial<B: AsRef<[u8]>>(
    cache: &KvCache<B>,
    head: usize,
    q: &[f32],
    range: Range<usize>,
    state: &mut Partial<'_>,
    scratch: &mut [f32],
) -> Result<(), Error> {
    attend_partial_on(Backend::detect(), cache, head, q, range, state, scratch)
}

/// [`attend_partial`] on a chosen backend.
///
/// # Errors
/// As [`attend_partial`], plus [`Error::BackendUnavailable`].
pub fn attend_partial_on<B: AsRef<[u8]>>(
    backend: Backend,
    cache: &KvCache<B>,
    head: usize,
    q: &[f32],
    range: Range<usize>,
    state: &mut Partial<'_>,
    scratch: &mut [f32],
) -> Result<(), Error> {
    attend_partial_with(
        backend,
        Scoring::Exact,
        cache,
        head,
        q,
        range,
        state,
        scratch,
    )
}

/// [`attend_partial_on`] with the keys scored as `scoring` says (states
/// to be merged should all be made with the same scoring).
///
/// # Errors
/// As [`attend_partial_on`].
#[allow(clippy::too_many_arguments)]
pub fn attend_partial_with<B: AsRef<[u8]>>(
    backend: Backend,
    scoring: Scoring,
    cache: &KvCache<B>,
    head: usize,
    q: &[f32],
    range: Range<usize>,
    state: &mut Partial<'_>,
    scratch: &mut [f32],
) -> Result<(), Error> {
    let queries = check(cache, head, q, None, scratch.len())?;
    let len = cache.len();
    if range.start >= range.end || range.end > len {
        return Err(Error::InvalidRange {
            start: range.start,
            end: range.end,
            len,
        });
    }
    state.check(cache, queries)?;
    let backend = backend.check()?;
    let end = range.end;
    pass::run(
        backend,
        scoring,
        cache,
        head,
        q,
        &[end],
        range,
        state,
        scratch,
    )
}

/// The attention probabilities of one query head (`dim` values) over the
/// `len()` tokens of KV head `head`, into `probs`, on the detected backend
/// (for inspection and for the quality measures).
///
/// # Errors
/// As [`attend`], with `probs.len()` in place of `out.len()` (it must be
/// `len()`).
///
/// ```
/// use tqkv::attention::{probabilities, scratch_len};
/// use tqkv::quant::{CacheConfig, KvCache, Scheme};
///
/// let config = CacheConfig::new(Scheme::Kqv, 4, 1, 64, 4);
/// let mut cache = KvCache::new(config, vec![0u8; config.bytes_needed()?])?;
/// for t in 0..4 {
///     cache.push(&[t as f32 + 1.0; 64], &[0.5; 64])?;
/// }
/// let mut p = [0.0f32; 4];
/// let mut scratch = vec![0.0f32; scratch_len(&cache, 1)];
/// probabilities(&cache, 0, &[0.1; 64], &mut p, &mut scratch)?;
/// assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn probabilities<B: AsRef<[u8]>>(
    cache: &KvCache<B>,
    head: usize,
    q: &[f32],
    probs: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), Error> {
    probabilities_on(Backend::detect(), cache, head, q, probs, scratch)
}

/// [`probabilities`] on a chosen backend.
///
/// # Errors
/// As [`probabilities`], plus [`Error::BackendUnavailable`].
pub fn probabilities_on<B: AsRef<[u8]>>(
    backend: Backend,
    cache: &KvCache<B>,
    head: usize,
    q: &[f32],
    probs: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), Error> {
    probabilities_with(backend, Scoring::Exact, cache, head, q, probs, scratch)
}

/// [`probabilities_on`] with the keys scored as `scoring` says (the
/// evaluation measures [`Scoring::Int8`]'s cost in attention KL with it).
///
/// # Errors
/// As [`probabilities_on`].
pub fn probabilities_with<B: AsRef<[u8]>>(
    backend: Backend,
    scoring: Scoring,
    cache: &KvCache<B>,
    head: usize,
    q: &[f32],
    probs: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), Error> {
    // One query vector: `out` of one value vector.
    check(
        cache,
        head,
        q,
        Some(cache.config().value_dim),
        scratch.len(),
    )?;
    let len = cache.len();
    if probs.len() != len {
        return Err(Error::LengthMismatch {
            expected: len,
            found: probs.len(),
        });
    }
    let backend = backend.check()?;
    if len == 0 {
        return Ok(());
    }
    let shape = Shape::of(cache);
    let heads = cache.config().heads;
    let keys = cache
        .key_fields(head)
        .ok_or(Error::InvalidHead { head, heads })?;
    let (prepared, rest) = scratch.split_at_mut(shape.prepared());
    pass::prepare(backend, scoring, cache.key_quantizer(), q, shape, prepared)?;
    // Raw sign sums and the block's norms.
    let extra = &mut rest[..(1 + pass::NORM_SETS) * BLOCK];
    for (b, chunk) in probs.chunks_mut(BLOCK).enumerate() {
        let rows = b * BLOCK..b * BLOCK + chunk.len();
        let n = chunk.len();
        pass::key_scores(
            backend, scoring, cache, &keys, prepared, rows, chunk, n, extra,
        )?;
    }
    let k = rows::Loops(backend);
    let max = k.max_finite(probs)?.ok_or(Error::NonFinite)?;
    let inv_sum = (1.0 / k.exp_sum(probs, max)?) as f32;
    for p in probs.iter_mut() {
        *p *= inv_sum;
    }
    Ok(())
}

/// Checks the head, `q` against `out` (`value_dim` values per query vector,
/// when there is an output) and the scratch; returns the number of query
/// vectors in `q`.
fn check<B: AsRef<[u8]>>(
    cache: &KvCache<B>,
    head: usize,
    q: &[f32],
    out: Option<usize>,
    scratch: usize,
) -> Result<usize, Error> {
    let (d, dv) = (cache.config().dim, cache.config().value_dim);
    let heads = cache.config().heads;
    if head >= heads {
        return Err(Error::InvalidHead { head, heads });
    }
    if q.is_empty() || !q.len().is_multiple_of(d) {
        return Err(Error::LengthMismatch {
            expected: d,
            found: q.len(),
        });
    }
    let queries = q.len() / d;
    if let Some(out) = out
        && out != queries * dv
    {
        return Err(Error::LengthMismatch {
            expected: queries * dv,
            found: out,
        });
    }
    crate::error::finite(q)?;
    crate::error::need(scratch_len(cache, queries), scratch)?;
    Ok(queries)
}

/// Checks causal limits for `queries` query vectors over a cache of `len`
/// tokens; returns the largest.
fn check_limits(limits: &[usize], queries: usize, len: usize) -> Result<usize, Error> {
    let Some(&end) = limits.iter().max() else {
        return Err(Error::InvalidRange {
            start: 0,
            end: 0,
            len,
        });
    };
    if !queries.is_multiple_of(limits.len()) {
        return Err(Error::LengthMismatch {
            expected: limits.len(),
            found: queries,
        });
    }
    if end > len {
        return Err(Error::InvalidRange { start: 0, end, len });
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_nonpositive_is_within_2e_7_of_expf() {
        let mut worst = 0.0f64;
        // Miri checks for undefined behaviour, not accuracy: a coarse grid
        // there (a million soft-float exps take it many minutes).
        let steps: u32 = if cfg!(miri) { 1_000 } else { 1_000_000 };
        for i in 0..=steps {
            let x = -87.0 * i as f32 / steps as f32;
            let want = libm::exp(x as f64);
            let got = super::rows::exp_nonpositive(x) as f64;
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 2e-7, "worst relative error {worst}");
        assert_eq!(super::rows::exp_nonpositive(0.0), 1.0);
        assert_eq!(super::rows::exp_nonpositive(-0.0), 1.0);
        let tiny = super::rows::exp_nonpositive(-1000.0);
        assert!(tiny > 0.0 && tiny < 2e-38, "{tiny}");
    }
}
