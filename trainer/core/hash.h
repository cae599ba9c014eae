/* FNV-1a, 64 bits: a fast fingerprint of bytes (not a cryptographic hash). Chain calls to hash several pieces:
 * h = fnv1a64(FNV1A64_START, a, na); h = fnv1a64(h, b, nb). */
#ifndef RSA_HASH_H
#define RSA_HASH_H

#include <stddef.h>
#include <stdint.h>

#define FNV1A64_START 0xcbf29ce484222325ull

uint64_t fnv1a64(uint64_t h, const void *data, size_t n);

#endif
