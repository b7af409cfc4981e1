//! Scores of 1- and 2-bit codes a nibble at a time. A nibble of a packed
//! row holds the codes of `4/b` coordinates, so a 16-entry table per
//! nibble, `Σ_i q_{k·p+i}·c[code i]`, scores them with one lookup: a
//! quarter of the lookups at 1 bit, half at 2, against a table per
//! coordinate. Every backend's row blocks look these tables up (the 4-bit
//! row blocks, which the QJL sign sums use too) and [`dot`], the scalar
//! kernel, sums the same entries in the same order, so the row blocks'
//! scores equal the scalar ones bit for bit.

use super::Codebook;

/// Whether `bits`-bit codes are scored a nibble at a time: 1 and 2 bits.
pub(super) fn takes(bits: u8) -> bool {
    matches!(bits, 1 | 2)
}

/// Nibbles of a row of `d` codes of `bits` bits (`takes(bits)`).
pub(super) fn count(bits: u8, d: usize) -> usize {
    (d * bits as usize).div_ceil(4)
}

/// Entry `v` of nibble `p`'s table: `Σ_i q[k·p + i]·c[(v >> b·i) mod 2^b]`
/// over the `k = 4/b` codes of the nibble, each product rounded, summed
/// from the first product on; a coordinate past `q`'s end counts as 0.0
/// (the last nibble of a row may hold fewer codes). The definition that
/// every backend's tables compute with the same operations in the same
/// order.
#[inline(always)]
pub(super) fn entry(c: &[f32], bits: u8, q: &[f32], p: usize, v: usize) -> f32 {
    let b = bits as usize;
    let k = 4 / b;
    let code = |i: usize| c[(v >> (b * i)) & ((1 << b) - 1)];
    let qi = |i: usize| q.get(k * p + i).copied().unwrap_or(0.0);
    let mut sum = qi(0) * code(0);
    for i in 1..k {
        sum += qi(i) * code(i);
    }
    sum
}

/// Entry `v` of the lookup pattern of a nibble's `i`-th code: `c[(v >> b·i)
/// mod 2^b]`. The SIMD backends build a table from these as `q_{k·p}·P_0
/// + q_{k·p+1}·P_1 + …`, the operations of [`entry`].
#[cfg(target_arch = "x86_64")]
pub(super) fn pattern(c: &[f32], bits: u8, i: usize) -> [f32; 16] {
    let b = bits as usize;
    core::array::from_fn(|v| c[(v >> (b * i)) & ((1 << b) - 1)])
}

/// The tables of every nibble of a row of `q.len()` codes (the entries of
/// [`entry`]), handed to `write` with their nibble's index, in order;
/// returns how many ([`count`]).
#[cfg(any(test, target_arch = "aarch64"))]
pub(super) fn tables(cb: &Codebook, q: &[f32], mut write: impl FnMut(usize, [f32; 16])) -> usize {
    let bits = cb.bits();
    let n = count(bits, q.len());
    for p in 0..n {
        write(
            p,
            core::array::from_fn(|v| entry(cb.centroids(), bits, q, p, v)),
        );
    }
    n
}

/// `Σ_p table_p[nibble p of packed]` in nibble order from 0.0: the scalar
/// score of one row of `q.len()` codes of 1 or 2 bits.
pub(super) fn dot(cb: &Codebook, q: &[f32], packed: &[u8]) -> f32 {
    let bits = cb.bits();
    let mut sum = 0.0f32;
    for p in 0..count(bits, q.len()) {
        let v = (packed[p / 2] >> (4 * (p % 2))) & 15;
        sum += entry(cb.centroids(), bits, q, p, v as usize);
    }
    sum
}
