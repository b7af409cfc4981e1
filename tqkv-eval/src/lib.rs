//! # tqkv-eval
//!
//! The evaluation of [`tqkv`]'s compressed KV caches: the quality measures
//! and statistics of the paper's comparison of KV, KQV and QKQV
//! ([`metrics`]), seeded synthetic attention heads ([`metrics::synth`]),
//! and the `evaluate` program that runs them over synthetic and real heads
//! through the product path (a [`tqkv::KvCache`] filled with `push`, read
//! with `tqkv::attention`).
//!
//! ```
//! use tqkv_eval::metrics::kl_attention;
//!
//! assert!(kl_attention(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0])? > 0.5);
//! # Ok::<(), tqkv::Error>(())
//! ```
#![deny(missing_docs)]

pub mod metrics;
pub mod plot;

/// The repository README's Rust examples run as doc tests here (the
/// library's own README is doc-tested by the library).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct RepositoryReadmeDoctests;
