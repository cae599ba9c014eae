/* Encoder features of a whole data set: batches through the model up to its feature tensor (no gradient), L2
 * normalisation optional. The transform is the loader spec's (CenterCrop / Resize+CenterCrop for evaluation). */
#ifndef RSA_FEATURES_H
#define RSA_FEATURES_H

#include "../data/data.h"
#include "../dist/dist.h"
#include "../nn/model.h"

typedef struct {
    float *x;       /* n x dim, host */
    int32_t *label; /* n */
    int64_t n;
    int dim;
} Features;

/* bn_train: run the encoder's BN in training mode (batch statistics, running statistics updated), as the
 * official linear evaluation does; otherwise eval mode. -1 with rsa_fail.
 * Data parallel (d not NULL, more than one process, eval mode): a collective. Every rank runs rank 0's BN running
 * statistics (without SyncBN each rank's are its own), computes the features of its block of the spec's order and
 * sends them to rank 0, which gets what one process would have computed, in the same order (out is empty on the
 * other ranks); a rank's failure fails every rank. In training mode rank 0 computes alone (the batch statistics
 * would change with the split) and the others return at once with nothing. d NULL: this process alone. */
int features_compute(Model *m, int feature_tensor, const Dataset *ds, const LoaderSpec *spec, int epoch,
                     bool bn_train, bool normalize, Dist *d, Features *out);
void features_free(Features *f);
/* Each row divided by its L2 norm (at least 1e-12), as torch.nn.functional.normalize: what normalize asks of
 * features_compute. Rows in parallel, the same bits at any thread count. */
void features_l2_normalise(Features *f);

/* Re-estimate the running statistics of every BN layer up to the feature tensor from the data set's images: one
 * pass in training mode with a cumulative average over batches (PyTorch's BN momentum=None). An encoder that was
 * never trained still has the init statistics (mean 0, var 1), which describe nothing it computes; evaluating it in
 * eval mode measures that mismatch, not its features. -1 with rsa_fail. */
int features_recalibrate_bn(Model *m, int feature_tensor, const Dataset *ds, const LoaderSpec *spec);

#endif
