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
//!   `v = w(2p + 1)` of [`SplitMix64`](crate::rng::SplitMix64) seeded with
//!   the sketcher's seed (`w(k)` = the k-th output, 0-based), by Box–Muller in
//!   f64: `u₁ = ((u >> 11) + 1)·2⁻⁵³`, `u₂ = (v >> 11)·2⁻⁵³`,
//!   `ρ = √(−2 ln u₁)`, entry = `ρ·cos(2π u₂)` for even `e`, `ρ·sin(2π u₂)`
//!   for odd `e`, rounded to f32. Without `std`, rows are generated on the
//!   fly (O(m·d) Box–Muller pairs per call, no storage). Under `std`, a
//!   matrix of at most 2¹⁸ entries (1 MiB) is generated once per process
//!   and kept (the last eight such matrices), since generating an entry
//!   costs about 40 ns and reading one well under 1 ns; the values, and so
//!   every result, are the same either way.
//! - [`Projection::Hadamard`]: block `b` of `d` rows is `H·D_b` (entries ±1),
//!   `D_b` the sign diagonal of [`Rotation`](crate::Rotation) seeded with
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
//!   Hadamard needs a `d` that [`Rotation`](crate::Rotation) supports (a
//!   power of two, or a multiple of 8 with a Williamson–Kronecker Hadamard
//!   matrix, whose `H` then replaces the WHT's and `Hᵀ` its transpose), at
//!   most [`HADAMARD_MAX_DIM`].
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
mod bitplanes;
#[cfg(feature = "std")]
mod gaussian_memo;
#[cfg(target_arch = "aarch64")]
mod neon;
mod rows;
mod scalar;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod simd;
mod sketcher;

pub use bitplanes::{BitPlaneQuery, Rounding};
pub use rows::{
    accumulate_signs_rows, accumulate_signs_rows_on, hamming, hamming_on, signed_sum,
    signed_sum_on, signed_sum_rows, signed_sum_rows_on,
};
pub use sketcher::QjlSketcher;

#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::accumulate_signs_multi as avx2_accumulate_signs_multi;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use bitplanes::{Planes, plane_rows_with};
#[cfg(target_arch = "aarch64")]
pub(crate) use neon::accumulate_signs_multi as neon_accumulate_signs_multi;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) use rows::NIBBLE_SIGNS;
pub(crate) use rows::SignSets;
#[cfg(target_arch = "x86_64")]
pub(crate) use rows::weights_bounded;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use rows::{NIBBLE_MAX_SIGNS, nibble_sums_take};
pub(crate) use rows::{accumulate_signs_rows_in, signed_sum_in, signed_sum_rows_multi_in};
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use rows::{signed_rows_in_passes, signed_rows_with};
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use scalar::accumulate_signs_tail;

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
