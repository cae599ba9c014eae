/* "staged": the cpu backend behind a device's interface, so that the code written for the GPU runs, and is tested,
 * on any machine. It claims its own memory (host_memory false): callers must upload, download and copy as they do
 * for cuda, and a background upload lands only when its slot is waited for, the destination holding NaN until then
 * (the latest a GPU may deliver it). The ops are the cpu backend's, so a run gives the cpu backend's bits exactly
 * when the learner, trainer, checkpoints, evaluation and data-parallel staging move every byte where it belongs:
 * a missed transfer or wait shows as other bits or as NaN. It also counts the device memory it hands out, so the
 * memory a GPU run's tensors take can be known on a machine without one. A testing backend: `backend = "staged"` is
 * accepted by the trainer, not offered to experiments. */
#include "backend.h"

#include "../core/error.h"

#include <math.h>
#include <string.h>

/* The copy each slot still owes; the trainer calls a backend from one thread. */
static struct {
    void *dst;
    const void *src;
    size_t bytes;
} owed[UPLOAD_SLOTS];

static void staged_upload_async(int slot, void *dst, const void *host_src, size_t bytes) {
    RSA_ASSERT(slot >= 0 && slot < UPLOAD_SLOTS && bytes % sizeof(float) == 0);
    float *d = dst;
    for (size_t i = 0; i < bytes / sizeof(float); i++) d[i] = NAN;
    owed[slot].dst = dst, owed[slot].src = host_src, owed[slot].bytes = bytes;
}

static void staged_wait_upload(int slot) {
    RSA_ASSERT(slot >= 0 && slot < UPLOAD_SLOTS);
    if (owed[slot].dst) memcpy(owed[slot].dst, owed[slot].src, owed[slot].bytes);
    owed[slot].dst = NULL;
}

/* Device bytes held now and at most; the trainer calls a backend from one thread. */
static size_t held, held_peak;

static void *staged_alloc(size_t bytes) {
    void *p = backend_cpu()->alloc(bytes);
    if (p && (held += bytes) > held_peak) held_peak = held;
    return p;
}

static void staged_release(void *p, size_t bytes) {
    if (!p) return;
    RSA_ASSERT(bytes <= held);
    held -= bytes;
    backend_cpu()->release(p, bytes);
}

size_t backend_staged_peak_bytes(void) { return held_peak; }
size_t backend_staged_held_bytes(void) { return held; }

static Backend make_staged(const Backend *cpu) {
    Backend b = *cpu;
    b.name = "staged";
    b.host_memory = false;
    b.alloc = staged_alloc;
    b.release = staged_release;
    b.upload_async = staged_upload_async;
    b.wait_upload = staged_wait_upload;
    return b;
}

const Backend *backend_staged(void) {
    static Backend b;
    static bool made;
    const Backend *cpu = backend_cpu();
    if (!cpu) return NULL;
    if (!made) b = make_staged(cpu), made = true;
    return &b;
}
