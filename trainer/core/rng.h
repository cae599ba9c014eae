/* Counter-based random numbers (Philox4x32-10, Salmon et al. 2011).
 *
 * Every draw is a pure function of (seed, purpose, epoch, sample, view, draw index): there is no global state, so a
 * result never depends on how many threads produced it or in which order, and a resumed run needs no saved RNG
 * state beyond its seed and position. */
#ifndef RSA_RNG_H
#define RSA_RNG_H

#include <stdint.h>

/* Purposes keep unrelated streams apart even when their other coordinates coincide. Never renumber: results of
 * earlier runs depend on these values. */
typedef enum {
    RNG_INIT = 1,         /* parameter initialisation; sample = parameter index */
    RNG_SHUFFLE = 2,      /* epoch permutation */
    RNG_AUGMENT = 3,      /* pretraining views; sample = dataset index, view = view number */
    RNG_EVAL_INIT = 4,    /* linear classifier initialisation */
    RNG_EVAL_SHUFFLE = 5, /* linear evaluation permutation */
    RNG_EVAL_AUGMENT = 6, /* linear evaluation training transform */
    RNG_TEST = 7,         /* tests and benchmarks */
    RNG_DATA = 8,         /* synthetic data sets and subsets */
} RngPurpose;

typedef struct {
    uint32_t key[2];
    uint32_t ctr[4]; /* ctr[0] counts blocks; ctr[1..3] hold (purpose, view), sample, epoch */
    uint32_t out[4];
    int left; /* unused words in out */
} Rng;

void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

void rng_init(Rng *r, uint64_t seed, RngPurpose purpose, uint32_t epoch, uint32_t sample, uint32_t view);
uint32_t rng_u32(Rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double rng_uniform(Rng *r);
/* Uniform in [lo, hi). */
double rng_range(Rng *r, double lo, double hi);
/* Standard normal by Box-Muller on two uniforms (one value per call; no cached second value, so a stream's
 * position is just its draw count). */
double rng_normal(Rng *r);
/* Uniform integer in [0, n), without modulo bias. */
uint32_t rng_below(Rng *r, uint32_t n);

#endif
