/* A whole network on the cuda backend against the reference backend: a narrow ResNet with the ImageNet stem (the
 * 7x7 stride-2 convolution on the NCHW image, max pooling, bottleneck blocks with downsampling shortcuts) and an
 * MLP head (linear, BatchNorm1d + ReLU, linear), run through the model code in eval and train mode and backward.
 * The op tests (test_cuda) check each op; this one checks the layouts as the model hands them over.
 *
 * Float32 through a network with batch norm over few values is ill-conditioned, so the yardstick is the CPU
 * backend: a tensor passes when the cuda backend's error (rel_l2 against the reference, which accumulates in
 * double) is at most ERR_FACTOR times the CPU backend's, or under 1e-4. The model is made for a batch of
 * MAX_BATCH and run with BATCH, and two cuda runs must agree bit for bit. The same at bf16, where the floor is
 * one bf16 rounding (2^-8) instead of 1e-4. Skips without a GPU. */
#include "tests/util/fixture.h"
#include "tests/util/testlib.h"
#include "trainer/core/error.h"
#include "trainer/nn/nets.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_BATCH = 16, BATCH = 12, IMAGE = 32, HIDDEN = 48, OUT = 24, ERR_FACTOR = 4 };
static const ResNetSpec NET = {BLOCK_BOTTLENECK, {1, 1, 1, 1}, 8, STEM_IMAGENET, false};

typedef struct {
    float *y_eval, *y_train, *grad, *stats; /* outputs [BATCH][OUT], parameter gradients, BN running statistics */
} Run;

typedef struct {
    float *w, *stats, *x, *dy; /* the same parameters, statistics and data for every backend */
} Inputs;

static Precision precision = PRECISION_FP32; /* of the networks run() builds */
static bool saved_16bit;                     /* and whether they keep 16-bit copies for backward */
static bool weight_grads_16;                 /* and whether they sum weight gradients in the format */

static Model *build(const Backend *be, int *out) {
    Model *m = model_new(be);
    int image = model_input(m, 3, IMAGE, IMAGE);
    *out = mlp_head_build(m, resnet_build(m, &NET, image), HIDDEN, OUT);
    if (model_finalize(m, MAX_BATCH, 1) != 0 || model_set_precision(m, precision) != 0) {
        test_fail_at(__FILE__, __LINE__, "%s", rsa_error_message());
        abort();
    }
    m->saved_16bit = saved_16bit;
    if (weight_grads_16 && model_set_weight_grad_rounding(m, true) != 0) {
        test_fail_at(__FILE__, __LINE__, "%s", rsa_error_message());
        abort();
    }
    return m;
}

static float *download(const Backend *be, const float *p, size_t n) {
    float *host = test_alloc(n);
    be_get_flat(be, p, n, host);
    return host;
}

/* torchvision's initialisation with zero_init_residual silences every residual branch; random BN parameters and
 * statistics make every layer matter. */
static Inputs make_inputs(void) {
    int out;
    Model *m = build(backend_ref(), &out);
    Inputs in = {download(m->be, m->w, m->n_weights), download(m->be, m->buf, m->n_buf),
                 test_alloc((size_t)MAX_BATCH * 3 * IMAGE * IMAGE), test_alloc((size_t)BATCH * OUT)};
    for (int b = 0; b < m->n_bns; b++) {
        const Node *nd = &m->nodes[m->bns[b].node];
        int c = m->bns[b].c;
        float *gamma = in.w + m->params[nd->weight].offset, *beta = in.w + m->params[nd->bias].offset;
        float *rm = in.stats + m->bns[b].stat_offset, *rv = rm + c;
        fill_normal(gamma, c, 10 + 4 * b, 0.2f);
        fill_normal(beta, c, 11 + 4 * b, 0.2f);
        fill_normal(rm, c, 12 + 4 * b, 0.1f);
        fill_normal(rv, c, 13 + 4 * b, 0.2f);
        for (int i = 0; i < c; i++) gamma[i] += 1.0f, rv[i] = 1.0f + fabsf(rv[i]);
    }
    fill_normal(in.x, (size_t)MAX_BATCH * 3 * IMAGE * IMAGE, 2, 1.0f);
    fill_normal(in.dy, (size_t)BATCH * OUT, 3, 1.0f);
    model_free(m);
    return in;
}

static Run run(const Backend *be, const Inputs *in) {
    int out;
    Model *m = build(be, &out);
    be->upload(m->w, in->w, m->n_weights * sizeof(float));
    be->upload(m->buf, in->stats, m->n_buf * sizeof(float));
    model_weights_changed(m);
    Workspace *ws = workspace_new(m, true);
    float *x = be_put_flat(be, in->x, (size_t)MAX_BATCH * 3 * IMAGE * IMAGE);
    float *dy = be_put_flat(be, in->dy, (size_t)BATCH * OUT);
    Run r = {test_alloc((size_t)BATCH * OUT), test_alloc((size_t)BATCH * OUT), test_alloc(m->n_weights),
             test_alloc(m->n_buf)};
    model_forward(m, ws, MAX_BATCH, x, false, -1); /* the planned batch first, then a smaller one */
    model_forward(m, ws, BATCH, x, false, -1);
    workspace_read_nchw(ws, out, r.y_eval);
    model_zero_grad(m);
    model_forward(m, ws, BATCH, x, true, -1);
    workspace_read_nchw(ws, out, r.y_train);
    model_backward(m, ws, out, dy);
    be_get_flat(be, m->g, m->n_weights, r.grad);
    be_get_flat(be, m->buf, m->n_buf, r.stats);
    be_free(be, x, (size_t)MAX_BATCH * 3 * IMAGE * IMAGE), be_free(be, dy, (size_t)BATCH * OUT);
    workspace_free(ws);
    model_free(m);
    return r;
}

static void free_run(Run *r) { free(r->y_eval), free(r->y_train), free(r->grad), free(r->stats); }

static void compare(const char *what, const float *cuda, const float *cpu, const float *ref, size_t n,
                    double *worst) {
    /* at bf16 one value rounded the other way moves a tensor by up to 2^-8 of that value */
    double floor = precision == PRECISION_FP32 ? 1e-4 : 0x1p-8;
    double err = rel_l2(cuda, ref, n), allowed = fmax(floor, ERR_FACTOR * rel_l2(cpu, ref, n));
    if (err / allowed > *worst) *worst = err / allowed;
    CHECK(err <= allowed, "%s: cuda rel_l2 %.3g against the reference; cpu has %.3g; allowed %.3g", what, err,
          rel_l2(cpu, ref, n), allowed);
}

static void network(void) {
    const Backend *cu = backend_cuda(), *cpu = backend_cpu();
    if (!cpu) {
        test_fail_at(__FILE__, __LINE__, "the CPU backend (the yardstick) is missing");
        return;
    }
    Inputs in = make_inputs();
    Run want = run(backend_ref(), &in), base = run(cpu, &in), got = run(cu, &in), again = run(cu, &in);
    int out;
    Model *m = build(backend_ref(), &out); /* for the parameter table */
    double worst = 0;
    compare("eval output", got.y_eval, base.y_eval, want.y_eval, (size_t)BATCH * OUT, &worst);
    compare("train output", got.y_train, base.y_train, want.y_train, (size_t)BATCH * OUT, &worst);
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        char what[160];
        snprintf(what, sizeof what, "grad %s", p->name);
        compare(what, got.grad + p->offset, base.grad + p->offset, want.grad + p->offset, p->numel, &worst);
    }
    compare("BN running statistics", got.stats, base.stats, want.stats, m->n_buf, &worst);
    CHECK(memcmp(got.y_train, again.y_train, sizeof(float) * BATCH * OUT) == 0, "train output differs between runs");
    CHECK(memcmp(got.grad, again.grad, sizeof(float) * m->n_weights) == 0, "gradients differ between runs");
    CHECK(memcmp(got.stats, again.stats, sizeof(float) * m->n_buf) == 0, "running statistics differ between runs");
    test_note("%s: %d parameters compared; worst error/allowed %.2f", precision_name(precision), m->n_params, worst);
    model_free(m);
    free_run(&want), free_run(&base), free_run(&got), free_run(&again);
    free(in.w), free(in.stats), free(in.x), free(in.dy);
}

static void test_network(void) { precision = PRECISION_FP32, network(); }
/* mixed precision: the same rounding points on every backend (core/precision.h) */
static void test_network_bf16(void) { precision = PRECISION_BF16, network(), precision = PRECISION_FP32; }
/* and with the activations held for backward as 16-bit copies (cuda's to_lowp and from_lowp) */
static void test_network_bf16_saved16(void) {
    precision = PRECISION_BF16, saved_16bit = true;
    network();
    precision = PRECISION_FP32, saved_16bit = false;
}

/* and with the weight gradients summed in bf16 (lowp_weight_grads: cuda computes them on tensor cores) */
static void test_network_bf16_wgrad16(void) {
    precision = PRECISION_BF16, weight_grads_16 = true;
    network();
    precision = PRECISION_FP32, weight_grads_16 = false;
}

int main(void) {
    if (!backend_cuda()) {
        test_skip("cuda_model", rsa_error_message()); /* why: built without CUDA, no GPU, ... */
        return test_finish();
    }
    RUN(test_network);
    RUN(test_network_bf16);
    RUN(test_network_bf16_saved16);
    RUN(test_network_bf16_wgrad16);
    return test_finish();
}
