/* The counter-based generator: Random123's known-answer vectors for Philox4x32-10, stream independence, and the
 * distributions we draw from. */
#include "tests/util/testlib.h"
#include "trainer/core/rng.h"

#include <math.h>
#include <string.h>

static void test_philox_known_answers(void) {
    /* From Random123's kat_vectors (philox4x32_10). */
    const uint32_t ctr[3][4] = {{0, 0, 0, 0},
                                {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
                                {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}};
    const uint32_t key[3][2] = {{0, 0}, {0xffffffff, 0xffffffff}, {0xa4093822, 0x299f31d0}};
    const uint32_t want[3][4] = {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
                                 {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
                                 {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}};
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        philox4x32_10(ctr[i], key[i], out);
        CHECK(memcmp(out, want[i], sizeof out) == 0, "vector %d: got %08x %08x %08x %08x", i, out[0], out[1], out[2],
              out[3]);
    }
}

static void test_streams_are_pure_functions(void) {
    Rng a, b;
    rng_init(&a, 7, RNG_AUGMENT, 3, 1234, 2);
    for (int i = 0; i < 1001; i++) rng_u32(&a); /* draw order within one stream is all that matters */
    rng_init(&b, 7, RNG_AUGMENT, 3, 1234, 2);
    for (int i = 0; i < 1001; i++) rng_u32(&b);
    CHECK(rng_u32(&a) == rng_u32(&b), "same coordinates, different draws");
    /* changing any coordinate changes the stream */
    uint32_t base;
    rng_init(&a, 7, RNG_AUGMENT, 3, 1234, 2);
    base = rng_u32(&a);
    const struct {
        uint64_t seed;
        RngPurpose p;
        uint32_t e, s, v;
    } other[] = {{8, RNG_AUGMENT, 3, 1234, 2}, {7, RNG_SHUFFLE, 3, 1234, 2}, {7, RNG_AUGMENT, 4, 1234, 2},
                 {7, RNG_AUGMENT, 3, 1235, 2}, {7, RNG_AUGMENT, 3, 1234, 3}, {7 + (1ull << 32), RNG_AUGMENT, 3, 1234, 2}};
    for (int i = 0; i < 6; i++) {
        rng_init(&b, other[i].seed, other[i].p, other[i].e, other[i].s, other[i].v);
        CHECK(rng_u32(&b) != base, "coordinate change %d did not change the stream", i);
    }
}

static void test_distributions(void) {
    Rng r;
    rng_init(&r, 1, RNG_TEST, 0, 0, 0);
    const int n = 200000;
    double sum = 0, sq = 0, usum = 0, umin = 1, umax = 0;
    int below[10] = {0};
    for (int i = 0; i < n; i++) {
        double z = rng_normal(&r);
        sum += z, sq += z * z;
        double u = rng_uniform(&r);
        usum += u, umin = fmin(umin, u), umax = fmax(umax, u);
        below[rng_below(&r, 10)]++;
    }
    double mean = sum / n, sd = sqrt(sq / n - mean * mean);
    CHECK(fabs(mean) < 0.01 && fabs(sd - 1) < 0.01, "normal: mean %.4f sd %.4f", mean, sd);
    CHECK(fabs(usum / n - 0.5) < 0.005 && umin >= 0 && umax < 1, "uniform: mean %.4f range [%g, %g)", usum / n, umin,
          umax);
    for (int k = 0; k < 10; k++) CHECK(fabs(below[k] / (double)n - 0.1) < 0.005, "rng_below bucket %d: %d", k, below[k]);
}

int main(void) {
    RUN(test_philox_known_answers);
    RUN(test_streams_are_pure_functions);
    RUN(test_distributions);
    return test_finish();
}
