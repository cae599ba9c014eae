/* The loader: batches identical for any number of threads, epoch permutations, sharding, drop_last, exact resume,
 * the view modes (MA's aggressive views are made from its weak views), corrupt images in folder data sets,
 * TurboJPEG's DCT scaling measured against the exact path, and batches in a backend's memory. */
#include "tests/util/fixture.h"
#include "tests/util/testlib.h"
#include "trainer/core/error.h"
#include "trainer/core/fileio.h"
#include "trainer/data/data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { N = 101, SIDE = 32 };

static Dataset *mem_ds;

static Dataset *make_memory(void) {
    uint8_t *px = malloc((size_t)N * SIDE * SIDE * 3);
    int32_t labels[N];
    /* smooth, varied content so every op changes something */
    for (int i = 0; i < N; i++) {
        labels[i] = i % 10;
        for (int y = 0; y < SIDE; y++)
            for (int x = 0; x < SIDE; x++)
                for (int c = 0; c < 3; c++)
                    px[(((size_t)i * SIDE + y) * SIDE + x) * 3 + c] =
                        (uint8_t)(128 + 100 * sin(0.2 * x * (c + 1) + 0.13 * y + i) * cos(0.05 * i * y));
    }
    Dataset *ds = dataset_from_memory("synthetic", N, SIDE, SIDE, px, labels, 10);
    free(px);
    return ds;
}

static LoaderSpec spec_for(ViewMode mode, int threads) {
    LoaderSpec s;
    loader_spec_default("cifar10", mode, 42, &s);
    s.batch = 16;
    s.threads = threads;
    return s;
}

typedef struct {
    int steps;
    size_t floats_per_view;
    int views;
    float *data;      /* steps x views x batch x frame */
    int64_t *index;   /* steps x batch */
    int32_t *label;
    int *n;
    double wait;
} Run;

static Run run_epoch(const Dataset *ds, LoaderSpec s, int epoch, int start_step) {
    Run r = {0};
    Loader *l = loader_new(ds, &s);
    CHECK(l != NULL, "%s", rsa_error_message());
    if (!l) return r;
    r.steps = (int)loader_steps_per_epoch(l);
    r.views = view_count(s.mode);
    r.floats_per_view = (size_t)s.batch * 3 * s.size * s.size;
    r.data = calloc((size_t)r.steps * r.views * r.floats_per_view, sizeof(float));
    r.index = calloc((size_t)r.steps * s.batch, sizeof(int64_t));
    r.label = calloc((size_t)r.steps * s.batch, sizeof(int32_t));
    r.n = calloc((size_t)r.steps, sizeof(int));
    CHECK(loader_start(l, epoch, start_step) == 0, "%s", rsa_error_message());
    for (int step = start_step;; step++) {
        Batch *b;
        int rc = loader_next(l, &b);
        CHECK(rc == 0, "%s", rsa_error_message());
        if (rc || !b) break;
        CHECK(b->step == step && b->epoch == epoch, "batch step %d epoch %d, expected %d %d", b->step, b->epoch, step,
              epoch);
        r.n[step] = b->n;
        for (int v = 0; v < r.views; v++)
            memcpy(r.data + ((size_t)step * r.views + v) * r.floats_per_view, b->view[v],
                   (size_t)b->n * 3 * s.size * s.size * sizeof(float));
        memcpy(r.index + (size_t)step * s.batch, b->index, (size_t)b->n * sizeof(int64_t));
        memcpy(r.label + (size_t)step * s.batch, b->label, (size_t)b->n * sizeof(int32_t));
        loader_release(l, b);
    }
    r.wait = loader_stats(l).wait_seconds;
    loader_free(l);
    return r;
}

static void run_free(Run *r) { free(r->data), free(r->index), free(r->label), free(r->n); }

static bool same_steps(const Run *a, const Run *b, int from, int batch) {
    for (int s = from; s < a->steps; s++) {
        if (a->n[s] != b->n[s]) return false;
        size_t f = a->floats_per_view;
        if (memcmp(a->data + (size_t)s * a->views * f, b->data + (size_t)s * b->views * f,
                   (size_t)a->views * f * sizeof(float)) != 0)
            return false;
        if (memcmp(a->index + (size_t)s * batch, b->index + (size_t)s * batch, (size_t)a->n[s] * sizeof(int64_t)))
            return false;
        if (memcmp(a->label + (size_t)s * batch, b->label + (size_t)s * batch, (size_t)a->n[s] * sizeof(int32_t)))
            return false;
    }
    return true;
}

static void test_threads_identical(void) {
    for (ViewMode m = VIEWS_MA; m <= VIEWS_EVAL_TEST; m++) {
        if (m == VIEWS_NONE) continue;
        Run base = run_epoch(mem_ds, spec_for(m, 0), 3, 0);
        for (int t = 1; t <= 4; t++) {
            /* 8 threads: a chunk of one sample, so the threads interleave within each batch */
            LoaderSpec s = spec_for(m, t == 4 ? 8 : t);
            s.prefetch = t == 3 ? 2 : 0; /* fewer slots than threads too */
            Run r = run_epoch(mem_ds, s, 3, 0);
            CHECK(r.steps == base.steps && same_steps(&base, &r, 0, 16), "mode %s: %d threads differ from 0",
                  view_mode_name(m), t);
            run_free(&r);
        }
        run_free(&base);
    }
}

static void test_epoch_order(void) {
    LoaderSpec s = spec_for(VIEWS_MA, 2);
    Run e0 = run_epoch(mem_ds, s, 0, 0), e1 = run_epoch(mem_ds, s, 1, 0);
    CHECK(e0.steps == N / 16 && e0.n[e0.steps - 1] == 16, "drop_last: %d steps", e0.steps);
    bool seen[N] = {false};
    int dup = 0, differ = 0;
    for (int k = 0; k < e0.steps * 16; k++) {
        int64_t i = e0.index[k];
        dup += seen[i];
        seen[i] = true;
        differ += e0.index[k] != e1.index[k];
        CHECK(e0.label[k] == dataset_label(mem_ds, (size_t)i), "label of %lld", (long long)i);
    }
    CHECK(dup == 0, "an epoch repeats %d indices", dup);
    CHECK(differ > 50, "epochs 0 and 1 share their order (%d of %d positions differ)", differ, e0.steps * 16);
    /* the order is data_epoch_permutation's */
    int64_t perm[N];
    data_epoch_permutation(42, false, 1, N, perm);
    CHECK(memcmp(perm, e1.index, (size_t)e1.steps * 16 * sizeof(int64_t)) == 0, "order is not the documented one");
    run_free(&e0), run_free(&e1);
    /* evaluation: file order, last partial batch kept */
    Run t = run_epoch(mem_ds, spec_for(VIEWS_EVAL_TEST, 2), 0, 0);
    CHECK(t.steps == 7 && t.n[6] == N - 96, "eval: %d steps, last %d", t.steps, t.n[6]);
    for (int k = 0; k < N; k++) CHECK(t.index[k] == k, "eval order at %d: %lld", k, (long long)t.index[k]);
    run_free(&t);
}

static void test_shards(void) {
    LoaderSpec s = spec_for(VIEWS_WW, 1);
    s.world = 2;
    s.batch = 10;
    s.rank = 0;
    Run r0 = run_epoch(mem_ds, s, 5, 0);
    s.rank = 1;
    Run r1 = run_epoch(mem_ds, s, 5, 0);
    CHECK(r0.steps == 5 && r1.steps == 5, "steps %d %d (50 samples a rank)", r0.steps, r1.steps);
    int64_t perm[N];
    data_epoch_permutation(42, false, 5, N, perm);
    int count[N] = {0};
    for (int k = 0; k < 50; k++) {
        CHECK(r0.index[k] == perm[2 * k] && r1.index[k] == perm[2 * k + 1], "rank positions at %d", k);
        count[r0.index[k]]++, count[r1.index[k]]++;
    }
    int twice = 0;
    for (int i = 0; i < N; i++) twice += count[i] > 1;
    CHECK(twice == 0, "shards overlap in %d images", twice);
    run_free(&r0), run_free(&r1);
    /* without drop_last the ranks split all 101: 51 and 50 */
    s.drop_last = false;
    s.rank = 0;
    Loader *l = loader_new(mem_ds, &s);
    CHECK(l && loader_samples_per_epoch(l) == 51 && loader_steps_per_epoch(l) == 6, "rank 0 keeps 51");
    loader_free(l);
    /* shard_blocks: three ranks' samples one after the other are one process's, views and all */
    s.world = 1, s.rank = 0;
    Run whole = run_epoch(mem_ds, s, 5, 0);
    s.world = 3, s.shard_blocks = true;
    int64_t at = 0;
    bool same = true;
    for (int r = 0; r < 3; r++) {
        s.rank = r;
        Run part = run_epoch(mem_ds, s, 5, 0);
        int64_t rows = loader_block_start(N, r + 1, 3) - loader_block_start(N, r, 3);
        for (int64_t k = 0; k < rows; k++, at++) {
            int ps = (int)(k / 10), pk = (int)(k % 10), ws = (int)(at / 10), wk = (int)(at % 10);
            same &= part.index[ps * 10 + pk] == whole.index[ws * 10 + wk];
            size_t frame = part.floats_per_view / 10;
            same &= memcmp(part.data + (size_t)ps * part.views * part.floats_per_view + pk * frame,
                           whole.data + (size_t)ws * whole.views * whole.floats_per_view + wk * frame,
                           frame * sizeof(float)) == 0; /* view 0 */
        }
        run_free(&part);
    }
    CHECK(at == N && same, "blocks of 3 ranks differ from one process's order (%lld samples)", (long long)at);
    run_free(&whole);
    s.drop_last = true;
    CHECK(loader_new(mem_ds, &s) == NULL && strstr(rsa_error_message(), "shard_blocks without drop_last"), "%s",
          rsa_error_message());
}

/* groups: a process's batch of 20 in 2 groups holds, group after group, what 2 ranks with batches of 10 take */
static void test_groups_are_ranks(void) {
    LoaderSpec s = spec_for(VIEWS_WW, 1);
    s.batch = 10, s.world = 2;
    Run rank[2];
    for (int r = 0; r < 2; r++) s.rank = r, rank[r] = run_epoch(mem_ds, s, 3, 0);
    s.batch = 20, s.world = 1, s.rank = 0, s.groups = 2;
    Run one = run_epoch(mem_ds, s, 3, 0);
    CHECK(one.steps == 5 && rank[0].steps == 5, "steps %d and %d", one.steps, rank[0].steps);
    bool same = true;
    for (int step = 0; step < one.steps; step++)
        for (int r = 0; r < 2; r++) {
            same &= memcmp(one.index + step * 20 + r * 10, rank[r].index + step * 10, 10 * sizeof(int64_t)) == 0;
            same &= memcmp(one.data + (size_t)step * one.views * one.floats_per_view + (size_t)r * 10 * 3 * 32 * 32,
                           rank[r].data + (size_t)step * rank[r].views * rank[r].floats_per_view,
                           10 * 3 * 32 * 32 * sizeof(float)) == 0; /* view 0: augmentations follow the sample */
        }
    CHECK(same, "the groups are not the ranks' batches");
    run_free(&one), run_free(&rank[0]), run_free(&rank[1]);
    s.groups = 3;
    CHECK(loader_new(mem_ds, &s) == NULL && strstr(rsa_error_message(), "groups"), "%s", rsa_error_message());
}

static void test_resume(void) {
    LoaderSpec s = spec_for(VIEWS_MA, 2);
    Run full = run_epoch(mem_ds, s, 7, 0), part = run_epoch(mem_ds, s, 7, 4);
    CHECK(same_steps(&full, &part, 4, 16), "resuming at step 4 gives other batches");
    run_free(&full), run_free(&part);
    /* start again mid-epoch on the same loader, with batches made ahead */
    Loader *l = loader_new(mem_ds, &s);
    loader_start(l, 7, 0);
    Batch *b;
    loader_next(l, &b);
    loader_release(l, b);
    CHECK(loader_start(l, 7, 3) == 0, "%s", rsa_error_message());
    loader_next(l, &b);
    CHECK(b && b->step == 3, "restart at step 3");
    if (b) loader_release(l, b);
    /* a held batch blocks loader_start */
    loader_next(l, &b);
    CHECK(loader_start(l, 8, 0) != 0 && strstr(rsa_error_message(), "still held"), "held batch not reported");
    loader_release(l, b);
    CHECK(loader_start(l, 8, 0) == 0, "%s", rsa_error_message());
    LoaderStats st = loader_stats(l);
    CHECK(st.batches == 3 && st.wait_seconds >= 0 && st.make_seconds > 0, "stats %lld %g %g", (long long)st.batches,
          st.wait_seconds, st.make_seconds);
    loader_free(l);
}

/* MA: views 0/1 are t1 of streams 0/1; views 2/3 are t2 (streams 2/3) applied to views 0/1. */
static void test_ma_semantics(void) {
    LoaderSpec s = spec_for(VIEWS_MA, 1);
    Run r = run_epoch(mem_ds, s, 2, 0);
    AugScratch sc = {0};
    NormLut lut;
    aug_norm_init(&lut, s.mean, s.std);
    AugRecipe rc = aug_recipe_ssl(32);
    uint8_t buf[2][SIDE * SIDE * 3];
    float *want = test_alloc(3 * SIDE * SIDE);
    int t2_changed = 0;
    for (int k = 0; k < 16; k++) {
        int64_t idx = r.index[k];
        Img src = img_make((uint8_t *)NULL, SIDE, SIDE);
        DataReader *rd = data_reader_new(mem_ds);
        data_reader_image(rd, (size_t)idx, JPEG_FULL, &src);
        ViewParams p[4] = {0};
        for (int v = 0; v < 4; v++) {
            Rng g;
            rng_init(&g, 42, RNG_AUGMENT, 2, (uint32_t)idx, (uint32_t)v);
            if (v < 2) {
                aug_sample_t1(&g, &rc, SIDE, SIDE, &p[v]);
            } else {
                p[v] = p[v - 2];
                aug_sample_t2(&g, &rc, &p[v]);
            }
            Img w = img_make(buf[v % 2], SIDE, SIDE);
            if (v < 2)
                aug_apply_t1(&src, &p[v], &w, &sc);
            else
                aug_apply_t2(&w, &p[v], &sc), t2_changed += p[v].jitter || p[v].gray || p[v].blur;
            aug_normalize(&w, &lut, want);
            const float *got = r.data + (size_t)v * r.floats_per_view + (size_t)k * 3 * SIDE * SIDE;
            CHECK(memcmp(got, want, sizeof(float) * 3 * SIDE * SIDE) == 0, "sample %d view %d differs", k, v);
        }
        data_reader_free(rd);
    }
    CHECK(t2_changed > 8, "t2 did something in only %d views", t2_changed);
    free(want);
    aug_scratch_free(&sc);
    run_free(&r);
    /* AW: view 0 aggressive from stream 0 (t1 then t2), view 1 weak from stream 1 */
    s = spec_for(VIEWS_AW, 0);
    Run aw = run_epoch(mem_ds, s, 0, 0);
    float *out[4] = {test_alloc(3 * SIDE * SIDE), test_alloc(3 * SIDE * SIDE), NULL, NULL};
    DataReader *rd = data_reader_new(mem_ds);
    Img src;
    data_reader_image(rd, (size_t)aw.index[3], JPEG_FULL, &src);
    AugScratch sc2 = {0};
    data_make_views(&s, &src, 0, aw.index[3], &sc2, out);
    CHECK(memcmp(out[0], aw.data + 3 * 3 * SIDE * SIDE, sizeof(float) * 3 * SIDE * SIDE) == 0 &&
              memcmp(out[1], aw.data + aw.floats_per_view + 3 * 3 * SIDE * SIDE, sizeof(float) * 3 * SIDE * SIDE) == 0,
          "data_make_views differs from the loader");
    aug_scratch_free(&sc2);
    data_reader_free(rd);
    free(out[0]), free(out[1]);
    run_free(&aw);
}

static void test_none_mode(void) {
    LoaderSpec s = spec_for(VIEWS_NONE, 2);
    Run r = run_epoch(mem_ds, s, 0, 0);
    CHECK(r.steps == 7 && r.index[5] == 5, "none: file order");
    NormLut lut;
    aug_norm_init(&lut, s.mean, s.std);
    float *want = test_alloc(3 * SIDE * SIDE);
    DataReader *rd = data_reader_new(mem_ds);
    Img src;
    data_reader_image(rd, 5, JPEG_FULL, &src);
    aug_normalize(&src, &lut, want);
    CHECK(memcmp(want, r.data + 5 * 3 * SIDE * SIDE, sizeof(float) * 3 * SIDE * SIDE) == 0, "plain image 5");
    data_reader_free(rd);
    free(want);
    run_free(&r);
    s.size = 28;
    Loader *l = loader_new(mem_ds, &s);
    loader_start(l, 0, 0);
    Batch *b;
    CHECK(loader_next(l, &b) != 0 && strstr(rsa_error_message(), "mode none needs 28x28 images"), "%s",
          rsa_error_message());
    loader_free(l);
}

static void test_folder_loader(void) {
    char root[1024], path[2048];
    snprintf(root, sizeof root, "%s/loader_root", test_tmpdir());
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 6; i++) {
            snprintf(path, sizeof path, "%s/imagenet/train/n0%d", root, c);
            make_dirs(path);
            snprintf(path, sizeof path, "%s/imagenet/train/n0%d/%d.JPEG", root, c, i);
            write_test_jpeg(path, 180 + 37 * i, 150 + 23 * c, c * 6 + i);
        }
    DataOptions o = {.root = root};
    Dataset *ds = dataset_open("imagenet", "train", &o);
    CHECK(ds != NULL, "%s", rsa_error_message());
    if (!ds) return;
    LoaderSpec s;
    loader_spec_default("imagenet", VIEWS_MA, 9, &s);
    s.batch = 4;
    s.size = 64;
    s.threads = 0;
    Run a = run_epoch(ds, s, 0, 0);
    s.threads = 2;
    Run b = run_epoch(ds, s, 0, 0);
    CHECK(a.steps == 4 && same_steps(&a, &b, 0, 4), "folder data set: threads change the batches");
    /* eval-test: Resize(256) + CenterCrop(224) on real decodes */
    LoaderSpec e;
    loader_spec_default("imagenet", VIEWS_EVAL_TEST, 9, &e);
    e.batch = 5;
    Run t = run_epoch(ds, e, 0, 0);
    CHECK(t.steps == 4 && t.n[3] == 3, "eval keeps the last partial batch");
    run_free(&t);
    /* DCT scaling: same crops, reduced decode; measure the difference in intensity levels */
    s.jpeg_dct_scale = true;
    s.size = 32;
    s.threads = 1;
    Run dct = run_epoch(ds, s, 0, 0);
    s.jpeg_dct_scale = false;
    Run exact = run_epoch(ds, s, 0, 0);
    double worst = 0, sum = 0;
    size_t n = (size_t)exact.steps * exact.views * exact.floats_per_view;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)dct.data[i] - exact.data[i]) * 255 * 0.225;
        worst = fmax(worst, d);
        sum += d;
    }
    test_note("JPEG DCT scaling vs full decode (MA views at 32 px from 180-365 px JPEGs): max %.1f, mean %.2f levels",
              worst, sum / n);
    CHECK(sum / n < 6, "DCT scaling drifts: mean %.2f levels", sum / n);
    run_free(&dct), run_free(&exact);
    /* a corrupt file: the loader fails naming it, or with allow_corrupt replaces it and counts it */
    snprintf(path, sizeof path, "%s/imagenet/train/n01/2.JPEG", root);
    size_t size;
    char *bytes = read_file(path, &size);
    const void *pieces[1] = {bytes};
    size_t sizes[1] = {size / 2};
    atomic_write(path, pieces, sizes, 1);
    free(bytes);
    s.threads = 2;
    s.batch = 18;
    s.size = 32;
    Loader *l = loader_new(ds, &s);
    loader_start(l, 0, 0);
    Batch *bt;
    CHECK(loader_next(l, &bt) != 0, "corrupt JPEG not reported");
    CHECK(strstr(rsa_error_message(), "n01/2.JPEG: truncated JPEG: the data ends at byte") != NULL, "%s",
          rsa_error_message());
    loader_free(l);
    dataset_close(ds);
    o.allow_corrupt = true;
    ds = dataset_open("imagenet", "train", &o);
    for (int threads = 0; threads <= 10; threads += 5) { /* 5 and 10 threads share the batch of 18 */
        s.threads = threads;
        l = loader_new(ds, &s);
        loader_start(l, 0, 0);
        CHECK(loader_next(l, &bt) == 0 && bt && bt->n == 18, "%s", rsa_error_message());
        int bad = 0, twice = 0;
        for (int k = 0; bt && k < 18; k++) {
            bad += bt->index[k] == 8; /* n01/2.JPEG */
            for (int j = 0; j < k; j++) twice += bt->index[j] == bt->index[k];
        }
        CHECK(bad == 0 && twice == 1, "the corrupt image must be replaced by the next one (%d, %d)", bad, twice);
        LoaderStats st = loader_stats(l);
        CHECK(st.skipped == 1 && dataset_skipped(ds) == 1, "skipped %zu / %zu", st.skipped, dataset_skipped(ds));
        if (bt) loader_release(l, bt);
        loader_free(l);
    }
    dataset_close(ds);
    run_free(&a), run_free(&b);
}

static void test_spec_defaults(void) {
    LoaderSpec s;
    CHECK(loader_spec_default("stl10", VIEWS_NONE, 1, &s) == 0 && s.size == 96 && !s.shuffle && !s.drop_last,
          "stl10 none: native 96");
    CHECK(loader_spec_default("stl10", VIEWS_EVAL_TEST, 1, &s) == 0 && s.size == 64 && s.resize == 0 && s.eval,
          "stl10 eval-test: CenterCrop(64)");
    CHECK(loader_spec_default("imagenet100", VIEWS_EVAL_TEST, 1, &s) == 0 && s.size == 224 && s.resize == 256,
          "imagenet eval-test: Resize(256) + CenterCrop(224)");
    CHECK(loader_spec_default("cifar100", VIEWS_EVAL_TRAIN, 1, &s) == 0 && s.shuffle && !s.drop_last && s.eval,
          "eval-train keeps the last batch");
    CHECK(loader_spec_default("tinyimagenet", VIEWS_MA, 1, &s) == 0 && s.size == 64 && s.drop_last && !s.eval &&
              fabsf(s.mean[0] - 0.4802f) < 1e-6f && fabsf(s.std[2] - 0.2262f) < 1e-6f,
          "tiny imagenet MA");
    CHECK(loader_spec_default("fashionmnist", VIEWS_EVAL_TEST, 1, &s) == 0 && s.size == 32 && s.resize == 32,
          "fashion-mnist eval-test: Resize(32)");
    CHECK(loader_spec_default("svhn", VIEWS_MA, 1, &s) != 0, "unknown data set");
}

/* Batches live in the memory the spec's hooks give (a backend's pinned memory): every slot from them, all of it
 * handed back, the same batches as in the default memory. */
static int hook_live, hook_allocs;
static size_t hook_bytes;

static void *counting_alloc(size_t bytes) {
    hook_live++, hook_allocs++, hook_bytes += bytes;
    return calloc(1, bytes ? bytes : 1);
}

static void counting_free(void *p, size_t bytes) {
    hook_live--, hook_bytes -= bytes;
    free(p);
}

static void test_memory_hooks(void) {
    Run base = run_epoch(mem_ds, spec_for(VIEWS_MA, 2), 1, 0);
    LoaderSpec s = spec_for(VIEWS_MA, 2);
    s.prefetch = 3;
    s.host_alloc = counting_alloc, s.host_free = counting_free;
    Run r = run_epoch(mem_ds, s, 1, 0);
    CHECK(hook_allocs == 3, "%d slots from the hooks, want the 3 prefetch slots", hook_allocs);
    CHECK(hook_live == 0 && hook_bytes == 0, "%d slots (%zu bytes) not handed back", hook_live, hook_bytes);
    CHECK(r.steps == base.steps && same_steps(&base, &r, 0, 16), "batches differ in the hooks' memory");
    run_free(&r);
    /* the threads share each batch, so the memory does not grow with them: 3 slots by default for any count */
    hook_allocs = 0;
    s.threads = 12, s.prefetch = 0;
    Run many = run_epoch(mem_ds, s, 1, 0);
    CHECK(hook_allocs == 3, "%d slots with 12 threads, want 3", hook_allocs);
    CHECK(many.steps == base.steps && same_steps(&base, &many, 0, 16), "12 threads change the batches");
    run_free(&many), run_free(&base);
    s.host_free = NULL;
    CHECK(loader_new(mem_ds, &s) == NULL && strstr(rsa_error_message(), "host_alloc and host_free"), "%s",
          rsa_error_message());
}

/* loader_threads = "auto": 2 on the cpu backend; a GPU process's share of the node, less its own thread */
static void test_auto_threads(void) {
    CHECK(loader_threads_for(false, 64, 64, 1) == 2, "cpu backend: 2");
    CHECK(loader_threads_for(true, 224, 224, 8) == 27, "8 GPUs on 224 cores: %d", loader_threads_for(true, 224, 224, 8));
    CHECK(loader_threads_for(true, 7, 224, 8) == 6, "bound to 7 cores: %d", loader_threads_for(true, 7, 224, 8));
    CHECK(loader_threads_for(true, 2, 2, 1) == 2 && loader_threads_for(true, 512, 512, 1) == 32, "clamped to [2, 32]");
    CHECK(loader_threads_for(true, 16, 16, 0) == 15, "no process count: the node's");
    int here = loader_threads_auto(true, 1);
    CHECK(here >= 2 && here <= 32, "auto here: %d", here);
    test_note("loader_threads auto on this machine: %d for one GPU process, %d on the cpu backend", here,
              loader_threads_auto(false, 1));
}

static void test_bad_specs(void) {
    LoaderSpec s = spec_for(VIEWS_MA, 1);
    s.batch = 500;
    CHECK(loader_new(mem_ds, &s) == NULL && strstr(rsa_error_message(), "make no batch of 500"), "%s",
          rsa_error_message());
    s = spec_for(VIEWS_MA, 1);
    s.rank = 2, s.world = 2;
    CHECK(loader_new(mem_ds, &s) == NULL && strstr(rsa_error_message(), "rank 2 of world 2"), "%s",
          rsa_error_message());
    s = spec_for(VIEWS_MA, 1);
    s.std[1] = 0;
    CHECK(loader_new(mem_ds, &s) == NULL && strstr(rsa_error_message(), "std[1]"), "%s", rsa_error_message());
    ViewMode m;
    CHECK(view_mode_parse("aw", &m) == 0 && m == VIEWS_AW && view_mode_parse("xx", &m) != 0, "mode names");
    Loader *l = loader_new(mem_ds, &(LoaderSpec){.mode = VIEWS_MA, .size = 32, .std = {1, 1, 1}, .batch = 8});
    Batch *b;
    CHECK(l && loader_next(l, &b) != 0 && strstr(rsa_error_message(), "loader_start"), "next before start");
    loader_free(l);
}

int main(void) {
    mem_ds = make_memory();
    RUN(test_threads_identical);
    RUN(test_epoch_order);
    RUN(test_shards);
    RUN(test_groups_are_ranks);
    RUN(test_resume);
    RUN(test_ma_semantics);
    RUN(test_none_mode);
    RUN(test_folder_loader);
    RUN(test_spec_defaults);
    RUN(test_memory_hooks);
    RUN(test_auto_threads);
    RUN(test_bad_specs);
    dataset_close(mem_ds);
    return test_finish();
}
