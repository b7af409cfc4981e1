/*
 * tqkv.h — C interface of tqkv: KV-cache quantisation and attention
 * on the compressed cache (Walsh–Hadamard rotation, Lloyd–Max codebooks,
 * QJL sketches).
 *
 * C99. Build the library with
 *     cargo rustc --release --features capi --crate-type staticlib
 * (target/release/libtqkv.a; or --crate-type cdylib for libtqkv.so)
 * and link with -ltqkv -lpthread -ldl -lm.
 *
 * Conventions:
 * - Every function that can fail returns a tqkv_status: TQKV_OK (0)
 *   or a code that tqkv_status_str() describes. No function aborts,
 *   panics or allocates; every output goes to caller memory whose length is
 *   passed and checked.
 * - Pointer arguments must be valid for the lengths given, and outputs must
 *   not overlap inputs. A NULL pointer with length 0 is an empty array; a
 *   NULL pointer otherwise is TQKV_NULL_POINTER. Every pointer must be
 *   aligned for its element type (else TQKV_MISALIGNED), and no array may
 *   span more than PTRDIFF_MAX bytes (else TQKV_TOO_LONG): both are checked
 *   before the library touches the memory.
 * - tqkv_codebook, tqkv_quantizer and tqkv_cache are opaque
 *   objects of fixed size in caller memory (stack, static or heap), filled
 *   by their init functions; their sizes belong to this ABI version. Using
 *   one that was never initialised is TQKV_INVALID_HANDLE (the library
 *   checks a tag; it cannot detect every corruption of the object).
 * - A cache's bytes live in a separate caller buffer, in the documented
 *   layout of the Rust crate (header, then keys, then values). The buffer
 *   must outlive the tqkv_cache handle, and the caller must not write it
 *   while the handle is in use. Saved bytes can be reopened with
 *   tqkv_cache_open, which validates every field of untrusted bytes.
 * - Objects are safe to read from several threads at once (e.g. attention
 *   over different heads); pushing to a cache needs exclusive access.
 */
#ifndef TQKV_H
#define TQKV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TQKV_VERSION_MAJOR 0
#define TQKV_VERSION_MINOR 2
#define TQKV_VERSION_PATCH 0
#define TQKV_VERSION "0.2.0"
/* Raised whenever a change to this header breaks callers built with the
 * older one (a signature, a struct, an object's size or layout); additions
 * leave it. Call tqkv_abi_check_header() once at start-up. */
#define TQKV_ABI_VERSION 1

/* ---------------------------------------------------------------- status */

typedef int32_t tqkv_status;

enum {
    TQKV_OK = 0,
    TQKV_NOT_POWER_OF_TWO = 1,   /* a transform length is not 2^k */
    TQKV_TOO_LONG = 2,           /* a length exceeds the maximum */
    TQKV_LENGTH_MISMATCH = 3,    /* a buffer length does not match */
    TQKV_RAGGED_ROWS = 4,        /* a batch is not whole rows */
    TQKV_BACKEND_UNAVAILABLE = 5,/* that backend cannot run here */
    TQKV_INVALID_BITS = 6,       /* bits outside 1..8, budget outside 2..8 */
    TQKV_INVALID_DIM = 7,        /* unsupported dimension or head index */
    TQKV_BUFFER_TOO_SHORT = 8,   /* an output or input buffer is short */
    TQKV_INVALID_SKETCH_BITS = 9,/* unsupported QJL sketch length */
    TQKV_NON_FINITE = 10,        /* NaN/inf input, or a norm that overflows */
    TQKV_CORRUPT_CACHE = 11,     /* bytes that are not a valid cache */
    TQKV_CACHE_FULL = 12,        /* no room for another token */
    TQKV_INDEX_OUT_OF_RANGE = 13,/* a code index does not fit its width */
    TQKV_INVALID_PARAMETER = 14, /* unknown enum value, reserved field set */
    TQKV_NULL_POINTER = 15,      /* a required pointer is NULL */
    TQKV_INVALID_HANDLE = 16,    /* an object that was not initialised */
    TQKV_INTERNAL = 17,          /* a bug in tqkv (never input) */
    TQKV_MISALIGNED = 18,        /* a pointer not aligned for its element type */
    TQKV_ABI_MISMATCH = 19       /* caller built with another tqkv.h */
};

/* A static description of a status code. */
const char *tqkv_status_str(tqkv_status status);

/* The library version, "MAJOR.MINOR.PATCH" (equals TQKV_VERSION). */
const char *tqkv_version(void);
/* The library's TQKV_ABI_VERSION. */
uint32_t tqkv_abi_version(void);
/* TQKV_OK if a caller built with this ABI version and these object sizes
 * (bytes) can use the library, else TQKV_ABI_MISMATCH. Use
 * tqkv_abi_check_header() (end of this file), which passes the caller's. */
tqkv_status tqkv_abi_check(uint32_t abi_version, size_t codebook_bytes,
                           size_t quantizer_bytes, size_t cache_config_bytes,
                           size_t cache_bytes);

/* ---------------------------------------------------------------- backends */

enum {
    TQKV_BACKEND_SCALAR = 0,
    TQKV_BACKEND_AVX2 = 1,
    TQKV_BACKEND_AVX512 = 2,
    TQKV_BACKEND_NEON = 3
};

/* The best backend of this CPU (detected once, cached). */
int32_t tqkv_backend_detect(void);
/* 1 if the backend can run on this CPU, else 0. */
int32_t tqkv_backend_is_available(int32_t backend);
/* "scalar", "avx2", "avx512", "neon", or NULL for an unknown value. */
const char *tqkv_backend_name(int32_t backend);

/* ---------------------------------------------------------------- WHT, rotation */

/* x <- H x, the unnormalised Walsh-Hadamard transform (Sylvester order),
 * n a power of two in 1..2^20. Bit-identical on every backend. */
tqkv_status tqkv_fwht(float *x, size_t n);
/* The same on a chosen backend. */
tqkv_status tqkv_fwht_on(int32_t backend, float *x, size_t n);
/* The transform of each len-long row of x[0..total]. */
tqkv_status tqkv_fwht_rows(float *x, size_t total, size_t len);

/* x <- H D x / sqrt(dim), the seeded orthonormal rotation (signs from
 * SplitMix64, see the crate docs), and its inverse. dim: a power of two, or
 * a multiple of 8 up to 4096 (80, 96, 112, 192, 576, ...; TQKV_INVALID_DIM
 * otherwise). */
tqkv_status tqkv_rotate(float *x, size_t dim, uint64_t seed);
tqkv_status tqkv_unrotate(float *x, size_t dim, uint64_t seed);

/* ---------------------------------------------------------------- packing, codebooks */

/* Bytes of n codes of `bits` bits: ceil(n * bits / 8). */
size_t tqkv_packed_len(size_t n, uint8_t bits);
/* LSB-first bit stream: code i occupies bits i*b .. i*b+b-1. */
tqkv_status tqkv_pack(uint8_t bits, const uint8_t *indices, size_t n,
                            uint8_t *out, size_t out_len);
tqkv_status tqkv_unpack(uint8_t bits, const uint8_t *packed, size_t packed_len,
                              uint8_t *out, size_t n);

#define TQKV_CODEBOOK_WORDS 520
typedef struct tqkv_codebook {
    uint64_t opaque[TQKV_CODEBOOK_WORDS];
} tqkv_codebook;

/* The Lloyd-Max codebook of one coordinate of a rotated unit vector of
 * dimension dim (2..65536), bits 1..8 (dims 64/128/256 at 1..4 bits come
 * from tables; others are solved, which takes milliseconds). */
tqkv_status tqkv_codebook_lloyd_max(tqkv_codebook *cb, size_t dim, uint8_t bits);
/* The N(0,1) Lloyd-Max codebook, bits 1..8. */
tqkv_status tqkv_codebook_gaussian(tqkv_codebook *cb, uint8_t bits);
/* Centroids (sorted) into out[0..cap], their number into *count, and the
 * integrated MSE of one rotated unit vector into *mse (may be NULL). */
tqkv_status tqkv_codebook_centroids(const tqkv_codebook *cb, float *out, size_t cap,
                                          size_t *count, double *mse);

/* Nearest-centroid indices (ties to the lower index). */
tqkv_status tqkv_quantize(const tqkv_codebook *cb, const float *x, size_t n,
                                uint8_t *indices);
/* Quantise and pack in one pass: out_len >= tqkv_packed_len(n, bits). */
tqkv_status tqkv_quantize_packed(const tqkv_codebook *cb, const float *x, size_t n,
                                       uint8_t *out, size_t out_len);
/* Centroids of n packed codes. */
tqkv_status tqkv_dequantize(const tqkv_codebook *cb, const uint8_t *packed,
                                  size_t packed_len, float *out, size_t n);
/* *result = sum_j q[j] * c[idx_j] straight from packed codes (within
 * 1e-5 relative of the scalar sum on every backend). */
tqkv_status tqkv_dot(const tqkv_codebook *cb, const float *q, size_t n,
                           const uint8_t *packed, size_t packed_len, float *result);
/* The same for nrows rows `stride` bytes apart, into out[0..nrows]. */
tqkv_status tqkv_dot_rows(const tqkv_codebook *cb, const float *q, size_t n,
                                const uint8_t *rows, size_t rows_len, size_t stride,
                                float *out, size_t nrows);

/* ---------------------------------------------------------------- quantisers */

enum { TQKV_NORM_F16 = 0, TQKV_NORM_F32 = 1 };
enum { TQKV_PROJECTION_GAUSSIAN = 0, TQKV_PROJECTION_HADAMARD = 1 };
enum { TQKV_SCHEME_KV = 0, TQKV_SCHEME_KQV = 1, TQKV_SCHEME_QKQV = 2, TQKV_SCHEME_CUSTOM = 3 };
/* How tqkv_attend_many_scored scores keys: in f32 (as every other attend
 * function), or from the query and centroids rounded to 8-bit integers
 * (approximate; the same bits on every CPU; faster on AVX-512). */
enum { TQKV_SCORING_EXACT = 0, TQKV_SCORING_INT8 = 1 };
enum { TQKV_QUANTIZER_BASELINE = 0, TQKV_QUANTIZER_MSE = 1, TQKV_QUANTIZER_PROD = 2 };

#define TQKV_QUANTIZER_WORDS 544
typedef struct tqkv_quantizer {
    uint64_t opaque[TQKV_QUANTIZER_WORDS];
} tqkv_quantizer;

/* TurboQuant_mse: norm + rotation + bits-bit Lloyd-Max codes (dim a power
 * of two in 2..4096, bits 1..8). */
tqkv_status tqkv_quantizer_mse(tqkv_quantizer *qz, size_t dim, uint8_t bits,
                                     uint64_t seed, uint32_t norm);
/* TurboQuant_prod: (bits-1)-bit MSE + 1-bit QJL sketch of the residual
 * (dim a power of two in 8..4096, bits 2..8). */
tqkv_status tqkv_quantizer_prod(tqkv_quantizer *qz, size_t dim, uint8_t bits,
                                      uint64_t seed, uint32_t projection, uint32_t norm);
/* The paper's KV baseline: norm + Lloyd-Max codes, no rotation. */
tqkv_status tqkv_quantizer_baseline(tqkv_quantizer *qz, size_t dim, uint8_t bits,
                                          uint32_t norm);
/* A scheme's K and V quantisers under a budget of n bits (2..8). */
tqkv_status tqkv_scheme_quantizers(uint32_t scheme, uint8_t n, size_t dim, uint64_t seed,
                                         uint32_t projection, tqkv_quantizer *k,
                                         tqkv_quantizer *v);
/* Bytes of one encoding (*len) and bits per coordinate spent, side
 * information included (*bits, may be NULL). */
tqkv_status tqkv_quantizer_info(const tqkv_quantizer *qz, size_t *len, double *bits);
/* Encode x[0..n] (n = dim) into out[0..out_len]; identical bytes on every
 * backend. A zero vector encodes; NaN/inf is TQKV_NON_FINITE. */
tqkv_status tqkv_encode(const tqkv_quantizer *qz, const float *x, size_t n,
                              uint8_t *out, size_t out_len);
/* Decode code[0..code_len] into out[0..n]. */
tqkv_status tqkv_decode(const tqkv_quantizer *qz, const uint8_t *code, size_t code_len,
                              float *out, size_t n);

/* ---------------------------------------------------------------- cache, attention */

typedef struct tqkv_cache_config {
    uint32_t scheme;     /* TQKV_SCHEME_*; TQKV_SCHEME_CUSTOM reads key_* and value_* */
    uint32_t budget;     /* n, 2..8 (0 for TQKV_SCHEME_CUSTOM) */
    uint32_t heads;      /* KV heads */
    uint32_t dim;        /* head dimension */
    uint32_t capacity;   /* tokens */
    uint32_t projection; /* TQKV_PROJECTION_* */
    uint32_t norm;       /* TQKV_NORM_* */
    uint32_t value_dim;  /* head dimension of values; 0: the same as dim
                          * (multi-head latent attention: dim 576, value_dim 512) */
    uint64_t seed;       /* rotations and projections */
    /* TQKV_SCHEME_CUSTOM only (0 otherwise): each side's quantiser
     * (TQKV_QUANTIZER_*) and bits per coordinate (1..8; prod 2..8), e.g.
     * 4-bit MSE keys with 3-bit MSE values. */
    uint32_t key_quantizer;
    uint32_t key_bits;
    uint32_t value_quantizer;
    uint32_t value_bits;
} tqkv_cache_config;

#define TQKV_CACHE_WORDS 1120
typedef struct tqkv_cache {
    uint64_t opaque[TQKV_CACHE_WORDS];
} tqkv_cache;

/* Bytes of the buffer a cache of `config` needs. */
tqkv_status tqkv_cache_bytes_needed(const tqkv_cache_config *config, size_t *bytes);
/* A new empty cache in buf[0..len] (writes its header). */
tqkv_status tqkv_cache_create(tqkv_cache *cache, const tqkv_cache_config *config,
                                    uint8_t *buf, size_t len);
/* Reopens saved bytes, validating every field (TQKV_CORRUPT_CACHE). */
tqkv_status tqkv_cache_open(tqkv_cache *cache, uint8_t *buf, size_t len);
/* Appends one token: k holds heads*dim floats, v heads*value_dim (head-major). */
tqkv_status tqkv_cache_push(tqkv_cache *cache, const float *k, size_t k_len,
                                  const float *v, size_t v_len);
/* Appends whole tokens at once (a prefill): k and v hold the same number of
 * tokens of heads*dim and heads*value_dim floats, token-major; the same
 * bytes as one push per token
 * (TQKV_RAGGED_ROWS for a partial token; on error nothing is stored). */
tqkv_status tqkv_cache_push_batch(tqkv_cache *cache, const float *k, size_t k_len,
                                        const float *v, size_t v_len);
/* Tokens stored, capacity (may be NULL), and the scratch floats that
 * tqkv_attend needs for one query head (may be NULL; for more, see
 * tqkv_attend_scratch_len). */
tqkv_status tqkv_cache_info(const tqkv_cache *cache, size_t *len, size_t *capacity,
                                  size_t *scratch);
/* Copies the encoding of token `token`'s key (side 0) or value (side 1)
 * of KV head `head` into out[0..out_len] (at least the quantiser's encoded
 * length), ready for tqkv_decode: the cache stores each field of the
 * encodings (norms, codes, signs) in a region of its own. */
tqkv_status tqkv_cache_token(const tqkv_cache *cache, uint32_t side, size_t head,
                                   size_t token, uint8_t *out, size_t out_len);
/* softmax(q K^T / sqrt(dim)) V over KV head `head`, straight on the
 * compressed cache; q holds one or more query heads of dim floats (grouped-
 * query attention), out as many heads of value_dim floats. Equals attention
 * over the decoded cache within 1e-4 relative. */
tqkv_status tqkv_attend(const tqkv_cache *cache, size_t head, const float *q,
                              size_t q_len, float *out, float *scratch, size_t scratch_len);
/* The scratch floats tqkv_attend and tqkv_attend_many need for q_len query
 * floats (a multiple of dim). */
tqkv_status tqkv_attend_scratch_len(const tqkv_cache *cache, size_t q_len,
                                          size_t *scratch);
/* Several query positions in one pass over the codes (speculative
 * decoding, chunked prefill): q holds n_limits positions of the same number
 * of query heads (out as many of value_dim floats); position p attends to
 * tokens 0..limits[p]
 * (TQKV_INVALID_PARAMETER for a limit past the tokens stored). */
tqkv_status tqkv_attend_many(const tqkv_cache *cache, size_t head, const float *q,
                                   size_t q_len, const size_t *limits, size_t n_limits,
                                   float *out, float *scratch, size_t scratch_len);
/* tqkv_attend_many with the keys scored as `scoring` says (TQKV_SCORING_*;
 * another value is TQKV_INVALID_PARAMETER). */
tqkv_status tqkv_attend_many_scored(const tqkv_cache *cache, size_t head, uint32_t scoring,
                                    const float *q, size_t q_len, const size_t *limits,
                                    size_t n_limits, float *out, float *scratch,
                                    size_t scratch_len);

/* One decode split across the caller's threads. A partial state lives in a
 * caller buffer of floats; its contents are for these functions only. Each
 * thread empties its own state (tqkv_partial_init), adds its own range of
 * tokens (tqkv_attend_partial, with its own scratch), the states merge
 * (tqkv_partial_merge) and the merged one gives the output
 * (tqkv_partial_finish): tqkv_attend over all the tokens, within 1e-4
 * relative. q_len is, as for tqkv_attend, the query floats (a multiple of
 * dim); every call on one state takes the same q_len. */

/* The floats of a partial state for q_len query floats. */
tqkv_status tqkv_partial_len(const tqkv_cache *cache, size_t q_len, size_t *len);
/* Empties state[0..state_len] (at least tqkv_partial_len floats). */
tqkv_status tqkv_partial_init(const tqkv_cache *cache, size_t q_len, float *state,
                                    size_t state_len);
/* Adds tokens start..end of KV head `head` to the state of the query heads
 * q[0..q_len]; scratch as for tqkv_attend
 * (TQKV_INVALID_PARAMETER for an empty range or one past the tokens). */
tqkv_status tqkv_attend_partial(const tqkv_cache *cache, size_t head, const float *q,
                                      size_t q_len, size_t start, size_t end, float *state,
                                      size_t state_len, float *scratch, size_t scratch_len);
/* state <- the state of its own tokens and other's (a disjoint range, the
 * same query heads); both state_len floats
 * (TQKV_INVALID_PARAMETER if the two overlap). */
tqkv_status tqkv_partial_merge(const tqkv_cache *cache, size_t q_len, float *state,
                                     const float *other, size_t state_len);
/* out[0..q_len / dim * value_dim] <- the attention output of the state
 * (zeros for a query head that saw no token); scratch of at least value_dim
 * floats (tqkv_attend_scratch_len gives enough). */
tqkv_status tqkv_partial_finish(const tqkv_cache *cache, size_t q_len, const float *state,
                                      size_t state_len, float *out, float *scratch,
                                      size_t scratch_len);

/* ---------------------------------------------------------------- ABI check */

/* TQKV_OK if the library linked is the one this header describes (its
 * ABI version and the sizes of the objects above), else TQKV_ABI_MISMATCH:
 * call once at start-up, before any object is made. A caller built with
 * another header would hand the library objects of the wrong size. */
static inline tqkv_status tqkv_abi_check_header(void) {
    return tqkv_abi_check(TQKV_ABI_VERSION, sizeof(tqkv_codebook), sizeof(tqkv_quantizer),
                          sizeof(tqkv_cache_config), sizeof(tqkv_cache));
}

#ifdef __cplusplus
}
#endif

#endif /* TQKV_H */
