//! Seeded synthetic keys, values and queries for the evaluation.
//!
//! A [`Synthetic`] describes one family of attention heads: the head
//! dimension, the tail weight of the coordinates ([`Tail`]), the rank of the
//! token matrix and a number of outlier key channels. [`Synthetic::fill`]
//! writes any range of tokens of any head and role into a caller buffer,
//! without allocating, and always the same values for the same arguments on
//! every machine (all randomness is [`SplitMix64`] and the arithmetic is
//! plain IEEE f64 through `libm`).
//!
//! - **Full rank**: every coordinate is an independent draw of the tail law,
//!   scaled to unit variance.
//! - **Rank r**: a token is `z·A/√r` with `z ∈ R^r` drawn as above and `A`
//!   an `r × d` matrix of random signs fixed per head and role: the rows of
//!   the `T × d` token matrix `Z·A` span only `r` dimensions, as attention
//!   keys often nearly do. Coordinates keep unit variance.
//! - **Outliers**: `outliers` channels of the keys (the same channels for
//!   every token of a head, chosen by the seed) are scaled ×10, as real keys
//!   have a few channels far larger than the rest. Values and queries have
//!   none.
//!
//! ```
//! use tqkv_eval::metrics::synth::{Role, Synthetic, Tail};
//!
//! let s = Synthetic { dim: 64, tail: Tail::StudentT { nu: 3 }, rank: None, outliers: 2, seed: 1 };
//! let mut keys = vec![0.0f32; 10 * 64];
//! s.fill(Role::Key, 0, 0, &mut keys)?;
//! let mut again = vec![0.0f32; 64];
//! s.fill(Role::Key, 0, 3, &mut again)?; // token 3 alone
//! assert_eq!(&keys[3 * 64..4 * 64], &again[..]);
//! # Ok::<(), tqkv::Error>(())
//! ```

use tqkv::Error;
use tqkv::rng::SplitMix64;

/// Most outlier channels a [`Synthetic`] may have.
pub const MAX_OUTLIERS: usize = 16;

/// Factor of the outlier channels.
pub const OUTLIER_SCALE: f32 = 10.0;

/// Largest rank a low-rank [`Synthetic`] may have.
pub const MAX_RANK: usize = 256;

/// The law of one coordinate (before any mixing), scaled to unit variance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tail {
    /// N(0, 1).
    Gaussian,
    /// Student's t with `nu` degrees of freedom (`nu ≥ 3`, so the variance
    /// is finite), times `√((ν − 2)/ν)`: heavy tails.
    StudentT {
        /// Degrees of freedom.
        nu: u32,
    },
    /// Laplace with scale `1/√2`: exponential tails.
    Laplace,
}

impl Tail {
    /// A short name: `gauss`, `t3`, `t5`, `laplace`.
    pub fn name(self) -> &'static str {
        match self {
            Tail::Gaussian => "gauss",
            Tail::StudentT { nu: 3 } => "t3",
            Tail::StudentT { nu: 5 } => "t5",
            Tail::StudentT { .. } => "t",
            Tail::Laplace => "laplace",
        }
    }
}

/// Which matrix of the head a token row belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Keys (the only role with outlier channels).
    Key,
    /// Values.
    Value,
    /// Queries.
    Query,
}

/// A family of synthetic attention heads (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Synthetic {
    /// Head dimension.
    pub dim: usize,
    /// Law of the coordinates.
    pub tail: Tail,
    /// `None` for full rank, `Some(r)` for rank `r ≤ min(dim, MAX_RANK)`.
    pub rank: Option<usize>,
    /// Number of key channels scaled ×10 (at most [`MAX_OUTLIERS`]).
    pub outliers: usize,
    /// Seed of everything.
    pub seed: u64,
}

/// Uniform in (0, 1), never 0 or 1.
fn open_unit(g: &mut SplitMix64) -> f64 {
    ((g.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// Gaussian draws by Box–Muller, both values of each pair used in turn.
struct Normal {
    rng: SplitMix64,
    spare: Option<f64>,
}

impl Normal {
    fn next(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let rho = libm::sqrt(-2.0 * libm::log(open_unit(&mut self.rng)));
        let angle = 2.0 * core::f64::consts::PI * open_unit(&mut self.rng);
        self.spare = Some(rho * libm::sin(angle));
        rho * libm::cos(angle)
    }

    /// One unit-variance draw of `tail`.
    fn draw(&mut self, tail: Tail) -> f64 {
        match tail {
            Tail::Gaussian => self.next(),
            Tail::StudentT { nu } => {
                let z = self.next();
                let chi2: f64 = (0..nu)
                    .map(|_| {
                        let g = self.next();
                        g * g
                    })
                    .sum();
                let nu = nu as f64;
                z / libm::sqrt(chi2 / nu) * libm::sqrt((nu - 2.0) / nu)
            }
            Tail::Laplace => {
                let u = open_unit(&mut self.rng) - 0.5;
                let b = core::f64::consts::FRAC_1_SQRT_2;
                -b * u.signum() * libm::log(1.0 - 2.0 * u.abs())
            }
        }
    }
}

impl Synthetic {
    /// The seed of one head's and role's stream.
    fn stream(&self, role: Role, head: u64) -> u64 {
        let r = match role {
            Role::Key => 1,
            Role::Value => 2,
            Role::Query => 3,
        };
        let h = SplitMix64::word_at(self.seed, head);
        SplitMix64::word_at(h, r)
    }

    /// The outlier channels of `head` (the first `outliers` entries).
    fn outlier_channels(&self, head: u64) -> [usize; MAX_OUTLIERS] {
        let mut ch = [0usize; MAX_OUTLIERS];
        let base = SplitMix64::word_at(self.stream(Role::Key, head), u64::MAX);
        let mut g = SplitMix64::new(base);
        for k in 0..self.outliers {
            let mut c = (g.next_u64() % self.dim as u64) as usize;
            while ch[..k].contains(&c) {
                c = (c + 1) % self.dim;
            }
            ch[k] = c;
        }
        ch
    }

    /// Writes tokens `first_token, first_token + 1, …` of `head`'s `role`
    /// matrix into `out`, one row of `dim` values per token.
    ///
    /// # Errors
    /// [`Error::InvalidDim`] if `dim` is 0; [`Error::RaggedRows`] unless
    /// `out` is a whole number of rows; [`Error::InvalidParameter`] if the
    /// rank is 0 or above `dim` or [`MAX_RANK`], there are more than [`MAX_OUTLIERS`] (or
    /// `dim`) outliers, or a Student-t has `nu < 3`.
    pub fn fill(
        &self,
        role: Role,
        head: u64,
        first_token: u64,
        out: &mut [f32],
    ) -> Result<(), Error> {
        let d = self.dim;
        if d == 0 {
            return Err(Error::InvalidDim { dim: d });
        }
        if !out.len().is_multiple_of(d) {
            return Err(Error::RaggedRows {
                len: out.len(),
                row_len: d,
            });
        }
        if matches!(self.rank, Some(r) if r == 0 || r > d.min(MAX_RANK)) {
            return Err(Error::InvalidParameter("rank outside 1..=min(dim, 256)"));
        }
        if self.outliers > MAX_OUTLIERS.min(d) {
            return Err(Error::InvalidParameter("too many outlier channels"));
        }
        if matches!(self.tail, Tail::StudentT { nu } if nu < 3) {
            return Err(Error::InvalidParameter("Student-t needs nu >= 3"));
        }
        let stream = self.stream(role, head);
        let mixing = SplitMix64::word_at(stream, u64::MAX - 1);
        let channels = self.outlier_channels(head);
        for (t, row) in out.chunks_exact_mut(d).enumerate() {
            let token = first_token.wrapping_add(t as u64);
            let mut g = Normal {
                rng: SplitMix64::new(SplitMix64::word_at(stream, token)),
                spare: None,
            };
            match self.rank {
                None => {
                    for x in row.iter_mut() {
                        *x = g.draw(self.tail) as f32;
                    }
                }
                Some(r) => {
                    let mut z = [0.0f64; MAX_RANK];
                    for zi in z[..r].iter_mut() {
                        *zi = g.draw(self.tail);
                    }
                    let scale = 1.0 / libm::sqrt(r as f64);
                    let words = d.div_ceil(64);
                    for (w, chunk) in row.chunks_mut(64).enumerate() {
                        let mut acc = [0.0f64; 64];
                        for (i, &zi) in z[..r].iter().enumerate() {
                            let bits = SplitMix64::word_at(mixing, (i * words + w) as u64);
                            for (b, a) in acc[..chunk.len()].iter_mut().enumerate() {
                                *a += if (bits >> b) & 1 == 1 { zi } else { -zi };
                            }
                        }
                        for (x, a) in chunk.iter_mut().zip(acc) {
                            *x = (a * scale) as f32;
                        }
                    }
                }
            }
            if role == Role::Key {
                for &c in &channels[..self.outliers] {
                    row[c] *= OUTLIER_SCALE;
                }
            }
        }
        Ok(())
    }
}
