//! Quantise-and-pack of 64 elements in registers, for codes of 1–6 bits:
//! eight binary searches ([`search`]), the indices narrowed to bytes, then
//! packed by multiply-adds (two codes a word, four a dword, eight a qword)
//! and a byte shift that joins each 128-bit lane's two qwords. The generic
//! path went through a byte buffer on the stack and `pext`; this is its
//! fast case, with the same bytes.

use core::arch::x86_64::*;

use super::{Lut8, Thr8, search};
use crate::codebook::simd::Lanes;
use crate::vector::F32x8;

/// Packs 32 codes of `BITS` bits (lanes of `idx`, code `8k + l` in lane `l`
/// of `idx[k]`) into `out[..4·BITS]`.
///
/// # Safety
/// AVX2 is available; every lane is below `2^BITS`, `BITS ∈ 1..=6`.
#[inline(always)]
unsafe fn pack32<const BITS: u32>(idx: &[__m256i], out: &mut [u8]) {
    // SAFETY: register operations on the caller's ISA; the stores go
    // through the slice.
    unsafe {
        // Saturating packs keep lanes below 256; they interleave the
        // 128-bit lanes, which the dword permute puts back in order: byte j
        // holds code j.
        let low = _mm256_packs_epi32(idx[0], idx[1]);
        let high = _mm256_packs_epi32(idx[2], idx[3]);
        let bytes = _mm256_permutevar8x32_epi32(
            _mm256_packus_epi16(low, high),
            _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7),
        );
        // Codes 2i, 2i+1 → word i (2·BITS bits); words → dwords (4·BITS);
        // dwords → qwords (8·BITS bits): the high dword moves down by
        // 32 − 4·BITS, next to the low one's bits. Up to 4 bits that shift
        // moves the low dword's bits out of the qword; past 4 they are
        // cleared first.
        let words = _mm256_maddubs_epi16(bytes, _mm256_set1_epi16(1 | (1 << (BITS + 8))));
        let dwords = _mm256_madd_epi16(words, _mm256_set1_epi32(1 | (1 << (2 * BITS + 16))));
        let low = _mm256_and_si256(dwords, _mm256_set1_epi64x(0xffff_ffff));
        let shift = _mm256_set1_epi64x(i64::from(32 - 4 * BITS));
        let high = match BITS {
            1..=4 => _mm256_srlv_epi64(dwords, shift),
            _ => _mm256_srlv_epi64(_mm256_xor_si256(dwords, low), shift),
        };
        let qwords = _mm256_or_si256(low, high);
        // Each lane's second qword moves down next to the first's BITS
        // bytes. Up to 4 bits a byte shift of the whole lane does it (the
        // first qword's bytes move out, as 8 − BITS ≥ BITS); past 4 the
        // first qword is kept apart.
        let joined = match BITS {
            1 => _mm256_or_si256(qwords, _mm256_bsrli_epi128::<7>(qwords)),
            2 => _mm256_or_si256(qwords, _mm256_bsrli_epi128::<6>(qwords)),
            3 => _mm256_or_si256(qwords, _mm256_bsrli_epi128::<5>(qwords)),
            4 => _mm256_or_si256(qwords, _mm256_bsrli_epi128::<4>(qwords)),
            _ => {
                let first = _mm256_and_si256(qwords, _mm256_setr_epi64x(-1, 0, -1, 0));
                let second = _mm256_unpackhi_epi64(qwords, _mm256_setzero_si256());
                _mm256_or_si256(
                    first,
                    match BITS {
                        5 => _mm256_bslli_epi128::<5>(second),
                        _ => _mm256_bslli_epi128::<6>(second),
                    },
                )
            }
        };
        // Each lane's 2·BITS bytes: one qword up to 4 bits, a qword and
        // part of the next past 4.
        let lanes = [
            _mm256_castsi256_si128(joined),
            _mm256_extracti128_si256::<1>(joined),
        ];
        let n = 2 * BITS as usize;
        for (dst, lane) in out.chunks_exact_mut(n).zip(lanes) {
            let first = _mm_cvtsi128_si64(lane).to_le_bytes();
            if n <= 8 {
                dst.copy_from_slice(&first[..n]);
            } else {
                let second = _mm_extract_epi64::<1>(lane).to_le_bytes();
                dst[..8].copy_from_slice(&first);
                dst[8..].copy_from_slice(&second[..n - 8]);
            }
        }
    }
}

/// Quantises `x` (64 values) against `thr`, writes the packed codes to
/// `out[..8·BITS]` and, with `centroids`, each value's centroid.
///
/// # Safety
/// AVX2 is available; `BITS ∈ 1..=6` and `thr`, `lut` are prepared for a
/// codebook of that width; `out.len() >= 8·BITS`.
#[inline(always)]
pub(super) unsafe fn pack64<const BITS: u32>(
    thr: &Thr8<'_>,
    x: &[f32; 64],
    out: &mut [u8],
    centroids: Option<(&Lut8<'_>, &mut [f32; 64])>,
) {
    // SAFETY: the loads read x's 64 floats, the stores write 64 centroids;
    // every index is below 2^BITS, inside the lookup's registers.
    unsafe {
        let mut idx = [_mm256_setzero_si256(); 8];
        for (k, i) in idx.iter_mut().enumerate() {
            *i = search::<BITS>(thr, _mm256_loadu_ps(x.as_ptr().add(8 * k)));
        }
        if let Some((lut, c)) = centroids {
            for (k, &i) in idx.iter().enumerate() {
                // One register of centroids up to 3 bits, then twice as
                // many a bit.
                let v = match BITS {
                    1..=3 => <F32x8 as Lanes>::lookup_bits::<3>(lut, i),
                    4 => <F32x8 as Lanes>::lookup_bits::<4>(lut, i),
                    5 => <F32x8 as Lanes>::lookup_bits::<5>(lut, i),
                    _ => <F32x8 as Lanes>::lookup_bits::<6>(lut, i),
                };
                _mm256_storeu_ps(c.as_mut_ptr().add(8 * k), v.0);
            }
        }
        let (first, second) = out[..8 * BITS as usize].split_at_mut(4 * BITS as usize);
        pack32::<BITS>(&idx[..4], first);
        pack32::<BITS>(&idx[4..], second);
    }
}
