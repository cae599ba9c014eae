/* Shared by the reliability tests (header-only: each test binary includes it once).
 *
 * A small training run: Fashion-MNIST images (the first REL_TRAIN / REL_TEST of Debian's dataset-fashion-mnist,
 * copied into a data root of the test's own so that every process opens it in milliseconds), a 512-image subset,
 * a two-stage ResNet of width 16 at 16 px (all of its channel counts are multiples of 16: oneDNN's fast kernels),
 * batch 64, 2 epochs = 16 steps.
 *
 * The same binary is its own training driver: `<test> --child KEY=VALUE...` runs train_run on that config in a fresh
 * process (so tests can kill it, signal it, or give it another OMP_NUM_THREADS) and prints one line per step
 * ("step N") on stdout, then "done", "stopped" or "failed: <message>"; exit status 0, 1 or 2 likewise. */
#ifndef RSA_RELUTIL_H
#define RSA_RELUTIL_H

#include "tests/util/runcmp.h"
#include "tests/util/testlib.h"
#include "trainer/core/error.h"
#include "trainer/core/fileio.h"
#include "trainer/data/data.h"
#include "trainer/io/safetensors.h"
#include "trainer/train/trainer.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

enum { REL_TRAIN = 1024, REL_TEST = 256 };

/* What a test varies in the run. */
typedef struct {
    MethodKind method;
    int loader_threads;
    int64_t checkpoint_every;
    double lr;   /* 0: the data set's default */
    int epochs;  /* 0: 2 */
    char backend[16]; /* "": cpu */
    int subset, batch; /* 0: 512 images, batches of 64 */
} RelRun;

static char rel_data_root[600];

static inline void rel_die(const char *what) {
    fprintf(stderr, "%s: %s\n", what, rsa_error_message());
    exit(3);
}

static inline void rel_write_gz(const char *path, const uint8_t *data, size_t n) {
    gzFile g = gzopen(path, "wb1");
    if (!g || gzwrite(g, data, (unsigned)n) != (int)n || gzclose(g) != Z_OK) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(3);
    }
}

static inline void rel_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* Writes <root>/fashion-mnist/{train,t10k}-*.gz with the first images of Debian's Fashion-MNIST. */
static inline void rel_make_data(const char *root) {
    char dir[700], path[800];
    snprintf(dir, sizeof dir, "%s/fashion-mnist", root);
    if (make_dirs(dir) != 0) rel_die("data root");
    DataOptions none = {.root = "/nonexistent"};
    for (int t = 0; t < 2; t++) {
        Dataset *ds = dataset_open("fashionmnist", t ? "test" : "train", &none);
        if (!ds) rel_die("Fashion-MNIST (make deps installs dataset-fashion-mnist)");
        uint32_t n = t ? REL_TEST : REL_TRAIN;
        uint8_t *img = malloc(16 + (size_t)n * 784), *lab = malloc(8 + (size_t)n);
        rel_be32(img, 0x803), rel_be32(img + 4, n), rel_be32(img + 8, 28), rel_be32(img + 12, 28);
        rel_be32(lab, 0x801), rel_be32(lab + 4, n);
        DataReader *r = data_reader_new(ds);
        for (uint32_t i = 0; i < n; i++) {
            Img im;
            if (data_reader_image(r, i, JPEG_FULL, &im) != 0) rel_die("Fashion-MNIST image");
            for (int p = 0; p < 784; p++) img[16 + (size_t)i * 784 + p] = img_row(&im, p / 28)[3 * (p % 28)];
            lab[8 + i] = (uint8_t)dataset_label(ds, i);
        }
        data_reader_free(r);
        dataset_close(ds);
        snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", dir, t ? "t10k" : "train");
        rel_write_gz(path, img, 16 + (size_t)n * 784);
        snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", dir, t ? "t10k" : "train");
        rel_write_gz(path, lab, 8 + (size_t)n);
        free(img), free(lab);
    }
}

static inline RelRun rel_run(MethodKind method) {
    RelRun r = {.method = method, .loader_threads = 2};
    return r;
}

static inline TrainConfig rel_config(const RelRun *r, const char *root) {
    TrainConfig c;
    if (train_config_defaults(&c, "fashionmnist") != 0) rel_die("config");
    snprintf(c.data_root, sizeof c.data_root, "%s", root);
    c.backbone = (ResNetSpec){BLOCK_BASIC, {1, 1, 0, 0}, 16, STEM_CIFAR, false};
    c.proj_hidden = 32, c.proj_out = 16, c.image_size = 16;
    c.subset = r->subset ? r->subset : 512, c.batch = r->batch ? r->batch : 64;
    c.epochs = r->epochs ? r->epochs : 2, c.lr_scaling = LR_SCALE_LINEAR;
    c.method = r->method, c.views = r->method == METHOD_RSA ? VIEWS_MA : VIEWS_AA;
    c.linear_epochs = 0, c.knn_every = 0, c.loader_threads = r->loader_threads, c.seed = 5;
    c.queue_size = 256, c.temperature = 0.2, c.tau_base = 0.99; /* MoCo */
    c.checkpoint_every = r->checkpoint_every;
    if (r->lr > 0) c.lr = r->lr;
    if (r->backend[0]) snprintf(c.backend, sizeof c.backend, "%s", r->backend);
    return c;
}

/* ---- the child driver ---- */

static volatile sig_atomic_t rel_stop;
static inline void rel_on_signal(int sig) {
    (void)sig;
    rel_stop = 1;
}

static inline void rel_progress(void *ctx, const TrainProgress *p) {
    (void)ctx;
    if (strcmp(p->phase, "train") == 0) {
        printf("step %lld\n", (long long)p->step);
        fflush(stdout);
    }
}

/* argv: --child root=R dir=D method=M loader=N every=N lr=X epochs=N backend=B signals=0|1 subset=N batch=N */
static inline int rel_child(int argc, char **argv) {
    RelRun r = rel_run(METHOD_RSA);
    const char *root = "", *dir = "";
    bool signals = false;
    for (int i = 2; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) return 3;
        *eq = 0;
        const char *k = argv[i], *v = eq + 1;
        if (!strcmp(k, "root")) root = v;
        else if (!strcmp(k, "dir")) dir = v;
        else if (!strcmp(k, "method")) r.method = (MethodKind)atoi(v);
        else if (!strcmp(k, "loader")) r.loader_threads = atoi(v);
        else if (!strcmp(k, "every")) r.checkpoint_every = atoll(v);
        else if (!strcmp(k, "lr")) r.lr = atof(v);
        else if (!strcmp(k, "epochs")) r.epochs = atoi(v);
        else if (!strcmp(k, "backend")) snprintf(r.backend, sizeof r.backend, "%s", v);
        else if (!strcmp(k, "subset")) r.subset = atoi(v);
        else if (!strcmp(k, "batch")) r.batch = atoi(v);
        else if (!strcmp(k, "signals")) signals = atoi(v) != 0;
        else return 3;
    }
    if (signals) { /* as the CLI does: SIGINT/SIGTERM stop at the next step boundary with a checkpoint */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = rel_on_signal;
        sa.sa_flags = SA_RESTART;
        if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
            return 3;
    }
    TrainConfig c = rel_config(&r, root);
    TrainHooks h = {.progress = rel_progress, .stop = &rel_stop};
    TrainResult res;
    int rc = train_run(&c, dir, "rel", &h, &res);
    if (rc == 0) printf("done\n");
    else if (rc == 1) printf("stopped\n");
    else printf("failed: %s\n", rsa_error_message());
    fflush(stdout);
    return rc == 0 ? 0 : rc == 1 ? 1 : 2;
}

typedef struct {
    pid_t pid;
    int out; /* the child's stdout */
    char buf[8192];
    size_t len;
    int64_t last_step;
    char final[2048]; /* "done", "stopped" or "failed: ..." */
} RelChild;

/* Starts `<this binary> --child root=... dir=... <the run's keys> extra` with OMP_NUM_THREADS=omp. */
static inline RelChild rel_spawn(const RelRun *r, const char *dir, int omp, bool signals) {
    char a[11][700];
    snprintf(a[0], sizeof a[0], "root=%s", rel_data_root);
    snprintf(a[1], sizeof a[1], "dir=%s", dir);
    snprintf(a[2], sizeof a[2], "method=%d", (int)r->method);
    snprintf(a[3], sizeof a[3], "loader=%d", r->loader_threads);
    snprintf(a[4], sizeof a[4], "every=%lld", (long long)r->checkpoint_every);
    snprintf(a[5], sizeof a[5], "lr=%.17g", r->lr);
    snprintf(a[6], sizeof a[6], "epochs=%d", r->epochs);
    snprintf(a[7], sizeof a[7], "backend=%s", r->backend);
    snprintf(a[8], sizeof a[8], "signals=%d", signals ? 1 : 0);
    snprintf(a[9], sizeof a[9], "subset=%d", r->subset);
    snprintf(a[10], sizeof a[10], "batch=%d", r->batch);
    char *argv[14] = {"/proc/self/exe", "--child"};
    for (int i = 0; i < 11; i++) argv[2 + i] = a[i];
    argv[13] = NULL;
    /* the environment with OMP_NUM_THREADS replaced, made before fork (only exec-safe calls after it) */
    extern char **environ;
    size_t ne = 0;
    while (environ[ne]) ne++;
    char **envp = calloc(ne + 3, sizeof *envp), omp_env[64], wait_env[] = "OMP_WAIT_POLICY=passive";
    size_t k = 0;
    for (size_t i = 0; i < ne; i++)
        if (strncmp(environ[i], "OMP_NUM_THREADS=", 16) != 0 && strncmp(environ[i], "OMP_WAIT_POLICY=", 16) != 0)
            envp[k++] = environ[i];
    snprintf(omp_env, sizeof omp_env, "OMP_NUM_THREADS=%d", omp);
    envp[k++] = omp_env;
    envp[k++] = wait_env; /* no spinning at barriers: the tests share 2 cores with loader threads (bits unchanged) */
    envp[k] = NULL;
    int fds[2];
    RelChild c = {.pid = -1, .out = -1, .last_step = 0};
    if (pipe(fds) != 0) {
        free(envp);
        return c;
    }
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        if (dup2(fds[1], STDOUT_FILENO) < 0) _exit(127);
        close(fds[0]), close(fds[1]);
        execve("/proc/self/exe", argv, envp);
        _exit(127);
    }
    free(envp);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return c;
    }
    c.pid = pid, c.out = fds[0];
    return c;
}

/* Reads the child's output for up to timeout_ms (-1: until it closes). Returns false once the output has ended. */
static inline bool rel_read(RelChild *c, int timeout_ms) {
    struct pollfd p = {.fd = c->out, .events = POLLIN};
    int rc = poll(&p, 1, timeout_ms);
    if (rc <= 0) return rc == 0 || errno == EINTR;
    if (c->len >= sizeof c->buf - 1) c->len = 0;
    ssize_t n = read(c->out, c->buf + c->len, sizeof c->buf - 1 - c->len);
    if (n <= 0) return false;
    c->len += (size_t)n;
    c->buf[c->len] = 0;
    char *line = c->buf, *nl;
    while ((nl = strchr(line, '\n')) != NULL) {
        *nl = 0;
        if (strncmp(line, "step ", 5) == 0) c->last_step = atoll(line + 5);
        else snprintf(c->final, sizeof c->final, "%s", line);
        line = nl + 1;
    }
    memmove(c->buf, line, strlen(line) + 1);
    c->len = strlen(c->buf);
    return true;
}

static inline double rel_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A child that runs longer than this is hung: killed, and the test fails on its status. */
enum { REL_CHILD_SECONDS = 600 };

/* Waits until the child has reported step >= step (true), or its output ended (false). */
static inline bool rel_wait_step(RelChild *c, int64_t step) {
    double until = rel_now() + REL_CHILD_SECONDS;
    while (c->last_step < step && rel_now() < until)
        if (!rel_read(c, 1000)) return false;
    return c->last_step >= step;
}

/* Reads the rest of the output and reaps the child: its exit status, or 128 + signal. */
static inline int rel_finish(RelChild *c) {
    double until = rel_now() + REL_CHILD_SECONDS;
    while (rel_read(c, 1000))
        if (rel_now() > until) {
            kill(c->pid, SIGKILL);
            snprintf(c->final, sizeof c->final, "hung: killed after %d s", (int)REL_CHILD_SECONDS);
            break;
        }
    close(c->out);
    int st;
    while (waitpid(c->pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Runs the child to its end; returns its status. */
static inline int rel_run_child(const RelRun *r, const char *dir, int omp, char *final, size_t final_size) {
    RelChild c = rel_spawn(r, dir, omp, false);
    if (c.pid < 0) return -1;
    int st = rel_finish(&c);
    if (final) snprintf(final, final_size, "%s", c.final);
    return st;
}

/* ---- comparing runs (tests/util/runcmp.h) ---- */

/* Checkpoint step (metadata), -1 if there is no readable checkpoint. */
static inline int64_t rel_checkpoint_step(const char *dir) {
    char path[800];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
    if (access(path, F_OK) != 0) return -1;
    StFile f;
    if (st_open(&f, path) != 0) return -2;
    const char *s = st_meta(&f, "step");
    int64_t step = s ? atoll(s) : -2;
    st_close(&f);
    return step;
}

/* Number of complete step rows of steps.tsv and the step of the last one (0 if none). */
static inline int64_t rel_last_row(const char *dir, int64_t *rows) {
    char *m = run_step_metrics(dir);
    int64_t last = 0, n = 0;
    for (char *line = m ? strchr(m, '\n') : NULL; line && line[1]; line = strchr(line + 1, '\n')) {
        last = atoll(line + 1);
        n++;
    }
    free(m);
    if (rows) *rows = n;
    return last;
}

static inline void rel_rm(const char *path) {
    char cmd[900];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", path);
}

/* Sets up the data root (once per binary). */
static inline void rel_setup(void) {
    snprintf(rel_data_root, sizeof rel_data_root, "%s/data", test_tmpdir());
    rel_make_data(rel_data_root);
}

#endif
