/* The run store: results/runs/<run-id>/ holds one run.
 *   config.lua        the resolved identity config, canonical (sorted keys, Lua syntax); config.sha256 its hash
 *   run.lua           what is not identity: settings (data_root, threads, ...), labels per experiment, overrides
 *   provenance.txt    versions, commit, hardware, dataset checksums (one section per session)
 *   schedule.tsv      sampled schedule functions (step beta lr), when the config gives functions
 *   steps.tsv epochs.tsv checkpoint.safetensors linear.tsv result.txt   the trainer's files
 *   log.txt           the harness's progress lines
 *   wall.txt          wall time of every session (training and evaluation)
 *   FAILED            the last failure's message (removed when the run is retried)
 *   DONE              written last, atomically: the run is complete and never trained again
 * results/.lock guards a results directory against two `rsa run` at once. */
#ifndef RSA_STORE_H
#define RSA_STORE_H

#include "lua/lua_exp.h"

#include <stdbool.h>

typedef enum { RUN_TODO, RUN_PARTIAL, RUN_DONE, RUN_FAILED } RunState;

typedef struct {
    RunState state;
    char *message;      /* FAILED: the message */
    bool unsupported;   /* FAILED because the trainer does not implement the method yet */
    bool has_result;
    double linear_top1, linear_top5, linear_best_top1, knn_top1, train_seconds, wall_seconds;
    int epochs_done;    /* rows of epochs.tsv */
} RunStatus;

char *run_dir(const char *results, const char *id);
/* Reads the state of a run directory (a missing directory is RUN_TODO). */
void store_status(const char *results, const char *id, RunStatus *st);
void run_status_free(RunStatus *st);
const char *run_state_name(RunState s);

/* Creates the run directory and writes config.lua, config.sha256 and run.lua (refusing a directory whose
 * config.sha256 differs: a hash collision or a hand-edited store). 0, or -1 with rsa_fail. */
int store_prepare(const char *results, const ExpRun *r, const Experiment *e, const char *command,
                  const char *overrides);
int store_mark_done(const char *results, const char *id, double wall_seconds);
int store_mark_failed(const char *results, const char *id, const char *message);
int store_clear_failed(const char *results, const char *id);
int store_add_wall(const char *results, const char *id, double seconds, const char *what);
/* Appends a line to the run's log.txt. */
void store_log(const char *results, const char *id, const char *line);

/* Takes results/.lock (creating results/). Returns the held descriptor, or -1 with rsa_fail naming the holder. */
int store_lock(const char *results, const char *command);
void store_unlock(int fd);

/* Records that an experiment was run into results/experiments.tsv (file, scale, seeds, overrides, and the
 * data-parallel world when above 1) so that
 * `rsa report` can rebuild every report. */
int store_record_experiment(const char *results, const char *file, const char *scale, int seeds, const char *sets,
                            int world);

#endif
