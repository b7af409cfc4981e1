//! Head dimensions that are not powers of two: the rotation is orthogonal
//! (on the materialised matrix, in f64), round-trips, keeps norms, gives
//! the same bits on every backend, spreads a coordinate evenly where it is
//! a Hadamard matrix; and the law the codebooks assume holds after it
//! (D_mse by Monte Carlo against `Codebook::mse()`).

use tqkv::quant::MseQuantizer;
use tqkv::rng::SplitMix64;
use tqkv::{Backend, Error, Rotation, RotationKind};

/// Head dims of real models and the Williamson products (and block-diagonal
/// dims: 104, 136, 184, 1016) around them.
const DIMS: [usize; 19] = [
    24, 40, 56, 72, 80, 88, 96, 104, 112, 136, 144, 160, 184, 192, 320, 384, 576, 720, 1016,
];

fn normal(g: &mut SplitMix64) -> f64 {
    let u1 = ((g.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let u2 = (g.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Columns `R·e_i`, in f64.
fn materialise(rot: &Rotation) -> Vec<Vec<f64>> {
    let d = rot.dim();
    (0..d)
        .map(|i| {
            let mut e = vec![0.0f32; d];
            e[i] = 1.0;
            rot.rotate_on(Backend::Scalar, &mut e).unwrap();
            e.iter().map(|&v| v as f64).collect()
        })
        .collect()
}

#[test]
fn every_rotation_is_orthogonal_on_its_materialised_matrix() {
    // Every multiple of 8 up to 256 (both constructions), and the larger
    // dims of the list.
    let mut dims: Vec<usize> = (8..=256).step_by(8).collect();
    dims.extend(DIMS.iter().filter(|&&d| d > 256));
    let mut rotations: Vec<Rotation> = dims.iter().map(|&d| Rotation::new(d, 9).unwrap()).collect();
    rotations.extend(
        (8..=256)
            .step_by(8)
            .map(|d| Rotation::block_diagonal(d, 9).unwrap()),
    );
    for rot in rotations {
        let d = rot.dim();
        let cols = materialise(&rot);
        // RᵀR = I: columns orthonormal (then R·Rᵀ = I for a square R).
        let mut worst = 0.0f64;
        for i in 0..d {
            for j in i..d {
                let dot: f64 = cols[i].iter().zip(&cols[j]).map(|(a, b)| a * b).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                worst = worst.max((dot - want).abs());
            }
        }
        assert!(
            worst < 1e-6,
            "d {d} {:?}: |RᵀR − I| = {worst:e}",
            rot.kind()
        );
    }
}

#[test]
fn a_hadamard_rotation_spreads_each_coordinate_evenly() {
    for &d in &DIMS {
        let rot = Rotation::new(d, 4).unwrap();
        let flat = materialise(&rot)
            .iter()
            .flatten()
            .all(|&v| (v.abs() - rot.scale() as f64).abs() < 1e-9);
        // Block-diagonal where no Williamson product of factors ≤ 60 exists.
        let want = if [104, 136, 184, 1016].contains(&d) {
            RotationKind::BlockDiagonal
        } else {
            RotationKind::Hadamard
        };
        assert_eq!(rot.kind(), want, "d {d}");
        assert_eq!(flat, want == RotationKind::Hadamard, "d {d}");
    }
}

#[test]
fn every_multiple_of_8_round_trips_keeps_norms_and_agrees_across_backends() {
    let mut g = SplitMix64::new(1);
    for d in (8..=1024).step_by(8).chain([2048, 2056, 4000, 4096]) {
        let rots = [
            Rotation::new(d, d as u64).unwrap(),
            Rotation::block_diagonal(d, 3).unwrap(),
        ];
        for rot in rots {
            let mut x: Vec<f32> = (0..d).map(|_| normal(&mut g) as f32).collect();
            // Edge values: zeros of both signs, tiny and huge magnitudes.
            x[0] = 0.0;
            x[1] = -0.0;
            x[2] = 1e-30;
            x[3] = 3e30;
            let norm = |v: &[f32]| v.iter().map(|&a| (a as f64).powi(2)).sum::<f64>().sqrt();
            let mut want = x.clone();
            rot.rotate_on(Backend::Scalar, &mut want).unwrap();
            assert!((norm(&want) / norm(&x) - 1.0).abs() < 1e-5, "d {d}");
            for b in Backend::available() {
                let mut y = x.clone();
                rot.rotate_on(b, &mut y).unwrap();
                assert!(
                    y.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{b:?} d {d} {:?}",
                    rot.kind()
                );
                rot.unrotate_on(b, &mut y).unwrap();
                let mut back = want.clone();
                rot.unrotate_on(Backend::Scalar, &mut back).unwrap();
                assert!(y.iter().zip(&back).all(|(a, b)| a.to_bits() == b.to_bits()));
                let err: f64 = y
                    .iter()
                    .zip(&x)
                    .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                    .sum();
                assert!(err.sqrt() <= 1e-6 * norm(&x), "d {d}: round trip {err:e}");
            }
        }
    }
}

#[test]
fn unsupported_dims_are_errors_naming_the_dim() {
    for dim in [0usize, 1 + 8, 100, 4104, 8200] {
        assert_eq!(Rotation::new(dim, 1), Err(Error::InvalidDim { dim }));
        assert_eq!(
            MseQuantizer::new(dim, 3, 1).err(),
            Some(Error::InvalidDim { dim })
        );
    }
    assert_eq!(
        Rotation::block_diagonal(100, 1),
        Err(Error::InvalidDim { dim: 100 })
    );
    let message = Error::InvalidDim { dim: 100 }.to_string();
    assert!(message.contains("multiple of 8"), "{message}");
}

/// Mean of ‖x − x̂‖²/‖x‖² over `n` Gaussian vectors of dimension `d`.
fn d_mse(q: &MseQuantizer, n: usize, seed: u64) -> f64 {
    let d = q.dim();
    let mut g = SplitMix64::new(seed);
    let mut code = vec![0u8; q.encoded_len()];
    let mut back = vec![0.0f32; d];
    let mut total = 0.0;
    for _ in 0..n {
        let x: Vec<f32> = (0..d).map(|_| normal(&mut g) as f32).collect();
        q.encode(&x, &mut code).unwrap();
        q.decode(&code, &mut back).unwrap();
        let err: f64 = x
            .iter()
            .zip(&back)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum();
        total += err / x.iter().map(|&a| (a as f64).powi(2)).sum::<f64>();
    }
    total / n as f64
}

#[test]
fn d_mse_matches_the_codebook_at_every_new_dim() {
    // Isotropic Gaussian inputs: the rotated coordinates follow the sphere
    // law of dimension d, whatever the rotation, so D_mse must equal the
    // codebook's own figure. 3000 vectors: the mean's relative standard
    // error is under 0.5% at d = 80 and 1 bit, so 2% is a 4σ bound.
    for d in [80usize, 96, 104, 112, 192, 576] {
        for bits in 1..=4u8 {
            let q = MseQuantizer::new(d, bits, 17).unwrap();
            let got = d_mse(&q, 3000, d as u64 * 10 + bits as u64);
            let want = q.codebook().mse();
            assert!(
                (got / want - 1.0).abs() < 0.02,
                "d {d} b {bits}: D_mse {got:.5} vs {want:.5}"
            );
        }
    }
}
