/* Reference implementations: plain loops over NCHW tensors that state what each op computes. They are the spec the
 * fast paths are tested against, and their gradients are tested against finite differences.
 *
 * Conventions for every op, reference or fast:
 *  - gradients of parameters ACCUMULATE (dw += ...), so two backward passes through shared weights add up;
 *  - gradients of inputs OVERWRITE (dx = ...);
 *  - a NULL gradient pointer means "not needed". */
#ifndef RSA_OPS_REF_H
#define RSA_OPS_REF_H

#include "../../backend/backend.h"
#include "../shapes.h"

#include <stdbool.h>
#include <stddef.h>

void conv2d_forward_ref(const ConvShape *s, const float *x, const float *w, const float *bias, float *y);
void conv2d_backward_data_ref(const ConvShape *s, const float *dy, const float *w, float *dx);
void conv2d_backward_weights_ref(const ConvShape *s, const float *x, const float *dy, float *dw, float *dbias);

/* Training mode: normalise with the batch mean and biased variance; save_mean and save_invstd = 1/sqrt(var + eps)
 * are kept for backward. When running_mean is not NULL the running statistics move by momentum towards the batch
 * mean and the UNBIASED batch variance, as torch.nn.BatchNorm does. */
void batchnorm_forward_train_ref(const BnShape *s, const float *x, const float *gamma, const float *beta, float *y,
                                 float *save_mean, float *save_invstd, float momentum, float *running_mean,
                                 float *running_var, const BnSync *sync);
/* y = (x - mean) * (gamma * invstd) + beta with given statistics, as training-mode forward computes it. */
void batchnorm_apply_ref(const BnShape *s, const float *x, const float *gamma, const float *beta, const float *mean,
                         const float *invstd, float *y);
void batchnorm_forward_eval_ref(const BnShape *s, const float *x, const float *gamma, const float *beta,
                                const float *running_mean, const float *running_var, float *y);
/* With sync (SyncBN): dx from the sums over all processes; dgamma/dbeta this process's share. */
void batchnorm_backward_ref(const BnShape *s, const float *x, const float *dy, const float *gamma,
                            const float *save_mean, const float *save_invstd, float *dx, float *dgamma, float *dbeta,
                            const BnSync *sync);

void relu_forward_ref(size_t n, const float *x, float *y);
/* Uses the output y: dx = dy where y > 0, else 0 (as torch's threshold_backward on an in-place ReLU). */
void relu_backward_ref(size_t n, const float *y, const float *dy, float *dx);

void add_forward_ref(size_t n, const float *a, const float *b, float *y);
/* x = round_to(p, x): the rounding of a mixed-precision network (core/precision.h). */
void round_lowp_ref(Precision p, size_t n, float *x);
/* y = round_to(p, y + round_to(p, x)): a gradient summed in the 16-bit format. */
void accumulate_lowp_ref(Precision p, size_t n, float *y, const float *x);
/* 16-bit copies (core/precision.h: lowp_bits, lowp_value). */
void to_lowp_ref(Precision p, size_t n, const float *x, uint16_t *y16);
void from_lowp_ref(Precision p, size_t n, const uint16_t *x16, float *y);

/* Max pooling; padding never wins; ties go to the first element in scan order, as PyTorch's CPU kernel. */
void maxpool_forward_ref(const PoolShape *s, const float *x, float *y);
void maxpool_backward_ref(const PoolShape *s, const float *x, const float *dy, float *dx);

/* Global average pooling: y[n][c] = mean over h x w. */
void gap_forward_ref(int n, int c, int hw, const float *x, float *y);
void gap_backward_ref(int n, int c, int hw, const float *dy, float *dx);

/* y[n][o] = sum_i x[n][i] w[o][i] + b[o], w as torch.nn.Linear ([out][in]). */
void linear_forward_ref(int n, int in, int out, const float *x, const float *w, const float *bias, float *y);
void linear_backward_ref(int n, int in, int out, const float *x, const float *w, const float *dy, float *dx, float *dw,
                         float *dbias);

/* Row-wise L2 normalisation, y = x / max(|x|, 1e-12) as torch.nn.functional.normalize; norm[n] is kept. */
void l2norm_forward_ref(int n, int d, const float *x, float *y, float *norm);
void l2norm_backward_ref(int n, int d, const float *x, const float *norm, const float *dy, float *dx);

/* Cosine distance of unit rows, l[i] = 2 - 2 <a_i, b_i>. Backward takes dl[i]; da or db may be NULL. */
void cosdist_forward_ref(int n, int d, const float *a, const float *b, float *l);
void cosdist_backward_ref(int n, int d, const float *a, const float *b, const float *dl, float *da, float *db);

/* Optimiser arithmetic (see Backend.axpby / sgd_update / sumsq). */
void axpby_ref(size_t n, float a, const float *x, float b, float *y);
void sgd_update_ref(size_t n, float *w, const float *g, float *buf, float lr, float momentum, float wd, bool nesterov);
double sumsq_ref(size_t n, const float *x);

/* Mean softmax cross-entropy over n rows of c logits; returns the loss; dlogits (may be NULL) gets its gradient. */
double softmax_xent_ref(int n, int c, const float *logits, const int *labels, float *dlogits);
/* One row of it: returns the row's loss; drow (may be NULL) gets the row's gradient of the mean over n rows. */
double softmax_xent_row_ref(int c, const float *z, int label, int n, float *drow);

#endif
