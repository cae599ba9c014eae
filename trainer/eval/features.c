#include "features.h"

#include "../core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int features_compute(Model *m, int feature_tensor, const Dataset *ds, const LoaderSpec *spec, int epoch,
                     bool bn_train, bool normalize, Features *out) {
    memset(out, 0, sizeof *out);
    RSA_ASSERT(spec->batch <= m->max_batch);
    const Backend *be = m->be;
    Loader *ld = loader_new(ds, spec);
    if (!ld) return rsa_error_context("loading %s for features", dataset_name(ds));
    Workspace *ws = workspace_new(m, false);
    int64_t cap = loader_samples_per_epoch(ld);
    out->dim = m->tensors[feature_tensor].c;
    out->x = malloc(sizeof(float) * (size_t)(cap ? cap : 1) * out->dim);
    out->label = malloc(sizeof(int32_t) * (size_t)(cap ? cap : 1));
    size_t image = (size_t)spec->batch * 3 * spec->size * spec->size;
    float *dev = be->host_memory ? NULL : be->alloc(sizeof(float) * image);
    int rc = -1;
    if (!ws || !out->x || !out->label || (!be->host_memory && !dev)) goto done;
    if (loader_start(ld, epoch, 0) != 0) goto done;
    for (;;) {
        Batch *b;
        if (loader_next(ld, &b) != 0) goto done;
        if (!b) break;
        const float *x = b->view[0];
        if (dev) {
            be->upload(dev, x, sizeof(float) * (size_t)b->n * 3 * spec->size * spec->size);
            x = dev;
        }
        model_forward(m, ws, b->n, x, bn_train, feature_tensor);
        float *dst = out->x + (size_t)out->n * out->dim;
        be->download(dst, ws->act[feature_tensor], sizeof(float) * (size_t)b->n * out->dim);
        memcpy(out->label + out->n, b->label, sizeof(int32_t) * (size_t)b->n);
        out->n += b->n;
        loader_release(ld, b);
    }
    if (normalize)
        for (int64_t r = 0; r < out->n; r++) {
            float *v = out->x + (size_t)r * out->dim;
            double s = 0;
            for (int i = 0; i < out->dim; i++) s += (double)v[i] * v[i];
            double den = fmax(sqrt(s), 1e-12);
            for (int i = 0; i < out->dim; i++) v[i] = (float)(v[i] / den);
        }
    rc = 0;
done:
    if (dev) be->release(dev, sizeof(float) * image);
    workspace_free(ws);
    loader_free(ld);
    if (rc) features_free(out);
    return rc;
}

void features_free(Features *f) {
    free(f->x);
    free(f->label);
    memset(f, 0, sizeof *f);
}

int features_recalibrate_bn(Model *m, int feature_tensor, const Dataset *ds, const LoaderSpec *spec) {
    RSA_ASSERT(spec->batch <= m->max_batch);
    const Backend *be = m->be;
    Loader *ld = loader_new(ds, spec);
    if (!ld) return rsa_error_context("loading %s for the BN statistics", dataset_name(ds));
    Workspace *ws = workspace_new(m, false);
    size_t image = (size_t)spec->batch * 3 * spec->size * spec->size;
    float *dev = be->host_memory ? NULL : be->alloc(sizeof(float) * image);
    const float momentum = m->bn_momentum;
    int rc = -1;
    if (!ws || (!be->host_memory && !dev)) goto done;
    if (loader_start(ld, 0, 0) != 0) goto done;
    for (int k = 0;; k++) {
        Batch *b;
        if (loader_next(ld, &b) != 0) goto done;
        if (!b) break;
        const float *x = b->view[0];
        if (dev) {
            be->upload(dev, x, sizeof(float) * (size_t)b->n * 3 * spec->size * spec->size);
            x = dev;
        }
        m->bn_momentum = 1.0f / (float)(k + 1); /* running = mean of the k+1 batch statistics so far */
        model_forward(m, ws, b->n, x, true, feature_tensor);
        loader_release(ld, b);
    }
    rc = 0;
done:
    m->bn_momentum = momentum;
    if (dev) be->release(dev, sizeof(float) * image);
    workspace_free(ws);
    loader_free(ld);
    return rc;
}
