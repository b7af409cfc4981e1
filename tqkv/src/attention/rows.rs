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
    /// `out[t] ← n_t`, the t-th norm stored contiguously in `stored` (once
    /// a block: every query vector then multiplies by f32 values).
    pub(super) fn decode_norms(
        self,
        norm: NormPrecision,
        stored: &[u8],
        out: &mut [f32],
    ) -> Result<(), Error> {
        on_backend!(
            self.0,
            generic::decode_norms(norm, stored, out),
            decode_norms(norm, stored, out)
        )
    }

    /// `values[t] ← values[t]·norms[t]·c`.
    pub(super) fn mul_by(self, values: &mut [f32], norms: &[f32], c: f32) -> Result<(), Error> {
        on_backend!(
            self.0,
            generic::mul_by(values, norms, c),
            mul_by(values, norms, c)
        )
    }

    /// A prod key's score from its two raw sums: `values[t] ←
    /// (values[t]·norms[t] + extra[t]·residual[t]·c)·inv`.
    pub(super) fn prod_scores(self, values: &mut [f32], parts: ProdParts<'_>) -> Result<(), Error> {
        on_backend!(
            self.0,
            generic::prod_scores(values, parts),
            prod_scores(values, parts)
        )
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

    /// [`exp_sum`](Self::exp_sum), and in the same loop the value weights
    /// `w.weights[t] ← e^(values[t] − max)·w.norms[t]` and, for prod values
    /// (`w.residuals` not empty), the sign weights `w.sign_weights[t] ←
    /// e^(values[t] − max)·w.residuals[t]`.
    pub(super) fn exp_weights(
        self,
        values: &mut [f32],
        max: f32,
        w: ValueWeights<'_>,
    ) -> Result<f64, Error> {
        on_backend!(
            self.0,
            generic::exp_weights(values, max, w),
            exp_weights(values, max, w)
        )
    }
}

/// Where [`Loops::exp_weights`] puts a block's value weights: from the
/// values' norms (and prod values' residual norms γ; empty for others).
pub(super) struct ValueWeights<'a> {
    pub norms: &'a [f32],
    pub weights: &'a mut [f32],
    pub residuals: &'a [f32],
    pub sign_weights: &'a mut [f32],
}

/// The pieces of a prod key's score besides its centroid sum
/// ([`Loops::prod_scores`]): the key norms, the raw sign sums, the residual
/// norms γ, the sketch's scale `c` and `inv = 1/√d`.
#[derive(Clone, Copy)]
pub(super) struct ProdParts<'a> {
    pub norms: &'a [f32],
    pub extra: &'a [f32],
    pub residual: &'a [f32],
    pub c: f32,
    pub inv: f32,
}

/// Independent partial results in the reductions: they vectorise instead of
/// waiting on one dependency chain per token, and fix the order of the sum
/// for every backend.
const LANES: usize = 16;

/// The one source of the loops.
pub(super) mod generic {
    use super::{LANES, NormPrecision, ProdParts, ValueWeights, exp_nonpositive, f16_bits_to_f32};
    use crate::loops::whole_chunks_then_tail;

    /// See [`Loops::decode_norms`](super::Loops::decode_norms).
    #[inline(always)]
    pub(crate) fn decode_norms(norm: NormPrecision, stored: &[u8], out: &mut [f32]) {
        match norm {
            NormPrecision::F16 => {
                for (o, n) in out.iter_mut().zip(stored.chunks_exact(2)) {
                    *o = f16_bits_to_f32(u16::from_le_bytes([n[0], n[1]]));
                }
            }
            NormPrecision::F32 => {
                for (o, n) in out.iter_mut().zip(stored.chunks_exact(4)) {
                    *o = f32::from_le_bytes([n[0], n[1], n[2], n[3]]);
                }
            }
        }
    }

    /// See [`Loops::mul_by`](super::Loops::mul_by).
    #[inline(always)]
    pub(crate) fn mul_by(values: &mut [f32], norms: &[f32], c: f32) {
        for (v, &n) in values.iter_mut().zip(norms) {
            *v = *v * n * c;
        }
    }

    /// See [`Loops::prod_scores`](super::Loops::prod_scores).
    #[inline(always)]
    pub(crate) fn prod_scores(values: &mut [f32], p: ProdParts<'_>) {
        let n = values.len().min(p.norms.len()).min(p.extra.len());
        let n = n.min(p.residual.len());
        let (norms, extra, residual) = (&p.norms[..n], &p.extra[..n], &p.residual[..n]);
        for (((v, &k), &e), &r) in values[..n].iter_mut().zip(norms).zip(extra).zip(residual) {
            *v = (*v * k + e * r * p.c) * p.inv;
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
        sum_f64(values)
    }

    /// `Σ values` in f64, in [`LANES`] partial sums (so the order is the
    /// same on every backend).
    #[inline(always)]
    fn sum_f64(values: &[f32]) -> f64 {
        let mut parts = [0.0f64; LANES];
        // As in `max_finite`: the tail apart, so the sums stay in registers.
        whole_chunks_then_tail::<LANES>(values, |chunk| {
            for (a, &p) in parts.iter_mut().zip(chunk) {
                *a += p as f64;
            }
        });
        parts.iter().sum()
    }

    /// See [`Loops::exp_weights`](super::Loops::exp_weights).
    #[inline(always)]
    pub(crate) fn exp_weights(values: &mut [f32], max: f32, w: ValueWeights<'_>) -> f64 {
        let n = values.len().min(w.norms.len()).min(w.weights.len());
        let (values, norms, weights) = (&mut values[..n], &w.norms[..n], &mut w.weights[..n]);
        // Two loops, the test outside: a weight set that may be absent
        // inside the loop would keep it from vectorising.
        if w.residuals.is_empty() {
            for ((p, &k), wt) in values.iter_mut().zip(norms).zip(weights) {
                let e = exp_nonpositive(*p - max);
                *p = e;
                *wt = e * k;
            }
        } else {
            let m = n.min(w.residuals.len()).min(w.sign_weights.len());
            let (residuals, signs) = (&w.residuals[..m], &mut w.sign_weights[..m]);
            for ((((p, &k), wt), &g), st) in values[..m]
                .iter_mut()
                .zip(&norms[..m])
                .zip(&mut weights[..m])
                .zip(residuals)
                .zip(signs)
            {
                let e = exp_nonpositive(*p - max);
                *p = e;
                *wt = e * k;
                *st = e * g;
            }
        }
        sum_f64(values)
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
            pub(in crate::attention) unsafe fn decode_norms_portable(
                norm: NormPrecision,
                stored: &[u8],
                out: &mut [f32],
            ) {
                generic::decode_norms(norm, stored, out)
            }

            /// # Safety
            /// As [`decode_norms_portable`].
            pub(in crate::attention) unsafe fn mul_by(values: &mut [f32], norms: &[f32], c: f32) {
                generic::mul_by(values, norms, c)
            }

            /// # Safety
            /// As [`decode_norms_portable`].
            pub(in crate::attention) unsafe fn prod_scores(
                values: &mut [f32],
                parts: crate::attention::rows::ProdParts<'_>,
            ) {
                generic::prod_scores(values, parts)
            }

            /// # Safety
            /// As [`decode_norms_portable`].
            pub(in crate::attention) unsafe fn exp_weights(
                values: &mut [f32],
                max: f32,
                w: crate::attention::rows::ValueWeights<'_>,
            ) -> f64 {
                generic::exp_weights(values, max, w)
            }

            /// # Safety
            /// As [`decode_norms_portable`].
            pub(in crate::attention) unsafe fn max_finite(values: &[f32]) -> Option<f32> {
                generic::max_finite(values)
            }

            /// # Safety
            /// As [`decode_norms_portable`].
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
    use std::vec;
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
                    let mut decoded = Vec::new();
                    for (norm, stored) in [(NormPrecision::F16, &f16), (NormPrecision::F32, &f32s)]
                    {
                        let (mut a, mut b) = (vec![1.5f32; n], vec![-2.5f32; n]);
                        generic::decode_norms(norm, stored, &mut a);
                        k.decode_norms(norm, stored, &mut b).unwrap();
                        assert_eq!(bits(&a), bits(&b), "decode_norms on {backend}, n = {n}");
                        // And each value is the stored one.
                        for (i, &x) in a.iter().enumerate() {
                            let want = match norm {
                                NormPrecision::F16 => f16_bits_to_f32(u16::from_le_bytes([
                                    stored[2 * i],
                                    stored[2 * i + 1],
                                ])),
                                NormPrecision::F32 => {
                                    f32::from_le_bytes(stored[4 * i..4 * i + 4].try_into().unwrap())
                                }
                            };
                            assert_eq!(bits(&[x]), bits(&[want]));
                        }
                        decoded.push(a);
                    }
                    let [norms, residual] = [&decoded[0], &decoded[1]];
                    let (mut a, mut b) = (v.clone(), v.clone());
                    generic::mul_by(&mut a, norms, 0.37);
                    k.mul_by(&mut b, norms, 0.37).unwrap();
                    assert_eq!(bits(&a), bits(&b), "mul_by on {backend}, n = {n}");
                    let extra: Vec<f32> = v.iter().rev().cloned().collect();
                    let parts = ProdParts {
                        norms,
                        extra: &extra,
                        residual,
                        c: 1.25,
                        inv: 0.125,
                    };
                    let (mut a, mut b) = (v.clone(), v.clone());
                    generic::prod_scores(&mut a, parts);
                    k.prod_scores(&mut b, parts).unwrap();
                    assert_eq!(bits(&a), bits(&b), "prod_scores on {backend}, n = {n}");
                    // The formula, term by term.
                    for i in 0..n {
                        let want = (v[i] * norms[i] + extra[i] * residual[i] * 1.25) * 0.125;
                        assert_eq!(bits(&[a[i]]), bits(&[want]));
                    }
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
                    // The exponentials and weights in one loop: the same
                    // exponentials and sum, and each weight e·‖v‖.
                    // With and without sign weights.
                    for prod in [false, true] {
                        let (mut c, mut w, mut r) = (v.clone(), vec![0.0f32; n], vec![0.0f32; n]);
                        let weights = ValueWeights {
                            norms,
                            weights: &mut w,
                            residuals: if prod { residual } else { &[] },
                            sign_weights: if prod { &mut r } else { &mut [] },
                        };
                        let sc = k.exp_weights(&mut c, m, weights).unwrap();
                        assert_eq!(sc.to_bits(), sa.to_bits(), "exp_weights on {backend}");
                        assert_eq!(bits(&c), bits(&a));
                        let times =
                            |x: &[f32]| a.iter().zip(x).map(|(e, k)| e * k).collect::<Vec<_>>();
                        assert_eq!(bits(&w), bits(&times(norms)));
                        let signs = if prod {
                            times(residual)
                        } else {
                            vec![0.0f32; n]
                        };
                        assert_eq!(bits(&r), bits(&signs));
                    }
                    // And the sum is right, against libm in f64.
                    let want: f64 = v.iter().map(|&x| libm::exp((x - m) as f64)).sum();
                    assert!((sa - want).abs() <= 1e-6 * want.max(1.0), "{sa} vs {want}");
                }
            }
        }
    }
}
