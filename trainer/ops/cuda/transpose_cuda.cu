/* Batched matrix transpose through a shared-memory tile, so both the reads and the writes are coalesced. */
#include "cuda_util.h"
#include "ops_cuda.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

constexpr int TILE = 32, TILE_ROWS = 8;

__device__ inline float widen(float v) { return v; }
__device__ inline float widen(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ inline float widen(__half v) { return __half2float(v); }

/* blockIdx.x numbers the tiles of one matrix row by row (a flat index: either side may be large), blockIdx.z the
 * matrices. */
template <class T>
__global__ void transpose_kernel(int batch, int rows, int cols, const T *in, float *out, bool accumulate) {
    __shared__ float tile[TILE][TILE + 1]; /* +1: columns of the tile fall in different banks */
    const int col_tiles = (cols + TILE - 1) / TILE;
    const int i0 = (int)(blockIdx.x / col_tiles) * TILE, j0 = (int)(blockIdx.x % col_tiles) * TILE;
    for (int b = blockIdx.z; b < batch; b += gridDim.z) {
        const T *src = in + (size_t)b * rows * cols;
        float *dst = out + (size_t)b * rows * cols;
        for (int di = threadIdx.y; di < TILE; di += TILE_ROWS) {
            int i = i0 + di, j = j0 + threadIdx.x;
            if (i < rows && j < cols) tile[di][threadIdx.x] = widen(src[(size_t)i * cols + j]);
        }
        __syncthreads();
        for (int dj = threadIdx.y; dj < TILE; dj += TILE_ROWS) {
            int j = j0 + dj, i = i0 + threadIdx.x;
            if (i < rows && j < cols) {
                size_t o = (size_t)j * rows + i;
                dst[o] = accumulate ? dst[o] + tile[threadIdx.x][dj] : tile[threadIdx.x][dj];
            }
        }
        __syncthreads(); /* the tile is refilled for the next matrix */
    }
}

template <class T> static void transpose(int batch, int rows, int cols, const T *in, float *out, bool accumulate) {
    size_t tiles = (size_t)((rows + TILE - 1) / TILE) * ((cols + TILE - 1) / TILE);
    dim3 grid((unsigned)tiles, 1, (unsigned)batch < CUDA_MAX_GRID_Z ? (unsigned)batch : CUDA_MAX_GRID_Z);
    transpose_kernel<T><<<grid, dim3(TILE, TILE_ROWS)>>>(batch, rows, cols, in, out, accumulate);
    CUDA_CHECK_LAUNCH();
}

void transpose_cuda(int batch, int rows, int cols, const float *in, float *out, bool accumulate) {
    transpose(batch, rows, cols, in, out, accumulate);
}

void transpose_lowp_cuda(Precision p, int batch, int rows, int cols, const void *in, float *out, bool accumulate) {
    RSA_ASSERT(p != PRECISION_FP32);
    if (p == PRECISION_BF16)
        transpose(batch, rows, cols, (const __nv_bfloat16 *)in, out, accumulate);
    else
        transpose(batch, rows, cols, (const __half *)in, out, accumulate);
}
