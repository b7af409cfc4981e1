//! 6-bit value codes looked up a byte at a time: `vpermb` reads a byte's
//! low 6 bits, so one 64-byte register holds byte `k` of all 64 centroids
//! (a byte plane), and four `vpermb` look up 64 codes' four bytes where
//! the centroids' registers take eight `vpermt2ps` and four blends. On a
//! core that runs 512-bit operations on 256-bit pipes (Zen 4) the two
//! `vpermt2ps` of a code chunk issue on the FMA pipes; the planes' byte
//! permutes and the unpacks that rebuild the floats do not.
//!
//! The unpacks work inside 128-bit lanes, so the floats come out in their
//! own order: register `m` lane `4L + u` holds code `16L + 4m + u` of the
//! 64. The sums stay in that order over every row (its `load_sums` and
//! `store_sums` make and undo it once a chunk), so each coordinate
//! still gets one FMA per row in row order: the same bits as the
//! centroids' lookups.

use core::arch::x86_64::*;

use super::ChunkLookup;
use crate::codebook::Codebook;

/// The four byte planes of the 64 centroids (repeated with period `2^b`).
pub(super) struct BytePlanes {
    planes: [__m512i; 4],
}

impl ChunkLookup for BytePlanes {
    #[inline(always)]
    unsafe fn of(cb: &Codebook) -> BytePlanes {
        let c = cb.centroids();
        let mut bytes = [[0u8; 64]; 4];
        for v in 0..64 {
            let le = c[v & (c.len() - 1)].to_bits().to_le_bytes();
            for (plane, byte) in bytes.iter_mut().zip(le) {
                plane[v] = byte;
            }
        }
        // SAFETY: AVX-512F (caller); each load reads one local plane.
        unsafe {
            BytePlanes {
                planes: bytes.map(|p| _mm512_loadu_si512(p.as_ptr().cast())),
            }
        }
    }

    /// The planes' order: register `m` lane `4L + u` holds `c[code 16L +
    /// 4m + u]`. `vpermb` reads each byte's low 6 bits; the planes repeat
    /// with period `2^b`, so the bits above a code's `b` do not matter (any
    /// `B ≤ 6` looks up right; only 6-bit values take the planes, since one
    /// `vpermt2ps` a code is cheaper at 5 bits).
    #[inline(always)]
    unsafe fn chunk<const B: usize>(&self, codes: __m512i) -> [__m512; 4] {
        // SAFETY: registers only, on the caller's ISA.
        unsafe {
            let [p0, p1, p2, p3] = self.planes;
            let (b0, b1) = (
                _mm512_permutexvar_epi8(codes, p0),
                _mm512_permutexvar_epi8(codes, p1),
            );
            let (b2, b3) = (
                _mm512_permutexvar_epi8(codes, p2),
                _mm512_permutexvar_epi8(codes, p3),
            );
            // Bytes 0 and 1, then 2 and 3, of codes 0–7 and 8–15 of each
            // 128-bit lane as words; then the words' pairs as dwords.
            let (w01_lo, w01_hi) = (_mm512_unpacklo_epi8(b0, b1), _mm512_unpackhi_epi8(b0, b1));
            let (w23_lo, w23_hi) = (_mm512_unpacklo_epi8(b2, b3), _mm512_unpackhi_epi8(b2, b3));
            [
                _mm512_castsi512_ps(_mm512_unpacklo_epi16(w01_lo, w23_lo)),
                _mm512_castsi512_ps(_mm512_unpackhi_epi16(w01_lo, w23_lo)),
                _mm512_castsi512_ps(_mm512_unpacklo_epi16(w01_hi, w23_hi)),
                _mm512_castsi512_ps(_mm512_unpackhi_epi16(w01_hi, w23_hi)),
            ]
        }
    }

    #[inline(always)]
    unsafe fn load_sums(out: &[f32]) -> [__m512; 4] {
        // SAFETY: AVX-512F (caller); each masked load reads only the values of
        // `out` below its length.
        unsafe {
            let mut x = [_mm512_setzero_ps(); 4];
            for (k, x) in x.iter_mut().enumerate() {
                let from = 16 * k;
                let lanes = super::super::lane_mask(out.len().saturating_sub(from));
                *x = _mm512_maskz_loadu_ps(lanes, out.as_ptr().wrapping_add(from));
            }
            transpose_blocks(x)
        }
    }

    #[inline(always)]
    unsafe fn store_sums(sums: &[__m512; 4], out: &mut [f32]) {
        // SAFETY: AVX-512F (caller); each masked store writes only the values
        // of `out` below its length.
        unsafe {
            let x = transpose_blocks(*sums);
            for (k, x) in x.iter().enumerate() {
                let from = 16 * k;
                let lanes = super::super::lane_mask(out.len().saturating_sub(from));
                _mm512_mask_storeu_ps(out.as_mut_ptr().wrapping_add(from), lanes, *x);
            }
        }
    }
}

/// The 4×4 transpose of 128-bit blocks that takes 64 values (register `k`
/// lane `m` = value `16k + m`) to the planes' order and back: block `L` of
/// register `m` is block `m` of register `L`.
///
/// # Safety
/// AVX-512F is available.
#[inline(always)]
unsafe fn transpose_blocks(x: [__m512; 4]) -> [__m512; 4] {
    // SAFETY: registers only, on the caller's ISA.
    unsafe {
        // Blocks 0, 1 of x0 then of x1; blocks 2, 3 likewise; the same for
        // x2 and x3.
        let t0 = _mm512_shuffle_f32x4::<0b01_00_01_00>(x[0], x[1]);
        let t1 = _mm512_shuffle_f32x4::<0b11_10_11_10>(x[0], x[1]);
        let t2 = _mm512_shuffle_f32x4::<0b01_00_01_00>(x[2], x[3]);
        let t3 = _mm512_shuffle_f32x4::<0b11_10_11_10>(x[2], x[3]);
        [
            _mm512_shuffle_f32x4::<0b10_00_10_00>(t0, t2),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(t0, t2),
            _mm512_shuffle_f32x4::<0b10_00_10_00>(t1, t3),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(t1, t3),
        ]
    }
}
