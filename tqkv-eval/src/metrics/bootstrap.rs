//! Percentile bootstrap confidence intervals.

use super::median_finite;
use tqkv::Error;
use tqkv::rng::SplitMix64;

/// What a bootstrap interval is computed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Statistic {
    /// The median of one sample.
    Median,
    /// The arithmetic mean of one sample.
    Mean,
    /// `median(a) / median(b)` of two samples, each resampled on its own.
    RatioOfMedians,
}

impl Statistic {
    fn groups(self) -> usize {
        match self {
            Statistic::Median | Statistic::Mean => 1,
            Statistic::RatioOfMedians => 2,
        }
    }

    /// The statistic of `groups` (reordered in place; finite, non-empty).
    fn eval(self, groups: &mut [Vec<f64>]) -> f64 {
        match self {
            Statistic::Median => median_finite(&mut groups[0]),
            Statistic::Mean => groups[0].iter().sum::<f64>() / groups[0].len() as f64,
            Statistic::RatioOfMedians => {
                let (a, b) = groups.split_at_mut(1);
                median_finite(&mut a[0]) / median_finite(&mut b[0])
            }
        }
    }
}

/// A confidence interval around a point estimate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConfidenceInterval {
    /// The statistic of the samples themselves.
    pub estimate: f64,
    /// Lower end.
    pub lower: f64,
    /// Upper end.
    pub upper: f64,
    /// Coverage asked for, e.g. 0.95.
    pub level: f64,
}

/// A percentile bootstrap interval of `statistic` over `samples` (one sample
/// for [`Statistic::Median`] and [`Statistic::Mean`], two for
/// [`Statistic::RatioOfMedians`]).
///
/// Each of `resamples` rounds draws every sample anew, with replacement and
/// its own size, from the crate's [`SplitMix64`] seeded with `seed` (index
/// `⌊u·n / 2^64⌋` of each 64-bit word `u`), and evaluates the statistic. The
/// interval runs from the `(1 − level)/2` to the `(1 + level)/2` quantile of
/// those values (order statistics at `⌊α·B⌋` and `⌈(1 − α)·B⌉ − 1`, `α =
/// (1 − level)/2`). Rounds whose statistic is not finite (a ratio over a zero
/// median) sort to the ends (±∞, NaN last) and so widen the interval rather
/// than vanish. The same seed gives the same interval.
///
/// # Errors
/// [`Error::InvalidParameter`] if the number of samples does not fit the
/// statistic, a sample is empty, `level` is not inside (0, 1) or
/// `resamples` is 0; [`Error::NonFinite`] on a NaN or an infinity.
///
/// ```
/// use tqkv_eval::metrics::{bootstrap_ci, Statistic};
///
/// let x: Vec<f64> = (0..101).map(f64::from).collect();
/// let ci = bootstrap_ci(&[&x], Statistic::Median, 0.95, 2000, 7)?;
/// assert_eq!(ci.estimate, 50.0);
/// assert!(ci.lower < 50.0 && 50.0 < ci.upper && ci.upper - ci.lower < 30.0);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn bootstrap_ci(
    samples: &[&[f64]],
    statistic: Statistic,
    level: f64,
    resamples: usize,
    seed: u64,
) -> Result<ConfidenceInterval, Error> {
    if samples.len() != statistic.groups() {
        return Err(Error::InvalidParameter(
            "wrong number of samples for the statistic",
        ));
    }
    if samples.iter().any(|s| s.is_empty()) {
        return Err(Error::InvalidParameter("empty sample"));
    }
    if !samples.iter().all(|s| s.iter().all(|v| v.is_finite())) {
        return Err(Error::NonFinite);
    }
    // `!(0 < level < 1)` also rejects a NaN level.
    if !(level > 0.0 && level < 1.0) {
        return Err(Error::InvalidParameter("level outside (0, 1)"));
    }
    if resamples == 0 {
        return Err(Error::InvalidParameter("no resamples"));
    }
    let mut groups: Vec<Vec<f64>> = samples.iter().map(|s| s.to_vec()).collect();
    let estimate = statistic.eval(&mut groups);
    let mut rng = SplitMix64::new(seed);
    let mut stats = vec![0.0f64; resamples];
    for s in stats.iter_mut() {
        for (g, src) in groups.iter_mut().zip(samples) {
            for v in g.iter_mut() {
                let at = ((rng.next_u64() as u128 * src.len() as u128) >> 64) as usize;
                *v = src[at];
            }
        }
        *s = statistic.eval(&mut groups);
    }
    stats.sort_unstable_by(f64::total_cmp);
    let alpha = (1.0 - level) / 2.0;
    let b = resamples as f64;
    let lo = ((alpha * b) as usize).min(resamples - 1);
    let hi = (libm::ceil((1.0 - alpha) * b) as usize)
        .saturating_sub(1)
        .clamp(lo, resamples - 1);
    Ok(ConfidenceInterval {
        estimate,
        lower: stats[lo],
        upper: stats[hi],
        level,
    })
}
