//! One cell of the evaluation, measured on the product path: the keys and
//! values of every head go into a [`KvCache`] with `push`, every attention
//! figure is read back with `probabilities_on` and `attend_on` (the scoring
//! and accumulation a runtime runs), and the geometric errors come from the
//! encodings the cache stores, decoded with the cache's own quantisers.

use tqkv::Backend;
use tqkv::attention::{Scoring, attend_on, probabilities_on, probabilities_with, scratch_len};
use tqkv::qjl::Projection;
use tqkv::quant::{CacheConfig, KvCache, Scheme};
use tqkv_eval::metrics::{ErrorVector, Geometric, kl_probabilities};

use crate::{Dataset, Res, Samples};

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

fn softmax(s: &[f32]) -> Vec<f64> {
    let m = s.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let e: Vec<f64> = s.iter().map(|&v| (v as f64 - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.into_iter().map(|v| v / z).collect()
}

/// `Σ p_i v_i` in f64: the exact attention output.
fn mix(p: &[f64], v: &[f32], d: usize) -> Vec<f64> {
    let mut o = vec![0.0f64; d];
    for (pi, row) in p.iter().zip(v.chunks_exact(d)) {
        for (oj, &x) in o.iter_mut().zip(row) {
            *oj += pi * x as f64;
        }
    }
    o
}

/// Mean direction and norm errors of `vectors` (rows of `d`) against what
/// the cache stores for them (`read` copies one encoding out), and the
/// relative L2 error of each.
fn geometric(
    vectors: &[f32],
    d: usize,
    mut decode: impl FnMut(usize, &mut [f32]) -> Res<()>,
    each: &mut Vec<f64>,
    mut also: impl FnMut(&Geometric),
) -> Res<(f64, f64)> {
    let (mut dir, mut norm) = (0.0, 0.0);
    let mut y = vec![0.0f32; d];
    for (t, x) in vectors.chunks_exact(d).enumerate() {
        decode(t, &mut y)?;
        let g = Geometric::of(x, &y)?;
        each.push(g.relative_l2);
        also(&g);
        dir += g.direction;
        norm += (g.norm_ratio - 1.0).abs();
    }
    let t = (vectors.len() / d) as f64;
    Ok((dir / t, norm / t))
}

pub(super) fn measure(ds: &Dataset, scheme: Scheme, n: u8, projection: Projection) -> Res<Samples> {
    let d = ds.dim;
    let scale = 1.0 / (d as f64).sqrt();
    let backend = Backend::detect();
    let mut s = Samples::default();
    for (h, head) in ds.heads.iter().enumerate() {
        let t = head.k.len() / d;
        let config = CacheConfig::new(scheme, n, 1, d, t)
            .with_seed(1000 + 7 * h as u64)
            .with_projection(projection);
        let mut buf = vec![0u8; config.bytes_needed()?];
        let mut cache = KvCache::new(config, &mut buf[..])?;
        for (k, v) in head.k.chunks_exact(d).zip(head.v.chunks_exact(d)) {
            cache.push(k, v)?;
        }
        let (kq, vq) = (cache.key_quantizer(), cache.value_quantizer());
        s.bits_k = kq.bits_per_coordinate();
        s.bits_v = vq.bits_per_coordinate();

        let mut code = vec![0u8; kq.encoded_len().max(vq.encoded_len())];
        let mut code_v = code.clone();
        let (kd, kn) = geometric(
            &head.k,
            d,
            |t, y| {
                let c = &mut code[..kq.encoded_len()];
                cache.key(0, t, c)?;
                Ok(kq.decode(c, y)?)
            },
            &mut s.k_err,
            |g| {
                s.k_dir.push(g.direction);
                s.k_norm.push((g.norm_ratio - 1.0).abs());
            },
        )?;
        let (vd, vn) = geometric(
            &head.v,
            d,
            |t, y| {
                let c = &mut code_v[..vq.encoded_len()];
                cache.value(0, t, c)?;
                Ok(vq.decode(c, y)?)
            },
            &mut s.v_err,
            |_| {},
        )?;

        let mut scratch = vec![0.0f32; scratch_len(&cache, 1)];
        let mut probs = vec![0.0f32; t];
        let mut o_hat = vec![0.0f32; d];
        for q in head.q.chunks_exact(d) {
            let exact: Vec<f32> = head
                .k
                .chunks_exact(d)
                .map(|k| (dot(q, k) * scale) as f32)
                .collect();
            probabilities_on(backend, &cache, 0, q, &mut probs, &mut scratch)?;
            let kl = kl_probabilities(&exact, &probs)?;
            probabilities_with(
                backend,
                Scoring::Int8,
                &cache,
                0,
                q,
                &mut probs,
                &mut scratch,
            )?;
            s.kl_int8.push(kl_probabilities(&exact, &probs)?);
            attend_on(backend, &cache, 0, q, &mut o_hat, &mut scratch)?;
            let o = mix(&softmax(&exact), &head.v, d);
            let num: f64 = o
                .iter()
                .zip(&o_hat)
                .map(|(a, &b)| (a - b as f64).powi(2))
                .sum();
            let den: f64 = o.iter().map(|a| a * a).sum();
            let out = (num / den).sqrt();
            let e = ErrorVector {
                k_direction: kd,
                k_norm: kn,
                v_direction: vd,
                v_norm: vn,
                kl,
                output: out,
            };
            s.kl.push(kl);
            s.out.push(out);
            s.six.push(e.distance());
        }
    }
    Ok(s)
}
