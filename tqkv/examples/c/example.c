/*
 * A compressed KV cache from C: 2 KV heads of dimension 128, the KQV scheme
 * at 4 bits per coordinate, 256 tokens pushed, then attention of 4 query
 * heads (grouped-query: 2 per KV head) straight on the compressed cache.
 *
 *   make -C examples/c run
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "tqkv.h"

enum { HEADS = 2, DIM = 128, TOKENS = 256 };

static int check(tqkv_status s, const char *what) {
    if (s != TQKV_OK) {
        fprintf(stderr, "%s: %s\n", what, tqkv_status_str(s));
        exit(1);
    }
    return 0;
}

int main(void) {
    /* The library linked must be the one this header describes. */
    check(tqkv_abi_check_header(), "abi_check_header");
    printf("tqkv %s on %s\n", tqkv_version(), tqkv_backend_name(tqkv_backend_detect()));
    tqkv_cache_config cfg = {TQKV_SCHEME_KQV, 4, HEADS, DIM, TOKENS,
                                TQKV_PROJECTION_HADAMARD, TQKV_NORM_F16, 0, 2026, 0, 0, 0, 0};
    size_t bytes = 0;
    check(tqkv_cache_bytes_needed(&cfg, &bytes), "bytes_needed");
    uint8_t *buf = malloc(bytes);
    static tqkv_cache cache; /* ~8 KB handle; the cache itself is in buf */
    check(tqkv_cache_create(&cache, &cfg, buf, bytes), "create");

    float k[HEADS * DIM], v[HEADS * DIM];
    for (int t = 0; t < TOKENS; t++) {
        for (int i = 0; i < HEADS * DIM; i++) {
            k[i] = sinf(0.1f * (float)(t + 3 * i));
            v[i] = cosf(0.05f * (float)(t * i % 97));
        }
        check(tqkv_cache_push(&cache, k, HEADS * DIM, v, HEADS * DIM), "push");
    }
    printf("%d tokens in %zu bytes (%.2f bits per coordinate with norms; f16 would take %zu)\n",
           TOKENS, bytes, 8.0 * (double)(bytes - 64) / (2.0 * HEADS * DIM * TOKENS),
           (size_t)2 * 2 * HEADS * DIM * TOKENS);

    /* Scratch for two query heads per KV head (grouped-query attention). */
    size_t scratch_len = 0;
    check(tqkv_attend_scratch_len(&cache, 2 * DIM, &scratch_len), "scratch length");
    float *scratch = malloc(scratch_len * sizeof(float));
    float q[2 * DIM], out[2 * DIM];
    for (int head = 0; head < HEADS; head++) {
        for (int i = 0; i < 2 * DIM; i++) q[i] = sinf(0.3f * (float)(i + head));
        check(tqkv_attend(&cache, (size_t)head, q, 2 * DIM, out, scratch, scratch_len),
              "attend");
        printf("KV head %d, query heads %d-%d: out[0..4] = %.4f %.4f %.4f %.4f\n", head,
               2 * head, 2 * head + 1, out[0], out[1], out[2], out[3]);
    }
    free(scratch);
    free(buf);
    return 0;
}
