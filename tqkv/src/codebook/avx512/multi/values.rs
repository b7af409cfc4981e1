//! Weighted sums of several weight sets over the same rows of value codes,
//! and of codes and sign sketches in one pass (prod values).

use core::arch::x86_64::*;

use super::super::Spread;
use super::super::sign_tables::{self, ROWS};
use super::super::values::byte_mask;
use super::planes::BytePlanes;
use super::signs::{bits_simd, chunk_masks, code_bits};
use super::{Centroids, ChunkLookup, MAX_GROUP};
use crate::backend::prefetch_ahead;
use crate::codebook::Codebook;
use crate::qjl::SignSets;

/// `out[h·out_stride + j] += Σ_r weights[h·w_stride + r]·c[idx_{r,j}]` for
/// `G ≤` [`MAX_GROUP`] weight sets over the same `n` rows: each row's codes
/// unpacked and looked up once per chunk of 64 coordinates, then one FMA
/// per 16 codes and query. Returns false (touching nothing) unless
/// `backend` is AVX-512 and the shape is one it takes: 1–6 bits, `d` up to
/// 256, and buffers that hold it
/// ([`WeightedCodes::fit`](crate::codebook::WeightedCodes::fit)). 6-bit
/// codes are looked up from the centroids' byte planes on a core that runs
/// 512-bit operations on 256-bit pipes
/// ([`zmm_on_half_pipes`](crate::backend::zmm_on_half_pipes)), from their
/// registers elsewhere: the same bits either way.
pub(in crate::codebook) fn accumulate_rows(
    backend: crate::backend::Checked,
    cb: &Codebook,
    a: &crate::codebook::WeightedCodes<'_>,
    out: &mut [f32],
    g: usize,
) -> bool {
    let planes = cb.bits() == 6 && crate::backend::zmm_on_half_pipes();
    accumulate_rows_with(backend, cb, a, out, g, planes)
}

/// [`accumulate_rows`] with the 6-bit lookup chosen by the caller: from the
/// centroids' byte planes ([`BytePlanes`]) if `planes`, else from their
/// registers (a parameter so that tests run both on any host).
pub(in crate::codebook) fn accumulate_rows_with(
    backend: crate::backend::Checked,
    cb: &Codebook,
    a: &crate::codebook::WeightedCodes<'_>,
    out: &mut [f32],
    g: usize,
    planes: bool,
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
            1 if b == 6 && planes => accumulate_simd::<1, 6, BytePlanes>(cb, a, out),
            2 if b == 6 && planes => accumulate_simd::<2, 6, BytePlanes>(cb, a, out),
            3 if b == 6 && planes => accumulate_simd::<3, 6, BytePlanes>(cb, a, out),
            _ if b == 6 && planes => accumulate_simd::<4, 6, BytePlanes>(cb, a, out),
            1 if b == 6 => accumulate_simd::<1, 6, Centroids>(cb, a, out),
            2 if b == 6 => accumulate_simd::<2, 6, Centroids>(cb, a, out),
            3 if b == 6 => accumulate_simd::<3, 6, Centroids>(cb, a, out),
            _ if b == 6 => accumulate_simd::<4, 6, Centroids>(cb, a, out),
            1 if b == 5 => accumulate_simd::<1, 5, Centroids>(cb, a, out),
            2 if b == 5 => accumulate_simd::<2, 5, Centroids>(cb, a, out),
            3 if b == 5 => accumulate_simd::<3, 5, Centroids>(cb, a, out),
            _ if b == 5 => accumulate_simd::<4, 5, Centroids>(cb, a, out),
            1 => accumulate_simd::<1, 4, Centroids>(cb, a, out),
            2 => accumulate_simd::<2, 4, Centroids>(cb, a, out),
            3 => accumulate_simd::<3, 4, Centroids>(cb, a, out),
            _ => accumulate_simd::<4, 4, Centroids>(cb, a, out),
        }
    }
    true
}

crate::backend::avx512_features!(crate::backend::target_features {
    /// [`accumulate`] compiled with the AVX-512 feature list.
    ///
    /// # Safety
    /// As [`accumulate_rows`], with AVX-512 available and the shape accepted.
    unsafe fn accumulate_simd<const G: usize, const B: usize, L: ChunkLookup>(
        cb: &Codebook,
        a: &crate::codebook::WeightedCodes<'_>,
        out: &mut [f32],
    ) {
        // SAFETY: forwarded from the caller.
        unsafe { accumulate::<G, B, L>(cb, a, out) }
    }
});

/// [`accumulate_rows`] for `G` weight sets, one chunk of 64 coordinates at
/// a time (4 registers of sums a query), the codes looked up by `L`.
///
/// # Safety
/// As [`accumulate_rows`], with AVX-512 F/BW/VBMI available, the shape
/// accepted and `L` taking `B`-bit codes.
#[inline(always)]
unsafe fn accumulate<const G: usize, const B: usize, L: ChunkLookup>(
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
        let lookup = L::of(cb);
        let spread = Spread::new(b);
        let row_len = crate::codebook::pack::packed_len(a.d, b as u8);
        for ch in 0..a.d.div_ceil(64) {
            // A last chunk may hold fewer than 64 coordinates: its lanes past
            // the row's end sum codes the masked load made 0 and are dropped.
            let len = (a.d - 64 * ch).min(64);
            let mask = byte_mask((row_len - ch * chunk_bytes).min(chunk_bytes));
            // The sums in the lookup's order.
            let mut acc = [[_mm512_setzero_ps(); 4]; G];
            for (h, acc) in acc.iter_mut().enumerate() {
                *acc = L::load_sums(&out[h * a.out_stride + 64 * ch..][..len]);
            }
            let mut row = a.rows.as_ptr().add(ch * chunk_bytes);
            for r in 0..a.n {
                if ch == 0 {
                    prefetch_ahead(row, a.stride);
                }
                let (w, ws) = (a.weights, a.w_stride);
                add_codes::<G, B, L>(&lookup, &spread, row, mask, w, ws, r, &mut acc);
                row = row.wrapping_add(a.stride);
            }
            for (h, acc) in acc.iter().enumerate() {
                L::store_sums(acc, &mut out[h * a.out_stride + 64 * ch..][..len]);
            }
        }
    }
}

/// Most weight sets of [`accumulate_fused`]: 8 registers of sums each.
pub(in crate::codebook) const MAX_FUSED_GROUP: usize = 3;

/// [`accumulate_rows`] and [`accumulate_signs`](super::accumulate_signs) in one pass over the rows,
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

/// One row's chunk of codes (`mask` the chunk's bytes) looked up by
/// `lookup` and added into every query's sums, in the lookup's order:
/// query `h`'s with weight `weights[h·w_stride + t]`.
///
/// # Safety
/// AVX-512 F/BW/VBMI are available; the chunk's masked bytes at `row` and
/// the weights are readable; `lookup` takes `B`-bit codes.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn add_codes<const G: usize, const B: usize, L: ChunkLookup>(
    lookup: &L,
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
        let c = lookup.chunk::<B>(spread.codes(data));
        add_weighted::<G>(c, weights, w_stride, t, acc);
    }
}

/// One row's 64 centroids `c` (four registers, in the sums' order) times
/// each query's weight `weights[h·w_stride + t]`, added into its sums.
///
/// # Safety
/// AVX-512F is available; the weights are readable.
#[inline(always)]
unsafe fn add_weighted<const G: usize>(
    c: [__m512; 4],
    weights: &[f32],
    w_stride: usize,
    t: usize,
    acc: &mut [[__m512; 4]; G],
) {
    // SAFETY: the caller's promises.
    unsafe {
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
            let mask = byte_mask((row_len - ch * chunk_bytes).min(chunk_bytes));
            let mut acc = [[_mm512_setzero_ps(); 4]; G];
            for (h, acc) in acc.iter_mut().enumerate() {
                let o = &out[h * out_stride + 64 * ch..][..len];
                *acc = Centroids::load_sums(o);
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
                            add_codes::<G, B, Centroids>(
                                &cents, &spread, row, mask, w, ws, u, &mut acc,
                            );
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
                    Centroids::store_sums(&acc[h], o);
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
                add_codes::<G, B, Centroids>(&cents, &spread, row, mask, w, ws, t, &mut acc);
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
                Centroids::store_sums(&acc[h], o);
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
