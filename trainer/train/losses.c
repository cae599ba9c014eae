#include "losses.h"

#include "../core/error.h"
#include "../ops/cpu/ops_cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double NORM_EPS = 1e-12;

static double *dalloc(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    if (!p) rsa_fatal("free memory", "out of memory");
    return p;
}

void rows_normalize(int n, int d, const float *q, double *p, double *norm) {
    for (int r = 0; r < n; r++) {
        double s = 0;
        for (int i = 0; i < d; i++) s += (double)q[(size_t)r * d + i] * q[(size_t)r * d + i];
        norm[r] = sqrt(s);
        double den = norm[r] > NORM_EPS ? norm[r] : NORM_EPS;
        for (int i = 0; i < d; i++) p[(size_t)r * d + i] = q[(size_t)r * d + i] / den;
    }
}

static double dot(int d, const double *a, const double *b) {
    double s = 0;
    for (int i = 0; i < d; i++) s += a[i] * b[i];
    return s;
}

/* Gradient through normalize: dq = (dp - p <dp, p>) / |q| (dp / eps below the eps). */
static void normalize_backward(int n, int d, const double *p, const double *norm, const double *dp, float *dq) {
    for (int r = 0; r < n; r++) {
        const double *pr = p + (size_t)r * d, *g = dp + (size_t)r * d;
        if (norm[r] <= NORM_EPS) {
            for (int i = 0; i < d; i++) dq[(size_t)r * d + i] = (float)(g[i] / NORM_EPS);
            continue;
        }
        double gp = dot(d, g, pr);
        for (int i = 0; i < d; i++) dq[(size_t)r * d + i] = (float)((g[i] - pr[i] * gp) / norm[r]);
    }
}

void loss_byol_rsa(int n, int d, double beta, const float *q1, const float *q2, const float *t1, const float *t2,
                   float *dq1, float *dq2, LossTerms *out) {
    size_t nd = (size_t)n * d;
    double *p1 = dalloc(nd), *p2 = dalloc(nd), *z1 = dalloc(nd), *z2 = dalloc(nd), *g = dalloc(nd);
    double *n1 = dalloc((size_t)n), *n2 = dalloc((size_t)n), *nz = dalloc((size_t)n);
    rows_normalize(n, d, q1, p1, n1);
    rows_normalize(n, d, q2, p2, n2);
    rows_normalize(n, d, t1, z1, nz);
    rows_normalize(n, d, t2, z2, nz);
    double loss = 0, loss_w = 0, loss_a = 0;
    for (int r = 0; r < n; r++) {
        size_t o = (size_t)r * d;
        double a12 = 2 - 2 * dot(d, p1 + o, p2 + o), w12 = 2 - 2 * dot(d, p1 + o, z2 + o);
        double w21 = 2 - 2 * dot(d, p2 + o, z1 + o);
        loss += beta * a12 + (1 - beta) * w12 + beta * a12 + (1 - beta) * w21;
        loss_w += w12 + w21;
        loss_a += 2 * a12;
    }
    out->loss = loss / n, out->loss_w = loss_w / n, out->loss_a = loss_a / n;
    /* dL/dp1 = -2/n (beta p2 + (1 - beta) z2): p2 is detached in p1's terms (and p1 in p2's) */
    for (size_t i = 0; i < nd; i++) g[i] = -2.0 / n * (beta * p2[i] + (1 - beta) * z2[i]);
    normalize_backward(n, d, p1, n1, g, dq1);
    for (size_t i = 0; i < nd; i++) g[i] = -2.0 / n * (beta * p1[i] + (1 - beta) * z1[i]);
    normalize_backward(n, d, p2, n2, g, dq2);
    free(p1), free(p2), free(z1), free(z2), free(g), free(n1), free(n2), free(nz);
}

void loss_ntxent(int n, int d, double tau, const float *z1, const float *z2, float *dz1, float *dz2, LossTerms *out) {
    const int m = 2 * n;
    double *z = dalloc((size_t)m * d), *norm = dalloc((size_t)m), *g = dalloc((size_t)m * d);
    double *prob = dalloc((size_t)m);
    rows_normalize(n, d, z1, z, norm);
    rows_normalize(n, d, z2, z + (size_t)n * d, norm + n);
    double loss = 0;
    for (int i = 0; i < m; i++) {
        int pos = i < n ? i + n : i - n;
        const double *zi = z + (size_t)i * d;
        double mx = -INFINITY;
        for (int j = 0; j < m; j++)
            if (j != i) prob[j] = dot(d, zi, z + (size_t)j * d) / tau, mx = fmax(mx, prob[j]);
        double sum = 0;
        for (int j = 0; j < m; j++)
            if (j != i) prob[j] = exp(prob[j] - mx), sum += prob[j];
        loss += -log(prob[pos] / sum);
        /* d loss_i / d logit_ij = (softmax_j - [j == pos]) / m; logit_ij = <z_i, z_j> / tau */
        for (int j = 0; j < m; j++) {
            if (j == i) continue;
            double c = (prob[j] / sum - (j == pos)) / (m * tau);
            double *gi = g + (size_t)i * d, *gj = g + (size_t)j * d;
            const double *zj = z + (size_t)j * d;
            for (int k = 0; k < d; k++) gi[k] += c * zj[k], gj[k] += c * zi[k];
        }
    }
    out->loss = loss / m, out->loss_w = out->loss_a = 0;
    normalize_backward(n, d, z, norm, g, dz1);
    normalize_backward(n, d, z + (size_t)n * d, norm + n, g + (size_t)n * d, dz2);
    free(z), free(norm), free(g), free(prob);
}

void loss_infonce(int n, int d, double tau, const float *q, const float *k, const float *queue, int64_t K, float *dq,
                  LossTerms *out) {
    double *p = dalloc((size_t)n * d), *kn = dalloc((size_t)n * d), *np = dalloc((size_t)n), *nk = dalloc((size_t)n);
    double *g = dalloc((size_t)n * d), *logit = dalloc((size_t)K + 1);
    float *qf = calloc((size_t)n * d + 1, sizeof(float)), *neg = calloc((size_t)n * K + 1, sizeof(float));
    if (!qf || !neg) rsa_fatal("free memory", "out of memory");
    rows_normalize(n, d, q, p, np);
    rows_normalize(n, d, k, kn, nk);
    for (size_t i = 0; i < (size_t)n * d; i++) qf[i] = (float)p[i];
    /* q . queue^T through oneDNN's sgemm on the host (float: the largest product of the losses) */
    linear_cpu_forward(n, d, (int)K, qf, queue, NULL, neg);
    double loss = 0;
    for (int r = 0; r < n; r++) {
        const double *pr = p + (size_t)r * d;
        logit[0] = dot(d, pr, kn + (size_t)r * d) / tau;
        double mx = logit[0];
        for (int64_t j = 0; j < K; j++) logit[j + 1] = neg[(size_t)r * K + j] / tau, mx = fmax(mx, logit[j + 1]);
        double sum = 0;
        for (int64_t j = 0; j <= K; j++) logit[j] = exp(logit[j] - mx), sum += logit[j];
        loss += -log(logit[0] / sum);
        double *gr = g + (size_t)r * d;
        double c0 = (logit[0] / sum - 1) / (n * tau);
        for (int i = 0; i < d; i++) gr[i] = c0 * kn[(size_t)r * d + i];
        for (int64_t j = 0; j < K; j++) {
            double c = logit[j + 1] / sum / (n * tau);
            const float *v = queue + (size_t)j * d;
            for (int i = 0; i < d; i++) gr[i] += c * v[i];
        }
    }
    out->loss = loss / n, out->loss_w = out->loss_a = 0;
    normalize_backward(n, d, p, np, g, dq);
    free(p), free(kn), free(np), free(nk), free(g), free(logit), free(qf), free(neg);
}

void loss_simsiam(int n, int d, const float *p1, const float *p2, const float *z1, const float *z2, float *dp1,
                  float *dp2, LossTerms *out) {
    size_t nd = (size_t)n * d;
    double *a1 = dalloc(nd), *a2 = dalloc(nd), *b1 = dalloc(nd), *b2 = dalloc(nd), *g = dalloc(nd);
    double *n1 = dalloc((size_t)n), *n2 = dalloc((size_t)n), *nz = dalloc((size_t)n);
    rows_normalize(n, d, p1, a1, n1);
    rows_normalize(n, d, p2, a2, n2);
    rows_normalize(n, d, z1, b1, nz);
    rows_normalize(n, d, z2, b2, nz);
    double loss = 0;
    for (int r = 0; r < n; r++)
        loss += -(dot(d, a1 + (size_t)r * d, b2 + (size_t)r * d) + dot(d, a2 + (size_t)r * d, b1 + (size_t)r * d)) / 2;
    out->loss = loss / n, out->loss_w = out->loss_a = 0;
    for (size_t i = 0; i < nd; i++) g[i] = -0.5 / n * b2[i];
    normalize_backward(n, d, a1, n1, g, dp1);
    for (size_t i = 0; i < nd; i++) g[i] = -0.5 / n * b1[i];
    normalize_backward(n, d, a2, n2, g, dp2);
    free(a1), free(a2), free(b1), free(b2), free(g), free(n1), free(n2), free(nz);
}
