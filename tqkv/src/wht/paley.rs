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
//! The factors are those of order at most 64: 12, 20 and 44, 60 (Paley I
//! from 11, 19, 43, 59) and 28, 36 (Paley II from 13, 17); their signs are
//! tables made at compile time. Of the products of at most [`MAX_FACTORS`]
//! of them with a power of two, a dimension takes the one with the fewest
//! 16-lane vector operations (`cost`), the larger factors outermost. A
//! multiple of 8 with no such product (104, 184, …) takes the rotation's
//! block-diagonal construction instead.
//!
//! # Bit-exact
//!
//! A factor is applied as a mode product on rows of `stride` floats:
//! `out_a = ((0 + s₀·row_0) + s₁·row_1) + …`, `s_b = H[a][b]`, the sum taken
//! in order `b = 0, 1, …`. A product by ±1 is exact, so the portable loop's
//! add and the SIMD backends' FMA (`acc + row·(±1)`, one rounding) give the
//! same bits on every CPU.

use crate::Error;
use crate::backend::Checked;

/// Most Paley factors in one product.
pub(crate) const MAX_FACTORS: usize = 3;

/// The Paley factors used, `(order, q)`: the orders up to 64 that are not a
/// power of two times a smaller one (24 = 12·2 and 48 = 12·4 are cheaper as
/// products). 28 and 36 are Paley II (13 and 17 are 1 mod 4).
const ORDERS: [(usize, usize); 6] = [(12, 11), (20, 19), (28, 13), (36, 17), (44, 43), (60, 59)];

/// One factor's signs: bit `b` of `rows[a]` is set iff `H[a][b] = −1`,
/// bit `a` of `cols[b]` likewise (the rows of `Hᵀ`).
struct Signs {
    rows: [u64; 64],
    cols: [u64; 64],
}

/// The factors' signs, computed at compile time.
static SIGNS: [Signs; ORDERS.len()] = {
    let mut out = [const {
        Signs {
            rows: [0; 64],
            cols: [0; 64],
        }
    }; ORDERS.len()];
    let mut f = 0;
    while f < ORDERS.len() {
        let (n, q) = ORDERS[f];
        let mut a = 0;
        while a < n {
            let mut b = 0;
            while b < n {
                if negative(n, q, a, b) {
                    out[f].rows[a] |= 1 << b;
                    out[f].cols[b] |= 1 << a;
                }
                b += 1;
            }
            a += 1;
        }
        f += 1;
    }
    out
};

/// `χ(x)` mod the prime `q` for `x ∈ 0..q`: 0, +1 or −1.
const fn chi(x: usize, q: usize) -> i8 {
    if x == 0 {
        return 0;
    }
    let mut y = 1;
    while y < q {
        if y * y % q == x {
            return 1;
        }
        y += 1;
    }
    -1
}

/// `H[a][b] = −1` in the Paley matrix of order `n` from `q` (module docs).
const fn negative(n: usize, q: usize, a: usize, b: usize) -> bool {
    if n == q + 1 {
        // Paley I.
        if a == b || a == 0 {
            false
        } else if b == 0 {
            true
        } else {
            chi((b + q - a) % q, q) < 0
        }
    } else {
        // Paley II: the block of C[a/2][b/2], entry (a%2, b%2).
        let (ca, cb) = (a / 2, b / 2);
        let c = if ca == 0 || cb == 0 {
            if ca == cb { 0 } else { 1 }
        } else {
            chi((cb + q - ca) % q, q)
        };
        let (i, j) = (a % 2, b % 2);
        if c == 0 {
            i + j > 0
        } else {
            (c < 0) != (i == 1 && j == 1)
        }
    }
}

/// One Paley factor: an index into the table of orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Paley(u8);

impl Paley {
    /// The order `|F|`.
    pub(crate) fn order(self) -> usize {
        ORDERS[self.0 as usize].0
    }

    /// `H[a][b] = −1`? (`a, b < order`).
    #[cfg(test)]
    fn is_negative(self, a: usize, b: usize) -> bool {
        SIGNS[self.0 as usize].rows[a] >> b & 1 == 1
    }

    /// The masks of `F` (or `Fᵀ`) by input row: entry `b`, bit `a` set
    /// where output row `a`'s term in row `b` is negative.
    pub(crate) fn by_input(self, transpose: bool) -> &'static [u64] {
        let table = &SIGNS[self.0 as usize];
        let masks = if transpose { &table.rows } else { &table.cols };
        &masks[..self.order()]
    }

    /// `x ← (I_outer ⊗ F ⊗ I_stride)·x`, or with `Fᵀ`: `x` holds blocks of
    /// `order·stride` floats; `tmp` at least one block.
    pub(crate) fn apply(
        self,
        backend: Checked,
        x: &mut [f32],
        stride: usize,
        transpose: bool,
        tmp: &mut [f32],
    ) {
        // By output row of F is by input row of Fᵀ.
        let masks = (self.by_input(!transpose), self.by_input(transpose));
        super::mode_product_in(backend, masks, x, stride, tmp);
    }
}

/// The portable mode product: the reference, and the backends' path for
/// rows that are not whole registers. Inlined into them, so that it is
/// compiled with their features.
#[inline(always)]
pub(super) fn mode_product(masks: &[u64], x: &mut [f32], stride: usize, tmp: &mut [f32]) {
    // The widest column chunk that divides the rows, summed in registers.
    if stride.is_multiple_of(16) {
        mode_product_w::<16>(masks, x, stride, tmp);
    } else if stride.is_multiple_of(8) {
        mode_product_w::<8>(masks, x, stride, tmp);
    } else if stride.is_multiple_of(4) {
        mode_product_w::<4>(masks, x, stride, tmp);
    } else {
        mode_product_w::<1>(masks, x, stride, tmp);
    }
}

/// `+1` and `−1`, indexed by a sign bit.
pub(super) const SIGN: [f32; 2] = [1.0, -1.0];

/// `out_a = Σ_b ±row_b` over every block of `x`, row `a`'s signs in
/// `masks[a]`, `W` columns at a time so that the sums stay in registers.
/// Every output element is `((0 + s₀·r₀) + s₁·r₁) + …` in order `b = 0, 1,
/// …` whatever `W` is: `s·r` with `s = ±1` is exact, so there is one result
/// (the FMA of the vector path rounds once, as this add does).
#[inline(always)]
fn mode_product_w<const W: usize>(masks: &[u64], x: &mut [f32], stride: usize, tmp: &mut [f32]) {
    let n = masks.len();
    let tmp = &mut tmp[..n * stride];
    for block in x.chunks_exact_mut(n * stride) {
        tmp.copy_from_slice(block);
        // Four output rows at a time (every order is a multiple of 4): four
        // independent chains of adds, each row of `tmp` read once for them.
        for (outs, quad) in block
            .chunks_exact_mut(4 * stride)
            .zip(masks.chunks_exact(4))
        {
            for c in (0..stride).step_by(W) {
                let mut acc = [[0.0f32; W]; 4];
                for (b, row) in tmp.chunks_exact(stride).enumerate() {
                    let col = &row[c..][..W];
                    for (acc, &mask) in acc.iter_mut().zip(quad) {
                        let s = SIGN[(mask >> b & 1) as usize];
                        for (a, v) in acc.iter_mut().zip(col) {
                            *a += v * s;
                        }
                    }
                }
                for (i, acc) in acc.iter().enumerate() {
                    outs[i * stride + c..][..W].copy_from_slice(acc);
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
        let mut best: Option<(usize, Kronecker)> = None;
        let mut stack = [Paley(0); MAX_FACTORS];
        search(d, d, &mut stack, 0, &mut best);
        best.map(|(_, k)| k).ok_or(Error::InvalidDim { dim: d })
    }

    /// The Sylvester matrix `H_d` alone (`d` a power of two).
    pub(crate) const fn sylvester_only(d: usize) -> Kronecker {
        Kronecker {
            factors: [Paley(0); MAX_FACTORS],
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

/// Depth-first over the Paley orders dividing `rest` (`d` divided by the
/// factors so far, `stack[..depth]`).
fn search(
    d: usize,
    rest: usize,
    stack: &mut [Paley; MAX_FACTORS],
    depth: usize,
    best: &mut Option<(usize, Kronecker)>,
) {
    if rest.is_power_of_two() {
        let cost = cost(d, &stack[..depth], rest);
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
    for (i, &(order, _)) in ORDERS.iter().enumerate().rev() {
        let fits = depth == 0 || order <= stack[depth - 1].order();
        if fits && rest.is_multiple_of(order) {
            stack[depth] = Paley(i as u8);
            search(d, rest / order, stack, depth + 1, best);
        }
    }
}

/// Vector operations of the product (16-lane vectors): a factor of order
/// `P` on rows of `stride` floats does `d·P/stride` row updates of
/// `⌈stride/16⌉` vectors each; the WHT about `log₂ L` passes of two
/// operations per vector.
fn cost(d: usize, factors: &[Paley], sylvester: usize) -> usize {
    let mut stride = sylvester;
    let mut ops = d * sylvester.trailing_zeros() as usize / 8;
    for f in factors.iter().rev() {
        ops += d * f.order() / stride * stride.div_ceil(16);
        stride *= f.order();
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn every_paley_factor_is_a_hadamard_matrix() {
        // H·Hᵀ = n·I in integers, and the column masks are the transpose.
        // (Miri checks the two smallest; the native run checks all six.)
        let count = if cfg!(miri) { 2 } else { SIGNS.len() };
        for (i, signs) in SIGNS.iter().enumerate().take(count) {
            let f = Paley(i as u8);
            let n = f.order();
            let h = |a: usize, b: usize| if f.is_negative(a, b) { -1i32 } else { 1 };
            for a in 0..n {
                for b in 0..n {
                    let dot: i32 = (0..n).map(|k| h(a, k) * h(b, k)).sum();
                    assert_eq!(
                        dot,
                        if a == b { n as i32 } else { 0 },
                        "order {n} rows {a} {b}"
                    );
                    let col = signs.cols[b] >> a & 1 == 1;
                    assert_eq!(col, f.is_negative(a, b));
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
        // 12·12·4 would do 2304 vector operations, 36·16 1584.
        assert_eq!(orders(576), [36, 16]);
        assert_eq!(orders(144), [36, 4]);
        assert_eq!(orders(720), [60, 12, 1]);
        assert_eq!(
            Kronecker::of_order(104),
            Err(Error::InvalidDim { dim: 104 })
        );
        assert_eq!(
            Kronecker::of_order(184),
            Err(Error::InvalidDim { dim: 184 })
        );
    }
}
