//! A 256-token perplexity check of the whole path on real text: the f32
//! cache against KQV n = 4. Asserts only what must hold: finite figures,
//! the f16 cache nearly the f32 one, KQV n = 4 close to f32 (within a
//! generous bound) and the 2-bit baseline clearly worse than KQV n = 4.

mod common;

use tqkv_llm::perplexity::score;
use tqkv_llm::{CacheKind, Preset};

#[test]
fn perplexity_of_256_tokens_on_f32_f16_and_compressed_caches() {
    let model = common::model();
    let ids = &common::tutorial_tokens(&model, 256);
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

/// The fused decode against the same cache decoded to f32 and attended the
/// plain way (`ref`), end to end. Only the first and last layers are
/// compressed: with every layer compressed the two cannot be compared, as
/// one rounding difference in a layer's output moves some coordinate of the
/// next layer across a quantisation threshold and such flips compound (a
/// one-ulp change of the query in the decoded path alone moves the
/// next-token distributions as far as 4-bit quantisation itself does).
/// With f32 layers between, the first layer's codes are the same in both
/// and only the last layer can flip, so the two must be far nearer to each
/// other than to the f32 cache.
#[test]
fn the_fused_decode_is_attention_over_the_decoded_cache_end_to_end() {
    let model = common::model();
    let ids = &common::tutorial_tokens(&model, 128);
    let layers = model.config.layers;
    let scores = |spec: &str, reference: Option<&tqkv_llm::perplexity::Scores>| {
        let p = Preset::parse(spec).unwrap();
        score(&model, ids, 128, &|l| p.kind(l, layers), reference, true).unwrap()
    };
    let mean = |s: &tqkv_llm::perplexity::Scores| s.kl.iter().sum::<f64>() / s.kl.len() as f64;
    let f32_cache = scores("f32", None);
    for spec in ["kqv4", "qkqv3", "km5vm3"] {
        let edges = format!("f32+edge:{spec}");
        let quantised = mean(&scores(&edges, Some(&f32_cache)));
        let decoded = scores(&format!("{edges}ref"), None);
        let fused = mean(&scores(&edges, Some(&decoded)));
        eprintln!("{spec}: KL(f32 ‖ fused) {quantised:.2e}, KL(ref ‖ fused) {fused:.2e}");
        assert!(quantised > 1e-4, "{spec}: {quantised}");
        assert!(
            fused.abs() < 1e-3 * quantised,
            "{spec}: {fused} against {quantised}"
        );
    }
}
