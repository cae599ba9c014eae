/* Writes the seed corpora of the fuzzers (tests/fuzz/corpus/<target>/): one or two small valid inputs of each
 * format, in each target's input layout (see the comment at the top of each fuzz_*.c). `make fuzz-seeds` runs it;
 * the outputs are committed, so this only needs rerunning when a format or a target's layout changes. */
#include "tests/fuzz/fuzz_model.h"
#include "trainer/core/fileio.h"
#include "trainer/data/dataset_internal.h"
#include "trainer/io/safetensors.h"
#include "trainer/train/checkpoint.h"

#include <string.h>
#include <turbojpeg.h>
#include <zlib.h>

static const char *dir;

static void put(const char *target, const char *name, const void *a, size_t na, const void *b, size_t nb) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, target);
    if (make_dirs(path) != 0) goto fail;
    snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
    const void *pieces[2] = {a, b};
    size_t sizes[2] = {na, nb};
    if (atomic_write(path, pieces, sizes, b ? 2 : 1) != 0) goto fail;
    return;
fail:
    fprintf(stderr, "make_seeds: %s\n", rsa_error_message());
    exit(1);
}

static uint8_t *gz(const uint8_t *data, size_t n, size_t *out_n) {
    uLongf cap = compressBound(n) + 64;
    uint8_t *out = malloc(cap);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (!out || deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) exit(1);
    zs.next_in = (Bytef *)data, zs.avail_in = (uInt)n, zs.next_out = out, zs.avail_out = (uInt)cap;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END) exit(1);
    *out_n = zs.total_out;
    deflateEnd(&zs);
    return out;
}

static void le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void be32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void cifar(void) {
    uint8_t rec[1 + 2 * 3074];
    for (size_t i = 0; i < sizeof rec; i++) rec[i] = (uint8_t)(i * 7);
    rec[0] = 0, rec[1] = 3; /* CIFAR-10, one record, label 3 */
    put("cifar", "cifar10-1", rec, 1 + 3073, NULL, 0);
    rec[0] = 1, rec[1] = 4, rec[2] = 42, rec[1 + 3074] = 19, rec[2 + 3074] = 99; /* CIFAR-100, two records */
    put("cifar", "cifar100-2", rec, sizeof rec, NULL, 0);
}

static void stl10(void) {
    static uint8_t x[4 + 27648 + 1];
    le32(x, 27648);
    for (size_t i = 4; i < 4 + 27648; i++) x[i] = (uint8_t)(i * 13);
    x[4 + 27648] = 10;
    put("stl10", "one-image", x, sizeof x, NULL, 0);
}

static void idx(void) {
    uint8_t img[16 + 2 * 784], lab[8 + 2];
    be32(img, 0x803), be32(img + 4, 2), be32(img + 8, 28), be32(img + 12, 28);
    for (int i = 0; i < 2 * 784; i++) img[16 + i] = (uint8_t)(i * 3);
    be32(lab, 0x801), be32(lab + 4, 2), lab[8] = 9, lab[9] = 0;
    size_t ni, nl;
    uint8_t *gi = gz(img, sizeof img, &ni), *gl = gz(lab, sizeof lab, &nl);
    uint8_t *both = malloc(4 + ni + nl);
    le32(both, (uint32_t)ni);
    memcpy(both + 4, gi, ni), memcpy(both + 4 + ni, gl, nl);
    put("idx", "two-images", both, 4 + ni + nl, NULL, 0);
    free(gi), free(gl), free(both);
}

static void jpeg(const char *name, int w, int h, int pf, int subsamp, int flags, uint8_t mode, uint8_t size,
                 uint8_t dct) {
    tjhandle tj = tjInitCompress();
    int ch = tjPixelSize[pf];
    uint8_t *px = malloc((size_t)w * h * ch);
    for (int i = 0; i < w * h * ch; i++) px[i] = (uint8_t)((i * 29) ^ (i / 7));
    unsigned char *out = NULL;
    unsigned long n = 0;
    if (!tj || tjCompress2(tj, px, w, 0, h, pf, &out, &n, subsamp, 90, flags) != 0) {
        fprintf(stderr, "make_seeds: %s\n", tjGetErrorStr2(tj));
        exit(1);
    }
    uint8_t prefix[3] = {mode, size, dct};
    put("jpeg", name, prefix, 3, out, n);
    tjFree(out);
    tjDestroy(tj);
    free(px);
}

static void safetensors(void) {
    StWriter *w = st_writer_new();
    float f[6] = {1, -2, 3.5f, 0, 1e-3f, 7};
    int64_t i64 = 42, s23[2] = {2, 3}, s4[1] = {4};
    uint8_t u8[4] = {1, 2, 3, 255};
    st_add(w, "weight", ST_F32, 2, s23, f);
    st_add(w, "count", ST_I64, 0, NULL, &i64);
    st_add(w, "mask", ST_BOOL, 1, s4, u8);
    st_add(w, "bytes\"q", ST_U8, 1, s4, u8);
    st_set_meta(w, "format", "pt");
    st_set_meta(w, "note", "tab\there");
    char path[1024];
    snprintf(path, sizeof path, "%s/safetensors", dir);
    make_dirs(path);
    snprintf(path, sizeof path, "%s/safetensors/small", dir);
    if (st_write(w, path) != 0) exit(1);
    st_writer_free(w);
    put("safetensors", "empty", "\x02\0\0\0\0\0\0\0{}", 10, NULL, 0);
}

static void checkpoints(void) {
    for (int i = 0; i < 2; i++) {
        TrainConfig c;
        fuzz_model_config(&c, i ? METHOD_MOCOV2 : METHOD_RSA);
        Learner *l = learner_new(&c, backend_by_name("ref"), FUZZ_BATCH, 100);
        if (!l) {
            fprintf(stderr, "make_seeds: %s\n", rsa_error_message());
            exit(1);
        }
        if (fuzz_model_step(l) != 0 || fuzz_model_step(l) != 0) {
            fprintf(stderr, "make_seeds: %s\n", rsa_error_message());
            exit(1);
        }
        char path[1024];
        snprintf(path, sizeof path, "%s/checkpoint", dir);
        make_dirs(path);
        snprintf(path, sizeof path, "%s/checkpoint/%s", dir, i ? "mocov2" : "rsa");
        if (checkpoint_save(l, (RunPosition){0, 2, 0.5}, "fuzz", path) != 0) exit(1);
        learner_free(l);
    }
}

static void cache(void) {
    uint8_t px[2 * 4 * 5 * 3];
    int32_t labels[2] = {1, -1};
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)i;
    Dataset *ds = dataset_from_memory("tinyimagenet", 2, 4, 5, px, labels, 3);
    char path[1024];
    snprintf(path, sizeof path, "%s/cache", dir);
    make_dirs(path);
    snprintf(path, sizeof path, "%s/cache/two-images", dir);
    if (!ds || data_cache_save(path, 0x1234567890abcdefull, ds) != 0) exit(1);
    dataset_close(ds);
}

int main(int argc, char **argv) {
    dir = argc > 1 ? argv[1] : "tests/fuzz/corpus";
    cifar();
    stl10();
    idx();
    jpeg("rgb420-17x13", 17, 13, TJPF_RGB, TJSAMP_420, 0, 0, 16, 0);
    jpeg("gray-8x8", 8, 8, TJPF_GRAY, TJSAMP_GRAY, 0, 5 | 0x80, 7, 1);
    jpeg("rgb444-progressive-40x24", 40, 24, TJPF_RGB, TJSAMP_444, TJFLAG_PROGRESSIVE, 1, 32, 3);
    jpeg("cmyk-9x9", 9, 9, TJPF_CMYK, TJSAMP_444, 0, 4, 5, 0);
    jpeg("rgb422-64x48", 64, 48, TJPF_RGB, TJSAMP_422, 0, 2, 24, 1);
    safetensors();
    checkpoints();
    cache();
    return 0;
}
