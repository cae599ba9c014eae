/* Elementwise and pooling kernels of the CPU backend. None reduces across threads, so all are deterministic. */
#include "ops_cpu.h"

#include "blocked.h"
#include "../ref/ops_ref.h"

#include <float.h>
#include <string.h>

/* The elementwise loops read every operand unconditionally (a ternary that loads dy[i] only where y[i] > 0 compiled
 * to a branch per element, 8 % of a quick-scale step) and are built per ISA (CPU_CLONES) like the batch-norm
 * kernels. The clones are static and called through plain functions: clang before 17 names an external clone's
 * resolver `name.ifunc`, so callers in other files would not link. */

CPU_CLONES static void relu_forward_kernel(size_t n, const float *x, float *y) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = v < 0 ? 0.0f : v; /* NaN and -0 pass, as relu_forward_ref */
    }
}
void relu_cpu_forward(size_t n, const float *x, float *y) { relu_forward_kernel(n, x, y); }

CPU_CLONES static void relu_backward_kernel(size_t n, const float *y, const float *dy, float *dx) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = dy[i];
        dx[i] = y[i] <= 0 ? 0.0f : g;
    }
}
void relu_cpu_backward(size_t n, const float *y, const float *dy, float *dx) { relu_backward_kernel(n, y, dy, dx); }

/* relu and rp are constants in each instance (add_chunk), so that each case gets its own vector loop. */
static inline __attribute__((always_inline)) void add_span(size_t n, const float *a, const float *b, float *y,
                                                           bool relu, Precision rp) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float v = a[i] + b[i];
        y[i] = round_to(rp, relu && v < 0 ? 0.0f : v);
    }
}
CPU_CLONES static void add_chunk(size_t n, const float *a, const float *b, float *y, bool relu, Precision rp) {
    if (relu && rp == PRECISION_BF16) add_span(n, a, b, y, true, PRECISION_BF16);
    else if (relu && rp == PRECISION_FP16) add_span(n, a, b, y, true, PRECISION_FP16);
    else if (relu) add_span(n, a, b, y, true, PRECISION_FP32);
    else if (rp == PRECISION_BF16) add_span(n, a, b, y, false, PRECISION_BF16);
    else if (rp == PRECISION_FP16) add_span(n, a, b, y, false, PRECISION_FP16);
    else add_span(n, a, b, y, false, PRECISION_FP32);
}
/* The parallel loop runs over chunks outside the clones: an OpenMP region inside an inlined helper is outlined
 * without the clone's target, as plain SSE code. */
void add_cpu_forward(size_t n, const float *a, const float *b, float *y, bool relu, Precision round) {
    const size_t chunk = (size_t)1 << 14;
    const size_t chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < chunks; k++) {
        size_t at = k * chunk;
        add_chunk(n - at < chunk ? n - at : chunk, a + at, b + at, y + at, relu, round);
    }
}

CPU_CLONES static void accumulate_kernel(size_t n, float *y, const float *x) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}
void accumulate_cpu(size_t n, float *y, const float *x) { accumulate_kernel(n, y, x); }

CPU_CLONES static void round_bf16_kernel(size_t n, float *x) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = round_bf16(x[i]);
}
CPU_CLONES static void round_fp16_kernel(size_t n, float *x) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = round_fp16(x[i]);
}
void round_lowp_cpu(Precision p, size_t n, float *x) {
    if (p == PRECISION_BF16) round_bf16_kernel(n, x);
    if (p == PRECISION_FP16) round_fp16_kernel(n, x);
}

CPU_CLONES static void accumulate_bf16_kernel(size_t n, float *y, const float *x) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = round_bf16(y[i] + round_bf16(x[i]));
}
CPU_CLONES static void accumulate_fp16_kernel(size_t n, float *y, const float *x) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = round_fp16(y[i] + round_fp16(x[i]));
}
void accumulate_lowp_cpu(Precision p, size_t n, float *y, const float *x) {
    RSA_ASSERT(p != PRECISION_FP32);
    if (p == PRECISION_BF16) accumulate_bf16_kernel(n, y, x);
    if (p == PRECISION_FP16) accumulate_fp16_kernel(n, y, x);
}

/* One loop per format, so that each inlines its own branch of lowp_bits and lowp_value and vectorises. */
CPU_CLONES static void to_bf16_kernel(size_t n, const float *x, uint16_t *y16) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) y16[i] = lowp_bits(PRECISION_BF16, x[i]);
}
CPU_CLONES static void to_fp16_kernel(size_t n, const float *x, uint16_t *y16) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) y16[i] = lowp_bits(PRECISION_FP16, x[i]);
}
void to_lowp_cpu(Precision p, size_t n, const float *x, uint16_t *y16) {
    RSA_ASSERT(p != PRECISION_FP32);
    if (p == PRECISION_BF16) to_bf16_kernel(n, x, y16);
    if (p == PRECISION_FP16) to_fp16_kernel(n, x, y16);
}

CPU_CLONES static void from_bf16_kernel(size_t n, const uint16_t *x16, float *y) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = lowp_value(PRECISION_BF16, x16[i]);
}
CPU_CLONES static void from_fp16_kernel(size_t n, const uint16_t *x16, float *y) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = lowp_value(PRECISION_FP16, x16[i]);
}
void from_lowp_cpu(Precision p, size_t n, const uint16_t *x16, float *y) {
    RSA_ASSERT(p != PRECISION_FP32);
    if (p == PRECISION_BF16) from_bf16_kernel(n, x16, y);
    if (p == PRECISION_FP16) from_fp16_kernel(n, x16, y);
}

static inline __attribute__((always_inline)) void maxpool_slab(const PoolShape *s, int L, const float *x, float *y,
                                                               const float *dy, float *dx) {
    /* Forward (dy == NULL) writes y; backward routes each dy to the first maximum, as PyTorch's CPU kernel. */
    for (int oy = 0; oy < s->ho; oy++)
        for (int ox = 0; ox < s->wo; ox++)
            for (int l = 0; l < L; l++) {
                float best = -FLT_MAX;
                int arg = -1;
                for (int ky = 0; ky < s->k; ky++) {
                    int iy = oy * s->stride - s->pad + ky;
                    if (iy < 0 || iy >= s->hi) continue;
                    for (int kx = 0; kx < s->k; kx++) {
                        int ix = ox * s->stride - s->pad + kx;
                        if (ix < 0 || ix >= s->wi) continue;
                        float v = x[((size_t)iy * s->wi + ix) * L + l];
                        if (arg < 0 || v > best) best = v, arg = iy * s->wi + ix;
                    }
                }
                size_t o = ((size_t)oy * s->wo + ox) * L + l;
                if (dy)
                    dx[(size_t)arg * L + l] += dy[o];
                else
                    y[o] = best;
            }
}

void maxpool_cpu_forward(const PoolShape *s, Layout layout, const float *x, float *y) {
    int L = blocked_lanes(layout, s->c, s->hi * s->wi), slabs = s->n * (s->c / L);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < slabs; i++) {
        const float *xp = x + (size_t)i * s->hi * s->wi * L;
        float *yp = y + (size_t)i * s->ho * s->wo * L;
        if (L == 16)
            maxpool_slab(s, 16, xp, yp, NULL, NULL);
        else
            maxpool_slab(s, 1, xp, yp, NULL, NULL);
    }
}

void maxpool_cpu_backward(const PoolShape *s, Layout layout, const float *x, const float *dy, float *dx) {
    int L = blocked_lanes(layout, s->c, s->hi * s->wi), slabs = s->n * (s->c / L);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < slabs; i++) {
        const float *xp = x + (size_t)i * s->hi * s->wi * L;
        float *dxp = dx + (size_t)i * s->hi * s->wi * L;
        memset(dxp, 0, sizeof(float) * s->hi * s->wi * L);
        const float *dyp = dy + (size_t)i * s->ho * s->wo * L;
        if (L == 16)
            maxpool_slab(s, 16, xp, NULL, dyp, dxp);
        else
            maxpool_slab(s, 1, xp, NULL, dyp, dxp);
    }
}

void gap_cpu_forward(int n, int c, int hw, Layout layout, const float *x, float *y) {
    int L = blocked_lanes(layout, c, hw), G = c / L;
#pragma omp parallel for schedule(static)
    for (int ng = 0; ng < n * G; ng++) {
        const float *xp = x + (size_t)ng * hw * L;
        float acc[16] = {0};
        for (int p = 0; p < hw; p++)
            for (int l = 0; l < L; l++) acc[l] += xp[(size_t)p * L + l];
        for (int l = 0; l < L; l++) y[(size_t)ng * L + l] = acc[l] / (float)hw;
    }
}

void gap_cpu_backward(int n, int c, int hw, Layout layout, const float *dy, float *dx) {
    int L = blocked_lanes(layout, c, hw), G = c / L;
#pragma omp parallel for schedule(static)
    for (int ng = 0; ng < n * G; ng++) {
        float *dxp = dx + (size_t)ng * hw * L;
        for (int p = 0; p < hw; p++)
            for (int l = 0; l < L; l++) dxp[(size_t)p * L + l] = dy[(size_t)ng * L + l] / (float)hw;
    }
}

/* The elementwise optimiser ops are the reference loops (they are memory-bound and exact), run in parallel. */
void axpby_cpu(size_t n, float a, const float *x, float b, float *y) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float ax = a * x[i], by = b * y[i];
        y[i] = ax + by;
    }
}

void sgd_update_cpu(size_t n, float *w, const float *g, float *buf, float lr, float momentum, float wd,
                    bool nesterov) {
#pragma omp parallel for schedule(static)
    for (size_t start = 0; start < n; start += 4096) {
        size_t len = n - start < 4096 ? n - start : 4096;
        sgd_update_ref(len, w + start, g + start, buf + start, lr, momentum, wd, nesterov);
    }
}

/* Fixed 64 Ki-element chunks summed in order: the same bits for any thread count. */
double sumsq_cpu(size_t n, const float *x) {
    enum { CHUNK = 1 << 16 };
    size_t chunks = (n + CHUNK - 1) / CHUNK;
    double partial[256], total = 0;
    for (size_t base = 0; base < chunks; base += 256) {
        size_t count = chunks - base < 256 ? chunks - base : 256;
#pragma omp parallel for schedule(static)
        for (size_t c = 0; c < count; c++) {
            size_t from = (base + c) * CHUNK, len = n - from < CHUNK ? n - from : CHUNK;
            partial[c] = sumsq_ref(len, x + from);
        }
        for (size_t c = 0; c < count; c++) total += partial[c];
    }
    return total;
}
