//! NEON QJL kernels: Hamming with `cnt` on 16-byte blocks; sign-masked f32
//! sums by testing 4 bits at a time into lane masks; bit-plane counts with
//! `count_ones` (which is `cnt` on aarch64).

use core::arch::aarch64::*;

use super::Planes;

crate::backend::neon_features!(crate::backend::target_features {
    pub(super) unsafe fn hamming_simd(a: &[u8], b: &[u8]) -> u32 {
        let n = a.len().min(b.len());
        let mut i = 0;
        // SAFETY: NEON by this function's features; loads read 16 bytes at
        // i with i + 16 <= n.
        let mut total = unsafe {
            let mut acc = vdupq_n_u32(0);
            while i + 16 <= n {
                let x = veorq_u8(vld1q_u8(a.as_ptr().add(i)), vld1q_u8(b.as_ptr().add(i)));
                acc = vpadalq_u16(acc, vpaddlq_u8(vcntq_u8(x)));
                i += 16;
            }
            vaddvq_u32(acc)
        };
        for (x, y) in a[i..n].iter().zip(&b[i..n]) {
            total += (x ^ y).count_ones();
        }
        total
    }

    pub(super) unsafe fn signed_sum_simd(sq: &[f32], signs: &[u8]) -> f32 {
        let n = sq.len();
        let mut j = 0;
        const LOW: [u32; 4] = [1, 2, 4, 8];
        const HIGH: [u32; 4] = [16, 32, 64, 128];
        // SAFETY: NEON by this function's features; loads read sq[j..j + 8]
        // with j + 8 <= n and the two 4-element constants; signs[j/8] exists.
        let mut sum = unsafe {
            let (low, high) = (vld1q_u32(LOW.as_ptr()), vld1q_u32(HIGH.as_ptr()));
            let sign = vdupq_n_u32(0x8000_0000);
            let (mut acc0, mut acc1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
            while j + 8 <= n {
                let s = vdupq_n_u32(signs[j / 8] as u32);
                for (half, acc, lanes) in [(0, &mut acc0, low), (4, &mut acc1, high)] {
                    let set = vtstq_u32(s, lanes);
                    // Flip the sign where the bit is clear.
                    let flip = vbicq_u32(sign, set);
                    let x = vld1q_f32(sq.as_ptr().add(j + half));
                    let x = vreinterpretq_f32_u32(veorq_u32(vreinterpretq_u32_f32(x), flip));
                    *acc = vaddq_f32(*acc, x);
                }
                j += 8;
            }
            vaddvq_f32(vaddq_f32(acc0, acc1))
        };
        for (k, &v) in sq.iter().enumerate().skip(j) {
            if (signs[k / 8] >> (k % 8)) & 1 == 1 {
                sum += v
            } else {
                sum -= v
            }
        }
        sum
    }

    pub(super) unsafe fn signed_rows_simd(sq: &[f32], rows: &[u8], stride: usize, out: &mut [f32]) {
        // SAFETY: this function's target feature is that of `signed_sum_simd`;
        // rows were validated by the caller.
        super::signed_rows_with(sq, rows, stride, out, 0, |q, s| unsafe {
            signed_sum_simd(q, s)
        })
    }

    pub(super) unsafe fn plane_rows_simd(q: Planes<'_>, rows: &[u8], stride: usize, out: &mut [f32]) {
        // `count_ones` is already `cnt` on aarch64.
        super::plane_rows_with(q, rows, stride, out, |s| {
            super::scalar::plane_counts_scalar(s, q.planes, q.words, q.bits)
        })
    }

    pub(super) unsafe fn accumulate_signs_simd(rows: &[u8], stride: usize, weights: &[f32], acc: &mut [f32]) {
        const LOW: [u32; 4] = [1, 2, 4, 8];
        const HIGH: [u32; 4] = [16, 32, 64, 128];
        let m = acc.len();
        for (r, &w) in weights.iter().enumerate() {
            let signs = &rows[r * stride..];
            let mut j = 0;
            // SAFETY: NEON by this function's features; acc[j..j + 8] with
            // j + 8 <= m and the two 4-element constants; signs[j/8] exists.
            unsafe {
                let (low, high) = (vld1q_u32(LOW.as_ptr()), vld1q_u32(HIGH.as_ptr()));
                let (plus, minus) = (vdupq_n_f32(w), vdupq_n_f32(-w));
                while j + 8 <= m {
                    let s = vdupq_n_u32(signs[j / 8] as u32);
                    for (half, lanes) in [(0, low), (4, high)] {
                        let add = vbslq_f32(vtstq_u32(s, lanes), plus, minus);
                        let at = acc.as_mut_ptr().add(j + half);
                        vst1q_f32(at, vaddq_f32(vld1q_f32(at), add));
                    }
                    j += 8;
                }
            }
            super::accumulate_signs_tail(signs, w, acc, j);
        }
    }
});
