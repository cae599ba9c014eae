/* Runs the cuda backend's own kernels (the .cu files of trainer/ops/cuda) on the CPU, so that their indexing,
 * reductions and barriers are tested on every machine, not only in the rare session with a GPU. The .cu files are
 * compiled by the host C++ compiler with this header forced in first (-include) after tests/emu/unchevron.py has
 * turned their `kernel<<<grid, block>>>(args)` launches into emu_launch("kernel", grid, block, kernel, args).
 *
 * A launch runs the grid's blocks one after another; the threads of a block are fibers (ucontext), switched only at
 * __syncthreads and warp shuffles, which release when every thread of the block (or lane of the warp) has arrived;
 * between two barriers the threads run one after another, in thread order and then in reverse, so that a missing
 * barrier shows as wrong results (a read before the write it needed, or a write over what was not read yet).
 * A barrier that only some threads reach, a full-mask shuffle in a warp missing lanes, or a launch configuration a
 * GPU refuses (reported through cudaGetLastError as there) stop the test with the kernel's name. `__shared__`
 * variables are static: one copy for the block that is running. Arithmetic is the host's IEEE single and double
 * precision without contraction (-ffp-contract=off), which is what the kernels' __fadd_rn and friends ask for; the
 * 16-bit conversions are cuda_fp16.h's and cuda_bf16.h's own host code.
 *
 * The host side is emulated too, so that the whole cuda backend (backend_cuda.cu and trainer/ops/cuda) runs:
 * runtime_emu.cpp (device memory, copies, streams), cudnn_emu.cpp (the convolutions), cublas_emu.cpp (sgemm) and
 * nccl_emu.cpp (all-reduce over MPI). What it cannot show: races other than those (threads never interleave between
 * barriers, and every call completes before it returns), timing, and cuDNN's, cuBLAS's and NCCL's own behaviour
 * beyond what those files model. */
#ifndef RSA_CUDA_EMU_H
#define RSA_CUDA_EMU_H

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

/* the execution-space keywords mean nothing on the host; shared memory is one copy per running block */
#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#define __global__
#define __device__
#define __host__
#define __shared__ static

namespace emu {
extern uint3 thread_idx, block_idx;
extern dim3 block_dim, grid_dim;
/* Runs body once per thread of every block of the grid; kernel names it in messages. */
void run_grid(dim3 grid, dim3 block, const char *kernel, const std::function<void()> &body);
/* __syncthreads(). */
void sync_block();
/* Lane src's `bytes` of the calling thread's warp (its own value where src is outside the warp) into out, after
 * every lane has offered its own value (mine). */
void warp_exchange(unsigned mask, const void *mine, void *out, int src, size_t bytes);
/* Stops the test unless address (a kernel's pointer argument) lies in device memory or in page-locked host memory, which a
 * GPU can read through the bus (runtime_emu.cpp; where it is not linked, as in the emulator's own test, any pointer
 * passes). */
void need_kernel_pointer(uintptr_t address, const char *kernel);
/* Records e for cudaGetLastError, as a failing runtime call does on a GPU, and returns it. */
cudaError_t fail(cudaError_t e);
/* RSA_EMU_COUNT_ONLY=1: every call checks its arguments and allocates as usual, but no kernel, convolution, sgemm,
 * memset or device-to-device copy computes, and device memory is left unwritten (so untouched pages cost no host
 * memory). The numbers are garbage; what is left is the backend's allocations, which do not depend on them: how a
 * step's device memory at ResNet-50, batch 256, is counted on a 2-core machine with 23 GB (step_bench's "GPU used";
 * RSA_EMU_DEVICE_GIB sets the card's size, 16 by default). */
bool count_only();
/* Stops the test unless [p, p + bytes) lies in one live cudaMalloc allocation (runtime_emu.cpp); call names the
 * API call, what (or NULL for a generic text) the operand. */
void need_device(const void *p, size_t bytes, const char *call, const char *what);
/* x as a tensor core reads a float under TF32: 10 mantissa bits, rounded to nearest, ties away from zero (PTX's
 * cvt.rna.tf32.f32); NaN and infinity kept. */
inline float tf32(float x) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
    std::memcpy(&x, &u, 4);
    return x;
}
} // namespace emu

#define threadIdx (::emu::thread_idx)
#define blockIdx (::emu::block_idx)
#define blockDim (::emu::block_dim)
#define gridDim (::emu::grid_dim)

inline void __syncthreads() { emu::sync_block(); }

template <class T> inline T __shfl_down_sync(unsigned mask, T v, unsigned delta) {
    static_assert(sizeof(T) <= 8, "a shuffle moves at most 8 bytes");
    T got;
    int lane = (int)((threadIdx.x + threadIdx.y * blockDim.x + threadIdx.z * blockDim.x * blockDim.y) % 32);
    emu::warp_exchange(mask, &v, &got, lane + (int)delta, sizeof(T));
    return got;
}

/* CUDA's integer min and max of device code */
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

/* Correctly rounded and never fused into an FMA: the build passes -ffp-contract=off. */
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }

/* A kernel's pointer arguments must be memory the GPU can reach (null ones are optional outputs); the pointers
 * inside structure arguments are not seen. */
template <class A> inline void emu_check_argument(const char *kernel, const A &a) {
    if constexpr (std::is_pointer<A>::value)
        if (a) emu::need_kernel_pointer(reinterpret_cast<uintptr_t>(a), kernel);
}

/* What unchevron.py makes of kernel<<<grid, block>>>(args); name is the kernel's text, for messages. */
template <class... P, class... A>
void emu_launch(const char *name, dim3 grid, dim3 block, void (*kernel)(P...), A... args) {
    (emu_check_argument(name, args), ...);
    emu::run_grid(grid, block, name, [&] { kernel(args...); });
}

#endif
