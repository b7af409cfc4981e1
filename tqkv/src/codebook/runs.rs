//! The walk over a run of packed codes in the row-block key kernels, once
//! for AVX2 and NEON: after a block's rows are transposed, lane `r` of
//! column `k` holds dword `k` of row `r`, and every `B` dwords hold 32
//! codes. [`add_codes`] takes them in coordinate order, shifting each to
//! the bottom of its lane, and adds its table entry to the row's sum; the
//! backends supply the register operations ([`RunLanes`]).

/// The register operations [`add_codes`] needs of a backend.
///
/// # Safety
/// Every method runs only where the backend's target features are
/// available (the callers are `#[target_feature]` functions); `add_entry`
/// reads only its entry.
pub(super) unsafe trait RunLanes {
    /// Lanes of u32 columns of codes.
    type Col: Copy;
    /// Lanes of f32 row sums.
    type Sum: Copy;
    /// One coordinate's table of values.
    type Entry;
    /// Per-call constants of [`add_entry`](Self::add_entry).
    type Ctx: Copy;
    /// All lanes zero.
    unsafe fn zero() -> Self::Col;
    /// Every lane shifted right by `B` (1 to 4) bits.
    unsafe fn shr_width<const B: usize>(x: Self::Col) -> Self::Col;
    /// Every lane shifted left by `n` bits (a constant once unrolled).
    unsafe fn shl(x: Self::Col, n: i32) -> Self::Col;
    /// Every lane shifted right by `n` bits (a constant once unrolled).
    unsafe fn shr(x: Self::Col, n: i32) -> Self::Col;
    /// Lane-wise or.
    unsafe fn or(a: Self::Col, b: Self::Col) -> Self::Col;
    /// `sum + entry[code]` per lane, the `B`-bit code in the low bits of
    /// each lane of `codes` (the bits above it ignored), rounded once as the
    /// scalar kernel's add.
    unsafe fn add_entry<const B: usize>(
        sum: Self::Sum,
        entry: &Self::Entry,
        codes: Self::Col,
        ctx: Self::Ctx,
    ) -> Self::Sum;
}

/// `$body` 32 times, with `$c` the constant 0, 1, …, 31 (LLVM kept the
/// loop of [`add_codes`], its state on the stack and every shift count in
/// a register).
macro_rules! unroll_32 {
    ($c:ident => $body:block) => {
        $crate::codebook::runs::unroll_32!(@ $c $body; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31)
    };
    (@ $c:ident $body:block; $($n:literal)*) => {
        $({
            const $c: usize = $n;
            $body
        })*
    };
}
pub(super) use unroll_32;

/// [`add_codes`] over the `dwords / B` runs of a chunk's `dwords` columns,
/// `table` from the chunk's first coordinate (codes past its end are
/// skipped: the last chunk of a row may hold fewer).
///
/// # Safety
/// The backend's target features are available; `dwords ≤ C`.
#[inline(always)]
pub(super) unsafe fn add_chunk<R: RunLanes, const B: usize, const NB: usize, const C: usize>(
    cols: &[[R::Col; C]; NB],
    dwords: usize,
    table: &[R::Entry],
    ctx: R::Ctx,
    sums: &mut [R::Sum; NB],
) {
    for run in 0..dwords / B {
        let Some(table) = table.get(32 * run..).filter(|t| !t.is_empty()) else {
            break;
        };
        // SAFETY: forwarded; run `run` takes columns `B·run … B·run + B − 1`,
        // below `dwords ≤ C`.
        unsafe { add_codes::<R, B, NB, C>(cols, B * run, table, ctx, sums) };
    }
}

/// Adds `table[c][code c]` into each block's sums for the first
/// `table.len().min(32)` of the 32 codes in columns `dw0 … dw0 + B − 1` of
/// every block, in order: code `c` starts at bit `B·c` of the run and is
/// shifted to the bottom of its lane (the next codes stay above it); at 3
/// bits codes 10 and 21 cross into the next dword and take its low bits by
/// a shift and an or.
///
/// # Safety
/// The backend's target features are available; `dw0 + B ≤ C`.
#[inline(always)]
unsafe fn add_codes<R: RunLanes, const B: usize, const NB: usize, const C: usize>(
    cols: &[[R::Col; C]; NB],
    dw0: usize,
    table: &[R::Entry],
    ctx: R::Ctx,
    sums: &mut [R::Sum; NB],
) {
    // SAFETY: the caller's promises; registers and the table only.
    unsafe {
        let mut x = [R::zero(); NB];
        'codes: {
            unroll_32!(K => {
                let Some(t) = table.get(K) else {
                    break 'codes;
                };
                let (w, off) = (dw0 + B * K / 32, (B * K % 32) as i32);
                if off == 0 {
                    for (x, col) in x.iter_mut().zip(cols) {
                        *x = col[w];
                    }
                }
                let crosses = off as usize + B > 32;
                let mut codes = x;
                if crosses {
                    for (c, col) in codes.iter_mut().zip(cols) {
                        *c = R::or(*c, R::shl(col[w + 1], 32 - off));
                    }
                }
                for (s, &c) in sums.iter_mut().zip(&codes) {
                    *s = R::add_entry::<B>(*s, t, c, ctx);
                }
                // The next code at the bottom of `x` (a new dword is loaded
                // above when it starts one).
                if crosses {
                    for (x, col) in x.iter_mut().zip(cols) {
                        *x = R::shr(col[w + 1], off + B as i32 - 32);
                    }
                } else if off as usize + B < 32 {
                    for x in x.iter_mut() {
                        *x = R::shr_width::<B>(*x);
                    }
                }
            });
        }
    }
}
