/* PyTorch fixtures (written by tests/oracle/make_fixtures.py), moving test data in and out of a backend, and checks
 * that the cpu and GPU tests share. */
#ifndef RSA_TEST_FIXTURE_H
#define RSA_TEST_FIXTURE_H

#include "trainer/backend/backend.h"
#include "trainer/io/safetensors.h"

#define FIXTURE_VERSION "7" /* must equal VERSION in tests/oracle/make_fixtures.py */

/* Opens fixture `name` from $RSA_FIXTURES (the test run regenerates them there) or else tests/fixtures; checks its
 * version. On failure records a test failure saying how to regenerate it and returns -1. */
int fixture_open(StFile *f, const char *name);
/* A float tensor of the fixture (malloc'd copy; aborts the test run if absent: the fixture is stale). */
float *fixture_f32(const StFile *f, const char *name, size_t *n);
int64_t fixture_i64(const StFile *f, const char *name, int index);
double fixture_f64(const StFile *f, const char *name, int index);

/* Host NCHW -> backend memory in layout l, and back. */
float *be_put(const Backend *be, const float *nchw, Layout l, int n, int c, int h, int w);
void be_get(const Backend *be, const float *p, Layout l, int n, int c, int h, int w, float *nchw);
float *be_put_flat(const Backend *be, const float *host, size_t count);
void be_get_flat(const Backend *be, const float *p, size_t count, float *host);
float *be_zeros(const Backend *be, size_t count);
void be_free(const Backend *be, void *p, size_t count);

/* A w x h RGB JPEG of a smooth pattern (varied by seed), written atomically to path; aborts the test run on failure. */
void write_test_jpeg(const char *path, int w, int h, int seed);

/* Batch norm and addition round what they write in their own pass (BnShape.round, add_forward's round): checks
 * that be gives the same bits as its fp32 op followed by round_lowp, in bf16 and fp16, with and without the ReLU,
 * at 32 channels (the cpu backend's 16-lane blocks) and 6 (its plain layout); and that batch norm + ReLU backward
 * masks the gradient exactly where the rounded output is 0 (in fp32 too), values at the rounding's edge included. */
void check_fused_rounding(const Backend *be);

struct Model;
/* Random gammas in [0.5, 1.5] and betas ~ N(0, 0.1) for every affine batch norm of a finalised model (torchvision's
 * zero_init_residual would otherwise silence residual branches), then model_weights_changed. */
void randomize_bn(struct Model *m, uint64_t seed);

#endif
