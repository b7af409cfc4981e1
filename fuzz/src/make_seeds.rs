//! Writes the small seed corpora under fuzz/seeds/: valid caches of every
//! scheme for `cache_from_bytes`, and a few structured inputs for the
//! others. Run from fuzz/: `cargo run --bin make_seeds`.

use std::fs;

use tqkv::KvCache;
use tqkv::qjl::Projection;
use tqkv::quant::{CacheConfig, NormPrecision, Scheme};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = format!("seeds/{target}");
    fs::create_dir_all(&dir).unwrap();
    fs::write(format!("{dir}/{name}"), bytes).unwrap();
}

fn main() {
    use tqkv::quant::{QuantizerKind as K, QuantizerSpec as S};
    let mut configs = Vec::new();
    for (i, scheme) in Scheme::ALL.iter().copied().enumerate() {
        for (budget, dim, projection, norm) in [
            (3u8, 16usize, Projection::Hadamard, NormPrecision::F16),
            (4, 64, Projection::Gaussian, NormPrecision::F32),
        ] {
            let cfg = CacheConfig::new(scheme, budget, 2, dim, 4)
                .with_seed(7 + i as u64)
                .with_projection(projection)
                .with_norm(norm);
            configs.push((format!("{}-n{budget}-d{dim}", scheme.name()), cfg));
        }
    }
    // Keys and values with their own quantiser and bits.
    for (name, keys, values) in [
        ("kmse4-vmse3-d64", S::new(K::Mse, 4), S::new(K::Mse, 3)),
        ("kmse8-vmse4-d64", S::new(K::Mse, 8), S::new(K::Mse, 4)),
        (
            "kprod3-vbaseline5-d64",
            S::new(K::Prod, 3),
            S::new(K::Baseline, 5),
        ),
    ] {
        let cfg = CacheConfig::new(Scheme::Kqv, 4, 2, 64, 4)
            .with_seed(11)
            .with_keys(keys)
            .with_values(values);
        configs.push((name.to_owned(), cfg));
    }
    // Head dims that are not powers of two, and values of their own dim.
    configs.push((
        "kqv-n4-d96".to_owned(),
        CacheConfig::new(Scheme::Kqv, 4, 2, 96, 4).with_seed(3),
    ));
    configs.push((
        "kv-n3-d104-blocks".to_owned(),
        CacheConfig::new(Scheme::Kv, 3, 2, 104, 4).with_seed(4),
    ));
    configs.push((
        "qkqv-n3-d80-v64".to_owned(),
        CacheConfig::new(Scheme::Qkqv, 3, 2, 80, 4)
            .with_seed(5)
            .with_value_dim(64),
    ));
    for (name, cfg) in configs {
        let (dim, value_dim) = (cfg.dim, cfg.value_dim);
        {
            let mut buf = vec![0u8; cfg.bytes_needed().unwrap()];
            {
                let mut cache = KvCache::new(cfg, &mut buf[..]).unwrap();
                for t in 0..3 {
                    let k: Vec<f32> = (0..2 * dim)
                        .map(|j| ((j * 3 + t) % 11) as f32 - 5.0)
                        .collect();
                    let v: Vec<f32> = (0..2 * value_dim)
                        .map(|j| ((j * 5 + t) % 7) as f32 * 0.5)
                        .collect();
                    cache.push(&k, &v).unwrap();
                }
            }
            write("cache_from_bytes", &name, &buf);
        }
    }
    // kernels_differential: selector byte, then parameters.
    for (name, bytes) in [
        ("wht-256", vec![0u8, 0, 8, 3, 1]),
        ("wht-rows", vec![0u8, 1, 3, 5, 2, 0]),
        ("quantize", vec![1u8, 9, 0, 200, 0, 3, 1]),
        ("dot-rows", vec![1u8, 10, 1, 128, 0, 1, 7, 1, 0]),
        ("accumulate", vec![1u8, 2, 2, 64, 0, 5, 9, 1, 0]),
        ("dequantize", vec![1u8, 4, 3, 100, 0, 2]),
        ("signed-sum", vec![2u8, 0, 3, 0, 1, 1]),
        ("sign-rows", vec![2u8, 1, 1, 15, 9, 1, 0]),
        ("bitplanes", vec![2u8, 2, 0, 1, 4, 0, 5, 1, 0]),
        ("f32dot", vec![3u8, 100, 0, 1]),
    ] {
        let mut b = bytes;
        b.extend((0..600u32).map(|i| (i * 37 % 251) as u8));
        write("kernels_differential", name, &b);
    }
    for bits in 1..=8u8 {
        let mut b = vec![bits, 77, 0];
        b.extend((0..200u32).map(|i| (i * 13 % 256) as u8 & ((1u16 << bits) - 1) as u8));
        write("pack_roundtrip", &format!("bits{bits}"), &b);
    }
    for (name, head) in [
        ("mse-128", vec![4u8, 4, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]),
        ("prod-64", vec![3u8, 3, 2, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1]),
        ("base-32", vec![2u8, 5, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
        ("kqv-16", vec![1u8, 4, 4, 0, 0, 0, 0, 0, 0, 0, 1, 0, 4, 1]),
        (
            "qkqv-gauss-8",
            vec![0u8, 3, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0],
        ),
    ] {
        let mut b = head;
        b.extend((0..2600u32).map(|i| (i * 101 % 256) as u8));
        write("encode_decode", name, &b);
    }
}
