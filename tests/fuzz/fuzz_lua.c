/* The Lua config bridge (lua/lua_exp.c, lua/dsl.lua, lua/toconfig.c): the input is an experiment file, expanded at
 * a scale picked by its first byte, then every run's schedule functions are sampled. The file may be any text: the
 * expansion must succeed or fail with a message, within the instruction and memory budgets (a loop that never ends
 * is an error, not a hang). A crash, a sanitizer report, or a failure with an empty message is a finding. Seeds:
 * the shipped experiments behind a byte 2 (smoke), in tests/fuzz/corpus/lua. */
#include "fuzz.h"
#include "lua/lua_exp.h"

#include <unistd.h>

static LuaExp *L;
static char path[256];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    char *err = NULL;
    /* run from the repository root (make fuzz does): lua/ holds the DSL, experiments/ the includable files */
    L = luaexp_new("lua", "experiments", &err);
    if (!L) {
        fprintf(stderr, "fuzz_lua: %s\n", err);
        abort();
    }
    luaexp_set_limits(L, 20000000LL, (size_t)256 << 20);
    snprintf(path, sizeof path, "/tmp/fuzz_lua_%d.lua", (int)getpid());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char *scales[] = {NULL, "quick", "smoke", "paper"};
    const char *scale = scales[data[0] & 3];
    int seeds = data[0] & 4 ? 2 : 0;
    data++, size--;
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) abort();
    Experiment e;
    ExpandOptions o = {.scale = scale, .seeds = seeds};
    if (luaexp_expand(L, path, &o, &e) != 0) {
        const char *m = luaexp_error(L);
        if (!m || !m[0] || strcmp(m, "no error") == 0) {
            fprintf(stderr, "fuzz_lua: a failure without a message\n");
            abort();
        }
        return 0;
    }
    for (int i = 0; i < e.n_runs && i < 4; i++) {
        const char *keys[] = {"beta_schedule", "lr_schedule"};
        bool fn[] = {e.runs[i].beta_fn, e.runs[i].lr_fn};
        for (int k = 0; k < 2; k++) {
            if (!fn[k]) continue;
            float *v = NULL;
            if (luaexp_sample(L, e.runs[i].index, keys[k], 64, 8, 0.1, &v) == 0) free(v);
            else if (!luaexp_error(L)[0]) abort();
        }
    }
    experiment_free(&e);
    return 0;
}
