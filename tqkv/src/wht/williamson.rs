//! Hadamard matrices whose order is not a power of two: Williamson's
//! construction of order `4n` (`n` odd), and the Kronecker products
//! `H = F₁ ⊗ … ⊗ F_k ⊗ H_L` (Williamson factors `F`, a Sylvester block
//! `H_L`, `L` a power of two) that give the rotation a Hadamard matrix of
//! order `d = |F₁|·…·|F_k|·L`.
//!
//! # The factors, exactly
//!
//! A factor of order `4n` is built from four symmetric circulant ±1
//! matrices `W₀ … W₃` of order `n` with `W₀² + W₁² + W₂² + W₃² = 4n·I`
//! (Williamson matrices; `FIRST_ROWS` gives each one's first row). Its rows
//! and columns are numbered `a = 4k + l` (`k < n`, `l < 4`), so that the
//! four rows of one `k` are adjacent in memory, and
//!
//! `F[4k + l][4k' + l'] = ε(l, l ⊕ l')·W_{l⊕l'}[k' − k mod n]`,
//!
//! with `ε(l, 0) = +1`, `ε(·, 1) = (+, −, −, +)`, `ε(·, 2) = (+, +, −, −)`,
//! `ε(·, 3) = (+, −, +, −)` (Williamson's array
//! `[[W₀, W₁, W₂, W₃], [−W₁, W₀, −W₃, W₂], [−W₂, W₃, W₀, −W₁], [−W₃, −W₂, W₁, W₀]]`
//! with its rows and columns interleaved). `Fᵀ` has `ε(l', l ⊕ l')` in
//! place of `ε(l, l ⊕ l')`. The orders are 12, 20, 28, 36, 44 and 60
//! (`n` = 3, 5, 7, 9, 11, 15).
//!
//! Of the products of at most [`MAX_FACTORS`] factors with a power of two,
//! a dimension takes the one with the fewest 16-lane vector operations of
//! a dense product (`cost`), the larger factors outermost. A multiple of 8
//! with no such product (104, 184, …) takes the rotation's block-diagonal
//! construction instead.
//!
//! # Why Williamson, and the arithmetic
//!
//! A dense ±1 product of order `4n` costs `4n` adds per output. Williamson's
//! circulants are symmetric: `W·x` is `w₀·x_k + Σ_j w_j·u_j` with
//! `u_j = x_{k+j} + x_{k−j}` (`j = 1 … (n−1)/2`), and since
//! `x_k + Σ_j u_j = s`, the sum of the block, it is also
//! `(w₀ + 1)·x_k − s + 2·Σ_{w_j = +1} u_j` or
//! `(w₀ − 1)·x_k + s − 2·Σ_{w_j = −1} u_j`, whichever is shorter (a
//! [`Letter`]). The four letters are taken for the four blocks at once
//! and then combined by the array's signs: 4 to 17 operations per output
//! instead of 12 to 60. Every output element is, exactly, for each column:
//!
//! 1. `s_l = ((x_{0,l} + x_{1,l}) + x_{2,l}) + …` over `k` in order;
//! 2. `u_j = x_{k+j,l} + x_{k−j,l}` (indices mod `n`);
//! 3. `t_m = c·x_{k,l} ± s_l` (or `±s_l` where `c = 0`), then `t_m + e·u_j`
//!    for each of the letter's offsets `j` in increasing order (`c, e` are
//!    0 or ±2, so each product is exact);
//! 4. `y = ((t₀[l] + ε₁·t₁[l⊕1]) + ε₂·t₂[l⊕2]) + ε₃·t₃[l⊕3]`.
//!
//! Each step is one IEEE rounding of exactly known operands (a product by
//! ±1 or ±2 is exact), so the portable loop here and the vector kernels'
//! FMAs give the same bits on every CPU.

use crate::Error;
use crate::backend::Checked;

/// Most factors in one product.
pub(crate) const MAX_FACTORS: usize = 3;

/// The factors' `n` (order `4n`).
const ORDERS: [usize; 6] = [3, 5, 7, 9, 11, 15];

/// Most `n` of a factor.
pub(crate) const MAX_N: usize = 15;

/// Williamson matrices of each `n` in [`ORDERS`]: the first row of `W_m` as
/// `(w₀, bits)`, bit `j − 1` of `bits` set iff `w_j = w_{n−j} = −1`. Found
/// by an exhaustive search over symmetric ±1 first rows for the sets with
/// the fewest operations; `every_factor_is_a_hadamard_matrix` checks them.
const FIRST_ROWS: [[(i8, u16); 4]; 6] = [
    [(1, 0), (1, 1), (1, 1), (1, 1)],
    [(1, 1), (1, 2), (1, 3), (1, 3)],
    [(1, 1), (1, 1), (1, 3), (1, 4)],
    [(1, 8), (1, 10), (1, 7), (1, 10)],
    [(1, 3), (1, 5), (-1, 9), (1, 15)],
    [(1, 19), (1, 61), (1, 61), (1, 108)],
];

/// `ε(l, m)` of the module docs, `EPS[m][l]`.
pub(crate) const EPS: [[f32; 4]; 4] = [
    [1.0, 1.0, 1.0, 1.0],
    [1.0, -1.0, -1.0, 1.0],
    [1.0, 1.0, -1.0, -1.0],
    [1.0, -1.0, 1.0, -1.0],
];

/// The sign of output slot `l`'s term from letter `m` (`m ≥ 1`), of `F` or
/// of `Fᵀ` (`ε(l ⊕ m, m)`).
#[inline(always)]
pub(crate) fn eps(l: usize, m: usize, transpose: bool) -> f32 {
    if transpose { EPS[m][l ^ m] } else { EPS[m][l] }
}

/// How one circulant `W` acts on a block (module docs, step 3):
/// `t = x·x_k + s·s_l`, then `t + u·u_j` for each offset `j` (bit `j − 1`
/// of `offsets`) in increasing order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Letter {
    /// The coefficient of `x_k`: 0, 2 or −2.
    pub(crate) x: f32,
    /// The sign of the block sum: ±1.
    pub(crate) s: f32,
    /// The offsets `j` whose `u_j` enter (bit `j − 1`).
    pub(crate) offsets: u16,
    /// Their coefficient: ±2.
    pub(crate) u: f32,
}

/// One factor's arithmetic: its letters and which are equal.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Program {
    /// `n`: the factor has order `4n`.
    pub(crate) n: usize,
    /// The letter of `W_m`.
    pub(crate) letters: [Letter; 4],
    /// `same[m] < m`: `W_m` equals that earlier letter (its `t` is reused);
    /// else `m`.
    pub(crate) same: [usize; 4],
    /// Every offset any letter reads (bit `j − 1`).
    pub(crate) offsets: u16,
}

/// The shorter of a circulant's two forms (module docs).
const fn letter(n: usize, w0: i8, bits: u16) -> Letter {
    let h = (n - 1) / 2;
    let all = (1u16 << h) - 1;
    let minus = bits & all;
    let plus = !bits & all;
    let plus_cost = plus.count_ones() + (w0 != -1) as u32;
    let minus_cost = minus.count_ones() + (w0 != 1) as u32;
    if plus_cost <= minus_cost {
        Letter {
            x: (w0 + 1) as f32,
            s: -1.0,
            offsets: plus,
            u: 2.0,
        }
    } else {
        Letter {
            x: (w0 - 1) as f32,
            s: 1.0,
            offsets: minus,
            u: -2.0,
        }
    }
}

/// The programs of [`ORDERS`], made at compile time.
pub(crate) const PROGRAMS: [Program; ORDERS.len()] = {
    let blank = Letter {
        x: 0.0,
        s: 1.0,
        offsets: 0,
        u: 2.0,
    };
    let mut out = [Program {
        n: 0,
        letters: [blank; 4],
        same: [0; 4],
        offsets: 0,
    }; ORDERS.len()];
    let mut f = 0;
    while f < ORDERS.len() {
        let n = ORDERS[f];
        out[f].n = n;
        let mut m = 0;
        while m < 4 {
            let (w0, bits) = FIRST_ROWS[f][m];
            out[f].letters[m] = letter(n, w0, bits);
            out[f].offsets |= out[f].letters[m].offsets;
            let mut e = 0;
            while e < m && !(FIRST_ROWS[f][e].0 == w0 && FIRST_ROWS[f][e].1 == bits) {
                e += 1;
            }
            out[f].same[m] = e;
            m += 1;
        }
        f += 1;
    }
    out
};

/// The program of the factor with this `n` (one of [`ORDERS`]), for the
/// kernels' compile-time use.
// Used by the vector kernels only (none on other architectures).
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
pub(crate) const fn program_of(n: usize) -> Program {
    let mut f = 0;
    while ORDERS[f] != n {
        f += 1;
    }
    PROGRAMS[f]
}

/// One Williamson factor: an index into the table of orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Factor(u8);

impl Factor {
    /// The order `|F| = 4n`.
    pub(crate) fn order(self) -> usize {
        4 * ORDERS[self.0 as usize]
    }

    /// `n`.
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(dead_code)
    )]
    pub(crate) fn n(self) -> usize {
        ORDERS[self.0 as usize]
    }

    /// `F[a][b]` (or `Fᵀ`), from the first rows (module docs).
    #[cfg(test)]
    pub(crate) fn entry(self, a: usize, b: usize, transpose: bool) -> i32 {
        let n = self.n();
        let (k, l) = (a / 4, a % 4);
        let (k2, l2) = (b / 4, b % 4);
        let m = l ^ l2;
        let (w0, bits) = FIRST_ROWS[self.0 as usize][m];
        let off = (k2 + n - k) % n;
        let j = off.min(n - off);
        let w = if off == 0 {
            w0 as i32
        } else if bits >> (j - 1) & 1 == 1 {
            -1
        } else {
            1
        };
        let e = if m == 0 { 1.0 } else { eps(l, m, transpose) };
        e as i32 * w
    }

    /// `x ← (I_outer ⊗ F ⊗ I_stride)·x`, or with `Fᵀ`: `x` holds blocks of
    /// `order·stride` floats.
    pub(crate) fn apply(self, backend: Checked, x: &mut [f32], stride: usize, transpose: bool) {
        super::product_in(backend, self, transpose, x, stride);
    }
}

/// The portable product: the reference, and the backends' path for rows
/// that no register holds whole or in quarters or halves. Inlined into
/// them, so that it is compiled with their features.
#[inline(always)]
pub(super) fn product(f: Factor, transpose: bool, x: &mut [f32], stride: usize) {
    // Four columns at a time where the rows allow (a register of the
    // narrowest vector backend; the vector kernels take wider rows
    // themselves), else fewer.
    if stride.is_multiple_of(4) {
        product_w::<4>(f, transpose, x, stride);
    } else {
        product_narrow(f, transpose, x, stride);
    }
}

/// [`product`] for rows of 1–3 columns a chunk: two columns at a time
/// where the rows allow, else one. Compiled once, outside the backends'
/// bodies: these shapes are rare (56 = 28·2, 120 = 60·2, odd rows), and
/// with their instances inlined beside it the four-column product of the
/// scalar backend ran 8–19 % slower (one build, criterion).
#[inline(never)]
fn product_narrow(f: Factor, transpose: bool, x: &mut [f32], stride: usize) {
    if stride.is_multiple_of(2) {
        product_w::<2>(f, transpose, x, stride);
    } else {
        product_w::<1>(f, transpose, x, stride);
    }
}

/// [`product`] `W` columns at a time: each column's steps of the module
/// docs, in place (a chunk's rows are read before any is written). The
/// program is read at run time: one body for every factor keeps the
/// crate's code small (unrolled copies per factor multiplied the
/// instrumented fuzz build's time); the vector kernels unroll instead.
#[inline(always)]
fn product_w<const W: usize>(f: Factor, transpose: bool, x: &mut [f32], stride: usize) {
    let p = &PROGRAMS[f.0 as usize];
    let n = p.n;
    let h = (n - 1) / 2;
    let mut rows = [[[0.0f32; W]; 4]; MAX_N];
    let rows = &mut rows[..n];
    // Work space, set before it is read (a `u_j` only where the offsets
    // hold `j`): made once, not zeroed for every block row.
    let mut u = [[[0.0f32; W]; 4]; MAX_N / 2];
    let mut t = [[[0.0f32; W]; 4]; 4];
    for block in x.chunks_exact_mut(4 * n * stride) {
        for c in (0..stride).step_by(W) {
            for (a, row) in block.chunks_exact(stride).enumerate() {
                rows[a / 4][a % 4].copy_from_slice(&row[c..][..W]);
            }
            let mut s = rows[0];
            for quad in &rows[1..] {
                for (s, r) in s.iter_mut().zip(quad) {
                    for (s, v) in s.iter_mut().zip(r) {
                        *s += v;
                    }
                }
            }
            for (k, quad) in rows.iter().enumerate() {
                for (j, u) in u.iter_mut().enumerate().take(h) {
                    if p.offsets >> j & 1 == 0 {
                        continue;
                    }
                    let (a, b) = (&rows[(k + j + 1) % n], &rows[(k + n - j - 1) % n]);
                    for l in 0..4 {
                        for i in 0..W {
                            u[l][i] = a[l][i] + b[l][i];
                        }
                    }
                }
                for m in 0..4 {
                    if p.same[m] < m {
                        t[m] = t[p.same[m]];
                        continue;
                    }
                    let le = p.letters[m];
                    // Each element's steps in order; a row of W at a time.
                    for l in 0..4 {
                        let v = &mut t[m][l];
                        for i in 0..W {
                            v[i] = if le.x == 0.0 {
                                le.s * s[l][i]
                            } else {
                                le.x * quad[l][i] + le.s * s[l][i]
                            };
                        }
                        for (j, u) in u.iter().enumerate().take(h) {
                            if le.offsets >> j & 1 == 1 {
                                for i in 0..W {
                                    v[i] += le.u * u[l][i];
                                }
                            }
                        }
                    }
                }
                for l in 0..4 {
                    let mut y = t[0][l];
                    for (m, t) in t.iter().enumerate().skip(1) {
                        let e = eps(l, m, transpose);
                        for (y, v) in y.iter_mut().zip(&t[l ^ m]) {
                            *y += e * v;
                        }
                    }
                    block[(4 * k + l) * stride + c..][..W].copy_from_slice(&y);
                }
            }
        }
    }
}

/// A Hadamard matrix of order `d` as `F₁ ⊗ … ⊗ F_k ⊗ H_L`: the Williamson
/// factors (the first `count`) and the Sylvester order `L`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Kronecker {
    factors: [Factor; MAX_FACTORS],
    count: u8,
    sylvester: usize,
}

impl Kronecker {
    /// The cheapest product of order `d` (see the module docs); a power of
    /// two is the WHT alone.
    ///
    /// # Errors
    /// [`Error::InvalidDim`] if no product of Williamson factors and a power of
    /// two has order `d`.
    pub(crate) fn of_order(d: usize) -> Result<Kronecker, Error> {
        let mut best: Option<(usize, Kronecker)> = None;
        let mut stack = [Factor(0); MAX_FACTORS];
        search(d, d, &mut stack, 0, &mut best);
        best.map(|(_, k)| k).ok_or(Error::InvalidDim { dim: d })
    }

    /// The Sylvester matrix `H_d` alone (`d` a power of two).
    pub(crate) const fn sylvester_only(d: usize) -> Kronecker {
        Kronecker {
            factors: [Factor(0); MAX_FACTORS],
            count: 0,
            sylvester: d,
        }
    }

    /// The order `L` of the Sylvester (WHT) block.
    pub(crate) fn sylvester(&self) -> usize {
        self.sylvester
    }

    /// The Williamson factors, outermost first.
    pub(crate) fn factors(&self) -> &[Factor] {
        &self.factors[..self.count as usize]
    }

    /// The order `d`.
    #[cfg(test)]
    pub(crate) fn order(&self) -> usize {
        self.factors().iter().map(|f| f.order()).product::<usize>() * self.sylvester
    }
}

/// Depth-first over the factor orders dividing `rest` (`d` divided by the
/// factors so far, `stack[..depth]`).
fn search(
    d: usize,
    rest: usize,
    stack: &mut [Factor; MAX_FACTORS],
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
    for (i, &n) in ORDERS.iter().enumerate().rev() {
        let order = 4 * n;
        let fits = depth == 0 || order <= stack[depth - 1].order();
        if fits && rest.is_multiple_of(order) {
            stack[depth] = Factor(i as u8);
            search(d, rest / order, stack, depth + 1, best);
        }
    }
}

/// The ranking of products: the vector operations (16 lanes) of a dense
/// product, a factor of order `P` on rows of `stride` floats doing
/// `d·P/stride` row updates of `⌈stride/16⌉` vectors each, and of the WHT,
/// about `log₂ L` passes of two operations per vector. (It was chosen for
/// dense factors; it is kept so that a dimension keeps its product.)
fn cost(d: usize, factors: &[Factor], sylvester: usize) -> usize {
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
    fn every_factor_is_a_hadamard_matrix() {
        // F·Fᵀ = 4n·I in integers, and the transpose's entries are Fᵀ's.
        // (Miri checks the two smallest; the native run checks all six.)
        let count = if cfg!(miri) { 2 } else { ORDERS.len() };
        for i in 0..count {
            let f = Factor(i as u8);
            let n = f.order();
            for a in 0..n {
                for b in 0..n {
                    let dot: i32 = (0..n)
                        .map(|k| f.entry(a, k, false) * f.entry(b, k, false))
                        .sum();
                    assert_eq!(
                        dot,
                        if a == b { n as i32 } else { 0 },
                        "order {n} rows {a} {b}"
                    );
                    assert_eq!(f.entry(a, b, true), f.entry(b, a, false));
                }
            }
        }
    }

    #[test]
    fn the_fast_product_is_the_dense_matrix() {
        // Integer inputs keep every sum exact: the program's result must be
        // the dense product, for F and Fᵀ, every factor, rows of every
        // width class (one column at a time, two, four).
        let mut rng = crate::rng::SplitMix64::new(7);
        let count = if cfg!(miri) { 1 } else { ORDERS.len() };
        for i in 0..count {
            let f = Factor(i as u8);
            let n = f.order();
            for stride in [1, 2, 3, 4, 5, 6, 8, 16] {
                for transpose in [false, true] {
                    let x: Vec<f32> = (0..2 * n * stride)
                        .map(|_| (rng.next_u64() % 201) as f32 - 100.0)
                        .collect();
                    let mut y = x.clone();
                    product(f, transpose, &mut y, stride);
                    for (block, out) in x.chunks(n * stride).zip(y.chunks(n * stride)) {
                        for a in 0..n {
                            for c in 0..stride {
                                let want: f32 = (0..n)
                                    .map(|b| {
                                        f.entry(a, b, transpose) as f32 * block[b * stride + c]
                                    })
                                    .sum();
                                assert_eq!(
                                    out[a * stride + c],
                                    want,
                                    "order {n} stride {stride} row {a}"
                                );
                            }
                        }
                    }
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
