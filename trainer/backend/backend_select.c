#include "backend.h"

#include "../core/error.h"

#include <string.h>

const Backend *backend_by_name(const char *name) {
    const Backend *b = NULL;
    if (strcmp(name, "ref") == 0)
        b = backend_ref();
    else if (strcmp(name, "cpu") == 0)
        b = backend_cpu();
    else if (strcmp(name, "cuda") == 0)
        b = backend_cuda();
    else if (strcmp(name, "staged") == 0)
        b = backend_staged();
    else
        return rsa_fail("use \"cpu\" (oneDNN), \"cuda\" or \"ref\" (reference loops)", "unknown backend \"%s\"", name),
               NULL;
    if (!b) {
        if (strcmp(name, "cuda") == 0)
            rsa_error_context("backend \"cuda\" cannot run here"); /* backend_cuda() recorded why */
        else
            rsa_fail("install libdnnl-dev (`make deps`) and rebuild", "backend \"%s\" is not available in this build",
                     name);
    }
    return b;
}
