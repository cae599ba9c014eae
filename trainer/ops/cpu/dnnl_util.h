/* Shared oneDNN state for the CPU backend: one engine and stream, and checked calls. */
#ifndef RSA_DNNL_UTIL_H
#define RSA_DNNL_UTIL_H

#include "../../core/error.h"

#include <oneapi/dnnl/dnnl.h>

dnnl_engine_t dnnl_util_engine(void);
dnnl_stream_t dnnl_util_stream(void);
const char *dnnl_util_status(dnnl_status_t s);

/* oneDNN rejecting a call the trainer built itself is a bug or an unsupported machine, not bad user input. */
#define DNNL_CHECK(call)                                                                                         \
    do {                                                                                                         \
        dnnl_status_t status_ = (call);                                                                          \
        if (status_ != dnnl_success)                                                                             \
            rsa_fatal("run with DNNL_VERBOSE=1 to see oneDNN's view; backend \"ref\" avoids oneDNN",             \
                      "oneDNN call failed with %s: %s", dnnl_util_status(status_), #call);                      \
    } while (0)

/* Memory descriptor for a 4-D activation in one of our layouts, with elements of type dt. */
dnnl_memory_desc_t dnnl_util_act_md(int n, int c, int h, int w, int layout, dnnl_data_type_t dt);
/* Executes a primitive with the given arguments and waits. */
void dnnl_util_run(dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args);
/* Creates a reorder between two descriptors; attr may be NULL. */
dnnl_primitive_t dnnl_util_reorder(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                                   const_dnnl_primitive_attr_t attr);

#endif
