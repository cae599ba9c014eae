#include "linear_head.h"

#include "../core/error.h"
#include "../core/rng.h"
#include "../ops/cpu/ops_cpu.h"
#include "../ops/ref/ops_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float *zeros(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) rsa_fatal("free memory", "out of memory for a linear head of %zu values", n);
    return p;
}

void linear_head_init(LinearHead *h, const TrainConfig *cfg, int dim, int classes) {
    memset(h, 0, sizeof *h);
    const int batch = cfg->linear_batch;
    h->dim = dim, h->classes = classes, h->batch = batch, h->meanshift = cfg->linear == LINEAR_MEANSHIFT;
    h->lr = cfg->linear_lr;
    memcpy(h->milestones, cfg->linear_milestones, sizeof h->milestones);
    size_t nw = (size_t)dim * classes;
    h->w = zeros(nw), h->mw = zeros(nw), h->dw = zeros(nw);
    h->b = zeros((size_t)classes), h->mb = zeros((size_t)classes), h->db = zeros((size_t)classes);
    h->logits = zeros((size_t)classes * batch), h->dlogits = zeros((size_t)classes * batch);
    Rng r;
    rng_init(&r, cfg->seed, RNG_EVAL_INIT, 0, 0, 0);
    if (h->meanshift) { /* kaiming_uniform_(a = sqrt(5)) and the bias's bound: both 1 / sqrt(fan_in) */
        double bound = 1.0 / sqrt((double)dim);
        for (size_t i = 0; i < nw; i++) h->w[i] = (float)rng_range(&r, -bound, bound);
        for (int c = 0; c < classes; c++) h->b[c] = (float)rng_range(&r, -bound, bound);
    } else {
        for (size_t i = 0; i < nw; i++) h->w[i] = (float)(0.01 * rng_normal(&r));
    }
}

void linear_head_free(LinearHead *h) {
    free(h->w), free(h->b), free(h->mw), free(h->mb), free(h->dw), free(h->db);
    free(h->mean), free(h->inv_std), free(h->logits), free(h->dlogits);
    memset(h, 0, sizeof *h);
}

void linear_head_standardise(LinearHead *h, const Features *f) {
    RSA_ASSERT(f->dim == h->dim && f->n > 1);
    const int dim = h->dim;
    double *s1 = calloc((size_t)dim, sizeof(double)), *s2 = calloc((size_t)dim, sizeof(double));
    free(h->mean), free(h->inv_std);
    h->mean = zeros((size_t)dim), h->inv_std = zeros((size_t)dim);
    if (!s1 || !s2) rsa_fatal("free memory", "out of memory for %d feature statistics", dim);
    /* each thread owns a block of features and reads the rows in order (row-major, for the cache: the sums of a
     * column over a million rows would otherwise touch a new page per row), so each sum's order is fixed */
    const int block = 64;
#pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < dim; c0 += block) {
        int c1 = c0 + block < dim ? c0 + block : dim;
        for (int64_t k = 0; k < f->n; k++) {
            const float *v = f->x + (size_t)k * dim;
            for (int i = c0; i < c1; i++) s1[i] += v[i];
        }
        for (int i = c0; i < c1; i++) s1[i] /= (double)f->n; /* now the mean */
        for (int64_t k = 0; k < f->n; k++) {
            const float *v = f->x + (size_t)k * dim;
            for (int i = c0; i < c1; i++) {
                double dev = v[i] - s1[i];
                s2[i] += dev * dev;
            }
        }
        for (int i = c0; i < c1; i++) {
            h->mean[i] = (float)s1[i];
            h->inv_std[i] = (float)(1.0 / sqrt(s2[i] / (double)(f->n - 1) + 1e-5));
        }
    }
    free(s1), free(s2);
}

void linear_head_transform(const LinearHead *h, float *x, int64_t n) {
    if (!h->meanshift) return;
    RSA_ASSERT(h->mean && h->inv_std);
    const int dim = h->dim;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r++) {
        float *v = x + (size_t)r * dim;
        double s = 0;
        for (int i = 0; i < dim; i++) s += (double)v[i] * v[i];
        double den = fmax(sqrt(s), 1e-12);
        for (int i = 0; i < dim; i++) v[i] = (float)((v[i] / den - h->mean[i]) * h->inv_std[i]);
    }
}

double linear_head_lr(const LinearHead *h, int epoch) {
    double lr = h->lr;
    for (int k = 0; k < 2; k++)
        if (h->milestones[k] > 0 && epoch >= h->milestones[k]) lr *= 0.1;
    return lr;
}

double linear_head_epoch(LinearHead *h, const Features *f, double lr) {
    RSA_ASSERT(f->dim == h->dim);
    const size_t nw = (size_t)h->dim * h->classes;
    const float wd = h->meanshift ? 1e-4f : 0.0f;
    const bool nesterov = !h->meanshift;
    double loss_sum = 0;
    int64_t batches = 0;
    for (int64_t r0 = 0; r0 < f->n; r0 += h->batch, batches++) {
        int nb = (int)(f->n - r0 < h->batch ? f->n - r0 : h->batch);
        const float *x = f->x + (size_t)r0 * h->dim;
        linear_cpu_forward(nb, h->dim, h->classes, x, h->w, h->b, h->logits);
        loss_sum += softmax_xent_cpu(nb, h->classes, h->logits, f->label + r0, h->dlogits);
        memset(h->dw, 0, sizeof(float) * nw);
        memset(h->db, 0, sizeof(float) * (size_t)h->classes);
        linear_cpu_backward(nb, h->dim, h->classes, x, h->w, h->dlogits, NULL, h->dw, h->db);
        sgd_update_cpu(nw, h->w, h->dw, h->mw, (float)lr, 0.9f, wd, nesterov);
        sgd_update_cpu((size_t)h->classes, h->b, h->db, h->mb, (float)lr, 0.9f, wd, nesterov);
    }
    return batches ? loss_sum / (double)batches : 0;
}

void linear_head_accuracy(const LinearHead *h, const Features *f, double *top1, double *top5) {
    const int rows = 256;
    float *logits = malloc(sizeof(float) * (size_t)h->classes * rows);
    if (!logits) rsa_fatal("free memory", "out of memory");
    int64_t c1 = 0, c5 = 0;
    for (int64_t r0 = 0; r0 < f->n; r0 += rows) {
        int nr = (int)(f->n - r0 < rows ? f->n - r0 : rows);
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
