//! Lloyd–Max codebooks for rotated coordinates, and the kernels that quantise,
//! pack, dequantise and score straight from packed codes.
//!
//! A [`Codebook`] holds `2^bits` sorted centroids and the `2^bits − 1`
//! decision thresholds between them. [`Codebook::lloyd_max`] solves for the
//! exact law of one coordinate of a uniform point on the sphere `S^{d−1}`
//! (what every coordinate of a rotated unit vector follows); dims 64, 128 and
//! 256 at 1–4 bits come from precomputed tables, so no solver runs on the hot
//! path.
//!
//! # Kernels
//!
//! [`quantize`], [`quantize_packed`], [`dequantize`], [`dot`] and
//! [`dot_rows`]. Codes are packed as documented in [`crate::pack`].
//!
//! Quantisation is `index(x) = #{j : x > thresholds[j]}`: the nearest
//! centroid, ties (x exactly on a threshold) going to the lower index. NaN
//! compares false with every threshold and maps to index 0; `±∞` map to the
//! extreme indices.
//!
//! Every kernel runs on the detected [`Backend`](crate::Backend) and has an `…_on` form
//! for a chosen one. Indices and packed bytes are identical on every
//! backend; [`dot`] and [`dot_rows`] agree with the scalar kernel within
//! `1e-5 · Σ|q·c|` (summation order differs). On AVX-512, AVX2 and NEON at
//! 1 to 4 bits, [`dot_rows`] with at most 256 codes a row scores 16 (AVX2
//! and AVX-512 at 3 bits: 8; NEON: 4) rows per vector from a table of
//! `q_j · c_v`, summing each row in the scalar kernel's order: those scores
//! equal the scalar ones bit for bit (tested). On AVX-512 at 5 and 6 bits
//! (up to 256 codes a row), [`dot_rows`] (blocks of 16 rows, a row per
//! lane) and [`accumulate_rows`] take the kernels attention runs there,
//! 1.7 to 2.7 times as fast as row by row: within the tolerance, not bit
//! for bit.
//!
//! How they run: AVX2 looks centroids up with `vpermps` (up to 6 bits: one
//! register per 8 centroids, merged by blends on the index bits; a gather
//! at 7 and 8), AVX-512 with `vpermps`/`vpermt2ps` (a gather at 6+ bits)
//! and unpacks 64 codes with `vpermb` + `vpmultishiftqb`, NEON with `tbl`
//! (per-lane loads at 5+ bits); x86 packs with BMI2 `pext`/`pdep`.

mod accumulate;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::nibble_table_rows as avx2_nibble_table_rows;
#[cfg(target_arch = "x86_64")]
pub(crate) use avx512::key_rows::nibble_table_rows_multi as avx512_nibble_table_rows_multi;
#[cfg(target_arch = "x86_64")]
pub(crate) use avx512::sign_tables::{
    accumulate_simd as avx512_sign_tables, takes as avx512_sign_tables_take,
};
#[cfg(target_arch = "aarch64")]
pub(crate) use neon::{Tables as NeonTables, nibble_table_rows as neon_nibble_table_rows};
#[cfg(target_arch = "x86_64")]
mod bmi;
mod codes;
pub(crate) mod int8;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod int8_simd;
mod lloyd;
#[cfg(target_arch = "aarch64")]
mod neon;
mod nibbles;
pub mod pack;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod runs;
mod scalar;
mod score;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod simd;
mod tables;

use crate::Error;
#[cfg(target_arch = "x86_64")]
pub(crate) use accumulate::SignedRows;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) use accumulate::WeightedCodes;
pub(crate) use accumulate::{WeightedRows, accumulate_multi_in};
pub use accumulate::{accumulate_rows, accumulate_rows_on};
pub use codes::{
    dequantize, dequantize_on, quantize, quantize_on, quantize_packed, quantize_packed_on,
};
pub(crate) use codes::{dequantize_in, quantize_packed_centroids_in, quantize_packed_in};
use lloyd::{Normal, Sphere};
use pack::check_bits;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) use score::runs_fit;
pub(crate) use score::{
    Queries, ScoreRows, check_queries, dot_rows_int8_multi_in, dot_rows_multi_in,
};
pub use score::{
    dot, dot_f32, dot_f32_on, dot_on, dot_rows, dot_rows_int8, dot_rows_int8_on, dot_rows_on,
};

/// Largest number of levels (8 bits).
const MAX_LEVELS: usize = 256;
/// The widest codebook whose thresholds [`Codebook::search_order`] holds.
pub(crate) const SEARCH_BITS: u8 = 6;
/// Where the search order starts in the thresholds' array: past the
/// thresholds of any codebook of up to [`SEARCH_BITS`] bits, in room only
/// wider codebooks use (the codebook's size is part of the C ABI).
const SEARCH_AT: usize = 1 << SEARCH_BITS;

/// What a codebook is optimal for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Law {
    /// One coordinate of a uniform point on `S^{dim−1}`.
    Sphere(usize),
    /// The standard normal.
    Normal,
}

/// A symmetric Lloyd–Max scalar quantiser with `2^bits` levels (1 ≤ bits ≤ 8).
///
/// A fixed-size value (no allocation): 256 centroids at most, kept in f32 for
/// the kernels and in f64 as solved.
///
/// ```
/// use tqkv::Codebook;
///
/// let cb = Codebook::lloyd_max(128, 2)?;
/// let c = cb.centroids();
/// assert_eq!(c.len(), 4);
/// assert!(c.windows(2).all(|w| w[0] < w[1]));
/// assert_eq!(c[0], -c[3]); // symmetric
/// // 2 bits: within the TurboQuant bounds 4^-b ≤ D ≤ (√3·π/2)·4^-b.
/// assert!(cb.mse() > 0.0625 && cb.mse() < 0.17);
/// # Ok::<(), tqkv::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Codebook {
    law: Law,
    bits: u8,
    centroids: [f32; MAX_LEVELS],
    /// The `2^bits − 1` thresholds; up to [`SEARCH_BITS`] bits, also the
    /// [`search_order`](Self::search_order) from [`SEARCH_AT`].
    thresholds: [f32; MAX_LEVELS - 1],
    exact: [f64; MAX_LEVELS],
    mse: f64,
}

impl Codebook {
    /// The Lloyd–Max codebook for one coordinate of a uniform point on
    /// `S^{dim−1}` (the exact Beta law, not its Gaussian limit).
    ///
    /// Dims 64, 128 and 256 with 1–4 bits come from `const` tables; anything
    /// else runs the solver (deterministic, `libm` only, works without `std`;
    /// Newton on the thresholds, then Lloyd): in release builds on this
    /// project's machine, 5 µs at 1 bit, 0.2 ms at 4 bits and 3.6 ms at 8 bits
    /// for dim 128, up to 17 ms at 8 bits for dim 65536.
    ///
    /// # Errors
    /// [`Error::InvalidBits`] unless `bits ∈ 1..=8`; [`Error::InvalidDim`]
    /// unless `dim ∈ 2..=65536` (any dim, not only powers of two).
    ///
    /// ```
    /// use tqkv::Codebook;
    ///
    /// let table = Codebook::lloyd_max(128, 3)?; // precomputed
    /// let solved = Codebook::lloyd_max(96, 3)?; // any dim: solved here
    /// assert_eq!(table.levels(), 8);
    /// // Smaller dims spread the coordinates wider (σ = 1/√d).
    /// assert!(solved.centroids()[7] > table.centroids()[7]);
    /// # Ok::<(), tqkv::Error>(())
    /// ```
    pub fn lloyd_max(dim: usize, bits: u8) -> Result<Codebook, Error> {
        check_bits(bits)?;
        if !(2..=65536).contains(&dim) {
            return Err(Error::InvalidDim { dim });
        }
        if let Some((half, mse)) = tables::lookup(dim, bits) {
            return Ok(Codebook::from_half(Law::Sphere(dim), bits, half, Some(mse)));
        }
        Ok(Codebook::solve(Law::Sphere(dim), bits))
    }

    /// The Lloyd–Max codebook of the standard normal N(0, 1) (scale it by the
    /// caller's σ; for rotated unit vectors σ = 1/√d).
    ///
    /// # Errors
    /// [`Error::InvalidBits`] unless `bits ∈ 1..=8`.
    ///
    /// ```
    /// let cb = tqkv::Codebook::gaussian(1)?;
    /// // ±√(2/π), the classic 1-bit result.
    /// assert!((cb.centroids()[1] as f64 - (2.0 / core::f64::consts::PI).sqrt()).abs() < 1e-7);
    /// # Ok::<(), tqkv::Error>(())
    /// ```
    pub fn gaussian(bits: u8) -> Result<Codebook, Error> {
        check_bits(bits)?;
        Ok(Codebook::solve(Law::Normal, bits))
    }

    /// Runs the solver (no table look-up).
    fn solve(law: Law, bits: u8) -> Codebook {
        let half = 1usize << (bits - 1);
        let mut lower = [0.0f64; MAX_LEVELS / 2];
        match law {
            Law::Sphere(dim) => lloyd::solve(&Sphere::new(dim), half, &mut lower),
            Law::Normal => lloyd::solve(&Normal, half, &mut lower),
        };
        Codebook::from_half(law, bits, &lower[..half], None)
    }

    /// Mirrors the lower half, rounds to f32, sets the thresholds and the MSE.
    fn from_half(law: Law, bits: u8, lower: &[f64], mse: Option<f64>) -> Codebook {
        let levels = 1usize << bits;
        let half = levels / 2;
        let mut cb = Codebook {
            law,
            bits,
            centroids: [0.0; MAX_LEVELS],
            thresholds: [0.0; MAX_LEVELS - 1],
            exact: [0.0; MAX_LEVELS],
            mse: 0.0,
        };
        // The upper half mirrors the lower exactly, in f64 and (rounding
        // is symmetric) in f32: the AVX2 6-bit lookup relies on it.
        for (i, &c) in lower.iter().enumerate().take(half) {
            cb.exact[i] = c;
            cb.exact[levels - 1 - i] = -c;
        }
        for i in 0..levels {
            cb.centroids[i] = cb.exact[i] as f32;
        }
        for i in 0..levels - 1 {
            // The midpoint of two f32 is exact in f64; round it once.
            let mid = (cb.centroids[i] as f64 + cb.centroids[i + 1] as f64) / 2.0;
            cb.thresholds[i] = mid as f32;
        }
        if bits <= SEARCH_BITS {
            let order = SEARCH_AT..2 * SEARCH_AT;
            cb.thresholds[order].fill(f32::INFINITY);
            // Level `l` of the search, probe `k`: the threshold that splits
            // the `k`-th of the `2^l` intervals the levels above have left.
            for l in 0..bits {
                let step = 1usize << (bits - 1 - l);
                for k in 0..1usize << l {
                    let probe = cb.thresholds[(2 * k + 1) * step - 1];
                    cb.thresholds[SEARCH_AT + (1 << l) - 1 + k] = probe;
                }
            }
        }
        cb.mse = match mse {
            Some(m) => m,
            None => cb.integrated_mse(),
        };
        cb
    }

    /// The MSE of the f32 quantiser as applied, by integrating the law.
    fn integrated_mse(&self) -> f64 {
        let levels = self.levels();
        let mut c = [0.0f64; MAX_LEVELS];
        let mut t = [0.0f64; MAX_LEVELS - 1];
        for (ci, &v) in c.iter_mut().zip(self.centroids()) {
            *ci = v as f64;
        }
        for (ti, &v) in t.iter_mut().zip(self.thresholds()) {
            *ti = v as f64;
        }
        let (c, t) = (&c[..levels], &t[..levels - 1]);
        match self.law {
            Law::Sphere(dim) => dim as f64 * lloyd::distortion(&Sphere::new(dim), c, t),
            Law::Normal => lloyd::distortion(&Normal, c, t),
        }
    }

    /// Bits per code.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Number of levels, `2^bits`.
    pub fn levels(&self) -> usize {
        1 << self.bits
    }

    /// The dimension the codebook was solved for (`None` for [`gaussian`](Self::gaussian)).
    pub fn dim(&self) -> Option<usize> {
        match self.law {
            Law::Sphere(d) => Some(d),
            Law::Normal => None,
        }
    }

    /// The centroids, sorted ascending, `2^bits` of them, symmetric about 0.
    pub fn centroids(&self) -> &[f32] {
        &self.centroids[..self.levels()]
    }

    /// The centroids as the solver computed them (f64, before rounding).
    pub fn centroids_f64(&self) -> &[f64] {
        &self.exact[..self.levels()]
    }

    /// The `2^bits − 1` decision thresholds: `thresholds[i]` is the midpoint
    /// of `centroids[i]` and `centroids[i + 1]`, rounded to the nearest f32.
    pub fn thresholds(&self) -> &[f32] {
        &self.thresholds[..self.levels() - 1]
    }

    /// The thresholds of a codebook of at most [`SEARCH_BITS`] bits in the
    /// order a binary search over them probes them, level by level: level
    /// `l` (`0 ≤ l < bits`) holds `2^l` probes from index `2^l − 1`, and the
    /// search, at node `k` of level `l`, compares with entry `2^l − 1 + k`
    /// and goes on to node `2k + 1` of the next level if the value is
    /// greater, else to `2k`; the node reached below the last level is the
    /// code. A level whose probes fill whole registers is then one load,
    /// and the node number picks its lane. `+∞` past the probes; other
    /// values (never read) for wider codebooks.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    pub(crate) fn search_order(&self) -> &[f32; SEARCH_AT] {
        // The second whole chunk of the array: `SEARCH_AT … 2·SEARCH_AT`.
        &self.thresholds.as_chunks::<SEARCH_AT>().0[1]
    }

    /// The expected squared error of quantising with this codebook,
    /// computed by integration (no sampling): for a sphere codebook, of one
    /// rotated unit vector, summed over its `dim` coordinates
    /// (`dim · E[(T − Q(T))²]`); for [`gaussian`](Self::gaussian), of one
    /// N(0, 1) value.
    ///
    /// ```
    /// let mse: Vec<f64> = (1..=4)
    ///     .map(|b| tqkv::Codebook::lloyd_max(128, b).map(|cb| cb.mse()))
    ///     .collect::<Result<_, _>>()?;
    /// assert!(mse.windows(2).all(|w| w[1] < w[0] / 3.0)); // ≈ ×1/4 a bit
    /// # Ok::<(), tqkv::Error>(())
    /// ```
    pub fn mse(&self) -> f64 {
        self.mse
    }

    /// The index of the nearest centroid (see the module docs for ties, NaN).
    ///
    /// ```
    /// let cb = tqkv::Codebook::gaussian(2)?;
    /// assert_eq!(cb.index(cb.centroids()[2]), 2);
    /// assert_eq!(cb.index(cb.thresholds()[1]), 1); // a tie goes down
    /// assert_eq!(cb.index(f32::NAN), 0);
    /// # Ok::<(), tqkv::Error>(())
    /// ```
    #[inline]
    pub fn index(&self, x: f32) -> u8 {
        let t = self.thresholds();
        if self.bits <= 4 {
            // Up to 15 independent compares: cheaper than a search whose
            // every step waits for the one before.
            return t.iter().map(|&th| u8::from(x > th)).sum();
        }
        // Binary search, arithmetic on the comparison rather than a branch
        // (those mispredict half the time on real data): afterwards
        // idx = #{j : x > t[j]}.
        let mut idx = 0usize;
        let mut step = self.levels() / 2;
        while step > 0 {
            idx += step * usize::from(x > t[idx + step - 1]);
            step /= 2;
        }
        idx as u8
    }
}

/// Most query vectors the shared multi-query kernels carry at once.
#[cfg(target_arch = "x86_64")]
const GROUP: usize = avx512::multi::MAX_GROUP;
#[cfg(not(target_arch = "x86_64"))]
const GROUP: usize = 4;

#[cfg(test)]
mod tests;
