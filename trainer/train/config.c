#include "config.h"

#include "../core/error.h"

#include <stdio.h>
#include <string.h>

const char *method_name(MethodKind m) {
    static const char *names[] = {"rsa", "byol", "simclr", "mocov2", "simsiam"};
    return m <= METHOD_SIMSIAM ? names[m] : "?";
}

int train_config_defaults(TrainConfig *c, const char *dataset) {
    memset(c, 0, sizeof *c);
    snprintf(c->dataset, sizeof c->dataset, "%s", dataset);
    bool imagenet = strcmp(dataset, "imagenet100") == 0 || strcmp(dataset, "imagenet") == 0;
    c->backbone = imagenet ? RESNET50 : RESNET18_CIFAR;
    c->proj_hidden = imagenet ? 4096 : 1024;
    c->proj_out = imagenet ? 256 : 128;
    c->pred_hidden = 0;
    c->loader_threads = LOADER_THREADS_AUTO;
    c->method = METHOD_RSA;
    c->views = VIEWS_MA;
    c->beta_base = 0.4; /* the official code's default; the paper uses 0.3 for CIFAR */
    c->beta_schedule = BETA_DECAY;
    c->tau_base = 0.99;
    c->temperature = 0.5;
    c->queue_size = 4096;
    c->epochs = imagenet ? 100 : 200;
    c->batch = 256;
    c->optimizer = OPTIM_SGD;
    c->lr = imagenet ? 0.2 : 0.1;
    c->lr_scaling = LR_SCALE_FLOOR;
    c->lr_schedule = imagenet ? LR_COSINE_STEP : LR_COSINE_EPOCH;
    c->weight_decay = imagenet ? 1e-4 : 5e-4;
    c->momentum = 0.9;
    c->lars_trust = 0.001;
    c->decay_1d = true;
    c->linear = imagenet ? LINEAR_MEANSHIFT : LINEAR_SMALL;
    c->linear_epochs = imagenet ? 40 : 100;
    c->linear_batch = 256;
    c->linear_lr = imagenet ? 0.01 : 30;
    c->linear_milestones[0] = imagenet ? 15 : 60;
    c->linear_milestones[1] = imagenet ? 30 : 80;
    c->knn_k = 200;
    c->knn_t = 0.1;
    c->seed = 0;
    snprintf(c->backend, sizeof c->backend, "cpu");
    c->tf32 = false, c->precision = PRECISION_FP32, c->deterministic = true, c->low_memory = true;
    c->saved_16bit = false;
    c->bn_group = 0;
    c->lowp_convolutions = true;
    c->lowp_weight_grads = false;
    DataDefaults d;
    if (data_defaults(dataset, &d) != 0) return -1;
    c->image_size = d.size;
    return 0;
}

double train_config_base_lr(const TrainConfig *c) {
    return c->lr_scaling == LR_SCALE_FLOOR ? c->lr * (double)(c->batch / 256) : c->lr * c->batch / 256.0;
}

int train_config_check(const TrainConfig *c) {
    /* epochs 0: no pretraining, the initialised encoder is evaluated (the reports' "random init" row) */
    if (c->epochs < 0 || c->batch < 2)
        return rsa_fail("set epochs >= 0 and batch >= 2", "epochs %d, batch %d", c->epochs, c->batch);
    if (train_config_base_lr(c) <= 0)
        return rsa_fail("use lr_scaling = \"linear\" for batches under 256, or a batch of at least 256",
                        "lr %g scaled as lr * (batch // 256) with batch %d gives a learning rate of 0", c->lr,
                        c->batch);
    int views = view_count(c->views);
    if (c->method == METHOD_RSA && c->views != VIEWS_MA)
        return rsa_fail("RSA needs views = \"ma\" (two weak views and an aggressive view made from each)",
                        "method rsa with views %s", view_mode_name(c->views));
    if (c->method != METHOD_RSA && views != 2)
        return rsa_fail("use views \"aa\" or \"aw\" (BYOL in MA mode would only see the two weak views)",
                        "method %s needs two views, views %s gives %d", method_name(c->method),
                        view_mode_name(c->views), views);
    if (c->method == METHOD_RSA && c->beta_schedule == BETA_TABLE && (!c->beta_table || c->beta_table_len < 1))
        return rsa_fail("give a beta schedule function in the experiment", "beta_schedule table is empty");
    if (c->method == METHOD_MOCOV2 && c->queue_size < 1)
        return rsa_fail("MoCo needs a queue of negatives (65536 in the paper, 4096 is common on CIFAR)",
                        "queue_size %d", c->queue_size);
    if ((c->method == METHOD_SIMCLR || c->method == METHOD_MOCOV2) && !(c->temperature > 0))
        return rsa_fail("give a positive temperature", "temperature %g", c->temperature);
    if (c->loader_threads != LOADER_THREADS_AUTO && (c->loader_threads < 0 || c->loader_threads > 256))
        return rsa_fail("use 0 to 256 loader threads, or \"auto\"", "loader_threads %d", c->loader_threads);
    if (c->lowp_weight_grads && c->precision == PRECISION_FP32)
        return rsa_fail("set precision = \"bf16\" or \"fp16\", or drop lowp_weight_grads",
                        "lowp_weight_grads rounds weight gradients to a 16-bit format; precision is %s",
                        c->tf32 ? "tf32" : "fp32");
    if (c->bn_group < 0 || (c->bn_group > 0 && (c->sync_bn || c->batch % c->bn_group != 0)))
        return rsa_fail("set bn_group to a divisor of the batch (the images per GPU it stands for), without sync_bn",
                        "bn_group %d with batch %d%s", c->bn_group, c->batch, c->sync_bn ? " and sync_bn" : "");
    if (c->beta_base < 0 || c->beta_base > 1)
        return rsa_fail("beta_base is a mixing weight in [0, 1]", "beta_base %g", c->beta_base);
    if (c->knn_every > 0 && c->knn_k < 1)
        return rsa_fail("give the kNN monitor at least one neighbour, or knn_every = 0", "knn_k %d", c->knn_k);
    return 0;
}
