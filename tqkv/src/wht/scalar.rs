//! The reference transform: plain loops in the canonical order.
//!
//! Stages with stride `h = 1, 2, 4, …, n/2`, in that order; each butterfly maps
//! `(a, b)` at indices `(i, i + h)` to `(a + b, a - b)`. Every other backend
//! performs exactly these IEEE operations on every element, so it must agree
//! with this one bit for bit.

/// In-place unnormalised WHT; `x.len()` must be a power of two (or 0/1).
pub(super) fn fwht(x: &mut [f32]) {
    let n = x.len();
    let mut h = 1;
    while h < n {
        for block in x.chunks_exact_mut(2 * h) {
            let (lo, hi) = block.split_at_mut(h);
            for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
                let (u, v) = (*a, *b);
                *a = u + v;
                *b = u - v;
            }
        }
        h *= 2;
    }
}

/// `fwht` on every `len`-long row of `data` (`len` divides `data.len()`).
pub(super) fn fwht_rows(data: &mut [f32], len: usize) {
    for row in data.chunks_exact_mut(len) {
        fwht(row);
    }
}
