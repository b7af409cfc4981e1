//! Packing, codebooks and the codebook kernels.

use super::*;
use crate::codebook;

/// Bytes of `n` codes of `bits` bits (bits outside 1..=8 count as 8).
#[unsafe(no_mangle)]
pub extern "C" fn tqkv_packed_len(n: usize, bits: u8) -> usize {
    pack::packed_len(n, bits)
}

/// Packs `indices[0..n]` into `out[0..out_len]`.
///
/// # Safety
/// The pointers are valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_pack(
    bits: u8,
    indices: *const u8,
    n: usize,
    out: *mut u8,
    out_len: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (i, o) = unsafe { (slice(indices, n)?, slice_mut(out, out_len)?) };
        pack::pack(bits, i, o).st().map(|_| ())
    })
}

/// Unpacks `n` codes from `packed[0..packed_len]` into `out[0..n]`.
///
/// # Safety
/// The pointers are valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_unpack(
    bits: u8,
    packed: *const u8,
    packed_len: usize,
    out: *mut u8,
    n: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (p, o) = unsafe { (slice(packed, packed_len)?, slice_mut(out, n)?) };
        pack::unpack(bits, p, o).st()
    })
}

/// Fills `cb` with the Lloyd–Max codebook of a rotated coordinate.
///
/// # Safety
/// `cb` points to a writable `tqkv_codebook`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_codebook_lloyd_max(
    cb: *mut tqkv_codebook,
    dim: usize,
    bits: u8,
) -> Status {
    run(|| {
        let c = Codebook::lloyd_max(dim, bits).st()?;
        // SAFETY: the caller's contract (header).
        unsafe { store(cb, TAG_CODEBOOK, c) }
    })
}

/// Fills `cb` with the N(0, 1) Lloyd–Max codebook.
///
/// # Safety
/// `cb` points to a writable `tqkv_codebook`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_codebook_gaussian(cb: *mut tqkv_codebook, bits: u8) -> Status {
    run(|| {
        let c = Codebook::gaussian(bits).st()?;
        // SAFETY: the caller's contract (header).
        unsafe { store(cb, TAG_CODEBOOK, c) }
    })
}

/// Copies the sorted centroids into `out[0..cap]` and their count to
/// `*count` (`TQKV_BUFFER_TOO_SHORT` if `cap` is smaller), and the
/// integrated MSE of one rotated unit vector to `*mse` (may be NULL).
///
/// # Safety
/// `cb` was initialised; the pointers are valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_codebook_centroids(
    cb: *const tqkv_codebook,
    out: *mut f32,
    cap: usize,
    count: *mut usize,
    mse: *mut f64,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let c: &Codebook = unsafe { load(cb, TAG_CODEBOOK) }?;
        let cents = c.centroids();
        // SAFETY: the caller's contract (header).
        unsafe { put(count, cents.len()) }?;
        if !mse.is_null() {
            // SAFETY: non-null, the caller's contract.
            unsafe { put(mse, c.mse()) }?;
        }
        // SAFETY: the caller's contract (header).
        let o = unsafe { slice_mut(out, cap) }?;
        let dst = o.get_mut(..cents.len()).ok_or(TQKV_BUFFER_TOO_SHORT)?;
        dst.copy_from_slice(cents);
        Ok(())
    })
}

/// Nearest-centroid indices of `x[0..n]` into `indices[0..n]`.
///
/// # Safety
/// `cb` was initialised; the pointers are valid for `n` values.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_quantize(
    cb: *const tqkv_codebook,
    x: *const f32,
    n: usize,
    indices: *mut u8,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (c, x, o) = unsafe {
            (
                load(cb, TAG_CODEBOOK)?,
                slice(x, n)?,
                slice_mut(indices, n)?,
            )
        };
        codebook::quantize(c, x, o).st()
    })
}

/// Quantises `x[0..n]` and packs the codes into `out[0..out_len]`.
///
/// # Safety
/// `cb` was initialised; the pointers are valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_quantize_packed(
    cb: *const tqkv_codebook,
    x: *const f32,
    n: usize,
    out: *mut u8,
    out_len: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (c, x, o) = unsafe {
            (
                load(cb, TAG_CODEBOOK)?,
                slice(x, n)?,
                slice_mut(out, out_len)?,
            )
        };
        codebook::quantize_packed(c, x, o).st().map(|_| ())
    })
}

/// Centroids of the `n` packed codes in `packed[0..packed_len]` into
/// `out[0..n]`.
///
/// # Safety
/// `cb` was initialised; the pointers are valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_dequantize(
    cb: *const tqkv_codebook,
    packed: *const u8,
    packed_len: usize,
    out: *mut f32,
    n: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (c, p, o) = unsafe {
            (
                load(cb, TAG_CODEBOOK)?,
                slice(packed, packed_len)?,
                slice_mut(out, n)?,
            )
        };
        codebook::dequantize(c, p, o).st()
    })
}

/// `*result = Σ_j q[j]·c[idx_j]` over the `n` packed codes of `packed`.
///
/// # Safety
/// `cb` was initialised; the pointers are valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_dot(
    cb: *const tqkv_codebook,
    q: *const f32,
    n: usize,
    packed: *const u8,
    packed_len: usize,
    result: *mut f32,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (c, q, p) = unsafe {
            (
                load(cb, TAG_CODEBOOK)?,
                slice(q, n)?,
                slice(packed, packed_len)?,
            )
        };
        let d = codebook::dot(c, q, p).st()?;
        // SAFETY: the caller's contract (header).
        unsafe { put(result, d) }
    })
}

/// [`tqkv_dot`] of `q` against `nrows` packed rows `stride` bytes apart
/// in `rows[0..rows_len]`, into `out[0..nrows]`.
///
/// # Safety
/// `cb` was initialised; the pointers are valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_dot_rows(
    cb: *const tqkv_codebook,
    q: *const f32,
    n: usize,
    rows: *const u8,
    rows_len: usize,
    stride: usize,
    out: *mut f32,
    nrows: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (c, q, r, o) = unsafe {
            (
                load(cb, TAG_CODEBOOK)?,
                slice(q, n)?,
                slice(rows, rows_len)?,
                slice_mut(out, nrows)?,
            )
        };
        codebook::dot_rows(c, q, r, stride, o).st()
    })
}
