//! Quantising to codes (one a byte, or packed) and decoding codes back to
//! their centroids: the element-wise kernels, and the forms the encoder
//! calls on a backend already checked.

#[cfg(target_arch = "aarch64")]
use super::neon;
use super::pack::packed_len;
use super::{Codebook, scalar};
#[cfg(target_arch = "x86_64")]
use super::{avx2, avx512};
use crate::backend::{Checked, on_backend};
use crate::error::{finite_on, need};
use crate::{Backend, Error};

/// Quantises every `x[j]` to the index of its nearest centroid, into
/// `out[j]` (one index per byte, unpacked), on the detected backend.
/// Indices are identical on every backend.
///
/// # Errors
/// [`Error::BufferTooShort`] if `out` is shorter than `x`; [`Error::NonFinite`] if
/// `x` holds a NaN or an infinity.
///
/// ```
/// use tqkv::{codebook, Codebook};
///
/// let cb = Codebook::gaussian(2)?;
/// let mut idx = [0u8; 4];
/// codebook::quantize(&cb, &[-3.0, -0.1, 0.1, 3.0], &mut idx)?;
/// assert_eq!(idx, [0, 1, 2, 3]);
/// assert_eq!(codebook::quantize(&cb, &[f32::NAN], &mut idx), Err(tqkv::Error::NonFinite));
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn quantize(cb: &Codebook, x: &[f32], out: &mut [u8]) -> Result<(), Error> {
    quantize_on(Backend::detect(), cb, x, out)
}

/// [`quantize`] on a chosen backend.
///
/// # Errors
/// As [`quantize`], plus [`Error::BackendUnavailable`].
///
/// ```
/// use tqkv::{codebook, Backend, Codebook};
///
/// let cb = Codebook::lloyd_max(64, 3)?;
/// let x: Vec<f32> = (0..64).map(|i| (i as f32 - 32.0) / 256.0).collect();
/// let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
/// codebook::quantize_on(Backend::Scalar, &cb, &x, &mut a)?;
/// codebook::quantize_on(Backend::detect(), &cb, &x, &mut b)?;
/// assert_eq!(a, b); // identical on every backend
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn quantize_on(
    backend: Backend,
    cb: &Codebook,
    x: &[f32],
    out: &mut [u8],
) -> Result<(), Error> {
    let backend = backend.check()?;
    finite_on(backend, x)?;
    quantize_in(backend, cb, x, out)
}

/// [`quantize_on`] on a backend already checked.
pub(crate) fn quantize_in(
    backend: Checked,
    cb: &Codebook,
    x: &[f32],
    out: &mut [u8],
) -> Result<(), Error> {
    need(x.len(), out.len())?;
    let out = &mut out[..x.len()];
    on_backend!(backend, scalar::quantize(cb, x, out), quantize(cb, x, out))
}

/// Quantises `x` and packs the indices into `out` in one pass, on the
/// detected backend; returns the bytes written, `packed_len(x.len(), bits)`.
/// The bytes are identical on every backend.
///
/// # Errors
/// [`Error::BufferTooShort`] if `out` is shorter than that; [`Error::NonFinite`]
/// if `x` holds a NaN or an infinity.
///
/// ```
/// use tqkv::{codebook, pack, Codebook};
///
/// let cb = Codebook::lloyd_max(128, 4)?;
/// let x = [0.01f32; 128];
/// let mut packed = [0u8; 64];
/// assert_eq!(codebook::quantize_packed(&cb, &x, &mut packed)?, pack::packed_len(128, 4));
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn quantize_packed(cb: &Codebook, x: &[f32], out: &mut [u8]) -> Result<usize, Error> {
    quantize_packed_on(Backend::detect(), cb, x, out)
}

/// [`quantize_packed`] on a chosen backend.
///
/// # Errors
/// As [`quantize_packed`], plus [`Error::BackendUnavailable`].
pub fn quantize_packed_on(
    backend: Backend,
    cb: &Codebook,
    x: &[f32],
    out: &mut [u8],
) -> Result<usize, Error> {
    let backend = backend.check()?;
    finite_on(backend, x)?;
    quantize_packed_in(backend, cb, x, out)
}

/// [`quantize_packed_on`] on a backend already checked.
pub(crate) fn quantize_packed_in(
    backend: Checked,
    cb: &Codebook,
    x: &[f32],
    out: &mut [u8],
) -> Result<usize, Error> {
    let needed = packed_len(x.len(), cb.bits());
    need(needed, out.len())?;
    let out = &mut out[..needed];
    on_backend!(
        backend,
        scalar::quantize_packed(cb, x, out),
        quantize_packed(cb, x, out)
    )?;
    Ok(needed)
}

/// [`quantize_packed_in`] that also writes each element's centroid (what
/// [`dequantize_in`] of the codes gives, bit for bit) to `centroids`
/// (`x.len()` of them).
pub(crate) fn quantize_packed_centroids_in(
    backend: Checked,
    cb: &Codebook,
    x: &[f32],
    out: &mut [u8],
    centroids: &mut [f32],
) -> Result<usize, Error> {
    let needed = packed_len(x.len(), cb.bits());
    need(needed, out.len())?;
    need(x.len(), centroids.len())?;
    let (out, centroids) = (&mut out[..needed], &mut centroids[..x.len()]);
    on_backend!(
        backend,
        {
            scalar::quantize_packed(cb, x, out);
            scalar::dequantize(cb, out, centroids)
        },
        quantize_packed_centroids(cb, x, out, centroids)
    )?;
    Ok(needed)
}

/// Decodes `out.len()` packed indices to their centroids, on the detected
/// backend (identical results on every backend).
///
/// # Errors
/// [`Error::BufferTooShort`] if `packed` is shorter than
/// `packed_len(out.len(), bits)`.
///
/// ```
/// use tqkv::{codebook, Codebook};
///
/// let cb = Codebook::gaussian(1)?;
/// let mut out = [0.0f32; 8];
/// codebook::dequantize(&cb, &[0b1000_0001], &mut out)?;
/// assert_eq!(out[0], cb.centroids()[1]);
/// assert_eq!(out[1], cb.centroids()[0]);
/// # Ok::<(), tqkv::Error>(())
/// ```
pub fn dequantize(cb: &Codebook, packed: &[u8], out: &mut [f32]) -> Result<(), Error> {
    dequantize_on(Backend::detect(), cb, packed, out)
}

/// [`dequantize`] on a chosen backend.
///
/// # Errors
/// As [`dequantize`], plus [`Error::BackendUnavailable`].
pub fn dequantize_on(
    backend: Backend,
    cb: &Codebook,
    packed: &[u8],
    out: &mut [f32],
) -> Result<(), Error> {
    dequantize_in(backend.check()?, cb, packed, out)
}

/// [`dequantize_on`] on a backend already checked.
pub(crate) fn dequantize_in(
    backend: Checked,
    cb: &Codebook,
    packed: &[u8],
    out: &mut [f32],
) -> Result<(), Error> {
    let needed = packed_len(out.len(), cb.bits());
    need(needed, packed.len())?;
    let packed = &packed[..needed];
    on_backend!(
        backend,
        scalar::dequantize(cb, packed, out),
        dequantize(cb, packed, out)
    )
}
