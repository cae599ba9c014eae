/* The trainer's steps against PyTorch re-implementations (tests/oracle/rsa_reference.py): RSA and BYOL as the
 * official code, SimCLR, MoCo v2 and SimSiam as their papers. From the same initial weights (and MoCo queue) and the
 * same pre-augmented views, STEPS steps of SGD + EMA + schedules must give the same loss terms at every step and the
 * same weights, BN buffers, momentum buffers (and queue) after the last one.
 *
 * The fixture holds PyTorch's results in float64 and float32. A tensor passes when our error against float64 is at
 * most 4x PyTorch float32's own error, or under the backend's floor. The reference backend (double accumulation)
 * must meet 1e-5 on everything. The fast backends meet 1e-4 on the loss terms; their weights and buffers get 2e-3
 * and their momentum buffers 5e-2, because a float32 forward pass can flip a ReLU whose input lies within rounding
 * error of zero (PyTorch float32 too, by luck of its rounding): one flip moves the gradients below it by ~1e-2
 * (seen: MoCo v2 on the CPU backend, step 2). Their backward passes are checked tightly from identical forward
 * states in tests/nn/test_model.c. */
#include "tests/util/fixture.h"
#include "tests/util/testlib.h"
#include "trainer/core/error.h"
#include "trainer/io/model_io.h"
#include "trainer/train/learner.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const Backend *be;
static const char *fixture_name;
static double floor_tol; /* the backend's floor for loss terms, and for everything on the reference backend */
static bool fast_backend;
static double worst;
static char worst_what[200];

static double meta_num(const StFile *f, const char *key) {
    const char *v = st_meta(f, key);
    if (!v) {
        fprintf(stderr, "fixture lacks metadata %s: regenerate it\n", key);
        exit(1);
    }
    return atof(v);
}

static void compare(const char *what, const float *got, const float *want, const float *want32, size_t n) {
    double err = rel_l2(got, want, n), err32 = want32 ? rel_l2(want32, want, n) : 0;
    double floor = floor_tol;
    if (fast_backend) floor = strncmp(what, "momentum.", 9) == 0 ? 5e-2 : 2e-3;
    double allowed = fmax(4 * err32, floor);
    if (err / allowed > worst) worst = err / allowed, snprintf(worst_what, sizeof worst_what, "%s", what);
    if (!(err <= allowed))
        test_fail_at(__FILE__, __LINE__, "%s %s[%s]: rel_l2 %.3g against float64 (PyTorch float32 %.3g), allowed %.3g",
                     fixture_name, what, be->name, err, err32, allowed);
}

/* Every parameter and BN buffer of m against after.<name>, and (online) the momentum buffers. */
static void compare_model(const StFile *fx, Model *m, const float *momentum) {
    float *w = test_alloc(m->n_weights), *buf = test_alloc(m->n_buf), *mom = test_alloc(m->n_weights);
    be_get_flat(be, m->w, m->n_weights, w);
    be_get_flat(be, m->buf, m->n_buf, buf);
    if (momentum) be_get_flat(be, momentum, m->n_weights, mom);
    char key[256], key32[256];
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        snprintf(key, sizeof key, "after.%s", p->name);
        snprintf(key32, sizeof key32, "after32.%s", p->name);
        float *a = fixture_f32(fx, key, NULL), *a32 = fixture_f32(fx, key32, NULL);
        compare(key, w + p->offset, a, a32, p->numel);
        free(a), free(a32);
        if (!momentum) continue;
        snprintf(key, sizeof key, "momentum.%s", p->name);
        snprintf(key32, sizeof key32, "momentum32.%s", p->name);
        a = fixture_f32(fx, key, NULL), a32 = fixture_f32(fx, key32, NULL);
        compare(key, mom + p->offset, a, a32, p->numel);
        free(a), free(a32);
    }
    for (int b = 0; b < m->n_bns; b++) {
        const char *mod = m->nodes[m->bns[b].node].name;
        const char *leaf[2] = {"running_mean", "running_var"};
        for (int k = 0; k < 2; k++) {
            snprintf(key, sizeof key, "after.%s.%s", mod, leaf[k]);
            snprintf(key32, sizeof key32, "after32.%s.%s", mod, leaf[k]);
            float *a = fixture_f32(fx, key, NULL), *a32 = fixture_f32(fx, key32, NULL);
            compare(key, buf + m->bns[b].stat_offset + (size_t)k * m->bns[b].c, a, a32, (size_t)m->bns[b].c);
            free(a), free(a32);
        }
    }
    free(w), free(buf), free(mom);
}

static void run_fixture(void) {
    StFile fx;
    if (fixture_open(&fx, fixture_name) != 0) return;
    worst = 0;
    const char *method = st_meta(&fx, "method");
    bool rsa = strcmp(method, "rsa") == 0;
    int steps = (int)meta_num(&fx, "steps"), n = (int)meta_num(&fx, "batch"), size = (int)meta_num(&fx, "size");
    TrainConfig cfg;
    CHECK(train_config_defaults(&cfg, "cifar10") == 0, "%s", rsa_error_message());
    cfg.backbone = (ResNetSpec){BLOCK_BASIC, {1, 1, 1, 1}, (int)meta_num(&fx, "width"), STEM_CIFAR, false};
    cfg.proj_hidden = (int)meta_num(&fx, "hidden"), cfg.proj_out = (int)meta_num(&fx, "out");
    cfg.image_size = size;
    const MethodKind kinds[] = {METHOD_RSA, METHOD_BYOL, METHOD_SIMCLR, METHOD_MOCOV2, METHOD_SIMSIAM};
    for (int i = 0; i < 5; i++)
        if (strcmp(method, method_name(kinds[i])) == 0) cfg.method = kinds[i];
    cfg.views = rsa ? VIEWS_MA : VIEWS_AA;
    cfg.beta_base = meta_num(&fx, "beta"), cfg.tau_base = meta_num(&fx, "tau");
    cfg.temperature = meta_num(&fx, "temperature"), cfg.queue_size = (int)meta_num(&fx, "queue");
    cfg.pred_hidden = cfg.method == METHOD_SIMSIAM ? (int)meta_num(&fx, "pred_hidden") : 0;
    if (cfg.method == METHOD_MOCOV2) cfg.tau_base = meta_num(&fx, "moco_m");
    cfg.weight_decay = meta_num(&fx, "weight_decay"), cfg.momentum = meta_num(&fx, "momentum");
    double lr = meta_num(&fx, "lr");
    Learner *l = learner_new(&cfg, be, n, (int64_t)meta_num(&fx, "max_step"));
    CHECK(l != NULL, "%s", rsa_error_message());
    if (!l) return;
    CHECK(model_state_load(l->online, &fx, "", "init.", true) == 0, "%s", rsa_error_message());
    if (l->target) CHECK(model_state_load(l->target, &fx, "", "init.", true) == 0, "%s", rsa_error_message());
    if (l->queue) {
        int64_t qs[2] = {cfg.queue_size, cfg.proj_out};
        CHECK(st_read(&fx, "queue0", ST_F32, 2, qs, l->queue) == 0, "%s", rsa_error_message());
    }
    float *losses = fixture_f32(&fx, "losses", NULL), *losses32 = fixture_f32(&fx, "losses32", NULL);
    for (int s = 0; s < steps; s++) {
        float *views[4] = {0};
        for (int v = 0; v < (rsa ? 4 : 2); v++) {
            char key[64];
            snprintf(key, sizeof key, "views.%d.%d", s, v);
            views[v] = fixture_f32(&fx, key, NULL);
        }
        StepMetrics m;
        CHECK(learner_step(l, views, n, lr, &m) == 0, "%s", rsa_error_message());
        double got[3] = {m.loss, m.loss_w, m.loss_a};
        for (int k = 0; k < (rsa ? 3 : cfg.method == METHOD_BYOL ? 2 : 1); k++) {
            double want = losses[s * 3 + k], e = fabs(got[k] - want) / fabs(want);
            double e32 = fabs(losses32[s * 3 + k] - want) / fabs(want);
            CHECK(e <= fmax(4 * e32, floor_tol), "step %d loss term %d: %.9g, PyTorch float64 %.9g (float32 %.9g)",
                  s + 1, k, got[k], want, losses32[s * 3 + k]);
        }
        for (int v = 0; v < 4; v++) free(views[v]);
    }
    compare_model(&fx, l->online, l->opt.momentum_buf);
    if (l->target) compare_model(&fx, l->target, NULL);
    if (l->queue) {
        float *q = fixture_f32(&fx, "after.queue", NULL), *q32 = fixture_f32(&fx, "after32.queue", NULL);
        compare("queue", l->queue, q, q32, (size_t)cfg.queue_size * cfg.proj_out);
        free(q), free(q32);
    }
    test_note("%s on %s: %d steps; worst error/allowed %.2f (%s)", fixture_name, be->name, steps, worst, worst_what);
    free(losses), free(losses32);
    learner_free(l);
    st_close(&fx);
}

int main(void) {
    const char *names[] = {"ref", "cpu", "cuda"};
    const double floors[] = {1e-5, 1e-4, 1e-4};
    for (int i = 0; i < 3; i++) {
        if (!test_backend_wanted(names[i])) continue;
        be = backend_by_name(names[i]);
        if (!be) {
            test_skip("step_torch[cuda]", "no CUDA backend in this build or no GPU");
            continue;
        }
        floor_tol = floors[i];
        fast_backend = i > 0;
        char label[64];
        const char *methods[] = {"rsa", "byol", "simclr", "mocov2", "simsiam"};
        for (int k = 0; k < 5; k++) {
            char file[64];
            snprintf(file, sizeof file, "step_%s.safetensors", methods[k]);
            fixture_name = file;
            snprintf(label, sizeof label, "%s_step[%s]", methods[k], names[i]);
            test_run(label, run_fixture);
        }
    }
    return test_finish();
}
