/* Batch norm (+ fused ReLU) on the CPU backend's layouts. Reductions follow one fixed order (a float partial sum per
 * image and channel, then a double sum across images), so results do not depend on the thread count.
 * The passes are separate parallel loops so that a data-parallel run can sum the per-channel statistics over its
 * processes between them (SyncBN); one process does the same arithmetic without that step. */
#include "ops_cpu.h"

#include "blocked.h"

#include <math.h>
#include <stdlib.h>

/* Scratch of one call, kept across calls so a step allocates nothing: per-channel sums in double (a few KiB) and
 * per-image partial sums in float (batch x channels). */
enum { SCRATCH_CHANNELS, SCRATCH_PARTIALS };
static _Thread_local void *scratch[2];
static _Thread_local size_t scratch_bytes[2];

static void *scratch_get(int which, size_t bytes) {
    if (bytes > scratch_bytes[which]) {
        free(scratch[which]);
        scratch[which] = malloc(bytes);
        if (!scratch[which]) rsa_fatal("free memory", "out of memory");
        scratch_bytes[which] = bytes;
    }
    return scratch[which];
}

static double *channel_scratch(size_t n) { return scratch_get(SCRATCH_CHANNELS, sizeof(double) * n); }
static float *partial_scratch(size_t n) { return scratch_get(SCRATCH_PARTIALS, sizeof(float) * n); }

/* Image n's slab of channel group g. */
#define SLAB(ptr, n, g) ((ptr) + ((size_t)(n) * G + (g)) * hw * L)

/* The reductions run in two steps so that every (image, channel group) slab is a separate piece of parallel work
 * (a 16-channel layer has one group: per-group work kept one of two threads idle) while the bits stay those of one
 * fixed order: each image's float partial sum over its pixels, then per channel a double sum over the images in
 * order. */

/* part[n][c] = sum over image n's pixels of x (mode 0) or of (x - mean)^2 (mode 1), for the lanes of group g. */
static inline __attribute__((always_inline)) void sums_slab(const BnShape *s, int L, int n, int g, int mode,
                                                            const float *x, const float *meanf, float *part) {
    const int G = s->c / L, hw = s->hw;
    const float *xp = SLAB(x, n, g);
    float acc[16] = {0};
    if (mode == 0) {
        for (int p = 0; p < hw; p++)
#pragma omp simd
            for (int l = 0; l < L; l++) acc[l] += xp[(size_t)p * L + l];
    } else {
        for (int p = 0; p < hw; p++)
#pragma omp simd
            for (int l = 0; l < L; l++) {
                float d = xp[(size_t)p * L + l] - meanf[g * L + l];
                acc[l] += d * d;
            }
    }
    for (int l = 0; l < L; l++) part[(size_t)n * s->c + g * L + l] = acc[l];
}

/* The normalisation of group g's lanes, v = (x - mean) scale + shift, as every pass computes it (the backward passes
 * rebuild the ReLU mask from it, so it must be the forward's arithmetic exactly). */
typedef struct {
    float mean[16], scale[16], shift[16];
} Affine;

static inline __attribute__((always_inline)) Affine affine_load(int L, int g, const float *gamma, const float *beta,
                                                                const float *mean, const float *invstd) {
    Affine a;
    for (int l = 0; l < L; l++) {
        int c = g * L + l;
        a.mean[l] = mean[c], a.scale[l] = gamma[c] * invstd[c], a.shift[l] = beta[c];
    }
    return a;
}

/* y = (x - mean) (gamma invstd) + beta from the saved float statistics, so that a recomputation in backward is bit
 * for bit the forward's output. (Folding the mean into a shift, x scale + (beta - mean scale), would cancel
 * catastrophically when |mean| >> std.) Then the ReLU, then the rounding to rp (s->round, a constant in the 16-lane
 * clones so that each format gets its own vector loop). */
static inline __attribute__((always_inline)) void apply_slab(const BnShape *s, int L, int n, int g, bool relu,
                                                             const float *x, const float *gamma, const float *beta,
                                                             const float *mean, const float *invstd, float *y,
                                                             Precision rp) {
    const int G = s->c / L, hw = s->hw;
    const Affine af = affine_load(L, g, gamma, beta, mean, invstd);
    const float *xp = SLAB(x, n, g);
    float *yp = SLAB(y, n, g);
    for (int p = 0; p < hw; p++)
#pragma omp simd
        for (int l = 0; l < L; l++) {
            float v = (xp[(size_t)p * L + l] - af.mean[l]) * af.scale[l] + af.shift[l];
            yp[(size_t)p * L + l] = round_to(rp, relu && v < 0 ? 0.0f : v);
        }
}

/* dy behind the ReLU, its mask rebuilt from the normalised value v as apply_slab computed it: y <= 0 iff v is at
 * most the largest value the rounding takes to 0 (zero = lowp_zero_bound; 0 in fp32); a NaN passes dy, as
 * relu_backward_ref. */
static inline __attribute__((always_inline)) float behind_relu(bool relu, float v, float zero, float dy) {
    return relu && v <= zero ? 0.0f : dy;
}

/* Image n's sums of dy' and dy' (x - mean), dy' the gradient behind the ReLU, into part and part + N*C. The mask is
 * recomputed from x exactly as apply_slab computed y (y > 0 iff v > lowp_zero_bound: a smaller v rounds to 0), so y
 * is never read. */
static inline __attribute__((always_inline)) void grad_sums_slab(const BnShape *s, int L, int n, int g, bool relu,
                                                                 const float *x, const float *dy, const float *gamma,
                                                                 const float *beta, const float *mean,
                                                                 const float *invstd, float *part) {
    const int G = s->c / L, hw = s->hw;
    const Affine af = affine_load(L, g, gamma, beta, mean, invstd);
    const float *xp = SLAB(x, n, g), *dyp = SLAB(dy, n, g);
    const float zero = lowp_zero_bound(s->round);
    float pd[16] = {0}, pdx[16] = {0};
    for (int p = 0; p < hw; p++)
#pragma omp simd
        for (int l = 0; l < L; l++) {
            size_t i = (size_t)p * L + l;
            float xc = xp[i] - af.mean[l];
            float d = behind_relu(relu, xc * af.scale[l] + af.shift[l], zero, dyp[i]);
            pd[l] += d;
            pdx[l] += d * xc;
        }
    size_t at = (size_t)n * s->c + g * L, nc = (size_t)s->n * s->c;
    for (int l = 0; l < L; l++) part[at + l] = pd[l], part[nc + at + l] = pdx[l];
}

/* dx = a dy' - k (x - mean) + c0 with the per-channel coefficients of bn_cpu_backward, rounded to rp. */
static inline __attribute__((always_inline)) void dx_slab(const BnShape *s, int L, int n, int g, bool relu,
                                                          const float *x, const float *dy, const float *gamma,
                                                          const float *beta, const float *mean, const float *invstd,
                                                          const float *coef, float *dx, Precision rp) {
    const int G = s->c / L, hw = s->hw;
    const Affine af = affine_load(L, g, gamma, beta, mean, invstd);
    float a[16], k[16], c0[16];
    for (int l = 0; l < L; l++) {
        int c = g * L + l;
        a[l] = coef[c], k[l] = coef[s->c + c], c0[l] = coef[2 * s->c + c];
    }
    const float *xp = SLAB(x, n, g), *dyp = SLAB(dy, n, g);
    const float zero = lowp_zero_bound(rp);
    float *dxp = SLAB(dx, n, g);
    for (int p = 0; p < hw; p++)
#pragma omp simd
        for (int l = 0; l < L; l++) {
            size_t i = (size_t)p * L + l;
            float xc = xp[i] - af.mean[l];
            float d = behind_relu(relu, xc * af.scale[l] + af.shift[l], zero, dyp[i]);
            dxp[i] = round_to(rp, a[l] * d - k[l] * xc + c0[l]);
        }
}

/* The 16-lane slabs, each compiled three ways. */
CPU_CLONES static void sums16(const BnShape *s, int n, int g, int mode, const float *x, const float *meanf,
                              float *part) {
    sums_slab(s, 16, n, g, mode, x, meanf, part);
}
CPU_CLONES static void apply16(const BnShape *s, int n, int g, bool relu, const float *x, const float *gamma,
                               const float *beta, const float *mean, const float *invstd, float *y) {
    if (s->round == PRECISION_BF16)
        apply_slab(s, 16, n, g, relu, x, gamma, beta, mean, invstd, y, PRECISION_BF16);
    else if (s->round == PRECISION_FP16)
        apply_slab(s, 16, n, g, relu, x, gamma, beta, mean, invstd, y, PRECISION_FP16);
    else
        apply_slab(s, 16, n, g, relu, x, gamma, beta, mean, invstd, y, PRECISION_FP32);
}
CPU_CLONES static void grad_sums16(const BnShape *s, int n, int g, bool relu, const float *x, const float *dy,
                                   const float *gamma, const float *beta, const float *mean, const float *invstd,
                                   float *part) {
    grad_sums_slab(s, 16, n, g, relu, x, dy, gamma, beta, mean, invstd, part);
}
CPU_CLONES static void dx16(const BnShape *s, int n, int g, bool relu, const float *x, const float *dy,
                            const float *gamma, const float *beta, const float *mean, const float *invstd,
                            const float *coef, float *dx) {
    if (s->round == PRECISION_BF16)
        dx_slab(s, 16, n, g, relu, x, dy, gamma, beta, mean, invstd, coef, dx, PRECISION_BF16);
    else if (s->round == PRECISION_FP16)
        dx_slab(s, 16, n, g, relu, x, dy, gamma, beta, mean, invstd, coef, dx, PRECISION_FP16);
    else
        dx_slab(s, 16, n, g, relu, x, dy, gamma, beta, mean, invstd, coef, dx, PRECISION_FP32);
}

/* out[j * C + c] = sum over images n, in order, of (double)part[j][n][c], for rows j < rows. */
static void sum_images(const BnShape *s, int rows, const float *part, double *out) {
    const int C = s->c;
    const size_t nc = (size_t)s->n * C;
#pragma omp parallel for schedule(static)
    for (int jc = 0; jc < rows * C; jc++) {
        const float *p = part + (size_t)(jc / C) * nc + jc % C;
        double acc = 0;
        for (int n = 0; n < s->n; n++) acc += p[(size_t)n * C];
        out[jc] = acc;
    }
}

static void sums(const BnShape *s, int L, int mode, const float *x, const float *meanf, double *out) {
    int G = s->c / L;
    float *part = partial_scratch((size_t)s->n * s->c);
#pragma omp parallel for schedule(static)
    for (int ng = 0; ng < s->n * G; ng++) {
        if (L == 16)
            sums16(s, ng / G, ng % G, mode, x, meanf, part);
        else
            sums_slab(s, 1, ng / G, ng % G, mode, x, meanf, part);
    }
    sum_images(s, 1, part, out);
}

void bn_cpu_apply(const BnShape *s, Layout layout, bool relu, const float *x, const float *gamma, const float *beta,
                  const float *mean, const float *invstd, float *y) {
    int L = blocked_lanes(layout, s->c, s->hw), G = s->c / L;
#pragma omp parallel for schedule(static)
    for (int ng = 0; ng < s->n * G; ng++) {
        if (L == 16)
            apply16(s, ng / G, ng % G, relu, x, gamma, beta, mean, invstd, y);
        else
            apply_slab(s, 1, ng / G, ng % G, relu, x, gamma, beta, mean, invstd, y, s->round);
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
                yp[(size_t)p * L + l] = round_to(s->round, relu && v < 0 ? 0.0f : v);
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
    float *part = partial_scratch((size_t)2 * s->n * C);
#pragma omp parallel for schedule(static)
    for (int ng = 0; ng < s->n * G; ng++) {
        if (L == 16)
            grad_sums16(s, ng / G, ng % G, relu, x, dy, gamma, beta, save_mean, save_invstd, part);
        else
            grad_sums_slab(s, 1, ng / G, ng % G, relu, x, dy, gamma, beta, save_mean, save_invstd, part);
    }
    sum_images(s, 2, part, acc);
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
    for (int ng = 0; ng < s->n * G; ng++) {
        if (L == 16)
            dx16(s, ng / G, ng % G, relu, x, dy, gamma, beta, save_mean, save_invstd, coef, dx);
        else
            dx_slab(s, 1, ng / G, ng % G, relu, x, dy, gamma, beta, save_mean, save_invstd, coef, dx, s->round);
    }
}
