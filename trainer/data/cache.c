/* A binary cache of a decoded in-memory data set (used for Tiny ImageNet, whose 110k JPEGs take seconds to decode).
 *
 * File: a 64-byte header (magic "RSADSET\0", format version, image count, height, width, classes, images skipped as
 * corrupt, fingerprint of the sources), then the labels (int32 little-endian) and the pixels (HWC RGB). The
 * fingerprint hashes (FNV-1a, 64 bits) the reader's version, the split, the allow_corrupt flag and every source
 * file's path, size and modification time, so a changed, added or removed file rebuilds the cache. Written
 * atomically (temporary file, fsync, rename). */
#include "dataset_internal.h"

#include "trainer/core/error.h"
#include "trainer/core/fileio.h"
#include "trainer/core/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { CACHE_VERSION = 1, HEADER = 64 };
static const char MAGIC[8] = {'R', 'S', 'A', 'D', 'S', 'E', 'T', 0};

int data_fingerprint(char **paths, size_t n, const char *tag, uint64_t *out) {
    uint64_t h = fnv1a64(FNV1A64_START, tag, strlen(tag) + 1);
    uint32_t v = CACHE_VERSION;
    h = fnv1a64(h, &v, sizeof v);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0)
            return rsa_fail("the data set changed while being opened, or a file is unreadable", "cannot stat %s: %s",
                            paths[i], strerror(errno));
        int64_t meta[3] = {(int64_t)st.st_size, (int64_t)st.st_mtim.tv_sec, (int64_t)st.st_mtim.tv_nsec};
        h = fnv1a64(h, paths[i], strlen(paths[i]) + 1);
        h = fnv1a64(h, meta, sizeof meta);
    }
    *out = h;
    return 0;
}

static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int read_exact(int fd, void *buf, size_t n) {
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r, n -= (size_t)r;
    }
    return 0;
}

Dataset *data_cache_load(const char *path, uint64_t fingerprint, const char *name, const char *split) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL; /* no cache yet */
    uint8_t h[HEADER];
    Dataset *ds = NULL;
    if (read_exact(fd, h, HEADER) == 0 && memcmp(h, MAGIC, 8) == 0 && get64(h + 8) == CACHE_VERSION &&
        get64(h + 56) == fingerprint) {
        uint64_t n = get64(h + 16), hh = get64(h + 24), ww = get64(h + 32), classes = get64(h + 40);
        struct stat st;
        /* a damaged header must not overflow the size computation below */
        bool sane = hh >= 1 && hh <= 65536 && ww >= 1 && ww <= 65536 && classes >= 1 && classes <= 1u << 20 &&
                    n <= (SIZE_MAX - HEADER) / (4 + hh * ww * 3);
        size_t want = sane ? HEADER + n * 4 + n * hh * ww * 3 : 0;
        if (sane && fstat(fd, &st) == 0 && (uint64_t)st.st_size == want) {
            ds = dataset_alloc_memory(name, split, n, (int)hh, (int)ww, (int)classes);
            if (ds) {
                uint8_t *lab = malloc(n * 4 + 1);
                if (!lab) rsa_fatal("free memory", "out of memory");
                if (read_exact(fd, lab, n * 4) != 0 || read_exact(fd, ds->pixels, ds->pixel_bytes) != 0) {
                    dataset_close(ds);
                    ds = NULL;
                } else {
                    bool labels_ok = true;
                    for (size_t i = 0; i < n; i++) {
                        ds->labels[i] = (int32_t)((uint32_t)lab[4 * i] | (uint32_t)lab[4 * i + 1] << 8 |
                                                  (uint32_t)lab[4 * i + 2] << 16 | (uint32_t)lab[4 * i + 3] << 24);
                        labels_ok &= ds->labels[i] >= -1 && ds->labels[i] < (int32_t)classes;
                    }
                    atomic_store(&ds->skipped, (size_t)get64(h + 48));
                    if (!labels_ok) { /* damaged: rebuilt */
                        dataset_close(ds);
                        ds = NULL;
                    }
                }
                free(lab);
            }
        }
    }
    close(fd);
    rsa_error_clear(); /* a stale or unreadable cache is rebuilt, not an error */
    return ds;
}

int data_cache_save(const char *path, uint64_t fingerprint, const Dataset *ds) {
    uint8_t h[HEADER] = {0};
    memcpy(h, MAGIC, 8);
    put64(h + 8, CACHE_VERSION);
    put64(h + 16, ds->n);
    put64(h + 24, (uint64_t)ds->h);
    put64(h + 32, (uint64_t)ds->w);
    put64(h + 40, (uint64_t)ds->num_classes);
    put64(h + 48, atomic_load(&((Dataset *)ds)->skipped));
    put64(h + 56, fingerprint);
    uint8_t *lab = malloc(ds->n * 4 + 1);
    if (!lab) rsa_fatal("free memory", "out of memory");
    for (size_t i = 0; i < ds->n; i++) {
        uint32_t v = (uint32_t)ds->labels[i];
        lab[4 * i] = (uint8_t)v, lab[4 * i + 1] = (uint8_t)(v >> 8), lab[4 * i + 2] = (uint8_t)(v >> 16);
        lab[4 * i + 3] = (uint8_t)(v >> 24);
    }
    const void *pieces[3] = {h, lab, ds->pixels};
    size_t sizes[3] = {HEADER, ds->n * 4, ds->n * (size_t)ds->h * ds->w * 3};
    int rc = atomic_write(path, pieces, sizes, 3);
    free(lab);
    if (rc) rsa_error_context("writing the decoded cache (DataOptions.cache_dir)");
    return rc;
}
