//! Criterion benches for the codebook kernels, every SIMD backend beside the
//! scalar one: `codebook/<op>/<backend>/b<bits>/d<dim>` for quantize_packed,
//! dequantize, dot (one row), dot_rows (one query against 4096 rows),
//! dot_rows_int8 (the same from 8-bit integers) and
//! accumulate_rows (4096 weighted rows summed, the value side of attention), and
//! `codebook/f32dot/<backend>/d128`, the dot of one uncompressed f32 row, as
//! the reference.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tqkv::rng::SplitMix64;
use tqkv::{Backend, Codebook, codebook, pack};

const DIM: usize = 128;
const ROWS: usize = 4096;

fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut g = SplitMix64::new(seed);
    let s = 1.0 / (DIM as f32).sqrt();
    (0..n)
        .map(|_| ((g.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * 1.7 * s)
        .collect()
}

fn kernels(c: &mut Criterion) {
    let mut group = c.benchmark_group("codebook");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(900))
        .sample_size(30);
    let q = data(DIM, 1);
    let rows = data(DIM * ROWS, 2);
    let q_rows = data(ROWS, 3);
    for bits in [2u8, 3, 4, 5, 6] {
        let cb = Codebook::lloyd_max(DIM, bits).expect("valid codebook");
        let len = pack::packed_len(DIM, bits);
        let mut packed = vec![0u8; len * ROWS];
        for (row, dst) in rows.chunks_exact(DIM).zip(packed.chunks_exact_mut(len)) {
            codebook::quantize_packed(&cb, row, dst).expect("fits");
        }
        for backend in Backend::available() {
            let id = |op: &str| {
                BenchmarkId::new(
                    format!("{op}/{}", backend.name()),
                    format!("b{bits}/d{DIM}"),
                )
            };
            // Every call takes the next of the 4096 rows: the same row again
            // and again would let the branch predictor learn it.
            group.throughput(Throughput::Bytes((DIM * 4) as u64));
            let mut out = vec![0u8; len];
            let mut r = 0;
            group.bench_function(id("quantize_packed"), |b| {
                b.iter(|| {
                    r = (r + 1) % ROWS;
                    let x = black_box(&rows[r * DIM..(r + 1) * DIM]);
                    codebook::quantize_packed_on(backend, &cb, x, &mut out)
                })
            });
            let mut deq = vec![0.0f32; DIM];
            group.bench_function(id("dequantize"), |b| {
                b.iter(|| {
                    codebook::dequantize_on(backend, &cb, black_box(&packed[..len]), &mut deq)
                })
            });
            group.throughput(Throughput::Elements(DIM as u64));
            group.bench_function(id("dot"), |b| {
                b.iter(|| codebook::dot_on(backend, &cb, black_box(&q), black_box(&packed[..len])))
            });
            group.throughput(Throughput::Elements((DIM * ROWS) as u64));
            let mut scores = vec![0.0f32; ROWS];
            group.bench_function(id("dot_rows"), |b| {
                b.iter(|| {
                    codebook::dot_rows_on(backend, &cb, black_box(&q), &packed, len, &mut scores)
                })
            });
            group.bench_function(id("dot_rows_int8"), |b| {
                b.iter(|| {
                    codebook::dot_rows_int8_on(
                        backend,
                        &cb,
                        black_box(&q),
                        &packed,
                        len,
                        &mut scores,
                    )
                })
            });
            // The value side of attention: Σ_r w_r·c[idx_r] over 4096 rows.
            let mut sums = vec![0.0f32; DIM];
            group.bench_function(id("accumulate_rows"), |b| {
                b.iter(|| {
                    codebook::accumulate_rows_on(
                        backend,
                        &cb,
                        &packed,
                        len,
                        black_box(&q_rows),
                        &mut sums,
                    )
                })
            });
        }
    }
    group.throughput(Throughput::Elements(DIM as u64));
    for backend in Backend::available() {
        let id = BenchmarkId::new(format!("f32dot/{}", backend.name()), format!("d{DIM}"));
        group.bench_function(id, |b| {
            b.iter(|| codebook::dot_f32_on(backend, black_box(&q), black_box(&rows[..DIM])))
        });
    }
    group.finish();
}

/// One query against a million rows, once both the codes (64 MB at 4 bits)
/// and the f32 rows (512 MB) exceed the last-level cache, beside a plain
/// copy of 512 MB on one core (the bandwidth ceiling).
fn beyond_cache(c: &mut Criterion) {
    const BIG: usize = 1 << 20;
    let backend = Backend::detect();
    let mut group = c.benchmark_group("codebook");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4))
        .sample_size(10);
    let q = data(DIM, 1);
    let rows = data(DIM * BIG, 3);
    let bits = 4u8;
    let cb = Codebook::lloyd_max(DIM, bits).expect("valid codebook");
    let len = pack::packed_len(DIM, bits);
    let mut packed = vec![0u8; len * BIG];
    for (row, dst) in rows.chunks_exact(DIM).zip(packed.chunks_exact_mut(len)) {
        codebook::quantize_packed(&cb, row, dst).expect("fits");
    }
    let mut scores = vec![0.0f32; BIG];
    group.throughput(Throughput::Bytes(packed.len() as u64));
    let id = BenchmarkId::new(
        format!("dot_rows_1m/{}", backend.name()),
        format!("b{bits}/d{DIM}"),
    );
    group.bench_function(id, |b| {
        b.iter(|| codebook::dot_rows_on(backend, &cb, black_box(&q), &packed, len, &mut scores))
    });
    group.throughput(Throughput::Bytes((rows.len() * 4) as u64));
    let id = BenchmarkId::new(
        format!("f32dot_rows_1m/{}", backend.name()),
        format!("d{DIM}"),
    );
    group.bench_function(id, |b| {
        b.iter(|| {
            for (s, row) in scores.iter_mut().zip(rows.chunks_exact(DIM)) {
                *s = codebook::dot_f32_on(backend, black_box(&q), row).unwrap_or(0.0);
            }
        })
    });
    let mut copy = vec![0.0f32; rows.len()];
    group.bench_function(BenchmarkId::new("memcpy/1core", "512MB"), |b| {
        b.iter(|| copy.copy_from_slice(black_box(&rows)))
    });
    group.finish();
}

criterion_group!(benches, kernels, beyond_cache);
criterion_main!(benches);
