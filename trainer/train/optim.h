/* Optimisers over a model's flat parameters, with PyTorch's arithmetic (Backend.sgd_update):
 *  SGD  — torch.optim.SGD with momentum and coupled weight decay (on 1-D parameters too unless decay_1d is off);
 *  LARS — the official code's common/lars.py: parameters with more than one dimension get decay and the trust ratio
 *         trust |w| / |g + wd w|; 1-D parameters (biases, BN) get neither. */
#ifndef RSA_OPTIM_H
#define RSA_OPTIM_H

#include "../nn/model.h"
#include "config.h"

typedef struct {
    OptimKind kind;
    Model *m;
    float *momentum_buf; /* backend memory, n_weights floats (part of a checkpoint) */
    float *scratch;      /* LARS: the largest parameter's update */
    double momentum, weight_decay, trust;
    bool decay_1d, nesterov;
} Optimizer;

int optimizer_init(Optimizer *o, Model *m, OptimKind kind, double momentum, double weight_decay, double trust,
                   bool decay_1d, bool nesterov);
void optimizer_free(Optimizer *o);
/* Updates m->w from m->g and tells the model its weights changed. */
void optimizer_step(Optimizer *o, double lr);

#endif
