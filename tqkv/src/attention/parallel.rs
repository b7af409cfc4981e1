//! One decode split across cores on rayon's thread pool (the `parallel`
//! feature): each range of tokens is attended into its own [`Partial`]
//! state, and the states merge. A runtime with its own thread pool uses
//! [`attend_partial`](super::attend_partial) and [`Partial::merge`] the same way.
//!
//! The pool's threads persist between calls: spawning a thread per call
//! cost about 60 µs on the benchmark machine, an eighth of the work of
//! a 65,536-token decode split in two.

use std::sync::Mutex;
use std::vec;
use std::vec::Vec;

use super::pass::{self, Shape};
use super::{Partial, Scoring, check, scratch_len};
use crate::quant::KvCache;
use crate::split::OwnedRanges;
use crate::{Backend, Error};

/// [`attend`](super::attend) split across threads on the detected
/// backend. The calling thread and `threads - 1` jobs on rayon's pool (the
/// global one, or the one whose `install` runs the call) each own an equal
/// part of the tokens, cut into ranges that shrink from half the part to
/// 512 tokens; each walks its own part from the start, then takes what is
/// left of the others' from their ends. The states merge in range order,
/// and the ranges depend only on the length and the thread count, so the
/// bits of the result do not depend on the scheduling. Allocates the prepared
/// query vectors (once for every range), each range's state and each
/// thread's scratch.
///
/// ```
/// use tqkv::attention::{attend, attend_parallel, scratch_len};
/// use tqkv::quant::{CacheConfig, KvCache, Scheme};
///
/// let config = CacheConfig::new(Scheme::Kqv, 4, 1, 64, 3000).with_seed(4);
/// let mut cache = KvCache::new(config, vec![0u8; config.bytes_needed()?])?;
/// for t in 0..3000 {
///     cache.push(&[(t % 13) as f32 - 6.0; 64], &[(t % 5) as f32; 64])?;
/// }
/// let q = [0.05f32; 64];
/// let (mut one, mut two) = ([0.0f32; 64], [0.0f32; 64]);
/// attend(&cache, 0, &q, &mut one, &mut vec![0.0; scratch_len(&cache, 1)])?;
/// attend_parallel(&cache, 0, &q, &mut two, 2)?;
/// assert!(one.iter().zip(&two).all(|(a, b)| (a - b).abs() <= 1e-4 * a.abs().max(1.0)));
/// # Ok::<(), tqkv::Error>(())
/// ```
///
/// # Errors
/// As [`attend`](super::attend) (the scratch excepted);
/// [`Error::InvalidParameter`] for zero threads.
pub fn attend_parallel<B: AsRef<[u8]> + Sync>(
    cache: &KvCache<B>,
    head: usize,
    q: &[f32],
    out: &mut [f32],
    threads: usize,
) -> Result<(), Error> {
    attend_parallel_on(Backend::detect(), cache, head, q, out, threads)
}

/// Fewest tokens worth a range of their own (about 7 µs of decode at
/// d = 128 on the benchmark machine): the end of a split waits at most
/// about that long for the last range.
const MIN_TOKENS_PER_RANGE: usize = 512;

const PANICKED: Error = Error::InvalidParameter("an attention thread panicked");

/// [`attend_parallel`] on a chosen backend.
///
/// # Errors
/// As [`attend_parallel`], plus [`Error::BackendUnavailable`].
pub fn attend_parallel_on<B: AsRef<[u8]> + Sync>(
    backend: Backend,
    cache: &KvCache<B>,
    head: usize,
    q: &[f32],
    out: &mut [f32],
    threads: usize,
) -> Result<(), Error> {
    attend_parallel_with(backend, Scoring::Exact, cache, head, q, out, threads)
}

/// [`attend_parallel_on`] with the keys scored as `scoring` says.
///
/// # Errors
/// As [`attend_parallel_on`].
pub fn attend_parallel_with<B: AsRef<[u8]> + Sync>(
    backend: Backend,
    scoring: Scoring,
    cache: &KvCache<B>,
    head: usize,
    q: &[f32],
    out: &mut [f32],
    threads: usize,
) -> Result<(), Error> {
    if threads == 0 {
        return Err(Error::InvalidParameter("attend_parallel needs a thread"));
    }
    let d = cache.config().dim;
    let queries = q.len() / d.max(1);
    let scratch = scratch_len(cache, queries);
    check(cache, head, q, Some(out.len()), scratch)?;
    let checked = backend.check()?;
    // The query vectors prepared once for every range (rotated, sketched,
    // rounded), not once a range: about 0.3 µs a range at d = 128, 1 % of
    // a 65,536-token split on two threads (17 ranges).
    let shape = Shape::of(cache);
    let mut prepared = vec![0.0f32; queries * shape.prepared()];
    pass::prepare(
        checked,
        scoring,
        cache.key_quantizer(),
        q,
        shape,
        &mut prepared,
    )?;
    let prepared = &prepared[..];
    let len = cache.len();
    let ranges = OwnedRanges::new(len, threads, MIN_TOKENS_PER_RANGE);
    let workers = ranges.workers();
    let bounds = ranges.bounds();
    let parts = bounds.len() - 1;
    let state_len = Partial::len_for(cache, queries);
    let mut states = vec![0.0f32; parts * state_len];
    // A worker's scratch less the prepared queries, which the ranges share.
    let scratch = scratch - prepared.len();
    let mut scratches = vec![0.0f32; workers * scratch];
    let slots = states
        .chunks_mut(state_len)
        .map(|buf| Partial::new(cache, queries, buf).map(Mutex::new))
        .collect::<Result<Vec<_>, _>>()?;
    // Each worker walks its own region, then takes what is left of the
    // others'; range `i` always goes into state `i`, and the states merge
    // in order, so the result does not depend on which thread took which
    // range.
    let drain = |worker: usize, scratch: &mut [f32]| -> Result<(), Error> {
        let mut visited = 0;
        while let Some(i) = ranges.next(worker, &mut visited) {
            let (Some(slot), Some(&[start, end])) = (slots.get(i), bounds.get(i..i + 2)) else {
                continue;
            };
            if start == end {
                continue;
            }
            let mut state = slot.lock().map_err(|_| PANICKED)?;
            // Checked above: the head and the query; the range lies in the
            // tokens and the state has the queries' shape by construction.
            let (limits, range) = ([end], start..end);
            pass::run_prepared(
                checked, scoring, cache, head, prepared, &limits, range, &mut state, scratch,
            )?;
        }
        Ok(())
    };
    let (own, helpers) = scratches.split_at_mut(scratch);
    let mut results = vec![Ok(()); workers - 1];
    // The calling thread works too, so a call wakes `workers - 1` pool
    // threads and never waits to be woken itself unless a helper is late.
    let mut result = rayon::in_place_scope(|s| {
        for (k, (scratch, result)) in helpers.chunks_mut(scratch).zip(&mut results).enumerate() {
            s.spawn(move |_| *result = drain(k + 1, scratch));
        }
        drain(0, own)
    });
    for r in results {
        result = result.and(r);
    }
    result?;
    let mut partials = slots
        .into_iter()
        .map(|slot| slot.into_inner().map_err(|_| PANICKED))
        .collect::<Result<Vec<_>, _>>()?;
    let (total, rest) = partials
        .split_first_mut()
        .ok_or(Error::InvalidParameter("attend_parallel needs a thread"))?;
    for other in rest.iter() {
        total.merge(other)?;
    }
    let mut tmp = vec![0.0f32; d];
    total.finish_on(backend, cache, out, &mut tmp)
}

#[cfg(test)]
mod tests {
    use super::{MIN_TOKENS_PER_RANGE, OwnedRanges};

    #[test]
    fn two_threads_own_halves_that_shrink_to_the_least_range() {
        // 65,536 tokens on two threads: each half cut from a quarter of the
        // tokens down to 512.
        let r = OwnedRanges::new(65_536, 2, MIN_TOKENS_PER_RANGE);
        let b = r.bounds();
        let halves = [&b[..8], &b[7..]];
        for (h, half) in halves.iter().enumerate() {
            assert_eq!((half[0], half[7]), (h * 32_768, (h + 1) * 32_768));
            let sizes: std::vec::Vec<usize> = half.windows(2).map(|w| w[1] - w[0]).collect();
            assert_eq!(sizes, [16_384, 8192, 4096, 2048, 1024, 512, 512]);
        }
    }
}
