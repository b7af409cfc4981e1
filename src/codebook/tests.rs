//! Unit tests of the solver and the tables (the kernels are tested in
//! tests/codebook.rs).

use super::*;
use std::format;
use std::string::String;

#[test]
fn tables_equal_the_solver() {
    let mut text = String::new();
    let mut all_equal = true;
    for dim in tables::DIMS {
        for bits in tables::BITS {
            let fresh = Codebook::solve(Law::Sphere(dim), bits);
            let half = fresh.levels() / 2;
            text += &format!(
                "    Entry {{\n        dim: {dim},\n        bits: {bits},\n        half: &{:?},\n        mse: {:?},\n    }},\n",
                &fresh.centroids_f64()[..half],
                fresh.mse()
            );
            match tables::lookup(dim, bits) {
                Some((table, mse)) => {
                    let table = Codebook::from_half(Law::Sphere(dim), bits, table, Some(mse));
                    // f32 centroids and thresholds must be identical; the f64
                    // solution and MSE equal to rounding.
                    let same = table.centroids() == fresh.centroids()
                        && table.thresholds() == fresh.thresholds()
                        && table
                            .centroids_f64()
                            .iter()
                            .zip(fresh.centroids_f64())
                            .all(|(a, b)| (a - b).abs() <= 1e-14 * b.abs())
                        && (table.mse() - fresh.mse()).abs() <= 1e-12 * fresh.mse();
                    all_equal &= same;
                }
                None => all_equal = false,
            }
        }
    }
    assert!(
        all_equal,
        "tables differ from the solver; replacement entries:\n{text}"
    );
}

#[test]
fn lloyd_max_uses_the_table_and_equals_a_fresh_solve() {
    let cb = Codebook::lloyd_max(128, 3).unwrap();
    assert_eq!(cb, {
        let mut fresh = Codebook::solve(Law::Sphere(128), 3);
        fresh.mse = cb.mse; // the table's MSE may differ in the last bits
        fresh.exact = cb.exact;
        fresh
    });
}
