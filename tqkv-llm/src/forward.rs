//! Our Llama forward pass: embedding, RMSNorm, RoPE, the Q/K/V/O
//! projections, attention on a per-layer [`LayerCache`], the SwiGLU MLP and
//! the output head. Positions are fed in chunks (one token for decode,
//! many for prefill); within a chunk the projections are batched and each
//! position attends over its own prefix of the cache, so a chunk of `n`
//! tokens gives exactly the logits of `n` single-token steps.

use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::LlmError;
use crate::kv::{CacheKind, LayerCache, Shape};
use crate::model::Model;

/// Time spent in one session, by part.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timing {
    /// Writing to the caches and attending over them.
    pub attention: Duration,
    /// Everything (forward calls).
    pub total: Duration,
}

/// A model with one cache per layer, decoding a sequence.
pub struct Session<'m> {
    model: &'m Model,
    caches: Vec<LayerCache>,
    shape: Shape,
    rope: Vec<f64>,
    /// Where time went.
    pub timing: Timing,
}

impl<'m> Session<'m> {
    /// A session holding up to `capacity` tokens, layer `l` cached as
    /// `kinds(l)`.
    ///
    /// # Errors
    /// [`LlmError::ContextTooLong`] past the model's context; the caches'
    /// errors.
    pub fn new(
        model: &'m Model,
        capacity: usize,
        kinds: impl Fn(usize) -> CacheKind,
    ) -> Result<Session<'m>, LlmError> {
        let c = &model.config;
        if capacity > c.context {
            return Err(LlmError::ContextTooLong {
                needed: capacity,
                capacity: c.context,
            });
        }
        let shape = Shape {
            kv_heads: c.kv_heads,
            dim: c.head_dim,
            capacity,
        };
        let caches = (0..c.layers)
            .map(|l| LayerCache::new(kinds(l), shape))
            .collect::<Result<_, _>>()?;
        let rope = (0..c.head_dim / 2)
            .map(|i| c.rope_base.powf(-2.0 * i as f64 / c.head_dim as f64))
            .collect();
        Ok(Session {
            model,
            caches,
            shape,
            rope,
            timing: Timing::default(),
        })
    }

    /// Tokens fed so far.
    pub fn len(&self) -> usize {
        self.caches[0].len(self.shape)
    }

    /// Whether nothing was fed yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts a new sequence (the caches keep their memory).
    pub fn reset(&mut self) -> Result<(), LlmError> {
        self.caches.iter_mut().try_for_each(|c| c.clear())
    }

    /// Feeds `tokens` at the next positions and returns the logits of the
    /// positions `logits_from..tokens.len()` of the chunk, row after row
    /// (`vocab` values each).
    ///
    /// # Errors
    /// [`LlmError::ContextTooLong`] past the capacity,
    /// [`LlmError::Invalid`] for a token outside the vocabulary; candle's
    /// and the caches' errors.
    pub fn forward(&mut self, tokens: &[u32], logits_from: usize) -> Result<Vec<f32>, LlmError> {
        let start_time = Instant::now();
        let c = self.model.config.clone();
        let (n, e, d) = (tokens.len(), c.embed, c.head_dim);
        let start = self.len();
        if start + n > self.shape.capacity {
            return Err(LlmError::ContextTooLong {
                needed: start + n,
                capacity: self.shape.capacity,
            });
        }
        if logits_from > n {
            return Err(LlmError::Invalid(format!(
                "logits from row {logits_from} of a chunk of {n}"
            )));
        }
        let mut x = Vec::with_capacity(n * e);
        for &t in tokens {
            let row = self
                .model
                .embedding
                .get(t as usize * e..(t as usize + 1) * e);
            x.extend_from_slice(row.ok_or_else(|| {
                LlmError::Invalid(format!(
                    "token {t} is outside the vocabulary of {}",
                    c.vocab
                ))
            })?);
        }
        let kv_width = c.kv_heads * d;
        for (layer, cache) in self.model.layers.iter().zip(&mut self.caches) {
            let h = rms_norm(&x, &layer.attn_norm, c.eps);
            let mut q = layer.wq.forward(&h, n)?;
            let mut k = layer.wk.forward(&h, n)?;
            let v = layer.wv.forward(&h, n)?;
            for i in 0..n {
                rope(&mut q[i * e..(i + 1) * e], d, start + i, &self.rope);
                rope(
                    &mut k[i * kv_width..(i + 1) * kv_width],
                    d,
                    start + i,
                    &self.rope,
                );
            }
            let attention_time = Instant::now();
            for i in 0..n {
                cache.push(
                    &k[i * kv_width..][..kv_width],
                    &v[i * kv_width..][..kv_width],
                    self.shape,
                )?;
            }
            // One work item per (group of positions, KV head): a prefill
            // spreads over position groups (each group's queries read the
            // codes once), a one-token decode over the KV heads.
            let mut attended = vec![0.0f32; n * e];
            let shape = self.shape;
            let cache = &*cache;
            let per_kv = e / c.kv_heads;
            let groups = n.div_ceil(POSITIONS_PER_ITEM);
            let items: Vec<(usize, usize)> = (0..groups)
                .flat_map(|g| (0..c.kv_heads).map(move |h| (g, h)))
                .collect();
            let results: Vec<(usize, usize, Vec<f32>)> = items
                .into_par_iter()
                .map_init(Vec::new, |scratch, (group, head)| {
                    let first = group * POSITIONS_PER_ITEM;
                    let count = POSITIONS_PER_ITEM.min(n - first);
                    let mut qs = Vec::with_capacity(count * per_kv);
                    for i in first..first + count {
                        qs.extend_from_slice(&q[i * e + head * per_kv..][..per_kv]);
                    }
                    let limits: Vec<usize> =
                        (first..first + count).map(|i| start + i + 1).collect();
                    let mut out = vec![0.0f32; qs.len()];
                    cache.attend_many(head, &limits, &qs, &mut out, shape, scratch)?;
                    Ok::<_, LlmError>((group, head, out))
                })
                .collect::<Result<_, _>>()?;
            for (group, head, out) in results {
                for (k, o) in out.chunks_exact(per_kv).enumerate() {
                    let i = group * POSITIONS_PER_ITEM + k;
                    attended[i * e + head * per_kv..][..per_kv].copy_from_slice(o);
                }
            }
            self.timing.attention += attention_time.elapsed();
            let o = layer.wo.forward(&attended, n)?;
            add(&mut x, &o);
            let h = rms_norm(&x, &layer.ffn_norm, c.eps);
            let gate = layer.gate.forward(&h, n)?;
            let up = layer.up.forward(&h, n)?;
            let act: Vec<f32> = gate
                .iter()
                .zip(&up)
                .map(|(&g, &u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let down = layer.down.forward(&act, n)?;
            add(&mut x, &down);
        }
        let logits = if logits_from == n {
            Vec::new()
        } else {
            let h = rms_norm(&x[logits_from * e..], &self.model.out_norm, c.eps);
            self.model.output.forward(&h, n - logits_from)?
        };
        self.timing.total += start_time.elapsed();
        Ok(logits)
    }
}

/// Positions of a prefill chunk attended in one call per KV head: enough
/// to share each block of codes between them, few enough that a chunk
/// still spreads over every core.
const POSITIONS_PER_ITEM: usize = 8;

fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// RMSNorm of each row of `x` (rows of `w.len()`), scaled by `w`.
fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(w.len()) {
        let mean = row.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        out.extend(row.iter().zip(w).map(|(v, w)| v * scale * w));
    }
    out
}

/// Rotary position embedding, GGML's "normal" layout (adjacent pairs
/// `(2i, 2i+1)` rotate by `position · base^(−2i/d)`), on every head of one
/// position.
fn rope(x: &mut [f32], d: usize, position: usize, inv_freq: &[f64]) {
    for head in x.chunks_exact_mut(d) {
        for (pair, &f) in head.chunks_exact_mut(2).zip(inv_freq) {
            let (sin, cos) = (position as f64 * f).sin_cos();
            let (a, b) = (pair[0] as f64, pair[1] as f64);
            pair[0] = (a * cos - b * sin) as f32;
            pair[1] = (a * sin + b * cos) as f32;
        }
    }
}
