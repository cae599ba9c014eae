/* STL-10 binary X and y files of a labelled split (trainer/data/stl10.c): bytes 0-3 give the length of the X part
 * (modulo what is there), the rest after it is the y file. */
#include "fuzz.h"
#include "trainer/data/dataset_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    size_t x_size = fuzz_u32(data) % (size - 4 + 1);
    const uint8_t *x = data + 4, *y = x + x_size;
    size_t y_size = size - 4 - x_size;
    rsa_error_clear();
    Dataset *ds = stl10_parse(x, x_size, y, y_size, "train_X.bin", "train_y.bin");
    if (!ds) {
        fuzz_check_message();
        return 0;
    }
    if (dataset_height(ds) != 96 || dataset_width(ds) != 96 || dataset_count(ds) * 27648 != x_size) abort();
    for (size_t i = 0; i < dataset_count(ds); i++)
        if (dataset_label(ds, i) < 0 || dataset_label(ds, i) > 9) abort();
    dataset_close(ds);
    return 0;
}
