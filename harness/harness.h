/* The harness: what `rsa` does with an expanded experiment. main.c parses the command line; plan.c estimates and
 * prints the plan; runner.c trains the runs (skip DONE, resume, lock, signals, progress, provenance); report.c
 * joins the runs with the paper's numbers and writes the reports; plot.c writes gnuplot scripts beside their data;
 * coco.c drives detectron2 for Tables 5 and 6. */
#ifndef RSA_HARNESS_H
#define RSA_HARNESS_H

#include "lua/lua_exp.h"
#include "store.h"

#include <stdbool.h>

/* How a user reruns this build, for the hints the harness prints: its program (the Makefile's RSA_BIN: bin/rsa,
 * build/cuda/rsa) and the make variables that chose it ("", "CUDA=1"), so that a GPU build's hints do not start the
 * cpu build. */
#ifndef RSA_PROGRAM
#define RSA_PROGRAM "bin/rsa"
#endif
#ifndef RSA_MAKE_VARIANT
#define RSA_MAKE_VARIANT ""
#endif

typedef struct {
    const char *home;    /* the repository: lua/, experiments/, harness/tools/ */
    const char *results; /* results directory */
    char *command;       /* the command line, for logs and resume hints */
    int threads;         /* compute threads (0: OpenMP's default) */
    bool tty;            /* stdout is a terminal: live progress lines */
    const char *only;    /* --only pattern, or NULL */
    const char *overrides; /* the --set options, recorded in each run's run.lua */
    struct Dist *dist;   /* data parallel (mpirun -np N): every rank trains, rank 0 alone writes and prints */
    int rank;
} Ctx;

/* plan.c */
typedef struct {
    int n;          /* distinct runs selected */
    int *index;     /* indices into e->runs */
    RunStatus *st;  /* their status */
    double *est;    /* estimated seconds left per run */
} Plan;
/* --only's test: a glob when the pattern has *, ? or [, else a substring; an empty or absent pattern matches all. */
bool only_matches(const char *pattern, const char *s);
/* Selects the runs of e (--only on the id, labels, row or column; duplicates removed) and reads their status. */
void run_plan_make(const Ctx *ctx, const Experiment *e, Plan *p);
void run_plan_free(Plan *p);
/* Rough seconds for one run (pretraining + kNN monitors + linear evaluation) on this machine, from the speed of
 * runs done before (results/.cache/speed.tsv) or a MAC count. */
double estimate_run_seconds(const Ctx *ctx, const TrainConfig *c, int epochs_done);
/* Records the speed of a finished run for later estimates. */
void record_speed(const Ctx *ctx, const TrainConfig *c, double train_seconds, double wall_seconds);
void run_plan_print(const Ctx *ctx, const Experiment *e, const Plan *p, const char *verb);
/* The banner printed before a reduced-scale run and in its report. */
const char *scale_banner(const char *scale);
/* Data-parallel processes: what world_size_fix set (rsa run: MPI's count; rsa report: the count the runs were trained
 * with), else the launcher's environment (OMPI_COMM_WORLD_SIZE, PMI_SIZE, SLURM_STEP_NUM_TASKS, WORLD_SIZE), else 1. */
int world_size(void);
void world_size_fix(int world);
const char *world_size_source(void); /* the variable world_size reads, NULL if none */
/* Whether run config c cannot be split over `world` processes, and why in `why`: the global batch must divide
 * evenly, and a BN group (bn_group) must fit whole into each process's share. */
bool world_split_problem(const TrainConfig *c, int world, char *why, size_t n);

/* runner.c: opens the backend of every run the plan has left to train, so that a missing GPU stops everything before
 * any run directory is made (every rank agrees); -1 after printing why. */
int run_plan_check_backends(const Ctx *ctx, const Experiment *e, const Plan *p);
/* runner.c: stops before any run when a run the plan has left cannot be split over this world size (the trainer
 * would refuse each in turn); -1 after printing which run and why. */
int run_plan_check_world(const Ctx *ctx, const Experiment *e, const Plan *p);
/* runner.c: trains the plan's runs. Returns 0 (all done, or only unsupported methods left), 1 (failures),
 * 130 (interrupted). */
int run_plan(const Ctx *ctx, LuaExp *L, const Experiment *e, Plan *p);

/* report.c: writes results/<name>[-<scale>].{md,csv,tex} and its plots, then results/REPORT.md. */
int report_write(const Ctx *ctx, const Experiment *e);
int report_index(const Ctx *ctx);
/* The report's base name: "table1" at the paper scale, else "table1-quick". */
void report_base(const Experiment *e, char *out, size_t n);

/* plot.c */
bool plot_available(void);
/* Renders dir/name.gp (which writes name.png and name.svg) with gnuplot. 0, or -1 (gnuplot missing or failed). */
int plot_render(const char *dir, const char *name);
/* Writes and renders schedules.gp in a run directory (beta, tau, lr per step from steps.tsv). */
int plot_run_schedules(const char *run_dir, const char *title);

/* coco.c: Tables 5 and 6. Writes the detectron2 files for the backbone run under dir; fills *metrics_text with
 * detectron2's final metrics when present (malloc'd "bbox/AP = 41.1\n..."), else NULL. */
int coco_prepare(const Ctx *ctx, const Experiment *e, const ExpRun *backbone, const RunStatus *st, const char *dir,
                 char **metrics_text, char **status_line);

#endif
