//! Arbitrary bytes into `KvCache::from_bytes`; attention on whatever is
//! accepted must succeed with finite outputs (or fail cleanly on an empty
//! cache), on every backend, with the same result.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tqkv::KvCache;
use tqkv::attention;
use tqkv_fuzz::backends;

fuzz_target!(|data: &[u8]| {
    let Ok(cache) = KvCache::from_bytes(data) else {
        return;
    };
    assert!(cache.len() <= cache.capacity());
    assert!(cache.as_bytes().len() <= data.len());
    let cfg = *cache.config();
    let (d, dv) = (cfg.dim, cfg.value_dim);
    let mut scratch = vec![0.0f32; attention::scratch_len(&cache, 2)];
    // Two query heads sharing each KV head (GQA), a fixed smooth query.
    let q: Vec<f32> = (0..2 * d)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 4.0)
        .collect();
    let qn = q[..d].iter().map(|v| v * v).sum::<f32>().sqrt();
    for head in 0..cfg.heads.min(4) {
        // Backends reassociate the score sums (within 1e-5 of Σ|terms|);
        // softmax turns a logit error δ into a relative weight error of
        // e^{2δ} − 1, so outputs are compared only while the logits stay
        // moderate: |q|·|k̂|/√d ≤ 20 for every key, with a margin of 8 for
        // cancellation and the sketch terms. Larger logits may legitimately
        // differ across backends; they must still be finite.
        let (kq, vq) = (cache.key_quantizer(), cache.value_quantizer());
        let (mut buf, mut vbuf) = (vec![0.0f32; d], vec![0.0f32; dv]);
        let mut logit_bound = 0.0f32;
        let mut v_max = 0.0f32;
        let mut code = vec![0u8; kq.encoded_len().max(vq.encoded_len())];
        for t in 0..cache.len() {
            cache.key(head, t, &mut code).expect("token in range");
            kq.decode(&code, &mut buf).unwrap();
            let kn = buf.iter().map(|v| v * v).sum::<f32>().sqrt();
            logit_bound = logit_bound.max(8.0 * qn * kn / (d as f32).sqrt());
        }
        for t in 0..cache.len() {
            cache.value(head, t, &mut code).expect("token in range");
            vq.decode(&code, &mut vbuf).unwrap();
            v_max = vbuf.iter().fold(v_max, |m, v| m.max(v.abs()));
        }
        let comparable = logit_bound <= 20.0;
        let mut first: Option<Vec<f32>> = None;
        for b in backends() {
            let mut out = vec![0.0f32; 2 * dv];
            match attention::attend_on(b, &cache, head, &q, &mut out, &mut scratch) {
                Ok(()) => {
                    assert!(out.iter().all(|v| v.is_finite()), "{b}: {out:?}");
                    if let Some(f) = &first {
                        if comparable {
                            for (a, c) in f.iter().zip(&out) {
                                assert!(
                                    (a - c).abs() <= 1e-3 * v_max.max(1e-30),
                                    "{b}: {a} vs {c}"
                                );
                            }
                        }
                    } else {
                        first = Some(out);
                    }
                }
                Err(e) => assert!(cache.is_empty(), "{b}: {e}"),
            }
        }
        // The other shapes of the one pass agree with it: the first half
        // and the whole as two positions, and the halves merged.
        let (Some(whole), true) = (first, cache.len() >= 2) else {
            continue;
        };
        let b = tqkv::Backend::detect();
        let half = cache.len() / 2;
        let close = |a: &[f32], c: &[f32]| {
            !comparable
                || a.iter()
                    .zip(c)
                    .all(|(x, y)| (x - y).abs() <= 1e-3 * v_max.max(1e-30))
        };
        let mut many = vec![0.0f32; 4 * dv];
        let qq: Vec<f32> = q.iter().chain(&q).copied().collect();
        let mut s4 = vec![0.0f32; attention::scratch_len(&cache, 4)];
        attention::attend_many_on(
            b,
            &cache,
            head,
            &qq,
            &[half, cache.len()],
            &mut many,
            &mut s4,
        )
        .expect("valid limits");
        assert!(many.iter().all(|v| v.is_finite()));
        assert!(close(&many[2 * dv..], &whole), "second position vs one pass");
        let n = attention::Partial::len_for(&cache, 2);
        let (mut a_buf, mut c_buf) = (vec![0.0f32; n], vec![0.0f32; n]);
        let mut a = attention::Partial::new(&cache, 2, &mut a_buf).expect("room");
        let mut c = attention::Partial::new(&cache, 2, &mut c_buf).expect("room");
        attention::attend_partial_on(b, &cache, head, &q, 0..half, &mut a, &mut scratch)
            .expect("valid range");
        attention::attend_partial_on(b, &cache, head, &q, half..cache.len(), &mut c, &mut scratch)
            .expect("valid range");
        a.merge(&c).expect("same shape");
        let mut merged = vec![0.0f32; 2 * dv];
        a.finish_on(b, &cache, &mut merged, &mut scratch)
            .expect("valid");
        assert!(merged.iter().all(|v| v.is_finite()));
        assert!(close(&merged, &whole), "halves merged vs one pass");
    }
});
