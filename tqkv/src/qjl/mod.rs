//! QJL sign sketches: a 1-bit Johnson–Lindenstrauss sketch of a residual,
//! and the inner-product estimators and kernels that read it.
//!
//! A residual `r ∈ R^d` is stored as `m` sign bits, bit `j` = 1 iff
//! `(S·r)_j > 0` (so 0 for `(S·r)_j ≤ 0`, NaN included), packed LSB-first:
//! bit `j` is bit `j % 8` of byte `j / 8`, as in the public QJL code; plus
//! `γ = ‖r‖₂`. For a query `q`, `⟨q, r⟩ ≈ √(π/2)/m · γ · Σ_j (S·q)_j · s_j`
//! with `s_j = ±1` from the bits: [`QjlSketcher::estimate`].
//!
//! # Projections
//!
//! - [`Projection::Gaussian`]: `S` is `m × d` with i.i.d. N(0, 1) entries.
//!   Then `(S·q)_j · sign((S·r)_j)` has mean `√(2/π)·⟨q, r⟩/‖r‖`, so the
//!   estimator is unbiased, with variance `(π/2·‖q‖²‖r‖² − ⟨q, r⟩²)/m`
//!   (tests/qjl.rs checks both over many seeds).
//!
//!   The generator, exactly: entry `e = j·d + i` (row `j`, column `i`,
//!   row-major) comes from the pair `p = ⌊e/2⌋` of outputs `u = w(2p)`,
//!   `v = w(2p + 1)` of [`SplitMix64`] seeded with
//!   the sketcher's seed (`w(k)` = the k-th output, 0-based), by Box–Muller in
//!   f64: `u₁ = ((u >> 11) + 1)·2⁻⁵³`, `u₂ = (v >> 11)·2⁻⁵³`,
//!   `ρ = √(−2 ln u₁)`, entry = `ρ·cos(2π u₂)` for even `e`, `ρ·sin(2π u₂)`
//!   for odd `e`, rounded to f32. Rows are generated on the fly (O(m·d) per
//!   call, no storage).
//! - [`Projection::Hadamard`]: block `b` of `d` rows is `H·D_b` (entries ±1),
//!   `D_b` the sign diagonal of [`Rotation`] seeded with
//!   `seed + b`, so `S·x` costs O(d log d) per block; `m < d` keeps the
//!   first `m` rows, `m > d` stacks independent blocks (the last one cut).
//!   Every row has squared norm `d`, like a Gaussian row in expectation, and
//!   `(S·r)_j = Σ_i ±r_i` is a Rademacher sum, which tends to a Gaussian
//!   as `max_i r_i²/‖r‖² → 0` (Lindeberg), so the same constant `√(π/2)` is
//!   the right one in that limit — the case of residuals of rotated vectors,
//!   whose mass is spread over all coordinates. It is not exact for sparse
//!   residuals: when `r` has one non-zero coordinate every sign is
//!   determined and the estimate is exactly `√(π/2)·⟨q, r⟩`, 25.3% high.
//!   Measured (tests/qjl.rs, d = 64, m = 128, 3000 seeds): on Gaussian
//!   residuals the bias is +0.6% (asserted ≤ 2%), and the variance is 3.2×
//!   *lower* than the Gaussian projection's (16.9 against 54.6): rows within
//!   a block are orthogonal, so their signs are not independent draws. On
//!   residuals with k equal-ish non-zero coordinates out of 64 the bias was
//!   +25.3% (k = 1), +13% (k = 2), −11% (k = 4), within ±0.5% for k ≥ 8.
//!
//!   The bound, derived: every row of a block is `±1` times a Rademacher
//!   sum `Y = Σ_i ε_i r_i` (the `H` entries and the signs of `D_b` only flip
//!   terms), so for `q = r` the mean estimate over seeds is
//!   `√(π/2)·E|Y|/‖r‖ · ‖r‖²`. The Khintchine inequality with Szarek's
//!   optimal constant gives `‖r‖/√2 ≤ E|Y| ≤ ‖r‖`, hence the mean lies in
//!   `[√π/2, √(π/2)]·‖r‖² = [0.886, 1.253]·‖r‖²` for every `r` (the lower end
//!   at two equal coordinates, the upper at one), and tends to `‖r‖²` as
//!   `max_i r_i²/‖r‖² → 0` (asserted in tests/qjl.rs for k = 1 … 64). For the
//!   part of `q` orthogonal to `r` the Gaussian argument gives no bias and
//!   the Rademacher one a small one; it is measured (the 0.6% above), not
//!   bounded.
//!   Hadamard needs `d` a power of two, at most [`HADAMARD_MAX_DIM`].
//!
//! `m` must be a multiple of 8 (whole bytes), from 8 to `8·d`; the bit-plane
//! kernels ([`BitPlaneQuery`]) need a multiple of 64.
//!
//! ```
//! use tqkv::qjl::{Projection, QjlSketcher};
//!
//! let sk = QjlSketcher::new(64, 128, Projection::Hadamard, 7)?;
//! let r: Vec<f32> = (0..64).map(|i| ((i * 37 % 11) as f32 - 5.0) / 10.0).collect();
//! let mut bits = [0u8; 16];
//! let gamma = sk.sketch(&r, &mut bits)?;
//! let mut sq = [0.0f32; 128];
//! sk.project(&r, &mut sq)?;
//! let est = sk.estimate(&sq, &bits, gamma)?;
//! let exact: f32 = r.iter().map(|v| v * v).sum();
//! assert!((est - exact).abs() < 0.35 * exact);
//! # Ok::<(), tqkv::Error>(())
//! ```

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;

use crate::backend::{Checked, on_backend};
use crate::error::check_rows;
use crate::rng::SplitMix64;
use crate::{Backend, Error, Rotation, wht};

/// The Gaussian pair `p` of the projection seeded with `seed` (entries
/// `2p` and `2p + 1` of `S` in row-major order): Box–Muller on the words
/// `2p` and `2p + 1` of SplitMix64, in f64, rounded to f32.
fn box_muller(seed: u64, p: u64) -> (f32, f32) {
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

/// Largest `dim` of the Hadamard projection: its transform runs in a stack
/// buffer of this many f32 (16 KiB), so no allocation is needed.
pub const HADAMARD_MAX_DIM: usize = 4096;

/// How residuals are projected before taking signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Projection {
    /// Dense `m × d` matrix of i.i.d. N(0, 1) entries (see the module docs).
    Gaussian,
    /// Seeded randomised Hadamard blocks, O(d log d) (see the module docs).
    Hadamard,
}

impl Projection {
    /// A short lowercase name (`"gaussian"`, `"hadamard"`), as used in the
    /// evaluation's output.
    ///
    /// ```
    /// assert_eq!(tqkv::qjl::Projection::Hadamard.name(), "hadamard");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            Projection::Gaussian => "gaussian",
            Projection::Hadamard => "hadamard",
        }
    }
}

/// Sketches residuals and estimates inner products against them.
///
/// Holds only its parameters (no allocation, no storage that grows with
/// `dim` or `m`); `Send + Sync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QjlSketcher {
    dim: usize,
    m: usize,
    projection: Projection,
    seed: u64,
}

impl QjlSketcher {
    /// A sketcher of `dim`-dimensional residuals into `m` sign bits.
    ///
    /// # Errors
    /// [`Error::InvalidDim`] if `dim` is 0 or, for Hadamard, not a power of
    /// two in `1..=`[`HADAMARD_MAX_DIM`]; [`Error::InvalidSketchBits`] unless
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
    ///     QjlSketcher::new(96, 128, Projection::Hadamard, 1),
    ///     Err(Error::InvalidDim { dim: 96 })
    /// );
    /// ```
    pub fn new(dim: usize, m: usize, projection: Projection, seed: u64) -> Result<Self, Error> {
        let dim_ok = match projection {
            Projection::Gaussian => dim > 0,
            Projection::Hadamard => dim.is_power_of_two() && dim <= HADAMARD_MAX_DIM,
        };
        if !dim_ok {
            return Err(Error::InvalidDim { dim });
        }
        if m == 0 || !m.is_multiple_of(8) || m > dim.saturating_mul(8) {
            return Err(Error::InvalidSketchBits { m });
        }
        Ok(QjlSketcher {
            dim,
            m,
            projection,
            seed,
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
    fn for_each_projection(&self, backend: Checked, x: &[f32], mut sink: impl FnMut(usize, f32)) {
        match self.projection {
            Projection::Gaussian => {
                let mut entries = self.gaussian_entries();
                for j in 0..self.m {
                    let mut acc = 0.0f32;
                    for (&xi, s) in x.iter().zip(entries.by_ref()) {
                        acc += s * xi;
                    }
                    sink(j, acc);
                }
            }
            Projection::Hadamard => {
                let d = self.dim;
                let mut buf = [0.0f32; HADAMARD_MAX_DIM];
                let buf = &mut buf[..d];
                let mut j = 0;
                let mut block = 0u64;
                while j < self.m {
                    buf.copy_from_slice(x);
                    // Signs of a Rotation, the WHT, no 1/√d scale: ±1 rows.
                    flip(self.seed.wrapping_add(block), buf);
                    // Length checked at construction (a power of two ≤ 4096)
                    // and the backend by the caller: this cannot fail.
                    let _ = wht::fwht_in(backend, buf);
                    for &v in buf.iter().take(self.m - j) {
                        sink(j, v);
                        j += 1;
                    }
                    block += 1;
                }
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
        self.for_each_projection(backend, x, |j, v| out[j] = v);
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
        let bytes = self.sketch_bytes();
        if out.len() < bytes {
            return Err(Error::BufferTooShort {
                needed: bytes,
                found: out.len(),
            });
        }
        let out = &mut out[..bytes];
        out.fill(0);
        self.for_each_projection(backend, r, |j, v| {
            if v > 0.0 {
                out[j / 8] |= 1 << (j % 8);
            }
        });
        let norm2: f64 = r.iter().map(|&v| v as f64 * v as f64).sum();
        Ok(libm::sqrt(norm2) as f32)
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
            Projection::Gaussian => {
                let mut entries = self.gaussian_entries();
                for j in 0..self.m {
                    let w = weight(j);
                    for (o, s) in out.iter_mut().zip(entries.by_ref()) {
                        *o += w * s;
                    }
                }
            }
            Projection::Hadamard => {
                let d = self.dim;
                let mut buf = [0.0f32; HADAMARD_MAX_DIM];
                let buf = &mut buf[..d];
                let mut block = 0u64;
                let mut j = 0;
                while j < self.m {
                    for v in buf.iter_mut() {
                        *v = if j < self.m { weight(j) } else { 0.0 };
                        j += 1;
                    }
                    // Sᵀ of block b is D_b·H (H is symmetric); the length
                    // was checked at construction and the backend by the
                    // caller, so the transform cannot fail.
                    let _ = wht::fwht_in(backend, buf);
                    flip(self.seed.wrapping_add(block), buf);
                    for (o, &v) in out.iter_mut().zip(buf.iter()) {
                        *o += v;
                    }
                    block += 1;
                }
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

/// Multiplies `x` by the sign diagonal of `Rotation::new(x.len(), seed)`.
fn flip(seed: u64, x: &mut [f32]) {
    // The rotation is only used for its documented signs (64 per generator
    // call); `x.len()` is a power of two ≤ 4096, checked at construction.
    if let Ok(rot) = Rotation::new(x.len(), seed) {
        rot.flip_signs(x);
    }
}

/// `Σ_j s_j · sq[j]` with `s_j = +1` where bit `j` of `signs` is set, else
/// `−1` (the f32 query path), on the detected backend. Backends sum in
/// different orders: they agree with scalar within `1e-5 · Σ_j |sq[j]|`.
///
/// # Errors
/// [`Error::BufferTooShort`] if `signs` has fewer than `⌈sq.len()/8⌉` bytes.
///
/// ```
/// // Bits 0 and 2 set: +1 − 2 + 3 − 4.
/// assert_eq!(tqkv::qjl::signed_sum(&[1.0, 2.0, 3.0, 4.0], &[0b0101])?, -2.0);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn signed_sum(sq: &[f32], signs: &[u8]) -> Result<f32, Error> {
    signed_sum_on(Backend::detect(), sq, signs)
}

/// [`signed_sum`] on a chosen backend.
///
/// # Errors
/// As [`signed_sum`], plus [`Error::BackendUnavailable`].
pub fn signed_sum_on(backend: Backend, sq: &[f32], signs: &[u8]) -> Result<f32, Error> {
    signed_sum_in(backend.check()?, sq, signs)
}

/// [`signed_sum_on`] on a backend already checked.
pub(crate) fn signed_sum_in(backend: Checked, sq: &[f32], signs: &[u8]) -> Result<f32, Error> {
    let needed = sq.len().div_ceil(8);
    if signs.len() < needed {
        return Err(Error::BufferTooShort {
            needed,
            found: signs.len(),
        });
    }
    on_backend!(
        backend,
        signed_sum_scalar(sq, signs),
        signed_sum_simd(sq, signs)
    )
}

fn signed_sum_scalar(sq: &[f32], signs: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (j, &v) in sq.iter().enumerate() {
        // `sum − v` is `sum + (−v)` exactly: flip the sign bit where the
        // sketch bit is clear, without a data-dependent branch.
        let clear = !(signs[j / 8] >> (j % 8)) & 1;
        sum += f32::from_bits(v.to_bits() ^ ((clear as u32) << 31));
    }
    sum
}

/// A bit-plane query as the kernels see it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Planes<'a> {
    planes: &'a [u64],
    words: usize,
    bits: usize,
    lo: f32,
    step: f32,
    total: f32,
}

impl Planes<'_> {
    /// `2·(lo·|s| + step·Σ_p 2^p·|s ∧ plane_p|) − Σ_j q̂_j`, in f64 then f32.
    #[inline(always)]
    fn combine(&self, ones: u32, weighted: u64) -> f32 {
        let positive = self.lo as f64 * ones as f64 + self.step as f64 * weighted as f64;
        (2.0 * positive - self.total as f64) as f32
    }
}

/// Every row's bit-plane sum (rows validated), with `counts` for one row.
#[inline(always)]
fn plane_rows_with(
    q: Planes<'_>,
    rows: &[u8],
    stride: usize,
    out: &mut [f32],
    counts: impl Fn(&[u8]) -> (u32, u64),
) {
    let bytes = q.words * 8;
    for (r, o) in out.iter_mut().enumerate() {
        let (ones, weighted) = counts(&rows[r * stride..r * stride + bytes]);
        *o = q.combine(ones, weighted);
    }
}

/// Every row's f32 signed sum (rows validated), with `sum` for one row.
#[inline(always)]
fn signed_rows_with(
    sq: &[f32],
    rows: &[u8],
    stride: usize,
    out: &mut [f32],
    sum: impl Fn(&[f32], &[u8]) -> f32,
) {
    let bytes = sq.len().div_ceil(8);
    for (r, o) in out.iter_mut().enumerate() {
        *o = sum(sq, &rows[r * stride..r * stride + bytes]);
    }
}

/// `(|s|, Σ_p 2^p·|s ∧ plane_p|)` over `words` 64-bit words: `signs` holds
/// `8·words` bytes, plane `p` is `planes[p·words..(p + 1)·words]`.
#[inline(always)]
fn plane_counts_scalar(signs: &[u8], planes: &[u64], words: usize, bits: usize) -> (u32, u64) {
    let mut ones = 0u32;
    let mut weighted = 0u64;
    for (w, chunk) in signs.chunks_exact(8).take(words).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        let s = u64::from_le_bytes(b);
        ones += s.count_ones();
        for p in 0..bits {
            weighted += ((s & planes[p * words + w]).count_ones() as u64) << p;
        }
    }
    (ones, weighted)
}

/// The number of differing bits of two sketches, on the detected backend
/// (identical on every backend).
///
/// # Errors
/// [`Error::LengthMismatch`] if the lengths differ.
///
/// ```
/// assert_eq!(tqkv::qjl::hamming(&[0b1010, 0xFF], &[0b0110, 0x0F])?, 6);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn hamming(a: &[u8], b: &[u8]) -> Result<u32, Error> {
    hamming_on(Backend::detect(), a, b)
}

/// [`hamming`] on a chosen backend.
///
/// # Errors
/// As [`hamming`], plus [`Error::BackendUnavailable`].
pub fn hamming_on(backend: Backend, a: &[u8], b: &[u8]) -> Result<u32, Error> {
    hamming_in(backend.check()?, a, b)
}

/// [`hamming_on`] on a backend already checked.
pub(crate) fn hamming_in(backend: Checked, a: &[u8], b: &[u8]) -> Result<u32, Error> {
    if a.len() != b.len() {
        return Err(Error::LengthMismatch {
            expected: a.len(),
            found: b.len(),
        });
    }
    on_backend!(
        backend,
        a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum(),
        hamming_simd(a, b)
    )
}

/// How [`BitPlaneQuery`] rounds the projected query to its integer levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// To the nearest level (ties up): error at most half a step per value.
    Nearest,
    /// Down or up at random, with the probability that makes the level
    /// unbiased (`floor(x + U)`, `U` uniform in [0, 1) from
    /// [`SplitMix64`] seeded with `seed`, the top 24 bits of one output per
    /// value): error below one step per value, zero on average.
    Randomized {
        /// The generator's seed.
        seed: u64,
    },
}

/// A projected query `S·q` quantised to `B` bit-planes, so that
/// `Σ_j s_j·(S·q)_j` becomes AND + popcount.
///
/// Value `j` is stored as `lo + step·u_j` with `u_j ∈ 0..2^B` (unsigned,
/// offset `lo = min_j sq_j`, `step = (max − min)/(2^B − 1)`); plane `p` holds
/// bit `p` of every `u_j`, packed like the sketches (bit `j` in word `j/64`,
/// position `j % 64`). With `s_j ∈ {0, 1}` the sketch bits,
/// `Σ_j (2s_j − 1)·q̂_j = 2·(lo·|s| + step·Σ_p 2^p·|s ∧ plane_p|) − Σ_j q̂_j`.
///
/// Against the f32 [`signed_sum`], the result differs by at most
/// `Σ_j |sq_j − q̂_j|`, i.e. `m·step/2` with [`Rounding::Nearest`] and below
/// `m·step` with [`Rounding::Randomized`] (plus f32 rounding of the sums).
///
/// The planes live in a caller buffer of `B·m/64` words (no allocation).
///
/// ```
/// use tqkv::qjl::{self, BitPlaneQuery, Rounding};
///
/// let sq: Vec<f32> = (0..64).map(|j| (j as f32 - 31.5) / 8.0).collect();
/// let signs = [0b1011_0110u8; 8];
/// let mut planes = [0u64; 8];
/// let bq = BitPlaneQuery::new(&sq, 8, Rounding::Nearest, &mut planes)?;
/// let exact = qjl::signed_sum(&sq, &signs)?;
/// let approx = bq.signed_sum(&signs)?;
/// assert!((approx - exact).abs() <= 64.0 * bq.step() / 2.0 + 1e-4);
/// # Ok::<(), tqkv::Error>(())
/// ```
#[derive(Debug)]
pub struct BitPlaneQuery<'a> {
    planes: &'a [u64],
    bits: u8,
    m: usize,
    lo: f32,
    step: f32,
    total: f32,
}

impl<'a> BitPlaneQuery<'a> {
    /// Words of plane storage needed: `bits · m/64`.
    pub fn words_needed(m: usize, bits: u8) -> usize {
        bits as usize * m.div_ceil(64)
    }

    /// Quantises `sq` (`m` values, `m` a multiple of 64) to `bits` planes in
    /// `buf`.
    ///
    /// # Errors
    /// [`Error::InvalidBits`] unless `bits ∈ 1..=8`;
    /// [`Error::InvalidSketchBits`] unless `sq.len()` is a positive multiple
    /// of 64; [`Error::BufferTooShort`] if `buf` is shorter than
    /// [`words_needed`](Self::words_needed); [`Error::NonFinite`] if `sq`
    /// holds a NaN or an infinity.
    pub fn new(
        sq: &[f32],
        bits: u8,
        rounding: Rounding,
        buf: &'a mut [u64],
    ) -> Result<Self, Error> {
        if !(1..=8).contains(&bits) {
            return Err(Error::InvalidBits { bits });
        }
        let m = sq.len();
        if m == 0 || !m.is_multiple_of(64) {
            return Err(Error::InvalidSketchBits { m });
        }
        let words = m / 64;
        let needed = bits as usize * words;
        if buf.len() < needed {
            return Err(Error::BufferTooShort {
                needed,
                found: buf.len(),
            });
        }
        crate::error::finite(sq)?;
        let lo = sq.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = sq.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let top = ((1u32 << bits) - 1) as f32;
        let step = (hi - lo) / top;
        let planes = &mut buf[..needed];
        planes.fill(0);
        let mut rng = match rounding {
            Rounding::Randomized { seed } => Some(SplitMix64::new(seed)),
            Rounding::Nearest => None,
        };
        let mut levels = 0u64;
        for (j, &v) in sq.iter().enumerate() {
            let x = if step > 0.0 { (v - lo) / step } else { 0.0 };
            let nudge = match rng.as_mut() {
                Some(g) => (g.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32),
                None => 0.5,
            };
            let u = libm::floorf(x + nudge).clamp(0.0, top) as u64;
            levels += u;
            for (p, plane) in planes.chunks_exact_mut(words).enumerate() {
                plane[j / 64] |= ((u >> p) & 1) << (j % 64);
            }
        }
        let total = (m as f64 * lo as f64 + step as f64 * levels as f64) as f32;
        Ok(BitPlaneQuery {
            planes,
            bits,
            m,
            lo,
            step,
            total,
        })
    }

    /// The number of values `m`.
    pub fn m(&self) -> usize {
        self.m
    }

    /// The number of planes `B`.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// The quantisation step.
    pub fn step(&self) -> f32 {
        self.step
    }

    /// The offset (the smallest value).
    pub fn offset(&self) -> f32 {
        self.lo
    }

    /// The planes: plane `p` is words `p·m/64 … (p + 1)·m/64`.
    pub fn planes(&self) -> &[u64] {
        self.planes
    }

    /// `Σ_j s_j·q̂_j` for one sketch (`s_j = ±1` from its bits).
    ///
    /// # Errors
    /// [`Error::BufferTooShort`] if `signs` has fewer than `m/8` bytes.
    pub fn signed_sum(&self, signs: &[u8]) -> Result<f32, Error> {
        self.signed_sum_on(Backend::detect(), signs)
    }

    /// [`signed_sum`](Self::signed_sum) on a chosen backend (the popcounts
    /// are identical on every backend, so is the result).
    ///
    /// # Errors
    /// As [`signed_sum`](Self::signed_sum), plus [`Error::BackendUnavailable`].
    pub fn signed_sum_on(&self, backend: Backend, signs: &[u8]) -> Result<f32, Error> {
        self.signed_sum_in(backend.check()?, signs)
    }

    /// [`signed_sum_on`](Self::signed_sum_on) on a backend already checked.
    pub(crate) fn signed_sum_in(&self, backend: Checked, signs: &[u8]) -> Result<f32, Error> {
        let bytes = self.m / 8;
        if signs.len() < bytes {
            return Err(Error::BufferTooShort {
                needed: bytes,
                found: signs.len(),
            });
        }
        let mut out = [0.0f32];
        self.signed_sum_rows_in(backend, &signs[..bytes], bytes, &mut out)?;
        Ok(out[0])
    }

    fn view(&self) -> Planes<'_> {
        Planes {
            planes: self.planes,
            words: self.m / 64,
            bits: self.bits as usize,
            lo: self.lo,
            step: self.step,
            total: self.total,
        }
    }

    /// [`signed_sum`](Self::signed_sum) of every row: row `r` is the `m/8`
    /// bytes at `rows[r·stride..]`, its result goes to `out[r]`.
    ///
    /// # Errors
    /// [`Error::BufferTooShort`] if `stride < m/8` or `rows` does not hold
    /// `out.len()` rows.
    pub fn signed_sum_rows(
        &self,
        rows: &[u8],
        stride: usize,
        out: &mut [f32],
    ) -> Result<(), Error> {
        self.signed_sum_rows_on(Backend::detect(), rows, stride, out)
    }

    /// [`signed_sum_rows`](Self::signed_sum_rows) on a chosen backend.
    ///
    /// # Errors
    /// As [`signed_sum_rows`](Self::signed_sum_rows), plus
    /// [`Error::BackendUnavailable`].
    pub fn signed_sum_rows_on(
        &self,
        backend: Backend,
        rows: &[u8],
        stride: usize,
        out: &mut [f32],
    ) -> Result<(), Error> {
        self.signed_sum_rows_in(backend.check()?, rows, stride, out)
    }

    /// [`signed_sum_rows_on`](Self::signed_sum_rows_on) on a backend already checked.
    pub(crate) fn signed_sum_rows_in(
        &self,
        backend: Checked,
        rows: &[u8],
        stride: usize,
        out: &mut [f32],
    ) -> Result<(), Error> {
        let bytes = self.m / 8;
        check_rows(bytes, rows.len(), stride, out.len())?;
        let q = self.view();
        on_backend!(
            backend,
            plane_rows_with(q, rows, stride, out, |s| plane_counts_scalar(
                s, q.planes, q.words, q.bits
            )),
            plane_rows_simd(q, rows, stride, out)
        )
    }
}

/// [`signed_sum`] of one query against many sketches: row `r` is the
/// `⌈sq.len()/8⌉` bytes at `rows[r·stride..]`, its result goes to `out[r]`.
///
/// # Errors
/// [`Error::BufferTooShort`] if `stride` is shorter than a sketch or `rows`
/// does not hold `out.len()` rows.
///
/// ```
/// let mut out = [0.0f32; 2];
/// tqkv::qjl::signed_sum_rows(&[1.0, 2.0], &[0b01, 0b10], 1, &mut out)?;
/// assert_eq!(out, [-1.0, 1.0]);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn signed_sum_rows(
    sq: &[f32],
    rows: &[u8],
    stride: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    signed_sum_rows_on(Backend::detect(), sq, rows, stride, out)
}

/// [`signed_sum_rows`] on a chosen backend.
///
/// # Errors
/// As [`signed_sum_rows`], plus [`Error::BackendUnavailable`].
pub fn signed_sum_rows_on(
    backend: Backend,
    sq: &[f32],
    rows: &[u8],
    stride: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    signed_sum_rows_in(backend.check()?, sq, rows, stride, out)
}

/// [`signed_sum_rows_on`] on a backend already checked.
pub(crate) fn signed_sum_rows_in(
    backend: Checked,
    sq: &[f32],
    rows: &[u8],
    stride: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    let bytes = sq.len().div_ceil(8);
    check_rows(bytes, rows.len(), stride, out.len())?;
    on_backend!(
        backend,
        signed_rows_with(sq, rows, stride, out, signed_sum_scalar),
        signed_rows_simd(sq, rows, stride, out)
    )
}

/// `acc[j] += Σ_r s_{r,j}·weights[r]` with `s = ±1` from the sign bits of
/// row `r` (`⌈acc.len()/8⌉` bytes at `rows[r·stride..]`): the adjoint of
/// [`signed_sum_rows`], used by attention to sum values in the sketch domain.
/// Backends sum in different orders: within `1e-5 · Σ_r |w_r|` of scalar.
///
/// # Errors
/// [`Error::BufferTooShort`] if `stride` is shorter than a sketch or `rows`
/// does not hold `weights.len()` rows.
///
/// ```
/// let mut acc = [0.0f32; 2];
/// tqkv::qjl::accumulate_signs_rows(&[0b01, 0b11], 1, &[1.0, 0.5], &mut acc)?;
/// assert_eq!(acc, [1.5, -0.5]);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn accumulate_signs_rows(
    rows: &[u8],
    stride: usize,
    weights: &[f32],
    acc: &mut [f32],
) -> Result<(), Error> {
    accumulate_signs_rows_on(Backend::detect(), rows, stride, weights, acc)
}

/// [`accumulate_signs_rows`] on a chosen backend.
///
/// # Errors
/// As [`accumulate_signs_rows`], plus [`Error::BackendUnavailable`].
pub fn accumulate_signs_rows_on(
    backend: Backend,
    rows: &[u8],
    stride: usize,
    weights: &[f32],
    acc: &mut [f32],
) -> Result<(), Error> {
    accumulate_signs_rows_in(backend.check()?, rows, stride, weights, acc)
}

/// [`accumulate_signs_rows_on`] on a backend already checked.
pub(crate) fn accumulate_signs_rows_in(
    backend: Checked,
    rows: &[u8],
    stride: usize,
    weights: &[f32],
    acc: &mut [f32],
) -> Result<(), Error> {
    check_rows(acc.len().div_ceil(8), rows.len(), stride, weights.len())?;
    on_backend!(
        backend,
        accumulate_signs_scalar(rows, stride, weights, acc),
        accumulate_signs_simd(rows, stride, weights, acc)
    )
}

#[cfg(target_arch = "x86_64")]
/// Whether `Σ|w|` is below 1e37 (so finite, and no NaN among the weights):
/// then kernels may sum `Σ ±w` as `2·Σ_{bit set} w − Σ w` without an
/// overflow the direct sum would not have, and without turning a ±∞ weight
/// into ∞ − ∞. Sixteen partial sums, so that it vectorises.
#[inline(always)]
pub(crate) fn weights_bounded(weights: &[f32]) -> bool {
    let mut parts = [0.0f32; 16];
    for chunk in weights.chunks(16) {
        for (p, &w) in parts.iter_mut().zip(chunk) {
            *p += w.abs();
        }
    }
    parts.iter().sum::<f32>() < 1e37
}

pub(crate) fn accumulate_signs_scalar(
    rows: &[u8],
    stride: usize,
    weights: &[f32],
    acc: &mut [f32],
) {
    for (r, &w) in weights.iter().enumerate() {
        let signs = &rows[r * stride..];
        for (j, a) in acc.iter_mut().enumerate() {
            let clear = !(signs[j / 8] >> (j % 8)) & 1;
            *a += f32::from_bits(w.to_bits() ^ ((clear as u32) << 31));
        }
    }
}

/// The tail of a row past the last whole vector, shared by the backends.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
fn accumulate_signs_tail(signs: &[u8], w: f32, acc: &mut [f32], from: usize) {
    for (j, a) in acc.iter_mut().enumerate().skip(from) {
        let clear = !(signs[j / 8] >> (j % 8)) & 1;
        *a += f32::from_bits(w.to_bits() ^ ((clear as u32) << 31));
    }
}
