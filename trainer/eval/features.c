#include "features.h"

#include "../core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* What a pass over a data set does: once it knows how many samples come (start: -1 stops the pass), and around
 * each batch's forward pass (k: the batch's index). Any may be NULL. */
typedef struct {
    int (*start)(void *ctx, int64_t samples);
    void (*before)(void *ctx, int k);
    void (*after)(void *ctx, const Workspace *ws, const Batch *b);
    void *ctx;
} BatchHooks;

/* Every batch of ds through the model up to tensor `until`; `purpose` names the pass in error messages. */
static int forward_batches(Model *m, int until, const Dataset *ds, const LoaderSpec *spec, int epoch, bool bn_train,
                           const BatchHooks *h, const char *purpose) {
    RSA_ASSERT(spec->batch <= m->max_batch);
    const Backend *be = m->be;
    LoaderSpec own = *spec;
    own.host_alloc = be->host_alloc, own.host_free = be->host_free; /* the batches are uploaded from */
    Loader *ld = loader_new(ds, &own);
    if (!ld) return rsa_error_context("loading %s for %s", dataset_name(ds), purpose);
    /* Evaluation reads fp32 features whatever the training precision, so its protocol does not change with it. */
    Precision trained = m->precision;
    if (model_set_precision(m, PRECISION_FP32) != 0) return -1;
    /* pretraining's BN statistics groups (model.h bn_group) are not the evaluation's: its BN, in training mode
     * too, sees each whole batch, as the official single-process evaluation does */
    const int bn_group = m->bn_group;
    m->bn_group = 0;
    Workspace *ws = workspace_new(m, false);
    size_t image = (size_t)spec->batch * 3 * spec->size * spec->size;
    float *dev = be->host_memory ? NULL : be->alloc(sizeof(float) * image);
    int rc = -1;
    if (!ws || (!be->host_memory && !dev)) goto done;
    if (h->start && h->start(h->ctx, loader_samples_per_epoch(ld)) != 0) goto done;
    if (loader_start(ld, epoch, 0) != 0) goto done;
    for (int k = 0;; k++) {
        Batch *b;
        if (loader_next(ld, &b) != 0) goto done;
        if (!b) break;
        const float *x = b->view[0];
        if (dev) {
            be->upload(dev, x, sizeof(float) * (size_t)b->n * 3 * spec->size * spec->size);
            x = dev;
        }
        if (h->before) h->before(h->ctx, k);
        model_forward(m, ws, b->n, x, bn_train, until);
        if (h->after) h->after(h->ctx, ws, b);
        loader_release(ld, b);
    }
    rc = 0;
done:
    if (dev) be->release(dev, sizeof(float) * image);
    workspace_free(ws);
    loader_free(ld);
    m->bn_group = bn_group;
    if (model_set_precision(m, trained) != 0) rc = -1;
    return rc;
}

typedef struct {
    const Model *m;
    int tensor;
    Features *out;
} Collect;

static int collect_start(void *ctx, int64_t samples) {
    Features *out = ((Collect *)ctx)->out;
    out->x = malloc(sizeof(float) * (size_t)(samples ? samples : 1) * out->dim);
    out->label = malloc(sizeof(int32_t) * (size_t)(samples ? samples : 1));
    return out->x && out->label ? 0 : rsa_fail("free memory", "out of memory for %lld features", (long long)samples);
}

static void collect(void *ctx, const Workspace *ws, const Batch *b) {
    Collect *c = ctx;
    Features *out = c->out;
    float *dst = out->x + (size_t)out->n * out->dim;
    c->m->be->download(dst, ws->act[c->tensor], sizeof(float) * (size_t)b->n * out->dim);
    memcpy(out->label + out->n, b->label, sizeof(int32_t) * (size_t)b->n);
    out->n += b->n;
}

static int features_here(Model *m, int feature_tensor, const Dataset *ds, const LoaderSpec *spec, int epoch,
                         bool bn_train, bool normalize, Features *out) {
    memset(out, 0, sizeof *out);
    out->dim = m->tensors[feature_tensor].c;
    Collect c = {m, feature_tensor, out};
    BatchHooks h = {collect_start, NULL, collect, &c};
    if (forward_batches(m, feature_tensor, ds, spec, epoch, bn_train, &h, "features") != 0) {
        features_free(out);
        return -1;
    }
    if (normalize) features_l2_normalise(out);
    return 0;
}

void features_l2_normalise(Features *f) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < f->n; r++) {
        float *v = f->x + (size_t)r * f->dim;
        double s = 0;
        for (int i = 0; i < f->dim; i++) s += (double)v[i] * v[i];
        double den = fmax(sqrt(s), 1e-12);
        for (int i = 0; i < f->dim; i++) v[i] = (float)(v[i] / den);
    }
}

/* Every rank's BN running statistics (and the constants beside them) become rank 0's. */
static void bn_statistics_from_rank0(Model *m, Dist *d) {
    if (m->n_buf == 0) return;
    float *mine = malloc(sizeof(float) * m->n_buf), *all = malloc(sizeof(float) * m->n_buf * (size_t)d->world);
    if (!mine || !all) rsa_fatal("free memory", "out of memory");
    m->be->download(mine, m->buf, sizeof(float) * m->n_buf);
    d->allgather_f32(d, mine, m->n_buf, all);
    m->be->upload(m->buf, all, sizeof(float) * m->n_buf); /* rank 0's part comes first */
    free(mine), free(all);
}

int features_compute(Model *m, int feature_tensor, const Dataset *ds, const LoaderSpec *spec, int epoch,
                     bool bn_train, bool normalize, Dist *d, Features *out) {
    if (!d || d->world == 1) return features_here(m, feature_tensor, ds, spec, epoch, bn_train, normalize, out);
    memset(out, 0, sizeof *out);
    out->dim = m->tensors[feature_tensor].c;
    if (bn_train)
        return d->rank == 0 ? features_here(m, feature_tensor, ds, spec, epoch, bn_train, normalize, out) : 0;
    bn_statistics_from_rank0(m, d);
    LoaderSpec mine = *spec;
    mine.rank = d->rank, mine.world = d->world, mine.shard_blocks = true, mine.drop_last = false;
    Features part;
    bool ok = features_here(m, feature_tensor, ds, &mine, epoch, false, normalize, &part) == 0;
    if (!dist_all_ok(d, ok)) {
        if (ok) features_free(&part);
        return -1;
    }
    int64_t n = (int64_t)dataset_count(ds);
    size_t row = sizeof(float) * (size_t)out->dim, *xb = NULL, *lb = NULL;
    if (d->rank == 0) {
        xb = malloc(sizeof(size_t) * (size_t)d->world), lb = malloc(sizeof(size_t) * (size_t)d->world);
        out->x = malloc(row * (size_t)(n ? n : 1)), out->label = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
        if (!xb || !lb || !out->x || !out->label)
            rsa_fatal("free memory", "out of memory for %lld features", (long long)n);
        for (int r = 0; r < d->world; r++) {
            int64_t rows = loader_block_start(n, r + 1, d->world) - loader_block_start(n, r, d->world);
            xb[r] = row * (size_t)rows, lb[r] = sizeof(int32_t) * (size_t)rows;
        }
    }
    d->gather_bytes(d, part.x, row * (size_t)part.n, out->x, xb);
    d->gather_bytes(d, part.label, sizeof(int32_t) * (size_t)part.n, out->label, lb);
    features_free(&part);
    free(xb), free(lb);
    if (d->rank == 0) /* what one process's loader drops: the last partial batch */
        out->n = spec->drop_last ? n / spec->batch * spec->batch : n;
    return 0;
}

void features_free(Features *f) {
    free(f->x);
    free(f->label);
    memset(f, 0, sizeof *f);
}

/* running = mean of the k+1 batch statistics so far */
static void cumulative_momentum(void *ctx, int k) { ((Model *)ctx)->bn_momentum = 1.0f / (float)(k + 1); }

int features_recalibrate_bn(Model *m, int feature_tensor, const Dataset *ds, const LoaderSpec *spec) {
    const float momentum = m->bn_momentum;
    BatchHooks h = {NULL, cumulative_momentum, NULL, m};
    int rc = forward_batches(m, feature_tensor, ds, spec, 0, true, &h, "the BN statistics");
    m->bn_momentum = momentum;
    return rc;
}
