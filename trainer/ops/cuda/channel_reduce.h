/* Deterministic per-channel reductions and maps over a [rows][c] matrix: an NHWC activation is [n*h*w][c], a
 * linear layer's output [n][c]. Batch norm statistics and bias gradients are such reductions.
 *
 * The order of the additions depends only on (rows, c), never on the GPU, the launch or timing, and no atomics are
 * used: rows are cut into chunks of REDUCE_CHUNK_ROWS; one block sums one chunk for 32 channels (each thread a
 * fixed stride of the chunk's rows in float, then the block's row lanes in order); a second kernel adds each
 * channel's chunk sums in double, one warp per channel (a fixed stride per lane, then a fixed shuffle tree), and
 * hands the K totals of the channel to a Finish functor. A Load functor gives the K values row r adds for channel c.
 *
 * Only for .cu files: the kernels are templates on the functors. */
#ifndef RSA_CHANNEL_REDUCE_H
#define RSA_CHANNEL_REDUCE_H

#include "cuda_util.h"

constexpr int REDUCE_CHUNK_ROWS = 256, REDUCE_ROW_LANES = 8;

static inline int reduce_chunks(size_t rows) { return (int)((rows + REDUCE_CHUNK_ROWS - 1) / REDUCE_CHUNK_ROWS); }

/* Bytes of chunk sums channel_reduce needs for K sums. */
static inline size_t reduce_partial_bytes(int k, size_t rows, int c) {
    return sizeof(float) * (size_t)k * c * reduce_chunks(rows);
}

/* Grid of (chunks, channel tiles of 32); blocks of 32 channels x REDUCE_ROW_LANES rows. */
template <int K, class Load>
__global__ void reduce_chunks_kernel(Load load, size_t rows, int c, float *partial) {
    __shared__ float lanes[K][REDUCE_ROW_LANES][32];
    const int ch = blockIdx.y * 32 + threadIdx.x, chunks = gridDim.x;
    const size_t r0 = (size_t)blockIdx.x * REDUCE_CHUNK_ROWS;
    const size_t r1 = r0 + REDUCE_CHUNK_ROWS < rows ? r0 + REDUCE_CHUNK_ROWS : rows;
    float acc[K];
    for (int k = 0; k < K; k++) acc[k] = 0;
    if (ch < c)
        for (size_t r = r0 + threadIdx.y; r < r1; r += REDUCE_ROW_LANES) {
            float v[K];
            load(r, ch, v);
            for (int k = 0; k < K; k++) acc[k] += v[k];
        }
    for (int k = 0; k < K; k++) lanes[k][threadIdx.y][threadIdx.x] = acc[k];
    __syncthreads();
    if (threadIdx.y != 0 || ch >= c) return;
    for (int k = 0; k < K; k++) {
        float s = 0;
        for (int j = 0; j < REDUCE_ROW_LANES; j++) s += lanes[k][j][threadIdx.x];
        partial[((size_t)k * c + ch) * chunks + blockIdx.x] = s;
    }
}

/* One warp per channel. */
template <int K, class Finish>
__global__ void reduce_combine_kernel(const float *partial, int c, int chunks, Finish finish) {
    const int ch = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (ch >= c) return; /* the whole warp leaves together */
    double s[K];
    for (int k = 0; k < K; k++) {
        const float *p = partial + ((size_t)k * c + ch) * chunks;
        s[k] = 0;
        for (int j = lane; j < chunks; j += 32) s[k] += p[j];
        for (int offset = 16; offset > 0; offset /= 2) s[k] += __shfl_down_sync(0xffffffffu, s[k], offset);
    }
    if (lane == 0) finish(ch, s);
}

/* partial: reduce_partial_bytes(K, rows, c) bytes of device scratch. */
template <int K, class Load, class Finish>
void channel_reduce(size_t rows, int c, Load load, Finish finish, float *partial) {
    if (rows == 0 || c == 0) return; /* an empty grid is an invalid launch; there is nothing to sum */
    const int chunks = reduce_chunks(rows);
    reduce_chunks_kernel<K, Load>
        <<<dim3((unsigned)chunks, (unsigned)((c + 31) / 32)), dim3(32, REDUCE_ROW_LANES)>>>(load, rows, c, partial);
    CUDA_CHECK_LAUNCH();
    const int warps_per_block = CUDA_THREADS / 32;
    reduce_combine_kernel<K, Finish>
        <<<(unsigned)((c + warps_per_block - 1) / warps_per_block), CUDA_THREADS>>>(partial, c, chunks, finish);
    CUDA_CHECK_LAUNCH();
}

/* Calls f(i, ch) for every element i = r * c + ch, with coalesced access along the channels. */
template <class F>
__global__ void channel_map_kernel(size_t rows, int c, F f) {
    const int ch = blockIdx.y * 32 + threadIdx.x;
    if (ch >= c) return;
    for (size_t r = (size_t)blockIdx.x * blockDim.y + threadIdx.y; r < rows; r += (size_t)gridDim.x * blockDim.y)
        f(r * c + ch, ch);
}

template <class F>
void channel_map(size_t rows, int c, F f) {
    if (rows == 0 || c == 0) return;
    size_t row_blocks = (rows + REDUCE_ROW_LANES - 1) / REDUCE_ROW_LANES;
    unsigned grid_x = (unsigned)(row_blocks < CUDA_MAX_BLOCKS ? row_blocks : CUDA_MAX_BLOCKS);
    channel_map_kernel<F><<<dim3(grid_x, (unsigned)((c + 31) / 32)), dim3(32, REDUCE_ROW_LANES)>>>(rows, c, f);
    CUDA_CHECK_LAUNCH();
}

#endif
