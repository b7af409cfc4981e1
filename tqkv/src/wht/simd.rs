//! One register-blocked transform, generic over a small vector trait; the
//! AVX2, AVX-512 and NEON backends each instantiate it inside a
//! `#[target_feature]` function.
//!
//! Shape (after FFHT): a first pass loads a group of `R` consecutive registers,
//! runs the stages that stay inside one register (`h < LANES`), then the
//! stages across the group (`h = LANES … LANES·R/2`), and stores once. Later
//! passes load `R` registers `h` apart and run `log2 R` stages each. Long
//! transforms go depth-first: every `BLOCK`-long chunk is finished while it
//! sits in L1, then the remaining strides sweep the whole buffer.
//!
//! None of this changes the arithmetic: each element still meets the
//! canonical butterflies (stride 1, 2, 4, … in order, `(a, b) → (a + b, a − b)`)
//! as single IEEE operations, so the result equals the scalar reference bit for
//! bit. Only the schedule differs, and it respects every data dependency.

/// What the transform needs of a register beyond [`F32Vector`].
///
/// # Safety
///
/// As [`F32Vector`]: every method runs only where the backend's target
/// features are available.
pub(super) unsafe trait Vector: F32Vector {
    /// Stages run per pass across a group of registers: `log2` of the group
    /// size (bounded by the register file).
    const GROUP_LOG2: u32;
    /// The first `stages` stages (`h = 1, 2, …, 2^(stages−1)`, at most
    /// every `h < LANES`), in order, inside this register.
    unsafe fn in_register(self, stages: u32) -> Self;
    /// Whether rows of `width` floats pack into a register for
    /// [`xor_rows`](Self::xor_rows): a quarter or a half of one.
    fn packs(width: usize) -> bool;
    /// The register with its rows of `width` (one that
    /// [`packs`](Self::packs) takes) permuted: row `r` takes row `r ⊕ m`
    /// (`0 < m < LANES / width`).
    unsafe fn xor_rows(self, m: usize, width: usize) -> Self;
}

use crate::vector::F32Vector;

/// Chunks longer than this (in f32) are finished one at a time, depth-first,
/// so their stages run in L1 (16 KiB of data).
const BLOCK: usize = 1 << 12;

/// Strides (in f32) from which a group's registers fall into one L1 set.
const WIDE_STRIDE: usize = 1024;

/// The butterflies across a group: register `j` holds elements `h` apart, so
/// register stride `s` is element stride `s·h`.
#[inline(always)]
pub(super) unsafe fn cross<V: Vector, const R: usize>(r: &mut [V; R]) {
    let mut s = 1;
    while s < R {
        let mut j = 0;
        while j < R {
            if j & s == 0 {
                let (a, b) = (r[j], r[j + s]);
                // SAFETY: forwarded from the caller (the ISA is available).
                unsafe {
                    r[j] = a.add(b);
                    r[j + s] = a.sub(b);
                }
            }
            j += 1;
        }
        s <<= 1;
    }
}

/// The stages with strides `h, 2h, …, h·R/2` over `n` f32 at `x`; with
/// `first`, the in-register stages before them (then `h` must be `LANES`).
///
/// # Safety
/// The ISA is available; `x` is valid for `n` f32; `h` is a multiple of
/// `LANES` and `h·R` divides `n`.
#[inline(always)]
unsafe fn pass<V: Vector, const R: usize>(x: *mut f32, n: usize, h: usize, first: bool) {
    let span = h * R;
    let mut base = 0;
    while base < n {
        let mut off = 0;
        while off < h {
            // SAFETY: base + off + (R-1)·h + LANES <= base + span <= n, so
            // every load and store below stays inside the caller's buffer.
            unsafe {
                let p = x.add(base + off);
                // (array::from_fn is not always inlined, which spills the group.)
                let mut r: [V; R] = [V::load(p); R];
                for (j, v) in r.iter_mut().enumerate().skip(1) {
                    *v = V::load(p.add(j * h));
                }
                if first {
                    for v in r.iter_mut() {
                        *v = v.in_register(V::LANES.trailing_zeros());
                    }
                }
                cross(&mut r);
                for (j, v) in r.iter().enumerate() {
                    v.store(p.add(j * h));
                }
            }
            off += V::LANES;
        }
        base += span;
    }
}

/// Runs `stages` (≤ 4) stages starting at stride `h`.
///
/// # Safety
/// As [`pass`], with `R = 2^stages`.
#[inline(always)]
unsafe fn pass_dyn<V: Vector>(x: *mut f32, n: usize, h: usize, stages: u32, first: bool) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match stages {
            0 => pass::<V, 1>(x, n, h, first),
            1 => pass::<V, 2>(x, n, h, first),
            2 => pass::<V, 4>(x, n, h, first),
            3 => pass::<V, 8>(x, n, h, first),
            _ => pass::<V, 16>(x, n, h, first),
        }
    }
}

/// How many of `left` cross-register stages the next pass takes when a pass
/// takes at most `cap`: as few passes as possible, with the stages spread
/// evenly over them. A pass with few stages is bound by its loads and stores
/// rather than by its arithmetic, so a 4+1 split loses to 3+2.
#[inline(always)]
fn share(left: u32, cap: u32) -> u32 {
    let passes = left.div_ceil(cap);
    if passes == 0 {
        0
    } else {
        left.div_ceil(passes)
    }
}

/// The stages with strides `h … n/2`, in passes of at most `GROUP_LOG2`.
///
/// # Safety
/// As [`pass`]: the ISA is available, `x` valid for `n`, `h` a power of two
/// and a multiple of `LANES`, all stages below `h` already done.
#[inline(always)]
unsafe fn upper_stages<V: Vector>(x: *mut f32, n: usize, mut h: usize) {
    while h < n {
        let left = (n / h).trailing_zeros();
        // Registers 4 KiB (or a multiple) apart share one L1 set; more of them
        // than the cache has ways would evict each other mid-group.
        let cap = if h >= WIDE_STRIDE {
            V::GROUP_LOG2.min(3)
        } else {
            V::GROUP_LOG2
        };
        let stages = share(left, cap);
        // SAFETY: forwarded; h·2^stages divides n since both are powers of two.
        unsafe { pass_dyn::<V>(x, n, h, stages, false) };
        h <<= stages;
    }
}

/// The whole transform of one chunk of at most `BLOCK` (≥ `LANES`) f32.
///
/// # Safety
/// The ISA is available; `x` valid for `n`, a power of two ≥ `LANES`.
#[inline(always)]
unsafe fn transform_block<V: Vector>(x: *mut f32, n: usize) {
    let regs = (n / V::LANES).trailing_zeros();
    let stages = share(regs, V::GROUP_LOG2);
    // SAFETY: forwarded; LANES·2^stages divides n.
    unsafe {
        pass_dyn::<V>(x, n, V::LANES, stages, true);
        upper_stages::<V>(x, n, V::LANES << stages);
    }
}

/// In-place unnormalised WHT of `x` (length a power of two).
///
/// # Safety
/// The ISA behind `V` is available on this CPU.
#[inline(always)]
pub(super) unsafe fn fwht<V: Vector>(x: &mut [f32]) {
    let n = x.len();
    if n < V::LANES {
        // Too short for one register; the reference does the same butterflies.
        super::scalar::fwht(x);
        return;
    }
    let p = x.as_mut_ptr();
    // SAFETY: p is valid for n f32 (it comes from the slice); n is a power of
    // two ≥ LANES, so BLOCK-long chunks tile it exactly when n > BLOCK.
    unsafe {
        if n <= BLOCK {
            transform_block::<V>(p, n);
        } else {
            let mut base = 0;
            while base < n {
                transform_block::<V>(p.add(base), BLOCK);
                base += BLOCK;
            }
            upper_stages::<V>(p, n, BLOCK);
        }
    }
}

/// `x ← s·H·D·x` or `x ← D·s·H·x` (see [`Around`](super::Around)) in one load and one
/// store per register where the whole transform is one pass (`x.len()` a
/// power of two from `LANES` to `LANES·2^GROUP_LOG2`), in two
/// ([`two_passes`]) up to [`ONE_PASS_MAX`](super::ONE_PASS_MAX). Returns
/// `false` (nothing done) for other lengths. The same IEEE operations in the same
/// order as the separate sign flip, transform and scale, so the same bits.
///
/// # Safety
/// The ISA behind `V` is available on this CPU.
#[inline(always)]
pub(super) unsafe fn rotate_one_pass<V: Vector, S: Sink>(
    x: &mut [f32],
    around: &super::Around,
    sink: &mut S,
) -> bool {
    let n = x.len();
    if !sink.takes::<V>(n) || around.source.is_some_and(|(v, _)| v.len() != n) {
        return false;
    }
    if let Some((f, transpose, l)) = around.factor {
        if !S::IN_PLACE || around.source.is_some() {
            return false;
        }
        // SAFETY: forwarded.
        return unsafe { super::simd_factor::one_pass::<V>(x, around, f, transpose, l) };
    }
    if !n.is_power_of_two() || n < V::LANES || n > super::ONE_PASS_MAX {
        return false;
    }
    // SAFETY: forwarded; the length is a power of two from LANES to
    // ONE_PASS_MAX. `K` is the shape's own kind or ANY, so the bits are the
    // separate steps'. A sink of sign bits takes sketches only: no
    // instances of the other shapes for it (a third of the passes' code).
    unsafe {
        match Steps::kind(around) {
            UNIT if S::IN_PLACE => sized::<V, S, UNIT>(x, around, sink),
            SKETCH => sized::<V, S, SKETCH>(x, around, sink),
            ROTATE if S::IN_PLACE => sized::<V, S, ROTATE>(x, around, sink),
            _ => sized::<V, S, ANY>(x, around, sink),
        }
    }
}

/// [`rotate_one_pass`] on a power of two from `LANES` to
/// [`ONE_PASS_MAX`](super::ONE_PASS_MAX) elements, its steps `K` (see
/// [`Steps`]): [`ANY`] or `Steps::kind(around)`, for the separate steps'
/// bits (another `K` gives other bits, never an access out of bounds).
///
/// # Safety
/// As [`rotate_one_pass`].
#[inline(always)]
unsafe fn sized<V: Vector, S: Sink, const K: u8>(
    x: &mut [f32],
    around: &super::Around,
    sink: &mut S,
) -> bool {
    let group = 1 << V::GROUP_LOG2;
    // SAFETY: forwarded; n = LANES·R exactly for the R chosen, or
    // LANES·group·R2 for the two passes.
    unsafe {
        match x.len() / V::LANES {
            1 => one_pass::<V, S, K, 1>(x, around, sink),
            2 => one_pass::<V, S, K, 2>(x, around, sink),
            4 => one_pass::<V, S, K, 4>(x, around, sink),
            8 => one_pass::<V, S, K, 8>(x, around, sink),
            16 if group >= 16 => one_pass::<V, S, K, 16>(x, around, sink),
            // Two passes where a group is 8 registers (AVX2). NEON's group
            // of 16 four-lane registers ran more instructions in two passes
            // (qemu: 1,366 against 1,215 a rotation at d = 128) than as
            // separate steps, so it keeps them.
            regs => match (group, regs / group) {
                (8, 2) => two_passes::<V, S, K, 8, 2>(x, around, sink),
                (8, 4) => two_passes::<V, S, K, 8, 4>(x, around, sink),
                _ => return false,
            },
        }
    }
    true
}

/// Steps [`Steps::of`] reads from the [`Around`](super::Around) at run
/// time, on every register.
const ANY: u8 = 0;
/// Flag of [`Steps`]: the source is scaled as it is loaded.
const PRE: u8 = 1;
/// Flag of [`Steps`]: the signs come before the transform (else after).
const FIRST: u8 = 2;
/// Flag of [`Steps`]: the transform is scaled.
const SCALE: u8 = 4;
/// Flag of [`Steps`]: the flags are the shape's, known when compiled.
const KNOWN: u8 = 8;
/// A unit vector rotated as it is scaled (every encoding).
const UNIT: u8 = KNOWN | PRE | FIRST | SCALE;
/// A sketch's projection (its signs only are kept).
const SKETCH: u8 = KNOWN | FIRST;
/// A rotation in place (a query's, or an encoding that is not fused).
const ROTATE: u8 = KNOWN | FIRST | SCALE;

/// The optional steps around a one-pass rotation's transform. Where the
/// passes are instantiated for the shape (`K` a known one), which steps
/// are taken is a constant and each register's steps are straight-line
/// code: read from the `Around` at run time, four tests and branches a
/// register (the two-pass loops are too long to be unswitched) cost a
/// KQV push about 4 % and a batch 5–9 % (a Zen 3 at d = 128).
struct Steps<'a> {
    /// The source's factor.
    pre: Option<f32>,
    /// The signs, where they come first.
    first: Option<&'a [u64]>,
    /// The scale and the signs that come last.
    finish: Finish<'a>,
}

impl<'a> Steps<'a> {
    /// The flags of `around`'s shape, with [`KNOWN`].
    #[inline(always)]
    fn kind(around: &super::Around) -> u8 {
        let flag = |taken: bool, f: u8| if taken { f } else { 0 };
        KNOWN
            | flag(around.source.is_some(), PRE)
            | flag(around.signs_first, FIRST)
            | flag(around.scale.is_some(), SCALE)
    }

    /// The steps of `around`, whose shape is `K` unless `K` is [`ANY`].
    #[inline(always)]
    fn of<const K: u8>(around: &super::Around<'a>) -> Self {
        let pre = around.source.map(|(_, s)| s);
        let first = first_signs(around);
        let finish = Finish::of(around);
        if K & KNOWN == 0 {
            return Steps { pre, first, finish };
        }
        // The same values, with which of them are present a constant.
        let signs = &around.signs[..];
        Steps {
            pre: (K & PRE != 0).then(|| pre.unwrap_or(1.0)),
            first: (K & FIRST != 0).then_some(signs),
            finish: Finish {
                scale: (K & SCALE != 0).then(|| finish.scale.unwrap_or(1.0)),
                signs: (K & FIRST == 0).then_some(signs),
            },
        }
    }
}

/// [`rotate_one_pass`] for vectors of `R1·R2` registers, `R1` a pass's
/// group (AVX2 at 128 and 256 elements): the first
/// pass flips the signs (if they come first) and runs the stages with
/// strides up to `R1·LANES/2` on each run of `R1` registers; the second
/// runs the rest on registers `R1·LANES` elements apart, each scaled and
/// flipped (if the signs come last) as it is stored. The same IEEE
/// operations in the same order as the separate steps, so the same bits;
/// four passes over memory (signs, two of the transform, scale) became two.
///
/// # Safety
/// The ISA is available; `x.len() == LANES·R1·R2` ≤
/// [`ONE_PASS_MAX`](super::ONE_PASS_MAX).
#[inline(always)]
unsafe fn two_passes<V: Vector, S: Sink, const K: u8, const R1: usize, const R2: usize>(
    x: &mut [f32],
    around: &super::Around,
    sink: &mut S,
) {
    let run = R1 * V::LANES;
    let from = input(x, around);
    let steps = Steps::of::<K>(around);
    let p = x.as_mut_ptr();
    // SAFETY: every register read or written lies inside x's R1·R2·LANES
    // f32 (or the source's, as long); the ISA is the caller's; the sign
    // words cover ONE_PASS_MAX elements.
    unsafe {
        for at in (0..R2 * run).step_by(run) {
            let stages = V::LANES.trailing_zeros();
            let mut r: [V; R1] = load_signed(from.add(at), steps.pre, steps.first, at, stages);
            cross(&mut r);
            for (j, v) in r.iter().enumerate() {
                v.store(p.add(at + j * V::LANES));
            }
        }
        for off in (0..run).step_by(V::LANES) {
            let mut r: [V; R2] = [V::load(p.add(off)); R2];
            for (j, v) in r.iter_mut().enumerate().skip(1) {
                *v = V::load(p.add(off + j * run));
            }
            cross(&mut r);
            for (j, v) in r.iter().enumerate() {
                let at = off + j * run;
                sink.put(steps.finish.apply(*v, at), p, at);
            }
        }
    }
}

/// Where a one-pass rotation of `x` reads its input: the
/// [`Around`](super::Around)'s source, or `x` itself.
#[inline(always)]
fn input(x: &[f32], around: &super::Around) -> *const f32 {
    match around.source {
        Some((v, _)) => v.as_ptr(),
        None => x.as_ptr(),
    }
}

/// `R` registers at `p` (elements `base …` of the vector), each multiplied
/// by `pre` (if given), negated where `signs` has its bits (if given),
/// then `stages` in-register stages each.
///
/// # Safety
/// The ISA is available; `R·LANES` f32 are readable at `p`; `signs`
/// covers elements `base … base + R·LANES − 1`.
#[inline(always)]
pub(super) unsafe fn load_signed<V: Vector, const R: usize>(
    p: *const f32,
    pre: Option<f32>,
    signs: Option<&[u64]>,
    base: usize,
    stages: u32,
) -> [V; R] {
    // SAFETY: R·LANES f32 are valid at p (caller); the ISA is the caller's.
    unsafe {
        let mut r: [V; R] = [V::load(p); R];
        for (j, v) in r.iter_mut().enumerate() {
            if j > 0 {
                *v = V::load(p.add(j * V::LANES));
            }
            if let Some(s) = pre {
                *v = v.mul(V::splat(s));
            }
            if let Some(words) = signs {
                *v = v.negate_where(sign_bits(words, base + j * V::LANES));
            }
            *v = v.in_register(stages);
        }
        r
    }
}

/// The signs of the register at element `at` (a multiple of `LANES`;
/// `LANES ≤ 16` divides 64, so one word holds them).
#[inline(always)]
fn sign_bits(words: &[u64], at: usize) -> u32 {
    (words[at / 64] >> (at % 64)) as u32
}

/// `R` registers finished as [`Around`](super::Around) says, stored at
/// the start of `x`.
///
/// # Safety
/// The ISA is available; `x` holds at least `R·LANES` ≤ 256 f32.
#[inline(always)]
pub(super) unsafe fn store_finished<V: Vector, const R: usize>(
    r: [V; R],
    x: &mut [f32],
    around: &super::Around,
) {
    let finish = Finish::of(around);
    for (j, v) in r.iter().enumerate() {
        // SAFETY: R·LANES f32 are valid at x (caller); the ISA is the
        // caller's; the words cover 256 elements.
        unsafe {
            finish
                .apply(*v, j * V::LANES)
                .store(x.as_mut_ptr().add(j * V::LANES))
        };
    }
}

/// The signs of a one-pass rotation that come first, if they do.
#[inline(always)]
pub(super) fn first_signs<'a>(around: &super::Around<'a>) -> Option<&'a [u64]> {
    around.signs_first.then_some(&around.signs[..])
}

/// [`rotate_one_pass`] on `R` registers (`x.len() == LANES·R`).
///
/// # Safety
/// The ISA is available; `x.len() == LANES·R`, at most
/// [`ONE_PASS_MAX`](super::ONE_PASS_MAX).
#[inline(always)]
unsafe fn one_pass<V: Vector, S: Sink, const K: u8, const R: usize>(
    x: &mut [f32],
    around: &super::Around,
    sink: &mut S,
) {
    let from = input(x, around);
    let steps = Steps::of::<K>(around);
    // SAFETY: R·LANES f32 are valid at x and at the source (caller); the
    // ISA is the caller's.
    unsafe {
        let mut r: [V; R] = load_signed(from, steps.pre, steps.first, 0, V::LANES.trailing_zeros());
        cross(&mut r);
        for (j, v) in r.iter().enumerate() {
            let at = j * V::LANES;
            sink.put(steps.finish.apply(*v, at), x.as_mut_ptr(), at);
        }
    }
}

/// Where a one-pass rotation puts each finished register.
pub(super) trait Sink {
    /// Whether the rotation overwrites its input ([`InPlace`]); a sink
    /// that keeps something else leaves the input unspecified and takes
    /// the power-of-two passes only.
    const IN_PLACE: bool;

    /// Whether the sink takes a rotation of `n` elements in registers of
    /// `V`.
    fn takes<V: Vector>(&self, n: usize) -> bool;

    /// Takes `v`, the finished elements `at … at + LANES − 1` of the
    /// vector at `p`.
    ///
    /// # Safety
    /// The ISA is available; `at + LANES` f32 are valid at `p`.
    unsafe fn put<V: Vector>(&mut self, v: V, p: *mut f32, at: usize);
}

/// The rotated vector over its input.
pub(super) struct InPlace;

impl Sink for InPlace {
    const IN_PLACE: bool = true;

    #[inline(always)]
    fn takes<V: Vector>(&self, _n: usize) -> bool {
        true
    }

    #[inline(always)]
    unsafe fn put<V: Vector>(&mut self, v: V, p: *mut f32, at: usize) {
        // SAFETY: the caller's promise.
        unsafe { v.store(p.add(at)) }
    }
}

/// Only the sign bits of the first `8·len` elements of the rotated
/// vector, as `loops::sign_bits` writes them (bit `i % 8` of byte `i / 8`
/// set where element `i` is above zero): one compare a register where
/// the vector would have been stored, then read back and compared.
/// Registers of at least 8 lanes, so a register's bits are whole bytes.
pub(super) struct SignBits<'o>(pub(super) &'o mut [u8]);

impl Sink for SignBits<'_> {
    const IN_PLACE: bool = false;

    #[inline(always)]
    fn takes<V: Vector>(&self, n: usize) -> bool {
        V::LANES >= 8 && self.0.len() * 8 <= n
    }

    #[inline(always)]
    unsafe fn put<V: Vector>(&mut self, v: V, _p: *mut f32, at: usize) {
        let m = self.0.len() * 8;
        if at >= m {
            return;
        }
        // SAFETY: the ISA is the caller's; registers only.
        let bits = unsafe { v.positive_bits() }.to_le_bytes();
        // Whole registers' bytes in one fixed-size copy (a loop over a
        // count known at run time cost more than the stores it saved);
        // a 16-lane register past the last row but 8 gives one byte.
        let n = match at + V::LANES <= m {
            true => V::LANES / 8,
            false => 1,
        };
        let at = at / 8;
        if n == 2 {
            self.0[at..at + 2].copy_from_slice(&bits[..2]);
        } else {
            self.0[at] = bits[0];
        }
    }
}

/// `fwht` on every `len`-long row (`len` a power of two dividing the length).
///
/// # Safety
/// The ISA behind `V` is available on this CPU.
#[inline(always)]
pub(super) unsafe fn fwht_rows<V: Vector>(data: &mut [f32], len: usize) {
    if (2..V::LANES).contains(&len) {
        // Rows shorter than a register: LANES/len of them per register,
        // their log2(len) stages in place.
        let stages = len.trailing_zeros();
        let mut chunks = data.chunks_exact_mut(V::LANES);
        for c in &mut chunks {
            // SAFETY: the ISA is available (forwarded); `c` holds exactly
            // LANES f32.
            unsafe {
                V::load(c.as_ptr())
                    .in_register(stages)
                    .store(c.as_mut_ptr())
            };
        }
        super::scalar::fwht_rows(chunks.into_remainder(), len);
        return;
    }
    for row in data.chunks_exact_mut(len) {
        // SAFETY: forwarded from the caller.
        unsafe { fwht::<V>(row) };
    }
}

/// What is done to each register of a factor product's output as it is
/// stored: the rotation's scale, then its signs (bit `i % 64` of word
/// `i / 64` negates output element `i`) where they come last.
pub(super) struct Finish<'a> {
    pub(super) scale: Option<f32>,
    pub(super) signs: Option<&'a [u64]>,
}

impl Finish<'_> {
    /// What a one-pass rotation does to each register it finishes: its
    /// scale, then its signs where they come last.
    #[inline(always)]
    pub(super) fn of<'a>(around: &super::Around<'a>) -> Finish<'a> {
        Finish {
            scale: around.scale,
            signs: (!around.signs_first).then_some(&around.signs[..]),
        }
    }

    /// Nothing: the plain product.
    pub(super) const NONE: Finish<'static> = Finish {
        scale: None,
        signs: None,
    };

    /// `v`, the output register at element `at` (a multiple of `LANES`),
    /// finished. The same IEEE operations as the separate scale and sign
    /// passes.
    ///
    /// # Safety
    /// The ISA is available; `signs` covers element `at`.
    #[inline(always)]
    pub(super) unsafe fn apply<V: Vector>(&self, mut v: V, at: usize) -> V {
        // SAFETY: the ISA is the caller's; registers only.
        unsafe {
            if let Some(s) = self.scale {
                v = v.mul(V::splat(s));
            }
            if let Some(words) = self.signs {
                v = v.negate_where(sign_bits(words, at));
            }
        }
        v
    }
}

/// Expands, inside a backend file, to the backend's kernels: [`fwht`] and
/// [`fwht_rows`] instantiated for one vector type inside `#[target_feature]`
/// functions with the backend's feature list. Used as
/// `avx2_features!(super::simd::entry_points { VectorType })`; reached only
/// through `on_backend!`, which holds the proof that the features exist.
macro_rules! entry_points {
    ([$($feature:tt),*] $vector:ty) => {
        crate::backend::target_features! {
            [$($feature),*]
            /// In-place WHT (length already validated as a power of two).
            ///
            /// # Safety
            /// The backend's target features are available.
            pub(super) unsafe fn fwht(x: &mut [f32]) {
                // SAFETY: this function's target features are the ISA of the
                // vector type.
                unsafe { super::simd::fwht::<$vector>(x) }
            }

            /// A one-pass rotation where the length allows (else `false`).
            ///
            /// # Safety
            /// As [`fwht`].
            pub(super) unsafe fn rotate_one_pass(
                x: &mut [f32],
                around: &super::Around,
            ) -> bool {
                let sink = &mut super::simd::InPlace;
                // SAFETY: as in `fwht`.
                unsafe { super::simd::rotate_one_pass::<$vector, _>(x, around, sink) }
            }

            /// A one-pass rotation's sign bits where the length allows
            /// (else `false`, `x` untouched); `x` is left unspecified.
            ///
            /// # Safety
            /// As [`fwht`].
            pub(super) unsafe fn rotate_one_pass_signs(
                x: &mut [f32],
                around: &super::Around,
                bits: &mut [u8],
            ) -> bool {
                let sink = &mut super::simd::SignBits(bits);
                // SAFETY: as in `fwht`.
                unsafe { super::simd::rotate_one_pass::<$vector, _>(x, around, sink) }
            }

            /// A two-pass rotation where the shape allows (else `false`).
            ///
            /// # Safety
            /// As [`fwht`].
            pub(super) unsafe fn rotate_two_pass(x: &mut [f32], around: &super::Around) -> bool {
                // SAFETY: as in `fwht`.
                unsafe { super::simd_factor::two_pass::<$vector>(x, around) }
            }

            /// WHT of every `len`-long row (`len` validated, dividing the length).
            ///
            /// # Safety
            /// As [`fwht`].
            pub(super) unsafe fn fwht_rows(data: &mut [f32], len: usize) {
                // SAFETY: as in `fwht`.
                unsafe { super::simd::fwht_rows::<$vector>(data, len) }
            }

            /// A Williamson factor's product (`|F|·stride` divides
            /// `x.len()`).
            ///
            /// # Safety
            /// As [`fwht`].
            pub(super) unsafe fn product(
                f: super::williamson::Factor,
                transpose: bool,
                x: &mut [f32],
                stride: usize,
            ) {
                // SAFETY: as in `fwht`; the sizes are the caller's.
                unsafe { super::simd_factor::product::<$vector>(f, transpose, x, stride) }
            }
        }
    };
}
pub(super) use entry_points;
