/* A small test library: each test is a function; checks record failures in the current test; the runner prints one
 * line per test ("ok name" or "FAIL name: why") and tests/run.sh counts them. */
#ifndef RSA_TESTLIB_H
#define RSA_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void test_run(const char *name, void (*fn)(void));
int test_finish(void); /* prints the summary of this binary; returns the exit code */
void test_fail_at(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prints a note that belongs to the current test (measured tolerances and the like). */
void test_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool test_failed(void);
/* Prints "skip name: why" and counts nothing: only for tests that cannot run on this machine (e.g. no GPU). */
void test_skip(const char *name, const char *why);

/* Whether a test that runs on several backends tries `name`: RSA_TEST_BACKENDS (a comma list, e.g. "cuda" on a GPU
 * machine) limits them. A copy built against the emulated cuda backend (RSA_CUDA_EMU: tests/emu) tries only "cuda",
 * the backend it exists for, unless told otherwise. Inline, so that each test binary's build flags decide. */
static inline bool test_backend_wanted(const char *name) {
    const char *only = getenv("RSA_TEST_BACKENDS");
#ifdef RSA_CUDA_EMU
    if (!only) only = "cuda";
#endif
    return !only || strstr(only, name) != NULL;
}

#define RUN(fn) test_run(#fn, fn)
#define CHECK(cond, ...)                                                                                           \
    do {                                                                                                           \
        if (!(cond)) test_fail_at(__FILE__, __LINE__, __VA_ARGS__);                                                \
    } while (0)

/* Elementwise |got - want| <= atol + rtol |want| for all i; reports the worst element on failure. */
bool check_close_at(const char *file, int line, const char *what, const float *got, const float *want, size_t n,
                    double rtol, double atol);
#define CHECK_CLOSE(what, got, want, n, rtol, atol) check_close_at(__FILE__, __LINE__, what, got, want, n, rtol, atol)

/* ||got - want|| / max(||want||, tiny): a scale-free error for whole tensors. */
double rel_l2(const float *got, const float *want, size_t n);

/* Deterministic test data from the project's RNG. */
void fill_normal(float *x, size_t n, uint64_t seed, float scale);
void fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi);
float *test_alloc(size_t n); /* zeroed, aborts on failure */

/* Directory for temporary files of this test binary (created on first use, under the build tree). */
const char *test_tmpdir(void);

#endif
