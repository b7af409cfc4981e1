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
    for (pr, code) in probs.iter_mut().zip(keys.chunks_exact(row)) {
        *pr *= norm.load(code);
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
        for ((pr, &e), code) in probs
            .iter_mut()
            .zip(extra.iter())
            .zip(keys.chunks_exact(row))
        {
            *pr += c * norm.load(&code[nb..]) * e;
        }
    }
    // Stable softmax of the scaled scores. The reductions keep LANES
    // independent partial results so that they vectorise instead of
    // waiting on one dependency chain per token.
    const LANES: usize = 16;
    let inv = (1.0 / libm::sqrt(d as f64)) as f32;
    let mut top = [f32::NEG_INFINITY; LANES];
    // A finite query against finite norms can still overflow a score.
    let mut bad = [false; LANES];
    for chunk in probs.chunks(LANES) {
        for ((m, b), &s) in top.iter_mut().zip(bad.iter_mut()).zip(chunk) {
            *b |= !s.is_finite();
            *m = m.max(s * inv);
        }
    }
    if bad.iter().any(|&b| b) {
        return Err(Error::NonFinite);
    }
    let max = top.iter().fold(f32::NEG_INFINITY, |a, &m| a.max(m));
    for pr in probs.iter_mut() {
        *pr = exp_nonpositive(*pr * inv - max);
    }
    let mut parts = [0.0f64; LANES];
    for chunk in probs.chunks(LANES) {
        for (a, &p) in parts.iter_mut().zip(chunk) {
            *a += p as f64;
        }
    }
    let sum: f64 = parts.iter().sum();
    let norm_sum = (1.0 / sum) as f32;
    for pr in probs.iter_mut() {
        *pr *= norm_sum;
    }
    Ok(())
}

/// `e^x` for `x ≤ 0` within 2e-7 relative (tested against `libm::exp`),
/// without a call, so that the softmax loop vectorises: `e^x = 2^n · e^t`
/// with `n` the integer nearest `x·log2 e` (rounded by the 1.5·2^23 trick),
/// `t = x − n·ln 2` reduced in two exact steps (Cody–Waite: `ln 2` split so
/// that `n·LN2_HI` is exact), `|t| ≤ 0.35`, and `e^t` from its Taylor
/// series to degree 7 (truncation below 6e-9). Arguments under −87 (where
/// `e^x` leaves the normal range) are clamped there: about 1.6e-38, nothing
/// next to the softmax maximum's `e^0 = 1` in the normalising sum.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4; // 0x3f31_8000: 9 significant bits
    const LN2_LO: f32 = -2.121_944_4e-4; // ln 2 − LN2_HI
    const ROUND: f32 = 12_582_912.0; // 1.5·2^23
    let x = x.max(-87.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let t = (x - n * LN2_HI) - n * LN2_LO;
    // e^t = Σ t^k/k!, k ≤ 7, by Horner.
    let p = 1.0
        + t * (1.0
            + t * (0.5
                + t * (1.0 / 6.0
                    + t * (1.0 / 24.0
                        + t * (1.0 / 120.0 + t * (1.0 / 720.0 + t * (1.0 / 5040.0)))))));
    let scale = f32::from_bits((((n as i32) + 127) as u32) << 23);
    p * scale
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
    // Weights p_t·‖v_t‖ (and p_t·γ_t for prod, read in the same pass over
    // the rows), then one pass over the value codes.
    let (weights, rest) = rest.split_at_mut(probs.len());
    let (residual_weights, rest) = rest.split_at_mut(probs.len());
    if let Quantizer::Prod(_) = vq {
        let pairs = weights.iter_mut().zip(residual_weights.iter_mut());
        for (((w, r), &p), code) in pairs.zip(probs).zip(vals.chunks_exact(row)) {
            *w = p * norm.load(code);
            *r = p * norm.load(&code[nb..]);
        }
    } else {
        for ((w, &p), code) in weights.iter_mut().zip(probs).zip(vals.chunks_exact(row)) {
            *w = p * norm.load(code);
        }
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
            let signs = &vals[2 * nb + codes..];
            qjl::accumulate_signs_rows_on(backend, signs, row, residual_weights, acc)?;
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

#[cfg(test)]
mod tests {
    #[test]
    fn exp_nonpositive_is_within_2e_7_of_expf() {
        let mut worst = 0.0f64;
        for i in 0..=1_000_000u32 {
            let x = -87.0 * i as f32 / 1_000_000.0;
            let want = libm::exp(x as f64);
            let got = super::exp_nonpositive(x) as f64;
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 2e-7, "worst relative error {worst}");
        assert_eq!(super::exp_nonpositive(0.0), 1.0);
        assert_eq!(super::exp_nonpositive(-0.0), 1.0);
        let tiny = super::exp_nonpositive(-1000.0);
        assert!(tiny > 0.0 && tiny < 2e-38, "{tiny}");
    }
}
