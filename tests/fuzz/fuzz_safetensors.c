/* The safetensors reader (trainer/io/safetensors.c): parse, then read every tensor and metadata value it reports. */
#include "fuzz.h"
#include "trainer/io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    unsigned char *bytes = malloc(size ? size : 1);
    if (!bytes) abort();
    memcpy(bytes, data, size);
    StFile f;
    rsa_error_clear();
    if (st_parse(&f, "fuzz.safetensors", bytes, size) != 0) { /* st_parse owns (and frees) bytes */
        fuzz_check_message();
        return 0;
    }
    for (int i = 0; i < f.n_tensors; i++) {
        const StTensor *t = &f.tensors[i];
        if (st_find(&f, t->name) != t) abort(); /* names are unique */
        size_t n = t->end - t->begin;
        if (n != st_numel(t) * st_dtype_size(t->dtype)) abort();
        void *out = malloc(n ? n : 1);
        if (!out) abort();
        if (st_read(&f, t->name, t->dtype, t->ndim, t->shape, out) != 0) abort();
        if (t->dtype == ST_F32 && st_read_f32(&f, t->name, out, st_numel(t)) != 0) abort();
        free(out);
    }
    for (int i = 0; i < f.n_meta; i++)
        if (!st_meta(&f, f.meta[i].key)) abort();
    st_close(&f);
    return 0;
}
