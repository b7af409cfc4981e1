/*
 * turbokv.h — C interface of turbokv: KV-cache quantisation and attention
 * on the compressed cache (Walsh–Hadamard rotation, Lloyd–Max codebooks,
 * QJL sketches).
 *
 * C99. Build the library with
 *     cargo rustc --release --features capi --crate-type staticlib
 * (target/release/libturbokv.a; or --crate-type cdylib for libturbokv.so)
 * and link with -lturbokv -lpthread -ldl -lm.
 *
 * Conventions:
 * - Every function that can fail returns a turbokv_status: TURBOKV_OK (0)
 *   or a code that turbokv_status_str() describes. No function aborts,
 *   panics or allocates; every output goes to caller memory whose length is
 *   passed and checked.
 * - Pointer arguments must be valid for the lengths given, and outputs must
 *   not overlap inputs. A NULL pointer with length 0 is an empty array; a
 *   NULL pointer otherwise is TURBOKV_NULL_POINTER.
 * - turbokv_codebook, turbokv_quantizer and turbokv_cache are opaque
 *   objects of fixed size in caller memory (stack, static or heap), filled
 *   by their init functions; their sizes belong to this ABI version. Using
 *   one that was never initialised is TURBOKV_INVALID_HANDLE (the library
 *   checks a tag; it cannot detect every corruption of the object).
 * - A cache's bytes live in a separate caller buffer, in the documented
 *   layout of the Rust crate (header, then keys, then values). The buffer
 *   must outlive the turbokv_cache handle, and the caller must not write it
 *   while the handle is in use. Saved bytes can be reopened with
 *   turbokv_cache_open, which validates every field of untrusted bytes.
 * - Objects are safe to read from several threads at once (e.g. attention
 *   over different heads); pushing to a cache needs exclusive access.
 */
#ifndef TURBOKV_H
#define TURBOKV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TURBOKV_VERSION_MAJOR 0
#define TURBOKV_VERSION_MINOR 1
#define TURBOKV_VERSION_PATCH 0
#define TURBOKV_VERSION "0.1.0"

/* ---------------------------------------------------------------- status */

typedef int32_t turbokv_status;

enum {
    TURBOKV_OK = 0,
    TURBOKV_NOT_POWER_OF_TWO = 1,   /* a transform length is not 2^k */
    TURBOKV_TOO_LONG = 2,           /* a length exceeds the maximum */
    TURBOKV_LENGTH_MISMATCH = 3,    /* a buffer length does not match */
    TURBOKV_RAGGED_ROWS = 4,        /* a batch is not whole rows */
    TURBOKV_BACKEND_UNAVAILABLE = 5,/* that backend cannot run here */
    TURBOKV_INVALID_BITS = 6,       /* bits outside 1..8, budget outside 2..8 */
    TURBOKV_INVALID_DIM = 7,        /* unsupported dimension or head index */
    TURBOKV_BUFFER_TOO_SHORT = 8,   /* an output or input buffer is short */
    TURBOKV_INVALID_SKETCH_BITS = 9,/* unsupported QJL sketch length */
    TURBOKV_NON_FINITE = 10,        /* NaN/inf input, or a norm that overflows */
    TURBOKV_CORRUPT_CACHE = 11,     /* bytes that are not a valid cache */
    TURBOKV_CACHE_FULL = 12,        /* no room for another token */
    TURBOKV_INDEX_OUT_OF_RANGE = 13,/* a code index does not fit its width */
    TURBOKV_INVALID_PARAMETER = 14, /* unknown enum value, reserved field set */
    TURBOKV_NULL_POINTER = 15,      /* a required pointer is NULL */
    TURBOKV_INVALID_HANDLE = 16,    /* an object that was not initialised */
    TURBOKV_INTERNAL = 17           /* a bug in turbokv (never input) */
};

/* A static description of a status code. */
const char *turbokv_status_str(turbokv_status status);

/* The library version, "MAJOR.MINOR.PATCH" (equals TURBOKV_VERSION). */
const char *turbokv_version(void);

/* ---------------------------------------------------------------- backends */

enum {
    TURBOKV_BACKEND_SCALAR = 0,
    TURBOKV_BACKEND_AVX2 = 1,
    TURBOKV_BACKEND_AVX512 = 2,
    TURBOKV_BACKEND_NEON = 3
};

/* The best backend of this CPU (detected once, cached). */
int32_t turbokv_backend_detect(void);
/* 1 if the backend can run on this CPU, else 0. */
int32_t turbokv_backend_is_available(int32_t backend);
/* "scalar", "avx2", "avx512", "neon", or NULL for an unknown value. */
const char *turbokv_backend_name(int32_t backend);

/* ---------------------------------------------------------------- WHT, rotation */

/* x <- H x, the unnormalised Walsh-Hadamard transform (Sylvester order),
 * n a power of two in 1..2^20. Bit-identical on every backend. */
turbokv_status turbokv_fwht(float *x, size_t n);
/* The same on a chosen backend. */
turbokv_status turbokv_fwht_on(int32_t backend, float *x, size_t n);
/* The transform of each len-long row of x[0..total]. */
turbokv_status turbokv_fwht_rows(float *x, size_t total, size_t len);

/* x <- H D x / sqrt(dim), the seeded orthonormal rotation (signs from
 * SplitMix64, see the crate docs), and its inverse. */
turbokv_status turbokv_rotate(float *x, size_t dim, uint64_t seed);
turbokv_status turbokv_unrotate(float *x, size_t dim, uint64_t seed);

/* ---------------------------------------------------------------- packing, codebooks */

/* Bytes of n codes of `bits` bits: ceil(n * bits / 8). */
size_t turbokv_packed_len(size_t n, uint8_t bits);
/* LSB-first bit stream: code i occupies bits i*b .. i*b+b-1. */
turbokv_status turbokv_pack(uint8_t bits, const uint8_t *indices, size_t n,
                            uint8_t *out, size_t out_len);
turbokv_status turbokv_unpack(uint8_t bits, const uint8_t *packed, size_t packed_len,
                              uint8_t *out, size_t n);

#define TURBOKV_CODEBOOK_WORDS 520
typedef struct turbokv_codebook {
    uint64_t opaque[TURBOKV_CODEBOOK_WORDS];
} turbokv_codebook;

/* The Lloyd-Max codebook of one coordinate of a rotated unit vector of
 * dimension dim (2..65536), bits 1..8 (dims 64/128/256 at 1..4 bits come
 * from tables; others are solved, which takes milliseconds). */
turbokv_status turbokv_codebook_lloyd_max(turbokv_codebook *cb, size_t dim, uint8_t bits);
/* The N(0,1) Lloyd-Max codebook, bits 1..8. */
turbokv_status turbokv_codebook_gaussian(turbokv_codebook *cb, uint8_t bits);
/* Centroids (sorted) into out[0..cap], their number into *count, and the
 * integrated MSE of one rotated unit vector into *mse (may be NULL). */
turbokv_status turbokv_codebook_centroids(const turbokv_codebook *cb, float *out, size_t cap,
                                          size_t *count, double *mse);

/* Nearest-centroid indices (ties to the lower index). */
turbokv_status turbokv_quantize(const turbokv_codebook *cb, const float *x, size_t n,
                                uint8_t *indices);
/* Quantise and pack in one pass: out_len >= turbokv_packed_len(n, bits). */
turbokv_status turbokv_quantize_packed(const turbokv_codebook *cb, const float *x, size_t n,
                                       uint8_t *out, size_t out_len);
/* Centroids of n packed codes. */
turbokv_status turbokv_dequantize(const turbokv_codebook *cb, const uint8_t *packed,
                                  size_t packed_len, float *out, size_t n);
/* *result = sum_j q[j] * c[idx_j] straight from packed codes (within
 * 1e-5 relative of the scalar sum on every backend). */
turbokv_status turbokv_dot(const turbokv_codebook *cb, const float *q, size_t n,
                           const uint8_t *packed, size_t packed_len, float *result);
/* The same for nrows rows `stride` bytes apart, into out[0..nrows]. */
turbokv_status turbokv_dot_rows(const turbokv_codebook *cb, const float *q, size_t n,
                                const uint8_t *rows, size_t rows_len, size_t stride,
                                float *out, size_t nrows);

/* ---------------------------------------------------------------- quantisers */

enum { TURBOKV_NORM_F16 = 0, TURBOKV_NORM_F32 = 1 };
enum { TURBOKV_PROJECTION_GAUSSIAN = 0, TURBOKV_PROJECTION_HADAMARD = 1 };
enum { TURBOKV_SCHEME_KV = 0, TURBOKV_SCHEME_KQV = 1, TURBOKV_SCHEME_QKQV = 2 };

#define TURBOKV_QUANTIZER_WORDS 536
typedef struct turbokv_quantizer {
    uint64_t opaque[TURBOKV_QUANTIZER_WORDS];
} turbokv_quantizer;

/* TurboQuant_mse: norm + rotation + bits-bit Lloyd-Max codes (dim a power
 * of two in 2..4096, bits 1..8). */
turbokv_status turbokv_quantizer_mse(turbokv_quantizer *qz, size_t dim, uint8_t bits,
                                     uint64_t seed, uint32_t norm);
/* TurboQuant_prod: (bits-1)-bit MSE + 1-bit QJL sketch of the residual
 * (dim a power of two in 8..4096, bits 2..8). */
turbokv_status turbokv_quantizer_prod(turbokv_quantizer *qz, size_t dim, uint8_t bits,
                                      uint64_t seed, uint32_t projection, uint32_t norm);
/* The paper's KV baseline: norm + Lloyd-Max codes, no rotation. */
turbokv_status turbokv_quantizer_baseline(turbokv_quantizer *qz, size_t dim, uint8_t bits,
                                          uint32_t norm);
/* A scheme's K and V quantisers under a budget of n bits (2..8). */
turbokv_status turbokv_scheme_quantizers(uint32_t scheme, uint8_t n, size_t dim, uint64_t seed,
                                         uint32_t projection, turbokv_quantizer *k,
                                         turbokv_quantizer *v);
/* Bytes of one encoding (*len) and bits per coordinate spent, side
 * information included (*bits, may be NULL). */
turbokv_status turbokv_quantizer_info(const turbokv_quantizer *qz, size_t *len, double *bits);
/* Encode x[0..n] (n = dim) into out[0..out_len]; identical bytes on every
 * backend. A zero vector encodes; NaN/inf is TURBOKV_NON_FINITE. */
turbokv_status turbokv_encode(const turbokv_quantizer *qz, const float *x, size_t n,
                              uint8_t *out, size_t out_len);
/* Decode code[0..code_len] into out[0..n]. */
turbokv_status turbokv_decode(const turbokv_quantizer *qz, const uint8_t *code, size_t code_len,
                              float *out, size_t n);

/* ---------------------------------------------------------------- cache, attention */

typedef struct turbokv_cache_config {
    uint32_t scheme;     /* TURBOKV_SCHEME_* */
    uint32_t budget;     /* n, 2..8 */
    uint32_t heads;      /* KV heads */
    uint32_t dim;        /* head dimension */
    uint32_t capacity;   /* tokens */
    uint32_t projection; /* TURBOKV_PROJECTION_* */
    uint32_t norm;       /* TURBOKV_NORM_* */
    uint32_t reserved;   /* must be 0 */
    uint64_t seed;       /* rotations and projections */
} turbokv_cache_config;

#define TURBOKV_CACHE_WORDS 1080
typedef struct turbokv_cache {
    uint64_t opaque[TURBOKV_CACHE_WORDS];
} turbokv_cache;

/* Bytes of the buffer a cache of `config` needs. */
turbokv_status turbokv_cache_bytes_needed(const turbokv_cache_config *config, size_t *bytes);
/* A new empty cache in buf[0..len] (writes its header). */
turbokv_status turbokv_cache_create(turbokv_cache *cache, const turbokv_cache_config *config,
                                    uint8_t *buf, size_t len);
/* Reopens saved bytes, validating every field (TURBOKV_CORRUPT_CACHE). */
turbokv_status turbokv_cache_open(turbokv_cache *cache, uint8_t *buf, size_t len);
/* Appends one token: k and v hold heads*dim floats each (head-major). */
turbokv_status turbokv_cache_push(turbokv_cache *cache, const float *k, size_t k_len,
                                  const float *v, size_t v_len);
/* Tokens stored, capacity (may be NULL), and the scratch floats that
 * turbokv_attend needs (may be NULL). */
turbokv_status turbokv_cache_info(const turbokv_cache *cache, size_t *len, size_t *capacity,
                                  size_t *scratch);
/* Copies the encoding of token `token`'s key (side 0) or value (side 1)
 * of KV head `head` into out[0..out_len] (at least the quantiser's encoded
 * length), ready for turbokv_decode: the cache stores each field of the
 * encodings (norms, codes, signs) in a region of its own. */
turbokv_status turbokv_cache_token(const turbokv_cache *cache, uint32_t side, size_t head,
                                   size_t token, uint8_t *out, size_t out_len);
/* softmax(q K^T / sqrt(dim)) V over KV head `head`, straight on the
 * compressed cache; q holds one or more query heads of dim floats (grouped-
 * query attention), out the same number. Equals attention over the decoded
 * cache within 1e-4 relative. */
turbokv_status turbokv_attend(const turbokv_cache *cache, size_t head, const float *q,
                              size_t q_len, float *out, float *scratch, size_t scratch_len);

#ifdef __cplusplus
}
#endif

#endif /* TURBOKV_H */
