//! Arbitrary lengths, data (NaN, ±∞, subnormals, ±0), bits and alignments
//! through every kernel on every available backend, against the scalar
//! backend: bit for bit where the crate promises it (WHT, quantise, pack,
//! dequantise, Hamming, bit-plane sums), within the documented reassociation
//! bound otherwise (dot products and accumulations).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tqkv::qjl::{self, BitPlaneQuery, Rounding};
use tqkv::{Backend, codebook, pack, wht};
use tqkv_fuzz::{Input, backends, check_sum, codebooks, same_float};

/// `n` floats, hostile or small as a flag byte says.
fn floats(inp: &mut Input, n: usize) -> Vec<f32> {
    let hostile = inp.u8() & 1 == 1;
    (0..n)
        .map(|_| if hostile { inp.f32() } else { inp.small_f32() })
        .collect()
}

/// `v` copied behind `off` elements of padding: a misaligned slice start.
fn shifted<T: Copy + Default>(v: &[T], off: usize) -> Vec<T> {
    let mut out = vec![T::default(); off];
    out.extend_from_slice(v);
    out
}

fn wht_case(inp: &mut Input) {
    let rows = if inp.u8() & 1 == 1 {
        1 + inp.u8() as usize % 5
    } else {
        0
    };
    let len = match inp.u8() {
        255 => inp.u16() as usize % 5000, // mostly not a power of two
        k => 1 << (k % 13),
    };
    let total = len * rows.max(1);
    if total > 1 << 14 {
        return;
    }
    let off = inp.u8() as usize % 8;
    let data = floats(inp, total);
    let run = |b: Backend| {
        let mut buf = shifted(&data, off);
        let r = if rows == 0 {
            wht::fwht_on(b, &mut buf[off..])
        } else {
            wht::fwht_rows_on(b, &mut buf[off..], len)
        };
        (r, buf)
    };
    let (want_r, want) = run(Backend::Scalar);
    for b in backends() {
        let (r, got) = run(b);
        assert_eq!(r, want_r, "{b}");
        if want_r.is_err() {
            let same = got[off..]
                .iter()
                .zip(&data)
                .all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "{b}: input changed on error");
        }
        for (i, (x, y)) in want.iter().zip(&got).enumerate() {
            assert!(
                same_float(*x, *y),
                "{b} len {len} rows {rows} [{i}]: {x} vs {y}"
            );
        }
    }
}

fn codebook_case(inp: &mut Input) {
    let cbs = codebooks();
    let cb = &cbs[inp.u8() as usize % cbs.len()];
    let bits = cb.bits();
    let c = cb.centroids();
    let op = inp.u8() % 4;
    let n = inp.u16() as usize % 520;
    let off = inp.u8() as usize % 8;
    let row = pack::packed_len(n, bits);
    match op {
        0 => {
            // quantise: identical indices, or the same refusal of
            // non-finite input on every backend.
            let x = floats(inp, n);
            let mut want = vec![0u8; n];
            let status = codebook::quantize_on(Backend::Scalar, cb, &x, &mut want);
            assert_eq!(status.is_err(), x.iter().any(|v| !v.is_finite()));
            for b in backends() {
                let mut got = shifted(&vec![0u8; n], off);
                assert_eq!(
                    codebook::quantize_on(b, cb, &x, &mut got[off..]),
                    status,
                    "{b}"
                );
                if status.is_ok() {
                    assert_eq!(&got[off..], &want[..], "{b}");
                }
            }
        }
        1 => {
            // dot and dot_rows straight from packed codes.
            let rows = 1 + inp.u8() as usize % 40;
            let stride = row + inp.u8() as usize % 3;
            let q = floats(inp, n);
            let packed = inp.bytes(stride * rows);
            if packed.len() < stride * rows {
                return;
            }
            let mut idx = vec![0u8; n];
            let mut want = vec![0.0f32; rows];
            let status = codebook::dot_rows_on(Backend::Scalar, cb, &q, &packed, stride, &mut want);
            if status.is_err() {
                // Non-finite queries are refused alike everywhere.
                assert!(q.iter().any(|v| !v.is_finite()));
                for b in backends() {
                    let p = shifted(&packed, off);
                    let mut got = vec![0.0f32; rows];
                    assert_eq!(
                        codebook::dot_rows_on(b, cb, &q, &p[off..], stride, &mut got),
                        status
                    );
                    assert_eq!(codebook::dot_on(b, cb, &q, &p[off..]).err(), status.err());
                }
                return;
            }
            for b in backends() {
                let p = shifted(&packed, off);
                let mut got = vec![0.0f32; rows];
                codebook::dot_rows_on(b, cb, &q, &p[off..], stride, &mut got).unwrap();
                for r in 0..rows {
                    let codes = &packed[r * stride..r * stride + row];
                    pack::unpack(bits, codes, &mut idx).unwrap();
                    let terms = || {
                        q.iter()
                            .zip(&idx)
                            .map(|(&x, &i)| x as f64 * c[i as usize] as f64)
                    };
                    assert!(
                        check_sum(want[r], got[r], terms()),
                        "{b} dot_rows[{r}]: {} vs {}",
                        want[r],
                        got[r]
                    );
                    let one = codebook::dot_on(b, cb, &q, &p[off + r * stride..]).unwrap();
                    assert!(
                        check_sum(want[r], one, terms()),
                        "{b} dot[{r}]: {} vs {one}",
                        want[r]
                    );
                }
            }
        }
        2 => {
            // accumulate_rows: Σ_r w_r·c[idx] into an initialised out.
            let rows = inp.u8() as usize % 40;
            let stride = row + inp.u8() as usize % 3;
            let w = floats(inp, rows);
            let init = floats(inp, n);
            let packed = inp.bytes(stride * rows);
            if packed.len() < stride * rows {
                return;
            }
            let mut want = init.clone();
            codebook::accumulate_rows_on(Backend::Scalar, cb, &packed, stride, &w, &mut want)
                .unwrap();
            let mut idx = vec![vec![0u8; n]; rows];
            for (r, ix) in idx.iter_mut().enumerate() {
                pack::unpack(bits, &packed[r * stride..], ix).unwrap();
            }
            for b in backends() {
                let p = shifted(&packed, off);
                let mut got = init.clone();
                codebook::accumulate_rows_on(b, cb, &p[off..], stride, &w, &mut got).unwrap();
                for j in 0..n {
                    let terms = std::iter::once(init[j] as f64)
                        .chain((0..rows).map(|r| w[r] as f64 * c[idx[r][j] as usize] as f64));
                    assert!(
                        check_sum(want[j], got[j], terms),
                        "{b} acc[{j}]: {} vs {}",
                        want[j],
                        got[j]
                    );
                }
            }
        }
        _ => {
            // dequantise: exact centroids.
            let packed = inp.bytes(row);
            if packed.len() < row {
                return;
            }
            let mut want = vec![0.0f32; n];
            codebook::dequantize_on(Backend::Scalar, cb, &packed, &mut want).unwrap();
            for b in backends() {
                let p = shifted(&packed, off);
                let mut got = vec![0.0f32; n];
                codebook::dequantize_on(b, cb, &p[off..], &mut got).unwrap();
                assert_eq!(
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{b}"
                );
            }
        }
    }
}

fn sign(bytes: &[u8], j: usize) -> bool {
    (bytes[j / 8] >> (j % 8)) & 1 == 1
}

fn qjl_case(inp: &mut Input) {
    let op = inp.u8() % 4;
    let off = inp.u8() as usize % 8;
    match op {
        0 => {
            // signed sums of one sketch and Hamming distance.
            let m = inp.u16() as usize % 2100;
            let sq = floats(inp, m);
            let a = inp.bytes(m.div_ceil(8));
            let b2 = inp.bytes(m.div_ceil(8));
            if b2.len() < m.div_ceil(8) {
                return;
            }
            let want = qjl::signed_sum_on(Backend::Scalar, &sq, &a).unwrap();
            let ham = qjl::hamming_on(Backend::Scalar, &a, &b2).unwrap();
            let naive: u32 = a.iter().zip(&b2).map(|(x, y)| (x ^ y).count_ones()).sum();
            assert_eq!(ham, naive);
            let terms = || {
                sq.iter()
                    .enumerate()
                    .map(|(j, &v)| if sign(&a, j) { v as f64 } else { -(v as f64) })
            };
            for b in backends() {
                let pa = shifted(&a, off);
                let got = qjl::signed_sum_on(b, &sq, &pa[off..]).unwrap();
                assert!(check_sum(want, got, terms()), "{b}: {want} vs {got}");
                assert_eq!(qjl::hamming_on(b, &pa[off..], &b2).unwrap(), ham, "{b}");
            }
        }
        1 => {
            // many sketches: signed_sum_rows and accumulate_signs_rows.
            let m = 8 * (1 + inp.u8() as usize % 64);
            let rows = inp.u8() as usize % 40;
            let stride = m / 8 + inp.u8() as usize % 3;
            let sq = floats(inp, m);
            let w = floats(inp, rows);
            let init = floats(inp, m);
            let packed = inp.bytes(stride * rows);
            if packed.len() < stride * rows {
                return;
            }
            let mut want = vec![0.0f32; rows];
            qjl::signed_sum_rows_on(Backend::Scalar, &sq, &packed, stride, &mut want).unwrap();
            let mut want_acc = init.clone();
            qjl::accumulate_signs_rows_on(Backend::Scalar, &packed, stride, &w, &mut want_acc)
                .unwrap();
            for b in backends() {
                let p = shifted(&packed, off);
                let mut got = vec![0.0f32; rows];
                qjl::signed_sum_rows_on(b, &sq, &p[off..], stride, &mut got).unwrap();
                for r in 0..rows {
                    let s = &packed[r * stride..];
                    let terms = sq
                        .iter()
                        .enumerate()
                        .map(|(j, &v)| if sign(s, j) { v as f64 } else { -(v as f64) });
                    assert!(check_sum(want[r], got[r], terms), "{b} rows[{r}]");
                }
                let mut acc = init.clone();
                qjl::accumulate_signs_rows_on(b, &p[off..], stride, &w, &mut acc).unwrap();
                for j in 0..m {
                    let terms = std::iter::once(init[j] as f64).chain((0..rows).map(|r| {
                        if sign(&packed[r * stride..], j) {
                            w[r] as f64
                        } else {
                            -(w[r] as f64)
                        }
                    }));
                    assert!(check_sum(want_acc[j], acc[j], terms), "{b} acc[{j}]");
                }
            }
        }
        _ => {
            // bit-plane queries: identical on every backend.
            let m = 64 * (1 + inp.u8() as usize % 8);
            let bits = inp.u8() % 10;
            let rounding = if inp.u8() & 1 == 1 {
                Rounding::Randomized { seed: inp.u64() }
            } else {
                Rounding::Nearest
            };
            let rows = inp.u8() as usize % 24;
            let stride = m / 8 + inp.u8() as usize % 3;
            let sq = floats(inp, m);
            let packed = inp.bytes(stride * rows.max(1));
            if packed.len() < stride * rows.max(1) {
                return;
            }
            let mut buf = vec![0u64; BitPlaneQuery::words_needed(m, bits.clamp(1, 8))];
            let Ok(query) = BitPlaneQuery::new(&sq, bits, rounding, &mut buf) else {
                return;
            };
            let one = query.signed_sum_on(Backend::Scalar, &packed).unwrap();
            let mut want = vec![0.0f32; rows];
            query
                .signed_sum_rows_on(Backend::Scalar, &packed, stride, &mut want)
                .unwrap();
            for b in backends() {
                let p = shifted(&packed, off);
                assert!(
                    same_float(query.signed_sum_on(b, &p[off..]).unwrap(), one),
                    "{b}"
                );
                let mut got = vec![0.0f32; rows];
                query
                    .signed_sum_rows_on(b, &p[off..], stride, &mut got)
                    .unwrap();
                for (x, y) in want.iter().zip(&got) {
                    assert!(same_float(*x, *y), "{b}: {x} vs {y}");
                }
            }
        }
    }
}

fn f32dot_case(inp: &mut Input) {
    let n = inp.u16() as usize % 1100;
    let a = floats(inp, n);
    let b2 = floats(inp, n);
    let want = codebook::dot_f32_on(Backend::Scalar, &a, &b2).unwrap();
    let terms = || a.iter().zip(&b2).map(|(&x, &y)| x as f64 * y as f64);
    for b in backends() {
        let got = codebook::dot_f32_on(b, &a, &b2).unwrap();
        assert!(check_sum(want, got, terms()), "{b}: {want} vs {got}");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    match inp.u8() % 4 {
        0 => wht_case(&mut inp),
        1 => codebook_case(&mut inp),
        2 => qjl_case(&mut inp),
        _ => f32dot_case(&mut inp),
    }
});
