/* How a step reaches its views on a backend that computes in its own memory (cuda): the learner starts every view's
 * upload at the top of the step (upload_async) and waits for each one (wait_upload) just before its first use.
 *
 * Here that protocol runs on the CPU: "staged" is the cpu backend claiming device memory (host_memory false), so the
 * learner takes its device paths, and its background uploads are simulated in the two extremes a GPU allows. Eager:
 * the copy happens at once. Lazy: the destination holds NaN until the slot is waited for, and the copy happens only
 * then, so a pass that reads a view before waiting for it, or waits on the wrong slot, trains on NaN. Every method
 * must give the cpu backend's losses and weights bit for bit both ways. */
#include "tests/util/testlib.h"
#include "trainer/core/error.h"
#include "trainer/train/learner.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BATCH = 8, SIZE = 16, STEPS = 3 };

typedef struct {
    void *dst;
    const void *src;
    size_t bytes;
    bool pending;
} Pending;

static bool lazy, ignore_waits;
static Pending pending[UPLOAD_SLOTS];
static int uploads, waits;

static void staged_upload_async(int slot, void *dst, const void *src, size_t bytes) {
    RSA_ASSERT(slot >= 0 && slot < UPLOAD_SLOTS);
    uploads++;
    if (!lazy) {
        memcpy(dst, src, bytes);
        return;
    }
    float *d = dst;
    for (size_t i = 0; i < bytes / sizeof(float); i++) d[i] = NAN;
    pending[slot] = (Pending){dst, src, bytes, true};
}

static void staged_wait_upload(int slot) {
    RSA_ASSERT(slot >= 0 && slot < UPLOAD_SLOTS);
    waits++;
    Pending *p = &pending[slot];
    if (p->pending && !ignore_waits) memcpy(p->dst, p->src, p->bytes);
    p->pending = false;
}

static Backend staged(void) {
    Backend b = *backend_cpu();
    b.name = "staged";
    b.host_memory = false;
    b.upload_async = staged_upload_async, b.wait_upload = staged_wait_upload;
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
    cfg.backbone = (ResNetSpec){BLOCK_BASIC, {1, 1, 0, 0}, 16, STEM_CIFAR};
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
        lazy = mode == 1, ignore_waits = false, uploads = waits = 0;
        bool ok = train(&cfg, &b, views, &got);
        CHECK(ok && same(&got, &want), "%s, %s uploads: not the cpu backend's losses and weights (%s)",
              method_name(method), lazy ? "lazy" : "eager", ok ? "trained" : rsa_error_message());
        CHECK(uploads == STEPS * nviews && waits >= uploads, "%d uploads, %d waits for %d steps of %d views", uploads,
              waits, STEPS, nviews);
        outcome_free(&got);
    }
    /* the harness can tell: a backend whose waits deliver nothing leaves the passes NaN */
    lazy = ignore_waits = true;
    bool ok = train(&cfg, &b, views, &got);
    CHECK(!ok || !same(&got, &want), "%s: uploads that never arrive went unnoticed", method_name(method));
    lazy = ignore_waits = false;
    outcome_free(&got), outcome_free(&want);
    for (int s = 0; s < STEPS; s++)
        for (int v = 0; v < nviews; v++) free(data[s][v]);
}

static void test_rsa(void) { method_alike(METHOD_RSA); }
static void test_byol(void) { method_alike(METHOD_BYOL); }
static void test_simclr(void) { method_alike(METHOD_SIMCLR); }
static void test_mocov2(void) { method_alike(METHOD_MOCOV2); }
static void test_simsiam(void) { method_alike(METHOD_SIMSIAM); }

int main(void) {
    RUN(test_rsa);
    RUN(test_byol);
    RUN(test_simclr);
    RUN(test_mocov2);
    RUN(test_simsiam);
    return test_finish();
}
