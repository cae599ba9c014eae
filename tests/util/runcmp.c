#include "runcmp.h"

#include "trainer/core/error.h"
#include "trainer/core/fileio.h"
#include "trainer/io/safetensors.h"

char *run_step_metrics(const char *dir) {
    char path[800];
    snprintf(path, sizeof path, "%s/steps.tsv", dir);
    size_t n;
    char *text = read_file(path, &n);
    if (!text) return NULL;
    char *out = calloc(n + 1, 1);
    size_t o = 0;
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        if (!end) break;
        int tabs = 0;
        for (char *c = line; c < end; c++) {
            if (*c == '\t' && ++tabs == 8) break;
            out[o++] = *c;
        }
        out[o++] = '\n';
        line = end + 1;
    }
    free(text);
    return out;
}

bool run_same_checkpoint(const char *a, const char *b, char *why, size_t why_size) {
    StFile fa, fb;
    if (st_open(&fa, a) != 0) {
        snprintf(why, why_size, "%s", rsa_error_message());
        return false;
    }
    if (st_open(&fb, b) != 0) {
        snprintf(why, why_size, "%s", rsa_error_message());
        st_close(&fa);
        return false;
    }
    bool same = fa.n_tensors == fb.n_tensors;
    if (!same) snprintf(why, why_size, "%d vs %d tensors", fa.n_tensors, fb.n_tensors);
    int differ = 0;
    for (int i = 0; same && i < fa.n_tensors; i++) {
        const StTensor *t = &fa.tensors[i], *u = st_find(&fb, t->name);
        bool eq = u && t->end - t->begin == u->end - u->begin &&
                  memcmp(st_data(&fa, t), st_data(&fb, u), t->end - t->begin) == 0;
        if (!eq && differ++ == 0) snprintf(why, why_size, "tensor %s differs", t->name);
    }
    if (differ > 1) {
        size_t k = strlen(why);
        snprintf(why + k, why_size - k, " (and %d more of %d)", differ - 1, fa.n_tensors);
    }
    same = same && differ == 0;
    const char *sa = st_meta(&fa, "step"), *sb = st_meta(&fb, "step");
    if (same && (!sa || !sb || strcmp(sa, sb) != 0)) {
        snprintf(why, why_size, "step %s vs %s", sa ? sa : "?", sb ? sb : "?");
        same = false;
    }
    st_close(&fa), st_close(&fb);
    return same;
}
