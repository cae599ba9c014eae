#include "fixture.h"

#include "testlib.h"
#include "trainer/core/error.h"
#include "trainer/core/fileio.h"
#include "trainer/nn/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

int fixture_open(StFile *f, const char *name) {
    const char *dirs[2] = {getenv("RSA_FIXTURES"), "tests/fixtures"};
    for (int i = 0; i < 2; i++) {
        if (!dirs[i]) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dirs[i], name);
        FILE *probe = fopen(path, "rb");
        if (!probe) continue;
        fclose(probe);
        if (st_open(f, path) != 0) {
            test_fail_at(__FILE__, __LINE__, "%s", rsa_error_message());
            return -1;
        }
        const char *v = st_meta(f, "fixture_version");
        if (!v || strcmp(v, FIXTURE_VERSION) != 0) {
            test_fail_at(__FILE__, __LINE__,
                         "fixture %s is version %s, the tests expect %s: regenerate it with "
                         "`/usr/bin/python3 tests/oracle/make_fixtures.py %s` (make test does this when "
                         "python3-torch is installed)",
                         path, v ? v : "(none)", FIXTURE_VERSION, dirs[i]);
            st_close(f);
            return -1;
        }
        return 0;
    }
    test_fail_at(__FILE__, __LINE__,
                 "fixture %s not found in $RSA_FIXTURES or tests/fixtures: install python3-torch (`make deps`) and "
                 "run `make test`, which generates it",
                 name);
    return -1;
}

float *fixture_f32(const StFile *f, const char *name, size_t *n) {
    const StTensor *t = st_find(f, name);
    if (!t || t->dtype != ST_F32) {
        fprintf(stderr, "fixture %s lacks F32 tensor %s: regenerate the fixtures\n", f->path, name);
        exit(1);
    }
    size_t count = st_numel(t);
    float *p = test_alloc(count);
    memcpy(p, st_data(f, t), count * sizeof(float));
    if (n) *n = count;
    return p;
}

/* Element `index` of an 8-byte tensor of the fixture, copied to out; exits if absent (the fixture is stale). */
static void element8(const StFile *f, const char *name, StDtype dtype, const char *dtype_name, int index, void *out) {
    const StTensor *t = st_find(f, name);
    if (!t || t->dtype != dtype || (size_t)index >= st_numel(t)) {
        fprintf(stderr, "fixture %s lacks %s tensor %s[%d]: regenerate the fixtures\n", f->path, dtype_name, name,
                index);
        exit(1);
    }
    memcpy(out, (const char *)st_data(f, t) + 8 * (size_t)index, 8);
}

int64_t fixture_i64(const StFile *f, const char *name, int index) {
    int64_t v;
    element8(f, name, ST_I64, "I64", index, &v);
    return v;
}

double fixture_f64(const StFile *f, const char *name, int index) {
    double v;
    element8(f, name, ST_F64, "F64", index, &v);
    return v;
}

float *be_put(const Backend *be, const float *nchw, Layout l, int n, int c, int h, int w) {
    size_t count = (size_t)n * c * h * w;
    float *tmp = test_alloc(count);
    layout_convert(nchw, LAYOUT_NCHW, tmp, l, n, c, h, w);
    float *p = be_put_flat(be, tmp, count);
    free(tmp);
    return p;
}

void be_get(const Backend *be, const float *p, Layout l, int n, int c, int h, int w, float *nchw) {
    size_t count = (size_t)n * c * h * w;
    float *tmp = test_alloc(count);
    be_get_flat(be, p, count, tmp);
    layout_convert(tmp, l, nchw, LAYOUT_NCHW, n, c, h, w);
    free(tmp);
}

float *be_put_flat(const Backend *be, const float *host, size_t count) {
    float *p = be_zeros(be, count);
    be->upload(p, host, count * sizeof(float));
    return p;
}

void be_get_flat(const Backend *be, const float *p, size_t count, float *host) {
    be->sync();
    be->download(host, p, count * sizeof(float));
}

float *be_zeros(const Backend *be, size_t count) {
    float *p = be->alloc((count ? count : 1) * sizeof(float));
    if (!p) {
        fprintf(stderr, "%s\n", rsa_error_message());
        exit(1);
    }
    return p;
}

void be_free(const Backend *be, void *p, size_t count) { be->release(p, (count ? count : 1) * sizeof(float)); }

void randomize_bn(Model *m, uint64_t seed) {
    float *w = test_alloc(m->n_weights);
    m->be->download(w, m->w, sizeof(float) * m->n_weights);
    for (int b = 0; b < m->n_bns; b++) {
        const Node *nd = &m->nodes[m->bns[b].node];
        if (!m->bns[b].affine) continue;
        fill_uniform(w + m->params[nd->weight].offset, (size_t)m->bns[b].c, seed + b, 0.5f, 1.5f);
        fill_normal(w + m->params[nd->bias].offset, (size_t)m->bns[b].c, seed + 1000 + b, 0.1f);
    }
    m->be->upload(m->w, w, sizeof(float) * m->n_weights);
    model_weights_changed(m);
    free(w);
}

void write_test_jpeg(const char *path, int w, int h, int seed) {
    uint8_t *px = malloc((size_t)w * h * 3);
    if (!px) abort();
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                px[(y * w + x) * 3 + c] = (uint8_t)(128 + 90 * sin(0.03 * x * (c + 1) + 0.05 * y + seed));
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long size = 0;
    if (!tj || tjCompress2(tj, px, w, 0, h, TJPF_RGB, &jpg, &size, TJSAMP_420, 90, 0) != 0) {
        fprintf(stderr, "write_test_jpeg: %s\n", tjGetErrorStr2(tj));
        abort();
    }
    const void *pieces[1] = {jpg};
    size_t sizes[1] = {size};
    if (atomic_write(path, pieces, sizes, 1) != 0) {
        fprintf(stderr, "write_test_jpeg: %s\n", rsa_error_message());
        abort();
    }
    tjFree(jpg);
    tjDestroy(tj);
    free(px);
}

static void fused_case(const Backend *be, Precision p, int c, bool relu) {
    const int n = 3, hw = 25;
    size_t nx = (size_t)n * c * hw;
    Layout l = be->act_layout(c, hw);
    float *hx = test_alloc(nx), *hdy = test_alloc(nx), *hg = test_alloc(c), *hb = test_alloc(c);
    float *hrm = test_alloc(c), *hrv = test_alloc(c), *want = test_alloc(nx), *got = test_alloc(nx);
    fill_normal(hx, nx, 31, 2), fill_normal(hdy, nx, 32, 1), fill_uniform(hg, c, 33, 0.5f, 1.5f);
    fill_normal(hb, c, 34, 0.3f), fill_normal(hrm, c, 35, 0.1f), fill_uniform(hrv, c, 36, 0.5f, 2.0f);
    float *x = be_put(be, hx, l, n, c, 5, 5), *dy = be_put(be, hdy, l, n, c, 5, 5);
    float *g = be_put_flat(be, hg, c), *b = be_put_flat(be, hb, c), *rm = be_put_flat(be, hrm, c);
    float *rv = be_put_flat(be, hrv, c), *mean = be_zeros(be, c), *invstd = be_zeros(be, c);
    float *dg = be_zeros(be, c), *db = be_zeros(be, c), *out[2][4];
    BnShape s[2] = {{n, c, hw, 1e-5f, PRECISION_FP32}, {n, c, hw, 1e-5f, p}};
    for (int f = 0; f < 2; f++) { /* f = 1: rounded by the op */
        for (int k = 0; k < 4; k++) out[f][k] = be_zeros(be, nx);
        be->bn_forward_train(&s[f], l, relu, x, g, b, out[f][0], mean, invstd, 0, NULL, NULL, NULL);
        be->bn_apply(&s[f], l, relu, x, g, b, mean, invstd, out[f][1]);
        be->bn_forward_eval(&s[f], l, relu, x, g, b, rm, rv, out[f][2]);
        /* the fp32 y for the ReLU mask both times: the check is about dx's rounding */
        be->bn_backward(&s[f], l, relu, x, out[0][0], dy, g, b, mean, invstd, out[f][3], dg, db, NULL);
    }
    const char *names[4] = {"bn_forward_train", "bn_apply", "bn_forward_eval", "bn_backward dx"};
    for (int k = 0; k < 4; k++) {
        be->round_lowp(p, nx, out[0][k]);
        be_get_flat(be, out[0][k], nx, want), be_get_flat(be, out[1][k], nx, got);
        CHECK(memcmp(got, want, sizeof(float) * nx) == 0, "%s %s %s, %d channels, relu %d: the op's rounding differs "
              "from round_lowp after it", be->name, names[k], precision_name(p), c, relu);
    }
    be->add_forward(nx, x, dy, out[0][0], relu, PRECISION_FP32);
    be->round_lowp(p, nx, out[0][0]);
    be->add_forward(nx, x, dy, out[1][0], relu, p);
    be_get_flat(be, out[0][0], nx, want), be_get_flat(be, out[1][0], nx, got);
    CHECK(memcmp(got, want, sizeof(float) * nx) == 0, "%s add_forward %s, relu %d: the op's rounding differs", be->name,
          precision_name(p), relu);
    for (int f = 0; f < 2; f++)
        for (int k = 0; k < 4; k++) be_free(be, out[f][k], nx);
    float *dev[] = {g, b, rm, rv, mean, invstd, dg, db};
    for (int k = 0; k < 8; k++) be_free(be, dev[k], c);
    be_free(be, x, nx), be_free(be, dy, nx);
    free(hx), free(hdy), free(hg), free(hb), free(hrm), free(hrv), free(want), free(got);
}

/* Batch norm + ReLU backward passes gradient exactly where the rounded output y is positive, whether the backend
 * masks with y or rebuilds the mask from x: the same bits as masking dy with relu_backward(y) and running the
 * backward without the ReLU. With mean 0, invstd 1, gamma 1 and beta 0 the normalised value is x itself, so x can
 * sit just above, at and below the largest value the format rounds to 0. */
static void mask_case(const Backend *be, Precision p, int c) {
    const int n = 2, hw = 16;
    size_t nx = (size_t)n * c * hw;
    Layout l = be->act_layout(c, hw);
    float *hx = test_alloc(nx), *hdy = test_alloc(nx), *h1 = test_alloc(c), *want = test_alloc(nx);
    float *got = test_alloc(nx);
    const float z = lowp_zero_bound(p), edges[] = {z, nextafterf(z, 1), nextafterf(z, 0), 0.5f * z, 2 * z, -z, 0,
                                                   0x1p-149f, 1.0f, -1.0f, 0x1p-26f, 0x1p-24f};
    fill_normal(hdy, nx, 41, 1);
    for (size_t i = 0; i < nx; i++) hx[i] = edges[i % (sizeof edges / sizeof edges[0])];
    for (int k = 0; k < c; k++) h1[k] = 1;
    float *x = be_put(be, hx, l, n, c, 4, 4), *dy = be_put(be, hdy, l, n, c, 4, 4), *one = be_put_flat(be, h1, c);
    float *zero = be_zeros(be, c), *y = be_zeros(be, nx), *masked = be_zeros(be, nx), *dx[2], *dg[2], *db[2];
    BnShape s = {n, c, hw, 1e-5f, p};
    be->bn_apply(&s, l, true, x, one, zero, zero, one, y);
    be->relu_backward(nx, y, dy, masked);
    for (int f = 0; f < 2; f++) {
        dx[f] = be_zeros(be, nx), dg[f] = be_zeros(be, c), db[f] = be_zeros(be, c);
        be->bn_backward(&s, l, f == 0, x, y, f == 0 ? dy : masked, one, zero, zero, one, dx[f], dg[f], db[f], NULL);
    }
    be_get_flat(be, dx[1], nx, want), be_get_flat(be, dx[0], nx, got);
    CHECK(memcmp(got, want, sizeof(float) * nx) == 0, "%s bn_backward %s, %d channels: the ReLU mask differs from the "
          "rounded output's", be->name, precision_name(p), c);
    be_get_flat(be, dg[1], c, want), be_get_flat(be, dg[0], c, got);
    be_get_flat(be, db[1], c, want + c), be_get_flat(be, db[0], c, got + c);
    CHECK(memcmp(got, want, sizeof(float) * 2 * c) == 0, "%s bn_backward %s, %d channels: gamma/beta gradients differ "
          "from the masked gradient's", be->name, precision_name(p), c);
    for (int f = 0; f < 2; f++) be_free(be, dx[f], nx), be_free(be, dg[f], c), be_free(be, db[f], c);
    be_free(be, x, nx), be_free(be, dy, nx), be_free(be, y, nx), be_free(be, masked, nx);
    be_free(be, one, c), be_free(be, zero, c);
    free(hx), free(hdy), free(h1), free(want), free(got);
}

void check_fused_rounding(const Backend *be) {
    for (Precision p = PRECISION_FP32; p <= PRECISION_FP16; p++) mask_case(be, p, 32), mask_case(be, p, 6);
    for (Precision p = PRECISION_BF16; p <= PRECISION_FP16; p++)
        for (int relu = 0; relu < 2; relu++) fused_case(be, p, 32, relu), fused_case(be, p, 6, relu);
}
