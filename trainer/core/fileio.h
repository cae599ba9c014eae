/* Whole-file reads and atomic writes. A write goes to a temporary file beside the target, is fsynced, renamed over
 * the target and the directory fsynced, so a crash or a full disk leaves either the old file or the new one, never a
 * torn one. */
#ifndef RSA_FILEIO_H
#define RSA_FILEIO_H

#include <stddef.h>

/* Writes n pieces one after another. -1 with rsa_fail (naming the path and the system error) on failure; the
 * previous file, if any, is untouched then. */
int atomic_write(const char *path, const void *const *pieces, const size_t *sizes, int n);
int atomic_write_text(const char *path, const char *text);

/* Reads a whole file into a malloc'd buffer (NUL-terminated for convenience). NULL with rsa_fail on failure. */
char *read_file(const char *path, size_t *size);

/* mkdir -p. -1 with rsa_fail on failure. */
int make_dirs(const char *path);

#endif
