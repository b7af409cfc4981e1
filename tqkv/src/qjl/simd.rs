//! What the QJL kernels of every SIMD backend share, written once over the
//! crate's vector trait.

use crate::vector::F32Vector;

/// Lanes `at … at + LANES − 1` of the 16 sums `±sq[0] ± … ± sq[3]` (lane
/// `v`: `+` where bit `i` of `v` is set, as
/// [`NIBBLE_SIGNS`](super::NIBBLE_SIGNS) gives them): the first product,
/// then one FMA a further sign, so every backend's tables hold the same
/// bits (and flipping all four signs negates each rounded step: the
/// tables are odd, which AVX2's lookups of the lower half rely on).
///
/// # Safety
/// The ISA of `V` is available; `at + V::LANES ≤ 16`.
#[inline(always)]
pub(super) unsafe fn nibble_sums<V: F32Vector>(sq: &[f32; 4], at: usize) -> V {
    let signs = &super::NIBBLE_SIGNS;
    // SAFETY: the ISA is the caller's; each load reads lanes at … at +
    // LANES − 1 < 16 of a sign row.
    unsafe {
        let mut v = V::load(signs[0].as_ptr().add(at)).mul(V::splat(sq[0]));
        for (s, &x) in signs.iter().zip(sq).skip(1) {
            v = V::load(s.as_ptr().add(at)).mul_add(V::splat(x), v);
        }
        v
    }
}
