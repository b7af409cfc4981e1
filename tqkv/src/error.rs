//! The crate's single error type.

use core::fmt;

use crate::Backend;

/// Everything that can go wrong when calling into `tqkv`.
///
/// Kernels never panic on caller input: a length that does not fit, a buffer
/// that is too short or a backend that this CPU lacks comes back as one of
/// these variants.
///
/// ```
/// use tqkv::{wht, Error};
///
/// let mut x = [1.0f32; 3];
/// assert_eq!(wht::fwht(&mut x), Err(Error::NotPowerOfTwo { len: 3 }));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// A transform length was not a power of two (0 included).
    NotPowerOfTwo {
        /// The length that was passed.
        len: usize,
    },
    /// A length exceeded the largest one the operation supports.
    TooLong {
        /// The length that was passed.
        len: usize,
        /// The largest accepted length.
        max: usize,
    },
    /// A buffer's length did not match what the operation needs.
    LengthMismatch {
        /// The length the operation needs.
        expected: usize,
        /// The length that was passed.
        found: usize,
    },
    /// A batch was not a whole number of rows of the given length.
    RaggedRows {
        /// The batch's total length.
        len: usize,
        /// The length of one row.
        row_len: usize,
    },
    /// The requested backend cannot run on this CPU (or this target).
    BackendUnavailable(Backend),
    /// A code width outside `1..=8` bits.
    InvalidBits {
        /// The width that was passed.
        bits: u8,
    },
    /// A dimension the operation does not support.
    InvalidDim {
        /// The dimension that was passed.
        dim: usize,
    },
    /// An output or input buffer was shorter than the operation needs.
    BufferTooShort {
        /// The length the operation needs.
        needed: usize,
        /// The length that was passed.
        found: usize,
    },
    /// A sketch length that is not supported: sketchers take a multiple of
    /// 8 in `8..=8·dim`, bit-plane queries a positive multiple of 64.
    InvalidSketchBits {
        /// The number of sketch bits that was passed.
        m: usize,
    },
    /// Input that must be finite held a NaN or an infinity.
    NonFinite,
    /// A stored norm (or residual norm) is NaN, infinite, negative or above
    /// `quant::MAX_NORM`: no encoder writes one, so the code is corrupt.
    InvalidNorm,
    /// A head index past the cache's heads.
    InvalidHead {
        /// The index that was passed.
        head: usize,
        /// The cache's number of heads.
        heads: usize,
    },
    /// A token index past the tokens a cache holds.
    InvalidToken {
        /// The index that was passed.
        token: usize,
        /// The tokens the cache holds.
        len: usize,
    },
    /// A range of tokens that is empty or reaches past the tokens a cache
    /// holds (or a causal limit past them).
    InvalidRange {
        /// The range's first token.
        start: usize,
        /// The range's end (exclusive).
        end: usize,
        /// The tokens the cache holds.
        len: usize,
    },
    /// A partial attention state of another shape than the call or the
    /// state it merges with: `[query vectors, dim, value sketch bits]`.
    PartialShape {
        /// The shape that was needed.
        expected: [usize; 3],
        /// The shape of the state that was passed.
        found: [usize; 3],
    },
    /// A size computed from the arguments does not fit in `usize`.
    SizeOverflow,
    /// Bytes that claim to be a cache are not a valid one.
    CorruptCache(&'static str),
    /// A cache is full.
    CacheFull {
        /// Its capacity in tokens.
        capacity: usize,
    },
    /// A code index did not fit in the code width.
    IndexOutOfRange {
        /// The offending index.
        index: u8,
        /// The code width.
        bits: u8,
    },
    /// A statistical or configuration parameter out of its range (an empty
    /// sample, a confidence level outside (0, 1), zero resamples, …).
    InvalidParameter(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::NotPowerOfTwo { len } => write!(f, "length {len} is not a power of two"),
            Error::TooLong { len, max } => write!(f, "length {len} exceeds the maximum {max}"),
            Error::LengthMismatch { expected, found } => {
                write!(
                    f,
                    "buffer length {found} does not match the expected {expected}"
                )
            }
            Error::RaggedRows { len, row_len } => {
                write!(
                    f,
                    "batch length {len} is not a multiple of the row length {row_len}"
                )
            }
            Error::BackendUnavailable(b) => {
                write!(f, "backend {} is not available on this CPU", b.name())
            }
            Error::InvalidBits { bits } => write!(f, "{bits} bits per code is outside 1..=8"),
            Error::InvalidDim { dim } => write!(
                f,
                "dimension {dim} is not supported: rotations, the rotating quantisers, \
                 caches and the Hadamard QJL projection take a power of two or a \
                 multiple of 8, from 8 up to 4096 (codebooks and the baseline: \
                 any dim from 2)"
            ),
            Error::BufferTooShort { needed, found } => {
                write!(f, "buffer of {found} is shorter than the {needed} needed")
            }
            Error::InvalidSketchBits { m } => {
                write!(f, "{m} sketch bits is not a supported sketch length")
            }
            Error::NonFinite => write!(f, "input holds a NaN or an infinity"),
            Error::InvalidNorm => write!(
                f,
                "a stored norm is NaN, infinite, negative or above MAX_NORM (corrupt code)"
            ),
            Error::InvalidHead { head, heads } => {
                write!(f, "head {head} is out of range (the cache has {heads})")
            }
            Error::InvalidToken { token, len } => {
                write!(f, "token {token} is out of range (the cache holds {len})")
            }
            Error::InvalidRange { start, end, len } => write!(
                f,
                "token range {start}..{end} is empty or past the {len} tokens the cache holds"
            ),
            Error::PartialShape { expected, found } => write!(
                f,
                "partial attention state of shape {found:?} (query vectors, dim, value sketch bits) where {expected:?} is needed"
            ),
            Error::SizeOverflow => write!(f, "a size computed from the arguments overflows usize"),
            Error::CorruptCache(why) => write!(f, "not a valid tqkv cache: {why}"),
            Error::CacheFull { capacity } => write!(f, "cache is full ({capacity} tokens)"),
            Error::IndexOutOfRange { index, bits } => {
                write!(f, "index {index} does not fit in {bits} bits")
            }
            Error::InvalidParameter(why) => write!(f, "invalid parameter: {why}"),
        }
    }
}

impl core::error::Error for Error {}

/// Checks that `count` rows of `row` bytes, `stride` apart, fit in `len`.
pub(crate) fn check_rows(row: usize, len: usize, stride: usize, count: usize) -> Result<(), Error> {
    if stride < row {
        return Err(Error::BufferTooShort {
            needed: row,
            found: stride,
        });
    }
    if let Some(last) = count.checked_sub(1) {
        let needed = last
            .checked_mul(stride)
            .and_then(|v| v.checked_add(row))
            .unwrap_or(usize::MAX);
        if len < needed {
            return Err(Error::BufferTooShort { needed, found: len });
        }
    }
    Ok(())
}

/// [`Error::BufferTooShort`] unless `found >= needed`.
pub(crate) fn need(needed: usize, found: usize) -> Result<(), Error> {
    if found < needed {
        Err(Error::BufferTooShort { needed, found })
    } else {
        Ok(())
    }
}

/// [`Error::NonFinite`] if `x` holds a NaN or an infinity: the one rule for
/// every function whose output would be stored or scored (quantise, encode,
/// push, dot, attention). The pure transforms (`wht`, `Rotation`) follow
/// IEEE arithmetic instead and are documented so.
/// Where a backend is at hand, [`finite_on`] runs the check in its registers.
#[inline]
pub(crate) fn finite(x: &[f32]) -> Result<(), Error> {
    nonfinite_unless(crate::loops::all_finite(x))
}

/// [`finite`] on a checked backend.
#[inline]
pub(crate) fn finite_on(backend: crate::backend::Checked, x: &[f32]) -> Result<(), Error> {
    nonfinite_unless(crate::loops::all_finite_on(backend, x))
}

fn nonfinite_unless(ok: bool) -> Result<(), Error> {
    if ok { Ok(()) } else { Err(Error::NonFinite) }
}
