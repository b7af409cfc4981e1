//! Euclidean norms in f64, summed in a fixed order.
//!
//! Eight partial sums, element `i` into sum `i % 8`, then the eight added
//! in order: the same operations on every CPU (so stored norms stay
//! bit-exact across backends), and eight independent chains instead of one,
//! which the compiler vectorises (one chain of 128 dependent f64 adds cost
//! more than the rest of encoding a 128-wide head).

/// `‖x‖₂` in f64.
pub(crate) fn l2(x: &[f32]) -> f64 {
    let mut parts = [0.0f64; 8];
    let mut chunks = x.chunks_exact(8);
    for chunk in &mut chunks {
        for (p, &v) in parts.iter_mut().zip(chunk) {
            *p += v as f64 * v as f64;
        }
    }
    for (p, &v) in parts.iter_mut().zip(chunks.remainder()) {
        *p += v as f64 * v as f64;
    }
    libm::sqrt(parts.iter().sum())
}

#[cfg(test)]
mod tests {
    #[test]
    fn l2_is_the_norm() {
        assert_eq!(super::l2(&[]), 0.0);
        assert_eq!(super::l2(&[3.0, 4.0]), 5.0);
        let x: std::vec::Vec<f32> = (0..37).map(|i| i as f32 - 18.0).collect();
        let want: f64 = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        assert!((super::l2(&x) - want).abs() <= 1e-12 * want);
        let big = f32::MAX as f64 * 2f64.sqrt();
        assert!((super::l2(&[f32::MAX, f32::MAX]) - big).abs() <= 1e-15 * big);
    }
}
