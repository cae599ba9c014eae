#include "learner.h"

#include "../core/error.h"
#include "../core/hash.h"
#include "../core/rng.h"
#include "../io/model_io.h"
#include "losses.h"
#include "schedule.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The online network: encoder_q, its head (encoder_q_head) and, for BYOL/RSA/SimSiam, the predictor (pred). */
static Model *build_online(Learner *l, int batch) {
    const TrainConfig *c = l->cfg;
    Model *m = model_new(l->be);
    m->bn_group = c->bn_group;
    model_set_prefix(m, "encoder_q.");
    int image = model_input(m, 3, c->image_size, c->image_size);
    l->feature = resnet_build(m, &c->backbone, image);
    model_set_prefix(m, "encoder_q_head.");
    int pred_hidden = c->pred_hidden ? c->pred_hidden : c->proj_hidden;
    switch (c->method) {
    case METHOD_RSA:
    case METHOD_BYOL:
        l->online_out = mlp_head_build(m, l->feature, c->proj_hidden, c->proj_out);
        model_set_prefix(m, "pred.");
        l->online_out = mlp_head_build(m, l->online_out, c->proj_hidden, c->proj_out);
        break;
    case METHOD_SIMCLR: l->online_out = mlp_head_build(m, l->feature, c->proj_hidden, c->proj_out); break;
    case METHOD_MOCOV2: l->online_out = mlp_head_moco(m, l->feature, c->proj_hidden, c->proj_out); break;
    case METHOD_SIMSIAM:
        l->online_proj = simsiam_projector(m, l->feature, c->proj_hidden, c->proj_out);
        model_set_prefix(m, "pred.");
        l->online_out = simsiam_predictor(m, l->online_proj, pred_hidden, c->proj_out);
        break;
    }
    if (model_finalize(m, batch, c->seed) != 0) {
        model_free(m);
        return NULL;
    }
    return m;
}

/* The target (BYOL/RSA, MoCo): encoder_k and encoder_k_head, the same shapes as the online's first parameters. */
static Model *build_target(Learner *l, int batch) {
    const TrainConfig *c = l->cfg;
    Model *m = model_new(l->be);
    m->bn_group = c->bn_group;
    model_set_prefix(m, "encoder_k.");
    int image = model_input(m, 3, c->image_size, c->image_size);
    int feature = resnet_build(m, &c->backbone, image);
    model_set_prefix(m, "encoder_k_head.");
    l->target_out = c->method == METHOD_MOCOV2 ? mlp_head_moco(m, feature, c->proj_hidden, c->proj_out)
                                               : mlp_head_build(m, feature, c->proj_hidden, c->proj_out);
    if (model_finalize(m, batch, c->seed) != 0) {
        model_free(m);
        return NULL;
    }
    return m;
}

/* The target's parameters are the online network's first ones, at the same offsets: EMA is one axpby. */
static void check_pairing(const Model *on, const Model *tg) {
    for (int i = 0; i < tg->n_params; i++) {
        const ParamInfo *a = &on->params[i], *b = &tg->params[i];
        bool same = a->offset == b->offset && a->numel == b->numel && strcmp(a->name + 10, b->name + 10) == 0;
        if (!same) rsa_fatal("this is a bug in rsa-repro", "online/target parameter %d differ: %s vs %s", i, a->name,
                             b->name);
    }
}

static bool has_target(MethodKind m) { return m == METHOD_RSA || m == METHOD_BYOL || m == METHOD_MOCOV2; }

/* MoCo's queue starts as random unit vectors (torch.randn, normalised per key). */
static void init_queue(Learner *l) {
    int d = l->out_dim;
    int64_t K = l->cfg->queue_size;
    l->queue = malloc(sizeof(float) * (size_t)K * d);
    if (!l->queue) rsa_fatal("free memory or reduce queue_size", "out of memory for a queue of %lld keys", (long long)K);
    Rng r;
    rng_init(&r, l->cfg->seed, RNG_INIT, 1, 0, 0);
    for (int64_t j = 0; j < K; j++) {
        float *v = l->queue + (size_t)j * d;
        double s = 0;
        for (int i = 0; i < d; i++) v[i] = (float)rng_normal(&r), s += (double)v[i] * v[i];
        for (int i = 0; i < d; i++) v[i] = (float)(v[i] / fmax(sqrt(s), 1e-12));
    }
}

Learner *learner_new(const TrainConfig *cfg, const Backend *be, int batch, int64_t total_steps) {
    Learner *l = calloc(1, sizeof *l);
    if (!l) rsa_fatal("free memory", "out of memory");
    l->cfg = cfg, l->be = be, l->total_steps = total_steps, l->out_dim = cfg->proj_out;
    l->dist = dist_single();
    loss_scaler_init(&l->scaler, cfg->precision == PRECISION_FP16);
    if (!(l->online = build_online(l, batch)) || model_set_precision(l->online, cfg->precision) != 0) goto fail;
    l->online->saved_16bit = cfg->saved_16bit;
    if (cfg->lowp_weight_grads && model_set_weight_grad_rounding(l->online, true) != 0) goto fail;
    /* The forward-only passes (the target's, low_memory's first look at pass 1) copy their outputs out as soon as
     * they end and never run at the same time: one block serves them all. */
    const Model *fwd_models[2];
    Workspace *fwd[2] = {NULL, NULL};
    int n_fwd = 0;
    if (has_target(cfg->method)) {
        if (!(l->target = build_target(l, batch)) || model_set_precision(l->target, cfg->precision) != 0) goto fail;
        check_pairing(l->online, l->target);
        be->copy(l->target->w, l->online->w, sizeof(float) * l->target->n_weights);
        model_weights_changed(l->target);
        fwd_models[n_fwd++] = l->target;
    }
    if (cfg->low_memory) fwd_models[n_fwd++] = l->online;
    if (n_fwd && workspaces_new_shared(fwd, fwd_models, n_fwd) != 0) goto fail;
    if (l->target) l->target_ws = fwd[0]; /* holds the block: learner_free frees it last */
    if (cfg->low_memory) l->ws_pass = fwd[n_fwd - 1];
    l->ws[0] = workspace_new(l->online, true);
    if (!cfg->low_memory) l->ws[1] = workspace_new(l->online, true);
    if (!l->ws[0] || (!l->ws[1] && !l->ws_pass)) goto fail;
    if (optimizer_init(&l->opt, l->online, cfg->optimizer, cfg->momentum, cfg->weight_decay, cfg->lars_trust,
                       cfg->decay_1d, false) != 0)
        goto fail;
    if (cfg->method == METHOD_MOCOV2) init_queue(l);
    size_t out = (size_t)batch * l->out_dim, image = (size_t)batch * 3 * cfg->image_size * cfg->image_size;
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

static void bn_allreduce(void *ctx, double *sums, int n) {
    Dist *d = ctx;
    d->allreduce_f64(d, sums, (size_t)n);
}

static void bn_allreduce_device(void *ctx, double *sums, int n) {
    Dist *d = ctx;
    d->allreduce_device_f64(d, sums, (size_t)n);
}

int learner_set_dist(Learner *l, Dist *d, bool sync_bn) {
    l->dist = d;
    if (d->world > 1 && (l->cfg->method == METHOD_SIMCLR || l->cfg->method == METHOD_MOCOV2)) {
        /* the whole batch's outputs (SimCLR: both views and their gradients; MoCo: the keys to enqueue) */
        size_t rows = (size_t)d->world * l->online->max_batch * l->out_dim;
        int bufs = l->cfg->method == METHOD_SIMCLR ? 5 : 2;
        for (int i = 0; i < bufs; i++)
            if (!(l->gathered[i] = malloc(sizeof(float) * rows)))
                rsa_fatal("free memory or use a smaller batch", "out of memory for the gathered batch");
    }
    bool on_device = !l->be->host_memory && d->allreduce_device_f64;
    l->bn_sync = (BnSync){bn_allreduce, d, d->world, on_device ? bn_allreduce_device : NULL};
    const BnSync *sync = sync_bn && d->world > 1 ? &l->bn_sync : NULL;
    l->online->bn_sync = sync;
    if (l->target) l->target->bn_sync = sync;
    if (d->world > 1 && !l->be->host_memory && !d->allreduce_device_f32 && !l->host_grads) {
        l->host_grads = malloc(sizeof(float) * l->online->n_weights);
        if (!l->host_grads) rsa_fatal("free memory", "out of memory");
    }
    return 0;
}

/* Averages the online gradients over the processes (every rank then takes the same optimiser step). */
static void average_gradients(Learner *l) {
    Dist *d = l->dist;
    Model *m = l->online;
    if (d->world == 1) return;
    if (l->be->host_memory) {
        d->allreduce_f32(d, m->g, m->n_weights);
    } else if (d->allreduce_device_f32) {
        d->allreduce_device_f32(d, m->g, m->n_weights);
    } else {
        l->be->download(l->host_grads, m->g, sizeof(float) * m->n_weights);
        d->allreduce_f32(d, l->host_grads, m->n_weights);
        l->be->upload(m->g, l->host_grads, sizeof(float) * m->n_weights);
    }
    l->be->axpby(m->n_weights, 1.0f / (float)d->world, m->g, 0.0f, m->g);
}

/* The bits of n floats in backend memory, not their values (a -0 or a NaN payload counts). */
static uint64_t hash_backend(const Learner *l, uint64_t h, const float *p, size_t n, float *host) {
    if (l->be->host_memory) return fnv1a64(h, p, sizeof(float) * n);
    l->be->download(host, p, sizeof(float) * n);
    return fnv1a64(h, host, sizeof(float) * n);
}

int learner_check_ranks_agree(Learner *l) {
    Dist *d = l->dist;
    if (d->world == 1) return 0;
    Model *m = l->online;
    float *host = l->be->host_memory ? NULL : malloc(sizeof(float) * m->n_weights);
    if (!l->be->host_memory && !host) rsa_fatal("free memory", "out of memory");
    uint64_t h = FNV1A64_START;
    h = hash_backend(l, h, m->w, m->n_weights, host);
    h = hash_backend(l, h, l->opt.momentum_buf, m->n_weights, host);
    if (l->target) h = hash_backend(l, h, l->target->w, l->target->n_weights, host);
    free(host);
    if (l->queue) h = fnv1a64(h, l->queue, sizeof(float) * (size_t)l->cfg->queue_size * l->out_dim);
    int64_t counters[3] = {l->step, l->scaler.skipped, l->scaler.good_steps};
    h = fnv1a64(h, counters, sizeof counters);
    h = fnv1a64(h, &l->scaler.scale, sizeof l->scaler.scale);
    int differs = dist_first_disagreeing(d, &h, 1, NULL, NULL);
    if (differs < 0) return 0;
    return rsa_fail("run every rank from the same binary and data; report it if they were",
                    "data-parallel processes out of step after step %lld: rank %d's weights or optimiser state "
                    "differ from rank 0's (each rank must apply the same averaged gradients)",
                    (long long)l->step, differs);
}

void learner_free(Learner *l) {
    if (!l) return;
    free(l->host_grads);
    for (int i = 0; i < 5; i++) free(l->gathered[i]);
    size_t batch = l->online ? (size_t)l->online->max_batch : 0;
    size_t out = batch * l->out_dim, image = batch * 3 * l->cfg->image_size * l->cfg->image_size;
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
    workspace_free(l->ws_pass);
    workspace_free(l->target_ws);
    model_free(l->online);
    model_free(l->target);
    free(l->queue);
    free(l);
}

int learner_load_init(Learner *l, const char *path) {
    StFile f;
    if (st_open(&f, path) != 0) return -1;
    int rc;
    if (st_find(&f, "encoder_q.conv1.weight")) {
        /* official names: the encoder must be there; heads too when the file has them */
        rc = model_state_load(l->online, &f, "encoder_q.", "encoder_q.", true);
        char head[64];
        snprintf(head, sizeof head, "encoder_q_head.%s", l->cfg->method == METHOD_MOCOV2 ? "2.weight" : "0.weight");
        if (rc == 0 && st_find(&f, head)) rc = model_state_load(l->online, &f, "encoder_q_head.", "encoder_q_head.", true);
        if (rc == 0 && st_find(&f, "pred.0.weight")) rc = model_state_load(l->online, &f, "pred.", "pred.", true);
    } else {
        rc = model_state_load(l->online, &f, "encoder_q.", "", true); /* torchvision's names */
    }
    st_close(&f);
    if (rc != 0) return rsa_error_context("starting from %s", path);
    if (l->target) {
        l->be->copy(l->target->w, l->online->w, sizeof(float) * l->target->n_weights);
        model_weights_changed(l->target);
    }
    return 0;
}

/* ---- the step ---- */

/* A step's views start uploading together before its work is queued: on cuda they copy on a stream of their own,
 * one after another in the order the step's passes read them (RSA reads its mild views 2 and 3 first), while the
 * passes before their first use compute, so only the first view's copy holds the GPU up. The host views stay valid
 * long enough: each is waited for before a pass whose output is downloaded within the step. */
static void upload_views(Learner *l, float *const *views, int n) {
    if (l->be->host_memory) return;
    size_t bytes = sizeof(float) * (size_t)n * 3 * l->cfg->image_size * l->cfg->image_size;
    static const int rsa_order[4] = {2, 3, 0, 1}, pair_order[2] = {0, 1};
    bool rsa = l->cfg->method == METHOD_RSA;
    const int *order = rsa ? rsa_order : pair_order;
    for (int i = 0; i < (rsa ? 4 : 2); i++) {
        int v = order[i];
        l->be->upload_async(v, l->dev_views[v], views[v], bytes);
    }
}

static const float *device_view(Learner *l, float *host, int v) {
    if (l->be->host_memory) return host;
    l->be->wait_upload(v);
    return l->dev_views[v];
}

/* Online forward of x, pass 0 or 1 of the step; the loss input (and SimSiam's z into z_host) to the host. With
 * low_memory pass 1 keeps only its outputs (ws_pass): learner_step runs it again before its backward. */
static void online_forward(Learner *l, int pass, const float *x, int n, float *host, float *z_host) {
    Workspace *ws = pass == 1 && l->ws_pass ? l->ws_pass : l->ws[pass];
    model_forward(l->online, ws, n, x, true, l->online_out);
    size_t bytes = sizeof(float) * n * l->out_dim;
    l->be->download(host, ws->act[l->online_out], bytes);
    if (z_host) l->be->download(z_host, ws->act[l->online_proj], bytes);
    l->pass_input[pass] = x;
}

static void target_forward(Learner *l, const float *x, int n, float *host) {
    model_forward(l->target, l->target_ws, n, x, true, l->target_out);
    l->be->download(host, l->target_ws->act[l->target_out], sizeof(float) * n * l->out_dim);
}

/* MoCo: the normalised keys replace the oldest ones (the official _dequeue_and_enqueue, as a ring). */
static void enqueue(Learner *l, const float *k, int n) {
    int d = l->out_dim;
    double *kn = malloc(sizeof(double) * (size_t)n * d), *norm = malloc(sizeof(double) * (size_t)n);
    if (!kn || !norm) rsa_fatal("free memory", "out of memory");
    rows_normalize(n, d, k, kn, norm);
    for (int r = 0; r < n; r++) {
        float *slot = l->queue + (size_t)l->queue_next * d;
        for (int i = 0; i < d; i++) slot[i] = (float)kn[(size_t)r * d + i];
        l->queue_next = (l->queue_next + 1) % l->cfg->queue_size;
    }
    free(kn), free(norm);
}

/* Data parallel: every rank's n rows of x (n x out_dim), in the order of the single-process batch. The loader
 * deals the epoch's order to ranks in turn, so rank r's row i is row i W + r of the global batch. */
static void gather_rows(Learner *l, const float *x, int n, float *out) {
    Dist *d = l->dist;
    int W = d->world, dim = l->out_dim;
    float *by_rank = l->cfg->method == METHOD_SIMCLR ? l->gathered[4] : l->gathered[1];
    d->allgather_f32(d, x, (size_t)n * dim, by_rank);
    for (int r = 0; r < W; r++)
        for (int i = 0; i < n; i++)
            memcpy(out + ((size_t)i * W + r) * dim, by_rank + ((size_t)r * n + i) * dim, sizeof(float) * dim);
}

/* Data parallel needs the same n on every rank (the all-gathers exchange n rows each). */
static int check_same_batch(Learner *l, int n) {
    double total = n;
    l->dist->allreduce_f64(l->dist, &total, 1);
    if (total != (double)n * l->dist->world)
        return rsa_fail("drop the last partial batch (training loaders do) so every rank steps with the same batch",
                        "rank %d has %d samples in this step, the ranks %g together", l->dist->rank, n, total);
    return 0;
}

/* SimCLR over W processes: NT-Xent of the whole batch (every other sample of every rank is a negative), computed
 * identically on every rank; each backpropagates its own rows' gradient, times W because the gradients are then
 * averaged over the ranks. */
static void simclr_global(Learner *l, int n, const float *z1, const float *z2, float *dz1, float *dz2, LossTerms *t) {
    int W = l->dist->world, r = l->dist->rank, dim = l->out_dim, N = n * W;
    float *Z1 = l->gathered[0], *Z2 = l->gathered[1], *dZ1 = l->gathered[2], *dZ2 = l->gathered[3];
    gather_rows(l, z1, n, Z1);
    gather_rows(l, z2, n, Z2);
    loss_ntxent(N, dim, l->cfg->temperature, Z1, Z2, dZ1, dZ2, t);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < dim; k++) {
            size_t g = ((size_t)i * W + r) * dim + k, o = (size_t)i * dim + k;
            dz1[o] = (float)W * dZ1[g], dz2[o] = (float)W * dZ2[g];
        }
}

int learner_step(Learner *l, float *const *views, int n, double lr, StepMetrics *out) {
    const TrainConfig *c = l->cfg;
    const Backend *be = l->be;
    memset(out, 0, sizeof *out);
    bool gathers = l->dist->world > 1 && (c->method == METHOD_SIMCLR || c->method == METHOD_MOCOV2);
    if (gathers && check_same_batch(l, n) != 0) return -1;
    upload_views(l, views, n);
    int64_t k = ++l->step, K = l->total_steps;
    out->lr = lr;
    if (l->target) {
        /* EMA before the forward passes, as the official update_target() at the start of forward() */
        out->tau = schedule_tau(c, k, K);
        be->axpby(l->target->n_weights, (float)(1.0 - out->tau), l->online->w, (float)out->tau, l->target->w);
        model_weights_changed(l->target);
    }
    float *o1 = l->host_out[0], *o2 = l->host_out[1], *o3 = l->host_out[2], *o4 = l->host_out[3];
    float *g1 = l->host_grad[0], *g2 = l->host_grad[1];
    int passes = 2; /* online passes to backpropagate */
    LossTerms t;
    switch (c->method) {
    case METHOD_RSA:
        out->beta = schedule_beta(c, k, K);
        online_forward(l, 0, device_view(l, views[2], 2), n, o1, NULL);
        online_forward(l, 1, device_view(l, views[3], 3), n, o2, NULL);
        target_forward(l, device_view(l, views[0], 0), n, o3);
        target_forward(l, device_view(l, views[1], 1), n, o4);
        loss_byol_rsa(n, l->out_dim, out->beta, o1, o2, o3, o4, g1, g2, &t);
        break;
    case METHOD_BYOL: {
        online_forward(l, 0, device_view(l, views[0], 0), n, o1, NULL);
        target_forward(l, device_view(l, views[1], 1), n, o4);
        online_forward(l, 1, device_view(l, views[1], 1), n, o2, NULL);
        target_forward(l, device_view(l, views[0], 0), n, o3);
        loss_byol_rsa(n, l->out_dim, 0.0, o1, o2, o3, o4, g1, g2, &t);
        break;
    }
    case METHOD_SIMCLR:
        online_forward(l, 0, device_view(l, views[0], 0), n, o1, NULL);
        online_forward(l, 1, device_view(l, views[1], 1), n, o2, NULL);
        if (gathers) simclr_global(l, n, o1, o2, g1, g2, &t);
        else loss_ntxent(n, l->out_dim, c->temperature, o1, o2, g1, g2, &t);
        break;
    case METHOD_MOCOV2:
        online_forward(l, 0, device_view(l, views[0], 0), n, o1, NULL);
        target_forward(l, device_view(l, views[1], 1), n, o3);
        loss_infonce(n, l->out_dim, c->temperature, o1, o3, l->queue, c->queue_size, g1, &t);
        passes = 1;
        break;
    case METHOD_SIMSIAM:
        online_forward(l, 0, device_view(l, views[0], 0), n, o1, o3);
        online_forward(l, 1, device_view(l, views[1], 1), n, o2, o4);
        loss_simsiam(n, l->out_dim, o1, o2, o3, o4, g1, g2, &t);
        break;
    }
    if (l->dist->world > 1) { /* the logged loss is the global batch's */
        double terms[3] = {t.loss, t.loss_w, t.loss_a};
        l->dist->allreduce_f64(l->dist, terms, 3);
        t.loss = terms[0] / l->dist->world, t.loss_w = terms[1] / l->dist->world, t.loss_a = terms[2] / l->dist->world;
    }
    out->loss = t.loss, out->loss_w = t.loss_w, out->loss_a = t.loss_a;
    if (!isfinite(out->loss))
        return rsa_fail("lower the learning rate, or resume from the last checkpoint with another seed",
                        "the loss is %g at step %lld", out->loss, (long long)k);
    model_zero_grad(l->online);
    out->loss_scale = loss_scaler_factor(&l->scaler);
    for (int s = 0; s < passes; s++) { /* both uploads first: an upload from host memory waits for queued work */
        if (l->scaler.on) /* a power of two: exact */
            for (size_t i = 0; i < (size_t)n * l->out_dim; i++) l->host_grad[s][i] *= (float)out->loss_scale;
        be->upload(l->dev_grad[s], l->host_grad[s], sizeof(float) * n * l->out_dim);
    }
    for (int s = 0; s < passes; s++) {
        Workspace *ws = l->ws[s];
        if (s == 1 && l->ws_pass) { /* pass 1 again, now keeping its activations, where pass 0's were */
            l->online->bn_stats_frozen = true;
            model_forward(l->online, l->ws[0], n, l->pass_input[1], true, l->online_out);
            l->online->bn_stats_frozen = false;
            ws = l->ws[0];
        }
        model_backward(l->online, ws, l->online_out, l->dev_grad[s]);
    }
    average_gradients(l);
    out->skipped = !loss_scaler_unscale(&l->scaler, be, l->online->g, l->online->n_weights);
    if (!out->skipped) optimizer_step(&l->opt, lr);
    if (c->method == METHOD_MOCOV2 && gathers) { /* every rank's keys, in batch order: the queues stay equal */
        gather_rows(l, o3, n, l->gathered[0]);
        enqueue(l, l->gathered[0], n * l->dist->world);
    } else if (c->method == METHOD_MOCOV2) {
        enqueue(l, o3, n);
    }
    return 0;
}
