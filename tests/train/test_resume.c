/* Exact resume: a run stopped at step boundaries and resumed (twice) ends with the same checkpoint tensors and the
 * same per-step metrics, bit for bit, as the run that was never stopped. Also: a rerun of a finished run changes
 * nothing, and the same seed gives the same run. Fashion-MNIST (Debian's dataset-fashion-mnist), a 512-image
 * subset and a two-stage ResNet of width 16 at 16 px keep it to seconds. */
#include "tests/util/runcmp.h"
#include "tests/util/testlib.h"
#include "trainer/core/error.h"
#include "trainer/core/fileio.h"
#include "trainer/io/safetensors.h"
#include "trainer/ops/cpu/conv_cpu.h"
#include "trainer/train/checkpoint.h"
#include "trainer/train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static TrainConfig config(MethodKind method) {
    TrainConfig c;
    if (train_config_defaults(&c, "fashionmnist") != 0) test_fail_at(__FILE__, __LINE__, "%s", rsa_error_message());
    c.backbone = (ResNetSpec){BLOCK_BASIC, {1, 1, 0, 0}, 16, STEM_CIFAR, false}; /* 16k channels: oneDNN's fast kernels */
    c.proj_hidden = 32, c.proj_out = 16, c.image_size = 16;
    c.subset = 512, c.batch = 64, c.epochs = 2, c.lr_scaling = LR_SCALE_LINEAR;
    c.method = method, c.views = method == METHOD_RSA ? VIEWS_MA : VIEWS_AA;
    c.linear_epochs = 0, c.knn_every = 0, c.loader_threads = 2, c.seed = 5;
    c.queue_size = 256, c.temperature = 0.2, c.tau_base = 0.99; /* MoCo */
    return c;
}

static void resume_matches_ex(MethodKind method, Precision p, bool lowp_weight_grads) {
    TrainConfig c = config(method);
    c.precision = p, c.lowp_weight_grads = lowp_weight_grads;
    const char *tag = lowp_weight_grads ? "-wg16" : "";
    char a[600], b[600], ca[700], cb[700];
    snprintf(a, sizeof a, "%s/%s-%s%s-straight", test_tmpdir(), method_name(method), precision_name(p), tag);
    snprintf(b, sizeof b, "%s/%s-%s%s-stopped", test_tmpdir(), method_name(method), precision_name(p), tag);
    TrainResult r;
    TrainHooks none = {0};
    CHECK(train_run(&c, a, "h", &none, &r) == 0, "%s", rsa_error_message());
    double final_loss = r.final_loss;
    TrainHooks three = {.max_steps = 3}, five = {.max_steps = 5};
    CHECK(train_run(&c, b, "h", &three, &r) == 1, "first part did not stop: %s", rsa_error_message());
    CHECK(train_run(&c, b, "h", &five, &r) == 1, "second part did not stop: %s", rsa_error_message());
    CHECK(train_run(&c, b, "h", &none, &r) == 0, "%s", rsa_error_message());
    CHECK_SAME_RUN(a, b);
    /* a finished run resumed again trains nothing, leaves the checkpoint as it was and reports the same loss */
    CHECK(train_run(&c, a, "h", &none, &r) == 0, "%s", rsa_error_message());
    CHECK(final_loss != 0 && fabs(r.final_loss - final_loss) <= 1e-6 * fabs(final_loss), /* 7 digits in epochs.tsv */
          "final loss %.9g, after a rerun %.9g", final_loss, r.final_loss);
    char why[512] = "";
    snprintf(ca, sizeof ca, "%s/checkpoint.safetensors", a);
    snprintf(cb, sizeof cb, "%s/checkpoint.safetensors", b);
    CHECK(run_same_checkpoint(ca, cb, why, sizeof why), "rerunning a finished run changed it: %s", why);
    /* another config hash refuses the checkpoint */
    CHECK(train_run(&c, a, "other", &none, &r) == -1 && strstr(rsa_error_message(), "written for config h"),
          "message: %s", rsa_error_message());
}

static void resume_matches(MethodKind method, Precision p) { resume_matches_ex(method, p, false); }

/* A run resumed after its last epoch (killed during its evaluation) reports the kNN monitor of its last epoch, as
 * the run that was never stopped does, not the -1 of a monitor that did not run again. */
static void test_resume_after_training_keeps_knn(void) {
    TrainConfig c = config(METHOD_RSA);
    c.epochs = 1, c.knn_every = 1, c.eval_subset = 512; /* a small bank: seconds */
    char a[600], ra[700], rb[700];
    snprintf(a, sizeof a, "%s/knn-resumed", test_tmpdir());
    TrainResult r;
    TrainHooks none = {0};
    CHECK(train_run(&c, a, "h", &none, &r) == 0, "%s", rsa_error_message());
    double knn = r.knn_top1;
    snprintf(ra, sizeof ra, "%s/result.txt", a);
    char *before = read_file(ra, NULL);
    CHECK(train_run(&c, a, "h", &none, &r) == 0, "%s", rsa_error_message());
    CHECK(knn > 0 && fabs(r.knn_top1 - knn) <= 1e-4, "kNN %.6f, after resuming past the last epoch %.6f", knn,
          r.knn_top1);
    snprintf(rb, sizeof rb, "%s/result.txt", a);
    char *after = read_file(rb, NULL);
    char *b_knn = before ? strstr(before, "knn_top1") : NULL, *a_knn = after ? strstr(after, "knn_top1") : NULL;
    CHECK(b_knn && a_knn && strncmp(b_knn, a_knn, strcspn(b_knn, "\n")) == 0, "result.txt's kNN line changed");
    free(before), free(after);
}

static void test_resume_rsa(void) { resume_matches(METHOD_RSA, PRECISION_FP32); }
static void test_resume_byol(void) { resume_matches(METHOD_BYOL, PRECISION_FP32); }
static void test_resume_mocov2(void) { resume_matches(METHOD_MOCOV2, PRECISION_FP32); }
/* no target network: checkpoints hold the online network alone */
static void test_resume_simsiam(void) { resume_matches(METHOD_SIMSIAM, PRECISION_FP32); }
/* mixed precision: the rounded weights are rebuilt from the master weights, fp16's loss scale is in the checkpoint */
static void test_resume_rsa_bf16(void) { resume_matches(METHOD_RSA, PRECISION_BF16); }
static void test_resume_byol_fp16(void) { resume_matches(METHOD_BYOL, PRECISION_FP16); }
/* weight gradients summed in the 16-bit format (lowp_weight_grads) */
static void test_resume_rsa_bf16_weight_grads(void) { resume_matches_ex(METHOD_RSA, PRECISION_BF16, true); }
static void test_resume_byol_fp16_weight_grads(void) { resume_matches_ex(METHOD_BYOL, PRECISION_FP16, true); }

/* low_memory (the second online pass run again before its backward, BN running statistics left alone the second
 * time) changes no bit: checkpoints (weights, BN statistics, optimiser state) and per-step metrics equal those of
 * the run that keeps both passes. */
static void low_memory_same_bits(MethodKind method, Precision p, bool lowp_weight_grads) {
    TrainConfig c = config(method);
    c.precision = p, c.lowp_weight_grads = lowp_weight_grads;
    const char *tag = lowp_weight_grads ? "-wg16" : "";
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/%s-%s%s-keep2", test_tmpdir(), method_name(method), precision_name(p), tag);
    snprintf(b, sizeof b, "%s/%s-%s%s-lowmem", test_tmpdir(), method_name(method), precision_name(p), tag);
    TrainResult r;
    TrainHooks none = {0};
    c.epochs = 1; /* 8 steps: every step compares (the checkpoint holds BN statistics and momentum) */
    c.low_memory = false;
    CHECK(train_run(&c, a, "h", &none, &r) == 0, "%s", rsa_error_message());
    c.low_memory = true;
    CHECK(train_run(&c, b, "h", &none, &r) == 0, "%s", rsa_error_message());
    CHECK_SAME_RUN(a, b); /* a: both passes kept, b: low_memory */
}
/* saved_16bit (activations held for backward as exact 16-bit copies) changes no bit either. */
static void saved_16bit_same_bits(MethodKind method, Precision p, bool lowp_weight_grads) {
    TrainConfig c = config(method);
    c.precision = p, c.epochs = 1, c.lowp_weight_grads = lowp_weight_grads;
    const char *tag = lowp_weight_grads ? "-wg16" : "";
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/%s-%s%s-float", test_tmpdir(), method_name(method), precision_name(p), tag);
    snprintf(b, sizeof b, "%s/%s-%s%s-saved16", test_tmpdir(), method_name(method), precision_name(p), tag);
    TrainResult r;
    TrainHooks none = {0};
    CHECK(train_run(&c, a, "h", &none, &r) == 0, "%s", rsa_error_message());
    c.saved_16bit = true;
    CHECK(train_run(&c, b, "h", &none, &r) == 0, "%s", rsa_error_message());
    CHECK_SAME_RUN(a, b);
}
static void test_saved_16bit_rsa_bf16(void) { saved_16bit_same_bits(METHOD_RSA, PRECISION_BF16, false); }
static void test_saved_16bit_byol_fp16(void) { saved_16bit_same_bits(METHOD_BYOL, PRECISION_FP16, false); }
/* with the weight gradients summed in the format too (the two keys touch different tensors) */
static void test_saved_16bit_rsa_bf16_weight_grads(void) { saved_16bit_same_bits(METHOD_RSA, PRECISION_BF16, true); }

static void test_low_memory_rsa(void) { low_memory_same_bits(METHOD_RSA, PRECISION_FP32, false); }
static void test_low_memory_byol(void) { low_memory_same_bits(METHOD_BYOL, PRECISION_FP32, false); }
static void test_low_memory_simsiam(void) { low_memory_same_bits(METHOD_SIMSIAM, PRECISION_FP32, false); }
static void test_low_memory_rsa_bf16(void) { low_memory_same_bits(METHOD_RSA, PRECISION_BF16, false); }
/* the pass run again changes neither the order nor the bits of the passes' 16-bit weight-gradient sums */
static void test_low_memory_rsa_bf16_weight_grads(void) { low_memory_same_bits(METHOD_RSA, PRECISION_BF16, true); }

/* lowp_convolutions reaches the convolutions: at bf16 on a CPU with AVX512-BF16, oneDNN's bf16 kernels (true) and
 * fp32 kernels on the rounded values (false) sum in other orders, so the runs differ; each is reproducible bit for
 * bit (false is how bf16 runs computed before 2026-12-01, so they can be rerun). Without AVX512-BF16 both are the
 * fp32 kernels' run. */
static void test_lowp_convolutions_key(void) {
    TrainConfig c = config(METHOD_RSA);
    c.precision = PRECISION_BF16, c.epochs = 1;
    char a[600], b[600], b2[600], ca[700], cb[700], why[512] = "";
    snprintf(a, sizeof a, "%s/lowp-on", test_tmpdir());
    snprintf(b, sizeof b, "%s/lowp-off", test_tmpdir());
    snprintf(b2, sizeof b2, "%s/lowp-off-again", test_tmpdir());
    TrainResult r;
    TrainHooks none = {0};
    CHECK(train_run(&c, a, "h", &none, &r) == 0, "%s", rsa_error_message());
    c.lowp_convolutions = false;
    CHECK(train_run(&c, b, "h", &none, &r) == 0, "%s", rsa_error_message());
    CHECK(train_run(&c, b2, "h", &none, &r) == 0, "%s", rsa_error_message());
    CHECK_SAME_RUN(b, b2);
    snprintf(ca, sizeof ca, "%s/checkpoint.safetensors", a);
    snprintf(cb, sizeof cb, "%s/checkpoint.safetensors", b);
    bool same = run_same_checkpoint(ca, cb, why, sizeof why);
    if (conv_cpu_has_bf16())
        CHECK(!same, "lowp_convolutions = false gave the bf16 kernels' bits: the key does not reach the convolutions");
    else
        CHECK(same, "without AVX512-BF16 both settings must run the fp32 kernels: %s", why);
    conv_cpu_set_native_bf16(true); /* the trainer's setting is process-wide: the default for what runs next */
}

/* lowp_weight_grads reaches the learner: the same run with weight gradients summed in bf16 ends elsewhere; a run
 * at fp32 that asks for it is refused before it starts, with what to do. */
static void test_lowp_weight_grads_key(void) {
    TrainConfig c = config(METHOD_RSA);
    c.precision = PRECISION_BF16, c.epochs = 1;
    char a[600], b[600], f[600], ca[700], cb[700], why[512] = "";
    snprintf(a, sizeof a, "%s/wg-fp32sums", test_tmpdir());
    snprintf(b, sizeof b, "%s/wg-bf16sums", test_tmpdir());
    snprintf(f, sizeof f, "%s/wg-at-fp32", test_tmpdir());
    TrainResult r;
    TrainHooks none = {0};
    CHECK(train_run(&c, a, "h", &none, &r) == 0, "%s", rsa_error_message());
    c.lowp_weight_grads = true;
    CHECK(train_run(&c, b, "h", &none, &r) == 0, "%s", rsa_error_message());
    snprintf(ca, sizeof ca, "%s/checkpoint.safetensors", a);
    snprintf(cb, sizeof cb, "%s/checkpoint.safetensors", b);
    CHECK(!run_same_checkpoint(ca, cb, why, sizeof why), "lowp_weight_grads = true changed nothing");
    c.precision = PRECISION_FP32;
    CHECK(train_run(&c, f, "h", &none, &r) == -1 && strstr(rsa_error_message(), "precision = \"bf16\""),
          "lowp_weight_grads at fp32: %s", rsa_error_message());
}

/* A run can start from given weights: the official names (a checkpoint) or torchvision's (an export). */
static void test_init_from(void) {
    TrainConfig c = config(METHOD_RSA);
    c.seed = 1;
    Learner *a = learner_new(&c, backend_cpu(), 8, 10);
    c.seed = 2;
    Learner *b = learner_new(&c, backend_cpu(), 8, 10), *d = learner_new(&c, backend_cpu(), 8, 10);
    CHECK(a && b && d, "%s", rsa_error_message());
    if (!a || !b || !d) return;
    char ckpt[600], tv[600];
    snprintf(ckpt, sizeof ckpt, "%s/init.safetensors", test_tmpdir());
    snprintf(tv, sizeof tv, "%s/init_tv.safetensors", test_tmpdir());
    RunPosition pos = {0, 0, 0};
    CHECK(checkpoint_save(a, pos, "h", ckpt) == 0, "%s", rsa_error_message());
    CHECK(checkpoint_export_torchvision(ckpt, tv) == 0, "%s", rsa_error_message());
    CHECK(learner_load_init(b, ckpt) == 0, "%s", rsa_error_message());
    CHECK(learner_load_init(d, tv) == 0, "%s", rsa_error_message());
    size_t enc = 0; /* floats of the encoder: the parameters named encoder_q.* come first */
    for (int i = 0; i < a->online->n_params; i++)
        if (strncmp(a->online->params[i].name, "encoder_q.", 10) == 0)
            enc = a->online->params[i].offset + a->online->params[i].numel;
    size_t all = a->online->n_weights;
    CHECK(memcmp(b->online->w, a->online->w, all * sizeof(float)) == 0, "official names: online weights differ");
    CHECK(memcmp(d->online->w, a->online->w, enc * sizeof(float)) == 0, "torchvision names: encoder differs");
    CHECK(memcmp(d->online->w + enc, a->online->w + enc, (all - enc) * sizeof(float)) != 0,
          "torchvision names must leave the heads at their initialisation");
    CHECK(memcmp(b->target->w, b->online->w, b->target->n_weights * sizeof(float)) == 0,
          "the target must start as the online network's copy");
    CHECK(learner_load_init(b, "/no/such/file.safetensors") != 0 && strstr(rsa_error_message(), "/no/such/file"),
          "missing file: %s", rsa_error_message());
    learner_free(a), learner_free(b), learner_free(d);
}

int main(void) {
    RUN(test_init_from);
    RUN(test_resume_after_training_keeps_knn);
    RUN(test_resume_rsa);
    RUN(test_resume_byol);
    RUN(test_resume_mocov2);
    RUN(test_resume_simsiam);
    RUN(test_resume_rsa_bf16);
    RUN(test_resume_byol_fp16);
    RUN(test_low_memory_rsa);
    RUN(test_saved_16bit_rsa_bf16);
    RUN(test_saved_16bit_byol_fp16);
    RUN(test_saved_16bit_rsa_bf16_weight_grads);
    RUN(test_low_memory_byol);
    RUN(test_low_memory_simsiam);
    RUN(test_low_memory_rsa_bf16);
    RUN(test_low_memory_rsa_bf16_weight_grads);
    RUN(test_lowp_convolutions_key);
    RUN(test_lowp_weight_grads_key);
    RUN(test_resume_rsa_bf16_weight_grads);
    RUN(test_resume_byol_fp16_weight_grads);
    return test_finish();
}
