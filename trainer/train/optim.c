#include "optim.h"

#include "../core/error.h"

#include <math.h>
#include <string.h>

int optimizer_init(Optimizer *o, Model *m, OptimKind kind, double momentum, double weight_decay, double trust,
                   bool decay_1d, bool nesterov) {
    memset(o, 0, sizeof *o);
    o->kind = kind, o->m = m, o->momentum = momentum, o->weight_decay = weight_decay, o->trust = trust;
    o->decay_1d = decay_1d, o->nesterov = nesterov;
    o->momentum_buf = m->be->alloc(sizeof(float) * m->n_weights);
    size_t largest = 1;
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].numel > largest) largest = m->params[i].numel;
    o->scratch = kind == OPTIM_LARS ? m->be->alloc(sizeof(float) * largest) : NULL;
    if (!o->momentum_buf || (kind == OPTIM_LARS && !o->scratch))
        return rsa_error_context("allocating the optimiser's momentum buffers");
    return 0;
}

void optimizer_free(Optimizer *o) {
    if (o->momentum_buf) o->m->be->release(o->momentum_buf, sizeof(float) * o->m->n_weights);
    if (o->scratch) {
        size_t largest = 1;
        for (int i = 0; i < o->m->n_params; i++)
            if (o->m->params[i].numel > largest) largest = o->m->params[i].numel;
        o->m->be->release(o->scratch, sizeof(float) * largest);
    }
    memset(o, 0, sizeof *o);
}

static void lars_param(Optimizer *o, const ParamInfo *p, float lr) {
    const Backend *be = o->m->be;
    float *w = o->m->w + p->offset, *g = o->m->g + p->offset, *buf = o->momentum_buf + p->offset;
    if (p->ndim <= 1) { /* no decay, no adaptation: buf = m buf + g; w -= lr buf */
        be->axpby(p->numel, 1.0f, g, (float)o->momentum, buf);
        be->axpby(p->numel, -lr, buf, 1.0f, w);
        return;
    }
    float *dp = o->scratch;
    be->copy(dp, g, sizeof(float) * p->numel);
    be->axpby(p->numel, (float)o->weight_decay, w, 1.0f, dp);
    double wn = sqrt(be->sumsq(p->numel, w)), un = sqrt(be->sumsq(p->numel, dp));
    double q = wn > 0 && un > 0 ? o->trust * wn / un : 1.0;
    be->axpby(p->numel, (float)q, dp, (float)o->momentum, buf);
    be->axpby(p->numel, -lr, buf, 1.0f, w);
}

void optimizer_step(Optimizer *o, double lr) {
    Model *m = o->m;
    const Backend *be = m->be;
    if (o->kind == OPTIM_LARS) {
        for (int i = 0; i < m->n_params; i++) lars_param(o, &m->params[i], (float)lr);
    } else if (o->decay_1d) {
        be->sgd_update(m->n_weights, m->w, m->g, o->momentum_buf, (float)lr, (float)o->momentum,
                       (float)o->weight_decay, o->nesterov);
    } else {
        for (int i = 0; i < m->n_params; i++) {
            const ParamInfo *p = &m->params[i];
            float wd = p->ndim > 1 ? (float)o->weight_decay : 0.0f;
            be->sgd_update(p->numel, m->w + p->offset, m->g + p->offset, o->momentum_buf + p->offset, (float)lr,
                           (float)o->momentum, wd, o->nesterov);
        }
    }
    model_weights_changed(m);
}
