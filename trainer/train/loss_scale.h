/* Dynamic loss scaling for fp16 training, with torch.cuda.amp.GradScaler's defaults and rules: the loss gradient
 * is multiplied by the scale (2^16 at first) before backward, so small gradients survive fp16's 2^-24; after
 * backward (and the data-parallel average) the parameter gradients are divided by it. When one of them is not
 * finite (an fp16 overflow), the optimiser step is skipped and the scale halves; after 2000 steps in a row without
 * one it doubles. The EMA target and MoCo's queue move on a skipped step as they do in a GradScaler loop, where only
 * optimizer.step is skipped. The scale is a power of two, so scaling and unscaling are exact. The state is part of
 * a checkpoint (exact resume). */
#ifndef RSA_LOSS_SCALE_H
#define RSA_LOSS_SCALE_H

#include "../backend/backend.h"

#include <stdbool.h>
#include <stdint.h>

enum { LOSS_SCALE_GROWTH_INTERVAL = 2000 };
#define LOSS_SCALE_INIT 65536.0

typedef struct {
    bool on;            /* off: a scale of 1 and every step taken */
    double scale;
    int64_t good_steps; /* finite steps since the scale last changed */
    int64_t skipped;    /* steps skipped so far in the run */
} LossScaler;

void loss_scaler_init(LossScaler *s, bool on);
/* What the loss gradient is multiplied by. */
static inline double loss_scaler_factor(const LossScaler *s) { return s->on ? s->scale : 1.0; }
/* After backward: checks the n gradients g (backend memory) and divides them by the scale; then moves the scale.
 * false: some gradient was not finite and this step must be skipped. */
bool loss_scaler_unscale(LossScaler *s, const Backend *be, float *g, size_t n);

#endif
