//! Attention on the compressed cache equals attention over the decoded keys
//! and values (computed the slow way, in f64), on every backend.

use tqkv::attention::{
    Partial, attend_many_on, attend_on, attend_partial_on, probabilities_on, scratch_len,
};
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
    let (nk, nv) = (cfg.heads * cfg.dim, cfg.heads * cfg.value_dim);
    let (mut ks, mut vs) = (vec![], vec![]);
    {
        let mut cache = KvCache::new(cfg, &mut buf[..]).unwrap();
        for _ in 0..tokens {
            let k: Vec<f32> = (0..nk).map(|_| normal(&mut g) as f32).collect();
            let v: Vec<f32> = (0..nv).map(|_| normal(&mut g) as f32).collect();
            cache.push(&k, &v).unwrap();
            ks.push(k);
            vs.push(v);
        }
    }
    (buf, ks, vs)
}

/// softmax(q·K̂ᵀ/√d)·V̂ with K̂, V̂ decoded by the quantisers, in f64.
fn slow(cache: &KvCache<&[u8]>, head: usize, q: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let (d, dv) = (cache.config().dim, cache.config().value_dim);
    let (kq, vq) = (cache.key_quantizer(), cache.value_quantizer());
    let mut kc = vec![0u8; kq.encoded_len()];
    let mut vc = vec![0u8; vq.encoded_len()];
    let mut k = vec![0.0f32; d];
    let mut v = vec![0.0f32; dv];
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
    let mut out = vec![0.0f64; dv];
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
            // Head dimensions that are not powers of two (Williamson rotations).
            (4, Projection::Hadamard, 96),
            (3, Projection::Gaussian, 80),
            (2, Projection::Hadamard, 40),
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
        (S::new(K::Mse, 5), S::new(K::Mse, 3), 192),
        (S::new(K::Prod, 4), S::new(K::Mse, 4), 576),
        (S::new(K::Mse, 6), S::new(K::Prod, 5), 112),
        (S::new(K::Mse, 4), S::new(K::Mse, 4), 24),
    ] {
        let cfg = CacheConfig::new(Scheme::Kqv, 4, 2, dim, 40)
            .with_seed(9)
            .with_keys(keys)
            .with_values(values);
        configs.push((cfg, keys.bits));
    }
    // Keys wider than values (multi-head latent attention: 576 / 512, and
    // smaller shapes of the same kind).
    for (scheme, budget, dim, value_dim) in [
        (Scheme::Kqv, 4u8, 576usize, 512usize),
        (Scheme::Qkqv, 3, 96, 64),
        (Scheme::Kv, 2, 64, 96),
    ] {
        let cfg = CacheConfig::new(scheme, budget, 2, dim, 40)
            .with_seed(5)
            .with_value_dim(value_dim);
        configs.push((cfg, budget));
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
            let mut scratch = vec![0.0f32; scratch_len(&cache, 2)];
            let dv = cfg.value_dim;
            for backend in Backend::available() {
                let mut out = vec![0.0f32; 2 * dv];
                attend_on(backend, &cache, 1, &q, &mut out, &mut scratch).unwrap();
                for (h, (qh, oh)) in q.chunks(dim).zip(out.chunks(dv)).enumerate() {
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
    let mut scratch = vec![0.0f32; scratch_len(&cache, 2)];
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
    let mut scratch = vec![0.0f32; scratch_len(&cache, 2)];
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
        // Two query vectors need two output vectors.
        Err(Error::LengthMismatch {
            expected: 32,
            found: 16
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

/// The decoded keys and values of `head`, token by token.
fn decoded(cache: &KvCache<&[u8]>, head: usize) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let d = cache.config().dim;
    let (kq, vq) = (cache.key_quantizer(), cache.value_quantizer());
    let mut code = vec![0u8; kq.encoded_len().max(vq.encoded_len())];
    let (mut ks, mut vs) = (vec![], vec![]);
    for t in 0..cache.len() {
        let (mut k, mut v) = (vec![0.0f32; d], vec![0.0f32; d]);
        cache.key(head, t, &mut code).unwrap();
        kq.decode(&code[..kq.encoded_len()], &mut k).unwrap();
        cache.value(head, t, &mut code).unwrap();
        vq.decode(&code[..vq.encoded_len()], &mut v).unwrap();
        ks.push(k);
        vs.push(v);
    }
    (ks, vs)
}

/// Attention of `q` over tokens `0..upto` of decoded keys and values, in
/// f64 (zeros for no token).
fn over_prefix(ks: &[Vec<f32>], vs: &[Vec<f32>], q: &[f32], upto: usize) -> Vec<f64> {
    let d = q.len();
    let mut out = vec![0.0f64; d];
    if upto == 0 {
        return out;
    }
    let s: Vec<f64> = ks[..upto]
        .iter()
        .map(|k| {
            q.iter()
                .zip(k)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum::<f64>()
                / (d as f64).sqrt()
        })
        .collect();
    let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    for (w, v) in e.iter().zip(vs) {
        for (o, &x) in out.iter_mut().zip(v) {
            *o += w / sum * x as f64;
        }
    }
    out
}

/// Caches that span two blocks of the one pass (512 tokens), with
/// scores large enough that the running maximum moves between blocks.
fn long_caches() -> Vec<(CacheConfig, Vec<u8>)> {
    use tqkv::quant::{QuantizerKind as K, QuantizerSpec as S};
    let base = |scheme, bits, dim| {
        CacheConfig::new(scheme, bits, 2, dim, 700)
            .with_seed(21)
            .with_projection(Projection::Hadamard)
    };
    let configs = [
        base(Scheme::Kqv, 4, 64),
        base(Scheme::Kqv, 3, 128),
        base(Scheme::Kv, 2, 32),
        base(Scheme::Kv, 6, 64),
        base(Scheme::Kqv, 6, 128),
        base(Scheme::Qkqv, 6, 64),
        base(Scheme::Qkqv, 3, 64).with_projection(Projection::Gaussian),
        base(Scheme::Kqv, 4, 128)
            .with_keys(S::new(K::Mse, 5))
            .with_values(S::new(K::Mse, 3)),
        base(Scheme::Kqv, 4, 64)
            .with_keys(S::new(K::Prod, 4))
            .with_values(S::new(K::Mse, 2)),
        base(Scheme::Kqv, 4, 64)
            .with_keys(S::new(K::Baseline, 5))
            .with_values(S::new(K::Prod, 3)),
    ];
    configs
        .into_iter()
        .enumerate()
        .map(|(i, cfg)| (cfg, filled(cfg, 613, 100 + i as u64).0))
        .collect()
}

fn queries(g: &mut SplitMix64, n: usize, scale: f64) -> Vec<f32> {
    (0..n).map(|_| (normal(g) * scale) as f32).collect()
}

fn check_close(got: &[f32], want: &[f64], what: &str) {
    let e = rel(got, want);
    assert!(e <= 1e-4, "{what}: relative error {e}");
}

#[test]
fn grouped_query_heads_in_one_pass_equal_each_head_alone() {
    let mut g = SplitMix64::new(5);
    for (cfg, buf) in long_caches() {
        let cache = KvCache::from_bytes(&buf[..]).unwrap();
        let d = cfg.dim;
        let (ks, vs) = decoded(&cache, 1);
        for heads in [1usize, 3, 4, 8] {
            let q = queries(&mut g, heads * d, 3.0);
            let mut scratch = vec![0.0f32; scratch_len(&cache, heads)];
            for backend in Backend::available() {
                let mut out = vec![0.0f32; heads * d];
                attend_on(backend, &cache, 1, &q, &mut out, &mut scratch).unwrap();
                for (qh, oh) in q.chunks(d).zip(out.chunks(d)) {
                    let want = over_prefix(&ks, &vs, qh, cache.len());
                    check_close(oh, &want, &format!("{cfg:?} g{heads} on {backend}"));
                }
            }
        }
    }
}

#[test]
fn many_positions_with_causal_limits_equal_attention_over_each_prefix() {
    let mut g = SplitMix64::new(6);
    for (cfg, buf) in long_caches() {
        let cache = KvCache::from_bytes(&buf[..]).unwrap();
        let (d, len) = (cfg.dim, cache.len());
        let (ks, vs) = decoded(&cache, 0);
        // Limits at 0, 1, block edges, the end and random places.
        let mut limits = vec![0usize, 1, 255, 256, 511, 512, 513, len];
        limits.extend((0..4).map(|_| (g.next_u64() % (len as u64 + 1)) as usize));
        for heads in [1usize, 3] {
            let q = queries(&mut g, limits.len() * heads * d, 2.0);
            let mut scratch = vec![0.0f32; scratch_len(&cache, limits.len() * heads)];
            for backend in Backend::available() {
                let mut out = vec![0.0f32; q.len()];
                attend_many_on(backend, &cache, 0, &q, &limits, &mut out, &mut scratch).unwrap();
                for (i, (qh, oh)) in q.chunks(d).zip(out.chunks(d)).enumerate() {
                    let upto = limits[i / heads];
                    let want = over_prefix(&ks, &vs, qh, upto);
                    if upto == 0 {
                        assert!(oh.iter().all(|&v| v == 0.0), "limit 0 attends to nothing");
                    } else {
                        check_close(oh, &want, &format!("{cfg:?} limit {upto} on {backend}"));
                    }
                }
            }
        }
    }
}

#[test]
fn ranges_split_and_merged_equal_one_pass() {
    let mut g = SplitMix64::new(7);
    for (cfg, buf) in long_caches() {
        let cache = KvCache::from_bytes(&buf[..]).unwrap();
        let (d, len) = (cfg.dim, cache.len());
        let (ks, vs) = decoded(&cache, 1);
        let heads = 2;
        let state_len = Partial::len_for(&cache, heads);
        let mut scratch = vec![0.0f32; scratch_len(&cache, heads)];
        for trial in 0..6 {
            // Split points, sorted, with repeats (empty pieces), single
            // tokens and the ends.
            let mut cuts: Vec<usize> = (0..trial + 1)
                .map(|_| (g.next_u64() % (len as u64 + 1)) as usize)
                .collect();
            cuts.extend([0, len, 300, 301, 512]);
            cuts.sort_unstable();
            let q = queries(&mut g, heads * d, 3.0);
            let want: Vec<Vec<f64>> = q
                .chunks(d)
                .map(|qh| over_prefix(&ks, &vs, qh, len))
                .collect();
            for backend in Backend::available() {
                let mut total_buf = vec![0.0f32; state_len];
                let mut total = Partial::new(&cache, heads, &mut total_buf).unwrap();
                // Merge in a shuffled order: the merge is exact in any order.
                let mut pieces: Vec<_> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
                let turn = trial % pieces.len();
                pieces.rotate_left(turn);
                for (a, b) in pieces {
                    let mut buf = vec![0.0f32; state_len];
                    let mut part = Partial::new(&cache, heads, &mut buf).unwrap();
                    if a < b {
                        attend_partial_on(backend, &cache, 1, &q, a..b, &mut part, &mut scratch)
                            .unwrap();
                    }
                    assert_eq!(part.is_empty(), a == b);
                    total.merge(&part).unwrap();
                }
                let mut out = vec![0.0f32; heads * d];
                total
                    .finish_on(backend, &cache, &mut out, &mut scratch)
                    .unwrap();
                for (h, oh) in out.chunks(d).enumerate() {
                    check_close(oh, &want[h], &format!("{cfg:?} cuts {cuts:?} on {backend}"));
                }
            }
        }
    }
}

#[cfg(feature = "parallel")]
#[test]
fn parallel_attention_equals_one_thread() {
    use tqkv::attention::attend_parallel;
    let cfg = CacheConfig::new(Scheme::Kqv, 4, 1, 64, 5000).with_seed(3);
    let (buf, _, _) = filled(cfg, 5000, 8);
    let cache = KvCache::from_bytes(&buf[..]).unwrap();
    let (ks, vs) = decoded(&cache, 0);
    let mut g = SplitMix64::new(9);
    let q = queries(&mut g, 3 * 64, 3.0);
    for threads in [1, 2, 3, 8] {
        let mut out = vec![0.0f32; q.len()];
        attend_parallel(&cache, 0, &q, &mut out, threads).unwrap();
        // Whichever thread takes which range, the states merge in order.
        for _ in 0..10 {
            let mut again = vec![0.0f32; q.len()];
            attend_parallel(&cache, 0, &q, &mut again, threads).unwrap();
            let same = again
                .iter()
                .zip(&out)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{threads} threads: the bits changed between runs");
        }
        for (qh, oh) in q.chunks(64).zip(out.chunks(64)) {
            check_close(
                oh,
                &over_prefix(&ks, &vs, qh, 5000),
                &format!("{threads} threads"),
            );
        }
    }
    // Short caches: none, one token, fewer tokens than two threads' least
    // ranges, and a few ranges for each thread.
    for len in [0usize, 1, 600, 1100, 2100] {
        let cfg = CacheConfig::new(Scheme::Kqv, 4, 1, 64, len.max(1)).with_seed(3);
        let (buf, _, _) = filled(cfg, len, 8);
        let cache = KvCache::from_bytes(&buf[..]).unwrap();
        let (ks, vs) = decoded(&cache, 0);
        for threads in [2, 3] {
            let mut out = vec![1.0f32; q.len()];
            attend_parallel(&cache, 0, &q, &mut out, threads).unwrap();
            let label = format!("{len} tokens, {threads} threads");
            if len == 0 {
                assert!(out.iter().all(|&v| v == 0.0), "{label}");
                continue;
            }
            for (qh, oh) in q.chunks(64).zip(out.chunks(64)) {
                check_close(oh, &over_prefix(&ks, &vs, qh, len), &label);
            }
        }
    }
    let mut out = vec![0.0f32; q.len()];
    assert!(matches!(
        attend_parallel(&cache, 0, &q, &mut out, 0),
        Err(Error::InvalidParameter(_))
    ));
}

#[test]
fn many_queries_and_partial_states_refuse_bad_input() {
    let cfg = CacheConfig::new(Scheme::Kqv, 4, 2, 16, 8).with_seed(1);
    let (buf, _, _) = filled(cfg, 5, 3);
    let cache = KvCache::from_bytes(&buf[..]).unwrap();
    let b = Backend::detect();
    let q = [0.5f32; 32];
    let mut out = [0.0f32; 32];
    let mut scratch = vec![0.0f32; scratch_len(&cache, 2)];
    // A causal limit past the tokens, no limits, heads not a multiple of the positions.
    assert_eq!(
        attend_many_on(b, &cache, 0, &q, &[2, 6], &mut out, &mut scratch),
        Err(Error::InvalidRange {
            start: 0,
            end: 6,
            len: 5
        })
    );
    assert!(matches!(
        attend_many_on(b, &cache, 0, &q, &[], &mut out, &mut scratch),
        Err(Error::InvalidRange { .. })
    ));
    assert!(matches!(
        attend_many_on(b, &cache, 0, &q, &[1, 2, 3], &mut out, &mut scratch),
        Err(Error::LengthMismatch { .. })
    ));
    // g·dim against out, a dim that does not divide q.
    assert!(matches!(
        attend_many_on(b, &cache, 0, &q, &[5], &mut out[..16], &mut scratch),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        attend_on(b, &cache, 0, &q[..24], &mut out[..24], &mut scratch),
        Err(Error::LengthMismatch { .. })
    ));
    // Ranges: empty, reversed, past the end; a head out of range.
    let mut sbuf = vec![0.0f32; Partial::len_for(&cache, 2)];
    let mut state = Partial::new(&cache, 2, &mut sbuf).unwrap();
    for (a, e) in [(3usize, 3usize), (4, 2), (2, 6)] {
        assert_eq!(
            attend_partial_on(b, &cache, 0, &q, a..e, &mut state, &mut scratch),
            Err(Error::InvalidRange {
                start: a,
                end: e,
                len: 5
            })
        );
    }
    assert_eq!(
        attend_partial_on(b, &cache, 2, &q, 0..5, &mut state, &mut scratch),
        Err(Error::InvalidHead { head: 2, heads: 2 })
    );
    // A state of another number of query vectors, or of another cache's shape.
    assert_eq!(
        attend_partial_on(b, &cache, 0, &q[..16], 0..5, &mut state, &mut scratch),
        Err(Error::PartialShape {
            expected: [1, 16, 16],
            found: [2, 16, 16]
        })
    );
    let mut one_buf = vec![0.0f32; Partial::len_for(&cache, 1)];
    let one = Partial::new(&cache, 1, &mut one_buf).unwrap();
    assert!(matches!(state.merge(&one), Err(Error::PartialShape { .. })));
    let other_cfg = CacheConfig::new(Scheme::Qkqv, 4, 1, 32, 8).with_seed(1);
    let (other_buf, _, _) = filled(other_cfg, 2, 3);
    let other = KvCache::from_bytes(&other_buf[..]).unwrap();
    let mut wide_buf = vec![0.0f32; Partial::len_for(&other, 2)];
    let wide = Partial::new(&other, 2, &mut wide_buf).unwrap();
    assert_eq!(
        state.merge(&wide),
        Err(Error::PartialShape {
            expected: [2, 16, 16],
            found: [2, 32, 32]
        })
    );
    assert!(matches!(
        wide.finish_on(b, &cache, &mut out, &mut scratch),
        Err(Error::PartialShape { .. })
    ));
    // Buffers: a short state buffer, zero query vectors, short scratch.
    assert!(matches!(
        Partial::new(&cache, 2, &mut vec![0.0f32; 3][..]),
        Err(Error::BufferTooShort { .. })
    ));
    assert!(matches!(
        Partial::new(&cache, 0, &mut sbuf[..]),
        Err(Error::InvalidParameter(_))
    ));
    let mut sbuf = vec![0.0f32; Partial::len_for(&cache, 2)];
    let mut state = Partial::new(&cache, 2, &mut sbuf).unwrap();
    assert!(matches!(
        attend_partial_on(b, &cache, 0, &q, 0..5, &mut state, &mut scratch[..10]),
        Err(Error::BufferTooShort { .. })
    ));
    // An empty state finishes to zeros.
    out.fill(1.0);
    state.finish_on(b, &cache, &mut out, &mut scratch).unwrap();
    assert!(out.iter().all(|&v| v == 0.0));
}

/// A state taken up again from its buffer carries on exactly where it
/// stopped; one resumed from values no state holds (NaN, ±∞, huge, noise)
/// gives some result on every backend, never a panic.
#[test]
fn resumed_states_continue_and_never_panic() {
    let cfg = CacheConfig::new(Scheme::Qkqv, 4, 1, 32, 16).with_seed(4);
    let (buf, _, _) = filled(cfg, 12, 8);
    let cache = KvCache::from_bytes(&buf[..]).unwrap();
    let q = [0.3f32; 64];
    let mut scratch = vec![0.0f32; scratch_len(&cache, 2)];
    let n = Partial::len_for(&cache, 2);
    for b in Backend::available() {
        // Live: one state over both ranges. Resumed: the buffer taken up
        // between them.
        let mut live_buf = vec![0.0f32; n];
        let mut live = Partial::new(&cache, 2, &mut live_buf).unwrap();
        attend_partial_on(b, &cache, 0, &q, 0..5, &mut live, &mut scratch).unwrap();
        attend_partial_on(b, &cache, 0, &q, 5..12, &mut live, &mut scratch).unwrap();
        let mut res_buf = vec![0.0f32; n];
        let first = &mut Partial::new(&cache, 2, &mut res_buf).unwrap();
        attend_partial_on(b, &cache, 0, &q, 0..5, first, &mut scratch).unwrap();
        let mut resumed = Partial::resume(&cache, 2, &mut res_buf).unwrap();
        attend_partial_on(b, &cache, 0, &q, 5..12, &mut resumed, &mut scratch).unwrap();
        let (mut x, mut y) = ([0.0f32; 64], [0.0f32; 64]);
        live.finish_on(b, &cache, &mut x, &mut scratch).unwrap();
        resumed.finish_on(b, &cache, &mut y, &mut scratch).unwrap();
        assert_eq!(x.map(f32::to_bits), y.map(f32::to_bits), "{b}");

        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            3e38,
            -0.0,
            1e-40,
        ];
        let mut g = SplitMix64::new(9);
        for round in 0..20 {
            let mut junk: Vec<f32> = (0..n)
                .map(|i| match (g.next_u64() % 4, round) {
                    (0, _) => specials[i % specials.len()],
                    (_, r) if r % 2 == 0 => f32::from_bits(g.next_u64() as u32),
                    _ => (g.next_u64() % 1000) as f32 - 500.0,
                })
                .collect();
            let mut other = junk.clone();
            other.reverse();
            let mut state = Partial::resume(&cache, 2, &mut junk).unwrap();
            attend_partial_on(b, &cache, 0, &q, 3..9, &mut state, &mut scratch).unwrap();
            state
                .merge(&Partial::resume(&cache, 2, &mut other).unwrap())
                .unwrap();
            state.finish_on(b, &cache, &mut x, &mut scratch).unwrap();
        }
    }
}
