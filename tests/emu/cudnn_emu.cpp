/* cuDNN's legacy convolution API, as conv_cuda.cu and cuda_context.cu call it, on the CPU: so that the cuda
 * backend's own host code (descriptors, algorithm lists and choice, workspaces, 16-bit operand copies, the weight
 * layouts) runs in the emulated tests as on a GPU.
 *
 * Arithmetic: float, half or bfloat16 operands widened to float (exact), products summed in fp32 in a fixed order,
 * the result rounded once to the output's type; under any math type but CUDNN_FMA_MATH, float operands are first
 * rounded to TF32, as tensor cores read them. Algorithms: a small fixed catalogue per direction, in which the
 * heuristics (..._v7) and the measured order (cudnnFind...) differ, as on a GPU; it holds what conv_cuda.cu's choice
 * must pass over (a status other than success, a workspace over its limit, CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION,
 * non-FMA math under strict FP32, nondeterministic algorithms in deterministic mode) and a forward algorithm that
 * the list offers but that declines 16-bit descriptors at an odd batch size when run (cuDNN's do decline some
 * shapes only when run). Nondeterministic algorithms sum in the opposite order, so their bits differ from the
 * deterministic ones', as on a GPU. A test hook (cudnn_emu.h) makes one direction's lists hold no usable 16-bit
 * algorithm at one batch size, as cuDNN's do for some shapes, so that the backend's fall-back to fp32 is tested.
 *
 * Checks, each a stop with the call's name or a status cuDNN would return: descriptors set and consistent (shapes,
 * types, the output size), the operands and the workspace in device memory with the extent their descriptors say
 * (runtime_emu.cpp), the workspace at least what the query said, the run's algorithm listed for the descriptor's
 * current math type, and no backward algorithm for NHWC activations with an NCHW (OIHW) filter, which cuDNN 9 does
 * not have (measured on an H100; conv_cuda.cu keeps OHWI copies because of it). Not emulated: speed, cuDNN's own
 * numerics (Winograd, FFT), and refusals that depend on the GPU. */
#include "cuda_emu.h"
#include "cudnn_emu.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <vector>

struct cudnnContext {
    int alive;
};

struct cudnnTensorStruct {
    bool set;
    cudnnTensorFormat_t format;
    cudnnDataType_t type;
    int n, c, h, w;
};

struct cudnnFilterStruct {
    bool set;
    cudnnDataType_t type;
    cudnnTensorFormat_t format;
    int k, c, r, s;
};

struct cudnnConvolutionStruct {
    bool set;
    int pad_h, pad_w, u, v, dil_h, dil_w;
    cudnnConvolutionMode_t mode;
    cudnnDataType_t compute;
    cudnnMathType_t math;
};

namespace {

/* One entry of an algorithm list. */
struct Algo {
    int algo;
    cudnnDeterminism_t determinism;
    cudnnMathType_t math;
    size_t workspace; /* bytes */
    cudnnStatus_t status;
};

constexpr size_t KiB = 1024, GiB = (size_t)1 << 30;
constexpr cudnnDeterminism_t DET = CUDNN_DETERMINISTIC, NONDET = CUDNN_NON_DETERMINISTIC;
constexpr cudnnStatus_t OK = CUDNN_STATUS_SUCCESS, UNSUPPORTED = CUDNN_STATUS_NOT_SUPPORTED;

/* heuristics' order, then the measured order; every (algorithm, math) pair of a direction is in both */
const std::vector<Algo> FWD_HEURISTIC = {
    {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, DET, CUDNN_TENSOR_OP_MATH, 64 * KiB, OK},
    {CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED, DET, CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION, 0, OK},
    {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, DET, CUDNN_FMA_MATH, 0, OK},
    {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, DET, CUDNN_TENSOR_OP_MATH, 0, OK},
    {CUDNN_CONVOLUTION_FWD_ALGO_FFT, DET, CUDNN_FMA_MATH, 3 * GiB, OK},
    {CUDNN_CONVOLUTION_FWD_ALGO_GEMM, DET, CUDNN_FMA_MATH, 0, UNSUPPORTED},
};
const std::vector<Algo> FWD_MEASURED = {
    {CUDNN_CONVOLUTION_FWD_ALGO_FFT, DET, CUDNN_FMA_MATH, 3 * GiB, OK},
    {CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED, DET, CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION, 0, OK},
    {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, DET, CUDNN_TENSOR_OP_MATH, 0, OK},
    {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, DET, CUDNN_TENSOR_OP_MATH, 64 * KiB, OK},
    {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, DET, CUDNN_FMA_MATH, 0, OK},
    {CUDNN_CONVOLUTION_FWD_ALGO_GEMM, DET, CUDNN_FMA_MATH, 0, UNSUPPORTED},
};
const std::vector<Algo> DATA_HEURISTIC = {
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, DET, CUDNN_TENSOR_OP_MATH, 32 * KiB, OK},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, NONDET, CUDNN_FMA_MATH, 0, OK},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, DET, CUDNN_FMA_MATH, 16 * KiB, OK},
};
const std::vector<Algo> DATA_MEASURED = {
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, NONDET, CUDNN_FMA_MATH, 0, OK},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, DET, CUDNN_TENSOR_OP_MATH, 32 * KiB, OK},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, DET, CUDNN_FMA_MATH, 16 * KiB, OK},
};
const std::vector<Algo> FILTER_HEURISTIC = {
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, DET, CUDNN_TENSOR_OP_MATH, 48 * KiB, OK},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, NONDET, CUDNN_FMA_MATH, 0, OK},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, DET, CUDNN_FMA_MATH, 0, OK},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3, NONDET, CUDNN_TENSOR_OP_MATH, 8 * KiB, OK},
};
const std::vector<Algo> FILTER_MEASURED = {
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3, NONDET, CUDNN_TENSOR_OP_MATH, 8 * KiB, OK},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, NONDET, CUDNN_FMA_MATH, 0, OK},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, DET, CUDNN_TENSOR_OP_MATH, 48 * KiB, OK},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, DET, CUDNN_FMA_MATH, 0, OK},
};

/* A misuse by the caller: said on stderr (a quiet status could be taken for a refusal and passed over), returned. */
cudnnStatus_t misuse(cudnnStatus_t st, const char *call, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::fprintf(stderr, "cuDNN emulation: %s: ", call);
    std::vfprintf(stderr, fmt, ap);
    std::fputc('\n', stderr);
    va_end(ap);
    return st;
}

bool supported_type(cudnnDataType_t t) {
    return t == CUDNN_DATA_FLOAT || t == CUDNN_DATA_HALF || t == CUDNN_DATA_BFLOAT16;
}

size_t type_bytes(cudnnDataType_t t) { return t == CUDNN_DATA_FLOAT ? 4 : 2; }

float load(cudnnDataType_t t, const void *p, size_t i) {
    if (t == CUDNN_DATA_FLOAT) return ((const float *)p)[i];
    if (t == CUDNN_DATA_HALF) return __half2float(((const __half *)p)[i]);
    return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
}

void store(cudnnDataType_t t, void *p, size_t i, float v) {
    if (t == CUDNN_DATA_FLOAT) ((float *)p)[i] = v;
    else if (t == CUDNN_DATA_HALF) ((__half *)p)[i] = __float2half_rn(v);
    else ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
}

size_t tensor_count(const cudnnTensorStruct *t) { return (size_t)t->n * t->c * t->h * t->w; }
size_t filter_count(const cudnnFilterStruct *f) { return (size_t)f->k * f->c * f->r * f->s; }

size_t tensor_index(const cudnnTensorStruct *t, int n, int c, int h, int w) {
    return t->format == CUDNN_TENSOR_NHWC ? (((size_t)n * t->h + h) * t->w + w) * t->c + c
                                          : (((size_t)n * t->c + c) * t->h + h) * t->w + w;
}

size_t filter_index(const cudnnFilterStruct *f, int k, int c, int r, int s) {
    return f->format == CUDNN_TENSOR_NHWC ? (((size_t)k * f->r + r) * f->s + s) * f->c + c
                                          : (((size_t)k * f->c + c) * f->r + r) * f->s + s;
}

/* The descriptors of one convolution, checked against each other. */
struct Conv {
    const cudnnTensorStruct *x, *y;
    const cudnnFilterStruct *w;
    const cudnnConvolutionStruct *cv;
    bool tf32; /* float operands read as TF32 */
};

cudnnStatus_t check(const char *call, const Conv &c, bool backward) {
    if (!c.x || !c.y || !c.w || !c.cv || !c.x->set || !c.y->set || !c.w->set || !c.cv->set)
        return misuse(CUDNN_STATUS_BAD_PARAM, call, "a descriptor missing or never set");
    if (c.x->type != c.w->type || c.y->type != c.w->type)
        return misuse(CUDNN_STATUS_BAD_PARAM, call, "x, w and y of different data types (%d, %d, %d)", c.x->type,
                      c.w->type, c.y->type);
    if (c.cv->compute != CUDNN_DATA_FLOAT)
        return misuse(CUDNN_STATUS_NOT_SUPPORTED, call, "only fp32 sums are emulated (the backend asks for them)");
    if (c.cv->mode != CUDNN_CROSS_CORRELATION)
        return misuse(CUDNN_STATUS_NOT_SUPPORTED, call, "only cross-correlation is emulated");
    const int ho = (c.x->h + 2 * c.cv->pad_h - c.cv->dil_h * (c.w->r - 1) - 1) / c.cv->u + 1;
    const int wo = (c.x->w + 2 * c.cv->pad_w - c.cv->dil_w * (c.w->s - 1) - 1) / c.cv->v + 1;
    if (c.x->n != c.y->n || c.x->c != c.w->c || c.y->c != c.w->k || c.y->h != ho || c.y->w != wo)
        return misuse(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH, call,
                      "x %dx%dx%dx%d, w %dx%dx%dx%d, y %dx%dx%dx%d do not fit (y should be %dx%dx%dx%d)", c.x->n,
                      c.x->c, c.x->h, c.x->w, c.w->k, c.w->c, c.w->r, c.w->s, c.y->n, c.y->c, c.y->h, c.y->w, c.x->n,
                      c.w->k, ho, wo);
    if (backward && c.x->format == CUDNN_TENSOR_NHWC && c.w->format == CUDNN_TENSOR_NCHW)
        return CUDNN_STATUS_NOT_SUPPORTED; /* cuDNN 9 has none (see the top) */
    return CUDNN_STATUS_SUCCESS;
}

Conv conv_of(const cudnnTensorStruct *x, const cudnnFilterStruct *w, const cudnnConvolutionStruct *cv,
             const cudnnTensorStruct *y) {
    return Conv{x, y, w, cv, x && cv && x->type == CUDNN_DATA_FLOAT && cv->math != CUDNN_FMA_MATH};
}

const Algo *find_algo(const std::vector<Algo> &list, int algo, cudnnMathType_t math) {
    for (const Algo &a : list)
        if (a.algo == algo && a.math == math) return &a;
    return nullptr;
}

int declined_direction = -1, declined_batch; /* cudnn_emu_decline_16bit */

/* A list as cuDNN returns it; for `direction` on descriptors x (the activations) when the test hook says so, with
 * every entry's status NOT_SUPPORTED. */
template <class Perf, class AlgoEnum>
cudnnStatus_t report(const std::vector<Algo> &list, int direction, const cudnnTensorStruct *x, int requested,
                     int *returned, Perf *perf) {
    const bool none = direction == declined_direction && x->type != CUDNN_DATA_FLOAT && x->n == declined_batch;
    int n = 0;
    for (const Algo &a : list) {
        if (n >= requested) break;
        Perf p{};
        p.algo = (AlgoEnum)a.algo;
        p.status = none ? CUDNN_STATUS_NOT_SUPPORTED : a.status;
        p.time = a.status == OK ? 0.1f * (float)(n + 1) : -1.0f;
        p.memory = a.workspace;
        p.determinism = a.determinism;
        p.mathType = a.math;
        perf[n++] = p;
    }
    *returned = n;
    return CUDNN_STATUS_SUCCESS;
}

/* An algorithm-list call: the descriptors checked, then `list` as cuDNN returns it. */
template <class Perf, class AlgoEnum>
cudnnStatus_t list_call(const char *call, cudnnHandle_t h, const Conv &c, bool backward, const std::vector<Algo> &list,
                        int direction, int requested, int *returned, Perf *perf) {
    cudnnStatus_t st = h ? check(call, c, backward) : CUDNN_STATUS_BAD_PARAM;
    if (st != CUDNN_STATUS_SUCCESS) return st;
    return report<Perf, AlgoEnum>(list, direction, c.x, requested, returned, perf);
}

/* A workspace query: the descriptors checked, then the workspace of `algo` under the descriptor's math type. */
cudnnStatus_t workspace_call(const char *call, cudnnHandle_t h, const Conv &c, bool backward,
                             const std::vector<Algo> &list, int algo, size_t *bytes) {
    cudnnStatus_t st = h ? check(call, c, backward) : CUDNN_STATUS_BAD_PARAM;
    if (st != CUDNN_STATUS_SUCCESS) return st;
    const Algo *a = find_algo(list, algo, c.cv->math);
    if (!a || a->status != OK) return CUDNN_STATUS_NOT_SUPPORTED;
    *bytes = a->workspace;
    return CUDNN_STATUS_SUCCESS;
}

/* What a run needs before it computes: its algorithm listed for the current math type, the workspace, the operands
 * on the device. `declines` marks a listed algorithm that turns these descriptors down only when run. */
cudnnStatus_t prepare_run(const char *call, const std::vector<Algo> &list, int algo, const Conv &c, void *ws,
                          size_t ws_bytes, bool declines) {
    const Algo *a = find_algo(list, algo, c.cv->math);
    if (!a || a->status != OK) return CUDNN_STATUS_NOT_SUPPORTED;
    if (a->workspace > ws_bytes || (a->workspace && !ws))
        return misuse(CUDNN_STATUS_BAD_PARAM, call, "algorithm %d wants %zu bytes of workspace, given %zu at %p", algo,
                      a->workspace, ws_bytes, ws);
    if (a->workspace) emu::need_device(ws, a->workspace, call, "the workspace is not device memory, or too short");
    if (declines) return CUDNN_STATUS_NOT_SUPPORTED_SHAPE;
    return CUDNN_STATUS_SUCCESS;
}

bool reversed(const Algo *a) { return a && a->determinism == NONDET; }

/* Operands widened to float in NHWC / KRSC order (TF32-rounded where the math type says so). */
std::vector<float> widen_tensor(const cudnnTensorStruct *t, const void *p, bool tf32) {
    std::vector<float> out(tensor_count(t));
    size_t i = 0;
    for (int n = 0; n < t->n; n++)
        for (int h = 0; h < t->h; h++)
            for (int w = 0; w < t->w; w++)
                for (int c = 0; c < t->c; c++) {
                    float v = load(t->type, p, tensor_index(t, n, c, h, w));
                    out[i++] = tf32 ? emu::tf32(v) : v;
                }
    return out;
}

std::vector<float> widen_filter(const cudnnFilterStruct *f, const void *p, bool tf32) {
    std::vector<float> out(filter_count(f));
    size_t i = 0;
    for (int k = 0; k < f->k; k++)
        for (int r = 0; r < f->r; r++)
            for (int s = 0; s < f->s; s++)
                for (int c = 0; c < f->c; c++) {
                    float v = load(f->type, p, filter_index(f, k, c, r, s));
                    out[i++] = tf32 ? emu::tf32(v) : v;
                }
    return out;
}

/* acc[i] += a * x[i]: every element's own sum in order, the loop one vector operation per term */
inline void axpy(int n, float a, const float *x, float *acc) {
    for (int i = 0; i < n; i++) acc[i] += a * x[i];
}

/* KRSC weights as [r][s][c][k]. */
std::vector<float> filter_rsck(const cudnnFilterStruct *f, const std::vector<float> &krsc) {
    std::vector<float> out(krsc.size());
    for (int k = 0; k < f->k; k++)
        for (int r = 0; r < f->r; r++)
            for (int s = 0; s < f->s; s++)
                for (int c = 0; c < f->c; c++)
                    out[(((size_t)r * f->s + s) * f->c + c) * f->k + k] =
                        krsc[(((size_t)k * f->r + r) * f->s + s) * f->c + c];
    return out;
}

/* out = alpha * sum + beta * out, rounded once to out's type; beta 0 does not read out (it may hold anything). */
void blend(cudnnDataType_t t, void *out, size_t i, float sum, float alpha, float beta) {
    store(t, out, i, beta == 0 ? alpha * sum : alpha * sum + beta * load(t, out, i));
}

/* index i of a loop over n items, run forwards or backwards */
inline int order(int i, int n, bool rev) { return rev ? n - 1 - i : i; }

} // namespace

extern "C" void cudnn_emu_decline_16bit(int direction, int n) {
    declined_direction = n ? direction : -1, declined_batch = n;
}

/* ---- handle, version, errors ---- */

extern "C" cudnnStatus_t cudnnCreate(cudnnHandle_t *handle) {
    *handle = new cudnnContext{1};
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
    delete handle;
    return CUDNN_STATUS_SUCCESS;
}

extern "C" size_t cudnnGetVersion(void) { return CUDNN_VERSION; }

extern "C" const char *cudnnGetErrorString(cudnnStatus_t status) {
    switch (CUDNN_STATUS_CATEGORY((int)status)) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM (emulated)";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED (emulated)";
    default: return "CUDNN_STATUS_INTERNAL_ERROR (emulated)";
    }
}

/* ---- descriptors ---- */

extern "C" cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *d) {
    *d = new cudnnTensorStruct{};
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) {
    delete d;
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t format,
                                                   cudnnDataType_t type, int n, int c, int h, int w) {
    if (!d || n < 1 || c < 1 || h < 1 || w < 1 || !supported_type(type) ||
        (format != CUDNN_TENSOR_NCHW && format != CUDNN_TENSOR_NHWC))
        return misuse(CUDNN_STATUS_BAD_PARAM, "cudnnSetTensor4dDescriptor", "%dx%dx%dx%d, type %d, format %d", n, c,
                      h, w, type, format);
    *d = cudnnTensorStruct{true, format, type, n, c, h, w};
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *d) {
    *d = new cudnnFilterStruct{};
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) {
    delete d;
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t type,
                                                   cudnnTensorFormat_t format, int k, int c, int h, int w) {
    if (!d || k < 1 || c < 1 || h < 1 || w < 1 || !supported_type(type) ||
        (format != CUDNN_TENSOR_NCHW && format != CUDNN_TENSOR_NHWC))
        return misuse(CUDNN_STATUS_BAD_PARAM, "cudnnSetFilter4dDescriptor", "%dx%dx%dx%d, type %d, format %d", k, c,
                      h, w, type, format);
    *d = cudnnFilterStruct{true, type, format, k, c, h, w};
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *d) {
    *d = new cudnnConvolutionStruct{};
    (*d)->math = CUDNN_DEFAULT_MATH;
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) {
    delete d;
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int pad_h, int pad_w, int u,
                                                        int v, int dil_h, int dil_w, cudnnConvolutionMode_t mode,
                                                        cudnnDataType_t compute) {
    if (!d || pad_h < 0 || pad_w < 0 || u < 1 || v < 1 || dil_h < 1 || dil_w < 1)
        return misuse(CUDNN_STATUS_BAD_PARAM, "cudnnSetConvolution2dDescriptor",
                      "pad %d,%d stride %d,%d dilation %d,%d", pad_h, pad_w, u, v, dil_h, dil_w);
    d->set = true;
    d->pad_h = pad_h, d->pad_w = pad_w, d->u = u, d->v = v, d->dil_h = dil_h, d->dil_w = dil_w;
    d->mode = mode, d->compute = compute;
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t math) {
    if (!d) return misuse(CUDNN_STATUS_BAD_PARAM, "cudnnSetConvolutionMathType", "no descriptor");
    d->math = math;
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t cv,
                                                              const cudnnTensorDescriptor_t x,
                                                              const cudnnFilterDescriptor_t w, int *n, int *c,
                                                              int *h, int *wo) {
    if (!cv || !x || !w || !cv->set || !x->set || !w->set || x->c != w->c)
        return misuse(CUDNN_STATUS_BAD_PARAM, "cudnnGetConvolution2dForwardOutputDim", "descriptors unset or unfit");
    *n = x->n, *c = w->k;
    *h = (x->h + 2 * cv->pad_h - cv->dil_h * (w->r - 1) - 1) / cv->u + 1;
    *wo = (x->w + 2 * cv->pad_w - cv->dil_w * (w->s - 1) - 1) / cv->v + 1;
    return CUDNN_STATUS_SUCCESS;
}

/* ---- forward ---- */

extern "C" cudnnStatus_t cudnnGetConvolutionForwardAlgorithmMaxCount(cudnnHandle_t h, int *count) {
    (void)h;
    *count = (int)FWD_HEURISTIC.size();
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                               const cudnnFilterDescriptor_t w,
                                                               const cudnnConvolutionDescriptor_t cv,
                                                               const cudnnTensorDescriptor_t y, const int requested,
                                                               int *returned, cudnnConvolutionFwdAlgoPerf_t *perf) {
    return list_call<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(
        __func__, h, conv_of(x, w, cv, y), false, FWD_HEURISTIC, CUDNN_EMU_FORWARD, requested, returned, perf);
}

extern "C" cudnnStatus_t cudnnFindConvolutionForwardAlgorithm(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                             const cudnnFilterDescriptor_t w,
                                                             const cudnnConvolutionDescriptor_t cv,
                                                             const cudnnTensorDescriptor_t y, const int requested,
                                                             int *returned, cudnnConvolutionFwdAlgoPerf_t *perf) {
    return list_call<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(
        __func__, h, conv_of(x, w, cv, y), false, FWD_MEASURED, CUDNN_EMU_FORWARD, requested, returned, perf);
}

extern "C" cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                                const cudnnFilterDescriptor_t w,
                                                                const cudnnConvolutionDescriptor_t cv,
                                                                const cudnnTensorDescriptor_t y,
                                                                cudnnConvolutionFwdAlgo_t algo, size_t *bytes) {
    return workspace_call(__func__, h, conv_of(x, w, cv, y), false, FWD_HEURISTIC, algo, bytes);
}

extern "C" cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void *alpha, const cudnnTensorDescriptor_t xd,
                                                const void *x, const cudnnFilterDescriptor_t wd, const void *w,
                                                const cudnnConvolutionDescriptor_t cv, cudnnConvolutionFwdAlgo_t algo,
                                                void *ws, size_t ws_bytes, const void *beta,
                                                const cudnnTensorDescriptor_t yd, void *y) {
    const char *call = "cudnnConvolutionForward";
    const Conv c = conv_of(xd, wd, cv, yd);
    cudnnStatus_t st = h ? check(call, c, false) : CUDNN_STATUS_BAD_PARAM;
    if (st != CUDNN_STATUS_SUCCESS) return st;
    /* the implicit precomputed GEMM turns down 16-bit descriptors at odd batch sizes, when run */
    const bool declines = algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM && xd->type != CUDNN_DATA_FLOAT &&
                          xd->n % 2 == 1;
    if ((st = prepare_run(call, FWD_HEURISTIC, algo, c, ws, ws_bytes, declines)) != CUDNN_STATUS_SUCCESS) return st;
    const size_t eb = type_bytes(xd->type);
    emu::need_device(x, eb * tensor_count(xd), call, "x is not device memory, or shorter than its descriptor");
    emu::need_device(w, eb * filter_count(wd), call, "w is not device memory, or shorter than its descriptor");
    emu::need_device(y, eb * tensor_count(yd), call, "y is not device memory, or shorter than its descriptor");
    if (emu::count_only()) return CUDNN_STATUS_SUCCESS;
    const bool rev = reversed(find_algo(FWD_HEURISTIC, algo, cv->math));
    const std::vector<float> X = widen_tensor(xd, x, c.tf32), Wt = filter_rsck(wd, widen_filter(wd, w, c.tf32));
    const int C = xd->c, H = xd->h, Wd = xd->w, R = wd->r, S = wd->s, K = wd->k;
    const float al = *(const float *)alpha, be = *(const float *)beta;
    /* each output's sum runs over (r, s, c) in order (or in reverse); the loop over k is innermost, so that it is
     * one vector operation per term without reordering any sum; output rows are shared among threads (each output
     * is one thread's, so the bits do not depend on their number) */
    const int N = yd->n, P = yd->h, Q = yd->w;
#pragma omp parallel
    {
        std::vector<float> acc((size_t)K);
#pragma omp for collapse(2) schedule(static)
        for (int n = 0; n < N; n++)
            for (int p = 0; p < P; p++)
                for (int q = 0; q < Q; q++) {
                    std::fill(acc.begin(), acc.end(), 0.0f);
                    for (int ri = 0; ri < R; ri++) {
                        const int r = order(ri, R, rev), hi = p * cv->u - cv->pad_h + r * cv->dil_h;
                        if (hi < 0 || hi >= H) continue;
                        for (int si = 0; si < S; si++) {
                            const int s = order(si, S, rev), wi = q * cv->v - cv->pad_w + s * cv->dil_w;
                            if (wi < 0 || wi >= Wd) continue;
                            const float *xv = &X[(((size_t)n * H + hi) * Wd + wi) * C];
                            for (int ci = 0; ci < C; ci++) {
                                const int ch = order(ci, C, rev);
                                axpy(K, xv[ch], &Wt[(((size_t)r * S + s) * C + ch) * K], acc.data());
                            }
                        }
                    }
                    for (int k = 0; k < K; k++) blend(yd->type, y, tensor_index(yd, n, k, p, q), acc[k], al, be);
                }
    }
    return CUDNN_STATUS_SUCCESS;
}

/* ---- backward data ---- */

extern "C" cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithmMaxCount(cudnnHandle_t h, int *count) {
    (void)h;
    *count = (int)DATA_HEURISTIC.size();
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t h, const cudnnFilterDescriptor_t w,
                                                                    const cudnnTensorDescriptor_t dy,
                                                                    const cudnnConvolutionDescriptor_t cv,
                                                                    const cudnnTensorDescriptor_t dx,
                                                                    const int requested, int *returned,
                                                                    cudnnConvolutionBwdDataAlgoPerf_t *perf) {
    return list_call<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(
        __func__, h, conv_of(dx, w, cv, dy), true, DATA_HEURISTIC, CUDNN_EMU_BACKWARD_DATA, requested, returned, perf);
}

extern "C" cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithm(cudnnHandle_t h, const cudnnFilterDescriptor_t w,
                                                                  const cudnnTensorDescriptor_t dy,
                                                                  const cudnnConvolutionDescriptor_t cv,
                                                                  const cudnnTensorDescriptor_t dx,
                                                                  const int requested, int *returned,
                                                                  cudnnConvolutionBwdDataAlgoPerf_t *perf) {
    return list_call<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(
        __func__, h, conv_of(dx, w, cv, dy), true, DATA_MEASURED, CUDNN_EMU_BACKWARD_DATA, requested, returned, perf);
}

extern "C" cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t h, const cudnnFilterDescriptor_t w,
                                                                     const cudnnTensorDescriptor_t dy,
                                                                     const cudnnConvolutionDescriptor_t cv,
                                                                     const cudnnTensorDescriptor_t dx,
                                                                     cudnnConvolutionBwdDataAlgo_t algo,
                                                                     size_t *bytes) {
    return workspace_call(__func__, h, conv_of(dx, w, cv, dy), true, DATA_HEURISTIC, algo, bytes);
}

extern "C" cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void *alpha,
                                                     const cudnnFilterDescriptor_t wd, const void *w,
                                                     const cudnnTensorDescriptor_t dyd, const void *dy,
                                                     const cudnnConvolutionDescriptor_t cv,
                                                     cudnnConvolutionBwdDataAlgo_t algo, void *ws, size_t ws_bytes,
                                                     const void *beta, const cudnnTensorDescriptor_t dxd, void *dx) {
    const char *call = "cudnnConvolutionBackwardData";
    const Conv c = conv_of(dxd, wd, cv, dyd);
    cudnnStatus_t st = h ? check(call, c, true) : CUDNN_STATUS_BAD_PARAM;
    if (st != CUDNN_STATUS_SUCCESS) return st;
    if ((st = prepare_run(call, DATA_HEURISTIC, algo, c, ws, ws_bytes, false)) != CUDNN_STATUS_SUCCESS) return st;
    const size_t eb = type_bytes(dxd->type);
    emu::need_device(w, eb * filter_count(wd), call, "w is not device memory, or shorter than its descriptor");
    emu::need_device(dy, eb * tensor_count(dyd), call, "dy is not device memory, or shorter than its descriptor");
    emu::need_device(dx, eb * tensor_count(dxd), call, "dx is not device memory, or shorter than its descriptor");
    if (emu::count_only()) return CUDNN_STATUS_SUCCESS;
    const bool rev = reversed(find_algo(DATA_HEURISTIC, algo, cv->math));
    const std::vector<float> DY = widen_tensor(dyd, dy, c.tf32), Wk = widen_filter(wd, w, c.tf32);
    const int K = wd->k, C = wd->c, R = wd->r, S = wd->s, P = dyd->h, Q = dyd->w;
    const float al = *(const float *)alpha, be = *(const float *)beta;
    /* each input gradient's sum runs over (r, s, k) in order (or in reverse), the loop over c innermost; rows are
     * shared among threads as in the forward */
    const int N = dxd->n, H = dxd->h, Wd = dxd->w;
#pragma omp parallel
    {
        std::vector<float> acc((size_t)C);
#pragma omp for collapse(2) schedule(static)
        for (int n = 0; n < N; n++)
            for (int hi = 0; hi < H; hi++)
                for (int wi = 0; wi < Wd; wi++) {
                    std::fill(acc.begin(), acc.end(), 0.0f);
                    for (int ri = 0; ri < R; ri++) {
                        const int r = order(ri, R, rev), ph = hi + cv->pad_h - r * cv->dil_h;
                        if (ph < 0 || ph % cv->u || ph / cv->u >= P) continue;
                        for (int si = 0; si < S; si++) {
                            const int s = order(si, S, rev), qw = wi + cv->pad_w - s * cv->dil_w;
                            if (qw < 0 || qw % cv->v || qw / cv->v >= Q) continue;
                            const float *g = &DY[(((size_t)n * P + ph / cv->u) * Q + qw / cv->v) * K];
                            for (int ki = 0; ki < K; ki++) {
                                const int k = order(ki, K, rev);
                                axpy(C, g[k], &Wk[(((size_t)k * R + r) * S + s) * C], acc.data());
                            }
                        }
                    }
                    for (int ch = 0; ch < C; ch++)
                        blend(dxd->type, dx, tensor_index(dxd, n, ch, hi, wi), acc[ch], al, be);
                }
    }
    return CUDNN_STATUS_SUCCESS;
}

/* ---- backward filter ---- */

extern "C" cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(cudnnHandle_t h, int *count) {
    (void)h;
    *count = (int)FILTER_HEURISTIC.size();
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t h,
                                                                      const cudnnTensorDescriptor_t x,
                                                                      const cudnnTensorDescriptor_t dy,
                                                                      const cudnnConvolutionDescriptor_t cv,
                                                                      const cudnnFilterDescriptor_t dw,
                                                                      const int requested, int *returned,
                                                                      cudnnConvolutionBwdFilterAlgoPerf_t *perf) {
    return list_call<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(
        __func__, h, conv_of(x, dw, cv, dy), true, FILTER_HEURISTIC, CUDNN_EMU_BACKWARD_FILTER, requested, returned,
        perf);
}

extern "C" cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithm(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                                    const cudnnTensorDescriptor_t dy,
                                                                    const cudnnConvolutionDescriptor_t cv,
                                                                    const cudnnFilterDescriptor_t dw,
                                                                    const int requested, int *returned,
                                                                    cudnnConvolutionBwdFilterAlgoPerf_t *perf) {
    return list_call<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(
        __func__, h, conv_of(x, dw, cv, dy), true, FILTER_MEASURED, CUDNN_EMU_BACKWARD_FILTER, requested, returned,
        perf);
}

extern "C" cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t h,
                                                                       const cudnnTensorDescriptor_t x,
                                                                       const cudnnTensorDescriptor_t dy,
                                                                       const cudnnConvolutionDescriptor_t cv,
                                                                       const cudnnFilterDescriptor_t dw,
                                                                       cudnnConvolutionBwdFilterAlgo_t algo,
                                                                       size_t *bytes) {
    return workspace_call(__func__, h, conv_of(x, dw, cv, dy), true, FILTER_HEURISTIC, algo, bytes);
}

extern "C" cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void *alpha,
                                                       const cudnnTensorDescriptor_t xd, const void *x,
                                                       const cudnnTensorDescriptor_t dyd, const void *dy,
                                                       const cudnnConvolutionDescriptor_t cv,
                                                       cudnnConvolutionBwdFilterAlgo_t algo, void *ws, size_t ws_bytes,
                                                       const void *beta, const cudnnFilterDescriptor_t dwd, void *dw) {
    const char *call = "cudnnConvolutionBackwardFilter";
    const Conv c = conv_of(xd, dwd, cv, dyd);
    cudnnStatus_t st = h ? check(call, c, true) : CUDNN_STATUS_BAD_PARAM;
    if (st != CUDNN_STATUS_SUCCESS) return st;
    if ((st = prepare_run(call, FILTER_HEURISTIC, algo, c, ws, ws_bytes, false)) != CUDNN_STATUS_SUCCESS) return st;
    const size_t eb = type_bytes(xd->type);
    emu::need_device(x, eb * tensor_count(xd), call, "x is not device memory, or shorter than its descriptor");
    emu::need_device(dy, eb * tensor_count(dyd), call, "dy is not device memory, or shorter than its descriptor");
    emu::need_device(dw, eb * filter_count(dwd), call, "dw is not device memory, or shorter than its descriptor");
    if (emu::count_only()) return CUDNN_STATUS_SUCCESS;
    const bool rev = reversed(find_algo(FILTER_HEURISTIC, algo, cv->math));
    const std::vector<float> X = widen_tensor(xd, x, c.tf32), DY = widen_tensor(dyd, dy, c.tf32);
    const int N = xd->n, C = xd->c, H = xd->h, Wd = xd->w, K = dwd->k, R = dwd->r, S = dwd->s, P = dyd->h,
              Q = dyd->w;
    /* every weight's sum runs over the output positions (n, p, q) in order (or in reverse), in chunks of
     * FILTER_CHUNK positions whose sums are then added up: a GPU splits such long sums too, and one running float sum
     * over a whole batch's pixels would lose more to rounding than cuDNN does. Output channels are shared among
     * threads (each weight is one thread's). */
    constexpr long FILTER_CHUNK = 256;
    const long positions = (long)N * P * Q, per_k = (long)R * S * C;
    std::vector<float> total(filter_count(dwd), 0.0f); /* [k][r][s][c] */
#pragma omp parallel
    {
        std::vector<float> acc((size_t)per_k);
#pragma omp for schedule(static)
        for (int k = 0; k < K; k++) {
            std::fill(acc.begin(), acc.end(), 0.0f);
            float *sum = &total[(size_t)k * per_k];
            for (long i = 0; i < positions; i++) {
                const long at = rev ? positions - 1 - i : i;
                const int n = (int)(at / ((long)P * Q)), p = (int)(at / Q % P), q = (int)(at % Q);
                const float gk = DY[(((size_t)n * P + p) * Q + q) * K + k];
                for (int r = 0; r < R; r++) {
                    const int hi = p * cv->u - cv->pad_h + r * cv->dil_h;
                    if (hi < 0 || hi >= H) continue;
                    for (int s = 0; s < S; s++) {
                        const int wi = q * cv->v - cv->pad_w + s * cv->dil_w;
                        if (wi < 0 || wi >= Wd) continue;
                        axpy(C, gk, &X[(((size_t)n * H + hi) * Wd + wi) * C], &acc[((size_t)r * S + s) * C]);
                    }
                }
                if ((i + 1) % FILTER_CHUNK == 0 || i + 1 == positions) {
                    for (long e = 0; e < per_k; e++) sum[e] += acc[(size_t)e];
                    std::fill(acc.begin(), acc.end(), 0.0f);
                }
            }
        }
    }
    const float al = *(const float *)alpha, be = *(const float *)beta;
    for (int k = 0; k < K; k++)
        for (int r = 0; r < R; r++)
            for (int s = 0; s < S; s++)
                for (int ch = 0; ch < C; ch++)
                    blend(dwd->type, dw, filter_index(dwd, k, ch, r, s), total[(((size_t)k * R + r) * S + s) * C + ch],
                          al, be);
    return CUDNN_STATUS_SUCCESS;
}
