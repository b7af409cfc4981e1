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
//! Every kernel runs on the detected [`Backend`] and has an `…_on` form
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
pub(crate) use neon::nibble_table_rows as neon_nibble_table_rows;
#[cfg(target_arch = "x86_64")]
mod bmi;
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
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod simd;
mod tables;

use crate::backend::{Checked, on_backend};
use crate::error::{check_rows, finite, finite_on, need};
use crate::{Backend, Error};
use lloyd::{Normal, Sphere};
use pack::{check_bits, packed_len};

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

/// Quantises every `x[j]` to the index of its nearest centroid, into
/// `out[j]` (one index per byte, unpacked), on the detected backend.
/// Indices are identical on every backend.
///
/// # Errors
/// [`Error::BufferTooShort`] if `out` is shorter than `x`; [`Error::NonFinite`] if
/// `x` holds a NaN or an infinity.
///
/// ```
/// use tqkv::{codebook, Codebook};
///
/// let cb = Codebook::gaussian(2)?;
/// let mut idx = [0u8; 4];
/// codebook::quantize(&cb, &[-3.0, -0.1, 0.1, 3.0], &mut idx)?;
/// assert_eq!(idx, [0, 1, 2, 3]);
/// assert_eq!(codebook::quantize(&cb, &[f32::NAN], &mut idx), Err(tqkv::Error::NonFinite));
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn quantize(cb: &Codebook, x: &[f32], out: &mut [u8]) -> Result<(), Error> {
    quantize_on(Backend::detect(), cb, x, out)
}

/// [`quantize`] on a chosen backend.
///
/// # Errors
/// As [`quantize`], plus [`Error::BackendUnavailable`].
///
/// ```
/// use tqkv::{codebook, Backend, Codebook};
///
/// let cb = Codebook::lloyd_max(64, 3)?;
/// let x: Vec<f32> = (0..64).map(|i| (i as f32 - 32.0) / 256.0).collect();
/// let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
/// codebook::quantize_on(Backend::Scalar, &cb, &x, &mut a)?;
/// codebook::quantize_on(Backend::detect(), &cb, &x, &mut b)?;
/// assert_eq!(a, b); // identical on every backend
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn quantize_on(
    backend: Backend,
    cb: &Codebook,
    x: &[f32],
    out: &mut [u8],
) -> Result<(), Error> {
    let backend = backend.check()?;
    finite_on(backend, x)?;
    quantize_in(backend, cb, x, out)
}

/// [`quantize_on`] on a backend already checked.
pub(crate) fn quantize_in(
    backend: Checked,
    cb: &Codebook,
    x: &[f32],
    out: &mut [u8],
) -> Result<(), Error> {
    need(x.len(), out.len())?;
    let out = &mut out[..x.len()];
    on_backend!(backend, scalar::quantize(cb, x, out), quantize(cb, x, out))
}

/// Quantises `x` and packs the indices into `out` in one pass, on the
/// detected backend; returns the bytes written, `packed_len(x.len(), bits)`.
/// The bytes are identical on every backend.
///
/// # Errors
/// [`Error::BufferTooShort`] if `out` is shorter than that; [`Error::NonFinite`]
/// if `x` holds a NaN or an infinity.
///
/// ```
/// use tqkv::{codebook, pack, Codebook};
///
/// let cb = Codebook::lloyd_max(128, 4)?;
/// let x = [0.01f32; 128];
/// let mut packed = [0u8; 64];
/// assert_eq!(codebook::quantize_packed(&cb, &x, &mut packed)?, pack::packed_len(128, 4));
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn quantize_packed(cb: &Codebook, x: &[f32], out: &mut [u8]) -> Result<usize, Error> {
    quantize_packed_on(Backend::detect(), cb, x, out)
}

/// [`quantize_packed`] on a chosen backend.
///
/// # Errors
/// As [`quantize_packed`], plus [`Error::BackendUnavailable`].
pub fn quantize_packed_on(
    backend: Backend,
    cb: &Codebook,
    x: &[f32],
    out: &mut [u8],
) -> Result<usize, Error> {
    let backend = backend.check()?;
    finite_on(backend, x)?;
    quantize_packed_in(backend, cb, x, out)
}

/// [`quantize_packed_on`] on a backend already checked.
pub(crate) fn quantize_packed_in(
    backend: Checked,
    cb: &Codebook,
    x: &[f32],
    out: &mut [u8],
) -> Result<usize, Error> {
    let needed = packed_len(x.len(), cb.bits());
    need(needed, out.len())?;
    let out = &mut out[..needed];
    on_backend!(
        backend,
        scalar::quantize_packed(cb, x, out),
        quantize_packed(cb, x, out)
    )?;
    Ok(needed)
}

/// [`quantize_packed_in`] that also writes each element's centroid (what
/// [`dequantize_in`] of the codes gives, bit for bit) to `centroids`
/// (`x.len()` of them).
pub(crate) fn quantize_packed_centroids_in(
    backend: Checked,
    cb: &Codebook,
    x: &[f32],
    out: &mut [u8],
    centroids: &mut [f32],
) -> Result<usize, Error> {
    let needed = packed_len(x.len(), cb.bits());
    need(needed, out.len())?;
    need(x.len(), centroids.len())?;
    let (out, centroids) = (&mut out[..needed], &mut centroids[..x.len()]);
    on_backend!(
        backend,
        {
            scalar::quantize_packed(cb, x, out);
            scalar::dequantize(cb, out, centroids)
        },
        quantize_packed_centroids(cb, x, out, centroids)
    )?;
    Ok(needed)
}

/// Decodes `out.len()` packed indices to their centroids, on the detected
/// backend (identical results on every backend).
///
/// # Errors
/// [`Error::BufferTooShort`] if `packed` is shorter than
/// `packed_len(out.len(), bits)`.
///
/// ```
/// use tqkv::{codebook, Codebook};
///
/// let cb = Codebook::gaussian(1)?;
/// let mut out = [0.0f32; 8];
/// codebook::dequantize(&cb, &[0b1000_0001], &mut out)?;
/// assert_eq!(out[0], cb.centroids()[1]);
/// assert_eq!(out[1], cb.centroids()[0]);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn dequantize(cb: &Codebook, packed: &[u8], out: &mut [f32]) -> Result<(), Error> {
    dequantize_on(Backend::detect(), cb, packed, out)
}

/// [`dequantize`] on a chosen backend.
///
/// # Errors
/// As [`dequantize`], plus [`Error::BackendUnavailable`].
pub fn dequantize_on(
    backend: Backend,
    cb: &Codebook,
    packed: &[u8],
    out: &mut [f32],
) -> Result<(), Error> {
    dequantize_in(backend.check()?, cb, packed, out)
}

/// [`dequantize_on`] on a backend already checked.
pub(crate) fn dequantize_in(
    backend: Checked,
    cb: &Codebook,
    packed: &[u8],
    out: &mut [f32],
) -> Result<(), Error> {
    let needed = packed_len(out.len(), cb.bits());
    need(needed, packed.len())?;
    let packed = &packed[..needed];
    on_backend!(
        backend,
        scalar::dequantize(cb, packed, out),
        dequantize(cb, packed, out)
    )
}

/// `Σ_j q[j] · c[idx_j]` straight from packed codes (the row is never
/// materialised), for a row of `q.len()` codes, on the detected backend.
///
/// Backends sum in different orders: results agree with the scalar kernel
/// within `1e-5 · Σ_j |q[j] · c[idx_j]|` (tested), not bit for bit.
///
/// # Errors
/// [`Error::BufferTooShort`] if `packed` is shorter than
/// `packed_len(q.len(), bits)`; [`Error::NonFinite`] if `q` holds a NaN or an
/// infinity.
///
/// ```
/// use tqkv::{codebook, Codebook};
///
/// let cb = Codebook::gaussian(1)?;
/// let c = cb.centroids()[1];
/// // Codes 1, 0: +c and −c.
/// let d = codebook::dot(&cb, &[2.0, 1.0], &[0b01])?;
/// assert_eq!(d, 2.0 * c - c);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn dot(cb: &Codebook, q: &[f32], packed: &[u8]) -> Result<f32, Error> {
    dot_on(Backend::detect(), cb, q, packed)
}

/// [`dot`] on a chosen backend.
///
/// # Errors
/// As [`dot`], plus [`Error::BackendUnavailable`].
pub fn dot_on(backend: Backend, cb: &Codebook, q: &[f32], packed: &[u8]) -> Result<f32, Error> {
    let sum = dot_in(backend.check()?, cb, q, packed)?;
    // Every centroid is non-zero (the levels come in ± pairs), so a NaN or
    // ±∞ in `q` always makes the sum non-finite: checking `q` only then is
    // exact and keeps the scan off the common path.
    if !sum.is_finite() {
        finite(q)?;
    }
    Ok(sum)
}

/// [`dot_on`] on a backend already checked.
pub(crate) fn dot_in(
    backend: Checked,
    cb: &Codebook,
    q: &[f32],
    packed: &[u8],
) -> Result<f32, Error> {
    let needed = packed_len(q.len(), cb.bits());
    need(needed, packed.len())?;
    let packed = &packed[..needed];
    on_backend!(backend, scalar::dot(cb, q, packed), dot(cb, q, packed))
}

/// [`dot`] of one query against many rows, on the detected backend: row `r`
/// is the `packed_len(q.len(), bits)` bytes at `packed_rows[r·row_stride..]`,
/// and its score goes to `out[r]` (`out.len()` rows). The hot loop of
/// attention scoring.
///
/// # Errors
/// [`Error::BufferTooShort`] if `row_stride` is shorter than one packed row
/// or `packed_rows` does not hold `out.len()` rows; [`Error::NonFinite`] if `q`
/// holds a NaN or an infinity.
///
/// ```
/// use tqkv::{codebook, Codebook};
///
/// let cb = Codebook::gaussian(2)?;
/// let rows = [0b11_10_01_00u8, 0b00_00_00_00];
/// let mut scores = [0.0f32; 2];
/// codebook::dot_rows(&cb, &[1.0; 4], &rows, 1, &mut scores)?;
/// assert!(scores[0].abs() < 1e-6); // the four centroids sum to zero
/// assert_eq!(scores[1], 4.0 * cb.centroids()[0]);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn dot_rows(
    cb: &Codebook,
    q: &[f32],
    packed_rows: &[u8],
    row_stride: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    dot_rows_on(Backend::detect(), cb, q, packed_rows, row_stride, out)
}

/// [`dot_rows`] on a chosen backend.
///
/// # Errors
/// As [`dot_rows`], plus [`Error::BackendUnavailable`].
pub fn dot_rows_on(
    backend: Backend,
    cb: &Codebook,
    q: &[f32],
    packed_rows: &[u8],
    row_stride: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    let backend = backend.check()?;
    finite_on(backend, q)?;
    dot_rows_in(backend, cb, q, packed_rows, row_stride, out)
}

/// [`dot_rows_on`] on a backend already checked.
pub(crate) fn dot_rows_in(
    backend: Checked,
    cb: &Codebook,
    q: &[f32],
    packed_rows: &[u8],
    row_stride: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    let row = packed_len(q.len(), cb.bits());
    check_rows(row, packed_rows.len(), row_stride, out.len())?;
    // At 5 and 6 bits, AVX-512 scores whole blocks of 16 rows by the
    // multi-query kernel with one query (attention's path there), within
    // the tolerance rather than bit for bit: row by row took 2.5 times as
    // long (`codebook/dot_rows/avx512/b5/d128`).
    #[cfg(target_arch = "x86_64")]
    let done = match cb.bits() {
        5 | 6 => {
            let job = ScoreRows {
                q: Queries::one(q),
                rows: packed_rows,
                stride: row_stride,
                n: out.len(),
            };
            let n = out.len();
            avx512::multi::dot_rows(backend, cb, job, out, n)
        }
        _ => 0,
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    let (packed_rows, out) = (
        packed_rows.get(done * row_stride..).unwrap_or(&[]),
        &mut out[done..],
    );
    on_backend!(
        backend,
        scalar::dot_rows(cb, q, packed_rows, row_stride, out),
        dot_rows(cb, q, packed_rows, row_stride, out)
    )
}

/// Approximate [`dot_rows`] from 8-bit integers (opt-in): `q` and the
/// centroids are each rounded to integers of magnitude ≤ 127 under one
/// scale, `q ≈ s_q·q8`, `c ≈ s_c·c8` with `s_q = max|q|/127`,
/// `s_c = max|c|/127` and `q8_j = round(q_j/s_q)` (computed as
/// `q_j·(127/max|q|)` in f64, halves away from zero; the same for `c8`);
/// then `out[r] = (Σ_j q8_j·c8[idx_{r,j}]) · (s_q·s_c)`, the sum exact in
/// integers, rounded to f32, times the factor rounded to f32 once. The
/// scores are the same bits on every backend; on AVX-512 (codes of 1–6 bits) they take one lookup and one
/// `vpdpbusd` (VNNI) per 64 codes, about half the exact kernel's time at 4
/// bits (BENCHMARKS.md, `codebook/dot_rows_int8`).
///
/// The rounding bounds the difference from the exact score:
/// `|out[r] − Σ_j q_j·c[idx_{r,j}]| ≤ Σ_j (s_q/2·|c[idx_{r,j}]| + s_c/2·|q_j| + s_q·s_c/4)`
/// plus the float rounding of the final product (a few ulps). For a
/// 4-bit codebook at d = 128 that is well under 1 % of `‖q‖·‖c‖`; the cost
/// in attention KL on real heads is in `docs/evaluate/`.
///
/// # Errors
/// As [`dot_rows`], and [`Error::InvalidDim`] for a `q` longer than
/// [`MAX_DIM`](crate::quant::MAX_DIM).
///
/// ```
/// use tqkv::{codebook, Codebook};
///
/// let cb = Codebook::lloyd_max(64, 4)?;
/// let q: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
/// let idx: Vec<u8> = (0..64).map(|i| (i * 5 % 16) as u8).collect();
/// let mut row = [0u8; 32];
/// tqkv::pack::pack(4, &idx, &mut row)?;
/// let (mut exact, mut approx) = ([0.0f32], [0.0f32]);
/// codebook::dot_rows(&cb, &q, &row, 32, &mut exact)?;
/// codebook::dot_rows_int8(&cb, &q, &row, 32, &mut approx)?;
/// let bound: f32 = q.iter().zip(&idx).map(|(qj, &i)| qj.abs() * cb.centroids()[i as usize].abs()).sum();
/// assert!((exact[0] - approx[0]).abs() <= 0.02 * bound);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn dot_rows_int8(
    cb: &Codebook,
    q: &[f32],
    packed_rows: &[u8],
    row_stride: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    dot_rows_int8_on(Backend::detect(), cb, q, packed_rows, row_stride, out)
}

/// [`dot_rows_int8`] on a chosen backend.
///
/// # Errors
/// As [`dot_rows_int8`], plus [`Error::BackendUnavailable`].
pub fn dot_rows_int8_on(
    backend: Backend,
    cb: &Codebook,
    q: &[f32],
    packed_rows: &[u8],
    row_stride: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    let backend = backend.check()?;
    finite_on(backend, q)?;
    dot_rows_int8_in(backend, cb, q, packed_rows, row_stride, out)
}

/// [`dot_rows_int8_on`] on a backend already checked, for a finite `q`.
pub(crate) fn dot_rows_int8_in(
    backend: Checked,
    cb: &Codebook,
    q: &[f32],
    packed_rows: &[u8],
    row_stride: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    if q.len() > crate::quant::MAX_DIM {
        return Err(Error::InvalidDim { dim: q.len() });
    }
    let bits = cb.bits();
    check_rows(
        packed_len(q.len(), bits),
        packed_rows.len(),
        row_stride,
        out.len(),
    )?;
    if q.is_empty() {
        out.fill(0.0);
        return Ok(());
    }
    let cents = int8::Int8Centroids::of(cb);
    crate::stack::bytes(int8::padded(q.len()), |buf| {
        let query = int8::Int8Query::of(q, buf);
        let args = int8::Int8Rows {
            bits,
            c8: &cents.values,
            q: query,
            mult: int8::multiplier(query.max, cents.max),
            rows: packed_rows,
            stride: row_stride,
        };
        int8::score_rows(backend, &args, out);
    });
    Ok(())
}

/// [`dot_rows_int8_in`] for several query vectors over the same `n`
/// rows, each rounded beforehand by `int8::round_query` (`q.values` holds
/// query `h` as `int8::rounded_len(q.dim)` values from `h·q.stride`):
/// `out[h·out_stride + r]` is query `h`'s score of row `r`, the same bits
/// as one query at a time (the sums are exact). AVX-512 shares each row's
/// loads and lookups between up to four queries.
///
/// # Errors
/// As [`dot_rows_multi_in`]; [`Error::InvalidDim`] for queries longer
/// than [`MAX_DIM`](crate::quant::MAX_DIM).
#[allow(clippy::too_many_arguments)]
pub(crate) fn dot_rows_int8_multi_in(
    backend: Checked,
    cb: &Codebook,
    q: Queries<'_>,
    rows: &[u8],
    stride: usize,
    n: usize,
    out: &mut [f32],
    out_stride: usize,
) -> Result<(), Error> {
    if q.count == 0 {
        return Ok(());
    }
    if q.dim > crate::quant::MAX_DIM {
        return Err(Error::InvalidDim { dim: q.dim });
    }
    check_multi(cb, q, rows, stride, n, out.len(), out_stride)?;
    let words = int8::rounded_len(q.dim);
    need((q.count - 1) * q.stride + words, q.values.len())?;
    if q.stride < words {
        return Err(Error::InvalidParameter("overlapping rounded queries"));
    }
    let bits = cb.bits();
    let cents = int8::Int8Centroids::of(cb);
    let span = int8::padded(q.dim);
    let mut h = 0;
    while h < q.count {
        let g = (q.count - h).min(int8::GROUP);
        let o = &mut out[h * out_stride..];
        crate::stack::bytes(g * span, |buf| {
            let mut bufs = buf.chunks_exact_mut(span.max(1));
            let args: [int8::Int8Rows<'_>; int8::GROUP] = core::array::from_fn(|k| {
                let query = match bufs.next() {
                    Some(b) if k < g => {
                        let words = &q.values[(h + k) * q.stride..];
                        int8::Int8Query::from_rounded(words, q.dim, b)
                    }
                    _ => int8::Int8Query::of(&[], &mut []),
                };
                int8::Int8Rows {
                    bits,
                    c8: &cents.values,
                    q: query,
                    mult: int8::multiplier(query.max, cents.max),
                    rows,
                    stride,
                }
            });
            let done = if q.dim == 0 {
                0
            } else {
                int8::simd_rows(backend, &args[..g], n, o, out_stride)
            };
            for (k, a) in args[..g].iter().enumerate() {
                let rest = int8::Int8Rows {
                    rows: rows.get(done * stride..).unwrap_or(&[]),
                    ..*a
                };
                int8::score_rows(
                    backend,
                    &rest,
                    &mut o[k * out_stride + done..k * out_stride + n],
                );
            }
        });
        h += g;
    }
    Ok(())
}

/// `out[j] += Σ_r weights[r] · c[idx_{r,j}]`: many packed rows (`out.len()`
/// codes each, row `r` at `packed_rows[r·row_stride..]`) dequantised,
/// weighted and summed into `out` in one pass, on the detected backend —
/// the value side of attention, `Σ_t p_t·v̂_t`, without materialising a row.
/// Backends sum in different orders: within `1e-5 · Σ_r |w_r| · max|c|` per
/// coordinate of the scalar result.
///
/// # Errors
/// [`Error::BufferTooShort`] if `row_stride` is shorter than one packed row
/// or `packed_rows` does not hold `weights.len()` rows.
///
/// ```
/// use tqkv::{codebook, Codebook};
///
/// let cb = Codebook::gaussian(1)?;
/// let c = cb.centroids()[1];
/// let mut out = [0.0f32; 2];
/// // Row 0 = codes (1, 0), row 1 = codes (1, 1).
/// codebook::accumulate_rows(&cb, &[0b01, 0b11], 1, &[0.5, 2.0], &mut out)?;
/// assert_eq!(out, [2.5 * c, 1.5 * c]);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn accumulate_rows(
    cb: &Codebook,
    packed_rows: &[u8],
    row_stride: usize,
    weights: &[f32],
    out: &mut [f32],
) -> Result<(), Error> {
    accumulate_rows_on(Backend::detect(), cb, packed_rows, row_stride, weights, out)
}

/// [`accumulate_rows`] on a chosen backend.
///
/// # Errors
/// As [`accumulate_rows`], plus [`Error::BackendUnavailable`].
pub fn accumulate_rows_on(
    backend: Backend,
    cb: &Codebook,
    packed_rows: &[u8],
    row_stride: usize,
    weights: &[f32],
    out: &mut [f32],
) -> Result<(), Error> {
    accumulate_rows_in(backend.check()?, cb, packed_rows, row_stride, weights, out)
}

/// [`accumulate_rows_on`] on a backend already checked.
pub(crate) fn accumulate_rows_in(
    backend: Checked,
    cb: &Codebook,
    packed_rows: &[u8],
    row_stride: usize,
    weights: &[f32],
    out: &mut [f32],
) -> Result<(), Error> {
    let row = packed_len(out.len(), cb.bits());
    check_rows(row, packed_rows.len(), row_stride, weights.len())?;
    // At 5 and 6 bits, AVX-512 takes the multi-query kernel with one
    // weight set (attention's path there): row by row took three times as
    // long (`codebook/accumulate_rows/avx512/b5/d128`).
    #[cfg(target_arch = "x86_64")]
    if matches!(cb.bits(), 5 | 6) {
        let rows = WeightedCodes {
            rows: packed_rows,
            stride: row_stride,
            n: weights.len(),
            weights,
            w_stride: weights.len(),
            out_stride: out.len(),
            d: out.len(),
        };
        if avx512::multi::accumulate_rows(backend, cb, &rows, out, 1) {
            return Ok(());
        }
    }
    on_backend!(
        backend,
        scalar::accumulate_rows(cb, packed_rows, row_stride, weights, out),
        accumulate_rows(cb, packed_rows, row_stride, weights, out)
    )
}

/// Codes and sign sketches of the same tokens with a weight each: the value
/// side of attention on prod values (see [`accumulate_rows_and_signs_in`]).
pub(crate) struct SignedRows<'a> {
    /// Packed codes, row `t` at `t·code_stride`.
    pub codes: &'a [u8],
    /// Bytes from one row of codes to the next.
    pub code_stride: usize,
    /// The weight of each row's codes.
    pub weights: &'a [f32],
    /// Sign sketches, row `t` at `t·sign_stride`.
    pub signs: &'a [u8],
    /// Bytes from one sketch to the next.
    pub sign_stride: usize,
    /// The weight of each row's signs (as many as `weights`).
    pub sign_weights: &'a [f32],
}

/// [`accumulate_rows_on`]`(cb, codes, code_stride, weights, out)` and
/// [`crate::qjl::accumulate_signs_rows_on`]`(signs, sign_stride,
/// sign_weights, acc)` over the same tokens. AVX-512 runs both in one pass
/// for `d = m ∈ {64, 128}` (the sign sums then cost almost nothing, see
/// `avx512`), with the same results as the two kernels bit for bit; every
/// other case calls the two kernels one after the other.
///
/// # Errors
/// As the two kernels; [`Error::LengthMismatch`] unless both kinds of rows
/// have as many weights.
pub(crate) fn accumulate_rows_and_signs_in(
    backend: Checked,
    cb: &Codebook,
    rows: &SignedRows<'_>,
    out: &mut [f32],
    acc: &mut [f32],
) -> Result<(), Error> {
    let r = rows;
    if r.weights.len() != r.sign_weights.len() {
        return Err(Error::LengthMismatch {
            expected: r.weights.len(),
            found: r.sign_weights.len(),
        });
    }
    let row = packed_len(out.len(), cb.bits());
    check_rows(row, r.codes.len(), r.code_stride, r.weights.len())?;
    check_rows(
        acc.len().div_ceil(8),
        r.signs.len(),
        r.sign_stride,
        r.sign_weights.len(),
    )?;
    #[cfg(target_arch = "x86_64")]
    if avx512::accumulate_rows_and_signs(backend, cb, r, out, acc) {
        return Ok(());
    }
    accumulate_rows_in(backend, cb, r.codes, r.code_stride, r.weights, out)?;
    crate::qjl::accumulate_signs_rows_in(backend, r.signs, r.sign_stride, r.sign_weights, acc)
}

/// Most query vectors the shared multi-query kernels carry at once.
#[cfg(target_arch = "x86_64")]
const GROUP: usize = avx512::multi::MAX_GROUP;
#[cfg(not(target_arch = "x86_64"))]
const GROUP: usize = 4;

/// Query vectors against the same rows: `q_h = queries[h·q_stride..][..dim]`
/// for `h < g`.
#[derive(Clone, Copy)]
pub(crate) struct Queries<'a> {
    /// The query values.
    pub values: &'a [f32],
    /// Values per query vector.
    pub dim: usize,
    /// From one query vector to the next.
    pub stride: usize,
    /// How many.
    pub count: usize,
}

#[cfg(target_arch = "x86_64")]
impl<'a> Queries<'a> {
    /// The one query vector `q`.
    pub(crate) fn one(q: &'a [f32]) -> Self {
        Queries {
            values: q,
            dim: q.len(),
            stride: q.len(),
            count: 1,
        }
    }
}

/// [`dot_rows_in`] for several query vectors over the same `n` rows:
/// `out[h·out_stride + r]` is query `h`'s score of row `r`. AVX-512 shares
/// a pass over the rows between up to four queries at 1 and 2 bits, each
/// with its own nibble tables (the scores equal [`dot_rows`]' bit for
/// bit), and shares the codes' work between up to four (or eight) queries
/// at 3 to 6 bits, AVX2 at 5 and 6 bits (the scores then agree with
/// [`dot_rows`] within its tolerance, not bit for bit); elsewhere, and for
/// a lone query at 1 to 4 bits, the queries run one after the other over
/// rows that stay in cache.
///
/// # Errors
/// As [`dot_rows_on`]; [`Error::BufferTooShort`] if `out` or the queries
/// are short.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dot_rows_multi_in(
    backend: Checked,
    cb: &Codebook,
    q: Queries<'_>,
    rows: &[u8],
    stride: usize,
    n: usize,
    out: &mut [f32],
    out_stride: usize,
) -> Result<(), Error> {
    if q.count == 0 {
        return Ok(());
    }
    check_multi(cb, q, rows, stride, n, out.len(), out_stride)?;
    let mut h = 0;
    while h < q.count {
        // AVX-512 scores eight queries in one pass too (keys of g = 8
        // 20 % faster than in two passes of four).
        #[cfg(target_arch = "x86_64")]
        let wide =
            backend.backend() == crate::Backend::Avx512 && q.count - h >= avx512::multi::WIDE_GROUP;
        #[cfg(target_arch = "x86_64")]
        let g = if wide {
            avx512::multi::WIDE_GROUP
        } else {
            (q.count - h).min(GROUP)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let g = (q.count - h).min(GROUP);
        let values = &q.values[h * q.stride..];
        let o = &mut out[h * out_stride..];
        // A lone query takes `dot_rows_in`: the single-query row blocks at
        // 1 to 4 bits (its scores equal the scalar ones bit for bit), this
        // kernel with one query at 5 and 6.
        let shared = g > 1;
        let done = if shared {
            #[cfg(target_arch = "x86_64")]
            {
                let job = ScoreRows {
                    q: Queries {
                        values,
                        count: g,
                        ..q
                    },
                    rows,
                    stride,
                    n,
                };
                match avx512::key_rows::dot_rows_multi(backend, cb, job, o, out_stride) {
                    0 => match avx512::multi::dot_rows(backend, cb, job, o, out_stride) {
                        0 => avx2::dot_rows_multi_wide(backend, cb, job, o, out_stride),
                        done => done,
                    },
                    done => done,
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            0
        } else {
            0
        };
        let rest_rows = rows.get(done * stride..).unwrap_or(&[]);
        for k in 0..g {
            let qk = &values[k * q.stride..][..q.dim];
            let ok = &mut o[k * out_stride + done..k * out_stride + n];
            dot_rows_in(backend, cb, qk, rest_rows, stride, ok)?;
        }
        h += g;
    }
    Ok(())
}

/// The arguments of the multi-query scores (`q.count ≥ 1`): `n` rows fit,
/// every query and output fits, and the strides do not overlap.
fn check_multi(
    cb: &Codebook,
    q: Queries<'_>,
    rows: &[u8],
    stride: usize,
    n: usize,
    out_len: usize,
    out_stride: usize,
) -> Result<(), Error> {
    check_rows(packed_len(q.dim, cb.bits()), rows.len(), stride, n)?;
    check_queries(q, n, out_len, out_stride)
}

/// The queries and outputs of a multi-query kernel (`q.count ≥ 1`): every
/// query inside its values, every query's `n` outputs inside `out_len`,
/// and neither overlapping the next.
pub(crate) fn check_queries(
    q: Queries<'_>,
    n: usize,
    out_len: usize,
    out_stride: usize,
) -> Result<(), Error> {
    let last = q.count.saturating_sub(1);
    let end = |stride: usize, len: usize| last.saturating_mul(stride).saturating_add(len);
    need(end(q.stride, q.dim), q.values.len())?;
    need(end(out_stride, n), out_len)?;
    if out_stride < n || q.stride < q.dim {
        return Err(Error::InvalidParameter(
            "overlapping query or output strides",
        ));
    }
    Ok(())
}

/// Whether `count` runs of `len` elements, `stride` apart, lie within
/// `room` elements (O(1); true for none). The multi-query kernels check
/// their buffers with it although their callers validated them, so that
/// each is sound as the safe function it is.
#[cfg(target_arch = "x86_64")]
pub(crate) fn runs_fit(count: usize, stride: usize, len: usize, room: usize) -> bool {
    count.checked_sub(1).is_none_or(|last| {
        last.checked_mul(stride)
            .and_then(|v| v.checked_add(len))
            .is_some_and(|v| v <= room)
    })
}

/// Query vectors against `n` rows (of packed codes, or of sketches),
/// `stride` apart: the arguments of the multi-query scoring kernels (the
/// x86 ones check with [`ScoreRows::fits`] that their buffers hold them)
/// and of `qjl::signed_sum_rows_multi_in`.
#[derive(Clone, Copy)]
pub(crate) struct ScoreRows<'a> {
    /// The query vectors.
    pub q: Queries<'a>,
    /// The rows of codes.
    pub rows: &'a [u8],
    /// Bytes from one row to the next.
    pub stride: usize,
    /// Rows.
    pub n: usize,
}

#[cfg(target_arch = "x86_64")]
impl ScoreRows<'_> {
    /// Whether the buffers hold the shape (O(1), no overflow): `n` rows of
    /// `bits`-bit codes in `rows`, every query in its values, and `count`
    /// runs of `n` scores `out_stride` apart in `out_len`.
    pub(crate) fn fits(&self, bits: u8, out_len: usize, out_stride: usize) -> bool {
        let q = self.q;
        runs_fit(
            self.n,
            self.stride,
            packed_len(q.dim, bits),
            self.rows.len(),
        ) && runs_fit(q.count, q.stride, q.dim, q.values.len())
            && runs_fit(q.count, out_stride, self.n, out_len)
    }
}

/// Rows of codes with one weight set per query vector, and where each
/// query's sums go: the arguments of the x86 multi-query value kernels
/// (validated by [`accumulate_multi_in`]).
#[cfg(target_arch = "x86_64")]
pub(crate) struct WeightedCodes<'a> {
    /// `n` rows of packed codes, `stride` apart.
    pub rows: &'a [u8],
    /// Bytes from one row to the next.
    pub stride: usize,
    /// Rows.
    pub n: usize,
    /// Query `h`'s weights: `weights[h·w_stride..][..n]`.
    pub weights: &'a [f32],
    /// From one query's weights to the next.
    pub w_stride: usize,
    /// From one query's sums to the next in the output.
    pub out_stride: usize,
    /// Coordinates a row.
    pub d: usize,
}

#[cfg(target_arch = "x86_64")]
impl WeightedCodes<'_> {
    /// Whether `g` weight sets and sums in `out_len` values fit the buffers
    /// at `bits` bits ([`runs_fit`]).
    pub(crate) fn fit(&self, bits: u8, g: usize, out_len: usize) -> bool {
        runs_fit(
            self.n,
            self.stride,
            packed_len(self.d, bits),
            self.rows.len(),
        ) && runs_fit(g, self.w_stride, self.n, self.weights.len())
            && runs_fit(g, self.out_stride, self.d, out_len)
    }
}

/// Rows of codes (and, for prod values, sign sketches) with one weight set
/// per query vector: the value side of attention for several queries.
#[derive(Clone, Copy)]
pub(crate) struct WeightedRows<'a> {
    /// Packed codes, row `t` at `t·code_stride`.
    pub codes: &'a [u8],
    /// Bytes from one row of codes to the next.
    pub code_stride: usize,
    /// Sign sketches, row `t` at `t·sign_stride` (empty without).
    pub signs: &'a [u8],
    /// Bytes from one sketch to the next.
    pub sign_stride: usize,
    /// Rows.
    pub n: usize,
    /// Query `h`'s weights of the codes: `weights[h·w_stride..][..n]`.
    pub weights: &'a [f32],
    /// Query `h`'s weights of the signs, laid out as `weights` (empty
    /// without signs).
    pub sign_weights: &'a [f32],
    /// From one query's weights to the next.
    pub w_stride: usize,
}

#[cfg(target_arch = "x86_64")]
impl WeightedRows<'_> {
    /// Whether `g` weight sets over rows of `d` `bits`-bit codes and `m`
    /// signs, with sums `out_stride` apart in `out_len` values (`d + m` a
    /// set), fit the buffers ([`runs_fit`]).
    pub(crate) fn fit(
        &self,
        bits: u8,
        (d, m): (usize, usize),
        g: usize,
        out: (usize, usize),
    ) -> bool {
        let (out_len, out_stride) = out;
        runs_fit(
            self.n,
            self.code_stride,
            packed_len(d, bits),
            self.codes.len(),
        ) && runs_fit(self.n, self.sign_stride, m.div_ceil(8), self.signs.len())
            && runs_fit(g, self.w_stride, self.n, self.weights.len())
            && (m == 0 || runs_fit(g, self.w_stride, self.n, self.sign_weights.len()))
            && runs_fit(g, out_stride, d + m, out_len)
    }
}

/// [`accumulate_rows_in`] (and, with signs, the sign sums of
/// [`accumulate_rows_and_signs_in`]) for `g` weight sets over the same
/// rows: query `h` adds into `acc[h·acc_stride..][..dim]` (codes) and
/// `acc[h·acc_stride + dim..][..m]` (signs, `m = 8·sign bytes`; `m = 0`
/// without). AVX-512 unpacks and looks up each row's codes once for up to
/// four queries; elsewhere, and for a lone query, the queries run one after
/// the other over rows that stay in cache.
///
/// # Errors
/// As [`accumulate_rows_and_signs_in`]; [`Error::BufferTooShort`] if the
/// weights or `acc` are short.
#[allow(clippy::too_many_arguments)]
pub(crate) fn accumulate_multi_in(
    backend: Checked,
    cb: &Codebook,
    rows: &WeightedRows<'_>,
    g: usize,
    dim: usize,
    m: usize,
    acc: &mut [f32],
    acc_stride: usize,
) -> Result<(), Error> {
    let Some(last) = g.checked_sub(1) else {
        return Ok(());
    };
    let r = rows;
    let n = r.n;
    check_rows(packed_len(dim, cb.bits()), r.codes.len(), r.code_stride, n)?;
    need(last * r.w_stride + n, r.weights.len())?;
    need(last * acc_stride + dim + m, acc.len())?;
    if m > 0 {
        check_rows(m.div_ceil(8), r.signs.len(), r.sign_stride, n)?;
        need(last * r.w_stride + n, r.sign_weights.len())?;
    }
    if r.w_stride < n || acc_stride < dim + m {
        return Err(Error::InvalidParameter(
            "overlapping weight or accumulator strides",
        ));
    }
    let mut h = 0;
    while h < g {
        // Prod values with a sign per coordinate: codes and signs in one
        // pass, for a lone query too (KQV at 4 bits decoded 1.3× faster
        // that way than with the single-query kernels; 1–3-bit codes no
        // slower). Plain codes of a lone query at up to 4 bits keep the
        // single-query kernels (2 and 3 bits were slower in the shared
        // one once the cache was out of L2).
        let shared = g > 1 || matches!(cb.bits(), 5 | 6) || m == dim;
        #[cfg(target_arch = "x86_64")]
        let left = g - h;
        // Four queries or more with signs back to back: codes and signs in
        // separate passes of four (the sign tables made the sign pass
        // cheap; KQV n = 4 at g = 4 spent 12 % less on values than in two
        // fused passes of two, which decode every code twice).
        #[cfg(target_arch = "x86_64")]
        let separate = left >= GROUP && avx512::sign_tables::takes(m, r.sign_stride);
        #[cfg(target_arch = "x86_64")]
        if m == dim && shared && !separate {
            // Balanced groups (4 = 2 + 2, not 3 + 1): each costs a pass.
            let k = left.div_ceil(left.div_ceil(avx512::multi::MAX_FUSED_GROUP));
            let part = WeightedRows {
                weights: &r.weights[h * r.w_stride..],
                sign_weights: &r.sign_weights[h * r.w_stride..],
                ..*r
            };
            let a = &mut acc[h * acc_stride..];
            if avx512::multi::accumulate_fused(backend, cb, &part, a, acc_stride, dim, k) {
                h += k;
                continue;
            }
        }
        let k = (g - h).min(GROUP);
        let w = &r.weights[h * r.w_stride..];
        let a = &mut acc[h * acc_stride..];
        if k == 1 && !shared {
            // One query: the single-query kernels (fused codes and signs).
            let (out, sk) = a[..dim + m].split_at_mut(dim);
            if m > 0 {
                let one = SignedRows {
                    codes: r.codes,
                    code_stride: r.code_stride,
                    weights: &w[..n],
                    signs: r.signs,
                    sign_stride: r.sign_stride,
                    sign_weights: &r.sign_weights[h * r.w_stride..][..n],
                };
                accumulate_rows_and_signs_in(backend, cb, &one, out, sk)?;
            } else {
                accumulate_rows_in(backend, cb, r.codes, r.code_stride, &w[..n], out)?;
            }
            h += 1;
            continue;
        }
        #[cfg(target_arch = "x86_64")]
        let codes_done = {
            let rows = WeightedCodes {
                rows: r.codes,
                stride: r.code_stride,
                n,
                weights: w,
                w_stride: r.w_stride,
                out_stride: acc_stride,
                d: dim,
            };
            avx512::multi::accumulate_rows(backend, cb, &rows, a, k)
                || avx2::accumulate_rows_multi(backend, cb, &rows, a, k)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let codes_done = false;
        if !codes_done {
            for j in 0..k {
                let wj = &w[j * r.w_stride..][..n];
                let out = &mut a[j * acc_stride..][..dim];
                accumulate_rows_in(backend, cb, r.codes, r.code_stride, wj, out)?;
            }
        }
        if m > 0 {
            let sw = &r.sign_weights[h * r.w_stride..];
            let sk = &mut a[dim..];
            #[cfg(target_arch = "x86_64")]
            let signs_done = {
                let sets = crate::qjl::SignSets {
                    signs: r.signs,
                    sign_stride: r.sign_stride,
                    n,
                    weights: sw,
                    w_stride: r.w_stride,
                    acc_stride,
                    m,
                };
                avx512::multi::accumulate_signs(backend, &sets, sk, k)
                    || crate::qjl::avx2_accumulate_signs_multi(backend, &sets, sk, k)
            };
            #[cfg(not(target_arch = "x86_64"))]
            let signs_done = false;
            if !signs_done {
                for j in 0..k {
                    let wj = &sw[j * r.w_stride..][..n];
                    let out = &mut sk[j * acc_stride..][..m];
                    crate::qjl::accumulate_signs_rows_in(backend, r.signs, r.sign_stride, wj, out)?;
                }
            }
        }
        h += k;
    }
    Ok(())
}

/// `Σ a[j]·b[j]` of two uncompressed f32 rows on the detected backend: the
/// reference that [`dot`] is measured against (and a building block for
/// attention on uncompressed data). Within `1e-5 · Σ|a·b|` of the scalar
/// sum on every backend.
///
/// # Errors
/// [`Error::LengthMismatch`] if the lengths differ.
///
/// ```
/// let d = tqkv::codebook::dot_f32(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0])?;
/// assert_eq!(d, 32.0);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn dot_f32(a: &[f32], b: &[f32]) -> Result<f32, Error> {
    dot_f32_on(Backend::detect(), a, b)
}

/// [`dot_f32`] on a chosen backend.
///
/// # Errors
/// As [`dot_f32`], plus [`Error::BackendUnavailable`].
pub fn dot_f32_on(backend: Backend, a: &[f32], b: &[f32]) -> Result<f32, Error> {
    dot_f32_in(backend.check()?, a, b)
}

/// [`dot_f32_on`] on a backend already checked.
pub(crate) fn dot_f32_in(backend: Checked, a: &[f32], b: &[f32]) -> Result<f32, Error> {
    if a.len() != b.len() {
        return Err(Error::LengthMismatch {
            expected: a.len(),
            found: b.len(),
        });
    }
    on_backend!(
        backend,
        a.iter().zip(b).map(|(x, y)| x * y).sum(),
        dot_f32(a, b)
    )
}

#[cfg(test)]
mod tests;
