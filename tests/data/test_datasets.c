/* Data set readers on small files written here in each real on-disk format (CIFAR-10/100 binary, STL-10 binary,
 * gzipped IDX, Tiny ImageNet and ImageNet folders of JPEGs made with libjpeg-turbo), on the real Fashion-MNIST
 * Debian installs, and the errors for missing, short and corrupt inputs (file name, offset, what was expected). */
#include "tests/util/testlib.h"
#include "trainer/core/error.h"
#include "trainer/core/fileio.h"
#include "trainer/data/data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <turbojpeg.h>
#include <unistd.h>
#include <zlib.h>

static char root[1024];

static void mkdirs(const char *fmt, const char *a) {
    char p[2048];
    snprintf(p, sizeof p, fmt, root, a);
    if (make_dirs(p) != 0) {
        fprintf(stderr, "%s\n", rsa_error_message());
        exit(1);
    }
}

static void write_bytes(const char *path, const void *data, size_t n) {
    const void *pieces[1] = {data};
    size_t sizes[1] = {n};
    if (atomic_write(path, pieces, sizes, 1) != 0) {
        fprintf(stderr, "%s\n", rsa_error_message());
        exit(1);
    }
}

static bool contains(const char *msg, const char *what) { return strstr(msg, what) != NULL; }

#define CHECK_MSG(what)                                                                                          \
    CHECK(contains(rsa_error_message(), what), "error message lacks \"%s\": %s", what, rsa_error_message())

/* A pixel value that identifies (image, y, x, c). */
static uint8_t pat(size_t i, int y, int x, int c) { return (uint8_t)(i * 7 + y * 13 + x * 3 + c * 101); }

static DataOptions opts(void) { return (DataOptions){.root = root}; }

static void test_missing(void) {
    DataOptions o = opts();
    Dataset *ds = dataset_open("cifar10", "train", &o);
    CHECK(ds == NULL, "cifar10 opened from an empty root");
    CHECK_MSG("data_batch_1.bin");
    CHECK_MSG("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz");
    CHECK_MSG("c32a1d4ab5d03f1284b67883e8d87530");
    ds = dataset_open("stl10", "unlabeled", &o);
    CHECK(ds == NULL, "stl10 opened from an empty root");
    CHECK_MSG("unlabeled_X.bin");
    CHECK_MSG("91f7769df0f17e558f3565bffb0c7dfb");
    ds = dataset_open("tinyimagenet", "train", &o);
    CHECK(ds == NULL && contains(rsa_error_message(), "90528d7ca1a48142e341f4ef8d21d0de"), "%s", rsa_error_message());
    ds = dataset_open("imagenet100", "train", &o);
    CHECK(ds == NULL && contains(rsa_error_message(), "imagenet/train"), "%s", rsa_error_message());
    ds = dataset_open("cifar100", "test", &o);
    CHECK(ds == NULL && contains(rsa_error_message(), "03b5dce01913d631647c71ecec9e9cb8"), "%s", rsa_error_message());
    ds = dataset_open("mnist", "train", &o);
    CHECK(ds == NULL && contains(rsa_error_message(), "unknown data set"), "%s", rsa_error_message());
    ds = dataset_open("cifar10", "unlabeled", &o);
    CHECK(ds == NULL && contains(rsa_error_message(), "no split"), "%s", rsa_error_message());
}

static void write_cifar(const char *rel, size_t n, int label_bytes, size_t cut) {
    size_t rec = (size_t)label_bytes + 3072;
    uint8_t *buf = malloc(n * rec);
    for (size_t i = 0; i < n; i++) {
        uint8_t *r = buf + i * rec;
        if (label_bytes == 2) r[0] = (uint8_t)(i % 20);
        r[label_bytes - 1] = (uint8_t)(label_bytes == 2 ? (i * 3) % 100 : i % 10);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++) r[label_bytes + c * 1024 + y * 32 + x] = pat(i, y, x, c);
    }
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    write_bytes(path, buf, n * rec - cut);
    free(buf);
}

static void check_pixels(const Dataset *ds, size_t i, size_t source_i) {
    DataReader *r = data_reader_new(ds);
    Img im;
    CHECK(data_reader_image(r, i, JPEG_FULL, &im) == 0, "%s", rsa_error_message());
    int bad = 0;
    for (int y = 0; y < im.h && !bad; y++)
        for (int x = 0; x < im.w && !bad; x++)
            for (int c = 0; c < 3; c++)
                if (img_row(&im, y)[3 * x + c] != pat(source_i, y, x, c)) {
                    CHECK(false, "%s image %zu pixel (%d, %d, %d): %d, expected %d", dataset_name(ds), i, y, x, c,
                          img_row(&im, y)[3 * x + c], pat(source_i, y, x, c));
                    bad = 1;
                    break;
                }
    data_reader_free(r);
}

static void test_cifar(void) {
    mkdirs("%s/%s", "cifar-10-batches-bin");
    mkdirs("%s/%s", "cifar-100-binary");
    write_cifar("cifar-10-batches-bin/test_batch.bin", 10000, 1, 0);
    write_cifar("cifar-100-binary/test.bin", 10000, 2, 0);
    DataOptions o = opts();
    Dataset *ds = dataset_open("cifar10", "test", &o);
    CHECK(ds != NULL, "%s", rsa_error_message());
    if (ds) {
        CHECK(dataset_count(ds) == 10000 && dataset_num_classes(ds) == 10, "count %zu", dataset_count(ds));
        CHECK(dataset_label(ds, 7) == 7 && dataset_label(ds, 13) == 3, "labels %d %d", dataset_label(ds, 7),
              dataset_label(ds, 13));
        check_pixels(ds, 0, 0);
        check_pixels(ds, 9999, 9999);
        dataset_close(ds);
    }
    ds = dataset_open("cifar100", "val", &o); /* val is test */
    CHECK(ds != NULL, "%s", rsa_error_message());
    if (ds) {
        CHECK(dataset_count(ds) == 10000 && dataset_num_classes(ds) == 100, "count %zu", dataset_count(ds));
        CHECK(dataset_label(ds, 5) == 15 && dataset_label(ds, 40) == 20, "fine labels %d %d", dataset_label(ds, 5),
              dataset_label(ds, 40));
        check_pixels(ds, 1234, 1234);
        dataset_close(ds);
    }
    /* a file cut short inside record 9999, and a bad label */
    write_cifar("cifar-10-batches-bin/test_batch.bin", 10000, 1, 100);
    ds = dataset_open("cifar10", "test", &o);
    CHECK(ds == NULL, "a short CIFAR file opened");
    CHECK_MSG("test_batch.bin");
    CHECK_MSG("record 9999 is cut short at byte 30726927");
    CHECK_MSG("30730000 bytes");
    write_cifar("cifar-100-binary/test.bin", 10000, 2, 0);
    char path[2048];
    snprintf(path, sizeof path, "%s/cifar-100-binary/test.bin", root);
    size_t size;
    char *bytes = read_file(path, &size);
    bytes[3074 * 2 + 1] = (char)150;
    write_bytes(path, bytes, size);
    free(bytes);
    ds = dataset_open("cifar100", "test", &o);
    CHECK(ds == NULL && contains(rsa_error_message(), "byte 6149: label 150 of record 2 is outside 0..99"), "%s",
          rsa_error_message());
    /* train needs all five batches */
    ds = dataset_open("cifar10", "train", &o);
    CHECK(ds == NULL && contains(rsa_error_message(), "data_batch_1.bin is missing"), "%s", rsa_error_message());
}

static void write_stl(const char *name, size_t n, size_t first, size_t cut) {
    size_t bytes = n * 27648;
    uint8_t *buf = malloc(bytes);
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            for (int x = 0; x < 96; x++)
                for (int y = 0; y < 96; y++) buf[i * 27648 + c * 9216 + x * 96 + y] = pat(first + i, y, x, c);
    char path[2048];
    snprintf(path, sizeof path, "%s/stl10_binary/%s", root, name);
    write_bytes(path, buf, bytes - cut);
    free(buf);
}

static void test_stl10(void) {
    mkdirs("%s/%s", "stl10_binary");
    write_stl("train_X.bin", 5, 0, 0);
    write_stl("unlabeled_X.bin", 3, 5, 0);
    write_stl("test_X.bin", 4, 100, 0);
    uint8_t y_train[5] = {1, 10, 3, 4, 5}, y_test[4] = {2, 2, 9, 10};
    char path[2048];
    snprintf(path, sizeof path, "%s/stl10_binary/train_y.bin", root);
    write_bytes(path, y_train, 5);
    snprintf(path, sizeof path, "%s/stl10_binary/test_y.bin", root);
    write_bytes(path, y_test, 4);
    DataOptions o = opts();
    Dataset *ds = dataset_open("stl10", "train+unlabeled", &o);
    CHECK(ds != NULL, "%s", rsa_error_message());
    if (ds) {
        CHECK(dataset_count(ds) == 8, "train+unlabeled has %zu images", dataset_count(ds));
        CHECK(dataset_label(ds, 0) == 0 && dataset_label(ds, 1) == 9 && dataset_label(ds, 4) == 4 &&
                  dataset_label(ds, 5) == -1 && dataset_label(ds, 7) == -1,
              "labels");
        CHECK(dataset_height(ds) == 96 && dataset_width(ds) == 96, "size");
        check_pixels(ds, 3, 3);
        check_pixels(ds, 6, 6); /* unlabeled image 1 */
        dataset_close(ds);
    }
    ds = dataset_open("stl10", "test", &o);
    CHECK(ds && dataset_count(ds) == 4 && dataset_label(ds, 3) == 9, "test split");
    if (ds) check_pixels(ds, 2, 102), dataset_close(ds);
    ds = dataset_open("stl10", "unlabeled", &o);
    CHECK(ds && dataset_count(ds) == 3 && dataset_label(ds, 0) == -1, "unlabeled split");
    if (ds) check_pixels(ds, 0, 5), dataset_close(ds);
    /* short file, label count mismatch, label out of range */
    write_stl("test_X.bin", 4, 100, 1000);
    ds = dataset_open("stl10", "test", &o);
    CHECK(ds == NULL && contains(rsa_error_message(), "test_X.bin") &&
              contains(rsa_error_message(), "image 3 is cut short at byte 82944"),
          "%s", rsa_error_message());
    write_stl("test_X.bin", 4, 100, 0);
    uint8_t bad[4] = {2, 0, 1, 1};
    snprintf(path, sizeof path, "%s/stl10_binary/test_y.bin", root);
    write_bytes(path, bad, 4);
    ds = dataset_open("stl10", "test", &o);
    CHECK(ds == NULL && contains(rsa_error_message(), "test_y.bin: byte 1: label 0 is outside 1..10"), "%s",
          rsa_error_message());
    write_bytes(path, bad, 3);
    ds = dataset_open("stl10", "test", &o);
    CHECK(ds == NULL && contains(rsa_error_message(), "3 bytes, expected one label byte for each of the 4 images"),
          "%s", rsa_error_message());
}

static void write_gz(const char *path, const void *data, size_t n) {
    gzFile g = gzopen(path, "wb");
    if (!g || gzwrite(g, data, (unsigned)n) != (int)n || gzclose(g) != Z_OK) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static void write_idx(int n, uint32_t img_magic) {
    size_t ib = 16 + (size_t)n * 784, lb = 8 + (size_t)n;
    uint8_t *img = calloc(ib, 1), *lab = calloc(lb, 1);
    put_be32(img, img_magic), put_be32(img + 4, (uint32_t)n), put_be32(img + 8, 28), put_be32(img + 12, 28);
    put_be32(lab, 0x801), put_be32(lab + 4, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        lab[8 + i] = (uint8_t)(i % 10);
        for (int p = 0; p < 784; p++) img[16 + i * 784 + p] = pat((size_t)i, p / 28, p % 28, 0);
    }
    char path[2048];
    snprintf(path, sizeof path, "%s/fashion-mnist/t10k-images-idx3-ubyte.gz", root);
    write_gz(path, img, ib);
    snprintf(path, sizeof path, "%s/fashion-mnist/t10k-labels-idx1-ubyte.gz", root);
    write_gz(path, lab, lb);
    free(img), free(lab);
}

static void test_idx(void) {
    mkdirs("%s/%s", "fashion-mnist");
    write_idx(12, 0x803);
    DataOptions o = opts();
    Dataset *ds = dataset_open("fashionmnist", "test", &o);
    CHECK(ds != NULL, "%s", rsa_error_message());
    if (ds) {
        CHECK(dataset_count(ds) == 12 && dataset_label(ds, 11) == 1, "count %zu", dataset_count(ds));
        DataReader *r = data_reader_new(ds);
        Img im;
        data_reader_image(r, 5, JPEG_FULL, &im);
        CHECK(im.h == 28 && im.w == 28 && img_row(&im, 3)[3 * 4 + 2] == pat(5, 3, 4, 0) &&
                  img_row(&im, 3)[3 * 4] == img_row(&im, 3)[3 * 4 + 1],
              "grayscale replicated");
        data_reader_free(r);
        dataset_close(ds);
    }
    write_idx(12, 0x801); /* labels' magic on the images file */
    ds = dataset_open("fashionmnist", "test", &o);
    CHECK(ds == NULL && contains(rsa_error_message(), "t10k-images-idx3-ubyte.gz: byte 0 (decompressed): bad IDX magic "
                                                      "0x00000801, expected 0x00000803"),
          "%s", rsa_error_message());
    /* a gzip stream cut short */
    write_idx(12, 0x803);
    char path[2048];
    snprintf(path, sizeof path, "%s/fashion-mnist/t10k-images-idx3-ubyte.gz", root);
    size_t size;
    char *bytes = read_file(path, &size);
    write_bytes(path, bytes, size / 2);
    free(bytes);
    ds = dataset_open("fashionmnist", "test", &o);
    CHECK(ds == NULL && contains(rsa_error_message(), "t10k-images-idx3-ubyte.gz: gzip stream cut short at byte"),
          "%s", rsa_error_message());
    /* fewer images than the header says */
    uint8_t hdr[16 + 784];
    memset(hdr, 0, sizeof hdr);
    put_be32(hdr, 0x803), put_be32(hdr + 4, 2), put_be32(hdr + 8, 28), put_be32(hdr + 12, 28);
    write_gz(path, hdr, sizeof hdr);
    ds = dataset_open("fashionmnist", "test", &o);
    CHECK(ds == NULL && contains(rsa_error_message(), "announces 1568 data bytes after byte 16, the decompressed data "
                                                      "end at byte 800"),
          "%s", rsa_error_message());
}

static void test_fashion_mnist_real(void) {
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0) {
        test_note("dataset-fashion-mnist is not installed: `make deps`");
        CHECK(false, "Fashion-MNIST missing");
        return;
    }
    DataOptions o = {.root = "/nonexistent-root"};
    Dataset *ds = dataset_open("fashionmnist", "train", &o);
    CHECK(ds != NULL, "%s", rsa_error_message());
    if (!ds) return;
    CHECK(dataset_count(ds) == 60000 && dataset_num_classes(ds) == 10, "count %zu", dataset_count(ds));
    int hist[10] = {0};
    double sum = 0, sq = 0;
    DataReader *r = data_reader_new(ds);
    for (size_t i = 0; i < dataset_count(ds); i++) {
        hist[dataset_label(ds, i)]++;
        Img im;
        data_reader_image(r, i, JPEG_FULL, &im);
        for (int p = 0; p < 28 * 28; p++) {
            double v = im.px[3 * p] / 255.0;
            sum += v, sq += v * v;
        }
    }
    data_reader_free(r);
    for (int c = 0; c < 10; c++) CHECK(hist[c] == 6000, "class %d has %d images", c, hist[c]);
    double n = 60000.0 * 784, mean = sum / n, sd = sqrt(sq / n - mean * mean);
    test_note("Fashion-MNIST train: mean %.5f std %.5f (data_defaults states 0.2860 / 0.3530)", mean, sd);
    DataDefaults d;
    data_defaults("fashionmnist", &d);
    CHECK(fabs(mean - d.mean[0]) < 5e-5 && fabs(sd - d.std[0]) < 5e-5, "defaults %g %g", d.mean[0], d.std[0]);
    dataset_close(ds);
    ds = dataset_open("fashionmnist", "test", &o);
    CHECK(ds && dataset_count(ds) == 10000, "t10k");
    dataset_close(ds);
}

/* A w x h JPEG of the test pattern, written to path. */
static void write_jpeg(const char *path, int w, int h, size_t seed, bool gray) {
    uint8_t *px = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) px[(y * w + x) * 3 + c] = pat(seed, y / 4, x / 4, gray ? 0 : c);
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long size = 0;
    if (!tj || tjCompress2(tj, px, w, 0, h, TJPF_RGB, &jpg, &size, gray ? TJSAMP_GRAY : TJSAMP_420, 90, 0) != 0) {
        fprintf(stderr, "tjCompress2: %s\n", tjGetErrorStr2(tj));
        exit(1);
    }
    write_bytes(path, jpg, size);
    tjFree(jpg);
    tjDestroy(tj);
    free(px);
}

static void sleep_ms(int ms) {
    struct timespec t = {0, ms * 1000000L};
    nanosleep(&t, NULL);
}

static void test_tiny_imagenet(void) {
    char path[2048], wnids[200 * 10 + 1] = {0};
    /* 200 classes named n000..n199 in a shuffled order in wnids.txt; 2 train images each; 5 val images */
    for (int k = 0; k < 200; k++) {
        int c = (k * 37) % 200;
        char w[16];
        snprintf(w, sizeof w, "n%03d", c);
        strcat(wnids, w);
        strcat(wnids, "\n");
        snprintf(path, sizeof path, "%s/tiny-imagenet-200/train/%s/images", root, w);
        make_dirs(path);
        for (int i = 0; i < 2; i++) {
            snprintf(path, sizeof path, "%s/tiny-imagenet-200/train/%s/images/%s_%d.JPEG", root, w, w, 1 - i);
            write_jpeg(path, 64, 64, (size_t)(c * 2 + 1 - i), c == 3);
        }
    }
    snprintf(path, sizeof path, "%s/tiny-imagenet-200/wnids.txt", root);
    atomic_write_text(path, wnids);
    mkdirs("%s/%s", "tiny-imagenet-200/val/images");
    const char *ann = "val_0.JPEG\tn150\t0\t0\t10\t10\nval_1.JPEG\tn002\t1\t1\t5\t5\nval_2.JPEG\tn150\t0\t0\t1\t1\n";
    snprintf(path, sizeof path, "%s/tiny-imagenet-200/val/val_annotations.txt", root);
    atomic_write_text(path, ann);
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/tiny-imagenet-200/val/images/val_%d.JPEG", root, i);
        write_jpeg(path, 64, 64, (size_t)(500 + i), false);
    }
    DataOptions o = opts();
    Dataset *ds = dataset_open("tinyimagenet", "train", &o);
    CHECK(ds != NULL, "%s", rsa_error_message());
    if (ds) {
        CHECK(dataset_count(ds) == 400 && dataset_num_classes(ds) == 200, "count %zu", dataset_count(ds));
        /* sorted wnids: n000 is class 0; its files sorted: n000_0 then n000_1 */
        CHECK(dataset_label(ds, 0) == 0 && dataset_label(ds, 399) == 199 && dataset_label(ds, 7) == 3, "labels");
        DataReader *r = data_reader_new(ds);
        Img im;
        data_reader_image(r, 6, JPEG_FULL, &im); /* n003_0.JPEG: grayscale JPEG of seed 6 */
        CHECK(im.h == 64 && img_row(&im, 10)[30] == img_row(&im, 10)[31], "grayscale JPEG replicated");
        CHECK(abs((int)img_row(&im, 10)[30] - pat(6, 2, 2, 0)) <= 8, "JPEG content %d vs %d", img_row(&im, 10)[30],
              pat(6, 2, 2, 0));
        data_reader_free(r);
        dataset_close(ds);
    }
    ds = dataset_open("tinyimagenet", "val", &o);
    CHECK(ds && dataset_count(ds) == 3 && dataset_label(ds, 0) == 2 && dataset_label(ds, 1) == 150 &&
              dataset_label(ds, 2) == 150,
          "val sorted by (class, file)");
    /* the decoded cache: written on the first open, read on the next, rebuilt when a source changes */
    char cache_dir[1200];
    snprintf(cache_dir, sizeof cache_dir, "%s/cache", root);
    DataOptions oc = opts();
    oc.cache_dir = cache_dir;
    Dataset *c1 = dataset_open("tinyimagenet", "val", &oc);
    snprintf(path, sizeof path, "%s/tinyimagenet-test.rsadset", cache_dir);
    CHECK(c1 && access(path, R_OK) == 0, "cache not written: %s", rsa_error_message());
    Dataset *c2 = dataset_open("tinyimagenet", "val", &oc);
    CHECK(c2 && dataset_count(c2) == 3, "cache not read: %s", rsa_error_message());
    if (ds && c2) {
        DataReader *ra = data_reader_new(ds), *rb = data_reader_new(c2);
        Img ia, ib;
        data_reader_image(ra, 2, JPEG_FULL, &ia);
        data_reader_image(rb, 2, JPEG_FULL, &ib);
        CHECK(memcmp(ia.px, ib.px, 64 * 64 * 3) == 0 && dataset_label(c2, 0) == 2, "cached pixels differ");
        data_reader_free(ra), data_reader_free(rb);
    }
    dataset_close(c1), dataset_close(c2);
    /* a changed source rebuilds it (the stale cache would still say val_1 is class 2) */
    sleep_ms(10);
    snprintf(path, sizeof path, "%s/tiny-imagenet-200/val/val_annotations.txt", root);
    atomic_write_text(path, "val_0.JPEG\tn150\t0\t0\t10\t10\nval_1.JPEG\tn151\t1\t1\t5\t5\n"
                            "val_2.JPEG\tn150\t0\t0\t1\t1\n");
    c1 = dataset_open("tinyimagenet", "val", &oc);
    CHECK(c1 && dataset_count(c1) == 3 && dataset_label(c1, 0) == 150 && dataset_label(c1, 2) == 151,
          "stale cache used");
    dataset_close(c1);
    snprintf(path, sizeof path, "%s/tiny-imagenet-200/val/val_annotations.txt", root);
    atomic_write_text(path, ann);
    dataset_close(ds);
    /* a corrupt JPEG: fails the open, or is skipped and counted with allow_corrupt */
    snprintf(path, sizeof path, "%s/tiny-imagenet-200/val/images/val_2.JPEG", root);
    write_bytes(path, "GIF89a not a jpeg", 17);
    ds = dataset_open("tinyimagenet", "val", &o);
    CHECK(ds == NULL && contains(rsa_error_message(), "val_2.JPEG: byte 0: expected the JPEG start-of-image marker "
                                                      "FF D8, found 47 49"),
          "%s", rsa_error_message());
    o.allow_corrupt = true;
    ds = dataset_open("tinyimagenet", "val", &o);
    CHECK(ds && dataset_count(ds) == 2 && dataset_skipped(ds) == 1, "corrupt image skipped and counted");
    dataset_close(ds);
    /* annotations that list no image: an error naming the split (it once sorted a null list: UB, stopped by UBSan) */
    snprintf(path, sizeof path, "%s/tiny-imagenet-200/val/val_annotations.txt", root);
    atomic_write_text(path, "\n\n");
    ds = dataset_open("tinyimagenet", "val", &o);
    CHECK(ds == NULL && contains(rsa_error_message(), "no images found for split"), "empty annotations: %s",
          ds ? "opened" : rsa_error_message());
    dataset_close(ds);
    atomic_write_text(path, ann);
}

static void test_image_folder(void) {
    const char *classes[3] = {"n02", "n10", "n01"};
    char path[2048];
    for (int c = 0; c < 3; c++) {
        snprintf(path, sizeof path, "%s/imagenet/train/%s/sub", root, classes[c]);
        make_dirs(path);
        for (int i = 0; i < 3; i++) {
            snprintf(path, sizeof path, "%s/imagenet/train/%s/img_%d.JPEG", root, classes[c], 2 - i);
            write_jpeg(path, 40 + 10 * i, 30 + 7 * c, (size_t)(c * 10 + i), false);
        }
        snprintf(path, sizeof path, "%s/imagenet/train/%s/sub/deep.jpg", root, classes[c]);
        write_jpeg(path, 17, 23, (size_t)(c * 10 + 9), false);
        snprintf(path, sizeof path, "%s/imagenet/train/%s/notes.txt", root, classes[c]);
        atomic_write_text(path, "not an image");
    }
    DataOptions o = opts();
    Dataset *ds = dataset_open("imagenet", "train", &o);
    CHECK(ds != NULL, "%s", rsa_error_message());
    if (ds) {
        CHECK(dataset_count(ds) == 12 && dataset_num_classes(ds) == 3, "count %zu", dataset_count(ds));
        /* class n01 first; within it img_0, img_1, img_2 (sorted), then sub/deep.jpg */
        const char *p0 = dataset_path(ds, 0), *p3 = dataset_path(ds, 3), *p4 = dataset_path(ds, 4);
        CHECK(p0 && strstr(p0, "/n01/img_0.JPEG") && strstr(p3, "/n01/sub/deep.jpg") && strstr(p4, "/n02/img_0.JPEG"),
              "ImageFolder order: %s, %s, %s", p0, p3, p4);
        CHECK(dataset_label(ds, 3) == 0 && dataset_label(ds, 4) == 1 && dataset_label(ds, 11) == 2, "labels");
        DataReader *r = data_reader_new(ds);
        int h, w;
        CHECK(data_reader_size(r, 4, &h, &w) == 0 && h == 30 && w == 60, "size %dx%d", h, w);
        Img im;
        CHECK(data_reader_image(r, 3, JPEG_FULL, &im) == 0 && im.h == 23 && im.w == 17, "decode");
        data_reader_free(r);
        dataset_close(ds);
    }
    /* ImageNet-100 over a folder holding the 100 CMC classes plus others */
    for (int c = 0; c < 100; c++) {
        snprintf(path, sizeof path, "%s/imagenet/val/%s", root, imagenet100_wnids[c]);
        make_dirs(path);
        snprintf(path, sizeof path, "%s/imagenet/val/%s/ILSVRC2012_val_%08d.JPEG", root, imagenet100_wnids[c], c);
        write_jpeg(path, 16, 16, (size_t)c, false);
    }
    mkdirs("%s/%s", "imagenet/val/n00000000");
    snprintf(path, sizeof path, "%s/imagenet/val/n00000000/x.JPEG", root);
    write_jpeg(path, 16, 16, 1, false);
    ds = dataset_open("imagenet100", "val", &o);
    CHECK(ds != NULL, "%s", rsa_error_message());
    if (ds) {
        CHECK(dataset_count(ds) == 100 && dataset_num_classes(ds) == 100, "count %zu", dataset_count(ds));
        /* labels are ranks in sorted order: the smallest wnid of the list is n01558993 */
        CHECK(strstr(dataset_path(ds, 0), "/n01558993/") && dataset_label(ds, 0) == 0, "first %s",
              dataset_path(ds, 0));
        for (size_t i = 1; i < dataset_count(ds); i++)
            CHECK(strcmp(dataset_path(ds, i - 1), dataset_path(ds, i)) < 0 && dataset_label(ds, i) == (int)i,
                  "order at %zu", i);
        dataset_close(ds);
    }
    ds = dataset_open("imagenet", "val", &o);
    CHECK(ds && dataset_count(ds) == 101 && dataset_label(ds, 0) == 0 && strstr(dataset_path(ds, 0), "n00000000"),
          "the full folder has 101 classes");
    dataset_close(ds);
    /* a class list of one's own instead of the CMC list */
    char list[2048];
    snprintf(list, sizeof list, "%s/classes.txt", root);
    atomic_write_text(list, "# two classes\nn04517823\n\n  n00000000  \n");
    DataOptions ol = opts();
    ol.class_list = list;
    ds = dataset_open("imagenet100", "val", &ol);
    CHECK(ds && dataset_count(ds) == 2 && dataset_num_classes(ds) == 2 && strstr(dataset_path(ds, 0), "n00000000"),
          "class_list: %s", rsa_error_message());
    dataset_close(ds);
    snprintf(path, sizeof path, "%s/imagenet/val/%s", root, imagenet100_wnids[17]);
    char moved[2048];
    snprintf(moved, sizeof moved, "%s/imagenet/val/x%s", root, imagenet100_wnids[17]);
    rename(path, moved);
    ds = dataset_open("imagenet100", "val", &o);
    CHECK(ds == NULL && contains(rsa_error_message(), "class n02788148 of the ImageNet-100 list has no folder"), "%s",
          rsa_error_message());
    rename(moved, path);
}

static void test_jpeg_errors(void) {
    char path[2048];
    snprintf(path, sizeof path, "%s/one.jpg", root);
    write_jpeg(path, 64, 48, 3, false);
    size_t size;
    char *bytes = read_file(path, &size);
    JpegDecoder *d = jpeg_decoder_new();
    Img im;
    CHECK(jpeg_decode(d, (uint8_t *)bytes, size, "one.jpg", JPEG_FULL, &im) == 0, "%s", rsa_error_message());
    /* truncated in the entropy-coded data */
    CHECK(jpeg_decode(d, (uint8_t *)bytes, size * 2 / 3, "one.jpg", JPEG_FULL, &im) != 0, "truncated JPEG decoded");
    CHECK(contains(rsa_error_message(), "one.jpg: truncated JPEG: the data ends at byte"), "%s", rsa_error_message());
    /* truncated in the header */
    CHECK(jpeg_decode(d, (uint8_t *)bytes, 40, "one.jpg", JPEG_FULL, &im) != 0, "header-only JPEG decoded");
    CHECK(contains(rsa_error_message(), "one.jpg (40 bytes): bad JPEG header"), "%s", rsa_error_message());
    CHECK(jpeg_decode(d, (uint8_t *)"\xff", 1, "x.jpg", JPEG_FULL, &im) != 0 &&
              contains(rsa_error_message(), "x.jpg: 1 bytes"),
          "%s", rsa_error_message());
    /* DCT scaling: halves round up */
    JpegScale s = jpeg_pick_scale(48, 64, 20, 20);
    CHECK(s.num == 1 && s.den == 2, "scale %d/%d", s.num, s.den);
    CHECK(jpeg_decode(d, (uint8_t *)bytes, size, "one.jpg", s, &im) == 0 && im.h == 24 && im.w == 32, "scaled %dx%d",
          im.h, im.w);
    s = jpeg_pick_scale(48, 64, 48, 64);
    CHECK(s.num == 1 && s.den == 1, "no reduction possible: %d/%d", s.num, s.den);
    s = jpeg_pick_scale(800, 800, 100, 90);
    CHECK(s.num == 1 && s.den == 8, "1/8: %d/%d", s.num, s.den);
    jpeg_decoder_free(d);
    free(bytes);
}

static void test_class_list_file(void) {
    size_t size;
    char *text = read_file("trainer/data/imagenet100.txt", &size);
    CHECK(text != NULL, "run the tests from the repository root: %s", rsa_error_message());
    if (!text) return;
    int k = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || !line[0]) continue;
        CHECK(k < 100 && strcmp(line, imagenet100_wnids[k]) == 0, "line %d: %s vs %s", k, line,
              k < 100 ? imagenet100_wnids[k] : "(end)");
        k++;
    }
    CHECK(k == 100, "imagenet100.txt has %d classes", k);
    free(text);
}

int main(void) {
    snprintf(root, sizeof root, "%s/data_root", test_tmpdir());
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) return 1;
    make_dirs(root);
    RUN(test_missing);
    RUN(test_cifar);
    RUN(test_stl10);
    RUN(test_idx);
    RUN(test_fashion_mnist_real);
    RUN(test_tiny_imagenet);
    RUN(test_image_folder);
    RUN(test_jpeg_errors);
    RUN(test_class_list_file);
    return test_finish();
}
