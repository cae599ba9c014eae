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

static Dist SINGLE = {"none", 0, 1, none_f32, none_f64, none_barrier, NULL, 0, NULL, none_allgather};

Dist *dist_single(void) { return &SINGLE; }

Dist *dist_mpi_init(void); /* dist_mpi.c: NULL when not under mpirun or built without MPI */
void dist_mpi_finalize(Dist *d);

Dist *dist_init(void) {
    Dist *d = dist_mpi_init();
    return d ? d : &SINGLE;
}

void dist_finalize(Dist *d) {
    if (d && d != &SINGLE) dist_mpi_finalize(d);
}

#if !(defined(RSA_CUDA) && defined(RSA_MPI))
int dist_attach_gpu(Dist *d) {
    if (d->world == 1) return 0; /* one process: the default GPU, nothing to share */
    return rsa_fail("build with `make CUDA=1` on a machine with Open MPI and NCCL",
                    "multi-GPU data parallel needs the CUDA, MPI and NCCL parts of the build");
}
#endif
