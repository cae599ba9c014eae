/* Linear layers through cuBLAS. cuBLAS is column-major: a row-major [r][c] matrix is its transpose there, so each
 * row-major product of linear_cpu.c is computed as the transposed product with the operands swapped. */
#include "cuda_util.h"
#include "ops_cuda.h"

void linear_cuda_forward(int n, int in, int out, const float *x, const float *w, const float *bias, float *y) {
    const float one = 1, zero = 0;
    /* y[n][out] = x[n][in] w[out][in]^T  <=>  y^T (out x n) = w (out x in, op T of the in x out view) x^T */
    CUBLAS_CHECK(cublasSgemm(cuda_cublas(), CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, w, in, x, in, &zero, y, out));
    if (bias) bias_cuda_add((size_t)n, out, bias, y);
}

void linear_cuda_backward(int n, int in, int out, const float *x, const float *w, const float *dy, float *dx,
                          float *dw, float *dbias) {
    const float one = 1, zero = 0;
    cublasHandle_t h = cuda_cublas();
    /* dx[n][in] = dy[n][out] w[out][in]  <=>  dx^T (in x n) = w^T (in x out) dy^T (out x n) */
    if (dx) CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, &one, w, in, dy, out, &zero, dx, in));
    /* dw[out][in] += dy^T x  <=>  dw^T (in x out) += x^T (in x n) dy (n x out, op T of the out x n view) */
    if (dw) CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, &one, x, in, dy, out, &one, dw, in));
    if (dbias) bias_cuda_backward((size_t)n, out, dy, dbias);
}
