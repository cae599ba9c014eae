/* Determinism: what gives bit-identical results, and what does not (REPRODUCE.md, "Guarantees").
 *
 * - The same config and seed, run twice in fresh processes, give bit-identical checkpoint tensors and per-step
 *   metrics (steps.tsv without its two timing columns): RSA and MoCo v2 (BYOL too with RSA_TEST_SLOW=1).
 * - The number of loader threads (0 = in the training thread, 1, 3) changes nothing: batches are a pure function of
 *   (seed, epoch, step).
 * - The number of compute threads (OMP_NUM_THREADS 1 and 2; 3 and 4 too with RSA_TEST_SLOW=1): each CPU op run in a
 *   fresh process with each count on
 *   the same inputs. Convolution forward and backward-data, batch norm (train, eval, backward), ReLU, add, pooling,
 *   global average pooling, bias gradients, SGD/EMA updates, the fixed-order sum of squares, and so a whole encoder
 *   forward pass (kNN / linear-evaluation features) are bit-identical for any count. oneDNN's convolution
 *   backward-weights and its sgemm (linear layers, kNN similarities, the MoCo logits) split their reductions by the
 *   thread count, so a training step, and so a training run, is only reproducible at a fixed thread count: the
 *   test reports which of those differed here and checks that a whole run on the reference backend (plain
 *   single-threaded loops) is identical under 1 and 2 threads. */
#include "tests/reliability/relutil.h"
#include "trainer/backend/backend.h"
#include "trainer/eval/features.h"
#include "trainer/train/learner.h"

#include <inttypes.h>

static bool slow;

static char *dir_of(const char *name) {
    static char dirs[16][700];
    static int next;
    char *d = dirs[next++ % 16];
    snprintf(d, sizeof dirs[0], "%s/%s", test_tmpdir(), name);
    rel_rm(d);
    return d;
}

static void run_ok(const RelRun *r, const char *dir, int omp) {
    char final[2048] = "";
    int st = rel_run_child(r, dir, omp, final, sizeof final);
    CHECK(st == 0 && strcmp(final, "done") == 0, "run %s (OMP_NUM_THREADS=%d): status %d: %s", dir, omp, st, final);
}

static void same_config_twice(MethodKind method) {
    RelRun r = rel_run(method);
    char *a = dir_of("twice-a"), *b = dir_of("twice-b");
    run_ok(&r, a, 2);
    run_ok(&r, b, 2);
    CHECK_SAME_RUN(a, b);
}

static void test_same_config_twice_rsa(void) { same_config_twice(METHOD_RSA); }
static void test_same_config_twice_mocov2(void) { same_config_twice(METHOD_MOCOV2); }
static void test_same_config_twice_byol(void) {
    if (slow) same_config_twice(METHOD_BYOL);
    else test_note("BYOL: with RSA_TEST_SLOW=1 (make test-slow)");
}

static void test_loader_threads(void) {
    RelRun r = rel_run(METHOD_RSA);
    r.loader_threads = 0;
    char *base = dir_of("loader-0");
    run_ok(&r, base, 1);
    int counts[2] = {1, 3};
    for (int i = 0; i < 2; i++) {
        r.loader_threads = counts[i];
        char name[32];
        snprintf(name, sizeof name, "loader-%d", counts[i]);
        char *d = dir_of(name);
        run_ok(&r, d, 1);
        CHECK_SAME_RUN(base, d);
    }
}

/* ---- ops under different thread counts (child mode --ops prints "name hash guaranteed") ---- */

static uint64_t hash(const void *p, size_t bytes) {
    const unsigned char *c = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < bytes; i++) h = (h ^ c[i]) * 1099511628211ull;
    return h;
}

#define EMIT(name, guaranteed, ptr, n)                                                                              \
    printf("%s %016" PRIx64 " %d\n", name, hash(ptr, sizeof(float) * (size_t)(n)), guaranteed)

/* At bf16 the values are rounded as a bf16 network hands them in, and the op runs the bf16 kernels where the CPU has
 * them. */
static void ops_conv_at(const Backend *be, Precision p, int n, int ci, int hw, int co, int k, int stride, int pad) {
    Layout in = be->act_layout(ci, hw * hw);
    ConvShape s = conv_shape(n, ci, hw, hw, co, k, stride, pad);
    Layout out = be->act_layout(co, s.ho * s.wo);
    ConvOp *op = be->conv_create(&s, in, out, false);
    be->conv_set_precision(op, p);
    size_t nx = (size_t)n * ci * hw * hw, ny = (size_t)n * co * s.ho * s.wo, nw = (size_t)co * ci * k * k;
    float *x = test_alloc(nx), *y = test_alloc(ny), *w = test_alloc(nw), *dy = test_alloc(ny), *dx = test_alloc(nx),
          *dw = test_alloc(nw);
    fill_normal(x, nx, 1, 1), fill_normal(w, nw, 2, 0.1f), fill_normal(dy, ny, 3, 1);
    be->round_lowp(p, nx, x), be->round_lowp(p, nw, w), be->round_lowp(p, ny, dy);
    be->conv_forward(op, n, x, w, NULL, y);
    be->conv_backward_data(op, n, dy, w, dx);
    be->conv_backward_weights(op, n, x, dy, dw, NULL);
    char name[128];
    snprintf(name, sizeof name, "%sconv-n%d-%dx%dpx-%d-k%ds%d", p == PRECISION_BF16 ? "bf16-" : "", n, ci, hw, co, k,
             stride);
    char f[160];
    snprintf(f, sizeof f, "%s.forward", name), EMIT(f, 1, y, ny);
    snprintf(f, sizeof f, "%s.backward-data", name), EMIT(f, 1, dx, nx);
    snprintf(f, sizeof f, "%s.backward-weights", name), EMIT(f, 0, dw, nw);
    be->conv_destroy(op);
    free(x), free(y), free(w), free(dy), free(dx), free(dw);
}

static void ops_conv(const Backend *be, int n, int ci, int hw, int co, int k, int stride, int pad) {
    ops_conv_at(be, PRECISION_FP32, n, ci, hw, co, k, stride, pad);
}

static void ops_linear(const Backend *be, int n, int in, int out) {
    float *x = test_alloc((size_t)n * in), *w = test_alloc((size_t)out * in), *b = test_alloc(out),
          *y = test_alloc((size_t)n * out), *dy = test_alloc((size_t)n * out), *dx = test_alloc((size_t)n * in),
          *dw = test_alloc((size_t)out * in), *db = test_alloc(out);
    fill_normal(x, (size_t)n * in, 4, 1), fill_normal(w, (size_t)out * in, 5, 0.1f), fill_normal(b, out, 6, 0.1f);
    fill_normal(dy, (size_t)n * out, 7, 1);
    be->linear_forward(n, in, out, x, w, b, y);
    be->linear_backward(n, in, out, x, w, dy, dx, dw, db);
    char f[128];
    snprintf(f, sizeof f, "linear-n%d-%d-%d.forward", n, in, out), EMIT(f, 0, y, (size_t)n * out);
    snprintf(f, sizeof f, "linear-n%d-%d-%d.backward-data", n, in, out), EMIT(f, 0, dx, (size_t)n * in);
    snprintf(f, sizeof f, "linear-n%d-%d-%d.backward-weights", n, in, out), EMIT(f, 0, dw, (size_t)out * in);
    snprintf(f, sizeof f, "linear-n%d-%d-%d.backward-bias", n, in, out), EMIT(f, 1, db, out);
    free(x), free(w), free(b), free(y), free(dy), free(dx), free(dw), free(db);
}

static void ops_bn(const Backend *be, int n, int c, int hw) {
    Layout l = be->act_layout(c, hw);
    BnShape s = {n, c, hw, 1e-5f, PRECISION_FP32};
    size_t nx = (size_t)n * c * hw;
    float *x = test_alloc(nx), *y = test_alloc(nx), *dy = test_alloc(nx), *dx = test_alloc(nx), *g = test_alloc(c),
          *b = test_alloc(c), *m = test_alloc(c), *iv = test_alloc(c), *rm = test_alloc(c), *rv = test_alloc(c),
          *dg = test_alloc(c), *db = test_alloc(c), *ye = test_alloc(nx);
    fill_normal(x, nx, 8, 1), fill_normal(dy, nx, 9, 1), fill_uniform(g, c, 10, 0.5f, 1.5f);
    fill_normal(b, c, 11, 0.1f), fill_uniform(rv, c, 12, 0.5f, 1.5f);
    be->bn_forward_train(&s, l, true, x, g, b, y, m, iv, 0.1f, rm, rv, NULL);
    be->bn_backward(&s, l, true, x, y, dy, g, b, m, iv, dx, dg, db, NULL);
    be->bn_forward_eval(&s, l, false, x, g, b, rm, rv, ye);
    char f[128];
    snprintf(f, sizeof f, "bn-n%d-c%d-hw%d.forward-train", n, c, hw), EMIT(f, 1, y, nx);
    snprintf(f, sizeof f, "bn-n%d-c%d-hw%d.running-stats", n, c, hw), EMIT(f, 1, rv, c);
    snprintf(f, sizeof f, "bn-n%d-c%d-hw%d.backward", n, c, hw), EMIT(f, 1, dx, nx);
    snprintf(f, sizeof f, "bn-n%d-c%d-hw%d.backward-gamma", n, c, hw), EMIT(f, 1, dg, c);
    snprintf(f, sizeof f, "bn-n%d-c%d-hw%d.forward-eval", n, c, hw), EMIT(f, 1, ye, nx);
    free(x), free(y), free(dy), free(dx), free(g), free(b), free(m), free(iv), free(rm), free(rv), free(dg);
    free(db), free(ye);
}

static void ops_misc(const Backend *be) {
    size_t n = (size_t)1 << 21;
    float *a = test_alloc(n), *b = test_alloc(n), *y = test_alloc(n), *buf = test_alloc(n);
    fill_normal(a, n, 13, 1), fill_normal(b, n, 14, 1);
    be->add_forward(n, a, b, y, true, PRECISION_FP32), EMIT("add-relu", 1, y, n);
    be->relu_backward(n, y, b, a), EMIT("relu-backward", 1, a, n);
    be->axpby(n, 0.01f, b, 0.99f, y), EMIT("axpby (EMA)", 1, y, n);
    be->sgd_update(n, y, b, buf, 0.1f, 0.9f, 5e-4f, false), EMIT("sgd-update", 1, y, n);
    double ss = be->sumsq(n, y);
    EMIT("sumsq (LARS norms, the NaN check)", 1, &ss, 2);
    int pn = 64, pc = 64, phw = 16;
    Layout l = be->act_layout(pc, phw * phw);
    PoolShape ps = pool_shape(pn, pc, phw, phw, 3, 2, 1);
    size_t px = (size_t)pn * pc * phw * phw, py = (size_t)pn * pc * ps.ho * ps.wo;
    float *dpx = test_alloc(px);
    be->maxpool_forward(&ps, l, a, y), EMIT("maxpool.forward", 1, y, py);
    be->maxpool_backward(&ps, l, a, b, dpx), EMIT("maxpool.backward", 1, dpx, px);
    be->gap_forward(pn, pc, phw * phw, l, a, y), EMIT("global-average-pool.forward", 1, y, (size_t)pn * pc);
    be->gap_backward(pn, pc, phw * phw, l, b, dpx), EMIT("global-average-pool.backward", 1, dpx, px);
    free(a), free(b), free(y), free(buf), free(dpx);
}

/* The encoder's forward pass over a data set (features_compute: conv forward, BN eval, ReLU, add, pooling). */
static void ops_features(void) {
    RelRun r = rel_run(METHOD_RSA);
    TrainConfig c = rel_config(&r, "");
    c.backbone = (ResNetSpec){BLOCK_BASIC, {1, 1, 1, 0}, 16, STEM_CIFAR, false};
    Learner *l = learner_new(&c, backend_cpu(), 64, 10);
    if (!l) rel_die("learner");
    size_t n = 96;
    uint8_t *px = malloc(n * 32 * 32 * 3);
    for (size_t i = 0; i < n * 32 * 32 * 3; i++) px[i] = (uint8_t)(i * 2654435761u >> 13);
    Dataset *ds = dataset_from_memory("fashionmnist", n, 32, 32, px, NULL, 10);
    LoaderSpec spec;
    if (loader_spec_default("fashionmnist", VIEWS_EVAL_TEST, 1, &spec) != 0) rel_die("spec");
    spec.size = 16, spec.batch = 64, spec.threads = 0, spec.eval = true;
    Features f;
    if (features_compute(l->online, l->feature, ds, &spec, 0, false, true, NULL, &f) != 0) rel_die("features");
    EMIT("encoder-features (eval forward)", 1, f.x, (size_t)f.n * f.dim);
    features_free(&f);
    if (features_compute(l->online, l->feature, ds, &spec, 0, true, false, NULL, &f) != 0) rel_die("features");
    EMIT("encoder-features (train-mode BN)", 1, f.x, (size_t)f.n * f.dim);
    features_free(&f);
    dataset_close(ds);
    free(px);
    learner_free(l);
}

static int ops_child(void) {
    const Backend *be = backend_cpu();
    if (!be) return 3;
    ops_conv(be, 64, 3, 16, 16, 3, 1, 1);    /* stem */
    ops_conv(be, 64, 16, 16, 16, 3, 1, 1);   /* direct (16 channels) */
    ops_conv(be, 64, 32, 16, 32, 3, 1, 1);   /* Winograd */
    ops_conv(be, 64, 16, 16, 32, 3, 2, 1);   /* stride 2 */
    ops_conv(be, 64, 16, 16, 32, 1, 2, 0);   /* downsample */
    ops_conv(be, 128, 64, 32, 64, 3, 1, 1);  /* ResNet-18 CIFAR layer1 */
    ops_conv(be, 128, 128, 16, 256, 3, 2, 1);
    ops_conv(be, 128, 256, 8, 512, 1, 2, 0);
    ops_conv_at(be, PRECISION_BF16, 64, 16, 16, 16, 3, 1, 1); /* oneDNN's bf16 kernels (AVX512-BF16 CPUs) */
    ops_conv_at(be, PRECISION_BF16, 64, 16, 16, 32, 3, 2, 1);
    ops_conv_at(be, PRECISION_BF16, 128, 64, 32, 64, 3, 1, 1);
    ops_conv_at(be, PRECISION_BF16, 128, 256, 8, 512, 1, 2, 0);
    ops_linear(be, 64, 32, 32);
    ops_linear(be, 256, 512, 1024); /* projector */
    ops_linear(be, 256, 1024, 128);
    ops_bn(be, 64, 16, 256);
    ops_bn(be, 128, 64, 1024);
    ops_bn(be, 256, 1024, 1);
    ops_misc(be);
    ops_features();
    fflush(stdout);
    return 0;
}

typedef struct {
    char name[96];
    char hash[20];
    int guaranteed;
} OpHash;

static int ops_run(int omp, OpHash *out, int max) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=%d OMP_WAIT_POLICY=passive /proc/%ld/exe --ops", omp, (long)getpid());
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    int n = 0;
    char line[256];
    while (fgets(line, sizeof line, p) && n < max) {
        char *sp = strrchr(line, ' ');
        if (!sp) continue;
        out[n].guaranteed = atoi(sp + 1);
        *sp = 0;
        sp = strrchr(line, ' ');
        if (!sp) continue;
        snprintf(out[n].hash, sizeof out[n].hash, "%s", sp + 1);
        *sp = 0;
        snprintf(out[n].name, sizeof out[n].name, "%s", line);
        n++;
    }
    return pclose(p) == 0 ? n : -1;
}

static void test_compute_threads_ops(void) {
    enum { MAX = 96 };
    OpHash base[MAX], other[MAX];
    int n = ops_run(1, base, MAX);
    CHECK(n > 40, "the ops child failed (%d lines)", n);
    char differ[2048] = "";
    for (int threads = 2; threads <= (slow ? 4 : 2); threads++) {
        int m = ops_run(threads, other, MAX);
        CHECK(m == n, "%d vs %d ops", m, n);
        for (int i = 0; i < n && i < m; i++) {
            bool same = strcmp(base[i].hash, other[i].hash) == 0;
            if (base[i].guaranteed)
                CHECK(same, "%s: OMP_NUM_THREADS=%d gives other bits than 1", base[i].name, threads);
            else if (!same && !strstr(differ, base[i].name)) {
                size_t k = strlen(differ);
                snprintf(differ + k, sizeof differ - k, "%s%s", k ? ", " : "", base[i].name);
            }
        }
    }
    test_note("thread-count dependent here (documented, not guaranteed): %s", differ[0] ? differ : "none");
}

/* A whole run under 1 and 2 compute threads: the cpu backend may differ (the ops above), the ref backend may not. */
static void test_compute_threads_training(void) {
    RelRun r = rel_run(METHOD_RSA);
    char *a = dir_of("omp1"), *b = dir_of("omp2");
    run_ok(&r, a, 1);
    run_ok(&r, b, 2);
    char ca[800], cb[800], why[512] = "";
    snprintf(ca, sizeof ca, "%s/checkpoint.safetensors", a);
    snprintf(cb, sizeof cb, "%s/checkpoint.safetensors", b);
    bool same = run_same_checkpoint(ca, cb, why, sizeof why);
    test_note("cpu backend, OMP_NUM_THREADS 1 vs 2: %s", same ? "identical" : why);
    /* the reference backend: one short epoch of 4 steps (it is slow) */
    RelRun ref = rel_run(METHOD_RSA);
    ref.epochs = 1, ref.subset = 128, ref.batch = 32;
    snprintf(ref.backend, sizeof ref.backend, "ref");
    char *c = dir_of("ref-omp1"), *d = dir_of("ref-omp2");
    run_ok(&ref, c, 1);
    run_ok(&ref, d, 2);
    CHECK_SAME_RUN(c, d);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--child") == 0) return rel_child(argc, argv);
    if (argc > 1 && strcmp(argv[1], "--ops") == 0) return ops_child();
    slow = getenv("RSA_TEST_SLOW") && atoi(getenv("RSA_TEST_SLOW")) > 0;
    rel_setup();
    RUN(test_same_config_twice_rsa);
    RUN(test_same_config_twice_mocov2);
    RUN(test_same_config_twice_byol);
    RUN(test_loader_threads);
    RUN(test_compute_threads_ops);
    RUN(test_compute_threads_training);
    int rc = test_finish();
    if (rc == 0) rel_rm(test_tmpdir());
    return rc;
}
