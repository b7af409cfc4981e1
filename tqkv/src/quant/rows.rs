//! Encoding several vectors at once, step by step: every vector's norm,
//! then every vector's scaling, every rotation, every quantisation.
//!
//! One vector's encoding is a chain of dependent steps, each a short kernel
//! whose result the next one waits for: the core idles on latencies (a
//! square root, a division, reductions, the butterflies' stages). One step
//! of a few independent vectors in a row lets the core overlap them, which
//! an encoding of one vector after the other cannot (its whole chain is far
//! longer than the core's reorder window). Each vector goes through the
//! same operations in the same order as [`encode_in`](super::Quantizer),
//! so the bytes are the same.

use super::{Error, NormPrecision, ProdQuantizer, Quantizer, check_len, norm, unit};
use crate::backend::Checked;
use crate::codebook;
use crate::loops;

/// Where the fields of each vector's encoding are stored, in place: the
/// caller's buffer (a cache's field regions), not a copy.
pub(crate) trait Slots {
    /// Field `field` of vector `row`'s encoding, exactly its bytes: 0 the
    /// norm, 1 the residual norm, 2 the codes, 3 the signs (the order of
    /// [`Quantizer::fields`]; a field of no bytes is never asked for).
    fn slot(&mut self, row: usize, field: usize) -> &mut [u8];
}

/// The most vectors encoded together. Eight hide most of the latencies at
/// d = 128; the work space (`2·dim` floats a vector for prod) stays small.
pub(crate) const ROWS: usize = 8;

impl Quantizer {
    /// Floats of work space one vector needs in
    /// [`encode_rows_in`](Self::encode_rows_in).
    pub(crate) fn row_work(&self) -> usize {
        match self {
            Quantizer::Prod(q) => 2 * q.dim,
            _ => self.dim(),
        }
    }

    /// Encodes each `xs[i]` into the slots of row `i`, the same bytes as
    /// [`encode_in`](Self::encode_in) on each; `work` holds at least
    /// `xs.len()·`[`row_work`](Self::row_work) floats and `xs.len() ≤`
    /// [`ROWS`]. On error the slots' bytes are unspecified.
    pub(crate) fn encode_rows_in(
        &self,
        backend: Checked,
        xs: &[&[f32]],
        slots: &mut impl Slots,
        work: &mut [f32],
    ) -> Result<(), Error> {
        debug_assert!(xs.len() <= ROWS);
        match self {
            Quantizer::Mse(q) => {
                let codebook = (&q.codebook, q.norm);
                codes_of_units(backend, q.dim, codebook, Some(&q.rotation), xs, slots, work)
            }
            Quantizer::Prod(q) => q.encode_rows_in(backend, xs, slots, work),
            Quantizer::Baseline(q) => {
                let codebook = (&q.codebook, q.norm);
                codes_of_units(backend, q.dim, codebook, None, xs, slots, work)
            }
        }
    }
}

/// Each vector's norm `‖x‖`, checked and stored in its slot, and the value
/// a decoder reads of it.
#[derive(Default)]
struct Norms {
    exact: [f64; ROWS],
    stored: [f32; ROWS],
}

impl Norms {
    /// Filled in place: returned by value, the norms were written as
    /// scalars and copied in 16-byte moves, loads that cannot take their
    /// bytes from the stores just made (a stall of a few percent of an
    /// encode).
    fn fill(
        &mut self,
        backend: Checked,
        dim: usize,
        precision: NormPrecision,
        xs: &[&[f32]],
        slots: &mut impl Slots,
    ) -> Result<(), Error> {
        for (i, x) in xs.iter().enumerate() {
            check_len(dim, x.len())?;
            let n = norm(backend, x)?;
            self.exact[i] = n;
            self.stored[i] = precision.store(n as f32, slots.slot(i, 0))?;
        }
        Ok(())
    }
}

/// Row `i` of `len` elements. Indexing, not `chunks_exact`: its length
/// check divides, a cost that shows when a group is a single token.
#[inline(always)]
fn row<T>(x: &mut [T], i: usize, len: usize) -> &mut [T] {
    &mut x[i * len..(i + 1) * len]
}

/// Each `xs[i]/‖xs[i]‖` into row `i` (`dim` floats) of `work`.
fn units(backend: Checked, dim: usize, xs: &[&[f32]], norms: &Norms, work: &mut [f32]) {
    for (i, (x, &n)) in xs.iter().zip(&norms.exact).enumerate() {
        unit(backend, x, n, row(work, i, dim));
    }
}

/// Norms, unit vectors, their rotations (if any) and their codes, for the
/// quantisers whose encoding is only that (mse and the baseline).
fn codes_of_units(
    backend: Checked,
    dim: usize,
    (codebook, precision): (&codebook::Codebook, NormPrecision),
    rotation: Option<&crate::Rotation>,
    xs: &[&[f32]],
    slots: &mut impl Slots,
    work: &mut [f32],
) -> Result<(), Error> {
    let mut norms = Norms::default();
    norms.fill(backend, dim, precision, xs, slots)?;
    units(backend, dim, xs, &norms, work);
    if let Some(rotation) = rotation {
        for i in 0..xs.len() {
            rotation.rotate_in(backend, row(work, i, dim))?;
        }
    }
    for i in 0..xs.len() {
        codebook::quantize_packed_in(backend, codebook, row(work, i, dim), slots.slot(i, 2))?;
    }
    Ok(())
}

impl ProdQuantizer {
    /// [`Quantizer::encode_rows_in`] for TurboQuant_prod: the steps of
    /// [`encode_in`](Self::encode_in), each over every vector.
    fn encode_rows_in(
        &self,
        backend: Checked,
        xs: &[&[f32]],
        slots: &mut impl Slots,
        work: &mut [f32],
    ) -> Result<(), Error> {
        let dim = self.dim;
        let mut norms = Norms::default();
        norms.fill(backend, dim, self.norm, xs, slots)?;
        // The unit vectors, then their codes' centroids.
        let (ys, yhats) = work.split_at_mut(xs.len() * dim);
        units(backend, dim, xs, &norms, ys);
        for i in 0..xs.len() {
            self.mse.rotation.rotate_in(backend, row(ys, i, dim))?;
        }
        let cb = &self.mse.codebook;
        for i in 0..xs.len() {
            let (y, yhat) = (row(ys, i, dim), row(yhats, i, dim));
            codebook::quantize_packed_centroids_in(backend, cb, y, slots.slot(i, 2), yhat)?;
        }
        // The residuals, at the decoder's scale, in place of the units.
        for i in 0..xs.len() {
            let (n, stored) = (norms.exact[i], norms.stored[i]);
            loops::residual_on(
                backend,
                row(ys, i, dim),
                n as f32,
                row(yhats, i, dim),
                stored,
            );
        }
        for i in 0..xs.len() {
            let gamma = self
                .sketcher
                .sketch_in(backend, row(ys, i, dim), slots.slot(i, 3))?;
            self.norm.store(gamma, slots.slot(i, 1))?;
        }
        Ok(())
    }
}
