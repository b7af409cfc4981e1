//! Under `std`: the Gaussian projection matrices generated so far in this
//! process, so that a sketcher's `m·d` Box–Muller entries (about 40 ns each:
//! f64 `ln`, `cos`, `sin`) are computed once rather than on every
//! projection. The values are the generator's own, so every result is the
//! same bit for bit with or without the memo.
//!
//! Bounded: matrices of at most [`MAX_FLOATS`] entries (1 MiB) are kept,
//! at most [`MAX_MATRICES`] of them (the oldest goes first); a larger
//! sketcher generates its entries on every call, as without `std`.

use std::sync::{Arc, Mutex};
use std::vec::Vec;

/// Entries of the largest matrix kept (`m·d ≤ 2¹⁸`: d = 512 at m = d).
pub(super) const MAX_FLOATS: usize = 1 << 18;
/// Matrices kept at once.
pub(super) const MAX_MATRICES: usize = 8;

/// `(seed, m, dim)` of a matrix and its entries, row-major.
type Entry = ((u64, usize, usize), Arc<[f32]>);

/// A list of kept matrices; the process has one, [`MEMO`].
pub(super) struct Memo(Mutex<Vec<Entry>>);

/// The process's matrices.
pub(super) static MEMO: Memo = Memo(Mutex::new(Vec::new()));

impl Memo {
    /// The entries of the `m × dim` Gaussian matrix seeded with `seed`,
    /// made by `generate` the first time (row-major, `m·dim` values);
    /// `None` when the matrix is too large to keep.
    pub(super) fn matrix(
        &self,
        seed: u64,
        m: usize,
        dim: usize,
        generate: impl FnOnce() -> Vec<f32>,
    ) -> Option<Arc<[f32]>> {
        if m.checked_mul(dim)? > MAX_FLOATS {
            return None;
        }
        let key = (seed, m, dim);
        if let Some((_, s)) = self.lock().iter().find(|(k, _)| *k == key) {
            return Some(s.clone());
        }
        // Generated outside the lock: two threads may both generate the
        // same matrix once; they get equal values either way.
        let entries: Arc<[f32]> = generate().into();
        let mut kept = self.lock();
        if !kept.iter().any(|(k, _)| *k == key) {
            if kept.len() == MAX_MATRICES {
                kept.remove(0);
            }
            kept.push((key, entries.clone()));
        }
        Some(entries)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        // A poisoned lock only means another thread panicked while holding
        // it; the list is still a list of finished matrices.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn a_kept_matrix_is_reused_and_the_oldest_goes_first() {
        let memo = Memo(Mutex::new(Vec::new()));
        let a = memo.matrix(1, 8, 8, || vec![1.0; 64]).unwrap();
        let again = memo.matrix(1, 8, 8, || panic!("generated twice")).unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        for seed in 2..=MAX_MATRICES as u64 {
            memo.matrix(seed, 8, 8, || vec![seed as f32; 64]).unwrap();
        }
        assert_eq!(memo.lock().len(), MAX_MATRICES);
        // One more evicts seed 1, the oldest; seed 2 stays.
        memo.matrix(99, 8, 8, || vec![0.0; 64]).unwrap();
        assert_eq!(memo.lock().len(), MAX_MATRICES);
        memo.matrix(2, 8, 8, || panic!("seed 2 was evicted"))
            .unwrap();
        let mut regenerated = false;
        memo.matrix(1, 8, 8, || {
            regenerated = true;
            vec![1.0; 64]
        })
        .unwrap();
        assert!(regenerated);
    }

    #[test]
    fn a_matrix_too_large_is_not_kept() {
        let memo = Memo(Mutex::new(Vec::new()));
        assert!(
            memo.matrix(1, 8, MAX_FLOATS / 8 + 1, || panic!("generated"))
                .is_none()
        );
        assert!(
            memo.matrix(1, usize::MAX, 2, || panic!("generated"))
                .is_none()
        );
        assert!(
            memo.matrix(1, 8, MAX_FLOATS / 8, || vec![0.0; MAX_FLOATS])
                .is_some()
        );
    }
}
