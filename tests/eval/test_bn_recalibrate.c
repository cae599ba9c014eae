/* BN statistics re-estimated for an untrained encoder (the random-init row): after features_recalibrate_bn the
 * running mean and (unbiased) variance of a BN are the plain averages, over the batches of one pass, of that BN
 * input's batch statistics, computed here independently from the conv output. And a train_run with epochs = 0
 * evaluates the recalibrated encoder: its kNN accuracy is reported and the linear head is fitted. */
#include "tests/util/testlib.h"
#include "trainer/backend/backend.h"
#include "trainer/core/error.h"
#include "trainer/eval/features.h"
#include "trainer/train/subset.h"
#include "trainer/train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ASSERT(cond) CHECK(cond, "%s", #cond)

static void test_statistics_are_batch_averages(void) {
    const Backend *be = backend_by_name("ref");
    ASSERT(be);
    DataOptions opt = {0};
    Dataset *full = dataset_open("fashionmnist", "train", &opt);
    if (!full) test_fail_at(__FILE__, __LINE__, "%s", rsa_error_message());
    bool owned;
    Dataset *ds = dataset_subset(full, 200, &owned); /* batches of 64, 64, 64, 8: unequal on purpose */
    ASSERT(ds);
    LoaderSpec spec;
    ASSERT(loader_spec_default("fashionmnist", VIEWS_EVAL_TEST, 3, &spec) == 0);
    spec.size = 16, spec.batch = 64, spec.threads = 1, spec.eval = true;

    Model *m = model_new(be);
    int x = model_input(m, 3, 16, 16);
    int conv = model_conv(m, "conv1", x, 8, 3, 1, 1, false);
    int bn = model_bn(m, "bn1", conv, true, false);
    int feat = model_gap(m, bn);
    model_mark_output(m, conv);
    model_mark_output(m, feat);
    ASSERT(model_finalize(m, 64, 11) == 0);

    /* the oracle: per-batch mean and unbiased variance of the conv output, averaged over batches */
    double mean[8] = {0}, var[8] = {0};
    int batches = 0;
    Loader *ld = loader_new(ds, &spec);
    Workspace *ws = workspace_new(m, false);
    ASSERT(ld && ws && loader_start(ld, 0, 0) == 0);
    float *y = test_alloc((size_t)64 * 8 * 16 * 16);
    for (;;) {
        Batch *b;
        ASSERT(loader_next(ld, &b) == 0);
        if (!b) break;
        model_forward(m, ws, b->n, b->view[0], false, conv);
        workspace_read_nchw(ws, conv, y);
        for (int c = 0; c < 8; c++) {
            double s = 0, ss = 0;
            int64_t cnt = (int64_t)b->n * 256;
            for (int i = 0; i < b->n; i++)
                for (int p = 0; p < 256; p++) s += y[((size_t)i * 8 + c) * 256 + p];
            double mu = s / (double)cnt;
            for (int i = 0; i < b->n; i++)
                for (int p = 0; p < 256; p++) {
                    double d = y[((size_t)i * 8 + c) * 256 + p] - mu;
                    ss += d * d;
                }
            mean[c] += mu, var[c] += ss / (double)(cnt - 1);
        }
        batches++;
        loader_release(ld, b);
    }
    workspace_free(ws);
    loader_free(ld);
    ASSERT(batches == 4);

    ASSERT(features_recalibrate_bn(m, feat, ds, &spec) == 0);
    ASSERT(m->bn_momentum == 0.1f); /* restored */
    int b = model_find_bn(m, "bn1");
    ASSERT(b >= 0);
    const float *stats = m->buf + m->bns[b].stat_offset;
    double worst = 0;
    for (int c = 0; c < 8; c++) {
        double em = fabs(stats[c] - mean[c] / batches) / (fabs(mean[c] / batches) + 1e-3);
        double ev = fabs(stats[8 + c] - var[c] / batches) / (var[c] / batches);
        worst = fmax(worst, fmax(em, ev));
    }
    test_note("running statistics vs batch averages: max relative error %.2e", worst);
    ASSERT(worst < 1e-4);
    free(y);
    model_free(m);
    if (owned) dataset_close(ds);
    dataset_close(full);
}

static void test_untrained_run_is_evaluated(void) {
    TrainConfig c;
    if (train_config_defaults(&c, "fashionmnist") != 0) test_fail_at(__FILE__, __LINE__, "%s", rsa_error_message());
    c.backbone = (ResNetSpec){BLOCK_BASIC, {1, 1, 0, 0}, 8, STEM_CIFAR, false};
    c.proj_hidden = 32, c.proj_out = 16, c.image_size = 16;
    c.subset = 256, c.eval_subset = 256, c.batch = 64, c.epochs = 0, c.lr_scaling = LR_SCALE_LINEAR;
    c.linear_epochs = 1, c.linear_batch = 128, c.linear_milestones[0] = c.linear_milestones[1] = 1;
    c.knn_every = 1, c.knn_k = 20, c.loader_threads = 1, c.seed = 2;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/bn_recalibrate_run", test_tmpdir());
    TrainResult r;
    if (train_run(&c, dir, "hash", NULL, &r) != 0) test_fail_at(__FILE__, __LINE__, "%s", rsa_error_message());
    test_note("random init, 16 px, 256 images: kNN %.2f, linear %.2f", r.knn_top1, r.linear_top1);
    ASSERT(r.knn_top1 > 10.0); /* -1 when not run; 10 is chance on 10 classes */
    ASSERT(r.linear_top1 > 0.0);
}

int main(void) {
    RUN(test_statistics_are_batch_averages);
    RUN(test_untrained_run_is_evaluated);
    return test_finish();
}
