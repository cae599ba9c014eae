#include "ops_ref.h"

#include <string.h>

static inline size_t at(int c_total, int h, int w, int n, int c, int y, int x) {
    return (((size_t)n * c_total + c) * h + y) * w + x;
}

void conv2d_forward_ref(const ConvShape *s, const float *x, const float *w, const float *bias, float *y) {
    for (int n = 0; n < s->n; n++)
        for (int o = 0; o < s->co; o++)
            for (int oy = 0; oy < s->ho; oy++)
                for (int ox = 0; ox < s->wo; ox++) {
                    double acc = bias ? bias[o] : 0.0;
                    for (int i = 0; i < s->ci; i++)
                        for (int ky = 0; ky < s->k; ky++) {
                            int iy = oy * s->stride - s->pad + ky;
                            if (iy < 0 || iy >= s->hi) continue;
                            for (int kx = 0; kx < s->k; kx++) {
                                int ix = ox * s->stride - s->pad + kx;
                                if (ix < 0 || ix >= s->wi) continue;
                                acc += (double)x[at(s->ci, s->hi, s->wi, n, i, iy, ix)] *
                                       w[at(s->ci, s->k, s->k, o, i, ky, kx)];
                            }
                        }
                    y[at(s->co, s->ho, s->wo, n, o, oy, ox)] = (float)acc;
                }
}

void conv2d_backward_data_ref(const ConvShape *s, const float *dy, const float *w, float *dx) {
    /* Gather form: each input pixel sums over the outputs whose window covers it. */
    for (int n = 0; n < s->n; n++)
        for (int i = 0; i < s->ci; i++)
            for (int iy = 0; iy < s->hi; iy++)
                for (int ix = 0; ix < s->wi; ix++) {
                    double acc = 0;
                    for (int ky = 0; ky < s->k; ky++) {
                        int t = iy + s->pad - ky;
                        if (t < 0 || t % s->stride) continue;
                        int oy = t / s->stride;
                        if (oy >= s->ho) continue;
                        for (int kx = 0; kx < s->k; kx++) {
                            int u = ix + s->pad - kx;
                            if (u < 0 || u % s->stride) continue;
                            int ox = u / s->stride;
                            if (ox >= s->wo) continue;
                            for (int o = 0; o < s->co; o++)
                                acc += (double)dy[at(s->co, s->ho, s->wo, n, o, oy, ox)] *
                                       w[at(s->ci, s->k, s->k, o, i, ky, kx)];
                        }
                    }
                    dx[at(s->ci, s->hi, s->wi, n, i, iy, ix)] = (float)acc;
                }
}

void conv2d_backward_weights_ref(const ConvShape *s, const float *x, const float *dy, float *dw, float *dbias) {
    if (dw)
        for (int o = 0; o < s->co; o++)
            for (int i = 0; i < s->ci; i++)
                for (int ky = 0; ky < s->k; ky++)
                    for (int kx = 0; kx < s->k; kx++) {
                        double acc = 0;
                        for (int n = 0; n < s->n; n++)
                            for (int oy = 0; oy < s->ho; oy++) {
                                int iy = oy * s->stride - s->pad + ky;
                                if (iy < 0 || iy >= s->hi) continue;
                                for (int ox = 0; ox < s->wo; ox++) {
                                    int ix = ox * s->stride - s->pad + kx;
                                    if (ix < 0 || ix >= s->wi) continue;
                                    acc += (double)x[at(s->ci, s->hi, s->wi, n, i, iy, ix)] *
                                           dy[at(s->co, s->ho, s->wo, n, o, oy, ox)];
                                }
                            }
                        dw[at(s->ci, s->k, s->k, o, i, ky, kx)] += (float)acc;
                    }
    if (dbias)
        for (int o = 0; o < s->co; o++) {
            double acc = 0;
            for (int n = 0; n < s->n; n++)
                for (int p = 0; p < s->ho * s->wo; p++) acc += dy[((size_t)n * s->co + o) * s->ho * s->wo + p];
            dbias[o] += (float)acc;
        }
}
