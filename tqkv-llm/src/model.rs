//! The weights of a Llama-architecture GGUF model, read with candle's GGUF
//! reader and dequantised to f32 for candle's GEMM.

use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::Path;

use candle_core::quantized::{QMatMul, QTensor, gguf_file};
use candle_core::{Device, Module, Tensor};

use crate::LlmError;

/// The shape of the model, from the GGUF metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Transformer blocks.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention: `heads / kv_heads` query
    /// heads share one).
    pub kv_heads: usize,
    /// Dimension of one head.
    pub head_dim: usize,
    /// Width of the residual stream.
    pub embed: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Longest context the model was trained for.
    pub context: usize,
    /// RoPE frequency base.
    pub rope_base: f64,
    /// RMSNorm epsilon.
    pub eps: f32,
}

impl Config {
    /// Query heads per KV head.
    pub fn group(&self) -> usize {
        self.heads / self.kv_heads
    }
}

/// How the projections hold their weights once loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Weights {
    /// Dequantised to f32: exactly the model's weights (the default, and
    /// what the quality measures use).
    #[default]
    F32,
    /// Dequantised to f16, activations rounded to f16 at each projection:
    /// half the memory traffic per decoded token (for the speed measures).
    F16,
}

/// A quantised projection `y = W·x` over rows of `x`.
pub(crate) struct Linear(QMatMul);

impl Linear {
    /// `rows` rows of `x` (row-major, `rows × in`) through the projection:
    /// `rows × out`.
    pub(crate) fn forward(&self, x: &[f32], rows: usize) -> Result<Vec<f32>, LlmError> {
        let x = Tensor::from_slice(x, (rows, x.len() / rows), &Device::Cpu)?;
        Ok(self.0.forward(&x)?.flatten_all()?.to_vec1()?)
    }
}

/// One transformer block.
pub(crate) struct Layer {
    pub(crate) attn_norm: Vec<f32>,
    pub(crate) wq: Linear,
    pub(crate) wk: Linear,
    pub(crate) wv: Linear,
    pub(crate) wo: Linear,
    pub(crate) ffn_norm: Vec<f32>,
    pub(crate) gate: Linear,
    pub(crate) up: Linear,
    pub(crate) down: Linear,
}

/// A loaded model: the weights and the tokenizer's vocabulary.
pub struct Model {
    /// The shape.
    pub config: Config,
    pub(crate) embedding: Vec<f32>,
    pub(crate) layers: Vec<Layer>,
    pub(crate) out_norm: Vec<f32>,
    pub(crate) output: Linear,
    pub(crate) content: gguf_file::Content,
}

impl Model {
    /// Loads a Llama-architecture GGUF file.
    ///
    /// # Errors
    /// [`LlmError::ModelMissing`], [`LlmError::NotGguf`],
    /// [`LlmError::Truncated`], [`LlmError::Unsupported`] (another
    /// architecture, a missing tensor or metadata key), each naming the fix.
    pub fn load(path: &Path) -> Result<Model, LlmError> {
        Model::load_with(path, Weights::F32)
    }

    /// [`load`](Self::load) with the weights held as `weights`.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn load_with(path: &Path, weights: Weights) -> Result<Model, LlmError> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LlmError::ModelMissing(path.to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        let found = file.metadata()?.len();
        let mut reader = BufReader::new(file);
        let content = gguf_file::Content::read(&mut reader).map_err(|e| LlmError::NotGguf {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let needed = tensors_end(&content);
        if needed > found {
            return Err(LlmError::Truncated {
                path: path.to_owned(),
                found,
                needed,
            });
        }
        let config = config(&content)?;
        let mut load = |name: &str| -> Result<QTensor, LlmError> {
            reader.rewind()?;
            content
                .tensor(&mut reader, name, &Device::Cpu)
                .map_err(|e| LlmError::Unsupported(format!("tensor {name}: {e}")))
        };
        let vector = |t: &QTensor| -> Result<Vec<f32>, LlmError> {
            Ok(t.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1()?)
        };
        // Candle's Q4_1 dot product has no SIMD path (and its fast repacked
        // paths need widths that are multiples of 256, which 576 is not), so
        // the weights are dequantised once to f32 and multiplied with its
        // f32 GEMM: exactly the model's weights, multi-threaded and SIMD.
        let linear = |t: QTensor| -> Result<Linear, LlmError> {
            Ok(Linear(match weights {
                Weights::F32 => QMatMul::Tensor(t.dequantize(&Device::Cpu)?),
                Weights::F16 => QMatMul::TensorF16(t.dequantize_f16(&Device::Cpu)?),
            }))
        };
        let embedding_q = load("token_embd.weight")?;
        let embedding = vector(&embedding_q)?;
        if embedding.len() != config.vocab * config.embed {
            return Err(LlmError::Unsupported(
                "token_embd.weight does not match the vocabulary and width".into(),
            ));
        }
        // Tied embeddings: without an output matrix the embedding is the head.
        let output = match content.tensor_infos.contains_key("output.weight") {
            true => load("output.weight")?,
            false => embedding_q,
        };
        let mut layers = Vec::with_capacity(config.layers);
        for l in 0..config.layers {
            let mut w = |name: &str| load(&format!("blk.{l}.{name}.weight"));
            layers.push(Layer {
                attn_norm: vector(&w("attn_norm")?)?,
                wq: linear(w("attn_q")?)?,
                wk: linear(w("attn_k")?)?,
                wv: linear(w("attn_v")?)?,
                wo: linear(w("attn_output")?)?,
                ffn_norm: vector(&w("ffn_norm")?)?,
                gate: linear(w("ffn_gate")?)?,
                up: linear(w("ffn_up")?)?,
                down: linear(w("ffn_down")?)?,
            });
        }
        Ok(Model {
            out_norm: vector(&load("output_norm.weight")?)?,
            output: linear(output)?,
            config,
            embedding,
            layers,
            content,
        })
    }

    /// A metadata value, if present.
    pub(crate) fn metadata(&self, key: &str) -> Option<&gguf_file::Value> {
        self.content.metadata.get(key)
    }
}

/// The byte where the last tensor's data ends.
fn tensors_end(content: &gguf_file::Content) -> u64 {
    content
        .tensor_infos
        .values()
        .map(|t| {
            let dtype = t.ggml_dtype;
            let bytes = t.shape.elem_count() / dtype.block_size() * dtype.type_size();
            content.tensor_data_offset + t.offset + bytes as u64
        })
        .max()
        .unwrap_or(0)
}

fn config(content: &gguf_file::Content) -> Result<Config, LlmError> {
    let get = |key: &str| {
        content
            .metadata
            .get(key)
            .ok_or_else(|| LlmError::Unsupported(format!("metadata key {key} is missing")))
    };
    let arch = get("general.architecture")?
        .to_string()
        .map_err(|_| LlmError::Unsupported("general.architecture is not a string".into()))?;
    if arch != "llama" {
        return Err(LlmError::Unsupported(format!("architecture {arch:?}")));
    }
    let int = |key: &str| -> Result<usize, LlmError> {
        get(key)?
            .to_u32()
            .map(|v| v as usize)
            .map_err(|_| LlmError::Unsupported(format!("{key} is not a u32")))
    };
    let float = |key: &str| -> Result<f32, LlmError> {
        get(key)?
            .to_f32()
            .map_err(|_| LlmError::Unsupported(format!("{key} is not an f32")))
    };
    let heads = int("llama.attention.head_count")?;
    let kv_heads = int("llama.attention.head_count_kv")?;
    let embed = int("llama.embedding_length")?;
    let vocab = get("tokenizer.ggml.tokens")?
        .to_vec()
        .map_err(|_| LlmError::Unsupported("tokenizer.ggml.tokens is not an array".into()))?
        .len();
    if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 || embed % heads != 0 {
        return Err(LlmError::Unsupported(format!(
            "{heads} query heads, {kv_heads} KV heads, width {embed}"
        )));
    }
    if int("llama.expert_count").unwrap_or(0) > 1 {
        return Err(LlmError::Unsupported("mixture of experts".into()));
    }
    let head_dim = embed / heads;
    if int("llama.rope.dimension_count").unwrap_or(head_dim) != head_dim {
        return Err(LlmError::Unsupported("partial RoPE".into()));
    }
    Ok(Config {
        layers: int("llama.block_count")?,
        heads,
        kv_heads,
        head_dim,
        embed,
        vocab,
        context: int("llama.context_length")?,
        rope_base: float("llama.rope.freq_base").unwrap_or(10_000.0) as f64,
        eps: float("llama.attention.layer_norm_rms_epsilon")?,
    })
}
