/* The clock of the probes in tools/: wall time, and the seconds one core
 * cycle takes, from a chain of dependent `rorx` (one cycle each), so that
 * throughputs come out in core cycles whatever the clock speed. Not
 * `add $1`: Intel cores since Golden Cove fold immediate adds at rename
 * and ran that chain at about four a cycle. */
#ifndef TQKV_TOOLS_CYCLES_H
#define TQKV_TOOLS_CYCLES_H

#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* Seconds per cycle: 4 dependent rotates a step, best of three. */
static double cycle_seconds(void) {
    const long steps = 100000000L;
    unsigned long x = 0;
    double best = 1e9;
    for (int r = 0; r < 3; r++) {
        double t = now();
        for (long i = 0; i < steps; i++)
            __asm__ volatile("rorx $1, %0, %0\n\trorx $1, %0, %0\n\trorx $1, %0, %0\n\trorx $1, %0, %0"
                             : "+r"(x));
        t = now() - t;
        if (t < best) best = t;
    }
    return best / (4.0 * steps);
}

#endif
