//! Criterion benches for the WHT: `wht/fwht/<backend>/<n>` for n = 16 … 65536,
//! and `wht/fwht_rows/<backend>/<n>x<rows>` for L1-resident batches.
//!
//! Each iteration transforms the same buffer again. Values grow by √n per
//! transform and reach ±∞/NaN after a few dozen iterations; on the x86_64 and
//! aarch64 cores we target, vector adds on infinities and NaN run at full
//! speed (only subnormals take assists), and the inputs never pass through
//! the subnormal range, so the timing is that of finite data (checked in
//! `examples/tour.rs`, which restores finite data before every sample).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use turbokv::{Backend, wht};

fn data(n: usize) -> Vec<f32> {
    let mut g = turbokv::rng::SplitMix64::new(n as u64);
    (0..n)
        .map(|_| (g.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
        .collect()
}

fn fwht(c: &mut Criterion) {
    let mut group = c.benchmark_group("wht/fwht");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(900))
        .sample_size(30);
    for log in 4..=16 {
        let n = 1usize << log;
        group.throughput(Throughput::Elements(n as u64));
        for backend in Backend::available() {
            let mut x = data(n);
            group.bench_with_input(BenchmarkId::new(backend.name(), n), &n, |b, _| {
                b.iter(|| wht::fwht_on(backend, black_box(&mut x)))
            });
        }
    }
    group.finish();
}

fn fwht_rows(c: &mut Criterion) {
    let mut group = c.benchmark_group("wht/fwht_rows");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(900))
        .sample_size(30);
    for (n, rows) in [(128usize, 256usize), (64, 256), (256, 64)] {
        group.throughput(Throughput::Elements((n * rows) as u64));
        for backend in Backend::available() {
            let mut x = data(n * rows);
            let id = BenchmarkId::new(backend.name(), format!("{n}x{rows}"));
            group.bench_with_input(id, &n, |b, &n| {
                b.iter(|| wht::fwht_rows_on(backend, black_box(&mut x), n))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, fwht, fwht_rows);
criterion_main!(benches);
