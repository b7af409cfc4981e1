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
//! | `kqv4ref` | any of the compressed specs, attended by decoding every token to f32 and running plain softmax attention: the reference the fused decode must match |
//! | `kqv4@s7` | any of the compressed specs with its rotations and sketches drawn from seed 7 (another realisation of the same quantiser) |

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
            "cache spec {spec:?}: expected f32, f16, kv|kqv|qkqv then bits 2–8 (e.g. kqv4), or k<b|m|p><bits>v<b|m|p><bits> (e.g. km4vm3), optionally then g (Gaussian projection), optionally then i8 (int8 key scoring) or ref (attention over the decoded cache), optionally then @s<seed>"
        ))
    };
    match spec {
        "f32" => return Ok(CacheKind::F32),
        "f16" => return Ok(CacheKind::F16),
        _ => {}
    }
    let (spec, seed) = match spec.rsplit_once("@s") {
        Some((s, n)) => (s, Some(n.parse::<u64>().map_err(|_| bad())?)),
        None => (spec, None),
    };
    let (spec, decoded) = match spec.strip_suffix("ref") {
        Some(s) => (s, true),
        None => (spec, false),
    };
    let (spec, scoring) = match spec.strip_suffix("i8") {
        Some(s) if !decoded => (s, Scoring::Int8),
        _ => (spec, Scoring::Exact),
    };
    let compressed = |config: CacheConfig| {
        let config = match seed {
            Some(s) => config.with_seed(s),
            None => config,
        };
        if decoded {
            CacheKind::Decoded(config)
        } else {
            CacheKind::Tqkv(config, scoring)
        }
    };
    let (spec, projection) = match spec.strip_suffix('g') {
        Some(s) => (s, Projection::Gaussian),
        None => (spec, Projection::Hadamard),
    };
    if let Some(config) = sides(spec, projection) {
        config
            .bytes_needed()
            .map_err(|e| LlmError::Invalid(format!("{}: {e}", bad())))?;
        return Ok(compressed(config));
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
    Ok(compressed(config))
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

    impl CacheKind {
        fn with_seed_for_test(self, seed: u64) -> CacheKind {
            match self {
                CacheKind::Tqkv(c, s) => CacheKind::Tqkv(c.with_seed(seed), s),
                CacheKind::Decoded(c) => CacheKind::Decoded(c.with_seed(seed)),
                other => other,
            }
        }
    }

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
        for bad in [
            "i8",
            "kqvi8",
            "f32i8",
            "kqv4i8g",
            "kqv4i",
            "ref",
            "f32ref",
            "kqv4refi8",
            "kqv4i8ref",
        ] {
            assert!(Preset::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ref_decodes_and_a_seed_redraws_the_same_quantiser() {
        let kqv4 = match Preset::parse("kqv4").unwrap().body {
            CacheKind::Tqkv(c, _) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            Preset::parse("kqv4ref").unwrap().body,
            CacheKind::Decoded(kqv4)
        );
        let seeded = Preset::parse("kqv4@s7").unwrap().body;
        assert_eq!(seeded, CacheKind::Tqkv(kqv4.with_seed(7), Scoring::Exact));
        assert_ne!(kqv4.with_seed(7), kqv4);
        assert_eq!(
            Preset::parse("km5vm3i8@s2").unwrap().body,
            Preset::parse("km5vm3i8")
                .unwrap()
                .body
                .with_seed_for_test(2)
        );
        assert_eq!(
            Preset::parse("kqv4ref@s3").unwrap().body,
            CacheKind::Decoded(kqv4.with_seed(3))
        );
        for bad in ["kqv4@s", "kqv4@sx", "f32@s1", "kqv4@s1ref"] {
            assert!(Preset::parse(bad).is_err(), "{bad}");
        }
    }
}
