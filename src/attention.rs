//! Attention decode straight on the compressed cache (DESIGN §1).
//!
//! For one query `q` and one KV head, `softmax(q·K̂ᵀ/√d)·V̂` without
//! decoding a single key or value to the original domain:
//!
//! - the query is rotated once (and, for prod keys, projected once);
//! - every key is scored from its packed codes, `‖k‖·⟨R·q, c[idx]⟩`, plus
//!   `√(π/2)/m·γ·⟨S·R·q, s⟩` for prod keys (row kernels of
//!   [`codebook`] and [`qjl`]);
//! - the softmax is the stable one (maximum subtracted, sum in f64);
//! - values are accumulated in the rotated domain (`Σ_t p_t‖v_t‖·c[idx_t]`)
//!   and, for prod values, in the sketch domain (`Σ_t p_t·γ_t·s_t`, mapped
//!   back once with `Sᵀ`); the sum is un-rotated once.
//!
//! The result equals attention over the decoded `K̂`, `V̂` up to float
//! reassociation (tests/attention.rs: within 1e-4 relative, on every
//! backend). Grouped-query attention: `q` may hold several query heads
//! (`g·dim` values) that share the KV head; `out` then holds `g·dim`.
//!
//! An empty cache attends to nothing: the output is zeros.
//!
//! ```
//! use turbokv::attention::{attend, scratch_len};
//! use turbokv::qjl::Projection;
//! use turbokv::quant::{CacheConfig, KvCache, NormPrecision, Scheme};
//!
//! let config = CacheConfig {
//!     scheme: Scheme::Kqv, budget: 4, heads: 1, dim: 64, capacity: 16, seed: 3,
//!     projection: Projection::Hadamard, norm: NormPrecision::F16,
//! };
//! let mut buf = vec![0u8; config.bytes_needed()?];
//! let mut cache = KvCache::new(config, &mut buf[..])?;
//! for t in 0..16 {
//!     let k: Vec<f32> = (0..64).map(|i| ((i + t) % 7) as f32 - 3.0).collect();
//!     cache.push(&k, &[t as f32; 64])?;
//! }
//! let q = [0.1f32; 64];
//! let mut out = [0.0f32; 64];
//! let mut scratch = vec![0.0f32; scratch_len(&cache)];
//! attend(&cache, 0, &q, &mut out, &mut scratch)?;
//! // A convex combination of values 0 … 15.
//! assert!(out.iter().all(|&v| v > -1.0 && v < 16.0));
//! # Ok::<(), turbokv::Error>(())
//! ```

use crate::codebook;
use crate::quant::{KvCache, Quantizer};
use crate::{Backend, Error, qjl};

/// Sketch bits of a prod quantiser, else 0.
fn sketch_bits(q: &Quantizer) -> usize {
    match q {
        Quantizer::Prod(p) => p.sketcher().m(),
        _ => 0,
    }
}

/// f32 values of scratch [`attend`] needs for `cache` (as it is now: the
/// length grows with the number of tokens).
pub fn scratch_len<B: AsRef<[u8]>>(cache: &KvCache<B>) -> usize {
    let d = cache.config().dim;
    let m = sketch_bits(cache.key_quantizer()).max(sketch_bits(cache.value_quantizer()));
    3 * cache.len() + 3 * d + 2 * m
}

/// Attention of the query head(s) `q` over KV head `head`, on the detected
/// backend.
///
/// # Errors
/// [`Error::InvalidDim`] if `head` is out of range; [`Error::LengthMismatch`]
/// unless `q.len()` is a positive multiple of `dim` equal to `out.len()`;
/// [`Error::BufferTooShort`] if `scratch` is shorter than [`scratch_len`];
/// [`Error::NonFinite`] for a NaN or ∞ in `q`, or a score that overflows
/// f32 (a query of norm near `f32::MAX / quant::MAX_NORM`).
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
    let d = cache.config().dim;
    check(cache, head, q, out.len(), scratch.len())?;
    backend.check()?;
    let t = cache.len();
    for (qh, oh) in q.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        if t == 0 {
            oh.fill(0.0);
            continue;
        }
        let (probs, work) = scratch.split_at_mut(t);
        probabilities(backend, cache, head, qh, probs, work)?;
        values(backend, cache, head, probs, oh, work)?;
    }
    Ok(())
}

/// The attention probabilities of one query head (`dim` values) over the
/// `len()` tokens of KV head `head`, into `probs` (for inspection and for
/// the quality measures).
///
/// # Errors
/// As [`attend`], with `probs.len()` in place of `out.len()` (it must be
/// `len()`).
pub fn probabilities_on<B: AsRef<[u8]>>(
    backend: Backend,
    cache: &KvCache<B>,
    head: usize,
    q: &[f32],
    probs: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), Error> {
    let d = cache.config().dim;
    check(cache, head, q, d, scratch.len())?;
    if probs.len() != cache.len() {
        return Err(Error::LengthMismatch {
            expected: cache.len(),
            found: probs.len(),
        });
    }
    backend.check()?;
    if cache.is_empty() {
        return Ok(());
    }
    probabilities(backend, cache, head, q, probs, scratch)
}

fn check<B: AsRef<[u8]>>(
    cache: &KvCache<B>,
    head: usize,
    q: &[f32],
    out: usize,
    scratch: usize,
) -> Result<(), Error> {
    let d = cache.config().dim;
    if head >= cache.config().heads {
        return Err(Error::InvalidDim { dim: head });
    }
    if q.is_empty() || !q.len().is_multiple_of(d) || out != q.len() {
        return Err(Error::LengthMismatch {
            expected: d,
            found: q.len(),
        });
    }
    if q.iter().any(|v| !v.is_finite()) {
        return Err(Error::NonFinite);
    }
    let needed = scratch_len(cache);
    if scratch < needed {
        return Err(Error::BufferTooShort {
            needed,
            found: scratch,
        });
    }
    Ok(())
}

/// Scores of every key, then the stable softmax, into `probs`.
fn probabilities<B: AsRef<[u8]>>(
    backend: Backend,
    cache: &KvCache<B>,
    head: usize,
    q: &[f32],
    probs: &mut [f32],
    work: &mut [f32],
) -> Result<(), Error> {
    let d = q.len();
    let t = probs.len();
    let keys = cache.keys(head).ok_or(Error::InvalidDim { dim: head })?;
    let kq = cache.key_quantizer();
    let row = kq.encoded_len();
    let norm = cache.config().norm;
    let nb = norm.bytes();
    let (qr, rest) = work.split_at_mut(d);
    qr.copy_from_slice(q);
    match kq {
        Quantizer::Baseline(b) => {
            codebook::dot_rows_on(backend, b.codebook(), qr, &keys[nb..], row, probs)?;
        }
        Quantizer::Mse(m) => {
            m.rotation().rotate_on(backend, qr)?;
            codebook::dot_rows_on(backend, m.codebook(), qr, &keys[nb..], row, probs)?;
        }
        Quantizer::Prod(p) => {
            p.rotation().rotate_on(backend, qr)?;
            let cb = p.mse().codebook();
            codebook::dot_rows_on(backend, cb, qr, &keys[2 * nb..], row, probs)?;
        }
    }
    for (i, pr) in probs.iter_mut().enumerate() {
        *pr *= norm.load(&keys[i * row..]);
    }
    if let Quantizer::Prod(p) = kq {
        let sk = p.sketcher();
        let m = sk.m();
        let (sq, rest) = rest.split_at_mut(m);
        let extra = &mut rest[..t];
        sk.project_on(backend, qr, sq)?;
        let signs = 2 * nb + codebook::pack::packed_len(d, p.mse().codebook().bits());
        qjl::signed_sum_rows_on(backend, sq, &keys[signs..], row, extra)?;
        let c = sk.scale();
        for (i, (pr, &e)) in probs.iter_mut().zip(extra.iter()).enumerate() {
            *pr += c * norm.load(&keys[i * row + nb..]) * e;
        }
    }
    // A finite query against finite norms can still overflow a score.
    if !probs.iter().all(|s| s.is_finite()) {
        return Err(Error::NonFinite);
    }
    // Stable softmax of the scaled scores.
    let inv = (1.0 / libm::sqrt(d as f64)) as f32;
    let max = probs.iter().fold(f32::NEG_INFINITY, |a, &s| a.max(s * inv));
    let mut sum = 0.0f64;
    for pr in probs.iter_mut() {
        *pr = libm::expf(*pr * inv - max);
        sum += *pr as f64;
    }
    let norm_sum = (1.0 / sum) as f32;
    for pr in probs.iter_mut() {
        *pr *= norm_sum;
    }
    Ok(())
}

/// `Σ_t probs[t]·v̂_t` into `out`, in the rotated and sketch domains.
fn values<B: AsRef<[u8]>>(
    backend: Backend,
    cache: &KvCache<B>,
    head: usize,
    probs: &[f32],
    out: &mut [f32],
    work: &mut [f32],
) -> Result<(), Error> {
    let d = out.len();
    let vals = cache.values(head).ok_or(Error::InvalidDim { dim: head })?;
    let vq = cache.value_quantizer();
    let row = vq.encoded_len();
    let norm = cache.config().norm;
    let nb = norm.bytes();
    let (tmp, rest) = work.split_at_mut(d);
    out.fill(0.0);
    let (cb, codes_at) = match vq {
        Quantizer::Baseline(b) => (b.codebook(), nb),
        Quantizer::Mse(m) => (m.codebook(), nb),
        Quantizer::Prod(p) => (p.mse().codebook(), 2 * nb),
    };
    let codes = codebook::pack::packed_len(d, cb.bits());
    // Weights p_t·‖v_t‖, then one pass over the value codes.
    let (weights, rest) = rest.split_at_mut(probs.len());
    for (i, (w, &p)) in weights.iter_mut().zip(probs).enumerate() {
        *w = p * norm.load(&vals[i * row..]);
    }
    codebook::accumulate_rows_on(backend, cb, &vals[codes_at..], row, weights, out)?;
    match vq {
        Quantizer::Baseline(_) => {}
        Quantizer::Mse(m) => m.rotation().unrotate_on(backend, out)?,
        Quantizer::Prod(p) => {
            let sk = p.sketcher();
            let m = sk.m();
            let acc = &mut rest[..m];
            acc.fill(0.0);
            for (i, (w, &p)) in weights.iter_mut().zip(probs).enumerate() {
                *w = p * norm.load(&vals[i * row + nb..]);
            }
            qjl::accumulate_signs_rows_on(backend, &vals[2 * nb + codes..], row, weights, acc)?;
            sk.transpose_on(backend, acc, tmp)?;
            let c = sk.scale();
            for (o, &v) in out.iter_mut().zip(tmp.iter()) {
                *o += c * v;
            }
            p.rotation().unrotate_on(backend, out)?;
        }
    }
    Ok(())
}
