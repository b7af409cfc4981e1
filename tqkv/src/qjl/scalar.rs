//! The scalar references of the QJL kernels: plain, obviously correct
//! code that every SIMD backend is tested against.

pub(super) fn signed_sum_scalar(sq: &[f32], signs: &[u8]) -> f32 {
    signed_sum_from(sq, signs, 0, 0.0)
}

/// `sum` plus `±sq[j]` for `j` from `from` on, `+` where bit `j` of
/// `signs` is set: the reference's loop, and the backends' tail past
/// their last whole vector.
#[inline(always)]
pub(super) fn signed_sum_from(sq: &[f32], signs: &[u8], from: usize, mut sum: f32) -> f32 {
    for (j, &v) in sq.iter().enumerate().skip(from) {
        // `sum − v` is `sum + (−v)` exactly: flip the sign bit where the
        // sketch bit is clear, without a data-dependent branch.
        let clear = !(signs[j / 8] >> (j % 8)) & 1;
        sum += f32::from_bits(v.to_bits() ^ ((clear as u32) << 31));
    }
    sum
}

/// `(|s|, Σ_p 2^p·|s ∧ plane_p|)` over `words` 64-bit words: `signs` holds
/// `8·words` bytes, plane `p` is `planes[p·words..(p + 1)·words]`.
#[inline(always)]
pub(super) fn plane_counts_scalar(
    signs: &[u8],
    planes: &[u64],
    words: usize,
    bits: usize,
) -> (u32, u64) {
    let mut ones = 0u32;
    let mut weighted = 0u64;
    for (w, chunk) in signs.chunks_exact(8).take(words).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        let s = u64::from_le_bytes(b);
        ones += s.count_ones();
        for p in 0..bits {
            weighted += ((s & planes[p * words + w]).count_ones() as u64) << p;
        }
    }
    (ones, weighted)
}

pub(crate) fn accumulate_signs_scalar(
    rows: &[u8],
    stride: usize,
    weights: &[f32],
    acc: &mut [f32],
) {
    for (r, &w) in weights.iter().enumerate() {
        let signs = &rows[r * stride..];
        for (j, a) in acc.iter_mut().enumerate() {
            let clear = !(signs[j / 8] >> (j % 8)) & 1;
            *a += f32::from_bits(w.to_bits() ^ ((clear as u32) << 31));
        }
    }
}

/// The tail of a row past the last whole vector, shared by the backends.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
pub(super) fn accumulate_signs_tail(signs: &[u8], w: f32, acc: &mut [f32], from: usize) {
    for (j, a) in acc.iter_mut().enumerate().skip(from) {
        let clear = !(signs[j / 8] >> (j % 8)) & 1;
        *a += f32::from_bits(w.to_bits() ^ ((clear as u32) << 31));
    }
}
