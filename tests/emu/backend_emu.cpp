/* backend_cuda() for the emulated build (tests/emu/cuda_emu.h): the cuda backend's own kernels (batch norm, ReLU,
 * sums, roundings and 16-bit copies, pooling, optimiser arithmetic, biases) run through the CPU emulation on host
 * memory, in the cuda backend's layouts (NHWC); convolutions and linear layers, which the real backend hands to
 * cuDNN and cuBLAS, and memory and transfers come from the staged backend (the cpu backend posing as a device).
 * Test binaries linked with it run the GPU tests (test_cuda, test_cuda_model), the PyTorch parity tests restricted
 * to the cuda backend and test_mpi's cuda tests against the kernels' own code. */
#include "trainer/ops/cuda/cuda_util.h"
#include "trainer/ops/cuda/ops_cuda.h"

#include <cstdlib>

/* ---- the shared buffers of cuda_context.cu, on the host ---- */

static void *grow(void **buf, size_t *have, size_t bytes) {
    if (bytes > *have) {
        std::free(*buf);
        *buf = std::malloc(bytes);
        if (!*buf) rsa_fatal("free memory", "the cuda emulator cannot allocate %zu bytes", bytes);
        *have = bytes;
    }
    return *buf;
}

void *cuda_workspace(size_t bytes) {
    static void *buf;
    static size_t have;
    return grow(&buf, &have, bytes ? bytes : 1);
}

void *cuda_workspace_try(size_t bytes) { return cuda_workspace(bytes); }

void *cuda_lowp_buffer(int which, size_t count) {
    static void *buf[2];
    static size_t have[2];
    RSA_ASSERT(which == 0 || which == 1);
    return grow(&buf[which], &have[which], 2 * (count ? count : 1));
}

float *cuda_alloc_floats(size_t count) {
    float *p = (float *)std::calloc(count ? count : 1, sizeof(float));
    if (!p) rsa_fatal("free memory", "the cuda emulator cannot allocate %zu floats", count);
    return p;
}

void cuda_free(void *p) { std::free(p); }

/* ---- the backend ---- */

static Layout emu_layout(int c, int hw) {
    (void)c;
    return hw > 1 ? LAYOUT_NHWC : LAYOUT_NCHW; /* as backend_cuda.cu */
}

static const Backend *open_emulated(void) {
    static Backend b;
    const Backend *staged = backend_staged();
    if (!staged) return NULL;
    b = *staged;
    b.name = "cuda-emulated";
    b.act_layout = emu_layout;
    ops_cuda_own_kernels(&b);
    return &b;
}

extern "C" const Backend *backend_cuda(void) {
    static const Backend *b = open_emulated();
    return b;
}

extern "C" void backend_cuda_use_device(int local_rank) { (void)local_rank; }
