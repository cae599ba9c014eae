/* Linear evaluation of a frozen encoder, both protocols of the paper (README of ../shared/paper):
 *  SMALL (CIFAR, STL-10, Tiny ImageNet; eval_single.py): Linear(D, C) from N(0, 0.01), bias 0; SGD lr 30,
 *    momentum 0.9, Nesterov, no decay, batch 256, lr x0.1 at epochs 60 and 80 of 100; train transform
 *    RandomResizedCrop(size) + flip, test CenterCrop(size).
 *  MEANSHIFT (ImageNet; eval_multi.py): features L2-normalised, then standardised with the mean and 1/sqrt(var +
 *    1e-5) of the training set's normalised features (test transform, unbiased var: its FullBatchNorm),
 *    Linear(D, C) as torch constructs it; SGD lr 0.01, momentum 0.9, decay 1e-4 (bias too), 40 epochs, x0.1 at 15
 *    and 30, the last partial batch kept; train RandomResizedCrop(224) + flip, test Resize(256) + CenterCrop(224).
 * The head itself is linear_head.h; this file runs the feature passes around it.
 * The reported number is the last epoch's accuracy. The official code's two departures are options: the encoder's
 * BN left in training mode while the head is fitted (bn_train), and the best test accuracy over epochs (kept in
 * best_top1 whenever test_every_epoch is set). */
#ifndef RSA_LINEAR_H
#define RSA_LINEAR_H

#include "../train/config.h"
#include "features.h"

typedef struct {
    double top1, top5;   /* last epoch, percent */
    double best_top1;    /* best test epoch (only with test_every_epoch) */
    int best_epoch;      /* 1-based */
    double final_loss;   /* mean training loss of the last epoch */
    int epochs;
} LinearResult;

typedef struct {
    void (*epoch_done)(void *ctx, int epoch, double loss, double top1); /* top1 < 0 when not tested */
    void *ctx;
} LinearHooks;

/* The loader of the head's training (VIEWS_EVAL_TRAIN) or test features (VIEWS_EVAL_TEST): batch linear_batch;
 * the training loader drops its last partial batch under SMALL (eval_single.py's drop_last) and keeps it under
 * MEANSHIFT (eval_multi.py's). */
LoaderSpec linear_eval_spec(const TrainConfig *cfg, ViewMode mode);

/* Data parallel (d not NULL, more than one process): every rank calls it; the features of each pass are computed by
 * all ranks and gathered to rank 0 (features_compute), which alone fits the head and reports; the result is then
 * rank 0's and what one process would give (the same features, the same head); the other ranks' out means nothing.
 * -1 with rsa_fail, on every rank alike. */
int linear_eval(Model *m, int feature_tensor, const TrainConfig *cfg, const Dataset *train, const Dataset *test,
                bool test_every_epoch, Dist *d, const LinearHooks *hooks, LinearResult *out);

#endif
