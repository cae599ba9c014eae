/* Every op of every backend against PyTorch (fixture ops.safetensors from tests/oracle/make_fixtures.py).
 *
 * Tolerances: reference ops accumulate in double, so they agree with PyTorch to float rounding (rtol 1e-5 on
 * values of order 1). The CPU backend's Winograd convolution rounds differently (its transforms amplify rounding
 * by ~10-100x), so its convolution checks use rtol 2e-4 / atol 2e-4 of the output scale. */
#include "tests/util/fixture.h"
#include "tests/util/testlib.h"
#include "trainer/core/error.h"
#include "trainer/ops/ref/ops_ref.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static StFile fx;
static const Backend *be;
static double conv_tol;

static float max_abs(const float *x, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

static void check(const char *what, const float *got, const float *want, size_t n, double rtol) {
    char label[128];
    snprintf(label, sizeof label, "%s[%s]", what, be->name);
    CHECK_CLOSE(label, got, want, n, rtol, rtol * (max_abs(want, n) + 1e-6));
}

static void test_conv(void) {
    for (int i = 0;; i++) {
        char key[64];
        snprintf(key, sizeof key, "conv%d.shape", i);
        if (!st_find(&fx, key)) break;
        int v[9];
        for (int k = 0; k < 9; k++) v[k] = (int)fixture_i64(&fx, key, k);
        ConvShape s = conv_shape(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
        bool bias = v[8];
        char name[64];
#define T(field) (snprintf(name, sizeof name, "conv%d." field, i), fixture_f32(&fx, name, NULL))
        float *x = T("x"), *w = T("w"), *y = T("y"), *dy = T("dy"), *dx = T("dx"), *dw = T("dw");
        float *b = bias ? T("b") : NULL, *db = bias ? T("db") : NULL;
#undef T
        Layout li = be->act_layout(s.ci, s.hi * s.wi), lo = be->act_layout(s.co, s.ho * s.wo);
        size_t nx = (size_t)s.n * s.ci * s.hi * s.wi, ny = (size_t)s.n * s.co * s.ho * s.wo;
        size_t nw = (size_t)s.co * s.ci * s.k * s.k;
        float *dev_x = be_put(be, x, li, s.n, s.ci, s.hi, s.wi), *dev_w = be_put_flat(be, w, nw);
        float *dev_b = bias ? be_put_flat(be, b, s.co) : NULL;
        float *dev_y = be_zeros(be, ny), *dev_dy = be_put(be, dy, lo, s.n, s.co, s.ho, s.wo);
        float *dev_dx = be_zeros(be, nx), *dev_dw = be_zeros(be, nw), *dev_db = be_zeros(be, s.co);
        ConvOp *op = be->conv_create(&s, li, lo, bias);
        be->conv_forward(op, s.n, dev_x, dev_w, dev_b, dev_y);
        be->conv_backward_data(op, s.n, dev_dy, dev_w, dev_dx);
        be->conv_backward_weights(op, s.n, dev_x, dev_dy, dev_dw, bias ? dev_db : NULL);
        float *got = test_alloc(nx > ny ? (nx > nw ? nx : nw) : (ny > nw ? ny : nw));
        char what[64];
        snprintf(what, sizeof what, "conv%d.y", i);
        be_get(be, dev_y, lo, s.n, s.co, s.ho, s.wo, got);
        check(what, got, y, ny, conv_tol);
        snprintf(what, sizeof what, "conv%d.dx", i);
        be_get(be, dev_dx, li, s.n, s.ci, s.hi, s.wi, got);
        check(what, got, dx, nx, conv_tol);
        snprintf(what, sizeof what, "conv%d.dw", i);
        be_get_flat(be, dev_dw, nw, got);
        check(what, got, dw, nw, conv_tol);
        if (bias) {
            snprintf(what, sizeof what, "conv%d.db", i);
            be_get_flat(be, dev_db, s.co, got);
            check(what, got, db, s.co, 1e-5);
        }
        be->conv_destroy(op);
        be_free(be, dev_x, nx), be_free(be, dev_w, nw), be_free(be, dev_y, ny), be_free(be, dev_dy, ny);
        be_free(be, dev_dx, nx), be_free(be, dev_dw, nw), be_free(be, dev_db, s.co);
        if (dev_b) be_free(be, dev_b, s.co);
        free(x), free(w), free(y), free(dy), free(dx), free(dw), free(b), free(db), free(got);
    }
}

static void test_batchnorm(void) {
    for (int i = 0;; i++) {
        char key[64];
        snprintf(key, sizeof key, "bn%d.shape", i);
        if (!st_find(&fx, key)) break;
        int n = (int)fixture_i64(&fx, key, 0), c = (int)fixture_i64(&fx, key, 1);
        int h = (int)fixture_i64(&fx, key, 2), w = (int)fixture_i64(&fx, key, 3);
        bool relu = fixture_i64(&fx, key, 4);
        char name[64];
#define T(field) (snprintf(name, sizeof name, "bn%d." field, i), fixture_f32(&fx, name, NULL))
        float *x = T("x"), *y = T("y"), *ye = T("y_eval"), *dy = T("dy"), *dx = T("dx"), *gamma = T("gamma");
        float *beta = T("beta"), *dg = T("dgamma"), *dbt = T("dbeta"), *rm0 = T("rm0"), *rv0 = T("rv0");
        float *rm1 = T("rm1"), *rv1 = T("rv1");
#undef T
        size_t nx = (size_t)n * c * h * w;
        Layout l = be->act_layout(c, h * w);
        BnShape s = {n, c, h * w, 1e-5f, PRECISION_FP32};
        float *dev_x = be_put(be, x, l, n, c, h, w), *dev_y = be_zeros(be, nx), *dev_dy = be_put(be, dy, l, n, c, h, w);
        float *dev_dx = be_zeros(be, nx), *dev_g = be_put_flat(be, gamma, c), *dev_b = be_put_flat(be, beta, c);
        float *dev_rm = be_put_flat(be, rm0, c), *dev_rv = be_put_flat(be, rv0, c);
        float *dev_mean = be_zeros(be, c), *dev_inv = be_zeros(be, c), *dev_dg = be_zeros(be, c);
        float *dev_db = be_zeros(be, c);
        float *got = test_alloc(nx);
        char what[64];
        be->bn_forward_eval(&s, l, relu, dev_x, dev_g, dev_b, dev_rm, dev_rv, dev_y);
        be_get(be, dev_y, l, n, c, h, w, got);
        snprintf(what, sizeof what, "bn%d.y_eval", i);
        check(what, got, ye, nx, 1e-5);
        be->bn_forward_train(&s, l, relu, dev_x, dev_g, dev_b, dev_y, dev_mean, dev_inv, 0.1f, dev_rm, dev_rv, NULL);
        be_get(be, dev_y, l, n, c, h, w, got);
        snprintf(what, sizeof what, "bn%d.y", i);
        check(what, got, y, nx, 1e-5);
        be_get_flat(be, dev_rm, c, got);
        snprintf(what, sizeof what, "bn%d.running_mean", i);
        check(what, got, rm1, c, 1e-5);
        be_get_flat(be, dev_rv, c, got);
        snprintf(what, sizeof what, "bn%d.running_var", i);
        check(what, got, rv1, c, 1e-5);
        be->bn_backward(&s, l, relu, dev_x, dev_y, dev_dy, dev_g, dev_b, dev_mean, dev_inv, dev_dx, dev_dg, dev_db, NULL);
        be_get(be, dev_dx, l, n, c, h, w, got);
        snprintf(what, sizeof what, "bn%d.dx", i);
        check(what, got, dx, nx, 1e-4);
        be_get_flat(be, dev_dg, c, got);
        snprintf(what, sizeof what, "bn%d.dgamma", i);
        check(what, got, dg, c, 1e-5);
        be_get_flat(be, dev_db, c, got);
        snprintf(what, sizeof what, "bn%d.dbeta", i);
        check(what, got, dbt, c, 1e-5);
        float *devs[] = {dev_x, dev_y, dev_dy, dev_dx};
        for (int k = 0; k < 4; k++) be_free(be, devs[k], nx);
        float *small[] = {dev_g, dev_b, dev_rm, dev_rv, dev_mean, dev_inv, dev_dg, dev_db};
        for (int k = 0; k < 8; k++) be_free(be, small[k], c);
        float *hs[] = {x, y, ye, dy, dx, gamma, beta, dg, dbt, rm0, rv0, rm1, rv1, got};
        for (int k = 0; k < 14; k++) free(hs[k]);
    }
}

static void test_pooling(void) {
    for (int i = 0; i < 2; i++) {
        char key[64], name[64], what[64];
        snprintf(key, sizeof key, "maxpool%d.shape", i);
        int n = (int)fixture_i64(&fx, key, 0), c = (int)fixture_i64(&fx, key, 1);
        int h = (int)fixture_i64(&fx, key, 2), w = (int)fixture_i64(&fx, key, 3);
        PoolShape s = pool_shape(n, c, h, w, 3, 2, 1);
#define T(field) (snprintf(name, sizeof name, "maxpool%d." field, i), fixture_f32(&fx, name, NULL))
        float *x = T("x"), *y = T("y"), *dy = T("dy"), *dx = T("dx");
#undef T
        Layout l = be->act_layout(c, h * w);
        size_t nx = (size_t)n * c * h * w, ny = (size_t)n * c * s.ho * s.wo;
        float *dev_x = be_put(be, x, l, n, c, h, w), *dev_y = be_zeros(be, ny);
        float *dev_dy = be_put(be, dy, l, n, c, s.ho, s.wo), *dev_dx = be_zeros(be, nx), *got = test_alloc(nx);
        be->maxpool_forward(&s, l, dev_x, dev_y);
        be_get(be, dev_y, l, n, c, s.ho, s.wo, got);
        snprintf(what, sizeof what, "maxpool%d.y", i);
        check(what, got, y, ny, 0);
        be->maxpool_backward(&s, l, dev_x, dev_dy, dev_dx);
        be_get(be, dev_dx, l, n, c, h, w, got);
        snprintf(what, sizeof what, "maxpool%d.dx (ties to the first maximum)", i);
        check(what, got, dx, nx, 1e-6);
        be_free(be, dev_x, nx), be_free(be, dev_y, ny), be_free(be, dev_dy, ny), be_free(be, dev_dx, nx);
        free(x), free(y), free(dy), free(dx), free(got);
    }
    /* global average pooling [3, 32, 4, 4] */
    float *x = fixture_f32(&fx, "gap.x", NULL), *y = fixture_f32(&fx, "gap.y", NULL);
    float *dy = fixture_f32(&fx, "gap.dy", NULL), *dx = fixture_f32(&fx, "gap.dx", NULL), *got = test_alloc(3 * 32 * 16);
    Layout l = be->act_layout(32, 16);
    float *dev_x = be_put(be, x, l, 3, 32, 4, 4), *dev_y = be_zeros(be, 96), *dev_dy = be_put_flat(be, dy, 96);
    float *dev_dx = be_zeros(be, 3 * 32 * 16);
    be->gap_forward(3, 32, 16, l, dev_x, dev_y);
    be_get_flat(be, dev_y, 96, got);
    check("gap.y", got, y, 96, 1e-6);
    be->gap_backward(3, 32, 16, l, dev_dy, dev_dx);
    be_get(be, dev_dx, l, 3, 32, 4, 4, got);
    check("gap.dx", got, dx, 3 * 32 * 16, 1e-6);
    be_free(be, dev_x, 1536), be_free(be, dev_y, 96), be_free(be, dev_dy, 96), be_free(be, dev_dx, 1536);
    free(x), free(y), free(dy), free(dx), free(got);
}

static void test_relu_add(void) {
    size_t n;
    float *x = fixture_f32(&fx, "relu.x", &n), *y = fixture_f32(&fx, "relu.y", NULL);
    float *dy = fixture_f32(&fx, "relu.dy", NULL), *dx = fixture_f32(&fx, "relu.dx", NULL), *got = test_alloc(n);
    float *dev_x = be_put_flat(be, x, n), *dev_y = be_zeros(be, n), *dev_dy = be_put_flat(be, dy, n);
    float *dev_dx = be_zeros(be, n);
    be->relu_forward(n, dev_x, dev_y);
    be_get_flat(be, dev_y, n, got);
    check("relu.y", got, y, n, 0);
    be->relu_backward(n, dev_y, dev_dy, dev_dx);
    be_get_flat(be, dev_dx, n, got);
    check("relu.dx", got, dx, n, 0);
    /* add, add + ReLU and accumulate against plain arithmetic on the same data */
    float *want = test_alloc(n);
    be->add_forward(n, dev_x, dev_dy, dev_y, false, PRECISION_FP32);
    be_get_flat(be, dev_y, n, got);
    for (size_t i = 0; i < n; i++) want[i] = x[i] + dy[i];
    check("add", got, want, n, 0);
    be->add_forward(n, dev_x, dev_dy, dev_y, true, PRECISION_FP32);
    be_get_flat(be, dev_y, n, got);
    for (size_t i = 0; i < n; i++) want[i] = fmaxf(x[i] + dy[i], 0);
    check("add+relu", got, want, n, 0);
    be->accumulate(n, dev_dx, dev_x);
    be_get_flat(be, dev_dx, n, got);
    for (size_t i = 0; i < n; i++) want[i] = dx[i] + x[i];
    check("accumulate", got, want, n, 0);
    be_free(be, dev_x, n), be_free(be, dev_y, n), be_free(be, dev_dy, n), be_free(be, dev_dx, n);
    free(x), free(y), free(dy), free(dx), free(got), free(want);
}

/* got equals want bit for bit, a NaN standing for any NaN (hardware makes different ones). */
static void check_exact(const char *what, const float *got, const float *want, size_t n) {
    size_t differ = 0, first = n;
    for (size_t i = 0; i < n; i++) {
        bool same = isnan(want[i]) ? isnan(got[i]) : memcmp(&got[i], &want[i], sizeof(float)) == 0;
        if (!same && differ++ == 0) first = i;
    }
    CHECK(differ == 0, "%s[%s]: %zu of %zu values differ from torch's, first at %zu: %g, torch %g", what, be->name,
          differ, n, first, first < n ? got[first] : 0.0, first < n ? want[first] : 0.0);
}

/* ReLU where its definition matters: NaN, -0, infinities and subnormals, alone and after an addition, against
 * torch.relu and its gradient bit for bit. */
static void test_relu_special(void) {
    size_t n, m;
    float *x = fixture_f32(&fx, "relu_special.x", &n), *y = fixture_f32(&fx, "relu_special.y", NULL);
    float *dy = fixture_f32(&fx, "relu_special.dy", NULL), *dx = fixture_f32(&fx, "relu_special.dx", NULL);
    float *got = test_alloc(n);
    float *dev_x = be_put_flat(be, x, n), *dev_y = be_zeros(be, n), *dev_dy = be_put_flat(be, dy, n);
    float *dev_dx = be_zeros(be, n);
    be->relu_forward(n, dev_x, dev_y);
    be_get_flat(be, dev_y, n, got);
    check_exact("relu_special.y", got, y, n);
    be->relu_backward(n, dev_y, dev_dy, dev_dx);
    be_get_flat(be, dev_dx, n, got);
    check_exact("relu_special.dx", got, dx, n);
    be_free(be, dev_x, n), be_free(be, dev_y, n), be_free(be, dev_dy, n), be_free(be, dev_dx, n);
    free(x), free(y), free(dy), free(dx), free(got);
    float *a = fixture_f32(&fx, "add_relu_special.a", &m), *b = fixture_f32(&fx, "add_relu_special.b", NULL);
    float *want = fixture_f32(&fx, "add_relu_special.y", NULL), *sum = test_alloc(m);
    float *dev_a = be_put_flat(be, a, m), *dev_b = be_put_flat(be, b, m), *dev_s = be_zeros(be, m);
    for (int p = 0; p < 3; p++) { /* the rounding formats have their own loops (their ReLU included) */
        Precision fmt = p == 0 ? PRECISION_FP32 : p == 1 ? PRECISION_BF16 : PRECISION_FP16;
        be->add_forward(m, dev_a, dev_b, dev_s, true, fmt);
        be_get_flat(be, dev_s, m, sum);
        char what[64];
        snprintf(what, sizeof what, "add_relu_special.y (%s)", precision_name(fmt));
        check_exact(what, sum, want, m); /* every value here is exact in both 16-bit formats */
    }
    be_free(be, dev_a, m), be_free(be, dev_b, m), be_free(be, dev_s, m);
    free(a), free(b), free(want), free(sum);
}

static void test_linear(void) {
    for (int i = 0; i < 2; i++) {
        char name[64], what[64];
        bool bias = i == 0;
#define T(field) (snprintf(name, sizeof name, "linear%d." field, i), fixture_f32(&fx, name, NULL))
        float *x = T("x"), *w = T("w"), *y = T("y"), *dy = T("dy"), *dx = T("dx"), *dw = T("dw");
        float *b = bias ? T("b") : NULL, *db = bias ? T("db") : NULL;
#undef T
        const int n = 5, in = 12, out = 7;
        float *dev_x = be_put_flat(be, x, n * in), *dev_w = be_put_flat(be, w, out * in);
        float *dev_b = bias ? be_put_flat(be, b, out) : NULL, *dev_y = be_zeros(be, n * out);
        float *dev_dy = be_put_flat(be, dy, n * out), *dev_dx = be_zeros(be, n * in), *dev_dw = be_zeros(be, out * in);
        float *dev_db = be_zeros(be, out), *got = test_alloc(n * in > out * in ? n * in : out * in);
        be->linear_forward(n, in, out, dev_x, dev_w, dev_b, dev_y);
        be_get_flat(be, dev_y, n * out, got);
        snprintf(what, sizeof what, "linear%d.y", i);
        check(what, got, y, n * out, 1e-5);
        be->linear_backward(n, in, out, dev_x, dev_w, dev_dy, dev_dx, dev_dw, bias ? dev_db : NULL);
        be_get_flat(be, dev_dx, n * in, got);
        snprintf(what, sizeof what, "linear%d.dx", i);
        check(what, got, dx, n * in, 1e-5);
        be_get_flat(be, dev_dw, out * in, got);
        snprintf(what, sizeof what, "linear%d.dw", i);
        check(what, got, dw, out * in, 1e-5);
        if (bias) {
            be_get_flat(be, dev_db, out, got);
            snprintf(what, sizeof what, "linear%d.db", i);
            check(what, got, db, out, 1e-5);
        }
        be_free(be, dev_x, n * in), be_free(be, dev_w, out * in), be_free(be, dev_y, n * out);
        be_free(be, dev_dy, n * out), be_free(be, dev_dx, n * in), be_free(be, dev_dw, out * in);
        be_free(be, dev_db, out);
        if (dev_b) be_free(be, dev_b, out);
        free(x), free(w), free(y), free(dy), free(dx), free(dw), free(b), free(db), free(got);
    }
}

/* Row ops of the losses (reference implementations; the training loop calls them directly). */
static void test_loss_ops(void) {
    float *x = fixture_f32(&fx, "l2norm.x", NULL), *y = fixture_f32(&fx, "l2norm.y", NULL);
    float *dy = fixture_f32(&fx, "l2norm.dy", NULL), *dx = fixture_f32(&fx, "l2norm.dx", NULL);
    float got[60], norm[6];
    l2norm_forward_ref(6, 10, x, got, norm);
    CHECK_CLOSE("l2norm.y", got, y, 60, 1e-6, 1e-7);
    l2norm_backward_ref(6, 10, x, norm, dy, got);
    CHECK_CLOSE("l2norm.dx", got, dx, 60, 1e-5, 1e-6);
    float *a = fixture_f32(&fx, "cosdist.a", NULL), *b = fixture_f32(&fx, "cosdist.b", NULL);
    float *l = fixture_f32(&fx, "cosdist.l", NULL), *dl = fixture_f32(&fx, "cosdist.dl", NULL);
    float *da = fixture_f32(&fx, "cosdist.da", NULL), *db = fixture_f32(&fx, "cosdist.db", NULL);
    float gl[6], gda[60], gdb[60];
    cosdist_forward_ref(6, 10, a, b, gl);
    CHECK_CLOSE("cosdist.l", gl, l, 6, 1e-6, 1e-6);
    cosdist_backward_ref(6, 10, a, b, dl, gda, gdb);
    CHECK_CLOSE("cosdist.da", gda, da, 60, 1e-6, 1e-7);
    CHECK_CLOSE("cosdist.db", gdb, db, 60, 1e-6, 1e-7);
    float *logits = fixture_f32(&fx, "xent.logits", NULL), *loss = fixture_f32(&fx, "xent.loss", NULL);
    float *dlogits = fixture_f32(&fx, "xent.dlogits", NULL);
    int labels[6];
    for (int i = 0; i < 6; i++) labels[i] = (int)fixture_i64(&fx, "xent.labels", i);
    float gd[30];
    float gloss = (float)softmax_xent_ref(6, 5, logits, labels, gd);
    CHECK_CLOSE("xent.loss", &gloss, loss, 1, 1e-6, 1e-7);
    CHECK_CLOSE("xent.dlogits", gd, dlogits, 30, 1e-5, 1e-7);
    float *all[] = {x, y, dy, dx, a, b, l, dl, da, db, logits, loss, dlogits};
    for (int i = 0; i < 13; i++) free(all[i]);
}

/* bf16 results against PyTorch's bf16 ops: each element equal or one bf16 rounding away (a different summation
 * order in fp32 can tip a value to the neighbouring bf16 number), and almost all equal. */
static void check_bf16(const char *what, const float *got, const float *want, size_t n) {
    double scale = max_abs(want, n);
    size_t differ = 0, far = 0, worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (got[i] == want[i]) continue;
        differ++;
        double d = fabs((double)got[i] - want[i]), room = 0x1p-7 * fmax(fabs(got[i]), fabs(want[i])) + 1e-6 * scale;
        if (d > room && far++ == 0) worst = i;
    }
    CHECK(far == 0, "%s[%s]: %zu of %zu values more than one bf16 rounding from PyTorch's (e.g. [%zu] %.9g vs %.9g)",
          what, be->name, far, n, worst, got[worst], want[worst]);
    CHECK(differ <= n / 20, "%s[%s]: %zu of %zu values differ from PyTorch's", what, be->name, differ, n);
}

/* Parameter gradients: ours stay fp32, PyTorch's are the bf16 weight copies' (rounded): within half a bf16 step,
 * plus fp32 summation-order noise. */
static void check_bf16_param(const char *what, const float *got, const float *want, size_t n) {
    char label[128];
    snprintf(label, sizeof label, "%s[%s]", what, be->name);
    CHECK_CLOSE(label, got, want, n, 0x1p-8, 1e-5 * (max_abs(want, n) + 1e-6));
}

static float *put_rounded(const float *host, size_t n, Layout l, int nn, int c, int h, int w) {
    float *p = be_put(be, host, l, nn, c, h, w);
    be->round_lowp(PRECISION_BF16, n, p);
    return p;
}

static float *put_flat_rounded(const float *host, size_t n) {
    float *p = be_put_flat(be, host, n);
    be->round_lowp(PRECISION_BF16, n, p);
    return p;
}

/* What a bf16 network does around a convolution and a linear layer (model.c): operands rounded, the op told the
 * network's precision (bf16 kernels where the backend has them), result rounded; against PyTorch's bf16 convolution
 * and linear layer. */
static void test_bf16_ops(void) {
    for (int i = 0;; i++) {
        char key[64], name[64], what[64];
        snprintf(key, sizeof key, "bf16conv%d.shape", i);
        if (!st_find(&fx, key)) break;
        int v[8];
        for (int k = 0; k < 8; k++) v[k] = (int)fixture_i64(&fx, key, k);
        ConvShape s = conv_shape(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
#define T(field) (snprintf(name, sizeof name, "bf16conv%d." field, i), fixture_f32(&fx, name, NULL))
        float *x = T("x"), *w = T("w"), *y = T("y"), *dy = T("dy"), *dx = T("dx"), *dw = T("dw");
#undef T
        Layout li = be->act_layout(s.ci, s.hi * s.wi), lo = be->act_layout(s.co, s.ho * s.wo);
        size_t nx = (size_t)s.n * s.ci * s.hi * s.wi, ny = (size_t)s.n * s.co * s.ho * s.wo;
        size_t nw = (size_t)s.co * s.ci * s.k * s.k;
        float *dev_x = put_rounded(x, nx, li, s.n, s.ci, s.hi, s.wi), *dev_w = put_flat_rounded(w, nw);
        float *dev_dy = put_rounded(dy, ny, lo, s.n, s.co, s.ho, s.wo);
        float *dev_y = be_zeros(be, ny), *dev_dx = be_zeros(be, nx), *dev_dw = be_zeros(be, nw);
        ConvOp *op = be->conv_create(&s, li, lo, false);
        be->conv_set_precision(op, PRECISION_BF16);
        be->conv_forward(op, s.n, dev_x, dev_w, NULL, dev_y);
        be->round_lowp(PRECISION_BF16, ny, dev_y);
        be->conv_backward_data(op, s.n, dev_dy, dev_w, dev_dx);
        be->round_lowp(PRECISION_BF16, nx, dev_dx);
        be->conv_backward_weights(op, s.n, dev_x, dev_dy, dev_dw, NULL);
        float *got = test_alloc(nx > ny ? (nx > nw ? nx : nw) : (ny > nw ? ny : nw));
        snprintf(what, sizeof what, "bf16conv%d.y", i);
        be_get(be, dev_y, lo, s.n, s.co, s.ho, s.wo, got);
        check_bf16(what, got, y, ny);
        snprintf(what, sizeof what, "bf16conv%d.dx", i);
        be_get(be, dev_dx, li, s.n, s.ci, s.hi, s.wi, got);
        check_bf16(what, got, dx, nx);
        snprintf(what, sizeof what, "bf16conv%d.dw", i);
        be_get_flat(be, dev_dw, nw, got);
        check_bf16_param(what, got, dw, nw);
        be->conv_destroy(op);
        be_free(be, dev_x, nx), be_free(be, dev_w, nw), be_free(be, dev_y, ny), be_free(be, dev_dy, ny);
        be_free(be, dev_dx, nx), be_free(be, dev_dw, nw);
        free(x), free(w), free(y), free(dy), free(dx), free(dw), free(got);
    }
    const int n = 8, in = 48, out = 24;
    float *x = fixture_f32(&fx, "bf16linear.x", NULL), *w = fixture_f32(&fx, "bf16linear.w", NULL);
    float *b = fixture_f32(&fx, "bf16linear.b", NULL), *dy = fixture_f32(&fx, "bf16linear.dy", NULL);
    float *y = fixture_f32(&fx, "bf16linear.y", NULL), *dx = fixture_f32(&fx, "bf16linear.dx", NULL);
    float *dw = fixture_f32(&fx, "bf16linear.dw", NULL), *db = fixture_f32(&fx, "bf16linear.db", NULL);
    float *dev_x = put_flat_rounded(x, n * in), *dev_w = put_flat_rounded(w, out * in);
    float *dev_b = put_flat_rounded(b, out), *dev_dy = put_flat_rounded(dy, n * out);
    float *dev_y = be_zeros(be, n * out), *dev_dx = be_zeros(be, n * in), *dev_dw = be_zeros(be, out * in);
    float *dev_db = be_zeros(be, out), *got = test_alloc(out * in); /* the largest: dw */
    be->linear_forward(n, in, out, dev_x, dev_w, dev_b, dev_y);
    be->round_lowp(PRECISION_BF16, n * out, dev_y);
    be->linear_backward(n, in, out, dev_x, dev_w, dev_dy, dev_dx, dev_dw, dev_db);
    be->round_lowp(PRECISION_BF16, n * in, dev_dx);
    be_get_flat(be, dev_y, n * out, got);
    check_bf16("bf16linear.y", got, y, n * out);
    be_get_flat(be, dev_dx, n * in, got);
    check_bf16("bf16linear.dx", got, dx, n * in);
    be_get_flat(be, dev_dw, out * in, got);
    check_bf16_param("bf16linear.dw", got, dw, out * in);
    be_get_flat(be, dev_db, out, got);
    check_bf16_param("bf16linear.db", got, db, out);
    be_free(be, dev_x, n * in), be_free(be, dev_w, out * in), be_free(be, dev_b, out), be_free(be, dev_dy, n * out);
    be_free(be, dev_y, n * out), be_free(be, dev_dx, n * in), be_free(be, dev_dw, out * in), be_free(be, dev_db, out);
    free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db), free(got);
}

/* A gradient summed over two passes in bf16 (ours: accumulate_lowp of each pass's gradient, got) against autocast's
 * .grad (want): each pass's rounding may tip to the neighbouring bf16 number where the summation orders differ, so
 * each value is within one bf16 rounding of each term and of the sum, and at most a tenth differ. */
static void check_twice(const char *what, const float *got, const float *want, const float *pass0, const float *pass1,
                        size_t n) {
    size_t differ = 0, far = 0, worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (got[i] == want[i]) continue;
        differ++;
        double room = 0x1p-7 * (fabs(pass0[i]) + fabs(pass1[i]) + fabs(want[i])) + 1e-30;
        if (fabs((double)got[i] - want[i]) > room && far++ == 0) worst = i;
    }
    CHECK(far == 0, "%s[%s]: %zu of %zu gradients more than a bf16 rounding of their terms from autocast's (e.g. [%zu] "
          "%.9g vs %.9g)", what, be->name, far, n, worst, got[worst], want[worst]);
    CHECK(differ <= n / 10, "%s[%s]: %zu of %zu gradients differ from autocast's", what, be->name, differ, n);
    printf("  # %s[%s]: %zu of %zu differ from autocast's by a rounding\n", what, be->name, differ, n);
    bool all_bf16 = true;
    for (size_t i = 0; i < n; i++) all_bf16 = all_bf16 && round_to(PRECISION_BF16, got[i]) == got[i];
    CHECK(all_bf16, "%s[%s]: a gradient summed in bf16 is not a bf16 value", what, be->name);
}

/* The fixture's input and output gradient of use i of a layer used twice (caller frees). */
static void twice_pass(const char *layer, int i, float **x, float **dy) {
    char name[64];
    snprintf(name, sizeof name, "twice.%s.x%d", layer, i);
    *x = fixture_f32(&fx, name, NULL);
    snprintf(name, sizeof name, "twice.%s.dy%d", layer, i);
    *dy = fixture_f32(&fx, name, NULL);
}

/* lowp_weight_grads against torch.autocast: a convolution and a linear layer each used twice in one autocast region
 * (the fixture's .grad is autocast's: the two uses' bf16 gradients summed in bf16). Ours: each pass's weight
 * gradient computed into a zeroed buffer by an op told that the network rounds it (cuda: on tensor cores), then
 * accumulate_lowp into the gradient, as model.c does. */
static void test_autocast_weight_grads(void) {
    const Precision p = PRECISION_BF16;
    ConvShape s = conv_shape(2, 16, 8, 8, 32, 3, 1, 1);
    size_t nx = (size_t)s.n * s.ci * s.hi * s.wi, ny = (size_t)s.n * s.co * s.ho * s.wo;
    size_t nw = (size_t)s.co * s.ci * s.k * s.k;
    Layout li = be->act_layout(s.ci, s.hi * s.wi), lo = be->act_layout(s.co, s.ho * s.wo);
    ConvOp *op = be->conv_create(&s, li, lo, false);
    be->conv_set_precision(op, p);
    be->conv_set_weight_grad_precision(op, p);
    float *g = be_zeros(be, nw), *pass = be_zeros(be, nw), *host[2] = {test_alloc(nw), test_alloc(nw)};
    for (int i = 0; i < 2; i++) {
        float *x, *dy;
        twice_pass("conv", i, &x, &dy);
        float *dev_x = put_rounded(x, nx, li, s.n, s.ci, s.hi, s.wi), *dev_dy = put_rounded(dy, ny, lo, s.n, s.co,
                                                                                               s.ho, s.wo);
        be->zero(pass, sizeof(float) * nw);
        be->conv_backward_weights(op, s.n, dev_x, dev_dy, pass, NULL);
        be_get_flat(be, pass, nw, host[i]);
        be->accumulate_lowp(p, nw, g, pass);
        be_free(be, dev_x, nx), be_free(be, dev_dy, ny);
        free(x), free(dy);
    }
    float *want = fixture_f32(&fx, "twice.conv.dw", NULL), *got = test_alloc(nw);
    be_get_flat(be, g, nw, got);
    check_twice("twice.conv.dw", got, want, host[0], host[1], nw);
    be->conv_destroy(op);
    be_free(be, g, nw), be_free(be, pass, nw);
    free(want), free(got), free(host[0]), free(host[1]);

    const int n = 8, in = 48, out = 24;
    const size_t np = (size_t)out * in + out; /* weight, then bias */
    float *w = fixture_f32(&fx, "twice.linear.w", NULL), *b = fixture_f32(&fx, "twice.linear.b", NULL);
    float *dev_w = put_flat_rounded(w, (size_t)out * in), *dev_b = put_flat_rounded(b, out);
    g = be_zeros(be, np), pass = be_zeros(be, np), host[0] = test_alloc(np), host[1] = test_alloc(np);
    for (int i = 0; i < 2; i++) {
        float *x, *dy;
        twice_pass("linear", i, &x, &dy);
        float *dev_x = put_flat_rounded(x, (size_t)n * in), *dev_dy = put_flat_rounded(dy, (size_t)n * out);
        be->zero(pass, sizeof(float) * np);
        be->linear_backward(n, in, out, dev_x, dev_w, dev_dy, NULL, pass, pass + (size_t)out * in);
        be_get_flat(be, pass, np, host[i]);
        be->accumulate_lowp(p, np, g, pass);
        be_free(be, dev_x, (size_t)n * in), be_free(be, dev_dy, (size_t)n * out);
        free(x), free(dy);
    }
    float *want_w = fixture_f32(&fx, "twice.linear.dw", NULL), *want_b = fixture_f32(&fx, "twice.linear.db", NULL);
    got = test_alloc(np);
    be_get_flat(be, g, np, got);
    size_t nlw = (size_t)out * in;
    check_twice("twice.linear.dw", got, want_w, host[0], host[1], nlw);
    check_twice("twice.linear.db", got + nlw, want_b, host[0] + nlw, host[1] + nlw, out);
    be_free(be, g, np), be_free(be, pass, np), be_free(be, dev_w, nlw), be_free(be, dev_b, out);
    free(w), free(b), free(want_w), free(want_b), free(got), free(host[0]), free(host[1]);
}

/* torch.optim.SGD's step and the BYOL EMA. The EMA (torch: mul, mul, add) must give torch's bits. torch's SGD
 * rounds `add(x, alpha)` once (an FMA) where ours rounds the product and the sum (backend.h), so each weight and
 * momentum buffer may differ from torch's by one rounding of the terms that make it (2 float epsilons of their
 * magnitudes: more than an ulp of the result where g and wd w nearly cancel); how many differ is printed. */
static void test_optimiser(void) {
    size_t n;
    float *w = fixture_f32(&fx, "sgd.w", &n), *g = fixture_f32(&fx, "sgd.g", NULL);
    float *buf = fixture_f32(&fx, "sgd.buf", NULL);
    float *hyper = fixture_f32(&fx, "sgd.hyper", NULL), *got = test_alloc(n), *got_buf = test_alloc(n);
    for (int nesterov = 0; nesterov < 2; nesterov++) {
        char key[32];
        snprintf(key, sizeof key, "sgd%d.w", nesterov);
        float *want = fixture_f32(&fx, key, NULL);
        snprintf(key, sizeof key, "sgd%d.buf", nesterov);
        float *want_buf = fixture_f32(&fx, key, NULL);
        float *dw = be_put_flat(be, w, n), *dg = be_put_flat(be, g, n), *db = be_put_flat(be, buf, n);
        be->sgd_update(n, dw, dg, db, hyper[0], hyper[1], hyper[2], nesterov);
        be_get_flat(be, dw, n, got), be_get_flat(be, db, n, got_buf);
        const double lr = hyper[0], mom = hyper[1], wd = hyper[2];
        size_t off_w = 0, off_b = 0, bad = 0;
        for (size_t i = 0; i < n; i++) {
            double gp = fabs(g[i]) + wd * fabs(w[i]), b_terms = mom * fabs(buf[i]) + gp;
            double step = nesterov ? gp + mom * fabs(want_buf[i]) : fabs(want_buf[i]);
            double w_terms = fabs(w[i]) + lr * (step + b_terms);
            off_w += got[i] != want[i], off_b += got_buf[i] != want_buf[i];
            bad += fabs((double)got_buf[i] - want_buf[i]) > 2 * FLT_EPSILON * b_terms ||
                   fabs((double)got[i] - want[i]) > 2 * FLT_EPSILON * w_terms;
        }
        CHECK(bad == 0, "sgd[%s] nesterov %d: %zu elements differ from torch by more than a rounding of their terms",
              be->name, nesterov, bad);
        printf("  # sgd[%s] nesterov %d: %zu of %zu weights and %zu buffers differ from torch's (its FMA)\n",
               be->name, nesterov, off_w, n, off_b);
        be_free(be, dw, n), be_free(be, dg, n), be_free(be, db, n);
        free(want), free(want_buf);
    }
    float *k = fixture_f32(&fx, "ema.k", &n), *q = fixture_f32(&fx, "ema.q", NULL);
    float *ab = fixture_f32(&fx, "ema.ab", NULL), *want = fixture_f32(&fx, "ema.out", NULL);
    float *dk = be_put_flat(be, k, n), *dq = be_put_flat(be, q, n);
    be->axpby(n, ab[1], dq, ab[0], dk); /* k = (1 - m) q + m k */
    be_get_flat(be, dk, n, got);
    check("ema", got, want, n, 0);
    be_free(be, dk, n), be_free(be, dq, n);
    free(k), free(q), free(ab), free(want), free(w), free(g), free(buf), free(hyper), free(got), free(got_buf);
}

int main(void) {
    if (fixture_open(&fx, "ops.safetensors") != 0) {
        test_run("open_fixture", test_loss_ops); /* records the failure already printed */
        printf("FAIL ops fixture\n");
        return test_finish() | 1;
    }
    RUN(test_loss_ops);
    const char *names[] = {"ref", "cpu", "cuda"};
    for (int i = 0; i < 3; i++) {
        if (!test_backend_wanted(names[i])) continue;
        be = backend_by_name(names[i]);
        if (!be) {
            if (i == 2) test_skip("ops_torch[cuda]", "no CUDA backend in this build or no GPU");
            continue;
        }
        conv_tol = i == 0 ? 1e-5 : 2e-4;
        char label[64];
        snprintf(label, sizeof label, "conv[%s]", names[i]);
        test_run(label, test_conv);
        snprintf(label, sizeof label, "batchnorm[%s]", names[i]);
        test_run(label, test_batchnorm);
        snprintf(label, sizeof label, "pooling[%s]", names[i]);
        test_run(label, test_pooling);
        snprintf(label, sizeof label, "relu_add[%s]", names[i]);
        test_run(label, test_relu_add);
        snprintf(label, sizeof label, "relu_special[%s]", names[i]);
        test_run(label, test_relu_special);
        snprintf(label, sizeof label, "linear[%s]", names[i]);
        test_run(label, test_linear);
        snprintf(label, sizeof label, "bf16_ops[%s]", names[i]);
        test_run(label, test_bf16_ops);
        snprintf(label, sizeof label, "autocast_weight_grads[%s]", names[i]);
        test_run(label, test_autocast_weight_grads);
        snprintf(label, sizeof label, "optimiser[%s]", names[i]);
        test_run(label, test_optimiser);
    }
    st_close(&fx);
    return test_finish();
}
