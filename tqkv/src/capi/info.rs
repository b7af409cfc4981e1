//! The library version and the backends.

use super::*;

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
