/* The one place that knows both the schema's run keys (lua/schema.lua) and the trainer's TrainConfig
 * (trainer/train/config.h): a validated, resolved run table -> TrainConfig. Every run key must be consumed here and
 * every key read must exist, so the two cannot drift apart silently (tests/lua/test_lua.c checks both ways). */
#include "lua_exp.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <string.h>

enum { T_STR, T_INT, T_NUM, T_BOOL, T_ENUM, T_SCHED, T_STRUCT, T_LIST, T_INT_OR_AUTO };

typedef struct {
    const char *key;
    int type;
} KeyDef;

/* Every run key of lua/schema.lua, and how it is read. */
static const KeyDef KEYS[] = {
    {"dataset", T_STR},       {"data_root", T_STR},         {"subset", T_INT},
    {"eval_subset", T_INT},   {"image_size", T_INT},        {"loader_threads", T_INT_OR_AUTO},
    {"backbone", T_STRUCT},   {"proj_hidden", T_INT},       {"proj_out", T_INT},        {"pred_hidden", T_INT},
    {"method", T_ENUM},       {"views", T_ENUM},            {"beta_base", T_NUM},
    {"beta_schedule", T_SCHED}, {"tau_base", T_NUM},        {"temperature", T_NUM},
    {"queue_size", T_INT},    {"epochs", T_INT},            {"batch", T_INT},
    {"optimizer", T_ENUM},    {"lr", T_NUM},                {"lr_scaling", T_ENUM},
    {"lr_schedule", T_SCHED}, {"warmup_epochs", T_INT},     {"weight_decay", T_NUM},
    {"momentum", T_NUM},      {"lars_trust", T_NUM},        {"decay_1d", T_BOOL},       {"sync_bn", T_BOOL},
    {"linear", T_ENUM},       {"linear_epochs", T_INT},     {"linear_batch", T_INT},
    {"linear_lr", T_NUM},     {"linear_milestones", T_LIST}, {"linear_bn_train", T_BOOL},
    {"linear_best_epoch", T_BOOL}, {"knn_every", T_INT},    {"knn_k", T_INT},
    {"knn_t", T_NUM},         {"seed", T_INT},              {"backend", T_STR},
    {"checkpoint_every", T_INT}, {"precision", T_ENUM},     {"deterministic", T_BOOL},
    {"low_memory", T_BOOL},   {"lowp_convolutions", T_BOOL}, {"saved_16bit", T_BOOL},
    {"lowp_weight_grads", T_BOOL}, {"stem_init", T_ENUM},    {"bn_group", T_INT},
};
enum { N_KEYS = sizeof KEYS / sizeof KEYS[0] };

static int bad(char *err, size_t n, const char *fmt, const char *a, const char *b) {
    snprintf(err, n, fmt, a, b);
    return -1;
}

static int field(lua_State *S, int t, const char *k, int type, char *err, size_t n) {
    lua_getfield(S, t, k);
    int lt = lua_type(S, -1);
    bool ok = (type == T_STR || type == T_ENUM) ? lt == LUA_TSTRING
              : (type == T_INT || type == T_NUM) ? lt == LUA_TNUMBER
              : type == T_INT_OR_AUTO            ? lt == LUA_TNUMBER || lt == LUA_TSTRING
              : type == T_BOOL                   ? lt == LUA_TBOOLEAN
              : type == T_SCHED                  ? (lt == LUA_TSTRING || lt == LUA_TFUNCTION)
                                                 : lt == LUA_TTABLE;
    if (!ok) {
        lua_pop(S, 1);
        return bad(err, n, "resolved key %s is missing or has the wrong type%s (this is a bug in lua/dsl.lua)", k, "");
    }
    return 0;
}

static const char *str(lua_State *S, int t, const char *k) {
    lua_getfield(S, t, k);
    const char *s = lua_tostring(S, -1); /* the table keeps the string alive */
    lua_pop(S, 1);
    return s;
}
static long long integer(lua_State *S, int t, const char *k) {
    lua_getfield(S, t, k);
    long long v = (long long)lua_tointeger(S, -1);
    lua_pop(S, 1);
    return v;
}
static double number(lua_State *S, int t, const char *k) {
    lua_getfield(S, t, k);
    double v = lua_tonumber(S, -1);
    lua_pop(S, 1);
    return v;
}
static bool boolean(lua_State *S, int t, const char *k) {
    lua_getfield(S, t, k);
    bool v = lua_toboolean(S, -1);
    lua_pop(S, 1);
    return v;
}
static bool is_function(lua_State *S, int t, const char *k) {
    lua_getfield(S, t, k);
    bool v = lua_isfunction(S, -1);
    lua_pop(S, 1);
    return v;
}

int toconfig(lua_State *S, TrainConfig *c, bool *beta_fn, bool *lr_fn, char *err, size_t n) {
    int t = lua_gettop(S);
    /* every key present has a reader, every reader's key is present */
    lua_pushnil(S);
    while (lua_next(S, t)) {
        const char *k = lua_type(S, -2) == LUA_TSTRING ? lua_tostring(S, -2) : "(non-string key)";
        bool known = false;
        for (int i = 0; i < N_KEYS; i++) known |= strcmp(KEYS[i].key, k) == 0;
        lua_pop(S, 1);
        if (!known) {
            lua_pop(S, 1);
            return bad(err, n, "run key %s has no TrainConfig field%s (update lua/toconfig.c with lua/schema.lua)", k,
                       "");
        }
    }
    for (int i = 0; i < N_KEYS; i++) {
        if (field(S, t, KEYS[i].key, KEYS[i].type, err, n) != 0) return -1;
        lua_pop(S, 1);
    }
    const char *dataset = str(S, t, "dataset");
    if (strlen(dataset) >= sizeof c->dataset) return bad(err, n, "dataset name %s is too long%s", dataset, "");
    if (train_config_defaults(c, dataset) != 0) return bad(err, n, "dataset %s: %s", dataset, "unknown to the trainer");
    snprintf(c->data_root, sizeof c->data_root, "%s", str(S, t, "data_root"));
    c->subset = integer(S, t, "subset");
    c->eval_subset = integer(S, t, "eval_subset");
    int size = (int)integer(S, t, "image_size");
    if (size > 0) c->image_size = size; /* else train_config_defaults' data set size */
    lua_getfield(S, t, "loader_threads");
    c->loader_threads = lua_isinteger(S, -1) ? (int)lua_tointeger(S, -1) : LOADER_THREADS_AUTO; /* "auto" */
    lua_pop(S, 1);

    lua_getfield(S, t, "backbone");
    int bb = lua_gettop(S);
    const char *block = str(S, bb, "block"), *stem = str(S, bb, "stem");
    if (!block || !stem) return lua_pop(S, 1), bad(err, n, "backbone.%s is missing%s", !block ? "block" : "stem", "");
    c->backbone.block = strcmp(block, "bottleneck") == 0 ? BLOCK_BOTTLENECK : BLOCK_BASIC;
    c->backbone.stem = strcmp(stem, "imagenet") == 0 ? STEM_IMAGENET : STEM_CIFAR;
    c->backbone.width = (int)integer(S, bb, "width");
    c->backbone.stem_conv2d_init = strcmp(str(S, t, "stem_init"), "conv2d") == 0;
    lua_getfield(S, bb, "layers");
    for (int i = 0; i < 4; i++) {
        lua_geti(S, -1, i + 1);
        c->backbone.layers[i] = (int)lua_tointeger(S, -1);
        lua_pop(S, 1);
    }
    lua_pop(S, 2);
    c->proj_hidden = (int)integer(S, t, "proj_hidden");
    c->proj_out = (int)integer(S, t, "proj_out");
    c->pred_hidden = (int)integer(S, t, "pred_hidden");

    const char *method = str(S, t, "method");
    bool found = false;
    for (int m = METHOD_RSA; m <= METHOD_SIMSIAM; m++)
        if (strcmp(method_name((MethodKind)m), method) == 0) c->method = (MethodKind)m, found = true;
    if (!found) return bad(err, n, "unknown method %s%s", method, "");
    if (view_mode_parse(str(S, t, "views"), &c->views) != 0) return bad(err, n, "unknown views %s%s", str(S, t, "views"), "");
    c->beta_base = number(S, t, "beta_base");
    *beta_fn = is_function(S, t, "beta_schedule");
    c->beta_schedule = *beta_fn ? BETA_TABLE : strcmp(str(S, t, "beta_schedule"), "fixed") == 0 ? BETA_FIXED : BETA_DECAY;
    c->tau_base = number(S, t, "tau_base");
    c->temperature = number(S, t, "temperature");
    c->queue_size = (int)integer(S, t, "queue_size");

    c->epochs = (int)integer(S, t, "epochs");
    c->batch = (int)integer(S, t, "batch");
    c->optimizer = strcmp(str(S, t, "optimizer"), "lars") == 0 ? OPTIM_LARS : OPTIM_SGD;
    c->lr = number(S, t, "lr");
    c->lr_scaling = strcmp(str(S, t, "lr_scaling"), "linear") == 0 ? LR_SCALE_LINEAR : LR_SCALE_FLOOR;
    *lr_fn = is_function(S, t, "lr_schedule");
    c->lr_schedule = *lr_fn ? LR_TABLE
                     : strcmp(str(S, t, "lr_schedule"), "cosine_step") == 0 ? LR_COSINE_STEP
                                                                             : LR_COSINE_EPOCH;
    c->warmup_epochs = (int)integer(S, t, "warmup_epochs");
    c->weight_decay = number(S, t, "weight_decay");
    c->momentum = number(S, t, "momentum");
    c->lars_trust = number(S, t, "lars_trust");
    c->decay_1d = boolean(S, t, "decay_1d");
    c->sync_bn = boolean(S, t, "sync_bn");

    c->linear = strcmp(str(S, t, "linear"), "meanshift") == 0 ? LINEAR_MEANSHIFT : LINEAR_SMALL;
    c->linear_epochs = (int)integer(S, t, "linear_epochs");
    c->linear_batch = (int)integer(S, t, "linear_batch");
    c->linear_lr = number(S, t, "linear_lr");
    lua_getfield(S, t, "linear_milestones");
    for (int i = 0; i < 2; i++) {
        lua_geti(S, -1, i + 1);
        c->linear_milestones[i] = (int)lua_tointeger(S, -1);
        lua_pop(S, 1);
    }
    lua_pop(S, 1);
    c->linear_bn_train = boolean(S, t, "linear_bn_train");
    c->linear_best_epoch = boolean(S, t, "linear_best_epoch");
    c->knn_every = (int)integer(S, t, "knn_every");
    c->knn_k = (int)integer(S, t, "knn_k");
    c->knn_t = number(S, t, "knn_t");

    c->seed = (uint64_t)integer(S, t, "seed");
    snprintf(c->backend, sizeof c->backend, "%s", str(S, t, "backend"));
    c->checkpoint_every = integer(S, t, "checkpoint_every");
    const char *precision = str(S, t, "precision");
    c->tf32 = strcmp(precision, "tf32") == 0;
    c->precision = strcmp(precision, "bf16") == 0   ? PRECISION_BF16
                   : strcmp(precision, "fp16") == 0 ? PRECISION_FP16
                                                    : PRECISION_FP32;
    c->deterministic = boolean(S, t, "deterministic");
    c->low_memory = boolean(S, t, "low_memory");
    c->saved_16bit = boolean(S, t, "saved_16bit");
    c->lowp_convolutions = boolean(S, t, "lowp_convolutions");
    c->lowp_weight_grads = boolean(S, t, "lowp_weight_grads");
    c->bn_group = (int)integer(S, t, "bn_group");
    c->beta_table = NULL, c->beta_table_len = 0, c->lr_table = NULL, c->lr_table_len = 0;
    return 0;
}
