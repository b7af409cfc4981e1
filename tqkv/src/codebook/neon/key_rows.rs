//! NEON key scores from tables, four rows a step, one row per lane (the
//! NEON form of the x86 row blocks): per query a 16-entry table per
//! coordinate (`q_j·c_v`, 3- and 4-bit codes) or per nibble of `4/b` codes
//! (1 and 2 bits, `codebook::nibbles`); a block's packed dwords are
//! transposed so that lane `r` holds row `r`'s, and every code (or nibble)
//! then costs a shift, a mask, its `tbl` byte indices, and per query a
//! `tbl` into its table and an add. Each row's sum runs in order from 0.0,
//! adding the entries the scalar kernel adds, so the scores equal the
//! scalar ones bit for bit. Two to four queries share a pass over the rows
//! ([`dot_rows_multi`]): the shift, the mask and the indices once, then
//! each query's own lookup and add, so each query's scores are still the
//! bits it gets alone.

use core::arch::aarch64::*;
use core::mem::MaybeUninit;

use super::entry_bytes;
use super::rows::look_up_bytes;
use crate::codebook::runs::{RunLanes, add_chunk};
use crate::codebook::{Codebook, Queries, ScoreRows, nibbles};

/// One coordinate's (or nibble's) tables of `G` queries, side by side, so
/// that a code's lookups in all of them read one entry.
pub(crate) type Tables<const G: usize> = [[f32; 16]; G];

/// Longest row (in coordinates) scored here: one query's tables take 64
/// bytes a coordinate on the stack.
const BLOCK_MAX_DIM: usize = 256;

/// Most tables (all queries' together) one pass of [`dot_rows_multi`]
/// holds on the stack: 32 KB, so four queries of 128 coordinates at 3 and
/// 4 bits share a pass (two of 256).
const MULTI_MAX_TABLES: usize = 512;

/// Most queries one pass of [`dot_rows_multi`] carries.
const MAX_GROUP: usize = 4;

/// Blocks of 4 rows scored side by side for one query, so that as many
/// add chains overlap (one chain of `d` adds per block holds each row's
/// order): their 16 columns and 4 sums fill most of the 32 registers.
const SIDE_BY_SIDE: usize = 4;

/// Blocks side by side for two to four queries: their 8 columns and up
/// to 8 sums leave registers for the tables.
const SIDE_BY_SIDE_MULTI: usize = 2;

/// Calls `write(p, table)` for each of one query's tables: per nibble at
/// 1 and 2 bits (`nibbles::tables`), per coordinate at 3 and 4 (`q_j·c_v`,
/// the scalar kernel's products, zero past the codebook's entries).
/// Returns how many.
fn query_tables(cb: &Codebook, q: &[f32], mut write: impl FnMut(usize, [f32; 16])) -> usize {
    if nibbles::takes(cb.bits()) {
        return nibbles::tables(cb, q, write);
    }
    let mut cents = [0.0f32; 16];
    cents[..cb.centroids().len()].copy_from_slice(cb.centroids());
    for (j, &qj) in q.iter().enumerate() {
        write(j, cents.map(|c| qj * c));
    }
    q.len()
}

/// How many tables a query of `d` coordinates takes at `bits` (1 to 4).
fn tables_per_query(bits: u8, d: usize) -> usize {
    match nibbles::takes(bits) {
        true => nibbles::count(bits, d),
        false => d,
    }
}

/// One query's scores of the first `4·⌊out.len()/4⌋` rows at 1 to 4 bits,
/// rows of at most [`BLOCK_MAX_DIM`] codes; returns how many rows (0 for
/// other shapes).
///
/// # Safety
/// NEON is available; the arguments are validated as by `dot_rows_on`
/// (every row of `out` fits in `rows`).
#[inline(always)]
pub(super) unsafe fn row_blocks(
    cb: &Codebook,
    q: &[f32],
    rows: &[u8],
    stride: usize,
    out: &mut [f32],
) -> usize {
    let bits = cb.bits();
    let d = q.len();
    if !(1..=4).contains(&bits) || d == 0 || d > BLOCK_MAX_DIM || out.len() < 4 {
        return 0;
    }
    // Only the entries used are written.
    let mut table = [MaybeUninit::<Tables<1>>::uninit(); BLOCK_MAX_DIM];
    // At most d ≤ BLOCK_MAX_DIM tables.
    let entries = query_tables(cb, q, |p, t| {
        table[p].write([t]);
    });
    let n = out.len();
    // SAFETY: entries 0 … entries − 1 were written just above;
    // MaybeUninit<T> has T's layout. NEON is the caller's promise and the
    // rows were validated (a row of `d` codes of 1 or 2 bits is the packed
    // row of `entries` nibbles).
    unsafe {
        let table = core::slice::from_raw_parts(table.as_ptr().cast::<Tables<1>>(), entries);
        match bits {
            3 => table_rows::<3, 1>(table, rows, stride, n, out, 0),
            _ => table_rows::<4, 1>(table, rows, stride, n, out, 0),
        }
    }
}

/// Scores `out[h·out_stride + r] = Σ_j q_h[j]·c[idx_{r,j}]` of `g ≥ 2`
/// query vectors (`q_h = q.values[h·q.stride..][..d]`) at 1 to 4 bits for
/// the first `4·⌊n/4⌋` of `n` rows, in passes of up to four queries (fewer
/// where their tables would pass [`MULTI_MAX_TABLES`]); returns how many
/// rows it scored (0, touching nothing, for other shapes or backends, or
/// buffers that do not hold the shape). Each query's scores equal the
/// single-query row blocks' bit for bit: its own tables, added in the same
/// order. A code's shift, mask and byte indices (three of its five
/// operations for one query) are shared by the pass's queries.
pub(in crate::codebook) fn dot_rows_multi(
    backend: crate::backend::Checked,
    cb: &Codebook,
    job: ScoreRows<'_>,
    out: &mut [f32],
    out_stride: usize,
) -> usize {
    let (bits, d, g) = (cb.bits(), job.q.dim, job.q.count);
    if backend.backend() != crate::Backend::Neon
        || !(1..=4).contains(&bits)
        || g < 2
        || d == 0
        || d > BLOCK_MAX_DIM
        || job.n < 4
        || !job.fits(bits, out.len(), out_stride)
    {
        return 0;
    }
    let per_pass = (MULTI_MAX_TABLES / tables_per_query(bits, d)).min(MAX_GROUP);
    let n = job.n / 4 * 4;
    let mut h = 0;
    while h < g {
        let group = (g - h).min(per_pass);
        let q = Queries {
            values: &job.q.values[h * job.q.stride..],
            count: group,
            ..job.q
        };
        let pass = ScoreRows { q, n, ..job };
        let o = &mut out[h * out_stride..];
        // SAFETY: `Checked` proves NEON; the buffers hold the shape
        // (`fits` above), so every query read and every score written of
        // this pass lies inside its slice; the tables of `group ≤
        // per_pass` queries fit in MULTI_MAX_TABLES.
        unsafe {
            match group {
                1 => multi_pass::<1>(cb, pass, o, out_stride),
                2 => multi_pass::<2>(cb, pass, o, out_stride),
                3 => multi_pass::<3>(cb, pass, o, out_stride),
                _ => multi_pass::<4>(cb, pass, o, out_stride),
            }
        }
        h += group;
    }
    n
}

/// One pass of [`dot_rows_multi`]: the tables of the `G` queries of
/// `job.q`, then the `job.n` rows (a multiple of 4).
///
/// # Safety
/// NEON is available; `cb` has 1 to 4 bits; `G` queries of `d ≤`
/// [`BLOCK_MAX_DIM`] coordinates take at most [`MULTI_MAX_TABLES`] tables;
/// the queries, the rows and `G` runs of `n` scores `out_stride` apart lie
/// inside their buffers.
#[inline(always)]
unsafe fn multi_pass<const G: usize>(
    cb: &Codebook,
    job: ScoreRows<'_>,
    out: &mut [f32],
    out_stride: usize,
) {
    let q = job.q;
    // Query h's table p goes to p·G + h: a code's G tables side by side.
    let mut table = [MaybeUninit::<[f32; 16]>::uninit(); MULTI_MAX_TABLES];
    let mut entries = 0;
    for h in 0..G {
        entries = query_tables(cb, &q.values[h * q.stride..][..q.dim], |p, t| {
            table[p * G + h].write(t);
        });
    }
    // SAFETY: every query has the same `entries` tables, so the first
    // G·entries were written just above; Tables<G> is G arrays [f32; 16]
    // in a row, of their alignment. NEON and the buffers are the caller's
    // promises.
    unsafe {
        let table = core::slice::from_raw_parts(table.as_ptr().cast::<Tables<G>>(), entries);
        let (rows, stride, n) = (job.rows, job.stride, job.n);
        match cb.bits() {
            3 => table_rows::<3, G>(table, rows, stride, n, out, out_stride),
            _ => table_rows::<4, G>(table, rows, stride, n, out, out_stride),
        };
    }
}

/// `out[h·out_stride + r] = Σ_p table[p][h][nibble p of row r]` (nibble
/// `p`: bits `4p … 4p + 3` of the row's bytes) for the first `4·⌊n/4⌋` of
/// `n` rows and the `G` tables of each nibble; returns how many rows. The
/// 4-bit key row blocks with a caller's tables: the QJL sign sums use them
/// with a table per four signs, of one query or of several sharing a pass.
///
/// # Safety
/// NEON is available; `table.len() ≤` [`BLOCK_MAX_DIM`]; the `n` rows
/// (`⌈table.len()/2⌉` bytes each, `stride` apart) lie inside `rows`, and
/// the `G` runs of sums inside `out`.
#[inline(always)]
pub(crate) unsafe fn nibble_table_rows<const G: usize>(
    table: &[Tables<G>],
    rows: &[u8],
    stride: usize,
    n: usize,
    out: &mut [f32],
    out_stride: usize,
) -> usize {
    // SAFETY: the caller's promises, at 4 bits.
    unsafe { table_rows::<4, G>(table, rows, stride, n, out, out_stride) }
}

crate::backend::neon_features!(crate::backend::target_features {
    /// `out[h·out_stride + r] = Σ_j table[j][h][code j of row r]` at `B`
    /// bits for the first `4·⌊n/4⌋` rows, blocks of 4 side by side
    /// ([`SIDE_BY_SIDE`] for one query, [`SIDE_BY_SIDE_MULTI`] for more),
    /// then one; returns how many. A function of its own for each `B` and
    /// `G`, never inlined (as the x86 ones: the instrumented fuzz build's
    /// coverage tables cost the square of a function's blocks).
    ///
    /// # Safety
    /// NEON is available; `table.len() ≤` [`BLOCK_MAX_DIM`]; the `n` rows
    /// (`packed_len(table.len(), B)` bytes each, `stride` apart) lie inside
    /// `rows`, and the `G` runs of `n` sums `out_stride` apart inside `out`.
    #[inline(never)]
    unsafe fn table_rows<const B: usize, const G: usize>(
        table: &[Tables<G>],
        rows: &[u8],
        stride: usize,
        n: usize,
        out: &mut [f32],
        out_stride: usize,
    ) -> usize {
        let blocks = n / 4;
        let mut blk = 0;
        // SAFETY: the caller's promises are `block_group`'s for every block.
        unsafe {
            if G == 1 {
                while blk + SIDE_BY_SIDE <= blocks {
                    block_group::<B, G, SIDE_BY_SIDE>(table, rows, stride, blk, out, out_stride);
                    blk += SIDE_BY_SIDE;
                }
            } else {
                while blk + SIDE_BY_SIDE_MULTI <= blocks {
                    block_group::<B, G, SIDE_BY_SIDE_MULTI>(table, rows, stride, blk, out, out_stride);
                    blk += SIDE_BY_SIDE_MULTI;
                }
            }
            while blk < blocks {
                block_group::<B, G, 1>(table, rows, stride, blk, out, out_stride);
                blk += 1;
            }
        }
        blocks * 4
    }
});

/// Transposes 4 rows of 4 dwords: `out[c]` lane `r` = `rows[r]` lane `c`.
///
/// # Safety
/// NEON is available.
#[inline(always)]
unsafe fn transpose4(r: &[uint32x4_t; 4]) -> [uint32x4_t; 4] {
    // SAFETY: NEON is the caller's promise; registers only.
    unsafe {
        let t0 = vreinterpretq_u64_u32(vtrn1q_u32(r[0], r[1]));
        let t1 = vreinterpretq_u64_u32(vtrn2q_u32(r[0], r[1]));
        let t2 = vreinterpretq_u64_u32(vtrn1q_u32(r[2], r[3]));
        let t3 = vreinterpretq_u64_u32(vtrn2q_u32(r[2], r[3]));
        [
            vreinterpretq_u32_u64(vtrn1q_u64(t0, t2)),
            vreinterpretq_u32_u64(vtrn1q_u64(t1, t3)),
            vreinterpretq_u32_u64(vtrn2q_u64(t0, t2)),
            vreinterpretq_u32_u64(vtrn2q_u64(t1, t3)),
        ]
    }
}

/// Scores blocks `blk0 … blk0 + NB − 1` (4 rows each) at `B` bits for the
/// `G` queries whose tables `table` holds: query `h`'s scores of row `r`
/// go to `out[h·out_stride + r]`.
///
/// A chunk is the bytes of a whole number of codes in at most 4 dwords: 16
/// bytes for 1, 2 and 4 bits, 12 (32 codes) for 3. Every `B` dwords hold
/// 32 codes (the walk of `codebook::runs`).
///
/// # Safety
/// NEON is available; the 4·NB rows from `4·blk0` fit in `rows`, and their
/// `G` runs of scores in `out`; `table.len()` is the row's number of codes.
#[inline(always)]
unsafe fn block_group<const B: usize, const G: usize, const NB: usize>(
    table: &[Tables<G>],
    rows: &[u8],
    stride: usize,
    blk0: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let d = table.len();
    let row_len = crate::codebook::pack::packed_len(d, B as u8);
    let chunk_bytes = if B == 3 { 12 } else { 16 };
    let chunk_codes = chunk_bytes * 8 / B;
    // SAFETY: NEON is the caller's promise. A chunk is loaded in place when
    // 16 bytes from its start lie inside `rows` (bytes past the row's own
    // belong to the next chunk or row and land in codes past d, or in bits
    // no code of the chunk reads); otherwise its bytes are copied to a
    // local buffer first. So nothing past `rows` is read. The table loads
    // read entries j < d; the stores write rows 4·blk0 … 4·(blk0 + NB) − 1
    // of each query's scores.
    unsafe {
        let keep = vdupq_n_u32((1 << B) - 1);
        let mut acc = [[vdupq_n_f32(0.0); G]; NB];
        let mut chunk = 0;
        while chunk * chunk_bytes < row_len {
            let bytes = (row_len - chunk * chunk_bytes).min(chunk_bytes);
            let mut cols = [[vdupq_n_u32(0); 4]; NB];
            for (nb, col) in cols.iter_mut().enumerate() {
                let mut r = [vdupq_n_u32(0); 4];
                for (i, ri) in r.iter_mut().enumerate() {
                    let at = ((blk0 + nb) * 4 + i) * stride + chunk * chunk_bytes;
                    *ri = if at + 16 <= rows.len() {
                        vreinterpretq_u32_u8(vld1q_u8(rows.as_ptr().add(at)))
                    } else {
                        let mut part = [0u8; 16];
                        part[..bytes].copy_from_slice(&rows[at..at + bytes]);
                        vreinterpretq_u32_u8(vld1q_u8(part.as_ptr()))
                    };
                }
                *col = transpose4(&r);
            }
            let first = chunk * chunk_codes;
            add_chunk::<NeonRuns<G>, B, NB, 4>(
                &cols,
                chunk_bytes / 4,
                &table[first..],
                keep,
                &mut acc,
            );
            chunk += 1;
        }
        for (nb, sums) in acc.iter().enumerate() {
            for (h, s) in sums.iter().enumerate() {
                vst1q_f32(out.as_mut_ptr().add(h * out_stride + (blk0 + nb) * 4), *s);
            }
        }
    }
}

/// [`RunLanes`] on NEON for `G` queries: a code's `tbl` byte indices once
/// ([`entry_bytes`], the context the mask of a code's bits), then its
/// entry in each query's table (`look_up_bytes`), added by `fadd`.
struct NeonRuns<const G: usize>;

// SAFETY: NEON instructions only, which the callers' target features
// provide; `add_entry` reads its entry's G tables.
unsafe impl<const G: usize> RunLanes for NeonRuns<G> {
    type Col = uint32x4_t;
    type Sum = [float32x4_t; G];
    type Entry = Tables<G>;
    type Ctx = uint32x4_t;

    #[inline(always)]
    unsafe fn zero() -> uint32x4_t {
        // SAFETY: the trait's contract.
        unsafe { vdupq_n_u32(0) }
    }

    #[inline(always)]
    unsafe fn shr_width<const B: usize>(x: uint32x4_t) -> uint32x4_t {
        // SAFETY: the trait's contract.
        unsafe {
            match B {
                1 => vshrq_n_u32::<1>(x),
                2 => vshrq_n_u32::<2>(x),
                3 => vshrq_n_u32::<3>(x),
                _ => vshrq_n_u32::<4>(x),
            }
        }
    }

    #[inline(always)]
    unsafe fn shl(x: uint32x4_t, n: i32) -> uint32x4_t {
        // SAFETY: the trait's contract.
        unsafe { vshlq_u32(x, vdupq_n_s32(n)) }
    }

    #[inline(always)]
    unsafe fn shr(x: uint32x4_t, n: i32) -> uint32x4_t {
        // SAFETY: the trait's contract.
        unsafe { vshlq_u32(x, vdupq_n_s32(-n)) }
    }

    #[inline(always)]
    unsafe fn or(a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
        // SAFETY: the trait's contract.
        unsafe { vorrq_u32(a, b) }
    }

    #[inline(always)]
    unsafe fn add_entry<const B: usize>(
        sums: [float32x4_t; G],
        entry: &Tables<G>,
        codes: uint32x4_t,
        keep: uint32x4_t,
    ) -> [float32x4_t; G] {
        // SAFETY: the trait's contract; each lookup reads its own table.
        unsafe {
            let idx = entry_bytes(vandq_u32(codes, keep));
            let mut sums = sums;
            for (s, t) in sums.iter_mut().zip(entry) {
                *s = vaddq_f32(*s, look_up_bytes::<B>(t, idx));
            }
            sums
        }
    }
}
