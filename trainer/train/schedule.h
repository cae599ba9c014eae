/* The schedules of the official code, as functions of the step counter k (1-based: the official num_step is
 * incremented before use) and the run's length K = epochs * floor(N / batch). */
#ifndef RSA_SCHEDULE_H
#define RSA_SCHEDULE_H

#include "config.h"

/* RSA's beta: DECAY beta_base (cos(pi k / K) + 1) / 2; FIXED beta_base; TABLE beta_table[k - 1]. */
double schedule_beta(const TrainConfig *c, int64_t k, int64_t K);
/* BYOL's EMA rate: 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2; MoCo: tau_base throughout. */
double schedule_tau(const TrainConfig *c, int64_t k, int64_t K);
/* Learning rate of step `step_in_epoch` (0-based) of epoch `epoch` (0-based):
 * COSINE_EPOCH (train_single.py): base (1 + cos(pi epoch / epochs)) / 2, constant within an epoch;
 * COSINE_STEP (train_multi.py): e = epoch + step / steps_per_epoch; base e / warmup during warm-up, then
 * base (1 + cos(pi (e - warmup) / (epochs - warmup))) / 2;
 * TABLE: lr_table[epoch * steps_per_epoch + step]. */
double schedule_lr(const TrainConfig *c, int epoch, int64_t step_in_epoch, int64_t steps_per_epoch);

#endif
