/* Mixed precision (core/precision.h): the rounding functions against their definition (and fp16 against the
 * compiler's _Float16 conversion), the backends' rounding bit for bit (also where batch norm and addition round in
 * their own pass), 16-bit copies of rounded values exact, networks that round every activation and gradient they
 * write, the memory plan's rebuilt tensors rounded as in forward, bf16 close to fp32 and the CPU backend close to
 * the reference, and fp16's loss scaling (an overflowing step is skipped, the scale halves). */
#include "tests/util/fixture.h"
#include "tests/util/testlib.h"
#include "trainer/core/error.h"
#include "trainer/nn/nets.h"
#include "trainer/train/checkpoint.h"
#include "trainer/train/learner.h"
#include "trainer/train/loss_scale.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float from_bits(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* Values that hit every branch: zeros, ties in both directions, the largest finite values, the overflow edges,
 * fp16's subnormal range and its edges, infinities and NaN. */
static const float EDGES[] = {0.0f, -0.0f, 1.0f, -1.0f, 1.00390625f, 1.01171875f, 1.0009765625f, 1.0029296875f,
                              65504.0f, 65519.99f, 65520.0f, -65520.0f, 70000.0f, FLT_MAX, -FLT_MAX, 3.3895314e38f,
                              3.40e38f, 0x1p-14f, 0x1.ffcp-15f, 0x1p-24f, 0x1p-25f, 0x1.8p-25f, 0x1.0000002p-25f,
                              0x1.8p-24f, 0x1p-26f, 1e-30f, -1e-30f, FLT_MIN, 0x1p-149f, INFINITY, -INFINITY};

enum { N_EDGES = sizeof EDGES / sizeof *EDGES };

/* Any float bit pattern, spread over all exponents (NaNs and infinities included). */
static float random_float(uint64_t i) { return from_bits((uint32_t)(i * 2654435761u) ^ (uint32_t)(i >> 3)); }

/* bf16 by definition: the float with the low 16 bits clear nearest to x, ties to an even kept part. */
static void test_round_bf16_definition(void) {
    int bad = 0;
    for (uint64_t i = 0; i < 2000000 + N_EDGES; i++) {
        float x = i < N_EDGES ? EDGES[i] : random_float(i);
        float r = round_bf16(x);
        if (isnan(x)) {
            bad += !isnan(r);
            continue;
        }
        uint32_t down = bits(x) & 0xffff0000u, rest = bits(x) & 0xffffu;
        uint32_t want = rest > 0x8000u || (rest == 0x8000u && (down & 0x10000u)) ? down + 0x10000u : down;
        if (bits(r) != want && bad++ < 5) test_note("bf16(%a) = %a, want %a", x, r, from_bits(want));
    }
    CHECK(bad == 0, "%d values rounded wrongly to bf16", bad);
    CHECK(isinf(round_bf16(FLT_MAX)) && round_bf16(3.3895314e38f) == 3.3895314e38f, "bf16 overflow edge");
}

static void test_round_fp16_matches_float16(void) {
#ifdef __FLT16_MAX__
    int bad = 0;
    for (uint64_t i = 0; i < 2000000 + N_EDGES; i++) {
        float x = i < N_EDGES ? EDGES[i] : random_float(i);
        /* half of the random draws land in fp16's range, where the rounding is not trivial */
        if (i >= N_EDGES && (i & 1)) x = ldexpf(x / (1 + fabsf(x)), (int)(i % 48) - 30);
        float r = round_fp16(x), want = (float)(_Float16)x;
        if (isnan(x) ? !isnan(r) : bits(r) != bits(want)) {
            if (bad++ < 5) test_note("fp16(%a) = %a, _Float16 gives %a", x, r, want);
        }
    }
    CHECK(bad == 0, "%d values differ from _Float16's conversion", bad);
#else
    CHECK(0, "this compiler has no _Float16: build the tests with GCC 12 or later");
#endif
    CHECK(round_fp16(65519.99f) == 65504.0f && isinf(round_fp16(65520.0f)), "fp16 overflow edge");
    CHECK(round_fp16(0x1p-25f) == 0.0f && round_fp16(0x1.8p-25f) == 0x1p-24f, "fp16 subnormal ties");
}

/* 16-bit copies (lowp_bits, lowp_value): every 16-bit pattern but NaN's comes back as itself, a NaN as a NaN;
 * every float comes back as round_to gives it; fp16's bits are _Float16's. And every backend's to_lowp and
 * from_lowp give those bits. */
static void test_lowp_copies(void) {
    const Precision ps[2] = {PRECISION_BF16, PRECISION_FP16};
    int bad = 0;
    for (int p = 0; p < 2; p++) {
        for (uint32_t h = 0; h < 65536; h++) {
            float v = lowp_value(ps[p], (uint16_t)h);
            uint16_t back = lowp_bits(ps[p], v);
            if (isnan(v) ? !isnan(lowp_value(ps[p], back)) : back != h || round_to(ps[p], v) != v) {
                if (bad++ < 5) test_note("%s: 0x%04x -> %a -> 0x%04x", precision_name(ps[p]), h, v, back);
            }
        }
        for (uint64_t i = 0; i < 400000 + N_EDGES; i++) {
            float x = i < N_EDGES ? EDGES[i] : random_float(i);
            if (i >= N_EDGES && (i & 1)) x = ldexpf(x / (1 + fabsf(x)), (int)(i % 48) - 30);
            float r = round_to(ps[p], x), v = lowp_value(ps[p], lowp_bits(ps[p], x));
            bool same = isnan(x) ? isnan(v) : bits(v) == bits(r); /* a NaN's payload may not fit in 16 bits */
#ifdef __FLT16_MAX__
            _Float16 h = (_Float16)x;
            uint16_t hb;
            memcpy(&hb, &h, sizeof hb);
            if (ps[p] == PRECISION_FP16 && !isnan(x)) same = same && hb == lowp_bits(ps[p], x);
#endif
            if (!same && bad++ < 5) test_note("%s: %a copied back as %a, rounds to %a", precision_name(ps[p]), x, v, r);
        }
    }
    CHECK(bad == 0, "%d values do not survive a 16-bit copy", bad);
    const size_t n = 100003;
    float *x = test_alloc(n), *want = test_alloc(n), *got = test_alloc(n);
    uint16_t *h16 = malloc(sizeof(uint16_t) * n), *want16 = malloc(sizeof(uint16_t) * n);
    fill_normal(x, n, 4, 1);
    for (size_t i = 0; i < n; i += 5) x[i] = ldexpf(x[i], (int)(i % 61) - 40);
    for (size_t i = 0; i < N_EDGES; i++) x[i] = EDGES[i];
    const Backend *bes[2] = {backend_ref(), backend_cpu()};
    for (int p = 0; p < 2; p++) {
        for (size_t i = 0; i < n; i++) want[i] = round_to(ps[p], x[i]), want16[i] = lowp_bits(ps[p], x[i]);
        for (int k = 0; k < 2; k++) {
            memset(got, 0, sizeof(float) * n);
            bes[k]->to_lowp(ps[p], n, x, h16);
            CHECK(memcmp(h16, want16, sizeof(uint16_t) * n) == 0, "%s backend: other %s bits", bes[k]->name,
                  precision_name(ps[p]));
            bes[k]->from_lowp(ps[p], n, h16, got);
            CHECK(memcmp(got, want, sizeof(float) * n) == 0, "%s backend: %s copies come back as other values",
                  bes[k]->name, precision_name(ps[p]));
        }
    }
    free(x), free(want), free(got), free(h16), free(want16);
}

/* Every backend's accumulate_lowp gives the scalar definition's bits: y = round(y + round(x)), with sums that
 * overflow fp16, subnormals and NaN among the values. */
static void test_accumulate_lowp(void) {
    const size_t n = 100003;
    float *y = test_alloc(n), *x = test_alloc(n), *want = test_alloc(n), *got = test_alloc(n);
    fill_normal(y, n, 5, 1), fill_normal(x, n, 6, 1);
    for (size_t i = 0; i < n; i += 3) x[i] = ldexpf(x[i], (int)(i % 71) - 40);
    for (size_t i = 0; i < n; i += 7) y[i] = ldexpf(y[i], (int)(i % 53) - 30);
    for (size_t i = 0; i < N_EDGES; i++) x[i] = EDGES[i], y[n - 1 - i] = EDGES[i], x[n - 1 - i] = EDGES[i / 2];
    x[N_EDGES] = 40000, y[N_EDGES] = 40000; /* fp16: each term fits, the sum does not */
    x[N_EDGES + 1] = NAN;
    const Precision ps[2] = {PRECISION_BF16, PRECISION_FP16};
    const Backend *bes[2] = {backend_ref(), backend_cpu()};
    for (int p = 0; p < 2; p++) {
        for (size_t i = 0; i < n; i++) want[i] = round_to(ps[p], y[i] + round_to(ps[p], x[i]));
        for (int k = 0; k < 2; k++) {
            memcpy(got, y, sizeof(float) * n);
            bes[k]->accumulate_lowp(ps[p], n, got, x);
            size_t bad = 0, first = 0;
            for (size_t i = 0; i < n; i++)
                if ((isnan(want[i]) ? !isnan(got[i]) : bits(got[i]) != bits(want[i])) && bad++ == 0) first = i;
            CHECK(bad == 0, "%s backend, %s: %zu sums differ from the definition (e.g. %a + %a: %a, not %a)",
                  bes[k]->name, precision_name(ps[p]), bad, y[first], x[first], got[first], want[first]);
        }
        CHECK(isinf(want[N_EDGES]) == (ps[p] == PRECISION_FP16), "the test's overflowing sum does not overflow");
    }
    free(y), free(x), free(want), free(got);
}

/* Every backend's round_lowp gives the scalar definition's bits. */
static void test_backends_round_alike(void) {
    const size_t n = 100003;
    float *x = test_alloc(n), *a = test_alloc(n), *b = test_alloc(n);
    fill_normal(x, n, 3, 1);
    for (size_t i = 0; i < n; i += 7) x[i] = ldexpf(x[i], (int)(i % 61) - 40);
    for (size_t i = 0; i < N_EDGES; i++) x[i] = EDGES[i];
    x[n - 1] = NAN;
    const Precision ps[2] = {PRECISION_BF16, PRECISION_FP16};
    const Backend *bes[2] = {backend_ref(), backend_cpu()};
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < 2; k++) {
            memcpy(a, x, sizeof(float) * n);
            bes[k]->round_lowp(ps[p], n, a);
            for (size_t i = 0; i < n; i++) b[i] = round_to(ps[p], x[i]);
            CHECK(memcmp(a, b, sizeof(float) * n) == 0, "%s backend rounds %s differently", bes[k]->name,
                  precision_name(ps[p]));
        }
    memcpy(a, x, sizeof(float) * n);
    backend_cpu()->round_lowp(PRECISION_FP32, n, a);
    CHECK(memcmp(a, x, sizeof(float) * n) == 0, "fp32 must leave values alone");
    free(x), free(a), free(b);
}

static void test_backends_fuse_rounding(void) {
    check_fused_rounding(backend_ref());
    check_fused_rounding(backend_cpu());
}

typedef struct {
    Model *m;
    int out;
} Net;

static const ResNetSpec SMALL = {BLOCK_BASIC, {1, 1, 1, 1}, 16, STEM_CIFAR, false};

static Net build(const Backend *be, Precision p, int batch) {
    Net net;
    net.m = model_new(be);
    int image = model_input(net.m, 3, 16, 16);
    int feature = resnet_build(net.m, &SMALL, image);
    net.out = mlp_head_build(net.m, feature, 64, 32);
    if (model_finalize(net.m, batch, 11) != 0 || model_set_precision(net.m, p) != 0)
        test_fail_at(__FILE__, __LINE__, "%s", rsa_error_message());
    randomize_bn(net.m, 20);
    return net;
}

static bool all_rounded(Precision p, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (bits(round_to(p, x[i])) != bits(x[i])) return false;
    return true;
}

/* One forward and backward; returns the output and the parameter gradients (caller frees). */
static void step(Net *net, Workspace *ws, int n, const float *x, const float *dy, float **out, float **g) {
    Model *m = net->m;
    model_zero_grad(m);
    model_forward(m, ws, n, x, true, -1);
    model_backward(m, ws, net->out, dy);
    size_t od = (size_t)n * m->tensors[net->out].c;
    *out = test_alloc(od), *g = test_alloc(m->n_weights);
    workspace_read_nchw(ws, net->out, *out);
    memcpy(*g, m->g, sizeof(float) * m->n_weights);
}

/* Every tensor a bf16 or fp16 network holds after forward and backward (activations, gradients, the second
 * gradient buffers) is representable in that format; the weights it computes with are the rounded copy, the
 * master weights stay fp32. */
static void every_tensor_rounded(Precision p) {
    const int n = 4;
    Net net = build(backend_cpu(), p, n);
    Model *m = net.m;
    Workspace *ws = workspace_new_ex(m, true, PLAN_KEEP_ALL);
    size_t nx = (size_t)n * 3 * 16 * 16, od = (size_t)n * m->tensors[net.out].c;
    float *x = test_alloc(nx), *dy = test_alloc(od), *out, *g;
    fill_normal(x, nx, 1, 1), fill_normal(dy, od, 2, 1);
    step(&net, ws, n, x, dy, &out, &g);
    int bad_act = 0, bad_grad = 0, checked = 0;
    for (int t = 0; t < m->n_tensors; t++) {
        size_t count = model_tensor_numel(m, t, n);
        if (ws->act[t]) bad_act += !all_rounded(p, ws->act[t], count), checked++;
        if (ws->grad[t]) bad_grad += !all_rounded(p, ws->grad[t], count);
        if (ws->grad_sum[t]) bad_grad += !all_rounded(p, ws->grad_sum[t], count);
    }
    CHECK(checked == m->n_tensors, "%d of %d activations readable in a keep-all workspace", checked, m->n_tensors);
    CHECK(bad_act == 0 && bad_grad == 0, "%s: %d activations and %d gradients hold unrounded values",
          precision_name(p), bad_act, bad_grad);
    CHECK(all_rounded(p, m->w_lowp, m->n_weights), "the weights convolutions read are not rounded");
    CHECK(!all_rounded(p, m->w, m->n_weights), "the master weights must stay fp32");
    free(x), free(dy), free(out), free(g);
    workspace_free(ws);
    model_free(m);
}
/* Marks which floats of m->w belong to convolutions and linear layers (the gradients lowp_weight_grads rounds). */
static bool *weight_grad_rounded(const Model *m) {
    bool *mark = calloc(m->n_weights, sizeof(bool));
    for (int i = 0; i < m->n_nodes; i++) {
        const Node *nd = &m->nodes[i];
        if (nd->kind != NODE_CONV && nd->kind != NODE_LINEAR) continue;
        const int ps[2] = {nd->weight, nd->bias};
        for (int k = 0; k < 2; k++)
            if (ps[k] >= 0) memset(mark + m->params[ps[k]].offset, 1, m->params[ps[k]].numel);
    }
    return mark;
}

/* lowp_weight_grads: two backward passes into the same weights give, for every convolution and linear parameter,
 * round(round(a) + round(b)) of the two passes' own gradients a and b (what autograd gives the fp32 weight under
 * autocast: its 16-bit copy's gradients summed in 16 bits; ours start from the zeroed gradient, +0, so where both
 * round to -0 ours is +0), and a + b for batch norm's; at fp32 the key changes nothing. */
static float summed_in_format(Precision p, float a, float b) {
    return round_to(p, round_to(p, 0.0f + round_to(p, a)) + round_to(p, b));
}

static void weight_grads_summed_in_format(const Backend *be, Precision p) {
    const int n = 4;
    Net net = build(be, p, n);
    Model *m = net.m;
    Workspace *ws = workspace_new(m, true);
    size_t nx = (size_t)n * 3 * 16 * 16, od = (size_t)n * m->tensors[net.out].c;
    float *xa = test_alloc(nx), *xb = test_alloc(nx), *dya = test_alloc(od), *dyb = test_alloc(od), *oa, *ob, *ga, *gb;
    fill_normal(xa, nx, 1, 1), fill_normal(xb, nx, 2, 1), fill_normal(dya, od, 3, 1), fill_normal(dyb, od, 4, 1);
    step(&net, ws, n, xa, dya, &oa, &ga);
    step(&net, ws, n, xb, dyb, &ob, &gb);
    CHECK(model_set_weight_grad_rounding(m, true) == 0, "%s", rsa_error_message());
    model_zero_grad(m);
    model_forward(m, ws, n, xa, true, -1);
    model_backward(m, ws, net.out, dya);
    model_forward(m, ws, n, xb, true, -1);
    model_backward(m, ws, net.out, dyb);
    bool *rounded = weight_grad_rounded(m);
    size_t bad = 0, first = 0, changed = 0;
    for (size_t i = 0; i < m->n_weights; i++) {
        float want = ga[i] + gb[i];
        if (rounded[i] && p != PRECISION_FP32) {
            want = summed_in_format(p, ga[i], gb[i]);
            changed += bits(want) != bits(ga[i] + gb[i]);
        }
        if (bits(m->g[i]) != bits(want) && bad++ == 0) first = i;
    }
    CHECK(bad == 0, "%s backend, %s: %zu of %zu gradients are not the passes' own summed as specified (e.g. [%zu] "
          "%a, not %a)", be->name, precision_name(p), bad, m->n_weights, first, m->g[first],
          rounded[first] ? summed_in_format(p, ga[first], gb[first]) : ga[first] + gb[first]);
    CHECK(p == PRECISION_FP32 || changed > m->n_weights / 4, "%s: rounding changed only %zu gradients",
          precision_name(p), changed);
    free(rounded), free(xa), free(xb), free(dya), free(dyb), free(oa), free(ob), free(ga), free(gb);
    workspace_free(ws);
    model_free(m);
}
static void test_weight_grads_summed_in_format(void) {
    const Backend *bes[2] = {backend_ref(), backend_cpu()};
    const Precision ps[3] = {PRECISION_BF16, PRECISION_FP16, PRECISION_FP32};
    for (int k = 0; k < 2; k++)
        for (int p = 0; p < 3; p++) weight_grads_summed_in_format(bes[k], ps[p]);
}

static void test_every_tensor_rounded_bf16(void) { every_tensor_rounded(PRECISION_BF16); }
static void test_every_tensor_rounded_fp16(void) { every_tensor_rounded(PRECISION_FP16); }

/* Runs fp32 (a), bf16 (b) and the reference at bf16 (r), and fp32 again with inputs and weights perturbed by relative
 * noise of bf16's size, 2^-9 (c): what any change at bf16's precision does to this network. */
typedef struct {
    double out, grad;
} Err;

static Err compare(const float *o, const float *g, const float *o0, const float *g0, size_t od, size_t nw) {
    Err e = {rel_l2(o, o0, od), rel_l2(g, g0, nw)};
    return e;
}

/* bf16 approximates fp32: it moves outputs and parameter gradients no more than a 2^-9 relative perturbation of
 * the inputs and weights moves fp32's (small random networks are ill-conditioned: such a perturbation alone moves
 * the gradients by ~20 %, so a fixed tolerance would say nothing), and it is not fp32's bits. The CPU backend and
 * the reference round at the same points, so they differ less still. Switching back to fp32 gives fp32's bits. */
static void test_bf16_close_to_fp32_and_reference(void) {
    const int n = 4;
    Net f32 = build(backend_cpu(), PRECISION_FP32, n), b16 = build(backend_cpu(), PRECISION_BF16, n);
    Net ref = build(backend_ref(), PRECISION_BF16, n), noisy = build(backend_cpu(), PRECISION_FP32, n);
    size_t nx = (size_t)n * 3 * 16 * 16, od = (size_t)n * f32.m->tensors[f32.out].c, nw = f32.m->n_weights;
    float *x = test_alloc(nx), *xn = test_alloc(nx), *dy = test_alloc(od), *noise = test_alloc(nw + nx);
    fill_normal(x, nx, 5, 1), fill_normal(dy, od, 6, 1), fill_normal(noise, nw + nx, 7, 1);
    for (size_t i = 0; i < nx; i++) xn[i] = x[i] * (1 + 0x1p-9f * noise[nw + i]);
    for (size_t i = 0; i < nw; i++) noisy.m->w[i] *= 1 + 0x1p-9f * noise[i];
    model_weights_changed(noisy.m);
    Workspace *w1 = workspace_new(f32.m, true), *w2 = workspace_new(b16.m, true), *w3 = workspace_new(ref.m, true);
    Workspace *w4 = workspace_new(noisy.m, true);
    float *o1, *g1, *o2, *g2, *o3, *g3, *o4, *g4;
    step(&f32, w1, n, x, dy, &o1, &g1);
    step(&b16, w2, n, x, dy, &o2, &g2);
    step(&ref, w3, n, x, dy, &o3, &g3);
    step(&noisy, w4, n, xn, dy, &o4, &g4);
    Err bf = compare(o2, g2, o1, g1, od, nw), cr = compare(o2, g2, o3, g3, od, nw);
    Err nz = compare(o4, g4, o1, g1, od, nw);
    test_note("rel_l2 of outputs, gradients: bf16 vs fp32 %.2e, %.2e; fp32 with 2^-9 noise %.2e, %.2e; "
              "cpu vs ref at bf16 %.2e, %.2e", bf.out, bf.grad, nz.out, nz.grad, cr.out, cr.grad);
    CHECK(bf.out > 0 && bf.grad > 0, "bf16 gave fp32's bits");
    CHECK(bf.out < 2 * nz.out && bf.grad < 2 * nz.grad, "bf16 moves outputs by %.3g and gradients by %.3g, more "
          "than twice what 2^-9 noise does (%.3g, %.3g)", bf.out, bf.grad, nz.out, nz.grad);
    CHECK(cr.out < nz.out && cr.grad < nz.grad, "cpu vs ref at bf16: %.3g, %.3g", cr.out, cr.grad);
    /* back to fp32 (as evaluation does, with a workspace of its own): fp32's bits */
    CHECK(model_set_precision(b16.m, PRECISION_FP32) == 0, "%s", rsa_error_message());
    workspace_free(w2);
    w2 = workspace_new(b16.m, true);
    float *o5, *g5;
    step(&b16, w2, n, x, dy, &o5, &g5);
    CHECK(memcmp(o5, o1, sizeof(float) * od) == 0 && memcmp(g5, g1, sizeof(float) * nw) == 0,
          "a model switched back to fp32 must compute fp32's bits");
    free(o1), free(g1), free(o2), free(g2), free(o3), free(g3), free(o4), free(g4), free(o5), free(g5);
    free(x), free(xn), free(dy), free(noise);
    workspace_free(w1), workspace_free(w2), workspace_free(w3), workspace_free(w4);
    model_free(f32.m), model_free(b16.m), model_free(ref.m), model_free(noisy.m);
}

/* GradScaler's rules: a non-finite gradient skips the step and halves the scale; 2000 good steps double it;
 * unscaling divides exactly. */
static void test_loss_scaler_rules(void) {
    const Backend *be = backend_cpu();
    LossScaler s;
    loss_scaler_init(&s, true);
    float g[3] = {65536.0f * 0.75f, -65536.0f * 0x1p-20f, 0};
    CHECK(loss_scaler_factor(&s) == 65536.0, "initial scale %g", loss_scaler_factor(&s));
    CHECK(loss_scaler_unscale(&s, be, g, 3) && g[0] == 0.75f && g[1] == -0x1p-20f && g[2] == 0,
          "unscaled to %g %g %g", g[0], g[1], g[2]);
    g[1] = INFINITY;
    CHECK(!loss_scaler_unscale(&s, be, g, 3) && s.scale == 32768.0 && s.skipped == 1 && s.good_steps == 0,
          "overflow: scale %g, skipped %lld", s.scale, (long long)s.skipped);
    g[1] = NAN;
    CHECK(!loss_scaler_unscale(&s, be, g, 3) && s.scale == 16384.0 && s.skipped == 2, "NaN: scale %g", s.scale);
    g[1] = 1;
    for (int i = 0; i < LOSS_SCALE_GROWTH_INTERVAL - 1; i++) loss_scaler_unscale(&s, be, g, 3);
    CHECK(s.scale == 16384.0, "grew early: %g", s.scale);
    loss_scaler_unscale(&s, be, g, 3);
    CHECK(s.scale == 32768.0 && s.good_steps == 0, "after %d good steps: %g", LOSS_SCALE_GROWTH_INTERVAL, s.scale);
    LossScaler off;
    loss_scaler_init(&off, false);
    g[1] = INFINITY;
    CHECK(loss_scaler_factor(&off) == 1.0 && loss_scaler_unscale(&off, be, g, 3), "an off scaler must not act");
}

/* An fp16 learner whose scale makes the loss gradient overflow fp16 skips the step (weights unchanged, the scale
 * halved), and keeps halving until a step goes through, as GradScaler does. */
static void test_fp16_overflow_skips_step(void) {
    TrainConfig c;
    CHECK(train_config_defaults(&c, "fashionmnist") == 0, "%s", rsa_error_message());
    c.backbone = (ResNetSpec){BLOCK_BASIC, {1, 1, 0, 0}, 8, STEM_CIFAR, false};
    c.proj_hidden = 32, c.proj_out = 16, c.image_size = 16, c.method = METHOD_BYOL, c.views = VIEWS_AA;
    c.precision = PRECISION_FP16;
    const int n = 8;
    Learner *l = learner_new(&c, backend_cpu(), n, 100);
    CHECK(l != NULL, "%s", rsa_error_message());
    if (!l) return;
    size_t nv = (size_t)n * 3 * 16 * 16, nw = l->online->n_weights;
    float *v[2] = {test_alloc(nv), test_alloc(nv)}, *w0 = test_alloc(nw);
    fill_normal(v[0], nv, 1, 1), fill_normal(v[1], nv, 2, 1);
    memcpy(w0, l->online->w, sizeof(float) * nw);
    StepMetrics sm;
    l->scaler.scale = 0x1p40; /* the loss gradient times 2^40 is far beyond fp16's 65504 */
    CHECK(learner_step(l, v, n, 0.1, &sm) == 0, "%s", rsa_error_message());
    CHECK(sm.skipped && sm.loss_scale == 0x1p40 && l->scaler.scale == 0x1p39 && l->scaler.skipped == 1,
          "skipped %d, scale %g -> %g", sm.skipped, sm.loss_scale, l->scaler.scale);
    CHECK(memcmp(w0, l->online->w, sizeof(float) * nw) == 0, "a skipped step changed the online weights");
    int steps = 1;
    while (sm.skipped && steps < 60) {
        double before = l->scaler.scale;
        CHECK(learner_step(l, v, n, 0.1, &sm) == 0, "%s", rsa_error_message());
        steps++;
        CHECK(sm.skipped ? l->scaler.scale == before / 2 : l->scaler.scale == before, "scale %g -> %g", before,
              l->scaler.scale);
    }
    CHECK(!sm.skipped && l->scaler.good_steps == 1 && l->scaler.skipped == steps - 1, "no step went through");
    CHECK(memcmp(w0, l->online->w, sizeof(float) * nw) != 0, "a good step left the weights alone");
    test_note("%d steps skipped from 2^40, first good step at scale 2^%d", steps - 1, (int)log2(l->scaler.scale));
    free(v[0]), free(v[1]), free(w0);
    learner_free(l);
}

/* fp16's loss-scale state travels in the checkpoint; a damaged one is refused. */
static void test_loss_scale_in_checkpoint(void) {
    TrainConfig c;
    CHECK(train_config_defaults(&c, "fashionmnist") == 0, "%s", rsa_error_message());
    c.backbone = (ResNetSpec){BLOCK_BASIC, {1, 0, 0, 0}, 8, STEM_CIFAR, false};
    c.proj_hidden = 16, c.proj_out = 8, c.image_size = 8, c.method = METHOD_BYOL, c.views = VIEWS_AA;
    c.precision = PRECISION_FP16;
    Learner *a = learner_new(&c, backend_cpu(), 4, 10), *b = learner_new(&c, backend_cpu(), 4, 10);
    CHECK(a && b, "%s", rsa_error_message());
    if (!a || !b) return;
    a->scaler.scale = 1024, a->scaler.good_steps = 123, a->scaler.skipped = 7;
    char path[600];
    snprintf(path, sizeof path, "%s/fp16.safetensors", test_tmpdir());
    RunPosition pos = {0, 1, 0}, got;
    CHECK(checkpoint_save(a, pos, "h", path) == 0, "%s", rsa_error_message());
    CHECK(checkpoint_load(b, "h", path, &got) == 0, "%s", rsa_error_message());
    CHECK(b->scaler.scale == 1024 && b->scaler.good_steps == 123 && b->scaler.skipped == 7,
          "loaded scale %g, good steps %lld, skipped %lld", b->scaler.scale, (long long)b->scaler.good_steps,
          (long long)b->scaler.skipped);
    /* an fp32 checkpoint has no scale: an fp16 run must not take it for one */
    a->scaler.on = false;
    CHECK(checkpoint_save(a, pos, "h", path) == 0, "%s", rsa_error_message());
    CHECK(checkpoint_load(b, "h", path, &got) != 0 && strstr(rsa_error_message(), "loss_scale"), "message: %s",
          rsa_error_message());
    learner_free(a), learner_free(b);
}

int main(void) {
    RUN(test_round_bf16_definition);
    RUN(test_round_fp16_matches_float16);
    RUN(test_lowp_copies);
    RUN(test_accumulate_lowp);
    RUN(test_backends_round_alike);
    RUN(test_backends_fuse_rounding);
    RUN(test_every_tensor_rounded_bf16);
    RUN(test_every_tensor_rounded_fp16);
    RUN(test_weight_grads_summed_in_format);
    RUN(test_bf16_close_to_fp32_and_reference);
    RUN(test_loss_scaler_rules);
    RUN(test_fp16_overflow_skips_step);
    RUN(test_loss_scale_in_checkpoint);
    return test_finish();
}
