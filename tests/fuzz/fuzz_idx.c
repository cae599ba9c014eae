/* Fashion-MNIST's gzipped IDX images and labels (trainer/data/fashion_mnist.c): bytes 0-3 give the length of the
 * images file (modulo what is there), the labels file follows it. */
#include "fuzz.h"
#include "trainer/data/dataset_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    size_t img_size = fuzz_u32(data) % (size - 4 + 1);
    const uint8_t *img = data + 4, *lab = img + img_size;
    rsa_error_clear();
    Dataset *ds = fashion_mnist_parse(img, img_size, lab, size - 4 - img_size, "images-idx3-ubyte.gz",
                                      "labels-idx1-ubyte.gz", "test");
    if (!ds) {
        fuzz_check_message();
        return 0;
    }
    for (size_t i = 0; i < dataset_count(ds); i++)
        if (dataset_label(ds, i) < 0 || dataset_label(ds, i) > 9) abort();
    /* read the last pixel of the last image: it must be inside the allocation */
    if (dataset_count(ds) > 0) {
        DataReader *r = data_reader_new(ds);
        Img im;
        if (data_reader_image(r, dataset_count(ds) - 1, JPEG_FULL, &im) != 0) abort();
        volatile uint8_t last = img_row(&im, im.h - 1)[3 * im.w - 1];
        (void)last;
        data_reader_free(r);
    }
    dataset_close(ds);
    return 0;
}
