//! Zeroed work space on the stack, sized to the need.
//!
//! Encoders need a few vectors of `dim` floats. An array of the largest
//! dimension ([`MAX_DIM`], 16 KB) zeroed on every call cost more than the
//! encoding itself at d = 128 (a `memset` was 30 % of `push`), so each call
//! takes the smallest of a few sizes that holds what it needs.

use crate::quant::MAX_DIM;

/// A buffer on a cache-line boundary: the kernels' 64-byte loads and
/// stores then never straddle two lines (a store that does cannot forward
/// to the next kernel's load of the same bytes, a stall on every register
/// of a pass over a just-written vector).
#[repr(C, align(64))]
struct Lines<T, const N: usize>([T; N]);

/// Runs `f` on `len` zeroed f32 (`len ≤ 2·MAX_DIM`; callers validate the
/// dimensions first, and a longer request gets `2·MAX_DIM`).
#[inline]
pub(crate) fn floats<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    if len <= 128 {
        on_lines::<f32, 128, R>(len, f)
    } else if len <= 256 {
        on_lines::<f32, 256, R>(len, f)
    } else if len <= 384 {
        // A push's key and value at d = 128 (mse 128, prod 256).
        on_lines::<f32, 384, R>(len, f)
    } else if len <= 640 {
        // 576 (latent keys) and 640 without zeroing 8 KB.
        on_lines::<f32, 640, R>(len, f)
    } else if len <= 2048 {
        on_lines::<f32, 2048, R>(len, f)
    } else {
        on_lines::<f32, { 2 * MAX_DIM }, R>(len, f)
    }
}

/// The most elements [`bytes`] gives: four rounded queries of the largest
/// dimension (a group of the int8 multi-query scores), which also holds
/// the int8 row kernels' work space (`codebook::int8_simd::scratch_len`,
/// at most about `2.75·MAX_DIM`). Tested against both.
pub(crate) const BYTES_MAX: usize = 4 * MAX_DIM;

/// Runs `f` on `len ≤` [`BYTES_MAX`] zeroed bytes (callers size `len` from
/// validated dimensions; a longer request would get `BYTES_MAX`): the
/// rounded queries and the work space of the int8 scores. Sizes up to
/// 4 KB cover every head dimension up to 1,024 without zeroing 16 KB.
#[inline]
pub(crate) fn bytes<T: Copy + Default, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    if len <= 256 {
        on_lines::<T, 256, R>(len, f)
    } else if len <= 512 {
        on_lines::<T, 512, R>(len, f)
    } else if len <= 1024 {
        on_lines::<T, 1024, R>(len, f)
    } else if len <= 4096 {
        on_lines::<T, 4096, R>(len, f)
    } else {
        on_lines::<T, BYTES_MAX, R>(len, f)
    }
}

/// `f` on the first `min(len, N)` of `N` zeroed values. Not inlined: each
/// size gets a frame of its own (one frame holding every size's array made
/// each call probe and reserve 32 KB of stack).
#[inline(never)]
fn on_lines<T: Copy + Default, const N: usize, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let mut buf = Lines([T::default(); N]);
    f(&mut buf.0[..len.min(N)])
}
