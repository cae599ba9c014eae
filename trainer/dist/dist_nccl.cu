/* NCCL for the cuda backend's data parallel runs: device-to-device gradient all-reduce, one GPU per process. The
 * communicator's id is made by rank 0 and sent to the others through MPI, so the same mpirun command works on one
 * node or many. Built with CUDA=1 and MPI; NCCL's all-reduce is deterministic for a fixed set of GPUs and settings. */
#ifdef RSA_MPI
extern "C" {
#include "dist.h"
}
#include "../ops/cuda/cuda_util.h"

#define OMPI_SKIP_MPICXX 1 /* the C API only: its C++ bindings do not build with -Werror */
#include <mpi.h>
#include <nccl.h>

#define NCCL_CHECK(call)                                                                                         \
    do {                                                                                                         \
        ncclResult_t r_ = (call);                                                                                \
        if (r_ != ncclSuccess)                                                                                   \
            rsa_fatal("set NCCL_DEBUG=INFO to see why; every rank needs its own GPU", "%s failed: %s", #call,    \
                      ncclGetErrorString(r_));                                                                   \
    } while (0)

static ncclComm_t comm;

/* Both queued on the stream of the cuda backend's ops (the legacy default stream), so the kernels queued after them
 * see the sums and a download waits for them; nothing waits on the host. */
static void nccl_f32(Dist *d, float *buf, size_t n) {
    (void)d;
    NCCL_CHECK(ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, comm, 0));
}

static void nccl_f64(Dist *d, double *buf, size_t n) {
    (void)d;
    NCCL_CHECK(ncclAllReduce(buf, buf, n, ncclDouble, ncclSum, comm, 0));
}

static void nccl_detach(Dist *d) {
    CUDA_CHECK(cudaDeviceSynchronize()); /* a SyncBN all-reduce may still be queued */
    NCCL_CHECK(ncclCommDestroy(comm));
    d->allreduce_device_f32 = NULL, d->allreduce_device_f64 = NULL, d->detach_gpu = NULL;
}

extern "C" int dist_attach_gpu(Dist *d) {
    if (d->world == 1 || d->allreduce_device_f32) return 0;
    int count = 0;
    bool ok = cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
    if (!ok) {
        cudaGetLastError();
        rsa_fail("run the cuda backend on a machine with NVIDIA GPUs", "rank %d sees no GPU", d->rank);
    }
    /* before the id's broadcast, which the others would wait in for ever if one rank left here */
    if (!dist_all_ok(d, ok)) return -1;
    CUDA_CHECK(cudaSetDevice(d->local_rank % count));
    ncclUniqueId id;
    if (d->rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    if (MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
        return rsa_fail("check the mpirun command line", "rank %d could not receive the NCCL id", d->rank);
    NCCL_CHECK(ncclCommInitRank(&comm, d->world, id, d->rank));
    d->allreduce_device_f32 = nccl_f32;
    d->allreduce_device_f64 = nccl_f64;
    d->detach_gpu = nccl_detach;
    return 0;
}
#endif
