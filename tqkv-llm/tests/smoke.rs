//! A 256-token perplexity check of the whole path on real text: the f32
//! cache against KQV n = 4. Asserts only what must hold: finite figures,
//! the f16 cache nearly the f32 one, KQV n = 4 close to f32 (within a
//! generous bound) and the 2-bit baseline clearly worse than KQV n = 4.

mod common;

use tqkv_llm::perplexity::score;
use tqkv_llm::{CacheKind, Preset, TextTokenizer};

#[test]
fn perplexity_of_256_tokens_on_f32_f16_and_compressed_caches() {
    let model = common::model();
    let ids = TextTokenizer::from_model(&model)
        .unwrap()
        .encode(&common::tutorial())
        .unwrap();
    let ids = &ids[..256];
    let layers = model.config.layers;
    let reference = score(&model, ids, 256, &|_| CacheKind::F32, None, true).unwrap();
    let f32_ppl = reference.perplexity();
    assert_eq!(reference.nll.len(), 127);
    // SmolLM2-135M on the Python tutorial: single digits to a few tens.
    assert!(
        f32_ppl.is_finite() && f32_ppl > 2.0 && f32_ppl < 60.0,
        "{f32_ppl}"
    );
    let run = |spec: &str| {
        let p = Preset::parse(spec).unwrap();
        let s = score(
            &model,
            ids,
            256,
            &|l| p.kind(l, layers),
            Some(&reference),
            false,
        )
        .unwrap();
        let kl = s.kl.iter().sum::<f64>() / s.kl.len() as f64;
        (s.perplexity(), kl)
    };
    let (f16_ppl, f16_kl) = run("f16");
    assert!(
        (f16_ppl / f32_ppl - 1.0).abs() < 0.01 && f16_kl < 1e-3,
        "{f16_ppl} {f16_kl}"
    );
    let (kqv_ppl, kqv_kl) = run("kqv4");
    assert!(
        kqv_ppl.is_finite() && kqv_ppl / f32_ppl < 1.5,
        "{kqv_ppl} vs {f32_ppl}"
    );
    assert!(kqv_kl > f16_kl && kqv_kl < 0.5, "{kqv_kl}");
    let (_, kv2_kl) = run("kv2");
    assert!(kv2_kl > 2.0 * kqv_kl, "{kv2_kl} vs {kqv_kl}");
}
