/* The linear evaluation's head and the kNN monitor against the official loops run by PyTorch on the same features
 * (tests/oracle/make_eval_fixtures.py): eval_single.py's head (SMALL), eval_multi.py's (MEANSHIFT: its
 * standardisation, weight decay and kept last batch) and common/tools.py's knn_predict; and that our parallel
 * loops in them do not depend on the number of threads (at these sizes oneDNN's sgemm does not split either). */
#include "tests/util/fixture.h"
#include "tests/util/testlib.h"
#include "trainer/eval/knn.h"
#include "trainer/eval/linear.h"
#include "trainer/eval/linear_head.h"
#include "trainer/ops/cpu/ops_cpu.h"
#include "trainer/ops/ref/ops_ref.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ASSERT(cond) CHECK(cond, "%s", #cond)

static StFile fx;
static bool have_fx;

static void open_fixture(void) { have_fx = fixture_open(&fx, "eval.safetensors") == 0; }

/* Fixture rows x[n][dim] and their int64 labels y[n] as Features (features_free frees them). */
static Features load_features(const char *xname, const char *yname, int dim) {
    Features f = {0};
    size_t count;
    f.x = fixture_f32(&fx, xname, &count);
    f.dim = dim, f.n = (int64_t)(count / (size_t)dim);
    f.label = malloc(sizeof(int32_t) * (size_t)f.n);
    ASSERT(f.label);
    for (int64_t r = 0; r < f.n; r++) f.label[r] = (int32_t)fixture_i64(&fx, yname, (int)r);
    return f;
}

typedef struct {
    int n, dim, classes, batch, epochs;
    TrainConfig cfg;
} HeadCase;

static HeadCase head_case(const char *pre, LinearProtocol protocol) {
    HeadCase c;
    char name[64];
    snprintf(name, sizeof name, "%sshape", pre);
    c.n = (int)fixture_i64(&fx, name, 0), c.dim = (int)fixture_i64(&fx, name, 1);
    c.classes = (int)fixture_i64(&fx, name, 2), c.batch = (int)fixture_i64(&fx, name, 3);
    c.epochs = (int)fixture_i64(&fx, name, 4);
    ASSERT(train_config_defaults(&c.cfg, "cifar10") == 0);
    c.cfg.linear = protocol, c.cfg.linear_batch = c.batch, c.cfg.seed = 3;
    for (int k = 0; k < 2; k++) c.cfg.linear_milestones[k] = (int)fixture_i64(&fx, name, 5 + k);
    snprintf(name, sizeof name, "%slr", pre);
    float *lr = fixture_f32(&fx, name, NULL);
    c.cfg.linear_lr = lr[0];
    free(lr);
    return c;
}

/* Fits the head of fixture case `pre` from the fixture's starting weights; compares with PyTorch when check. */
static void fit(const char *pre, LinearProtocol protocol, bool check, LinearHead *h) {
    HeadCase c = head_case(pre, protocol);
    char xn[64], yn[64];
    linear_head_init(h, &c.cfg, c.dim, c.classes);
    snprintf(xn, sizeof xn, "%sw0", pre);
    float *w0 = fixture_f32(&fx, xn, NULL);
    snprintf(xn, sizeof xn, "%sb0", pre);
    float *b0 = fixture_f32(&fx, xn, NULL);
    memcpy(h->w, w0, sizeof(float) * (size_t)c.dim * c.classes), memcpy(h->b, b0, sizeof(float) * c.classes);
    free(w0), free(b0);
    if (protocol == LINEAR_MEANSHIFT) {
        snprintf(xn, sizeof xn, "%sstat_x", pre);
        Features stat = {0};
        size_t count;
        stat.x = fixture_f32(&fx, xn, &count), stat.dim = c.dim, stat.n = (int64_t)(count / (size_t)c.dim);
        features_l2_normalise(&stat); /* what features_compute(normalize = true) hands over */
        linear_head_standardise(h, &stat);
        features_free(&stat);
        if (check) {
            snprintf(xn, sizeof xn, "%smean", pre);
            float *mean = fixture_f32(&fx, xn, NULL);
            snprintf(xn, sizeof xn, "%sinv_std", pre);
            float *inv_std = fixture_f32(&fx, xn, NULL);
            CHECK_CLOSE("Mean-Shift mean", h->mean, mean, (size_t)c.dim, 1e-5, 1e-7);
            CHECK_CLOSE("Mean-Shift 1/sqrt(var + 1e-5)", h->inv_std, inv_std, (size_t)c.dim, 1e-5, 0);
            free(mean), free(inv_std);
        }
    }
    for (int e = 0; e < c.epochs; e++) {
        snprintf(xn, sizeof xn, "%sx%d", pre, e), snprintf(yn, sizeof yn, "%sy%d", pre, e);
        Features f = load_features(xn, yn, c.dim);
        ASSERT(f.n == c.n);
        linear_head_transform(h, f.x, f.n);
        double loss = linear_head_epoch(h, &f, linear_head_lr(h, e));
        features_free(&f);
        snprintf(xn, sizeof xn, "%sloss", pre);
        double want = fixture_f64(&fx, xn, e);
        if (check)
            CHECK(fabs(loss - want) <= 1e-5 * fabs(want), "%s epoch %d: mean loss %.7f, PyTorch %.7f", pre, e, loss,
                  want);
    }
    if (!check) return;
    snprintf(xn, sizeof xn, "%sw", pre);
    float *w = fixture_f32(&fx, xn, NULL);
    snprintf(xn, sizeof xn, "%sb", pre);
    float *b = fixture_f32(&fx, xn, NULL);
    double ew = rel_l2(h->w, w, (size_t)c.dim * c.classes), eb = rel_l2(h->b, b, (size_t)c.classes);
    CHECK(ew < 1e-5 && eb < 1e-5, "%s after %d epochs: weights %.2e, bias %.2e from PyTorch's (relative L2)", pre,
          c.epochs, ew, eb);
    test_note("%s weights after %d epochs: %.2e from PyTorch's (relative L2), bias %.2e", pre, c.epochs, ew, eb);
    free(w), free(b);
    snprintf(xn, sizeof xn, "%stest_x", pre), snprintf(yn, sizeof yn, "%stest_y", pre);
    Features t = load_features(xn, yn, c.dim);
    linear_head_transform(h, t.x, t.n);
    double top1, top5;
    linear_head_accuracy(h, &t, &top1, &top5);
    snprintf(xn, sizeof xn, "%stop", pre);
    double w1 = fixture_f64(&fx, xn, 0), w5 = fixture_f64(&fx, xn, 1), one = 100.0 / (double)t.n + 1e-9;
    /* a test row whose two best logits are within rounding may rank either way: one row's worth of slack */
    CHECK(fabs(top1 - w1) <= one && fabs(top5 - w5) <= one, "%s top-1 %.2f top-5 %.2f, PyTorch %.2f %.2f", pre, top1,
          top5, w1, w5);
    features_free(&t);
}

static void test_small_head(void) {
    if (!have_fx) return;
    LinearHead h;
    fit("small.", LINEAR_SMALL, true, &h);
    linear_head_free(&h);
}

static void test_meanshift_head(void) {
    if (!have_fx) return;
    LinearHead h;
    fit("meanshift.", LINEAR_MEANSHIFT, true, &h);
    linear_head_free(&h);
}

/* eval_single.py drops the training loader's last partial batch, eval_multi.py keeps it; neither drops a test one */
static void test_protocol_loaders(void) {
    TrainConfig c;
    ASSERT(train_config_defaults(&c, "cifar10") == 0);
    c.linear = LINEAR_SMALL;
    ASSERT(linear_eval_spec(&c, VIEWS_EVAL_TRAIN).drop_last && !linear_eval_spec(&c, VIEWS_EVAL_TEST).drop_last);
    c.linear = LINEAR_MEANSHIFT;
    ASSERT(!linear_eval_spec(&c, VIEWS_EVAL_TRAIN).drop_last && !linear_eval_spec(&c, VIEWS_EVAL_TEST).drop_last);
    ASSERT(linear_eval_spec(&c, VIEWS_EVAL_TRAIN).batch == c.linear_batch);
}

/* SMALL: N(0, 0.01) weights, zero bias; MEANSHIFT: nn.Linear's uniform +-1/sqrt(dim) for both; each a function of
 * the seed */
static void test_head_init(void) {
    TrainConfig c;
    ASSERT(train_config_defaults(&c, "cifar10") == 0);
    const int dim = 64, classes = 50;
    const size_t nw = (size_t)dim * classes;
    LinearHead a, b, d;
    c.seed = 1, c.linear = LINEAR_SMALL;
    linear_head_init(&a, &c, dim, classes);
    double s = 0, ss = 0, bias = 0;
    for (size_t i = 0; i < nw; i++) s += a.w[i], ss += (double)a.w[i] * a.w[i];
    for (int k = 0; k < classes; k++) bias += fabs(a.b[k]);
    double sd = sqrt(ss / (double)nw - (s / (double)nw) * (s / (double)nw));
    CHECK(fabs(sd - 0.01) < 0.001 && bias == 0, "SMALL init: weights' sd %.5f (want 0.01), |bias| %g", sd, bias);
    linear_head_init(&b, &c, dim, classes);
    ASSERT(memcmp(a.w, b.w, sizeof(float) * nw) == 0);
    c.seed = 2;
    linear_head_init(&d, &c, dim, classes);
    ASSERT(memcmp(a.w, d.w, sizeof(float) * nw) != 0);
    linear_head_free(&a), linear_head_free(&b), linear_head_free(&d);

    c.seed = 1, c.linear = LINEAR_MEANSHIFT;
    linear_head_init(&a, &c, dim, classes);
    const double bound = 1.0 / sqrt((double)dim);
    double mx = 0, bmx = 0;
    s = ss = 0;
    for (size_t i = 0; i < nw; i++) s += a.w[i], ss += (double)a.w[i] * a.w[i], mx = fmax(mx, fabs(a.w[i]));
    for (int k = 0; k < classes; k++) bmx = fmax(bmx, fabs(a.b[k]));
    sd = sqrt(ss / (double)nw);
    CHECK(mx <= bound && bmx <= bound && bmx > 0.5 * bound && fabs(sd - bound / sqrt(3.0)) < 0.05 * bound,
          "MEANSHIFT init: max |w| %.4f, max |b| %.4f, sd %.4f; want within %.4f, sd %.4f", mx, bmx, sd, bound,
          bound / sqrt(3.0));
    linear_head_free(&a);
}

static void test_knn(void) {
    if (!have_fx) return;
    Features bank = load_features("knn.bank_x", "knn.bank_y", 16), test = load_features("knn.test_x", "knn.test_y", 16);
    int classes = (int)fixture_i64(&fx, "knn.shape", 0), k = (int)fixture_i64(&fx, "knn.shape", 1);
    double t = fixture_f64(&fx, "knn.t", 0);
    int32_t *pred = malloc(sizeof(int32_t) * (size_t)test.n);
    ASSERT(pred);
    knn_predict(&bank, &test, classes, k, t, pred);
    int differ = 0, correct = 0;
    for (int64_t r = 0; r < test.n; r++) {
        int64_t want = fixture_i64(&fx, "knn.pred", (int)r);
        double margin = fixture_f64(&fx, "knn.margin", (int)r);
        if (pred[r] != want) {
            differ++;
            CHECK(margin < 1e-5, "kNN row %lld: class %d, PyTorch %lld with a margin of %.3g", (long long)r, pred[r],
                  (long long)want, margin);
        }
        correct += pred[r] == test.label[r];
    }
    double top1 = knn_top1(&bank, &test, classes, k, t);
    CHECK(top1 == 100.0 * correct / (double)test.n, "knn_top1 %.4f, the predictions' %.4f", top1,
          100.0 * correct / (double)test.n);
    test_note("kNN: %lld rows, %d predictions differ from PyTorch's (near ties only), top-1 %.2f", (long long)test.n,
              differ, top1);
    free(pred);
    features_free(&bank), features_free(&test);
}

/* One thread or two: the same head bits (xent rows, statistics blocks, SGD chunks in parallel) and kNN votes. */
static void test_thread_count_same_bits(void) {
    if (!have_fx) return;
    const int threads = omp_get_max_threads();
    LinearHead one, two;
    omp_set_num_threads(1);
    fit("meanshift.", LINEAR_MEANSHIFT, false, &one);
    Features bank = load_features("knn.bank_x", "knn.bank_y", 16), test = load_features("knn.test_x", "knn.test_y", 16);
    int32_t *p1 = malloc(sizeof(int32_t) * (size_t)test.n), *p2 = malloc(sizeof(int32_t) * (size_t)test.n);
    ASSERT(p1 && p2);
    knn_predict(&bank, &test, 10, 20, 0.1, p1);
    omp_set_num_threads(2);
    fit("meanshift.", LINEAR_MEANSHIFT, false, &two);
    knn_predict(&bank, &test, 10, 20, 0.1, p2);
    omp_set_num_threads(threads);
    size_t nw = (size_t)one.dim * one.classes;
    ASSERT(memcmp(one.w, two.w, sizeof(float) * nw) == 0 && memcmp(one.b, two.b, sizeof(float) * one.classes) == 0);
    ASSERT(memcmp(one.inv_std, two.inv_std, sizeof(float) * one.dim) == 0);
    ASSERT(memcmp(p1, p2, sizeof(int32_t) * (size_t)test.n) == 0);
    linear_head_free(&one), linear_head_free(&two);
    free(p1), free(p2);
    features_free(&bank), features_free(&test);
}

/* softmax_xent_cpu is the reference's loss and gradient bit for bit, at any thread count */
static void test_xent_cpu_is_ref(void) {
    const int n = 37, c = 1000;
    float *z = test_alloc((size_t)n * c), *g_ref = test_alloc((size_t)n * c), *g_cpu = test_alloc((size_t)n * c);
    int labels[37];
    fill_normal(z, (size_t)n * c, 77, 4.0f);
    for (int r = 0; r < n; r++) labels[r] = (r * 131) % c;
    double ref = softmax_xent_ref(n, c, z, labels, g_ref);
    const int was = omp_get_max_threads();
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        double cpu = softmax_xent_cpu(n, c, z, labels, g_cpu);
        CHECK(memcmp(&cpu, &ref, sizeof cpu) == 0, "%d threads: loss %.17g, reference %.17g", threads, cpu, ref);
        ASSERT(memcmp(g_cpu, g_ref, sizeof(float) * (size_t)n * c) == 0);
    }
    omp_set_num_threads(was);
    free(z), free(g_ref), free(g_cpu);
}

int main(void) {
    RUN(open_fixture);
    RUN(test_small_head);
    RUN(test_meanshift_head);
    RUN(test_protocol_loaders);
    RUN(test_head_init);
    RUN(test_knn);
    RUN(test_thread_count_same_bits);
    RUN(test_xent_cpu_is_ref);
    if (have_fx) st_close(&fx);
    return test_finish();
}
