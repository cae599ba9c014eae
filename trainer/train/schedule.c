#include "schedule.h"

#include "../core/error.h"

#include <math.h>

static const double PI = 3.14159265358979323846;

static double table_at(const float *t, int64_t len, int64_t i) {
    RSA_ASSERT(len > 0);
    return t[i < 0 ? 0 : i >= len ? len - 1 : i];
}

double schedule_beta(const TrainConfig *c, int64_t k, int64_t K) {
    switch (c->beta_schedule) {
    case BETA_FIXED: return c->beta_base;
    case BETA_TABLE: return table_at(c->beta_table, c->beta_table_len, k - 1);
    case BETA_DECAY: break;
    }
    return c->beta_base * (cos(PI * (double)k / (double)K) + 1) / 2;
}

double schedule_tau(const TrainConfig *c, int64_t k, int64_t K) {
    if (c->method == METHOD_MOCOV2) return c->tau_base; /* MoCo's key encoder: a fixed momentum */
    return 1 - (1 - c->tau_base) * (cos(PI * (double)k / (double)K) + 1) / 2;
}

double schedule_lr(const TrainConfig *c, int epoch, int64_t step_in_epoch, int64_t steps_per_epoch) {
    double base = train_config_base_lr(c);
    switch (c->lr_schedule) {
    case LR_TABLE: return table_at(c->lr_table, c->lr_table_len, (int64_t)epoch * steps_per_epoch + step_in_epoch);
    case LR_COSINE_EPOCH: return base * 0.5 * (1 + cos(PI * epoch / c->epochs));
    case LR_COSINE_STEP: break;
    }
    double e = epoch + (double)step_in_epoch / (double)steps_per_epoch;
    if (e < c->warmup_epochs) return base * e / c->warmup_epochs;
    return base * 0.5 * (1 + cos(PI * (e - c->warmup_epochs) / (c->epochs - c->warmup_epochs)));
}
