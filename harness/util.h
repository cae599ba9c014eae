/* Small helpers of the harness: a growing string, formatted paths, files, commands, time. */
#ifndef RSA_HARNESS_UTIL_H
#define RSA_HARNESS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct {
    char *s;
    size_t len, cap;
} Str;

void str_addf(Str *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void str_add(Str *b, const char *s);
void str_free(Str *b);
/* The text (never NULL; "" when empty). */
const char *str_c(const Str *b);

char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void *xcalloc(size_t n, size_t size);
/* Sorts n strings by strcmp; v may be NULL when n is 0 (qsort's may not). */
void sort_strings(char **v, size_t n);
/* The names in dir that keep(name) accepts, or every name not starting with '.' when keep is NULL, sorted; *n is
 * their count. NULL (with *n = 0) when dir cannot be opened. free_strings releases them. */
char **list_dir(const char *dir, bool (*keep)(const char *name), size_t *n);
void free_strings(char **v, size_t n);

bool file_exists(const char *path);
bool dir_exists(const char *path);
/* Reads a whole text file; NULL if it cannot be read. */
char *slurp(const char *path);
/* Value of "key = value" in a key = value file (malloc'd), or NULL. */
char *kv_get(const char *text, const char *key);
double kv_num(const char *text, const char *key, double fallback);

/* Runs argv (execvp) in directory dir (NULL: here) with stdout/stderr sent to out_path (NULL: /dev/null);
 * returns the exit status, or -1 when it could not run. */
int run_command(const char *dir, char *const argv[], const char *out_path);
/* First line of a command's output (malloc'd), or NULL. */
char *command_line(const char *dir, char *const argv[]);
bool have_program(const char *name);

double now_seconds(void);     /* monotonic */
void utc_now(char *out, size_t n); /* ISO 8601 */
void fmt_duration(double seconds, char *out, size_t n); /* "1h02m", "3m12s", "45s" */

/* Escapes for output formats. */
void md_escape(Str *b, const char *s);
void tex_escape(Str *b, const char *s);
void csv_field(Str *b, const char *s);
/* A Lua string literal. */
void lua_quote(Str *b, const char *s);

/* A file-name-safe form of a label ("CIFAR-10 [quick]" -> "cifar-10_quick"). */
void slugify(const char *in, char *out, size_t n);

#endif
