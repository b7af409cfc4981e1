//! The Lloyd–Max solver: optimal scalar quantisers for symmetric densities.
//!
//! Everything is computed in f64 with `libm` only, from closed forms of the
//! partial moments (no sampling):
//!
//! - the coordinate of a uniform point on `S^{d−1}` has density
//!   `f(t) = C_d (1 − t²)^((d−3)/2)` on `[−1, 1]`, i.e. `(1 + t)/2` follows
//!   Beta(a, a) with `a = (d − 1)/2`. Its CDF is the regularised incomplete
//!   beta function `I_{(1+t)/2}(a, a)`; its partial first moment is
//!   `−C_d (1 − t²)^((d−1)/2)/(d − 1)`; its partial second moment is
//!   `F_d(t) − ((d − 1)/d) F_{d+2}(t)` (write `t² = 1 − (1 − t²)`);
//! - the standard normal has `Φ(t)`, `−φ(t)` and `Φ(t) − t φ(t)`.
//!
//! Lloyd's iteration alternates centroids = conditional means of the cells and
//! thresholds = midpoints of neighbouring centroids. It starts from the
//! asymptotically optimal (companding) thresholds, the quantiles of the
//! density `∝ f^{1/3}`, which for both families is a member of the same family
//! (`a/3` for the sphere, variance 3 for the normal), so even 256 levels
//! converge in a few hundred iterations. Symmetry halves the work: only cells
//! below 0 are computed, where every probability is a small number computed
//! directly rather than as `1 −` something.

use core::f64::consts::PI;

/// Highest number of Lloyd iterations before the solver settles for what it
/// has (never reached in the tests; each iteration moves every centroid).
const MAX_ITERATIONS: usize = 20_000;

/// Residual (in units of σ) at which the thresholds count as solved: the
/// partial moments are accurate to about 1e-12 relative (the `lgamma`
/// prefactor of the incomplete beta), so asking for less would only chase
/// rounding noise.
const NEWTON_TOL: f64 = 1e-12;

/// A density symmetric about 0, by its partial moments from the lower end of
/// the support.
pub(crate) trait Density {
    /// Upper end of the support (the lower end is its negative).
    fn upper(&self) -> f64;
    /// Standard deviation.
    fn sigma(&self) -> f64;
    /// The density `f(t)`.
    fn pdf(&self, t: f64) -> f64;
    /// `P(T ≤ t)`.
    fn cdf(&self, t: f64) -> f64;
    /// `∫_{lo}^{t} s f(s) ds`.
    fn first_moment(&self, t: f64) -> f64;
    /// `∫_{lo}^{t} s² f(s) ds`.
    fn second_moment(&self, t: f64) -> f64;
    /// CDF of the companding density `∝ f^{1/3}` (the initial point density).
    fn companding_cdf(&self, t: f64) -> f64;
}

/// One coordinate of a uniform point on the sphere `S^{dim−1}` (`dim ≥ 2`).
pub(crate) struct Sphere {
    dim: f64,
    a: f64,
    ln_c: f64,
}

impl Sphere {
    pub(crate) fn new(dim: usize) -> Sphere {
        let d = dim as f64;
        let a = (d - 1.0) / 2.0;
        let ln_c = libm::lgamma(d / 2.0) - 0.5 * libm::log(PI) - libm::lgamma(a);
        Sphere { dim: d, a, ln_c }
    }
}

impl Density for Sphere {
    fn upper(&self) -> f64 {
        1.0
    }

    fn sigma(&self) -> f64 {
        libm::sqrt(1.0 / self.dim)
    }

    fn pdf(&self, t: f64) -> f64 {
        let one_minus = (1.0 - t) * (1.0 + t);
        if one_minus <= 0.0 {
            return 0.0;
        }
        libm::exp(self.ln_c + (self.a - 1.0) * libm::log(one_minus))
    }

    fn cdf(&self, t: f64) -> f64 {
        beta_inc(self.a, self.a, (1.0 + t) / 2.0)
    }

    fn first_moment(&self, t: f64) -> f64 {
        let one_minus = (1.0 - t) * (1.0 + t);
        if one_minus <= 0.0 {
            return 0.0;
        }
        -libm::exp(self.ln_c + self.a * libm::log(one_minus)) / (self.dim - 1.0)
    }

    fn second_moment(&self, t: f64) -> f64 {
        // By parts with g = −M (g' = −t·f): ∫ s² f = t·M(t) + ∫ g, and
        // ∫_{−1}^t g = F_{d+2}(t)/d. No difference of two CDFs, so no
        // cancellation at large d.
        let next = self.a + 1.0;
        t * self.first_moment(t) + beta_inc(next, next, (1.0 + t) / 2.0) / self.dim
    }

    fn companding_cdf(&self, t: f64) -> f64 {
        // f^{1/3} ∝ (1 − t²)^{(d−3)/6}: Beta(b, b) with b = (d − 3)/6 + 1.
        let b = (self.dim - 3.0) / 6.0 + 1.0;
        beta_inc(b, b, (1.0 + t) / 2.0)
    }
}

/// The standard normal N(0, 1).
pub(crate) struct Normal;

fn phi(t: f64) -> f64 {
    libm::exp(-0.5 * t * t) / libm::sqrt(2.0 * PI)
}

fn big_phi(t: f64) -> f64 {
    0.5 * libm::erfc(-t / core::f64::consts::SQRT_2)
}

impl Density for Normal {
    fn upper(&self) -> f64 {
        f64::INFINITY
    }

    fn sigma(&self) -> f64 {
        1.0
    }

    fn pdf(&self, t: f64) -> f64 {
        phi(t)
    }

    fn cdf(&self, t: f64) -> f64 {
        big_phi(t)
    }

    fn first_moment(&self, t: f64) -> f64 {
        if t == f64::NEG_INFINITY { 0.0 } else { -phi(t) }
    }

    fn second_moment(&self, t: f64) -> f64 {
        if t == f64::NEG_INFINITY {
            0.0
        } else {
            big_phi(t) - t * phi(t)
        }
    }

    fn companding_cdf(&self, t: f64) -> f64 {
        big_phi(t / libm::sqrt(3.0))
    }
}

/// The regularised incomplete beta function `I_x(a, b)` (continued fraction,
/// evaluated on the side where it converges fast).
pub(crate) fn beta_inc(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = libm::lgamma(a + b) - libm::lgamma(a) - libm::lgamma(b)
        + a * libm::log(x)
        + b * libm::log1p(-x);
    let front = libm::exp(ln_front);
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_fraction(b, a, 1.0 - x) / b
    }
}

/// The continued fraction of `I_x(a, b)`, by the modified Lentz method.
fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let clamp = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / clamp(1.0 - qab * x / qap);
    let mut h = d;
    // Converges in O(√max(a, b)) steps; 10 000 covers a = 2^15 with room.
    for m in 1..10_000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / clamp(1.0 + aa * d);
        c = clamp(1.0 + aa / c);
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / clamp(1.0 + aa * d);
        c = clamp(1.0 + aa / c);
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// `t ≤ 0` with `cdf(t) = p` (`p ≤ 1/2`), by bisection.
fn quantile(cdf: impl Fn(f64) -> f64, lo: f64, p: f64) -> f64 {
    let (mut lo, mut hi) = (lo, 0.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid == lo || mid == hi {
            break;
        }
        if cdf(mid) < p { lo = mid } else { hi = mid }
    }
    0.5 * (lo + hi)
}

/// Centroids of the cells between consecutive `t` (conditional means), and
/// for Newton the cell probabilities.
fn centroids(density: &impl Density, t: &[f64], c: &mut [f64], p: &mut [f64]) {
    let half = c.len();
    let mut f0 = density.cdf(t[0]);
    let mut m0 = density.first_moment(t[0]);
    for i in 0..half {
        let (f1, m1) = if i + 1 == half {
            (0.5, density.first_moment(0.0))
        } else {
            (density.cdf(t[i + 1]), density.first_moment(t[i + 1]))
        };
        let pi = f1 - f0;
        p[i] = pi;
        c[i] = if pi > 0.0 {
            (m1 - m0) / pi
        } else {
            // An empty cell (only at absurd precisions): keep it ordered.
            0.5 * (t[i].max(-40.0 * density.sigma()) + t[i + 1])
        };
        (f0, m0) = (f1, m1);
    }
}

/// The Lloyd–Max quantiser with `2 · half` levels for `density`: centroids
/// of the lower half in increasing order (the upper half is their mirror
/// image). Returns the number of iterations used.
///
/// Newton's method on the thresholds (the conditions `t_i = (c_{i−1} +
/// c_i)/2` have a tridiagonal Jacobian, since `∂c_i/∂t_i = f(t_i)(c_i −
/// t_i)/P_i` and `∂c_i/∂t_{i+1} = f(t_{i+1})(t_{i+1} − c_i)/P_i`), damped to
/// keep the thresholds ordered, then Lloyd's iteration to polish: plain
/// Lloyd alone needs tens of thousands of iterations at 7–8 bits.
pub(crate) fn solve(density: &impl Density, half: usize, out: &mut [f64]) -> usize {
    let out = &mut out[..half];
    let lo = -density.upper();
    let sigma = density.sigma();
    // Thresholds t[0] = lo < t[1] < … < t[half] = 0.
    let mut t = [0.0f64; 129];
    let t = &mut t[..=half];
    t[0] = lo;
    let finite_lo = if lo.is_finite() { lo } else { -40.0 * sigma };
    for (i, ti) in t.iter_mut().enumerate().take(half).skip(1) {
        let p = i as f64 / (2 * half) as f64;
        *ti = quantile(|x| density.companding_cdf(x), finite_lo, p);
    }
    let mut p = [0.0f64; 128];
    let p = &mut p[..half];
    let mut iterations = 0;

    // Newton.
    let n = half - 1;
    let (mut lower, mut diag, mut upper, mut rhs) =
        ([0.0f64; 128], [0.0f64; 128], [0.0f64; 128], [0.0f64; 128]);
    let mut trial = [0.0f64; 129];
    let mut converged = n == 0;
    let mut prev_worst = f64::INFINITY;
    for _ in 0..60 {
        if n == 0 {
            break;
        }
        iterations += 1;
        centroids(density, t, out, p);
        // Row k (k = 0..n) is the condition for t[k + 1].
        let mut worst = 0.0f64;
        for k in 0..n {
            let i = k + 1;
            let fi = density.pdf(t[i]);
            let dc_prev = fi * (t[i] - out[i - 1]) / p[i - 1]; // ∂c_{i−1}/∂t_i
            let dc_this = fi * (out[i] - t[i]) / p[i]; // ∂c_i/∂t_i
            diag[k] = 1.0 - 0.5 * (dc_prev + dc_this);
            lower[k] = if k > 0 {
                -0.5 * density.pdf(t[i - 1]) * (out[i - 1] - t[i - 1]) / p[i - 1]
            } else {
                0.0
            };
            upper[k] = if k + 1 < n {
                -0.5 * density.pdf(t[i + 1]) * (t[i + 1] - out[i]) / p[i]
            } else {
                0.0
            };
            let r = t[i] - 0.5 * (out[i - 1] + out[i]);
            rhs[k] = -r;
            worst = worst.max(r.abs());
        }
        // Solved, or down to the noise floor of the moments (large dims,
        // where the residual stops shrinking well below any useful size).
        if worst <= NEWTON_TOL * sigma || (worst < 1e-9 * sigma && worst > 0.5 * prev_worst) {
            converged = true;
            break;
        }
        prev_worst = worst;
        // Thomas algorithm (the system is diagonally dominant near the optimum).
        for k in 1..n {
            let w = lower[k] / diag[k - 1];
            diag[k] -= w * upper[k - 1];
            rhs[k] -= w * rhs[k - 1];
        }
        rhs[n - 1] /= diag[n - 1];
        for k in (0..n - 1).rev() {
            rhs[k] = (rhs[k] - upper[k] * rhs[k + 1]) / diag[k];
        }
        // Damp until the thresholds stay ordered inside the support.
        let mut step = 1.0;
        let mut accepted = false;
        for _ in 0..40 {
            trial[..=half].copy_from_slice(t);
            for k in 0..n {
                trial[k + 1] = t[k + 1] + step * rhs[k];
            }
            if trial[..=half].windows(2).all(|w| w[0] < w[1])
                && rhs[..n].iter().all(|v| v.is_finite())
            {
                accepted = true;
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            break;
        }
        t.copy_from_slice(&trial[..=half]);
    }

    // Lloyd polish (and the whole job when Newton could not help).
    let tol = NEWTON_TOL * sigma;
    let polish = if converged { 100 } else { MAX_ITERATIONS };
    for _ in 0..polish {
        iterations += 1;
        let mut moved = 0.0f64;
        let mut previous = [0.0f64; 128];
        previous[..half].copy_from_slice(out);
        centroids(density, t, out, p);
        for i in 0..half {
            moved = moved.max((out[i] - previous[i]).abs());
        }
        for i in 1..half {
            t[i] = 0.5 * (out[i - 1] + out[i]);
        }
        if moved <= tol {
            break;
        }
    }
    iterations
}

/// `E[(T − Q(T))²]` for the quantiser with (all) `centroids` and decision
/// `thresholds` (`len − 1` of them, between neighbours), by the partial
/// moments: `Σ_cells ∫ (t − c)² f`.
pub(crate) fn distortion(density: &impl Density, centroids: &[f64], thresholds: &[f64]) -> f64 {
    let k = centroids.len();
    let lo = -density.upper();
    let edge = |i: usize| -> f64 {
        if i == 0 {
            lo
        } else if i == k {
            -lo
        } else {
            thresholds[i - 1]
        }
    };
    // Cells entirely above 0 are mirrored below it, where the moments are
    // small numbers computed directly.
    let moments = |t: f64| -> (f64, f64, f64) {
        (
            density.cdf(t),
            density.first_moment(t),
            density.second_moment(t),
        )
    };
    let mut total = 0.0;
    for (i, &c) in centroids.iter().enumerate() {
        let (a, b) = (edge(i), edge(i + 1));
        let (a, b, c) = if a >= 0.0 { (-b, -a, -c) } else { (a, b, c) };
        let (p0, m0, s0) = moments(a);
        let (p1, m1, s1) = if b > 0.0 {
            // The cell straddles 0: split it there.
            // By symmetry ∫_0^b = ∫_{−b}^0 for f and t²f, and −∫_{−b}^0
            // for t·f; cumulated from lo that gives these values at b.
            let (ph, _, sh) = moments(0.0);
            let (pu, mu, su) = moments(-b);
            (2.0 * ph - pu, mu, 2.0 * sh - su)
        } else {
            moments(b)
        };
        let p = p1 - p0;
        total += (s1 - s0) - 2.0 * c * (m1 - m0) + c * c * p;
    }
    total
}
