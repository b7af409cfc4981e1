//! Caller memory: pointers turned into slices after every check, and the
//! opaque objects stored in caller blobs.

use super::*;

/// `TQKV_NULL_POINTER` for NULL, `TQKV_MISALIGNED` for a pointer not
/// aligned for `T`: what every single-object pointer is checked for before
/// it is read or written.
fn non_null_aligned<T>(p: *const T) -> Result<(), Status> {
    if p.is_null() {
        Err(TQKV_NULL_POINTER)
    } else if !p.is_aligned() {
        Err(TQKV_MISALIGNED)
    } else {
        Ok(())
    }
}

/// Checks what `core::slice::from_raw_parts` requires of `(ptr, len)`
/// before any slice exists: `ptr` aligned for `T` and the span
/// `len · size_of::<T>()` at most `isize::MAX` bytes. A caller's promise
/// that the memory is valid cannot cover a span no allocation can have.
fn check_span<T>(ptr: *const T, len: usize) -> Result<(), Status> {
    if !ptr.is_aligned() {
        return Err(TQKV_MISALIGNED);
    }
    match len.checked_mul(size_of::<T>()) {
        Some(bytes) if bytes <= isize::MAX as usize => Ok(()),
        _ => Err(TQKV_TOO_LONG),
    }
}

/// `(ptr, len)` as a slice; `(NULL, 0)` is empty, `(NULL, n > 0)` an error,
/// a misaligned pointer or a span past `isize::MAX` bytes a status.
///
/// # Safety
/// A non-null `ptr` is valid for reads of `len` values for `'a`.
pub(super) unsafe fn slice<'a, T>(ptr: *const T, len: usize) -> Result<&'a [T], Status> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(TQKV_NULL_POINTER)
        };
    }
    check_span(ptr, len)?;
    // SAFETY: non-null, aligned, a span of at most isize::MAX bytes
    // (checked above) and valid for `len` reads: the caller's promise.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// As [`slice`], mutable.
///
/// # Safety
/// A non-null `ptr` is valid for reads and writes of `len` values for `'a`
/// and not aliased during that time.
pub(super) unsafe fn slice_mut<'a, T>(ptr: *mut T, len: usize) -> Result<&'a mut [T], Status> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&mut [])
        } else {
            Err(TQKV_NULL_POINTER)
        };
    }
    check_span(ptr, len)?;
    // SAFETY: non-null, aligned, at most isize::MAX bytes (checked above),
    // valid and unaliased for `len` values: the caller's promise.
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

/// The value behind an input pointer: NULL and misaligned pointers are a
/// status, checked before the reference exists.
///
/// # Safety
/// A non-null, aligned `p` is valid for reads of one `T` for `'a`.
pub(super) unsafe fn get<'a, T>(p: *const T) -> Result<&'a T, Status> {
    non_null_aligned(p)?;
    // SAFETY: non-null and aligned (checked above), valid for a read: the
    // caller's promise.
    Ok(unsafe { &*p })
}

/// A cache's caller buffer, after the same checks as [`slice`].
pub(super) fn raw(buf: *mut u8, len: usize) -> Result<RawBuf, Status> {
    if buf.is_null() {
        return Err(TQKV_NULL_POINTER);
    }
    check_span(buf, len)?;
    Ok(RawBuf { ptr: buf, len })
}

/// Writes `v` through an output pointer.
///
/// # Safety
/// A non-null `out` is valid for one write of `T`.
pub(super) unsafe fn put<T>(out: *mut T, v: T) -> Result<(), Status> {
    non_null_aligned(out)?;
    // SAFETY: non-null and valid for a write: the caller's promise.
    unsafe { out.write(v) };
    Ok(())
}

/// Tags at the start of each initialised opaque object.
pub(super) const TAG_CODEBOOK: u64 = 0x5442_4b56_4342_0001;
pub(super) const TAG_QUANTIZER: u64 = 0x5442_4b56_515a_0001;
pub(super) const TAG_CACHE: u64 = 0x5442_4b56_4341_0001;

/// What an opaque blob holds once initialised.
#[repr(C)]
struct Slot<T> {
    tag: u64,
    value: T,
}

/// A codebook in caller memory (`TQKV_CODEBOOK_WORDS` 64-bit words).
#[repr(C)]
pub struct tqkv_codebook {
    opaque: [u64; 520],
}

/// A quantiser in caller memory.
#[repr(C)]
pub struct tqkv_quantizer {
    opaque: [u64; 544],
}

/// A cache handle in caller memory (the cache's bytes live in a separate
/// caller buffer).
#[repr(C)]
pub struct tqkv_cache {
    opaque: [u64; 1120],
}

/// A caller buffer seen as bytes (the handle's view of a cache's memory).
pub(super) struct RawBuf {
    ptr: *mut u8,
    len: usize,
}

impl AsRef<[u8]> for RawBuf {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr` is non-null and valid for `len` bytes for the
        // handle's lifetime, and not written by the caller meanwhile (the
        // contract of tqkv_cache_create/open).
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl AsMut<[u8]> for RawBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_ref`; `&mut self` makes this the only view.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

// Every object fits its blob, and the blobs' u64 words align it.
const _: () = {
    assert!(size_of::<Slot<Codebook>>() <= size_of::<tqkv_codebook>());
    assert!(size_of::<Slot<Quantizer>>() <= size_of::<tqkv_quantizer>());
    assert!(size_of::<Slot<KvCache<RawBuf>>>() <= size_of::<tqkv_cache>());
    assert!(align_of::<Slot<Codebook>>() <= align_of::<u64>());
    assert!(align_of::<Slot<Quantizer>>() <= align_of::<u64>());
    assert!(align_of::<Slot<KvCache<RawBuf>>>() <= align_of::<u64>());
};

/// Stores `value` in the blob at `out` behind `tag`.
///
/// # Safety
/// A non-null `out` points to a writable blob at least as large and aligned
/// as `Slot<T>` (checked at compile time for the blob types).
pub(super) unsafe fn store<B, T>(out: *mut B, tag: u64, value: T) -> Result<(), Status> {
    non_null_aligned(out)?;
    // SAFETY: the blob is large and aligned enough (compile-time checks
    // above) and writable: the caller's promise. `write` does not read or
    // drop the old contents.
    unsafe { out.cast::<Slot<T>>().write(Slot { tag, value }) };
    Ok(())
}

/// The object in the blob at `p`, if its tag says it was initialised.
///
/// # Safety
/// A non-null `p` points to a readable blob at least as large as `Slot<T>`
/// that, if it starts with `tag`, was filled by [`store`] with a `T`.
pub(super) unsafe fn load<'a, B, T>(p: *const B, tag: u64) -> Result<&'a T, Status> {
    non_null_aligned(p)?;
    let slot = p.cast::<Slot<T>>();
    // SAFETY: the blob is readable and aligned for u64 (caller's promise);
    // the tag is its first word.
    let t = unsafe { (*slot).tag };
    if t != tag {
        return Err(TQKV_INVALID_HANDLE);
    }
    // SAFETY: the tag matches, so `store` wrote a valid `T` here.
    Ok(unsafe { &(*slot).value })
}

/// As [`load`], mutable.
///
/// # Safety
/// As [`load`], and the blob is writable and not aliased during `'a`.
pub(super) unsafe fn load_mut<'a, B, T>(p: *mut B, tag: u64) -> Result<&'a mut T, Status> {
    non_null_aligned(p)?;
    let slot = p.cast::<Slot<T>>();
    // SAFETY: as in `load`.
    let t = unsafe { (*slot).tag };
    if t != tag {
        return Err(TQKV_INVALID_HANDLE);
    }
    // SAFETY: as in `load`; the caller does not alias the blob.
    Ok(unsafe { &mut (*slot).value })
}
