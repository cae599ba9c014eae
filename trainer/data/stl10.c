/* STL-10, binary version (https://cs.stanford.edu/~acoates/stl10/): stl10_binary/{train,test,unlabeled}_X.bin hold
 * 96x96 colour images of 27648 bytes each, per image the red, green and blue planes, each plane stored column by
 * column (torchvision reads them as (N, 3, 96, 96) and transposes the last two axes); {train,test}_y.bin hold one
 * label byte 1..10 per image (class = label - 1). train: 5000, test: 8000, unlabeled: 100000 (label -1);
 * train+unlabeled is train followed by unlabeled, as torchvision's STL10(split='train+unlabeled'). */
#include "dataset_internal.h"

#include "trainer/core/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { SIDE = 96, IMAGE_BYTES = 3 * SIDE * SIDE, CHUNK = 512 };

static const char *const HINT = "the file is truncated or corrupt: download and extract stl10_binary.tar.gz again";

static int file_size(const char *path, size_t *size) {
    struct stat st;
    if (stat(path, &st) != 0) return rsa_fail("check the path", "cannot stat %s: %s", path, strerror(errno));
    *size = (size_t)st.st_size;
    return 0;
}

/* Converts `count` images (column-major planes) into ds's HWC pixels from image `first`. */
static void convert(Dataset *ds, size_t first, size_t count, const uint8_t *images) {
    for (size_t k = 0; k < count; k++) {
        const uint8_t *src = images + k * IMAGE_BYTES;
        uint8_t *dst = ds->pixels + (first + k) * (size_t)IMAGE_BYTES;
        for (int c = 0; c < 3; c++)
            for (int x = 0; x < SIDE; x++)
                for (int y = 0; y < SIDE; y++) dst[3 * (y * SIDE + x) + c] = src[c * SIDE * SIDE + x * SIDE + y];
    }
}

/* The number of images in an X file of `size` bytes. */
static int image_count(size_t size, const char *name, size_t *count) {
    if (size == 0 || size % IMAGE_BYTES != 0)
        return rsa_fail(HINT,
                        "%s: %zu bytes is not a whole number of %d-byte images: image %zu is cut short at byte %zu", name,
                        size, IMAGE_BYTES, size / IMAGE_BYTES, size / IMAGE_BYTES * IMAGE_BYTES);
    *count = size / IMAGE_BYTES;
    return 0;
}

/* Reads `count` images of path into ds from image `first`, converting to HWC. */
static int read_images(Dataset *ds, size_t first, size_t count, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return rsa_fail("check the path and its permissions", "cannot open %s: %s", path, strerror(errno));
    uint8_t *chunk = malloc((size_t)CHUNK * IMAGE_BYTES);
    if (!chunk) rsa_fatal("free memory", "out of memory");
    int rc = 0;
    for (size_t done = 0; done < count && rc == 0;) {
        size_t want = count - done < CHUNK ? count - done : CHUNK;
        size_t got = fread(chunk, IMAGE_BYTES, want, f);
        if (got != want) {
            rc = rsa_fail(HINT, "%s: image %zu is cut short at byte %zu (expected %zu images of %d bytes)", path,
                          done + got, (done + got) * (size_t)IMAGE_BYTES, count, IMAGE_BYTES);
            break;
        }
        convert(ds, first + done, got, chunk);
        done += got;
    }
    free(chunk);
    fclose(f);
    return rc;
}

static int parse_labels(Dataset *ds, size_t first, size_t count, const uint8_t *buf, size_t size, const char *path) {
    if (size != count)
        return rsa_fail(HINT, "%s: %zu bytes, expected one label byte for each of the %zu images%s", path, size, count,
                        size < count ? " (the file is cut short)" : "");
    for (size_t i = 0; i < count; i++) {
        if (buf[i] < 1 || buf[i] > 10)
            return rsa_fail(HINT, "%s: byte %zu: label %d is outside 1..10", path, i, buf[i]);
        ds->labels[first + i] = buf[i] - 1;
    }
    return 0;
}

static int read_labels(Dataset *ds, size_t first, size_t count, const char *path) {
    uint8_t *buf = NULL;
    size_t cap = 0, size = 0;
    int rc = data_read_whole(path, &buf, &cap, &size);
    if (rc == 0) rc = parse_labels(ds, first, count, buf, size, path);
    free(buf);
    return rc;
}

Dataset *stl10_parse(const uint8_t *x, size_t x_size, const uint8_t *y, size_t y_size, const char *x_name,
                     const char *y_name) {
    size_t count = 0;
    if (image_count(x_size, x_name, &count)) return NULL;
    Dataset *ds = dataset_alloc_memory("stl10", "memory", count, SIDE, SIDE, 10);
    if (!ds) return NULL;
    convert(ds, 0, count, x);
    if (parse_labels(ds, 0, count, y, y_size, y_name)) {
        dataset_close(ds);
        return NULL;
    }
    return ds;
}

Dataset *stl10_open(const char *split, const char *root) {
    bool with_train = strcmp(split, "train") == 0 || strcmp(split, "train+unlabeled") == 0;
    bool with_unlabeled = strcmp(split, "unlabeled") == 0 || strcmp(split, "train+unlabeled") == 0;
    bool test = strcmp(split, "test") == 0;
    char x[2][4096], y[4096];
    size_t counts[2] = {0, 0};
    int parts = 0;
    const char *labelled = with_train ? "train" : test ? "test" : NULL;
    if (labelled) {
        char rel[64];
        snprintf(rel, sizeof rel, "stl10_binary/%s_X.bin", labelled);
        data_path(x[parts], sizeof x[0], root, rel);
        snprintf(rel, sizeof rel, "stl10_binary/%s_y.bin", labelled);
        data_path(y, sizeof y, root, rel);
        parts++;
    }
    if (with_unlabeled) data_path(x[parts++], sizeof x[0], root, "stl10_binary/unlabeled_X.bin");
    for (int p = 0; p < parts; p++)
        if (!data_file_exists(x[p])) {
            data_missing("stl10", root, x[p]);
            return NULL;
        }
    if (labelled && !data_file_exists(y)) {
        data_missing("stl10", root, y);
        return NULL;
    }
    for (int p = 0; p < parts; p++) {
        size_t size = 0;
        if (file_size(x[p], &size) || image_count(size, x[p], &counts[p])) return NULL;
    }
    Dataset *ds = dataset_alloc_memory("stl10", split, counts[0] + counts[1], SIDE, SIDE, 10);
    if (!ds) return NULL;
    size_t first = 0;
    for (int p = 0; p < parts; p++) {
        bool is_labelled = labelled && p == 0;
        if (read_images(ds, first, counts[p], x[p]) ||
            (is_labelled && read_labels(ds, first, counts[p], y))) {
            dataset_close(ds);
            return NULL;
        }
        if (!is_labelled)
            for (size_t i = 0; i < counts[p]; i++) ds->labels[first + i] = -1;
        first += counts[p];
    }
    return ds;
}
