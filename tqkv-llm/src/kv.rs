//! The KV cache of one layer: f32 (the reference), f16, or a `tqkv`
//! compressed cache read with `tqkv::attention::attend`.

use half::f16;
use half::slice::HalfFloatSliceExt;
use tqkv::Backend;
use tqkv::attention::{self, Scoring};
use tqkv::quant::{CacheConfig, KvCache};

use crate::LlmError;

/// What one layer's cache stores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CacheKind {
    /// Keys and values in f32: the reference.
    F32,
    /// Keys and values rounded to f16, attention in f32.
    F16,
    /// A `tqkv` compressed cache (its `heads`, `dim` and `capacity` are
    /// filled in per layer), its keys scored as the `Scoring` says.
    Tqkv(CacheConfig, Scoring),
    /// The same compressed cache, attended the slow, obvious way: every
    /// token decoded to f32 as it is pushed, then plain softmax attention.
    /// What the fused decode of [`CacheKind::Tqkv`] must reproduce.
    Decoded(CacheConfig),
}

impl CacheKind {
    /// Bits per coordinate stored, side information (norms) counted.
    pub fn bits_per_coordinate(&self, dim: usize) -> f64 {
        match self {
            CacheKind::F32 => 32.0,
            CacheKind::F16 => 16.0,
            CacheKind::Tqkv(c, _) | CacheKind::Decoded(c) => {
                // One token of one head: exactly what the cache stores.
                let mut c = *c;
                (c.heads, c.dim, c.capacity) = (1, dim, 1);
                let bytes = c.bytes_needed().unwrap_or(0);
                KvCache::new(c, vec![0u8; bytes]).map_or(f64::NAN, |cache| {
                    cache.bytes_per_token() as f64 * 8.0 / (2 * dim) as f64
                })
            }
        }
    }
}

/// One layer's cache: `kv_heads` heads of `dim`, up to `capacity` tokens.
pub enum LayerCache {
    /// f32 rows, token-major (`[token][head][dim]`).
    F32 {
        /// Keys.
        k: Vec<f32>,
        /// Values.
        v: Vec<f32>,
    },
    /// f16 rows, token-major.
    F16 {
        /// Keys.
        k: Vec<f16>,
        /// Values.
        v: Vec<f16>,
    },
    /// The compressed cache (boxed: its quantisers' tables are large) and
    /// how its keys are scored.
    Tqkv(Box<KvCache<Vec<u8>>>, Scoring),
    /// The compressed cache and its tokens decoded, token-major.
    Decoded {
        /// Where tokens are encoded (and decoded from).
        cache: Box<KvCache<Vec<u8>>>,
        /// Decoded keys.
        k: Vec<f32>,
        /// Decoded values.
        v: Vec<f32>,
        /// One token's encoding of a head, as read back before decoding.
        encoded: Vec<u8>,
    },
}

/// The shape of a layer's cache.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// KV heads.
    pub kv_heads: usize,
    /// Head dimension.
    pub dim: usize,
    /// Tokens it can hold.
    pub capacity: usize,
}

impl LayerCache {
    /// An empty cache of `kind`.
    ///
    /// # Errors
    /// The compressed cache's errors for its configuration.
    pub fn new(kind: CacheKind, shape: Shape) -> Result<LayerCache, LlmError> {
        let n = shape.kv_heads * shape.dim * shape.capacity;
        Ok(match kind {
            CacheKind::F32 => LayerCache::F32 {
                k: Vec::with_capacity(n),
                v: Vec::with_capacity(n),
            },
            CacheKind::F16 => LayerCache::F16 {
                k: Vec::with_capacity(n),
                v: Vec::with_capacity(n),
            },
            CacheKind::Tqkv(c, scoring) => {
                let mut c = c;
                (c.heads, c.dim, c.capacity) = (shape.kv_heads, shape.dim, shape.capacity);
                let cache = KvCache::new(c, vec![0u8; c.bytes_needed()?])?;
                LayerCache::Tqkv(Box::new(cache), scoring)
            }
            CacheKind::Decoded(c) => {
                let mut c = c;
                (c.heads, c.dim, c.capacity) = (shape.kv_heads, shape.dim, shape.capacity);
                let cache = KvCache::new(c, vec![0u8; c.bytes_needed()?])?;
                let (kq, vq) = (cache.key_quantizer(), cache.value_quantizer());
                let encoded = vec![0u8; kq.encoded_len().max(vq.encoded_len())];
                LayerCache::Decoded {
                    cache: Box::new(cache),
                    k: Vec::with_capacity(n),
                    v: Vec::with_capacity(n),
                    encoded,
                }
            }
        })
    }

    /// Tokens stored.
    pub fn len(&self, shape: Shape) -> usize {
        match self {
            LayerCache::F32 { k, .. } => k.len() / (shape.kv_heads * shape.dim),
            LayerCache::F16 { k, .. } => k.len() / (shape.kv_heads * shape.dim),
            LayerCache::Tqkv(c, _) | LayerCache::Decoded { cache: c, .. } => c.len(),
        }
    }

    /// Empties the cache (keeping its memory).
    pub fn clear(&mut self) -> Result<(), LlmError> {
        match self {
            LayerCache::F32 { k, v } => {
                k.clear();
                v.clear();
            }
            LayerCache::F16 { k, v } => {
                k.clear();
                v.clear();
            }
            LayerCache::Tqkv(c, _) => c.clear(),
            LayerCache::Decoded { cache, k, v, .. } => {
                cache.clear();
                k.clear();
                v.clear();
            }
        }
        Ok(())
    }

    /// Appends one token's keys and values (`kv_heads · dim` each).
    pub fn push(&mut self, k: &[f32], v: &[f32], shape: Shape) -> Result<(), LlmError> {
        if self.len(shape) == shape.capacity {
            return Err(LlmError::ContextTooLong {
                needed: shape.capacity + 1,
                capacity: shape.capacity,
            });
        }
        match self {
            LayerCache::F32 { k: ks, v: vs } => {
                ks.extend_from_slice(k);
                vs.extend_from_slice(v);
            }
            LayerCache::F16 { k: ks, v: vs } => {
                ks.extend(k.iter().map(|&x| f16::from_f32(x)));
                vs.extend(v.iter().map(|&x| f16::from_f32(x)));
            }
            LayerCache::Tqkv(c, _) => c.push(k, v)?,
            LayerCache::Decoded {
                cache,
                k: ks,
                v: vs,
                encoded,
            } => {
                cache.push(k, v)?;
                decode_last(cache, ks, vs, encoded)?;
            }
        }
        Ok(())
    }

    /// Attention of the query heads `q` that share KV head `head` (`g · dim`
    /// values, `g = heads / kv_heads`) over the first `upto` tokens, into
    /// `out` (same length). `scratch` grows as needed.
    pub fn attend(
        &self,
        head: usize,
        upto: usize,
        q: &[f32],
        out: &mut [f32],
        shape: Shape,
        scratch: &mut Vec<f32>,
    ) -> Result<(), LlmError> {
        let (kvh, d) = (shape.kv_heads, shape.dim);
        let (stride, at) = (kvh * d, head * d);
        match self {
            LayerCache::F32 { k, v } => Rows {
                k,
                v,
                stride,
                at,
                d,
            }
            .attend(upto, q, out, scratch),
            LayerCache::F16 { k, v } => Rows {
                k,
                v,
                stride,
                at,
                d,
            }
            .attend(upto, q, out, scratch),
            LayerCache::Decoded { k, v, .. } => Rows {
                k,
                v,
                stride,
                at,
                d,
            }
            .attend(upto, q, out, scratch),
            LayerCache::Tqkv(c, scoring) => {
                // The causal limit of this position: the tokens up to it.
                scratch.resize(attention::scratch_len(c, q.len() / d), 0.0);
                let backend = Backend::detect();
                attention::attend_many_with(backend, *scoring, c, head, q, &[upto], out, scratch)?;
            }
        }
        Ok(())
    }

    /// [`attend`](Self::attend) for several positions of the same KV head:
    /// `q` holds `limits.len()` positions of `g · dim` values, position `p`
    /// attending to the first `limits[p]` tokens. The compressed cache does
    /// it in one pass ([`attention::attend_many`]); the others one position
    /// after the other.
    pub fn attend_many(
        &self,
        head: usize,
        limits: &[usize],
        q: &[f32],
        out: &mut [f32],
        shape: Shape,
        scratch: &mut Vec<f32>,
    ) -> Result<(), LlmError> {
        match self {
            LayerCache::Tqkv(c, scoring) => {
                scratch.resize(attention::scratch_len(c, q.len() / shape.dim), 0.0);
                let backend = Backend::detect();
                attention::attend_many_with(backend, *scoring, c, head, q, limits, out, scratch)?;
            }
            _ => {
                let per = q.len() / limits.len().max(1);
                for ((&upto, qp), op) in limits.iter().zip(q.chunks(per)).zip(out.chunks_mut(per)) {
                    self.attend(head, upto, qp, op, shape, scratch)?;
                }
            }
        }
        Ok(())
    }
}

/// The last token of `cache`, every head's key and value decoded by the
/// quantisers and appended to `k` and `v` (token-major); `bytes` holds
/// the longer of the two encodings.
fn decode_last(
    cache: &KvCache<Vec<u8>>,
    k: &mut Vec<f32>,
    v: &mut Vec<f32>,
    bytes: &mut [u8],
) -> Result<(), LlmError> {
    let t = cache.len() - 1;
    let c = cache.config();
    let (kq, vq) = (cache.key_quantizer(), cache.value_quantizer());
    for head in 0..c.heads {
        let at = k.len();
        k.resize(at + c.dim, 0.0);
        cache.key(head, t, bytes)?;
        kq.decode(&bytes[..kq.encoded_len()], &mut k[at..])?;
        let at = v.len();
        v.resize(at + c.value_dim, 0.0);
        cache.value(head, t, bytes)?;
        vq.decode(&bytes[..vq.encoded_len()], &mut v[at..])?;
    }
    Ok(())
}

/// An element of an uncompressed cache, read as f32.
trait Element: Copy {
    /// `src` as f32: itself, or widened into `buf`.
    fn widen<'b>(src: &'b [Self], buf: &'b mut [f32]) -> &'b [f32];
}

impl Element for f32 {
    fn widen<'b>(src: &'b [f32], _: &'b mut [f32]) -> &'b [f32] {
        src
    }
}

impl Element for f16 {
    fn widen<'b>(src: &'b [f16], buf: &'b mut [f32]) -> &'b [f32] {
        src.convert_to_f32_slice(buf);
        buf
    }
}

/// One KV head's rows in an uncompressed cache: row `t` at
/// `t · stride + at`, `d` values.
struct Rows<'a, E> {
    k: &'a [E],
    v: &'a [E],
    stride: usize,
    at: usize,
    d: usize,
}

impl<E: Element> Rows<'_, E> {
    /// Softmax attention of each query head in `q` (the group sharing this
    /// KV head) over rows `0..upto`: each row is read (and, for f16,
    /// widened) once for the whole group. `scratch` holds the scores and
    /// the widened row.
    fn attend(&self, upto: usize, q: &[f32], out: &mut [f32], scratch: &mut Vec<f32>) {
        let d = self.d;
        let g = q.len() / d;
        let scale = 1.0 / (d as f32).sqrt();
        scratch.resize(g * upto + d, 0.0);
        let (scores, buf) = scratch.split_at_mut(g * upto);
        for t in 0..upto {
            let k = E::widen(&self.k[t * self.stride + self.at..][..d], buf);
            for (h, qh) in q.chunks_exact(d).enumerate() {
                scores[h * upto + t] = dot(qh, k) * scale;
            }
        }
        for s in scores.chunks_exact_mut(upto) {
            let max = s.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            let mut sum = 0.0f32;
            for x in s.iter_mut() {
                *x = (*x - max).exp();
                sum += *x;
            }
            s.iter_mut().for_each(|x| *x /= sum);
        }
        out.fill(0.0);
        for t in 0..upto {
            let v = E::widen(&self.v[t * self.stride + self.at..][..d], buf);
            for (h, oh) in out.chunks_exact_mut(d).enumerate() {
                let w = scores[h * upto + t];
                for (o, &x) in oh.iter_mut().zip(v) {
                    *o += w * x;
                }
            }
        }
    }
}

/// `a · b` with eight partial sums (vectorised by the compiler).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}
