/* safetensors (Hugging Face's format): 8-byte little-endian header length, a JSON header naming each tensor's
 * dtype, shape and byte range, then the raw little-endian data. Weights, checkpoints and test fixtures all use it,
 * so PyTorch reads what we write and we read what it writes.
 *
 * The reader treats the file as untrusted: every length, offset and shape is checked against the file size and
 * reported with the file name and byte offset. */
#ifndef RSA_SAFETENSORS_H
#define RSA_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { ST_F32, ST_F64, ST_F16, ST_BF16, ST_I64, ST_I32, ST_U8, ST_BOOL } StDtype;

enum { ST_MAX_DIMS = 8 };

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t begin, end; /* byte range in the data section */
} StTensor;

typedef struct {
    char *key, *value;
} StMeta;

typedef struct {
    char *path;
    unsigned char *bytes; /* whole file */
    size_t size;
    size_t data_start; /* 8 + header length */
    StTensor *tensors;
    int n_tensors;
    StMeta *meta;
    int n_meta;
} StFile;

const char *st_dtype_name(StDtype d);
size_t st_dtype_size(StDtype d);

/* Parses a file held in memory (takes ownership of bytes); path is used in messages. */
int st_parse(StFile *f, const char *path, unsigned char *bytes, size_t size);
int st_open(StFile *f, const char *path);
void st_close(StFile *f);

const StTensor *st_find(const StFile *f, const char *name);
const void *st_data(const StFile *f, const StTensor *t);
const char *st_meta(const StFile *f, const char *key);
size_t st_numel(const StTensor *t);

/* Copies tensor `name` into out after checking that it exists, has this dtype and exactly this shape. */
int st_read(const StFile *f, const char *name, StDtype dtype, int ndim, const int64_t *shape, void *out);
/* Same, as float32 from an F32 tensor, with any shape of n elements. */
int st_read_f32(const StFile *f, const char *name, float *out, size_t n);

/* Writer: tensors are referenced, not copied; keep their data alive until st_write. */
typedef struct StWriter StWriter;
StWriter *st_writer_new(void);
void st_writer_free(StWriter *w);
void st_add(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape, const void *data);
void st_set_meta(StWriter *w, const char *key, const char *value);
/* Writes atomically (temporary file, fsync, rename). */
int st_write(StWriter *w, const char *path);

#endif
