//! The quantisers.

use super::*;

/// Norms stored as IEEE binary16.
pub const TQKV_NORM_F16: u32 = 0;
/// Norms stored as IEEE binary32.
pub const TQKV_NORM_F32: u32 = 1;
/// The dense Gaussian QJL projection.
pub const TQKV_PROJECTION_GAUSSIAN: u32 = 0;
/// The randomised Hadamard QJL projection.
pub const TQKV_PROJECTION_HADAMARD: u32 = 1;
/// The scheme KV (baseline keys and values).
pub const TQKV_SCHEME_KV: u32 = 0;
/// The scheme KQV (MSE keys, prod values).
pub const TQKV_SCHEME_KQV: u32 = 1;
/// The scheme QKQV (prod keys and values).
pub const TQKV_SCHEME_QKQV: u32 = 2;
/// A cache configuration naming each side's quantiser and bits.
pub const TQKV_SCHEME_CUSTOM: u32 = 3;
/// The baseline quantiser (no rotation).
pub const TQKV_QUANTIZER_BASELINE: u32 = 0;
/// TurboQuant_mse.
pub const TQKV_QUANTIZER_MSE: u32 = 1;
/// TurboQuant_prod.
pub const TQKV_QUANTIZER_PROD: u32 = 2;

pub(super) fn projection_of(p: u32) -> Result<Projection, Status> {
    match p {
        TQKV_PROJECTION_GAUSSIAN => Ok(Projection::Gaussian),
        TQKV_PROJECTION_HADAMARD => Ok(Projection::Hadamard),
        _ => Err(TQKV_INVALID_PARAMETER),
    }
}

pub(super) fn norm_of(n: u32) -> Result<NormPrecision, Status> {
    match n {
        TQKV_NORM_F16 => Ok(NormPrecision::F16),
        TQKV_NORM_F32 => Ok(NormPrecision::F32),
        _ => Err(TQKV_INVALID_PARAMETER),
    }
}

pub(super) fn kind_of(k: u32) -> Result<QuantizerKind, Status> {
    match k {
        TQKV_QUANTIZER_BASELINE => Ok(QuantizerKind::Baseline),
        TQKV_QUANTIZER_MSE => Ok(QuantizerKind::Mse),
        TQKV_QUANTIZER_PROD => Ok(QuantizerKind::Prod),
        _ => Err(TQKV_INVALID_PARAMETER),
    }
}

pub(super) fn scheme_of(s: u32) -> Result<Scheme, Status> {
    match s {
        TQKV_SCHEME_KV => Ok(Scheme::Kv),
        TQKV_SCHEME_KQV => Ok(Scheme::Kqv),
        TQKV_SCHEME_QKQV => Ok(Scheme::Qkqv),
        _ => Err(TQKV_INVALID_PARAMETER),
    }
}

/// Fills `qz` with a TurboQuant_mse quantiser.
///
/// # Safety
/// `qz` points to a writable `tqkv_quantizer`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_quantizer_mse(
    qz: *mut tqkv_quantizer,
    dim: usize,
    bits: u8,
    seed: u64,
    norm: u32,
) -> Status {
    run(|| {
        let q = MseQuantizer::new(dim, bits, seed)
            .st()?
            .with_norm_precision(norm_of(norm)?);
        // SAFETY: the caller's contract (header).
        unsafe { store(qz, TAG_QUANTIZER, Quantizer::Mse(q)) }
    })
}

/// Fills `qz` with a TurboQuant_prod quantiser.
///
/// # Safety
/// `qz` points to a writable `tqkv_quantizer`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_quantizer_prod(
    qz: *mut tqkv_quantizer,
    dim: usize,
    bits: u8,
    seed: u64,
    projection: u32,
    norm: u32,
) -> Status {
    run(|| {
        let q = ProdQuantizer::new(dim, bits, seed, projection_of(projection)?)
            .st()?
            .with_norm_precision(norm_of(norm)?);
        // SAFETY: the caller's contract (header).
        unsafe { store(qz, TAG_QUANTIZER, Quantizer::Prod(q)) }
    })
}

/// Fills `qz` with the paper's KV baseline quantiser.
///
/// # Safety
/// `qz` points to a writable `tqkv_quantizer`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_quantizer_baseline(
    qz: *mut tqkv_quantizer,
    dim: usize,
    bits: u8,
    norm: u32,
) -> Status {
    run(|| {
        let q = BaselineQuantizer::new(dim, bits)
            .st()?
            .with_norm_precision(norm_of(norm)?);
        // SAFETY: the caller's contract (header).
        unsafe { store(qz, TAG_QUANTIZER, Quantizer::Baseline(q)) }
    })
}

/// Fills `k` and `v` with a scheme's quantisers under a budget of `n` bits.
///
/// # Safety
/// `k` and `v` point to distinct writable `tqkv_quantizer`s.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_scheme_quantizers(
    scheme: u32,
    n: u8,
    dim: usize,
    seed: u64,
    projection: u32,
    k: *mut tqkv_quantizer,
    v: *mut tqkv_quantizer,
) -> Status {
    run(|| {
        let (kq, vq) = scheme_of(scheme)?
            .quantizers(n, dim, seed, projection_of(projection)?)
            .st()?;
        if k.is_null() || v.is_null() {
            return Err(TQKV_NULL_POINTER);
        }
        // SAFETY: the caller's contract (header).
        unsafe {
            store(k, TAG_QUANTIZER, kq)?;
            store(v, TAG_QUANTIZER, vq)
        }
    })
}

/// Bytes of one encoded vector (`*len`) and the bits per coordinate spent,
/// side information included (`*bits`, may be NULL).
///
/// # Safety
/// `qz` was initialised; the pointers are valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_quantizer_info(
    qz: *const tqkv_quantizer,
    len: *mut usize,
    bits: *mut f64,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let q: &Quantizer = unsafe { load(qz, TAG_QUANTIZER) }?;
        // SAFETY: the caller's contract (header).
        unsafe { put(len, q.encoded_len()) }?;
        if !bits.is_null() {
            // SAFETY: non-null, the caller's contract.
            unsafe { put(bits, q.bits_per_coordinate()) }?;
        }
        Ok(())
    })
}

/// Encodes `x[0..n]` into `out[0..out_len]`.
///
/// # Safety
/// `qz` was initialised; the pointers are valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_encode(
    qz: *const tqkv_quantizer,
    x: *const f32,
    n: usize,
    out: *mut u8,
    out_len: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (q, x, o) = unsafe {
            (
                load::<_, Quantizer>(qz, TAG_QUANTIZER)?,
                slice(x, n)?,
                slice_mut(out, out_len)?,
            )
        };
        q.encode(x, o).st()
    })
}

/// Decodes `code[0..code_len]` into `out[0..n]`.
///
/// # Safety
/// `qz` was initialised; the pointers are valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_decode(
    qz: *const tqkv_quantizer,
    code: *const u8,
    code_len: usize,
    out: *mut f32,
    n: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (q, c, o) = unsafe {
            (
                load::<_, Quantizer>(qz, TAG_QUANTIZER)?,
                slice(code, code_len)?,
                slice_mut(out, n)?,
            )
        };
        q.decode(c, o).st()
    })
}
