/* The decoded data set cache (trainer/data/cache.c), read back from a file in memory (memfd): a damaged cache must
 * be ignored (and rebuilt by the caller), never trusted. The fingerprint the reader expects is taken from the input,
 * so the fuzzer gets past it. */
#include "fuzz.h"
#include "trainer/data/dataset_internal.h"

#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint64_t fp = 0;
    for (int i = 0; i < 8 && 56 + (size_t)i < size; i++) fp |= (uint64_t)data[56 + i] << (8 * i);
    int fd = memfd_create("cache", MFD_CLOEXEC);
    if (fd < 0) abort();
    for (size_t done = 0; done < size;) {
        ssize_t w = write(fd, data + done, size - done);
        if (w <= 0) abort();
        done += (size_t)w;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    Dataset *ds = data_cache_load(path, fp, "tinyimagenet", "val");
    if (ds) {
        int classes = dataset_num_classes(ds);
        if (dataset_height(ds) < 1 || dataset_width(ds) < 1 || classes < 1) abort();
        for (size_t i = 0; i < dataset_count(ds); i++)
            if (dataset_label(ds, i) < -1 || dataset_label(ds, i) >= classes) abort();
        dataset_close(ds);
    }
    close(fd);
    return 0;
}
