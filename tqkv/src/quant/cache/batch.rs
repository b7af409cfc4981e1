//! Pushing many tokens at once (a prefill). Tokens are encoded in groups of
//! up to [`ROWS`], each encoding step taken over the whole group (see
//! `quant::rows`: the core overlaps the group's independent latency
//! chains), and under the `parallel` feature the groups are shared out
//! between threads, each writing its own tokens' slots.

use super::{CacheConfig, KvCache, MAX_ENCODED};
use crate::backend::Checked;
use crate::quant::rows::ROWS;
use crate::quant::{MAX_DIM, Quantizer};
use crate::{Backend, Error};

/// Copies the fields of one encoding (their bytes in order) to slot `t` of
/// their regions, `(start, bytes per token)` each.
pub(super) fn scatter(buf: &mut [u8], regions: [(usize, usize); 4], t: usize, code: &[u8]) {
    let mut at = 0;
    for (start, f) in regions {
        let slot = start + t * f;
        buf[slot..slot + f].copy_from_slice(&code[at..at + f]);
        at += f;
    }
}

/// What encoding reads: the quantisers and the shapes, borrowed apart from
/// the buffer the encodings go to (so it can be written meanwhile).
struct Encoders<'a> {
    k: &'a Quantizer,
    v: &'a Quantizer,
    config: &'a CacheConfig,
}

impl Encoders<'_> {
    /// Encodes every token of `k` and `v` (lengths and finiteness checked),
    /// handing each encoding to `put(head, side, token, code)`: `side` 0
    /// for keys, 1 for values, `token` counted from 0. The vectors go in
    /// groups of up to [`ROWS`] in their order in `k` and `v` (token-major,
    /// then head-major), so the heads of one token make a group too.
    fn encode(
        &self,
        backend: Checked,
        rows: usize,
        k: &[f32],
        v: &[f32],
        mut put: impl FnMut(usize, usize, usize, &[u8]),
    ) -> Result<(), Error> {
        let len = self.k.encoded_len().max(self.v.encoded_len());
        if len > MAX_ENCODED {
            return Err(Error::InvalidParameter("encoding longer than MAX_ENCODED"));
        }
        let work = self.k.row_work().max(self.v.row_work());
        // The stack's largest buffers: 2·MAX_DIM floats, MAX_ENCODED bytes.
        let group = ROWS
            .min(2 * MAX_DIM / work)
            .min(MAX_ENCODED / len)
            .min(rows)
            .max(1);
        let c = self.config;
        crate::stack::floats(group * work, |work| {
            crate::stack::bytes(group * len, |code| {
                let (mut token, mut head) = (0, 0);
                for first in (0..rows).step_by(group) {
                    let n = group.min(rows - first);
                    let sides = [(self.k, k, c.dim), (self.v, v, c.value_dim)];
                    for (side, (q, x, dim)) in sides.into_iter().enumerate() {
                        let xs: [&[f32]; ROWS] = core::array::from_fn(|i| match i < n {
                            true => &x[(first + i) * dim..][..dim],
                            false => &[],
                        });
                        let len = q.encoded_len();
                        q.encode_rows_in(backend, &xs[..n], &mut code[..n * len], work)?;
                        let (mut t, mut h) = (token, head);
                        for code in code[..n * len].chunks_exact(len) {
                            put(h, side, t, code);
                            h += 1;
                            if h == c.heads {
                                (t, h) = (t + 1, 0);
                            }
                        }
                        if side == 1 {
                            (token, head) = (t, h);
                        }
                    }
                }
                Ok(())
            })
        })
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> KvCache<B> {
    /// Appends `n` tokens at once (a prefill): `k` and `v` hold `n` tokens
    /// of `heads·dim` keys and `heads·value_dim` values each, token-major
    /// then head-major. The bytes stored equal those of `n` calls of
    /// [`push`](Self::push). The vectors (a token's heads, then the next
    /// token's) are encoded eight at a time, each encoding step over all
    /// eight, which lets the core overlap their work: at d = 128 a token
    /// costs about a seventh less than a [`push`](Self::push).
    ///
    /// ```
    /// use tqkv::quant::{CacheConfig, KvCache, Scheme};
    ///
    /// let config = CacheConfig::new(Scheme::Kqv, 4, 2, 64, 8);
    /// let (k, v): (Vec<f32>, Vec<f32>) = (0..3 * 128).map(|i| (i as f32, 1.0)).unzip();
    /// let mut batch = KvCache::new(config, vec![0u8; config.bytes_needed()?])?;
    /// batch.push_batch(&k, &v)?;
    /// let mut one = KvCache::new(config, vec![0u8; config.bytes_needed()?])?;
    /// for t in 0..3 {
    ///     one.push(&k[t * 128..][..128], &v[t * 128..][..128])?;
    /// }
    /// assert_eq!(batch.as_bytes(), one.as_bytes());
    /// # Ok::<(), tqkv::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless `k` and `v` have the same number of
    /// tokens; [`Error::RaggedRows`] unless `k` is a whole number of tokens;
    /// [`Error::CacheFull`] if the tokens do not all fit; [`Error::NonFinite`].
    /// On error nothing is stored.
    pub fn push_batch(&mut self, k: &[f32], v: &[f32]) -> Result<(), Error> {
        self.push_batch_on(Backend::detect(), k, v)
    }

    /// [`push_batch`](Self::push_batch) on a chosen backend.
    ///
    /// # Errors
    /// As [`push_batch`](Self::push_batch), plus [`Error::BackendUnavailable`].
    pub fn push_batch_on(&mut self, backend: Backend, k: &[f32], v: &[f32]) -> Result<(), Error> {
        let backend = backend.check()?;
        let tokens = self.check_batch(backend, k, v)?;
        self.store_tokens(backend, tokens * self.config.heads, k, v)
    }

    /// Encodes the tokens of `k` and `v` (lengths, room and finiteness
    /// checked by the caller) into the slots from `len()` on, then counts
    /// them: on error nothing is stored.
    pub(super) fn store_tokens(
        &mut self,
        backend: Checked,
        rows: usize,
        k: &[f32],
        v: &[f32],
    ) -> Result<(), Error> {
        let (first, layout) = (self.len, self.layout);
        let encoders = Encoders {
            k: &self.k,
            v: &self.v,
            config: &self.config,
        };
        let buf = self.buf.as_mut();
        encoders.encode(backend, rows, k, v, |h, side, t, code| {
            scatter(buf, layout.regions(h, side), first + t, code)
        })?;
        self.set_len(first + rows / self.config.heads);
        Ok(())
    }

    /// The checks of a batch (every token's lengths, room for all, every
    /// value finite): the number of tokens.
    fn check_batch(&self, backend: Checked, k: &[f32], v: &[f32]) -> Result<usize, Error> {
        let (k_row, v_row) = self.rows();
        if k_row == 0 || !k.len().is_multiple_of(k_row) {
            return Err(Error::RaggedRows {
                len: k.len(),
                row_len: k_row,
            });
        }
        let n = k.len() / k_row;
        if v.len() != n * v_row {
            return Err(Error::LengthMismatch {
                expected: n * v_row,
                found: v.len(),
            });
        }
        if self.len + n > self.config.capacity {
            return Err(Error::CacheFull {
                capacity: self.config.capacity,
            });
        }
        crate::error::finite_on(backend, k)?;
        crate::error::finite_on(backend, v)?;
        Ok(n)
    }
}

#[cfg(feature = "parallel")]
impl<B: AsRef<[u8]> + AsMut<[u8]>> KvCache<B> {
    /// [`push_batch`](Self::push_batch) shared out between threads: the
    /// tokens go in `threads` runs of whole groups, encoded as jobs on
    /// rayon's pool (the global one, or the one whose `install` runs the
    /// call), each writing its own tokens' slots. The bytes are those of
    /// [`push_batch`](Self::push_batch). Allocates the list of each run's
    /// slots.
    ///
    /// ```
    /// use tqkv::quant::{CacheConfig, KvCache, Scheme};
    ///
    /// let config = CacheConfig::new(Scheme::Kqv, 4, 2, 64, 40);
    /// let (k, v): (Vec<f32>, Vec<f32>) = (0..40 * 128).map(|i| (i as f32, 1.0)).unzip();
    /// let mut two = KvCache::new(config, vec![0u8; config.bytes_needed()?])?;
    /// two.push_batch_parallel(&k, &v, 2)?;
    /// let mut one = KvCache::new(config, vec![0u8; config.bytes_needed()?])?;
    /// one.push_batch(&k, &v)?;
    /// assert_eq!(two.as_bytes(), one.as_bytes());
    /// # Ok::<(), tqkv::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`push_batch`](Self::push_batch); [`Error::InvalidParameter`] for
    /// zero threads. On error nothing is stored.
    pub fn push_batch_parallel(
        &mut self,
        k: &[f32],
        v: &[f32],
        threads: usize,
    ) -> Result<(), Error> {
        self.push_batch_parallel_on(Backend::detect(), k, v, threads)
    }

    /// [`push_batch_parallel`](Self::push_batch_parallel) on a chosen
    /// backend.
    ///
    /// # Errors
    /// As [`push_batch_parallel`](Self::push_batch_parallel), plus
    /// [`Error::BackendUnavailable`].
    pub fn push_batch_parallel_on(
        &mut self,
        backend: Backend,
        k: &[f32],
        v: &[f32],
        threads: usize,
    ) -> Result<(), Error> {
        use rayon::prelude::*;
        use std::vec::Vec;

        let backend = backend.check()?;
        if threads == 0 {
            return Err(Error::InvalidParameter("threads must be at least 1"));
        }
        let tokens = self.check_batch(backend, k, v)?;
        let (k_row, v_row) = self.rows();
        let per_run = tokens.div_ceil(threads).next_multiple_of(ROWS).max(ROWS);
        let (first, layout, heads) = (self.len, self.layout, self.config.heads);
        // Each region's new slots, cut into the runs' shares.
        let mut shares: Vec<Vec<&mut [u8]>> = (0..tokens.div_ceil(per_run))
            .map(|_| Vec::with_capacity(8 * heads))
            .collect();
        let slots = slots(self.buf.as_mut(), &layout, heads, first, tokens);
        for (i, mut rest) in slots.into_iter().enumerate() {
            let f = layout.regions[i / 4 % 2][i % 4].1;
            for share in shares.iter_mut() {
                let take = (per_run * f).min(rest.len());
                let (mine, tail) = core::mem::take(&mut rest).split_at_mut(take);
                share.push(mine);
                rest = tail;
            }
        }
        let encoders = Encoders {
            k: &self.k,
            v: &self.v,
            config: &self.config,
        };
        shares
            .into_par_iter()
            .enumerate()
            .try_for_each(|(run, mut share)| {
                let (from, to) = (run * per_run, ((run + 1) * per_run).min(tokens));
                let (k, v) = (&k[from * k_row..to * k_row], &v[from * v_row..to * v_row]);
                let rows = (to - from) * heads;
                encoders.encode(backend, rows, k, v, |h, side, t, code| {
                    let fields = layout.regions[side].map(|(_, f)| f);
                    let mut at = 0;
                    for (field, f) in fields.into_iter().enumerate() {
                        let slot = &mut share[(2 * h + side) * 4 + field];
                        slot[t * f..(t + 1) * f].copy_from_slice(&code[at..at + f]);
                        at += f;
                    }
                })
            })?;
        // Counted only now: on error nothing is stored.
        self.set_len(first + tokens);
        Ok(())
    }
}

/// The slots of `tokens` tokens from `first` on in every field region, as
/// disjoint slices of `buf`, in the order of `Layout::regions`: field
/// `f` of `side` of head `h` at `(2·h + side)·4 + f`.
#[cfg(feature = "parallel")]
fn slots<'b>(
    buf: &'b mut [u8],
    layout: &super::Layout,
    heads: usize,
    first: usize,
    tokens: usize,
) -> std::vec::Vec<&'b mut [u8]> {
    let mut slots = std::vec::Vec::with_capacity(8 * heads);
    let (mut rest, mut at) = (buf, 0);
    // Regions lie in this order in the buffer, each after the last.
    for h in 0..heads {
        for side in 0..2 {
            for (start, f) in layout.regions(h, side) {
                let (_, tail) = core::mem::take(&mut rest).split_at_mut(start + first * f - at);
                let (mine, tail) = tail.split_at_mut(tokens * f);
                slots.push(mine);
                rest = tail;
                at = start + (first + tokens) * f;
            }
        }
    }
    slots
}
