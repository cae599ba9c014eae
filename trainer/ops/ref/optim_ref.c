#include "ops_ref.h"

void axpby_ref(size_t n, float a, const float *x, float b, float *y) {
    for (size_t i = 0; i < n; i++) {
        float ax = a * x[i], by = b * y[i];
        y[i] = ax + by;
    }
}

void sgd_update_ref(size_t n, float *w, const float *g, float *buf, float lr, float momentum, float wd, bool nesterov) {
    for (size_t i = 0; i < n; i++) {
        float decay = wd * w[i];
        float gp = g[i] + decay;
        float mb = momentum * buf[i];
        buf[i] = mb + gp;
        float d = gp;
        if (nesterov) {
            float mbn = momentum * buf[i];
            d = gp + mbn;
        } else {
            d = buf[i];
        }
        float step = -lr * d;
        w[i] = w[i] + step;
    }
}

double sumsq_ref(size_t n, const float *x) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}
