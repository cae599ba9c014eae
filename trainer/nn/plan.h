/* Memory plan of a workspace: where each activation and each gradient lives, chosen once per model so that
 * buffers whose lifetimes do not overlap share memory.
 *
 * A forward+backward pass is a timeline: node i runs forward at time i and backward at time 2N-1-i. Each buffer
 * lives over an interval of that timeline:
 *  - an activation that some backward step reads ("saved") from its producer to its last backward reader;
 *  - one nobody reads in backward (a BN output feeding only a residual add) just until its last forward reader;
 *  - a BN+ReLU output read only by convolutions is not kept at all: backward recomputes it from the BN input and
 *    the saved batch statistics (one cheap pass) into a buffer that lives during its backward readers;
 *  - the gradient of a tensor from its last consumer's backward to its producer's backward.
 * Intervals are packed into one block, largest first, each at the lowest offset free over its lifetime. */
#ifndef RSA_PLAN_H
#define RSA_PLAN_H

#include "model.h"

#include <stdbool.h>
#include <stddef.h>

enum { PLAN_NONE = -1 };

typedef struct {
    long *act;       /* float offset of each tensor's forward buffer (PLAN_NONE: the input, held by the caller) */
    long *act_bwd;   /* buffer a recomputed tensor is rebuilt into during backward (PLAN_NONE if not recomputed) */
    long *grad;      /* gradient buffer (PLAN_NONE if no gradient) */
    long scratch;    /* one tensor for summing gradients of tensors read twice (PLAN_NONE without gradients) */
    size_t floats;   /* size of the block */
    size_t unplanned;/* what one buffer per activation and gradient would take, for comparison */
} MemPlan;

/* keep_all: every activation gets its own buffer for the whole pass (tests that inspect intermediate tensors). */
void plan_make(const Model *m, bool with_grad, bool keep_all, MemPlan *p);
void plan_free(MemPlan *p);

/* Whether backward rebuilds tensor t instead of keeping it (a BN+ReLU output read only by convolutions/linears). */
bool plan_recomputable(const Model *m, int t);

#endif
