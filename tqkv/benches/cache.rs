//! Criterion benches for encoding into the cache: `cache/push/<scheme>n<bits>/d128`
//! (one token of one KV head), `cache/push/kqvn4/d128h8` (one token of eight
//! KV heads), `cache/push_batch/<scheme>n<bits>/d128x256`
//! (256 tokens in one call, the time per call),
//! `cache/push_batch_parallel/kqvn4/d128x256x2` (the same call shared
//! between two threads), `cache/push_batch/kqvn4/d128x2048` and
//! `…_parallel/kqvn4/d128x2048x2` (a prefill of 2,048 tokens), beside
//! `cache/memcpy/d128x256`, copying the 256 tokens' f32 keys and values.
//! `cache/push_on/<backend>/kqvn4/d128` and
//! `cache/push_batch_on/<backend>/kqvn4/d128x256`: the same calls on each
//! backend this machine has, scalar included; `…/kvn5`, `…/kvn6` and
//! `…/kqvn6`: batches of the widest codes on each backend.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tqkv::Backend;
use tqkv::quant::{CacheConfig, KvCache, Scheme};
use tqkv::rng::SplitMix64;

const D: usize = 128;
const BATCH: usize = 256;

fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut g = SplitMix64::new(seed);
    (0..n)
        .map(|_| (g.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        .collect()
}

fn push(c: &mut Criterion) {
    let mut group = c.benchmark_group("cache");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    let k = data(BATCH * D, 1);
    let v = data(BATCH * D, 2);
    for (scheme, bits) in [
        (Scheme::Kqv, 4u8),
        (Scheme::Kqv, 3),
        (Scheme::Kv, 4),
        (Scheme::Qkqv, 4),
    ] {
        let cfg = CacheConfig::new(scheme, bits, 1, D, BATCH).with_seed(5);
        let mut cache =
            KvCache::new(cfg, vec![0u8; cfg.bytes_needed().expect("valid config")]).expect("fits");
        let name = format!("{}n{bits}", scheme.name());
        group.throughput(Throughput::Elements(1));
        group.bench_function(
            BenchmarkId::new(format!("push/{name}"), format!("d{D}")),
            |b| {
                b.iter(|| {
                    if cache.len() == BATCH {
                        cache.clear();
                    }
                    cache.push(black_box(&k[..D]), black_box(&v[..D]))
                })
            },
        );
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_function(
            BenchmarkId::new(format!("push_batch/{name}"), format!("d{D}x{BATCH}")),
            |b| {
                b.iter(|| {
                    cache.clear();
                    cache.push_batch(black_box(&k), black_box(&v))
                })
            },
        );
        #[cfg(feature = "parallel")]
        if (scheme, bits) == (Scheme::Kqv, 4) {
            group.bench_function(
                BenchmarkId::new(
                    format!("push_batch_parallel/{name}"),
                    format!("d{D}x{BATCH}x2"),
                ),
                |b| {
                    b.iter(|| {
                        cache.clear();
                        cache.push_batch_parallel(black_box(&k), black_box(&v), 2)
                    })
                },
            );
        }
    }
    // A prefill's worth of tokens, on one thread and on two: a helper's
    // wake-up (16 µs to over 1 ms on a VM) is small beside this work, not
    // beside 256 tokens'.
    #[cfg(feature = "parallel")]
    {
        const PREFILL: usize = 2048;
        let (k, v) = (data(PREFILL * D, 3), data(PREFILL * D, 4));
        let cfg = CacheConfig::new(Scheme::Kqv, 4, 1, D, PREFILL).with_seed(5);
        let mut cache =
            KvCache::new(cfg, vec![0u8; cfg.bytes_needed().expect("valid config")]).expect("fits");
        group.throughput(Throughput::Elements(PREFILL as u64));
        for threads in [1, 2] {
            let id = match threads {
                1 => BenchmarkId::new("push_batch/kqvn4", format!("d{D}x{PREFILL}")),
                _ => BenchmarkId::new("push_batch_parallel/kqvn4", format!("d{D}x{PREFILL}x2")),
            };
            group.bench_function(id, |b| {
                b.iter(|| {
                    cache.clear();
                    match threads {
                        1 => cache.push_batch(black_box(&k), black_box(&v)),
                        _ => cache.push_batch_parallel(black_box(&k), black_box(&v), threads),
                    }
                })
            });
        }
    }
    // One token of eight KV heads (its heads are encoded as a group), the
    // time per token.
    const HEADS: usize = 8;
    let cfg = CacheConfig::new(Scheme::Kqv, 4, HEADS, D, BATCH).with_seed(5);
    let mut cache =
        KvCache::new(cfg, vec![0u8; cfg.bytes_needed().expect("valid config")]).expect("fits");
    group.throughput(Throughput::Elements(HEADS as u64));
    group.bench_function(
        BenchmarkId::new("push/kqvn4", format!("d{D}h{HEADS}")),
        |b| {
            b.iter(|| {
                if cache.len() == BATCH {
                    cache.clear();
                }
                cache.push(black_box(&k[..HEADS * D]), black_box(&v[..HEADS * D]))
            })
        },
    );
    // KQV n = 4 on every backend.
    let cfg = CacheConfig::new(Scheme::Kqv, 4, 1, D, BATCH).with_seed(5);
    let mut cache =
        KvCache::new(cfg, vec![0u8; cfg.bytes_needed().expect("valid config")]).expect("fits");
    let backends = [
        Backend::Scalar,
        Backend::Avx2,
        Backend::Avx512,
        Backend::Neon,
    ];
    for backend in backends.into_iter().filter(|b| b.is_available()) {
        group.throughput(Throughput::Elements(1));
        group.bench_function(
            BenchmarkId::new(format!("push_on/{backend}/kqvn4"), format!("d{D}")),
            |b| {
                b.iter(|| {
                    if cache.len() == BATCH {
                        cache.clear();
                    }
                    cache.push_on(backend, black_box(&k[..D]), black_box(&v[..D]))
                })
            },
        );
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_function(
            BenchmarkId::new(
                format!("push_batch_on/{backend}/kqvn4"),
                format!("d{D}x{BATCH}"),
            ),
            |b| {
                b.iter(|| {
                    cache.clear();
                    cache.push_batch_on(backend, black_box(&k), black_box(&v))
                })
            },
        );
    }
    // The widest budgets (5- and 6-bit codes) on every backend.
    for (scheme, bits) in [(Scheme::Kv, 5u8), (Scheme::Kv, 6), (Scheme::Kqv, 6)] {
        let name = format!("{}n{bits}", scheme.name());
        let cfg = CacheConfig::new(scheme, bits, 1, D, BATCH).with_seed(5);
        let mut cache =
            KvCache::new(cfg, vec![0u8; cfg.bytes_needed().expect("valid config")]).expect("fits");
        for backend in backends.into_iter().filter(|b| b.is_available()) {
            group.throughput(Throughput::Elements(BATCH as u64));
            group.bench_function(
                BenchmarkId::new(
                    format!("push_batch_on/{backend}/{name}"),
                    format!("d{D}x{BATCH}"),
                ),
                |b| {
                    b.iter(|| {
                        cache.clear();
                        cache.push_batch_on(backend, black_box(&k), black_box(&v))
                    })
                },
            );
        }
    }
    let mut to = vec![0.0f32; 2 * BATCH * D];
    group.bench_function(BenchmarkId::new("memcpy", format!("d{D}x{BATCH}")), |b| {
        b.iter(|| {
            to[..BATCH * D].copy_from_slice(black_box(&k));
            to[BATCH * D..].copy_from_slice(black_box(&v));
        })
    });
    group.finish();
}

criterion_group!(benches, push);
criterion_main!(benches);
