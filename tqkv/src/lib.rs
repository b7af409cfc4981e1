//! # tqkv
//!
//! SIMD kernels for TurboQuant-style KV-cache quantisation, for embedded and
//! kernel-level LLM inference runtimes: `no_std`, no allocation in kernels,
//! never a panic or undefined behaviour on caller input, and bit-exact
//! results across CPUs where the arithmetic allows it.
//!
//! The pieces, from the bottom up (`ARCHITECTURE.md` in the repository
//! explains the maths, the cache layout and the backend rules):
//!
//! - [`Backend`]: scalar, AVX2, AVX-512 and NEON, detected once per process;
//! - [`wht`]: the in-place fast Walsh–Hadamard transform, bit-exact on every
//!   backend, single and batched;
//! - [`Rotation`]: the seeded orthonormal randomised Hadamard rotation, at any
//!   power of two and any multiple of 8 up to 4096 (80, 96, 112, 192, 576, …);
//! - [`rng`]: the documented generator behind every random quantity;
//! - [`Codebook`], [`codebook`] and [`pack`]: Lloyd–Max codebooks for rotated
//!   coordinates, bit packing, and quantise / dequantise / dot kernels on
//!   packed codes, on every backend;
//! - [`qjl`]: 1-bit QJL sketches (Gaussian or Hadamard projection), the
//!   inner-product estimator, and popcount / signed-sum kernels;
//! - [`quant`]: the MSE, prod and baseline vector quantisers, the schemes
//!   and the compressed [`KvCache`];
//! - [`attention`]: attention decode straight on the compressed cache;
//! - `capi` (feature `capi`): the C ABI, declared in `include/tqkv.h`.
//!
//! The quality measures and the evaluation live in the `tqkv-eval` crate
//! of the same repository.
//!
//! ```
//! use tqkv::{wht, Backend, Rotation};
//!
//! let mut x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
//! wht::fwht(&mut x)?;
//! assert_eq!(x[0], 36.0);
//!
//! let rot = Rotation::new(8, 0x5eed)?;
//! rot.rotate(&mut x)?;
//! println!("rotated on {}", Backend::detect());
//! # Ok::<(), tqkv::Error>(())
//! ```
//!
//! ## Features
//!
//! - `std` (default): runtime detection through `std`; implies `alloc`.
//! - `parallel` (default): `attention::attend_parallel` and
//!   `KvCache::push_batch_parallel`, one decode or one prefill's encoding
//!   shared out over rayon's thread pool; implies `std`.
//! - `capi`: the C ABI (module `capi`, declared in `include/tqkv.h`).
//! - `alloc`: reserved for types that allocate (none yet: every type of
//!   the crate works in caller memory).
//! - `soft-float`: `libm` in pure software, for Miri.
//!
//! Without `std`, x86_64 detection reads `cpuid`/`xgetbv` itself.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
// Caller input must never reach a panic: no unwrap/expect/panic! in library
// code (tests may use them). Slice indexing cannot be banned wholesale in
// kernels; it is audited instead (every index is bounded by a length check
// at the public entry point, and the fuzz targets exercise those checks).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::todo,
        clippy::unimplemented,
        clippy::unreachable,
        clippy::exit
    )
)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

pub mod attention;
mod backend;
#[cfg(feature = "capi")]
#[cfg_attr(docsrs, doc(cfg(feature = "capi")))]
pub mod capi;
pub mod codebook;
mod error;
mod loops;
pub mod qjl;
pub mod quant;
pub mod rng;
#[cfg(feature = "parallel")]
mod split;
mod stack;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod vector;
pub mod wht;

/// The unit tests' proptest settings: 256 cases, and few under Miri, which
/// runs the scalar instances only and has no file system for proptest's
/// record of failures.
#[cfg(test)]
pub(crate) fn proptest_config() -> proptest::prelude::ProptestConfig {
    let mut config =
        proptest::prelude::ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 });
    if cfg!(miri) {
        config.failure_persistence = None;
    }
    config
}

pub use backend::Backend;
pub use codebook::Codebook;
pub use codebook::pack;
pub use error::Error;
pub use quant::KvCache;
pub use wht::{Rotation, RotationKind};

/// The README's examples run as doc tests too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
