//! Criterion benches for attention decode: one query against T tokens of one
//! KV head, d = 128: `attention/<scheme>/n<bits>/<backend>/t<tokens>` on the
//! compressed cache, beside `attention/f32/<backend>/t<tokens>` and
//! `attention/f16/<backend>/t<tokens>` over the same tokens uncompressed, and
//! `attention/memcpy/1core/t<tokens>` copying the compressed cache's bytes;
//! then `attention/kqv/n4/<backend>/t65536h8`, one query against each of 8
//! KV heads of a cache larger than the LLC, on each SIMD backend (`…h8x2`:
//! four heads on each of two threads; `attention/kv/n4/<backend>/t65536h8`
//! the same for KV on the detected backend), beside
//! `attention/memcpy/1core/512MB`, a copy from memory to memory.
//!
//! The runtime shapes, at T = 65,536 tokens of one KV head:
//! `attention/<scheme>/n<bits>/<backend>/t65536/g<g>x<threads>q<queries>`
//! (`g` query heads sharing the KV head, split over `threads` threads,
//! `queries` positions in one call), each scheme beside
//! `attention/memcpy/1core/t65536/<scheme>n<bits>`, a copy of its cache's
//! bytes in the same run (every scheme and budget at g = 1 and g = 4, on
//! AVX2 too where the detected backend is AVX-512). A shape ending in
//! `int8` scores the keys from 8-bit integers (`Scoring::Int8`; KQV n = 4
//! at g = 1, 4, 8 and every scheme and budget at g = 1, on AVX2 too).
//! `…/g1x2q1` runs `attend_parallel` (rayon's pool); `…/g1x2q1spin` a
//! split the way a runtime's own pool would, `attend_partial` on the
//! calling thread and a helper that spins between calls, each walking its
//! own half.
//!
//! Head dims: `attention/kqv/n4/<backend>/t65536/d<d>` for d = 64, 96, 128,
//! 192 and 256 on the detected backend and on AVX2 (per-token time against
//! d / 128 of the d = 128 time).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use half::f16;
use half::slice::HalfFloatSliceExt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tqkv::attention::{
    Partial, Scoring, attend_many_on, attend_many_with, attend_on, attend_parallel_on,
    attend_partial_on, scratch_len,
};
use tqkv::quant::{CacheConfig, KvCache, Scheme};
use tqkv::rng::SplitMix64;
use tqkv::{Backend, codebook};

const D: usize = 128;

fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut g = SplitMix64::new(seed);
    (0..n)
        .map(|_| (g.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        .collect()
}

/// softmax(q·Kᵀ/√d)·V over f32 rows, with the crate's f32 dot.
fn f32_attention(
    backend: Backend,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    scores: &mut [f32],
    out: &mut [f32],
) {
    let inv = 1.0 / (D as f32).sqrt();
    for (s, row) in scores.iter_mut().zip(k.chunks_exact(D)) {
        *s = codebook::dot_f32_on(backend, q, row).unwrap_or(0.0) * inv;
    }
    softmax(scores);
    out.fill(0.0);
    for (&p, row) in scores.iter().zip(v.chunks_exact(D)) {
        for (o, &x) in out.iter_mut().zip(row) {
            *o += p * x;
        }
    }
}

/// The same over f16 rows, widened one row at a time.
fn f16_attention(
    backend: Backend,
    q: &[f32],
    k: &[f16],
    v: &[f16],
    scores: &mut [f32],
    out: &mut [f32],
) {
    let inv = 1.0 / (D as f32).sqrt();
    let mut row32 = [0.0f32; D];
    for (s, row) in scores.iter_mut().zip(k.chunks_exact(D)) {
        row.convert_to_f32_slice(&mut row32);
        *s = codebook::dot_f32_on(backend, q, &row32).unwrap_or(0.0) * inv;
    }
    softmax(scores);
    out.fill(0.0);
    for (&p, row) in scores.iter().zip(v.chunks_exact(D)) {
        row.convert_to_f32_slice(&mut row32);
        for (o, &x) in out.iter_mut().zip(&row32) {
            *o += p * x;
        }
    }
}

fn softmax(s: &mut [f32]) {
    let max = s.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for x in s.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in s.iter_mut() {
        *x /= sum;
    }
}

fn attention(c: &mut Criterion) {
    let mut group = c.benchmark_group("attention");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(15);
    let best = Backend::detect();
    for tokens in [4096usize, 65536] {
        let k = data(tokens * D, 1);
        let v = data(tokens * D, 2);
        let q = data(D, 3);
        let mut scores = vec![0.0f32; tokens];
        let mut out = vec![0.0f32; D];
        group.throughput(Throughput::Elements(tokens as u64));
        group.bench_function(
            BenchmarkId::new(format!("f32/{}", best.name()), format!("t{tokens}")),
            |b| b.iter(|| f32_attention(best, black_box(&q), &k, &v, &mut scores, &mut out)),
        );
        let k16: Vec<f16> = k.iter().map(|&x| f16::from_f32(x)).collect();
        let v16: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
        group.bench_function(
            BenchmarkId::new(format!("f16/{}", best.name()), format!("t{tokens}")),
            |b| b.iter(|| f16_attention(best, black_box(&q), &k16, &v16, &mut scores, &mut out)),
        );
        for &scheme in Scheme::ALL {
            for bits in [3u8, 4] {
                let cfg = CacheConfig::new(scheme, bits, 1, D, tokens).with_seed(5);
                let mut buf = vec![0u8; cfg.bytes_needed().expect("valid config")];
                let mut cache = KvCache::new(cfg, &mut buf[..]).expect("fits");
                for t in 0..tokens {
                    cache
                        .push(&k[t * D..(t + 1) * D], &v[t * D..(t + 1) * D])
                        .expect("room");
                }
                let mut scratch = vec![0.0f32; scratch_len(&cache, 1)];
                let id = BenchmarkId::new(
                    format!("{}/n{bits}/{}", scheme.name(), best.name()),
                    format!("t{tokens}"),
                );
                group.bench_function(id, |b| {
                    b.iter(|| attend_on(best, &cache, 0, black_box(&q), &mut out, &mut scratch))
                });
                if scheme == Scheme::Kqv && bits == 4 {
                    let bytes = cache.as_bytes().to_vec();
                    let mut copy = vec![0u8; bytes.len()];
                    group.throughput(Throughput::Bytes(bytes.len() as u64));
                    group.bench_function(
                        BenchmarkId::new("memcpy/1core", format!("t{tokens}")),
                        |b| b.iter(|| copy.copy_from_slice(black_box(&bytes))),
                    );
                    group.throughput(Throughput::Elements(tokens as u64));
                }
            }
        }
    }
    group.finish();
}

/// A cache of `HEADS` KV heads of `TOKENS` tokens each under `scheme` at
/// 4 bits, larger than the LLC.
fn large_cache(scheme: Scheme) -> Vec<u8> {
    const TOKENS: usize = 65536;
    const HEADS: usize = 8;
    let cfg = CacheConfig::new(scheme, 4, HEADS, D, TOKENS).with_seed(5);
    let mut buf = vec![0u8; cfg.bytes_needed().expect("valid config")];
    let mut cache = KvCache::new(cfg, &mut buf[..]).expect("fits");
    let (k, v) = (data(HEADS * D * 64, 1), data(HEADS * D * 64, 2));
    for t in 0..TOKENS {
        // 64 distinct tokens, repeated: the codes differ per head anyway.
        let at = (t % 64) * HEADS * D;
        cache
            .push(&k[at..at + HEADS * D], &v[at..at + HEADS * D])
            .expect("room");
    }
    buf
}

/// The same decode past the last-level cache: one query against each of 8
/// KV heads of 65536 tokens (a 70 MB KQV n = 4 cache; the LLC holds 32 MB),
/// so every head's codes come from memory, on each SIMD backend and for KV
/// n = 4 (MSE values) on the best, beside a plain copy of 512 MB
/// (`attention/memcpy/1core/512MB`): the memory bandwidth one core reaches.
fn past_the_cache(c: &mut Criterion) {
    const TOKENS: usize = 65536;
    const HEADS: usize = 8;
    let mut group = c.benchmark_group("attention");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    let best = Backend::detect();
    let q = data(D, 3);
    let mut out = vec![0.0f32; D];
    let kv = large_cache(Scheme::Kv);
    let kqv = large_cache(Scheme::Kqv);
    let simd = Backend::available().filter(|&b| b != Backend::Scalar);
    let runs = simd.map(|b| ("kqv", b, &kqv)).chain([("kv", best, &kv)]);
    for (name, backend, buf) in runs {
        let cache = KvCache::from_bytes(&buf[..]).expect("valid");
        let mut scratch = vec![0.0f32; scratch_len(&cache, 1)];
        group.throughput(Throughput::Bytes(cache.as_bytes().len() as u64));
        let id = BenchmarkId::new(
            format!("{name}/n4/{}", backend.name()),
            format!("t{TOKENS}h{HEADS}"),
        );
        group.bench_function(id, |b| {
            b.iter(|| attend_heads(backend, &cache, 0..HEADS, &q, &mut out, &mut scratch))
        });
    }
    let cache = KvCache::from_bytes(&kqv[..]).expect("valid");
    group.throughput(Throughput::Bytes(cache.as_bytes().len() as u64));
    // The same eight heads over two threads, four heads each (a thread
    // spawned per call: about 60 µs against milliseconds of work).
    let id = BenchmarkId::new(
        format!("kqv/n4/{}", best.name()),
        format!("t{TOKENS}h{HEADS}x2"),
    );
    group.bench_function(id, |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for heads in [0..HEADS / 2, HEADS / 2..HEADS] {
                    let (cache, q) = (&cache, &q);
                    s.spawn(move || {
                        let mut out = vec![0.0f32; D];
                        let mut scratch = vec![0.0f32; scratch_len(cache, 1)];
                        attend_heads(best, cache, heads, q, &mut out, &mut scratch);
                    });
                }
            })
        })
    });
    let from = vec![1u8; 512 << 20];
    let mut to = vec![0u8; 512 << 20];
    group.throughput(Throughput::Bytes(from.len() as u64));
    group.bench_function(BenchmarkId::new("memcpy/1core", "512MB"), |b| {
        b.iter(|| to.copy_from_slice(black_box(&from)))
    });
    group.finish();
}

/// One query attending over each of `heads` in turn (the past-the-cache
/// benches, on one thread or a thread's share).
fn attend_heads(
    backend: Backend,
    cache: &KvCache<impl AsRef<[u8]>>,
    heads: std::ops::Range<usize>,
    q: &[f32],
    out: &mut [f32],
    scratch: &mut [f32],
) {
    for head in heads {
        attend_on(backend, cache, head, black_box(q), out, scratch).expect("valid");
    }
}

/// One KV head of `tokens` tokens at d = 128.
fn filled(scheme: Scheme, bits: u8, tokens: usize) -> KvCache<Vec<u8>> {
    filled_d(scheme, bits, tokens, D)
}

/// One KV head of `tokens` tokens of dimension `d`.
fn filled_d(scheme: Scheme, bits: u8, tokens: usize, d: usize) -> KvCache<Vec<u8>> {
    let k = data(tokens * d, 1);
    let v = data(tokens * d, 2);
    let cfg = CacheConfig::new(scheme, bits, 1, d, tokens).with_seed(5);
    let mut cache =
        KvCache::new(cfg, vec![0u8; cfg.bytes_needed().expect("valid config")]).expect("fits");
    cache.push_batch(&k, &v).expect("room");
    cache
}

/// `attention/kqv/n4/<backend>/t65536/d<d>`: one query head at head dims
/// that are not powers of two (96, 192) beside those that are, on the
/// detected backend and on AVX2 where that is another one.
fn head_dims(c: &mut Criterion) {
    let mut group = runtime_group(c);
    let best = Backend::detect();
    let backends: Vec<Backend> = Backend::available()
        .filter(|&b| b == best || b == Backend::Avx2)
        .collect();
    for d in [64usize, 96, 128, 192, 256] {
        let cache = filled_d(Scheme::Kqv, 4, T, d);
        let q = data(d, 3);
        let mut out = vec![0.0f32; d];
        let mut scratch = vec![0.0f32; scratch_len(&cache, 1)];
        group.throughput(Throughput::Elements(T as u64));
        for &backend in &backends {
            group.bench_function(
                BenchmarkId::new(format!("kqv/n4/{}/t{T}", backend.name()), format!("d{d}")),
                |b| b.iter(|| attend_on(backend, &cache, 0, black_box(&q), &mut out, &mut scratch)),
            );
        }
    }
    group.finish();
}

/// Tokens of the runtime-shape benches: one long decode.
const T: usize = 65536;

/// The group of the runtime-shape benches (each call is milliseconds).
fn runtime_group(
    c: &mut Criterion,
) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group("attention");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(15);
    group
}

/// One query head over the calling thread and one helper that spins
/// between calls, over 32 token ranges each into its own `Partial`: the
/// calling thread takes them from the first on, the helper from the last
/// back (each walks its own half, as `attend_parallel`'s threads do; a
/// shared next range was 7 % slower on a Zen 5), and the states merge in
/// range order.
fn spinning_split(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: BenchmarkId,
    backend: Backend,
    cache: &KvCache<Vec<u8>>,
    q: &[f32],
) {
    const RANGES: usize = 32;
    const STOP: usize = usize::MAX;
    let len = cache.len();
    let state_len = Partial::len_for(cache, 1);
    let slots: Vec<Mutex<Vec<f32>>> = (0..RANGES)
        .map(|_| Mutex::new(vec![0.0f32; state_len]))
        .collect();
    let (epoch, taken, done) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    // Every claim counts in `taken` first, so the two ends never meet.
    let ends = [AtomicUsize::new(0), AtomicUsize::new(0)];
    let drain = |side: usize, scratch: &mut [f32]| {
        while taken.fetch_add(1, Ordering::AcqRel) < RANGES {
            let k = ends[side].fetch_add(1, Ordering::Relaxed);
            let i = if side == 0 { k } else { RANGES - 1 - k };
            let slot = &slots[i];
            let mut buf = slot.lock().expect("no panics");
            let mut state = Partial::new(cache, 1, &mut buf).expect("shape");
            let range = i * len / RANGES..(i + 1) * len / RANGES;
            attend_partial_on(backend, cache, 0, q, range, &mut state, scratch).expect("valid");
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut scratch = vec![0.0f32; scratch_len(cache, 1)];
            let mut seen = 0;
            loop {
                match epoch.load(Ordering::Acquire) {
                    STOP => break,
                    e if e == seen => std::hint::spin_loop(),
                    e => {
                        seen = e;
                        drain(1, &mut scratch);
                        done.fetch_add(1, Ordering::Release);
                    }
                }
            }
        });
        let mut scratch = vec![0.0f32; scratch_len(cache, 1)];
        let mut total = vec![0.0f32; state_len];
        let mut out = vec![0.0f32; D];
        group.bench_function(id, |b| {
            b.iter(|| {
                for counter in [&taken, &ends[0], &ends[1]] {
                    counter.store(0, Ordering::Release);
                }
                let before = done.load(Ordering::Acquire);
                epoch.fetch_add(1, Ordering::AcqRel);
                drain(0, &mut scratch);
                while done.load(Ordering::Acquire) == before {
                    std::hint::spin_loop();
                }
                let mut sum = Partial::new(cache, 1, &mut total).expect("shape");
                for slot in &slots {
                    let mut buf = slot.lock().expect("no panics");
                    sum.merge(&Partial::resume(cache, 1, &mut buf).expect("shape"))
                        .expect("same shape");
                }
                sum.finish_on(backend, cache, &mut out, &mut scratch)
            })
        });
        epoch.store(STOP, Ordering::Release);
    });
}

fn shapes(c: &mut Criterion) {
    let mut group = runtime_group(c);
    let best = Backend::detect();
    let kqv4 = filled(Scheme::Kqv, 4, T);
    let shape_id = |g: usize, x: usize, q: usize| {
        BenchmarkId::new(
            format!("kqv/n4/{}/t{T}", best.name()),
            format!("g{g}x{x}q{q}"),
        )
    };
    // Query heads sharing the KV head, one pass.
    for g in [1usize, 4, 8] {
        let q = data(g * D, 3);
        let mut out = vec![0.0f32; g * D];
        let mut scratch = vec![0.0f32; scratch_len(&kqv4, g)];
        group.bench_function(shape_id(g, 1, 1), |b| {
            b.iter(|| attend_on(best, &kqv4, 0, black_box(&q), &mut out, &mut scratch))
        });
        // The same with the keys scored from 8-bit integers.
        let id = BenchmarkId::new(
            format!("kqv/n4/{}/t{T}", best.name()),
            format!("g{g}x1q1int8"),
        );
        let limit = [T];
        group.bench_function(id, |b| {
            b.iter(|| {
                attend_many_with(
                    best,
                    Scoring::Int8,
                    &kqv4,
                    0,
                    black_box(&q),
                    &limit,
                    &mut out,
                    &mut scratch,
                )
            })
        });
    }
    // One query head split over two threads.
    let q = data(D, 3);
    let mut out = vec![0.0f32; D];
    group.bench_function(shape_id(1, 2, 1), |b| {
        b.iter(|| attend_parallel_on(best, &kqv4, 0, black_box(&q), &mut out, 2))
    });
    // The same split on a helper thread that spins between calls, as a
    // runtime's own pool would run `attend_partial` (rayon parks idle
    // workers, and waking a halted vCPU of a VM takes 15 µs to over 1 ms).
    let id = BenchmarkId::new(format!("kqv/n4/{}/t{T}", best.name()), "g1x2q1spin");
    spinning_split(&mut group, id, best, &kqv4, &q);
    // Eight positions in one call (all at the full length: the worst case).
    let q8 = data(8 * D, 4);
    let mut out8 = vec![0.0f32; 8 * D];
    let mut scratch = vec![0.0f32; scratch_len(&kqv4, 8)];
    let limits = [T; 8];
    group.bench_function(shape_id(1, 1, 8), |b| {
        b.iter(|| {
            attend_many_on(
                best,
                &kqv4,
                0,
                black_box(&q8),
                &limits,
                &mut out8,
                &mut scratch,
            )
        })
    });
    drop(kqv4);
    // Every scheme and budget, one query head and four sharing the KV head,
    // beside a copy of its bytes.
    let mut scratch = vec![0.0f32; 1 << 16];
    for &scheme in Scheme::ALL {
        for bits in 2u8..=6 {
            let cache = filled(scheme, bits, T);
            let bytes = cache.as_bytes().to_vec();
            let mut to = vec![0u8; bytes.len()];
            let name = format!("{}n{bits}", scheme.name());
            group.bench_function(BenchmarkId::new(format!("memcpy/1core/t{T}"), &name), |b| {
                b.iter(|| to.copy_from_slice(black_box(&bytes)))
            });
            // AVX2 beside the detected AVX-512: the backend of x86 machines
            // without AVX-512, at every budget.
            if best != Backend::Avx2 && Backend::available().any(|b| b == Backend::Avx2) {
                one_cache(
                    &mut group,
                    Backend::Avx2,
                    (scheme, bits),
                    &cache,
                    &mut scratch,
                );
            }
            if scheme == Scheme::Kqv && bits == 4 {
                continue; // measured above as g1x1q1 and g4x1q1
            }
            one_cache(&mut group, best, (scheme, bits), &cache, &mut scratch);
        }
    }
    group.finish();
}

/// `attention/<scheme>/n<bits>/<backend>/t65536/…` of one cache on one
/// backend: one query head (`g1x1q1`), the same with the keys scored from
/// 8-bit integers (`g1x1q1int8`), and four query heads (`g4x1q1`).
fn one_cache(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    backend: Backend,
    (scheme, bits): (Scheme, u8),
    cache: &KvCache<Vec<u8>>,
    scratch: &mut [f32],
) {
    let id = |shape: &str| {
        BenchmarkId::new(
            format!("{}/n{bits}/{}/t{T}", scheme.name(), backend.name()),
            shape,
        )
    };
    let (q, q4) = (data(D, 3), data(4 * D, 3));
    let (mut out, mut out4) = (vec![0.0f32; D], vec![0.0f32; 4 * D]);
    group.bench_function(id("g1x1q1"), |b| {
        b.iter(|| attend_on(backend, cache, 0, black_box(&q), &mut out, scratch))
    });
    let limit = [T];
    group.bench_function(id("g1x1q1int8"), |b| {
        b.iter(|| {
            attend_many_with(
                backend,
                Scoring::Int8,
                cache,
                0,
                black_box(&q),
                &limit,
                &mut out,
                scratch,
            )
        })
    });
    assert!(scratch_len(cache, 4) <= scratch.len(), "scratch for g = 4");
    attend_on(backend, cache, 0, &q4, &mut out4, scratch).expect("g = 4 attends");
    group.bench_function(id("g4x1q1"), |b| {
        b.iter(|| attend_on(backend, cache, 0, black_box(&q4), &mut out4, scratch))
    });
}

criterion_group!(benches, attention, past_the_cache, shapes, head_dims);
criterion_main!(benches);
