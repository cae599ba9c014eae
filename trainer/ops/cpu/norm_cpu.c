/* Batch norm (+ fused ReLU) on the CPU backend's layouts. Each channel group is reduced by one thread in a fixed
 * order (float partial sums per image, double across images), so results do not depend on the thread count.
 * The passes are separate parallel loops so that a data-parallel run can sum the per-channel statistics over its
 * processes between them (SyncBN); one process does the same arithmetic without that step. */
#include "ops_cpu.h"

#include "blocked.h"

#include <math.h>
#include <stdlib.h>

/* The 16-lane kernels are compiled for AVX-512, AVX2 and the baseline and picked at run time. Each lane does the
 * same IEEE operations in the same order in every version (no FMA contraction in ISO C mode), so all three give the
 * same bits; only the vector width differs. */
#define CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

/* Per-channel scratch of one call (a few KiB), kept across calls so a step allocates nothing. */
static _Thread_local double *scratch;
static _Thread_local size_t scratch_len;

static double *channel_scratch(size_t n) {
    if (n > scratch_len) {
        free(scratch);
        scratch = malloc(sizeof(double) * n);
        if (!scratch) rsa_fatal("free memory", "out of memory");
        scratch_len = n;
    }
    return scratch;
}

#define GROUP(ptr, n, g) ((ptr) + ((size_t)(n) * G + (g)) * hw * L)

/* sum[c] over the batch of x (mode 0), of (x - mean)^2 (mode 1). */
static inline __attribute__((always_inline)) void sums_group(const BnShape *s, int L, int g, int mode,
                                                             const float *x, const float *meanf, double *out) {
    const int G = s->c / L, hw = s->hw;
    double acc[16] = {0};
    for (int n = 0; n < s->n; n++) {
        const float *xp = GROUP(x, n, g);
        float part[16] = {0};
        if (mode == 0) {
            for (int p = 0; p < hw; p++)
#pragma omp simd
                for (int l = 0; l < L; l++) part[l] += xp[(size_t)p * L + l];
        } else {
            for (int p = 0; p < hw; p++)
#pragma omp simd
                for (int l = 0; l < L; l++) {
                    float d = xp[(size_t)p * L + l] - meanf[g * L + l];
                    part[l] += d * d;
                }
        }
        for (int l = 0; l < L; l++) acc[l] += part[l];
    }
    for (int l = 0; l < L; l++) out[g * L + l] = acc[l];
}

/* y = (x - mean) (gamma invstd) + beta from the saved float statistics, so that a recomputation in backward is bit
 * for bit the forward's output. (Folding the mean into a shift, x scale + (beta - mean scale), would cancel
 * catastrophically when |mean| >> std.) */
static inline __attribute__((always_inline)) void apply_group(const BnShape *s, int L, int g, bool relu,
                                                              const float *x, const float *gamma, const float *beta,
                                                              const float *mean, const float *invstd, float *y) {
    const int G = s->c / L, hw = s->hw;
    float meanf[16], scale[16], shift[16];
    for (int l = 0; l < L; l++) {
        int c = g * L + l;
        meanf[l] = mean[c], scale[l] = gamma[c] * invstd[c], shift[l] = beta[c];
    }
    for (int n = 0; n < s->n; n++) {
        const float *xp = GROUP(x, n, g);
        float *yp = GROUP(y, n, g);
        for (int p = 0; p < hw; p++)
#pragma omp simd
            for (int l = 0; l < L; l++) {
                float v = (xp[(size_t)p * L + l] - meanf[l]) * scale[l] + shift[l];
                yp[(size_t)p * L + l] = relu && v < 0 ? 0.0f : v;
            }
    }
}

/* sum(dy') and sum(dy' (x - mean)) per channel, dy' the gradient behind the ReLU. Its mask is recomputed from x
 * exactly as apply_group computed y (y > 0 iff v > 0), so y is never read. */
static inline __attribute__((always_inline)) void grad_sums_group(const BnShape *s, int L, int g, bool relu,
                                                                  const float *x, const float *dy, const float *gamma,
                                                                  const float *beta, const float *mean,
                                                                  const float *invstd, double *out) {
    const int G = s->c / L, hw = s->hw;
    double sum_dy[16] = {0}, sum_dyx[16] = {0};
    float meanf[16], scale[16], shift[16];
    for (int l = 0; l < L; l++) {
        int c = g * L + l;
        meanf[l] = mean[c], scale[l] = gamma[c] * invstd[c], shift[l] = beta[c];
    }
    for (int n = 0; n < s->n; n++) {
        const float *xp = GROUP(x, n, g), *dyp = GROUP(dy, n, g);
        float pd[16] = {0}, pdx[16] = {0};
        for (int p = 0; p < hw; p++)
#pragma omp simd
            for (int l = 0; l < L; l++) {
                size_t i = (size_t)p * L + l;
                float xc = xp[i] - meanf[l];
                float d = relu && !(xc * scale[l] + shift[l] > 0) ? 0.0f : dyp[i];
                pd[l] += d;
                pdx[l] += d * xc;
            }
        for (int l = 0; l < L; l++) sum_dy[l] += pd[l], sum_dyx[l] += pdx[l];
    }
    for (int l = 0; l < L; l++) out[g * L + l] = sum_dy[l], out[s->c + g * L + l] = sum_dyx[l];
}

/* dx = a dy' - k (x - mean) + c0 with the per-channel coefficients of bn_cpu_backward. */
static inline __attribute__((always_inline)) void dx_group(const BnShape *s, int L, int g, bool relu, const float *x,
                                                           const float *dy, const float *gamma, const float *beta,
                                                           const float *mean, const float *invstd, const float *coef,
                                                           float *dx) {
    const int G = s->c / L, hw = s->hw;
    float meanf[16], scale[16], shift[16], a[16], k[16], c0[16];
    for (int l = 0; l < L; l++) {
        int c = g * L + l;
        meanf[l] = mean[c], scale[l] = gamma[c] * invstd[c], shift[l] = beta[c];
        a[l] = coef[c], k[l] = coef[s->c + c], c0[l] = coef[2 * s->c + c];
    }
    for (int n = 0; n < s->n; n++) {
        const float *xp = GROUP(x, n, g), *dyp = GROUP(dy, n, g);
        float *dxp = GROUP(dx, n, g);
        for (int p = 0; p < hw; p++)
#pragma omp simd
            for (int l = 0; l < L; l++) {
                size_t i = (size_t)p * L + l;
                float xc = xp[i] - meanf[l];
                float d = relu && !(xc * scale[l] + shift[l] > 0) ? 0.0f : dyp[i];
                dxp[i] = a[l] * d - k[l] * xc + c0[l];
            }
    }
}

/* The 16-lane phases, each compiled three ways. */
CPU_CLONES static void sums16(const BnShape *s, int g, int mode, const float *x, const float *meanf, double *out) {
    sums_group(s, 16, g, mode, x, meanf, out);
}
CPU_CLONES static void apply16(const BnShape *s, int g, bool relu, const float *x, const float *gamma,
                               const float *beta, const float *mean, const float *invstd, float *y) {
    apply_group(s, 16, g, relu, x, gamma, beta, mean, invstd, y);
}
CPU_CLONES static void grad_sums16(const BnShape *s, int g, bool relu, const float *x, const float *dy,
                                   const float *gamma, const float *beta, const float *mean, const float *invstd,
                                   double *out) {
    grad_sums_group(s, 16, g, relu, x, dy, gamma, beta, mean, invstd, out);
}
CPU_CLONES static void dx16(const BnShape *s, int g, bool relu, const float *x, const float *dy, const float *gamma,
                            const float *beta, const float *mean, const float *invstd, const float *coef, float *dx) {
    dx_group(s, 16, g, relu, x, dy, gamma, beta, mean, invstd, coef, dx);
}

static void sums(const BnShape *s, int L, int mode, const float *x, const float *meanf, double *out) {
    int G = s->c / L;
#pragma omp parallel for schedule(static)
    for (int g = 0; g < G; g++) {
        if (L == 16)
            sums16(s, g, mode, x, meanf, out);
        else
            sums_group(s, 1, g, mode, x, meanf, out);
    }
}

void bn_cpu_apply(const BnShape *s, Layout layout, bool relu, const float *x, const float *gamma, const float *beta,
                  const float *mean, const float *invstd, float *y) {
    int L = blocked_lanes(layout, s->c, s->hw), G = s->c / L;
#pragma omp parallel for schedule(static)
    for (int g = 0; g < G; g++) {
        if (L == 16)
            apply16(s, g, relu, x, gamma, beta, mean, invstd, y);
        else
            apply_group(s, 1, g, relu, x, gamma, beta, mean, invstd, y);
    }
}

void bn_cpu_forward_train(const BnShape *s, Layout layout, bool relu, const float *x, const float *gamma,
                          const float *beta, float *y, float *save_mean, float *save_invstd, float momentum, float *rm,
                          float *rv, const BnSync *sync) {
    int L = blocked_lanes(layout, s->c, s->hw);
    const double count = (double)s->n * s->hw * (sync ? sync->world : 1);
    double *acc = channel_scratch((size_t)2 * s->c), *mean = acc + s->c;
    sums(s, L, 0, x, NULL, acc);
    if (sync) sync->allreduce(sync->ctx, acc, s->c);
    for (int c = 0; c < s->c; c++) mean[c] = acc[c] / count, save_mean[c] = (float)mean[c];
    sums(s, L, 1, x, save_mean, acc);
    if (sync) sync->allreduce(sync->ctx, acc, s->c);
    for (int c = 0; c < s->c; c++) {
        save_invstd[c] = (float)(1.0 / sqrt(acc[c] / count + s->eps));
        if (rm) {
            double unbiased = count > 1 ? acc[c] / (count - 1) : acc[c] / count;
            rm[c] = (float)((1.0 - momentum) * rm[c] + (double)momentum * mean[c]);
            rv[c] = (float)((1.0 - momentum) * rv[c] + (double)momentum * unbiased);
        }
    }
    bn_cpu_apply(s, layout, relu, x, gamma, beta, save_mean, save_invstd, y);
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

void bn_cpu_backward(const BnShape *s, Layout layout, bool relu, const float *x, const float *y, const float *dy,
                     const float *gamma, const float *beta, const float *save_mean, const float *save_invstd,
                     float *dx, float *dgamma, float *dbeta, const BnSync *sync) {
    (void)y; /* the mask comes from x */
    int L = blocked_lanes(layout, s->c, s->hw), G = s->c / L, C = s->c;
    const double count = (double)s->n * s->hw * (sync ? sync->world : 1);
    double *acc = channel_scratch((size_t)5 * C); /* sum_dy, sum_dyx, then the float coefficients */
#pragma omp parallel for schedule(static)
    for (int g = 0; g < G; g++) {
        if (L == 16)
            grad_sums16(s, g, relu, x, dy, gamma, beta, save_mean, save_invstd, acc);
        else
            grad_sums_group(s, 1, g, relu, x, dy, gamma, beta, save_mean, save_invstd, acc);
    }
    for (int c = 0; c < C; c++) { /* this process's share of the parameter gradients */
        if (dgamma) dgamma[c] += (float)(acc[C + c] * save_invstd[c]);
        if (dbeta) dbeta[c] += (float)acc[c];
    }
    if (!dx) return;
    if (sync) sync->allreduce(sync->ctx, acc, 2 * C);
    float *coef = (float *)(acc + 2 * C);
    for (int c = 0; c < C; c++) {
        /* dx = gamma invstd (dy - mean(dy)) - (x - mean) gamma invstd^3 mean(dy (x - mean)) */
        double invstd = save_invstd[c], ad = gamma[c] * invstd;
        coef[c] = (float)ad;
        coef[C + c] = (float)(ad * invstd * invstd * acc[C + c] / count);
        coef[2 * C + c] = (float)(-ad * acc[c] / count);
    }
#pragma omp parallel for schedule(static)
    for (int g = 0; g < G; g++) {
        if (L == 16)
            dx16(s, g, relu, x, dy, gamma, beta, save_mean, save_invstd, coef, dx);
        else
            dx_group(s, 1, g, relu, x, dy, gamma, beta, save_mean, save_invstd, coef, dx);
    }
}
