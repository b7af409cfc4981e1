//! The scalar references of the codebook kernels: plain, obviously correct
//! code that every SIMD backend is tested against (indices and packed bytes
//! must match exactly; sums within the documented tolerance).

use super::Codebook;
use super::pack::{self, packed_len};

pub(super) fn quantize(cb: &Codebook, x: &[f32], out: &mut [u8]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = cb.index(v);
    }
}

pub(super) fn quantize_packed(cb: &Codebook, x: &[f32], out: &mut [u8]) {
    let bits = cb.bits();
    let mut idx = [0u8; 64];
    for (chunk, dst) in x.chunks(64).zip(out.chunks_mut(8 * bits as usize)) {
        let idx = &mut idx[..chunk.len()];
        quantize(cb, chunk, idx);
        pack::pack_unchecked(bits, idx, dst);
    }
}

pub(super) fn dequantize(cb: &Codebook, packed: &[u8], out: &mut [f32]) {
    let bits = cb.bits();
    let c = cb.centroids();
    let mut idx = [0u8; 64];
    for (chunk, src) in out.chunks_mut(64).zip(packed.chunks(8 * bits as usize)) {
        let idx = &mut idx[..chunk.len()];
        pack::unpack_unchecked(bits, src, idx);
        for (o, &i) in chunk.iter_mut().zip(idx.iter()) {
            *o = c[i as usize];
        }
    }
}

pub(super) fn dot(cb: &Codebook, q: &[f32], packed: &[u8]) -> f32 {
    let bits = cb.bits();
    if super::nibbles::takes(bits) {
        // The row blocks' order at 1 and 2 bits: a table entry per nibble.
        return super::nibbles::dot(cb, q, packed);
    }
    let b = bits as usize;
    let c = cb.centroids();
    let mut idx = [0u8; 64];
    let mut sum = 0.0f32;
    for (chunk, src) in q.chunks(64).zip(packed.chunks(8 * b)) {
        let idx = &mut idx[..chunk.len()];
        pack::unpack_unchecked(bits, src, idx);
        for (&qj, &i) in chunk.iter().zip(idx.iter()) {
            sum += qj * c[i as usize];
        }
    }
    sum
}

pub(super) fn dot_rows(
    cb: &Codebook,
    q: &[f32],
    packed_rows: &[u8],
    row_stride: usize,
    out: &mut [f32],
) {
    let row = packed_len(q.len(), cb.bits());
    for (r, o) in out.iter_mut().enumerate() {
        let start = r * row_stride;
        *o = dot(cb, q, &packed_rows[start..start + row]);
    }
}

pub(super) fn accumulate_rows(
    cb: &Codebook,
    rows: &[u8],
    stride: usize,
    weights: &[f32],
    out: &mut [f32],
) {
    let bits = cb.bits();
    let c = cb.centroids();
    let row_len = packed_len(out.len(), bits);
    let mut idx = [0u8; 64];
    for (r, &w) in weights.iter().enumerate() {
        let row = &rows[r * stride..r * stride + row_len];
        for (chunk, src) in out.chunks_mut(64).zip(row.chunks(8 * bits as usize)) {
            let idx = &mut idx[..chunk.len()];
            pack::unpack_unchecked(bits, src, idx);
            for (o, &i) in chunk.iter_mut().zip(idx.iter()) {
                *o += w * c[i as usize];
            }
        }
    }
}
