/* The CPU backend's convolution (oneDNN). */
#ifndef RSA_CONV_CPU_H
#define RSA_CONV_CPU_H

#include "../../backend/backend.h"

ConvOp *conv_cpu_create(const ConvShape *s, Layout in, Layout out, bool bias);
void conv_cpu_destroy(ConvOp *op);
void conv_cpu_forward(ConvOp *op, int n, const float *x, const float *w, const float *bias, float *y);
void conv_cpu_backward_data(ConvOp *op, int n, const float *dy, const float *w, float *dx);
void conv_cpu_backward_weights(ConvOp *op, int n, const float *x, const float *dy, float *dw, float *dbias);
void conv_cpu_weights_changed(ConvOp *op);
void conv_cpu_set_precision(ConvOp *op, Precision p);
/* oneDNN's name for the forward kernel in use ("jit_wino_4x3:avx512_core", ...), for provenance. */
const char *conv_cpu_impl(ConvOp *op);

/* Winograd for 3x3 stride-1 convolutions (default on). Off gives direct convolution everywhere. */
void conv_cpu_set_winograd(bool enabled);
bool conv_cpu_winograd(void);
/* bf16 kernels for bf16 networks (default on): used where the CPU has AVX512-BF16 and the activations are
 * channel-blocked. Off, or unavailable: fp32 kernels on the rounded values. */
void conv_cpu_set_native_bf16(bool enabled);
bool conv_cpu_native_bf16(void);
bool conv_cpu_has_bf16(void); /* the CPU has AVX512-BF16, whatever the setting */

#endif
