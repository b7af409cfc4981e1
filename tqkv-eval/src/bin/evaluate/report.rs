//! What the evaluation writes: the CSV, the table on stdout, the findings
//! and summary in Markdown, and the plots.

use std::collections::HashMap;
use std::fmt::Write as _;

use tqkv::qjl::Projection;
use tqkv::quant::Scheme;
use tqkv_eval::metrics::{ConfidenceInterval, Statistic, bootstrap_ci, mann_whitney};

use tqkv_eval::plot;

use crate::{BUDGETS, Cell, Compare, Dataset, Res};

pub(super) fn med(x: &[f64]) -> f64 {
    let mut v = x.to_vec();
    tqkv_eval::metrics::median(&mut v).unwrap_or(f64::NAN)
}

pub(super) fn ci(x: &[f64], resamples: usize, seed: u64) -> Res<ConfidenceInterval> {
    Ok(bootstrap_ci(
        &[x],
        Statistic::Median,
        0.95,
        resamples,
        seed,
    )?)
}

pub(super) fn pname(p: Projection) -> &'static str {
    p.name()
}

pub(super) fn compare(cells: &[&Cell], resamples: usize) -> Res<Compare> {
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

pub(super) fn g(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.abs() >= 0.01 && x.abs() < 1000.0 {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

pub(super) fn write_csv(
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

pub(super) fn find(
    cells: &[Cell],
    di: usize,
    p: Projection,
    n: u8,
    scheme: Scheme,
) -> Option<&Cell> {
    cells
        .iter()
        .find(|c| c.dataset == di && c.projection == p && c.n == n && c.scheme == scheme)
}

/// The medians of the three headline measures, in table order.
const MEDIANS: [fn(&Cell) -> f64; 3] =
    [|x| x.kl.estimate, |x| x.k_err.estimate, |x| x.six.estimate];

/// Every (dataset, projection) that was run, in order.
pub(super) fn groups_of(cells: &[Cell]) -> Vec<(usize, Projection)> {
    let mut v: Vec<(usize, Projection)> = cells.iter().map(|c| (c.dataset, c.projection)).collect();
    v.sort_by_key(|&(d, p)| (d, pname(p)));
    v.dedup();
    v
}

pub(super) fn print_table(data: &[Dataset], cells: &[Cell]) {
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
pub(super) fn findings(
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
    s.push_str(&int8_cost(data, cells));
    s
}

/// Finding 4: the attention KL that scoring keys from 8-bit integers
/// (`Scoring::Int8`) adds, per group, scheme and budget: the median KL
/// with exact scoring, with int8 scoring, and the median over queries of
/// their ratio (paired: the same query, cache and reference).
fn int8_cost(data: &[Dataset], cells: &[Cell]) -> String {
    let mut s = String::from(
        "\n### 4. The attention KL that int8 key scoring adds\n\n\
         `Scoring::Int8` scores keys from the rotated query and the centroids rounded to 8-bit \
         integers. Per budget: median KL with exact scoring → with int8 scoring, and the median \
         of the per-query ratio int8 / exact.\n\n",
    );
    let mut ratios = Vec::new();
    for &(di, p) in &groups_of(cells) {
        for &scheme in Scheme::ALL {
            let mut line = format!("- {} ({}) {}:", data[di].name, pname(p), scheme.name());
            for n in BUDGETS {
                let Some(c) = find(cells, di, p, n, scheme) else {
                    continue;
                };
                let r: Vec<f64> =
                    c.s.kl
                        .iter()
                        .zip(&c.s.kl_int8)
                        .filter(|(e, _)| **e > 0.0)
                        .map(|(e, i)| i / e)
                        .collect();
                let m = med(&r);
                ratios.push(m);
                let _ = write!(
                    line,
                    " n{n} {} → {} (×{:.3});",
                    g(med(&c.s.kl)),
                    g(med(&c.s.kl_int8)),
                    m
                );
            }
            let _ = writeln!(s, "{}", line.trim_end_matches(';'));
        }
    }
    let worst = ratios.iter().cloned().fold(f64::NAN, f64::max);
    let _ = writeln!(
        s,
        "\n**Median per-query KL ratio int8 / exact over the {} cells: {:.3}; the largest cell's: {:.3}.**",
        ratios.len(),
        med(&ratios),
        worst
    );
    s
}

/// Markdown tables for the README: every group at n = 4, then the median
/// KL of every scheme at every budget.
pub(super) fn summary(data: &[Dataset], cells: &[Cell]) -> String {
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

pub(super) fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

pub(super) fn write_plots(dir: &std::path::Path, data: &[Dataset], cells: &[Cell]) -> Res<usize> {
    let mut count = 0;
    for (di, ds) in data.iter().enumerate() {
        for p in [Projection::Hadamard, Projection::Gaussian] {
            if find(cells, di, p, 2, Scheme::Kv).is_none() {
                continue;
            }
            let series = |f: fn(&Cell) -> ConfidenceInterval| -> Vec<plot::Series> {
                Scheme::ALL
                    .iter()
                    .zip([
                        plotters::style::RGBColor(0x1b, 0x9e, 0x77),
                        plotters::style::RGBColor(0xd9, 0x5f, 0x02),
                        plotters::style::RGBColor(0x75, 0x70, 0xb3),
                    ])
                    .map(|(&sc, color)| plot::Series {
                        name: sc.name().to_uppercase(),
                        color,
                        points: BUDGETS
                            .iter()
                            .filter_map(|&n| find(cells, di, p, n, sc))
                            .map(|c| {
                                let i = f(c);
                                plot::Point {
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
            let doc = plot::render(
                &format!("{} — {} QJL (medians, 95% bootstrap CI)", ds.name, pname(p)),
                &[
                    plot::Panel {
                        title: "attention KL vs budget".into(),
                        x_label: "budget n (bits per coordinate)".into(),
                        y_label: "KL(p_ref ‖ p_quant), nats".into(),
                        series: series(|c| c.kl),
                    },
                    plot::Panel {
                        title: "geometric K error vs budget".into(),
                        x_label: "budget n (bits per coordinate)".into(),
                        y_label: "‖k − k̂‖ / ‖k‖".into(),
                        series: series(|c| c.k_err),
                    },
                ],
            )?;
            std::fs::write(dir.join(format!("{}_{}.svg", ds.name, pname(p))), doc)?;
            count += 1;
        }
    }
    Ok(count)
}
