#include "dnnl_util.h"

#include "../../core/layout.h"

#include <oneapi/dnnl/dnnl_debug.h>
#include <pthread.h>

static dnnl_engine_t engine;
static dnnl_stream_t stream;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void create(void) {
    DNNL_CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    DNNL_CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
}

dnnl_engine_t dnnl_util_engine(void) {
    pthread_once(&once, create);
    return engine;
}

dnnl_stream_t dnnl_util_stream(void) {
    pthread_once(&once, create);
    return stream;
}

const char *dnnl_util_status(dnnl_status_t s) { return dnnl_status2str(s); }

dnnl_memory_desc_t dnnl_util_act_md(int n, int c, int h, int w, int layout, dnnl_data_type_t dt) {
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {n, c, h, w};
    dnnl_format_tag_t tag = layout == LAYOUT_NHWC ? dnnl_nhwc : layout == LAYOUT_NCHW16C ? dnnl_nChw16c : dnnl_nchw;
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&md, 4, dims, dt, tag));
    return md;
}

void dnnl_util_run(dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args) {
    DNNL_CHECK(dnnl_primitive_execute(p, dnnl_util_stream(), nargs, args));
    DNNL_CHECK(dnnl_stream_wait(dnnl_util_stream()));
}

dnnl_primitive_t dnnl_util_reorder(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                                   const_dnnl_primitive_attr_t attr) {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t p;
    DNNL_CHECK(dnnl_reorder_primitive_desc_create(&pd, from, dnnl_util_engine(), to, dnnl_util_engine(), attr));
    DNNL_CHECK(dnnl_primitive_create(&p, pd));
    DNNL_CHECK(dnnl_primitive_desc_destroy(pd));
    return p;
}
