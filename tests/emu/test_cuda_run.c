/* Whole training runs on the cuda backend, emulated (tests/emu): what a GPU run does beyond one step. Each run
 * (Fashion-MNIST, a small ResNet, two epochs) is stopped in its second epoch and resumed, and must end with the bits
 * of an uninterrupted one, checkpoint and per-step metrics: fp32 RSA, bf16 RSA (16-bit convolutions, whose plans
 * the resumed run makes afresh) and fp16 MoCo v2 (loss scaling). The fp32 run also evaluates (the kNN monitor,
 * whose features are read as the linear evaluation reads them) to the resumed run's accuracy and close to the cpu
 * backend's (other summation orders: not the same bits). A run leaves the device memory where the run before it
 * left it (the backend's scratch buffers stay, nothing else). */
#include "tests/util/runcmp.h"
#include "tests/util/testlib.h"
#include "trainer/core/error.h"
#include "trainer/ops/cuda/cuda_backend.h"
#include "trainer/train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void configure(TrainConfig *c, MethodKind method, Precision precision) {
    CHECK(train_config_defaults(c, "fashionmnist") == 0, "%s", rsa_error_message());
    c->backbone = (ResNetSpec){BLOCK_BASIC, {1, 1, 0, 0}, 16, STEM_CIFAR, false};
    c->proj_hidden = 32, c->proj_out = 16, c->image_size = 16;
    c->subset = 256, c->batch = 32, c->epochs = 2, c->lr_scaling = LR_SCALE_LINEAR;
    c->method = method, c->views = method == METHOD_RSA ? VIEWS_MA : VIEWS_AA, c->precision = precision;
    /* the monitor's features of 10 000 test images are most of an emulated run's time: the fp32 run alone */
    c->knn_every = precision == PRECISION_FP32 ? 2 : 0;
    c->linear_epochs = 0, c->eval_subset = 512, c->loader_threads = 1, c->seed = 11;
}

static void resumed_equals_whole(MethodKind method, Precision precision) {
    TrainConfig c;
    configure(&c, method, precision);
    const char *tag = precision_name(precision);
    char cpu[600], whole[600], resumed[600];
    snprintf(cpu, sizeof cpu, "%s/cpu-%s-%s", test_tmpdir(), method_name(method), tag);
    snprintf(whole, sizeof whole, "%s/cuda-%s-%s", test_tmpdir(), method_name(method), tag);
    snprintf(resumed, sizeof resumed, "%s/cuda-resumed-%s-%s", test_tmpdir(), method_name(method), tag);
    TrainResult rc = {0}, rw, rr;
    TrainHooks none = {0}, eleven = {.max_steps = 11};
    const bool evaluates = c.knn_every > 0;
    if (evaluates) CHECK(train_run(&c, cpu, "h", &none, &rc) == 0, "cpu: %s", rsa_error_message());
    snprintf(c.backend, sizeof c.backend, "cuda");
    CHECK(train_run(&c, whole, "h", &none, &rw) == 0, "cuda: %s", rsa_error_message());
    const size_t used = cuda_device_used_bytes();
    CHECK(train_run(&c, resumed, "h", &eleven, &rr) == 1, "cuda, first part: %s", rsa_error_message());
    CHECK(train_run(&c, resumed, "h", &none, &rr) == 0, "cuda, resumed: %s", rsa_error_message());
    CHECK_SAME_RUN(whole, resumed);
    CHECK(cuda_device_used_bytes() == used, "device memory in use grew from %zu to %zu bytes over a run", used,
          cuda_device_used_bytes());
    if (evaluates) {
        /* top-1 in percent on the 10 000 test images: a few flip between the backends' summation orders */
        CHECK(rw.knn_top1 == rr.knn_top1, "resumed: kNN %.2f, uninterrupted %.2f", rr.knn_top1, rw.knn_top1);
        CHECK(rw.knn_top1 > 20 && fabs(rw.knn_top1 - rc.knn_top1) <= 2, "kNN top-1: cuda %.2f, cpu %.2f",
              rw.knn_top1, rc.knn_top1);
        test_note("%s %s: kNN top-1 %.2f (cpu %.2f)", method_name(method), tag, rw.knn_top1, rc.knn_top1);
    }
    CHECK(cuda_lowp_refusals() == 0, "%d convolutions left the 16-bit path: %s", cuda_lowp_refusals(),
          cuda_lowp_refusal());
}

static void test_run_rsa(void) { resumed_equals_whole(METHOD_RSA, PRECISION_FP32); }
static void test_run_rsa_bf16(void) { resumed_equals_whole(METHOD_RSA, PRECISION_BF16); }
static void test_run_mocov2_fp16(void) { resumed_equals_whole(METHOD_MOCOV2, PRECISION_FP16); }

int main(void) {
    RUN(test_run_rsa);
    RUN(test_run_rsa_bf16);
    RUN(test_run_mocov2_fp16);
    return test_finish();
}
