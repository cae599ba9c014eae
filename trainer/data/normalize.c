/* ToTensor + Normalize: torchvision computes (float32(v) / 255 - mean) / std in float32, so a table of the 256
 * possible results per channel reproduces it bit for bit. */
#include "aug.h"
#include "simd.h"

void aug_norm_init(NormLut *n, const float mean[3], const float std[3]) {
    for (int c = 0; c < 3; c++) n->mean[c] = mean[c], n->std[c] = std[c];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) n->lut[c][v] = ((float)v / 255.0f - mean[c]) / std[c];
}

#if AUG_X86
/* the table's expression, evaluated eight pixels at a time (IEEE division and subtraction: the same floats) */
AVX2 static void normalize_avx2(const Img *im, const NormLut *n, float *out) {
    size_t plane = (size_t)im->h * (size_t)im->w;
    float *o[3] = {out, out + plane, out + 2 * plane};
    __m256 mean[3], std[3];
    for (int c = 0; c < 3; c++) mean[c] = _mm256_set1_ps(n->mean[c]), std[c] = _mm256_set1_ps(n->std[c]);
    const __m256 k255 = _mm256_set1_ps(255.0f);
    for (int y = 0; y < im->h; y++) {
        const uint8_t *p = img_row(im, y);
        int x = 0;
        for (; x + 8 <= im->w; x += 8) {
            __m256i v[3];
            rgb8_load(p + 3 * x, &v[0], &v[1], &v[2]);
            for (int c = 0; c < 3; c++) {
                __m256 f = _mm256_div_ps(_mm256_cvtepi32_ps(v[c]), k255);
                _mm256_storeu_ps(o[c], _mm256_div_ps(_mm256_sub_ps(f, mean[c]), std[c]));
                o[c] += 8;
            }
        }
        for (; x < im->w; x++)
            for (int c = 0; c < 3; c++) *o[c]++ = n->lut[c][p[3 * x + c]];
    }
}
#endif

void aug_normalize(const Img *im, const NormLut *n, float *out) {
#if AUG_X86
    if (aug_simd()) {
        normalize_avx2(im, n, out);
        return;
    }
#endif
    size_t plane = (size_t)im->h * (size_t)im->w;
    float *o0 = out, *o1 = out + plane, *o2 = out + 2 * plane;
    const float *l0 = n->lut[0], *l1 = n->lut[1], *l2 = n->lut[2];
    for (int y = 0; y < im->h; y++) {
        const uint8_t *p = img_row(im, y);
        for (int x = 0; x < im->w; x++, p += 3) {
            *o0++ = l0[p[0]];
            *o1++ = l1[p[1]];
            *o2++ = l2[p[2]];
        }
    }
}
