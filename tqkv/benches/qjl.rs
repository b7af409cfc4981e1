//! Criterion benches for the QJL kernels, every SIMD backend beside the
//! scalar one: `qjl/<op>/<backend>/m<bits>` for `signed_sum_rows` and
//! `bitplanes_rows` (B = 4, one query against 4096 sketches),
//! `accumulate_signs_rows` (4096 weighted sketches summed) and `hamming`
//! (one pair, m = 128, 256, 1024), plus `sketch_gaussian` and
//! `sketch_hadamard` of one vector with d = m (the Hadamard one runs its WHT
//! on the detected backend; the Gaussian one generates its rows on the fly).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tqkv::Backend;
use tqkv::qjl::{self, BitPlaneQuery, Projection, QjlSketcher, Rounding};
use tqkv::rng::SplitMix64;

const ROWS: usize = 4096;

fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut g = SplitMix64::new(seed);
    (0..n).map(|_| g.next_u64() as u8).collect()
}

fn floats(n: usize, seed: u64) -> Vec<f32> {
    let mut g = SplitMix64::new(seed);
    (0..n)
        .map(|_| (g.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        .collect()
}

fn kernels(c: &mut Criterion) {
    let mut group = c.benchmark_group("qjl");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(900))
        .sample_size(30);
    for m in [128usize, 256] {
        let sq = floats(m, 1);
        let rows = bytes(ROWS * m / 8, 2);
        let mut planes = vec![0u64; BitPlaneQuery::words_needed(m, 4)];
        let bq = BitPlaneQuery::new(&sq, 4, Rounding::Nearest, &mut planes).expect("valid query");
        let mut out = vec![0.0f32; ROWS];
        let weights = floats(ROWS, 4);
        group.throughput(Throughput::Elements(ROWS as u64));
        for backend in Backend::available() {
            let id =
                |op: &str| BenchmarkId::new(format!("{op}/{}", backend.name()), format!("m{m}"));
            group.bench_function(id("signed_sum_rows"), |b| {
                b.iter(|| qjl::signed_sum_rows_on(backend, black_box(&sq), &rows, m / 8, &mut out))
            });
            group.bench_function(id("bitplanes_rows"), |b| {
                b.iter(|| bq.signed_sum_rows_on(backend, black_box(&rows), m / 8, &mut out))
            });
            // The value side of prod attention: Σ_r w_r·s_r over 4096 sketches.
            let mut acc = vec![0.0f32; m];
            group.bench_function(id("accumulate_signs_rows"), |b| {
                b.iter(|| {
                    qjl::accumulate_signs_rows_on(
                        backend,
                        &rows,
                        m / 8,
                        black_box(&weights),
                        &mut acc,
                    )
                })
            });
        }
        let x = floats(m, 3);
        let mut sketch = vec![0u8; m / 8];
        for (name, projection) in [
            ("sketch_gaussian", Projection::Gaussian),
            ("sketch_hadamard", Projection::Hadamard),
        ] {
            let sk = QjlSketcher::new(m, m, projection, 7).expect("valid sketcher");
            group.throughput(Throughput::Elements(m as u64));
            let id = BenchmarkId::new(
                format!("{name}/{}", Backend::detect().name()),
                format!("m{m}"),
            );
            group.bench_function(id, |b| b.iter(|| sk.sketch(black_box(&x), &mut sketch)));
        }
    }
    for m in [128usize, 256, 1024] {
        let (a, b2) = (bytes(m / 8, 4), bytes(m / 8, 5));
        group.throughput(Throughput::Bytes((m / 8) as u64 * 2));
        for backend in Backend::available() {
            let id = BenchmarkId::new(format!("hamming/{}", backend.name()), format!("m{m}"));
            group.bench_function(id, |b| {
                b.iter(|| qjl::hamming_on(backend, black_box(&a), black_box(&b2)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
