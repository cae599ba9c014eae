/* Convolution through cuDNN's convolution API on NHWC activations.
 *
 * Weights stay OIHW in the model (the optimiser, checkpoints and EMA see one flat array). cuDNN 9 has no backward
 * algorithm at all for NHWC activations with an OIHW filter (every one reports NOT_SUPPORTED on an H100), so each op
 * keeps an OHWI copy, refreshed when the weight pointer changes or conv_weights_changed says a step happened, and
 * computes the weight gradient in OHWI before adding it, transposed, into the OIHW gradient. The model's input image arrives NCHW: the op transposes it into a
 * private NHWC buffer (and the input gradient back), so cuDNN only ever sees NHWC.
 *
 * Algorithms are chosen once per batch size and setting of cuda_backend.h, on first use of each direction: in
 * deterministic mode the first deterministic algorithm in the order of cuDNN's heuristics (no timing, so every run
 * chooses the same), otherwise the fastest cudnnFind measures. Strict FP32 admits only CUDNN_FMA_MATH algorithms. */
#include "cuda_util.h"
#include "ops_cuda.h"

#include <stdlib.h>

/* Algorithms wanting more workspace than this are passed over (some FFT variants ask for gigabytes). */
static const size_t WORKSPACE_LIMIT = (size_t)1 << 30;

typedef struct {
    bool chosen;
    int algo; /* a cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t */
    cudnnMathType_t math;
    size_t workspace;
} Choice;

typedef struct {
    int n;
    bool deterministic, tf32;
    Choice fwd, bwd_data, bwd_filter;
} Plan;

struct ConvOp {
    ConvShape s;
    bool bias;
    bool nchw_input; /* input given as NCHW with more than one pixel: goes through x_nhwc */
    cudnnTensorDescriptor_t x_desc, y_desc;
    cudnnFilterDescriptor_t w_desc;
    cudnnConvolutionDescriptor_t conv_desc;
    int desc_n; /* batch the tensor descriptors describe */
    Plan *plans;
    int n_plans;
    float *w_ohwi;           /* weights for cuDNN; valid while w_source matches */
    const float *w_source;
    float *dw_ohwi;          /* weight gradient in cuDNN's layout, made on first use */
    float *x_nhwc;           /* the NCHW input transposed (and its gradient), made on first use */
};

static size_t weight_count(const ConvShape *s) { return (size_t)s->co * s->ci * s->k * s->k; }

ConvOp *conv_cuda_create(const ConvShape *s, Layout in, Layout out, bool bias) {
    RSA_ASSERT(in == LAYOUT_NHWC || in == LAYOUT_NCHW);
    cuda_require_nhwc(out, s->ho * s->wo);
    ConvOp *op = (ConvOp *)calloc(1, sizeof *op);
    if (!op) rsa_fatal("free memory", "out of memory");
    op->s = *s, op->bias = bias;
    op->nchw_input = in == LAYOUT_NCHW && s->hi * s->wi > 1;
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&op->x_desc));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&op->y_desc));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&op->w_desc));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&op->conv_desc));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(op->w_desc, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, s->co, s->ci, s->k, s->k));
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(op->conv_desc, s->pad, s->pad, s->stride, s->stride, 1, 1,
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    op->w_ohwi = cuda_alloc_floats(weight_count(s));
    return op;
}

void conv_cuda_destroy(ConvOp *op) {
    if (!op) return;
    CUDNN_CHECK(cudnnDestroyTensorDescriptor(op->x_desc));
    CUDNN_CHECK(cudnnDestroyTensorDescriptor(op->y_desc));
    CUDNN_CHECK(cudnnDestroyFilterDescriptor(op->w_desc));
    CUDNN_CHECK(cudnnDestroyConvolutionDescriptor(op->conv_desc));
    cuda_free(op->w_ohwi);
    cuda_free(op->dw_ohwi);
    cuda_free(op->x_nhwc);
    free(op->plans);
    free(op);
}

void conv_cuda_weights_changed(ConvOp *op) { op->w_source = NULL; }

/* No bf16/fp16 tensor-core path yet: a mixed-precision network's convolutions run in fp32 (or TF32) on its rounded
 * values. */
void conv_cuda_set_precision(ConvOp *op, Precision p) { (void)op, (void)p; }

static void describe_batch(ConvOp *op, int n) {
    RSA_ASSERT(n >= 1 && n <= op->s.n);
    if (op->desc_n == n) return;
    const ConvShape *s = &op->s;
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(op->x_desc, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, n, s->ci, s->hi, s->wi));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(op->y_desc, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, n, s->co, s->ho, s->wo));
    int dims[4];
    CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(op->conv_desc, op->x_desc, op->w_desc, &dims[0], &dims[1],
                                                      &dims[2], &dims[3]));
    RSA_ASSERT(dims[0] == n && dims[1] == s->co && dims[2] == s->ho && dims[3] == s->wo);
    op->desc_n = n;
}

static Plan *plan_for(ConvOp *op, int n) {
    describe_batch(op, n);
    bool det = cuda_deterministic(), tf32 = cuda_tf32();
    for (int i = 0; i < op->n_plans; i++) {
        Plan *p = &op->plans[i];
        if (p->n == n && p->deterministic == det && p->tf32 == tf32) return p;
    }
    Plan *grown = (Plan *)realloc(op->plans, sizeof(Plan) * (size_t)(op->n_plans + 1));
    if (!grown) rsa_fatal("free memory", "out of memory");
    op->plans = grown;
    Plan *p = &op->plans[op->n_plans++];
    *p = Plan{};
    p->n = n, p->deterministic = det, p->tf32 = tf32;
    return p;
}

/* The first usable entry of cuDNN's list (ordered by its heuristics or by measured time). */
template <class Perf>
static Choice pick(const Plan *p, const Perf *perf, int count, const char *direction, const ConvShape *s) {
    for (int i = 0; i < count; i++) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > WORKSPACE_LIMIT) continue;
        if (p->deterministic && perf[i].determinism != CUDNN_DETERMINISTIC) continue;
        if (!p->tf32 && perf[i].mathType != CUDNN_FMA_MATH) continue;
        return Choice{true, (int)perf[i].algo, perf[i].mathType, 0}; /* workspace: asked once the math is set */
    }
    rsa_fatal("try cuda_set_deterministic(false), or backend \"cpu\"",
              "cuDNN offers no %s%salgorithm for the %s convolution %dx%d stride %d, %d->%d channels, %dx%d input, "
              "batch %d", p->deterministic ? "deterministic " : "", p->tf32 ? "" : "strict FP32 ", direction, s->k,
              s->k, s->stride, s->ci, s->co, s->hi, s->wi, p->n);
}

/* The math type the descriptor asks for while choosing: strict FP32 is FMA only; TF32 is cuDNN's default for
 * float on Ampere and newer. */
static void allow_math(ConvOp *op, const Plan *p) {
    CUDNN_CHECK(cudnnSetConvolutionMathType(op->conv_desc, p->tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
}

static const Choice *forward_choice(ConvOp *op, Plan *p) {
    if (p->fwd.chosen) return &p->fwd;
    allow_math(op, p);
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int count = 0;
    if (p->deterministic)
        CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(cuda_cudnn(), op->x_desc, op->w_desc, op->conv_desc,
                                                           op->y_desc, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perf));
    else
        CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(cuda_cudnn(), op->x_desc, op->w_desc, op->conv_desc,
                                                         op->y_desc, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perf));
    p->fwd = pick(p, perf, count, "forward", &op->s);
    CUDNN_CHECK(cudnnSetConvolutionMathType(op->conv_desc, p->fwd.math));
    CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(cuda_cudnn(), op->x_desc, op->w_desc, op->conv_desc,
                                                        op->y_desc, (cudnnConvolutionFwdAlgo_t)p->fwd.algo,
                                                        &p->fwd.workspace));
    return &p->fwd;
}

static const Choice *backward_data_choice(ConvOp *op, Plan *p) {
    if (p->bwd_data.chosen) return &p->bwd_data;
    allow_math(op, p);
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int count = 0;
    if (p->deterministic)
        CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(cuda_cudnn(), op->w_desc, op->y_desc, op->conv_desc,
                                                                op->x_desc, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                                                &count, perf));
    else
        CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(cuda_cudnn(), op->w_desc, op->y_desc, op->conv_desc,
                                                              op->x_desc, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                                              &count, perf));
    p->bwd_data = pick(p, perf, count, "backward-data", &op->s);
    CUDNN_CHECK(cudnnSetConvolutionMathType(op->conv_desc, p->bwd_data.math));
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(cuda_cudnn(), op->w_desc, op->y_desc, op->conv_desc,
                                                             op->x_desc, (cudnnConvolutionBwdDataAlgo_t)p->bwd_data.algo,
                                                             &p->bwd_data.workspace));
    return &p->bwd_data;
}

static const Choice *backward_filter_choice(ConvOp *op, Plan *p) {
    if (p->bwd_filter.chosen) return &p->bwd_filter;
    allow_math(op, p);
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int count = 0;
    if (p->deterministic)
        CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(cuda_cudnn(), op->x_desc, op->y_desc, op->conv_desc,
                                                                  op->w_desc, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                                                                  &count, perf));
    else
        CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(cuda_cudnn(), op->x_desc, op->y_desc, op->conv_desc,
                                                                op->w_desc, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                                                                &count, perf));
    p->bwd_filter = pick(p, perf, count, "backward-weights", &op->s);
    CUDNN_CHECK(cudnnSetConvolutionMathType(op->conv_desc, p->bwd_filter.math));
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(cuda_cudnn(), op->x_desc, op->y_desc, op->conv_desc,
                                                               op->w_desc,
                                                               (cudnnConvolutionBwdFilterAlgo_t)p->bwd_filter.algo,
                                                               &p->bwd_filter.workspace));
    return &p->bwd_filter;
}

/* The descriptor runs each algorithm under the math type it was chosen with. */
static void *prepare(ConvOp *op, const Choice *c) {
    CUDNN_CHECK(cudnnSetConvolutionMathType(op->conv_desc, c->math));
    return cuda_workspace(c->workspace);
}

static const float *weights_ohwi(ConvOp *op, const float *w) {
    if (op->w_source != w) {
        /* [co][ci][k*k] -> [co][k*k][ci] */
        transpose_cuda(op->s.co, op->s.ci, op->s.k * op->s.k, w, op->w_ohwi, false);
        op->w_source = w;
    }
    return op->w_ohwi;
}

static float *nhwc_buffer(ConvOp *op) {
    const ConvShape *s = &op->s;
    if (!op->x_nhwc) op->x_nhwc = cuda_alloc_floats((size_t)s->n * s->ci * s->hi * s->wi);
    return op->x_nhwc;
}

/* The input as NHWC: x itself, or x transposed into the op's buffer. */
static const float *input_nhwc(ConvOp *op, int n, const float *x) {
    if (!op->nchw_input) return x;
    /* [n][ci][hw] -> [n][hw][ci] */
    transpose_cuda(n, op->s.ci, op->s.hi * op->s.wi, x, nhwc_buffer(op), false);
    return op->x_nhwc;
}

void conv_cuda_forward(ConvOp *op, int n, const float *x, const float *w, const float *bias, float *y) {
    Plan *p = plan_for(op, n);
    const Choice *c = forward_choice(op, p);
    const float *xn = input_nhwc(op, n, x), *wn = weights_ohwi(op, w);
    void *ws = prepare(op, c);
    const float one = 1, zero = 0;
    CUDNN_CHECK(cudnnConvolutionForward(cuda_cudnn(), &one, op->x_desc, xn, op->w_desc, wn, op->conv_desc,
                                        (cudnnConvolutionFwdAlgo_t)c->algo, ws, c->workspace, &zero, op->y_desc, y));
    if (op->bias && bias) bias_cuda_add((size_t)n * op->s.ho * op->s.wo, op->s.co, bias, y);
}

void conv_cuda_backward_data(ConvOp *op, int n, const float *dy, const float *w, float *dx) {
    Plan *p = plan_for(op, n);
    const Choice *c = backward_data_choice(op, p);
    const float *wn = weights_ohwi(op, w);
    float *dxn = op->nchw_input ? nhwc_buffer(op) : dx;
    void *ws = prepare(op, c);
    const float one = 1, zero = 0;
    CUDNN_CHECK(cudnnConvolutionBackwardData(cuda_cudnn(), &one, op->w_desc, wn, op->y_desc, dy, op->conv_desc,
                                             (cudnnConvolutionBwdDataAlgo_t)c->algo, ws, c->workspace, &zero,
                                             op->x_desc, dxn));
    /* [n][hw][ci] -> [n][ci][hw] */
    if (op->nchw_input) transpose_cuda(n, op->s.hi * op->s.wi, op->s.ci, dxn, dx, false);
}

void conv_cuda_backward_weights(ConvOp *op, int n, const float *x, const float *dy, float *dw, float *dbias) {
    const ConvShape *s = &op->s;
    if (dw) {
        Plan *p = plan_for(op, n);
        const Choice *c = backward_filter_choice(op, p);
        const float *xn = input_nhwc(op, n, x);
        if (!op->dw_ohwi) op->dw_ohwi = cuda_alloc_floats(weight_count(s));
        void *ws = prepare(op, c);
        const float one = 1, zero = 0;
        CUDNN_CHECK(cudnnConvolutionBackwardFilter(cuda_cudnn(), &one, op->x_desc, xn, op->y_desc, dy, op->conv_desc,
                                                   (cudnnConvolutionBwdFilterAlgo_t)c->algo, ws, c->workspace, &zero,
                                                   op->w_desc, op->dw_ohwi));
        /* dw[co][ci][k*k] += dw_ohwi[co][k*k][ci] */
        transpose_cuda(s->co, s->k * s->k, s->ci, op->dw_ohwi, dw, true);
    }
    if (op->bias && dbias) bias_cuda_backward((size_t)n * s->ho * s->wo, s->co, dy, dbias);
}
