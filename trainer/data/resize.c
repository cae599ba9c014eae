/* Pillow 9.4's BILINEAR resampling of 8-bit images (src/libImaging/Resample.c), reimplemented.
 *
 * For each output column (row), Pillow centres a triangle filter of support 1 x max(1, scale) at
 * in0 + (x + 0.5) * scale, evaluates it in double at the source pixel centres inside [center - support + 0.5,
 * center + support + 0.5) clipped to the image, normalises the weights to sum 1 and rounds them to 22-bit fixed point
 * (away from zero). A pixel is then (0.5 + sum w_k p_k) >> 22 clipped to [0, 255]. The horizontal pass runs first over
 * only the rows the vertical pass will read and is rounded to 8 bits; a pass is skipped when that axis keeps its size
 * and box. Integer sums are exact, so any evaluation order gives Pillow's bytes. */
#include "aug.h"

#include "trainer/core/error.h"

#include <stdatomic.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#if AUG_X86
#include <immintrin.h>
#endif

enum { PRECISION_BITS = 32 - 8 - 2 };

void *aug_scratch(AugScratch *s, int slot, size_t bytes) {
    RSA_ASSERT(slot >= 0 && slot < AUG_SCRATCH_SLOTS);
    if (bytes == 0) bytes = 1;
    if (s->cap[slot] < bytes) {
        size_t cap = s->cap[slot] ? s->cap[slot] : 4096;
        while (cap < bytes) cap *= 2;
        free(s->buf[slot]);
        s->buf[slot] = aligned_alloc(64, (cap + 63) & ~(size_t)63);
        if (!s->buf[slot]) rsa_fatal("free memory or use fewer loader threads", "out of memory (%zu bytes)", cap);
        s->cap[slot] = cap;
    }
    return s->buf[slot];
}

static atomic_int simd_state = -1; /* -1: not decided yet */

bool aug_simd(void) {
    int st = atomic_load_explicit(&simd_state, memory_order_relaxed);
    if (st < 0) {
#if AUG_X86
        __builtin_cpu_init();
        st = __builtin_cpu_supports("avx2") ? 1 : 0;
#else
        st = 0;
#endif
        atomic_store_explicit(&simd_state, st, memory_order_relaxed);
    }
    return st == 1;
}

void aug_set_simd(bool on) {
    int st = 0;
#if AUG_X86
    __builtin_cpu_init();
    st = on && __builtin_cpu_supports("avx2");
#endif
    atomic_store_explicit(&simd_state, st, memory_order_relaxed);
}

void aug_scratch_free(AugScratch *s) {
    for (int i = 0; i < AUG_SCRATCH_SLOTS; i++) {
        free(s->buf[i]);
        s->buf[i] = NULL;
        s->cap[i] = 0;
    }
}

static double triangle(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static int kernel_size(float in0, float in1, int out_size) {
    double scale = (double)(in1 - in0) / out_size;
    double support = scale < 1.0 ? 1.0 : scale;
    return (int)ceil(support) * 2 + 1;
}

/* Fills bounds[2 x] = (first source index, count) and k[x * ksize ...] with fixed-point weights. */
static void coefficients(int in_size, float in0, float in1, int out_size, int ksize, int *bounds, int32_t *k,
                         double *w) {
    double scale = (double)(in1 - in0) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    double ss = 1.0 / filterscale;
    for (int xx = 0; xx < out_size; xx++) {
        double center = in0 + (xx + 0.5) * scale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double total = 0.0;
        for (int x = 0; x < xmax; x++) {
            w[x] = triangle((x + xmin - center + 0.5) * ss);
            total += w[x];
        }
        int32_t *kx = k + (size_t)xx * ksize;
        for (int x = 0; x < ksize; x++) {
            double v = x < xmax ? (total != 0.0 ? w[x] / total : w[x]) : 0.0;
            kx[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS)) : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        bounds[2 * xx] = xmin;
        bounds[2 * xx + 1] = xmax;
    }
}

static inline uint8_t clip8(int32_t v) {
    v >>= PRECISION_BITS;
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

static void pass_horizontal_scalar(const Img *src, int y0, int rows, Img *dst, int ksize, const int *bounds,
                                   const int32_t *k) {
    for (int y = 0; y < rows; y++) {
        const uint8_t *in = img_row(src, y0 + y);
        uint8_t *out = img_row(dst, y);
        for (int xx = 0; xx < dst->w; xx++) {
            const uint8_t *p = in + 3 * bounds[2 * xx];
            const int32_t *kx = k + (size_t)xx * ksize;
            int n = bounds[2 * xx + 1];
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < n; x++) {
                s0 += p[3 * x] * kx[x];
                s1 += p[3 * x + 1] * kx[x];
                s2 += p[3 * x + 2] * kx[x];
            }
            out[3 * xx] = clip8(s0);
            out[3 * xx + 1] = clip8(s1);
            out[3 * xx + 2] = clip8(s2);
        }
    }
}

#if AUG_X86
/* The same sums with one pixel's three channels (and one byte of the next pixel, ignored) in the lanes of a vector:
 * 4-byte loads, so only taps ending before the last pixel of the row take this path. */
__attribute__((target("avx2"))) static void pass_horizontal_avx2(const Img *src, int y0, int rows, Img *dst,
                                                                   int ksize, const int *bounds, const int32_t *k) {
    int fast_end = dst->w; /* output pixels before this one never read the last source pixel */
    while (fast_end > 0 && bounds[2 * (fast_end - 1)] + bounds[2 * (fast_end - 1) + 1] >= src->w) fast_end--;
    const __m128i half = _mm_set1_epi32(1 << (PRECISION_BITS - 1));
    for (int y = 0; y < rows; y++) {
        const uint8_t *in = img_row(src, y0 + y);
        uint8_t *out = img_row(dst, y);
        int xx = 0;
        for (; xx < fast_end; xx++) {
            const uint8_t *p = in + 3 * bounds[2 * xx];
            const int32_t *kx = k + (size_t)xx * ksize;
            int n = bounds[2 * xx + 1];
            __m128i acc = half;
            for (int x = 0; x < n; x++) {
                int32_t v;
                memcpy(&v, p + 3 * x, 4);
                __m128i px = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(v));
                acc = _mm_add_epi32(acc, _mm_mullo_epi32(px, _mm_set1_epi32(kx[x])));
            }
            acc = _mm_srai_epi32(acc, PRECISION_BITS);
            __m128i b = _mm_packus_epi16(_mm_packs_epi32(acc, acc), _mm_setzero_si128());
            int32_t o = _mm_cvtsi128_si32(b);
            memcpy(out + 3 * xx, &o, 3);
        }
        for (; xx < dst->w; xx++) {
            const uint8_t *p = in + 3 * bounds[2 * xx];
            const int32_t *kx = k + (size_t)xx * ksize;
            int n = bounds[2 * xx + 1];
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < n; x++) {
                s0 += p[3 * x] * kx[x];
                s1 += p[3 * x + 1] * kx[x];
                s2 += p[3 * x + 2] * kx[x];
            }
            out[3 * xx] = clip8(s0);
            out[3 * xx + 1] = clip8(s1);
            out[3 * xx + 2] = clip8(s2);
        }
    }
}
#endif

static void pass_horizontal(const Img *src, int y0, int rows, Img *dst, int ksize, const int *bounds,
                            const int32_t *k) {
#if AUG_X86
    if (aug_simd()) {
        pass_horizontal_avx2(src, y0, rows, dst, ksize, bounds, k);
        return;
    }
#endif
    pass_horizontal_scalar(src, y0, rows, dst, ksize, bounds, k);
}

AUG_HOT static void pass_vertical(const Img *src, Img *dst, int ksize, const int *bounds, const int32_t *k, int32_t *acc) {
    int n = 3 * dst->w;
    for (int yy = 0; yy < dst->h; yy++) {
        const int32_t *ky = k + (size_t)yy * ksize;
        int ymin = bounds[2 * yy], count = bounds[2 * yy + 1];
        for (int i = 0; i < n; i++) acc[i] = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < count; y++) {
            const uint8_t *in = img_row(src, ymin + y);
            int32_t c = ky[y];
            for (int i = 0; i < n; i++) acc[i] += in[i] * c;
        }
        uint8_t *out = img_row(dst, yy);
        for (int i = 0; i < n; i++) out[i] = clip8(acc[i]);
    }
}

enum { SLOT_TEMP = 0, SLOT_COEF = 1 };

void aug_resize(const Img *src, const float *box, Img *dst, AugScratch *s) {
    float b[4] = {0, 0, (float)src->w, (float)src->h};
    if (box) memcpy(b, box, sizeof b);
    RSA_ASSERT(dst->w > 0 && dst->h > 0 && src->w > 0 && src->h > 0);
    bool need_h = dst->w != src->w || b[0] != 0 || b[2] != (float)dst->w;
    bool need_v = dst->h != src->h || b[1] != 0 || b[3] != (float)dst->h;
    if (!need_h && !need_v) {
        aug_copy(src, dst);
        return;
    }
    int kh = kernel_size(b[0], b[2], dst->w), kv = kernel_size(b[1], b[3], dst->h);
    int kmax = kh > kv ? kh : kv;
    size_t nh = (size_t)dst->w * kh, nv = (size_t)dst->h * kv;
    size_t acc_n = (size_t)3 * dst->w;
    size_t bytes = (nh + nv + acc_n) * sizeof(int32_t) + 2 * (size_t)(dst->w + dst->h) * sizeof(int) +
                   (size_t)kmax * 16 * sizeof(double) + 64;
    char *mem = aug_scratch(s, SLOT_COEF, bytes);
    double *w = (double *)mem;
    /* the unnormalised weights need at most xmax <= ksize entries */
    int32_t *k_h = (int32_t *)(w + (size_t)kmax * 16);
    int32_t *k_v = k_h + nh;
    int32_t *acc = k_v + nv;
    int *bh = (int *)(acc + acc_n);
    int *bv = bh + 2 * dst->w;
    coefficients(src->w, b[0], b[2], dst->w, kh, bh, k_h, w);
    coefficients(src->h, b[1], b[3], dst->h, kv, bv, k_v, w);

    if (need_h) {
        int first = bv[0], last = bv[2 * dst->h - 2] + bv[2 * dst->h - 1];
        if (!need_v) first = 0, last = src->h;
        int rows = last - first;
        Img tmp = img_make(aug_scratch(s, SLOT_TEMP, (size_t)rows * 3 * dst->w), rows, dst->w);
        if (need_v) {
            for (int i = 0; i < dst->h; i++) bv[2 * i] -= first;
            pass_horizontal(src, first, rows, &tmp, kh, bh, k_h);
            pass_vertical(&tmp, dst, kv, bv, k_v, acc);
        } else {
            pass_horizontal(src, 0, src->h, dst, kh, bh, k_h);
        }
    } else {
        pass_vertical(src, dst, kv, bv, k_v, acc);
    }
}

void aug_resized_crop(const Img *src, CropBox c, Img *dst, AugScratch *s) {
    Img sub = aug_crop_view(src, c);
    aug_resize(&sub, NULL, dst, s);
}
