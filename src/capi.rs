//! The C ABI (feature `capi`): `extern "C"` functions over the safe API, as
//! declared in `include/turbokv.h`.
//!
//! Rules every function follows:
//! - caller-owned memory only: nothing allocates, every output goes to a
//!   caller buffer whose length is passed and checked;
//! - the result is a [`Status`] code (0 = success), never a panic across
//!   the boundary (with `std`, every body runs under `catch_unwind` and a
//!   panic, which would be a bug, comes back as `TURBOKV_INTERNAL`);
//! - a null pointer is `TURBOKV_NULL_POINTER`, except that `(NULL, 0)` is an
//!   empty slice;
//! - opaque objects (`turbokv_codebook`, `turbokv_quantizer`,
//!   `turbokv_cache`) are fixed-size blobs in caller memory that only the
//!   `*_init`/`*_create`/`*_open` functions fill; each starts with a tag that
//!   every other function checks, so a blob that was never initialised is
//!   `TURBOKV_INVALID_HANDLE` rather than garbage read as an object.
//!
//! This file is the crate's FFI boundary: besides the backend files and the
//! packing internals it is the only place with `unsafe` code, all of it
//! turning caller pointers into slices under the contract stated in the
//! header (valid for the given length, not aliased by another argument
//! during the call; a cache's buffer outlives its handle and is not written
//! by the caller while the handle is in use).

#![allow(non_camel_case_types)]

use core::ffi::c_char;
use core::mem::{align_of, size_of};

use crate::qjl::Projection;
use crate::quant::{
    BaselineQuantizer, CacheConfig, MseQuantizer, NormPrecision, ProdQuantizer, Quantizer, Scheme,
};
use crate::{Backend, Codebook, Error, KvCache, Rotation, attention, codebook, pack, wht};

/// A status code: 0 is success, anything else names the failure.
pub type Status = i32;

/// Success.
pub const TURBOKV_OK: Status = 0;
/// A transform length is not a power of two.
pub const TURBOKV_NOT_POWER_OF_TWO: Status = 1;
/// A length exceeds the largest supported one.
pub const TURBOKV_TOO_LONG: Status = 2;
/// A buffer length does not match what the operation needs.
pub const TURBOKV_LENGTH_MISMATCH: Status = 3;
/// A batch is not a whole number of rows.
pub const TURBOKV_RAGGED_ROWS: Status = 4;
/// The requested backend cannot run here.
pub const TURBOKV_BACKEND_UNAVAILABLE: Status = 5;
/// A code width outside 1..=8 (or a budget outside 2..=8).
pub const TURBOKV_INVALID_BITS: Status = 6;
/// An unsupported dimension (or head index).
pub const TURBOKV_INVALID_DIM: Status = 7;
/// An output or input buffer is too short.
pub const TURBOKV_BUFFER_TOO_SHORT: Status = 8;
/// An unsupported sketch length.
pub const TURBOKV_INVALID_SKETCH_BITS: Status = 9;
/// NaN or infinity in input that must be finite (or an overflowing norm).
pub const TURBOKV_NON_FINITE: Status = 10;
/// Bytes that are not a valid cache.
pub const TURBOKV_CORRUPT_CACHE: Status = 11;
/// The cache is full.
pub const TURBOKV_CACHE_FULL: Status = 12;
/// An index does not fit in the code width.
pub const TURBOKV_INDEX_OUT_OF_RANGE: Status = 13;
/// A parameter out of range (an unknown enum value, …).
pub const TURBOKV_INVALID_PARAMETER: Status = 14;
/// A required pointer is null.
pub const TURBOKV_NULL_POINTER: Status = 15;
/// An opaque object that was not initialised by its `init` function.
pub const TURBOKV_INVALID_HANDLE: Status = 16;
/// A panic inside the library (a bug; never caused by input).
pub const TURBOKV_INTERNAL: Status = 17;

fn status_of(e: Error) -> Status {
    match e {
        Error::NotPowerOfTwo { .. } => TURBOKV_NOT_POWER_OF_TWO,
        Error::TooLong { .. } => TURBOKV_TOO_LONG,
        Error::LengthMismatch { .. } => TURBOKV_LENGTH_MISMATCH,
        Error::RaggedRows { .. } => TURBOKV_RAGGED_ROWS,
        Error::BackendUnavailable(_) => TURBOKV_BACKEND_UNAVAILABLE,
        Error::InvalidBits { .. } => TURBOKV_INVALID_BITS,
        Error::InvalidDim { .. } => TURBOKV_INVALID_DIM,
        Error::BufferTooShort { .. } => TURBOKV_BUFFER_TOO_SHORT,
        Error::InvalidSketchBits { .. } => TURBOKV_INVALID_SKETCH_BITS,
        Error::NonFinite => TURBOKV_NON_FINITE,
        Error::CorruptCache(_) => TURBOKV_CORRUPT_CACHE,
        Error::CacheFull { .. } => TURBOKV_CACHE_FULL,
        Error::IndexOutOfRange { .. } => TURBOKV_INDEX_OUT_OF_RANGE,
        Error::InvalidParameter(_) => TURBOKV_INVALID_PARAMETER,
    }
}

/// Runs `f`, mapping its error to a status; with `std`, a panic becomes
/// `TURBOKV_INTERNAL` instead of unwinding into C.
fn run(f: impl FnOnce() -> Result<(), Status>) -> Status {
    #[cfg(feature = "std")]
    let r =
        std::panic::catch_unwind(core::panic::AssertUnwindSafe(f)).unwrap_or(Err(TURBOKV_INTERNAL));
    #[cfg(not(feature = "std"))]
    let r = f();
    match r {
        Ok(()) => TURBOKV_OK,
        Err(s) => s,
    }
}

trait OrStatus<T> {
    fn st(self) -> Result<T, Status>;
}

impl<T> OrStatus<T> for Result<T, Error> {
    fn st(self) -> Result<T, Status> {
        self.map_err(status_of)
    }
}

/// `(ptr, len)` as a slice; `(NULL, 0)` is empty, `(NULL, n > 0)` an error.
///
/// # Safety
/// A non-null `ptr` is valid for reads of `len` values for `'a`.
unsafe fn slice<'a, T>(ptr: *const T, len: usize) -> Result<&'a [T], Status> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(TURBOKV_NULL_POINTER)
        };
    }
    // SAFETY: non-null and valid for `len` reads: the caller's promise.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// As [`slice`], mutable.
///
/// # Safety
/// A non-null `ptr` is valid for reads and writes of `len` values for `'a`
/// and not aliased during that time.
unsafe fn slice_mut<'a, T>(ptr: *mut T, len: usize) -> Result<&'a mut [T], Status> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&mut [])
        } else {
            Err(TURBOKV_NULL_POINTER)
        };
    }
    // SAFETY: non-null, valid and unaliased for `len` values: the caller's
    // promise.
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

/// Writes `v` through an output pointer.
///
/// # Safety
/// A non-null `out` is valid for one write of `T`.
unsafe fn put<T>(out: *mut T, v: T) -> Result<(), Status> {
    if out.is_null() {
        return Err(TURBOKV_NULL_POINTER);
    }
    // SAFETY: non-null and valid for a write: the caller's promise.
    unsafe { out.write(v) };
    Ok(())
}

fn backend_of(b: i32) -> Result<Backend, Status> {
    match b {
        0 => Ok(Backend::Scalar),
        1 => Ok(Backend::Avx2),
        2 => Ok(Backend::Avx512),
        3 => Ok(Backend::Neon),
        _ => Err(TURBOKV_INVALID_PARAMETER),
    }
}

fn backend_id(b: Backend) -> i32 {
    match b {
        Backend::Scalar => 0,
        Backend::Avx2 => 1,
        Backend::Avx512 => 2,
        Backend::Neon => 3,
    }
}

// ------------------------------------------------------------------ opaque objects

/// Tags at the start of each initialised opaque object.
const TAG_CODEBOOK: u64 = 0x5442_4b56_4342_0001;
const TAG_QUANTIZER: u64 = 0x5442_4b56_515a_0001;
const TAG_CACHE: u64 = 0x5442_4b56_4341_0001;

/// What an opaque blob holds once initialised.
#[repr(C)]
struct Slot<T> {
    tag: u64,
    value: T,
}

/// A codebook in caller memory (`TURBOKV_CODEBOOK_WORDS` 64-bit words).
#[repr(C)]
pub struct turbokv_codebook {
    opaque: [u64; 520],
}

/// A quantiser in caller memory.
#[repr(C)]
pub struct turbokv_quantizer {
    opaque: [u64; 536],
}

/// A cache handle in caller memory (the cache's bytes live in a separate
/// caller buffer).
#[repr(C)]
pub struct turbokv_cache {
    opaque: [u64; 1080],
}

/// A caller buffer seen as bytes (the handle's view of a cache's memory).
struct RawBuf {
    ptr: *mut u8,
    len: usize,
}

impl AsRef<[u8]> for RawBuf {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr` is non-null and valid for `len` bytes for the
        // handle's lifetime, and not written by the caller meanwhile (the
        // contract of turbokv_cache_create/open).
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl AsMut<[u8]> for RawBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_ref`; `&mut self` makes this the only view.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

// Every object fits its blob, and the blobs' u64 words align it.
const _: () = {
    assert!(size_of::<Slot<Codebook>>() <= size_of::<turbokv_codebook>());
    assert!(size_of::<Slot<Quantizer>>() <= size_of::<turbokv_quantizer>());
    assert!(size_of::<Slot<KvCache<RawBuf>>>() <= size_of::<turbokv_cache>());
    assert!(align_of::<Slot<Codebook>>() <= align_of::<u64>());
    assert!(align_of::<Slot<Quantizer>>() <= align_of::<u64>());
    assert!(align_of::<Slot<KvCache<RawBuf>>>() <= align_of::<u64>());
};

/// Stores `value` in the blob at `out` behind `tag`.
///
/// # Safety
/// A non-null `out` points to a writable blob at least as large and aligned
/// as `Slot<T>` (checked at compile time for the blob types).
unsafe fn store<B, T>(out: *mut B, tag: u64, value: T) -> Result<(), Status> {
    if out.is_null() {
        return Err(TURBOKV_NULL_POINTER);
    }
    // SAFETY: the blob is large and aligned enough (compile-time checks
    // above) and writable: the caller's promise. `write` does not read or
    // drop the old contents.
    unsafe { out.cast::<Slot<T>>().write(Slot { tag, value }) };
    Ok(())
}

/// The object in the blob at `p`, if its tag says it was initialised.
///
/// # Safety
/// A non-null `p` points to a readable blob at least as large as `Slot<T>`
/// that, if it starts with `tag`, was filled by [`store`] with a `T`.
unsafe fn load<'a, B, T>(p: *const B, tag: u64) -> Result<&'a T, Status> {
    if p.is_null() {
        return Err(TURBOKV_NULL_POINTER);
    }
    let slot = p.cast::<Slot<T>>();
    // SAFETY: the blob is readable and aligned for u64 (caller's promise);
    // the tag is its first word.
    let t = unsafe { (*slot).tag };
    if t != tag {
        return Err(TURBOKV_INVALID_HANDLE);
    }
    // SAFETY: the tag matches, so `store` wrote a valid `T` here.
    Ok(unsafe { &(*slot).value })
}

/// As [`load`], mutable.
///
/// # Safety
/// As [`load`], and the blob is writable and not aliased during `'a`.
unsafe fn load_mut<'a, B, T>(p: *mut B, tag: u64) -> Result<&'a mut T, Status> {
    if p.is_null() {
        return Err(TURBOKV_NULL_POINTER);
    }
    let slot = p.cast::<Slot<T>>();
    // SAFETY: as in `load`.
    let t = unsafe { (*slot).tag };
    if t != tag {
        return Err(TURBOKV_INVALID_HANDLE);
    }
    // SAFETY: as in `load`; the caller does not alias the blob.
    Ok(unsafe { &mut (*slot).value })
}

// ------------------------------------------------------------------ info

/// The library version, `"MAJOR.MINOR.PATCH"`, NUL-terminated, static.
#[unsafe(no_mangle)]
pub extern "C" fn turbokv_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// A static NUL-terminated description of `status` (`"unknown status"` for
/// an unknown code).
#[unsafe(no_mangle)]
pub extern "C" fn turbokv_status_str(status: Status) -> *const c_char {
    let s: &'static str = match status {
        TURBOKV_OK => "ok\0",
        TURBOKV_NOT_POWER_OF_TWO => "length is not a power of two\0",
        TURBOKV_TOO_LONG => "length exceeds the maximum\0",
        TURBOKV_LENGTH_MISMATCH => "buffer length does not match\0",
        TURBOKV_RAGGED_ROWS => "batch is not a whole number of rows\0",
        TURBOKV_BACKEND_UNAVAILABLE => "backend not available on this CPU\0",
        TURBOKV_INVALID_BITS => "bits or budget out of range\0",
        TURBOKV_INVALID_DIM => "dimension or head not supported\0",
        TURBOKV_BUFFER_TOO_SHORT => "buffer too short\0",
        TURBOKV_INVALID_SKETCH_BITS => "sketch length not supported\0",
        TURBOKV_NON_FINITE => "NaN, infinity or overflowing norm in input\0",
        TURBOKV_CORRUPT_CACHE => "bytes are not a valid cache\0",
        TURBOKV_CACHE_FULL => "cache is full\0",
        TURBOKV_INDEX_OUT_OF_RANGE => "index does not fit in the code width\0",
        TURBOKV_INVALID_PARAMETER => "parameter out of range\0",
        TURBOKV_NULL_POINTER => "null pointer\0",
        TURBOKV_INVALID_HANDLE => "object not initialised\0",
        TURBOKV_INTERNAL => "internal error (a bug in turbokv)\0",
        _ => "unknown status\0",
    };
    s.as_ptr().cast()
}

/// The best backend of this CPU: 0 scalar, 1 AVX2, 2 AVX-512, 3 NEON.
#[unsafe(no_mangle)]
pub extern "C" fn turbokv_backend_detect() -> i32 {
    backend_id(Backend::detect())
}

/// 1 if `backend` can run here, 0 if not (or unknown).
#[unsafe(no_mangle)]
pub extern "C" fn turbokv_backend_is_available(backend: i32) -> i32 {
    backend_of(backend).is_ok_and(|b| b.is_available()) as i32
}

/// The backend's static NUL-terminated name, or NULL if unknown.
#[unsafe(no_mangle)]
pub extern "C" fn turbokv_backend_name(backend: i32) -> *const c_char {
    match backend_of(backend) {
        Ok(Backend::Scalar) => c"scalar".as_ptr(),
        Ok(Backend::Avx2) => c"avx2".as_ptr(),
        Ok(Backend::Avx512) => c"avx512".as_ptr(),
        Ok(Backend::Neon) => c"neon".as_ptr(),
        Err(_) => core::ptr::null(),
    }
}

// ------------------------------------------------------------------ WHT, rotation

/// In-place unnormalised Walsh–Hadamard transform of `x[0..n]`.
///
/// # Safety
/// `x` is valid for `n` floats (or NULL with `n` = 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_fwht(x: *mut f32, n: usize) -> Status {
    // SAFETY: the caller's contract (header).
    run(|| wht::fwht(unsafe { slice_mut(x, n) }?).st())
}

/// [`turbokv_fwht`] on a chosen backend.
///
/// # Safety
/// As [`turbokv_fwht`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_fwht_on(backend: i32, x: *mut f32, n: usize) -> Status {
    // SAFETY: the caller's contract (header).
    run(|| wht::fwht_on(backend_of(backend)?, unsafe { slice_mut(x, n) }?).st())
}

/// The transform of every `len`-long row of `x[0..total]`.
///
/// # Safety
/// `x` is valid for `total` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_fwht_rows(x: *mut f32, total: usize, len: usize) -> Status {
    // SAFETY: the caller's contract (header).
    run(|| wht::fwht_rows(unsafe { slice_mut(x, total) }?, len).st())
}

/// `x ← H·D·x/√dim`, the seeded rotation (`dim` a power of two).
///
/// # Safety
/// `x` is valid for `dim` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_rotate(x: *mut f32, dim: usize, seed: u64) -> Status {
    run(|| {
        let rot = Rotation::new(dim, seed).st()?;
        // SAFETY: the caller's contract (header).
        rot.rotate(unsafe { slice_mut(x, dim) }?).st()
    })
}

/// The inverse of [`turbokv_rotate`] with the same seed.
///
/// # Safety
/// `x` is valid for `dim` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_unrotate(x: *mut f32, dim: usize, seed: u64) -> Status {
    run(|| {
        let rot = Rotation::new(dim, seed).st()?;
        // SAFETY: the caller's contract (header).
        rot.unrotate(unsafe { slice_mut(x, dim) }?).st()
    })
}

// ------------------------------------------------------------------ packing, codebooks

/// Bytes of `n` codes of `bits` bits (bits outside 1..=8 count as 8).
#[unsafe(no_mangle)]
pub extern "C" fn turbokv_packed_len(n: usize, bits: u8) -> usize {
    pack::packed_len(n, bits)
}

/// Packs `indices[0..n]` into `out[0..out_len]`.
///
/// # Safety
/// The pointers are valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_pack(
    bits: u8,
    indices: *const u8,
    n: usize,
    out: *mut u8,
    out_len: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (i, o) = unsafe { (slice(indices, n)?, slice_mut(out, out_len)?) };
        pack::pack(bits, i, o).st().map(|_| ())
    })
}

/// Unpacks `n` codes from `packed[0..packed_len]` into `out[0..n]`.
///
/// # Safety
/// The pointers are valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_unpack(
    bits: u8,
    packed: *const u8,
    packed_len: usize,
    out: *mut u8,
    n: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (p, o) = unsafe { (slice(packed, packed_len)?, slice_mut(out, n)?) };
        pack::unpack(bits, p, o).st()
    })
}

/// Fills `cb` with the Lloyd–Max codebook of a rotated coordinate.
///
/// # Safety
/// `cb` points to a writable `turbokv_codebook`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_codebook_lloyd_max(
    cb: *mut turbokv_codebook,
    dim: usize,
    bits: u8,
) -> Status {
    run(|| {
        let c = Codebook::lloyd_max(dim, bits).st()?;
        // SAFETY: the caller's contract (header).
        unsafe { store(cb, TAG_CODEBOOK, c) }
    })
}

/// Fills `cb` with the N(0, 1) Lloyd–Max codebook.
///
/// # Safety
/// `cb` points to a writable `turbokv_codebook`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_codebook_gaussian(cb: *mut turbokv_codebook, bits: u8) -> Status {
    run(|| {
        let c = Codebook::gaussian(bits).st()?;
        // SAFETY: the caller's contract (header).
        unsafe { store(cb, TAG_CODEBOOK, c) }
    })
}

/// Copies the sorted centroids into `out[0..cap]` and their count to
/// `*count` (`TURBOKV_BUFFER_TOO_SHORT` if `cap` is smaller), and the
/// integrated MSE of one rotated unit vector to `*mse` (may be NULL).
///
/// # Safety
/// `cb` was initialised; the pointers are valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_codebook_centroids(
    cb: *const turbokv_codebook,
    out: *mut f32,
    cap: usize,
    count: *mut usize,
    mse: *mut f64,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let c: &Codebook = unsafe { load(cb, TAG_CODEBOOK) }?;
        let cents = c.centroids();
        // SAFETY: the caller's contract (header).
        unsafe { put(count, cents.len()) }?;
        if !mse.is_null() {
            // SAFETY: non-null, the caller's contract.
            unsafe { put(mse, c.mse()) }?;
        }
        // SAFETY: the caller's contract (header).
        let o = unsafe { slice_mut(out, cap) }?;
        let dst = o.get_mut(..cents.len()).ok_or(TURBOKV_BUFFER_TOO_SHORT)?;
        dst.copy_from_slice(cents);
        Ok(())
    })
}

/// Nearest-centroid indices of `x[0..n]` into `indices[0..n]`.
///
/// # Safety
/// `cb` was initialised; the pointers are valid for `n` values.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_quantize(
    cb: *const turbokv_codebook,
    x: *const f32,
    n: usize,
    indices: *mut u8,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (c, x, o) = unsafe {
            (
                load(cb, TAG_CODEBOOK)?,
                slice(x, n)?,
                slice_mut(indices, n)?,
            )
        };
        codebook::quantize(c, x, o).st()
    })
}

/// Quantises `x[0..n]` and packs the codes into `out[0..out_len]`.
///
/// # Safety
/// `cb` was initialised; the pointers are valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_quantize_packed(
    cb: *const turbokv_codebook,
    x: *const f32,
    n: usize,
    out: *mut u8,
    out_len: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (c, x, o) = unsafe {
            (
                load(cb, TAG_CODEBOOK)?,
                slice(x, n)?,
                slice_mut(out, out_len)?,
            )
        };
        codebook::quantize_packed(c, x, o).st().map(|_| ())
    })
}

/// Centroids of the `n` packed codes in `packed[0..packed_len]` into
/// `out[0..n]`.
///
/// # Safety
/// `cb` was initialised; the pointers are valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_dequantize(
    cb: *const turbokv_codebook,
    packed: *const u8,
    packed_len: usize,
    out: *mut f32,
    n: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (c, p, o) = unsafe {
            (
                load(cb, TAG_CODEBOOK)?,
                slice(packed, packed_len)?,
                slice_mut(out, n)?,
            )
        };
        codebook::dequantize(c, p, o).st()
    })
}

/// `*result = Σ_j q[j]·c[idx_j]` over the `n` packed codes of `packed`.
///
/// # Safety
/// `cb` was initialised; the pointers are valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_dot(
    cb: *const turbokv_codebook,
    q: *const f32,
    n: usize,
    packed: *const u8,
    packed_len: usize,
    result: *mut f32,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (c, q, p) = unsafe {
            (
                load(cb, TAG_CODEBOOK)?,
                slice(q, n)?,
                slice(packed, packed_len)?,
            )
        };
        let d = codebook::dot(c, q, p).st()?;
        // SAFETY: the caller's contract (header).
        unsafe { put(result, d) }
    })
}

/// [`turbokv_dot`] of `q` against `nrows` packed rows `stride` bytes apart
/// in `rows[0..rows_len]`, into `out[0..nrows]`.
///
/// # Safety
/// `cb` was initialised; the pointers are valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_dot_rows(
    cb: *const turbokv_codebook,
    q: *const f32,
    n: usize,
    rows: *const u8,
    rows_len: usize,
    stride: usize,
    out: *mut f32,
    nrows: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (c, q, r, o) = unsafe {
            (
                load(cb, TAG_CODEBOOK)?,
                slice(q, n)?,
                slice(rows, rows_len)?,
                slice_mut(out, nrows)?,
            )
        };
        codebook::dot_rows(c, q, r, stride, o).st()
    })
}

// ------------------------------------------------------------------ quantisers

fn projection_of(p: u32) -> Result<Projection, Status> {
    match p {
        0 => Ok(Projection::Gaussian),
        1 => Ok(Projection::Hadamard),
        _ => Err(TURBOKV_INVALID_PARAMETER),
    }
}

fn norm_of(n: u32) -> Result<NormPrecision, Status> {
    match n {
        0 => Ok(NormPrecision::F16),
        1 => Ok(NormPrecision::F32),
        _ => Err(TURBOKV_INVALID_PARAMETER),
    }
}

fn scheme_of(s: u32) -> Result<Scheme, Status> {
    match s {
        0 => Ok(Scheme::Kv),
        1 => Ok(Scheme::Kqv),
        2 => Ok(Scheme::Qkqv),
        _ => Err(TURBOKV_INVALID_PARAMETER),
    }
}

/// Fills `qz` with a TurboQuant_mse quantiser.
///
/// # Safety
/// `qz` points to a writable `turbokv_quantizer`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_quantizer_mse(
    qz: *mut turbokv_quantizer,
    dim: usize,
    bits: u8,
    seed: u64,
    norm: u32,
) -> Status {
    run(|| {
        let q = MseQuantizer::new(dim, bits, seed)
            .st()?
            .with_norm_precision(norm_of(norm)?);
        // SAFETY: the caller's contract (header).
        unsafe { store(qz, TAG_QUANTIZER, Quantizer::Mse(q)) }
    })
}

/// Fills `qz` with a TurboQuant_prod quantiser.
///
/// # Safety
/// `qz` points to a writable `turbokv_quantizer`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_quantizer_prod(
    qz: *mut turbokv_quantizer,
    dim: usize,
    bits: u8,
    seed: u64,
    projection: u32,
    norm: u32,
) -> Status {
    run(|| {
        let q = ProdQuantizer::new(dim, bits, seed, projection_of(projection)?)
            .st()?
            .with_norm_precision(norm_of(norm)?);
        // SAFETY: the caller's contract (header).
        unsafe { store(qz, TAG_QUANTIZER, Quantizer::Prod(q)) }
    })
}

/// Fills `qz` with the paper's KV baseline quantiser.
///
/// # Safety
/// `qz` points to a writable `turbokv_quantizer`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_quantizer_baseline(
    qz: *mut turbokv_quantizer,
    dim: usize,
    bits: u8,
    norm: u32,
) -> Status {
    run(|| {
        let q = BaselineQuantizer::new(dim, bits)
            .st()?
            .with_norm_precision(norm_of(norm)?);
        // SAFETY: the caller's contract (header).
        unsafe { store(qz, TAG_QUANTIZER, Quantizer::Baseline(q)) }
    })
}

/// Fills `k` and `v` with a scheme's quantisers under a budget of `n` bits.
///
/// # Safety
/// `k` and `v` point to distinct writable `turbokv_quantizer`s.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_scheme_quantizers(
    scheme: u32,
    n: u8,
    dim: usize,
    seed: u64,
    projection: u32,
    k: *mut turbokv_quantizer,
    v: *mut turbokv_quantizer,
) -> Status {
    run(|| {
        let (kq, vq) = scheme_of(scheme)?
            .quantizers(n, dim, seed, projection_of(projection)?)
            .st()?;
        if k.is_null() || v.is_null() {
            return Err(TURBOKV_NULL_POINTER);
        }
        // SAFETY: the caller's contract (header).
        unsafe {
            store(k, TAG_QUANTIZER, kq)?;
            store(v, TAG_QUANTIZER, vq)
        }
    })
}

/// Bytes of one encoded vector (`*len`) and the bits per coordinate spent,
/// side information included (`*bits`, may be NULL).
///
/// # Safety
/// `qz` was initialised; the pointers are valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_quantizer_info(
    qz: *const turbokv_quantizer,
    len: *mut usize,
    bits: *mut f64,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let q: &Quantizer = unsafe { load(qz, TAG_QUANTIZER) }?;
        // SAFETY: the caller's contract (header).
        unsafe { put(len, q.encoded_len()) }?;
        if !bits.is_null() {
            // SAFETY: non-null, the caller's contract.
            unsafe { put(bits, q.bits_per_coordinate()) }?;
        }
        Ok(())
    })
}

/// Encodes `x[0..n]` into `out[0..out_len]`.
///
/// # Safety
/// `qz` was initialised; the pointers are valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_encode(
    qz: *const turbokv_quantizer,
    x: *const f32,
    n: usize,
    out: *mut u8,
    out_len: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (q, x, o) = unsafe {
            (
                load::<_, Quantizer>(qz, TAG_QUANTIZER)?,
                slice(x, n)?,
                slice_mut(out, out_len)?,
            )
        };
        q.encode(x, o).st()
    })
}

/// Decodes `code[0..code_len]` into `out[0..n]`.
///
/// # Safety
/// `qz` was initialised; the pointers are valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_decode(
    qz: *const turbokv_quantizer,
    code: *const u8,
    code_len: usize,
    out: *mut f32,
    n: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (q, c, o) = unsafe {
            (
                load::<_, Quantizer>(qz, TAG_QUANTIZER)?,
                slice(code, code_len)?,
                slice_mut(out, n)?,
            )
        };
        q.decode(c, o).st()
    })
}

// ------------------------------------------------------------------ cache, attention

/// What a cache holds (the C mirror of `CacheConfig`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct turbokv_cache_config {
    /// 0 KV, 1 KQV, 2 QKQV.
    pub scheme: u32,
    /// Budget n in bits per coordinate, 2..=8.
    pub budget: u32,
    /// KV heads.
    pub heads: u32,
    /// Head dimension.
    pub dim: u32,
    /// Tokens the buffer holds.
    pub capacity: u32,
    /// QJL projection: 0 Gaussian, 1 Hadamard.
    pub projection: u32,
    /// Norm precision: 0 f16, 1 f32.
    pub norm: u32,
    /// Padding, must be 0.
    pub reserved: u32,
    /// Seed of the rotations and projections.
    pub seed: u64,
}

fn config_of(c: &turbokv_cache_config) -> Result<CacheConfig, Status> {
    if c.reserved != 0 {
        return Err(TURBOKV_INVALID_PARAMETER);
    }
    Ok(CacheConfig {
        scheme: scheme_of(c.scheme)?,
        budget: u8::try_from(c.budget).map_err(|_| TURBOKV_INVALID_BITS)?,
        heads: c.heads as usize,
        dim: c.dim as usize,
        capacity: c.capacity as usize,
        seed: c.seed,
        projection: projection_of(c.projection)?,
        norm: norm_of(c.norm)?,
    })
}

/// Bytes a cache of `config` needs.
///
/// # Safety
/// The pointers are valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_cache_bytes_needed(
    config: *const turbokv_cache_config,
    bytes: *mut usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let c = unsafe { config.as_ref() }.ok_or(TURBOKV_NULL_POINTER)?;
        let n = config_of(c)?.bytes_needed().st()?;
        // SAFETY: the caller's contract (header).
        unsafe { put(bytes, n) }
    })
}

fn raw(buf: *mut u8, len: usize) -> Result<RawBuf, Status> {
    if buf.is_null() {
        return Err(TURBOKV_NULL_POINTER);
    }
    Ok(RawBuf { ptr: buf, len })
}

/// A new empty cache in `buf[0..len]`, its handle in `cache`.
///
/// # Safety
/// `buf` is valid for `len` bytes and, with `cache`, outlives every use of
/// the handle; the caller does not write `buf` while the handle is in use.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_cache_create(
    cache: *mut turbokv_cache,
    config: *const turbokv_cache_config,
    buf: *mut u8,
    len: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let c = unsafe { config.as_ref() }.ok_or(TURBOKV_NULL_POINTER)?;
        let kv = KvCache::new(config_of(c)?, raw(buf, len)?).st()?;
        // SAFETY: the caller's contract (header).
        unsafe { store(cache, TAG_CACHE, kv) }
    })
}

/// Opens a cache saved in `buf[0..len]` (untrusted bytes: every field is
/// validated), its handle in `cache`; tokens can be pushed after.
///
/// # Safety
/// As [`turbokv_cache_create`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_cache_open(
    cache: *mut turbokv_cache,
    buf: *mut u8,
    len: usize,
) -> Status {
    run(|| {
        let kv = KvCache::from_bytes(raw(buf, len)?).st()?;
        // SAFETY: the caller's contract (header).
        unsafe { store(cache, TAG_CACHE, kv) }
    })
}

/// Appends one token: `k` and `v` hold `heads·dim` floats each.
///
/// # Safety
/// `cache` was created or opened; the pointers are valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_cache_push(
    cache: *mut turbokv_cache,
    k: *const f32,
    k_len: usize,
    v: *const f32,
    v_len: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (c, k, v) = unsafe {
            (
                load_mut::<_, KvCache<RawBuf>>(cache, TAG_CACHE)?,
                slice(k, k_len)?,
                slice(v, v_len)?,
            )
        };
        c.push(k, v).st()
    })
}

/// Tokens stored (`*len`), capacity (`*capacity`, may be NULL) and the
/// scratch floats [`turbokv_attend`] needs (`*scratch`, may be NULL).
///
/// # Safety
/// `cache` was created or opened; the pointers are valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_cache_info(
    cache: *const turbokv_cache,
    len: *mut usize,
    capacity: *mut usize,
    scratch: *mut usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let c: &KvCache<RawBuf> = unsafe { load(cache, TAG_CACHE) }?;
        // SAFETY: the caller's contract (header).
        unsafe { put(len, c.len()) }?;
        if !capacity.is_null() {
            // SAFETY: non-null, the caller's contract.
            unsafe { put(capacity, c.capacity()) }?;
        }
        if !scratch.is_null() {
            // SAFETY: non-null, the caller's contract.
            unsafe { put(scratch, attention::scratch_len(c)) }?;
        }
        Ok(())
    })
}

/// Copies the encoding of token `token`'s key (`side` 0) or value
/// (`side` 1) of KV head `head` into `out[0..out_len]`: the quantiser's encoded
/// length, ready for [`turbokv_decode`]. The cache stores each field of
/// the encodings in its own region, so this is how a C caller reads one.
///
/// # Safety
/// `cache` was created or opened; `out` is valid for `out_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_cache_token(
    cache: *const turbokv_cache,
    side: u32,
    head: usize,
    token: usize,
    out: *mut u8,
    out_len: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (c, out) = unsafe {
            (
                load::<_, KvCache<RawBuf>>(cache, TAG_CACHE)?,
                slice_mut(out, out_len)?,
            )
        };
        match side {
            0 => c.key(head, token, out).st(),
            1 => c.value(head, token, out).st(),
            _ => Err(Error::InvalidParameter("side is 0 (keys) or 1 (values)")).st(),
        }
    })
}

/// Attention of the query head(s) `q[0..q_len]` (a multiple of `dim`:
/// grouped-query heads sharing KV head `head`) over the cache, into
/// `out[0..q_len]`, using `scratch[0..scratch_len]`.
///
/// # Safety
/// `cache` was created or opened; the pointers are valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn turbokv_attend(
    cache: *const turbokv_cache,
    head: usize,
    q: *const f32,
    q_len: usize,
    out: *mut f32,
    scratch: *mut f32,
    scratch_len: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (c, q, o, s) = unsafe {
            (
                load::<_, KvCache<RawBuf>>(cache, TAG_CACHE)?,
                slice(q, q_len)?,
                slice_mut(out, q_len)?,
                slice_mut(scratch, scratch_len)?,
            )
        };
        attention::attend(c, head, q, o, s).st()
    })
}
