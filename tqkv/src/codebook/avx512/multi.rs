//! AVX-512 kernels for several query vectors over the same rows (the query
//! heads of a KV head, or several positions): the work that depends only on
//! the codes — loading, transposing or unpacking them, and looking up their
//! centroids — is done once and shared, so each further query costs one
//! FMA per 16 codes (and a masked add per 16 signs).
//!
//! Scores here are `Σ_j fma(c[idx_j], q_j, ·)` in coordinate order: one
//! rounding a term instead of the single-query table kernel's two, so they
//! agree with the scalar kernel within the documented `1e-5 · Σ|q·c|`, not
//! bit for bit.

use core::arch::x86_64::*;

use super::Spread;
use super::sign_tables::{self, ROWS};
use crate::backend::prefetch_ahead;
use crate::codebook::pack::packed_len;
use crate::codebook::{Codebook, ScoreRows};
use crate::qjl::SignSets;

/// Most query vectors one kernel call carries (their sums stay in
/// registers); the callers split larger groups.
pub(in crate::codebook) const MAX_GROUP: usize = 4;

/// A group of query vectors [`dot_rows`] takes beside those up to
/// [`MAX_GROUP`]: eight query heads (Llama 3 70B has 64 on 8 KV heads)
/// scored in one pass over the key codes, whose sums of two blocks of 16
/// rows take 16 registers.
pub(in crate::codebook) const WIDE_GROUP: usize = 8;

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

/// The centroids in registers: repeated with period `2^b` over 16 lanes
/// (≤ 4 bits, one `vpermps`), all 32 in two registers (5 bits, one
/// `vpermt2ps`), or all 64 in four (6 bits, two `vpermt2ps` and a blend on
/// bit 5).
struct Centroids {
    t: [__m512; 4],
}

impl Centroids {
    /// # Safety
    /// AVX-512F is available; `cb.bits() ≤ 6`.
    #[inline(always)]
    unsafe fn of(cb: &Codebook) -> Centroids {
        let c = cb.centroids();
        let mut table = [0.0f32; 64];
        for (v, t) in table.iter_mut().enumerate() {
            *t = c[v & (c.len() - 1)];
        }
        // SAFETY: AVX-512F (caller); the loads read the local table.
        unsafe {
            Centroids {
                t: [0, 16, 32, 48].map(|at| _mm512_loadu_ps(table.as_ptr().add(at))),
            }
        }
    }

    /// `c[idx]` per lane, for `B`-bit codes in the low bits of each dword
    /// (other bits above).
    ///
    /// # Safety
    /// AVX-512F is available.
    #[inline(always)]
    unsafe fn lookup<const B: usize>(&self, idx: __m512i) -> __m512 {
        // SAFETY: AVX-512F (caller); registers only.
        unsafe {
            match B {
                0..=4 => _mm512_permutexvar_ps(idx, self.t[0]),
                5 => _mm512_permutex2var_ps(self.t[0], idx, self.t[1]),
                _ => {
                    let low = _mm512_permutex2var_ps(self.t[0], idx, self.t[1]);
                    let high = _mm512_permutex2var_ps(self.t[2], idx, self.t[3]);
                    let bit5 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(32));
                    _mm512_mask_blend_ps(bit5, low, high)
                }
            }
        }
    }
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
            let at = super::Rows::chunk(a.rows, a.stride, row_len, chunk_bytes, chunk);
            let mut room = [[core::mem::MaybeUninit::uninit(); 16]; NB];
            let cols = super::block_columns::<NB>(&at, blk0, &mut room);
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

/// `out[h·out_stride + j] += Σ_r weights[h·w_stride + r]·c[idx_{r,j}]` for
/// `G ≤` [`MAX_GROUP`] weight sets over the same `n` rows: each row's codes
/// unpacked and looked up once per chunk of 64 coordinates, then one FMA
/// per 16 codes and query. Returns false (touching nothing) unless
/// `backend` is AVX-512 and the shape is one it takes: 1–6 bits, `d` a
/// multiple of 64 up to 256, and buffers that hold it
/// ([`WeightedCodes::fit`](crate::codebook::WeightedCodes::fit)).
#[allow(clippy::too_many_arguments)]
pub(in crate::codebook) fn accumulate_rows(
    backend: crate::backend::Checked,
    cb: &Codebook,
    a: &crate::codebook::WeightedCodes<'_>,
    out: &mut [f32],
    g: usize,
) -> bool {
    let b = cb.bits() as usize;
    let d = a.d;
    if backend.backend() != crate::Backend::Avx512
        || b > 6
        || d == 0
        || d > 256
        || !(1..=MAX_GROUP).contains(&g)
        || !a.fit(b as u8, g, out.len())
    {
        return false;
    }
    if code_bits(cb, a.stride, a.d, a.weights, a.w_stride, a.n, g) {
        let sets = SignSets {
            signs: a.rows,
            sign_stride: a.stride,
            n: a.n,
            weights: a.weights,
            w_stride: a.w_stride,
            acc_stride: a.out_stride,
            m: a.d,
        };
        // SAFETY: `Checked` proves the AVX-512 feature list; the rows are
        // back to back, `d/8` bytes each, and the buffers hold them (the
        // same bytes `fit` checked above).
        unsafe { bits_simd(&sets, cb.centroids()[1], out, g) };
        return true;
    }
    // SAFETY: `Checked` proves the AVX-512 feature list; the shape is one
    // the kernel takes, and the buffers hold it (checked above).
    unsafe {
        match g {
            1 if b == 6 => accumulate_simd::<1, 6>(cb, a, out),
            2 if b == 6 => accumulate_simd::<2, 6>(cb, a, out),
            3 if b == 6 => accumulate_simd::<3, 6>(cb, a, out),
            _ if b == 6 => accumulate_simd::<4, 6>(cb, a, out),
            1 if b == 5 => accumulate_simd::<1, 5>(cb, a, out),
            2 if b == 5 => accumulate_simd::<2, 5>(cb, a, out),
            3 if b == 5 => accumulate_simd::<3, 5>(cb, a, out),
            _ if b == 5 => accumulate_simd::<4, 5>(cb, a, out),
            1 => accumulate_simd::<1, 4>(cb, a, out),
            2 => accumulate_simd::<2, 4>(cb, a, out),
            3 => accumulate_simd::<3, 4>(cb, a, out),
            _ => accumulate_simd::<4, 4>(cb, a, out),
        }
    }
    true
}

crate::backend::avx512_features!(crate::backend::target_features {
    /// [`accumulate`] compiled with the AVX-512 feature list.
    ///
    /// # Safety
    /// As [`accumulate_rows`], with AVX-512 available and the shape accepted.
    unsafe fn accumulate_simd<const G: usize, const B: usize>(
        cb: &Codebook,
        a: &crate::codebook::WeightedCodes<'_>,
        out: &mut [f32],
    ) {
        // SAFETY: forwarded from the caller.
        unsafe { accumulate::<G, B>(cb, a, out) }
    }
});

/// [`accumulate_rows`] for `G` weight sets, one chunk of 64 coordinates at
/// a time (4 registers of sums a query).
///
/// # Safety
/// As [`accumulate_rows`], with AVX-512 F/BW/VBMI available and the shape
/// accepted.
#[inline(always)]
unsafe fn accumulate<const G: usize, const B: usize>(
    cb: &Codebook,
    a: &crate::codebook::WeightedCodes<'_>,
    out: &mut [f32],
) {
    let b = cb.bits() as usize;
    let chunk_bytes = 8 * b;
    // SAFETY: the ISA is the caller's promise. Loads: each row's bytes of
    // one chunk (masked), weights[h·w_stride + r] with r < n, out's chunk
    // of each query; stores: the same chunks of out.
    unsafe {
        let cents = Centroids::of(cb);
        let spread = Spread::new(b);
        let row_len = crate::codebook::pack::packed_len(a.d, b as u8);
        for ch in 0..a.d.div_ceil(64) {
            // A last chunk may hold fewer than 64 coordinates: its lanes past
            // the row's end sum codes the masked load made 0 and are dropped.
            let len = (a.d - 64 * ch).min(64);
            let mask = super::values::byte_mask((row_len - ch * chunk_bytes).min(chunk_bytes));
            // Lane i of register s holds coordinate 4i + s of the chunk (the
            // order the in-register unpacking leaves the codes in).
            let mut acc = [[_mm512_setzero_ps(); 4]; G];
            for (h, acc) in acc.iter_mut().enumerate() {
                let o = &out[h * a.out_stride + 64 * ch..][..len];
                *acc = super::values::load_permuted::<1>(o)[0];
            }
            let mut row = a.rows.as_ptr().add(ch * chunk_bytes);
            for r in 0..a.n {
                if ch == 0 {
                    prefetch_ahead(row, a.stride);
                }
                add_codes::<G, B>(
                    &cents, &spread, row, mask, a.weights, a.w_stride, r, &mut acc,
                );
                row = row.wrapping_add(a.stride);
            }
            for (h, acc) in acc.iter().enumerate() {
                let o = &mut out[h * a.out_stride + 64 * ch..][..len];
                super::values::store_permuted::<1>(&[*acc], o);
            }
        }
    }
}

/// `acc[h·acc_stride + j] += Σ_r w[h·w_stride + r]·s_{r,j}` (`s = ±1` from
/// the sign bits, `m` of them a row) for `G ≤` [`MAX_GROUP`] weight sets
/// over the same `n` sketches, as the AVX-512 sign kernel computes it
/// (`2·Σ_{bit set} w − Σ w`): each row's sign bytes read once for every
/// query. Returns false (touching nothing) unless `backend` is AVX-512,
/// the sets fit ([`SignSets::fit`]: whole steps of 16 signs, inside their
/// buffers) and every weight set is bounded (`qjl::weights_bounded`).
pub(in crate::codebook) fn accumulate_signs(
    backend: crate::backend::Checked,
    a: &SignSets<'_>,
    acc: &mut [f32],
    g: usize,
) -> bool {
    if backend.backend() != crate::Backend::Avx512
        || !(1..=MAX_GROUP).contains(&g)
        || !a.fit(g, acc.len())
        || !(0..g).all(|h| crate::qjl::weights_bounded(&a.weights[h * a.w_stride..][..a.n]))
    {
        return false;
    }
    // SAFETY: `Checked` proves the AVX-512 feature list; the shape is one
    // the kernel takes, and the sets fit their buffers (checked above).
    unsafe {
        match g {
            1 => signs_simd::<1>(a, acc),
            2 => signs_simd::<2>(a, acc),
            3 => signs_simd::<3>(a, acc),
            _ => signs_simd::<4>(a, acc),
        }
    }
    true
}

/// The four 16-bit sign masks of a chunk of up to 64 signs at `p`, `regs`
/// registers of 16 (masks past them zero). A whole chunk is read with
/// plain loads (the compiler takes its 8 bytes into a general register and
/// shifts the masks out there); a partial one with a masked load (it must
/// not read past its row), whose vector register the compiler unpacks lane
/// by lane (`vpextrw`): several instructions a mask on the vector pipes.
///
/// # Safety
/// AVX-512 BW/VL are available; `2·regs ≤ 8` bytes are readable at `p`.
#[inline(always)]
unsafe fn chunk_masks(p: *const u8, regs: usize) -> [u16; 4] {
    // SAFETY: the caller's promises; a whole chunk's four loads read its
    // 8 bytes, a partial one's masked load its 2·regs bytes.
    unsafe {
        if regs == 4 {
            [0, 1, 2, 3].map(|k| core::ptr::read_unaligned(p.add(2 * k).cast::<u16>()))
        } else {
            let v = _mm_maskz_loadu_epi8(((1u32 << (2 * regs)) - 1) as __mmask16, p.cast());
            let bits = _mm_cvtsi128_si64(v) as u64;
            [0, 1, 2, 3].map(|k| (bits >> (16 * k)) as u16)
        }
    }
}

crate::backend::avx512_features!(crate::backend::target_features {
    /// [`signs_chunks`] compiled with the AVX-512 feature list.
    ///
    /// # Safety
    /// AVX-512 is available; the shape is one [`accumulate_signs`] accepts,
    /// and the sets fit their buffers.
    unsafe fn signs_simd<const G: usize>(a: &SignSets<'_>, acc: &mut [f32]) {
        // SAFETY: forwarded from the caller.
        unsafe { signs_chunks::<G>(a, acc) }
    }
});

/// [`accumulate_signs`], 64 signs (4 registers a query) at a time.
///
/// # Safety
/// AVX-512 F/BW are available; the shape is one [`accumulate_signs`]
/// accepts, and the sets fit their buffers.
#[inline(always)]
unsafe fn signs_chunks<const G: usize>(a: &SignSets<'_>, acc: &mut [f32]) {
    // SAFETY: the ISA is the caller's promise. Loads: 8 sign bytes of each
    // row's chunk, weights[h·w_stride + r] with r < n; each query's chunk of
    // acc is read and written.
    unsafe {
        if sign_tables::takes(a.m, a.sign_stride) {
            signs_by_tables::<G>(a, 1.0, acc);
            return;
        }
        for ch in 0..a.m.div_ceil(64) {
            // Registers of 16 signs in this chunk (fewer in a last one).
            let regs = (a.m - 64 * ch).min(64) / 16;
            let mut set = [[_mm512_setzero_ps(); 4]; G];
            let mut total = [_mm512_setzero_ps(); G];
            let mut sg = a.signs.as_ptr().add(8 * ch);
            for r in 0..a.n {
                let masks = chunk_masks(sg, regs);
                for h in 0..G {
                    let rv = _mm512_set1_ps(*a.weights.get_unchecked(h * a.w_stride + r));
                    total[h] = _mm512_add_ps(total[h], rv);
                    for (s, &mk) in set[h].iter_mut().zip(&masks) {
                        *s = _mm512_mask_add_ps(*s, mk, *s, rv);
                    }
                }
                sg = sg.wrapping_add(a.sign_stride);
            }
            for h in 0..G {
                for (k, s) in set[h].iter().enumerate().take(regs) {
                    let at = acc.as_mut_ptr().add(h * a.acc_stride + 64 * ch + 16 * k);
                    let sum = _mm512_sub_ps(_mm512_add_ps(*s, *s), total[h]);
                    _mm512_storeu_ps(at, _mm512_add_ps(_mm512_loadu_ps(at), sum));
                }
            }
        }
    }
}

/// Whether `g` weight sets over rows of `d` 1-bit value codes, `stride`
/// bytes apart, take the sign tables ([`signs_by_tables`]): the rows back
/// to back, `d` a multiple of 16 up to 256, every weight set bounded (as
/// for signs: the tables' sums of four weights must not overflow). A code
/// picks `c[1]` or `c[0] = −c[1]`, so a row adds `±w·c[1]`, a sign sum.
fn code_bits(
    cb: &Codebook,
    stride: usize,
    d: usize,
    weights: &[f32],
    w_stride: usize,
    n: usize,
    g: usize,
) -> bool {
    cb.bits() == 1
        && sign_tables::takes(d, stride)
        && (0..g).all(|h| crate::qjl::weights_bounded(&weights[h * w_stride..][..n]))
}

crate::backend::avx512_features!(crate::backend::target_features {
    /// [`signs_by_tables`] for `g ≤` [`MAX_GROUP`] sets, each weight
    /// times `scale`.
    ///
    /// # Safety
    /// AVX-512 is available; the rows are back to back
    /// ([`sign_tables::takes`]) and the sets fit their buffers.
    unsafe fn bits_simd(a: &SignSets<'_>, scale: f32, acc: &mut [f32], g: usize) {
        // SAFETY: forwarded from the caller.
        unsafe {
            match g {
                1 => signs_by_tables::<1>(a, scale, acc),
                2 => signs_by_tables::<2>(a, scale, acc),
                3 => signs_by_tables::<3>(a, scale, acc),
                _ => signs_by_tables::<4>(a, scale, acc),
            }
        }
    }
});

/// [`signs_chunks`] for signs back to back ([`sign_tables::takes`]), each
/// weight times `scale`: eight rows at a time through nibble tables, each
/// chunk's eight rows transposed once for all the queries. Rows of 1-bit
/// value codes take it too, with the positive centroid as the scale
/// ([`code_bits`]).
///
/// # Safety
/// As [`signs_chunks`], with GFNI available too.
#[inline(always)]
unsafe fn signs_by_tables<const G: usize>(a: &SignSets<'_>, scale: f32, acc: &mut [f32]) {
    let bytes = a.m / 8;
    // SAFETY: the ISA is the caller's promise. Loads: the masked bytes of
    // up to eight whole rows (validated), weights[h·w_stride + r] with
    // r < n; each query's chunk of acc is read and written.
    unsafe {
        for ch in 0..a.m.div_ceil(64) {
            let len = (a.m - 64 * ch).min(64);
            let mut set = [[_mm512_setzero_ps(); 4]; G];
            for (h, set) in set.iter_mut().enumerate() {
                *set = sign_tables::load_sums(&acc[h * a.acc_stride + 64 * ch..][..len]);
            }
            let permute = sign_tables::permute(bytes, ch);
            // Whole blocks with a constant row count, then the rest.
            macro_rules! block {
                ($t:expr, $rows:expr) => {
                    let sg = a.signs.as_ptr().wrapping_add($t * a.sign_stride);
                    let bits = sign_tables::Block::load(sg, $rows, bytes).bits(permute);
                    for (h, set) in set.iter_mut().enumerate() {
                        let w = a.weights.get_unchecked(h * a.w_stride + $t..);
                        let w = sign_tables::block_weights(w.get_unchecked(..$rows), scale);
                        sign_tables::add_chunk(set, bits, &sign_tables::tables(&w));
                    }
                };
            }
            let whole = a.n - a.n % ROWS;
            for t in (0..whole).step_by(ROWS) {
                block!(t, ROWS);
            }
            if whole < a.n {
                block!(whole, a.n - whole);
            }
            for (h, set) in set.iter().enumerate() {
                sign_tables::store_sums(set, &mut acc[h * a.acc_stride + 64 * ch..][..len]);
            }
        }
    }
}

/// Most weight sets of [`accumulate_fused`]: 8 registers of sums each.
pub(in crate::codebook) const MAX_FUSED_GROUP: usize = 3;

/// [`accumulate_rows`] and [`accumulate_signs`] in one pass over the rows,
/// for prod values with as many signs as coordinates (`m = d`): the code
/// lookups run on the shuffle and FMA pipes, the sign sums (eight rows at
/// a time through nibble tables where the signs lie back to back) mostly
/// on the add pipes, side by side. `g ≤` [`MAX_FUSED_GROUP`]. Returns
/// false (touching nothing) for other shapes, as those two kernels do, and
/// for buffers that do not hold `m = d` signs a row
/// ([`WeightedRows::fit`](crate::codebook::WeightedRows::fit)).
#[allow(clippy::too_many_arguments)]
pub(in crate::codebook) fn accumulate_fused(
    backend: crate::backend::Checked,
    cb: &Codebook,
    rows: &crate::codebook::WeightedRows<'_>,
    out: &mut [f32],
    out_stride: usize,
    d: usize,
    g: usize,
) -> bool {
    let b = cb.bits() as usize;
    let r = rows;
    if backend.backend() != crate::Backend::Avx512
        || b > 6
        || d == 0
        || !d.is_multiple_of(16)
        || d > 256
        || !(1..=MAX_FUSED_GROUP).contains(&g)
        || !r.fit(b as u8, (d, d), g, (out.len(), out_stride))
        || !(0..g).all(|h| crate::qjl::weights_bounded(&r.sign_weights[h * r.w_stride..][..r.n]))
    {
        return false;
    }
    if code_bits(cb, r.code_stride, d, r.weights, r.w_stride, r.n, g)
        && sign_tables::takes(d, r.sign_stride)
    {
        // 1-bit codes and signs alike: a pass of sign tables each, the
        // codes' weights times the positive centroid.
        let (codes, signs) = (r.codes, r.signs);
        let set = |rows, stride, weights| SignSets {
            signs: rows,
            sign_stride: stride,
            n: r.n,
            weights,
            w_stride: r.w_stride,
            acc_stride: out_stride,
            m: d,
        };
        // SAFETY: `Checked` proves the AVX-512 feature list; both sets of
        // rows are back to back, `d/8` bytes each, inside their buffers,
        // and each query's `d` code sums and `d` sign sums lie in `out`
        // (`fit` above).
        unsafe {
            bits_simd(
                &set(codes, r.code_stride, r.weights),
                cb.centroids()[1],
                out,
                g,
            );
            let sign_sums = &mut out[d..];
            bits_simd(
                &set(signs, r.sign_stride, r.sign_weights),
                1.0,
                sign_sums,
                g,
            );
        }
        return true;
    }
    // SAFETY: `Checked` proves the AVX-512 feature list; the shape is one
    // the kernel takes, and the buffers hold it (checked above).
    unsafe {
        match g {
            1 if b == 6 => fused_simd::<1, 6>(cb, r, out, out_stride, d),
            2 if b == 6 => fused_simd::<2, 6>(cb, r, out, out_stride, d),
            _ if b == 6 => fused_simd::<3, 6>(cb, r, out, out_stride, d),
            1 if b == 5 => fused_simd::<1, 5>(cb, r, out, out_stride, d),
            2 if b == 5 => fused_simd::<2, 5>(cb, r, out, out_stride, d),
            _ if b == 5 => fused_simd::<3, 5>(cb, r, out, out_stride, d),
            1 => fused_simd::<1, 4>(cb, r, out, out_stride, d),
            2 => fused_simd::<2, 4>(cb, r, out, out_stride, d),
            _ => fused_simd::<3, 4>(cb, r, out, out_stride, d),
        }
    }
    true
}

crate::backend::avx512_features!(crate::backend::target_features {
    /// [`fused`] compiled with the AVX-512 feature list.
    ///
    /// # Safety
    /// As [`accumulate_fused`], with AVX-512 available and the shape accepted.
    unsafe fn fused_simd<const G: usize, const B: usize>(
        cb: &Codebook,
        r: &crate::codebook::WeightedRows<'_>,
        out: &mut [f32],
        out_stride: usize,
        d: usize,
    ) {
        // SAFETY: forwarded from the caller.
        unsafe { fused::<G, B>(cb, r, out, out_stride, d) }
    }
});

/// One row's chunk of codes (`mask` the chunk's bytes) looked up and added
/// into every query's sums: query `h`'s with weight `weights[h·w_stride +
/// t]`, in the permuted order of the in-register unpacking.
///
/// # Safety
/// AVX-512 F/BW/VBMI are available; the chunk's masked bytes at `row` and
/// the weights are readable.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn add_codes<const G: usize, const B: usize>(
    cents: &Centroids,
    spread: &Spread,
    row: *const u8,
    mask: u64,
    weights: &[f32],
    w_stride: usize,
    t: usize,
    acc: &mut [[__m512; 4]; G],
) {
    // SAFETY: the caller's promises.
    unsafe {
        let data = _mm512_maskz_loadu_epi8(mask, row.cast());
        let codes = spread.codes(data);
        let c = [
            cents.lookup::<B>(codes),
            cents.lookup::<B>(_mm512_srli_epi32::<8>(codes)),
            cents.lookup::<B>(_mm512_srli_epi32::<16>(codes)),
            cents.lookup::<B>(_mm512_srli_epi32::<24>(codes)),
        ];
        for (h, acc) in acc.iter_mut().enumerate() {
            let w = _mm512_set1_ps(*weights.get_unchecked(h * w_stride + t));
            for (s, c) in acc.iter_mut().zip(&c) {
                *s = _mm512_fmadd_ps(*c, w, *s);
            }
        }
    }
}

/// [`accumulate_fused`] for `G` weight sets, 64 coordinates and 64 signs at
/// a time. Signs back to back (the cache's layout) are summed eight rows
/// at a time through nibble tables ([`sign_tables`]), after those rows'
/// codes; others take a mask per 16 signs and row.
///
/// # Safety
/// As [`accumulate_fused`], with AVX-512 F/BW/VBMI and GFNI available and
/// the shape accepted.
#[inline(always)]
unsafe fn fused<const G: usize, const B: usize>(
    cb: &Codebook,
    r: &crate::codebook::WeightedRows<'_>,
    out: &mut [f32],
    out_stride: usize,
    d: usize,
) {
    let b = cb.bits() as usize;
    let chunk_bytes = 8 * b;
    let tables = sign_tables::takes(d, r.sign_stride);
    // SAFETY: the ISA is the caller's promise. Loads: each row's bytes of one
    // chunk of codes (masked) and of its signs (8 bytes, or the masked
    // bytes of eight rows), the weights of rows below n, each query's
    // chunks of codes and signs in out; stores: those chunks.
    unsafe {
        let cents = Centroids::of(cb);
        let spread = Spread::new(b);
        let row_len = crate::codebook::pack::packed_len(d, b as u8);
        for ch in 0..d.div_ceil(64) {
            // A last chunk of 16, 32 or 48 coordinates and signs: as in
            // `accumulate` and `signs_chunks`.
            let len = (d - 64 * ch).min(64);
            let regs = len / 16;
            let mask = super::values::byte_mask((row_len - ch * chunk_bytes).min(chunk_bytes));
            let mut acc = [[_mm512_setzero_ps(); 4]; G];
            for (h, acc) in acc.iter_mut().enumerate() {
                let o = &out[h * out_stride + 64 * ch..][..len];
                *acc = super::values::load_permuted::<1>(o)[0];
            }
            let mut row = r.codes.as_ptr().add(ch * chunk_bytes);
            if tables {
                // The sign sums, from `out`.
                let mut set = [[_mm512_setzero_ps(); 4]; G];
                for (h, set) in set.iter_mut().enumerate() {
                    *set = sign_tables::load_sums(&out[h * out_stride + d + 64 * ch..][..len]);
                }
                let permute = sign_tables::permute(d / 8, ch);
                // A block of `rows ≤ 8` rows: their codes, then their signs.
                // Whole blocks take it with `rows` a constant (unrolled,
                // constant masks), the last one with the rest.
                macro_rules! block {
                    ($t:expr, $rows:expr) => {
                        let sg = r.signs.as_ptr().wrapping_add($t * r.sign_stride);
                        for u in $t..$t + $rows {
                            // The first pass over the rows asks those ahead
                            // into L2 (the later passes find them cached).
                            if ch == 0 {
                                let s = sg.wrapping_add((u - $t) * r.sign_stride);
                                prefetch_ahead(row, r.code_stride);
                                prefetch_ahead(s, r.sign_stride);
                            }
                            let (w, ws) = (r.weights, r.w_stride);
                            add_codes::<G, B>(&cents, &spread, row, mask, w, ws, u, &mut acc);
                            row = row.wrapping_add(r.code_stride);
                        }
                        let bits = sign_tables::Block::load(sg, $rows, d / 8).bits(permute);
                        for (h, set) in set.iter_mut().enumerate() {
                            let w = r
                                .sign_weights
                                .get_unchecked(h * r.w_stride + $t..)
                                .get_unchecked(..$rows);
                            let tables = sign_tables::tables(&sign_tables::block_weights(w, 1.0));
                            sign_tables::add_chunk(set, bits, &tables);
                        }
                    };
                }
                let whole = r.n - r.n % ROWS;
                for t in (0..whole).step_by(ROWS) {
                    block!(t, ROWS);
                }
                if whole < r.n {
                    block!(whole, r.n - whole);
                }
                for h in 0..G {
                    let o = &mut out[h * out_stride + 64 * ch..][..len];
                    super::values::store_permuted::<1>(&[acc[h]], o);
                    let o = &mut out[h * out_stride + d + 64 * ch..][..len];
                    sign_tables::store_sums(&set[h], o);
                }
                continue;
            }
            let mut set = [[_mm512_setzero_ps(); 4]; G];
            // Σ_t of each query's sign weights in row order, as the sign
            // kernel's running total. Scalar adds inside the loop run in
            // the shadow of the vector work; a fold per query before it
            // was a chain of dependent adds, 3 cycles a token and query.
            let mut totals = [0.0f32; G];
            let mut sg = r.signs.as_ptr().add(8 * ch);
            for t in 0..r.n {
                if ch == 0 {
                    prefetch_ahead(row, r.code_stride);
                    prefetch_ahead(sg, r.sign_stride);
                }
                let (w, ws) = (r.weights, r.w_stride);
                add_codes::<G, B>(&cents, &spread, row, mask, w, ws, t, &mut acc);
                let masks = chunk_masks(sg, regs);
                for h in 0..G {
                    let sw = *r.sign_weights.get_unchecked(h * r.w_stride + t);
                    totals[h] += sw;
                    let rv = _mm512_set1_ps(sw);
                    for (s, &mk) in set[h].iter_mut().zip(&masks) {
                        *s = _mm512_mask_add_ps(*s, mk, *s, rv);
                    }
                }
                row = row.wrapping_add(r.code_stride);
                sg = sg.wrapping_add(r.sign_stride);
            }
            for h in 0..G {
                let o = &mut out[h * out_stride + 64 * ch..][..len];
                super::values::store_permuted::<1>(&[acc[h]], o);
                let total = _mm512_set1_ps(totals[h]);
                for (k, s) in set[h].iter().enumerate().take(regs) {
                    let at = out.as_mut_ptr().add(h * out_stride + d + 64 * ch + 16 * k);
                    let sum = _mm512_sub_ps(_mm512_add_ps(*s, *s), total);
                    _mm512_storeu_ps(at, _mm512_add_ps(_mm512_loadu_ps(at), sum));
                }
            }
        }
    }
}
