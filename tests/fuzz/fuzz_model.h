/* The small learners the checkpoint fuzzer loads into (and tests/fuzz/make_seeds.c writes checkpoints of): a ResNet
 * of one stage of width 8 at 8 px with heads of 8 -> 4, on the reference backend. */
#ifndef RSA_FUZZ_MODEL_H
#define RSA_FUZZ_MODEL_H

#include "trainer/core/error.h"
#include "trainer/train/learner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FUZZ_BATCH = 4, FUZZ_IMAGE = 8 };

static inline void fuzz_model_config(TrainConfig *c, MethodKind method) {
    if (train_config_defaults(c, "cifar10") != 0) abort();
    c->backbone = (ResNetSpec){BLOCK_BASIC, {1, 0, 0, 0}, 8, STEM_CIFAR, false};
    c->proj_hidden = 8, c->proj_out = 4, c->image_size = FUZZ_IMAGE;
    c->batch = FUZZ_BATCH, c->lr_scaling = LR_SCALE_LINEAR, c->epochs = 1;
    c->method = method, c->views = method == METHOD_RSA ? VIEWS_MA : VIEWS_AA;
    c->queue_size = 8, c->temperature = 0.2, c->tau_base = 0.99;
    c->linear_epochs = 0, c->knn_every = 0, c->seed = 1;
    snprintf(c->backend, sizeof c->backend, "ref");
}

/* One training step on fixed images. A step may fail (weights loaded from a checkpoint can be NaN: the learner
 * refuses a non-finite loss), but only with a message. */
static inline int fuzz_model_step(Learner *l) {
    static float views[4][FUZZ_BATCH * 3 * FUZZ_IMAGE * FUZZ_IMAGE];
    float *v[4];
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < FUZZ_BATCH * 3 * FUZZ_IMAGE * FUZZ_IMAGE; i++)
            views[k][i] = (float)((i * 37 + k * 11) % 19) / 9.0f - 1;
        v[k] = views[k];
    }
    StepMetrics m;
    rsa_error_clear();
    int rc = learner_step(l, v, FUZZ_BATCH, 0.01, &m);
    if (rc != 0 && (strcmp(rsa_error_message(), "no error recorded") == 0 || !strstr(rsa_error_message(), ": "))) {
        fprintf(stderr, "fuzz: a step failed without a message\n");
        abort();
    }
    return rc;
}

#endif
