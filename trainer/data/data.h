/* The data pipeline: data sets on disk, the augmented views the methods train on, and a multi-threaded loader.
 *
 * ## Data root (one layout)
 * The root is DataOptions.root, else $RSA_DATA, else "data". Under it:
 *
 *   cifar-10-batches-bin/data_batch_{1..5}.bin, test_batch.bin   CIFAR-10, binary version
 *   cifar-100-binary/train.bin, test.bin                         CIFAR-100, binary version (fine labels used)
 *   stl10_binary/{train,test}_{X,y}.bin, unlabeled_X.bin         STL-10, binary version
 *   tiny-imagenet-200/wnids.txt                                  Tiny ImageNet as distributed (the zip unpacked):
 *   tiny-imagenet-200/train/<wnid>/images/<name>.JPEG              500 training images a class
 *   tiny-imagenet-200/val/images/<name>.JPEG                       10000 validation images, their classes in
 *   tiny-imagenet-200/val/val_annotations.txt                      val_annotations.txt
 *   imagenet/{train,val}/<wnid>/<name>.JPEG                      ILSVRC-2012 as ImageFolder (val sorted into class
 *                                                                folders); ImageNet-100 is selected from it
 *   fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz  optional: else Debian's dataset-fashion-mnist
 *                                                                (/usr/share/datasets/fashion-mnist) is read
 *
 * A missing data set fails with the files expected, where to download them and the distributor's checksum of the
 * archive (dataset_sources() lists them). Readers check every size against the format: a short or corrupt file is
 * reported with its name, the byte offset and what was expected there.
 *
 * ## Data sets
 * cifar10, cifar100, stl10, tinyimagenet and fashionmnist are decoded into memory at open (uint8 HWC RGB, every image
 * the same size). imagenet and imagenet100 keep a file list (ImageFolder order: classes sorted by name, files sorted
 * within a class) and decode JPEGs in the loader's threads. Labels are 0-based; STL-10's unlabeled images have label -1.
 * Class order: torchvision's (CIFAR/STL files' label order; Tiny ImageNet and ImageNet: sorted wnids, as ImageFolder).
 *
 * ## Views (ViewMode)
 * MA (RSA): w1 = t1(x), w2 = t1'(x), a1 = t2(w1), a2 = t2'(w2); batch views in the order w1, w2, a1, a2.
 * AA: two full aggressive views t2(t1(x)). AW: view 0 aggressive, view 1 weak (the official TwoCropsTransform
 * (aggressive, weak)). WW: two weak views. NONE: the image itself (its size must equal the spec's size).
 * EVAL_TRAIN: RandomResizedCrop(size) with scale (0.08, 1) + flip. EVAL_TEST: CenterCrop(size), after
 * Resize(resize) of the shorter side when spec.resize > 0 (ImageNet: 256 then 224).
 * Randomness: view v of dataset index i in epoch e draws from rng_init(seed, RNG_AUGMENT, e, i, v) (RNG_EVAL_AUGMENT
 * with spec.eval); in MA views 2 and 3 draw t2 from their own streams and start from views 0 and 1. So a batch is a
 * pure function of (seed, epoch, step, spec), whatever the number of threads.
 *
 * ## Order and sharding
 * With shuffle, epoch e visits the data set in the permutation drawn from rng_init(seed, RNG_SHUFFLE, e, 0, 0)
 * (RNG_EVAL_SHUFFLE with spec.eval), the same on every rank; rank r of `world` takes positions r, r + world, ... of
 * it (as torch's DistributedSampler). With drop_last every rank gets floor(N / world) samples and
 * floor(that / batch) batches; without it, rank r gets its ceil((N - r) / world) samples and the last batch may be
 * short.
 *
 * ## Fidelity to the official pipeline (torchvision 0.9 + PIL there, torchvision 0.14.1 + Pillow 9.4 as our oracle)
 * - Every op given the same parameters produces the same bytes as torchvision + PIL: crop + resize, Resize(256),
 *   CenterCrop, flip, the four ColorJitter ops, grayscale, GaussianBlur, solarize, and ToTensor + Normalize to the
 *   same float32 values; hue, saturation, brightness and grayscale over all 2^24 colours (tests/data/test_aug_torch.c).
 *   A full JPEG decode is bit-identical to PIL's. The Pillow functions involved are unchanged from 8.x to 9.4.
 * - Randomness: our Philox streams replace torch's and Python's generators. The distributions and draw order follow
 *   torchvision 0.14 (RandomResizedCrop's 10 tries and fallback; ColorJitter draws its permutation, then the four
 *   factors). torchvision 0.9 drew each ColorJitter factor inside the permuted loop instead: same distribution.
 *   Factors and sigma are rounded to float32, as torch's uniform_ and PIL's C calls do.
 * - Not in the paper, our choices: Fashion-MNIST (28x28 grey, replicated to RGB) uses mean/std 0.2860/0.3530 and
 *   size 32, reached by the crops (training) and Resize(32) (evaluation); Tiny ImageNet's image order is ImageFolder's
 *   (the official LMDB's order is unknown; only the unshuffled order could differ).
 * - JPEG limits: TurboJPEG 2.1 rejects 4-component JPEGs with unusual chroma subsampling, which PIL decodes, and PNG
 *   data in a .JPEG file (ImageNet has one such file) is not decoded: both are reported, or skipped with
 *   allow_corrupt. The optional DCT scaling (LoaderSpec.jpeg_dct_scale) changes pixels (bench/aug.sh measures it). */
#ifndef RSA_DATA_H
#define RSA_DATA_H

#include "trainer/data/aug.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- JPEG (TurboJPEG) ---- */

/* A scaling factor of TurboJPEG's DCT-domain downscaling: the image decodes to ceil(dim * num / den). {1, 1} is a
 * full decode, bit-identical to PIL's (both use libjpeg-turbo with the accurate integer IDCT and fancy upsampling).
 * A smaller factor makes the IDCT itself reduce the image (much cheaper, but not PIL's pixels: it is an area-like
 * reduction of each 8x8 block, where PIL would decode at full size and let the later resize filter; the tests
 * measure the difference). */
typedef struct {
    int num, den;
} JpegScale;
#define JPEG_FULL ((JpegScale){1, 1})

/* Larger images are refused as corrupt: PIL raises DecompressionBombError above 2 x Image.MAX_IMAGE_PIXELS. */
#define JPEG_MAX_PIXELS 178956970

typedef struct JpegDecoder JpegDecoder; /* one per thread */
JpegDecoder *jpeg_decoder_new(void);    /* NULL with rsa_fail */
void jpeg_decoder_free(JpegDecoder *d);
/* Image size from the header. -1 with rsa_fail naming `name` and the offset on a bad header. */
int jpeg_header(JpegDecoder *d, const uint8_t *data, size_t size, const char *name, int *height, int *width);
/* Decodes to RGB (grayscale replicated; CMYK/YCCK converted as PIL's convert('RGB') does). The pixels belong to the
 * decoder until its next decode. A truncated file is an error (PIL refuses those too); libjpeg's warnings about
 * recoverable corruption are not (PIL decodes those files as well). */
int jpeg_decode(JpegDecoder *d, const uint8_t *data, size_t size, const char *name, JpegScale scale, Img *out);
/* The smallest of 1/1, 1/2, 1/4, 1/8 whose decoded image still has at least min_h x min_w pixels (of an image of
 * h x w). TurboJPEG also offers M/8 factors, but libjpeg-turbo runs those in plain C: slower than a full decode. */
JpegScale jpeg_pick_scale(int height, int width, int min_h, int min_w);

/* ---- data sets ---- */

typedef struct {
    const char *root;       /* NULL: $RSA_DATA, else "data" */
    bool allow_corrupt;     /* count and skip images that do not decode (folder data sets) instead of failing */
    const char *class_list; /* imagenet100: a file of wnids, one a line, instead of the built-in CMC list */
    int threads;            /* decoding threads at open (Tiny ImageNet); 0: 2 */
    const char *cache_dir;  /* Tiny ImageNet: keep the decoded images in <cache_dir>/tinyimagenet-<split>.rsadset,
                               rebuilt when a source file changes (see cache.c); NULL: decode at every open */
} DataOptions;

typedef struct Dataset Dataset;

/* name: cifar10, cifar100, stl10, tinyimagenet, imagenet, imagenet100, fashionmnist.
 * split: train, test (val is accepted for test); stl10 also unlabeled and train+unlabeled. NULL with rsa_fail. */
Dataset *dataset_open(const char *name, const char *split, const DataOptions *opt);
/* An in-memory data set of n images h x w (HWC RGB, copied) with labels (copied; NULL: all -1). */
Dataset *dataset_from_memory(const char *name, size_t n, int h, int w, const uint8_t *pixels, const int32_t *labels,
                             int num_classes);
void dataset_close(Dataset *ds);

size_t dataset_count(const Dataset *ds);
int dataset_num_classes(const Dataset *ds);
int32_t dataset_label(const Dataset *ds, size_t i);
const char *dataset_name(const Dataset *ds);
/* Fixed image size of an in-memory data set; 0 for folder data sets (sizes vary). */
int dataset_height(const Dataset *ds);
int dataset_width(const Dataset *ds);
/* Images found corrupt so far (skipped; only with allow_corrupt). */
size_t dataset_skipped(const Dataset *ds);
/* The path of image i of a folder data set, NULL for in-memory ones. */
const char *dataset_path(const Dataset *ds, size_t i);

/* Reading one image: in-memory data sets return a view of their pixels; folder data sets read and decode the file
 * with the reader's own buffers (so one reader per thread). The image stays valid until the reader's next call. */
typedef struct DataReader DataReader;
DataReader *data_reader_new(const Dataset *ds);
void data_reader_free(DataReader *r);
/* Size of image i (folder data sets: reads the file and its header). -1 with rsa_fail. */
int data_reader_size(DataReader *r, size_t i, int *height, int *width);
/* Image i, decoded at `scale` (folder data sets; ignored for in-memory ones). -1 with rsa_fail. */
int data_reader_image(DataReader *r, size_t i, JpegScale scale, Img *out);

/* Paper defaults of a data set (by name): normalisation statistics, view size, evaluation resize. */
typedef struct {
    float mean[3], std[3];
    int size;        /* 32, 64 or 224 */
    int eval_resize; /* 256 for ImageNet (Resize(256) + CenterCrop(224)), else 0 */
    int native;      /* the stored images' side (mode NONE uses it); 0 where sizes vary */
} DataDefaults;
int data_defaults(const char *name, DataDefaults *out); /* -1 with rsa_fail for an unknown name */

/* Where each data set comes from: its files under the root, URL, archive checksum. */
typedef struct {
    const char *name, *files, *url, *archive, *checksum;
} DataSource;
const DataSource *dataset_sources(int *count);

/* The CMC ImageNet-100 class list (100 wnids, in the order of trainer/data/imagenet100.txt). */
extern const char *const imagenet100_wnids[100];

/* ---- views and loader ---- */

typedef enum {
    VIEWS_MA,
    VIEWS_AA,
    VIEWS_AW,
    VIEWS_WW,
    VIEWS_NONE,
    VIEWS_EVAL_TRAIN,
    VIEWS_EVAL_TEST,
} ViewMode;

int view_count(ViewMode m);
const char *view_mode_name(ViewMode m);
int view_mode_parse(const char *name, ViewMode *out); /* "ma", "aa", "aw", "ww", "none", "eval-train", "eval-test" */

typedef struct {
    ViewMode mode;
    int size;            /* output side */
    float mean[3], std[3];
    int batch;
    uint64_t seed;
    bool drop_last;      /* pretraining: true; evaluation: false */
    bool shuffle;
    bool eval;           /* draw from RNG_EVAL_SHUFFLE / RNG_EVAL_AUGMENT instead of RNG_SHUFFLE / RNG_AUGMENT */
    int resize;          /* VIEWS_EVAL_TEST: shorter side resized to this first; 0: CenterCrop only */
    double scale_lo;     /* RandomResizedCrop scale; 0: the mode's default ((0.2, 1) SSL, (0.08, 1) EVAL_TRAIN) */
    double scale_hi;
    int threads;         /* worker threads, sharing each batch; 0: batches are made in the caller's thread inside
                            loader_next (loader_threads_auto: how many a process should run) */
    int prefetch;        /* batch slots (>= 1; 0: 3, one held, one being made, one ready; 1 without threads) */
    int rank, world;     /* world 0 counts as 1 */
    int groups;          /* > 1: each batch's samples reordered into this many groups, group g holding the batch's
                            positions g, g + groups, g + 2 groups, ...: the batches that `groups` times as many
                            ranks would each take (BN statistics groups standing for them, TrainConfig.bn_group);
                            0 or 1: in order. Must divide the batch */
    bool shard_blocks;   /* rank r takes the epoch order's positions [loader_block_start(r), loader_block_start(r + 1))
                            instead of every world-th from r, so the ranks' samples one after the other are one
                            process's order (evaluation features gathered to rank 0); not with drop_last */
    bool jpeg_dct_scale; /* folder data sets: let TurboJPEG reduce the image in the IDCT when every crop of the
                            sample still has at least `size` pixels per side after it (faster, not PIL's pixels) */
    /* Where batches live (both NULL: core/hostmem): a backend's host_alloc/host_free, so that its uploads read them
     * fast (page-locked memory on cuda). */
    void *(*host_alloc)(size_t bytes);
    void (*host_free)(void *p, size_t bytes);
} LoaderSpec;

/* A spec with the paper's settings for data set `name` (mean/std/size; NONE: the native size) and this mode: batch
 * 256; shuffle for the SSL modes and EVAL_TRAIN; drop_last for the SSL modes only; eval streams for EVAL_*;
 * 2 threads. */
int loader_spec_default(const char *name, ViewMode mode, uint64_t seed, LoaderSpec *spec);

/* The loader threads a process runs when the experiment says loader_threads = "auto" (the default). A process on
 * the cpu backend: 2, since its compute threads take the cores and 2 threads make batches many times faster than
 * the CPU trains on them (REPRODUCE.md, "Performance"). A process that feeds a GPU: its share of the node's cores
 * (the fewer of the cores it may run on and the online cores over the processes on its node), less one for its own
 * thread, which drives the GPU; at least 2 and at most 32. loader_threads_for is the rule on given counts. */
int loader_threads_auto(bool feeds_gpu, int processes_on_node);
/* The first position of rank's block of n samples (shard_blocks): n * rank / world. */
int64_t loader_block_start(int64_t n, int rank, int world);
int loader_threads_for(bool feeds_gpu, int cores_usable, int cores_online, int processes_on_node);
/* A process's share of its node's cores: the online cores over the processes on the node, no more than the
 * `usable` cores its CPU mask holds (mpirun's binding), at least 1. The loader's rule above and the harness's compute
 * threads under mpirun both start from it. */
int cores_share(int usable, int online, int processes_on_node);
/* The cores online on this node and those this process may run on (its affinity mask; all online if unknown). */
void cores_of_process(int *usable, int *online);

typedef struct {
    int n;          /* images in this batch */
    int views;      /* 1, 2 or 4 */
    int size;       /* each view is n x 3 x size x size floats, NCHW */
    float *view[4]; /* one contiguous buffer per view */
    int32_t *label; /* n labels */
    int64_t *index; /* n data set indices */
    int epoch, step;
} Batch;

typedef struct {
    double wait_seconds;  /* time loader_next spent waiting for a batch (data-bound time) */
    double make_seconds;  /* time spent making batches, summed over threads */
    int64_t batches, images;
    size_t skipped;       /* corrupt images replaced (allow_corrupt) */
} LoaderStats;

typedef struct Loader Loader;
/* NULL with rsa_fail on a bad spec. The data set must outlive the loader. */
Loader *loader_new(const Dataset *ds, const LoaderSpec *spec);
/* Begins epoch `epoch` at batch `step` (0 <= step <= steps per epoch) for an exact resume. Every batch taken from
 * the previous epoch must have been released. */
int loader_start(Loader *l, int epoch, int step);
/* The next batch of the epoch in order, or *out = NULL at the end of the epoch. -1 with rsa_fail when a worker
 * failed (a corrupt file without allow_corrupt: the message names the file). */
int loader_next(Loader *l, Batch **out);
void loader_release(Loader *l, Batch *b);
int64_t loader_steps_per_epoch(const Loader *l);
/* Samples this rank sees per epoch (before dropping the last partial batch). */
int64_t loader_samples_per_epoch(const Loader *l);
LoaderStats loader_stats(const Loader *l);
void loader_free(Loader *l);

/* The permutation of epoch `epoch` (n entries), as the loader uses it. */
void data_epoch_permutation(uint64_t seed, bool eval, int epoch, size_t n, int64_t *perm);

/* Makes one sample's views as the loader does (for tests and benchmarks): view v goes to out[v] (3 x size x size).
 * `img` is the full source image. Returns 0. */
int data_make_views(const LoaderSpec *spec, const Img *img, int epoch, int64_t index, AugScratch *s,
                    float *out[4]);

#endif
