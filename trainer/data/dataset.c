/* Data sets: opening by name, the data root, in-memory and folder storage, per-thread readers, paper defaults. */
#include "dataset_internal.h"

#include "trainer/core/error.h"
#include "trainer/core/hostmem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const DataSource SOURCES[] = {
    {"cifar10", "cifar-10-batches-bin/data_batch_{1..5}.bin, cifar-10-batches-bin/test_batch.bin",
     "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", "cifar-10-binary.tar.gz",
     "md5 c32a1d4ab5d03f1284b67883e8d87530 (published on https://www.cs.toronto.edu/~kriz/cifar.html; torchvision "
     "reads the python version, cifar-10-python.tar.gz md5 c58f30108f718f92721af3b95e74349a, same images in the "
     "same order)"},
    {"cifar100", "cifar-100-binary/train.bin, cifar-100-binary/test.bin",
     "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz", "cifar-100-binary.tar.gz",
     "md5 03b5dce01913d631647c71ecec9e9cb8 (https://www.cs.toronto.edu/~kriz/cifar.html; torchvision's python "
     "version: cifar-100-python.tar.gz md5 eb9058c3a382ffc7106e4002c42a8d85)"},
    {"stl10", "stl10_binary/{train,test}_X.bin, stl10_binary/{train,test}_y.bin, stl10_binary/unlabeled_X.bin",
     "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz", "stl10_binary.tar.gz",
     "md5 91f7769df0f17e558f3565bffb0c7dfb (torchvision.datasets.STL10)"},
    {"tinyimagenet",
     "tiny-imagenet-200/wnids.txt, tiny-imagenet-200/train/<wnid>/images/*.JPEG, tiny-imagenet-200/val/images/*.JPEG, "
     "tiny-imagenet-200/val/val_annotations.txt",
     "http://cs231n.stanford.edu/tiny-imagenet-200.zip", "tiny-imagenet-200.zip",
     "md5 90528d7ca1a48142e341f4ef8d21d0de (the value every public Tiny ImageNet loader checks; torchvision has no "
     "Tiny ImageNet class)"},
    {"imagenet", "imagenet/train/<wnid>/*.JPEG, imagenet/val/<wnid>/*.JPEG",
     "https://image-net.org/challenges/LSVRC/2012/ (registration required)",
     "ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar (+ ILSVRC2012_devkit_t12.tar.gz to sort val into class "
     "folders, as torchvision.datasets.ImageNet does)",
     "md5 1d675b47d978889d74fa0da5fadfb00e (train), 29b22e2961454d5413ddabcf34fc5622 (val), "
     "fa75699e90414af021442c21a62c3abf (devkit) (torchvision.datasets.ImageNet)"},
    {"imagenet100", "imagenet/train/<wnid>/*.JPEG, imagenet/val/<wnid>/*.JPEG (the 100 CMC classes are selected)",
     "https://image-net.org/challenges/LSVRC/2012/ (registration required)",
     "ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar",
     "md5 1d675b47d978889d74fa0da5fadfb00e (train), 29b22e2961454d5413ddabcf34fc5622 (val)"},
    {"fashionmnist",
     "fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz, else /usr/share/datasets/fashion-mnist/ "
     "(Debian package dataset-fashion-mnist)",
     "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ or `apt-get install dataset-fashion-mnist`",
     "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz",
     "md5 8d4fb7e6c68d591d4c3dfef9ec88bf0d, 25c81989df183df01b3e8a0aad5dffbe, bef4ecab320f06d8554ea6380940ec79, "
     "bb300cfdad3c16e7a12a480ee83cd310 (torchvision.datasets.FashionMNIST); Debian recompresses them: "
     "cf8536b0aa1a6ac5fa3f23001093305c, 10bea18fdb374794d4bb42e356e600c9, f78720b4224f21cce2f2ccf2d7a94c9a, "
     "0d30e22e447f3c33dab9ed536400ac01"},
};

const DataSource *dataset_sources(int *count) {
    *count = (int)(sizeof SOURCES / sizeof SOURCES[0]);
    return SOURCES;
}

int data_missing(const char *name, const char *root, const char *looked_for) {
    int n;
    const DataSource *s = dataset_sources(&n);
    for (int i = 0; i < n; i++) {
        if (strcmp(s[i].name, name) != 0) continue;
        char hint[1536];
        snprintf(hint, sizeof hint,
                 "download %s from %s and unpack it under %s (or set RSA_DATA / DataOptions.root to the directory "
                 "holding it); the archive's checksum: %s",
                 s[i].archive, s[i].url, root, s[i].checksum);
        return rsa_fail(hint, "%s not found: %s is missing; expected under the data root %s: %s", name, looked_for,
                        root, s[i].files);
    }
    return rsa_fail("this is a bug in rsa-repro", "%s not found: %s", name, looked_for);
}

void data_path(char *out, size_t size, const char *root, const char *rel) { snprintf(out, size, "%s/%s", root, rel); }

bool data_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool data_dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int data_read_whole(const char *path, uint8_t **buf, size_t *cap, size_t *size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return rsa_fail("check the path and its permissions", "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return rsa_fail("check the file system", "cannot stat %s: %s", path, strerror(err));
    }
    size_t want = (size_t)st.st_size;
    if (*cap < want + 1) {
        free(*buf);
        size_t c = want + 1 < 65536 ? 65536 : want + 1;
        *buf = malloc(c);
        if (!*buf) rsa_fatal("free memory", "out of memory (%zu bytes for %s)", c, path);
        *cap = c;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t r = read(fd, *buf + got, want - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int err = r < 0 ? errno : 0;
            close(fd);
            return rsa_fail("the file changed while being read, or the disk is failing", "%s: read stopped at byte %zu "
                            "of %zu: %s", path, got, want, err ? strerror(err) : "unexpected end of file");
        }
        got += (size_t)r;
    }
    close(fd);
    *size = got;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

char **data_list_dir(const char *path, bool dirs_only, bool files_only, size_t *count) {
    DIR *d = opendir(path);
    if (!d) {
        rsa_fail("check the data root layout (see trainer/data/data.h)", "cannot read directory %s: %s", path,
                 strerror(errno));
        return NULL;
    }
    size_t n = 0, cap = 64;
    char **list = malloc(cap * sizeof *list);
    if (!list) rsa_fatal("free memory", "out of memory");
    struct dirent *e;
    char full[4096];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (dirs_only || files_only) {
            bool is_dir;
            if (e->d_type == DT_DIR)
                is_dir = true;
            else if (e->d_type == DT_REG)
                is_dir = false;
            else { /* DT_UNKNOWN or a link: follow it, as os.scandir().is_dir() and os.walk(followlinks) do */
                snprintf(full, sizeof full, "%s/%s", path, e->d_name);
                is_dir = data_dir_exists(full);
            }
            if (dirs_only && !is_dir) continue;
            if (files_only && is_dir) continue;
        }
        if (n == cap) {
            cap *= 2;
            list = realloc(list, cap * sizeof *list);
            if (!list) rsa_fatal("free memory", "out of memory");
        }
        list[n] = strdup(e->d_name);
        if (!list[n]) rsa_fatal("free memory", "out of memory");
        n++;
    }
    closedir(d);
    /* Python's sorted() on str compares code points; strcmp on UTF-8 bytes gives the same order */
    qsort(list, n, sizeof *list, cmp_str);
    *count = n;
    return list;
}

void data_free_list(char **list, size_t count) {
    if (!list) return;
    for (size_t i = 0; i < count; i++) free(list[i]);
    free(list);
}

static Dataset *dataset_alloc(const char *name, const char *split, size_t n, int num_classes) {
    Dataset *ds = calloc(1, sizeof *ds);
    if (!ds) rsa_fatal("free memory", "out of memory");
    snprintf(ds->name, sizeof ds->name, "%s", name);
    snprintf(ds->split, sizeof ds->split, "%s", split);
    ds->n = n;
    ds->num_classes = num_classes;
    ds->labels = malloc((n ? n : 1) * sizeof *ds->labels);
    if (!ds->labels) rsa_fatal("free memory", "out of memory");
    atomic_init(&ds->skipped, 0);
    return ds;
}

Dataset *dataset_alloc_memory(const char *name, const char *split, size_t n, int h, int w, int num_classes) {
    Dataset *ds = dataset_alloc(name, split, n, num_classes);
    ds->h = h, ds->w = w;
    ds->pixel_bytes = n * (size_t)h * (size_t)w * 3;
    ds->pixels = hostmem_alloc(ds->pixel_bytes ? ds->pixel_bytes : 1);
    if (!ds->pixels) {
        free(ds->labels);
        free(ds);
        rsa_error_context("while allocating %zu images of %dx%d for %s", n, h, w, name);
        return NULL;
    }
    return ds;
}

Dataset *dataset_alloc_folder(const char *name, const char *split, size_t n, int num_classes) {
    Dataset *ds = dataset_alloc(name, split, n, num_classes);
    ds->bad = calloc(n ? n : 1, 1);
    if (!ds->bad) rsa_fatal("free memory", "out of memory");
    return ds;
}

Dataset *dataset_from_memory(const char *name, size_t n, int h, int w, const uint8_t *pixels, const int32_t *labels,
                             int num_classes) {
    Dataset *ds = dataset_alloc_memory(name, "memory", n, h, w, num_classes);
    if (!ds) return NULL;
    if (ds->pixel_bytes) memcpy(ds->pixels, pixels, ds->pixel_bytes); /* pixels may be NULL when n is 0 */
    for (size_t i = 0; i < n; i++) ds->labels[i] = labels ? labels[i] : -1;
    return ds;
}

void dataset_close(Dataset *ds) {
    if (!ds) return;
    if (ds->pixels) hostmem_free(ds->pixels, ds->pixel_bytes ? ds->pixel_bytes : 1);
    free(ds->labels);
    free(ds->paths);
    free(ds->pool);
    free((void *)ds->bad);
    free(ds);
}

size_t dataset_count(const Dataset *ds) { return ds->n; }
int dataset_num_classes(const Dataset *ds) { return ds->num_classes; }
int32_t dataset_label(const Dataset *ds, size_t i) { return i < ds->n ? ds->labels[i] : -1; }
const char *dataset_name(const Dataset *ds) { return ds->name; }
int dataset_height(const Dataset *ds) { return ds->pixels ? ds->h : 0; }
int dataset_width(const Dataset *ds) { return ds->pixels ? ds->w : 0; }
size_t dataset_skipped(const Dataset *ds) { return atomic_load(&((Dataset *)ds)->skipped); }
const char *dataset_path(const Dataset *ds, size_t i) { return ds->paths && i < ds->n ? ds->paths[i] : NULL; }

Dataset *dataset_open(const char *name, const char *split, const DataOptions *opt) {
    DataOptions none = {0};
    if (!opt) opt = &none;
    const char *root = opt->root ? opt->root : getenv("RSA_DATA");
    if (!root || !root[0]) root = "data";
    if (!split) split = "train";
    const char *sp = strcmp(split, "val") == 0 ? "test" : split;
    bool known_split = strcmp(sp, "train") == 0 || strcmp(sp, "test") == 0;
    if (strcmp(name, "stl10") == 0) known_split |= strcmp(sp, "unlabeled") == 0 || strcmp(sp, "train+unlabeled") == 0;
    if (!known_split) {
        rsa_fail("use train or test (val); stl10 also has unlabeled and train+unlabeled",
                 "data set %s has no split '%s'", name, split);
        return NULL;
    }
    Dataset *ds = NULL;
    if (strcmp(name, "cifar10") == 0 || strcmp(name, "cifar100") == 0)
        ds = cifar_open(name, sp, root);
    else if (strcmp(name, "stl10") == 0)
        ds = stl10_open(sp, root);
    else if (strcmp(name, "fashionmnist") == 0)
        ds = fashion_mnist_open(sp, root);
    else if (strcmp(name, "tinyimagenet") == 0)
        ds = tiny_imagenet_open(sp, root, opt);
    else if (strcmp(name, "imagenet") == 0 || strcmp(name, "imagenet100") == 0)
        ds = image_folder_open(name, sp, root, opt);
    else {
        rsa_fail("use cifar10, cifar100, stl10, tinyimagenet, imagenet, imagenet100 or fashionmnist",
                 "unknown data set '%s'", name);
        return NULL;
    }
    if (ds) ds->allow_corrupt = opt->allow_corrupt;
    return ds;
}

int data_defaults(const char *name, DataDefaults *out) {
    static const struct {
        const char *name;
        DataDefaults d;
    } table[] = {
        {"cifar10", {{0.4914f, 0.4822f, 0.4465f}, {0.2023f, 0.1994f, 0.2010f}, 32, 0, 32}},
        {"cifar100", {{0.4914f, 0.4822f, 0.4465f}, {0.2023f, 0.1994f, 0.2010f}, 32, 0, 32}},
        {"stl10", {{0.4408f, 0.4279f, 0.3867f}, {0.2682f, 0.2610f, 0.2686f}, 64, 0, 96}},
        {"tinyimagenet", {{0.4802f, 0.4481f, 0.3975f}, {0.2302f, 0.2265f, 0.2262f}, 64, 0, 64}},
        {"imagenet", {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}, 224, 256, 0}},
        {"imagenet100", {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}, 224, 256, 0}},
        /* computed once from the 60000 training images (population mean and std of all pixels / 255):
         * 0.28604 and 0.35302; the 28x28 images are brought to 32 by the crops, and by Resize(32) for testing */
        {"fashionmnist", {{0.2860f, 0.2860f, 0.2860f}, {0.3530f, 0.3530f, 0.3530f}, 32, 32, 28}},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].name, name) == 0) {
            *out = table[i].d;
            return 0;
        }
    return rsa_fail("use cifar10, cifar100, stl10, tinyimagenet, imagenet, imagenet100 or fashionmnist",
                    "no defaults for unknown data set '%s'", name);
}

/* ---- readers ---- */

struct DataReader {
    const Dataset *ds;
    JpegDecoder *dec;
    uint8_t *file;
    size_t cap, size;
    size_t loaded; /* index whose bytes are in `file`, or SIZE_MAX */
};

DataReader *data_reader_new(const Dataset *ds) {
    DataReader *r = calloc(1, sizeof *r);
    if (!r) rsa_fatal("free memory", "out of memory");
    r->ds = ds;
    r->loaded = SIZE_MAX;
    if (ds->paths) {
        r->dec = jpeg_decoder_new();
        if (!r->dec) {
            free(r);
            return NULL;
        }
    }
    return r;
}

void data_reader_free(DataReader *r) {
    if (!r) return;
    jpeg_decoder_free(r->dec);
    free(r->file);
    free(r);
}

static int reader_load(DataReader *r, size_t i) {
    if (r->loaded == i) return 0;
    r->loaded = SIZE_MAX;
    if (data_read_whole(r->ds->paths[i], &r->file, &r->cap, &r->size)) return -1;
    r->loaded = i;
    return 0;
}

int data_reader_size(DataReader *r, size_t i, int *height, int *width) {
    const Dataset *ds = r->ds;
    if (i >= ds->n) return rsa_fail("this is a bug in rsa-repro", "image %zu of %zu requested", i, ds->n);
    if (ds->pixels) {
        *height = ds->h, *width = ds->w;
        return 0;
    }
    if (reader_load(r, i)) return -1;
    return jpeg_header(r->dec, r->file, r->size, ds->paths[i], height, width);
}

int data_reader_image(DataReader *r, size_t i, JpegScale scale, Img *out) {
    const Dataset *ds = r->ds;
    if (i >= ds->n) return rsa_fail("this is a bug in rsa-repro", "image %zu of %zu requested", i, ds->n);
    if (ds->pixels) {
        *out = img_make(ds->pixels + i * (size_t)ds->h * ds->w * 3, ds->h, ds->w);
        return 0;
    }
    if (reader_load(r, i)) return -1;
    return jpeg_decode(r->dec, r->file, r->size, ds->paths[i], scale, out);
}

/* ---- decoding a list of JPEG files into memory (Tiny ImageNet) ---- */

typedef struct {
    Dataset *ds;
    char **paths;
    atomic_size_t next;
    uint8_t *ok;
    char error[2048];
    atomic_int failed;
    pthread_mutex_t mu;
} DecodeJob;

static void *decode_worker(void *arg) {
    DecodeJob *job = arg;
    Dataset *ds = job->ds;
    JpegDecoder *dec = jpeg_decoder_new();
    uint8_t *buf = NULL;
    size_t cap = 0, size;
    size_t frame = (size_t)ds->h * ds->w * 3;
    for (;;) {
        if (atomic_load(&job->failed)) break;
        size_t i = atomic_fetch_add(&job->next, 1);
        if (i >= ds->n) break;
        Img im;
        int rc = dec ? data_read_whole(job->paths[i], &buf, &cap, &size) : -1;
        if (rc == 0) rc = jpeg_decode(dec, buf, size, job->paths[i], JPEG_FULL, &im);
        if (rc == 0 && (im.h != ds->h || im.w != ds->w))
            rc = rsa_fail("the data set is not the one expected: re-extract it", "%s: image is %dx%d, expected %dx%d",
                          job->paths[i], im.h, im.w, ds->h, ds->w);
        if (rc == 0) {
            memcpy(ds->pixels + i * frame, im.px, frame);
            job->ok[i] = 1;
        } else if (ds->allow_corrupt) {
            atomic_fetch_add(&ds->skipped, 1);
        } else {
            pthread_mutex_lock(&job->mu);
            if (!atomic_load(&job->failed)) snprintf(job->error, sizeof job->error, "%s", rsa_error_message());
            atomic_store(&job->failed, 1);
            pthread_mutex_unlock(&job->mu);
        }
    }
    free(buf);
    jpeg_decoder_free(dec);
    return NULL;
}

int data_decode_files_into(Dataset *ds, char **paths, int threads) {
    if (threads < 1) threads = 2;
    DecodeJob job = {.ds = ds, .paths = paths};
    atomic_init(&job.next, 0);
    atomic_init(&job.failed, 0);
    job.ok = calloc(ds->n ? ds->n : 1, 1);
    if (!job.ok) rsa_fatal("free memory", "out of memory");
    pthread_mutex_init(&job.mu, NULL);
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    if (!t) rsa_fatal("free memory", "out of memory");
    int started = 0;
    for (; started < threads; started++)
        if (pthread_create(&t[started], NULL, decode_worker, &job) != 0) break;
    if (started == 0) decode_worker(&job);
    for (int i = 0; i < started; i++) pthread_join(t[i], NULL);
    free(t);
    pthread_mutex_destroy(&job.mu);
    if (atomic_load(&job.failed)) {
        free(job.ok);
        return rsa_fail("", "%s", job.error); /* the worker's message has its hint */
    }
    /* drop the images that did not decode, keeping the order */
    size_t frame = (size_t)ds->h * ds->w * 3, k = 0;
    for (size_t i = 0; i < ds->n; i++) {
        if (!job.ok[i]) continue;
        if (k != i) {
            memmove(ds->pixels + k * frame, ds->pixels + i * frame, frame);
            ds->labels[k] = ds->labels[i];
        }
        k++;
    }
    ds->n = k;
    free(job.ok);
    return 0;
}
