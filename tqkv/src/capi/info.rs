//! The library version, the ABI check and the backends.

use super::*;

/// The version of the C ABI that `include/tqkv.h` declares. It is raised
/// whenever a change breaks a caller built with the older header: a
/// function's signature, a struct's fields, an opaque object's size or
/// layout, a constant's meaning. Additions (a new function, a new status)
/// do not raise it.
pub const TQKV_ABI_VERSION: u32 = 1;

/// This library's ABI version (`TQKV_ABI_VERSION` of its header).
#[unsafe(no_mangle)]
pub extern "C" fn tqkv_abi_version() -> u32 {
    TQKV_ABI_VERSION
}

/// `TQKV_OK` if a caller built with ABI version `abi_version` and these
/// object sizes (in bytes) can use this library, else
/// `TQKV_ABI_MISMATCH`. The opaque objects live in caller memory, so a
/// caller built with a header of other sizes would hand the library too
/// little memory: the header's `tqkv_abi_check_header()` passes the
/// caller's own values, once at start-up.
///
/// ```
/// use core::mem::size_of;
/// use tqkv::capi::*;
///
/// let sizes = (
///     size_of::<tqkv_codebook>(),
///     size_of::<tqkv_quantizer>(),
///     size_of::<tqkv_cache_config>(),
///     size_of::<tqkv_cache>(),
/// );
/// let (cb, qz, cfg, cache) = sizes;
/// assert_eq!(tqkv_abi_check(TQKV_ABI_VERSION, cb, qz, cfg, cache), TQKV_OK);
/// assert_eq!(tqkv_abi_check(TQKV_ABI_VERSION, cb, qz - 8, cfg, cache), TQKV_ABI_MISMATCH);
/// ```
#[unsafe(no_mangle)]
pub extern "C" fn tqkv_abi_check(
    abi_version: u32,
    codebook_bytes: usize,
    quantizer_bytes: usize,
    cache_config_bytes: usize,
    cache_bytes: usize,
) -> Status {
    let ours = (
        TQKV_ABI_VERSION,
        size_of::<tqkv_codebook>(),
        size_of::<tqkv_quantizer>(),
        size_of::<tqkv_cache_config>(),
        size_of::<tqkv_cache>(),
    );
    let theirs = (
        abi_version,
        codebook_bytes,
        quantizer_bytes,
        cache_config_bytes,
        cache_bytes,
    );
    if ours == theirs {
        TQKV_OK
    } else {
        TQKV_ABI_MISMATCH
    }
}

/// The library version, `"MAJOR.MINOR.PATCH"`, NUL-terminated, static.
#[unsafe(no_mangle)]
pub extern "C" fn tqkv_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The best backend of this CPU: 0 scalar, 1 AVX2, 2 AVX-512, 3 NEON.
#[unsafe(no_mangle)]
pub extern "C" fn tqkv_backend_detect() -> i32 {
    backend_id(Backend::detect())
}

/// 1 if `backend` can run here, 0 if not (or unknown).
#[unsafe(no_mangle)]
pub extern "C" fn tqkv_backend_is_available(backend: i32) -> i32 {
    backend_of(backend).is_ok_and(|b| b.is_available()) as i32
}

/// The backend's static NUL-terminated name, or NULL if unknown.
#[unsafe(no_mangle)]
pub extern "C" fn tqkv_backend_name(backend: i32) -> *const c_char {
    match backend_of(backend) {
        Ok(Backend::Scalar) => c"scalar".as_ptr(),
        Ok(Backend::Avx2) => c"avx2".as_ptr(),
        Ok(Backend::Avx512) => c"avx512".as_ptr(),
        Ok(Backend::Neon) => c"neon".as_ptr(),
        Err(_) => core::ptr::null(),
    }
}

/// The portable scalar backend's id.
pub const TQKV_BACKEND_SCALAR: i32 = 0;
/// The AVX2 backend's id.
pub const TQKV_BACKEND_AVX2: i32 = 1;
/// The AVX-512 backend's id.
pub const TQKV_BACKEND_AVX512: i32 = 2;
/// The NEON backend's id.
pub const TQKV_BACKEND_NEON: i32 = 3;

pub(super) fn backend_of(b: i32) -> Result<Backend, Status> {
    match b {
        TQKV_BACKEND_SCALAR => Ok(Backend::Scalar),
        TQKV_BACKEND_AVX2 => Ok(Backend::Avx2),
        TQKV_BACKEND_AVX512 => Ok(Backend::Avx512),
        TQKV_BACKEND_NEON => Ok(Backend::Neon),
        _ => Err(TQKV_INVALID_PARAMETER),
    }
}

fn backend_id(b: Backend) -> i32 {
    match b {
        Backend::Scalar => TQKV_BACKEND_SCALAR,
        Backend::Avx2 => TQKV_BACKEND_AVX2,
        Backend::Avx512 => TQKV_BACKEND_AVX512,
        Backend::Neon => TQKV_BACKEND_NEON,
    }
}
