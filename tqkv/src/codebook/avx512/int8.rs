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
//! loop's bit for bit. Several queries over the same rows (the query heads
//! of a KV head) share the loads and lookups: each further query costs
//! one `vpdpbusd` per 64 codes and its fold.

use core::arch::x86_64::*;

use super::Spread;
use crate::codebook::int8::Int8Rows;
use crate::codebook::pack::packed_len;

/// Codes per step.
const CODES: usize = 64;

/// Longest row (codes) whose query bytes stay in registers; longer rows
/// take one query at a time.
const REG_DIM: usize = 4 * CODES;

/// Scores the first `16·⌊n/16⌋` of `n` rows for each query of `a` (the
/// same rows, codes and centroids; queries of their own): query `h`'s
/// scores go to `out[h·out_stride..][..n]`, as `codebook::int8::dot_rows`
/// gives them. Returns how many rows it scored: 0 for a backend other than
/// AVX-512, codes of more than 6 bits, more than `int8::GROUP` queries,
/// or several queries over rows longer than 256 codes.
///
/// `a` is validated (`codebook::dot_rows_int8_multi_in`) for `n` rows, and
/// `out` for `g` outputs of `n` values `out_stride` apart.
pub(in crate::codebook) fn dot_rows(
    backend: crate::backend::Checked,
    a: &[Int8Rows<'_>],
    n: usize,
    out: &mut [f32],
    out_stride: usize,
) -> usize {
    let Some(first) = a.first() else {
        return 0;
    };
    let (bits, dim) = (first.bits, first.q.dim);
    if backend.backend() != crate::Backend::Avx512
        || !(1..=6).contains(&bits)
        || dim == 0
        || a.len() > crate::codebook::int8::GROUP
        || (a.len() > 1 && dim > REG_DIM)
    {
        return 0;
    }
    let period = 1usize << bits;
    let mut table = [0u8; CODES];
    for (j, t) in table.iter_mut().enumerate() {
        *t = (first.c8[j & (period - 1)] as i32 + 128) as u8;
    }
    let blocks = n / 16;
    // SAFETY: `Checked` proves the AVX-512 feature list; the rows of
    // `16·blocks ≤ n` fit and `out` holds every query's scores (the
    // caller's validation).
    unsafe { dot_blocks(a, &table, blocks, out, out_stride) };
    16 * blocks
}

/// What every query of a call shares: the lookup table and the unpacking
/// of `C` chunks of 64 codes.
struct Codes<const C: usize> {
    tab: __m512i,
    spread: Spread,
    /// Bytes of chunk `ch` within a row.
    masks: [u64; C],
    /// Bytes from one chunk of a row to the next.
    chunk_bytes: usize,
}

/// One query: its bytes of each chunk, what the unsigned centroids add
/// (`128·Σ q8`), and the factor from integer sums to scores.
#[derive(Clone, Copy)]
struct Query<const C: usize> {
    q: [__m512i; C],
    bias: __m512i,
    scale: __m512,
}

impl<const C: usize> Codes<C> {
    /// # Safety
    /// AVX-512F available; `a.bits ∈ 1..=6`; `a.q.dim ≥ 1`.
    #[inline(always)]
    unsafe fn new(a: &Int8Rows<'_>, table: &[u8; CODES]) -> Self {
        let b = a.bits as usize;
        // SAFETY: the loads read the 64-byte `table` and `PERM[b]`.
        unsafe {
            let mut masks = [0; C];
            for (ch, m) in masks.iter_mut().enumerate() {
                *m = chunk_mask(a, ch);
            }
            Codes {
                tab: _mm512_loadu_si512(table.as_ptr().cast()),
                spread: Spread::new(b),
                masks,
                chunk_bytes: CODES / 8 * b,
            }
        }
    }

    /// `c8 + 128` of the codes of chunk `ch` of `row`.
    ///
    /// # Safety
    /// AVX-512 F/BW/VBMI available; the bytes under `mask` at
    /// `row + ch·chunk_bytes` are readable.
    #[inline(always)]
    unsafe fn centroids(&self, row: *const u8, ch: usize, mask: u64) -> __m512i {
        // SAFETY: the masked load reads only the bytes under `mask`.
        unsafe {
            let data = _mm512_maskz_loadu_epi8(mask, row.add(ch * self.chunk_bytes).cast());
            let codes = self.spread.codes(data);
            _mm512_permutexvar_epi8(codes, self.tab)
        }
    }
}

impl<const C: usize> Query<C> {
    /// The first `C` chunks of `a`'s query.
    ///
    /// # Safety
    /// AVX-512F available.
    #[inline(always)]
    unsafe fn new(a: &Int8Rows<'_>) -> Self {
        let q = a.q;
        // SAFETY: the loads read the first `64·C ≤ MAX_DIM` bytes of
        // `q.values`.
        unsafe {
            let mut regs = [_mm512_setzero_si512(); C];
            for (ch, r) in regs.iter_mut().enumerate() {
                *r = _mm512_loadu_si512(q.values.as_ptr().add(ch * CODES).cast());
            }
            Query {
                q: regs,
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
    /// [`dot_rows`]' loop over `blocks` blocks of 16 rows.
    ///
    /// # Safety
    /// AVX-512 available; the validation and shapes [`dot_rows`] accepts,
    /// for `16·blocks` rows.
    unsafe fn dot_blocks(
        a: &[Int8Rows<'_>],
        table: &[u8; CODES],
        blocks: usize,
        out: &mut [f32],
        out_stride: usize,
    ) {
        macro_rules! run {
            ($c:literal) => {
                match a.len() {
                    1 => group::<$c, 1>(a, table, blocks, out, out_stride),
                    2 => group::<$c, 2>(a, table, blocks, out, out_stride),
                    3 => group::<$c, 3>(a, table, blocks, out, out_stride),
                    _ => group::<$c, 4>(a, table, blocks, out, out_stride),
                }
            };
        }
        // SAFETY: forwarded from the caller.
        unsafe {
            match a[0].q.dim.div_ceil(CODES) {
                1 => run!(1),
                2 => run!(2),
                3 => run!(3),
                4 => run!(4),
                _ => long_rows(&a[0], table, blocks, out),
            }
        }
    }
});

/// `G` queries over rows of `C` chunks, their bytes in registers: each row
/// is loaded and looked up once, then multiplied with every query. Rows go
/// four at a time, each query's four sums folded at once into one register
/// (16 rows' sums of four queries held to the end of a block would need 64
/// registers: most of them went to the stack and back).
///
/// # Safety
/// As [`dot_blocks`], with `a.len() == G` and rows of `C` chunks.
#[inline(always)]
unsafe fn group<const C: usize, const G: usize>(
    a: &[Int8Rows<'_>],
    table: &[u8; CODES],
    blocks: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    // SAFETY: rows `stride` apart inside `a[0].rows` (each masked load
    // stops at a row's end); query `h`'s stores write
    // `out[h·out_stride + 16·blk..][..16]`, inside `out`.
    unsafe {
        let k = Codes::<C>::new(&a[0], table);
        // Loops, not `array::from_fn`: through its closures the intrinsics
        // were calls, not instructions.
        let mut queries = [Query::<C>::new(&a[0]); G];
        for (q, a) in queries.iter_mut().zip(a).skip(1) {
            *q = Query::new(a);
        }
        let (base, stride) = (a[0].rows.as_ptr(), a[0].stride);
        for blk in 0..blocks {
            let mut quarters = [[_mm512_setzero_si512(); 4]; G];
            for (i, tile) in (0..4).map(|i| (i, 16 * blk + 4 * i)) {
                let mut c = [[_mm512_setzero_si512(); C]; 4];
                for (t, c) in c.iter_mut().enumerate() {
                    let row = base.add((tile + t) * stride);
                    crate::backend::prefetch_ahead(row, stride);
                    for (ch, c) in c.iter_mut().enumerate() {
                        *c = k.centroids(row, ch, k.masks[ch]);
                    }
                }
                for (qh, quarter) in queries.iter().zip(quarters.iter_mut()) {
                    let mut sums = [_mm512_setzero_si512(); 4];
                    for (s, c) in sums.iter_mut().zip(&c) {
                        for (cv, qv) in c.iter().zip(&qh.q) {
                            *s = _mm512_dpbusd_epi32(*s, *cv, *qv);
                        }
                    }
                    quarter[i] = fold4(&sums);
                }
            }
            for (h, (qh, quarter)) in queries.iter().zip(&quarters).enumerate() {
                let sums = finish16(quarter);
                store_scores(qh, sums, out.as_mut_ptr().add(h * out_stride + 16 * blk));
            }
        }
    }
}

/// One query over rows of any length, its bytes read from memory; rows
/// four at a time as in [`group`].
///
/// # Safety
/// As [`dot_blocks`], for the query `a`.
#[inline(always)]
unsafe fn long_rows(a: &Int8Rows<'_>, table: &[u8; CODES], blocks: usize, out: &mut [f32]) {
    // SAFETY: as in `group`; the query loads stay below
    // `64·chunks ≤ MAX_DIM`.
    unsafe {
        let k = Codes::<1>::new(a, table);
        let query = Query::<1>::new(a);
        let chunks = a.q.dim.div_ceil(CODES);
        for blk in 0..blocks {
            let mut quarters = [_mm512_setzero_si512(); 4];
            for (i, quarter) in quarters.iter_mut().enumerate() {
                let mut sums = [_mm512_setzero_si512(); 4];
                for (t, s) in sums.iter_mut().enumerate() {
                    let row = a.rows.as_ptr().add((16 * blk + 4 * i + t) * a.stride);
                    crate::backend::prefetch_ahead(row, a.stride);
                    for ch in 0..chunks {
                        let qv = _mm512_loadu_si512(a.q.values.as_ptr().add(ch * CODES).cast());
                        *s = _mm512_dpbusd_epi32(*s, k.centroids(row, ch, chunk_mask(a, ch)), qv);
                    }
                }
                *quarter = fold4(&sums);
            }
            store_scores(&query, finish16(&quarters), out.as_mut_ptr().add(16 * blk));
        }
    }
}

/// 16 rows' sums (from [`finish16`]) made scores,
/// `(Σ − bias)·scale`, stored at `out[..16]` in row order.
///
/// # Safety
/// AVX-512F available; `out` has 16 writable values.
#[inline(always)]
unsafe fn store_scores<const C: usize>(q: &Query<C>, folded: __m512i, out: *mut f32) {
    // SAFETY: register operations and one 64-byte store at `out`.
    unsafe {
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        let s = _mm512_permutexvar_epi32(order, folded);
        let f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(s, q.bias)), q.scale);
        _mm512_storeu_ps(out, f);
    }
}

/// Four registers' sums in one: register `j`'s four partial sums in
/// 128-bit lane `j` (halves of pairs added, then quarters).
///
/// # Safety
/// AVX-512F is available.
#[inline(always)]
unsafe fn fold4(acc: &[__m512i; 4]) -> __m512i {
    // SAFETY: register operations only, on the caller's ISA.
    unsafe {
        // Register i: row 2i's eight half sums in the low half, row 2i+1's
        // in the high.
        let half = |a: __m512i, b: __m512i| {
            _mm512_add_epi32(
                _mm512_shuffle_i64x2::<0b01_00_01_00>(a, b),
                _mm512_shuffle_i64x2::<0b11_10_11_10>(a, b),
            )
        };
        let (a, b) = (half(acc[0], acc[1]), half(acc[2], acc[3]));
        _mm512_add_epi32(
            _mm512_shuffle_i64x2::<0b10_00_10_00>(a, b),
            _mm512_shuffle_i64x2::<0b11_01_11_01>(a, b),
        )
    }
}

/// Four [`fold4`] results (rows `4k … 4k+3` in register `k`) folded to one
/// sum a row: row `4k + j`'s in lane `4j + k`.
///
/// # Safety
/// AVX-512F is available.
#[inline(always)]
unsafe fn finish16(quarters: &[__m512i; 4]) -> __m512i {
    // SAFETY: register operations only, on the caller's ISA.
    unsafe {
        let pair = |a: __m512i, b: __m512i| {
            _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b))
        };
        let u = pair(quarters[0], quarters[1]);
        let v = pair(quarters[2], quarters[3]);
        _mm512_add_epi32(_mm512_unpacklo_epi64(u, v), _mm512_unpackhi_epi64(u, v))
    }
}
