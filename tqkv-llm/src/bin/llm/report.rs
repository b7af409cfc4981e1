//! `llm report`: the table and the plots from `results.csv` (tqkv's rows)
//! and `llamacpp.csv` (llama.cpp's, made by tools/llamacpp_rows.py).

use std::fmt::Write as _;
use std::path::Path;

use tqkv_eval::plot::{self, Panel, Point, RGBColor, Series};
use tqkv_llm::LlmError;

/// One row of the CSV (see `HEADER`).
pub struct Row {
    pub source: String,
    pub config: String,
    pub context: usize,
    pub bits: f64,
    pub ppl: f64,
    pub ppl_ref: f64,
    pub dppl: [f64; 3],
    pub kld: [f64; 3],
    pub top1: f64,
}

pub const HEADER: &str = "source,config,context,bits,tokens,ppl,ref_config,ppl_ref,dppl_pct,dppl_lo_pct,dppl_hi_pct,kld,kld_lo,kld_hi,top1_pct,attention_s,total_s";

pub fn read(path: &Path) -> Result<Vec<Row>, LlmError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LlmError::Invalid(format!("cannot read {}: {e}", path.display())))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let bad = || LlmError::Invalid(format!("{} line {}: {line:?}", path.display(), i + 1));
        if f.len() != HEADER.split(',').count() {
            return Err(bad());
        }
        let num = |k: usize| f[k].parse::<f64>().map_err(|_| bad());
        rows.push(Row {
            source: f[0].to_owned(),
            config: f[1].to_owned(),
            context: f[2].parse().map_err(|_| bad())?,
            bits: num(3)?,
            ppl: num(5)?,
            ppl_ref: num(7)?,
            dppl: [num(8)?, num(9)?, num(10)?],
            kld: [num(11)?, num(12)?, num(13)?],
            top1: num(14)?,
        });
    }
    Ok(rows)
}

/// The line a row is drawn on.
fn family(r: &Row) -> String {
    if r.source != "tqkv" {
        return r.source.clone();
    }
    family_of(&r.config)
}

/// The line of a tqkv cache spec.
fn family_of(c: &str) -> String {
    if let Some((base, _)) = c.split_once("+edge") {
        // One line per base scheme: the same layers in between.
        let inner = family_of(base).replace(" (best at each budget)", "");
        return format!("{inner}, edge layers higher");
    }
    if c.starts_with("km") && c.contains("vm") {
        return "K/V MSE presets (best at each budget)".into();
    }
    let base: String = c.chars().filter(|ch| !ch.is_ascii_digit()).collect();
    match base.as_str() {
        "kv" => "KV".into(),
        "kqv" => "KQV".into(),
        "qkqv" => "QKQV".into(),
        "kqvg" => "KQV Gaussian".into(),
        "qkqvg" => "QKQV Gaussian".into(),
        other => other.to_owned(),
    }
}

const COLORS: [RGBColor; 11] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(0, 0, 0),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(127, 127, 127),
];

/// Writes `plot-<context>.svg` and `table-<context>.md` for each context.
pub fn write(rows: &[Row], out: &Path) -> Result<(), LlmError> {
    let mut contexts: Vec<usize> = rows.iter().map(|r| r.context).collect();
    contexts.sort_unstable();
    contexts.dedup();
    for ctx in contexts {
        let here: Vec<&Row> = rows
            .iter()
            .filter(|r| r.context == ctx && r.bits < 17.0)
            .collect();
        let mut families: Vec<String> = Vec::new();
        for r in &here {
            let f = family(r);
            if !families.contains(&f) && r.config != "f16" {
                families.push(f);
            }
        }
        let series = |pick: fn(&Row) -> [f64; 3]| -> Vec<Series> {
            families
                .iter()
                .zip(COLORS.iter().cycle())
                .map(|(f, &color)| {
                    let mut points: Vec<Point> = here
                        .iter()
                        .filter(|r| &family(r) == f && r.config != "f16")
                        .map(|r| {
                            let [y, lo, hi] = pick(r);
                            Point {
                                x: r.bits,
                                y,
                                lo,
                                hi,
                            }
                        })
                        .collect();
                    points.sort_by(|a, b| a.x.total_cmp(&b.x).then(a.y.total_cmp(&b.y)));
                    // Several presets share a budget (4-bit keys with 3-bit
                    // values and the reverse): the line follows the best of
                    // each, the table lists them all.
                    points.dedup_by(|later, kept| later.x == kept.x);
                    Series {
                        name: f.clone(),
                        color,
                        points,
                    }
                })
                .collect()
        };
        let panels = [
            Panel {
                title: "ΔPPL against the reference cache (%; points ≤ 0 not drawn)".into(),
                x_label: "bits per coordinate (side information counted)".into(),
                y_label: "ΔPPL %".into(),
                series: series(|r| r.dppl),
            },
            Panel {
                title: "mean KL of the next-token distribution".into(),
                x_label: "bits per coordinate (side information counted)".into(),
                y_label: "KLD (nats)".into(),
                series: series(|r| r.kld),
            },
        ];
        let whose = if here.iter().any(|r| r.source != "tqkv") {
            "tqkv caches and llama.cpp's"
        } else {
            "tqkv caches"
        };
        let svg = plot::render_sized(
            &format!("SmolLM2-135M, Python tutorial, context {ctx}: {whose}"),
            &panels,
            (640, 480),
        )
        .map_err(|e| LlmError::Invalid(format!("plot: {e}")))?;
        std::fs::write(out.join(format!("plot-{ctx}.svg")), svg)?;
        std::fs::write(out.join(format!("table-{ctx}.md")), table(&here))?;
    }
    Ok(())
}

/// The Markdown table of one context's rows, by source then bits.
pub fn table(rows: &[&Row]) -> String {
    let mut sorted: Vec<&&Row> = rows.iter().collect();
    sorted.sort_by(|a, b| {
        a.source
            .cmp(&b.source)
            .reverse()
            .then(a.bits.total_cmp(&b.bits))
    });
    let mut t = String::from(
        "| source | cache | bits | PPL | reference PPL | ΔPPL % [95 % CI] | mean KLD [95 % CI] | top-1 % |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in sorted {
        let _ = writeln!(
            t,
            "| {} | {} | {:.3} | {:.3} | {:.3} | {:+.2} [{:+.2}, {:+.2}] | {:.4} [{:.4}, {:.4}] | {:.2} |",
            r.source,
            r.config,
            r.bits,
            r.ppl,
            r.ppl_ref,
            r.dppl[0],
            r.dppl[1],
            r.dppl[2],
            r.kld[0],
            r.kld[1],
            r.kld[2],
            r.top1
        );
    }
    t
}
