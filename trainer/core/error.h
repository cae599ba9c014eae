/* Error reporting for the trainer library.
 *
 * The library never prints. A recoverable failure (bad file, bad argument) records one message of the form
 * "file:line: what happened (hint: how to fix it)" and returns -1; the caller reads rsa_error_message() and reports it
 * as it likes. A broken invariant (out of memory, a library rejecting a call the trainer built itself) cannot be
 * handled by the caller, so it goes to a fatal handler, which the program can replace (the default prints the
 * message to stderr and aborts). */
#ifndef RSA_ERROR_H
#define RSA_ERROR_H

int rsa_fail_at(const char *file, int line, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define rsa_fail(hint, ...) rsa_fail_at(__FILE__, __LINE__, (hint), __VA_ARGS__)

/* Prefixes the recorded message with more context ("while loading x.safetensors: ...") and returns -1. */
int rsa_error_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

const char *rsa_error_message(void);
void rsa_error_clear(void);
/* Records again a message an earlier failure recorded (a copy of rsa_error_message() kept by a call that fails the
 * same way every time, such as opening a GPU once) and returns -1. */
int rsa_fail_again(const char *saved_message);

typedef void (*RsaFatalHandler)(const char *message);
void rsa_set_fatal_handler(RsaFatalHandler handler);

_Noreturn void rsa_fatal_at(const char *file, int line, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define rsa_fatal(hint, ...) rsa_fatal_at(__FILE__, __LINE__, (hint), __VA_ARGS__)

#define RSA_ASSERT(cond)                                                                                   \
    do {                                                                                                   \
        if (!(cond)) rsa_fatal("this is a bug in rsa-repro; please report it", "assertion failed: %s", #cond); \
    } while (0)

#endif
