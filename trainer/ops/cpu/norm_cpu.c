/* Batch norm (+ fused ReLU) on the CPU backend's layouts. Each channel group is reduced by one thread in a fixed
 * order (float partial sums per image, double across images), so results do not depend on the thread count. */
#include "ops_cpu.h"

#include "blocked.h"

#include <math.h>

/* The 16-lane kernels are compiled for AVX-512, AVX2 and the baseline and picked at run time. Each lane does the
 * same IEEE operations in the same order in every version (no FMA contraction in ISO C mode), so all three give the
 * same bits; only the vector width differs. */
#define CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

/* y = (x - mean) (gamma invstd) + beta from the saved float statistics, so that a recomputation in backward is bit
 * for bit the forward's output. (Folding the mean into a shift, x scale + (beta - mean scale), would cancel
 * catastrophically when |mean| >> std.) */
static inline __attribute__((always_inline)) void bn_apply_group(const BnShape *s, int L, int g, bool relu,
                                                                 const float *x, const float *gamma,
                                                                 const float *beta, const float *mean,
                                                                 const float *invstd, float *y) {
    const int G = s->c / L, hw = s->hw;
    float meanf[16], scale[16], shift[16];
    for (int l = 0; l < L; l++) {
        int c = g * L + l;
        meanf[l] = mean[c], scale[l] = gamma[c] * invstd[c], shift[l] = beta[c];
    }
    for (int n = 0; n < s->n; n++) {
        const float *xp = x + ((size_t)n * G + g) * hw * L;
        float *yp = y + ((size_t)n * G + g) * hw * L;
        for (int p = 0; p < hw; p++)
            for (int l = 0; l < L; l++) {
                float v = (xp[(size_t)p * L + l] - meanf[l]) * scale[l] + shift[l];
                yp[(size_t)p * L + l] = relu && v < 0 ? 0.0f : v;
            }
    }
}

static inline __attribute__((always_inline)) void bn_train_group(const BnShape *s, int L, int g, bool relu,
                                                                 const float *x, const float *gamma,
                                                                 const float *beta, float *y, float *save_mean,
                                                                 float *save_invstd, float momentum, float *rm,
                                                                 float *rv) {
    const int G = s->c / L, hw = s->hw;
    const double count = (double)s->n * hw;
    double sum[16] = {0}, sq[16] = {0}, mean[16];
    for (int n = 0; n < s->n; n++) {
        const float *xp = x + ((size_t)n * G + g) * hw * L;
        float part[16] = {0};
        for (int p = 0; p < hw; p++)
            for (int l = 0; l < L; l++) part[l] += xp[(size_t)p * L + l];
        for (int l = 0; l < L; l++) sum[l] += part[l];
    }
    float meanf[16];
    for (int l = 0; l < L; l++) mean[l] = sum[l] / count, meanf[l] = (float)mean[l];
    for (int n = 0; n < s->n; n++) {
        const float *xp = x + ((size_t)n * G + g) * hw * L;
        float part[16] = {0};
        for (int p = 0; p < hw; p++)
            for (int l = 0; l < L; l++) {
                float d = xp[(size_t)p * L + l] - meanf[l];
                part[l] += d * d;
            }
        for (int l = 0; l < L; l++) sq[l] += part[l];
    }
    for (int l = 0; l < L; l++) {
        int c = g * L + l;
        save_mean[c] = meanf[l];
        save_invstd[c] = (float)(1.0 / sqrt(sq[l] / count + s->eps));
        if (rm) {
            double unbiased = count > 1 ? sq[l] / (count - 1) : sq[l] / count;
            rm[c] = (float)((1.0 - momentum) * rm[c] + (double)momentum * mean[l]);
            rv[c] = (float)((1.0 - momentum) * rv[c] + (double)momentum * unbiased);
        }
    }
    bn_apply_group(s, L, g, relu, x, gamma, beta, save_mean, save_invstd, y);
}

CPU_CLONES static void bn_train_group16(const BnShape *s, int g, bool relu, const float *x, const float *gamma,
                                        const float *beta, float *y, float *save_mean, float *save_invstd,
                                        float momentum, float *rm, float *rv) {
    bn_train_group(s, 16, g, relu, x, gamma, beta, y, save_mean, save_invstd, momentum, rm, rv);
}

void bn_cpu_forward_train(const BnShape *s, Layout layout, bool relu, const float *x, const float *gamma,
                          const float *beta, float *y, float *save_mean, float *save_invstd, float momentum, float *rm,
                          float *rv) {
    int L = blocked_lanes(layout, s->c, s->hw), G = s->c / L;
    if (L == 16) {
#pragma omp parallel for schedule(static)
        for (int g = 0; g < G; g++)
            bn_train_group16(s, g, relu, x, gamma, beta, y, save_mean, save_invstd, momentum, rm, rv);
    } else {
#pragma omp parallel for schedule(static)
        for (int g = 0; g < G; g++)
            bn_train_group(s, 1, g, relu, x, gamma, beta, y, save_mean, save_invstd, momentum, rm, rv);
    }
}

CPU_CLONES static void bn_apply_group16(const BnShape *s, int g, bool relu, const float *x, const float *gamma,
                                        const float *beta, const float *mean, const float *invstd, float *y) {
    bn_apply_group(s, 16, g, relu, x, gamma, beta, mean, invstd, y);
}

void bn_cpu_apply(const BnShape *s, Layout layout, bool relu, const float *x, const float *gamma, const float *beta,
                  const float *mean, const float *invstd, float *y) {
    int L = blocked_lanes(layout, s->c, s->hw), G = s->c / L;
    if (L == 16) {
#pragma omp parallel for schedule(static)
        for (int g = 0; g < G; g++) bn_apply_group16(s, g, relu, x, gamma, beta, mean, invstd, y);
    } else {
#pragma omp parallel for schedule(static)
        for (int g = 0; g < G; g++) bn_apply_group(s, 1, g, relu, x, gamma, beta, mean, invstd, y);
    }
}

void bn_cpu_forward_eval(const BnShape *s, Layout layout, bool relu, const float *x, const float *gamma,
                         const float *beta, const float *rm, const float *rv, float *y) {
    int L = blocked_lanes(layout, s->c, s->hw), G = s->c / L, hw = s->hw;
#pragma omp parallel for schedule(static)
    for (int ng = 0; ng < s->n * G; ng++) {
        int g = ng % G;
        const float *xp = x + (size_t)ng * hw * L;
        float *yp = y + (size_t)ng * hw * L;
        for (int l = 0; l < L; l++) {
            int c = g * L + l;
            double invstd = 1.0 / sqrt((double)rv[c] + s->eps);
            float scale = (float)(gamma[c] * invstd);
            for (int p = 0; p < hw; p++) {
                float v = (xp[(size_t)p * L + l] - rm[c]) * scale + beta[c];
                yp[(size_t)p * L + l] = relu && v < 0 ? 0.0f : v;
            }
        }
    }
}

/* The ReLU mask is recomputed from x exactly as bn_apply_group computed y (y > 0 iff v > 0), so y is never read:
 * two passes over x and dy instead of over x, y and dy. */
static inline __attribute__((always_inline)) void bn_backward_group(const BnShape *s, int L, int g, bool relu,
                                                                    const float *x, const float *dy,
                                                                    const float *gamma, const float *beta,
                                                                    const float *save_mean,
                                                                    const float *save_invstd, float *dx,
                                                                    float *dgamma, float *dbeta) {
    const int G = s->c / L, hw = s->hw;
    const double count = (double)s->n * hw;
    double sum_dy[16] = {0}, sum_dyx[16] = {0};
    float meanf[16], scale[16], shift[16];
    for (int l = 0; l < L; l++) {
        int c = g * L + l;
        meanf[l] = save_mean[c], scale[l] = gamma[c] * save_invstd[c], shift[l] = beta[c];
    }
    for (int n = 0; n < s->n; n++) {
        size_t base = ((size_t)n * G + g) * hw * L;
        float pd[16] = {0}, pdx[16] = {0};
        for (int p = 0; p < hw; p++)
            for (int l = 0; l < L; l++) {
                size_t i = base + (size_t)p * L + l;
                float xc = x[i] - meanf[l];
                float d = relu && !(xc * scale[l] + shift[l] > 0) ? 0.0f : dy[i];
                pd[l] += d;
                pdx[l] += d * xc;
            }
        for (int l = 0; l < L; l++) sum_dy[l] += pd[l], sum_dyx[l] += pdx[l];
    }
    float a[16], k[16], c0[16];
    for (int l = 0; l < L; l++) {
        int c = g * L + l;
        double invstd = save_invstd[c];
        if (dgamma) dgamma[c] += (float)(sum_dyx[l] * invstd);
        if (dbeta) dbeta[c] += (float)sum_dy[l];
        /* dx = gamma invstd (dy - mean(dy)) - (x - mean) gamma invstd^3 mean(dy (x - mean)) */
        double ad = gamma[c] * invstd, kd = ad * invstd * invstd * sum_dyx[l] / count;
        a[l] = (float)ad;
        k[l] = (float)kd;
        c0[l] = (float)(-ad * sum_dy[l] / count);
    }
    if (!dx) return;
    for (int n = 0; n < s->n; n++) {
        size_t base = ((size_t)n * G + g) * hw * L;
        for (int p = 0; p < hw; p++)
            for (int l = 0; l < L; l++) {
                size_t i = base + (size_t)p * L + l;
                float xc = x[i] - meanf[l];
                float d = relu && !(xc * scale[l] + shift[l] > 0) ? 0.0f : dy[i];
                dx[i] = a[l] * d - k[l] * xc + c0[l];
            }
    }
}

CPU_CLONES static void bn_backward_group16(const BnShape *s, int g, bool relu, const float *x, const float *dy,
                                           const float *gamma, const float *beta, const float *save_mean,
                                           const float *save_invstd, float *dx, float *dgamma, float *dbeta) {
    bn_backward_group(s, 16, g, relu, x, dy, gamma, beta, save_mean, save_invstd, dx, dgamma, dbeta);
}

void bn_cpu_backward(const BnShape *s, Layout layout, bool relu, const float *x, const float *y, const float *dy,
                     const float *gamma, const float *beta, const float *save_mean, const float *save_invstd,
                     float *dx, float *dgamma, float *dbeta) {
    (void)y; /* the mask comes from x */
    int L = blocked_lanes(layout, s->c, s->hw), G = s->c / L;
    if (L == 16) {
#pragma omp parallel for schedule(static)
        for (int g = 0; g < G; g++)
            bn_backward_group16(s, g, relu, x, dy, gamma, beta, save_mean, save_invstd, dx, dgamma, dbeta);
    } else {
#pragma omp parallel for schedule(static)
        for (int g = 0; g < G; g++)
            bn_backward_group(s, 1, g, relu, x, dy, gamma, beta, save_mean, save_invstd, dx, dgamma, dbeta);
    }
}
