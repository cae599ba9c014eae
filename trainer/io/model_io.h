/* A model's state (parameters, BN running statistics and num_batches_tracked) to and from safetensors, under
 * torchvision's names. A name prefix can be swapped on the way (e.g. "encoder_q." -> "" writes a plain torchvision
 * ResNet state dict). */
#ifndef RSA_MODEL_IO_H
#define RSA_MODEL_IO_H

#include "../nn/model.h"
#include "safetensors.h"

#include <stdbool.h>

/* Host copies of a model's state, held until the writer has written them. */
typedef struct {
    float *w, *buf;
    int64_t *counts;
    size_t n_w, n_buf;
} ModelState;

/* Downloads m's state and adds every entry whose name starts with `from` (use "" for all) to w, renamed with `to`
 * in place of `from`. Free the state with model_state_free after st_write. */
void model_state_add(const Model *m, StWriter *w, const char *from, const char *to, ModelState *st);
void model_state_free(ModelState *st);

/* Loads every entry of m whose name starts with `from` from f, where it is named with `to` in place of `from`.
 * Every such entry must be in f with the same shape. allow_extra: tensors in f that m does not have are ignored
 * (e.g. torchvision's fc.*); otherwise they are an error. */
int model_state_load(Model *m, const StFile *f, const char *from, const char *to, bool allow_extra);

/* Renames `name` (which starts with from) into out; false if it does not start with from. */
bool model_state_rename(const char *name, const char *from, const char *to, char *out, size_t size);

#endif
