//! Shared helpers of the fuzz targets: a reader that turns the fuzzer's
//! bytes into parameters, and the float comparisons the crate promises.

use std::sync::OnceLock;

use tqkv::{Backend, Codebook};

/// Consumes fuzz input; past the end it yields zeros.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u64(&mut self) -> u64 {
        (0..8).fold(0u64, |v, i| v | (self.u8() as u64) << (8 * i))
    }

    /// Any f32 bit pattern: NaNs, infinities, subnormals and ±0 included.
    /// One byte in four picks from hand-written hostile values instead.
    pub fn f32(&mut self) -> f32 {
        let tag = self.u8();
        if tag < 64 {
            const HOSTILE: [f32; 16] = [
                0.0,
                -0.0,
                f32::NAN,
                -f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                f32::MIN_POSITIVE,
                -f32::MIN_POSITIVE,
                1e-45,
                -1e-45,
                f32::MAX,
                f32::MIN,
                1.0,
                -1.0,
                0.5,
                1e30,
            ];
            HOSTILE[(tag % 16) as usize]
        } else {
            f32::from_bits(u32::from_le_bytes([
                self.u8(),
                self.u8(),
                self.u8(),
                self.u8(),
            ]))
        }
    }

    /// A finite f32 of moderate size (for the float reductions).
    pub fn small_f32(&mut self) -> f32 {
        (self.u16() as i16) as f32 / 1024.0
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u8()).collect()
    }

    pub fn rest(&self) -> &'a [u8] {
        self.data
    }
}

/// Every codebook the targets use: `gaussian(1..=8)` and the tables for
/// dims 64, 128, 256 at 1..=4 bits, built once.
pub fn codebooks() -> &'static [Codebook] {
    static CBS: OnceLock<Vec<Codebook>> = OnceLock::new();
    CBS.get_or_init(|| {
        let mut v: Vec<Codebook> = (1..=8).map(|b| Codebook::gaussian(b).unwrap()).collect();
        for d in [64, 128, 256] {
            for b in 1..=4 {
                v.push(Codebook::lloyd_max(d, b).unwrap());
            }
        }
        v
    })
}

/// Backends this CPU runs.
pub fn backends() -> impl Iterator<Item = Backend> {
    Backend::available()
}

/// Same bits, or both NaN (NaN payloads are not promised).
pub fn same_float(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// A reordered sum `got` against the scalar `want`, given the exact terms
/// (in f64, so that only an infinite input gives an infinite term): NaN if
/// any term is NaN or both infinities occur; the same infinity if one does;
/// within `1e-5 · Σ|terms|` (plus subnormal slack) otherwise. Sums whose
/// terms come near f32 overflow are not compared (f32 rounding of partial
/// sums is order-dependent there).
pub fn check_sum(want: f32, got: f32, terms: impl IntoIterator<Item = f64>) -> bool {
    let (mut bound, mut nan, mut pinf, mut ninf) = (0.0f64, false, false, false);
    for t in terms {
        if t.is_nan() {
            nan = true;
        } else if t == f64::INFINITY {
            pinf = true;
        } else if t == f64::NEG_INFINITY {
            ninf = true;
        } else {
            bound += t.abs();
        }
    }
    if bound >= 1e37 {
        return true;
    }
    if nan || (pinf && ninf) {
        return want.is_nan() && got.is_nan();
    }
    if pinf || ninf {
        return same_float(want, got);
    }
    ((want as f64) - (got as f64)).abs() <= 1e-5 * bound + 1e-30
}
