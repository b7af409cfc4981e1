//! The compressed KV cache: a fixed-capacity byte buffer with a header.
//!
//! # Layout (little-endian)
//!
//! | bytes | field |
//! | --- | --- |
//! | 0–7 | magic `b"TQKV\0\0\0\0"` |
//! | 8–11 | version (u32: 4, or 5 when values have a dimension of their own) |
//! | 12 | key quantiser: 0 baseline, 1 MSE, 2 prod |
//! | 13 | key bits per coordinate (1–8) |
//! | 14 | projection: 0 Gaussian, 1 Hadamard |
//! | 15 | norms: 0 f16, 1 f32 |
//! | 16–19 | heads (u32) |
//! | 20–23 | dim of keys (u32), and of values unless bytes 50–53 say otherwise |
//! | 24–27 | capacity in tokens (u32) |
//! | 28–31 | tokens stored (u32) |
//! | 32–35 | bytes of one encoded key (u32) |
//! | 36–39 | bytes of one encoded value (u32) |
//! | 40–47 | seed (u64) |
//! | 48 | value quantiser, coded as byte 12 |
//! | 49 | value bits per coordinate (1–8) |
//! | 50–53 | version 5: dim of values (u32); version 3 and 4: zero |
//! | 54–63 | reserved, zero |
//! | 64– | the field regions, below |
//!
//! Each encoded vector is the concatenation of its fields
//! ([`Quantizer::fields`]): the stored norm, the residual norm (prod only),
//! the packed codes, the sign sketch (prod only). The cache stores every
//! field of one head's keys (or values) for all `capacity` tokens in one
//! region, token `t` at `t · field bytes`; each region is padded to a
//! multiple of 64 bytes, and the regions follow each other head by head,
//! keys before values, fields in the order above (an absent field has no
//! region). So every region starts 64-byte aligned when the buffer does,
//! the norms of a head are one contiguous array, and the codes are rows
//! `field bytes` apart with nothing between them, which the row kernels
//! stream through ([`KvCache::key_fields`], [`KvCache::value_fields`]).
//! The header is read and written as one `bytemuck::Pod` struct; nothing in the
//! buffer needs alignment.
//!
//! ```text
//! Kqv, budget 4, d = 128, f16 norms, capacity 1000, one head:
//! 64      K norms     1000 × 2 B  → 2048 B (padded)
//! 2112    K codes     1000 × 64 B → 64000 B
//! 66112   V norms     1000 × 2 B  → 2048 B
//! 68160   V γ         1000 × 2 B  → 2048 B
//! 70208   V codes     1000 × 48 B → 48000 B
//! 118208  V signs     1000 × 16 B → 16000 B   (end 134208)
//! ```
//!
//! Version 3 (this crate 0.2) differs only in bytes 12–13 and 48–49: byte 12
//! named a scheme (0 `Kv`, 1 `Kqv`, 2 `Qkqv`), byte 13 its budget, and
//! bytes 48–49 were zero. Version 5 adds the values' own dimension (keys
//! of 576 beside values of 512, as multi-head latent attention stores
//! them); a cache whose values have the keys' dimension is written as
//! version 4, byte for byte what 0.3 wrote, so older readers still open it
//! and refuse only the caches they could not read. [`KvCache::from_bytes`]
//! reads versions 3, 4 and 5.
//!
//! [`KvCache::from_bytes`] accepts untrusted bytes: it checks every header
//! field against the others and against the buffer's length and returns
//! [`Error::CorruptCache`] (with the reason) on anything inconsistent, so no
//! later access can fall outside the buffer.

mod batch;
mod config;
mod write;

use super::{NormPrecision, Quantizer, QuantizerSpec, Scheme};
use crate::Error;
use crate::qjl::Projection;
pub use config::CacheConfig;
use config::{CacheHeader, kind_of, region_end};

/// The magic bytes at the start of every cache.
pub const MAGIC: [u8; 8] = *b"TQKV\0\0\0\0";
/// The newest layout version this crate writes: version 5 for a cache whose
/// values have a dimension of their own, version 4 otherwise. It reads
/// version 3 too (a scheme and a budget in place of each side's quantiser
/// and bits); the crate's earlier name wrote versions 1 and 2 under the
/// magic `b"TURBOKV\0"`, which is refused.
pub const VERSION: u32 = 5;
/// The oldest layout version this crate reads.
const OLDEST_READ: u32 = 3;
/// The magic of caches written under the crate's first name, `turbokv`
/// (layout versions 1 and 2). [`KvCache::from_bytes`] refuses them with a
/// message saying so: re-encode the keys and values with this crate.
const LEGACY_MAGIC: [u8; 8] = *b"TURBOKV\0";
/// Bytes of the header.
pub const HEADER_BYTES: usize = 64;

/// The stored fields of one head's keys or values, each `len()` tokens of
/// that field, contiguous (see the module docs and [`Quantizer::fields`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fields<'a> {
    /// The stored norms `‖x‖` ([`NormPrecision::bytes`] each).
    pub norms: &'a [u8],
    /// The residual norms `γ` of prod vectors (empty for the others).
    pub residual_norms: &'a [u8],
    /// The packed codes, `packed_len(dim, bits)` bytes each.
    pub codes: &'a [u8],
    /// The sign sketches of prod vectors, `m/8` bytes each (empty for the
    /// others).
    pub signs: &'a [u8],
}

/// A compressed KV cache in a byte buffer: `&mut [u8]` (no allocation),
/// `&[u8]` (read-only, e.g. a file mapped from disk) or, with `alloc`, an
/// owned `Vec<u8>`.
///
/// ```
/// use tqkv::quant::{CacheConfig, KvCache, Scheme};
///
/// let config = CacheConfig::new(Scheme::Kqv, 4, 2, 64, 8).with_seed(1);
/// let mut buf = vec![0u8; config.bytes_needed()?];
/// let mut cache = KvCache::new(config, &mut buf[..])?;
/// cache.push(&[0.25; 128], &[-0.5; 128])?;
/// assert_eq!(cache.len(), 1);
/// // Saved bytes come back as the same cache; anything else is an error.
/// let again = KvCache::from_bytes(&buf[..])?;
/// assert_eq!(again.len(), 1);
/// assert!(KvCache::from_bytes(&buf[..100]).is_err());
/// # Ok::<(), tqkv::Error>(())
/// ```
pub struct KvCache<B> {
    buf: B,
    config: CacheConfig,
    len: usize,
    k: Quantizer,
    v: Quantizer,
    layout: Layout,
}

/// Where head 0's fields start and how long one token's entry is, per side
/// (keys, values) and field, and the bytes between heads: computed once,
/// since every push and read needs them.
#[derive(Clone, Copy, Debug)]
struct Layout {
    regions: [[(usize, usize); 4]; 2],
    head_stride: usize,
}

impl Layout {
    /// The layout of a buffer `new` or `from_bytes` accepted (so none of
    /// this arithmetic overflows).
    fn of(capacity: usize, k: &Quantizer, v: &Quantizer) -> Layout {
        let mut regions = [[(0, 0); 4]; 2];
        let mut at = HEADER_BYTES;
        for (side, q) in regions.iter_mut().zip([k, v]) {
            for (o, f) in side.iter_mut().zip(q.fields()) {
                *o = (at, f);
                at += (capacity * f).div_ceil(64) * 64;
            }
        }
        // A head's regions end where the next head's begin.
        Layout {
            regions,
            head_stride: at - HEADER_BYTES,
        }
    }

    /// Where each field region of `head`'s keys (`side` 0) or values
    /// (`side` 1) starts, with the field's bytes per token.
    fn regions(&self, head: usize, side: usize) -> [(usize, usize); 4] {
        let base = head * self.head_stride;
        self.regions[side].map(|(at, f)| (at + base, f))
    }
}

impl<B: AsRef<[u8]>> KvCache<B> {
    /// Reads a cache from untrusted bytes, checking every header field and
    /// the stored norms of every token in use (O(heads · len)); packed
    /// indices need no check, since every bit pattern is a valid index.
    ///
    /// # Errors
    /// [`Error::CorruptCache`] naming the first inconsistency found.
    pub fn from_bytes(buf: B) -> Result<Self, Error> {
        let bytes = buf.as_ref();
        if bytes.len() < HEADER_BYTES {
            return Err(Error::CorruptCache("shorter than the header"));
        }
        let h: CacheHeader = bytemuck::pod_read_unaligned(&bytes[..HEADER_BYTES]);
        if h.magic == LEGACY_MAGIC {
            return Err(Error::CorruptCache(
                "a cache written by turbokv (format 1 or 2), before the rename to tqkv: re-encode it with this version",
            ));
        }
        if h.magic != MAGIC {
            return Err(Error::CorruptCache("bad magic (not a tqkv cache)"));
        }
        let version = u32::from_le(h.version);
        if !(OLDEST_READ..=VERSION).contains(&version) {
            return Err(Error::CorruptCache(
                "unsupported layout version (this build reads versions 3, 4 and 5)",
            ));
        }
        let value_dim = match (version, u32::from_le_bytes(h.value_dim)) {
            (5, d) if d != 0 && d != u32::from_le(h.dim) => d as usize,
            (5, _) => {
                return Err(Error::CorruptCache(
                    "version 5 without a dim of its own for values",
                ));
            }
            (_, 0) => u32::from_le(h.dim) as usize,
            _ => return Err(Error::CorruptCache("reserved bytes are not zero")),
        };
        if h.reserved != [0; 10] {
            return Err(Error::CorruptCache("reserved bytes are not zero"));
        }
        let (keys, values) = if version == 3 {
            if (h.value_kind, h.value_bits) != (0, 0) {
                return Err(Error::CorruptCache("reserved bytes are not zero"));
            }
            let scheme = match h.key_kind {
                0 => Scheme::Kv,
                1 => Scheme::Kqv,
                2 => Scheme::Qkqv,
                _ => return Err(Error::CorruptCache("unknown scheme")),
            };
            if !(2..=8).contains(&h.key_bits) {
                return Err(Error::CorruptCache("bits or dim not supported"));
            }
            scheme.sides(h.key_bits)
        } else {
            (
                QuantizerSpec::new(kind_of(h.key_kind)?, h.key_bits),
                QuantizerSpec::new(kind_of(h.value_kind)?, h.value_bits),
            )
        };
        let projection = match h.projection {
            0 => Projection::Gaussian,
            1 => Projection::Hadamard,
            _ => return Err(Error::CorruptCache("unknown projection")),
        };
        let norm = match h.norm {
            0 => NormPrecision::F16,
            1 => NormPrecision::F32,
            _ => return Err(Error::CorruptCache("unknown norm precision")),
        };
        let config = CacheConfig {
            keys,
            values,
            heads: u32::from_le(h.heads) as usize,
            dim: u32::from_le(h.dim) as usize,
            value_dim,
            capacity: u32::from_le(h.capacity) as usize,
            seed: u64::from_le(h.seed),
            projection,
            norm,
        };
        if config.heads == 0 {
            return Err(Error::CorruptCache("zero heads"));
        }
        let (k, v) = config
            .quantizers()
            .map_err(|_| Error::CorruptCache("bits or dim not supported"))?;
        if u32::from_le(h.key_bytes) as usize != k.encoded_len()
            || u32::from_le(h.value_bytes) as usize != v.encoded_len()
        {
            return Err(Error::CorruptCache("code sizes do not match the scheme"));
        }
        let len = u32::from_le(h.len) as usize;
        if len > config.capacity {
            return Err(Error::CorruptCache("more tokens than capacity"));
        }
        match region_end(config.heads, config.capacity, &k, &v) {
            Some(end) if end <= bytes.len() => {}
            _ => return Err(Error::CorruptCache("buffer shorter than its capacity")),
        }
        let layout = Layout::of(config.capacity, &k, &v);
        let cache = KvCache {
            buf,
            config,
            len,
            k,
            v,
            layout,
        };
        // Every packed index is valid; the stored norms are the one payload
        // field an encoder could not have written (NaN, ±∞, negative). With
        // no token there is nothing to check, and the loop must not run:
        // a capacity of 0 lets `heads` reach u32::MAX in a 64-byte buffer.
        let heads = if len == 0 { 0 } else { cache.config.heads };
        let nb = norm.bytes();
        for head in 0..heads {
            for fields in [cache.key_fields(head), cache.value_fields(head)] {
                let f = fields.ok_or(Error::CorruptCache("head out of range"))?;
                let ok = [f.norms, f.residual_norms]
                    .iter()
                    .all(|stored| stored.chunks_exact(nb).all(|n| norm.is_valid(n)));
                if !ok {
                    return Err(Error::CorruptCache(
                        "a stored norm is negative, not finite or above MAX_NORM",
                    ));
                }
            }
        }
        Ok(cache)
    }

    /// The configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// Tokens stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no token is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Capacity in tokens.
    pub fn capacity(&self) -> usize {
        self.config.capacity
    }

    /// Bytes one token takes (keys and values of every head).
    pub fn bytes_per_token(&self) -> usize {
        self.config.heads * (self.k.encoded_len() + self.v.encoded_len())
    }

    /// The K quantiser.
    pub fn key_quantizer(&self) -> &Quantizer {
        &self.k
    }

    /// The V quantiser.
    pub fn value_quantizer(&self) -> &Quantizer {
        &self.v
    }

    /// Where each field region of `head`'s keys (`side` 0) or values
    /// (`side` 1) starts, with the field's bytes per token: offsets into
    /// the buffer, valid once `new`/`from_bytes` checked the layout.
    fn regions(&self, head: usize, side: usize) -> [(usize, usize); 4] {
        self.layout.regions(head, side)
    }

    fn fields(&self, head: usize, side: usize) -> Option<Fields<'_>> {
        if head >= self.config.heads {
            return None;
        }
        let buf = self.buf.as_ref();
        let [n, r, c, s] = self
            .regions(head, side)
            .map(|(at, f)| buf.get(at..at + self.len * f));
        Some(Fields {
            norms: n?,
            residual_norms: r?,
            codes: c?,
            signs: s?,
        })
    }

    /// The stored fields of `head`'s keys; `None` if `head` is out of range.
    ///
    /// ```
    /// use tqkv::quant::{CacheConfig, KvCache, Scheme};
    ///
    /// let config = CacheConfig::new(Scheme::Kqv, 4, 1, 128, 1000).with_seed(1);
    /// // The worked example of the module docs.
    /// assert_eq!(config.bytes_needed()?, 134_208);
    /// let mut cache = KvCache::new(config, vec![0u8; 134_208])?;
    /// cache.push(&[0.5; 128], &[1.0; 128])?;
    /// let keys = cache.key_fields(0).unwrap();
    /// assert_eq!((keys.norms.len(), keys.codes.len(), keys.signs.len()), (2, 64, 0));
    /// let values = cache.value_fields(0).unwrap();
    /// assert_eq!((values.residual_norms.len(), values.codes.len(), values.signs.len()), (2, 48, 16));
    /// # Ok::<(), tqkv::Error>(())
    /// ```
    pub fn key_fields(&self, head: usize) -> Option<Fields<'_>> {
        self.fields(head, 0)
    }

    /// The stored fields of `head`'s values; `None` if `head` is out of
    /// range.
    pub fn value_fields(&self, head: usize) -> Option<Fields<'_>> {
        self.fields(head, 1)
    }

    /// Copies the encoding of token `token`'s key of `head` into `out` (the
    /// key quantiser's `encoded_len()` bytes, ready for its `decode`).
    ///
    /// # Errors
    /// [`Error::InvalidHead`] or [`Error::InvalidToken`] if `head` or `token` is out of range;
    /// [`Error::BufferTooShort`] if `out` is.
    pub fn key(&self, head: usize, token: usize, out: &mut [u8]) -> Result<(), Error> {
        self.gather(head, 0, token, out)
    }

    /// [`key`](Self::key) for the value of `token`.
    ///
    /// # Errors
    /// As [`key`](Self::key).
    pub fn value(&self, head: usize, token: usize, out: &mut [u8]) -> Result<(), Error> {
        self.gather(head, 1, token, out)
    }

    fn gather(&self, head: usize, side: usize, token: usize, out: &mut [u8]) -> Result<(), Error> {
        let fields = self.fields(head, side).ok_or(Error::InvalidHead {
            head,
            heads: self.config.heads,
        })?;
        if token >= self.len {
            return Err(Error::InvalidToken {
                token,
                len: self.len,
            });
        }
        let q = if side == 0 { &self.k } else { &self.v };
        let needed = q.encoded_len();
        if out.len() < needed {
            return Err(Error::BufferTooShort {
                needed,
                found: out.len(),
            });
        }
        let stored = [
            fields.norms,
            fields.residual_norms,
            fields.codes,
            fields.signs,
        ];
        let mut at = 0;
        for (region, f) in stored.into_iter().zip(q.fields()) {
            out[at..at + f].copy_from_slice(&region[token * f..(token + 1) * f]);
            at += f;
        }
        Ok(())
    }

    /// A read-only view of the first `len` tokens. Attention through it is
    /// the causal attention of an earlier position: a prefill pushes a batch
    /// of tokens, then scores each position over its own prefix (in
    /// parallel, since views only read).
    ///
    /// ```
    /// use tqkv::quant::{CacheConfig, KvCache, Scheme};
    ///
    /// let config = CacheConfig::new(Scheme::Kqv, 4, 1, 64, 8);
    /// let mut cache = KvCache::new(config, vec![0u8; config.bytes_needed()?])?;
    /// for t in 0..3 {
    ///     cache.push(&[t as f32 + 1.0; 64], &[0.5; 64])?;
    /// }
    /// let first_two = cache.prefix(2)?;
    /// assert_eq!((first_two.len(), cache.len()), (2, 3));
    /// assert!(cache.prefix(4).is_err());
    /// # Ok::<(), tqkv::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidToken`] if `len` is past [`len`](Self::len).
    pub fn prefix(&self, len: usize) -> Result<KvCache<&[u8]>, Error> {
        if len > self.len {
            return Err(Error::InvalidToken {
                token: len,
                len: self.len,
            });
        }
        Ok(KvCache {
            buf: self.buf.as_ref(),
            config: self.config,
            len,
            k: self.k.clone(),
            v: self.v.clone(),
            layout: self.layout,
        })
    }

    /// The bytes in use (the whole buffer up to the end of the last region).
    pub fn as_bytes(&self) -> &[u8] {
        let end = region_end(self.config.heads, self.config.capacity, &self.k, &self.v)
            .unwrap_or(HEADER_BYTES);
        &self.buf.as_ref()[..end]
    }
}
