//! Partial attention states: one decode split across the caller's threads.
//!
//! A state lives in a caller buffer of floats (`tqkv_partial_len`); each
//! thread adds its own range of tokens to its own state
//! (`tqkv_attend_partial`), then the states merge (`tqkv_partial_merge`)
//! and the merged one gives the output (`tqkv_partial_finish`), equal to
//! `tqkv_attend` over all the tokens within 1e-4 relative.

use super::cache::{out_len, queries_of};
use super::*;
use crate::attention::Partial;

/// The floats of a partial state for the query heads of `q_len` query
/// floats (a multiple of `dim`), into `*len`.
///
/// # Safety
/// `cache` was created or opened; `len` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_partial_len(
    cache: *const tqkv_cache,
    q_len: usize,
    len: *mut usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let c: &KvCache<RawBuf> = unsafe { load(cache, TAG_CACHE) }?;
        let queries = queries_of(c, q_len)?;
        // SAFETY: the caller's contract (header).
        unsafe { put(len, Partial::len_for(c, queries)) }
    })
}

/// Empties the state in `state[0..state_len]` for `q_len` query floats.
///
/// # Safety
/// `cache` was created or opened; `state` is valid for `state_len` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_partial_init(
    cache: *const tqkv_cache,
    q_len: usize,
    state: *mut f32,
    state_len: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (c, s) = unsafe {
            (
                load::<_, KvCache<RawBuf>>(cache, TAG_CACHE)?,
                slice_mut(state, state_len)?,
            )
        };
        Partial::new(c, queries_of(c, q_len)?, s).st().map(drop)
    })
}

/// Adds tokens `start..end` of KV head `head` to the state of the query
/// heads `q[0..q_len]`, using `scratch[0..scratch_len]`.
///
/// # Safety
/// `cache` was created or opened; the pointers are valid for their lengths
/// and `state` overlaps none of the others.
#[allow(clippy::too_many_arguments)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_attend_partial(
    cache: *const tqkv_cache,
    head: usize,
    q: *const f32,
    q_len: usize,
    start: usize,
    end: usize,
    state: *mut f32,
    state_len: usize,
    scratch: *mut f32,
    scratch_len: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (c, q, st, s) = unsafe {
            (
                load::<_, KvCache<RawBuf>>(cache, TAG_CACHE)?,
                slice(q, q_len)?,
                slice_mut(state, state_len)?,
                slice_mut(scratch, scratch_len)?,
            )
        };
        let mut partial = Partial::resume(c, queries_of(c, q.len())?, st).st()?;
        attention::attend_partial(c, head, q, start..end, &mut partial, s).st()
    })
}

/// `state` ← the state of both its tokens and `other`'s (disjoint ranges,
/// the same query heads); each `state_len` floats, not overlapping.
///
/// # Safety
/// `cache` was created or opened; `state` and `other` are valid for
/// `state_len` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_partial_merge(
    cache: *const tqkv_cache,
    q_len: usize,
    state: *mut f32,
    other: *const f32,
    state_len: usize,
) -> Status {
    run(|| {
        // Merging a state into itself would alias a write with a read.
        let bytes = state_len.saturating_mul(size_of::<f32>());
        let (a, b) = (state as usize, other as usize);
        if state_len > 0 && a < b.saturating_add(bytes) && b < a.saturating_add(bytes) {
            return Err(TQKV_INVALID_PARAMETER);
        }
        // SAFETY: the caller's contract (header); the two spans do not
        // overlap (checked above).
        let (c, st, ot) = unsafe {
            (
                load::<_, KvCache<RawBuf>>(cache, TAG_CACHE)?,
                slice_mut(state, state_len)?,
                slice(other, state_len)?,
            )
        };
        attention::merge_buffers(c, queries_of(c, q_len)?, st, ot).st()
    })
}

/// `out[0..q_len / dim · value_dim]` ← the attention output of the state
/// (zeros for a query head that saw no token), using
/// `scratch[0..scratch_len]` (at least `value_dim` floats).
///
/// # Safety
/// `cache` was created or opened; the pointers are valid for their lengths.
#[allow(clippy::too_many_arguments)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tqkv_partial_finish(
    cache: *const tqkv_cache,
    q_len: usize,
    state: *const f32,
    state_len: usize,
    out: *mut f32,
    scratch: *mut f32,
    scratch_len: usize,
) -> Status {
    run(|| {
        // SAFETY: the caller's contract (header).
        let (c, st, o, s) = unsafe {
            (
                load::<_, KvCache<RawBuf>>(cache, TAG_CACHE)?,
                slice(state, state_len)?,
                slice_mut(out, out_len(cache, q_len)?)?,
                slice_mut(scratch, scratch_len)?,
            )
        };
        let backend = Backend::detect().check().st()?;
        attention::finish_buffer(backend, c, queries_of(c, q_len)?, st, o, s).st()
    })
}
