//! The compressed KV cache: invariants, round trips through bytes, and
//! hostile bytes.

use proptest::prelude::*;
use tqkv::Error;
use tqkv::qjl::Projection;
use tqkv::quant::{CacheConfig, HEADER_BYTES, KvCache, NormPrecision, Scheme};

fn config(scheme: Scheme, budget: u8, heads: usize, dim: usize, capacity: usize) -> CacheConfig {
    CacheConfig::new(scheme, budget, heads, dim, capacity).with_seed(42)
}

fn token(heads: usize, dim: usize, t: usize, salt: f32) -> Vec<f32> {
    (0..heads * dim)
        .map(|i| (((i * 31 + t * 7) % 23) as f32 - 11.0) * 0.1 + salt)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn push_len_capacity_invariants(
        scheme in prop::sample::select(Scheme::ALL.to_vec()),
        budget in 2u8..=6,
        heads in 1usize..4,
        dim in prop::sample::select(vec![8usize, 16, 64]),
        capacity in 0usize..6,
        pushes in 0usize..8,
    ) {
        let cfg = config(scheme, budget, heads, dim, capacity);
        let mut buf = vec![0u8; cfg.bytes_needed().unwrap()];
        let mut cache = KvCache::new(cfg, &mut buf[..]).unwrap();
        for t in 0..pushes {
            let r = cache.push(&token(heads, dim, t, 0.0), &token(heads, dim, t, 1.0));
            if t < capacity {
                prop_assert!(r.is_ok());
            } else {
                prop_assert_eq!(r, Err(Error::CacheFull { capacity }));
            }
            prop_assert_eq!(cache.len(), (t + 1).min(capacity));
            prop_assert!(cache.len() <= cache.capacity());
        }
        let k_row = cache.key_quantizer().encoded_len();
        let v_row = cache.value_quantizer().encoded_len();
        prop_assert_eq!(cache.bytes_per_token(), heads * (k_row + v_row));
        for h in 0..heads {
            for (fields, q) in [
                (cache.key_fields(h).unwrap(), cache.key_quantizer()),
                (cache.value_fields(h).unwrap(), cache.value_quantizer()),
            ] {
                let lens = [fields.norms, fields.residual_norms, fields.codes, fields.signs].map(<[u8]>::len);
                prop_assert_eq!(lens, q.fields().map(|f| f * cache.len()));
            }
        }
        prop_assert!(cache.key_fields(heads).is_none());
        prop_assert!(cache.value_fields(heads).is_none());
        let mut code = vec![0u8; k_row];
        prop_assert!(cache.key(0, cache.len(), &mut code).is_err());
        prop_assert!(cache.key(heads, 0, &mut code).is_err());
        if !cache.is_empty() {
            prop_assert!(cache.key(0, 0, &mut code[..k_row - 1]).is_err());
        }
        // The bytes read back as the same cache, token for token.
        let len = cache.len();
        let again = KvCache::from_bytes(&buf[..]).unwrap();
        prop_assert_eq!(again.len(), len);
        prop_assert_eq!(again.config(), &cfg);
    }

    #[test]
    fn hostile_bytes_never_panic(
        flips in prop::collection::vec((0usize..400, 0u8..8), 0..6),
        cut in 0usize..420,
        garbage in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let cfg = config(Scheme::Qkqv, 3, 2, 16, 3);
        let mut buf = vec![0u8; cfg.bytes_needed().unwrap()];
        {
            let mut cache = KvCache::new(cfg, &mut buf[..]).unwrap();
            cache.push(&token(2, 16, 0, 0.0), &token(2, 16, 0, 1.0)).unwrap();
        }
        let mut bad = buf.clone();
        for &(at, bit) in &flips {
            if at < bad.len() {
                bad[at] ^= 1 << bit;
            }
        }
        let bad = &bad[..cut.min(bad.len())];
        // Accepted or not, nothing panics and every accessor stays in bounds.
        if let Ok(c) = KvCache::from_bytes(bad) {
            prop_assert!(c.len() <= c.capacity());
            prop_assert!(c.as_bytes().len() <= bad.len());
            for h in 0..c.config().heads {
                prop_assert!(c.key_fields(h).is_some() && c.value_fields(h).is_some());
            }
            // Whatever was accepted attends to finite outputs.
            let d = c.config().dim;
            let mut out = vec![0.0f32; d];
            let mut scratch = vec![0.0f32; tqkv::attention::scratch_len(&c, 1)];
            let q: Vec<f32> = (0..d).map(|i| (i as f32 * 0.3).sin()).collect();
            match tqkv::attention::attend(&c, 0, &q, &mut out, &mut scratch) {
                Ok(()) => prop_assert!(out.iter().all(|v| v.is_finite()), "{:?}", out),
                Err(e) => prop_assert!(c.is_empty(), "{}", e),
            }
        }
        let _ = KvCache::from_bytes(&garbage[..]);
        let mut with_magic = garbage.clone();
        if with_magic.len() >= 8 {
            with_magic[..8].copy_from_slice(&tqkv::quant::MAGIC);
        }
        let _ = KvCache::from_bytes(&with_magic[..]);
    }
}

#[test]
fn from_bytes_names_what_is_wrong() {
    let cfg = config(Scheme::Kqv, 4, 1, 64, 2);
    let mut buf = vec![0u8; cfg.bytes_needed().unwrap()];
    KvCache::new(cfg, &mut buf[..]).unwrap();
    let check = |mutate: &dyn Fn(&mut Vec<u8>), want: &str| {
        let mut b = buf.clone();
        mutate(&mut b);
        match KvCache::from_bytes(&b[..]) {
            Err(Error::CorruptCache(why)) => assert_eq!(why, want),
            Err(e) => panic!("{want}: got {e}"),
            Ok(_) => panic!("{want}: accepted"),
        }
    };
    check(&|b| b[0] = b'X', "bad magic (not a tqkv cache)");
    // A cache written under the crate's first name, whatever its version.
    check(
        &|b| b[..8].copy_from_slice(b"TURBOKV\0"),
        "a cache written by turbokv (format 1 or 2), before the rename to tqkv: re-encode it with this version",
    );
    // Versions 1 and 2 are earlier layouts, 6 a later one.
    for version in [1u8, 2, 6] {
        check(
            &|b| b[8] = version,
            "unsupported layout version (this build reads versions 3, 4 and 5)",
        );
    }
    // Version 5 says the values have a dimension of their own.
    check(
        &|b| b[8] = 5,
        "version 5 without a dim of its own for values",
    );
    check(&|b| b[50] = 32, "reserved bytes are not zero");
    check(&|b| b[60] = 1, "reserved bytes are not zero");
    check(&|b| b[12] = 3, "unknown quantiser");
    check(&|b| b[48] = 7, "unknown quantiser");
    check(&|b| b[13] = 9, "bits or dim not supported");
    check(&|b| b[49] = 0, "bits or dim not supported");
    // A prod side needs 2 bits at least.
    check(&|b| b[49] = 1, "bits or dim not supported");
    check(&|b| b[14] = 2, "unknown projection");
    check(&|b| b[15] = 2, "unknown norm precision");
    check(
        &|b| b[16..20].copy_from_slice(&0u32.to_le_bytes()),
        "zero heads",
    );
    check(
        &|b| b[20..24].copy_from_slice(&100u32.to_le_bytes()),
        "bits or dim not supported",
    );
    // 96 is supported, but not with this cache's sizes.
    check(
        &|b| b[20..24].copy_from_slice(&96u32.to_le_bytes()),
        "code sizes do not match the scheme",
    );
    check(
        &|b| b[28..32].copy_from_slice(&3u32.to_le_bytes()),
        "more tokens than capacity",
    );
    check(&|b| b[32] ^= 1, "code sizes do not match the scheme");
    check(
        &|b| b[24..28].copy_from_slice(&u32::MAX.to_le_bytes()),
        "buffer shorter than its capacity",
    );
    check(&|b| b[50] = 1, "reserved bytes are not zero");
    check(&|b| b.truncate(HEADER_BYTES - 1), "shorter than the header");
    check(
        &|b| b.truncate(b.len() - 1),
        "buffer shorter than its capacity",
    );
}

#[test]
fn empty_cache_with_u32_max_heads_opens_without_a_pass_per_head() {
    // Regression (fuzz, cache_from_bytes, seeded CI run): capacity 0 makes
    // any head count fit in the header alone; from_bytes used to scan every
    // head's (empty) norms, 2^32 iterations for 64 bytes of input.
    let cfg = config(Scheme::Kqv, 4, 1, 64, 0);
    let mut buf = vec![0u8; cfg.bytes_needed().unwrap()];
    KvCache::new(cfg, &mut buf[..]).unwrap();
    buf[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    let cache = KvCache::from_bytes(&buf[..]).unwrap();
    assert_eq!((cache.len(), cache.capacity()), (0, 0));
    assert_eq!(cache.config().heads, u32::MAX as usize);
    assert!(
        cache
            .key_fields(u32::MAX as usize - 1)
            .unwrap()
            .codes
            .is_empty()
    );
}

#[test]
fn from_bytes_rejects_norms_no_encoder_writes() {
    for (norm, nan, neg) in [
        (NormPrecision::F16, vec![0x00u8, 0x7E], vec![0x00u8, 0xBC]),
        (
            NormPrecision::F32,
            f32::INFINITY.to_le_bytes().to_vec(),
            (-1.0f32).to_le_bytes().to_vec(),
        ),
        (
            NormPrecision::F32,
            (2.0 * tqkv::quant::MAX_NORM).to_le_bytes().to_vec(),
            f32::NAN.to_le_bytes().to_vec(),
        ),
    ] {
        let cfg = config(Scheme::Qkqv, 3, 2, 16, 3).with_norm(norm);
        let mut buf = vec![0u8; cfg.bytes_needed().unwrap()];
        let (k_fields, v_fields) = {
            let mut cache = KvCache::new(cfg, &mut buf[..]).unwrap();
            cache
                .push(&token(2, 16, 0, 0.0), &token(2, 16, 0, 1.0))
                .unwrap();
            (
                cache.key_quantizer().fields(),
                cache.value_quantizer().fields(),
            )
        };
        assert!(KvCache::from_bytes(&buf[..]).is_ok());
        let nb = norm.bytes();
        // The documented layout: regions of capacity × field bytes, each
        // padded to 64, head by head, keys then values.
        let region = |f: usize| (cfg.capacity * f).div_ceil(64) * 64;
        let k_bytes: usize = k_fields.iter().map(|&f| region(f)).sum();
        let head = k_bytes + v_fields.iter().map(|&f| region(f)).sum::<usize>();
        // Head 1's key norm, head 0's value residual norm (its second field).
        let key1 = HEADER_BYTES + head;
        let val0 = HEADER_BYTES + k_bytes + region(v_fields[0]);
        for at in [HEADER_BYTES, key1, val0] {
            for bad in [&nan, &neg] {
                let mut b = buf.clone();
                b[at..at + nb].copy_from_slice(bad);
                assert_eq!(
                    KvCache::from_bytes(&b[..]).err(),
                    Some(Error::CorruptCache(
                        "a stored norm is negative, not finite or above MAX_NORM"
                    )),
                    "{norm:?} at {at}"
                );
            }
        }
        // Slots past `len` are not in use and not read.
        let mut b = buf.clone();
        let unused = HEADER_BYTES + nb;
        b[unused..unused + nb].copy_from_slice(&nan);
        assert!(KvCache::from_bytes(&b[..]).is_ok());
    }
}

/// A version-3 header (0.2's layout: scheme and budget in bytes 12–13,
/// bytes 48–49 zero) of the same cache.
fn as_version_3(buf: &mut [u8], scheme_code: u8) {
    buf[8..12].copy_from_slice(&3u32.to_le_bytes());
    buf[12] = scheme_code;
    buf[48] = 0;
    buf[49] = 0;
}

#[test]
fn values_of_their_own_dimension() {
    // Keys of 96 beside values of 64 (multi-head latent attention's shape,
    // smaller): version 5, the value dim at bytes 50–53.
    let cfg = config(Scheme::Kqv, 4, 2, 96, 5).with_value_dim(64);
    let mut buf = vec![0u8; cfg.bytes_needed().unwrap()];
    let mut cache = KvCache::new(cfg, &mut buf[..]).unwrap();
    let (k, v) = (token(2, 96, 0, 0.1), token(2, 64, 0, 0.2));
    assert_eq!(
        cache.push(&k, &k),
        Err(Error::LengthMismatch {
            expected: 128,
            found: 192
        })
    );
    cache.push(&k, &v).unwrap();
    let (kb, vb): (Vec<f32>, Vec<f32>) = (
        (1..4).flat_map(|t| token(2, 96, t, 0.1)).collect(),
        (1..4).flat_map(|t| token(2, 64, t, 0.2)).collect(),
    );
    assert!(cache.push_batch(&kb, &kb[..3 * 96]).is_err());
    cache.push_batch(&kb, &vb).unwrap();
    assert_eq!(cache.len(), 4);
    let mut one = vec![0u8; cfg.bytes_needed().unwrap()];
    {
        let mut c = KvCache::new(cfg, &mut one[..]).unwrap();
        c.push(&k, &v).unwrap();
        for t in 1..4 {
            c.push(&token(2, 96, t, 0.1), &token(2, 64, t, 0.2))
                .unwrap();
        }
    }
    assert_eq!(one, buf);
    assert_eq!(buf[8], 5);
    assert_eq!(u32::from_le_bytes(buf[50..54].try_into().unwrap()), 64);
    let again = KvCache::from_bytes(&buf[..]).unwrap();
    assert_eq!(again.config(), &cfg);
    assert_eq!(again.value_quantizer().dim(), 64);
    assert_eq!(again.key_quantizer().dim(), 96);
    // Equal dims keep version 4, byte for byte what 0.3 wrote.
    let same = config(Scheme::Kqv, 4, 2, 96, 5);
    let mut b4 = vec![0u8; same.bytes_needed().unwrap()];
    KvCache::new(same, &mut b4[..]).unwrap();
    assert_eq!(b4[8], 4);
    assert_eq!(b4[50..64], [0; 14]);
    let check = |mutate: &dyn Fn(&mut Vec<u8>), want: &str| {
        let mut b = buf.clone();
        mutate(&mut b);
        match KvCache::from_bytes(&b[..]) {
            Err(Error::CorruptCache(why)) => assert_eq!(why, want),
            other => panic!("{want}: got {:?}", other.map(|c| *c.config())),
        }
    };
    check(&|b| b[50] = 100, "bits or dim not supported");
    check(&|b| b[50] = 32, "code sizes do not match the scheme");
    check(&|b| b[8] = 4, "reserved bytes are not zero");
    check(
        &|b| b[50..54].copy_from_slice(&96u32.to_le_bytes()),
        "version 5 without a dim of its own for values",
    );
}

#[test]
fn version_3_caches_read_as_their_scheme() {
    for (code, &scheme) in Scheme::ALL.iter().enumerate() {
        let cfg = config(scheme, 3, 2, 64, 3);
        let mut buf = vec![0u8; cfg.bytes_needed().unwrap()];
        let mut cache = KvCache::new(cfg, &mut buf[..]).unwrap();
        cache
            .push(&token(2, 64, 1, 0.1), &token(2, 64, 2, 0.3))
            .unwrap();
        let written = buf.clone();
        as_version_3(&mut buf, code as u8);
        let old = KvCache::from_bytes(&buf[..]).unwrap();
        assert_eq!(old.config(), &cfg);
        assert_eq!(old.config().scheme(), Some((scheme, 3)));
        // The payload is the same bytes: only the header differs.
        assert_eq!(old.as_bytes()[64..], written[64..]);
        // A version-3 header with a value side, or a budget outside 2–8, is corrupt.
        let mut bad = buf.clone();
        bad[48] = 1;
        assert!(KvCache::from_bytes(&bad[..]).is_err());
        bad = buf.clone();
        bad[13] = 1;
        assert!(KvCache::from_bytes(&bad[..]).is_err());
    }
}

#[test]
fn keys_and_values_take_their_own_quantiser_and_bits() {
    use tqkv::quant::{QuantizerKind as K, QuantizerSpec as S};
    let sides = [
        (S::new(K::Mse, 4), S::new(K::Mse, 4)),
        (S::new(K::Mse, 4), S::new(K::Mse, 3)),
        (S::new(K::Mse, 3), S::new(K::Mse, 4)),
        (S::new(K::Mse, 8), S::new(K::Mse, 4)),
        (S::new(K::Prod, 5), S::new(K::Mse, 2)),
        (S::new(K::Baseline, 6), S::new(K::Prod, 3)),
    ];
    // One head (key and value encoded as a pair) and two (in groups).
    for ((keys, values), heads) in sides.into_iter().flat_map(|s| [(s, 1), (s, 2)]) {
        let cfg = config(Scheme::Kqv, 4, heads, 64, 3)
            .with_keys(keys)
            .with_values(values);
        let mut buf = vec![0u8; cfg.bytes_needed().unwrap()];
        let mut cache = KvCache::new(cfg, &mut buf[..]).unwrap();
        let (k, v) = (token(heads, 64, 1, 0.2), token(heads, 64, 4, -0.1));
        cache.push(&k, &v).unwrap();
        // Each side's quantiser is the one its spec builds (seeds 42 and 44).
        let kq = keys.build(64, 42, Projection::Hadamard).unwrap();
        let vq = values.build(64, 44, Projection::Hadamard).unwrap();
        assert_eq!(cache.key_quantizer().encoded_len(), kq.encoded_len());
        assert_eq!(cache.value_quantizer().encoded_len(), vq.encoded_len());
        let h = heads - 1;
        for (q, x, side) in [(&kq, &k, 0), (&vq, &v, 1)] {
            let mut want = vec![0u8; q.encoded_len()];
            let mut got = vec![0u8; q.encoded_len()];
            q.encode(&x[h * 64..][..64], &mut want).unwrap();
            match side {
                0 => cache.key(h, 0, &mut got).unwrap(),
                _ => cache.value(h, 0, &mut got).unwrap(),
            }
            assert_eq!(got, want, "{keys:?} {values:?}, {heads} heads, side {side}");
        }
        let again = KvCache::from_bytes(&buf[..]).unwrap();
        assert_eq!(again.config(), &cfg);
        assert_eq!((again.config().keys, again.config().values), (keys, values));
    }
    // Bits a quantiser refuses are refused by the config.
    let bad = config(Scheme::Kqv, 4, 1, 64, 1).with_values(S::new(K::Prod, 1));
    assert!(matches!(
        bad.bytes_needed(),
        Err(Error::InvalidBits { bits: 1 })
    ));
}

#[test]
fn cache_codes_decode_to_the_pushed_vectors() {
    for &scheme in Scheme::ALL {
        let cfg = config(scheme, 6, 2, 64, 4);
        let mut buf = vec![0u8; cfg.bytes_needed().unwrap()];
        let mut cache = KvCache::new(cfg, &mut buf[..]).unwrap();
        let (k, v) = (token(2, 64, 3, 0.2), token(2, 64, 5, -0.3));
        cache.push(&k, &v).unwrap();
        let mut back = vec![0.0f32; 64];
        let mut code = vec![0u8; cache.key_quantizer().encoded_len()];
        for h in 0..2 {
            cache.key(h, 0, &mut code).unwrap();
            cache.key_quantizer().decode(&code, &mut back).unwrap();
            let x = &k[h * 64..(h + 1) * 64];
            let err: f32 = x.iter().zip(&back).map(|(a, b)| (a - b) * (a - b)).sum();
            let n2: f32 = x.iter().map(|a| a * a).sum();
            assert!(err / n2 < 0.05, "{scheme:?} head {h}: {}", err / n2);
        }
    }
}

#[test]
fn bad_pushes_store_nothing() {
    let cfg = config(Scheme::Kv, 3, 1, 8, 2);
    let mut buf = vec![0u8; cfg.bytes_needed().unwrap()];
    let mut cache = KvCache::new(cfg, &mut buf[..]).unwrap();
    assert_eq!(
        cache.push(&[0.0; 7], &[0.0; 8]),
        Err(Error::LengthMismatch {
            expected: 8,
            found: 7
        })
    );
    let mut nan = [0.5f32; 8];
    nan[3] = f32::NAN;
    assert_eq!(cache.push(&[0.5; 8], &nan), Err(Error::NonFinite));
    assert_eq!(cache.len(), 0);
    // Not a byte is written: a key and a value are encoded together, both
    // norms checked first, on every scheme and backend.
    for scheme in Scheme::ALL {
        let cfg = config(*scheme, 4, 1, 64, 2);
        let mut cache = KvCache::new(cfg, vec![0u8; cfg.bytes_needed().unwrap()]).unwrap();
        let before = cache.as_bytes().to_vec();
        let good = token(1, 64, 0, 0.3);
        for bad in [f32::NAN, f32::INFINITY, -f32::INFINITY, f32::MAX] {
            let mut x = good.clone();
            x[40] = bad;
            for backend in tqkv::Backend::available() {
                assert_eq!(cache.push_on(backend, &good, &x), Err(Error::NonFinite));
                assert_eq!(cache.push_on(backend, &x, &good), Err(Error::NonFinite));
            }
        }
        assert_eq!(cache.as_bytes(), &before[..], "{scheme:?}");
    }
    assert_eq!(
        KvCache::new(cfg, &mut buf[..10]).err(),
        Some(Error::BufferTooShort {
            needed: cfg.bytes_needed().unwrap(),
            found: 10
        })
    );
}

#[test]
fn a_cache_written_on_one_backend_is_byte_identical_on_every_other() {
    use tqkv::Backend;
    // 64 rotates in one pass on AVX2, 128 in two; both fuse the unit
    // scaling and the sketch's sign bits into the rotation.
    for (&scheme, d) in Scheme::ALL.iter().flat_map(|s| [(s, 64), (s, 128)]) {
        for projection in [Projection::Hadamard, Projection::Gaussian] {
            let cfg = config(scheme, 4, 2, d, 5).with_projection(projection);
            let write = |backend: Backend| {
                let mut buf = vec![0u8; cfg.bytes_needed().unwrap()];
                let mut cache = KvCache::new(cfg, &mut buf[..]).unwrap();
                for t in 0..5 {
                    cache
                        .push_on(backend, &token(2, d, t, 0.1), &token(2, d, t + 9, -0.2))
                        .unwrap();
                }
                buf
            };
            let want = write(Backend::Scalar);
            for backend in Backend::available() {
                assert!(
                    write(backend) == want,
                    "{scheme:?} {projection:?} d = {d} on {backend}"
                );
            }
        }
    }
}

/// A batched push stores the bytes of token-by-token pushes, on every
/// backend and every scheme; bad batches store nothing.
#[test]
fn push_batch_equals_push_token_by_token() {
    use tqkv::rng::SplitMix64;
    let mut g = SplitMix64::new(31);
    for &scheme in tqkv::quant::Scheme::ALL {
        let cfg = tqkv::quant::CacheConfig::new(scheme, 3, 2, 64, 20).with_seed(4);
        let n = 2 * 64;
        let k: Vec<f32> = (0..13 * n)
            .map(|_| (g.next_u64() >> 40) as f32 / (1u64 << 22) as f32 - 2.0)
            .collect();
        let v: Vec<f32> = k.iter().rev().map(|x| x * 0.5).collect();
        let mut one =
            tqkv::quant::KvCache::new(cfg, vec![0u8; cfg.bytes_needed().unwrap()]).unwrap();
        for t in 0..13 {
            one.push(&k[t * n..][..n], &v[t * n..][..n]).unwrap();
        }
        for backend in tqkv::Backend::available() {
            let mut batch =
                tqkv::quant::KvCache::new(cfg, vec![0u8; cfg.bytes_needed().unwrap()]).unwrap();
            batch
                .push_batch_on(backend, &k[..5 * n], &v[..5 * n])
                .unwrap();
            batch
                .push_batch_on(backend, &k[5 * n..], &v[5 * n..])
                .unwrap();
            assert_eq!(batch.as_bytes(), one.as_bytes(), "{scheme:?} on {backend}");
            // Ragged, mismatched, too many, non-finite: refused, nothing stored.
            let before = batch.as_bytes().to_vec();
            assert!(matches!(
                batch.push_batch_on(backend, &k[..n + 1], &v[..n + 1]),
                Err(tqkv::Error::RaggedRows { .. })
            ));
            assert!(matches!(
                batch.push_batch_on(backend, &k[..n], &v[..2 * n]),
                Err(tqkv::Error::LengthMismatch { .. })
            ));
            assert_eq!(
                batch.push_batch_on(backend, &k[..8 * n], &v[..8 * n]),
                Err(tqkv::Error::CacheFull { capacity: 20 })
            );
            let mut bad = k[..2 * n].to_vec();
            bad[n + 3] = f32::NAN;
            assert_eq!(
                batch.push_batch_on(backend, &bad, &v[..2 * n]),
                Err(tqkv::Error::NonFinite)
            );
            assert_eq!(batch.as_bytes(), &before[..]);
            batch.push_batch_on(backend, &[], &[]).unwrap();
            assert_eq!(batch.len(), 13);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Batches, on one thread or shared out between several, store the
    /// bytes of token-by-token pushes, whatever the heads, the dimension,
    /// the batch's length (groups of eight vectors cross tokens when a
    /// token has several heads), the projection, the norms' precision and
    /// the thread count.
    #[test]
    fn batches_store_the_bytes_of_pushes(
        scheme in prop::sample::select(Scheme::ALL.to_vec()),
        budget in 2u8..=6,
        heads in 1usize..=4,
        dim in prop::sample::select(vec![16usize, 96, 128]),
        tokens in 0usize..30,
        split in 0usize..30,
        threads in 1usize..=5,
        seed in any::<u64>(),
        projection in prop::sample::select(vec![Projection::Hadamard, Projection::Gaussian]),
        norm in prop::sample::select(vec![NormPrecision::F16, NormPrecision::F32]),
    ) {
        let cfg = config(scheme, budget, heads, dim, 30)
            .with_projection(projection)
            .with_norm(norm);
        let mut g = tqkv::rng::SplitMix64::new(seed);
        let mut draw = |n: usize| -> Vec<f32> {
            (0..n).map(|_| (g.next_u64() >> 40) as f32 / (1u64 << 21) as f32 - 4.0).collect()
        };
        let (k, v) = (draw(tokens * heads * dim), draw(tokens * heads * dim));
        let row = heads * dim;
        let mut one = KvCache::new(cfg, vec![0u8; cfg.bytes_needed().unwrap()]).unwrap();
        for t in 0..tokens {
            one.push(&k[t * row..][..row], &v[t * row..][..row]).unwrap();
        }
        // Each stored field is that of the quantiser's own encoding of the
        // head's vector (pushes of several heads go in groups too).
        for (side, x) in [&k, &v].into_iter().enumerate() {
            let q = if side == 0 { one.key_quantizer() } else { one.value_quantizer() };
            let (len, f) = (q.encoded_len(), q.fields());
            let mut code = vec![0u8; len];
            for (t, h) in (0..tokens).flat_map(|t| (0..heads).map(move |h| (t, h))) {
                q.encode(&x[t * row + h * dim..][..dim], &mut code).unwrap();
                let stored = if side == 0 { one.key_fields(h) } else { one.value_fields(h) };
                let stored = stored.unwrap();
                let fields = [stored.norms, stored.residual_norms, stored.codes, stored.signs];
                let mut at = 0;
                for (field, bytes) in fields.iter().zip(f) {
                    prop_assert_eq!(&field[t * bytes..][..bytes], &code[at..at + bytes]);
                    at += bytes;
                }
            }
        }
        let split = split.min(tokens) * row;
        let mut batch = KvCache::new(cfg, vec![0u8; cfg.bytes_needed().unwrap()]).unwrap();
        batch.push_batch(&k[..split], &v[..split]).unwrap();
        batch.push_batch(&k[split..], &v[split..]).unwrap();
        prop_assert_eq!(batch.as_bytes(), one.as_bytes());
        #[cfg(feature = "parallel")]
        {
            let mut par = KvCache::new(cfg, vec![0u8; cfg.bytes_needed().unwrap()]).unwrap();
            par.push_batch_parallel(&k[..split], &v[..split], threads).unwrap();
            par.push_batch_parallel(&k[split..], &v[split..], threads).unwrap();
            prop_assert_eq!(par.as_bytes(), one.as_bytes());
        }
        let _ = threads;
    }
}

/// At the largest dimension a group is one vector (eight would not fit the
/// stack's work space): batches still store the bytes of pushes.
#[test]
fn batches_at_the_largest_dimension() {
    let dim = tqkv::quant::MAX_DIM;
    for scheme in [Scheme::Kqv, Scheme::Qkqv] {
        let cfg = config(scheme, 6, 2, dim, 3);
        let k: Vec<f32> = (0..3 * 2 * dim)
            .map(|i| ((i * 37) % 101) as f32 - 50.0)
            .collect();
        let v: Vec<f32> = k.iter().map(|x| x * 0.25 + 1.0).collect();
        let mut one = KvCache::new(cfg, vec![0u8; cfg.bytes_needed().unwrap()]).unwrap();
        for t in 0..3 {
            one.push(&k[t * 2 * dim..][..2 * dim], &v[t * 2 * dim..][..2 * dim])
                .unwrap();
        }
        let mut batch = KvCache::new(cfg, vec![0u8; cfg.bytes_needed().unwrap()]).unwrap();
        batch.push_batch(&k, &v).unwrap();
        assert_eq!(batch.as_bytes(), one.as_bytes(), "{scheme:?}");
        #[cfg(feature = "parallel")]
        {
            let mut par = KvCache::new(cfg, vec![0u8; cfg.bytes_needed().unwrap()]).unwrap();
            par.push_batch_parallel(&k, &v, 2).unwrap();
            assert_eq!(par.as_bytes(), one.as_bytes(), "{scheme:?}");
        }
    }
}

/// A batch long enough for many runs (each thread's part cut from its half
/// down to 32 tokens) stores, on any thread count, the bytes of one
/// thread's; an empty batch stores nothing.
#[cfg(feature = "parallel")]
#[test]
fn parallel_batches_of_many_runs_equal_one_thread() {
    for scheme in [Scheme::Kqv, Scheme::Kv, Scheme::Qkqv] {
        let cfg = config(scheme, 3, 2, 64, 400);
        let row = 2 * 64;
        let k: Vec<f32> = (0..333 * row)
            .map(|i| ((i * 29) % 53) as f32 * 0.1 - 2.6)
            .collect();
        let v: Vec<f32> = k.iter().map(|x| 1.5 - x).collect();
        let mut want = KvCache::new(cfg, vec![0u8; cfg.bytes_needed().unwrap()]).unwrap();
        want.push_batch(&k[..row], &v[..row]).unwrap();
        want.push_batch(&k[row..], &v[row..]).unwrap();
        for threads in [1, 2, 3, 4, 7] {
            let mut par = KvCache::new(cfg, vec![0u8; cfg.bytes_needed().unwrap()]).unwrap();
            par.push_batch_parallel(&k[..row], &v[..row], threads)
                .unwrap();
            par.push_batch_parallel(&k[row..], &v[row..], threads)
                .unwrap();
            par.push_batch_parallel(&[], &[], threads).unwrap();
            assert_eq!(par.len(), 333);
            assert_eq!(par.as_bytes(), want.as_bytes(), "{scheme:?} {threads}");
        }
    }
}

/// A batch shared between threads refuses what `push_batch` refuses, and
/// zero threads, storing nothing; on every backend it stores the bytes of
/// one thread's batch.
#[cfg(feature = "parallel")]
#[test]
fn parallel_batches_refuse_bad_input_and_match_every_backend() {
    let cfg = config(Scheme::Kqv, 4, 2, 64, 20);
    let row = 2 * 64;
    let k: Vec<f32> = (0..20 * row)
        .map(|i| ((i * 13) % 29) as f32 - 14.0)
        .collect();
    let v: Vec<f32> = k.iter().rev().copied().collect();
    let mut want = KvCache::new(cfg, vec![0u8; cfg.bytes_needed().unwrap()]).unwrap();
    want.push_batch(&k[..17 * row], &v[..17 * row]).unwrap();
    for backend in tqkv::Backend::available() {
        let mut par = KvCache::new(cfg, vec![0u8; cfg.bytes_needed().unwrap()]).unwrap();
        par.push_batch_parallel_on(backend, &k[..17 * row], &v[..17 * row], 3)
            .unwrap();
        assert_eq!(par.as_bytes(), want.as_bytes(), "{backend}");
        let before = par.as_bytes().to_vec();
        assert_eq!(
            par.push_batch_parallel_on(backend, &k[..row], &v[..row], 0),
            Err(Error::InvalidParameter("threads must be at least 1"))
        );
        assert!(matches!(
            par.push_batch_parallel_on(backend, &k[..row + 1], &v[..row + 1], 2),
            Err(Error::RaggedRows { .. })
        ));
        assert!(matches!(
            par.push_batch_parallel_on(backend, &k[..row], &v[..2 * row], 2),
            Err(Error::LengthMismatch { .. })
        ));
        assert_eq!(
            par.push_batch_parallel_on(backend, &k[..4 * row], &v[..4 * row], 2),
            Err(Error::CacheFull { capacity: 20 })
        );
        let mut bad = k[..3 * row].to_vec();
        bad[2 * row + 5] = f32::INFINITY;
        assert_eq!(
            par.push_batch_parallel_on(backend, &bad, &v[..3 * row], 2),
            Err(Error::NonFinite)
        );
        assert_eq!(par.as_bytes(), &before[..]);
        // A norm past f16's range fails inside the encoding: nothing counted.
        let mut huge = k[..3 * row].to_vec();
        huge[2 * row..].fill(1e6);
        for threads in [1, 2] {
            assert_eq!(
                par.push_batch_parallel_on(backend, &huge, &v[..3 * row], threads),
                Err(Error::NonFinite)
            );
            assert_eq!(par.len(), 17);
        }
        assert_eq!(
            par.push_batch_on(backend, &huge, &v[..3 * row]),
            Err(Error::NonFinite)
        );
        assert_eq!(par.len(), 17);
    }
}

/// The threads of a parallel batch share the scan for NaN and ∞: one bad
/// value anywhere in `k` or `v` (the first, the last, the edge of a scan's
/// piece) refuses the batch with every thread count, leaving the buffer's
/// bytes as they were.
#[cfg(feature = "parallel")]
#[test]
fn a_parallel_batch_with_one_bad_value_anywhere_stores_nothing() {
    let cfg = config(Scheme::Kqv, 4, 2, 64, 40);
    let row = 2 * 64;
    let tokens = 37;
    let k: Vec<f32> = (0..tokens * row)
        .map(|i| ((i * 7) % 31) as f32 - 15.0)
        .collect();
    let v: Vec<f32> = k.iter().map(|x| 0.5 * x + 1.0).collect();
    let mut par = KvCache::new(cfg, vec![0u8; cfg.bytes_needed().unwrap()]).unwrap();
    par.push_batch(&k[..row], &v[..row]).unwrap();
    let before = par.as_bytes().to_vec();
    let n = k.len();
    for side in 0..2 {
        for at in [0, 1, n / 8 - 1, n / 8, n / 2, n - 2, n - 1] {
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let (mut kb, mut vb) = (k.clone(), v.clone());
                if side == 0 {
                    kb[at] = bad;
                } else {
                    vb[at] = bad;
                }
                for threads in [1, 2, 3, 5] {
                    assert_eq!(
                        par.push_batch_parallel(&kb, &vb, threads),
                        Err(Error::NonFinite),
                        "side {side}, at {at}, {bad}, {threads} threads"
                    );
                    assert_eq!(par.as_bytes(), &before[..]);
                }
            }
        }
    }
    par.push_batch_parallel(&k, &v, 2).unwrap();
    assert_eq!(par.len(), 1 + tokens);
}
