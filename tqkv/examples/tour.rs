//! A tour of tqkv on this machine: the detected backend, then a WHT timing
//! table for every available backend (median ns per transform, ns per
//! element, speed-up over scalar), the batched form, the best backend's
//! distance from the compute floor, the d = 128 codebooks (MSE and the
//! kernels' speed), the QJL sketches (estimates and kernels' speed) and the
//! compressed KV cache in every scheme (bits, encode and attention time,
//! error against f32 attention).
//!
//! Run with `cargo run --release --example tour` (under 20 s).

#[path = "../benches/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use support::{Workload, median_ns};
use tqkv::attention::{attend, scratch_len};
use tqkv::qjl::{self, BitPlaneQuery, Projection, QjlSketcher, Rounding};
use tqkv::quant::{CacheConfig, KvCache, Scheme};
use tqkv::{Backend, Codebook, Rotation, codebook, pack};

/// The core clock in GHz, from a dependent chain of `x += x >> 1`: a shift
/// and an add of one cycle latency each on every x86_64 and aarch64 core we
/// know, so two cycles per step whatever the frequency.
fn clock_ghz() -> f64 {
    let steps = 50_000_000u64;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let mut x = black_box(0x1234_5678_9abc_def1u64);
        for _ in 0..steps {
            x = x.wrapping_add(x >> 1);
        }
        black_box(x);
        best = best.min(start.elapsed().as_secs_f64());
    }
    2.0 * steps as f64 / best / 1e9
}

/// Lloyd–Max codebooks for d = 128: integrated MSE against the TurboQuant
/// bounds, then the codebook kernels on every backend.
fn codebooks(sample: Duration) {
    const D: usize = 128;
    const ROWS: usize = 4096;
    println!("\ncodebooks, d = {D}: MSE of one rotated unit vector, bounds 4^-b and (√3·π/2)·4^-b");
    for bits in 1..=4u8 {
        let cb = Codebook::lloyd_max(D, bits).expect("valid codebook");
        let lower = 4f64.powi(-(bits as i32));
        let upper = 3f64.sqrt() * std::f64::consts::PI / 2.0 * lower;
        println!(
            "  b = {bits}: mse {:.6}  (bounds {lower:.6} … {upper:.6})",
            cb.mse()
        );
    }

    let mut g = tqkv::rng::SplitMix64::new(9);
    let scale = 1.0 / (D as f32).sqrt();
    let rows: Vec<f32> = (0..D * ROWS)
        .map(|_| ((g.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * 1.7 * scale)
        .collect();
    let q = &rows[..D];
    println!(
        "\ncodebook kernels, d = {D}, median of 9 (quantize_packed: GB/s of f32 in; dot: ns; dot_rows: ns per row of {ROWS})"
    );
    print!("{:>4}", "bits");
    for b in Backend::available() {
        print!(
            " | {:>7} {:>6} {:>6} {:>6}",
            b.name(),
            "quant",
            "dot",
            "rows"
        );
    }
    println!();
    for bits in [2u8, 3, 4] {
        let cb = Codebook::lloyd_max(D, bits).expect("valid codebook");
        let len = pack::packed_len(D, bits);
        let mut packed = vec![0u8; len * ROWS];
        for (row, dst) in rows.chunks_exact(D).zip(packed.chunks_exact_mut(len)) {
            codebook::quantize_packed(&cb, row, dst).expect("fits");
        }
        print!("{bits:>4}");
        for backend in Backend::available() {
            let mut out = vec![0u8; len];
            let quant_ns = median_ns(9, sample, |iters| {
                let start = Instant::now();
                for i in 0..iters as usize {
                    let x = black_box(&rows[(i % ROWS) * D..(i % ROWS + 1) * D]);
                    let _ = black_box(codebook::quantize_packed_on(backend, &cb, x, &mut out));
                }
                start.elapsed()
            });
            let dot_ns = median_ns(9, sample, |iters| {
                let start = Instant::now();
                for i in 0..iters as usize {
                    let row = &packed[(i % ROWS) * len..];
                    let _ = black_box(codebook::dot_on(backend, &cb, black_box(q), row));
                }
                start.elapsed()
            });
            let mut scores = vec![0.0f32; ROWS];
            let rows_ns = median_ns(9, sample, |iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let _ = black_box(codebook::dot_rows_on(
                        backend,
                        &cb,
                        q,
                        &packed,
                        len,
                        &mut scores,
                    ));
                }
                start.elapsed()
            }) / ROWS as f64;
            print!(
                " | {:>7} {:>6.2} {dot_ns:>6.1} {rows_ns:>6.1}",
                "",
                (D * 4) as f64 / quant_ns
            );
        }
        println!();
    }
    print!("f32 dot of one row (ns):");
    for backend in Backend::available() {
        let ns = median_ns(9, sample, |iters| {
            let start = Instant::now();
            for i in 0..iters as usize {
                let row = &rows[(i % ROWS) * D..(i % ROWS + 1) * D];
                let _ = black_box(codebook::dot_f32_on(backend, black_box(q), row));
            }
            start.elapsed()
        });
        print!(" {} {ns:.1}", backend.name());
    }
    println!();
}

/// QJL sketches, d = m = 128: the estimate against the exact inner
/// product, then the kernels on every backend.
fn sketches(sample: Duration) {
    const M: usize = 128;
    const ROWS: usize = 4096;
    let mut g = tqkv::rng::SplitMix64::new(5);
    let mut uniform = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| (g.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
            .collect()
    };
    let r = uniform(M);
    let q: Vec<f32> = r.iter().zip(uniform(M)).map(|(a, b)| a + 0.5 * b).collect();
    let exact: f32 = q.iter().zip(&r).map(|(a, b)| a * b).sum();
    println!("\nQJL, d = m = {M}: ⟨q, r⟩ = {exact:.3}");
    for projection in [Projection::Gaussian, Projection::Hadamard] {
        let sk = QjlSketcher::new(M, M, projection, 1).expect("valid sketcher");
        let mut bits = [0u8; M / 8];
        let gamma = sk.sketch(&r, &mut bits).expect("sizes match");
        let mut sq = [0.0f32; M];
        sk.project(&q, &mut sq).expect("sizes match");
        let est = sk.estimate(&sq, &bits, gamma).expect("sizes match");
        println!(
            "  {projection:?}: estimate {est:.3} from {} bytes of signs",
            M / 8
        );
    }

    let sq = uniform(M);
    let rows: Vec<u8> = uniform(ROWS * M / 8)
        .iter()
        .map(|v| (v * 1e6) as i64 as u8)
        .collect();
    let mut planes = [0u64; 8];
    let bq = BitPlaneQuery::new(&sq, 4, Rounding::Nearest, &mut planes).expect("valid query");
    let mut out = vec![0.0f32; ROWS];
    println!(
        "QJL kernels, m = {M}, ns per row of {ROWS} (median of 9): f32 signed sum | 4 bit-planes | hamming of 1024 bits (ns)"
    );
    let (a, b) = (&rows[..128], &rows[128..256]);
    for backend in Backend::available() {
        let f32_ns = median_ns(9, sample, |iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let _ = black_box(qjl::signed_sum_rows_on(
                    backend,
                    black_box(&sq),
                    &rows,
                    M / 8,
                    &mut out,
                ));
            }
            start.elapsed()
        }) / ROWS as f64;
        let planes_ns = median_ns(9, sample, |iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let _ =
                    black_box(bq.signed_sum_rows_on(backend, black_box(&rows), M / 8, &mut out));
            }
            start.elapsed()
        }) / ROWS as f64;
        let hamming_ns = median_ns(9, sample, |iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let _ = black_box(qjl::hamming_on(backend, black_box(a), black_box(b)));
            }
            start.elapsed()
        });
        println!(
            "  {:>7}: {f32_ns:>7.2} | {planes_ns:>7.2} | {hamming_ns:>6.1}",
            backend.name()
        );
    }
}

/// 4096 tokens × 8 heads × d 128 in each scheme at n = 2 … 6: bits per
/// coordinate, encode time, attention time and error against f32 attention.
fn caches() {
    const T: usize = 4096;
    const H: usize = 8;
    const D: usize = 128;
    let mut g = tqkv::rng::SplitMix64::new(11);
    let mut normal = || {
        let u1 = ((g.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let u2 = (g.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    };
    let keys: Vec<f32> = (0..T * H * D).map(|_| normal()).collect();
    let vals: Vec<f32> = (0..T * H * D).map(|_| normal()).collect();
    let q: Vec<f32> = (0..H * D).map(|_| 2.0 * normal()).collect();
    // f32 attention per head, the reference.
    let mut reference = vec![0.0f64; H * D];
    for h in 0..H {
        let qh = &q[h * D..(h + 1) * D];
        let scores: Vec<f64> = (0..T)
            .map(|t| {
                let k = &keys[(t * H + h) * D..(t * H + h + 1) * D];
                qh.iter().zip(k).map(|(a, b)| (a * b) as f64).sum::<f64>() / (D as f64).sqrt()
            })
            .collect();
        let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        for (t, w) in e.iter().enumerate() {
            let v = &vals[(t * H + h) * D..(t * H + h + 1) * D];
            for (o, &x) in reference[h * D..(h + 1) * D].iter_mut().zip(v) {
                *o += w / sum * x as f64;
            }
        }
    }
    println!(
        "\ncompressed KV cache: {T} tokens × {H} heads × d {D}, one query per head (Hadamard QJL, f16 norms)"
    );
    println!(
        "{:>6} {:>3} {:>9} {:>12} {:>14} {:>14}",
        "scheme", "n", "bits/coord", "encode ms", "attention ms", "rel. error"
    );
    for &scheme in Scheme::ALL {
        for n in 2..=6u8 {
            let cfg = CacheConfig::new(scheme, n, H, D, T).with_seed(21);
            let mut buf = vec![0u8; cfg.bytes_needed().expect("valid config")];
            let mut cache = KvCache::new(cfg, &mut buf[..]).expect("fits");
            let start = Instant::now();
            for t in 0..T {
                let at = t * H * D;
                cache
                    .push(&keys[at..at + H * D], &vals[at..at + H * D])
                    .expect("room");
            }
            let encode = start.elapsed().as_secs_f64() * 1e3;
            // K and V together: 2·H·D coordinates a token.
            let bits = (cache.bytes_per_token() * 8) as f64 / (2 * H * D) as f64;
            let mut scratch = vec![0.0f32; scratch_len(&cache, 1)];
            let mut out = vec![0.0f32; H * D];
            let start = Instant::now();
            for h in 0..H {
                attend(
                    &cache,
                    h,
                    &q[h * D..(h + 1) * D],
                    &mut out[h * D..(h + 1) * D],
                    &mut scratch,
                )
                .expect("valid query");
            }
            let attention = start.elapsed().as_secs_f64() * 1e3;
            let num: f64 = out
                .iter()
                .zip(&reference)
                .map(|(a, b)| (*a as f64 - b).powi(2))
                .sum();
            let den: f64 = reference.iter().map(|b| b * b).sum();
            println!(
                "{:>6} {n:>3} {bits:>9.3} {encode:>12.1} {attention:>14.2} {:>14.4}",
                scheme.name(),
                (num / den).sqrt()
            );
        }
    }
}

fn main() {
    let started = Instant::now();
    let best = Backend::detect();
    let backends: Vec<Backend> = Backend::available().collect();
    println!("tqkv tour");
    println!("detected backend: {best}");
    let names: Vec<&str> = backends.iter().map(|b| b.name()).collect();
    println!("available: {}", names.join(", "));

    // A taste of the API before the numbers.
    let rot = Rotation::new(8, 2026).expect("8 is a power of two");
    let mut x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    rot.rotate(&mut x).expect("length matches");
    println!("\nrotate([1..8]) with seed 2026 = {x:.3?}");
    rot.unrotate(&mut x).expect("length matches");
    println!("unrotate(...)                  = {x:.3?}");

    let ghz = clock_ghz();
    println!("\nclock (dependent shift-add chain): {ghz:.2} GHz");

    println!("\nwht::fwht, median ns per transform (L1-resident rows, 15 samples)");
    print!("{:>7}", "n");
    for b in &backends {
        print!(" {:>10} {:>7}", b.name(), "ns/el");
    }
    println!();
    let sample = Duration::from_millis(4);
    let mut at_1024 = None;
    for log in 4..=16 {
        let n = 1usize << log;
        let mut w = Workload::new(n, 0);
        print!("{n:>7}");
        let mut scalar = None;
        let mut fastest = f64::MAX;
        for &b in &backends {
            let ns = median_ns(15, sample, |iters| w.time_fwht(b, iters));
            let ratio = scalar.map(|s: f64| s / ns);
            scalar.get_or_insert(ns);
            fastest = fastest.min(ns);
            match ratio {
                Some(r) => print!(" {ns:>10.1} {:>7.3} ({r:>4.1}x)", ns / n as f64),
                None => print!(" {ns:>10.1} {:>7.3}", ns / n as f64),
            }
        }
        println!();
        if n == 1024 {
            at_1024 = Some(fastest);
        }
    }

    println!("\nwht::fwht_rows, median ns per row (one batched call)");
    for (n, rows) in [(128usize, 256usize), (1024, 16)] {
        let mut w = Workload::new(n, rows);
        print!("{:>7}", format!("{n}x{rows}"));
        for &b in &backends {
            let ns = median_ns(15, sample, |iters| w.time_rows(b, iters)) / rows as f64;
            print!(" {:>8} {ns:>8.1}", b.name());
        }
        println!();
    }

    if let Some(ns) = at_1024 {
        let lanes = match best {
            Backend::Avx512 => 16.0,
            Backend::Avx2 => 8.0,
            Backend::Neon => 4.0,
            _ => 1.0,
        };
        let floor = 1024.0 * 10.0 / (2.0 * lanes);
        let cycles = ns * ghz;
        println!(
            "\nn = 1024 on {best}: {cycles:.0} cycles at {ghz:.2} GHz; compute floor n·log2(n)/(2·{lanes}) = {floor:.0} cycles; ratio {:.2}",
            cycles / floor
        );
    }
    codebooks(sample);
    sketches(sample);
    caches();
    println!(
        "\ntour finished in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
