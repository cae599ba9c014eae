/* A backend is the table of ops a model runs on: the reference (plain loops, NCHW), the CPU fast path (oneDNN,
 * channel-blocked layout, OpenMP) or CUDA (cuDNN/cuBLAS, NHWC). Pointers handed to a backend's ops live where the
 * backend computes (host memory for ref and cpu, device memory for cuda); every op follows the conventions of
 * ops/ref/ops_ref.h (parameter gradients accumulate, input gradients overwrite, NULL = not needed).
 *
 * Ops that carry state between calls (a convolution's primitives and reordered weights) take an opaque handle made
 * for one shape; the batch size n of a call may be any value up to the shape's n. */
#ifndef RSA_BACKEND_H
#define RSA_BACKEND_H

#include "../core/layout.h"
#include "../core/precision.h"
#include "../ops/shapes.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ConvOp ConvOp;

enum { UPLOAD_SLOTS = 4 }; /* a step's views */

/* SyncBN: the batch statistics of a data-parallel run, summed over its processes (each with an equal share of the
 * batch) between a batch norm's passes. NULL: this process's batch alone. */
typedef struct BnSync {
    void (*allreduce)(void *ctx, double *sums, int n); /* in place, host memory */
    void *ctx;
    int world;
    /* In place on a device backend's memory, queued behind the ops before it (NCCL): no round trip through the
     * host, which would stall the GPU at every batch norm. NULL: the backend copies the sums through allreduce. */
    void (*allreduce_device)(void *ctx, double *sums, int n);
} BnSync;

typedef struct Backend {
    const char *name;
    bool host_memory; /* its pointers are host memory (ref, cpu): callers may pass host buffers directly */
    /* Layout the backend keeps a c-channel activation of hw pixels in. */
    Layout (*act_layout)(int c, int hw);

    /* Memory where the backend computes. alloc returns zero-filled memory or NULL (with rsa_fail). */
    void *(*alloc)(size_t bytes);
    void (*release)(void *p, size_t bytes);
    void (*upload)(void *dst, const void *host_src, size_t bytes);
    void (*download)(void *host_dst, const void *src, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes); /* dst and src must not overlap (cudaMemcpy) */
    void (*zero)(void *p, size_t bytes);
    void (*sync)(void);
    /* Host memory that uploads read fastest (page-locked on cuda; where pinning fails, plain memory, only slower):
     * zero-filled, NULL with rsa_fail. The loader keeps its batches in it. */
    void *(*host_alloc)(size_t bytes);
    void (*host_free)(void *p, size_t bytes);
    /* An upload in the background, tracked in one of UPLOAD_SLOTS slots: the copy starts once the work queued
     * before this call is done (dst may still be in use when it is made) and runs beside the work queued after it;
     * wait_upload(slot) makes the work queued after the wait start only when the slot's last copy is done. host_src
     * must stay unchanged until a download queued after the wait has returned. Host-memory backends copy at once. */
    void (*upload_async)(int slot, void *dst, const void *host_src, size_t bytes);
    void (*wait_upload)(int slot);

    /* Convolution from layout `in` to layout `out`; weights are OIHW ([co][ci][k][k]) as torchvision's. */
    ConvOp *(*conv_create)(const ConvShape *s, Layout in, Layout out, bool bias);
    void (*conv_destroy)(ConvOp *op);
    void (*conv_forward)(ConvOp *op, int n, const float *x, const float *w, const float *bias, float *y);
    /* May reuse what the conv_backward_weights call just before it on the same op and dy made of dy (the cpu
     * backend's bf16 copy, the cuda backend's 16-bit one): dy must not change between the two calls. */
    void (*conv_backward_data)(ConvOp *op, int n, const float *dy, const float *w, float *dx);
    void (*conv_backward_weights)(ConvOp *op, int n, const float *x, const float *dy, float *dw, float *dbias);
    /* Tells the op its weights changed (after an optimiser step), so cached copies are stale. */
    void (*conv_weights_changed)(ConvOp *op);
    /* Tells the op the precision of the network it serves. At bf16 or fp16 every x, dy and weight it is handed is
     * representable in that format (the network rounds them, core/precision.h), so it may compute with that
     * format's operands and fp32 sums: the same products as fp32 arithmetic on the rounded values, summed in
     * another order. FP32 (the default) and backends without such kernels: fp32 arithmetic. */
    void (*conv_set_precision)(ConvOp *op, Precision p);
    /* Tells the op whether the network rounds each weight gradient it hands back to p (lowp_weight_grads: as
     * autocast's 16-bit kernels return them), FP32 (the default) when not. With p bf16 or fp16 the op may compute
     * the weight gradient as p's result of fp32 sums (tensor cores on cuda): rounding it again changes nothing. */
    void (*conv_set_weight_grad_precision)(ConvOp *op, Precision p);

    /* Batch norm with an optional ReLU after it (y = max(0, bn(x))), y and dx rounded to s->round (a mixed-precision
     * network's rounding in the same pass, the same bits as round_lowp after the op). With sync, mean and variance
     * are over all processes' batches. */
    void (*bn_forward_train)(const BnShape *s, Layout l, bool relu, const float *x, const float *gamma,
                             const float *beta, float *y, float *save_mean, float *save_invstd, float momentum,
                             float *running_mean, float *running_var, const BnSync *sync);
    void (*bn_forward_eval)(const BnShape *s, Layout l, bool relu, const float *x, const float *gamma,
                            const float *beta, const float *running_mean, const float *running_var, float *y);
    /* Normalises with given batch statistics (no update): rebuilds a training-mode output in backward; must
     * reproduce bn_forward_train's y bit for bit from its save_mean and save_invstd. */
    void (*bn_apply)(const BnShape *s, Layout l, bool relu, const float *x, const float *gamma, const float *beta,
                     const float *save_mean, const float *save_invstd, float *y);
    /* y is the forward output (its ReLU mask); a backend may instead rebuild the mask from x, gamma and beta.
     * With sync, dx uses the sums over all processes and dgamma/dbeta get this process's share (the gradient
     * all-reduce adds the shares), as torch's SyncBatchNorm. */
    void (*bn_backward)(const BnShape *s, Layout l, bool relu, const float *x, const float *y, const float *dy,
                        const float *gamma, const float *beta, const float *save_mean, const float *save_invstd,
                        float *dx, float *dgamma, float *dbeta, const BnSync *sync);

    void (*relu_forward)(size_t n, const float *x, float *y);
    void (*relu_backward)(size_t n, const float *y, const float *dy, float *dx);
    /* y = a + b, then ReLU when relu is set, then rounded to `round` (as round_lowp; FP32: not rounded). */
    void (*add_forward)(size_t n, const float *a, const float *b, float *y, bool relu, Precision round);
    /* y += x */
    void (*accumulate)(size_t n, float *y, const float *x);
    /* y = round_to(p, y + round_to(p, x)) (p bf16 or fp16): a parameter gradient summed in the 16-bit format, as
     * autograd sums the gradients of autocast's cached 16-bit weight copy over the passes that used it. */
    void (*accumulate_lowp)(Precision p, size_t n, float *y, const float *x);
    /* x = round_to(p, x) in place (core/precision.h): what a mixed-precision network does to what it writes. */
    void (*round_lowp)(Precision p, size_t n, float *x);
    /* 16-bit copies of a mixed-precision network's values (p bf16 or fp16): y16[i] = lowp_bits(p, x[i]), and
     * y[i] = lowp_value(p, x16[i]) (core/precision.h); exact both ways for values already rounded to p. */
    void (*to_lowp)(Precision p, size_t n, const float *x, uint16_t *y16);
    void (*from_lowp)(Precision p, size_t n, const uint16_t *x16, float *y);

    void (*maxpool_forward)(const PoolShape *s, Layout l, const float *x, float *y);
    void (*maxpool_backward)(const PoolShape *s, Layout l, const float *x, const float *dy, float *dx);
    /* x in layout l, y is [n][c]. */
    void (*gap_forward)(int n, int c, int hw, Layout l, const float *x, float *y);
    void (*gap_backward)(int n, int c, int hw, Layout l, const float *dy, float *dx);

    void (*linear_forward)(int n, int in, int out, const float *x, const float *w, const float *bias, float *y);
    void (*linear_backward)(int n, int in, int out, const float *x, const float *w, const float *dy, float *dx,
                            float *dw, float *dbias);

    /* Optimisers and the EMA target, on flat parameter arrays. Each element is computed with the operations of
     * torch's in-place tensor ops, in this order, every product and sum rounded to float on its own, the same on
     * every backend. torch's kernels for add(x, alpha=a) round a x + y once (an FMA: ATen's vec::fmadd on the CPU,
     * nvcc's contraction on CUDA), so its SGD step can differ by one rounding of the terms: against torch 1.13, one
     * step with weight decay and momentum gives 2.3 % of momentum buffers and 0.3 % of weights that differ
     * (tests/ops/test_ops_torch.c test_optimiser holds every backend to that bound). The EMA (mul, mul, add) has
     * torch's bits (the same test). */
    /* y = a x + b y, computed as fl(fl(a x) + fl(b y)) */
    void (*axpby)(size_t n, float a, const float *x, float b, float *y);
    /* torch.optim.SGD: g' = g + wd w; buf = momentum buf + g'; w = w - lr (nesterov ? g' + momentum buf : buf) */
    void (*sgd_update)(size_t n, float *w, const float *g, float *buf, float lr, float momentum, float wd,
                       bool nesterov);
    /* Sum of squares in double, reduced in a fixed order (no dependence on thread count). */
    double (*sumsq)(size_t n, const float *x);
} Backend;

const Backend *backend_ref(void);
const Backend *backend_cpu(void); /* NULL when built without oneDNN */
const Backend *backend_cuda(void); /* NULL (with rsa_fail saying why) without CUDA or a usable GPU */
/* The GPU backend_cuda will open: local_rank mod the GPUs the process sees (one process per GPU under mpirun).
 * Before the first backend_cuda() call, which binds the library handles to a device for good; without it, the
 * current device. No effect without CUDA. */
void backend_cuda_use_device(int local_rank);
/* The cpu backend posing as a device (backend_staged.c): runs the GPU code paths on the CPU, for tests. */
const Backend *backend_staged(void);
/* The most memory the staged backend's alloc has held at once: what a GPU run's tensors take on the device (not
 * counted: cuDNN's workspace, the cuda backend's 16-bit operand buffers and weight copies, the CUDA context). */
size_t backend_staged_peak_bytes(void);
size_t backend_staged_held_bytes(void); /* now: 0 once everything made on it is freed */

/* "ref", "cpu", "cuda" ("staged" for tests); NULL (with rsa_fail naming the choices) for an unknown or unavailable
 * name. */
const Backend *backend_by_name(const char *name);

#endif
