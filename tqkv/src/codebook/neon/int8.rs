//! NEON lanes of the 8-bit integer scores (`codebook::int8_simd`): 16
//! bytes a register; lookups by one `tbl` of 1, 2 or 4 registers (up to
//! 4, 5 and 6 bits); products by `smull`/`smlal2` (pairs of products at
//! most 2·127² fit in i16) and `sadalp` into i32.

use core::arch::aarch64::*;

use crate::codebook::int8::Int8Rows;
use crate::codebook::int8_simd::{self, ByteLanes};

#[derive(Clone, Copy)]
pub(in crate::codebook) struct I8x16(uint8x16_t);

/// The centroids in registers of 16.
#[derive(Clone, Copy)]
pub(in crate::codebook) struct Table {
    regs: int8x16x4_t,
    bits: u8,
}

// SAFETY: every method is called only with NEON available (the entry point
// below is compiled with it); pointer arguments are the caller's.
unsafe impl ByteLanes for I8x16 {
    const LANES: usize = 16;
    type Table = Table;
    type Sums = int32x4_t;

    #[inline(always)]
    unsafe fn table(c8: &[i8; 256], bits: u8) -> Table {
        // SAFETY: reads the first 64 bytes of `c8`.
        unsafe {
            Table {
                regs: vld1q_s8_x4(c8.as_ptr()),
                bits,
            }
        }
    }

    #[inline(always)]
    unsafe fn load(p: *const u8) -> Self {
        // SAFETY: 16 readable bytes at `p` (caller).
        unsafe { I8x16(vld1q_u8(p)) }
    }

    #[inline(always)]
    unsafe fn field(self, shift: u32, mask: u8) -> Self {
        // SAFETY: register operations on the caller's ISA (a left shift
        // by a negative count shifts right).
        unsafe {
            let s = vshlq_u8(self.0, vdupq_n_s8(-(shift as i8)));
            I8x16(vandq_u8(s, vdupq_n_u8(mask)))
        }
    }

    #[inline(always)]
    unsafe fn lookup(t: &Table, codes: Self) -> Self {
        // SAFETY: register operations; every code indexes the table
        // registers in use.
        unsafe {
            let r = &t.regs;
            let c = match t.bits {
                0..=4 => vqtbl1q_s8(r.0, codes.0),
                5 => vqtbl2q_s8(int8x16x2_t(r.0, r.1), codes.0),
                _ => vqtbl4q_s8(*r, codes.0),
            };
            I8x16(vreinterpretq_u8_s8(c))
        }
    }

    #[inline(always)]
    unsafe fn zero() -> int32x4_t {
        // SAFETY: NEON is available.
        unsafe { vdupq_n_s32(0) }
    }

    #[inline(always)]
    unsafe fn mul_add(sums: int32x4_t, c: Self, q: *const i8, _: *const u8) -> int32x4_t {
        // SAFETY: 16 readable bytes at `q` (caller); |q|, |c| ≤ 127, so
        // two products add in i16 without overflow.
        unsafe {
            let qv = vld1q_s8(q);
            let cv = vreinterpretq_s8_u8(c.0);
            let pairs = vmlal_high_s8(vmull_s8(vget_low_s8(cv), vget_low_s8(qv)), cv, qv);
            vpadalq_s16(sums, pairs)
        }
    }

    #[inline(always)]
    unsafe fn total(sums: int32x4_t) -> i32 {
        // SAFETY: NEON is available.
        unsafe { vaddvq_s32(sums) }
    }

    #[inline(always)]
    unsafe fn totals4(s: [int32x4_t; 4]) -> [i32; 4] {
        // SAFETY: NEON is available; the store writes the local array.
        unsafe {
            let x = vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]));
            let mut t = [0i32; 4];
            vst1q_s32(t.as_mut_ptr(), x);
            t
        }
    }

    #[inline(always)]
    unsafe fn codes<const BITS: u8>(packed: &[u8], reg: usize, scratch: &mut [u8]) -> Self {
        // Whole bytes from the code `16·reg` on (16 codes are 2·bits bytes).
        let (bits, b) = (BITS, BITS as usize);
        let src = packed.get(2 * b * reg..).unwrap_or(&[]);
        let src = &src[..src.len().min(2 * b)];
        let out = &mut scratch[..16];
        let n = (8 * src.len() / b).min(16);
        let src = &src[..crate::codebook::pack::packed_len(n, bits)];
        out[n..].fill(0);
        // SAFETY: NEON is available; `src` holds the packed bytes of `n`
        // codes; the load reads `out`'s 16 bytes.
        unsafe {
            <crate::vector::F32x4 as crate::codebook::simd::Lanes>::unpack(
                bits,
                src,
                &mut out[..n],
            );
            Self::load(out.as_ptr())
        }
    }
}

/// Scores every row on NEON (0 for another backend, codes of more than 6
/// bits or an empty query: the caller runs the portable loop then).
/// The row bounds are the caller's promise (checked in
/// `codebook::dot_rows_int8_in`).
pub(in crate::codebook) fn dot_rows(
    backend: crate::backend::Checked,
    a: &Int8Rows<'_>,
    out: &mut [f32],
) -> usize {
    if backend.backend() != crate::Backend::Neon {
        return 0;
    }
    crate::stack::bytes(int8_simd::scratch_len(a), |scratch| {
        // SAFETY: `Checked` proves the backend's feature list.
        unsafe { dot_rows_simd(a, out, scratch) }
    })
}

crate::backend::neon_features!(crate::backend::target_features {
    /// [`dot_rows`] compiled with the backend's feature list.
    ///
    /// # Safety
    /// The features available; the row bounds of [`dot_rows`]; `scratch`
    /// zeroed, of `int8_simd::scratch_len(a)` bytes.
    unsafe fn dot_rows_simd(a: &Int8Rows<'_>, out: &mut [f32], scratch: &mut [u8]) -> usize {
        // SAFETY: this function's features are the lanes' ISA.
        unsafe { int8_simd::dot_rows::<I8x16>(a, out, scratch) }
    }
});
