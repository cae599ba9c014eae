/* Max and global average pooling on NHWC. Max pooling's backward gathers instead of scattering: each input element
 * visits the windows that cover it, finds again which element won each (the first maximum in scan order, as
 * PyTorch's CPU kernel and ops/ref) and adds the gradients of the windows it won in output order, the order the
 * reference scatters in. No atomics, and the same bits as the CPU backends. */
#include "cuda_util.h"
#include "ops_cuda.h"

/* Index iy * wi + ix of the first maximum of window (oy, ox) of one channel of image xn; padding never wins. */
__device__ int window_argmax(const PoolShape s, const float *xn, int ch, int oy, int ox, float *best_out) {
    float best = 0;
    int arg = -1;
    for (int ky = 0; ky < s.k; ky++) {
        int iy = oy * s.stride - s.pad + ky;
        if (iy < 0 || iy >= s.hi) continue;
        for (int kx = 0; kx < s.k; kx++) {
            int ix = ox * s.stride - s.pad + kx;
            if (ix < 0 || ix >= s.wi) continue;
            float v = xn[((size_t)iy * s.wi + ix) * s.c + ch];
            if (arg < 0 || v > best) best = v, arg = iy * s.wi + ix;
        }
    }
    *best_out = best;
    return arg;
}

__global__ void maxpool_forward_kernel(const PoolShape s, const float *x, float *y) {
    const size_t total = (size_t)s.n * s.ho * s.wo * s.c;
    GRID_STRIDE(i, total) {
        int ch = (int)(i % s.c);
        size_t pix = i / s.c;
        int ox = (int)(pix % s.wo), oy = (int)(pix / s.wo % s.ho), n = (int)(pix / s.wo / s.ho);
        float best;
        window_argmax(s, x + (size_t)n * s.hi * s.wi * s.c, ch, oy, ox, &best);
        y[i] = best;
    }
}

__global__ void maxpool_backward_kernel(const PoolShape s, const float *x, const float *dy, float *dx) {
    const size_t total = (size_t)s.n * s.hi * s.wi * s.c;
    GRID_STRIDE(i, total) {
        int ch = (int)(i % s.c);
        size_t pix = i / s.c;
        int ix = (int)(pix % s.wi), iy = (int)(pix / s.wi % s.hi), n = (int)(pix / s.wi / s.hi);
        const float *xn = x + (size_t)n * s.hi * s.wi * s.c;
        const float *dyn = dy + (size_t)n * s.ho * s.wo * s.c;
        /* windows oy with oy * stride - pad <= iy <= oy * stride - pad + k - 1, likewise ox */
        int lo_y = iy + s.pad - s.k + 1, lo_x = ix + s.pad - s.k + 1;
        int oy0 = lo_y <= 0 ? 0 : (lo_y + s.stride - 1) / s.stride, oy1 = min(s.ho - 1, (iy + s.pad) / s.stride);
        int ox0 = lo_x <= 0 ? 0 : (lo_x + s.stride - 1) / s.stride, ox1 = min(s.wo - 1, (ix + s.pad) / s.stride);
        float acc = 0;
        float best;
        for (int oy = oy0; oy <= oy1; oy++)
            for (int ox = ox0; ox <= ox1; ox++)
                if (window_argmax(s, xn, ch, oy, ox, &best) == iy * s.wi + ix)
                    acc += dyn[((size_t)oy * s.wo + ox) * s.c + ch];
        dx[i] = acc;
    }
}

void maxpool_cuda_forward(const PoolShape *s, Layout l, const float *x, float *y) {
    cuda_require_nhwc(l, s->hi * s->wi);
    maxpool_forward_kernel<<<cuda_blocks((size_t)s->n * s->ho * s->wo * s->c), CUDA_THREADS>>>(*s, x, y);
    CUDA_CHECK_LAUNCH();
}

void maxpool_cuda_backward(const PoolShape *s, Layout l, const float *x, const float *dy, float *dx) {
    cuda_require_nhwc(l, s->hi * s->wi);
    maxpool_backward_kernel<<<cuda_blocks((size_t)s->n * s->hi * s->wi * s->c), CUDA_THREADS>>>(*s, x, dy, dx);
    CUDA_CHECK_LAUNCH();
}

/* One thread per (image, channel), pixels in order in float: the CPU backend's order. */
__global__ void gap_forward_kernel(int n, int c, int hw, const float *x, float *y) {
    GRID_STRIDE(i, (size_t)n * c) {
        size_t img = i / c;
        int ch = (int)(i % c);
        const float *xp = x + img * hw * c + ch;
        float acc = 0;
        for (int p = 0; p < hw; p++) acc += xp[(size_t)p * c];
        y[i] = acc / (float)hw;
    }
}

__global__ void gap_backward_kernel(int n, int c, int hw, const float *dy, float *dx) {
    GRID_STRIDE(i, (size_t)n * hw * c) dx[i] = dy[i / ((size_t)hw * c) * c + i % c] / (float)hw;
}

void gap_cuda_forward(int n, int c, int hw, Layout l, const float *x, float *y) {
    cuda_require_nhwc(l, hw);
    gap_forward_kernel<<<cuda_blocks((size_t)n * c), CUDA_THREADS>>>(n, c, hw, x, y);
    CUDA_CHECK_LAUNCH();
}

void gap_cuda_backward(int n, int c, int hw, Layout l, const float *dy, float *dx) {
    cuda_require_nhwc(l, hw);
    gap_backward_kernel<<<cuda_blocks((size_t)n * hw * c), CUDA_THREADS>>>(n, c, hw, dy, dx);
    CUDA_CHECK_LAUNCH();
}
