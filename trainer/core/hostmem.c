#include "hostmem.h"

#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

enum { SMALL_BYTES = 1 << 20 };

void *hostmem_alloc(size_t bytes) {
    if (bytes == 0) bytes = 64;
    if (bytes < SMALL_BYTES) {
        void *p = NULL;
        if (posix_memalign(&p, 64, bytes) != 0)
            return rsa_fail("free memory or reduce the batch size", "cannot allocate %zu bytes", bytes), NULL;
        memset(p, 0, bytes);
        return p;
    }
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return rsa_fail("free memory or reduce the batch size", "cannot map %zu MiB", bytes >> 20), NULL;
    madvise(p, bytes, MADV_HUGEPAGE); /* advisory: fine if the kernel declines */
    memset(p, 0, bytes);               /* touch now, not inside the first step */
    return p;
}

void hostmem_free(void *p, size_t bytes) {
    if (!p) return;
    if (bytes == 0) bytes = 64;
    if (bytes < SMALL_BYTES)
        free(p);
    else
        munmap(p, bytes);
}

size_t hostmem_peak_rss(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %zu kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024;
}
