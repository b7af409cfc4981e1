//! Pushing many tokens at once (a prefill). Tokens are encoded in groups of
//! up to [`ROWS`], each encoding step taken over the whole group (see
//! `quant::rows`: the core overlaps the group's independent latency
//! chains), and under the `parallel` feature the groups are shared out
//! between threads, each writing its own tokens' slots.

use super::{CacheConfig, KvCache, Layout};
use crate::backend::Checked;
use crate::quant::rows::{ROWS, Row, Slots, encode_rows_in};
use crate::quant::{MAX_DIM, Quantizer};
use crate::{Backend, Error};

/// Where a batch's encodings go, in place: field `field` (as in
/// [`Slots`]) of the encoding of `head`'s keys (`side` 0) or values
/// (`side` 1) for the batch's token `token`, exactly its bytes.
trait Destination {
    fn field(&mut self, head: usize, side: usize, token: usize, field: usize) -> &mut [u8];
}

/// The cache's own regions, the batch's tokens from slot `first` on.
struct Regions<'b> {
    buf: &'b mut [u8],
    layout: Layout,
    first: usize,
}

impl Destination for Regions<'_> {
    #[inline]
    fn field(&mut self, head: usize, side: usize, token: usize, field: usize) -> &mut [u8] {
        let (start, f) = self.layout.regions[side][field];
        let at = start + head * self.layout.head_stride + (self.first + token) * f;
        &mut self.buf[at..at + f]
    }
}

/// One side of a group of vectors seen as [`Slots`]: row `i` is
/// `(head, token)` `rows[i]`.
struct GroupSlots<'d, D> {
    dest: &'d mut D,
    side: usize,
    // Borrowed: a copy was made in 16-byte moves of the 8-byte stores
    // just made, which cannot forward (a stall on every group).
    rows: &'d [(usize, usize)],
}

impl<D: Destination> Slots for GroupSlots<'_, D> {
    #[inline]
    fn slot(&mut self, row: usize, field: usize) -> &mut [u8] {
        let (head, token) = self.rows[row];
        self.dest.field(head, self.side, token, field)
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
    /// Encodes the `rows` vectors (tokens × heads) of `k` and `v` (lengths
    /// and finiteness checked) into `dest`. They go in groups of up to
    /// [`ROWS`] in their order in `k` and `v` (token-major, then
    /// head-major), so the heads of one token make a group too.
    fn encode(
        &self,
        backend: Checked,
        rows: usize,
        k: &[f32],
        v: &[f32],
        dest: &mut impl Destination,
    ) -> Result<(), Error> {
        let work = self.k.row_work().max(self.v.row_work());
        // The stack's largest buffer holds 2·MAX_DIM floats.
        let group = ROWS.min(2 * MAX_DIM / work).min(rows).max(1);
        let c = self.config;
        crate::stack::floats(group * work, |work| {
            let (mut head, mut token) = (0, 0);
            for first in (0..rows).step_by(group) {
                let n = group.min(rows - first);
                let mut at = [(0, 0); ROWS];
                for a in &mut at[..n] {
                    *a = (head, token);
                    head += 1;
                    if head == c.heads {
                        (head, token) = (0, token + 1);
                    }
                }
                let sides = [(self.k, k, c.dim), (self.v, v, c.value_dim)];
                for (side, (q, x, dim)) in sides.into_iter().enumerate() {
                    let rows: [Row<'_>; ROWS] = core::array::from_fn(|i| match i < n {
                        true => (q, &x[(first + i) * dim..][..dim]),
                        false => (q, &[][..]),
                    });
                    let dest = &mut *dest;
                    let mut slots = GroupSlots {
                        dest,
                        side,
                        rows: &at,
                    };
                    encode_rows_in::<ROWS>(backend, &rows[..n], &mut slots, work)?;
                }
            }
            Ok(())
        })
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> KvCache<B> {
    /// Appends `n` tokens at once (a prefill): `k` and `v` hold `n` tokens
    /// of `heads·dim` keys and `heads·value_dim` values each, token-major
    /// then head-major. The bytes stored equal those of `n` calls of
    /// [`push`](Self::push). The vectors (a token's heads, then the next
    /// token's) are encoded eight at a time, each encoding step over all
    /// eight, which lets the core overlap their work. At d = 128 a token
    /// costs a few percent less than a one-head [`push`](Self::push),
    /// which already encodes its key and value side by side.
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
        let first = self.len;
        let encoders = Encoders {
            k: &self.k,
            v: &self.v,
            config: &self.config,
        };
        let mut dest = Regions {
            buf: self.buf.as_mut(),
            layout: self.layout,
            first,
        };
        encoders.encode(backend, rows, k, v, &mut dest)?;
        self.set_len(first + rows / self.config.heads);
        Ok(())
    }

    /// The checks of a batch (every token's lengths, room for all, every
    /// value finite): the number of tokens.
    fn check_batch(&self, backend: Checked, k: &[f32], v: &[f32]) -> Result<usize, Error> {
        let tokens = self.check_batch_shape(k, v)?;
        crate::error::finite_on(backend, k)?;
        crate::error::finite_on(backend, v)?;
        Ok(tokens)
    }

    /// [`check_batch`](Self::check_batch) without the values' finiteness.
    fn check_batch_shape(&self, k: &[f32], v: &[f32]) -> Result<usize, Error> {
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
        Ok(n)
    }
}

#[cfg(feature = "parallel")]
impl<B: AsRef<[u8]> + AsMut<[u8]>> KvCache<B> {
    /// [`push_batch`](Self::push_batch) shared out between threads: the
    /// calling thread and `threads − 1` jobs on rayon's pool (the global
    /// one, or the one whose `install` runs the call) each own an equal
    /// part of the batch, cut into runs that shrink from half the part to
    /// 32 tokens; each walks its own part, then takes what is left of the
    /// others' from their ends, writing its own tokens' slots. The bytes
    /// are those of [`push_batch`](Self::push_batch). Worth it for a
    /// prefill of thousands of vectors: waking a pool thread cost 16 µs at
    /// the median on the benchmark VM, and sometimes over 1 ms, against
    /// about 0.3 µs to encode a token of one head at d = 128. Allocates
    /// the list of each run's slots.
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
        use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Mutex;
        use std::vec::Vec;

        let backend = backend.check()?;
        if threads == 0 {
            return Err(Error::InvalidParameter("threads must be at least 1"));
        }
        // Finiteness is scanned by the threads too (below).
        let tokens = self.check_batch_shape(k, v)?;
        let (k_row, v_row) = self.rows();
        let runs = crate::split::OwnedRanges::new(tokens, threads, MIN_TOKENS_PER_RUN);
        let workers = runs.workers();
        let bounds = runs.bounds();
        let (first, layout, heads) = (self.len, self.layout, self.config.heads);
        // Each region's new slots, cut into the runs' shares.
        let mut shares: Vec<Vec<&mut [u8]>> = bounds
            .windows(2)
            .map(|_| Vec::with_capacity(8 * heads))
            .collect();
        let slots = slots(self.buf.as_mut(), &layout, heads, first, tokens);
        for (i, mut rest) in slots.into_iter().enumerate() {
            let f = layout.regions[i / 4 % 2][i % 4].1;
            for (share, run) in shares.iter_mut().zip(bounds.windows(2)) {
                let (mine, tail) = core::mem::take(&mut rest).split_at_mut((run[1] - run[0]) * f);
                share.push(mine);
                rest = tail;
            }
        }
        let shares: Vec<Mutex<Vec<&mut [u8]>>> = shares.into_iter().map(Mutex::new).collect();
        let encoders = Encoders {
            k: &self.k,
            v: &self.v,
            config: &self.config,
        };
        // The finiteness scan, shared: each thread scans the next piece of
        // `k` or `v` not yet taken, and none writes before every piece is
        // scanned (a refused batch stores nothing). The calling thread never
        // waits for a helper to wake: it scans whatever is left, then waits
        // only for pieces a helper is scanning.
        let (next_piece, scanned) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let finite = AtomicBool::new(true);
        let scan = || -> Result<(), Error> {
            loop {
                let i = next_piece.fetch_add(1, Ordering::Relaxed);
                if i >= 2 * SCAN_PIECES {
                    break;
                }
                let x = if i < SCAN_PIECES { k } else { v };
                let j = i % SCAN_PIECES;
                let piece = &x[x.len() * j / SCAN_PIECES..x.len() * (j + 1) / SCAN_PIECES];
                if !crate::loops::all_finite_on(backend, piece) {
                    finite.store(false, Ordering::Relaxed);
                }
                // Release: a thread that sees the count sees the flag.
                scanned.fetch_add(1, Ordering::Release);
            }
            // A short wait: a piece takes microseconds (a helper descheduled
            // mid-piece gets the core back by yielding).
            let mut spins = 0u32;
            while scanned.load(Ordering::Acquire) < 2 * SCAN_PIECES {
                spins += 1;
                if spins.is_multiple_of(64) {
                    std::thread::yield_now();
                } else {
                    core::hint::spin_loop();
                }
            }
            match finite.load(Ordering::Relaxed) {
                true => Ok(()),
                false => Err(Error::NonFinite),
            }
        };
        // Each thread walks its own part of the batch, then takes what is
        // left of the others'; run `i` always writes the slots of its own
        // tokens.
        let drain = |worker: usize| -> Result<(), Error> {
            scan()?;
            let mut visited = 0;
            while let Some(i) = runs.next(worker, &mut visited) {
                let (Some(share), Some(&[from, to])) = (shares.get(i), bounds.get(i..i + 2)) else {
                    continue;
                };
                let mut share = share.lock().map_err(|_| PANICKED)?;
                let (k, v) = (&k[from * k_row..to * k_row], &v[from * v_row..to * v_row]);
                let mut dest = Shares {
                    share: &mut share,
                    layout: &layout,
                };
                encoders.encode(backend, (to - from) * heads, k, v, &mut dest)?;
            }
            Ok(())
        };
        let mut results = std::vec![Ok(()); workers - 1];
        // The calling thread works too, so a call wakes only the helpers
        // and never waits to be woken itself.
        let mut result = rayon::in_place_scope(|s| {
            for (k, result) in results.iter_mut().enumerate() {
                s.spawn(move |_| *result = drain(k + 1));
            }
            drain(0)
        });
        for r in results {
            result = result.and(r);
        }
        result?;
        // Counted only now: on error nothing is stored.
        self.set_len(first + tokens);
        Ok(())
    }
}

/// A helper thread of [`KvCache::push_batch_parallel`] panicked.
#[cfg(feature = "parallel")]
const PANICKED: Error = Error::InvalidParameter("an encoding thread panicked");

/// Fewest tokens worth a run of their own (a few microseconds of encoding
/// at d = 128): runs shrink to this, so that the threads end close together.
#[cfg(feature = "parallel")]
const MIN_TOKENS_PER_RUN: usize = 32;

/// Pieces of `k` (and as many of `v`) the threads of a parallel batch scan
/// for NaN and ∞ before any of them writes.
#[cfg(feature = "parallel")]
const SCAN_PIECES: usize = 8;

/// A run's share of the batch's slots (see [`slots`]).
#[cfg(feature = "parallel")]
struct Shares<'s, 'b> {
    share: &'s mut [&'b mut [u8]],
    layout: &'s Layout,
}

#[cfg(feature = "parallel")]
impl Destination for Shares<'_, '_> {
    #[inline]
    fn field(&mut self, head: usize, side: usize, token: usize, field: usize) -> &mut [u8] {
        let f = self.layout.regions[side][field].1;
        &mut self.share[(2 * head + side) * 4 + field][token * f..(token + 1) * f]
    }
}

/// The slots of `tokens` tokens from `first` on in every field region, as
/// disjoint slices of `buf`, in the order of `Layout::regions`: field
/// `f` of `side` of head `h` at `(2·h + side)·4 + f`.
#[cfg(feature = "parallel")]
fn slots<'b>(
    buf: &'b mut [u8],
    layout: &Layout,
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
