//! The law the codebooks assume, after each rotation: D_mse of unit vectors
//! by Monte Carlo, per head dimension and bits, against the codebook's own
//! figure (`Codebook::mse()`, solved for the sphere-coordinate law of
//! dimension d). On isotropic Gaussian keys every orthogonal rotation meets
//! it; on heavy-tailed keys with outlier channels only one that spreads
//! every coordinate over all outputs does. Each dimension is measured with
//! the rotation it gets (`Rotation::new`) and with the block-diagonal
//! construction beside it.

use std::fmt::Write as _;

use rayon::prelude::*;
use tqkv::{Codebook, Rotation, RotationKind, codebook};
use tqkv_eval::metrics::synth::{Role, Synthetic, Tail};

use crate::{DATA_SEED, Res};

/// Head dimensions measured: powers of two beside the others.
const DIMS: [usize; 9] = [64, 80, 96, 104, 112, 128, 192, 256, 576];

/// One measured cell.
pub(super) struct Row {
    dim: usize,
    data: &'static str,
    rotation: &'static str,
    bits: u8,
    d_mse: f64,
    codebook: f64,
}

fn kind_name(k: RotationKind) -> &'static str {
    match k {
        RotationKind::Hadamard => "hadamard",
        _ => "block-diagonal",
    }
}

/// Mean `‖u − R⁻¹·Q(R·u)‖²` over the unit vectors of `keys`.
fn d_mse(rot: &Rotation, cb: &Codebook, keys: &[f32]) -> Res<f64> {
    let d = rot.dim();
    let (mut y, mut idx, mut back) = (vec![0.0f32; d], vec![0u8; d], vec![0.0f32; d]);
    let mut total = 0.0;
    let rows = keys.chunks_exact(d);
    let n = rows.len();
    for x in rows {
        let norm = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        for (o, &v) in y.iter_mut().zip(x) {
            *o = (v as f64 / norm) as f32;
        }
        let u = y.clone();
        rot.rotate(&mut y)?;
        codebook::quantize(cb, &y, &mut idx)?;
        for (b, &i) in back.iter_mut().zip(&idx) {
            *b = cb.centroids()[i as usize];
        }
        rot.unrotate(&mut back)?;
        total += u
            .iter()
            .zip(&back)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum::<f64>();
    }
    Ok(total / n as f64)
}

/// Every cell, `vectors` keys each.
pub(super) fn measure(vectors: usize) -> Res<Vec<Row>> {
    let cells: Vec<(usize, &'static str, Tail, usize)> = DIMS
        .iter()
        .flat_map(|&d| {
            [
                (d, "gauss", Tail::Gaussian, 0),
                (d, "t3-o4", Tail::StudentT { nu: 3 }, 4),
            ]
        })
        .collect();
    let rows: Vec<Res<Vec<Row>>> = cells
        .par_iter()
        .map(|&(dim, data, tail, outliers)| {
            let spec = Synthetic {
                dim,
                tail,
                rank: None,
                outliers,
                seed: DATA_SEED,
            };
            let mut keys = vec![0.0f32; vectors * dim];
            spec.fill(Role::Key, 0, 0, &mut keys)?;
            let mut out = Vec::new();
            let mut rotations = vec![Rotation::new(dim, 7)?];
            if rotations[0].kind() != RotationKind::BlockDiagonal {
                rotations.push(Rotation::block_diagonal(dim, 7)?);
            }
            for rot in rotations {
                for bits in 1..=4u8 {
                    let cb = Codebook::lloyd_max(dim, bits)?;
                    out.push(Row {
                        dim,
                        data,
                        rotation: kind_name(rot.kind()),
                        bits,
                        d_mse: d_mse(&rot, &cb, &keys)?,
                        codebook: cb.mse(),
                    });
                }
            }
            Ok(out)
        })
        .collect();
    let mut all = Vec::new();
    for r in rows {
        all.extend(r?);
    }
    Ok(all)
}

/// `law.csv` and the markdown table `law.md` (D_mse / codebook figure).
pub(super) fn write(dir: &std::path::Path, rows: &[Row], vectors: usize) -> Res<()> {
    let mut csv = String::from("dim,data,rotation,bits,d_mse,codebook_mse,ratio\n");
    for r in rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{:.6},{:.6},{:.4}",
            r.dim,
            r.data,
            r.rotation,
            r.bits,
            r.d_mse,
            r.codebook,
            r.d_mse / r.codebook
        );
    }
    std::fs::write(dir.join("law.csv"), csv)?;
    let mut md = format!(
        "# D_mse after the rotation, against the codebook's figure\n\n\
         D_mse of unit vectors (mean ‖u − R⁻¹·Q(R·u)‖², {vectors} keys per cell) divided by\n\
         `Codebook::mse()` at the same d and b (1.00: the law the codebook was solved for\n\
         holds). `gauss`: isotropic Gaussian keys; `t3-o4`: Student-t ν = 3 keys with\n\
         four channels ×10. `hadamard`: the rotation each d gets (a Hadamard matrix: the\n\
         WHT, or a Williamson product); `block-diagonal`: the two-pass block construction\n\
         (what 104 gets, shown at every d for comparison).\n\n\
         | d | data | rotation | b = 1 | b = 2 | b = 3 | b = 4 |\n|---|---|---|---|---|---|---|\n"
    );
    for chunk in rows.chunks(4) {
        let r = &chunk[0];
        let _ = write!(md, "| {} | {} | {} |", r.dim, r.data, r.rotation);
        for c in chunk {
            let _ = write!(md, " {:.3} |", c.d_mse / c.codebook);
        }
        md.push('\n');
    }
    std::fs::write(dir.join("law.md"), md)?;
    Ok(())
}
