//! Perplexity, KL of the next-token distribution and top-1 agreement of a
//! cache configuration against the f32 cache, on one text.
//!
//! # Protocol (the one of llama.cpp's `llama-perplexity`)
//! The tokens are cut into consecutive windows of `window` tokens (no
//! overlap, the stride is the window; a partial window at the end is
//! dropped). Each window is decoded from an empty cache; the first half is
//! context only, and the logits at positions `window/2 … window−2` are
//! scored on the token that follows each, so every window scores
//! `window/2 − 1` tokens, each with at least `window/2` tokens of context.
//! The windows are fed to the model in prefill chunks of [`CHUNK`] tokens;
//! a chunk gives exactly the logits of one-token steps (see [`Session`]).

use rayon::prelude::*;

use crate::kv::CacheKind;
use crate::{LlmError, Model, Session};

/// Tokens fed to the model in one prefill call.
pub const CHUNK: usize = 512;

/// The scores of one configuration over every scored token, in order.
#[derive(Clone, Debug, Default)]
pub struct Scores {
    /// Negative log-likelihood of the true next token (nats).
    pub nll: Vec<f64>,
    /// The most likely next token.
    pub top1: Vec<u32>,
    /// KL(p_reference ‖ p) per token (empty without a reference).
    pub kl: Vec<f64>,
    /// The full log-probabilities (kept only for a reference run).
    pub log_probs: Vec<f32>,
    /// Seconds spent in attention (cache writes and reads) and in all.
    pub seconds: (f64, f64),
}

impl Scores {
    /// Perplexity: `exp(mean nll)`.
    pub fn perplexity(&self) -> f64 {
        (self.nll.iter().sum::<f64>() / self.nll.len() as f64).exp()
    }
}

/// Scores `tokens` with layer `l` cached as `kinds(l)`. With `reference`
/// (an f32 run kept with `keep = true`), also the KL against it.
///
/// # Errors
/// [`LlmError::Invalid`] if no window fits in `tokens` or `window` is below
/// 4 or odd, or the reference does not match; the model's errors.
pub fn score(
    model: &Model,
    tokens: &[u32],
    window: usize,
    kinds: &dyn Fn(usize) -> CacheKind,
    reference: Option<&Scores>,
    keep: bool,
) -> Result<Scores, LlmError> {
    if window < 4 || !window.is_multiple_of(2) || tokens.len() < window {
        return Err(LlmError::Invalid(format!(
            "a window of {window} tokens over a text of {}: the window must be even, at least 4 and at most the text",
            tokens.len()
        )));
    }
    let vocab = model.config.vocab;
    let first = window / 2;
    let scored = tokens.len() / window * (first - 1);
    if let Some(r) = reference
        && (r.nll.len() != scored || r.log_probs.len() != scored * vocab)
    {
        return Err(LlmError::Invalid(
            "the reference scored other tokens (or was not kept)".into(),
        ));
    }
    let mut session = Session::new(model, window, kinds)?;
    let mut out = Scores::default();
    for w in tokens.chunks_exact(window) {
        session.reset()?;
        for (c, chunk) in w.chunks(CHUNK).enumerate() {
            let start = c * CHUNK;
            // Rows of this chunk at positions first..=window−2.
            let from = first.saturating_sub(start).min(chunk.len());
            let logits = session.forward(chunk, from)?;
            let rows = (start + from..start + chunk.len()).filter(|&p| p < window - 1);
            let rows: Vec<usize> = rows.collect();
            let at = out.nll.len();
            let scored: Vec<(f64, u32, f64, Vec<f32>)> = rows
                .par_iter()
                .enumerate()
                .map(|(i, &p)| {
                    let row = &logits[(p - start - from) * vocab..][..vocab];
                    let lp = log_softmax(row);
                    let nll = -lp[w[p + 1] as usize] as f64;
                    let top1 = argmax(&lp);
                    let kl = reference
                        .map_or(0.0, |r| kl(&r.log_probs[(at + i) * vocab..][..vocab], &lp));
                    (nll, top1, kl, if keep { lp } else { Vec::new() })
                })
                .collect();
            for (nll, top1, kl, lp) in scored {
                out.nll.push(nll);
                out.top1.push(top1);
                if reference.is_some() {
                    out.kl.push(kl);
                }
                out.log_probs.extend_from_slice(&lp);
            }
        }
    }
    out.seconds = (
        session.timing.attention.as_secs_f64(),
        session.timing.total.as_secs_f64(),
    );
    Ok(out)
}

/// `log softmax(x)`, the sum in f64.
pub fn log_softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let sum: f64 = x.iter().map(|&v| ((v - max) as f64).exp()).sum();
    let log_sum = max as f64 + sum.ln();
    x.iter().map(|&v| (v as f64 - log_sum) as f32).collect()
}

/// Index of the largest value (the first of ties).
pub fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best as u32
}

/// `KL(p ‖ q) = Σ p (log p − log q)` from log-probabilities, in f64.
pub fn kl(log_p: &[f32], log_q: &[f32]) -> f64 {
    log_p
        .iter()
        .zip(log_q)
        .map(|(&a, &b)| (a as f64).exp() * (a as f64 - b as f64))
        .sum::<f64>()
}
