//! `evaluate`: KV, KQV and QKQV compressed caches under a fair budget of n
//! bits per coordinate, on synthetic and real attention heads, with the
//! paper's measures and statistics. Run `evaluate --help` for the options.
//!
//! For every cell (dataset × QJL projection × budget n × scheme) it fills a
//! `tqkv` [`KvCache`](tqkv::KvCache) with every key and value of every head
//! and reads it back as a runtime does: attention probabilities and outputs
//! from `attention::probabilities_on` / `attend_on`, geometric errors from
//! the stored encodings. Per query it measures the attention KL, the output
//! error and the 6D distance, per key the geometric error; it reports
//! medians with 95% percentile bootstrap intervals, Mann–Whitney KQV vs
//! QKQV and KQV vs KV (p, r), and the bits per coordinate spent.

mod data;
mod law;
mod measure;

mod report;

use std::collections::HashMap;
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rayon::prelude::*;
use tqkv::qjl::Projection;
use tqkv::quant::Scheme;
use tqkv_eval::metrics::{ConfidenceInterval, MannWhitney};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const BUDGETS: [u8; 5] = [2, 3, 4, 5, 6];
const DATA_SEED: u64 = 2026;

const HELP: &str = "\
evaluate: KV vs KQV vs QKQV compressed KV caches, on synthetic and real heads

USAGE:
    cargo run --release -p tqkv-eval -- [OPTIONS]

OPTIONS:
    --quick        a small grid for CI (seconds): Gaussian d = 128 and 96, t3
                   d = 64, the real heads, fewer tokens and resamples
    --full         the whole grid: d in {64, 80, 96, 128, 192, 256} x {Gaussian, t3, t5,
                   Laplace} x {full, rank 4, 16, 64} x {0, 4 outlier channels}
    --out DIR      where to write results.csv, findings.md, summary.md and the
                   SVG plots [default: target/evaluate]
    --data FILE    the real K/V dump (.npy, [layers, 3, heads, tokens, dim])
                   [default: data/minilm_qkv.npy in the repository]
    -h, --help     print this help

Without --quick or --full: d = 128 with every tail, ranks 4/16/64, d = 64,
80, 96, 192 and 256, outlier channels, and the real MiniLM heads (about a
minute on two cores). Every mode also writes law.md: D_mse after the
rotation against the codebook's figure, per head dimension (64 to 576) and
bits, on Gaussian and heavy-tailed keys. The Hadamard QJL projection runs on every dataset; the dense
Gaussian one on the Gaussian d = 128 set and the real data (with --full, on
every full-rank set without outliers). Progress goes to stderr, results to
stdout and to --out.
";

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Quick,
    Default,
    Full,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Quick => "quick",
            Mode::Default => "default",
            Mode::Full => "full",
        }
    }
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
#[derive(Default)]
struct Samples {
    kl: Vec<f64>,
    /// The same KL with the keys scored from 8-bit integers.
    kl_int8: Vec<f64>,
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

/// Mann–Whitney and ratio-of-medians figures of one group and budget.
struct Compare {
    mw: [[MannWhitney; 2]; 3], // [kl, k_err, six] × [kqv vs qkqv, kqv vs kv]
    kl_ratio: ConfidenceInterval,
    k_ratio: ConfidenceInterval,
}

struct Args {
    mode: Mode,
    out: PathBuf,
    data: PathBuf,
}

fn parse_args() -> Result<Option<Args>, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args {
        mode: Mode::Default,
        out: PathBuf::from("target/evaluate"),
        data: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../data/minilm_qkv.npy"
        )),
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("quick") => args.mode = Mode::Quick,
            Long("full") => args.mode = Mode::Full,
            Long("out") => args.out = parser.value()?.into(),
            Long("data") => args.data = parser.value()?.into(),
            Short('h') | Long("help") => return Ok(None),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some(args))
}

/// Progress on stderr: a line rewritten in place on a terminal, one line
/// per finished group elsewhere (a log file stays readable).
struct Progress {
    done: AtomicUsize,
    total: usize,
    terminal: bool,
}

impl Progress {
    fn cell(&self, what: &str) {
        let k = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if self.terminal {
            eprint!("\r[{k:>4}/{}] {what:<48}", self.total);
            let _ = std::io::stderr().flush();
        }
    }

    fn group(&self, what: &str) {
        if !self.terminal {
            let k = self.done.load(Ordering::Relaxed);
            eprintln!("[{k:>4}/{}] {what} done", self.total);
        }
    }
}

/// One group: a dataset and projection, every budget and scheme.
fn run_group(
    ds: &Dataset,
    di: usize,
    projection: Projection,
    set: &Settings,
    progress: &Progress,
) -> Res<Vec<Cell>> {
    let mut cells = Vec::new();
    for n in BUDGETS {
        for &scheme in Scheme::ALL {
            let s = measure::measure(ds, scheme, n, projection)?;
            let seed = (di as u64) << 16 | (n as u64) << 8;
            cells.push(Cell {
                dataset: di,
                projection,
                n,
                scheme,
                kl: report::ci(&s.kl, set.resamples, seed)?,
                k_err: report::ci(&s.k_err, set.resamples, seed + 1)?,
                six: report::ci(&s.six, set.resamples, seed + 2)?,
                s,
            });
            progress.cell(&format!(
                "{} {} n{n} {}",
                ds.name,
                report::pname(projection),
                scheme.name()
            ));
        }
    }
    progress.group(&format!("{} {}", ds.name, report::pname(projection)));
    Ok(cells)
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{HELP}");
            return std::process::ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("evaluate: {e}\n\n{HELP}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("evaluate: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Res<()> {
    let mode = args.mode;
    let set = match mode {
        Mode::Quick => Settings {
            heads: 4,
            tokens: 256,
            queries: 8,
            resamples: 300,
        },
        Mode::Default | Mode::Full => Settings {
            heads: 8,
            tokens: 512,
            queries: 16,
            resamples: 1000,
        },
    };
    let start = Instant::now();
    let data = data::datasets(mode, &args.data, &set)?;
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
        "evaluate ({}): {} datasets, {} cells, {} heads × {} tokens × {} queries (real data: {} heads), backend {}, {} threads",
        mode.name(),
        data.len(),
        total,
        set.heads,
        set.tokens,
        set.queries,
        data.last().map_or(0, |d| d.heads.len()),
        tqkv::Backend::detect(),
        rayon::current_num_threads()
    );
    let progress = Progress {
        done: AtomicUsize::new(0),
        total,
        terminal: std::io::stderr().is_terminal(),
    };
    let results: Vec<Res<Vec<Cell>>> = groups
        .par_iter()
        .map(|&(di, p)| run_group(&data[di], di, p, &set, &progress))
        .collect();
    if progress.terminal {
        eprintln!();
    }
    let mut cells = Vec::new();
    for r in results {
        cells.extend(r?);
    }
    cells.sort_by_key(|c| (c.dataset, report::pname(c.projection), c.n, c.scheme.name()));

    // Comparisons per (dataset, projection, n).
    let mut by_group: HashMap<(usize, &'static str, u8), Vec<&Cell>> = HashMap::new();
    for c in &cells {
        by_group
            .entry((c.dataset, report::pname(c.projection), c.n))
            .or_default()
            .push(c);
    }
    let mut comps: HashMap<(usize, &'static str, u8), Compare> = HashMap::new();
    for (key, group) in &by_group {
        comps.insert(*key, report::compare(group, set.resamples)?);
    }

    let dir = args.out.as_path();
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Plots of an earlier run with another grid would mislead.
    for e in std::fs::read_dir(dir)?.flatten() {
        if e.path().extension().is_some_and(|x| x == "svg") {
            std::fs::remove_file(e.path())?;
        }
    }
    report::write_csv(&dir.join("results.csv"), &data, &cells, &comps)?;
    report::print_table(&data, &cells);
    let findings = report::findings(&data, &cells, &comps);
    print!("{findings}");
    std::fs::write(dir.join("findings.md"), &findings)?;
    std::fs::write(dir.join("summary.md"), report::summary(&data, &cells))?;
    let plots = report::write_plots(dir, &data, &cells)?;
    let law_vectors = if mode == Mode::Quick { 300 } else { 3000 };
    law::write(dir, &law::measure(law_vectors)?, law_vectors)?;
    println!(
        "\nwrote {}/results.csv ({} rows), findings.md, summary.md, law.md and {plots} SVG plots in {:.1} s",
        dir.display(),
        cells.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
