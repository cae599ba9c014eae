/* ImageNet-style folders, as torchvision's ImageFolder lists them: classes are the sub-directories of the split's
 * directory in sorted order (label = rank); within a class every file under it (recursively, links followed) with an
 * image extension (.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp, any case), directories in sorted path order and
 * files sorted within each, as sorted(os.walk(...)) then sorted(fnames). Only JPEG content decodes here: another
 * format is reported as not a JPEG (or skipped, with allow_corrupt).
 *
 * imagenet100 keeps the 100 CMC classes (imagenet100_wnids, or DataOptions.class_list) of <root>/imagenet/<split>:
 * the ImageFolder of a directory holding only those classes, so labels are ranks in sorted wnid order. */
#include "dataset_internal.h"

#include "trainer/core/error.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char **items;
    size_t n, cap;
} StrList;

static void push(StrList *l, char *s) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->items = realloc(l->items, l->cap * sizeof *l->items);
        if (!l->items) rsa_fatal("free memory", "out of memory");
    }
    l->items[l->n++] = s;
}

static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (!s) rsa_fatal("free memory", "out of memory");
    snprintf(s, n, "%s/%s", a, b);
    return s;
}

static void free_list(StrList *l) {
    for (size_t i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = l->cap = 0;
}

static bool image_extension(const char *name) {
    static const char *const ext[] = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"};
    size_t n = strlen(name);
    for (size_t e = 0; e < sizeof ext / sizeof ext[0]; e++) {
        size_t k = strlen(ext[e]);
        if (n < k) continue;
        bool same = true;
        for (size_t i = 0; i < k && same; i++) same = tolower((unsigned char)name[n - k + i]) == ext[e][i];
        if (same) return true;
    }
    return false;
}

/* All directories under (and including) dir. */
static int collect_dirs(const char *dir, StrList *out, int depth) {
    if (depth > 64) return rsa_fail("check for a symbolic link loop", "%s: directories nested too deep", dir);
    push(out, strdup(dir));
    if (!out->items[out->n - 1]) rsa_fatal("free memory", "out of memory");
    size_t n;
    char **subs = data_list_dir(dir, true, false, &n);
    if (!subs) return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *p = join(dir, subs[i]);
        rc = collect_dirs(p, out, depth + 1);
        free(p);
    }
    data_free_list(subs, n);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The image files of one class in ImageFolder order, appended to files. */
static int class_files(const char *class_dir, StrList *files) {
    StrList dirs = {0};
    int rc = collect_dirs(class_dir, &dirs, 0);
    if (rc == 0) qsort(dirs.items, dirs.n, sizeof *dirs.items, cmp_str);
    for (size_t d = 0; rc == 0 && d < dirs.n; d++) {
        size_t n;
        char **names = data_list_dir(dirs.items[d], false, true, &n);
        if (!names) {
            rc = -1;
            break;
        }
        for (size_t i = 0; i < n; i++)
            if (image_extension(names[i])) push(files, join(dirs.items[d], names[i]));
        data_free_list(names, n);
    }
    free_list(&dirs);
    return rc;
}

static int read_class_list(const char *path, StrList *out) {
    uint8_t *buf = NULL;
    size_t cap = 0, size = 0;
    if (data_read_whole(path, &buf, &cap, &size)) return -1;
    buf[size] = 0;
    char *save = NULL;
    for (char *line = strtok_r((char *)buf, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        while (isspace((unsigned char)*line)) line++;
        char *end = line + strlen(line);
        while (end > line && isspace((unsigned char)end[-1])) *--end = 0;
        if (!*line || *line == '#') continue;
        push(out, strdup(line));
    }
    free(buf);
    if (out->n == 0) return rsa_fail("give a file with one class directory name a line", "%s lists no classes", path);
    return 0;
}

Dataset *image_folder_open(const char *name, const char *split, const char *root, const DataOptions *opt) {
    bool subset = strcmp(name, "imagenet100") == 0;
    char rel[64], dir[4096];
    snprintf(rel, sizeof rel, "imagenet/%s", strcmp(split, "train") == 0 ? "train" : "val");
    data_path(dir, sizeof dir, root, rel);
    if (!data_dir_exists(dir)) {
        data_missing(name, root, dir);
        return NULL;
    }
    size_t nall;
    char **all = data_list_dir(dir, true, false, &nall);
    if (!all) return NULL;
    StrList classes = {0};
    if (subset) {
        if (opt->class_list) {
            if (read_class_list(opt->class_list, &classes)) {
                data_free_list(all, nall);
                free_list(&classes);
                return NULL;
            }
        } else {
            for (int i = 0; i < 100; i++) push(&classes, strdup(imagenet100_wnids[i]));
        }
        qsort(classes.items, classes.n, sizeof *classes.items, cmp_str);
        for (size_t c = 0; c < classes.n; c++) {
            if (c > 0 && strcmp(classes.items[c], classes.items[c - 1]) == 0) {
                rsa_fail("remove the duplicate", "the class list names %s twice", classes.items[c]);
                data_free_list(all, nall);
                free_list(&classes);
                return NULL;
            }
            if (!bsearch(&classes.items[c], all, nall, sizeof *all, cmp_str)) {
                rsa_fail("the ImageNet copy is incomplete: extract that class's archive into the folder",
                         "%s: class %s of the ImageNet-100 list has no folder in %s", name, classes.items[c], dir);
                data_free_list(all, nall);
                free_list(&classes);
                return NULL;
            }
        }
    } else {
        for (size_t c = 0; c < nall; c++) push(&classes, strdup(all[c]));
    }
    data_free_list(all, nall);
    if (classes.n == 0) {
        rsa_fail("sort the images into one folder per class", "%s has no class folders", dir);
        return NULL;
    }
    StrList files = {0};
    int32_t *labels = NULL;
    size_t lcap = 0;
    int rc = 0;
    for (size_t c = 0; c < classes.n && rc == 0; c++) {
        char *cdir = join(dir, classes.items[c]);
        size_t before = files.n;
        rc = class_files(cdir, &files);
        free(cdir);
        if (files.n > lcap) {
            lcap = files.n * 2;
            labels = realloc(labels, lcap * sizeof *labels);
            if (!labels) rsa_fatal("free memory", "out of memory");
        }
        for (size_t i = before; i < files.n; i++) labels[i] = (int32_t)c;
    }
    Dataset *ds = NULL;
    if (rc == 0 && files.n == 0) rsa_fail("extract the images into the class folders", "%s holds no image files", dir);
    if (rc == 0 && files.n > 0) {
        ds = dataset_alloc_folder(name, split, files.n, (int)classes.n);
        size_t pool = 0;
        for (size_t i = 0; i < files.n; i++) pool += strlen(files.items[i]) + 1;
        ds->pool = malloc(pool);
        ds->paths = malloc(files.n * sizeof *ds->paths);
        if (!ds->pool || !ds->paths) rsa_fatal("free memory", "out of memory");
        char *p = ds->pool;
        for (size_t i = 0; i < files.n; i++) {
            size_t k = strlen(files.items[i]) + 1;
            memcpy(p, files.items[i], k);
            ds->paths[i] = p;
            ds->labels[i] = labels[i];
            p += k;
        }
    }
    free(labels);
    free_list(&files);
    free_list(&classes);
    return ds;
}
