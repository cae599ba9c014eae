/* Pillow 9.4's ImageFilter.GaussianBlur(radius) (libImaging/BoxBlur.c), reimplemented.
 *
 * The Gaussian of standard deviation `radius` is approximated by three passes of an "extended" box filter
 * (Gwosdek et al. 2011) per direction, horizontal first: box radius r + a (r integer, 0 <= a < 1) weights the 2r + 1
 * inner pixels by ww = 2^24 / (2 (r + a) + 1) (float division, truncated) and the two next ones by
 * fw = (2^24 - (2r + 1) ww) / 2; a pixel is (sum + 2^23) >> 24 in 32-bit unsigned arithmetic, reading beyond the
 * edges as the edge pixel. Each pass is rounded to 8 bits. Pillow's sliding-window bookkeeping computes exactly the
 * clamped window sum used here, so the bytes agree. */
#include "aug.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    int r;
    uint32_t ww, fw;
} BoxKernel;

static BoxKernel box_kernel(float radius) {
    BoxKernel k;
    k.r = (int)radius;
    k.ww = (uint32_t)((float)(1u << 24) / (radius * 2 + 1));
    k.fw = ((1u << 24) - (uint32_t)(k.r * 2 + 1) * k.ww) / 2;
    return k;
}

static inline int clampi(int v, int hi) { return v < 0 ? 0 : v > hi ? hi : v; }

/* One pass down the columns of a rows x len byte array: row y of dst from rows y - r - 1 .. y + r + 1 of src (edge
 * rows repeated). Each column is an independent line, so the inner loops run across a row and vectorise. */
AUG_HOT static void box_pass(const uint8_t *src, size_t src_pitch, uint8_t *dst, size_t dst_pitch, int rows, int len,
                     BoxKernel k, uint32_t *acc) {
    int r = k.r, last = rows - 1;
    const uint32_t ww = k.ww, fw = k.fw;
    for (int j = 0; j < len; j++) acc[j] = 0;
    for (int i = -r - 1; i <= r - 1; i++) {
        const uint8_t *row = src + (size_t)clampi(i, last) * src_pitch;
        for (int j = 0; j < len; j++) acc[j] += row[j];
    }
    for (int y = 0; y < rows; y++) {
        const uint8_t *lo = src + (size_t)clampi(y - r - 1, last) * src_pitch;
        const uint8_t *hi = src + (size_t)clampi(y + r, last) * src_pitch;
        const uint8_t *far = src + (size_t)clampi(y + r + 1, last) * src_pitch;
        uint8_t *out = dst + (size_t)y * dst_pitch;
        for (int j = 0; j < len; j++) {
            uint32_t a = acc[j] + hi[j] - lo[j];
            acc[j] = a;
            uint32_t bulk = a * ww + (uint32_t)(lo[j] + far[j]) * fw;
            out[j] = (uint8_t)((bulk + (1u << 23)) >> 24);
        }
    }
}

/* dst (w rows of 3 h bytes) = src (h rows of 3 w bytes) with rows and columns of pixels exchanged. */
static void transpose(const uint8_t *src, size_t src_pitch, int h, int w, uint8_t *dst, size_t dst_pitch) {
    enum { B = 16 };
    for (int y0 = 0; y0 < h; y0 += B)
        for (int x0 = 0; x0 < w; x0 += B) {
            int y1 = y0 + B < h ? y0 + B : h, x1 = x0 + B < w ? x0 + B : w;
            for (int y = y0; y < y1; y++) {
                const uint8_t *s = src + (size_t)y * src_pitch;
                for (int x = x0; x < x1; x++) {
                    uint8_t *d = dst + (size_t)x * dst_pitch + 3 * (size_t)y;
                    d[0] = s[3 * x], d[1] = s[3 * x + 1], d[2] = s[3 * x + 2];
                }
            }
        }
}

void aug_gaussian_blur(Img *im, float sigma, AugScratch *s) {
    const int passes = 3;
    float sigma2 = sigma * sigma / passes;
    float L = (float)sqrt(12.0 * sigma2 + 1.0);
    float l = (float)floor((L - 1.0) / 2.0);
    float a = (2 * l + 1) * (l * (l + 1) - 3 * sigma2);
    a /= 6 * (sigma2 - (l + 1) * (l + 1));
    BoxKernel k = box_kernel(l + a);

    int w = im->w, h = im->h, longest = w > h ? w : h;
    size_t bytes = (size_t)w * h * 3;
    uint8_t *t0 = aug_scratch(s, 3, 2 * bytes + 4 * 3 * (size_t)longest + 64);
    uint8_t *t1 = t0 + bytes;
    uint32_t *acc = (uint32_t *)(((uintptr_t)(t1 + bytes) + 63) & ~(uintptr_t)63);
    /* horizontal passes: on the transposed image, as Pillow does, so they run down columns too */
    size_t tp = 3 * (size_t)h;
    transpose(im->px, (size_t)im->stride, h, w, t0, tp);
    box_pass(t0, tp, t1, tp, w, 3 * h, k, acc);
    box_pass(t1, tp, t0, tp, w, 3 * h, k, acc);
    box_pass(t0, tp, t1, tp, w, 3 * h, k, acc);
    transpose(t1, tp, w, h, t0, 3 * (size_t)w);
    /* vertical passes, ending in the image */
    size_t ip = 3 * (size_t)w;
    box_pass(t0, ip, t1, ip, h, 3 * w, k, acc);
    box_pass(t1, ip, t0, ip, h, 3 * w, k, acc);
    box_pass(t0, ip, im->px, (size_t)im->stride, h, 3 * w, k, acc);
}
