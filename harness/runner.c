/* Trains the runs of a plan: the lock, provenance, schedule sampling, train_run with a progress line, signals,
 * DONE / FAILED markers. */
#include "harness.h"
#include "provenance.h"

#include "trainer/backend/backend.h"
#include "trainer/core/error.h"
#include "trainer/core/fileio.h"
#include "trainer/data/data.h"
#include "trainer/dist/dist.h"
#include "trainer/train/trainer.h"
#include "util.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_flag = 0;
static volatile sig_atomic_t stop_signal = 0;

static void on_signal(int sig) {
    if (stop_flag) _exit(128 + sig); /* a second Ctrl-C: quit now (the last checkpoint stays valid) */
    stop_flag = 1;
    stop_signal = sig;
    static const char msg[] = "\nrsa: stopping at the next step boundary (writing a checkpoint); press Ctrl-C again "
                              "to quit at once\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
}

static int install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
        return rsa_fail("", "cannot install the signal handlers");
    return 0;
}

typedef struct {
    const Ctx *ctx;
    const char *id;
    int index, total;
    double start, last_print, last_log, after; /* after: estimated seconds of the runs after this one */
    int last_epoch_logged, last_linear_logged;
    bool line_open;
} ProgressCtx;

static void progress_line(const ProgressCtx *pc, const TrainProgress *p, char *out, size_t n) {
    char eta[32], all[32];
    double left = p->eta_seconds;
    if (strcmp(p->phase, "linear") == 0) left = 0;
    fmt_duration(left, eta, sizeof eta);
    fmt_duration(left + pc->after, all, sizeof all);
    if (strcmp(p->phase, "linear") == 0) {
        snprintf(out, n, "[%d/%d] linear eval epoch %d/%d loss %.4f%s", pc->index, pc->total, p->linear_epoch,
                 p->linear_epochs, p->m.loss, pc->after > 0 ? "" : "");
        if (p->linear_top1 >= 0) {
            size_t used = strlen(out);
            snprintf(out + used, n - used, " test top-1 %.2f", p->linear_top1);
        }
    } else if (strcmp(p->phase, "knn") == 0) {
        snprintf(out, n, "[%d/%d] epoch %d/%d kNN monitor...", pc->index, pc->total, p->epoch, p->epochs);
    } else {
        snprintf(out, n,
                 "[%d/%d] epoch %d/%d step %lld/%lld loss %.4f beta %.3f lr %.4g | %.0f img/s data %.0f%% | ETA %s, "
                 "all %s%s",
                 pc->index, pc->total, p->epoch, p->epochs, (long long)p->step, (long long)p->total_steps, p->m.loss,
                 p->m.beta, p->m.lr, p->images_per_s, 100 * p->data_share, eta, all, "");
        if (p->knn_top1 >= 0) {
            size_t used = strlen(out);
            snprintf(out + used, n - used, " | kNN %.2f", p->knn_top1);
        }
        if (p->m.loss_scale > 1) { /* fp16 (loss_scale.h) */
            size_t used = strlen(out);
            snprintf(out + used, n - used, " | loss scale 2^%d%s", (int)log2(p->m.loss_scale),
                     p->m.skipped ? " (step skipped)" : "");
        }
    }
}

static void on_progress(void *vctx, const TrainProgress *p) {
    ProgressCtx *pc = vctx;
    double t = now_seconds();
    char line[512];
    bool epoch_end = strcmp(p->phase, "train") == 0 && p->step_in_epoch == p->steps_per_epoch;
    bool linear_end = strcmp(p->phase, "linear") == 0 && p->linear_epoch != pc->last_linear_logged;
    if (pc->ctx->tty) {
        if (t - pc->last_print >= 0.2 || epoch_end || linear_end) {
            progress_line(pc, p, line, sizeof line);
            printf("\r\033[K%s", line);
            fflush(stdout);
            pc->last_print = t;
            pc->line_open = true;
        }
    } else if (epoch_end || linear_end || t - pc->last_print >= 30) {
        progress_line(pc, p, line, sizeof line);
        printf("%s\n", line);
        fflush(stdout);
        pc->last_print = t;
    }
    if ((epoch_end && p->epoch != pc->last_epoch_logged) || linear_end) {
        progress_line(pc, p, line, sizeof line);
        store_log(pc->ctx->results, pc->id, line);
        if (epoch_end) pc->last_epoch_logged = p->epoch;
    }
    if (linear_end) pc->last_linear_logged = p->linear_epoch;
}

static void end_line(ProgressCtx *pc) {
    if (pc->line_open) {
        printf("\r\033[K");
        fflush(stdout);
        pc->line_open = false;
    }
}

/* Steps per epoch of a config (opens the data set to count it). -1 with rsa_fail. */
static int64_t steps_per_epoch(const TrainConfig *c) {
    DataOptions opt = {.root = c->data_root[0] ? c->data_root : NULL};
    bool stl = strcmp(c->dataset, "stl10") == 0;
    Dataset *ds = dataset_open(c->dataset, stl ? "train+unlabeled" : "train", &opt);
    if (!ds) return -1;
    int64_t n = (int64_t)dataset_count(ds);
    dataset_close(ds);
    if (c->subset > 0 && c->subset < n) n = c->subset;
    return n / c->batch;
}

/* Samples the schedule functions of run r into cfg (the arrays are malloc'd into *beta / *lr) and writes
 * schedule.tsv beside the run. */
static int sample_schedules(const Ctx *ctx, LuaExp *L, const ExpRun *r, TrainConfig *cfg, float **beta, float **lr) {
    *beta = *lr = NULL;
    if (!r->beta_fn && !r->lr_fn) return 0;
    int64_t spe = steps_per_epoch(cfg);
    if (spe < 0) return -1;
    int64_t K = (int64_t)cfg->epochs * spe;
    if (K < 1) return 0;
    double base_lr = train_config_base_lr(cfg);
    if (r->beta_fn) {
        if (luaexp_sample(L, r->index, "beta_schedule", K, spe, base_lr, beta) != 0)
            return rsa_fail("fix the schedule function", "%s", luaexp_error(L));
        cfg->beta_table = *beta, cfg->beta_table_len = K;
    }
    if (r->lr_fn) {
        if (luaexp_sample(L, r->index, "lr_schedule", K, spe, base_lr, lr) != 0)
            return rsa_fail("fix the schedule function", "%s", luaexp_error(L));
        cfg->lr_table = *lr, cfg->lr_table_len = K;
    }
    Str b = {0};
    str_add(&b, "step\tbeta\tlr\n");
    for (int64_t k = 0; k < K; k++) {
        char bv[32] = "-", lv[32] = "-";
        if (*beta) snprintf(bv, sizeof bv, "%.9g", (*beta)[k]);
        if (*lr) snprintf(lv, sizeof lv, "%.9g", (*lr)[k]);
        str_addf(&b, "%lld\t%s\t%s\n", (long long)(k + 1), bv, lv);
    }
    char *path = xasprintf("%s/runs/%s/schedule.tsv", ctx->results, r->id);
    int rc = atomic_write_text(path, str_c(&b));
    free(path);
    str_free(&b);
    return rc;
}

static int write_provenance(const Ctx *ctx, const ExpRun *r) {
    char *path = xasprintf("%s/runs/%s/provenance.txt", ctx->results, r->id);
    char *cache = xasprintf("%s/.cache", ctx->results);
    char *old = slurp(path);
    char *now = provenance_text(&r->cfg, ctx->home, cache, ctx->command, ctx->dist ? ctx->dist->local_size : 1);
    char *text = xasprintf("%s%s", old ? old : "", now);
    int rc = atomic_write_text(path, text);
    free(text), free(now), free(old), free(cache), free(path);
    return rc;
}

/* One run: 0 done, 1 stopped by a signal, -1 failed (marked FAILED). */
static int train_one(const Ctx *ctx, LuaExp *L, const Experiment *e, const ExpRun *r, int index, int total,
                     double after) {
    const char *results = ctx->results;
    bool lead = ctx->rank == 0; /* data parallel: rank 0 alone writes the store */
    if (lead && store_prepare(results, r, e, ctx->command, ctx->overrides) != 0) return -1;
    if (lead && store_clear_failed(results, r->id) != 0) return -1;
    TrainConfig cfg = r->cfg;
    const char *root = config_data_root(&cfg);
    char *missing = NULL;
    if (!dataset_present(cfg.dataset, root, &missing)) {
        int n;
        const DataSource *src = dataset_sources(&n);
        const char *url = "", *sum = "";
        for (int i = 0; i < n; i++)
            if (strcmp(src[i].name, cfg.dataset) == 0) url = src[i].url, sum = src[i].checksum;
        rsa_fail("download it (REPRODUCE.md lists every data set), or run at --scale quick", "data set %s missing: "
                 "%s not found under the data root %s (source: %s; checksum: %s)", cfg.dataset, missing, root, url, sum);
        free(missing);
        return -1;
    }
    if (lead && write_provenance(ctx, r) != 0) return -1;
    float *beta = NULL, *lr = NULL;
    if (sample_schedules(ctx, L, r, &cfg, &beta, &lr) != 0) {
        free(beta), free(lr);
        return -1;
    }
    ProgressCtx pc = {.ctx = ctx, .id = r->id, .index = index, .total = total, .after = after};
    pc.start = now_seconds();
    TrainHooks hooks = {.progress = lead ? on_progress : NULL, .ctx = &pc, .stop = &stop_flag, .dist = ctx->dist};
    TrainResult res;
    if (lead) store_log(results, r->id, ctx->command);
    char *dir = run_dir(results, r->id);
    int rc = train_run(&cfg, dir, r->hash, &hooks, &res);
    end_line(&pc);
    double wall = now_seconds() - pc.start;
    free(beta), free(lr);
    if (!lead) {
        free(dir);
        return rc;
    }
    store_add_wall(results, r->id, wall, rc == 0 ? "finished" : rc == 1 ? "stopped" : "failed");
    char d[32];
    fmt_duration(wall, d, sizeof d);
    if (rc == 0) {
        RunStatus st;
        store_status(results, r->id, &st);
        if (store_mark_done(results, r->id, st.wall_seconds) != 0) {
            run_status_free(&st);
            free(dir);
            return -1;
        }
        record_speed(ctx, &cfg, res.train_seconds, wall);
        char knn[16] = "-", line[512];
        if (res.knn_top1 >= 0) snprintf(knn, sizeof knn, "%.2f", res.knn_top1);
        snprintf(line, sizeof line, "[%d/%d] done in %s: linear top-1 %.2f (top-5 %.2f), kNN %s, training %.0f s",
                 index, total, d, res.linear_top1, res.linear_top5, knn, res.train_seconds);
        printf("%s\n", line);
        store_log(results, r->id, line);
        char title[256];
        snprintf(title, sizeof title, "%s: %s", r->id, r->labels);
        plot_run_schedules(dir, title); /* best effort: gnuplot may be missing */
        run_status_free(&st);
        free(dir);
        return 0;
    }
    if (rc == 1) {
        char line[1024];
        snprintf(line, sizeof line, "[%d/%d] stopped after %s with a checkpoint in %s/runs/%s; resume with: %s", index,
                 total, d, results, r->id, ctx->command);
        printf("%s\n", line);
        store_log(results, r->id, line);
        free(dir);
        return 1;
    }
    free(dir);
    return -1;
}

int run_plan_check_backends(const Ctx *ctx, const Experiment *e, const Plan *p) {
    char why[1024] = "";
    for (int i = 0; i < p->n && !why[0]; i++)
        if (p->st[i].state != RUN_DONE && !backend_by_name(e->runs[p->index[i]].cfg.backend))
            snprintf(why, sizeof why, "%s", rsa_error_message());
    double failed = why[0] != 0;
    if (ctx->dist) ctx->dist->allreduce_f64(ctx->dist, &failed, 1); /* one rank's missing GPU stops them all */
    char rank[32] = "";
    if (ctx->dist) snprintf(rank, sizeof rank, "rank %d: ", ctx->rank);
    if (why[0])
        fprintf(stderr, "rsa: %s%s\nrsa: no run was started\n", rank, why);
    else if (failed > 0 && ctx->rank == 0)
        fprintf(stderr, "rsa: another rank cannot open its backend (its message is above); no run was started\n");
    return failed > 0 ? -1 : 0;
}

int run_plan_check_world(const Ctx *ctx, const Experiment *e, const Plan *p) {
    char why[512] = "";
    const char *id = NULL;
    for (int i = 0; i < p->n && !id; i++)
        if (p->st[i].state != RUN_DONE && world_split_problem(&e->runs[p->index[i]].cfg, world_size(), why, sizeof why))
            id = e->runs[p->index[i]].id;
    /* every rank sees the same configs, but the runs left can differ where ranks keep their own stores: agree, and
     * say it once (rank 0's message, else the other ranks') */
    double failed[2] = {id != NULL, ctx->rank == 0 && id != NULL};
    if (ctx->dist) ctx->dist->allreduce_f64(ctx->dist, failed, 2);
    char rank[32] = "";
    if (ctx->rank) snprintf(rank, sizeof rank, "rank %d: ", ctx->rank);
    if (id && (ctx->rank == 0 || failed[1] == 0)) fprintf(stderr, "rsa: %srun %s: %s\n", rank, id, why);
    if (failed[0] > 0 && ctx->rank == 0) fprintf(stderr, "rsa: no run was started\n");
    return failed[0] > 0 ? -1 : 0;
}

int run_plan(const Ctx *ctx, LuaExp *L, const Experiment *e, Plan *p) {
    if (install_signals() != 0) {
        fprintf(stderr, "rsa: %s\n", rsa_error_message());
        return 1;
    }
    int lock = ctx->rank == 0 ? store_lock(ctx->results, ctx->command) : -1;
    if (ctx->rank == 0 && lock < 0) {
        fprintf(stderr, "rsa: %s\n", rsa_error_message());
        return 1;
    }
    if (ctx->dist) { /* every rank follows rank 0's plan: the others may not see its store (node-local disks) */
        double *done = calloc((size_t)(p->n ? p->n : 1), sizeof *done);
        if (!done) rsa_fatal("free memory", "out of memory");
        for (int i = 0; i < p->n && ctx->rank == 0; i++) done[i] = p->st[i].state == RUN_DONE;
        ctx->dist->allreduce_f64(ctx->dist, done, (size_t)p->n);
        for (int i = 0; i < p->n; i++)
            if ((p->st[i].state == RUN_DONE) != (done[i] != 0)) p->st[i].state = done[i] ? RUN_DONE : RUN_TODO;
        free(done);
    }
    int failed = 0, unsupported = 0, trained = 0, status = 0;
    double left = 0;
    for (int i = 0; i < p->n; i++) left += p->est[i];
    for (int i = 0; i < p->n; i++) {
        const ExpRun *r = &e->runs[p->index[i]];
        left -= p->est[i];
        if (!ctx->dist) { /* another process may have finished it meanwhile (ranks keep the plan they agreed on) */
            run_status_free(&p->st[i]);
            store_status(ctx->results, r->id, &p->st[i]);
        }
        if (p->st[i].state == RUN_DONE) continue;
        run_status_free(&p->st[i]);
        printf("[%d/%d] %s %s (%s)\n", i + 1, p->n, p->st[i].state == RUN_PARTIAL ? "resuming" : "training", r->id,
               r->labels);
        fflush(stdout);
        rsa_error_clear();
        trained++;
        int rc = train_one(ctx, L, e, r, i + 1, p->n, left);
        if (rc == 1) {
            status = 128 + (stop_signal ? stop_signal : SIGINT);
            break;
        }
        if (rc < 0) {
            const char *msg = rsa_error_message();
            bool unsup = strstr(msg, "not implemented yet") != NULL;
            if (unsup) unsupported++;
            else failed++;
            printf("[%d/%d] %s: %s\n", i + 1, p->n, unsup ? "not run (the trainer lacks this method)" : "FAILED", msg);
            fflush(stdout);
            char *dir = run_dir(ctx->results, r->id);
            if (ctx->rank == 0 && dir_exists(dir)) {
                store_mark_failed(ctx->results, r->id, msg);
                store_log(ctx->results, r->id, msg);
            }
            free(dir);
        }
        if (ctx->dist) ctx->dist->barrier(ctx->dist); /* rank 0 has marked the run before anyone reads it */
        store_status(ctx->results, r->id, &p->st[i]);
    }
    if (lock >= 0) store_unlock(lock);
    if (status) return status;
    if (trained == 0) printf("nothing to train: every selected run is done\n");
    if (unsupported) printf("%d runs not run: their methods are not implemented in the trainer yet\n", unsupported);
    if (failed) printf("%d runs FAILED (their messages are in %s/runs/<id>/FAILED)\n", failed, ctx->results);
    return failed ? 1 : 0;
}
