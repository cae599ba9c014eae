/* Fashion-MNIST from gzipped IDX files (the distributor's format; Debian's dataset-fashion-mnist installs them in
 * /usr/share/datasets/fashion-mnist). IDX: a big-endian magic 0x000008TT (TT = 03 images, 01 labels: unsigned
 * bytes, that many dimensions), the dimensions as big-endian 32-bit counts, then the data row-major. The 28x28
 * grayscale images are replicated to 3 channels (what torchvision gives after .convert('RGB')). */
#include "dataset_internal.h"

#include "trainer/core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char *const HINT = "the file is truncated or corrupt: reinstall dataset-fashion-mnist or download it "
                                "again";

/* Inflates the gzip data (gz, size) of file `path` into *out. -1 with rsa_fail naming the compressed offset on
 * corrupt data. */
static int gunzip(const char *path, const uint8_t *gz, size_t size, uint8_t **out, size_t *out_size) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) rsa_fatal("check zlib", "inflateInit2 failed");
    size_t ocap = size * 4 + 1024, used = 0;
    uint8_t *o = malloc(ocap);
    if (!o) rsa_fatal("free memory", "out of memory");
    zs.next_in = (Bytef *)gz;
    zs.avail_in = (uInt)size;
    int zr;
    do {
        if (used == ocap) {
            ocap *= 2;
            o = realloc(o, ocap);
            if (!o) rsa_fatal("free memory", "out of memory");
        }
        zs.next_out = o + used;
        zs.avail_out = (uInt)(ocap - used);
        zr = inflate(&zs, Z_NO_FLUSH);
        used = ocap - zs.avail_out;
    } while (zr == Z_OK);
    size_t at = (size_t)(zs.next_in - gz);
    inflateEnd(&zs);
    if (zr != Z_STREAM_END) {
        free(o);
        if (zr == Z_BUF_ERROR)
            return rsa_fail(HINT, "%s: gzip stream cut short at byte %zu of %zu (after %zu decompressed bytes)", path,
                            at, size, used);
        return rsa_fail(HINT, "%s: corrupt gzip data near byte %zu of %zu: %s", path, at, size,
                        zs.msg ? zs.msg : "inflate failed");
    }
    *out = o;
    *out_size = used;
    return 0;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* Checks the IDX header of (data, size) for `dims` dimensions and returns them; the data start at 4 + 4 dims. */
static int idx_header(const char *path, const uint8_t *data, size_t size, int dims, uint32_t *shape) {
    if (size < 4 + 4 * (size_t)dims)
        return rsa_fail(HINT, "%s: the decompressed data end at byte %zu, inside the %d-byte IDX header", path, size,
                        4 + 4 * dims);
    uint32_t magic = be32(data), want = 0x800u | (uint32_t)dims;
    if (magic != want)
        return rsa_fail(HINT, "%s: byte 0 (decompressed): bad IDX magic 0x%08X, expected 0x%08X (unsigned bytes, %d "
                        "dimension%s)", path, magic, want, dims, dims > 1 ? "s" : "");
    size_t count = 1;
    for (int d = 0; d < dims; d++) {
        shape[d] = be32(data + 4 + 4 * d);
        if (shape[d] > INT32_MAX || (shape[d] && count > SIZE_MAX / shape[d]))
            return rsa_fail(HINT, "%s: byte %d (decompressed): dimension %d of %u is too large", path, 4 + 4 * d, d,
                            shape[d]);
        count *= shape[d];
    }
    size_t start = 4 + 4 * (size_t)dims;
    if (size - start != count)
        return rsa_fail(HINT, "%s: the header (byte 4) announces %zu data bytes after byte %zu, the decompressed data "
                        "%s at byte %zu", path, count, start, size - start < count ? "end" : "continue past the end",
                        size - start < count ? size : start + count);
    return 0;
}

Dataset *fashion_mnist_parse(const uint8_t *img_gz, size_t img_gz_size, const uint8_t *lab_gz, size_t lab_gz_size,
                             const char *img_path, const char *lab_path, const char *split) {
    uint8_t *img = NULL, *lab = NULL;
    size_t img_size = 0, lab_size = 0;
    uint32_t ishape[3] = {0, 0, 0}, lshape[1] = {0};
    if (gunzip(img_path, img_gz, img_gz_size, &img, &img_size) || idx_header(img_path, img, img_size, 3, ishape) ||
        gunzip(lab_path, lab_gz, lab_gz_size, &lab, &lab_size) || idx_header(lab_path, lab, lab_size, 1, lshape)) {
        free(img), free(lab);
        return NULL;
    }
    Dataset *ds = NULL;
    if (lshape[0] != ishape[0]) {
        rsa_fail(HINT, "%s has %u labels for the %u images of %s", lab_path, lshape[0], ishape[0], img_path);
    } else if (ishape[1] == 0 || ishape[2] == 0) {
        rsa_fail(HINT, "%s: images of %ux%u", img_path, ishape[1], ishape[2]);
    } else {
        ds = dataset_alloc_memory("fashionmnist", split, ishape[0], (int)ishape[1], (int)ishape[2], 10);
    }
    for (size_t i = 0; ds && i < ds->n; i++) {
        uint8_t l = lab[8 + i];
        if (l > 9) {
            rsa_fail(HINT, "%s: byte %zu (decompressed): label %d is outside 0..9", lab_path, 8 + i, l);
            dataset_close(ds);
            ds = NULL;
            break;
        }
        ds->labels[i] = l;
        const uint8_t *src = img + 16 + i * ishape[1] * ishape[2];
        uint8_t *dst = ds->pixels + i * ishape[1] * ishape[2] * 3;
        for (size_t p = 0; p < (size_t)ishape[1] * ishape[2]; p++) dst[3 * p] = dst[3 * p + 1] = dst[3 * p + 2] = src[p];
    }
    free(img), free(lab);
    return ds;
}

Dataset *fashion_mnist_open(const char *split, const char *root) {
    bool train = strcmp(split, "train") == 0;
    const char *prefix = train ? "train" : "t10k";
    char dir[4096], img_path[4200], lab_path[4200];
    data_path(dir, sizeof dir, root, "fashion-mnist");
    snprintf(img_path, sizeof img_path, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    if (!data_file_exists(img_path)) snprintf(dir, sizeof dir, "/usr/share/datasets/fashion-mnist");
    snprintf(img_path, sizeof img_path, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(lab_path, sizeof lab_path, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    if (!data_file_exists(img_path) || !data_file_exists(lab_path)) {
        char looked[8600];
        snprintf(looked, sizeof looked, "%s/fashion-mnist/%s-*-ubyte.gz and %s", root, prefix,
                 data_file_exists(img_path) ? lab_path : img_path);
        data_missing("fashionmnist", root, looked);
        return NULL;
    }
    uint8_t *img = NULL, *lab = NULL;
    size_t img_cap = 0, lab_cap = 0, img_size = 0, lab_size = 0;
    Dataset *ds = NULL;
    if (data_read_whole(img_path, &img, &img_cap, &img_size) == 0 &&
        data_read_whole(lab_path, &lab, &lab_cap, &lab_size) == 0)
        ds = fashion_mnist_parse(img, img_size, lab, lab_size, img_path, lab_path, split);
    free(img), free(lab);
    return ds;
}
