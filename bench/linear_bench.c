/* One linear-evaluation head epoch on synthetic features (linear_head_epoch: the forward and backward sgemm, the
 * cross-entropy, the SGD step), the host's share of evaluating a run at the paper's scale. Prints the time per
 * batch and what an epoch over `rows` features would take at that rate.
 * usage: linear_bench DIM CLASSES BATCHES [ROWS] [small|meanshift]
 * (ImageNet-1K: 2048 1000, 1281167 rows; ImageNet-100: 2048 100, 126689 rows) */
#include "bench/bench_time.h"
#include "trainer/core/rng.h"
#include "trainer/eval/linear_head.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s DIM CLASSES BATCHES [ROWS] [small|meanshift]\n", argv[0]);
        return 2;
    }
    int dim = atoi(argv[1]), classes = atoi(argv[2]), batches = atoi(argv[3]);
    double rows = argc > 4 ? atof(argv[4]) : 0;
    bool meanshift = argc > 5 && strcmp(argv[5], "meanshift") == 0;
    TrainConfig cfg;
    if (dim < 1 || classes < 2 || batches < 2 || train_config_defaults(&cfg, meanshift ? "imagenet" : "cifar10")) {
        fprintf(stderr, "linear_bench: bad arguments\n");
        return 2;
    }
    cfg.linear = meanshift ? LINEAR_MEANSHIFT : LINEAR_SMALL, cfg.linear_batch = 256;
    LinearHead h;
    linear_head_init(&h, &cfg, dim, classes);
    Features f = {0};
    f.dim = dim, f.n = (int64_t)batches * cfg.linear_batch;
    f.x = malloc(sizeof(float) * (size_t)f.n * dim), f.label = malloc(sizeof(int32_t) * (size_t)f.n);
    if (!f.x || !f.label) return fprintf(stderr, "linear_bench: out of memory\n"), 1;
    Rng r;
    rng_init(&r, 1, RNG_TEST, 0, 0, 0);
    for (size_t i = 0; i < (size_t)f.n * dim; i++) f.x[i] = (float)rng_uniform(&r); /* ReLU features: >= 0 */
    for (int64_t i = 0; i < f.n; i++) f.label[i] = (int32_t)rng_below(&r, (uint32_t)classes);
    Features warm = f;
    warm.n = cfg.linear_batch; /* first touch of the head's buffers and oneDNN's kernels */
    linear_head_epoch(&h, &warm, 0.01);
    double t0 = now();
    double loss = linear_head_epoch(&h, &f, 0.01);
    double per_batch = (now() - t0) / batches;
    printf("ours  linear head %d -> %d (%s), batch 256: %.2f ms per batch (loss %.3f)", dim, classes,
           meanshift ? "meanshift" : "small", 1e3 * per_batch, loss);
    if (rows > 0) printf(", %.1f s per epoch of %.0f rows", per_batch * rows / 256, rows);
    printf("\n");
    linear_head_free(&h);
    free(f.x), free(f.label);
    return 0;
}
