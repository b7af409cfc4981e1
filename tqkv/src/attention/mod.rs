//! Attention decode straight on the compressed cache (`ARCHITECTURE.md`, "The pipeline").
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
//! let mut scratch = vec![0.0f32; scratch_len(&cache)];
//! attend(&cache, 0, &q, &mut out, &mut scratch)?;
//! // A convex combination of values 0 … 15.
//! assert!(out.iter().all(|&v| v > -1.0 && v < 16.0));
//! # Ok::<(), tqkv::Error>(())
//! ```

use crate::backend::Checked;
use crate::codebook;
use crate::quant::{KvCache, Quantizer};
use crate::{Backend, Error, qjl};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;
mod rows;

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
    3 * cache.len() + d + m
}

/// Attention of the query head(s) `q` over KV head `head`, on the detected
/// backend.
///
/// # Errors
/// [`Error::InvalidHead`] if `head` is out of range; [`Error::LengthMismatch`]
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
    let backend = backend.check()?;
    let t = cache.len();
    for (qh, oh) in q.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        if t == 0 {
            oh.fill(0.0);
            continue;
        }
        let (probs, work) = scratch.split_at_mut(t);
        let sum = exponentials(backend, cache, head, qh, probs, work)?;
        values(backend, cache, head, probs, (1.0 / sum) as f32, oh, work)?;
    }
    Ok(())
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
/// let mut scratch = vec![0.0f32; scratch_len(&cache)];
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
    let d = cache.config().dim;
    check(cache, head, q, d, scratch.len())?;
    if probs.len() != cache.len() {
        return Err(Error::LengthMismatch {
            expected: cache.len(),
            found: probs.len(),
        });
    }
    let backend = backend.check()?;
    if cache.is_empty() {
        return Ok(());
    }
    let inv_sum = (1.0 / exponentials(backend, cache, head, q, probs, scratch)?) as f32;
    for p in probs.iter_mut() {
        *p *= inv_sum;
    }
    Ok(())
}

fn check<B: AsRef<[u8]>>(
    cache: &KvCache<B>,
    head: usize,
    q: &[f32],
    out: usize,
    scratch: usize,
) -> Result<(), Error> {
    let d = cache.config().dim;
    let heads = cache.config().heads;
    if head >= heads {
        return Err(Error::InvalidHead { head, heads });
    }
    if q.is_empty() || !q.len().is_multiple_of(d) || out != q.len() {
        return Err(Error::LengthMismatch {
            expected: d,
            found: q.len(),
        });
    }
    crate::error::finite(q)?;
    let needed = scratch_len(cache);
    if scratch < needed {
        return Err(Error::BufferTooShort {
            needed,
            found: scratch,
        });
    }
    Ok(())
}

/// Scores of every key, then `e^(s − max)` of each into `probs`; returns
/// their sum (the softmax's normaliser, in f64).
fn exponentials<B: AsRef<[u8]>>(
    backend: Checked,
    cache: &KvCache<B>,
    head: usize,
    q: &[f32],
    probs: &mut [f32],
    work: &mut [f32],
) -> Result<f64, Error> {
    let d = q.len();
    let t = probs.len();
    let keys = cache.key_fields(head).ok_or(Error::InvalidHead {
        head,
        heads: cache.config().heads,
    })?;
    let kq = cache.key_quantizer();
    let [_, _, row, sketch] = kq.fields();
    let norm = cache.config().norm;
    let (qr, rest) = work.split_at_mut(d);
    qr.copy_from_slice(q);
    let cb = match kq {
        Quantizer::Baseline(b) => b.codebook(),
        Quantizer::Mse(m) => {
            m.rotation().rotate_in(backend, qr)?;
            m.codebook()
        }
        Quantizer::Prod(p) => {
            p.rotation().rotate_in(backend, qr)?;
            p.mse().codebook()
        }
    };
    codebook::dot_rows_in(backend, cb, qr, keys.codes, row, probs)?;
    let inv = (1.0 / libm::sqrt(d as f64)) as f32;
    let k = rows::Loops(backend);
    if let Quantizer::Prod(p) = kq {
        let sk = p.sketcher();
        let (sq, rest) = rest.split_at_mut(sk.m());
        let extra = &mut rest[..t];
        sk.project_in(backend, qr, sq)?;
        qjl::signed_sum_rows_in(backend, sq, keys.signs, sketch, extra)?;
        k.mul_norms(norm, probs, keys.norms, 1.0)?;
        // The sketch term c·γ·⟨S·q, s⟩ from the raw sums.
        k.mul_norms(norm, extra, keys.residual_norms, sk.scale())?;
        k.add_scaled(probs, extra, inv)?;
    } else {
        k.mul_norms(norm, probs, keys.norms, inv)?;
    }
    // A finite query against finite norms can still overflow a score.
    let max = k.max_finite(probs)?.ok_or(Error::NonFinite)?;
    k.exp_sum(probs, max)
}

/// `Σ_t e[t]·inv_sum·v̂_t` into `out` (`e` from [`exponentials`]), in the
/// rotated and sketch domains.
fn values<B: AsRef<[u8]>>(
    backend: Checked,
    cache: &KvCache<B>,
    head: usize,
    e: &[f32],
    inv_sum: f32,
    out: &mut [f32],
    work: &mut [f32],
) -> Result<(), Error> {
    let d = out.len();
    let t = e.len();
    let vals = cache.value_fields(head).ok_or(Error::InvalidHead {
        head,
        heads: cache.config().heads,
    })?;
    let vq = cache.value_quantizer();
    let [_, _, row, sketch] = vq.fields();
    let norm = cache.config().norm;
    let (tmp, rest) = work.split_at_mut(d);
    let (weights, rest) = rest.split_at_mut(t);
    out.fill(0.0);
    let cb = match vq {
        Quantizer::Baseline(b) => b.codebook(),
        Quantizer::Mse(m) => m.codebook(),
        Quantizer::Prod(p) => p.mse().codebook(),
    };
    // Weights p_t·‖v_t‖ with p_t = e_t·inv_sum (and p_t·γ_t for prod).
    let k = rows::Loops(backend);
    weights.copy_from_slice(e);
    k.mul_norms(norm, weights, vals.norms, inv_sum)?;
    match vq {
        Quantizer::Baseline(_) => {
            codebook::accumulate_rows_in(backend, cb, vals.codes, row, weights, out)?
        }
        Quantizer::Mse(m) => {
            codebook::accumulate_rows_in(backend, cb, vals.codes, row, weights, out)?;
            m.rotation().unrotate_in(backend, out)?;
        }
        Quantizer::Prod(p) => {
            let sk = p.sketcher();
            let (residual_weights, rest) = rest.split_at_mut(t);
            let acc = &mut rest[..sk.m()];
            acc.fill(0.0);
            residual_weights.copy_from_slice(e);
            k.mul_norms(norm, residual_weights, vals.residual_norms, inv_sum)?;
            // Codes and signs of the same tokens in one pass.
            let rows = codebook::SignedRows {
                codes: vals.codes,
                code_stride: row,
                weights,
                signs: vals.signs,
                sign_stride: sketch,
                sign_weights: residual_weights,
            };
            codebook::accumulate_rows_and_signs_in(backend, cb, &rows, out, acc)?;
            sk.transpose_in(backend, acc, tmp)?;
            let c = sk.scale();
            for (o, &v) in out.iter_mut().zip(tmp.iter()) {
                *o += c * v;
            }
            p.rotation().unrotate_in(backend, out)?;
        }
    }
    Ok(())
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
