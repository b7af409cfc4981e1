//! The Williamson factors' product on vector registers (see `williamson`
//! for the arithmetic, which this follows step for step).
//!
//! Rows `4k … 4k + 3` of a factor (a "quad") are its four blocks at
//! position `k`. A quad lies in `Q` registers: one register column of each
//! row (`Q = 4`, rows of one register or more, taken a column of registers
//! at a time), or two rows a register (`Q = 2`) or four (`Q = 1`) where
//! rows are a half or a quarter of a register. The letters act on a whole
//! quad at once (they are the same for the four blocks); the array's
//! combination `t_m[l ⊕ m]` is a choice of register for `Q = 4` and a swap
//! of rows inside registers ([`Vector::xor_rows`]) otherwise.

use super::Around;
use super::simd::{Finish, Vector, cross, first_signs, load_signed, store_finished};
use super::williamson::{Factor, MAX_N, eps, program_of};
use crate::quant::MAX_DIM;

/// Registers of one quad of rows of `width` floats: 4 for a register or
/// more, 2 for a half, 1 for a quarter.
#[inline(always)]
fn quad_regs<V: Vector>(width: usize) -> usize {
    (4 * width / V::LANES).min(4)
}

/// `F` (or `Fᵀ`) on `N` quads of `Q` registers (module docs): the outputs,
/// quad by quad, before any scale or signs. The factor's program is a
/// constant here and every quad is a call with a literal `k`, so the whole
/// product is straight-line code whatever the optimiser's unrolling limits.
/// `Fᵀ` has the opposite sign on every term of letters 1–3
/// (`ε(l ⊕ m, m) = −ε(l, m)`): those letters are negated once (exact) and
/// combined with `F`'s signs, the same bits as adding `Fᵀ`'s signed terms,
/// with one body for both.
///
/// # Safety
/// The ISA is available; `N` is a factor's `n`; `Q = 4` or rows of `width`
/// a half (`Q = 2`) or quarter (`Q = 1`) of a register that
/// [`Vector::xor_rows`] takes.
#[inline(always)]
unsafe fn williamson<V: Vector, const N: usize, const Q: usize>(
    x: &[[V; Q]; N],
    transpose: bool,
    width: usize,
) -> [[V; Q]; N] {
    const { assert!(N <= MAX_N) };
    // SAFETY: the ISA is available (caller); registers only.
    unsafe {
        let mut s = x[0];
        for quad in &x[1..] {
            for (s, v) in s.iter_mut().zip(quad) {
                *s = s.add(*v);
            }
        }
        let mut neg_s = s;
        for v in neg_s.iter_mut() {
            *v = v.mul(V::splat(-1.0));
        }
        let mut out = [[V::zero(); Q]; N];
        macro_rules! each_quad {
            ($($k:literal)*) => {$(
                if $k < N {
                    out[$k] = williamson_quad::<V, N, Q>(x, $k, &s, &neg_s, transpose, width);
                }
            )*};
        }
        each_quad!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14);
        out
    }
}

/// Output quad `k` of [`williamson`], given the block sum `s` and `−s`.
///
/// # Safety
/// As for [`williamson`]; `k < N`.
#[inline(always)]
unsafe fn williamson_quad<V: Vector, const N: usize, const Q: usize>(
    x: &[[V; Q]; N],
    k: usize,
    s: &[V; Q],
    neg_s: &[V; Q],
    transpose: bool,
    width: usize,
) -> [V; Q] {
    let p = const { program_of(N) };
    let h = (N - 1) / 2;
    // Rows a register holds, and how many bits of `m` pick among them.
    let per_reg = 4 / Q;
    let low_bits = per_reg.trailing_zeros();
    // SAFETY: the ISA is available (caller); registers only, and the
    // patterns are 16 ≥ LANES f32.
    unsafe {
        // `2·x_k` and `2·u_j`, each doubled once by an add: a doubling is
        // exact (overflow included), so `v ± 2·u` rounds as the reference's
        // product-then-sum, where a fused multiply-add would keep finite a
        // sum the reference overflows.
        let mut x2 = x[k];
        for v in x2.iter_mut() {
            *v = v.add(*v);
        }
        let mut u2 = [[V::zero(); Q]; MAX_N / 2];
        for (j, u2) in u2.iter_mut().enumerate().take(h) {
            if p.offsets >> j & 1 == 1 {
                let (a, b) = (&x[(k + j + 1) % N], &x[(k + N - j - 1) % N]);
                for q in 0..Q {
                    let u = a[q].add(b[q]);
                    u2[q] = u.add(u);
                }
            }
        }
        let mut t = [[V::zero(); Q]; 4];
        for m in 0..4 {
            if p.same[m] < m {
                t[m] = t[p.same[m]];
                // A copy of letter 0 is negated for `Fᵀ` on its own; a
                // copy of letter 1 or 2 already was.
                if transpose && m > 0 && p.same[m] == 0 {
                    for v in t[m].iter_mut() {
                        *v = v.mul(V::splat(-1.0));
                    }
                }
                continue;
            }
            let le = p.letters[m];
            for q in 0..Q {
                let sv = if le.s > 0.0 { s[q] } else { neg_s[q] };
                // `(±2·x) + sv` and `v + (±2·u)` of the reference: a sum
                // with a negated term is the difference, bit for bit.
                let mut v = if le.x == 0.0 {
                    sv
                } else if le.x > 0.0 {
                    x2[q].add(sv)
                } else {
                    sv.sub(x2[q])
                };
                for (j, u2) in u2.iter().enumerate().take(h) {
                    if le.offsets >> j & 1 == 1 {
                        v = if le.u > 0.0 {
                            v.add(u2[q])
                        } else {
                            v.sub(u2[q])
                        };
                    }
                }
                t[m][q] = if transpose && m > 0 {
                    v.mul(V::splat(-1.0))
                } else {
                    v
                };
            }
        }
        let mut out = t[0];
        for (m, t) in t.iter().enumerate().skip(1) {
            let (high, low) = (m >> low_bits, m & (per_reg - 1));
            for (q, y) in out.iter_mut().enumerate() {
                let mut v = t[q ^ high];
                if low != 0 {
                    v = v.xor_rows(low, width);
                }
                *y = if Q == 4 {
                    if eps(q, m, false) > 0.0 {
                        y.add(v)
                    } else {
                        y.sub(v)
                    }
                } else {
                    // Each row of the register its own sign: bit r of
                    // the pattern index for row r (slot q·per_reg + r).
                    let mut idx = 0;
                    for r in 0..per_reg {
                        if eps(q * per_reg + r, m, false) < 0.0 {
                            idx |= 1 << r;
                        }
                    }
                    let table = &PATTERNS[width.trailing_zeros() as usize - 2];
                    v.mul_add(V::load(table[idx].as_ptr()), *y)
                };
            }
        }
        out
    }
}

/// Sign registers: `PATTERNS[k][idx]` lane `l` is `−1` where bit
/// `l >> (k + 2)` of `idx` is set, else `+1`. With rows of `2^(k+2)` floats
/// (`k = 0, 1` for 4, 8), pattern `idx` gives each row of a register the
/// sign of its bit of `idx`.
const PATTERNS: [[[f32; 16]; 16]; 2] = {
    let mut t = [[[0.0f32; 16]; 16]; 2];
    let mut k = 0;
    while k < 2 {
        let mut idx = 0;
        while idx < 16 {
            let mut l = 0;
            while l < 16 {
                t[k][idx][l] = if (idx >> (l >> (k + 2))) & 1 == 1 {
                    -1.0
                } else {
                    1.0
                };
                l += 1;
            }
            idx += 1;
        }
        k += 1;
    }
    t
};

/// `x ← s·(F ⊗ H_L)·D·x` or `x ← D·s·(F ⊗ H_L)ᵀ·x` (see [`Around`]) in
/// registers, one load and one store each, where rows of `L` are a
/// quarter, a half or a whole register and the vector at most 16 of them;
/// else `false`, touching nothing.
///
/// # Safety
/// The ISA behind `V` is available; `x.len() = |F|·L`.
#[inline(always)]
pub(super) unsafe fn one_pass<V: Vector>(
    x: &mut [f32],
    around: &Around,
    f: Factor,
    transpose: bool,
    l: usize,
) -> bool {
    if !(l == V::LANES || (l < V::LANES && V::packs(l))) || x.len() > 16 * V::LANES {
        return false;
    }
    // SAFETY: forwarded; x holds N·Q registers for the (N, Q) matched,
    // since |F| = 4N and a quad of rows of L is Q registers.
    unsafe {
        match (f.n(), quad_regs::<V>(l)) {
            (3, 1) => quads_pass::<V, 3, 1, 3>(x, around, transpose, l),
            (5, 1) => quads_pass::<V, 5, 1, 5>(x, around, transpose, l),
            (7, 1) => quads_pass::<V, 7, 1, 7>(x, around, transpose, l),
            (9, 1) => quads_pass::<V, 9, 1, 9>(x, around, transpose, l),
            (11, 1) => quads_pass::<V, 11, 1, 11>(x, around, transpose, l),
            (15, 1) => quads_pass::<V, 15, 1, 15>(x, around, transpose, l),
            (3, 2) => quads_pass::<V, 3, 2, 6>(x, around, transpose, l),
            (5, 2) => quads_pass::<V, 5, 2, 10>(x, around, transpose, l),
            (7, 2) => quads_pass::<V, 7, 2, 14>(x, around, transpose, l),
            (3, 4) => quads_pass::<V, 3, 4, 12>(x, around, transpose, l),
            _ => return false,
        }
    }
    true
}

/// [`one_pass`] on `N` quads of `Q` registers (`REGS = N·Q`).
///
/// # Safety
/// The ISA is available; `x.len() = REGS·LANES`, rows of `l` as
/// [`williamson`] takes for `Q`; `N` the factor's `n`.
#[inline(always)]
unsafe fn quads_pass<V: Vector, const N: usize, const Q: usize, const REGS: usize>(
    x: &mut [f32],
    around: &Around,
    transpose: bool,
    l: usize,
) {
    // SAFETY: REGS·LANES f32 are valid at x (caller); the ISA is the
    // caller's.
    unsafe {
        // D, then H_L on every row (its stages inside each row's lanes).
        let r: [V; REGS] =
            load_signed(x.as_ptr(), None, first_signs(around), 0, l.trailing_zeros());
        let mut quads = [[r[0]; Q]; N];
        for (k, quad) in quads.iter_mut().enumerate() {
            for (q, v) in quad.iter_mut().enumerate() {
                *v = r[k * Q + q];
            }
        }
        let y = williamson::<V, N, Q>(&quads, transpose, l);
        let mut out = r;
        for (k, quad) in y.iter().enumerate() {
            for (q, v) in quad.iter().enumerate() {
                out[k * Q + q] = *v;
            }
        }
        store_finished(out, x, around);
    }
}

/// `x ← s·(F ⊗ H_L)·D·x` or `x ← D·s·(F ⊗ H_L)ᵀ·x` for one factor `F` on
/// rows of `L` a whole number of registers, at most a pass's group: the
/// vectors too long for one pass (576 = 36·16, 320 = 20·16, 384 = 12·32).
/// Two passes, in place: the first flips the signs (if they come first)
/// and runs `H_L` on each row in registers; the second is `F`'s product,
/// each register scaled and flipped (if the signs come last) as it is
/// stored. Returns `false`, touching nothing, for other shapes. The same
/// IEEE operations in the same order as the separate steps, so the same
/// bits.
///
/// # Safety
/// The ISA behind `V` is available on this CPU.
#[inline(always)]
pub(super) unsafe fn two_pass<V: Vector>(x: &mut [f32], around: &Around) -> bool {
    let Some((f, transpose, l)) = around.factor else {
        return false;
    };
    let n = x.len();
    if !l.is_multiple_of(V::LANES)
        || l > V::LANES << V::GROUP_LOG2
        || f.order() * l != n
        || n > MAX_DIM
        || !has_block(f)
    {
        return false;
    }
    // The sign words, one per 64 elements, as `flip_signs` draws them.
    let mut words = [0u64; MAX_DIM / 64];
    let mut rng = crate::rng::SplitMix64::new(around.seed);
    for w in words.iter_mut().take(n.div_ceil(64)) {
        *w = rng.next_u64();
    }
    let words = &words[..n.div_ceil(64)];
    let first = around.signs_first.then_some(words);
    // SAFETY: forwarded; l = LANES·R for the R chosen, |F|·l = n, and the
    // words cover the n elements.
    unsafe {
        match l / V::LANES {
            1 => rows_pass::<V, 1>(x, first),
            2 => rows_pass::<V, 2>(x, first),
            4 => rows_pass::<V, 4>(x, first),
            8 => rows_pass::<V, 8>(x, first),
            _ => rows_pass::<V, 16>(x, first),
        }
        let finish = Finish {
            scale: around.scale,
            signs: (!around.signs_first).then_some(words),
        };
        block::<V>(f, transpose, x, l, &finish);
    }
    true
}

/// `H_L` on every row of `R` registers of `x`, in place, the signs
/// applied first where given.
///
/// # Safety
/// The ISA is available; `R·LANES` divides `x.len()`; `signs` covers `x`.
#[inline(always)]
unsafe fn rows_pass<V: Vector, const R: usize>(x: &mut [f32], signs: Option<&[u64]>) {
    let row = R * V::LANES;
    for (i, row_data) in x.chunks_exact_mut(row).enumerate() {
        // SAFETY: `row_data` holds R·LANES f32; the ISA is the caller's;
        // `signs` covers the row.
        unsafe {
            let stages = V::LANES.trailing_zeros();
            let mut r: [V; R] = load_signed(row_data.as_ptr(), None, signs, i * row, stages);
            cross(&mut r);
            for (j, v) in r.iter().enumerate() {
                v.store(row_data.as_mut_ptr().add(j * V::LANES));
            }
        }
    }
}

/// A factor's product on every block of `x` (`|F|·stride` floats each),
/// in place: rows of whole registers for the factors [`has_block`] names
/// here, the portable loop (compiled with the backend's features)
/// otherwise. The same bits either way.
///
/// # Safety
/// The ISA behind `V` is available; `|F|·stride` divides `x.len()`.
#[inline(always)]
pub(super) unsafe fn product<V: Vector>(f: Factor, transpose: bool, x: &mut [f32], stride: usize) {
    if !stride.is_multiple_of(V::LANES) || !has_block(f) {
        super::williamson::product(f, transpose, x, stride);
        return;
    }
    for b in x.chunks_exact_mut(f.order() * stride) {
        // SAFETY: forwarded; each block holds |F|·stride f32.
        unsafe { block::<V>(f, transpose, b, stride, &Finish::NONE) };
    }
}

/// Whether [`block`] has a kernel for `f` (on rows of whole registers):
/// the orders of the two-pass head dims (12: 384; 20: 320; 28: 224 and
/// 448, and 112 on NEON; 36: 576), where the portable loop took 4–7 times
/// the kernel's time (order 28). Each kernel is a fully unrolled
/// instance, and one for every order and row width tripled the crate's
/// build time (the fuzz build's most); the other shapes are rare (orders
/// 44 and 60, multi-factor products, vectors past one pass with rows of a
/// part of a register) and take the portable loop.
#[inline(always)]
fn has_block(f: Factor) -> bool {
    matches!(f.n(), 3 | 5 | 7 | 9)
}

/// One block of [`product`], each register finished as stored.
///
/// # Safety
/// As [`product`], with `x` one block, `stride` a multiple of `LANES` and
/// [`has_block`] true for `f`; `finish`'s signs cover the block.
#[inline(always)]
unsafe fn block<V: Vector>(
    f: Factor,
    transpose: bool,
    x: &mut [f32],
    stride: usize,
    finish: &Finish<'_>,
) {
    // SAFETY: forwarded; the match gives N = f.n() (one that `has_block`
    // names) and rows of whole registers (Q = 4).
    unsafe {
        match f.n() {
            3 => block_nq::<V, 3, 4>(transpose, x, stride, finish),
            5 => block_nq::<V, 5, 4>(transpose, x, stride, finish),
            7 => block_nq::<V, 7, 4>(transpose, x, stride, finish),
            _ => block_nq::<V, 9, 4>(transpose, x, stride, finish),
        }
    }
}

/// [`block`] for `N` quads of `Q` registers: a column of registers at a
/// time for rows of whole registers (`Q = 4`), the whole block at once for
/// packed rows.
///
/// # Safety
/// As [`block`], with `N` the factor's `n` and `Q` the quad's registers.
#[inline(always)]
unsafe fn block_nq<V: Vector, const N: usize, const Q: usize>(
    transpose: bool,
    x: &mut [f32],
    stride: usize,
    finish: &Finish<'_>,
) {
    // Register q of quad k at column c: rows 4k … are 4·stride apart; a
    // quad's registers are a row apart (Q = 4) or adjacent (packed rows).
    let step = stride.max(V::LANES);
    let mut c = 0;
    while c < stride {
        let at = |k: usize, q: usize| 4 * k * stride + q * step + c;
        // SAFETY: every `at(k, q)` with k < N, q < Q is the start of LANES
        // f32 inside the block (N·4·stride = its length); the ISA is the
        // caller's; all loads happen before any store.
        unsafe {
            let mut quads = [[V::zero(); Q]; N];
            for (k, quad) in quads.iter_mut().enumerate() {
                for (q, v) in quad.iter_mut().enumerate() {
                    *v = V::load(x.as_ptr().add(at(k, q)));
                }
            }
            let y = williamson::<V, N, Q>(&quads, transpose, stride.min(V::LANES));
            for (k, quad) in y.iter().enumerate() {
                for (q, v) in quad.iter().enumerate() {
                    let i = at(k, q);
                    finish.apply(*v, i).store(x.as_mut_ptr().add(i));
                }
            }
        }
        c += V::LANES;
    }
}
