//! The evaluation: KV, KQV and QKQV under a fair budget of n bits, on
//! synthetic heads and on real attention data, with the paper's measures and
//! statistics.
//!
//! `cargo run --release --example evaluate [-- --quick | --full]`
//!
//! - default (< 1 min on 2 cores): d = 128 with every tail, ranks 4/16/64,
//!   d = 64 and 256, outlier channels, and the real MiniLM heads;
//! - `--quick` (seconds, for CI): Gaussian d = 128, t3 d = 64 and the real
//!   data, smaller samples;
//! - `--full`: the whole grid, d ∈ {64, 128, 256} × {Gaussian, t3, t5,
//!   Laplace} × {full, rank 4, 16, 64} × {no outliers, 4 outlier channels},
//!   and the real data.
//!
//! The Hadamard QJL projection runs everywhere; the dense Gaussian one, which
//! generates its m·d entries for every vector, on the Gaussian d = 128 set
//! and the real data (with `--full`, on every full-rank set without
//! outliers).
//!
//! For every cell (dataset × QJL projection × budget n × scheme) it encodes
//! and decodes every key and value of every head, then measures per query
//! the attention KL (K only), the output error and the 6D distance, and per
//! key the geometric error; it reports medians with 95% percentile bootstrap
//! intervals, Mann–Whitney KQV vs QKQV and KQV vs KV (p, r), and the bits
//! per coordinate spent. Output: a compact table on stdout (progress on
//! stderr), `target/evaluate/results.csv` (one row per cell),
//! `target/evaluate/findings.md` (the paper's three findings, checked) and
//! one SVG per dataset and projection.

mod npy;
mod svg;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use turbokv::metrics::synth::{Role, Synthetic, Tail};
use turbokv::metrics::{
    ConfidenceInterval, ErrorVector, Geometric, MannWhitney, Statistic, bootstrap_ci, kl_attention,
    mann_whitney,
};
use turbokv::qjl::Projection;
use turbokv::quant::Scheme;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const BUDGETS: [u8; 5] = [2, 3, 4, 5, 6];
const REAL_PATH: &str = "data/minilm_qkv.npy";
const DATA_SEED: u64 = 2026;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Quick,
    Default,
    Full,
}

struct Settings {
    heads: usize,
    tokens: usize,
    queries: usize,
    resamples: usize,
}

/// One head: keys and values `t × d`, queries `nq × d`.
struct Head {
    k: Vec<f32>,
    v: Vec<f32>,
    q: Vec<f32>,
}

struct Dataset {
    name: String,
    dist: String,
    rank: String,
    outliers: usize,
    dim: usize,
    heads: Vec<Head>,
}

/// Everything measured for one cell.
struct Samples {
    kl: Vec<f64>,
    k_err: Vec<f64>,
    six: Vec<f64>,
    k_dir: Vec<f64>,
    k_norm: Vec<f64>,
    v_err: Vec<f64>,
    out: Vec<f64>,
    bits_k: f64,
    bits_v: f64,
}

struct Cell {
    dataset: usize,
    projection: Projection,
    n: u8,
    scheme: Scheme,
    s: Samples,
    kl: ConfidenceInterval,
    k_err: ConfidenceInterval,
    six: ConfidenceInterval,
}

fn synthetic_dataset(spec: Synthetic, outliers_name: bool, set: &Settings) -> Res<Dataset> {
    let d = spec.dim;
    let mut heads = Vec::new();
    for h in 0..set.heads as u64 {
        let mut k = vec![0.0f32; set.tokens * d];
        let mut v = vec![0.0f32; set.tokens * d];
        let mut q = vec![0.0f32; set.queries * d];
        spec.fill(Role::Key, h, 0, &mut k)?;
        spec.fill(Role::Value, h, 0, &mut v)?;
        spec.fill(Role::Query, h, 0, &mut q)?;
        heads.push(Head { k, v, q });
    }
    let rank = spec.rank.map_or("full".to_string(), |r| format!("r{r}"));
    let mut name = format!("{}-d{}-{}", spec.tail.name(), d, rank);
    if outliers_name {
        name += &format!("-o{}", spec.outliers);
    }
    Ok(Dataset {
        name,
        dist: spec.tail.name().to_string(),
        rank,
        outliers: spec.outliers,
        dim: d,
        heads,
    })
}

/// The MiniLM dump: every (layer, head) is one head; `queries` query tokens
/// spread evenly over the sequence attend to every key.
fn real_dataset(set: &Settings) -> Res<Dataset> {
    let bytes = std::fs::read(REAL_PATH).map_err(|e| format!("{REAL_PATH}: {e}"))?;
    let a = npy::parse(&bytes)?;
    let [layers, 3, nh, t, d] = a.shape[..] else {
        return Err(format!("{REAL_PATH}: unexpected shape {:?}", a.shape).into());
    };
    let mat = |l: usize, w: usize, h: usize| {
        let at = (((l * 3 + w) * nh + h) * t) * d;
        &a.data[at..at + t * d]
    };
    let mut heads = Vec::new();
    for l in 0..layers {
        for h in 0..nh {
            let qs = mat(l, 0, h);
            let nq = set.queries.min(t);
            let mut q = Vec::with_capacity(nq * d);
            for i in 0..nq {
                let row = i * t / nq;
                q.extend_from_slice(&qs[row * d..(row + 1) * d]);
            }
            heads.push(Head {
                k: mat(l, 1, h).to_vec(),
                v: mat(l, 2, h).to_vec(),
                q,
            });
        }
    }
    Ok(Dataset {
        name: format!("minilm-d{d}-real"),
        dist: "real".into(),
        rank: "full".into(),
        outliers: 0,
        dim: d,
        heads,
    })
}

fn datasets(mode: Mode, set: &Settings) -> Res<Vec<Dataset>> {
    let syn = |dim, tail, rank, outliers| Synthetic {
        dim,
        tail,
        rank,
        outliers,
        seed: DATA_SEED,
    };
    let tails = [
        Tail::Gaussian,
        Tail::StudentT { nu: 3 },
        Tail::StudentT { nu: 5 },
        Tail::Laplace,
    ];
    let mut specs: Vec<(Synthetic, bool)> = Vec::new();
    match mode {
        Mode::Quick => {
            specs.push((syn(128, Tail::Gaussian, None, 0), false));
            specs.push((syn(64, Tail::StudentT { nu: 3 }, None, 0), false));
        }
        Mode::Default => {
            for tail in tails {
                specs.push((syn(128, tail, None, 0), false));
            }
            for r in [4, 16, 64] {
                specs.push((syn(128, Tail::Gaussian, Some(r), 0), false));
            }
            for d in [64, 256] {
                specs.push((syn(d, Tail::Gaussian, None, 0), false));
            }
            specs.push((syn(128, Tail::Gaussian, None, 4), true));
            specs.push((syn(128, Tail::StudentT { nu: 3 }, None, 4), true));
        }
        Mode::Full => {
            for d in [64, 128, 256] {
                for tail in tails {
                    for rank in [None, Some(4), Some(16), Some(64)] {
                        for o in [0, 4] {
                            specs.push((syn(d, tail, rank, o), true));
                        }
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for (spec, named) in specs {
        out.push(synthetic_dataset(spec, named, set)?);
    }
    out.push(real_dataset(set)?);
    Ok(out)
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

fn softmax(s: &[f32]) -> Vec<f64> {
    let m = s.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let e: Vec<f64> = s.iter().map(|&v| (v as f64 - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.into_iter().map(|v| v / z).collect()
}

/// `Σ p_i v_i`.
fn mix(p: &[f64], v: &[f32], d: usize) -> Vec<f64> {
    let mut o = vec![0.0f64; d];
    for (pi, row) in p.iter().zip(v.chunks_exact(d)) {
        for (oj, &x) in o.iter_mut().zip(row) {
            *oj += pi * x as f64;
        }
    }
    o
}

fn measure(ds: &Dataset, scheme: Scheme, n: u8, projection: Projection) -> Res<Samples> {
    let d = ds.dim;
    let scale = 1.0 / (d as f64).sqrt();
    let mut s = Samples {
        kl: vec![],
        k_err: vec![],
        six: vec![],
        k_dir: vec![],
        k_norm: vec![],
        v_err: vec![],
        out: vec![],
        bits_k: 0.0,
        bits_v: 0.0,
    };
    for (h, head) in ds.heads.iter().enumerate() {
        let (kq, vq) = scheme.quantizers(n, d, 1000 + 7 * h as u64, projection)?;
        s.bits_k = kq.bits_per_coordinate();
        s.bits_v = vq.bits_per_coordinate();
        let mut code = vec![0u8; kq.encoded_len().max(vq.encoded_len())];
        let mut k_hat = vec![0.0f32; head.k.len()];
        let mut v_hat = vec![0.0f32; head.v.len()];
        let (mut kd, mut kn, mut vd, mut vn) = (0.0, 0.0, 0.0, 0.0);
        let t = head.k.len() / d;
        for (x, y) in head.k.chunks_exact(d).zip(k_hat.chunks_exact_mut(d)) {
            kq.encode(x, &mut code)?;
            kq.decode(&code, y)?;
            let g = Geometric::of(x, y)?;
            s.k_err.push(g.relative_l2);
            s.k_dir.push(g.direction);
            s.k_norm.push((g.norm_ratio - 1.0).abs());
            kd += g.direction;
            kn += (g.norm_ratio - 1.0).abs();
        }
        for (x, y) in head.v.chunks_exact(d).zip(v_hat.chunks_exact_mut(d)) {
            vq.encode(x, &mut code)?;
            vq.decode(&code, y)?;
            let g = Geometric::of(x, y)?;
            s.v_err.push(g.relative_l2);
            vd += g.direction;
            vn += (g.norm_ratio - 1.0).abs();
        }
        let tf = t as f64;
        for q in head.q.chunks_exact(d) {
            let sr: Vec<f32> = head
                .k
                .chunks_exact(d)
                .map(|k| (dot(q, k) * scale) as f32)
                .collect();
            let sq: Vec<f32> = k_hat
                .chunks_exact(d)
                .map(|k| (dot(q, k) * scale) as f32)
                .collect();
            let kl = kl_attention(&sr, &sq)?;
            let o = mix(&softmax(&sr), &head.v, d);
            let o_hat = mix(&softmax(&sq), &v_hat, d);
            let num: f64 = o.iter().zip(&o_hat).map(|(a, b)| (a - b) * (a - b)).sum();
            let den: f64 = o.iter().map(|a| a * a).sum();
            let out = (num / den).sqrt();
            let e = ErrorVector {
                k_direction: kd / tf,
                k_norm: kn / tf,
                v_direction: vd / tf,
                v_norm: vn / tf,
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

fn med(x: &[f64]) -> f64 {
    let mut v = x.to_vec();
    turbokv::metrics::median(&mut v).unwrap_or(f64::NAN)
}

fn ci(x: &[f64], resamples: usize, seed: u64) -> Res<ConfidenceInterval> {
    Ok(bootstrap_ci(
        &[x],
        Statistic::Median,
        0.95,
        resamples,
        seed,
    )?)
}

/// One group: a dataset and projection, every budget and scheme.
fn run_group(
    ds: &Dataset,
    di: usize,
    projection: Projection,
    set: &Settings,
    done: &AtomicUsize,
    total: usize,
) -> Res<Vec<Cell>> {
    let mut cells = Vec::new();
    for n in BUDGETS {
        for scheme in Scheme::ALL {
            let s = measure(ds, scheme, n, projection)?;
            let seed = (di as u64) << 16 | (n as u64) << 8;
            cells.push(Cell {
                dataset: di,
                projection,
                n,
                scheme,
                kl: ci(&s.kl, set.resamples, seed)?,
                k_err: ci(&s.k_err, set.resamples, seed + 1)?,
                six: ci(&s.six, set.resamples, seed + 2)?,
                s,
            });
            let k = done.fetch_add(1, Ordering::Relaxed) + 1;
            eprint!(
                "\r[{k:>4}/{total}] {:<24} {:<9} n{n} {:<5}",
                ds.name,
                pname(projection),
                scheme.name()
            );
            let _ = std::io::stderr().flush();
        }
    }
    Ok(cells)
}

fn pname(p: Projection) -> &'static str {
    match p {
        Projection::Hadamard => "hadamard",
        Projection::Gaussian => "gaussian",
    }
}

/// Mann–Whitney and ratio-of-medians figures of one group and budget.
struct Compare {
    mw: [[MannWhitney; 2]; 3], // [kl, k_err, six] × [kqv vs qkqv, kqv vs kv]
    kl_ratio: ConfidenceInterval,
    k_ratio: ConfidenceInterval,
}

fn compare(cells: &[&Cell], resamples: usize) -> Res<Compare> {
    let get = |s: Scheme| cells.iter().find(|c| c.scheme == s).expect("every scheme");
    let (kv, kqv, qkqv) = (get(Scheme::Kv), get(Scheme::Kqv), get(Scheme::Qkqv));
    let pick = |c: &Cell, m: usize| -> Vec<f64> {
        match m {
            0 => c.s.kl.clone(),
            1 => c.s.k_err.clone(),
            _ => c.s.six.clone(),
        }
    };
    let mut mw = Vec::new();
    for m in 0..3 {
        let a = pick(kqv, m);
        mw.push([
            mann_whitney(&a, &pick(qkqv, m))?,
            mann_whitney(&a, &pick(kv, m))?,
        ]);
    }
    let ratio = |a: &[f64], b: &[f64], seed| {
        bootstrap_ci(&[a, b], Statistic::RatioOfMedians, 0.95, resamples, seed)
    };
    Ok(Compare {
        mw: [mw[0], mw[1], mw[2]],
        kl_ratio: ratio(&qkqv.s.kl, &kqv.s.kl, 91)?,
        k_ratio: ratio(&qkqv.s.k_err, &kqv.s.k_err, 92)?,
    })
}

fn g(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.abs() >= 0.01 && x.abs() < 1000.0 {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = if args.iter().any(|a| a == "--quick") {
        Mode::Quick
    } else if args.iter().any(|a| a == "--full") {
        Mode::Full
    } else {
        Mode::Default
    };
    if let Some(a) = args
        .iter()
        .find(|a| !matches!(a.as_str(), "--quick" | "--full"))
    {
        return Err(format!("unknown argument {a}; use --quick or --full").into());
    }
    let set = match mode {
        Mode::Quick => Settings {
            heads: 4,
            tokens: 256,
            queries: 8,
            resamples: 300,
        },
        Mode::Default => Settings {
            heads: 8,
            tokens: 512,
            queries: 16,
            resamples: 1000,
        },
        Mode::Full => Settings {
            heads: 8,
            tokens: 512,
            queries: 16,
            resamples: 1000,
        },
    };
    let start = Instant::now();
    let data = datasets(mode, &set)?;
    // Groups: every dataset with the Hadamard projection; the dense Gaussian
    // one (O(m·d) generated entries per vector, ~100× slower) on the main
    // synthetic set and the real data, and with --full on every full-rank
    // dataset without outliers.
    let mut groups: Vec<(usize, Projection)> = Vec::new();
    for (i, ds) in data.iter().enumerate() {
        groups.push((i, Projection::Hadamard));
        let gaussian = match mode {
            Mode::Quick => false,
            Mode::Default => ds.name == "gauss-d128-full" || ds.dist == "real",
            Mode::Full => ds.rank == "full" && ds.outliers == 0,
        };
        if gaussian {
            groups.push((i, Projection::Gaussian));
        }
    }
    let total = groups.len() * BUDGETS.len() * Scheme::ALL.len();
    eprintln!(
        "evaluate ({}): {} datasets, {} cells, {} heads × {} tokens × {} queries (real data: {} heads), backend {}",
        match mode {
            Mode::Quick => "quick",
            Mode::Default => "default",
            Mode::Full => "full",
        },
        data.len(),
        total,
        set.heads,
        set.tokens,
        set.queries,
        data.last().map_or(0, |d| d.heads.len()),
        turbokv::Backend::detect()
    );
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Res<Vec<Cell>>>> = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(groups.len().max(1));
    std::thread::scope(|sc| {
        for _ in 0..workers {
            sc.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(di, p)) = groups.get(i) else { break };
                    let r = run_group(&data[di], di, p, &set, &done, total);
                    results.lock().expect("no worker panics").push(r);
                }
            });
        }
    });
    eprintln!();
    let mut cells = Vec::new();
    for r in results.into_inner().expect("no worker panics") {
        cells.extend(r.map_err(|e| e.to_string())?);
    }
    cells.sort_by_key(|c| (c.dataset, pname(c.projection), c.n, c.scheme.name()));

    // Comparisons per (dataset, projection, n).
    let mut by_group: HashMap<(usize, &'static str, u8), Vec<&Cell>> = HashMap::new();
    for c in &cells {
        by_group
            .entry((c.dataset, pname(c.projection), c.n))
            .or_default()
            .push(c);
    }
    let mut comps: HashMap<(usize, &'static str, u8), Compare> = HashMap::new();
    for (key, group) in &by_group {
        comps.insert(*key, compare(group, set.resamples)?);
    }

    let dir = std::path::Path::new("target/evaluate");
    std::fs::create_dir_all(dir)?;
    // Plots of an earlier run with another grid would mislead.
    for e in std::fs::read_dir(dir)?.flatten() {
        if e.path().extension().is_some_and(|x| x == "svg") {
            std::fs::remove_file(e.path())?;
        }
    }
    write_csv(&dir.join("results.csv"), &data, &cells, &comps)?;
    print_table(&data, &cells);
    let findings = findings(&data, &cells, &comps);
    print!("{findings}");
    std::fs::write(dir.join("findings.md"), &findings)?;
    std::fs::write(dir.join("summary.md"), summary(&data, &cells))?;
    let plots = write_plots(dir, &data, &cells)?;
    println!(
        "\nwrote target/evaluate/results.csv ({} rows), findings.md, summary.md and {plots} SVG plots in {:.1} s",
        cells.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn write_csv(
    path: &std::path::Path,
    data: &[Dataset],
    cells: &[Cell],
    comps: &HashMap<(usize, &'static str, u8), Compare>,
) -> Res<()> {
    let mut s = String::from(
        "dataset,dist,rank,dim,outliers,projection,scheme,n,bits_k,bits_v,bits,\
         samples_query,samples_key,kl_median,kl_lo,kl_hi,kerr_median,kerr_lo,kerr_hi,\
         six_median,six_lo,six_hi,kdir_median,knorm_median,verr_median,out_median,\
         mw_kl_kqv_qkqv_p,mw_kl_kqv_qkqv_r,mw_kl_kqv_kv_p,mw_kl_kqv_kv_r,\
         mw_kerr_kqv_qkqv_p,mw_kerr_kqv_qkqv_r,mw_kerr_kqv_kv_p,mw_kerr_kqv_kv_r,\
         mw_six_kqv_qkqv_p,mw_six_kqv_qkqv_r,mw_six_kqv_kv_p,mw_six_kqv_kv_r,\
         kl_ratio_qkqv_kqv,kl_ratio_lo,kl_ratio_hi,kerr_ratio_qkqv_kqv,kerr_ratio_lo,kerr_ratio_hi\n",
    );
    for c in cells {
        let ds = &data[c.dataset];
        let cmp = &comps[&(c.dataset, pname(c.projection), c.n)];
        let _ = write!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            ds.name,
            ds.dist,
            ds.rank,
            ds.dim,
            ds.outliers,
            pname(c.projection),
            c.scheme.name(),
            c.n,
            c.s.bits_k,
            c.s.bits_v,
            (c.s.bits_k + c.s.bits_v) / 2.0,
            c.s.kl.len(),
            c.s.k_err.len()
        );
        for i in [&c.kl, &c.k_err, &c.six] {
            let _ = write!(s, ",{:e},{:e},{:e}", i.estimate, i.lower, i.upper);
        }
        for x in [&c.s.k_dir, &c.s.k_norm, &c.s.v_err, &c.s.out] {
            let _ = write!(s, ",{:e}", med(x));
        }
        for m in &cmp.mw {
            for t in m {
                let _ = write!(s, ",{:e},{:e}", t.p_value, t.effect_size);
            }
        }
        for r in [&cmp.kl_ratio, &cmp.k_ratio] {
            let _ = write!(s, ",{:e},{:e},{:e}", r.estimate, r.lower, r.upper);
        }
        s.push('\n');
    }
    std::fs::write(path, s)?;
    Ok(())
}

fn find(cells: &[Cell], di: usize, p: Projection, n: u8, scheme: Scheme) -> Option<&Cell> {
    cells
        .iter()
        .find(|c| c.dataset == di && c.projection == p && c.n == n && c.scheme == scheme)
}

/// The medians of the three headline measures, in table order.
const MEDIANS: [fn(&Cell) -> f64; 3] =
    [|x| x.kl.estimate, |x| x.k_err.estimate, |x| x.six.estimate];

/// Every (dataset, projection) that was run, in order.
fn groups_of(cells: &[Cell]) -> Vec<(usize, Projection)> {
    let mut v: Vec<(usize, Projection)> = cells.iter().map(|c| (c.dataset, c.projection)).collect();
    v.sort_by_key(|&(d, p)| (d, pname(p)));
    v.dedup();
    v
}

fn print_table(data: &[Dataset], cells: &[Cell]) {
    println!(
        "\nMedians over queries (KL, 6D) and keys (K rel. L2). Bits per coordinate include norms."
    );
    for (di, ds) in data.iter().enumerate() {
        for p in [Projection::Hadamard, Projection::Gaussian] {
            if find(cells, di, p, 2, Scheme::Kv).is_none() {
                continue;
            }
            println!("\n{} ({} QJL)", ds.name, pname(p));
            println!(
                "  n | bits kv/kqv/qkqv     | KL kv      kqv        qkqv       | K err kv   kqv        qkqv       | 6D kv      kqv        qkqv"
            );
            for n in BUDGETS {
                let c: Vec<&Cell> = Scheme::ALL
                    .iter()
                    .filter_map(|&s| find(cells, di, p, n, s))
                    .collect();
                let mut line = format!("  {n} |");
                for x in &c {
                    let _ = write!(line, " {:.2}", (x.s.bits_k + x.s.bits_v) / 2.0);
                }
                line += "       |";
                for f in MEDIANS {
                    for x in &c {
                        let _ = write!(line, " {:<10}", g(f(x)));
                    }
                    line += " |";
                }
                println!("{}", line.trim_end_matches(" |"));
            }
        }
    }
}

/// The paper's three findings, checked on every group.
fn findings(
    data: &[Dataset],
    cells: &[Cell],
    comps: &HashMap<(usize, &'static str, u8), Compare>,
) -> String {
    let mut s = String::from("\n## Findings\n");
    let groups = groups_of(cells);
    let name = |di: usize, p: Projection| format!("{} ({})", data[di].name, pname(p));

    // (1) At n = 4, KQV wins on every measure.
    let _ = writeln!(
        s,
        "\n### 1. At n = 4, KQV is best on every measure (KL, K error, 6D distance)\n"
    );
    let mut wins = 0;
    for &(di, p) in &groups {
        let get = |sc| find(cells, di, p, 4, sc).expect("cell");
        let (kv, kqv, qkqv) = (get(Scheme::Kv), get(Scheme::Kqv), get(Scheme::Qkqv));
        let best = |f: fn(&Cell) -> f64| f(kqv) < f(kv) && f(kqv) < f(qkqv);
        let (a, b, c) = (
            best(|x| x.kl.estimate),
            best(|x| x.k_err.estimate),
            best(|x| x.six.estimate),
        );
        if a && b && c {
            wins += 1;
        }
        let cmp = &comps[&(di, pname(p), 4)];
        let _ = writeln!(
            s,
            "- {}: KQV best on KL {}, K error {}, 6D {}; KL KQV {} vs QKQV {} vs KV {}; MW KQV vs QKQV on KL p = {:.2e}, r = {:.3}; vs KV p = {:.2e}, r = {:.3}",
            name(di, p),
            yes(a),
            yes(b),
            yes(c),
            g(kqv.kl.estimate),
            g(qkqv.kl.estimate),
            g(kv.kl.estimate),
            cmp.mw[0][0].p_value,
            cmp.mw[0][0].effect_size,
            cmp.mw[0][1].p_value,
            cmp.mw[0][1].effect_size
        );
    }
    let _ = writeln!(
        s,
        "\n**KQV best on all three measures at n = 4 in {wins} of {} groups.**",
        groups.len()
    );

    // (2) QKQV worse than KQV in KL at every budget.
    let _ = writeln!(
        s,
        "\n### 2. QKQV has a higher attention KL than KQV at every budget\n\nRatio of median KL QKQV/KQV with its 95% bootstrap CI, and the Mann–Whitney r of KQV vs QKQV (negative: KQV smaller).\n"
    );
    let mut worse = 0;
    let mut signif = 0;
    let mut count = 0;
    for &(di, p) in &groups {
        let mut line = format!("- {}:", name(di, p));
        for n in BUDGETS {
            let cmp = &comps[&(di, pname(p), n)];
            let r = cmp.kl_ratio;
            count += 1;
            if r.estimate > 1.0 {
                worse += 1;
                if cmp.mw[0][0].p_value < 0.05 {
                    signif += 1;
                }
            }
            let _ = write!(
                line,
                " n{n} {:.2} [{:.2}, {:.2}] r = {:.2};",
                r.estimate, r.lower, r.upper, cmp.mw[0][0].effect_size
            );
        }
        let _ = writeln!(s, "{}", line.trim_end_matches(';'));
    }
    let _ = writeln!(
        s,
        "\n**QKQV's median KL above KQV's in {worse} of {count} (group, budget) pairs; {signif} of them significant at p < 0.05.**"
    );

    // (3) Crossover in geometric K error.
    let _ = writeln!(
        s,
        "\n### 3. Geometric K error: QKQV better at n ∈ {{2, 3, 5}}, KQV at n ∈ {{4, 6}}?\n\nRatio of median K relative L2 error QKQV/KQV (below 1: QKQV better), 95% CI.\n"
    );
    let mut per_n = [0usize; 5];
    for &(di, p) in &groups {
        let mut line = format!("- {}:", name(di, p));
        for (i, n) in BUDGETS.iter().enumerate() {
            let r = comps[&(di, pname(p), *n)].k_ratio;
            if r.estimate < 1.0 {
                per_n[i] += 1;
            }
            let _ = write!(
                line,
                " n{n} {:.2} [{:.2}, {:.2}];",
                r.estimate, r.lower, r.upper
            );
        }
        let _ = writeln!(s, "{}", line.trim_end_matches(';'));
    }
    let _ = write!(s, "\n**Groups where QKQV has the lower K error:");
    for (i, n) in BUDGETS.iter().enumerate() {
        let _ = write!(s, " n = {n}: {} of {};", per_n[i], groups.len());
    }
    s = s.trim_end_matches(';').to_string();
    s.push_str("**\n");
    s
}

/// Markdown tables for the README: every group at n = 4, then the median
/// KL of every scheme at every budget.
fn summary(data: &[Dataset], cells: &[Cell]) -> String {
    let groups = groups_of(cells);
    let mut s = String::from(
        "At n = 4 (medians; bits per coordinate with norms, mean of K and V):\n\n\
         | data | QJL | bits kv / kqv / qkqv | KL kv | KL kqv | KL qkqv | K err kv | K err kqv | K err qkqv | 6D kv | 6D kqv | 6D qkqv |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for &(di, p) in &groups {
        let c: Vec<&Cell> = Scheme::ALL
            .iter()
            .filter_map(|&sc| find(cells, di, p, 4, sc))
            .collect();
        let bits: Vec<String> = c
            .iter()
            .map(|x| format!("{:.3}", (x.s.bits_k + x.s.bits_v) / 2.0))
            .collect();
        let _ = write!(
            s,
            "| {} | {} | {} |",
            data[di].name,
            pname(p),
            bits.join(" / ")
        );
        for f in MEDIANS {
            for x in &c {
                let _ = write!(s, " {} |", g(f(x)));
            }
        }
        s.push('\n');
    }
    s.push_str(
        "\nMedian attention KL (nats) by budget, kv / kqv / qkqv:\n\n\
         | data | QJL | n = 2 | n = 3 | n = 4 | n = 5 | n = 6 |\n|---|---|---|---|---|---|---|\n",
    );
    for &(di, p) in &groups {
        let _ = write!(s, "| {} | {} |", data[di].name, pname(p));
        for n in BUDGETS {
            let v: Vec<String> = Scheme::ALL
                .iter()
                .filter_map(|&sc| find(cells, di, p, n, sc))
                .map(|x| format!("{:.2e}", x.kl.estimate))
                .collect();
            let _ = write!(s, " {} |", v.join(" / "));
        }
        s.push('\n');
    }
    s
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn write_plots(dir: &std::path::Path, data: &[Dataset], cells: &[Cell]) -> Res<usize> {
    let mut count = 0;
    for (di, ds) in data.iter().enumerate() {
        for p in [Projection::Hadamard, Projection::Gaussian] {
            if find(cells, di, p, 2, Scheme::Kv).is_none() {
                continue;
            }
            let series = |f: fn(&Cell) -> ConfidenceInterval| -> Vec<svg::Series> {
                Scheme::ALL
                    .iter()
                    .zip(["#1b9e77", "#d95f02", "#7570b3"])
                    .map(|(&sc, color)| svg::Series {
                        name: sc.name().to_uppercase(),
                        color,
                        points: BUDGETS
                            .iter()
                            .filter_map(|&n| find(cells, di, p, n, sc))
                            .map(|c| {
                                let i = f(c);
                                svg::Point {
                                    x: c.n as f64,
                                    y: i.estimate,
                                    lo: i.lower,
                                    hi: i.upper,
                                }
                            })
                            .collect(),
                    })
                    .collect()
            };
            let doc = svg::render(
                &format!("{} — {} QJL (medians, 95% bootstrap CI)", ds.name, pname(p)),
                &[
                    svg::Panel {
                        title: "attention KL vs budget".into(),
                        x_label: "budget n (bits per coordinate)".into(),
                        y_label: "KL(p_ref ‖ p_quant), nats".into(),
                        series: series(|c| c.kl),
                    },
                    svg::Panel {
                        title: "geometric K error vs budget".into(),
                        x_label: "budget n (bits per coordinate)".into(),
                        y_label: "‖k − k̂‖ / ‖k‖".into(),
                        series: series(|c| c.k_err),
                    },
                ],
            );
            std::fs::write(dir.join(format!("{}_{}.svg", ds.name, pname(p))), doc)?;
            count += 1;
        }
    }
    Ok(count)
}
