/* The cuBLAS calls of linear_cuda.cu and cuda_context.cu on the CPU: column-major sgemm with cuBLAS's argument
 * rules, operands checked to lie in device memory (runtime_emu.cpp), and TF32 products under
 * CUBLAS_TF32_TENSOR_OP_MATH, as on a GPU from Ampere on. Sums are fp32, in the order of the inner dimension. */
#include "cuda_emu.h"

#include <cstdio>
#include <cstdlib>

struct cublasContext {
    cublasMath_t math;
};

extern "C" cublasStatus_t cublasCreate_v2(cublasHandle_t *handle) {
    *handle = new cublasContext{CUBLAS_DEFAULT_MATH};
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" const char *cublasGetStatusName(cublasStatus_t status) {
    return status == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_(emulated error)";
}

extern "C" const char *cublasGetStatusString(cublasStatus_t status) {
    return status == CUBLAS_STATUS_SUCCESS ? "success" : "an emulated cuBLAS error";
}

/* Elements an op(X) of rows x cols spans in a column-major array with leading dimension ld. */
static size_t span(cublasOperation_t op, int rows, int cols, int ld) {
    int r = op == CUBLAS_OP_N ? rows : cols, c = op == CUBLAS_OP_N ? cols : rows;
    return r == 0 || c == 0 ? 0 : (size_t)ld * (size_t)(c - 1) + (size_t)r;
}

static cublasStatus_t invalid(const char *why) {
    std::fprintf(stderr, "cuBLAS emulation: cublasSgemm: %s\n", why);
    return CUBLAS_STATUS_INVALID_VALUE;
}

extern "C" cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m,
                                         int n, int k, const float *alpha, const float *a, int lda, const float *b,
                                         int ldb, const float *beta, float *c, int ldc) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (m < 0 || n < 0 || k < 0) return invalid("a negative size");
    if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T))
        return invalid("an operation other than N or T");
    if (lda < (ta == CUBLAS_OP_N ? m : k) || lda < 1) return invalid("lda below the rows of A as stored");
    if (ldb < (tb == CUBLAS_OP_N ? k : n) || ldb < 1) return invalid("ldb below the rows of B as stored");
    if (ldc < m || ldc < 1) return invalid("ldc below m");
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    /* alpha and beta are host values (the default pointer mode); the matrices are on the device */
    const float al = *alpha, be = *beta;
    if (k > 0) {
        emu::need_device(a, sizeof(float) * span(ta, m, k, lda), "cublasSgemm", "A is not device memory, or too short");
        emu::need_device(b, sizeof(float) * span(tb, k, n, ldb), "cublasSgemm", "B is not device memory, or too short");
    }
    emu::need_device(c, sizeof(float) * span(CUBLAS_OP_N, m, n, ldc), "cublasSgemm",
                     "C is not device memory, or too short");
    if (emu::count_only()) return CUBLAS_STATUS_SUCCESS;
    const bool tf32 = handle->math == CUBLAS_TF32_TENSOR_OP_MATH;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            float s = 0;
            for (int l = 0; l < k; l++) {
                float x = ta == CUBLAS_OP_N ? a[i + (size_t)l * lda] : a[l + (size_t)i * lda];
                float y = tb == CUBLAS_OP_N ? b[l + (size_t)j * ldb] : b[j + (size_t)l * ldb];
                s += tf32 ? emu::tf32(x) * emu::tf32(y) : x * y;
            }
            float &out = c[i + (size_t)j * ldc];
            out = be == 0 ? al * s : al * s + be * out; /* beta 0: C is not read (it may hold anything) */
        }
    return CUBLAS_STATUS_SUCCESS;
}
