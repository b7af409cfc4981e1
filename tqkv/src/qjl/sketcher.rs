//! [`QjlSketcher`]: the projections (Gaussian generated on the fly,
//! Hadamard blocks), sketches, reconstructions and the inner-product
//! estimator.

use super::{HADAMARD_MAX_DIM, Projection, signed_sum_in};
use crate::backend::Checked;
use crate::rng::SplitMix64;
use crate::{Backend, Error, Rotation};

/// The Gaussian pair `p` of the projection seeded with `seed` (entries
/// `2p` and `2p + 1` of `S` in row-major order): Box–Muller on the words
/// `2p` and `2p + 1` of SplitMix64, in f64, rounded to f32.
pub(super) fn box_muller(seed: u64, p: u64) -> (f32, f32) {
    let u = SplitMix64::word_at(seed, 2 * p);
    let v = SplitMix64::word_at(seed, 2 * p + 1);
    let u1 = ((u >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64);
    let u2 = (v >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    let rho = libm::sqrt(-2.0 * libm::log(u1));
    let angle = 2.0 * core::f64::consts::PI * u2;
    (
        (rho * libm::cos(angle)) as f32,
        (rho * libm::sin(angle)) as f32,
    )
}

/// Sketches residuals and estimates inner products against them.
///
/// Holds only its parameters (no allocation, no storage that grows with
/// `dim` or `m`); `Send + Sync`. Under `std`, the Gaussian projection's
/// matrix is generated once per process and kept, when it has at most 2¹⁸
/// entries (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QjlSketcher {
    dim: usize,
    m: usize,
    projection: Projection,
    seed: u64,
    /// The Hadamard projection's rotation (unused by the Gaussian one).
    rotation: Rotation,
}

impl QjlSketcher {
    /// A sketcher of `dim`-dimensional residuals into `m` sign bits.
    ///
    /// # Errors
    /// [`Error::InvalidDim`] if `dim` is 0 or, for Hadamard, above
    /// [`HADAMARD_MAX_DIM`] or not taken by [`Rotation::supports`]; [`Error::InvalidSketchBits`] unless
    /// `m` is a multiple of 8 in `8..=8·dim`.
    ///
    /// ```
    /// use tqkv::qjl::{Projection, QjlSketcher};
    /// use tqkv::Error;
    ///
    /// assert!(QjlSketcher::new(128, 128, Projection::Gaussian, 1).is_ok());
    /// assert_eq!(
    ///     QjlSketcher::new(128, 100, Projection::Gaussian, 1),
    ///     Err(Error::InvalidSketchBits { m: 100 })
    /// );
    /// assert_eq!(
    ///     QjlSketcher::new(100, 128, Projection::Hadamard, 1),
    ///     Err(Error::InvalidDim { dim: 100 })
    /// );
    /// ```
    pub fn new(dim: usize, m: usize, projection: Projection, seed: u64) -> Result<Self, Error> {
        let rotation = match projection {
            Projection::Gaussian if dim > 0 => None,
            Projection::Hadamard if dim <= HADAMARD_MAX_DIM => Rotation::new(dim, seed).ok(),
            _ => None,
        };
        if rotation.is_none() && projection == Projection::Hadamard || dim == 0 {
            return Err(Error::InvalidDim { dim });
        }
        // The Gaussian projection never reads it.
        let rotation = rotation.unwrap_or(Rotation::IDENTITY_1);
        if m == 0 || !m.is_multiple_of(8) || m > dim.saturating_mul(8) {
            return Err(Error::InvalidSketchBits { m });
        }
        Ok(QjlSketcher {
            dim,
            m,
            projection,
            seed,
            rotation,
        })
    }

    /// A sketcher with the default `m = dim` sign bits.
    ///
    /// # Errors
    /// As [`new`](Self::new) with `m = dim` (so `dim` must be a multiple of
    /// 8).
    ///
    /// ```
    /// use tqkv::qjl::{Projection, QjlSketcher};
    ///
    /// let sk = QjlSketcher::with_default_m(128, Projection::Hadamard, 9)?;
    /// assert_eq!(sk.m(), 128);
    /// # Ok::<(), tqkv::Error>(())
    /// ```
    pub fn with_default_m(dim: usize, projection: Projection, seed: u64) -> Result<Self, Error> {
        QjlSketcher::new(dim, dim, projection, seed)
    }

    /// The residual dimension `d`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Sketch bits `m`.
    pub fn m(&self) -> usize {
        self.m
    }

    /// The projection.
    pub fn projection(&self) -> Projection {
        self.projection
    }

    /// Bytes of one sketch, `m / 8`.
    pub fn sketch_bytes(&self) -> usize {
        self.m / 8
    }

    /// The estimator's constant `√(π/2)/m`.
    pub fn scale(&self) -> f32 {
        (libm::sqrt(core::f64::consts::FRAC_PI_2) / self.m as f64) as f32
    }

    /// `S[j][i]` of the Gaussian projection (see the module docs), for any
    /// projection's seed.
    ///
    /// ```
    /// use tqkv::qjl::{Projection, QjlSketcher};
    ///
    /// let sk = QjlSketcher::new(64, 64, Projection::Gaussian, 3)?;
    /// let row: Vec<f32> = (0..64).map(|i| sk.gaussian_entry(5, i)).collect();
    /// let mean = row.iter().sum::<f32>() / 64.0;
    /// assert!(mean.abs() < 0.5);
    /// # Ok::<(), tqkv::Error>(())
    /// ```
    pub fn gaussian_entry(&self, row: usize, col: usize) -> f32 {
        let e = row as u64 * self.dim as u64 + col as u64;
        let (z0, z1) = box_muller(self.seed, e / 2);
        if e.is_multiple_of(2) { z0 } else { z1 }
    }

    /// Every entry of the Gaussian `S`, row by row (each Box–Muller pair
    /// computed once): the same values as [`gaussian_entry`](Self::gaussian_entry).
    fn gaussian_entries(&self) -> impl Iterator<Item = f32> {
        let seed = self.seed;
        let total = self.m as u64 * self.dim as u64;
        (0..total.div_ceil(2))
            .flat_map(move |p| {
                let (z0, z1) = box_muller(seed, p);
                [z0, z1]
            })
            .take(total as usize)
    }

    /// Runs `f` over the Gaussian entries of `S`, row-major: from the
    /// process's memo of generated matrices under `std` (when small enough
    /// to keep), else generated as `f` reads them. The values are the same.
    fn with_gaussian<R>(&self, f: impl FnOnce(&mut dyn Iterator<Item = f32>) -> R) -> R {
        #[cfg(feature = "std")]
        if let Some(s) = super::gaussian_memo::MEMO.matrix(self.seed, self.m, self.dim, || {
            self.gaussian_entries().collect()
        }) {
            return f(&mut s.iter().copied());
        }
        f(&mut self.gaussian_entries())
    }

    /// Block `b` of the Hadamard projection is `√d·R_b`, `R_b` this
    /// rotation seeded with `seed + b` (`H·D_b` for a Hadamard matrix).
    fn block_rotation(&self, block: u64) -> Rotation {
        match block {
            // Seeded with `seed` already, its signs drawn.
            0 => self.rotation,
            _ => self.rotation.reseeded(self.seed.wrapping_add(block)),
        }
    }

    fn check_input(&self, x: &[f32]) -> Result<(), Error> {
        if x.len() != self.dim {
            return Err(Error::LengthMismatch {
                expected: self.dim,
                found: x.len(),
            });
        }
        Ok(())
    }

    /// Calls `sink(j, (S·x)_j)` for every row `j` in order.
    fn for_each_projection(
        &self,
        backend: Checked,
        x: &[f32],
        mut sink: impl FnMut(usize, &[f32]),
    ) {
        match self.projection {
            Projection::Gaussian => self.with_gaussian(|entries| {
                let mut block = [0.0f32; 64];
                let mut j = 0;
                while j < self.m {
                    let n = (self.m - j).min(64);
                    for b in block.iter_mut().take(n) {
                        let mut acc = 0.0f32;
                        for (&xi, s) in x.iter().zip(&mut *entries) {
                            acc += s * xi;
                        }
                        *b = acc;
                    }
                    sink(j, &block[..n]);
                    j += n;
                }
            }),
            Projection::Hadamard => {
                crate::stack::floats(self.dim, |buf| {
                    let mut j = 0;
                    let mut block = 0u64;
                    while j < self.m {
                        buf.copy_from_slice(x);
                        // Signs of a Rotation, its Hadamard matrix, no 1/√d
                        // scale: ±1 rows.
                        self.block_rotation(block).sketch_rows_in(backend, buf);
                        let n = (self.m - j).min(buf.len());
                        sink(j, &buf[..n]);
                        j += n;
                        block += 1;
                    }
                })
            }
        }
    }

    /// `out = S·x` (`m` values), once per query.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless `x.len() == dim`;
    /// [`Error::BufferTooShort`] if `out.len() < m`.
    pub fn project(&self, x: &[f32], out: &mut [f32]) -> Result<(), Error> {
        self.project_on(Backend::detect(), x, out)
    }

    /// [`project`](Self::project) with the Hadamard transform on a chosen
    /// backend (bit-identical results on every backend).
    ///
    /// # Errors
    /// As [`project`](Self::project), plus [`Error::BackendUnavailable`].
    pub fn project_on(&self, backend: Backend, x: &[f32], out: &mut [f32]) -> Result<(), Error> {
        self.project_in(backend.check()?, x, out)
    }

    /// [`project_on`](Self::project_on) on a backend already checked.
    pub(crate) fn project_in(
        &self,
        backend: Checked,
        x: &[f32],
        out: &mut [f32],
    ) -> Result<(), Error> {
        self.check_input(x)?;
        if out.len() < self.m {
            return Err(Error::BufferTooShort {
                needed: self.m,
                found: out.len(),
            });
        }
        self.for_each_projection(backend, x, |j, v| out[j..j + v.len()].copy_from_slice(v));
        Ok(())
    }

    /// Writes the `m` sign bits of `S·r` to `out` (bit `j` = 1 iff
    /// `(S·r)_j > 0`, LSB-first) and returns `γ = ‖r‖₂`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless `r.len() == dim`;
    /// [`Error::BufferTooShort`] if `out.len() < m/8`.
    pub fn sketch(&self, r: &[f32], out: &mut [u8]) -> Result<f32, Error> {
        self.sketch_on(Backend::detect(), r, out)
    }

    /// [`sketch`](Self::sketch) with the Hadamard transform on a chosen
    /// backend (the sketch bytes are identical on every backend).
    ///
    /// # Errors
    /// As [`sketch`](Self::sketch), plus [`Error::BackendUnavailable`].
    pub fn sketch_on(&self, backend: Backend, r: &[f32], out: &mut [u8]) -> Result<f32, Error> {
        self.sketch_in(backend.check()?, r, out)
    }

    /// [`sketch_on`](Self::sketch_on) on a backend already checked.
    pub(crate) fn sketch_in(
        &self,
        backend: Checked,
        r: &[f32],
        out: &mut [u8],
    ) -> Result<f32, Error> {
        self.check_input(r)?;
        self.projected_signs(backend, r, self.sketch_out(out)?);
        Ok(crate::loops::l2_on(backend, r) as f32)
    }

    /// The sign bits of [`sketch_in`](Self::sketch_in), the same bytes,
    /// without γ (an encoder has it from the residual's own loop), and
    /// `r` overwritten: a Hadamard sketch of at most `dim` bits projects
    /// it in place instead of in a copy (a zeroed buffer, a copy and a
    /// call fewer a prod code). Other sketches leave `r` as it was.
    pub(crate) fn sketch_signs_in_place(
        &self,
        backend: Checked,
        r: &mut [f32],
        out: &mut [u8],
    ) -> Result<(), Error> {
        self.check_input(r)?;
        let out = self.sketch_out(out)?;
        if self.projection == Projection::Hadamard && self.m <= self.dim {
            // `for_each_projection`'s first (and only) block: its signs
            // straight from the rotation's registers where the backend
            // can, else rotated in place and compared.
            if !self.rotation.sketch_signs_in(backend, r, out) {
                self.block_rotation(0).sketch_rows_in(backend, r);
                crate::loops::sign_bits_on(backend, &r[..self.m], out);
            }
        } else {
            self.projected_signs(backend, r, out);
        }
        Ok(())
    }

    /// The signs of `S·r` into `out` (`sketch_bytes` long), through a copy
    /// of `r` for the Hadamard projection.
    fn projected_signs(&self, backend: Checked, r: &[f32], out: &mut [u8]) {
        // Blocks start at multiples of 8 (m and the block lengths are).
        self.for_each_projection(backend, r, |j, v| {
            crate::loops::sign_bits_on(backend, v, &mut out[j / 8..]);
        });
    }

    /// The first [`sketch_bytes`](Self::sketch_bytes) of `out`.
    fn sketch_out<'o>(&self, out: &'o mut [u8]) -> Result<&'o mut [u8], Error> {
        let bytes = self.sketch_bytes();
        let found = out.len();
        out.get_mut(..bytes).ok_or(Error::BufferTooShort {
            needed: bytes,
            found,
        })
    }

    /// `out = √(π/2)/m · γ · Sᵀ·s` (`dim` values): the reconstruction of `r`
    /// from its sketch that is unbiased in inner products for the Gaussian
    /// projection (`E[⟨q, out⟩] = ⟨q, r⟩`) and, for the Hadamard one, within
    /// the bias documented in the module docs. Costs O(m·d) (Gaussian) or
    /// O(m log d) (Hadamard).
    ///
    /// # Errors
    /// [`Error::BufferTooShort`] if `signs.len() < m/8` or `out.len() < dim`.
    ///
    /// ```
    /// use tqkv::qjl::{Projection, QjlSketcher};
    ///
    /// let sk = QjlSketcher::new(64, 64, Projection::Hadamard, 1)?;
    /// let mut r = [0.0f32; 64];
    /// r[3] = 1.0;
    /// let mut bits = [0u8; 8];
    /// let gamma = sk.sketch(&r, &mut bits)?;
    /// let mut back = [0.0f32; 64];
    /// sk.reconstruct(&bits, gamma, &mut back)?;
    /// // A 1-sparse residual comes back exactly, times √(π/2).
    /// assert!((back[3] - 1.2533).abs() < 1e-3 && back[0].abs() < 1e-6);
    /// # Ok::<(), tqkv::Error>(())
    /// ```
    pub fn reconstruct(&self, signs: &[u8], gamma: f32, out: &mut [f32]) -> Result<(), Error> {
        self.reconstruct_on(Backend::detect(), signs, gamma, out)
    }

    /// [`reconstruct`](Self::reconstruct) on a chosen backend.
    ///
    /// # Errors
    /// As [`reconstruct`](Self::reconstruct), plus
    /// [`Error::BackendUnavailable`].
    pub fn reconstruct_on(
        &self,
        backend: Backend,
        signs: &[u8],
        gamma: f32,
        out: &mut [f32],
    ) -> Result<(), Error> {
        self.reconstruct_in(backend.check()?, signs, gamma, out)
    }

    /// [`reconstruct_on`](Self::reconstruct_on) on a backend already checked.
    pub(crate) fn reconstruct_in(
        &self,
        backend: Checked,
        signs: &[u8],
        gamma: f32,
        out: &mut [f32],
    ) -> Result<(), Error> {
        let bytes = self.sketch_bytes();
        if signs.len() < bytes {
            return Err(Error::BufferTooShort {
                needed: bytes,
                found: signs.len(),
            });
        }
        if out.len() < self.dim {
            return Err(Error::BufferTooShort {
                needed: self.dim,
                found: out.len(),
            });
        }
        let c = self.scale() * gamma;
        let sign = |j: usize| {
            if (signs[j / 8] >> (j % 8)) & 1 == 1 {
                c
            } else {
                -c
            }
        };
        self.transpose_with(backend, sign, &mut out[..self.dim]);
        Ok(())
    }

    /// `out = Sᵀ·y` for `m` real weights `y` (`dim` values): the adjoint of
    /// [`project`](Self::project). Attention sums `Σ_t p_t·γ_t·s_t` over
    /// tokens in the sketch domain and maps it back once with this.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless `y.len() == m`;
    /// [`Error::BufferTooShort`] if `out.len() < dim`.
    ///
    /// ```
    /// use tqkv::qjl::{Projection, QjlSketcher};
    ///
    /// // ⟨S·x, y⟩ = ⟨x, Sᵀ·y⟩.
    /// let sk = QjlSketcher::new(8, 64, Projection::Gaussian, 2)?;
    /// let x = [0.5f32, -1.0, 2.0, 0.0, 1.0, 0.25, -0.5, 1.5];
    /// let y: Vec<f32> = (0..64).map(|j| (j % 5) as f32 - 2.0).collect();
    /// let (mut sx, mut sty) = ([0.0f32; 64], [0.0f32; 8]);
    /// sk.project(&x, &mut sx)?;
    /// sk.transpose(&y, &mut sty)?;
    /// let a: f32 = sx.iter().zip(&y).map(|(p, q)| p * q).sum();
    /// let b: f32 = x.iter().zip(&sty).map(|(p, q)| p * q).sum();
    /// assert!((a - b).abs() < 1e-3 * a.abs().max(1.0));
    /// # Ok::<(), tqkv::Error>(())
    /// ```
    pub fn transpose(&self, y: &[f32], out: &mut [f32]) -> Result<(), Error> {
        self.transpose_on(Backend::detect(), y, out)
    }

    /// [`transpose`](Self::transpose) on a chosen backend.
    ///
    /// # Errors
    /// As [`transpose`](Self::transpose), plus [`Error::BackendUnavailable`].
    pub fn transpose_on(&self, backend: Backend, y: &[f32], out: &mut [f32]) -> Result<(), Error> {
        self.transpose_in(backend.check()?, y, out)
    }

    /// [`transpose_on`](Self::transpose_on) on a backend already checked.
    pub(crate) fn transpose_in(
        &self,
        backend: Checked,
        y: &[f32],
        out: &mut [f32],
    ) -> Result<(), Error> {
        if y.len() != self.m {
            return Err(Error::LengthMismatch {
                expected: self.m,
                found: y.len(),
            });
        }
        if out.len() < self.dim {
            return Err(Error::BufferTooShort {
                needed: self.dim,
                found: out.len(),
            });
        }
        self.transpose_with(backend, |j| y[j], &mut out[..self.dim]);
        Ok(())
    }

    /// `out = Σ_j weight(j)·S_j` (rows of `S`).
    fn transpose_with(&self, backend: Checked, weight: impl Fn(usize) -> f32, out: &mut [f32]) {
        out.fill(0.0);
        match self.projection {
            Projection::Gaussian => self.with_gaussian(|entries| {
                for j in 0..self.m {
                    let w = weight(j);
                    for (o, s) in out.iter_mut().zip(&mut *entries) {
                        *o += w * s;
                    }
                }
            }),
            Projection::Hadamard => {
                crate::stack::floats(self.dim, |buf| {
                    let mut block = 0u64;
                    let mut j = 0;
                    while j < self.m {
                        for v in buf.iter_mut() {
                            *v = if j < self.m { weight(j) } else { 0.0 };
                            j += 1;
                        }
                        // Sᵀ of block b is D_b·Hᵀ.
                        self.block_rotation(block)
                            .sketch_rows_transpose_in(backend, buf);
                        for (o, &v) in out.iter_mut().zip(buf.iter()) {
                            *o += v;
                        }
                        block += 1;
                    }
                })
            }
        }
    }

    /// `√(π/2)/m · γ · Σ_j sq_j · s_j`: the estimate of `⟨q, r⟩` from the
    /// projected query `sq = S·q` and the sketch of `r`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless `sq.len() == m`;
    /// [`Error::BufferTooShort`] if `signs.len() < m/8`.
    pub fn estimate(&self, sq: &[f32], signs: &[u8], gamma: f32) -> Result<f32, Error> {
        self.estimate_on(Backend::detect(), sq, signs, gamma)
    }

    /// [`estimate`](Self::estimate) on a chosen backend.
    ///
    /// # Errors
    /// As [`estimate`](Self::estimate), plus [`Error::BackendUnavailable`].
    pub fn estimate_on(
        &self,
        backend: Backend,
        sq: &[f32],
        signs: &[u8],
        gamma: f32,
    ) -> Result<f32, Error> {
        self.estimate_in(backend.check()?, sq, signs, gamma)
    }

    /// [`estimate_on`](Self::estimate_on) on a backend already checked.
    pub(crate) fn estimate_in(
        &self,
        backend: Checked,
        sq: &[f32],
        signs: &[u8],
        gamma: f32,
    ) -> Result<f32, Error> {
        if sq.len() != self.m {
            return Err(Error::LengthMismatch {
                expected: self.m,
                found: sq.len(),
            });
        }
        Ok(self.scale() * gamma * signed_sum_in(backend, sq, signs)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use proptest::prelude::*;
    use std::vec;

    /// Values of every size class, signed zeros, NaN and infinities: the
    /// sums of the transform overflow and cancel as they may.
    fn value() -> impl Strategy<Value = f32> {
        prop_oneof![
            8 => -1.0f32..1.0,
            2 => -1e30f32..1e30,
            1 => Just(0.0f32),
            1 => Just(-0.0f32),
            1 => Just(f32::MAX),
            1 => Just(-f32::MIN_POSITIVE / 4.0),
            1 => Just(f32::NAN),
            1 => Just(f32::INFINITY),
        ]
    }

    /// A Hadamard sketch's dimension (powers of two, which the fused
    /// kernels take, and 96 and 80, which take the separate steps), its
    /// row count `m ≤ dim` (a multiple of 8) and a residual.
    fn sketch_case() -> impl Strategy<Value = (usize, usize, vec::Vec<f32>)> {
        crate::wht::one_pass_test_dims().prop_flat_map(|dim| {
            (
                Just(dim),
                (1..=dim / 8).prop_map(|k| 8 * k),
                proptest::collection::vec(value(), dim),
            )
        })
    }

    proptest! {
        #![proptest_config(crate::proptest_config())]

        /// The sign bits the fused kernels take from their registers
        /// (`Rotation::sketch_signs_in`, through the encoders' in-place
        /// sketch) are the bytes of the scalar backend's separate steps
        /// (rotation stored, then compared), on every backend, for every
        /// row count up to the dimension.
        #[test]
        fn fused_sketch_signs_are_the_scalar_bytes((dim, m, r) in sketch_case(), seed in 0u64..1000) {
            let sk = QjlSketcher::new(dim, m, Projection::Hadamard, seed).unwrap();
            let mut want = vec![0u8; m / 8];
            sk.sketch_in(Backend::Scalar.check().unwrap(), &r, &mut want).unwrap();
            for backend in Backend::available() {
                let b = backend.check().unwrap();
                let mut got = vec![0xA5u8; m / 8];
                let mut y = r.clone();
                sk.sketch_signs_in_place(b, &mut y, &mut got).unwrap();
                prop_assert_eq!(&got, &want, "{}/{} on {}", dim, m, backend);
            }
        }
    }

    /// Finite sums that overflow only where a product by ±2 does (a
    /// Williamson dimension, 80): every backend rotates to the scalar
    /// reference's bits, infinities included (a fused multiply-add there
    /// kept them finite).
    #[test]
    fn williamson_rows_overflow_as_the_reference() {
        let mut r = [0.0f32; 80];
        let big = [
            (1, -2.938736e-39),
            (24, 1.0),
            (36, -2.938736e-39),
            (45, f32::MAX),
        ];
        for (i, v) in big
            .into_iter()
            .chain([(54, -2.938736e-39), (74, 1.0), (75, 1.0)])
        {
            r[i] = v;
        }
        let sk = QjlSketcher::new(80, 40, Projection::Hadamard, 73).unwrap();
        let bits = |backend: Backend| {
            let mut y = r;
            sk.block_rotation(0)
                .sketch_rows_in(backend.check().unwrap(), &mut y);
            y.map(f32::to_bits)
        };
        let want = bits(Backend::Scalar);
        assert!(want.iter().any(|&b| f32::from_bits(b).is_infinite()));
        for backend in Backend::available() {
            assert_eq!(bits(backend), want, "{backend}");
        }
    }

    /// The encoders' in-place sketch writes the bytes of `sketch_in` on
    /// every backend: Hadamard sketches of `m < dim`, `m = dim` (in place)
    /// and `m > dim` (blocks from a copy), a Williamson and a
    /// block-diagonal dimension, and the Gaussian projection. Each bit is
    /// also checked against the sign of the public projection `S·r`.
    #[test]
    fn signs_in_place_are_the_sketch_bits() {
        let mut g = SplitMix64::new(3);
        let shapes: &[(usize, usize, Projection)] = &[
            (128, 128, Projection::Hadamard),
            (128, 64, Projection::Hadamard),
            (64, 128, Projection::Hadamard),
            (96, 96, Projection::Hadamard),
            (104, 104, Projection::Hadamard),
            (64, 64, Projection::Gaussian),
        ];
        for &(dim, m, projection) in shapes {
            let sk = QjlSketcher::new(dim, m, projection, 17).unwrap();
            let r: vec::Vec<f32> = (0..dim)
                .map(|_| (g.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
                .collect();
            for backend in Backend::available() {
                let b = backend.check().unwrap();
                let mut want = vec![0u8; m / 8];
                sk.sketch_in(b, &r, &mut want).unwrap();
                let mut got = vec![0u8; m / 8];
                let mut y = r.clone();
                sk.sketch_signs_in_place(b, &mut y, &mut got).unwrap();
                assert_eq!(got, want, "{dim}/{m} {projection:?} on {backend}");
                let mut s = vec![0.0f32; m];
                sk.project_on(backend, &r, &mut s).unwrap();
                for (j, &v) in s.iter().enumerate() {
                    assert_eq!((got[j / 8] >> (j % 8)) & 1 == 1, v > 0.0, "bit {j}");
                }
                let mut short = vec![0u8; m / 8 - 1];
                assert_eq!(
                    sk.sketch_signs_in_place(b, &mut y, &mut short),
                    Err(Error::BufferTooShort {
                        needed: m / 8,
                        found: m / 8 - 1
                    })
                );
            }
        }
    }
}
