//! The three quantisers, each one vector of `dim` values to a fixed number
//! of bytes and back: [`MseQuantizer`], [`ProdQuantizer`] and
//! [`BaselineQuantizer`] (the encodings are in the module docs of
//! [`crate::quant`]).

use half::{bf16, f16};

use super::{MAX_DIM, NormPrecision, check_len, start_encode, unit};
use crate::backend::Checked;
use crate::codebook::{self, Codebook, pack};
use crate::error::need;
use crate::loops;
use crate::qjl::{Projection, QjlSketcher};
use crate::{Backend, Error, Rotation};

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
        /// infinite, negative or above [`MAX_NORM`](super::MAX_NORM) (no encoder
        /// writes one).
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
    pub(super) dim: usize,
    pub(super) rotation: Rotation,
    pub(super) codebook: Codebook,
    pub(super) norm: NormPrecision,
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
    pub(super) dim: usize,
    pub(super) mse: MseQuantizer,
    pub(super) sketcher: QjlSketcher,
    pub(super) norm: NormPrecision,
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
    pub(super) dim: usize,
    pub(super) codebook: Codebook,
    pub(super) norm: NormPrecision,
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
