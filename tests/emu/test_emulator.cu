/* The CPU emulation of CUDA kernels (cuda_emu.h) that the emulated GPU tests rely on: launches rewritten by
 * unchevron.py (templates with commas, launches over several lines), built-in indices, barriers and shuffles
 * giving what a GPU gives, and the mistakes it must stop rather than hide: a barrier only some threads reach, a
 * full-mask shuffle in a warp missing lanes, a launch a GPU refuses, and a missing barrier, whose wrong result the
 * emulator's schedule makes visible (each thread runs until it waits, in thread order, then in reverse). */
extern "C" {
#include "tests/util/testlib.h"
}

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

/* every thread writes its global index: the built-in indices of a 3-d grid of 3-d blocks */
__global__ void index_kernel(unsigned *out) {
    unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    out[block * blockDim.x * blockDim.y * blockDim.z + thread] = block * 1000 + thread;
}

static void test_indices(void) {
    dim3 grid(3, 2, 2), block(4, 3, 2);
    std::vector<unsigned> out(12 * 24, 0xffffffffu);
    index_kernel<<<grid, block>>>(out.data());
    CHECK(cudaGetLastError() == cudaSuccess, "launch refused");
    size_t wrong = 0;
    for (unsigned b = 0; b < 12; b++)
        for (unsigned t = 0; t < 24; t++) wrong += out[b * 24 + t] != b * 1000 + t;
    CHECK(wrong == 0, "%zu of %d threads wrote a wrong index", wrong, 12 * 24);
}

/* a block's sum through shared memory, a tree of barriers, then a warp shuffle: K and T as template arguments */
template <int K, class T> __global__ void block_sum_kernel(const T *x, T *out) {
    __shared__ T lanes[256];
    lanes[threadIdx.x] = K * x[blockIdx.x * 256 + threadIdx.x];
    __syncthreads();
    for (int half = 128; half >= 32; half /= 2) {
        if ((int)threadIdx.x < half) lanes[threadIdx.x] += lanes[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x >= 32) return; /* the first warp finishes with shuffles; the others leave together */
    T v = lanes[threadIdx.x];
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (threadIdx.x == 0) out[blockIdx.x] = v;
}

static void test_barriers_and_shuffles(void) {
    const int blocks = 5;
    std::vector<double> x(blocks * 256), out(blocks, -1);
    for (size_t i = 0; i < x.size(); i++) x[i] = (double)(i % 97) - 40;
    block_sum_kernel<3, double>
        <<<blocks,
           256>>>(x.data(),
                  out.data());
    CHECK(cudaGetLastError() == cudaSuccess, "launch refused");
    for (int b = 0; b < blocks; b++) {
        double want = 0;
        for (int i = 0; i < 256; i++) want += 3 * x[b * 256 + i];
        CHECK(out[b] == want, "block %d: sum %g, want %g", b, out[b], want);
    }
}

/* the same tree without its first barrier: thread 0 reads its neighbours' slots before they are written */
__global__ void racy_sum_kernel(const float *x, float *out) {
    __shared__ float lanes[64];
    lanes[threadIdx.x] = x[threadIdx.x];
    for (int half = 32; half > 0; half /= 2) {
        if ((int)threadIdx.x < half) lanes[threadIdx.x] += lanes[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) *out = lanes[0];
}

/* each thread takes its right neighbour's value, then (without a barrier in between) overwrites its own slot */
__global__ void racy_shift_kernel(float *out) {
    __shared__ float slots[64];
    slots[threadIdx.x] = (float)threadIdx.x;
    __syncthreads();
    float right = threadIdx.x < 63 ? slots[threadIdx.x + 1] : -1.0f;
    slots[threadIdx.x] = 100.0f + threadIdx.x;
    __syncthreads();
    out[threadIdx.x] = right;
}

static void test_missing_barrier_shows(void) {
    std::vector<float> x(64, 1.0f);
    float out = 0;
    racy_sum_kernel<<<1, 64>>>(x.data(), &out);
    CHECK(out != 64.0f, "a sum missing its first barrier gave the right answer: the emulator would hide such races");
    /* in thread order every neighbour is read before it is overwritten; the reverse order shows the race */
    std::vector<float> shifted(64);
    racy_shift_kernel<<<1, 64>>>(shifted.data());
    size_t right = 0;
    for (int t = 0; t < 63; t++) right += shifted[(size_t)t] == (float)(t + 1);
    CHECK(right < 63, "a write over a value not read yet went unnoticed");
}

/* a launch a GPU refuses is reported by cudaGetLastError, as there, and runs nothing */
static void test_refused_launch(void) {
    unsigned out[1] = {7};
    index_kernel<<<dim3(1, 70000), 1>>>(out);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "a grid of 70000 in y was accepted");
    CHECK(cudaGetLastError() == cudaSuccess, "the error did not clear once read");
    index_kernel<<<1, 2048>>>(out);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "a block of 2048 threads was accepted");
    CHECK(out[0] == 7, "a refused launch ran");
}

__global__ void partial_barrier_kernel(int *out) {
    if (threadIdx.x < 16) __syncthreads(); /* undefined on a GPU: half the block never arrives */
    out[threadIdx.x] = 1;
}

__global__ void partial_warp_kernel(float *out) {
    float v = 1.0f;
    v += __shfl_down_sync(0xffffffffu, v, 1); /* the block has 48 threads: its second warp has 16 lanes */
    out[threadIdx.x] = v;
}

__global__ void plain_then_barrier_kernel(int *out) {
    if (blockIdx.x == 1) __syncthreads(); /* the first block meets no barrier, the second does */
    out[blockIdx.x * blockDim.x + threadIdx.x] = 1;
}

/* Runs f in a child process; true if it was stopped (by the emulator's abort) with `want` in its message. */
static bool stops_with(void (*f)(void), const char *want) {
    int fds[2];
    if (pipe(fds) != 0) return false;
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        f();
        _exit(0);
    }
    close(fds[1]);
    char msg[2048] = "";
    size_t len = 0;
    ssize_t r;
    while ((r = read(fds[0], msg + len, sizeof msg - 1 - len)) > 0) len += (size_t)r;
    msg[len] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    bool stopped = WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
    if (!stopped || !strstr(msg, want)) {
        test_note("child %s; its message: %s", stopped ? "stopped" : "ran to the end", msg[0] ? msg : "(none)");
        return false;
    }
    return true;
}

static void launch_partial_barrier(void) {
    int out[64];
    partial_barrier_kernel<<<1, 64>>>(out);
}

static void launch_partial_warp(void) {
    float out[48];
    partial_warp_kernel<<<1, 48>>>(out);
}

static void launch_plain_then_barrier(void) {
    int out[2 * 32];
    plain_then_barrier_kernel<<<2, 32>>>(out);
}

static void test_undefined_kernels_stop(void) {
    CHECK(stops_with(launch_partial_barrier, "partial_barrier_kernel") &&
              stops_with(launch_partial_barrier, "reached by only some threads"),
          "a barrier half the block skips was not stopped");
    CHECK(stops_with(launch_partial_warp, "lanes are not all there"), "a shuffle in a 16-lane warp was not stopped");
    CHECK(stops_with(launch_plain_then_barrier, "first block met none"),
          "a barrier in a block run without fibers was not stopped");
}

int main(void) {
    RUN(test_indices);
    RUN(test_barriers_and_shuffles);
    RUN(test_missing_barrier_shows);
    RUN(test_refused_launch);
    RUN(test_undefined_kernels_stop);
    return test_finish();
}
