//! The codebook kernels once, generic over a small lane trait; the AVX2,
//! AVX-512 and NEON backends instantiate them inside `#[target_feature]`
//! functions (see `entry_points!`).
//!
//! Shape: codes move through a 64-entry stack buffer of one index per byte.
//! Quantisation fills it `LANES` at a time (vector compares against the
//! thresholds) and packs it; decoding unpacks into it and then looks the
//! centroids up `LANES` at a time from a table held in registers (or a
//! gather where a backend's registers cannot hold it), in loops compiled
//! once per codebook width. Elements past the last whole vector use the
//! scalar code, so every length and alignment is handled. Indices and packed bytes
//! are identical to the scalar kernels'; `dot` sums in a different order
//! (one accumulator per lane), within the documented tolerance.

use super::{Codebook, pack};
use crate::vector::F32Vector;

/// What the codebook kernels need of a register beyond [`F32Vector`].
///
/// # Safety
///
/// As [`F32Vector`]: every method runs only where the backend's target
/// features are available, and the pointer methods need the stated valid
/// memory.
pub(super) unsafe trait Lanes: F32Vector {
    /// The same number of i32 lanes (code indices).
    type Idx: Copy;
    /// Centroids prepared for [`lookup`](Self::lookup).
    type Lut<'a>;
    /// Thresholds prepared for [`quantize`](Self::quantize).
    type Thr<'a>;

    /// Prepares the centroid table of `cb`.
    unsafe fn lut(cb: &Codebook) -> Self::Lut<'_>;
    /// Prepares the thresholds of `cb`.
    unsafe fn thr(cb: &Codebook) -> Self::Thr<'_>;
    /// `LANES` bytes at `p` (indices) widened to i32 lanes.
    unsafe fn widen(p: *const u8) -> Self::Idx;
    /// i32 lanes (each < 256) narrowed to `LANES` bytes at `p`.
    unsafe fn narrow(i: Self::Idx, p: *mut u8);
    /// `centroids[i]` per lane (every lane `< 2^bits`).
    unsafe fn lookup(lut: &Self::Lut<'_>, i: Self::Idx) -> Self;
    /// [`lookup`](Self::lookup) for a codebook of `B` bits known when
    /// compiling, so a backend whose lookup differs by width has no branch
    /// in the loop (which kept the AVX2 value sums from staying in
    /// registers).
    #[inline(always)]
    unsafe fn lookup_bits<const B: u8>(lut: &Self::Lut<'_>, i: Self::Idx) -> Self {
        // SAFETY: forwarded from the caller.
        unsafe { Self::lookup(lut, i) }
    }
    /// The centroids of the `4·LANES` codes at `p` (one byte each, every
    /// one `< 2^B`) as four registers: the four [`lookup_bits`] of `LANES`
    /// codes each (the default), or the same values by a faster way for a
    /// whole group where the backend has one.
    ///
    /// [`lookup_bits`]: Self::lookup_bits
    #[inline(always)]
    unsafe fn lookup_four<const B: u8>(lut: &Self::Lut<'_>, p: *const u8) -> [Self; 4] {
        // SAFETY: forwarded from the caller.
        unsafe { lookup_each::<Self, B>(lut, p) }
    }
    /// `#{j : x > thresholds[j]}` per lane (NaN → 0), as the scalar kernel.
    unsafe fn quantize(thr: &Self::Thr<'_>, x: Self) -> Self::Idx;
    /// Scores whole blocks of rows at once where the backend has a faster
    /// way than one row at a time; returns how many leading rows (a prefix
    /// of `out`) it scored. Arguments as for [`dot_rows`], validated.
    #[inline(always)]
    unsafe fn dot_row_blocks(
        _cb: &Codebook,
        _q: &[f32],
        _rows: &[u8],
        _stride: usize,
        _out: &mut [f32],
    ) -> usize {
        0
    }
    /// One row's score where [`dot_row_blocks`](Self::dot_row_blocks)
    /// takes a single row in an order of its own, so that [`dot`] of a row
    /// has the bits [`dot_rows`] gives it; `None` for the portable loop.
    /// Arguments as for [`dot`], validated.
    #[inline(always)]
    unsafe fn dot_one(_cb: &Codebook, _q: &[f32], _packed: &[u8]) -> Option<f32> {
        None
    }
    /// Does all of [`accumulate_rows`] where the backend has a faster way
    /// for this shape of rows; returns whether it did (else nothing is
    /// touched). Arguments as for [`accumulate_rows`], validated.
    #[inline(always)]
    unsafe fn accumulate_rows_whole(
        _cb: &Codebook,
        _rows: &[u8],
        _stride: usize,
        _weights: &[f32],
        _out: &mut [f32],
    ) -> bool {
        false
    }
    /// The widest codes [`pack64`](Self::pack64) takes (at least 4).
    const PACK64_BITS: u8 = 4;
    /// Quantises the 64 values of `x` against `thr` (a `BITS`-bit
    /// codebook, `BITS ∈ 1..=`[`PACK64_BITS`](Self::PACK64_BITS)), writes their packed codes to
    /// `out[..8·BITS]` and, with `centroids`, each value's centroid, all in
    /// registers (the generic loops go through a byte buffer and the
    /// packer). The bytes of [`quantize`] and [`pack::pack_unchecked`].
    unsafe fn pack64<const BITS: u32>(
        thr: &Self::Thr<'_>,
        x: &[f32; 64],
        out: &mut [u8],
        centroids: Option<(&Self::Lut<'_>, &mut [f32; 64])>,
    );
    /// Hints the cache to fetch the line at `p` (which may be out of bounds:
    /// a prefetch never faults and reads nothing the program sees).
    #[inline(always)]
    unsafe fn prefetch(_p: *const u8) {}
    /// [`pack::pack_unchecked`], possibly with faster instructions.
    #[inline(always)]
    unsafe fn pack(bits: u8, indices: &[u8], out: &mut [u8]) {
        pack::pack_unchecked(bits, indices, out)
    }
    /// [`pack::unpack_unchecked`], possibly with faster instructions.
    #[inline(always)]
    unsafe fn unpack(bits: u8, packed: &[u8], out: &mut [u8]) {
        pack::unpack_unchecked(bits, packed, out)
    }
}

/// [`Lanes::lookup_four`] as four lookups of `LANES` codes.
///
/// # Safety
/// As [`Lanes::lookup_four`].
#[inline(always)]
pub(super) unsafe fn lookup_each<V: Lanes, const B: u8>(lut: &V::Lut<'_>, p: *const u8) -> [V; 4] {
    // Spelled out: through `array::from_fn` the lookups were not inlined
    // into the caller's target features, and became calls (60 times
    // slower on AVX2).
    // SAFETY: the caller's 4·LANES codes at p, each below 2^B.
    unsafe {
        [
            V::lookup_bits::<B>(lut, V::widen(p)),
            V::lookup_bits::<B>(lut, V::widen(p.add(V::LANES))),
            V::lookup_bits::<B>(lut, V::widen(p.add(2 * V::LANES))),
            V::lookup_bits::<B>(lut, V::widen(p.add(3 * V::LANES))),
        ]
    }
}

/// `$f::<V, B>(args)` with `B` the codebook width `$bits` (1–8) as a
/// constant: the hot decoding loops are compiled once per width.
macro_rules! per_width {
    ($bits:expr, $f:ident::<$v:ident>($($arg:expr),* $(,)?)) => {
        match $bits {
            1 => $f::<$v, 1>($($arg),*),
            2 => $f::<$v, 2>($($arg),*),
            3 => $f::<$v, 3>($($arg),*),
            4 => $f::<$v, 4>($($arg),*),
            5 => $f::<$v, 5>($($arg),*),
            6 => $f::<$v, 6>($($arg),*),
            7 => $f::<$v, 7>($($arg),*),
            _ => $f::<$v, 8>($($arg),*),
        }
    };
}

/// The levels of the binary search
/// ([`Codebook::search_order`](super::Codebook::search_order)) in registers
/// of `V::LANES` probes, as the backends' searches in registers read them,
/// each given to `put` with its index: the root probe in every lane of
/// register 0, then level `l`'s `2^l` probes (`l = 1 … bits − 1`), each
/// level from the register after the last one's (10 registers of 8
/// probes, 17 of 4, at 6 bits). A level narrower than a register has the
/// next levels' probes in its upper lanes, never picked. Handed over one
/// by one, the registers go straight into the backend's own array (an
/// array returned whole was copied again: 3 % more instructions in a NEON
/// quantisation at 5 and 6 bits).
///
/// # Safety
/// The ISA of `V` is available; `cb.bits() ∈ 1..=SEARCH_BITS`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
pub(super) unsafe fn search_levels<V: F32Vector>(cb: &Codebook, mut put: impl FnMut(usize, V)) {
    let order = cb.search_order();
    // SAFETY: the ISA is the caller's; every load reads `LANES` f32 of
    // `order` (64 of them) through a bounds-checked slice.
    unsafe {
        put(0, V::splat(order[0]));
        // Level l's 2^l probes start at `order[2^l − 1]`. Plain loops:
        // through iterator adapters, each level was a call.
        let mut reg = 1;
        for level in 1..cb.bits() as usize {
            for k in 0..(1usize << level).div_ceil(V::LANES) {
                let at = (1 << level) - 1 + V::LANES * k;
                put(reg, V::load(order[at..at + V::LANES].as_ptr()));
                reg += 1;
            }
        }
    }
}

/// Indices of `x` into `out` (`out.len() >= x.len()`).
///
/// # Safety
/// The ISA of `V` is available.
#[inline(always)]
pub(super) unsafe fn quantize<V: Lanes>(
    cb: &Codebook,
    thr: &V::Thr<'_>,
    x: &[f32],
    out: &mut [u8],
) {
    // SAFETY: forwarded from the caller.
    unsafe { quantize_with::<V>(cb, thr, x, out, |_, _| {}) };
}

/// [`quantize`], handing each register of indices (with the offset of its
/// first element) to `each` as well; returns how many leading elements went
/// through registers (the rest took the scalar code).
///
/// # Safety
/// The ISA of `V` is available.
#[inline(always)]
unsafe fn quantize_with<V: Lanes>(
    cb: &Codebook,
    thr: &V::Thr<'_>,
    x: &[f32],
    out: &mut [u8],
    mut each: impl FnMut(usize, V::Idx),
) -> usize {
    let n = x.len().min(out.len());
    let mut i = 0;
    while i + V::LANES <= n {
        // SAFETY: i + LANES <= n, so LANES f32 are readable at x[i] and
        // LANES bytes writable at out[i]; the ISA is the caller's promise.
        unsafe {
            let v = V::load(x.as_ptr().add(i));
            let idx = V::quantize(thr, v);
            V::narrow(idx, out.as_mut_ptr().add(i));
            each(i, idx);
        }
        i += V::LANES;
    }
    for (o, &v) in out[i..n].iter_mut().zip(&x[i..n]) {
        *o = cb.index(v);
    }
    i
}

/// The leading whole chunks of 64 elements of `x` quantised and packed
/// by [`Lanes::pack64`] if the backend's `pack64` takes the codebook's
/// width ([`Lanes::PACK64_BITS`]), their centroids
/// written too if asked; returns how many elements it did (0 for other
/// widths, touching nothing). The thresholds (and the table, for
/// centroids) are made once here, in registers.
///
/// # Safety
/// The ISA of `V` is available; `out` holds `packed_len(x.len(), bits)`
/// bytes and `centroids` as many values as `x`.
#[inline(always)]
unsafe fn quantize_pack_chunks<V: Lanes>(
    cb: &Codebook,
    x: &[f32],
    out: &mut [u8],
    centroids: Option<&mut [f32]>,
) -> usize {
    // SAFETY: forwarded from the caller, with the width matched.
    unsafe {
        match cb.bits() {
            1 => pack_chunks::<V, 1>(cb, x, out, centroids),
            2 => pack_chunks::<V, 2>(cb, x, out, centroids),
            3 => pack_chunks::<V, 3>(cb, x, out, centroids),
            4 => pack_chunks::<V, 4>(cb, x, out, centroids),
            5 if V::PACK64_BITS >= 5 => pack_chunks::<V, 5>(cb, x, out, centroids),
            6 if V::PACK64_BITS >= 6 => pack_chunks::<V, 6>(cb, x, out, centroids),
            _ => 0,
        }
    }
}

/// [`quantize_pack_chunks`] at `BITS` bits.
///
/// # Safety
/// As [`quantize_pack_chunks`], with `cb.bits() == BITS`.
#[inline(always)]
unsafe fn pack_chunks<V: Lanes, const BITS: u32>(
    cb: &Codebook,
    x: &[f32],
    out: &mut [u8],
    centroids: Option<&mut [f32]>,
) -> usize {
    // SAFETY: the ISA is the caller's promise; each chunk's 8·BITS bytes of
    // `out` and 64 centroids lie inside the caller's buffers.
    unsafe {
        let thr = V::thr(cb);
        let lut = centroids.as_ref().map(|_| V::lut(cb));
        let (whole, _) = x.as_chunks::<64>();
        let mut cens = centroids.map(|c| c.as_chunks_mut::<64>().0.iter_mut());
        for (chunk, dst) in whole.iter().zip(out.chunks_mut(8 * BITS as usize)) {
            let cen = cens.as_mut().and_then(Iterator::next).zip(lut.as_ref());
            V::pack64::<BITS>(&thr, chunk, dst, cen.map(|(c, lut)| (lut, c)));
        }
        64 * whole.len()
    }
}

/// Quantise and pack (`out.len() == packed_len(x.len(), bits)`).
///
/// # Safety
/// The ISA of `V` is available.
#[inline(always)]
pub(super) unsafe fn quantize_packed<V: Lanes>(cb: &Codebook, x: &[f32], out: &mut [u8]) {
    let bits = cb.bits();
    // SAFETY: forwarded from the caller; `out` is x's packed length.
    let done = unsafe { quantize_pack_chunks::<V>(cb, x, out, None) };
    if done == x.len() {
        return;
    }
    // Built only here: made for every call, the thresholds went through
    // the stack even when the chunks above did all the work.
    // SAFETY: forwarded from the caller.
    let thr = unsafe { V::thr(cb) };
    let mut buf = [0u8; 64];
    let rest = out[8 * bits as usize * done / 64..].chunks_mut(8 * bits as usize);
    for (chunk, dst) in x[done..].chunks(64).zip(rest) {
        let idx = &mut buf[..chunk.len()];
        // SAFETY: forwarded from the caller; `dst` is exactly the packed
        // length of `idx` (64 indices fill 8·bits bytes; the last chunk gets
        // the rest).
        unsafe {
            quantize::<V>(cb, &thr, chunk, idx);
            V::pack(bits, idx, dst);
        }
    }
}

/// [`quantize_packed`] that also writes each element's centroid to
/// `centroids` (`centroids.len() == x.len()`): what decoding the codes
/// gives, without unpacking them again.
///
/// # Safety
/// The ISA of `V` is available.
#[inline(always)]
pub(super) unsafe fn quantize_packed_centroids<V: Lanes>(
    cb: &Codebook,
    x: &[f32],
    out: &mut [u8],
    centroids: &mut [f32],
) {
    let bits = cb.bits();
    let c = cb.centroids();
    // SAFETY: forwarded from the caller; `out` is x's packed length and
    // `centroids` as long as `x`.
    let done = unsafe { quantize_pack_chunks::<V>(cb, x, out, Some(&mut *centroids)) };
    if done == x.len() {
        return;
    }
    // SAFETY: forwarded from the caller.
    let (thr, lut) = unsafe { (V::thr(cb), V::lut(cb)) };
    let mut buf = [0u8; 64];
    let rest = out[8 * bits as usize * done / 64..].chunks_mut(8 * bits as usize);
    let chunks = x[done..].chunks(64).zip(rest);
    for ((chunk, dst), cen) in chunks.zip(centroids[done..].chunks_mut(64)) {
        let idx = &mut buf[..chunk.len()];
        let at = cen.as_mut_ptr();
        // SAFETY: forwarded from the caller; `each` gets offsets of whole
        // registers inside the chunk, whose `cen` holds as many f32, and
        // indices below 2^bits; `dst` is exactly the packed length of `idx`.
        unsafe {
            let whole = quantize_with::<V>(cb, &thr, chunk, idx, |i, v| {
                V::lookup(&lut, v).store(at.add(i))
            });
            for (o, &i) in cen[whole..].iter_mut().zip(&idx[whole..]) {
                *o = c[i as usize];
            }
            V::pack(bits, idx, dst);
        }
    }
}

/// Centroids of `out.len()` packed codes (`packed.len() == packed_len`).
///
/// # Safety
/// The ISA of `V` is available.
#[inline(always)]
pub(super) unsafe fn dequantize<V: Lanes>(cb: &Codebook, packed: &[u8], out: &mut [f32]) {
    let bits = cb.bits();
    let c = cb.centroids();
    // SAFETY: forwarded from the caller.
    let lut = unsafe { V::lut(cb) };
    let mut buf = [0u8; 64];
    for (chunk, src) in out.chunks_mut(64).zip(packed.chunks(8 * bits as usize)) {
        let n = chunk.len();
        // SAFETY: forwarded; `src` is the packed length of n indices.
        unsafe { V::unpack(bits, src, &mut buf[..n]) };
        let mut k = 0;
        while k + V::LANES <= n {
            // SAFETY: k + LANES <= n <= 64: the bytes read from `buf` and
            // the f32 written to `chunk` are in bounds; indices < 2^bits.
            unsafe {
                let v = V::lookup(&lut, V::widen(buf.as_ptr().add(k)));
                v.store(chunk.as_mut_ptr().add(k));
            }
            k += V::LANES;
        }
        for (o, &i) in chunk[k..].iter_mut().zip(&buf[k..n]) {
            *o = c[i as usize];
        }
    }
}

/// `out[j] += Σ_r weights[r]·c[idx_{r,j}]` over rows `stride` apart
/// (validated: every row's `packed_len(out.len(), bits)` bytes fit).
///
/// # Safety
/// The ISA of `V` is available.
#[inline(always)]
pub(super) unsafe fn accumulate_rows<V: Lanes>(
    cb: &Codebook,
    rows: &[u8],
    stride: usize,
    weights: &[f32],
    out: &mut [f32],
) {
    // SAFETY: forwarded from the caller.
    if unsafe { V::accumulate_rows_whole(cb, rows, stride, weights, out) } {
        return;
    }
    if weights.is_empty() {
        return;
    }
    let row_len = pack::packed_len(out.len(), cb.bits());
    let chunk_bytes = 8 * cb.bits() as usize;
    // SAFETY: forwarded from the caller.
    let lut = unsafe { V::lut(cb) };
    // Coordinates 64 at a time, every row for each: the partial sums stay in
    // registers instead of going through memory once per row (which would
    // chain every row's FMA behind the previous row's store).
    for (ci, chunk) in out.chunks_mut(64).enumerate() {
        let first = ci * chunk_bytes;
        let bytes = chunk_bytes.min(row_len - first);
        // A constant count of whole vectors for full chunks, so that the
        // sums are registers, not an array indexed at run time.
        let whole = if chunk.len() == 64 {
            64 / V::LANES
        } else {
            chunk.len() / V::LANES
        };
        // SAFETY: forwarded; `whole · LANES <= chunk.len()`, and each row's
        // bytes first .. first + bytes lie inside its packed length (with at
        // least one row, `first < row_len <= rows.len()`).
        unsafe {
            per_width!(
                cb.bits(),
                accumulate_chunk::<V>(
                    cb,
                    &lut,
                    &rows[first..],
                    stride,
                    bytes,
                    weights,
                    chunk,
                    whole,
                )
            )
        };
    }
}

/// One chunk of at most 64 coordinates of [`accumulate_rows`]: `whole`
/// vectors in registers, the rest with scalar code.
///
/// # Safety
/// The ISA of `V` is available; `lut` is `V::lut(cb)`; `whole · LANES <=
/// out.len() <= 64`; row `r` (one per weight) has the `bytes` packed bytes
/// of `out.len()` codes at `rows[r·stride..]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn accumulate_chunk<V: Lanes, const B: u8>(
    cb: &Codebook,
    lut: &V::Lut<'_>,
    rows: &[u8],
    stride: usize,
    bytes: usize,
    weights: &[f32],
    out: &mut [f32],
    whole: usize,
) {
    let bits = cb.bits();
    let c = cb.centroids();
    let n = out.len();
    let mut buf = [0u8; 64];
    // SAFETY: forwarded; loads read out[k·LANES..][..LANES] < n.
    let mut acc = [unsafe { V::zero() }; 16];
    for (k, a) in acc.iter_mut().enumerate().take(whole) {
        // SAFETY: as above.
        *a = unsafe { V::load(out.as_ptr().add(k * V::LANES)) };
    }
    for (r, &w) in weights.iter().enumerate() {
        let src = &rows[r * stride..r * stride + bytes];
        // SAFETY: forwarded; `src` is the packed length of n indices, and
        // widen reads buf[k·LANES..][..LANES] with (k + 1)·LANES <= n.
        unsafe {
            V::unpack(bits, src, &mut buf[..n]);
            let wv = V::splat(w);
            // Four registers at a time (a backend may look a group up
            // faster), then one at a time.
            let fours = whole / 4 * 4;
            for (g, a) in acc[..fours].chunks_exact_mut(4).enumerate() {
                let cv = V::lookup_four::<B>(lut, buf.as_ptr().add(4 * g * V::LANES));
                for (a, cv) in a.iter_mut().zip(cv) {
                    *a = cv.mul_add(wv, *a);
                }
            }
            for (k, a) in acc.iter_mut().enumerate().take(whole).skip(fours) {
                let cv = V::lookup_bits::<B>(lut, V::widen(buf.as_ptr().add(k * V::LANES)));
                *a = cv.mul_add(wv, *a);
            }
        }
        for (o, &i) in out[whole * V::LANES..]
            .iter_mut()
            .zip(&buf[whole * V::LANES..n])
        {
            *o += w * c[i as usize];
        }
    }
    for (k, a) in acc.iter().enumerate().take(whole) {
        // SAFETY: as for the loads.
        unsafe { a.store(out.as_mut_ptr().add(k * V::LANES)) };
    }
}

/// `Σ q[j]·c[idx_j]` (`packed.len() == packed_len(q.len(), bits)`).
///
/// # Safety
/// The ISA of `V` is available; `lut` is `V::lut(cb)`.
#[inline(always)]
pub(super) unsafe fn dot<V: Lanes>(
    cb: &Codebook,
    lut: &V::Lut<'_>,
    q: &[f32],
    packed: &[u8],
) -> f32 {
    // SAFETY: forwarded from the caller.
    unsafe {
        if let Some(score) = V::dot_one(cb, q, packed) {
            return score;
        }
        per_width!(cb.bits(), dot_width::<V>(cb, lut, q, packed))
    }
}

/// [`dot`] for a codebook of `B` bits.
///
/// # Safety
/// As [`dot`], with `B = cb.bits()`.
#[inline(always)]
unsafe fn dot_width<V: Lanes, const B: u8>(
    cb: &Codebook,
    lut: &V::Lut<'_>,
    q: &[f32],
    packed: &[u8],
) -> f32 {
    let bits = cb.bits();
    let c = cb.centroids();
    let mut buf = [0u8; 64];
    // Four accumulators: one would serialise on the FMA latency.
    // SAFETY: forwarded from the caller.
    let mut acc = unsafe { [V::zero(); 4] };
    let mut tail = 0.0f32;
    for (chunk, src) in q.chunks(64).zip(packed.chunks(8 * bits as usize)) {
        let n = chunk.len();
        // SAFETY: forwarded; `src` is the packed length of n indices.
        unsafe { V::unpack(bits, src, &mut buf[..n]) };
        let mut k = 0;
        while k + 4 * V::LANES <= n {
            // SAFETY: k + 4·LANES <= n <= 64 keeps the reads of `buf` and
            // `chunk` in bounds; indices < 2^bits.
            let cv = unsafe { V::lookup_four::<B>(lut, buf.as_ptr().add(k)) };
            for (a, (acc, cv)) in acc.iter_mut().zip(cv).enumerate() {
                // SAFETY: as above.
                *acc = unsafe { V::load(chunk.as_ptr().add(k + a * V::LANES)).mul_add(cv, *acc) };
            }
            k += 4 * V::LANES;
        }
        while k + V::LANES <= n {
            // SAFETY: as above.
            unsafe {
                let cv = V::lookup_bits::<B>(lut, V::widen(buf.as_ptr().add(k)));
                acc[0] = V::load(chunk.as_ptr().add(k)).mul_add(cv, acc[0]);
            }
            k += V::LANES;
        }
        for (&qj, &i) in chunk[k..].iter().zip(&buf[k..n]) {
            tail += qj * c[i as usize];
        }
    }
    // SAFETY: forwarded from the caller.
    unsafe { V::add(V::add(acc[0], acc[1]), V::add(acc[2], acc[3])).sum() + tail }
}

/// How many rows ahead `dot_rows` prefetches.
const PREFETCH_ROWS: usize = 16;

/// [`dot`] for every row (`out.len()` rows `row_stride` apart, validated).
///
/// # Safety
/// The ISA of `V` is available.
#[inline(always)]
pub(super) unsafe fn dot_rows<V: Lanes>(
    cb: &Codebook,
    q: &[f32],
    packed_rows: &[u8],
    row_stride: usize,
    out: &mut [f32],
) {
    let row = pack::packed_len(q.len(), cb.bits());
    // SAFETY: forwarded from the caller.
    let (done, lut) = unsafe {
        (
            V::dot_row_blocks(cb, q, packed_rows, row_stride, out),
            V::lut(cb),
        )
    };
    // Wrapping (not checked) arithmetic: a prefetch of any address is
    // harmless, and a huge caller stride must not overflow-panic in a debug
    // build.
    let ahead_bytes = PREFETCH_ROWS.wrapping_mul(row_stride);
    for (r, o) in out.iter_mut().enumerate().skip(done) {
        let start = r * row_stride;
        // Rows far ahead: hardware prefetchers lose the stream across the
        // masked and gathered loads of the kernels.
        let ahead = packed_rows
            .as_ptr()
            .wrapping_add(start)
            .wrapping_add(ahead_bytes);
        // SAFETY: forwarded; the caller validated that every row fits, and
        // a prefetch of any address is harmless.
        unsafe {
            V::prefetch(ahead);
            *o = dot::<V>(cb, &lut, q, &packed_rows[start..start + row]);
        }
    }
}

/// `Σ a[j]·b[j]` in f32 (`a.len() == b.len()`): the uncompressed reference.
///
/// # Safety
/// The ISA of `V` is available.
#[inline(always)]
pub(super) unsafe fn dot_f32<V: Lanes>(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    // SAFETY: forwarded from the caller.
    let (mut acc0, mut acc1) = unsafe { (V::zero(), V::zero()) };
    let mut i = 0;
    while i + 2 * V::LANES <= n {
        // SAFETY: i + 2·LANES <= n keeps every load inside both slices.
        unsafe {
            acc0 = V::load(a.as_ptr().add(i)).mul_add(V::load(b.as_ptr().add(i)), acc0);
            let j = i + V::LANES;
            acc1 = V::load(a.as_ptr().add(j)).mul_add(V::load(b.as_ptr().add(j)), acc1);
        }
        i += 2 * V::LANES;
    }
    let tail: f32 = a[i..n].iter().zip(&b[i..n]).map(|(x, y)| x * y).sum();
    // SAFETY: forwarded from the caller.
    unsafe { acc0.sum() + acc1.sum() + tail }
}

/// Expands, inside a backend file, to the codebook kernels of one lane
/// type: the generic kernels instantiated inside `#[target_feature]`
/// functions with the backend's feature list. Used as
/// `avx2_features!(super::simd::entry_points { LaneType })`; reached only
/// through `on_backend!`, whose `Checked` token proves the features exist.
/// Arguments arrive validated by the public functions of `codebook`.
macro_rules! entry_points {
    ([$($feature:tt),*] $lanes:ty) => {
        crate::backend::target_features! {
            [$($feature),*]
            /// # Safety
            /// The backend's target features are available.
            pub(in crate::codebook) unsafe fn quantize(
                cb: &crate::codebook::Codebook,
                x: &[f32],
                out: &mut [u8],
            ) {
                // SAFETY: this function's target features are the ISA of the lanes.
                unsafe {
                    let thr = <$lanes as crate::codebook::simd::Lanes>::thr(cb);
                    crate::codebook::simd::quantize::<$lanes>(cb, &thr, x, out)
                }
            }

            /// # Safety
            /// As [`quantize`].
            pub(in crate::codebook) unsafe fn quantize_packed(
                cb: &crate::codebook::Codebook,
                x: &[f32],
                out: &mut [u8],
            ) {
                // SAFETY: as in `quantize`.
                unsafe { crate::codebook::simd::quantize_packed::<$lanes>(cb, x, out) }
            }

            /// # Safety
            /// As [`quantize`].
            pub(in crate::codebook) unsafe fn quantize_packed_centroids(
                cb: &crate::codebook::Codebook,
                x: &[f32],
                out: &mut [u8],
                centroids: &mut [f32],
            ) {
                // SAFETY: as in `quantize`.
                unsafe {
                    crate::codebook::simd::quantize_packed_centroids::<$lanes>(cb, x, out, centroids)
                }
            }

            /// # Safety
            /// As [`quantize`].
            pub(in crate::codebook) unsafe fn dequantize(
                cb: &crate::codebook::Codebook,
                packed: &[u8],
                out: &mut [f32],
            ) {
                // SAFETY: as in `quantize`.
                unsafe { crate::codebook::simd::dequantize::<$lanes>(cb, packed, out) }
            }

            /// # Safety
            /// As [`quantize`].
            pub(in crate::codebook) unsafe fn dot(
                cb: &crate::codebook::Codebook,
                q: &[f32],
                packed: &[u8],
            ) -> f32 {
                // SAFETY: as in `quantize`.
                unsafe {
                    let lut = <$lanes as crate::codebook::simd::Lanes>::lut(cb);
                    crate::codebook::simd::dot::<$lanes>(cb, &lut, q, packed)
                }
            }

            /// # Safety
            /// As [`quantize`].
            pub(in crate::codebook) unsafe fn dot_rows(
                cb: &crate::codebook::Codebook,
                q: &[f32],
                rows: &[u8],
                stride: usize,
                out: &mut [f32],
            ) {
                // SAFETY: as in `quantize`.
                unsafe { crate::codebook::simd::dot_rows::<$lanes>(cb, q, rows, stride, out) }
            }

            /// # Safety
            /// As [`quantize`].
            pub(in crate::codebook) unsafe fn accumulate_rows(
                cb: &crate::codebook::Codebook,
                rows: &[u8],
                stride: usize,
                weights: &[f32],
                out: &mut [f32],
            ) {
                // SAFETY: as in `quantize`.
                unsafe {
                    crate::codebook::simd::accumulate_rows::<$lanes>(cb, rows, stride, weights, out)
                }
            }

            /// # Safety
            /// As [`quantize`].
            pub(in crate::codebook) unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
                // SAFETY: as in `quantize`.
                unsafe { crate::codebook::simd::dot_f32::<$lanes>(a, b) }
            }
        }
    };
}
pub(super) use entry_points;
