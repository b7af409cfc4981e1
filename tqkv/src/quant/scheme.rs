//! Quantisers chosen at run time: [`Quantizer`] (any of the three),
//! [`Scheme`] (the paper's KV, KQV and QKQV) and [`QuantizerSpec`] (a kind,
//! a bit count and norms, as a cache is configured).

use super::{BaselineQuantizer, MseQuantizer, ProdQuantizer};
use crate::backend::Checked;
use crate::codebook::pack;
use crate::qjl::Projection;
use crate::{Backend, Error};

/// Any of the three quantisers, as a scheme hands them out.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Quantizer {
    /// TurboQuant_mse.
    Mse(MseQuantizer),
    /// TurboQuant_prod.
    Prod(ProdQuantizer),
    /// The KV baseline.
    Baseline(BaselineQuantizer),
}

impl Quantizer {
    /// The dimension of the vectors it encodes.
    ///
    /// ```
    /// use tqkv::qjl::Projection;
    /// use tqkv::quant::Scheme;
    ///
    /// let (k, v) = Scheme::Kqv.quantizers(4, 96, 1, Projection::Hadamard)?;
    /// assert_eq!((k.dim(), v.dim()), (96, 96));
    /// # Ok::<(), tqkv::Error>(())
    /// ```
    pub fn dim(&self) -> usize {
        match self {
            Quantizer::Mse(q) => q.dim(),
            Quantizer::Prod(q) => q.dim(),
            Quantizer::Baseline(q) => q.dim(),
        }
    }

    /// Bytes of one encoded vector.
    pub fn encoded_len(&self) -> usize {
        match self {
            Quantizer::Mse(q) => q.encoded_len(),
            Quantizer::Prod(q) => q.encoded_len(),
            Quantizer::Baseline(q) => q.encoded_len(),
        }
    }

    /// Bits of the whole encoding per coordinate, side information included.
    pub fn bits_per_coordinate(&self) -> f64 {
        match self {
            Quantizer::Mse(q) => q.bits_per_coordinate(),
            Quantizer::Prod(q) => q.bits_per_coordinate(),
            Quantizer::Baseline(q) => q.bits_per_coordinate(),
        }
    }

    /// Encodes `x`; see the quantiser's own `encode`.
    ///
    /// # Errors
    /// As the quantiser's `encode`.
    pub fn encode(&self, x: &[f32], out: &mut [u8]) -> Result<(), Error> {
        self.encode_on(Backend::detect(), x, out)
    }

    /// Encodes `x` on a chosen backend (identical bytes on every backend).
    ///
    /// # Errors
    /// As the quantiser's `encode_on`.
    pub fn encode_on(&self, backend: Backend, x: &[f32], out: &mut [u8]) -> Result<(), Error> {
        self.encode_in(backend.check()?, x, out)
    }

    /// [`encode_on`](Self::encode_on) on a backend already checked.
    pub(crate) fn encode_in(
        &self,
        backend: Checked,
        x: &[f32],
        out: &mut [u8],
    ) -> Result<(), Error> {
        match self {
            Quantizer::Mse(q) => q.encode_in(backend, x, out),
            Quantizer::Prod(q) => q.encode_in(backend, x, out),
            Quantizer::Baseline(q) => q.encode_in(backend, x, out),
        }
    }

    /// Whether the side information of `code` (its stored norms: one, or
    /// two for prod) is what an encoder can write: in `0..=`[`MAX_NORM`](super::MAX_NORM).
    /// Bytes of the fields an encoding is the concatenation of, in order:
    /// the stored norm, the residual norm `γ` (prod only, else 0), the
    /// packed codes, the sign sketch (prod only, else 0). They sum to
    /// [`encoded_len`](Self::encoded_len); the cache stores each field of
    /// all tokens contiguously.
    ///
    /// ```
    /// use tqkv::qjl::Projection;
    /// use tqkv::quant::{ProdQuantizer, Quantizer};
    ///
    /// let q = Quantizer::Prod(ProdQuantizer::new(128, 4, 1, Projection::Hadamard)?);
    /// // f16 norms, 128 codes of 3 bits, 128 sign bits.
    /// assert_eq!(q.fields(), [2, 2, 48, 16]);
    /// assert_eq!(q.fields().iter().sum::<usize>(), q.encoded_len());
    /// # Ok::<(), tqkv::Error>(())
    /// ```
    pub fn fields(&self) -> [usize; 4] {
        match self {
            Quantizer::Mse(q) => [
                q.norm.bytes(),
                0,
                pack::packed_len(q.dim, q.codebook.bits()),
                0,
            ],
            Quantizer::Prod(q) => [
                q.norm.bytes(),
                q.norm.bytes(),
                pack::packed_len(q.dim, q.mse.codebook.bits()),
                q.sketcher.sketch_bytes(),
            ],
            Quantizer::Baseline(q) => [
                q.norm.bytes(),
                0,
                pack::packed_len(q.dim, q.codebook.bits()),
                0,
            ],
        }
    }

    /// Every packed index is valid, so this is the whole check a reader of
    /// untrusted codes needs before decoding; `false` if `code` is short.
    pub fn side_info_is_valid(&self, code: &[u8]) -> bool {
        let (precision, count) = match self {
            Quantizer::Mse(q) => (q.norm, 1),
            Quantizer::Prod(q) => (q.norm, 2),
            Quantizer::Baseline(q) => (q.norm, 1),
        };
        let nb = precision.bytes();
        code.len() >= self.encoded_len() && (0..count).all(|i| precision.is_valid(&code[i * nb..]))
    }

    /// Decodes `code` on the detected backend; see the quantiser's own
    /// `decode`.
    ///
    /// # Errors
    /// As the quantiser's `decode`.
    pub fn decode(&self, code: &[u8], out: &mut [f32]) -> Result<(), Error> {
        self.decode_on(Backend::detect(), code, out)
    }

    /// [`decode`](Self::decode) on a chosen backend.
    ///
    /// # Errors
    /// As the quantiser's `decode_on`.
    pub fn decode_on(&self, backend: Backend, code: &[u8], out: &mut [f32]) -> Result<(), Error> {
        self.decode_in(backend.check()?, code, out)
    }

    /// [`decode_on`](Self::decode_on) on a backend already checked.
    pub(crate) fn decode_in(
        &self,
        backend: Checked,
        code: &[u8],
        out: &mut [f32],
    ) -> Result<(), Error> {
        match self {
            Quantizer::Mse(q) => q.decode_in(backend, code, out),
            Quantizer::Prod(q) => q.decode_in(backend, code, out),
            Quantizer::Baseline(q) => q.decode_in(backend, code, out),
        }
    }
}

/// The three schemes of the paper under a budget of `n` bits per coordinate
/// (`ARCHITECTURE.md`, "The schemes"):
///
/// | scheme | K | V |
/// | --- | --- | --- |
/// | `Kv` | `n`-bit baseline | `n`-bit baseline |
/// | `Kqv` | `n`-bit MSE | `n`-bit prod (`n − 1` MSE + 1 QJL) |
/// | `Qkqv` | `n`-bit prod | `n`-bit prod |
///
/// ```
/// use tqkv::qjl::Projection;
/// use tqkv::quant::{Quantizer, Scheme};
///
/// let (k, v) = Scheme::Kqv.quantizers(4, 128, 7, Projection::Hadamard)?;
/// assert!(matches!(k, Quantizer::Mse(_)) && matches!(v, Quantizer::Prod(_)));
/// // Payload 4 bits + side information (one f16 norm; two for prod).
/// assert_eq!(k.bits_per_coordinate(), 4.0 + 16.0 / 128.0);
/// assert_eq!(v.bits_per_coordinate(), 4.0 + 32.0 / 128.0);
/// # Ok::<(), tqkv::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// Scalar MSE baseline on K and V, no rotation.
    Kv,
    /// Rotation + MSE on K, TurboQuant_prod on V.
    Kqv,
    /// TurboQuant_prod on K and V.
    Qkqv,
}

impl Scheme {
    /// Every scheme.
    pub const ALL: &'static [Scheme] = &[Scheme::Kv, Scheme::Kqv, Scheme::Qkqv];

    /// The K and V quantisers under a budget of `n` bits, for `dim`, with
    /// rotations seeded from `seed` (K with `seed`, V with `seed + 2`, so
    /// that K's and V's rotations and projections are independent).
    ///
    /// # Errors
    /// [`Error::InvalidBits`] unless `n ∈ 2..=8`; the quantisers' own errors
    /// for `dim`.
    pub fn quantizers(
        self,
        n: u8,
        dim: usize,
        seed: u64,
        projection: Projection,
    ) -> Result<(Quantizer, Quantizer), Error> {
        if !(2..=8).contains(&n) {
            return Err(Error::InvalidBits { bits: n });
        }
        let (k, v) = self.sides(n);
        Ok((
            k.build(dim, seed, projection)?,
            v.build(dim, seed.wrapping_add(2), projection)?,
        ))
    }

    /// The K and V quantisers of the scheme at a budget of `n` bits, as
    /// specs (what [`quantizers`](Self::quantizers) builds).
    ///
    /// ```
    /// use tqkv::quant::{QuantizerKind, QuantizerSpec, Scheme};
    ///
    /// let (k, v) = Scheme::Kqv.sides(4);
    /// assert_eq!(k, QuantizerSpec::new(QuantizerKind::Mse, 4));
    /// assert_eq!(v, QuantizerSpec::new(QuantizerKind::Prod, 4));
    /// ```
    pub const fn sides(self, n: u8) -> (QuantizerSpec, QuantizerSpec) {
        let (k, v) = match self {
            Scheme::Kv => (QuantizerKind::Baseline, QuantizerKind::Baseline),
            Scheme::Kqv => (QuantizerKind::Mse, QuantizerKind::Prod),
            Scheme::Qkqv => (QuantizerKind::Prod, QuantizerKind::Prod),
        };
        (QuantizerSpec::new(k, n), QuantizerSpec::new(v, n))
    }

    /// A short lowercase name (`"kv"`, `"kqv"`, `"qkqv"`).
    pub const fn name(self) -> &'static str {
        match self {
            Scheme::Kv => "kv",
            Scheme::Kqv => "kqv",
            Scheme::Qkqv => "qkqv",
        }
    }
}

/// Which quantiser encodes one side (keys or values) of a cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuantizerKind {
    /// [`BaselineQuantizer`]: scalar codes of the raw unit vector.
    Baseline,
    /// [`MseQuantizer`]: rotation and Lloyd–Max codes.
    Mse,
    /// [`ProdQuantizer`]: `bits − 1` MSE bits and a 1-bit QJL sketch.
    Prod,
}

impl QuantizerKind {
    /// A short lowercase name (`"baseline"`, `"mse"`, `"prod"`).
    pub const fn name(self) -> &'static str {
        match self {
            QuantizerKind::Baseline => "baseline",
            QuantizerKind::Mse => "mse",
            QuantizerKind::Prod => "prod",
        }
    }
}

/// One side of a cache: a quantiser and its payload bits per coordinate
/// (side information, the stored norms, comes on top: see
/// [`Quantizer::bits_per_coordinate`]). Keys and values may differ, as
/// runtimes ship them: 4-bit keys with 3-bit values, 8-bit keys with 4-bit
/// values, …
///
/// ```
/// use tqkv::quant::{QuantizerKind, QuantizerSpec};
/// use tqkv::qjl::Projection;
///
/// let q = QuantizerSpec::new(QuantizerKind::Mse, 3).build(64, 7, Projection::Hadamard)?;
/// assert_eq!(q.bits_per_coordinate(), 3.0 + 16.0 / 64.0);
/// # Ok::<(), tqkv::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QuantizerSpec {
    /// The quantiser.
    pub kind: QuantizerKind,
    /// Its bits per coordinate (1–8; prod 2–8).
    pub bits: u8,
}

impl QuantizerSpec {
    /// `kind` at `bits` bits per coordinate.
    pub const fn new(kind: QuantizerKind, bits: u8) -> QuantizerSpec {
        QuantizerSpec { kind, bits }
    }

    /// The quantiser for `dim`, seeded with `seed` (the prod quantiser's
    /// projection is `projection`, seeded with `seed + 1`).
    ///
    /// # Errors
    /// The quantiser's own errors for `dim` and `bits`.
    pub fn build(self, dim: usize, seed: u64, projection: Projection) -> Result<Quantizer, Error> {
        Ok(match self.kind {
            QuantizerKind::Baseline => Quantizer::Baseline(BaselineQuantizer::new(dim, self.bits)?),
            QuantizerKind::Mse => Quantizer::Mse(MseQuantizer::new(dim, self.bits, seed)?),
            QuantizerKind::Prod => {
                Quantizer::Prod(ProdQuantizer::new(dim, self.bits, seed, projection)?)
            }
        })
    }
}
