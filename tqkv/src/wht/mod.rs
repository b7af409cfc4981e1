//! The fast Walsh–Hadamard transform (WHT), in place, on every backend.
//!
//! [`fwht`] computes the unnormalised transform `x ← H·x` with the Sylvester
//! ordering (`H_1 = [1]`, `H_2n = [[H_n, H_n], [H_n, −H_n]]`), so `H·H = n·I`.
//! For the orthonormal randomised rotation of the quantisers see
//! [`Rotation`].
//!
//! # Bit-exact on every backend
//!
//! Every backend performs the same butterflies in the same order: stages of
//! stride `h = 1, 2, 4, …, n/2`, each mapping `(a, b)` at `(i, i + h)` to
//! `(a + b, a − b)` with one IEEE rounding each. Register tiling, depth-first
//! blocking and the FMA form `x·(±1) + y` (exact product, one rounding) change
//! the schedule, not the arithmetic, so the scalar, AVX2, AVX-512 and NEON
//! results are identical bit for bit for every finite input. NaN and
//! infinities propagate by IEEE rules (`∞ − ∞` is NaN); which NaN payload comes
//! out may differ between backends, that it is NaN does not.
//!
//! # Lengths
//!
//! Lengths are powers of two from 1 to [`MAX_LEN`] (2^20). Anything else —
//! 0 included — is an [`Error`], never a panic.
//!
//! ```
//! use tqkv::wht;
//!
//! let mut x = [1.0f32, 0.0, 0.0, 0.0];
//! wht::fwht(&mut x)?;
//! assert_eq!(x, [1.0; 4]);
//! wht::fwht(&mut x)?; // H·H = n·I
//! assert_eq!(x, [4.0, 0.0, 0.0, 0.0]);
//! # Ok::<(), tqkv::Error>(())
//! ```

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod blocks;
#[cfg(target_arch = "aarch64")]
mod neon;
mod rotation;
mod scalar;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod simd;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod simd_factor;
mod williamson;

pub use rotation::{Rotation, RotationKind};

use crate::backend::{Checked, on_backend};
use crate::{Backend, Error};

/// The longest transform accepted: 2^20 f32 (4 MiB).
pub const MAX_LEN: usize = 1 << 20;

/// Checks that `len` is a power of two in `1..=MAX_LEN`.
pub(crate) fn check_len(len: usize) -> Result<(), Error> {
    if !len.is_power_of_two() {
        Err(Error::NotPowerOfTwo { len })
    } else if len > MAX_LEN {
        Err(Error::TooLong { len, max: MAX_LEN })
    } else {
        Ok(())
    }
}

/// In-place unnormalised WHT `x ← H·x` on the detected backend.
///
/// # Errors
/// [`Error::NotPowerOfTwo`] if `x.len()` is not a power of two (0 included),
/// [`Error::TooLong`] above [`MAX_LEN`]. On error `x` is untouched.
///
/// ```
/// let mut x = [1.0f32, 2.0, 3.0, 4.0];
/// tqkv::wht::fwht(&mut x)?;
/// assert_eq!(x, [10.0, -2.0, -4.0, 0.0]);
/// # Ok::<(), tqkv::Error>(())
/// ```
#[inline]
pub fn fwht(x: &mut [f32]) -> Result<(), Error> {
    fwht_on(Backend::detect(), x)
}

/// [`fwht`] on a chosen backend.
///
/// # Errors
/// As [`fwht`], plus [`Error::BackendUnavailable`] if `backend` cannot run on
/// this CPU.
///
/// ```
/// use tqkv::{wht, Backend};
///
/// let mut a = [3.0f32, -1.0, 0.5, 2.0, 8.0, 0.0, -4.0, 1.0];
/// let mut b = a;
/// wht::fwht_on(Backend::Scalar, &mut a)?;
/// wht::fwht_on(Backend::detect(), &mut b)?;
/// assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits));
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn fwht_on(backend: Backend, x: &mut [f32]) -> Result<(), Error> {
    fwht_in(backend.check()?, x)
}

/// [`fwht_on`] on a backend already checked.
pub(crate) fn fwht_in(backend: Checked, x: &mut [f32]) -> Result<(), Error> {
    check_len(x.len())?;
    on_backend!(backend, scalar::fwht(x), fwht(x))
}

/// The most f32 a fused rotation takes on any backend (16 registers of 16
/// lanes in one pass; AVX2 takes it in two passes).
pub(crate) const ONE_PASS_MAX: usize = 256;

/// How a one-pass rotation treats its vector around the transform.
#[derive(Clone, Copy)]
// Read by the vector kernels only (none on other architectures).
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
pub(crate) struct Around<'s> {
    /// The seed of the signs (the two-pass kernel draws its own words).
    pub(crate) seed: u64,
    /// Sign words of a one-pass rotation (bit `i % 64` of word `i / 64`
    /// negates element `i`).
    pub(crate) signs: &'s [u64; ONE_PASS_MAX / 64],
    /// Negate before the transform (`D` then `H`) or after it (`H` then `D`).
    pub(crate) signs_first: bool,
    /// A factor applied after the transform (before signs that come
    /// after), or none.
    pub(crate) scale: Option<f32>,
    /// Where the input is read instead of the vector rotated, and a factor
    /// each element is multiplied by as it is loaded (`x ← R·(s·v)`, the
    /// product rounded as `loops::scale_into` rounds it): a unit vector
    /// rotated without a pass of its own. Powers of two in one or two
    /// passes only; the vector is then only written. `None`: in place.
    pub(crate) source: Option<(&'s [f32], f32)>,
    /// The transform `F ⊗ H_L` (or its transpose, with `true`) with one
    /// Williamson factor `F`, and `L`; `None` for a Sylvester transform of
    /// the whole vector.
    pub(crate) factor: Option<(williamson::Factor, bool, usize)>,
}

/// `x ← s·H·D·x` or `x ← D·s·H·x` (see [`Around`]) in one load and one
/// store per register, where the backend can (a power of two from one
/// register to a pass's group of them, or in two passes up to
/// [`ONE_PASS_MAX`]; one Williamson factor on rows of a
/// quarter, a half or a whole register, in at most 16 registers); `false`,
/// with `x` untouched, elsewhere (and on the scalar backend). Bits as the
/// separate steps.
pub(crate) fn rotate_one_pass_in(backend: Checked, x: &mut [f32], around: &Around) -> bool {
    // The scalar backend keeps the separate steps (its reference).
    let scalar = |_: &mut [f32], _: &Around| false;
    on_backend!(backend, scalar(x, around), rotate_one_pass(x, around)).unwrap_or(false)
}

/// Dimensions for tests of the fused one-pass rotations: every power of
/// two they take (from one register, 8 on AVX2, 16 on AVX-512 and 4 on
/// NEON, to 256) and two that take the separate steps (80 and 96,
/// Williamson products).
#[cfg(test)]
pub(crate) fn one_pass_test_dims() -> impl proptest::strategy::Strategy<Value = usize> {
    proptest::sample::select(&[8usize, 16, 32, 64, 128, 256, 80, 96][..])
}

/// The sign bits of [`rotate_one_pass_in`]'s result, `8·bits.len()` of
/// them (bit `i % 8` of byte `i / 8` set where element `i` is above zero,
/// the bytes of `loops::sign_bits`), taken from the registers instead of
/// the stored vector, which is never written back: where the backend
/// rotates a power of two in one or two passes with registers of 8 lanes
/// or more (AVX2 and AVX-512 up to [`ONE_PASS_MAX`]). `x` is then left
/// unspecified; elsewhere `false`, with `x` untouched.
pub(crate) fn rotate_one_pass_signs_in(
    backend: Checked,
    x: &mut [f32],
    around: &Around,
    bits: &mut [u8],
) -> bool {
    let scalar = |_: &mut [f32], _: &Around, _: &mut [u8]| false;
    on_backend!(
        backend,
        scalar(x, around, bits),
        rotate_one_pass_signs(x, around, bits)
    )
    .unwrap_or(false)
}

/// [`rotate_one_pass_in`] for vectors longer than one pass with one
/// Williamson factor on rows of whole registers (576 = 36·16): two passes,
/// in place; `false`, with `x` untouched, elsewhere (and on the scalar
/// backend).
pub(crate) fn rotate_two_pass_in(backend: Checked, x: &mut [f32], around: &Around) -> bool {
    if around.source.is_some() {
        return false;
    }
    let scalar = |_: &mut [f32], _: &Around| false;
    on_backend!(backend, scalar(x, around), rotate_two_pass(x, around)).unwrap_or(false)
}

/// A Williamson factor's product on a checked backend (see `williamson`):
/// the same arithmetic on every backend.
pub(crate) fn product_in(
    backend: Checked,
    f: williamson::Factor,
    transpose: bool,
    x: &mut [f32],
    stride: usize,
) {
    // The sizes are the rotation's own (the factor's order times `stride`
    // divides `x.len()`), and `on_backend!` fails only for a backend of
    // another architecture, which `Checked` excludes.
    let _ = on_backend!(
        backend,
        williamson::product(f, transpose, x, stride),
        product(f, transpose, x, stride)
    );
}

/// In-place WHT of every `len`-long row of `data`, on the detected backend:
/// the batched form for many heads or tokens of one dimension.
///
/// # Errors
/// `len` must be valid for [`fwht`]; [`Error::RaggedRows`] if `data.len()` is
/// not a multiple of `len`. An empty `data` is fine (no rows). On error
/// `data` is untouched.
///
/// ```
/// let mut rows = [1.0f32, 0.0, 0.0, 1.0];
/// tqkv::wht::fwht_rows(&mut rows, 2)?;
/// assert_eq!(rows, [1.0, 1.0, 1.0, -1.0]);
/// # Ok::<(), tqkv::Error>(())
/// ```
#[inline]
pub fn fwht_rows(data: &mut [f32], len: usize) -> Result<(), Error> {
    fwht_rows_on(Backend::detect(), data, len)
}

/// [`fwht_rows`] on a chosen backend.
///
/// # Errors
/// As [`fwht_rows`], plus [`Error::BackendUnavailable`].
///
/// ```
/// use tqkv::{wht, Backend};
///
/// let mut rows = [0.5f32; 64];
/// wht::fwht_rows_on(Backend::Scalar, &mut rows, 16)?;
/// assert_eq!(rows[0], 8.0);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn fwht_rows_on(backend: Backend, data: &mut [f32], len: usize) -> Result<(), Error> {
    fwht_rows_in(backend.check()?, data, len)
}

/// [`fwht_rows_on`] on a backend already checked.
pub(crate) fn fwht_rows_in(backend: Checked, data: &mut [f32], len: usize) -> Result<(), Error> {
    check_len(len)?;
    if !data.len().is_multiple_of(len) {
        return Err(Error::RaggedRows {
            len: data.len(),
            row_len: len,
        });
    }
    on_backend!(backend, scalar::fwht_rows(data, len), fwht_rows(data, len))
}
