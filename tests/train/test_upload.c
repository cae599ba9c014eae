/* The GPU's code paths, run on the CPU through the "staged" backend (trainer/backend/backend_staged.c: the cpu
 * backend's ops behind device memory, background uploads landing only when waited for, NaN until then).
 *
 * The learner's uploads: a step starts every view's upload at its top (upload_async) and waits for each one
 * (wait_upload) just before its first use. Every method must give the cpu backend's losses and weights bit for bit
 * with uploads landing at once and landing only at the wait; a backend whose waits deliver nothing must be noticed.
 *
 * The trainer's: a run on the staged backend, stopped and resumed (checkpoints written from and read into device
 * memory), with the kNN monitor (features uploaded batch by batch, as for the linear evaluation), ends with the cpu
 * backend's checkpoint, metrics and accuracy. Data parallel on it (gradients staged through the host) is in
 * tests/dist/test_mpi.c. Both give back every byte of device memory they took (a leak on the GPU would not show
 * otherwise). SyncBN's wiring: on a device backend its sums go to the run's device all-reduce (NCCL's) when there
 * is one. */
#include "tests/util/runcmp.h"
#include "tests/util/testlib.h"
#include "trainer/core/error.h"
#include "trainer/train/learner.h"
#include "trainer/train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BATCH = 8, SIZE = 16, STEPS = 3 };

/* Variants of the staged backend (trainer/backend/backend_staged.c, whose uploads land only at the wait): eager
 * uploads land at once; broken waits deliver nothing. Counted, to see the learner issue and wait for each view. */
static bool eager, ignore_waits;
static int uploads, waits;

static void counted_upload_async(int slot, void *dst, const void *src, size_t bytes) {
    uploads++;
    if (eager) memcpy(dst, src, bytes);
    else backend_staged()->upload_async(slot, dst, src, bytes);
}

static void counted_wait_upload(int slot) {
    waits++;
    if (!eager && !ignore_waits) backend_staged()->wait_upload(slot);
}

static Backend staged(void) {
    Backend b = *backend_staged();
    b.upload_async = counted_upload_async, b.wait_upload = counted_wait_upload;
    return b;
}

typedef struct {
    double loss[STEPS];
    float *w, *target_w;
    size_t n, target_n;
} Outcome;

/* false when a step fails (a loss that is not finite) */
static bool train(const TrainConfig *cfg, const Backend *be, float *const *const *views, Outcome *o) {
    memset(o, 0, sizeof *o);
    Learner *l = learner_new(cfg, be, BATCH, STEPS);
    CHECK(l != NULL, "%s", rsa_error_message());
    if (!l) return false;
    bool ok = true;
    for (int s = 0; s < STEPS && ok; s++) {
        StepMetrics m;
        ok = learner_step(l, views[s], BATCH, 0.05, &m) == 0;
        o->loss[s] = m.loss;
    }
    o->n = l->online->n_weights, o->w = test_alloc(o->n);
    be->download(o->w, l->online->w, sizeof(float) * o->n);
    if (l->target) {
        o->target_n = l->target->n_weights, o->target_w = test_alloc(o->target_n);
        be->download(o->target_w, l->target->w, sizeof(float) * o->target_n);
    }
    learner_free(l);
    return ok;
}

static void outcome_free(Outcome *o) { free(o->w), free(o->target_w); }

static bool same(const Outcome *a, const Outcome *b) {
    return memcmp(a->loss, b->loss, sizeof a->loss) == 0 && a->n == b->n && a->target_n == b->target_n &&
           memcmp(a->w, b->w, sizeof(float) * a->n) == 0 &&
           (!a->target_n || memcmp(a->target_w, b->target_w, sizeof(float) * a->target_n) == 0);
}

static void method_alike(MethodKind method) {
    TrainConfig cfg;
    CHECK(train_config_defaults(&cfg, "cifar10") == 0, "%s", rsa_error_message());
    cfg.method = method;
    cfg.views = method == METHOD_RSA ? VIEWS_MA : VIEWS_AA;
    cfg.backbone = (ResNetSpec){BLOCK_BASIC, {1, 1, 0, 0}, 16, STEM_CIFAR, false};
    cfg.proj_hidden = 32, cfg.proj_out = 16, cfg.image_size = SIZE;
    cfg.pred_hidden = method == METHOD_SIMSIAM ? 16 : cfg.pred_hidden;
    cfg.queue_size = 32;
    int nviews = method == METHOD_RSA ? 4 : 2;
    size_t image = (size_t)BATCH * 3 * SIZE * SIZE;
    float *data[STEPS][4] = {{0}};
    float *const *views[STEPS];
    for (int s = 0; s < STEPS; s++) {
        for (int v = 0; v < nviews; v++) {
            data[s][v] = test_alloc(image);
            fill_normal(data[s][v], image, 100 * (uint64_t)s + (uint64_t)v, 1.0f);
        }
        views[s] = data[s];
    }
    Outcome want, got;
    CHECK(train(&cfg, backend_cpu(), views, &want), "cpu backend: %s", rsa_error_message());
    Backend b = staged();
    for (int mode = 0; mode < 2; mode++) {
        eager = mode == 0, ignore_waits = false, uploads = waits = 0;
        bool ok = train(&cfg, &b, views, &got);
        CHECK(ok && same(&got, &want), "%s, %s uploads: not the cpu backend's losses and weights (%s)",
              method_name(method), eager ? "eager" : "lazy", ok ? "trained" : rsa_error_message());
        CHECK(uploads == STEPS * nviews && waits >= uploads, "%d uploads, %d waits for %d steps of %d views", uploads,
              waits, STEPS, nviews);
        outcome_free(&got);
    }
    /* the harness can tell: a backend whose waits deliver nothing leaves the passes NaN */
    eager = false, ignore_waits = true;
    bool ok = train(&cfg, &b, views, &got);
    CHECK(!ok || !same(&got, &want), "%s: uploads that never arrive went unnoticed", method_name(method));
    ignore_waits = false;
    CHECK(backend_staged_held_bytes() == 0, "%s: the learner left %zu bytes of device memory behind",
          method_name(method), backend_staged_held_bytes());
    outcome_free(&got), outcome_free(&want);
    for (int s = 0; s < STEPS; s++)
        for (int v = 0; v < nviews; v++) free(data[s][v]);
}

static void test_rsa(void) { method_alike(METHOD_RSA); }
static void test_byol(void) { method_alike(METHOD_BYOL); }
static void test_simclr(void) { method_alike(METHOD_SIMCLR); }
static void test_mocov2(void) { method_alike(METHOD_MOCOV2); }
static void test_simsiam(void) { method_alike(METHOD_SIMSIAM); }

/* A whole run on the staged backend, stopped in its second epoch and resumed, against an uninterrupted cpu run; the
 * kNN monitor reads features the way the linear evaluation does (features.c). */
static void trainer_alike(MethodKind method, Precision precision) {
    TrainConfig c;
    CHECK(train_config_defaults(&c, "fashionmnist") == 0, "%s", rsa_error_message());
    c.backbone = (ResNetSpec){BLOCK_BASIC, {1, 1, 0, 0}, 16, STEM_CIFAR, false}; /* 16k channels: oneDNN's blocked kernels */
    c.proj_hidden = 32, c.proj_out = 16, c.image_size = 16;
    c.subset = 256, c.batch = 32, c.epochs = 2, c.lr_scaling = LR_SCALE_LINEAR;
    c.method = method, c.views = method == METHOD_RSA ? VIEWS_MA : VIEWS_AA, c.precision = precision;
    c.knn_every = 2, c.linear_epochs = 0, c.eval_subset = 512, c.loader_threads = 1, c.seed = 7;
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/cpu-%s-%s", test_tmpdir(), method_name(method), precision_name(precision));
    snprintf(b, sizeof b, "%s/staged-%s-%s", test_tmpdir(), method_name(method), precision_name(precision));
    TrainResult ra, rb;
    TrainHooks none = {0}, eleven = {.max_steps = 11};
    CHECK(train_run(&c, a, "h", &none, &ra) == 0, "cpu: %s", rsa_error_message());
    snprintf(c.backend, sizeof c.backend, "staged");
    CHECK(train_run(&c, b, "h", &eleven, &rb) == 1, "staged, first part: %s", rsa_error_message());
    CHECK(train_run(&c, b, "h", &none, &rb) == 0, "staged: %s", rsa_error_message());
    CHECK_SAME_RUN(a, b);
    CHECK(backend_staged_held_bytes() == 0, "the run left %zu bytes of device memory behind",
          backend_staged_held_bytes());
    CHECK(ra.knn_top1 > 0 && ra.knn_top1 == rb.knn_top1, "kNN top-1: cpu %.4f, staged %.4f", ra.knn_top1,
          rb.knn_top1);
}

/* SyncBN's sums on a device backend go through the run's device all-reduce when it has one (NCCL's, for the cuda
 * backend, which keeps them on the GPU), else through the host; a host-memory backend always sums on the host. */
static int device_calls;
static const double *device_buf;
static void host_f64(Dist *d, double *buf, size_t n) { (void)d, (void)buf, (void)n; }
static void device_f64(Dist *d, double *buf, size_t n) {
    (void)d, (void)n;
    device_calls++, device_buf = buf;
}

static void test_sync_bn_wiring(void) {
    TrainConfig cfg;
    CHECK(train_config_defaults(&cfg, "cifar10") == 0, "%s", rsa_error_message());
    cfg.method = METHOD_BYOL, cfg.views = VIEWS_AA;
    cfg.backbone = (ResNetSpec){BLOCK_BASIC, {1, 1, 0, 0}, 16, STEM_CIFAR, false};
    cfg.proj_hidden = 32, cfg.proj_out = 16, cfg.image_size = SIZE;
    Backend b = staged();
    const struct {
        const Backend *be;
        bool device_sum, sync_bn, want_sync, want_device;
    } cases[] = {
        {&b, true, true, true, true},             /* a device backend in a run with NCCL */
        {&b, false, true, true, false},           /* ... without a device all-reduce */
        {backend_cpu(), true, true, true, false}, /* a host-memory backend */
        {&b, true, false, false, false},          /* SyncBN off */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Dist d = {.name = "fake", .world = 2, .allreduce_f64 = host_f64, .local_size = 2,
                  .allreduce_device_f64 = cases[i].device_sum ? device_f64 : NULL};
        Learner *l = learner_new(&cfg, cases[i].be, BATCH, STEPS);
        CHECK(l && learner_set_dist(l, &d, cases[i].sync_bn) == 0, "case %zu: %s", i, rsa_error_message());
        if (!l) continue;
        const BnSync *s = l->online->bn_sync;
        CHECK((s != NULL) == cases[i].want_sync && l->target->bn_sync == s, "case %zu: SyncBN %s", i,
              s ? "on" : "off");
        if (s) {
            CHECK((s->allreduce_device != NULL) == cases[i].want_device, "case %zu: device all-reduce %s", i,
                  s->allreduce_device ? "wired" : "missing");
            if (s->allreduce_device) {
                double sums[3] = {1, 2, 3};
                device_calls = 0;
                s->allreduce_device(s->ctx, sums, 3);
                CHECK(device_calls == 1 && device_buf == sums, "case %zu: the sums did not reach the run's device "
                      "all-reduce (%d calls)", i, device_calls);
            }
        }
        learner_free(l);
    }
}

static void test_trainer_rsa(void) { trainer_alike(METHOD_RSA, PRECISION_FP32); }
static void test_trainer_mocov2_fp16(void) { trainer_alike(METHOD_MOCOV2, PRECISION_FP16); }

int main(void) {
    RUN(test_rsa);
    RUN(test_byol);
    RUN(test_simclr);
    RUN(test_mocov2);
    RUN(test_simsiam);
    RUN(test_sync_bn_wiring);
    RUN(test_trainer_rsa);
    RUN(test_trainer_mocov2_fp16);
    return test_finish();
}
