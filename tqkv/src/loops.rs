//! The element-wise loops of encoding (norms, finiteness, scaling, sign
//! flips, residuals, sign bits), written once as plain Rust and compiled
//! once per backend inside `#[target_feature]` functions, so that each is
//! auto-vectorised with that backend's registers (the crate is built for the
//! baseline ISA, where these loops get 128-bit registers at best). Sign
//! bits are the exception: the vectoriser packed them poorly, so the
//! backends take whole registers through the vector trait's compare into a
//! mask, and the plain loop is their reference.
//!
//! Every backend runs the same operations in the same order (no
//! reassociation, no fused multiply-add: Rust contracts neither), so the
//! results are bit-identical on every backend: stored bytes stay the same
//! on every CPU.

use crate::backend::{Checked, on_backend};
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use crate::vector::F32Vector;

/// `Σ xᵢ²` in f64, in 32 partial sums (element `i` into sum `i % 32`) that
/// end in a fixed tree (sum `i` takes sum `i + w` for w = 16, 8, 4, 2, 1):
/// four independent vector chains and a short reduction instead of one long
/// chain (eight sums added in order cost a third of an encode's norms).
///
/// Each square of a finite f32 is below 2²⁵⁶ and at most
/// [`MAX_DIM`](crate::quant::MAX_DIM) are summed, so the sum is finite
/// exactly when every element is: it doubles as the finiteness check.
#[inline(always)]
pub(crate) fn sum_squares(x: &[f32]) -> f64 {
    sum_squares_by(x, add_squares)
}

/// [`sum_squares`] with each chunk's squares added by `add` (plain
/// [`add_squares`], or a backend's fused multiply-adds: the same bits).
#[inline(always)]
fn sum_squares_by(x: &[f32], add: impl Fn(&mut [f64; PARTS], &[f32; PARTS])) -> f64 {
    let mut parts = [0.0f64; PARTS];
    // A padded tail adds +0 to its sums, which keeps them.
    padded_chunks::<PARTS>(x, |chunk| add(&mut parts, chunk));
    sum_parts(parts)
}

/// Partial sums of [`sum_squares`].
const PARTS: usize = 32;

/// `parts[i] += chunk[i]²` in f64.
#[inline(always)]
fn add_squares(parts: &mut [f64; PARTS], chunk: &[f32; PARTS]) {
    for (p, &v) in parts.iter_mut().zip(chunk) {
        *p += v as f64 * v as f64;
    }
}

/// [`add_squares`] by `V`'s fused multiply-adds: the square of an f32 is
/// exact in f64, so fusing it with the sum rounds the same once (the
/// separate product was a third of the norm's instructions).
///
/// # Safety
/// The ISA behind `V` is available.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
unsafe fn add_squares_fused<V: F32Vector>(parts: &mut [f64; PARTS], chunk: &[f32; PARTS]) {
    for j in (0..PARTS).step_by(V::LANES) {
        // SAFETY: LANES ≤ PARTS − j elements at j of both arrays (LANES
        // divides PARTS); the ISA is the caller's.
        unsafe { V::add_squares_f64(chunk.as_ptr().add(j), parts.as_mut_ptr().add(j)) }
    }
}

/// [`sum_squares`]'s fixed tree over its partial sums.
#[inline(always)]
fn sum_parts(mut parts: [f64; PARTS]) -> f64 {
    let mut w = PARTS / 2;
    while w > 0 {
        let (low, high) = parts.split_at_mut(w);
        for (p, &h) in low.iter_mut().zip(&high[..w]) {
            *p += h;
        }
        w /= 2;
    }
    parts[0]
}

/// `f` on every whole `N`-element chunk of `x`, then on the rest padded
/// with zeros: with only whole chunks, the compiler keeps a loop's
/// per-lane state in registers (a variable-length tail sent it through
/// the stack).
#[inline(always)]
fn padded_chunks<const N: usize>(x: &[f32], mut f: impl FnMut(&[f32; N])) {
    let (whole, rest) = x.as_chunks::<N>();
    for chunk in whole {
        f(chunk);
    }
    if !rest.is_empty() {
        let mut tail = [0.0f32; N];
        tail[..rest.len()].copy_from_slice(rest);
        f(&tail);
    }
}

/// `f` on every whole `N`-element chunk of `x`, then once on the rest
/// (shorter, maybe empty), for loops whose per-lane state must not be
/// padded: one loop over `chunks(N)` leaves the inner trip count unknown,
/// and the compiler then keeps that state on the stack.
#[inline(always)]
pub(crate) fn whole_chunks_then_tail<const N: usize>(x: &[f32], mut f: impl FnMut(&[f32])) {
    let whole = x.chunks_exact(N);
    let tail = whole.remainder();
    whole.for_each(&mut f);
    f(tail);
}

/// Whether no element is NaN or ±∞: the largest magnitude's bits (sign
/// cleared) stay below the exponent field of all ones, which only NaN and
/// ±∞ have. Branch-free, in 64-element chunks (a tail padded with zeros)
/// whose running maximum stays in registers.
#[inline(always)]
pub(crate) fn all_finite(x: &[f32]) -> bool {
    const CHUNK: usize = 64;
    const MAGNITUDE: u32 = 0x7fff_ffff;
    let mut top = [0u32; CHUNK];
    // A padded tail's zeros never raise the maximum.
    padded_chunks::<CHUNK>(x, |chunk| {
        for (t, v) in top.iter_mut().zip(chunk) {
            *t = (*t).max(v.to_bits() & MAGNITUDE);
        }
    });
    top.iter().fold(0, |a, &t| a.max(t)) < 0x7f80_0000
}

/// `y[i] = (x[i]·s)` computed in f64 and rounded once to f32.
#[inline(always)]
pub(crate) fn scale_f64_into(x: &[f32], s: f64, y: &mut [f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = (v as f64 * s) as f32;
    }
}

/// `y[i] = x[i]·s`.
#[inline(always)]
pub(crate) fn scale_into(x: &[f32], s: f32, y: &mut [f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = v * s;
    }
}

/// `x[i] ·= s`.
#[inline(always)]
pub(crate) fn scale(x: &mut [f32], s: f32) {
    for v in x.iter_mut() {
        *v *= s;
    }
}

/// Negates `x[i]` where bit `i % 64` of word `i / 64` of `words` is set;
/// `words` yields a word per 64 elements.
#[inline(always)]
pub(crate) fn flip_signs(x: &mut [f32], mut words: impl FnMut() -> u64) {
    // Bit j of a word tested against the constant 1 << j: a compare per
    // lane that vectorises on every target (a shift by the lane index does
    // not without AVX2).
    const BIT: [u32; 32] = {
        let mut b = [0u32; 32];
        let mut j = 0;
        while j < 32 {
            b[j] = 1 << j;
            j += 1;
        }
        b
    };
    for chunk in x.chunks_mut(64) {
        let bits = words();
        for (half, part) in chunk.chunks_mut(32).enumerate() {
            let word = (bits >> (32 * half)) as u32;
            for (v, &bit) in part.iter_mut().zip(&BIT) {
                let flip = if word & bit != 0 { 0x8000_0000 } else { 0 };
                *v = f32::from_bits(v.to_bits() ^ flip);
            }
        }
    }
}

/// [`flip_signs`] with the words of a SplitMix64 seeded with `seed`.
#[inline(always)]
pub(crate) fn flip_signs_seeded(x: &mut [f32], seed: u64) {
    let mut rng = crate::rng::SplitMix64::new(seed);
    flip_signs(x, || rng.next_u64())
}

/// `y[i] = y[i]·n − yhat[i]·stored`, each product rounded, then the
/// difference (the residual of a code at the decoder's scale); returns
/// [`sum_squares`] of the new `y`, the same bits, from the same loop (a
/// prod code's γ without a second pass over the residual). Only the first
/// `min(y.len(), yhat.len())` elements are taken.
#[inline(always)]
pub(crate) fn residual(y: &mut [f32], n: f32, yhat: &[f32], stored: f32) -> f64 {
    residual_by(y, n, yhat, stored, add_squares)
}

/// [`residual`] with the squares added by `add` (as [`sum_squares_by`]).
#[inline(always)]
fn residual_by(
    y: &mut [f32],
    n: f32,
    yhat: &[f32],
    stored: f32,
    add: impl Fn(&mut [f64; PARTS], &[f32; PARTS]),
) -> f64 {
    let len = y.len().min(yhat.len());
    let (y, yhat) = (&mut y[..len], &yhat[..len]);
    let mut parts = [0.0f64; PARTS];
    let (whole, rest) = y.as_chunks_mut::<PARTS>();
    let (hats, hat_rest) = yhat.as_chunks::<PARTS>();
    for (chunk, hat) in whole.iter_mut().zip(hats) {
        for (r, &h) in chunk.iter_mut().zip(hat) {
            *r = *r * n - h * stored;
        }
        add(&mut parts, chunk);
    }
    if !rest.is_empty() {
        // As in `sum_squares`: the tail padded with zeros.
        let mut tail = [0.0f32; PARTS];
        for ((r, &h), t) in rest.iter_mut().zip(hat_rest).zip(&mut tail) {
            *r = *r * n - h * stored;
            *t = *r;
        }
        add(&mut parts, &tail);
    }
    sum_parts(parts)
}

/// Bit `i % 8` of `out[i / 8]` set where `v[i] > 0` (for `out.len() ≥
/// v.len()/8` bytes; a trailing partial byte is not written). Whole
/// 64-element chunks build a u64 each (compares into mask registers where
/// the backend has them), the rest a byte per 8 elements.
#[inline(always)]
pub(crate) fn sign_bits(v: &[f32], out: &mut [u8]) {
    let (whole, rest) = v.as_chunks::<64>();
    let (words, tail) = out.split_at_mut((8 * whole.len()).min(out.len()));
    for (chunk, o) in whole.iter().zip(words.as_chunks_mut::<8>().0) {
        let word = chunk
            .iter()
            .enumerate()
            .fold(0u64, |w, (i, &x)| w | (u64::from(x > 0.0) << i));
        *o = word.to_le_bytes();
    }
    for (o, eight) in tail.iter_mut().zip(rest.chunks_exact(8)) {
        *o = eight
            .iter()
            .enumerate()
            .fold(0u8, |b, (i, &x)| b | (u8::from(x > 0.0) << i));
    }
}

/// [`sign_bits`] with each register's bits from one compare into a mask
/// ([`F32Vector::positive_bits`]): compiled for a backend, the loop above
/// became eight-lane compares, masked moves and a tree of ors a word.
/// The rest past whole 64-element chunks goes through [`sign_bits`].
///
/// # Safety
/// The ISA behind `V` is available.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
pub(crate) unsafe fn sign_bits_in_registers<V: F32Vector>(v: &[f32], out: &mut [u8]) {
    let (whole, rest) = v.as_chunks::<64>();
    let (words, tail) = out.split_at_mut((8 * whole.len()).min(out.len()));
    for (chunk, o) in whole.iter().zip(words.as_chunks_mut::<8>().0) {
        let mut word = 0u64;
        for (j, lanes) in chunk.chunks_exact(V::LANES).enumerate() {
            // SAFETY: `lanes` holds LANES f32; the ISA is the caller's.
            let bits = unsafe { V::load(lanes.as_ptr()).positive_bits() };
            word |= u64::from(bits) << (j * V::LANES);
        }
        *o = word.to_le_bytes();
    }
    sign_bits(rest, tail);
}

/// Expands, inside a backend file, to the loops above inside functions
/// with the backend's target features. Reached only through
/// [`on_backend!`], whose `Checked` token proves the features exist.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
macro_rules! entry_points {
    ([$($feature:tt),*] $vector:ty) => {
        crate::backend::target_features! {
            [$($feature),*]
            /// # Safety
            /// The backend's target features are available.
            pub(crate) unsafe fn sum_squares(x: &[f32]) -> f64 {
                // SAFETY: this function's target features are the ISA of
                // the vector type.
                crate::loops::sum_squares_by(x, |p, c| unsafe {
                    crate::loops::add_squares_fused::<$vector>(p, c)
                })
            }
            /// # Safety
            /// As [`sum_squares`].
            pub(crate) unsafe fn all_finite(x: &[f32]) -> bool {
                crate::loops::all_finite(x)
            }
            /// # Safety
            /// As [`sum_squares`].
            pub(crate) unsafe fn scale_f64_into(x: &[f32], s: f64, y: &mut [f32]) {
                crate::loops::scale_f64_into(x, s, y)
            }
            /// # Safety
            /// As [`sum_squares`].
            pub(crate) unsafe fn scale_into(x: &[f32], s: f32, y: &mut [f32]) {
                crate::loops::scale_into(x, s, y)
            }
            /// # Safety
            /// As [`sum_squares`].
            pub(crate) unsafe fn scale(x: &mut [f32], s: f32) {
                crate::loops::scale(x, s)
            }
            /// # Safety
            /// As [`sum_squares`].
            pub(crate) unsafe fn flip_signs_seeded(x: &mut [f32], seed: u64) {
                crate::loops::flip_signs_seeded(x, seed)
            }
            /// # Safety
            /// As [`sum_squares`].
            pub(crate) unsafe fn residual(y: &mut [f32], n: f32, yhat: &[f32], stored: f32) -> f64 {
                // SAFETY: as in `sum_squares`.
                crate::loops::residual_by(y, n, yhat, stored, |p, c| unsafe {
                    crate::loops::add_squares_fused::<$vector>(p, c)
                })
            }
            /// # Safety
            /// As [`sum_squares`].
            pub(crate) unsafe fn sign_bits(v: &[f32], out: &mut [u8]) {
                // SAFETY: this function's target features are the ISA of
                // the vector type.
                unsafe { crate::loops::sign_bits_in_registers::<$vector>(v, out) }
            }
        }
    };
}
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) use entry_points;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    crate::backend::avx2_features!(super::entry_points { crate::vector::F32x8 });
}
#[cfg(target_arch = "x86_64")]
mod avx512 {
    crate::backend::avx512_features!(super::entry_points { crate::vector::F32x16 });
}
#[cfg(target_arch = "aarch64")]
mod neon {
    crate::backend::neon_features!(super::entry_points { crate::vector::F32x4 });
}

/// `f(args)` compiled for `backend` (a checked backend of another
/// architecture cannot exist; it would run the portable loop).
macro_rules! dispatch {
    ($backend:expr, $f:ident($($arg:expr),*)) => {
        match on_backend!($backend, $f($($arg),*), $f($($arg),*)) {
            Ok(r) => r,
            Err(_) => $f($($arg),*),
        }
    };
}

/// [`sum_squares`] on `backend`.
pub(crate) fn sum_squares_on(backend: Checked, x: &[f32]) -> f64 {
    dispatch!(backend, sum_squares(x))
}

/// `‖x‖₂` in f64 on `backend` (NaN or ∞ if an element is).
pub(crate) fn l2_on(backend: Checked, x: &[f32]) -> f64 {
    libm::sqrt(sum_squares_on(backend, x))
}

/// [`all_finite`] on `backend`.
pub(crate) fn all_finite_on(backend: Checked, x: &[f32]) -> bool {
    dispatch!(backend, all_finite(x))
}

/// [`scale_f64_into`] on `backend`.
pub(crate) fn scale_f64_into_on(backend: Checked, x: &[f32], s: f64, y: &mut [f32]) {
    dispatch!(backend, scale_f64_into(x, s, y))
}

/// [`scale_into`] on `backend`.
pub(crate) fn scale_into_on(backend: Checked, x: &[f32], s: f32, y: &mut [f32]) {
    dispatch!(backend, scale_into(x, s, y))
}

/// [`scale`] on `backend`.
pub(crate) fn scale_on(backend: Checked, x: &mut [f32], s: f32) {
    dispatch!(backend, scale(x, s))
}

/// [`flip_signs`] on `backend`, the words drawn from a SplitMix64 seeded
/// with `seed`.
pub(crate) fn flip_signs_on(backend: Checked, x: &mut [f32], seed: u64) {
    dispatch!(backend, flip_signs_seeded(x, seed))
}

/// [`residual`] on `backend`.
pub(crate) fn residual_on(
    backend: Checked,
    y: &mut [f32],
    n: f32,
    yhat: &[f32],
    stored: f32,
) -> f64 {
    dispatch!(backend, residual(y, n, yhat, stored))
}

/// [`sign_bits`] on `backend`.
pub(crate) fn sign_bits_on(backend: Checked, v: &[f32], out: &mut [u8]) {
    dispatch!(backend, sign_bits(v, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backend;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// Bits, every NaN folded to one pattern (Rust leaves the sign and
    /// payload of an operation's NaN unspecified, and Miri varies them).
    fn bits(x: &[f32]) -> Vec<u32> {
        x.iter()
            .map(|v| if v.is_nan() { 0x7FC0_0000 } else { v.to_bits() })
            .collect()
    }

    /// Finite values of every size class, signed zeros, and (when asked)
    /// NaN and infinities.
    fn value(specials: bool) -> impl Strategy<Value = f32> {
        let finite = prop_oneof![
            -1.0f32..1.0,
            -1e30f32..1e30,
            Just(0.0f32),
            Just(-0.0f32),
            Just(f32::MAX),
            Just(-f32::MIN_POSITIVE / 4.0),
        ];
        if specials {
            prop_oneof![
                8 => finite,
                1 => Just(f32::NAN),
                1 => Just(f32::INFINITY),
                1 => Just(f32::NEG_INFINITY),
            ]
            .boxed()
        } else {
            finite.boxed()
        }
    }

    #[test]
    fn sum_squares_is_the_f64_sum() {
        assert_eq!(sum_squares(&[]), 0.0);
        assert_eq!(l2_on(Backend::Scalar.check().unwrap(), &[3.0, 4.0]), 5.0);
        let x: Vec<f32> = (0..37).map(|i| i as f32 - 18.0).collect();
        let want: f64 = x.iter().map(|&v| (v as f64).powi(2)).sum();
        assert!((sum_squares(&x) - want).abs() <= 1e-12 * want);
        // The largest finite squares stay finite; one NaN or ∞ does not.
        let most = if cfg!(miri) {
            64
        } else {
            crate::quant::MAX_DIM
        };
        assert!(sum_squares(&std::vec![f32::MAX; most]).is_finite());
        assert!(sum_squares(&[1.0, f32::INFINITY]).is_infinite());
        assert!(sum_squares(&[f32::NAN, 1.0]).is_nan());
    }

    /// Longest vector of the property test (whole registers and tails of
    /// every backend; short under Miri, which interprets every operation).
    const LONGEST: usize = if cfg!(miri) { 40 } else { 300 };

    proptest! {
        #![proptest_config(crate::proptest_config())]

        /// Every backend's instance of every loop gives the portable loop's
        /// bits, at every length (whole registers and tails) and offset.
        #[test]
        fn every_backend_equals_the_portable_loops(
            x in prop::collection::vec(value(true), 0..LONGEST),
            y in prop::collection::vec(value(false), LONGEST),
            offset in 0usize..4,
            seed in any::<u64>(),
            s in -4.0f64..4.0,
        ) {
            let x = &x[offset.min(x.len())..];
            let n = x.len();
            let y = &y[..n];
            for backend in Backend::available() {
                let b = backend.check().unwrap();
                let (ss, fin) = (sum_squares_on(b, x), all_finite_on(b, x));
                let canon = |v: f64| if v.is_nan() { f64::NAN.to_bits() } else { v.to_bits() };
                prop_assert_eq!(canon(ss), canon(sum_squares(x)), "{}", backend);
                // `x` is rarely all finite past a few elements, and a NaN
                // sum equals any other: the finite `y` checks the order of
                // the partial sums at every length.
                prop_assert_eq!(sum_squares_on(b, y).to_bits(), sum_squares(y).to_bits(), "{}", backend);
                prop_assert_eq!(fin, x.iter().all(|v| v.is_finite()), "{}", backend);
                prop_assert_eq!(ss.is_finite(), fin, "{}", backend);

                let (mut want, mut got) = (std::vec![0.0f32; n], std::vec![0.0f32; n]);
                scale_f64_into(y, s, &mut want);
                scale_f64_into_on(b, y, s, &mut got);
                prop_assert_eq!(bits(&got), bits(&want), "{}", backend);

                let (mut want, mut got) = (std::vec![0.0f32; n], std::vec![0.0f32; n]);
                scale_into(x, s as f32, &mut want);
                scale_into_on(b, x, s as f32, &mut got);
                prop_assert_eq!(bits(&got), bits(&want), "{}", backend);

                let (mut want, mut got) = (x.to_vec(), x.to_vec());
                scale(&mut want, s as f32);
                scale_on(b, &mut got, s as f32);
                prop_assert_eq!(bits(&got), bits(&want), "{}", backend);

                let (mut want, mut got) = (x.to_vec(), x.to_vec());
                flip_signs_seeded(&mut want, seed);
                flip_signs_on(b, &mut got, seed);
                prop_assert_eq!(bits(&got), bits(&want), "{}", backend);
                // A flip is exact negation of the chosen lanes.
                let mut rng = crate::rng::SplitMix64::new(seed);
                let words: Vec<u64> = (0..n.div_ceil(64)).map(|_| rng.next_u64()).collect();
                for (i, (&a, &o)) in got.iter().zip(x).enumerate() {
                    let flip = (words[i / 64] >> (i % 64)) & 1 == 1;
                    let want = if flip { -o } else { o };
                    prop_assert_eq!(bits(&[a]), bits(&[want]));
                }

                let (mut want, mut got) = (y.to_vec(), y.to_vec());
                let want_sum = residual(&mut want, 1.5, x, s as f32);
                let got_sum = residual_on(b, &mut got, 1.5, x, s as f32);
                prop_assert_eq!(bits(&got), bits(&want), "{}", backend);
                prop_assert_eq!(canon(got_sum), canon(want_sum), "{}", backend);
                // The sum is `sum_squares` of the residual, bit for bit.
                prop_assert_eq!(canon(want_sum), canon(sum_squares(&want)), "{}", backend);

                let (mut want, mut got) = (std::vec![0u8; n / 8], std::vec![0u8; n / 8]);
                sign_bits(x, &mut want);
                sign_bits_on(b, x, &mut got);
                prop_assert_eq!(&got, &want, "{}", backend);
                for (i, &v) in x[..n / 8 * 8].iter().enumerate() {
                    prop_assert_eq!((got[i / 8] >> (i % 8)) & 1 == 1, v > 0.0);
                }
            }
        }
    }
}
