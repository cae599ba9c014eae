/* Reference gradients against central finite differences of L = sum(y * r) for a fixed random r.
 * Inputs are drawn so that no max-pool window has ties and no ReLU input sits near zero, so L is smooth within h. */
#include "tests/util/testlib.h"
#include "trainer/ops/ref/ops_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef void (*ForwardFn)(void *ctx, const float *x, float *y);

/* Checks d(sum(y r))/dx[i] for `probes` indices of x against the analytic gradient `ana`. */
static void fd_check(const char *what, ForwardFn f, void *ctx, float *x, size_t nx, size_t ny, const float *r,
                     const float *ana, double h, int probes) {
    float *y = test_alloc(ny);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < nx; i++) scale = fmax(scale, fabs(ana[i]));
    for (int p = 0; p < probes; p++) {
        size_t i = (size_t)p * 7919 % nx;
        float keep = x[i];
        double l[2];
        for (int s = 0; s < 2; s++) {
            x[i] = (float)(keep + (s ? -h : h));
            f(ctx, x, y);
            double acc = 0;
            for (size_t j = 0; j < ny; j++) acc += (double)y[j] * r[j];
            l[s] = acc;
        }
        x[i] = keep;
        double fd = (l[0] - l[1]) / (2 * h), err = fabs(fd - ana[i]) / (scale + 1e-12);
        if (err > worst) worst = err;
    }
    CHECK(worst < 2e-3, "%s: finite differences disagree, worst error %.3g of the gradient's scale", what, worst);
    free(y);
}

typedef struct {
    ConvShape s;
    const float *w, *x, *b;
    int wrt; /* 0: x, 1: w, 2: bias */
} ConvCtx;

static void conv_f(void *c, const float *v, float *y) {
    ConvCtx *k = c;
    conv2d_forward_ref(&k->s, k->wrt == 0 ? v : k->x, k->wrt == 1 ? v : k->w, k->wrt == 2 ? v : k->b, y);
}

static void test_conv(void) {
    ConvShape s = conv_shape(2, 3, 7, 7, 4, 3, 2, 1);
    size_t nx = 2 * 3 * 49, nw = 4 * 3 * 9, ny = (size_t)2 * 4 * s.ho * s.wo;
    float *x = test_alloc(nx), *w = test_alloc(nw), *b = test_alloc(4), *r = test_alloc(ny);
    fill_normal(x, nx, 1, 1), fill_normal(w, nw, 2, 0.3f), fill_normal(b, 4, 3, 1), fill_normal(r, ny, 4, 1);
    float *dx = test_alloc(nx), *dw = test_alloc(nw), *db = test_alloc(4);
    conv2d_backward_data_ref(&s, r, w, dx);
    conv2d_backward_weights_ref(&s, x, r, dw, db);
    ConvCtx c = {s, w, x, b, 0};
    fd_check("conv dx", conv_f, &c, x, nx, ny, r, dx, 1e-2, 40);
    c.wrt = 1;
    fd_check("conv dw", conv_f, &c, w, nw, ny, r, dw, 1e-2, 40);
    c.wrt = 2;
    fd_check("conv dbias", conv_f, &c, b, 4, ny, r, db, 1e-2, 4);
    free(x), free(w), free(b), free(r), free(dx), free(dw), free(db);
}

typedef struct {
    BnShape s;
    const float *x, *g, *b;
    int wrt;
} BnCtx;

static void bn_f(void *c, const float *v, float *y) {
    BnCtx *k = c;
    float mean[8], inv[8];
    batchnorm_forward_train_ref(&k->s, k->wrt == 0 ? v : k->x, k->wrt == 1 ? v : k->g, k->wrt == 2 ? v : k->b, y, mean,
                                inv, 0.1f, NULL, NULL, NULL);
}

static void test_batchnorm(void) {
    BnShape s = {3, 4, 5, 1e-5f, PRECISION_FP32};
    size_t nx = 60;
    float *x = test_alloc(nx), *g = test_alloc(4), *b = test_alloc(4), *r = test_alloc(nx), *y = test_alloc(nx);
    fill_normal(x, nx, 5, 2), fill_uniform(g, 4, 6, 0.5f, 1.5f), fill_normal(b, 4, 7, 1), fill_normal(r, nx, 8, 1);
    float mean[4], inv[4], dx[60], dg[4] = {0}, db[4] = {0};
    batchnorm_forward_train_ref(&s, x, g, b, y, mean, inv, 0.1f, NULL, NULL, NULL);
    batchnorm_backward_ref(&s, x, r, g, mean, inv, dx, dg, db, NULL);
    BnCtx c = {s, x, g, b, 0};
    fd_check("batchnorm dx", bn_f, &c, x, nx, nx, r, dx, 1e-3, 60);
    c.wrt = 1;
    fd_check("batchnorm dgamma", bn_f, &c, g, 4, nx, r, dg, 1e-3, 4);
    c.wrt = 2;
    fd_check("batchnorm dbeta", bn_f, &c, b, 4, nx, r, db, 1e-3, 4);
    free(x), free(g), free(b), free(r), free(y);
}

typedef struct {
    PoolShape s;
} PoolCtx;

static void pool_f(void *c, const float *v, float *y) { maxpool_forward_ref(&((PoolCtx *)c)->s, v, y); }
static void gap_f(void *c, const float *v, float *y) {
    (void)c;
    gap_forward_ref(2, 3, 16, v, y);
}
static void relu_f(void *c, const float *v, float *y) {
    (void)c;
    relu_forward_ref(40, v, y);
}

static void test_pool_gap_relu(void) {
    PoolCtx c = {pool_shape(2, 3, 7, 7, 3, 2, 1)};
    size_t nx = 2 * 3 * 49, ny = (size_t)2 * 3 * c.s.ho * c.s.wo;
    float *x = test_alloc(nx), *r = test_alloc(ny), *dx = test_alloc(nx);
    for (size_t i = 0; i < nx; i++) x[i] = (float)((i * 37) % nx) * 0.1f; /* distinct values: no ties */
    fill_normal(r, ny, 9, 1);
    maxpool_backward_ref(&c.s, x, r, dx);
    fd_check("maxpool dx", pool_f, &c, x, nx, ny, r, dx, 1e-2, 60);
    float gx[96], gr[6], gdx[96];
    fill_normal(gx, 96, 10, 1), fill_normal(gr, 6, 11, 1);
    gap_backward_ref(2, 3, 16, gr, gdx);
    fd_check("gap dx", gap_f, NULL, gx, 96, 6, gr, gdx, 1e-2, 30);
    float rx[40], rr[40], ry[40], rdx[40];
    fill_normal(rx, 40, 12, 1), fill_normal(rr, 40, 13, 1);
    for (int i = 0; i < 40; i++) rx[i] += rx[i] > 0 ? 0.1f : -0.1f; /* away from the kink */
    relu_forward_ref(40, rx, ry);
    relu_backward_ref(40, ry, rr, rdx);
    fd_check("relu dx", relu_f, NULL, rx, 40, 40, rr, rdx, 1e-2, 40);
    free(x), free(r), free(dx);
}

typedef struct {
    const float *x, *w, *b;
    int wrt;
} LinCtx;

static void lin_f(void *c, const float *v, float *y) {
    LinCtx *k = c;
    linear_forward_ref(4, 6, 5, k->wrt == 0 ? v : k->x, k->wrt == 1 ? v : k->w, k->wrt == 2 ? v : k->b, y);
}
static void l2_f(void *c, const float *v, float *y) {
    float norm[4];
    (void)c;
    l2norm_forward_ref(4, 6, v, y, norm);
}
static void cos_f(void *c, const float *v, float *y) { cosdist_forward_ref(4, 6, v, (const float *)c, y); }

typedef struct {
    const int *labels;
} XentCtx;
static void xent_f(void *c, const float *v, float *y) { y[0] = (float)softmax_xent_ref(4, 5, v, ((XentCtx *)c)->labels, NULL); }

static void test_linear_and_losses(void) {
    float x[24], w[30], b[5], r[20], dx[24], dw[30] = {0}, db[5] = {0};
    fill_normal(x, 24, 14, 1), fill_normal(w, 30, 15, 0.5f), fill_normal(b, 5, 16, 1), fill_normal(r, 20, 17, 1);
    linear_backward_ref(4, 6, 5, x, w, r, dx, dw, db);
    LinCtx c = {x, w, b, 0};
    fd_check("linear dx", lin_f, &c, x, 24, 20, r, dx, 1e-2, 24);
    c.wrt = 1;
    fd_check("linear dw", lin_f, &c, w, 30, 20, r, dw, 1e-2, 30);
    c.wrt = 2;
    fd_check("linear dbias", lin_f, &c, b, 5, 20, r, db, 1e-2, 5);
    float ly[24], norm[4], lr[24], ldx[24];
    fill_normal(lr, 24, 18, 1);
    l2norm_forward_ref(4, 6, x, ly, norm);
    l2norm_backward_ref(4, 6, x, norm, lr, ldx);
    fd_check("l2norm dx", l2_f, NULL, x, 24, 24, lr, ldx, 1e-3, 24);
    float a[24], bb[24], dl[4], da[24];
    fill_normal(a, 24, 19, 1), fill_normal(bb, 24, 20, 1), fill_normal(dl, 4, 21, 1);
    cosdist_backward_ref(4, 6, a, bb, dl, da, NULL);
    fd_check("cosdist da", cos_f, bb, a, 24, 4, dl, da, 1e-2, 24);
    float logits[20], dlog[20], one = 1;
    int labels[4] = {1, 0, 4, 2};
    fill_normal(logits, 20, 22, 2);
    softmax_xent_ref(4, 5, logits, labels, dlog);
    XentCtx xc = {labels};
    fd_check("softmax cross-entropy", xent_f, &xc, logits, 20, 1, &one, dlog, 1e-3, 20);
}

int main(void) {
    RUN(test_conv);
    RUN(test_batchnorm);
    RUN(test_pool_gap_relu);
    RUN(test_linear_and_losses);
    return test_finish();
}
