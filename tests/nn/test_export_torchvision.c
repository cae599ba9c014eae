/* What we write, torchvision loads: a ResNet-18 (CIFAR stem) and a ResNet-50 backbone saved under torchvision's
 * names are loaded by torchvision with load_state_dict(strict=True) and give our eval-mode output
 * (tests/oracle/check_torchvision_load.py, run with Debian's python3-torch). */
#include "tests/util/fixture.h"
#include "tests/util/testlib.h"
#include "trainer/core/error.h"
#include "trainer/io/model_io.h"
#include "trainer/nn/nets.h"

#include <stdio.h>
#include <stdlib.h>

static void export_and_check(const ResNetSpec *spec, const char *arch, int size) {
    const int n = 2;
    Model *m = model_new(backend_cpu());
    model_set_prefix(m, "encoder_q.");
    int image = model_input(m, 3, size, size);
    int feat = resnet_build(m, spec, image);
    CHECK(model_finalize(m, n, 21) == 0, "%s", rsa_error_message());
    /* BN state that is not the initial one: random gammas/betas and running statistics from a train pass */
    for (int b = 0; b < m->n_bns; b++) {
        const Node *nd = &m->nodes[m->bns[b].node];
        fill_uniform(m->w + m->params[nd->weight].offset, (size_t)m->bns[b].c, 100 + b, 0.5f, 1.5f);
        fill_normal(m->w + m->params[nd->bias].offset, (size_t)m->bns[b].c, 300 + b, 0.1f);
    }
    model_weights_changed(m);
    size_t nx = (size_t)n * 3 * size * size;
    float *x = test_alloc(nx), *y = test_alloc((size_t)n * resnet_feature_dim(spec));
    fill_normal(x, nx, 5, 1);
    Workspace *ws = workspace_new(m, false);
    model_forward(m, ws, n, x, true, -1);
    model_forward(m, ws, n, x, false, -1);
    workspace_read_nchw(ws, feat, y);
    char wpath[600], iopath[600], cmd[2048];
    snprintf(wpath, sizeof wpath, "%s/%s.safetensors", test_tmpdir(), arch);
    snprintf(iopath, sizeof iopath, "%s/%s_io.safetensors", test_tmpdir(), arch);
    StWriter *w = st_writer_new();
    ModelState st;
    model_state_add(m, w, "encoder_q.", "", &st);
    CHECK(st_write(w, wpath) == 0, "%s", rsa_error_message());
    st_writer_free(w), model_state_free(&st);
    w = st_writer_new();
    int64_t xs[4] = {n, 3, size, size}, ys[2] = {n, resnet_feature_dim(spec)};
    st_add(w, "x", ST_F32, 4, xs, x);
    st_add(w, "y", ST_F32, 2, ys, y);
    CHECK(st_write(w, iopath) == 0, "%s", rsa_error_message());
    st_writer_free(w);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/oracle/check_torchvision_load.py %s %s %s 2>&1", arch, wpath,
             iopath);
    FILE *p = popen(cmd, "r");
    char line[512];
    while (p && fgets(line, sizeof line, p)) printf("  # %s", line);
    int status = p ? pclose(p) : -1;
    CHECK(status == 0, "torchvision could not load or reproduce our %s (exit status %d; needs python3-torch: "
                       "make deps)", arch, status);
    workspace_free(ws), model_free(m), free(x), free(y);
}

static void test_resnet18_cifar(void) { export_and_check(&RESNET18_CIFAR, "resnet18", 32); }
static void test_resnet50(void) { export_and_check(&RESNET50, "resnet50", 64); }

int main(void) {
    RUN(test_resnet18_cifar);
    RUN(test_resnet50);
    return test_finish();
}
