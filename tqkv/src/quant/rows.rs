//! Encoding several vectors at once, step by step: every vector's norm,
//! then every vector's scaling, every rotation, every quantisation.
//!
//! One vector's encoding is a chain of dependent steps, each a short kernel
//! whose result the next one waits for: the core idles on latencies (a
//! square root, a division, reductions, the butterflies' stages). One step
//! of a few independent vectors in a row lets the core overlap them, which
//! an encoding of one vector after the other cannot (its whole chain is far
//! longer than the core's reorder window). The vectors may have quantisers
//! of different kinds (a token's key and value make a pair of rows for
//! `push`): each step is taken by the rows that have it. Each vector goes
//! through the same operations in the same order as
//! [`encode_in`](super::Quantizer), so the bytes are the same.

use super::{Error, NormPrecision, Quantizer, check_len, norm, unit};
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

/// A vector to encode and the quantiser that encodes it.
pub(crate) type Row<'a> = (&'a Quantizer, &'a [f32]);

impl Quantizer {
    /// Floats of work space one vector needs in [`encode_rows_in`]: its
    /// unit vector, and for prod the centroids of its codes.
    pub(crate) fn row_work(&self) -> usize {
        match self {
            Quantizer::Prod(q) => 2 * q.dim,
            _ => self.dim(),
        }
    }

    /// How it stores norms.
    fn precision(&self) -> NormPrecision {
        match self {
            Quantizer::Mse(q) => q.norm,
            Quantizer::Prod(q) => q.norm,
            Quantizer::Baseline(q) => q.norm,
        }
    }
}

/// Encodes each `rows[i]` into the slots of row `i`, the same bytes as
/// [`encode_in`](Quantizer::encode_in) on each; `work` holds at least the
/// rows' [`row_work`](Quantizer::row_work) summed, and `rows.len() ≤`
/// [`ROWS`]. Every length and norm is checked before any slot is written;
/// a later error (a residual norm past f16) leaves the slots' bytes
/// unspecified.
pub(crate) fn encode_rows_in(
    backend: Checked,
    rows: &[Row<'_>],
    slots: &mut impl Slots,
    work: &mut [f32],
) -> Result<(), Error> {
    debug_assert!(rows.len() <= ROWS);
    let mut norms = Norms::default();
    norms.fill(backend, rows, slots)?;
    // Row i's unit vector (then its residual) at `at[i]`, a prod row's
    // centroids right after it.
    let mut at = [0; ROWS];
    let mut end = 0;
    for (a, (q, _)) in at.iter_mut().zip(rows) {
        *a = end;
        end += q.row_work();
    }
    for (i, &(q, x)) in rows.iter().enumerate() {
        unit(backend, x, norms.exact[i], span(work, at[i], q.dim()).0);
    }
    for (i, &(q, _)) in rows.iter().enumerate() {
        let rotation = match q {
            Quantizer::Mse(q) => &q.rotation,
            Quantizer::Prod(q) => &q.mse.rotation,
            Quantizer::Baseline(_) => continue,
        };
        rotation.rotate_in(backend, span(work, at[i], q.dim()).0)?;
    }
    for (i, &(q, _)) in rows.iter().enumerate() {
        let (y, centroids) = span(work, at[i], q.dim());
        let codes = slots.slot(i, 2);
        match q {
            Quantizer::Mse(q) => {
                codebook::quantize_packed_in(backend, &q.codebook, y, codes)?;
            }
            Quantizer::Baseline(q) => {
                codebook::quantize_packed_in(backend, &q.codebook, y, codes)?;
            }
            Quantizer::Prod(q) => {
                let cb = &q.mse.codebook;
                codebook::quantize_packed_centroids_in(backend, cb, y, codes, centroids)?;
            }
        }
    }
    // A prod row's residual, at the decoder's scale, in place of its unit
    // vector; then its sketch.
    for (i, &(q, _)) in rows.iter().enumerate() {
        if let Quantizer::Prod(_) = q {
            let (y, centroids) = span(work, at[i], q.dim());
            let (n, stored) = (norms.exact[i] as f32, norms.stored[i]);
            loops::residual_on(backend, y, n, centroids, stored);
        }
    }
    for (i, &(q, _)) in rows.iter().enumerate() {
        if let Quantizer::Prod(p) = q {
            let residual = span(work, at[i], q.dim()).0;
            let gamma = p.sketcher.sketch_in(backend, residual, slots.slot(i, 3))?;
            p.norm.store(gamma, slots.slot(i, 1))?;
        }
    }
    Ok(())
}

/// A row's `dim` floats of work space at `at`, and the `dim` after them
/// (a prod row's centroids; empty past the end of `work`). Indexing, not
/// `chunks_exact`: its length check divides, a cost that shows when a group
/// is a single token.
#[inline(always)]
fn span(work: &mut [f32], at: usize, dim: usize) -> (&mut [f32], &mut [f32]) {
    let (y, rest) = work[at..].split_at_mut(dim);
    let end = rest.len().min(dim);
    (y, &mut rest[..end])
}

/// Each vector's norm `‖x‖`, checked and stored in its slot, and the value
/// a decoder reads of it.
#[derive(Default)]
struct Norms {
    exact: [f64; ROWS],
    stored: [f32; ROWS],
}

impl Norms {
    /// Every row's length and norm checked, then every norm stored: no
    /// slot is written unless all are finite and fit their format. Filled in place: returned by
    /// value, the norms were written as scalars and copied in 16-byte
    /// moves, loads that cannot take their bytes from the stores just made
    /// (a stall of a few percent of an encode).
    fn fill(
        &mut self,
        backend: Checked,
        rows: &[Row<'_>],
        slots: &mut impl Slots,
    ) -> Result<(), Error> {
        for (i, &(q, x)) in rows.iter().enumerate() {
            check_len(q.dim(), x.len())?;
            self.exact[i] = norm(backend, x)?;
            self.stored[i] = q.precision().rounded(self.exact[i] as f32)?;
        }
        for (i, &(q, _)) in rows.iter().enumerate() {
            q.precision().write(self.stored[i], slots.slot(i, 0));
        }
        Ok(())
    }
}
