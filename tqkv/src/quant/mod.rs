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
//! [`Rotation`](crate::Rotation) seeded with `seed` (the prod quantiser's projection uses
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
//! Dimensions: the rotating quantisers take what [`Rotation`](crate::Rotation)
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
mod quantizers;
mod rows;
mod scheme;

pub use cache::{CacheConfig, Fields, HEADER_BYTES, KvCache, MAGIC, VERSION};
use half::f16;
pub use quantizers::{BaselineQuantizer, MseQuantizer, ProdQuantizer};
pub use scheme::{Quantizer, QuantizerKind, QuantizerSpec, Scheme};

use crate::Error;
use crate::backend::Checked;
use crate::error::need;
use crate::loops;

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

/// `y = R·(x/‖x‖)` in one pass over `x` where the backend has that form
/// (`Rotation::rotate_scaled_from`), with the bits of [`unit()`] then
/// `Rotation::rotate_in`; `false`, `y` untouched, for a zero vector, a
/// norm whose inverse lies past f32, or a shape the pass does not take.
fn unit_rotated(backend: Checked, r: &crate::Rotation, x: &[f32], n: f64, y: &mut [f32]) -> bool {
    if n <= 0.0 {
        return false;
    }
    let s = 1.0 / n;
    s <= f64::from(f32::MAX) && r.rotate_scaled_from(backend, x, s as f32, y)
}

/// `y = x/‖x‖` into `y` (zeros for a zero vector).
fn unit(backend: Checked, x: &[f32], n: f64, y: &mut [f32]) {
    if n <= 0.0 {
        y.fill(0.0);
        return;
    }
    let s = 1.0 / n;
    if s <= f64::from(f32::MAX) {
        // One division, then f32 products by the f32 nearest 1/‖x‖ (a
        // division per coordinate cost a tenth of an encode, and products
        // in f64 rounded once to f32 a tenth of a batched push).
        loops::scale_into_on(backend, x, s as f32, y);
    } else {
        // Every element subnormal: 1/‖x‖ is past f32, so f64 products.
        loops::scale_f64_into_on(backend, x, s, y);
    }
}

#[cfg(test)]
mod tests {
    use crate::{Backend, Rotation};
    use proptest::prelude::*;
    use std::vec::Vec;

    /// A dimension (powers of two, which the one-pass kernels take, and
    /// 96 and 80, which do not), its vector (every size class, signed
    /// zeros) and a norm from subnormal to huge.
    fn unit_case() -> impl Strategy<Value = (usize, Vec<f32>, f64)> {
        let dims = crate::wht::one_pass_test_dims();
        let value = prop_oneof![
            8 => -1.0f32..1.0,
            2 => -1e30f32..1e30,
            1 => Just(0.0f32),
            1 => Just(-0.0f32),
            1 => Just(f32::MIN_POSITIVE / 4.0),
        ];
        let norm = prop_oneof![1e-3f64..1e3, 1e-38f64..1e-30, 1e30f64..1e38];
        dims.prop_flat_map(move |d| {
            (
                Just(d),
                proptest::collection::vec(value.clone(), d),
                norm.clone(),
            )
        })
    }

    proptest! {
        #![proptest_config(crate::proptest_config())]

        /// The unit vector rotated as it is scaled (one pass over `x`) has
        /// the bits of the scalar backend's separate steps, on every
        /// backend; AVX2 and AVX-512 take every power of two from one
        /// register up to 256, NEON up to 64.
        #[test]
        fn a_unit_rotated_in_one_pass_has_the_separate_steps_bits((d, x, n) in unit_case(), seed in 0u64..100) {
            let r = Rotation::new(d, seed).unwrap();
            let scalar = Backend::Scalar.check().unwrap();
            let mut want = std::vec![0.0f32; d];
            super::unit(scalar, &x, n, &mut want);
            r.rotate_in(scalar, &mut want).unwrap();
            prop_assert!(!super::unit_rotated(scalar, &r, &x, n, &mut want.clone()));
            for backend in Backend::available() {
                let b = backend.check().unwrap();
                let mut got = std::vec![f32::NAN; d];
                let fused = super::unit_rotated(b, &r, &x, n, &mut got);
                // From one register (8, 16, 4 lanes) up to 256 elements;
                // NEON up to 64 only.
                let (least, most) = match backend {
                    Backend::Avx2 => (8, 256),
                    Backend::Avx512 => (16, 256),
                    Backend::Neon => (4, 64),
                    _ => (1, 0),
                };
                let takes = d.is_power_of_two() && (least..=most).contains(&d);
                prop_assert_eq!(fused, takes, "{} {}", d, backend);
                if fused {
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    prop_assert_eq!(bits(&got), bits(&want), "{} on {}", d, backend);
                }
            }
        }
    }

    #[test]
    fn a_zero_vector_and_a_norm_past_f32_take_the_separate_steps() {
        let r = Rotation::new(64, 1).unwrap();
        for backend in Backend::available() {
            let b = backend.check().unwrap();
            let mut y = [1.0f32; 64];
            assert!(!super::unit_rotated(b, &r, &[0.0; 64], 0.0, &mut y));
            assert!(!super::unit_rotated(b, &r, &[1e-45; 64], 1e-44, &mut y));
            assert!(!super::unit_rotated(b, &r, &[1.0; 63], 8.0, &mut y[..63]));
            assert_eq!(y, [1.0f32; 64], "{backend}");
        }
    }

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
