/* A short training run for Valgrind (`make valgrind`): Fashion-MNIST images in a data root of its own, a one-stage
 * ResNet of width 16 at 8 px, RSA with 2 loader threads on the cpu backend; 3 of the 4 steps, stopped with a
 * checkpoint, resumed for the rest of the epoch with a kNN monitor at its end, then the checkpoint exported under
 * torchvision's names. Exit status 0 when every part succeeded. */
#include "tests/reliability/relutil.h"
#include "trainer/train/checkpoint.h"

int main(int argc, char **argv) {
    const char *base = argc > 1 ? argv[1] : "build/valgrind-smoke";
    rel_rm(base);
    snprintf(rel_data_root, sizeof rel_data_root, "%s/data", base);
    rel_make_data(rel_data_root);
    RelRun r = rel_run(METHOD_RSA);
    r.epochs = 1;
    TrainConfig c = rel_config(&r, rel_data_root);
    /* smaller than the tests' network: under Valgrind oneDNN sees an AVX2 CPU and runs its reference kernels for the
     * channel-blocked layout */
    c.backbone.layers[1] = 0, c.image_size = 8, c.batch = 16, c.subset = 64;
    c.knn_every = 1, c.eval_subset = 64, c.linear_batch = 64;
    char dir[700], out[800];
    snprintf(dir, sizeof dir, "%s/run", base);
    TrainResult res;
    TrainHooks three = {.max_steps = 3};
    int rc = train_run(&c, dir, "smoke", &three, &res);
    if (rc != 1) {
        fprintf(stderr, "smoke: the first part did not stop (%d): %s\n", rc, rsa_error_message());
        return 1;
    }
    rc = train_run(&c, dir, "smoke", &(TrainHooks){0}, &res);
    if (rc != 0) {
        fprintf(stderr, "smoke: the resume failed: %s\n", rsa_error_message());
        return 1;
    }
    snprintf(out, sizeof out, "%s/torchvision.safetensors", base);
    char ckpt[800];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", dir);
    if (checkpoint_export_torchvision(ckpt, out) != 0) {
        fprintf(stderr, "smoke: export: %s\n", rsa_error_message());
        return 1;
    }
    printf("smoke: trained %s: loss %.4f, kNN top-1 %.2f\n", dir, res.final_loss, res.knn_top1);
    return 0;
}
