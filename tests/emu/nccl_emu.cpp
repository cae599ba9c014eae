/* The NCCL calls of trainer/dist/dist_nccl.cu over MPI on host memory, so that the cuda backend's data-parallel
 * path (its gradients and SyncBN's sums summed "on the device", the communicator's id sent through MPI) runs under
 * mpirun on a machine without GPUs, with the emulated kernels (cuda_emu.h). It checks what the trainer asks of
 * NCCL (which buffers, how many elements of which type, on which ranks, in which order), not NCCL itself. */
#include "cuda_emu.h"

#include <nccl.h>

#include <cstring>

/* the headers' version: a run's provenance records it (harness/provenance.c) */
extern "C" ncclResult_t ncclGetVersion(int *version) {
    *version = NCCL_VERSION_CODE;
    return ncclSuccess;
}

#ifdef RSA_MPI /* the calls of dist_nccl.cu, which a build without MPI leaves out */
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>

struct ncclComm {
    int rank, world;
};

/* Where a real id carries a socket address, this one carries a fixed pattern every rank must receive intact. */
static const char ID_PATTERN[] = "rsa-repro emulated NCCL id";

extern "C" ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
    std::memset(id->internal, 0, sizeof id->internal);
    std::memcpy(id->internal, ID_PATTERN, sizeof ID_PATTERN);
    return ncclSuccess;
}

extern "C" ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank) {
    int world = 0, me = -1;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    if (std::memcmp(id.internal, ID_PATTERN, sizeof ID_PATTERN) != 0 || nranks != world || rank != me)
        return ncclInvalidArgument; /* an id that did not arrive, or ranks that do not match MPI's */
    *comm = new ncclComm{rank, nranks};
    return ncclSuccess;
}

extern "C" ncclResult_t ncclAllReduce(const void *send, void *recv, size_t count, ncclDataType_t type,
                                      ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
    (void)stream;
    if (!comm || op != ncclSum || (type != ncclFloat && type != ncclDouble) || count > (size_t)INT32_MAX)
        return ncclInvalidArgument;
    MPI_Datatype t = type == ncclFloat ? MPI_FLOAT : MPI_DOUBLE;
    const size_t bytes = count * (type == ncclFloat ? sizeof(float) : sizeof(double));
    emu::need_device(send, bytes, "ncclAllReduce", "the send buffer is not device memory, or too short");
    emu::need_device(recv, bytes, "ncclAllReduce", "the receive buffer is not device memory, or too short");
    int rc = MPI_Allreduce(send == recv ? MPI_IN_PLACE : send, recv, (int)count, t, MPI_SUM, MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? ncclSuccess : ncclSystemError;
}

extern "C" ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    delete comm;
    return ncclSuccess;
}

extern "C" const char *ncclGetErrorString(ncclResult_t r) {
    return r == ncclSuccess ? "no error" : r == ncclInvalidArgument ? "invalid argument (emulated NCCL)"
                                                                     : "system error (emulated NCCL)";
}
#endif
