/* The cuda backend against the reference ops (plain loops on the host, NCHW) on random shapes, and the properties
 * training relies on: deterministic mode gives the same bits twice, alloc returns zeros, an op runs batches smaller
 * than the one it was made for, cached convolution weights follow the weights, bn_apply rebuilds the training
 * output bit for bit, background uploads from pinned memory keep their order against queued work, and bf16/fp16
 * networks' convolutions run on tensor cores with 16-bit results (also under measured algorithm choice, and with
 * their 16-bit weight copies following the weights), and SyncBN sums its statistics through the host or on the
 * device to the same bits. Without a GPU,
 * or in a build without CUDA, it prints a skip line and exits 0. Built as tests/emu/test_cuda (RSA_CUDA_EMU: the
 * Makefile's emulated build, tests/emu/cuda_emu.h) it runs the whole backend on the CPU, its kernels and its host
 * code over emulated CUDA, cuDNN and cuBLAS calls, with every test but the choice of device.
 *
 * Tolerances, as |got - want| <= rtol |want| + rtol max|want| (scale-relative, as test_ops_torch):
 *  - convolution 2e-4 in strict FP32 (cuDNN may choose Winograd or FFT, which round like the CPU backend's
 *    Winograd), 5e-3 with TF32 (10 mantissa bits per product input);
 *  - linear 1e-5 (5e-3 with TF32); batch norm 1e-5 for values, statistics and parameter gradients, 1e-4 for the
 *    input gradient (a difference of nearly equal terms), as test_ops_torch;
 *  - global average pooling 1e-6 (float sums against the reference's double);
 *  - max pooling, elementwise and optimiser ops exactly: the same arithmetic in the same order as the reference;
 *  - the sum of squares 1e-12 (double sums in another order). */
#include "tests/util/fixture.h"
#include "tests/util/testlib.h"
#include "trainer/core/error.h"
#include "trainer/ops/ref/ops_ref.h"
#if defined RSA_CUDA || defined RSA_CUDA_EMU
#include "trainer/ops/cuda/cuda_backend.h"
#endif
#if defined RSA_CUDA || defined RSA_CUDA_EMU
#include <cuda_runtime_api.h>
#endif
#ifdef RSA_CUDA_EMU
#include "tests/emu/cudnn_emu.h"
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const Backend *cu;

static float *random_floats(size_t n, uint64_t seed, float scale) {
    float *p = test_alloc(n);
    fill_normal(p, n, seed, scale);
    return p;
}

static float *copy_floats(const float *src, size_t n) {
    float *p = test_alloc(n);
    memcpy(p, src, n * sizeof(float));
    return p;
}

static float max_abs(const float *x, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

static void check_scaled(const char *what, const float *got, const float *want, size_t n, double rtol) {
    CHECK_CLOSE(what, got, want, n, rtol, rtol * (max_abs(want, n) + 1e-6));
}

static void check_same_bits(const char *what, const float *a, const float *b, size_t n) {
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) differ += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    CHECK(differ == 0, "%s: %zu of %zu elements differ between two identical runs", what, differ, n);
}

/* ---- convolution ---- */

typedef struct {
    int n_plan, n; /* the op is made for n_plan and run with n */
    int ci, hi, wi, co, k, stride, pad;
    bool bias, nchw_input;
} ConvCase;

static const ConvCase CONV_CASES[] = {
    {4, 4, 16, 9, 9, 32, 3, 1, 1, false, false},  /* 3x3 */
    {3, 3, 32, 10, 10, 64, 3, 2, 1, false, false}, /* 3x3 stride 2 */
    {4, 4, 64, 8, 8, 16, 1, 1, 0, true, false},    /* 1x1 with bias */
    {2, 2, 32, 8, 8, 64, 1, 2, 0, false, false},   /* 1x1 stride 2 (downsampling shortcut) */
    {2, 2, 3, 32, 32, 16, 7, 2, 3, false, true},   /* the stem: 7x7 stride 2 on an NCHW image */
    {3, 3, 3, 15, 13, 8, 7, 2, 3, true, true},     /* the stem with bias, odd sizes */
    {6, 4, 5, 7, 7, 7, 3, 1, 1, true, false},      /* odd channels, smaller batch than planned */
    {5, 1, 16, 6, 6, 16, 3, 2, 1, false, false},   /* batch 1 of 5 */
    {2, 2, 12, 6, 6, 20, 3, 1, 1, false, false},   /* channels not multiples of 8 (fp32 path at bf16/fp16) */
};

typedef struct {
    float *x, *w, *b, *dy, *dw, *db; /* inputs; dw and db hold what the gradients accumulate onto */
} ConvData;

typedef struct {
    float *y, *dx, *dw, *db;
} ConvResult;

static ConvShape case_shape(const ConvCase *c, int n) {
    return conv_shape(n, c->ci, c->hi, c->wi, c->co, c->k, c->stride, c->pad);
}

static ConvData conv_data(const ConvCase *c, uint64_t seed) {
    ConvShape s = case_shape(c, c->n_plan);
    ConvData d;
    d.x = random_floats((size_t)s.n * s.ci * s.hi * s.wi, seed, 1.0f);
    d.w = random_floats((size_t)s.co * s.ci * s.k * s.k, seed + 1, 1.0f / sqrtf((float)(s.ci * s.k * s.k)));
    d.b = random_floats((size_t)s.co, seed + 2, 0.5f);
    d.dy = random_floats((size_t)s.n * s.co * s.ho * s.wo, seed + 3, 1.0f);
    d.dw = random_floats((size_t)s.co * s.ci * s.k * s.k, seed + 4, 0.1f);
    d.db = random_floats((size_t)s.co, seed + 5, 0.1f);
    return d;
}

static void conv_data_free(ConvData *d) { free(d->x), free(d->w), free(d->b), free(d->dy), free(d->dw), free(d->db); }
static void conv_result_free(ConvResult *r) { free(r->y), free(r->dx), free(r->dw), free(r->db); }

/* The reference on the first n images (NCHW data is image-major, so a prefix is a smaller batch). */
static ConvResult conv_reference(const ConvCase *c, const ConvData *d) {
    ConvShape s = case_shape(c, c->n);
    size_t nw = (size_t)s.co * s.ci * s.k * s.k;
    ConvResult r = {test_alloc((size_t)s.n * s.co * s.ho * s.wo), test_alloc((size_t)s.n * s.ci * s.hi * s.wi),
                    copy_floats(d->dw, nw), copy_floats(d->db, (size_t)s.co)};
    conv2d_forward_ref(&s, d->x, d->w, c->bias ? d->b : NULL, r.y);
    conv2d_backward_data_ref(&s, d->dy, d->w, r.dx);
    conv2d_backward_weights_ref(&s, d->x, d->dy, r.dw, c->bias ? r.db : NULL);
    return r;
}

/* wgrad: the format the network rounds the weight gradient to (lowp_weight_grads), FP32 when it does not. */
static ConvResult conv_cuda(const ConvCase *c, const ConvData *d, Precision prec, Precision wgrad) {
    ConvShape sp = case_shape(c, c->n_plan), s = case_shape(c, c->n);
    Layout li = c->nchw_input ? LAYOUT_NCHW : cu->act_layout(s.ci, s.hi * s.wi), lo = cu->act_layout(s.co, s.ho * s.wo);
    size_t nx = (size_t)sp.n * s.ci * s.hi * s.wi, ny = (size_t)sp.n * s.co * s.ho * s.wo;
    size_t nw = (size_t)s.co * s.ci * s.k * s.k;
    /* device copies hold the whole planned batch in the backend's layout; the op then runs on the first n images */
    float *x = be_put(cu, d->x, li, sp.n, s.ci, s.hi, s.wi), *w = be_put_flat(cu, d->w, nw);
    float *b = be_put_flat(cu, d->b, (size_t)s.co), *dy = be_put(cu, d->dy, lo, sp.n, s.co, s.ho, s.wo);
    float *y = be_zeros(cu, ny), *dx = be_zeros(cu, nx), *dw = be_put_flat(cu, d->dw, nw);
    float *db = be_put_flat(cu, d->db, (size_t)s.co);
    ConvOp *op = cu->conv_create(&sp, li, lo, c->bias);
    cu->conv_set_precision(op, prec);
    cu->conv_set_weight_grad_precision(op, wgrad);
    if (c->n < c->n_plan) cu->conv_forward(op, sp.n, x, w, c->bias ? b : NULL, y); /* plans for n_plan first */
    cu->conv_forward(op, s.n, x, w, c->bias ? b : NULL, y);
    cu->conv_backward_data(op, s.n, dy, w, dx);
    cu->conv_backward_weights(op, s.n, x, dy, dw, c->bias ? db : NULL);
    ConvResult r = {test_alloc((size_t)s.n * s.co * s.ho * s.wo), test_alloc((size_t)s.n * s.ci * s.hi * s.wi),
                    test_alloc(nw), test_alloc((size_t)s.co)};
    be_get(cu, y, lo, s.n, s.co, s.ho, s.wo, r.y);
    be_get(cu, dx, li, s.n, s.ci, s.hi, s.wi, r.dx);
    be_get_flat(cu, dw, nw, r.dw);
    be_get_flat(cu, db, (size_t)s.co, r.db);
    cu->conv_destroy(op);
    be_free(cu, x, nx), be_free(cu, w, nw), be_free(cu, b, s.co), be_free(cu, dy, ny), be_free(cu, y, ny);
    be_free(cu, dx, nx), be_free(cu, dw, nw), be_free(cu, db, s.co);
    return r;
}

static void conv_cases(double tol, bool bitwise) {
    for (size_t i = 0; i < sizeof CONV_CASES / sizeof CONV_CASES[0]; i++) {
        const ConvCase *c = &CONV_CASES[i];
        ConvShape s = case_shape(c, c->n);
        ConvData d = conv_data(c, 100 + 10 * i);
        ConvResult want = conv_reference(c, &d), got = conv_cuda(c, &d, PRECISION_FP32, PRECISION_FP32);
        size_t ny = (size_t)s.n * s.co * s.ho * s.wo, nx = (size_t)s.n * s.ci * s.hi * s.wi;
        size_t nw = (size_t)s.co * s.ci * s.k * s.k;
        char what[96];
#define LABEL(part) (snprintf(what, sizeof what, "conv case %zu (%dx%d/%d %d->%d): " part, i, c->k, c->k, c->stride, \
                              c->ci, c->co), what)
        check_scaled(LABEL("y"), got.y, want.y, ny, tol);
        check_scaled(LABEL("dx"), got.dx, want.dx, nx, tol);
        check_scaled(LABEL("dw (accumulated)"), got.dw, want.dw, nw, tol);
        if (c->bias) check_scaled(LABEL("db (accumulated)"), got.db, want.db, (size_t)s.co, 1e-5);
        if (bitwise) {
            ConvResult again = conv_cuda(c, &d, PRECISION_FP32, PRECISION_FP32);
            check_same_bits(LABEL("y"), got.y, again.y, ny);
            check_same_bits(LABEL("dx"), got.dx, again.dx, nx);
            check_same_bits(LABEL("dw"), got.dw, again.dw, nw);
            check_same_bits(LABEL("db"), got.db, again.db, (size_t)s.co);
            conv_result_free(&again);
        }
#undef LABEL
        conv_result_free(&want), conv_result_free(&got), conv_data_free(&d);
    }
}

static void round_floats(Precision p, float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = round_to(p, x[i]);
}

static int lowp_refusals(void) {
#if defined RSA_CUDA || defined RSA_CUDA_EMU
    if (cuda_lowp_refusals() > 0) fprintf(stderr, "  # last 16-bit refusal: %s\n", cuda_lowp_refusal());
    return cuda_lowp_refusals();
#else
    return 0;
#endif
}

static size_t unrounded(Precision p, const float *x, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++) count += memcmp(&x[i], &(float){round_to(p, x[i])}, sizeof(float)) != 0;
    return count;
}

/* A bf16 or fp16 network's convolutions: values rounded to the format, the op told the precision. Where the
 * tensor-core path applies (no bias, NHWC input, channels in multiples of 8) y and dx come out in the format (every element representable:
 * the 16-bit path ran), within one rounding of the reference's fp32 result rounded (another summation order can
 * tip an element to the neighbouring 16-bit value); elsewhere the fp32 path's tolerance holds. The weight gradient
 * is the fp32 path's everywhere. Twice the same bits in deterministic mode (bitwise). */
static void conv_cases_lowp(Precision p, bool bitwise) {
    const double step = p == PRECISION_BF16 ? 0x1p-8 : 0x1p-11; /* one rounding, relative */
    for (size_t i = 0; i < sizeof CONV_CASES / sizeof CONV_CASES[0]; i++) {
        const ConvCase *c = &CONV_CASES[i];
        ConvShape s = case_shape(c, c->n), sp = case_shape(c, c->n_plan);
        ConvData d = conv_data(c, 300 + 10 * i);
        size_t ny = (size_t)s.n * s.co * s.ho * s.wo, nx = (size_t)s.n * s.ci * s.hi * s.wi;
        size_t nw = (size_t)s.co * s.ci * s.k * s.k;
        round_floats(p, d.x, (size_t)sp.n * s.ci * s.hi * s.wi), round_floats(p, d.w, nw);
        round_floats(p, d.b, (size_t)s.co), round_floats(p, d.dy, (size_t)sp.n * s.co * s.ho * s.wo);
        ConvResult want = conv_reference(c, &d), got = conv_cuda(c, &d, p, PRECISION_FP32);
        bool tensor_cores = !c->bias && !c->nchw_input && c->ci % 8 == 0 && c->co % 8 == 0;
        char what[112];
#define LABEL(part) (snprintf(what, sizeof what, "%s conv case %zu (%dx%d/%d %d->%d): " part, precision_name(p), i, \
                              c->k, c->k, c->stride, c->ci, c->co), what)
        if (tensor_cores) {
            CHECK(unrounded(p, got.y, ny) == 0 && unrounded(p, got.dx, nx) == 0, "%s (cuda_lowp_refusals: %d)",
                  LABEL("y or dx not in the format: the 16-bit path did not run"), lowp_refusals());
            round_floats(p, want.y, ny), round_floats(p, want.dx, nx);
            check_scaled(LABEL("y"), got.y, want.y, ny, step);
            check_scaled(LABEL("dx"), got.dx, want.dx, nx, step);
        } else {
            check_scaled(LABEL("y"), got.y, want.y, ny, 2e-4);
            check_scaled(LABEL("dx"), got.dx, want.dx, nx, 2e-4);
        }
        check_scaled(LABEL("dw (accumulated)"), got.dw, want.dw, nw, 2e-4);
        if (bitwise) {
            ConvResult again = conv_cuda(c, &d, p, PRECISION_FP32);
            check_same_bits(LABEL("y"), got.y, again.y, ny);
            check_same_bits(LABEL("dx"), got.dx, again.dx, nx);
            check_same_bits(LABEL("dw"), got.dw, again.dw, nw);
            conv_result_free(&again);
        }
#undef LABEL
        conv_result_free(&want), conv_result_free(&got), conv_data_free(&d);
    }
}

/* The weight gradient of a network that rounds it to its format (lowp_weight_grads): where the tensor-core path
 * applies, cuDNN's 16-bit result (every element in the format: the 16-bit path ran), within one rounding of the
 * reference's rounded; elsewhere the fp32 path's, which the network rounds. Same bits twice. */
static void conv_cases_wgrad16(Precision p) {
    const double step = p == PRECISION_BF16 ? 0x1p-8 : 0x1p-11;
    for (size_t i = 0; i < sizeof CONV_CASES / sizeof CONV_CASES[0]; i++) {
        const ConvCase *c = &CONV_CASES[i];
        ConvShape s = case_shape(c, c->n), sp = case_shape(c, c->n_plan);
        ConvData d = conv_data(c, 500 + 10 * i);
        size_t nw = (size_t)s.co * s.ci * s.k * s.k;
        round_floats(p, d.x, (size_t)sp.n * s.ci * s.hi * s.wi), round_floats(p, d.w, nw);
        round_floats(p, d.b, (size_t)s.co), round_floats(p, d.dy, (size_t)sp.n * s.co * s.ho * s.wo);
        memset(d.dw, 0, sizeof(float) * nw), memset(d.db, 0, sizeof(float) * s.co); /* model.c's zeroed buffer */
        ConvResult want = conv_reference(c, &d), got = conv_cuda(c, &d, p, p), again = conv_cuda(c, &d, p, p);
        bool tensor_cores = !c->bias && !c->nchw_input && c->ci % 8 == 0 && c->co % 8 == 0;
        char what[112];
        snprintf(what, sizeof what, "%s conv case %zu (%dx%d/%d %d->%d): 16-bit dw", precision_name(p), i, c->k,
                 c->k, c->stride, c->ci, c->co);
        if (tensor_cores) {
            CHECK(unrounded(p, got.dw, nw) == 0, "%s not in the format: the 16-bit path did not run (refusals %d)",
                  what, lowp_refusals());
            round_floats(p, want.dw, nw);
            check_scaled(what, got.dw, want.dw, nw, step);
        } else {
            check_scaled(what, got.dw, want.dw, nw, 2e-4);
        }
        check_same_bits(what, got.dw, again.dw, nw);
        conv_result_free(&want), conv_result_free(&got), conv_result_free(&again), conv_data_free(&d);
    }
}

/* An fp16 weight gradient past 65504 must come back as infinity, as autocast's does (GradScaler skips the step on
 * it), not saturated at the largest finite value: every sum here is 2.4e6 to 3.6e6. */
static void test_conv_wgrad16_overflow(void) {
    const ConvCase c = {2, 2, 16, 6, 6, 16, 3, 1, 1, false, false};
    ConvData d = conv_data(&c, 77);
    size_t nx = (size_t)2 * 16 * 36, ny = nx, nw = (size_t)16 * 16 * 9;
    for (size_t i = 0; i < nx; i++) d.x[i] = 192.0f;
    for (size_t i = 0; i < ny; i++) d.dy[i] = 256.0f;
    memset(d.dw, 0, sizeof(float) * nw);
    ConvResult got = conv_cuda(&c, &d, PRECISION_FP16, PRECISION_FP16);
    size_t finite = 0;
    for (size_t i = 0; i < nw; i++) finite += !isinf(round_to(PRECISION_FP16, got.dw[i]));
    CHECK(finite == 0, "%zu of %zu fp16 weight gradients past 2e6 are finite (e.g. %g)", finite, nw, got.dw[0]);
    conv_result_free(&got), conv_data_free(&d);
}

/* With 16-bit weight gradients, backward-data uses the 16-bit dy that backward-weights just packed, when it is
 * handed the same dy (backend.h's contract): the same bits as packing afresh, and never a packing of another dy or
 * of a dy since changed (the record is used once). As test_ops_fast's test_conv_dy_reuse for the cpu backend. */
static void test_conv_dy_reuse(void) {
    const Precision p = PRECISION_BF16;
    const int n = 4, c = 32, h = 8;
    ConvShape s = conv_shape(n, c, h, h, c, 3, 1, 1);
    size_t nx = (size_t)n * c * h * h, nw = (size_t)c * c * 9;
    float *x = random_floats(nx, 41, 1), *w = random_floats(nw, 42, 0.1f), *dy1 = random_floats(nx, 43, 1);
    float *dy2 = random_floats(nx, 44, 1), *got[5];
    round_floats(p, x, nx), round_floats(p, w, nw), round_floats(p, dy1, nx), round_floats(p, dy2, nx);
    Layout l = cu->act_layout(c, h * h);
    float *cx = be_put(cu, x, l, n, c, h, h), *cw = be_put_flat(cu, w, nw), *cdy1 = be_put(cu, dy1, l, n, c, h, h);
    float *cdy2 = be_put(cu, dy2, l, n, c, h, h), *cdw = be_zeros(cu, nw), *dx[5];
    for (int k = 0; k < 5; k++) dx[k] = be_zeros(cu, nx), got[k] = test_alloc(nx);
    int refusals = lowp_refusals();
    ConvOp *op = cu->conv_create(&s, l, l, false);
    cu->conv_set_precision(op, p);
    cu->conv_set_weight_grad_precision(op, p);
    cu->conv_backward_data(op, n, cdy1, cw, dx[0]); /* packs dy1 itself */
    cu->conv_backward_weights(op, n, cx, cdy1, cdw, NULL);
    cu->conv_backward_data(op, n, cdy1, cw, dx[1]); /* uses the packing of dy1 */
    cu->conv_backward_weights(op, n, cx, cdy1, cdw, NULL);
    cu->conv_backward_data(op, n, cdy2, cw, dx[2]); /* another dy right after backward-weights of dy1 */
    cu->conv_backward_data(op, n, cdy2, cw, dx[3]);
    cu->conv_backward_weights(op, n, cx, cdy1, cdw, NULL);
    cu->conv_backward_data(op, n, cdy1, cw, dx[4]); /* uses the packing once */
    cu->copy(cdy1, cdy2, sizeof(float) * nx);       /* then dy1's buffer changes */
    cu->conv_backward_data(op, n, cdy1, cw, dx[4]);
    for (int k = 0; k < 5; k++) be_get(cu, dx[k], l, n, c, h, h, got[k]);
    CHECK(lowp_refusals() == refusals && unrounded(p, got[0], nx) == 0,
          "the 16-bit path did not run (cuda_lowp_refusals %d -> %d)", refusals, lowp_refusals());
    CHECK(memcmp(got[0], got[1], sizeof(float) * nx) == 0, "dx from the reused packing differs from a fresh one");
    CHECK(memcmp(got[2], got[3], sizeof(float) * nx) == 0 && memcmp(got[2], got[0], sizeof(float) * nx) != 0,
          "backward-data of another dy used the packing of the previous one");
    CHECK(memcmp(got[4], got[2], sizeof(float) * nx) == 0, "a packing was used twice, after dy had changed");
    cu->conv_destroy(op);
    for (int k = 0; k < 5; k++) be_free(cu, dx[k], nx), free(got[k]);
    be_free(cu, cx, nx), be_free(cu, cw, nw), be_free(cu, cdy1, nx), be_free(cu, cdy2, nx), be_free(cu, cdw, nw);
    free(x), free(w), free(dy1), free(dy2);
}

#ifdef RSA_CUDA_EMU
/* One bf16 op's forward, backward-weights (into a zeroed gradient) and backward-data at batch b, back on the host:
 * out[0] y, out[1] dx (NCHW, b images), out[2] dw. */
static void refusal_pass(ConvOp *op, int b, int c, int h, Layout l, float *const dev[6], float *out[3]) {
    const size_t nw = (size_t)c * c * 9;
    cu->conv_forward(op, b, dev[0], dev[1], NULL, dev[3]);
    cu->zero(dev[5], sizeof(float) * nw);
    cu->conv_backward_weights(op, b, dev[0], dev[2], dev[5], NULL);
    cu->conv_backward_data(op, b, dev[2], dev[1], dev[4]);
    be_get(cu, dev[3], l, b, c, h, h, out[0]);
    be_get(cu, dev[4], l, b, c, h, h, out[1]);
    be_get_flat(cu, dev[5], nw, out[2]);
}

/* Where cuDNN lists no 16-bit algorithm for one direction at some batch size (here the emulated cuDNN's hook, on a
 * GPU some shapes), that batch size runs on the fp32 path: both data directions when either is refused, the weight
 * gradient alone when its direction is. The choice is made when the batch size's plan is, so its results do not
 * depend on which batch sizes ran before (a resumed run computes what the uninterrupted one did) and are the fp32
 * path's bits; each refused plan counts once in cuda_lowp_refusals; the other batch size keeps the 16-bit path. */
static void test_conv_lowp_refusal(void) {
    const Precision p = PRECISION_BF16;
    const int n = 4, small = 2, c = 16, h = 6;
    const ConvShape s = conv_shape(n, c, h, h, c, 3, 1, 1);
    const size_t nx = (size_t)n * c * h * h, nw = (size_t)c * c * 9, sizes[3] = {nx, nx, nw};
    float *x = random_floats(nx, 51, 1), *w = random_floats(nw, 52, 0.1f), *dy = random_floats(nx, 53, 1);
    round_floats(p, x, nx), round_floats(p, w, nw), round_floats(p, dy, nx);
    const Layout l = cu->act_layout(c, h * h);
    float *const dev[6] = {be_put(cu, x, l, n, c, h, h), be_put_flat(cu, w, nw), be_put(cu, dy, l, n, c, h, h),
                           be_zeros(cu, nx), be_zeros(cu, nx), be_zeros(cu, nw)};
    const int directions[] = {CUDNN_EMU_FORWARD, CUDNN_EMU_BACKWARD_DATA, CUDNN_EMU_BACKWARD_FILTER};
    static const char *const names[] = {"forward", "backward-data", "backward-weights"}, *parts[] = {"y", "dx", "dw"};
    for (int d = 0; d < 3; d++) {
        const bool filter = directions[d] == CUDNN_EMU_BACKWARD_FILTER;
        cudnn_emu_decline_16bit(directions[d], small);
        /* runs: [0] the small batch first, [1] the large first, [2] the fp32 path the refused part should take;
         * got[run][0: small, 1: large][y, dx, dw] */
        float *got[3][2][3];
        for (int run = 0; run < 3; run++) {
            cuda_set_lowp_convolutions(!(run == 2 && !filter));
            ConvOp *op = cu->conv_create(&s, l, l, false);
            cu->conv_set_precision(op, p);
            cu->conv_set_weight_grad_precision(op, filter && run < 2 ? p : PRECISION_FP32);
            const int before = cuda_lowp_refusals();
            for (int k = 0; k < 2; k++) {
                const int which = run == 1 ? 1 - k : k; /* run 1 goes large, then small */
                for (int part = 0; part < 3; part++) got[run][which][part] = test_alloc(sizes[part]);
                refusal_pass(op, which ? n : small, c, h, l, dev, got[run][which]);
            }
            CHECK(cuda_lowp_refusals() - before == (run < 2), "%s refused: run %d counted %d refused plans", names[d],
                  run, cuda_lowp_refusals() - before);
            cu->conv_destroy(op);
        }
        cuda_set_lowp_convolutions(true);
        const size_t small_sizes[3] = {nx / 2, nx / 2, nw};
        for (int part = 0; part < 3; part++) {
            const bool refused = filter == (part == 2); /* the parts that left the 16-bit path at the small batch */
            for (int k = 0; k < 2; k++) {
                const size_t bytes = sizeof(float) * (k ? sizes[part] : small_sizes[part]);
                CHECK(memcmp(got[0][k][part], got[1][k][part], bytes) == 0,
                      "%s refused: %s at batch %d depends on which batch size ran first", names[d], parts[part],
                      k ? n : small);
            }
            if (refused)
                CHECK(memcmp(got[0][0][part], got[2][0][part], sizeof(float) * small_sizes[part]) == 0,
                      "%s refused: %s at batch %d is not the fp32 path's", names[d], parts[part], small);
            /* the large batch's 16-bit results are in the format (dw only where the network asks it in 16 bits) */
            if (part < 2 || filter)
                CHECK(unrounded(p, got[0][1][part], sizes[part]) == 0,
                      "%s refused: %s at batch %d left the 16-bit path", names[d], parts[part], n);
        }
        for (int run = 0; run < 3; run++)
            for (int k = 0; k < 2; k++)
                for (int part = 0; part < 3; part++) free(got[run][k][part]);
    }
    cudnn_emu_decline_16bit(0, 0);
    be_free(cu, dev[0], nx), be_free(cu, dev[1], nw), be_free(cu, dev[2], nx);
    be_free(cu, dev[3], nx), be_free(cu, dev[4], nx), be_free(cu, dev[5], nw);
    free(x), free(w), free(dy);
}
#endif

static void test_conv(void) { conv_cases(2e-4, true); }
static void test_conv_wgrad16(void) {
    conv_cases_wgrad16(PRECISION_BF16);
    conv_cases_wgrad16(PRECISION_FP16);
}
static void test_conv_bf16(void) { conv_cases_lowp(PRECISION_BF16, true); }
static void test_conv_fp16(void) { conv_cases_lowp(PRECISION_FP16, true); }

/* The op's reordered copy of the weights (and at bf16/fp16 its 16-bit copy) must follow new values (after
 * conv_weights_changed) and a new pointer. */
static void weight_cache_case(Precision p) {
    const double tol = p == PRECISION_BF16 ? 0x1p-8 : p == PRECISION_FP16 ? 0x1p-11 : 2e-4;
    ConvShape s = conv_shape(2, 8, 6, 6, 16, 3, 1, 1);
    Layout l = cu->act_layout(8, 36), lo = cu->act_layout(16, 36);
    size_t nx = (size_t)2 * 8 * 36, ny = (size_t)2 * 16 * 36, nw = (size_t)16 * 8 * 9;
    float *hx = random_floats(nx, 1, 1), *hw1 = random_floats(nw, 2, 0.3f), *hw2 = random_floats(nw, 3, 0.3f);
    if (p != PRECISION_FP32) round_floats(p, hx, nx), round_floats(p, hw1, nw), round_floats(p, hw2, nw);
    float *want = test_alloc(ny), *got = test_alloc(ny);
    float *x = be_put(cu, hx, l, 2, 8, 6, 6), *w = be_put_flat(cu, hw1, nw), *w_other = be_put_flat(cu, hw1, nw);
    float *y = be_zeros(cu, ny);
    ConvOp *op = cu->conv_create(&s, l, lo, false);
    cu->conv_set_precision(op, p);
    cu->conv_forward(op, 2, x, w, NULL, y);
    cu->upload(w, hw2, nw * sizeof(float)); /* an optimiser step in place */
    cu->conv_weights_changed(op);
    cu->conv_forward(op, 2, x, w, NULL, y);
    be_get(cu, y, lo, 2, 16, 6, 6, got);
    conv2d_forward_ref(&s, hx, hw2, NULL, want);
    if (p != PRECISION_FP32) round_floats(p, want, ny);
    CHECK(p == PRECISION_FP32 || unrounded(p, got, ny) == 0, "%s weight cache: y not in the format (the 16-bit path "
          "did not run)", precision_name(p));
    check_scaled("forward after conv_weights_changed", got, want, ny, tol);
    cu->conv_forward(op, 2, x, w_other, NULL, y); /* another weight array */
    be_get(cu, y, lo, 2, 16, 6, 6, got);
    conv2d_forward_ref(&s, hx, hw1, NULL, want);
    if (p != PRECISION_FP32) round_floats(p, want, ny);
    check_scaled("forward with a new weight pointer", got, want, ny, tol);
    cu->conv_destroy(op);
    be_free(cu, x, nx), be_free(cu, w, nw), be_free(cu, w_other, nw), be_free(cu, y, ny);
    free(hx), free(hw1), free(hw2), free(want), free(got);
}

/* Batch norm and addition round what they write in the same pass: round_lowp's bits. */
static void test_fused_rounding(void) { check_fused_rounding(cu); }

static void test_conv_weight_cache(void) {
    weight_cache_case(PRECISION_FP32);
    weight_cache_case(PRECISION_BF16);
    weight_cache_case(PRECISION_FP16);
}

/* ---- batch norm ---- */

typedef struct {
    int n, c, h, w;
    bool relu;
} BnCase;

static const BnCase BN_CASES[] = {
    {4, 24, 7, 7, false}, {4, 24, 7, 7, true}, /* 2d */
    {8, 40, 12, 12, true},                      /* 1152 rows: several reduction chunks, a partial channel tile */
    {64, 8, 9, 9, false},                       /* 5184 rows: 21 chunks, more than half a warp's lanes */
    {16, 40, 1, 1, true},  {300, 7, 1, 1, false}, /* 1d */
};

typedef struct {
    float *y_eval, *y, *y_apply, *mean, *invstd, *rm, *rv, *dx, *dgamma, *dbeta;
} BnResult;

typedef struct {
    float *x, *gamma, *beta, *rm, *rv, *dy, *dgamma, *dbeta;
} BnData;

static BnResult bn_result(size_t nx, int c) {
    BnResult r = {test_alloc(nx), test_alloc(nx), test_alloc(nx), test_alloc(c), test_alloc(c),
                  test_alloc(c),  test_alloc(c),  test_alloc(nx), test_alloc(c), test_alloc(c)};
    return r;
}

static void bn_result_free(BnResult *r) {
    float *all[] = {r->y_eval, r->y, r->y_apply, r->mean, r->invstd, r->rm, r->rv, r->dx, r->dgamma, r->dbeta};
    for (int i = 0; i < 10; i++) free(all[i]);
}

static BnResult bn_run(const Backend *be, const BnCase *k, const BnData *d, const BnSync *sync) {
    const int n = k->n, c = k->c, h = k->h, w = k->w;
    size_t nx = (size_t)n * c * h * w;
    Layout l = be->act_layout(c, h * w);
    BnShape s = {n, c, h * w, 1e-5f, PRECISION_FP32};
    float *x = be_put(be, d->x, l, n, c, h, w), *g = be_put_flat(be, d->gamma, c), *b = be_put_flat(be, d->beta, c);
    float *rm = be_put_flat(be, d->rm, c), *rv = be_put_flat(be, d->rv, c), *y = be_zeros(be, nx);
    float *mean = be_zeros(be, c), *inv = be_zeros(be, c), *dy = be_put(be, d->dy, l, n, c, h, w);
    float *dx = be_zeros(be, nx), *dg = be_put_flat(be, d->dgamma, c), *db = be_put_flat(be, d->dbeta, c);
    float *y_apply = be_zeros(be, nx);
    BnResult r = bn_result(nx, c);
    be->bn_forward_eval(&s, l, k->relu, x, g, b, rm, rv, y);
    be_get(be, y, l, n, c, h, w, r.y_eval);
    be->bn_forward_train(&s, l, k->relu, x, g, b, y, mean, inv, 0.1f, rm, rv, sync);
    be_get(be, y, l, n, c, h, w, r.y);
    be_get_flat(be, mean, c, r.mean), be_get_flat(be, inv, c, r.invstd);
    be_get_flat(be, rm, c, r.rm), be_get_flat(be, rv, c, r.rv);
    be->bn_apply(&s, l, k->relu, x, g, b, mean, inv, y_apply);
    be_get(be, y_apply, l, n, c, h, w, r.y_apply);
    be->bn_backward(&s, l, k->relu, x, y, dy, g, b, mean, inv, dx, dg, db, sync);
    be_get(be, dx, l, n, c, h, w, r.dx);
    be_get_flat(be, dg, c, r.dgamma), be_get_flat(be, db, c, r.dbeta);
    float *big[] = {x, y, y_apply, dy, dx}, *small[] = {g, b, rm, rv, mean, inv, dg, db};
    for (int i = 0; i < 5; i++) be_free(be, big[i], nx);
    for (int i = 0; i < 8; i++) be_free(be, small[i], c);
    return r;
}

static BnData bn_data(const BnCase *k, uint64_t seed) {
    size_t nx = (size_t)k->n * k->c * k->h * k->w;
    BnData d = {random_floats(nx, seed, 2.0f),         random_floats(k->c, seed + 1, 0.2f),
                random_floats(k->c, seed + 2, 0.5f),   random_floats(k->c, seed + 3, 0.3f),
                random_floats(k->c, seed + 4, 0.3f),   random_floats(nx, seed + 5, 1.0f),
                random_floats(k->c, seed + 6, 0.1f),   random_floats(k->c, seed + 7, 0.1f)};
    for (int c = 0; c < k->c; c++) d.gamma[c] += 1.0f, d.rv[c] = 1.0f + fabsf(d.rv[c]);
    for (size_t j = 0; j < nx; j++) d.x[j] += 0.5f; /* a mean away from zero tests the centred variance */
    return d;
}

static void bn_data_free(BnData *d) {
    float *all[] = {d->x, d->gamma, d->beta, d->rm, d->rv, d->dy, d->dgamma, d->dbeta};
    for (int j = 0; j < 8; j++) free(all[j]);
}

/* Every output of got within its tolerance of want's, and bit for bit twin's (case i, labelled with tag). */
static void bn_compare(const char *tag, size_t i, const BnCase *k, const BnResult *got, const BnResult *want,
                       const BnResult *twin) {
    size_t nx = (size_t)k->n * k->c * k->h * k->w, c = (size_t)k->c;
    const struct {
        const char *name;
        const float *got, *want, *twin;
        size_t n;
        double tol;
    } parts[] = {
        {"y_eval", got->y_eval, want->y_eval, twin->y_eval, nx, 1e-5},
        {"y", got->y, want->y, twin->y, nx, 1e-5},
        {"y_apply", got->y_apply, want->y_apply, twin->y_apply, nx, 1e-5},
        {"mean", got->mean, want->mean, twin->mean, c, 1e-5},
        {"invstd", got->invstd, want->invstd, twin->invstd, c, 1e-5},
        {"rm", got->rm, want->rm, twin->rm, c, 1e-5},
        {"rv", got->rv, want->rv, twin->rv, c, 1e-5},
        {"dx", got->dx, want->dx, twin->dx, nx, 1e-4},
        {"dgamma", got->dgamma, want->dgamma, twin->dgamma, c, 1e-5},
        {"dbeta", got->dbeta, want->dbeta, twin->dbeta, c, 1e-5},
    };
    for (size_t j = 0; j < sizeof parts / sizeof parts[0]; j++) {
        char what[112];
        snprintf(what, sizeof what, "%sbn case %zu (%dx%dx%dx%d%s): %s", tag, i, k->n, k->c, k->h, k->w,
                 k->relu ? " relu" : "", parts[j].name);
        check_scaled(what, parts[j].got, parts[j].want, parts[j].n, parts[j].tol);
        check_same_bits(what, parts[j].got, parts[j].twin, parts[j].n);
    }
}

static void test_batchnorm(void) {
    for (size_t i = 0; i < sizeof BN_CASES / sizeof BN_CASES[0]; i++) {
        const BnCase *k = &BN_CASES[i];
        size_t nx = (size_t)k->n * k->c * k->h * k->w;
        BnData d = bn_data(k, 500 + 20 * i);
        BnResult want = bn_run(backend_ref(), k, &d, NULL);
        BnResult got = bn_run(cu, k, &d, NULL), again = bn_run(cu, k, &d, NULL);
        bn_compare("", i, k, &got, &want, &again);
        check_same_bits("bn_apply against the training forward", got.y_apply, got.y, nx);
        bn_result_free(&want), bn_result_free(&got), bn_result_free(&again);
        bn_data_free(&d);
    }
}

#if defined RSA_CUDA || defined RSA_CUDA_EMU
/* SyncBN in a world of two ranks holding the same batch: each all-reduce doubles the sums, so the statistics are
 * those of the batch taken twice (count 2n) and the input gradient's coefficients follow. The cuda backend sums
 * either through the host (allreduce: its fallback) or on the device (allreduce_device: NCCL's path in a
 * data-parallel run, here a copy through the host that doubles); both must give the same bits, close to the
 * reference's. */
typedef struct {
    int host_calls, device_calls;
} SyncCalls;

static void double_on_host(void *ctx, double *sums, int n) {
    ((SyncCalls *)ctx)->host_calls++;
    for (int i = 0; i < n; i++) sums[i] *= 2;
}

static void double_on_device(void *ctx, double *sums, int n) {
    ((SyncCalls *)ctx)->device_calls++;
    double *host = malloc(sizeof(double) * (size_t)n);
    CHECK(host && cudaMemcpy(host, sums, sizeof(double) * (size_t)n, cudaMemcpyDeviceToHost) == cudaSuccess,
          "reading %d sums from the device", n);
    for (int i = 0; i < n; i++) host[i] *= 2;
    CHECK(cudaMemcpy(sums, host, sizeof(double) * (size_t)n, cudaMemcpyHostToDevice) == cudaSuccess,
          "writing %d sums to the device", n);
    free(host);
}

static void test_batchnorm_synced(void) {
    for (size_t i = 0; i < sizeof BN_CASES / sizeof BN_CASES[0]; i++) {
        const BnCase *k = &BN_CASES[i];
        BnData d = bn_data(k, 900 + 20 * i);
        SyncCalls ref_calls = {0}, host_calls = {0}, device_calls = {0};
        BnSync ref_sync = {double_on_host, &ref_calls, 2, NULL}, host = {double_on_host, &host_calls, 2, NULL},
               device = {double_on_host, &device_calls, 2, double_on_device};
        BnResult want = bn_run(backend_ref(), k, &d, &ref_sync), unsynced = bn_run(cu, k, &d, NULL);
        BnResult via_host = bn_run(cu, k, &d, &host), on_device = bn_run(cu, k, &d, &device);
        CHECK(host_calls.host_calls == ref_calls.host_calls && host_calls.host_calls == 3,
              "bn case %zu: %d host all-reduces on cuda, %d on ref; want 3 (mean, variance, input gradient)", i,
              host_calls.host_calls, ref_calls.host_calls);
        CHECK(device_calls.device_calls == 3 && device_calls.host_calls == 0,
              "bn case %zu: with a device all-reduce, %d device and %d host calls; want 3 and 0", i,
              device_calls.device_calls, device_calls.host_calls);
        bn_compare("synced ", i, k, &via_host, &want, &on_device);
        /* the batch twice over has the mean and biased variance of the batch: only the running variance (unbiased,
         * count 2n - 1 instead of n - 1) and the input gradient (which also carries the other rank's share) move */
        check_scaled("synced mean against unsynced", via_host.mean, unsynced.mean, (size_t)k->c, 1e-5);
        size_t rv_moved = 0;
        for (int c = 0; c < k->c; c++) rv_moved += via_host.rv[c] != unsynced.rv[c];
        CHECK(rv_moved > 0, "bn case %zu: the running variance ignored the doubled count", i);
        bn_result_free(&want), bn_result_free(&unsynced), bn_result_free(&via_host), bn_result_free(&on_device);
        bn_data_free(&d);
    }
}
#endif

/* ---- pooling ---- */

static void test_maxpool(void) {
    const int cases[][7] = {{2, 16, 9, 9, 3, 2, 1}, {3, 8, 8, 8, 2, 2, 0}, {2, 5, 7, 7, 3, 1, 1}, {1, 64, 16, 16, 3, 2, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int *v = cases[i];
        PoolShape s = pool_shape(v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
        size_t nx = (size_t)s.n * s.c * s.hi * s.wi, ny = (size_t)s.n * s.c * s.ho * s.wo;
        float *hx = random_floats(nx, 900 + i, 1.0f), *hdy = random_floats(ny, 950 + i, 1.0f);
        for (size_t j = 0; j < nx; j++) hx[j] = roundf(hx[j] * 2) / 2; /* coarse values: many ties */
        float *want_y = test_alloc(ny), *want_dx = test_alloc(nx);
        maxpool_forward_ref(&s, hx, want_y);
        maxpool_backward_ref(&s, hx, hdy, want_dx);
        Layout l = cu->act_layout(s.c, s.hi * s.wi), lo = cu->act_layout(s.c, s.ho * s.wo);
        float *x = be_put(cu, hx, l, s.n, s.c, s.hi, s.wi), *dy = be_put(cu, hdy, lo, s.n, s.c, s.ho, s.wo);
        float *y = be_zeros(cu, ny), *dx = be_zeros(cu, nx), *got_y = test_alloc(ny), *got_dx = test_alloc(nx);
        cu->maxpool_forward(&s, l, x, y);
        cu->maxpool_backward(&s, l, x, dy, dx);
        be_get(cu, y, lo, s.n, s.c, s.ho, s.wo, got_y);
        be_get(cu, dx, l, s.n, s.c, s.hi, s.wi, got_dx);
        char what[64];
        snprintf(what, sizeof what, "maxpool case %zu: y", i);
        CHECK_CLOSE(what, got_y, want_y, ny, 0, 0);
        snprintf(what, sizeof what, "maxpool case %zu: dx (ties to the first maximum)", i);
        CHECK_CLOSE(what, got_dx, want_dx, nx, 0, 0);
        be_free(cu, x, nx), be_free(cu, dy, ny), be_free(cu, y, ny), be_free(cu, dx, nx);
        free(hx), free(hdy), free(want_y), free(want_dx), free(got_y), free(got_dx);
    }
}

static void test_gap(void) {
    const int cases[][3] = {{3, 40, 25}, {2, 64, 49}, {5, 7, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = cases[i][0], c = cases[i][1], hw = cases[i][2];
        size_t nx = (size_t)n * c * hw, ny = (size_t)n * c;
        float *hx = random_floats(nx, 1200 + i, 1.0f), *hdy = random_floats(ny, 1250 + i, 1.0f);
        float *want_y = test_alloc(ny), *want_dx = test_alloc(nx), *got_y = test_alloc(ny), *got_dx = test_alloc(nx);
        gap_forward_ref(n, c, hw, hx, want_y);
        gap_backward_ref(n, c, hw, hdy, want_dx);
        Layout l = cu->act_layout(c, hw);
        /* a square-free hw is still fine: the layout only cares about pixels, so describe it as hw x 1 */
        float *x = be_put(cu, hx, l, n, c, hw, 1), *dy = be_put_flat(cu, hdy, ny);
        float *y = be_zeros(cu, ny), *dx = be_zeros(cu, nx);
        cu->gap_forward(n, c, hw, l, x, y);
        cu->gap_backward(n, c, hw, l, dy, dx);
        be_get_flat(cu, y, ny, got_y);
        be_get(cu, dx, l, n, c, hw, 1, got_dx);
        char what[64];
        snprintf(what, sizeof what, "gap case %zu: y", i);
        check_scaled(what, got_y, want_y, ny, 1e-6);
        snprintf(what, sizeof what, "gap case %zu: dx", i);
        check_scaled(what, got_dx, want_dx, nx, 1e-6);
        be_free(cu, x, nx), be_free(cu, dy, ny), be_free(cu, y, ny), be_free(cu, dx, nx);
        free(hx), free(hdy), free(want_y), free(want_dx), free(got_y), free(got_dx);
    }
}

/* ---- linear ---- */

static void linear_cases(double tol, bool bitwise) {
    const int cases[][4] = {{9, 33, 17, 1}, {64, 512, 128, 0}, {1, 7, 3, 1}, {300, 40, 10, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = cases[i][0], in = cases[i][1], out = cases[i][2];
        bool bias = cases[i][3];
        size_t nx = (size_t)n * in, ny = (size_t)n * out, nw = (size_t)out * in;
        uint64_t seed = 1300 + 10 * i;
        float *hx = random_floats(nx, seed, 1), *hw = random_floats(nw, seed + 1, 1.0f / sqrtf((float)in));
        float *hb = random_floats(out, seed + 2, 0.5f), *hdy = random_floats(ny, seed + 3, 1);
        float *hdw = random_floats(nw, seed + 4, 0.1f), *hdb = random_floats(out, seed + 5, 0.1f);
        float *want_y = test_alloc(ny), *want_dx = test_alloc(nx), *want_dw = copy_floats(hdw, nw);
        float *want_db = copy_floats(hdb, out);
        linear_forward_ref(n, in, out, hx, hw, bias ? hb : NULL, want_y);
        linear_backward_ref(n, in, out, hx, hw, hdy, want_dx, want_dw, bias ? want_db : NULL);
        float *got[2][4];
        for (int run = 0; run < (bitwise ? 2 : 1); run++) {
            float *x = be_put_flat(cu, hx, nx), *w = be_put_flat(cu, hw, nw), *b = be_put_flat(cu, hb, out);
            float *dy = be_put_flat(cu, hdy, ny), *dw = be_put_flat(cu, hdw, nw), *db = be_put_flat(cu, hdb, out);
            float *y = be_zeros(cu, ny), *dx = be_zeros(cu, nx);
            cu->linear_forward(n, in, out, x, w, bias ? b : NULL, y);
            cu->linear_backward(n, in, out, x, w, dy, dx, dw, bias ? db : NULL);
            got[run][0] = test_alloc(ny), got[run][1] = test_alloc(nx), got[run][2] = test_alloc(nw);
            got[run][3] = test_alloc(out);
            be_get_flat(cu, y, ny, got[run][0]), be_get_flat(cu, dx, nx, got[run][1]);
            be_get_flat(cu, dw, nw, got[run][2]), be_get_flat(cu, db, out, got[run][3]);
            be_free(cu, x, nx), be_free(cu, w, nw), be_free(cu, b, out), be_free(cu, dy, ny), be_free(cu, dw, nw);
            be_free(cu, db, out), be_free(cu, y, ny), be_free(cu, dx, nx);
        }
        const char *names[4] = {"y", "dx", "dw (accumulated)", "db (accumulated)"};
        const float *want[4] = {want_y, want_dx, want_dw, want_db};
        size_t counts[4] = {ny, nx, nw, (size_t)out};
        for (int part = 0; part < (bias ? 4 : 3); part++) {
            char what[64];
            snprintf(what, sizeof what, "linear case %zu (%d x %d -> %d): %s", i, n, in, out, names[part]);
            check_scaled(what, got[0][part], want[part], counts[part], part == 3 ? 1e-5 : tol);
            if (bitwise) check_same_bits(what, got[0][part], got[1][part], counts[part]);
        }
        for (int run = 0; run < (bitwise ? 2 : 1); run++)
            for (int part = 0; part < 4; part++) free(got[run][part]);
        free(hx), free(hw), free(hb), free(hdy), free(hdw), free(hdb);
        free(want_y), free(want_dx), free(want_dw), free(want_db);
    }
}

static void test_linear(void) { linear_cases(1e-5, true); }

/* ---- elementwise ---- */

static void test_elementwise(void) {
    const size_t n = 100003;
    float *ha = random_floats(n, 1500, 1), *hb = random_floats(n, 1501, 1), *got = test_alloc(n);
    float *want = test_alloc(n);
    float *a = be_put_flat(cu, ha, n), *b = be_put_flat(cu, hb, n), *y = be_zeros(cu, n);
    cu->relu_forward(n, a, y);
    be_get_flat(cu, y, n, got);
    relu_forward_ref(n, ha, want);
    CHECK_CLOSE("relu", got, want, n, 0, 0);
    cu->relu_backward(n, a, b, y);
    be_get_flat(cu, y, n, got);
    relu_backward_ref(n, ha, hb, want);
    CHECK_CLOSE("relu backward", got, want, n, 0, 0);
    for (int relu = 0; relu < 2; relu++)
        for (Precision p = PRECISION_FP32; p <= PRECISION_FP16; p++) { /* the sum rounded in the same pass */
            cu->add_forward(n, a, b, y, relu, p);
            be_get_flat(cu, y, n, got);
            for (size_t i = 0; i < n; i++) want[i] = round_to(p, relu ? fmaxf(ha[i] + hb[i], 0) : ha[i] + hb[i]);
            CHECK_CLOSE(relu ? "add + relu" : "add", got, want, n, 0, 0);
        }
    cu->relu_forward(n, a, a); /* in place */
    be_get_flat(cu, a, n, got);
    relu_forward_ref(n, ha, want);
    CHECK_CLOSE("relu in place", got, want, n, 0, 0);
    cu->accumulate(n, a, b);
    be_get_flat(cu, a, n, got);
    for (size_t i = 0; i < n; i++) want[i] = fmaxf(ha[i], 0) + hb[i];
    CHECK_CLOSE("accumulate", got, want, n, 0, 0);
    const Precision ps[2] = {PRECISION_BF16, PRECISION_FP16};
    for (int k = 0; k < 2; k++) { /* cuda_bf16.h / cuda_fp16.h conversions against core/precision.h, bit for bit */
        for (size_t i = 0; i < n; i++) want[i] = ldexpf(ha[i], (int)(i % 50) - 30);
        want[0] = 65519.0f, want[1] = 65520.0f, want[2] = 0x1p-25f, want[3] = 0x1.8p-25f, want[4] = -INFINITY;
        const uint32_t nans[3] = {0x7fffffffu, 0xffc00000u, 0x7f801234u}; /* NaNs keep their bits, payloads too */
        for (int j = 0; j < 3; j++) memcpy(&want[5 + j], &nans[j], sizeof(float));
        cu->upload(y, want, sizeof(float) * n);
        cu->round_lowp(ps[k], n, y);
        be_get_flat(cu, y, n, got);
        round_lowp_ref(ps[k], n, want);
        CHECK(memcmp(got, want, sizeof(float) * n) == 0, "round to %s differs from the reference",
              precision_name(ps[k]));
        /* 16-bit copies of the rounded values (saved_16bit): lowp_bits' bits there, the values back; NaN aside */
        for (int j = 0; j < 3; j++) want[5 + j] = 0;
        cu->upload(y, want, sizeof(float) * n);
        uint16_t *d16 = cu->alloc(sizeof(uint16_t) * n), *h16 = malloc(sizeof(uint16_t) * n);
        cu->to_lowp(ps[k], n, y, d16);
        cu->download(h16, d16, sizeof(uint16_t) * n);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) bad += h16[i] != lowp_bits(ps[k], want[i]);
        CHECK(bad == 0, "to_lowp %s: %zu of %zu bit patterns differ from lowp_bits", precision_name(ps[k]), bad, n);
        cu->zero(y, sizeof(float) * n);
        cu->from_lowp(ps[k], n, d16, y);
        be_get_flat(cu, y, n, got);
        CHECK(memcmp(got, want, sizeof(float) * n) == 0, "from_lowp %s does not give the copied values back",
              precision_name(ps[k]));
        cu->release(d16, sizeof(uint16_t) * n), free(h16);
        /* a gradient summed in the format (lowp_weight_grads): round(y + round(x)), the reference's bits; sums of
         * 40000 overflow fp16 */
        for (size_t i = 0; i < n; i++) want[i] = ldexpf(hb[i], (int)(i % 40) - 20);
        want[0] = 40000.0f;
        float *acc = be_put_flat(cu, want, n), *hx = test_alloc(n);
        for (size_t i = 0; i < n; i++) hx[i] = ldexpf(ha[i], (int)(i % 30) - 15);
        hx[0] = 40000.0f;
        float *x = be_put_flat(cu, hx, n);
        cu->accumulate_lowp(ps[k], n, acc, x);
        be_get_flat(cu, acc, n, got);
        accumulate_lowp_ref(ps[k], n, want, hx);
        CHECK(memcmp(got, want, sizeof(float) * n) == 0, "accumulate_lowp %s differs from the reference",
              precision_name(ps[k]));
        be_free(cu, acc, n), be_free(cu, x, n), free(hx);
    }
    be_free(cu, a, n), be_free(cu, b, n), be_free(cu, y, n);
    free(ha), free(hb), free(got), free(want);
}

/* ---- optimiser ---- */

static void test_optimiser(void) {
    const size_t n = 1000003;
    float *hx = random_floats(n, 1700, 1), *hy = random_floats(n, 1701, 1), *hg = random_floats(n, 1702, 0.1f);
    float *want = copy_floats(hy, n), *want_buf = copy_floats(hg, n), *got = test_alloc(n), *got_buf = test_alloc(n);
    float *x = be_put_flat(cu, hx, n), *y = be_put_flat(cu, hy, n), *g = be_put_flat(cu, hg, n);
    float *buf = be_put_flat(cu, hg, n);
    axpby_ref(n, 0.996f, hx, 0.004f, want);
    cu->axpby(n, 0.996f, x, 0.004f, y);
    be_get_flat(cu, y, n, got);
    CHECK_CLOSE("axpby", got, want, n, 0, 0);
    for (int nesterov = 0; nesterov < 2; nesterov++) { /* w = y, momentum buffer = buf, both carried over */
        sgd_update_ref(n, want, hg, want_buf, 0.05f, 0.9f, 1e-4f, nesterov);
        cu->sgd_update(n, y, g, buf, 0.05f, 0.9f, 1e-4f, nesterov);
        be_get_flat(cu, y, n, got), be_get_flat(cu, buf, n, got_buf);
        CHECK_CLOSE(nesterov ? "sgd nesterov: w" : "sgd: w", got, want, n, 0, 0);
        CHECK_CLOSE(nesterov ? "sgd nesterov: momentum" : "sgd: momentum", got_buf, want_buf, n, 0, 0);
    }
    const size_t counts[] = {0, 5, 4096, 4097, n};
    for (int i = 0; i < 5; i++) {
        double s = cu->sumsq(counts[i], x), again = cu->sumsq(counts[i], x), ref = sumsq_ref(counts[i], hx);
        CHECK(fabs(s - ref) <= 1e-12 * ref, "sumsq of %zu: %.17g, reference %.17g", counts[i], s, ref);
        CHECK(memcmp(&s, &again, sizeof s) == 0, "sumsq of %zu differs between two calls", counts[i]);
    }
    be_free(cu, x, n), be_free(cu, y, n), be_free(cu, g, n), be_free(cu, buf, n);
    free(hx), free(hy), free(hg), free(want), free(want_buf), free(got), free(got_buf);
}

/* ---- memory ---- */

static void test_memory(void) {
    CHECK(!cu->host_memory, "the cuda backend claims host memory");
    const size_t n = (size_t)1 << 22;
    float *host = random_floats(n, 1600, 1), *back = test_alloc(n);
    for (int round = 0; round < 3; round++) { /* freed memory is handed out again: it must come back zeroed */
        float *p = be_zeros(cu, n);
        be_get_flat(cu, p, n, back);
        size_t nonzero = 0;
        for (size_t i = 0; i < n; i++) nonzero += back[i] != 0;
        CHECK(nonzero == 0, "alloc round %d: %zu of %zu floats not zero", round, nonzero, n);
        cu->upload(p, host, n * sizeof(float));
        be_free(cu, p, n);
    }
    float *p = be_put_flat(cu, host, n), *q = be_zeros(cu, n);
    cu->copy(q, p, n * sizeof(float));
    be_get_flat(cu, q, n, back);
    CHECK(memcmp(back, host, n * sizeof(float)) == 0, "copy changed the data");
    cu->zero(q + 5, 100 * sizeof(float));
    be_get_flat(cu, q, n, back);
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) wrong += back[i] != (i >= 5 && i < 105 ? 0.0f : host[i]);
    CHECK(wrong == 0, "zero: %zu floats wrong", wrong);
    be_free(cu, p, n), be_free(cu, q, n);
    free(host), free(back);
}

/* Background uploads from the backend's pinned host memory: a copy waits for the work queued before it (which
 * still reads the old contents), and the work queued after wait_upload sees the new ones. */
static void test_background_upload(void) {
    const size_t n = (size_t)1 << 24;
    float *pinned = cu->host_alloc(n * sizeof(float));
    CHECK(pinned != NULL, "%s", rsa_error_message());
    if (!pinned) return;
    CHECK(pinned[0] == 0 && pinned[n - 1] == 0, "host_alloc must hand out zeroed memory");
    fill_normal(pinned, n, 1700, 1);
    float *old = random_floats(n, 1701, 1), *got = test_alloc(n), *want = test_alloc(n);
    float *a = be_put_flat(cu, old, n), *acc = be_zeros(cu, n);
    for (int r = 0; r < 20; r++) cu->accumulate(n, acc, a); /* queued ahead of the copy, reading the old a */
    cu->upload_async(1, a, pinned, n * sizeof(float));
    cu->upload_async(2, acc + n / 2, pinned, 16 * sizeof(float)); /* another slot in flight at the same time */
    cu->wait_upload(1);
    cu->wait_upload(2);
    cu->accumulate(n, acc, a);
    be_get_flat(cu, acc, n, got);
    for (size_t i = 0; i < n; i++) {
        float s = 0;
        for (int r = 0; r < 20; r++) s += old[i];
        if (i >= n / 2 && i < n / 2 + 16) s = pinned[i - n / 2];
        want[i] = s + pinned[i];
    }
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) wrong += memcmp(&got[i], &want[i], sizeof(float)) != 0;
    CHECK(wrong == 0, "%zu of %zu values wrong: a background copy overtook queued work or was not waited for", wrong, n);
    cu->host_free(pinned, n * sizeof(float));
    be_free(cu, a, n), be_free(cu, acc, n);
    free(old), free(got), free(want);
}

#if defined RSA_CUDA || defined RSA_CUDA_EMU
/* The other settings of cuda_backend.h: measured algorithm choice, TF32. */
static void test_fastest_algorithms(void) {
    cuda_set_deterministic(false);
    conv_cases(2e-4, false);
    conv_cases_lowp(PRECISION_BF16, false);
    conv_cases_lowp(PRECISION_FP16, false);
    cuda_set_deterministic(true);
}

static void test_tf32(void) {
    cuda_set_tf32(true);
    conv_cases(5e-3, true);
    linear_cases(5e-3, true);
    cuda_set_tf32(false);
}
#endif

#ifdef RSA_CUDA
static int chosen_device = -1;

/* A data-parallel rank's backend opens on its local rank mod the GPUs it sees, and everything it makes lives there. */
static void test_device_choice(void) {
    int device = -1;
    CHECK(cudaGetDevice(&device) == cudaSuccess && device == chosen_device, "current device %d, chose %d", device,
          chosen_device);
    float *p = cu->alloc(64);
    struct cudaPointerAttributes at;
    CHECK(cudaPointerGetAttributes(&at, p) == cudaSuccess && at.device == chosen_device,
          "memory on device %d, chose %d", at.device, chosen_device);
    cu->release(p, 64);
}
#endif

int main(void) {
#ifdef RSA_CUDA
    int count = 0;
    if (cudaGetDeviceCount(&count) == cudaSuccess && count > 0) {
        int local_rank = count > 1 ? count + 1 : count; /* wraps around: device 1 of several, else 0 */
        chosen_device = local_rank % count;
        backend_cuda_use_device(local_rank);
    }
#endif
    cu = backend_cuda();
    if (!cu) {
        test_skip("cuda", rsa_error_message()); /* why: built without CUDA, no GPU, an old GPU, ... */
        return test_finish();
    }
    RUN(test_memory);
    RUN(test_background_upload);
    RUN(test_elementwise);
    RUN(test_conv);
    RUN(test_conv_bf16);
    RUN(test_conv_fp16);
    RUN(test_conv_weight_cache);
    RUN(test_conv_wgrad16);
    RUN(test_conv_dy_reuse);
#ifdef RSA_CUDA_EMU
    RUN(test_conv_lowp_refusal);
#endif
    RUN(test_conv_wgrad16_overflow);
    RUN(test_batchnorm);
#if defined RSA_CUDA || defined RSA_CUDA_EMU
    RUN(test_batchnorm_synced);
#endif
    RUN(test_fused_rounding);
    RUN(test_maxpool);
    RUN(test_gap);
    RUN(test_linear);
    RUN(test_optimiser);
#if defined RSA_CUDA || defined RSA_CUDA_EMU
    RUN(test_fastest_algorithms);
    RUN(test_tf32);
#endif
#ifdef RSA_CUDA
    RUN(test_device_choice);
#endif
    return test_finish();
}
