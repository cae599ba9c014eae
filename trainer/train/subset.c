#include "subset.h"

#include "../core/error.h"
#include "../core/rng.h"

#include <stdlib.h>
#include <string.h>

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

Dataset *dataset_subset(const Dataset *ds, int64_t n, bool *owned) {
    size_t count = dataset_count(ds);
    *owned = false;
    if (n <= 0 || (size_t)n >= count) return (Dataset *)ds;
    int h = dataset_height(ds), w = dataset_width(ds);
    if (h <= 0)
        return rsa_fail("use subsets with in-memory data sets (CIFAR, STL-10, Tiny ImageNet, Fashion-MNIST)",
                        "cannot take a subset of the folder data set %s", dataset_name(ds)),
               NULL;
    int64_t *perm = malloc(sizeof(int64_t) * count);
    uint8_t *pixels = malloc((size_t)n * h * w * 3);
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)n);
    DataReader *r = data_reader_new(ds);
    if (!perm || !pixels || !labels || !r) rsa_fatal("free memory", "out of memory");
    for (size_t i = 0; i < count; i++) perm[i] = (int64_t)i;
    Rng g; /* Fisher-Yates with the subset's own fixed stream */
    rng_init(&g, 0, RNG_DATA, 0, 0, 0);
    for (size_t i = count - 1; i > 0; i--) {
        size_t j = rng_below(&g, (uint32_t)(i + 1));
        int64_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    qsort(perm, (size_t)n, sizeof *perm, cmp_i64);
    Dataset *out = NULL;
    for (int64_t k = 0; k < n; k++) {
        Img img;
        if (data_reader_image(r, (size_t)perm[k], JPEG_FULL, &img) != 0) goto done;
        RSA_ASSERT(img.h == h && img.w == w);
        for (int y = 0; y < h; y++)
            memcpy(pixels + ((size_t)k * h + y) * w * 3, img.px + (size_t)y * img.stride, (size_t)w * 3);
        labels[k] = dataset_label(ds, (size_t)perm[k]);
    }
    out = dataset_from_memory(dataset_name(ds), (size_t)n, h, w, pixels, labels, dataset_num_classes(ds));
    *owned = out != NULL;
done:
    data_reader_free(r);
    free(perm), free(pixels), free(labels);
    return out;
}
