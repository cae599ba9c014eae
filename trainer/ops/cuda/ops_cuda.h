/* The cuda backend's ops (device pointers, NHWC activations; see backend/backend.h for the contract) and the
 * kernels they share. Included by .cu files only. */
#ifndef RSA_OPS_CUDA_H
#define RSA_OPS_CUDA_H

extern "C" {
#include "../../backend/backend.h"
}

ConvOp *conv_cuda_create(const ConvShape *s, Layout in, Layout out, bool bias);
void conv_cuda_destroy(ConvOp *op);
void conv_cuda_forward(ConvOp *op, int n, const float *x, const float *w, const float *bias, float *y);
void conv_cuda_backward_data(ConvOp *op, int n, const float *dy, const float *w, float *dx);
void conv_cuda_backward_weights(ConvOp *op, int n, const float *x, const float *dy, float *dw, float *dbias);
void conv_cuda_weights_changed(ConvOp *op);
void conv_cuda_set_precision(ConvOp *op, Precision p);
void conv_cuda_set_weight_grad_precision(ConvOp *op, Precision p);

void bn_cuda_forward_train(const BnShape *s, Layout l, bool relu, const float *x, const float *gamma,
                           const float *beta, float *y, float *save_mean, float *save_invstd, float momentum,
                           float *rm, float *rv, const BnSync *sync);
void bn_cuda_forward_eval(const BnShape *s, Layout l, bool relu, const float *x, const float *gamma,
                          const float *beta, const float *rm, const float *rv, float *y);
void bn_cuda_apply(const BnShape *s, Layout l, bool relu, const float *x, const float *gamma, const float *beta,
                   const float *save_mean, const float *save_invstd, float *y);
void bn_cuda_backward(const BnShape *s, Layout l, bool relu, const float *x, const float *y, const float *dy,
                      const float *gamma, const float *beta, const float *save_mean, const float *save_invstd,
                      float *dx, float *dgamma, float *dbeta, const BnSync *sync);

void relu_cuda_forward(size_t n, const float *x, float *y);
void relu_cuda_backward(size_t n, const float *y, const float *dy, float *dx);
void add_cuda_forward(size_t n, const float *a, const float *b, float *y, bool relu, Precision round);
void accumulate_cuda(size_t n, float *y, const float *x);
void round_lowp_cuda(Precision p, size_t n, float *x);
void accumulate_lowp_cuda(Precision p, size_t n, float *y, const float *x);
/* y = x in p's 16-bit format (bf16 or fp16, rounded to nearest even), and back (exact). */
void to_lowp_cuda(Precision p, size_t n, const float *x, void *y);
void from_lowp_cuda(Precision p, size_t n, const void *x, float *y);

void maxpool_cuda_forward(const PoolShape *s, Layout l, const float *x, float *y);
void maxpool_cuda_backward(const PoolShape *s, Layout l, const float *x, const float *dy, float *dx);
void gap_cuda_forward(int n, int c, int hw, Layout l, const float *x, float *y);
void gap_cuda_backward(int n, int c, int hw, Layout l, const float *dy, float *dx);

void linear_cuda_forward(int n, int in, int out, const float *x, const float *w, const float *bias, float *y);
void linear_cuda_backward(int n, int in, int out, const float *x, const float *w, const float *dy, float *dx,
                          float *dw, float *dbias);

void axpby_cuda(size_t n, float a, const float *x, float b, float *y);
void sgd_update_cuda(size_t n, float *w, const float *g, float *buf, float lr, float momentum, float wd,
                     bool nesterov);
double sumsq_cuda(size_t n, const float *x);

/* Bias of a [rows][c] output: y[r][ch] += bias[ch]; its gradient dbias[ch] += sum_r dy[r][ch] (deterministic). */
void bias_cuda_add(size_t rows, int c, const float *bias, float *y);
void bias_cuda_backward(size_t rows, int c, const float *dy, float *dbias);

/* out[b][j][i] = in[b][i][j] (+ out[b][j][i] when accumulate) for `batch` matrices of rows x cols: NCHW <-> NHWC
 * activations, OIHW <-> OHWI weights. */
void transpose_cuda(int batch, int rows, int cols, const float *in, float *out, bool accumulate);
/* The same from 16-bit values in format p (bf16 or fp16), widened exactly. */
void transpose_lowp_cuda(Precision p, int batch, int rows, int cols, const void *in, float *out, bool accumulate);

#endif
