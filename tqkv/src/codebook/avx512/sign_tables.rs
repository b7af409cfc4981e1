//! QJL sign sums eight rows at a time: `acc[j] += Σ_t ±r_t` (plus where
//! row `t`'s sign bit `j` is set, minus where it is clear) for rows of
//! `m = 16·N` signs stored back to back (`m/8` bytes apart, as the cache
//! keeps them).
//!
//! A row at a time, every 16 signs cost a mask register moved in from a
//! general register and a masked add; the moves run one a cycle on the
//! pipes the value lookups need (`tools/pipe_groups.c`). Eight rows at a
//! time, the eight rows' bytes are transposed in registers (a byte permute
//! puts the eight rows' bytes of 8 coordinates in one qword, and
//! `gf2p8affineqb` transposes each qword's 8×8 bit matrix), so that byte
//! `j` holds coordinate `j`'s eight signs, one bit a row. Its low nibble
//! (rows 0–3) picks one of the 16 sums `±r_0 ± r_1 ± r_2 ± r_3` by
//! `vpermps`, its high nibble one of `±r_4 ± … ± r_7`. A second byte
//! permute orders each chunk's transposed bytes so that the lookups'
//! lanes come out in coordinate order (register `s` of chunk `ch` holds
//! coordinates `64·ch + 16·s ..`): the sums load and store as they lie.
//! 128 signs of eight rows cost four byte permutes, two `gf2p8affineqb`,
//! 14 shifts, 16 lookups, 16 adds and the two tables (8 FMAs), against 64
//! mask moves and 64 masked adds.

use core::arch::x86_64::*;

use super::values::byte_mask;
// The `vpermps` tables' signs: entry `v` of register `k` is `+1` where bit
// `k` of `v` is set, `−1` where it is clear (the key row blocks' table,
// whose nibbles pick four coordinates' signs, where ours pick four rows').
use crate::qjl::NIBBLE_SIGNS as PLUS_MINUS;

/// Rows added per step.
pub(super) const ROWS: usize = 8;

/// Whether rows of `m` signs, `stride` bytes apart, take [`SignTables`]:
/// back to back, `m` a multiple of 16 from 16 to 256.
pub(crate) fn takes(m: usize, stride: usize) -> bool {
    m.is_multiple_of(16) && (16..=256).contains(&m) && stride == m / 8
}

/// Sign sums of `C` chunks of 64 signs (`m ≤ 64·C`) in registers; see the
/// module docs.
pub(super) struct SignTables<const C: usize> {
    sums: [[__m512; 4]; C],
    permute: [__m512i; C],
    /// Sign bytes a row (`m/8`).
    bytes: usize,
}

/// Byte `i` of every qword is `1 << i`: as the vector operand of
/// `gf2p8affineqb`, bit `b` of output byte `i` is bit `i` of the matrix
/// qword's byte `7 − b`, i.e. the qword's 8×8 bit matrix transposed.
const TRANSPOSE: i64 = 0x8040_2010_0804_0201_u64 as i64;

/// Byte `4·i + s` takes byte `16·s + i`.
const IN_ORDER: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut e = 0;
    while e < 64 {
        t[e] = (16 * (e % 4) + e / 4) as u8;
        e += 1;
    }
    t
};

/// The bytes of a qword that come from rows 4–7 (`k < 4`, row `7 − k`).
const HIGH_ROWS: u64 = 0x0F0F_0F0F_0F0F_0F0F;

/// Whether rows of `bytes` sign bytes take two registers a window of four
/// rows (more than 16 bytes a row).
#[inline(always)]
fn wide(bytes: usize) -> bool {
    bytes > 16
}

/// Chunk `ch`'s byte permute for rows of `bytes ≤ 32` sign bytes: byte
/// `8·p + k` of the result is byte `8·ch + p` of row `7 − k`, read from the
/// two windows of four rows that [`Block::load`] fills.
///
/// # Safety
/// AVX-512F is available.
#[inline(always)]
pub(super) unsafe fn permute(bytes: usize, ch: usize) -> __m512i {
    let mut p = [0u8; 64];
    for (at, b) in p.iter_mut().enumerate() {
        let (q, k) = (at / 8, at % 8);
        let row = 7 - k;
        // Within the row's window; past the row's bytes (a last chunk's
        // unused coordinates) any byte will do: those lanes are dropped.
        let from = ((row % 4) * bytes + 8 * ch + q) % 128;
        // Windows of at most 64 bytes take one permute over both (the
        // second's bytes from 64); longer ones one permute each, indexed
        // alike, and a blend.
        *b = if wide(bytes) {
            from as u8
        } else {
            (from % 64 + 64 * (row / 4)) as u8
        };
    }
    // SAFETY: AVX-512F (caller); the load reads the local array.
    unsafe { _mm512_loadu_si512(p.as_ptr().cast()) }
}

/// The sign bytes of up to eight rows back to back, as two windows of
/// four rows (zeros past the rows).
pub(super) struct Block {
    first: [__m512i; 2],
    second: [__m512i; 2],
    wide: bool,
}

impl Block {
    /// `rows ≤ 8` rows of `bytes ≤ 32` sign bytes at `signs`.
    ///
    /// # Safety
    /// AVX-512 F/BW are available; `rows·bytes` bytes at `signs` are
    /// readable.
    #[inline(always)]
    pub(super) unsafe fn load(signs: *const u8, rows: usize, bytes: usize) -> Block {
        // SAFETY: the caller's promises; every load is masked to the bytes
        // of the `rows` rows (the second window's address is not
        // dereferenced past them: its mask is then empty).
        unsafe {
            Block {
                first: load_window(signs, rows.min(4) * bytes),
                second: load_window(
                    signs.wrapping_add(4 * bytes),
                    rows.saturating_sub(4) * bytes,
                ),
                wide: wide(bytes),
            }
        }
    }

    /// The chunk that `permute` (from [`permute`]) picks, transposed: byte
    /// `4·i + s` holds the signs of its coordinate `16·s + i`, bit `k` row
    /// `k`'s.
    ///
    /// # Safety
    /// AVX-512 F/BW/VBMI and GFNI are available.
    #[inline(always)]
    pub(super) unsafe fn bits(&self, permute: __m512i) -> __m512i {
        // SAFETY: registers only, on the caller's ISA.
        unsafe {
            let bytes = if self.wide {
                let a = _mm512_permutex2var_epi8(self.first[0], permute, self.first[1]);
                let b = _mm512_permutex2var_epi8(self.second[0], permute, self.second[1]);
                _mm512_mask_blend_epi8(HIGH_ROWS, a, b)
            } else {
                _mm512_permutex2var_epi8(self.first[0], permute, self.second[0])
            };
            let bits = _mm512_gf2p8affine_epi64_epi8::<0>(_mm512_set1_epi64(TRANSPOSE), bytes);
            // Byte `4·i + s` from coordinate `16·s + i`: the lookups of
            // byte `s` of every dword then fill register `s` in order.
            _mm512_permutexvar_epi8(_mm512_loadu_si512(IN_ORDER.as_ptr().cast()), bits)
        }
    }
}

/// The two tables of eight rows' weights `w` (zeros past the rows): the
/// 16 sums `±w[0] ± … ± w[3]`, and those of `w[4..8]`; entry `v` takes
/// `+w[k]` where bit `k` of `v` is set. Summed in the order of `k`, one
/// rounding a step (the products by ±1 are exact).
///
/// # Safety
/// AVX-512F is available.
#[inline(always)]
pub(super) unsafe fn tables(w: &[f32; ROWS]) -> [__m512; 2] {
    // SAFETY: AVX-512F (caller); the loads read the constant tables.
    unsafe {
        // The closure only indexes (no intrinsic in it: it would not
        // inherit the target features).
        let pm = |k: usize| PLUS_MINUS[k].as_ptr();
        let low = _mm512_mul_ps(_mm512_set1_ps(w[0]), _mm512_loadu_ps(pm(0)));
        let low = _mm512_fmadd_ps(_mm512_set1_ps(w[1]), _mm512_loadu_ps(pm(1)), low);
        let low = _mm512_fmadd_ps(_mm512_set1_ps(w[2]), _mm512_loadu_ps(pm(2)), low);
        let low = _mm512_fmadd_ps(_mm512_set1_ps(w[3]), _mm512_loadu_ps(pm(3)), low);
        let high = _mm512_mul_ps(_mm512_set1_ps(w[4]), _mm512_loadu_ps(pm(0)));
        let high = _mm512_fmadd_ps(_mm512_set1_ps(w[5]), _mm512_loadu_ps(pm(1)), high);
        let high = _mm512_fmadd_ps(_mm512_set1_ps(w[6]), _mm512_loadu_ps(pm(2)), high);
        let high = _mm512_fmadd_ps(_mm512_set1_ps(w[7]), _mm512_loadu_ps(pm(3)), high);
        [low, high]
    }
}

/// `sums += ` the table entries that the transposed `bits` (from
/// [`Block::bits`]) pick: in lane `i` of register `s`, coordinate
/// `16·s + i`'s low nibble from `tables[0]`, then its high nibble from
/// `tables[1]`.
///
/// # Safety
/// AVX-512F is available.
#[inline(always)]
pub(super) unsafe fn add_chunk(sums: &mut [__m512; 4], bits: __m512i, tables: &[__m512; 2]) {
    // SAFETY: registers only, on the caller's ISA.
    unsafe {
        let nibbles = [
            [bits, _mm512_srli_epi32::<4>(bits)],
            [_mm512_srli_epi32::<8>(bits), _mm512_srli_epi32::<12>(bits)],
            [_mm512_srli_epi32::<16>(bits), _mm512_srli_epi32::<20>(bits)],
            [_mm512_srli_epi32::<24>(bits), _mm512_srli_epi32::<28>(bits)],
        ];
        for (s, [lo, hi]) in sums.iter_mut().zip(nibbles) {
            *s = _mm512_add_ps(*s, _mm512_permutexvar_ps(lo, tables[0]));
            *s = _mm512_add_ps(*s, _mm512_permutexvar_ps(hi, tables[1]));
        }
    }
}

/// `w` (at most eight weights) times `scale`, padded with zeros to eight:
/// a copy of registers where `w.len()` is known to be 8, a short loop
/// otherwise. Sign sums take `scale = 1.0` (the weights as they are);
/// 1-bit value codes the positive centroid (`c[1] = −c[0]`), so that
/// `±w·c[1]` is each row's `w·c[code]`.
#[inline(always)]
pub(super) fn block_weights(w: &[f32], scale: f32) -> [f32; ROWS] {
    if let Some(Ok(block)) = w.get(..ROWS).map(<[f32; ROWS]>::try_from) {
        return block.map(|x| x * scale);
    }
    let mut block = [0.0f32; ROWS];
    for (b, &x) in block.iter_mut().zip(w) {
        *b = x * scale;
    }
    block
}

impl<const C: usize> SignTables<C> {
    /// The sums `acc` (`m ≤ 64·C` values, `m` a multiple of 16) in
    /// registers.
    ///
    /// # Safety
    /// AVX-512 F/BW are available.
    #[inline(always)]
    pub(super) unsafe fn new(acc: &[f32]) -> Self {
        let bytes = acc.len() / 8;
        // SAFETY: AVX-512 F/BW (caller); `load_sums` reads `acc`'s values.
        unsafe {
            let mut permutes = [_mm512_setzero_si512(); C];
            let mut sums = [[_mm512_setzero_ps(); 4]; C];
            for (ch, (p, s)) in permutes.iter_mut().zip(&mut sums).enumerate() {
                *p = permute(bytes, ch);
                *s = load_sums(acc.get(64 * ch..).unwrap_or_default());
            }
            SignTables {
                sums,
                permute: permutes,
                bytes,
            }
        }
    }

    /// Adds `rows ≤ 8` rows of signs from `signs` (back to back, `bytes`
    /// each) with weights `w` (zero past `rows`).
    ///
    /// # Safety
    /// AVX-512 F/BW/VBMI and GFNI are available; `rows·bytes` bytes at
    /// `signs` are readable.
    #[inline(always)]
    pub(super) unsafe fn add(&mut self, signs: *const u8, rows: usize, w: &[f32; ROWS]) {
        // SAFETY: the caller's promises.
        unsafe {
            let block = Block::load(signs, rows, self.bytes);
            let tables = tables(w);
            for (sums, &permute) in self.sums.iter_mut().zip(&self.permute) {
                add_chunk(sums, block.bits(permute), &tables);
            }
        }
    }

    /// The sums back into `acc` (the slice [`new`](Self::new) read).
    ///
    /// # Safety
    /// AVX-512F is available.
    #[inline(always)]
    pub(super) unsafe fn store(&self, acc: &mut [f32]) {
        for (ch, sums) in self.sums.iter().enumerate() {
            // SAFETY: forwarded.
            unsafe { store_sums(sums, acc.get_mut(64 * ch..).unwrap_or_default()) };
        }
    }
}

/// The first `min(64, acc.len())` values of `acc` (a multiple of 16) as
/// four registers, zeros past them.
///
/// # Safety
/// AVX-512F is available.
#[inline(always)]
pub(super) unsafe fn load_sums(acc: &[f32]) -> [__m512; 4] {
    // SAFETY: AVX-512F (caller); each load reads 16 values of `acc`.
    unsafe {
        let mut sums = [_mm512_setzero_ps(); 4];
        for (s, c) in sums.iter_mut().zip(acc.chunks_exact(16)) {
            *s = _mm512_loadu_ps(c.as_ptr());
        }
        sums
    }
}

/// [`load_sums`] undone: the registers into the first `min(64,
/// acc.len())` values of `acc`.
///
/// # Safety
/// AVX-512F is available.
#[inline(always)]
pub(super) unsafe fn store_sums(sums: &[__m512; 4], acc: &mut [f32]) {
    for (s, c) in sums.iter().zip(acc.chunks_exact_mut(16)) {
        // SAFETY: AVX-512F (caller); 16 values of `acc`.
        unsafe { _mm512_storeu_ps(c.as_mut_ptr(), *s) };
    }
}

/// `len ≤ 128` bytes at `p` into two registers, zeros past them.
///
/// # Safety
/// AVX-512 F/BW are available; `len` bytes at `p` are readable.
#[inline(always)]
unsafe fn load_window(p: *const u8, len: usize) -> [__m512i; 2] {
    // SAFETY: masked loads of the readable bytes only (an empty mask reads
    // nothing).
    unsafe {
        [
            _mm512_maskz_loadu_epi8(byte_mask(len), p.cast()),
            _mm512_maskz_loadu_epi8(byte_mask(len.saturating_sub(64)), p.wrapping_add(64).cast()),
        ]
    }
}

/// `acc[j] += Σ_t ±(weights[t]·scale)` over rows that [`takes`] accepts,
/// eight rows a step.
///
/// # Safety
/// AVX-512 F/BW/VBMI and GFNI are available; `takes(acc.len(), acc.len()
/// / 8)`; `rows` holds `weights.len()` rows of `acc.len() / 8` bytes.
#[inline(always)]
pub(super) unsafe fn accumulate<const C: usize>(
    rows: &[u8],
    weights: &[f32],
    scale: f32,
    acc: &mut [f32],
) {
    let bytes = acc.len() / 8;
    // SAFETY: the caller's promises; each step reads its rows' bytes.
    unsafe {
        let mut sums = SignTables::<C>::new(acc);
        let n = weights.len();
        let whole = n - n % ROWS;
        for t in (0..whole).step_by(ROWS) {
            let w = block_weights(weights.get_unchecked(t..t + ROWS), scale);
            sums.add(rows.as_ptr().wrapping_add(t * bytes), ROWS, &w);
        }
        if whole < n {
            let w = block_weights(weights.get_unchecked(whole..), scale);
            sums.add(rows.as_ptr().wrapping_add(whole * bytes), n - whole, &w);
        }
        sums.store(acc);
    }
}

crate::backend::avx512_features!(crate::backend::target_features {
    /// [`accumulate`] compiled with the AVX-512 feature list, for every
    /// number of chunks: `acc.len()` signs a row.
    ///
    /// # Safety
    /// As [`accumulate`].
    pub(crate) unsafe fn accumulate_simd(
        rows: &[u8],
        weights: &[f32],
        scale: f32,
        acc: &mut [f32],
    ) {
        // SAFETY: forwarded; the chunk count covers `acc.len() ≤ 256`.
        unsafe {
            match acc.len().div_ceil(64) {
                1 => accumulate::<1>(rows, weights, scale, acc),
                2 => accumulate::<2>(rows, weights, scale, acc),
                3 => accumulate::<3>(rows, weights, scale, acc),
                _ => accumulate::<4>(rows, weights, scale, acc),
            }
        }
    }
});
