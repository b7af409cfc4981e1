//! Hadamard matrices whose order is not a power of two: Paley's two
//! constructions from a prime `q`, and the Kronecker products
//! `H = F₁ ⊗ … ⊗ F_k ⊗ H_L` (Paley factors `F`, a Sylvester block `H_L`,
//! `L` a power of two) that give the rotation a Hadamard matrix of order
//! `d = |F₁|·…·|F_k|·L`.
//!
//! # The factors, exactly
//!
//! `χ` is the Legendre symbol mod `q` (`χ(0) = 0`, `+1` on the non-zero
//! squares, `−1` otherwise); indices start at 0.
//!
//! - **Paley I**, `q ≡ 3 (mod 4)`, order `q + 1`: `H[a][a] = 1`,
//!   `H[0][b] = 1`, `H[a][0] = −1` (`a > 0`), else `H[a][b] = χ(b − a)`.
//! - **Paley II**, `q ≡ 1 (mod 4)`, order `2(q + 1)`: the symmetric
//!   conference matrix `C` (`C[0][0] = 0`, `C[0][b] = C[a][0] = 1`, else
//!   `C[a][b] = χ(b − a)`), each entry replaced by a 2 × 2 block: `0` by
//!   `[[1, −1], [−1, −1]]`, `±1` by `±[[1, 1], [1, −1]]`.
//!
//! An order with both (12 = 11 + 1 = 2·(5 + 1)) takes Paley I. Of the
//! factorisations of `d`, the rotation takes the one with the fewest
//! operations per coordinate (`Σ|F| + log₂ L`), at most [`MAX_FACTORS`]
//! factors, the larger factors first on a tie.
//!
//! # Bit-exact
//!
//! A factor is applied as a mode product on rows of `stride` floats:
//! `out_a = Σ_b H[a][b]·row_b`, the sum taken in order `b = 0, 1, …`, starting
//! from `±row_0` (exact). The code is the same on every backend and has only
//! adds and subtracts, so every CPU gives the same bits.

use crate::Error;

/// Most Paley factors in one product.
pub(crate) const MAX_FACTORS: usize = 3;

/// Largest prime `q` of a factor (its residues fit a 64-word bit set).
const MAX_Q: usize = 64 * 64 - 1;

/// One Paley factor: the Hadamard matrix of order `order` built from `q`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Paley {
    q: u16,
    order: u16,
}

/// The non-zero squares mod `q`, as a bit set.
pub(crate) struct Residues([u64; 64]);

impl Residues {
    fn of(q: usize) -> Residues {
        let mut bits = [0u64; 64];
        for x in 1..=q / 2 {
            let r = x * x % q;
            bits[r / 64] |= 1 << (r % 64);
        }
        Residues(bits)
    }

    /// `χ(a)` for `a ∈ 0..q`: 0, +1 or −1.
    fn chi(&self, a: usize) -> i8 {
        if a == 0 {
            0
        } else if self.0[a / 64] >> (a % 64) & 1 == 1 {
            1
        } else {
            -1
        }
    }
}

fn is_prime(n: usize) -> bool {
    n >= 2
        && (2..)
            .take_while(|p| p * p <= n)
            .all(|p| !n.is_multiple_of(p))
}

impl Paley {
    /// The factor of order `order`, if Paley I or II makes one from a prime
    /// (powers of two are left to the WHT).
    pub(crate) fn of_order(order: usize) -> Option<Paley> {
        if order.is_power_of_two() || !order.is_multiple_of(4) || order > MAX_Q + 1 {
            return None;
        }
        let q = if is_prime(order - 1) {
            order - 1
        } else if is_prime(order / 2 - 1) && (order / 2 - 1) % 4 == 1 {
            order / 2 - 1
        } else {
            return None;
        };
        Some(Paley {
            q: q as u16,
            order: order as u16,
        })
    }

    /// The order `|F|`.
    pub(crate) fn order(self) -> usize {
        self.order as usize
    }

    /// The residues this factor's signs read.
    pub(crate) fn residues(self) -> Residues {
        Residues::of(self.q as usize)
    }

    /// `H[a][b] = −1`? (`a, b < order`).
    pub(crate) fn negative(self, r: &Residues, a: usize, b: usize) -> bool {
        let q = self.q as usize;
        if self.order() == q + 1 {
            // Paley I.
            if a == b || a == 0 {
                false
            } else if b == 0 {
                true
            } else {
                r.chi((b + q - a) % q) < 0
            }
        } else {
            // Paley II: the block of C[a/2][b/2], entry (a%2, b%2).
            let (ca, cb) = (a / 2, b / 2);
            let c = if ca == 0 || cb == 0 {
                i8::from(ca != cb)
            } else {
                r.chi((cb + q - ca) % q)
            };
            let (i, j) = (a % 2, b % 2);
            if c == 0 {
                i + j > 0
            } else {
                (c < 0) != (i == 1 && j == 1)
            }
        }
    }

    /// `x ← (I_outer ⊗ F ⊗ I_stride)·x`, or with `Fᵀ`: `x` holds blocks of
    /// `order·stride` floats; `tmp` at least one block.
    pub(crate) fn apply(self, x: &mut [f32], stride: usize, transpose: bool, tmp: &mut [f32]) {
        let n = self.order();
        let r = self.residues();
        let tmp = &mut tmp[..n * stride];
        for block in x.chunks_exact_mut(n * stride) {
            tmp.copy_from_slice(block);
            for (a, out) in block.chunks_exact_mut(stride).enumerate() {
                for (b, row) in tmp.chunks_exact(stride).enumerate() {
                    let neg = if transpose {
                        self.negative(&r, b, a)
                    } else {
                        self.negative(&r, a, b)
                    };
                    match (b, neg) {
                        (0, false) => out.copy_from_slice(row),
                        (0, true) => out.iter_mut().zip(row).for_each(|(o, &v)| *o = -v),
                        (_, false) => out.iter_mut().zip(row).for_each(|(o, &v)| *o += v),
                        (_, true) => out.iter_mut().zip(row).for_each(|(o, &v)| *o -= v),
                    }
                }
            }
        }
    }
}

/// A Hadamard matrix of order `d` as `F₁ ⊗ … ⊗ F_k ⊗ H_L`: the Paley
/// factors (the first `count`) and the Sylvester order `L`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Kronecker {
    factors: [Paley; MAX_FACTORS],
    count: u8,
    sylvester: usize,
}

impl Kronecker {
    /// The cheapest product of order `d` (see the module docs); a power of
    /// two is the WHT alone.
    ///
    /// # Errors
    /// [`Error::InvalidDim`] if no product of Paley factors and a power of
    /// two has order `d`.
    pub(crate) fn of_order(d: usize) -> Result<Kronecker, Error> {
        let none = Paley { q: 0, order: 1 };
        let mut best: Option<(usize, Kronecker)> = None;
        let mut stack = [none; MAX_FACTORS];
        search(d, 0, &mut stack, 0, &mut best);
        best.map(|(_, k)| k).ok_or(Error::InvalidDim { dim: d })
    }

    /// The Sylvester matrix `H_d` alone (`d` a power of two).
    pub(crate) fn sylvester_only(d: usize) -> Kronecker {
        Kronecker {
            factors: [Paley { q: 0, order: 1 }; MAX_FACTORS],
            count: 0,
            sylvester: d,
        }
    }

    /// The order `L` of the Sylvester (WHT) block.
    pub(crate) fn sylvester(&self) -> usize {
        self.sylvester
    }

    /// The Paley factors, outermost first.
    pub(crate) fn factors(&self) -> &[Paley] {
        &self.factors[..self.count as usize]
    }

    /// The order `d`.
    #[cfg(test)]
    pub(crate) fn order(&self) -> usize {
        self.factors().iter().map(|f| f.order()).product::<usize>() * self.sylvester
    }
}

/// Depth-first over the Paley orders dividing `rest`, the factors so far in
/// `stack[..depth]` with `cost` operations per coordinate.
fn search(
    rest: usize,
    cost: usize,
    stack: &mut [Paley; MAX_FACTORS],
    depth: usize,
    best: &mut Option<(usize, Kronecker)>,
) {
    if rest.is_power_of_two() {
        let cost = cost + rest.trailing_zeros() as usize;
        if best.is_none_or(|(c, _)| cost < c) {
            *best = Some((
                cost,
                Kronecker {
                    factors: *stack,
                    count: depth as u8,
                    sylvester: rest,
                },
            ));
        }
        return;
    }
    if depth == MAX_FACTORS {
        return;
    }
    // Larger orders first, so that a tie keeps the larger factor outermost;
    // a factor no larger than the previous one keeps each product once.
    let limit = if depth == 0 {
        rest
    } else {
        stack[depth - 1].order()
    };
    for order in (12..=limit.min(rest)).rev() {
        if !rest.is_multiple_of(order) {
            continue;
        }
        if let Some(f) = Paley::of_order(order) {
            stack[depth] = f;
            search(rest / order, cost + order, stack, depth + 1, best);
            stack[depth] = Paley { q: 0, order: 1 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn every_paley_factor_is_a_hadamard_matrix() {
        // H·Hᵀ = n·I in integers, for every factor up to 200 (Paley I and II
        // both), the largest checked in a normal run.
        let top = if cfg!(miri) { 28 } else { 200 };
        let orders: Vec<usize> = (12..=top)
            .filter_map(|n| Paley::of_order(n).map(|f| f.order()))
            .collect();
        assert!(orders.starts_with(&[12, 20, 24, 28, 36, 44]), "{orders:?}");
        for n in orders {
            let f = Paley::of_order(n).unwrap();
            let r = f.residues();
            let h: Vec<i32> = (0..n * n)
                .map(|e| if f.negative(&r, e / n, e % n) { -1 } else { 1 })
                .collect();
            for a in 0..n {
                for b in 0..n {
                    let dot: i32 = (0..n).map(|k| h[a * n + k] * h[b * n + k]).sum();
                    assert_eq!(
                        dot,
                        if a == b { n as i32 } else { 0 },
                        "order {n} rows {a} {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_dimensions_of_real_models_factor_as_documented() {
        let orders = |d: usize| {
            let k = Kronecker::of_order(d).unwrap();
            assert_eq!(k.order(), d);
            let mut v: Vec<usize> = k.factors().iter().map(|f| f.order()).collect();
            v.push(k.sylvester());
            v
        };
        assert_eq!(orders(64), [64]);
        assert_eq!(orders(80), [20, 4]);
        assert_eq!(orders(96), [12, 8]);
        assert_eq!(orders(112), [28, 4]);
        assert_eq!(orders(160), [20, 8]);
        assert_eq!(orders(192), [12, 16]);
        assert_eq!(orders(320), [20, 16]);
        assert_eq!(orders(384), [12, 32]);
        assert_eq!(orders(576), [12, 12, 4]);
        // 144 = 12·12: no Sylvester block left.
        assert_eq!(orders(144), [12, 12, 1]);
    }

    #[test]
    fn the_multiples_of_8_without_a_product_are_the_documented_ones() {
        let missing: Vec<usize> = (8..=1024)
            .step_by(8)
            .filter(|&d| Kronecker::of_order(d).is_err())
            .collect();
        assert_eq!(
            missing,
            [
                184, 232, 344, 376, 472, 520, 536, 584, 680, 688, 712, 808, 856, 872, 904, 944,
                952, 1016
            ]
        );
        assert_eq!(
            Kronecker::of_order(184),
            Err(Error::InvalidDim { dim: 184 })
        );
    }
}
