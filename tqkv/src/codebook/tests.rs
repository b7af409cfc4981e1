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

/// The fused value pass equals the two kernels it replaces: bit for bit on
/// the same backend (it does their operations in their order), for the
/// fused shapes (d = m = 64, 128) and the fallback ones, every bits value
/// 1–4 and odd strides, onto non-zero sums; and the scalar results within
/// the kernels' tolerance.
#[test]
fn accumulate_rows_and_signs_equals_the_two_kernels() {
    use crate::rng::SplitMix64;
    use std::vec::Vec;
    let mut g = SplitMix64::new(5);
    let mut next = move || (g.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
    let shapes: &[(usize, usize)] = if cfg!(miri) {
        &[(64, 64), (16, 16)]
    } else {
        &[(64, 64), (128, 128), (128, 64), (48, 48), (256, 256)]
    };
    for &(d, m) in shapes {
        for bits in 1..=4u8 {
            let cb = Codebook::lloyd_max(d, bits).unwrap();
            let tokens = if cfg!(miri) { 3 } else { 37 };
            let (code_stride, sign_stride) = (packed_len(d, bits) + 3, m / 8 + 1);
            let codes: Vec<u8> = (0..tokens * code_stride)
                .map(|i| (i * 97 % 251) as u8)
                .collect();
            let signs: Vec<u8> = (0..tokens * sign_stride)
                .map(|i| (i * 13 % 255) as u8)
                .collect();
            let w: Vec<f32> = (0..tokens).map(|_| next()).collect();
            let r: Vec<f32> = (0..tokens).map(|_| next()).collect();
            let out0: Vec<f32> = (0..d).map(|_| next()).collect();
            let acc0: Vec<f32> = (0..m).map(|_| next()).collect();
            let rows = SignedRows {
                codes: &codes,
                code_stride,
                weights: &w,
                signs: &signs,
                sign_stride,
                sign_weights: &r,
            };
            let run = |backend: Backend, fused: bool| {
                let (mut out, mut acc) = (out0.clone(), acc0.clone());
                if fused {
                    accumulate_rows_and_signs_in(
                        backend.check().unwrap(),
                        &cb,
                        &rows,
                        &mut out,
                        &mut acc,
                    )
                    .unwrap();
                } else {
                    accumulate_rows_on(backend, &cb, &codes, code_stride, &w, &mut out).unwrap();
                    crate::qjl::accumulate_signs_rows_on(
                        backend,
                        &signs,
                        sign_stride,
                        &r,
                        &mut acc,
                    )
                    .unwrap();
                }
                (out, acc)
            };
            let bits_of = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let (want_out, want_acc) = run(Backend::Scalar, false);
            let scale = 2.0 + w.iter().chain(&r).map(|x| x.abs()).sum::<f32>();
            for backend in Backend::available() {
                let (a_out, a_acc) = run(backend, true);
                let (b_out, b_acc) = run(backend, false);
                assert_eq!(
                    bits_of(&a_out),
                    bits_of(&b_out),
                    "{backend} d={d} m={m} b={bits}"
                );
                assert_eq!(
                    bits_of(&a_acc),
                    bits_of(&b_acc),
                    "{backend} d={d} m={m} b={bits}"
                );
                for (x, y) in a_out
                    .iter()
                    .chain(&a_acc)
                    .zip(want_out.iter().chain(&want_acc))
                {
                    assert!((x - y).abs() <= 1e-5 * scale, "{backend}: {x} vs {y}");
                }
            }
            // A sign weight of ±∞ (never from attention) takes the two
            // kernels, which keep it ±∞ rather than ∞ − ∞.
            let mut r_inf = r.clone();
            r_inf[tokens / 2] = f32::INFINITY;
            let rows_inf = SignedRows {
                sign_weights: &r_inf,
                ..rows
            };
            for backend in Backend::available() {
                let (mut out, mut acc) = (out0.clone(), acc0.clone());
                accumulate_rows_and_signs_in(
                    backend.check().unwrap(),
                    &cb,
                    &rows_inf,
                    &mut out,
                    &mut acc,
                )
                .unwrap();
                let mut want = acc0.clone();
                crate::qjl::accumulate_signs_rows_on(
                    Backend::Scalar,
                    &signs,
                    sign_stride,
                    &r_inf,
                    &mut want,
                )
                .unwrap();
                assert_eq!(bits_of(&acc), bits_of(&want), "{backend}: ±∞ weight");
            }
            // Mismatched weights are refused.
            let short = SignedRows {
                sign_weights: &r[1..],
                ..rows
            };
            let (mut out, mut acc) = (out0.clone(), acc0.clone());
            let refused = accumulate_rows_and_signs_in(
                Backend::Scalar.check().unwrap(),
                &cb,
                &short,
                &mut out,
                &mut acc,
            );
            assert!(refused.is_err());
        }
    }
}
