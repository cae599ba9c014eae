/* Addressing shared by the CPU kernels, and how they are built (CPU_CLONES). A c-channel tensor of hw pixels is
 * seen as groups of L channels: element (n, channel g*L + lane, pixel p) sits at ((n * (c/L) + g) * hw + p) * L +
 * lane. L = 16 is oneDNN's nChw16c; L = 1 is plain NCHW. A kernel that gives each channel group to one thread and
 * reduces in a fixed order gets the same bits whatever the thread count. */
#ifndef RSA_BLOCKED_H
#define RSA_BLOCKED_H

#include "../../core/error.h"
#include "../../core/layout.h"

#include <stddef.h>

/* A kernel compiled for AVX-512, AVX2 and the baseline, picked at run time. Each lane does the same IEEE operations
 * in the same order in every version (no FMA contraction in ISO C mode), so all three give the same bits; only the
 * vector width differs. */
#define CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

static inline int blocked_lanes(Layout l, int c, int hw) {
    if (l == LAYOUT_NCHW16C || (l == LAYOUT_NCHW && hw == 1 && c % 16 == 0)) return 16;
    if (l == LAYOUT_NCHW) return 1;
    rsa_fatal("this is a bug in rsa-repro", "the CPU backend does not keep tensors in %s", layout_name(l));
}

#endif
