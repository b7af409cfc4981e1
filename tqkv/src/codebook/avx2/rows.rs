//! The AVX2 decode kernels over rows of codes: the values' weighted sums
//! at 1 to 6 bits ([`value_groups`]) and the keys' scores at 1 to 4 bits,
//! eight rows at a time ([`row_blocks`]).

use core::arch::x86_64::*;

use super::planes::{MirrorPlanes, PlaneLookup, Planes, plane_values};
use super::{lanes_from, pick};
use crate::codebook::pack::rows_within;
use crate::codebook::runs::{RunLanes, add_chunk};

/// The lookup registers of `B`-bit codes: at 4 bits the centroids 0–7 and
/// 8–15; below, the centroids repeated with period `2^B` in the first, so
/// that the bits above a code in its lane (the next codes) do not change
/// what `vpermps` (which reads the low 3 bits) picks, and need no mask.
///
/// # Safety
/// AVX2 is available; `cb.bits() == B ≤ 4`.
#[inline(always)]
pub(super) unsafe fn value_table<const B: usize>(cb: &crate::codebook::Codebook) -> [__m256; 2] {
    let c = cb.centroids();
    // SAFETY: AVX2 is the caller's promise; `lanes_from` reads inside the
    // centroids; the rest are registers.
    unsafe {
        let low = lanes_from(c, 0);
        if B == 4 {
            return [low, lanes_from(c, 8)];
        }
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let period = _mm256_and_si256(lanes, _mm256_set1_epi32((1 << B) - 1));
        [_mm256_permutevar8x32_ps(low, period), _mm256_setzero_ps()]
    }
}

/// `t[i]` per lane for the `B`-bit code in the low bits of each lane of `i`
/// (bits above it ignored), `t` from [`value_table`] (scaled or not): up
/// to 2 bits a `vpermilps` within each 128-bit half (the table repeats
/// with period `2^B ≤ 4`, so each half holds every entry; `vpermps`
/// across the halves is the costly shuffle on Zen 3), at 3 bits one
/// `vpermps`, at 4 a second one and a blend on bit 3 moved to the sign
/// bit.
///
/// # Safety
/// AVX2 is available.
#[inline(always)]
unsafe fn look_up<const B: usize>(t: &[__m256; 2], i: __m256i) -> __m256 {
    // SAFETY: AVX2 is the caller's promise; registers only.
    unsafe {
        if B <= 2 {
            _mm256_permutevar_ps(t[0], i)
        } else if B < 4 {
            _mm256_permutevar8x32_ps(t[0], i)
        } else {
            pick::<2>(t, i)
        }
    }
}

/// [`value_groups`] for `cb`'s width, if it takes the shape (1–6 bits,
/// `out.len()` a nonzero multiple of 8); else `false`, touching nothing.
///
/// # Safety
/// AVX2 and FMA are available; rows validated as by `accumulate_rows_on`.
#[inline(always)]
pub(in crate::codebook) unsafe fn accumulate_groups(
    cb: &crate::codebook::Codebook,
    rows: &[u8],
    stride: usize,
    weights: &[f32],
    out: &mut [f32],
) -> bool {
    let d = out.len();
    if d == 0 || !d.is_multiple_of(8) {
        return false;
    }
    // SAFETY: forwarded from the caller; each width its lookup.
    unsafe {
        match cb.bits() {
            1 => value_groups::<_, 1>(&Narrow::<1>::new(cb), rows, stride, weights, out),
            2 => value_groups::<_, 2>(&Narrow::<2>::new(cb), rows, stride, weights, out),
            3 => value_groups::<_, 3>(&Narrow::<3>::new(cb), rows, stride, weights, out),
            // 32 coordinates at a time from the byte planes, then the rest
            // (d not a multiple of 32) 8 at a time.
            4 => planes_then_groups::<Planes, 4>(cb, rows, stride, weights, out),
            5 => planes_then_groups::<MirrorPlanes<5>, 5>(cb, rows, stride, weights, out),
            6 => planes_then_groups::<MirrorPlanes<6>, 6>(cb, rows, stride, weights, out),
            _ => return false,
        }
    }
    true
}

/// [`accumulate_groups`] at `B` bits (4, 5 or 6): 32 coordinates at a
/// time from the byte planes (`planes::plane_values`), the rest 8 at a
/// time by `L::Rest`.
///
/// # Safety
/// As [`accumulate_groups`], `d` a multiple of 8, `cb.bits() == B ==
/// L::BITS`.
#[inline(always)]
unsafe fn planes_then_groups<L: PlaneLookup, const B: usize>(
    cb: &crate::codebook::Codebook,
    rows: &[u8],
    stride: usize,
    weights: &[f32],
    out: &mut [f32],
) {
    debug_assert_eq!(L::BITS, B);
    let d = out.len();
    let a = crate::codebook::WeightedCodes {
        rows,
        stride,
        n: weights.len(),
        weights,
        w_stride: weights.len(),
        out_stride: d,
        d,
    };
    // SAFETY: forwarded from the caller; the rest's rows start `done`
    // coordinates (`done·B/8` bytes, `done` a multiple of 32) into each row.
    unsafe {
        let done = plane_values::<L, 1, 4>(cb, &a, out);
        if done < d {
            let rest = rows.get(done * B / 8..).unwrap_or(&[]);
            let k = L::rest(cb);
            value_groups::<_, B>(&k, rest, stride, weights, &mut out[done..]);
        }
    }
}

/// The centroids of a group of 8 codes of one width, from its bytes in
/// place: what the value kernels ([`value_groups`], and the multi-set
/// kernel that shares a group between weight sets) are written over.
pub(super) trait Groups {
    /// Bytes a group's read takes from its start.
    const READ: usize;

    /// The centroids of the group at `rows[at..]`: read in place when
    /// `IN_PLACE` ([`READ`](Self::READ) bytes), else from what is left.
    ///
    /// # Safety
    /// AVX2 is available; with `IN_PLACE` `at + READ ≤ rows.len()`, else
    /// the group's own bytes lie in `rows`.
    unsafe fn centroids_at<const IN_PLACE: bool>(&self, rows: &[u8], at: usize) -> __m256;
}

/// Codes of `B ≤ 4` bits: a group is one dword, broadcast and shifted
/// apart in the lanes ([`in_place_centroids`], [`group_centroids`]).
pub(super) struct Narrow<const B: usize> {
    t: [__m256; 2],
    shifts: __m256i,
}

impl<const B: usize> Narrow<B> {
    /// # Safety
    /// AVX2 is available; `cb.bits() == B ≤ 4`.
    #[inline(always)]
    pub(super) unsafe fn new(cb: &crate::codebook::Codebook) -> Narrow<B> {
        // SAFETY: forwarded from the caller.
        unsafe {
            Narrow {
                t: value_table::<B>(cb),
                shifts: group_shifts::<B>(),
            }
        }
    }
}

impl<const B: usize> Groups for Narrow<B> {
    const READ: usize = 4;

    #[inline(always)]
    unsafe fn centroids_at<const IN_PLACE: bool>(&self, rows: &[u8], at: usize) -> __m256 {
        // SAFETY: forwarded from the caller.
        unsafe {
            if IN_PLACE {
                in_place_centroids::<B>(&self.t, rows.as_ptr().add(at), self.shifts)
            } else {
                group_centroids::<B>(&self.t, rows, at, self.shifts)
            }
        }
    }
}

/// `out[j] += Σ_r weights[r]·c[idx_{r,j}]` at `B ≤ 6` bits, `out.len()` a
/// multiple of 8: each 8 codes' `B` bytes are read in place and looked up
/// by `k` ([`Narrow`] up to 4 bits, `Wide` at 5 and 6; no unpacking
/// through memory), then added with one FMA, 64 coordinates at a time over
/// every row. Rows whose groups all lie in `rows` are read in place; the
/// rest (the last rows of a buffer that ends with them) from what is left.
/// Each sum takes the same FMAs in the same row order as the generic
/// kernel, so the bits are the same.
///
/// # Safety
/// AVX2 and FMA are available; rows validated as by `accumulate_rows_on`
/// (row `r`'s `packed_len(out.len(), B)` bytes lie at `rows[r·stride..]`);
/// `k` reads codes of `B` bits.
#[inline(always)]
unsafe fn value_groups<K: Groups, const B: usize>(
    k: &K,
    rows: &[u8],
    stride: usize,
    weights: &[f32],
    out: &mut [f32],
) {
    // SAFETY: AVX2 and FMA are the caller's promise. The in-place group
    // reads of a row lie inside `rows` (`rows_within`); the other rows'
    // stay in bounds. The bytes past a group's own belong to the next
    // codes (or the next row) and land in bits the lookups ignore. Loads
    // and stores of `out` stay inside it.
    unsafe {
        for (ci, chunk) in out.chunks_mut(64).enumerate() {
            let groups = chunk.len() / 8;
            let first = 8 * ci * B;
            let mut acc = [_mm256_setzero_ps(); 8];
            for (g, a) in acc.iter_mut().enumerate().take(groups) {
                *a = _mm256_loadu_ps(chunk.as_ptr().add(8 * g));
            }
            // A whole chunk's eight groups, the last at first + 7B.
            let direct = if groups == 8 {
                rows_within(rows.len(), stride, first + 7 * B + K::READ, weights.len())
            } else {
                0
            };
            let (near, far) = weights.split_at(direct);
            for (r, &w) in near.iter().enumerate() {
                let wv = _mm256_set1_ps(w);
                let row = r * stride + first;
                // The first pass over the rows asks those ahead into L2.
                if ci == 0 {
                    crate::backend::prefetch_ahead(rows.as_ptr().wrapping_add(row), stride);
                }
                for (g, a) in acc.iter_mut().enumerate() {
                    let c = k.centroids_at::<true>(rows, row + g * B);
                    *a = _mm256_fmadd_ps(c, wv, *a);
                }
            }
            for (r, &w) in far.iter().enumerate() {
                let wv = _mm256_set1_ps(w);
                let row = (direct + r) * stride + first;
                for (g, a) in acc.iter_mut().enumerate().take(groups) {
                    let c = k.centroids_at::<false>(rows, row + g * B);
                    *a = _mm256_fmadd_ps(c, wv, *a);
                }
            }
            for (g, a) in acc.iter().enumerate().take(groups) {
                _mm256_storeu_ps(chunk.as_mut_ptr().add(8 * g), *a);
            }
        }
    }
}

/// The centroids of the 8 codes of `B ≤ 4` bits at `at`, read by one dword
/// load in place ([`group_centroids`] copies near the end of a buffer).
///
/// # Safety
/// AVX2 is available; the 4 bytes at `at` are readable.
#[inline(always)]
pub(super) unsafe fn in_place_centroids<const B: usize>(
    t: &[__m256; 2],
    at: *const u8,
    shifts: __m256i,
) -> __m256 {
    // SAFETY: the caller's promises; the bytes past the group's own land in
    // bits the lookups ignore.
    unsafe {
        let word = at.cast::<i32>().read_unaligned();
        look_up::<B>(t, _mm256_srlv_epi32(_mm256_set1_epi32(word), shifts))
    }
}

/// The centroids of the 8 codes of `B ≤ 4` bits at `rows[at..at + B]`: one
/// dword load (a copy where fewer than 4 bytes are left in `rows`),
/// broadcast and shifted apart by `shifts` (lane `l`: `l·B`), looked up in
/// `t` (from [`value_table`]).
///
/// # Safety
/// AVX2 is available; `at + B ≤ rows.len()`.
#[inline(always)]
pub(super) unsafe fn group_centroids<const B: usize>(
    t: &[__m256; 2],
    rows: &[u8],
    at: usize,
    shifts: __m256i,
) -> __m256 {
    // SAFETY: AVX2 is the caller's promise; registers only (`group_word`
    // reads the bytes, in bounds). The bytes past the group's own land in
    // bits the lookups ignore.
    unsafe {
        let word = crate::codebook::pack::group_word::<B>(rows, at);
        look_up::<B>(t, _mm256_srlv_epi32(_mm256_set1_epi32(word as i32), shifts))
    }
}

/// The shifts of [`group_centroids`] at `B` bits (lane `l`: `l·B`).
///
/// # Safety
/// AVX2 is available.
#[inline(always)]
pub(super) unsafe fn group_shifts<const B: usize>() -> __m256i {
    let b = B as i32;
    // SAFETY: AVX2 is the caller's promise; registers only.
    unsafe { _mm256_setr_epi32(0, b, 2 * b, 3 * b, 4 * b, 5 * b, 6 * b, 7 * b) }
}

/// Longest row (in coordinates) scored by [`row_blocks`]: its tables take
/// 64 bytes a coordinate on the stack.
const BLOCK_MAX_DIM: usize = 256;

/// Blocks of 8 rows scored side by side, so that as many add chains
/// overlap (one chain of `d` adds per block holds each row's order).
const SIDE_BY_SIDE: usize = 4;

/// Transposes 8 rows of 8 dwords: `out[c]` lane `r` = `rows[r]` lane `c`.
///
/// # Safety
/// AVX2 is available.
#[inline(always)]
unsafe fn transpose8(r: &[__m256i; 8]) -> [__m256i; 8] {
    // SAFETY: AVX2 is the caller's promise; registers only.
    unsafe {
        let mut t = [_mm256_setzero_si256(); 8];
        for k in 0..4 {
            t[2 * k] = _mm256_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
            t[2 * k + 1] = _mm256_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
        }
        // u[4k + m], 128-bit lane L = column 4L + m of rows 4k … 4k + 3.
        let mut u = [_mm256_setzero_si256(); 8];
        for k in 0..2 {
            u[4 * k] = _mm256_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
            u[4 * k + 1] = _mm256_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
            u[4 * k + 2] = _mm256_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
            u[4 * k + 3] = _mm256_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
        }
        let mut o = [_mm256_setzero_si256(); 8];
        for m in 0..4 {
            o[m] = _mm256_permute2x128_si256::<0x20>(u[m], u[4 + m]);
            o[4 + m] = _mm256_permute2x128_si256::<0x31>(u[m], u[4 + m]);
        }
        o
    }
}

/// Eight rows per step, one row per lane, for 1 to 4 bits and rows of at
/// most [`BLOCK_MAX_DIM`] codes: the AVX2 form of the AVX-512 row blocks
/// (see there). Per query, a table of `q_j·c_v` per coordinate `j` at 3
/// and 4 bits (the [`value_table`] registers scaled), per nibble of `4/b`
/// codes at 1 and 2 bits (`codebook::nibbles`), of which a register keeps
/// the lower 8 entries; per block, the rows' dwords are transposed (and
/// nibbles mirrored, [`mirror_nibbles`]), then each code or nibble costs a
/// shift, a `vpermps` into its table (and a sign flip for a nibble) and an
/// add, for 8 rows at once. Each row is summed in the scalar kernel's
/// order, so the scores equal the scalar ones bit for bit.
///
/// # Safety
/// AVX2 and FMA are available; the arguments are validated as by
/// `dot_rows_on` (every row of `out` fits in `rows`).
#[inline(always)]
pub(in crate::codebook) unsafe fn row_blocks(
    cb: &crate::codebook::Codebook,
    q: &[f32],
    rows: &[u8],
    stride: usize,
    out: &mut [f32],
) -> usize {
    let bits = cb.bits();
    let d = q.len();
    if !(1..=4).contains(&bits) || d == 0 || d > BLOCK_MAX_DIM || out.len() < 8 {
        return 0;
    }
    // Only the entries used are written (zeroing all 256 for every call
    // cost a tenth of decode at small d). Each holds a table's lower half:
    // the lookups mirror the upper (`mirror_nibbles`).
    let mut table = [core::mem::MaybeUninit::<__m256>::uninit(); BLOCK_MAX_DIM];
    // SAFETY: AVX2 is the caller's promise; the loads read local arrays and
    // the codebook's centroids.
    unsafe {
        let entries = if crate::codebook::nibbles::takes(bits) {
            // The operations of `nibbles::entry`: the first product, then
            // each further one added, so the same bits.
            // (Loops, not closures: a closure does not inherit the target
            // features, and its intrinsics become calls.)
            let k = 4 / bits as usize;
            let mut pattern = [_mm256_setzero_ps(); 4];
            for (i, pat) in pattern.iter_mut().enumerate().take(k) {
                let p = crate::codebook::nibbles::pattern(cb.centroids(), bits, i);
                *pat = _mm256_loadu_ps(p.as_ptr());
            }
            let count = crate::codebook::nibbles::count(bits, d);
            let qi = |j: usize| q.get(j).copied().unwrap_or(0.0);
            for (p, t) in table.iter_mut().take(count).enumerate() {
                let mut sum = _mm256_mul_ps(_mm256_set1_ps(qi(k * p)), pattern[0]);
                for (i, pat) in pattern.iter().enumerate().take(k).skip(1) {
                    let qv = _mm256_set1_ps(qi(k * p + i));
                    sum = _mm256_add_ps(sum, _mm256_mul_ps(qv, *pat));
                }
                t.write(sum);
            }
            count
        } else {
            let [lower, _] = match bits {
                3 => value_table::<3>(cb),
                _ => value_table::<4>(cb),
            };
            for (t, &qj) in table.iter_mut().zip(q) {
                t.write(_mm256_mul_ps(_mm256_set1_ps(qj), lower));
            }
            d
        };
        // SAFETY: entries 0 … entries − 1 (at most d ≤ BLOCK_MAX_DIM) were
        // written just above; MaybeUninit<T> has T's layout. A row of `d`
        // codes of 1 or 2 bits is the packed row of `entries` nibbles.
        let table = core::slice::from_raw_parts(table.as_ptr().cast::<__m256>(), entries);
        let blocks = out.len() / 8;
        match bits {
            3 => block_runs::<3>(table, rows, stride, blocks, out),
            _ => block_runs::<4>(table, rows, stride, blocks, out),
        }
        blocks * 8
    }
}

/// `out[r] = Σ_p t_p[nibble p of row r]` (nibble `p`: bits `4p … 4p + 3`
/// of the row's bytes) for the first `8·⌊out.len()/8⌋` rows, each table
/// `t_p` odd (`t_p[15 − v] = −t_p[v]` bit for bit) and given by its lower
/// half, entries 0–7 in `table[p]` ([`mirror_nibbles`]); returns how many.
/// The 4-bit key row blocks with a caller's tables: the QJL sign sums use
/// them with a table per four signs.
///
/// # Safety
/// AVX2 and FMA are available; `table.len() ≤` [`BLOCK_MAX_DIM`]; the rows
/// (`⌈table.len()/2⌉` bytes each, `stride` apart, one per value of `out`)
/// lie inside `rows`.
#[inline(always)]
pub(crate) unsafe fn nibble_table_rows(
    table: &[__m256],
    rows: &[u8],
    stride: usize,
    out: &mut [f32],
) -> usize {
    let blocks = out.len() / 8;
    // SAFETY: the caller's promises are `block_group`'s for every block.
    unsafe { block_runs::<4>(table, rows, stride, blocks, out) };
    blocks * 8
}

crate::backend::avx2_features!(crate::backend::target_features {
    /// Blocks `0 … blocks − 1` of [`row_blocks`] at `B` bits:
    /// [`SIDE_BY_SIDE`] at a time, then one. A function of its own for each
    /// `B`, never inlined (as the AVX-512 one: the instrumented fuzz build's
    /// coverage tables cost the square of a function's blocks).
    ///
    /// # Safety
    /// As [`block_group`], for every block.
    #[inline(never)]
    unsafe fn block_runs<const B: usize>(
        table: &[__m256],
        rows: &[u8],
        stride: usize,
        blocks: usize,
        out: &mut [f32],
    ) {
        let mut blk = 0;
        // SAFETY: forwarded; every block below `blocks` fits.
        unsafe {
            while blk + SIDE_BY_SIDE <= blocks {
                block_group::<B, SIDE_BY_SIDE>(table, rows, stride, blk, out);
                blk += SIDE_BY_SIDE;
            }
            while blk < blocks {
                block_group::<B, 1>(table, rows, stride, blk, out);
                blk += 1;
            }
        }
    }
});

/// Scores blocks `blk0 … blk0 + NB − 1` (8 rows each) at `B` bits.
///
/// A chunk is the bytes of a whole number of codes in at most 8 dwords: 32
/// bytes for 1, 2 and 4 bits, 24 (64 codes) for 3. Every `B` dwords hold
/// 32 codes (`codebook::runs::add_codes`).
///
/// # Safety
/// AVX2 and FMA are available; the 8·NB rows from `8·blk0` fit in `rows`
/// and `out`; `table.len()` is the row's number of codes.
#[inline(always)]
unsafe fn block_group<const B: usize, const NB: usize>(
    table: &[__m256],
    rows: &[u8],
    stride: usize,
    blk0: usize,
    out: &mut [f32],
) {
    let d = table.len();
    let row_len = crate::codebook::pack::packed_len(d, B as u8);
    let chunk_bytes = if B == 3 { 24 } else { 32 };
    let chunk_codes = chunk_bytes * 8 / B;
    // SAFETY: AVX2 is the caller's promise. Chunks with 32 bytes of the row
    // from their start are loaded in place, inside one row; a shorter rest
    // of whole dwords by a masked load, which reads only the masked-in
    // dwords (inside the row) and never faults on the others; any other
    // rest is copied to a local buffer first. So nothing past the row is
    // read. Table entries below `d` only. Prefetches never fault; the
    // stores write out[8·blk0 … 8·(blk0 + NB)).
    unsafe {
        let ahead_bytes = stride.wrapping_mul(32);
        // Opaque to the compiler, which would otherwise turn the FMAs by
        // 1.0 of `Avx2Runs::add_entry` back into adds (FMAs leave the add
        // pipes to the shifts, as on AVX-512).
        let one = _mm256_set1_ps(core::hint::black_box(1.0));
        let mut acc = [_mm256_setzero_ps(); NB];
        let mut chunk = 0;
        while chunk * chunk_bytes < row_len {
            let rest = row_len - chunk * chunk_bytes;
            let bytes = rest.min(32);
            // Dword lanes below bytes/4: a partial chunk of whole dwords (4-bit
            // rows of d = 96, 160, 224) loads without the copy, whose narrow
            // stores and wide reload stalled every row.
            let dwords = _mm256_cmpgt_epi32(
                _mm256_set1_epi32((bytes / 4) as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            );
            let mut cols = [[_mm256_setzero_si256(); 8]; NB];
            for (nb, col) in cols.iter_mut().enumerate() {
                let mut r = [_mm256_setzero_si256(); 8];
                for (i, ri) in r.iter_mut().enumerate() {
                    let at = ((blk0 + nb) * 8 + i) * stride + chunk * chunk_bytes;
                    // Wrapping (not checked) arithmetic: a prefetch of any
                    // address is harmless, and a huge caller stride must
                    // not overflow-panic in a debug build.
                    let ahead = rows.as_ptr().wrapping_add(at).wrapping_add(ahead_bytes);
                    _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
                    *ri = if bytes == 32 {
                        _mm256_loadu_si256(rows.as_ptr().add(at).cast())
                    } else if bytes.is_multiple_of(4) {
                        _mm256_maskload_epi32(rows.as_ptr().add(at).cast(), dwords)
                    } else {
                        let mut part = [0u8; 32];
                        part[..bytes].copy_from_slice(&rows[at..at + bytes]);
                        _mm256_loadu_si256(part.as_ptr().cast())
                    };
                }
                *col = transpose8(&r);
                if B == 4 {
                    for c in col.iter_mut() {
                        *c = mirror_nibbles(*c);
                    }
                }
            }
            let first = chunk * chunk_codes;
            add_chunk::<Avx2Runs, B, NB, 8>(&cols, chunk_bytes / 4, &table[first..], one, &mut acc);
            chunk += 1;
        }
        for (nb, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.as_mut_ptr().add((blk0 + nb) * 8), *a);
        }
    }
}

/// [`RunLanes`] on AVX2: a code's entry by [`look_up`], added by an FMA
/// with `one` (the context), which rounds as an add but runs on the FMA
/// pipes, leaving the add pipes to the shifts (as on AVX-512).
struct Avx2Runs;

// SAFETY: AVX2 and FMA instructions only, which the callers' target
// features provide; `add_entry` reads its entry's two registers.
unsafe impl RunLanes for Avx2Runs {
    type Col = __m256i;
    type Sum = __m256;
    type Entry = __m256;
    type Ctx = __m256;

    #[inline(always)]
    unsafe fn zero() -> __m256i {
        // SAFETY: the trait's contract.
        unsafe { _mm256_setzero_si256() }
    }

    #[inline(always)]
    unsafe fn shr_width<const B: usize>(x: __m256i) -> __m256i {
        // SAFETY: the trait's contract.
        unsafe {
            match B {
                1 => _mm256_srli_epi32::<1>(x),
                2 => _mm256_srli_epi32::<2>(x),
                3 => _mm256_srli_epi32::<3>(x),
                _ => _mm256_srli_epi32::<4>(x),
            }
        }
    }

    #[inline(always)]
    unsafe fn shl(x: __m256i, n: i32) -> __m256i {
        // SAFETY: the trait's contract.
        unsafe { _mm256_sll_epi32(x, _mm_cvtsi32_si128(n)) }
    }

    #[inline(always)]
    unsafe fn shr(x: __m256i, n: i32) -> __m256i {
        // SAFETY: the trait's contract.
        unsafe { _mm256_srl_epi32(x, _mm_cvtsi32_si128(n)) }
    }

    #[inline(always)]
    unsafe fn or(a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: the trait's contract.
        unsafe { _mm256_or_si256(a, b) }
    }

    #[inline(always)]
    unsafe fn add_entry<const B: usize>(
        sum: __m256,
        entry: &__m256,
        codes: __m256i,
        one: __m256,
    ) -> __m256 {
        // SAFETY: the trait's contract.
        unsafe {
            let v = _mm256_permutevar8x32_ps(*entry, codes);
            if B == 4 {
                // A code of `mirror_nibbles`: the lower half's entry, its
                // sign flipped where bit 3 is set.
                let flip =
                    _mm256_and_si256(_mm256_slli_epi32::<28>(codes), _mm256_set1_epi32(i32::MIN));
                _mm256_fmadd_ps(_mm256_xor_ps(v, _mm256_castsi256_ps(flip)), one, sum)
            } else {
                _mm256_fmadd_ps(v, one, sum)
            }
        }
    }
}

/// Every 4-bit code `v` of the lanes with bit 3 set becomes `v ⊕ 7`, the
/// others stay: a code then names entry `v mod 8` of a table's lower half
/// and, by bit 3, whether to negate it. Every table the 4-bit row blocks
/// take is odd (`t[15 − v] = −t[v]`, bit for bit): the centroids times
/// `q_j` (`Codebook` mirrors its upper half exactly, and a product's sign
/// is exact), the nibble tables of 1- and 2-bit codes (complementing a
/// nibble complements its codes, whose centroids are mirrored: each
/// product and partial sum is negated), and the sign sums `±sq[4p] ± … ±
/// sq[4p + 3]` (flipping every sign negates each rounded partial sum). One `vpermps` and two logical
/// operations a code replace two `vpermps` and a blend: `vpermps` is the
/// costly lookup on Zen 3 (about one a cycle against two adds), and the
/// only port 5 one of the two on Intel's cores.
///
/// # Safety
/// AVX2 is available.
#[inline(always)]
unsafe fn mirror_nibbles(x: __m256i) -> __m256i {
    // SAFETY: AVX2 is the caller's promise; registers only.
    unsafe {
        let top = _mm256_and_si256(_mm256_srli_epi32::<3>(x), _mm256_set1_epi32(0x1111_1111));
        // 7 in each nibble whose bit 3 is set (no carries: 8·1 − 1 per nibble).
        let sevens = _mm256_sub_epi32(_mm256_slli_epi32::<3>(top), top);
        _mm256_xor_si256(x, sevens)
    }
}
