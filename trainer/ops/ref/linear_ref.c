#include "ops_ref.h"

#include <math.h>

void linear_forward_ref(int n, int in, int out, const float *x, const float *w, const float *bias, float *y) {
    for (int r = 0; r < n; r++)
        for (int o = 0; o < out; o++) {
            double acc = bias ? bias[o] : 0.0;
            for (int i = 0; i < in; i++) acc += (double)x[(size_t)r * in + i] * w[(size_t)o * in + i];
            y[(size_t)r * out + o] = (float)acc;
        }
}

void linear_backward_ref(int n, int in, int out, const float *x, const float *w, const float *dy, float *dx, float *dw,
                         float *dbias) {
    if (dx)
        for (int r = 0; r < n; r++)
            for (int i = 0; i < in; i++) {
                double acc = 0;
                for (int o = 0; o < out; o++) acc += (double)dy[(size_t)r * out + o] * w[(size_t)o * in + i];
                dx[(size_t)r * in + i] = (float)acc;
            }
    if (dw)
        for (int o = 0; o < out; o++)
            for (int i = 0; i < in; i++) {
                double acc = 0;
                for (int r = 0; r < n; r++) acc += (double)dy[(size_t)r * out + o] * x[(size_t)r * in + i];
                dw[(size_t)o * in + i] += (float)acc;
            }
    if (dbias)
        for (int o = 0; o < out; o++) {
            double acc = 0;
            for (int r = 0; r < n; r++) acc += dy[(size_t)r * out + o];
            dbias[o] += (float)acc;
        }
}

static const double NORM_EPS = 1e-12; /* torch.nn.functional.normalize's default */

void l2norm_forward_ref(int n, int d, const float *x, float *y, float *norm) {
    for (int r = 0; r < n; r++) {
        double sq = 0;
        for (int i = 0; i < d; i++) sq += (double)x[(size_t)r * d + i] * x[(size_t)r * d + i];
        double nr = sqrt(sq), den = nr > NORM_EPS ? nr : NORM_EPS;
        for (int i = 0; i < d; i++) y[(size_t)r * d + i] = (float)(x[(size_t)r * d + i] / den);
        norm[r] = (float)nr;
    }
}

void l2norm_backward_ref(int n, int d, const float *x, const float *norm, const float *dy, float *dx) {
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * d, *g = dy + (size_t)r * d;
        double nr = norm[r];
        if (nr <= NORM_EPS) { /* below eps the op is x / eps, a linear map */
            for (int i = 0; i < d; i++) dx[(size_t)r * d + i] = (float)(g[i] / NORM_EPS);
            continue;
        }
        double dot = 0;
        for (int i = 0; i < d; i++) dot += (double)g[i] * xr[i];
        /* d(x/|x|) = (g - x <g, x> / |x|^2) / |x| */
        for (int i = 0; i < d; i++) dx[(size_t)r * d + i] = (float)((g[i] - xr[i] * dot / (nr * nr)) / nr);
    }
}

void cosdist_forward_ref(int n, int d, const float *a, const float *b, float *l) {
    for (int r = 0; r < n; r++) {
        double dot = 0;
        for (int i = 0; i < d; i++) dot += (double)a[(size_t)r * d + i] * b[(size_t)r * d + i];
        l[r] = (float)(2.0 - 2.0 * dot);
    }
}

void cosdist_backward_ref(int n, int d, const float *a, const float *b, const float *dl, float *da, float *db) {
    for (int r = 0; r < n; r++)
        for (int i = 0; i < d; i++) {
            if (da) da[(size_t)r * d + i] = -2.0f * dl[r] * b[(size_t)r * d + i];
            if (db) db[(size_t)r * d + i] = -2.0f * dl[r] * a[(size_t)r * d + i];
        }
}

double softmax_xent_row_ref(int c, const float *z, int label, int n, float *drow) {
    double mx = z[0];
    for (int k = 1; k < c; k++)
        if (z[k] > mx) mx = z[k];
    double sum = 0;
    for (int k = 0; k < c; k++) sum += exp(z[k] - mx);
    double lse = mx + log(sum);
    if (drow)
        for (int k = 0; k < c; k++) drow[k] = (float)((exp(z[k] - lse) - (k == label)) / n);
    return lse - z[label];
}

double softmax_xent_ref(int n, int c, const float *logits, const int *labels, float *dlogits) {
    double total = 0;
    for (int r = 0; r < n; r++) {
        float *drow = dlogits ? dlogits + (size_t)r * c : NULL;
        total += softmax_xent_row_ref(c, logits + (size_t)r * c, labels[r], n, drow);
    }
    return total / n;
}
