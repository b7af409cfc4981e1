/*
 * Test of the C interface: every entry point of turbokv.h, checked against
 * plain C reference code (WHT, rotation, packing, dot products, attention
 * over decoded vectors) and against its documented errors. It also prints
 * a transcript of results (bytes as FNV-1a hashes, floats as bit patterns)
 * that `cargo run --release --example capi_reference` prints from Rust;
 * CI diffs the two.
 *
 *   make -C examples/c test    (builds the static library first)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "turbokv.h"

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
        turbokv_status s_ = (call);                                        \
        if (s_ != TURBOKV_OK) {                                            \
            fprintf(stderr, "%s:%d: %s -> %d (%s)\n", __FILE__, __LINE__,  \
                    #call, (int)s_, turbokv_status_str(s_));               \
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
    CHECK(strcmp(turbokv_version(), TURBOKV_VERSION) == 0);
    for (int s = 0; s <= TURBOKV_INTERNAL; s++) {
        const char *m = turbokv_status_str(s);
        CHECK(m != NULL && strlen(m) > 0);
        CHECK(strcmp(m, "unknown status") != 0);
    }
    CHECK(strcmp(turbokv_status_str(999), "unknown status") == 0);
    int32_t best = turbokv_backend_detect();
    CHECK(turbokv_backend_is_available(best) == 1);
    CHECK(turbokv_backend_is_available(TURBOKV_BACKEND_SCALAR) == 1);
    CHECK(turbokv_backend_is_available(42) == 0);
    CHECK(strcmp(turbokv_backend_name(TURBOKV_BACKEND_SCALAR), "scalar") == 0);
    CHECK(turbokv_backend_name(42) == NULL);
    printf("backend %s\n", turbokv_backend_name(best));
}

static void test_wht_and_rotation(void) {
    float x[256], y[256], z[256];
    for (int i = 0; i < 256; i++) x[i] = (float)((i * 37) % 17) - 8.0f;
    memcpy(y, x, sizeof x);
    naive_fwht(y, 256);
    for (int b = 0; b < 4; b++) {
        if (!turbokv_backend_is_available(b)) continue;
        memcpy(z, x, sizeof x);
        OK(turbokv_fwht_on(b, z, 256));
        CHECK(memcmp(y, z, sizeof y) == 0);
    }
    memcpy(z, x, sizeof x);
    OK(turbokv_fwht(z, 256));
    CHECK(memcmp(y, z, sizeof y) == 0);
    /* Rows: 4 rows of 64. */
    memcpy(z, x, sizeof x);
    OK(turbokv_fwht_rows(z, 256, 64));
    for (int r = 0; r < 4; r++) {
        float row[64];
        memcpy(row, x + 64 * r, sizeof row);
        naive_fwht(row, 64);
        CHECK(memcmp(row, z + 64 * r, sizeof row) == 0);
    }
    CHECK(turbokv_fwht(z, 3) == TURBOKV_NOT_POWER_OF_TWO);
    CHECK(turbokv_fwht(NULL, 8) == TURBOKV_NULL_POINTER);
    CHECK(turbokv_fwht_rows(z, 100, 64) == TURBOKV_RAGGED_ROWS);
    CHECK(turbokv_fwht_on(7, z, 8) == TURBOKV_INVALID_PARAMETER);
    /* Rotation: bit-identical to the documented recipe, and invertible. */
    memcpy(y, x, sizeof x);
    naive_rotate(y, 256, 77);
    memcpy(z, x, sizeof x);
    OK(turbokv_rotate(z, 256, 77));
    CHECK(memcmp(y, z, sizeof y) == 0);
    OK(turbokv_unrotate(z, 256, 77));
    for (int i = 0; i < 256; i++) CHECK(fabsf(z[i] - x[i]) < 1e-5f);
    CHECK(turbokv_rotate(z, 96, 1) == TURBOKV_NOT_POWER_OF_TWO);
    printf("rotate %016llx\n", (unsigned long long)fnv1a((const uint8_t *)y, sizeof y));
}

static void test_codebooks(void) {
    uint8_t idx[100], back[100], packed[100];
    for (int bits = 1; bits <= 8; bits++) {
        for (int i = 0; i < 100; i++) idx[i] = (uint8_t)((i * 7 + 3) % (1 << bits));
        size_t len = turbokv_packed_len(100, (uint8_t)bits);
        CHECK(len == (size_t)(100 * bits + 7) / 8);
        OK(turbokv_pack((uint8_t)bits, idx, 100, packed, len));
        OK(turbokv_unpack((uint8_t)bits, packed, len, back, 100));
        CHECK(memcmp(idx, back, 100) == 0);
        CHECK(turbokv_pack((uint8_t)bits, idx, 100, packed, len - 1) == TURBOKV_BUFFER_TOO_SHORT);
    }
    CHECK(turbokv_pack(0, idx, 1, packed, 1) == TURBOKV_INVALID_BITS);
    idx[0] = 9;
    CHECK(turbokv_pack(3, idx, 1, packed, 1) == TURBOKV_INDEX_OUT_OF_RANGE);

    turbokv_codebook cb, g;
    float c[256];
    size_t count = 0;
    double mse = 0;
    OK(turbokv_codebook_lloyd_max(&cb, 128, 4));
    OK(turbokv_codebook_centroids(&cb, c, 256, &count, &mse));
    CHECK(count == 16);
    CHECK(mse > pow(4.0, -4) && mse < sqrt(3.0) * 3.14159265358979 / 2 * pow(4.0, -4));
    for (size_t i = 1; i < count; i++) CHECK(c[i - 1] < c[i]);
    CHECK(turbokv_codebook_centroids(&cb, c, 15, &count, NULL) == TURBOKV_BUFFER_TOO_SHORT);
    OK(turbokv_codebook_gaussian(&g, 2));
    OK(turbokv_codebook_centroids(&g, c + 100, 4, &count, NULL));
    CHECK(count == 4 && fabsf(c[103] - 1.5104f) < 1e-3f);
    CHECK(turbokv_codebook_lloyd_max(&cb, 128, 9) == TURBOKV_INVALID_BITS);
    OK(turbokv_codebook_lloyd_max(&cb, 128, 4));

    /* quantise, pack, dequantise, dot, dot_rows against plain C. */
    float x[128], q[128], deq[128], scores[3];
    uint8_t qi[128], rows[3 * 64];
    for (int i = 0; i < 128; i++) {
        x[i] = ((float)((i * 29) % 41) - 20.0f) / 160.0f;
        q[i] = ((float)((i * 11) % 9) - 4.0f) / 2.0f;
    }
    OK(turbokv_quantize(&cb, x, 128, qi));
    for (int i = 0; i < 128; i++) {
        float best = fabsf(x[i] - c[qi[i]]);
        for (int k = 0; k < 16; k++) CHECK(fabsf(x[i] - c[k]) >= best);
    }
    OK(turbokv_quantize_packed(&cb, x, 128, rows, 64));
    OK(turbokv_pack(4, qi, 128, packed, 64));
    CHECK(memcmp(rows, packed, 64) == 0);
    OK(turbokv_dequantize(&cb, rows, 64, deq, 128));
    double want = 0;
    for (int i = 0; i < 128; i++) {
        CHECK(deq[i] == c[qi[i]]);
        want += (double)q[i] * deq[i];
    }
    float got = 0;
    OK(turbokv_dot(&cb, q, 128, rows, 64, &got));
    CHECK(fabs(got - want) <= 1e-5 * fabs(want) + 1e-6);
    memcpy(rows + 64, rows, 64);
    memcpy(rows + 128, rows, 64);
    OK(turbokv_dot_rows(&cb, q, 128, rows, sizeof rows, 64, scores, 3));
    for (int r = 0; r < 3; r++) CHECK(fabs(scores[r] - want) <= 1e-5 * fabs(want) + 1e-6);
    CHECK(turbokv_dot(&cb, q, 128, rows, 63, &got) == TURBOKV_BUFFER_TOO_SHORT);
    printf("codes %016llx dot %08lx\n", (unsigned long long)fnv1a(rows, 64),
           (unsigned long)bits_of(got));
    /* An object that was never initialised is refused. */
    turbokv_codebook junk;
    memset(&junk, 0, sizeof junk);
    CHECK(turbokv_dot(&junk, q, 128, rows, 64, &got) == TURBOKV_INVALID_HANDLE);
}

static void test_quantizers(void) {
    static turbokv_quantizer qz, k, v;
    float x[64], y[64];
    uint8_t code[256];
    size_t len = 0;
    double bits = 0;
    for (int i = 0; i < 64; i++) x[i] = key_val(3, 1, i);
    OK(turbokv_quantizer_mse(&qz, 64, 4, 5, TURBOKV_NORM_F16));
    OK(turbokv_quantizer_info(&qz, &len, &bits));
    CHECK(len == 2 + 32 && bits == 4.0 + 16.0 / 64);
    OK(turbokv_encode(&qz, x, 64, code, len));
    OK(turbokv_decode(&qz, code, len, y, 64));
    double err = 0, nx = 0;
    for (int i = 0; i < 64; i++) {
        err += (double)(x[i] - y[i]) * (x[i] - y[i]);
        nx += (double)x[i] * x[i];
    }
    CHECK(err / nx < 0.05);
    printf("mse %016llx\n", (unsigned long long)fnv1a(code, len));
    OK(turbokv_quantizer_prod(&qz, 64, 3, 5, TURBOKV_PROJECTION_HADAMARD, TURBOKV_NORM_F32));
    OK(turbokv_quantizer_info(&qz, &len, NULL));
    CHECK(len == 8 + 16 + 8);
    OK(turbokv_encode(&qz, x, 64, code, len));
    OK(turbokv_decode(&qz, code, len, y, 64));
    printf("prod %016llx\n", (unsigned long long)fnv1a(code, len));
    OK(turbokv_quantizer_baseline(&qz, 64, 3, TURBOKV_NORM_F16));
    OK(turbokv_quantizer_info(&qz, &len, NULL));
    OK(turbokv_encode(&qz, x, 64, code, len));
    printf("baseline %016llx\n", (unsigned long long)fnv1a(code, len));
    for (uint32_t s = 0; s < 3; s++) {
        OK(turbokv_scheme_quantizers(s, 4, 64, 9, TURBOKV_PROJECTION_HADAMARD, &k, &v));
        OK(turbokv_quantizer_info(&v, &len, &bits));
        OK(turbokv_encode(&v, x, 64, code, len));
        printf("scheme %u v %016llx bits %.4f\n", s, (unsigned long long)fnv1a(code, len), bits);
    }
    CHECK(turbokv_scheme_quantizers(3, 4, 64, 9, 1, &k, &v) == TURBOKV_INVALID_PARAMETER);
    CHECK(turbokv_scheme_quantizers(1, 1, 64, 9, 1, &k, &v) == TURBOKV_INVALID_BITS);
    CHECK(turbokv_quantizer_mse(&qz, 96, 4, 1, 0) == TURBOKV_INVALID_DIM);
    x[5] = NAN;
    CHECK(turbokv_encode(&k, x, 64, code, sizeof code) == TURBOKV_NON_FINITE);
    CHECK(turbokv_encode(&k, x, 63, code, sizeof code) == TURBOKV_LENGTH_MISMATCH);
}

/* Attention over the decoded keys and values, in double. */
static void slow_attention(const turbokv_cache *cache, const turbokv_quantizer *kq,
                           const turbokv_quantizer *vq, size_t head, size_t klen, size_t vlen,
                           int ntok, const float *q, double *out) {
    double s[CAPACITY], m = -INFINITY, z = 0;
    float kd[DIM], vd[DIM];
    uint8_t code[1024];
    CHECK(klen <= sizeof code && vlen <= sizeof code);
    for (int t = 0; t < ntok; t++) {
        OK(turbokv_cache_token(cache, 0, head, (size_t)t, code, klen));
        OK(turbokv_decode(kq, code, klen, kd, DIM));
        double dot = 0;
        for (int j = 0; j < DIM; j++) dot += (double)q[j] * kd[j];
        s[t] = dot / sqrt((double)DIM);
        if (s[t] > m) m = s[t];
    }
    for (int j = 0; j < DIM; j++) out[j] = 0;
    for (int t = 0; t < ntok; t++) {
        double p = exp(s[t] - m);
        z += p;
        OK(turbokv_cache_token(cache, 1, head, (size_t)t, code, vlen));
        OK(turbokv_decode(vq, code, vlen, vd, DIM));
        for (int j = 0; j < DIM; j++) out[j] += p * vd[j];
    }
    for (int j = 0; j < DIM; j++) out[j] /= z;
    /* Out of range: no such token, no such side, too short a buffer. */
    CHECK(turbokv_cache_token(cache, 0, head, (size_t)ntok, code, klen) != TURBOKV_OK);
    CHECK(turbokv_cache_token(cache, 2, head, 0, code, klen) != TURBOKV_OK);
    CHECK(turbokv_cache_token(cache, 0, head, 0, code, klen - 1) != TURBOKV_OK);
}

static void test_cache(void) {
    turbokv_cache_config cfg = {TURBOKV_SCHEME_KQV, 4, HEADS, DIM, CAPACITY,
                                TURBOKV_PROJECTION_HADAMARD, TURBOKV_NORM_F16, 0, 42};
    size_t need = 0;
    OK(turbokv_cache_bytes_needed(&cfg, &need));
    uint8_t *buf = calloc(need, 1);
    static turbokv_cache cache, again;
    OK(turbokv_cache_create(&cache, &cfg, buf, need));
    float k[HEADS * DIM], v[HEADS * DIM];
    for (int t = 0; t < TOKENS; t++) {
        for (int h = 0; h < HEADS; h++)
            for (int j = 0; j < DIM; j++) {
                k[h * DIM + j] = key_val(t, h, j);
                v[h * DIM + j] = value_val(t, h, j);
            }
        OK(turbokv_cache_push(&cache, k, HEADS * DIM, v, HEADS * DIM));
    }
    CHECK(turbokv_cache_push(&cache, k, HEADS * DIM - 1, v, HEADS * DIM) == TURBOKV_LENGTH_MISMATCH);
    size_t len = 0, cap = 0, scratch_len = 0;
    OK(turbokv_cache_info(&cache, &len, &cap, &scratch_len));
    CHECK(len == TOKENS && cap == CAPACITY && scratch_len > 0);
    printf("cache %016llx\n", (unsigned long long)fnv1a(buf, need));

    /* Two query heads sharing KV head 1. */
    float q[2 * DIM], out[2 * DIM];
    float *scratch = malloc(scratch_len * sizeof(float));
    for (int i = 0; i < 2 * DIM; i++) q[i] = query_val(i);
    OK(turbokv_attend(&cache, 1, q, 2 * DIM, out, scratch, scratch_len));
    /* The fused path equals attention over the decoded cache. */
    static turbokv_quantizer kq, vq;
    OK(turbokv_scheme_quantizers(TURBOKV_SCHEME_KQV, 4, DIM, 42, TURBOKV_PROJECTION_HADAMARD, &kq, &vq));
    size_t klen = 0, vlen = 0;
    OK(turbokv_quantizer_info(&kq, &klen, NULL));
    OK(turbokv_quantizer_info(&vq, &vlen, NULL));
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
    OK(turbokv_cache_open(&again, buf, need));
    OK(turbokv_cache_info(&again, &len, NULL, NULL));
    CHECK(len == TOKENS);
    float out2[2 * DIM];
    OK(turbokv_attend(&again, 1, q, 2 * DIM, out2, scratch, scratch_len));
    CHECK(memcmp(out, out2, sizeof out) == 0);
    uint8_t *bad = malloc(need);
    memcpy(bad, buf, need);
    bad[0] ^= 0xFF;
    CHECK(turbokv_cache_open(&again, bad, need) == TURBOKV_CORRUPT_CACHE);
    memcpy(bad, buf, need);
    CHECK(turbokv_cache_open(&again, bad, need - 1) == TURBOKV_CORRUPT_CACHE);
    CHECK(turbokv_attend(&cache, 2, q, DIM, out, scratch, scratch_len) == TURBOKV_INVALID_DIM);
    CHECK(turbokv_attend(&cache, 0, q, DIM, out, scratch, 1) == TURBOKV_BUFFER_TOO_SHORT);
    cfg.reserved = 1;
    CHECK(turbokv_cache_bytes_needed(&cfg, &need) == TURBOKV_INVALID_PARAMETER);
    free(bad);
    free(scratch);
    free(buf);
}

int main(void) {
    test_info();
    test_wht_and_rotation();
    test_codebooks();
    test_quantizers();
    test_cache();
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    fprintf(stderr, "all C API checks passed\n");
    return 0;
}
