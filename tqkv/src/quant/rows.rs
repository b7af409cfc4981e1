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

use super::{BaselineQuantizer, Error, MseQuantizer, ProdQuantizer, Quantizer, start_encode, unit};
use crate::backend::Checked;
use crate::codebook::{self, pack};
use crate::loops;

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

    /// Encodes each `xs[i]` into `out[i·len..(i+1)·len]` (`len` =
    /// [`encoded_len`](Self::encoded_len)), the same bytes as
    /// [`encode_in`](Self::encode_in) on each; `work` holds at least
    /// `xs.len()·`[`row_work`](Self::row_work) floats and `xs.len() ≤`
    /// [`ROWS`]. On error the encodings are unspecified.
    pub(crate) fn encode_rows_in(
        &self,
        backend: Checked,
        xs: &[&[f32]],
        out: &mut [u8],
        work: &mut [f32],
    ) -> Result<(), Error> {
        debug_assert!(xs.len() <= ROWS);
        match self {
            Quantizer::Mse(q) => q.encode_rows_in(backend, xs, out, work),
            Quantizer::Prod(q) => q.encode_rows_in(backend, xs, out, work),
            Quantizer::Baseline(q) => q.encode_rows_in(backend, xs, out, work),
        }
    }
}

/// Each vector's norm, checked and stored at the start of its encoding
/// (`len` bytes each in `out`): `(‖x‖, the value a decoder reads)`.
fn norms(
    backend: Checked,
    dim: usize,
    len: usize,
    precision: super::NormPrecision,
    xs: &[&[f32]],
    out: &mut [u8],
) -> Result<[(f64, f32); ROWS], Error> {
    let mut norms = [(0.0, 0.0); ROWS];
    for (i, x) in xs.iter().enumerate() {
        norms[i] = start_encode(backend, dim, len, precision, x, row(out, i, len))?;
    }
    Ok(norms)
}

/// Row `i` of `len` elements. Indexing, not `chunks_exact`: its length
/// check divides, a cost that shows when a group is a single token.
#[inline(always)]
fn row<T>(x: &mut [T], i: usize, len: usize) -> &mut [T] {
    &mut x[i * len..(i + 1) * len]
}

/// Each `xs[i]/‖xs[i]‖` into row `i` (`dim` floats) of `work`.
fn units(backend: Checked, dim: usize, xs: &[&[f32]], norms: &[(f64, f32)], work: &mut [f32]) {
    for (i, (x, &(n, _))) in xs.iter().zip(norms).enumerate() {
        unit(backend, x, n, row(work, i, dim));
    }
}

impl MseQuantizer {
    /// [`Quantizer::encode_rows_in`] for TurboQuant_mse.
    fn encode_rows_in(
        &self,
        backend: Checked,
        xs: &[&[f32]],
        out: &mut [u8],
        work: &mut [f32],
    ) -> Result<(), Error> {
        let len = self.encoded_len();
        let codebook = (&self.codebook, self.norm);
        codes_of_units(
            backend,
            self.dim,
            len,
            codebook,
            Some(&self.rotation),
            xs,
            out,
            work,
        )
    }
}

/// Norms, unit vectors, their rotations (if any) and their codes, for the
/// quantisers whose encoding is only that (mse and the baseline).
#[allow(clippy::too_many_arguments)]
fn codes_of_units(
    backend: Checked,
    dim: usize,
    len: usize,
    (codebook, precision): (&codebook::Codebook, super::NormPrecision),
    rotation: Option<&crate::Rotation>,
    xs: &[&[f32]],
    out: &mut [u8],
    work: &mut [f32],
) -> Result<(), Error> {
    let norms = norms(backend, dim, len, precision, xs, out)?;
    units(backend, dim, xs, &norms, work);
    if let Some(rotation) = rotation {
        for i in 0..xs.len() {
            rotation.rotate_in(backend, row(work, i, dim))?;
        }
    }
    let nb = precision.bytes();
    for i in 0..xs.len() {
        let code = &mut row(out, i, len)[nb..];
        codebook::quantize_packed_in(backend, codebook, row(work, i, dim), code)?;
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
        out: &mut [u8],
        work: &mut [f32],
    ) -> Result<(), Error> {
        let (dim, len, nb) = (self.dim, self.encoded_len(), self.norm.bytes());
        let codes = pack::packed_len(dim, self.mse.codebook.bits());
        let norms = norms(backend, dim, len, self.norm, xs, out)?;
        // The unit vectors, then their codes' centroids.
        let (ys, yhats) = work.split_at_mut(xs.len() * dim);
        units(backend, dim, xs, &norms, ys);
        for i in 0..xs.len() {
            self.mse.rotation.rotate_in(backend, row(ys, i, dim))?;
        }
        let cb = &self.mse.codebook;
        for i in 0..xs.len() {
            let code = &mut row(out, i, len)[2 * nb..][..codes];
            let (y, yhat) = (row(ys, i, dim), row(yhats, i, dim));
            codebook::quantize_packed_centroids_in(backend, cb, y, code, yhat)?;
        }
        // The residuals, at the decoder's scale, in place of the units.
        for (i, &(n, stored)) in norms.iter().enumerate().take(xs.len()) {
            loops::residual_on(
                backend,
                row(ys, i, dim),
                n as f32,
                row(yhats, i, dim),
                stored,
            );
        }
        for i in 0..xs.len() {
            let (head, rest) = row(out, i, len).split_at_mut(2 * nb);
            let gamma = self
                .sketcher
                .sketch_in(backend, row(ys, i, dim), &mut rest[codes..])?;
            self.norm.store(gamma, &mut head[nb..])?;
        }
        Ok(())
    }
}

impl BaselineQuantizer {
    /// [`Quantizer::encode_rows_in`] for the KV baseline.
    fn encode_rows_in(
        &self,
        backend: Checked,
        xs: &[&[f32]],
        out: &mut [u8],
        work: &mut [f32],
    ) -> Result<(), Error> {
        let len = self.encoded_len();
        let codebook = (&self.codebook, self.norm);
        codes_of_units(backend, self.dim, len, codebook, None, xs, out, work)
    }
}
