//! The quantisers: round-trip error against the codebook MSE, unbiased inner
//! products for the prod quantiser, the baseline as documented, edge cases
//! and bad input.

use half::{bf16, f16};
use tqkv::Error;
use tqkv::qjl::Projection;
use tqkv::quant::{
    BaselineQuantizer, MAX_DIM, MseQuantizer, NormPrecision, ProdQuantizer, Quantizer,
};
use tqkv::rng::SplitMix64;

fn normal(g: &mut SplitMix64) -> f64 {
    let u1 = ((g.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let u2 = (g.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn gaussian(dim: usize, g: &mut SplitMix64, scale: f64) -> Vec<f32> {
    (0..dim).map(|_| (normal(g) * scale) as f32).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// Mean of ‖x − x̂‖²/‖x‖² over random vectors.
fn relative_mse(
    encode: impl Fn(&[f32], &mut [u8]),
    decode: impl Fn(&[u8], &mut [f32]),
    len: usize,
    dim: usize,
    n: usize,
    seed: u64,
) -> f64 {
    let mut g = SplitMix64::new(seed);
    let mut code = vec![0u8; len];
    let mut back = vec![0.0f32; dim];
    let mut total = 0.0;
    for _ in 0..n {
        let x = gaussian(dim, &mut g, 3.0);
        encode(&x, &mut code);
        decode(&code, &mut back);
        let err: f64 = x
            .iter()
            .zip(&back)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum();
        total += err / dot(&x, &x);
    }
    total / n as f64
}

#[test]
fn mse_round_trip_matches_the_codebook_mse() {
    for bits in 1..=4u8 {
        for precision in [NormPrecision::F16, NormPrecision::F32] {
            let q = MseQuantizer::new(128, bits, 11)
                .unwrap()
                .with_norm_precision(precision);
            let got = relative_mse(
                |x, c| q.encode(x, c).unwrap(),
                |c, o| q.decode(c, o).unwrap(),
                q.encoded_len(),
                128,
                4000,
                bits as u64,
            );
            let want = q.codebook().mse();
            assert!(
                (got / want - 1.0).abs() < 0.04,
                "bits {bits} {precision:?}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn prod_inner_products_are_unbiased() {
    // Over rotation and projection seeds, E⟨q, x̂⟩ = ⟨q, x⟩ (Gaussian
    // projection: exactly; Hadamard: within its documented bias, which on
    // these spread residuals is under 2%).
    let dim = 64;
    let mut g = SplitMix64::new(3);
    let x = gaussian(dim, &mut g, 1.0);
    let qv: Vec<f32> = x.iter().map(|&v| 0.6 * v + normal(&mut g) as f32).collect();
    let exact = dot(&qv, &x);
    for (projection, trials, slack) in [
        (Projection::Gaussian, 600u64, 0.0),
        (Projection::Hadamard, 3000, 0.02),
    ] {
        let (mut sum, mut sum2) = (0.0, 0.0);
        for seed in 0..trials {
            let q = ProdQuantizer::new(dim, 3, 1000 + 7 * seed, projection).unwrap();
            let mut code = vec![0u8; q.encoded_len()];
            q.encode(&x, &mut code).unwrap();
            let mut back = vec![0.0f32; dim];
            q.decode(&code, &mut back).unwrap();
            let e = dot(&qv, &back);
            sum += e;
            sum2 += e * e;
        }
        let n = trials as f64;
        let mean = sum / n;
        let se = ((sum2 / n - mean * mean) / n).sqrt();
        assert!(
            (mean - exact).abs() <= 3.0 * se + slack * exact.abs(),
            "{projection:?}: {mean} vs {exact} (SE {se})"
        );
    }
}

#[test]
fn baseline_behaves_as_documented() {
    // Isotropic input: the baseline's error equals the codebook MSE, like
    // the rotating quantiser's.
    let b = BaselineQuantizer::new(128, 3).unwrap();
    let got = relative_mse(
        |x, c| b.encode(x, c).unwrap(),
        |c, o| b.decode(c, o).unwrap(),
        b.encoded_len(),
        128,
        4000,
        9,
    );
    assert!((got / b.codebook().mse() - 1.0).abs() < 0.04, "{got}");
    // Energy in a few coordinates: the baseline's error grows, the rotating
    // quantiser's does not.
    let m = MseQuantizer::new(128, 3, 5).unwrap();
    let mut spiky = vec![0.01f32; 128];
    spiky[7] = 5.0;
    spiky[70] = -4.0;
    let err =
        |encode: &dyn Fn(&[f32], &mut [u8]), decode: &dyn Fn(&[u8], &mut [f32]), len: usize| {
            let mut code = vec![0u8; len];
            let mut back = vec![0.0f32; 128];
            encode(&spiky, &mut code);
            decode(&code, &mut back);
            spiky
                .iter()
                .zip(&back)
                .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                .sum::<f64>()
                / dot(&spiky, &spiky)
        };
    let base = err(
        &|x, c| b.encode(x, c).unwrap(),
        &|c, o| b.decode(c, o).unwrap(),
        b.encoded_len(),
    );
    let rot = err(
        &|x, c| m.encode(x, c).unwrap(),
        &|c, o| m.decode(c, o).unwrap(),
        m.encoded_len(),
    );
    assert!(base > 5.0 * rot, "baseline {base} vs rotated {rot}");
}

#[test]
fn bits_per_coordinate_count_the_side_information() {
    let m = MseQuantizer::new(128, 4, 0).unwrap();
    assert_eq!(m.encoded_len(), 2 + 64);
    assert_eq!(m.bits_per_coordinate(), (66 * 8) as f64 / 128.0);
    let m32 = m.clone().with_norm_precision(NormPrecision::F32);
    assert_eq!(m32.encoded_len(), 4 + 64);
    let p = ProdQuantizer::new(128, 4, 0, Projection::Hadamard).unwrap();
    assert_eq!(p.encoded_len(), 2 + 2 + 48 + 16);
    assert_eq!(p.bits_per_coordinate(), (68 * 8) as f64 / 128.0);
    let b = BaselineQuantizer::new(100, 2).unwrap();
    assert_eq!(b.encoded_len(), 2 + 25);
}

#[test]
fn zero_nan_inf_and_huge_inputs_are_documented() {
    let m = MseQuantizer::new(64, 3, 1).unwrap();
    let p = ProdQuantizer::new(64, 3, 1, Projection::Gaussian).unwrap();
    let b = BaselineQuantizer::new(64, 3).unwrap();
    let zero = [0.0f32; 64];
    let mut code = vec![0xEEu8; 64];
    let mut back = [1.0f32; 64];
    m.encode(&zero, &mut code).unwrap();
    m.decode(&code, &mut back).unwrap();
    assert!(back.iter().all(|&v| v == 0.0));
    p.encode(&zero, &mut code).unwrap();
    p.decode(&code, &mut back).unwrap();
    assert!(back.iter().all(|&v| v == 0.0));
    b.encode(&zero, &mut code).unwrap();
    b.decode(&code, &mut back).unwrap();
    assert!(back.iter().all(|&v| v == 0.0));
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut x = [0.5f32; 64];
        x[9] = bad;
        assert_eq!(m.encode(&x, &mut code), Err(Error::NonFinite));
        assert_eq!(p.encode(&x, &mut code), Err(Error::NonFinite));
        assert_eq!(b.encode(&x, &mut code), Err(Error::NonFinite));
    }
    // A norm above the largest f16 cannot be stored in f16, but in f32.
    let mut g = SplitMix64::new(4);
    let huge = gaussian(64, &mut g, 1.0e4);
    assert_eq!(m.encode(&huge, &mut code), Err(Error::NonFinite));
    let m32 = m.clone().with_norm_precision(NormPrecision::F32);
    m32.encode(&huge, &mut code).unwrap();
    m32.decode(&code, &mut back).unwrap();
    let err: f64 = huge
        .iter()
        .zip(&back)
        .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
        .sum();
    let rel = err / dot(&huge, &huge);
    assert!(rel < 3.0 * m32.codebook().mse(), "relative error {rel}");
}

/// A vector of subnormals has `1/‖x‖` past f32: its unit vector takes
/// f64 products. Its codes are those of the same vector scaled by 2^100
/// (exactly) into the normal range, whose unit vector takes f32 products.
#[test]
fn subnormal_vectors_get_the_codes_of_their_normal_multiples() {
    let mut g = SplitMix64::new(11);
    let tiny = gaussian(128, &mut g, 1e-41);
    assert!(tiny.iter().all(|v| v.abs() < f32::MIN_POSITIVE));
    let scaled: Vec<f32> = tiny.iter().map(|&v| v * 2f32.powi(100)).collect();
    let quantizers = [
        Quantizer::Mse(MseQuantizer::new(128, 4, 3).unwrap()),
        Quantizer::Prod(ProdQuantizer::new(128, 3, 3, Projection::Hadamard).unwrap()),
    ];
    for q in quantizers {
        let [norm, residual_norm, codes, _] = q.fields();
        let codes = norm + residual_norm..norm + residual_norm + codes;
        let (mut a, mut b) = (vec![0u8; q.encoded_len()], vec![0u8; q.encoded_len()]);
        q.encode(&tiny, &mut a).unwrap();
        q.encode(&scaled, &mut b).unwrap();
        assert_eq!(a[codes.clone()], b[codes]);
    }
}

#[test]
fn half_inputs_encode_like_their_f32_values() {
    let mut g = SplitMix64::new(8);
    let x = gaussian(128, &mut g, 1.0);
    let h: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
    let bh: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
    let q = ProdQuantizer::new(128, 4, 2, Projection::Hadamard).unwrap();
    let (mut a, mut b) = (vec![0u8; q.encoded_len()], vec![0u8; q.encoded_len()]);
    q.encode_f16(&h, &mut a).unwrap();
    let hx: Vec<f32> = h.iter().map(|v| v.to_f32()).collect();
    q.encode(&hx, &mut b).unwrap();
    assert_eq!(a, b);
    q.encode_bf16(&bh, &mut a).unwrap();
    let bx: Vec<f32> = bh.iter().map(|v| v.to_f32()).collect();
    q.encode(&bx, &mut b).unwrap();
    assert_eq!(a, b);
}

#[test]
fn norms_up_to_max_norm_decode_to_finite_values() {
    // Regression (fuzz, encode_decode): an f32-norm encoding of a vector of
    // norm ~1e37 used to decode to NaN (the inverse transform overflowed).
    // Norms are now capped at MAX_NORM, and the largest allowed decode finitely.
    for dim in [8usize, 128, 1024] {
        let big = tqkv::quant::MAX_NORM / (dim as f32).sqrt() * 0.999;
        let x: Vec<f32> = (0..dim)
            .map(|i| if i % 3 == 0 { -big } else { big })
            .collect();
        for (name, q) in [
            (
                "mse",
                tqkv::quant::Quantizer::Mse(
                    MseQuantizer::new(dim, 4, 3)
                        .unwrap()
                        .with_norm_precision(NormPrecision::F32),
                ),
            ),
            (
                "prod",
                tqkv::quant::Quantizer::Prod(
                    ProdQuantizer::new(dim, 4, 3, Projection::Hadamard)
                        .unwrap()
                        .with_norm_precision(NormPrecision::F32),
                ),
            ),
            (
                "base",
                tqkv::quant::Quantizer::Baseline(
                    BaselineQuantizer::new(dim, 4)
                        .unwrap()
                        .with_norm_precision(NormPrecision::F32),
                ),
            ),
        ] {
            let mut code = vec![0u8; q.encoded_len()];
            q.encode(&x, &mut code).unwrap();
            let mut out = vec![0.0f32; dim];
            q.decode(&code, &mut out).unwrap();
            assert!(out.iter().all(|v| v.is_finite()), "{name} d{dim}");
        }
    }
}

#[test]
fn bad_arguments_are_errors() {
    // A finite vector whose norm overflows the stored precision is an error
    // in f16 (above 65504) and in f32 (above f32::MAX), never a stored ∞.
    let big = [3.0e38f32; 8];
    let mid = [1.0e5f32; 8];
    // Finite, representable, but above MAX_NORM (2^100) once normed.
    let huge = [1.0e30f32; 8];
    let mut code = [0u8; 64];
    for precision in [NormPrecision::F16, NormPrecision::F32] {
        let mse = MseQuantizer::new(8, 3, 1)
            .unwrap()
            .with_norm_precision(precision);
        let prod = ProdQuantizer::new(8, 3, 1, Projection::Hadamard)
            .unwrap()
            .with_norm_precision(precision);
        let base = BaselineQuantizer::new(8, 3)
            .unwrap()
            .with_norm_precision(precision);
        assert_eq!(mse.encode(&big, &mut code), Err(Error::NonFinite));
        assert_eq!(prod.encode(&big, &mut code), Err(Error::NonFinite));
        assert_eq!(base.encode(&big, &mut code), Err(Error::NonFinite));
        assert_eq!(mse.encode(&huge, &mut code), Err(Error::NonFinite));
        let mid_result = mse.encode(&mid, &mut code);
        match precision {
            NormPrecision::F16 => assert_eq!(mid_result, Err(Error::NonFinite)),
            NormPrecision::F32 => assert_eq!(mid_result, Ok(())),
            other => panic!("no expectation for {other:?}"),
        }
    }
    assert_eq!(
        MseQuantizer::new(100, 3, 0).err(),
        Some(Error::InvalidDim { dim: 100 })
    );
    assert!(MseQuantizer::new(96, 3, 0).is_ok());
    assert!(MseQuantizer::new(184, 3, 0).is_ok());
    assert_eq!(
        MseQuantizer::new(2 * MAX_DIM, 3, 0).err(),
        Some(Error::InvalidDim { dim: 2 * MAX_DIM })
    );
    assert_eq!(
        MseQuantizer::new(64, 0, 0).err(),
        Some(Error::InvalidBits { bits: 0 })
    );
    assert_eq!(
        ProdQuantizer::new(64, 1, 0, Projection::Gaussian).err(),
        Some(Error::InvalidBits { bits: 1 })
    );
    assert_eq!(
        ProdQuantizer::new(64, 9, 0, Projection::Gaussian).err(),
        Some(Error::InvalidBits { bits: 9 })
    );
    assert_eq!(
        ProdQuantizer::new(4, 3, 0, Projection::Gaussian).err(),
        Some(Error::InvalidDim { dim: 4 })
    );
    assert_eq!(
        BaselineQuantizer::new(1, 3).err(),
        Some(Error::InvalidDim { dim: 1 })
    );
    // Regression (fuzz, encode_decode): a baseline wider than MAX_DIM encoded
    // f32 input but refused the same vector in f16; every quantiser now
    // stops at MAX_DIM.
    assert_eq!(
        BaselineQuantizer::new(MAX_DIM + 1, 3).err(),
        Some(Error::InvalidDim { dim: MAX_DIM + 1 })
    );
    let wide = BaselineQuantizer::new(MAX_DIM, 2).unwrap();
    let x16 = vec![f16::from_f32(0.5); MAX_DIM];
    let x32 = vec![0.5f32; MAX_DIM];
    let (mut a, mut b) = (vec![0u8; wide.encoded_len()], vec![0u8; wide.encoded_len()]);
    wide.encode_f16(&x16, &mut a).unwrap();
    wide.encode(&x32, &mut b).unwrap();
    assert_eq!(a, b);
    let m = MseQuantizer::new(64, 3, 0).unwrap();
    let x = [0.1f32; 64];
    assert_eq!(
        m.encode(&x[..63], &mut [0u8; 32]),
        Err(Error::LengthMismatch {
            expected: 64,
            found: 63
        })
    );
    assert_eq!(
        m.encode(&x, &mut [0u8; 25]),
        Err(Error::BufferTooShort {
            needed: 26,
            found: 25
        })
    );
    assert_eq!(
        m.decode(&[0u8; 25], &mut [0.0; 64]),
        Err(Error::BufferTooShort {
            needed: 26,
            found: 25
        })
    );
    assert_eq!(
        m.decode(&[0u8; 26], &mut [0.0; 65]),
        Err(Error::LengthMismatch {
            expected: 64,
            found: 65
        })
    );
}

#[test]
fn schemes_hand_out_the_documented_quantizers() {
    use tqkv::quant::{Quantizer, Scheme};
    for n in 2..=8u8 {
        let (k, v) = Scheme::Kv
            .quantizers(n, 128, 1, Projection::Hadamard)
            .unwrap();
        assert!(matches!(
            (&k, &v),
            (Quantizer::Baseline(_), Quantizer::Baseline(_))
        ));
        let (k, v) = Scheme::Kqv
            .quantizers(n, 128, 1, Projection::Hadamard)
            .unwrap();
        assert!(matches!((&k, &v), (Quantizer::Mse(_), Quantizer::Prod(_))));
        let (k, v) = Scheme::Qkqv
            .quantizers(n, 128, 1, Projection::Gaussian)
            .unwrap();
        assert!(matches!((&k, &v), (Quantizer::Prod(_), Quantizer::Prod(_))));
        // A fair budget: the same payload bits, n per coordinate.
        for &scheme in Scheme::ALL {
            let (k, v) = scheme.quantizers(n, 128, 1, Projection::Hadamard).unwrap();
            for q in [&k, &v] {
                let side = q.bits_per_coordinate() - n as f64;
                assert!(
                    side > 0.0 && side <= 32.0 / 128.0,
                    "{scheme:?} n{n}: {side}"
                );
            }
            // And they round-trip through the wrapper.
            let mut g = SplitMix64::new(n as u64);
            let x = gaussian(128, &mut g, 1.0);
            let mut code = vec![0u8; k.encoded_len()];
            let mut back = vec![0.0f32; 128];
            k.encode(&x, &mut code).unwrap();
            k.decode(&code, &mut back).unwrap();
            let rel = x
                .iter()
                .zip(&back)
                .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                .sum::<f64>()
                / dot(&x, &x);
            assert!(rel < 0.5, "{scheme:?} n{n}: {rel}");
        }
    }
    for n in [0u8, 1, 9] {
        assert_eq!(
            Scheme::Kqv
                .quantizers(n, 128, 1, Projection::Hadamard)
                .err(),
            Some(Error::InvalidBits { bits: n })
        );
    }
    assert_eq!(
        Scheme::Kqv
            .quantizers(4, 100, 1, Projection::Hadamard)
            .err(),
        Some(Error::InvalidDim { dim: 100 })
    );
    assert!(
        Scheme::Kqv
            .quantizers(4, 96, 1, Projection::Hadamard)
            .is_ok()
    );
}

/// One rule for stored norms: what `from_bytes` refuses, `decode` refuses
/// too, for the norm and (prod) the residual norm, at both precisions.
#[test]
fn decode_refuses_norms_no_encoder_writes() {
    use tqkv::qjl::Projection;
    use tqkv::quant::{NormPrecision, Quantizer, Scheme};
    let x: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
    for precision in [NormPrecision::F16, NormPrecision::F32] {
        let bad: Vec<Vec<u8>> = match precision {
            NormPrecision::F16 => [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -1.0]
                .iter()
                .map(|&v| half::f16::from_f32(v).to_le_bytes().to_vec())
                .collect(),
            _ => [f32::NAN, f32::INFINITY, -1.0, 2.0 * tqkv::quant::MAX_NORM]
                .iter()
                .map(|&v| v.to_le_bytes().to_vec())
                .collect(),
        };
        for &scheme in Scheme::ALL {
            let (k, v) = scheme.quantizers(4, 64, 3, Projection::Hadamard).unwrap();
            for q in [k, v] {
                let q = match q {
                    Quantizer::Mse(m) => Quantizer::Mse(m.with_norm_precision(precision)),
                    Quantizer::Prod(p) => Quantizer::Prod(p.with_norm_precision(precision)),
                    Quantizer::Baseline(b) => Quantizer::Baseline(b.with_norm_precision(precision)),
                    other => other,
                };
                let mut code = vec![0u8; q.encoded_len()];
                q.encode(&x, &mut code).unwrap();
                let mut out = vec![0.0f32; 64];
                q.decode(&code, &mut out).unwrap();
                let stored_norms = q.fields()[0..2].iter().filter(|&&f| f > 0).count();
                for slot in 0..stored_norms {
                    for b in &bad {
                        let mut c = code.clone();
                        c[slot * b.len()..(slot + 1) * b.len()].copy_from_slice(b);
                        assert!(!q.side_info_is_valid(&c));
                        assert_eq!(
                            q.decode(&c, &mut out),
                            Err(tqkv::Error::InvalidNorm),
                            "{scheme:?} {precision:?} slot {slot} {b:?}"
                        );
                    }
                }
            }
        }
    }
}

/// The chosen-backend forms agree with each other: decoding (codebook
/// lookups, the bit-exact transform, the sketch's transpose) gives the same
/// bits on every backend, and so do the f16 and bf16 encoders.
#[test]
fn decode_and_half_encoders_agree_on_every_backend() {
    use tqkv::Backend;
    use tqkv::qjl::Projection;
    use tqkv::quant::Scheme;
    let x: Vec<f32> = (0..128)
        .map(|i| ((i * 41 % 29) as f32 - 14.0) / 9.0)
        .collect();
    let h: Vec<half::f16> = x.iter().map(|&v| half::f16::from_f32(v)).collect();
    let b: Vec<half::bf16> = x.iter().map(|&v| half::bf16::from_f32(v)).collect();
    for &scheme in Scheme::ALL {
        for projection in [Projection::Hadamard, Projection::Gaussian] {
            let (k, v) = scheme.quantizers(3, 128, 11, projection).unwrap();
            for q in [k, v] {
                let mut code = vec![0u8; q.encoded_len()];
                q.encode(&x, &mut code).unwrap();
                let mut want = vec![0.0f32; 128];
                q.decode_on(Backend::Scalar, &code, &mut want).unwrap();
                for backend in Backend::available() {
                    let mut got = vec![0.0f32; 128];
                    q.decode_on(backend, &code, &mut got).unwrap();
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{scheme:?} {projection:?} {backend}"
                    );
                }
                if let tqkv::quant::Quantizer::Mse(m) = &q {
                    for backend in Backend::available() {
                        let (mut a, mut c) =
                            (vec![0u8; m.encoded_len()], vec![0u8; m.encoded_len()]);
                        m.encode_f16_on(backend, &h, &mut a).unwrap();
                        m.encode_f16(&h, &mut c).unwrap();
                        assert_eq!(a, c, "f16 {backend}");
                        m.encode_bf16_on(backend, &b, &mut a).unwrap();
                        m.encode_bf16(&b, &mut c).unwrap();
                        assert_eq!(a, c, "bf16 {backend}");
                    }
                }
            }
        }
    }
}
