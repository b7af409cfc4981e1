//! One decode split across cores with scoped threads (`std`): each thread
//! attends over its own range of tokens into its own [`Partial`] state,
//! and the states merge. A runtime with its own thread pool uses
//! [`attend_partial`] and [`Partial::merge`] the same way.

use std::vec;
use std::vec::Vec;

use super::{Partial, attend_partial_on, check, scratch_len};
use crate::quant::KvCache;
use crate::{Backend, Error};

/// [`attend`](super::attend) split over `threads` threads (the calling one
/// included), on the detected backend. Allocates each thread's state and
/// scratch; ranges shorter than 1,024 tokens a thread are not worth a
/// thread, so fewer may be used.
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

/// Fewest tokens worth a thread of their own.
const MIN_TOKENS_PER_THREAD: usize = 1024;

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
    if threads == 0 {
        return Err(Error::InvalidParameter("attend_parallel needs a thread"));
    }
    let d = cache.config().dim;
    let queries = q.len() / d.max(1);
    let scratch = scratch_len(cache, queries);
    check(cache, head, q, Some(out.len()), scratch)?;
    backend.check()?;
    let len = cache.len();
    let parts = threads.min(len / MIN_TOKENS_PER_THREAD).max(1);
    let state_len = Partial::len_for(cache, queries);
    let mut states = vec![0.0f32; parts * state_len];
    let mut scratches = vec![0.0f32; parts * scratch];
    let mut partials = states
        .chunks_mut(state_len)
        .map(|buf| Partial::new(cache, queries, buf))
        .collect::<Result<Vec<_>, _>>()?;
    let bounds: Vec<usize> = (0..=parts).map(|p| p * len / parts).collect();
    let run = |state: &mut Partial<'_>, scratch: &mut [f32], range: &[usize]| {
        if range[0] == range[1] {
            return Ok(());
        }
        let tokens = range[0]..range[1];
        attend_partial_on(backend, cache, head, q, tokens, state, scratch)
    };
    std::thread::scope(|s| {
        let mut jobs = partials
            .iter_mut()
            .zip(scratches.chunks_mut(scratch))
            .zip(bounds.windows(2));
        // The calling thread takes the first range, spawned threads the rest.
        let first = jobs.next();
        let spawned: Vec<_> = jobs
            .map(|((state, scratch), range)| s.spawn(move || run(state, scratch, range)))
            .collect();
        let mut result = first.map_or(Ok(()), |((state, scratch), range)| {
            run(state, scratch, range)
        });
        for handle in spawned {
            let r = handle
                .join()
                .unwrap_or(Err(Error::InvalidParameter("an attention thread panicked")));
            result = result.and(r);
        }
        result
    })?;
    let (total, rest) = partials
        .split_first_mut()
        .ok_or(Error::InvalidParameter("attend_parallel needs a thread"))?;
    for other in rest.iter() {
        total.merge(other)?;
    }
    let mut tmp = vec![0.0f32; d];
    total.finish_on(backend, cache, out, &mut tmp)
}
