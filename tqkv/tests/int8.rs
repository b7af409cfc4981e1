//! The 8-bit integer scores (`codebook::dot_rows_int8`, `Scoring::Int8`):
//! every backend gives the bits of a naive reference written from the
//! documented definition, they stay within the documented bound of the
//! exact scores, and attention with them stays close to exact attention.

use proptest::prelude::*;
use tqkv::attention::{
    Partial, Scoring, attend_many_with, attend_partial_with, probabilities_with, scratch_len,
};
use tqkv::quant::{CacheConfig, KvCache, Scheme};
use tqkv::rng::SplitMix64;
use tqkv::{Backend, Codebook, Error, codebook, pack};

fn normal(g: &mut SplitMix64) -> f64 {
    let u1 = ((g.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let u2 = (g.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// `x` rounded as documented: `round(x·127/max|x|)` in f64, halves away
/// from zero; and the scale `max|x|` (the caller divides by 127).
fn rounded(x: &[f32]) -> (Vec<i64>, f64) {
    let max = x.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
    if max == 0.0 {
        return (vec![0; x.len()], 0.0);
    }
    let r = x
        .iter()
        .map(|&v| (v as f64 * (127.0 / max)).round() as i64)
        .collect();
    (r, max)
}

/// The documented score of one packed row: the exact integer sum times
/// `(max|q|·max|c| / 127²)` rounded to f32, the sum rounded to f32, their
/// product rounded once.
fn naive_score(cb: &Codebook, q: &[f32], row: &[u8]) -> f32 {
    let mut idx = vec![0u8; q.len()];
    pack::unpack(cb.bits(), row, &mut idx).unwrap();
    let (q8, qmax) = rounded(q);
    let (c8, cmax) = rounded(cb.centroids());
    let sum: i64 = q8.iter().zip(&idx).map(|(a, &i)| a * c8[i as usize]).sum();
    let mult = (qmax * cmax / (127.0 * 127.0)) as f32;
    sum as f32 * mult
}

/// A query drawn from one of several shapes: Gaussian, with a few huge
/// or tiny values, all zero, or subnormal.
fn query(g: &mut SplitMix64, d: usize, kind: u8) -> Vec<f32> {
    (0..d)
        .map(|i| match kind {
            0 => normal(g) as f32,
            1 if i % 7 == 3 => (normal(g) * 1e30) as f32,
            1 => (normal(g) * 1e-3) as f32,
            2 => {
                if i % 2 == 0 {
                    0.0
                } else {
                    -0.0
                }
            }
            3 => (normal(g) * 1e-40) as f32,
            _ => (normal(g) * 1e-20) as f32,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Random widths, lengths (one to several 64-code chunks, and past the
    /// 256 codes the AVX-512 kernel keeps in registers), strides, offsets
    /// and row counts (whole blocks of 16 and tails), the buffer ending at
    /// the last row's codes.
    #[test]
    fn every_backend_gives_the_naive_reference_bits(
        bits in prop::sample::select(vec![1u8, 2, 3, 4, 5, 6, 7, 8]),
        d in 1usize..600,
        rows in 0usize..70,
        extra in 0usize..5,
        offset in 0usize..4,
        kind in 0u8..5,
        seed in any::<u64>(),
    ) {
        let cb = Codebook::lloyd_max(d.max(2), bits).unwrap();
        let mut g = SplitMix64::new(seed);
        let q = query(&mut g, d, kind);
        let len = pack::packed_len(d, bits);
        let stride = len + extra;
        let mut buf = vec![0u8; offset + rows * stride];
        for b in buf.iter_mut() {
            *b = g.next_u64() as u8;
        }
        let end = if rows == 0 { offset } else { offset + (rows - 1) * stride + len };
        let packed = &buf[offset..end];
        let want: Vec<u32> = (0..rows)
            .map(|r| naive_score(&cb, &q, &packed[r * stride..][..len]).to_bits())
            .collect();
        for backend in Backend::available() {
            let mut got = vec![f32::NAN; rows];
            codebook::dot_rows_int8_on(backend, &cb, &q, packed, stride, &mut got).unwrap();
            let got: Vec<u32> = got.iter().map(|f| f.to_bits()).collect();
            prop_assert_eq!(&got, &want, "{} bits, d {} on {}", bits, d, backend);
        }
    }

    /// The documented bound on the distance from the exact score (computed
    /// in f64 from the unpacked codes).
    #[test]
    fn int8_scores_are_within_the_documented_bound_of_exact(
        bits in 1u8..=6,
        d in 1usize..300,
        seed in any::<u64>(),
    ) {
        let cb = Codebook::lloyd_max(d.max(2), bits).unwrap();
        let c = cb.centroids();
        let mut g = SplitMix64::new(seed);
        let q = query(&mut g, d, 0);
        let rows = 40;
        let len = pack::packed_len(d, bits);
        let mut packed = vec![0u8; rows * len];
        for b in packed.iter_mut() {
            *b = g.next_u64() as u8;
        }
        let mut got = vec![0.0f32; rows];
        codebook::dot_rows_int8(&cb, &q, &packed, len, &mut got).unwrap();
        let sq = q.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64 / 127.0;
        let sc = c.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64 / 127.0;
        let mut idx = vec![0u8; d];
        for (r, &s) in got.iter().enumerate() {
            pack::unpack(bits, &packed[r * len..][..len], &mut idx).unwrap();
            let (mut exact, mut bound, mut mag) = (0.0f64, 0.0f64, 0.0f64);
            for (&qj, &i) in q.iter().zip(&idx) {
                let cj = c[i as usize] as f64;
                exact += qj as f64 * cj;
                mag += (qj as f64 * cj).abs();
                bound += sq / 2.0 * cj.abs() + sc / 2.0 * (qj as f64).abs() + sq * sc / 4.0;
            }
            let slack = 4.0 * f32::EPSILON as f64 * (mag + exact.abs()) + 1e-30;
            prop_assert!((s as f64 - exact).abs() <= bound + slack,
                "row {}: {} vs {} (bound {})", r, s, exact, bound);
        }
    }
}

#[test]
fn int8_scores_refuse_bad_input() {
    let cb = Codebook::lloyd_max(64, 4).unwrap();
    let rows = vec![0u8; 64];
    let mut out = [0.0f32; 2];
    let mut q = vec![0.5f32; 64];
    q[3] = f32::NAN;
    assert_eq!(
        codebook::dot_rows_int8(&cb, &q, &rows, 32, &mut out),
        Err(Error::NonFinite)
    );
    q[3] = f32::INFINITY;
    assert_eq!(
        codebook::dot_rows_int8(&cb, &q, &rows, 32, &mut out),
        Err(Error::NonFinite)
    );
    let q = vec![0.5f32; 64];
    assert!(matches!(
        codebook::dot_rows_int8(&cb, &q, &rows[..63], 32, &mut out),
        Err(Error::BufferTooShort { .. })
    ));
    assert!(matches!(
        codebook::dot_rows_int8(&cb, &q, &rows, 31, &mut out),
        Err(Error::BufferTooShort { .. })
    ));
    let long = vec![0.5f32; tqkv::quant::MAX_DIM + 1];
    let big = vec![0u8; pack::packed_len(long.len(), 4)];
    assert_eq!(
        codebook::dot_rows_int8(&cb, &long, &big, big.len(), &mut out[..1]),
        Err(Error::InvalidDim { dim: long.len() })
    );
    // No rows, or an empty query: nothing to read, zeros out.
    codebook::dot_rows_int8(&cb, &q, &[], 32, &mut []).unwrap();
    let mut z = [1.0f32; 3];
    codebook::dot_rows_int8(&cb, &[], &[], 0, &mut z).unwrap();
    assert_eq!(z, [0.0; 3]);
    for &backend in Backend::ALL {
        if !Backend::available().any(|b| b == backend) {
            assert_eq!(
                codebook::dot_rows_int8_on(backend, &cb, &q, &rows, 32, &mut out),
                Err(Error::BackendUnavailable(backend))
            );
        }
    }
}

fn filled(cfg: CacheConfig, tokens: usize, seed: u64) -> Vec<u8> {
    let mut buf = vec![0u8; cfg.bytes_needed().unwrap()];
    let mut g = SplitMix64::new(seed);
    {
        let mut cache = KvCache::new(cfg, &mut buf[..]).unwrap();
        let (nk, nv) = (cfg.heads * cfg.dim, cfg.heads * cfg.value_dim);
        for _ in 0..tokens {
            let k: Vec<f32> = (0..nk).map(|_| normal(&mut g) as f32).collect();
            let v: Vec<f32> = (0..nv).map(|_| normal(&mut g) as f32).collect();
            cache.push(&k, &v).unwrap();
        }
    }
    buf
}

fn caches() -> Vec<(CacheConfig, Vec<u8>)> {
    let configs = [
        CacheConfig::new(Scheme::Kqv, 4, 2, 128, 700),
        CacheConfig::new(Scheme::Kqv, 3, 2, 64, 700),
        CacheConfig::new(Scheme::Kv, 2, 2, 96, 700),
        CacheConfig::new(Scheme::Qkqv, 4, 2, 64, 700),
        CacheConfig::new(Scheme::Kv, 6, 2, 256, 700),
    ];
    configs
        .into_iter()
        .enumerate()
        .map(|(i, c)| (c, filled(c.with_seed(40 + i as u64), 613, 7 + i as u64)))
        .collect()
}

fn rel(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

/// Grouped heads, positions with causal limits, and ranges split and
/// merged, with int8 scoring: every backend within 1e-4 of the portable
/// one (the scores are the same bits; only the sums of values are
/// reassociated).
#[test]
fn int8_attention_agrees_across_backends_and_shapes() {
    let mut g = SplitMix64::new(9);
    for (cfg, buf) in caches() {
        let cache = KvCache::from_bytes(&buf[..]).unwrap();
        let (d, len) = (cfg.dim, cache.len());
        let heads = 3;
        let limits = [len, 1, 300, 512, 513];
        let q: Vec<f32> = (0..limits.len() * heads * d)
            .map(|_| (normal(&mut g) * 3.0) as f32)
            .collect();
        let mut scratch = vec![0.0f32; scratch_len(&cache, limits.len() * heads)];
        let run = |backend, scratch: &mut [f32]| {
            let mut out = vec![0.0f32; q.len()];
            attend_many_with(
                backend,
                Scoring::Int8,
                &cache,
                1,
                &q,
                &limits,
                &mut out,
                scratch,
            )
            .unwrap();
            out
        };
        let want = run(Backend::Scalar, &mut scratch);
        for backend in Backend::available() {
            let got = run(backend, &mut scratch);
            for (p, (a, b)) in got
                .chunks(heads * d)
                .zip(want.chunks(heads * d))
                .enumerate()
            {
                let e = rel(a, b);
                assert!(e <= 1e-4, "{cfg:?} position {p} on {backend}: {e}");
            }
            // The first position's heads again, as two ranges merged.
            let qh = &q[..heads * d];
            let n = Partial::len_for(&cache, heads);
            let (mut a_buf, mut b_buf) = (vec![0.0f32; n], vec![0.0f32; n]);
            let mut a = Partial::new(&cache, heads, &mut a_buf).unwrap();
            let mut b = Partial::new(&cache, heads, &mut b_buf).unwrap();
            let cut = 1 + (g.next_u64() as usize) % (len - 1);
            attend_partial_with(
                backend,
                Scoring::Int8,
                &cache,
                1,
                qh,
                0..cut,
                &mut a,
                &mut scratch,
            )
            .unwrap();
            attend_partial_with(
                backend,
                Scoring::Int8,
                &cache,
                1,
                qh,
                cut..len,
                &mut b,
                &mut scratch,
            )
            .unwrap();
            a.merge(&b).unwrap();
            let mut split = vec![0.0f32; heads * d];
            a.finish(&cache, &mut split, &mut scratch).unwrap();
            let e = rel(&split, &want[..heads * d]);
            assert!(e <= 1e-4, "{cfg:?} split at {cut} on {backend}: {e}");
        }
    }
}

/// The largest norm of a decoded value of head `head`.
fn max_value_norm(cache: &KvCache<&[u8]>, head: usize) -> f64 {
    let vq = cache.value_quantizer();
    let mut code = vec![0u8; vq.encoded_len()];
    let mut v = vec![0.0f32; cache.config().value_dim];
    (0..cache.len())
        .map(|t| {
            cache.value(head, t, &mut code).unwrap();
            vq.decode(&code, &mut v).unwrap();
            v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt()
        })
        .fold(0.0, f64::max)
}

/// Int8 scoring against exact scoring on the same caches, queries giving
/// logits of spread about 3 (as in real heads): the attention
/// probabilities within a KL of 2e-3 nats (the worst of these 40 cases is
/// about 9e-4: the rounding moves a score by about 0.5 % of the scores'
/// spread, more at 6 bits), and the outputs as close as that KL allows
/// (Pinsker: `‖o − o'‖ ≤ 2·TV·max‖v̂‖ ≤ √(2·KL)·max‖v̂‖`).
#[test]
fn int8_attention_is_close_to_exact() {
    let mut g = SplitMix64::new(11);
    let mut worst_kl = 0.0f64;
    for (cfg, buf) in caches() {
        let cache = KvCache::from_bytes(&buf[..]).unwrap();
        let (d, len) = (cfg.dim, cache.len());
        let vmax = max_value_norm(&cache, 0);
        let mut scratch = vec![0.0f32; scratch_len(&cache, 1)];
        for _ in 0..8 {
            let q: Vec<f32> = (0..d).map(|_| (normal(&mut g) * 3.0) as f32).collect();
            let (mut pe, mut pi) = (vec![0.0f32; len], vec![0.0f32; len]);
            let b = Backend::detect();
            probabilities_with(b, Scoring::Exact, &cache, 0, &q, &mut pe, &mut scratch).unwrap();
            probabilities_with(b, Scoring::Int8, &cache, 0, &q, &mut pi, &mut scratch).unwrap();
            let kl: f64 = pe
                .iter()
                .zip(&pi)
                .filter(|(p, _)| **p > 0.0)
                .map(|(&p, &r)| p as f64 * (p as f64 / r as f64).ln())
                .sum::<f64>()
                .max(0.0);
            worst_kl = worst_kl.max(kl);
            assert!(kl < 2e-3, "{cfg:?}: KL {kl}");
            let (mut oe, mut oi) = (vec![0.0f32; d], vec![0.0f32; d]);
            attend_many_with(
                b,
                Scoring::Exact,
                &cache,
                0,
                &q,
                &[len],
                &mut oe,
                &mut scratch,
            )
            .unwrap();
            attend_many_with(
                b,
                Scoring::Int8,
                &cache,
                0,
                &q,
                &[len],
                &mut oi,
                &mut scratch,
            )
            .unwrap();
            let dist = oe
                .iter()
                .zip(&oi)
                .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            let norm = oe.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
            let bound = (2.0 * kl).sqrt() * vmax + 1e-4 * norm;
            assert!(
                dist <= bound,
                "{cfg:?}: output moved {dist} (bound {bound})"
            );
        }
    }
    // Not equal either: the rounding shows.
    assert!(worst_kl > 1e-5, "{worst_kl}");
}

/// The split decode with int8 scoring (`attend_parallel_with`) equals the
/// one-thread pass with it, on every backend.
#[cfg(feature = "parallel")]
#[test]
fn int8_parallel_attention_equals_one_thread() {
    use tqkv::attention::attend_parallel_with;
    let mut g = SplitMix64::new(13);
    let config = CacheConfig::new(Scheme::Kqv, 4, 1, 64, 3000).with_seed(9);
    let buf = filled(config, 2500, 5);
    let cache = KvCache::from_bytes(&buf[..]).unwrap();
    let heads = 3;
    let q: Vec<f32> = (0..heads * 64)
        .map(|_| (normal(&mut g) * 3.0) as f32)
        .collect();
    let mut scratch = vec![0.0f32; scratch_len(&cache, heads)];
    for backend in Backend::available() {
        let mut one = vec![0.0f32; q.len()];
        attend_many_with(
            backend,
            Scoring::Int8,
            &cache,
            0,
            &q,
            &[2500],
            &mut one,
            &mut scratch,
        )
        .unwrap();
        for threads in [1, 2, 3] {
            let mut split = vec![0.0f32; q.len()];
            attend_parallel_with(backend, Scoring::Int8, &cache, 0, &q, &mut split, threads)
                .unwrap();
            let e = rel(&split, &one);
            assert!(e <= 1e-4, "{backend}, {threads} threads: {e}");
        }
    }
}
