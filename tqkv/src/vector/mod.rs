//! The one small vector abstraction of the kernels: a register of f32
//! lanes with the operations every family needs, one implementation per
//! architecture (`F32x8` for AVX2, `F32x16` for AVX-512, `F32x4` for
//! NEON). Each kernel family extends it with what only it needs (the
//! transform's in-register butterflies, the codebook's lookups) and writes
//! its algorithm once over the extended trait.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;

#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::{F32x8, sign_mask};
#[cfg(target_arch = "x86_64")]
pub(crate) use avx512::F32x16;
#[cfg(target_arch = "aarch64")]
pub(crate) use neon::F32x4;

/// `LANES` f32 in one register.
///
/// # Safety
///
/// Implementors use the instructions of one backend. Every method may be
/// called only where that backend's target features are available (inside
/// its `#[target_feature]` kernels, which `on_backend!` reaches only with
/// the proof), and `load`/`store` need `LANES` valid f32 at the pointer.
pub(crate) unsafe trait F32Vector: Copy {
    /// f32 lanes per register (a power of two).
    const LANES: usize;
    /// Loads `LANES` f32 from `p` (no alignment needed).
    unsafe fn load(p: *const f32) -> Self;
    /// Stores `LANES` f32 to `p` (no alignment needed).
    unsafe fn store(self, p: *mut f32);
    /// All lanes 0.
    unsafe fn zero() -> Self;
    /// All lanes `v`.
    unsafe fn splat(v: f32) -> Self;
    /// Lane-wise `self + other`, one rounding.
    unsafe fn add(self, other: Self) -> Self;
    /// Lane-wise `self − other`, one rounding.
    unsafe fn sub(self, other: Self) -> Self;
    /// Lane-wise `acc + self·b` with one rounding (a fused multiply-add).
    unsafe fn mul_add(self, b: Self, acc: Self) -> Self;
    /// Lane-wise `self·other`, one rounding.
    unsafe fn mul(self, other: Self) -> Self;
    /// `self` with lane `i` negated (its sign bit flipped) where bit `i` of
    /// `bits` is set (bits `LANES` and up are ignored).
    unsafe fn negate_where(self, bits: u32) -> Self;
    /// Bit `i` set where lane `i` is greater than zero (clear for ±0 and
    /// NaN, as `x > 0.0`); bits `LANES` and up clear.
    unsafe fn positive_bits(self) -> u32;
    /// The sum of the lanes (in the backend's fixed order).
    unsafe fn sum(self) -> f32;
    /// `sums[i] += x[i]²` in f64 for the `LANES` f32 at `x` and f64 at
    /// `sums`, each with one rounding: a fused multiply-add, and the same
    /// bits as a product then a sum, since the square of an f32 is exact
    /// in f64.
    unsafe fn add_squares_f64(x: *const f32, sums: *mut f64);
}
