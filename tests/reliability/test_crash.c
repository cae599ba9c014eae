/* Crash safety of a training run (REPRODUCE.md, "Guarantees"):
 *
 * - SIGKILL at random points (delays drawn from the project's Philox stream for each killer seed), again and again
 *   until a run finishes: after every kill the run directory holds either no checkpoint or a complete one, and the
 *   finished run equals the uninterrupted run bit for bit (checkpoint tensors, per-step metrics).
 * - SIGKILL during a checkpoint write (the moment a checkpoint file is created or written to, seen through inotify;
 *   six times): the previous checkpoint stays, the resumed run equals the uninterrupted one, and the next run start
 *   removes the torn temporary file. (Checked to catch a writer that writes the checkpoint in place.)
 * - SIGTERM and SIGINT (handled as the CLI does, through TrainHooks.stop): the run writes a checkpoint at the next
 *   step boundary and exits with status "stopped"; its checkpoint, steps.tsv and the resumed run are exact.
 * - A full disk. (a) Injected: write() and fsync() of this binary fail with ENOSPC (the test defines them; they
 *   pass through to the system calls unless armed) in the middle of a checkpoint, and at the flush of steps.tsv.
 *   (b) Real: the run in a tmpfs too small for two checkpoints, mounted in a private mount namespace (root, or an
 *   unprivileged user namespace; skipped where neither is allowed). In each case the run fails with a message that
 *   names the file, the system error and the hint, the previous checkpoint and the metrics up to it stay intact, no
 *   temporary file is left, and resuming on a disk with space ends bit-identical to the uninterrupted run. */
#include "tests/reliability/relutil.h"
#include "trainer/core/rng.h"

#include <fcntl.h>
#include <omp.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/syscall.h>

static bool slow;
static char straight[700]; /* the uninterrupted run, checkpoints every step */

static char *dir_of(const char *name) {
    static char dirs[8][700];
    static int next;
    char *d = dirs[next++ % 8];
    snprintf(d, sizeof dirs[0], "%s/%s", test_tmpdir(), name);
    rel_rm(d);
    return d;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static RelRun every_step(void) {
    RelRun r = rel_run(METHOD_RSA);
    r.checkpoint_every = 1; /* a checkpoint write at every step: kills land in one often */
    return r;
}

static double straight_seconds;

static void make_straight(void) {
    if (straight[0]) return;
    snprintf(straight, sizeof straight, "%s/straight", test_tmpdir());
    rel_rm(straight);
    RelRun r = every_step();
    double t0 = now();
    char final[2048] = "";
    int st = rel_run_child(&r, straight, 1, final, sizeof final);
    straight_seconds = now() - t0;
    if (st != 0) {
        fprintf(stderr, "the uninterrupted run failed (%d): %s\n", st, final);
        exit(1);
    }
}

/* The state a kill may leave: no checkpoint, or one that parses, with its metrics rows on disk. */
static void check_after_kill(const char *dir, const char *what) {
    int64_t step = rel_checkpoint_step(dir);
    CHECK(step >= -1, "%s: the checkpoint left by the kill does not parse: %s", what, rsa_error_message());
    if (step > 0) {
        int64_t rows;
        int64_t last = rel_last_row(dir, &rows);
        CHECK(last >= step, "%s: checkpoint at step %lld but steps.tsv ends at step %lld", what, (long long)step,
              (long long)last);
    }
}

static int count_temporaries(const char *dir) {
    char cmd[900];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -c '\\.tmp\\.'", dir);
    FILE *p = popen(cmd, "r");
    int n = 0;
    if (!p || fscanf(p, "%d", &n) != 1) n = -1;
    if (p) pclose(p);
    return n;
}

static void sigkill_random(uint64_t killer) {
    make_straight();
    char name[32];
    snprintf(name, sizeof name, "killed-%llu", (unsigned long long)killer);
    char *dir = dir_of(name);
    RelRun r = every_step();
    int kills = 0, torn = 0, finished = 0;
    for (uint32_t attempt = 0; attempt < 40 && !finished; attempt++) {
        Rng rng;
        rng_init(&rng, killer, RNG_TEST, attempt, 0, 0);
        /* a point anywhere in a whole run (process start and data loading included) */
        double delay = rng_range(&rng, 0.02, 0.8) * straight_seconds;
        RelChild c = rel_spawn(&r, dir, 1, false);
        CHECK(c.pid > 0, "cannot start the run");
        if (c.pid <= 0) return;
        double until = now() + delay;
        bool ended = false;
        while (!ended && now() < until) ended = !rel_read(&c, (int)((until - now()) * 1000) + 1);
        if (!ended) {
            kill(c.pid, SIGKILL);
            kills++;
        }
        int st = rel_finish(&c);
        if (st == 0) {
            finished = 1;
            break;
        }
        CHECK(st == 128 + SIGKILL, "the run ended with status %d: %s", st, c.final);
        torn += count_temporaries(dir) > 0;
        char what[64];
        snprintf(what, sizeof what, "kill %d (after %.2fs)", kills, delay);
        check_after_kill(dir, what);
        if (test_failed()) return;
    }
    if (!finished) { /* let it finish */
        char final[2048];
        int st = rel_run_child(&r, dir, 1, final, sizeof final);
        CHECK(st == 0, "the last resume failed (%d): %s", st, final);
    }
    CHECK_SAME_RUN(straight, dir);
    CHECK(count_temporaries(dir) == 0, "temporary files left behind in %s", dir);
    test_note("killer seed %llu: %d kills (%d left a torn temporary file), then identical to the uninterrupted run",
              (unsigned long long)killer, kills, torn);
}

static void test_sigkill_random(void) {
    for (uint64_t k = 1; k <= 4; k++) sigkill_random(k);
}
static void test_sigkill_random_more(void) {
    if (!slow) {
        test_note("killer seeds 5-20: with RSA_TEST_SLOW=1 (make test-slow)");
        return;
    }
    for (uint64_t k = 5; k <= 20; k++) sigkill_random(k);
}

/* Kills the run the moment a checkpoint's temporary file is created (inotify), at the (skip + 1)-th one. */
static void test_sigkill_during_checkpoint_write(void) {
    make_straight();
    char *dir = dir_of("killed-in-write");
    if (make_dirs(dir) != 0) rel_die("mkdir");
    RelRun r = every_step();
    int in_write = 0, attempts = 6; /* each resumes, completes one checkpoint and is killed in the next: 12 of 16 */
    for (int attempt = 0; attempt < attempts; attempt++) {
        int in = inotify_init1(IN_CLOEXEC);
        CHECK(in >= 0 && inotify_add_watch(in, dir, IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE) >= 0, "inotify: %s",
              strerror(errno));
        if (test_failed()) return;
        /* after one checkpoint file was written and closed, the first creation of or write to the next one (written
         * in place by a non-atomic writer: the test must catch that too) */
        int skip = 1, closed = 0;
        RelChild c = rel_spawn(&r, dir, 1, false);
        bool killed = false;
        while (!killed) {
            struct pollfd p[2] = {{.fd = in, .events = POLLIN}, {.fd = c.out, .events = POLLIN}};
            if (poll(p, 2, 60000) <= 0) break;
            if (p[0].revents & POLLIN) {
                char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
                ssize_t n = read(in, buf, sizeof buf);
                for (char *e = buf; n > 0 && e < buf + n;) {
                    struct inotify_event *ev = (struct inotify_event *)e;
                    if (ev->len && strncmp(ev->name, "checkpoint.safetensors", 22) == 0) {
                        if (ev->mask & IN_CLOSE_WRITE) {
                            closed++;
                        } else if (closed >= skip) {
                            kill(c.pid, SIGKILL);
                            killed = true;
                            break;
                        }
                    }
                    e += sizeof *ev + ev->len;
                }
            }
            if (!killed && (p[1].revents & (POLLIN | POLLHUP)) && !rel_read(&c, 0)) break;
        }
        close(in);
        int st = rel_finish(&c);
        CHECK(killed && st == 128 + SIGKILL, "attempt %d: not killed in a checkpoint write (status %d)", attempt, st);
        in_write += count_temporaries(dir) > 0;
        check_after_kill(dir, "kill in a checkpoint write");
        if (test_failed()) return;
    }
    /* the kill follows the file's creation by microseconds, but a loaded machine may let the child finish the write
     * first: at least one must land inside it */
    CHECK(in_write >= 1, "none of %d kills left the checkpoint's temporary file (killed mid-write)", attempts);
    char final[2048];
    int st = rel_run_child(&r, dir, 1, final, sizeof final);
    CHECK(st == 0, "the resume failed (%d): %s", st, final);
    CHECK_SAME_RUN(straight, dir);
    CHECK(count_temporaries(dir) == 0, "the torn temporary files were not removed");
    test_note("%d of %d kills inside a checkpoint write, then identical to the uninterrupted run", in_write, attempts);
}

static void stop_by_signal(int sig, int64_t after_step) {
    make_straight();
    char name[32];
    snprintf(name, sizeof name, "signal-%d", sig);
    char *dir = dir_of(name);
    RelRun r = rel_run(METHOD_RSA); /* checkpoints at epoch ends only: the signal makes the one in between */
    RelChild c = rel_spawn(&r, dir, 1, true);
    CHECK(rel_wait_step(&c, after_step), "the run ended before step %lld: %s", (long long)after_step, c.final);
    kill(c.pid, sig);
    int st = rel_finish(&c);
    CHECK(st == 1 && strcmp(c.final, "stopped") == 0, "%s: status %d, \"%s\" (expected 1, \"stopped\")",
          strsignal(sig), st, c.final);
    int64_t step = rel_checkpoint_step(dir), rows;
    int64_t last = rel_last_row(dir, &rows);
    CHECK(step >= after_step && step == c.last_step && last == step && rows == step,
          "%s after step %lld: checkpoint at step %lld, the last reported step %lld, steps.tsv %lld rows ending at "
          "%lld",
          strsignal(sig), (long long)after_step, (long long)step, (long long)c.last_step, (long long)rows,
          (long long)last);
    CHECK(count_temporaries(dir) == 0, "temporary files left behind");
    char final[2048];
    st = rel_run_child(&r, dir, 1, final, sizeof final);
    CHECK(st == 0, "the resume failed (%d): %s", st, final);
    CHECK_SAME_RUN(straight, dir);
}

static void test_sigterm(void) { stop_by_signal(SIGTERM, 3); }
static void test_sigint(void) { stop_by_signal(SIGINT, 10); }

/* ---- ENOSPC injected: write() and fsync() of this program ---- */

static atomic_llong enospc_budget = -1; /* bytes that may still go to regular files; -1: not armed */
static atomic_int enospc_fsync;         /* fail fsync on regular files */
static atomic_int enospc_hits;

static bool regular(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

ssize_t write(int fd, const void *buf, size_t n) {
    long long left = atomic_load(&enospc_budget);
    if (left >= 0 && regular(fd)) {
        if (left == 0) {
            atomic_fetch_add(&enospc_hits, 1);
            errno = ENOSPC;
            return -1;
        }
        if ((long long)n > left) n = (size_t)left; /* a short write first, as a filling disk does */
        atomic_fetch_sub(&enospc_budget, (long long)n);
    }
    return syscall(SYS_write, fd, buf, n);
}

int fsync(int fd) {
    if (atomic_load(&enospc_fsync) && regular(fd)) {
        atomic_fetch_add(&enospc_hits, 1);
        errno = ENOSPC;
        return -1;
    }
    return (int)syscall(SYS_fsync, fd);
}

typedef struct {
    int64_t arm_at; /* arm after this step */
    long long budget;
    bool fsync;
} Arm;

static void arm_progress(void *ctx, const TrainProgress *p) {
    const Arm *a = ctx;
    if (strcmp(p->phase, "train") == 0 && p->step == a->arm_at) {
        if (a->fsync) atomic_store(&enospc_fsync, 1);
        else atomic_store(&enospc_budget, a->budget);
    }
}

static void disarm(void) {
    atomic_store(&enospc_budget, -1);
    atomic_store(&enospc_fsync, 0);
}

/* The run (checkpoints every 2 steps) hits the full disk after step 3; what must hold afterwards. */
static void full_disk_injected(const char *name, Arm arm, const char *file_named) {
    make_straight();
    char *dir = dir_of(name);
    RelRun r = rel_run(METHOD_RSA);
    r.checkpoint_every = 2;
    TrainConfig c = rel_config(&r, rel_data_root);
    TrainHooks h = {.progress = arm_progress, .ctx = &arm};
    TrainResult res;
    atomic_store(&enospc_hits, 0);
    int rc = train_run(&c, dir, "rel", &h, &res);
    disarm();
    const char *msg = rsa_error_message();
    CHECK(rc == -1, "the run did not fail on the full disk (rc %d)", rc);
    CHECK(atomic_load(&enospc_hits) > 0, "ENOSPC was never injected");
    CHECK(strstr(msg, file_named) && strstr(msg, "No space left on device") && strstr(msg, "the disk is full"),
          "message: %s", msg);
    test_note("%s", msg);
    CHECK(rel_checkpoint_step(dir) == 2, "the previous checkpoint (step 2) is gone or damaged: step %lld",
          (long long)rel_checkpoint_step(dir));
    int64_t rows;
    rel_last_row(dir, &rows);
    CHECK(rows >= 2, "steps.tsv lost the rows of the checkpoint: %lld rows", (long long)rows);
    CHECK(count_temporaries(dir) == 0, "a temporary file was left behind");
    /* space again: the resumed run ends as if the disk had never filled */
    rc = train_run(&c, dir, "rel", &(TrainHooks){0}, &res);
    CHECK(rc == 0, "the resume failed: %s", rsa_error_message());
    CHECK_SAME_RUN(straight, dir);
}

static void test_full_disk_in_checkpoint_write(void) {
    full_disk_injected("enospc-write", (Arm){.arm_at = 3, .budget = 4000}, "checkpoint.safetensors");
}

static void test_full_disk_at_metrics_flush(void) {
    full_disk_injected("enospc-fsync", (Arm){.arm_at = 3, .fsync = true}, "steps.tsv");
}

/* ---- a real full disk: a small tmpfs in a private mount namespace ---- */

static int copy_file(const char *from, const char *to) {
    size_t n;
    char *b = read_file(from, &n);
    if (!b) return -1;
    const void *pieces[1] = {b};
    int rc = atomic_write(to, pieces, &n, 1);
    free(b);
    return rc;
}

/* Child: mounts a tmpfs of `size` bytes at mnt (in its own mount namespace), runs there until the disk is full, checks
 * the message and copies the run directory to `out`. 0: as expected; 77: no way to mount here; else a failure. */
static int tmpfs_child(const char *mnt, long long size, const char *out) {
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (unshare(CLONE_NEWNS) != 0) { /* not root: an unprivileged user namespace, where we are root */
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
            printf("no mount namespace: %s\n", strerror(errno));
            return 77;
        }
        char map[64];
        const char *files[3] = {"/proc/self/setgroups", "/proc/self/uid_map", "/proc/self/gid_map"};
        for (int i = 0; i < 3; i++) {
            if (i == 0) snprintf(map, sizeof map, "deny");
            else snprintf(map, sizeof map, "0 %u 1", i == 1 ? (unsigned)uid : (unsigned)gid);
            int fd = open(files[i], O_WRONLY | O_CLOEXEC);
            bool ok = fd >= 0 && syscall(SYS_write, fd, map, strlen(map)) == (long)strlen(map);
            if (fd >= 0) close(fd);
            if (!ok && i > 0) {
                printf("cannot write %s: %s\n", files[i], strerror(errno));
                return 77;
            }
        }
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        printf("cannot make the mounts private: %s\n", strerror(errno));
        return 77;
    }
    char opts[64];
    snprintf(opts, sizeof opts, "size=%lld,mode=0755", size);
    if (mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0) {
        printf("cannot mount a tmpfs: %s\n", strerror(errno));
        return 77;
    }
    char dir[800];
    snprintf(dir, sizeof dir, "%s/run", mnt);
    RelRun r = every_step();
    TrainConfig c = rel_config(&r, rel_data_root);
    TrainResult res;
    int rc = train_run(&c, dir, "rel", &(TrainHooks){0}, &res);
    const char *msg = rsa_error_message();
    printf("%s\n", rc == -1 ? msg : "the run did not fail");
    if (rc != -1 || !strstr(msg, "No space left on device") || !strstr(msg, "the disk is full")) return 1;
    if (make_dirs(out) != 0) return 2;
    const char *files[] = {"checkpoint.safetensors", "steps.tsv", "epochs.tsv"};
    for (int i = 0; i < 3; i++) {
        char a[900], b[900];
        snprintf(a, sizeof a, "%s/%s", dir, files[i]);
        snprintf(b, sizeof b, "%s/%s", out, files[i]);
        if (access(a, F_OK) == 0 && copy_file(a, b) != 0) return 2;
    }
    printf("temporaries left: %d\n", count_temporaries(dir));
    return count_temporaries(dir) == 0 ? 0 : 3;
}

static void test_full_disk_tmpfs(void) {
    make_straight();
    char ckpt[800];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", straight);
    struct stat st;
    CHECK(stat(ckpt, &st) == 0, "no checkpoint in %s", straight);
    if (test_failed()) return;
    long long size = (long long)st.st_size * 3 / 2 + 16384; /* one checkpoint and the metrics, not two checkpoints */
    char *mnt = dir_of("tmpfs"), *out = dir_of("tmpfs-copy");
    if (make_dirs(mnt) != 0) rel_die("mkdir");
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "/proc/%ld/exe --tmpfs '%s' %lld '%s' '%s' 2>&1", (long)getpid(), mnt, size, out,
             rel_data_root);
    FILE *p = popen(cmd, "r");
    char line[2048], said[4096] = "";
    while (p && fgets(line, sizeof line, p)) strncat(said, line, sizeof said - strlen(said) - 1);
    int status = p ? pclose(p) : -1;
    int code = status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code == 77) {
        test_skip("test_full_disk_tmpfs", said);
        return;
    }
    CHECK(code == 0, "the run on the small tmpfs: status %d: %s", code, said);
    test_note("%.*s", (int)strcspn(said, "\n"), said);
    if (test_failed()) return;
    int64_t step = rel_checkpoint_step(out);
    CHECK(step >= 1, "no intact checkpoint was left on the full disk (step %lld)", (long long)step);
    int64_t rows;
    CHECK(rel_last_row(out, &rows) >= step, "steps.tsv lost the rows of the checkpoint");
    char final[2048];
    RelRun r = every_step();
    int rc = rel_run_child(&r, out, 1, final, sizeof final);
    CHECK(rc == 0, "the resume failed (%d): %s", rc, final);
    CHECK_SAME_RUN(straight, out);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--child") == 0) {
        disarm();
        return rel_child(argc, argv);
    }
    if (argc == 6 && strcmp(argv[1], "--tmpfs") == 0) {
        disarm();
        omp_set_num_threads(1);
        snprintf(rel_data_root, sizeof rel_data_root, "%s", argv[5]);
        return tmpfs_child(argv[2], atoll(argv[3]), argv[4]);
    }
    slow = getenv("RSA_TEST_SLOW") && atoi(getenv("RSA_TEST_SLOW")) > 0;
    omp_set_num_threads(1); /* the in-process runs match the uninterrupted run's thread count */
    rel_setup();
    RUN(test_sigkill_random);
    RUN(test_sigkill_random_more);
    RUN(test_sigkill_during_checkpoint_write);
    RUN(test_sigterm);
    RUN(test_sigint);
    RUN(test_full_disk_in_checkpoint_write);
    RUN(test_full_disk_at_metrics_flush);
    RUN(test_full_disk_tmpfs);
    int rc = test_finish();
    if (rc == 0) rel_rm(test_tmpdir());
    return rc;
}
