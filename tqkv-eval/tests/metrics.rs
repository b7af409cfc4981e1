//! Quality measures and statistics: hand-worked cases, textbook values,
//! naive references and properties.

use proptest::prelude::*;
use tqkv::Error;
use tqkv::rng::SplitMix64;
use tqkv_eval::metrics::synth::{MAX_OUTLIERS, Role, Synthetic, Tail};
use tqkv_eval::metrics::{
    ErrorVector, Geometric, MannWhitney, kl_attention, kl_probabilities, mann_whitney_in, median,
};
use tqkv_eval::metrics::{Statistic, bootstrap_ci};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

// ---------------------------------------------------------------- KL

#[test]
fn kl_of_known_distributions() {
    // p = (½, ½), q = (¾, ¼): ½ ln(½/¾) + ½ ln(½/¼) = ½ ln(4/3).
    let kl = kl_attention(&[0.0, 0.0], &[3f32.ln(), 0.0]).unwrap();
    assert!(close(kl, 0.5 * (4.0f64 / 3.0).ln(), 1e-7), "{kl}");
    // p = (0.1, 0.2, 0.7), q uniform: Σ p ln(3p).
    let p = [0.1f64, 0.2, 0.7];
    let logits: Vec<f32> = p.iter().map(|v| v.ln() as f32).collect();
    let want: f64 = p.iter().map(|v| v * (3.0 * v).ln()).sum();
    let kl = kl_attention(&logits, &[5.0, 5.0, 5.0]).unwrap();
    assert!(close(kl, want, 1e-6), "{kl} vs {want}");
    // Limit: a one-hot reference against the uniform over n gives ln n.
    let mut peaked = [0.0f32; 8];
    peaked[5] = 60.0;
    let kl = kl_attention(&peaked, &[0.0; 8]).unwrap();
    assert!(close(kl, 8f64.ln(), 1e-9), "{kl}");
    // Stable for huge logits: no overflow, the shift does not matter.
    let a = [1e4f32, 1e4 - 1.0, 1e4 - 2.0];
    let b = [-5.0f32, -6.0, -7.0];
    assert!(kl_attention(&a, &b).unwrap() < 1e-9);
}

#[test]
fn kl_bad_input() {
    assert_eq!(
        kl_attention(&[1.0], &[1.0, 2.0]),
        Err(Error::LengthMismatch {
            expected: 1,
            found: 2
        })
    );
    assert!(matches!(
        kl_attention(&[], &[]),
        Err(Error::InvalidParameter(_))
    ));
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        assert_eq!(
            kl_attention(&[0.0, bad], &[0.0, 0.0]),
            Err(Error::NonFinite)
        );
        assert_eq!(
            kl_attention(&[0.0, 0.0], &[bad, 0.0]),
            Err(Error::NonFinite)
        );
    }
}

proptest! {
    #[test]
    fn kl_is_nonnegative_zero_iff_equal(
        a in prop::collection::vec(-20.0f32..20.0, 1..200),
        shift in -50.0f32..50.0,
        seed in any::<u64>(),
    ) {
        let kl = kl_attention(&a, &a).unwrap();
        prop_assert_eq!(kl, 0.0);
        // A constant shift is the same distribution.
        let shifted: Vec<f32> = a.iter().map(|v| v + shift).collect();
        prop_assert!(kl_attention(&a, &shifted).unwrap() < 1e-9);
        // A clearly different distribution is strictly positive and never
        // negative.
        let mut g = SplitMix64::new(seed);
        let b: Vec<f32> = a.iter().map(|v| v + ((g.next_u64() % 2001) as f32 - 1000.0) / 250.0).collect();
        let kl = kl_attention(&a, &b).unwrap();
        prop_assert!(kl >= 0.0);
        let spread = b.iter().zip(&a).map(|(x, y)| x - y).fold((f32::MAX, f32::MIN), |(lo, hi), d| (lo.min(d), hi.max(d)));
        // Strictly positive where the reference puts real mass on every
        // token (logits within 10 of each other, so each probability is
        // above e^-10/n): with logits 35 apart the smaller probability is
        // 1e-16 and the true divergence is below f64 resolution (a seed
        // found 18.03 / −17.30).
        let range = a.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        if a.len() > 1 && spread.1 - spread.0 > 1.0 && range.1 - range.0 < 10.0 {
            prop_assert!(kl > 0.0);
        }
    }
}

// ---------------------------------------------------------------- geometry

/// The softmax of `s` in f32, as a cache's attention returns it.
fn softmax_f32(s: &[f32]) -> Vec<f32> {
    let m = s.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let e: Vec<f64> = s.iter().map(|&v| ((v - m) as f64).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|&v| (v / z) as f32).collect()
}

proptest! {
    /// KL from probabilities agrees with KL from the scores behind them, up
    /// to the f32 rounding of the probabilities (relative 2^-24 each, so an
    /// absolute error of a few 1e-7 on the divergence).
    #[test]
    fn kl_from_probabilities_matches_kl_from_scores(
        pairs in prop::collection::vec((-8.0f32..8.0, -8.0f32..8.0), 1..300)
    ) {
        let (a, b): (Vec<f32>, Vec<f32>) = pairs.into_iter().unzip();
        let want = kl_attention(&a, &b).unwrap();
        let got = kl_probabilities(&a, &softmax_f32(&b)).unwrap();
        prop_assert!(close(got, want, 1e-6 + 1e-5 * want), "{got} vs {want}");
    }
}

#[test]
fn kl_from_probabilities_bad_input() {
    assert!(matches!(
        kl_probabilities(&[0.0], &[0.5, 0.5]),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        kl_probabilities(&[], &[]),
        Err(Error::InvalidParameter(_))
    ));
    assert_eq!(
        kl_probabilities(&[0.0, 1.0], &[f32::NAN, 1.0]),
        Err(Error::NonFinite)
    );
    assert!(matches!(
        kl_probabilities(&[0.0, 1.0], &[-0.1, 1.1]),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        kl_probabilities(&[0.0, 1.0], &[0.0, 0.0]),
        Err(Error::InvalidParameter(_))
    ));
    // An underflowed probability is finite, not infinite, in the divergence.
    let kl = kl_probabilities(&[0.0, -200.0], &[1.0, 0.0]).unwrap();
    assert!(kl.is_finite() && kl < 1e-80, "{kl}");
}

#[test]
fn geometric_hand_cases() {
    let g = Geometric::of(&[1.0, 0.0], &[0.0, 3.0]).unwrap();
    assert_eq!(g.direction, 1.0);
    assert_eq!(g.norm_ratio, 3.0);
    assert!(close(g.relative_l2, 10f64.sqrt(), 1e-12));
    let g = Geometric::of(&[1.0, 2.0, 2.0], &[-1.0, -2.0, -2.0]).unwrap();
    assert_eq!((g.direction, g.norm_ratio, g.relative_l2), (2.0, 1.0, 2.0));
    let g = Geometric::of(&[1.0, 2.0, 2.0], &[1.0, 2.0, 2.0]).unwrap();
    assert_eq!((g.direction, g.norm_ratio, g.relative_l2), (0.0, 1.0, 0.0));
    // 45°: 1 − cos = 1 − 1/√2.
    let g = Geometric::of(&[1.0, 0.0], &[1.0, 1.0]).unwrap();
    assert!(close(
        g.direction,
        1.0 - std::f64::consts::FRAC_1_SQRT_2,
        1e-12
    ));
    assert!(matches!(
        Geometric::of(&[0.0, 0.0], &[1.0, 0.0]),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        Geometric::of(&[1.0, 0.0], &[0.0, 0.0]),
        Err(Error::InvalidParameter(_))
    ));
    assert_eq!(Geometric::of(&[1.0], &[f32::NAN]), Err(Error::NonFinite));
    assert!(matches!(
        Geometric::of(&[1.0], &[1.0, 2.0]),
        Err(Error::LengthMismatch { .. })
    ));
}

#[test]
fn six_d_distance_is_the_norm_of_the_scaled_components() {
    let e = ErrorVector {
        k_direction: 0.02,
        k_norm: 0.03,
        v_direction: 0.08,
        v_norm: 0.04,
        kl: 0.005,
        output: 0.12,
    };
    // Worked by hand: 0.04 + 0.0009 + 0.16 + 0.0016 + 0.01 + 0.0144.
    let want = (0.04f64 + 0.0009 + 0.16 + 0.0016 + 0.01 + 0.0144).sqrt();
    assert!(close(e.distance(), want, 1e-12), "{}", e.distance());
    assert_eq!(ErrorVector::default().distance(), 0.0);
    // 2(1 − cos) is the squared chord between unit directions.
    let g = Geometric::of(&[1.0, 0.0], &[0.6, 0.8]).unwrap();
    let chord2 = (1.0f64 - 0.6).powi(2) + 0.8f64.powi(2);
    assert!(close(2.0 * g.direction, chord2, 1e-7));
}

// ---------------------------------------------------------------- Mann–Whitney

/// The test on scratch from the test harness (the crate's allocating
/// `mann_whitney` is the same call and needs `alloc`).
fn mw(a: &[f64], b: &[f64]) -> Result<MannWhitney, Error> {
    let t = mann_whitney_in(a, b, &mut vec![0.0; a.len() + b.len()]);
    assert_eq!(t, tqkv_eval::metrics::mann_whitney(a, b));
    t
}

#[test]
fn mann_whitney_worked_by_hand() {
    // a = {1, 2, 4}, b = {3, 5, 6}: ranks of a 1, 2, 4, R = 7, U = 7 − 6 = 1;
    // σ² = 3·3/12·7 = 5.25, Z = (1 − 4.5)/√5.25 = −1.52753,
    // p = 2·(1 − Φ(1.52753)) = 0.12663, r = Z/√6 = −0.62361.
    let t = mw(&[1.0, 2.0, 4.0], &[3.0, 5.0, 6.0]).unwrap();
    assert_eq!(t.u, 1.0);
    assert!(close(t.z, -1.52753, 1e-5), "{}", t.z);
    assert!(close(t.p_value, 0.12663, 1e-5), "{}", t.p_value);
    assert!(close(t.effect_size, -0.62361, 1e-5));

    // With ties: a = {1, 2, 2, 3}, b = {2, 3, 4}. Sorted: 1a 2a 2a 2b 3a 3b 4b,
    // midranks 1, 3, 3, 3, 5.5, 5.5, 7; R_a = 12.5, U = 12.5 − 10 = 2.5.
    // Ties t = 3 and t = 2: Σ(t³ − t) = 30; σ² = 4·3/12·(8 − 30/42) =
    // 7.285714; Z = (2.5 − 6)/2.699206 = −1.296677; r = Z/√7 = −0.490098.
    let t = mw(&[1.0, 2.0, 2.0, 3.0], &[2.0, 3.0, 4.0]).unwrap();
    assert_eq!(t.u, 2.5);
    assert!(close(t.z, -1.296677, 1e-6), "{}", t.z);
    assert!(close(t.effect_size, -0.490098, 1e-6));
    // Textbook normal tail: p = 2·(1 − Φ(1.296677)) = 0.194738.
    assert!(close(t.p_value, 0.194738, 1e-5), "{}", t.p_value);

    // Every value tied: no evidence either way.
    let t = mw(&[5.0; 4], &[5.0; 3]).unwrap();
    assert_eq!((t.u, t.z, t.p_value), (6.0, 0.0, 1.0));
    // ±0 are one value.
    let t = mw(&[0.0, 1.0], &[-0.0, 1.0]).unwrap();
    assert_eq!(t.z, 0.0);
}

#[test]
fn mann_whitney_bad_input() {
    assert!(matches!(mw(&[], &[1.0]), Err(Error::InvalidParameter(_))));
    assert_eq!(mw(&[f64::NAN], &[1.0]), Err(Error::NonFinite));
    assert_eq!(
        mann_whitney_in(&[1.0, 2.0], &[3.0], &mut [0.0; 2]),
        Err(Error::BufferTooShort {
            needed: 3,
            found: 2
        })
    );
}

/// U by counting pairs, and Z with ranks by counting, O(n²).
fn naive_mann_whitney(a: &[f64], b: &[f64]) -> (f64, f64) {
    let mut u = 0.0;
    for &x in a {
        for &y in b {
            u += if x > y {
                1.0
            } else if x == y {
                0.5
            } else {
                0.0
            };
        }
    }
    let all: Vec<f64> = a.iter().chain(b).copied().collect();
    let n = all.len() as f64;
    let mut ties = 0.0;
    let mut seen: Vec<f64> = Vec::new();
    for &v in &all {
        if !seen.contains(&v) {
            seen.push(v);
            let t = all.iter().filter(|&&w| w == v).count() as f64;
            ties += t * t * t - t;
        }
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let var = na * nb / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    let z = if var > 0.0 {
        (u - na * nb / 2.0) / var.sqrt()
    } else {
        0.0
    };
    (u, z)
}

proptest! {
    #[test]
    fn mann_whitney_matches_naive_and_is_antisymmetric(
        a in prop::collection::vec(-4i32..4, 1..40),
        b in prop::collection::vec(-4i32..4, 1..40),
        scale in prop::sample::select(vec![1.0f64, 0.5, 1e-3, 1e6]),
    ) {
        // Small integer ranges force plenty of ties.
        let a: Vec<f64> = a.iter().map(|&v| v as f64 * scale).collect();
        let b: Vec<f64> = b.iter().map(|&v| v as f64 * scale).collect();
        let ab = mw(&a, &b).unwrap();
        let ba = mw(&b, &a).unwrap();
        let (u, z) = naive_mann_whitney(&a, &b);
        prop_assert_eq!(ab.u, u);
        prop_assert!(close(ab.z, z, 1e-9 * (1.0 + z.abs())), "{} vs {}", ab.z, z);
        prop_assert_eq!(ab.u + ba.u, (a.len() * b.len()) as f64);
        prop_assert!(close(ab.z, -ba.z, 1e-12));
        prop_assert!(close(ab.effect_size, -ba.effect_size, 1e-12));
        prop_assert!(close(ab.p_value, ba.p_value, 1e-12));
        prop_assert!((0.0..=1.0).contains(&ab.p_value));
    }
}

// ---------------------------------------------------------------- median, bootstrap

#[test]
fn median_cases() {
    assert_eq!(median(&mut [7.0]).unwrap(), 7.0);
    assert_eq!(median(&mut [9.0, -1.0, 3.0, 5.0, 0.0]).unwrap(), 3.0);
    assert_eq!(median(&mut [1.0, 10.0]).unwrap(), 5.5);
    assert_eq!(median(&mut [f64::MAX, f64::MAX]).unwrap(), f64::MAX);
    assert!(matches!(median(&mut []), Err(Error::InvalidParameter(_))));
    assert_eq!(median(&mut [1.0, f64::NAN]), Err(Error::NonFinite));
}

fn normals(seed: u64, n: usize, mean: f64) -> Vec<f64> {
    let mut g = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let u1 = ((g.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let u2 = (g.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            mean + (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        })
        .collect()
}

#[test]
fn bootstrap_covers_the_true_median_at_its_level() {
    // 200 seeded experiments: the 90% interval of the median of 101 normal
    // draws should cover the true median 0 about 90% of the time; the
    // binomial(200, 0.9) standard deviation is 4.2, so [0.80, 0.97] is a
    // ±2.5σ band that a working bootstrap passes and a broken one (always
    // empty, always one-sided, wrong quantiles) fails.
    let mut covered = 0;
    for e in 0..200u64 {
        let x = normals(1000 + e, 101, 0.0);
        let ci = bootstrap_ci(&[&x], Statistic::Median, 0.9, 500, e).unwrap();
        assert!(ci.lower <= ci.estimate && ci.estimate <= ci.upper);
        if ci.lower <= 0.0 && 0.0 <= ci.upper {
            covered += 1;
        }
    }
    let rate = covered as f64 / 200.0;
    assert!((0.80..=0.97).contains(&rate), "coverage {rate}");
}

#[test]
fn bootstrap_ratio_of_medians_and_mean() {
    let a = normals(5, 400, 20.0);
    let b = normals(6, 300, 10.0);
    let ci = bootstrap_ci(&[&a, &b], Statistic::RatioOfMedians, 0.95, 2000, 3).unwrap();
    assert!(ci.lower < 2.0 && 2.0 < ci.upper, "{ci:?}");
    assert!(ci.upper - ci.lower < 0.1, "{ci:?}");
    let again = bootstrap_ci(&[&a, &b], Statistic::RatioOfMedians, 0.95, 2000, 3).unwrap();
    assert_eq!(ci, again);
    let ci = bootstrap_ci(&[&a], Statistic::Mean, 0.95, 2000, 3).unwrap();
    // Standard error 1/√400 = 0.05: the interval is about ±0.1 wide.
    assert!(
        ci.lower < 20.0 && 20.0 < ci.upper && ci.upper - ci.lower < 0.3,
        "{ci:?}"
    );
}

#[test]
fn bootstrap_bad_input() {
    let x = [1.0, 2.0];
    for (samples, stat, level, resamples) in [
        (vec![&x[..]], Statistic::RatioOfMedians, 0.95, 10),
        (vec![&x[..], &x[..]], Statistic::Median, 0.95, 10),
        (vec![&x[..0]], Statistic::Median, 0.95, 10),
        (vec![&x[..]], Statistic::Median, 1.0, 10),
        (vec![&x[..]], Statistic::Median, 0.0, 10),
        (vec![&x[..]], Statistic::Median, f64::NAN, 10),
        (vec![&x[..]], Statistic::Median, 0.95, 0),
    ] {
        assert!(matches!(
            bootstrap_ci(&samples, stat, level, resamples, 1),
            Err(Error::InvalidParameter(_))
        ));
    }
    assert_eq!(
        bootstrap_ci(&[&[1.0, f64::INFINITY][..]], Statistic::Median, 0.9, 10, 1),
        Err(Error::NonFinite)
    );
}

proptest! {
    #[test]
    fn bootstrap_interval_contains_the_statistic(
        x in prop::collection::vec(-1e3f64..1e3, 5..120),
        seed in any::<u64>(),
        level in 0.5f64..0.99,
    ) {
        let ci = bootstrap_ci(&[&x], Statistic::Median, level, 400, seed).unwrap();
        prop_assert!(ci.lower <= ci.estimate && ci.estimate <= ci.upper, "{:?}", ci);
        let ci = bootstrap_ci(&[&x], Statistic::Mean, level, 400, seed).unwrap();
        prop_assert!(ci.lower <= ci.estimate && ci.estimate <= ci.upper, "{:?}", ci);
    }
}

// ---------------------------------------------------------------- synthetic data

fn moments(x: &[f32]) -> (f64, f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let m4 = x.iter().map(|&v| (v as f64 - mean).powi(4)).sum::<f64>() / n;
    (mean, var, m4 / (var * var))
}

#[test]
fn synthetic_tails_have_unit_variance_and_their_kurtosis() {
    let tokens = 2000;
    for (tail, kurt_lo, kurt_hi) in [
        (Tail::Gaussian, 2.85, 3.15),
        (Tail::Laplace, 5.3, 6.7),
        // t5: kurtosis 3 + 6/(ν − 4) = 9 in theory, but its sample kurtosis
        // converges slowly; t3: infinite, so only "heavy".
        (Tail::StudentT { nu: 5 }, 5.0, 30.0),
        (Tail::StudentT { nu: 3 }, 8.0, f64::INFINITY),
    ] {
        let s = Synthetic {
            dim: 128,
            tail,
            rank: None,
            outliers: 0,
            seed: 11,
        };
        let mut x = vec![0.0f32; tokens * 128];
        s.fill(Role::Value, 3, 0, &mut x).unwrap();
        let (mean, var, kurt) = moments(&x);
        assert!(mean.abs() < 0.02, "{tail:?} mean {mean}");
        if tail != (Tail::StudentT { nu: 3 }) {
            assert!((var - 1.0).abs() < 0.05, "{tail:?} var {var}");
        } else {
            // Infinite fourth moment: check the median of |x| instead,
            // 0.7649 · √(1/3) = 0.4416 for the unit-variance t3.
            let mut a: Vec<f64> = x.iter().map(|v| v.abs() as f64).collect();
            let m = median(&mut a).unwrap();
            assert!((m - 0.4416).abs() < 0.01, "t3 median |x| {m}");
        }
        assert!(
            (kurt_lo..kurt_hi).contains(&kurt),
            "{tail:?} kurtosis {kurt}"
        );
    }
}

/// Rank of a row-major matrix by Gaussian elimination with partial pivots.
fn rank(rows: usize, cols: usize, m: &[f32]) -> usize {
    let mut a: Vec<Vec<f64>> = m
        .chunks(cols)
        .map(|r| r.iter().map(|&v| v as f64).collect())
        .collect();
    let mut r = 0;
    for c in 0..cols {
        let Some(p) = (r..rows).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs())) else {
            break;
        };
        if a[p][c].abs() < 1e-4 {
            continue;
        }
        a.swap(r, p);
        let (top, below) = a.split_at_mut(r + 1);
        let pivot = &top[r];
        for row in below.iter_mut() {
            let f = row[c] / pivot[c];
            for (x, p) in row[c..].iter_mut().zip(&pivot[c..]) {
                *x -= f * p;
            }
        }
        r += 1;
    }
    r
}

#[test]
fn synthetic_rank_outliers_determinism() {
    for r in [4usize, 16] {
        let s = Synthetic {
            dim: 64,
            tail: Tail::Laplace,
            rank: Some(r),
            outliers: 0,
            seed: 2,
        };
        let mut x = vec![0.0f32; 100 * 64];
        s.fill(Role::Key, 1, 0, &mut x).unwrap();
        assert_eq!(rank(100, 64, &x), r);
        let (_, var, _) = moments(&x);
        assert!((var - 1.0).abs() < 0.2, "rank {r} var {var}");
    }
    let full = Synthetic {
        dim: 64,
        tail: Tail::Gaussian,
        rank: None,
        outliers: 3,
        seed: 2,
    };
    let mut k = vec![0.0f32; 4000 * 64];
    full.fill(Role::Key, 0, 0, &mut k).unwrap();
    let big: Vec<usize> = (0..64)
        .filter(|&c| {
            let col: Vec<f32> = k.iter().skip(c).step_by(64).copied().collect();
            moments(&col).1 > 50.0
        })
        .collect();
    assert_eq!(big.len(), 3, "{big:?}");
    let mut v = vec![0.0f32; 4000 * 64];
    full.fill(Role::Value, 0, 0, &mut v).unwrap();
    assert!(v.iter().all(|x| x.abs() < 8.0));
    // Heads and roles differ; a token range is a window of the stream.
    let mut k2 = vec![0.0f32; 64 * 5];
    full.fill(Role::Key, 0, 17, &mut k2).unwrap();
    assert_eq!(&k[17 * 64..22 * 64], &k2[..]);
    full.fill(Role::Key, 1, 17, &mut k2).unwrap();
    assert_ne!(&k[17 * 64..22 * 64], &k2[..]);
    full.fill(Role::Query, 0, 17, &mut k2).unwrap();
    assert_ne!(&k[17 * 64..22 * 64], &k2[..]);
}

#[test]
fn synthetic_bad_input() {
    let s = Synthetic {
        dim: 8,
        tail: Tail::Gaussian,
        rank: None,
        outliers: 0,
        seed: 0,
    };
    let mut out = [0.0f32; 12];
    assert!(matches!(
        s.fill(Role::Key, 0, 0, &mut out),
        Err(Error::RaggedRows { .. })
    ));
    let mut out = [0.0f32; 64];
    assert!(s.fill(Role::Key, 0, 0, &mut out).is_ok());
    for bad in [
        Synthetic { dim: 0, ..s },
        Synthetic { rank: Some(0), ..s },
        Synthetic { rank: Some(9), ..s },
        Synthetic { outliers: 9, ..s },
        Synthetic {
            dim: 64,
            outliers: MAX_OUTLIERS + 1,
            ..s
        },
        Synthetic {
            tail: Tail::StudentT { nu: 2 },
            ..s
        },
    ] {
        let e = bad.fill(Role::Key, 0, 0, &mut out);
        assert!(
            matches!(
                e,
                Err(Error::InvalidParameter(_) | Error::InvalidDim { .. })
            ),
            "{bad:?}: {e:?}"
        );
    }
}

#[test]
fn metrics_on_the_smallest_samples() {
    assert_eq!(kl_attention(&[1.0, 2.0], &[1.0, 2.0]).unwrap(), 0.0);
    let t = mann_whitney_in(&[1.0, 2.0, 4.0], &[3.0, 5.0, 6.0], &mut [0.0; 6]).unwrap();
    assert_eq!(t.u, 1.0);
    assert_eq!(median(&mut [5.0, 1.0, 3.0, 2.0]).unwrap(), 2.5);
}
