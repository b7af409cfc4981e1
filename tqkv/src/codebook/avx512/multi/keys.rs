//! Key scores of several query vectors over the same rows: each block's
//! packed dwords transposed once, each code looked up once, then one FMA
//! per query.

use core::arch::x86_64::*;

use super::super::{Rows, block_columns};
use super::{Centroids, MAX_GROUP, WIDE_GROUP};
use crate::codebook::pack::packed_len;
use crate::codebook::{Codebook, ScoreRows};

/// Longest row (codes) of the multi-query scoring kernel.
const SCORE_MAX_DIM: usize = 256;

/// Scores `out[h·out_stride + r] = Σ_j q_h[j]·c[idx_{r,j}]` of `g` query
/// vectors (`q_h = queries[h·q_stride..][..d]`) for the first `16·⌊n/16⌋` of `n`
/// rows; returns how many rows it scored (0 for shapes it does not take:
/// other than 3 to 6 bits, rows of more than 256 codes, groups of more
/// than [`MAX_GROUP`] other than [`WIDE_GROUP`], a lone query at 3 and 4
/// bits). At 1 and 2 bits the nibble tables of `key_rows` score each
/// query as alone, and a lone query at 3 and 4 bits takes its row blocks,
/// bit for bit as the scalar kernel.
///
/// The packed dwords of 16 rows are transposed as they are: at 4 bits a
/// dword holds 8 whole codes; at 3, 5 and 6 bits a run of 3, 5 or 3
/// dwords holds 32, 32 or 16 codes, the few that cross from one dword into
/// the next taken by a funnel shift ([`group`]). Lookups: `vpermps` from
/// the centroids repeated with period `2^b` (3 and 4 bits), `vpermt2ps`
/// from two registers (5 bits), two of them and a blend (6 bits).
///
/// Returns 0, touching nothing, unless `backend` is AVX-512, the shape is
/// one it takes and the buffers hold it ([`ScoreRows::fits`]:
/// `n` rows of `packed_len(d, bits)` bytes `stride` apart in `rows`,
/// `(g − 1)·q_stride + d` values in `queries`, `(g − 1)·out_stride + n`
/// in `out`).
pub(in crate::codebook) fn dot_rows(
    backend: crate::backend::Checked,
    cb: &Codebook,
    job: ScoreRows<'_>,
    out: &mut [f32],
    out_stride: usize,
) -> usize {
    let (d, g, n) = (job.q.dim, job.q.count, job.n);
    if backend.backend() != crate::Backend::Avx512
        || !(3..=6).contains(&cb.bits())
        || (g == 1 && cb.bits() <= 4)
        || d == 0
        || d > SCORE_MAX_DIM
        || !((1..=MAX_GROUP).contains(&g) || g == WIDE_GROUP)
        || n < 16
        || !job.fits(cb.bits(), out.len(), out_stride)
    {
        return 0;
    }
    // SAFETY: `Checked` proves the AVX-512 feature list; the buffers hold
    // the shape (checked above).
    unsafe {
        // Once per call (a block of tokens in attention), up to 8 KB, of
        // which only the `g·d` values are written: a public `dot_rows` of
        // a few rows at d = 128 would otherwise zero 8 KB for 0.5 KB.
        let mut interleaved = [core::mem::MaybeUninit::<f32>::uninit(); SCORE_MAX_DIM * WIDE_GROUP];
        for h in 0..g {
            let q = &job.q.values[h * job.q.stride..][..d];
            for (j, &v) in q.iter().enumerate() {
                interleaved[g * j + h].write(v);
            }
        }
        // SAFETY: `g·j + h` for `h < g`, `j < d` is every index below
        // `g·d` (≤ the array's length, checked above), each written just
        // above; `MaybeUninit<f32>` has the layout of `f32`.
        let queries: &[f32] =
            core::slice::from_raw_parts(interleaved.as_ptr().cast::<f32>(), g * d);
        let a = Args {
            queries,
            d,
            rows: job.rows,
            stride: job.stride,
            out_stride,
        };
        dot_rows_simd(cb, &a, g, n, out)
    }
}

crate::backend::avx512_features!(crate::backend::target_features {
    /// [`dot_rows`] compiled with the AVX-512 feature list.
    ///
    /// # Safety
    /// As [`dot_rows`], with AVX-512 available and the shape accepted.
    unsafe fn dot_rows_simd(
        cb: &Codebook,
        a: &Args<'_>,
        g: usize,
        n: usize,
        out: &mut [f32],
    ) -> usize {
        // SAFETY: forwarded from the caller.
        unsafe {
            let cents = Centroids::of(cb);
            let blocks = n / 16;
            macro_rules! run {
                ($b:literal, $g:literal, $nb:literal) => {
                    group_runs::<$b, $g, $nb>(&cents, a, blocks, out)
                };
            }
            // One query: four blocks side by side (four FMA chains); more
            // queries: two, each query a chain of its own.
            match (cb.bits(), g) {
                (3, 2) => run!(3, 2, 2),
                (3, 3) => run!(3, 3, 2),
                (3, WIDE_GROUP) => run!(3, 8, 2),
                (3, _) => run!(3, 4, 2),
                (4, 2) => run!(4, 2, 2),
                (4, 3) => run!(4, 3, 2),
                (4, WIDE_GROUP) => run!(4, 8, 2),
                (4, _) => run!(4, 4, 2),
                (5, 1) => run!(5, 1, 4),
                (5, 2) => run!(5, 2, 2),
                (5, 3) => run!(5, 3, 2),
                (5, WIDE_GROUP) => run!(5, 8, 2),
                (5, _) => run!(5, 4, 2),
                (_, 1) => run!(6, 1, 4),
                (_, 2) => run!(6, 2, 2),
                (_, 3) => run!(6, 3, 2),
                (_, WIDE_GROUP) => run!(6, 8, 2),
                _ => run!(6, 4, 2),
            }
            blocks * 16
        }
    }

    /// Blocks `0 … blocks − 1` of [`dot_rows_simd`]: `NB` at a time, then
    /// one. A function of its own for each shape, never inlined: with every
    /// shape's unrolled kernel in one body, the instrumented fuzz build
    /// spent minutes on that one function (LLVM's coverage tables cost the
    /// square of a function's blocks).
    ///
    /// # Safety
    /// As [`group`], for every block.
    #[inline(never)]
    unsafe fn group_runs<const B: usize, const G: usize, const NB: usize>(
        cents: &Centroids,
        a: &Args<'_>,
        blocks: usize,
        out: &mut [f32],
    ) {
        let mut blk = 0;
        // SAFETY: forwarded; every block below `blocks` fits.
        unsafe {
            while blk + NB <= blocks {
                group::<B, G, NB>(cents, a, blk, out);
                blk += NB;
            }
            while blk < blocks {
                group::<B, G, 1>(cents, a, blk, out);
                blk += 1;
            }
        }
    }
});

/// The fixed arguments of [`group`].
struct Args<'a> {
    /// The queries interleaved, `G` values a coordinate: `q_h[j]` at
    /// `G·j + h`, so that one address serves a code's `G` broadcasts.
    queries: &'a [f32],
    d: usize,
    rows: &'a [u8],
    stride: usize,
    out_stride: usize,
}

/// Scores blocks `blk0 … blk0 + NB − 1` (16 rows each) at `B` bits for `G`
/// queries, from the packed dwords as they are: each block's chunk of up
/// to 64 bytes transposed once (16 dwords, one row per lane), each
/// coordinate's codes looked up once, then one FMA per query. A run of
/// `B / gcd(B, 32)` dwords holds a whole number of codes (one dword of 32,
/// 16 or 8 at 1, 2 and 4 bits, three of 32 at 3, five of 32 at 5, three of
/// 16 at 6); a code inside one dword is a shift of it, one that crosses
/// into the next dword one funnel shift (`vpshrdvd`) of the two. No
/// unpacking: spreading codes to bytes first took a transpose per 64 codes
/// and two byte shuffles a row.
///
/// # Safety
/// AVX-512 F/BW/VBMI/VBMI2 are available; `B ≤ 6`; the `16·NB` rows from
/// `16·blk0` fit in the rows and in each query's part of `out`.
#[inline(always)]
unsafe fn group<const B: usize, const G: usize, const NB: usize>(
    cents: &Centroids,
    a: &Args<'_>,
    blk0: usize,
    out: &mut [f32],
) {
    // Dwords per run of whole codes, the codes of a run, and the most
    // runs in 16 dwords.
    let run = B >> (B.trailing_zeros().min(5));
    let run_codes = 32 * run / B;
    let chunk_dwords = 16 / run * run;
    let chunk_bytes = 4 * chunk_dwords;
    let codes_per_chunk = 32 * chunk_dwords / B;
    let d = a.d;
    let row_len = packed_len(d, B as u8);
    // SAFETY: AVX-512 F/BW/VBMI/VBMI2 are the caller's promise. Every load
    // reads inside one row (masked to its bytes in the chunk) or the
    // interleaved queries below G·d; prefetches never fault; the stores
    // write each query's 16·NB scores from 16·blk0.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); NB]; G];
        let mut chunk = 0;
        while chunk * chunk_bytes < row_len {
            let at = Rows::chunk(a.rows, a.stride, row_len, chunk_bytes, chunk);
            let mut room = [[core::mem::MaybeUninit::uninit(); 16]; NB];
            let cols = block_columns::<NB>(&at, blk0, &mut room);
            let first = chunk * codes_per_chunk;
            let codes = d.saturating_sub(first).min(codes_per_chunk);
            for r in 0..codes.div_ceil(run_codes) {
                let q = a.queries.as_ptr().add(G * (first + r * run_codes));
                // A whole run's codes without a bound check each.
                let here = (codes - r * run_codes).min(run_codes);
                if here == run_codes {
                    add_run::<B, G, NB>(cents, cols, r * run, q, run_codes, &mut acc);
                } else {
                    add_run::<B, G, NB>(cents, cols, r * run, q, here, &mut acc);
                }
            }
            chunk += 1;
        }
        for (h, acc) in acc.iter().enumerate() {
            for (nb, s) in acc.iter().enumerate() {
                let at = h * a.out_stride + (blk0 + nb) * 16;
                _mm512_storeu_ps(out.as_mut_ptr().add(at), *s);
            }
        }
    }
}

/// Adds the first `codes` codes of the run in columns `dw0 …` of every
/// block, each looked up once and times each query (`q`: the run's first
/// coordinate of the interleaved queries), in coordinate order. Every
/// shift count is a constant: the run is unrolled.
///
/// # Safety
/// AVX-512 F/VBMI2 are available; the run lies in the columns; `q` has
/// `G·codes` readable values.
#[inline(always)]
unsafe fn add_run<const B: usize, const G: usize, const NB: usize>(
    cents: &Centroids,
    cols: &[[__m512i; 16]; NB],
    dw0: usize,
    q: *const f32,
    codes: usize,
    acc: &mut [[__m512; NB]; G],
) {
    // SAFETY: AVX-512 (caller); the column reads stay in the run, the
    // query reads below `G·codes`.
    unsafe {
        // Every block's dword holding the next code, shifted down to it.
        let mut x = [_mm512_setzero_si512(); NB];
        // The codes of a run (8, 32, 32 or 16 at 4, 3, 5 and 6 bits).
        let limit = codes.min(32 * (B >> B.trailing_zeros().min(5)) / B);
        crate::codebook::runs::unroll_32!(I => {
            if I == limit {
                return;
            }
            let (w, off) = (dw0 + B * I / 32, (B * I % 32) as u32);
            let crosses = off as usize + B > 32;
            let mut c = [_mm512_setzero_ps(); NB];
            for ((c, x), col) in c.iter_mut().zip(x.iter_mut()).zip(cols) {
                if off == 0 {
                    *x = col[w];
                }
                // The lookup reads the low 4, 5 or 6 bits: the table
                // repeats with period 2^B, so bits above the code do not
                // matter.
                let code = if crosses {
                    _mm512_shrdv_epi32(col[w], col[w + 1], _mm512_set1_epi32(off as i32))
                } else {
                    *x
                };
                *c = cents.lookup::<B>(code);
                *x = if crosses {
                    _mm512_srlv_epi32(col[w + 1], _mm512_set1_epi32((off as usize + B - 32) as i32))
                } else {
                    match B {
                        1 => _mm512_srli_epi32::<1>(*x),
                        2 => _mm512_srli_epi32::<2>(*x),
                        3 => _mm512_srli_epi32::<3>(*x),
                        4 => _mm512_srli_epi32::<4>(*x),
                        5 => _mm512_srli_epi32::<5>(*x),
                        _ => _mm512_srli_epi32::<6>(*x),
                    }
                };
            }
            for (h, acc) in acc.iter_mut().enumerate() {
                let qv = _mm512_set1_ps(*q.add(G * I + h));
                for (s, c) in acc.iter_mut().zip(&c) {
                    *s = _mm512_fmadd_ps(*c, qv, *s);
                }
            }
        });
    }
}
