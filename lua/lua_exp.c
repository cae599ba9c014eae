#include "lua_exp.h"

#include "sha256.h"
#include "trainer/backend/backend.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct LuaExp {
    lua_State *S;
    char *error;
    /* An experiment file is a program: a loop that never ends or a table that never stops growing must end in a
     * message naming the file and line, not a hung or killed rsa. Both budgets count from each entry point. */
    long long ticks, max_ticks; /* hook calls (every TICK instructions) so far, and the limit */
    size_t bytes, max_bytes;    /* Lua's heap now, and the limit */
    bool out_of_memory;         /* the allocator refused a block for the limit's sake */
    const char *path;           /* the experiment file being expanded (for the memory message) */
};

enum { TICK = 100000 };

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    LuaExp *L = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        L->bytes -= old;
        return NULL;
    }
    if (nsize > old && L->bytes - old + nsize > L->max_bytes) {
        L->out_of_memory = true;
        return NULL; /* Lua raises "not enough memory"; take_error explains it */
    }
    void *p = realloc(ptr, nsize);
    if (p) L->bytes = L->bytes - old + nsize;
    return p;
}

static void count_hook(lua_State *S, lua_Debug *ar) {
    void *ud;
    lua_getallocf(S, &ud);
    LuaExp *L = ud;
    if (++L->ticks <= L->max_ticks) return;
    /* the function running now (level 0 inside a hook) is where the loop is */
    const char *where = "?";
    int line = 0;
    if (lua_getstack(S, 0, ar) && lua_getinfo(S, "Sl", ar)) {
        where = ar->source[0] == '@' || ar->source[0] == '=' ? ar->source + 1 : ar->short_src;
        line = ar->currentline;
    }
    lua_pushfstring(S, "%s:%d: the experiment ran more than %I million Lua instructions without finishing (a loop "
                       "that never ends?)", where, line, (lua_Integer)(L->max_ticks * (TICK / 1000) / 1000));
    lua_error(S);
}

/* An error outside any protected call: a bug of ours, not of the experiment file. */
static int on_panic(lua_State *S) {
    const char *m = lua_tostring(S, -1);
    fprintf(stderr, "rsa: unprotected Lua error (a bug in lua/lua_exp.c): %s\n", m ? m : "?");
    return 0; /* Lua aborts */
}

/* Every entry point starts with a fresh budget. */
static void reset_budget(LuaExp *L) {
    L->ticks = 0;
    L->path = NULL;
    L->out_of_memory = false;
}

void luaexp_set_limits(LuaExp *L, long long max_instructions, size_t max_bytes) {
    L->max_ticks = max_instructions / TICK > 0 ? max_instructions / TICK : 1;
    L->max_bytes = max_bytes;
}

static char *xstrdup(const char *s) {
    char *d = strdup(s ? s : "");
    if (!d) {
        fprintf(stderr, "rsa: out of memory\n");
        abort();
    }
    return d;
}

static void set_error(LuaExp *L, const char *msg) {
    free(L->error);
    L->error = xstrdup(msg);
}

const char *luaexp_error(const LuaExp *L) { return L->error ? L->error : "no error"; }
const char *luaexp_lua_release(void) { return LUA_RELEASE; }

static int host_sha256(lua_State *S) {
    size_t n;
    const char *s = luaL_checklstring(S, 1, &n);
    char hex[65];
    sha256_hex(s, n, hex);
    lua_pushstring(S, hex);
    return 1;
}

static int host_cuda(lua_State *S) {
    lua_pushboolean(S, backend_cuda() != NULL);
    return 1;
}

/* Message handler: keeps the DSL's error tables, adds a traceback to other errors. */
static int on_error(lua_State *S) {
    if (lua_istable(S, 1)) return 1;
    const char *msg = lua_tostring(S, 1);
    luaL_traceback(S, S, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

/* Converts the error on top of the stack into L->error and pops it. */
static int take_error(LuaExp *L) {
    lua_State *S = L->S;
    int err = lua_gettop(S);
    if (L->out_of_memory) { /* whatever the message became on its way out (the DSL wraps errors) */
        char buf[512];
        snprintf(buf, sizeof buf, "%s: the experiment needed more than %zu MiB of Lua memory (a table or string "
                                  "that never stops growing?)", L->path ? L->path : "(schedule)", L->max_bytes >> 20);
        set_error(L, buf);
        lua_settop(S, err - 1);
        return -1;
    }
    if (lua_istable(S, err)) {
        lua_getfield(S, err, "rsa_errors");
        if (lua_istable(S, -1)) {
            int list = lua_gettop(S);
            size_t cap = 1, used = 0;
            lua_Integer n = luaL_len(S, list);
            char *buf = malloc(cap);
            if (!buf) abort();
            buf[0] = 0;
            for (lua_Integer i = 1; i <= n; i++) {
                lua_geti(S, list, i);
                size_t len;
                const char *m = lua_tolstring(S, -1, &len);
                if (!m) m = "?", len = 1;
                cap = used + len + 2;
                buf = realloc(buf, cap);
                if (!buf) abort();
                if (i > 1) buf[used++] = '\n';
                memcpy(buf + used, m, len);
                used += len;
                buf[used] = 0;
                lua_pop(S, 1);
            }
            free(L->error);
            L->error = buf;
            lua_settop(S, err - 1);
            return -1;
        }
        lua_pop(S, 1);
    }
    const char *msg = lua_tostring(S, err);
    set_error(L, msg ? msg : "unknown Lua error");
    lua_settop(S, err - 1);
    return -1;
}

LuaExp *luaexp_new(const char *lua_dir, const char *experiments_dir, char **err) {
    LuaExp *L = calloc(1, sizeof *L);
    if (!L) abort();
    luaexp_set_limits(L, 2000000000LL, (size_t)2 << 30);
    L->S = lua_newstate(limited_alloc, L);
    if (!L->S) {
        *err = xstrdup("cannot create a Lua state (out of memory)");
        free(L);
        return NULL;
    }
    lua_State *S = L->S;
    lua_atpanic(S, on_panic);
    lua_sethook(S, count_hook, LUA_MASKCOUNT, TICK);
    luaL_openlibs(S);
    lua_getglobal(S, "package");
    char path[4096];
    snprintf(path, sizeof path, "%s/?.lua", lua_dir);
    lua_pushstring(S, path);
    lua_setfield(S, -2, "path");
    lua_pushstring(S, "");
    lua_setfield(S, -2, "cpath");
    lua_pop(S, 1);
    lua_pushcfunction(S, on_error);
    lua_getglobal(S, "require");
    lua_pushstring(S, "dsl");
    if (lua_pcall(S, 1, 1, -3) != LUA_OK) {
        const char *m = lua_tostring(S, -1);
        char buf[8192];
        snprintf(buf, sizeof buf, "cannot load the experiment DSL from %s: %s (hint: run rsa from the repository, or "
                                  "set RSA_HOME to it)", lua_dir, m ? m : "?");
        *err = xstrdup(buf);
        lua_close(S);
        free(L);
        return NULL;
    }
    lua_getfield(S, -1, "host");
    lua_pushcfunction(S, host_sha256);
    lua_setfield(S, -2, "sha256");
    lua_pushcfunction(S, host_cuda);
    lua_setfield(S, -2, "cuda_available");
    lua_pushstring(S, experiments_dir);
    lua_setfield(S, -2, "experiments_dir");
    lua_pop(S, 1);
    lua_setglobal(S, "RSA_DSL");
    lua_pop(S, 1); /* on_error */
    return L;
}

void luaexp_free(LuaExp *L) {
    if (!L) return;
    lua_close(L->S);
    free(L->error);
    free(L);
}

/* Field helpers on the table at the top of the stack. */
static char *get_str(lua_State *S, const char *k) {
    lua_getfield(S, -1, k);
    char *r = lua_isstring(S, -1) ? xstrdup(lua_tostring(S, -1)) : NULL;
    lua_pop(S, 1);
    return r;
}
static char *get_str0(lua_State *S, const char *k) {
    char *r = get_str(S, k);
    return r ? r : xstrdup("");
}
static long long get_int(lua_State *S, const char *k) {
    lua_getfield(S, -1, k);
    long long r = lua_isnumber(S, -1) ? (long long)lua_tonumber(S, -1) : 0;
    lua_pop(S, 1);
    return r;
}
static bool get_bool(lua_State *S, const char *k) {
    lua_getfield(S, -1, k);
    bool r = lua_toboolean(S, -1);
    lua_pop(S, 1);
    return r;
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) abort();
    return p;
}

static char *make_id(const TrainConfig *c, const char *hash) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s-%s-%s-e%d-s%llu-%.10s", c->dataset, method_name(c->method),
             view_mode_name(c->views), c->epochs, (unsigned long long)c->seed, hash);
    for (char *p = buf; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    return xstrdup(buf);
}

static int compare_strings(const void *a, const void *b) { return strcmp(a, b); }

static int read_runs(LuaExp *L, Experiment *e) {
    lua_State *S = L->S;
    lua_getfield(S, -1, "runs");
    int n = (int)luaL_len(S, -1);
    e->runs = xcalloc((size_t)n, sizeof *e->runs);
    e->n_runs = n;
    for (int i = 0; i < n; i++) {
        ExpRun *r = &e->runs[i];
        lua_geti(S, -1, i + 1);
        r->index = i + 1;
        r->canonical = get_str0(S, "canonical");
        r->settings = get_str0(S, "settings");
        r->labels = get_str0(S, "label_text");
        r->row = get_str0(S, "row");
        r->col = get_str0(S, "col");
        r->comparable = get_bool(S, "comparable");
        sha256_hex(r->canonical, strlen(r->canonical), r->hash);
        lua_getfield(S, -1, "vals");
        char err[1024];
        int rc = toconfig(S, &r->cfg, &r->beta_fn, &r->lr_fn, err, sizeof err);
        lua_pop(S, 1);
        if (rc != 0) {
            char buf[1400];
            snprintf(buf, sizeof buf, "run %d (%s): %s", i + 1, r->labels, err);
            set_error(L, buf);
            lua_pop(S, 2);
            return -1;
        }
        r->seed = (int)r->cfg.seed;
        r->id = make_id(&r->cfg, r->hash);
        lua_pop(S, 1);
    }
    lua_pop(S, 1);
    return 0;
}

static void read_layout(LuaExp *L, Experiment *e) {
    lua_State *S = L->S;
    lua_getfield(S, -1, "layout");
    lua_getfield(S, -1, "rows");
    e->n_rows = (int)luaL_len(S, -1);
    e->rows = xcalloc((size_t)e->n_rows, sizeof *e->rows);
    for (int i = 0; i < e->n_rows; i++) {
        lua_geti(S, -1, i + 1);
        e->rows[i].label = get_str0(S, "label");
        e->rows[i].method = get_str0(S, "method");
        e->rows[i].variant = get_str0(S, "variant");
        lua_pop(S, 1);
    }
    lua_pop(S, 1);
    lua_getfield(S, -1, "cols");
    e->n_cols = (int)luaL_len(S, -1);
    e->cols = xcalloc((size_t)e->n_cols, sizeof *e->cols);
    for (int i = 0; i < e->n_cols; i++) {
        lua_geti(S, -1, i + 1);
        e->cols[i].label = get_str0(S, "label");
        e->cols[i].dataset = get_str0(S, "dataset");
        e->cols[i].epochs = (int)get_int(S, "epochs");
        e->cols[i].standin = get_bool(S, "standin");
        lua_pop(S, 1);
    }
    lua_pop(S, 1);
    lua_getfield(S, -1, "cells");
    e->n_cells = (int)luaL_len(S, -1);
    e->cells = xcalloc((size_t)e->n_cells, sizeof *e->cells);
    for (int i = 0; i < e->n_cells; i++) {
        lua_geti(S, -1, i + 1);
        ExpCell *c = &e->cells[i];
        c->row = get_str0(S, "row"), c->col = get_str0(S, "col"), c->table = get_str0(S, "table");
        c->method = get_str0(S, "method"), c->variant = get_str0(S, "variant"), c->dataset = get_str0(S, "dataset");
        c->epochs = (int)get_int(S, "epochs");
        lua_pop(S, 1);
    }
    lua_pop(S, 2);
}

int luaexp_expand(LuaExp *L, const char *path, const ExpandOptions *opt, Experiment *e) {
    lua_State *S = L->S;
    reset_budget(L);
    L->path = path;
    memset(e, 0, sizeof *e);
    int base = lua_gettop(S);
    lua_pushcfunction(S, on_error);
    int handler = lua_gettop(S);
    lua_getglobal(S, "RSA_DSL");
    int dsl = lua_gettop(S);
    lua_getfield(S, dsl, "reset"); /* forget earlier loads: an edited file is read again */
    if (lua_pcall(S, 0, 0, handler) != LUA_OK) goto fail;
    lua_newtable(S);
    int opts = lua_gettop(S);
    if (opt && opt->scale) lua_pushstring(S, opt->scale), lua_setfield(S, opts, "scale");
    if (opt && opt->seeds > 0) lua_pushinteger(S, opt->seeds), lua_setfield(S, opts, "seeds");
    if (opt && opt->data_root) lua_pushstring(S, opt->data_root), lua_setfield(S, opts, "data_root");
    if (opt && opt->loader_threads > 0)
        lua_pushinteger(S, opt->loader_threads), lua_setfield(S, opts, "loader_threads");
    if (opt && opt->backend) lua_pushstring(S, opt->backend), lua_setfield(S, opts, "backend");
    if (opt && opt->world > 1) lua_pushinteger(S, opt->world), lua_setfield(S, opts, "world");
    if (opt && opt->n_sets > 0) {
        lua_newtable(S);
        int list = lua_gettop(S);
        for (int i = 0; i < opt->n_sets; i++) {
            lua_getfield(S, dsl, "parse_override");
            lua_pushstring(S, opt->sets[i]);
            if (lua_pcall(S, 1, 1, handler) != LUA_OK) goto fail;
            lua_seti(S, list, i + 1);
        }
        lua_setfield(S, opts, "overrides");
    }
    lua_getfield(S, dsl, "expand");
    lua_pushstring(S, path);
    lua_pushvalue(S, opts);
    if (lua_pcall(S, 2, 1, handler) != LUA_OK) goto fail;
    e->name = get_str0(S, "name");
    e->title = get_str0(S, "title");
    e->notes = get_str0(S, "notes");
    e->scale = get_str0(S, "scale");
    e->scale_notes = get_str0(S, "scale_notes");
    e->file = get_str0(S, "file");
    lua_getfield(S, -1, "report");
    e->kind = get_str0(S, "kind");
    e->table = get_str0(S, "table");
    e->metric = get_str0(S, "metric");
    e->rows_axis = get_str0(S, "rows");
    e->coco = get_str0(S, "coco");
    e->x = get_str0(S, "x");
    e->has_paper = get_bool(S, "has_paper");
    {
        /* best = {label = value, ...} -> "label=value;..." sorted by label: lua_next's order changes from one
         * process to the next (Lua seeds its string hashes), and the report must not */
        char items[32][160], buf[32 * 160 + 1] = "";
        int n = 0;
        lua_getfield(S, -1, "best");
        if (lua_istable(S, -1)) {
            lua_pushnil(S);
            while (lua_next(S, -2)) {
                if (lua_type(S, -2) == LUA_TSTRING && lua_isnumber(S, -1) && n < 32)
                    snprintf(items[n++], sizeof items[0], "%s=%g;", lua_tostring(S, -2), lua_tonumber(S, -1));
                lua_pop(S, 1);
            }
        }
        lua_pop(S, 1);
        qsort(items, (size_t)n, sizeof items[0], compare_strings);
        for (int i = 0; i < n; i++) strcat(buf, items[i]);
        e->best = xstrdup(buf);
    }
    lua_pop(S, 1);
    {
        char buf[1024] = "";
        lua_getfield(S, -1, "axes");
        lua_Integer n = luaL_len(S, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(S, -1, i);
            lua_getfield(S, -1, "name");
            lua_getfield(S, -2, "labels");
            size_t used = strlen(buf);
            snprintf(buf + used, sizeof buf - used, "%s%s(%lld)", i > 1 ? " " : "", lua_tostring(S, -2),
                     (long long)luaL_len(S, -1));
            lua_pop(S, 3);
        }
        lua_pop(S, 1);
        e->axes = xstrdup(buf);
    }
    {
        lua_getfield(S, -1, "scales");
        int n = 1;
        lua_pushnil(S);
        while (lua_next(S, -2)) n++, lua_pop(S, 1);
        e->scales = xcalloc((size_t)n, sizeof(char *));
        e->scales[0] = xstrdup("paper");
        e->n_scales = 1;
        lua_pushnil(S);
        while (lua_next(S, -2)) {
            e->scales[e->n_scales++] = xstrdup(lua_tostring(S, -2));
            lua_pop(S, 1);
        }
        lua_pop(S, 1);
        /* sorted after "paper" */
        for (int i = 1; i < e->n_scales; i++)
            for (int j = i + 1; j < e->n_scales; j++)
                if (strcmp(e->scales[i], e->scales[j]) > 0) {
                    char *t = e->scales[i];
                    e->scales[i] = e->scales[j], e->scales[j] = t;
                }
    }
    if (read_runs(L, e) != 0) {
        lua_settop(S, base);
        experiment_free(e);
        return -1;
    }
    read_layout(L, e);
    lua_settop(S, base);
    return 0;
fail:
    take_error(L);
    lua_settop(S, base);
    experiment_free(e);
    return -1;
}

void experiment_free(Experiment *e) {
    if (!e) return;
    free(e->name), free(e->title), free(e->notes), free(e->scale), free(e->scale_notes), free(e->file);
    free(e->kind), free(e->table), free(e->metric), free(e->rows_axis), free(e->coco), free(e->x), free(e->best);
    free(e->axes);
    for (int i = 0; i < e->n_scales; i++) free(e->scales[i]);
    free(e->scales);
    for (int i = 0; i < e->n_runs; i++) {
        ExpRun *r = &e->runs[i];
        free(r->id), free(r->canonical), free(r->settings), free(r->labels), free(r->row), free(r->col);
    }
    free(e->runs);
    for (int i = 0; i < e->n_rows; i++) free(e->rows[i].label), free(e->rows[i].method), free(e->rows[i].variant);
    free(e->rows);
    for (int i = 0; i < e->n_cols; i++) free(e->cols[i].label), free(e->cols[i].dataset);
    free(e->cols);
    for (int i = 0; i < e->n_cells; i++) {
        ExpCell *c = &e->cells[i];
        free(c->row), free(c->col), free(c->table), free(c->method), free(c->variant), free(c->dataset);
    }
    free(e->cells);
    memset(e, 0, sizeof *e);
}

int luaexp_sample(LuaExp *L, int index, const char *key, int64_t K, int64_t spe, double base_lr, float **out) {
    lua_State *S = L->S;
    reset_budget(L);
    int base = lua_gettop(S);
    lua_pushcfunction(S, on_error);
    int handler = lua_gettop(S);
    lua_getglobal(S, "RSA_DSL");
    lua_getfield(S, -1, "sample");
    lua_pushinteger(S, index);
    lua_pushstring(S, key);
    lua_pushinteger(S, (lua_Integer)K);
    lua_pushinteger(S, (lua_Integer)(spe > 0 ? spe : 1));
    lua_pushnumber(S, base_lr);
    if (lua_pcall(S, 5, 1, handler) != LUA_OK) {
        take_error(L);
        lua_settop(S, base);
        return -1;
    }
    float *v = malloc(sizeof(float) * (size_t)(K > 0 ? K : 1));
    if (!v) abort();
    for (int64_t i = 0; i < K; i++) {
        lua_geti(S, -1, (lua_Integer)(i + 1));
        v[i] = (float)lua_tonumber(S, -1);
        lua_pop(S, 1);
    }
    lua_settop(S, base);
    *out = v;
    return 0;
}

char *luaexp_help(LuaExp *L) {
    lua_State *S = L->S;
    reset_budget(L);
    int base = lua_gettop(S);
    lua_pushcfunction(S, on_error);
    int handler = lua_gettop(S);
    lua_getglobal(S, "RSA_DSL");
    lua_getfield(S, -1, "help");
    char *r;
    if (lua_pcall(S, 0, 1, handler) != LUA_OK) {
        take_error(L);
        r = xstrdup(L->error);
    } else {
        r = xstrdup(lua_tostring(S, -1));
    }
    lua_settop(S, base);
    return r;
}
