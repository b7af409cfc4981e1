//! Unit tests of the solver and the tables (the kernels are tested in
//! tests/codebook.rs).

use super::accumulate::{SignedRows, accumulate_rows_and_signs_in, accumulate_rows_in};
use super::pack::packed_len;
use super::score::{dot_rows_in, dot_rows_int8_in};
use super::*;
use crate::Backend;
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
/// 1–4, rows back to back and apart, onto non-zero sums; and the scalar
/// results within the kernels' tolerance.
#[test]
fn accumulate_rows_and_signs_equals_the_two_kernels() {
    use crate::rng::SplitMix64;
    use std::vec::Vec;
    let mut g = SplitMix64::new(5);
    let mut next = move || (g.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
    // Every multiple of 16 up to 256 (one fused AVX-512 instance each),
    // and shapes the fused kernel declines.
    let shapes: Vec<(usize, usize)> = if cfg!(miri) {
        [(64, 64), (16, 16)].into()
    } else {
        (1..=16)
            .map(|k| (16 * k, 16 * k))
            .chain([(128, 64), (104, 104), (264, 264)])
            .collect()
    };
    // Signs back to back (the cache's layout: eight rows at a time through
    // nibble tables on AVX-512) and a byte apart (a mask per 16 signs).
    // Codes back to back with them (1-bit codes then take the sign tables
    // too) and three bytes apart.
    for (&(d, m), sign_pad) in shapes.iter().flat_map(|s| [(s, 0), (s, 1)]) {
        for bits in 1..=4u8 {
            let cb = Codebook::lloyd_max(d, bits).unwrap();
            let tokens = if cfg!(miri) { 3 } else { 37 };
            let code_pad = 3 * sign_pad;
            let (code_stride, sign_stride) = (packed_len(d, bits) + code_pad, m / 8 + sign_pad);
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

/// The multi-query kernels equal the single-query scalar kernels run query
/// by query, on every backend, within the kernels' tolerance: random row
/// counts (whole blocks of 16 and tails), dimensions, bits 1–8, group sizes
/// past the shared kernels' four, slack in every stride, weights with
/// zeros (past a causal limit) and ±0 in the queries.
#[test]
fn multi_query_kernels_equal_one_query_at_a_time() {
    use crate::rng::SplitMix64;
    let mut rng = SplitMix64::new(17);
    let mut next = move || (rng.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
    // Under Miri: dimensions with precomputed codebooks (no solver runs).
    let trials = if cfg!(miri) { 4 } else { 312 };
    let dims: &[usize] = if cfg!(miri) {
        &[64, 128]
    } else {
        &[16, 64, 128, 192, 256, 320, 48, 80, 96, 104, 112, 144, 208]
    };
    for trial in 0..trials {
        let d = dims[trial % dims.len()];
        let bits = (trial / dims.len() % 8 + 1) as u8;
        let g = 1 + trial % 9;
        let n = [0usize, 1, 15, 16, 17, 31, 32, 33, 48, 90][trial % 10];
        // Sketches of 64·k signs, and as many as coordinates (the fused
        // kernels' shape, 16·k with a partial last chunk).
        let m = [0usize, 64, 128, d][trial % 4];
        // Sketches back to back (the sign tables' shape) and a byte apart,
        // for every kind of m.
        multi_query_case(d, bits, g, n, m, (trial % 3, trial / 4 % 2), &mut next);
    }
}

/// 64 cases; none under Miri, whose scalar-only run the trials above
/// cover (and which has no file system for proptest's failure record).
fn multi_query_config() -> proptest::prelude::ProptestConfig {
    let mut config = proptest::prelude::ProptestConfig::with_cases(if cfg!(miri) { 0 } else { 64 });
    if cfg!(miri) {
        config.failure_persistence = None;
    }
    config
}

proptest::proptest! {
    #![proptest_config(multi_query_config())]

    /// The multi-query kernels against the scalar ones on random shapes:
    /// any width up to 6 bits, head dims of whole and partial registers,
    /// 1–9 queries (the shared kernels take up to four, AVX-512's scores
    /// eight, then the rest),
    /// row counts across the blocks of 16, sketches of whole and partial
    /// 16-sign steps or none, slack in the strides, random data.
    #[test]
    fn multi_query_kernels_match_scalar(
        d in proptest::sample::select(&[8usize, 16, 24, 40, 64, 72, 96, 128, 136, 256][..]),
        bits in 1u8..=6,
        g in 1usize..=9,
        n in 0usize..70,
        m_pick in 0usize..4,
        pad in (0usize..3, 0usize..2),
        seed in proptest::prelude::any::<u64>(),
    ) {
        let m = [0, 16, 24, d][m_pick];
        let mut rng = crate::rng::SplitMix64::new(seed);
        let mut next = move || (rng.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
        multi_query_case(d, bits, g, n, m, pad, &mut next);
    }
}

/// One case of [`multi_query_kernels_equal_one_query_at_a_time`]: `g`
/// queries over `n` rows of `d` `bits`-bit codes (and `m` signs), rows
/// padded by `pad.0` bytes and sketches by `pad.1`, the values from `next`.
fn multi_query_case(
    d: usize,
    bits: u8,
    g: usize,
    n: usize,
    m: usize,
    pad: (usize, usize),
    next: &mut dyn FnMut() -> f32,
) {
    use std::vec;
    use std::vec::Vec;
    let cb = Codebook::lloyd_max(d.next_power_of_two(), bits).unwrap();
    let stride = packed_len(d, bits) + pad.0;
    let sign_stride = m / 8 + pad.1;
    let codes: Vec<u8> = (0..n * stride + 1).map(|i| (i * 131 % 253) as u8).collect();
    let signs: Vec<u8> = (0..n * sign_stride + 1)
        .map(|i| (i * 29 % 251) as u8)
        .collect();
    let (q_stride, w_stride, o_stride) = (d + 2, n + 3, d + m + 5);
    let mut queries: Vec<f32> = (0..g * q_stride).map(|_| next()).collect();
    queries[0] = -0.0;
    let weights: Vec<f32> = (0..g * w_stride)
        .map(|i| if i % 7 == 3 { 0.0 } else { next() })
        .collect();
    let sign_weights: Vec<f32> = (0..g * w_stride).map(|_| next()).collect();
    let acc0: Vec<f32> = (0..g * o_stride).map(|_| next()).collect();
    // The reference: the scalar kernels, one query after the other.
    let mut want_scores = vec![0.0f32; g * w_stride];
    let mut want_acc = acc0.clone();
    for h in 0..g {
        let q = &queries[h * q_stride..][..d];
        scalar::dot_rows(
            &cb,
            q,
            &codes,
            stride,
            &mut want_scores[h * w_stride..][..n],
        );
        let w = &weights[h * w_stride..][..n];
        scalar::accumulate_rows(&cb, &codes, stride, w, &mut want_acc[h * o_stride..][..d]);
        if m > 0 {
            let sw = &sign_weights[h * w_stride..][..n];
            let a = &mut want_acc[h * o_stride + d..][..m];
            crate::qjl::accumulate_signs_rows_on(Backend::Scalar, &signs, sign_stride, sw, a)
                .unwrap();
        }
    }
    let rows = WeightedRows {
        codes: &codes,
        code_stride: stride,
        signs: &signs,
        sign_stride,
        n,
        weights: &weights,
        sign_weights: &sign_weights,
        w_stride,
    };
    for backend in Backend::available() {
        let checked = backend.check().unwrap();
        let mut scores = vec![0.0f32; g * w_stride];
        let q = Queries {
            values: &queries,
            dim: d,
            stride: q_stride,
            count: g,
        };
        dot_rows_multi_in(checked, &cb, q, &codes, stride, n, &mut scores, w_stride).unwrap();
        let mut acc = acc0.clone();
        accumulate_multi_in(checked, &cb, &rows, g, d, m, &mut acc, o_stride).unwrap();
        let what = format!("{backend} d={d} b={bits} g={g} n={n} m={m}");
        for h in 0..g {
            let q = &queries[h * q_stride..][..d];
            let bound: f32 = q.iter().map(|x| x.abs()).sum::<f32>() + 1.0;
            for r in 0..n {
                let (x, y) = (scores[h * w_stride + r], want_scores[h * w_stride + r]);
                assert!((x - y).abs() <= 1e-5 * bound, "{what}: score {x} vs {y}");
            }
            let w: f32 = weights[h * w_stride..][..n].iter().map(|x| x.abs()).sum();
            let sw: f32 = sign_weights[h * w_stride..][..n]
                .iter()
                .map(|x| x.abs())
                .sum();
            let scale = 2.0 + w + sw;
            let (a, b) = (
                &acc[h * o_stride..][..d + m],
                &want_acc[h * o_stride..][..d + m],
            );
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() <= 1e-5 * scale, "{what}: sum {x} vs {y}");
            }
        }
        // AVX-512 scores 1- and 2-bit rows of up to 256 codes with each
        // query's own nibble tables, NEON rows of 1 to 4 bits with each
        // query's own tables: one query's bits.
        let own_tables = match backend {
            Backend::Avx512 => bits <= 2,
            Backend::Neon => bits <= 4,
            _ => false,
        };
        if own_tables && d <= 256 {
            for h in 0..g {
                let q = &queries[h * q_stride..][..d];
                let mut one = vec![0.0f32; n];
                dot_rows_in(checked, &cb, q, &codes, stride, &mut one).unwrap();
                for (r, (x, y)) in scores[h * w_stride..][..n].iter().zip(&one).enumerate() {
                    assert_eq!(x.to_bits(), y.to_bits(), "{what}: query {h}, row {r}");
                }
            }
        }
        // AVX2 and NEON share each group's load and lookup between the
        // weight sets (up to four), each set's FMAs in row order, and
        // each row's signs, each set's ±w in row order: the same bits as
        // one set at a time.
        if matches!(backend, Backend::Avx2 | Backend::Neon) {
            for h in 0..g {
                let mut one = acc0[h * o_stride..][..d + m].to_vec();
                let (codes_one, signs_one) = one.split_at_mut(d);
                let w = &weights[h * w_stride..][..n];
                accumulate_rows_in(checked, &cb, &codes, stride, w, codes_one).unwrap();
                let sw = &sign_weights[h * w_stride..][..n];
                crate::qjl::accumulate_signs_rows_in(checked, &signs, sign_stride, sw, signs_one)
                    .unwrap();
                for (j, (x, y)) in acc[h * o_stride..][..d + m].iter().zip(&one).enumerate() {
                    assert_eq!(x.to_bits(), y.to_bits(), "{what}: set {h}, coordinate {j}");
                }
            }
        }
        // The same rows ending where an unreadable page begins: a kernel
        // that reads in place past its rows faults here (the buffers above
        // have a byte to spare, and the heap more), and one that copies
        // the last rows gives the bits it gives in place.
        #[cfg(all(unix, not(miri)))]
        {
            let (codes_end, signs_end) = (
                PageEnd::new(&codes[..n * stride]),
                PageEnd::new(&signs[..n * sign_stride]),
            );
            let mut end_scores = vec![0.0f32; g * w_stride];
            let (c, s) = (codes_end.bytes(), signs_end.bytes());
            dot_rows_multi_in(checked, &cb, q, c, stride, n, &mut end_scores, w_stride).unwrap();
            let end_rows = WeightedRows {
                codes: c,
                signs: s,
                ..rows
            };
            let mut end_acc = acc0.clone();
            accumulate_multi_in(checked, &cb, &end_rows, g, d, m, &mut end_acc, o_stride).unwrap();
            let bits_of = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits_of(&end_scores),
                bits_of(&scores),
                "{what}: scores at a page end"
            );
            assert_eq!(
                bits_of(&end_acc),
                bits_of(&acc),
                "{what}: sums at a page end"
            );
        }
        // Nothing between the queries' parts moves.
        for (i, (x, y)) in acc.iter().zip(&acc0).enumerate() {
            if i % o_stride >= d + m {
                assert_eq!(x.to_bits(), y.to_bits(), "{what}: slack at {i}");
            }
        }
    }
}

#[test]
fn quantize_packed_centroids_equals_quantize_then_dequantize() {
    use crate::rng::SplitMix64;
    let mut g = SplitMix64::new(11);
    let lens: &[usize] = if cfg!(miri) {
        &[0, 5, 64, 77]
    } else {
        &[0, 1, 7, 16, 63, 64, 65, 128, 200, 300]
    };
    // Under Miri, the widths with precomputed codebooks (no solver runs).
    let widths = if cfg!(miri) { 1..=4u8 } else { 1..=8u8 };
    for bits in widths {
        let cb = Codebook::lloyd_max(128, bits).unwrap();
        for &n in lens {
            // Values inside and outside the centroids' range, exact
            // thresholds (ties go down) and signed zeros.
            let mut x: std::vec::Vec<f32> = (0..n)
                .map(|_| ((g.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.6)
                .collect();
            for (slot, v) in x
                .iter_mut()
                .zip([0.0f32, -0.0, cb.thresholds()[0], 1.0, -1.0])
            {
                *slot = v;
            }
            let packed_len = pack::packed_len(n, bits);
            let mut want = std::vec![0u8; packed_len];
            let mut want_c = std::vec![0.0f32; n];
            let scalar = Backend::Scalar.check().unwrap();
            quantize_packed_in(scalar, &cb, &x, &mut want).unwrap();
            dequantize_in(scalar, &cb, &want, &mut want_c).unwrap();
            let bits_of = |v: &[f32]| v.iter().map(|c| c.to_bits()).collect::<std::vec::Vec<_>>();
            for backend in Backend::available() {
                // Input and centroids at several offsets into a register.
                for offset in [0usize, 1, 3] {
                    let mut input = std::vec![0.0f32; offset + n];
                    input[offset..].copy_from_slice(&x);
                    let mut got = std::vec![0u8; packed_len];
                    let mut got_c = std::vec![1.0f32; offset + n];
                    let b = backend.check().unwrap();
                    let (x, c) = (&input[offset..], &mut got_c[offset..]);
                    quantize_packed_centroids_in(b, &cb, x, &mut got, c).unwrap();
                    assert_eq!(got, want, "{backend} bits {bits} n {n} offset {offset}");
                    assert_eq!(bits_of(c), bits_of(&want_c), "{backend} bits {bits} n {n}");
                }
            }
        }
    }
}

#[test]
fn a_walk_down_the_search_order_counts_the_thresholds_below() {
    // Under Miri, the widths with precomputed codebooks (no solver runs).
    let widths = if cfg!(miri) { 1..=4 } else { 1..=SEARCH_BITS };
    for bits in widths {
        let cb = Codebook::lloyd_max(128, bits).unwrap();
        let t = cb.thresholds();
        let order = cb.search_order();
        // Every probe is a threshold, each threshold probed once, +∞ after.
        let mut probes: std::vec::Vec<f32> = order[..t.len()].to_vec();
        probes.sort_by(f32::total_cmp);
        assert_eq!(probes, t, "bits {bits}");
        assert!(order[t.len()..].iter().all(|&v| v == f32::INFINITY));
        let mut xs = std::vec![0.0f32, -0.0, f32::MAX, -f32::MAX, f32::NAN, 1e-40];
        for &v in t {
            xs.extend([v, v.next_up(), v.next_down()]);
        }
        for x in xs {
            let mut node = 0usize;
            for level in 0..bits {
                let probe = order[(1 << level) - 1 + node];
                node = 2 * node + usize::from(x > probe);
            }
            let count = t.iter().filter(|&&v| x > v).count();
            assert_eq!(node, count, "bits {bits} x {x}");
        }
    }
}

/// The int8 scores of several queries at once (AVX-512 shares each row's
/// loads and lookups between up to four) are the same bits as each query
/// alone, on every backend: groups of 1 to 9, rows in whole blocks of 16
/// and tails, rows past the 256 codes whose queries stay in registers,
/// padded strides, an all-zero query; and groups of four at head
/// dimensions up to `MAX_DIM`, every width (the rounded queries of a group
/// share one work space on the stack, which must hold four of the
/// largest: it held about two, and past d = 2,176 the third and fourth
/// queries were scored as empty ones, every score 0).
#[test]
fn int8_multi_query_scores_equal_one_query_at_a_time() {
    use crate::rng::SplitMix64;
    let span = int8::padded(crate::quant::MAX_DIM);
    assert!(int8::GROUP * span <= crate::stack::BYTES_MAX);
    let mut rng = SplitMix64::new(23);
    let trials = if cfg!(miri) { 3 } else { 240 };
    let dims: &[usize] = if cfg!(miri) {
        &[64, 128]
    } else {
        &[1, 16, 64, 100, 128, 192, 256, 257, 320, 48, 96, 520]
    };
    for trial in 0..trials {
        let d = dims[trial % dims.len()];
        let bits = (trial / dims.len() % 8 + 1) as u8;
        let cb = Codebook::lloyd_max(d.next_power_of_two().max(2), bits).unwrap();
        let n = [0usize, 1, 15, 16, 17, 33, 48, 90][trial % 8];
        int8_group_against_one(&cb, d, 1 + trial % 9, n, trial % 3, &mut rng);
    }
    // Under Miri: one large dimension, one width, one row.
    let (large, widths, rows): (&[usize], core::ops::RangeInclusive<u8>, usize) = if cfg!(miri) {
        (&[2200], 4..=4, 1)
    } else {
        (&[2200, 3000, crate::quant::MAX_DIM], 1..=6, 5)
    };
    for &d in large {
        for bits in widths.clone() {
            // The codebook's own dimension does not bound the rows'.
            let cb = Codebook::lloyd_max(128, bits).unwrap();
            int8_group_against_one(&cb, d, int8::GROUP, rows, 0, &mut rng);
        }
    }
}

/// [`int8_multi_query_scores_equal_one_query_at_a_time`] for one shape:
/// `g` random queries of `d` values (the second all zero when `g > 2`)
/// against `n` rows `slack` bytes apart, grouped and one at a time.
fn int8_group_against_one(
    cb: &Codebook,
    d: usize,
    g: usize,
    n: usize,
    slack: usize,
    rng: &mut crate::rng::SplitMix64,
) {
    use std::vec;
    use std::vec::Vec;
    let bits = cb.bits();
    let stride = packed_len(d, bits) + slack;
    let codes: Vec<u8> = (0..n * stride + 1).map(|i| (i * 131 % 253) as u8).collect();
    let (q_stride, o_stride) = (d + 2, n + 3);
    let mut queries: Vec<f32> = (0..g * q_stride)
        .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        .collect();
    if g > 2 {
        queries[q_stride..2 * q_stride].fill(0.0);
    }
    // Rounded as attention rounds them, one stride apart.
    let r_stride = int8::rounded_len(d) + 1;
    let mut rounded = vec![f32::NAN; g * r_stride];
    for (qh, r) in queries.chunks(q_stride).zip(rounded.chunks_mut(r_stride)) {
        int8::round_query(&qh[..d], r);
    }
    let q = Queries {
        values: &rounded,
        dim: d,
        stride: r_stride,
        count: g,
    };
    for backend in Backend::available() {
        let backend = backend.check().unwrap();
        let mut got = vec![f32::NAN; g * o_stride];
        dot_rows_int8_multi_in(backend, cb, q, &codes, stride, n, &mut got, o_stride).unwrap();
        for h in 0..g {
            let mut want = vec![0.0f32; n];
            let qh = &queries[h * q_stride..][..d];
            dot_rows_int8_in(backend, cb, qh, &codes, stride, &mut want).unwrap();
            let bits_of = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits_of(&got[h * o_stride..][..n]),
                bits_of(&want),
                "d {d}, {bits} bits, g {g}, n {n}, query {h} on {backend:?}"
            );
        }
    }
}

/// `g` queries of `d` values back to back against `n` rows `stride` apart.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn score_rows<'a>(
    values: &'a [f32],
    rows: &'a [u8],
    stride: usize,
    (d, g, n): (usize, usize, usize),
) -> ScoreRows<'a> {
    let q = Queries {
        values,
        dim: d,
        stride: d,
        count: g,
    };
    ScoreRows { q, rows, stride, n }
}

/// The value rows of the refusal tests: `n` rows of `row` bytes, one
/// weight set of `n` a query, sums `d` apart.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn codes_job<'a>(
    rows: &'a [u8],
    row: usize,
    n: usize,
    weights: &'a [f32],
    d: usize,
) -> WeightedCodes<'a> {
    WeightedCodes {
        rows,
        stride: row,
        n,
        weights,
        w_stride: n,
        out_stride: d,
        d,
    }
}

/// The sketches of the refusal tests: `n` rows of `d` signs back to back,
/// one weight set of `n` a query, sums `d` apart.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn signs_job<'a>(
    signs: &'a [u8],
    n: usize,
    weights: &'a [f32],
    d: usize,
) -> crate::qjl::SignSets<'a> {
    crate::qjl::SignSets {
        signs,
        sign_stride: d / 8,
        n,
        weights,
        w_stride: n,
        acc_stride: d,
        m: d,
    }
}

/// The NEON kernels for several queries or weight sets refuse buffers one
/// value or byte too short (queries, rows, weights, scores, sums), and
/// take whole ones.
#[cfg(target_arch = "aarch64")]
#[test]
fn neon_multi_set_kernels_refuse_buffers_too_short() {
    use crate::qjl::neon_accumulate_signs_multi;
    use std::vec;
    let (d, bits, n, g) = (128usize, 4u8, 16usize, 2usize);
    let cb = Codebook::lloyd_max(d, bits).unwrap();
    let row = packed_len(d, bits);
    let codes = vec![0x5au8; n * row];
    let signs = vec![0xa5u8; n * d / 8];
    let queries = vec![0.25f32; g * d];
    let weights = vec![0.5f32; g * n];
    let b = Backend::Neon.check().unwrap();
    let scores = |q: &[f32], r: &[u8], out_len: usize| {
        let mut out = vec![0.0f32; out_len];
        neon::dot_rows_multi(b, &cb, score_rows(q, r, row, (d, g, n)), &mut out, n)
    };
    assert_eq!(scores(&queries, &codes, g * n), n, "whole buffers");
    assert_eq!(scores(&queries[1..], &codes, g * n), 0, "queries");
    assert_eq!(scores(&queries, &codes[1..], g * n), 0, "rows");
    assert_eq!(scores(&queries, &codes, g * n - 1), 0, "scores");
    let values = |r: &[u8], w: &[f32], out_len: usize| {
        let mut out = vec![0.0f32; out_len];
        neon::accumulate_rows_multi(b, &cb, &codes_job(r, row, n, w, d), &mut out, g)
    };
    assert!(values(&codes, &weights, g * d), "whole buffers");
    assert!(!values(&codes[1..], &weights, g * d), "rows");
    assert!(!values(&codes, &weights[1..], g * d), "weights");
    assert!(!values(&codes, &weights, g * d - 1), "sums");
    let sign_sums = |s: &[u8], w: &[f32], acc_len: usize| {
        let mut acc = vec![0.0f32; acc_len];
        neon_accumulate_signs_multi(b, &signs_job(s, n, w, d), &mut acc, g)
    };
    assert!(sign_sums(&signs, &weights, g * d), "whole buffers");
    assert!(!sign_sums(&signs[1..], &weights, g * d), "signs");
    assert!(!sign_sums(&signs, &weights[1..], g * d), "weights");
    assert!(!sign_sums(&signs, &weights, g * d - 1), "sums");
}

/// The x86 multi-query kernels are safe functions: each checks that its
/// buffers hold the shape it is given (its callers validate them too) and
/// refuses, touching nothing, when one is a value or byte short. The same
/// call with whole buffers is taken, so the refusals are the checks'.
#[cfg(target_arch = "x86_64")]
#[test]
fn multi_query_kernels_refuse_buffers_too_short() {
    use crate::qjl::avx2_accumulate_signs_multi;
    use std::vec;
    let (d, bits, n, g) = (128usize, 4u8, 16usize, 2usize);
    let cb = Codebook::lloyd_max(d, bits).unwrap();
    let row = packed_len(d, bits);
    let codes = vec![0x5au8; n * row];
    let signs = vec![0xa5u8; n * d / 8];
    let queries = vec![0.25f32; g * d];
    let weights = vec![0.5f32; g * n];
    for backend in [Backend::Avx2, Backend::Avx512] {
        let Ok(b) = backend.check() else { continue };
        let scores = |q: &[f32], r: &[u8], out_len: usize| {
            let mut out = vec![0.0f32; out_len];
            match backend {
                Backend::Avx2 => {
                    avx2::dot_rows_multi_wide(b, &cb, score_rows(q, r, row, (d, g, n)), &mut out, n)
                }
                _ => avx512::multi::dot_rows(b, &cb, score_rows(q, r, row, (d, g, n)), &mut out, n),
            }
        };
        assert_eq!(
            scores(&queries, &codes, g * n),
            n,
            "{backend}: whole buffers"
        );
        assert_eq!(
            scores(&queries[1..], &codes, g * n),
            0,
            "{backend}: queries"
        );
        assert_eq!(scores(&queries, &codes[1..], g * n), 0, "{backend}: rows");
        assert_eq!(scores(&queries, &codes, g * n - 1), 0, "{backend}: scores");

        let values = |r: &[u8], w: &[f32], out_len: usize| {
            let a = codes_job(r, row, n, w, d);
            let mut out = vec![0.0f32; out_len];
            match backend {
                Backend::Avx2 => avx2::accumulate_rows_multi(b, &cb, &a, &mut out, g),
                _ => avx512::multi::accumulate_rows(b, &cb, &a, &mut out, g),
            }
        };
        assert!(values(&codes, &weights, g * d), "{backend}: whole buffers");
        assert!(!values(&codes[1..], &weights, g * d), "{backend}: rows");
        assert!(!values(&codes, &weights[1..], g * d), "{backend}: weights");
        assert!(!values(&codes, &weights, g * d - 1), "{backend}: sums");

        let sign_sums = |s: &[u8], w: &[f32], acc_len: usize| {
            let sets = signs_job(s, n, w, d);
            let mut acc = vec![0.0f32; acc_len];
            match backend {
                Backend::Avx2 => avx2_accumulate_signs_multi(b, &sets, &mut acc, g),
                _ => avx512::multi::accumulate_signs(b, &sets, &mut acc, g),
            }
        };
        assert!(
            sign_sums(&signs, &weights, g * d),
            "{backend}: whole buffers"
        );
        assert!(!sign_sums(&signs[1..], &weights, g * d), "{backend}: signs");
        assert!(
            !sign_sums(&signs, &weights[1..], g * d),
            "{backend}: weights"
        );
        assert!(!sign_sums(&signs, &weights, g * d - 1), "{backend}: sums");

        if backend == Backend::Avx512 {
            // The nibble tables' kernel, at 2 bits.
            let cb2 = Codebook::lloyd_max(d, 2).unwrap();
            let row2 = packed_len(d, 2);
            let nibble_scores = |q: &[f32], r: &[u8], out_len: usize| {
                let mut out = vec![0.0f32; out_len];
                avx512::key_rows::dot_rows_multi(
                    b,
                    &cb2,
                    score_rows(q, r, row2, (d, g, n)),
                    &mut out,
                    n,
                )
            };
            let codes2 = &codes[..n * row2];
            assert_eq!(nibble_scores(&queries, codes2, g * n), n, "whole buffers");
            assert_eq!(nibble_scores(&queries[1..], codes2, g * n), 0, "queries");
            assert_eq!(nibble_scores(&queries, &codes2[1..], g * n), 0, "rows");
            assert_eq!(nibble_scores(&queries, codes2, g * n - 1), 0, "scores");

            let fused = |c: &[u8], s: &[u8], sw: &[f32], out_len: usize| {
                let rows = WeightedRows {
                    codes: c,
                    code_stride: row,
                    signs: s,
                    sign_stride: d / 8,
                    n,
                    weights: &weights,
                    sign_weights: sw,
                    w_stride: n,
                };
                let mut out = vec![0.0f32; out_len];
                avx512::multi::accumulate_fused(b, &cb, &rows, &mut out, 2 * d, d, g)
            };
            assert!(fused(&codes, &signs, &weights, g * 2 * d), "whole buffers");
            assert!(!fused(&codes[1..], &signs, &weights, g * 2 * d), "codes");
            assert!(!fused(&codes, &signs[1..], &weights, g * 2 * d), "signs");
            assert!(
                !fused(&codes, &signs, &weights[1..], g * 2 * d),
                "sign weights"
            );
            assert!(!fused(&codes, &signs, &weights, g * 2 * d - 1), "sums");
        }
    }
}

/// The AVX-512 6-bit value rows of one to four weight sets give the same
/// bits from the centroids' byte planes as from their registers
/// ([`avx512::multi::accumulate_rows_with`] both ways: a host takes only one
/// of them otherwise), and each weight set's sums are one FMA per code and
/// row in row order onto `out`: whole and partial chunks of 64
/// coordinates, no rows, one and many, odd strides, weights with ±0 and a
/// huge and a tiny one.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[test]
fn avx512_six_bit_values_have_the_same_bits_from_byte_planes() {
    use crate::rng::SplitMix64;
    use std::vec::Vec;
    let Ok(b) = Backend::Avx512.check() else {
        return;
    };
    let mut g = SplitMix64::new(29);
    let mut next = move || (g.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
    let bits_of = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for d in [16usize, 48, 64, 96, 128, 200, 256] {
        let cb = Codebook::lloyd_max(d, 6).unwrap();
        let stride = packed_len(d, 6) + 3;
        for n in [0usize, 1, 7, 33] {
            let codes: Vec<u8> = (0..n * stride)
                .map(|_| (next().to_bits() >> 7) as u8)
                .collect();
            for sets in 1..=4usize {
                let mut w: Vec<f32> = (0..sets * n).map(|_| next()).collect();
                for (i, special) in [0.0f32, -0.0, 3.0e30, 1.0e-30].into_iter().enumerate() {
                    if let Some(x) = w.get_mut(3 * i + 1) {
                        *x = special;
                    }
                }
                let out0: Vec<f32> = (0..sets * d).map(|_| next()).collect();
                let mut want = out0.clone();
                let mut row = std::vec![0.0f32; d];
                for r in 0..n {
                    dequantize_on(Backend::Scalar, &cb, &codes[r * stride..], &mut row).unwrap();
                    for h in 0..sets {
                        for (o, &c) in want[h * d..][..d].iter_mut().zip(&row) {
                            *o = c.mul_add(w[h * n + r], *o);
                        }
                    }
                }
                let job = WeightedCodes {
                    rows: &codes,
                    stride,
                    n,
                    weights: &w,
                    w_stride: n,
                    out_stride: d,
                    d,
                };
                for planes in [false, true] {
                    let mut got = out0.clone();
                    let taken =
                        avx512::multi::accumulate_rows_with(b, &cb, &job, &mut got, sets, planes);
                    let here = format!("d={d} n={n} sets={sets} planes={planes}");
                    assert!(taken, "{here}: declined");
                    assert_eq!(bits_of(&got), bits_of(&want), "{here}");
                }
            }
        }
    }
}

/// The AVX-512 value rows give the same bits whichever kernel the core's
/// pipe width picks ([`avx512::accumulate_rows_for`] with `half_pipes`
/// false and true: only one of them runs on a given host otherwise), and
/// the scalar kernel's sums within rounding: widths 1–4, rows each kernel
/// takes and rows it declines (the zmm rows take d ≤ 256, the groups
/// multiples of 8 at 1–3 bits; d = 300 neither), odd strides, onto
/// non-zero sums, weights with ±0 and a huge and a tiny one.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[test]
fn avx512_value_rows_have_the_same_bits_at_either_pipe_width() {
    use crate::rng::SplitMix64;
    use std::vec::Vec;
    if !Backend::Avx512.is_available() {
        return;
    }
    let mut g = SplitMix64::new(23);
    let mut next = move || (g.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
    let bits_of = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut cases = 0;
    for d in [8usize, 16, 40, 64, 96, 100, 128, 192, 256, 264, 300, 320] {
        for bits in 1..=4u8 {
            let cb = Codebook::lloyd_max(d, bits).unwrap();
            for tokens in [0usize, 1, 7, 33] {
                let stride = packed_len(d, bits) + 3;
                let codes: Vec<u8> = (0..tokens * stride)
                    .map(|_| (next().to_bits() >> 7) as u8)
                    .collect();
                let mut w: Vec<f32> = (0..tokens).map(|_| next()).collect();
                for (i, special) in [0.0f32, -0.0, 3.0e30, 1.0e-30].into_iter().enumerate() {
                    if let Some(x) = w.get_mut(3 * i + 1) {
                        *x = special;
                    }
                }
                let out0: Vec<f32> = (0..d).map(|_| next()).collect();
                let mut want = out0.clone();
                accumulate_rows_on(Backend::Scalar, &cb, &codes, stride, &w, &mut want).unwrap();
                let cmax = cb.centroids().iter().fold(0.0f32, |m, c| m.max(c.abs()));
                let wsum: f32 = w.iter().map(|x| x.abs()).sum();
                let mut first: Option<Vec<u32>> = None;
                for half_pipes in [false, true] {
                    let mut got = out0.clone();
                    // SAFETY: AVX-512 is available (checked above); every
                    // weight's row of packed_len(d, bits) bytes lies in
                    // `codes` (`tokens` rows of `stride` bytes).
                    let taken = unsafe {
                        avx512::accumulate_rows_for(&cb, &codes, stride, &w, &mut got, half_pipes)
                    };
                    if !taken {
                        // Declined by both kernels: the generic loops run.
                        assert!(
                            d > 256 && (bits == 4 || d % 8 != 0),
                            "d={d} b={bits} declined"
                        );
                        continue;
                    }
                    cases += 1;
                    let here = format!("d={d} b={bits} tokens={tokens} half_pipes={half_pipes}");
                    for ((x, w0), o) in got.iter().zip(&want).zip(&out0) {
                        let tol =
                            4.0 * f32::EPSILON * (tokens + 1) as f32 * (o.abs() + wsum * cmax);
                        assert!((x - w0).abs() <= tol, "{here}: {x} against scalar {w0}");
                    }
                    match &first {
                        None => first = Some(bits_of(&got)),
                        Some(f) => assert_eq!(&bits_of(&got), f, "{here}"),
                    }
                }
            }
        }
    }
    assert!(cases > 300, "only {cases} cases ran");
}

/// The nibble tables of 1- and 2-bit scores against the definition read
/// from the dequantised codes: every entry is `Σ_i q_{k·p+i}·c[code i]` of
/// the nibble's codes (checked through `dequantize`, which unpacks by
/// another path), and the scalar score is their sum in nibble order,
/// within f32 rounding of the f64 dot product. Lengths that leave the last
/// nibble part-filled included.
#[test]
fn nibble_tables_sum_the_products_of_their_codes() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    for bits in [1u8, 2] {
        let cb = Codebook::gaussian(bits).unwrap();
        let k = 4 / bits as usize;
        for d in [1usize, 2, 3, 5, 7, 64, 127, 128, 130] {
            let q: std::vec::Vec<f32> = (0..d).map(|_| next()).collect();
            let x: std::vec::Vec<f32> = (0..d).map(|_| next()).collect();
            let mut packed = std::vec![0u8; packed_len(d, bits)];
            quantize_packed_on(Backend::Scalar, &cb, &x, &mut packed).unwrap();
            let mut deq = std::vec![0.0f32; d];
            dequantize_on(Backend::Scalar, &cb, &packed, &mut deq).unwrap();
            let mut tables = std::vec::Vec::new();
            let n = nibbles::tables(&cb, &q, |p, t| {
                assert_eq!(p, tables.len());
                tables.push(t);
            });
            assert_eq!((n, tables.len()), ((d * bits as usize).div_ceil(4), n));
            for (p, table) in tables.iter().enumerate() {
                let nibble = ((packed[p / 2] >> (4 * (p % 2))) & 15) as usize;
                let got = table[nibble];
                let coords = k * p..(k * p + k).min(d);
                let want: f64 = coords.map(|j| q[j] as f64 * deq[j] as f64).sum();
                assert!((got as f64 - want).abs() <= 1e-6, "b{bits} d{d} nibble {p}");
            }
            let exact: f64 = q.iter().zip(&deq).map(|(a, b)| *a as f64 * *b as f64).sum();
            let scale: f64 = q
                .iter()
                .zip(&deq)
                .map(|(a, b)| (*a as f64 * *b as f64).abs())
                .sum();
            let got = dot_on(Backend::Scalar, &cb, &q, &packed).unwrap() as f64;
            assert!(
                (got - exact).abs() <= 1e-6 * scale,
                "b{bits} d{d}: {got} vs {exact}"
            );
        }
    }
}

/// A copy of some bytes that ends where an unreadable page begins (a
/// `PROT_NONE` page after them), so that a read past them faults.
#[cfg(all(unix, not(miri)))]
struct PageEnd {
    map: *mut libc::c_void,
    total: usize,
    start: usize,
    len: usize,
}

#[cfg(all(unix, not(miri)))]
impl PageEnd {
    fn new(bytes: &[u8]) -> PageEnd {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap();
        let total = bytes.len().div_ceil(page) * page + page;
        let start = total - page - bytes.len();
        // SAFETY: a fresh private anonymous mapping (no address asked for),
        // checked below; then its last page made unreadable and the bytes
        // copied just before it, inside the mapping.
        unsafe {
            let map = libc::mmap(
                core::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(map, libc::MAP_FAILED, "mmap");
            let guard = map.cast::<u8>().add(total - page);
            assert_eq!(libc::mprotect(guard.cast(), page, libc::PROT_NONE), 0);
            let at = map.cast::<u8>().add(start);
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), at, bytes.len());
            PageEnd {
                map,
                total,
                start,
                len: bytes.len(),
            }
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the `len` bytes at `start` lie in the mapping, readable
        // and initialised (copied in `new`), and live as long as `self`.
        unsafe { core::slice::from_raw_parts(self.map.cast::<u8>().add(self.start), self.len) }
    }
}

#[cfg(all(unix, not(miri)))]
impl Drop for PageEnd {
    fn drop(&mut self) {
        // SAFETY: the mapping `new` made, unmapped once.
        unsafe { libc::munmap(self.map, self.total) };
    }
}
