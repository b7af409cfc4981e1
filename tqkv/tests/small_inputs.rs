//! Every public entry point on small inputs, fast enough to run under Miri
//! (`.ci/run` runs this file with `cargo +nightly miri test`, once plain and
//! once with the AVX2 target features enabled so that Miri also checks the
//! AVX2 kernels' unsafe code): the packing internals, `from_bytes` on valid,
//! truncated and corrupted bytes, and each kernel family on every available
//! backend, with results checked against plain formulas.

use tqkv::attention;
use tqkv::qjl::{self, BitPlaneQuery, Projection, QjlSketcher, Rounding};
use tqkv::quant::{CacheConfig, HEADER_BYTES, KvCache, Quantizer, Scheme};
use tqkv::{Backend, Codebook, Error, Rotation, codebook, pack, wht};

/// `rows` packed rows of `d` codes of `cb`, back to back, the buffer ending
/// at the last: code `i` of row `r` is `(i·step + 3r) mod` the codebook's
/// size.
fn pattern_rows(cb: &Codebook, d: usize, rows: usize, step: usize) -> Vec<u8> {
    let (bits, len) = (cb.bits(), cb.centroids().len());
    let row = pack::packed_len(d, bits);
    let mut packed = vec![0u8; rows * row];
    for (r, dst) in packed.chunks_exact_mut(row).enumerate() {
        let idx: Vec<u8> = (0..d).map(|i| ((i * step + r * 3) % len) as u8).collect();
        pack::pack(bits, &idx, dst).unwrap();
    }
    packed
}

#[test]
fn pack_unpack_every_width_and_tail() {
    for bits in 1..=8u8 {
        for n in [0usize, 1, 7, 8, 9, 31, 33] {
            let idx: Vec<u8> = (0..n).map(|i| ((i * 5 + 3) % (1 << bits)) as u8).collect();
            let len = pack::packed_len(n, bits);
            assert_eq!(len, (n * bits as usize).div_ceil(8));
            // One spare byte that must stay untouched.
            let mut buf = vec![0xA5u8; len + 1];
            assert_eq!(pack::pack(bits, &idx, &mut buf).unwrap(), len);
            assert_eq!(buf[len], 0xA5);
            let mut back = vec![0u8; n];
            pack::unpack(bits, &buf[..len], &mut back).unwrap();
            assert_eq!(back, idx, "bits {bits} n {n}");
            // The bit stream is LSB-first: index i at bits i·b … i·b + b.
            for (i, &v) in idx.iter().enumerate() {
                let mut got = 0u16;
                for k in 0..bits as usize {
                    let at = i * bits as usize + k;
                    got |= (((buf[at / 8] >> (at % 8)) & 1) as u16) << k;
                }
                assert_eq!(got, v as u16);
            }
            if len > 0 {
                assert!(pack::unpack(bits, &buf[..len - 1], &mut back).is_err());
            }
        }
    }
    assert!(pack::pack(3, &[8], &mut [0u8; 1]).is_err());
}

#[test]
fn codebook_kernels_on_every_backend() {
    let cb = Codebook::lloyd_max(64, 3).unwrap();
    let c = cb.centroids();
    for b in Backend::available() {
        codebook_kernels_on(b, &cb, c);
    }
}

fn codebook_kernels_on(b: Backend, cb: &Codebook, c: &[f32]) {
    let x: Vec<f32> = (0..19).map(|i| (i as f32 - 9.0) / 40.0).collect();
    let mut idx = vec![0u8; 19];
    codebook::quantize_on(b, cb, &x, &mut idx).unwrap();
    for (&v, &i) in x.iter().zip(&idx) {
        let best = (0..c.len())
            .min_by(|&p, &q| (v - c[p]).abs().total_cmp(&(v - c[q]).abs()))
            .unwrap();
        assert!((v - c[i as usize]).abs() <= (v - c[best]).abs());
    }
    let row = pack::packed_len(19, 3);
    let mut packed = vec![0u8; 3 * row];
    codebook::quantize_packed_on(b, cb, &x, &mut packed[..row]).unwrap();
    let mut deq = vec![0.0f32; 19];
    codebook::dequantize_on(b, cb, &packed[..row], &mut deq).unwrap();
    for (&d, &i) in deq.iter().zip(&idx) {
        assert_eq!(d, c[i as usize]);
    }
    let q: Vec<f32> = (0..19).map(|i| 1.0 + i as f32 / 8.0).collect();
    let want: f32 = q.iter().zip(&deq).map(|(a, b)| a * b).sum();
    let got = codebook::dot_on(b, cb, &q, &packed[..row]).unwrap();
    assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0));
    // Three rows: the first repeated, an all-zero row, and again.
    let first = packed[..row].to_vec();
    packed[2 * row..].copy_from_slice(&first);
    let mut scores = [0.0f32; 3];
    codebook::dot_rows_on(b, cb, &q, &packed, row, &mut scores).unwrap();
    assert_eq!(scores[0], got);
    assert_eq!(scores[2], got);
    let mut acc = vec![0.0f32; 19];
    codebook::accumulate_rows_on(b, cb, &packed, row, &[1.0, 0.0, 2.0], &mut acc).unwrap();
    for (a, &d) in acc.iter().zip(&deq) {
        assert!((a - 3.0 * d).abs() < 1e-6);
    }
    assert_eq!(
        codebook::dot_f32_on(b, &[1.0, 2.0], &[3.0, 4.0]).unwrap(),
        11.0
    );
    assert!(codebook::dot_on(b, cb, &q, &packed[..row - 1]).is_err());
}

#[test]
fn wht_rotation_and_qjl_on_every_backend() {
    for b in Backend::available() {
        wht_rotation_and_qjl_on(b);
    }
}

fn wht_rotation_and_qjl_on(b: Backend) {
    let mut x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    wht::fwht_on(b, &mut x).unwrap();
    assert_eq!(x, [36.0, -4.0, -8.0, 0.0, -16.0, 0.0, 0.0, 0.0]);
    let mut rows = [1.0f32, 1.0, 1.0, -1.0];
    wht::fwht_rows_on(b, &mut rows, 2).unwrap();
    assert_eq!(rows, [2.0, 0.0, 0.0, 2.0]);
    assert_eq!(
        wht::fwht_on(b, &mut [0.0; 3]),
        Err(Error::NotPowerOfTwo { len: 3 })
    );

    let rot = Rotation::new(16, 3).unwrap();
    let v: Vec<f32> = (0..16).map(|i| i as f32 - 7.5).collect();
    let mut y = v.clone();
    rot.rotate_on(b, &mut y).unwrap();
    rot.unrotate(&mut y).unwrap();
    assert!(y.iter().zip(&v).all(|(a, b)| (a - b).abs() < 1e-5));

    for projection in [Projection::Hadamard, Projection::Gaussian] {
        let sk = QjlSketcher::new(16, 16, projection, 4).unwrap();
        let r: Vec<f32> = (0..16).map(|i| ((i * 7) % 5) as f32 - 2.0).collect();
        let mut signs = [0u8; 2];
        let gamma = sk.sketch_on(b, &r, &mut signs).unwrap();
        assert!((gamma - r.iter().map(|v| v * v).sum::<f32>().sqrt()).abs() < 1e-5);
        let mut sq = [0.0f32; 16];
        sk.project_on(b, &r, &mut sq).unwrap();
        // The sign bits are the signs of S·r.
        for (j, &p) in sq.iter().enumerate() {
            assert_eq!((signs[j / 8] >> (j % 8)) & 1 == 1, p > 0.0);
        }
        let est = sk.estimate(&sq, &signs, gamma).unwrap();
        assert!(est.is_finite() && est > 0.0, "⟨r, r⟩ estimate {est}");
        let mut back = [0.0f32; 16];
        sk.reconstruct(&signs, gamma, &mut back).unwrap();
        assert!(back.iter().all(|v| v.is_finite()));
    }
    let sq: Vec<f32> = (0..64).map(|j| (j % 9) as f32 - 4.0).collect();
    let signs: Vec<u8> = (0..8).map(|i| (i * 37) as u8).collect();
    let exact = qjl::signed_sum_on(b, &sq, &signs).unwrap();
    let mut words = vec![0u64; BitPlaneQuery::words_needed(64, 8)];
    let query = BitPlaneQuery::new(&sq, 8, Rounding::Nearest, &mut words).unwrap();
    let planes = query.signed_sum_on(b, &signs).unwrap();
    // Nearest rounding: at most half a step per value.
    let bound = 64.0 * query.step() / 2.0;
    assert!(
        (planes - exact).abs() <= bound * 1.0001,
        "{planes} vs {exact}"
    );
    assert_eq!(
        qjl::hamming_on(b, &signs, &[0u8; 8]).unwrap(),
        signs.iter().map(|b| b.count_ones()).sum::<u32>()
    );
}

#[test]
fn rotations_of_other_dims_on_every_backend() {
    // Rows shorter than a register (the partial in-register stages), the
    // Williamson products on rows of 2, 4, 8 and 16 (portable and vector paths) and
    // the block-diagonal construction: every backend equals the scalar one
    // bit for bit.
    let mut rows: Vec<f32> = (0..32).map(|i| (i * 7 % 11) as f32 - 5.0).collect();
    for len in [2usize, 4, 8] {
        let mut want = rows.clone();
        wht::fwht_rows_on(Backend::Scalar, &mut want, len).unwrap();
        for b in Backend::available() {
            let mut got = rows.clone();
            wht::fwht_rows_on(b, &mut got, len).unwrap();
            assert_eq!(got, want, "{b:?} rows of {len}");
        }
        rows = want;
    }
    for d in [24usize, 48, 96, 192, 104] {
        let rot = Rotation::new(d, 5).unwrap();
        let x: Vec<f32> = (0..d).map(|i| ((i * 13) % 17) as f32 - 8.0).collect();
        let mut want = x.clone();
        rot.rotate_on(Backend::Scalar, &mut want).unwrap();
        for b in Backend::available() {
            let mut y = x.clone();
            rot.rotate_on(b, &mut y).unwrap();
            assert_eq!(
                y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{b:?} d {d}"
            );
            rot.unrotate_on(b, &mut y).unwrap();
            assert!(y.iter().zip(&x).all(|(a, b)| (a - b).abs() < 1e-4), "d {d}");
        }
    }
}

#[test]
fn quantisers_cache_and_attention() {
    for &scheme in Scheme::ALL {
        let cfg = CacheConfig::new(scheme, 3, 2, 16, 3).with_seed(5);
        let mut buf = vec![0u8; cfg.bytes_needed().unwrap()];
        {
            let mut cache = KvCache::new(cfg, &mut buf[..]).unwrap();
            for t in 0..2 {
                let k: Vec<f32> = (0..32).map(|i| ((i + t) % 7) as f32 - 3.0).collect();
                let v: Vec<f32> = (0..32).map(|i| ((i * 3 + t) % 5) as f32).collect();
                cache.push_on(Backend::detect(), &k, &v).unwrap();
            }
        }
        let cache = KvCache::from_bytes(&buf[..]).unwrap();
        assert_eq!(cache.len(), 2);
        let q = [0.25f32; 16];
        let mut out = [0.0f32; 16];
        let mut scratch = vec![0.0f32; attention::scratch_len(&cache, 1)];
        let mut first = None;
        for b in Backend::available() {
            attention::attend_on(b, &cache, 1, &q, &mut out, &mut scratch).unwrap();
            assert!(out.iter().all(|v| v.is_finite()));
            let f = *first.get_or_insert(out);
            assert!(f.iter().zip(&out).all(|(a, c)| (a - c).abs() < 1e-4), "{b}");
        }
        // Truncated and corrupted bytes are errors, never reads out of bounds.
        for cut in [0, 10, HEADER_BYTES - 1, HEADER_BYTES, buf.len() - 1] {
            assert!(
                KvCache::from_bytes(&buf[..cut]).is_err(),
                "{scheme:?} cut {cut}"
            );
        }
        let mut bad = buf.clone();
        bad[HEADER_BYTES + 1] = 0x7E; // first key norm: f16 NaN
        assert!(KvCache::from_bytes(&bad[..]).is_err());
        // The quantisers straight: decode(encode(x)) is close to x.
        let x: Vec<f32> = (0..16).map(|i| (i as f32 * 0.7).sin()).collect();
        for q in [cache.key_quantizer(), cache.value_quantizer()] {
            let mut code = vec![0u8; q.encoded_len()];
            q.encode_on(Backend::detect(), &x, &mut code).unwrap();
            let mut y = vec![0.0f32; 16];
            q.decode(&code, &mut y).unwrap();
            let err: f32 = x.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum();
            let norm: f32 = x.iter().map(|a| a * a).sum();
            let relative_l2 = (err / norm).sqrt();
            assert!(relative_l2 < 0.9, "{scheme:?} {relative_l2}");
            assert!(matches!(
                q,
                Quantizer::Mse(_) | Quantizer::Prod(_) | Quantizer::Baseline(_)
            ));
        }
    }
}

#[test]
fn shared_types_are_send_and_sync() {
    fn both<T: Send + Sync>() {}
    both::<Backend>();
    both::<Codebook>();
    both::<Rotation>();
    both::<QjlSketcher>();
    both::<Quantizer>();
    both::<tqkv::quant::MseQuantizer>();
    both::<tqkv::quant::ProdQuantizer>();
    both::<tqkv::quant::BaselineQuantizer>();
    both::<CacheConfig>();
    both::<KvCache<Vec<u8>>>();
    both::<KvCache<&[u8]>>();
    both::<KvCache<&mut [u8]>>();
    both::<Error>();
    // A cache is read from several threads at once (attention per head).
    let cfg = CacheConfig::new(Scheme::Kqv, 4, 2, 16, 2).with_seed(1);
    let mut buf = vec![0u8; cfg.bytes_needed().unwrap()];
    KvCache::new(cfg, &mut buf[..])
        .unwrap()
        .push(&[0.5; 32], &[1.0; 32])
        .unwrap();
    let cache = KvCache::from_bytes(&buf[..]).unwrap();
    // One token: attention returns its decoded value.
    let vq = cache.value_quantizer();
    let mut want = [[0.0f32; 16]; 2];
    let mut code = vec![0u8; vq.encoded_len()];
    for (head, w) in want.iter_mut().enumerate() {
        cache.value(head, 0, &mut code).unwrap();
        vq.decode(&code, w).unwrap();
    }
    std::thread::scope(|s| {
        for head in 0..2 {
            let cache = &cache;
            let want = want[head];
            s.spawn(move || {
                let mut out = [0.0f32; 16];
                let mut scratch = vec![0.0f32; attention::scratch_len(cache, 1)];
                attention::attend(cache, head, &[0.1; 16], &mut out, &mut scratch).unwrap();
                for (o, w) in out.iter().zip(&want) {
                    assert!((o - w).abs() <= 1e-4 * w.abs().max(1.0), "{o} vs {w}");
                }
            });
        }
    });
}

/// One row and a stride near `usize::MAX / 16`: nothing computed from the
/// caller's sizes may overflow (the row kernels prefetch rows ahead by
/// `stride`; a debug build, as under Miri, checks every multiplication).
#[test]
fn dot_rows_with_a_huge_stride_and_one_row() {
    let cb = Codebook::lloyd_max(16, 4).unwrap();
    let q = [0.25f32; 16];
    let row = [0x5Au8; 8];
    for backend in Backend::available() {
        for stride in [1usize << 60, usize::MAX / 3, usize::MAX] {
            let mut out = [0.0f32; 1];
            tqkv::codebook::dot_rows_on(backend, &cb, &q, &row, stride, &mut out).unwrap();
            let one = tqkv::codebook::dot_on(Backend::Scalar, &cb, &q, &row).unwrap();
            assert!((out[0] - one).abs() <= 1e-6, "{backend} {stride}");
        }
    }
}

/// The row-block key kernels (16 rows, blocks of 4 on NEON, 8 on AVX2 and
/// 16 on AVX-512) on rows whose last chunk is partial: whole dwords (a
/// masked load on x86) and not (a copy), in a buffer that ends at the last
/// row's last byte, so that Miri sees any read past it. The row blocks
/// (NEON and AVX2 at 1 to 4 bits, AVX-512 at 1, 2 and 4) sum each row in
/// the scalar order, so they equal scalar bit for bit; AVX-512 at 3 bits
/// adds in its own order, within rounding, and so does AVX2 at 4 bits
/// where it scores from the byte planes instead (`d` a multiple of 8).
#[test]
fn row_blocks_with_partial_chunks() {
    let shapes = [
        (24usize, 4u8),
        (20, 4),
        (48, 2),
        (40, 1),
        (72, 4),
        (44, 4),
        // 3 bits: a rest of 9 bytes (copied), of 3 and 6 whole dwords
        // (masked loads), and 30 bytes.
        (24, 3),
        (32, 3),
        (128, 3),
        (80, 3),
    ];
    for (d, bits) in shapes {
        let cb = Codebook::lloyd_max(d, bits).unwrap();
        let c = cb.centroids();
        let row = pack::packed_len(d, bits);
        let rows = 16;
        let packed = pattern_rows(&cb, d, rows, 7);
        let q: Vec<f32> = (0..d).map(|i| (i as f32 - 7.5) / 16.0).collect();
        let mut want = vec![0.0f32; rows];
        codebook::dot_rows_on(Backend::Scalar, &cb, &q, &packed, row, &mut want).unwrap();
        for b in Backend::available() {
            let mut got = vec![0.0f32; rows];
            codebook::dot_rows_on(b, &cb, &q, &packed, row, &mut got).unwrap();
            // The row blocks: NEON and AVX2 at 1–4 bits, AVX-512 at 1, 2
            // and 4.
            let planes = b == Backend::Avx2 && bits == 4 && d % 8 == 0;
            let blocks = matches!(b, Backend::Avx2 | Backend::Neon) && !planes;
            if blocks || (b == Backend::Avx512 && bits != 3) {
                let bits_of = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits_of(&got), bits_of(&want), "{b}, d = {d}, {bits} bits");
            } else {
                let scale: f32 = q.iter().map(|v| v.abs()).sum::<f32>() * c[c.len() - 1].abs();
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() <= 1e-5 * scale, "{b}, d = {d}: {g} vs {w}");
                }
            }
        }
    }
}

/// Value rows of 1–4 bits whose coordinates are whole groups of 8, in a
/// buffer that ends at the last row's last byte: AVX2 and NEON read each
/// group's codes as one dword, and must copy the last group of the last
/// row instead (AVX2 at 4 bits reads 32 codes at a time from their 16
/// bytes, then the rest by groups). Against the scalar kernel, on every
/// backend.
#[test]
fn value_rows_in_groups_of_eight_end_at_the_buffer() {
    for (d, bits) in [
        (8usize, 1u8),
        (8, 3),
        (16, 2),
        (24, 3),
        (16, 4),
        (72, 3),
        (32, 4),
        (40, 4),
    ] {
        let cb = Codebook::lloyd_max(d, bits).unwrap();
        let row = pack::packed_len(d, bits);
        let rows = 3;
        let packed = pattern_rows(&cb, d, rows, 5);
        let weights = [0.5f32, -1.25, 2.0];
        let mut want = vec![0.25f32; d];
        codebook::accumulate_rows_on(Backend::Scalar, &cb, &packed, row, &weights, &mut want)
            .unwrap();
        for b in Backend::available() {
            let mut got = vec![0.25f32; d];
            codebook::accumulate_rows_on(b, &cb, &packed, row, &weights, &mut got).unwrap();
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-6 * (1.0 + w.abs()),
                    "{b}, d = {d}, {bits} bits"
                );
            }
        }
    }
}

/// Rows of 5- and 6-bit codes whose last row ends the buffer, keys and
/// values, on every backend against scalar: AVX2 reads 32 codes at a time
/// with two 16-byte loads, then each group of 8 left with one 8-byte
/// load, in place where the row's bytes and those after it hold them,
/// else from a copy of what is left. Then two query
/// heads sharing 6-, 3- and 2-bit keys (AVX2 shares each group's lookup
/// between them, reading a dword in place at 1–4 bits) against each head
/// alone.
#[test]
fn wide_rows_end_at_the_buffer() {
    for (bits, d) in [(5u8, 8usize), (5, 72), (6, 24), (6, 64)] {
        let cb = Codebook::lloyd_max(64, bits).unwrap();
        let row = pack::packed_len(d, bits);
        let rows = 3;
        let packed = pattern_rows(&cb, d, rows, 5);
        let q: Vec<f32> = (0..d).map(|i| (i as f32 * 0.37).sin()).collect();
        let weights = [0.5f32, -1.25, 2.0];
        let (mut want_s, mut want_v) = (vec![0.0f32; rows], vec![0.25f32; d]);
        codebook::dot_rows_on(Backend::Scalar, &cb, &q, &packed, row, &mut want_s).unwrap();
        codebook::accumulate_rows_on(Backend::Scalar, &cb, &packed, row, &weights, &mut want_v)
            .unwrap();
        let bound = q.iter().map(|x| x.abs()).sum::<f32>() + 1.0;
        for b in Backend::available() {
            let (mut got_s, mut got_v) = (vec![0.0f32; rows], vec![0.25f32; d]);
            codebook::dot_rows_on(b, &cb, &q, &packed, row, &mut got_s).unwrap();
            codebook::accumulate_rows_on(b, &cb, &packed, row, &weights, &mut got_v).unwrap();
            for (g, w) in got_s.iter().zip(&want_s) {
                assert!(
                    (g - w).abs() <= 1e-5 * bound,
                    "{b}, d = {d}, {bits} bits: score"
                );
            }
            for (g, w) in got_v.iter().zip(&want_v) {
                assert!(
                    (g - w).abs() <= 1e-6 * (1.0 + w.abs()),
                    "{b}, d = {d}, {bits} bits: value sum"
                );
            }
        }
    }
    // At 4 to 6 bits AVX2 looks 32 codes up at a time for both heads' keys
    // and values, then the rest of d = 40 by groups of 8.
    for (bits, d) in [(6u8, 16usize), (3, 16), (2, 16), (4, 40), (5, 40), (6, 40)] {
        shared_keys_equal_one_head(bits, d);
    }
}

/// Two query heads over 5 tokens of KV `bits`-bit keys of `d` coordinates
/// (the last row ends the buffer) against each head alone, on every
/// backend.
fn shared_keys_equal_one_head(bits: u8, d: usize) {
    let tokens = 5;
    let cfg = CacheConfig::new(Scheme::Kv, bits, 1, d, tokens);
    let mut cache = KvCache::new(cfg, vec![0u8; cfg.bytes_needed().unwrap()]).unwrap();
    let x: Vec<f32> = (0..tokens * d)
        .map(|i| ((i * 7 % 23) as f32 - 11.0) / 8.0)
        .collect();
    cache.push_batch(&x, &x).unwrap();
    let q: Vec<f32> = (0..2 * d)
        .map(|i| ((i * 5 % 17) as f32 - 8.0) / 4.0)
        .collect();
    for b in Backend::available() {
        let mut scratch = vec![0.0f32; attention::scratch_len(&cache, 2)];
        let mut both = vec![0.0f32; 2 * d];
        attention::attend_many_on(b, &cache, 0, &q, &[tokens], &mut both, &mut scratch).unwrap();
        for (h, got) in both.chunks_exact(d).enumerate() {
            let mut one = vec![0.0f32; d];
            attention::attend_on(b, &cache, 0, &q[h * d..][..d], &mut one, &mut scratch).unwrap();
            for (g, w) in got.iter().zip(&one) {
                let at = format!("{b}, {bits} bits, head {h}");
                assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{at}");
            }
        }
    }
}

/// QJL sign sums of 8 and 9 rows whose sketches end the buffer: the nibble
/// tables of the x86 row blocks (a rest of bytes copied, or dwords masked),
/// and the values' sign sums kept in registers 64 signs at a time.
#[test]
fn sign_rows_end_at_the_buffer() {
    for m in [12usize, 32, 64, 72] {
        let sq: Vec<f32> = (0..m).map(|j| (j as f32 - 20.0) / 8.0).collect();
        let bytes = m.div_ceil(8);
        for rows in [8usize, 9] {
            let signs: Vec<u8> = (0..rows * bytes).map(|i| (i * 37 + 11) as u8).collect();
            let mut want = vec![0.0f32; rows];
            qjl::signed_sum_rows_on(Backend::Scalar, &sq, &signs, bytes, &mut want).unwrap();
            let weights: Vec<f32> = (0..rows).map(|r| r as f32 / 4.0 - 1.0).collect();
            let mut acc_want = vec![0.5f32; m];
            qjl::accumulate_signs_rows_on(Backend::Scalar, &signs, bytes, &weights, &mut acc_want)
                .unwrap();
            let scale: f32 = sq.iter().map(|v| v.abs()).sum();
            for b in Backend::available() {
                let mut got = vec![0.0f32; rows];
                qjl::signed_sum_rows_on(b, &sq, &signs, bytes, &mut got).unwrap();
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() <= 1e-5 * scale, "{b}, m = {m}: {g} vs {w}");
                }
                let mut acc = vec![0.5f32; m];
                qjl::accumulate_signs_rows_on(b, &signs, bytes, &weights, &mut acc).unwrap();
                for (g, w) in acc.iter().zip(&acc_want) {
                    assert!(
                        (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "{b}, m = {m}: {g} vs {w}"
                    );
                }
            }
        }
    }
}

/// The int8 scores of every width and a few lengths (one register, a
/// tail, and past one AVX-512 block of rows) on every backend: the bits of
/// the portable loop, and the plain formula when the query is already
/// integers of at most 127 (then only the centroids are rounded); the
/// rows end at the buffer's end. Then grouped heads with int8 scoring.
#[test]
fn int8_scores_on_every_backend() {
    for bits in 1..=6u8 {
        let cb = Codebook::lloyd_max(64, bits).unwrap();
        let c = cb.centroids();
        let cmax = c.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for d in [1usize, 19, 70] {
            let q: Vec<f32> = (0..d).map(|i| ((i * 37 % 255) as f32) - 127.0).collect();
            let row = pack::packed_len(d, bits);
            let (rows, stride) = (17, row + 1);
            let packed: Vec<u8> = (0..(rows - 1) * stride + row)
                .map(|i| (i * 167 % 251) as u8)
                .collect();
            let qmax = q.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let mult = (qmax as f64 * cmax as f64 / (127.0 * 127.0)) as f32;
            let mut idx = vec![0u8; d];
            let want: Vec<f32> = (0..rows)
                .map(|r| {
                    pack::unpack(bits, &packed[r * stride..][..row], &mut idx).unwrap();
                    let sum: i64 = q
                        .iter()
                        .zip(&idx)
                        .map(|(&qj, &i)| {
                            let q8 = (qj as f64 * 127.0 / qmax as f64).round() as i64;
                            let c8 = (c[i as usize] as f64 * 127.0 / cmax as f64).round() as i64;
                            q8 * c8
                        })
                        .sum();
                    sum as f32 * mult
                })
                .collect();
            for b in Backend::available() {
                let mut got = vec![0.0f32; rows];
                codebook::dot_rows_int8_on(b, &cb, &q, &packed, stride, &mut got).unwrap();
                assert_eq!(got, want, "{bits} bits, d {d} on {b}");
            }
        }
    }
    let config = CacheConfig::new(Scheme::Kqv, 4, 1, 64, 20).with_seed(4);
    let mut cache = KvCache::new(config, vec![0u8; config.bytes_needed().unwrap()]).unwrap();
    for t in 0..20 {
        let k: Vec<f32> = (0..64)
            .map(|i| ((i * 3 + t * 5) % 9) as f32 - 4.0)
            .collect();
        cache.push(&k, &[t as f32; 64]).unwrap();
    }
    let q: Vec<f32> = (0..128).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
    let mut scratch = vec![0.0f32; attention::scratch_len(&cache, 2)];
    let mut want = vec![0.0f32; 128];
    let scoring = attention::Scoring::Int8;
    attention::attend_many_with(
        Backend::Scalar,
        scoring,
        &cache,
        0,
        &q,
        &[20],
        &mut want,
        &mut scratch,
    )
    .unwrap();
    for b in Backend::available() {
        let mut out = vec![0.0f32; 128];
        attention::attend_many_with(b, scoring, &cache, 0, &q, &[20], &mut out, &mut scratch)
            .unwrap();
        for (o, w) in out.iter().zip(&want) {
            assert!((o - w).abs() <= 1e-5 * w.abs().max(1.0), "{b}: {o} vs {w}");
        }
        // A convex combination of the values 0 … 19.
        assert!(out.iter().all(|&v| (0.0..=19.0).contains(&v)));
    }
}
