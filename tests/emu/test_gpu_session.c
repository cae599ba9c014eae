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

static void test_bench_runs(void) {
    for (size_t i = 0; i < sizeof RUNS / sizeof RUNS[0]; i++) {
        char cmd[PATH_MAX + 200], out[4096] = "";
        snprintf(cmd, sizeof cmd, "'%s' cuda quick %s 2>&1", bench, RUNS[i]);
        FILE *p = popen(cmd, "r");
        CHECK(p != NULL, "cannot start %s", cmd);
        if (!p) return;
        size_t got = fread(out, 1, sizeof out - 1, p);
        out[got] = 0;
        int status = pclose(p);
        const char *line = strstr(out, "ours cuda ");
        const char *rate = line ? strstr(line, "img/s") : NULL, *used = line ? strstr(line, "GPU used ") : NULL;
        double ips = 0, mib = 0;
        if (rate) {
            const char *start = rate;
            while (start > line && start[-1] == ' ') start--;
            while (start > line && start[-1] != ' ') start--;
            ips = atof(start);
        }
        if (used) mib = atof(used + strlen("GPU used "));
        CHECK(status == 0 && line && ips > 0 && mib > 0, "step_bench cuda quick %s (exit status %d):\n%s", RUNS[i],
              status, out);
        CHECK(!strstr(out, "note:"), "step_bench cuda quick %s: convolutions left the 16-bit path:\n%s", RUNS[i], out);
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
    return test_finish();
}
