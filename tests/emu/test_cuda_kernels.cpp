/* The cuda backend's kernels that its convolutions and linear layers call around cuDNN and cuBLAS, on shapes of
 * their own (partial tiles, thin matrices, more matrices than one launch covers here): the batched transposes
 * between NCHW and NHWC, from fp32 and from 16-bit values, and the bias of a [rows][c] output with its deterministic
 * gradient. Run on the CPU emulation (cuda_emu.h) against plain loops. */
extern "C" {
#include "tests/util/testlib.h"
#include "trainer/ops/ref/ops_ref.h"
}
#include "trainer/ops/cuda/ops_cuda.h"

#include <cmath>
#include <vector>

/* A device copy of a host vector, and back: the emulation stops a kernel handed host memory, as a GPU would fault. */
template <class T> struct Device {
    T *p = nullptr;
    size_t n;
    explicit Device(const std::vector<T> &h) : n(h.size()) {
        CHECK(cudaMalloc((void **)&p, n * sizeof(T)) == cudaSuccess, "cudaMalloc of %zu bytes", n * sizeof(T));
        cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice);
    }
    Device(const Device &) = delete;
    Device &operator=(const Device &) = delete;
    ~Device() { cudaFree(p); }
    std::vector<T> get() const {
        std::vector<T> h(n);
        cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
        return h;
    }
};

static std::vector<float> normal(size_t n, uint64_t seed) {
    std::vector<float> v(n);
    fill_normal(v.data(), n, seed, 1.0f);
    return v;
}

/* shapes with partial tiles on both sides, one tile exactly, a thin matrix, several matrices (more than one grid
 * covers in this build: the Makefile caps it at 2 matrices, so the tile is refilled) */
static const int SHAPES[][3] = {{1, 33, 70}, {3, 32, 32}, {2, 5, 257}, {4, 64, 7}};

static void test_transpose(void) {
    for (const auto &sh : SHAPES) {
        const int batch = sh[0], rows = sh[1], cols = sh[2];
        const size_t n = (size_t)batch * rows * cols;
        const std::vector<float> in = normal(n, 11), base = normal(n, 12);
        Device<float> din(in), dout{std::vector<float>(n)}, dacc(base);
        transpose_cuda(batch, rows, cols, din.p, dout.p, false);
        transpose_cuda(batch, rows, cols, din.p, dacc.p, true);
        CHECK(cudaGetLastError() == cudaSuccess, "launch refused");
        const std::vector<float> out = dout.get(), acc = dacc.get();
        size_t wrong = 0, wrong_acc = 0;
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < cols; j++) {
                    size_t from = ((size_t)b * rows + i) * cols + j, to = ((size_t)b * cols + j) * rows + i;
                    wrong += out[to] != in[from];
                    wrong_acc += acc[to] != base[to] + in[from];
                }
        CHECK(wrong == 0 && wrong_acc == 0, "%dx%dx%d: %zu wrong, %zu wrong when accumulating", batch, rows, cols,
              wrong, wrong_acc);
    }
}

static void test_transpose_lowp(void) {
    const Precision formats[] = {PRECISION_BF16, PRECISION_FP16};
    for (Precision p : formats)
        for (const auto &sh : SHAPES) {
            const int batch = sh[0], rows = sh[1], cols = sh[2];
            const size_t n = (size_t)batch * rows * cols;
            std::vector<float> in = normal(n, 21), wide(n), out(n);
            std::vector<uint16_t> in16(n);
            to_lowp_ref(p, n, in.data(), in16.data());
            from_lowp_ref(p, n, in16.data(), wide.data());
            Device<uint16_t> din(in16);
            Device<float> dout(out);
            transpose_lowp_cuda(p, batch, rows, cols, din.p, dout.p, false);
            out = dout.get();
            size_t wrong = 0;
            for (int b = 0; b < batch; b++)
                for (int i = 0; i < rows; i++)
                    for (int j = 0; j < cols; j++)
                        wrong += out[((size_t)b * cols + j) * rows + i] != wide[((size_t)b * rows + i) * cols + j];
            CHECK(wrong == 0, "%s %dx%dx%d: %zu of %zu widened wrongly", p == PRECISION_BF16 ? "bf16" : "fp16",
                  batch, rows, cols, wrong, n);
        }
}

static void test_bias(void) {
    /* 1-row, one partial channel tile, several reduction chunks (256 rows each) with a partial last one */
    const int cases[][2] = {{1, 5}, {77, 40}, {1100, 33}};
    for (const auto &k : cases) {
        const size_t rows = (size_t)k[0];
        const int c = k[1];
        const std::vector<float> bias = normal((size_t)c, 31), y0 = normal(rows * c, 32), dy = normal(rows * c, 33);
        Device<float> dbias(bias), dyv(y0), ddy(dy);
        bias_cuda_add(rows, c, dbias.p, dyv.p);
        const std::vector<float> y = dyv.get();
        size_t wrong = 0;
        for (size_t i = 0; i < rows * (size_t)c; i++) wrong += y[i] != y0[i] + bias[i % (size_t)c];
        CHECK(wrong == 0, "bias add %zux%d: %zu wrong", rows, c, wrong);
        Device<float> ddb{std::vector<float>(c, 0.5f)}, dagain{std::vector<float>(c, 0.5f)};
        bias_cuda_backward(rows, c, ddy.p, ddb.p);
        bias_cuda_backward(rows, c, ddy.p, dagain.p);
        const std::vector<float> db = ddb.get(), again = dagain.get();
        double worst = 0;
        for (int ch = 0; ch < c; ch++) {
            double want = 0, scale = 0;
            for (size_t r = 0; r < rows; r++) want += dy[r * c + ch], scale += std::fabs(dy[r * c + ch]);
            worst = std::fmax(worst, std::fabs(db[ch] - (0.5 + want)) / (scale + 1));
        }
        CHECK(worst < 1e-6, "bias gradient %zux%d: error %g of the sum of magnitudes (it accumulates onto 0.5)", rows,
              c, worst);
        CHECK(std::memcmp(db.data(), again.data(), sizeof(float) * c) == 0, "bias gradient %zux%d: not the same bits "
              "twice", rows, c);
    }
}

int main(void) {
    RUN(test_transpose);
    RUN(test_transpose_lowp);
    RUN(test_bias);
    return test_finish();
}
