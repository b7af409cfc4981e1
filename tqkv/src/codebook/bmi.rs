//! Bit packing with BMI2 `pext`/`pdep`, for the x86_64 backends.
//!
//! Eight indices held one per byte of a u64 are exactly the layout's eight
//! b-bit fields once the high `8 − b` bits of every byte are squeezed out:
//! `pext(word, 0x0101…01 · (2^b − 1))` packs them LSB-first, `pdep` with the
//! same mask unpacks. Byte-identical to the scalar `pack`/`unpack` (tests
//! compare them on every width and length).

use core::arch::x86_64::{_mm_set_epi64x, _mm_storeu_si128, _pdep_u64, _pext_u64};

use super::pack;

/// The low `b` bits of every byte.
const fn mask(b: usize) -> u64 {
    0x0101_0101_0101_0101 * ((1u64 << b) - 1)
}

/// Packs whole groups of 8 with `pext`, the tail with the scalar code.
///
/// # Safety
/// BMI2 is available; `out.len() == packed_len(indices.len(), B)`, every
/// index `< 2^B`.
#[inline(always)]
unsafe fn pack_b<const B: usize>(indices: &[u8], out: &mut [u8]) {
    let groups = indices.len() / 8;
    for (group, dst) in indices.chunks_exact(8).zip(out.chunks_exact_mut(B)) {
        let mut w = [0u8; 8];
        w.copy_from_slice(group);
        // SAFETY: BMI2 is the caller's promise; no memory access.
        let bits = unsafe { _pext_u64(u64::from_le_bytes(w), mask(B)) };
        dst.copy_from_slice(&bits.to_le_bytes()[..B]);
    }
    if indices.len() > groups * 8 {
        pack::pack_unchecked(B as u8, &indices[groups * 8..], &mut out[groups * B..]);
    }
}

/// Unpacks whole groups of 8 with `pdep`, the tail with the scalar code.
///
/// Pairs of groups are stored as one 16-byte store: the AVX-512 kernels read
/// 16 indices with one load, and a load that spans two earlier stores cannot
/// be forwarded from the store buffer (a stall of about a dozen cycles); a
/// smaller load inside one larger store (AVX2's 8 bytes) forwards fine.
///
/// # Safety
/// BMI2 is available; `packed.len() == packed_len(out.len(), B)`.
#[inline(always)]
unsafe fn unpack_b<const B: usize>(packed: &[u8], out: &mut [u8]) {
    let word = |src: &[u8]| -> u64 {
        let mut w = [0u8; 8];
        w[..B].copy_from_slice(&src[..B]);
        // SAFETY: BMI2 is the caller's promise; no memory access.
        unsafe { _pdep_u64(u64::from_le_bytes(w), mask(B)) }
    };
    let pairs = out.len() / 16;
    for (src, dst) in packed.chunks_exact(2 * B).zip(out.chunks_exact_mut(16)) {
        // Two words in one 16-byte store (the high word's bits, reinterpreted).
        let (lo, hi) = (word(src) as i64, word(&src[B..]) as i64);
        // SAFETY: `dst` is 16 writable bytes; SSE2 is baseline on x86_64.
        unsafe { _mm_storeu_si128(dst.as_mut_ptr().cast(), _mm_set_epi64x(hi, lo)) };
    }
    let (mut done_in, mut done_out) = (pairs * 2 * B, pairs * 16);
    if out.len() - done_out >= 8 {
        out[done_out..done_out + 8].copy_from_slice(&word(&packed[done_in..]).to_le_bytes());
        done_in += B;
        done_out += 8;
    }
    if out.len() > done_out {
        pack::unpack_unchecked(B as u8, &packed[done_in..], &mut out[done_out..]);
    }
}

/// [`pack::pack_unchecked`] with `pext`.
///
/// # Safety
/// BMI2 is available; the arguments satisfy `pack_unchecked`'s contract.
#[inline(always)]
pub(super) unsafe fn pack(bits: u8, indices: &[u8], out: &mut [u8]) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match bits {
            1 => pack_b::<1>(indices, out),
            2 => pack_b::<2>(indices, out),
            3 => pack_b::<3>(indices, out),
            4 => pack_b::<4>(indices, out),
            5 => pack_b::<5>(indices, out),
            6 => pack_b::<6>(indices, out),
            7 => pack_b::<7>(indices, out),
            _ => pack_b::<8>(indices, out),
        }
    }
}

/// [`pack::unpack_unchecked`] with `pdep`.
///
/// # Safety
/// BMI2 is available; the arguments satisfy `unpack_unchecked`'s contract.
#[inline(always)]
pub(super) unsafe fn unpack(bits: u8, packed: &[u8], out: &mut [u8]) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match bits {
            1 => unpack_b::<1>(packed, out),
            2 => unpack_b::<2>(packed, out),
            3 => unpack_b::<3>(packed, out),
            4 => unpack_b::<4>(packed, out),
            5 => unpack_b::<5>(packed, out),
            6 => unpack_b::<6>(packed, out),
            7 => unpack_b::<7>(packed, out),
            _ => unpack_b::<8>(packed, out),
        }
    }
}
