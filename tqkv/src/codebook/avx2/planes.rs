//! Value and key codes looked up 32 (or 16) at a time by `vpshufb` from
//! the centroids' byte planes: 4-bit codes ([`Planes`]), and 5- and 6-bit
//! codes through the codebook's mirror ([`MirrorPlanes`]).
//!
//! A 16-entry table of f32 takes two `vpermps` and a blend on AVX2 for 8
//! lookups (the 4-bit lookup of `rows.rs`), a mirrored 32- or 64-entry one
//! two or four and one or three blends (`pick_mirrored`): operations on
//! the shuffle pipes, of which only one crosses lanes on Intel's large
//! cores, and blends of three micro-ops there. Split into its four byte
//! planes (plane `k` holds byte `k` of each centroid), a table of 16 is
//! four 16-byte tables, which `vpshufb` reads 32 indices at a time within
//! each 128-bit lane; two rounds of unpacks then put each centroid's four
//! bytes back together. At 4 bits 32 codes cost a load, a shift, a mask,
//! four `vpshufb` and six unpacks, where 8 cost two `vpermps`, a shift
//! and a blend. At 5 and 6 bits the codes are spread to bytes in registers
//! first (`int8::spread_codes`), an upper-half code `k` looks up
//! `2^B − 1 − k` in the lower half, and its sign is flipped in the top
//! byte plane (the upper half is the lower's mirror, exactly); the lower
//! half is 16 or 32 entries, one `vpshufb` a plane, or two and a byte
//! blend. The centroids are the same values, so the value sums take the
//! same FMAs in the same row order and keep their bits.
//!
//! The unpacks leave a step's coordinates in the lanes in an order of
//! their own ([`PlaneLookup::put_in_lanes`]); value sums stay in that order
//! over all the rows and are put back once, when they are stored, and a
//! key kernel puts the queries in that order once a call.

use core::arch::x86_64::*;

use super::int8::{WordSpread, spread_codes};
use super::rows::{Groups, Narrow};
use super::wide::Wide;
use super::{ordered_sums, put_row_scores};
use crate::codebook::pack::rows_within;
use crate::codebook::{Codebook, ScoreRows, WeightedCodes};
use crate::vector::{F32Vector, F32x8};

/// A lookup of `8·NR` codes a step (`NR` 2 or 4) from a codebook's byte
/// planes, into `NR` registers whose lanes hold the step's coordinates in
/// an order of the lookup's own.
pub(super) trait PlaneLookup {
    /// The width of a code.
    const BITS: usize;
    /// What looks up the coordinates past the last whole step, 8 at a time.
    type Rest: Groups;

    /// The planes of `cb`.
    ///
    /// # Safety
    /// AVX2 is available; `cb.bits() == BITS`.
    unsafe fn new(cb: &Codebook) -> Self;

    /// The lookup of the coordinates past the steps.
    ///
    /// # Safety
    /// As [`new`](Self::new).
    unsafe fn rest(cb: &Codebook) -> Self::Rest;

    /// Bytes a step of `8·nr` codes reads from its start: its own `nr·BITS`
    /// and maybe some past them.
    fn read(nr: usize) -> usize;

    /// The centroids of the `8·NR` codes of the step at `at`.
    ///
    /// # Safety
    /// AVX2 is available; [`read`](Self::read)`(NR)` bytes at `at` are
    /// readable.
    unsafe fn lookup<const NR: usize>(&self, at: *const u8) -> [__m256; NR];

    /// `8·NR` consecutive values put in the lanes where
    /// [`lookup`](Self::lookup) leaves their coordinates.
    ///
    /// # Safety
    /// AVX2 is available.
    unsafe fn put_in_lanes<const NR: usize>(&self, v: [__m256; NR]) -> [__m256; NR];

    /// The inverse of [`put_in_lanes`](Self::put_in_lanes).
    ///
    /// # Safety
    /// AVX2 is available.
    unsafe fn take_from_lanes<const NR: usize>(&self, v: [__m256; NR]) -> [__m256; NR];
}

/// Byte `k` of the centroids of 32 indices in `p[k]` (within each 128-bit
/// lane, index `i` in byte `i`) joined into f32s by two rounds of unpacks:
/// register 0 the lanes' bytes 0–3, 1 their bytes 4–7, 2 and 3 (for
/// `NR = 4`) their bytes 8–11 and 12–15.
///
/// # Safety
/// AVX2 is available.
#[inline(always)]
unsafe fn join_planes<const NR: usize>(p: &[__m256i; 4]) -> [__m256; NR] {
    // SAFETY: AVX2 (caller); registers only.
    unsafe {
        let low01 = _mm256_unpacklo_epi8(p[0], p[1]);
        let low23 = _mm256_unpacklo_epi8(p[2], p[3]);
        let mut c = [_mm256_setzero_ps(); NR];
        c[0] = _mm256_castsi256_ps(_mm256_unpacklo_epi16(low01, low23));
        c[1] = _mm256_castsi256_ps(_mm256_unpackhi_epi16(low01, low23));
        if let [_, _, c2, c3] = &mut c[..] {
            let high01 = _mm256_unpackhi_epi8(p[0], p[1]);
            let high23 = _mm256_unpackhi_epi8(p[2], p[3]);
            *c2 = _mm256_castsi256_ps(_mm256_unpacklo_epi16(high01, high23));
            *c3 = _mm256_castsi256_ps(_mm256_unpackhi_epi16(high01, high23));
        }
        c
    }
}

/// Byte plane `k` of `values` (at most 16) in register `k`, in both
/// 128-bit lanes; zeros past the values.
///
/// # Safety
/// AVX2 is available.
#[inline(always)]
unsafe fn byte_planes(values: &[f32]) -> [__m256i; 4] {
    let mut bytes = [[0u8; 16]; 4];
    for (v, c) in values.iter().take(16).enumerate() {
        for (plane, b) in bytes.iter_mut().zip(c.to_le_bytes()) {
            plane[v] = b;
        }
    }
    // SAFETY: AVX2 is the caller's promise; the loads read the local
    // planes. (A loop, not a closure: a closure does not inherit the
    // target features, and its intrinsics become calls.)
    unsafe {
        let mut planes = [_mm256_setzero_si256(); 4];
        for (p, b) in planes.iter_mut().zip(&bytes) {
            *p = _mm256_broadcastsi128_si256(_mm_loadu_si128(b.as_ptr().cast()));
        }
        planes
    }
}

/// Lane `l` of a register of a 4-bit step holds coordinate `ORDER[l]` of
/// its 8: the 16 bytes of 32 codes give the even codes (low nibbles) in
/// the lower 128-bit lane and the odd ones (high nibbles) in the upper,
/// four to a register after the unpacks.
const ORDER: [i32; 8] = [0, 2, 4, 6, 1, 3, 5, 7];

/// The inverse of [`ORDER`]: coordinate `c` is in lane `UNORDER[c]`.
const UNORDER: [i32; 8] = [0, 4, 1, 5, 2, 6, 3, 7];

/// The byte planes of a 4-bit codebook's 16 centroids, and the constants
/// that turn packed bytes into indices.
pub(super) struct Planes {
    planes: [__m256i; 4],
    nibble: __m256i,
    /// Dword shifts: 0 in the lower 128-bit lane (the low nibbles), 4 in
    /// the upper (the high nibbles).
    halves: __m256i,
    order: __m256i,
    unorder: __m256i,
}

impl PlaneLookup for Planes {
    const BITS: usize = 4;
    type Rest = Narrow<4>;

    #[inline(always)]
    unsafe fn new(cb: &Codebook) -> Planes {
        // SAFETY: AVX2 is the caller's promise; the loads read the local
        // orders.
        unsafe {
            Planes {
                planes: byte_planes(cb.centroids()),
                nibble: _mm256_set1_epi8(0x0F),
                halves: _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4),
                order: _mm256_loadu_si256(ORDER.as_ptr().cast()),
                unorder: _mm256_loadu_si256(UNORDER.as_ptr().cast()),
            }
        }
    }

    #[inline(always)]
    unsafe fn rest(cb: &Codebook) -> Narrow<4> {
        // SAFETY: forwarded from the caller.
        unsafe { Narrow::<4>::new(cb) }
    }

    fn read(nr: usize) -> usize {
        4 * nr
    }

    /// Code `2k` in the low nibble of byte `k`, `2k + 1` in its high
    /// nibble: register `i` holds codes `8i … 8i + 7` in the order
    /// [`ORDER`].
    #[inline(always)]
    unsafe fn lookup<const NR: usize>(&self, at: *const u8) -> [__m256; NR] {
        // SAFETY: AVX2 is the caller's promise; the load reads the 4·NR
        // bytes at `at`.
        unsafe {
            let bytes = if NR == 4 {
                _mm256_broadcastsi128_si256(_mm_loadu_si128(at.cast()))
            } else {
                _mm256_broadcastq_epi64(_mm_loadl_epi64(at.cast()))
            };
            let idx = _mm256_and_si256(_mm256_srlv_epi32(bytes, self.halves), self.nibble);
            let mut p = [_mm256_setzero_si256(); 4];
            for (pk, plane) in p.iter_mut().zip(&self.planes) {
                *pk = _mm256_shuffle_epi8(*plane, idx);
            }
            join_planes::<NR>(&p)
        }
    }

    #[inline(always)]
    unsafe fn put_in_lanes<const NR: usize>(&self, mut v: [__m256; NR]) -> [__m256; NR] {
        for x in &mut v {
            // SAFETY: AVX2 (caller); registers only.
            *x = unsafe { _mm256_permutevar8x32_ps(*x, self.order) };
        }
        v
    }

    #[inline(always)]
    unsafe fn take_from_lanes<const NR: usize>(&self, mut v: [__m256; NR]) -> [__m256; NR] {
        for x in &mut v {
            // SAFETY: AVX2 (caller); registers only.
            *x = unsafe { _mm256_permutevar8x32_ps(*x, self.unorder) };
        }
        v
    }
}

/// The byte planes of the lower half of a `B`-bit codebook (`B` 5 or 6:
/// 16 or 32 centroids), whose upper half is its mirror
/// (`c[2^B − 1 − k] = −c[k]` exactly, as `Codebook` builds it).
pub(super) struct MirrorPlanes<const B: usize> {
    /// Centroids 0–15.
    low: [__m256i; 4],
    /// Centroids 16–31 (6 bits; zeros at 5).
    high: [__m256i; 4],
    /// `2^(B−1) − 1` in every byte: the largest lower-half code, and the
    /// mask of a lower-half index.
    half: __m256i,
    /// The sign bit of an f32's top byte, in every byte.
    sign: __m256i,
}

impl<const B: usize> PlaneLookup for MirrorPlanes<B> {
    const BITS: usize = B;
    type Rest = Wide<B>;

    #[inline(always)]
    unsafe fn new(cb: &Codebook) -> MirrorPlanes<B> {
        debug_assert!(B == 5 || B == 6);
        let c = cb.centroids();
        let lower = &c[..c.len() / 2];
        // SAFETY: AVX2 is the caller's promise.
        unsafe {
            MirrorPlanes {
                low: byte_planes(lower),
                high: byte_planes(lower.get(16..).unwrap_or(&[])),
                half: _mm256_set1_epi8((1i8 << (B - 1)) - 1),
                sign: _mm256_set1_epi8(i8::MIN),
            }
        }
    }

    #[inline(always)]
    unsafe fn rest(cb: &Codebook) -> Wide<B> {
        // SAFETY: forwarded from the caller.
        unsafe { Wide::<B>::new(cb) }
    }

    fn read(nr: usize) -> usize {
        nr * B / 2 + 16
    }

    /// Codes packed `B` bits apart from bit 0 of `at` on: register `i`
    /// holds codes `4i … 4i + 3` in its lower 128-bit lane and
    /// `4i + 4·NR … 4i + 4·NR + 3` in its upper.
    #[inline(always)]
    unsafe fn lookup<const NR: usize>(&self, at: *const u8) -> [__m256; NR] {
        // SAFETY: AVX2 is the caller's promise; the loads read 16 bytes at
        // `at` and at `at + NR·B/2`, inside `read(NR)`.
        unsafe {
            // Lane 0 the first 4·NR codes, lane 1 the next.
            let lo = _mm_loadu_si128(at.cast());
            let hi = _mm_loadu_si128(at.add(NR * B / 2).cast());
            let bytes = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi);
            let codes = spread_codes(bytes, const { &WordSpread::of(B as u8) }, B as u8);
            // An upper-half code k reads 2^B − 1 − k, its low bits flipped.
            let upper = _mm256_cmpgt_epi8(codes, self.half);
            let idx = _mm256_and_si256(_mm256_xor_si256(codes, upper), self.half);
            let mut p = [_mm256_setzero_si256(); 4];
            if B == 5 {
                for (pk, plane) in p.iter_mut().zip(&self.low) {
                    *pk = _mm256_shuffle_epi8(*plane, idx);
                }
            } else {
                // Bit 4 of the index in each byte's top bit picks the half.
                let bit4 = _mm256_slli_epi16::<3>(idx);
                for (k, pk) in p.iter_mut().enumerate() {
                    let low = _mm256_shuffle_epi8(self.low[k], idx);
                    let high = _mm256_shuffle_epi8(self.high[k], idx);
                    *pk = _mm256_blendv_epi8(low, high, bit4);
                }
            }
            p[3] = _mm256_xor_si256(p[3], _mm256_and_si256(upper, self.sign));
            join_planes::<NR>(&p)
        }
    }

    #[inline(always)]
    unsafe fn put_in_lanes<const NR: usize>(&self, v: [__m256; NR]) -> [__m256; NR] {
        let mut out = v;
        // SAFETY: AVX2 (caller); registers only.
        unsafe {
            for k in 0..NR / 2 {
                let (a, b) = (v[k], v[k + NR / 2]);
                out[2 * k] = _mm256_permute2f128_ps::<0x20>(a, b);
                out[2 * k + 1] = _mm256_permute2f128_ps::<0x31>(a, b);
            }
        }
        out
    }

    #[inline(always)]
    unsafe fn take_from_lanes<const NR: usize>(&self, v: [__m256; NR]) -> [__m256; NR] {
        let mut out = v;
        // SAFETY: AVX2 (caller); registers only.
        unsafe {
            for k in 0..NR / 2 {
                let (a, b) = (v[2 * k], v[2 * k + 1]);
                out[k] = _mm256_permute2f128_ps::<0x20>(a, b);
                out[k + NR / 2] = _mm256_permute2f128_ps::<0x31>(a, b);
            }
        }
        out
    }
}

/// The lookup of the step at `rows[at..]`: in place when `IN_PLACE`, else
/// from a copy of what is left of `rows` (zeros past it). The copy is
/// made here, as `wide::group` makes its own: one helper returning the
/// padded bytes by value made a single row's `dot` at 5 and 6 bits
/// 1.3× slower (the thirty-second session's journal).
///
/// # Safety
/// AVX2 is available; with `IN_PLACE`, `L::read(NR)` bytes at `at` lie in
/// `rows`; else the step's own `NR·BITS` bytes do.
#[inline(always)]
unsafe fn lookup_at<L: PlaneLookup, const NR: usize, const IN_PLACE: bool>(
    l: &L,
    rows: &[u8],
    at: usize,
) -> [__m256; NR] {
    // SAFETY: the caller's promise; the copy is 32 bytes, more than any
    // step reads.
    unsafe {
        if IN_PLACE {
            l.lookup::<NR>(rows.as_ptr().add(at))
        } else {
            let mut copy = [0u8; 32];
            let rest = rows.get(at..).unwrap_or(&[]);
            let n = rest.len().min(copy.len());
            copy[..n].copy_from_slice(&rest[..n]);
            l.lookup::<NR>(copy.as_ptr())
        }
    }
}

/// `out[h·out_stride + j] += Σ_r weights[h·w_stride + r]·c[idx_{r,j}]` for
/// the `G` weight sets of `a`, over the first `8·NR·⌊d/(8·NR)⌋`
/// coordinates, `8·NR` at a time over every row (`NR` 2 or 4: `G·NR ≤ 8`
/// sums in registers). Returns how many coordinates it summed; the rest
/// are the caller's. Each sum takes the FMAs of the other value kernels in
/// row order, so the same bits.
///
/// # Safety
/// AVX2 and FMA are available; `cb` has `L::BITS` bits; the buffers hold
/// the shape (`a.fit(L::BITS, G, out.len())`).
#[inline(always)]
pub(super) unsafe fn plane_values<L: PlaneLookup, const G: usize, const NR: usize>(
    cb: &Codebook,
    a: &WeightedCodes<'_>,
    out: &mut [f32],
) -> usize {
    let span = 8 * NR;
    let (steps, step_bytes) = (a.d / span, NR * L::BITS);
    // Rows whose every step's read lies in `rows` (every row where a step
    // reads only its own bytes: then the copying loop is gone, and with it
    // the register pressure that kept one 4-bit sum on the stack).
    let direct = match steps {
        _ if L::read(NR) == step_bytes => a.n,
        0 => a.n,
        _ => rows_within(
            a.rows.len(),
            a.stride,
            (steps - 1) * step_bytes + L::read(NR),
            a.n,
        ),
    };
    // SAFETY: AVX2 and FMA are the caller's promise. Step s of row r < n,
    // NR·BITS bytes from byte NR·BITS·s with 8·NR·(s + 1) ≤ d, lies inside
    // the row's packed bytes, which lie in `rows` (its whole read below
    // `direct`); the sums of set h < G lie inside theirs (`fit`).
    unsafe {
        let l = L::new(cb);
        for s in 0..steps {
            let mut acc = [[_mm256_setzero_ps(); NR]; G];
            for (h, acc) in acc.iter_mut().enumerate() {
                let o = out.as_ptr().add(h * a.out_stride + span * s);
                let mut v = [_mm256_setzero_ps(); NR];
                for (i, v) in v.iter_mut().enumerate() {
                    *v = _mm256_loadu_ps(o.add(8 * i));
                }
                *acc = l.put_in_lanes(v);
            }
            for r in 0..direct {
                acc = add_row::<L, G, NR, true>(&l, a, r, s, acc);
            }
            for r in direct..a.n {
                acc = add_row::<L, G, NR, false>(&l, a, r, s, acc);
            }
            for (h, acc) in acc.iter().enumerate() {
                let o = out.as_mut_ptr().add(h * a.out_stride + span * s);
                for (i, v) in l.take_from_lanes(*acc).iter().enumerate() {
                    _mm256_storeu_ps(o.add(8 * i), *v);
                }
            }
        }
    }
    steps * span
}

/// Row `r`'s step `s` added to the sums of [`plane_values`].
///
/// # Safety
/// As [`plane_values`]; with `IN_PLACE`, the step's read lies in `rows`.
#[inline(always)]
unsafe fn add_row<L: PlaneLookup, const G: usize, const NR: usize, const IN_PLACE: bool>(
    l: &L,
    a: &WeightedCodes<'_>,
    r: usize,
    s: usize,
    mut acc: [[__m256; NR]; G],
) -> [[__m256; NR]; G] {
    let row = r * a.stride;
    // SAFETY: forwarded from the caller; weights[h·w_stride + r] with
    // h < G, r < n lie in `weights` (`fit`).
    unsafe {
        // The first pass over the rows asks those ahead into L2.
        if s == 0 {
            crate::backend::prefetch_ahead(a.rows.as_ptr().wrapping_add(row), a.stride);
        }
        let c = lookup_at::<L, NR, IN_PLACE>(l, a.rows, row + NR * L::BITS * s);
        for (h, acc) in acc.iter_mut().enumerate() {
            let w = _mm256_set1_ps(*a.weights.get_unchecked(h * a.w_stride + r));
            for (v, c) in acc.iter_mut().zip(&c) {
                *v = _mm256_fmadd_ps(*c, w, *v);
            }
        }
    }
    acc
}

/// Longest rows [`plane_scores`] takes: its queries, put in the lookup's
/// order, take `4·PLANE_MAX_DIM` floats (4 KB) on the stack.
const PLANE_MAX_DIM: usize = 256;

/// Scores `out[h·out_stride + r] = Σ_j q_h[j]·c[idx_{r,j}]` of the `G`
/// queries of `job` over its `n` rows of `L::BITS`-bit codes (`d` a
/// multiple of 8 up to [`PLANE_MAX_DIM`]): per row, 32 codes at a time
/// looked up from the byte planes and taken by an FMA per query and 8
/// codes, against the queries' coordinates put in the lookup's order once
/// per call; the rest of `d` 8 at a time by `L::Rest`. Sums of 8 lanes in
/// [`chains`] a query and row (their lanes hold other coordinates than
/// the portable loop's, so the scores agree with it within the kernels'
/// tolerance, not bit for bit). Returns false, touching nothing, for
/// longer rows.
///
/// # Safety
/// AVX2 and FMA are available; `cb` has `L::BITS` bits; `G` is
/// `job.q.count`, and the buffers hold the shape
/// (`job.fits(L::BITS, out.len(), out_stride)`).
#[inline(always)]
pub(super) unsafe fn plane_scores<L: PlaneLookup, const G: usize>(
    cb: &Codebook,
    job: &ScoreRows<'_>,
    out: &mut [f32],
    out_stride: usize,
) -> bool {
    let (q, d, n, b) = (job.q, job.q.dim, job.n, L::BITS);
    if d > PLANE_MAX_DIM || !d.is_multiple_of(8) {
        return false;
    }
    let (quads, groups) = (d / 32, d / 8);
    // Rows whose every read (of the steps, and of the groups past them)
    // lies in `rows`: those read in place.
    let quads_read = match quads {
        0 => 0,
        _ => (quads - 1) * 4 * b + L::read(4),
    };
    let groups_read = match groups > 4 * quads {
        true => (groups - 1) * b + <L::Rest as Groups>::READ,
        false => 0,
    };
    let direct = rows_within(job.rows.len(), job.stride, quads_read.max(groups_read), n);
    // Left uninitialised: `score_row` reads only what is written below
    // (zeroing 4 KB took most of a single row's `dot`).
    let mut ordered = [core::mem::MaybeUninit::<f32>::uninit(); 4 * PLANE_MAX_DIM];
    // SAFETY: AVX2 and FMA are the caller's promise. Query h < G's loads
    // read its d values (`fits`), the ordered copies G·d ≤ 4·PLANE_MAX_DIM
    // floats (MaybeUninit<f32> has f32's layout).
    unsafe {
        let l = L::new(cb);
        let rest = L::rest(cb);
        for h in 0..G {
            let from = q.values.as_ptr().add(h * q.stride);
            for m in 0..quads {
                let mut v = [_mm256_setzero_ps(); 4];
                for (i, v) in v.iter_mut().enumerate() {
                    *v = _mm256_loadu_ps(from.add(32 * m + 8 * i));
                }
                for (i, v) in l.put_in_lanes(v).iter().enumerate() {
                    let at = ordered
                        .as_mut_ptr()
                        .cast::<f32>()
                        .add(h * d + 32 * m + 8 * i);
                    _mm256_storeu_ps(at, *v);
                }
            }
        }
        let s = Scores {
            job,
            ordered: ordered.as_ptr().cast(),
            out_stride,
        };
        score_rows::<L, G, true>(&l, &rest, &s, 0..direct, out);
        score_rows::<L, G, false>(&l, &rest, &s, direct..n, out);
    }
    true
}

/// [`score_row`] over `rows`, the scores stored: one query's four rows at
/// a time, their lanes summed together ([`ordered_sums`]: each in
/// [`F32x8::sum`]'s order, in 14 operations where four sums one at a time
/// took 24, their chains of dependent adds one row after another).
///
/// # Safety
/// As [`score_row`], for every row of `rows`.
#[inline(always)]
unsafe fn score_rows<L: PlaneLookup, const G: usize, const IN_PLACE: bool>(
    l: &L,
    rest: &L::Rest,
    s: &Scores<'_>,
    rows: core::ops::Range<usize>,
    out: &mut [f32],
) {
    let mut r = rows.start;
    // SAFETY: forwarded from the caller; r + 3 < rows.end ≤ out.len() for
    // the four rows' store (one query: `out` holds a score a row).
    unsafe {
        if G == 1 {
            while r + 4 <= rows.end {
                let mut four = [_mm256_setzero_ps(); 4];
                for (k, f) in four.iter_mut().enumerate() {
                    *f = score_row::<L, G, IN_PLACE>(l, rest, s, r + k)[0];
                }
                _mm_storeu_ps(out.as_mut_ptr().add(r), ordered_sums(four));
                r += 4;
            }
        }
        while r < rows.end {
            let sums = score_row::<L, G, IN_PLACE>(l, rest, s, r);
            if G == 1 {
                // One query keeps its documented order of the lanes.
                *out.get_unchecked_mut(r) = F32x8(sums[0]).sum();
            } else {
                put_row_scores(&sums, out, s.out_stride, r);
            }
            r += 1;
        }
    }
}

/// One query's scores `out[r] = Σ_j q[j]·c[idx_{r,j}]` over rows of 4-, 5-
/// or 6-bit codes from the byte planes ([`plane_scores`] with four chains
/// of sums: the 8-lane registers of each 32 codes in turn, the groups of 8
/// past them in turn, then `(s0 + s1) + (s2 + s3)` and the lanes summed).
/// Returns false, touching nothing, for other widths, `d` not a multiple
/// of 8 or past [`PLANE_MAX_DIM`].
///
/// # Safety
/// AVX2 and FMA are available; the arguments are validated as by
/// `dot_rows_on` (every row of `out` fits in `rows`).
#[inline(always)]
pub(super) unsafe fn plane_key_rows(
    cb: &Codebook,
    q: &[f32],
    rows: &[u8],
    stride: usize,
    out: &mut [f32],
) -> bool {
    let job = ScoreRows {
        q: crate::codebook::Queries {
            values: q,
            dim: q.len(),
            stride: q.len(),
            count: 1,
        },
        rows,
        stride,
        n: out.len(),
    };
    // SAFETY: forwarded from the caller; each width its lookup.
    unsafe {
        match cb.bits() {
            4 => plane_scores::<Planes, 1>(cb, &job, out, 0),
            5 => plane_scores::<MirrorPlanes<5>, 1>(cb, &job, out, 0),
            6 => plane_scores::<MirrorPlanes<6>, 1>(cb, &job, out, 0),
            _ => false,
        }
    }
}

/// What [`score_row`] reads: the job, its queries in the lookup's order,
/// and where the scores go.
struct Scores<'a> {
    job: &'a ScoreRows<'a>,
    /// Query `h`'s first `32·⌊d/32⌋` coordinates in the lookup's order at
    /// `h·d` (only those are written: a raw pointer, since the rest of
    /// the buffer is uninitialised).
    ordered: *const f32,
    out_stride: usize,
}

/// Row `r`'s sums for every query of [`plane_scores`], a register of
/// 8 lanes each (the score is their sum).
///
/// # Safety
/// As [`plane_scores`], `r < n`; with `IN_PLACE`, the row's every read
/// lies in `rows`.
#[inline(always)]
unsafe fn score_row<L: PlaneLookup, const G: usize, const IN_PLACE: bool>(
    l: &L,
    rest: &L::Rest,
    s: &Scores<'_>,
    r: usize,
) -> [__m256; G] {
    let (job, b) = (s.job, L::BITS);
    let (q, d) = (job.q, job.q.dim);
    let row = r * job.stride;
    // SAFETY: forwarded from the caller: a step's bytes (4b from byte 4bs
    // of row r, 32(s + 1) ≤ d) lie in the row's packed bytes, inside
    // `rows`, as do the groups read past them; query loads stay below
    // each query's d values (of the ordered copy, below G·d); the stores
    // write score r of each query's n.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 4]; G];
        for m in 0..d / 32 {
            let c = lookup_at::<L, 4, IN_PLACE>(l, job.rows, row + 4 * b * m);
            for (h, acc) in acc.iter_mut().enumerate() {
                let qh = s.ordered.add(h * d + 32 * m);
                for (i, c) in c.iter().enumerate() {
                    let a = &mut acc[i % chains::<G>()];
                    *a = _mm256_fmadd_ps(_mm256_loadu_ps(qh.add(8 * i)), *c, *a);
                }
            }
        }
        for (k, g) in (4 * (d / 32)..d / 8).enumerate() {
            let c = rest.centroids_at::<IN_PLACE>(job.rows, row + b * g);
            for (h, acc) in acc.iter_mut().enumerate() {
                let qh = q.values.as_ptr().add(h * q.stride + 8 * g);
                let a = &mut acc[k % chains::<G>()];
                *a = _mm256_fmadd_ps(_mm256_loadu_ps(qh), c, *a);
            }
        }
        let mut sums = [_mm256_setzero_ps(); G];
        for (sum, a) in sums.iter_mut().zip(&acc) {
            *sum = match chains::<G>() {
                1 => a[0],
                2 => _mm256_add_ps(a[0], a[1]),
                _ => _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])),
            };
        }
        sums
    }
}

/// Independent sums a query of [`score_row`] keeps (its 8-lane registers
/// taken in turn), so that its FMAs do not wait on each other's latency:
/// four for one query, two for two, one for more.
const fn chains<const G: usize>() -> usize {
    match G {
        1 => 4,
        2 => 2,
        _ => 1,
    }
}
