//! Named cache configurations: what each layer's cache stores.
//!
//! | spec | meaning |
//! | --- | --- |
//! | `f32`, `f16` | uncompressed caches |
//! | `kv4`, `kqv4`, `qkqv4` | the paper's schemes at n = 4 (Hadamard QJL projection) |
//! | `kqv4g` | the same with the Gaussian QJL projection |
//! | `km4vm3` | keys and values each with their own quantiser (`b` baseline, `m` MSE, `p` prod) and bits: 4-bit MSE keys, 3-bit MSE values |
//! | `kqv3+edge:kqv5` | `kqv3`, with the first and last layers as `kqv5` |
//! | `kqv4i8` | any of the compressed specs, its keys scored from 8-bit integers (`Scoring::Int8`) |

use tqkv::attention::Scoring;
use tqkv::qjl::Projection;
use tqkv::quant::{CacheConfig, QuantizerKind, QuantizerSpec, Scheme};

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
            "cache spec {spec:?}: expected f32, f16, kv|kqv|qkqv then bits 2–8 (e.g. kqv4), or k<b|m|p><bits>v<b|m|p><bits> (e.g. km4vm3), optionally then g (Gaussian projection), optionally then i8 (int8 key scoring)"
        ))
    };
    match spec {
        "f32" => return Ok(CacheKind::F32),
        "f16" => return Ok(CacheKind::F16),
        _ => {}
    }
    let (spec, scoring) = match spec.strip_suffix("i8") {
        Some(s) => (s, Scoring::Int8),
        None => (spec, Scoring::Exact),
    };
    let (spec, projection) = match spec.strip_suffix('g') {
        Some(s) => (s, Projection::Gaussian),
        None => (spec, Projection::Hadamard),
    };
    if let Some(config) = sides(spec, projection) {
        config
            .bytes_needed()
            .map_err(|e| LlmError::Invalid(format!("{}: {e}", bad())))?;
        return Ok(CacheKind::Tqkv(config, scoring));
    }
    let digits = spec.find(|c: char| c.is_ascii_digit()).ok_or_else(bad)?;
    let scheme = match &spec[..digits] {
        "kv" => Scheme::Kv,
        "kqv" => Scheme::Kqv,
        "qkqv" => Scheme::Qkqv,
        _ => return Err(bad()),
    };
    let bits: u8 = spec[digits..].parse().map_err(|_| bad())?;
    let config = CacheConfig::new(scheme, bits, 1, 64, 1).with_projection(projection);
    config
        .bytes_needed()
        .map_err(|e| LlmError::Invalid(format!("{}: {e}", bad())))?;
    Ok(CacheKind::Tqkv(config, scoring))
}

/// `k<kind><bits>v<kind><bits>` (kinds `b`, `m`, `p`), if `spec` is one.
fn sides(spec: &str, projection: Projection) -> Option<CacheConfig> {
    let side = |s: &str| -> Option<QuantizerSpec> {
        let kind = match s.as_bytes().first()? {
            b'b' => QuantizerKind::Baseline,
            b'm' => QuantizerKind::Mse,
            b'p' => QuantizerKind::Prod,
            _ => return None,
        };
        Some(QuantizerSpec::new(kind, s[1..].parse().ok()?))
    };
    let (k, v) = spec.strip_prefix('k')?.split_once('v')?;
    Some(
        CacheConfig::new(Scheme::Kqv, 4, 1, 64, 1)
            .with_keys(side(k)?)
            .with_values(side(v)?)
            .with_projection(projection),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_i8_suffix_scores_keys_from_integers() {
        let scoring = |spec: &str| match Preset::parse(spec).unwrap().body {
            CacheKind::Tqkv(c, s) => (c.projection, s),
            other => panic!("{spec}: {other:?}"),
        };
        assert_eq!(scoring("kqv4"), (Projection::Hadamard, Scoring::Exact));
        assert_eq!(scoring("kqv4i8"), (Projection::Hadamard, Scoring::Int8));
        assert_eq!(scoring("kqv4gi8"), (Projection::Gaussian, Scoring::Int8));
        assert_eq!(scoring("km5vm3i8"), (Projection::Hadamard, Scoring::Int8));
        let p = Preset::parse("kqv3i8+edge:kqv5").unwrap();
        assert_eq!(p.kind(0, 30), Preset::parse("kqv5").unwrap().body);
        assert!(matches!(p.kind(1, 30), CacheKind::Tqkv(_, Scoring::Int8)));
        for bad in ["i8", "kqvi8", "f32i8", "kqv4i8g", "kqv4i"] {
            assert!(Preset::parse(bad).is_err(), "{bad}");
        }
    }
}
