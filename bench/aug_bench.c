/* Our side of the augmentation benchmark (bench/aug.sh builds and runs it after bench/aug_bench.py).
 *
 * usage: aug_bench DIR   with DIR prepared by `aug_bench.py prepare DIR` (and, for the ratios, timed by
 *                        `aug_bench.py run DIR`, which writes DIR/torchvision.txt)
 *
 * Times the loader making 4-view MA batches (w1, w2, a1, a2 as float NCHW, normalised): 32 px views of the 32x32
 * images of DIR/small.u8 held in memory, and 224 px views of the JPEGs of DIR/imagenet/train (read and decoded every
 * time, as torchvision's ImageFolder does), on one core (threads = 0: the caller makes the batches) and on all cores
 * (one worker thread per core). Also the JPEG path with TurboJPEG DCT scaling, and how far that option moves the
 * pixels on these photographs. */
#include "bench/bench_time.h"
#include "trainer/core/error.h"
#include "trainer/data/data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* cores this process kept busy during the last measurement: below the thread count when the machine is shared */
static double last_cores_used;

static void die(const char *what) {
    fprintf(stderr, "aug_bench: %s: %s\n", what, rsa_error_message());
    exit(1);
}

/* Images per second of the loader over at least min_seconds (whole epochs; the first batch is not timed). */
static double measure(const Dataset *ds, LoaderSpec spec, double min_seconds, double *wait_share) {
    Loader *l = loader_new(ds, &spec);
    if (!l) die("loader_new");
    double t0 = 0, c0 = 0;
    int64_t images = 0;
    bool started = false;
    for (int epoch = 0; epoch < 1000; epoch++) {
        if (loader_start(l, epoch, 0)) die("loader_start");
        Batch *b;
        for (;;) {
            if (loader_next(l, &b)) die("loader_next");
            if (!b) break;
            if (!started) {
                started = true;
                t0 = now();
                c0 = cpu_now();
            } else {
                images += b->n;
            }
            loader_release(l, b);
        }
        if (started && now() - t0 >= min_seconds) break;
    }
    double rate = (double)images / (now() - t0);
    last_cores_used = (cpu_now() - c0) / (now() - t0);
    LoaderStats st = loader_stats(l);
    if (wait_share) *wait_share = st.wait_seconds / (now() - t0);
    loader_free(l);
    return rate;
}

static bool torchvision_rate(const char *dir, const char *name, double *one, double *many) {
    char path[4096], key[64];
    snprintf(path, sizeof path, "%s/torchvision.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    int cores;
    bool found = false;
    while (fscanf(f, "%63s %lf %lf %d", key, one, many, &cores) == 4)
        if (strcmp(key, name) == 0) {
            found = true;
            break;
        }
    fclose(f);
    return found;
}

static void report(const char *dir, const char *name, const char *label, double one, double many, int cores) {
    double t1, tn;
    printf("ours %-28s %9.1f images/s on one core, %9.1f on %d cores (%.1f cores busy)", label, one, many, cores,
           last_cores_used);
    if (torchvision_rate(dir, name, &t1, &tn))
        printf("  ->  %.1fx torchvision per core, %.1fx on all cores\n", one / t1, many / tn);
    else
        printf("  (no torchvision.txt: run aug_bench.py run %s for the ratios)\n", dir);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR (prepared by bench/aug_bench.py prepare DIR)\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;

    /* 32 px, in memory */
    char path[4096];
    snprintf(path, sizeof path, "%s/small.u8", dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "aug_bench: %s missing: run bench/aug_bench.py prepare %s\n", path, dir);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    size_t n = (size_t)bytes / (32 * 32 * 3);
    uint8_t *px = malloc((size_t)bytes);
    if (!px || fread(px, 1, (size_t)bytes, f) != (size_t)bytes) {
        fprintf(stderr, "aug_bench: cannot read %s\n", path);
        return 1;
    }
    fclose(f);
    Dataset *small = dataset_from_memory("small32", n, 32, 32, px, NULL, 10);
    free(px);
    if (!small) die("dataset_from_memory");
    LoaderSpec spec;
    loader_spec_default("cifar10", VIEWS_MA, 1, &spec);
    spec.batch = 64;
    spec.threads = 0;
    double wait;
    double one = measure(small, spec, 3.0, NULL);
    spec.threads = cores;
    double many = measure(small, spec, 3.0, &wait);
    report(dir, "small32", "MA 4 views, 32 px:", one, many, cores);
    dataset_close(small);

    /* 224 px from JPEG files */
    DataOptions o = {.root = dir};
    Dataset *jpeg = dataset_open("imagenet", "train", &o);
    if (!jpeg) die("opening the JPEG folder");
    loader_spec_default("imagenet", VIEWS_MA, 1, &spec);
    spec.batch = 16;
    spec.threads = 0;
    one = measure(jpeg, spec, 4.0, NULL);
    spec.threads = cores;
    many = measure(jpeg, spec, 4.0, &wait);
    report(dir, "jpeg224", "MA 4 views, JPEG -> 224 px:", one, many, cores);
    spec.jpeg_dct_scale = true;
    spec.threads = 0;
    one = measure(jpeg, spec, 4.0, NULL);
    spec.threads = cores;
    many = measure(jpeg, spec, 4.0, &wait);
    report(dir, "jpeg224", "same with DCT scaling:", one, many, cores);

    /* what DCT scaling changes: the same views decoded both ways (eval-test Resize(256) + CenterCrop(224) reduces
     * whenever the short side allows, MA only for large crops) */
    for (int mode = 0; mode < 2; mode++) {
        LoaderSpec s;
        loader_spec_default("imagenet", mode ? VIEWS_EVAL_TEST : VIEWS_MA, 3, &s);
        s.batch = 32;
        s.threads = cores;
        s.shuffle = false;
        s.drop_last = true;
        float *exact = NULL;
        double worst = 0, sum = 0;
        size_t count = 0;
        for (int pass = 0; pass < 2; pass++) {
            s.jpeg_dct_scale = pass == 1;
            Loader *l = loader_new(jpeg, &s);
            if (!l || loader_start(l, 0, 0)) die("loader");
            Batch *b;
            if (loader_next(l, &b) || !b) die("loader_next");
            size_t per = (size_t)b->n * 3 * b->size * b->size;
            count = per * (size_t)b->views;
            if (pass == 0) {
                exact = malloc(count * sizeof(float));
                for (int v = 0; v < b->views; v++) memcpy(exact + v * per, b->view[v], per * sizeof(float));
            } else {
                for (int v = 0; v < b->views; v++)
                    for (size_t i = 0; i < per; i++) {
                        double d = fabs((double)b->view[v][i] - exact[v * per + i]) * 255.0 * 0.226;
                        worst = fmax(worst, d);
                        sum += d;
                    }
            }
            loader_release(l, b);
            loader_free(l);
        }
        printf("DCT scaling vs exact decode, %s on these JPEGs: max |diff| %.0f levels, mean %.2f levels\n",
               mode ? "Resize(256)+CenterCrop(224)" : "MA views at 224", worst, sum / (double)count);
        free(exact);
    }
    dataset_close(jpeg);
    return 0;
}
