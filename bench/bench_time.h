/* The benchmarks' clock: monotonic seconds. */
#ifndef RSA_BENCH_TIME_H
#define RSA_BENCH_TIME_H

#include <time.h>

static inline double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#endif
