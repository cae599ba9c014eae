/* A checkpoint is the whole state of a run at a step boundary, in one safetensors file written atomically:
 * online and target networks under the official code's names (encoder_q.*, encoder_q_head.*, pred.*, encoder_k.*,
 * encoder_k_head.*) with BN buffers, the optimiser's momentum per parameter (optimizer.momentum.<name>), MoCo's
 * queue (moco.queue, with queue_next in the metadata), and in
 * the metadata the step counter k, the loader position (epoch, step in epoch), the seed and the config hash.
 * Random draws are counter-based, so the position is all the RNG state there is. Resuming from it continues
 * bit for bit as if the run had not stopped. */
#ifndef RSA_CHECKPOINT_H
#define RSA_CHECKPOINT_H

#include "../io/safetensors.h"
#include "learner.h"

typedef struct {
    int epoch;             /* the epoch to continue with */
    int64_t step_in_epoch; /* batches of it already done */
    double train_seconds;  /* wall time spent in training steps so far (Table 7), summed over resumes */
} RunPosition;

int checkpoint_save(const Learner *l, RunPosition pos, const char *config_hash, const char *path);
/* Loads into a learner built from the same config. Refuses (with the reason) a file of another format version or
 * config hash, and names any missing or misshapen tensor. */
int checkpoint_load(Learner *l, const char *config_hash, const char *path, RunPosition *pos);
/* The same from a parsed file (st_parse: the checkpoint's bytes in memory; the fuzzer uses it). */
int checkpoint_load_from(Learner *l, const char *config_hash, const StFile *f, RunPosition *pos);

/* Writes the online encoder alone under torchvision's names (conv1.weight, layer1.0.bn1.running_mean, ...). */
int checkpoint_export_torchvision(const char *checkpoint_path, const char *out_path);

#endif
