//! Named cache configurations: what each layer's cache stores.
//!
//! | spec | meaning |
//! | --- | --- |
//! | `f32`, `f16` | uncompressed caches |
//! | `kv4`, `kqv4`, `qkqv4` | the paper's schemes at n = 4 (Hadamard QJL projection) |
//! | `kqv4g` | the same with the Gaussian QJL projection |
//! | `kqv3+edge:kqv5` | `kqv3`, with the first and last layers as `kqv5` |

use tqkv::qjl::Projection;
use tqkv::quant::{CacheConfig, Scheme};

use crate::{CacheKind, LlmError};

/// A named configuration of every layer's cache.
#[derive(Clone, Debug, PartialEq)]
pub struct Preset {
    /// The spec it was parsed from.
    pub name: String,
    /// Every layer's cache but the edges.
    pub body: CacheKind,
    /// The first and last layers' cache, if it differs.
    pub edge: Option<CacheKind>,
}

impl Preset {
    /// Parses a spec (see the module docs).
    ///
    /// # Errors
    /// [`LlmError::Invalid`] naming what is not understood.
    pub fn parse(spec: &str) -> Result<Preset, LlmError> {
        let (body, edge) = match spec.split_once("+edge:") {
            Some((b, e)) => (b, Some(kind(e)?)),
            None => (spec, None),
        };
        Ok(Preset {
            name: spec.to_owned(),
            body: kind(body)?,
            edge,
        })
    }

    /// The cache of layer `layer` of `layers`.
    pub fn kind(&self, layer: usize, layers: usize) -> CacheKind {
        match self.edge {
            Some(e) if layer == 0 || layer + 1 == layers => e,
            _ => self.body,
        }
    }

    /// Bits per coordinate over all layers (side information counted).
    pub fn bits_per_coordinate(&self, dim: usize, layers: usize) -> f64 {
        (0..layers)
            .map(|l| self.kind(l, layers).bits_per_coordinate(dim))
            .sum::<f64>()
            / layers as f64
    }

    /// The family the plots draw as one line: the spec without its digits
    /// (`kqv4` → `kqv`, `kqv3+edge:kqv5` → `kqv+edge:kqv`).
    pub fn family(&self) -> String {
        self.name.chars().filter(|c| !c.is_ascii_digit()).collect()
    }
}

fn kind(spec: &str) -> Result<CacheKind, LlmError> {
    let bad = || {
        LlmError::Invalid(format!(
            "cache spec {spec:?}: expected f32, f16, or kv|kqv|qkqv then bits 2–8, optionally g (Gaussian projection), e.g. kqv4, qkqv3g"
        ))
    };
    match spec {
        "f32" => return Ok(CacheKind::F32),
        "f16" => return Ok(CacheKind::F16),
        _ => {}
    }
    let (spec, projection) = match spec.strip_suffix('g') {
        Some(s) => (s, Projection::Gaussian),
        None => (spec, Projection::Hadamard),
    };
    let digits = spec.find(|c: char| c.is_ascii_digit()).ok_or_else(bad)?;
    let scheme = match &spec[..digits] {
        "kv" => Scheme::Kv,
        "kqv" => Scheme::Kqv,
        "qkqv" => Scheme::Qkqv,
        _ => return Err(bad()),
    };
    let bits: u8 = spec[digits..].parse().map_err(|_| bad())?;
    let config = CacheConfig::new(scheme, bits, 1, 64, 1).with_projection(projection);
    config.bytes_needed().map_err(|e| LlmError::Invalid(format!("{}: {e}", bad())))?;
    Ok(CacheKind::Tqkv(config))
}
