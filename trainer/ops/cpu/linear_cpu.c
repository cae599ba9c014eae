/* Linear layers through oneDNN's row-major sgemm (its JIT picks AVX-512 here; OpenBLAS is pinned to its AVX2
 * kernels on these machines by OPENBLAS_CORETYPE=Haswell and runs at half the speed). */
#include "ops_cpu.h"

#include "dnnl_util.h"
#include "../ref/ops_ref.h"

#include <stdlib.h>

void linear_cpu_forward(int n, int in, int out, const float *x, const float *w, const float *bias, float *y) {
    /* y[n][out] = x[n][in] . w[out][in]^T */
    DNNL_CHECK(dnnl_sgemm('N', 'T', n, out, in, 1.0f, x, in, w, in, 0.0f, y, out));
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int r = 0; r < n; r++)
            for (int o = 0; o < out; o++) y[(size_t)r * out + o] += bias[o];
    }
}

void linear_cpu_backward(int n, int in, int out, const float *x, const float *w, const float *dy, float *dx,
                         float *dw, float *dbias) {
    if (dx) DNNL_CHECK(dnnl_sgemm('N', 'N', n, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in));
    if (dw) DNNL_CHECK(dnnl_sgemm('T', 'N', out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in));
    if (dbias) {
        /* one thread per output column, rows in order: deterministic */
#pragma omp parallel for schedule(static)
        for (int o = 0; o < out; o++) {
            double acc = 0;
            for (int r = 0; r < n; r++) acc += dy[(size_t)r * out + o];
            dbias[o] += (float)acc;
        }
    }
}

/* The reference's rows in parallel, their losses summed in row order afterwards: the reference's bits. */
double softmax_xent_cpu(int n, int c, const float *logits, const int *labels, float *dlogits) {
    double *loss = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    if (!loss) rsa_fatal("free memory", "out of memory for %d losses", n);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++) {
        float *drow = dlogits ? dlogits + (size_t)r * c : NULL;
        loss[r] = softmax_xent_row_ref(c, logits + (size_t)r * c, labels[r], n, drow);
    }
    double total = 0;
    for (int r = 0; r < n; r++) total += loss[r];
    free(loss);
    return total / n;
}
