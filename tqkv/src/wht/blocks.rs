//! The block-diagonal construction of the rotation, for the multiples of 8
//! that no Williamson product reaches (104, 136, 184, …): two passes of
//! normalised WHT blocks with a fixed interleave between them.
//!
//! # Exactly
//!
//! The blocks are the binary expansion of `d`, largest first (104 is
//! 64, 32, 8); each is a power of two of at least 8, since `d` is a
//! multiple of 8.
//! A pass runs the WHT on each block and multiplies it by the f32 nearest to
//! `1/√b` (`b` its length). Between the two passes, `x` is read as `d/8`
//! rows of 8 and written as its transpose: output `j` takes input
//! `(j mod k)·8 + ⌊j/k⌋`, `k = d/8`, so that every block of the second
//! pass draws from all over the vector; then a second sign diagonal `D₂`
//! (the signs of the rotation seeded with `!seed`, bitwise not). Without
//! `D₂` a single block would undo itself: for `d = 64`, `H₆₄ = H₈ ⊗ H₈`
//! and the transpose swaps the two factors, so `H·Π·H` is `64·Π`, a mere
//! permutation. `R = B·D₂·Π·B·D`; its inverse runs the same steps backwards
//! (`B` is symmetric).
//!
//! Every step is a WHT (bit-exact on every backend), a multiplication or a
//! move, so the result is the same on every CPU.

use super::fwht_in;
use crate::backend::Checked;

/// The blocks of `d`, largest first, as `(start, len)`.
fn blocks(d: usize) -> impl Iterator<Item = (usize, usize)> {
    let mut start = 0;
    (0..usize::BITS).rev().filter_map(move |bit| {
        let len = 1usize << bit;
        (d & len != 0).then(|| {
            let s = start;
            start += len;
            (s, len)
        })
    })
}

/// One pass: every block's WHT, scaled by `1/√b`.
fn pass(backend: Checked, x: &mut [f32]) {
    for (start, len) in blocks(x.len()) {
        let block = &mut x[start..start + len];
        // A power of two ≤ d ≤ MAX_DIM and a checked backend: cannot fail.
        let _ = fwht_in(backend, block);
        let s = (1.0 / libm::sqrt(len as f64)) as f32;
        block.iter_mut().for_each(|v| *v *= s);
    }
}

/// `x ← B·D₂·Π·B·x`, `D₂` applied by `flip`.
pub(super) fn forward(backend: Checked, x: &mut [f32], flip: impl Fn(&mut [f32])) {
    pass(backend, x);
    interleave(x, false);
    flip(x);
    pass(backend, x);
}

/// `x ← B·Πᵀ·D₂·B·x`, the inverse of [`forward`].
pub(super) fn inverse(backend: Checked, x: &mut [f32], flip: impl Fn(&mut [f32])) {
    pass(backend, x);
    flip(x);
    interleave(x, true);
    pass(backend, x);
}

/// `Π` (output `j` = input `(j mod k)·8 + ⌊j/k⌋`), or `Πᵀ`.
fn interleave(x: &mut [f32], transpose: bool) {
    let k = x.len() / 8;
    crate::stack::floats(x.len(), |tmp| {
        tmp.copy_from_slice(x);
        for j in 0..x.len() {
            let i = (j % k) * 8 + j / k;
            if transpose {
                x[i] = tmp[j];
            } else {
                x[j] = tmp[i];
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    #[test]
    fn the_blocks_are_the_binary_expansion() {
        let b: Vec<_> = super::blocks(104).collect();
        assert_eq!(b, [(0, 64), (64, 32), (96, 8)]);
        let b: Vec<_> = super::blocks(8).collect();
        assert_eq!(b, [(0, 8)]);
    }

    #[test]
    fn the_interleave_is_a_permutation_and_its_transpose_undoes_it() {
        for d in [8usize, 24, 104, 1016] {
            let orig: Vec<f32> = (0..d).map(|i| i as f32).collect();
            let mut x = orig.clone();
            super::interleave(&mut x, false);
            let mut seen = x.clone();
            seen.sort_by(f32::total_cmp);
            assert_eq!(seen, orig);
            // Output 1 takes input 8 (the second row's first element).
            if d > 8 {
                assert_eq!(x[1], 8.0);
            }
            super::interleave(&mut x, true);
            assert_eq!(x, orig);
        }
    }
}
