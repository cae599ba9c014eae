/* The CPU emulation of kernel launches (cuda_emu.h says what it does and does not show) and the CUDA runtime's
 * error state (cudaGetLastError).
 *
 * Fibers switch through ucontext, or on x86-64 through a few instructions that swap the callee-saved registers and
 * the stack pointer: swapcontext saves the signal mask with a system call on every switch, which took half the
 * emulated tests' time. Under ASan the ucontext path stays, as ASan follows swapcontext (it warns once that it
 * does not fully support it: that concerns checks of the fibers' own stacks; the kernels' reads and writes of
 * heap memory, which is what they touch, are checked as anywhere). */
#include "cuda_emu.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sys/mman.h>
#include <ucontext.h>
#include <vector>

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define EMU_ASM_SWITCH 1
/* Saves the callee-saved registers on the current stack and the stack pointer in *from, then resumes the stack
 * `to` (one that emu_switch saved, or a new one laid out by make_fiber) where it left off. */
extern "C" void emu_switch(void **from, void *to);
asm(".text\n"
    ".globl emu_switch\n"
    ".type emu_switch, @function\n"
    "emu_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size emu_switch, .-emu_switch\n");
#endif

namespace emu {

uint3 thread_idx, block_idx;
dim3 block_dim, grid_dim;

namespace {

enum State { RUNNABLE, AT_BLOCK_BARRIER, AT_WARP_BARRIER, DONE };

struct Fiber {
#ifdef EMU_ASM_SWITCH
    void *sp;
#else
    ucontext_t ctx;
#endif
    State state;
};

/* Big enough for a kernel's locals and a failing check's message under ASan; pages are touched only as used. Under
 * ASan every swapcontext clears the shadow of the whole stack it enters (an eighth of its bytes), which was half of
 * the emulated tests' time there: a smaller stack. */
#ifdef __SANITIZE_ADDRESS__
constexpr size_t STACK_BYTES = 64 * 1024;
#else
constexpr size_t STACK_BYTES = 256 * 1024;
#endif
constexpr unsigned MAX_THREADS = 1024;

std::vector<Fiber> fibers;
char *stacks;
#ifdef EMU_ASM_SWITCH
void *scheduler;
#else
ucontext_t scheduler;
#endif
int current = -1;
const std::function<void()> *body;
const char *kernel_name;
unsigned long long lane_values[MAX_THREADS]; /* what each thread offers to its warp's shuffle */
cudaError_t last_error = cudaSuccess;
unsigned long long barriers; /* barriers and shuffles met in this launch */
bool plain;                  /* threads run as plain calls, without fibers */

[[noreturn]] void die(const char *why) {
    std::fprintf(stderr, "cuda emulator: kernel %s, block (%u, %u, %u), thread (%u, %u, %u): %s\n", kernel_name,
                 block_idx.x, block_idx.y, block_idx.z, thread_idx.x, thread_idx.y, thread_idx.z, why);
    std::abort();
}

uint3 thread_of(unsigned t) {
    return uint3{t % block_dim.x, t / block_dim.x % block_dim.y, t / (block_dim.x * block_dim.y)};
}

/* From the scheduler into fiber f, until it waits or returns. */
void enter(Fiber *f) {
#ifdef EMU_ASM_SWITCH
    emu_switch(&scheduler, f->sp);
#else
    if (swapcontext(&scheduler, &f->ctx) != 0) die("swapcontext failed");
#endif
}

/* From fiber f back to the scheduler. */
void leave(Fiber *f) {
#ifdef EMU_ASM_SWITCH
    emu_switch(&f->sp, scheduler);
#else
    if (swapcontext(&f->ctx, &scheduler) != 0) die("swapcontext failed");
#endif
}

void fiber_main() {
    (*body)();
    Fiber *f = &fibers[(size_t)current];
    f->state = DONE;
#ifdef EMU_ASM_SWITCH
    leave(f); /* never resumed */
    std::abort();
#endif
    /* ucontext: returns to the scheduler through uc_link */
}

/* Back to the scheduler until a barrier releases this thread. */
void wait(State why) {
    if (plain) die("a barrier in a kernel whose first block met none: the emulator ran this block without fibers");
    barriers++;
    Fiber &f = fibers[(size_t)current];
    f.state = why;
    leave(&f);
}

bool valid_config(dim3 g, dim3 b) {
    unsigned long long threads = (unsigned long long)b.x * b.y * b.z;
    return threads >= 1 && threads <= MAX_THREADS && b.x <= 1024 && b.y <= 1024 && b.z <= 64 && g.x >= 1 &&
           g.x <= 0x7fffffffu && g.y >= 1 && g.y <= 65535 && g.z >= 1 && g.z <= 65535;
}

/* Every thread of the block is waiting: release a barrier they all reached, or stop on one they cannot pass. */
void release(unsigned n) {
    unsigned done = 0, at_block = 0, at_warp = 0;
    for (unsigned t = 0; t < n; t++) {
        State s = fibers[t].state;
        done += s == DONE, at_block += s == AT_BLOCK_BARRIER, at_warp += s == AT_WARP_BARRIER;
    }
    if (at_block) {
        if (done || at_warp) {
            thread_idx = thread_of(0);
            die("__syncthreads() reached by only some threads of the block (the others returned or wait in a warp "
                "shuffle): undefined on a GPU");
        }
        for (unsigned t = 0; t < n; t++) fibers[t].state = RUNNABLE;
        return;
    }
    for (unsigned w = 0; w * 32 < n; w++) {
        unsigned first = w * 32, last = first + 32 < n ? first + 32 : n, waiting = 0;
        for (unsigned t = first; t < last; t++) waiting += fibers[t].state == AT_WARP_BARRIER;
        if (waiting == 0) continue;
        if (waiting != 32) {
            thread_idx = thread_of(first);
            die("a full-mask warp shuffle in a warp whose lanes are not all there (returned, or past the block's "
                "end): undefined on a GPU");
        }
        for (unsigned t = first; t < last; t++) fibers[t].state = RUNNABLE;
    }
}

#ifdef EMU_ASM_SWITCH
/* A new stack as emu_switch leaves one: six registers to pop (zeros), then fiber_main as the return address, at a
 * 16-byte boundary so that fiber_main starts with the stack aligned as after a call. */
void make_fiber(Fiber *fb, char *stack, unsigned t) {
    /* Stacks STACK_BYTES apart would put every fiber's top in the same cache sets, and a block's switches would
     * evict one another's frames: each top is shifted by a different number of cache lines. */
    uintptr_t top = ((uintptr_t)stack + STACK_BYTES - (uintptr_t)(t % 64) * 33 * 64) & ~(uintptr_t)15;
    void **sp = (void **)(top - 16);
    sp[0] = (void *)fiber_main;
    sp[1] = nullptr;
    sp -= 6;
    for (int i = 0; i < 6; i++) sp[i] = nullptr;
    fb->sp = sp;
    fb->state = RUNNABLE;
}
#else
/* Its own function: getcontext returns twice in principle, which no loop variable should see (-Wclobbered). */
__attribute__((noinline)) void make_fiber(Fiber *fb, char *stack, unsigned t) {
    (void)t;
    if (getcontext(&fb->ctx) != 0) die("getcontext failed");
    fb->ctx.uc_stack.ss_sp = stack;
    fb->ctx.uc_stack.ss_size = STACK_BYTES;
    fb->ctx.uc_link = &scheduler;
    makecontext(&fb->ctx, fiber_main, 0);
    fb->state = RUNNABLE;
}
#endif

/* One block's threads as fibers, until all have returned. */
void run_block(unsigned n) {
    for (unsigned t = 0; t < n; t++) make_fiber(&fibers[t], stacks + (size_t)t * STACK_BYTES, t);
    for (unsigned sweep = 0;; sweep++) {
        /* Each runnable thread runs until it returns or waits at a barrier, in thread order and then, after the
         * barrier, in reverse: a thread that reads what others have not written yet (a missing barrier before a
         * read) meets it in one order, one that overwrites what others have not read yet (a missing barrier
         * before a write) in the other. */
        for (unsigned i = 0; i < n; i++) {
            unsigned t = sweep % 2 ? n - 1 - i : i;
            if (fibers[t].state != RUNNABLE) continue;
            current = (int)t, thread_idx = thread_of(t);
            enter(&fibers[t]);
        }
        unsigned done = 0;
        for (unsigned t = 0; t < n; t++) done += fibers[t].state == DONE;
        if (done == n) break;
        release(n);
    }
}

} // namespace

bool count_only() {
    static const bool on = getenv("RSA_EMU_COUNT_ONLY") && atoi(getenv("RSA_EMU_COUNT_ONLY")) != 0;
    return on;
}

void run_grid(dim3 g, dim3 b, const char *kernel, const std::function<void()> &f) {
    kernel_name = kernel;
    if (!valid_config(g, b)) {
        last_error = cudaErrorInvalidConfiguration; /* what a GPU reports for such a launch, through the same call */
        return;
    }
    if (emu::count_only()) return;
    const unsigned n = b.x * b.y * b.z;
    if (!stacks) {
        void *p = mmap(NULL, STACK_BYTES * MAX_THREADS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
                       MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) die("cannot map the fibers' stacks");
        stacks = (char *)p;
    }
    fibers.resize(n);
    grid_dim = g, block_dim = b, body = &f, barriers = 0;
    bool first = true;
    for (unsigned z = 0; z < g.z; z++)
        for (unsigned y = 0; y < g.y; y++)
            for (unsigned x = 0; x < g.x; x++) {
                block_idx = uint3{x, y, z};
                /* A fiber costs a stack set-up and a switch per thread (and two system calls a switch through
                 * ucontext): a kernel whose first block met no barrier runs its other blocks' threads as plain
                 * calls (a barrier there after all stops the test, it is not skipped). */
                if (!first && barriers == 0) {
                    plain = true;
                    for (unsigned t = 0; t < n; t++) current = (int)t, thread_idx = thread_of(t), f();
                    plain = false;
                    continue;
                }
                first = false;
                run_block(n);
            }
    current = -1;
}

void sync_block() {
    if (current < 0) die("a barrier outside a kernel");
    wait(AT_BLOCK_BARRIER);
}

void warp_exchange(unsigned mask, const void *mine, void *out, int src, size_t bytes) {
    if (current < 0) die("a warp shuffle outside a kernel");
    if (mask != 0xffffffffu) die("only full-mask shuffles are emulated");
    const unsigned t = (unsigned)current, first = t / 32 * 32;
    std::memcpy(&lane_values[t], mine, bytes);
    wait(AT_WARP_BARRIER); /* every lane has offered its value */
    const void *from = src >= 0 && src < 32 ? (const void *)&lane_values[first + (unsigned)src] : mine;
    std::memcpy(out, from, bytes);
    wait(AT_WARP_BARRIER); /* every lane has read before any offers its next value */
}

} // namespace emu

/* Without runtime_emu.cpp (the emulator's own test, whose kernels get host memory) every pointer passes. */
__attribute__((weak)) void emu::need_kernel_pointer(uintptr_t address, const char *kernel) {
    (void)address, (void)kernel;
}

/* ---- the runtime's error state (the other runtime calls are in runtime_emu.cpp) ---- */

cudaError_t emu::fail(cudaError_t e) {
    emu::last_error = e;
    return e;
}

extern "C" cudaError_t cudaGetLastError(void) {
    cudaError_t e = emu::last_error;
    emu::last_error = cudaSuccess;
    return e;
}

static const char *error_name(cudaError_t e, bool description) {
    switch (e) {
    case cudaSuccess: return description ? "no error" : "cudaSuccess";
    case cudaErrorInvalidConfiguration:
        return description ? "invalid configuration argument" : "cudaErrorInvalidConfiguration";
    case cudaErrorMemoryAllocation: return description ? "out of memory" : "cudaErrorMemoryAllocation";
    case cudaErrorInvalidValue: return description ? "invalid argument" : "cudaErrorInvalidValue";
    case cudaErrorInvalidDevice: return description ? "invalid device ordinal" : "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle:
        return description ? "invalid resource handle" : "cudaErrorInvalidResourceHandle";
    case cudaErrorHostMemoryAlreadyRegistered:
        return description ? "part or all of the requested memory range is already mapped"
                           : "cudaErrorHostMemoryAlreadyRegistered";
    case cudaErrorHostMemoryNotRegistered:
        return description ? "pointer does not correspond to a registered memory region"
                           : "cudaErrorHostMemoryNotRegistered";
    default: return description ? "an emulated CUDA error" : "cudaError (emulated)";
    }
}

extern "C" const char *cudaGetErrorName(cudaError_t e) { return error_name(e, false); }
extern "C" const char *cudaGetErrorString(cudaError_t e) { return error_name(e, true); }
