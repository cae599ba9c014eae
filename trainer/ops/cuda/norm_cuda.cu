/* Batch norm (+ fused ReLU) on NHWC, with the numerics of norm_cpu.c: two passes (the mean, then the centred
 * squares around the float mean), float sums within a chunk of rows and double across chunks, and
 * y = (x - mean) (gamma invstd) + beta from the saved float statistics. The reductions are channel_reduce's, so the
 * bits depend only on the shape.
 *
 * Every rounding of y is explicit (__fsub_rn and friends are never contracted into an FMA), so the training
 * forward, bn_apply and the ReLU mask that backward rebuilds from x agree bit for bit; backward never reads y. */
#include "channel_reduce.h"
#include "ops_cuda.h"
#include "round_device.h"

__device__ inline float bn_value(float x, float mean, float scale, float shift) {
    return __fadd_rn(__fmul_rn(__fsub_rn(x, mean), scale), shift);
}

/* Per-channel scratch of one call, carved from the shared workspace ahead of the chunk sums. */
typedef struct {
    double *mean; /* batch mean in double (train) */
    double *sums; /* SyncBN: up to two sums per channel, between the local reduction and the all-reduce */
    float *f[4];  /* the scale gamma invstd, then the three coefficients of dx (backward) */
    float *partial;
} BnScratch;

static BnScratch bn_scratch(int k, size_t rows, int c) {
    size_t per_channel = ((3 * sizeof(double) + 4 * sizeof(float)) * (size_t)c + 255) & ~(size_t)255;
    char *base = (char *)cuda_workspace(per_channel + reduce_partial_bytes(k, rows, c));
    BnScratch s;
    s.mean = (double *)base;
    s.sums = s.mean + c;
    for (int i = 0; i < 4; i++) s.f[i] = (float *)(base + 3 * sizeof(double) * c) + (size_t)i * c;
    s.partial = (float *)(base + per_channel);
    return s;
}

/* SyncBN: the K per-channel sums are stored, summed over the processes on the host, and then finished. */
template <int K>
struct StoreSums {
    double *out;
    int c;
    __device__ void operator()(int ch, const double s[K]) const {
        for (int k = 0; k < K; k++) out[(size_t)k * c + ch] = s[k];
    }
};

template <int K, class Finish>
__global__ void finish_sums_kernel(int c, const double *sums, Finish finish) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    double s[K];
    for (int k = 0; k < K; k++) s[k] = sums[(size_t)k * c + ch];
    finish(ch, s);
}

template <int K, class Finish>
static void finish_sums(int c, const double *sums, Finish finish) {
    finish_sums_kernel<K, Finish><<<(unsigned)((c + CUDA_THREADS - 1) / CUDA_THREADS), CUDA_THREADS>>>(c, sums, finish);
    CUDA_CHECK_LAUNCH();
}

/* Sums the K x c doubles at dev over all processes: on the device when the run has a device all-reduce, else through
 * the host (which waits for the GPU to finish everything queued). */
static void allreduce_device(const BnSync *sync, double *dev, int n) {
    if (sync->allreduce_device) {
        sync->allreduce_device(sync->ctx, dev, n);
        return;
    }
    double *host = (double *)malloc(sizeof(double) * (size_t)n);
    if (!host) rsa_fatal("free memory", "out of memory");
    CUDA_CHECK(cudaMemcpy(host, dev, sizeof(double) * (size_t)n, cudaMemcpyDeviceToHost));
    sync->allreduce(sync->ctx, host, n);
    CUDA_CHECK(cudaMemcpy(dev, host, sizeof(double) * (size_t)n, cudaMemcpyHostToDevice));
    free(host);
}

/* channel_reduce, with the totals summed over the processes first when sync is set. */
template <int K, class Load, class Finish>
static void reduce_maybe_synced(size_t rows, int c, Load load, Finish finish, const BnScratch &t, const BnSync *sync) {
    if (!sync) {
        channel_reduce<K>(rows, c, load, finish, t.partial);
        return;
    }
    channel_reduce<K>(rows, c, load, StoreSums<K>{t.sums, c}, t.partial);
    allreduce_device(sync, t.sums, K * c);
    finish_sums<K>(c, t.sums, finish);
}

/* scale = gamma invstd, one float product as norm_cpu.c forms it. */
__global__ void bn_scale_kernel(int c, const float *gamma, const float *invstd, float *scale) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch < c) scale[ch] = __fmul_rn(gamma[ch], invstd[ch]);
}

static void bn_scale(int c, const float *gamma, const float *invstd, float *scale) {
    bn_scale_kernel<<<(unsigned)((c + CUDA_THREADS - 1) / CUDA_THREADS), CUDA_THREADS>>>(c, gamma, invstd, scale);
    CUDA_CHECK_LAUNCH();
}

struct Normalise {
    const float *x, *mean, *scale, *shift;
    float *y;
    bool relu;
    Precision round;
    __device__ void operator()(size_t i, int ch) const {
        float v = bn_value(x[i], mean[ch], scale[ch], shift[ch]);
        y[i] = round_lowp_device(round, relu && v < 0 ? 0.0f : v);
    }
};

struct LoadValue {
    const float *x;
    int c;
    __device__ void operator()(size_t r, int ch, float v[1]) const { v[0] = x[r * c + ch]; }
};

struct LoadCentredSquare {
    const float *x, *mean;
    int c;
    __device__ void operator()(size_t r, int ch, float v[1]) const {
        float d = __fsub_rn(x[r * c + ch], mean[ch]);
        v[0] = __fmul_rn(d, d); /* rounded before the sum adds it, as in C (no FMA): norm_cpu.c's terms */
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
    float *save_invstd, *rm, *rv;
    __device__ void operator()(int ch, const double s[1]) const {
        save_invstd[ch] = (float)(1.0 / sqrt(s[0] / count + eps));
        if (rm) {
            /* torch moves the running variance towards the unbiased batch variance */
            double unbiased = count > 1 ? s[0] / (count - 1) : s[0] / count;
            /* each product and the sum rounded on its own, as norm_cpu.c (nvcc would fuse them into an FMA) */
            rm[ch] = (float)__dadd_rn(__dmul_rn(1.0 - momentum, rm[ch]), __dmul_rn(momentum, mean[ch]));
            rv[ch] = (float)__dadd_rn(__dmul_rn(1.0 - momentum, rv[ch]), __dmul_rn(momentum, unbiased));
        }
    }
};

void bn_cuda_forward_train(const BnShape *s, Layout l, bool relu, const float *x, const float *gamma,
                           const float *beta, float *y, float *save_mean, float *save_invstd, float momentum,
                           float *rm, float *rv, const BnSync *sync) {
    cuda_require_nhwc(l, s->hw);
    const size_t rows = (size_t)s->n * s->hw;
    const double count = (double)rows * (sync ? sync->world : 1);
    BnScratch t = bn_scratch(1, rows, s->c);
    reduce_maybe_synced<1>(rows, s->c, LoadValue{x, s->c}, FinishMean{count, t.mean, save_mean}, t, sync);
    reduce_maybe_synced<1>(rows, s->c, LoadCentredSquare{x, save_mean, s->c},
                           FinishVariance{count, s->eps, momentum, t.mean, save_invstd, rm, rv}, t, sync);
    bn_scale(s->c, gamma, save_invstd, t.f[0]);
    channel_map(rows, s->c, Normalise{x, save_mean, t.f[0], beta, y, relu, s->round});
}

void bn_cuda_apply(const BnShape *s, Layout l, bool relu, const float *x, const float *gamma, const float *beta,
                   const float *save_mean, const float *save_invstd, float *y) {
    cuda_require_nhwc(l, s->hw);
    BnScratch t = bn_scratch(0, 0, s->c);
    bn_scale(s->c, gamma, save_invstd, t.f[0]);
    channel_map((size_t)s->n * s->hw, s->c, Normalise{x, save_mean, t.f[0], beta, y, relu, s->round});
}

/* scale = gamma / sqrt(running_var + eps), rounded once from double as norm_cpu.c does. */
__global__ void eval_scale_kernel(int c, float eps, const float *gamma, const float *rv, float *scale) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch < c) scale[ch] = (float)(gamma[ch] * (1.0 / sqrt((double)rv[ch] + eps)));
}

void bn_cuda_forward_eval(const BnShape *s, Layout l, bool relu, const float *x, const float *gamma,
                          const float *beta, const float *rm, const float *rv, float *y) {
    cuda_require_nhwc(l, s->hw);
    BnScratch t = bn_scratch(0, 0, s->c);
    eval_scale_kernel<<<(unsigned)((s->c + CUDA_THREADS - 1) / CUDA_THREADS), CUDA_THREADS>>>(s->c, s->eps, gamma,
                                                                                                rv, t.f[0]);
    CUDA_CHECK_LAUNCH();
    channel_map((size_t)s->n * s->hw, s->c, Normalise{x, rm, t.f[0], beta, y, relu, s->round});
}

/* The gradient reaching the batch norm's output; the ReLU cuts it where y <= 0 (a NaN passes, as
 * relu_backward_ref), rebuilt from x as the forward made y. */
struct MaskedGrad {
    const float *x, *dy, *mean, *scale, *beta;
    bool relu;
    float zero; /* lowp_zero_bound: a smaller value's rounded output is 0 */
    __device__ float operator()(size_t i, int ch) const {
        return relu && bn_value(x[i], mean[ch], scale[ch], beta[ch]) <= zero ? 0.0f : dy[i];
    }
};

struct LoadGrad {
    MaskedGrad grad;
    int c;
    __device__ void operator()(size_t r, int ch, float v[2]) const {
        size_t i = r * c + ch;
        float d = grad(i, ch);
        v[0] = d;
        v[1] = __fmul_rn(d, __fsub_rn(grad.x[i], grad.mean[ch]));
    }
};

/* This process's share of dgamma and dbeta (SyncBN: from the local sums). */
struct FinishParamGrad {
    const float *save_invstd;
    float *dgamma, *dbeta;
    __device__ void operator()(int ch, const double s[2]) const {
        if (dgamma) dgamma[ch] += (float)(s[1] * (double)save_invstd[ch]);
        if (dbeta) dbeta[ch] += (float)s[0];
    }
};

/* The coefficients of dx (SyncBN: from the sums over all processes). */
struct FinishCoefficients {
    double count;
    const float *gamma, *save_invstd;
    float *a, *k, *c0;
    __device__ void operator()(int ch, const double s[2]) const {
        double invstd = save_invstd[ch];
        /* dx = gamma invstd (dy - mean(dy)) - (x - mean) gamma invstd^3 mean(dy (x - mean)) */
        double ad = gamma[ch] * invstd;
        a[ch] = (float)ad;
        k[ch] = (float)(ad * invstd * invstd * s[1] / count);
        c0[ch] = (float)(-ad * s[0] / count);
    }
};

struct FinishGrad {
    FinishParamGrad param;
    FinishCoefficients coef;
    __device__ void operator()(int ch, const double s[2]) const {
        param(ch, s);
        coef(ch, s);
    }
};

struct InputGrad {
    MaskedGrad grad;
    const float *a, *k, *c0;
    float *dx;
    Precision round;
    __device__ void operator()(size_t i, int ch) const {
        /* the cpu backend's arithmetic, each step rounded (no contraction into fma) */
        float xc = __fsub_rn(grad.x[i], grad.mean[ch]);
        float v = __fadd_rn(__fsub_rn(__fmul_rn(a[ch], grad(i, ch)), __fmul_rn(k[ch], xc)), c0[ch]);
        dx[i] = round_lowp_device(round, v);
    }
};

void bn_cuda_backward(const BnShape *s, Layout l, bool relu, const float *x, const float *y, const float *dy,
                      const float *gamma, const float *beta, const float *save_mean, const float *save_invstd,
                      float *dx, float *dgamma, float *dbeta, const BnSync *sync) {
    (void)y; /* the mask comes from x: one tensor less to read */
    cuda_require_nhwc(l, s->hw);
    const size_t rows = (size_t)s->n * s->hw;
    BnScratch t = bn_scratch(2, rows, s->c);
    bn_scale(s->c, gamma, save_invstd, t.f[0]);
    MaskedGrad grad{x, dy, save_mean, t.f[0], beta, relu, lowp_zero_bound(s->round)};
    FinishParamGrad param{save_invstd, dgamma, dbeta};
    FinishCoefficients coef{(double)rows * (sync ? sync->world : 1), gamma, save_invstd, t.f[1], t.f[2], t.f[3]};
    if (sync) {
        channel_reduce<2>(rows, s->c, LoadGrad{grad, s->c}, StoreSums<2>{t.sums, s->c}, t.partial);
        finish_sums<2>(s->c, t.sums, param);
        if (dx) { /* the all-reduced sums only serve dx (every rank has the same dx, so all take this branch) */
            allreduce_device(sync, t.sums, 2 * s->c);
            finish_sums<2>(s->c, t.sums, coef);
        }
    } else {
        channel_reduce<2>(rows, s->c, LoadGrad{grad, s->c}, FinishGrad{param, coef}, t.partial);
    }
    if (dx) channel_map(rows, s->c, InputGrad{grad, t.f[1], t.f[2], t.f[3], dx, s->round});
}
