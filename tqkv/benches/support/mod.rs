//! Timing helpers shared by `benches/wht.rs` and `examples/tour.rs`.
//!
//! A transform multiplies the norm of its input by √n, so timing the same
//! buffer over and over would soon measure ±∞ and NaN. Instead a workload
//! holds a few L1-resident rows (16 KiB in all, or one row when n is larger),
//! transforms them in turn, and restores the finite input after every
//! `SWEEPS` passes over them, with the clock stopped.

#![allow(dead_code)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use tqkv::{Backend, wht};

/// Passes over the rows between restores (growth ≤ (√n)^4, far from overflow).
pub const SWEEPS: usize = 4;

/// Uniform data in [-1, 1) from the crate's generator.
pub fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut g = tqkv::rng::SplitMix64::new(seed);
    (0..n)
        .map(|_| (g.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        .collect()
}

/// Rows of one length, with their pristine copy.
pub struct Workload {
    pub n: usize,
    pub rows: usize,
    fresh: Vec<f32>,
    store: Vec<f32>,
    start: usize,
}

impl Workload {
    /// `rows` rows of length `n`; `rows = 0` picks enough to fill 16 KiB.
    pub fn new(n: usize, rows: usize) -> Workload {
        let rows = if rows == 0 { (4096 / n).max(1) } else { rows };
        let fresh = data(n * rows, n as u64);
        // Rows start on a 64-byte boundary, as a runtime's buffers would.
        let store = vec![0.0f32; n * rows + 16];
        let start = store.as_ptr().align_offset(64);
        Workload {
            n,
            rows,
            fresh,
            store,
            start,
        }
    }

    fn buf(&mut self) -> &mut [f32] {
        let len = self.n * self.rows;
        &mut self.store[self.start..self.start + len]
    }

    /// Time of `iters` single transforms (`fwht_on`, one row per call).
    pub fn time_fwht(&mut self, backend: Backend, iters: u64) -> Duration {
        let per_restore = (self.rows * SWEEPS) as u64;
        let mut total = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            let (n, rows) = (self.n, self.rows);
            let fresh = std::mem::take(&mut self.fresh);
            let buf = self.buf();
            buf.copy_from_slice(&fresh);
            let count = per_restore.min(iters - done);
            let start = Instant::now();
            let mut row = 0;
            for _ in 0..count {
                let x = &mut buf[row * n..(row + 1) * n];
                let _ = black_box(wht::fwht_on(backend, black_box(x)));
                row = if row + 1 == rows { 0 } else { row + 1 };
            }
            total += start.elapsed();
            self.fresh = fresh;
            done += count;
        }
        total
    }

    /// Time of `iters` batched calls (`fwht_rows_on` over every row).
    pub fn time_rows(&mut self, backend: Backend, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            let n = self.n;
            let fresh = std::mem::take(&mut self.fresh);
            let buf = self.buf();
            buf.copy_from_slice(&fresh);
            let count = (SWEEPS as u64).min(iters - done);
            let start = Instant::now();
            for _ in 0..count {
                let _ = black_box(wht::fwht_rows_on(backend, black_box(&mut *buf), n));
            }
            total += start.elapsed();
            self.fresh = fresh;
            done += count;
        }
        total
    }
}

/// Median over `samples` of the time per call, each sample lasting about
/// `sample` (after one warm-up sample).
pub fn median_ns(samples: usize, sample: Duration, mut time: impl FnMut(u64) -> Duration) -> f64 {
    // Calibrate the iteration count on a short run.
    let mut iters = 16u64;
    loop {
        let t = time(iters);
        if t >= sample / 8 || iters >= 1 << 30 {
            iters =
                ((iters as f64) * sample.as_secs_f64() / t.as_secs_f64().max(1e-9)).ceil() as u64;
            break;
        }
        iters *= 4;
    }
    let iters = iters.max(1);
    let _ = time(iters);
    let mut v: Vec<f64> = (0..samples)
        .map(|_| time(iters).as_secs_f64() * 1e9 / iters as f64)
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
