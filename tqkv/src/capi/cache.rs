//! The compressed cache and attention.

use super::*;

/// What a cache holds (the C mirror of `CacheConfig`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tqkv_cache_config {
    /// 0 KV, 1 KQV, 2 QKQV, or 3 custom (the `key_*` and `value_*` fields).
    pub scheme: u32,
    /// Budget n in bits per coordinate, 2..=8 (0 for a custom scheme).
    pub budget: u32,
    /// KV heads.
    pub heads: u32,
    /// Head dimension.
    pub dim: u32,
    /// Tokens the buffer holds.
    pub capacity: u32,
    /// QJL projection: 0 Gaussian, 1 Hadamard.
    pub projection: u32,
    /// Norm precision: 0 f16, 1 f32.
    pub norm: u32,
    /// Head dimension of values (0: the same as `dim`); multi-head latent
    /// attention stores keys of 576 beside values of 512.
    pub value_dim: u32,
    /// Seed of the rotations and projections.
    pub seed: u64,
    /// Custom scheme only (else 0): the key quantiser, `TQKV_QUANTIZER_*`.
    pub key_quantizer: u32,
    /// Custom scheme only (else 0): key bits per coordinate.
    pub key_bits: u32,
    /// Custom scheme only (else 0): the value quantiser.
    pub value_quantizer: u32,
    /// Custom scheme only (else 0): value bits per coordinate.
    pub value_bits: u32,
}

fn config_of(c: &tqkv_cache_config) -> Result<CacheConfig, Status> {
    let bits = |b: u32| u8::try_from(b).map_err(|_| TQKV_INVALID_BITS);
    let custom = [c.key_quantizer, c.key_bits, c.value_quantizer, c.value_bits];
    let base = if c.scheme == TQKV_SCHEME_CUSTOM {
        if c.budget != 0 {
            return Err(TQKV_INVALID_PARAMETER);
        }
        CacheConfig::new(Scheme::Kqv, 4, 0, 0, 0)
            .with_keys(QuantizerSpec::new(
                kind_of(c.key_quantizer)?,
                bits(c.key_bits)?,
            ))
            .with_values(QuantizerSpec::new(
                kind_of(c.value_quantizer)?,
                bits(c.value_bits)?,
            ))
    } else {
        // Fields that a scheme does not read must be zero, not ignored.
        if custom != [0; 4] {
            return Err(TQKV_INVALID_PARAMETER);
        }
        let budget = bits(c.budget)?;
        if !(2..=8).contains(&budget) {
            return Err(TQKV_INVALID_BITS);
        }
        CacheConfig::new(scheme_of(c.scheme)?, budget, 0, 0, 0)
    };
    let mut config = base
        .with_seed(c.seed)
        .with_projection(projection_of(c.projection)?)
        .with_norm(norm_of(c.norm)?);
    config.heads = c.heads as usize;
    config.dim = c.dim as usize;
    config.value_dim = match c.value_dim {
        0 => c.dim as usize,
        d => d as usize,
    };
    config.capacity = c.capacity as usize;
    Ok(config)
}

/// Bytes a cache of `config` needs.
///
/// # Safety
/// The pointers are valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_cache_bytes_needed(
    config: *const tqkv_cache_config,
    bytes: *mut usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let c = unsafe { get(config) }?;
        let n = config_of(c)?.bytes_needed().st()?;
        // SAFETY: the caller's contract (header).
        unsafe { put(bytes, n) }
    })
}

/// A new empty cache in `buf[0..len]`, its handle in `cache`.
///
/// # Safety
/// `buf` is valid for `len` bytes and, with `cache`, outlives every use of
/// the handle; the caller does not write `buf` while the handle is in use.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_cache_create(
    cache: *mut tqkv_cache,
    config: *const tqkv_cache_config,
    buf: *mut u8,
    len: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let c = unsafe { get(config) }?;
        let kv = KvCache::new(config_of(c)?, raw(buf, len)?).st()?;
        // SAFETY: the caller's contract (header).
        unsafe { store(cache, TAG_CACHE, kv) }
    })
}

/// Opens a cache saved in `buf[0..len]` (untrusted bytes: every field is
/// validated), its handle in `cache`; tokens can be pushed after.
///
/// # Safety
/// As [`tqkv_cache_create`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_cache_open(
    cache: *mut tqkv_cache,
    buf: *mut u8,
    len: usize,
) -> Status {
    run(|| {
        let kv = KvCache::from_bytes(raw(buf, len)?).st()?;
        // SAFETY: the caller's contract (header).
        unsafe { store(cache, TAG_CACHE, kv) }
    })
}

/// Appends one token: `k` holds `heads·dim` floats, `v` `heads·value_dim`.
///
/// # Safety
/// `cache` was created or opened; the pointers are valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_cache_push(
    cache: *mut tqkv_cache,
    k: *const f32,
    k_len: usize,
    v: *const f32,
    v_len: usize,
) -> Status {
    // SAFETY: forwarded from the caller's contract.
    unsafe { push_with(cache, k, k_len, v, v_len, KvCache::push) }
}

/// Appends `k_len / (heads·dim)` tokens at once (a prefill): `k` and `v`
/// hold whole tokens of `heads·dim` floats, token-major. The bytes stored
/// equal those of pushing the tokens one by one; on error nothing is
/// stored.
///
/// # Safety
/// `cache` was created or opened; the pointers are valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_cache_push_batch(
    cache: *mut tqkv_cache,
    k: *const f32,
    k_len: usize,
    v: *const f32,
    v_len: usize,
) -> Status {
    // SAFETY: forwarded from the caller's contract.
    unsafe { push_with(cache, k, k_len, v, v_len, KvCache::push_batch) }
}

/// `KvCache::push` or `KvCache::push_batch`.
type Push = fn(&mut KvCache<RawBuf>, &[f32], &[f32]) -> Result<(), Error>;

/// The body of the two push entry points: loads the cache and the two
/// arrays, then runs `push` on them.
///
/// # Safety
/// As [`tqkv_cache_push`].
unsafe fn push_with(
    cache: *mut tqkv_cache,
    k: *const f32,
    k_len: usize,
    v: *const f32,
    v_len: usize,
    push: Push,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (c, k, v) = unsafe {
            (
                load_mut::<_, KvCache<RawBuf>>(cache, TAG_CACHE)?,
                slice(k, k_len)?,
                slice(v, v_len)?,
            )
        };
        push(c, k, v).st()
    })
}

/// Tokens stored (`*len`), capacity (`*capacity`, may be NULL) and the
/// scratch floats [`tqkv_attend`] needs for one query head (`*scratch`,
/// may be NULL; [`tqkv_attend_scratch_len`] for more).
///
/// # Safety
/// `cache` was created or opened; the pointers are valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_cache_info(
    cache: *const tqkv_cache,
    len: *mut usize,
    capacity: *mut usize,
    scratch: *mut usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let c: &KvCache<RawBuf> = unsafe { load(cache, TAG_CACHE) }?;
        // SAFETY: the caller's contract (header).
        unsafe { put(len, c.len()) }?;
        if !capacity.is_null() {
            // SAFETY: non-null, the caller's contract.
            unsafe { put(capacity, c.capacity()) }?;
        }
        if !scratch.is_null() {
            // SAFETY: non-null, the caller's contract.
            unsafe { put(scratch, attention::scratch_len(c, 1)) }?;
        }
        Ok(())
    })
}

/// Copies the encoding of token `token`'s key (`side` 0) or value
/// (`side` 1) of KV head `head` into `out[0..out_len]`: the quantiser's encoded
/// length, ready for [`tqkv_decode`]. The cache stores each field of
/// the encodings in its own region, so this is how a C caller reads one.
///
/// # Safety
/// `cache` was created or opened; `out` is valid for `out_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_cache_token(
    cache: *const tqkv_cache,
    side: u32,
    head: usize,
    token: usize,
    out: *mut u8,
    out_len: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (c, out) = unsafe {
            (
                load::<_, KvCache<RawBuf>>(cache, TAG_CACHE)?,
                slice_mut(out, out_len)?,
            )
        };
        match side {
            0 => c.key(head, token, out).st(),
            1 => c.value(head, token, out).st(),
            _ => Err(Error::InvalidParameter("side is 0 (keys) or 1 (values)")).st(),
        }
    })
}

/// The scratch floats (`*scratch`) that [`tqkv_attend`] and
/// [`tqkv_attend_many`] need for `q_len` query floats (a multiple of
/// `dim`).
///
/// # Safety
/// `cache` was created or opened; `scratch` is valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_attend_scratch_len(
    cache: *const tqkv_cache,
    q_len: usize,
    scratch: *mut usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let c: &KvCache<RawBuf> = unsafe { load(cache, TAG_CACHE) }?;
        let queries = queries_of(c, q_len)?;
        // SAFETY: the caller's contract (header).
        unsafe { put(scratch, attention::scratch_len(c, queries)) }
    })
}

/// The query vectors in `q_len` query floats (a positive multiple of `dim`).
pub(super) fn queries_of(cache: &KvCache<RawBuf>, q_len: usize) -> Result<usize, Status> {
    let d = cache.config().dim;
    if q_len == 0 || !q_len.is_multiple_of(d) {
        return Err(Error::LengthMismatch {
            expected: d,
            found: q_len,
        })
        .st();
    }
    Ok(q_len / d)
}

/// Attention of several query positions in one pass, position `p` over
/// tokens `0..limits[p]`: `q[0..q_len]` holds `n_limits` positions of the
/// same number of query heads, `out[0..q_len / dim · value_dim]` their
/// outputs.
///
/// # Safety
/// `cache` was created or opened; the pointers are valid for their lengths.
#[allow(clippy::too_many_arguments)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_attend_many(
    cache: *const tqkv_cache,
    head: usize,
    q: *const f32,
    q_len: usize,
    limits: *const usize,
    n_limits: usize,
    out: *mut f32,
    scratch: *mut f32,
    scratch_len: usize,
) -> Status {
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        tqkv_attend_many_scored(
            cache,
            head,
            TQKV_SCORING_EXACT,
            q,
            q_len,
            limits,
            n_limits,
            out,
            scratch,
            scratch_len,
        )
    }
}

/// `scoring` of `tqkv_attend_many_scored`: keys scored in f32.
pub const TQKV_SCORING_EXACT: u32 = 0;
/// `scoring` of `tqkv_attend_many_scored`: keys scored from 8-bit integers
/// (`attention::Scoring::Int8`).
pub const TQKV_SCORING_INT8: u32 = 1;

/// [`tqkv_attend_many`] with the keys scored as `scoring` says
/// (`TQKV_SCORING_*`; another value is `TQKV_INVALID_PARAMETER`).
///
/// # Safety
/// As [`tqkv_attend_many`].
#[allow(clippy::too_many_arguments)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_attend_many_scored(
    cache: *const tqkv_cache,
    head: usize,
    scoring: u32,
    q: *const f32,
    q_len: usize,
    limits: *const usize,
    n_limits: usize,
    out: *mut f32,
    scratch: *mut f32,
    scratch_len: usize,
) -> Status {
    run(|| {
        let scoring = match scoring {
            TQKV_SCORING_EXACT => attention::Scoring::Exact,
            TQKV_SCORING_INT8 => attention::Scoring::Int8,
            _ => return Err(Error::InvalidParameter("unknown scoring")).st(),
        };
        // SAFETY: the caller's contract (header).
        let (c, q, l, o, s) = unsafe {
            (
                load::<_, KvCache<RawBuf>>(cache, TAG_CACHE)?,
                slice(q, q_len)?,
                slice(limits, n_limits)?,
                slice_mut(out, out_len(cache, q_len)?)?,
                slice_mut(scratch, scratch_len)?,
            )
        };
        let backend = crate::Backend::detect();
        attention::attend_many_with(backend, scoring, c, head, q, l, o, s).st()
    })
}

/// Floats of attention's output for `q_len` query floats:
/// `q_len / dim · value_dim` (`q_len` itself unless values have a
/// dimension of their own).
///
/// # Safety
/// `cache` was created or opened.
pub(super) unsafe fn out_len(cache: *const tqkv_cache, q_len: usize) -> Result<usize, Status> {
    // SAFETY: the caller's contract.
    let c: &KvCache<RawBuf> = unsafe { load(cache, TAG_CACHE) }?;
    let config = c.config();
    Ok(q_len / config.dim * config.value_dim)
}

/// Attention of the query head(s) `q[0..q_len]` (a multiple of `dim`:
/// grouped-query heads sharing KV head `head`, scored in one pass) over the
/// cache, into `out[0..q_len / dim · value_dim]`, using
/// `scratch[0..scratch_len]`.
///
/// # Safety
/// `cache` was created or opened; the pointers are valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_attend(
    cache: *const tqkv_cache,
    head: usize,
    q: *const f32,
    q_len: usize,
    out: *mut f32,
    scratch: *mut f32,
    scratch_len: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (c, q, o, s) = unsafe {
            (
                load::<_, KvCache<RawBuf>>(cache, TAG_CACHE)?,
                slice(q, q_len)?,
                slice_mut(out, out_len(cache, q_len)?)?,
                slice_mut(scratch, scratch_len)?,
            )
        };
        attention::attend(c, head, q, o, s).st()
    })
}
