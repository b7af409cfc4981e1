//! Zeroed work space on the stack, sized to the need.
//!
//! Encoders need a few vectors of `dim` floats. An array of the largest
//! dimension ([`MAX_DIM`](crate::quant::MAX_DIM), 16 KB) zeroed on every
//! call cost more than the encoding itself at d = 128 (a `memset` was 30 %
//! of `push`), so each call takes the smallest of a few sizes that holds
//! what it needs.

use crate::quant::MAX_DIM;

/// A buffer on a cache-line boundary: the kernels' 64-byte loads and
/// stores then never straddle two lines (a store that does cannot forward
/// to the next kernel's load of the same bytes, a stall on every register
/// of a pass over a just-written vector).
#[repr(C, align(64))]
struct Lines<T, const N: usize>([T; N]);

/// Runs `f` on `len` zeroed f32 (`len ≤ 2·MAX_DIM`; callers validate the
/// dimensions first, and a longer request gets `2·MAX_DIM`).
pub(crate) fn floats<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    if len <= 128 {
        f(&mut Lines([0.0f32; 128]).0[..len])
    } else if len <= 256 {
        f(&mut Lines([0.0f32; 256]).0[..len])
    } else if len <= 2048 {
        f(&mut Lines([0.0f32; 2048]).0[..len])
    } else {
        let mut buf = Lines([0.0f32; 2 * MAX_DIM]);
        let n = len.min(buf.0.len());
        f(&mut buf.0[..n])
    }
}

/// Runs `f` on `len` zeroed bytes (`len ≤ 8 + 2·MAX_DIM`, as [`floats`]).
pub(crate) fn bytes<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    if len <= 128 {
        f(&mut Lines([0u8; 128]).0[..len])
    } else if len <= 512 {
        f(&mut Lines([0u8; 512]).0[..len])
    } else {
        let mut buf = Lines([0u8; 8 + 2 * MAX_DIM]);
        let n = len.min(buf.0.len());
        f(&mut buf.0[..n])
    }
}
