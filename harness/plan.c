#include "harness.h"

#include "trainer/core/fileio.h"
#include "trainer/dist/dist.h"
#include "trainer/nn/nets.h"
#include "trainer/train/trainer.h"
#include "util.h"

#include <fnmatch.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Variables a launcher sets in each process it starts. Not SLURM_NTASKS: a batch script has it too, run as one
 * process. */
static const char *const WORLD_VARS[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS", "WORLD_SIZE"};
static int world_fixed;

const char *world_size_source(void) {
    for (size_t i = 0; i < sizeof WORLD_VARS / sizeof WORLD_VARS[0]; i++) {
        const char *v = getenv(WORLD_VARS[i]);
        if (v && atoi(v) > 0) return WORLD_VARS[i];
    }
    return NULL;
}

int world_size(void) {
    if (world_fixed > 0) return world_fixed;
    const char *var = world_size_source();
    return var ? atoi(getenv(var)) : 1;
}

void world_size_fix(int world) { world_fixed = world; }

bool world_split_problem(const TrainConfig *c, int world, char *why, size_t n) {
    if (c->batch % world != 0) {
        snprintf(why, n, "batch %d is not divisible by the world size %d (launch a number of processes that divides "
                 "it, or --set batch=N)", c->batch, world);
        return true;
    }
    if (c->bn_group > 0 && (c->batch / world) % c->bn_group != 0) {
        int most = c->batch / c->bn_group;
        snprintf(why, n, "bn_group %d does not divide the %d images per GPU at world size %d (run on at most %d "
                 "process%s, or --set bn_group=N with N dividing %d)", c->bn_group, c->batch / world, world, most,
                 most == 1 ? "" : "es", c->batch / world);
        return true;
    }
    return false;
}

const char *scale_banner(const char *scale) {
    if (strcmp(scale, "paper") == 0) return "";
    if (strcmp(scale, "quick") == 0)
        return "REDUCED SCALE \"quick\": the Fashion-MNIST stand-in, a small ResNet, subsets and short schedules. "
               "These numbers are NOT comparable with the paper's; the report labels them and never puts a paper "
               "number in an \"ours\" cell.";
    if (strcmp(scale, "smoke") == 0)
        return "REDUCED SCALE \"smoke\": a few steps on a tiny subset, to test the pipeline. The numbers mean "
               "nothing and are NOT comparable with the paper.";
    return "REDUCED SCALE: NOT comparable with the paper.";
}

bool only_matches(const char *pattern, const char *s) {
    if (!pattern || !pattern[0]) return true;
    return strpbrk(pattern, "*?[") ? fnmatch(pattern, s, 0) == 0 : strstr(s, pattern) != NULL;
}

static bool selected(const char *pattern, const ExpRun *r) {
    const char *fields[] = {r->id, r->labels, r->row, r->col};
    for (size_t i = 0; i < 4; i++)
        if (only_matches(pattern, fields[i])) return true;
    return false;
}

void run_plan_make(const Ctx *ctx, const Experiment *e, Plan *p) {
    memset(p, 0, sizeof *p);
    p->index = xcalloc((size_t)e->n_runs, sizeof(int));
    p->st = xcalloc((size_t)e->n_runs, sizeof(RunStatus));
    p->est = xcalloc((size_t)e->n_runs, sizeof(double));
    for (int i = 0; i < e->n_runs; i++) {
        const ExpRun *r = &e->runs[i];
        if (!selected(ctx->only, r)) continue;
        bool dup = false;
        for (int j = 0; j < p->n; j++) dup |= strcmp(e->runs[p->index[j]].id, r->id) == 0;
        if (dup) continue;
        int k = p->n++;
        p->index[k] = i;
        store_status(ctx->results, r->id, &p->st[k]);
        p->est[k] = p->st[k].state == RUN_DONE ? 0 : estimate_run_seconds(ctx, &r->cfg, p->st[k].epochs_done);
    }
}

void run_plan_free(Plan *p) {
    for (int i = 0; i < p->n; i++) run_status_free(&p->st[i]);
    free(p->index), free(p->st), free(p->est);
    memset(p, 0, sizeof *p);
}

/* ---- estimates ---- */

typedef struct {
    int64_t train, labelled, test;
} Counts;

static Counts nominal_counts(const char *dataset) {
    if (strcmp(dataset, "cifar10") == 0 || strcmp(dataset, "cifar100") == 0) return (Counts){50000, 50000, 10000};
    if (strcmp(dataset, "stl10") == 0) return (Counts){105000, 5000, 8000};
    if (strcmp(dataset, "tinyimagenet") == 0) return (Counts){100000, 100000, 10000};
    if (strcmp(dataset, "imagenet100") == 0) return (Counts){126689, 126689, 5000};
    if (strcmp(dataset, "imagenet") == 0) return (Counts){1281167, 1281167, 50000};
    return (Counts){60000, 60000, 10000}; /* fashionmnist */
}

/* Multiply-accumulates of one forward pass of the encoder on one image. */
static double encoder_macs(const ResNetSpec *s, int size) {
    double h = size, macs = 0;
    int w = s->width, c_in;
    if (s->stem == STEM_IMAGENET) {
        h = (h + 1) / 2;
        macs += 49.0 * 3 * w * h * h;
        h = (h + 1) / 2;
    } else {
        macs += 9.0 * 3 * w * h * h;
    }
    c_in = w;
    for (int stage = 0; stage < 4 && s->layers[stage] > 0; stage++) {
        int c = w << stage;
        for (int b = 0; b < s->layers[stage]; b++) {
            int stride = (stage > 0 && b == 0) ? 2 : 1;
            double ho = stride == 2 ? (h + 1) / 2 : h;
            if (s->block == BLOCK_BASIC) {
                macs += 9.0 * c_in * c * ho * ho + 9.0 * c * c * ho * ho;
                if (stride != 1 || c_in != c) macs += (double)c_in * c * ho * ho;
                c_in = c;
            } else {
                macs += (double)c_in * c * h * h + 9.0 * c * c * ho * ho + (double)c * 4 * c * ho * ho;
                if (stride != 1 || c_in != 4 * c) macs += (double)c_in * 4 * c * ho * ho;
                c_in = 4 * c;
            }
            h = ho;
        }
    }
    return macs;
}

static char *speed_key(const TrainConfig *c) {
    return xasprintf("%s-%d%d%d%d-w%d-%s-%dpx-%s", c->backbone.block == BLOCK_BASIC ? "basic" : "bottleneck",
                     c->backbone.layers[0], c->backbone.layers[1], c->backbone.layers[2], c->backbone.layers[3],
                     c->backbone.width, c->backbone.stem == STEM_CIFAR ? "cifar" : "imagenet", c->image_size,
                     c->backend);
}

/* Encoder MACs per second measured before on this results directory for this network and backend, or a guess. */
static double macs_per_second(const Ctx *ctx, const TrainConfig *c) {
    char *path = xasprintf("%s/.cache/speed.tsv", ctx->results);
    char *text = slurp(path);
    char *key = speed_key(c);
    double rate = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (strncmp(line, key, strlen(key)) == 0 && line[strlen(key)] == '\t') rate = atof(line + strlen(key) + 1);
        line = nl ? nl + 1 : NULL;
    }
    free(text), free(key), free(path);
    if (rate > 0) return rate;
    /* a guess before any run: about 2e10 encoder MACs/s of training throughput per core with oneDNN (measured on
       the quick scale's network on a 2-core x86 machine), 1e12 on a GPU */
    double cores = omp_get_max_threads();
    return strcmp(c->backend, "cuda") == 0 ? 1e12 : 2e10 * cores;
}

/* Encoder-forward equivalents per image and step: two online forward+backward passes (x3) and two target
 * forwards for BYOL and RSA alike. */
static const double TRAIN_UNITS = 8;

double estimate_run_seconds(const Ctx *ctx, const TrainConfig *c, int epochs_done) {
    Counts n = nominal_counts(c->dataset);
    int64_t train = c->subset > 0 && c->subset < n.train ? c->subset : n.train;
    int64_t eval = c->eval_subset > 0 && c->eval_subset < n.labelled ? c->eval_subset : n.labelled;
    int world = world_size();
    int64_t spe = train / world / (c->batch / world > 0 ? c->batch / world : 1);
    double macs = encoder_macs(&c->backbone, c->image_size);
    int epochs_left = c->epochs - epochs_done > 0 ? c->epochs - epochs_done : 0;
    double units = (double)epochs_left * (double)spe * c->batch * TRAIN_UNITS;
    int monitors = c->knn_every > 0 ? epochs_left / c->knn_every + (epochs_left % c->knn_every ? 1 : 0) : 0;
    units += (double)monitors * (double)(eval + n.test);
    units += (double)c->linear_epochs * (double)eval + (double)n.test * (c->linear_best_epoch ? c->linear_epochs : 1);
    return units * macs / macs_per_second(ctx, c) + 3.0; /* + opening the data */
}

void record_speed(const Ctx *ctx, const TrainConfig *c, double train_seconds, double wall_seconds) {
    (void)wall_seconds;
    if (train_seconds <= 1 || c->epochs < 1) return;
    Counts n = nominal_counts(c->dataset);
    int64_t train = c->subset > 0 && c->subset < n.train ? c->subset : n.train;
    int64_t spe = train / (c->batch > 0 ? c->batch : 1);
    double rate = (double)c->epochs * spe * c->batch * TRAIN_UNITS * encoder_macs(&c->backbone, c->image_size) /
                  train_seconds;
    char *dir = xasprintf("%s/.cache", ctx->results);
    char *path = xasprintf("%s/speed.tsv", dir);
    char *old = slurp(path);
    char *key = speed_key(c);
    Str b = {0};
    for (char *line = old; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line + 1) : strlen(line);
        if (!(strncmp(line, key, strlen(key)) == 0 && line[strlen(key)] == '\t')) {
            char *copy = xcalloc(len + 1, 1);
            memcpy(copy, line, len);
            str_add(&b, copy);
            free(copy);
        }
        line = nl ? nl + 1 : NULL;
    }
    str_addf(&b, "%s\t%.4g\n", key, rate);
    if (make_dirs(dir) == 0) atomic_write_text(path, str_c(&b)); /* a cache: failure only spoils estimates */
    str_free(&b);
    free(key), free(old), free(path), free(dir);
}

void run_plan_print(const Ctx *ctx, const Experiment *e, const Plan *p, const char *verb) {
    int done = 0, partial = 0, failed = 0, todo = 0;
    double total = 0;
    for (int i = 0; i < p->n; i++) {
        switch (p->st[i].state) {
        case RUN_DONE: done++; break;
        case RUN_PARTIAL: partial++; break;
        case RUN_FAILED: failed++; break;
        case RUN_TODO: todo++; break;
        }
        total += p->est[i];
    }
    printf("== %s (%s), scale %s\n", e->name, e->file, e->scale);
    if (e->title[0]) printf("   %s\n", e->title);
    if (strcmp(e->scale, "paper") != 0) {
        printf("\n   !!! %s\n", scale_banner(e->scale));
        if (e->scale_notes[0]) printf("   !!! %s\n", e->scale_notes);
        printf("\n");
    }
    int world = world_size();
    printf("plan: %d runs (%d done, %d to resume, %d failed before, %d new); sweep %s; %d of %d selected%s%s\n", p->n,
           done, partial, failed, todo, e->axes, p->n, e->n_runs, ctx->only ? " by --only " : "",
           ctx->only ? ctx->only : "");
    if (p->n > 0) {
        const TrainConfig *c = &e->runs[p->index[0]].cfg;
        int loaders = train_loader_threads(c, ctx->dist ? ctx->dist->local_size : 1);
        printf("      batch %d global = %d per GPU at world size %d%s; backend %s; %d compute threads; %d loader "
               "threads%s\n",
               c->batch, c->batch / world, world, c->batch % world ? " (NOT divisible: fix batch or the launcher)" : "",
               c->backend, omp_get_max_threads(), loaders, c->loader_threads == LOADER_THREADS_AUTO ? " (auto)" : "");
    }
    for (int i = 0; i < p->n; i++) {
        const ExpRun *r = &e->runs[p->index[i]];
        char est[32] = "";
        if (p->st[i].state != RUN_DONE) fmt_duration(p->est[i], est, sizeof est);
        const char *state = p->st[i].state == RUN_PARTIAL ? "resume" : p->st[i].state == RUN_FAILED ? "retry"
                            : p->st[i].state == RUN_DONE  ? "done"
                                                          : "todo";
        printf("  [%d/%d] %-6s %-48s %-22s %s%s\n", i + 1, p->n, state, r->id, est[0] ? est : "-", r->labels,
               p->st[i].state == RUN_PARTIAL ? "" : "");
    }
    char t[32];
    fmt_duration(total, t, sizeof t);
    printf("%s: about %s of compute left (a rough estimate from measured speeds, or a MAC count before any run)\n",
           verb, t);
    fflush(stdout);
}
