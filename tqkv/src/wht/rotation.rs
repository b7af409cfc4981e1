//! The randomised Hadamard rotation `R = H·D/√d` of the quantisers.

use super::{check_len, fwht_in};
use crate::backend::Checked;
use crate::rng::SplitMix64;
use crate::{Backend, Error};

/// The orthonormal randomised Hadamard rotation `y = H·D·x/√d` (`ARCHITECTURE.md`, "The pipeline").
///
/// `D` is a diagonal of seeded random signs and `H` the Sylvester Walsh–
/// Hadamard matrix, so `R = H·D/√d` is orthogonal and `R⁻¹ = D·H/√d`. After
/// the rotation every coordinate of a unit vector follows the law of one
/// coordinate of a uniform point on the sphere, whatever the input was.
///
/// # The signs, exactly
///
/// `D[i] = −1` iff bit `i mod 64` (bit 0 = least significant) of the
/// `⌊i/64⌋`-th output (0-based) of [`SplitMix64`] seeded with `seed` is 1,
/// else `+1`. The scale is the f32 nearest to `1/√d` computed in f64:
/// `(float)(1.0 / sqrt((double)d))`. A C runtime reproduces `rotate` by
/// flipping the signs, running the canonical WHT (see [`crate::wht`]) and
/// multiplying by that scale, in that order; `unrotate` runs the WHT, scales,
/// then flips the signs.
///
/// The rotation stores only `dim`, `seed` and the scale: signs are generated
/// on the fly, 64 per generator call, so it needs no allocation and no storage
/// that grows with `dim`.
///
/// ```
/// use tqkv::Rotation;
///
/// let rot = Rotation::new(8, 42)?;
/// let x = [0.5f32, -1.0, 2.0, 0.0, 3.0, 1.0, -0.25, 4.0];
/// let mut y = x;
/// rot.rotate(&mut y)?;
/// let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>().sqrt();
/// assert!((norm(&y) - norm(&x)).abs() < 1e-5 * norm(&x));
/// rot.unrotate(&mut y)?;
/// for (a, b) in x.iter().zip(&y) {
///     assert!((a - b).abs() < 1e-6);
/// }
/// # Ok::<(), tqkv::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rotation {
    dim: usize,
    seed: u64,
    scale: f32,
}

impl Rotation {
    /// A rotation of dimension `dim` with signs drawn from `seed`.
    ///
    /// # Errors
    /// `dim` must be a power of two in `1..=`[`MAX_LEN`](crate::wht::MAX_LEN)
    /// ([`Error::NotPowerOfTwo`], [`Error::TooLong`]).
    pub fn new(dim: usize, seed: u64) -> Result<Rotation, Error> {
        check_len(dim)?;
        let scale = (1.0 / libm::sqrt(dim as f64)) as f32;
        Ok(Rotation { dim, seed, scale })
    }

    /// The dimension `d`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The seed of the sign diagonal.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The scale applied after the WHT: the f32 nearest to `1/√d`.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// `D[i]`, the sign applied to coordinate `i` (`+1.0` or `−1.0`); `None`
    /// for `i >= dim`.
    ///
    /// ```
    /// let rot = tqkv::Rotation::new(128, 7)?;
    /// let minus = (0..128).filter(|&i| rot.sign(i) == Some(-1.0)).count();
    /// assert!(minus > 32 && minus < 96);
    /// assert_eq!(rot.sign(128), None);
    /// # Ok::<(), tqkv::Error>(())
    /// ```
    pub fn sign(&self, i: usize) -> Option<f32> {
        if i >= self.dim {
            return None;
        }
        let word = SplitMix64::word_at(self.seed, (i / 64) as u64);
        Some(if (word >> (i % 64)) & 1 == 1 {
            -1.0
        } else {
            1.0
        })
    }

    /// `x ← H·D·x/√d` on the detected backend.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless `x.len() == dim`; `x` is then untouched.
    pub fn rotate(&self, x: &mut [f32]) -> Result<(), Error> {
        self.rotate_on(Backend::detect(), x)
    }

    /// [`rotate`](Self::rotate) on a chosen backend (bit-identical results on
    /// every backend).
    ///
    /// # Errors
    /// As [`rotate`](Self::rotate), plus [`Error::BackendUnavailable`].
    pub fn rotate_on(&self, backend: Backend, x: &mut [f32]) -> Result<(), Error> {
        self.rotate_in(backend.check()?, x)
    }

    /// [`rotate_on`](Self::rotate_on) on a backend already checked.
    pub(crate) fn rotate_in(&self, backend: Checked, x: &mut [f32]) -> Result<(), Error> {
        self.check_len(x)?;
        self.flip_signs(x);
        fwht_in(backend, x)?;
        scale(x, self.scale);
        Ok(())
    }

    /// The inverse, `x ← D·H·x/√d`, on the detected backend.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless `x.len() == dim`; `x` is then untouched.
    pub fn unrotate(&self, x: &mut [f32]) -> Result<(), Error> {
        self.unrotate_on(Backend::detect(), x)
    }

    /// [`unrotate`](Self::unrotate) on a chosen backend.
    ///
    /// # Errors
    /// As [`unrotate`](Self::unrotate), plus [`Error::BackendUnavailable`].
    pub fn unrotate_on(&self, backend: Backend, x: &mut [f32]) -> Result<(), Error> {
        self.unrotate_in(backend.check()?, x)
    }

    /// [`unrotate_on`](Self::unrotate_on) on a backend already checked.
    pub(crate) fn unrotate_in(&self, backend: Checked, x: &mut [f32]) -> Result<(), Error> {
        self.check_len(x)?;
        fwht_in(backend, x)?;
        scale(x, self.scale);
        self.flip_signs(x);
        Ok(())
    }

    fn check_len(&self, x: &[f32]) -> Result<(), Error> {
        if x.len() != self.dim {
            return Err(Error::LengthMismatch {
                expected: self.dim,
                found: x.len(),
            });
        }
        Ok(())
    }

    /// Multiplies `x` by `D`: flipping the IEEE sign bit is exact negation.
    pub(crate) fn flip_signs(&self, x: &mut [f32]) {
        let mut rng = SplitMix64::new(self.seed);
        for chunk in x.chunks_mut(64) {
            let bits = rng.next_u64();
            for (j, v) in chunk.iter_mut().enumerate() {
                let flip = (((bits >> j) & 1) as u32) << 31;
                *v = f32::from_bits(v.to_bits() ^ flip);
            }
        }
    }
}

fn scale(x: &mut [f32], s: f32) {
    for v in x.iter_mut() {
        *v *= s;
    }
}
