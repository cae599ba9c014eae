/* The reference backend: the spec ops of ops/ref in NCHW, single-threaded. Slow; used by tests as the oracle for
 * the fast backends and for whole-model checks on tiny inputs. */
#include "backend.h"

#include "../core/error.h"
#include "../core/hostmem.h"
#include "../ops/ref/ops_ref.h"

#include <stdlib.h>
#include <string.h>

struct ConvOp {
    ConvShape s;
};

static Layout ref_layout(int c, int hw) {
    (void)c, (void)hw;
    return LAYOUT_NCHW;
}

static void *ref_alloc(size_t bytes) { return hostmem_alloc(bytes); }
static void ref_release(void *p, size_t bytes) { hostmem_free(p, bytes); }
static void ref_copy(void *dst, const void *src, size_t bytes) { memmove(dst, src, bytes); }
static void ref_zero(void *p, size_t bytes) { memset(p, 0, bytes); }
static void ref_sync(void) {}
static void ref_upload_async(int slot, void *dst, const void *host_src, size_t bytes) {
    (void)slot;
    memmove(dst, host_src, bytes);
}
static void ref_wait_upload(int slot) { (void)slot; }

static ConvOp *ref_conv_create(const ConvShape *s, Layout in, Layout out, bool bias) {
    (void)bias;
    RSA_ASSERT(in == LAYOUT_NCHW && out == LAYOUT_NCHW);
    ConvOp *op = malloc(sizeof *op);
    if (!op) rsa_fatal("free memory", "out of memory");
    op->s = *s;
    return op;
}

static void ref_conv_destroy(ConvOp *op) { free(op); }

static ConvShape with_batch(const ConvOp *op, int n) {
    RSA_ASSERT(n >= 1 && n <= op->s.n);
    ConvShape s = op->s;
    s.n = n;
    return s;
}

static void ref_conv_forward(ConvOp *op, int n, const float *x, const float *w, const float *b, float *y) {
    ConvShape s = with_batch(op, n);
    conv2d_forward_ref(&s, x, w, b, y);
}

static void ref_conv_backward_data(ConvOp *op, int n, const float *dy, const float *w, float *dx) {
    ConvShape s = with_batch(op, n);
    conv2d_backward_data_ref(&s, dy, w, dx);
}

static void ref_conv_backward_weights(ConvOp *op, int n, const float *x, const float *dy, float *dw, float *db) {
    ConvShape s = with_batch(op, n);
    conv2d_backward_weights_ref(&s, x, dy, dw, db);
}

static void ref_conv_weights_changed(ConvOp *op) { (void)op; }

/* The oracle: fp32 arithmetic (accumulating in double) on the rounded values at every precision. */
static void ref_conv_set_precision(ConvOp *op, Precision p) { (void)op, (void)p; }
/* Computes the fp32 weight gradient whatever the network does with it. */
static void ref_conv_set_weight_grad_precision(ConvOp *op, Precision p) { (void)op, (void)p; }

static void ref_bn_forward_train(const BnShape *s, Layout l, bool relu, const float *x, const float *gamma,
                                 const float *beta, float *y, float *mean, float *invstd, float momentum, float *rm,
                                 float *rv, const BnSync *sync) {
    RSA_ASSERT(l == LAYOUT_NCHW);
    batchnorm_forward_train_ref(s, x, gamma, beta, y, mean, invstd, momentum, rm, rv, sync);
    if (relu) relu_forward_ref((size_t)s->n * s->c * s->hw, y, y);
    round_lowp_ref(s->round, (size_t)s->n * s->c * s->hw, y);
}

static void ref_bn_forward_eval(const BnShape *s, Layout l, bool relu, const float *x, const float *gamma,
                                const float *beta, const float *rm, const float *rv, float *y) {
    RSA_ASSERT(l == LAYOUT_NCHW);
    batchnorm_forward_eval_ref(s, x, gamma, beta, rm, rv, y);
    if (relu) relu_forward_ref((size_t)s->n * s->c * s->hw, y, y);
    round_lowp_ref(s->round, (size_t)s->n * s->c * s->hw, y);
}

static void ref_bn_apply(const BnShape *s, Layout l, bool relu, const float *x, const float *gamma,
                         const float *beta, const float *mean, const float *invstd, float *y) {
    RSA_ASSERT(l == LAYOUT_NCHW);
    batchnorm_apply_ref(s, x, gamma, beta, mean, invstd, y);
    if (relu) relu_forward_ref((size_t)s->n * s->c * s->hw, y, y);
    round_lowp_ref(s->round, (size_t)s->n * s->c * s->hw, y);
}

static void ref_bn_backward(const BnShape *s, Layout l, bool relu, const float *x, const float *y, const float *dy,
                            const float *gamma, const float *beta, const float *mean, const float *invstd, float *dx,
                            float *dgamma, float *dbeta, const BnSync *sync) {
    (void)beta;
    RSA_ASSERT(l == LAYOUT_NCHW);
    size_t count = (size_t)s->n * s->c * s->hw;
    float *masked = NULL;
    if (relu) {
        masked = malloc(sizeof(float) * count);
        if (!masked) rsa_fatal("free memory", "out of memory");
        relu_backward_ref(count, y, dy, masked);
        dy = masked;
    }
    batchnorm_backward_ref(s, x, dy, gamma, mean, invstd, dx, dgamma, dbeta, sync);
    if (dx) round_lowp_ref(s->round, count, dx);
    free(masked);
}

static void ref_add_forward(size_t n, const float *a, const float *b, float *y, bool relu, Precision round) {
    add_forward_ref(n, a, b, y);
    if (relu) relu_forward_ref(n, y, y);
    round_lowp_ref(round, n, y);
}

static void ref_accumulate(size_t n, float *y, const float *x) { add_forward_ref(n, y, x, y); }

static void ref_maxpool_forward(const PoolShape *s, Layout l, const float *x, float *y) {
    RSA_ASSERT(l == LAYOUT_NCHW);
    maxpool_forward_ref(s, x, y);
}

static void ref_maxpool_backward(const PoolShape *s, Layout l, const float *x, const float *dy, float *dx) {
    RSA_ASSERT(l == LAYOUT_NCHW);
    maxpool_backward_ref(s, x, dy, dx);
}

static void ref_gap_forward(int n, int c, int hw, Layout l, const float *x, float *y) {
    RSA_ASSERT(l == LAYOUT_NCHW);
    gap_forward_ref(n, c, hw, x, y);
}

static void ref_gap_backward(int n, int c, int hw, Layout l, const float *dy, float *dx) {
    RSA_ASSERT(l == LAYOUT_NCHW);
    gap_backward_ref(n, c, hw, dy, dx);
}

static const Backend REF = {
    .name = "ref",
    .host_memory = true,
    .act_layout = ref_layout,
    .alloc = ref_alloc,
    .release = ref_release,
    .upload = ref_copy,
    .download = ref_copy,
    .copy = ref_copy,
    .zero = ref_zero,
    .sync = ref_sync,
    .host_alloc = ref_alloc,
    .host_free = ref_release,
    .upload_async = ref_upload_async,
    .wait_upload = ref_wait_upload,
    .conv_create = ref_conv_create,
    .conv_destroy = ref_conv_destroy,
    .conv_forward = ref_conv_forward,
    .conv_backward_data = ref_conv_backward_data,
    .conv_backward_weights = ref_conv_backward_weights,
    .conv_weights_changed = ref_conv_weights_changed,
    .conv_set_precision = ref_conv_set_precision,
    .conv_set_weight_grad_precision = ref_conv_set_weight_grad_precision,
    .bn_forward_train = ref_bn_forward_train,
    .bn_forward_eval = ref_bn_forward_eval,
    .bn_apply = ref_bn_apply,
    .bn_backward = ref_bn_backward,
    .relu_forward = relu_forward_ref,
    .relu_backward = relu_backward_ref,
    .add_forward = ref_add_forward,
    .accumulate = ref_accumulate,
    .accumulate_lowp = accumulate_lowp_ref,
    .round_lowp = round_lowp_ref,
    .to_lowp = to_lowp_ref,
    .from_lowp = from_lowp_ref,
    .maxpool_forward = ref_maxpool_forward,
    .maxpool_backward = ref_maxpool_backward,
    .gap_forward = ref_gap_forward,
    .gap_backward = ref_gap_backward,
    .linear_forward = linear_forward_ref,
    .linear_backward = linear_backward_ref,
    .axpby = axpby_ref,
    .sgd_update = sgd_update_ref,
    .sumsq = sumsq_ref,
};

const Backend *backend_ref(void) { return &REF; }
