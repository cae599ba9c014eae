/* The CPU fast path: oneDNN convolutions and sgemm, own OpenMP kernels for the rest. Activations with a multiple
 * of 16 channels are kept channel-blocked (nChw16c), which oneDNN's fastest convolutions want; the rest (the input
 * image) stay NCHW. */
#include "backend.h"

#include "../core/hostmem.h"
#include "../ops/cpu/conv_cpu.h"
#include "../ops/cpu/ops_cpu.h"

#include <string.h>

static Layout cpu_layout(int c, int hw) {
    return c % 16 == 0 && hw > 1 ? LAYOUT_NCHW16C : LAYOUT_NCHW;
}

static void *cpu_alloc(size_t bytes) { return hostmem_alloc(bytes); }
static void cpu_release(void *p, size_t bytes) { hostmem_free(p, bytes); }
static void cpu_copy(void *dst, const void *src, size_t bytes) { memmove(dst, src, bytes); }
static void cpu_zero(void *p, size_t bytes) { memset(p, 0, bytes); }
static void cpu_sync(void) {}
static void cpu_upload_async(int slot, void *dst, const void *host_src, size_t bytes) {
    (void)slot;
    memmove(dst, host_src, bytes);
}
static void cpu_wait_upload(int slot) { (void)slot; }

/* oneDNN's weight gradient stays fp32; the network rounds it. */
static void cpu_conv_set_weight_grad_precision(ConvOp *op, Precision p) { (void)op, (void)p; }

static const Backend CPU = {
    .name = "cpu",
    .host_memory = true,
    .act_layout = cpu_layout,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .sync = cpu_sync,
    .host_alloc = cpu_alloc,
    .host_free = cpu_release,
    .upload_async = cpu_upload_async,
    .wait_upload = cpu_wait_upload,
    .conv_create = conv_cpu_create,
    .conv_destroy = conv_cpu_destroy,
    .conv_forward = conv_cpu_forward,
    .conv_backward_data = conv_cpu_backward_data,
    .conv_backward_weights = conv_cpu_backward_weights,
    .conv_weights_changed = conv_cpu_weights_changed,
    .conv_set_precision = conv_cpu_set_precision,
    .conv_set_weight_grad_precision = cpu_conv_set_weight_grad_precision,
    .bn_forward_train = bn_cpu_forward_train,
    .bn_forward_eval = bn_cpu_forward_eval,
    .bn_apply = bn_cpu_apply,
    .bn_backward = bn_cpu_backward,
    .relu_forward = relu_cpu_forward,
    .relu_backward = relu_cpu_backward,
    .add_forward = add_cpu_forward,
    .accumulate = accumulate_cpu,
    .accumulate_lowp = accumulate_lowp_cpu,
    .round_lowp = round_lowp_cpu,
    .to_lowp = to_lowp_cpu,
    .from_lowp = from_lowp_cpu,
    .maxpool_forward = maxpool_cpu_forward,
    .maxpool_backward = maxpool_cpu_backward,
    .gap_forward = gap_cpu_forward,
    .gap_backward = gap_cpu_backward,
    .linear_forward = linear_cpu_forward,
    .linear_backward = linear_cpu_backward,
    .axpby = axpby_cpu,
    .sgd_update = sgd_update_cpu,
    .sumsq = sumsq_cpu,
};

const Backend *backend_cpu(void) { return &CPU; }
