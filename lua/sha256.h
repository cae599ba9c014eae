/* SHA-256 (FIPS 180-4), written here so that run ids need no new dependency. */
#ifndef RSA_SHA256_H
#define RSA_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t bytes;
    uint8_t block[64];
    size_t used;
} Sha256;

void sha256_init(Sha256 *s);
void sha256_update(Sha256 *s, const void *data, size_t n);
void sha256_final(Sha256 *s, uint8_t out[32]);
/* Lower-case hex digest of data (65 bytes with the NUL). */
void sha256_hex(const void *data, size_t n, char out[65]);
void sha256_hex_final(Sha256 *s, char out[65]);

#endif
