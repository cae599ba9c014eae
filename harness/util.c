#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void oom(void) {
    fputs("rsa: out of memory\n", stderr);
    abort();
}

static void str_reserve(Str *b, size_t more) {
    if (b->len + more + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) oom();
    b->s = s, b->cap = cap;
}

void str_addf(Str *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (n < 0) {
        va_end(ap);
        return;
    }
    str_reserve(b, (size_t)n);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void str_add(Str *b, const char *s) {
    size_t n = strlen(s);
    str_reserve(b, n);
    memcpy(b->s + b->len, s, n + 1);
    b->len += n;
}

void str_free(Str *b) {
    free(b->s);
    b->s = NULL, b->len = b->cap = 0;
}

const char *str_c(const Str *b) { return b->s ? b->s : ""; }

char *xstrdup(const char *s) {
    char *d = strdup(s ? s : "");
    if (!d) oom();
    return d;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void sort_strings(char **v, size_t n) {
    if (n > 1) qsort(v, n, sizeof *v, cmp_str);
}

char **list_dir(const char *dir, bool (*keep)(const char *name), size_t *n) {
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    size_t cap = 16;
    char **v = xcalloc(cap, sizeof *v);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (keep ? !keep(e->d_name) : e->d_name[0] == '.') continue;
        if (*n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
            if (!v) oom();
        }
        v[(*n)++] = xstrdup(e->d_name);
    }
    closedir(d);
    sort_strings(v, *n);
    return v;
}

void free_strings(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

char *xasprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *r = NULL;
    if (vasprintf(&r, fmt, ap) < 0) oom();
    va_end(ap);
    return r;
}

void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom();
    return p;
}

bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    Str b = {0};
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        str_reserve(&b, n);
        memcpy(b.s + b.len, buf, n);
        b.len += n;
        b.s[b.len] = 0;
    }
    bool err = ferror(f);
    fclose(f);
    if (err) {
        str_free(&b);
        return NULL;
    }
    return b.s ? b.s : xstrdup("");
}

char *kv_get(const char *text, const char *key) {
    if (!text) return NULL;
    size_t kl = strlen(key);
    for (const char *p = text; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len > kl && strncmp(p, key, kl) == 0 && (p[kl] == ' ' || p[kl] == '=' || p[kl] == '\t' || p[kl] == ':')) {
            const char *v = p + kl;
            while (*v == ' ' || *v == '=' || *v == '\t' || *v == ':') v++;
            size_t vl = len - (size_t)(v - p);
            char *r = xcalloc(vl + 1, 1);
            memcpy(r, v, vl);
            while (vl > 0 && (r[vl - 1] == ' ' || r[vl - 1] == '\r')) r[--vl] = 0;
            return r;
        }
        p = e ? e + 1 : NULL;
    }
    return NULL;
}

double kv_num(const char *text, const char *key, double fallback) {
    char *v = kv_get(text, key);
    if (!v) return fallback;
    char *end;
    double x = strtod(v, &end);
    bool ok = end != v;
    free(v);
    return ok ? x : fallback;
}

int run_command(const char *dir, char *const argv[], const char *out_path) {
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        if (dir && chdir(dir) != 0) _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    if (!WIFEXITED(status)) return -1;
    return WEXITSTATUS(status) == 127 ? -1 : WEXITSTATUS(status);
}

char *command_line(const char *dir, char *const argv[]) {
    char tmpl[] = "/tmp/rsa-cmd-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) return NULL;
    close(fd);
    int rc = run_command(dir, argv, tmpl);
    char *text = rc == 0 ? slurp(tmpl) : NULL;
    unlink(tmpl);
    if (!text) return NULL;
    char *nl = strchr(text, '\n');
    if (nl) *nl = 0;
    return text;
}

bool have_program(const char *name) {
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    char *copy = xstrdup(path);
    bool found = false;
    for (char *save = NULL, *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        char *p = xasprintf("%s/%s", d, name);
        found = access(p, X_OK) == 0;
        free(p);
    }
    free(copy);
    return found;
}

double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void utc_now(char *out, size_t n) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    struct tm tm;
    gmtime_r(&t.tv_sec, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void fmt_duration(double s, char *out, size_t n) {
    if (!(s >= 0)) s = 0;
    long long t = (long long)(s + 0.5);
    if (t >= 86400)
        snprintf(out, n, "%lldd%02lldh", t / 86400, (t % 86400) / 3600);
    else if (t >= 3600)
        snprintf(out, n, "%lldh%02lldm", t / 3600, (t % 3600) / 60);
    else if (t >= 60)
        snprintf(out, n, "%lldm%02llds", t / 60, t % 60);
    else
        snprintf(out, n, "%llds", t);
}

void md_escape(Str *b, const char *s) {
    for (; *s; s++) {
        if (*s == '|') str_add(b, "\\|");
        else {
            char c[2] = {*s, 0};
            str_add(b, c);
        }
    }
}

void tex_escape(Str *b, const char *s) {
    for (; *s; s++) {
        if ((unsigned char)s[0] == 0xC2 && (unsigned char)s[1] == 0xB1) { /* ± */
            str_add(b, "$\\pm$");
            s++;
            continue;
        }
        if ((unsigned char)s[0] == 0xE2 && (unsigned char)s[1] == 0x80 && (unsigned char)s[2] == 0x93) { /* – */
            str_add(b, "--");
            s += 2;
            continue;
        }
        switch (*s) {
        case '&': str_add(b, "\\&"); break;
        case '%': str_add(b, "\\%"); break;
        case '_': str_add(b, "\\_"); break;
        case '#': str_add(b, "\\#"); break;
        case '$': str_add(b, "\\$"); break;
        case '{': str_add(b, "\\{"); break;
        case '}': str_add(b, "\\}"); break;
        case '~': str_add(b, "\\textasciitilde{}"); break;
        case '^': str_add(b, "\\textasciicircum{}"); break;
        case '\\': str_add(b, "\\textbackslash{}"); break;
        default: {
            char c[2] = {*s, 0};
            str_add(b, c);
        }
        }
    }
}

void csv_field(Str *b, const char *s) {
    bool quote = strpbrk(s, ",\"\n") != NULL;
    if (!quote) {
        str_add(b, s);
        return;
    }
    str_add(b, "\"");
    for (; *s; s++) {
        if (*s == '"') str_add(b, "\"\"");
        else {
            char c[2] = {*s, 0};
            str_add(b, c);
        }
    }
    str_add(b, "\"");
}

void slugify(const char *in, char *out, size_t n) {
    size_t j = 0;
    bool dash = false;
    for (; *in && j + 1 < n; in++) {
        unsigned char c = (unsigned char)*in;
        if (isalnum(c) || c == '.' || c == '-') {
            out[j++] = (char)tolower(c);
            dash = false;
        } else if (!dash && j > 0) {
            out[j++] = '_';
            dash = true;
        }
    }
    while (j > 0 && out[j - 1] == '_') j--;
    out[j] = 0;
}

void lua_quote(Str *b, const char *s) {
    str_add(b, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') str_addf(b, "\\%c", *s);
        else if (*s == '\n') str_add(b, "\\n");
        else str_addf(b, "%c", *s);
    }
    str_add(b, "\"");
}
