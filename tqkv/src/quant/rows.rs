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

use super::{
    Error, NormPrecision, ProdQuantizer, Quantizer, check_len, norm_of_squares, unit, unit_rotated,
};
use crate::Rotation;
use crate::backend::Checked;
use crate::codebook;
use crate::codebook::Codebook;
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
}

/// Encodes each `rows[i]` into the slots of row `i`, the same bytes as
/// [`encode_in`](Quantizer::encode_in) on each; `work` holds at least the
/// rows' [`row_work`](Quantizer::row_work) summed, and `rows.len() ≤ N ≤`
/// [`ROWS`] (`N` sizes the per-row arrays: a push's pair builds two plans,
/// not eight, 5 % of a push). Every length and norm is checked before any
/// slot is written; a later error (a residual norm past f16) leaves the
/// slots' bytes unspecified.
pub(crate) fn encode_rows_in<const N: usize>(
    backend: Checked,
    rows: &[Row<'_>],
    slots: &mut impl Slots,
    work: &mut [f32],
) -> Result<(), Error> {
    debug_assert!(rows.len() <= N && N <= ROWS);
    let Some(&(first, _)) = rows.first() else {
        return Ok(());
    };
    // Rows past the last are never read; they copy the first's plan.
    let mut plans: [Plan<'_>; N] =
        core::array::from_fn(|i| Plan::of(rows.get(i).map_or(first, |r| r.0)));
    let plans = &mut plans[..rows.len()];
    Plan::place(plans);
    let plans = &*plans;
    let mut norms = Norms::<N> {
        exact: [0.0; N],
        stored: [0.0; N],
        bytes: [[0; 4]; N],
    };
    norms.fill(backend, rows, plans, slots)?;
    // Unit vectors rotated as they are scaled where the backend can (a
    // pass over each fewer), else scaled, then every one rotated.
    let mut rotated = [false; N];
    for (i, (p, &(_, x))) in plans.iter().zip(rows).enumerate() {
        let y = p.spans(work).0;
        rotated[i] = p
            .rotation
            .is_some_and(|r| unit_rotated(backend, r, x, norms.exact[i], y));
        if !rotated[i] {
            unit(backend, x, norms.exact[i], y);
        }
    }
    for (p, done) in plans.iter().zip(rotated) {
        match p.rotation {
            Some(rotation) if !done => rotation.rotate_in(backend, p.spans(work).0)?,
            _ => {}
        }
    }
    for (i, p) in plans.iter().enumerate() {
        let (y, centroids) = p.spans(work);
        let codes = slots.slot(i, 2);
        if p.prod.is_some() {
            codebook::quantize_packed_centroids_in(backend, p.codebook, y, codes, centroids)?;
        } else {
            codebook::quantize_packed_in(backend, p.codebook, y, codes)?;
        }
    }
    // A prod row's residual, at the decoder's scale, in place of its unit
    // vector, and its norm γ; then its sketch. Every residual before the
    // first square root, as for the norms (a square root and a store
    // between two residuals kept them from overlapping: 2 % of a batch).
    let mut squares = [0.0f64; N];
    for (i, p) in plans.iter().enumerate() {
        if p.prod.is_some() {
            let (y, centroids) = p.spans(work);
            let (n, stored) = (norms.exact[i] as f32, norms.stored[i]);
            squares[i] = loops::residual_on(backend, y, n, centroids, stored);
        }
    }
    for (i, p) in plans.iter().enumerate() {
        if let Some(q) = p.prod {
            q.norm
                .store(libm::sqrt(squares[i]) as f32, slots.slot(i, 1))?;
        }
    }
    for (i, p) in plans.iter().enumerate() {
        if let Some(q) = p.prod {
            q.sketcher
                .sketch_signs_in_place(backend, p.spans(work).0, slots.slot(i, 3))?;
        }
    }
    Ok(())
}

/// What the steps need of one row's quantiser, looked up once (a match on
/// the quantiser in every step cost a batch 5 %), and where its work space
/// lies.
#[derive(Clone, Copy)]
struct Plan<'q> {
    dim: usize,
    precision: NormPrecision,
    rotation: Option<&'q Rotation>,
    codebook: &'q Codebook,
    /// The prod quantiser, for the residual and the sketch.
    prod: Option<&'q ProdQuantizer>,
    /// Where the unit vector (then the residual) starts.
    unit: usize,
    /// Where the centroids (prod) start.
    centroids: usize,
}

impl<'q> Plan<'q> {
    /// The unit vector and the centroids (none but for prod).
    #[inline(always)]
    fn spans<'w>(&self, work: &'w mut [f32]) -> (&'w mut [f32], &'w mut [f32]) {
        let (units, centroids) = work.split_at_mut(self.centroids);
        let len = if self.prod.is_some() { self.dim } else { 0 };
        (
            &mut units[self.unit..self.unit + self.dim],
            &mut centroids[..len],
        )
    }

    /// The plan of `q`'s row, its work space not yet placed.
    #[inline(always)]
    fn of(q: &'q Quantizer) -> Self {
        let (rotation, codebook, prod, precision) = match q {
            Quantizer::Mse(m) => (Some(&m.rotation), &m.codebook, None, m.norm),
            Quantizer::Prod(p) => (Some(&p.mse.rotation), &p.mse.codebook, Some(p), p.norm),
            Quantizer::Baseline(b) => (None, &b.codebook, None, b.norm),
        };
        Plan {
            dim: q.dim(),
            precision,
            rotation,
            codebook,
            prod,
            unit: 0,
            centroids: 0,
        }
    }

    /// Places every row's work space in its plan (in place: plans returned
    /// by value were copied by a `memcpy`). Unit vectors lie side by side
    /// in row order, then every prod row's centroids, as one quantiser's
    /// rows were before rows could mix.
    #[inline(always)]
    fn place(plans: &mut [Plan<'q>]) {
        let mut end = 0;
        for p in plans.iter_mut() {
            p.unit = end;
            end += p.dim;
        }
        for p in plans.iter_mut() {
            p.centroids = end;
            if p.prod.is_some() {
                end += p.dim;
            }
        }
    }
}

/// Each vector's norm `‖x‖`, checked and stored in its slot, and the value
/// a decoder reads of it.
struct Norms<const N: usize> {
    exact: [f64; N],
    stored: [f32; N],
    bytes: [[u8; 4]; N],
}

impl<const N: usize> Norms<N> {
    /// Every row's length and norm checked, then every norm stored: no
    /// slot is written unless all are finite and fit their format. Filled
    /// in place: returned by value, the norms were written as scalars and
    /// copied in 16-byte moves, loads that cannot take their bytes from
    /// the stores just made (a stall of a few percent of an encode).
    fn fill(
        &mut self,
        backend: Checked,
        rows: &[Row<'_>],
        plans: &[Plan<'_>],
        slots: &mut impl Slots,
    ) -> Result<(), Error> {
        for (i, (p, &(_, x))) in plans.iter().zip(rows).enumerate() {
            check_len(p.dim, x.len())?;
            self.exact[i] = loops::sum_squares_on(backend, x);
        }
        // Every sum before the first square root: the rows' reductions
        // overlap (3 % of a push).
        for (i, p) in plans.iter().enumerate() {
            self.exact[i] = norm_of_squares(self.exact[i])?;
            (self.stored[i], self.bytes[i]) = p.precision.encoded(self.exact[i] as f32)?;
        }
        for (i, p) in plans.iter().enumerate() {
            p.precision.write(self.bytes[i], slots.slot(i, 0));
        }
        Ok(())
    }
}
