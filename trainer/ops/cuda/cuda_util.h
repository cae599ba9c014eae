/* Shared by the CUDA backend's sources: checked calls into the CUDA runtime, cuDNN and cuBLAS, the handles and the
 * one workspace every op shares, and launch sizes. Every kernel, copy and library call goes to the legacy default
 * stream, so the ops of a step run in the order they were called without events or extra synchronisation; only the
 * background uploads (backend_cuda.cu) have a stream of their own. */
#ifndef RSA_CUDA_UTIL_H
#define RSA_CUDA_UTIL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <stddef.h>

/* error.h is C11; nvcc's C++ front end does not know the _Noreturn keyword, so it gets GCC's spelling here. */
#define _Noreturn __attribute__((noreturn))
extern "C" {
#include "../../core/error.h"
#include "../../core/layout.h"
#include "cuda_backend.h"
}
#undef _Noreturn

#define CUDA_HINT                                                                                                  \
    "rerun with CUDA_LAUNCH_BLOCKING=1 (and CUDNN_LOGLEVEL_DBG=3 or CUBLAS_LOGINFO_DBG=1) to find the failing "     \
    "call; backend \"cpu\" avoids the GPU"

/* A CUDA library rejecting a call the trainer built itself, or the GPU failing, cannot be handled by the caller. */
#define CUDA_CHECK(call)                                                                                           \
    do {                                                                                                           \
        cudaError_t err_ = (call);                                                                                 \
        if (err_ != cudaSuccess)                                                                                   \
            rsa_fatal(CUDA_HINT, "CUDA call failed with %s (%s): %s", cudaGetErrorName(err_),                    \
                      cudaGetErrorString(err_), #call);                                                            \
    } while (0)

/* Kernel launches report bad configurations through cudaGetLastError, faults in later calls. */
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#define CUDNN_CHECK(call)                                                                                          \
    do {                                                                                                           \
        cudnnStatus_t st_ = (call);                                                                                \
        if (st_ != CUDNN_STATUS_SUCCESS)                                                                           \
            rsa_fatal(CUDA_HINT, "cuDNN call failed with %s: %s", cudnnGetErrorString(st_), #call);              \
    } while (0)

#define CUBLAS_CHECK(call)                                                                                         \
    do {                                                                                                           \
        cublasStatus_t st_ = (call);                                                                               \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                                          \
            rsa_fatal(CUDA_HINT, "cuBLAS call failed with %s (%s): %s", cublasGetStatusName(st_),                \
                      cublasGetStatusString(st_), #call);                                                          \
    } while (0)

/* Makes GPU `device` mod (the GPUs this process sees) current (a negative device: the current one, 0 unless set)
 * and creates the library handles there; false with rsa_fail when there is no GPU or the libraries cannot use it. */
bool cuda_context_open(int device);
cudnnHandle_t cuda_cudnn(void);
/* The cuBLAS handle with its math mode set from cuda_tf32(). */
cublasHandle_t cuda_cublas(void);
/* One device buffer of at least `bytes`, shared by all ops (they run one after another on one stream); it grows as
 * needed and stays valid until the next call. */
void *cuda_workspace(size_t bytes);
/* The same, or NULL (the buffer then empty) where the GPU has not that much free: for a choice that can do without. */
void *cuda_workspace_try(size_t bytes);
/* Two more such buffers (which = 0, 1) of at least `count` 16-bit elements: a convolution's 16-bit input and
 * output. */
void *cuda_lowp_buffer(int which, size_t count);

/* Device memory for an op's private buffers (cached weights and the like); fatal when the GPU is full. */
float *cuda_alloc_floats(size_t count);
void cuda_free(void *p);

/* Activations are NHWC, so a tensor of hw pixels and c channels is a [rows][c] matrix; hw = 1 tensors are [n][c]
 * whatever layout they are labelled with. */
static inline void cuda_require_nhwc(Layout l, int hw) {
    if (l != LAYOUT_NHWC && hw > 1)
        rsa_fatal("this is a bug in rsa-repro", "the cuda backend keeps activations in NHWC, not %s", layout_name(l));
}

/* The most blocks a grid-stride launch gets, and the most matrices one batched-transpose launch covers (CUDA's limit
 * on gridDim.z). The emulated build (tests/emu) lowers both to a few, so that the loops which take over where one
 * grid ends also run on its tests' small tensors. */
#ifndef RSA_CUDA_MAX_BLOCKS
#define RSA_CUDA_MAX_BLOCKS 8192
#endif
#ifndef RSA_CUDA_MAX_GRID_Z
#define RSA_CUDA_MAX_GRID_Z 65535
#endif

constexpr int CUDA_THREADS = 256;
constexpr size_t CUDA_MAX_BLOCKS = RSA_CUDA_MAX_BLOCKS;
constexpr unsigned CUDA_MAX_GRID_Z = RSA_CUDA_MAX_GRID_Z;

/* A loop over n items shared by all threads of the grid, whatever its size. */
#define GRID_STRIDE(i, n)                                                                                          \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* Blocks for a grid-stride loop over `work` items with CUDA_THREADS threads each. */
static inline unsigned cuda_blocks(size_t work) {
    size_t b = (work + CUDA_THREADS - 1) / CUDA_THREADS;
    return (unsigned)(b < 1 ? 1 : b > CUDA_MAX_BLOCKS ? CUDA_MAX_BLOCKS : b);
}

#endif
