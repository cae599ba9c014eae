/* Elementwise kernels and biases of the cuda backend. Only the bias gradient reduces, through channel_reduce's fixed
 * order. */
#include "channel_reduce.h"
#include "ops_cuda.h"
#include "round_device.h"

__global__ void relu_forward_kernel(size_t n, const float *x, float *y) {
    GRID_STRIDE(i, n) y[i] = x[i] < 0 ? 0.0f : x[i]; /* NaN and -0 pass, as relu_forward_ref */
}

__global__ void relu_backward_kernel(size_t n, const float *y, const float *dy, float *dx) {
    GRID_STRIDE(i, n) dx[i] = y[i] <= 0 ? 0.0f : dy[i];
}

__global__ void add_kernel(size_t n, const float *a, const float *b, float *y, bool relu, Precision round) {
    GRID_STRIDE(i, n) {
        float v = a[i] + b[i];
        y[i] = round_lowp_device(round, relu && v < 0 ? 0.0f : v);
    }
}

__global__ void round_bf16_kernel(size_t n, float *x) {
    GRID_STRIDE(i, n) x[i] = round_lowp_device(PRECISION_BF16, x[i]);
}

__global__ void round_fp16_kernel(size_t n, float *x) {
    GRID_STRIDE(i, n) x[i] = round_lowp_device(PRECISION_FP16, x[i]);
}

void round_lowp_cuda(Precision p, size_t n, float *x) {
    if (p == PRECISION_FP32) return;
    if (p == PRECISION_BF16)
        round_bf16_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(n, x);
    else
        round_fp16_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(n, x);
    CUDA_CHECK_LAUNCH();
}

/* 16-bit copies for the tensor-core convolutions: narrowing rounds as round_lowp (exact for values already in the
 * format), widening is exact. */
__global__ void to_bf16_kernel(size_t n, const float *x, __nv_bfloat16 *y) {
    GRID_STRIDE(i, n) y[i] = __float2bfloat16_rn(x[i]);
}

__global__ void to_fp16_kernel(size_t n, const float *x, __half *y) {
    GRID_STRIDE(i, n) y[i] = __float2half_rn(x[i]);
}

__global__ void from_bf16_kernel(size_t n, const __nv_bfloat16 *x, float *y) {
    GRID_STRIDE(i, n) y[i] = __bfloat162float(x[i]);
}

__global__ void from_fp16_kernel(size_t n, const __half *x, float *y) {
    GRID_STRIDE(i, n) y[i] = __half2float(x[i]);
}

void to_lowp_cuda(Precision p, size_t n, const float *x, void *y) {
    RSA_ASSERT(p != PRECISION_FP32);
    if (p == PRECISION_BF16)
        to_bf16_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(n, x, (__nv_bfloat16 *)y);
    else
        to_fp16_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(n, x, (__half *)y);
    CUDA_CHECK_LAUNCH();
}

void from_lowp_cuda(Precision p, size_t n, const void *x, float *y) {
    RSA_ASSERT(p != PRECISION_FP32);
    if (p == PRECISION_BF16)
        from_bf16_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(n, (const __nv_bfloat16 *)x, y);
    else
        from_fp16_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(n, (const __half *)x, y);
    CUDA_CHECK_LAUNCH();
}

void relu_cuda_forward(size_t n, const float *x, float *y) {
    relu_forward_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(n, x, y);
    CUDA_CHECK_LAUNCH();
}

void relu_cuda_backward(size_t n, const float *y, const float *dy, float *dx) {
    relu_backward_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(n, y, dy, dx);
    CUDA_CHECK_LAUNCH();
}

void add_cuda_forward(size_t n, const float *a, const float *b, float *y, bool relu, Precision round) {
    add_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(n, a, b, y, relu, round);
    CUDA_CHECK_LAUNCH();
}

void accumulate_cuda(size_t n, float *y, const float *x) {
    add_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(n, y, x, y, false, PRECISION_FP32);
    CUDA_CHECK_LAUNCH();
}

__global__ void accumulate_lowp_kernel(size_t n, float *y, const float *x, Precision p) {
    GRID_STRIDE(i, n) y[i] = round_lowp_device(p, y[i] + round_lowp_device(p, x[i]));
}

void accumulate_lowp_cuda(Precision p, size_t n, float *y, const float *x) {
    RSA_ASSERT(p != PRECISION_FP32);
    accumulate_lowp_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(n, y, x, p);
    CUDA_CHECK_LAUNCH();
}

struct AddBias {
    const float *bias;
    float *y;
    __device__ void operator()(size_t i, int ch) const { y[i] += bias[ch]; }
};

void bias_cuda_add(size_t rows, int c, const float *bias, float *y) { channel_map(rows, c, AddBias{bias, y}); }

struct LoadRow {
    const float *x;
    int c;
    __device__ void operator()(size_t r, int ch, float v[1]) const { v[0] = x[r * c + ch]; }
};

struct AccumulateSum {
    float *sum;
    __device__ void operator()(int ch, const double s[1]) const { sum[ch] += (float)s[0]; }
};

void bias_cuda_backward(size_t rows, int c, const float *dy, float *dbias) {
    float *partial = (float *)cuda_workspace(reduce_partial_bytes(1, rows, c));
    channel_reduce<1>(rows, c, LoadRow{dy, c}, AccumulateSum{dbias}, partial);
}
