/* Convolution through oneDNN.
 *
 * Weights stay in torchvision's OIHW in the model (the optimiser, checkpoints and EMA see one flat array); each call
 * reorders them into the layout its primitive wants (with plain OIHW weights oneDNN falls back to its reference
 * kernels, 300x slower here). The reordered weights and the weight gradient in the primitive's layout live in three
 * buffers shared by all convolutions of the process instead of three copies of every layer's weights: a reorder
 * costs ~1 % of the convolution next to it, three copies of ResNet-50's weights cost 300 MB. Convolutions therefore
 * run one at a time per process, as the trainer calls them.
 * 3x3 stride-1 convolutions on channel-blocked tensors with at least 32 channels use Winograd F(4x4, 3x3) when the
 * machine supports it: it measured 2.1x faster than direct convolution here (64->64 channels, 32x32, batch 64,
 * forward + both backwards; a ResNet-18 step 1.6x). With 16 channels its small transform-domain products lose:
 * direct convolution made the quick scale's step (16-128 channels) 15 % faster.
 * bf16 networks (conv_cpu_set_precision): the values handed in are already bf16, so on a CPU with AVX512-BF16 the
 * op packs them into bf16 buffers (exact) and runs oneDNN's bf16 kernels, which multiply in bf16 and sum in fp32 and
 * write fp32: the products are the fp32 path's, only the order of the sums differs, except that the bf16
 * instructions count subnormal inputs and products (below 2^-126) as zero (vdpbf16ps and vcvtneps2bf16, checked on
 * this CPU). Elsewhere (the stem, whose input is plain NCHW, and CPUs without the instructions) bf16 networks run
 * the fp32 kernels on the rounded values. */
#include "conv_cpu.h"

#include "../../core/hostmem.h"
#include "blocked.h"
#include "dnnl_util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool winograd_enabled = true, native_bf16_enabled = true;

void conv_cpu_set_winograd(bool enabled) { winograd_enabled = enabled; }
bool conv_cpu_winograd(void) { return winograd_enabled; }
void conv_cpu_set_native_bf16(bool enabled) { native_bf16_enabled = enabled; }

bool conv_cpu_has_bf16(void) {
    return (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
}

bool conv_cpu_native_bf16(void) { return native_bf16_enabled && conv_cpu_has_bf16(); }

typedef struct {
    dnnl_primitive_t prim;
    dnnl_primitive_desc_t pd;
} Prim;

struct ConvOp {
    ConvShape s;
    Layout in, out;
    bool bias;
    bool bf16;               /* x, dy and weights go to the primitives as bf16 */
    int n;                   /* batch the primitives below were made for; 0 = none yet */
    dnnl_alg_kind_t alg;     /* algorithm of the forward primitive */
    dnnl_memory_desc_t x_md, y_md, w_user_md, b_md;
    dnnl_memory_desc_t x_in_md, y_in_md; /* what the primitives read x and dy as: x_md, y_md or their bf16 twins */
    Prim fwd, bwd_data, bwd_weights;
    dnnl_primitive_t w_to_fwd, w_to_bwd; /* OIHW -> the primitives' weight layouts */
    dnnl_primitive_t dw_to_user;          /* weight gradient -> OIHW gradient, accumulating */
    float *db_prim;
};

typedef struct {
    void *buf;
    size_t bytes;
} Shared;
static Shared shared_w_fwd, shared_w_bwd, shared_dw, shared_x_bf16, shared_dy_bf16;

/* What shared_dy_bf16 holds when conv_cpu_backward_weights packed it: the model runs backward-weights and then
 * backward-data on the same dy, so the second call uses the first one's packing (once: it clears the record). */
static struct {
    const ConvOp *op;
    const float *from;
    size_t bytes;
} dy_packed;

static void *shared_get(Shared *s, size_t bytes) {
    if (bytes > s->bytes) {
        hostmem_free(s->buf, s->bytes);
        s->buf = hostmem_alloc(bytes);
        if (!s->buf) rsa_fatal("free memory or reduce the batch size", "%s", rsa_error_message());
        s->bytes = bytes;
    }
    return s->buf;
}

static void destroy_prim(Prim *p) {
    if (p->prim) DNNL_CHECK(dnnl_primitive_destroy(p->prim));
    if (p->pd) DNNL_CHECK(dnnl_primitive_desc_destroy(p->pd));
    p->prim = NULL, p->pd = NULL;
}

static void release_plan(ConvOp *op) {
    if (dy_packed.op == op) dy_packed.op = NULL; /* a new plan (or op at this address) packs afresh */
    destroy_prim(&op->fwd);
    destroy_prim(&op->bwd_data);
    destroy_prim(&op->bwd_weights);
    if (op->w_to_fwd) DNNL_CHECK(dnnl_primitive_destroy(op->w_to_fwd));
    if (op->w_to_bwd) DNNL_CHECK(dnnl_primitive_destroy(op->w_to_bwd));
    if (op->dw_to_user) DNNL_CHECK(dnnl_primitive_destroy(op->dw_to_user));
    op->w_to_fwd = op->w_to_bwd = op->dw_to_user = NULL;
    free(op->db_prim);
    op->db_prim = NULL;
    op->n = 0;
}

static bool winograd_fits(const ConvOp *op) {
    return winograd_enabled && !op->bf16 && op->s.k == 3 && op->s.stride == 1 && op->in == LAYOUT_NCHW16C &&
           op->out == LAYOUT_NCHW16C && op->s.ci >= 32 && op->s.co >= 32;
}

/* Creates a primitive descriptor, trying Winograd first where it fits; returns the algorithm used. */
static dnnl_alg_kind_t make_fwd(ConvOp *op, const dnnl_memory_desc_t *w_any) {
    dnnl_dims_t strides = {op->s.stride, op->s.stride}, pad = {op->s.pad, op->s.pad};
    dnnl_alg_kind_t algs[2] = {dnnl_convolution_winograd, dnnl_convolution_direct};
    for (int i = winograd_fits(op) ? 0 : 1; i < 2; i++) {
        dnnl_convolution_desc_t d;
        DNNL_CHECK(dnnl_convolution_forward_desc_init(&d, dnnl_forward_training, algs[i], &op->x_in_md, w_any,
                                                      op->bias ? &op->b_md : NULL, &op->y_md, strides, pad, pad));
        dnnl_status_t st = dnnl_primitive_desc_create(&op->fwd.pd, &d, NULL, dnnl_util_engine(), NULL);
        if (st == dnnl_success) return algs[i];
        if (st != dnnl_unimplemented) DNNL_CHECK(st);
    }
    rsa_fatal("use backend \"ref\" for this shape", "oneDNN has no convolution for this shape");
}

static void build_plan(ConvOp *op, int n) {
    release_plan(op);
    dnnl_data_type_t in_dt = op->bf16 ? dnnl_bf16 : dnnl_f32;
    op->x_md = dnnl_util_act_md(n, op->s.ci, op->s.hi, op->s.wi, op->in, dnnl_f32);
    op->y_md = dnnl_util_act_md(n, op->s.co, op->s.ho, op->s.wo, op->out, dnnl_f32);
    op->x_in_md = dnnl_util_act_md(n, op->s.ci, op->s.hi, op->s.wi, op->in, in_dt);
    op->y_in_md = dnnl_util_act_md(n, op->s.co, op->s.ho, op->s.wo, op->out, in_dt);
    dnnl_dims_t wdims = {op->s.co, op->s.ci, op->s.k, op->s.k}, bdims = {op->s.co};
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&op->w_user_md, 4, wdims, dnnl_f32, dnnl_oihw));
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&op->b_md, 1, bdims, dnnl_f32, dnnl_x));
    dnnl_memory_desc_t w_any;
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&w_any, 4, wdims, in_dt, dnnl_format_tag_any));

    op->alg = make_fwd(op, &w_any);
    DNNL_CHECK(dnnl_primitive_create(&op->fwd.prim, op->fwd.pd));
    const dnnl_memory_desc_t *w_md = dnnl_primitive_desc_query_md(op->fwd.pd, dnnl_query_weights_md, 0);
    op->w_to_fwd = dnnl_util_reorder(&op->w_user_md, w_md, NULL);
    op->n = n;
}

/* Backward primitives are made on first use: the stem convolution never needs its input gradient. */
static void build_backward_data(ConvOp *op) {
    dnnl_dims_t strides = {op->s.stride, op->s.stride}, pad = {op->s.pad, op->s.pad};
    dnnl_dims_t wdims = {op->s.co, op->s.ci, op->s.k, op->s.k};
    dnnl_memory_desc_t w_any;
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&w_any, 4, wdims, op->bf16 ? dnnl_bf16 : dnnl_f32, dnnl_format_tag_any));
    dnnl_alg_kind_t algs[2] = {op->alg, dnnl_convolution_direct};
    for (int i = 0; i < 2 && !op->bwd_data.pd; i++) {
        dnnl_convolution_desc_t d;
        DNNL_CHECK(dnnl_convolution_backward_data_desc_init(&d, algs[i], &op->x_md, &w_any, &op->y_in_md, strides,
                                                            pad, pad));
        dnnl_status_t st = dnnl_primitive_desc_create(&op->bwd_data.pd, &d, NULL, dnnl_util_engine(), op->fwd.pd);
        if (st != dnnl_success && st != dnnl_unimplemented) DNNL_CHECK(st);
        if (st != dnnl_success) op->bwd_data.pd = NULL;
    }
    if (!op->bwd_data.pd) rsa_fatal("use backend \"ref\"", "oneDNN has no backward-data convolution for this shape");
    DNNL_CHECK(dnnl_primitive_create(&op->bwd_data.prim, op->bwd_data.pd));
    const dnnl_memory_desc_t *w_md = dnnl_primitive_desc_query_md(op->bwd_data.pd, dnnl_query_weights_md, 0);
    op->w_to_bwd = dnnl_util_reorder(&op->w_user_md, w_md, NULL);
}

static void build_backward_weights(ConvOp *op) {
    dnnl_dims_t strides = {op->s.stride, op->s.stride}, pad = {op->s.pad, op->s.pad};
    dnnl_dims_t wdims = {op->s.co, op->s.ci, op->s.k, op->s.k};
    dnnl_memory_desc_t w_any;
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&w_any, 4, wdims, dnnl_f32, dnnl_format_tag_any));
    dnnl_alg_kind_t algs[2] = {op->alg, dnnl_convolution_direct};
    for (int i = 0; i < 2 && !op->bwd_weights.pd; i++) {
        dnnl_convolution_desc_t d;
        DNNL_CHECK(dnnl_convolution_backward_weights_desc_init(&d, algs[i], &op->x_in_md, &w_any,
                                                               op->bias ? &op->b_md : NULL, &op->y_in_md, strides,
                                                               pad, pad));
        dnnl_status_t st = dnnl_primitive_desc_create(&op->bwd_weights.pd, &d, NULL, dnnl_util_engine(), op->fwd.pd);
        if (st != dnnl_success && st != dnnl_unimplemented) DNNL_CHECK(st);
        if (st != dnnl_success) op->bwd_weights.pd = NULL;
    }
    if (!op->bwd_weights.pd)
        rsa_fatal("use backend \"ref\"", "oneDNN has no backward-weights convolution for this shape");
    DNNL_CHECK(dnnl_primitive_create(&op->bwd_weights.prim, op->bwd_weights.pd));
    const dnnl_memory_desc_t *dw_md = dnnl_primitive_desc_query_md(op->bwd_weights.pd, dnnl_query_diff_weights_md, 0);
    if (op->bias) {
        op->db_prim = calloc((size_t)op->s.co, sizeof(float));
        if (!op->db_prim) rsa_fatal("free memory", "out of memory");
    }
    /* Reorder with a sum post-op: the OIHW gradient gets += instead of =. */
    dnnl_primitive_attr_t attr;
    dnnl_post_ops_t post;
    DNNL_CHECK(dnnl_primitive_attr_create(&attr));
    DNNL_CHECK(dnnl_post_ops_create(&post));
    DNNL_CHECK(dnnl_post_ops_append_sum(post, 1.0f));
    DNNL_CHECK(dnnl_primitive_attr_set_post_ops(attr, post));
    op->dw_to_user = dnnl_util_reorder(dw_md, &op->w_user_md, attr);
    DNNL_CHECK(dnnl_post_ops_destroy(post));
    DNNL_CHECK(dnnl_primitive_attr_destroy(attr));
}

ConvOp *conv_cpu_create(const ConvShape *s, Layout in, Layout out, bool bias) {
    RSA_ASSERT(in != LAYOUT_NCHW16C || s->ci % 16 == 0);
    RSA_ASSERT(out != LAYOUT_NCHW16C || s->co % 16 == 0);
    ConvOp *op = calloc(1, sizeof *op);
    if (!op) rsa_fatal("free memory", "out of memory");
    op->s = *s, op->in = in, op->out = out, op->bias = bias;
    return op;
}

void conv_cpu_destroy(ConvOp *op) {
    if (!op) return;
    release_plan(op);
    free(op);
}

static void ensure_plan(ConvOp *op, int n) {
    RSA_ASSERT(n >= 1 && n <= op->s.n);
    if (op->n != n) build_plan(op, n);
}

static dnnl_memory_t wrap(const dnnl_memory_desc_t *md, const void *p) {
    dnnl_memory_t m;
    DNNL_CHECK(dnnl_memory_create(&m, md, dnnl_util_engine(), (void *)p));
    return m;
}

static void reorder_into(dnnl_primitive_t r, const dnnl_memory_desc_t *from_md, const void *from,
                         const dnnl_memory_desc_t *to_md, void *to) {
    dnnl_memory_t a = wrap(from_md, from), b = wrap(to_md, to);
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, a}, {DNNL_ARG_TO, b}};
    dnnl_util_run(r, 2, args);
    DNNL_CHECK(dnnl_memory_destroy(a));
    DNNL_CHECK(dnnl_memory_destroy(b));
}

void conv_cpu_weights_changed(ConvOp *op) { (void)op; /* nothing cached: weights are reordered at every call */ }

void conv_cpu_set_precision(ConvOp *op, Precision p) {
    bool bf16 = p == PRECISION_BF16 && conv_cpu_native_bf16() && op->in == LAYOUT_NCHW16C &&
                op->out == LAYOUT_NCHW16C;
    if (bf16 != op->bf16) release_plan(op);
    op->bf16 = bf16;
}

/* float -> bf16 storage. The network hands in values it has rounded to bf16, so this keeps them exactly; it
 * rounds (round_bf16) in case one was not, and keeps NaN a NaN (its payload may sit in the dropped bits).
 * Elementwise, so thread-count independent. */
CPU_CLONES static void pack_bf16(size_t n, const float *x, uint16_t *y) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float r = round_bf16(x[i]);
        uint32_t u;
        memcpy(&u, &r, sizeof u);
        y[i] = r != r ? (uint16_t)0x7fc0u : (uint16_t)(u >> 16);
    }
}

/* What a primitive reads for an activation given as floats: the floats themselves, or their bf16 copy in one of
 * the shared buffers. */
static const void *as_input(const ConvOp *op, Shared *buf, const dnnl_memory_desc_t *md, const float *x) {
    if (!op->bf16) return x;
    size_t bytes = dnnl_memory_desc_get_size(md);
    uint16_t *packed = shared_get(buf, bytes);
    pack_bf16(bytes / sizeof(uint16_t), x, packed);
    return packed;
}

void conv_cpu_forward(ConvOp *op, int n, const float *x, const float *w, const float *bias, float *y) {
    ensure_plan(op, n);
    const dnnl_memory_desc_t *w_md = dnnl_primitive_desc_query_md(op->fwd.pd, dnnl_query_weights_md, 0);
    void *w_prim = shared_get(&shared_w_fwd, dnnl_memory_desc_get_size(w_md));
    reorder_into(op->w_to_fwd, &op->w_user_md, w, w_md, w_prim);
    const void *xin = as_input(op, &shared_x_bf16, &op->x_in_md, x);
    dnnl_memory_t mx = wrap(&op->x_in_md, xin), mw = wrap(w_md, w_prim), my = wrap(&op->y_md, y);
    dnnl_memory_t mb = op->bias ? wrap(&op->b_md, bias) : NULL;
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, mx}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, my}, {DNNL_ARG_BIAS, mb}};
    dnnl_util_run(op->fwd.prim, op->bias ? 4 : 3, args);
    DNNL_CHECK(dnnl_memory_destroy(mx));
    DNNL_CHECK(dnnl_memory_destroy(mw));
    DNNL_CHECK(dnnl_memory_destroy(my));
    if (mb) DNNL_CHECK(dnnl_memory_destroy(mb));
}

void conv_cpu_backward_data(ConvOp *op, int n, const float *dy, const float *w, float *dx) {
    ensure_plan(op, n);
    if (!op->bwd_data.prim) build_backward_data(op);
    const dnnl_memory_desc_t *w_md = dnnl_primitive_desc_query_md(op->bwd_data.pd, dnnl_query_weights_md, 0);
    void *w_prim = shared_get(&shared_w_bwd, dnnl_memory_desc_get_size(w_md));
    reorder_into(op->w_to_bwd, &op->w_user_md, w, w_md, w_prim);
    bool packed = op->bf16 && dy_packed.op == op && dy_packed.from == dy &&
                  dy_packed.bytes == dnnl_memory_desc_get_size(&op->y_in_md);
    const void *dyin = packed ? shared_dy_bf16.buf : as_input(op, &shared_dy_bf16, &op->y_in_md, dy);
    dy_packed.op = NULL;
    dnnl_memory_t mdy = wrap(&op->y_in_md, dyin), mw = wrap(w_md, w_prim), mdx = wrap(&op->x_md, dx);
    dnnl_exec_arg_t args[] = {{DNNL_ARG_DIFF_DST, mdy}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DIFF_SRC, mdx}};
    dnnl_util_run(op->bwd_data.prim, 3, args);
    DNNL_CHECK(dnnl_memory_destroy(mdy));
    DNNL_CHECK(dnnl_memory_destroy(mw));
    DNNL_CHECK(dnnl_memory_destroy(mdx));
}

void conv_cpu_backward_weights(ConvOp *op, int n, const float *x, const float *dy, float *dw, float *dbias) {
    ensure_plan(op, n);
    if (!op->bwd_weights.prim) build_backward_weights(op);
    const dnnl_memory_desc_t *dw_md = dnnl_primitive_desc_query_md(op->bwd_weights.pd, dnnl_query_diff_weights_md, 0);
    float *dw_prim = shared_get(&shared_dw, dnnl_memory_desc_get_size(dw_md));
    const void *xin = as_input(op, &shared_x_bf16, &op->x_in_md, x);
    const void *dyin = as_input(op, &shared_dy_bf16, &op->y_in_md, dy);
    dy_packed.op = op->bf16 ? op : NULL, dy_packed.from = dy;
    dy_packed.bytes = dnnl_memory_desc_get_size(&op->y_in_md);
    dnnl_memory_t mx = wrap(&op->x_in_md, xin), mdy = wrap(&op->y_in_md, dyin), mdw = wrap(dw_md, dw_prim);
    dnnl_memory_t mdb = op->bias ? wrap(&op->b_md, op->db_prim) : NULL;
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, mx}, {DNNL_ARG_DIFF_DST, mdy}, {DNNL_ARG_DIFF_WEIGHTS, mdw}, {DNNL_ARG_DIFF_BIAS, mdb}};
    dnnl_util_run(op->bwd_weights.prim, op->bias ? 4 : 3, args);
    if (dw) reorder_into(op->dw_to_user, dw_md, dw_prim, &op->w_user_md, dw);
    if (dbias && op->bias)
        for (int o = 0; o < op->s.co; o++) dbias[o] += op->db_prim[o];
    DNNL_CHECK(dnnl_memory_destroy(mx));
    DNNL_CHECK(dnnl_memory_destroy(mdy));
    DNNL_CHECK(dnnl_memory_destroy(mdw));
    if (mdb) DNNL_CHECK(dnnl_memory_destroy(mdb));
}

const char *conv_cpu_impl(ConvOp *op) {
    const char *impl = "none";
    if (op->fwd.pd) DNNL_CHECK(dnnl_primitive_desc_query(op->fwd.pd, dnnl_query_impl_info_str, 0, &impl));
    return impl;
}
