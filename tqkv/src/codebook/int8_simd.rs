//! The 8-bit integer scores (`int8`) once for the AVX2 and NEON backends,
//! generic over a small byte-lane trait; each backend instantiates
//! [`dot_rows`] inside a `#[target_feature]` function.
//!
//! Codes of 1, 2 and 4 bits never cross a byte: a register of packed bytes
//! gives `8/b` registers of codes by a shift and a mask each (code
//! `j·8/b + f` is field `f` of byte `j`), and the query is laid out field
//! by field to match. Codes of 3, 5 and 6 bits are spread to one byte
//! each, a register at a time (AVX2: in registers, by a byte shuffle and
//! word multiplies). Then every register of codes is looked up
//! (`vpshufb`, or `tbl`) and multiplied with the query's bytes into i32
//! sums, exactly; one reduction tree per four rows. Registers read past a
//! row's codes into the rows after it (those lanes meet query bytes of
//! 0); only a row too near the end of the rows is copied first, so the
//! loop over a row's registers has no branch and no call (a `memcpy` in
//! it had kept the sums in memory). (AVX-512 has its own kernel, sixteen
//! rows at a time.)

use super::int8::Int8Rows;
use super::pack::packed_len;

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
    /// `LANES` i8 at `q`, both at most 127 in magnitude: exact. `q_abs`
    /// holds their magnitudes (made once a call, not once a register).
    unsafe fn mul_add(sums: Self::Sums, c: Self, q: *const i8, q_abs: *const u8) -> Self::Sums;
    /// The sum of all lanes.
    unsafe fn total(sums: Self::Sums) -> i32;
    /// The sums of all lanes of four, at once (one reduction tree for
    /// four rows, not four).
    unsafe fn totals4(sums: [Self::Sums; 4]) -> [i32; 4];
    /// Register `reg` of the codes of `BITS` bits packed from the start
    /// of `packed` (codes `LANES·reg …`), one a byte, each below
    /// `2^BITS`. `packed` holds at least [`reach`]`(LANES·(reg + 1),
    /// BITS)` bytes, which may run past the row: codes past it are then
    /// whatever those bytes say. `scratch` holds `LANES` bytes for
    /// backends that unpack through memory.
    unsafe fn codes<const BITS: u8>(packed: &[u8], reg: usize, scratch: &mut [u8]) -> Self;
}

/// Bytes from a row's start that [`ByteLanes::codes`] may read for its
/// first `codes` codes (a multiple of the register width) of `bits` bits:
/// their packed bytes and 16 more (AVX2 loads 16 bytes for every 16
/// codes, from the first byte of each).
pub(super) const fn reach(codes: usize, bits: u8) -> usize {
    codes * bits as usize / 8 + 16
}

/// Bytes of work space [`dot_rows`] needs for `a`: the query's bytes laid
/// out as the rows are read, and their magnitudes beside them (at 1, 2
/// and 4 bits field by field, else in order; padded to whole registers
/// of up to 32 bytes); room to copy a row whose registers would read past
/// the end of the rows; and a register for a backend that unpacks codes
/// through memory. At most `2.75·MAX_DIM + 80` (6 bits), within
/// `stack::BYTES_MAX` (tested).
pub(super) fn scratch_len(a: &Int8Rows<'_>) -> usize {
    2 * query_len(a) + row_room(a) + 32
}

/// Bytes of the query as [`dot_rows`] lays it out.
fn query_len(a: &Int8Rows<'_>) -> usize {
    match a.bits {
        1 | 2 | 4 => {
            let per = 8 / a.bits as usize;
            per * packed_len(a.q.dim, a.bits).div_ceil(32) * 32
        }
        _ => a.q.dim.div_ceil(32) * 32,
    }
}

/// Bytes a row's registers read from its start, for registers of up to
/// 32 bytes: whole registers of packed bytes (1, 2, 4 bits), or what
/// [`reach`] says for whole registers of codes.
fn row_room(a: &Int8Rows<'_>) -> usize {
    match a.bits {
        1 | 2 | 4 => packed_len(a.q.dim, a.bits).div_ceil(32) * 32,
        b => reach(a.q.dim.div_ceil(32) * 32, b),
    }
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
    let (query, rest) = scratch.split_at_mut(2 * query_len(a));
    let (room, unpack) = rest.split_at_mut(row_room(a));
    let (values, abs) = query.split_at_mut(query.len() / 2);
    let mut rows = Rows::<V> {
        // SAFETY: forwarded from the caller.
        table: unsafe { V::table(a.c8, a.bits) },
        a,
        values,
        abs,
        room,
        unpack,
    };
    // SAFETY: forwarded from the caller.
    unsafe {
        match a.bits {
            1 => rows.scores::<1>(out),
            2 => rows.scores::<2>(out),
            4 => rows.scores::<4>(out),
            3 => rows.scores::<3>(out),
            5 => rows.scores::<5>(out),
            _ => rows.scores::<6>(out),
        }
    }
    out.len()
}

/// The rows of one call and the query laid out for them.
struct Rows<'a, V: ByteLanes> {
    table: V::Table,
    a: &'a Int8Rows<'a>,
    /// The query's bytes as the rows' registers meet them: at 1, 2 and 4
    /// bits field by field (`values[f·padded + j]` = q8 of code
    /// `j·8/b + f`, `padded` the row's packed bytes in whole registers),
    /// else in order; 0 past the last code.
    values: &'a mut [u8],
    /// Their magnitudes, in the same places.
    abs: &'a mut [u8],
    /// A copy of a row too near the end of the rows for whole registers.
    room: &'a mut [u8],
    /// [`ByteLanes::codes`]' scratch.
    unpack: &'a mut [u8],
}

impl<V: ByteLanes> Rows<'_, V> {
    /// Every row's score, `B`-bit codes, four rows to a reduction.
    ///
    /// # Safety
    /// As [`dot_rows`].
    #[inline(always)]
    unsafe fn scores<const B: u8>(&mut self, out: &mut [f32]) {
        let (q, mult) = (self.a.q, self.a.mult);
        let in_place = matches!(B, 1 | 2 | 4);
        let padded = packed_len(q.dim, B).div_ceil(V::LANES) * V::LANES;
        let per = if in_place { 8 / B as usize } else { 1 };
        for (i, &v) in q.values[..q.dim].iter().enumerate() {
            let at = if in_place {
                (i % per) * padded + i / per
            } else {
                i
            };
            self.values[at] = v as u8;
            self.abs[at] = v.unsigned_abs();
        }
        let four = out.len() / 4 * 4;
        let (quads, rest) = out.split_at_mut(four);
        // SAFETY: forwarded from the caller, rows below `out.len()`.
        unsafe {
            for (i, o) in quads.chunks_exact_mut(4).enumerate() {
                let r = 4 * i;
                let s = [
                    self.sums::<B>(r),
                    self.sums::<B>(r + 1),
                    self.sums::<B>(r + 2),
                    self.sums::<B>(r + 3),
                ];
                for (o, t) in o.iter_mut().zip(V::totals4(s)) {
                    *o = t as f32 * mult;
                }
            }
            for (k, o) in rest.iter_mut().enumerate() {
                *o = V::total(self.sums::<B>(four + k)) as f32 * mult;
            }
        }
    }

    /// Row `r`'s i32 sums.
    ///
    /// # Safety
    /// As [`dot_rows`], row `r` among the validated rows.
    #[inline(always)]
    unsafe fn sums<const B: u8>(&mut self, r: usize) -> V::Sums {
        let a = self.a;
        let dim = a.q.dim;
        let in_place = matches!(B, 1 | 2 | 4);
        let (padded, regs, need) = if in_place {
            let padded = packed_len(dim, B).div_ceil(V::LANES) * V::LANES;
            (padded, padded / V::LANES, padded)
        } else {
            let regs = dim.div_ceil(V::LANES);
            (0, regs, reach(regs * V::LANES, B))
        };
        // The row and those after it, for whole registers; a copy near the
        // end of the rows. Bytes past the row's codes feed codes that meet
        // query bytes of 0.
        let mut row = &a.rows[r * a.stride..];
        if row.len() < need {
            let room = &mut self.room[..need];
            room[..row.len()].copy_from_slice(row);
            row = room;
        }
        // SAFETY: `row` holds `need` bytes: whole registers of packed
        // bytes (in place), or the reach of `regs` registers of codes; the
        // query reads stay below `per·padded` or `regs·LANES`, inside
        // `values` and `abs` (`query_len`).
        unsafe {
            let mut sums = V::zero();
            if in_place {
                let mask = ((1u32 << B) - 1) as u8;
                for ch in 0..regs {
                    let x = V::load(row.as_ptr().add(ch * V::LANES));
                    for f in 0..8 / B as usize {
                        let c = V::lookup(&self.table, x.field(f as u32 * B as u32, mask));
                        let at = f * padded + ch * V::LANES;
                        let q = self.values.as_ptr().add(at).cast();
                        sums = V::mul_add(sums, c, q, self.abs.as_ptr().add(at));
                    }
                }
            } else {
                for ch in 0..regs {
                    let c = V::lookup(&self.table, V::codes::<B>(row, ch, self.unpack));
                    let at = ch * V::LANES;
                    let q = self.values.as_ptr().add(at).cast();
                    sums = V::mul_add(sums, c, q, self.abs.as_ptr().add(at));
                }
            }
            sums
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codebook::int8::{Int8Query, Int8Rows};

    /// The work space of the largest head dimension fits the stack buffer
    /// the backends take it from, at every width (a shorter one would send
    /// every call to the portable loop).
    #[test]
    fn the_largest_work_space_fits_the_stack_buffer() {
        let c8 = [0i8; 256];
        for bits in 1..=6u8 {
            let a = Int8Rows {
                bits,
                c8: &c8,
                q: Int8Query {
                    values: &[],
                    dim: crate::quant::MAX_DIM,
                    max: 1.0,
                },
                mult: 1.0,
                rows: &[],
                stride: 0,
            };
            let len = scratch_len(&a);
            assert!(len <= crate::stack::BYTES_MAX, "{bits} bits: {len}");
            crate::stack::bytes::<u8, _>(len, |b| assert_eq!(b.len(), len));
        }
    }
}
