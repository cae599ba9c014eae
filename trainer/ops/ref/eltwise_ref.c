#include "ops_ref.h"

#include <float.h>

/* torch.relu's values: a NaN passes (so a diverged forward pass gives a NaN loss, which the fp16 loss scaler sees)
 * and -0 stays -0; its gradient is cut where the output is <= 0, so a NaN output passes the gradient as torch's
 * threshold_backward does. Every backend's ReLU (alone, after an addition, after batch norm) follows these. */
void relu_forward_ref(size_t n, const float *x, float *y) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] < 0 ? 0.0f : x[i];
}

void relu_backward_ref(size_t n, const float *y, const float *dy, float *dx) {
    for (size_t i = 0; i < n; i++) dx[i] = y[i] <= 0 ? 0.0f : dy[i];
}

void add_forward_ref(size_t n, const float *a, const float *b, float *y) {
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void round_lowp_ref(Precision p, size_t n, float *x) {
    if (p == PRECISION_FP32) return;
    for (size_t i = 0; i < n; i++) x[i] = round_to(p, x[i]);
}

void accumulate_lowp_ref(Precision p, size_t n, float *y, const float *x) {
    for (size_t i = 0; i < n; i++) y[i] = round_to(p, y[i] + round_to(p, x[i]));
}

void to_lowp_ref(Precision p, size_t n, const float *x, uint16_t *y16) {
    for (size_t i = 0; i < n; i++) y16[i] = lowp_bits(p, x[i]);
}

void from_lowp_ref(Precision p, size_t n, const uint16_t *x16, float *y) {
    for (size_t i = 0; i < n; i++) y[i] = lowp_value(p, x16[i]);
}

void maxpool_forward_ref(const PoolShape *s, const float *x, float *y) {
    for (int n = 0; n < s->n; n++)
        for (int c = 0; c < s->c; c++) {
            const float *xp = x + ((size_t)n * s->c + c) * s->hi * s->wi;
            float *yp = y + ((size_t)n * s->c + c) * s->ho * s->wo;
            for (int oy = 0; oy < s->ho; oy++)
                for (int ox = 0; ox < s->wo; ox++) {
                    float best = -FLT_MAX;
                    int found = 0;
                    for (int ky = 0; ky < s->k; ky++)
                        for (int kx = 0; kx < s->k; kx++) {
                            int iy = oy * s->stride - s->pad + ky, ix = ox * s->stride - s->pad + kx;
                            if (iy < 0 || iy >= s->hi || ix < 0 || ix >= s->wi) continue;
                            float v = xp[iy * s->wi + ix];
                            if (!found || v > best) best = v, found = 1;
                        }
                    yp[oy * s->wo + ox] = best;
                }
        }
}

void maxpool_backward_ref(const PoolShape *s, const float *x, const float *dy, float *dx) {
    for (size_t i = 0; i < (size_t)s->n * s->c * s->hi * s->wi; i++) dx[i] = 0;
    for (int n = 0; n < s->n; n++)
        for (int c = 0; c < s->c; c++) {
            const float *xp = x + ((size_t)n * s->c + c) * s->hi * s->wi;
            float *dxp = dx + ((size_t)n * s->c + c) * s->hi * s->wi;
            const float *dyp = dy + ((size_t)n * s->c + c) * s->ho * s->wo;
            for (int oy = 0; oy < s->ho; oy++)
                for (int ox = 0; ox < s->wo; ox++) {
                    float best = -FLT_MAX;
                    int arg = -1;
                    for (int ky = 0; ky < s->k; ky++)
                        for (int kx = 0; kx < s->k; kx++) {
                            int iy = oy * s->stride - s->pad + ky, ix = ox * s->stride - s->pad + kx;
                            if (iy < 0 || iy >= s->hi || ix < 0 || ix >= s->wi) continue;
                            float v = xp[iy * s->wi + ix];
                            if (arg < 0 || v > best) best = v, arg = iy * s->wi + ix;
                        }
                    dxp[arg] += dyp[oy * s->wo + ox];
                }
        }
}

void gap_forward_ref(int n, int c, int hw, const float *x, float *y) {
    for (int i = 0; i < n * c; i++) {
        double acc = 0;
        for (int p = 0; p < hw; p++) acc += x[(size_t)i * hw + p];
        y[i] = (float)(acc / hw);
    }
}

void gap_backward_ref(int n, int c, int hw, const float *dy, float *dx) {
    for (int i = 0; i < n * c; i++)
        for (int p = 0; p < hw; p++) dx[(size_t)i * hw + p] = dy[i] / (float)hw;
}
