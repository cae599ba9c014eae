/* The process-wide state of the cuda backend: library handles, the shared workspace and the settings of
 * cuda_backend.h. The backend runs on one device: the one backend_cuda_use_device chose (a data-parallel rank's), else
 * the current one (device 0 unless CUDA_VISIBLE_DEVICES says otherwise). */
#include "cuda_util.h"

static cudnnHandle_t cudnn;
static cublasHandle_t cublas;
static bool deterministic = true, tf32 = false, lowp_convolutions = true;

void cuda_set_deterministic(bool on) { deterministic = on; }
bool cuda_deterministic(void) { return deterministic; }
void cuda_set_tf32(bool on) { tf32 = on; }
bool cuda_tf32(void) { return tf32; }
void cuda_set_lowp_convolutions(bool on) { lowp_convolutions = on; }
bool cuda_lowp_convolutions(void) { return lowp_convolutions; }

bool cuda_context_open(int device) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        cudaGetLastError(); /* no driver or no GPU: the backend does not exist here, and nothing else is wrong */
        return rsa_fail("run on a machine whose GPU nvidia-smi lists (and that CUDA_VISIBLE_DEVICES does not hide), or "
                        "use backend \"cpu\"",
                        "this process sees no GPU (%s)",
                        err != cudaSuccess ? cudaGetErrorString(err) : "the driver reports 0 devices"),
               false;
    }
    if (device >= 0) CUDA_CHECK(cudaSetDevice(device % count));
    int major;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    if (major < 8)
        return rsa_fail("the kernels are built for sm_80 and sm_90 (see NVCCFLAGS in the Makefile)",
                        "GPU %d has compute capability %d.x; the cuda backend needs 8.0 or newer", device, major),
               false;
    const size_t dn = cudnnGetVersion(); /* cuDNN 9 numbers major * 10000 + ..., cuDNN 8 major * 1000 + ... */
    if ((dn >= 90000 ? dn / 10000 : dn / 1000) != CUDNN_MAJOR)
        return rsa_fail("install the cuDNN the trainer was built against, or rebuild",
                        "built against cuDNN %d but cuDNN %zu is loaded", CUDNN_MAJOR, dn),
               false;
    cudnnStatus_t st = cudnnCreate(&cudnn);
    if (st != CUDNN_STATUS_SUCCESS)
        return rsa_fail(CUDA_HINT, "cuDNN cannot start: %s", cudnnGetErrorString(st)), false;
    cublasStatus_t bst = cublasCreate(&cublas);
    if (bst != CUBLAS_STATUS_SUCCESS) {
        CUDNN_CHECK(cudnnDestroy(cudnn));
        return rsa_fail(CUDA_HINT, "cuBLAS cannot start: %s", cublasGetStatusString(bst)), false;
    }
    return true;
}

cudnnHandle_t cuda_cudnn(void) { return cudnn; }

cublasHandle_t cuda_cublas(void) {
    /* CUBLAS_DEFAULT_MATH keeps FP32 precision for sgemm; TF32 must be asked for. */
    CUBLAS_CHECK(cublasSetMathMode(cublas, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    return cublas;
}

typedef struct {
    void *p;
    size_t bytes;
} Scratch;

static Scratch workspace_buf, lowp_bufs[2];

/* NULL when the GPU has not the memory (what: NULL) or a message and a stop (what: the buffer's name). */
static void *scratch_get(Scratch *s, size_t bytes, const char *what) {
    if (bytes <= s->bytes) return s->p;
    /* Kernels queued earlier may still use the old buffer. */
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaFree(s->p));
    s->p = NULL, s->bytes = 0;
    size_t want = (bytes + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
    if (cudaMalloc(&s->p, want) != cudaSuccess) {
        cudaGetLastError(); /* not sticky: keep it from surfacing in a later check */
        s->p = NULL;
        if (!what) return NULL;
        rsa_fatal("free GPU memory or reduce the batch size", "cannot allocate a %zu-byte GPU %s", want, what);
    }
    /* defined contents for a convolution's trial run (conv_cuda.cu, pick), which may read before anything wrote */
    CUDA_CHECK(cudaMemset(s->p, 0, want));
    s->bytes = want;
    return s->p;
}

void *cuda_workspace(size_t bytes) { return scratch_get(&workspace_buf, bytes, "workspace"); }
void *cuda_workspace_try(size_t bytes) { return scratch_get(&workspace_buf, bytes, NULL); }

void *cuda_lowp_buffer(int which, size_t count) {
    RSA_ASSERT(which == 0 || which == 1);
    return scratch_get(&lowp_bufs[which], count * 2, "buffer for 16-bit convolution operands");
}

float *cuda_alloc_floats(size_t count) {
    void *p = NULL;
    if (cudaMalloc(&p, count * sizeof(float)) != cudaSuccess) {
        cudaGetLastError();
        rsa_fatal("free GPU memory or reduce the batch size", "cannot allocate %zu floats on the GPU", count);
    }
    return (float *)p;
}

void cuda_free(void *p) { CUDA_CHECK(cudaFree(p)); }

extern "C" size_t cuda_device_used_bytes(void) {
    size_t free_bytes = 0, total = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
    return total - free_bytes;
}
