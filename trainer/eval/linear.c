#include "linear.h"

#include "../core/error.h"
#include "../core/rng.h"
#include "../ops/cpu/ops_cpu.h"
#include "../ops/ref/ops_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int dim, classes;
    float *w, *b, *mw, *mb, *dw, *db; /* head, momentum buffers, gradients (host) */
    float *mean, *inv_std;            /* MEANSHIFT standardisation, NULL otherwise */
} Head;

static LoaderSpec eval_spec(const TrainConfig *cfg, ViewMode mode) {
    LoaderSpec s;
    loader_spec_default(cfg->dataset, mode, cfg->seed, &s);
    s.size = cfg->image_size;
    s.batch = cfg->linear_batch;
    s.eval = true;
    s.threads = cfg->loader_threads;
    s.drop_last = mode == VIEWS_EVAL_TRAIN; /* the official train loader drops the last batch, the test one not */
    return s;
}

/* L2-normalise and standardise (MEANSHIFT), in place. */
static void transform(const Head *h, const TrainConfig *cfg, float *x, int64_t n) {
    if (cfg->linear != LINEAR_MEANSHIFT) return;
    for (int64_t r = 0; r < n; r++) {
        float *v = x + (size_t)r * h->dim;
        double s = 0;
        for (int i = 0; i < h->dim; i++) s += (double)v[i] * v[i];
        double den = fmax(sqrt(s), 1e-12);
        for (int i = 0; i < h->dim; i++) v[i] = (float)((v[i] / den - h->mean[i]) * h->inv_std[i]);
    }
}

static void accuracy(const Head *h, const Features *f, double *top1, double *top5) {
    float *logits = malloc(sizeof(float) * (size_t)h->classes * 256);
    if (!logits) rsa_fatal("free memory", "out of memory");
    int64_t c1 = 0, c5 = 0;
    for (int64_t r0 = 0; r0 < f->n; r0 += 256) {
        int nr = (int)(f->n - r0 < 256 ? f->n - r0 : 256);
        linear_cpu_forward(nr, h->dim, h->classes, f->x + (size_t)r0 * h->dim, h->w, h->b, logits);
        for (int r = 0; r < nr; r++) {
            const float *z = logits + (size_t)r * h->classes;
            int32_t y = f->label[r0 + r];
            int above = 0; /* classes ranked before the true one (ties: lower index first, as a stable sort) */
            for (int c = 0; c < h->classes; c++) above += z[c] > z[y] || (z[c] == z[y] && c < y);
            c1 += above < 1, c5 += above < 5;
        }
    }
    free(logits);
    *top1 = f->n ? 100.0 * (double)c1 / (double)f->n : 0;
    *top5 = f->n ? 100.0 * (double)c5 / (double)f->n : 0;
}

static void head_free(Head *h) {
    free(h->w), free(h->b), free(h->mw), free(h->mb), free(h->dw), free(h->db), free(h->mean), free(h->inv_std);
}

int linear_eval(Model *m, int feature_tensor, const TrainConfig *cfg, const Dataset *train, const Dataset *test,
                bool test_every_epoch, Dist *d, const LinearHooks *hooks, LinearResult *out) {
    memset(out, 0, sizeof *out);
    const bool lead = !d || d->rank == 0; /* fits the head; the other ranks only help with the features */
    Head h = {0};
    h.dim = m->tensors[feature_tensor].c, h.classes = dataset_num_classes(train);
    size_t nw = (size_t)h.dim * h.classes;
    h.w = calloc(nw, sizeof(float)), h.mw = calloc(nw, sizeof(float)), h.dw = calloc(nw, sizeof(float));
    h.b = calloc((size_t)h.classes, sizeof(float)), h.mb = calloc((size_t)h.classes, sizeof(float));
    h.db = calloc((size_t)h.classes, sizeof(float));
    if (!h.w || !h.mw || !h.dw || !h.b || !h.mb || !h.db) rsa_fatal("free memory", "out of memory");
    Rng r;
    rng_init(&r, cfg->seed, RNG_EVAL_INIT, 0, 0, 0);
    for (size_t i = 0; i < nw; i++) h.w[i] = (float)(0.01 * rng_normal(&r));
    bool meanshift = cfg->linear == LINEAR_MEANSHIFT;
    double lr0 = cfg->linear_lr, wd = meanshift ? 1e-4 : 0;
    bool nesterov = !meanshift;
    LoaderSpec train_spec = eval_spec(cfg, VIEWS_EVAL_TRAIN), test_spec = eval_spec(cfg, VIEWS_EVAL_TEST);
    Features test_f = {0}, stat_f = {0};
    bool have_test = false; /* the same on every rank: the feature passes are collectives */
    int rc = -1;
    if (meanshift) { /* statistics of the normalised training features under the test transform */
        LoaderSpec s = eval_spec(cfg, VIEWS_EVAL_TEST);
        if (features_compute(m, feature_tensor, train, &s, 0, false, true, d, &stat_f) != 0) goto done;
        h.mean = calloc((size_t)h.dim, sizeof(float)), h.inv_std = calloc((size_t)h.dim, sizeof(float));
        for (int i = 0; lead && i < h.dim; i++) {
            double s1 = 0, s2 = 0;
            for (int64_t k = 0; k < stat_f.n; k++) s1 += stat_f.x[(size_t)k * h.dim + i];
            double mu = s1 / (double)stat_f.n;
            for (int64_t k = 0; k < stat_f.n; k++) {
                double dev = stat_f.x[(size_t)k * h.dim + i] - mu;
                s2 += dev * dev;
            }
            h.mean[i] = (float)mu;
            h.inv_std[i] = (float)(1.0 / sqrt(s2 / (double)stat_f.n + 1e-12));
        }
        features_free(&stat_f);
    }
    float *dlogits = malloc(sizeof(float) * (size_t)h.classes * cfg->linear_batch);
    float *logits = malloc(sizeof(float) * (size_t)h.classes * cfg->linear_batch);
    if (!dlogits || !logits) rsa_fatal("free memory", "out of memory");
    out->best_top1 = -1;
    for (int epoch = 0; epoch < cfg->linear_epochs; epoch++) {
        double lr = lr0;
        for (int k = 0; k < 2; k++)
            if (cfg->linear_milestones[k] > 0 && epoch >= cfg->linear_milestones[k]) lr *= 0.1;
        /* the random crops change every epoch, so the training features are recomputed */
        Features f;
        if (features_compute(m, feature_tensor, train, &train_spec, epoch, cfg->linear_bn_train, false, d, &f) != 0) {
            free(dlogits), free(logits);
            goto done;
        }
        transform(&h, cfg, f.x, f.n);
        double loss_sum = 0;
        int64_t batches = 0;
        for (int64_t r0 = 0; r0 + train_spec.batch <= f.n; r0 += train_spec.batch, batches++) {
            int nb = train_spec.batch;
            const float *x = f.x + (size_t)r0 * h.dim;
            linear_cpu_forward(nb, h.dim, h.classes, x, h.w, h.b, logits);
            loss_sum += softmax_xent_ref(nb, h.classes, logits, f.label + r0, dlogits);
            memset(h.dw, 0, sizeof(float) * nw);
            memset(h.db, 0, sizeof(float) * (size_t)h.classes);
            linear_cpu_backward(nb, h.dim, h.classes, x, h.w, dlogits, NULL, h.dw, h.db);
            sgd_update_ref(nw, h.w, h.dw, h.mw, (float)lr, 0.9f, (float)wd, nesterov);
            sgd_update_ref((size_t)h.classes, h.b, h.db, h.mb, (float)lr, 0.9f, (float)wd, nesterov);
        }
        features_free(&f);
        out->final_loss = batches ? loss_sum / (double)batches : 0;
        bool last = epoch == cfg->linear_epochs - 1;
        double top1 = -1, top5;
        if (test_every_epoch || last) {
            /* with the encoder's BN frozen the test features never change: compute them once */
            if (!have_test || cfg->linear_bn_train) {
                features_free(&test_f);
                if (features_compute(m, feature_tensor, test, &test_spec, 0, false, false, d, &test_f) != 0) {
                    free(dlogits), free(logits);
                    goto done;
                }
                transform(&h, cfg, test_f.x, test_f.n);
                have_test = true;
            }
            if (lead) {
                accuracy(&h, &test_f, &top1, &top5);
                if (top1 > out->best_top1) out->best_top1 = top1, out->best_epoch = epoch + 1;
                if (last) out->top1 = top1, out->top5 = top5;
            }
        }
        if (lead && hooks && hooks->epoch_done) hooks->epoch_done(hooks->ctx, epoch + 1, out->final_loss, top1);
    }
    out->epochs = cfg->linear_epochs;
    free(dlogits), free(logits);
    rc = 0;
done:
    features_free(&test_f);
    head_free(&h);
    return rc;
}
