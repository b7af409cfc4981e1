//! [`BitPlaneQuery`]: a projected query quantised to a few bit-planes,
//! scored against sketches with AND + popcount.

use super::scalar::plane_counts_scalar;
use crate::backend::{Checked, on_backend};
use crate::error::check_rows;
use crate::rng::SplitMix64;
use crate::{Backend, Error};

#[cfg(target_arch = "aarch64")]
use super::neon;
#[cfg(target_arch = "x86_64")]
use super::{avx2, avx512};

/// A bit-plane query as the kernels see it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Planes<'a> {
    pub(super) planes: &'a [u64],
    pub(super) words: usize,
    pub(super) bits: usize,
    pub(super) lo: f32,
    pub(super) step: f32,
    pub(super) total: f32,
}

impl Planes<'_> {
    /// `2·(lo·|s| + step·Σ_p 2^p·|s ∧ plane_p|) − Σ_j q̂_j`, in f64 then f32.
    #[inline(always)]
    pub(super) fn combine(&self, ones: u32, weighted: u64) -> f32 {
        let positive = self.lo as f64 * ones as f64 + self.step as f64 * weighted as f64;
        (2.0 * positive - self.total as f64) as f32
    }
}

/// Every row's bit-plane sum (rows validated), with `counts` for one row.
#[inline(always)]
pub(super) fn plane_rows_with(
    q: Planes<'_>,
    rows: &[u8],
    stride: usize,
    out: &mut [f32],
    counts: impl Fn(&[u8]) -> (u32, u64),
) {
    let bytes = q.words * 8;
    for (r, o) in out.iter_mut().enumerate() {
        let (ones, weighted) = counts(&rows[r * stride..r * stride + bytes]);
        *o = q.combine(ones, weighted);
    }
}

/// How [`BitPlaneQuery`] rounds the projected query to its integer levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rounding {
    /// To the nearest level (ties up): error at most half a step per value.
    Nearest,
    /// Down or up at random, with the probability that makes the level
    /// unbiased (`floor(x + U)`, `U` uniform in [0, 1) from
    /// [`SplitMix64`] seeded with `seed`, the top 24 bits of one output per
    /// value): error below one step per value, zero on average.
    Randomized {
        /// The generator's seed.
        seed: u64,
    },
}

/// A projected query `S·q` quantised to `B` bit-planes, so that
/// `Σ_j s_j·(S·q)_j` becomes AND + popcount.
///
/// Value `j` is stored as `lo + step·u_j` with `u_j ∈ 0..2^B` (unsigned,
/// offset `lo = min_j sq_j`, `step = (max − min)/(2^B − 1)`); plane `p` holds
/// bit `p` of every `u_j`, packed like the sketches (bit `j` in word `j/64`,
/// position `j % 64`). With `s_j ∈ {0, 1}` the sketch bits,
/// `Σ_j (2s_j − 1)·q̂_j = 2·(lo·|s| + step·Σ_p 2^p·|s ∧ plane_p|) − Σ_j q̂_j`.
///
/// Against the f32 [`signed_sum`](super::signed_sum), the result differs by at most
/// `Σ_j |sq_j − q̂_j|`, i.e. `m·step/2` with [`Rounding::Nearest`] and below
/// `m·step` with [`Rounding::Randomized`] (plus f32 rounding of the sums).
///
/// The planes live in a caller buffer of `B·m/64` words (no allocation).
///
/// ```
/// use tqkv::qjl::{self, BitPlaneQuery, Rounding};
///
/// let sq: Vec<f32> = (0..64).map(|j| (j as f32 - 31.5) / 8.0).collect();
/// let signs = [0b1011_0110u8; 8];
/// let mut planes = [0u64; 8];
/// let bq = BitPlaneQuery::new(&sq, 8, Rounding::Nearest, &mut planes)?;
/// let exact = qjl::signed_sum(&sq, &signs)?;
/// let approx = bq.signed_sum(&signs)?;
/// assert!((approx - exact).abs() <= 64.0 * bq.step() / 2.0 + 1e-4);
/// # Ok::<(), tqkv::Error>(())
/// ```
#[derive(Debug)]
pub struct BitPlaneQuery<'a> {
    planes: &'a [u64],
    bits: u8,
    m: usize,
    lo: f32,
    step: f32,
    total: f32,
}

impl<'a> BitPlaneQuery<'a> {
    /// Words of plane storage needed: `bits · m/64`.
    pub fn words_needed(m: usize, bits: u8) -> usize {
        bits as usize * m.div_ceil(64)
    }

    /// Quantises `sq` (`m` values, `m` a multiple of 64) to `bits` planes in
    /// `buf`.
    ///
    /// # Errors
    /// [`Error::InvalidBits`] unless `bits ∈ 1..=8`;
    /// [`Error::InvalidSketchBits`] unless `sq.len()` is a positive multiple
    /// of 64; [`Error::BufferTooShort`] if `buf` is shorter than
    /// [`words_needed`](Self::words_needed); [`Error::NonFinite`] if `sq`
    /// holds a NaN or an infinity.
    pub fn new(
        sq: &[f32],
        bits: u8,
        rounding: Rounding,
        buf: &'a mut [u64],
    ) -> Result<Self, Error> {
        if !(1..=8).contains(&bits) {
            return Err(Error::InvalidBits { bits });
        }
        let m = sq.len();
        if m == 0 || !m.is_multiple_of(64) {
            return Err(Error::InvalidSketchBits { m });
        }
        let words = m / 64;
        let needed = bits as usize * words;
        if buf.len() < needed {
            return Err(Error::BufferTooShort {
                needed,
                found: buf.len(),
            });
        }
        crate::error::finite(sq)?;
        let lo = sq.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = sq.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let top = ((1u32 << bits) - 1) as f32;
        let step = (hi - lo) / top;
        let planes = &mut buf[..needed];
        planes.fill(0);
        let mut rng = match rounding {
            Rounding::Randomized { seed } => Some(SplitMix64::new(seed)),
            Rounding::Nearest => None,
        };
        let mut levels = 0u64;
        for (j, &v) in sq.iter().enumerate() {
            let x = if step > 0.0 { (v - lo) / step } else { 0.0 };
            let nudge = match rng.as_mut() {
                Some(g) => (g.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32),
                None => 0.5,
            };
            let u = libm::floorf(x + nudge).clamp(0.0, top) as u64;
            levels += u;
            for (p, plane) in planes.chunks_exact_mut(words).enumerate() {
                plane[j / 64] |= ((u >> p) & 1) << (j % 64);
            }
        }
        let total = (m as f64 * lo as f64 + step as f64 * levels as f64) as f32;
        Ok(BitPlaneQuery {
            planes,
            bits,
            m,
            lo,
            step,
            total,
        })
    }

    /// The number of values `m`.
    pub fn m(&self) -> usize {
        self.m
    }

    /// The number of planes `B`.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// The quantisation step.
    pub fn step(&self) -> f32 {
        self.step
    }

    /// The offset (the smallest value).
    pub fn offset(&self) -> f32 {
        self.lo
    }

    /// The planes: plane `p` is words `p·m/64 … (p + 1)·m/64`.
    pub fn planes(&self) -> &[u64] {
        self.planes
    }

    /// `Σ_j s_j·q̂_j` for one sketch (`s_j = ±1` from its bits).
    ///
    /// # Errors
    /// [`Error::BufferTooShort`] if `signs` has fewer than `m/8` bytes.
    pub fn signed_sum(&self, signs: &[u8]) -> Result<f32, Error> {
        self.signed_sum_on(Backend::detect(), signs)
    }

    /// [`signed_sum`](Self::signed_sum) on a chosen backend (the popcounts
    /// are identical on every backend, so is the result).
    ///
    /// # Errors
    /// As [`signed_sum`](Self::signed_sum), plus [`Error::BackendUnavailable`].
    pub fn signed_sum_on(&self, backend: Backend, signs: &[u8]) -> Result<f32, Error> {
        self.signed_sum_in(backend.check()?, signs)
    }

    /// [`signed_sum_on`](Self::signed_sum_on) on a backend already checked.
    pub(crate) fn signed_sum_in(&self, backend: Checked, signs: &[u8]) -> Result<f32, Error> {
        let bytes = self.m / 8;
        if signs.len() < bytes {
            return Err(Error::BufferTooShort {
                needed: bytes,
                found: signs.len(),
            });
        }
        let mut out = [0.0f32];
        self.signed_sum_rows_in(backend, &signs[..bytes], bytes, &mut out)?;
        Ok(out[0])
    }

    fn view(&self) -> Planes<'_> {
        Planes {
            planes: self.planes,
            words: self.m / 64,
            bits: self.bits as usize,
            lo: self.lo,
            step: self.step,
            total: self.total,
        }
    }

    /// [`signed_sum`](Self::signed_sum) of every row: row `r` is the `m/8`
    /// bytes at `rows[r·stride..]`, its result goes to `out[r]`.
    ///
    /// # Errors
    /// [`Error::BufferTooShort`] if `stride < m/8` or `rows` does not hold
    /// `out.len()` rows.
    pub fn signed_sum_rows(
        &self,
        rows: &[u8],
        stride: usize,
        out: &mut [f32],
    ) -> Result<(), Error> {
        self.signed_sum_rows_on(Backend::detect(), rows, stride, out)
    }

    /// [`signed_sum_rows`](Self::signed_sum_rows) on a chosen backend.
    ///
    /// # Errors
    /// As [`signed_sum_rows`](Self::signed_sum_rows), plus
    /// [`Error::BackendUnavailable`].
    pub fn signed_sum_rows_on(
        &self,
        backend: Backend,
        rows: &[u8],
        stride: usize,
        out: &mut [f32],
    ) -> Result<(), Error> {
        self.signed_sum_rows_in(backend.check()?, rows, stride, out)
    }

    /// [`signed_sum_rows_on`](Self::signed_sum_rows_on) on a backend already checked.
    pub(crate) fn signed_sum_rows_in(
        &self,
        backend: Checked,
        rows: &[u8],
        stride: usize,
        out: &mut [f32],
    ) -> Result<(), Error> {
        let bytes = self.m / 8;
        check_rows(bytes, rows.len(), stride, out.len())?;
        let q = self.view();
        on_backend!(
            backend,
            plane_rows_with(q, rows, stride, out, |s| plane_counts_scalar(
                s, q.planes, q.words, q.bits
            )),
            plane_rows_simd(q, rows, stride, out)
        )
    }
}
