/*
 * Test of the C interface: every entry point of tqkv.h, checked against
 * plain C reference code (WHT, rotation, packing, dot products, attention
 * over decoded vectors) and against its documented errors. It also prints
 * a transcript of results (bytes as FNV-1a hashes, floats as bit patterns)
 * that `cargo run --release --example capi_reference` prints from Rust;
 * CI diffs the two.
 *
 *   make -C examples/c test    (builds the static library first)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tqkv.h"

static int failures = 0;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                \
            failures++;                                                    \
        }                                                                  \
    } while (0)

#define OK(call)                                                           \
    do {                                                                   \
        tqkv_status s_ = (call);                                        \
        if (s_ != TQKV_OK) {                                            \
            fprintf(stderr, "%s:%d: %s -> %d (%s)\n", __FILE__, __LINE__,  \
                    #call, (int)s_, tqkv_status_str(s_));               \
            failures++;                                                    \
        }                                                                  \
    } while (0)

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* The canonical WHT: strides 1, 2, 4, ...; (a, b) -> (a + b, a - b). */
static void naive_fwht(float *x, size_t n) {
    for (size_t h = 1; h < n; h *= 2)
        for (size_t i = 0; i < n; i += 2 * h)
            for (size_t j = i; j < i + h; j++) {
                float a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The documented rotation: flip signs, canonical WHT, scale. */
static void naive_rotate(float *x, size_t d, uint64_t seed) {
    uint64_t state = seed, word = 0;
    for (size_t i = 0; i < d; i++) {
        if (i % 64 == 0) word = splitmix64(&state);
        if ((word >> (i % 64)) & 1) x[i] = -x[i];
    }
    naive_fwht(x, d);
    float scale = (float)(1.0 / sqrt((double)d));
    for (size_t i = 0; i < d; i++) x[i] *= scale;
}

/* Deterministic test data, exact in float (the Rust reference uses the
 * same formulas). */
static float key_val(int t, int h, int j) { return (float)((t * 31 + h * 17 + j * 7) % 23 - 11) / 8.0f; }
static float value_val(int t, int h, int j) { return (float)((t * 13 + h * 5 + j * 11) % 19 - 9) / 4.0f; }
static float query_val(int i) { return (float)((i * 5) % 13 - 6) / 4.0f; }

enum { DIM = 64, HEADS = 2, TOKENS = 12, CAPACITY = 16 };

static void test_info(void) {
    CHECK(strcmp(tqkv_version(), TQKV_VERSION) == 0);
    /* This file was built with the library's own header. */
    CHECK(tqkv_abi_check_header() == TQKV_OK);
    CHECK(tqkv_abi_version() == TQKV_ABI_VERSION);
    /* A caller whose header had another version or another object size. */
    size_t cb = sizeof(tqkv_codebook), qz = sizeof(tqkv_quantizer);
    size_t cfg = sizeof(tqkv_cache_config), ca = sizeof(tqkv_cache);
    CHECK(tqkv_abi_check(TQKV_ABI_VERSION + 1, cb, qz, cfg, ca) == TQKV_ABI_MISMATCH);
    CHECK(tqkv_abi_check(TQKV_ABI_VERSION, cb - 8, qz, cfg, ca) == TQKV_ABI_MISMATCH);
    CHECK(tqkv_abi_check(TQKV_ABI_VERSION, cb, qz - 8, cfg, ca) == TQKV_ABI_MISMATCH);
    CHECK(tqkv_abi_check(TQKV_ABI_VERSION, cb, qz, cfg + 8, ca) == TQKV_ABI_MISMATCH);
    CHECK(tqkv_abi_check(TQKV_ABI_VERSION, cb, qz, cfg, ca + 8) == TQKV_ABI_MISMATCH);
    for (int s = 0; s <= TQKV_ABI_MISMATCH; s++) {
        const char *m = tqkv_status_str(s);
        CHECK(m != NULL && strlen(m) > 0);
        CHECK(strcmp(m, "unknown status") != 0);
    }
    CHECK(strcmp(tqkv_status_str(999), "unknown status") == 0);
    int32_t best = tqkv_backend_detect();
    CHECK(tqkv_backend_is_available(best) == 1);
    CHECK(tqkv_backend_is_available(TQKV_BACKEND_SCALAR) == 1);
    CHECK(tqkv_backend_is_available(42) == 0);
    CHECK(strcmp(tqkv_backend_name(TQKV_BACKEND_SCALAR), "scalar") == 0);
    CHECK(tqkv_backend_name(42) == NULL);
    printf("backend %s\n", tqkv_backend_name(best));
}

static void test_wht_and_rotation(void) {
    float x[256], y[256], z[256];
    for (int i = 0; i < 256; i++) x[i] = (float)((i * 37) % 17) - 8.0f;
    memcpy(y, x, sizeof x);
    naive_fwht(y, 256);
    for (int b = 0; b < 4; b++) {
        if (!tqkv_backend_is_available(b)) continue;
        memcpy(z, x, sizeof x);
        OK(tqkv_fwht_on(b, z, 256));
        CHECK(memcmp(y, z, sizeof y) == 0);
    }
    memcpy(z, x, sizeof x);
    OK(tqkv_fwht(z, 256));
    CHECK(memcmp(y, z, sizeof y) == 0);
    /* Rows: 4 rows of 64. */
    memcpy(z, x, sizeof x);
    OK(tqkv_fwht_rows(z, 256, 64));
    for (int r = 0; r < 4; r++) {
        float row[64];
        memcpy(row, x + 64 * r, sizeof row);
        naive_fwht(row, 64);
        CHECK(memcmp(row, z + 64 * r, sizeof row) == 0);
    }
    CHECK(tqkv_fwht(z, 3) == TQKV_NOT_POWER_OF_TWO);
    CHECK(tqkv_fwht(NULL, 8) == TQKV_NULL_POINTER);
    CHECK(tqkv_fwht_rows(z, 100, 64) == TQKV_RAGGED_ROWS);
    CHECK(tqkv_fwht_on(7, z, 8) == TQKV_INVALID_PARAMETER);
    /* Rotation: bit-identical to the documented recipe, and invertible. */
    memcpy(y, x, sizeof x);
    naive_rotate(y, 256, 77);
    memcpy(z, x, sizeof x);
    OK(tqkv_rotate(z, 256, 77));
    CHECK(memcmp(y, z, sizeof y) == 0);
    OK(tqkv_unrotate(z, 256, 77));
    for (int i = 0; i < 256; i++) CHECK(fabsf(z[i] - x[i]) < 1e-5f);
    CHECK(tqkv_rotate(z, 100, 1) == TQKV_INVALID_DIM);
    printf("rotate %016llx\n", (unsigned long long)fnv1a((const uint8_t *)y, sizeof y));
    /* Head dims that are not powers of two: a Williamson product (96 = 12·8) and
     * the block-diagonal construction (104); the same bits as Rust's. */
    for (int d = 96; d <= 104; d += 8) {
        memcpy(z, x, d * sizeof(float));
        OK(tqkv_rotate(z, d, 77));
        printf("rotate%d %016llx\n", d, (unsigned long long)fnv1a((const uint8_t *)z, d * sizeof(float)));
        OK(tqkv_unrotate(z, d, 77));
        for (int i = 0; i < d; i++) CHECK(fabsf(z[i] - x[i]) < 1e-5f);
    }
}

static void test_codebooks(void) {
    uint8_t idx[100], back[100], packed[100];
    for (int bits = 1; bits <= 8; bits++) {
        for (int i = 0; i < 100; i++) idx[i] = (uint8_t)((i * 7 + 3) % (1 << bits));
        size_t len = tqkv_packed_len(100, (uint8_t)bits);
        CHECK(len == (size_t)(100 * bits + 7) / 8);
        OK(tqkv_pack((uint8_t)bits, idx, 100, packed, len));
        OK(tqkv_unpack((uint8_t)bits, packed, len, back, 100));
        CHECK(memcmp(idx, back, 100) == 0);
        CHECK(tqkv_pack((uint8_t)bits, idx, 100, packed, len - 1) == TQKV_BUFFER_TOO_SHORT);
    }
    CHECK(tqkv_pack(0, idx, 1, packed, 1) == TQKV_INVALID_BITS);
    idx[0] = 9;
    CHECK(tqkv_pack(3, idx, 1, packed, 1) == TQKV_INDEX_OUT_OF_RANGE);

    tqkv_codebook cb, g;
    float c[256];
    size_t count = 0;
    double mse = 0;
    OK(tqkv_codebook_lloyd_max(&cb, 128, 4));
    OK(tqkv_codebook_centroids(&cb, c, 256, &count, &mse));
    CHECK(count == 16);
    CHECK(mse > pow(4.0, -4) && mse < sqrt(3.0) * 3.14159265358979 / 2 * pow(4.0, -4));
    for (size_t i = 1; i < count; i++) CHECK(c[i - 1] < c[i]);
    CHECK(tqkv_codebook_centroids(&cb, c, 15, &count, NULL) == TQKV_BUFFER_TOO_SHORT);
    OK(tqkv_codebook_gaussian(&g, 2));
    OK(tqkv_codebook_centroids(&g, c + 100, 4, &count, NULL));
    CHECK(count == 4 && fabsf(c[103] - 1.5104f) < 1e-3f);
    CHECK(tqkv_codebook_lloyd_max(&cb, 128, 9) == TQKV_INVALID_BITS);
    OK(tqkv_codebook_lloyd_max(&cb, 128, 4));

    /* quantise, pack, dequantise, dot, dot_rows against plain C. */
    float x[128], q[128], deq[128], scores[3];
    uint8_t qi[128], rows[3 * 64];
    for (int i = 0; i < 128; i++) {
        x[i] = ((float)((i * 29) % 41) - 20.0f) / 160.0f;
        q[i] = ((float)((i * 11) % 9) - 4.0f) / 2.0f;
    }
    OK(tqkv_quantize(&cb, x, 128, qi));
    for (int i = 0; i < 128; i++) {
        float best = fabsf(x[i] - c[qi[i]]);
        for (int k = 0; k < 16; k++) CHECK(fabsf(x[i] - c[k]) >= best);
    }
    OK(tqkv_quantize_packed(&cb, x, 128, rows, 64));
    OK(tqkv_pack(4, qi, 128, packed, 64));
    CHECK(memcmp(rows, packed, 64) == 0);
    OK(tqkv_dequantize(&cb, rows, 64, deq, 128));
    double want = 0;
    for (int i = 0; i < 128; i++) {
        CHECK(deq[i] == c[qi[i]]);
        want += (double)q[i] * deq[i];
    }
    float got = 0;
    OK(tqkv_dot(&cb, q, 128, rows, 64, &got));
    CHECK(fabs(got - want) <= 1e-5 * fabs(want) + 1e-6);
    memcpy(rows + 64, rows, 64);
    memcpy(rows + 128, rows, 64);
    OK(tqkv_dot_rows(&cb, q, 128, rows, sizeof rows, 64, scores, 3));
    for (int r = 0; r < 3; r++) CHECK(fabs(scores[r] - want) <= 1e-5 * fabs(want) + 1e-6);
    CHECK(tqkv_dot(&cb, q, 128, rows, 63, &got) == TQKV_BUFFER_TOO_SHORT);
    printf("codes %016llx dot %08lx\n", (unsigned long long)fnv1a(rows, 64),
           (unsigned long)bits_of(got));
    /* An object that was never initialised is refused. */
    tqkv_codebook junk;
    memset(&junk, 0, sizeof junk);
    CHECK(tqkv_dot(&junk, q, 128, rows, 64, &got) == TQKV_INVALID_HANDLE);
}

static void test_quantizers(void) {
    static tqkv_quantizer qz, k, v;
    float x[64], y[64];
    uint8_t code[256];
    size_t len = 0;
    double bits = 0;
    for (int i = 0; i < 64; i++) x[i] = key_val(3, 1, i);
    OK(tqkv_quantizer_mse(&qz, 64, 4, 5, TQKV_NORM_F16));
    OK(tqkv_quantizer_info(&qz, &len, &bits));
    CHECK(len == 2 + 32 && bits == 4.0 + 16.0 / 64);
    OK(tqkv_encode(&qz, x, 64, code, len));
    OK(tqkv_decode(&qz, code, len, y, 64));
    double err = 0, nx = 0;
    for (int i = 0; i < 64; i++) {
        err += (double)(x[i] - y[i]) * (x[i] - y[i]);
        nx += (double)x[i] * x[i];
    }
    CHECK(err / nx < 0.05);
    printf("mse %016llx\n", (unsigned long long)fnv1a(code, len));
    OK(tqkv_quantizer_prod(&qz, 64, 3, 5, TQKV_PROJECTION_HADAMARD, TQKV_NORM_F32));
    OK(tqkv_quantizer_info(&qz, &len, NULL));
    CHECK(len == 8 + 16 + 8);
    OK(tqkv_encode(&qz, x, 64, code, len));
    OK(tqkv_decode(&qz, code, len, y, 64));
    printf("prod %016llx\n", (unsigned long long)fnv1a(code, len));
    OK(tqkv_quantizer_baseline(&qz, 64, 3, TQKV_NORM_F16));
    OK(tqkv_quantizer_info(&qz, &len, NULL));
    OK(tqkv_encode(&qz, x, 64, code, len));
    printf("baseline %016llx\n", (unsigned long long)fnv1a(code, len));
    for (uint32_t s = 0; s < 3; s++) {
        OK(tqkv_scheme_quantizers(s, 4, 64, 9, TQKV_PROJECTION_HADAMARD, &k, &v));
        OK(tqkv_quantizer_info(&v, &len, &bits));
        OK(tqkv_encode(&v, x, 64, code, len));
        printf("scheme %u v %016llx bits %.4f\n", s, (unsigned long long)fnv1a(code, len), bits);
    }
    CHECK(tqkv_scheme_quantizers(3, 4, 64, 9, 1, &k, &v) == TQKV_INVALID_PARAMETER);
    CHECK(tqkv_scheme_quantizers(1, 1, 64, 9, 1, &k, &v) == TQKV_INVALID_BITS);
    CHECK(tqkv_quantizer_mse(&qz, 100, 4, 1, 0) == TQKV_INVALID_DIM);
    x[5] = NAN;
    CHECK(tqkv_encode(&k, x, 64, code, sizeof code) == TQKV_NON_FINITE);
    CHECK(tqkv_encode(&k, x, 63, code, sizeof code) == TQKV_LENGTH_MISMATCH);
}

/* Attention over the decoded keys and values, in double. */
static void slow_attention(const tqkv_cache *cache, const tqkv_quantizer *kq,
                           const tqkv_quantizer *vq, size_t head, size_t klen, size_t vlen,
                           int ntok, const float *q, double *out) {
    double s[CAPACITY], m = -INFINITY, z = 0;
    float kd[DIM], vd[DIM];
    uint8_t code[1024];
    CHECK(klen <= sizeof code && vlen <= sizeof code);
    for (int t = 0; t < ntok; t++) {
        OK(tqkv_cache_token(cache, 0, head, (size_t)t, code, klen));
        OK(tqkv_decode(kq, code, klen, kd, DIM));
        double dot = 0;
        for (int j = 0; j < DIM; j++) dot += (double)q[j] * kd[j];
        s[t] = dot / sqrt((double)DIM);
        if (s[t] > m) m = s[t];
    }
    for (int j = 0; j < DIM; j++) out[j] = 0;
    for (int t = 0; t < ntok; t++) {
        double p = exp(s[t] - m);
        z += p;
        OK(tqkv_cache_token(cache, 1, head, (size_t)t, code, vlen));
        OK(tqkv_decode(vq, code, vlen, vd, DIM));
        for (int j = 0; j < DIM; j++) out[j] += p * vd[j];
    }
    for (int j = 0; j < DIM; j++) out[j] /= z;
    /* Out of range: no such token, no such side, too short a buffer. */
    CHECK(tqkv_cache_token(cache, 0, head, (size_t)ntok, code, klen) != TQKV_OK);
    CHECK(tqkv_cache_token(cache, 2, head, 0, code, klen) != TQKV_OK);
    CHECK(tqkv_cache_token(cache, 0, head, 0, code, klen - 1) != TQKV_OK);
}

static void test_cache(void) {
    tqkv_cache_config cfg = {TQKV_SCHEME_KQV, 4, HEADS, DIM, CAPACITY,
                                TQKV_PROJECTION_HADAMARD, TQKV_NORM_F16, 0, 42, 0, 0, 0, 0};
    size_t need = 0;
    OK(tqkv_cache_bytes_needed(&cfg, &need));
    uint8_t *buf = calloc(need, 1);
    static tqkv_cache cache, again;
    OK(tqkv_cache_create(&cache, &cfg, buf, need));
    float k[HEADS * DIM], v[HEADS * DIM];
    for (int t = 0; t < TOKENS; t++) {
        for (int h = 0; h < HEADS; h++)
            for (int j = 0; j < DIM; j++) {
                k[h * DIM + j] = key_val(t, h, j);
                v[h * DIM + j] = value_val(t, h, j);
            }
        OK(tqkv_cache_push(&cache, k, HEADS * DIM, v, HEADS * DIM));
    }
    CHECK(tqkv_cache_push(&cache, k, HEADS * DIM - 1, v, HEADS * DIM) == TQKV_LENGTH_MISMATCH);
    size_t len = 0, cap = 0, scratch_len = 0;
    OK(tqkv_cache_info(&cache, &len, &cap, &scratch_len));
    CHECK(len == TOKENS && cap == CAPACITY && scratch_len > 0);
    size_t one_head = scratch_len;
    OK(tqkv_attend_scratch_len(&cache, 2 * DIM, &scratch_len));
    CHECK(scratch_len > one_head);
    CHECK(tqkv_attend_scratch_len(&cache, DIM + 1, &scratch_len) == TQKV_LENGTH_MISMATCH);
    OK(tqkv_attend_scratch_len(&cache, 2 * DIM, &scratch_len));
    printf("cache %016llx\n", (unsigned long long)fnv1a(buf, need));

    /* Two query heads sharing KV head 1. */
    float q[2 * DIM], out[2 * DIM];
    float *scratch = malloc(scratch_len * sizeof(float));
    for (int i = 0; i < 2 * DIM; i++) q[i] = query_val(i);
    OK(tqkv_attend(&cache, 1, q, 2 * DIM, out, scratch, scratch_len));
    /* The fused path equals attention over the decoded cache. */
    static tqkv_quantizer kq, vq;
    OK(tqkv_scheme_quantizers(TQKV_SCHEME_KQV, 4, DIM, 42, TQKV_PROJECTION_HADAMARD, &kq, &vq));
    size_t klen = 0, vlen = 0;
    OK(tqkv_quantizer_info(&kq, &klen, NULL));
    OK(tqkv_quantizer_info(&vq, &vlen, NULL));
    for (int g = 0; g < 2; g++) {
        double want[DIM], scale = 0;
        slow_attention(&cache, &kq, &vq, 1, klen, vlen, TOKENS, q + g * DIM, want);
        for (int j = 0; j < DIM; j++) scale = fmax(scale, fabs(want[j]));
        for (int j = 0; j < DIM; j++) CHECK(fabs(out[g * DIM + j] - want[j]) <= 1e-4 * scale);
    }
    printf("attend");
    for (int i = 0; i < 2 * DIM; i++) printf(" %08lx", (unsigned long)bits_of(out[i]));
    printf("\n");

    /* Saved bytes reopen as the same cache; corrupted bytes are refused. */
    OK(tqkv_cache_open(&again, buf, need));
    OK(tqkv_cache_info(&again, &len, NULL, NULL));
    CHECK(len == TOKENS);
    float out2[2 * DIM];
    OK(tqkv_attend(&again, 1, q, 2 * DIM, out2, scratch, scratch_len));
    CHECK(memcmp(out, out2, sizeof out) == 0);
    /* Two positions of one query head each, in one pass: the second sees
     * every token, so it is the one-head attention of its query, within
     * the multi-query kernels' tolerance (they sum in another order: the
     * same bits on some backends and cache lengths only, e.g. not on AVX2,
     * nor on AVX-512 from 16 tokens on). */
    size_t limits[2] = {TOKENS / 2, TOKENS};
    OK(tqkv_attend_many(&cache, 1, q, 2 * DIM, limits, 2, out2, scratch, scratch_len));
    float one[DIM];
    OK(tqkv_attend(&cache, 1, q + DIM, DIM, one, scratch, scratch_len));
    for (int j = 0; j < DIM; j++) CHECK(fabs(out2[DIM + j] - one[j]) <= 1e-5 * fmax(1.0, fabs(one[j])));
    limits[0] = TOKENS + 1;
    CHECK(tqkv_attend_many(&cache, 1, q, 2 * DIM, limits, 2, out2, scratch, scratch_len) ==
          TQKV_INVALID_PARAMETER);
    /* Exact scoring is tqkv_attend_many; int8 scoring prints its bits (the
     * Rust reference prints the same) and stays near exact. */
    limits[0] = TOKENS;
    float many[2 * DIM];
    OK(tqkv_attend_many(&cache, 1, q, 2 * DIM, limits, 2, many, scratch, scratch_len));
    OK(tqkv_attend_many_scored(&cache, 1, TQKV_SCORING_EXACT, q, 2 * DIM, limits, 2, out2,
                               scratch, scratch_len));
    CHECK(memcmp(out2, many, sizeof many) == 0);
    OK(tqkv_attend_many_scored(&cache, 1, TQKV_SCORING_INT8, q, 2 * DIM, limits, 2, out2,
                               scratch, scratch_len));
    printf("int8");
    for (int i = 0; i < 2 * DIM; i++) {
        printf(" %08lx", (unsigned long)bits_of(out2[i]));
        CHECK(fabsf(out2[i] - many[i]) <= 0.05f * (fabsf(many[i]) + 1.0f));
    }
    printf("\n");
    CHECK(tqkv_attend_many_scored(&cache, 1, 2, q, 2 * DIM, limits, 2, out2, scratch,
                                  scratch_len) == TQKV_INVALID_PARAMETER);
    CHECK(tqkv_attend_many_scored(NULL, 1, TQKV_SCORING_INT8, q, 2 * DIM, limits, 2, out2,
                                  scratch, scratch_len) != TQKV_OK);

    /* One decode split in two (as two threads would), merged: attention
     * over all the tokens. */
    size_t state_len = 0;
    OK(tqkv_partial_len(&cache, 2 * DIM, &state_len));
    CHECK(tqkv_partial_len(&cache, DIM + 1, &state_len) == TQKV_LENGTH_MISMATCH);
    OK(tqkv_partial_len(&cache, 2 * DIM, &state_len));
    float *front = malloc(2 * state_len * sizeof(float)), *back = front + state_len;
    OK(tqkv_partial_init(&cache, 2 * DIM, front, state_len));
    OK(tqkv_partial_init(&cache, 2 * DIM, back, state_len));
    OK(tqkv_attend_partial(&cache, 1, q, 2 * DIM, 0, TOKENS / 3, front, state_len, scratch,
                           scratch_len));
    OK(tqkv_attend_partial(&cache, 1, q, 2 * DIM, TOKENS / 3, TOKENS, back, state_len, scratch,
                           scratch_len));
    OK(tqkv_partial_merge(&cache, 2 * DIM, front, back, state_len));
    OK(tqkv_partial_finish(&cache, 2 * DIM, front, state_len, out2, scratch, scratch_len));
    /* (A plain comparison: gcc 12 for aarch64 crashes vectorising an fmax
     * reduction over floats here.) */
    float peak = 0;
    for (int i = 0; i < 2 * DIM; i++)
        if (fabsf(out[i]) > peak) peak = fabsf(out[i]);
    for (int i = 0; i < 2 * DIM; i++) CHECK(fabsf(out2[i] - out[i]) <= 1e-4f * peak);
    printf("partial");
    for (int i = 0; i < 2 * DIM; i++) printf(" %08lx", (unsigned long)bits_of(out2[i]));
    printf("\n");
    /* An empty state finishes to zeros; an empty range, a range past the
     * tokens, a short state, a state merged with itself are refused. */
    OK(tqkv_partial_init(&cache, 2 * DIM, back, state_len));
    OK(tqkv_partial_finish(&cache, 2 * DIM, back, state_len, out2, scratch, scratch_len));
    for (int i = 0; i < 2 * DIM; i++) CHECK(out2[i] == 0.0f);
    CHECK(tqkv_attend_partial(&cache, 1, q, 2 * DIM, 2, 2, back, state_len, scratch,
                              scratch_len) == TQKV_INVALID_PARAMETER);
    CHECK(tqkv_attend_partial(&cache, 1, q, 2 * DIM, 0, TOKENS + 1, back, state_len, scratch,
                              scratch_len) == TQKV_INVALID_PARAMETER);
    CHECK(tqkv_attend_partial(&cache, 1, q, 2 * DIM, 0, 1, back, state_len - 1, scratch,
                              scratch_len) == TQKV_BUFFER_TOO_SHORT);
    CHECK(tqkv_partial_merge(&cache, 2 * DIM, front, front, state_len) ==
          TQKV_INVALID_PARAMETER);
    CHECK(tqkv_partial_merge(&cache, 2 * DIM, front + 1, front, state_len) ==
          TQKV_INVALID_PARAMETER);
    CHECK(tqkv_partial_finish(&cache, 2 * DIM, front, state_len, out2, scratch, 1) ==
          TQKV_BUFFER_TOO_SHORT);
    CHECK(tqkv_partial_init(&cache, 0, front, state_len) == TQKV_LENGTH_MISMATCH);
    free(front);
    uint8_t *bad = malloc(need);
    memcpy(bad, buf, need);
    bad[0] ^= 0xFF;
    CHECK(tqkv_cache_open(&again, bad, need) == TQKV_CORRUPT_CACHE);
    memcpy(bad, buf, need);
    CHECK(tqkv_cache_open(&again, bad, need - 1) == TQKV_CORRUPT_CACHE);
    CHECK(tqkv_attend(&cache, 2, q, DIM, out, scratch, scratch_len) == TQKV_INVALID_DIM);
    CHECK(tqkv_attend(&cache, 0, q, DIM, out, scratch, 1) == TQKV_BUFFER_TOO_SHORT);
    cfg.value_dim = 100; /* not a supported head dimension */
    CHECK(tqkv_cache_bytes_needed(&cfg, &need) == TQKV_INVALID_DIM);
    free(bad);
    free(scratch);
    free(buf);
}

/* Keys and values with their own quantiser and bits: 4-bit MSE keys with
 * 3-bit MSE values take fewer bytes than KQV n = 4 and attend the same way. */
static void test_custom_cache(void) {
    tqkv_cache_config cfg = {TQKV_SCHEME_CUSTOM, 0, 1, 64, 4, TQKV_PROJECTION_HADAMARD,
                             TQKV_NORM_F16, 0, 7, TQKV_QUANTIZER_MSE, 4,
                             TQKV_QUANTIZER_MSE, 3};
    tqkv_cache_config kqv = {TQKV_SCHEME_KQV, 4, 1, 64, 4, TQKV_PROJECTION_HADAMARD,
                             TQKV_NORM_F16, 0, 7, 0, 0, 0, 0};
    size_t need = 0, need_kqv = 0;
    OK(tqkv_cache_bytes_needed(&cfg, &need));
    OK(tqkv_cache_bytes_needed(&kqv, &need_kqv));
    CHECK(need < need_kqv);
    uint8_t *buf = calloc(need, 1);
    static tqkv_cache cache, again;
    OK(tqkv_cache_create(&cache, &cfg, buf, need));
    float k[64], v[64], q[64], out[64], out2[64];
    for (int t = 0; t < 4; t++) {
        for (int j = 0; j < 64; j++) {
            k[j] = key_val(t, 0, j);
            v[j] = value_val(t, 0, j);
        }
        OK(tqkv_cache_push(&cache, k, 64, v, 64));
    }
    size_t len = 0, scratch_len = 0;
    OK(tqkv_cache_info(&cache, &len, NULL, &scratch_len));
    CHECK(len == 4);
    float *scratch = malloc(scratch_len * sizeof(float));
    for (int i = 0; i < 64; i++) q[i] = query_val(i);
    OK(tqkv_attend(&cache, 0, q, 64, out, scratch, scratch_len));
    OK(tqkv_cache_open(&again, buf, need));
    OK(tqkv_attend(&again, 0, q, 64, out2, scratch, scratch_len));
    CHECK(memcmp(out, out2, sizeof out) == 0);
    /* The same four tokens in one batch: the same bytes. */
    float kb[4 * 64], vb[4 * 64];
    for (int t = 0; t < 4; t++)
        for (int j = 0; j < 64; j++) {
            kb[t * 64 + j] = key_val(t, 0, j);
            vb[t * 64 + j] = value_val(t, 0, j);
        }
    uint8_t *batch_buf = calloc(need, 1);
    static tqkv_cache batch;
    OK(tqkv_cache_create(&batch, &cfg, batch_buf, need));
    CHECK(tqkv_cache_push_batch(&batch, kb, 4 * 64 - 1, vb, 4 * 64 - 1) == TQKV_RAGGED_ROWS);
    OK(tqkv_cache_push_batch(&batch, kb, 4 * 64, vb, 4 * 64));
    CHECK(memcmp(batch_buf, buf, need) == 0);
    free(batch_buf);
    /* Each field is read where it belongs, and nowhere else. */
    size_t n = 0;
    cfg.budget = 4;
    CHECK(tqkv_cache_bytes_needed(&cfg, &n) == TQKV_INVALID_PARAMETER);
    cfg.budget = 0;
    cfg.key_quantizer = 7;
    CHECK(tqkv_cache_bytes_needed(&cfg, &n) == TQKV_INVALID_PARAMETER);
    cfg.key_quantizer = TQKV_QUANTIZER_MSE;
    cfg.value_quantizer = TQKV_QUANTIZER_PROD;
    cfg.value_bits = 1;
    CHECK(tqkv_cache_bytes_needed(&cfg, &n) == TQKV_INVALID_BITS);
    kqv.key_bits = 4;
    CHECK(tqkv_cache_bytes_needed(&kqv, &n) == TQKV_INVALID_PARAMETER);
    free(scratch);
    free(buf);
}

/* Keys wider than values (multi-head latent attention's shape, scaled
 * down): keys of 96 (not a power of two), values of 64, two query heads.
 * Every token has the same value, so attention returns that value whatever
 * the scores, up to the 4-bit quantisation; the output is two heads of 64
 * and not one float more. */
static void test_value_dim_cache(void) {
    tqkv_cache_config cfg = {TQKV_SCHEME_KQV, 4, 1, 96, 6, TQKV_PROJECTION_HADAMARD,
                             TQKV_NORM_F16, 64, 3, 0, 0, 0, 0};
    size_t need = 0;
    OK(tqkv_cache_bytes_needed(&cfg, &need));
    uint8_t *buf = calloc(need, 1);
    static tqkv_cache cache, again;
    OK(tqkv_cache_create(&cache, &cfg, buf, need));
    float k[96], v[64];
    for (int j = 0; j < 64; j++) v[j] = value_val(1, 0, j);
    for (int t = 0; t < 6; t++) {
        for (int j = 0; j < 96; j++) k[j] = key_val(t, 0, j);
        CHECK(tqkv_cache_push(&cache, k, 96, v, 96) == TQKV_LENGTH_MISMATCH);
        OK(tqkv_cache_push(&cache, k, 96, v, 64));
    }
    float q[2 * 96], out[2 * 64 + 1];
    for (int i = 0; i < 2 * 96; i++) q[i] = query_val(i % 96) * (i < 96 ? 1.0f : -0.5f);
    size_t scratch_len = 0;
    OK(tqkv_attend_scratch_len(&cache, 2 * 96, &scratch_len));
    float *scratch = malloc(scratch_len * sizeof(float));
    out[2 * 64] = 12345.0f;
    OK(tqkv_attend(&cache, 0, q, 2 * 96, out, scratch, scratch_len));
    CHECK(out[2 * 64] == 12345.0f);
    double err = 0, norm = 0;
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < 64; j++) {
            err += (out[h * 64 + j] - v[j]) * (out[h * 64 + j] - v[j]);
            norm += v[j] * v[j];
        }
    CHECK(err < 0.05 * norm); /* 4-bit MSE values: about 1% */
    OK(tqkv_cache_open(&again, buf, need));
    float out2[2 * 64];
    OK(tqkv_attend(&again, 0, q, 2 * 96, out2, scratch, scratch_len));
    CHECK(memcmp(out, out2, sizeof out2) == 0);
    free(scratch);
    free(buf);
}

/* What a sweep of hostile calls found: every entry point with NULL, zero,
 * overflowing and misaligned arguments returns a status (never a crash,
 * never undefined behaviour in the library), checked before any memory is
 * touched. A debug build of the library (overflow checks on) runs this too. */
#define EXPECT(call, want)                                                 \
    do {                                                                   \
        tqkv_status s_ = (call);                                           \
        if (s_ != (want)) {                                                \
            fprintf(stderr, "%s:%d: %s -> %d (%s), want %d\n", __FILE__,   \
                    __LINE__, #call, (int)s_, tqkv_status_str(s_),         \
                    (int)(want));                                          \
            failures++;                                                    \
        }                                                                  \
    } while (0)

static void test_hostile(void) {
    /* Aligned storage, and pointers one byte past an alignment boundary. */
    static uint64_t store[4096];
    float *f = (float *)store;
    uint8_t *b = (uint8_t *)store;
    float *mis = (float *)(void *)((uintptr_t)store + 1);
    size_t *mis_size = (size_t *)(void *)((uintptr_t)store + 1);
    const size_t huge_f = SIZE_MAX / 2; /* floats: overflows n * 4 */
    const size_t huge_b = SIZE_MAX;     /* bytes: past PTRDIFF_MAX */
    static tqkv_codebook cb;
    static tqkv_quantizer qz;
    static tqkv_cache cache;
    size_t len = 0;
    float r = 0;

    /* The transform and rotation. */
    EXPECT(tqkv_fwht(NULL, 8), TQKV_NULL_POINTER);
    EXPECT(tqkv_fwht(NULL, 0), TQKV_NOT_POWER_OF_TWO);
    EXPECT(tqkv_fwht(f, huge_f), TQKV_TOO_LONG);
    EXPECT(tqkv_fwht(mis, 8), TQKV_MISALIGNED);
    EXPECT(tqkv_fwht_on(TQKV_BACKEND_SCALAR, mis, 8), TQKV_MISALIGNED);
    EXPECT(tqkv_fwht_on(TQKV_BACKEND_SCALAR, f, huge_f), TQKV_TOO_LONG);
    EXPECT(tqkv_fwht_on(99, f, 8), TQKV_INVALID_PARAMETER);
    EXPECT(tqkv_fwht_rows(mis, 16, 8), TQKV_MISALIGNED);
    EXPECT(tqkv_fwht_rows(f, huge_f, 8), TQKV_TOO_LONG);
    EXPECT(tqkv_fwht_rows(NULL, 16, 8), TQKV_NULL_POINTER);
    EXPECT(tqkv_rotate(mis, 64, 1), TQKV_MISALIGNED);
    EXPECT(tqkv_rotate(f, huge_f, 1), TQKV_INVALID_DIM); /* dim first */
    EXPECT(tqkv_rotate(NULL, 64, 1), TQKV_NULL_POINTER);
    EXPECT(tqkv_unrotate(mis, 64, 1), TQKV_MISALIGNED);
    EXPECT(tqkv_unrotate(f, huge_f, 1), TQKV_INVALID_DIM);

    /* Packing: byte arrays only overflow. */
    CHECK(tqkv_packed_len(SIZE_MAX, 8) == 0 || tqkv_packed_len(SIZE_MAX, 8) == SIZE_MAX);
    EXPECT(tqkv_pack(3, b, huge_b, b, 8), TQKV_TOO_LONG);
    EXPECT(tqkv_pack(3, NULL, 8, b, 8), TQKV_NULL_POINTER);
    EXPECT(tqkv_unpack(3, b, huge_b, b, 8), TQKV_TOO_LONG);
    EXPECT(tqkv_unpack(3, b, 8, NULL, 8), TQKV_NULL_POINTER);

    /* Codebooks and their kernels. */
    EXPECT(tqkv_codebook_lloyd_max(NULL, 64, 3), TQKV_NULL_POINTER);
    EXPECT(tqkv_codebook_lloyd_max((tqkv_codebook *)(void *)mis, 64, 3), TQKV_MISALIGNED);
    EXPECT(tqkv_codebook_gaussian((tqkv_codebook *)(void *)mis, 3), TQKV_MISALIGNED);
    OK(tqkv_codebook_lloyd_max(&cb, 64, 3));
    EXPECT(tqkv_codebook_centroids(&cb, mis, 8, &len, NULL), TQKV_MISALIGNED);
    EXPECT(tqkv_codebook_centroids(&cb, f, 8, mis_size, NULL), TQKV_MISALIGNED);
    EXPECT(tqkv_codebook_centroids((const tqkv_codebook *)(void *)mis, f, 8, &len, NULL),
           TQKV_MISALIGNED);
    EXPECT(tqkv_quantize(&cb, mis, 8, b), TQKV_MISALIGNED);
    EXPECT(tqkv_quantize(&cb, f, huge_f, b), TQKV_TOO_LONG);
    EXPECT(tqkv_quantize_packed(&cb, mis, 8, b, 8), TQKV_MISALIGNED);
    EXPECT(tqkv_quantize_packed(&cb, f, 8, b, huge_b), TQKV_TOO_LONG);
    EXPECT(tqkv_dequantize(&cb, b, 8, mis, 8), TQKV_MISALIGNED);
    EXPECT(tqkv_dequantize(&cb, b, 8, f, huge_f), TQKV_TOO_LONG);
    EXPECT(tqkv_dot(&cb, mis, 8, b, 8, &r), TQKV_MISALIGNED);
    EXPECT(tqkv_dot(&cb, f, 8, b, 8, (float *)(void *)mis), TQKV_MISALIGNED);
    EXPECT(tqkv_dot(&cb, f, huge_f, b, 8, &r), TQKV_TOO_LONG);
    EXPECT(tqkv_dot_rows(&cb, mis, 8, b, 8, 3, f, 1), TQKV_MISALIGNED);
    EXPECT(tqkv_dot_rows(&cb, f, 8, b, huge_b, 3, f + 64, 1), TQKV_TOO_LONG);
    /* One row, strides far past any buffer: no size arithmetic overflows. */
    memset(store, 0, sizeof store);
    OK(tqkv_dot_rows(&cb, f, 8, b + 64, 3, (size_t)1 << 60, f + 64, 1));
    OK(tqkv_dot_rows(&cb, f, 8, b + 64, 3, SIZE_MAX, f + 64, 1));
    /* Non-finite queries and inputs are refused like encode's. */
    f[0] = NAN;
    EXPECT(tqkv_quantize(&cb, f, 8, b + 1024), TQKV_NON_FINITE);
    EXPECT(tqkv_dot(&cb, f, 8, b + 1024, 8, &r), TQKV_NON_FINITE);
    f[0] = 0;

    /* Quantisers. */
    EXPECT(tqkv_quantizer_mse(NULL, 64, 3, 1, TQKV_NORM_F16), TQKV_NULL_POINTER);
    EXPECT(tqkv_quantizer_mse((tqkv_quantizer *)(void *)mis, 64, 3, 1, TQKV_NORM_F16),
           TQKV_MISALIGNED);
    EXPECT(tqkv_quantizer_prod((tqkv_quantizer *)(void *)mis, 64, 3, 1,
                               TQKV_PROJECTION_HADAMARD, TQKV_NORM_F16),
           TQKV_MISALIGNED);
    EXPECT(tqkv_quantizer_baseline((tqkv_quantizer *)(void *)mis, 64, 3, TQKV_NORM_F16),
           TQKV_MISALIGNED);
    EXPECT(tqkv_scheme_quantizers(TQKV_SCHEME_KQV, 4, 64, 1, TQKV_PROJECTION_HADAMARD,
                                  (tqkv_quantizer *)(void *)mis, &qz),
           TQKV_MISALIGNED);
    OK(tqkv_quantizer_mse(&qz, 64, 3, 1, TQKV_NORM_F16));
    EXPECT(tqkv_quantizer_info(&qz, mis_size, NULL), TQKV_MISALIGNED);
    EXPECT(tqkv_encode(&qz, mis, 64, b, 64), TQKV_MISALIGNED);
    EXPECT(tqkv_encode(&qz, f, huge_f, b, 64), TQKV_TOO_LONG);
    EXPECT(tqkv_decode(&qz, b, 64, mis, 64), TQKV_MISALIGNED);
    EXPECT(tqkv_decode(&qz, b, huge_b, f, 64), TQKV_TOO_LONG);
    /* A stored norm no encoder writes (f16 NaN) is refused by decode. */
    memset(b, 0, 64);
    b[0] = 0x00;
    b[1] = 0x7E;
    EXPECT(tqkv_decode(&qz, b, 64, f + 64, 64), TQKV_NON_FINITE);

    /* The cache and attention. */
    tqkv_cache_config cfg = {TQKV_SCHEME_KQV, 4, 1, 64, 4,
                             TQKV_PROJECTION_HADAMARD, TQKV_NORM_F16, 0, 1, 0, 0, 0, 0};
    EXPECT(tqkv_cache_bytes_needed(&cfg, mis_size), TQKV_MISALIGNED);
    EXPECT(tqkv_cache_bytes_needed((const tqkv_cache_config *)(void *)mis, &len),
           TQKV_MISALIGNED);
    OK(tqkv_cache_bytes_needed(&cfg, &len));
    uint8_t *buf = calloc(len, 1);
    EXPECT(tqkv_cache_create(&cache, &cfg, buf, huge_b), TQKV_TOO_LONG);
    EXPECT(tqkv_cache_create((tqkv_cache *)(void *)mis, &cfg, buf, len), TQKV_MISALIGNED);
    EXPECT(tqkv_cache_create(&cache, &cfg, NULL, len), TQKV_NULL_POINTER);
    OK(tqkv_cache_create(&cache, &cfg, buf, len));
    EXPECT(tqkv_cache_open(&cache, buf, huge_b), TQKV_TOO_LONG);
    OK(tqkv_cache_open(&cache, buf, len));
    EXPECT(tqkv_cache_push(&cache, mis, 64, f, 64), TQKV_MISALIGNED);
    EXPECT(tqkv_cache_push(&cache, f, huge_f, f, 64), TQKV_TOO_LONG);
    EXPECT(tqkv_cache_push(&cache, f, 64, NULL, 64), TQKV_NULL_POINTER);
    OK(tqkv_cache_push(&cache, f, 64, f, 64));
    EXPECT(tqkv_cache_info(&cache, mis_size, NULL, NULL), TQKV_MISALIGNED);
    EXPECT(tqkv_cache_info((const tqkv_cache *)(void *)mis, &len, NULL, NULL),
           TQKV_MISALIGNED);
    EXPECT(tqkv_cache_token(&cache, 0, 0, 0, b, huge_b), TQKV_TOO_LONG);
    EXPECT(tqkv_cache_token(&cache, 0, 0, 7, b, 64), TQKV_INVALID_DIM);
    EXPECT(tqkv_cache_token(&cache, 0, 3, 0, b, 64), TQKV_INVALID_DIM);
    EXPECT(tqkv_cache_token(&cache, 2, 0, 0, b, 64), TQKV_INVALID_PARAMETER);
    EXPECT(tqkv_attend(&cache, 0, mis, 64, f, f + 64, 1024), TQKV_MISALIGNED);
    EXPECT(tqkv_attend(&cache, 0, f, 64, f + 128, mis, 1024), TQKV_MISALIGNED);
    EXPECT(tqkv_attend(&cache, 0, f, huge_f, f + 128, f + 256, 1024), TQKV_TOO_LONG);
    EXPECT(tqkv_attend(&cache, 0, f, 64, f + 128, f + 256, huge_f), TQKV_TOO_LONG);
    EXPECT(tqkv_attend(&cache, 0, NULL, 64, f + 128, f + 256, 1024), TQKV_NULL_POINTER);
    EXPECT(tqkv_attend(&cache, 0, f, 0, f + 128, f + 256, 1024), TQKV_LENGTH_MISMATCH);
    EXPECT(tqkv_attend(&cache, SIZE_MAX, f, 64, f + 128, f + 256, 1024), TQKV_INVALID_DIM);
    EXPECT(tqkv_partial_len(&cache, 64, NULL), TQKV_NULL_POINTER);
    EXPECT(tqkv_partial_len(&cache, 64, mis_size), TQKV_MISALIGNED);
    EXPECT(tqkv_partial_init(&cache, 64, NULL, 200), TQKV_NULL_POINTER);
    EXPECT(tqkv_partial_init(&cache, 64, mis, 200), TQKV_MISALIGNED);
    EXPECT(tqkv_partial_init(&cache, 64, f, huge_f), TQKV_TOO_LONG);
    EXPECT(tqkv_attend_partial(&cache, 0, f, 64, 0, 1, mis, 200, f + 1024, 1024),
           TQKV_MISALIGNED);
    EXPECT(tqkv_attend_partial(&cache, 0, f, 64, 0, 1, f + 256, huge_f, f + 1024, 1024),
           TQKV_TOO_LONG);
    EXPECT(tqkv_partial_merge(&cache, 64, f, NULL, 200), TQKV_NULL_POINTER);
    EXPECT(tqkv_partial_merge(&cache, 64, f, f + 256, huge_f), TQKV_INVALID_PARAMETER);
    EXPECT(tqkv_partial_finish(&cache, 64, f, huge_f, f + 512, f + 1024, 1024), TQKV_TOO_LONG);
    EXPECT(tqkv_partial_finish(&cache, 64, mis, 200, f + 512, f + 1024, 1024),
           TQKV_MISALIGNED);
    free(buf);
}

int main(void) {
    test_hostile();
    test_info();
    test_wht_and_rotation();
    test_codebooks();
    test_quantizers();
    test_cache();
    test_custom_cache();
    test_value_dim_cache();
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    fprintf(stderr, "all C API checks passed\n");
    return 0;
}
