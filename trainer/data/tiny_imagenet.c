/* Tiny ImageNet (tiny-imagenet-200.zip unpacked): 200 classes named in wnids.txt; train/<wnid>/images/<name>.JPEG (500 a
 * class), val/images/<name>.JPEG with their classes in val/val_annotations.txt (file, wnid, box). All images are 64x64
 * JPEGs (some grayscale). Labels are ranks of the wnids in sorted order (ImageFolder's order, which the official
 * code's LMDB inherits); train images are in ImageFolder order, val images sorted by (class, file name) as the
 * ImageFolder of val sorted into class folders. The set is decoded into memory at open, with DataOptions.threads
 * threads. */
#include "dataset_internal.h"

#include "trainer/core/error.h"
#include "trainer/core/fileio.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const HINT = "re-extract tiny-imagenet-200.zip";

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct {
    int32_t label;
    char *path;
} Entry;

static int cmp_entry(const void *a, const void *b) {
    const Entry *x = a, *y = b;
    if (x->label != y->label) return x->label < y->label ? -1 : 1;
    return strcmp(x->path, y->path);
}

static int class_of(char **wnids, size_t n, const char *w) {
    char **hit = bsearch(&w, wnids, n, sizeof *wnids, cmp_str);
    return hit ? (int)(hit - wnids) : -1;
}

static bool jpeg_name(const char *s) {
    size_t n = strlen(s);
    if (n < 5) return false;
    const char *e = s + n - 5;
    return (tolower((unsigned char)e[0]) == '.' && tolower((unsigned char)e[1]) == 'j' &&
            tolower((unsigned char)e[2]) == 'p' && tolower((unsigned char)e[3]) == 'e' &&
            tolower((unsigned char)e[4]) == 'g') ||
           (tolower((unsigned char)e[1]) == '.' && tolower((unsigned char)e[2]) == 'j' &&
            tolower((unsigned char)e[3]) == 'p' && tolower((unsigned char)e[4]) == 'g');
}

static void push(Entry **v, size_t *n, size_t *cap, int32_t label, char *path) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 1024;
        *v = realloc(*v, *cap * sizeof **v);
        if (!*v) rsa_fatal("free memory", "out of memory");
    }
    (*v)[(*n)++] = (Entry){label, path};
}

static char *dupf(const char *a, const char *b, const char *c) {
    size_t n = strlen(a) + strlen(b) + strlen(c) + 3;
    char *s = malloc(n);
    if (!s) rsa_fatal("free memory", "out of memory");
    snprintf(s, n, "%s/%s%s%s", a, b, c[0] ? "/" : "", c);
    return s;
}

Dataset *tiny_imagenet_open(const char *split, const char *root, const DataOptions *opt) {
    char base[4096], path[4200];
    data_path(base, sizeof base, root, "tiny-imagenet-200");
    snprintf(path, sizeof path, "%s/wnids.txt", base);
    if (!data_file_exists(path)) {
        data_missing("tinyimagenet", root, path);
        return NULL;
    }
    uint8_t *buf = NULL;
    size_t cap = 0, size = 0;
    if (data_read_whole(path, &buf, &cap, &size)) return NULL;
    buf[size] = 0;
    char *wnids[256];
    size_t nw = 0;
    char *save = NULL;
    for (char *line = strtok_r((char *)buf, " \t\r\n", &save); line; line = strtok_r(NULL, " \t\r\n", &save)) {
        if (nw == 256) break;
        wnids[nw++] = strdup(line);
    }
    free(buf);
    buf = NULL, cap = 0;
    Entry *e = NULL;
    size_t n = 0, ecap = 0;
    Dataset *ds = NULL;
    int rc = 0;
    if (nw != 200) rc = rsa_fail(HINT, "%s lists %zu classes, Tiny ImageNet has 200", path, nw);
    if (rc == 0) qsort(wnids, nw, sizeof *wnids, cmp_str);
    if (rc == 0 && strcmp(split, "train") == 0) {
        for (size_t c = 0; c < nw && rc == 0; c++) {
            snprintf(path, sizeof path, "%s/train/%s/images", base, wnids[c]);
            size_t k;
            char **names = data_list_dir(path, false, true, &k);
            if (!names) {
                rc = -1;
                break;
            }
            for (size_t i = 0; i < k; i++)
                if (jpeg_name(names[i])) push(&e, &n, &ecap, (int32_t)c, dupf(path, names[i], ""));
            data_free_list(names, k);
        }
    } else if (rc == 0) {
        snprintf(path, sizeof path, "%s/val/val_annotations.txt", base);
        if (!data_file_exists(path)) {
            data_missing("tinyimagenet", root, path);
            rc = -1;
        } else if (data_read_whole(path, &buf, &cap, &size) == 0) {
            buf[size] = 0;
            size_t lineno = 0;
            char *lsave = NULL;
            for (char *line = strtok_r((char *)buf, "\r\n", &lsave); line && rc == 0;
                 line = strtok_r(NULL, "\r\n", &lsave)) {
                lineno++;
                char *fsave = NULL, *file = strtok_r(line, "\t ", &fsave), *w = strtok_r(NULL, "\t ", &fsave);
                if (!file) continue;
                int c = w ? class_of(wnids, nw, w) : -1;
                if (c < 0)
                    rc = rsa_fail(HINT, "%s: line %zu names %s, which is not in wnids.txt", path, lineno,
                                  w ? w : "no class");
                else {
                    char dir[4200];
                    snprintf(dir, sizeof dir, "%s/val/images", base);
                    push(&e, &n, &ecap, c, dupf(dir, file, ""));
                }
            }
            free(buf);
            if (rc == 0 && n > 1) qsort(e, n, sizeof *e, cmp_entry); /* e is NULL when the file lists none */
        } else {
            rc = -1;
        }
    }
    if (rc == 0 && n == 0) rc = rsa_fail(HINT, "%s: no images found for split %s", base, split);
    uint64_t fp = 0;
    char cache[4200] = {0};
    if (rc == 0 && opt->cache_dir) {
        /* the images, and the files that name their classes */
        char **paths = malloc((n + 2) * sizeof *paths);
        if (!paths) rsa_fatal("free memory", "out of memory");
        for (size_t i = 0; i < n; i++) paths[i] = e[i].path;
        char wnids_file[4200], ann_file[4200];
        snprintf(wnids_file, sizeof wnids_file, "%s/wnids.txt", base);
        snprintf(ann_file, sizeof ann_file, "%s/val/val_annotations.txt", base);
        paths[n] = wnids_file;
        paths[n + 1] = ann_file;
        char tag[64];
        snprintf(tag, sizeof tag, "tinyimagenet/%s/%d", split, opt->allow_corrupt ? 1 : 0);
        rc = data_fingerprint(paths, strcmp(split, "train") == 0 ? n + 1 : n + 2, tag, &fp);
        free(paths);
        snprintf(cache, sizeof cache, "%s/tinyimagenet-%s.rsadset", opt->cache_dir, split);
        if (rc == 0) ds = data_cache_load(cache, fp, "tinyimagenet", split);
        if (ds) goto done;
    }
    if (rc == 0) ds = dataset_alloc_memory("tinyimagenet", split, n, 64, 64, 200);
    if (ds) {
        ds->allow_corrupt = opt->allow_corrupt;
        char **paths = malloc(n * sizeof *paths);
        if (!paths) rsa_fatal("free memory", "out of memory");
        for (size_t i = 0; i < n; i++) ds->labels[i] = e[i].label, paths[i] = e[i].path;
        if (data_decode_files_into(ds, paths, opt->threads)) {
            dataset_close(ds);
            ds = NULL;
        }
        free(paths);
        if (ds && cache[0] && (make_dirs(opt->cache_dir) || data_cache_save(cache, fp, ds))) {
            dataset_close(ds);
            ds = NULL;
        }
    }
done:
    for (size_t i = 0; i < n; i++) free(e[i].path);
    free(e);
    for (size_t i = 0; i < nw; i++) free(wnids[i]);
    return ds;
}
