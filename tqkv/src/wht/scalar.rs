//! The reference transform: plain loops in the canonical order.
//!
//! Stages with stride `h = 1, 2, 4, …, n/2`, in that order; each butterfly maps
//! `(a, b)` at indices `(i, i + h)` to `(a + b, a - b)`. Every other backend
//! performs exactly these IEEE operations on every element, so it must agree
//! with this one bit for bit.

/// In-place unnormalised WHT; `x.len()` must be a power of two (or 0/1).
pub(super) fn fwht(x: &mut [f32]) {
    stages(x, x.len());
}

/// `fwht` on every `len`-long row of `data` (`len` a power of two dividing
/// `data.len()`). Short rows (the Sylvester part of a Williamson product:
/// 4 at d = 80, 8 at d = 96) go stage by stage over the whole slice, in
/// one long loop per stage instead of a short one per row. Long rows go
/// one by one (measured faster for them).
pub(super) fn fwht_rows(data: &mut [f32], len: usize) {
    if len > 32 {
        for row in data.chunks_exact_mut(len) {
            fwht(row);
        }
    } else {
        stages(data, len);
    }
}

/// The stages of strides `1 … len/2` over all of `data` (`len` a power of
/// two dividing its length): a block of `2h` never straddles two rows of
/// `len`, so every element gets the butterflies of its own row's
/// transform, in order.
#[inline(always)]
fn stages(data: &mut [f32], len: usize) {
    let mut h = 1;
    while h < len {
        for block in data.chunks_exact_mut(2 * h) {
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
