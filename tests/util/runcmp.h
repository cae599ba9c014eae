/* Comparing two training runs' outputs bit for bit: the per-step metrics without their timing columns, and the
 * checkpoints tensor by tensor. Shared by the resume, determinism, crash and bad-input tests. */
#ifndef RSA_RUNCMP_H
#define RSA_RUNCMP_H

#include "tests/util/testlib.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* steps.tsv of a run directory without its two timing columns (malloc'd); NULL when the file is missing. */
char *run_step_metrics(const char *dir);
/* Two checkpoints hold the same tensors, bit for bit, and the same step; otherwise `why` says what differs. */
bool run_same_checkpoint(const char *a, const char *b, char *why, size_t why_size);

/* Both run directories end with the same checkpoint tensors and the same per-step metrics. */
#define CHECK_SAME_RUN(a, b)                                                                                        \
    do {                                                                                                           \
        char ca_[800], cb_[800], why_[512] = "";                                                                   \
        snprintf(ca_, sizeof ca_, "%s/checkpoint.safetensors", a);                                                 \
        snprintf(cb_, sizeof cb_, "%s/checkpoint.safetensors", b);                                                 \
        CHECK(run_same_checkpoint(ca_, cb_, why_, sizeof why_), "%s vs %s: %s", a, b, why_);                       \
        char *ma_ = run_step_metrics(a), *mb_ = run_step_metrics(b);                                               \
        CHECK(ma_ && mb_ && strcmp(ma_, mb_) == 0, "%s vs %s: the per-step metrics differ", a, b);                 \
        CHECK(ma_ && strlen(ma_) > 200, "%s: no metrics", a);                                                      \
        free(ma_), free(mb_);                                                                                      \
    } while (0)

#endif
