/* Data-parallel communication: one process per device (GPU, or a CPU socket), each training on its share of the
 * global batch; gradients and (with SyncBN) batch-norm statistics are summed across processes.
 *
 * Backends: "none" (one process), "mpi" (Open MPI's MPI_Allreduce; host buffers, so the CPU backend's data-parallel
 * engine), "nccl" (device buffers, for the cuda backend; the NCCL id is exchanged through MPI). Launch with
 * `mpirun -np N bin/rsa run ...`, across nodes too; a process started without mpirun is a world of one. */
#ifndef RSA_DIST_H
#define RSA_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Dist Dist;
struct Dist {
    const char *name;
    int rank, world;
    /* In place, summed over processes; identical bits on every rank. */
    void (*allreduce_f32)(Dist *d, float *buf, size_t n);      /* host memory */
    void (*allreduce_f64)(Dist *d, double *buf, size_t n);     /* host memory */
    void (*barrier)(Dist *d);
    /* In place on device memory (NCCL), or NULL: device buffers then go through the host. */
    void (*allreduce_device_f32)(Dist *d, float *buf, size_t n);
    int local_rank; /* rank among the processes of this node (picks the GPU) */
    void *impl;
    /* recv[r * n .. (r + 1) * n) = rank r's send (n floats each, host memory); identical on every rank. */
    void (*allgather_f32)(Dist *d, const float *send, size_t n, float *recv);
    /* Frees what dist_attach_gpu set up (the NCCL communicator); NULL when there is nothing. dist_finalize calls it. */
    void (*detach_gpu)(Dist *d);
    int local_size; /* processes on this node (shares its cores out among the loaders) */
    /* On rank 0, recv = rank 0's bytes, then rank 1's, ... (bytes_of[r]: rank r's count, read on rank 0 only);
     * recv is not touched elsewhere. Host memory; for gathering evaluation features to the rank that reports. */
    void (*gather_bytes)(Dist *d, const void *send, size_t bytes, void *recv, const size_t *bytes_of);
    /* As allreduce_device_f32, for SyncBN's statistics, but it only queues the sum on the GPU's stream, ahead of
     * what is queued next: nothing waits on the host. NULL where allreduce_device_f32 is. */
    void (*allreduce_device_f64)(Dist *d, double *buf, size_t n);
};

/* Whether every rank is ok, at a point where some rank may have failed alone (its data, its disk, its GPU).
 * Collective; every rank gets the same answer, so they stop together instead of waiting forever for the one that
 * left. A failing rank keeps its own message; the others get the first failing rank's. */
bool dist_all_ok(Dist *d, bool ok);

/* Compares n 64-bit values across the processes (collective): the first rank whose values differ from rank 0's, -1
 * when all agree (always in a world of one). rank0 and other (n values each, may be NULL) receive rank 0's values and
 * that rank's. For the checks that every rank holds the same state or starts at the same place. */
int dist_first_disagreeing(Dist *d, const uint64_t *mine, int n, uint64_t *rank0, uint64_t *other);

/* The world this process runs in: MPI when launched by mpirun (and built with MPI), else a world of one. Never NULL
 * (a failed MPI start is fatal: the other ranks could not go on). */
Dist *dist_init(void);
void dist_finalize(Dist *d);
Dist *dist_single(void);

/* For the cuda backend: binds this process to GPU local_rank mod (GPUs on the node) and sets up NCCL for device
 * all-reduces (the unique id goes from rank 0 to the others through MPI); once per process, later calls do nothing.
 * Built with CUDA, MPI and NCCL; -1 with rsa_fail otherwise. */
int dist_attach_gpu(Dist *d);

#endif
