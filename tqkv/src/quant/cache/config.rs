//! What a cache holds ([`CacheConfig`]), its header as stored, and the
//! sizes of its regions.

use bytemuck::{Pod, Zeroable};

use super::HEADER_BYTES;
use crate::Error;
use crate::qjl::Projection;
use crate::quant::{NormPrecision, Quantizer, QuantizerKind, QuantizerSpec, Scheme};

/// The cache header, exactly as stored (see the module docs). Internal:
/// readers get the validated [`CacheConfig`] instead of raw fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct CacheHeader {
    /// [`MAGIC`](super::MAGIC).
    pub magic: [u8; 8],
    /// [`VERSION`](super::VERSION), little-endian.
    pub version: u32,
    /// Key quantiser code (version 3: the scheme code).
    pub key_kind: u8,
    /// Key bits (version 3: the budget).
    pub key_bits: u8,
    /// Projection code.
    pub projection: u8,
    /// Norm precision code.
    pub norm: u8,
    /// Heads, little-endian.
    pub heads: u32,
    /// Dim, little-endian.
    pub dim: u32,
    /// Capacity in tokens, little-endian.
    pub capacity: u32,
    /// Tokens stored, little-endian.
    pub len: u32,
    /// Bytes of one encoded key, little-endian.
    pub key_bytes: u32,
    /// Bytes of one encoded value, little-endian.
    pub value_bytes: u32,
    /// Seed, little-endian.
    pub seed: u64,
    /// Value quantiser code (version 3: zero).
    pub value_kind: u8,
    /// Value bits (version 3: zero).
    pub value_bits: u8,
    /// Value dim, a little-endian u32 at byte 50 (version 5; before,
    /// zero): bytes, since a u32 there would not be aligned.
    pub value_dim: [u8; 4],
    /// Zero.
    pub reserved: [u8; 10],
}

/// What a cache holds and how it is encoded.
///
/// Built with [`CacheConfig::new`] and the `with_…` methods (fields may be
/// added, so the struct cannot be written as a literal outside the crate);
/// its fields are public to read.
///
/// ```
/// use tqkv::quant::{CacheConfig, Scheme};
///
/// let c = CacheConfig::new(Scheme::Kqv, 4, 8, 128, 4096).with_seed(7);
/// assert_eq!((c.heads, c.dim, c.seed), (8, 128, 7));
/// assert_eq!(c.scheme(), Some((Scheme::Kqv, 4)));
///
/// // Keys and values need not share a quantiser or a budget.
/// use tqkv::quant::{QuantizerKind, QuantizerSpec};
/// let mixed = c
///     .with_keys(QuantizerSpec::new(QuantizerKind::Mse, 4))
///     .with_values(QuantizerSpec::new(QuantizerKind::Mse, 3));
/// assert_eq!(mixed.scheme(), None);
/// assert!(mixed.bytes_needed()? < c.bytes_needed()?);
/// # Ok::<(), tqkv::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// How keys are encoded.
    pub keys: QuantizerSpec,
    /// How values are encoded.
    pub values: QuantizerSpec,
    /// KV heads.
    pub heads: usize,
    /// Head dimension of keys (and queries).
    pub dim: usize,
    /// Head dimension of values (and of attention's output): `dim` unless
    /// set with [`with_value_dim`](Self::with_value_dim).
    pub value_dim: usize,
    /// Capacity in tokens.
    pub capacity: usize,
    /// Seed of the rotations and projections.
    pub seed: u64,
    /// QJL projection of the prod quantisers.
    pub projection: Projection,
    /// How norms are stored.
    pub norm: NormPrecision,
}

impl CacheConfig {
    /// A configuration of `heads` KV heads of dimension `dim`, `capacity`
    /// tokens, `scheme` at `budget` bits per coordinate; seed 0, the
    /// Hadamard QJL projection and f16 norms until changed.
    pub const fn new(
        scheme: Scheme,
        budget: u8,
        heads: usize,
        dim: usize,
        capacity: usize,
    ) -> CacheConfig {
        let (keys, values) = scheme.sides(budget);
        CacheConfig {
            keys,
            values,
            heads,
            dim,
            value_dim: dim,
            capacity,
            seed: 0,
            projection: Projection::Hadamard,
            norm: NormPrecision::F16,
        }
    }

    /// The same configuration with keys encoded as `keys`.
    #[must_use]
    pub const fn with_keys(mut self, keys: QuantizerSpec) -> CacheConfig {
        self.keys = keys;
        self
    }

    /// The same configuration with values of dimension `value_dim` (keys
    /// and queries keep `dim`): multi-head latent attention caches keys of
    /// 576 (512 latent + 64 RoPE) beside values of 512.
    ///
    /// ```
    /// use tqkv::quant::{CacheConfig, KvCache, Scheme};
    ///
    /// let mla = CacheConfig::new(Scheme::Kqv, 4, 1, 576, 16).with_value_dim(512);
    /// let mut cache = KvCache::new(mla, vec![0u8; mla.bytes_needed()?])?;
    /// cache.push(&[0.1; 576], &[0.2; 512])?;
    /// assert!(cache.push(&[0.1; 576], &[0.2; 576]).is_err());
    /// # Ok::<(), tqkv::Error>(())
    /// ```
    #[must_use]
    pub const fn with_value_dim(mut self, value_dim: usize) -> CacheConfig {
        self.value_dim = value_dim;
        self
    }

    /// The same configuration with values encoded as `values`.
    #[must_use]
    pub const fn with_values(mut self, values: QuantizerSpec) -> CacheConfig {
        self.values = values;
        self
    }

    /// The scheme and budget whose quantisers these are, if any.
    pub fn scheme(&self) -> Option<(Scheme, u8)> {
        Scheme::ALL
            .iter()
            .map(|&s| (s, self.keys.bits))
            .find(|&(s, n)| (2..=8).contains(&n) && s.sides(n) == (self.keys, self.values))
    }

    /// The same configuration with the rotations and projections seeded by
    /// `seed`.
    #[must_use]
    pub const fn with_seed(mut self, seed: u64) -> CacheConfig {
        self.seed = seed;
        self
    }

    /// The same configuration with `projection` for the prod quantisers.
    #[must_use]
    pub const fn with_projection(mut self, projection: Projection) -> CacheConfig {
        self.projection = projection;
        self
    }

    /// The same configuration with norms stored as `norm`.
    #[must_use]
    pub const fn with_norm(mut self, norm: NormPrecision) -> CacheConfig {
        self.norm = norm;
        self
    }

    /// The K quantiser (seeded with `seed`) and the V quantiser (`seed + 2`,
    /// independent of K's), as [`Scheme::quantizers`] builds them.
    pub(super) fn quantizers(&self) -> Result<(Quantizer, Quantizer), Error> {
        let k = self.keys.build(self.dim, self.seed, self.projection)?;
        let v = self
            .values
            .build(self.value_dim, self.seed.wrapping_add(2), self.projection)?;
        Ok((with_norm(k, self.norm), with_norm(v, self.norm)))
    }

    /// Bytes a cache with this configuration takes, header included.
    ///
    /// # Errors
    /// The quantisers' errors for `budget` and `dim`;
    /// [`Error::InvalidParameter`] for zero heads; [`Error::SizeOverflow`]
    /// if the size does not fit in `usize`.
    pub fn bytes_needed(&self) -> Result<usize, Error> {
        if self.heads == 0 {
            return Err(Error::InvalidParameter("a cache needs at least one head"));
        }
        let (k, v) = self.quantizers()?;
        region_end(self.heads, self.capacity, &k, &v).ok_or(Error::SizeOverflow)
    }
}

/// The header code of a quantiser kind.
pub(super) const fn kind_code(kind: QuantizerKind) -> u8 {
    match kind {
        QuantizerKind::Baseline => 0,
        QuantizerKind::Mse => 1,
        QuantizerKind::Prod => 2,
    }
}

/// The quantiser kind of a header code.
pub(super) fn kind_of(code: u8) -> Result<QuantizerKind, Error> {
    match code {
        0 => Ok(QuantizerKind::Baseline),
        1 => Ok(QuantizerKind::Mse),
        2 => Ok(QuantizerKind::Prod),
        _ => Err(Error::CorruptCache("unknown quantiser")),
    }
}

fn with_norm(q: Quantizer, norm: NormPrecision) -> Quantizer {
    match q {
        Quantizer::Mse(q) => Quantizer::Mse(q.with_norm_precision(norm)),
        Quantizer::Prod(q) => Quantizer::Prod(q.with_norm_precision(norm)),
        Quantizer::Baseline(q) => Quantizer::Baseline(q.with_norm_precision(norm)),
    }
}

/// `x` rounded up to a multiple of 64, if it fits.
fn pad64(x: usize) -> Option<usize> {
    Some(x.checked_add(63)? / 64 * 64)
}

/// Bytes of one head's regions (keys and values), if they fit.
fn head_bytes(capacity: usize, k: &Quantizer, v: &Quantizer) -> Option<usize> {
    k.fields()
        .into_iter()
        .chain(v.fields())
        .try_fold(0usize, |sum, f| {
            sum.checked_add(pad64(capacity.checked_mul(f)?)?)
        })
}

/// The end of the last region, `64 + heads · head_bytes`, if it fits in
/// usize (and the counts in their u32 fields).
pub(super) fn region_end(
    heads: usize,
    capacity: usize,
    k: &Quantizer,
    v: &Quantizer,
) -> Option<usize> {
    if heads > u32::MAX as usize || capacity > u32::MAX as usize {
        return None;
    }
    heads
        .checked_mul(head_bytes(capacity, k, v)?)?
        .checked_add(HEADER_BYTES)
}
