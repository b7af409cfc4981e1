//! The randomised Hadamard rotation `R = H·D/√d` of the quantisers.

use super::blocks;
use super::williamson::Kronecker;
use super::{
    Around, ONE_PASS_MAX, check_len, fwht_rows_in, rotate_one_pass_in, rotate_one_pass_signs_in,
    rotate_two_pass_in,
};
use crate::backend::Checked;
use crate::loops;
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
/// - A multiple of 8 up to [`MAX_DIM`](crate::quant::MAX_DIM) that is a
///   power of two times Williamson orders of at most 60 (12, 20, 28, 36,
///   44, 60): `H = F ⊗ … ⊗ H_L` (80 = 20·4, 96 = 12·8, 112 = 28·4, 160,
///   192 = 12·16, 320, 384, 576 = 36·16). The WHT runs on the blocks of
///   `L`, each Williamson factor through its four symmetric circulants
///   (ARCHITECTURE.md gives its entries and arithmetic exactly).
/// - Any other multiple of 8 up to [`MAX_DIM`](crate::quant::MAX_DIM)
///   (104, 136, 184, …): no Hadamard matrix is at hand, and `R` is the
///   block-diagonal construction ([`RotationKind::BlockDiagonal`]): two
///   passes of normalised WHT blocks with an interleave and a second sign
///   diagonal between them, orthogonal and dense but not flat.
///
/// ARCHITECTURE.md ("Any head dimension") has both constructions and the
/// measurements that chose them; [`Rotation::supports`] says which `d` are
/// taken.
///
/// # The signs, exactly
///
/// `D[i] = −1` iff bit `i mod 64` (bit 0 = least significant) of the
/// `⌊i/64⌋`-th output (0-based) of [`SplitMix64`] seeded with `seed` is 1,
/// else `+1`. The scale is the f32 nearest to `1/√d` computed in f64:
/// `(float)(1.0 / sqrt((double)d))`. For a power of two, a C runtime
/// reproduces `rotate` by flipping the signs, running the canonical WHT (see
/// [`crate::wht`]) and multiplying by that scale, in that order; `unrotate`
/// runs the WHT, scales, then flips the signs. Other dims put `H` (or `Hᵀ`)
/// in place of the WHT; the C ABI's `tqkv_rotate` gives them.
///
/// The rotation stores only `dim`, `seed`, the scale, which product `H`
/// is and the first four sign words (the one-pass kernels' vectors up to
/// 256 elements): longer vectors' signs are generated on the fly, 64 per
/// generator call, and the Williamson factors are tables made at compile
/// time, so it needs no allocation and no storage that grows with `dim`.
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
    transform: Transform,
    /// The sign words a one-pass rotation negates by (see
    /// [`sign_words`]), drawn once here: drawn per call, they were a few
    /// percent of an encode.
    signs: [u64; ONE_PASS_MAX / 64],
}

// `scale` is a function of `dim`, never NaN: equality is an equivalence.
impl Eq for Rotation {}

/// Which orthogonal transform follows the signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transform {
    /// `H/√d`, `H` a Hadamard matrix (Sylvester, or a Williamson product).
    Hadamard(Kronecker),
    /// The two block-diagonal passes of `blocks`.
    Blocks,
}

/// How a [`Rotation`] mixes coordinates (after its random signs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RotationKind {
    /// A Hadamard matrix of order `d`, scaled by `1/√d`: every output is
    /// `±x_i/√d` summed over all `i`. Powers of two (the WHT) and the
    /// multiples of 8 with a Williamson product.
    Hadamard,
    /// Two passes of normalised WHT blocks (the binary expansion of `d`)
    /// with an interleave between: orthogonal and dense, but not flat (the
    /// weights of one output differ in size). The other multiples of 8.
    BlockDiagonal,
}

impl Rotation {
    /// The rotation of dimension 1 (the identity), a placeholder where a
    /// rotation is never read.
    pub(crate) const IDENTITY_1: Rotation = Rotation {
        dim: 1,
        seed: 0,
        scale: 1.0,
        transform: Transform::Hadamard(Kronecker::sylvester_only(1)),
        signs: sign_words(0, 1),
    };

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
    /// let rot = Rotation::new(96, 1)?; // 12·8: a Williamson factor and the WHT
    /// let mut x = [0.0f32; 96];
    /// x[5] = 1.0;
    /// rot.rotate(&mut x)?;
    /// // One input coordinate spreads evenly over all 96.
    /// assert!(x.iter().all(|v| (v.abs() - 96f32.sqrt().recip()).abs() < 1e-6));
    /// assert_eq!(Rotation::new(100, 1), Err(Error::InvalidDim { dim: 100 }));
    /// # Ok::<(), tqkv::Error>(())
    /// ```
    pub fn new(dim: usize, seed: u64) -> Result<Rotation, Error> {
        let transform = if dim.is_power_of_two() {
            check_len(dim)?;
            Transform::Hadamard(Kronecker::sylvester_only(dim))
        } else if dim.is_multiple_of(8) && (8..=crate::quant::MAX_DIM).contains(&dim) {
            Kronecker::of_order(dim).map_or(Transform::Blocks, Transform::Hadamard)
        } else {
            return Err(Error::InvalidDim { dim });
        };
        Ok(Rotation::with_transform(dim, seed, transform))
    }

    /// The block-diagonal construction at any multiple of 8 up to
    /// [`MAX_DIM`](crate::quant::MAX_DIM), powers of two included: what
    /// [`new`](Self::new) uses where no Hadamard matrix is at hand, offered
    /// for comparing the two (the quantisers and the cache always take
    /// [`new`](Self::new)).
    ///
    /// # Errors
    /// [`Error::InvalidDim`] unless `dim` is a multiple of 8 in
    /// `8..=`[`MAX_DIM`](crate::quant::MAX_DIM).
    ///
    /// ```
    /// use tqkv::{Rotation, RotationKind};
    ///
    /// assert_eq!(Rotation::new(104, 1)?.kind(), RotationKind::BlockDiagonal);
    /// let b = Rotation::block_diagonal(96, 1)?;
    /// assert_eq!(b.kind(), RotationKind::BlockDiagonal);
    /// let mut x = [1.0f32; 96];
    /// b.rotate(&mut x)?;
    /// b.unrotate(&mut x)?;
    /// assert!(x.iter().all(|v| (v - 1.0).abs() < 1e-5));
    /// # Ok::<(), tqkv::Error>(())
    /// ```
    pub fn block_diagonal(dim: usize, seed: u64) -> Result<Rotation, Error> {
        if !dim.is_multiple_of(8) || !(8..=crate::quant::MAX_DIM).contains(&dim) {
            return Err(Error::InvalidDim { dim });
        }
        Ok(Rotation::with_transform(dim, seed, Transform::Blocks))
    }

    /// Which construction this rotation uses.
    pub fn kind(&self) -> RotationKind {
        match self.transform {
            Transform::Hadamard(_) => RotationKind::Hadamard,
            Transform::Blocks => RotationKind::BlockDiagonal,
        }
    }

    /// Does [`new`](Self::new) take `dim`? Every power of two up to
    /// [`MAX_LEN`](crate::wht::MAX_LEN) and every multiple of 8 up to
    /// [`MAX_DIM`](crate::quant::MAX_DIM).
    ///
    /// ```
    /// use tqkv::{Rotation, RotationKind};
    ///
    /// for d in [64, 80, 96, 112, 128, 160, 192, 256, 320, 384, 512, 576, 1024] {
    ///     assert_eq!(Rotation::new(d, 0)?.kind(), RotationKind::Hadamard);
    /// }
    /// assert_eq!(Rotation::new(184, 0)?.kind(), RotationKind::BlockDiagonal);
    /// assert!(!Rotation::supports(0) && !Rotation::supports(100) && !Rotation::supports(4104));
    /// # Ok::<(), tqkv::Error>(())
    /// ```
    pub fn supports(dim: usize) -> bool {
        Rotation::new(dim, 0).is_ok()
    }

    fn with_transform(dim: usize, seed: u64, transform: Transform) -> Rotation {
        let scale = (1.0 / libm::sqrt(dim as f64)) as f32;
        Rotation {
            dim,
            seed,
            scale,
            transform,
            signs: sign_words(seed, dim),
        }
    }

    /// The same rotation with other signs (the QJL sketcher's blocks).
    pub(crate) fn reseeded(&self, seed: u64) -> Rotation {
        Rotation {
            seed,
            signs: sign_words(seed, self.dim),
            ..*self
        }
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
        if self.one_pass(backend, x, true, Some(self.scale)) {
            return Ok(());
        }
        self.flip_signs(backend, x);
        match self.transform {
            Transform::Hadamard(h) => {
                hadamard_in(backend, &h, x, false);
                loops::scale_on(backend, x, self.scale);
            }
            Transform::Blocks => blocks::forward(backend, x, |v| self.second_signs(backend, v)),
        }
        Ok(())
    }

    /// `y ← R·(s·x)` (each `s·x_i` rounded to f32 first, as
    /// `loops::scale_into`, so the bits of scaling into `y`, then
    /// [`rotate_in`](Self::rotate_in)) in one pass that reads `x` where
    /// the backend has that form (a power of two from one register up to
    /// [`ONE_PASS_MAX`]); elsewhere, or unless `x` and `y` are `dim` long,
    /// `false` with `y` untouched. An encoder's unit vector, rotated
    /// without a pass of its own.
    pub(crate) fn rotate_scaled_from(
        &self,
        backend: Checked,
        x: &[f32],
        s: f32,
        y: &mut [f32],
    ) -> bool {
        let Transform::Hadamard(h) = self.transform else {
            return false;
        };
        if !h.factors().is_empty()
            || x.len() != self.dim
            || y.len() != self.dim
            || self.dim > ONE_PASS_MAX
        {
            return false;
        }
        let around = Around {
            seed: self.seed,
            signs: &self.signs,
            signs_first: true,
            scale: Some(self.scale),
            factor: None,
            source: Some((x, s)),
        };
        rotate_one_pass_in(backend, y, &around)
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
        if self.one_pass(backend, x, false, Some(self.scale)) {
            return Ok(());
        }
        match self.transform {
            Transform::Hadamard(h) => {
                hadamard_in(backend, &h, x, true);
                loops::scale_on(backend, x, self.scale);
            }
            Transform::Blocks => blocks::inverse(backend, x, |v| self.second_signs(backend, v)),
        }
        self.flip_signs(backend, x);
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

    /// `x ← √d·R·x`, rows of squared norm `d` for the QJL projection: for a
    /// Hadamard matrix exactly `H·D·x` (±1 entries, no scale), for the
    /// block-diagonal construction `R·x` times the f32 nearest to `√d`
    /// (`x.len() == dim`, checked by the caller).
    pub(crate) fn sketch_rows_in(&self, backend: Checked, x: &mut [f32]) {
        if self.one_pass(backend, x, true, None) {
            return;
        }
        self.flip_signs(backend, x);
        match self.transform {
            Transform::Hadamard(h) => hadamard_in(backend, &h, x, false),
            Transform::Blocks => {
                blocks::forward(backend, x, |v| self.second_signs(backend, v));
                loops::scale_on(backend, x, self.sqrt_dim());
            }
        }
    }

    /// The sign bits of [`sketch_rows_in`](Self::sketch_rows_in)'s first
    /// `8·bits.len()` rows (the bytes of `loops::sign_bits` on them),
    /// taken from the registers of the last pass where the backend has
    /// that form (a power of two up to [`ONE_PASS_MAX`], registers of 8
    /// lanes or more): the rows are never stored and read back. `x` is
    /// then left unspecified; elsewhere `false`, with `x` untouched.
    pub(crate) fn sketch_signs_in(&self, backend: Checked, x: &mut [f32], bits: &mut [u8]) -> bool {
        let Transform::Hadamard(h) = self.transform else {
            return false;
        };
        if !h.factors().is_empty() || x.len() != self.dim || x.len() > ONE_PASS_MAX {
            return false;
        }
        let around = Around {
            seed: self.seed,
            signs: &self.signs,
            signs_first: true,
            scale: None,
            factor: None,
            source: None,
        };
        rotate_one_pass_signs_in(backend, x, &around, bits)
    }

    /// `x ← √d·Rᵀ·x`: the transpose of [`sketch_rows_in`](Self::sketch_rows_in).
    pub(crate) fn sketch_rows_transpose_in(&self, backend: Checked, x: &mut [f32]) {
        if self.one_pass(backend, x, false, None) {
            return;
        }
        match self.transform {
            Transform::Hadamard(h) => hadamard_in(backend, &h, x, true),
            Transform::Blocks => {
                loops::scale_on(backend, x, self.sqrt_dim());
                blocks::inverse(backend, x, |v| self.second_signs(backend, v));
            }
        }
        self.flip_signs(backend, x);
    }

    /// Signs, the transform and an optional scale fused where the backend
    /// has that form (see [`Around`]): one pass over `x` up to
    /// [`ONE_PASS_MAX`] (two past a pass's group of registers: AVX2 past 64
    /// elements; NEON runs the separate steps there), two for one Williamson factor on
    /// rows of whole registers beyond; `false`, with `x` untouched, elsewhere. The same
    /// bits as the separate steps.
    fn one_pass(
        &self,
        backend: Checked,
        x: &mut [f32],
        signs_first: bool,
        scale: Option<f32>,
    ) -> bool {
        let Transform::Hadamard(h) = self.transform else {
            return false;
        };
        // The inverse runs the transpose (`H_L` is symmetric).
        let transpose = !signs_first;
        let factor = match h.factors() {
            [] => None,
            [f] => Some((*f, transpose, h.sylvester())),
            _ => return false,
        };
        // The sign words are drawn for `dim` elements (every caller's
        // length; any other takes the separate steps).
        if x.len() > ONE_PASS_MAX && factor.is_none() || x.len() != self.dim {
            return false;
        }
        let around = Around {
            seed: self.seed,
            signs: &self.signs,
            signs_first,
            scale,
            factor,
            source: None,
        };
        if x.len() <= ONE_PASS_MAX && rotate_one_pass_in(backend, x, &around) {
            return true;
        }
        factor.is_some() && rotate_two_pass_in(backend, x, &around)
    }

    /// `D₂` of the block-diagonal construction: the signs seeded with
    /// `!seed`.
    fn second_signs(&self, backend: Checked, x: &mut [f32]) {
        loops::flip_signs_on(backend, x, !self.seed);
    }

    fn sqrt_dim(&self) -> f32 {
        libm::sqrt(self.dim as f64) as f32
    }

    /// Multiplies `x` by `D`: flipping the IEEE sign bit is exact negation.
    pub(crate) fn flip_signs(&self, backend: Checked, x: &mut [f32]) {
        loops::flip_signs_on(backend, x, self.seed);
    }
}

/// `x ← H·x` or `Hᵀ·x`: the WHT on blocks of `L`, then the Williamson factors
/// from the innermost out.
fn hadamard_in(backend: Checked, h: &Kronecker, x: &mut [f32], transpose: bool) {
    // `L` is a power of two dividing `x.len()` ≤ MAX_LEN and the backend was
    // checked by the caller: the row transform cannot fail.
    let _ = fwht_rows_in(backend, x, h.sylvester());
    if h.factors().is_empty() {
        return;
    }
    let mut stride = h.sylvester();
    for f in h.factors().iter().rev() {
        f.apply(backend, x, stride, transpose);
        stride *= f.order();
    }
}

/// The words [`flip_signs`](Rotation::flip_signs) draws from `seed`, one
/// per 64 elements, for a one-pass rotation of `dim` elements (all zero
/// past [`ONE_PASS_MAX`], where the two-pass kernel draws its own).
const fn sign_words(seed: u64, dim: usize) -> [u64; ONE_PASS_MAX / 64] {
    let mut words = [0u64; ONE_PASS_MAX / 64];
    if dim <= ONE_PASS_MAX {
        let mut rng = SplitMix64::new(seed);
        let mut i = 0;
        while i < dim.div_ceil(64) {
            words[i] = rng.next_u64();
            i += 1;
        }
    }
    words
}
