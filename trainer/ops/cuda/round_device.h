/* A mixed-precision network's rounding (core/precision.h) inside the cuda backend's kernels, so that an op can round
 * what it writes in the same pass. The conversions of cuda_bf16.h and cuda_fp16.h round to nearest even and
 * overflow to infinity, as core/precision.h specifies; a NaN is passed through with its bits, as there. */
#ifndef RSA_ROUND_DEVICE_H
#define RSA_ROUND_DEVICE_H

#include "../../core/precision.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

__device__ inline float round_lowp_device(Precision p, float v) {
    if (v != v) return v; /* NaN keeps its bits, as in precision.h (the conversions would make a canonical NaN) */
    if (p == PRECISION_BF16) return __bfloat162float(__float2bfloat16_rn(v));
    if (p == PRECISION_FP16) return __half2float(__float2half_rn(v));
    return v;
}

#endif
