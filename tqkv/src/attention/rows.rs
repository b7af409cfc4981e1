//! The per-token loops of attention around the row kernels: norms
//! applied, the softmax's maximum and exponentials. One plain-Rust source
//! ([`generic`]), compiled once per backend: as it is for the scalar and
//! NEON backends (NEON is baseline on aarch64, so the compiler already
//! vectorises it), and inside `#[target_feature]` functions for AVX2 and
//! AVX-512 (`instantiate!`), where the compiler vectorises it 8 and 16
//! lanes wide. The source fixes every operation and its order (Rust never
//! fuses a multiply and an add on its own), so every backend returns the
//! same bits; the tests below check it.

use crate::Error;
use crate::backend::{Checked, on_backend};
use crate::quant::{NormPrecision, f16_bits_to_f32};

#[cfg(target_arch = "aarch64")]
use super::neon;
#[cfg(target_arch = "x86_64")]
use super::{avx2, avx512};

/// The loops on one checked backend: each call runs the [`generic`] source
/// compiled with that backend's feature list (the scalar backend runs the
/// target's baseline build).
#[derive(Clone, Copy)]
pub(super) struct Loops(pub(super) Checked);

impl Loops {
    /// `values[t] ← values[t]·n_t·c`, `n_t` the t-th norm stored
    /// contiguously in `stored`.
    pub(super) fn mul_norms(
        self,
        norm: NormPrecision,
        values: &mut [f32],
        stored: &[u8],
        c: f32,
    ) -> Result<(), Error> {
        on_backend!(
            self.0,
            generic::mul_norms(norm, values, stored, c),
            mul_norms(norm, values, stored, c)
        )
    }

    /// `a[t] ← (a[t] + b[t])·c`.
    pub(super) fn add_scaled(self, a: &mut [f32], b: &[f32], c: f32) -> Result<(), Error> {
        on_backend!(self.0, generic::add_scaled(a, b, c), add_scaled(a, b, c))
    }

    /// The largest value, `None` if any value is NaN or ±∞.
    pub(super) fn max_finite(self, values: &[f32]) -> Result<Option<f32>, Error> {
        on_backend!(self.0, generic::max_finite(values), max_finite(values))
    }

    /// `values[t] ← e^(values[t] − max)` (`values[t] ≤ max`); returns their
    /// sum in f64.
    pub(super) fn exp_sum(self, values: &mut [f32], max: f32) -> Result<f64, Error> {
        on_backend!(self.0, generic::exp_sum(values, max), exp_sum(values, max))
    }
}

/// Independent partial results in the reductions: they vectorise instead of
/// waiting on one dependency chain per token, and fix the order of the sum
/// for every backend.
const LANES: usize = 16;

/// The one source of the loops.
pub(super) mod generic {
    use super::{LANES, NormPrecision, exp_nonpositive, f16_bits_to_f32};
    use crate::loops::whole_chunks_then_tail;

    /// See [`Loops::mul_norms`](super::Loops::mul_norms).
    #[inline(always)]
    pub(crate) fn mul_norms(norm: NormPrecision, values: &mut [f32], stored: &[u8], c: f32) {
        match norm {
            NormPrecision::F16 => {
                for (v, n) in values.iter_mut().zip(stored.chunks_exact(2)) {
                    *v = *v * f16_bits_to_f32(u16::from_le_bytes([n[0], n[1]])) * c;
                }
            }
            NormPrecision::F32 => {
                for (v, n) in values.iter_mut().zip(stored.chunks_exact(4)) {
                    *v = *v * f32::from_le_bytes([n[0], n[1], n[2], n[3]]) * c;
                }
            }
        }
    }

    /// See [`Loops::add_scaled`](super::Loops::add_scaled).
    #[inline(always)]
    pub(crate) fn add_scaled(a: &mut [f32], b: &[f32], c: f32) {
        for (x, &y) in a.iter_mut().zip(b) {
            *x = (*x + y) * c;
        }
    }

    /// See [`Loops::max_finite`](super::Loops::max_finite).
    #[inline(always)]
    pub(crate) fn max_finite(values: &[f32]) -> Option<f32> {
        let mut top = [f32::NEG_INFINITY; LANES];
        let mut bad = [false; LANES];
        // Whole chunks apart from the tail: with one loop over `chunks`,
        // the partial results lived on the stack, each chunk waiting on
        // the last one's stores.
        whole_chunks_then_tail::<LANES>(values, |chunk| {
            for ((m, b), &s) in top.iter_mut().zip(bad.iter_mut()).zip(chunk) {
                *b |= !s.is_finite();
                *m = m.max(s);
            }
        });
        if bad.iter().any(|&b| b) {
            return None;
        }
        Some(top.iter().fold(f32::NEG_INFINITY, |a, &m| a.max(m)))
    }

    /// See [`Loops::exp_sum`](super::Loops::exp_sum).
    #[inline(always)]
    pub(crate) fn exp_sum(values: &mut [f32], max: f32) -> f64 {
        // Two loops: with the f64 sum in the same loop, the exponentials
        // would vectorise only as wide as the f64 lanes.
        for p in values.iter_mut() {
            *p = exp_nonpositive(*p - max);
        }
        let mut parts = [0.0f64; LANES];
        // As in `max_finite`: the tail apart, so the sums stay in registers.
        whole_chunks_then_tail::<LANES>(values, |chunk| {
            for (a, &p) in parts.iter_mut().zip(chunk) {
                *a += p as f64;
            }
        });
        parts.iter().sum()
    }
}

/// Expands, inside a backend file, to the [`generic`] loops compiled with
/// the backend's feature list: `avx2_features!(super::rows::instantiate {})`.
/// Reached only through [`Loops`], whose `Checked` token proves the
/// features exist.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
macro_rules! instantiate {
    ([$($feature:tt),*]) => {
        use crate::attention::rows::generic;
        use crate::quant::NormPrecision;

        crate::backend::target_features! {
            [$($feature),*]
            /// # Safety
            /// The backend's target features are available.
            pub(in crate::attention) unsafe fn mul_norms(
                norm: NormPrecision,
                values: &mut [f32],
                stored: &[u8],
                c: f32,
            ) {
                generic::mul_norms(norm, values, stored, c)
            }

            /// # Safety
            /// As [`mul_norms`].
            pub(in crate::attention) unsafe fn add_scaled(a: &mut [f32], b: &[f32], c: f32) {
                generic::add_scaled(a, b, c)
            }

            /// # Safety
            /// As [`mul_norms`].
            pub(in crate::attention) unsafe fn max_finite(values: &[f32]) -> Option<f32> {
                generic::max_finite(values)
            }

            /// # Safety
            /// As [`mul_norms`].
            pub(in crate::attention) unsafe fn exp_sum(values: &mut [f32], max: f32) -> f64 {
                generic::exp_sum(values, max)
            }
        }
    };
}
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(super) use instantiate;

/// `e^x` for `x ≤ 0` within 2e-7 relative (tested against `libm::exp`),
/// without a call, so that the softmax loop vectorises: `e^x = 2^n · e^t`
/// with `n` the integer nearest `x·log2 e` (rounded by the 1.5·2^23 trick),
/// `t = x − n·ln 2` reduced in two exact steps (Cody–Waite: `ln 2` split so
/// that `n·LN2_HI` is exact), `|t| ≤ 0.35`, and `e^t` from its Taylor
/// series to degree 7 (truncation below 6e-9). Arguments under −87 (where
/// `e^x` leaves the normal range) are clamped there: about 1.6e-38, nothing
/// next to the softmax maximum's `e^0 = 1` in the normalising sum.
#[inline(always)]
pub(super) fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4; // 0x3f31_8000: 9 significant bits
    const LN2_LO: f32 = -2.121_944_4e-4; // ln 2 − LN2_HI
    const ROUND: f32 = 12_582_912.0; // 1.5·2^23
    let x = x.max(-87.0);
    let r = x * LOG2E + ROUND;
    let n = r - ROUND;
    let t = (x - n * LN2_HI) - n * LN2_LO;
    // e^t = Σ t^k/k!, k ≤ 7, by Horner.
    let p = 1.0
        + t * (1.0
            + t * (0.5
                + t * (1.0 / 6.0
                    + t * (1.0 / 24.0
                        + t * (1.0 / 120.0 + t * (1.0 / 720.0 + t * (1.0 / 5040.0)))))));
    // r = 1.5·2^23 + n exactly (its ulp is 1), so its low bits are n: 2^n
    // from integer operations only (an `as i32` cast would not vectorise).
    let scale = f32::from_bits(r.to_bits().wrapping_sub(0x4b40_0000 - 127) << 23);
    p * scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backend;
    use crate::rng::SplitMix64;
    use std::vec::Vec;

    /// Every backend's loops return the same bits as the baseline build, on
    /// random lengths (tails of every size) and values with edge cases
    /// mixed in: ±0, subnormal and large norms, NaN and ±∞ scores.
    #[test]
    fn every_backend_matches_the_baseline_bit_for_bit() {
        let mut g = SplitMix64::new(11);
        let lens: &[usize] = if cfg!(miri) {
            &[0, 1, 17, 40]
        } else {
            &[0, 1, 2, 15, 16, 17, 31, 33, 100, 257, 1000]
        };
        let specials = [
            0.0f32,
            -0.0,
            1e-40,
            6.0e4,
            f32::NAN,
            f32::INFINITY,
            -f32::INFINITY,
            -80.0,
        ];
        // Every NaN as one value: Rust leaves the bits of a NaN an operation
        // makes unspecified (Miri varies its sign and payload), so only
        // "NaN" is the same on every backend.
        let bits = |x: &[f32]| {
            x.iter()
                .map(|f| if f.is_nan() { u32::MAX } else { f.to_bits() })
                .collect::<Vec<_>>()
        };
        for &n in lens {
            for trial in 0..4 {
                let mut v: Vec<f32> = (0..n)
                    .map(|_| (g.next_u64() >> 40) as f32 / (1u64 << 20) as f32 - 8.0)
                    .collect();
                if trial % 2 == 1 && n > 0 {
                    let at = (g.next_u64() % n as u64) as usize;
                    v[at] = specials[(g.next_u64() % specials.len() as u64) as usize];
                }
                // f16 norms with subnormals mixed in, and on odd trials
                // the bits a corrupt cache may hold (±0, ±∞, quiet and
                // signalling NaNs, negative values); f32 norms with zeros.
                let corrupt = [0x8000u16, 0x7c00, 0xfc00, 0x7e01, 0x7d01, 0xbc00];
                let f16: Vec<u8> = (0..n)
                    .flat_map(|i| {
                        let h = if i % 7 == 3 {
                            1u16
                        } else if trial % 2 == 1 && i % 5 == 2 {
                            corrupt[i % corrupt.len()]
                        } else {
                            (g.next_u64() & 0x7bff) as u16
                        };
                        h.to_le_bytes()
                    })
                    .collect();
                let f32s: Vec<u8> = (0..n)
                    .flat_map(|i| {
                        let x = if i % 5 == 1 {
                            0.0f32
                        } else {
                            (g.next_u64() >> 40) as f32 * 1e-3
                        };
                        x.to_le_bytes()
                    })
                    .collect();
                for backend in Backend::available() {
                    let k = Loops(backend.check().unwrap());
                    for (norm, stored) in [(NormPrecision::F16, &f16), (NormPrecision::F32, &f32s)]
                    {
                        let (mut a, mut b) = (v.clone(), v.clone());
                        generic::mul_norms(norm, &mut a, stored, 0.37);
                        k.mul_norms(norm, &mut b, stored, 0.37).unwrap();
                        assert_eq!(bits(&a), bits(&b), "mul_norms on {backend}, n = {n}");
                    }
                    let w: Vec<f32> = v.iter().rev().cloned().collect();
                    let (mut a, mut b) = (v.clone(), v.clone());
                    generic::add_scaled(&mut a, &w, 0.125);
                    k.add_scaled(&mut b, &w, 0.125).unwrap();
                    assert_eq!(bits(&a), bits(&b), "add_scaled on {backend}, n = {n}");
                    let m = generic::max_finite(&v);
                    assert_eq!(
                        m.map(f32::to_bits),
                        k.max_finite(&v).unwrap().map(f32::to_bits)
                    );
                    assert_eq!(m.is_some(), v.iter().all(|x| x.is_finite()));
                    let Some(m) = m else { continue };
                    assert!(v.iter().all(|&x| x <= m) && (n == 0 || v.contains(&m)));
                    let (mut a, mut b) = (v.clone(), v.clone());
                    let (sa, sb) = (generic::exp_sum(&mut a, m), k.exp_sum(&mut b, m).unwrap());
                    assert_eq!(sa.to_bits(), sb.to_bits(), "exp_sum on {backend}, n = {n}");
                    assert_eq!(bits(&a), bits(&b));
                    // And the sum is right, against libm in f64.
                    let want: f64 = v.iter().map(|&x| libm::exp((x - m) as f64)).sum();
                    assert!((sa - want).abs() <= 1e-6 * want.max(1.0), "{sa} vs {want}");
                }
            }
        }
    }
}
