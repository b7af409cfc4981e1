//! Which SIMD instruction set the kernels run on, detected once per process.
//!
//! Detection runs the first time it is needed and is cached in an atomic (no
//! locks; a race only means two threads compute the same answer). On x86_64
//! with the `std` feature it uses `is_x86_feature_detected!`; without `std` it
//! reads `cpuid` and `xgetbv` itself, checking that the OS saves the ymm/zmm
//! state and not only the CPUID bits. NEON is baseline on aarch64.
//!
//! This file is also the crate's one dispatch: the feature list of each
//! backend (used by detection and by every kernel's `#[target_feature]`),
//! the `Checked` token that proves a backend was checked, and the
//! `on_backend!` macro that turns the token into a kernel call.

use core::sync::atomic::{AtomicU8, Ordering};

/// A kernel implementation: portable scalar code or one SIMD instruction set.
///
/// ```
/// use tqkv::Backend;
///
/// let best = Backend::detect();
/// assert!(best.is_available());
/// assert!(Backend::Scalar.is_available());
/// assert!(Backend::available().any(|b| b == best));
/// println!("running on {}", best.name());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Backend {
    /// Plain Rust, the reference every other backend is tested against.
    Scalar,
    /// x86_64 with AVX2, FMA, BMI1 and BMI2 (Haswell and later).
    Avx2,
    /// x86_64 with the Ice Lake AVX-512 set: F, CD, BW, DQ, VL, VBMI, VBMI2,
    /// VNNI, BITALG and VPOPCNTDQ, and GFNI (plus everything
    /// [`Backend::Avx2`] needs).
    Avx512,
    /// aarch64 Advanced SIMD (baseline on every aarch64 CPU).
    Neon,
}

impl Backend {
    /// Every backend the crate knows, from the most portable to the widest.
    pub const ALL: &'static [Backend] = &[
        Backend::Scalar,
        Backend::Avx2,
        Backend::Avx512,
        Backend::Neon,
    ];

    /// The best backend available on this CPU (cached after the first call).
    #[inline]
    pub fn detect() -> Backend {
        Backend::from_code(cached(&DETECTED, || detect_uncached() as u8))
    }

    /// Whether this backend can run on this CPU.
    #[inline]
    pub fn is_available(self) -> bool {
        match self {
            Backend::Scalar => true,
            Backend::Avx2 => matches!(Backend::detect(), Backend::Avx2 | Backend::Avx512),
            Backend::Avx512 => Backend::detect() == Backend::Avx512,
            Backend::Neon => Backend::detect() == Backend::Neon,
        }
    }

    /// Every backend available on this CPU, scalar first.
    pub fn available() -> impl Iterator<Item = Backend> + Clone {
        Backend::ALL.iter().copied().filter(|b| b.is_available())
    }

    /// A short lowercase name (`"scalar"`, `"avx2"`, `"avx512"`, `"neon"`), as
    /// used in benchmark ids.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::Avx2 => "avx2",
            Backend::Avx512 => "avx512",
            Backend::Neon => "neon",
        }
    }

    /// The proof that this backend can run here, or
    /// [`Error::BackendUnavailable`](crate::Error::BackendUnavailable): the
    /// one availability check of a call (every public `…_on` function makes
    /// it first; everything below takes the [`Checked`] token).
    #[inline]
    pub(crate) fn check(self) -> Result<Checked, crate::Error> {
        if self.is_available() {
            Ok(Checked(self))
        } else {
            Err(crate::Error::BackendUnavailable(self))
        }
    }

    fn from_code(code: u8) -> Backend {
        match code {
            1 => Backend::Avx2,
            2 => Backend::Avx512,
            3 => Backend::Neon,
            _ => Backend::Scalar,
        }
    }
}

impl core::fmt::Display for Backend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A backend this CPU runs: only [`Backend::check`] makes one, so holding
/// it proves that the backend's target features are available, and the
/// dispatch ([`on_backend!`]) calls the `#[target_feature]` kernels without
/// checking again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Checked(Backend);

impl Checked {
    /// The backend.
    #[inline]
    pub(crate) fn backend(self) -> Backend {
        self.0
    }
}

/// The one dispatch of the crate: `on_backend!(checked, scalar, kernel(args))`
/// evaluates the scalar expression on [`Backend::Scalar`], else calls
/// `kernel` of the backend's module beside the call site (`avx2`, `avx512`,
/// `neon`: `#[target_feature]` functions compiled with that backend's
/// feature list), and wraps the result in `Ok`.
macro_rules! on_backend {
    ($checked:expr, $scalar:expr, $($path:ident)::+ ($($arg:expr),*)) => {{
        let checked: $crate::backend::Checked = $checked;
        match checked.backend() {
            $crate::Backend::Scalar => Ok($scalar),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Checked` proves the backend's target features are
            // available, and they are the ones the kernel is compiled with.
            $crate::Backend::Avx2 => Ok(unsafe { avx2::$($path)::+($($arg),*) }),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            $crate::Backend::Avx512 => Ok(unsafe { avx512::$($path)::+($($arg),*) }),
            #[cfg(target_arch = "aarch64")]
            // SAFETY: as above.
            $crate::Backend::Neon => Ok(unsafe { neon::$($path)::+($($arg),*) }),
            // A checked backend of another architecture cannot exist.
            #[allow(unreachable_patterns)]
            other => Err($crate::Error::BackendUnavailable(other)),
        }
    }};
}
pub(crate) use on_backend;

/// The target features of the AVX2 backend, the one list both detection
/// and every AVX2 kernel's `#[target_feature]` use: calls `$m! { [list] … }`.
///
/// Neither POPCNT nor F16C is in it: no kernel needs them (popcounts are
/// nibble-table lookups), and enabling POPCNT made LLVM compile the 2-bit
/// row kernel 20% slower (measured; see docs/benchmark-journal.md).
#[cfg(target_arch = "x86_64")]
macro_rules! avx2_features {
    ($($m:ident)::+ { $($rest:tt)* }) => {
        $($m)::+! { ["avx2", "fma", "bmi1", "bmi2"] $($rest)* }
    };
}
#[cfg(target_arch = "x86_64")]
pub(crate) use avx2_features;

/// The target features of the AVX-512 backend (the Ice Lake set, plus the
/// AVX2 list, which its kernels use too); as [`avx2_features!`].
#[cfg(target_arch = "x86_64")]
macro_rules! avx512_features {
    ($($m:ident)::+ { $($rest:tt)* }) => {
        $($m)::+! {
            [
                "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512vbmi",
                "avx512vbmi2", "avx512vnni", "avx512bitalg", "avx512vpopcntdq", "gfni",
                "avx2", "fma", "bmi1", "bmi2"
            ]
            $($rest)*
        }
    };
}
#[cfg(target_arch = "x86_64")]
pub(crate) use avx512_features;

/// The target features of the NEON backend; as `avx2_features!` on x86.
#[cfg(target_arch = "aarch64")]
macro_rules! neon_features {
    ($($m:ident)::+ { $($rest:tt)* }) => {
        $($m)::+! { ["neon"] $($rest)* }
    };
}
#[cfg(target_arch = "aarch64")]
pub(crate) use neon_features;

/// `target_features! { [list] items… }`: every item (an `unsafe fn`) with
/// `#[target_feature(enable = …)]` for each feature of the list. Used as
/// `avx2_features!(target_features { … })`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
macro_rules! target_features {
    ([$($feature:tt),*]) => {};
    ([$($feature:tt),*] $item:item $($rest:item)*) => {
        $(#[target_feature(enable = $feature)])*
        $item
        $crate::backend::target_features! { [$($feature),*] $($rest)* }
    };
}
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) use target_features;

const UNKNOWN: u8 = 0xFF;
static DETECTED: AtomicU8 = AtomicU8::new(UNKNOWN);

/// The value in `cell`, read by `read` on the first call (`UNKNOWN` until
/// then; `read` never returns it). Threads that race on the first call
/// each read the same answer and store it.
#[inline]
fn cached(cell: &AtomicU8, read: impl FnOnce() -> u8) -> u8 {
    match cell.load(Ordering::Relaxed) {
        UNKNOWN => {
            let v = read();
            cell.store(v, Ordering::Relaxed);
            v
        }
        v => v,
    }
}

#[cfg(target_arch = "aarch64")]
fn detect_uncached() -> Backend {
    Backend::Neon
}

#[cfg(target_arch = "x86_64")]
fn detect_uncached() -> Backend {
    #[cfg(feature = "std")]
    let f = x86::features_std();
    #[cfg(not(feature = "std"))]
    let f = x86::features_cpuid();
    f.best()
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn detect_uncached() -> Backend {
    Backend::Scalar
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    //! x86_64 feature detection, by `std` and by hand.
    use super::Backend;

    /// The two feature sets the crate cares about.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) struct Features {
        /// AVX2 + FMA + BMI1/2, with OS support for ymm state.
        pub avx2: bool,
        /// The Ice Lake AVX-512 set, with OS support for zmm and mask state.
        pub avx512: bool,
    }

    impl Features {
        pub(crate) fn best(self) -> Backend {
            if self.avx2 && self.avx512 {
                Backend::Avx512
            } else if self.avx2 {
                Backend::Avx2
            } else {
                Backend::Scalar
            }
        }
    }

    /// `true` when `std` detects every feature of the list.
    #[cfg(feature = "std")]
    macro_rules! all_detected {
        ([$($feature:tt),*]) => { true $(&& std::is_x86_feature_detected!($feature))* };
    }

    /// The feature list as a slice of names.
    macro_rules! names {
        ([$($feature:tt),*]) => { &[$($feature),*] };
    }

    /// The AVX2 list (for the `cpuid` path).
    pub(crate) const AVX2: &[&str] = crate::backend::avx2_features!(names {});
    /// The AVX-512 list (for the `cpuid` path).
    pub(crate) const AVX512: &[&str] = crate::backend::avx512_features!(names {});

    #[cfg(feature = "std")]
    pub(crate) fn features_std() -> Features {
        Features {
            avx2: crate::backend::avx2_features!(all_detected {}),
            avx512: crate::backend::avx512_features!(all_detected {}),
        }
    }

    /// Reads `cpuid` and `xgetbv` directly (the `no_std` path; also compiled
    /// with `std` so tests can compare it with `is_x86_feature_detected!`).
    #[cfg_attr(feature = "std", allow(dead_code))]
    pub(crate) fn features_cpuid() -> Features {
        use core::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};

        const NONE: Features = Features {
            avx2: false,
            avx512: false,
        };
        let bit = |reg: u32, n: u32| reg & (1 << n) != 0;

        // Miri cannot execute cpuid or xgetbv: under Miri the crate runs its
        // scalar paths, which are what Miri is there to check (as
        // `is_x86_feature_detected!` reports no extension under Miri either).
        if cfg!(miri) {
            return NONE;
        }
        // `cpuid` is a safe function in recent Rust (every x86_64 CPU has
        // the instruction) but not in 1.89, the MSRV: hence the block.
        #[allow(unused_unsafe)]
        // SAFETY: CPUID exists on every x86_64 CPU and only reads registers.
        let (max_leaf, l1, l7) = unsafe { (__cpuid(0).eax, __cpuid(1), __cpuid_count(7, 0)) };
        if max_leaf < 7 {
            return NONE;
        }
        // The OS must have enabled XSAVE before xgetbv may run at all.
        if !(bit(l1.ecx, 27) && bit(l1.ecx, 28)) {
            return NONE;
        }
        // SAFETY: CPUID.1:ECX.OSXSAVE (bit 27) is set, so XGETBV is supported
        // and enabled by the OS; register 0 (XCR0) always exists.
        let xcr0 = unsafe { _xgetbv(0) };
        // XCR0 bits 1 and 2: the OS saves xmm and ymm state.
        let os_ymm = xcr0 & 0b110 == 0b110;
        // Bits 5, 6, 7: opmask, upper halves of zmm0-15, and zmm16-31.
        let os_zmm = os_ymm && xcr0 & 0b1110_0000 == 0b1110_0000;

        // Where each feature of the lists sits in CPUID (leaf 1 ECX, leaf 7
        // EBX/ECX); a name missing here reads as absent, which the test
        // against `is_x86_feature_detected!` would catch.
        let has = |feature: &str| match feature {
            "fma" => bit(l1.ecx, 12),
            "bmi1" => bit(l7.ebx, 3),
            "avx2" => bit(l7.ebx, 5),
            "bmi2" => bit(l7.ebx, 8),
            "avx512f" => bit(l7.ebx, 16),
            "avx512dq" => bit(l7.ebx, 17),
            "avx512cd" => bit(l7.ebx, 28),
            "avx512bw" => bit(l7.ebx, 30),
            "avx512vl" => bit(l7.ebx, 31),
            "avx512vbmi" => bit(l7.ecx, 1),
            "avx512vbmi2" => bit(l7.ecx, 6),
            "avx512vnni" => bit(l7.ecx, 11),
            "avx512bitalg" => bit(l7.ecx, 12),
            "avx512vpopcntdq" => bit(l7.ecx, 14),
            "gfni" => bit(l7.ecx, 8),
            _ => false,
        };
        Features {
            avx2: os_ymm && AVX2.iter().all(|f| has(f)),
            avx512: os_zmm && AVX512.iter().all(|f| has(f)),
        }
    }

    /// [`super::zmm_on_half_pipes`], uncached: an AMD CPU (vendor
    /// `AuthenticAMD`) of family 19h (base family Fh plus extended family
    /// 0Ah, leaf 1 EAX).
    pub(crate) fn zmm_on_half_pipes_uncached() -> bool {
        use core::arch::x86_64::__cpuid;
        if cfg!(miri) {
            return false;
        }
        #[allow(unused_unsafe)]
        // SAFETY: CPUID exists on every x86_64 CPU and only reads registers.
        let (l0, l1) = unsafe { (__cpuid(0), __cpuid(1)) };
        half_pipes_from([l0.ebx, l0.edx, l0.ecx], l1.eax)
    }

    /// [`zmm_on_half_pipes_uncached`] from the vendor string (leaf 0 EBX,
    /// EDX, ECX) and the signature (leaf 1 EAX).
    pub(crate) fn half_pipes_from(vendor: [u32; 3], signature: u32) -> bool {
        let amd = vendor == [*b"Auth", *b"enti", *b"cAMD"].map(u32::from_le_bytes);
        let base = (signature >> 8) & 0xF;
        let family = if base == 0xF {
            base + ((signature >> 20) & 0xFF)
        } else {
            base
        };
        amd && family == 0x19
    }
}

/// Whether this CPU runs a 512-bit instruction in two halves on 256-bit
/// pipes, as AMD's Zen 4 does (family 19h, the only family 19h cores with
/// AVX-512), rather than at full width, as Zen 5 (family 1Ah) and Intel's
/// cores do. Measured on the two kinds of host this crate was tuned on: a
/// Zen 4 ran 8 zmm FMAs, adds or `vpermps` in the time of 16 ymm ones, a
/// Zen 5 in the time of 8. The few kernels whose best shape depends on it
/// ask here (the AVX-512 value rows at 1–3 bits). Read once from `cpuid`
/// and cached; `false` under Miri and off x86_64, where nothing asks.
#[cfg(target_arch = "x86_64")]
pub(crate) fn zmm_on_half_pipes() -> bool {
    static HALF_PIPES: AtomicU8 = AtomicU8::new(UNKNOWN);
    cached(&HALF_PIPES, || x86::zmm_on_half_pipes_uncached() as u8) != 0
}

/// Rows ahead of the current one that the AVX-512 key row blocks and the
/// x86 value kernels (on their first pass over a block's rows) ask into
/// L2: past
/// the last-level cache, the hardware prefetcher alone left value rows
/// late (eight KV heads decoded 1.7× slower; docs/benchmark-journal.md,
/// sixteenth session).
#[cfg(target_arch = "x86_64")]
pub(crate) const ROWS_AHEAD: usize = 128;

/// Asks the cache line [`ROWS_AHEAD`] rows of `stride` bytes after `row`
/// into L2. Any address will do: a prefetch never faults, and the address
/// is computed with wrapping arithmetic (a huge stride must not
/// overflow-panic in a debug build).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn prefetch_ahead(row: *const u8, stride: usize) {
    let ahead = row.wrapping_add(stride.wrapping_mul(ROWS_AHEAD));
    // SAFETY: SSE is baseline on x86_64; a prefetch reads nothing and
    // never faults, whatever the address.
    unsafe { core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T1 }>(ahead.cast()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_is_stable_and_available() {
        let a = Backend::detect();
        let b = Backend::detect();
        assert_eq!(a, b);
        assert!(a.is_available());
        assert!(Backend::available().any(|x| x == a));
        assert_eq!(Backend::available().next(), Some(Backend::Scalar));
    }

    #[test]
    fn detected_backend_is_the_widest_available() {
        let best = Backend::detect();
        assert_eq!(Backend::available().max(), Some(best));
    }

    #[test]
    fn names_are_distinct() {
        for &a in Backend::ALL {
            for &b in Backend::ALL {
                assert_eq!(a == b, a.name() == b.name());
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn pipe_width_is_read_from_the_family() {
        use x86::half_pipes_from;
        let amd = [*b"Auth", *b"enti", *b"cAMD"].map(u32::from_le_bytes);
        let intel = [*b"Genu", *b"ineI", *b"ntel"].map(u32::from_le_bytes);
        // Signatures (leaf 1 EAX) of real parts: an EPYC 9654 (Zen 4,
        // family 19h), an EPYC of family 1Ah model 2 (Zen 5, as this
        // crate's benchmark machine reads), an EPYC 7763 (Zen 3, 19h: no
        // AVX-512, so never asked), a Sapphire Rapids Xeon (family 6).
        assert!(half_pipes_from(amd, 0x00A1_0F11));
        assert!(!half_pipes_from(amd, 0x00B0_0F21));
        assert!(half_pipes_from(amd, 0x00A0_0F11));
        assert!(!half_pipes_from(intel, 0x0008_06F8));
        // Family 19h on another vendor's string is not AMD's.
        assert!(!half_pipes_from(intel, 0x00A1_0F11));
        // The cached answer is the uncached one, every time.
        let first = zmm_on_half_pipes();
        for _ in 0..3 {
            assert_eq!(zmm_on_half_pipes(), first);
        }
        assert_eq!(first, x86::zmm_on_half_pipes_uncached());
    }

    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    #[test]
    fn cpuid_detection_agrees_with_std() {
        assert_eq!(x86::features_cpuid(), x86::features_std());
    }

    #[cfg(target_arch = "aarch64")]
    #[test]
    fn neon_is_baseline_on_aarch64() {
        assert_eq!(Backend::detect(), Backend::Neon);
        assert!(!Backend::Avx2.is_available());
    }

    #[cfg(feature = "std")]
    #[test]
    fn detection_from_many_threads_agrees() {
        let handles: std::vec::Vec<_> = (0..8)
            .map(|_| std::thread::spawn(Backend::detect))
            .collect();
        let first = Backend::detect();
        for h in handles {
            assert_eq!(h.join().unwrap(), first);
        }
    }
}
