/* Data parallel on the CPU through Open MPI: `mpirun -np 2` training with the global batch split over two
 * processes and SyncBN gives the run of one process with the whole batch, for RSA and for the methods that need
 * the other processes' samples (SimCLR: negatives; MoCo v2: the queue, compared as a checkpoint tensor). Not bit for
 * bit: the two halves' sums (BN statistics, gradients, the loss) are added in another order, so per-step losses
 * agree to 1e-5 and every tensor of the final checkpoint to 1e-4 (rel_l2). The ranks themselves must agree bit for
 * bit, which the trainer checks at every checkpoint (learner_check_ranks_agree): at fp16, and against a broken
 * all-reduce that must be caught. Stopped and resumed, two processes end with the bits of two that never stopped;
 * ranks that would resume from different checkpoints (results not on a shared file system) stop with a clear error,
 * and so do both ranks when one fails alone (in training and in the evaluation). On the staged backend (the GPU's
 * code paths on the CPU) two processes give the cpu backend's two-process run bit for bit. The linear evaluation,
 * whose features both ranks compute, gives one process's numbers for the same checkpoint bit for bit. Four
 * processes against one (SyncBN, and BN groups of a quarter) check what two cannot: shards and groups beyond two.
 * The cuda backend's path (NCCL) is checked the same way where it can run (see with_cuda below).
 * The test runs itself under mpirun (`test_mpi --rank-run DIR ...`) for the two-process part. */
#include "tests/util/fixture.h"
#include "tests/util/runcmp.h"
#include "tests/util/testlib.h"
#include "trainer/core/error.h"
#include "trainer/core/fileio.h"
#include "trainer/dist/dist.h"
#include "trainer/io/safetensors.h"
#include "trainer/train/trainer.h"

#ifdef RSA_CUDA
#include <cuda_runtime_api.h>
#endif

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The ResNet's width. 8 where one process is compared with two: at 16 (oneDNN's channel-blocked kernels, 4x faster
 * here) this small net's dynamics amplify summation-order rounding past the tolerances within 8 steps (rel 5e-6 at
 * step 3, 3e-3 by step 6). 16 for the tests that compare bit for bit or check failures. */
static int width = 8;
/* Processes mpirun_two starts: 2, or 4 where BN groups and shards of four are compared with one process. */
static int ranks = 2;
/* The backend of every run (the config's default when empty): "cuda" for the GPU's data-parallel path. */
static char run_backend[16] = "";

static TrainConfig config(MethodKind method, Precision precision) {
    TrainConfig c;
    if (train_config_defaults(&c, "fashionmnist") != 0) {
        fprintf(stderr, "%s\n", rsa_error_message());
        exit(1);
    }
    c.backbone = (ResNetSpec){BLOCK_BASIC, {1, 1, 0, 0}, width, STEM_CIFAR, false};
    c.proj_hidden = 32, c.proj_out = 16, c.image_size = 16;
    c.subset = 256, c.batch = 32, c.epochs = 1, c.lr_scaling = LR_SCALE_LINEAR;
    c.method = method, c.views = method == METHOD_RSA ? VIEWS_MA : VIEWS_AA, c.sync_bn = true;
    c.queue_size = 64, c.temperature = 0.2, c.tau_base = 0.99; /* MoCo: the queue turns over within the run */
    c.linear_epochs = 0, c.knn_every = 0, c.loader_threads = 1, c.seed = 3;
    c.precision = precision;
    c.checkpoint_every = 2; /* the ranks' agreement is checked at every checkpoint */
    if (run_backend[0]) snprintf(c.backend, sizeof c.backend, "%s", run_backend);
    return c;
}

/* Stands in for a broken all-reduce: rank 1 gets a different sum than rank 0 (in the stem's first weight). */
static void (*true_allreduce_f32)(Dist *d, float *buf, size_t n);
static void allreduce_not_identical(Dist *d, float *buf, size_t n) {
    true_allreduce_f32(d, buf, n);
    if (d->rank == 1 && n > 0) buf[0] = buf[0] * 1.01f + 1e-3f;
}

/* How the ranks of mpirun_two run: as the trainer expects; with a broken all-reduce; with run directories of their
 * own (results on node-local disks instead of a shared file system); rank 1 without the starting weights; on a
 * folder data set with a corrupt image; on the staged backend. */
typedef enum {
    RANKS_NORMAL,
    RANKS_BROKEN_ALLREDUCE,
    RANKS_LOCAL_DIRS,
    RANK1_NO_INIT,
    CORRUPT_IMAGE,
    CORRUPT_VAL_IMAGE,
    RANKS_STAGED,
    RANKS_LINEAR,
    RANKS_LINEAR_BN_TRAIN,
    RANKS_LINEAR_STAGED,
    RANKS_OWN_BN,
} RankMode;

/* A run that ends with a linear evaluation, without SyncBN, so that each rank's BN running statistics are its own
 * and only rank 0's may be used to evaluate; bn_train: the official code's BN in training mode (rank 0 alone). */
static void linear_config(TrainConfig *c, bool bn_train) {
    c->sync_bn = false;
    c->linear_epochs = 2, c->linear_batch = 24, c->eval_subset = 200, c->linear_best_epoch = true;
    c->linear_bn_train = bn_train;
}

/* A folder data set of 32 small JPEGs in two classes (train and val), one file of split `bad` (0 train, 1 val)
 * not a JPEG: some rank's batch fails when it reaches it. */
static void make_folder_data(const char *root, int bad) {
    char path[900];
    const char *splits[2] = {"train", "val"};
    for (int sp = 0; sp < 2; sp++)
        for (int c = 0; c < 2; c++)
            for (int i = 0; i < 16; i++) {
                snprintf(path, sizeof path, "%s/imagenet/%s/n0%d", root, splits[sp], c);
                make_dirs(path);
                snprintf(path, sizeof path, "%s/imagenet/%s/n0%d/%s%d.JPEG", root, splits[sp], c,
                         sp == bad && c == 1 && i == 5 ? "bad" : "", i);
                if (sp == bad && c == 1 && i == 5) {
                    const void *pieces[1] = {"this is not a JPEG file"};
                    size_t sizes[1] = {23};
                    atomic_write(path, pieces, sizes, 1);
                } else {
                    write_test_jpeg(path, 40, 40, sp * 100 + c * 16 + i);
                }
            }
}

/* One rank's run; with max_steps it stops there with a checkpoint (as Ctrl-C does), and a later call resumes. */
static int rank_run(const char *dir, MethodKind method, Precision precision, RankMode mode, int max_steps) {
    omp_set_num_threads(1);
    Dist *d = dist_init();
    /* both ranks run on this one node: which GPU a rank takes and its loaders' share of the cores come from this */
    if (d->local_rank != d->rank || d->local_size != d->world) {
        fprintf(stderr, "rank %d: local rank %d of %d\n", d->rank, d->local_rank, d->local_size);
        dist_finalize(d);
        return 1;
    }
    if (mode == RANKS_BROKEN_ALLREDUCE)
        true_allreduce_f32 = d->allreduce_f32, d->allreduce_f32 = allreduce_not_identical;
    if (strcmp(run_backend, "cuda") == 0) { /* as rsa run does: NCCL for the gradients and SyncBN's sums */
        if (dist_attach_gpu(d) != 0 || !d->allreduce_device_f32 || !d->allreduce_device_f64) {
            fprintf(stderr, "rank %d: no device all-reduce: %s\n", d->rank, rsa_error_message());
            dist_finalize(d);
            return 1;
        }
    }
    char own[700];
    snprintf(own, sizeof own, "%s-rank%d", dir, d->rank);
    if (mode == RANKS_LOCAL_DIRS) dir = own;
    TrainConfig c = config(method, precision);
    if (mode == RANK1_NO_INIT && d->rank == 1) /* a file rank 0's node has and rank 1's lacks */
        snprintf(c.init_from, sizeof c.init_from, "%s.missing-on-this-node", dir);
    if (mode == RANKS_STAGED) snprintf(c.backend, sizeof c.backend, "staged");
    if (mode == RANKS_LINEAR || mode == RANKS_LINEAR_BN_TRAIN || mode == RANKS_LINEAR_STAGED)
        linear_config(&c, mode == RANKS_LINEAR_BN_TRAIN);
    if (mode == RANKS_LINEAR_STAGED) snprintf(c.backend, sizeof c.backend, "staged");
    if (mode == RANKS_OWN_BN) c.sync_bn = false; /* each rank's BN statistics over its own half */
    if (mode == CORRUPT_IMAGE || mode == CORRUPT_VAL_IMAGE) {
        snprintf(c.dataset, sizeof c.dataset, "imagenet");
        snprintf(c.data_root, sizeof c.data_root, "%s-data", dir);
        c.subset = 0, c.batch = 16, c.views = VIEWS_AA;
        if (mode == CORRUPT_VAL_IMAGE) c.linear_epochs = 1, c.linear_batch = 8; /* the val image is rank 1's */
    }
    TrainHooks h = {.dist = d, .max_steps = max_steps};
    TrainResult r;
    int rc = train_run(&c, dir, "h", &h, &r);
    if (rc < 0) fprintf(stderr, "rank %d: %s\n", d->rank, rsa_error_message());
    dist_finalize(d);
    return rc == 0 || (rc == 1 && max_steps > 0) ? 0 : 1;
}

/* Runs this binary as two ranks into dir; the exit status, and what they printed in out. */
static int mpirun_two(const char *dir, MethodKind method, Precision precision, RankMode mode, int max_steps,
                      char *out, size_t out_size) {
    char cmd[2048], self[600];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(len > 0, "cannot find the test binary");
    if (len <= 0) return -1;
    self[len] = 0;
    snprintf(cmd, sizeof cmd,
             "timeout 300 mpirun --allow-run-as-root --oversubscribe --mca coll ^tuned -np %d -x OMP_NUM_THREADS=1 %s "
             "--rank-run %s %d %d %d %d %d %s 2>&1",
             ranks, self, dir, (int)method, (int)precision, (int)mode, max_steps, width,
             run_backend[0] ? run_backend : "default");
    FILE *p = popen(cmd, "r");
    char line[512];
    size_t used = 0;
    out[0] = 0;
    while (p && fgets(line, sizeof line, p)) {
        printf("  # mpirun: %s", line);
        used += (size_t)snprintf(out + used, out_size - used, "%s", line);
        if (used >= out_size) used = out_size - 1;
    }
    return p ? pclose(p) : -1;
}

/* Loss column of steps.tsv, one value per step. */
static int losses(const char *dir, double *out, int max) {
    char path[700];
    snprintf(path, sizeof path, "%s/steps.tsv", dir);
    char *text = read_file(path, NULL);
    if (!text) return -1;
    int n = 0;
    for (char *line = strchr(text, '\n'); line && line[1] && n < max; line = strchr(line + 1, '\n')) {
        long long step;
        int epoch;
        double loss;
        if (sscanf(line + 1, "%lld\t%d\t%lf", &step, &epoch, &loss) == 3) out[n++] = loss;
    }
    free(text);
    return n;
}

/* Two processes against one with the whole batch: with SyncBN (own_bn false), or each rank's BN over its own half
 * against one process whose BN statistics groups (bn_group) are those halves. */
static void two_processes_equal_one_bn(MethodKind method, Precision precision, double loss_tol, double ckpt_tol,
                                       bool own_bn) {
    width = 8;
    char one[600], two[600], out[8192];
    const char *bn = own_bn ? "-own-bn" : "";
    snprintf(one, sizeof one, "%s/one-%s-%s%s-of%d%s", test_tmpdir(), method_name(method), precision_name(precision),
             bn, ranks, run_backend);
    snprintf(two, sizeof two, "%s/ranks%d-%s-%s%s%s", test_tmpdir(), ranks, method_name(method),
             precision_name(precision), bn, run_backend);
    omp_set_num_threads(1);
    TrainConfig c = config(method, precision);
    if (own_bn) c.sync_bn = false, c.bn_group = c.batch / ranks;
    TrainHooks none = {0};
    TrainResult r;
    CHECK(train_run(&c, one, "h", &none, &r) == 0, "%s", rsa_error_message());
    int status = mpirun_two(two, method, precision, own_bn ? RANKS_OWN_BN : RANKS_NORMAL, 0, out, sizeof out);
    CHECK(status == 0, "mpirun -np %d failed (status %d; needs openmpi-bin: make deps)", ranks, status);
    if (status != 0) return;
    double a[64], b[64];
    int na = losses(one, a, 64), nb = losses(two, b, 64);
    CHECK(na == 8 && nb == na, "steps: one process %d, %d processes %d (want 8)", na, ranks, nb);
    double worst_loss = 0;
    for (int i = 0; i < na && i < nb; i++) {
        CHECK(fabs(a[i] - b[i]) <= loss_tol * fabs(a[i]), "step %d loss: one process %.9g, %d processes %.9g", i + 1,
              a[i], ranks, b[i]);
        worst_loss = fmax(worst_loss, fabs(a[i] - b[i]) / fabs(a[i]));
    }
    char ca[700], cb[700];
    snprintf(ca, sizeof ca, "%s/checkpoint.safetensors", one);
    snprintf(cb, sizeof cb, "%s/checkpoint.safetensors", two);
    StFile fa, fb;
    CHECK(st_open(&fa, ca) == 0 && st_open(&fb, cb) == 0, "%s", rsa_error_message());
    double worst = 0, all_sq = 0;
    size_t all_n = 0;
    const char *worst_name = "";
    int compared = 0;
    for (int i = 0; i < fa.n_tensors; i++) { /* the norm tensors would have if spread evenly, for the floor below */
        const StTensor *t = &fa.tensors[i];
        if (t->dtype != ST_F32 || strncmp(t->name, "optimizer.", 10) != 0) continue;
        const float *v = st_data(&fa, t);
        for (size_t k = 0; k < st_numel(t); k++) all_sq += (double)v[k] * v[k];
        all_n += st_numel(t);
    }
    for (int i = 0; i < fa.n_tensors; i++) {
        const StTensor *t = &fa.tensors[i], *u = st_find(&fb, t->name);
        CHECK(u != NULL, "tensor %s missing from the two-process checkpoint", t->name);
        if (!u || t->dtype != ST_F32) continue;
        const float *x = st_data(&fb, u), *y = st_data(&fa, t);
        double diff = 0, own = 0;
        for (size_t k = 0; k < st_numel(t); k++) diff += ((double)x[k] - y[k]) * ((double)x[k] - y[k]), own += (double)y[k] * y[k];
        /* momentum of a bias right before a BN is rounding noise (its true gradient is 0; with SyncBN each rank's
         * partial sum is not 0, only their total, so two processes round more than one): measure it against 1e-1
         * of the norm a momentum tensor of its size has on average */
        double floor = strncmp(t->name, "optimizer.", 10) == 0 ? 1e-1 * sqrt(all_sq * st_numel(t) / all_n) : 0;
        double e = sqrt(diff) / fmax(sqrt(own), fmax(floor, 1e-30));
        if (e > worst) worst = e, worst_name = t->name;
        compared++;
    }
    CHECK(worst <= ckpt_tol, "checkpoints differ: worst rel_l2 %.3g (%s)", worst, worst_name);
    test_note("%s: losses within %.2g; %d tensors compared, worst rel_l2 %.2g (%s)", precision_name(precision),
              worst_loss, compared, worst, worst_name);
    st_close(&fa), st_close(&fb);
}

static void two_processes_equal_one(MethodKind method, Precision precision, double loss_tol, double ckpt_tol) {
    two_processes_equal_one_bn(method, precision, loss_tol, ckpt_tol, false);
}

static void test_two_processes_equal_one(void) { two_processes_equal_one(METHOD_RSA, PRECISION_FP32, 1e-5, 1e-4); }
/* bn_group: one process computes what two do without SyncBN, the running statistics rank 0's */
static void test_two_processes_own_bn_equal_bn_groups(void) {
    two_processes_equal_one_bn(METHOD_RSA, PRECISION_FP32, 1e-5, 1e-4, true);
}
/* Four processes (8 images each) against one: with SyncBN, and each rank's BN over its own quarter against one
 * process with four BN groups, which holds only if the groups are exactly the ranks' samples (one sample moved
 * between groups 1 and 2 passes with two processes and fails here: checked by planting it in group_batches). */
static void four_processes_equal_one(const char *name, bool own_bn) {
#ifdef __SANITIZE_ADDRESS__
    /* 13 s each under ASan on 2 cores; the two-process tests run the same code paths there, and the plain build
     * checks what four add (the arithmetic of four shards and groups) */
    test_skip(name, "under ASan (the plain `make test` runs it)");
    return;
#endif
    ranks = 4;
    two_processes_equal_one_bn(METHOD_RSA, PRECISION_FP32, 1e-5, 1e-4, own_bn);
    ranks = 2;
}
static void test_four_processes_equal_one(void) { four_processes_equal_one("four_processes_equal_one", false); }
static void test_four_processes_own_bn_equal_bn_groups(void) {
    four_processes_equal_one("four_processes_own_bn_equal_bn_groups", true);
}
static void test_two_processes_equal_one_simclr(void) {
    two_processes_equal_one(METHOD_SIMCLR, PRECISION_FP32, 1e-5, 1e-4);
}
static void test_two_processes_equal_one_mocov2(void) {
    two_processes_equal_one(METHOD_MOCOV2, PRECISION_FP32, 1e-5, 1e-4);
}
/* fp16: each rank backpropagates its own half batch's mean loss, so its activation gradients are twice one
 * process's and overflow fp16 sooner at the same loss scale (PyTorch DDP with GradScaler does the same): a
 * two-process run may skip steps one process takes, so it is not compared with one process. What must hold is that
 * the ranks skip together and stay in step, which learner_check_ranks_agree verifies at every checkpoint. */
static void test_two_processes_in_step_fp16(void) {
    width = 16;
    char dir[600], out[8192];
    snprintf(dir, sizeof dir, "%s/two-fp16", test_tmpdir());
    int status = mpirun_two(dir, METHOD_RSA, PRECISION_FP16, RANKS_NORMAL, 0, out, sizeof out);
    CHECK(status == 0, "mpirun -np 2 failed (status %d)", status);
    double b[64];
    CHECK(losses(dir, b, 64) == 8, "an fp16 two-process run must train its 8 steps");
}

/* Exact resume in a data-parallel world: two processes stopped after 3 steps (the checkpoint rank 0 writes) and
 * resumed end with the weights, buffers, optimiser state and queue of two processes that never stopped, bit for bit,
 * and log the same per-step metrics. MoCo v2: its queue is filled from every rank's keys. */
static void resumed_two_equal_uninterrupted(MethodKind method) {
    width = 16;
    char a[600], b[600], out[8192];
    snprintf(a, sizeof a, "%s/whole-%s%s", test_tmpdir(), method_name(method), run_backend);
    snprintf(b, sizeof b, "%s/resumed-%s%s", test_tmpdir(), method_name(method), run_backend);
    CHECK(mpirun_two(a, method, PRECISION_FP32, RANKS_NORMAL, 0, out, sizeof out) == 0, "uninterrupted run failed");
    CHECK(mpirun_two(b, method, PRECISION_FP32, RANKS_NORMAL, 3, out, sizeof out) == 0, "the run to stop failed");
    double lb[64];
    CHECK(losses(b, lb, 64) == 3, "the stopped run must have trained 3 steps");
    CHECK(mpirun_two(b, method, PRECISION_FP32, RANKS_NORMAL, 0, out, sizeof out) == 0, "the resumed run failed");
    CHECK(losses(b, lb, 64) == 8, "the resumed run must end after 8 steps");
    CHECK_SAME_RUN(a, b);
}

/* Results on node-local disks: rank 0 finds the stopped run's checkpoint, rank 1 does not. Both must stop at once
 * with a message that says why, instead of training apart (or waiting for each other forever). */
static void test_ranks_without_shared_results(void) {
    width = 16;
    char dir[600], out[8192];
    snprintf(dir, sizeof dir, "%s/local", test_tmpdir());
    CHECK(mpirun_two(dir, METHOD_RSA, PRECISION_FP32, RANKS_LOCAL_DIRS, 3, out, sizeof out) == 0, "the first part failed");
    int status = mpirun_two(dir, METHOD_RSA, PRECISION_FP32, RANKS_LOCAL_DIRS, 0, out, sizeof out);
    CHECK(status != 0, "ranks that resume from different steps must fail");
    CHECK(strstr(out, "rank 0: ") && strstr(out, "rank 1: ") &&
              strstr(out, "rank 1 of 2 starts from step 0, rank 0 resumes from step 3") &&
              strstr(out, "a file system every node shares"),
          "both ranks must name the disagreement and the fix");
}

/* A failure on one rank alone stops both, each with the failing rank's message, instead of leaving the other
 * waiting forever in its next all-reduce: before the first step (rank 1 lacks the starting weights) and in the
 * middle of an epoch (an image that does not decode in some rank's batch). */
static void test_one_rank_fails_alone(void) {
    width = 16;
    char dir[600], out[8192];
    snprintf(dir, sizeof dir, "%s/no-init", test_tmpdir());
    int status = mpirun_two(dir, METHOD_RSA, PRECISION_FP32, RANK1_NO_INIT, 0, out, sizeof out);
    CHECK(status != 0 && WEXITSTATUS(status) != 124, "mpirun -np 2 exited %d (124: a rank waited forever)", status);
    CHECK(strstr(out, "rank 0: ") && strstr(out, "data-parallel rank 1 of 2 failed") && strstr(out, "rank 1: ") &&
              strstr(out, "missing-on-this-node"),
          "rank 0 must relay rank 1's message");
    snprintf(dir, sizeof dir, "%s/corrupt", test_tmpdir());
    char data[700];
    snprintf(data, sizeof data, "%s-data", dir);
    make_folder_data(data, 0);
    status = mpirun_two(dir, METHOD_BYOL, PRECISION_FP32, CORRUPT_IMAGE, 0, out, sizeof out);
    CHECK(status != 0 && WEXITSTATUS(status) != 124, "mpirun -np 2 exited %d (124: a rank waited forever)", status);
    const char *r0 = strstr(out, "rank 0: "), *r1 = strstr(out, "rank 1: ");
    CHECK(r0 && r1 && strstr(r0, "bad5.JPEG") && strstr(r1, "bad5.JPEG"), "both ranks must name the broken image");
    /* in the evaluation, whose features both ranks compute: the rank with the broken test image stops the other */
    snprintf(dir, sizeof dir, "%s/corrupt-val", test_tmpdir());
    snprintf(data, sizeof data, "%s-data", dir);
    make_folder_data(data, 1);
    status = mpirun_two(dir, METHOD_BYOL, PRECISION_FP32, CORRUPT_VAL_IMAGE, 0, out, sizeof out);
    CHECK(status != 0 && WEXITSTATUS(status) != 124, "mpirun -np 2 exited %d (124: a rank waited forever)", status);
    r0 = strstr(out, "rank 0: "), r1 = strstr(out, "rank 1: ");
    CHECK(r0 && r1 && strstr(r0, "bad5.JPEG") && strstr(r1, "bad5.JPEG") && strstr(out, "data-parallel rank 1 of 2"),
          "rank 0 must relay rank 1's broken test image");
}

/* The device path of data parallel (gradients downloaded, all-reduced on the host, uploaded; the views uploaded in
 * the background) on the staged backend: the cpu backend's two-process run, bit for bit. */
static void test_two_processes_staged_backend(void) {
    width = 16;
    char a[600], b[600], out[8192];
    snprintf(a, sizeof a, "%s/two-cpu", test_tmpdir());
    snprintf(b, sizeof b, "%s/two-staged", test_tmpdir());
    CHECK(mpirun_two(a, METHOD_RSA, PRECISION_FP32, RANKS_NORMAL, 0, out, sizeof out) == 0, "cpu run failed");
    CHECK(mpirun_two(b, METHOD_RSA, PRECISION_FP32, RANKS_STAGED, 0, out, sizeof out) == 0, "staged run failed");
    CHECK_SAME_RUN(a, b);
}

/* The linear evaluation of a two-process run: both ranks compute the features, rank 0 fits the head. Its numbers
 * must be those of one process evaluating the same checkpoint (rank 0's weights and BN statistics) on its own. */
static void linear_eval_two_processes(RankMode mode) {
    width = 16;
    bool bn_train = mode == RANKS_LINEAR_BN_TRAIN;
    char one[600], two[600], out[8192], from[700], to[700];
    snprintf(two, sizeof two, "%s/linear-two-%d", test_tmpdir(), (int)mode);
    snprintf(one, sizeof one, "%s/linear-one-%d", test_tmpdir(), (int)mode);
    int status = mpirun_two(two, METHOD_RSA, PRECISION_FP32, mode, 0, out, sizeof out);
    CHECK(status == 0, "mpirun -np 2 failed (status %d)", status);
    if (status != 0) return;
    /* one process resumes from the finished run's checkpoint: nothing left to train, only the evaluation */
    snprintf(from, sizeof from, "%s/checkpoint.safetensors", two);
    snprintf(to, sizeof to, "%s/checkpoint.safetensors", one);
    make_dirs(one);
    size_t size;
    char *bytes = read_file(from, &size);
    const void *pieces[1] = {bytes};
    CHECK(bytes && atomic_write(to, pieces, &size, 1) == 0, "%s", rsa_error_message());
    free(bytes);
    omp_set_num_threads(1);
    TrainConfig c = config(METHOD_RSA, PRECISION_FP32);
    linear_config(&c, bn_train);
    if (mode == RANKS_LINEAR_STAGED) snprintf(c.backend, sizeof c.backend, "staged");
    TrainHooks none = {0};
    TrainResult r;
    CHECK(train_run(&c, one, "h", &none, &r) == 0, "%s", rsa_error_message());
    snprintf(from, sizeof from, "%s/linear.tsv", two);
    snprintf(to, sizeof to, "%s/linear.tsv", one);
    char *a = read_file(from, NULL), *b = read_file(to, NULL);
    CHECK(a && b && strcmp(a, b) == 0, "linear evaluation: two processes %s, one %s", a ? a : "(none)",
          b ? b : "(none)");
    if (b)
        test_note("%s: one process and two: %s",
                  bn_train ? "BN in training mode" : mode == RANKS_LINEAR_STAGED ? "staged backend" : "BN frozen",
                  strtok(b, "\n"));
    free(a), free(b);
}
static void test_linear_eval_two_processes(void) { linear_eval_two_processes(RANKS_LINEAR); }
static void test_linear_eval_two_processes_bn_train(void) { linear_eval_two_processes(RANKS_LINEAR_BN_TRAIN); }
/* the BN statistics and features through device memory (the GPU's code path, on the CPU) */
static void test_linear_eval_two_processes_staged(void) { linear_eval_two_processes(RANKS_LINEAR_STAGED); }

static void test_resume_two_processes(void) { resumed_two_equal_uninterrupted(METHOD_RSA); }
static void test_resume_two_processes_mocov2(void) { resumed_two_equal_uninterrupted(METHOD_MOCOV2); }

/* The check is not blind: one rank with another sum for one gradient stops the run on every rank, at the first
 * checkpoint (step 2). */
static void test_ranks_out_of_step_caught(void) {
    width = 16;
    char dir[600], out[8192];
    snprintf(dir, sizeof dir, "%s/two-broken", test_tmpdir());
    int status = mpirun_two(dir, METHOD_RSA, PRECISION_FP32, RANKS_BROKEN_ALLREDUCE, 0, out, sizeof out);
    CHECK(status != 0, "ranks with different weights must fail the run");
    CHECK(strstr(out, "rank 0: ") && strstr(out, "rank 1: ") && strstr(out, "out of step after step 2: rank 1"),
          "both ranks must say that rank 1 left rank 0's step");
}

/* The cuda backend's data-parallel path: its gradients and SyncBN's sums all-reduced by NCCL on the device. Two
 * processes against one, with SyncBN and with BN groups, and exact resume, as the cpu backend's tests above. They
 * run in tests/emu's copy of this test (the emulated backend, NCCL emulated over MPI: what the trainer asks of
 * NCCL, not NCCL itself) and, built with CUDA=1, on a machine with two GPUs or more. */
static void with_cuda(void (*test)(void)) {
    snprintf(run_backend, sizeof run_backend, "cuda");
    test();
    run_backend[0] = 0;
}
static void test_two_processes_equal_one_cuda(void) { with_cuda(test_two_processes_equal_one); }
static void test_two_processes_own_bn_equal_bn_groups_cuda(void) {
    with_cuda(test_two_processes_own_bn_equal_bn_groups);
}
static void test_resume_two_processes_cuda(void) { with_cuda(test_resume_two_processes); }

/* Whether this build can run the cuda tests here; why not in *why. */
static bool cuda_ranks_possible(const char **why) {
#if defined RSA_CUDA_EMU
    *why = "";
    return true;
#elif defined RSA_CUDA
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count < 2) {
        cudaGetLastError();
        *why = "NCCL between two ranks needs two GPUs (tests/emu's copy runs them emulated)";
        return false;
    }
    return true;
#else
    *why = "a build without CUDA (tests/emu's copy runs them on the emulated backend)";
    return false;
#endif
}

int main(int argc, char **argv) {
    if (argc == 9 && strcmp(argv[1], "--rank-run") == 0 && (width = atoi(argv[7])) > 0) {
        if (strcmp(argv[8], "default") != 0) snprintf(run_backend, sizeof run_backend, "%s", argv[8]);
        return rank_run(argv[2], (MethodKind)atoi(argv[3]), (Precision)atoi(argv[4]), (RankMode)atoi(argv[5]),
                        atoi(argv[6]));
    }
    const char *why;
    if (cuda_ranks_possible(&why)) {
        RUN(test_two_processes_equal_one_cuda);
        RUN(test_two_processes_own_bn_equal_bn_groups_cuda);
        RUN(test_resume_two_processes_cuda);
    } else {
        test_skip("two_processes_equal_one_cuda, two_processes_own_bn_equal_bn_groups_cuda, "
                  "resume_two_processes_cuda", why);
    }
#ifdef RSA_CUDA_EMU
    return test_finish(); /* the cpu backend's tests are dist/test_mpi's */
#endif
    RUN(test_two_processes_equal_one);
    RUN(test_two_processes_own_bn_equal_bn_groups);
    RUN(test_four_processes_equal_one);
    RUN(test_four_processes_own_bn_equal_bn_groups);
    RUN(test_two_processes_equal_one_simclr);
    RUN(test_two_processes_equal_one_mocov2);
    RUN(test_two_processes_in_step_fp16);
    RUN(test_ranks_out_of_step_caught);
    RUN(test_resume_two_processes);
    RUN(test_resume_two_processes_mocov2);
    RUN(test_ranks_without_shared_results);
    RUN(test_one_rank_fails_alone);
    RUN(test_two_processes_staged_backend);
    RUN(test_linear_eval_two_processes);
    RUN(test_linear_eval_two_processes_bn_train);
    RUN(test_linear_eval_two_processes_staged);
    return test_finish();
}
