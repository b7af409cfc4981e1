//! The AVX-512 value kernels: `accumulate_rows` with each row held in
//! registers (codes looked up in place in their dwords, the accumulators
//! in a permuted order undone once per call), and the codes and signs of
//! prod values summed in one fused pass. Both are written once over
//! [`RowSums`], which adds one row: [`Bytes`] spreads the codes to bytes
//! first (1–4 bits, any length up to 256), [`Nibbles`] looks 4-bit codes
//! up where they lie (rows of 64, 128, 192 and 256).

use super::sign_tables::{self, ROWS, SignTables};
use super::*;

/// The value codes of one row, looked up and added with weight `w` into
/// `acc`, where `acc[4·ch + s]` lane `i` holds coordinate `64·ch + 4·i + s`.
/// Each 64 codes are unpacked in a register (`vpermb` + `vpmultishiftqb`,
/// as in [`unpack64`], without the mask: the table repeats with period
/// 2^bits, so the bits above a code do not change what `vpermps` picks);
/// then `vpermps` looks up the codes in the low byte of every dword, and
/// again after shifting the register right by 8, 16 and 24 bits. So the
/// accumulators are in a permuted order (undone once per call by
/// [`load_permuted`]/[`store_permuted`]), and each 16 codes cost a lookup
/// and at most a shift (which Zen 4 runs beside the shuffles), not a
/// second shuffle to spread them to dwords.
///
/// # Safety
/// AVX-512 F/BW/VBMI are available; `row` has the packed bytes of the
/// codes under `k.load_masks` (chunk `ch`'s from byte `8·b·ch`).
#[inline(always)]
pub(super) unsafe fn add_row<const C: usize>(
    row: *const u8,
    k: &RowConstants<C>,
    wv: __m512,
    acc: &mut [[__m512; 4]; C],
) {
    // SAFETY: the caller's promises; each masked load reads the row's bytes
    // of one chunk only.
    unsafe {
        for (ch, (&mask, a)) in k.load_masks.iter().zip(acc.iter_mut()).enumerate() {
            let data = _mm512_maskz_loadu_epi8(mask, row.wrapping_add(k.chunk_bytes * ch).cast());
            let codes = k.spread.codes(data);
            if ch + 1 == C && k.half_last {
                // At most 32 codes: they sit in lanes 0–7 of the four
                // registers, so 256-bit lookups and FMAs do the work at
                // half the cost (Zen 4 runs a zmm op as two ymm ones). The
                // same lanes, the same operations: the same bits; the
                // upper lanes stay zero, as `load_permuted` left them.
                let codes = _mm512_castsi512_si256(codes);
                let idx = [
                    codes,
                    _mm256_srli_epi32::<8>(codes),
                    _mm256_srli_epi32::<16>(codes),
                    _mm256_srli_epi32::<24>(codes),
                ];
                k.lut.add_low(a, idx, wv);
                continue;
            }
            let idx = [
                codes,
                _mm512_srli_epi32::<8>(codes),
                _mm512_srli_epi32::<16>(codes),
                _mm512_srli_epi32::<24>(codes),
            ];
            k.lut.add(a, idx, wv);
        }
    }
}

/// `out` (at most `64·C` values, zeros past its end) into [`add_row`]'s
/// permuted order.
///
/// # Safety
/// AVX-512F is available.
#[inline(always)]
pub(super) unsafe fn load_permuted<const C: usize>(out: &[f32]) -> [[__m512; 4]; C] {
    // SAFETY: AVX-512F (caller); each masked load reads only the values of
    // `out` below its length.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); 4]; C];
        for (ch, a) in acc.iter_mut().enumerate() {
            let mut x = [_mm512_setzero_ps(); 4];
            for (k, x) in x.iter_mut().enumerate() {
                let from = 64 * ch + 16 * k;
                let lanes = lane_mask(out.len().saturating_sub(from));
                *x = _mm512_maskz_loadu_ps(lanes, out.as_ptr().wrapping_add(from));
            }
            *a = quads_to_lanes(x);
        }
        acc
    }
}

/// 64 values `x` (register `k` lane `m` = value `16k + m`) into
/// [`add_row`]'s order (register `s` lane `i` = value `4i + s`): eight
/// two-source permutes. First each pair of registers (quads `0…7` of
/// values) into the values `s ∈ {0, 1}` and `s ∈ {2, 3}` of its eight
/// quads, then each half of those from the two pairs side by side.
///
/// # Safety
/// AVX-512F is available.
#[inline(always)]
unsafe fn quads_to_lanes(x: [__m512; 4]) -> [__m512; 4] {
    // Lane l of the pair's half p: quad l % 8, value s = 2p + l / 8.
    const PAIR: [[i32; 16]; 2] = [
        [0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29],
        [2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31],
    ];
    // Register 2p + h: lanes 8h… of the first pair's half p, then of the
    // second's.
    const SIDE: [[i32; 16]; 2] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23],
        [8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31],
    ];
    // SAFETY: AVX-512F (caller); the index loads read the constants.
    unsafe {
        let (p0, p1) = (index(&PAIR[0]), index(&PAIR[1]));
        let (s0, s1) = (index(&SIDE[0]), index(&SIDE[1]));
        let a = [
            _mm512_permutex2var_ps(x[0], p0, x[1]),
            _mm512_permutex2var_ps(x[0], p1, x[1]),
        ];
        let b = [
            _mm512_permutex2var_ps(x[2], p0, x[3]),
            _mm512_permutex2var_ps(x[2], p1, x[3]),
        ];
        [
            _mm512_permutex2var_ps(a[0], s0, b[0]),
            _mm512_permutex2var_ps(a[0], s1, b[0]),
            _mm512_permutex2var_ps(a[1], s0, b[1]),
            _mm512_permutex2var_ps(a[1], s1, b[1]),
        ]
    }
}

/// A permute's 16 indices in a register.
///
/// # Safety
/// AVX-512F is available.
#[inline(always)]
unsafe fn index(t: &[i32; 16]) -> __m512i {
    // SAFETY: AVX-512F (caller); the load reads the 16 values of `t`.
    unsafe { _mm512_loadu_si512(t.as_ptr().cast()) }
}

/// [`quads_to_lanes`] undone.
///
/// # Safety
/// AVX-512F is available.
#[inline(always)]
unsafe fn lanes_to_quads(r: [__m512; 4]) -> [__m512; 4] {
    // The first pair's half p: lane 8h + j from register 2p + h lane j;
    // the second pair's: from lane 8 + j.
    const FIRST: [i32; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];
    const SECOND: [i32; 16] = [8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31];
    // Quad q of a pair (q < 4, then q + 4 in its second register), value
    // s = 2p + e: lane 16p + 8e + q of the two halves side by side.
    const QUADS: [[i32; 16]; 2] = [
        [0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27],
        [4, 12, 20, 28, 5, 13, 21, 29, 6, 14, 22, 30, 7, 15, 23, 31],
    ];
    // SAFETY: AVX-512F (caller); the index loads read the constants.
    unsafe {
        let (f, s) = (index(&FIRST), index(&SECOND));
        let (q0, q1) = (index(&QUADS[0]), index(&QUADS[1]));
        let a = [
            _mm512_permutex2var_ps(r[0], f, r[1]),
            _mm512_permutex2var_ps(r[2], f, r[3]),
        ];
        let b = [
            _mm512_permutex2var_ps(r[0], s, r[1]),
            _mm512_permutex2var_ps(r[2], s, r[3]),
        ];
        [
            _mm512_permutex2var_ps(a[0], q0, a[1]),
            _mm512_permutex2var_ps(a[0], q1, a[1]),
            _mm512_permutex2var_ps(b[0], q0, b[1]),
            _mm512_permutex2var_ps(b[0], q1, b[1]),
        ]
    }
}

/// [`load_permuted`] undone: the accumulators back into `out` (at most
/// `64·C` values; lanes past its end are dropped).
///
/// # Safety
/// AVX-512F is available.
#[inline(always)]
pub(super) unsafe fn store_permuted<const C: usize>(acc: &[[__m512; 4]; C], out: &mut [f32]) {
    // SAFETY: AVX-512F (caller); each masked store writes only the values
    // of `out` below its length.
    unsafe {
        for (ch, a) in acc.iter().enumerate() {
            for (k, x) in lanes_to_quads(*a).iter().enumerate() {
                let from = 64 * ch + 16 * k;
                let lanes = lane_mask(out.len().saturating_sub(from));
                _mm512_mask_storeu_ps(out.as_mut_ptr().wrapping_add(from), lanes, *x);
            }
        }
    }
}

/// `out` (at most `16·S·C` values, zeros past its end) into `C` chunks of
/// `S` registers where lane `i` of register `s` of chunk `ch` holds
/// coordinate `16·S·ch + S·i + s`: the order in which codes come out of
/// their bytes when every dword is looked up in place and then shifted.
///
/// # Safety
/// AVX-512F is available.
#[inline(always)]
unsafe fn load_lanes<const C: usize, const S: usize>(out: &[f32]) -> [[__m512; S]; C] {
    let mut buf = [0.0f32; 128];
    let buf = &mut buf[..16 * S];
    // SAFETY: AVX-512F (caller); the loads read the local buffer.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); S]; C];
        for (ch, a) in acc.iter_mut().enumerate() {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = out
                    .get(16 * S * ch + S * (i % 16) + i / 16)
                    .copied()
                    .unwrap_or(0.0);
            }
            for (s, r) in a.iter_mut().enumerate() {
                *r = _mm512_loadu_ps(buf.as_ptr().add(16 * s));
            }
        }
        acc
    }
}

/// [`load_lanes`] undone: the accumulators back into `out` (lanes past its
/// end are dropped).
///
/// # Safety
/// AVX-512F is available.
#[inline(always)]
unsafe fn store_lanes<const C: usize, const S: usize>(acc: &[[__m512; S]; C], out: &mut [f32]) {
    let mut buf = [0.0f32; 128];
    let buf = &mut buf[..16 * S];
    for (ch, a) in acc.iter().enumerate() {
        for (s, r) in a.iter().enumerate() {
            // SAFETY: AVX-512F (caller); the store writes the local buffer.
            unsafe { _mm512_storeu_ps(buf.as_mut_ptr().add(16 * s), *r) };
        }
        for (i, b) in buf.iter().enumerate() {
            if let Some(o) = out.get_mut(16 * S * ch + S * (i % 16) + i / 16) {
                *o = *b;
            }
        }
    }
}

/// The value codes of one row of 4-bit codes, looked up and added with
/// weight `wv` into `acc` ([`load_lanes`] order, 8 registers a chunk of
/// 128): each 128 codes are one 64-byte load, and a dword's eight codes are
/// looked up where they lie, the dword shifted right by 4 bits between
/// lookups (`vpermps` reads the low 4 bits of a lane). With `HALF`, the
/// last chunk holds 64 codes: one 32-byte load and 256-bit operations on
/// the low 8 lanes (Zen 4 runs a zmm operation as two ymm ones; the upper
/// lanes stay zero, as [`load_lanes`] left them). No byte shuffles:
/// [`add_row`]'s `vpermb` and `vpmultishiftqb` spread 64 codes to bytes
/// first, two shuffles more per 64 codes on the pipes the lookups use.
///
/// # Safety
/// AVX-512 F/VL are available; `row` has the row's `64·C` (`64·C − 32`
/// with `HALF`) readable bytes.
#[inline(always)]
unsafe fn add_row_nibbles<const C: usize, const HALF: bool>(
    row: *const u8,
    lut: &Table16,
    wv: __m512,
    acc: &mut [[__m512; 8]; C],
) {
    // SAFETY: the caller's promises; each load reads bytes of the row.
    unsafe {
        for (ch, a) in acc.iter_mut().enumerate() {
            let at = row.add(64 * ch);
            if HALF && ch + 1 == C {
                let data = _mm256_loadu_si256(at.cast());
                let idx = [
                    data,
                    _mm256_srli_epi32::<4>(data),
                    _mm256_srli_epi32::<8>(data),
                    _mm256_srli_epi32::<12>(data),
                    _mm256_srli_epi32::<16>(data),
                    _mm256_srli_epi32::<20>(data),
                    _mm256_srli_epi32::<24>(data),
                    _mm256_srli_epi32::<28>(data),
                ];
                lut.add_low(a, idx, wv);
                continue;
            }
            let data = _mm512_loadu_si512(at.cast());
            let idx = [
                data,
                _mm512_srli_epi32::<4>(data),
                _mm512_srli_epi32::<8>(data),
                _mm512_srli_epi32::<12>(data),
                _mm512_srli_epi32::<16>(data),
                _mm512_srli_epi32::<20>(data),
                _mm512_srli_epi32::<24>(data),
                _mm512_srli_epi32::<28>(data),
            ];
            lut.add(a, idx, wv);
        }
    }
}

/// A table of 16 centroids for `vpermps` lookups: in one register, and in
/// two halves for the 256-bit lookups of a half-filled chunk.
pub(super) struct Table16 {
    all: __m512,
    low: __m256,
    high: __m256,
}

impl Table16 {
    /// The centroids of `cb` (at most 16) repeated with period `2^b` over
    /// 16 entries: `vpermps` reads a lane's low 4 bits, so the bits above a
    /// code then pick the same entry and need no mask.
    ///
    /// # Safety
    /// AVX-512F is available.
    #[inline(always)]
    unsafe fn of(cb: &crate::codebook::Codebook) -> Table16 {
        let c = cb.centroids();
        let mut table = [0.0f32; 16];
        for (v, t) in table.iter_mut().enumerate() {
            *t = c[v & (c.len() - 1)];
        }
        // SAFETY: AVX-512F (caller); the loads read the local table.
        unsafe {
            Table16 {
                all: _mm512_loadu_ps(table.as_ptr()),
                low: _mm256_loadu_ps(table.as_ptr()),
                high: _mm256_loadu_ps(table.as_ptr().add(8)),
            }
        }
    }

    /// `sums[s] += t[idx[s]]·w` in every lane (the low 4 bits of a lane
    /// pick), one FMA a register.
    ///
    /// # Safety
    /// AVX-512F is available.
    #[inline(always)]
    unsafe fn add<const S: usize>(&self, sums: &mut [__m512; S], idx: [__m512i; S], w: __m512) {
        // SAFETY: AVX-512F (caller); registers only.
        unsafe {
            for (s, i) in sums.iter_mut().zip(idx) {
                *s = _mm512_fmadd_ps(_mm512_permutexvar_ps(i, self.all), w, *s);
            }
        }
    }

    /// [`add`](Self::add) on the low 8 lanes only, with 256-bit operations
    /// (Zen 4 runs a zmm operation as two ymm ones): the same operations on
    /// those lanes, so the same bits; the upper lanes become zero.
    ///
    /// # Safety
    /// AVX-512 F/VL are available.
    #[inline(always)]
    unsafe fn add_low<const S: usize>(&self, sums: &mut [__m512; S], idx: [__m256i; S], w: __m512) {
        // SAFETY: AVX-512 F/VL (caller); registers only.
        unsafe {
            let w = _mm512_castps512_ps256(w);
            for (s, i) in sums.iter_mut().zip(idx) {
                let c = _mm256_permutex2var_ps(self.low, i, self.high);
                let sum = _mm256_fmadd_ps(c, w, _mm512_castps512_ps256(*s));
                *s = _mm512_zextps256_ps512(sum);
            }
        }
    }
}

/// How rows of `d` codes of `cb` take [`add_row_nibbles`], if they do: 4
/// bits and `d` = 64, 128, 192 or 256 (whole dwords of whole chunks of 128
/// codes, and at most one of 64); `(C, HALF)`.
fn nibble_rows(cb: &crate::codebook::Codebook, d: usize) -> Option<(usize, bool)> {
    (cb.bits() == 4 && d.is_multiple_of(64) && (64..=256).contains(&d))
        .then_some((d.div_ceil(128), d % 128 == 64))
}

/// The per-call constants of [`add_row`] for `b`-bit codes.
pub(super) struct RowConstants<const C: usize> {
    /// The bytes of each chunk of 64 codes in a row (fewer in a last,
    /// partial chunk).
    load_masks: [u64; C],
    /// Bytes from one chunk to the next (`8·b`).
    chunk_bytes: usize,
    /// The centroids, repeated with period 2^b.
    lut: Table16,
    /// The last chunk holds at most 32 codes.
    half_last: bool,
    /// Each chunk's codes to bytes.
    spread: Spread,
}

/// [`RowConstants`] of `cb` for rows of `d ∈ 64·(C−1)+1 ..= 64·C` codes.
///
/// # Safety
/// AVX-512F is available; `cb.bits() ∈ 1..=4`.
#[inline(always)]
pub(super) unsafe fn row_constants<const C: usize>(
    cb: &crate::codebook::Codebook,
    d: usize,
) -> RowConstants<C> {
    let b = cb.bits() as usize;
    // Chunk `ch` of 64 codes starts 8·b·ch bytes into the row.
    let row_len = crate::codebook::pack::packed_len(d, b as u8);
    let mut load_masks = [0u64; C];
    for (ch, m) in load_masks.iter_mut().enumerate() {
        *m = byte_mask(row_len.saturating_sub(8 * b * ch).min(8 * b));
    }
    // SAFETY: AVX-512F (caller).
    unsafe {
        RowConstants {
            load_masks,
            chunk_bytes: 8 * b,
            lut: Table16::of(cb),
            half_last: (1..=32).contains(&(d - 64 * (C - 1))),
            spread: Spread::new(b),
        }
    }
}

/// One row's weighted value codes added into registers of sums: the
/// per-call constants and the sums, in the adder's order of coordinates.
/// The value kernels are written once over it.
pub(super) trait RowSums: Sized {
    /// The adder for `cb`'s rows of `d` codes, its sums loaded from `out`
    /// (`d` values).
    ///
    /// # Safety
    /// AVX-512 F/BW/VBMI are available; the shape is the adder's.
    unsafe fn new(cb: &crate::codebook::Codebook, d: usize, out: &[f32]) -> Self;

    /// Adds the codes of the row at `row` times `wv` (one FMA per 16 codes).
    ///
    /// # Safety
    /// As [`new`](Self::new); the row's packed bytes are readable at `row`.
    unsafe fn add(&mut self, row: *const u8, wv: __m512);

    /// The sums back into `out`.
    ///
    /// # Safety
    /// As [`new`](Self::new).
    unsafe fn store(&self, out: &mut [f32]);
}

/// [`add_row`]: rows of `64·(C−1) < d ≤ 64·C` codes of 1–4 bits, spread to
/// bytes.
pub(super) struct Bytes<const C: usize> {
    k: RowConstants<C>,
    sums: [[__m512; 4]; C],
}

impl<const C: usize> RowSums for Bytes<C> {
    #[inline(always)]
    unsafe fn new(cb: &crate::codebook::Codebook, d: usize, out: &[f32]) -> Self {
        // SAFETY: forwarded.
        unsafe {
            Bytes {
                k: row_constants::<C>(cb, d),
                sums: load_permuted::<C>(out),
            }
        }
    }

    #[inline(always)]
    unsafe fn add(&mut self, row: *const u8, wv: __m512) {
        // SAFETY: forwarded.
        unsafe { add_row::<C>(row, &self.k, wv, &mut self.sums) }
    }

    #[inline(always)]
    unsafe fn store(&self, out: &mut [f32]) {
        // SAFETY: forwarded.
        unsafe { store_permuted::<C>(&self.sums, out) }
    }
}

/// [`add_row_nibbles`]: rows of `128·C` codes of 4 bits (`128·C − 64`
/// with `HALF`), looked up in place.
pub(super) struct Nibbles<const C: usize, const HALF: bool> {
    lut: Table16,
    sums: [[__m512; 8]; C],
}

impl<const C: usize, const HALF: bool> RowSums for Nibbles<C, HALF> {
    #[inline(always)]
    unsafe fn new(cb: &crate::codebook::Codebook, d: usize, out: &[f32]) -> Self {
        debug_assert!(cb.bits() == 4 && d == 128 * C - if HALF { 64 } else { 0 });
        // SAFETY: forwarded; a 4-bit codebook has 16 centroids.
        unsafe {
            Nibbles {
                lut: Table16::of(cb),
                sums: load_lanes::<C, 8>(&out[..d]),
            }
        }
    }

    #[inline(always)]
    unsafe fn add(&mut self, row: *const u8, wv: __m512) {
        // SAFETY: forwarded; a row of d codes has d/2 bytes.
        unsafe { add_row_nibbles::<C, HALF>(row, &self.lut, wv, &mut self.sums) }
    }

    #[inline(always)]
    unsafe fn store(&self, out: &mut [f32]) {
        // SAFETY: forwarded.
        unsafe { store_lanes::<C, 8>(&self.sums, out) }
    }
}

/// The mask of a row's `len ≤ 64` bytes.
pub(super) fn byte_mask(len: usize) -> u64 {
    if len >= 64 {
        u64::MAX
    } else {
        (1u64 << len) - 1
    }
}

/// [`accumulate_rows`](super::simd::accumulate_rows) for rows of 1 to 256
/// coordinates at 1–4 bits, with no trip through memory ([`RowSums`]): one
/// FMA per 16 codes and row, in row order, as the generic kernel (a last,
/// partial chunk of 64 codes computes lanes past the row's end and drops
/// them). Returns false (touching nothing) for other shapes.
///
/// # Safety
/// AVX-512 F/BW/VBMI are available; the arguments are validated as by
/// `accumulate_rows_on` (each weight's row of packed bytes fits in `rows`).
#[inline(always)]
pub(super) unsafe fn accumulate_whole(
    cb: &crate::codebook::Codebook,
    rows: &[u8],
    stride: usize,
    weights: &[f32],
    out: &mut [f32],
) -> bool {
    let b = cb.bits() as usize;
    let d = out.len();
    // Up to 4 chunks of 64 codes (16 registers of sums).
    if b > 4 || d == 0 || d > 256 {
        return false;
    }
    // SAFETY: forwarded; d ≤ 64·C with C ≤ 4, or d = 128·C for the
    // nibbles.
    unsafe {
        match (nibble_rows(cb, d), d.div_ceil(64)) {
            (Some((1, true)), _) => chunks_simd::<Nibbles<1, true>>(cb, rows, stride, weights, out),
            (Some((1, false)), _) => {
                chunks_simd::<Nibbles<1, false>>(cb, rows, stride, weights, out)
            }
            (Some((_, true)), _) => chunks_simd::<Nibbles<2, true>>(cb, rows, stride, weights, out),
            (Some(_), _) => chunks_simd::<Nibbles<2, false>>(cb, rows, stride, weights, out),
            (None, 1) => chunks_simd::<Bytes<1>>(cb, rows, stride, weights, out),
            (None, 2) => chunks_simd::<Bytes<2>>(cb, rows, stride, weights, out),
            (None, 3) => chunks_simd::<Bytes<3>>(cb, rows, stride, weights, out),
            (None, _) => chunks_simd::<Bytes<4>>(cb, rows, stride, weights, out),
        }
    }
    true
}

/// [`accumulate_whole`] with the adder `R` (whose shape `out.len()` is).
///
/// # Safety
/// As [`accumulate_whole`], with `out.len()` in `R`'s shape.
#[inline(always)]
pub(super) unsafe fn accumulate_chunks<R: RowSums>(
    cb: &crate::codebook::Codebook,
    rows: &[u8],
    stride: usize,
    weights: &[f32],
    out: &mut [f32],
) {
    // SAFETY: forwarded; every row read lies in the validated rows.
    unsafe {
        let mut sums = R::new(cb, out.len(), out);
        let mut row = rows.as_ptr();
        for &w in weights {
            crate::backend::prefetch_ahead(row, stride);
            sums.add(row, _mm512_set1_ps(w));
            row = row.wrapping_add(stride);
        }
        sums.store(out);
    }
}

crate::backend::avx512_features!(crate::backend::target_features {
    /// [`accumulate_chunks`] compiled with the AVX-512 feature list, a
    /// function of its own for each adder (never inlined, so that no one
    /// function holds every unrolled copy: the instrumented fuzz build's
    /// coverage tables cost the square of a function's blocks).
    ///
    /// # Safety
    /// As [`accumulate_chunks`].
    #[inline(never)]
    unsafe fn chunks_simd<R: RowSums>(
        cb: &crate::codebook::Codebook,
        rows: &[u8],
        stride: usize,
        weights: &[f32],
        out: &mut [f32],
    ) {
        // SAFETY: forwarded from the caller.
        unsafe { accumulate_chunks::<R>(cb, rows, stride, weights, out) }
    }
});

/// [`crate::codebook::accumulate::accumulate_rows_and_signs_in`] on AVX-512: both sums in one
/// pass over the tokens. The value codes' lookups are shuffle-bound, the
/// sign sums add- and mask-bound, so in one loop the second runs in the
/// shadow of the first (measured on Zen 4: 20 shuffles, 8 FMAs, 8 mask
/// loads and 9 adds take the 20 cycles of the shuffles alone). Signs back
/// to back (the cache's layout) go eight rows at a time through nibble
/// tables ([`sign_tables`]), after those rows' codes. Each part does
/// exactly the operations of its own kernel, in the same order
/// ([`accumulate_whole`] and the AVX-512 `accumulate_signs_rows`), so the
/// results are theirs bit for bit. Returns `false`, touching nothing, when
/// `backend` is not AVX-512, for shapes other than `d = m`, a multiple of
/// 16 from 16 to 256, at 1–4 bits (the sign kernel takes a tail of 8 signs
/// another way), and for sign weights that are not finite or sum to 1e37
/// or more.
pub(in crate::codebook) fn accumulate_rows_and_signs(
    backend: crate::backend::Checked,
    cb: &crate::codebook::Codebook,
    rows: &crate::codebook::SignedRows<'_>,
    out: &mut [f32],
    acc: &mut [f32],
) -> bool {
    // The sign sums as the AVX-512 sign kernel does them (2·Σset − Σw) only
    // for weights where that cannot overflow or meet ∞ − ∞.
    if backend.backend() != crate::Backend::Avx512
        || !crate::qjl::weights_bounded(rows.sign_weights)
    {
        return false;
    }
    // SAFETY: `Checked` proves the AVX-512 feature list is available; the
    // caller validated both sets of rows for as many tokens as weights; the
    // shapes match the instantiations.
    unsafe {
        let (d, m) = (out.len(), acc.len());
        if !(1..=4).contains(&cb.bits())
            || d != m
            || !m.is_multiple_of(16)
            || !(16..=256).contains(&d)
        {
            return false;
        }
        if cb.bits() == 1
            && sign_tables::takes(d, rows.code_stride)
            && sign_tables::takes(m, rows.sign_stride)
            && crate::qjl::weights_bounded(rows.weights)
        {
            // 1-bit codes back to back are sign sums of `w·c[1]`: the
            // codes' kernel then is the sign tables', as is the signs'.
            sign_tables::accumulate_simd(rows.codes, rows.weights, cb.centroids()[1], out);
            sign_tables::accumulate_simd(rows.signs, rows.sign_weights, 1.0, acc);
            return true;
        }
        // One instance per number of sign registers (the row's chunks
        // follow): every loop over them has a constant trip count, so the
        // sums stay in registers (with a run-time count, the compiler kept
        // d = 192's twelve on the stack).
        match (nibble_rows(cb, d), m / 16) {
            (Some((1, true)), _) => fused_simd::<Nibbles<1, true>, 4, 1>(cb, rows, out, acc),
            (Some((1, false)), _) => fused_simd::<Nibbles<1, false>, 8, 2>(cb, rows, out, acc),
            (Some((_, true)), _) => fused_simd::<Nibbles<2, true>, 12, 3>(cb, rows, out, acc),
            (Some(_), _) => fused_simd::<Nibbles<2, false>, 16, 4>(cb, rows, out, acc),
            (None, 1) => fused_simd::<Bytes<1>, 1, 1>(cb, rows, out, acc),
            (None, 2) => fused_simd::<Bytes<1>, 2, 1>(cb, rows, out, acc),
            (None, 3) => fused_simd::<Bytes<1>, 3, 1>(cb, rows, out, acc),
            (None, 4) => fused_simd::<Bytes<1>, 4, 1>(cb, rows, out, acc),
            (None, 5) => fused_simd::<Bytes<2>, 5, 2>(cb, rows, out, acc),
            (None, 6) => fused_simd::<Bytes<2>, 6, 2>(cb, rows, out, acc),
            (None, 7) => fused_simd::<Bytes<2>, 7, 2>(cb, rows, out, acc),
            (None, 8) => fused_simd::<Bytes<2>, 8, 2>(cb, rows, out, acc),
            (None, 9) => fused_simd::<Bytes<3>, 9, 3>(cb, rows, out, acc),
            (None, 10) => fused_simd::<Bytes<3>, 10, 3>(cb, rows, out, acc),
            (None, 11) => fused_simd::<Bytes<3>, 11, 3>(cb, rows, out, acc),
            (None, 12) => fused_simd::<Bytes<3>, 12, 3>(cb, rows, out, acc),
            (None, 13) => fused_simd::<Bytes<4>, 13, 4>(cb, rows, out, acc),
            (None, 14) => fused_simd::<Bytes<4>, 14, 4>(cb, rows, out, acc),
            (None, 15) => fused_simd::<Bytes<4>, 15, 4>(cb, rows, out, acc),
            (None, _) => fused_simd::<Bytes<4>, 16, 4>(cb, rows, out, acc),
        }
    }
    true
}

/// [`accumulate_rows_and_signs`] for `d = m = 16·N` coordinates and signs
/// (`C = ⌈N/4⌉` chunks of 64 signs), the codes added by `R` (whose shape
/// `16·N` is; inlined into [`fused_simd`], which carries the target
/// features).
///
/// # Safety
/// AVX-512 F/BW/VBMI and GFNI are available; `out.len() == acc.len() == 16·N`;
/// row `t` of the codes (and of the signs) fits in `rows.codes`
/// (`rows.signs`) for every `t < rows.weights.len() ==
/// rows.sign_weights.len()`.
#[inline(always)]
pub(super) unsafe fn fused<R: RowSums, const N: usize, const C: usize>(
    cb: &crate::codebook::Codebook,
    rows: &crate::codebook::SignedRows<'_>,
    out: &mut [f32],
    acc: &mut [f32],
) {
    // SAFETY: the ISA is the caller's promise. Loads: out, acc, each
    // token's code row (masked, [`add_row`], or whole) and its 2·N sign
    // bytes, all inside the validated rows. Stores: out, acc.
    unsafe {
        // The dimension as a constant: whether the last chunk takes the
        // 256-bit path is then known at compile time, and its tables are
        // not held in registers when it does not.
        let mut sums = R::new(cb, 16 * N, out);
        if sign_tables::takes(16 * N, rows.sign_stride) {
            // Signs back to back (as the cache keeps them): eight rows'
            // signs at a time after their eight rows of codes.
            let mut signs = SignTables::<C>::new(acc);
            // Whole blocks with the row count a constant (unrolled,
            // constant masks), then the rest.
            macro_rules! block {
                ($t:expr, $rows:expr) => {
                    let mut row = rows.codes.as_ptr().wrapping_add($t * rows.code_stride);
                    for &w in rows.weights.get_unchecked($t..$t + $rows) {
                        sums.add(row, _mm512_set1_ps(w));
                        row = row.wrapping_add(rows.code_stride);
                    }
                    let r = rows.sign_weights.get_unchecked($t..$t + $rows);
                    let sg = rows.signs.as_ptr().wrapping_add($t * rows.sign_stride);
                    signs.add(sg, $rows, &sign_tables::block_weights(r, 1.0));
                };
            }
            let n = rows.weights.len();
            let whole = n - n % ROWS;
            for t in (0..whole).step_by(ROWS) {
                block!(t, ROWS);
            }
            if whole < n {
                block!(whole, n - whole);
            }
            sums.store(out);
            signs.store(acc);
            return;
        }
        let mut set = [_mm512_setzero_ps(); N];
        let mut total = _mm512_setzero_ps();
        let (mut row, mut sg) = (rows.codes.as_ptr(), rows.signs.as_ptr());
        for (&w, &r) in rows.weights.iter().zip(rows.sign_weights) {
            sums.add(row, _mm512_set1_ps(w));
            let rv = _mm512_set1_ps(r);
            total = _mm512_add_ps(total, rv);
            for (k, s) in set.iter_mut().enumerate() {
                let bits = core::ptr::read_unaligned(sg.add(2 * k).cast::<u16>());
                *s = _mm512_mask_add_ps(*s, bits, *s, rv);
            }
            row = row.wrapping_add(rows.code_stride);
            sg = sg.wrapping_add(rows.sign_stride);
        }
        sums.store(out);
        for (k, s) in set.iter().enumerate() {
            let at = acc.as_mut_ptr().add(16 * k);
            let sum = _mm512_sub_ps(_mm512_add_ps(*s, *s), total);
            _mm512_storeu_ps(at, _mm512_add_ps(_mm512_loadu_ps(at), sum));
        }
    }
}

crate::backend::avx512_features!(crate::backend::target_features {
    /// [`fused`] compiled with the AVX-512 feature list.
    ///
    /// # Safety
    /// As [`fused`].
    unsafe fn fused_simd<R: RowSums, const N: usize, const C: usize>(
        cb: &crate::codebook::Codebook,
        rows: &crate::codebook::SignedRows<'_>,
        out: &mut [f32],
        acc: &mut [f32],
    ) {
        // SAFETY: forwarded from the caller.
        unsafe { fused::<R, N, C>(cb, rows, out, acc) }
    }
});

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    crate::backend::avx512_features!(crate::backend::target_features {
        /// `load_permuted` of `values` (two chunks) into `lanes`, then
        /// `store_permuted` of the same registers into `out`.
        ///
        /// # Safety
        /// AVX-512 is available.
        unsafe fn round_trip(values: &[f32], lanes: &mut [[[f32; 16]; 4]; 2], out: &mut [f32]) {
            // SAFETY: AVX-512 (this function's features); the stores write
            // the 16 values of each of `lanes`' arrays.
            unsafe {
                let regs = load_permuted::<2>(values);
                for (regs, lanes) in regs.iter().zip(lanes.iter_mut()) {
                    for (r, lane) in regs.iter().zip(lanes.iter_mut()) {
                        _mm512_storeu_ps(lane.as_mut_ptr(), *r);
                    }
                }
                store_permuted::<2>(&regs, out);
            }
        }
    });

    /// `load_permuted` puts value `64·ch + 4i + s` in lane `i` of register
    /// `s` of chunk `ch` (zero past the slice's end), and `store_permuted`
    /// writes every value back where it came from and nothing past the
    /// end: every length from 0 to two chunks.
    #[test]
    fn permuted_order_round_trips() {
        if crate::Backend::Avx512.check().is_err() {
            return;
        }
        for len in 0..=128usize {
            let values: Vec<f32> = (0..len).map(|v| v as f32 + 0.5).collect();
            let mut lanes = [[[0.0f32; 16]; 4]; 2];
            // Back into a longer buffer: the values, then the canary.
            let mut out = vec![-1.0f32; 130];
            // SAFETY: AVX-512 is available (checked above).
            unsafe { round_trip(&values, &mut lanes, &mut out[..len]) };
            for (ch, lanes) in lanes.iter().enumerate() {
                for (s, lane) in lanes.iter().enumerate() {
                    for (i, &x) in lane.iter().enumerate() {
                        let at = 64 * ch + 4 * i + s;
                        let want = values.get(at).copied().unwrap_or(0.0);
                        assert_eq!(x, want, "len {len}, value {at}");
                    }
                }
            }
            assert_eq!(&out[..len], &values[..], "len {len}");
            assert!(
                out[len..].iter().all(|&x| x == -1.0),
                "len {len}: past the end"
            );
        }
    }
}
