//! The attention loops compiled for AVX-512 (see `rows`), and the f16
//! norms converted by the instruction made for it.

use core::arch::x86_64::*;

crate::backend::avx512_features!(super::rows::instantiate {});

/// `out[t] ← n_t` as the portable loop, the f16 norms by [`decode_f16`].
///
/// # Safety
/// The AVX-512 feature list is available.
pub(super) unsafe fn decode_norms(norm: NormPrecision, stored: &[u8], out: &mut [f32]) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match norm {
            NormPrecision::F16 => decode_f16(stored, out),
            _ => decode_norms_portable(norm, stored, out),
        }
    }
}

crate::backend::avx512_features!(crate::backend::target_features {
    /// `out[t] ←` the f16 `stored[2t..2t + 2]` (little-endian) as f32, for
    /// `t < min(out.len(), stored.len()/2)`: 16 a `vcvtph2ps`, the tail
    /// masked. The conversion is exact, as the portable one's; only a NaN
    /// may come out with its quiet bit set (a cache never stores one:
    /// `from_bytes` refuses it).
    ///
    /// # Safety
    /// The AVX-512 feature list is available.
    unsafe fn decode_f16(stored: &[u8], out: &mut [f32]) {
        let n = out.len().min(stored.len() / 2);
        // SAFETY: AVX-512 F/BW/VL by this function's features. Loads read
        // stored[2i .. 2i + 32] with i + 16 ≤ n (or, masked, only the
        // lanes below n, which never fault beyond them); stores write
        // out[i .. i + 16] likewise.
        unsafe {
            let mut i = 0;
            while i + 16 <= n {
                let h = _mm256_loadu_si256(stored.as_ptr().add(2 * i).cast());
                _mm512_storeu_ps(out.as_mut_ptr().add(i), _mm512_cvtph_ps(h));
                i += 16;
            }
            if i < n {
                let lanes = ((1u32 << (n - i)) - 1) as u16;
                let h = _mm256_maskz_loadu_epi16(lanes, stored.as_ptr().add(2 * i).cast());
                _mm512_mask_storeu_ps(out.as_mut_ptr().add(i), lanes, _mm512_cvtph_ps(h));
            }
        }
    }
});
