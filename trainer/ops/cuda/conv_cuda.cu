/* Convolution through cuDNN's convolution API on NHWC activations.
 *
 * Weights stay OIHW in the model (the optimiser, checkpoints and EMA see one flat array). cuDNN 9 has no backward
 * algorithm at all for NHWC activations with an OIHW filter (every one reports NOT_SUPPORTED on an H100), so each op
 * keeps an OHWI copy, refreshed when the weight pointer changes or conv_weights_changed says a step happened, and
 * computes the weight gradient in OHWI before adding it, transposed, into the OIHW gradient. The model's input
 * image arrives NCHW: the op transposes it into a private NHWC buffer (and the input gradient back), so cuDNN only
 * ever sees NHWC.
 *
 * Algorithms are chosen once per batch size and setting of cuda_backend.h, on first use of each direction: in
 * deterministic mode the first deterministic algorithm in the order of cuDNN's heuristics (no timing, so every run
 * chooses the same), otherwise the fastest cudnnFind measures. Strict FP32 admits only CUDNN_FMA_MATH algorithms;
 * no mode admits CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION, which may narrow float operands to 16 bits. An algorithm
 * the list offers but whose workspace query, or a first run, then declines the descriptors is passed over for the
 * next (each is run once when chosen; a choice depends only on cuDNN's list, so it is the same in every run).
 *
 * bf16 and fp16 networks (conv_cuda_set_precision) hand in values already representable in their format, so the
 * forward and input-gradient convolutions run on tensor cores in that format: x (or dy) and the weights are packed
 * into 16-bit copies (exactly), cuDNN multiplies them exactly and sums in fp32, and its 16-bit output, rounded to
 * nearest even once, is what the network's own rounding of the fp32 sum would give (up to the summation order).
 * The weight gradient is an fp32 convolution on the float values (cuDNN's 16-bit weight gradient is rounded to 16
 * bits), unless the network rounds it to the format anyway (lowp_weight_grads, conv_cuda_set_weight_grad_precision):
 * then it too runs on tensor cores, x and dy packed, its 16-bit result (the rounding of the fp32 sum) widened and
 * transposed into the float gradient; the input-gradient convolution right after it then uses its 16-bit dy
 * (dy16_packed). Convolutions with a bias (rounding would come before the bias is added), the NCHW stem (3
 * channels) and channel counts that are not multiples of 8 keep the fp32 path. Where cuDNN has no 16-bit algorithm for one of the two directions at some batch size, that batch
 * size runs both on the fp32 path: decided when its plan is made, before either runs, so the arithmetic of a batch
 * size never depends on what ran before it (a resumed run computes what the uninterrupted one did);
 * cuda_lowp_refusals counts such plans. The 16-bit weight gradient is decided on its own, on its first use at a
 * batch size, and falls back to the fp32 one (which the network then rounds) the same way. */
#include "cuda_util.h"
#include "ops_cuda.h"

#include <stdio.h>
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
    Precision lowp; /* the format of the forward and input-gradient convolutions (FP32: float) */
    bool resolved;  /* 16-bit plans: both data directions chosen (at once, see data_plan) */
    bool refused;   /* ... and cuDNN had no 16-bit algorithm for one of them: this batch size runs the fp32 plan */
    bool w_resolved, w_refused; /* the same for the 16-bit weight gradient (filter_plan) */
    Choice fwd, bwd_data, bwd_filter;
} Plan;

/* One set of cuDNN descriptors: the float one, and the 16-bit one of a mixed-precision network. */
typedef struct {
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    int n; /* batch the tensor descriptors describe; 0 = none yet */
} Descs;

struct ConvOp {
    ConvShape s;
    bool bias;
    bool nchw_input; /* input given as NCHW with more than one pixel: goes through x_nhwc */
    Precision lowp;  /* PRECISION_FP32, or the 16-bit format of the forward and input-gradient convolutions */
    Precision wgrad; /* the format the network rounds the weight gradient to (FP32: none) */
    Descs f32, d16;
    Plan *plans;
    int n_plans;
    float *w_ohwi;           /* weights for cuDNN; valid while w_source matches */
    const float *w_source;
    void *w16;               /* w_ohwi in lowp's format, made with it */
    Precision w16_format;    /* the format w16 holds; FP32 = stale */
    float *dw_ohwi;          /* weight gradient in cuDNN's layout, made on first use */
    void *dw16;              /* the same in 16 bits (a 16-bit weight gradient), made on first use */
    float *x_nhwc;           /* the NCHW input transposed (and its gradient), made on first use */
};

/* What 16-bit buffer 1 holds after a 16-bit backward-weights call: its dy, packed. The model runs backward-weights
 * and then backward-data on the same dy (backend.h), so the second call uses that packing, once; every other use
 * of the buffers clears the record first. */
static struct {
    const ConvOp *op;
    const float *from;
    int n;
    Precision format;
} dy16_packed;

static cudnnDataType_t cudnn_type(Precision p) {
    return p == PRECISION_BF16 ? CUDNN_DATA_BFLOAT16 : p == PRECISION_FP16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
}

static void descs_create(Descs *d, const ConvShape *s, Precision p) {
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&d->x));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&d->y));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&d->w));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d->conv));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(d->w, cudnn_type(p), CUDNN_TENSOR_NHWC, s->co, s->ci, s->k, s->k));
    /* the sums are fp32 whatever the operands */
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d->conv, s->pad, s->pad, s->stride, s->stride, 1, 1,
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    d->n = 0;
}

static void descs_destroy(Descs *d) {
    if (!d->x) return;
    CUDNN_CHECK(cudnnDestroyTensorDescriptor(d->x));
    CUDNN_CHECK(cudnnDestroyTensorDescriptor(d->y));
    CUDNN_CHECK(cudnnDestroyFilterDescriptor(d->w));
    CUDNN_CHECK(cudnnDestroyConvolutionDescriptor(d->conv));
}

static size_t weight_count(const ConvShape *s) { return (size_t)s->co * s->ci * s->k * s->k; }
/* Elements of the input and of the output at batch n. */
static size_t input_count(const ConvShape *s, int n) { return (size_t)n * s->ci * s->hi * s->wi; }
static size_t output_count(const ConvShape *s, int n) { return (size_t)n * s->co * s->ho * s->wo; }

ConvOp *conv_cuda_create(const ConvShape *s, Layout in, Layout out, bool bias) {
    RSA_ASSERT(in == LAYOUT_NHWC || in == LAYOUT_NCHW);
    cuda_require_nhwc(out, s->ho * s->wo);
    ConvOp *op = (ConvOp *)calloc(1, sizeof *op);
    if (!op) rsa_fatal("free memory", "out of memory");
    op->s = *s, op->bias = bias;
    op->nchw_input = in == LAYOUT_NCHW && s->hi * s->wi > 1;
    op->lowp = PRECISION_FP32;
    descs_create(&op->f32, s, PRECISION_FP32);
    op->w_ohwi = cuda_alloc_floats(weight_count(s));
    return op;
}

void conv_cuda_destroy(ConvOp *op) {
    if (!op) return;
    if (dy16_packed.op == op) dy16_packed.op = NULL; /* a new op at this address packs afresh */
    descs_destroy(&op->f32);
    descs_destroy(&op->d16);
    cuda_free(op->w_ohwi);
    cuda_free(op->w16);
    cuda_free(op->dw_ohwi);
    cuda_free(op->dw16);
    cuda_free(op->x_nhwc);
    free(op->plans);
    free(op);
}

void conv_cuda_weights_changed(ConvOp *op) { op->w_source = NULL; }

void conv_cuda_set_precision(ConvOp *op, Precision p) {
    /* channels in multiples of 8: what cuDNN's 16-bit NHWC tensor-core kernels take (every ResNet convolution but
     * the stem's) */
    bool eligible = p != PRECISION_FP32 && cuda_lowp_convolutions() && !op->nchw_input && !op->bias &&
                    op->s.ci % 8 == 0 && op->s.co % 8 == 0;
    op->lowp = eligible ? p : PRECISION_FP32;
    if (op->lowp == PRECISION_FP32) return;
    if (op->d16.x) descs_destroy(&op->d16);
    descs_create(&op->d16, &op->s, op->lowp);
    op->w16_format = PRECISION_FP32;
}

void conv_cuda_set_weight_grad_precision(ConvOp *op, Precision p) { op->wgrad = p; }

static void describe_batch(const ConvShape *s, Descs *d, Precision p, int n) {
    RSA_ASSERT(n >= 1 && n <= s->n);
    if (d->n == n) return;
    cudnnDataType_t t = cudnn_type(p);
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(d->x, CUDNN_TENSOR_NHWC, t, n, s->ci, s->hi, s->wi));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(d->y, CUDNN_TENSOR_NHWC, t, n, s->co, s->ho, s->wo));
    int dims[4];
    CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(d->conv, d->x, d->w, &dims[0], &dims[1], &dims[2], &dims[3]));
    RSA_ASSERT(dims[0] == n && dims[1] == s->co && dims[2] == s->ho && dims[3] == s->wo);
    d->n = n;
}

/* The plan for batch n in format lowp under the current settings (valid until the next plan_for: plans grow). */
static Plan *plan_for(ConvOp *op, int n, Precision lowp) {
    describe_batch(&op->s, &op->f32, PRECISION_FP32, n);
    if (lowp != PRECISION_FP32) describe_batch(&op->s, &op->d16, lowp, n);
    bool det = cuda_deterministic(), tf32 = cuda_tf32();
    for (int i = 0; i < op->n_plans; i++) {
        Plan *p = &op->plans[i];
        /* TF32 cannot change a 16-bit plan: keyed on it, a toggle would choose (and count refusals) again */
        if (p->n == n && p->deterministic == det && (lowp != PRECISION_FP32 || p->tf32 == tf32) && p->lowp == lowp)
            return p;
    }
    Plan *grown = (Plan *)realloc(op->plans, sizeof(Plan) * (size_t)(op->n_plans + 1));
    if (!grown) rsa_fatal("free memory", "out of memory");
    op->plans = grown;
    Plan *p = &op->plans[op->n_plans++];
    *p = Plan{};
    p->n = n, p->deterministic = det, p->tf32 = tf32, p->lowp = lowp;
    return p;
}

/* cuDNN's list of algorithms for one direction: as many entries as it may return (one per algorithm and math type). */
template <class Perf> static Perf *perf_list(cudnnStatus_t (*max_count)(cudnnHandle_t, int *), int *max) {
    CUDNN_CHECK(max_count(cuda_cudnn(), max));
    Perf *perf = (Perf *)calloc((size_t)(*max > 0 ? *max : 1), sizeof(Perf));
    if (!perf) rsa_fatal("free memory", "out of memory");
    return perf;
}

/* Whether a status says cuDNN declined to run an algorithm on these descriptors (cuDNN 9 refines each status
 * with a sub-code within its thousand), or had not the GPU memory for it, rather than that the GPU or the call is
 * broken. A null or misaligned pointer is a bug of ours, never a refusal: passing over it would quietly put a
 * 16-bit plan on the fp32 path. */
static bool declined(cudnnStatus_t st) {
#ifdef CUDNN_STATUS_CATEGORY
    int category = CUDNN_STATUS_CATEGORY((int)st);
    if (st == CUDNN_STATUS_BAD_PARAM_NULL_POINTER || st == CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER) return false;
    if (st == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED) return true;
#else
    int category = (int)st;
#endif
    return category == CUDNN_STATUS_NOT_SUPPORTED || category == CUDNN_STATUS_BAD_PARAM ||
           category == CUDNN_STATUS_EXECUTION_FAILED;
}

/* The first usable entry of cuDNN's list (ordered by its heuristics or by measured time), its workspace asked with
 * the entry's math type set on d. With 16-bit operands (lowp) any math keeps the products exact and the sums fp32;
 * when no 16-bit algorithm fits, the result is not chosen (see data_plan). The heuristics list algorithms they have
 * not run, and one of them may still decline the descriptors when called (PyTorch, too, moves on to the next
 * algorithm when a call fails), so each candidate runs once (run: on operands of the right size, its result
 * discarded) before it is chosen. */
static char lowp_refusal[256]; /* the last 16-bit plan cuDNN could not serve, and why */
const char *cuda_lowp_refusal(void) { return lowp_refusal; }

template <class Perf, class WorkspaceQuery, class Run>
static Choice pick(const Descs *d, const Plan *p, bool lowp, const Perf *perf, int count, WorkspaceQuery workspace,
                   Run run, const char *direction, const ConvShape *s) {
    const char *declined_with = NULL; /* the last trial's refusal, for the message when none is left */
    for (int i = 0; i < count; i++) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > WORKSPACE_LIMIT) continue;
        if (p->deterministic && perf[i].determinism != CUDNN_DETERMINISTIC) continue;
        if (perf[i].mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
        if (!lowp && !p->tf32 && perf[i].mathType != CUDNN_FMA_MATH) continue;
        Choice c = {true, (int)perf[i].algo, perf[i].mathType, 0};
        CUDNN_CHECK(cudnnSetConvolutionMathType(d->conv, c.math));
        if (workspace(perf[i].algo, &c.workspace) != CUDNN_STATUS_SUCCESS) continue;
        if (c.workspace > WORKSPACE_LIMIT) continue; /* the size it will allocate, not the list's estimate */
        void *ws = cuda_workspace_try(c.workspace);
        if (!ws && c.workspace) { /* a busy GPU: the next candidate may need less (PyTorch moves on too) */
            declined_with = "not enough free GPU memory for its workspace";
            continue;
        }
        cudnnStatus_t st = run(perf[i].algo, ws, c.workspace);
        if (declined(st)) {
            cudaGetLastError(); /* a launch it refused; a fault in the GPU would stop the next checked call */
            declined_with = cudnnGetErrorString(st);
            continue;
        }
        if (st != CUDNN_STATUS_SUCCESS)
            rsa_fatal(CUDA_HINT, "cuDNN failed running %s algorithm %d of the convolution %dx%d stride %d, %d->%d "
                      "channels: %s", direction, c.algo, s->k, s->k, s->stride, s->ci, s->co, cudnnGetErrorString(st));
        return c;
    }
    if (lowp) {
        snprintf(lowp_refusal, sizeof lowp_refusal, "the %s convolution %dx%d stride %d, %d->%d channels, batch %d: %s",
                 direction, s->k, s->k, s->stride, s->ci, s->co, p->n,
                 declined_with ? declined_with : "no 16-bit algorithm listed");
        return Choice{false, 0, CUDNN_DEFAULT_MATH, 0};
    }
    char why[160] = "";
    if (declined_with) snprintf(why, sizeof why, " (the last one it listed declined when run: %s)", declined_with);
    rsa_fatal("try cuda_set_deterministic(false), or backend \"cpu\"",
              "cuDNN offers no %s%salgorithm for the %s convolution %dx%d stride %d, %d->%d channels, %dx%d input, "
              "batch %d%s", p->deterministic ? "deterministic " : "", p->tf32 ? "" : "strict FP32 ", direction, s->k,
              s->k, s->stride, s->ci, s->co, s->hi, s->wi, p->n, why);
}

/* The math type the descriptor asks for while choosing: strict FP32 is FMA only; TF32 is cuDNN's default for
 * float on Ampere and newer; 16-bit operands ask for tensor cores. */
static void allow_math(const Descs *d, const Plan *p, bool lowp) {
    CUDNN_CHECK(cudnnSetConvolutionMathType(d->conv, lowp     ? CUDNN_TENSOR_OP_MATH
                                                     : p->tf32 ? CUDNN_DEFAULT_MATH
                                                               : CUDNN_FMA_MATH));
}

/* The descriptors of the forward and input-gradient convolutions under plan p. */
static Descs *data_descs(ConvOp *op, const Plan *p) { return p->lowp != PRECISION_FP32 ? &op->d16 : &op->f32; }

/* The choice of one direction under plan p, made on first use into *slot: cuDNN's list for descriptors d (list
 * fills it: heuristics in deterministic mode, cudnnFind otherwise), then pick, whose trials run on the operands of
 * the direction's call (in d's format; their values do not matter, the output is overwritten). NULL: the plan is
 * 16-bit and cuDNN offers no 16-bit algorithm for this shape. */
template <class Perf, class List, class WorkspaceQuery, class Run>
static const Choice *choose(ConvOp *op, const Plan *p, const Descs *d, bool lowp, Choice *slot,
                            cudnnStatus_t (*max_count)(cudnnHandle_t, int *), List list, WorkspaceQuery workspace,
                            Run run, const char *direction) {
    if (slot->chosen) return slot;
    allow_math(d, p, lowp);
    int max = 0, count = 0;
    Perf *perf = perf_list<Perf>(max_count, &max);
    cudnnStatus_t st = list(max, &count, perf);
    if (st != CUDNN_STATUS_SUCCESS) {
        if (!lowp || !declined(st))
            rsa_fatal(CUDA_HINT, "cuDNN cannot list its %s algorithms: %s", direction, cudnnGetErrorString(st));
        count = 0; /* a 16-bit configuration cuDNN rejects outright: the batch size runs on the fp32 plan */
    }
    *slot = pick(d, p, lowp, perf, count, workspace, run, direction, &op->s);
    free(perf);
    return slot->chosen ? slot : NULL;
}

static const Choice *forward_choice(ConvOp *op, Plan *p, const void *x, const void *w, void *y) {
    const Descs *d = data_descs(op, p);
    auto list = [d, p](int max, int *count, cudnnConvolutionFwdAlgoPerf_t *perf) {
        cudnnHandle_t h = cuda_cudnn();
        if (p->deterministic)
            return cudnnGetConvolutionForwardAlgorithm_v7(h, d->x, d->w, d->conv, d->y, max, count, perf);
        return cudnnFindConvolutionForwardAlgorithm(h, d->x, d->w, d->conv, d->y, max, count, perf);
    };
    auto workspace = [d](cudnnConvolutionFwdAlgo_t algo, size_t *bytes) {
        return cudnnGetConvolutionForwardWorkspaceSize(cuda_cudnn(), d->x, d->w, d->conv, d->y, algo, bytes);
    };
    auto run = [d, x, w, y](cudnnConvolutionFwdAlgo_t algo, void *ws, size_t bytes) {
        const float one = 1, zero = 0;
        return cudnnConvolutionForward(cuda_cudnn(), &one, d->x, x, d->w, w, d->conv, algo, ws, bytes, &zero, d->y, y);
    };
    return choose<cudnnConvolutionFwdAlgoPerf_t>(op, p, d, p->lowp != PRECISION_FP32, &p->fwd,
                                                 cudnnGetConvolutionForwardAlgorithmMaxCount, list, workspace, run,
                                                 "forward");
}

static const Choice *backward_data_choice(ConvOp *op, Plan *p, const void *w, const void *dy, void *dx) {
    const Descs *d = data_descs(op, p);
    auto list = [d, p](int max, int *count, cudnnConvolutionBwdDataAlgoPerf_t *perf) {
        cudnnHandle_t h = cuda_cudnn();
        if (p->deterministic)
            return cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d->w, d->y, d->conv, d->x, max, count, perf);
        return cudnnFindConvolutionBackwardDataAlgorithm(h, d->w, d->y, d->conv, d->x, max, count, perf);
    };
    auto workspace = [d](cudnnConvolutionBwdDataAlgo_t algo, size_t *bytes) {
        return cudnnGetConvolutionBackwardDataWorkspaceSize(cuda_cudnn(), d->w, d->y, d->conv, d->x, algo, bytes);
    };
    auto run = [d, w, dy, dx](cudnnConvolutionBwdDataAlgo_t algo, void *ws, size_t bytes) {
        const float one = 1, zero = 0;
        return cudnnConvolutionBackwardData(cuda_cudnn(), &one, d->w, w, d->y, dy, d->conv, algo, ws, bytes, &zero,
                                            d->x, dx);
    };
    return choose<cudnnConvolutionBwdDataAlgoPerf_t>(op, p, d, p->lowp != PRECISION_FP32, &p->bwd_data,
                                                     cudnnGetConvolutionBackwardDataAlgorithmMaxCount, list,
                                                     workspace, run, "backward-data");
}

/* On the float descriptors, or the 16-bit ones under a 16-bit plan (see filter_plan). NULL: the plan is 16-bit and
 * cuDNN offers no 16-bit algorithm. */
static const Choice *backward_filter_choice(ConvOp *op, Plan *p, const void *x, const void *dy, void *dw) {
    const Descs *d = data_descs(op, p);
    auto list = [d, p](int max, int *count, cudnnConvolutionBwdFilterAlgoPerf_t *perf) {
        cudnnHandle_t h = cuda_cudnn();
        if (p->deterministic)
            return cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d->x, d->y, d->conv, d->w, max, count, perf);
        return cudnnFindConvolutionBackwardFilterAlgorithm(h, d->x, d->y, d->conv, d->w, max, count, perf);
    };
    auto workspace = [d](cudnnConvolutionBwdFilterAlgo_t algo, size_t *bytes) {
        return cudnnGetConvolutionBackwardFilterWorkspaceSize(cuda_cudnn(), d->x, d->y, d->conv, d->w, algo, bytes);
    };
    auto run = [d, x, dy, dw](cudnnConvolutionBwdFilterAlgo_t algo, void *ws, size_t bytes) {
        const float one = 1, zero = 0;
        return cudnnConvolutionBackwardFilter(cuda_cudnn(), &one, d->x, x, d->y, dy, d->conv, algo, ws, bytes, &zero,
                                              d->w, dw);
    };
    return choose<cudnnConvolutionBwdFilterAlgoPerf_t>(op, p, d, p->lowp != PRECISION_FP32, &p->bwd_filter,
                                                       cudnnGetConvolutionBackwardFilterAlgorithmMaxCount, list,
                                                       workspace, run, "backward-weights");
}

/* The descriptor runs each algorithm under the math type it was chosen with. */
static void *prepare(const Descs *d, const Choice *c) {
    CUDNN_CHECK(cudnnSetConvolutionMathType(d->conv, c->math));
    return cuda_workspace(c->workspace);
}

static const float *weights_ohwi(ConvOp *op, const float *w) {
    if (op->w_source != w) {
        /* [co][ci][k*k] -> [co][k*k][ci] */
        transpose_cuda(op->s.co, op->s.ci, op->s.k * op->s.k, w, op->w_ohwi, false);
        op->w_source = w;
        op->w16_format = PRECISION_FP32;
    }
    return op->w_ohwi;
}

/* The OHWI weights in the op's 16-bit format. */
static const void *weights_16(ConvOp *op, const float *w) {
    const float *ohwi = weights_ohwi(op, w);
    if (op->w16_format != op->lowp) {
        if (!op->w16) op->w16 = cuda_alloc_floats((weight_count(&op->s) + 1) / 2);
        to_lowp_cuda(op->lowp, weight_count(&op->s), ohwi, op->w16);
        op->w16_format = op->lowp;
    }
    return op->w16;
}

static float *nhwc_buffer(ConvOp *op) {
    const ConvShape *s = &op->s;
    if (!op->x_nhwc) op->x_nhwc = cuda_alloc_floats(input_count(s, s->n));
    return op->x_nhwc;
}

/* The input as NHWC: x itself, or x transposed into the op's buffer. */
static const float *input_nhwc(ConvOp *op, int n, const float *x) {
    if (!op->nchw_input) return x;
    /* [n][ci][hw] -> [n][hw][ci] */
    transpose_cuda(n, op->s.ci, op->s.hi * op->s.wi, x, nhwc_buffer(op), false);
    return op->x_nhwc;
}

static int lowp_refusals;
int cuda_lowp_refusals(void) { return lowp_refusals; }

/* The two 16-bit operand buffers, each large enough for either side of the op's convolutions at batch n: what a
 * 16-bit plan's trial runs use when the plan is made (the calls then take the same buffers, so no memory is added). */
static void operands_16(const ConvOp *op, int n, void **a, void **b) {
    dy16_packed.op = NULL;
    size_t nx = input_count(&op->s, n), ny = output_count(&op->s, n), most = nx > ny ? nx : ny;
    *a = cuda_lowp_buffer(0, most), *b = cuda_lowp_buffer(1, most);
}

static void *weight_grad_16(ConvOp *op) {
    if (!op->dw16) op->dw16 = cuda_alloc_floats((weight_count(&op->s) + 1) / 2);
    return op->dw16;
}

/* The plan of the forward and input-gradient convolutions at batch n (w: the weights). A 16-bit plan chooses both
 * directions when it is made: if cuDNN cannot serve one of them in 16 bits, the batch size runs both on the fp32
 * plan from the start, whatever ran before. */
static Plan *data_plan(ConvOp *op, int n, const float *w) {
    if (op->lowp != PRECISION_FP32) {
        Plan *p = plan_for(op, n, op->lowp);
        if (!p->resolved) {
            p->resolved = true;
            void *a, *b;
            operands_16(op, n, &a, &b);
            const void *w16 = weights_16(op, w);
            p->refused = !forward_choice(op, p, a, w16, b) || !backward_data_choice(op, p, w16, a, b);
            if (p->refused) lowp_refusals++;
        }
        if (!p->refused) return p;
    }
    return plan_for(op, n, PRECISION_FP32);
}

/* The plan of the weight gradient at batch n: 16-bit when the op's convolutions are and the network rounds the
 * weight gradient to their format, unless cuDNN has no 16-bit algorithm for it at this batch size (decided on
 * first use, whatever ran before); else fp32. */
static Plan *filter_plan(ConvOp *op, int n) {
    if (op->lowp != PRECISION_FP32 && op->wgrad == op->lowp) {
        Plan *p = plan_for(op, n, op->lowp);
        if (!p->w_resolved) {
            p->w_resolved = true;
            void *a, *b;
            operands_16(op, n, &a, &b);
            p->w_refused = !backward_filter_choice(op, p, a, b, weight_grad_16(op));
            if (p->w_refused) lowp_refusals++;
        }
        if (!p->w_refused) return p;
    }
    return plan_for(op, n, PRECISION_FP32);
}

void conv_cuda_forward(ConvOp *op, int n, const float *x, const float *w, const float *bias, float *y) {
    dy16_packed.op = NULL;
    Plan *p = data_plan(op, n, w);
    const Descs *d = data_descs(op, p);
    const float one = 1, zero = 0;
    if (p->lowp != PRECISION_FP32) { /* 16-bit x and weights in, 16-bit y out, widened into the float y */
        size_t nx = input_count(&op->s, n), ny = output_count(&op->s, n);
        const void *w16 = weights_16(op, w);
        void *x16 = cuda_lowp_buffer(0, nx), *y16 = cuda_lowp_buffer(1, ny);
        to_lowp_cuda(p->lowp, nx, x, x16);
        const Choice *c = forward_choice(op, p, x16, w16, y16);
        void *ws = prepare(d, c);
        CUDNN_CHECK(cudnnConvolutionForward(cuda_cudnn(), &one, d->x, x16, d->w, w16, d->conv,
                                            (cudnnConvolutionFwdAlgo_t)c->algo, ws, c->workspace, &zero, d->y, y16));
        from_lowp_cuda(p->lowp, ny, y16, y);
        return;
    }
    const float *xn = input_nhwc(op, n, x), *wn = weights_ohwi(op, w);
    const Choice *c = forward_choice(op, p, xn, wn, y);
    void *ws = prepare(d, c);
    CUDNN_CHECK(cudnnConvolutionForward(cuda_cudnn(), &one, d->x, xn, d->w, wn, d->conv,
                                        (cudnnConvolutionFwdAlgo_t)c->algo, ws, c->workspace, &zero, d->y, y));
    if (op->bias && bias) bias_cuda_add((size_t)n * op->s.ho * op->s.wo, op->s.co, bias, y);
}

void conv_cuda_backward_data(ConvOp *op, int n, const float *dy, const float *w, float *dx) {
    Plan *p = data_plan(op, n, w); /* (a plan made now runs trials, which clear the record) */
    bool packed = dy16_packed.op == op && dy16_packed.from == dy && dy16_packed.n == n &&
                  dy16_packed.format == p->lowp;
    dy16_packed.op = NULL;
    const Descs *d = data_descs(op, p);
    const float one = 1, zero = 0;
    if (p->lowp != PRECISION_FP32) {
        size_t nx = input_count(&op->s, n), ny = output_count(&op->s, n);
        const void *w16 = weights_16(op, w);
        void *dy16 = cuda_lowp_buffer(1, ny), *dx16 = cuda_lowp_buffer(0, nx);
        if (!packed) to_lowp_cuda(p->lowp, ny, dy, dy16);
        const Choice *c = backward_data_choice(op, p, w16, dy16, dx16);
        void *ws = prepare(d, c);
        CUDNN_CHECK(cudnnConvolutionBackwardData(cuda_cudnn(), &one, d->w, w16, d->y, dy16, d->conv,
                                                 (cudnnConvolutionBwdDataAlgo_t)c->algo, ws, c->workspace, &zero,
                                                 d->x, dx16));
        from_lowp_cuda(p->lowp, nx, dx16, dx);
        return;
    }
    const float *wn = weights_ohwi(op, w);
    float *dxn = op->nchw_input ? nhwc_buffer(op) : dx;
    const Choice *c = backward_data_choice(op, p, wn, dy, dxn);
    void *ws = prepare(d, c);
    CUDNN_CHECK(cudnnConvolutionBackwardData(cuda_cudnn(), &one, d->w, wn, d->y, dy, d->conv,
                                             (cudnnConvolutionBwdDataAlgo_t)c->algo, ws, c->workspace, &zero, d->x,
                                             dxn));
    /* [n][hw][ci] -> [n][ci][hw] */
    if (op->nchw_input) transpose_cuda(n, op->s.hi * op->s.wi, op->s.ci, dxn, dx, false);
}

void conv_cuda_backward_weights(ConvOp *op, int n, const float *x, const float *dy, float *dw, float *dbias) {
    const ConvShape *s = &op->s;
    dy16_packed.op = NULL;
    if (dw) {
        Plan *p = filter_plan(op, n);
        const Descs *d = data_descs(op, p);
        const float one = 1, zero = 0;
        if (p->lowp != PRECISION_FP32) { /* 16-bit x and dy in, the 16-bit weight gradient out */
            size_t nx = input_count(s, n), ny = output_count(s, n);
            void *x16 = cuda_lowp_buffer(0, nx), *dy16 = cuda_lowp_buffer(1, ny);
            to_lowp_cuda(p->lowp, nx, x, x16);
            to_lowp_cuda(p->lowp, ny, dy, dy16);
            dy16_packed.op = op, dy16_packed.from = dy, dy16_packed.n = n, dy16_packed.format = p->lowp;
            void *dw16 = weight_grad_16(op);
            const Choice *c = backward_filter_choice(op, p, x16, dy16, dw16);
            void *ws = prepare(d, c);
            CUDNN_CHECK(cudnnConvolutionBackwardFilter(cuda_cudnn(), &one, d->x, x16, d->y, dy16, d->conv,
                                                       (cudnnConvolutionBwdFilterAlgo_t)c->algo, ws, c->workspace,
                                                       &zero, d->w, dw16));
            /* dw[co][ci][k*k] += dw16[co][k*k][ci], widened */
            transpose_lowp_cuda(p->lowp, s->co, s->k * s->k, s->ci, dw16, dw, true);
            return; /* no bias: a biased convolution keeps the fp32 path */
        }
        const float *xn = input_nhwc(op, n, x);
        if (!op->dw_ohwi) op->dw_ohwi = cuda_alloc_floats(weight_count(s));
        const Choice *c = backward_filter_choice(op, p, xn, dy, op->dw_ohwi);
        void *ws = prepare(d, c);
        CUDNN_CHECK(cudnnConvolutionBackwardFilter(cuda_cudnn(), &one, d->x, xn, d->y, dy, d->conv,
                                                   (cudnnConvolutionBwdFilterAlgo_t)c->algo, ws, c->workspace, &zero,
                                                   d->w, op->dw_ohwi));
        /* dw[co][ci][k*k] += dw_ohwi[co][k*k][ci] */
        transpose_cuda(s->co, s->k * s->k, s->ci, op->dw_ohwi, dw, true);
    }
    if (op->bias && dbias) bias_cuda_backward((size_t)n * s->ho * s->wo, s->co, dy, dbias);
}
