//! The randomised Hadamard rotation `R = H·D/√d` of the quantisers.

use super::paley::Kronecker;
use super::{check_len, fwht_rows_in};
use crate::backend::Checked;
use crate::rng::SplitMix64;
use crate::{Backend, Error};

/// The orthonormal randomised Hadamard rotation `y = H·D·x/√d` (`ARCHITECTURE.md`, "The pipeline").
///
/// `D` is a diagonal of seeded random signs and `H` a Hadamard matrix of
/// order `d` (entries ±1, `H·Hᵀ = d·I`), so `R = H·D/√d` is orthogonal and
/// `R⁻¹ = D·Hᵀ/√d`. Every output coordinate is `±x_i/√d` summed over all
/// `i`: a unit vector's mass is spread evenly over all coordinates, and each
/// rotated coordinate follows (close to) the law of one coordinate of a
/// uniform point on the sphere, which the codebooks are solved for.
///
/// # Dimensions
///
/// - A power of two up to [`MAX_LEN`](crate::wht::MAX_LEN): `H` is the
///   Sylvester matrix, applied by the WHT (`H` symmetric).
/// - Any other multiple of 8 up to [`MAX_DIM`](crate::quant::MAX_DIM) for
///   which a Kronecker product `H = F₁ ⊗ … ⊗ H_L` of Paley Hadamard
///   matrices (from primes) and a Sylvester block exists: 80 = 20·4,
///   96 = 12·8, 112 = 28·4, 160, 192 = 12·16, 320, 384, 576 = 12·12·4 and
///   most others. The WHT runs on the blocks of `L`, each Paley factor as
///   a dense ±1 product (`O(d·|F|)`); ARCHITECTURE.md ("Any head
///   dimension") has the construction, its exact signs and the figures
///   that chose it. [`Rotation::supports`] says which `d` are taken.
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
    hadamard: Kronecker,
}

impl Rotation {
    /// A rotation of dimension `dim` with signs drawn from `seed`.
    ///
    /// # Errors
    /// [`Error::TooLong`] for a power of two above
    /// [`MAX_LEN`](crate::wht::MAX_LEN); [`Error::InvalidDim`] for any other
    /// `dim` that [`supports`](Self::supports) refuses (0 included).
    ///
    /// ```
    /// use tqkv::{Error, Rotation};
    ///
    /// let rot = Rotation::new(96, 1)?; // 12·8: a Paley factor and the WHT
    /// let mut x = [0.0f32; 96];
    /// x[5] = 1.0;
    /// rot.rotate(&mut x)?;
    /// // One input coordinate spreads evenly over all 96.
    /// assert!(x.iter().all(|v| (v.abs() - 96f32.sqrt().recip()).abs() < 1e-6));
    /// assert_eq!(Rotation::new(100, 1), Err(Error::InvalidDim { dim: 100 }));
    /// # Ok::<(), tqkv::Error>(())
    /// ```
    pub fn new(dim: usize, seed: u64) -> Result<Rotation, Error> {
        let hadamard = if dim.is_power_of_two() {
            check_len(dim)?;
            Kronecker::sylvester_only(dim)
        } else if dim.is_multiple_of(8) && dim <= crate::quant::MAX_DIM {
            Kronecker::of_order(dim)?
        } else {
            return Err(Error::InvalidDim { dim });
        };
        Ok(Rotation::with_hadamard(dim, seed, hadamard))
    }

    /// Does [`new`](Self::new) take `dim`? Powers of two up to
    /// [`MAX_LEN`](crate::wht::MAX_LEN), and the multiples of 8 up to
    /// [`MAX_DIM`](crate::quant::MAX_DIM) that are a power of two times
    /// Paley orders (all but 18 of the 128 multiples of 8 up to 1024: not
    /// 184, 232, 344, 376, 472, 520, 536, 584, 680, 688, 712, 808, 856,
    /// 872, 904, 944, 952, 1016).
    ///
    /// ```
    /// use tqkv::Rotation;
    ///
    /// for d in [64, 80, 96, 112, 128, 160, 192, 256, 320, 384, 512, 576, 1024] {
    ///     assert!(Rotation::supports(d));
    /// }
    /// assert!(!Rotation::supports(0) && !Rotation::supports(100) && !Rotation::supports(184));
    /// ```
    pub fn supports(dim: usize) -> bool {
        Rotation::new(dim, 0).is_ok()
    }

    /// The rotation of `dim` with a factorisation already found (the QJL
    /// sketcher keeps one and varies the seed).
    pub(crate) fn with_hadamard(dim: usize, seed: u64, hadamard: Kronecker) -> Rotation {
        let scale = (1.0 / libm::sqrt(dim as f64)) as f32;
        Rotation {
            dim,
            seed,
            scale,
            hadamard,
        }
    }

    /// Its Hadamard matrix's factorisation.
    pub(crate) fn hadamard(&self) -> Kronecker {
        self.hadamard
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
        self.signed_hadamard_in(backend, x);
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
        self.hadamard_in(backend, x, true);
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

    /// `x ← H·D·x` (unscaled; `x.len() == dim`, checked by the caller).
    pub(crate) fn signed_hadamard_in(&self, backend: Checked, x: &mut [f32]) {
        self.flip_signs(x);
        self.hadamard_in(backend, x, false);
    }

    /// `x ← D·Hᵀ·x` (unscaled): the transpose of
    /// [`signed_hadamard_in`](Self::signed_hadamard_in).
    pub(crate) fn signed_hadamard_transpose_in(&self, backend: Checked, x: &mut [f32]) {
        self.hadamard_in(backend, x, true);
        self.flip_signs(x);
    }

    /// `x ← H·x` or `Hᵀ·x`: the WHT on blocks of `L`, then the Paley
    /// factors from the innermost out (`x.len() == dim`).
    fn hadamard_in(&self, backend: Checked, x: &mut [f32], transpose: bool) {
        let h = &self.hadamard;
        // `L` is a power of two dividing `dim` ≤ MAX_LEN and the backend was
        // checked by the caller: the row transform cannot fail.
        let _ = fwht_rows_in(backend, x, h.sylvester());
        if h.factors().is_empty() {
            return;
        }
        crate::stack::floats(self.dim, |tmp| {
            let mut stride = h.sylvester();
            for f in h.factors().iter().rev() {
                f.apply(x, stride, transpose, tmp);
                stride *= f.order();
            }
        });
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
