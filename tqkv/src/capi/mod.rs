//! The C ABI (feature `capi`): `extern "C"` functions over the safe API, as
//! declared in `include/tqkv.h`.
//!
//! Rules every function follows:
//! - caller-owned memory only: nothing allocates, every output goes to a
//!   caller buffer whose length is passed and checked;
//! - the result is a [`Status`] code (0 = success), never a panic across
//!   the boundary (with `std`, every body runs under `catch_unwind` and a
//!   panic, which would be a bug, comes back as `TQKV_INTERNAL`);
//! - a null pointer is `TQKV_NULL_POINTER`, except that `(NULL, 0)` is an
//!   empty slice;
//! - opaque objects (`tqkv_codebook`, `tqkv_quantizer`,
//!   `tqkv_cache`) are fixed-size blobs in caller memory that only the
//!   `*_init`/`*_create`/`*_open` functions fill; each starts with a tag that
//!   every other function checks, so a blob that was never initialised is
//!   `TQKV_INVALID_HANDLE` rather than garbage read as an object.
//!
//! This file is the crate's FFI boundary: besides the backend files and the
//! packing internals it is the only place with `unsafe` code, all of it
//! turning caller pointers into slices under the contract stated in the
//! header (valid for the given length, not aliased by another argument
//! during the call; a cache's buffer outlives its handle and is not written
//! by the caller while the handle is in use).

#![allow(non_camel_case_types)]

mod cache;
mod codebook;
mod info;
mod memory;
mod partial;
mod quant;
mod status;
mod transform;

pub use cache::*;
pub use codebook::*;
pub use info::*;
pub use memory::{tqkv_cache, tqkv_codebook, tqkv_quantizer};
pub use partial::*;
pub use quant::*;
pub use status::*;
pub use transform::*;

use core::ffi::c_char;
use core::mem::{align_of, size_of};

use crate::qjl::Projection;
use crate::quant::{
    BaselineQuantizer, CacheConfig, MseQuantizer, NormPrecision, ProdQuantizer, Quantizer,
    QuantizerKind, QuantizerSpec, Scheme,
};
use crate::{Backend, Codebook, Error, KvCache, Rotation, attention, pack, wht};
use info::backend_of;
use memory::{
    RawBuf, TAG_CACHE, TAG_CODEBOOK, TAG_QUANTIZER, get, load, load_mut, put, raw, slice,
    slice_mut, store,
};
use quant::{kind_of, norm_of, projection_of, scheme_of};
use status::{OrStatus, run};
