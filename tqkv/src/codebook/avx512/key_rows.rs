//! AVX-512 key scores from tables, sixteen rows a step, one row per lane:
//! per query a 16-entry table per coordinate (`q_j · c_v`, 3- and 4-bit
//! codes) or per nibble of `4/b` codes (1 and 2 bits,
//! `codebook::nibbles`); per block, the rows' bytes are transposed 16
//! dwords at a time, so that lane `r` of dword register `k` holds row
//! `r`'s dword `k`; then every nibble (or 3-bit code, taken by the walk of
//! `codebook::runs`) costs a shift, a `vpermps` into its table and an add,
//! for 16 rows at once. Each row's sum runs in order from 0.0, adding the
//! entries the scalar kernel adds, so the scores equal the scalar ones bit
//! for bit. Several queries at 1 and 2 bits share a pass
//! over the rows ([`dot_rows_multi`]): each adds its own tables' entries,
//! so each query's scores are the single-query ones, bit for bit.

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::{Rows, block_columns, centroid_lanes};
use crate::codebook::runs::{RunLanes, add_chunk};
use crate::codebook::{Codebook, ScoreRows, nibbles};

/// Longest row (in coordinates) scored here, and the most tables one call
/// holds: 64 bytes each on the stack, 16 KB.
pub(super) const BLOCK_MAX_DIM: usize = 256;

/// Most queries one pass of [`dot_rows_multi`] carries: their sums of four
/// blocks of 16 rows take 16 registers.
const MAX_GROUP: usize = 4;

/// Writes the tables of `q` for `cb`'s codes into the first entries of
/// `out`: per nibble at 1 and 2 bits (the operations of
/// `nibbles::entry`: the first product, then each further one added, so
/// the same bits), per coordinate at 3 and 4 bits. Returns how many: the
/// nibbles of a packed row of `q.len()` codes, or `q.len()`.
///
/// # Safety
/// AVX-512F is available; `cb.bits()` is 1 to 4; `out` holds as many
/// entries as this returns.
#[inline(always)]
unsafe fn write_tables(cb: &Codebook, q: &[f32], out: &mut [MaybeUninit<__m512>]) -> usize {
    let bits = cb.bits();
    let c = cb.centroids();
    // SAFETY: AVX-512F is the caller's promise; the loads read a local
    // pattern or the centroids. (Loops, not closures: a closure does not
    // inherit the target features, and its intrinsics become calls.)
    unsafe {
        if !nibbles::takes(bits) {
            // At 3 bits repeated with period 8: `vpermps` reads a lane's
            // low 4 bits, the one above the code the next code's.
            let period = _mm512_and_si512(
                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                _mm512_set1_epi32((1 << bits) - 1),
            );
            let cv = _mm512_permutexvar_ps(period, centroid_lanes(c, 0));
            for (t, &qj) in out.iter_mut().zip(q) {
                t.write(_mm512_mul_ps(_mm512_set1_ps(qj), cv));
            }
            return q.len();
        }
        let k = 4 / bits as usize;
        let mut pattern = [_mm512_setzero_ps(); 4];
        for (i, pat) in pattern.iter_mut().enumerate().take(k) {
            *pat = _mm512_loadu_ps(nibbles::pattern(c, bits, i).as_ptr());
        }
        let count = nibbles::count(bits, q.len());
        let qi = |j: usize| q.get(j).copied().unwrap_or(0.0);
        for (p, t) in out.iter_mut().take(count).enumerate() {
            let mut sum = _mm512_mul_ps(_mm512_set1_ps(qi(k * p)), pattern[0]);
            for (i, pat) in pattern.iter().enumerate().take(k).skip(1) {
                let qv = _mm512_set1_ps(qi(k * p + i));
                sum = _mm512_add_ps(sum, _mm512_mul_ps(qv, *pat));
            }
            t.write(sum);
        }
        count
    }
}

/// One query's scores of the first `16·⌊out.len()/16⌋` rows at 1 to 4
/// bits, rows of at most [`BLOCK_MAX_DIM`] codes; returns how many rows (0
/// for other shapes). 3-bit codes cross dwords: their rows take the walk
/// of `codebook::runs` ([`three_bit_group`]).
///
/// # Safety
/// AVX-512 F/BW are available; the arguments are validated as by
/// `dot_rows_on` (every row of `out` fits in `rows`).
#[inline(always)]
pub(super) unsafe fn row_blocks(
    cb: &Codebook,
    q: &[f32],
    rows: &[u8],
    stride: usize,
    out: &mut [f32],
) -> usize {
    let d = q.len();
    if !(1..=4).contains(&cb.bits()) || d == 0 || d > BLOCK_MAX_DIM || out.len() < 16 {
        return 0;
    }
    // Only the entries used are written: zeroing all 256 (16 KB) for every
    // call, once per block of tokens in attention, cost a tenth of decode
    // at d = 96.
    let mut table = [MaybeUninit::<__m512>::uninit(); BLOCK_MAX_DIM];
    // SAFETY: AVX-512 F/BW are the caller's promise; `write_tables` writes
    // at most d ≤ BLOCK_MAX_DIM entries, and the first `entries` are then
    // initialised (MaybeUninit<T> has T's layout). A row of `d` codes is
    // the packed row of `entries` nibbles or coordinates of 4 bits.
    unsafe {
        let entries = write_tables(cb, q, &mut table);
        let table = core::slice::from_raw_parts(table.as_ptr().cast::<__m512>(), entries);
        let blocks = out.len() / 16;
        if cb.bits() == 3 {
            block_runs::<1, 3>(table, rows, stride, blocks, out, 0);
        } else {
            block_runs::<1, 4>(table, rows, stride, blocks, out, 0);
        }
        blocks * 16
    }
}

/// `out[h·out_stride + r] = Σ_p table[h·e + p][nibble p of row r]`
/// (nibble `p`: bits `4p … 4p + 3` of the row's bytes; `e =
/// table.len()/G` entries a set) for the first `16·⌊n/16⌋` of `n` rows;
/// returns how many. The 4-bit key row blocks with a caller's tables: the
/// QJL sign sums use them with a table per four signs, up to four
/// queries' sets in one pass (each set's sums the bits it gets alone).
///
/// # Safety
/// AVX-512 F/BW are available; the `n` rows (`⌈table.len()/(2G)⌉` bytes
/// each, `stride` apart) lie inside `rows`, and every set's sums inside
/// `out`.
pub(crate) unsafe fn nibble_table_rows_multi<const G: usize>(
    table: &[__m512],
    rows: &[u8],
    stride: usize,
    n: usize,
    out: &mut [f32],
    out_stride: usize,
) -> usize {
    let blocks = n / 16;
    // SAFETY: the caller's promises are `block_runs`' for every block.
    unsafe { block_runs::<G, 4>(table, rows, stride, blocks, out, out_stride) };
    blocks * 16
}

/// Scores `out[h·out_stride + r]` of `g ≥ 2` query vectors (`q_h =
/// queries[h·q_stride..][..d]`) at 1 and 2 bits for the first `16·⌊n/16⌋`
/// of `n` rows, in passes of up to four queries over the rows (fewer where
/// their tables would pass [`BLOCK_MAX_DIM`]); returns how many rows it
/// scored (0, touching nothing, for other shapes or backends, or buffers
/// that do not hold the shape). Each query's scores equal the
/// single-query row blocks' bit for bit: its own tables, in the same
/// order. Against scoring the centroids once and an FMA per query and
/// code, a nibble of 2-bit codes costs per query one lookup and one add
/// instead of two FMAs, spread over three pipe pairs instead of one.
pub(in crate::codebook) fn dot_rows_multi(
    backend: crate::backend::Checked,
    cb: &Codebook,
    job: ScoreRows<'_>,
    out: &mut [f32],
    out_stride: usize,
) -> usize {
    let (bits, d, g) = (cb.bits(), job.q.dim, job.q.count);
    if backend.backend() != crate::Backend::Avx512
        || !nibbles::takes(bits)
        || g < 2
        || d == 0
        || d > BLOCK_MAX_DIM
        || job.n < 16
        || !job.fits(bits, out.len(), out_stride)
    {
        return 0;
    }
    let (queries, q_stride) = (job.q.values, job.q.stride);
    let (rows, stride) = (job.rows, job.stride);
    let per_pass = (BLOCK_MAX_DIM / nibbles::count(bits, d)).min(MAX_GROUP);
    let blocks = job.n / 16;
    let mut h = 0;
    while h < g {
        let group = (g - h).min(per_pass);
        let q = &queries[h * q_stride..];
        let o = &mut out[h * out_stride..];
        // SAFETY: `Checked` proves the AVX-512 feature list; the buffers
        // hold the shape (`fits` above), so every query read and
        // every score written of this pass lies inside its slice; the
        // tables of `group ≤ per_pass` queries fit in BLOCK_MAX_DIM.
        unsafe {
            match group {
                1 => multi_simd::<1>(cb, q, d, q_stride, rows, stride, blocks, o, out_stride),
                2 => multi_simd::<2>(cb, q, d, q_stride, rows, stride, blocks, o, out_stride),
                3 => multi_simd::<3>(cb, q, d, q_stride, rows, stride, blocks, o, out_stride),
                _ => multi_simd::<4>(cb, q, d, q_stride, rows, stride, blocks, o, out_stride),
            }
        }
        h += group;
    }
    blocks * 16
}

crate::backend::avx512_features!(crate::backend::target_features {
    /// One pass of [`dot_rows_multi`]: the tables of `G` queries, then
    /// every block of rows.
    ///
    /// # Safety
    /// As [`dot_rows_multi`] for this pass: AVX-512 available, `G·count ≤`
    /// [`BLOCK_MAX_DIM`], queries `0 … G − 1` in `queries`, their
    /// `16·blocks` scores in `out`, the rows in `rows`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn multi_simd<const G: usize>(
        cb: &Codebook,
        queries: &[f32],
        d: usize,
        q_stride: usize,
        rows: &[u8],
        stride: usize,
        blocks: usize,
        out: &mut [f32],
        out_stride: usize,
    ) {
        let mut table = [MaybeUninit::<__m512>::uninit(); BLOCK_MAX_DIM];
        let count = nibbles::count(cb.bits(), d);
        // SAFETY: AVX-512 (caller); each query's tables take `count`
        // entries from `h·count`, all below G·count ≤ BLOCK_MAX_DIM, and
        // are then initialised.
        unsafe {
            for h in 0..G {
                let q = &queries[h * q_stride..][..d];
                write_tables(cb, q, &mut table[h * count..]);
            }
            let table = core::slice::from_raw_parts(table.as_ptr().cast::<__m512>(), G * count);
            block_runs::<G, 4>(table, rows, stride, blocks, out, out_stride);
        }
    }

    /// Blocks `0 … blocks − 1` for `G` table sets of `table.len()/G`
    /// entries each (query `h`'s scores from `out[h·out_stride..]`): four
    /// blocks at a time, then one; `B = 4` for nibble tables
    /// ([`block_group`]), `B = 3` for one query's 3-bit rows
    /// ([`three_bit_group`]). A function of its own for each shape, never
    /// inlined: with the unrolled kernel inlined into its callers, the
    /// instrumented fuzz build spent minutes on them (LLVM's coverage
    /// tables cost the square of a function's blocks).
    ///
    /// # Safety
    /// As [`block_group`] (or [`three_bit_group`] with `G = 1`), for every
    /// block.
    #[inline(never)]
    unsafe fn block_runs<const G: usize, const B: usize>(
        table: &[__m512],
        rows: &[u8],
        stride: usize,
        blocks: usize,
        out: &mut [f32],
        out_stride: usize,
    ) {
        let mut blk = 0;
        // SAFETY: forwarded; every block below `blocks` fits.
        unsafe {
            while blk + 4 <= blocks {
                if B == 3 {
                    three_bit_group::<4>(table, rows, stride, blk, out);
                } else {
                    block_group::<G, 4>(table, rows, stride, blk, out, out_stride);
                }
                blk += 4;
            }
            while blk < blocks {
                if B == 3 {
                    three_bit_group::<1>(table, rows, stride, blk, out);
                } else {
                    block_group::<G, 1>(table, rows, stride, blk, out, out_stride);
                }
                blk += 1;
            }
        }
    }
});

/// Scores blocks `blk0 … blk0 + NB − 1` (16 rows each) for `G` table sets:
/// `out[h·out_stride + r] = Σ_p table[h·e + p][nibble p of row r]`, `e =
/// table.len()/G` the entries of a set.
///
/// # Safety
/// AVX-512 F/BW are available; the 16·NB rows from `16·blk0` (`⌈e/2⌉`
/// bytes each) fit in `rows`, and their scores in `out` for every set.
#[inline(always)]
unsafe fn block_group<const G: usize, const NB: usize>(
    table: &[__m512],
    rows: &[u8],
    stride: usize,
    blk0: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let entries = table.len() / G;
    let row_len = entries.div_ceil(2);
    // SAFETY: AVX-512 F/BW are the caller's promise. Every load reads inside
    // one row (masked where the row ends inside its 64-byte chunk); prefetches
    // never fault; the stores write each set's 16·NB scores from 16·blk0.
    unsafe {
        // Opaque to the compiler, which would otherwise turn the FMAs by
        // 1.0 below back into adds.
        let one = _mm512_set1_ps(core::hint::black_box(1.0));
        let mut acc = [[_mm512_setzero_ps(); NB]; G];
        let mut chunk = 0;
        while chunk * 64 < row_len {
            let at = Rows::chunk(rows, stride, row_len, 64, chunk);
            let mut room = [[MaybeUninit::uninit(); 16]; NB];
            let cols = block_columns::<NB>(&at, blk0, &mut room);
            let first = chunk * 128;
            // This chunk's nibbles, each `j = first + 8k + s` below
            // `entries` (as `add_nibble` needs): a whole dword's eight go
            // without a bound check each (a compare and a branch per
            // nibble beside three vector operations).
            let nibbles = entries.saturating_sub(first).min(128);
            for k in 0..nibbles.div_ceil(8) {
                // The k-th dword of every block's rows, shifted down by 4
                // bits per nibble (the lowest needs no shift).
                let mut x = [_mm512_setzero_si512(); NB];
                for (x, col) in x.iter_mut().zip(cols) {
                    *x = col[k];
                }
                let j0 = first + k * 8;
                if nibbles - 8 * k >= 8 {
                    for s in 0..8 {
                        add_nibble::<G, NB>(table, entries, j0 + s, &mut x, one, &mut acc);
                    }
                } else {
                    for s in 0..nibbles - 8 * k {
                        add_nibble::<G, NB>(table, entries, j0 + s, &mut x, one, &mut acc);
                    }
                }
            }
            chunk += 1;
        }
        for (h, acc) in acc.iter().enumerate() {
            for (nb, a) in acc.iter().enumerate() {
                let at = h * out_stride + (blk0 + nb) * 16;
                _mm512_storeu_ps(out.as_mut_ptr().add(at), *a);
            }
        }
    }
}

/// Adds entry `j` of every set's table, looked up by the low nibble of
/// each block's `x`, to the set's sums, then shifts `x` down to the next
/// nibble.
///
/// # Safety
/// AVX-512F is available; `j < entries` and `table` holds `G·entries`
/// entries.
#[inline(always)]
unsafe fn add_nibble<const G: usize, const NB: usize>(
    table: &[__m512],
    entries: usize,
    j: usize,
    x: &mut [__m512i; NB],
    one: __m512,
    acc: &mut [[__m512; NB]; G],
) {
    // SAFETY: AVX-512F (caller); `h·entries + j < G·entries` entries.
    unsafe {
        for (h, acc) in acc.iter_mut().enumerate() {
            let t = *table.get_unchecked(h * entries + j);
            for (a, x) in acc.iter_mut().zip(x.iter()) {
                // An FMA by 1.0 adds exactly as `vaddps` does, but on the
                // FMA pipes: on Zen 4 adds share a pipe with the shifts (8
                // shifts, 8 lookups and 8 adds take 16.3 cycles, with FMAs
                // in place of the adds 12.5).
                *a = _mm512_fmadd_ps(_mm512_permutexvar_ps(*x, t), one, *a);
            }
        }
        for x in x.iter_mut() {
            *x = _mm512_srli_epi32::<4>(*x);
        }
    }
}

/// Scores blocks `blk0 … blk0 + NB − 1` (16 rows each) of 3-bit codes:
/// `Σ_j table[j][code j]` per row. A chunk is 48 bytes of a row (128
/// codes, four runs of three dwords), transposed as 16 dword columns;
/// `codebook::runs::add_chunk` walks each run's 32 codes in order, the two
/// that cross into the next dword by a shift and an or.
///
/// # Safety
/// AVX-512 F/BW are available; the 16·NB rows from `16·blk0` fit in `rows`
/// and `out`; `table.len()` is the row's number of codes.
#[inline(always)]
unsafe fn three_bit_group<const NB: usize>(
    table: &[__m512],
    rows: &[u8],
    stride: usize,
    blk0: usize,
    out: &mut [f32],
) {
    let row_len = crate::codebook::pack::packed_len(table.len(), 3);
    // SAFETY: AVX-512 F/BW are the caller's promise. Every load reads inside
    // one row (masked to its bytes in the chunk); prefetches never fault;
    // the stores write out[16·blk0 … 16·(blk0 + NB)).
    unsafe {
        // Opaque to the compiler, which would otherwise turn the FMAs by
        // 1.0 of `Zmm::add_entry` back into adds.
        let one = _mm512_set1_ps(core::hint::black_box(1.0));
        let mut acc = [_mm512_setzero_ps(); NB];
        let mut chunk = 0;
        while chunk * 48 < row_len {
            let at = Rows::chunk(rows, stride, row_len, 48, chunk);
            let mut room = [[MaybeUninit::uninit(); 16]; NB];
            let cols = block_columns::<NB>(&at, blk0, &mut room);
            let table = &table[chunk * 128..];
            add_chunk::<Zmm, 3, NB, 16>(cols, 12, table, one, &mut acc);
            chunk += 1;
        }
        for (nb, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(out.as_mut_ptr().add((blk0 + nb) * 16), *a);
        }
    }
}

/// [`RunLanes`] on AVX-512: a code's entry by `vpermps` (the table repeats
/// with period 8, so the bit above the code does not matter), added by an
/// FMA with `one` (the context), which rounds as an add.
struct Zmm;

// SAFETY: AVX-512F instructions only, which the callers' target features
// provide; `add_entry` reads its entry's register.
unsafe impl RunLanes for Zmm {
    type Col = __m512i;
    type Sum = __m512;
    type Entry = __m512;
    type Ctx = __m512;

    #[inline(always)]
    unsafe fn zero() -> __m512i {
        // SAFETY: the trait's contract.
        unsafe { _mm512_setzero_si512() }
    }

    #[inline(always)]
    unsafe fn shr_width<const B: usize>(x: __m512i) -> __m512i {
        // SAFETY: the trait's contract.
        unsafe {
            match B {
                1 => _mm512_srli_epi32::<1>(x),
                2 => _mm512_srli_epi32::<2>(x),
                3 => _mm512_srli_epi32::<3>(x),
                _ => _mm512_srli_epi32::<4>(x),
            }
        }
    }

    #[inline(always)]
    unsafe fn shl(x: __m512i, n: i32) -> __m512i {
        // SAFETY: the trait's contract.
        unsafe { _mm512_sll_epi32(x, _mm_cvtsi32_si128(n)) }
    }

    #[inline(always)]
    unsafe fn shr(x: __m512i, n: i32) -> __m512i {
        // SAFETY: the trait's contract.
        unsafe { _mm512_srl_epi32(x, _mm_cvtsi32_si128(n)) }
    }

    #[inline(always)]
    unsafe fn or(a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: the trait's contract.
        unsafe { _mm512_or_si512(a, b) }
    }

    #[inline(always)]
    unsafe fn add_entry<const B: usize>(
        sum: __m512,
        entry: &__m512,
        codes: __m512i,
        one: __m512,
    ) -> __m512 {
        // SAFETY: the trait's contract.
        unsafe { _mm512_fmadd_ps(_mm512_permutexvar_ps(codes, *entry), one, sum) }
    }
}
