/* Model-level properties: the CPU backend's backward pass against the reference backward run from the same forward
 * state (so no ReLU mask can differ), gradient accumulation over two workspaces, initialisation as torchvision's,
 * determinism, partial batches, and state save/load. */
#include "tests/util/fixture.h"
#include "tests/util/testlib.h"
#include "trainer/core/error.h"
#include "trainer/io/model_io.h"
#include "trainer/nn/nets.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ResNetSpec SMALL_BASIC = {BLOCK_BASIC, {1, 1, 1, 1}, 16, STEM_CIFAR, false};
static const ResNetSpec SMALL_BOTTLENECK = {BLOCK_BOTTLENECK, {1, 1, 1, 1}, 16, STEM_IMAGENET, false};

typedef struct {
    Model *m;
    int image, feature, out;
} Net;

/* A backbone with a projector head on top, as the methods use it; bn_group as Model.bn_group. */
static Net build_grouped(const Backend *be, const ResNetSpec *spec, int size, int batch, uint64_t seed, int bn_group) {
    Net n;
    n.m = model_new(be);
    n.m->bn_group = bn_group;
    model_set_prefix(n.m, "encoder_q.");
    n.image = model_input(n.m, 3, size, size);
    n.feature = resnet_build(n.m, spec, n.image);
    model_set_prefix(n.m, "encoder_q_head.");
    n.out = mlp_head_build(n.m, n.feature, 64, 32);
    if (model_finalize(n.m, batch, seed) != 0) test_fail_at(__FILE__, __LINE__, "%s", rsa_error_message());
    return n;
}

static Net build(const Backend *be, const ResNetSpec *spec, int size, int batch, uint64_t seed) {
    return build_grouped(be, spec, size, batch, seed, 0);
}

static void backward_same_state(const ResNetSpec *spec, int size) {
    const int n = 3;
    Net fast = build(backend_cpu(), spec, size, n, 5), ref = build(backend_ref(), spec, size, n, 5);
    randomize_bn(fast.m, 77);
    randomize_bn(ref.m, 77);
    size_t nx = (size_t)n * 3 * size * size;
    float *x = test_alloc(nx);
    fill_normal(x, nx, 9, 1);
    int out_dim = fast.m->tensors[fast.out].c;
    float *dy = test_alloc((size_t)n * out_dim);
    fill_normal(dy, (size_t)n * out_dim, 10, 1);
    Workspace *wf = workspace_new_ex(fast.m, true, PLAN_KEEP_ALL), *wr = workspace_new_ex(ref.m, true, PLAN_KEEP_ALL);
    model_zero_grad(fast.m);
    model_zero_grad(ref.m);
    model_forward(fast.m, wf, n, x, true, -1);
    model_forward(ref.m, wr, n, x, true, -1);
    /* forward agreement (continuous even through ReLU) */
    for (int t = 1; t < fast.m->n_tensors; t++) {
        const TensorDesc *d = &fast.m->tensors[t];
        size_t count = model_tensor_numel(fast.m, t, n);
        float *a = test_alloc(count);
        layout_convert(wf->act[t], d->layout, a, LAYOUT_NCHW, n, d->c, d->h, d->w);
        double e = rel_l2(a, wr->act[t], count);
        CHECK(e <= 1e-4, "forward tensor %d (%dx%dx%d): rel_l2 %.3g", t, d->c, d->h, d->w, e);
        /* hand the reference the fast path's forward state, so both backward passes see the same masks */
        memcpy(wr->act[t], a, count * sizeof(float));
        free(a);
    }
    memcpy(wr->bn_saved, wf->bn_saved, sizeof(float) * fast.m->n_bn_saved);
    model_backward(fast.m, wf, fast.out, dy);
    model_backward(ref.m, wr, ref.out, dy);
    double worst = 0, all_sq = 0;
    const char *worst_name = "";
    for (size_t i = 0; i < ref.m->n_weights; i++) all_sq += (double)ref.m->g[i] * ref.m->g[i];
    for (int i = 0; i < fast.m->n_params; i++) {
        const ParamInfo *p = &fast.m->params[i];
        /* relative to the tensor's norm, but never to less than 1e-2 of the norm a tensor of its size would have
         * if gradients were spread evenly: a bias right before a BN has a gradient of pure rounding noise */
        double diff = 0, own = 0;
        for (size_t j = 0; j < p->numel; j++) {
            double d = (double)fast.m->g[p->offset + j] - ref.m->g[p->offset + j];
            diff += d * d, own += (double)ref.m->g[p->offset + j] * ref.m->g[p->offset + j];
        }
        double floor = 1e-2 * sqrt(all_sq * (double)p->numel / (double)ref.m->n_weights);
        double e = sqrt(diff) / fmax(sqrt(own), floor);
        if (e > worst) worst = e, worst_name = p->name;
        CHECK(e <= 1e-4, "gradient of %s: rel_l2 %.3g", p->name, e);
    }
    test_note("worst gradient rel_l2 %.2g (%s)", worst, worst_name);
    workspace_free(wf), workspace_free(wr), model_free(fast.m), model_free(ref.m);
    free(x), free(dy);
}

static void test_backward_same_state_basic(void) { backward_same_state(&SMALL_BASIC, 16); }
static void test_backward_same_state_bottleneck(void) { backward_same_state(&SMALL_BOTTLENECK, 32); }

/* Two forward passes in two workspaces, then two backward passes: the gradients add up (RSA's two online views). */
static void test_two_workspaces_accumulate(void) {
    const int n = 4, size = 16;
    Net net = build(backend_cpu(), &SMALL_BASIC, size, n, 3);
    randomize_bn(net.m, 5);
    size_t nx = (size_t)n * 3 * size * size, ng = net.m->n_weights;
    int od = net.m->tensors[net.out].c;
    float *x1 = test_alloc(nx), *x2 = test_alloc(nx), *dy = test_alloc((size_t)n * od);
    fill_normal(x1, nx, 1, 1), fill_normal(x2, nx, 2, 1), fill_normal(dy, (size_t)n * od, 3, 1);
    Workspace *a = workspace_new(net.m, true), *b = workspace_new(net.m, true);
    float *g1 = test_alloc(ng), *g2 = test_alloc(ng), *sum = test_alloc(ng);
    float *bn_before = test_alloc(net.m->n_buf);
    memcpy(bn_before, net.m->buf, sizeof(float) * net.m->n_buf);
    model_zero_grad(net.m);
    model_forward(net.m, a, n, x1, true, -1);
    model_backward(net.m, a, net.out, dy);
    memcpy(g1, net.m->g, sizeof(float) * ng);
    model_zero_grad(net.m);
    model_forward(net.m, a, n, x2, true, -1);
    model_backward(net.m, a, net.out, dy);
    memcpy(g2, net.m->g, sizeof(float) * ng);
    for (size_t i = 0; i < ng; i++) sum[i] = g1[i] + g2[i];
    model_zero_grad(net.m);
    model_forward(net.m, a, n, x1, true, -1);
    model_forward(net.m, b, n, x2, true, -1);
    model_backward(net.m, a, net.out, dy);
    model_backward(net.m, b, net.out, dy);
    CHECK(rel_l2(net.m->g, sum, ng) <= 1e-6, "accumulated gradients differ from the sum: rel_l2 %.3g",
          rel_l2(net.m->g, sum, ng));
    CHECK(memcmp(bn_before, net.m->buf, sizeof(float) * net.m->n_buf) != 0, "running statistics did not move");
    workspace_free(a), workspace_free(b), model_free(net.m);
    free(x1), free(x2), free(dy), free(g1), free(g2), free(sum), free(bn_before);
}

/* torchvision's initialisation: kaiming-normal(fan_out) convs, BN (1, 0) with zero-init residual gammas, Linear's
 * uniform(+-1/sqrt(fan_in)); running_mean 0, running_var 1. */
/* The memory plan (shared buffers, block outputs and BN outputs rebuilt in backward, and at bf16/fp16 tensors kept
 * as 16-bit copies) changes where tensors live, not what is computed: outputs, gradients and BN statistics are
 * bit-identical to a workspace that keeps every tensor, with the plan that is smallest and with one that rebuilds
 * everything it can (chains of block outputs, each rebuilt from the one before) and copies the rest. At bf16/fp16
 * (with saved_16bit, and none without) the copies make the block smaller than the same network's fp32 plan. */
static void planned_equals_keep_all(const ResNetSpec *spec, int size, Precision p) {
    const int n = 4;
    const PlanMode modes[3] = {PLAN_KEEP_ALL, PLAN_SMALLEST, PLAN_REBUILD_ALL};
    Net net = build(backend_cpu(), spec, size, n, 3);
    Workspace *at_fp32 = workspace_new(net.m, true);
    size_t fp32_bytes = at_fp32->block_bytes;
    workspace_free(at_fp32);
    CHECK(model_set_precision(net.m, p) == 0, "%s", rsa_error_message());
    Workspace *no_copies = workspace_new(net.m, true);
    CHECK(no_copies->n_copy16 == 0, "%d tensors kept in 16 bits without saved_16bit", no_copies->n_copy16);
    workspace_free(no_copies);
    net.m->saved_16bit = true;
    randomize_bn(net.m, 9);
    size_t nx = (size_t)n * 3 * size * size, ng = net.m->n_weights;
    int od = net.m->tensors[net.out].c;
    float *x = test_alloc(nx), *dy = test_alloc((size_t)n * od);
    fill_normal(x, nx, 1, 1), fill_normal(dy, (size_t)n * od, 2, 1);
    float *g[3], *out[3], *feat[3], *buf[3];
    float *buf0 = test_alloc(net.m->n_buf);
    memcpy(buf0, net.m->buf, sizeof(float) * net.m->n_buf);
    size_t bytes[3], unplanned = 0;
    int rebuilt[3], copies[3], adds = 0, adds_rebuilt = 0;
    for (int k = 0; k < 3; k++) {
        memcpy(net.m->buf, buf0, sizeof(float) * net.m->n_buf);
        Workspace *ws = workspace_new_ex(net.m, true, modes[k]);
        bytes[k] = ws->block_bytes, unplanned = ws->unplanned_bytes, rebuilt[k] = ws->n_rebuilt;
        copies[k] = ws->n_copy16;
        if (modes[k] == PLAN_REBUILD_ALL)
            for (int i = 0; i < net.m->n_nodes; i++) {
                const Node *nd = &net.m->nodes[i];
                if (nd->kind != NODE_ADD || net.m->tensors[nd->out].output) continue;
                adds++, adds_rebuilt += ws->act_bwd[nd->out] != NULL;
            }
        model_zero_grad(net.m);
        model_forward(net.m, ws, n, x, true, -1);
        model_backward(net.m, ws, net.out, dy);
        g[k] = test_alloc(ng), out[k] = test_alloc((size_t)n * od), buf[k] = test_alloc(net.m->n_buf);
        feat[k] = test_alloc(model_tensor_numel(net.m, net.feature, n));
        memcpy(g[k], net.m->g, sizeof(float) * ng);
        memcpy(buf[k], net.m->buf, sizeof(float) * net.m->n_buf);
        workspace_read_nchw(ws, net.out, out[k]);
        workspace_read_nchw(ws, net.feature, feat[k]);
        workspace_free(ws);
    }
    for (int k = 1; k < 3; k++) {
        const char *plan = modes[k] == PLAN_SMALLEST ? "smallest" : "rebuild-all";
        CHECK(memcmp(g[0], g[k], sizeof(float) * ng) == 0, "gradients differ: %s plan and keep-all", plan);
        CHECK(memcmp(out[0], out[k], sizeof(float) * n * od) == 0, "outputs differ: %s plan and keep-all", plan);
        CHECK(memcmp(feat[0], feat[k], sizeof(float) * model_tensor_numel(net.m, net.feature, n)) == 0,
              "features differ: %s plan and keep-all", plan);
        CHECK(memcmp(buf[0], buf[k], sizeof(float) * net.m->n_buf) == 0, "BN statistics differ: %s plan", plan);
    }
    CHECK(rebuilt[0] == 0 && rebuilt[1] > 0, "rebuilt tensors: keep-all %d, smallest %d", rebuilt[0], rebuilt[1]);
    CHECK(adds > 0 && adds_rebuilt == adds, "rebuild-all rebuilds %d of %d block outputs", adds_rebuilt, adds);
    CHECK(bytes[1] < bytes[0] && bytes[1] <= bytes[2] && bytes[1] < unplanned,
          "plan %zu bytes, keep-all %zu, rebuild-all %zu", bytes[1], bytes[0], bytes[2]);
    bool lowp = p != PRECISION_FP32;
    CHECK(copies[0] == 0 && (lowp ? copies[1] > 0 && copies[2] > 0 : copies[1] == 0 && copies[2] == 0),
          "16-bit copies at %s: keep-all %d, smallest %d, rebuild-all %d", precision_name(p), copies[0], copies[1],
          copies[2]);
    CHECK(!lowp || bytes[1] < fp32_bytes, "at %s the plan takes %zu bytes, at fp32 %zu", precision_name(p), bytes[1],
          fp32_bytes);
    test_note("activation memory: planned %.2f MiB (%d tensors rebuilt, %d kept in 16 bits; fp32's plan %.2f MiB), "
              "rebuild-all %.2f MiB (%d), keep-all %.2f MiB, one buffer per tensor and gradient %.2f MiB",
              bytes[1] / 1048576.0, rebuilt[1], copies[1], fp32_bytes / 1048576.0, bytes[2] / 1048576.0, rebuilt[2],
              bytes[0] / 1048576.0, unplanned / 1048576.0);
    for (int k = 0; k < 3; k++) free(g[k]), free(out[k]), free(feat[k]), free(buf[k]);
    free(buf0), free(x), free(dy), model_free(net.m);
}

static void test_planned_memory_basic(void) { planned_equals_keep_all(&SMALL_BASIC, 16, PRECISION_FP32); }
static void test_planned_memory_bottleneck(void) { planned_equals_keep_all(&SMALL_BOTTLENECK, 32, PRECISION_FP32); }
/* mixed precision: rebuilt tensors are rounded as forward rounded them; 16-bit copies give back what was copied */
static void test_planned_memory_bf16(void) { planned_equals_keep_all(&SMALL_BASIC, 16, PRECISION_BF16); }
static void test_planned_memory_fp16(void) { planned_equals_keep_all(&SMALL_BOTTLENECK, 32, PRECISION_FP16); }

static void test_initialisation(void) {
    Model *m = model_new(backend_cpu());
    int x = model_input(m, 3, 32, 32);
    int f = resnet_build(m, &RESNET18_CIFAR, x);
    mlp_head_build(m, f, 1024, 128);
    CHECK(model_finalize(m, 2, 42) == 0, "%s", rsa_error_message());
    int checked_conv = 0, zero_gammas = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        const Node *nd = &m->nodes[i];
        if (nd->weight < 0) continue;
        const ParamInfo *p = &m->params[nd->weight];
        const float *w = m->w + p->offset;
        double sum = 0, sq = 0, mx = 0;
        for (size_t j = 0; j < p->numel; j++) sum += w[j], sq += (double)w[j] * w[j], mx = fmax(mx, fabs(w[j]));
        double mean = sum / p->numel, sd = sqrt(sq / p->numel - mean * mean);
        if (nd->kind == NODE_CONV && p->numel >= 10000) {
            double want = sqrt(2.0 / (p->shape[0] * p->shape[2] * p->shape[3]));
            CHECK(fabs(sd / want - 1) < 0.03 && fabs(mean) < 0.05 * want, "%s: std %.4g want %.4g, mean %.3g", p->name,
                  sd, want, mean);
            checked_conv++;
        } else if (nd->kind == NODE_BN) {
            bool zero = strstr(p->name, "bn2") != NULL && strstr(p->name, "layer") != NULL;
            CHECK(mean == (zero ? 0.0 : 1.0) && sd == 0, "%s: gamma mean %g", p->name, mean);
            zero_gammas += zero;
            const float *beta = m->w + m->params[nd->bias].offset;
            for (int c = 0; c < m->params[nd->bias].shape[0]; c++) CHECK(beta[c] == 0, "%s beta", p->name);
        } else if (nd->kind == NODE_LINEAR) {
            double bound = 1.0 / sqrt((double)p->shape[1]);
            CHECK(mx <= bound && fabs(sd / (bound / sqrt(3.0)) - 1) < 0.03, "%s: max %.4g bound %.4g std %.4g",
                  p->name, mx, bound, sd);
        }
    }
    CHECK(checked_conv >= 15, "only %d convolutions checked", checked_conv);
    CHECK(zero_gammas == 8, "%d zero-initialised residual gammas, want 8 (one per BasicBlock)", zero_gammas);
    for (int b = 0; b < m->n_bns; b++)
        for (int c = 0; c < m->bns[b].c; c++)
            CHECK(m->buf[m->bns[b].stat_offset + c] == 0 && m->buf[m->bns[b].stat_offset + m->bns[b].c + c] == 1,
                  "running statistics of BN %d", b);
    /* the same seed gives the same weights, another seed others */
    Model *m2 = model_new(backend_cpu()), *m3 = model_new(backend_cpu());
    Model *ms[2] = {m2, m3};
    for (int k = 0; k < 2; k++) {
        int x2 = model_input(ms[k], 3, 32, 32);
        mlp_head_build(ms[k], resnet_build(ms[k], &RESNET18_CIFAR, x2), 1024, 128);
        model_finalize(ms[k], 2, k == 0 ? 42 : 43);
    }
    CHECK(memcmp(m->w, m2->w, sizeof(float) * m->n_weights) == 0, "same seed, different weights");
    CHECK(memcmp(m->w, m3->w, sizeof(float) * m->n_weights) != 0, "different seeds, same weights");
    model_free(m), model_free(m2), model_free(m3);
}

/* stem_conv2d_init: the stem conv alone starts as nn.Conv2d starts (uniform within 1/sqrt(3 x 3 x 3)), every other
 * parameter keeps its bits (each draws from its own stream) */
static void test_stem_conv2d_init(void) {
    Model *ms[2];
    for (int k = 0; k < 2; k++) {
        ResNetSpec spec = RESNET18_CIFAR;
        spec.stem_conv2d_init = k == 1;
        ms[k] = model_new(backend_cpu());
        int x = model_input(ms[k], 3, 32, 32);
        mlp_head_build(ms[k], resnet_build(ms[k], &spec, x), 1024, 128);
        CHECK(model_finalize(ms[k], 2, 42) == 0, "%s", rsa_error_message());
    }
    int stem = -1;
    for (int i = 0; i < ms[1]->n_params; i++)
        if (strcmp(ms[1]->params[i].name, "conv1.weight") == 0) stem = i;
    CHECK(stem >= 0, "no conv1.weight");
    if (stem < 0) return;
    const ParamInfo *p = &ms[1]->params[stem];
    const float *w = ms[1]->w + p->offset;
    double bound = 1.0 / sqrt(27.0), mx = 0, sq = 0;
    for (size_t j = 0; j < p->numel; j++) mx = fmax(mx, fabs(w[j])), sq += (double)w[j] * w[j];
    double sd = sqrt(sq / (double)p->numel); /* 1728 draws: within 6 % of bound / sqrt(3) */
    CHECK(mx <= bound && mx > 0.95 * bound && fabs(sd / (bound / sqrt(3.0)) - 1) < 0.06,
          "stem: max %.4f sd %.4f; want within %.4f, sd %.4f", mx, sd, bound, bound / sqrt(3.0));
    CHECK(memcmp(ms[0]->w, ms[1]->w, sizeof(float) * p->offset) == 0 &&
              memcmp(ms[0]->w + p->offset + p->numel, ms[1]->w + p->offset + p->numel,
                     sizeof(float) * (ms[1]->n_weights - p->offset - p->numel)) == 0,
          "a parameter other than the stem changed");
    CHECK(memcmp(ms[0]->w + p->offset, w, sizeof(float) * p->numel) != 0, "the stem did not change");
    model_free(ms[0]), model_free(ms[1]);
}

/* bn_group: a batch of 8 in BN groups of 4 computes what two processes with 4 images each compute without SyncBN
 * (the reference backend: each image's convolution and each group's BN the same loops): every activation bit for
 * bit, the running statistics the first group's (DDP keeps rank 0's), and the gradients the two halves' sums. */
static void test_bn_groups_are_halves(void) {
    const int n = 8, size = 16;
    Net g = build_grouped(backend_ref(), &SMALL_BASIC, size, n, 5, n / 2);
    Net half[2] = {build(backend_ref(), &SMALL_BASIC, size, n / 2, 5),
                   build(backend_ref(), &SMALL_BASIC, size, n / 2, 5)};
    randomize_bn(g.m, 77), randomize_bn(half[0].m, 77), randomize_bn(half[1].m, 77);
    size_t per = (size_t)3 * size * size;
    float *x = test_alloc(per * n);
    fill_normal(x, per * n, 9, 1);
    int out_dim = g.m->tensors[g.out].c;
    float *dy = test_alloc((size_t)n * out_dim);
    fill_normal(dy, (size_t)n * out_dim, 10, 1);
    Workspace *wg = workspace_new_ex(g.m, true, PLAN_KEEP_ALL);
    Workspace *wh[2] = {workspace_new_ex(half[0].m, true, PLAN_KEEP_ALL),
                        workspace_new_ex(half[1].m, true, PLAN_KEEP_ALL)};
    model_zero_grad(g.m);
    model_forward(g.m, wg, n, x, true, -1);
    for (int k = 0; k < 2; k++) {
        model_zero_grad(half[k].m);
        model_forward(half[k].m, wh[k], n / 2, x + per * (n / 2) * k, true, -1);
    }
    int differ = 0;
    for (int t = 1; t < g.m->n_tensors; t++)
        for (int k = 0; k < 2; k++) {
            size_t count = model_tensor_numel(g.m, t, n / 2);
            differ += memcmp(wg->act[t] + count * k, wh[k]->act[t], sizeof(float) * count) != 0;
        }
    CHECK(differ == 0, "%d activations of the grouped batch differ from its halves'", differ);
    CHECK(memcmp(g.m->buf, half[0].m->buf, sizeof(float) * g.m->n_buf) == 0,
          "running statistics: not the first group's");
    CHECK(memcmp(g.m->buf, half[1].m->buf, sizeof(float) * g.m->n_buf) != 0, "the halves' statistics are the same");
    /* the same output gradient row by row: the halves' parameter gradients add up to the whole batch's */
    model_backward(g.m, wg, g.out, dy);
    for (int k = 0; k < 2; k++) model_backward(half[k].m, wh[k], half[k].out, dy + (size_t)(n / 2) * out_dim * k);
    float *sum = test_alloc(g.m->n_weights);
    for (size_t i = 0; i < g.m->n_weights; i++) sum[i] = half[0].m->g[i] + half[1].m->g[i];
    double e = rel_l2(g.m->g, sum, g.m->n_weights);
    CHECK(e < 1e-5, "gradients: rel_l2 %.3g from the halves' sum", e);
    /* the memory plan that rebuilds BN outputs in backward rebuilds them group by group: the same gradients */
    Net p = build_grouped(backend_ref(), &SMALL_BASIC, size, n, 5, n / 2);
    randomize_bn(p.m, 77);
    Workspace *wp = workspace_new(p.m, true);
    CHECK(wp->n_rebuilt > 0, "the plan rebuilds nothing: the grouped rebuild is not tested");
    model_zero_grad(p.m);
    model_forward(p.m, wp, n, x, true, -1);
    model_backward(p.m, wp, p.out, dy);
    CHECK(memcmp(p.m->g, g.m->g, sizeof(float) * g.m->n_weights) == 0, "rebuilt in backward: other gradients");
    workspace_free(wp), model_free(p.m);
    workspace_free(wg), workspace_free(wh[0]), workspace_free(wh[1]);
    model_free(g.m), model_free(half[0].m), model_free(half[1].m);
    free(x), free(dy), free(sum);
}

static void test_determinism_and_partial_batch(void) {
    const int n = 5, size = 16;
    size_t nx = (size_t)n * 3 * size * size;
    float *x = test_alloc(nx);
    fill_normal(x, nx, 4, 1);
    float *outs[2], *grads[2];
    int od = 0;
    size_t grads_n = 0;
    for (int run = 0; run < 2; run++) {
        Net net = build(backend_cpu(), &SMALL_BASIC, size, n, 8);
        od = net.m->tensors[net.out].c;
        float *dy = test_alloc((size_t)n * od);
        fill_normal(dy, (size_t)n * od, 6, 1);
        Workspace *ws = workspace_new(net.m, true);
        model_zero_grad(net.m);
        model_forward(net.m, ws, n, x, true, -1);
        model_backward(net.m, ws, net.out, dy);
        outs[run] = test_alloc((size_t)n * od);
        memcpy(outs[run], ws->act[net.out], sizeof(float) * n * od);
        grads_n = net.m->n_weights;
        grads[run] = test_alloc(net.m->n_weights);
        memcpy(grads[run], net.m->g, sizeof(float) * net.m->n_weights);
        if (run == 1) {
            /* a batch of 3 through a model planned for 5 equals a model planned for 3 */
            Net small = build(backend_cpu(), &SMALL_BASIC, size, 3, 8);
            Workspace *ws3 = workspace_new(small.m, false);
            model_forward(net.m, ws, 3, x, true, -1);
            model_forward(small.m, ws3, 3, x, true, -1);
            CHECK(rel_l2(ws->act[net.out], ws3->act[small.out], (size_t)3 * od) <= 1e-6, "partial batch differs");
            workspace_free(ws3), model_free(small.m);
        }
        workspace_free(ws), model_free(net.m), free(dy);
    }
    CHECK(memcmp(outs[0], outs[1], sizeof(float) * n * od) == 0, "two identical runs gave different outputs");
    size_t ng = (size_t)grads_n;
    CHECK(memcmp(grads[0], grads[1], sizeof(float) * ng) == 0, "two identical runs gave different gradients");
    free(outs[0]), free(outs[1]), free(grads[0]), free(grads[1]), free(x);
}

/* Forward-only workspaces sharing one block (the learner's target and low_memory passes): used in turn, each gives
 * what a workspace of its own gives, bit for bit, and together they take the largest plan's memory, not the sum. */
static void test_shared_forward_workspaces(void) {
    const int n = 4, size = 16;
    size_t nx = (size_t)n * 3 * size * size;
    float *x = test_alloc(nx);
    fill_normal(x, nx, 21, 1);
    Net a = build(backend_staged(), &SMALL_BASIC, size, n, 31);
    Net b = build(backend_staged(), &SMALL_BOTTLENECK, size, n, 32);
    const Model *models[2] = {a.m, b.m};
    float *xd = backend_staged()->alloc(nx * sizeof(float));
    backend_staged()->upload(xd, x, nx * sizeof(float));
    Workspace *own[2] = {workspace_new(a.m, false), workspace_new(b.m, false)}, *shared[2];
    size_t before = backend_staged_held_bytes();
    CHECK(workspaces_new_shared(shared, models, 2) == 0, "%s", rsa_error_message());
    size_t largest = own[0]->block_bytes > own[1]->block_bytes ? own[0]->block_bytes : own[1]->block_bytes;
    CHECK(backend_staged_held_bytes() - before == largest, "shared workspaces took %zu bytes, the largest plan %zu",
          backend_staged_held_bytes() - before, largest);
    CHECK(shared[0]->block && !shared[1]->block, "the first workspace holds the block, the second none");
    const Net *nets[2] = {&a, &b};
    for (int round = 0; round < 2; round++) /* alternating, as the learner's passes do */
        for (int k = 0; k < 2; k++) {
            Model *m = nets[k]->m;
            int od = m->tensors[nets[k]->out].c;
            float *want = test_alloc((size_t)n * od), *got = test_alloc((size_t)n * od);
            model_forward(m, own[k], n, xd, false, -1);
            backend_staged()->download(want, own[k]->act[nets[k]->out], sizeof(float) * n * od);
            model_forward(m, shared[k], n, xd, false, -1);
            backend_staged()->download(got, shared[k]->act[nets[k]->out], sizeof(float) * n * od);
            CHECK(memcmp(want, got, sizeof(float) * n * od) == 0, "round %d, model %d: shared workspace differs",
                  round, k);
            free(want), free(got);
        }
    workspace_free(shared[1]), workspace_free(shared[0]);
    CHECK(backend_staged_held_bytes() == before, "freeing the shared workspaces left %zu bytes",
          backend_staged_held_bytes() - before);
    workspace_free(own[0]), workspace_free(own[1]);
    backend_staged()->release(xd, nx * sizeof(float));
    model_free(a.m), model_free(b.m), free(x);
}

static void test_state_roundtrip(void) {
    Net a = build(backend_cpu(), &SMALL_BOTTLENECK, 32, 2, 11), b = build(backend_cpu(), &SMALL_BOTTLENECK, 32, 2, 12);
    randomize_bn(a.m, 3);
    a.m->bns[0].batches_tracked = 17;
    char path[600];
    snprintf(path, sizeof path, "%s/state.safetensors", test_tmpdir());
    StWriter *w = st_writer_new();
    ModelState st;
    model_state_add(a.m, w, "encoder_q.", "", &st); /* the backbone alone, torchvision names */
    CHECK(st_write(w, path) == 0, "%s", rsa_error_message());
    st_writer_free(w);
    model_state_free(&st);
    StFile f;
    CHECK(st_open(&f, path) == 0, "%s", rsa_error_message());
    CHECK(st_find(&f, "layer1.0.conv3.weight") && st_find(&f, "bn1.num_batches_tracked"), "torchvision names");
    CHECK(!st_find(&f, "encoder_q_head.0.weight") && !st_find(&f, "0.weight"), "the head must not be exported");
    CHECK(model_state_load(b.m, &f, "encoder_q.", "", false) == 0, "%s", rsa_error_message());
    for (int i = 0; i < a.m->n_params; i++) {
        const ParamInfo *p = &a.m->params[i];
        bool backbone = strncmp(p->name, "encoder_q.", 10) == 0;
        int same = memcmp(a.m->w + p->offset, b.m->w + p->offset, p->numel * sizeof(float)) == 0;
        CHECK(backbone ? same : !same, "%s %s after loading the backbone", p->name, same ? "equal" : "differs");
    }
    CHECK(b.m->bns[0].batches_tracked == 17, "num_batches_tracked not restored");
    st_close(&f);
    /* a model of another width refuses the file and names the tensor */
    static const ResNetSpec WIDER = {BLOCK_BOTTLENECK, {1, 1, 1, 1}, 32, STEM_IMAGENET, false};
    Net c = build(backend_cpu(), &WIDER, 32, 2, 1);
    CHECK(st_open(&f, path) == 0, "%s", rsa_error_message());
    CHECK(model_state_load(c.m, &f, "encoder_q.", "", false) != 0, "loaded a file of another width");
    CHECK(strstr(rsa_error_message(), "conv1.weight") && strstr(rsa_error_message(), "expected F32 [32, 3, 7, 7]"),
          "message: %s", rsa_error_message());
    st_close(&f);
    model_free(a.m), model_free(b.m), model_free(c.m);
}

int main(void) {
    RUN(test_backward_same_state_basic);
    RUN(test_backward_same_state_bottleneck);
    RUN(test_two_workspaces_accumulate);
    RUN(test_planned_memory_basic);
    RUN(test_planned_memory_bottleneck);
    RUN(test_planned_memory_bf16);
    RUN(test_planned_memory_fp16);
    RUN(test_initialisation);
    RUN(test_stem_conv2d_init);
    RUN(test_bn_groups_are_halves);
    RUN(test_determinism_and_partial_batch);
    RUN(test_shared_forward_workspaces);
    RUN(test_state_roundtrip);
    return test_finish();
}
