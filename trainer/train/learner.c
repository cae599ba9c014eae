#include "learner.h"

#include "../core/error.h"
#include "schedule.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Online: encoder_q, encoder_q_head, pred. Target: encoder_k, encoder_k_head. */
static Model *build_net(const TrainConfig *cfg, const Backend *be, int batch, bool online, int *feature, int *out) {
    Model *m = model_new(be);
    int size = cfg->image_size;
    model_set_prefix(m, online ? "encoder_q." : "encoder_k.");
    int image = model_input(m, 3, size, size);
    *feature = resnet_build(m, &cfg->backbone, image);
    model_set_prefix(m, online ? "encoder_q_head." : "encoder_k_head.");
    int z = mlp_head_build(m, *feature, cfg->proj_hidden, cfg->proj_out);
    if (online) {
        model_set_prefix(m, "pred.");
        z = mlp_head_build(m, z, cfg->proj_hidden, cfg->proj_out);
    }
    *out = z;
    if (model_finalize(m, batch, cfg->seed) != 0) {
        model_free(m);
        return NULL;
    }
    return m;
}

/* The target's parameters are the online network's first ones, at the same offsets: EMA is one axpby. */
static int check_pairing(const Model *on, const Model *tg) {
    for (int i = 0; i < tg->n_params; i++) {
        const ParamInfo *a = &on->params[i], *b = &tg->params[i];
        bool same = a->offset == b->offset && a->numel == b->numel && strcmp(a->name + 10, b->name + 10) == 0;
        if (!same) rsa_fatal("this is a bug in rsa-repro", "online/target parameter %d differ: %s vs %s", i, a->name,
                             b->name);
    }
    return 0;
}

Learner *learner_new(const TrainConfig *cfg, const Backend *be, int batch, int64_t total_steps) {
    if (cfg->method != METHOD_RSA && cfg->method != METHOD_BYOL)
        return rsa_fail("methods rsa and byol are implemented so far", "method %s is not implemented yet",
                        method_name(cfg->method)),
               NULL;
    Learner *l = calloc(1, sizeof *l);
    if (!l) rsa_fatal("free memory", "out of memory");
    l->cfg = cfg, l->be = be, l->total_steps = total_steps;
    int tfeat;
    l->online = build_net(cfg, be, batch, true, &l->feature, &l->online_out);
    l->target = l->online ? build_net(cfg, be, batch, false, &tfeat, &l->target_out) : NULL;
    if (!l->online || !l->target) goto fail;
    check_pairing(l->online, l->target);
    be->copy(l->target->w, l->online->w, sizeof(float) * l->target->n_weights);
    model_weights_changed(l->target);
    l->ws[0] = workspace_new(l->online, true);
    l->ws[1] = workspace_new(l->online, true);
    l->target_ws = workspace_new(l->target, false);
    if (!l->ws[0] || !l->ws[1] || !l->target_ws) goto fail;
    if (optimizer_init(&l->opt, l->online, cfg->optimizer, cfg->momentum, cfg->weight_decay, cfg->lars_trust,
                       cfg->decay_1d, false) != 0)
        goto fail;
    size_t out = (size_t)batch * cfg->proj_out, image = (size_t)batch * 3 * cfg->image_size * cfg->image_size;
    for (int v = 0; v < 4; v++) {
        l->host_out[v] = calloc(out, sizeof(float));
        if (!l->host_out[v]) rsa_fatal("free memory", "out of memory");
        if (!be->host_memory && !(l->dev_views[v] = be->alloc(image * sizeof(float)))) goto fail;
    }
    for (int v = 0; v < 2; v++) {
        l->host_grad[v] = calloc(out, sizeof(float));
        l->dev_grad[v] = be->alloc(out * sizeof(float));
        if (!l->host_grad[v] || !l->dev_grad[v]) goto fail;
    }
    return l;
fail:
    rsa_error_context("building the %s networks", method_name(cfg->method));
    learner_free(l);
    return NULL;
}

void learner_free(Learner *l) {
    if (!l) return;
    size_t out = (size_t)(l->online ? l->online->max_batch : 0) * l->cfg->proj_out;
    size_t image = (size_t)(l->online ? l->online->max_batch : 0) * 3 * l->cfg->image_size * l->cfg->image_size;
    for (int v = 0; v < 4; v++) {
        free(l->host_out[v]);
        if (l->dev_views[v]) l->be->release(l->dev_views[v], image * sizeof(float));
    }
    for (int v = 0; v < 2; v++) {
        free(l->host_grad[v]);
        if (l->dev_grad[v]) l->be->release(l->dev_grad[v], out * sizeof(float));
    }
    if (l->opt.m) optimizer_free(&l->opt);
    workspace_free(l->ws[0]);
    workspace_free(l->ws[1]);
    workspace_free(l->target_ws);
    model_free(l->online);
    model_free(l->target);
    free(l);
}

/* ---- the loss, on the host ---- */

/* Normalises the rows of q (n x d) into p (double) and keeps the norms. */
static void normalize_rows(int n, int d, const float *q, double *p, double *norm) {
    for (int r = 0; r < n; r++) {
        double s = 0;
        for (int i = 0; i < d; i++) s += (double)q[(size_t)r * d + i] * q[(size_t)r * d + i];
        norm[r] = sqrt(s);
        double den = norm[r] > 1e-12 ? norm[r] : 1e-12; /* torch.nn.functional.normalize's eps */
        for (int i = 0; i < d; i++) p[(size_t)r * d + i] = q[(size_t)r * d + i] / den;
    }
}

static double dot(int d, const double *a, const double *b) {
    double s = 0;
    for (int i = 0; i < d; i++) s += a[i] * b[i];
    return s;
}

/* Gradient through normalize: dq = (dp - p <dp, p>) / |q| (dp / eps below the eps). */
static void normalize_backward(int n, int d, const double *p, const double *norm, const double *dp, float *dq) {
    for (int r = 0; r < n; r++) {
        const double *pr = p + (size_t)r * d, *g = dp + (size_t)r * d;
        if (norm[r] <= 1e-12) {
            for (int i = 0; i < d; i++) dq[(size_t)r * d + i] = (float)(g[i] / 1e-12);
            continue;
        }
        double gp = dot(d, g, pr);
        for (int i = 0; i < d; i++) dq[(size_t)r * d + i] = (float)((g[i] - pr[i] * gp) / norm[r]);
    }
}

/* The BYOL/RSA loss of two online predictions q1, q2 and two target projections t1, t2 (t_i made from the view
 * paired with q_i's partner: q1 pairs with t2): per row
 *   beta d(p1, sg p2) + (1 - beta) d(p1, z2) + beta d(p2, sg p1) + (1 - beta) d(p2, z1),
 * BYOL being beta = 0. Writes dL/dq1, dL/dq2. */
static void byol_rsa_loss(int n, int d, double beta, const float *q1, const float *q2, const float *t1,
                          const float *t2, float *dq1, float *dq2, StepMetrics *out) {
    size_t nd = (size_t)n * d;
    double *p1 = malloc(sizeof(double) * nd), *p2 = malloc(sizeof(double) * nd), *z1 = malloc(sizeof(double) * nd);
    double *z2 = malloc(sizeof(double) * nd), *g = calloc(nd, sizeof(double));
    double *n1 = malloc(sizeof(double) * n), *n2 = malloc(sizeof(double) * n), *nz = malloc(sizeof(double) * n);
    if (!p1 || !p2 || !z1 || !z2 || !g || !n1 || !n2 || !nz) rsa_fatal("free memory", "out of memory");
    normalize_rows(n, d, q1, p1, n1);
    normalize_rows(n, d, q2, p2, n2);
    normalize_rows(n, d, t1, z1, nz);
    normalize_rows(n, d, t2, z2, nz);
    double loss = 0, loss_w = 0, loss_a = 0;
    for (int r = 0; r < n; r++) {
        size_t o = (size_t)r * d;
        double a12 = 2 - 2 * dot(d, p1 + o, p2 + o), w12 = 2 - 2 * dot(d, p1 + o, z2 + o);
        double w21 = 2 - 2 * dot(d, p2 + o, z1 + o);
        loss += beta * a12 + (1 - beta) * w12 + beta * a12 + (1 - beta) * w21;
        loss_w += w12 + w21;
        loss_a += 2 * a12;
    }
    out->loss = loss / n, out->loss_w = loss_w / n, out->loss_a = loss_a / n;
    /* dL/dp1 = -2/n (beta p2 + (1 - beta) z2): p2 is detached in p1's terms (and p1 in p2's) */
    for (size_t i = 0; i < nd; i++) g[i] = -2.0 / n * (beta * p2[i] + (1 - beta) * z2[i]);
    normalize_backward(n, d, p1, n1, g, dq1);
    for (size_t i = 0; i < nd; i++) g[i] = -2.0 / n * (beta * p1[i] + (1 - beta) * z1[i]);
    normalize_backward(n, d, p2, n2, g, dq2);
    free(p1), free(p2), free(z1), free(z2), free(g), free(n1), free(n2), free(nz);
}

/* ---- the step ---- */

static const float *device_view(Learner *l, float *host, int v, int n) {
    if (l->be->host_memory) return host;
    size_t bytes = sizeof(float) * (size_t)n * 3 * l->cfg->image_size * l->cfg->image_size;
    l->be->upload(l->dev_views[v], host, bytes);
    return l->dev_views[v];
}

static void online_forward(Learner *l, int slot, const float *x, int n, float *host) {
    model_forward(l->online, l->ws[slot], n, x, true, l->online_out);
    l->be->download(host, l->ws[slot]->act[l->online_out], sizeof(float) * n * l->cfg->proj_out);
}

static void target_forward(Learner *l, const float *x, int n, float *host) {
    model_forward(l->target, l->target_ws, n, x, true, l->target_out);
    l->be->download(host, l->target_ws->act[l->target_out], sizeof(float) * n * l->cfg->proj_out);
}

int learner_step(Learner *l, float *const *views, int n, double lr, StepMetrics *out) {
    const TrainConfig *c = l->cfg;
    const Backend *be = l->be;
    memset(out, 0, sizeof *out);
    int64_t k = ++l->step, K = l->total_steps;
    out->tau = schedule_tau(c, k, K);
    out->lr = lr;
    /* EMA before the forward passes, as the official update_target() at the start of forward() */
    be->axpby(l->target->n_weights, (float)(1.0 - out->tau), l->online->w, (float)out->tau, l->target->w);
    model_weights_changed(l->target);
    float *q1 = l->host_out[0], *q2 = l->host_out[1], *t1 = l->host_out[2], *t2 = l->host_out[3];
    if (c->method == METHOD_RSA) {
        out->beta = schedule_beta(c, k, K);
        online_forward(l, 0, device_view(l, views[2], 2, n), n, q1);
        online_forward(l, 1, device_view(l, views[3], 3, n), n, q2);
        target_forward(l, device_view(l, views[0], 0, n), n, t1);
        target_forward(l, device_view(l, views[1], 1, n), n, t2);
    } else {
        const float *v1 = device_view(l, views[0], 0, n), *v2 = device_view(l, views[1], 1, n);
        online_forward(l, 0, v1, n, q1);
        target_forward(l, v2, n, t2);
        online_forward(l, 1, v2, n, q2);
        target_forward(l, v1, n, t1);
    }
    byol_rsa_loss(n, c->proj_out, out->beta, q1, q2, t1, t2, l->host_grad[0], l->host_grad[1], out);
    if (!isfinite(out->loss))
        return rsa_fail("lower the learning rate, or resume from the last checkpoint with another seed",
                        "the loss is %g at step %lld", out->loss, (long long)k);
    model_zero_grad(l->online);
    for (int s = 0; s < 2; s++) {
        be->upload(l->dev_grad[s], l->host_grad[s], sizeof(float) * n * c->proj_out);
        model_backward(l->online, l->ws[s], l->online_out, l->dev_grad[s]);
    }
    optimizer_step(&l->opt, lr);
    return 0;
}
