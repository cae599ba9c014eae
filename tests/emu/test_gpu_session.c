/* The benchmarks a GPU session runs (bench/gpu_session.sh: step_bench on the cuda backend, with each precision
 * and convolution setting it measures), at the quick scale on the emulated backend, so that a GPU session's few
 * minutes are not lost to a bench that cannot run: each must exit 0, print its "ours cuda" line with a throughput and
 * the GPU memory it used, and keep a 16-bit network's convolutions on the 16-bit path (no "note:" line about
 * convolutions cuDNN could not serve in 16 bits). step_bench is built next to this test with the cuda branches
 * compiled in (RSA_CUDA) and the emulated backend linked. */
#include "tests/util/testlib.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char bench[PATH_MAX];

/* gpu_session.sh's settings (r50 and r18c there, quick here; `fwd` is the evaluation's feature pass) */
static const char *const RUNS[] = {
    "rsa 4 1 bf16 fastest",          "rsa 4 1 bf16 fastest wgrad16", "rsa 4 1 bf16 fastest saved16",
    "rsa 4 1 bf16 fastest fp32conv", "rsa 4 1 tf32 fastest",         "fwd 4 1 tf32 fastest",
};

/* Runs step_bench with `env` (VAR=value words, or "") and args; its output in out, its "ours cuda" line's img/s and
 * GPU MiB in *ips and *mib (0 when missing); returns the exit status. */
static int bench_run(const char *env, const char *args, char *out, size_t n, double *ips, double *mib) {
    char cmd[PATH_MAX + 300];
    snprintf(cmd, sizeof cmd, "env %s '%s' cuda quick %s 2>&1", env, bench, args);
    *ips = *mib = 0, out[0] = 0;
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL, "cannot start %s", cmd);
    if (!p) return -1;
    size_t got = fread(out, 1, n - 1, p);
    out[got] = 0;
    int status = pclose(p);
    const char *line = strstr(out, "ours cuda ");
    const char *rate = line ? strstr(line, "img/s") : NULL, *used = line ? strstr(line, "GPU used ") : NULL;
    if (rate) {
        const char *start = rate;
        while (start > line && start[-1] == ' ') start--;
        while (start > line && start[-1] != ' ') start--;
        *ips = atof(start);
    }
    if (used) *mib = atof(used + strlen("GPU used "));
    return status;
}

static void test_bench_runs(void) {
    for (size_t i = 0; i < sizeof RUNS / sizeof RUNS[0]; i++) {
        char out[4096];
        double ips, mib;
        int status = bench_run("", RUNS[i], out, sizeof out, &ips, &mib);
        CHECK(status == 0 && ips > 0 && mib > 0, "step_bench cuda quick %s (exit status %d):\n%s", RUNS[i], status,
              out);
        CHECK(!strstr(out, "note:"), "step_bench cuda quick %s: convolutions left the 16-bit path:\n%s", RUNS[i], out);
    }
}

/* RSA_EMU_COUNT_ONLY (cuda_emu.h) skips the arithmetic to count a large step's device memory on this machine: the
 * count must be the one a computing run gives. */
static void test_count_only_memory(void) {
    static const char *const runs[] = {"rsa 4 1 bf16", "rsa 4 1 bf16 saved16", "rsa 4 1 tf32"};
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        char out[4096], counted_out[4096];
        double ips, mib, counted_ips, counted;
        int a = bench_run("", runs[i], out, sizeof out, &ips, &mib);
        int b = bench_run("RSA_EMU_COUNT_ONLY=1", runs[i], counted_out, sizeof counted_out, &counted_ips, &counted);
        CHECK(a == 0 && b == 0 && mib > 0 && counted == mib, "step_bench cuda quick %s: GPU used %.0f MiB computing, "
              "%.0f MiB counting only:\n%s\n%s", runs[i], mib, counted, out, counted_out);
    }
}

int main(void) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "cannot read /proc/self/exe\n");
        return 1;
    }
    self[n] = 0;
    snprintf(bench, sizeof bench, "%s/step_bench", dirname(self));
    RUN(test_bench_runs);
    RUN(test_count_only_memory);
    return test_finish();
}
