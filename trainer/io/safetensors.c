#include "safetensors.h"

#include "../core/error.h"
#include "../core/fileio.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;
} DTYPES[] = {[ST_F32] = {"F32", 4}, [ST_F64] = {"F64", 8}, [ST_F16] = {"F16", 2},   [ST_BF16] = {"BF16", 2},
              [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4}, [ST_U8] = {"U8", 1},     [ST_BOOL] = {"BOOL", 1}};

const char *st_dtype_name(StDtype d) { return DTYPES[d].name; }
size_t st_dtype_size(StDtype d) { return DTYPES[d].size; }

/* ---- a JSON reader for the header: objects, arrays, strings, integers; nothing else appears there ---- */

typedef struct {
    const char *path;
    const char *s;
    size_t pos, len;
    size_t base; /* file offset of s[0], for messages */
} Json;

static int json_fail(Json *j, const char *what) {
    return rsa_fail("the file is not a valid safetensors file; re-export it or check that it was copied whole",
                    "%s: bad safetensors header at byte %zu: %s", j->path, j->base + j->pos, what);
}

static void skip_ws(Json *j) {
    while (j->pos < j->len && (j->s[j->pos] == ' ' || j->s[j->pos] == '\n' || j->s[j->pos] == '\r' ||
                               j->s[j->pos] == '\t'))
        j->pos++;
}

static int expect(Json *j, char c) {
    skip_ws(j);
    if (j->pos >= j->len || j->s[j->pos] != c) {
        char what[32];
        snprintf(what, sizeof what, "expected '%c'", c);
        return json_fail(j, what);
    }
    j->pos++;
    return 0;
}

static bool peek(Json *j, char c) {
    skip_ws(j);
    return j->pos < j->len && j->s[j->pos] == c;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Parses a string into a malloc'd UTF-8 buffer. */
static int parse_string(Json *j, char **out) {
    if (expect(j, '"')) return -1;
    size_t cap = 32, n = 0;
    char *buf = malloc(cap);
    if (!buf) rsa_fatal("free memory", "out of memory");
    for (;;) {
        if (j->pos >= j->len) {
            free(buf);
            return json_fail(j, "unterminated string");
        }
        unsigned char c = (unsigned char)j->s[j->pos++];
        if (c == '"') break;
        if (c < 0x20) {
            free(buf);
            return json_fail(j, "control character in string");
        }
        unsigned cp = c;
        if (c == '\\') {
            if (j->pos >= j->len) {
                free(buf);
                return json_fail(j, "unterminated escape");
            }
            char e = j->s[j->pos++];
            switch (e) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u': {
                if (j->pos + 4 > j->len) {
                    free(buf);
                    return json_fail(j, "short \\u escape");
                }
                cp = 0;
                for (int k = 0; k < 4; k++) {
                    int h = hexval(j->s[j->pos++]);
                    if (h < 0) {
                        free(buf);
                        return json_fail(j, "bad \\u escape");
                    }
                    cp = cp * 16 + (unsigned)h;
                }
                if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF)) {
                    free(buf);
                    return json_fail(j, "unsupported \\u escape");
                }
                break;
            }
            default: free(buf); return json_fail(j, "bad escape");
            }
        }
        if (n + 4 >= cap) {
            cap *= 2;
            char *b2 = realloc(buf, cap);
            if (!b2) rsa_fatal("free memory", "out of memory");
            buf = b2;
        }
        if (c == '\\' && cp >= 0x80) { /* encode the escaped code point as UTF-8 */
            if (cp < 0x800) {
                buf[n++] = (char)(0xC0 | (cp >> 6));
            } else {
                buf[n++] = (char)(0xE0 | (cp >> 12));
                buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            }
            buf[n++] = (char)(0x80 | (cp & 0x3F));
        } else {
            buf[n++] = (char)cp;
        }
    }
    buf[n] = 0;
    *out = buf;
    return 0;
}

static int parse_uint(Json *j, uint64_t *out) {
    skip_ws(j);
    if (j->pos >= j->len || j->s[j->pos] < '0' || j->s[j->pos] > '9') return json_fail(j, "expected an integer");
    uint64_t v = 0;
    while (j->pos < j->len && j->s[j->pos] >= '0' && j->s[j->pos] <= '9') {
        uint64_t d = (uint64_t)(j->s[j->pos++] - '0');
        if (v > (UINT64_MAX - d) / 10) return json_fail(j, "integer too large");
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* [a, b, ...] of non-negative integers, at most max of them. */
static int parse_uint_array(Json *j, uint64_t *vals, int max, int *count) {
    if (expect(j, '[')) return -1;
    *count = 0;
    if (peek(j, ']')) return expect(j, ']');
    for (;;) {
        if (*count >= max) return json_fail(j, "array too long");
        if (parse_uint(j, &vals[(*count)++])) return -1;
        if (peek(j, ']')) return expect(j, ']');
        if (expect(j, ',')) return -1;
    }
}

static int parse_dtype(Json *j, const char *s, StDtype *d) {
    for (int i = 0; i < (int)(sizeof DTYPES / sizeof DTYPES[0]); i++)
        if (DTYPES[i].name && strcmp(s, DTYPES[i].name) == 0) {
            *d = (StDtype)i;
            return 0;
        }
    char what[96];
    snprintf(what, sizeof what, "unsupported dtype \"%.40s\"", s);
    return json_fail(j, what);
}

static int parse_tensor(Json *j, StTensor *t) {
    bool have_dtype = false, have_shape = false, have_offsets = false;
    if (expect(j, '{')) return -1;
    if (peek(j, '}')) return json_fail(j, "empty tensor entry");
    for (;;) {
        char *key;
        if (parse_string(j, &key)) return -1;
        if (expect(j, ':')) {
            free(key);
            return -1;
        }
        int rc = 0;
        if (strcmp(key, "dtype") == 0) {
            char *v;
            rc = parse_string(j, &v);
            if (!rc) rc = parse_dtype(j, v, &t->dtype), free(v);
            have_dtype = true;
        } else if (strcmp(key, "shape") == 0) {
            uint64_t dims[ST_MAX_DIMS];
            rc = parse_uint_array(j, dims, ST_MAX_DIMS, &t->ndim);
            for (int i = 0; !rc && i < t->ndim; i++) {
                if (dims[i] > (uint64_t)1 << 40) rc = json_fail(j, "dimension too large");
                t->shape[i] = (int64_t)dims[i];
            }
            have_shape = true;
        } else if (strcmp(key, "data_offsets") == 0) {
            uint64_t off[2];
            int count;
            rc = parse_uint_array(j, off, 2, &count);
            if (!rc && count != 2) rc = json_fail(j, "data_offsets needs two integers");
            t->begin = (size_t)off[0], t->end = (size_t)off[1];
            have_offsets = true;
        } else {
            rc = json_fail(j, "unknown field in tensor entry");
        }
        free(key);
        if (rc) return -1;
        if (peek(j, '}')) break;
        if (expect(j, ',')) return -1;
    }
    if (expect(j, '}')) return -1;
    if (!have_dtype || !have_shape || !have_offsets) return json_fail(j, "tensor entry lacks dtype, shape or offsets");
    return 0;
}

static int parse_meta(Json *j, StFile *f) {
    if (expect(j, '{')) return -1;
    if (peek(j, '}')) return expect(j, '}');
    for (;;) {
        char *k, *v;
        if (parse_string(j, &k)) return -1;
        if (expect(j, ':') || parse_string(j, &v)) {
            free(k);
            return -1;
        }
        StMeta *m2 = realloc(f->meta, sizeof *f->meta * (size_t)(f->n_meta + 1));
        if (!m2) rsa_fatal("free memory", "out of memory");
        f->meta = m2;
        f->meta[f->n_meta].key = k, f->meta[f->n_meta].value = v;
        f->n_meta++;
        if (peek(j, '}')) return expect(j, '}');
        if (expect(j, ',')) return -1;
    }
}

size_t st_numel(const StTensor *t) {
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n;
}

static int cmp_begin(const void *a, const void *b) {
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

int st_parse(StFile *f, const char *path, unsigned char *bytes, size_t size) {
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    f->bytes = bytes, f->size = size;
    if (!f->path) rsa_fatal("free memory", "out of memory");
    const char *hint = "the file is not a valid safetensors file; re-export it or check that it was copied whole";
    if (size < 8) {
        rsa_fail(hint, "%s: %zu bytes, too short for a safetensors header (8 bytes of length)", path, size);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | bytes[i];
    if (hlen > size - 8 || hlen > (100u << 20)) {
        rsa_fail(hint, "%s: header length %" PRIu64 " at byte 0 exceeds the file (%zu bytes)", path, hlen, size);
        goto fail;
    }
    f->data_start = 8 + (size_t)hlen;
    Json j = {path, (const char *)bytes + 8, 0, (size_t)hlen, 8};
    if (expect(&j, '{')) goto fail;
    if (!peek(&j, '}'))
        for (;;) {
            char *name;
            if (parse_string(&j, &name)) goto fail;
            if (expect(&j, ':')) {
                free(name);
                goto fail;
            }
            if (strcmp(name, "__metadata__") == 0) {
                free(name);
                if (parse_meta(&j, f)) goto fail;
            } else {
                StTensor *t2 = realloc(f->tensors, sizeof *f->tensors * (size_t)(f->n_tensors + 1));
                if (!t2) rsa_fatal("free memory", "out of memory");
                f->tensors = t2;
                StTensor *t = &f->tensors[f->n_tensors++];
                memset(t, 0, sizeof *t);
                t->name = name;
                if (parse_tensor(&j, t)) goto fail;
            }
            if (peek(&j, '}')) break;
            if (expect(&j, ',')) goto fail;
        }
    if (expect(&j, '}')) goto fail;
    skip_ws(&j);
    if (j.pos != j.len) {
        json_fail(&j, "trailing bytes after the header object");
        goto fail;
    }
    /* Every tensor must lie inside the data section, hold exactly its shape's bytes, and not overlap another. */
    size_t data_size = size - f->data_start;
    StTensor **order = malloc(sizeof *order * (size_t)(f->n_tensors ? f->n_tensors : 1));
    if (!order) rsa_fatal("free memory", "out of memory");
    for (int i = 0; i < f->n_tensors; i++) {
        StTensor *t = &f->tensors[i];
        order[i] = t;
        size_t numel = 1;
        bool overflow = false;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] && numel > SIZE_MAX / 16 / (size_t)t->shape[d]) overflow = true;
            numel *= (size_t)t->shape[d];
        }
        if (overflow || t->begin > t->end || t->end > data_size || t->end - t->begin != numel * st_dtype_size(t->dtype)) {
            rsa_fail(hint,
                     "%s: tensor \"%s\" (%s, %zu elements) claims bytes [%zu, %zu) of a %zu-byte data section "
                     "starting at file offset %zu",
                     path, t->name, st_dtype_name(t->dtype), numel, t->begin, t->end, data_size, f->data_start);
            free(order);
            goto fail;
        }
        for (int k = 0; k < i; k++)
            if (strcmp(f->tensors[k].name, t->name) == 0) {
                rsa_fail(hint, "%s: tensor \"%s\" appears twice in the header", path, t->name);
                free(order);
                goto fail;
            }
    }
    qsort(order, (size_t)f->n_tensors, sizeof *order, cmp_begin);
    for (int i = 1; i < f->n_tensors; i++)
        if (order[i]->begin < order[i - 1]->end) {
            rsa_fail(hint, "%s: tensors \"%s\" and \"%s\" overlap", path, order[i - 1]->name, order[i]->name);
            free(order);
            goto fail;
        }
    free(order);
    return 0;
fail:
    st_close(f);
    return -1;
}

int st_open(StFile *f, const char *path) {
    memset(f, 0, sizeof *f);
    size_t size;
    unsigned char *bytes = (unsigned char *)read_file(path, &size);
    if (!bytes) return -1;
    return st_parse(f, path, bytes, size);
}

void st_close(StFile *f) {
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    for (int i = 0; i < f->n_meta; i++) free(f->meta[i].key), free(f->meta[i].value);
    free(f->tensors);
    free(f->meta);
    free(f->bytes);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const StTensor *st_find(const StFile *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const void *st_data(const StFile *f, const StTensor *t) { return f->bytes + f->data_start + t->begin; }

const char *st_meta(const StFile *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

static void shape_str(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
}

int st_read(const StFile *f, const char *name, StDtype dtype, int ndim, const int64_t *shape, void *out) {
    const StTensor *t = st_find(f, name);
    if (!t)
        return rsa_fail("the file was written for another model or version", "%s: no tensor \"%s\"", f->path, name);
    bool same = t->dtype == dtype && t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char want[128], got[128];
        shape_str(want, sizeof want, ndim, shape);
        shape_str(got, sizeof got, t->ndim, t->shape);
        return rsa_fail("the file was written for another architecture or width",
                        "%s: tensor \"%s\" is %s %s, expected %s %s", f->path, name, st_dtype_name(t->dtype), got,
                        st_dtype_name(dtype), want);
    }
    memcpy(out, st_data(f, t), t->end - t->begin);
    return 0;
}

int st_read_f32(const StFile *f, const char *name, float *out, size_t n) {
    const StTensor *t = st_find(f, name);
    if (!t) return rsa_fail("regenerate the file", "%s: no tensor \"%s\"", f->path, name);
    if (t->dtype != ST_F32 || st_numel(t) != n)
        return rsa_fail("regenerate the file", "%s: tensor \"%s\" is %s with %zu elements, expected F32 with %zu",
                        f->path, name, st_dtype_name(t->dtype), st_numel(t), n);
    memcpy(out, st_data(f, t), n * sizeof(float));
    return 0;
}

/* ---- writer ---- */

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
} WTensor;

struct StWriter {
    WTensor *t;
    int n;
    StMeta *meta;
    int n_meta;
};

StWriter *st_writer_new(void) {
    StWriter *w = calloc(1, sizeof *w);
    if (!w) rsa_fatal("free memory", "out of memory");
    return w;
}

void st_writer_free(StWriter *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->t[i].name);
    for (int i = 0; i < w->n_meta; i++) free(w->meta[i].key), free(w->meta[i].value);
    free(w->t);
    free(w->meta);
    free(w);
}

void st_add(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape, const void *data) {
    RSA_ASSERT(ndim >= 0 && ndim <= ST_MAX_DIMS);
    WTensor *t2 = realloc(w->t, sizeof *w->t * (size_t)(w->n + 1));
    if (!t2) rsa_fatal("free memory", "out of memory");
    w->t = t2;
    WTensor *t = &w->t[w->n++];
    t->name = strdup(name);
    if (!t->name) rsa_fatal("free memory", "out of memory");
    t->dtype = dtype, t->ndim = ndim, t->data = data;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
}

void st_set_meta(StWriter *w, const char *key, const char *value) {
    StMeta *m2 = realloc(w->meta, sizeof *w->meta * (size_t)(w->n_meta + 1));
    if (!m2) rsa_fatal("free memory", "out of memory");
    w->meta = m2;
    w->meta[w->n_meta].key = strdup(key);
    w->meta[w->n_meta].value = strdup(value);
    if (!w->meta[w->n_meta].key || !w->meta[w->n_meta].value) rsa_fatal("free memory", "out of memory");
    w->n_meta++;
}

typedef struct {
    char *s;
    size_t n, cap;
} Buf;

static void put(Buf *b, const char *s, size_t len) {
    if (b->n + len + 1 > b->cap) {
        while (b->n + len + 1 > b->cap) b->cap = b->cap ? b->cap * 2 : 1024;
        char *s2 = realloc(b->s, b->cap);
        if (!s2) rsa_fatal("free memory", "out of memory");
        b->s = s2;
    }
    memcpy(b->s + b->n, s, len);
    b->n += len;
    b->s[b->n] = 0;
}

static void puts_(Buf *b, const char *s) { put(b, s, strlen(s)); }

static void put_json_string(Buf *b, const char *s) {
    puts_(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[3] = {'\\', (char)c, 0};
            puts_(b, e);
        } else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            puts_(b, e);
        } else {
            put(b, (const char *)&c, 1);
        }
    }
    puts_(b, "\"");
}

int st_write(StWriter *w, const char *path) {
    Buf h = {0};
    puts_(&h, "{");
    bool first = true;
    if (w->n_meta) {
        puts_(&h, "\"__metadata__\":{");
        for (int i = 0; i < w->n_meta; i++) {
            if (i) puts_(&h, ",");
            put_json_string(&h, w->meta[i].key);
            puts_(&h, ":");
            put_json_string(&h, w->meta[i].value);
        }
        puts_(&h, "}");
        first = false;
    }
    size_t offset = 0;
    for (int i = 0; i < w->n; i++) {
        const WTensor *t = &w->t[i];
        size_t bytes = st_dtype_size(t->dtype);
        for (int d = 0; d < t->ndim; d++) bytes *= (size_t)t->shape[d];
        if (!first) puts_(&h, ",");
        first = false;
        put_json_string(&h, t->name);
        char tmp[64];
        snprintf(tmp, sizeof tmp, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(t->dtype));
        puts_(&h, tmp);
        for (int d = 0; d < t->ndim; d++) {
            snprintf(tmp, sizeof tmp, "%s%" PRId64, d ? "," : "", t->shape[d]);
            puts_(&h, tmp);
        }
        snprintf(tmp, sizeof tmp, "],\"data_offsets\":[%zu,%zu]}", offset, offset + bytes);
        puts_(&h, tmp);
        offset += bytes;
    }
    puts_(&h, "}");
    while (h.n % 8) puts_(&h, " "); /* the data section starts 8-byte aligned */
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    int pieces = 2 + w->n;
    const void **p = malloc(sizeof *p * (size_t)pieces);
    size_t *sz = malloc(sizeof *sz * (size_t)pieces);
    if (!p || !sz) rsa_fatal("free memory", "out of memory");
    p[0] = len8, sz[0] = 8;
    p[1] = h.s, sz[1] = h.n;
    for (int i = 0; i < w->n; i++) {
        const WTensor *t = &w->t[i];
        size_t bytes = st_dtype_size(t->dtype);
        for (int d = 0; d < t->ndim; d++) bytes *= (size_t)t->shape[d];
        p[2 + i] = t->data, sz[2 + i] = bytes;
    }
    int rc = atomic_write(path, p, sz, pieces);
    free(p);
    free(sz);
    free(h.s);
    return rc;
}
