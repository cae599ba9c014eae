/* One training run, start to finish or resumed: data, learner, epochs of steps, metrics, checkpoints, the kNN
 * monitor, and the final linear evaluation. Everything is written into the run directory:
 *   steps.tsv        one row per step: step epoch loss loss_w loss_a beta tau lr data_s compute_s
 *   epochs.tsv       one row per epoch: epoch loss loss_w loss_a knn_top1 seconds images_per_s data_share
 *   checkpoint.safetensors   the full state (checkpoint.h), rewritten atomically
 *   linear.tsv       one row per linear-evaluation epoch: epoch loss top1 (top1 -1 when not tested)
 *   result.txt       key = value lines: linear_top1, linear_top5, linear_best_top1, knn_top1, train_seconds, ...;
 *                    mixed precision adds precision (and fp16 loss_scale, skipped_steps)
 * The library prints nothing: progress goes to the caller's hook. */
#ifndef RSA_TRAINER_H
#define RSA_TRAINER_H

#include "config.h"
#include "learner.h"

#include <signal.h>

typedef struct {
    int epoch, epochs;
    int64_t step, total_steps;
    int64_t step_in_epoch, steps_per_epoch;
    StepMetrics m;
    double images_per_s;  /* over the current epoch */
    double data_share;    /* fraction of wall time waiting for data in the current epoch */
    double eta_seconds;
    const char *phase;    /* "train", "knn", "bn-stats", "linear" */
    double knn_top1;      /* last kNN accuracy, -1 if none */
    double linear_top1;   /* linear phase: test accuracy of the last tested epoch */
    int linear_epoch, linear_epochs;
} TrainProgress;

typedef struct {
    void (*progress)(void *ctx, const TrainProgress *p);
    void *ctx;
    /* Set asynchronously (signal handler): the run writes a checkpoint at the next step boundary and returns 1. */
    volatile sig_atomic_t *stop;
    /* Tests: stop after this many steps of this call (0: no limit), as if stop were set. */
    int64_t max_steps;
    /* The data-parallel world (NULL: one process). cfg->batch is the global batch; each rank loads and steps on
     * batch / world images. Rank 0 alone writes the run directory and evaluates. */
    Dist *dist;
} TrainHooks;

typedef struct {
    double linear_top1, linear_top5, linear_best_top1;
    int linear_best_epoch;
    double knn_top1;     /* last monitor, -1 if never run */
    double train_seconds; /* wall time of the pretraining steps in this call and earlier ones */
    double final_loss;
    int64_t skipped_steps; /* fp16: optimiser steps skipped for an overflowing gradient (loss_scale.h) */
    double loss_scale;     /* fp16: the loss scale at the end (0 otherwise) */
} TrainResult;

/* The loader threads a run uses: cfg's count, or for LOADER_THREADS_AUTO loader_threads_auto's for the run's
 * backend (a GPU's share of the node's cores on cuda) with `processes_on_node` data-parallel processes here. */
int train_loader_threads(const TrainConfig *cfg, int processes_on_node);

/* 0: finished (result filled, result.txt written by rank 0); 1: stopped at a step boundary with a checkpoint written;
 * -1: failed (rsa_fail; the last good checkpoint is left in place). */
int train_run(const TrainConfig *cfg, const char *run_dir, const char *config_hash, const TrainHooks *hooks,
              TrainResult *result);

#endif
