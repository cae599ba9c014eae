/* Fast CPU backend against the reference on many shapes, including every convolution shape of ResNet-18 (CIFAR)
 * and ResNet-50 at small batches, batches smaller than planned, and thread-count independence of the CPU kernels.
 * The reference accumulates in double; the fast path in float (and Winograd for 3x3 stride 1), so whole-tensor
 * rel_l2 must stay under 2e-5 for convolutions and 1e-5 for the rest. Convolutions are also run as a bf16 and an
 * fp16 network runs them (rounded values; oneDNN's bf16 kernels where the CPU has them), to the same tolerance. */
#include "tests/util/fixture.h"
#include "tests/util/testlib.h"
#include "trainer/core/error.h"
#include "trainer/ops/cpu/conv_cpu.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const Backend *fast, *ref;

static void expect_rel(const char *what, const float *got, const float *want, size_t n, double tol) {
    double e = rel_l2(got, want, n);
    CHECK(e <= tol, "%s: rel_l2 %.3g > %.1g", what, e, tol);
}

typedef struct {
    int n, ci, h, co, k, stride, pad, bias, run_n;
} ConvCase;

static void round_all(Precision p, float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = round_to(p, x[i]);
}

/* At bf16 and fp16 the values (x, dy, weights, bias) are rounded as a mixed-precision network hands them to a
 * convolution, and the reference computes on the same values: a bf16 kernel multiplies them exactly and sums in
 * fp32, so it must be as close to the reference as the fp32 kernels are. */
static void conv_case(const ConvCase *c, Precision p) {
    ConvShape s = conv_shape(c->n, c->ci, c->h, c->h, c->co, c->k, c->stride, c->pad);
    int rn = c->run_n ? c->run_n : c->n;
    size_t nx = (size_t)rn * s.ci * s.hi * s.wi, ny = (size_t)rn * s.co * s.ho * s.wo, nw = (size_t)s.co * s.ci * s.k * s.k;
    float *x = test_alloc(nx), *w = test_alloc(nw), *b = test_alloc(s.co), *dy = test_alloc(ny);
    fill_normal(x, nx, 1 + c->ci, 1);
    fill_normal(w, nw, 2 + c->co, (float)sqrt(2.0 / (s.ci * s.k * s.k)));
    fill_normal(b, s.co, 3, 1);
    fill_normal(dy, ny, 4 + c->h, 1);
    round_all(p, x, nx), round_all(p, w, nw), round_all(p, b, s.co), round_all(p, dy, ny);
    float *y_ref = test_alloc(ny), *dx_ref = test_alloc(nx), *dw_ref = test_alloc(nw), *db_ref = test_alloc(s.co);
    ConvOp *rop = ref->conv_create(&s, LAYOUT_NCHW, LAYOUT_NCHW, c->bias);
    ref->conv_forward(rop, rn, x, w, c->bias ? b : NULL, y_ref);
    ref->conv_backward_data(rop, rn, dy, w, dx_ref);
    for (size_t i = 0; i < nw; i++) dw_ref[i] = 0.5f; /* gradients accumulate: start from a non-zero value */
    ref->conv_backward_weights(rop, rn, x, dy, dw_ref, c->bias ? db_ref : NULL);
    ref->conv_destroy(rop);

    Layout li = fast->act_layout(s.ci, s.hi * s.wi), lo = fast->act_layout(s.co, s.ho * s.wo);
    float *fx = be_put(fast, x, li, rn, s.ci, s.hi, s.wi), *fdy = be_put(fast, dy, lo, rn, s.co, s.ho, s.wo);
    float *fy = be_zeros(fast, ny), *fdx = be_zeros(fast, nx), *fdw = be_zeros(fast, nw), *fdb = be_zeros(fast, s.co);
    for (size_t i = 0; i < nw; i++) fdw[i] = 0.5f;
    ConvOp *op = fast->conv_create(&s, li, lo, c->bias);
    fast->conv_set_precision(op, p);
    fast->conv_forward(op, rn, fx, w, c->bias ? b : NULL, fy);
    fast->conv_backward_data(op, rn, fdy, w, fdx);
    fast->conv_backward_weights(op, rn, fx, fdy, fdw, c->bias ? fdb : NULL);
    float *got = test_alloc(nx > ny ? nx : ny);
    char what[128];
    snprintf(what, sizeof what, "%s conv n%d/%d %dx%d %d->%d k%d s%d p%d (%s) y", precision_name(p), rn, c->n, c->h,
             c->h, c->ci, c->co, c->k, c->stride, c->pad, conv_cpu_impl(op));
    bool native = p == PRECISION_BF16 && conv_cpu_native_bf16() && li == LAYOUT_NCHW16C && lo == LAYOUT_NCHW16C;
    CHECK(native == (strstr(conv_cpu_impl(op), "bf16") != NULL), "%s: the bf16 kernels must run exactly where the "
          "CPU has them and the activations are channel-blocked", what);
    be_get(fast, fy, lo, rn, s.co, s.ho, s.wo, got);
    expect_rel(what, got, y_ref, ny, 2e-5);
    what[strlen(what) - 1] = 0;
    strcat(what, "dx");
    be_get(fast, fdx, li, rn, s.ci, s.hi, s.wi, got);
    expect_rel(what, got, dx_ref, nx, 2e-5);
    what[strlen(what) - 2] = 0;
    strcat(what, "dw");
    expect_rel(what, fdw, dw_ref, nw, 2e-5);
    if (c->bias) expect_rel("conv db", fdb, db_ref, s.co, 1e-5);
    fast->conv_destroy(op);
    free(x), free(w), free(b), free(dy), free(y_ref), free(dx_ref), free(dw_ref), free(db_ref), free(got);
    be_free(fast, fx, nx), be_free(fast, fdy, ny), be_free(fast, fy, ny), be_free(fast, fdx, nx);
    be_free(fast, fdw, nw), be_free(fast, fdb, s.co);
}

static const ConvCase CONV_CASES[] = {
    /* ResNet-18 CIFAR stem and stages (batch 2, and a run at batch 1 of a plan for 3) */
    {2, 3, 32, 64, 3, 1, 1, 0, 0},    {3, 64, 32, 64, 3, 1, 1, 0, 1},  {2, 64, 32, 128, 3, 2, 1, 0, 0},
    {2, 64, 32, 128, 1, 2, 0, 0, 0},  {2, 128, 16, 128, 3, 1, 1, 0, 0}, {2, 256, 8, 512, 3, 2, 1, 0, 0},
    {4, 512, 4, 512, 3, 1, 1, 0, 0},  {2, 512, 4, 512, 3, 1, 1, 0, 0},
    /* ResNet-50 stem, bottleneck 1x1s, strided 3x3 */
    {2, 3, 64, 64, 7, 2, 3, 0, 0},    {2, 64, 16, 256, 1, 1, 0, 0, 0}, {2, 256, 16, 64, 1, 1, 0, 0, 0},
    {2, 128, 16, 128, 3, 2, 1, 0, 0}, {2, 1024, 4, 2048, 1, 2, 0, 0, 0}, {2, 512, 2, 512, 3, 1, 1, 0, 0},
    /* the quick scale's and the step fixtures' width-16 network (direct convolution below 32 channels) */
    {8, 16, 16, 16, 3, 1, 1, 0, 0},   {2, 16, 32, 16, 3, 1, 1, 0, 0},  {8, 16, 16, 32, 3, 2, 1, 0, 0},
    {8, 32, 8, 32, 3, 1, 1, 0, 0},
    /* odd sizes and bias */
    {3, 16, 7, 32, 3, 1, 1, 1, 0},    {2, 32, 5, 16, 1, 1, 0, 1, 0},
};

static void conv_cases(Precision p) {
    for (size_t i = 0; i < sizeof CONV_CASES / sizeof CONV_CASES[0]; i++) conv_case(&CONV_CASES[i], p);
}
static void test_conv_shapes(void) { conv_cases(PRECISION_FP32); }
/* bf16 kernels where this CPU has them (the check above says which ran); fp16 runs fp32 kernels on rounded values */
static void test_conv_shapes_bf16(void) {
    if (!conv_cpu_native_bf16()) test_note("this CPU has no AVX512-BF16: bf16 networks run the fp32 kernels");
    conv_cases(PRECISION_BF16);
}
static void test_conv_shapes_fp16(void) { conv_cases(PRECISION_FP16); }

/* The model runs backward-weights and then backward-data on one dy, and at bf16 the second reuses the first's
 * packing of dy: the same bits as packing afresh; never after another dy, nor after the packing was used once (dy
 * may change then). */
static void test_conv_dy_reuse(void) {
    if (!conv_cpu_native_bf16()) {
        test_note("this CPU has no AVX512-BF16: nothing is packed");
        return;
    }
    const int n = 4, c = 32, h = 8;
    ConvShape s = conv_shape(n, c, h, h, c, 3, 1, 1);
    size_t nx = (size_t)n * c * h * h, nw = (size_t)c * c * 9;
    float *x = test_alloc(nx), *w = test_alloc(nw), *dy1 = test_alloc(nx), *dy2 = test_alloc(nx);
    fill_normal(x, nx, 41, 1), fill_normal(w, nw, 42, 0.1f), fill_normal(dy1, nx, 43, 1), fill_normal(dy2, nx, 44, 1);
    round_all(PRECISION_BF16, x, nx), round_all(PRECISION_BF16, w, nw), round_all(PRECISION_BF16, dy1, nx);
    round_all(PRECISION_BF16, dy2, nx);
    Layout l = fast->act_layout(c, h * h);
    float *fx = be_put(fast, x, l, n, c, h, h), *fdy1 = be_put(fast, dy1, l, n, c, h, h);
    float *fdy2 = be_put(fast, dy2, l, n, c, h, h), *fdw = be_zeros(fast, nw), *dx[5];
    for (int k = 0; k < 5; k++) dx[k] = be_zeros(fast, nx);
    ConvOp *op = fast->conv_create(&s, l, l, false);
    fast->conv_set_precision(op, PRECISION_BF16);
    fast->conv_backward_data(op, n, fdy1, w, dx[0]); /* packs dy1 itself */
    fast->conv_backward_weights(op, n, fx, fdy1, fdw, NULL);
    fast->conv_backward_data(op, n, fdy1, w, dx[1]); /* reuses the packing of dy1 */
    CHECK(memcmp(dx[0], dx[1], sizeof(float) * nx) == 0, "dx from the reused packing differs from a fresh one");
    fast->conv_backward_weights(op, n, fx, fdy1, fdw, NULL);
    fast->conv_backward_data(op, n, fdy2, w, dx[2]); /* another dy right after backward-weights of dy1 */
    fast->conv_backward_data(op, n, fdy2, w, dx[3]);
    CHECK(memcmp(dx[2], dx[3], sizeof(float) * nx) == 0 && memcmp(dx[2], dx[0], sizeof(float) * nx) != 0,
          "backward-data of another dy used the packing of the previous one");
    fast->conv_backward_weights(op, n, fx, fdy1, fdw, NULL);
    fast->conv_backward_data(op, n, fdy1, w, dx[4]); /* uses the packing once */
    fast->copy(fdy1, fdy2, sizeof(float) * nx);     /* then dy1's buffer changes */
    fast->conv_backward_data(op, n, fdy1, w, dx[4]);
    CHECK(memcmp(dx[4], dx[2], sizeof(float) * nx) == 0, "a packing was used twice, after dy had changed");
    fast->conv_destroy(op);
    for (int k = 0; k < 5; k++) be_free(fast, dx[k], nx);
    be_free(fast, fx, nx), be_free(fast, fdy1, nx), be_free(fast, fdy2, nx), be_free(fast, fdw, nw);
    free(x), free(w), free(dy1), free(dy2);
}

static void bn_case(int n, int c, int h, bool relu, int threads_a, int threads_b) {
    size_t nx = (size_t)n * c * h * h;
    float *x = test_alloc(nx), *dy = test_alloc(nx), *g = test_alloc(c), *b = test_alloc(c);
    fill_normal(x, nx, 11, 3);
    for (size_t i = 0; i < nx; i++) x[i] += 5; /* a large mean tests the centred variance */
    fill_normal(dy, nx, 12, 1);
    fill_uniform(g, c, 13, 0.5f, 1.5f);
    fill_normal(b, c, 14, 0.1f);
    BnShape s = {n, c, h * h, 1e-5f, PRECISION_FP32};
    float *yr = test_alloc(nx), *dxr = test_alloc(nx), *mr = test_alloc(c), *ir = test_alloc(c), *dgr = test_alloc(c);
    float *dbr = test_alloc(c), *rmr = test_alloc(c), *rvr = test_alloc(c);
    for (int i = 0; i < c; i++) rvr[i] = 1;
    ref->bn_forward_train(&s, LAYOUT_NCHW, relu, x, g, b, yr, mr, ir, 0.1f, rmr, rvr, NULL);
    ref->bn_backward(&s, LAYOUT_NCHW, relu, x, yr, dy, g, b, mr, ir, dxr, dgr, dbr, NULL);
    Layout l = fast->act_layout(c, h * h);
    float *results[2][5];
    int threads[2] = {threads_a, threads_b};
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(threads[t]);
        float *fx = be_put(fast, x, l, n, c, h, h), *fdy = be_put(fast, dy, l, n, c, h, h);
        float *fy = test_alloc(nx), *fdx = test_alloc(nx), *m = test_alloc(c), *is = test_alloc(c);
        float *dg = test_alloc(c), *db = test_alloc(c), *rm = test_alloc(c), *rv = test_alloc(c);
        for (int i = 0; i < c; i++) rv[i] = 1;
        fast->bn_forward_train(&s, l, relu, fx, g, b, fy, m, is, 0.1f, rm, rv, NULL);
        fast->bn_backward(&s, l, relu, fx, fy, fdy, g, b, m, is, fdx, dg, db, NULL);
        float *y = test_alloc(nx), *dx = test_alloc(nx);
        be_get(fast, fy, l, n, c, h, h, y);
        be_get(fast, fdx, l, n, c, h, h, dx);
        char what[96];
        snprintf(what, sizeof what, "bn %dx%dx%dx%d relu=%d threads=%d", n, c, h, h, relu, threads[t]);
        expect_rel(what, y, yr, nx, 1e-6);
        expect_rel(what, dx, dxr, nx, 1e-5);
        expect_rel(what, dg, dgr, c, 1e-5);
        expect_rel(what, db, dbr, c, 1e-5);
        expect_rel(what, rm, rmr, c, 1e-6);
        expect_rel(what, rv, rvr, c, 1e-6);
        results[t][0] = y, results[t][1] = dx, results[t][2] = dg, results[t][3] = db, results[t][4] = rv;
        be_free(fast, fx, nx), be_free(fast, fdy, nx);
        free(fy), free(fdx), free(m), free(is), free(rm);
    }
    omp_set_num_threads(threads_b);
    size_t sizes[5] = {nx, nx, (size_t)c, (size_t)c, (size_t)c};
    for (int k = 0; k < 5; k++) {
        CHECK(memcmp(results[0][k], results[1][k], sizes[k] * sizeof(float)) == 0,
              "bn %dx%dx%d: result %d differs between %d and %d threads", n, c, h, k, threads_a, threads_b);
        free(results[0][k]), free(results[1][k]);
    }
    free(x), free(dy), free(g), free(b), free(yr), free(dxr), free(mr), free(ir), free(dgr), free(dbr), free(rmr);
    free(rvr);
}

static void test_batchnorm_shapes(void) {
    int max = omp_get_max_threads();
    bn_case(4, 64, 8, true, 1, max);
    bn_case(2, 512, 4, false, 1, max);
    bn_case(3, 48, 5, false, 1, max);
    bn_case(256, 1024, 1, true, 1, max); /* batchnorm1d of the projector */
    bn_case(6, 10, 1, false, 1, max);    /* channels not a multiple of 16 */
    bn_case(2, 3, 6, true, 1, max);
}

static void test_pool_linear_shapes(void) {
    /* max-pool after the ResNet-50 stem, on ReLU outputs (ties) */
    int n = 2, c = 64, h = 16;
    size_t nx = (size_t)n * c * h * h;
    float *x = test_alloc(nx);
    fill_normal(x, nx, 21, 1);
    for (size_t i = 0; i < nx; i++) x[i] = fmaxf(x[i], 0);
    PoolShape s = pool_shape(n, c, h, h, 3, 2, 1);
    size_t ny = (size_t)n * c * s.ho * s.wo;
    float *dy = test_alloc(ny), *yr = test_alloc(ny), *dxr = test_alloc(nx), *got = test_alloc(nx);
    fill_normal(dy, ny, 22, 1);
    ref->maxpool_forward(&s, LAYOUT_NCHW, x, yr);
    ref->maxpool_backward(&s, LAYOUT_NCHW, x, dy, dxr);
    Layout l = fast->act_layout(c, h * h);
    float *fx = be_put(fast, x, l, n, c, h, h), *fdy = be_put(fast, dy, l, n, c, s.ho, s.wo);
    float *fy = be_zeros(fast, ny), *fdx = be_zeros(fast, nx);
    fast->maxpool_forward(&s, l, fx, fy);
    fast->maxpool_backward(&s, l, fx, fdy, fdx);
    be_get(fast, fy, l, n, c, s.ho, s.wo, got);
    expect_rel("maxpool y", got, yr, ny, 0);
    be_get(fast, fdx, l, n, c, h, h, got);
    expect_rel("maxpool dx", got, dxr, nx, 0);
    /* linear layers of the heads: 512 -> 1024 -> 128 at batch 64 */
    int rows = 64, in = 512, out = 1024;
    float *lx = test_alloc((size_t)rows * in), *lw = test_alloc((size_t)out * in), *lb = test_alloc(out);
    float *ldy = test_alloc((size_t)rows * out);
    fill_normal(lx, (size_t)rows * in, 23, 1), fill_normal(lw, (size_t)out * in, 24, 0.05f);
    fill_normal(lb, out, 25, 1), fill_normal(ldy, (size_t)rows * out, 26, 1);
    float *ry = test_alloc((size_t)rows * out), *rdx = test_alloc((size_t)rows * in), *rdw = test_alloc((size_t)out * in);
    float *rdb = test_alloc(out), *fy2 = test_alloc((size_t)rows * out), *fdx2 = test_alloc((size_t)rows * in);
    float *fdw2 = test_alloc((size_t)out * in), *fdb2 = test_alloc(out);
    ref->linear_forward(rows, in, out, lx, lw, lb, ry);
    ref->linear_backward(rows, in, out, lx, lw, ldy, rdx, rdw, rdb);
    fast->linear_forward(rows, in, out, lx, lw, lb, fy2);
    fast->linear_backward(rows, in, out, lx, lw, ldy, fdx2, fdw2, fdb2);
    expect_rel("linear y", fy2, ry, (size_t)rows * out, 1e-6);
    expect_rel("linear dx", fdx2, rdx, (size_t)rows * in, 1e-6);
    expect_rel("linear dw", fdw2, rdw, (size_t)out * in, 1e-6);
    expect_rel("linear db", fdb2, rdb, out, 1e-6);
    be_free(fast, fx, nx), be_free(fast, fdy, ny), be_free(fast, fy, ny), be_free(fast, fdx, nx);
    free(x), free(dy), free(yr), free(dxr), free(got), free(lx), free(lw), free(lb), free(ldy), free(ry), free(rdx);
    free(rdw), free(rdb), free(fy2), free(fdx2), free(fdw2), free(fdb2);
}

int main(void) {
    ref = backend_ref();
    fast = backend_cpu();
    RUN(test_conv_shapes);
    RUN(test_conv_shapes_bf16);
    RUN(test_conv_shapes_fp16);
    RUN(test_conv_dy_reuse);
    RUN(test_batchnorm_shapes);
    RUN(test_pool_linear_shapes);
    return test_finish();
}
