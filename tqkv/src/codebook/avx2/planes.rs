//! 4-bit value codes looked up 32 at a time by `vpshufb`, from the
//! centroids' four byte planes.
//!
//! A 16-entry table of f32 takes two `vpermps` and a blend on AVX2 for 8
//! lookups (the 4-bit lookup of `rows.rs`): two operations on the one port
//! that crosses lanes, and a blend of three micro-ops on Intel's large
//! cores. Split into its four byte planes (plane `k` holds byte `k` of each
//! centroid), the table is four 16-byte tables, which `vpshufb` reads 32
//! indices at a time within each 128-bit lane; two rounds of unpacks then
//! put each centroid's four bytes back together. 32 codes cost a load, a
//! shift, a mask, four `vpshufb` and six unpacks, where 8 cost two
//! `vpermps`, a shift and a blend: the centroids are the same values, so
//! the sums take the same FMAs in the same row order and keep their bits.
//!
//! The unpacks leave each register's 8 coordinates in the order
//! [`ORDER`]; the sums stay in that order over all the rows and are put
//! back in place once, by a `vpermps` when loaded and one when stored.

use core::arch::x86_64::*;

use crate::codebook::pack::rows_within;
use crate::codebook::{Codebook, ScoreRows, WeightedCodes};

/// Lane `l` of a register of sums holds coordinate `ORDER[l]` of its 8:
/// the 16 bytes of 32 codes give the even codes (low nibbles) in the lower
/// 128-bit lane and the odd ones (high nibbles) in the upper, four to a
/// register after the unpacks.
const ORDER: [i32; 8] = [0, 2, 4, 6, 1, 3, 5, 7];

/// The inverse of [`ORDER`]: coordinate `c` is in lane `UNORDER[c]`.
const UNORDER: [i32; 8] = [0, 4, 1, 5, 2, 6, 3, 7];

/// The byte planes of a 4-bit codebook's 16 centroids, each in both
/// 128-bit lanes, and the constants that turn packed bytes into indices.
pub(super) struct Planes {
    planes: [__m256i; 4],
    nibble: __m256i,
    /// Dword shifts: 0 in the lower 128-bit lane (the low nibbles), 4 in
    /// the upper (the high nibbles).
    halves: __m256i,
}

impl Planes {
    /// # Safety
    /// AVX2 is available; `cb.bits() == 4`.
    #[inline(always)]
    pub(super) unsafe fn new(cb: &Codebook) -> Planes {
        let mut bytes = [[0u8; 16]; 4];
        for (v, c) in cb.centroids().iter().take(16).enumerate() {
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
            Planes {
                planes,
                nibble: _mm256_set1_epi8(0x0F),
                halves: _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4),
            }
        }
    }

    /// The centroids of the `8·NR` codes (`NR` 2 or 4) in the `4·NR` bytes
    /// at `at` (code `2k` in the low nibble of byte `k`, `2k + 1` in its
    /// high nibble): register `i` holds codes `8i … 8i + 7` in the order
    /// [`ORDER`].
    ///
    /// # Safety
    /// AVX2 is available; the `4·NR` bytes at `at` are readable.
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
}

/// `out[h·out_stride + j] += Σ_r weights[h·w_stride + r]·c[idx_{r,j}]` for
/// the `G` weight sets of `a` at 4 bits, over the first `8·NR·⌊d/(8·NR)⌋`
/// coordinates, `8·NR` at a time over every row (`NR` 2 or 4: `G·NR ≤ 8`
/// sums in registers). Returns how many coordinates it summed; the rest
/// are the caller's. Each sum takes the FMAs of the other value kernels in
/// row order, so the same bits.
///
/// # Safety
/// AVX2 and FMA are available; `cb` has 4 bits; the buffers hold the shape
/// (`a.fit(4, G, out.len())`).
#[inline(always)]
pub(super) unsafe fn plane_values<const G: usize, const NR: usize>(
    cb: &Codebook,
    a: &WeightedCodes<'_>,
    out: &mut [f32],
) -> usize {
    let span = 8 * NR;
    let steps = a.d / span;
    // SAFETY: AVX2 and FMA are the caller's promise. A step's bytes of row
    // r < n, 4·NR from byte 4·NR·s with 8·NR·(s + 1) ≤ d, lie inside that
    // row's packed bytes, which lie in `rows`; weights[h·w_stride + r]
    // and the sums of set h < G lie inside theirs (`fit`).
    unsafe {
        let pl = Planes::new(cb);
        let order = _mm256_loadu_si256(ORDER.as_ptr().cast());
        let unorder = _mm256_loadu_si256(UNORDER.as_ptr().cast());
        for s in 0..steps {
            let mut acc = [[_mm256_setzero_ps(); NR]; G];
            for (h, acc) in acc.iter_mut().enumerate() {
                let o = out.as_ptr().add(h * a.out_stride + span * s);
                for (i, v) in acc.iter_mut().enumerate() {
                    *v = _mm256_permutevar8x32_ps(_mm256_loadu_ps(o.add(8 * i)), order);
                }
            }
            for r in 0..a.n {
                let row = a.rows.as_ptr().wrapping_add(r * a.stride);
                // The first pass over the rows asks those ahead into L2.
                if s == 0 {
                    crate::backend::prefetch_ahead(row, a.stride);
                }
                let c = pl.lookup::<NR>(row.add(4 * NR * s));
                for (h, acc) in acc.iter_mut().enumerate() {
                    let w = _mm256_set1_ps(*a.weights.get_unchecked(h * a.w_stride + r));
                    for (v, c) in acc.iter_mut().zip(&c) {
                        *v = _mm256_fmadd_ps(*c, w, *v);
                    }
                }
            }
            for (h, acc) in acc.iter().enumerate() {
                let o = out.as_mut_ptr().add(h * a.out_stride + span * s);
                for (i, v) in acc.iter().enumerate() {
                    _mm256_storeu_ps(o.add(8 * i), _mm256_permutevar8x32_ps(*v, unorder));
                }
            }
        }
    }
    steps * span
}

/// Longest rows [`plane_scores`] takes: its queries, put in [`ORDER`],
/// take `4·PLANE_MAX_DIM` floats (4 KB) on the stack.
const PLANE_MAX_DIM: usize = 256;

/// Scores `out[h·out_stride + r] = Σ_j q_h[j]·c[idx_{r,j}]` of the `G`
/// queries of `job` over its `n` rows of 4-bit codes (`d` a multiple of 8
/// up to [`PLANE_MAX_DIM`]): per row, 32 codes at a time looked up from
/// the byte planes and taken by an FMA per query and 8 codes, against the
/// queries' coordinates put in the lookups' order once per call; the rest
/// of `d` 8 at a time by the 4-bit lookup of `rows.rs`. One sum of 8 lanes
/// a query and row, as the kernel of groups of 8 (its lanes hold other
/// coordinates, so the scores agree within the multi-query tolerance, not
/// bit for bit). Returns false, touching nothing, for longer rows.
///
/// # Safety
/// AVX2 and FMA are available; `cb` has 4 bits; `G` is `job.q.count`, and
/// the buffers hold the shape (`job.fits(4, out.len(), out_stride)`).
#[inline(always)]
pub(super) unsafe fn plane_scores<const G: usize>(
    cb: &Codebook,
    job: &ScoreRows<'_>,
    out: &mut [f32],
    out_stride: usize,
) -> bool {
    use super::rows::{Groups, Narrow};
    use crate::vector::{F32Vector, F32x8};
    let (q, d, n) = (job.q, job.q.dim, job.n);
    if d > PLANE_MAX_DIM || !d.is_multiple_of(8) {
        return false;
    }
    let (quads, groups) = (d / 32, d / 8);
    // Rows whose last group's read (of the groups past the quads) lies in
    // `rows`: those read it in place.
    let direct = rows_within(
        job.rows.len(),
        job.stride,
        (groups - 1) * 4 + Narrow::<4>::READ,
        n,
    );
    let mut ordered = [0.0f32; 4 * PLANE_MAX_DIM];
    // SAFETY: AVX2 and FMA are the caller's promise. Query h < G's loads
    // read its d values (`fits`), the ordered copies G·d ≤ 4·PLANE_MAX_DIM
    // floats; a quad's 16 bytes (byte 16s of row r < n, 32(s + 1) ≤ d) lie
    // in the row's packed bytes, inside `rows`, as do the groups read past
    // them (in place below `direct`); the stores write score r of each
    // query's n.
    unsafe {
        let order = _mm256_loadu_si256(ORDER.as_ptr().cast());
        for h in 0..G {
            let from = q.values.as_ptr().add(h * q.stride);
            for m in 0..4 * quads {
                let v = _mm256_permutevar8x32_ps(_mm256_loadu_ps(from.add(8 * m)), order);
                _mm256_storeu_ps(ordered.as_mut_ptr().add(h * d + 8 * m), v);
            }
        }
        let pl = Planes::new(cb);
        let narrow = Narrow::<4>::new(cb);
        for r in 0..n {
            let row = r * job.stride;
            let mut acc = [_mm256_setzero_ps(); G];
            for s in 0..quads {
                let c = pl.lookup::<4>(job.rows.as_ptr().add(row + 16 * s));
                for (h, acc) in acc.iter_mut().enumerate() {
                    let qh = ordered.as_ptr().add(h * d + 32 * s);
                    for (i, c) in c.iter().enumerate() {
                        *acc = _mm256_fmadd_ps(_mm256_loadu_ps(qh.add(8 * i)), *c, *acc);
                    }
                }
            }
            for g in 4 * quads..groups {
                let c = if r < direct {
                    narrow.centroids_at::<true>(job.rows, row + 4 * g)
                } else {
                    narrow.centroids_at::<false>(job.rows, row + 4 * g)
                };
                for (h, acc) in acc.iter_mut().enumerate() {
                    let qh = q.values.as_ptr().add(h * q.stride + 8 * g);
                    *acc = _mm256_fmadd_ps(_mm256_loadu_ps(qh), c, *acc);
                }
            }
            for (h, acc) in acc.iter().enumerate() {
                *out.get_unchecked_mut(h * out_stride + r) = F32x8(*acc).sum();
            }
        }
    }
    true
}
