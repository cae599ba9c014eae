/* Built without CUDA: the cuda backend does not exist (`make CUDA=1` builds it). */
#include "backend.h"

#include "../core/error.h"

#include <stddef.h>

const Backend *backend_cuda(void) {
    rsa_fail("build with `make CUDA=1` (CUDA, cuDNN and NCCL under /usr/local/cuda) and run build/cuda/rsa, or use "
             "backend \"cpu\"",
             "this program was built without CUDA");
    return NULL;
}

void backend_cuda_use_device(int local_rank) { (void)local_rank; }
