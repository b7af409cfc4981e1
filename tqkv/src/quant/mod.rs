//! Vector quantisers: TurboQuant_mse ([`MseQuantizer`]), TurboQuant_prod
//! ([`ProdQuantizer`]) and the paper's KV baseline ([`BaselineQuantizer`]).
//!
//! Each turns one vector of `dim` f32 (or `half::f16` / `half::bf16`) into a
//! fixed number of bytes, [`encoded_len`](MseQuantizer::encoded_len), and
//! back. Side information is counted: [`bits_per_coordinate`](MseQuantizer::bits_per_coordinate)
//! is the whole encoding, norms included.
//!
//! # Encodings (little-endian, no padding)
//!
//! | quantiser | fields, in order |
//! | --- | --- |
//! | `MseQuantizer` | `‖x‖` (f16 or f32), `b`-bit codes of the rotated unit vector |
//! | `ProdQuantizer` | `‖x‖`, `γ = ‖r‖` (f16 or f32), `(b−1)`-bit codes, `m` sign bits of the residual `r` |
//! | `BaselineQuantizer` | `‖x‖`, `b`-bit codes of the raw unit vector |
//!
//! Codes are packed as in [`crate::pack`], sign bits as in [`crate::qjl`].
//! The MSE and prod quantisers work in the rotated domain of a
//! [`Rotation`] seeded with `seed` (the prod quantiser's projection uses
//! `seed + 1`, so the two are independent); the residual is taken there,
//! which changes no inner product (the rotation is orthogonal).
//!
//! # Edge cases
//!
//! - A zero vector encodes as norm 0 (and γ = 0, all sign bits 0); its codes
//!   are those of the zero vector, and it decodes to exact zeros.
//! - NaN or ±∞ anywhere in the input is [`Error::NonFinite`], and so is a
//!   norm above the largest f16 (65504) when norms are stored in f16, or
//!   above [`MAX_NORM`] (2^100) in f32: decoding and attention sum up to
//!   `√d` such magnitudes in f32, which must not overflow.
//! - A stored norm that no encoder writes (NaN, ±∞, negative, above
//!   [`MAX_NORM`]) is [`Error::InvalidNorm`] in `decode`, and makes
//!   [`KvCache::from_bytes`] refuse the cache: readers never turn corrupt
//!   side information into non-finite output.
//!
//! Dimensions: the rotating quantisers take what [`Rotation`]
//! takes, from 8 (prod) or 2 (MSE) up to [`MAX_DIM`]: a power of two, or a
//! multiple of 8 such as 80, 96, 112, 192 or 576 ([`Rotation::supports`](crate::Rotation::supports));
//! the baseline any dim from 2 to [`MAX_DIM`].
//!
//! ```
//! use tqkv::quant::MseQuantizer;
//!
//! let q = MseQuantizer::new(128, 4, 7)?;
//! let x: Vec<f32> = (0..128).map(|i| ((i * 29 % 17) as f32 - 8.0) / 8.0).collect();
//! let mut code = vec![0u8; q.encoded_len()];
//! q.encode(&x, &mut code)?;
//! let mut back = vec![0.0f32; 128];
//! q.decode(&code, &mut back)?;
//! let err: f32 = x.iter().zip(&back).map(|(a, b)| (a - b) * (a - b)).sum();
//! let norm2: f32 = x.iter().map(|a| a * a).sum();
//! assert!(err / norm2 < 0.03); // MSE ≈ 0.0093 at 4 bits
//! assert!((q.bits_per_coordinate() - (4.0 + 16.0 / 128.0)).abs() < 1e-9);
//! # Ok::<(), tqkv::Error>(())
//! ```

mod cache;
mod rows;

pub use cache::{CacheConfig, Fields, HEADER_BYTES, KvCache, MAGIC, VERSION};
use half::{bf16, f16};

use crate::backend::Checked;
use crate::codebook::{self, Codebook, pack};
use crate::error::need;
use crate::loops;
use crate::qjl::{Projection, QjlSketcher};
use crate::{Backend, Error, Rotation};

/// Largest dim of every quantiser: the rotated (or widened f16/bf16) copy of
/// the input lives in a stack buffer of this many f32 (16 KiB), so nothing
/// allocates.
pub const MAX_DIM: usize = 4096;

/// The largest norm (and residual norm) an f32-norm encoding stores:
/// 2^100 ≈ 1.27e30, far above any activation, far enough below `f32::MAX`
/// that decoding (a transform summing up to `√d` scaled terms) and attention
/// stay finite. Readers of untrusted codes reject anything larger.
pub const MAX_NORM: f32 = 1.2676506e30;

/// How norms are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NormPrecision {
    /// IEEE binary16, 2 bytes (the default): relative error ≤ 2^-11.
    #[default]
    F16,
    /// IEEE binary32, 4 bytes.
    F32,
}

impl NormPrecision {
    /// Bytes of one stored norm.
    pub const fn bytes(self) -> usize {
        match self {
            NormPrecision::F16 => 2,
            NormPrecision::F32 => 4,
        }
    }

    /// Stores `v` (finite, ≥ 0) and returns the value a decoder will read.
    fn store(self, v: f32, out: &mut [u8]) -> Result<f32, Error> {
        let (stored, bytes) = self.encoded(v)?;
        self.write(bytes, out);
        Ok(stored)
    }

    /// Writes the bytes [`encoded`](Self::encoded) gave to `out`, in
    /// copies of constant length (one of `bytes()` was a `memcpy` call).
    #[inline(always)]
    fn write(self, bytes: [u8; 4], out: &mut [u8]) {
        match self {
            NormPrecision::F16 => out[..2].copy_from_slice(&bytes[..2]),
            NormPrecision::F32 => out[..4].copy_from_slice(&bytes),
        }
    }

    /// The value a decoder will read of `v` (≥ 0) once stored, and the
    /// bytes that store it (the first [`bytes`](Self::bytes) of four);
    /// [`Error::NonFinite`] where the format cannot hold it.
    #[inline(always)]
    fn encoded(self, v: f32) -> Result<(f32, [u8; 4]), Error> {
        match self {
            NormPrecision::F16 => {
                let h = f16::from_f32(v);
                if !h.is_finite() {
                    return Err(Error::NonFinite);
                }
                let [a, b] = h.to_le_bytes();
                Ok((h.to_f32(), [a, b, 0, 0]))
            }
            NormPrecision::F32 => {
                // Also catches a finite f64 norm that rounds to +∞ in f32.
                if !(0.0..=MAX_NORM).contains(&v) {
                    return Err(Error::NonFinite);
                }
                Ok((v, v.to_le_bytes()))
            }
        }
    }

    /// Reads a stored norm (never fails: any bit pattern is some value).
    #[inline(always)]
    pub(crate) fn load(self, code: &[u8]) -> f32 {
        match self {
            NormPrecision::F16 => f16_bits_to_f32(u16::from_le_bytes([code[0], code[1]])),
            NormPrecision::F32 => f32::from_le_bytes([code[0], code[1], code[2], code[3]]),
        }
    }

    /// Whether the norm stored at the start of `code` is one an encoder can
    /// write: finite, not negative, at most [`MAX_NORM`].
    #[inline]
    pub(crate) fn is_valid(self, code: &[u8]) -> bool {
        (0.0..=MAX_NORM).contains(&self.load(code))
    }

    /// The stored norm at the start of `code`, or [`Error::InvalidNorm`] if
    /// no encoder could have written it (the rule every reader follows:
    /// `decode`, `from_bytes` and, through them, attention).
    #[inline]
    fn load_checked(self, code: &[u8]) -> Result<f32, Error> {
        let v = self.load(code);
        if (0.0..=MAX_NORM).contains(&v) {
            Ok(v)
        } else {
            Err(Error::InvalidNorm)
        }
    }
}

/// IEEE binary16 bits to f32, exactly (what `half::f16::to_f32` returns for
/// every non-NaN value; NaNs stay NaN). Branch-free, so that the attention
/// loops that read one stored norm per token inline and vectorise it rather
/// than call out per value: the exponent and mantissa move into f32
/// position and a multiplication by 2^112 rebiases the exponent, which is
/// exact for normals and turns subnormals into the right normals.
#[inline]
pub(crate) fn f16_bits_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let em = (h as u32) & 0x7fff;
    let finite = f32::from_bits(em << 13) * f32::from_bits(0x7780_0000);
    let special = f32::from_bits((em << 13) | 0x7f80_0000);
    let v = if em >= 0x7c00 { special } else { finite };
    f32::from_bits(v.to_bits() | sign)
}

/// `‖x‖₂` in f64, or `NonFinite`.
fn norm(backend: Checked, x: &[f32]) -> Result<f64, Error> {
    norm_of_squares(loops::sum_squares_on(backend, x))
}

/// `√squares`, or [`Error::NonFinite`]: the sum of squares is finite
/// exactly when every element is.
fn norm_of_squares(squares: f64) -> Result<f64, Error> {
    if !squares.is_finite() {
        return Err(Error::NonFinite);
    }
    Ok(libm::sqrt(squares))
}

fn check_len(expected: usize, found: usize) -> Result<(), Error> {
    if expected != found {
        Err(Error::LengthMismatch { expected, found })
    } else {
        Ok(())
    }
}

/// The checks every `encode_on` starts with, then the norm stored at the
/// start of `out`: returns `‖x‖` (f64) and the value a decoder will read.
fn start_encode(
    backend: Checked,
    dim: usize,
    encoded_len: usize,
    precision: NormPrecision,
    x: &[f32],
    out: &mut [u8],
) -> Result<(f64, f32), Error> {
    check_len(dim, x.len())?;
    need(encoded_len, out.len())?;
    let n = norm(backend, x)?;
    let stored = precision.store(n as f32, out)?;
    Ok((n, stored))
}

/// `y = x/‖x‖` into `y` (zeros for a zero vector).
fn unit(backend: Checked, x: &[f32], n: f64, y: &mut [f32]) {
    if n > 0.0 {
        // One division, then products (a division per coordinate cost a
        // tenth of an encode), in f64 and rounded once to f32.
        loops::scale_f64_into_on(backend, x, 1.0 / n, y);
    } else {
        y.fill(0.0);
    }
}

/// Converts half-precision input to f32 in a stack buffer, then runs `f`.
fn widen<T: Copy>(
    x: &[T],
    to: impl Fn(T) -> f32,
    f: impl FnOnce(&[f32]) -> Result<(), Error>,
) -> Result<(), Error> {
    if x.len() > MAX_DIM {
        return Err(Error::InvalidDim { dim: x.len() });
    }
    crate::stack::floats(x.len(), |buf| {
        for (o, &v) in buf.iter_mut().zip(x) {
            *o = to(v);
        }
        f(buf)
    })
}

/// Implements `encode` and the half-precision entry points over `encode_on`,
/// and the accessors every quantiser shares.
macro_rules! half_inputs {
    () => {
        /// Encodes `x` (`dim` values) into `out` (`encoded_len()` bytes) on
        /// the detected backend.
        ///
        /// # Errors
        /// [`Error::LengthMismatch`], [`Error::BufferTooShort`],
        /// [`Error::NonFinite`] (see the module docs).
        pub fn encode(&self, x: &[f32], out: &mut [u8]) -> Result<(), Error> {
            self.encode_on(Backend::detect(), x, out)
        }

        /// [`encode`](Self::encode) of `half::f16` input.
        ///
        /// # Errors
        /// As [`encode`](Self::encode).
        pub fn encode_f16(&self, x: &[f16], out: &mut [u8]) -> Result<(), Error> {
            self.encode_f16_on(Backend::detect(), x, out)
        }

        /// [`encode_f16`](Self::encode_f16) on a chosen backend.
        ///
        /// # Errors
        /// As [`encode_on`](Self::encode_on).
        pub fn encode_f16_on(
            &self,
            backend: Backend,
            x: &[f16],
            out: &mut [u8],
        ) -> Result<(), Error> {
            self.encode_f16_in(backend.check()?, x, out)
        }

        /// [`encode_f16_on`](Self::encode_f16_on) on a backend already checked.
        pub(crate) fn encode_f16_in(
            &self,
            backend: Checked,
            x: &[f16],
            out: &mut [u8],
        ) -> Result<(), Error> {
            widen(x, f16::to_f32, |x| self.encode_in(backend, x, out))
        }

        /// [`encode`](Self::encode) of `half::bf16` input.
        ///
        /// # Errors
        /// As [`encode`](Self::encode).
        pub fn encode_bf16(&self, x: &[bf16], out: &mut [u8]) -> Result<(), Error> {
            self.encode_bf16_on(Backend::detect(), x, out)
        }

        /// [`encode_bf16`](Self::encode_bf16) on a chosen backend.
        ///
        /// # Errors
        /// As [`encode_on`](Self::encode_on).
        pub fn encode_bf16_on(
            &self,
            backend: Backend,
            x: &[bf16],
            out: &mut [u8],
        ) -> Result<(), Error> {
            self.encode_bf16_in(backend.check()?, x, out)
        }

        /// [`encode_bf16_on`](Self::encode_bf16_on) on a backend already checked.
        pub(crate) fn encode_bf16_in(
            &self,
            backend: Checked,
            x: &[bf16],
            out: &mut [u8],
        ) -> Result<(), Error> {
            widen(x, bf16::to_f32, |x| self.encode_in(backend, x, out))
        }

        /// Decodes `code` into `out` (`dim` values) on the detected backend.
        ///
        /// # Errors
        /// [`Error::LengthMismatch`] unless `out.len() == dim`;
        /// [`Error::BufferTooShort`] if `code` is shorter than
        /// `encoded_len()`; [`Error::InvalidNorm`] if a stored norm is NaN,
        /// infinite, negative or above [`MAX_NORM`] (no encoder writes one).
        pub fn decode(&self, code: &[u8], out: &mut [f32]) -> Result<(), Error> {
            self.decode_on(Backend::detect(), code, out)
        }

        /// Bits of the whole encoding per coordinate, side information
        /// included.
        pub fn bits_per_coordinate(&self) -> f64 {
            (self.encoded_len() * 8) as f64 / self.dim as f64
        }

        /// The vector dimension.
        pub fn dim(&self) -> usize {
            self.dim
        }

        /// How norms are stored.
        pub fn norm_precision(&self) -> NormPrecision {
            self.norm
        }

        /// The same quantiser with norms stored as `precision`.
        pub fn with_norm_precision(mut self, precision: NormPrecision) -> Self {
            self.norm = precision;
            self
        }
    };
}

/// TurboQuant_mse: norm, seeded rotation, `b`-bit Lloyd–Max codes.
#[derive(Clone, Debug)]
pub struct MseQuantizer {
    dim: usize,
    rotation: Rotation,
    codebook: Codebook,
    norm: NormPrecision,
}

impl MseQuantizer {
    /// A `bits`-bit quantiser of `dim`-dimensional vectors, rotation seeded
    /// with `seed`, norms in f16.
    ///
    /// # Errors
    /// [`Error::InvalidDim`] unless `dim ∈ 2..=`[`MAX_DIM`] and
    /// [`Rotation::supports`] it; [`Error::InvalidBits`] unless
    /// `bits ∈ 1..=8`.
    pub fn new(dim: usize, bits: u8, seed: u64) -> Result<Self, Error> {
        if !(2..=MAX_DIM).contains(&dim) {
            return Err(Error::InvalidDim { dim });
        }
        Ok(MseQuantizer {
            dim,
            rotation: Rotation::new(dim, seed).map_err(|_| Error::InvalidDim { dim })?,
            codebook: Codebook::lloyd_max(dim, bits)?,
            norm: NormPrecision::F16,
        })
    }

    /// The codebook of the rotated coordinates.
    pub fn codebook(&self) -> &Codebook {
        &self.codebook
    }

    /// The rotation.
    pub fn rotation(&self) -> &Rotation {
        &self.rotation
    }

    /// Bytes of one encoded vector.
    pub fn encoded_len(&self) -> usize {
        self.norm.bytes() + pack::packed_len(self.dim, self.codebook.bits())
    }

    /// [`encode`](Self::encode) on a chosen backend (identical bytes on
    /// every backend).
    ///
    /// # Errors
    /// As [`encode`](Self::encode), plus [`Error::BackendUnavailable`].
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
        let (n, _) = start_encode(backend, self.dim, self.encoded_len(), self.norm, x, out)?;
        let nb = self.norm.bytes();
        crate::stack::floats(self.dim, |y| {
            unit(backend, x, n, y);
            self.rotation.rotate_in(backend, y)?;
            codebook::quantize_packed_in(backend, &self.codebook, y, &mut out[nb..])?;
            Ok(())
        })
    }

    /// [`decode`](Self::decode) on a chosen backend.
    ///
    /// # Errors
    /// As [`decode`](Self::decode), plus [`Error::BackendUnavailable`].
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
        check_len(self.dim, out.len())?;
        need(self.encoded_len(), code.len())?;
        let nb = self.norm.bytes();
        let n = self.norm.load_checked(code)?;
        codebook::dequantize_in(backend, &self.codebook, &code[nb..], out)?;
        self.rotation.unrotate_in(backend, out)?;
        for v in out.iter_mut() {
            *v *= n;
        }
        Ok(())
    }

    half_inputs!();
}

/// TurboQuant_prod: `(b−1)`-bit MSE codes plus a 1-bit QJL sketch of the
/// residual and its norm, for inner products that are unbiased (Gaussian
/// projection) or nearly so (Hadamard, see [`crate::qjl`]).
#[derive(Clone, Debug)]
pub struct ProdQuantizer {
    dim: usize,
    mse: MseQuantizer,
    sketcher: QjlSketcher,
    norm: NormPrecision,
}

impl ProdQuantizer {
    /// A `bits`-bit quantiser (`bits − 1` for the codes, one sign bit per
    /// coordinate: `m = dim` signs), rotation seeded with `seed`,
    /// projection with `seed + 1`.
    ///
    /// # Errors
    /// [`Error::InvalidDim`] unless `dim ∈ 8..=`[`MAX_DIM`] and
    /// [`Rotation::supports`] it; [`Error::InvalidBits`] unless
    /// `bits ∈ 2..=8`.
    pub fn new(dim: usize, bits: u8, seed: u64, projection: Projection) -> Result<Self, Error> {
        if !(2..=8).contains(&bits) {
            return Err(Error::InvalidBits { bits });
        }
        if !(8..=MAX_DIM).contains(&dim) {
            return Err(Error::InvalidDim { dim });
        }
        Ok(ProdQuantizer {
            dim,
            mse: MseQuantizer::new(dim, bits - 1, seed)?,
            sketcher: QjlSketcher::with_default_m(dim, projection, seed.wrapping_add(1))?,
            norm: NormPrecision::F16,
        })
    }

    /// The MSE stage (its codebook has `bits − 1` bits).
    pub fn mse(&self) -> &MseQuantizer {
        &self.mse
    }

    /// The residual's sketcher.
    pub fn sketcher(&self) -> &QjlSketcher {
        &self.sketcher
    }

    /// The rotation (the MSE stage's).
    pub fn rotation(&self) -> &Rotation {
        &self.mse.rotation
    }

    /// Bytes of one encoded vector.
    pub fn encoded_len(&self) -> usize {
        2 * self.norm.bytes()
            + pack::packed_len(self.dim, self.mse.codebook.bits())
            + self.sketcher.sketch_bytes()
    }

    /// [`encode`](Self::encode) on a chosen backend (identical bytes on
    /// every backend).
    ///
    /// # Errors
    /// As [`encode`](Self::encode), plus [`Error::BackendUnavailable`].
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
        let (n, stored) = start_encode(backend, self.dim, self.encoded_len(), self.norm, x, out)?;
        let nb = self.norm.bytes();
        let codes = pack::packed_len(self.dim, self.mse.codebook.bits());
        crate::stack::floats(2 * self.dim, |work| {
            let (y, yhat) = work.split_at_mut(self.dim);
            unit(backend, x, n, y);
            self.mse.rotation.rotate_in(backend, y)?;
            let (head, rest) = out.split_at_mut(2 * nb);
            // The codes and their centroids, for the residual in the rotated
            // domain at the decoder's scale.
            let cb = &self.mse.codebook;
            codebook::quantize_packed_centroids_in(backend, cb, y, &mut rest[..codes], yhat)?;
            let gamma = libm::sqrt(loops::residual_on(backend, y, n as f32, yhat, stored));
            self.sketcher
                .sketch_signs_in_place(backend, y, &mut rest[codes..])?;
            self.norm.store(gamma as f32, &mut head[nb..])?;
            Ok(())
        })
    }

    /// [`decode`](Self::decode) on a chosen backend: the MSE reconstruction
    /// plus the sketch's reconstruction of the residual.
    ///
    /// # Errors
    /// As [`decode`](Self::decode), plus [`Error::BackendUnavailable`].
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
        check_len(self.dim, out.len())?;
        need(self.encoded_len(), code.len())?;
        let nb = self.norm.bytes();
        let codes = pack::packed_len(self.dim, self.mse.codebook.bits());
        let n = self.norm.load_checked(code)?;
        let gamma = self.norm.load_checked(&code[nb..])?;
        let rest = &code[2 * nb..];
        codebook::dequantize_in(backend, &self.mse.codebook, &rest[..codes], out)?;
        crate::stack::floats(self.dim, |r| {
            self.sketcher
                .reconstruct_in(backend, &rest[codes..], gamma, r)?;
            for (o, &rv) in out.iter_mut().zip(r.iter()) {
                *o = *o * n + rv;
            }
            self.mse.rotation.unrotate_in(backend, out)
        })
    }

    half_inputs!();
}

/// The paper's KV baseline: norm plus a `b`-bit Lloyd–Max codebook (the
/// sphere law of `dim`) applied to the raw normalised coordinates, with no
/// rotation. It matches [`MseQuantizer`] when the input is already isotropic
/// (a Gaussian vector's coordinates follow the sphere law), and degrades when
/// the energy sits in a few coordinates, which the rotation would spread.
#[derive(Clone, Debug)]
pub struct BaselineQuantizer {
    dim: usize,
    codebook: Codebook,
    norm: NormPrecision,
}

impl BaselineQuantizer {
    /// A `bits`-bit baseline quantiser of `dim`-dimensional vectors.
    ///
    /// # Errors
    /// [`Error::InvalidDim`] unless `dim ∈ 2..=`[`MAX_DIM`] (any dim, not
    /// only powers of two); [`Error::InvalidBits`] unless `bits ∈ 1..=8`.
    pub fn new(dim: usize, bits: u8) -> Result<Self, Error> {
        // The f16/bf16 entry points widen into a MAX_DIM stack buffer.
        if !(2..=MAX_DIM).contains(&dim) {
            return Err(Error::InvalidDim { dim });
        }
        Ok(BaselineQuantizer {
            dim,
            codebook: Codebook::lloyd_max(dim, bits)?,
            norm: NormPrecision::F16,
        })
    }

    /// The codebook.
    pub fn codebook(&self) -> &Codebook {
        &self.codebook
    }

    /// Bytes of one encoded vector.
    pub fn encoded_len(&self) -> usize {
        self.norm.bytes() + pack::packed_len(self.dim, self.codebook.bits())
    }

    /// [`encode`](Self::encode) on a chosen backend (identical bytes on
    /// every backend).
    ///
    /// # Errors
    /// As [`encode`](Self::encode), plus [`Error::BackendUnavailable`].
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
        let (n, _) = start_encode(backend, self.dim, self.encoded_len(), self.norm, x, out)?;
        let nb = self.norm.bytes();
        crate::stack::floats(self.dim, |y| {
            unit(backend, x, n, y);
            codebook::quantize_packed_in(backend, &self.codebook, y, &mut out[nb..])?;
            Ok(())
        })
    }

    /// [`decode`](Self::decode) on a chosen backend.
    ///
    /// # Errors
    /// As [`decode`](Self::decode), plus [`Error::BackendUnavailable`].
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
        check_len(self.dim, out.len())?;
        need(self.encoded_len(), code.len())?;
        let n = self.norm.load_checked(code)?;
        codebook::dequantize_in(backend, &self.codebook, &code[self.norm.bytes()..], out)?;
        for v in out.iter_mut() {
            *v *= n;
        }
        Ok(())
    }

    half_inputs!();
}

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
    /// two for prod) is what an encoder can write: in `0..=`[`MAX_NORM`].
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

#[cfg(test)]
mod tests {
    #[test]
    fn f16_conversion_matches_half_on_every_value() {
        for h in 0..=u16::MAX {
            let want = half::f16::from_bits(h).to_f32();
            let got = super::f16_bits_to_f32(h);
            if want.is_nan() {
                assert!(got.is_nan(), "{h:#06x}");
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "{h:#06x}");
            }
        }
    }
}
