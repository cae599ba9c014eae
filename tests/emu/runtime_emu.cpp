/* The CUDA runtime calls of the cuda backend's host code (backend_cuda.cu, cuda_context.cu), on the CPU: one
 * emulated GPU of EMU_DEVICE_BYTES whose memory is host memory.
 *
 * What it checks that host memory alone would not: every allocation is recorded, so a copy, a memset, or a cuDNN,
 * cuBLAS or NCCL call (cudnn_emu.cpp, cublas_emu.cpp, nccl_emu.cpp) handed a host pointer, a freed one, or a range
 * running past its allocation stops the test with the call's name, and so does a kernel handed a pointer that is
 * neither device memory nor registered (page-locked) host memory; cudaMalloc's memory starts as NaNs, as a GPU's
 * starts as whatever was there, so a read of memory nothing wrote shows; freeing or unregistering what was never
 * allocated or registered is an error, as on a GPU; streams and events must have been created.
 *
 * Every call completes before it returns (streams and events only order what is already done), so this cannot show
 * a missing wait between streams: test_cuda's background-upload test on a GPU does. */
#include "cuda_emu.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

namespace {

/* The card's memory: 16 GiB, or RSA_EMU_DEVICE_GIB (a full-size step counted with RSA_EMU_COUNT_ONLY needs more). */
size_t device_bytes() {
    const char *gib = getenv("RSA_EMU_DEVICE_GIB");
    return (size_t)(gib && atoi(gib) > 0 ? atoi(gib) : 16) << 30;
}
const size_t EMU_DEVICE_BYTES = device_bytes();

std::mutex lock; /* the loader's threads register their batches while the trainer computes */
std::map<uintptr_t, size_t> allocations; /* device memory: start -> bytes */
std::map<uintptr_t, size_t> registered;  /* page-locked host ranges */
std::set<const void *> streams, events;
size_t used;

[[noreturn]] void die(const char *call, const char *what, const void *p, size_t bytes) {
    std::fprintf(stderr, "cuda emulation: %s: %s (%p, %zu bytes)\n", call, what, p, bytes);
    std::abort();
}

/* The allocation holding [p, p + bytes), or allocations.end(). */
std::map<uintptr_t, size_t>::const_iterator holding(const void *p, size_t bytes) {
    const uintptr_t a = (uintptr_t)p;
    auto it = allocations.upper_bound(a);
    if (it == allocations.begin()) return allocations.end();
    --it;
    return a >= it->first && bytes <= it->second && a - it->first <= it->second - bytes ? it : allocations.end();
}

/* Whether a lies in registered (page-locked) host memory. */
bool page_locked(uintptr_t a) {
    auto it = registered.upper_bound(a);
    return it != registered.begin() && a - (--it)->first < it->second;
}

bool stream_known(cudaStream_t s) { return !s || s == cudaStreamLegacy || streams.count(s); }

} // namespace

void emu::need_device(const void *p, size_t bytes, const char *call, const char *what) {
    std::lock_guard<std::mutex> g(lock);
    if (!p) die(call, what ? what : "a null device pointer", p, bytes);
    if (holding(p, bytes ? bytes : 1) == allocations.end())
        die(call,
            what ? what : "not device memory: a host pointer, a freed one, or a range past the end of its allocation",
            p, bytes);
}

void emu::need_kernel_pointer(uintptr_t a, const char *kernel) {
    std::lock_guard<std::mutex> g(lock);
    if (holding((const void *)a, 1) != allocations.end() || page_locked(a)) return;
    std::fprintf(stderr, "cuda emulation: kernel %s: a pointer argument (%p) is neither device memory nor page-locked "
                 "host memory: a GPU would fault on it\n", kernel, (const void *)a);
    std::abort();
}

extern "C" cudaError_t cudaMalloc(void **p, size_t bytes) {
    std::lock_guard<std::mutex> g(lock);
    *p = nullptr;
    if (bytes == 0) return cudaSuccess; /* as CUDA: success, and a null pointer */
    if (bytes > EMU_DEVICE_BYTES - used) return emu::fail(cudaErrorMemoryAllocation);
    void *m = std::malloc(bytes);
    if (!m) return emu::fail(cudaErrorMemoryAllocation);
    if (!emu::count_only()) std::memset(m, 0xff, bytes); /* NaNs as floats, and as bf16 and fp16 */
    allocations[(uintptr_t)m] = bytes;
    used += bytes;
    *p = m;
    return cudaSuccess;
}

extern "C" cudaError_t cudaFree(void *p) {
    std::lock_guard<std::mutex> g(lock);
    if (!p) return cudaSuccess;
    auto it = allocations.find((uintptr_t)p);
    if (it == allocations.end()) return emu::fail(cudaErrorInvalidValue);
    used -= it->second;
    allocations.erase(it);
    std::free(p);
    return cudaSuccess;
}

extern "C" cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
    std::lock_guard<std::mutex> g(lock);
    *free_bytes = EMU_DEVICE_BYTES - used, *total = EMU_DEVICE_BYTES;
    return cudaSuccess;
}

extern "C" cudaError_t cudaMemset(void *p, int value, size_t bytes) {
    if (bytes == 0) return cudaSuccess;
    emu::need_device(p, bytes, "cudaMemset", nullptr);
    if (!emu::count_only()) std::memset(p, value, bytes);
    return cudaSuccess;
}

static void copy_checked(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, const char *call) {
    if (bytes == 0) return;
    if (kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice)
        emu::need_device(dst, bytes, call, "the destination is not device memory");
    if (kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice)
        emu::need_device(src, bytes, call, "the source is not device memory");
    if (emu::count_only() && kind == cudaMemcpyDeviceToDevice) return;
    std::memmove(dst, src, bytes);
}

extern "C" cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    copy_checked(dst, src, bytes, kind, "cudaMemcpy");
    return cudaSuccess;
}

extern "C" cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                                       cudaStream_t stream) {
    {
        std::lock_guard<std::mutex> g(lock);
        if (!stream_known(stream)) return emu::fail(cudaErrorInvalidResourceHandle);
    }
    copy_checked(dst, src, bytes, kind, "cudaMemcpyAsync");
    return cudaSuccess;
}

extern "C" cudaError_t cudaHostRegister(void *p, size_t bytes, unsigned flags) {
    (void)flags;
    std::lock_guard<std::mutex> g(lock);
    if (!p || !bytes) return emu::fail(cudaErrorInvalidValue);
    if (!registered.emplace((uintptr_t)p, bytes).second) return emu::fail(cudaErrorHostMemoryAlreadyRegistered);
    return cudaSuccess;
}

extern "C" cudaError_t cudaHostUnregister(void *p) {
    std::lock_guard<std::mutex> g(lock);
    if (!registered.erase((uintptr_t)p)) return emu::fail(cudaErrorHostMemoryNotRegistered);
    return cudaSuccess;
}

extern "C" cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
    (void)flags;
    std::lock_guard<std::mutex> g(lock);
    *s = (cudaStream_t) new char;
    streams.insert(*s);
    return cudaSuccess;
}

extern "C" cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    std::lock_guard<std::mutex> g(lock);
    return stream_known(s) ? cudaSuccess : emu::fail(cudaErrorInvalidResourceHandle);
}

extern "C" cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags) {
    (void)flags;
    std::lock_guard<std::mutex> g(lock);
    *e = (cudaEvent_t) new char;
    events.insert(*e);
    return cudaSuccess;
}

extern "C" cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    std::lock_guard<std::mutex> g(lock);
    return events.count(e) && stream_known(s) ? cudaSuccess : emu::fail(cudaErrorInvalidResourceHandle);
}

extern "C" cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags) {
    (void)flags;
    std::lock_guard<std::mutex> g(lock);
    return events.count(e) && stream_known(s) ? cudaSuccess : emu::fail(cudaErrorInvalidResourceHandle);
}

/* one emulated GPU per process: data-parallel ranks each take device 0, as ranks on their own nodes would */
extern "C" cudaError_t cudaGetDeviceCount(int *count) {
    *count = 1;
    return cudaSuccess;
}

extern "C" cudaError_t cudaSetDevice(int device) {
    return device == 0 ? cudaSuccess : emu::fail(cudaErrorInvalidDevice);
}

extern "C" cudaError_t cudaGetDevice(int *device) {
    *device = 0;
    return cudaSuccess;
}

/* what a run's provenance records of the card (harness/provenance.c) */
extern "C" cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device) {
    if (device != 0) return emu::fail(cudaErrorInvalidDevice);
    std::memset(prop, 0, sizeof *prop);
    std::snprintf(prop->name, sizeof prop->name, "tests/emu CPU emulation");
    prop->totalGlobalMem = EMU_DEVICE_BYTES, prop->major = 9, prop->minor = 0;
    return cudaSuccess;
}

extern "C" cudaError_t cudaRuntimeGetVersion(int *version) {
    *version = CUDART_VERSION; /* the headers it was built against */
    return cudaSuccess;
}

extern "C" cudaError_t cudaDriverGetVersion(int *version) {
    *version = CUDART_VERSION;
    return cudaSuccess;
}

/* which memory p is: device 0's, page-locked host memory, or neither (test_cuda's test_device_choice) */
extern "C" cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *at, const void *p) {
    std::lock_guard<std::mutex> g(lock);
    std::memset(at, 0, sizeof *at);
    if (holding(p, 1) != allocations.end())
        at->type = cudaMemoryTypeDevice, at->device = 0, at->devicePointer = (void *)p;
    else if (page_locked((uintptr_t)p)) at->type = cudaMemoryTypeHost, at->device = 0, at->hostPointer = (void *)p;
    else at->type = cudaMemoryTypeUnregistered, at->device = -1;
    return cudaSuccess;
}

/* a Hopper card, the kind the backend is built for */
extern "C" cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device) {
    if (device != 0) return emu::fail(cudaErrorInvalidDevice);
    if (attr == cudaDevAttrComputeCapabilityMajor) return *value = 9, cudaSuccess;
    if (attr == cudaDevAttrComputeCapabilityMinor) return *value = 0, cudaSuccess;
    return emu::fail(cudaErrorInvalidValue);
}

extern "C" cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
