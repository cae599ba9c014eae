/* What the data set readers share (not part of the public API: see data.h). */
#ifndef RSA_DATASET_INTERNAL_H
#define RSA_DATASET_INTERNAL_H

#include "trainer/data/data.h"

#include <stdatomic.h>

struct Dataset {
    char name[32], split[32];
    size_t n;
    int num_classes;
    int32_t *labels;
    /* in memory: n images h x w x 3 */
    uint8_t *pixels;
    size_t pixel_bytes;
    int h, w;
    /* folder: n paths (pointers into one pool) */
    char **paths;
    char *pool;
    bool allow_corrupt;
    _Atomic uint8_t *bad; /* folder: images known not to decode (deterministic, so caching it changes nothing) */
    atomic_size_t skipped;
};

/* An empty in-memory data set of n images h x w (pixels and labels allocated). NULL with rsa_fail. */
Dataset *dataset_alloc_memory(const char *name, const char *split, size_t n, int h, int w, int num_classes);
/* An empty folder data set with room for n labels; paths are set by the caller. */
Dataset *dataset_alloc_folder(const char *name, const char *split, size_t n, int num_classes);

/* "<root>/<rel>" into out (size bytes). */
void data_path(char *out, size_t size, const char *root, const char *rel);
bool data_file_exists(const char *path);
bool data_dir_exists(const char *path);
/* rsa_fail for a data set that is not there: names what was looked for and the source (dataset_sources). */
int data_missing(const char *name, const char *root, const char *looked_for);

/* Reads all of path into a growing buffer (*buf, *cap); the size read goes to *size. -1 with rsa_fail. */
int data_read_whole(const char *path, uint8_t **buf, size_t *cap, size_t *size);

/* Sorted list of the entries of a directory (names only, no "." or ".."); dirs_only / files_only filter.
 * NULL with rsa_fail when the directory cannot be read. Free with data_free_list. */
char **data_list_dir(const char *path, bool dirs_only, bool files_only, size_t *count);
void data_free_list(char **list, size_t count);

/* Decodes the JPEG files paths[0..n) into ds's pixels (all must be h x w), with `threads` threads. A file that does
 * not decode fails the whole call, or with ds->allow_corrupt is dropped (the data set shrinks, order kept) and
 * counted in ds->skipped. */
int data_decode_files_into(Dataset *ds, char **paths, int threads);

/* The decoded cache (cache.c): a fingerprint of the source files (path, size, mtime) and a tag; a cached data set
 * whose header matches (NULL otherwise, with no error recorded); writing one atomically. */
int data_fingerprint(char **paths, size_t n, const char *tag, uint64_t *out);
Dataset *data_cache_load(const char *path, uint64_t fingerprint, const char *name, const char *split);
int data_cache_save(const char *path, uint64_t fingerprint, const Dataset *ds);

/* The parsers behind the file readers, on bytes in memory (the fuzzers in tests/fuzz call them); names are used in
 * messages. CIFAR: `count` records of (label_bytes + 3072) bytes into images first.. of ds. STL-10: a labelled
 * split from its X and y files. Fashion-MNIST: the gzipped IDX images and labels. */
int cifar_parse(Dataset *ds, size_t first, size_t count, const uint8_t *buf, size_t size, const char *name,
                int label_bytes, int classes);
Dataset *stl10_parse(const uint8_t *x, size_t x_size, const uint8_t *y, size_t y_size, const char *x_name,
                     const char *y_name);
Dataset *fashion_mnist_parse(const uint8_t *img_gz, size_t img_gz_size, const uint8_t *lab_gz, size_t lab_gz_size,
                             const char *img_name, const char *lab_name, const char *split);

Dataset *cifar_open(const char *name, const char *split, const char *root);
Dataset *stl10_open(const char *split, const char *root);
Dataset *fashion_mnist_open(const char *split, const char *root);
Dataset *tiny_imagenet_open(const char *split, const char *root, const DataOptions *opt);
Dataset *image_folder_open(const char *name, const char *split, const char *root, const DataOptions *opt);

#endif
