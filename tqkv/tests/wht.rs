//! The WHT and the rotation against references: the scalar backend against a
//! naive Sylvester product, every SIMD backend against the scalar one bit for
//! bit, and the rotation against an independent implementation of its
//! documented definition (tools/rotation_reference.py).

use proptest::prelude::*;
use tqkv::{Backend, Error, Rotation, wht};

/// `H[i][j] = (−1)^popcount(i & j)` in the Sylvester ordering.
fn naive_f64(x: &[f32]) -> Vec<f64> {
    let n = x.len();
    (0..n)
        .map(|i| {
            x.iter()
                .enumerate()
                .map(|(j, &v)| {
                    let s = if (i & j).count_ones() % 2 == 0 {
                        1.0
                    } else {
                        -1.0
                    };
                    s * v as f64
                })
                .sum()
        })
        .collect()
}

/// Bits, with every NaN folded to one pattern (payloads may differ; NaN-ness
/// may not).
fn canon_bits(x: &[f32]) -> Vec<u32> {
    x.iter()
        .map(|v| if v.is_nan() { 0x7FC0_0000 } else { v.to_bits() })
        .collect()
}

fn rel_l2(got: &[f32], want: &[f64]) -> f64 {
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).powi(2))
        .sum();
    let den: f64 = want.iter().map(|w| w * w).sum();
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// Finite data of mixed magnitude plus the edge values the crate promises to
/// survive.
fn element() -> impl Strategy<Value = f32> {
    prop_oneof![
        8 => -1.0e3f32..1.0e3,
        2 => -1.0f32..1.0,
        1 => Just(0.0f32),
        1 => Just(-0.0f32),
        1 => prop::num::f32::NORMAL | prop::num::f32::SUBNORMAL,
    ]
}

fn hostile() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => element(),
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
        1 => Just(f32::MAX),
        1 => Just(f32::MIN_POSITIVE),
        1 => Just(1.0e-45f32),
    ]
}

/// A power-of-two vector placed at a random misalignment inside a buffer.
fn vector(max_log: u32, elem: BoxedStrategy<f32>) -> impl Strategy<Value = (usize, Vec<f32>)> {
    (0..=max_log, 0usize..16).prop_flat_map(move |(log, offset)| {
        (
            Just(offset),
            prop::collection::vec(elem.clone(), (1usize << log) + offset),
        )
    })
}

fn simd_backends() -> Vec<Backend> {
    Backend::available()
        .filter(|&b| b != Backend::Scalar)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_backend_equals_scalar_bit_for_bit((offset, buf) in vector(14, element().boxed())) {
        let mut want = buf[offset..].to_vec();
        wht::fwht_on(Backend::Scalar, &mut want).unwrap();
        for backend in simd_backends() {
            let mut got = buf.clone();
            wht::fwht_on(backend, &mut got[offset..]).unwrap();
            prop_assert_eq!(canon_bits(&got[offset..]), canon_bits(&want), "backend {}", backend);
            prop_assert_eq!(&got[..offset], &buf[..offset], "wrote before the slice");
        }
    }

    #[test]
    fn hostile_values_propagate_identically((offset, buf) in vector(12, hostile().boxed())) {
        let mut want = buf[offset..].to_vec();
        wht::fwht_on(Backend::Scalar, &mut want).unwrap();
        for backend in simd_backends() {
            let mut got = buf[offset..].to_vec();
            wht::fwht_on(backend, &mut got).unwrap();
            prop_assert_eq!(canon_bits(&got), canon_bits(&want), "backend {}", backend);
        }
    }

    #[test]
    fn rows_equal_single_transforms(log in 0u32..=10, rows in 0usize..12, seed in any::<u64>()) {
        let n = 1usize << log;
        let mut g = tqkv::rng::SplitMix64::new(seed);
        let data: Vec<f32> = (0..n * rows).map(|_| (g.next_u64() as i64 >> 40) as f32).collect();
        let mut want = data.clone();
        for row in want.chunks_exact_mut(n) {
            wht::fwht_on(Backend::Scalar, row).unwrap();
        }
        for backend in Backend::available() {
            let mut got = data.clone();
            wht::fwht_rows_on(backend, &mut got, n).unwrap();
            prop_assert_eq!(canon_bits(&got), canon_bits(&want), "backend {}", backend);
        }
    }
}

proptest! {
    // O(n²) reference: fewer cases, still every length up to 2^14.
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn scalar_matches_naive_sylvester_product(
        log in 0u32..=14,
        seed in any::<u64>(),
    ) {
        let n = 1usize << log;
        let mut g = tqkv::rng::SplitMix64::new(seed);
        let x: Vec<f32> = (0..n)
            .map(|_| ((g.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 100.0)
            .collect();
        let want = naive_f64(&x);
        let mut got = x.clone();
        wht::fwht_on(Backend::Scalar, &mut got).unwrap();
        let err = rel_l2(&got, &want);
        prop_assert!(err <= 1e-5, "n = {}: relative error {}", n, err);
    }
}

#[test]
fn integer_inputs_give_exact_integer_outputs_and_h_h_is_n_identity() {
    // |x| <= 8 and n <= 2^10 keep every partial sum of both transforms below
    // 2^24, where f32 represents all integers: the results must be exact.
    let mut g = tqkv::rng::SplitMix64::new(99);
    for log in 0..=10 {
        let n = 1usize << log;
        let x: Vec<f32> = (0..n).map(|_| (g.next_u64() % 17) as f32 - 8.0).collect();
        let exact: Vec<f32> = naive_f64(&x).iter().map(|&v| v as f32).collect();
        for backend in Backend::available() {
            let mut y = x.clone();
            wht::fwht_on(backend, &mut y).unwrap();
            assert_eq!(y, exact, "H·x, n = {n}, {backend}");
            wht::fwht_on(backend, &mut y).unwrap();
            let nx: Vec<f32> = x.iter().map(|v| v * n as f32).collect();
            assert_eq!(y, nx, "H·H·x = n·x, n = {n}, {backend}");
        }
    }
}

#[test]
fn twice_divided_by_n_is_identity_on_real_data() {
    let mut g = tqkv::rng::SplitMix64::new(5);
    for log in [3u32, 7, 12, 16] {
        let n = 1usize << log;
        let x: Vec<f32> = (0..n)
            .map(|_| (g.next_u64() >> 40) as f32 / 1.0e6)
            .collect();
        for backend in Backend::available() {
            let mut y = x.clone();
            wht::fwht_on(backend, &mut y).unwrap();
            wht::fwht_on(backend, &mut y).unwrap();
            for (a, b) in x.iter().zip(&y) {
                let back = b / n as f32;
                assert!((a - back).abs() <= 1e-5 * a.abs().max(1.0), "{a} vs {back}");
            }
        }
    }
}

#[test]
fn longest_length_is_bit_exact_on_every_backend() {
    let n = wht::MAX_LEN;
    let mut g = tqkv::rng::SplitMix64::new(1);
    let x: Vec<f32> = (0..n)
        .map(|_| (g.next_u64() as i64 >> 40) as f32 * 1e-3)
        .collect();
    let mut want = x.clone();
    wht::fwht_on(Backend::Scalar, &mut want).unwrap();
    for backend in simd_backends() {
        let mut got = x.clone();
        wht::fwht_on(backend, &mut got).unwrap();
        assert!(canon_bits(&got) == canon_bits(&want), "{backend}");
    }
}

#[test]
fn bad_lengths_are_errors_and_leave_data_alone() {
    for backend in Backend::available() {
        for len in [0usize, 3, 6, 12, 1000] {
            let mut x = vec![1.5f32; len];
            assert_eq!(
                wht::fwht_on(backend, &mut x),
                Err(Error::NotPowerOfTwo { len })
            );
            assert!(x.iter().all(|&v| v == 1.5));
        }
        let mut x = vec![1.0f32; wht::MAX_LEN + 1];
        assert_eq!(
            wht::fwht_on(backend, &mut x),
            Err(Error::NotPowerOfTwo {
                len: wht::MAX_LEN + 1
            })
        );
        let mut x = vec![1.0f32; 2 * wht::MAX_LEN];
        assert_eq!(
            wht::fwht_on(backend, &mut x),
            Err(Error::TooLong {
                len: 2 * wht::MAX_LEN,
                max: wht::MAX_LEN
            })
        );
        assert!(x.iter().all(|&v| v == 1.0));

        let mut rows = vec![2.0f32; 24];
        assert_eq!(
            wht::fwht_rows_on(backend, &mut rows, 16),
            Err(Error::RaggedRows {
                len: 24,
                row_len: 16
            })
        );
        assert_eq!(
            wht::fwht_rows_on(backend, &mut rows, 0),
            Err(Error::NotPowerOfTwo { len: 0 })
        );
        assert!(rows.iter().all(|&v| v == 2.0));
        assert_eq!(wht::fwht_rows_on(backend, &mut [], 8), Ok(()));
    }
}

#[test]
fn unavailable_backends_are_errors() {
    for &backend in Backend::ALL {
        let mut x = [1.0f32; 16];
        let r = wht::fwht_on(backend, &mut x);
        if backend.is_available() {
            assert_eq!(r, Ok(()));
        } else {
            assert_eq!(r, Err(Error::BackendUnavailable(backend)));
            assert_eq!(x, [1.0; 16]);
            let rot = Rotation::new(16, 0).unwrap();
            assert_eq!(
                rot.rotate_on(backend, &mut x),
                Err(Error::BackendUnavailable(backend))
            );
            assert_eq!(x, [1.0; 16], "rotate touched data before failing");
        }
    }
}

#[test]
fn nan_and_infinity_propagate_without_panicking() {
    for backend in Backend::available() {
        let mut x = [0.0f32; 64];
        x[3] = f32::NAN;
        wht::fwht_on(backend, &mut x).unwrap();
        assert!(x.iter().all(|v| v.is_nan()), "one NaN reaches every output");

        let mut x = [1.0f32; 64];
        x[0] = f32::INFINITY;
        wht::fwht_on(backend, &mut x).unwrap();
        // Column 0 of H is all +1, so +∞ plus finite terms reaches every output.
        assert!(x.iter().all(|v| *v == f32::INFINITY));

        let mut x = [0.0f32; 64];
        x[0] = f32::INFINITY;
        x[1] = f32::INFINITY;
        wht::fwht_on(backend, &mut x).unwrap();
        // ∞ + ∞ = ∞ on even outputs, ∞ − ∞ = NaN on odd ones.
        assert!(x.iter().step_by(2).all(|v| *v == f32::INFINITY));
        assert!(x.iter().skip(1).step_by(2).all(|v| v.is_nan()));

        let rot = Rotation::new(64, 3).unwrap();
        let mut x = [f32::NAN; 64];
        rot.rotate_on(backend, &mut x).unwrap();
        rot.unrotate_on(backend, &mut x).unwrap();
        assert!(x.iter().all(|v| v.is_nan()));
    }
}

#[test]
fn signed_zeros_follow_ieee() {
    // (+0) + (−0) = +0 and (+0) − (−0) = +0, (−0) + (−0) = −0, (−0) − (−0) = +0.
    for backend in Backend::available() {
        let mut x = [0.0f32, -0.0, -0.0, -0.0];
        wht::fwht_on(backend, &mut x).unwrap();
        let mut want = x;
        wht::fwht_on(Backend::Scalar, &mut want).unwrap();
        assert_eq!(x.map(f32::to_bits), want.map(f32::to_bits));
        let mut z = [-0.0f32; 32];
        wht::fwht_on(backend, &mut z).unwrap();
        assert_eq!(z[0].to_bits(), (-0.0f32).to_bits(), "sum of −0s is −0");
        assert!(
            z[1..].iter().all(|v| v.to_bits() == 0),
            "differences of equal values are +0"
        );
    }
}

// ---------------------------------------------------------------- rotation

fn golden_input(dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|i| (1.0f64 / (i as f64 + 1.0)) as f32)
        .collect()
}

fn fnv1a(bits: &[u32]) -> u64 {
    let mut h = 0xCBF2_9CE4_8422_2325u64;
    for b in bits.iter().flat_map(|v| v.to_le_bytes()) {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

#[test]
fn rotation_matches_the_independent_reference_on_every_backend() {
    // From `python3 tools/rotation_reference.py 16 0x5eed`, an implementation
    // of the documented definition that shares no code with the crate.
    let want16: [u32; 16] = [
        0x3e897845, 0x3dc89f44, 0x3e9739c6, 0x3dd4fa96, 0x3ee04ab4, 0xbe21dac2, 0x3ef952e6,
        0x3e7ae051, 0x3e87e6cf, 0xbcb73666, 0x3e9bab6a, 0x3e92fbde, 0x3ee3ab8c, 0xba636b80,
        0x3efe7296, 0x3ee50000,
    ];
    // `... 1024 7 --fnv` and `... 128 0xabcdef --fnv`.
    let hashes = [
        (1024usize, 7u64, 0x185347db36fb4915u64),
        (128, 0xabcdef, 0x7d5ee636844db4c8),
    ];
    for backend in Backend::available() {
        let rot = Rotation::new(16, 0x5eed).unwrap();
        let mut x = golden_input(16);
        rot.rotate_on(backend, &mut x).unwrap();
        let bits: Vec<u32> = x.iter().map(|v| v.to_bits()).collect();
        assert_eq!(bits, want16, "{backend}");
        for (dim, seed, hash) in hashes {
            let rot = Rotation::new(dim, seed).unwrap();
            let mut x = golden_input(dim);
            rot.rotate_on(backend, &mut x).unwrap();
            let bits: Vec<u32> = x.iter().map(|v| v.to_bits()).collect();
            assert_eq!(fnv1a(&bits), hash, "dim {dim}, {backend}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn rotation_is_orthonormal_and_invertible(
        log in 0u32..=14,
        seed in any::<u64>(),
        data_seed in any::<u64>(),
    ) {
        let dim = 1usize << log;
        let mut g = tqkv::rng::SplitMix64::new(data_seed);
        let x: Vec<f32> = (0..dim).map(|_| (g.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0).collect();
        let norm = |v: &[f32]| v.iter().map(|&a| (a as f64).powi(2)).sum::<f64>().sqrt();
        let rot = Rotation::new(dim, seed).unwrap();
        let mut first: Option<Vec<u32>> = None;
        for backend in Backend::available() {
            let mut y = x.clone();
            rot.rotate_on(backend, &mut y).unwrap();
            let (nx, ny) = (norm(&x), norm(&y));
            prop_assert!((nx - ny).abs() <= 1e-5 * nx.max(f64::MIN_POSITIVE), "norm {} -> {}", nx, ny);
            let bits: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
            match &first {
                None => first = Some(bits),
                Some(f) => prop_assert_eq!(f, &bits, "same seed, different bits on {}", backend),
            }
            rot.unrotate_on(backend, &mut y).unwrap();
            for (a, b) in x.iter().zip(&y) {
                prop_assert!((a - b).abs() <= 1e-6, "{} came back as {}", a, b);
            }
        }
    }
}

#[test]
fn different_seeds_give_different_signs() {
    let dim = 256;
    let signs = |seed| -> Vec<f32> {
        let rot = Rotation::new(dim, seed).unwrap();
        (0..dim).map(|i| rot.sign(i).unwrap()).collect()
    };
    let base = signs(0);
    assert_eq!(base, signs(0), "same seed, same signs");
    for seed in 1..50u64 {
        let other = signs(seed);
        let differ = base.iter().zip(&other).filter(|(a, b)| a != b).count();
        // Independent fair signs differ in 128 ± 8 places; 64 is 8 sigma off.
        assert!(
            (64..=192).contains(&differ),
            "seed {seed}: {differ} differences"
        );
    }
}

#[test]
fn rotation_applies_exactly_the_documented_signs() {
    // Rotating the basis vector e_i gives D[i]·(column i of H)/√d.
    let dim = 128;
    let rot = Rotation::new(dim, 11).unwrap();
    for i in [0usize, 1, 63, 64, 127] {
        let mut e = vec![0.0f32; dim];
        e[i] = 1.0;
        rot.rotate(&mut e).unwrap();
        let s = rot.sign(i).unwrap() * rot.scale();
        for (k, v) in e.iter().enumerate() {
            let h = if (k & i).count_ones() % 2 == 0 {
                1.0
            } else {
                -1.0
            };
            assert_eq!(*v, h * s, "row {k} of column {i}");
        }
    }
}

#[test]
fn rotation_rejects_bad_dims_and_lengths() {
    for dim in [0, 3, 100, 4100, 4104] {
        assert_eq!(
            Rotation::new(dim, 1),
            Err(Error::InvalidDim { dim }),
            "{dim}"
        );
    }
    assert!(matches!(
        Rotation::new(1 << 21, 1),
        Err(Error::TooLong { .. })
    ));
    let rot = Rotation::new(64, 1).unwrap();
    let mut short = vec![1.0f32; 32];
    assert_eq!(
        rot.rotate(&mut short),
        Err(Error::LengthMismatch {
            expected: 64,
            found: 32
        })
    );
    assert_eq!(
        rot.unrotate(&mut short),
        Err(Error::LengthMismatch {
            expected: 64,
            found: 32
        })
    );
    assert!(short.iter().all(|&v| v == 1.0));
}

/// A head dimension of every construction and kernel shape: powers of two
/// (one-pass sizes and longer), Williamson products whose rows are a quarter, a
/// half, one or several registers (80 = 20·4, 96 = 12·8, 192 = 12·16, 384
/// = 12·32, 576 = 36·16, and two passes up to 1152 = 36·32), the other Williamson orders, and block-diagonal ones.
fn any_dim() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![
        8usize, 16, 64, 128, 256, 512, 24, 40, 48, 56, 80, 96, 112, 120, 160, 176, 192, 224, 240,
        320, 384, 448, 576, 640, 768, 1152, 104, 136, 200,
    ])
}

/// Finite values of every magnitude and signed zeros. (A NaN or an
/// infinity spreads to every output of a dense transform, which would
/// hide any wrong sign: they come one at a time, see below.)
fn any_value() -> impl Strategy<Value = f32> {
    prop_oneof![
        20 => -10.0f32..10.0,
        2 => -1e30f32..1e30,
        1 => Just(0.0f32),
        1 => Just(-0.0f32),
        1 => Just(1e-38f32),
    ]
}

/// In one case in ten, one element made NaN or ±∞.
fn any_special() -> impl Strategy<Value = Option<(usize, f32)>> {
    prop::option::weighted(
        0.1,
        (
            0usize..1152,
            prop_oneof![Just(f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY)],
        ),
    )
}

/// In one case in ten, up to three elements of magnitude 1e38 to
/// `f32::MAX`: twice one above `f32::MAX / 2` overflows, so a kernel that
/// fuses a product by ±2 into its sum (one rounding) keeps finite what the
/// reference (the product rounded, then the sum) makes ±∞.
fn any_huge() -> impl Strategy<Value = Option<Vec<(usize, f32)>>> {
    prop::option::weighted(
        0.1,
        prop::collection::vec(
            (
                0usize..1152,
                prop_oneof![1e38f32..=f32::MAX, -f32::MAX..=-1e38f32],
            ),
            1..=3,
        ),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Every backend's rotation and its inverse (the one-pass sizes, the
    /// packed-row and whole-register factor products, the block-diagonal
    /// passes) give the scalar backend's bits, from buffers at any offset.
    #[test]
    fn rotations_of_every_shape_equal_scalar_bit_for_bit(
        d in any_dim(),
        seed in any::<u64>(),
        offset in 0usize..16,
        values in prop::collection::vec(any_value(), 1152),
        special in any_special(),
        huge in any_huge(),
    ) {
        let mut values = values;
        if let Some((i, v)) = special {
            values[i % d] = v;
        }
        for (i, v) in huge.into_iter().flatten() {
            values[i % d] = v;
        }
        let rot = Rotation::new(d, seed).unwrap();
        let mut buf = vec![0.0f32; offset + d];
        buf[offset..].copy_from_slice(&values[..d]);
        let mut want = values[..d].to_vec();
        rot.rotate_on(Backend::Scalar, &mut want).unwrap();
        let mut want_back = want.clone();
        rot.unrotate_on(Backend::Scalar, &mut want_back).unwrap();
        for backend in Backend::available() {
            let x = &mut buf[offset..];
            x.copy_from_slice(&values[..d]);
            rot.rotate_on(backend, x).unwrap();
            prop_assert_eq!(canon_bits(x), canon_bits(&want), "rotate d {} on {}", d, backend);
            rot.unrotate_on(backend, x).unwrap();
            prop_assert_eq!(canon_bits(x), canon_bits(&want_back), "unrotate d {} on {}", d, backend);
        }
    }
}
