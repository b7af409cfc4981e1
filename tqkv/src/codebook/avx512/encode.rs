//! Quantise-and-pack of 64 elements in registers, for codes of 1–6 bits:
//! four binary searches, the indices narrowed to 64 bytes, then packed by
//! multiply-adds (two codes per word, four per dword, eight per qword) and
//! one `vpermb` that keeps each qword's `b` low bytes. The generic path
//! went through a stack buffer and `pext` a byte at a time; this is its
//! fast case, with the same bytes.

use core::arch::x86_64::*;

use super::{Lut16, Thr16, search};
use crate::codebook::simd::Lanes;
use crate::vector::F32x16;

/// `GATHER[b][j] = 8·(j / b) + j % b`: output byte `j` of 64 packed
/// `b`-bit codes is byte `j % b` of qword `j / b` (the inverse of the
/// unpacking permutation).
const GATHER: [[u8; 64]; 7] = {
    let mut t = [[0u8; 64]; 7];
    let mut b = 1;
    while b <= 6 {
        let mut j = 0;
        while j < 8 * b {
            t[b][j] = (8 * (j / b) + j % b) as u8;
            j += 1;
        }
        b += 1;
    }
    t
};

/// Quantises `x` (64 values) against `thr` and writes the packed codes to
/// `out[..8·BITS]`; with `centroids`, also each value's centroid.
///
/// # Safety
/// AVX-512 F/BW/VBMI are available; `BITS ∈ 1..=6` and `thr`, `lut` are
/// prepared for a codebook of that width; `out.len() >= 8·BITS`.
#[inline(always)]
pub(super) unsafe fn pack64<const BITS: u32>(
    thr: &Thr16<'_>,
    x: &[f32; 64],
    out: &mut [u8],
    centroids: Option<(&Lut16<'_>, &mut [f32; 64])>,
) {
    // SAFETY: the loads read x's 64 floats, the stores write the 64
    // centroids and out's first 8·BITS bytes (masked store); every index
    // is below 2^BITS, inside the lookup's registers.
    unsafe {
        let mut idx = [_mm512_setzero_si512(); 4];
        for (k, i) in idx.iter_mut().enumerate() {
            *i = search::<BITS>(thr, _mm512_loadu_ps(x.as_ptr().add(16 * k)));
        }
        if let Some((lut, c)) = centroids {
            for (k, &i) in idx.iter().enumerate() {
                let v = match BITS {
                    1..=4 => <F32x16 as Lanes>::lookup_bits::<4>(lut, i),
                    5 => <F32x16 as Lanes>::lookup_bits::<5>(lut, i),
                    _ => <F32x16 as Lanes>::lookup_bits::<6>(lut, i),
                };
                _mm512_storeu_ps(c.as_mut_ptr().add(16 * k), v.0);
            }
        }
        // Byte 16k + l holds code 16k + l.
        let mut bytes = _mm512_castsi128_si512(_mm512_cvtepi32_epi8(idx[0]));
        bytes = _mm512_inserti32x4::<1>(bytes, _mm512_cvtepi32_epi8(idx[1]));
        bytes = _mm512_inserti32x4::<2>(bytes, _mm512_cvtepi32_epi8(idx[2]));
        bytes = _mm512_inserti32x4::<3>(bytes, _mm512_cvtepi32_epi8(idx[3]));
        // Codes 2i, 2i+1 → word i (2·BITS bits); words → dwords (4·BITS);
        // dwords → qwords (8·BITS bits, the low BITS bytes): the low dword
        // stays, the high one moves down to bit 4·BITS, next to the low
        // one's bits. (Up to 4 bits, 32 − 4·BITS ≥ 4·BITS, so the same
        // shift of the whole qword moves the low dword's bits out.)
        let words = _mm512_maddubs_epi16(bytes, _mm512_set1_epi16(1 | (1 << (BITS + 8))));
        let dwords = _mm512_madd_epi16(words, _mm512_set1_epi32(1 | (1 << (2 * BITS + 16))));
        let low = _mm512_and_si512(dwords, _mm512_set1_epi64(0xffff_ffff));
        let shift = _mm512_set1_epi64(i64::from(32 - 4 * BITS));
        let high = match BITS {
            1..=4 => _mm512_srlv_epi64(dwords, shift),
            _ => _mm512_srlv_epi64(_mm512_xor_si512(dwords, low), shift),
        };
        let qwords = _mm512_or_si512(low, high);
        let gather = _mm512_loadu_si512(GATHER[BITS as usize].as_ptr().cast());
        let packed = _mm512_permutexvar_epi8(gather, qwords);
        let keep = (1u64 << (8 * BITS)) - 1;
        _mm512_mask_storeu_epi8(out.as_mut_ptr().cast(), keep, packed);
    }
}
