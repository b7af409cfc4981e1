/* How wide this core runs 512-bit instructions: the throughput of zmm and
 * ymm FMAs, adds, shifts and vpermps, each as 12 independent chains (more
 * than latency × pipes, so the loop measures throughput), in core cycles.
 * A core that runs zmm at full width (Zen 5, Intel) does as many zmm as ymm
 * operations a cycle; one that splits them into two 256-bit halves (Zen 4)
 * half as many. The clock comes from a chain of dependent adds (one cycle
 * each). ARCHITECTURE.md, "Two kinds of AVX-512 core", quotes its output;
 * the crate itself reads the same fact from cpuid
 * (backend::zmm_on_half_pipes).
 *
 *   gcc -O2 -mavx512f -mavx2 -mfma tools/pipe_width.c -o /tmp/pipe_width
 *   /tmp/pipe_width
 */
#include <immintrin.h>
#include <stdio.h>
#include "cycles.h"

#define REPEAT(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define STEPS 100000000L

/* Constants the chains combine with (globals, so the compiler cannot fold
 * the chains away). */
static __m512 m512;
static __m256 m256;

/* One kind of operation on 12 chains v0 … v11: operations per cycle. */
#define PROBE(name, init, op)                                              \
    static double name(double cycle) {                                     \
        REPEAT(init)                                                       \
        double best = 1e9;                                                 \
        for (int r = 0; r < 3; r++) {                                      \
            double t = now();                                              \
            for (long i = 0; i < STEPS / 12; i++) {                        \
                REPEAT(op)                                                 \
                __asm__ volatile("");                                      \
            }                                                              \
            t = now() - t;                                                 \
            if (t < best) best = t;                                        \
        }                                                                  \
        REPEAT(KEEP)                                                       \
        return (STEPS / 12 * 12.0) / (best / cycle);                       \
    }

#define KEEP(i) __asm__ volatile("" : : "x"(v##i));
#define ZI(i) __m512 v##i = _mm512_set1_ps(1.0f + i * 1e-3f);
#define YI(i) __m256 v##i = _mm256_set1_ps(1.0f + i * 1e-3f);
#define ZFMA(i) v##i = _mm512_fmadd_ps(v##i, m512, m512);
#define YFMA(i) v##i = _mm256_fmadd_ps(v##i, m256, m256);
#define ZADD(i) v##i = _mm512_add_ps(v##i, m512);
#define YADD(i) v##i = _mm256_add_ps(v##i, m256);
#define ZPERM(i) v##i = _mm512_permutexvar_ps(_mm512_castps_si512(v##i), m512);
#define YPERM(i) v##i = _mm256_permutevar8x32_ps(m256, _mm256_castps_si256(v##i));
#define ZSHIFT(i) v##i = _mm512_castsi512_ps(_mm512_srli_epi32(_mm512_castps_si512(v##i), 1));
#define YSHIFT(i) v##i = _mm256_castsi256_ps(_mm256_srli_epi32(_mm256_castps_si256(v##i), 1));

PROBE(zmm_fma, ZI, ZFMA)
PROBE(ymm_fma, YI, YFMA)
PROBE(zmm_add, ZI, ZADD)
PROBE(ymm_add, YI, YADD)
PROBE(zmm_perm, ZI, ZPERM)
PROBE(ymm_perm, YI, YPERM)
PROBE(zmm_shift, ZI, ZSHIFT)
PROBE(ymm_shift, YI, YSHIFT)

int main(void) {
    m512 = _mm512_set1_ps(0.999f);
    m256 = _mm256_set1_ps(0.999f);
    double cycle = cycle_seconds();
    printf("clock: %.2f GHz (dependent adds)\n", 1e-9 / cycle);
    printf("operations a cycle     zmm    ymm   zmm/ymm\n");
    double z, y;
    z = zmm_fma(cycle); y = ymm_fma(cycle);
    printf("  FMA               %6.2f %6.2f   %.2f\n", z, y, z / y);
    z = zmm_add(cycle); y = ymm_add(cycle);
    printf("  add               %6.2f %6.2f   %.2f\n", z, y, z / y);
    z = zmm_perm(cycle); y = ymm_perm(cycle);
    printf("  vpermps           %6.2f %6.2f   %.2f\n", z, y, z / y);
    z = zmm_shift(cycle); y = ymm_shift(cycle);
    printf("  vpsrld            %6.2f %6.2f   %.2f\n", z, y, z / y);
    printf("zmm/ymm near 1: 512-bit operations at full width; near 0.5: in two halves\n");
    return 0;
}
