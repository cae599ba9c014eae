/* Batch norm (+ fused ReLU) on NHWC, with the numerics of norm_cpu.c: two passes (the mean, then the centred
 * squares around the float mean), float sums within a chunk of rows and double across chunks, per-channel scale and
 * shift computed in double. The reductions are channel_reduce's, so the bits depend only on the shape. */
#include "channel_reduce.h"
#include "ops_cuda.h"

/* Per-channel scratch of one call, carved from the shared workspace after the chunk sums. */
typedef struct {
    float *partial;
    double *mean;  /* batch mean in double (train) */
    float *f[3];   /* scale, shift (forward) or the three coefficients of dx (backward) */
} BnScratch;

static BnScratch bn_scratch(int k, size_t rows, int c) {
    size_t partial = (reduce_partial_bytes(k, rows, c) + 255) & ~(size_t)255;
    size_t per_channel = ((sizeof(double) + 3 * sizeof(float)) * (size_t)c + 255) & ~(size_t)255;
    char *base = (char *)cuda_workspace(per_channel + partial);
    BnScratch s;
    s.mean = (double *)base;
    for (int i = 0; i < 3; i++) s.f[i] = (float *)(base + sizeof(double) * c) + (size_t)i * c;
    s.partial = (float *)(base + per_channel);
    return s;
}

struct LoadValue {
    const float *x;
    int c;
    __device__ void operator()(size_t r, int ch, float v[1]) const { v[0] = x[r * c + ch]; }
};

struct LoadCentredSquare {
    const float *x, *mean;
    int c;
    __device__ void operator()(size_t r, int ch, float v[1]) const {
        float d = x[r * c + ch] - mean[ch];
        v[0] = d * d;
    }
};

struct FinishMean {
    double count;
    double *mean;
    float *save_mean;
    __device__ void operator()(int ch, const double s[1]) const {
        mean[ch] = s[0] / count;
        save_mean[ch] = (float)mean[ch];
    }
};

struct FinishVariance {
    double count;
    float eps, momentum;
    const double *mean;
    const float *gamma, *beta;
    float *save_invstd, *scale, *shift, *rm, *rv;
    __device__ void operator()(int ch, const double s[1]) const {
        double invstd = 1.0 / sqrt(s[0] / count + eps);
        scale[ch] = (float)(gamma[ch] * invstd);
        shift[ch] = (float)(beta[ch] - mean[ch] * gamma[ch] * invstd);
        save_invstd[ch] = (float)invstd;
        if (rm) {
            /* torch moves the running variance towards the unbiased batch variance */
            double unbiased = count > 1 ? s[0] / (count - 1) : s[0] / count;
            rm[ch] = (float)((1.0 - momentum) * rm[ch] + (double)momentum * mean[ch]);
            rv[ch] = (float)((1.0 - momentum) * rv[ch] + (double)momentum * unbiased);
        }
    }
};

struct Normalise {
    const float *x, *scale, *shift;
    float *y;
    bool relu;
    __device__ void operator()(size_t i, int ch) const {
        float v = x[i] * scale[ch] + shift[ch];
        y[i] = relu && v < 0 ? 0.0f : v;
    }
};

void bn_cuda_forward_train(const BnShape *s, Layout l, bool relu, const float *x, const float *gamma,
                           const float *beta, float *y, float *save_mean, float *save_invstd, float momentum,
                           float *rm, float *rv) {
    cuda_require_nhwc(l, s->hw);
    const size_t rows = (size_t)s->n * s->hw;
    const double count = (double)rows;
    BnScratch t = bn_scratch(1, rows, s->c);
    channel_reduce<1>(rows, s->c, LoadValue{x, s->c}, FinishMean{count, t.mean, save_mean}, t.partial);
    channel_reduce<1>(rows, s->c, LoadCentredSquare{x, save_mean, s->c},
                      FinishVariance{count, s->eps, momentum, t.mean, gamma, beta, save_invstd, t.f[0], t.f[1], rm, rv},
                      t.partial);
    channel_map(rows, s->c, Normalise{x, t.f[0], t.f[1], y, relu});
}

__global__ void eval_coefficients_kernel(int c, float eps, const float *gamma, const float *beta, const float *rm,
                                         const float *rv, float *scale, float *shift) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    double invstd = 1.0 / sqrt((double)rv[ch] + eps);
    scale[ch] = (float)(gamma[ch] * invstd);
    shift[ch] = (float)(beta[ch] - rm[ch] * gamma[ch] * invstd);
}

void bn_cuda_forward_eval(const BnShape *s, Layout l, bool relu, const float *x, const float *gamma,
                          const float *beta, const float *rm, const float *rv, float *y) {
    cuda_require_nhwc(l, s->hw);
    const size_t rows = (size_t)s->n * s->hw;
    BnScratch t = bn_scratch(0, rows, s->c);
    eval_coefficients_kernel<<<(unsigned)((s->c + CUDA_THREADS - 1) / CUDA_THREADS), CUDA_THREADS>>>(
        s->c, s->eps, gamma, beta, rm, rv, t.f[0], t.f[1]);
    CUDA_CHECK_LAUNCH();
    channel_map(rows, s->c, Normalise{x, t.f[0], t.f[1], y, relu});
}

/* The gradient reaching the batch norm's output: the ReLU's mask comes from y. */
__device__ inline float masked_grad(bool relu, const float *y, const float *dy, size_t i) {
    return relu && !(y[i] > 0) ? 0.0f : dy[i];
}

struct LoadGrad {
    const float *x, *y, *dy, *mean;
    int c;
    bool relu;
    __device__ void operator()(size_t r, int ch, float v[2]) const {
        size_t i = r * c + ch;
        float d = masked_grad(relu, y, dy, i);
        v[0] = d;
        v[1] = d * (x[i] - mean[ch]);
    }
};

struct FinishGrad {
    double count;
    const float *gamma, *save_invstd;
    float *dgamma, *dbeta, *a, *k, *c0;
    __device__ void operator()(int ch, const double s[2]) const {
        double invstd = save_invstd[ch];
        if (dgamma) dgamma[ch] += (float)(s[1] * invstd);
        if (dbeta) dbeta[ch] += (float)s[0];
        /* dx = gamma invstd (dy - mean(dy)) - (x - mean) gamma invstd^3 mean(dy (x - mean)) */
        double ad = gamma[ch] * invstd;
        a[ch] = (float)ad;
        k[ch] = (float)(ad * invstd * invstd * s[1] / count);
        c0[ch] = (float)(-ad * s[0] / count);
    }
};

struct InputGrad {
    const float *x, *y, *dy, *mean, *a, *k, *c0;
    float *dx;
    bool relu;
    __device__ void operator()(size_t i, int ch) const {
        dx[i] = a[ch] * masked_grad(relu, y, dy, i) - k[ch] * (x[i] - mean[ch]) + c0[ch];
    }
};

void bn_cuda_backward(const BnShape *s, Layout l, bool relu, const float *x, const float *y, const float *dy,
                      const float *gamma, const float *save_mean, const float *save_invstd, float *dx, float *dgamma,
                      float *dbeta) {
    cuda_require_nhwc(l, s->hw);
    const size_t rows = (size_t)s->n * s->hw;
    BnScratch t = bn_scratch(2, rows, s->c);
    channel_reduce<2>(rows, s->c, LoadGrad{x, y, dy, save_mean, s->c, relu},
                      FinishGrad{(double)rows, gamma, save_invstd, dgamma, dbeta, t.f[0], t.f[1], t.f[2]}, t.partial);
    if (dx) channel_map(rows, s->c, InputGrad{x, y, dy, save_mean, t.f[0], t.f[1], t.f[2], dx, relu});
}
