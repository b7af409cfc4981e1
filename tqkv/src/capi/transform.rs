//! The Walsh–Hadamard transform and the rotation.

use super::*;

/// In-place unnormalised Walsh–Hadamard transform of `x[0..n]`.
///
/// # Safety
/// `x` is valid for `n` floats (or NULL with `n` = 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_fwht(x: *mut f32, n: usize) -> Status {
    // SAFETY: the caller's contract (header).
    run(|| wht::fwht(unsafe { slice_mut(x, n) }?).st())
}

/// [`tqkv_fwht`] on a chosen backend.
///
/// # Safety
/// As [`tqkv_fwht`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_fwht_on(backend: i32, x: *mut f32, n: usize) -> Status {
    // SAFETY: the caller's contract (header).
    run(|| wht::fwht_on(backend_of(backend)?, unsafe { slice_mut(x, n) }?).st())
}

/// The transform of every `len`-long row of `x[0..total]`.
///
/// # Safety
/// `x` is valid for `total` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_fwht_rows(x: *mut f32, total: usize, len: usize) -> Status {
    // SAFETY: the caller's contract (header).
    run(|| wht::fwht_rows(unsafe { slice_mut(x, total) }?, len).st())
}

/// `x ← H·D·x/√dim`, the seeded rotation (`dim` a power of two, or a
/// multiple of 8 up to 4096: see `Rotation`).
///
/// # Safety
/// `x` is valid for `dim` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_rotate(x: *mut f32, dim: usize, seed: u64) -> Status {
    run(|| {
        let rot = Rotation::new(dim, seed).st()?;
        // SAFETY: the caller's contract (header).
        rot.rotate(unsafe { slice_mut(x, dim) }?).st()
    })
}

/// The inverse of [`tqkv_rotate`] with the same seed.
///
/// # Safety
/// `x` is valid for `dim` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_unrotate(x: *mut f32, dim: usize, seed: u64) -> Status {
    run(|| {
        let rot = Rotation::new(dim, seed).st()?;
        // SAFETY: the caller's contract (header).
        rot.unrotate(unsafe { slice_mut(x, dim) }?).st()
    })
}
