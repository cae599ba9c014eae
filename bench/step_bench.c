/* Training-step throughput on any backend.
 * Usage: step_bench BACKEND ARCH MODE BATCH STEPS [tf32] [fastest] [keep2] [bf16|fp16] [fp32conv] [saved16] [wgrad16]
 *   ARCH r18c (ResNet-18, CIFAR stem, 32 px), r50 (ResNet-50, 224 px) or quick (the quick scale's network:
 *   ResNet {1,1,1,1} of width 16, CIFAR stem, heads 256/64, 32 px); MODE fwdbwd (encoder forward + backward),
 *   fwd (the evaluation's feature pass: encoder forward, BN in eval mode, fp32 whatever the precision flag, as
 *   features_compute runs it for the linear evaluation and the kNN monitor), or rsa (a whole RSA step: 4 views,
 *   EMA, 2 online forward+backward, 2 target forward, SGD), byol (2 views).
 *   fp32conv: a bf16/fp16 network runs fp32 (TF32) convolutions on its rounded values instead of oneDNN's bf16
 *   kernels (cpu) or cuDNN's 16-bit tensor-core convolutions (cuda), to measure what they bring.
 *   saved16: a bf16/fp16 network keeps activations for backward as 16-bit copies (the run key saved_16bit).
 *   wgrad16: a bf16/fp16 network sums its weight gradients in the format, as autocast (the run key
 *   lowp_weight_grads; on cuda the weight-gradient convolutions then run on tensor cores too).
 * Prints one line: images/s (median step; RSA/BYOL count source images, as PyTorch's loop does) and peak memory.
 * BACKEND staged (the cpu backend behind a device's interface) adds the most device memory the run's tensors held:
 * what the same run would allocate on a GPU, less cuDNN's workspace, the 16-bit operand copies and the context. */
#include "bench/bench_time.h"
#include "trainer/core/error.h"
#include "trainer/core/hostmem.h"
#include "trainer/core/rng.h"
#include "trainer/ops/cpu/conv_cpu.h"
#include "trainer/train/learner.h"
#ifdef RSA_CUDA
#include "trainer/ops/cuda/cuda_backend.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: step_bench BACKEND r18c|r50|quick fwdbwd|fwd|rsa|byol BATCH STEPS [tf32] [fastest] "
                        "[keep2] [bf16|fp16] [fp32conv] [saved16] [wgrad16]\n");
        return 2;
    }
    const char *arch = argv[2], *mode = argv[3];
    int batch = atoi(argv[4]), steps = atoi(argv[5]);
    bool tf32 = false, fastest = false, keep2 = false; /* keep2: low_memory off (both online passes kept) */
    Precision precision = PRECISION_FP32;            /* bf16, fp16: mixed precision (core/precision.h) */
    bool fp32conv = false; /* a mixed-precision network's convolutions in fp32 on the rounded values */
    bool saved16 = false;  /* the run key saved_16bit */
    bool wgrad16 = false;  /* the run key lowp_weight_grads */
    for (int i = 6; i < argc; i++) {
        tf32 |= strcmp(argv[i], "tf32") == 0, fastest |= strcmp(argv[i], "fastest") == 0,
            keep2 |= strcmp(argv[i], "keep2") == 0;
        if (strcmp(argv[i], "bf16") == 0) precision = PRECISION_BF16;
        if (strcmp(argv[i], "fp16") == 0) precision = PRECISION_FP16;
        if (strcmp(argv[i], "fp32conv") == 0) conv_cpu_set_native_bf16(false), fp32conv = true;
        saved16 |= strcmp(argv[i], "saved16") == 0, wgrad16 |= strcmp(argv[i], "wgrad16") == 0;
    }
    if (wgrad16 && precision == PRECISION_FP32) {
        fprintf(stderr, "wgrad16 needs bf16 or fp16\n");
        return 2;
    }
#ifdef RSA_CUDA
    cuda_set_tf32(tf32);
    cuda_set_deterministic(!fastest);
    cuda_set_lowp_convolutions(!fp32conv);
#endif
    const Backend *be = backend_by_name(argv[1]);
    if (!be) {
        fprintf(stderr, "%s\n", rsa_error_message());
        return 1;
    }
#ifdef RSA_CUDA
    double base_used = strcmp(argv[1], "cuda") == 0 ? (double)cuda_device_used_bytes() : 0;
#endif
    bool r50 = strcmp(arch, "r50") == 0;
    TrainConfig cfg;
    train_config_defaults(&cfg, r50 ? "imagenet100" : "cifar10");
    if (strcmp(arch, "quick") == 0) { /* experiments/scales.lua, quick */
        cfg.backbone = (ResNetSpec){BLOCK_BASIC, {1, 1, 1, 1}, 16, STEM_CIFAR, false};
        cfg.proj_hidden = 256, cfg.proj_out = 64, cfg.image_size = 32;
    } else if (!r50 && strcmp(arch, "r18c") != 0) {
        fprintf(stderr, "unknown ARCH %s: r18c, r50 or quick\n", arch);
        return 2;
    }
    cfg.method = strcmp(mode, "byol") == 0 ? METHOD_BYOL : METHOD_RSA;
    cfg.low_memory = !keep2;
    cfg.precision = precision;
    cfg.saved_16bit = saved16;
    cfg.lowp_weight_grads = wgrad16;
    cfg.views = cfg.method == METHOD_RSA ? VIEWS_MA : VIEWS_AA;
    int size = cfg.image_size, views = cfg.method == METHOD_RSA ? 4 : 2;
    size_t image = (size_t)batch * 3 * size * size;
    float *host[4];
    Rng r;
    rng_init(&r, 1, RNG_TEST, 0, 0, 0);
    for (int v = 0; v < 4; v++) {
        host[v] = be->host_alloc(image * sizeof(float)); /* where the trainer's loader keeps its batches */
        for (size_t i = 0; i < image; i++) host[v][i] = (float)rng_normal(&r);
    }
    double *t = malloc(sizeof(double) * (size_t)steps);
    bool fwd = strcmp(mode, "fwd") == 0;
    if (strcmp(mode, "fwdbwd") == 0 || fwd) {
        Model *m = model_new(be);
        int x = model_input(m, 3, size, size);
        int feat = resnet_build(m, &cfg.backbone, x);
        bool ready = model_finalize(m, batch, 1) == 0 && model_set_precision(m, fwd ? PRECISION_FP32 : precision) == 0;
        m->saved_16bit = saved16;
        ready = ready && (!wgrad16 || fwd || model_set_weight_grad_rounding(m, true) == 0);
        Workspace *ws = ready ? workspace_new(m, !fwd) : NULL;
        float *dx = be->alloc(image * sizeof(float)), *dy = be->alloc((size_t)batch * 2048 * sizeof(float));
        if (!ws || !dx || !dy) {
            fprintf(stderr, "%s\n", rsa_error_message());
            return 1;
        }
        be->upload(dx, host[0], image * sizeof(float));
        for (int s = -2; s < steps; s++) {
            be->sync();
            double t0 = now();
            if (fwd) {
                model_forward(m, ws, batch, dx, false, feat);
            } else {
                model_zero_grad(m);
                model_forward(m, ws, batch, dx, true, -1);
                model_backward(m, ws, feat, dy);
            }
            be->sync();
            if (s >= 0) t[s] = now() - t0;
        }
    } else {
        Learner *l = learner_new(&cfg, be, batch, 1000);
        if (!l) {
            fprintf(stderr, "%s\n", rsa_error_message());
            return 1;
        }
        for (int s = -2; s < steps; s++) {
            StepMetrics m;
            be->sync();
            double t0 = now();
            if (learner_step(l, host, batch, 0.1, &m) != 0) {
                fprintf(stderr, "%s\n", rsa_error_message());
                return 1;
            }
            be->sync();
            if (s >= 0) t[s] = now() - t0;
        }
    }
    double gpu_mib = 0;
#ifdef RSA_CUDA
    if (strcmp(argv[1], "cuda") == 0) gpu_mib = ((double)cuda_device_used_bytes() - base_used) / 1048576.0;
#endif
    bool staged = strcmp(argv[1], "staged") == 0;
    if (staged) gpu_mib = (double)backend_staged_peak_bytes() / 1048576.0;
    qsort(t, (size_t)steps, sizeof *t, cmp);
    printf("ours %-4s %-6s %-4s batch %4d%s%s%s%s%s%s%s%s: %8.1f img/s  (%d views)  host peak RSS %.0f MiB  %s %.0f "
           "MiB\n",
           argv[1], mode, arch, batch, tf32 ? " tf32" : "", fastest ? " fastest" : "", keep2 ? " keep2" : "",
           precision != PRECISION_FP32 && !fwd ? " " : "",
           precision != PRECISION_FP32 && !fwd ? precision_name(precision) : "",
           precision != PRECISION_FP32 && fp32conv ? " fp32conv" : "",
           precision != PRECISION_FP32 && saved16 && !fwd ? " saved16" : "", wgrad16 && !fwd ? " wgrad16" : "",
           batch / t[steps / 2],
           strcmp(mode, "fwdbwd") == 0 || fwd ? 1 : views, hostmem_peak_rss() / 1048576.0,
           staged ? "device tensors peak" : "GPU used", gpu_mib);
#ifdef RSA_CUDA
    if (strcmp(argv[1], "cuda") == 0 && precision != PRECISION_FP32 && !fp32conv && cuda_lowp_refusals() > 0)
        printf("  note: %d convolution(s) ran on the fp32 path: cuDNN offered no 16-bit algorithm (last: %s)\n",
               cuda_lowp_refusals(), cuda_lowp_refusal());
#endif
    return 0;
}
