/* Memory plan of a workspace: where each activation and each gradient lives, chosen once per model so that
 * buffers whose lifetimes do not overlap share memory.
 *
 * A forward+backward pass is a timeline: node i runs forward at time i and backward at time 2N-1-i. Each buffer
 * lives over an interval of that timeline:
 *  - an activation that some backward step reads ("saved") from its producer to its last backward reader;
 *  - one nobody reads in backward (a BN output feeding only a residual add) just until its last forward reader;
 *  - a BN output or a residual add's output may instead be rebuilt in backward, bit for bit, from the tensors it
 *    was computed from (the BN input and the saved batch statistics; the add's two inputs, themselves kept or
 *    rebuilt): then it lives until its last forward reader, and again, in a buffer of its own, from its rebuild to
 *    its last backward reader. A ResNet keeps its convolution outputs (batch norm's backward reads them) and
 *    rebuilds block outputs and BN+ReLU outputs with one elementwise pass each, instead of holding them from the
 *    forward pass to the backward one;
 *  - the gradient of a tensor from its last consumer's backward to its producer's backward, and, for a tensor read
 *    by more than one node, a second buffer for the later gradients, which are added in as they arrive;
 *  - in a bf16 or fp16 network that allows it (saved_16bit), a tensor held from forward to backward may instead
 *    be kept as a 16-bit copy (every value it holds is representable in the format, so the copy is exact): the
 *    float buffer lives until its last forward reader, the copy, half its size, from its producer to its last
 *    backward reader, and the tensor is widened back, bit for bit, into a buffer of its own for its backward
 *    readers, like a rebuilt one. A ResNet-50 then keeps most convolution and block outputs this way.
 * Intervals are packed into one block, largest first, each at the lowest offset free over its lifetime. Which
 * tensors to rebuild, then which of the others to keep in 16 bits, is chosen by trying: each is kept only if it
 * makes the block smaller. */
#ifndef RSA_PLAN_H
#define RSA_PLAN_H

#include "model.h"

#include <stdbool.h>
#include <stddef.h>

enum { PLAN_NONE = -1 };

typedef struct MemPlan {
    long *act;       /* float offset of each tensor's forward buffer (PLAN_NONE: the input, held by the caller) */
    long *act_bwd;   /* buffer a recomputed tensor is rebuilt into during backward (PLAN_NONE if not recomputed) */
    long *grad;      /* gradient buffer (PLAN_NONE if no gradient) */
    long *grad_sum;  /* where a tensor read twice receives its second gradient (PLAN_NONE if read once) */
    long *copy16;    /* float offset of a tensor's 16-bit copy (PLAN_NONE if not kept in 16 bits); its act_bwd is
                      * where backward widens it */
    size_t floats;   /* size of the block */
    size_t unplanned;/* what one buffer per activation and gradient would take, for comparison */
    int rebuilt;     /* how many tensors backward rebuilds */
    int n_copy16;    /* how many tensors are kept in 16 bits */
} MemPlan;

void plan_make(const Model *m, bool with_grad, PlanMode mode, MemPlan *p);
void plan_free(MemPlan *p);

#endif
