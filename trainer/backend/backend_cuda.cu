/* The CUDA backend: cuDNN convolutions, cuBLAS linear layers, own deterministic kernels for the rest (ops/cuda).
 * Activations are NHWC, device memory comes from cudaMalloc, and everything runs in call order on the default
 * stream except background uploads (upload_async), which have a stream of their own; sync waits for all.
 * Settings (deterministic algorithms, TF32) are in ops/cuda/cuda_backend.h. */
#include "../ops/cuda/cuda_util.h"
#include "../ops/cuda/ops_cuda.h"

#include <cstdio>

extern "C" {
#include "../core/hostmem.h"
}

static Layout cuda_layout(int c, int hw) {
    (void)c;
    return hw > 1 ? LAYOUT_NHWC : LAYOUT_NCHW;
}

static void *cuda_alloc(size_t bytes) {
    void *p = NULL;
    cudaError_t err = cudaMalloc(&p, bytes ? bytes : 1);
    if (err != cudaSuccess) {
        cudaGetLastError(); /* an allocation failure is not sticky; keep it from surfacing in a later check */
        rsa_fail("free GPU memory or reduce the batch size", "cannot allocate %zu bytes on the GPU: %s", bytes,
                 cudaGetErrorString(err));
        return NULL;
    }
    CUDA_CHECK(cudaMemset(p, 0, bytes));
    return p;
}

static void cuda_release(void *p, size_t bytes) {
    (void)bytes;
    CUDA_CHECK(cudaFree(p));
}

static void cuda_upload(void *dst, const void *host_src, size_t bytes) {
    CUDA_CHECK(cudaMemcpy(dst, host_src, bytes, cudaMemcpyHostToDevice));
}

static void cuda_download(void *host_dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpy(host_dst, src, bytes, cudaMemcpyDeviceToHost));
}

static void cuda_copy(void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));
}

static void cuda_zero(void *p, size_t bytes) { CUDA_CHECK(cudaMemset(p, 0, bytes)); }
static void cuda_sync(void) { CUDA_CHECK(cudaDeviceSynchronize()); }

/* The loader's batches are registered with the driver (page-locked), so uploads read them by DMA at the bus's speed
 * instead of through a staging copy, and asynchronously. hostmem's allocation stays (huge pages, touched pages). */
static void *cuda_host_alloc(size_t bytes) {
    void *p = hostmem_alloc(bytes);
    if (!p || bytes == 0) return p;
    if (cudaHostRegister(p, bytes, cudaHostRegisterDefault) != cudaSuccess)
        cudaGetLastError(); /* a speed-up only: unpinned memory uploads correctly, through the staging copy */
    return p;
}

static cudaStream_t copy_stream;

static void cuda_host_free(void *p, size_t bytes) {
    if (!p) return;
    if (bytes) {
        /* an upload from p may still be in flight where a run stopped between upload_async and wait_upload */
        if (copy_stream) CUDA_CHECK(cudaStreamSynchronize(copy_stream));
        cudaError_t err = cudaHostUnregister(p);
        if (err == cudaErrorHostMemoryNotRegistered) cudaGetLastError(); /* cuda_host_alloc could not pin it */
        else CUDA_CHECK(err);
    }
    hostmem_free(p, bytes);
}

/* Background uploads have their own stream (non-blocking: the legacy default stream does not wait for it), ordered
 * against the default stream by events in both directions: a copy waits for the work queued before it, the work
 * after a wait_upload waits for the copy. */
static cudaEvent_t queued_work, copied[UPLOAD_SLOTS];

static void open_copy_stream(void) {
    CUDA_CHECK(cudaStreamCreateWithFlags(&copy_stream, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&queued_work, cudaEventDisableTiming));
    for (int s = 0; s < UPLOAD_SLOTS; s++) CUDA_CHECK(cudaEventCreateWithFlags(&copied[s], cudaEventDisableTiming));
}

static void cuda_upload_async(int slot, void *dst, const void *host_src, size_t bytes) {
    RSA_ASSERT(slot >= 0 && slot < UPLOAD_SLOTS);
    CUDA_CHECK(cudaEventRecord(queued_work, 0));
    CUDA_CHECK(cudaStreamWaitEvent(copy_stream, queued_work, 0));
    CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, copy_stream));
    CUDA_CHECK(cudaEventRecord(copied[slot], copy_stream));
}

static void cuda_wait_upload(int slot) {
    RSA_ASSERT(slot >= 0 && slot < UPLOAD_SLOTS);
    CUDA_CHECK(cudaStreamWaitEvent(0, copied[slot], 0));
}

/* Filled field by field: designated initialisers are C++20. */
static Backend make_backend(void) {
    Backend b = {};
    b.name = "cuda";
    b.host_memory = false;
    b.act_layout = cuda_layout;
    b.alloc = cuda_alloc;
    b.release = cuda_release;
    b.upload = cuda_upload;
    b.download = cuda_download;
    b.copy = cuda_copy;
    b.zero = cuda_zero;
    b.sync = cuda_sync;
    b.host_alloc = cuda_host_alloc;
    b.host_free = cuda_host_free;
    b.upload_async = cuda_upload_async;
    b.wait_upload = cuda_wait_upload;
    b.conv_create = conv_cuda_create;
    b.conv_destroy = conv_cuda_destroy;
    b.conv_forward = conv_cuda_forward;
    b.conv_backward_data = conv_cuda_backward_data;
    b.conv_backward_weights = conv_cuda_backward_weights;
    b.conv_weights_changed = conv_cuda_weights_changed;
    b.conv_set_precision = conv_cuda_set_precision;
    b.conv_set_weight_grad_precision = conv_cuda_set_weight_grad_precision;
    b.linear_forward = linear_cuda_forward;
    b.linear_backward = linear_cuda_backward;
    b.bn_forward_train = bn_cuda_forward_train;
    b.bn_forward_eval = bn_cuda_forward_eval;
    b.bn_apply = bn_cuda_apply;
    b.bn_backward = bn_cuda_backward;
    b.relu_forward = relu_cuda_forward;
    b.relu_backward = relu_cuda_backward;
    b.add_forward = add_cuda_forward;
    b.accumulate = accumulate_cuda;
    b.accumulate_lowp = accumulate_lowp_cuda;
    b.round_lowp = round_lowp_cuda;
    /* the tensor-core convolutions' conversions, as round-to-nearest-even narrowing and exact widening: for values
     * already in the format, the bits of lowp_bits and lowp_value */
    b.to_lowp = [](Precision p, size_t n, const float *x, uint16_t *y16) { to_lowp_cuda(p, n, x, y16); };
    b.from_lowp = [](Precision p, size_t n, const uint16_t *x16, float *y) { from_lowp_cuda(p, n, x16, y); };
    b.maxpool_forward = maxpool_cuda_forward;
    b.maxpool_backward = maxpool_cuda_backward;
    b.gap_forward = gap_cuda_forward;
    b.gap_backward = gap_cuda_backward;
    b.axpby = axpby_cuda;
    b.sgd_update = sgd_update_cuda;
    b.sumsq = sumsq_cuda;
    return b;
}

static int chosen_device = -1;
static bool opened = false;
static char why_not[1024]; /* why opening failed: every later call reports it again */

static const Backend *open_backend(void) {
    static Backend backend;
    opened = true;
    if (!cuda_context_open(chosen_device)) {
        snprintf(why_not, sizeof why_not, "%s", rsa_error_message());
        return NULL;
    }
    open_copy_stream();
    backend = make_backend();
    return &backend;
}

extern "C" const Backend *backend_cuda(void) {
    static const Backend *backend = open_backend(); /* once, thread-safe */
    if (!backend) rsa_fail_again(why_not);
    return backend;
}

extern "C" void backend_cuda_use_device(int local_rank) {
    /* the handles, streams and buffers of an opened backend belong to the device that was current then */
    if (opened)
        rsa_fatal("this is a bug in rsa-repro; please report it",
                  "the cuda backend was opened before its process chose GPU %d", local_rank);
    chosen_device = local_rank;
}
