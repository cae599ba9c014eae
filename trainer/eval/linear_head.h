/* The linear classifier of the linear evaluation, on features already computed (host memory): its initialisation,
 * the Mean-Shift standardisation, one SGD epoch and the test accuracy, for both protocols of linear.h. The loops
 * are the official ones on the same features (eval_single.py's LinearHead, eval_multi.py's Normalize +
 * FullBatchNorm + Linear), which tests/eval/test_linear_torch.c checks against PyTorch. Our own parallel loops
 * (cross-entropy rows, statistics blocks, SGD chunks) give the same bits for any number of OpenMP threads; the
 * matrix products are oneDNN's sgemm, which may split a large inner dimension by thread count (REPRODUCE.md,
 * Guarantees): keep --threads fixed to rerun an evaluation bit for bit, as for training. */
#ifndef RSA_LINEAR_HEAD_H
#define RSA_LINEAR_HEAD_H

#include "../train/config.h"
#include "features.h"

#include <stdbool.h>

typedef struct {
    int dim, classes, batch;
    double lr;                     /* before the milestones */
    int milestones[2];             /* epochs (0-based) from which lr is x0.1, and again; 0: none */
    bool meanshift;                /* LINEAR_MEANSHIFT: momentum without Nesterov, weight decay 1e-4, standardised */
    float *w, *b;                  /* classes x dim (torch's Linear.weight), classes */
    float *mw, *mb, *dw, *db;      /* momentum buffers, gradients */
    float *mean, *inv_std;         /* Mean-Shift standardisation (set by linear_head_standardise), else NULL */
    float *logits, *dlogits;       /* batch x classes */
} LinearHead;

/* The head of cfg's protocol (linear, linear_batch, linear_lr, linear_milestones, seed) from dim features to
 * classes. SMALL: weights N(0, 0.01), bias 0 (eval_single.py). MEANSHIFT: torch.nn.Linear's own initialisation,
 * weights and bias uniform in +-1/sqrt(dim) (eval_multi.py leaves it as constructed). Draws from (seed,
 * RNG_EVAL_INIT). */
void linear_head_init(LinearHead *h, const TrainConfig *cfg, int dim, int classes);
void linear_head_free(LinearHead *h);

/* Mean-Shift: each feature's mean and 1 / sqrt(var + 1e-5) over the rows of `normalised` (the training set's
 * L2-normalised features under the test transform), var unbiased as torch.var_mean's: eval_multi.py's
 * FullBatchNorm. */
void linear_head_standardise(LinearHead *h, const Features *normalised);
/* Mean-Shift: L2-normalise each row, then standardise it, in place. SMALL: nothing. */
void linear_head_transform(const LinearHead *h, float *x, int64_t n);

/* The learning rate of a (0-based) epoch: MultiStepLR(milestones, gamma 0.1). */
double linear_head_lr(const LinearHead *h, int epoch);
/* One epoch of SGD (momentum 0.9) at learning rate lr over f's rows in order, in batches of h->batch, the last one
 * partial if f->n is not a multiple (eval_multi.py's loader keeps it; eval_single.py's drops it, which the features
 * have done already). Returns the mean of the batches' mean cross-entropy losses. */
double linear_head_epoch(LinearHead *h, const Features *f, double lr);

/* Top-1 and top-5 accuracy in percent on f (ties in the logits rank the lower class first). */
void linear_head_accuracy(const LinearHead *h, const Features *f, double *top1, double *top5);

#endif
