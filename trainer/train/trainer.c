#include "trainer.h"
#ifdef RSA_CUDA
#include "../ops/cuda/cuda_backend.h"
#endif

#include "../core/error.h"
#include "../core/fileio.h"
#include "../core/hash.h"
#include "../eval/knn.h"
#include "../eval/linear.h"
#include "../ops/cpu/conv_cpu.h"
#include "checkpoint.h"
#include "schedule.h"
#include "subset.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static const char *STEPS_HEADER = "step\tepoch\tloss\tloss_w\tloss_a\tbeta\ttau\tlr\tdata_s\tcompute_s\n";
static const char *EPOCHS_HEADER = "epoch\tloss\tloss_w\tloss_a\tknn_top1\tseconds\timages_per_s\tdata_share\n";

/* Keeps the header and the rows whose first field is <= last (a row written after the checkpoint we resume from, or
 * torn by a kill, goes), atomically. A missing file gets the header. */
static int truncate_tsv(const char *path, const char *header, int64_t last) {
    size_t size;
    char *text = access(path, F_OK) == 0 ? read_file(path, &size) : NULL;
    if (!text && access(path, F_OK) == 0) return -1;
    size_t cap = strlen(header) + (text ? size : 0) + 1, used = 0;
    char *out = malloc(cap);
    if (!out) rsa_fatal("free memory", "out of memory");
    memcpy(out, header, strlen(header));
    used = strlen(header);
    size_t fields = 1;
    for (const char *h = header; *h; h++) fields += *h == '\t';
    for (char *line = text ? strchr(text, '\n') : NULL; line && line[1];) {
        char *start = line + 1, *end = strchr(start, '\n');
        if (!end) break; /* a torn last line */
        size_t f = 1;
        for (char *c = start; c < end; c++) f += *c == '\t';
        char *stop;
        long long key = strtoll(start, &stop, 10);
        if (f == fields && stop != start && key <= last) {
            memcpy(out + used, start, (size_t)(end - start + 1));
            used += (size_t)(end - start + 1);
        }
        line = end;
    }
    out[used] = 0;
    int rc = atomic_write_text(path, out);
    free(out);
    free(text);
    return rc;
}

/* The loss and kNN columns of the last row of epochs.tsv (0 and -1 when it has none): a run resumed after its last
 * epoch reports the final loss it trained to and its last kNN monitor, not the 0 and -1 of an epoch loop that did
 * not run. */
static void last_epoch_row(const char *path, double *loss, double *knn) {
    size_t size;
    char *text = read_file(path, &size);
    *loss = 0, *knn = -1;
    for (char *line = text ? strchr(text, '\n') : NULL; line && line[1]; line = strchr(line + 1, '\n')) {
        double v[5]; /* epoch, loss, loss_w, loss_a, knn_top1 */
        char *at = line + 1, *end;
        int got = 0;
        for (; got < 5; got++, at = end) {
            v[got] = strtod(at, &end);
            if (end == at) break;
        }
        if (got == 5) *loss = v[1], *knn = v[4];
    }
    free(text);
}

static int write_results(const char *dir, const TrainResult *r, const TrainConfig *cfg) {
    char path[1024], text[2048];
    snprintf(path, sizeof path, "%s/result.txt", dir);
    snprintf(text, sizeof text,
             "linear_top1 = %.4f\nlinear_top5 = %.4f\nlinear_best_top1 = %.4f\nlinear_best_epoch = %d\n"
             "linear_epochs = %d\nlinear_protocol = %s\nlinear_bn_train = %s\nknn_top1 = %.4f\n"
             "train_seconds = %.3f\nfinal_loss = %.6f\n",
             r->linear_top1, r->linear_top5, r->linear_best_top1, r->linear_best_epoch, cfg->linear_epochs,
             cfg->linear == LINEAR_SMALL ? "small" : "meanshift", cfg->linear_bn_train ? "true" : "false",
             r->knn_top1, r->train_seconds, r->final_loss);
    size_t used = strlen(text);
    if (cfg->precision != PRECISION_FP32) /* fp32 runs keep the result file they always had */
        snprintf(text + used, sizeof text - used, "precision = %s\n", precision_name(cfg->precision));
    used = strlen(text);
    if (cfg->precision == PRECISION_FP16)
        snprintf(text + used, sizeof text - used, "loss_scale = %.17g\nskipped_steps = %lld\n", r->loss_scale,
                 (long long)r->skipped_steps);
    return atomic_write_text(path, text);
}

/* Names the first parameter holding a NaN or infinity, or returns NULL. */
static const char *non_finite_param(const Model *m) {
    if (isfinite(m->be->sumsq(m->n_weights, m->w))) return NULL;
    for (int i = 0; i < m->n_params; i++)
        if (!isfinite(m->be->sumsq(m->params[i].numel, m->w + m->params[i].offset))) return m->params[i].name;
    return "(a padding element)";
}

/* Names the first tensor of what a checkpoint holds with a NaN or infinity, or returns NULL: the networks' parameters
 * and batch-norm statistics (a running variance can overflow while every parameter is still finite), the optimiser's
 * momentum. */
static const char *non_finite_state(const Learner *l, char *buf, size_t size) {
    const Model *models[2] = {l->online, l->target};
    for (int k = 0; k < 2; k++) {
        const Model *m = models[k];
        if (!m) continue;
        const char *p = non_finite_param(m);
        if (p) return p;
        for (int b = 0; b < m->n_bns && !isfinite(m->be->sumsq(m->n_buf, m->buf)); b++)
            for (int v = 0; v < 2; v++) {
                const BnInfo *bn = &m->bns[b];
                if (isfinite(m->be->sumsq((size_t)bn->c, m->buf + bn->stat_offset + (size_t)v * bn->c))) continue;
                snprintf(buf, size, "%s.%s", m->nodes[bn->node].name, v ? "running_var" : "running_mean");
                return buf;
            }
    }
    const Model *m = l->online;
    if (isfinite(m->be->sumsq(m->n_weights, l->opt.momentum_buf))) return NULL;
    for (int i = 0; i < m->n_params; i++)
        if (!isfinite(m->be->sumsq(m->params[i].numel, l->opt.momentum_buf + m->params[i].offset))) {
            snprintf(buf, size, "optimizer.momentum.%s", m->params[i].name);
            return buf;
        }
    return "optimizer.momentum (a padding element)";
}

/* Flushes a metrics file to disk: a full disk must stop the run here, before a checkpoint claims rows that were
 * never written. */
static int flush_file(FILE *f, const char *path) {
    if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0) {
        int err = errno;
        return rsa_fail(err == ENOSPC ? "the disk is full: free space and rerun; the last checkpoint is intact"
                                      : "check the disk of the run directory",
                        "cannot write %s: %s", path, strerror(err));
    }
    return 0;
}

/* Removes the temporary files of atomic writes (<name>.tmp.<pid>) that a killed run left in its directory. */
static void remove_stale_temporaries(const char *dir) {
    static const char *const names[] = {"checkpoint.safetensors", "steps.tsv", "epochs.tsv", "linear.tsv",
                                        "result.txt"};
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            size_t k = strlen(names[i]);
            if (strncmp(e->d_name, names[i], k) != 0 || strncmp(e->d_name + k, ".tmp.", 5) != 0) continue;
            const char *pid = e->d_name + k + 5;
            if (!*pid || strspn(pid, "0123456789") != strlen(pid)) continue;
            char path[2048];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path); /* best effort: a leftover only wastes space */
        }
    closedir(d);
}

/* "PATH (step N)" of the last checkpoint written or loaded, or that there is none. */
static const char *last_good(char *buf, size_t size, const char *ckpt, int64_t step) {
    if (step < 0) snprintf(buf, size, "none yet: a rerun starts from the beginning");
    else snprintf(buf, size, "%s (step %lld)", ckpt, (long long)step);
    return buf;
}

/* Stop (signal or test limit) only when every process does, so none is left waiting in a collective. */
static bool agreed_stop(Dist *dist, const TrainHooks *hooks, int64_t steps_this_call) {
    bool stop = hooks && ((hooks->stop && *hooks->stop) ||
                          (hooks->max_steps > 0 && steps_this_call >= hooks->max_steps));
    if (dist->world == 1) return stop;
    double any = stop;
    dist->allreduce_f64(dist, &any, 1);
    return any > 0;
}

typedef struct {
    const TrainHooks *hooks;
    TrainProgress *p;
} LinearCtx;

static void linear_epoch(void *ctx, int epoch, double loss, double top1) {
    LinearCtx *c = ctx;
    c->p->linear_epoch = epoch;
    c->p->m.loss = loss;
    if (top1 >= 0) c->p->linear_top1 = top1;
    if (c->hooks && c->hooks->progress) c->hooks->progress(c->hooks->ctx, c->p);
}

/* kNN top-1 of the online encoder: the labelled training images are the bank, the test set the queries. With d
 * (data parallel) a collective: every rank computes features, rank 0 gets them and the top-1 (the others -1). */
static int knn_eval(Learner *l, const TrainConfig *cfg, const Dataset *bank_ds, const Dataset *test,
                    const LoaderSpec *spec, Dist *d, double *top1) {
    Features bank, tf;
    if (features_compute(l->online, l->feature, bank_ds, spec, 0, false, true, d, &bank) != 0) return -1;
    if (features_compute(l->online, l->feature, test, spec, 0, false, true, d, &tf) != 0) {
        features_free(&bank);
        return -1;
    }
    *top1 = d && d->rank != 0 ? -1 : knn_top1(&bank, &tf, dataset_num_classes(test), cfg->knn_k, cfg->knn_t);
    features_free(&bank), features_free(&tf);
    return 0;
}

static const char *start_words(char *buf, size_t size, int64_t step) {
    if (step == 0) snprintf(buf, size, "starts from step 0");
    else snprintf(buf, size, "resumes from step %lld", (long long)step);
    return buf;
}

/* Data parallel: every rank must start the same run at the same step (each reads the run directory, so the results
 * must be on a file system all of them share). Collective, and it fails on every rank alike: a rank that went on
 * alone would wait forever in the first all-reduce. */
static int ranks_agree_on_start(Dist *d, const char *config_hash, int64_t step, bool started) {
    if (!dist_all_ok(d, started)) return -1;
    uint64_t mine[2] = {fnv1a64(FNV1A64_START, config_hash, strlen(config_hash)), (uint64_t)step}, lead[2], them[2];
    int bad = dist_first_disagreeing(d, mine, 2, lead, them);
    if (bad < 0) return 0;
    bool same_run = them[0] == lead[0];
    char x[64], y[64];
    return rsa_fail("put the results directory on a file system every node shares (or copy it to each node) and "
                    "rerun",
                    "the data-parallel ranks disagree: rank %d of %d %s, rank 0 %s", bad, d->world,
                    same_run ? start_words(x, sizeof x, (int64_t)them[1]) : "runs another configuration",
                    start_words(y, sizeof y, (int64_t)lead[1]));
}

int train_loader_threads(const TrainConfig *cfg, int processes_on_node) {
    if (cfg->loader_threads != LOADER_THREADS_AUTO) return cfg->loader_threads;
    return loader_threads_auto(strcmp(cfg->backend, "cuda") == 0, processes_on_node);
}

int train_run(const TrainConfig *cfg_in, const char *dir, const char *config_hash, const TrainHooks *hooks,
              TrainResult *result) {
    memset(result, 0, sizeof *result);
    result->knn_top1 = -1;
    if (train_config_check(cfg_in) != 0) return -1;
    Dist *dist = hooks && hooks->dist ? hooks->dist : dist_single();
    TrainConfig resolved = *cfg_in; /* what every loader of the run (training, kNN, linear evaluation) reads */
    resolved.loader_threads = train_loader_threads(cfg_in, dist->local_size);
    const TrainConfig *cfg = &resolved;
    const bool lead = dist->rank == 0; /* the one process that writes and evaluates */
    if (cfg->batch % dist->world != 0)
        return rsa_fail("make the global batch a multiple of the number of processes", "batch %d over %d processes",
                        cfg->batch, dist->world);
    const Backend *be = backend_by_name(cfg->backend);
    DataOptions opt = {.root = cfg->data_root[0] ? cfg->data_root : NULL};
    bool stl = strcmp(cfg->dataset, "stl10") == 0;
    Dataset *full = NULL, *train = NULL, *labelled = NULL, *eval_train = NULL, *test = NULL;
    bool train_owned = false, eval_owned = false;
    Loader *ld = NULL;
    Learner *l = NULL;
    FILE *steps_f = NULL, *epochs_f = NULL;
    int rc = -1;
    char ckpt[1024], steps_path[1024], epochs_path[1024];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", dir);
    snprintf(steps_path, sizeof steps_path, "%s/steps.tsv", dir);
    snprintf(epochs_path, sizeof epochs_path, "%s/epochs.tsv", dir);
    LoaderSpec spec;
    int64_t spe = 0, total = 0;
    RunPosition pos = {0, 0, 0};
    int64_t saved_step = -1; /* the step of the checkpoint on disk */
    char good[1200];

    /* Everything a rank needs before the first step; a failure breaks out to the agreement below, which every rank
     * reaches, so that one rank's failure (its data, its GPU, its checkpoint) stops them all with its message. */
    bool started = false;
    do {
        if (!be || (lead && make_dirs(dir) != 0)) break;
#ifdef RSA_CUDA
        if (strcmp(be->name, "cuda") == 0)
            cuda_set_tf32(cfg->tf32), cuda_set_deterministic(cfg->deterministic),
                cuda_set_lowp_convolutions(cfg->lowp_convolutions);
#endif
        conv_cpu_set_native_bf16(cfg->lowp_convolutions); /* cpu (and staged); read as the networks are built */
        /* STL-10 pretrains on train+unlabeled and evaluates on the 5k labelled train images */
        if (!(full = dataset_open(cfg->dataset, stl ? "train+unlabeled" : "train", &opt))) break;
        if (!(train = dataset_subset(full, cfg->subset, &train_owned))) break;
        if (!(labelled = stl ? dataset_open(cfg->dataset, "train", &opt) : full)) break;
        if (!(eval_train = dataset_subset(labelled, cfg->eval_subset, &eval_owned))) break;
        if (!(test = dataset_open(cfg->dataset, "test", &opt))) break;
        if (loader_spec_default(cfg->dataset, cfg->views, cfg->seed, &spec) != 0) break;
        spec.size = cfg->image_size, spec.batch = cfg->batch / dist->world, spec.threads = cfg->loader_threads;
        spec.rank = dist->rank, spec.world = dist->world;
        spec.host_alloc = be->host_alloc, spec.host_free = be->host_free;
        if (cfg->bn_group > 0 && spec.batch % cfg->bn_group != 0) {
            rsa_fail("run on fewer processes (at most batch / bn_group), or change bn_group",
                     "bn_group %d does not divide this process's share of the batch, %d images (batch %d over %d "
                     "processes)", cfg->bn_group, spec.batch, cfg->batch, dist->world);
            break;
        }
        spec.groups = cfg->bn_group > 0 ? spec.batch / cfg->bn_group : 1; /* group g: the samples of rank g */
        if (!(ld = loader_new(train, &spec))) break;
        spe = loader_steps_per_epoch(ld), total = (int64_t)cfg->epochs * spe;
        if (spe < 1) {
            rsa_fail("use a smaller batch or more images", "%zu training images make no batch of %d",
                     dataset_count(train), cfg->batch);
            break;
        }
        int max_batch = spec.batch > cfg->linear_batch ? spec.batch : cfg->linear_batch;
        if (!(l = learner_new(cfg, be, max_batch, total)) || learner_set_dist(l, dist, cfg->sync_bn) != 0) break;
        if (lead) remove_stale_temporaries(dir);
        if (access(ckpt, F_OK) == 0) {
            if (checkpoint_load(l, config_hash, ckpt, &pos) != 0) break;
            saved_step = l->step;
        } else if (cfg->init_from[0] && learner_load_init(l, cfg->init_from) != 0) {
            break;
        }
        if (lead && (truncate_tsv(steps_path, STEPS_HEADER, l->step) != 0 ||
                     truncate_tsv(epochs_path, EPOCHS_HEADER, pos.epoch) != 0))
            break;
        if (lead) last_epoch_row(epochs_path, &result->final_loss, &result->knn_top1);
        if (lead) steps_f = fopen(steps_path, "a"), epochs_f = fopen(epochs_path, "a");
        if (lead && (!steps_f || !epochs_f)) {
            rsa_fail("check the permissions of the run directory", "cannot append to %s: %s", steps_path,
                     strerror(errno));
            break;
        }
        started = true;
    } while (0);
    if (ranks_agree_on_start(dist, config_hash, l ? l->step : 0, started) != 0) goto done;

    TrainProgress p = {0};
    p.epochs = cfg->epochs, p.total_steps = total, p.steps_per_epoch = spe, p.phase = "train", p.knn_top1 = -1;
    int64_t steps_this_call = 0;
    LoaderSpec knn_spec;
    loader_spec_default(cfg->dataset, VIEWS_EVAL_TEST, cfg->seed, &knn_spec);
    knn_spec.size = cfg->image_size, knn_spec.batch = cfg->linear_batch, knn_spec.threads = cfg->loader_threads;
    knn_spec.eval = true;

    for (int epoch = pos.epoch; epoch < cfg->epochs; epoch++) {
        int64_t first = epoch == pos.epoch ? pos.step_in_epoch : 0;
        if (!dist_all_ok(dist, loader_start(ld, epoch, (int)first) == 0)) goto done;
        double sums[3] = {0}, epoch_data = 0, epoch_compute = 0;
        int64_t done_steps = 0;
        for (int64_t s = first;; s++) {
            double t0 = now();
            Batch *b = NULL;
            bool got = loader_next(ld, &b) == 0; /* an image that does not decode fails one rank's batch */
            if (!dist_all_ok(dist, got)) {
                if (b) loader_release(ld, b);
                goto done;
            }
            if (!b) break;
            double t1 = now();
            StepMetrics m;
            double lr = schedule_lr(cfg, epoch, s, spe);
            if (learner_step(l, b->view, b->n, lr, &m) != 0) {
                char name[2 * MODEL_NAME_BYTES];
                const char *bad = non_finite_state(l, name, sizeof name);
                rsa_error_context("epoch %d step %lld%s%s (the last good checkpoint: %s)", epoch + 1,
                                  (long long)l->step, bad ? ": not finite: " : "", bad ? bad : "",
                                  last_good(good, sizeof good, ckpt, saved_step));
                loader_release(ld, b);
                goto done;
            }
            loader_release(ld, b);
            double t2 = now();
            char name[2 * MODEL_NAME_BYTES];
            const char *bad = non_finite_state(l, name, sizeof name);
            if (bad) {
                rsa_fail("lower the learning rate; the last good checkpoint is left in place",
                         "%s is not finite after step %lld (the last good checkpoint: %s)", bad,
                         (long long)l->step, last_good(good, sizeof good, ckpt, saved_step));
                goto done;
            }
            pos.train_seconds += t2 - t0;
            epoch_data += t1 - t0, epoch_compute += t2 - t1;
            sums[0] += m.loss, sums[1] += m.loss_w, sums[2] += m.loss_a;
            done_steps++, steps_this_call++;
            if (lead)
                fprintf(steps_f, "%lld\t%d\t%.7g\t%.7g\t%.7g\t%.7g\t%.9g\t%.7g\t%.4f\t%.4f\n", (long long)l->step,
                        epoch + 1, m.loss, m.loss_w, m.loss_a, m.beta, m.tau, m.lr, t1 - t0, t2 - t1);
            p.epoch = epoch + 1, p.step = l->step, p.step_in_epoch = s + 1, p.m = m;
            p.images_per_s = (double)done_steps * cfg->batch / (epoch_data + epoch_compute);
            p.data_share = epoch_data / (epoch_data + epoch_compute);
            p.eta_seconds = (double)(total - l->step) * (epoch_data + epoch_compute) / (double)done_steps;
            if (hooks && hooks->progress) hooks->progress(hooks->ctx, &p);
            bool stop = agreed_stop(dist, hooks, steps_this_call);
            bool periodic = cfg->checkpoint_every > 0 && l->step % cfg->checkpoint_every == 0;
            if ((stop || periodic) && s + 1 < spe) {
                RunPosition here = {epoch, s + 1, pos.train_seconds};
                if (learner_check_ranks_agree(l) != 0) goto done;
                bool saved = !lead || (flush_file(steps_f, steps_path) == 0 &&
                                       checkpoint_save(l, here, config_hash, ckpt) == 0);
                if (!dist_all_ok(dist, saved)) goto done;
                saved_step = l->step;
                if (stop) {
                    rc = 1;
                    goto done;
                }
            }
        }
        double knn = -1;
        bool epoch_ok = true; /* the monitor (every rank computes features for it) and rank 0's checkpoint */
        if (cfg->knn_every > 0 && ((epoch + 1) % cfg->knn_every == 0 || epoch + 1 == cfg->epochs)) {
            p.phase = "knn";
            if (hooks && hooks->progress) hooks->progress(hooks->ctx, &p);
            epoch_ok = knn_eval(l, cfg, eval_train, test, &knn_spec, dist, &knn) == 0;
            p.knn_top1 = knn, p.phase = "train";
        }
        double secs = epoch_data + epoch_compute, n = done_steps ? (double)done_steps : 1;
        RunPosition next = {epoch + 1, 0, pos.train_seconds};
        if (learner_check_ranks_agree(l) != 0) goto done; /* what rank 0 saves is every rank's state */
        if (lead && epoch_ok) {
            fprintf(epochs_f, "%d\t%.7g\t%.7g\t%.7g\t%.4f\t%.3f\t%.2f\t%.4f\n", epoch + 1, sums[0] / n,
                    sums[1] / n, sums[2] / n, knn, secs, secs > 0 ? done_steps * cfg->batch / secs : 0,
                    secs > 0 ? epoch_data / secs : 0);
            epoch_ok = flush_file(steps_f, steps_path) == 0 && flush_file(epochs_f, epochs_path) == 0 &&
                       checkpoint_save(l, next, config_hash, ckpt) == 0;
        }
        if (!dist_all_ok(dist, epoch_ok)) goto done;
        saved_step = l->step;
        result->final_loss = sums[0] / n;
        if (knn >= 0) result->knn_top1 = knn;
        bool stop = agreed_stop(dist, hooks, steps_this_call);
        if (stop && epoch + 1 < cfg->epochs) {
            rc = 1;
            goto done;
        }
    }
    result->train_seconds = pos.train_seconds;
    result->skipped_steps = l->scaler.skipped, result->loss_scale = l->scaler.on ? l->scaler.scale : 0;
    /* The result file is rank 0's; every rank computes the features of the linear evaluation (and of the kNN
     * monitor during training): features_compute gathers them to rank 0, which fits the head, so the forward passes
     * of 8 GPUs' evaluation take an eighth of one GPU's time. The random-init row's BN re-estimation and kNN are
     * rank 0's alone. */
    l->online->bn_sync = NULL; /* no BN statistics to share: batch statistics are rank 0's alone (features.h) */
    bool ready = true;
    if (cfg->epochs == 0 && lead) { /* an untrained encoder (the random-init row): see features_recalibrate_bn */
        p.phase = "bn-stats";
        if (hooks && hooks->progress) hooks->progress(hooks->ctx, &p);
        ready = features_recalibrate_bn(l->online, l->feature, eval_train, &knn_spec) == 0 &&
                !(cfg->knn_every > 0 && knn_eval(l, cfg, eval_train, test, &knn_spec, NULL, &result->knn_top1) != 0);
    }
    if (!dist_all_ok(dist, ready)) goto done; /* the others would wait for rank 0 in the evaluation */
    if (!lead) { /* its share of the evaluation's features; the head and the result file are rank 0's */
        LinearResult ignored;
        rc = cfg->linear_epochs > 0 ? linear_eval(l->online, l->feature, cfg, eval_train, test, cfg->linear_best_epoch,
                                                  dist, NULL, &ignored)
                                    : 0;
        goto done;
    }
    if (cfg->linear_epochs > 0) {
        char lin_path[1024];
        snprintf(lin_path, sizeof lin_path, "%s/linear.tsv", dir);
        p.phase = "linear", p.linear_epochs = cfg->linear_epochs, p.linear_top1 = -1;
        LinearCtx lc = {hooks, &p};
        LinearHooks lh = {linear_epoch, &lc};
        LinearResult lr;
        if (linear_eval(l->online, l->feature, cfg, eval_train, test, cfg->linear_best_epoch, dist, &lh, &lr) != 0)
            goto done;
        result->linear_top1 = lr.top1, result->linear_top5 = lr.top5;
        result->linear_best_top1 = lr.best_top1, result->linear_best_epoch = lr.best_epoch;
        char row[256];
        snprintf(row, sizeof row, "epochs\t%d\ttop1\t%.4f\ttop5\t%.4f\tloss\t%.6f\n", lr.epochs, lr.top1, lr.top5,
                 lr.final_loss);
        if (atomic_write_text(lin_path, row) != 0) goto done;
    }
    rc = write_results(dir, result, cfg);
done:
    if (rc < 0) rsa_error_context("run %s", dir);
    if (steps_f) fclose(steps_f);
    if (epochs_f) fclose(epochs_f);
    learner_free(l);
    loader_free(ld);
    if (test) dataset_close(test);
    if (eval_owned) dataset_close(eval_train);
    if (labelled && labelled != full) dataset_close(labelled);
    if (train_owned) dataset_close(train);
    if (full) dataset_close(full);
    return rc;
}
