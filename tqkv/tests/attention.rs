//! Attention on the compressed cache equals attention over the decoded keys
//! and values (computed the slow way, in f64), on every backend.

use tqkv::attention::{attend_on, probabilities_on, scratch_len};
use tqkv::qjl::Projection;
use tqkv::quant::{CacheConfig, KvCache, NormPrecision, Scheme};
use tqkv::rng::SplitMix64;
use tqkv::{Backend, Error};

fn normal(g: &mut SplitMix64) -> f64 {
    let u1 = ((g.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let u2 = (g.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn filled(cfg: CacheConfig, tokens: usize, seed: u64) -> (Vec<u8>, Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut buf = vec![0u8; cfg.bytes_needed().unwrap()];
    let mut g = SplitMix64::new(seed);
    let n = cfg.heads * cfg.dim;
    let (mut ks, mut vs) = (vec![], vec![]);
    {
        let mut cache = KvCache::new(cfg, &mut buf[..]).unwrap();
        for _ in 0..tokens {
            let k: Vec<f32> = (0..n).map(|_| normal(&mut g) as f32).collect();
            let v: Vec<f32> = (0..n).map(|_| normal(&mut g) as f32).collect();
            cache.push(&k, &v).unwrap();
            ks.push(k);
            vs.push(v);
        }
    }
    (buf, ks, vs)
}

/// softmax(q·K̂ᵀ/√d)·V̂ with K̂, V̂ decoded by the quantisers, in f64.
fn slow(cache: &KvCache<&[u8]>, head: usize, q: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let d = cache.config().dim;
    let (kq, vq) = (cache.key_quantizer(), cache.value_quantizer());
    let mut kc = vec![0u8; kq.encoded_len()];
    let mut vc = vec![0u8; vq.encoded_len()];
    let mut k = vec![0.0f32; d];
    let mut v = vec![0.0f32; d];
    let scores: Vec<f64> = (0..cache.len())
        .map(|t| {
            cache.key(head, t, &mut kc).unwrap();
            kq.decode(&kc, &mut k).unwrap();
            q.iter()
                .zip(&k)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum::<f64>()
                / (d as f64).sqrt()
        })
        .collect();
    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    let p: Vec<f64> = e.iter().map(|x| x / sum).collect();
    let mut out = vec![0.0f64; d];
    for (t, &pt) in p.iter().enumerate() {
        cache.value(head, t, &mut vc).unwrap();
        vq.decode(&vc, &mut v).unwrap();
        for (o, &x) in out.iter_mut().zip(&v) {
            *o += pt * x as f64;
        }
    }
    (p, out)
}

fn rel(a: &[f32], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

#[test]
fn fused_attention_equals_attention_over_decoded_cache() {
    use tqkv::quant::{QuantizerKind as K, QuantizerSpec as S};
    let mut configs = Vec::new();
    for &scheme in Scheme::ALL {
        for (budget, projection, dim) in [
            (3u8, Projection::Hadamard, 64usize),
            (4, Projection::Gaussian, 32),
            (2, Projection::Hadamard, 128),
            (5, Projection::Hadamard, 16),
        ] {
            let cfg = CacheConfig::new(scheme, budget, 2, dim, 40)
                .with_seed(9)
                .with_projection(projection);
            configs.push((cfg, budget));
        }
    }
    // Keys and values with their own quantiser and bits.
    for (keys, values, dim) in [
        (S::new(K::Mse, 4), S::new(K::Mse, 3), 64usize),
        (S::new(K::Mse, 8), S::new(K::Mse, 4), 64),
        (S::new(K::Mse, 3), S::new(K::Mse, 6), 128),
        (S::new(K::Prod, 4), S::new(K::Mse, 2), 32),
        (S::new(K::Baseline, 5), S::new(K::Prod, 3), 64),
    ] {
        let cfg = CacheConfig::new(Scheme::Kqv, 4, 2, dim, 40)
            .with_seed(9)
            .with_keys(keys)
            .with_values(values);
        configs.push((cfg, keys.bits));
    }
    for (cfg, budget) in configs {
        let (scheme, dim, projection) = ((cfg.keys, cfg.values), cfg.dim, cfg.projection);
        {
            let (buf, _, _) = filled(cfg, 37, budget as u64);
            let cache = KvCache::from_bytes(&buf[..]).unwrap();
            let mut g = SplitMix64::new(77);
            // Two query heads sharing KV head 1 (grouped-query attention).
            let q: Vec<f32> = (0..2 * dim)
                .map(|_| (normal(&mut g) * 2.0) as f32)
                .collect();
            let mut scratch = vec![0.0f32; scratch_len(&cache)];
            for backend in Backend::available() {
                let mut out = vec![0.0f32; 2 * dim];
                attend_on(backend, &cache, 1, &q, &mut out, &mut scratch).unwrap();
                for (h, (qh, oh)) in q.chunks(dim).zip(out.chunks(dim)).enumerate() {
                    let (p_ref, o_ref) = slow(&cache, 1, qh);
                    let e = rel(oh, &o_ref);
                    assert!(
                        e <= 1e-4,
                        "{scheme:?} n{budget} {projection:?} d{dim} q{h} on {backend}: {e}"
                    );
                    let mut probs = vec![0.0f32; cache.len()];
                    probabilities_on(backend, &cache, 1, qh, &mut probs, &mut scratch).unwrap();
                    let pe = rel(&probs, &p_ref);
                    assert!(pe <= 1e-4, "probabilities {scheme:?} on {backend}: {pe}");
                }
            }
        }
    }
}

#[test]
fn overflowing_scores_are_an_error_not_nan() {
    let cfg = CacheConfig::new(Scheme::Qkqv, 3, 1, 16, 2)
        .with_seed(1)
        .with_norm(NormPrecision::F32);
    let mut buf = vec![0u8; cfg.bytes_needed().unwrap()];
    let mut cache = KvCache::new(cfg, &mut buf[..]).unwrap();
    let big: Vec<f32> = (0..16)
        .map(|i| if i % 2 == 0 { 1e29 } else { -2e29 })
        .collect();
    cache.push(&big, &big).unwrap();
    let mut scratch = vec![0.0f32; 1000];
    let mut out = [0.0f32; 16];
    for b in Backend::available() {
        // Moderate queries: finite outputs of the size of the values.
        attend_on(b, &cache, 0, &[1e-3; 16], &mut out, &mut scratch).unwrap();
        assert!(out.iter().all(|v| v.is_finite()), "{b}: {out:?}");
        // A finite query whose scores overflow f32.
        assert_eq!(
            attend_on(b, &cache, 0, &[1e12; 16], &mut out, &mut scratch),
            Err(Error::NonFinite),
            "{b}"
        );
    }
}

#[test]
fn attention_bad_input_and_empty_cache() {
    let cfg = CacheConfig::new(Scheme::Kqv, 4, 1, 16, 4).with_seed(1);
    let mut buf = vec![0u8; cfg.bytes_needed().unwrap()];
    let cache = KvCache::new(cfg, &mut buf[..]).unwrap();
    let mut scratch = vec![0.0f32; 1000];
    let mut out = [1.0f32; 16];
    let b = Backend::detect();
    attend_on(b, &cache, 0, &[0.5; 16], &mut out, &mut scratch).unwrap();
    assert!(
        out.iter().all(|&v| v == 0.0),
        "an empty cache attends to nothing"
    );
    assert_eq!(
        attend_on(b, &cache, 1, &[0.5; 16], &mut out, &mut scratch),
        Err(Error::InvalidHead { head: 1, heads: 1 })
    );
    assert_eq!(
        attend_on(b, &cache, 0, &[0.5; 15], &mut out[..15], &mut scratch),
        Err(Error::LengthMismatch {
            expected: 16,
            found: 15
        })
    );
    assert_eq!(
        attend_on(b, &cache, 0, &[0.5; 32], &mut out, &mut scratch),
        Err(Error::LengthMismatch {
            expected: 16,
            found: 32
        })
    );
    let mut nan = [0.5f32; 16];
    nan[2] = f32::NAN;
    assert_eq!(
        attend_on(b, &cache, 0, &nan, &mut out, &mut scratch),
        Err(Error::NonFinite)
    );
    assert!(matches!(
        attend_on(b, &cache, 0, &[0.5; 16], &mut out, &mut scratch[..2]),
        Err(Error::BufferTooShort { .. })
    ));
}
