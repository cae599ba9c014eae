/* The Lua embedding: loads lua/dsl.lua, expands an experiment file into resolved runs (each with its canonical
 * text, hash, run id, labels and TrainConfig), samples schedule functions, and prints the schema. This and
 * lua/toconfig.c are the only C files that include Lua headers; harness/ sees plain structs. */
#ifndef RSA_LUA_EXP_H
#define RSA_LUA_EXP_H

#include "trainer/train/config.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    char *id;           /* <dataset>-<method>-<views>-e<epochs>-s<seed>-<first 10 hex digits of the hash> */
    char hash[65];      /* SHA-256 of canonical */
    char *canonical;    /* the resolved identity keys, sorted, Lua syntax (what the hash covers) */
    char *settings;     /* the keys that are not part of the identity (data_root, loader_threads, ...) */
    char *labels;       /* "arm=BYOL-AA dataset=cifar10 seed=0" */
    char *row, *col;    /* the report cell */
    bool comparable;    /* run at the paper scale: its cell may be compared with the paper */
    int index;          /* 1-based index in the expansion (luaexp_sample) */
    int seed;
    bool beta_fn, lr_fn; /* schedules given as functions: sample them before training */
    TrainConfig cfg;    /* without the sampled tables */
} ExpRun;

typedef struct {
    char *label, *method, *variant;
} ExpRow;
typedef struct {
    char *label, *dataset;
    int epochs;
    bool standin; /* a reduced-scale column (no paper number belongs there) */
} ExpCol;
typedef struct {
    char *row, *col, *table, *method, *variant, *dataset;
    int epochs;
} ExpCell;

typedef struct {
    char *name, *title, *notes, *scale, *scale_notes, *file;
    char *kind, *table, *metric, *rows_axis, *coco, *x; /* report spec */
    bool has_paper;                                        /* the paper reports numbers for it (lua/dsl.lua) */
    char *best;                                            /* beta_curve: "col=value;..." */
    char *axes;                                            /* "dataset(5) arm(4) seed(3)" */
    char **scales;                                         /* scales this file defines (paper first) */
    int n_scales;
    ExpRun *runs;
    int n_runs;
    ExpRow *rows;
    int n_rows;
    ExpCol *cols;
    int n_cols;
    ExpCell *cells;
    int n_cells;
} Experiment;

typedef struct {
    const char *scale;          /* NULL: paper */
    int seeds;                  /* 0: the experiment's */
    const char *data_root;      /* NULL: the experiment's */
    int loader_threads;         /* 0: the experiment's */
    const char *backend;        /* NULL: the experiment's */
    const char *const *sets;    /* "key=value" overrides */
    int n_sets;
    int world;                  /* data-parallel processes; > 1 becomes part of every run's identity */
} ExpandOptions;

typedef struct LuaExp LuaExp;

/* lua_dir holds dsl.lua and schema.lua; experiments_dir is where bare file names are also looked for. NULL with the
 * reason in *err (malloc'd). */
LuaExp *luaexp_new(const char *lua_dir, const char *experiments_dir, char **err);
void luaexp_free(LuaExp *L);
/* Budgets of every call into an experiment (defaults: 2e9 Lua instructions, about a minute; 2 GiB of Lua memory):
 * past either the call fails with a message (file:line for the instruction budget) instead of hanging. */
void luaexp_set_limits(LuaExp *L, long long max_instructions, size_t max_bytes);
/* The last error (validation messages, one a line). */
const char *luaexp_error(const LuaExp *L);

/* 0, or -1 with luaexp_error. Forgets files loaded before, so an edited file is read again. */
int luaexp_expand(LuaExp *L, const char *path, const ExpandOptions *opt, Experiment *out);
void experiment_free(Experiment *e);

/* Samples a schedule function of run `index` of the last expansion: key "beta_schedule" or "lr_schedule", K steps.
 * *out is malloc'd (K floats). */
int luaexp_sample(LuaExp *L, int index, const char *key, int64_t K, int64_t steps_per_epoch, double base_lr,
                  float **out);

/* The text of `rsa help config` (malloc'd). */
char *luaexp_help(LuaExp *L);
/* Canonical number formatting (shortest round trip), as the serialisation writes it. */
const char *luaexp_lua_release(void);

/* lua/toconfig.c: the resolved run table on top of the Lua stack -> TrainConfig. -1 with a message in err. */
struct lua_State;
int toconfig(struct lua_State *S, TrainConfig *c, bool *beta_fn, bool *lr_fn, char *err, size_t err_size);

#endif
