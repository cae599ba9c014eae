#include "testlib.h"

#include "trainer/core/error.h"
#include "trainer/core/fileio.h"
#include "trainer/core/rng.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int passed, failed;
static bool current_failed;
static const char *current;

void test_fail_at(const char *file, int line, const char *fmt, ...) {
    const char *base = strrchr(file, '/');
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("  %s:%d: %s\n", base ? base + 1 : file, line, msg);
    current_failed = true;
}

void test_note(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("  # ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

bool test_failed(void) { return current_failed; }

void test_run(const char *name, void (*fn)(void)) {
    current = name;
    current_failed = false;
    rsa_error_clear();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    fn();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (current_failed) {
        printf("FAIL %s (%.2fs)\n", name, s);
        failed++;
    } else {
        printf("ok %s (%.2fs)\n", name, s);
        passed++;
    }
    fflush(stdout);
}

void test_skip(const char *name, const char *why) {
    printf("skip %s: %s\n", name, why);
    fflush(stdout);
}

int test_finish(void) {
    printf("# %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

bool check_close_at(const char *file, int line, const char *what, const float *got, const float *want, size_t n,
                    double rtol, double atol) {
    size_t worst = 0, bad = 0;
    double worst_excess = -1;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]), lim = atol + rtol * fabs((double)want[i]);
        if (!(err <= lim)) { /* NaN fails too */
            bad++;
            double excess = isnan(err) ? INFINITY : err - lim;
            if (excess > worst_excess) worst_excess = excess, worst = i;
        }
    }
    if (bad) {
        test_fail_at(file, line, "%s: %zu of %zu elements off; worst [%zu] got %.8g want %.8g (rtol %g atol %g), "
                                 "rel_l2 %.3g",
                     what, bad, n, worst, got[worst], want[worst], rtol, atol, rel_l2(got, want, n));
        return false;
    }
    return true;
}

double rel_l2(const float *got, const float *want, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        num += d * d;
        den += (double)want[i] * want[i];
    }
    return sqrt(num) / (den > 1e-30 ? sqrt(den) : 1e-15);
}

void fill_normal(float *x, size_t n, uint64_t seed, float scale) {
    Rng r;
    rng_init(&r, seed, RNG_TEST, 0, 0, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * rng_normal(&r));
}

void fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi) {
    Rng r;
    rng_init(&r, seed, RNG_TEST, 0, 1, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)rng_range(&r, lo, hi);
}

float *test_alloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) {
        fprintf(stderr, "test_alloc: out of memory\n");
        abort();
    }
    return p;
}

const char *test_tmpdir(void) {
    static char dir[512];
    if (!dir[0]) {
        const char *base = getenv("RSA_TEST_TMP");
        snprintf(dir, sizeof dir, "%s/%ld", base ? base : "/tmp/rsa-tests", (long)getpid());
        if (make_dirs(dir) != 0) {
            fprintf(stderr, "%s\n", rsa_error_message());
            abort();
        }
    }
    return dir;
}
