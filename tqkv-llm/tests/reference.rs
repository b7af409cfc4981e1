//! Our forward pass against an independent implementation:
//! candle-transformers' quantised Llama, on the same GGUF. Both multiply by
//! the weights dequantised to f32 (`CANDLE_DEQUANTIZE_ALL`, which makes
//! candle-transformers do what our loader does), so the logits must agree
//! to float rounding; everything else (embedding, RMSNorm, RoPE, grouped-
//! query attention, SwiGLU, the head) is computed by each on its own.
//!
//! Needs the model: `tools/fetch_model.sh` (or `TQKV_MODEL=path`).

mod common;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use common::model_path;
use tqkv_llm::{CacheKind, Model, Session, TextTokenizer};

/// Largest |a − b| over the largest |b|.
fn relative(a: &[f32], b: &[f32]) -> f32 {
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    diff / b.iter().map(|y| y.abs()).fold(0.0, f32::max)
}

#[test]
fn logits_equal_candle_transformers_quantized_llama() {
    // SAFETY of the environment: this test binary holds this one test, so
    // no other thread reads the environment while it is set.
    unsafe { std::env::set_var("CANDLE_DEQUANTIZE_ALL", "1") };
    let path = model_path();
    let model = Model::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let tokenizer = TextTokenizer::from_model(&model).unwrap();
    let ids = tokenizer
        .encode(
            "The Python tutorial:\n\n>>> def fib(n):\n...     a, b = 0, 1\n...     while a < n:",
        )
        .unwrap();
    assert!(ids.len() >= 20, "{}", ids.len());

    let mut file = std::fs::File::open(&path).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let mut reference = ModelWeights::from_gguf(content, &mut file, &Device::Cpu).unwrap();

    // Our logits for every position: one prefill call, then the same again
    // one token at a time (they must agree too).
    let mut session = Session::new(&model, 64, |_| CacheKind::F32).unwrap();
    let prefill = session.forward(&ids, 0).unwrap();
    let vocab = model.config.vocab;
    let mut stepped = Session::new(&model, 64, |_| CacheKind::F32).unwrap();
    let mut worst: f32 = 0.0;
    for (p, &id) in ids.iter().enumerate() {
        let x = Tensor::new(&[id], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let theirs: Vec<f32> = reference
            .forward(&x, p)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let ours = &prefill[p * vocab..(p + 1) * vocab];
        let step = stepped.forward(&[id], 0).unwrap();
        let r = relative(ours, &theirs);
        assert!(r < 1e-3, "position {p}: relative difference {r}");
        assert!(
            relative(&step, &theirs) < 1e-3,
            "position {p}, one token at a time"
        );
        worst = worst.max(r);
    }
    // The two are not trivially the same computation: some rounding shows.
    assert!(worst > 0.0);
    eprintln!("largest relative logit difference: {worst:e}");
}
