/* Colour adjustments as Pillow 9.4 computes them (ImageEnhance.py, libImaging/Blend.c, Convert.c) and torchvision's
 * ColorJitter around them.
 *
 * Image.blend(a, b, alpha) takes alpha as a C float and computes a + alpha * (b - a) in float per byte, truncating
 * toward zero; outside 0 <= alpha <= 1 the float result is clipped to [0, 255] first. A one-argument blend is a table
 * of 256 entries. 'L' conversion is (19595 R + 38470 G + 7471 B + 0x8000) >> 16. */
#include "aug.h"
#include "simd.h"

#include <stddef.h>

static inline uint8_t blend(int a, int b, float alpha) {
    if (alpha >= 0 && alpha <= 1.0f) return (uint8_t)((float)a + alpha * (float)(b - a));
    float t = (float)a + alpha * (float)(b - a);
    return t <= 0.0f ? 0 : t >= 255.0f ? 255 : (uint8_t)t;
}

static inline int luma(const uint8_t *p) { return (p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16; }

static void apply_lut(Img *im, const uint8_t lut[256]) {
    for (int y = 0; y < im->h; y++) {
        uint8_t *p = img_row(im, y);
        for (int x = 0; x < 3 * im->w; x++) p[x] = lut[p[x]];
    }
}

#if AUG_X86
AVX2 static void blend_const_avx2(Img *im, int a, float alpha, const uint8_t lut[256]) {
    __m256i va = _mm256_set1_epi32(a);
    __m256 al = _mm256_set1_ps(alpha);
    for (int y = 0; y < im->h; y++) {
        uint8_t *p = img_row(im, y);
        int n = 3 * im->w, x = 0;
        for (; x + 8 <= n; x += 8) {
            __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + x)));
            _mm_storel_epi64((__m128i *)(p + x), bytes8(blend8(va, v, al)));
        }
        for (; x < n; x++) p[x] = lut[p[x]];
    }
}
#endif

/* blend(a, v, alpha) for every byte: a table, or the same arithmetic eight bytes at a time */
static void blend_const(Img *im, int a, float alpha) {
    uint8_t lut[256];
    for (int v = 0; v < 256; v++) lut[v] = blend(a, v, alpha);
#if AUG_X86
    if (aug_simd()) {
        blend_const_avx2(im, a, alpha, lut);
        return;
    }
#endif
    apply_lut(im, lut);
}

void aug_brightness(Img *im, float factor) { blend_const(im, 0, factor); }

#if AUG_X86
AVX2 static uint64_t luma_sum_avx2(const Img *im) {
    uint64_t sum = 0;
    const __m256i kr = _mm256_set1_epi32(19595), kg = _mm256_set1_epi32(38470), kb = _mm256_set1_epi32(7471);
    const __m256i half = _mm256_set1_epi32(0x8000);
    for (int y = 0; y < im->h; y++) {
        const uint8_t *p = img_row(im, y);
        int x = 0;
        __m256i acc = _mm256_setzero_si256();
        for (; x + 8 <= im->w; x += 8) {
            __m256i r, g, b;
            rgb8_load(p + 3 * x, &r, &g, &b);
            __m256i l = _mm256_add_epi32(_mm256_add_epi32(_mm256_mullo_epi32(r, kr), _mm256_mullo_epi32(g, kg)),
                                         _mm256_add_epi32(_mm256_mullo_epi32(b, kb), half));
            acc = _mm256_add_epi32(acc, _mm256_srli_epi32(l, 16));
        }
        int32_t lanes[8];
        _mm256_storeu_si256((__m256i *)lanes, acc);
        for (int k = 0; k < 8; k++) sum += (uint64_t)lanes[k];
        for (; x < im->w; x++) sum += (uint64_t)luma(p + 3 * x);
    }
    return sum;
}
#endif

void aug_contrast(Img *im, float factor) {
    /* ImageStat mean of the 'L' image, then int(mean + 0.5) */
    uint64_t sum = 0;
#if AUG_X86
    if (aug_simd())
        sum = luma_sum_avx2(im);
    else
#endif
        for (int y = 0; y < im->h; y++) {
            const uint8_t *p = img_row(im, y);
            for (int x = 0; x < im->w; x++) sum += (uint64_t)luma(p + 3 * x);
        }
    double mean = (double)sum / ((double)im->h * (double)im->w);
    blend_const(im, (int)(mean + 0.5), factor);
}

#if AUG_X86
AVX2 static void saturation_avx2(Img *im, float factor) {
    const __m256i kr = _mm256_set1_epi32(19595), kg = _mm256_set1_epi32(38470), kb = _mm256_set1_epi32(7471);
    const __m256i half = _mm256_set1_epi32(0x8000);
    const __m256 al = _mm256_set1_ps(factor);
    for (int y = 0; y < im->h; y++) {
        uint8_t *p = img_row(im, y);
        int x = 0;
        for (; x + 8 <= im->w; x += 8) {
            __m256i r, g, b;
            rgb8_load(p + 3 * x, &r, &g, &b);
            __m256i l = _mm256_add_epi32(_mm256_add_epi32(_mm256_mullo_epi32(r, kr), _mm256_mullo_epi32(g, kg)),
                                         _mm256_add_epi32(_mm256_mullo_epi32(b, kb), half));
            l = _mm256_srli_epi32(l, 16);
            rgb8_store(p + 3 * x, blend8(l, r, al), blend8(l, g, al), blend8(l, b, al));
        }
        for (uint8_t *q = p + 3 * x; x < im->w; x++, q += 3) {
            int l = luma(q);
            q[0] = blend(l, q[0], factor), q[1] = blend(l, q[1], factor), q[2] = blend(l, q[2], factor);
        }
    }
}
#endif

void aug_saturation(Img *im, float factor) {
#if AUG_X86
    if (aug_simd()) {
        saturation_avx2(im, factor);
        return;
    }
#endif
    for (int y = 0; y < im->h; y++) {
        uint8_t *p = img_row(im, y);
        for (int x = 0; x < im->w; x++, p += 3) {
            int l = luma(p);
            p[0] = blend(l, p[0], factor);
            p[1] = blend(l, p[1], factor);
            p[2] = blend(l, p[2], factor);
        }
    }
}

void aug_grayscale(Img *im) {
    for (int y = 0; y < im->h; y++) {
        uint8_t *p = img_row(im, y);
        for (int x = 0; x < im->w; x++, p += 3) p[0] = p[1] = p[2] = (uint8_t)luma(p);
    }
}

void aug_solarize(Img *im, int threshold) { /* rare: the table is fine */
    uint8_t lut[256];
    for (int v = 0; v < 256; v++) lut[v] = (uint8_t)(v < threshold ? v : 255 - v);
    apply_lut(im, lut);
}

void aug_jitter_sample(Rng *r, float b, float c, float s, float h, JitterParams *p) {
    /* torch.randperm(4), as a Fisher-Yates shuffle of our stream */
    uint8_t perm[4] = {0, 1, 2, 3};
    for (int i = 3; i > 0; i--) {
        int j = (int)rng_below(r, (uint32_t)(i + 1));
        uint8_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    /* ColorJitter._check_input: brightness/contrast/saturation (max(0, 1 - v), 1 + v), hue (-h, h); a strength of 0
     * disables the adjustment (torchvision draws nothing for it and skips it): its order entry becomes 255. */
    float strength[4] = {b, c, s, h};
    for (int i = 0; i < 4; i++) p->order[i] = strength[perm[i]] > 0 ? perm[i] : 255;
    p->brightness = b > 0 ? (float)rng_range(r, b < 1 ? 1 - b : 0, 1 + b) : 1.0f;
    p->contrast = c > 0 ? (float)rng_range(r, c < 1 ? 1 - c : 0, 1 + c) : 1.0f;
    p->saturation = s > 0 ? (float)rng_range(r, s < 1 ? 1 - s : 0, 1 + s) : 1.0f;
    p->hue = h > 0 ? (float)rng_range(r, -h, h) : 0.0f;
}

void aug_jitter(Img *im, const JitterParams *p) {
    for (int i = 0; i < 4; i++) {
        switch (p->order[i]) {
        case 0: aug_brightness(im, p->brightness); break;
        case 1: aug_contrast(im, p->contrast); break;
        case 2: aug_saturation(im, p->saturation); break;
        case 3: aug_hue(im, p->hue); break;
        default: break; /* disabled */
        }
    }
}
