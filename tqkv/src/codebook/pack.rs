//! Bit packing of b-bit code indices (b ∈ 1..=8) into a contiguous
//! little-endian bit stream.
//!
//! # Layout
//!
//! Index `i` occupies stream bits `i·b … i·b + b − 1`, least significant bit
//! first; stream bit `k` is bit `k mod 8` (0 = least significant) of byte
//! `⌊k/8⌋`. Codes of 3, 5, 6 and 7 bits therefore cross byte boundaries. The
//! unused high bits of the last byte are zero. `n` indices take
//! [`packed_len(n, b)`](packed_len) = `⌈n·b/8⌉` bytes, so every group of 8
//! indices fills exactly `b` bytes.
//!
//! Worked example, `b = 3`, indices `[5, 3, 6, 1]` (binary `101, 011, 110,
//! 001`): stream bits 0–2 hold 5, bits 3–5 hold 3, bits 6–8 hold 6 (crossing
//! into byte 1), bits 9–11 hold 1:
//!
//! ```text
//! byte 0 = bits 7..0 = [6's bit1..0][3][5] = 0b10_011_101 = 0x9D
//! byte 1 = bits 15..8 = [pad 0000][1][6's bit2] = 0b0000_001_1 = 0x03
//! ```
//!
//! ```
//! use tqkv::pack;
//!
//! let mut out = [0u8; 2];
//! assert_eq!(pack::packed_len(4, 3), 2);
//! pack::pack(3, &[5, 3, 6, 1], &mut out)?;
//! assert_eq!(out, [0x9D, 0x03]);
//! let mut back = [0u8; 4];
//! pack::unpack(3, &out, &mut back)?;
//! assert_eq!(back, [5, 3, 6, 1]);
//! # Ok::<(), tqkv::Error>(())
//! ```

use crate::Error;

/// Checks a code width.
pub(crate) fn check_bits(bits: u8) -> Result<(), Error> {
    if (1..=8).contains(&bits) {
        Ok(())
    } else {
        Err(Error::InvalidBits { bits })
    }
}

/// Bytes taken by `n` indices of `bits` bits: `⌈n·bits/8⌉` (without
/// overflow for any `n`). `bits` outside `1..=8` is treated as 8.
///
/// ```
/// assert_eq!(tqkv::pack::packed_len(128, 3), 48);
/// assert_eq!(tqkv::pack::packed_len(5, 3), 2);
/// ```
pub const fn packed_len(n: usize, bits: u8) -> usize {
    let b = if bits >= 1 && bits <= 8 {
        bits as usize
    } else {
        8
    };
    n / 8 * b + (n % 8 * b).div_ceil(8)
}

/// Packs `indices` (each `< 2^bits`) into `out`; returns the bytes written,
/// `packed_len(indices.len(), bits)`. Bytes of `out` past those are untouched.
///
/// # Errors
/// [`Error::InvalidBits`] unless `bits ∈ 1..=8`; [`Error::BufferTooShort`]
/// if `out` is shorter than `packed_len`; [`Error::IndexOutOfRange`] for an
/// index that does not fit (nothing is written then).
///
/// ```
/// let mut out = [0u8; 1];
/// tqkv::pack::pack(2, &[1, 2, 3, 0], &mut out)?;
/// assert_eq!(out, [0b00_11_10_01]);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn pack(bits: u8, indices: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    check_bits(bits)?;
    let needed = packed_len(indices.len(), bits);
    if out.len() < needed {
        return Err(Error::BufferTooShort {
            needed,
            found: out.len(),
        });
    }
    if let Some(&index) = indices.iter().find(|&&i| bits < 8 && i >> bits != 0) {
        return Err(Error::IndexOutOfRange { index, bits });
    }
    pack_unchecked(bits, indices, &mut out[..needed]);
    Ok(needed)
}

/// Packs without validation: `bits ∈ 1..=8`, every index `< 2^bits` and
/// `out.len() == packed_len(indices.len(), bits)` are the caller's promise
/// (a broken promise gives wrong bytes, never UB or a panic… except the
/// slice bounds checks, which the promise keeps from firing).
pub(crate) fn pack_unchecked(bits: u8, indices: &[u8], out: &mut [u8]) {
    let b = bits as usize;
    let mut groups = indices.chunks_exact(8);
    let mut bytes = out.chunks_exact_mut(b);
    for (group, dst) in (&mut groups).zip(&mut bytes) {
        let word = group
            .iter()
            .enumerate()
            .fold(0u64, |acc, (k, &v)| acc | (v as u64) << (k * b));
        dst.copy_from_slice(&word.to_le_bytes()[..b]);
    }
    let tail = groups.remainder();
    if !tail.is_empty() {
        let word = tail
            .iter()
            .enumerate()
            .fold(0u64, |acc, (k, &v)| acc | (v as u64) << (k * b));
        let start = indices.len() / 8 * b;
        let dst = &mut out[start..];
        let n = dst.len();
        dst.copy_from_slice(&word.to_le_bytes()[..n]);
    }
}

/// Unpacks `out.len()` indices of `bits` bits from `packed`.
///
/// # Errors
/// [`Error::InvalidBits`] unless `bits ∈ 1..=8`; [`Error::BufferTooShort`]
/// if `packed` is shorter than `packed_len(out.len(), bits)`.
///
/// ```
/// let mut idx = [0u8; 4];
/// tqkv::pack::unpack(2, &[0b00_11_10_01], &mut idx)?;
/// assert_eq!(idx, [1, 2, 3, 0]);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn unpack(bits: u8, packed: &[u8], out: &mut [u8]) -> Result<(), Error> {
    check_bits(bits)?;
    let needed = packed_len(out.len(), bits);
    if packed.len() < needed {
        return Err(Error::BufferTooShort {
            needed,
            found: packed.len(),
        });
    }
    unpack_unchecked(bits, &packed[..needed], out);
    Ok(())
}

/// Unpacks without validation (`packed.len() == packed_len(out.len(), bits)`).
pub(crate) fn unpack_unchecked(bits: u8, packed: &[u8], out: &mut [u8]) {
    let b = bits as usize;
    let mask = (1u64 << b) - 1;
    let out_len = out.len();
    let mut groups = out.chunks_exact_mut(8);
    let mut bytes = packed.chunks_exact(b);
    for (group, src) in (&mut groups).zip(&mut bytes) {
        let mut word = [0u8; 8];
        word[..b].copy_from_slice(src);
        let word = u64::from_le_bytes(word);
        for (k, v) in group.iter_mut().enumerate() {
            *v = ((word >> (k * b)) & mask) as u8;
        }
    }
    let tail = groups.into_remainder();
    if !tail.is_empty() {
        let src = &packed[out_len / 8 * b..];
        let mut word = [0u8; 8];
        word[..src.len()].copy_from_slice(src);
        let word = u64::from_le_bytes(word);
        for (k, v) in tail.iter_mut().enumerate() {
            *v = ((word >> (k * b)) & mask) as u8;
        }
    }
}

/// The `B ≤ 4` bytes of a group of 8 codes at `rows[at..at + B]` as the
/// low bytes of a little-endian word: one 4-byte read where 4 bytes are
/// left in `rows` (the bytes past the group's own then belong to the next
/// codes, and the value kernels mask them off), else the `B` bytes alone.
/// Panics unless `at + B ≤ rows.len()`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
pub(super) fn group_word<const B: usize>(rows: &[u8], at: usize) -> u32 {
    match rows.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => {
            let mut w4 = [0u8; 4];
            w4[..B].copy_from_slice(&rows[at..at + B]);
            u32::from_le_bytes(w4)
        }
    }
}

/// How many of `n` rows `stride` apart have their bytes `0 … need − 1`
/// inside `len` bytes: the rows read in place.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(super) fn rows_within(len: usize, stride: usize, need: usize, n: usize) -> usize {
    match len.checked_sub(need) {
        None => 0,
        Some(_) if stride == 0 => n,
        Some(room) => (room / stride).saturating_add(1).min(n),
    }
}
