//! AVX-512 kernels for several query vectors over the same rows (the query
//! heads of a KV head, or several positions): the work that depends only on
//! the codes — loading, transposing or unpacking them, and looking up their
//! centroids — is done once and shared, so each further query costs one
//! FMA per 16 codes (and a masked add per 16 signs).
//!
//! Scores here are `Σ_j fma(c[idx_j], q_j, ·)` in coordinate order: one
//! rounding a term instead of the single-query table kernel's two, so they
//! agree with the scalar kernel within the documented `1e-5 · Σ|q·c|`, not
//! bit for bit.
//!
//! `keys` scores, `values` sums value codes (and, for prod values, codes
//! and signs in one pass), `signs` sums sign sketches; the centroids'
//! registers ([`Centroids`]) serve the first two.

use core::arch::x86_64::*;

use crate::codebook::Codebook;

mod keys;
mod planes;
mod signs;
mod values;

pub(in crate::codebook) use keys::dot_rows;
pub(in crate::codebook) use signs::accumulate_signs;
#[cfg(test)]
pub(in crate::codebook) use values::accumulate_rows_with;
pub(in crate::codebook) use values::{MAX_FUSED_GROUP, accumulate_fused, accumulate_rows};

/// Most query vectors one kernel call carries (their sums stay in
/// registers); the callers split larger groups.
pub(in crate::codebook) const MAX_GROUP: usize = 4;

/// A group of query vectors [`dot_rows`] takes beside those up to
/// [`MAX_GROUP`]: eight query heads (Llama 3 70B has 64 on 8 KV heads)
/// scored in one pass over the key codes, whose sums of two blocks of 16
/// rows take 16 registers.
pub(in crate::codebook) const WIDE_GROUP: usize = 8;

/// How a row's chunk of 64 codes becomes centroids, and the order its sums
/// keep over the rows: the centroids' registers ([`Centroids`]), or their
/// byte planes ([`planes::BytePlanes`], 6-bit values on some cores). A
/// kernel is compiled once per lookup, and builds only that one's tables.
trait ChunkLookup {
    /// The lookup's tables for `cb`.
    ///
    /// # Safety
    /// AVX-512F is available; `cb.bits() ≤ 6`.
    unsafe fn of(cb: &Codebook) -> Self;

    /// The centroids of 64 `B`-bit codes, one in the low bits of each
    /// byte of `codes` (byte `i` code `i`), in the lookup's order.
    ///
    /// # Safety
    /// AVX-512 F/BW/VBMI are available; `B ≤ 6`, and the lookup takes it.
    unsafe fn chunk<const B: usize>(&self, codes: __m512i) -> [__m512; 4];

    /// `out` (at most 64 values, zeros past its end) in the lookup's order.
    ///
    /// # Safety
    /// AVX-512F is available.
    unsafe fn load_sums(out: &[f32]) -> [__m512; 4];

    /// Sums in the lookup's order back into `out` (at most 64 values).
    ///
    /// # Safety
    /// AVX-512F is available.
    unsafe fn store_sums(sums: &[__m512; 4], out: &mut [f32]);
}

impl ChunkLookup for Centroids {
    #[inline(always)]
    unsafe fn of(cb: &Codebook) -> Centroids {
        // SAFETY: forwarded from the caller.
        unsafe { Centroids::of(cb) }
    }

    /// Register `s` lane `i` holds code `4i + s`, looked up where it lies,
    /// in byte `s` of dword `i`.
    #[inline(always)]
    unsafe fn chunk<const B: usize>(&self, codes: __m512i) -> [__m512; 4] {
        // SAFETY: AVX-512F (caller); registers only.
        unsafe {
            [
                self.lookup::<B>(codes),
                self.lookup::<B>(_mm512_srli_epi32::<8>(codes)),
                self.lookup::<B>(_mm512_srli_epi32::<16>(codes)),
                self.lookup::<B>(_mm512_srli_epi32::<24>(codes)),
            ]
        }
    }

    #[inline(always)]
    unsafe fn load_sums(out: &[f32]) -> [__m512; 4] {
        // SAFETY: forwarded from the caller.
        unsafe { super::values::load_permuted::<1>(out)[0] }
    }

    #[inline(always)]
    unsafe fn store_sums(sums: &[__m512; 4], out: &mut [f32]) {
        // SAFETY: forwarded from the caller.
        unsafe { super::values::store_permuted::<1>(&[*sums], out) }
    }
}

/// The centroids in registers: repeated with period `2^b` over 16 lanes
/// (≤ 4 bits, one `vpermps`), all 32 in two registers (5 bits, one
/// `vpermt2ps`), or all 64 in four (6 bits, two `vpermt2ps` and a blend on
/// bit 5).
struct Centroids {
    t: [__m512; 4],
}

impl Centroids {
    /// # Safety
    /// AVX-512F is available; `cb.bits() ≤ 6`.
    #[inline(always)]
    unsafe fn of(cb: &Codebook) -> Centroids {
        let c = cb.centroids();
        let mut table = [0.0f32; 64];
        for (v, t) in table.iter_mut().enumerate() {
            *t = c[v & (c.len() - 1)];
        }
        // SAFETY: AVX-512F (caller); the loads read the local table.
        unsafe {
            Centroids {
                t: [0, 16, 32, 48].map(|at| _mm512_loadu_ps(table.as_ptr().add(at))),
            }
        }
    }

    /// `c[idx]` per lane, for `B`-bit codes in the low bits of each dword
    /// (other bits above).
    ///
    /// # Safety
    /// AVX-512F is available.
    #[inline(always)]
    unsafe fn lookup<const B: usize>(&self, idx: __m512i) -> __m512 {
        // SAFETY: AVX-512F (caller); registers only.
        unsafe {
            match B {
                0..=4 => _mm512_permutexvar_ps(idx, self.t[0]),
                5 => _mm512_permutex2var_ps(self.t[0], idx, self.t[1]),
                _ => {
                    let low = _mm512_permutex2var_ps(self.t[0], idx, self.t[1]);
                    let high = _mm512_permutex2var_ps(self.t[2], idx, self.t[3]);
                    let bit5 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(32));
                    _mm512_mask_blend_ps(bit5, low, high)
                }
            }
        }
    }
}
