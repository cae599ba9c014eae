/* CIFAR-10 and CIFAR-100, binary versions (https://www.cs.toronto.edu/~kriz/cifar.html).
 *
 * CIFAR-10: data_batch_1..5.bin (train, in that order) and test_batch.bin, each 10000 records of 1 label byte and
 * 3072 pixel bytes (the 1024 red, then green, then blue values of a 32x32 image, rows top to bottom).
 * CIFAR-100: train.bin (50000 records) and test.bin (10000), each record a coarse label byte, a fine label byte and
 * the same 3072 bytes; the fine label (0..99) is the class, as in torchvision's CIFAR100. The records are the images
 * of torchvision's python version in the same order. */
#include "dataset_internal.h"

#include "trainer/core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const HINT = "the file is truncated or corrupt: download and extract the archive again";

int cifar_parse(Dataset *ds, size_t first, size_t count, const uint8_t *buf, size_t size, const char *path,
                int label_bytes, int classes) {
    size_t record = (size_t)label_bytes + 3072;
    if (size != count * record) {
        size_t whole = size / record;
        int rc;
        if (size < count * record)
            rc = rsa_fail(HINT, "%s: %zu bytes: record %zu is cut short at byte %zu (expected %zu records of %zu bytes = "
                          "%zu bytes)", path, size, whole, whole * record, count, record, count * record);
        else
            rc = rsa_fail(HINT, "%s: %zu bytes: unexpected data after the %zu records of %zu bytes, from byte %zu", path,
                          size, count, record, count * record);
        return rc;
    }
    for (size_t r = 0; r < count; r++) {
        const uint8_t *rec = buf + r * record;
        int label = rec[label_bytes - 1];
        if (label_bytes == 2 && rec[0] >= 20) {
            return rsa_fail(HINT, "%s: byte %zu: coarse label %d of record %zu is outside 0..19", path, r * record,
                            rec[0], r);
        }
        if (label >= classes) {
            return rsa_fail(HINT, "%s: byte %zu: label %d of record %zu is outside 0..%d", path,
                            r * record + label_bytes - 1, label, r, classes - 1);
        }
        ds->labels[first + r] = label;
        const uint8_t *px = rec + label_bytes;
        uint8_t *out = ds->pixels + (first + r) * 3072;
        for (int p = 0; p < 1024; p++) {
            out[3 * p] = px[p];
            out[3 * p + 1] = px[1024 + p];
            out[3 * p + 2] = px[2048 + p];
        }
    }
    return 0;
}

static int read_records(Dataset *ds, size_t first, size_t count, const char *path, int label_bytes, int classes) {
    uint8_t *buf = NULL;
    size_t cap = 0, size = 0;
    int rc = data_read_whole(path, &buf, &cap, &size);
    if (rc == 0) rc = cifar_parse(ds, first, count, buf, size, path, label_bytes, classes);
    free(buf);
    return rc;
}

Dataset *cifar_open(const char *name, const char *split, const char *root) {
    bool c10 = strcmp(name, "cifar10") == 0, train = strcmp(split, "train") == 0;
    const char *dir = c10 ? "cifar-10-batches-bin" : "cifar-100-binary";
    char files[6][64];
    int nfiles = 0;
    if (c10 && train)
        for (int b = 1; b <= 5; b++) snprintf(files[nfiles++], sizeof files[0], "%s/data_batch_%d.bin", dir, b);
    else if (c10)
        snprintf(files[nfiles++], sizeof files[0], "%s/test_batch.bin", dir);
    else
        snprintf(files[nfiles++], sizeof files[0], "%s/%s.bin", dir, train ? "train" : "test");
    char path[4096];
    for (int f = 0; f < nfiles; f++) {
        data_path(path, sizeof path, root, files[f]);
        if (!data_file_exists(path)) {
            data_missing(name, root, path);
            return NULL;
        }
    }
    size_t per_file = c10 ? 10000 : train ? 50000 : 10000;
    Dataset *ds = dataset_alloc_memory(name, split, per_file * nfiles, 32, 32, c10 ? 10 : 100);
    if (!ds) return NULL;
    for (int f = 0; f < nfiles; f++) {
        data_path(path, sizeof path, root, files[f]);
        if (read_records(ds, per_file * f, per_file, path, c10 ? 1 : 2, c10 ? 10 : 100)) {
            dataset_close(ds);
            return NULL;
        }
    }
    return ds;
}
