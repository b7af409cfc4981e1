//! Criterion benches for the WHT, each SIMD backend beside the scalar one:
//! `wht/fwht/<backend>/<n>` (one transform per call, L1-resident data) for
//! n = 16 … 65536, and `wht/fwht_rows/<backend>/<n>x<rows>` (one batched call
//! over `rows` rows). Times are per call; see `support` for how the data stay
//! finite. `wht/rotate/<backend>/<d>`: one [`Rotation::rotate`](tqkv::Rotation)
//! of a `d`-vector, powers of two beside the head dims that are not (80, 96,
//! 112, 160, 192, 320, 384, 576; an orthogonal map keeps the data finite),
//! two whose factor's rows are two floats wide, which every backend
//! leaves to the portable product (56 = 28·2, 120 = 60·2), and two past one
//! pass with the order-28 factor (224, 448), the vector on a 64-byte
//! boundary.

mod support;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use support::Workload;
use tqkv::{Backend, Rotation};

fn fwht(c: &mut Criterion) {
    let mut group = c.benchmark_group("wht/fwht");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(800))
        .sample_size(30);
    for log in 4..=16 {
        let n = 1usize << log;
        group.throughput(Throughput::Elements(n as u64));
        for backend in Backend::available() {
            let mut w = Workload::new(n, 0);
            group.bench_function(BenchmarkId::new(backend.name(), n), |b| {
                b.iter_custom(|iters| w.time_fwht(backend, iters))
            });
        }
    }
    group.finish();
}

fn fwht_rows(c: &mut Criterion) {
    let mut group = c.benchmark_group("wht/fwht_rows");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(800))
        .sample_size(30);
    for (n, rows) in [(128usize, 256usize), (1024, 16)] {
        group.throughput(Throughput::Elements((n * rows) as u64));
        for backend in Backend::available() {
            let mut w = Workload::new(n, rows);
            let id = BenchmarkId::new(backend.name(), format!("{n}x{rows}"));
            group.bench_function(id, |b| b.iter_custom(|iters| w.time_rows(backend, iters)));
        }
    }
    group.finish();
}

fn rotate(c: &mut Criterion) {
    let mut group = c.benchmark_group("wht/rotate");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(800))
        .sample_size(30);
    for d in [
        56usize, 64, 80, 96, 112, 120, 128, 160, 192, 224, 256, 320, 384, 448, 512, 576, 1024,
    ] {
        let rot = Rotation::new(d, 3).expect("a supported dim");
        // On a 64-byte boundary, as a runtime's buffers would be (a
        // vector straddling cache lines splits every register's load).
        let mut store = vec![0.0f32; d + 16];
        let start = store.as_ptr().align_offset(64);
        let x = &mut store[start..start + d];
        for (i, v) in x.iter_mut().enumerate() {
            *v = (i as f32 * 0.37).sin();
        }
        group.throughput(Throughput::Elements(d as u64));
        for backend in Backend::available() {
            group.bench_function(BenchmarkId::new(backend.name(), d), |b| {
                b.iter(|| rot.rotate_on(backend, black_box(&mut *x)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, fwht, fwht_rows, rotate);
criterion_main!(benches);
