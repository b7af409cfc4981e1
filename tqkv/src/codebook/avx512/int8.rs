//! The AVX-512 kernel of the 8-bit integer scores (`codebook::int8`).
//!
//! Each 64 codes of a row: one masked load, `vpermb` + `vpmultishiftqb`
//! to give every code a byte (as [`unpack64`](super::unpack64), without
//! the mask: the table repeats with period `2^b`, so the bits above a code
//! do not change what `vpermb` picks), one `vpermb` to look up
//! `c8 + 128` (unsigned, as `vpdpbusd` wants it), and one `vpdpbusd` that
//! adds 64 products with the query's bytes into 16 dword sums. Sixteen
//! rows' sums are then folded into one register of 16 scores (four
//! levels of lane shuffles and adds); the `+128` comes off as
//! `128·Σ q8`. Integer sums are exact, so the scores equal the portable
//! loop's bit for bit.

use core::arch::x86_64::*;

use super::{PERM, shifts};
use crate::codebook::int8::Int8Rows;
use crate::codebook::pack::packed_len;

/// Codes per step.
const CODES: usize = 64;

/// Scores the first `16·⌊n/16⌋` of `n = out.len()` rows as
/// `codebook::int8::dot_rows` does; returns how many (0 for a backend
/// other than AVX-512 or codes of more than 6 bits). `a` is validated
/// (`codebook::dot_rows_int8_in`) for `n` rows.
pub(in crate::codebook) fn dot_rows(
    backend: crate::backend::Checked,
    a: &Int8Rows<'_>,
    out: &mut [f32],
) -> usize {
    if backend.backend() != crate::Backend::Avx512 || !(1..=6).contains(&a.bits) || a.q.dim == 0 {
        return 0;
    }
    let period = 1usize << a.bits;
    let mut table = [0u8; CODES];
    for (j, t) in table.iter_mut().enumerate() {
        *t = (a.c8[j % period] as i32 + 128) as u8;
    }
    let blocks = out.len() / 16;
    // SAFETY: `Checked` proves the AVX-512 feature list; the rows of
    // `16·blocks ≤ n` fit (the caller's validation).
    unsafe { dot_blocks(a, &table, blocks, out) };
    16 * blocks
}

/// The constants of one call.
struct Consts<const C: usize> {
    tab: __m512i,
    perm: __m512i,
    shift: __m512i,
    /// Bytes of chunk `ch` within a row.
    masks: [u64; C],
    /// Offset of chunk `ch` within a row.
    chunk_bytes: usize,
    /// The query's bytes of chunk `ch`.
    q: [__m512i; C],
    /// `128·Σ q8`, what the unsigned centroids add.
    bias: __m512i,
    /// From integer sums to scores.
    scale: __m512,
}

impl<const C: usize> Consts<C> {
    /// The constants of a call; masks and query bytes of the first `C`
    /// chunks.
    ///
    /// # Safety
    /// AVX-512F available; `a.bits ∈ 1..=6`; `a.q.dim ≥ 1`.
    #[inline(always)]
    unsafe fn new(a: &Int8Rows<'_>, table: &[u8; CODES]) -> Self {
        let (q, b) = (a.q, a.bits as usize);
        let chunk_bytes = CODES / 8 * b;
        // SAFETY: the loads read the 64-byte `table`, `PERM[b]`, and the
        // first `64·C ≤ MAX_DIM` bytes of `q.values`.
        unsafe {
            Consts {
                tab: _mm512_loadu_si512(table.as_ptr().cast()),
                perm: _mm512_loadu_si512(PERM[b].as_ptr().cast()),
                shift: _mm512_set1_epi64(shifts(b as u64) as i64),
                masks: core::array::from_fn(|ch| chunk_mask(a, ch)),
                chunk_bytes,
                q: core::array::from_fn(|ch| {
                    _mm512_loadu_si512(q.values.as_ptr().add(ch * CODES).cast())
                }),
                bias: _mm512_set1_epi32(
                    128 * q.values[..q.dim].iter().map(|&v| v as i32).sum::<i32>(),
                ),
                scale: _mm512_set1_ps(a.mult),
            }
        }
    }
}

/// The bytes of chunk `ch` (codes `64·ch …`) within a row, as a load mask.
fn chunk_mask(a: &Int8Rows<'_>, ch: usize) -> u64 {
    let chunk_bytes = CODES / 8 * a.bits as usize;
    let have = (packed_len(a.q.dim, a.bits) - ch * chunk_bytes).min(chunk_bytes);
    (1u64 << have) - 1
}

crate::backend::avx512_features!(crate::backend::target_features {
    /// [`dot_rows`]' loop over `blocks` blocks of 16 rows: the query in
    /// registers for rows of up to four chunks of 64 codes, read from
    /// memory for longer ones.
    ///
    /// # Safety
    /// AVX-512 available; `a` validated for `16·blocks` rows, with
    /// `bits ∈ 1..=6` and `q.dim ≥ 1`.
    unsafe fn dot_blocks(a: &Int8Rows<'_>, table: &[u8; CODES], blocks: usize, out: &mut [f32]) {
        // SAFETY: forwarded from the caller.
        unsafe {
            match a.q.dim.div_ceil(CODES) {
                1 => blocks_of(&Consts::<1>::new(a, table), a, blocks, out, |k, row| {
                    row_sums(k, row)
                }),
                2 => blocks_of(&Consts::<2>::new(a, table), a, blocks, out, |k, row| {
                    row_sums(k, row)
                }),
                3 => blocks_of(&Consts::<3>::new(a, table), a, blocks, out, |k, row| {
                    row_sums(k, row)
                }),
                4 => blocks_of(&Consts::<4>::new(a, table), a, blocks, out, |k, row| {
                    row_sums(k, row)
                }),
                _ => blocks_of(&Consts::<1>::new(a, table), a, blocks, out, |k, row| {
                    long_row_sums(k, a, row)
                }),
            }
        }
    }
});

/// Scores `blocks` blocks of 16 rows, each row's sums by `sums`.
///
/// # Safety
/// AVX-512 available; `a` validated for `16·blocks` rows; `sums` reads
/// only the row it is given.
#[inline(always)]
unsafe fn blocks_of<const C: usize>(
    k: &Consts<C>,
    a: &Int8Rows<'_>,
    blocks: usize,
    out: &mut [f32],
    sums: impl Fn(&Consts<C>, *const u8) -> __m512i,
) {
    // SAFETY: the rows are `a.stride` apart inside `a.rows`; the stores
    // write `out`'s first `16·blocks` values.
    unsafe {
        let base = a.rows.as_ptr();
        for blk in 0..blocks {
            let block = base.add(16 * blk * a.stride);
            let acc: [__m512i; 16] = core::array::from_fn(|t| sums(k, block.add(t * a.stride)));
            store_scores(k, &acc, out.as_mut_ptr().add(16 * blk));
        }
    }
}

/// One row's 16 dword sums over all its chunks (any length), the query
/// read from memory.
///
/// # Safety
/// AVX-512 F/BW/VBMI/VNNI available; `row` is one of `a`'s rows.
#[inline(always)]
unsafe fn long_row_sums(k: &Consts<1>, a: &Int8Rows<'_>, row: *const u8) -> __m512i {
    // SAFETY: each masked load reads one chunk's bytes of the row; the
    // query loads stay below `64·chunks ≤ MAX_DIM`.
    unsafe {
        let mut acc = _mm512_setzero_si512();
        for ch in 0..a.q.dim.div_ceil(CODES) {
            let mask = chunk_mask(a, ch);
            let qv = _mm512_loadu_si512(a.q.values.as_ptr().add(ch * CODES).cast());
            acc = chunk_sums(k, row.add(ch * k.chunk_bytes), mask, qv, acc);
        }
        acc
    }
}

/// One row's 16 dword sums over its `C` chunks.
///
/// # Safety
/// AVX-512 F/BW/VBMI/VNNI available; `row` holds the bytes under
/// `k.masks`.
#[inline(always)]
unsafe fn row_sums<const C: usize>(k: &Consts<C>, row: *const u8) -> __m512i {
    // SAFETY: the caller's promises.
    unsafe {
        let mut a = _mm512_setzero_si512();
        for ch in 0..C {
            a = chunk_sums(k, row.add(ch * k.chunk_bytes), k.masks[ch], k.q[ch], a);
        }
        a
    }
}

/// `acc` plus the products of one chunk's 64 codes (bytes under `mask` at
/// `at`) with the query bytes `qv`.
///
/// # Safety
/// AVX-512 F/BW/VBMI/VNNI available; the bytes under `mask` at `at` are
/// readable.
#[inline(always)]
unsafe fn chunk_sums<const C: usize>(
    k: &Consts<C>,
    at: *const u8,
    mask: u64,
    qv: __m512i,
    acc: __m512i,
) -> __m512i {
    // SAFETY: the masked load reads only the bytes under `mask`.
    unsafe {
        let data = _mm512_maskz_loadu_epi8(mask, at.cast());
        let codes = _mm512_multishift_epi64_epi8(k.shift, _mm512_permutexvar_epi8(k.perm, data));
        let c = _mm512_permutexvar_epi8(codes, k.tab);
        _mm512_dpbusd_epi32(acc, c, qv)
    }
}

/// Folds 16 rows' sums into their scores, `(Σ − k.bias)·k.scale`, stored at
/// `out[..16]` in row order.
///
/// # Safety
/// AVX-512F available; `out` has 16 writable values.
#[inline(always)]
unsafe fn store_scores<const C: usize>(k: &Consts<C>, acc: &[__m512i; 16], out: *mut f32) {
    // SAFETY: register operations and one 64-byte store at `out`.
    unsafe {
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        let s = _mm512_permutexvar_epi32(order, fold16(acc));
        let f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(s, k.bias)), k.scale);
        _mm512_storeu_ps(out, f);
    }
}

/// The lane sums of 16 registers, register `4k + j`'s in lane `4j + k`:
/// halves, then quarters, then dwords paired and added.
///
/// # Safety
/// AVX-512F is available.
#[inline(always)]
unsafe fn fold16(acc: &[__m512i; 16]) -> __m512i {
    // SAFETY: register operations only, on the caller's ISA.
    unsafe {
        // Register i: row 2i's eight half sums in the low half, row 2i+1's
        // in the high.
        let halves: [__m512i; 8] = core::array::from_fn(|i| {
            let (a, b) = (acc[2 * i], acc[2 * i + 1]);
            _mm512_add_epi32(
                _mm512_shuffle_i64x2::<0b01_00_01_00>(a, b),
                _mm512_shuffle_i64x2::<0b11_10_11_10>(a, b),
            )
        });
        // Register i: rows 4i … 4i+3, four sums each, one per 128-bit lane.
        let quarters: [__m512i; 4] = core::array::from_fn(|i| {
            let (a, b) = (halves[2 * i], halves[2 * i + 1]);
            _mm512_add_epi32(
                _mm512_shuffle_i64x2::<0b10_00_10_00>(a, b),
                _mm512_shuffle_i64x2::<0b11_01_11_01>(a, b),
            )
        });
        let pair = |a: __m512i, b: __m512i| {
            _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b))
        };
        let u = pair(quarters[0], quarters[1]);
        let v = pair(quarters[2], quarters[3]);
        _mm512_add_epi32(_mm512_unpacklo_epi64(u, v), _mm512_unpackhi_epi64(u, v))
    }
}
