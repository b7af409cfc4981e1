//! AVX2 lanes of the 8-bit integer scores (`codebook::int8_simd`): 32
//! bytes a register; lookups by `vpshufb` (one register of 16 centroids
//! in each lane up to 4 bits; two or four and blends on bits 4 and 5 at 5
//! and 6 bits); products by `vpmaddubsw` of `|q|` with `sign(q)·c`
//! (pairs of products at most 2·127² fit in i16) and `vpmaddwd` by ones
//! into i32.

use core::arch::x86_64::*;

use crate::codebook::int8::Int8Rows;
use crate::codebook::int8_simd::{self, ByteLanes};

#[derive(Clone, Copy)]
pub(in crate::codebook) struct I8x32(__m256i);

/// The centroids in registers of 16 (each repeated in both lanes).
#[derive(Clone, Copy)]
pub(in crate::codebook) struct Table {
    regs: [__m256i; 4],
    bits: u8,
}

// SAFETY: every method is called only with AVX2 available (the entry point
// below is compiled with it); pointer arguments are the caller's.
unsafe impl ByteLanes for I8x32 {
    const LANES: usize = 32;
    type Table = Table;
    type Sums = __m256i;

    #[inline(always)]
    unsafe fn table(c8: &[i8; 256], bits: u8) -> Table {
        // SAFETY: each load reads 16 bytes of `c8` (offset ≤ 48).
        unsafe {
            let reg = |k: usize| {
                _mm256_broadcastsi128_si256(_mm_loadu_si128(c8.as_ptr().add(16 * k).cast()))
            };
            Table {
                regs: [reg(0), reg(1), reg(2), reg(3)],
                bits,
            }
        }
    }

    #[inline(always)]
    unsafe fn load(p: *const u8) -> Self {
        // SAFETY: 32 readable bytes at `p` (caller).
        unsafe { I8x32(_mm256_loadu_si256(p.cast())) }
    }

    #[inline(always)]
    unsafe fn field(self, shift: u32, mask: u8) -> Self {
        // SAFETY: register operations on the caller's ISA.
        unsafe {
            let s = _mm256_srl_epi16(self.0, _mm_cvtsi32_si128(shift as i32));
            I8x32(_mm256_and_si256(s, _mm256_set1_epi8(mask as i8)))
        }
    }

    #[inline(always)]
    unsafe fn lookup(t: &Table, codes: Self) -> Self {
        // SAFETY: register operations; `vpshufb` reads the low 4 bits of
        // each code (bit 7 is clear: codes are below 64), and the blends
        // choose by bits 4 and 5 moved to bit 7.
        unsafe {
            let i = codes.0;
            let pick = |k: usize| _mm256_shuffle_epi8(t.regs[k], i);
            let low = pick(0);
            if t.bits <= 4 {
                return I8x32(low);
            }
            let bit4 = _mm256_slli_epi16(i, 3);
            let first = _mm256_blendv_epi8(low, pick(1), bit4);
            if t.bits == 5 {
                return I8x32(first);
            }
            let second = _mm256_blendv_epi8(pick(2), pick(3), bit4);
            I8x32(_mm256_blendv_epi8(first, second, _mm256_slli_epi16(i, 2)))
        }
    }

    #[inline(always)]
    unsafe fn zero() -> __m256i {
        // SAFETY: AVX is available.
        unsafe { _mm256_setzero_si256() }
    }

    #[inline(always)]
    unsafe fn mul_add(sums: __m256i, c: Self, q: *const i8, q_abs: *const u8) -> __m256i {
        // SAFETY: 32 readable bytes at `q` and `q_abs` (caller); |q|, |c|
        // ≤ 127, so `vpmaddubsw` never saturates.
        unsafe {
            let qv = _mm256_loadu_si256(q.cast());
            let abs = _mm256_loadu_si256(q_abs.cast());
            let pairs = _mm256_maddubs_epi16(abs, _mm256_sign_epi8(c.0, qv));
            _mm256_add_epi32(sums, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
        }
    }

    #[inline(always)]
    unsafe fn total(sums: __m256i) -> i32 {
        // SAFETY: register operations on the caller's ISA.
        unsafe {
            let x = _mm_add_epi32(
                _mm256_castsi256_si128(sums),
                _mm256_extracti128_si256::<1>(sums),
            );
            let x = _mm_add_epi32(x, _mm_shuffle_epi32::<0b01_00_11_10>(x));
            let x = _mm_add_epi32(x, _mm_shuffle_epi32::<0b10_11_00_01>(x));
            _mm_cvtsi128_si32(x)
        }
    }

    #[inline(always)]
    unsafe fn totals4(s: [__m256i; 4]) -> [i32; 4] {
        // SAFETY: register operations on the caller's ISA; the store
        // writes the local array.
        unsafe {
            let h = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
            let x = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
            let mut t = [0i32; 4];
            _mm_storeu_si128(t.as_mut_ptr().cast(), x);
            t
        }
    }

    /// 32 codes spread from their `4·BITS` bytes in registers
    /// ([`WordSpread`]): two 16-byte loads, one `vpshufb`, two word
    /// multiplies and three shifts. (Four BMI2 `pdep` groups moved over
    /// from general registers took 1.7× the time at 3 bits.)
    #[inline(always)]
    unsafe fn codes<const BITS: u8>(packed: &[u8], reg: usize, _: &mut [u8]) -> Self {
        let b = BITS as usize;
        let k = const { &WordSpread::of(BITS) };
        let start = 4 * b * reg;
        debug_assert!(packed.len() >= int8_simd::reach(32 * (reg + 1), BITS));
        // SAFETY: AVX2 is in the feature list; the loads read 16 bytes at
        // `start` and at `start + 2b`, inside the reach of `reg + 1`
        // registers (the caller's promise), and the constants.
        unsafe {
            let src = packed.as_ptr().add(start);
            let lo = _mm_loadu_si128(src.cast());
            let hi = _mm_loadu_si128(src.add(2 * b).cast());
            let bytes = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi);
            I8x32(spread_codes(bytes, k, BITS))
        }
    }
}

/// What spreads 32 codes of `b` bits (3, 5 or 6) to one a byte
/// ([`spread_codes`]): lane 0 of the register takes codes 0–15 from the
/// first `2b` bytes, lane 1 codes 16–31 from the next `2b`, loaded there. Word `i` of a lane
/// gathers (`vpshufb`) the two bytes from the one holding bit `2i·b` on:
/// its codes `2i` and `2i + 1` lie at bits `o = 2i·b mod 8` and `o + b`
/// of the word (`o + 2b ≤ 16` at these widths). `vpmullw` by
/// `2^(16 − b − o)` lifts the even code to the word's top `b` bits, by
/// `2^(16 − 2b − o)` the odd one; shifts bring them down to the word's
/// low and high byte, every other bit clear.
pub(super) struct WordSpread {
    shuffle: [u8; 32],
    even: [u16; 16],
    odd: [u16; 16],
}

impl WordSpread {
    pub(super) const fn of(bits: u8) -> WordSpread {
        let b = bits as usize;
        let mut k = WordSpread {
            shuffle: [0; 32],
            even: [0; 16],
            odd: [0; 16],
        };
        let mut i = 0;
        while i < 16 {
            let bit = 2 * (i % 8) * b;
            let (byte, o) = (bit / 8, bit % 8);
            k.shuffle[2 * i] = byte as u8;
            k.shuffle[2 * i + 1] = byte as u8 + 1;
            k.even[i] = 1 << (16 - b - o);
            k.odd[i] = 1 << (16 - 2 * b - o);
            i += 1;
        }
        k
    }
}

/// The codes of `bytes` (each 128-bit lane holding the bytes of its 16
/// codes of `bits` bits from its start) one a byte, in order: a `vpshufb`
/// by `k`'s spread, two word multiplies and three shifts ([`WordSpread`]).
///
/// # Safety
/// AVX2 is available; `k` is `WordSpread::of(bits)`, `bits` 3, 5 or 6.
#[inline(always)]
pub(super) unsafe fn spread_codes(bytes: __m256i, k: &WordSpread, bits: u8) -> __m256i {
    // SAFETY: AVX2 (caller); the loads read `k`'s arrays.
    unsafe {
        let words = _mm256_shuffle_epi8(bytes, _mm256_loadu_si256(k.shuffle.as_ptr().cast()));
        let even = _mm256_mullo_epi16(words, _mm256_loadu_si256(k.even.as_ptr().cast()));
        let odd = _mm256_mullo_epi16(words, _mm256_loadu_si256(k.odd.as_ptr().cast()));
        let even = top_down(even, bits);
        let odd = _mm256_slli_epi16::<8>(top_down(odd, bits));
        _mm256_or_si256(even, odd)
    }
}

/// Every word's top `bits` bits (3, 5 or 6) down to its bottom (`bits` a
/// constant where this is inlined, so one shift by an immediate).
///
/// # Safety
/// AVX2 is available.
#[inline(always)]
unsafe fn top_down(x: __m256i, bits: u8) -> __m256i {
    // SAFETY: AVX2 (caller); registers only.
    unsafe {
        match bits {
            3 => _mm256_srli_epi16::<13>(x),
            5 => _mm256_srli_epi16::<11>(x),
            _ => _mm256_srli_epi16::<10>(x),
        }
    }
}

/// Scores every row on AVX2 (0 for another backend, codes of more than 6
/// bits or an empty query: the caller runs the portable loop then).
/// The row bounds are the caller's promise (checked in
/// `codebook::dot_rows_int8_in`).
pub(in crate::codebook) fn dot_rows(
    backend: crate::backend::Checked,
    a: &Int8Rows<'_>,
    out: &mut [f32],
) -> usize {
    if backend.backend() != crate::Backend::Avx2 {
        return 0;
    }
    crate::stack::bytes(int8_simd::scratch_len(a), |scratch| {
        // SAFETY: `Checked` proves the backend's feature list.
        unsafe { dot_rows_simd(a, out, scratch) }
    })
}

crate::backend::avx2_features!(crate::backend::target_features {
    /// [`dot_rows`] compiled with the backend's feature list.
    ///
    /// # Safety
    /// The features available; the row bounds of [`dot_rows`]; `scratch`
    /// zeroed, of `int8_simd::scratch_len(a)` bytes.
    unsafe fn dot_rows_simd(a: &Int8Rows<'_>, out: &mut [f32], scratch: &mut [u8]) -> usize {
        // SAFETY: this function's features are the lanes' ISA.
        unsafe { int8_simd::dot_rows::<I8x32>(a, out, scratch) }
    }
});
