//! The evaluation's data: seeded synthetic heads and the real MiniLM heads.

use std::path::Path;

use tqkv_eval::metrics::synth::{Role, Synthetic, Tail};

use crate::{DATA_SEED, Dataset, Head, Mode, Res, Settings};

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
fn real_dataset(path: &Path, set: &Settings) -> Res<Dataset> {
    let at_path = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let bytes = std::fs::read(path).map_err(|e| at_path(&e))?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| at_path(&e))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&s| s as usize).collect();
    if npy.order() != npyz::Order::C {
        return Err(at_path(&"expected a C-order array").into());
    }
    // The dump is f16 (half the file); widened once here.
    let halves: Vec<half::f16> = npy.into_vec().map_err(|e| at_path(&e))?;
    let values: Vec<f32> = halves.iter().map(|h| h.to_f32()).collect();
    let [layers, 3, nh, t, d] = shape[..] else {
        return Err(at_path(&format!(
            "unexpected shape {shape:?}, want [layers, 3, heads, tokens, dim]"
        ))
        .into());
    };
    let mat = |l: usize, w: usize, h: usize| {
        let at = (((l * 3 + w) * nh + h) * t) * d;
        &values[at..at + t * d]
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

pub(super) fn datasets(mode: Mode, real: &Path, set: &Settings) -> Res<Vec<Dataset>> {
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
            specs.push((syn(96, Tail::Gaussian, None, 0), false));
            specs.push((syn(64, Tail::StudentT { nu: 3 }, None, 0), false));
        }
        Mode::Default => {
            for tail in tails {
                specs.push((syn(128, tail, None, 0), false));
            }
            for r in [4, 16, 64] {
                specs.push((syn(128, Tail::Gaussian, Some(r), 0), false));
            }
            // Head dims of real models that are not powers of two among them.
            for d in [64, 80, 96, 192, 256] {
                specs.push((syn(d, Tail::Gaussian, None, 0), false));
            }
            specs.push((syn(128, Tail::Gaussian, None, 4), true));
            specs.push((syn(128, Tail::StudentT { nu: 3 }, None, 4), true));
        }
        Mode::Full => {
            for d in [64, 80, 96, 128, 192, 256] {
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
    out.push(real_dataset(real, set)?);
    Ok(out)
}
