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
use crate::quant::{KvCache, NormPrecision, Quantizer, f16_bits_to_f32};
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
    2 * cache.len() + d + m
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
        let sum = exponentials(backend, cache, head, qh, probs, work)?;
        values(backend, cache, head, probs, (1.0 / sum) as f32, oh, work)?;
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

/// Scores of every key, then `e^(s − max)` of each into `probs`; returns
/// their sum (the softmax's normaliser, in f64).
fn exponentials<B: AsRef<[u8]>>(
    backend: Backend,
    cache: &KvCache<B>,
    head: usize,
    q: &[f32],
    probs: &mut [f32],
    work: &mut [f32],
) -> Result<f64, Error> {
    let d = q.len();
    let t = probs.len();
    let keys = cache
        .key_fields(head)
        .ok_or(Error::InvalidDim { dim: head })?;
    let kq = cache.key_quantizer();
    let [_, _, row, sketch] = kq.fields();
    let norm = cache.config().norm;
    let (qr, rest) = work.split_at_mut(d);
    qr.copy_from_slice(q);
    let cb = match kq {
        Quantizer::Baseline(b) => b.codebook(),
        Quantizer::Mse(m) => {
            m.rotation().rotate_on(backend, qr)?;
            m.codebook()
        }
        Quantizer::Prod(p) => {
            p.rotation().rotate_on(backend, qr)?;
            p.mse().codebook()
        }
    };
    codebook::dot_rows_on(backend, cb, qr, keys.codes, row, probs)?;
    let inv = (1.0 / libm::sqrt(d as f64)) as f32;
    if let Quantizer::Prod(p) = kq {
        let sk = p.sketcher();
        let (sq, rest) = rest.split_at_mut(sk.m());
        let extra = &mut rest[..t];
        sk.project_on(backend, qr, sq)?;
        qjl::signed_sum_rows_on(backend, sq, keys.signs, sketch, extra)?;
        per_norm(norm, probs, keys.norms, |p, n| *p *= n);
        // The sketch term γ·c·⟨S·q, s⟩, with the residual norms in place of
        // the raw sums.
        let c = sk.scale();
        per_norm(norm, extra, keys.residual_norms, |e, g| *e *= c * g);
        for (p, &e) in probs.iter_mut().zip(extra.iter()) {
            *p = (*p + e) * inv;
        }
    } else {
        per_norm(norm, probs, keys.norms, |p, n| *p = *p * n * inv);
    }
    // The reductions keep LANES independent partial results so that they
    // vectorise instead of waiting on one dependency chain per token.
    const LANES: usize = 16;
    let mut top = [f32::NEG_INFINITY; LANES];
    // A finite query against finite norms can still overflow a score.
    let mut bad = [false; LANES];
    for chunk in probs.chunks(LANES) {
        for ((m, b), &s) in top.iter_mut().zip(bad.iter_mut()).zip(chunk) {
            *b |= !s.is_finite();
            *m = m.max(s);
        }
    }
    if bad.iter().any(|&b| b) {
        return Err(Error::NonFinite);
    }
    let max = top.iter().fold(f32::NEG_INFINITY, |a, &m| a.max(m));
    // Two loops: with the f64 sum in the same loop, the exponentials would
    // vectorise only as wide as two f64 lanes.
    for p in probs.iter_mut() {
        *p = exp_nonpositive(*p - max);
    }
    let mut parts = [0.0f64; LANES];
    for chunk in probs.chunks(LANES) {
        for (a, &p) in parts.iter_mut().zip(chunk) {
            *a += p as f64;
        }
    }
    Ok(parts.iter().sum())
}

/// `f(&mut values[t], norm t)` over the norms stored contiguously in
/// `stored`, with the precision fixed outside the loop so that it
/// vectorises.
#[inline(always)]
fn per_norm(
    norm: NormPrecision,
    values: &mut [f32],
    stored: &[u8],
    mut f: impl FnMut(&mut f32, f32),
) {
    match norm {
        NormPrecision::F16 => {
            for (v, n) in values.iter_mut().zip(stored.chunks_exact(2)) {
                f(v, f16_bits_to_f32(u16::from_le_bytes([n[0], n[1]])));
            }
        }
        NormPrecision::F32 => {
            for (v, n) in values.iter_mut().zip(stored.chunks_exact(4)) {
                f(v, f32::from_le_bytes([n[0], n[1], n[2], n[3]]));
            }
        }
    }
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
    let r = x * LOG2E + ROUND;
    let n = r - ROUND;
    let t = (x - n * LN2_HI) - n * LN2_LO;
    // e^t = Σ t^k/k!, k ≤ 7, by Horner.
    let p = 1.0
        + t * (1.0
            + t * (0.5
                + t * (1.0 / 6.0
                    + t * (1.0 / 24.0
                        + t * (1.0 / 120.0 + t * (1.0 / 720.0 + t * (1.0 / 5040.0)))))));
    // r = 1.5·2^23 + n exactly (its ulp is 1), so its low bits are n: 2^n
    // from integer operations only (an `as i32` cast would not vectorise).
    let scale = f32::from_bits(r.to_bits().wrapping_sub(0x4b40_0000 - 127) << 23);
    p * scale
}

/// `Σ_t e[t]·inv_sum·v̂_t` into `out` (`e` from [`exponentials`]), in the
/// rotated and sketch domains.
fn values<B: AsRef<[u8]>>(
    backend: Backend,
    cache: &KvCache<B>,
    head: usize,
    e: &[f32],
    inv_sum: f32,
    out: &mut [f32],
    work: &mut [f32],
) -> Result<(), Error> {
    let d = out.len();
    let t = e.len();
    let vals = cache
        .value_fields(head)
        .ok_or(Error::InvalidDim { dim: head })?;
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
    // Weights p_t·‖v_t‖ with p_t = e_t·inv_sum (then p_t·γ_t for prod).
    weights.copy_from_slice(e);
    per_norm(norm, weights, vals.norms, |w, n| *w = *w * inv_sum * n);
    codebook::accumulate_rows_on(backend, cb, vals.codes, row, weights, out)?;
    match vq {
        Quantizer::Baseline(_) => {}
        Quantizer::Mse(m) => m.rotation().unrotate_on(backend, out)?,
        Quantizer::Prod(p) => {
            let sk = p.sketcher();
            let acc = &mut rest[..sk.m()];
            acc.fill(0.0);
            weights.copy_from_slice(e);
            per_norm(norm, weights, vals.residual_norms, |w, g| {
                *w = *w * inv_sum * g
            });
            qjl::accumulate_signs_rows_on(backend, vals.signs, sketch, weights, acc)?;
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
