//! Quality measures of a quantised KV cache and the statistics to compare
//! schemes (the evaluation's definitions; `ARCHITECTURE.md` at the
//! repository root explains them).
//!
//! - [`kl_attention`]: KL(p_ref ‖ p_quant) between the softmax distributions
//!   of two score vectors (log-sum-exp, f64 accumulation), and
//!   [`kl_probabilities`] when the quantised side comes as probabilities;
//! - [`Geometric`]: direction (1 − cos), norm ratio and relative L2 error of
//!   one reconstructed vector;
//! - [`ErrorVector`]: the 6D error vector and its norm, the "6D distance";
//! - [`mann_whitney`] / [`mann_whitney_in`]: Mann–Whitney U with tie-corrected
//!   Z, two-sided p-value and effect size r = Z/√N;
//! - [`median`] and [`bootstrap_ci`]: percentile bootstrap
//!   confidence intervals of a median, a mean or a ratio of medians;
//! - [`synth`]: seeded synthetic keys, values and queries.
//!
//! Arithmetic goes through `libm` (correctly rounded where it matters, the
//! same on every platform) so that figures are reproducible across CPUs.
//!
//! ```
//! use tqkv_eval::metrics::{kl_attention, Geometric};
//!
//! // Two logits vectors that differ only by a constant give the same softmax.
//! assert_eq!(kl_attention(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0])?, 0.0);
//! assert!(kl_attention(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0])? > 0.5);
//!
//! let g = Geometric::of(&[3.0, 4.0], &[3.0, 4.5])?;
//! assert!((g.norm_ratio - 5.4083 / 5.0).abs() < 1e-4);
//! assert!((g.relative_l2 - 0.1).abs() < 1e-12);
//! # Ok::<(), tqkv::Error>(())
//! ```

mod bootstrap;
pub mod synth;

pub use bootstrap::{ConfidenceInterval, Statistic, bootstrap_ci};

use tqkv::Error;

fn same_len(a: usize, b: usize) -> Result<(), Error> {
    if a != b {
        return Err(Error::LengthMismatch {
            expected: a,
            found: b,
        });
    }
    Ok(())
}

/// `max + ln Σ exp(x − max)` in f64, for finite `x` (not empty).
fn log_sum_exp(x: &[f32]) -> f64 {
    let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let sum: f64 = x.iter().map(|&v| libm::exp(v as f64 - max)).sum();
    max + libm::log(sum)
}

/// KL(p_ref ‖ p_quant) in nats, where `p = softmax(scores)`: the attention
/// distributions of one query over the same keys, exact and quantised.
///
/// Pass the logits as attention sees them (`q·k/√d`). Both log-partition
/// functions are computed by log-sum-exp in f64, and the divergence is
/// `Σ p_i · ((a_i − lse_a) − (b_i − lse_b))`, clamped at 0 against rounding.
/// Identical inputs give exactly 0; scores that differ by a constant give
/// the same distribution and a KL at the level of f64 rounding.
///
/// # Errors
/// [`Error::LengthMismatch`] if the lengths differ,
/// [`Error::InvalidParameter`] if they are empty, [`Error::NonFinite`] on a
/// NaN or an infinity.
///
/// ```
/// // p = (½, ½), q = (¾, ¼): KL = ½ ln(⅔) + ½ ln 2 = ½ ln(4/3).
/// let q = [3f32.ln(), 0.0];
/// let kl = tqkv_eval::metrics::kl_attention(&[0.0, 0.0], &q)?;
/// assert!((kl - 0.5 * (4.0f64 / 3.0).ln()).abs() < 1e-7);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn kl_attention(scores_ref: &[f32], scores_quant: &[f32]) -> Result<f64, Error> {
    same_len(scores_ref.len(), scores_quant.len())?;
    if scores_ref.is_empty() {
        return Err(Error::InvalidParameter("no scores"));
    }
    if !scores_ref.iter().chain(scores_quant).all(|v| v.is_finite()) {
        return Err(Error::NonFinite);
    }
    let la = log_sum_exp(scores_ref);
    let lb = log_sum_exp(scores_quant);
    let mut kl = 0.0f64;
    for (&a, &b) in scores_ref.iter().zip(scores_quant) {
        let log_p = a as f64 - la;
        let log_q = b as f64 - lb;
        kl += libm::exp(log_p) * (log_p - log_q);
    }
    Ok(kl.max(0.0))
}

/// KL(p_ref ‖ p_quant) in nats where `p_ref = softmax(scores_ref)` and
/// `p_quant` is given as probabilities, as a compressed cache's attention
/// returns them (`tqkv::attention::probabilities_on`).
///
/// `probs_quant` is renormalised in f64 (an f32 softmax sums to 1 only
/// within rounding). A probability that underflowed to 0 is read as the
/// smallest positive f32 (1.4e-45): its term is bounded by
/// `p_ref,i · (ln p_ref,i + 103)`, negligible unless the reference puts
/// real mass there — in which case the divergence is large either way.
///
/// # Errors
/// As [`kl_attention`]; [`Error::InvalidParameter`] if a probability is
/// negative or they sum to 0.
///
/// ```
/// use tqkv_eval::metrics::{kl_attention, kl_probabilities};
///
/// // p_quant = softmax(ln 3, 0) = (¾, ¼).
/// let kl = kl_probabilities(&[0.0, 0.0], &[0.75, 0.25])?;
/// let same = kl_attention(&[0.0, 0.0], &[3f32.ln(), 0.0])?;
/// assert!((kl - same).abs() < 1e-7);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn kl_probabilities(scores_ref: &[f32], probs_quant: &[f32]) -> Result<f64, Error> {
    same_len(scores_ref.len(), probs_quant.len())?;
    if scores_ref.is_empty() {
        return Err(Error::InvalidParameter("no scores"));
    }
    if !scores_ref.iter().chain(probs_quant).all(|v| v.is_finite()) {
        return Err(Error::NonFinite);
    }
    if probs_quant.iter().any(|&p| p < 0.0) {
        return Err(Error::InvalidParameter("a negative probability"));
    }
    let total: f64 = probs_quant.iter().map(|&p| p as f64).sum();
    if total <= 0.0 {
        return Err(Error::InvalidParameter("probabilities sum to 0"));
    }
    let la = log_sum_exp(scores_ref);
    let ln_total = libm::log(total);
    let floor = f32::from_bits(1) as f64;
    let mut kl = 0.0f64;
    for (&a, &p) in scores_ref.iter().zip(probs_quant) {
        let log_p = a as f64 - la;
        let log_q = libm::log((p as f64).max(floor)) - ln_total;
        kl += libm::exp(log_p) * (log_p - log_q);
    }
    Ok(kl.max(0.0))
}

/// Geometric error of a reconstruction `x̂` of a vector `x`.
///
/// ```
/// use tqkv_eval::metrics::Geometric;
///
/// // Same direction, half the length.
/// let g = Geometric::of(&[2.0, 0.0], &[1.0, 0.0])?;
/// assert_eq!((g.direction, g.norm_ratio, g.relative_l2), (0.0, 0.5, 0.5));
/// # Ok::<(), tqkv::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Geometric {
    /// `1 − cos∠(x, x̂)`, in `[0, 2]` (0 when the directions agree). Equals
    /// half the squared distance between the two unit directions.
    pub direction: f64,
    /// `‖x̂‖ / ‖x‖` (1 when the lengths agree).
    pub norm_ratio: f64,
    /// `‖x − x̂‖ / ‖x‖`.
    pub relative_l2: f64,
}

impl Geometric {
    /// Measures `x_hat` against `x`, in f64.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if the lengths differ, [`Error::NonFinite`]
    /// on a NaN or an infinity, [`Error::InvalidParameter`] if `x` or
    /// `x_hat` is the zero vector (no direction to compare).
    pub fn of(x: &[f32], x_hat: &[f32]) -> Result<Geometric, Error> {
        same_len(x.len(), x_hat.len())?;
        if !x.iter().chain(x_hat).all(|v| v.is_finite()) {
            return Err(Error::NonFinite);
        }
        let (mut xx, mut yy, mut xy, mut ee) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for (&a, &b) in x.iter().zip(x_hat) {
            let (a, b) = (a as f64, b as f64);
            xx += a * a;
            yy += b * b;
            xy += a * b;
            ee += (a - b) * (a - b);
        }
        if xx == 0.0 || yy == 0.0 {
            return Err(Error::InvalidParameter("zero vector"));
        }
        let (nx, ny) = (libm::sqrt(xx), libm::sqrt(yy));
        let cos = (xy / (nx * ny)).clamp(-1.0, 1.0);
        Ok(Geometric {
            direction: 1.0 - cos,
            norm_ratio: ny / nx,
            relative_l2: libm::sqrt(ee) / nx,
        })
    }
}

/// The 6D error vector of one attention query, and its scaled
/// norm, the "6D distance".
///
/// The six raw components:
///
/// | field | measure |
/// | --- | --- |
/// | `k_direction` | mean over the keys of `1 − cos∠(k, k̂)` |
/// | `k_norm` | mean over the keys of `|‖k̂‖/‖k‖ − 1|` |
/// | `v_direction` | the same for the values |
/// | `v_norm` | the same for the values |
/// | `kl` | [`kl_attention`] of the query's scores, nats |
/// | `output` | `‖o − ô‖ / ‖o‖` of the attention output |
///
/// They live on two different scales: the norm and output errors are
/// relative errors (first order in the perturbation), while `1 − cos` and KL
/// are second order (`1 − cos ≈ θ²/2`; `KL ≈ ½·Var_p(δ)` for a logit
/// perturbation `δ`). So [`distance`](Self::distance) first maps each to a
/// first-order relative error and then takes the Euclidean norm:
///
/// `distance² = 2·k_direction + k_norm² + 2·v_direction + v_norm² + 2·kl + output²`
///
/// `2·(1 − cos)` is exactly the squared distance between the unit
/// directions (so `2·k_direction` is their mean square), and `√(2·KL)` is,
/// to second order, the p-weighted RMS error of the logits in nats, and
/// bounds the total variation distance from above (Pinsker: TV ≤ √(KL/2)).
/// Every mapped component is thus a dimensionless relative error where 0.1
/// means "10% off"; halving every error halves the distance, and no
/// component dominates only because of its units.
///
/// ```
/// use tqkv_eval::metrics::ErrorVector;
///
/// let e = ErrorVector {
///     k_direction: 0.005, k_norm: 0.0, v_direction: 0.0, v_norm: 0.0,
///     kl: 0.0, output: 0.0,
/// };
/// // A 10% chord between the unit key directions reads as 0.1.
/// assert!((e.distance() - 0.1).abs() < 1e-12);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ErrorVector {
    /// Mean `1 − cos` between keys and their reconstructions.
    pub k_direction: f64,
    /// Mean `|‖k̂‖/‖k‖ − 1|`.
    pub k_norm: f64,
    /// Mean `1 − cos` between values and their reconstructions.
    pub v_direction: f64,
    /// Mean `|‖v̂‖/‖v‖ − 1|`.
    pub v_norm: f64,
    /// KL(p_ref ‖ p_quant) of the attention distribution, nats.
    pub kl: f64,
    /// Relative L2 error of the attention output.
    pub output: f64,
}

impl ErrorVector {
    /// The six components on the common first-order scale, in field order:
    /// `√(2·k_direction), k_norm, √(2·v_direction), v_norm, √(2·kl), output`.
    pub fn scaled(&self) -> [f64; 6] {
        [
            libm::sqrt(2.0 * self.k_direction),
            self.k_norm,
            libm::sqrt(2.0 * self.v_direction),
            self.v_norm,
            libm::sqrt(2.0 * self.kl),
            self.output,
        ]
    }

    /// The 6D distance: the Euclidean norm of [`scaled`](Self::scaled).
    pub fn distance(&self) -> f64 {
        libm::sqrt(self.scaled().iter().map(|c| c * c).sum())
    }
}

/// The outcome of a Mann–Whitney U test of `a` against `b`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MannWhitney {
    /// `U` of `a`: the number of pairs `(a_i, b_j)` with `a_i > b_j`, ties
    /// counting ½ (so `U_a + U_b = n_a·n_b`).
    pub u: f64,
    /// `(U − n_a·n_b/2) / σ` with the tie-corrected
    /// `σ² = n_a·n_b/12 · ((N + 1) − Σ(t³ − t)/(N(N − 1)))`, no continuity
    /// correction; positive when `a` tends to exceed `b`; 0 when every
    /// value ties.
    pub z: f64,
    /// Two-sided p-value of the normal approximation, `erfc(|Z|/√2)`.
    pub p_value: f64,
    /// Effect size `r = Z/√N`, `N = n_a + n_b`.
    pub effect_size: f64,
}

/// Mann–Whitney U test of `a` against `b` with ranks computed in `scratch`
/// (at least `a.len() + b.len()` values; no allocation).
///
/// # Errors
/// [`Error::InvalidParameter`] if `a` or `b` is empty, [`Error::NonFinite`]
/// on a NaN or an infinity, [`Error::BufferTooShort`] if `scratch` is short.
///
/// ```
/// use tqkv_eval::metrics::mann_whitney_in;
///
/// // Every a exceeds every b: U = 3·3 = 9.
/// let mut scratch = [0.0; 6];
/// let t = mann_whitney_in(&[4.0, 5.0, 6.0], &[1.0, 2.0, 3.0], &mut scratch)?;
/// assert_eq!(t.u, 9.0);
/// assert!(t.z > 0.0 && t.p_value < 0.06);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn mann_whitney_in(a: &[f64], b: &[f64], scratch: &mut [f64]) -> Result<MannWhitney, Error> {
    if a.is_empty() || b.is_empty() {
        return Err(Error::InvalidParameter("empty sample"));
    }
    if !a.iter().chain(b).all(|v| v.is_finite()) {
        return Err(Error::NonFinite);
    }
    let (na, nb) = (a.len(), b.len());
    let n = na + nb;
    let found = scratch.len();
    let scratch = scratch
        .get_mut(..n)
        .ok_or(Error::BufferTooShort { needed: n, found })?;
    let (sa, sb) = scratch.split_at_mut(na);
    sa.copy_from_slice(a);
    sb.copy_from_slice(b);
    sa.sort_unstable_by(f64::total_cmp);
    sb.sort_unstable_by(f64::total_cmp);
    // Walk both sorted samples one distinct value at a time: a tie group of
    // t values takes the ranks pos+1 … pos+t, each the midrank pos + (t+1)/2.
    let (mut i, mut j, mut pos) = (0usize, 0usize, 0usize);
    let (mut rank_sum_a, mut ties) = (0.0f64, 0.0f64);
    while i < na || j < nb {
        let v = match (sa.get(i), sb.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => break,
        };
        let ca = sa[i..].iter().take_while(|&&x| x == v).count();
        let cb = sb[j..].iter().take_while(|&&y| y == v).count();
        let t = (ca + cb) as f64;
        rank_sum_a += ca as f64 * (pos as f64 + (t + 1.0) / 2.0);
        ties += t * t * t - t;
        pos += ca + cb;
        i += ca;
        j += cb;
    }
    let (fa, fb, fnn) = (na as f64, nb as f64, n as f64);
    let u = rank_sum_a - fa * (fa + 1.0) / 2.0;
    let tie_term = if n > 1 {
        ties / (fnn * (fnn - 1.0))
    } else {
        0.0
    };
    let var = fa * fb / 12.0 * ((fnn + 1.0) - tie_term);
    let z = if var > 0.0 {
        (u - fa * fb / 2.0) / libm::sqrt(var)
    } else {
        0.0
    };
    Ok(MannWhitney {
        u,
        z,
        p_value: statrs::function::erf::erfc(z.abs() / core::f64::consts::SQRT_2).min(1.0),
        effect_size: z / libm::sqrt(fnn),
    })
}

/// [`mann_whitney_in`] with its scratch allocated.
///
/// # Errors
/// As [`mann_whitney_in`] (never `BufferTooShort`).
///
/// ```
/// let t = tqkv_eval::metrics::mann_whitney(&[1.0, 2.0], &[1.0, 2.0])?;
/// assert_eq!((t.u, t.z, t.p_value), (2.0, 0.0, 1.0));
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn mann_whitney(a: &[f64], b: &[f64]) -> Result<MannWhitney, Error> {
    let mut scratch = vec![0.0f64; a.len() + b.len()];
    mann_whitney_in(a, b, &mut scratch)
}

/// The median of `values`, reordering them in place (no allocation): the
/// middle value, or the mean of the two middle values for an even count.
///
/// # Errors
/// [`Error::InvalidParameter`] if `values` is empty, [`Error::NonFinite`]
/// on a NaN or an infinity.
///
/// ```
/// assert_eq!(tqkv_eval::metrics::median(&mut [3.0, 1.0, 2.0])?, 2.0);
/// assert_eq!(tqkv_eval::metrics::median(&mut [4.0, 1.0, 3.0, 2.0])?, 2.5);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn median(values: &mut [f64]) -> Result<f64, Error> {
    if values.is_empty() {
        return Err(Error::InvalidParameter("empty sample"));
    }
    if !values.iter().all(|v| v.is_finite()) {
        return Err(Error::NonFinite);
    }
    Ok(median_finite(values))
}

/// The median of a non-empty slice of finite values.
fn median_finite(values: &mut [f64]) -> f64 {
    let n = values.len();
    let (lower, &mut upper, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    if !n.is_multiple_of(2) {
        upper
    } else {
        let below = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        below / 2.0 + upper / 2.0
    }
}
