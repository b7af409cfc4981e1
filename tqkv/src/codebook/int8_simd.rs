//! The 8-bit integer scores (`int8`) once for the AVX2 and NEON backends,
//! generic over a small byte-lane trait; each backend instantiates
//! [`dot_rows`] inside a `#[target_feature]` function.
//!
//! Codes of 1, 2 and 4 bits never cross a byte: a register of packed bytes
//! gives `8/b` registers of codes by a shift and a mask each (code
//! `j·8/b + f` is field `f` of byte `j`), and the query is laid out field
//! by field to match. Codes of 3, 5 and 6 bits are spread to one byte
//! each, a register at a time (AVX2: four `pdep` groups put together in
//! registers). Then every register of codes is looked up (`vpshufb`, or
//! `tbl`) and multiplied with the query's bytes into i32 sums, exactly;
//! one horizontal sum per row. (AVX-512 has its own kernel, sixteen rows
//! at a time.)

use super::int8::Int8Rows;
use super::pack::packed_len;
use crate::quant::MAX_DIM;

/// What the int8 scores need of a register of bytes.
///
/// # Safety
/// Every method runs only where the backend's target features are
/// available; pointer arguments point at `LANES` readable bytes.
pub(super) unsafe trait ByteLanes: Copy {
    /// Bytes per register (at most 32).
    const LANES: usize;
    /// Centroids prepared for [`lookup`](Self::lookup).
    type Table: Copy;
    /// i32 sums.
    type Sums: Copy;
    /// The rounded centroids `c8` of a `bits`-bit codebook (`bits ≤ 6`).
    unsafe fn table(c8: &[i8; 256], bits: u8) -> Self::Table;
    /// `LANES` bytes at `p`.
    unsafe fn load(p: *const u8) -> Self;
    /// `(x >> shift) & mask` in every byte.
    unsafe fn field(self, shift: u32, mask: u8) -> Self;
    /// `c8[code]` in every byte (each code below `2^bits` of the table).
    unsafe fn lookup(t: &Self::Table, codes: Self) -> Self;
    /// Zero sums.
    unsafe fn zero() -> Self::Sums;
    /// `sums` plus the products of the bytes of `c` (as i8) with the
    /// `LANES` i8 at `q`, both at most 127 in magnitude: exact.
    unsafe fn mul_add(sums: Self::Sums, c: Self, q: *const i8) -> Self::Sums;
    /// The sum of all lanes.
    unsafe fn total(sums: Self::Sums) -> i32;
    /// Register `reg` of the codes of `BITS` bits packed in `packed`
    /// (codes `LANES·reg …`), one a byte; bytes past `packed`'s end count
    /// as zeros. `scratch` holds `LANES` bytes for backends that unpack
    /// through memory.
    unsafe fn codes<const BITS: u8>(packed: &[u8], reg: usize, scratch: &mut [u8]) -> Self;
}

/// Bytes of work space [`dot_rows`] needs for `a`: the query laid out
/// field by field (1, 2 and 4 bits), padded to whole registers of up to
/// 32 bytes, or (3, 5 and 6 bits) room for a backend that unpacks a
/// register of codes through memory; at most `MAX_DIM + 256`.
pub(super) fn scratch_len(a: &Int8Rows<'_>) -> usize {
    match a.bits {
        1 | 2 | 4 => {
            let per = 8 / a.bits as usize;
            per * packed_len(a.q.dim, a.bits).div_ceil(32) * 32
        }
        _ => a.q.dim.div_ceil(32) * 32,
    }
    .min(MAX_DIM + 256)
}

/// Scores every row as `int8::dot_rows` does; returns how many (all of
/// them, or 0 for codes of more than 6 bits or an empty query).
///
/// # Safety
/// `V`'s target features are available; `a` is validated (its rows fit)
/// for `out.len()` rows; `scratch` holds [`scratch_len`]`(a)` zeroed
/// bytes.
#[inline(always)]
pub(super) unsafe fn dot_rows<V: ByteLanes>(
    a: &Int8Rows<'_>,
    out: &mut [f32],
    scratch: &mut [u8],
) -> usize {
    if !(1..=6).contains(&a.bits) || a.q.dim == 0 || scratch.len() < scratch_len(a) {
        return 0;
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        let t = V::table(a.c8, a.bits);
        match a.bits {
            1 => in_place::<V, 1>(&t, a, out, scratch),
            2 => in_place::<V, 2>(&t, a, out, scratch),
            4 => in_place::<V, 4>(&t, a, out, scratch),
            3 => unpacked::<V, 3>(&t, a, out, scratch),
            5 => unpacked::<V, 5>(&t, a, out, scratch),
            _ => unpacked::<V, 6>(&t, a, out, scratch),
        }
    }
    out.len()
}

/// Rows of `B`-bit codes (`B` = 1, 2, 4) read in place, `8/B` fields a
/// byte.
///
/// # Safety
/// As [`dot_rows`].
#[inline(always)]
unsafe fn in_place<V: ByteLanes, const B: u32>(
    t: &V::Table,
    a: &Int8Rows<'_>,
    out: &mut [f32],
    fields: &mut [u8],
) {
    let (q, mult, rows, stride) = (a.q, a.mult, a.rows, a.stride);
    let per = (8 / B) as usize;
    let row_len = packed_len(q.dim, B as u8);
    let padded = row_len.div_ceil(V::LANES) * V::LANES;
    // The query field by field: `fields[f·padded + j]` = q8 of code
    // `j·per + f` (0 past the last code), as bytes.
    for (i, &v) in q.values[..q.dim].iter().enumerate() {
        fields[(i % per) * padded + i / per] = v as u8;
    }
    let whole = row_len / V::LANES;
    let mask = ((1u32 << B) - 1) as u8;
    let mut tail = [0u8; 32];
    for (r, o) in out.iter_mut().enumerate() {
        let row = &rows[r * stride..][..row_len];
        // SAFETY: the loads read whole registers of `row`, or of `tail`;
        // the query reads stay in `fields` (`per·padded ≤ scratch_len`).
        unsafe {
            let mut sums = V::zero();
            for ch in 0..padded / V::LANES {
                let x = if ch < whole {
                    V::load(row.as_ptr().add(ch * V::LANES))
                } else {
                    let rest = &row[ch * V::LANES..];
                    tail[..rest.len()].copy_from_slice(rest);
                    tail[rest.len()..].fill(0);
                    V::load(tail.as_ptr())
                };
                for f in 0..per {
                    let c = V::lookup(t, x.field(f as u32 * B, mask));
                    let qf = fields.as_ptr().add(f * padded + ch * V::LANES);
                    sums = V::mul_add(sums, c, qf.cast());
                }
            }
            *o = V::total(sums) as f32 * mult;
        }
    }
}

/// Rows of 3-, 5- or 6-bit codes, each unpacked to bytes first.
///
/// # Safety
/// As [`dot_rows`].
#[inline(always)]
unsafe fn unpacked<V: ByteLanes, const B: u8>(
    t: &V::Table,
    a: &Int8Rows<'_>,
    out: &mut [f32],
    scratch: &mut [u8],
) {
    let (bits, q, mult, rows, stride) = (B, a.q, a.mult, a.rows, a.stride);
    let row_len = packed_len(q.dim, bits);
    let regs = q.dim.div_ceil(V::LANES);
    // Codes past `dim` (zeros, or the next codes' bits) meet query bytes
    // that are 0.
    for (r, o) in out.iter_mut().enumerate() {
        let row = &rows[r * stride..][..row_len];
        // SAFETY: `row` is the packed length of `q.dim` codes, read by
        // `codes` inside its bounds; `scratch` holds at least `LANES`
        // bytes (`scratch_len`); the query loads read `q.values` below
        // `regs·LANES ≤ padded(dim)`.
        unsafe {
            let mut sums = V::zero();
            for ch in 0..regs {
                let c = V::lookup(t, V::codes::<B>(row, ch, scratch));
                sums = V::mul_add(sums, c, q.values.as_ptr().add(ch * V::LANES));
            }
            *o = V::total(sums) as f32 * mult;
        }
    }
}
