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
    /// Whether [`load_repeated`](Self::load_repeated) takes rows of `len`.
    fn repeats(len: usize) -> bool;
    /// `len` f32 at `p` repeated across the register (`len` one that
    /// [`repeats`](Self::repeats) takes).
    unsafe fn load_repeated(p: *const f32, len: usize) -> Self;
    /// Lanes `part·len … (part + 1)·len − 1` of `self` repeated across the
    /// register (`len` one that [`repeats`](Self::repeats) takes, `part <
    /// LANES / len`).
    unsafe fn repeat_part(self, part: usize, len: usize) -> Self;
}

use crate::quant::MAX_DIM;
use crate::vector::F32Vector;

/// Chunks longer than this (in f32) are finished one at a time, depth-first,
/// so their stages run in L1 (16 KiB of data).
const BLOCK: usize = 1 << 12;

/// Strides (in f32) from which a group's registers fall into one L1 set.
const WIDE_STRIDE: usize = 1024;

/// The butterflies across a group: register `j` holds elements `h` apart, so
/// register stride `s` is element stride `s·h`.
#[inline(always)]
unsafe fn cross<V: Vector, const R: usize>(r: &mut [V; R]) {
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

/// `x ← s·H·D·x` or `x ← D·s·H·x` (see [`Around`]) in one load and one
/// store per register, where the whole transform is one pass: `x.len()` a
/// power of two from `LANES` to `LANES·2^GROUP_LOG2`. Returns `false`
/// (nothing done) for other lengths. The same IEEE operations in the same
/// order as the separate sign flip, transform and scale, so the same bits.
///
/// # Safety
/// The ISA behind `V` is available on this CPU.
#[inline(always)]
pub(super) unsafe fn rotate_one_pass<V: Vector>(x: &mut [f32], around: &super::Around) -> bool {
    let n = x.len();
    if let Some((by_input, l)) = around.paley {
        // SAFETY: forwarded.
        return unsafe { paley_one_pass::<V>(x, around, by_input, l) };
    }
    if !n.is_power_of_two() || n < V::LANES || n > V::LANES << V::GROUP_LOG2 {
        return false;
    }
    // SAFETY: forwarded; n = LANES·R exactly for the R chosen.
    unsafe {
        match n / V::LANES {
            1 => one_pass::<V, 1>(x, around),
            2 => one_pass::<V, 2>(x, around),
            4 => one_pass::<V, 4>(x, around),
            8 => one_pass::<V, 8>(x, around),
            _ => one_pass::<V, 16>(x, around),
        }
    }
    true
}

/// [`rotate_one_pass`] for `F ⊗ H_L` (`F` of order `by_input.len()`): in
/// registers where rows of `L` are a quarter, a half or a whole register
/// and the vector at most 16 of them; else `false`, touching nothing.
///
/// # Safety
/// The ISA behind `V` is available; `x.len() = by_input.len()·L`.
#[inline(always)]
unsafe fn paley_one_pass<V: Vector>(
    x: &mut [f32],
    around: &super::Around,
    by_input: &[u64],
    l: usize,
) -> bool {
    let n = x.len();
    if !(l == V::LANES || (l < V::LANES && V::repeats(l))) || n > 16 * V::LANES {
        return false;
    }
    let regs = n / V::LANES;
    let rows_log2 = (V::LANES / l).trailing_zeros();
    // SAFETY: forwarded; regs·LANES = n, and each instantiation's REGS,
    // rows and order agree with the match (order = REGS·2^ROWS).
    unsafe {
        match (regs, rows_log2) {
            (3, 2) => paley_pass::<V, 3, 2>(x, around, by_input),
            (5, 2) => paley_pass::<V, 5, 2>(x, around, by_input),
            (7, 2) => paley_pass::<V, 7, 2>(x, around, by_input),
            (9, 2) => paley_pass::<V, 9, 2>(x, around, by_input),
            (6, 1) => paley_pass::<V, 6, 1>(x, around, by_input),
            (10, 1) => paley_pass::<V, 10, 1>(x, around, by_input),
            (12, 0) => paley_pass::<V, 12, 0>(x, around, by_input),
            _ => return false,
        }
    }
    true
}

/// `x ← s·(F ⊗ H_L)·D·x` or `x ← D·s·(F ⊗ H_L)ᵀ·x` (see [`Around`]) for
/// one Paley factor `F` on rows of `L` a whole number of registers, at most
/// a pass's group: the vectors too long for one pass (576 = 36·16,
/// 320 = 20·16, 384 = 12·32). Two passes instead of five: the first flips
/// the signs (if they come first) and runs `H_L` on each row in registers,
/// into `tmp`; the second is `F`'s product from `tmp` back into `x`, each
/// register scaled and flipped (if the signs come last) as it is stored.
/// Returns `false`, touching nothing, for other shapes. The same IEEE
/// operations in the same order as the separate steps, so the same bits.
///
/// # Safety
/// The ISA behind `V` is available on this CPU.
#[inline(always)]
pub(super) unsafe fn rotate_two_pass<V: Vector>(
    x: &mut [f32],
    around: &super::Around,
    tmp: &mut [f32],
) -> bool {
    let Some((by_input, l)) = around.paley else {
        return false;
    };
    let n = x.len();
    let rows = by_input.len();
    if !l.is_multiple_of(V::LANES)
        || l > V::LANES << V::GROUP_LOG2
        || rows * l != n
        || tmp.len() < n
        || n > MAX_DIM
    {
        return false;
    }
    // The sign words, one per 64 elements, as `flip_signs` draws them.
    let mut words = [0u64; MAX_DIM / 64];
    let mut rng = crate::rng::SplitMix64::new(around.seed);
    for w in words.iter_mut().take(n.div_ceil(64)) {
        *w = rng.next_u64();
    }
    let words = &words[..n.div_ceil(64)];
    let first = around.signs_first.then_some(words);
    // SAFETY: forwarded; l = LANES·R for the R chosen, rows·l = n ≤
    // tmp.len(), and the words cover the n elements.
    unsafe {
        match l / V::LANES {
            1 => rows_pass::<V, 1>(x, tmp, first),
            2 => rows_pass::<V, 2>(x, tmp, first),
            4 => rows_pass::<V, 4>(x, tmp, first),
            8 => rows_pass::<V, 8>(x, tmp, first),
            _ => rows_pass::<V, 16>(x, tmp, first),
        }
        let finish = Finish {
            scale: around.scale,
            signs: (!around.signs_first).then_some(words),
        };
        mode_block::<V>(by_input, &tmp[..n], x, l, &finish);
    }
    true
}

/// `tmp` ← `H_L` on every row of `R` registers of `x`, the signs applied
/// first where given.
///
/// # Safety
/// The ISA is available; `R·LANES` divides `x.len() ≤ tmp.len()`; `signs`
/// covers `x`.
#[inline(always)]
unsafe fn rows_pass<V: Vector, const R: usize>(x: &[f32], tmp: &mut [f32], signs: Option<&[u64]>) {
    let row = R * V::LANES;
    for (i, (src, dst)) in x
        .chunks_exact(row)
        .zip(tmp.chunks_exact_mut(row))
        .enumerate()
    {
        // SAFETY: `src` and `dst` hold R·LANES f32; the ISA is the caller's;
        // `signs` covers the row.
        unsafe {
            let stages = V::LANES.trailing_zeros();
            let mut r: [V; R] = load_signed(src.as_ptr(), signs, i * row, stages);
            cross(&mut r);
            for (j, v) in r.iter().enumerate() {
                v.store(dst.as_mut_ptr().add(j * V::LANES));
            }
        }
    }
}

/// [`paley_one_pass`] on `REGS` registers of `2^ROWS` rows each.
///
/// # Safety
/// The ISA is available; `x.len() = REGS·LANES = by_input.len()·L` with
/// `L = LANES / 2^ROWS` a length [`Vector::repeats`] takes (or `LANES`).
#[inline(always)]
unsafe fn paley_pass<V: Vector, const REGS: usize, const ROWS: u32>(
    x: &mut [f32],
    around: &super::Around,
    by_input: &[u64],
) {
    let rows = 1usize << ROWS;
    let width = V::LANES >> ROWS;
    let pick = (1u64 << rows) - 1;
    let table = &PATTERNS[width.trailing_zeros() as usize - 2];
    // SAFETY: REGS·LANES f32 are valid at x (caller); the ISA is the
    // caller's; the patterns are 16 ≥ LANES f32.
    unsafe {
        // D, then H_L on every row (its stages inside each row's lanes).
        let r: [V; REGS] = load_signed(x.as_ptr(), first_signs(around), 0, width.trailing_zeros());
        // F across rows: output row a = Σ_b F_ab·row_b in order b, each row
        // repeated across a register and multiplied by every output
        // register's pattern of signs.
        let mut acc = [V::zero(); REGS];
        for (k, v) in r.iter().enumerate() {
            for part in 0..rows {
                let row = if rows == 1 {
                    *v
                } else {
                    v.repeat_part(part, width)
                };
                let signs = by_input[k * rows + part];
                for (j, acc) in acc.iter_mut().enumerate() {
                    let idx = ((signs >> (j * rows)) & pick & 15) as usize;
                    *acc = row.mul_add(V::load(table[idx].as_ptr()), *acc);
                }
            }
        }
        store_finished(acc, x, around);
    }
}

/// `R` registers at `p` (elements `base …` of the vector), each negated
/// where `signs` has its bits (if given), then `stages` in-register
/// stages each.
///
/// # Safety
/// The ISA is available; `R·LANES` f32 are readable at `p`; `signs`
/// covers elements `base … base + R·LANES − 1`.
#[inline(always)]
unsafe fn load_signed<V: Vector, const R: usize>(
    p: *const f32,
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
unsafe fn store_finished<V: Vector, const R: usize>(
    r: [V; R],
    x: &mut [f32],
    around: &super::Around,
) {
    let finish = Finish {
        scale: around.scale,
        signs: (!around.signs_first).then_some(&around.signs[..]),
    };
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
fn first_signs(around: &super::Around) -> Option<&[u64]> {
    around.signs_first.then_some(&around.signs[..])
}

/// [`rotate_one_pass`] on `R` registers (`x.len() == LANES·R`).
///
/// # Safety
/// The ISA is available; `x.len() == LANES·R`, at most
/// [`ONE_PASS_MAX`](super::ONE_PASS_MAX).
#[inline(always)]
unsafe fn one_pass<V: Vector, const R: usize>(x: &mut [f32], around: &super::Around) {
    // SAFETY: R·LANES f32 are valid at x (caller); the ISA is the caller's.
    unsafe {
        let mut r: [V; R] = load_signed(
            x.as_ptr(),
            first_signs(around),
            0,
            V::LANES.trailing_zeros(),
        );
        cross(&mut r);
        store_finished(r, x, around);
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

/// Sign registers of [`mode_product`]: `PATTERNS[k][idx]` lane `l` is `−1`
/// where bit `l >> (k + 2)` of `idx` is set, else `+1`. With `2^(k+2)`
/// floats of a row in a register (`k = 0, 1, 2` for 4, 8, 16), pattern
/// `idx` gives each row of the register the sign of its bit of `idx`.
const PATTERNS: [[[f32; 16]; 16]; 3] = {
    let mut t = [[[0.0f32; 16]; 16]; 3];
    let mut k = 0;
    while k < 3 {
        let mut idx = 0;
        while idx < 16 {
            let mut l = 0;
            while l < 16 {
                t[k][idx][l] = if (idx >> (l >> (k + 2))) & 1 == 1 {
                    -1.0
                } else {
                    1.0
                };
                l += 1;
            }
            idx += 1;
        }
        k += 1;
    }
    t
};

/// A Paley factor's mode product (see `paley::mode_product`, the same sums
/// in the same order): `out_a = Σ_b F_ab·row_b` as `acc + row·(±1)` FMAs
/// (the product is exact, so each rounds as the reference's add does).
/// Rows of a whole number of registers take them a register at a time;
/// rows of a half or a quarter of a register (strides 8 and 4 in 16 lanes:
/// d = 96 = 12·8, 80 = 20·4) are repeated across it, so one FMA serves
/// that many output rows, each lane with its own row's sign from
/// [`PATTERNS`]. Up to eight registers of output rows at a time, for as
/// many independent chains of FMAs; the signs come from `by_input[b]` (bit
/// `a` set where `F_ab = −1`), one scalar shift per input row. Other
/// strides take the portable loop, compiled here with the backend's
/// features.
///
/// # Safety
/// The ISA behind `V` is available; `by_output` and `by_input` are a
/// factor's masks by rows and by columns (or the transpose's), of equal
/// length `n`, a multiple of 4 up to 64; `n·stride` divides `x.len()`;
/// `tmp` holds at least `n·stride`.
#[inline(always)]
pub(super) unsafe fn mode_product<V: Vector>(
    by_output: &[u64],
    by_input: &[u64],
    x: &mut [f32],
    stride: usize,
    tmp: &mut [f32],
) {
    if !(stride.is_multiple_of(V::LANES) || V::repeats(stride)) {
        super::paley::mode_product(by_output, x, stride, tmp);
        return;
    }
    let n = by_output.len();
    let tmp = &mut tmp[..n * stride];
    for block in x.chunks_exact_mut(n * stride) {
        tmp.copy_from_slice(block);
        // SAFETY: forwarded; the block and its copy hold n·stride f32.
        unsafe { mode_block::<V>(by_input, tmp, block, stride, &Finish::NONE) };
    }
}

/// What is done to each register of a mode product's output as it is
/// stored: the rotation's scale, then its signs (bit `i % 64` of word
/// `i / 64` negates output element `i`) where they come last.
struct Finish<'a> {
    scale: Option<f32>,
    signs: Option<&'a [u64]>,
}

impl Finish<'_> {
    /// Nothing: the plain product.
    const NONE: Finish<'static> = Finish {
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
    unsafe fn apply<V: Vector>(&self, mut v: V, at: usize) -> V {
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

/// One block of [`mode_product`]: `dst` ← the factor's product of `src`
/// (`by_input.len()` rows of `stride`), each register finished as stored.
///
/// # Safety
/// As [`mode_product`], with `src` and `dst` of `by_input.len()·stride`
/// f32 and `stride` a multiple of `LANES` or a length [`Vector::repeats`]
/// takes.
#[inline(always)]
unsafe fn mode_block<V: Vector>(
    by_input: &[u64],
    src: &[f32],
    dst: &mut [f32],
    stride: usize,
    finish: &Finish<'_>,
) {
    let n = by_input.len();
    let width = stride.min(V::LANES);
    // Shifts, not divisions (an integer division costs more than a group
    // of this kernel at d = 96).
    let rows_log2 = V::LANES.trailing_zeros() - width.trailing_zeros();
    let table = &PATTERNS[width.trailing_zeros() as usize - 2];
    let mut a0 = 0;
    while a0 < n {
        // Registers of output rows left (n is a multiple of 4 ≥ rows).
        let left = (n - a0) >> rows_log2;
        let g = GroupArgs {
            by_input,
            src,
            stride,
            width,
            a0,
            table,
            finish,
        };
        // Groups of 8, 4, 2 or 1 registers (constants, so that the
        // sums and the sign shifts stay in registers).
        let regs = [8, 4, 2, 1].into_iter().find(|&r| r <= left).unwrap_or(1);
        // SAFETY: forwarded; the group's rows a0 … a0 + regs·rows − 1
        // are below n.
        unsafe {
            match (regs, rows_log2) {
                (8, 0) => mode_group::<V, 8, 0>(&g, dst),
                (8, 1) => mode_group::<V, 8, 1>(&g, dst),
                (8, _) => mode_group::<V, 8, 2>(&g, dst),
                (4, 0) => mode_group::<V, 4, 0>(&g, dst),
                (4, 1) => mode_group::<V, 4, 1>(&g, dst),
                (4, _) => mode_group::<V, 4, 2>(&g, dst),
                (2, 0) => mode_group::<V, 2, 0>(&g, dst),
                (2, 1) => mode_group::<V, 2, 1>(&g, dst),
                (2, _) => mode_group::<V, 2, 2>(&g, dst),
                (_, 0) => mode_group::<V, 1, 0>(&g, dst),
                (_, 1) => mode_group::<V, 1, 1>(&g, dst),
                (_, _) => mode_group::<V, 1, 2>(&g, dst),
            }
        }
        a0 += regs << rows_log2;
    }
}

/// The fixed arguments of [`mode_group`].
struct GroupArgs<'a> {
    by_input: &'a [u64],
    src: &'a [f32],
    stride: usize,
    width: usize,
    a0: usize,
    table: &'a [[f32; 16]; 16],
    finish: &'a Finish<'a>,
}

/// Output rows `a0 … a0 + A·rows − 1` of one block of [`mode_block`]
/// (`rows = 2^R = LANES / width` a register), into `dst`.
///
/// # Safety
/// As [`mode_block`]; those rows exist, and `2^R = LANES / width`.
#[inline(always)]
unsafe fn mode_group<V: Vector, const A: usize, const R: u32>(g: &GroupArgs<'_>, dst: &mut [f32]) {
    let rows = 1usize << R;
    let pick = (1u64 << rows) - 1;
    let mut c = 0;
    while c < g.stride {
        // SAFETY: the ISA is available (caller); no memory access.
        let mut acc = unsafe { [V::zero(); A] };
        for (b, &mask) in g.by_input.iter().enumerate() {
            let bits = mask >> g.a0;
            // SAFETY: reads LANES f32 (or `width` repeated) at b·stride + c,
            // inside row b < n of `src`; the patterns are 16 ≥ LANES f32.
            unsafe {
                let p = g.src.as_ptr().add(b * g.stride + c);
                let v = if rows == 1 {
                    V::load(p)
                } else {
                    V::load_repeated(p, g.width)
                };
                for (j, acc) in acc.iter_mut().enumerate() {
                    // (`& 15`: a bound the compiler sees; pick ≤ 15.)
                    let idx = ((bits >> (j * rows)) & pick & 15) as usize;
                    // One row a register: a broadcast ±1 (4 bytes read,
                    // not a 64-byte pattern).
                    let s = if R == 0 {
                        V::splat(super::paley::SIGN[idx & 1])
                    } else {
                        V::load(g.table[idx].as_ptr())
                    };
                    *acc = v.mul_add(s, *acc);
                }
            }
        }
        for (j, acc) in acc.iter().enumerate() {
            // Register j holds rows a0 + j·rows … (contiguous when rows > 1,
            // where stride = width), columns c … c + width − 1 of each.
            let at = (g.a0 + j * rows) * g.stride + c;
            // SAFETY: LANES f32 at `at` lie inside the block's rows; the
            // finish's signs cover the block.
            unsafe { g.finish.apply(*acc, at).store(dst.as_mut_ptr().add(at)) };
        }
        c += g.width;
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
                // SAFETY: as in `fwht`.
                unsafe { super::simd::rotate_one_pass::<$vector>(x, around) }
            }

            /// A two-pass rotation where the shape allows (else `false`).
            ///
            /// # Safety
            /// As [`fwht`].
            pub(super) unsafe fn rotate_two_pass(
                x: &mut [f32],
                around: &super::Around,
                tmp: &mut [f32],
            ) -> bool {
                // SAFETY: as in `fwht`.
                unsafe { super::simd::rotate_two_pass::<$vector>(x, around, tmp) }
            }

            /// WHT of every `len`-long row (`len` validated, dividing the length).
            ///
            /// # Safety
            /// As [`fwht`].
            pub(super) unsafe fn fwht_rows(data: &mut [f32], len: usize) {
                // SAFETY: as in `fwht`.
                unsafe { super::simd::fwht_rows::<$vector>(data, len) }
            }

            /// A Paley factor's mode product (`by_output.len()·stride`
            /// divides `x.len()`, `tmp` holds that many).
            ///
            /// # Safety
            /// As [`fwht`].
            pub(super) unsafe fn mode_product(
                by_output: &[u64],
                by_input: &[u64],
                x: &mut [f32],
                stride: usize,
                tmp: &mut [f32],
            ) {
                // SAFETY: as in `fwht`; the sizes are the caller's.
                unsafe {
                    super::simd::mode_product::<$vector>(by_output, by_input, x, stride, tmp)
                }
            }
        }
    };
}
pub(super) use entry_points;
