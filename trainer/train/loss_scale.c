#include "loss_scale.h"

#include <math.h>

void loss_scaler_init(LossScaler *s, bool on) {
    s->on = on, s->scale = LOSS_SCALE_INIT, s->good_steps = 0, s->skipped = 0;
}

bool loss_scaler_unscale(LossScaler *s, const Backend *be, float *g, size_t n) {
    if (!s->on) return true;
    /* a sum of squares in double is finite exactly when every float is (float's largest squared is ~1e77) */
    if (!isfinite(be->sumsq(n, g))) {
        s->scale *= 0.5, s->good_steps = 0, s->skipped++;
        return false;
    }
    be->axpby(n, (float)(1.0 / s->scale), g, 0.0f, g);
    if (++s->good_steps == LOSS_SCALE_GROWTH_INTERVAL) s->scale *= 2.0, s->good_steps = 0;
    return true;
}
