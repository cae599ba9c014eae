#include "model.h"

#include "plan.h"

#include "../core/error.h"
#include "../core/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *grow(void *p, int *cap, int need, size_t elem) {
    if (need <= *cap) return p;
    int cap2 = *cap ? *cap * 2 : 16;
    while (cap2 < need) cap2 *= 2;
    void *q = realloc(p, (size_t)cap2 * elem);
    if (!q) rsa_fatal("free memory", "out of memory");
    memset((char *)q + (size_t)*cap * elem, 0, (size_t)(cap2 - *cap) * elem);
    *cap = cap2;
    return q;
}

Model *model_new(const Backend *be) {
    Model *m = calloc(1, sizeof *m);
    if (!m) rsa_fatal("free memory", "out of memory");
    m->be = be;
    m->bn_momentum = 0.1f;
    m->bn_eps = 1e-5f;
    return m;
}

void model_free(Model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].conv) m->be->conv_destroy(m->nodes[i].conv);
    if (m->w) m->be->release(m->w, sizeof(float) * m->n_weights);
    if (m->g) m->be->release(m->g, sizeof(float) * m->n_weights);
    if (m->buf) m->be->release(m->buf, sizeof(float) * m->n_buf);
    if (m->w_lowp) m->be->release(m->w_lowp, sizeof(float) * m->n_weights);
    if (m->g_pass) m->be->release(m->g_pass, sizeof(float) * m->n_g_pass);
    free(m->nodes);
    free(m->tensors);
    free(m->params);
    free(m->bns);
    free(m);
}

void model_set_prefix(Model *m, const char *prefix) {
    snprintf(m->prefix, sizeof m->prefix, "%s", prefix);
}

static int add_tensor(Model *m, int c, int h, int w) {
    m->tensors = grow(m->tensors, &m->cap_tensors, m->n_tensors + 1, sizeof *m->tensors);
    TensorDesc *t = &m->tensors[m->n_tensors];
    t->c = c, t->h = h, t->w = w;
    t->layout = m->be->act_layout(c, h * w);
    return m->n_tensors++;
}

static Node *add_node(Model *m, NodeKind kind, const char *name, int in0, int in1) {
    RSA_ASSERT(!m->finalized);
    RSA_ASSERT(in0 >= 0 && in0 < m->n_tensors);
    RSA_ASSERT(in1 < m->n_tensors);
    m->nodes = grow(m->nodes, &m->cap_nodes, m->n_nodes + 1, sizeof *m->nodes);
    Node *nd = &m->nodes[m->n_nodes++];
    memset(nd, 0, sizeof *nd);
    nd->kind = kind;
    snprintf(nd->name, sizeof nd->name, "%s%s", m->prefix, name ? name : "");
    nd->in[0] = in0, nd->in[1] = in1, nd->out = -1;
    nd->weight = nd->bias = nd->bn = -1;
    return nd;
}

static int add_param(Model *m, const char *module, const char *leaf, int ndim, const int64_t *shape) {
    m->params = grow(m->params, &m->cap_params, m->n_params + 1, sizeof *m->params);
    ParamInfo *p = &m->params[m->n_params];
    int len = snprintf(p->name, sizeof p->name, "%s%s.%s", m->prefix, module, leaf);
    RSA_ASSERT(len < (int)sizeof p->name);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) p->shape[i] = shape[i], p->numel *= (size_t)shape[i];
    p->offset = m->n_weights;
    /* keep every parameter 64-byte aligned for vector loads */
    m->n_weights += (p->numel + 15) / 16 * 16;
    return m->n_params++;
}

int model_input(Model *m, int c, int h, int w) {
    int t = add_tensor(m, c, h, w);
    m->tensors[t].layout = LAYOUT_NCHW; /* images arrive from the loader in NCHW */
    Node *nd = add_node(m, NODE_INPUT, "input", t, -1);
    nd->in[0] = -1;
    nd->out = t;
    return t;
}

int model_conv(Model *m, const char *name, int x, int co, int k, int stride, int pad, bool bias) {
    const TensorDesc xi = m->tensors[x];
    int ho = (xi.h + 2 * pad - k) / stride + 1, wo = (xi.w + 2 * pad - k) / stride + 1;
    RSA_ASSERT(ho > 0 && wo > 0);
    int y = add_tensor(m, co, ho, wo);
    Node *nd = add_node(m, NODE_CONV, name, x, -1);
    nd->out = y, nd->k = k, nd->stride = stride, nd->pad = pad;
    int64_t ws[4] = {co, xi.c, k, k}, bs[1] = {co};
    nd->weight = add_param(m, name, "weight", 4, ws);
    if (bias) nd->bias = add_param(m, name, "bias", 1, bs);
    return y;
}

void model_init_as_conv2d(Model *m, int y) {
    RSA_ASSERT(!m->finalized);
    for (int i = m->n_nodes - 1; i >= 0; i--)
        if (m->nodes[i].out == y) {
            RSA_ASSERT(m->nodes[i].kind == NODE_CONV);
            m->nodes[i].conv2d_init = true;
            return;
        }
    RSA_ASSERT(!"model_init_as_conv2d: no node produces that tensor");
}

static int add_bn(Model *m, const char *name, int x, bool relu, bool zero_gamma, bool affine) {
    const TensorDesc xi = m->tensors[x];
    int y = add_tensor(m, xi.c, xi.h, xi.w);
    Node *nd = add_node(m, NODE_BN, name, x, -1);
    nd->out = y, nd->relu = relu;
    int64_t cs[1] = {xi.c};
    if (affine) {
        nd->weight = add_param(m, name, "weight", 1, cs);
        nd->bias = add_param(m, name, "bias", 1, cs);
    }
    m->bns = grow(m->bns, &m->cap_bns, m->n_bns + 1, sizeof *m->bns);
    BnInfo *b = &m->bns[m->n_bns];
    b->node = m->n_nodes - 1, b->c = xi.c, b->zero_gamma = zero_gamma, b->affine = affine;
    b->stat_offset = m->n_buf;
    m->n_buf += (size_t)2 * xi.c;
    if (!affine) {
        b->const_offset = m->n_buf;
        m->n_buf += (size_t)2 * xi.c;
    }
    b->save_offset = m->n_bn_saved;
    m->n_bn_saved += (size_t)2 * xi.c;
    nd->bn = m->n_bns++;
    return y;
}

int model_bn(Model *m, const char *name, int x, bool relu, bool zero_gamma) {
    return add_bn(m, name, x, relu, zero_gamma, true);
}

int model_bn_fixed(Model *m, const char *name, int x, bool relu) { return add_bn(m, name, x, relu, false, false); }

const float *model_bn_gamma(const Model *m, const Node *bn) {
    const BnInfo *b = &m->bns[bn->bn];
    return b->affine ? m->w + m->params[bn->weight].offset : m->buf + b->const_offset;
}

const float *model_bn_beta(const Model *m, const Node *bn) {
    const BnInfo *b = &m->bns[bn->bn];
    return b->affine ? m->w + m->params[bn->bias].offset : m->buf + b->const_offset + b->c;
}

int model_relu(Model *m, int x) {
    const TensorDesc xi = m->tensors[x];
    int y = add_tensor(m, xi.c, xi.h, xi.w);
    add_node(m, NODE_RELU, "relu", x, -1)->out = y;
    return y;
}

int model_maxpool(Model *m, int x, int k, int stride, int pad) {
    const TensorDesc xi = m->tensors[x];
    /* pad < k: every window holds an input pixel, which backward routes its gradient to */
    RSA_ASSERT(k >= 1 && stride >= 1 && pad >= 0 && pad < k && xi.h + 2 * pad >= k && xi.w + 2 * pad >= k);
    int y = add_tensor(m, xi.c, (xi.h + 2 * pad - k) / stride + 1, (xi.w + 2 * pad - k) / stride + 1);
    Node *nd = add_node(m, NODE_MAXPOOL, "maxpool", x, -1);
    nd->out = y, nd->k = k, nd->stride = stride, nd->pad = pad;
    return y;
}

int model_gap(Model *m, int x) {
    int y = add_tensor(m, m->tensors[x].c, 1, 1);
    add_node(m, NODE_GAP, "avgpool", x, -1)->out = y;
    return y;
}

int model_linear(Model *m, const char *name, int x, int out, bool bias) {
    const TensorDesc xi = m->tensors[x];
    RSA_ASSERT(xi.h == 1 && xi.w == 1);
    int y = add_tensor(m, out, 1, 1);
    Node *nd = add_node(m, NODE_LINEAR, name, x, -1);
    nd->out = y;
    int64_t ws[2] = {out, xi.c}, bs[1] = {out};
    nd->weight = add_param(m, name, "weight", 2, ws);
    if (bias) nd->bias = add_param(m, name, "bias", 1, bs);
    return y;
}

int model_add(Model *m, int a, int b, bool relu) {
    const TensorDesc ai = m->tensors[a], bi = m->tensors[b];
    RSA_ASSERT(ai.c == bi.c && ai.h == bi.h && ai.w == bi.w && ai.layout == bi.layout);
    int y = add_tensor(m, ai.c, ai.h, ai.w);
    Node *nd = add_node(m, NODE_ADD, "add", a, b);
    nd->out = y, nd->relu = relu;
    return y;
}

void model_mark_output(Model *m, int t) {
    RSA_ASSERT(t >= 0 && t < m->n_tensors && !m->finalized);
    m->tensors[t].output = true;
}

size_t model_tensor_numel(const Model *m, int t, int n) {
    const TensorDesc *d = &m->tensors[t];
    return (size_t)n * d->c * d->h * d->w;
}

/* torchvision's initialisation: conv weights kaiming-normal (fan_out, ReLU gain; nn.Conv2d's own uniform within
 * +-1/sqrt(fan_in) where model_init_as_conv2d asked), BN gamma 1 (0 where zero_init_residual asks) and beta 0,
 * linear layers as nn.Linear's default (uniform in +-1/sqrt(fan_in) for weight and bias). Each parameter draws
 * from its own stream, so adding a layer does not change the others. */
static void init_params(Model *m, float *host_w, uint64_t seed) {
    for (int i = 0; i < m->n_nodes; i++) {
        const Node *nd = &m->nodes[i];
        if (nd->weight < 0) continue;
        const ParamInfo *pw = &m->params[nd->weight];
        float *w = host_w + pw->offset;
        Rng r;
        rng_init(&r, seed, RNG_INIT, 0, (uint32_t)nd->weight, 0);
        if (nd->kind == NODE_CONV && nd->conv2d_init) {
            double bound = 1.0 / sqrt((double)(pw->numel / (size_t)pw->shape[0]));
            for (size_t j = 0; j < pw->numel; j++) w[j] = (float)rng_range(&r, -bound, bound);
        } else if (nd->kind == NODE_CONV) {
            double fan_out = (double)pw->shape[0] * pw->shape[2] * pw->shape[3];
            double std = sqrt(2.0 / fan_out);
            for (size_t j = 0; j < pw->numel; j++) w[j] = (float)(std * rng_normal(&r));
        } else if (nd->kind == NODE_BN) {
            float gamma = m->bns[nd->bn].zero_gamma ? 0.0f : 1.0f;
            for (size_t j = 0; j < pw->numel; j++) w[j] = gamma;
        } else {
            double bound = 1.0 / sqrt((double)pw->shape[1]);
            for (size_t j = 0; j < pw->numel; j++) w[j] = (float)rng_range(&r, -bound, bound);
        }
        if (nd->bias >= 0 && nd->kind != NODE_BN) {
            const ParamInfo *pb = &m->params[nd->bias];
            double fan_in = (double)pw->numel / pw->shape[0];
            double bound = 1.0 / sqrt(fan_in);
            rng_init(&r, seed, RNG_INIT, 0, (uint32_t)nd->bias, 0);
            for (size_t j = 0; j < pb->numel; j++) host_w[pb->offset + j] = (float)rng_range(&r, -bound, bound);
        }
    }
}

static void mark_needs_grad(Model *m) {
    for (int i = 0; i < m->n_nodes; i++) {
        Node *nd = &m->nodes[i];
        if (nd->kind == NODE_INPUT) continue;
        bool need = nd->weight >= 0 || m->tensors[nd->in[0]].needs_grad ||
                    (nd->in[1] >= 0 && m->tensors[nd->in[1]].needs_grad);
        m->tensors[nd->out].needs_grad = need;
    }
}

int model_finalize(Model *m, int max_batch, uint64_t seed) {
    RSA_ASSERT(!m->finalized && max_batch >= 1);
    m->max_batch = max_batch;
    mark_needs_grad(m);
    m->max_tensor = 0;
    for (int t = 0; t < m->n_tensors; t++) {
        size_t n = model_tensor_numel(m, t, max_batch);
        if (n > m->max_tensor) m->max_tensor = n;
    }
    for (int i = 0; i < m->n_nodes; i++) {
        Node *nd = &m->nodes[i];
        if (nd->kind != NODE_CONV) continue;
        const TensorDesc *x = &m->tensors[nd->in[0]], *y = &m->tensors[nd->out];
        ConvShape s = conv_shape(max_batch, x->c, x->h, x->w, y->c, nd->k, nd->stride, nd->pad);
        nd->conv = m->be->conv_create(&s, x->layout, y->layout, nd->bias >= 0);
    }
    size_t wbytes = sizeof(float) * (m->n_weights ? m->n_weights : 1);
    size_t bbytes = sizeof(float) * (m->n_buf ? m->n_buf : 1);
    m->w = m->be->alloc(wbytes);
    m->g = m->be->alloc(wbytes);
    m->buf = m->be->alloc(bbytes);
    if (!m->w || !m->g || !m->buf) return rsa_error_context("allocating the model's parameters");
    float *host = calloc(m->n_weights ? m->n_weights : 1, sizeof(float));
    float *hbuf = calloc(m->n_buf ? m->n_buf : 1, sizeof(float));
    if (!host || !hbuf) rsa_fatal("free memory", "out of memory");
    init_params(m, host, seed);
    /* each BN saves a mean and invstd per statistics group */
    m->bn_groups_max = m->bn_group > 0 && max_batch > m->bn_group ? max_batch / m->bn_group : 1;
    m->n_bn_saved = 0;
    for (int b = 0; b < m->n_bns; b++) {
        m->bns[b].save_offset = m->n_bn_saved;
        m->n_bn_saved += (size_t)2 * m->bns[b].c * m->bn_groups_max;
    }
    for (int b = 0; b < m->n_bns; b++)
        for (int c = 0; c < m->bns[b].c; c++) {
            hbuf[m->bns[b].stat_offset + m->bns[b].c + c] = 1.0f; /* running_var */
            if (!m->bns[b].affine) hbuf[m->bns[b].const_offset + c] = 1.0f; /* gamma */
        }
    m->be->upload(m->w, host, wbytes);
    m->be->upload(m->buf, hbuf, bbytes);
    free(host);
    free(hbuf);
    m->finalized = true;
    return 0;
}

int model_find_param(const Model *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, name) == 0) return i;
    return -1;
}

int model_find_bn(const Model *m, const char *bn_name) {
    for (int b = 0; b < m->n_bns; b++)
        if (strcmp(m->nodes[m->bns[b].node].name, bn_name) == 0) return b;
    return -1;
}

void model_weights_changed(Model *m) {
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].conv) m->be->conv_weights_changed(m->nodes[i].conv);
    if (m->precision != PRECISION_FP32) {
        m->be->copy(m->w_lowp, m->w, sizeof(float) * m->n_weights);
        m->be->round_lowp(m->precision, m->n_weights, m->w_lowp);
    }
}

/* Tells the convolutions what the network rounds their weight gradients to (model_set_weight_grad_rounding). */
static void tell_weight_grad_precision(Model *m) {
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].conv)
            m->be->conv_set_weight_grad_precision(m->nodes[i].conv,
                                                  m->lowp_weight_grads ? m->precision : PRECISION_FP32);
}

int model_set_precision(Model *m, Precision p) {
    RSA_ASSERT(m->finalized);
    if (p != PRECISION_FP32 && !m->w_lowp) {
        m->w_lowp = m->be->alloc(sizeof(float) * (m->n_weights ? m->n_weights : 1));
        if (!m->w_lowp) return rsa_error_context("allocating the %s copy of the weights", precision_name(p));
    }
    m->precision = p;
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].conv) m->be->conv_set_precision(m->nodes[i].conv, p);
    tell_weight_grad_precision(m);
    model_weights_changed(m); /* convolutions may hold a copy of the other precision's weights */
    return 0;
}

/* Floats of a node's weight and bias gradients. */
static size_t layer_params(const Model *m, const Node *nd) {
    return (nd->weight >= 0 ? m->params[nd->weight].numel : 0) + (nd->bias >= 0 ? m->params[nd->bias].numel : 0);
}

/* Convolutions and linear layers: the layers whose weight gradients lowp_weight_grads sums in the format. */
static bool weight_layer(const Node *nd) { return nd->kind == NODE_CONV || nd->kind == NODE_LINEAR; }

static bool rounds_weight_grads(const Model *m, const Node *nd) {
    return m->lowp_weight_grads && m->precision != PRECISION_FP32 && weight_layer(nd);
}

int model_set_weight_grad_rounding(Model *m, bool on) {
    RSA_ASSERT(m->finalized);
    if (on && !m->g_pass) {
        size_t most = 1;
        for (int i = 0; i < m->n_nodes; i++)
            if (weight_layer(&m->nodes[i]) && layer_params(m, &m->nodes[i]) > most)
                most = layer_params(m, &m->nodes[i]);
        if (!(m->g_pass = m->be->alloc(sizeof(float) * most)))
            return rsa_error_context("allocating the buffer of a layer's weight gradient");
        m->n_g_pass = most;
    }
    m->lowp_weight_grads = on;
    tell_weight_grad_precision(m);
    return 0;
}

/* The weights convolutions and linear layers read: rounded at bf16 and fp16 (BN's gamma and beta stay fp32). */
static const float *op_weights(const Model *m, int param) {
    if (param < 0) return NULL;
    return (m->precision != PRECISION_FP32 ? m->w_lowp : m->w) + m->params[param].offset;
}

static int input_tensor(const Model *m) {
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].kind == NODE_INPUT) return m->nodes[i].out;
    return -1;
}

void model_zero_grad(Model *m) { m->be->zero(m->g, sizeof(float) * m->n_weights); }

Workspace *workspace_new(const Model *m, bool with_grad) { return workspace_new_ex(m, with_grad, PLAN_SMALLEST); }

/* Planned, not yet bound to memory: the plan's offsets wait in ws->plan. */
static Workspace *workspace_plan(const Model *m, bool with_grad, PlanMode mode) {
    RSA_ASSERT(m->finalized);
    Workspace *ws = calloc(1, sizeof *ws);
    MemPlan *plan = malloc(sizeof *plan);
    if (!ws || !plan) rsa_fatal("free memory", "out of memory");
    ws->m = m, ws->with_grad = with_grad, ws->plan = plan;
    size_t T = (size_t)m->n_tensors;
    ws->act = calloc(T, sizeof *ws->act);
    ws->act_bwd = calloc(T, sizeof *ws->act_bwd);
    ws->grad = calloc(T, sizeof *ws->grad);
    ws->grad_sum = calloc(T, sizeof *ws->grad_sum);
    ws->copy16 = calloc(T, sizeof *ws->copy16);
    ws->written = calloc(T, sizeof *ws->written);
    ws->rebuilt = calloc(T, sizeof *ws->rebuilt);
    if (!ws->act || !ws->act_bwd || !ws->grad || !ws->grad_sum || !ws->copy16 || !ws->written || !ws->rebuilt)
        rsa_fatal("free memory", "out of memory");
    ws->precision = m->precision;
    plan_make(m, with_grad, mode, plan);
    int in = input_tensor(m);
    size_t in_floats = m->precision != PRECISION_FP32 && in >= 0 ? model_tensor_numel(m, in, m->max_batch) : 0;
    ws->block_bytes = sizeof(float) * (plan->floats + m->n_bn_saved + in_floats + 16);
    ws->unplanned_bytes = sizeof(float) * (plan->unplanned + m->n_bn_saved + in_floats);
    ws->n_rebuilt = plan->rebuilt, ws->n_copy16 = plan->n_copy16;
    return ws;
}

/* Points the planned workspace's tensors into block and forgets the plan. */
static void workspace_place(Workspace *ws, void *block) {
    const Model *m = ws->m;
    const MemPlan *plan = ws->plan;
    float *base = block;
    for (size_t t = 0; t < (size_t)m->n_tensors; t++) {
        if (plan->act[t] != PLAN_NONE) ws->act[t] = base + plan->act[t];
        if (plan->act_bwd[t] != PLAN_NONE) ws->act_bwd[t] = base + plan->act_bwd[t];
        if (plan->grad[t] != PLAN_NONE) ws->grad[t] = base + plan->grad[t];
        if (plan->grad_sum[t] != PLAN_NONE) ws->grad_sum[t] = base + plan->grad_sum[t];
        if (plan->copy16[t] != PLAN_NONE) ws->copy16[t] = (uint16_t *)(base + plan->copy16[t]);
    }
    ws->bn_saved = base + plan->floats;
    int in = input_tensor(m);
    if (m->precision != PRECISION_FP32 && in >= 0) ws->input_lowp = ws->bn_saved + m->n_bn_saved;
    plan_free(ws->plan);
    free(ws->plan);
    ws->plan = NULL;
}

/* One block, as large as the largest of them, for all of the planned workspaces; ws[0] holds it. */
static int workspaces_bind(Workspace **ws, int count) {
    size_t bytes = 0;
    for (int i = 0; i < count; i++) bytes = ws[i]->block_bytes > bytes ? ws[i]->block_bytes : bytes;
    void *block = ws[0]->m->be->alloc(bytes);
    if (!block) {
        rsa_error_context("allocating activations for batch %d", ws[0]->m->max_batch);
        return -1;
    }
    ws[0]->block = block, ws[0]->block_bytes = bytes;
    for (int i = 0; i < count; i++) workspace_place(ws[i], block);
    return 0;
}

Workspace *workspace_new_ex(const Model *m, bool with_grad, PlanMode mode) {
    Workspace *ws = workspace_plan(m, with_grad, mode);
    if (workspaces_bind(&ws, 1) != 0) {
        workspace_free(ws);
        return NULL;
    }
    return ws;
}

int workspaces_new_shared(Workspace **out, const Model *const *models, int count) {
    RSA_ASSERT(count >= 1);
    for (int i = 0; i < count; i++) out[i] = workspace_plan(models[i], false, PLAN_SMALLEST);
    if (workspaces_bind(out, count) == 0) return 0;
    for (int i = 0; i < count; i++) workspace_free(out[i]), out[i] = NULL;
    return -1;
}

void workspace_free(Workspace *ws) {
    if (!ws) return;
    if (ws->block) ws->m->be->release(ws->block, ws->block_bytes);
    if (ws->plan) plan_free(ws->plan), free(ws->plan);
    free(ws->act);
    free(ws->act_bwd);
    free(ws->grad);
    free(ws->grad_sum);
    free(ws->copy16);
    free(ws->written);
    free(ws->rebuilt);
    free(ws);
}

static BnShape bn_shape(const Model *m, const TensorDesc *t, int n) {
    BnShape s = {n, t->c, t->h * t->w, m->bn_eps, m->precision};
    return s;
}

/* How many statistics groups training-mode BN splits a batch of n into (Model.bn_group), and their size. */
static int bn_groups(const Model *m, bool train, int n, int *size) {
    if (!train || m->bn_group <= 0 || m->bn_group >= n) return *size = n, 1;
    RSA_ASSERT(n % m->bn_group == 0 && n / m->bn_group <= m->bn_groups_max);
    *size = m->bn_group;
    return n / m->bn_group;
}

/* Group g's saved batch mean (invstd at + c) of a BN. */
static float *bn_saved_of(const Workspace *ws, const BnInfo *bi, int g) {
    return ws->bn_saved + bi->save_offset + (size_t)g * 2 * bi->c;
}

static PoolShape node_pool_shape(const Model *m, const Node *nd, int n) {
    const TensorDesc *x = &m->tensors[nd->in[0]];
    return pool_shape(n, x->c, x->h, x->w, nd->k, nd->stride, nd->pad);
}

/* bf16/fp16: the output of node nd, rounded as a mixed-precision network stores it (ReLU and max-pooling only pass
 * on values their input already holds; batch norm and addition round in their own pass). */
static void round_output(Model *m, const Node *nd, float *y, int n) {
    if (m->precision == PRECISION_FP32 || nd->kind == NODE_RELU || nd->kind == NODE_MAXPOOL ||
        nd->kind == NODE_BN || nd->kind == NODE_ADD)
        return;
    m->be->round_lowp(m->precision, model_tensor_numel(m, nd->out, n), y);
}

void model_forward(Model *m, Workspace *ws, int n, const float *input, bool train, int until) {
    RSA_ASSERT(ws->m == m && n >= 1 && n <= m->max_batch);
    RSA_ASSERT(m->precision == ws->precision); /* its rounded input's room, its 16-bit copies' format */
    const Backend *be = m->be;
    ws->n = n, ws->train = train;
    for (int i = 0; i < m->n_nodes; i++) {
        Node *nd = &m->nodes[i];
        const TensorDesc *xt = nd->in[0] >= 0 ? &m->tensors[nd->in[0]] : NULL;
        const TensorDesc *yt = &m->tensors[nd->out];
        const float *x = nd->in[0] >= 0 ? ws->act[nd->in[0]] : NULL;
        float *y = ws->act[nd->out];
        const float *w = op_weights(m, nd->weight), *b = op_weights(m, nd->bias);
        switch (nd->kind) {
        case NODE_INPUT:
            ws->act[nd->out] = (float *)input;
            if (m->precision == PRECISION_FP32) break;
            be->copy(ws->input_lowp, input, sizeof(float) * model_tensor_numel(m, nd->out, n));
            ws->act[nd->out] = ws->input_lowp;
            break;
        case NODE_CONV: be->conv_forward(nd->conv, n, x, w, b, y); break;
        case NODE_BN: {
            BnShape s = bn_shape(m, xt, n);
            BnInfo *bi = &m->bns[nd->bn];
            float *stats = m->buf + bi->stat_offset;
            w = model_bn_gamma(m, nd), b = model_bn_beta(m, nd);
            if (train) {
                int size, groups = bn_groups(m, true, n, &size);
                size_t step = model_tensor_numel(m, nd->out, size); /* images are outermost in every layout */
                s.n = size;
                for (int g = 0; g < groups; g++) {
                    float *saved = bn_saved_of(ws, bi, g);
                    /* momentum 0 keeps running statistics bit for bit: (1 - 0) r + 0 s = r */
                    float momentum = m->bn_stats_frozen || g > 0 ? 0.0f : m->bn_momentum;
                    be->bn_forward_train(&s, xt->layout, nd->relu, x + g * step, w, b, y + g * step, saved,
                                         saved + bi->c, momentum, stats, stats + bi->c, m->bn_sync);
                }
                if (!m->bn_stats_frozen) bi->batches_tracked++;
            } else {
                be->bn_forward_eval(&s, xt->layout, nd->relu, x, w, b, stats, stats + bi->c, y);
            }
            break;
        }
        case NODE_RELU: be->relu_forward(model_tensor_numel(m, nd->out, n), x, y); break;
        case NODE_MAXPOOL: {
            PoolShape s = node_pool_shape(m, nd, n);
            be->maxpool_forward(&s, xt->layout, x, y);
            break;
        }
        case NODE_GAP: be->gap_forward(n, xt->c, xt->h * xt->w, xt->layout, x, y); break;
        case NODE_LINEAR: be->linear_forward(n, xt->c, yt->c, x, w, b, y); break;
        case NODE_ADD:
            be->add_forward(model_tensor_numel(m, nd->out, n), x, ws->act[nd->in[1]], y, nd->relu, m->precision);
            break;
        }
        round_output(m, nd, ws->act[nd->out], n);
        if (ws->copy16[nd->out]) be->to_lowp(m->precision, model_tensor_numel(m, nd->out, n), ws->act[nd->out],
                                            ws->copy16[nd->out]);
        if (nd->out == until) break;
    }
}

/* Where the gradient for input tensor t goes: its own buffer the first time, its second buffer after (the caller
 * then adds that in with finish_grad). NULL when t needs no gradient. */
static float *grad_target(Workspace *ws, int t) {
    if (t < 0 || !ws->m->tensors[t].needs_grad) return NULL;
    return ws->written[t] ? ws->grad_sum[t] : ws->grad[t];
}

/* A mixed-precision network rounds each gradient, then their sum. `rounded`: the op that wrote the new gradient
 * rounded it already (batch norm does; ReLU and addition pass on values of a gradient already rounded). */
static void finish_grad(Model *m, Workspace *ws, int t, int n, bool rounded) {
    if (t < 0 || !m->tensors[t].needs_grad) return;
    size_t count = model_tensor_numel(m, t, n);
    bool lowp = m->precision != PRECISION_FP32;
    if (ws->written[t]) { /* grad += grad_sum, rounded in the same pass */
        if (lowp && !rounded) m->be->round_lowp(m->precision, count, ws->grad_sum[t]);
        m->be->add_forward(count, ws->grad[t], ws->grad_sum[t], ws->grad[t], false, m->precision);
    } else if (lowp && !rounded) {
        m->be->round_lowp(m->precision, count, ws->grad[t]);
    }
    ws->written[t] = true;
}

/* The activation tensor t as backward must read it: if the plan dropped it after forward, widened from its 16-bit
 * copy or rebuilt from the tensors it was computed from (themselves kept or rebuilt), with the forward pass's
 * operations. */
static const float *backward_act(Model *m, Workspace *ws, int t) {
    if (!ws->act_bwd[t]) return ws->act[t];
    if (!ws->rebuilt[t] && ws->copy16[t]) {
        m->be->from_lowp(ws->precision, model_tensor_numel(m, t, ws->n), ws->copy16[t], ws->act_bwd[t]);
        ws->rebuilt[t] = true;
    } else if (!ws->rebuilt[t]) {
        int p = 0;
        while (m->nodes[p].out != t) p++;
        const Node *nd = &m->nodes[p];
        if (nd->kind == NODE_BN) {
            const TensorDesc *xt = &m->tensors[nd->in[0]];
            const BnInfo *bi = &m->bns[nd->bn];
            int size, groups = bn_groups(m, ws->train, ws->n, &size);
            size_t step = model_tensor_numel(m, t, size);
            BnShape s = bn_shape(m, xt, size);
            const float *x = backward_act(m, ws, nd->in[0]);
            for (int g = 0; g < groups; g++) {
                const float *saved = bn_saved_of(ws, bi, g);
                m->be->bn_apply(&s, xt->layout, nd->relu, x + g * step, model_bn_gamma(m, nd), model_bn_beta(m, nd),
                                saved, saved + bi->c, ws->act_bwd[t] + g * step);
            }
        } else {
            RSA_ASSERT(nd->kind == NODE_ADD);
            m->be->add_forward(model_tensor_numel(m, t, ws->n), backward_act(m, ws, nd->in[0]),
                               backward_act(m, ws, nd->in[1]), ws->act_bwd[t], nd->relu, m->precision);
        }
        round_output(m, nd, ws->act_bwd[t], ws->n);
        ws->rebuilt[t] = true;
    }
    return ws->act_bwd[t];
}

void model_backward(Model *m, Workspace *ws, int from, const float *dfrom) {
    RSA_ASSERT(ws->with_grad && ws->m == m);
    const Backend *be = m->be;
    const int n = ws->n;
    memset(ws->written, 0, sizeof(bool) * (size_t)m->n_tensors);
    memset(ws->rebuilt, 0, sizeof(bool) * (size_t)m->n_tensors);
    be->copy(ws->grad[from], dfrom, sizeof(float) * model_tensor_numel(m, from, n));
    if (m->precision != PRECISION_FP32) be->round_lowp(m->precision, model_tensor_numel(m, from, n), ws->grad[from]);
    ws->written[from] = true;
    int last = m->n_nodes - 1;
    while (last >= 0 && m->nodes[last].out != from) last--;
    RSA_ASSERT(last >= 0);
    for (int i = last; i >= 0; i--) {
        Node *nd = &m->nodes[i];
        if (nd->kind == NODE_INPUT || !ws->written[nd->out]) continue;
        const TensorDesc *xt = &m->tensors[nd->in[0]], *yt = &m->tensors[nd->out];
        const float *dy = ws->grad[nd->out];
        bool reads_x = nd->kind == NODE_CONV || nd->kind == NODE_BN || nd->kind == NODE_MAXPOOL ||
                       nd->kind == NODE_LINEAR;
        bool reads_y = nd->kind == NODE_RELU || ((nd->kind == NODE_BN || nd->kind == NODE_ADD) && nd->relu);
        const float *x = reads_x ? backward_act(m, ws, nd->in[0]) : NULL;
        const float *y = reads_y ? backward_act(m, ws, nd->out) : NULL;
        const float *w = op_weights(m, nd->weight);
        float *dw = nd->weight >= 0 ? m->g + m->params[nd->weight].offset : NULL;
        float *db = nd->bias >= 0 ? m->g + m->params[nd->bias].offset : NULL;
        float *sum_w = NULL, *sum_b = NULL; /* lowp_weight_grads: where this pass's dw and db are then added */
        if (rounds_weight_grads(m, nd)) {
            sum_w = dw, sum_b = db;
            be->zero(m->g_pass, sizeof(float) * layer_params(m, nd));
            dw = m->g_pass, db = db ? m->g_pass + m->params[nd->weight].numel : NULL;
        }
        float *dx = grad_target(ws, nd->in[0]);
        switch (nd->kind) {
        case NODE_INPUT: break;
        case NODE_CONV:
            be->conv_backward_weights(nd->conv, n, x, dy, dw, db);
            if (dx) be->conv_backward_data(nd->conv, n, dy, w, dx);
            break;
        case NODE_BN: {
            const BnInfo *bi = &m->bns[nd->bn];
            int size, groups = bn_groups(m, ws->train, n, &size);
            size_t step = model_tensor_numel(m, nd->out, size);
            BnShape s = bn_shape(m, xt, size);
            for (int g = 0; g < groups; g++) { /* dgamma and dbeta add up over the groups */
                const float *saved = bn_saved_of(ws, bi, g);
                be->bn_backward(&s, xt->layout, nd->relu, x + g * step, y ? y + g * step : NULL, dy + g * step,
                                model_bn_gamma(m, nd), model_bn_beta(m, nd), saved, saved + bi->c,
                                dx ? dx + g * step : NULL, dw, db, m->bn_sync);
            }
            break;
        }
        case NODE_RELU:
            if (dx) be->relu_backward(model_tensor_numel(m, nd->out, n), y, dy, dx);
            break;
        case NODE_MAXPOOL:
            if (dx) {
                PoolShape s = node_pool_shape(m, nd, n);
                be->maxpool_backward(&s, xt->layout, x, dy, dx);
            }
            break;
        case NODE_GAP:
            if (dx) be->gap_backward(n, xt->c, xt->h * xt->w, xt->layout, dy, dx);
            break;
        case NODE_LINEAR: be->linear_backward(n, xt->c, yt->c, x, w, dy, dx, dw, db); break;
        case NODE_ADD: {
            /* both inputs get the same gradient: mask it once, then copy it */
            size_t count = model_tensor_numel(m, nd->out, n);
            const float *g = dy;
            for (int k = 0; k < 2; k++) {
                dx = grad_target(ws, nd->in[k]);
                if (dx && nd->relu && g == dy)
                    be->relu_backward(count, y, dy, dx);
                else if (dx)
                    be->copy(dx, g, sizeof(float) * count);
                if (dx && !ws->written[nd->in[k]]) g = dx; /* dx is the tensor's own buffer, not its second */
                finish_grad(m, ws, nd->in[k], n, true);
            }
            continue;
        }
        }
        if (sum_w) {
            be->accumulate_lowp(m->precision, m->params[nd->weight].numel, sum_w, dw);
            if (sum_b) be->accumulate_lowp(m->precision, m->params[nd->bias].numel, sum_b, db);
        }
        finish_grad(m, ws, nd->in[0], n, nd->kind == NODE_BN || nd->kind == NODE_RELU);
    }
}

void workspace_read_nchw(const Workspace *ws, int t, float *host_out) {
    const Model *m = ws->m;
    const TensorDesc *d = &m->tensors[t];
    size_t count = model_tensor_numel(m, t, ws->n);
    float *tmp = malloc(sizeof(float) * count);
    if (!tmp) rsa_fatal("free memory", "out of memory");
    m->be->download(tmp, ws->act[t], sizeof(float) * count);
    layout_convert(tmp, d->layout, host_out, LAYOUT_NCHW, ws->n, d->c, d->h, d->w);
    free(tmp);
}
