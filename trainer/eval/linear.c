#include "linear.h"

#include "linear_head.h"

#include <string.h>

LoaderSpec linear_eval_spec(const TrainConfig *cfg, ViewMode mode) {
    LoaderSpec s;
    loader_spec_default(cfg->dataset, mode, cfg->seed, &s);
    s.size = cfg->image_size;
    s.batch = cfg->linear_batch;
    s.eval = true;
    s.threads = cfg->loader_threads;
    /* eval_single.py's train loader drops the last partial batch; eval_multi.py's (Mean-Shift) and the test
     * loaders keep it */
    s.drop_last = mode == VIEWS_EVAL_TRAIN && cfg->linear == LINEAR_SMALL;
    return s;
}

int linear_eval(Model *m, int feature_tensor, const TrainConfig *cfg, const Dataset *train, const Dataset *test,
                bool test_every_epoch, Dist *d, const LinearHooks *hooks, LinearResult *out) {
    memset(out, 0, sizeof *out);
    const bool lead = !d || d->rank == 0; /* fits the head; the other ranks only help with the features */
    LinearHead h;
    linear_head_init(&h, cfg, m->tensors[feature_tensor].c, dataset_num_classes(train));
    LoaderSpec train_spec = linear_eval_spec(cfg, VIEWS_EVAL_TRAIN), test_spec = linear_eval_spec(cfg, VIEWS_EVAL_TEST);
    Features test_f = {0};
    bool have_test = false; /* the same on every rank: the feature passes are collectives */
    int rc = -1;
    if (h.meanshift) { /* statistics of the normalised training features under the test transform */
        Features stat_f;
        if (features_compute(m, feature_tensor, train, &test_spec, 0, false, true, d, &stat_f) != 0) goto done;
        if (lead) linear_head_standardise(&h, &stat_f);
        features_free(&stat_f);
    }
    out->best_top1 = -1;
    for (int epoch = 0; epoch < cfg->linear_epochs; epoch++) {
        /* the random crops change every epoch, so the training features are recomputed */
        Features f;
        if (features_compute(m, feature_tensor, train, &train_spec, epoch, cfg->linear_bn_train, false, d, &f) != 0)
            goto done;
        if (lead) {
            linear_head_transform(&h, f.x, f.n);
            out->final_loss = linear_head_epoch(&h, &f, linear_head_lr(&h, epoch));
        }
        features_free(&f);
        bool last = epoch == cfg->linear_epochs - 1;
        double top1 = -1, top5;
        if (test_every_epoch || last) {
            /* with the encoder's BN frozen the test features never change: compute them once */
            if (!have_test || cfg->linear_bn_train) {
                features_free(&test_f);
                if (features_compute(m, feature_tensor, test, &test_spec, 0, false, false, d, &test_f) != 0) goto done;
                if (lead) linear_head_transform(&h, test_f.x, test_f.n);
                have_test = true;
            }
            if (lead) {
                linear_head_accuracy(&h, &test_f, &top1, &top5);
                if (top1 > out->best_top1) out->best_top1 = top1, out->best_epoch = epoch + 1;
                if (last) out->top1 = top1, out->top5 = top5;
            }
        }
        if (lead && hooks && hooks->epoch_done) hooks->epoch_done(hooks->ctx, epoch + 1, out->final_loss, top1);
    }
    out->epochs = cfg->linear_epochs;
    rc = 0;
done:
    features_free(&test_f);
    linear_head_free(&h);
    return rc;
}
