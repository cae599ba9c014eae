/* The MPI world (Open MPI). Only entered when mpirun started us (OMPI_COMM_WORLD_SIZE is set): a plain run of the
 * program never initialises MPI. */
#include "dist.h"

#include "../core/error.h"

#include <stdlib.h>
#include <string.h>

#ifdef RSA_MPI
#include <mpi.h>

#define MPI_CHECK(call)                                                                                          \
    do {                                                                                                         \
        int rc_ = (call);                                                                                        \
        if (rc_ != MPI_SUCCESS) {                                                                                \
            char msg_[MPI_MAX_ERROR_STRING];                                                                     \
            int len_ = 0;                                                                                        \
            MPI_Error_string(rc_, msg_, &len_);                                                                  \
            rsa_fatal("check the mpirun command line and that every rank runs the same build", "%s failed: %s", \
                      #call, msg_);                                                                              \
        }                                                                                                        \
    } while (0)

/* Chunks keep each MPI call under INT_MAX elements. */
static void mpi_f32(Dist *d, float *buf, size_t n) {
    (void)d;
    for (size_t i = 0; i < n; i += 1u << 30) {
        size_t len = n - i < (1u << 30) ? n - i : (1u << 30);
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf + i, (int)len, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    }
}

static void mpi_f64(Dist *d, double *buf, size_t n) {
    (void)d;
    for (size_t i = 0; i < n; i += 1u << 30) {
        size_t len = n - i < (1u << 30) ? n - i : (1u << 30);
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf + i, (int)len, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
    }
}

static void mpi_barrier(Dist *d) {
    (void)d;
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
}

static void mpi_allgather(Dist *d, const float *send, size_t n, float *recv) {
    if (n > (1u << 30))
        rsa_fatal("use a smaller batch or embedding", "an all-gather of %zu floats per rank exceeds MPI's int count", n);
    MPI_CHECK(MPI_Allgather(send, (int)n, MPI_FLOAT, recv, (int)n, MPI_FLOAT, MPI_COMM_WORLD));
    (void)d;
}

/* Point to point, rank by rank, in pieces under INT_MAX bytes. */
static void mpi_gather(Dist *d, const void *send, size_t bytes, void *recv, const size_t *bytes_of) {
    const size_t piece = (size_t)1 << 30;
    if (d->rank != 0) {
        for (size_t i = 0; i < bytes; i += piece)
            MPI_CHECK(MPI_Send((const char *)send + i, (int)(bytes - i < piece ? bytes - i : piece), MPI_BYTE, 0, 7,
                               MPI_COMM_WORLD));
        return;
    }
    char *at = recv;
    if (bytes) memcpy(at, send, bytes);
    at += bytes;
    for (int r = 1; r < d->world; r++) {
        for (size_t i = 0; i < bytes_of[r]; i += piece)
            MPI_CHECK(MPI_Recv(at + i, (int)(bytes_of[r] - i < piece ? bytes_of[r] - i : piece), MPI_BYTE, r, 7,
                               MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        at += bytes_of[r];
    }
}

static Dist world;

Dist *dist_mpi_init(void) {
    if (!getenv("OMPI_COMM_WORLD_SIZE")) return NULL;
    int provided;
    MPI_CHECK(MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided));
    world.name = "mpi";
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &world.rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world.world));
    world.allreduce_f32 = mpi_f32;
    world.allreduce_f64 = mpi_f64;
    world.barrier = mpi_barrier;
    world.allgather_f32 = mpi_allgather;
    world.gather_bytes = mpi_gather;
    /* the rank among the processes that share this node's memory (and GPUs), whatever order mpirun placed them in */
    MPI_Comm node;
    MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world.rank, MPI_INFO_NULL, &node));
    MPI_CHECK(MPI_Comm_rank(node, &world.local_rank));
    MPI_CHECK(MPI_Comm_size(node, &world.local_size));
    MPI_CHECK(MPI_Comm_free(&node));
    return &world;
}

void dist_mpi_finalize(Dist *d) {
    (void)d;
    MPI_CHECK(MPI_Finalize());
}
#else
Dist *dist_mpi_init(void) {
    if (getenv("OMPI_COMM_WORLD_SIZE"))
        rsa_fatal("rebuild with Open MPI (make deps installs libopenmpi-dev; the Makefile finds it)",
                  "started by mpirun, but this build has no MPI support");
    return NULL;
}

void dist_mpi_finalize(Dist *d) { (void)d; }
#endif
