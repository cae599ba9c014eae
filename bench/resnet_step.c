/* One ResNet-18 (CIFAR stem) training step's forward + backward on the CPU backend, timed.
 * Usage: resnet_step BATCH [STEPS]. Prints one line: images/s (median over steps) and peak RSS. */
#include "bench/bench_time.h"
#include "trainer/core/error.h"
#include "trainer/core/hostmem.h"
#include "trainer/core/rng.h"
#include "trainer/nn/nets.h"

#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int batch = argc > 1 ? atoi(argv[1]) : 64, steps = argc > 2 ? atoi(argv[2]) : 5;
    Model *m = model_new(backend_cpu());
    int x = model_input(m, 3, 32, 32);
    int feat = resnet_build(m, &RESNET18_CIFAR, x);
    if (model_finalize(m, batch, 1) != 0) {
        fprintf(stderr, "%s\n", rsa_error_message());
        return 1;
    }
    Workspace *ws = workspace_new(m, true);
    if (!ws) {
        fprintf(stderr, "%s\n", rsa_error_message());
        return 1;
    }
    size_t nx = (size_t)batch * 3 * 32 * 32, ny = (size_t)batch * 512;
    float *input = hostmem_alloc(nx * sizeof(float)), *dy = hostmem_alloc(ny * sizeof(float));
    Rng r;
    rng_init(&r, 1, RNG_TEST, 0, 0, 0);
    for (size_t i = 0; i < nx; i++) input[i] = (float)rng_normal(&r);
    for (size_t i = 0; i < ny; i++) dy[i] = (float)rng_normal(&r) / (float)batch;
    double *t = malloc(sizeof(double) * (size_t)steps);
    for (int s = -1; s < steps; s++) { /* one warm-up step */
        double t0 = now();
        model_zero_grad(m);
        model_forward(m, ws, batch, input, true, -1);
        model_backward(m, ws, feat, dy);
        if (s >= 0) t[s] = now() - t0;
    }
    qsort(t, (size_t)steps, sizeof *t, cmp);
    fprintf(stderr, "workspace %.0f MiB (unplanned %.0f MiB), parameters+gradients %.0f MiB\n", ws->block_bytes / 1048576.0, ws->unplanned_bytes / 1048576.0, m->n_weights * 8 / 1048576.0);
    printf("ours    batch %4d: %7.1f img/s  peak RSS %6.0f MiB\n", batch, batch / t[steps / 2],
           hostmem_peak_rss() / 1048576.0);
    return 0;
}
