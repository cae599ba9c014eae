#include "fileio.h"

#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *space_hint(int err) {
    return err == ENOSPC ? "the disk is full: free space and rerun; the previous file is intact"
           : err == EACCES ? "check the permissions of the directory"
                           : "check the path and the file system";
}

int atomic_write(const char *path, const void *const *pieces, const size_t *sizes, int n) {
    size_t len = strlen(path);
    char *tmp = malloc(len + 32);
    if (!tmp) rsa_fatal("free memory", "out of memory");
    snprintf(tmp, len + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = errno;
        free(tmp);
        return rsa_fail(space_hint(err), "cannot create %s.tmp: %s", path, strerror(err));
    }
    for (int i = 0; i < n; i++) {
        const char *p = pieces[i];
        size_t left = sizes[i];
        while (left > 0) {
            ssize_t w = write(fd, p, left);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                int err = w < 0 ? errno : EIO;
                close(fd);
                unlink(tmp);
                free(tmp);
                return rsa_fail(space_hint(err), "cannot write %s: %s", path, strerror(err));
            }
            p += w, left -= (size_t)w;
        }
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int err = errno;
        unlink(tmp);
        free(tmp);
        return rsa_fail(space_hint(err), "cannot flush %s: %s", path, strerror(err));
    }
    if (rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        free(tmp);
        return rsa_fail(space_hint(err), "cannot rename onto %s: %s", path, strerror(err));
    }
    free(tmp);
    char *dir_copy = strdup(path);
    if (!dir_copy) rsa_fatal("free memory", "out of memory");
    int dfd = open(dirname(dir_copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd); /* makes the rename durable; failure here loses nothing already written */
        close(dfd);
    }
    free(dir_copy);
    return 0;
}

int atomic_write_text(const char *path, const char *text) {
    const void *pieces[1] = {text};
    size_t sizes[1] = {strlen(text)};
    return atomic_write(path, pieces, sizes, 1);
}

char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return rsa_fail("check the path", "cannot open %s: %s", path, strerror(errno)), NULL;
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return rsa_fail("it must be a regular file", "cannot seek in %s", path), NULL;
    }
    long len = ftell(f);
    rewind(f);
    if (len < 0) {
        fclose(f);
        return rsa_fail("it must be a regular file", "cannot size %s", path), NULL;
    }
    char *buf = malloc((size_t)len + 1);
    if (!buf) rsa_fatal("free memory", "out of memory reading %s", path);
    size_t got = fread(buf, 1, (size_t)len, f);
    fclose(f);
    if (got != (size_t)len) {
        free(buf);
        return rsa_fail("the file changed or the disk failed while reading", "short read of %s", path), NULL;
    }
    buf[len] = 0;
    if (size) *size = (size_t)len;
    return buf;
}

int make_dirs(const char *path) {
    char *p = strdup(path);
    if (!p) rsa_fatal("free memory", "out of memory");
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int err = errno;
            free(p);
            return rsa_fail("check permissions", "cannot create directory %s: %s", path, strerror(err));
        }
        *s = '/';
    }
    int rc = mkdir(p, 0755);
    int err = errno;
    free(p);
    if (rc != 0 && err != EEXIST)
        return rsa_fail("check permissions", "cannot create directory %s: %s", path, strerror(err));
    return 0;
}
