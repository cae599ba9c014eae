/* The CPU backend's own kernels (everything but convolution), on the layouts of blocked.h. */
#ifndef RSA_OPS_CPU_H
#define RSA_OPS_CPU_H

#include "../../backend/backend.h"
#include "../../core/layout.h"
#include "../shapes.h"

#include <stdbool.h>
#include <stddef.h>

void bn_cpu_forward_train(const BnShape *s, Layout l, bool relu, const float *x, const float *gamma,
                          const float *beta, float *y, float *save_mean, float *save_invstd, float momentum, float *rm,
                          float *rv, const BnSync *sync);
void bn_cpu_apply(const BnShape *s, Layout l, bool relu, const float *x, const float *gamma, const float *beta,
                  const float *mean, const float *invstd, float *y);
void bn_cpu_forward_eval(const BnShape *s, Layout l, bool relu, const float *x, const float *gamma,
                         const float *beta, const float *rm, const float *rv, float *y);
void bn_cpu_backward(const BnShape *s, Layout l, bool relu, const float *x, const float *y, const float *dy,
                     const float *gamma, const float *beta, const float *save_mean, const float *save_invstd,
                     float *dx, float *dgamma, float *dbeta, const BnSync *sync);

void relu_cpu_forward(size_t n, const float *x, float *y);
void relu_cpu_backward(size_t n, const float *y, const float *dy, float *dx);
void add_cpu_forward(size_t n, const float *a, const float *b, float *y, bool relu, Precision round);
void accumulate_cpu(size_t n, float *y, const float *x);
void round_lowp_cpu(Precision p, size_t n, float *x);
void accumulate_lowp_cpu(Precision p, size_t n, float *y, const float *x);
void to_lowp_cpu(Precision p, size_t n, const float *x, uint16_t *y16);
void from_lowp_cpu(Precision p, size_t n, const uint16_t *x16, float *y);

void maxpool_cpu_forward(const PoolShape *s, Layout l, const float *x, float *y);
void maxpool_cpu_backward(const PoolShape *s, Layout l, const float *x, const float *dy, float *dx);
void gap_cpu_forward(int n, int c, int hw, Layout l, const float *x, float *y);
void gap_cpu_backward(int n, int c, int hw, Layout l, const float *dy, float *dx);

void linear_cpu_forward(int n, int in, int out, const float *x, const float *w, const float *bias, float *y);
void linear_cpu_backward(int n, int in, int out, const float *x, const float *w, const float *dy, float *dx,
                         float *dw, float *dbias);

/* softmax_xent_ref's result and bits, its rows in parallel. */
double softmax_xent_cpu(int n, int c, const float *logits, const int *labels, float *dlogits);

void axpby_cpu(size_t n, float a, const float *x, float b, float *y);
void sgd_update_cpu(size_t n, float *w, const float *g, float *buf, float lr, float momentum, float wd,
                    bool nesterov);
double sumsq_cpu(size_t n, const float *x);

#endif
