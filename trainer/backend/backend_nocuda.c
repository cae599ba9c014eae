/* Built without CUDA: the cuda backend does not exist (`make CUDA=1` builds it). */
#include "backend.h"

const Backend *backend_cuda(void) { return NULL; }
