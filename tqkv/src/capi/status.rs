//! Status codes, the mapping from `Error`, and the panic guard every
//! function runs under.

use super::*;

/// A status code: 0 is success, anything else names the failure.
pub type Status = i32;

/// Success.
pub const TQKV_OK: Status = 0;
/// A transform length is not a power of two.
pub const TQKV_NOT_POWER_OF_TWO: Status = 1;
/// A length exceeds the largest supported one.
pub const TQKV_TOO_LONG: Status = 2;
/// A buffer length does not match what the operation needs.
pub const TQKV_LENGTH_MISMATCH: Status = 3;
/// A batch is not a whole number of rows.
pub const TQKV_RAGGED_ROWS: Status = 4;
/// The requested backend cannot run here.
pub const TQKV_BACKEND_UNAVAILABLE: Status = 5;
/// A code width outside 1..=8 (or a budget outside 2..=8).
pub const TQKV_INVALID_BITS: Status = 6;
/// An unsupported dimension (or head index).
pub const TQKV_INVALID_DIM: Status = 7;
/// An output or input buffer is too short.
pub const TQKV_BUFFER_TOO_SHORT: Status = 8;
/// An unsupported sketch length.
pub const TQKV_INVALID_SKETCH_BITS: Status = 9;
/// NaN or infinity in input that must be finite (or an overflowing norm).
pub const TQKV_NON_FINITE: Status = 10;
/// Bytes that are not a valid cache.
pub const TQKV_CORRUPT_CACHE: Status = 11;
/// The cache is full.
pub const TQKV_CACHE_FULL: Status = 12;
/// An index does not fit in the code width.
pub const TQKV_INDEX_OUT_OF_RANGE: Status = 13;
/// A parameter out of range (an unknown enum value, …).
pub const TQKV_INVALID_PARAMETER: Status = 14;
/// A required pointer is null.
pub const TQKV_NULL_POINTER: Status = 15;
/// An opaque object that was not initialised by its `init` function.
pub const TQKV_INVALID_HANDLE: Status = 16;
/// A panic inside the library (a bug; never caused by input).
pub const TQKV_INTERNAL: Status = 17;
/// A pointer is not aligned for its element type (a `float*` not on a
/// 4-byte boundary, an output `size_t*` not on 8, …).
pub const TQKV_MISALIGNED: Status = 18;
/// The caller was built with another `tqkv.h`: its ABI version or the size
/// of an object it declares differs from this library's
/// ([`tqkv_abi_check`](super::tqkv_abi_check)).
pub const TQKV_ABI_MISMATCH: Status = 19;

pub(super) fn status_of(e: Error) -> Status {
    match e {
        Error::NotPowerOfTwo { .. } => TQKV_NOT_POWER_OF_TWO,
        Error::TooLong { .. } => TQKV_TOO_LONG,
        Error::LengthMismatch { .. } => TQKV_LENGTH_MISMATCH,
        Error::RaggedRows { .. } => TQKV_RAGGED_ROWS,
        Error::BackendUnavailable(_) => TQKV_BACKEND_UNAVAILABLE,
        Error::InvalidBits { .. } => TQKV_INVALID_BITS,
        Error::InvalidDim { .. } => TQKV_INVALID_DIM,
        Error::BufferTooShort { .. } => TQKV_BUFFER_TOO_SHORT,
        Error::InvalidSketchBits { .. } => TQKV_INVALID_SKETCH_BITS,
        Error::NonFinite => TQKV_NON_FINITE,
        Error::CorruptCache(_) => TQKV_CORRUPT_CACHE,
        Error::CacheFull { .. } => TQKV_CACHE_FULL,
        Error::IndexOutOfRange { .. } => TQKV_INDEX_OUT_OF_RANGE,
        Error::InvalidParameter(_) => TQKV_INVALID_PARAMETER,
        Error::InvalidNorm => TQKV_NON_FINITE,
        Error::InvalidHead { .. } | Error::InvalidToken { .. } => TQKV_INVALID_DIM,
        Error::SizeOverflow => TQKV_TOO_LONG,
        Error::InvalidRange { .. } => TQKV_INVALID_PARAMETER,
        Error::PartialShape { .. } => TQKV_LENGTH_MISMATCH,
    }
}

/// Runs `f`, mapping its error to a status; with `std`, a panic becomes
/// `TQKV_INTERNAL` instead of unwinding into C.
pub(super) fn run(f: impl FnOnce() -> Result<(), Status>) -> Status {
    #[cfg(feature = "std")]
    let r =
        std::panic::catch_unwind(core::panic::AssertUnwindSafe(f)).unwrap_or(Err(TQKV_INTERNAL));
    #[cfg(not(feature = "std"))]
    let r = f();
    match r {
        Ok(()) => TQKV_OK,
        Err(s) => s,
    }
}

pub(super) trait OrStatus<T> {
    fn st(self) -> Result<T, Status>;
}

impl<T> OrStatus<T> for Result<T, Error> {
    fn st(self) -> Result<T, Status> {
        self.map_err(status_of)
    }
}

/// A static NUL-terminated description of `status` (`"unknown status"` for
/// an unknown code).
#[unsafe(no_mangle)]
pub extern "C" fn tqkv_status_str(status: Status) -> *const c_char {
    let s: &'static str = match status {
        TQKV_OK => "ok\0",
        TQKV_NOT_POWER_OF_TWO => "length is not a power of two\0",
        TQKV_TOO_LONG => "length exceeds the maximum\0",
        TQKV_LENGTH_MISMATCH => "buffer length does not match\0",
        TQKV_RAGGED_ROWS => "batch is not a whole number of rows\0",
        TQKV_BACKEND_UNAVAILABLE => "backend not available on this CPU\0",
        TQKV_INVALID_BITS => "bits or budget out of range\0",
        TQKV_INVALID_DIM => "dimension or head not supported\0",
        TQKV_BUFFER_TOO_SHORT => "buffer too short\0",
        TQKV_INVALID_SKETCH_BITS => "sketch length not supported\0",
        TQKV_NON_FINITE => "NaN, infinity or overflowing norm in input\0",
        TQKV_CORRUPT_CACHE => "bytes are not a valid cache\0",
        TQKV_CACHE_FULL => "cache is full\0",
        TQKV_INDEX_OUT_OF_RANGE => "index does not fit in the code width\0",
        TQKV_INVALID_PARAMETER => "parameter out of range\0",
        TQKV_NULL_POINTER => "null pointer\0",
        TQKV_INVALID_HANDLE => "object not initialised\0",
        TQKV_INTERNAL => "internal error (a bug in tqkv)\0",
        TQKV_MISALIGNED => "pointer not aligned for its element type\0",
        TQKV_ABI_MISMATCH => {
            "caller built with another tqkv.h: rebuild it with this library's header\0"
        }
        _ => "unknown status\0",
    };
    s.as_ptr().cast()
}
