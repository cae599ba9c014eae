#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MESSAGE_BYTES = 2048 };
static _Thread_local char message[MESSAGE_BYTES];

static void default_fatal(const char *msg) {
    fprintf(stderr, "rsa: fatal: %s\n", msg);
}

static RsaFatalHandler fatal_handler = default_fatal;

static void format_message(char *out, size_t size, const char *file, int line, const char *hint, const char *fmt,
                           va_list ap) {
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    int used = snprintf(out, size, "%s:%d: ", base, line);
    if (used < 0 || (size_t)used >= size) return;
    int more = vsnprintf(out + used, size - (size_t)used, fmt, ap);
    if (more < 0) return;
    used += more;
    if (hint && hint[0] && (size_t)used < size) snprintf(out + used, size - (size_t)used, " (hint: %s)", hint);
}

int rsa_fail_at(const char *file, int line, const char *hint, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    format_message(message, sizeof message, file, line, hint, fmt, ap);
    va_end(ap);
    return -1;
}

int rsa_error_context(const char *fmt, ...) {
    char prefix[512], old[MESSAGE_BYTES];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, message, sizeof old);
    snprintf(message, sizeof message, "%s: %s", prefix, old);
    return -1;
}

const char *rsa_error_message(void) {
    return message[0] ? message : "no error recorded";
}

int rsa_fail_again(const char *saved_message) {
    snprintf(message, sizeof message, "%s", saved_message);
    return -1;
}

void rsa_error_clear(void) {
    message[0] = 0;
}

void rsa_set_fatal_handler(RsaFatalHandler handler) {
    fatal_handler = handler ? handler : default_fatal;
}

_Noreturn void rsa_fatal_at(const char *file, int line, const char *hint, const char *fmt, ...) {
    char buf[MESSAGE_BYTES];
    va_list ap;
    va_start(ap, fmt);
    format_message(buf, sizeof buf, file, line, hint, fmt, ap);
    va_end(ap);
    fatal_handler(buf);
    abort();
}
