//! Codebooks against independent numerics (quadrature, Monte Carlo, the
//! TurboQuant bounds), packing against a bit-by-bit reference, and the
//! kernels against naive implementations.

use proptest::prelude::*;
use tqkv::rng::SplitMix64;
use tqkv::{Codebook, Error, Rotation, codebook, pack};

/// `∫_a^b g` by composite Simpson with `n` (even) panels.
fn simpson(g: impl Fn(f64) -> f64, a: f64, b: f64, n: usize) -> f64 {
    let h = (b - a) / n as f64;
    let mut s = g(a) + g(b);
    for i in 1..n {
        let w = if i % 2 == 1 { 4.0 } else { 2.0 };
        s += w * g(a + i as f64 * h);
    }
    s * h / 3.0
}

/// Conditional mean of one coordinate of a uniform point on `S^{d−1}` in
/// `[a, b]`, with `t = sin θ` so the integrand `cos^{d−2} θ` is smooth (no
/// normalising constant needed: it cancels).
fn sphere_cell_mean(d: usize, a: f64, b: f64) -> f64 {
    let (ta, tb) = (a.asin(), b.asin());
    let w = |th: f64| th.cos().powi(d as i32 - 2);
    let num = simpson(|th| th.sin() * w(th), ta, tb, 20_000);
    let den = simpson(w, ta, tb, 20_000);
    num / den
}

fn normal_cell_mean(a: f64, b: f64) -> f64 {
    let (a, b) = (a.max(-40.0), b.min(40.0));
    let w = |t: f64| (-0.5 * t * t).exp();
    simpson(|t| t * w(t), a, b, 200_000) / simpson(w, a, b, 200_000)
}

/// Each centroid is the conditional mean of the cell between the midpoints
/// of its neighbours (the Lloyd–Max conditions, in the solver's f64).
fn assert_lloyd_max(cb: &Codebook, cell_mean: impl Fn(f64, f64) -> f64, lo: f64) {
    let c = cb.centroids_f64();
    let k = c.len();
    for i in 0..k {
        let a = if i == 0 { lo } else { 0.5 * (c[i - 1] + c[i]) };
        let b = if i + 1 == k {
            -lo
        } else {
            0.5 * (c[i] + c[i + 1])
        };
        let mean = cell_mean(a, b);
        assert!(
            (mean - c[i]).abs() <= 1e-9,
            "dim {:?} bits {} cell {i}: centroid {} vs conditional mean {}",
            cb.dim(),
            cb.bits(),
            c[i],
            mean
        );
    }
    // The f32 thresholds are the midpoints, to f32 rounding.
    for (j, &t) in cb.thresholds().iter().enumerate() {
        let mid = 0.5 * (c[j] + c[j + 1]);
        assert!(
            (t as f64 - mid).abs() <= mid.abs() * 1.2e-7 + 1e-30,
            "threshold {j}"
        );
    }
}

#[test]
fn sphere_codebooks_satisfy_lloyd_max_conditions() {
    for dim in [2usize, 3, 7, 64, 100, 128, 1000, 65536] {
        for bits in 1..=4u8 {
            let cb = Codebook::lloyd_max(dim, bits).unwrap();
            assert_lloyd_max(&cb, |a, b| sphere_cell_mean(dim, a, b), -1.0);
        }
    }
    let cb = Codebook::lloyd_max(128, 7).unwrap();
    assert_lloyd_max(&cb, |a, b| sphere_cell_mean(128, a, b), -1.0);
}

#[test]
fn gaussian_codebooks_satisfy_lloyd_max_conditions() {
    for bits in [1u8, 2, 3, 4, 6] {
        let cb = Codebook::gaussian(bits).unwrap();
        assert_lloyd_max(&cb, normal_cell_mean, f64::NEG_INFINITY);
    }
    // Textbook values (Max 1960): 1 bit ±0.7979, 2 bits ±0.4528, ±1.510.
    let c = Codebook::gaussian(2).unwrap();
    let c = c.centroids();
    assert!((c[2] - 0.4528).abs() < 1e-4 && (c[3] - 1.5104).abs() < 1e-4);
    let expected_mse = [0.3634, 0.1175, 0.03455, 0.009497];
    for (bits, want) in (1..=4u8).zip(expected_mse) {
        let got = Codebook::gaussian(bits).unwrap().mse();
        assert!(
            (got - want).abs() < 2e-3 * want + 5e-6,
            "bits {bits}: {got} vs {want}"
        );
    }
}

/// Sorted, sized, and symmetric bit for bit (`c[L − 1 − k] = −c[k]`: the
/// AVX2 6-bit lookup reads the lower half only and negates).
#[test]
fn codebooks_are_symmetric_sorted_and_sized() {
    for dim in [2usize, 5, 64, 128, 256, 333, 4096] {
        for bits in 1..=8u8 {
            let cb = Codebook::lloyd_max(dim, bits).unwrap();
            let gaussian = Codebook::gaussian(bits).unwrap();
            for i in 0..gaussian.levels() {
                let c = gaussian.centroids();
                assert_eq!(c[i], -c[c.len() - 1 - i], "gaussian symmetric");
            }
            let c = cb.centroids();
            assert_eq!(c.len(), 1 << bits);
            assert_eq!(cb.thresholds().len(), (1 << bits) - 1);
            assert_eq!(cb.dim(), Some(dim));
            assert!(c.windows(2).all(|w| w[0] < w[1]), "sorted");
            for i in 0..c.len() {
                assert_eq!(c[i], -c[c.len() - 1 - i], "symmetric");
            }
            assert!(c.iter().all(|v| v.abs() < 1.0));
        }
    }
}

#[test]
fn mse_decreases_with_bits_within_the_turboquant_bounds() {
    let upper = 3f64.sqrt() * std::f64::consts::PI / 2.0;
    for dim in [64usize, 128, 256, 1000, 65536] {
        let mut previous = f64::INFINITY;
        for bits in 1..=8u8 {
            let mse = Codebook::lloyd_max(dim, bits).unwrap().mse();
            let scale = 4f64.powi(-(bits as i32));
            assert!(
                mse < previous,
                "dim {dim}: bits {bits} not below bits {}",
                bits - 1
            );
            assert!(
                mse >= scale && mse <= upper * scale,
                "dim {dim} bits {bits}: {mse}"
            );
            previous = mse;
        }
    }
}

#[test]
fn scaled_centroids_approach_the_gaussian_codebook() {
    for bits in 1..=4u8 {
        let g = Codebook::gaussian(bits).unwrap();
        let gap = |dim: usize| {
            let cb = Codebook::lloyd_max(dim, bits).unwrap();
            cb.centroids_f64()
                .iter()
                .zip(g.centroids_f64())
                .map(|(c, g)| (c * (dim as f64).sqrt() - g).abs())
                .fold(0.0, f64::max)
        };
        let (a, b, c) = (gap(64), gap(1024), gap(65536));
        assert!(a > b && b > c, "bits {bits}: {a} {b} {c}");
        assert!(c < 2e-3, "bits {bits}: still {c} apart at dim 65536");
    }
}

/// Standard normal pairs by Box–Muller from the crate's generator.
fn normal(g: &mut SplitMix64) -> f64 {
    let u1 = ((g.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let u2 = (g.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[test]
fn monte_carlo_error_matches_the_integrated_mse() {
    let dim = 128;
    let samples = 20_000;
    let rot = Rotation::new(dim, 77).unwrap();
    let mut g = SplitMix64::new(2026);
    let mut vectors = vec![0.0f32; dim * samples];
    for v in vectors.chunks_exact_mut(dim) {
        let x: Vec<f64> = (0..dim).map(|_| normal(&mut g)).collect();
        let n = x.iter().map(|a| a * a).sum::<f64>().sqrt();
        for (o, a) in v.iter_mut().zip(&x) {
            *o = (a / n) as f32;
        }
        rot.rotate(v).unwrap();
    }
    for bits in 1..=4u8 {
        let cb = Codebook::lloyd_max(dim, bits).unwrap();
        let mut packed = vec![0u8; pack::packed_len(dim, bits)];
        let mut back = vec![0.0f32; dim];
        let mut total = 0.0f64;
        for y in vectors.chunks_exact(dim) {
            codebook::quantize_packed(&cb, y, &mut packed).unwrap();
            codebook::dequantize(&cb, &packed, &mut back).unwrap();
            total += y
                .iter()
                .zip(&back)
                .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                .sum::<f64>();
        }
        let measured = total / samples as f64;
        let rel = (measured - cb.mse()).abs() / cb.mse();
        assert!(
            rel < 0.03,
            "bits {bits}: measured {measured}, integrated {}",
            cb.mse()
        );
    }
}

#[test]
fn bad_arguments_are_errors() {
    for bits in [0u8, 9, 255] {
        assert_eq!(
            Codebook::lloyd_max(128, bits),
            Err(Error::InvalidBits { bits })
        );
        assert_eq!(Codebook::gaussian(bits), Err(Error::InvalidBits { bits }));
        assert_eq!(
            pack::pack(bits, &[0], &mut [0u8; 4]),
            Err(Error::InvalidBits { bits })
        );
        assert_eq!(
            pack::unpack(bits, &[0u8; 4], &mut [0]),
            Err(Error::InvalidBits { bits })
        );
    }
    for dim in [0usize, 1, 65537] {
        assert_eq!(Codebook::lloyd_max(dim, 2), Err(Error::InvalidDim { dim }));
    }
    let cb = Codebook::lloyd_max(64, 3).unwrap();
    let x = [0.1f32; 64];
    let short = Err(Error::BufferTooShort {
        needed: 24,
        found: 23,
    });
    assert_eq!(codebook::quantize_packed(&cb, &x, &mut [0u8; 23]), short);
    assert_eq!(
        codebook::dot(&cb, &x, &[0u8; 23]),
        short.map(|_: usize| 0.0)
    );
    assert_eq!(
        codebook::dequantize(&cb, &[0u8; 23], &mut [0.0; 64]),
        short.map(|_| ())
    );
    assert_eq!(
        codebook::quantize(&cb, &x, &mut [0u8; 63]),
        Err(Error::BufferTooShort {
            needed: 64,
            found: 63
        })
    );
    assert_eq!(pack::pack(3, &[0; 64], &mut [0u8; 23]), short);
    assert_eq!(pack::unpack(3, &[0u8; 23], &mut [0; 64]), short.map(|_| ()));
    assert_eq!(
        pack::pack(3, &[1, 8, 2], &mut [0u8; 2]),
        Err(Error::IndexOutOfRange { index: 8, bits: 3 })
    );
    // dot_rows: stride shorter than a row, or too few rows.
    let mut out = [0.0f32; 3];
    assert_eq!(
        codebook::dot_rows(&cb, &x, &[0u8; 72], 23, &mut out),
        Err(Error::BufferTooShort {
            needed: 24,
            found: 23
        })
    );
    assert_eq!(
        codebook::dot_rows(&cb, &x, &[0u8; 71], 24, &mut out),
        Err(Error::BufferTooShort {
            needed: 72,
            found: 71
        })
    );
    assert_eq!(
        codebook::dot_rows(&cb, &x, &[0u8; 8], usize::MAX, &mut out),
        Err(Error::BufferTooShort {
            needed: usize::MAX,
            found: 8
        })
    );
    assert_eq!(codebook::dot_rows(&cb, &x, &[], 24, &mut []), Ok(()));
}

// ------------------------------------------------------------ packing

/// Bit-by-bit reference of the documented layout.
fn naive_pack(bits: u8, idx: &[u8]) -> Vec<u8> {
    let b = bits as usize;
    let mut out = vec![0u8; (idx.len() * b).div_ceil(8)];
    for (i, &v) in idx.iter().enumerate() {
        for k in 0..b {
            if (v >> k) & 1 == 1 {
                let bit = i * b + k;
                out[bit / 8] |= 1 << (bit % 8);
            }
        }
    }
    out
}

fn codes() -> impl Strategy<Value = (u8, Vec<u8>)> {
    (1u8..=8).prop_flat_map(|bits| {
        let max = ((1u16 << bits) - 1) as u8;
        (Just(bits), prop::collection::vec(0..=max, 0..300))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn pack_matches_the_bit_by_bit_layout_and_round_trips((bits, idx) in codes(), slack in 0usize..3) {
        let want = naive_pack(bits, &idx);
        prop_assert_eq!(pack::packed_len(idx.len(), bits), want.len());
        let mut out = vec![0xAAu8; want.len() + slack];
        let n = pack::pack(bits, &idx, &mut out).unwrap();
        prop_assert_eq!(n, want.len());
        prop_assert_eq!(&out[..n], &want[..]);
        prop_assert!(out[n..].iter().all(|&b| b == 0xAA), "wrote past the packed length");
        let mut back = vec![0u8; idx.len()];
        pack::unpack(bits, &out, &mut back).unwrap();
        prop_assert_eq!(back, idx);
    }

    #[test]
    fn kernels_match_naive_references(
        dim in 2usize..300,
        bits in 1u8..=8,
        offset in 0usize..8,
        seed in any::<u64>(),
        rows in 0usize..5,
    ) {
        let cb = Codebook::lloyd_max(dim.max(2), bits).unwrap();
        let sigma = 1.0 / (dim as f64).sqrt();
        let mut g = SplitMix64::new(seed);
        let buf: Vec<f32> = (0..dim + offset).map(|_| (normal(&mut g) * sigma * 1.5) as f32).collect();
        let x = &buf[offset..];
        let t = cb.thresholds();
        let c = cb.centroids();

        // quantize: the documented rule, and it is the nearest centroid.
        let mut idx = vec![0u8; dim];
        codebook::quantize(&cb, x, &mut idx).unwrap();
        for (&v, &i) in x.iter().zip(&idx) {
            prop_assert_eq!(i as usize, t.iter().filter(|&&th| v > th).count());
            let best = c.iter().map(|&cj| (v - cj).abs()).fold(f32::INFINITY, f32::min);
            prop_assert!((v - c[i as usize]).abs() <= best + 1e-6 * sigma as f32);
        }

        // quantize_packed = pack ∘ quantize; dequantize = c ∘ unpack.
        let len = pack::packed_len(dim, bits);
        let mut packed = vec![0u8; len + offset];
        let n = codebook::quantize_packed(&cb, x, &mut packed[offset..]).unwrap();
        prop_assert_eq!(n, len);
        prop_assert_eq!(&packed[offset..], &naive_pack(bits, &idx)[..]);
        let mut deq = vec![0.0f32; dim];
        codebook::dequantize(&cb, &packed[offset..], &mut deq).unwrap();
        for (&d, &i) in deq.iter().zip(&idx) {
            prop_assert_eq!(d, c[i as usize]);
        }

        // dot within 1e-5 of the f64 sum, relative to Σ|q·c|.
        let q: Vec<f32> = (0..dim).map(|_| normal(&mut g) as f32).collect();
        let got = codebook::dot(&cb, &q, &packed[offset..]).unwrap() as f64;
        let exact: f64 = q.iter().zip(&deq).map(|(a, b)| *a as f64 * *b as f64).sum();
        let scale: f64 = q.iter().zip(&deq).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
        prop_assert!((got - exact).abs() <= 1e-5 * scale + 1e-30, "{} vs {}", got, exact);

        // dot_rows = dot of every row, with a stride longer than a row: the
        // backend's own dot, or for rows in row blocks (four on NEON) the
        // scalar one, which those blocks equal bit for bit.
        let stride = len + 3;
        let mut all = vec![0u8; rows * stride];
        for r in 0..rows {
            let row: Vec<f32> = (0..dim).map(|_| (normal(&mut g) * sigma) as f32).collect();
            codebook::quantize_packed(&cb, &row, &mut all[r * stride..]).unwrap();
        }
        let mut scores = vec![0.0f32; rows];
        codebook::dot_rows(&cb, &q, &all, stride, &mut scores).unwrap();
        for (r, &s) in scores.iter().enumerate() {
            let one = codebook::dot(&cb, &q, &all[r * stride..]).unwrap();
            let scalar = codebook::dot_on(tqkv::Backend::Scalar, &cb, &q, &all[r * stride..]).unwrap();
            prop_assert!(
                s.to_bits() == one.to_bits() || s.to_bits() == scalar.to_bits(),
                "row {}: {} against dot {} and scalar {}", r, s, one, scalar
            );
        }
    }
}

#[test]
fn thresholds_and_their_neighbours_quantize_to_the_count_below_on_every_backend() {
    // Ties go down (`x > t` only), which a search of the wrong side or a
    // misplaced probe gets wrong exactly here.
    for bits in 1..=8u8 {
        let cb = Codebook::lloyd_max(128, bits).unwrap();
        let t = cb.thresholds();
        let mut xs = vec![0.0f32, -0.0, f32::MAX, -f32::MAX, 1e-40, -1e-40];
        for &v in t.iter().chain(cb.centroids()) {
            xs.extend([v, v.next_up(), v.next_down()]);
        }
        let want: Vec<u8> = xs
            .iter()
            .map(|&x| t.iter().filter(|&&v| x > v).count() as u8)
            .collect();
        for backend in tqkv::Backend::available() {
            let mut idx = vec![0u8; xs.len()];
            codebook::quantize_on(backend, &cb, &xs, &mut idx).unwrap();
            assert_eq!(idx, want, "{backend} bits {bits}");
        }
    }
}

#[test]
fn edge_values_quantize_as_documented() {
    for bits in 1..=8u8 {
        let cb = Codebook::lloyd_max(128, bits).unwrap();
        let top = (cb.levels() - 1) as u8;
        let mut idx = [0u8; 6];
        codebook::quantize(
            &cb,
            &[-f32::MAX, -1.0e-40, 0.0, -0.0, 1.0e-40, f32::MAX],
            &mut idx,
        )
        .unwrap();
        assert_eq!(
            idx,
            [0, top / 2, top / 2, top / 2, top / 2 + 1, top],
            "bits {bits}"
        );
        // The per-value lookup is total: NaN goes to 0, ±∞ to the ends.
        assert_eq!(
            [f32::NAN, f32::INFINITY, f32::NEG_INFINITY].map(|v| cb.index(v)),
            [0, top, 0]
        );
        // The slice kernels refuse non-finite input on every backend, as
        // encoding does, rather than store an index for it.
        for backend in tqkv::Backend::available() {
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let x = [0.5, bad, 0.25];
                let mut packed = [0u8; 8];
                assert_eq!(
                    codebook::quantize_on(backend, &cb, &x, &mut idx[..3]),
                    Err(tqkv::Error::NonFinite)
                );
                assert_eq!(
                    codebook::quantize_packed_on(backend, &cb, &x, &mut packed),
                    Err(tqkv::Error::NonFinite)
                );
                assert_eq!(
                    codebook::dot_on(backend, &cb, &x, &packed),
                    Err(tqkv::Error::NonFinite)
                );
                assert_eq!(
                    codebook::dot_rows_on(backend, &cb, &x, &packed, 3, &mut [0.0; 2]),
                    Err(tqkv::Error::NonFinite)
                );
            }
        }
        // A value exactly on a threshold goes to the lower index, the next
        // float up to the upper one.
        for (j, &t) in cb.thresholds().iter().enumerate() {
            assert_eq!(cb.index(t) as usize, j);
            assert_eq!(
                cb.index(f32::from_bits(if t > 0.0 {
                    t.to_bits() + 1
                } else if t < 0.0 {
                    t.to_bits() - 1
                } else {
                    1
                })) as usize,
                j + 1
            );
        }
    }
}

// ------------------------------------------------- backends against scalar

fn simd_backends() -> Vec<tqkv::Backend> {
    tqkv::Backend::available()
        .filter(|&b| b != tqkv::Backend::Scalar)
        .collect()
}

/// Coordinates of rotated vectors (mostly), plus the values the kernels
/// must survive.
fn coordinate(sigma: f32) -> impl Strategy<Value = f32> {
    prop_oneof![
        12 => (-3.0f32..3.0).prop_map(move |v| v * sigma),
        1 => Just(0.0f32),
        1 => Just(-0.0f32),
        1 => Just(f32::MAX),
        1 => Just(-f32::MAX),
        1 => Just(-1.0e-40f32),
        // Every finite f32 (non-finite input is refused: tested above).
        1 => any::<f32>().prop_map(|v| if v.is_finite() { v } else { 0.0 }),
    ]
}

fn backend_case() -> impl Strategy<Value = (u8, usize, usize, Vec<f32>, Vec<f32>)> {
    (1u8..=8, 0usize..300, 0usize..16).prop_flat_map(|(bits, n, offset)| {
        (
            Just(bits),
            Just(n),
            Just(offset),
            prop::collection::vec(coordinate(0.09), n + offset),
            prop::collection::vec(-2.0f32..2.0, n + offset),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_backend_matches_scalar((bits, n, offset, xs, qs) in backend_case(), rows in 0usize..4) {
        use tqkv::Backend;
        let cb = Codebook::lloyd_max(128, bits).unwrap();
        let x = &xs[offset..];
        let q = &qs[offset..];
        let len = pack::packed_len(n, bits);

        let mut idx_ref = vec![0u8; n];
        codebook::quantize_on(Backend::Scalar, &cb, x, &mut idx_ref).unwrap();
        let mut packed_ref = vec![0u8; len + offset];
        codebook::quantize_packed_on(Backend::Scalar, &cb, x, &mut packed_ref[offset..]).unwrap();
        let packed = &packed_ref[offset..];
        let mut deq_ref = vec![0.0f32; n];
        codebook::dequantize_on(Backend::Scalar, &cb, packed, &mut deq_ref).unwrap();
        let dot_ref = codebook::dot_on(Backend::Scalar, &cb, q, packed).unwrap();
        let scale: f32 = q.iter().zip(&deq_ref).map(|(a, b)| (a * b).abs()).sum();

        let stride = len + 1;
        let mut many = vec![0u8; rows * stride];
        for r in 0..rows {
            let shifted: Vec<f32> = x.iter().map(|v| (v * (r as f32 + 0.5)).clamp(-f32::MAX, f32::MAX)).collect();
            codebook::quantize_packed_on(Backend::Scalar, &cb, &shifted, &mut many[r * stride..]).unwrap();
        }
        let mut rows_ref = vec![0.0f32; rows];
        codebook::dot_rows_on(Backend::Scalar, &cb, q, &many, stride, &mut rows_ref).unwrap();

        for backend in simd_backends() {
            let mut idx = vec![0u8; n];
            codebook::quantize_on(backend, &cb, x, &mut idx).unwrap();
            prop_assert_eq!(&idx, &idx_ref, "quantize on {}", backend);

            let mut p = vec![0x5Au8; len + 3];
            prop_assert_eq!(codebook::quantize_packed_on(backend, &cb, x, &mut p[3..]).unwrap(), len);
            prop_assert_eq!(&p[3..], packed, "quantize_packed on {}", backend);

            let mut deq = vec![0.0f32; n + offset];
            codebook::dequantize_on(backend, &cb, packed, &mut deq[offset..]).unwrap();
            let bits_of = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits_of(&deq[offset..]), bits_of(&deq_ref), "dequantize on {}", backend);

            let d = codebook::dot_on(backend, &cb, q, packed).unwrap();
            prop_assert!((d - dot_ref).abs() <= 1e-5 * scale, "dot on {}: {} vs {}", backend, d, dot_ref);

            let f = codebook::dot_f32_on(backend, q, x).unwrap();
            let f_ref = codebook::dot_f32_on(Backend::Scalar, q, x).unwrap();
            let f_scale: f32 = q.iter().zip(x).map(|(a, b)| (a * b).abs()).sum();
            if f_scale.is_finite() {
                prop_assert!((f - f_ref).abs() <= 1e-5 * f_scale, "dot_f32 on {}: {} vs {}", backend, f, f_ref);
            }

            let mut got = vec![0.0f32; rows];
            codebook::dot_rows_on(backend, &cb, q, &many, stride, &mut got).unwrap();
            for (g, w) in got.iter().zip(&rows_ref) {
                // Σ|q|·max|c| bounds Σ|q·c| for any row.
                let cmax = cb.centroids().iter().fold(0.0f32, |m, c| m.max(c.abs()));
                let row_scale = q.iter().map(|v| v.abs()).sum::<f32>() * cmax + 1e-30;
                prop_assert!((g - w).abs() <= 1e-5 * row_scale, "dot_rows on {}: {} vs {}", backend, g, w);
            }
        }
    }
}

#[test]
fn unavailable_backends_are_errors_for_codebook_kernels() {
    let cb = Codebook::lloyd_max(64, 2).unwrap();
    for &backend in tqkv::Backend::ALL {
        if backend.is_available() {
            continue;
        }
        let unavailable = Err(Error::BackendUnavailable(backend));
        assert_eq!(
            codebook::quantize_on(backend, &cb, &[0.0; 8], &mut [0; 8]),
            unavailable
        );
        assert_eq!(
            codebook::dot_on(backend, &cb, &[0.0; 8], &[0; 2]),
            unavailable.map(|_| 0.0)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Many rows, so that backends that score blocks of rows at once (AVX-512,
    /// AVX2 and NEON at 1–4 bits, from the packed dwords) run that path,
    /// including partial chunks, odd strides and a tail of single rows.
    #[test]
    fn dot_rows_blocks_match_scalar(
        bits in prop::sample::select(vec![1u8, 2, 3, 4, 5, 6, 8]),
        d in 1usize..300,
        rows in 16usize..70,
        extra in 0usize..5,
        seed in any::<u64>(),
    ) {
        use tqkv::Backend;
        let cb = Codebook::lloyd_max(d.max(2), bits).unwrap();
        let mut g = SplitMix64::new(seed);
        let sigma = 1.0 / (d as f64).sqrt();
        let q: Vec<f32> = (0..d).map(|_| normal(&mut g) as f32).collect();
        let len = pack::packed_len(d, bits);
        let stride = len + extra;
        let mut packed = vec![0u8; rows * stride];
        for r in 0..rows {
            let x: Vec<f32> = (0..d).map(|_| (normal(&mut g) * sigma) as f32).collect();
            codebook::quantize_packed_on(Backend::Scalar, &cb, &x, &mut packed[r * stride..]).unwrap();
        }
        // The buffer ends exactly at the last row's codes (no slack to hide
        // an over-read from the tests' allocator).
        let packed = &packed[..(rows - 1) * stride + len];
        let mut want = vec![0.0f32; rows];
        codebook::dot_rows_on(Backend::Scalar, &cb, &q, packed, stride, &mut want).unwrap();
        let cmax = cb.centroids().iter().fold(0.0f32, |m, c| m.max(c.abs()));
        let bound = 1e-5 * q.iter().map(|v| v.abs()).sum::<f32>() * cmax + 1e-30;
        for backend in simd_backends() {
            let mut got = vec![0.0f32; rows];
            codebook::dot_rows_on(backend, &cb, &q, packed, stride, &mut got).unwrap();
            for (r, (g, w)) in got.iter().zip(&want).enumerate() {
                prop_assert!((g - w).abs() <= bound, "row {} on {}: {} vs {}", r, backend, g, w);
            }
            let (lanes, blocked_bits) = match backend {
                Backend::Avx512 => (16, &[1u8, 2, 3, 4][..]),
                // At 4 bits (d a multiple of 8 up to 256) AVX2 scores from
                // the byte planes instead, in an order of their own
                // (`avx2_key_and_value_rows_take_the_documented_operations`).
                Backend::Avx2 if d % 8 != 0 || d > 256 => (8, &[1u8, 2, 3, 4][..]),
                Backend::Avx2 => (8, &[1u8, 2, 3][..]),
                Backend::Neon => (4, &[1u8, 2, 3, 4][..]),
                _ => (0, &[][..]),
            };
            if lanes > 0 && blocked_bits.contains(&bits) && d <= 256 {
                let blocked = rows / lanes * lanes;
                let bits_of = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                prop_assert_eq!(bits_of(&got[..blocked]), bits_of(&want[..blocked]), "blocked rows are exact");
            }
        }
    }
}

/// On AVX-512, rows of 1–4-bit codes (up to 256 coordinates) add one FMA
/// per code and row, in row order, onto `out`: whether the codes are
/// looked up in place (4 bits, 128 and 256 coordinates) or spread to bytes
/// first (the rest), the sums equal, bit for bit, a reference that does
/// just that from the dequantised rows, read unaligned with gaps between
/// rows.
#[test]
fn avx512_value_rows_add_one_fma_per_code_in_row_order() {
    use tqkv::Backend;
    if !Backend::available().any(|b| b == Backend::Avx512) {
        eprintln!("no AVX-512 here: nothing to compare");
        return;
    }
    let mut g = SplitMix64::new(11);
    for bits in 1..=4u8 {
        for d in [48, 64, 96, 128, 192, 256] {
            let cb = Codebook::lloyd_max(d, bits).unwrap();
            let (rows, stride, offset) = (41, pack::packed_len(d, bits) + 3, 5);
            let mut storage = vec![0u8; offset + rows * stride];
            let mut centroids = vec![0.0f32; rows * d];
            for (r, c) in centroids.chunks_exact_mut(d).enumerate() {
                let x: Vec<f32> = (0..d).map(|_| normal(&mut g) as f32).collect();
                let row = &mut storage[offset + r * stride..];
                codebook::quantize_packed_on(Backend::Scalar, &cb, &x, row).unwrap();
                codebook::dequantize_on(Backend::Scalar, &cb, row, c).unwrap();
            }
            let w: Vec<f32> = (0..rows).map(|_| normal(&mut g) as f32).collect();
            let start: Vec<f32> = (0..d).map(|_| normal(&mut g) as f32).collect();
            let mut want = start.clone();
            for (c, &w) in centroids.chunks_exact(d).zip(&w) {
                for (o, &c) in want.iter_mut().zip(c) {
                    *o = c.mul_add(w, *o);
                }
            }
            let packed = &storage[offset..offset + (rows - 1) * stride + pack::packed_len(d, bits)];
            let mut got = start.clone();
            codebook::accumulate_rows_on(Backend::Avx512, &cb, packed, stride, &w, &mut got)
                .unwrap();
            for (j, (a, b)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "{bits} bits, d = {d}, coordinate {j}"
                );
            }
        }
    }
}

/// Rows of 1-bit codes back to back (`d/8` bytes apart, the cache's
/// layout) add `±w·c[1]` per code: on AVX-512 they are the sign sums of
/// the weights times `c[1]`, eight rows at a time, so they equal the
/// AVX-512 `accumulate_signs_rows` of those weights bit for bit; on every
/// backend they stay within the kernels' tolerance of the scalar sums.
/// Row counts below, at and past the eight a step, onto non-zero sums.
#[test]
fn one_bit_value_rows_back_to_back_are_sign_sums_of_the_centroid() {
    use tqkv::Backend;
    let mut g = SplitMix64::new(23);
    for d in [16usize, 48, 64, 128, 192, 256] {
        let cb = Codebook::lloyd_max(d, 1).unwrap();
        let c1 = cb.centroids()[1];
        assert_eq!(cb.centroids()[0], -c1);
        for n in [0usize, 1, 7, 8, 9, 37] {
            let stride = d / 8;
            let codes: Vec<u8> = (0..n * stride)
                .map(|_| (g.next_u64() >> 56) as u8)
                .collect();
            let w: Vec<f32> = (0..n).map(|_| normal(&mut g) as f32).collect();
            let start: Vec<f32> = (0..d).map(|_| normal(&mut g) as f32).collect();
            let run = |backend| {
                let mut out = start.clone();
                codebook::accumulate_rows_on(backend, &cb, &codes, stride, &w, &mut out).unwrap();
                out
            };
            let want = run(Backend::Scalar);
            let scale = 1.0 + w.iter().map(|x| x.abs()).sum::<f32>() * c1;
            for backend in Backend::available() {
                let got = run(backend);
                for (j, (a, b)) in got.iter().zip(&want).enumerate() {
                    let close = (a - b).abs() <= 1e-5 * (scale + b.abs());
                    assert!(
                        close,
                        "{backend} d = {d}, n = {n}, coordinate {j}: {a} vs {b}"
                    );
                }
                if backend == Backend::Avx512 {
                    let scaled: Vec<f32> = w.iter().map(|&x| x * c1).collect();
                    let mut signs = start.clone();
                    tqkv::qjl::accumulate_signs_rows_on(
                        backend, &codes, stride, &scaled, &mut signs,
                    )
                    .unwrap();
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&signs), "d = {d}, n = {n}");
                }
            }
        }
    }
}

/// Rows of `d` codes of `cb`'s width, `rows` of them `stride` apart after
/// `offset` bytes, the buffer ending at the last row's last byte (so that
/// the kernels' group loads must stop short of it): the buffer, and each
/// row dequantised.
fn wide_rows(
    cb: &Codebook,
    d: usize,
    rows: usize,
    gap: usize,
    g: &mut SplitMix64,
) -> (Vec<u8>, usize, Vec<f32>) {
    use tqkv::Backend;
    let bits = cb.bits();
    let (stride, offset) = (pack::packed_len(d, bits) + gap, 5);
    let mut storage = vec![0u8; offset + rows * stride];
    let mut centroids = vec![0.0f32; rows * d];
    for (r, c) in centroids.chunks_exact_mut(d).enumerate() {
        let x: Vec<f32> = (0..d).map(|_| normal(g) as f32).collect();
        let row = &mut storage[offset + r * stride..];
        codebook::quantize_packed_on(Backend::Scalar, cb, &x, row).unwrap();
        codebook::dequantize_on(Backend::Scalar, cb, row, c).unwrap();
    }
    storage.truncate(offset + (rows - 1) * stride + pack::packed_len(d, bits));
    (storage.split_off(offset), stride, centroids)
}

/// On AVX2, rows of 4-, 5- and 6-bit codes (`d` a multiple of 8), read in
/// place or (the last rows, whose reads would pass the buffer's end)
/// copied: bit for bit references written from the dequantised rows.
/// Values add one FMA per code and row, in row order, onto `out`. Keys are
/// scored in the documented order of the 8-lane kernels: up to 256
/// coordinates, that of the byte planes ([`avx2_plane_key_order`]), past
/// it that of the portable loop's groups of 8 ([`avx2_group_key_order`]).
#[test]
fn avx2_key_and_value_rows_take_the_documented_operations() {
    use tqkv::Backend;
    if !Backend::available().any(|b| b == Backend::Avx2) {
        eprintln!("no AVX2 here: nothing to compare");
        return;
    }
    let mut g = SplitMix64::new(12);
    for bits in [4u8, 5, 6] {
        for d in [8, 24, 64, 72, 128, 200, 256, 264, 320] {
            for gap in [0, 3] {
                let what = format!("{bits} bits, d = {d}, gap {gap}");
                let cb = Codebook::lloyd_max(d, bits).unwrap();
                let rows = 9;
                let (packed, stride, centroids) = wide_rows(&cb, d, rows, gap, &mut g);
                let bits_of = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                values_are_fmas_in_row_order(
                    Backend::Avx2,
                    &cb,
                    (&packed, stride, d),
                    &centroids,
                    &what,
                    &mut g,
                );
                // Keys.
                let q: Vec<f32> = (0..d).map(|_| normal(&mut g) as f32).collect();
                let mut got = vec![0.0f32; rows];
                codebook::dot_rows_on(Backend::Avx2, &cb, &q, &packed, stride, &mut got).unwrap();
                let want: Vec<f32> = centroids
                    .chunks_exact(d)
                    .map(|c| match (d, bits) {
                        (..=256, 4) => avx2_plane_key_order(&q, c, nibble_lane),
                        (..=256, _) => avx2_plane_key_order(&q, c, spread_lane),
                        _ => avx2_group_key_order(&q, c),
                    })
                    .collect();
                assert_eq!(bits_of(&got), bits_of(&want), "keys, {what}");
            }
        }
    }
}

/// The sum of 8 lanes as the AVX2 kernels take it: the halves added,
/// then pairs, then the last two.
fn avx2_lane_sum(v: [f32; 8]) -> f32 {
    let h: Vec<f32> = (0..4).map(|l| v[l] + v[l + 4]).collect();
    (h[0] + h[2]) + (h[1] + h[3])
}

/// `q·c` as AVX2 scores keys of 4 to 6 bits from the byte planes, in four
/// chains of 8-lane sums: register `i` of each 32 coordinates adds into
/// chain `i`, its lane `l` taking coordinate `lane(i, l)` of the 32; the
/// groups of 8 past the last 32 into chains 0, 1, 2, … in turn, in order;
/// then `(s0 + s1) + (s2 + s3)` and the lanes summed.
fn avx2_plane_key_order(q: &[f32], c: &[f32], lane: fn(usize, usize) -> usize) -> f32 {
    let d = q.len();
    let mut acc = [[0.0f32; 8]; 4];
    let mut fma = |j: usize, s: usize, l: usize| acc[s][l] = q[j].mul_add(c[j], acc[s][l]);
    for m in 0..d / 32 {
        for i in 0..4 {
            for l in 0..8 {
                fma(32 * m + lane(i, l), i, l);
            }
        }
    }
    for (k, g) in (4 * (d / 32)..d / 8).enumerate() {
        for l in 0..8 {
            fma(8 * g + l, k % 4, l);
        }
    }
    avx2_lane_sum(core::array::from_fn(|l| {
        (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l])
    }))
}

/// Where the 4-bit planes put coordinates: register `i` holds `8i … 8i +
/// 7`, the even ones in its lower four lanes and the odd in its upper.
fn nibble_lane(i: usize, l: usize) -> usize {
    8 * i + [0, 2, 4, 6, 1, 3, 5, 7][l]
}

/// Where the 5- and 6-bit planes put coordinates: register `i` holds
/// `4i … 4i + 3` in its lower four lanes and `16 + 4i …` in its upper.
fn spread_lane(i: usize, l: usize) -> usize {
    4 * i + l % 4 + 16 * (l / 4)
}

/// `q·c` as AVX2 scores keys of 4 to 6 bits in groups of 8 (past 256
/// coordinates, the portable loop's order): four sums of 8 lanes taking 32 codes a step, the last 8s
/// of a 64-code chunk in the first, the sums folded as
/// `(s0 + s1) + (s2 + s3)`, then the lanes summed, then `+ 0.0` (the
/// portable loop's empty tail).
fn avx2_group_key_order(q: &[f32], c: &[f32]) -> f32 {
    let d = q.len();
    let mut acc = [[0.0f32; 8]; 4];
    for base in (0..d).step_by(64) {
        let n = (d - base).min(64);
        let (mut at, fours) = (0, n / 32 * 32);
        while at + 8 <= n {
            let s = if at < fours { (at / 8) % 4 } else { 0 };
            for (l, a) in acc[s].iter_mut().enumerate() {
                let j = base + at + l;
                *a = q[j].mul_add(c[j], *a);
            }
            at += 8;
        }
    }
    let v: [f32; 8] = core::array::from_fn(|l| (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]));
    avx2_lane_sum(v) + 0.0
}

/// On AVX2, value rows of 1 to 4 bits add one FMA per code and row, in
/// row order, onto `out`, bit for bit: at 4 bits 32 coordinates at a time
/// from the centroids' byte planes (their sums kept in another lane order
/// and put back), the rest of `d` 8 at a time; rows read in place and
/// copied near the buffer's end; one row and many.
#[test]
fn avx2_narrow_value_rows_are_fmas_in_row_order() {
    let dims = [8, 16, 24, 32, 40, 64, 72, 96, 120, 128, 200, 256];
    value_rows_are_fmas_in_row_order(tqkv::Backend::Avx2, &[1, 2, 3, 4], &dims, 13);
}

/// On AVX-512, value rows of 5 and 6 bits add one FMA per code and row, in
/// row order, onto `out`, bit for bit: looked up from the centroids'
/// registers at 5 bits, and at 6 from their byte planes on a Zen 4 (their
/// sums kept in another lane order and put back); whole and partial chunks
/// of 64 coordinates, one row and many, rows back to back and apart.
#[test]
fn avx512_wide_value_rows_are_fmas_in_row_order() {
    let dims = [16, 32, 48, 64, 80, 96, 128, 176, 192, 256];
    value_rows_are_fmas_in_row_order(tqkv::Backend::Avx512, &[5, 6], &dims, 14);
}

/// [`values_are_fmas_in_row_order`] on `backend` (if this host has it) for
/// every width in `widths` and row length in `dims`: one row, nine back to
/// back and apart, forty.
fn value_rows_are_fmas_in_row_order(
    backend: tqkv::Backend,
    widths: &[u8],
    dims: &[usize],
    seed: u64,
) {
    if !tqkv::Backend::available().any(|b| b == backend) {
        eprintln!("no {backend} here: nothing to compare");
        return;
    }
    let mut g = SplitMix64::new(seed);
    for &bits in widths {
        for &d in dims {
            for (rows, gap) in [(1, 0), (9, 0), (9, 3), (40, 1)] {
                let what = format!("{bits} bits, d = {d}, {rows} rows, gap {gap}");
                let cb = Codebook::lloyd_max(d, bits).unwrap();
                let (packed, stride, centroids) = wide_rows(&cb, d, rows, gap, &mut g);
                values_are_fmas_in_row_order(
                    backend,
                    &cb,
                    (&packed, stride, d),
                    &centroids,
                    &what,
                    &mut g,
                );
            }
        }
    }
}

/// `backend`'s weighted sum of the rows of `d` codes (`centroids`: each row
/// dequantised), with random weights onto a random `out`, against one FMA
/// per code and row in row order, bit for bit.
fn values_are_fmas_in_row_order(
    backend: tqkv::Backend,
    cb: &Codebook,
    (packed, stride, d): (&[u8], usize, usize),
    centroids: &[f32],
    what: &str,
    g: &mut SplitMix64,
) {
    let rows = centroids.len() / d;
    let w: Vec<f32> = (0..rows).map(|_| normal(g) as f32).collect();
    let start: Vec<f32> = (0..d).map(|_| normal(g) as f32).collect();
    let mut want = start.clone();
    for (c, &w) in centroids.chunks_exact(d).zip(&w) {
        for (o, &c) in want.iter_mut().zip(c) {
            *o = c.mul_add(w, *o);
        }
    }
    let mut got = start;
    codebook::accumulate_rows_on(backend, cb, packed, stride, &w, &mut got).unwrap();
    let bits_of = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits_of(&got), bits_of(&want), "values, {what}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn accumulate_rows_matches_scalar_and_dequantize(
        bits in 1u8..=8,
        d in 1usize..200,
        rows in 0usize..12,
        gap in 0usize..3,
        seed in any::<u64>(),
    ) {
        use tqkv::Backend;
        let cb = Codebook::lloyd_max(d.max(2), bits).unwrap();
        let mut g = SplitMix64::new(seed);
        let len = pack::packed_len(d, bits);
        let stride = len + gap;
        let mut packed = vec![0u8; rows * stride];
        for r in 0..rows {
            let x: Vec<f32> = (0..d).map(|_| (normal(&mut g) * 0.1) as f32).collect();
            codebook::quantize_packed_on(Backend::Scalar, &cb, &x, &mut packed[r * stride..]).unwrap();
        }
        let packed = &packed[..if rows == 0 { 0 } else { (rows - 1) * stride + len }];
        let w: Vec<f32> = (0..rows).map(|_| normal(&mut g) as f32).collect();
        // The reference, from dequantize in f64.
        let mut want = vec![0.0f64; d];
        let mut row = vec![0.0f32; d];
        for r in 0..rows {
            codebook::dequantize_on(Backend::Scalar, &cb, &packed[r * stride..], &mut row).unwrap();
            for (o, &v) in want.iter_mut().zip(&row) {
                *o += w[r] as f64 * v as f64;
            }
        }
        let cmax = cb.centroids().iter().fold(0.0f32, |m, c| m.max(c.abs())) as f64;
        let bound = 1e-5 * w.iter().map(|v| v.abs() as f64).sum::<f64>() * cmax + 1e-30;
        for backend in Backend::available() {
            let mut got = vec![0.0f32; d];
            codebook::accumulate_rows_on(backend, &cb, packed, stride, &w, &mut got).unwrap();
            for (j, (a, b)) in got.iter().zip(&want).enumerate() {
                prop_assert!((*a as f64 - b).abs() <= bound, "coord {} on {}: {} vs {}", j, backend, a, b);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Rows of whole vectors at 1–4 bits (the shapes the AVX-512 register
    /// path takes, up to 256 coordinates, and past its limits: more than
    /// 256 coordinates, more than 64 bytes a row — a regression: 320
    /// one-bit codes fit in 40 bytes but not in its 16 registers), added
    /// onto a non-zero `out`, from unaligned rows: every backend against
    /// the scalar kernel.
    #[test]
    fn accumulate_rows_in_whole_vectors_matches_scalar(
        bits in 1u8..=4,
        vectors in 1usize..=32,
        rows in 0usize..40,
        gap in 0usize..3,
        offset in 0usize..64,
        seed in any::<u64>(),
    ) {
        use tqkv::Backend;
        let d = 16 * vectors;
        let cb = Codebook::lloyd_max(d, bits).unwrap();
        let mut g = SplitMix64::new(seed);
        let len = pack::packed_len(d, bits);
        let stride = len + gap;
        let mut storage = vec![0u8; offset + rows * stride];
        let packed_all = &mut storage[offset..];
        for r in 0..rows {
            let x: Vec<f32> = (0..d).map(|_| (normal(&mut g) * 0.1) as f32).collect();
            codebook::quantize_packed_on(Backend::Scalar, &cb, &x, &mut packed_all[r * stride..]).unwrap();
        }
        let packed = &packed_all[..if rows == 0 { 0 } else { (rows - 1) * stride + len }];
        let w: Vec<f32> = (0..rows).map(|_| normal(&mut g) as f32).collect();
        let start: Vec<f32> = (0..d).map(|_| normal(&mut g) as f32).collect();
        let mut want = start.clone();
        codebook::accumulate_rows_on(Backend::Scalar, &cb, packed, stride, &w, &mut want).unwrap();
        let cmax = cb.centroids().iter().fold(0.0f32, |m, c| m.max(c.abs()));
        let scale = w.iter().map(|v| v.abs()).sum::<f32>() * cmax
            + start.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for backend in Backend::available() {
            let mut got = start.clone();
            codebook::accumulate_rows_on(backend, &cb, packed, stride, &w, &mut got).unwrap();
            for (j, (a, b)) in got.iter().zip(&want).enumerate() {
                prop_assert!((a - b).abs() <= 1e-5 * scale, "coord {} on {}: {} vs {}", j, backend, a, b);
            }
        }
    }
}
