#include "ops_ref.h"

#include <math.h>

static inline size_t at(const BnShape *s, int n, int c, int p) {
    return ((size_t)n * s->c + c) * s->hw + p;
}

void batchnorm_forward_train_ref(const BnShape *s, const float *x, const float *gamma, const float *beta, float *y,
                                 float *save_mean, float *save_invstd, float momentum, float *running_mean,
                                 float *running_var) {
    double count = (double)s->n * s->hw;
    for (int c = 0; c < s->c; c++) {
        double sum = 0, sq = 0;
        for (int n = 0; n < s->n; n++)
            for (int p = 0; p < s->hw; p++) sum += x[at(s, n, c, p)];
        double mean = sum / count;
        for (int n = 0; n < s->n; n++)
            for (int p = 0; p < s->hw; p++) {
                double d = x[at(s, n, c, p)] - mean;
                sq += d * d;
            }
        save_mean[c] = (float)mean;
        save_invstd[c] = (float)(1.0 / sqrt(sq / count + s->eps));
        if (running_mean) {
            double unbiased = count > 1 ? sq / (count - 1) : sq / count;
            running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + (double)momentum * mean);
            running_var[c] = (float)((1.0 - momentum) * running_var[c] + (double)momentum * unbiased);
        }
    }
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
                            const float *save_mean, const float *save_invstd, float *dx, float *dgamma, float *dbeta) {
    double count = (double)s->n * s->hw;
    for (int c = 0; c < s->c; c++) {
        double sum_dy = 0, sum_dy_xhat = 0, mean = save_mean[c], invstd = save_invstd[c];
        for (int n = 0; n < s->n; n++)
            for (int p = 0; p < s->hw; p++) {
                double g = dy[at(s, n, c, p)];
                sum_dy += g;
                sum_dy_xhat += g * (x[at(s, n, c, p)] - mean) * invstd;
            }
        if (dgamma) dgamma[c] += (float)sum_dy_xhat;
        if (dbeta) dbeta[c] += (float)sum_dy;
        if (!dx) continue;
        /* dx = gamma invstd (dy - mean(dy) - xhat mean(dy xhat)) */
        for (int n = 0; n < s->n; n++)
            for (int p = 0; p < s->hw; p++) {
                double xhat = (x[at(s, n, c, p)] - mean) * invstd;
                dx[at(s, n, c, p)] = (float)(gamma[c] * invstd *
                                             (dy[at(s, n, c, p)] - sum_dy / count - xhat * sum_dy_xhat / count));
            }
    }
}
