//! The partial attention state: what a range of tokens contributes to the
//! attention of some query vectors, in a form that merges exactly.

use super::pass::{Shape, decay};
use crate::backend::Checked;
use crate::quant::{KvCache, Quantizer};
use crate::{Backend, Error};

/// Leading values of each query vector's state: the running maximum score
/// and the sum of exponentials below it, kept as two f32 (high and low
/// part) so that it carries about 48 bits.
const HEADER: usize = 3;

/// The partial state of attention for some query vectors over a range of
/// tokens of one KV head, in a caller buffer: per query vector, the largest
/// score `m`, the sum `Σ e^(s_t − m)` and the unnormalised accumulators
/// `Σ e^(s_t − m)·‖v_t‖·c[idx_t]` in the rotated domain (and, for prod
/// values, `Σ e^(s_t − m)·γ_t·s_t` in the sketch domain).
///
/// Two states of disjoint token ranges [`merge`](Self::merge) into the
/// state of their union, so a long decode can be split across cores
/// ([`attend_partial`](super::attend_partial) on each range, one merge per
/// range, one [`finish`](Self::finish)); a new state is empty, the identity
/// of the merge.
///
/// ```
/// use tqkv::attention::{attend, attend_partial, scratch_len, Partial};
/// use tqkv::quant::{CacheConfig, KvCache, Scheme};
///
/// let config = CacheConfig::new(Scheme::Kqv, 4, 1, 64, 100).with_seed(5);
/// let mut cache = KvCache::new(config, vec![0u8; config.bytes_needed()?])?;
/// for t in 0..100 {
///     let k: Vec<f32> = (0..64).map(|i| ((i * t) % 11) as f32 - 5.0).collect();
///     cache.push(&k, &[t as f32; 64])?;
/// }
/// let q = [0.2f32; 64];
/// let mut scratch = vec![0.0f32; scratch_len(&cache, 1)];
/// // Tokens 0..40 and 40..100 on their own (e.g. on two cores) …
/// let mut a_buf = vec![0.0f32; Partial::len_for(&cache, 1)];
/// let mut b_buf = a_buf.clone();
/// let mut a = Partial::new(&cache, 1, &mut a_buf)?;
/// let mut b = Partial::new(&cache, 1, &mut b_buf)?;
/// attend_partial(&cache, 0, &q, 0..40, &mut a, &mut scratch)?;
/// attend_partial(&cache, 0, &q, 40..100, &mut b, &mut scratch)?;
/// // … merged, give attention over all 100.
/// a.merge(&b)?;
/// let mut split = [0.0f32; 64];
/// a.finish(&cache, &mut split, &mut scratch)?;
/// let mut whole = [0.0f32; 64];
/// attend(&cache, 0, &q, &mut whole, &mut scratch)?;
/// assert!(split.iter().zip(&whole).all(|(x, y)| (x - y).abs() <= 1e-4 * y.abs().max(1.0)));
/// # Ok::<(), tqkv::Error>(())
/// ```
#[derive(Debug)]
pub struct Partial<'a> {
    data: &'a mut [f32],
    queries: usize,
    shape: Shape,
}

impl<'a> Partial<'a> {
    /// f32 values a state of `queries` query vectors takes for `cache`.
    pub fn len_for<B: AsRef<[u8]>>(cache: &KvCache<B>, queries: usize) -> usize {
        queries.saturating_mul(per_query(Shape::of(cache)))
    }

    /// An empty state of `queries` query vectors for `cache`, in
    /// `buf[..len_for(cache, queries)]`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for zero query vectors;
    /// [`Error::BufferTooShort`] if `buf` is shorter than
    /// [`len_for`](Self::len_for).
    pub fn new<B: AsRef<[u8]>>(
        cache: &KvCache<B>,
        queries: usize,
        buf: &'a mut [f32],
    ) -> Result<Partial<'a>, Error> {
        let mut state = Partial::resume(cache, queries, buf)?;
        state.clear();
        Ok(state)
    }

    /// The state of `queries` query vectors for `cache` that earlier calls
    /// left in `buf[..len_for(cache, queries)]` ([`new`](Self::new), then
    /// [`attend_partial`](super::attend_partial) and
    /// [`merge`](Self::merge)), taken up again as it is: for a runtime that
    /// keeps states in its own memory between calls, as the C ABI does.
    /// Nothing in the values is checked; values no state can hold give a
    /// meaningless result, never a panic.
    ///
    /// ```
    /// use tqkv::attention::{attend, attend_partial, scratch_len, Partial};
    /// use tqkv::quant::{CacheConfig, KvCache, Scheme};
    ///
    /// let config = CacheConfig::new(Scheme::Kqv, 4, 1, 64, 8);
    /// let mut cache = KvCache::new(config, vec![0u8; config.bytes_needed()?])?;
    /// for t in 0..8 {
    ///     cache.push(&[t as f32 - 3.5; 64], &[1.0; 64])?;
    /// }
    /// let (q, mut scratch) = ([0.1f32; 64], vec![0.0f32; scratch_len(&cache, 1)]);
    /// let mut buf = vec![0.0f32; Partial::len_for(&cache, 1)];
    /// attend_partial(&cache, 0, &q, 0..4, &mut Partial::new(&cache, 1, &mut buf)?, &mut scratch)?;
    /// // Later, from the same buffer: the other tokens.
    /// let mut state = Partial::resume(&cache, 1, &mut buf)?;
    /// attend_partial(&cache, 0, &q, 4..8, &mut state, &mut scratch)?;
    /// let (mut split, mut whole) = ([0.0f32; 64], [0.0f32; 64]);
    /// state.finish(&cache, &mut split, &mut scratch)?;
    /// attend(&cache, 0, &q, &mut whole, &mut scratch)?;
    /// assert!(split.iter().zip(&whole).all(|(x, y)| (x - y).abs() <= 1e-4 * y.abs().max(1.0)));
    /// # Ok::<(), tqkv::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn resume<B: AsRef<[u8]>>(
        cache: &KvCache<B>,
        queries: usize,
        buf: &'a mut [f32],
    ) -> Result<Partial<'a>, Error> {
        let needed = state_len(cache, queries, buf.len())?;
        Ok(Partial {
            data: &mut buf[..needed],
            queries,
            shape: Shape::of(cache),
        })
    }

    /// The number of query vectors.
    pub fn queries(&self) -> usize {
        self.queries
    }

    /// Whether no token has been added.
    pub fn is_empty(&self) -> bool {
        (0..self.queries).all(|i| self.max(i) == f32::NEG_INFINITY)
    }

    /// Empties the state.
    pub fn clear(&mut self) {
        for chunk in self.data.chunks_exact_mut(per_query(self.shape)) {
            chunk.fill(0.0);
            chunk[0] = f32::NEG_INFINITY;
        }
    }

    /// `[queries, value dim, value sketch bits]`: what must agree between states
    /// that merge and between a state and a cache.
    fn signature(&self) -> [usize; 3] {
        [self.queries, self.shape.value_dim, self.shape.value_sketch]
    }

    /// [`Error::PartialShape`] unless `self` fits `queries` query vectors
    /// of `cache`.
    pub(super) fn check<B: AsRef<[u8]>>(
        &self,
        cache: &KvCache<B>,
        queries: usize,
    ) -> Result<(), Error> {
        let s = Shape::of(cache);
        let expected = [queries, s.value_dim, s.value_sketch];
        if self.signature() != expected {
            return Err(Error::PartialShape {
                expected,
                found: self.signature(),
            });
        }
        Ok(())
    }

    /// Merges `other` (the state of a disjoint range of tokens, same query
    /// vectors) into `self`: afterwards `self` is the state of both ranges.
    ///
    /// # Errors
    /// [`Error::PartialShape`] if the states differ in query vectors,
    /// dimension or value sketch length.
    pub fn merge(&mut self, other: &Partial<'_>) -> Result<(), Error> {
        if self.signature() != other.signature() {
            return Err(Error::PartialShape {
                expected: self.signature(),
                found: other.signature(),
            });
        }
        merge_data(self.data, other.data, per_query(self.shape));
        Ok(())
    }

    /// The attention output of every query vector (`queries · dim` values
    /// into `out`, zeros for a query vector that saw no token), on the
    /// detected backend; `scratch` holds at least `dim` values.
    ///
    /// # Errors
    /// [`Error::PartialShape`] if the state is not one of `cache`'s shape;
    /// [`Error::LengthMismatch`] unless `out.len() == queries · dim`;
    /// [`Error::BufferTooShort`] if `scratch` is short.
    pub fn finish<B: AsRef<[u8]>>(
        &self,
        cache: &KvCache<B>,
        out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        self.finish_on(Backend::detect(), cache, out, scratch)
    }

    /// [`finish`](Self::finish) on a chosen backend.
    ///
    /// # Errors
    /// As [`finish`](Self::finish), plus [`Error::BackendUnavailable`].
    pub fn finish_on<B: AsRef<[u8]>>(
        &self,
        backend: Backend,
        cache: &KvCache<B>,
        out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        self.check(cache, self.queries)?;
        finish_buffer(
            backend.check()?,
            cache,
            self.queries,
            self.data,
            out,
            scratch,
        )
    }

    /// [`finish_on`](Self::finish_on), validated (`tmp` holds `value_dim`).
    pub(super) fn finish_in<B: AsRef<[u8]>>(
        &self,
        backend: Checked,
        cache: &KvCache<B>,
        out: &mut [f32],
        tmp: &mut [f32],
    ) -> Result<(), Error> {
        finish_data(backend, cache, self.data, out, tmp)
    }

    /// Raises query vector `i`'s maximum to at least `top`, rescaling what
    /// it holds; returns the maximum.
    pub(super) fn raise_max(&mut self, i: usize, top: f32) -> f32 {
        let n = per_query(self.shape);
        let s = &mut self.data[i * n..][..n];
        if top > s[0] {
            let f = decay(s[0], top);
            let sum = sum_of(s) * f as f64;
            set_sum(s, sum);
            if f != 1.0 {
                for x in &mut s[HEADER..] {
                    *x *= f;
                }
            }
            s[0] = top;
        }
        s[0]
    }

    /// Adds `e` to query vector `i`'s sum of exponentials.
    pub(super) fn add_sum(&mut self, i: usize, e: f64) {
        let n = per_query(self.shape);
        let s = &mut self.data[i * n..][..n];
        let sum = sum_of(s) + e;
        set_sum(s, sum);
    }

    /// Every query vector's accumulators: query `h`'s start at `h·stride`
    /// of the slice returned with `stride`.
    pub(super) fn all_accumulators(&mut self) -> (&mut [f32], usize) {
        (&mut self.data[HEADER..], per_query(self.shape))
    }

    fn max(&self, i: usize) -> f32 {
        self.data[i * per_query(self.shape)]
    }
}

/// f32 values of one query vector's state.
pub(super) fn per_query(shape: Shape) -> usize {
    HEADER + shape.value_dim + shape.value_sketch
}

/// [`Partial::len_for`], checked against a buffer of `have` floats.
///
/// # Errors
/// [`Error::InvalidParameter`] for zero query vectors,
/// [`Error::BufferTooShort`] if `have` is short.
fn state_len<B: AsRef<[u8]>>(
    cache: &KvCache<B>,
    queries: usize,
    have: usize,
) -> Result<usize, Error> {
    if queries == 0 {
        return Err(Error::InvalidParameter(
            "a partial state needs a query vector",
        ));
    }
    let needed = Partial::len_for(cache, queries);
    crate::error::need(needed, have)?;
    Ok(needed)
}

/// Merges the states in `b` into those in `a` (query-major, `per` floats
/// each, of equal shapes).
fn merge_data(a: &mut [f32], b: &[f32], per: usize) {
    for (a, b) in a.chunks_exact_mut(per).zip(b.chunks_exact(per)) {
        let max = a[0].max(b[0]);
        if max == f32::NEG_INFINITY {
            continue;
        }
        let (fa, fb) = (decay(a[0], max), decay(b[0], max));
        let sum = sum_of(a) * fa as f64 + sum_of(b) * fb as f64;
        set_sum(a, sum);
        a[0] = max;
        for (x, &y) in a[HEADER..].iter_mut().zip(&b[HEADER..]) {
            *x = *x * fa + y * fb;
        }
    }
}

/// [`Partial::merge`] of two states of `queries` query vectors for `cache`
/// given as their buffers (the first [`Partial::len_for`] floats of each):
/// for the C ABI, whose read-only state is not a `&mut` buffer.
///
/// # Errors
/// [`Error::InvalidParameter`] for zero query vectors,
/// [`Error::BufferTooShort`] for a short buffer.
#[cfg(feature = "capi")]
pub(crate) fn merge_buffers<B: AsRef<[u8]>>(
    cache: &KvCache<B>,
    queries: usize,
    a: &mut [f32],
    b: &[f32],
) -> Result<(), Error> {
    let a = Partial::resume(cache, queries, a)?;
    crate::error::need(a.data.len(), b.len())?;
    let n = a.data.len();
    merge_data(a.data, &b[..n], per_query(a.shape));
    Ok(())
}

/// [`Partial::finish_on`] of the state of `queries` query vectors for
/// `cache` in `data` (its first [`Partial::len_for`] floats).
///
/// # Errors
/// As [`Partial::finish_on`]; [`Error::InvalidParameter`] for zero query
/// vectors, [`Error::BufferTooShort`] for a short `data`.
pub(crate) fn finish_buffer<B: AsRef<[u8]>>(
    backend: Checked,
    cache: &KvCache<B>,
    queries: usize,
    data: &[f32],
    out: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), Error> {
    let needed = state_len(cache, queries, data.len())?;
    let d = cache.config().value_dim;
    if out.len() != queries * d {
        return Err(Error::LengthMismatch {
            expected: queries * d,
            found: out.len(),
        });
    }
    crate::error::need(d, scratch.len())?;
    finish_data(backend, cache, &data[..needed], out, &mut scratch[..d])
}

/// The attention output of each state in `data` (query-major) into `out`
/// (`value_dim` each; `tmp` holds `value_dim`).
fn finish_data<B: AsRef<[u8]>>(
    backend: Checked,
    cache: &KvCache<B>,
    data: &[f32],
    out: &mut [f32],
    tmp: &mut [f32],
) -> Result<(), Error> {
    let shape = Shape::of(cache);
    let d = shape.value_dim;
    let n = per_query(shape);
    for (state, o) in data.chunks_exact(n).zip(out.chunks_exact_mut(d)) {
        let sum = sum_of(state);
        if state[0] == f32::NEG_INFINITY || sum <= 0.0 {
            o.fill(0.0);
            continue;
        }
        let inv = (1.0 / sum) as f32;
        let (rotated, sketched) = state[HEADER..].split_at(d);
        for (o, &a) in o.iter_mut().zip(rotated) {
            *o = a * inv;
        }
        match cache.value_quantizer() {
            Quantizer::Baseline(_) => {}
            Quantizer::Mse(m) => m.rotation().unrotate_in(backend, o)?,
            Quantizer::Prod(p) => {
                let sk = p.sketcher();
                sk.transpose_in(backend, sketched, tmp)?;
                let c = sk.scale() * inv;
                for (o, &v) in o.iter_mut().zip(tmp.iter()) {
                    *o += c * v;
                }
                p.rotation().unrotate_in(backend, o)?;
            }
        }
    }
    Ok(())
}

fn sum_of(state: &[f32]) -> f64 {
    state[1] as f64 + state[2] as f64
}

fn set_sum(state: &mut [f32], sum: f64) {
    let hi = sum as f32;
    state[1] = hi;
    state[2] = (sum - hi as f64) as f32;
}
