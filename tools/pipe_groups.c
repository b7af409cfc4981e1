/* Which vector pipes the decode's operations share on this core. Each probe
 * issues 12 independent zmm operations a step (no operation reads another's
 * result, so the loop measures throughput, not latency), either of one kind
 * or six each of two kinds, and prints operations a cycle. One kind alone
 * runs 2 a cycle on a core with two pipes for it; two kinds that run 2 a
 * cycle together share both pipes, 3 share one, 4 share none.
 * ARCHITECTURE.md ("Where decode time goes") and BENCHMARKS.md (eighteenth
 * session) quote its output and the per-token floor it gives; the clock
 * comes from tools/cycles.h.
 *
 *   gcc -O2 -march=native tools/pipe_groups.c -o /tmp/pipe_groups
 *   /tmp/pipe_groups
 */
#include <immintrin.h>
#include <stdio.h>
#include "cycles.h"

#define STEPS 20000000L

/* Read-only sources for every probe: zmm1, zmm2, mask k1, and 8 bytes at
 * `bits` (a mask register's load). */
unsigned long long bits[8] __attribute__((aligned(64)));

/* `op src, src, dst` into zmm<n>: no operation depends on another. */
#define OP(op, n) op " %%zmm1, %%zmm2, %%zmm" #n "\n"
#define SHIFT(n) "vpsrld $3, %%zmm1, %%zmm" #n "\n"
#define GF2P8(n) "vgf2p8affineqb $0, %%zmm1, %%zmm2, %%zmm" #n "\n"
#define MASKED_ADD(n) "vaddps %%zmm1, %%zmm2, %%zmm" #n "%{%%k1%}%{z%}\n"
#define FIRST6(m) m(4) m(5) m(6) m(7) m(8) m(9)
#define LAST6(m) m(10) m(11) m(12) m(13) m(14) m(15)
#define OP_FIRST6(op) OP(op, 4) OP(op, 5) OP(op, 6) OP(op, 7) OP(op, 8) OP(op, 9)
#define OP_LAST6(op) OP(op, 10) OP(op, 11) OP(op, 12) OP(op, 13) OP(op, 14) OP(op, 15)
#define OP12(op) OP_FIRST6(op) OP_LAST6(op)
/* The sign masks of 64 signs into four mask registers: from a general
 * register (what the compiler emits for a u16 mask), or one load and three
 * shifts between mask registers. */
#define KMOV_GPR4 "kmovd %%eax, %%k2\n kmovd %%eax, %%k3\n kmovd %%eax, %%k4\n kmovd %%eax, %%k5\n"
#define KMOV_MEM4                                                          \
    "kmovq bits(%%rip), %%k2\n kshiftrq $16, %%k2, %%k3\n"                 \
    " kshiftrq $32, %%k2, %%k4\n kshiftrq $48, %%k2, %%k5\n"

static double cyc;

#define PROBE(name, ops, body)                                             \
    {                                                                      \
        double best = 1e9;                                                 \
        for (int r = 0; r < 3; r++) {                                      \
            double t = now();                                              \
            for (long i = 0; i < STEPS; i++)                               \
                __asm__ volatile(body ::: "xmm4", "xmm5", "xmm6", "xmm7",  \
                                 "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", \
                                 "xmm13", "xmm14", "xmm15", "k2", "k3",    \
                                 "k4", "k5", "rax");                       \
            t = now() - t;                                                 \
            if (t < best) best = t;                                        \
        }                                                                  \
        printf("%-34s %.2f\n", name, (double)(ops) * STEPS / (best / cyc)); \
    }

int main(void) {
    cyc = cycle_seconds();
    /* Sources that are not zero: with zeros, one Intel core ran more FMAs
     * a cycle than it has FMA ports. */
    static const float one = 1.0001f;
    __asm__ volatile("vbroadcastss %0, %%zmm1\n vbroadcastss %0, %%zmm2\n"
                     " kxnorw %%k1, %%k1, %%k1" ::"m"(one) : "xmm1", "xmm2", "k1");
    printf("%-34s %s\n", "zmm operations", "a cycle");
    PROBE("FMA", 12, OP12("vfmadd231ps"))
    PROBE("add", 12, OP12("vaddps"))
    PROBE("vpsrld", 12, FIRST6(SHIFT) LAST6(SHIFT))
    PROBE("vpermps", 12, OP12("vpermps"))
    PROBE("vpermb", 12, OP12("vpermb"))
    PROBE("vpmultishiftqb", 12, OP12("vpmultishiftqb"))
    PROBE("vpunpckldq", 12, OP12("vpunpckldq"))
    PROBE("vpandd", 12, OP12("vpandd"))
    PROBE("vgf2p8affineqb", 12, FIRST6(GF2P8) LAST6(GF2P8))
    PROBE("vpermt2b", 12, OP12("vpermt2b"))
    PROBE("vpermps + vpermb", 12, OP_FIRST6("vpermps") OP_LAST6("vpermb"))
    PROBE("vpermps + vpunpckldq", 12, OP_FIRST6("vpermps") OP_LAST6("vpunpckldq"))
    PROBE("vpermps + add", 12, OP_FIRST6("vpermps") OP_LAST6("vaddps"))
    PROBE("vpermps + masked add", 12, OP_FIRST6("vpermps") LAST6(MASKED_ADD))
    PROBE("vpermps + vpsrld", 12, OP_FIRST6("vpermps") LAST6(SHIFT))
    PROBE("vpermps + vmulps", 12, OP_FIRST6("vpermps") OP_LAST6("vmulps"))
    PROBE("vpermps + vpmultishiftqb", 12, OP_FIRST6("vpermps") OP_LAST6("vpmultishiftqb"))
    PROBE("vgf2p8affineqb + vmulps", 12, FIRST6(GF2P8) OP_LAST6("vmulps"))
    PROBE("vgf2p8affineqb + vpermps", 12, FIRST6(GF2P8) OP_LAST6("vpermps"))
    PROBE("vgf2p8affineqb + add", 12, FIRST6(GF2P8) OP_LAST6("vaddps"))
    PROBE("vpsrld + add", 12, FIRST6(SHIFT) OP_LAST6("vaddps"))
    PROBE("vpsrld + vmulps", 12, FIRST6(SHIFT) OP_LAST6("vmulps"))
    PROBE("vpmultishiftqb + vmulps", 12, OP_FIRST6("vpmultishiftqb") OP_LAST6("vmulps"))
    PROBE("vpmultishiftqb + add", 12, OP_FIRST6("vpmultishiftqb") OP_LAST6("vaddps"))
    PROBE("4 kmovd r32 -> k", 4, KMOV_GPR4)
    PROBE("6 vpermps + 4 kmovd r32 -> k", 10, OP_FIRST6("vpermps") KMOV_GPR4)
    PROBE("6 vpermps + kmovq m64, 3 kshiftrq", 10, OP_FIRST6("vpermps") KMOV_MEM4)
    return 0;
}
