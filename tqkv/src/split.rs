//! How the `parallel` entry points cut work into ranges for their threads.

use std::vec::Vec;

/// Bounds of the ranges of `len` items shared by `threads`, from 0 to
/// `len`: each range `1/(2·threads)` of the items left (guided
/// self-scheduling), at least `min` unless fewer are left. The first ranges
/// are long and the last short, so the threads end close together and one
/// that starts late leaves its share to the others; the bounds depend only
/// on the arguments, never on the scheduling. No range for `len = 0`.
pub(crate) fn guided_bounds(len: usize, threads: usize, min: usize) -> Vec<usize> {
    let mut bounds = std::vec![0];
    let mut at = 0;
    while at < len {
        let rest = len - at;
        at += (rest / (2 * threads)).max(min).min(rest);
        bounds.push(at);
    }
    bounds
}
