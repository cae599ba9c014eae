#include "dist.h"

#include "../core/error.h"

#include <stdlib.h>
#include <string.h>

static void none_f32(Dist *d, float *buf, size_t n) { (void)d, (void)buf, (void)n; }
static void none_f64(Dist *d, double *buf, size_t n) { (void)d, (void)buf, (void)n; }
static void none_barrier(Dist *d) { (void)d; }
static void none_allgather(Dist *d, const float *send, size_t n, float *recv) {
    (void)d;
    if (recv != send) memcpy(recv, send, sizeof(float) * n);
}

static void none_gather(Dist *d, const void *send, size_t bytes, void *recv, const size_t *bytes_of) {
    (void)d, (void)bytes_of;
    if (recv != send && bytes) memcpy(recv, send, bytes);
}

static Dist SINGLE = {"none", 0, 1, none_f32, none_f64, none_barrier, NULL, 0, NULL, none_allgather, NULL, 1,
                      none_gather, NULL};

Dist *dist_single(void) { return &SINGLE; }

int dist_first_disagreeing(Dist *d, const uint64_t *mine, int n, uint64_t *rank0, uint64_t *other) {
    if (d->world == 1) return -1;
    const int W = 4 * n; /* 16-bit pieces: a float holds each exactly, and the gather moves floats */
    float *send = malloc(sizeof(float) * (size_t)W), *all = malloc(sizeof(float) * (size_t)W * (size_t)d->world);
    if (!send || !all) rsa_fatal("free memory", "out of memory");
    for (int i = 0; i < W; i++) send[i] = (float)((mine[i / 4] >> (16 * (i % 4))) & 0xffff);
    d->allgather_f32(d, send, (size_t)W, all);
    int bad = -1;
    for (int r = 1; r < d->world && bad < 0; r++)
        if (memcmp(all + (size_t)r * W, all, sizeof(float) * (size_t)W) != 0) bad = r;
    for (int i = 0; bad >= 0 && i < n; i++) {
        uint64_t a = 0, b = 0;
        for (int k = 0; k < 4; k++) {
            a |= (uint64_t)all[4 * i + k] << (16 * k);
            b |= (uint64_t)all[(size_t)bad * W + 4 * i + k] << (16 * k);
        }
        if (rank0) rank0[i] = a;
        if (other) other[i] = b;
    }
    free(send), free(all);
    return bad;
}

bool dist_all_ok(Dist *d, bool ok) {
    if (d->world == 1) return ok;
    double failed = !ok;
    d->allreduce_f64(d, &failed, 1);
    if (failed == 0) return true;
    enum { MSG = 400 }; /* characters of a message, one per float (exact) */
    float mine[MSG + 1], *all = malloc(sizeof(float) * (MSG + 1) * (size_t)d->world);
    if (!all) rsa_fatal("free memory", "out of memory");
    const char *msg = ok ? "" : rsa_error_message();
    mine[0] = !ok;
    for (int i = 0; i < MSG; i++) mine[1 + i] = (float)(unsigned char)(i < (int)strlen(msg) ? msg[i] : 0);
    d->allgather_f32(d, mine, MSG + 1, all);
    if (ok) {
        int r = 0;
        while (r < d->world - 1 && all[(size_t)r * (MSG + 1)] == 0) r++;
        char text[MSG + 1];
        for (int i = 0; i < MSG; i++) text[i] = (char)all[(size_t)r * (MSG + 1) + 1 + i];
        text[MSG] = 0;
        rsa_fail("every rank stopped with it; fix what it reports and rerun (the last checkpoint is kept)",
                 "data-parallel rank %d of %d failed: %s", r, d->world, text);
    }
    free(all);
    return false;
}

Dist *dist_mpi_init(void); /* dist_mpi.c: NULL when not under mpirun or built without MPI */
void dist_mpi_finalize(Dist *d);

Dist *dist_init(void) {
    Dist *d = dist_mpi_init();
    return d ? d : &SINGLE;
}

void dist_finalize(Dist *d) {
    if (!d || d == &SINGLE) return;
    if (d->detach_gpu) d->detach_gpu(d);
    dist_mpi_finalize(d);
}

#if !(defined(RSA_CUDA) && defined(RSA_MPI))
/* Weak: the tests that run dist_nccl.cu's code on the CPU (tests/emu) link their build of it over this one. */
__attribute__((weak)) int dist_attach_gpu(Dist *d) {
    if (d->world == 1) return 0; /* one process: the default GPU, nothing to share */
    return rsa_fail("build with `make CUDA=1` on a machine with Open MPI and NCCL, and run build/cuda/rsa",
                    "multi-GPU data parallel needs the CUDA, MPI and NCCL parts of the build");
}
#endif
