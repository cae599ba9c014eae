#include "ops_ref.h"

#include "../../core/error.h"

#include <math.h>
#include <stdlib.h>

static inline size_t at(const BnShape *s, int n, int c, int p) {
    return ((size_t)n * s->c + c) * s->hw + p;
}

void batchnorm_forward_train_ref(const BnShape *s, const float *x, const float *gamma, const float *beta, float *y,
                                 float *save_mean, float *save_invstd, float momentum, float *running_mean,
                                 float *running_var, const BnSync *sync) {
    double count = (double)s->n * s->hw * (sync ? sync->world : 1);
    double *acc = malloc(sizeof(double) * 2 * (size_t)s->c), *mean = acc + s->c;
    if (!acc) rsa_fatal("free memory", "out of memory");
    for (int c = 0; c < s->c; c++) {
        acc[c] = 0;
        for (int n = 0; n < s->n; n++)
            for (int p = 0; p < s->hw; p++) acc[c] += x[at(s, n, c, p)];
    }
    if (sync) sync->allreduce(sync->ctx, acc, s->c);
    for (int c = 0; c < s->c; c++) {
        mean[c] = acc[c] / count;
        acc[c] = 0;
        for (int n = 0; n < s->n; n++)
            for (int p = 0; p < s->hw; p++) {
                double d = x[at(s, n, c, p)] - mean[c];
                acc[c] += d * d;
            }
    }
    if (sync) sync->allreduce(sync->ctx, acc, s->c);
    for (int c = 0; c < s->c; c++) {
        save_mean[c] = (float)mean[c];
        save_invstd[c] = (float)(1.0 / sqrt(acc[c] / count + s->eps));
        if (running_mean) {
            double unbiased = count > 1 ? acc[c] / (count - 1) : acc[c] / count;
            running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + (double)momentum * mean[c]);
            running_var[c] = (float)((1.0 - momentum) * running_var[c] + (double)momentum * unbiased);
        }
    }
    free(acc);
    batchnorm_apply_ref(s, x, gamma, beta, save_mean, save_invstd, y);
}

void batchnorm_apply_ref(const BnShape *s, const float *x, const float *gamma, const float *beta, const float *mean,
                         const float *invstd, float *y) {
    for (int c = 0; c < s->c; c++)
        for (int n = 0; n < s->n; n++)
            for (int p = 0; p < s->hw; p++)
                y[at(s, n, c, p)] = (float)(((double)x[at(s, n, c, p)] - mean[c]) * invstd[c] * gamma[c] + beta[c]);
}

void batchnorm_forward_eval_ref(const BnShape *s, const float *x, const float *gamma, const float *beta,
                                const float *running_mean, const float *running_var, float *y) {
    for (int c = 0; c < s->c; c++) {
        double invstd = 1.0 / sqrt((double)running_var[c] + s->eps);
        for (int n = 0; n < s->n; n++)
            for (int p = 0; p < s->hw; p++)
                y[at(s, n, c, p)] = (float)((x[at(s, n, c, p)] - running_mean[c]) * invstd * gamma[c] + beta[c]);
    }
}

void batchnorm_backward_ref(const BnShape *s, const float *x, const float *dy, const float *gamma,
                            const float *save_mean, const float *save_invstd, float *dx, float *dgamma, float *dbeta,
                            const BnSync *sync) {
    double count = (double)s->n * s->hw * (sync ? sync->world : 1);
    double *acc = calloc(2 * (size_t)s->c, sizeof(double)); /* sum(dy), sum(dy xhat) */
    if (!acc) rsa_fatal("free memory", "out of memory");
    for (int c = 0; c < s->c; c++) {
        double mean = save_mean[c], invstd = save_invstd[c];
        for (int n = 0; n < s->n; n++)
            for (int p = 0; p < s->hw; p++) {
                double g = dy[at(s, n, c, p)];
                acc[c] += g;
                acc[s->c + c] += g * (x[at(s, n, c, p)] - mean) * invstd;
            }
        if (dgamma) dgamma[c] += (float)acc[s->c + c];
        if (dbeta) dbeta[c] += (float)acc[c];
    }
    if (dx && sync) sync->allreduce(sync->ctx, acc, 2 * s->c);
    for (int c = 0; c < s->c && dx; c++) {
        double mean = save_mean[c], invstd = save_invstd[c], sum_dy = acc[c], sum_dy_xhat = acc[s->c + c];
        /* dx = gamma invstd (dy - mean(dy) - xhat mean(dy xhat)) */
        for (int n = 0; n < s->n; n++)
            for (int p = 0; p < s->hw; p++) {
                double xhat = (x[at(s, n, c, p)] - mean) * invstd;
                dx[at(s, n, c, p)] = (float)(gamma[c] * invstd *
                                             (dy[at(s, n, c, p)] - sum_dy / count - xhat * sum_dy_xhat / count));
            }
    }
    free(acc);
}
