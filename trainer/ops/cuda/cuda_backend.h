/* Settings of the cuda backend (built with `make CUDA=1`). They may be changed at any time; each convolution picks
 * its algorithms again for a setting it has not run under before. */
#ifndef RSA_CUDA_BACKEND_H
#define RSA_CUDA_BACKEND_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Deterministic (default on): convolutions use only algorithms cuDNN reports as deterministic, chosen by cuDNN's
 * heuristics rather than by timing, so the same program gives the same bits on the same GPU and libraries.
 * Off: each convolution takes the algorithm cudnnFind measures fastest, which may vary between runs and may
 * accumulate with atomics. The backend's own kernels are deterministic either way. */
void cuda_set_deterministic(bool on);
bool cuda_deterministic(void);

/* TF32 tensor-core math in convolutions and linear layers (default off: strict FP32, FMA only). TF32 keeps 10
 * mantissa bits of each product's inputs, so results move by about 1e-3 relative. */
void cuda_set_tf32(bool on);
bool cuda_tf32(void);

/* Tensor-core convolutions for bf16 and fp16 networks (default on): their forward and input-gradient convolutions
 * take 16-bit copies of the values, which the network has already rounded, and sum in fp32. Off: fp32 (or TF32)
 * convolutions on the rounded values. Read when a network's precision is set (model_set_precision). */
void cuda_set_lowp_convolutions(bool on);
bool cuda_lowp_convolutions(void);
/* How many (convolution, batch size) pairs ran on the fp32 path although eligible for the 16-bit one, because cuDNN
 * offered no 16-bit algorithm for their forward or input-gradient direction, or for their weight gradient where
 * that is 16-bit (0 when every one was served); and the last such refusal, with cuDNN's reason ("" when none). */
int cuda_lowp_refusals(void);
const char *cuda_lowp_refusal(void);

/* Device memory in use on the current GPU (cudaMemGetInfo: total - free), for benchmarks. */
size_t cuda_device_used_bytes(void);

#ifdef __cplusplus
}
#endif

#endif
