/* Large host allocations.
 *
 * On these machines the first touch of a fresh 4 KiB page costs ~12 us (0.35 GB/s), so big buffers are mapped once,
 * backed by huge pages where the kernel allows, and touched at creation; a training step then allocates nothing. */
#ifndef RSA_HOSTMEM_H
#define RSA_HOSTMEM_H

#include <stddef.h>

/* Zero-filled, 64-byte aligned, pages touched. NULL (with rsa_fail) when the memory is not there. */
void *hostmem_alloc(size_t bytes);
void hostmem_free(void *p, size_t bytes);

/* Peak resident set size of this process in bytes (VmHWM), 0 if unknown. */
size_t hostmem_peak_rss(void);

#endif
