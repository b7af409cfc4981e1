//! The AVX2 decode kernels over rows of 5- and 6-bit codes 8 at a time,
//! for what the byte planes (`planes`, 32 at a time) leave: their lookup
//! ([`Wide`], which the value kernels of `rows` and
//! `accumulate_rows_multi` take for the coordinates past the last 32) and
//! the keys' scores past 256 coordinates ([`dot_rows_wide`]); and several
//! queries' scores sharing each group's load and lookup at every width up
//! to 6 bits ([`dot_rows_multi`], over `rows::Narrow` at 1–4 bits, where
//! the planes do not take the rows). A group of 8 codes is `B` bytes:
//! one 8-byte load, broadcast, gives every lane the two bytes that hold
//! its code (`vpshufb`), a variable shift brings the code down
//! (`vpsrlvd`), and the lookup reads the low `B` bits of the lane (the
//! bits above belong to the next codes or rows). No unpacking through
//! memory: the portable loop's byte buffer, written by `pdep` and read
//! back, and its sums indexed at run time, made the key kernel 1.1–1.3×
//! slower (`codebook/dot_rows/avx2/b5|b6/d128`). One query's sums take the
//! portable loop's operations in its order, so the bits are the same;
//! [`dot_rows_multi`]'s do not (see there).

use core::arch::x86_64::*;

use super::rows::Groups;
use super::{lanes_from, pick_mirrored, put_row_scores};
use crate::codebook::pack::rows_within;
use crate::vector::{F32Vector, F32x8};

/// The 32 lowest centroids in four registers, of which the lookups read
/// the codebook's lower half (16 at 5 bits, 32 at 6; the upper half is
/// its mirror, [`pick_mirrored`]), and the spread of a group's bytes to
/// its lanes.
pub(super) struct Wide<const B: usize> {
    t: [__m256; 4],
    /// Dword `l` (in its 128-bit half): the byte holding bit `l·B` of the
    /// group and the next, then two zero bytes.
    bytes: __m256i,
    /// Lane `l`: `l·B mod 8`, where code `l` starts in those bytes.
    shifts: __m256i,
}

impl<const B: usize> Wide<B> {
    /// # Safety
    /// AVX2 is available; `cb.bits() == B ∈ {5, 6}`.
    #[inline(always)]
    pub(super) unsafe fn new(cb: &crate::codebook::Codebook) -> Wide<B> {
        let c = cb.centroids();
        let mut bytes = [-1i8; 32];
        let mut shifts = [0i32; 8];
        for (l, s) in shifts.iter_mut().enumerate() {
            let (byte, bit) = ((l * B / 8) as i8, (l * B % 8) as i32);
            let at = 16 * (l / 4) + 4 * (l % 4);
            bytes[at] = byte;
            bytes[at + 1] = byte + 1;
            *s = bit;
        }
        // SAFETY: AVX2 (caller); `lanes_from` reads inside the centroids
        // (at least 32 of them), the loads read the local arrays.
        unsafe {
            Wide {
                t: [
                    lanes_from(c, 0),
                    lanes_from(c, 8),
                    lanes_from(c, 16),
                    lanes_from(c, 24),
                ],
                bytes: _mm256_loadu_si256(bytes.as_ptr().cast()),
                shifts: _mm256_loadu_si256(shifts.as_ptr().cast()),
            }
        }
    }

    /// The centroids of the group of 8 codes in the low `B` bytes of
    /// `word` (the bytes above it ignored).
    ///
    /// # Safety
    /// AVX2 is available.
    #[inline(always)]
    unsafe fn centroids(&self, word: u64) -> __m256 {
        // SAFETY: AVX2 (caller); registers only.
        unsafe {
            let x = _mm256_set1_epi64x(word as i64);
            let i = _mm256_srlv_epi32(_mm256_shuffle_epi8(x, self.bytes), self.shifts);
            if B == 5 {
                pick_mirrored::<5, 2>(&self.t, i)
            } else {
                pick_mirrored::<6, 4>(&self.t, i)
            }
        }
    }
}

/// The group of 8 codes of `B` bits at `rows[at..]` as the low bytes of a
/// little-endian word: 8 bytes read in place when `IN_PLACE` (the
/// caller's promise that they lie in `rows`), else as many as are left.
///
/// # Safety
/// With `IN_PLACE`, `at + 8 ≤ rows.len()`; else `at + B ≤ rows.len()`.
#[inline(always)]
unsafe fn group<const B: usize, const IN_PLACE: bool>(rows: &[u8], at: usize) -> u64 {
    if IN_PLACE {
        // SAFETY: the caller's promise.
        unsafe { rows.as_ptr().add(at).cast::<u64>().read_unaligned() }
    } else {
        let mut w = [0u8; 8];
        let rest = &rows[at..];
        let n = rest.len().min(8);
        w[..n].copy_from_slice(&rest[..n]);
        u64::from_le_bytes(w)
    }
}

/// Scores `out[r] = Σ_j q[j]·c[idx_{r,j}]` of rows of 5- and 6-bit codes,
/// `q.len()` a nonzero multiple of 8, as the portable kernel sums them
/// (four sums of 8 lanes taking 32 codes a step, a last 8 of a 64-code
/// chunk in the first, then the sums folded), so with its bits. Returns
/// how many rows it scored: all, or 0 for other shapes.
///
/// # Safety
/// AVX2 and FMA are available; the arguments are validated as by
/// `dot_rows_on` (every row of `out` fits in `rows`).
#[inline(always)]
pub(in crate::codebook) unsafe fn dot_rows_wide(
    cb: &crate::codebook::Codebook,
    q: &[f32],
    rows: &[u8],
    stride: usize,
    out: &mut [f32],
) -> usize {
    let d = q.len();
    if d == 0 || !d.is_multiple_of(8) {
        return 0;
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        match cb.bits() {
            5 => dots::<5>(cb, q, rows, stride, out),
            6 => dots::<6>(cb, q, rows, stride, out),
            _ => return 0,
        }
    }
    out.len()
}

/// [`dot_rows_wide`] at `B` bits.
///
/// # Safety
/// As [`dot_rows_wide`], with `cb.bits() == B` and the shape accepted.
#[inline(always)]
unsafe fn dots<const B: usize>(
    cb: &crate::codebook::Codebook,
    q: &[f32],
    rows: &[u8],
    stride: usize,
    out: &mut [f32],
) {
    let d = q.len();
    // Rows whose every group's 8 bytes lie inside `rows`.
    let direct = rows_within(rows.len(), stride, (d / 8 - 1) * B + 8, out.len());
    let (near, far) = out.split_at_mut(direct);
    // SAFETY: forwarded; `group` reads in place only below `direct`.
    unsafe {
        let k = Wide::<B>::new(cb);
        for (r, o) in near.iter_mut().enumerate() {
            *o = dot::<B, true>(&k, q, rows, r * stride);
        }
        for (r, o) in far.iter_mut().enumerate() {
            *o = dot::<B, false>(&k, q, rows, (direct + r) * stride);
        }
    }
}

/// One row's score for [`dots`] (the row at `rows[row..]`).
///
/// # Safety
/// As [`dots`]; with `IN_PLACE`, the row's last group has 8 bytes in
/// `rows`.
#[inline(always)]
unsafe fn dot<const B: usize, const IN_PLACE: bool>(
    k: &Wide<B>,
    q: &[f32],
    rows: &[u8],
    row: usize,
) -> f32 {
    let d = q.len();
    // SAFETY: AVX2 and FMA (caller); the loads of `q` stay below `d`, the
    // groups below the row's `d/8`.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 4];
        for base in (0..d).step_by(64) {
            let n = (d - base).min(64);
            let mut at = 0;
            while at + 32 <= n {
                for (a, acc) in acc.iter_mut().enumerate() {
                    let (c, qv) = lanes::<B, IN_PLACE>(k, q, rows, row, (base + at) / 8 + a);
                    *acc = _mm256_fmadd_ps(qv, c, *acc);
                }
                at += 32;
            }
            while at + 8 <= n {
                let (c, qv) = lanes::<B, IN_PLACE>(k, q, rows, row, (base + at) / 8);
                acc[0] = _mm256_fmadd_ps(qv, c, acc[0]);
                at += 8;
            }
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        // The portable kernel adds its scalar tail, 0 here.
        F32x8(sum).sum() + 0.0
    }
}

/// Group `g` of the row at `rows[row..]`: its centroids and the query's 8
/// values it meets.
///
/// # Safety
/// As [`dot`], `g < d/8`.
#[inline(always)]
unsafe fn lanes<const B: usize, const IN_PLACE: bool>(
    k: &Wide<B>,
    q: &[f32],
    rows: &[u8],
    row: usize,
    g: usize,
) -> (__m256, __m256) {
    // SAFETY: forwarded from the caller; `8g + 8 ≤ d = q.len()`.
    unsafe {
        let c = k.centroids(group::<B, IN_PLACE>(rows, row + g * B));
        (c, _mm256_loadu_ps(q.as_ptr().add(8 * g)))
    }
}

impl<const B: usize> Groups for Wide<B> {
    const READ: usize = 8;

    #[inline(always)]
    unsafe fn centroids_at<const IN_PLACE: bool>(&self, rows: &[u8], at: usize) -> __m256 {
        // SAFETY: forwarded from the caller.
        unsafe { self.centroids(group::<B, IN_PLACE>(rows, at)) }
    }
}

/// Scores `out[h·out_stride + r] = Σ_j q_h[j]·c[idx_{r,j}]` of `g ∈ 2..=4`
/// query vectors (`q_h = queries[h·q_stride..][..d]`) over the same `n`
/// rows of codes of any width up to 6 bits, `d` a multiple of 8: each group
/// of 8 codes is loaded and looked up once ([`Narrow`](super::rows::Narrow)
/// up to 4 bits, [`Wide`] at 5 and 6), then one FMA per query into one sum
/// of 8 lanes per query, in coordinate order. The row-block kernel that
/// scores one query at 1–4 bits looks each code up per query, so sharing
/// the lookup pays there too. The scores agree with one query at a time
/// within the multi-query tolerance, not bit for bit. Returns how many rows
/// it scored: `n`, or 0 (touching nothing) where `backend` is not AVX2,
/// for other shapes, or where the buffers are too short: `n` rows of
/// `packed_len(d, bits)` bytes, `stride` apart, in `rows`,
/// `(g − 1)·q_stride + d` values in `queries` and `(g − 1)·out_stride + n`
/// in `out` (the caller validated them; checked again here in O(1), so
/// that this safe function is sound on its own).
pub(in crate::codebook) fn dot_rows_multi(
    backend: crate::backend::Checked,
    cb: &crate::codebook::Codebook,
    job: crate::codebook::ScoreRows<'_>,
    out: &mut [f32],
    out_stride: usize,
) -> usize {
    if !job.takes(backend, crate::Backend::Avx2, 6, cb, out.len(), out_stride) {
        return 0;
    }
    let (d, g, n) = (job.q.dim, job.q.count, job.n);
    let a = Multi {
        queries: job.q.values,
        d,
        q_stride: job.q.stride,
        rows: job.rows,
        stride: job.stride,
        out_stride,
    };
    // SAFETY: `Checked` proves the AVX2 feature list; the shape is one the
    // kernel takes, and the buffers hold it (checked above).
    unsafe {
        match g {
            2 => multi_simd::<2>(cb, &job, &a, out),
            3 => multi_simd::<3>(cb, &job, &a, out),
            _ => multi_simd::<4>(cb, &job, &a, out),
        }
    }
    n
}

/// The shape of a [`dot_rows_multi`] call.
struct Multi<'a> {
    queries: &'a [f32],
    d: usize,
    q_stride: usize,
    rows: &'a [u8],
    stride: usize,
    out_stride: usize,
}

crate::backend::avx2_features!(crate::backend::target_features {
    /// [`multi_rows`] compiled with the AVX2 feature list, for the
    /// codebook's width (at 4 bits the byte planes' 32 codes at a time,
    /// `planes::plane_scores`, where they take the rows).
    ///
    /// # Safety
    /// AVX2 is available; the shape is one [`dot_rows_multi`] accepts, and
    /// its buffers hold it; `a` is `job`'s.
    unsafe fn multi_simd<const G: usize>(
        cb: &crate::codebook::Codebook,
        job: &crate::codebook::ScoreRows<'_>,
        a: &Multi<'_>,
        out: &mut [f32],
    ) {
        use super::planes::{MirrorPlanes, Planes, plane_scores};
        use super::rows::Narrow;
        let n = job.n;
        // SAFETY: forwarded from the caller; each lookup is made for its
        // own width.
        unsafe {
            match cb.bits() {
                1 => multi_rows::<_, 1, G>(&Narrow::<1>::new(cb), a, n, out),
                2 => multi_rows::<_, 2, G>(&Narrow::<2>::new(cb), a, n, out),
                3 => multi_rows::<_, 3, G>(&Narrow::<3>::new(cb), a, n, out),
                4 if plane_scores::<Planes, G>(cb, job, out, a.out_stride) => {}
                4 => multi_rows::<_, 4, G>(&Narrow::<4>::new(cb), a, n, out),
                5 if plane_scores::<MirrorPlanes<5>, G>(cb, job, out, a.out_stride) => {}
                5 => multi_rows::<_, 5, G>(&Wide::<5>::new(cb), a, n, out),
                _ if plane_scores::<MirrorPlanes<6>, G>(cb, job, out, a.out_stride) => {}
                _ => multi_rows::<_, 6, G>(&Wide::<6>::new(cb), a, n, out),
            }
        }
    }
});

/// [`dot_rows_multi`] for `G` queries over groups of 8 codes of `B` bits
/// (`B` bytes) looked up by `k`.
///
/// # Safety
/// AVX2 and FMA are available; the shape is one [`dot_rows_multi`]
/// accepts, and its buffers hold it; `k` reads codes of `B` bits.
#[inline(always)]
unsafe fn multi_rows<K: Groups, const B: usize, const G: usize>(
    k: &K,
    a: &Multi<'_>,
    n: usize,
    out: &mut [f32],
) {
    // Rows whose every group's read lies inside `rows`.
    let direct = rows_within(a.rows.len(), a.stride, (a.d / 8 - 1) * B + K::READ, n);
    // SAFETY: forwarded; groups are read in place only below `direct`.
    unsafe {
        for r in 0..direct {
            multi_row::<K, B, G, true>(k, a, r, out);
        }
        for r in direct..n {
            multi_row::<K, B, G, false>(k, a, r, out);
        }
    }
}

/// Row `r`'s scores for every query of [`multi_rows`].
///
/// # Safety
/// As [`multi_rows`]; with `IN_PLACE`, the row's last group's read lies in
/// `rows`.
#[inline(always)]
unsafe fn multi_row<K: Groups, const B: usize, const G: usize, const IN_PLACE: bool>(
    k: &K,
    a: &Multi<'_>,
    r: usize,
    out: &mut [f32],
) {
    let row = r * a.stride;
    // SAFETY: AVX2 and FMA (caller); query loads stay below each query's
    // `d` values, the groups below the row's `d/8`, the stores at `r` of
    // each query's `n` outputs.
    unsafe {
        // Two chains of sums a query, the even groups and the odd: one
        // chain waited on its FMAs' latency, d/8 of them a row.
        // (Pairs of groups, not `acc[g % 2]`: a chain picked at run time
        // lives in memory.)
        let mut acc = [[_mm256_setzero_ps(); 2]; G];
        let groups = a.d / 8;
        let mut g = 0;
        while g < groups {
            for (chain, g) in (g..(g + 2).min(groups)).enumerate() {
                let c = k.centroids_at::<IN_PLACE>(a.rows, row + g * B);
                for (h, acc) in acc.iter_mut().enumerate() {
                    let q = _mm256_loadu_ps(a.queries.as_ptr().add(h * a.q_stride + 8 * g));
                    acc[chain] = _mm256_fmadd_ps(q, c, acc[chain]);
                }
            }
            g += 2;
        }
        let mut sums = [_mm256_setzero_ps(); G];
        for (s, [even, odd]) in sums.iter_mut().zip(&acc) {
            *s = _mm256_add_ps(*even, *odd);
        }
        put_row_scores(&sums, out, a.out_stride, r);
    }
}
