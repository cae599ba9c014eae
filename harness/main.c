/* rsa: the command-line entry point (run, check, list, report, export, help, version). */
#include "harness.h"
#include "provenance.h"

#include "trainer/backend/backend.h"
#include "trainer/core/error.h"
#include "trainer/data/data.h"
#include "trainer/dist/dist.h"
#include "trainer/train/checkpoint.h"
#include "util.h"

#include <libgen.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *USAGE =
    "usage: rsa <command> [options]\n"
    "commands:\n"
    "  run EXPERIMENT.lua    expand, train what is not done (resuming interrupted runs), rebuild the report\n"
    "  check FILE.lua        validate an experiment (every scale) and print its resolved runs; trains nothing\n"
    "  list [EXPERIMENT.lua] the runs in the store, or an experiment's runs with their state\n"
    "  report [EXPERIMENT.lua...]  rebuild reports (default: every experiment run into this results directory)\n"
    "  export RUN --torchvision OUT.safetensors   the run's encoder under torchvision's names\n"
    "  help [config|data]    this text, every key of an experiment file (the schema), or the data sets and\n"
    "                        which are present under the data root (--data DIR)\n"
    "  version               version, backends, libraries and this machine's CPU\n"
    "options (run, check, list, report):\n"
    "  --scale S       paper (default), quick, smoke, or auto (paper when its data sets are present, else quick)\n"
    "  --only PATTERN  only runs whose id, labels, row or column match (a glob, or a substring)\n"
    "  --seeds N       N seeds per cell instead of the experiment's (the paper's)\n"
    "  --data DIR      the data root (default $RSA_DATA, else data/)\n"
    "  --results DIR   the results directory (default $RSA_RESULTS, else results/)\n"
    "  --threads N     compute threads (default: all cores; under mpirun, each rank's share of its node's)\n"
    "  --backend B     cpu, cuda or ref (default: the experiment's, auto = cuda when usable)\n"
    "  --set KEY=VALUE override a run key (a Lua value; changes the run ids)\n"
    "Ctrl-C (or SIGTERM) stops at the next step with a checkpoint; the same command resumes.\n";

typedef struct {
    const char *scale, *only, *data, *results, *backend, *torchvision;
    int seeds, threads;
    const char *sets[64];
    int n_sets;
    const char *files[64];
    int n_files;
} Args;

static bool is_command(const char *s) {
    static const char *const commands[] = {"run", "check", "list", "report", "export", "help", "version"};
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(s, commands[i]) == 0) return true;
    return false;
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "rsa: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(run `rsa help` for the commands and options)\n");
    return 2;
}

static int parse_args(int argc, char **argv, int first, Args *a) {
    memset(a, 0, sizeof *a);
    for (int i = first; i < argc; i++) {
        const char *s = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
#define OPT(name) (strcmp(s, name) == 0)
        if (OPT("--scale")) a->scale = v;
        else if (OPT("--only")) a->only = v;
        else if (OPT("--data")) a->data = v;
        else if (OPT("--results")) a->results = v;
        else if (OPT("--backend")) a->backend = v;
        else if (OPT("--torchvision")) a->torchvision = v;
        else if (OPT("--seeds")) {
            if (v && (a->seeds = atoi(v)) < 1) return usage_error("--seeds needs a positive number, got %s", v);
        } else if (OPT("--threads")) {
            if (v && (a->threads = atoi(v)) < 1) return usage_error("--threads needs a positive number, got %s", v);
        } else if (OPT("--set")) {
            if (a->n_sets == 64) return usage_error("too many --set options%s", "");
            if (v) a->sets[a->n_sets++] = v;
        } else if (s[0] == '-' && s[1]) {
            return usage_error("unknown option %s", s);
        } else {
            takes = false;
            if (a->n_files == 64) return usage_error("too many files%s", "");
            a->files[a->n_files++] = s;
        }
#undef OPT
        if (takes) {
            if (!v) return usage_error("option %s needs a value", s);
            i++;
        }
    }
    return 0;
}

/* The repository: $RSA_HOME, else the parent of the directory holding this binary (bin/rsa), else ".". */
static char *find_home(void) {
    const char *env = getenv("RSA_HOME");
    if (env && env[0]) return xstrdup(env);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        for (int up = 0; up < 3; up++) {
            char *d = dirname(exe);
            memmove(exe, d, strlen(d) + 1);
            char *probe = xasprintf("%s/lua/dsl.lua", exe);
            bool ok = file_exists(probe);
            free(probe);
            if (ok) return xstrdup(exe);
        }
    }
    return xstrdup(".");
}

static char *join_command(int argc, char **argv) {
    Str b = {0};
    for (int i = 0; i < argc; i++) {
        const char *a = i == 0 ? "rsa" : argv[i];
        bool quote = a[0] == 0 || strpbrk(a, " \t'\"*?[]$;&|<>()") != NULL;
        if (i) str_add(&b, " ");
        if (quote) {
            str_add(&b, "'");
            for (const char *p = a; *p; p++) {
                if (*p == '\'') str_add(&b, "'\\''");
                else str_addf(&b, "%c", *p);
            }
            str_add(&b, "'");
        } else {
            str_add(&b, a);
        }
    }
    return b.s;
}

static LuaExp *open_lua(const char *home) {
    char *lua_dir = xasprintf("%s/lua", home), *exp_dir = xasprintf("%s/experiments", home);
    char *err = NULL;
    LuaExp *L = luaexp_new(lua_dir, exp_dir, &err);
    if (!L) {
        fprintf(stderr, "rsa: %s\n", err);
        free(err);
    }
    free(lua_dir), free(exp_dir);
    return L;
}

static int expand(LuaExp *L, const char *file, const Args *a, const char *scale, Experiment *e) {
    ExpandOptions o = {.scale = scale, .seeds = a->seeds, .data_root = a->data, .backend = a->backend,
                       .sets = a->sets, .n_sets = a->n_sets, .world = world_size()};
    if (luaexp_expand(L, file, &o, e) != 0) {
        fprintf(stderr, "rsa: %s is not valid:\n%s\n", file, luaexp_error(L));
        return -1;
    }
    return 0;
}

/* --scale auto: the paper scale when every data set of its runs is present, else quick (announced loudly). */
static const char *pick_scale(LuaExp *L, const char *file, const Args *a) {
    if (!a->scale) return "paper";
    if (strcmp(a->scale, "auto") != 0) return a->scale;
    Experiment e;
    if (expand(L, file, a, "paper", &e) != 0) return NULL;
    Str missing = {0};
    for (int i = 0; i < e.n_runs; i++) {
        const TrainConfig *c = &e.runs[i].cfg;
        if (!dataset_present(c->dataset, config_data_root(c), NULL) && !strstr(str_c(&missing), c->dataset))
            str_addf(&missing, "%s%s", missing.len ? ", " : "", c->dataset);
    }
    experiment_free(&e);
    if (missing.len == 0) {
        printf("scale auto: every data set of %s is present: running the paper's protocol\n", file);
        return "paper";
    }
    printf("\n################################################################################\n"
           "# scale auto -> QUICK: data sets missing under the data root: %s\n"
           "# Running the quick scale on the Fashion-MNIST stand-in instead. Its numbers are NOT\n"
           "# comparable with the paper and the report says so. REPRODUCE.md says where to get\n"
           "# the data sets; with them under data/ the same command runs the paper's protocol.\n"
           "################################################################################\n\n",
           str_c(&missing));
    str_free(&missing);
    return "quick";
}

static Ctx make_ctx(const Args *a, const char *home, char *command) {
    Ctx c = {0};
    c.home = home;
    const char *env = getenv("RSA_RESULTS");
    c.results = a->results ? a->results : env && env[0] ? env : "results";
    c.command = command;
    c.threads = a->threads;
    c.tty = isatty(STDOUT_FILENO);
    c.only = a->only;
    if (a->threads > 0) omp_set_num_threads(a->threads);
    return c;
}

/* A rank given no thread count (--threads, OMP_NUM_THREADS) takes its share of the node's cores (cores_share):
 * OpenMP's own default is every core in its mask, which under `mpirun --bind-to none`, or Open MPI's binding to a
 * socket above 2 processes, gives each rank as many threads as the node or socket has cores. Rank 0 says so when
 * what it may run on is less than that share. */
static void share_compute_threads(const Ctx *ctx) {
    const char *env = getenv("OMP_NUM_THREADS");
    if (ctx->threads > 0 || (env && env[0])) return;
    int usable, online, ranks = ctx->dist->local_size > 0 ? ctx->dist->local_size : 1;
    cores_of_process(&usable, &online);
    int n = cores_share(usable, online, ranks), share = online / ranks;
    omp_set_num_threads(n);
    if (ctx->rank == 0 && usable < share)
        printf("note: rank 0 may run on %d of this node's %d cores (mpirun's binding, or the CPU set it started "
               "in), so it trains with %d compute threads; `mpirun --bind-to none` gives each of the node's %d ranks "
               "its share, %d (or set --threads)\n",
               usable, online, n, ranks, share);
}

static int cmd_run(Ctx *ctx, LuaExp *L, const Args *a) {
    if (a->n_files != 1) return usage_error("run takes one experiment file%s", "");
    const char *file = a->files[0];
    if (world_size() > 1) {
        /* launched by mpirun: every rank trains its share of each run; rank 0 alone locks, writes and prints */
        ctx->dist = dist_init();
        if (ctx->dist->world != world_size()) { /* the run ids and the batch split would claim a world not there */
            fprintf(stderr,
                    "rsa: %s says %d processes, but MPI sees %d: start data-parallel runs with `mpirun -np %d "
                    RSA_PROGRAM " run ...` (inside a SLURM allocation too), or unset %s to train in one process\n",
                    world_size_source(), world_size(), ctx->dist->world, world_size(), world_size_source());
            dist_finalize(ctx->dist);
            return 1;
        }
        world_size_fix(ctx->dist->world);
        /* before anything opens the cuda backend (backend "auto" does, while the experiment expands): each rank's
         * library handles must live on its own GPU */
        backend_cuda_use_device(ctx->dist->local_rank);
        ctx->rank = ctx->dist->rank;
        if (ctx->rank != 0 && !freopen("/dev/null", "w", stdout)) ctx->tty = false;
        ctx->tty = false; /* mpirun hands ranks a pseudo-terminal even when its own output is a file */
        share_compute_threads(ctx);
    }
    const char *scale = pick_scale(L, file, a);
    if (!scale) return 1;
    Experiment e;
    if (expand(L, file, a, scale, &e) != 0) return 1;
    Plan p;
    run_plan_make(ctx, &e, &p);
    run_plan_print(ctx, &e, &p, "estimate");
    if (p.n == 0) {
        printf("no run matches --only %s\n", ctx->only ? ctx->only : "");
        run_plan_free(&p);
        experiment_free(&e);
        if (ctx->dist) dist_finalize(ctx->dist);
        return 1;
    }
    Str sets = {0};
    for (int i = 0; i < a->n_sets; i++) str_addf(&sets, "%s%s", i ? " " : "", a->sets[i]);
    if (ctx->dist && ctx->dist->world > 1) {
        for (int i = 0; i < p.n; i++)
            if (strcmp(e.runs[p.index[i]].cfg.backend, "cuda") == 0) {
                if (dist_attach_gpu(ctx->dist) != 0) {
                    fprintf(stderr, "rsa: rank %d: %s\n", ctx->rank, rsa_error_message());
                    return 1;
                }
                break;
            }
    }
    if (run_plan_check_world(ctx, &e, &p) != 0 || run_plan_check_backends(ctx, &e, &p) != 0) {
        run_plan_free(&p);
        experiment_free(&e);
        if (ctx->dist) dist_finalize(ctx->dist);
        return 1;
    }
    int rc = run_plan(ctx, L, &e, &p);
    if (rc < 128 && ctx->rank == 0) {
        store_record_experiment(ctx->results, file, e.scale, a->seeds, str_c(&sets), world_size());
        if (report_write(ctx, &e) != 0 || report_index(ctx) != 0) fprintf(stderr, "rsa: %s\n", rsa_error_message());
    }
    str_free(&sets);
    run_plan_free(&p);
    experiment_free(&e);
    if (ctx->dist) dist_finalize(ctx->dist);
    return rc;
}

/* Lines of b not in a (for `rsa check`: how run i differs from run 1). */
static void diff_lines(const char *a, const char *b, Str *out) {
    char *copy = xstrdup(b);
    for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char *needle = xasprintf("\n%s\n", l);
        char *hay = xasprintf("\n%s\n", a);
        if (!strstr(hay, needle)) {
            while (*l == ' ') l++;
            str_addf(out, "%s%s", out->len ? " " : "", l);
        }
        free(needle), free(hay);
    }
    free(copy);
}

static int cmd_check(Ctx *ctx, LuaExp *L, const Args *a) {
    if (a->n_files < 1) return usage_error("check takes experiment files%s", "");
    int bad = 0;
    for (int f = 0; f < a->n_files; f++) {
        const char *file = a->files[f];
        const char *scale = a->scale && strcmp(a->scale, "auto") != 0 ? a->scale : "paper";
        Experiment e;
        if (expand(L, file, a, scale, &e) != 0) {
            bad++;
            continue;
        }
        printf("%s: valid. scales: ", file);
        for (int i = 0; i < e.n_scales; i++) printf("%s%s", i ? ", " : "", e.scales[i]);
        printf("\n");
        /* the other scales expand too (their errors count) */
        for (int i = 0; i < e.n_scales; i++) {
            if (strcmp(e.scales[i], scale) == 0) continue;
            Experiment o;
            if (expand(L, file, a, e.scales[i], &o) != 0) {
                bad++;
                continue;
            }
            int cfg_bad = 0;
            for (int r = 0; r < o.n_runs; r++) {
                TrainConfig c = o.runs[r].cfg;
                static const float dummy = 0;
                if (o.runs[r].beta_fn) c.beta_table = &dummy, c.beta_table_len = 1;
                if (o.runs[r].lr_fn) c.lr_table = &dummy, c.lr_table_len = 1;
                cfg_bad += train_config_check(&c) != 0;
            }
            printf("  scale %-6s %3d runs (sweep %s)%s\n", o.scales ? e.scales[i] : "", o.n_runs, o.axes,
                   cfg_bad ? "  << some runs fail the trainer's checks: rsa check --scale to see" : "");
            experiment_free(&o);
        }
        if (e.kind[0]) printf("report: %s%s%s\n", e.kind, e.table[0] ? " of " : "", e.table);
        printf("scale %s: %d runs (sweep %s)\n", e.scale, e.n_runs, e.axes);
        if (strcmp(e.scale, "paper") != 0) printf("  !!! %s\n", scale_banner(e.scale));
        int world = world_size();
        for (int i = 0; i < e.n_runs; i++) {
            const ExpRun *r = &e.runs[i];
            printf("  [%d] %-50s %s\n", i + 1, r->id, r->labels);
            TrainConfig c = r->cfg;
            static const float dummy = 0; /* schedule functions are sampled only before training */
            if (r->beta_fn) c.beta_table = &dummy, c.beta_table_len = 1;
            if (r->lr_fn) c.lr_table = &dummy, c.lr_table_len = 1;
            if (train_config_check(&c) != 0) {
                printf("      INVALID for the trainer: %s\n", rsa_error_message());
                bad++;
            }
            char why[512];
            if (world_split_problem(&r->cfg, world, why, sizeof why)) {
                printf("      INVALID: %s\n", why);
                bad++;
            }
        }
        if (e.n_runs > 0) {
            const ExpRun *r0 = &e.runs[0];
            printf("batch: %d global = %d per GPU at world size %d (from the launcher's environment)\n", r0->cfg.batch,
                   r0->cfg.batch / world, world);
            printf("resolved config of run 1 (%s, hash %s):\n%s\n", r0->id, r0->hash, r0->canonical);
            if (r0->settings[0]) printf("settings (not part of the run id): %s\n", r0->settings);
            if (e.n_runs > 1) printf("how the other runs differ from run 1:\n");
            for (int i = 1; i < e.n_runs; i++) {
                Str d = {0};
                diff_lines(r0->canonical, e.runs[i].canonical, &d);
                printf("  [%d] %s\n", i + 1, d.len ? str_c(&d) : "(identical: the same run)");
                str_free(&d);
            }
        }
        experiment_free(&e);
    }
    (void)ctx;
    return bad ? 1 : 0;
}

static int cmd_list(Ctx *ctx, LuaExp *L, const Args *a) {
    if (a->n_files > 0) {
        for (int f = 0; f < a->n_files; f++) {
            Experiment e;
            const char *scale = a->scale && strcmp(a->scale, "auto") != 0 ? a->scale : "paper";
            if (expand(L, a->files[f], a, scale, &e) != 0) return 1;
            Plan p;
            run_plan_make(ctx, &e, &p);
            run_plan_print(ctx, &e, &p, "left");
            run_plan_free(&p);
            experiment_free(&e);
        }
        return 0;
    }
    char *runs = xasprintf("%s/runs", ctx->results);
    size_t n;
    char **ids = list_dir(runs, NULL, &n);
    if (!ids) {
        printf("no runs in %s yet\n", ctx->results);
        free(runs);
        return 0;
    }
    printf("%-52s %-8s %8s %8s %10s\n", "run", "state", "top-1", "kNN", "training");
    for (size_t i = 0; i < n; i++) {
        if (!only_matches(ctx->only, ids[i])) continue; /* a store's listing knows only the ids */
        RunStatus st;
        store_status(ctx->results, ids[i], &st);
        char t[32] = "-", top[16] = "-", knn[16] = "-";
        if (st.state == RUN_DONE) {
            fmt_duration(st.train_seconds, t, sizeof t);
            snprintf(top, sizeof top, "%.2f", st.linear_top1);
            if (st.knn_top1 >= 0) snprintf(knn, sizeof knn, "%.2f", st.knn_top1);
        }
        printf("%-52s %-8s %8s %8s %10s\n", ids[i], run_state_name(st.state), top, knn, t);
        run_status_free(&st);
    }
    free_strings(ids, n);
    free(runs);
    return 0;
}

/* One line of experiments.tsv, split in place: f[0] file, f[1] scale, f[2] seeds, f[3] overrides (the fields
 * present; the count is returned) and the data-parallel world (1 when the line names none). */
static int split_experiment_line(char *line, char *f[4], int *world) {
    int n = 0;
    *world = 1;
    for (char *save = NULL, *tok = strtok_r(line, "\t", &save); tok; tok = strtok_r(NULL, "\t", &save)) {
        if (strncmp(tok, "world=", 6) == 0) *world = atoi(tok + 6);
        else if (n < 4) f[n++] = tok;
    }
    return n;
}

/* The data-parallel world experiments.tsv recorded for (file, scale), 0 if none; the file by its real path, as
 * rsa run was given it relative to wherever it ran. */
static int recorded_world(const char *results, const char *file, const char *scale) {
    char *path = xasprintf("%s/experiments.tsv", results), *text = slurp(path);
    char want[PATH_MAX], got[PATH_MAX];
    if (!realpath(file, want)) snprintf(want, sizeof want, "%s", file);
    int found = 0;
    for (char *l = text; l && *l && !found;) {
        char *nl = strchr(l, '\n');
        if (nl) *nl = 0;
        char *f[4] = {0};
        int world;
        if (split_experiment_line(l, f, &world) >= 2) {
            if (!realpath(f[0], got)) snprintf(got, sizeof got, "%s", f[0]);
            if (strcmp(got, want) == 0 && strcmp(f[1], scale) == 0) found = world;
        }
        l = nl ? nl + 1 : NULL;
    }
    free(text), free(path);
    return found;
}

static int cmd_report(Ctx *ctx, LuaExp *L, const Args *a) {
    int bad = 0;
    if (a->n_files > 0) {
        for (int f = 0; f < a->n_files; f++) {
            Experiment e;
            const char *scale = a->scale && strcmp(a->scale, "auto") != 0 ? a->scale : "paper";
            int world = recorded_world(ctx->results, a->files[f], scale);
            if (world > 0) world_size_fix(world); /* the world its runs were trained in is part of their ids */
            if (expand(L, a->files[f], a, scale, &e) != 0) {
                bad++;
                continue;
            }
            bad += report_write(ctx, &e) != 0;
            experiment_free(&e);
        }
    } else {
        char *path = xasprintf("%s/experiments.tsv", ctx->results);
        char *text = slurp(path);
        free(path);
        if (!text) {
            printf("nothing run into %s yet (rsa run EXPERIMENT.lua, or make reproduce-table1)\n", ctx->results);
            return 0;
        }
        for (char *line = text; line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = 0;
            char *f[4] = {0};
            int world, n = split_experiment_line(line, f, &world);
            world_size_fix(world > 1 ? world : 1); /* the runs' ids hold the world they were trained in */
            if (n >= 2) {
                Args b = *a;
                b.seeds = n >= 3 ? atoi(f[2]) : 0;
                b.n_sets = 0;
                char *sets_copy = n >= 4 ? xstrdup(f[3]) : NULL;
                for (char *save = NULL, *tok = sets_copy ? strtok_r(sets_copy, " ", &save) : NULL; tok && b.n_sets < 64;
                     tok = strtok_r(NULL, " ", &save))
                    b.sets[b.n_sets++] = tok;
                Experiment e;
                if (expand(L, f[0], &b, f[1], &e) == 0) {
                    bad += report_write(ctx, &e) != 0;
                    experiment_free(&e);
                } else {
                    bad++;
                }
                free(sets_copy);
            }
            line = nl ? nl + 1 : NULL;
        }
        free(text);
    }
    if (report_index(ctx) != 0) {
        fprintf(stderr, "rsa: %s\n", rsa_error_message());
        bad++;
    }
    return bad ? 1 : 0;
}

static int cmd_export(Ctx *ctx, const Args *a) {
    if (a->n_files != 1 || !a->torchvision) return usage_error("usage: rsa export RUN --torchvision OUT.safetensors%s", "");
    const char *run = a->files[0];
    char *ckpt = NULL;
    char *direct = xasprintf("%s/checkpoint.safetensors", run);
    if (file_exists(direct)) {
        ckpt = direct;
    } else {
        free(direct);
        /* a run id or a unique prefix of one */
        char *runs = xasprintf("%s/runs", ctx->results);
        size_t n, found = 0;
        char **ids = list_dir(runs, NULL, &n);
        for (size_t i = 0; i < n; i++) {
            if (strncmp(ids[i], run, strlen(run)) != 0) continue;
            found++;
            free(ckpt);
            ckpt = xasprintf("%s/%s/checkpoint.safetensors", runs, ids[i]);
        }
        free_strings(ids, n);
        free(runs);
        if (found != 1) {
            fprintf(stderr, "rsa: %s run matches %s in %s/runs (give a run id, a unique prefix or a run directory)\n",
                    found ? "more than one" : "no", run, ctx->results);
            free(ckpt);
            return 1;
        }
    }
    if (!file_exists(ckpt)) { /* a committed store (results/quick) keeps each run's metrics and provenance only */
        fprintf(stderr, "rsa: %s is not there: this store kept no weights for the run (committed stores leave "
                "them out). Retrain it into another store, as harness/tools/verify_results.sh does, or with "
                "`rsa run EXPERIMENT.lua --scale S --only RUN --results DIR`, then export from there\n", ckpt);
        free(ckpt);
        return 1;
    }
    if (checkpoint_export_torchvision(ckpt, a->torchvision) != 0) {
        fprintf(stderr, "rsa: %s\n", rsa_error_message());
        free(ckpt);
        return 1;
    }
    printf("wrote %s (the online encoder of %s under torchvision's names; load with strict=False: no fc)\n",
           a->torchvision, ckpt);
    free(ckpt);
    return 0;
}

int main(int argc, char **argv) {
    /* OpenMP threads that spin while waiting make every step many times slower when another process shares the
     * cores (measured: a smoke run 2 s with passive waiting, 3-24 s spinning, on 2 shared cores). libgomp reads its
     * settings when it loads, so set the default and start again; an explicit OMP_WAIT_POLICY is kept. */
    if (!getenv("OMP_WAIT_POLICY") && setenv("OMP_WAIT_POLICY", "passive", 1) == 0) {
        execv("/proc/self/exe", argv);
        /* could not re-execute: go on with the spinning default */
    }
    if (argc < 2) {
        fputs(USAGE, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        if (argc > 2 && strcmp(argv[2], "config") == 0) {
            if (argc > 3) return usage_error("rsa help config takes nothing more, not '%s'", argv[3]);
            char *home = find_home();
            LuaExp *L = open_lua(home);
            free(home);
            if (!L) return 1;
            char *h = luaexp_help(L);
            printf("%s\n", h);
            free(h);
            luaexp_free(L);
            return 0;
        }
        if (argc > 2 && strcmp(argv[2], "data") == 0) {
            Args a;
            if (parse_args(argc, argv, 3, &a) != 0) return 2;
            if (a.n_files > 0)
                return usage_error("rsa help data takes no file, not '%s' (the data root is --data DIR)", a.files[0]);
            const char *root = a.data ? a.data : config_data_root(NULL);
            int n;
            const DataSource *src = dataset_sources(&n);
            printf("Data sets, under the data root %s (--data DIR, else $RSA_DATA, else data/):\n", root);
            for (int i = 0; i < n; i++)
                printf("\n%s\n  files:    %s\n  source:   %s\n  archive:  %s\n  checksum: %s\n  present:  %s\n",
                       src[i].name, src[i].files, src[i].url, src[i].archive, src[i].checksum,
                       dataset_present(src[i].name, root, NULL) ? "yes" : "no");
            return 0;
        }
        /* `rsa help run` and the like: the commands' list is their help */
        if (argc > 2 && !is_command(argv[2]))
            return usage_error("no help on '%s': `rsa help` gives the commands, `rsa help config` the keys of an "
                               "experiment file, `rsa help data` the data sets", argv[2]);
        fputs(USAGE, stdout);
        return 0;
    }
    /* before the options, which an unknown command's would be reported as */
    if (!is_command(cmd)) return usage_error("unknown command \"%s\"", cmd);
    if (strcmp(cmd, "version") == 0) {
        char *libs = library_versions(), *machine = machine_text(), *gpu = gpu_text();
        /* the machine in provenance's words: verify_results.sh compares it with the runs it reruns */
        printf("rsa-repro 0.1\nbackends: ref cpu%s\nlibraries: %s\n%s%s", gpu[0] ? " cuda" : "", libs, machine, gpu);
        free(libs), free(machine), free(gpu);
        return 0;
    }
    Args a;
    int rc = parse_args(argc, argv, 2, &a);
    if (rc) return rc;
    char *home = find_home();
    char *command = join_command(argc, argv);
    Ctx ctx = make_ctx(&a, home, command);
    Str sets_text = {0};
    for (int i = 0; i < a.n_sets; i++) str_addf(&sets_text, "%s%s", i ? " " : "", a.sets[i]);
    ctx.overrides = str_c(&sets_text);
    if (strcmp(cmd, "export") == 0) {
        rc = cmd_export(&ctx, &a);
    } else {
        LuaExp *L = open_lua(home);
        if (!L) {
            rc = 1;
        } else {
            if (strcmp(cmd, "run") == 0) rc = cmd_run(&ctx, L, &a);
            else if (strcmp(cmd, "check") == 0) rc = cmd_check(&ctx, L, &a);
            else if (strcmp(cmd, "list") == 0) rc = cmd_list(&ctx, L, &a);
            else if (strcmp(cmd, "report") == 0) rc = cmd_report(&ctx, L, &a);
            else RSA_ASSERT(!"a command is_command knows and main does not run");
            luaexp_free(L);
        }
    }
    str_free(&sets_text);
    free(command);
    free(home);
    return rc;
}
