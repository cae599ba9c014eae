/* Shared by the libFuzzer targets in this directory (see README in tests/fuzz/Makefile comments and `make fuzz`).
 * Every target feeds the bytes to a parser of outside data through its in-memory entry point; a parser must
 * either accept the input or fail with a recorded message (rsa_fail). A crash, a sanitizer report, a fatal error
 * (rsa_fatal: out of memory on a sane input, a broken invariant) or a failure with no message is a finding. */
#ifndef RSA_FUZZ_H
#define RSA_FUZZ_H

#include "trainer/core/error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A failure must say something: the message is "file:line: what (hint: ...)". */
static inline void fuzz_check_message(void) {
    const char *m = rsa_error_message();
    if (strcmp(m, "no error recorded") == 0 || !strstr(m, ": ")) {
        fprintf(stderr, "fuzz: a failure without a message: \"%s\"\n", m);
        abort();
    }
}

/* Little-endian 32-bit value at p (for splitting an input into parts). */
static inline uint32_t fuzz_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* rsa_fatal aborts with the message printed: libFuzzer then reports the input as a crash. */

#endif
