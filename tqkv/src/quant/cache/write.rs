//! Writing a cache: a new one in a buffer, clearing it, and pushing one
//! token (many tokens at once are `batch`'s).

use super::config::{CacheHeader, kind_code};
use super::{CacheConfig, HEADER_BYTES, KvCache, Layout, MAGIC, VERSION};
use crate::backend::Checked;
use crate::qjl::Projection;
use crate::quant::{MAX_DIM, NormPrecision};
use crate::{Backend, Error};

impl<B: AsRef<[u8]> + AsMut<[u8]>> KvCache<B> {
    /// An empty cache in `buf` (at least `config.bytes_needed()` bytes).
    ///
    /// # Errors
    /// As [`CacheConfig::bytes_needed`]; [`Error::BufferTooShort`].
    pub fn new(config: CacheConfig, mut buf: B) -> Result<Self, Error> {
        let needed = config.bytes_needed()?;
        let found = buf.as_ref().len();
        if found < needed {
            return Err(Error::BufferTooShort { needed, found });
        }
        let (k, v) = config.quantizers()?;
        let header = CacheHeader {
            magic: MAGIC,
            version: if config.value_dim == config.dim {
                4u32
            } else {
                VERSION
            }
            .to_le(),
            key_kind: kind_code(config.keys.kind),
            key_bits: config.keys.bits,
            projection: match config.projection {
                Projection::Gaussian => 0,
                Projection::Hadamard => 1,
            },
            norm: match config.norm {
                NormPrecision::F16 => 0,
                NormPrecision::F32 => 1,
            },
            heads: (config.heads as u32).to_le(),
            dim: (config.dim as u32).to_le(),
            capacity: (config.capacity as u32).to_le(),
            len: 0,
            key_bytes: (k.encoded_len() as u32).to_le(),
            value_bytes: (v.encoded_len() as u32).to_le(),
            seed: config.seed.to_le(),
            value_kind: kind_code(config.values.kind),
            value_bits: config.values.bits,
            value_dim: if config.value_dim == config.dim {
                [0; 4]
            } else {
                (config.value_dim as u32).to_le_bytes()
            },
            reserved: [0; 10],
        };
        buf.as_mut()[..HEADER_BYTES].copy_from_slice(bytemuck::bytes_of(&header));
        let layout = Layout::of(config.capacity, &k, &v);
        Ok(KvCache {
            buf,
            config,
            len: 0,
            k,
            v,
            layout,
        })
    }

    /// Forgets every token (the buffer and configuration stay): the cache
    /// is empty again, ready for the next sequence.
    ///
    /// ```
    /// use tqkv::quant::{CacheConfig, KvCache, Scheme};
    ///
    /// let config = CacheConfig::new(Scheme::Kv, 4, 1, 64, 2);
    /// let mut cache = KvCache::new(config, vec![0u8; config.bytes_needed()?])?;
    /// cache.push(&[1.0; 64], &[1.0; 64])?;
    /// cache.clear();
    /// assert!(cache.is_empty());
    /// assert!(KvCache::from_bytes(cache.as_bytes())?.is_empty());
    /// # Ok::<(), tqkv::Error>(())
    /// ```
    pub fn clear(&mut self) {
        self.set_len(0);
    }

    /// Keeps the first `len ≤ len()` tokens, in the struct and the header.
    pub(super) fn set_len(&mut self, len: usize) {
        self.len = len;
        let bytes = (len as u32).to_le_bytes();
        self.buf.as_mut()[28..32].copy_from_slice(&bytes);
    }

    /// Appends one token: `k` holds `heads·dim` values and `v`
    /// `heads·value_dim`, head-major. Several heads are encoded as a
    /// [`push_batch`](Self::push_batch) groups them, eight vectors a step.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] for wrong lengths; [`Error::CacheFull`];
    /// the quantisers' errors (NaN, ∞). On error nothing is stored.
    pub fn push(&mut self, k: &[f32], v: &[f32]) -> Result<(), Error> {
        self.push_on(Backend::detect(), k, v)
    }

    /// [`push`](Self::push) on a chosen backend: the stored bytes are the
    /// same on every backend, so a cache written on one machine reads the
    /// same on any other.
    ///
    /// # Errors
    /// As [`push`](Self::push), plus [`Error::BackendUnavailable`].
    pub fn push_on(&mut self, backend: Backend, k: &[f32], v: &[f32]) -> Result<(), Error> {
        self.push_in(backend.check()?, k, v)
    }

    /// Floats of one token's keys and of its values, all heads.
    pub(super) fn rows(&self) -> (usize, usize) {
        let c = &self.config;
        (c.heads * c.dim, c.heads * c.value_dim)
    }

    /// [`push_on`](Self::push_on) on a backend already checked.
    pub(crate) fn push_in(&mut self, backend: Checked, k: &[f32], v: &[f32]) -> Result<(), Error> {
        let (k_row, v_row) = self.rows();
        for (x, row) in [(k, k_row), (v, v_row)] {
            if x.len() != row {
                return Err(Error::LengthMismatch {
                    expected: row,
                    found: x.len(),
                });
            }
        }
        if self.len == self.config.capacity {
            return Err(Error::CacheFull {
                capacity: self.config.capacity,
            });
        }
        let pair = self.k.row_work() + self.v.row_work();
        if self.config.heads == 1 && pair <= 2 * MAX_DIM {
            // One head alone is faster without the groups' bookkeeping, and
            // its key and value as a pair of rows: the encoding checks both
            // norms (finiteness) before it writes anything.
            return self.store_token(backend, k, v, pair);
        }
        crate::error::finite_on(backend, k)?;
        crate::error::finite_on(backend, v)?;
        self.store_tokens(backend, self.config.heads, k, v)
    }

    /// Encodes one token of one head (lengths and room checked by the
    /// caller) into slot `len()`, then counts it. Its key and value are a
    /// pair of rows of one encoding, in `work` floats of work space (the
    /// two sides' `row_work`): the steps of the two overlap (a push costs
    /// about a seventh less than one side after the other).
    fn store_token(
        &mut self,
        backend: Checked,
        k: &[f32],
        v: &[f32],
        work: usize,
    ) -> Result<(), Error> {
        let t = self.len;
        let mut slots = TokenSlots {
            buf: self.buf.as_mut(),
            // Head 0's regions, borrowed: a copy was written in 8-byte
            // stores and read back in 16-byte moves, which cannot forward
            // (a stall on every push).
            regions: &self.layout.regions,
            token: t,
        };
        let rows = [(&self.k, k), (&self.v, v)];
        crate::stack::floats(work, |work| {
            crate::quant::rows::encode_rows_in::<2>(backend, &rows, &mut slots, work)
        })?;
        self.set_len(t + 1);
        Ok(())
    }
}

/// The field slots of one token of head 0: row 0 its key, row 1 its value.
struct TokenSlots<'b> {
    buf: &'b mut [u8],
    regions: &'b [[(usize, usize); 4]; 2],
    token: usize,
}

impl crate::quant::rows::Slots for TokenSlots<'_> {
    #[inline]
    fn slot(&mut self, row: usize, field: usize) -> &mut [u8] {
        let (start, f) = self.regions[row][field];
        let at = start + self.token * f;
        &mut self.buf[at..at + f]
    }
}
