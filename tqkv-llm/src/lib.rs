//! SmolLM2-135M (or any Llama-architecture GGUF model) decoding on a `tqkv`
//! compressed KV cache: the end-to-end measure of what the cache costs a
//! real model (perplexity, KL of the next-token distribution, top-1
//! agreement, tokens per second).
//!
//! The weights and the quantised matmuls are candle's; the forward pass,
//! the caches and the measurement are ours ([`Session`]).

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
pub use model::{Config, Model};
pub use preset::Preset;
pub use tokenizer::TextTokenizer;
