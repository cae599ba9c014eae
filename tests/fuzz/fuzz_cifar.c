/* CIFAR-10 / CIFAR-100 binary records (trainer/data/cifar.c). Byte 0 picks the variant (bit 0) and whether the
 * record count is the one the size implies or one more (bit 1: the cut-short path); the rest is the file. */
#include "fuzz.h"
#include "trainer/data/dataset_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    bool c100 = data[0] & 1, more = data[0] & 2;
    data++, size--;
    int label_bytes = c100 ? 2 : 1, classes = c100 ? 100 : 10;
    size_t record = (size_t)label_bytes + 3072, count = size / record + (more ? 1 : 0);
    Dataset *ds = dataset_alloc_memory(c100 ? "cifar100" : "cifar10", "test", count, 32, 32, classes);
    if (!ds) abort();
    rsa_error_clear();
    if (cifar_parse(ds, 0, count, data, size, "fuzz.bin", label_bytes, classes) != 0) {
        fuzz_check_message();
    } else {
        for (size_t i = 0; i < count; i++)
            if (dataset_label(ds, i) < 0 || dataset_label(ds, i) >= classes) abort();
    }
    dataset_close(ds);
    return 0;
}
