/* Optimiser arithmetic of the cuda backend. Each element repeats optim_ref.c's operations with explicit roundings
 * (__fmul_rn and __fadd_rn are never contracted into an FMA), so a step has the cpu backend's bits (backend.h says
 * where torch's fused kernels differ in the last bit). The
 * sum of squares is reduced in a fixed order: fixed chunks, each summed in double by one block (fixed thread
 * stride, then a fixed tree), then the chunk sums by one block the same way. */
#include "cuda_util.h"
#include "ops_cuda.h"

__global__ void axpby_kernel(size_t n, float a, const float *x, float b, float *y) {
    GRID_STRIDE(i, n) y[i] = __fadd_rn(__fmul_rn(a, x[i]), __fmul_rn(b, y[i]));
}

void axpby_cuda(size_t n, float a, const float *x, float b, float *y) {
    axpby_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(n, a, x, b, y);
    CUDA_CHECK_LAUNCH();
}

__global__ void sgd_update_kernel(size_t n, float *w, const float *g, float *buf, float lr, float momentum, float wd,
                                  bool nesterov) {
    GRID_STRIDE(i, n) {
        float gp = __fadd_rn(g[i], __fmul_rn(wd, w[i]));
        float b = __fadd_rn(__fmul_rn(momentum, buf[i]), gp);
        buf[i] = b;
        float d = nesterov ? __fadd_rn(gp, __fmul_rn(momentum, b)) : b;
        w[i] = __fadd_rn(w[i], __fmul_rn(-lr, d));
    }
}

void sgd_update_cuda(size_t n, float *w, const float *g, float *buf, float lr, float momentum, float wd,
                     bool nesterov) {
    sgd_update_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(n, w, g, buf, lr, momentum, wd, nesterov);
    CUDA_CHECK_LAUNCH();
}

constexpr int SUMSQ_THREADS = 256, SUMSQ_CHUNK = 16 * SUMSQ_THREADS;

/* One block sums x[i]^2 (or partial[i] when x is NULL) over [0, n) in double into *out. */
__device__ void block_sum(size_t n, const float *x, const double *partial, double *out) {
    __shared__ double lanes[SUMSQ_THREADS];
    double s = 0;
    for (size_t i = threadIdx.x; i < n; i += SUMSQ_THREADS) s += x ? (double)x[i] * x[i] : partial[i];
    lanes[threadIdx.x] = s;
    __syncthreads();
    for (int half = SUMSQ_THREADS / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) lanes[threadIdx.x] += lanes[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) *out = lanes[0];
}

__global__ void sumsq_chunks_kernel(size_t n, const float *x, double *partial) {
    size_t from = (size_t)blockIdx.x * SUMSQ_CHUNK, len = n - from < SUMSQ_CHUNK ? n - from : SUMSQ_CHUNK;
    block_sum(len, x + from, NULL, &partial[blockIdx.x]);
}

__global__ void sumsq_combine_kernel(size_t chunks, const double *partial, double *out) {
    block_sum(chunks, NULL, partial, out);
}

double sumsq_cuda(size_t n, const float *x) {
    if (n == 0) return 0;
    size_t chunks = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
    double *partial = (double *)cuda_workspace(sizeof(double) * (chunks + 1)), *total = partial + chunks, result;
    sumsq_chunks_kernel<<<(unsigned)chunks, SUMSQ_THREADS>>>(n, x, partial);
    CUDA_CHECK_LAUNCH();
    sumsq_combine_kernel<<<1, SUMSQ_THREADS>>>(chunks, partial, total);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpy(&result, total, sizeof result, cudaMemcpyDeviceToHost));
    return result;
}
