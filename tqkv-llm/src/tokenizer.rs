//! The model's byte-level BPE tokenizer, built with the `tokenizers` crate
//! from the vocabulary and merges stored in the GGUF file (no
//! `tokenizer.json` needed).

use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper, Tokenizer};

use crate::{LlmError, Model};

/// GGUF token type of control tokens (`<|endoftext|>`, `<|im_start|>` …).
const CONTROL: i32 = 3;

/// Text to token ids and back.
pub struct TextTokenizer {
    inner: Tokenizer,
}

impl TextTokenizer {
    /// The tokenizer of `model`: a GPT-2-style byte-level BPE whose
    /// pre-tokenizer splits digits one by one (GGUF `tokenizer.ggml.pre`
    /// `"smollm"`), control tokens matched whole.
    ///
    /// # Errors
    /// [`LlmError::Unsupported`] for another tokenizer model or missing
    /// arrays; [`LlmError::Tokenizer`] if the BPE cannot be built.
    pub fn from_model(model: &Model) -> Result<TextTokenizer, LlmError> {
        let strings = |key: &str| -> Result<Vec<String>, LlmError> {
            let missing = || LlmError::Unsupported(format!("{key} is missing or not strings"));
            model
                .metadata(key)
                .ok_or_else(missing)?
                .to_vec()
                .map_err(|_| missing())?
                .iter()
                .map(|v| v.to_string().cloned().map_err(|_| missing()))
                .collect()
        };
        let kind = model
            .metadata("tokenizer.ggml.model")
            .and_then(|v| v.to_string().ok());
        if kind.map(String::as_str) != Some("gpt2") {
            return Err(LlmError::Unsupported(format!(
                "tokenizer model {kind:?} (not gpt2 BPE)"
            )));
        }
        let pre = model
            .metadata("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok());
        let split_digits = match pre.map(String::as_str) {
            Some("smollm") => true,
            Some("gpt2") | None => false,
            Some(other) => {
                return Err(LlmError::Unsupported(format!("pre-tokenizer {other:?}")));
            }
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges = strings("tokenizer.ggml.merges")?
            .into_iter()
            .map(|m| match m.split_once(' ') {
                Some((a, b)) => Ok((a.to_owned(), b.to_owned())),
                None => Err(LlmError::Unsupported(format!(
                    "merge {m:?} is not two tokens"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let types: Vec<i32> = model
            .metadata("tokenizer.ggml.token_type")
            .and_then(|v| v.to_vec().ok())
            .map(|v| v.iter().map(|t| t.to_i32().unwrap_or(1)).collect())
            .unwrap_or_default();
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| LlmError::Tokenizer(e.to_string()))?;
        let mut inner = Tokenizer::new(bpe);
        let byte_level = ByteLevel::new(false, true, true);
        let mut pre_tokenizers = Vec::new();
        if split_digits {
            pre_tokenizers.push(PreTokenizerWrapper::Digits(Digits::new(true)));
        }
        pre_tokenizers.push(PreTokenizerWrapper::ByteLevel(byte_level));
        inner.with_pre_tokenizer(Some(Sequence::new(pre_tokenizers)));
        inner.with_decoder(Some(byte_level));
        let control: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|&(_, &ty)| ty == CONTROL)
            .map(|(t, _)| AddedToken::from(t.clone(), true))
            .collect();
        inner.add_special_tokens(&control);
        Ok(TextTokenizer { inner })
    }

    /// The ids of `text` (no BOS: this model's GGUF says
    /// `add_bos_token = false`).
    ///
    /// # Errors
    /// [`LlmError::Tokenizer`].
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| LlmError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The text of `ids` (control tokens included).
    ///
    /// # Errors
    /// [`LlmError::Tokenizer`].
    pub fn decode(&self, ids: &[u32]) -> Result<String, LlmError> {
        self.inner
            .decode(ids, false)
            .map_err(|e| LlmError::Tokenizer(e.to_string()))
    }
}
