/* The experiment DSL and its embedding: validation messages (file:line, key path, what was expected, did you mean),
 * extends / sweeps / scales / seeds expansion and precedence, canonical serialisation and its hash (stable, changed by
 * edits, unchanged by formatting), schedule functions, the schema <-> TrainConfig mapping, and every shipped
 * experiment file at every scale. */
#include "lua/lua_exp.h"
#include "lua/sha256.h"
#include "tests/util/testlib.h"
#include "trainer/core/error.h"
#include "trainer/core/fileio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SHA-256 of the canonical config of golden.lua below (see test_hash_golden) */
#define GOLDEN_HASH "5c14cf58a47af015aa6f686efc3245f95bdbb1adcb0b19e6610172ccbc9fb5da"

static LuaExp *L;
static char dir[600];

static const char *home(void) {
    const char *h = getenv("RSA_HOME");
    return h && h[0] ? h : ".";
}

/* Writes tmp/name with text; returns the path (static buffer per call site is not needed: malloc'd). */
static char *put(const char *name, const char *text) {
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    if (atomic_write_text(p, text) != 0) {
        printf("cannot write %s: %s\n", p, rsa_error_message());
        abort();
    }
    return p;
}

static int expand(const char *path, const char *scale, Experiment *e) {
    ExpandOptions o = {.scale = scale};
    return luaexp_expand(L, path, &o, e);
}

/* Expands a file that must fail; returns the message (static copy). */
static const char *expect_error(const char *path, const char *scale) {
    static char msg[8192];
    Experiment e;
    if (expand(path, scale, &e) == 0) {
        experiment_free(&e);
        snprintf(msg, sizeof msg, "(no error)");
        return msg;
    }
    snprintf(msg, sizeof msg, "%s", luaexp_error(L));
    return msg;
}

#define CHECK_HAS(msg, needle) CHECK(strstr((msg), (needle)) != NULL, "expected \"%s\" in:\n%s", (needle), (msg))

static void test_sha256_vectors(void) {
    char h[65];
    sha256_hex("", 0, h);
    CHECK(strcmp(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0, "empty: %s", h);
    sha256_hex("abc", 3, h);
    CHECK(strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0, "abc: %s", h);
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex(two, strlen(two), h);
    CHECK(strcmp(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0, "448 bits: %s", h);
    /* a million 'a' through incremental updates of odd sizes */
    Sha256 s;
    sha256_init(&s);
    char a[1000];
    memset(a, 'a', sizeof a);
    size_t left = 1000000;
    for (size_t step = 1; left; step = step % 987 + 13) { /* steps of 1..999 bytes */
        size_t n = step < left ? step : left;
        sha256_update(&s, a, n);
        left -= n;
    }
    sha256_hex_final(&s, h);
    CHECK(strcmp(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0, "1M a: %s", h);
}

static const char *BAD =
    "-- a file with one mistake of each kind\n"          /* 1 */
    "local quick = {\n"                                 /* 2 */
    "  epoch = 3,\n"                                    /* 3 */
    "  subset = \"many\",\n"                            /* 4 */
    "}\n"                                               /* 5 */
    "return {\n"                                        /* 6 */
    "  extends = \"base_cifar.lua\",\n"                 /* 7 */
    "  lr = \"0.1\", -- a string { not a table = 1 }\n" /* 8 */
    "  methd = \"rsa\",\n"                              /* 9 */
    "  method = \"rsaa\",\n"                            /* 10 */
    "  backbone = { width = 16, layerz = {1,1,1,1} },\n" /* 11 */
    "  sweep = { beta_base = { 0.1, 0.2,\n"             /* 12 */
    "      1.5 } },\n"                                  /* 13 */
    "  scales = { quick = quick },\n"                   /* 14 */
    "}\n";

static void test_validation_messages(void) {
    char *p = put("bad.lua", BAD);
    const char *m = expect_error(p, NULL);
    char want[1024];
    snprintf(want, sizeof want, "%s:3: scales.quick.epoch: unknown key (did you mean 'epochs'?)", p);
    CHECK_HAS(m, want);
    snprintf(want, sizeof want, "%s:4: scales.quick.subset: expected an integer >= 0, got \"many\"", p);
    CHECK_HAS(m, want);
    snprintf(want, sizeof want, "%s:8: lr: expected a number >= 0, got \"0.1\"", p);
    CHECK_HAS(m, want);
    snprintf(want, sizeof want, "%s:9: methd: unknown key (did you mean 'method'?)", p);
    CHECK_HAS(m, want);
    snprintf(want, sizeof want, "%s:10: method: expected one of rsa, byol, simclr, mocov2, simsiam, got \"rsaa\" "
                                "(did you mean 'rsa'?)", p);
    CHECK_HAS(m, want);
    snprintf(want, sizeof want, "%s:11: backbone.layerz: unknown key (did you mean 'layers'?)", p);
    CHECK_HAS(m, want);
    snprintf(want, sizeof want, "%s:13: sweep.beta_base[3]: expected a number in [0, 1], got 1.5", p);
    CHECK_HAS(m, want);
    /* messages come in line order, one a line */
    const char *l3 = strstr(m, ":3:"), *l13 = strstr(m, ":13:");
    CHECK(l3 && l13 && l3 < l13, "messages not in line order:\n%s", m);
    free(p);
}

static void test_validation_more(void) {
    /* a syntax error: Lua's own message, with file:line */
    char *p = put("syntax.lua", "return {\n  lr = 0.1\n  epochs = 3,\n}\n");
    const char *m = expect_error(p, NULL);
    CHECK_HAS(m, "syntax.lua:3:");
    free(p);
    /* not a table */
    p = put("notable.lua", "return 42\n");
    m = expect_error(p, NULL);
    CHECK_HAS(m, "must return a table");
    free(p);
    /* loader_threads: a count or "auto", nothing else */
    p = put("threads.lua", "return {\n  dataset = \"fashionmnist\",\n  loader_threads = \"atuo\",\n}\n");
    m = expect_error(p, NULL);
    CHECK_HAS(m, "threads.lua:3: loader_threads: expected an integer in [0, 256] or \"auto\", got \"atuo\" "
                 "(did you mean 'auto'?)");
    free(p);
    p = put("threads.lua", "return { dataset = \"fashionmnist\", loader_threads = 257 }\n");
    CHECK_HAS(expect_error(p, NULL), "loader_threads: expected an integer in [0, 256] or \"auto\", got 257");
    free(p);
    Experiment et;
    p = put("threads.lua", "return { dataset = \"fashionmnist\", loader_threads = 5 }\n");
    CHECK(expand(p, NULL, &et) == 0 && et.n_runs == 1 && et.runs[0].cfg.loader_threads == 5, "%s", luaexp_error(L));
    experiment_free(&et);
    free(p);
    p = put("threads.lua", "return { dataset = \"fashionmnist\" }\n");
    CHECK(expand(p, NULL, &et) == 0 && et.n_runs == 1 && et.runs[0].cfg.loader_threads == LOADER_THREADS_AUTO,
          "the default is auto: %s", luaexp_error(L));
    experiment_free(&et);
    free(p);
    /* a missing base file names where it looked */
    p = put("nobase.lua", "return {\n  extends = \"nonexistent_base.lua\",\n}\n");
    m = expect_error(p, NULL);
    CHECK_HAS(m, "nobase.lua:2: cannot find nonexistent_base.lua");
    free(p);
    /* unknown scale: did you mean, and the list */
    p = put("scale.lua", "return { dataset = \"fashionmnist\", scales = { quick = { epochs = 1 } } }\n");
    m = expect_error(p, "quik");
    CHECK_HAS(m, "no scale 'quik' (did you mean 'quick'?)");
    free(p);
    /* wrong types: boolean, list length, enum inside a struct, negative integer */
    p = put("types.lua", "return {\n  decay_1d = 1,\n  linear_milestones = { 60 },\n  backbone = { block = \"basix\" },\n"
                         "  epochs = -1,\n  seed = 1.5,\n}\n");
    m = expect_error(p, NULL);
    CHECK_HAS(m, "types.lua:2: decay_1d: expected true or false, got 1");
    CHECK_HAS(m, "types.lua:3: linear_milestones: expected a list of 2 integers >= 0, got a table of 1 elements");
    CHECK_HAS(m, "types.lua:4: backbone.block: expected one of basic, bottleneck, got \"basix\" (did you mean 'basic'?)");
    CHECK_HAS(m, "types.lua:5: epochs: expected an integer >= 0, got -1");
    CHECK_HAS(m, "types.lua:6: seed: expected an integer >= 0, got 1.5");
    free(p);
    /* a key in a table built by merge() and in a local used elsewhere: lines still found */
    p = put("merged.lua", "local a = { dataset = \"fashionmnist\" }\n"
                          "local q = merge(a, {\n"
                          "  epochs = 2,\n"
                          "  batchh = 64,\n"
                          "})\n"
                          "return { scales = { quick = q } }\n");
    m = expect_error(p, "quick");
    CHECK_HAS(m, "merged.lua:4: scales.quick.batchh: unknown key (did you mean 'batch'?)");
    free(p);
    /* strings and comments with braces and '=' do not confuse the line finder; keys inside functions neither */
    p = put("tricky.lua", "local s = \"{ epochs = 1 }\" --[[ { lr = 2 } ]]\n"
                          "local t = [==[\n  { batch = 3 }\n]==]\n"
                          "return {\n"
                          "  beta_schedule = function(p) local lr = 1; local epochs = { x = 1 }; return p end,\n"
                          "  dataset = \"fashionmnist\",\n"
                          "  sweep = { { arm = { { label = \"a\", epochs = 1 }, { label = \"b\",\n"
                          "      epochs = \"two\" } } } },\n"
                          "}\n");
    m = expect_error(p, NULL);
    CHECK_HAS(m, "tricky.lua:9: sweep.arm[2].epochs: expected an integer >= 0, got \"two\"");
    free(p);
    /* an overlay without a label, and a non-key axis with scalar values */
    p = put("axes.lua", "return {\n  sweep = {\n    arm = { { method = \"byol\" } },\n    flavour = { 1, 2 },\n  },\n}\n");
    m = expect_error(p, NULL);
    CHECK_HAS(m, "axes.lua:3: sweep.arm[1]: an overlay needs a label");
    CHECK_HAS(m, "'flavour' is not a run key, so its values must be overlay tables");
    free(p);
    /* the shipped libraries checked on their own: said first, with how to find the experiments that include them */
    const char *libs[] = {"methods", "scales"};
    for (int i = 0; i < 2; i++) {
        char path[512], want[1024];
        snprintf(path, sizeof path, "%s/experiments/%s.lua", home(), libs[i]);
        m = expect_error(path, NULL);
        snprintf(want, sizeof want, "%s: not an experiment: none of its top-level keys", path);
        CHECK(strncmp(m, want, strlen(want)) == 0, "the note comes first:\n%s", m);
        snprintf(want, sizeof want, "grep -l 'include(\"%s.lua\")' %s/experiments/*.lua", libs[i], home());
        CHECK_HAS(m, want);
        CHECK_HAS(m, "unknown key");
    }
    /* a typo in a one-key experiment is only a typo */
    p = put("typo.lua", "return { epoch = 3 }\n");
    m = expect_error(p, NULL);
    CHECK_HAS(m, "typo.lua:1: epoch: unknown key (did you mean 'epochs'?)");
    CHECK(strstr(m, "not an experiment") == NULL, "%s", m);
    free(p);
}

static const char *BASE = "return {\n  dataset = \"fashionmnist\",\n  image_size = 32,\n"
                          "  backbone = { block = \"basic\", layers = { 1, 1, 0, 0 }, width = 16, stem = \"cifar\" },\n"
                          "  proj_hidden = 32, proj_out = 16, subset = 256, eval_subset = 256, epochs = 2, batch = 64,\n"
                          "  lr_scaling = \"linear\", linear_epochs = 1, knn_every = 0,\n  seeds = 2,\n}\n";

static void test_expansion(void) {
    free(put("base_t.lua", BASE));
    char *p = put("exp_t.lua",
                  "return {\n"
                  "  extends = \"base_t.lua\",\n"
                  "  epochs = 3,\n"
                  "  report = { rows = \"arm\", cols = { \"beta_base\" }, table = \"T9\" },\n"
                  "  sweep = {\n"
                  "    { beta_base = { 0.2, 0.4 } },\n"
                  "    { arm = { { label = \"BYOL\", method = \"byol\", views = \"aa\", epochs = 5 },\n"
                  "              { label = \"RSA\", method = \"rsa\", seeds = 1 } } },\n"
                  "  },\n"
                  "  scales = {\n"
                  "    quick = { epochs = 9, batch = 32, sweep = { beta_base = { 0.3 } } },\n"
                  "  },\n"
                  "}\n");
    Experiment e;
    CHECK(expand(p, NULL, &e) == 0, "%s", luaexp_error(L));
    /* 2 betas x (BYOL 2 seeds + RSA 1 seed) */
    CHECK(e.n_runs == 6, "runs %d", e.n_runs);
    if (e.n_runs == 6) {
        CHECK(strcmp(e.runs[0].labels, "beta_base=0.2 arm=BYOL seed=0") == 0, "labels %s", e.runs[0].labels);
        CHECK(strcmp(e.runs[1].labels, "beta_base=0.2 arm=BYOL seed=1") == 0, "labels %s", e.runs[1].labels);
        CHECK(strcmp(e.runs[2].labels, "beta_base=0.2 arm=RSA seed=0") == 0, "labels %s", e.runs[2].labels);
        CHECK(e.runs[0].cfg.epochs == 5, "an overlay wins over the file: epochs %d", e.runs[0].cfg.epochs);
        CHECK(e.runs[2].cfg.epochs == 3, "the file wins over its base: epochs %d", e.runs[2].cfg.epochs);
        CHECK(e.runs[3].cfg.beta_base == 0.4 && e.runs[2].cfg.beta_base == 0.2, "beta axis");
        CHECK(e.runs[2].cfg.method == METHOD_RSA && e.runs[2].cfg.views == VIEWS_MA, "rsa defaults to ma views");
        CHECK(e.runs[0].cfg.batch == 64 && e.runs[0].cfg.subset == 256, "base keys");
        CHECK(e.runs[0].cfg.seed == 0 && e.runs[1].cfg.seed == 1, "seeds");
        CHECK(strcmp(e.runs[0].row, "BYOL") == 0 && strcmp(e.runs[0].col, "0.2") == 0, "cell %s/%s", e.runs[0].row,
              e.runs[0].col);
        CHECK(e.runs[0].comparable, "paper scale is comparable");
    }
    experiment_free(&e);
    /* the quick scale: its keys win over the file, sweep values win over it, its sweep replaces the beta axis */
    CHECK(expand(p, "quick", &e) == 0, "%s", luaexp_error(L));
    CHECK(e.n_runs == 3, "quick runs %d", e.n_runs);
    if (e.n_runs == 3) {
        CHECK(e.runs[0].cfg.beta_base == 0.3, "replaced axis");
        CHECK(e.runs[0].cfg.epochs == 5, "sweep value over scale: %d", e.runs[0].cfg.epochs);
        CHECK(e.runs[2].cfg.epochs == 9, "scale over file: %d", e.runs[2].cfg.epochs);
        CHECK(e.runs[0].cfg.batch == 32, "scale key");
        CHECK(!e.runs[0].comparable && strstr(e.runs[0].col, "[quick]"), "reduced scale columns: %s", e.runs[0].col);
        /* the layout keeps the paper's columns (the table has paper numbers), and adds the stand-in one */
        bool standin = false, paper_col = false;
        for (int i = 0; i < e.n_cols; i++) {
            standin |= e.cols[i].standin && strstr(e.cols[i].label, "[quick]");
            paper_col |= !e.cols[i].standin && strcmp(e.cols[i].label, "0.4") == 0;
        }
        CHECK(standin && paper_col, "layout columns");
    }
    experiment_free(&e);
    /* --seeds and --set */
    const char *sets[] = {"epochs=7", "linear_lr = 0.5"};
    ExpandOptions o = {.seeds = 3, .sets = sets, .n_sets = 2};
    CHECK(luaexp_expand(L, p, &o, &e) == 0, "%s", luaexp_error(L));
    CHECK(e.n_runs == 12, "3 seeds everywhere: %d", e.n_runs);
    if (e.n_runs) CHECK(e.runs[0].cfg.epochs == 7 && e.runs[0].cfg.linear_lr == 0.5, "--set wins");
    experiment_free(&e);
    const char *bad_set[] = {"epoch=7"};
    ExpandOptions ob = {.sets = bad_set, .n_sets = 1};
    CHECK(luaexp_expand(L, p, &ob, &e) != 0, "unknown --set key accepted");
    CHECK_HAS(luaexp_error(L), "unknown key 'epoch' (did you mean 'epochs'?)");
    free(p);
}

static void test_dict_sweep_and_table_extends(void) {
    char *p = put("dict.lua", "local base = { dataset = \"fashionmnist\", epochs = 1, batch = 64, lr_scaling = \"linear\" }\n"
                              "return {\n  extends = base,\n  sweep = { seed = { 4, 5 }, beta_base = { 0.1, 0.2 } },\n}\n");
    Experiment e;
    CHECK(expand(p, NULL, &e) == 0, "%s", luaexp_error(L));
    CHECK(e.n_runs == 4, "runs %d", e.n_runs);
    if (e.n_runs == 4) {
        CHECK(e.runs[0].cfg.seed == 4 && e.runs[1].cfg.seed == 5, "an explicit seed axis");
        CHECK(e.runs[0].cfg.batch == 64, "a table base");
    }
    experiment_free(&e);
    free(p);
}

static void test_canonical_hash(void) {
    free(put("base_t.lua", BASE));
    char *a = put("h1.lua", "return { extends = \"base_t.lua\", lr = 0.05, weight_decay = 1e-4 }\n");
    char *b = put("h2.lua", "-- the same config written differently\nreturn {\n  weight_decay = 0.0001, -- same value\n"
                            "  lr = 5e-2,\n  extends = \"base_t.lua\",\n}\n");
    Experiment ea, eb;
    char id_a[256] = "";
    CHECK(expand(a, NULL, &ea) == 0 && expand(b, NULL, &eb) == 0, "%s", luaexp_error(L));
    if (ea.n_runs) snprintf(id_a, sizeof id_a, "%s", ea.runs[0].id);
    if (ea.n_runs && eb.n_runs) {
        CHECK(strcmp(ea.runs[0].hash, eb.runs[0].hash) == 0, "formatting changed the hash");
        CHECK(strcmp(ea.runs[0].id, eb.runs[0].id) == 0, "ids %s %s", ea.runs[0].id, eb.runs[0].id);
        /* canonical numbers: shortest round trip, floats keep a point */
        CHECK_HAS(ea.runs[0].canonical, "  lr = 0.05,\n");
        CHECK_HAS(ea.runs[0].canonical, "  weight_decay = 0.0001,\n");
        CHECK_HAS(ea.runs[0].canonical, "  linear_lr = 30.0,\n");
        CHECK_HAS(ea.runs[0].canonical, "  epochs = 2,\n");
        CHECK_HAS(ea.runs[0].canonical, "  backbone = { block = \"basic\", layers = { 1, 1, 0, 0 }, stem = \"cifar\", "
                                        "width = 16 },\n");
        /* the hash is the SHA-256 of the canonical text */
        char h[65];
        sha256_hex(ea.runs[0].canonical, strlen(ea.runs[0].canonical), h);
        CHECK(strcmp(h, ea.runs[0].hash) == 0, "hash of canonical");
        CHECK(strncmp(ea.runs[0].id, "fashionmnist-rsa-ma-e2-s0-", 26) == 0 &&
                  strstr(ea.runs[0].id, h) == NULL && strncmp(ea.runs[0].id + 26, h, 10) == 0,
              "id %s", ea.runs[0].id);
        /* not identity: data_root, loader_threads */
        CHECK(!strstr(ea.runs[0].canonical, "data_root") && strstr(ea.runs[0].settings, "data_root"), "settings");
        test_note("canonical hash %s", ea.runs[0].hash);
    }
    experiment_free(&ea), experiment_free(&eb);
    /* an edit changes the id; --data and loader threads do not */
    char *c = put("h3.lua", "return { extends = \"base_t.lua\", lr = 0.06, weight_decay = 1e-4 }\n");
    Experiment ec, ed;
    ExpandOptions o = {.data_root = "/elsewhere", .loader_threads = 7};
    CHECK(expand(c, NULL, &ec) == 0 && luaexp_expand(L, a, &o, &ed) == 0, "%s", luaexp_error(L));
    if (ec.n_runs && ed.n_runs) {
        CHECK(strcmp(ec.runs[0].id, id_a) != 0, "an edit kept the id");
        CHECK(strcmp(ed.runs[0].id, id_a) == 0, "--data changed the id");
        CHECK(strcmp(ed.runs[0].cfg.data_root, "/elsewhere") == 0 && ed.runs[0].cfg.loader_threads == 7, "settings");
    }
    experiment_free(&ec), experiment_free(&ed);
    /* editing the base file changes the id too (the resolved config is hashed, not the file) */
    Experiment e1, e2;
    CHECK(expand(a, NULL, &e1) == 0, "%s", luaexp_error(L));
    char *edited = strdup(BASE);
    char *pos = strstr(edited, "subset = 256");
    memcpy(pos, "subset = 128", 12);
    free(put("base_t.lua", edited));
    free(edited);
    CHECK(expand(a, NULL, &e2) == 0, "%s", luaexp_error(L));
    if (e1.n_runs && e2.n_runs) CHECK(strcmp(e1.runs[0].id, e2.runs[0].id) != 0, "a base edit kept the id");
    experiment_free(&e1), experiment_free(&e2);
    free(put("base_t.lua", BASE));
    free(a), free(b), free(c);
}

/* A fixed config's hash: changes only when the canonical format or the schema's keys/defaults change (then every
 * run id changes: update this value deliberately, and say so in the change). */
static void test_hash_golden(void) {
    char *p = put("golden.lua", "return { dataset = \"cifar10\", method = \"rsa\", backend = \"cpu\" }\n");
    Experiment e;
    CHECK(expand(p, NULL, &e) == 0, "%s", luaexp_error(L));
    if (e.n_runs == 1) {
        const char *want = GOLDEN_HASH;
        CHECK(strcmp(e.runs[0].hash, want) == 0, "golden hash changed: %s (canonical:\n%s)", e.runs[0].hash,
              e.runs[0].canonical);
    }
    experiment_free(&e);
    free(p);
}

static void test_schedule_functions(void) {
    free(put("base_t.lua", BASE));
    char *p = put("sched.lua", "return {\n  extends = \"base_t.lua\",\n"
                               "  beta_schedule = function(p) return 0.5 * (1 - p) end,\n"
                               "  lr_schedule = warmup_cosine(0.2, 0.5),\n}\n");
    Experiment e;
    CHECK(expand(p, NULL, &e) == 0, "%s", luaexp_error(L));
    if (e.n_runs == 1) {
        const ExpRun *r = &e.runs[0];
        CHECK(r->beta_fn && r->lr_fn, "functions seen");
        CHECK(r->cfg.beta_schedule == BETA_TABLE && r->cfg.lr_schedule == LR_TABLE, "table schedules");
        CHECK_HAS(r->canonical, "beta_schedule = { probe = \"");
        CHECK_HAS(r->canonical, "source = \"beta_schedule = function(p) return 0.5 * (1 - p) end,\"");
        float *beta = NULL, *lr = NULL;
        CHECK(luaexp_sample(L, r->index, "beta_schedule", 8, 4, 0.05, &beta) == 0, "%s", luaexp_error(L));
        CHECK(luaexp_sample(L, r->index, "lr_schedule", 8, 4, 0.05, &lr) == 0, "%s", luaexp_error(L));
        if (beta && lr) {
            /* beta at p = k/K, k = 1..8; lr at p = (i-1)/K */
            CHECK(beta[0] == 0.4375f && beta[7] == 0.0f, "beta %g %g", beta[0], beta[7]);
            CHECK(lr[0] == 0.0f && lr[2] > lr[1] && lr[4] == 0.2f && lr[7] < 0.2f, "lr %g %g %g %g", lr[0], lr[1],
                  lr[4], lr[7]);
        }
        free(beta), free(lr);
    }
    Experiment e2;
    char *q = put("sched2.lua", "return {\n  extends = \"base_t.lua\",\n"
                                "  beta_schedule = function(p) return 0.5 * (1 - p * p) end,\n"
                                "  lr_schedule = warmup_cosine(0.2, 0.5),\n}\n");
    CHECK(expand(q, NULL, &e2) == 0, "%s", luaexp_error(L));
    if (e.n_runs && e2.n_runs) CHECK(strcmp(e.runs[0].hash, e2.runs[0].hash) != 0, "another function, same hash");
    experiment_free(&e), experiment_free(&e2);
    /* a function that fails names its definition */
    char *bad = put("sched_bad.lua", "return {\n  extends = \"base_t.lua\",\n\n"
                                     "  beta_schedule = function(p) return nil end,\n}\n");
    const char *m = expect_error(bad, NULL);
    CHECK_HAS(m, "sched_bad.lua:4: beta_schedule must return a number");
    free(p), free(q), free(bad);
}

/* A map in the experiment (Figure 3's best points) reaches the report in a fixed order: Lua's own traversal order
 * changes from process to process, and reports must not. */
/* A table with no paper numbers (no report.table) shows, at a reduced scale, only the columns that ran. */
static void test_no_paper_columns_without_paper_numbers(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/experiments/precision.lua", home());
    Experiment e;
    CHECK(expand(path, "quick", &e) == 0, "%s", luaexp_error(L));
    if (test_failed()) return;
    CHECK(e.n_cols == 2, "%d columns", e.n_cols);
    for (int i = 0; i < e.n_cols; i++) CHECK(e.cols[i].standin, "column %s is not the quick scale's", e.cols[i].label);
    experiment_free(&e);
}

static void test_best_points_sorted(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/experiments/fig3_beta.lua", home());
    Experiment e;
    CHECK(expand(path, "quick", &e) == 0, "%s", luaexp_error(L));
    if (test_failed()) return;
    CHECK(strcmp(e.best, "CIFAR-100=0.3;ImageNet-100=0.4;STL-10=0.4;") == 0, "best = \"%s\"", e.best);
    experiment_free(&e);
}

/* Every shipped experiment expands at every scale it has, and its runs pass the trainer's own checks: the schema,
 * lua/toconfig.c and TrainConfig agree. */
static void test_shipped_experiments(void) {
    const char *files[] = {"table1", "table2", "table3", "table4", "table5",
                           "table6", "table7", "fig3_beta", "precision"};
    int total = 0;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[512];
        snprintf(path, sizeof path, "%s/experiments/%s.lua", home(), files[f]);
        const char *scales[] = {"paper", "quick", "smoke"};
        for (int s = 0; s < 3; s++) {
            Experiment e;
            if (expand(path, scales[s], &e) != 0) {
                CHECK(0, "%s at %s: %s", files[f], scales[s], luaexp_error(L));
                continue;
            }
            total += e.n_runs;
            CHECK(e.n_runs > 0, "%s %s: no runs", files[f], scales[s]);
            for (int i = 0; i < e.n_runs; i++) {
                TrainConfig c = e.runs[i].cfg;
                static const float dummy = 0;
                if (e.runs[i].beta_fn) c.beta_table = &dummy, c.beta_table_len = 1;
                if (e.runs[i].lr_fn) c.lr_table = &dummy, c.lr_table_len = 1;
                CHECK(train_config_check(&c) == 0, "%s %s run %d: %s", files[f], scales[s], i + 1, rsa_error_message());
                if (strcmp(scales[s], "paper") != 0)
                    CHECK(strcmp(c.dataset, "fashionmnist") == 0 && !e.runs[i].comparable,
                          "%s %s: reduced scales run on the stand-in", files[f], scales[s]);
            }
            if (strcmp(scales[s], "paper") == 0 && strcmp(files[f], "table1") == 0) {
                /* 4 data sets x 5 arms x 3 seeds + ImageNet-100 x 5 arms x 1 */
                CHECK(e.n_runs == 65, "table1 paper runs %d", e.n_runs);
                CHECK(e.runs[0].cfg.epochs == 200 && e.runs[0].cfg.lr_scaling == LR_SCALE_FLOOR, "CIFAR protocol");
            }
            experiment_free(&e);
        }
    }
    test_note("%d runs across the shipped experiments and scales", total);
}

static void test_help(void) {
    char *h = luaexp_help(L);
    const char *keys[] = {"dataset", "backbone", "beta_base", "beta_schedule", "lr_schedule", "linear_bn_train",
                          "linear_best_epoch", "sync_bn", "pred_hidden", "extends", "sweep", "scales", "seeds"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) CHECK_HAS(h, keys[i]);
    CHECK_HAS(h, "(not part of the run id)");
    free(h);
}

/* precision joins the run id only away from its default (ids made before the key existed stay valid);
 * deterministic never does; both reach the TrainConfig. bf16 and fp16 are mixed precision, another value is an
 * error at its line. */
static void test_precision_keys(void) {
    char *a = put("prec_a.lua", "return { dataset = 'fashionmnist', epochs = 1 }\n");
    char *b = put("prec_b.lua", "return { dataset = 'fashionmnist', epochs = 1, precision = 'tf32', "
                                "deterministic = false }\n");
    char *c = put("prec_c.lua", "return { dataset = 'fashionmnist', epochs = 1, precision = 'fp32', "
                                "deterministic = false, lowp_convolutions = false }\n");
    char *d = put("prec_d.lua", "return { dataset = 'fashionmnist', epochs = 1, precision = 'fp8' }\n");
    char *e = put("prec_e.lua", "return { dataset = 'fashionmnist', epochs = 1, precision = 'bf16' }\n");
    char *f = put("prec_f.lua", "return { dataset = 'fashionmnist', epochs = 1, precision = 'fp16' }\n");
    Experiment ea, eb, ec, ee, ef;
    int ra = expand(a, NULL, &ea), rb = expand(b, NULL, &eb), rc = expand(c, NULL, &ec);
    int re = expand(e, NULL, &ee), rf = expand(f, NULL, &ef);
    CHECK(ra == 0 && rb == 0 && rc == 0 && re == 0 && rf == 0, "%s", luaexp_error(L));
    if (ra == 0 && rb == 0 && rc == 0 && re == 0 && rf == 0) {
        const TrainConfig *ca = &ea.runs[0].cfg, *cb = &eb.runs[0].cfg, *cc = &ec.runs[0].cfg;
        const TrainConfig *ce = &ee.runs[0].cfg, *cf = &ef.runs[0].cfg;
        CHECK(!ca->tf32 && ca->deterministic && ca->precision == PRECISION_FP32 && ca->lowp_convolutions,
              "defaults: fp32, deterministic, 16-bit convolution kernels");
        CHECK(!cc->lowp_convolutions, "lowp_convolutions = false not read");
        CHECK(cb->tf32 && !cb->deterministic && cb->precision == PRECISION_FP32,
              "precision = tf32, deterministic = false not read");
        CHECK(!cc->tf32 && !cc->deterministic, "precision = fp32, deterministic = false not read");
        CHECK(!ce->tf32 && ce->precision == PRECISION_BF16, "precision = bf16 not read");
        CHECK(!cf->tf32 && cf->precision == PRECISION_FP16, "precision = fp16 not read");
        CHECK(strcmp(ea.runs[0].hash, eb.runs[0].hash) != 0, "tf32 must change the run id");
        CHECK(strcmp(ea.runs[0].hash, ee.runs[0].hash) != 0 && strcmp(ee.runs[0].hash, ef.runs[0].hash) != 0,
              "bf16 and fp16 must change the run id");
        CHECK(strcmp(ea.runs[0].hash, ec.runs[0].hash) == 0,
              "the default precision, deterministic or lowp_convolutions changed the id");
        CHECK(!strstr(ea.runs[0].canonical, "precision"), "the default precision is in the canonical text");
        CHECK(strstr(eb.runs[0].canonical, "precision = \"tf32\""), "tf32 missing from the canonical text:\n%s",
              eb.runs[0].canonical);
    }
    if (ra == 0) experiment_free(&ea);
    if (rb == 0) experiment_free(&eb);
    if (rc == 0) experiment_free(&ec);
    if (re == 0) experiment_free(&ee);
    if (rf == 0) experiment_free(&ef);
    const char *m = expect_error(d, NULL);
    CHECK_HAS(m, "prec_d.lua:1:");
    CHECK_HAS(m, "precision");
    CHECK_HAS(m, "bf16");
    free(a), free(b), free(c), free(d), free(e), free(f);
}

/* A run key added after runs existed (hash = "unless_default"): an experiment `base` without it, with it at its
 * default and with it set to `other` (Lua values). The first two must have one run id, the third another, and
 * the name must then be in the canonical text. Returns 0 with the three expanded into e (the caller frees them). */
static int key_variants(const char *key, const char *base, const char *dflt, const char *other, Experiment e[3]) {
    char text[3][512], name[3][64];
    const char *values[3] = {NULL, dflt, other};
    char *paths[3];
    int rc = 0, ok[3];
    for (int i = 0; i < 3; i++) {
        snprintf(name[i], sizeof name[i], "%s_%d.lua", key, i);
        if (values[i]) snprintf(text[i], sizeof text[i], "return { %s, %s = %s }\n", base, key, values[i]);
        else snprintf(text[i], sizeof text[i], "return { %s }\n", base);
        paths[i] = put(name[i], text[i]);
        ok[i] = expand(paths[i], NULL, &e[i]) == 0;
        CHECK(ok[i], "%s: %s", text[i], luaexp_error(L));
        rc |= !ok[i];
        free(paths[i]);
    }
    if (rc) {
        for (int i = 0; i < 3; i++)
            if (ok[i]) experiment_free(&e[i]);
        return -1;
    }
    CHECK(strcmp(e[0].runs[0].hash, e[1].runs[0].hash) == 0, "%s = %s (the default) changed the run id", key, dflt);
    CHECK(strcmp(e[0].runs[0].hash, e[2].runs[0].hash) != 0, "%s = %s must change the run id", key, other);
    CHECK(strstr(e[2].runs[0].canonical, key), "%s missing from the canonical text:\n%s", key, e[2].runs[0].canonical);
    return 0;
}

static void experiments_free(Experiment e[3]) {
    for (int i = 0; i < 3; i++) experiment_free(&e[i]);
}

/* lowp_weight_grads (added after runs existed) joins the run id only when true, and reaches the TrainConfig. */
static void test_lowp_weight_grads_key(void) {
    Experiment e[3];
    if (key_variants("lowp_weight_grads", "dataset = 'fashionmnist', epochs = 1, precision = 'bf16'", "false", "true",
                     e) != 0)
        return;
    CHECK(!e[0].runs[0].cfg.lowp_weight_grads && e[2].runs[0].cfg.lowp_weight_grads, "lowp_weight_grads not read");
    experiments_free(e);
}

/* stem_init (added after runs existed) joins the run id only as "conv2d", reaches the ResNet spec, and the shipped
 * CIFAR-protocol runs (the official BYOL.py's ResNet-18) use it, as does the reduced scales' stand-in (its stem is
 * that CIFAR stem), while ResNet-50 does not. */
static void test_stem_init_key(void) {
    Experiment v[3];
    if (key_variants("stem_init", "dataset = 'fashionmnist', epochs = 1", "'kaiming'", "'conv2d'", v) == 0) {
        CHECK(!v[0].runs[0].cfg.backbone.stem_conv2d_init && v[2].runs[0].cfg.backbone.stem_conv2d_init,
              "stem_init not read");
        experiments_free(v);
    }
    char path[512];
    snprintf(path, sizeof path, "%s/experiments/table1.lua", home());
    const char *scales[] = {"paper", "quick"};
    for (int s = 0; s < 2; s++) {
        Experiment e;
        if (expand(path, scales[s], &e) != 0) {
            CHECK(0, "table1 %s: %s", scales[s], luaexp_error(L));
            continue;
        }
        int conv2d = 0, r18 = 0;
        for (int i = 0; i < e.n_runs; i++) {
            const TrainConfig *cfg = &e.runs[i].cfg;
            bool official_r18 = cfg->backbone.block == BLOCK_BASIC && cfg->backbone.stem == STEM_CIFAR;
            r18 += official_r18, conv2d += cfg->backbone.stem_conv2d_init;
            CHECK(cfg->backbone.stem_conv2d_init == official_r18, "table1 %s run %d (%s): stem_init %s", scales[s],
                  i + 1, cfg->dataset, cfg->backbone.stem_conv2d_init ? "conv2d" : "kaiming");
        }
        /* paper: 4 data sets x 5 arms x 3 seeds (ImageNet-100's ResNet-50 keeps kaiming); quick: every run */
        int expect = s == 0 ? 60 : e.n_runs;
        CHECK(r18 == expect && conv2d == expect, "table1 %s: %d ResNet-18 runs, %d with conv2d", scales[s], r18,
              conv2d);
        experiment_free(&e);
    }
}

/* bn_group (added after runs existed) joins the run id only away from 0; ImageNet-100's runs have the paper's 64
 * images per BN (4 GPUs without SyncBN), ImageNet-1K's none (SyncBN); with sync_bn, or not dividing the batch, the
 * config is refused with a message. */
static void test_bn_group_key(void) {
    Experiment v[3];
    if (key_variants("bn_group", "dataset = 'fashionmnist', epochs = 1", "0", "64", v) == 0) {
        CHECK(v[0].runs[0].cfg.bn_group == 0 && v[2].runs[0].cfg.bn_group == 64, "bn_group not read");
        TrainConfig bad = v[2].runs[0].cfg;
        bad.sync_bn = true;
        CHECK(train_config_check(&bad) != 0 && strstr(rsa_error_message(), "sync_bn"), "bn_group with sync_bn: %s",
              rsa_error_message());
        bad = v[2].runs[0].cfg;
        bad.batch = 96, bad.lr_scaling = LR_SCALE_LINEAR;
        CHECK(train_config_check(&bad) != 0 && strstr(rsa_error_message(), "divisor"), "bn_group 64, batch 96: %s",
              rsa_error_message());
        bad = v[0].runs[0].cfg; /* a TrainConfig made in C (the schema's minimum stops it in Lua) */
        bad.knn_every = 1, bad.knn_k = 0;
        CHECK(train_config_check(&bad) != 0 && strstr(rsa_error_message(), "knn_k 0"), "knn_k 0: %s",
              rsa_error_message());
        bad.knn_every = 0;
        CHECK(train_config_check(&bad) == 0, "knn_k 0 without the monitor: %s", rsa_error_message());
        experiments_free(v);
    }
    const char *files[] = {"table3", "table4"};
    for (int f = 0; f < 2; f++) {
        char path[512];
        snprintf(path, sizeof path, "%s/experiments/%s.lua", home(), files[f]);
        Experiment e;
        if (expand(path, "paper", &e) != 0) {
            CHECK(0, "%s: %s", files[f], luaexp_error(L));
            continue;
        }
        for (int i = 0; i < e.n_runs; i++)
            CHECK(e.runs[i].cfg.bn_group == (f == 0 ? 64 : 0), "%s run %d: bn_group %d", files[f], i + 1,
                  e.runs[i].cfg.bn_group);
        experiment_free(&e);
    }
}

/* Table 3's MoCo v2 keeps ImageNet's queue (65536) and momentum (0.999) at the paper scale and takes the small-data
 * demo's (4096, 0.99) at the reduced scales, whose 8192 images a 65536-key queue would never fill; the other arms
 * are the same runs at both. */
static void test_small_data_moco(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/experiments/table3.lua", home());
    const char *scales[] = {"paper", "quick", "smoke"};
    for (int s = 0; s < 3; s++) {
        Experiment e;
        if (expand(path, scales[s], &e) != 0) {
            CHECK(0, "table3 %s: %s", scales[s], luaexp_error(L));
            continue;
        }
        int moco = 0;
        for (int i = 0; i < e.n_runs; i++) {
            const TrainConfig *cfg = &e.runs[i].cfg;
            if (cfg->method != METHOD_MOCOV2) continue;
            moco++;
            CHECK(cfg->queue_size == (s ? 4096 : 65536) && cfg->tau_base == (s ? 0.99 : 0.999),
                  "table3 %s run %d: queue %d, momentum %g", scales[s], i + 1, cfg->queue_size, cfg->tau_base);
        }
        CHECK(moco == 2, "table3 %s: %d MoCo v2 runs, expected 2 (100 and 200 ep)", scales[s], moco);
        experiment_free(&e);
    }
}

/* Tables 2 and 3 give their reduced scales a "Random init" row; at the quick scale Table 2's protocol is Table 1's, so
 * its random-init runs are Table 1's (same ids: `rsa run` reuses them) and the 0 epochs win over the length column. */
static void test_random_init_rows(void) {
    char t1[512], t2[512];
    snprintf(t1, sizeof t1, "%s/experiments/table1.lua", home());
    snprintf(t2, sizeof t2, "%s/experiments/table2.lua", home());
    const char *scales[] = {"paper", "quick", "smoke"};
    for (int s = 0; s < 3; s++) {
        Experiment a, b;
        if (expand(t1, scales[s], &a) != 0) {
            CHECK(0, "table1 %s: %s", scales[s], luaexp_error(L));
            continue;
        }
        if (expand(t2, scales[s], &b) != 0) {
            CHECK(0, "table2 %s: %s", scales[s], luaexp_error(L));
            experiment_free(&a);
            continue;
        }
        int rows = 0, shared = 0;
        for (int i = 0; i < b.n_runs; i++) {
            if (strcmp(b.runs[i].row, "Random init") != 0) continue;
            rows++;
            CHECK(b.runs[i].cfg.epochs == 0, "table2 %s run %d: random init with %d epochs", scales[s], i + 1,
                  b.runs[i].cfg.epochs);
            for (int j = 0; j < a.n_runs; j++) shared += strcmp(a.runs[j].id, b.runs[i].id) == 0;
        }
        /* paper: none (Table 1 has the floor); reduced: one per length column, one seed each */
        CHECK(rows == (s ? 2 : 0), "table2 %s: %d random-init runs", scales[s], rows);
        if (s == 1) CHECK(shared == rows, "table2 quick: %d of %d random-init runs are Table 1's", shared, rows);
        experiment_free(&a), experiment_free(&b);
    }
}

/* A runaway experiment file ends with a message (file:line for a loop), and the state stays usable. */
static void test_runaway_budgets(void) {
    luaexp_set_limits(L, 50000000LL, (size_t)64 << 20);
    char *loop = put("loop.lua", "local n = 0\nwhile true do\n  n = n + 1\nend\nreturn {}\n");
    const char *m = expect_error(loop, NULL);
    CHECK_HAS(m, "loop.lua:3:");
    CHECK_HAS(m, "million Lua instructions");
    char *grow = put("grow.lua", "local t = {}\nfor i = 1, 1e9 do t[i] = string.rep('x', 100) .. i end\nreturn {}\n");
    m = expect_error(grow, NULL);
    CHECK_HAS(m, "more than 64 MiB of Lua memory");
    char *big = put("big.lua", "local s = string.rep('x', 1 << 30)\nreturn {}\n");
    m = expect_error(big, NULL);
    CHECK_HAS(m, "more than 64 MiB of Lua memory");
    luaexp_set_limits(L, 2000000000LL, (size_t)2 << 30);
    Experiment e; /* still usable after the failures */
    CHECK(expand("experiments/table1.lua", "smoke", &e) == 0, "table1.lua after the budget errors: %s", luaexp_error(L));
    experiment_free(&e);
    free(loop), free(grow), free(big);
}

int main(void) {
    snprintf(dir, sizeof dir, "%s/lua", test_tmpdir());
    if (make_dirs(dir) != 0) return 1;
    char lua_dir[512], exp_dir[512];
    snprintf(lua_dir, sizeof lua_dir, "%s/lua", home());
    snprintf(exp_dir, sizeof exp_dir, "%s/experiments", home());
    char *err = NULL;
    L = luaexp_new(lua_dir, exp_dir, &err);
    if (!L) {
        printf("FAIL luaexp_new: %s\n", err);
        return 1;
    }
    RUN(test_sha256_vectors);
    RUN(test_validation_messages);
    RUN(test_validation_more);
    RUN(test_expansion);
    RUN(test_dict_sweep_and_table_extends);
    RUN(test_canonical_hash);
    RUN(test_hash_golden);
    RUN(test_schedule_functions);
    RUN(test_shipped_experiments);
    RUN(test_best_points_sorted);
    RUN(test_no_paper_columns_without_paper_numbers);
    RUN(test_help);
    RUN(test_runaway_budgets);
    RUN(test_precision_keys);
    RUN(test_lowp_weight_grads_key);
    RUN(test_stem_init_key);
    RUN(test_bn_group_key);
    RUN(test_small_data_moco);
    RUN(test_random_init_rows);
    luaexp_free(L);
    return test_finish();
}
