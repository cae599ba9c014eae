/* Internal AVX2 helpers for the hand-vectorised augmentation loops (callers check aug_simd() first). */
#ifndef RSA_DATA_SIMD_H
#define RSA_DATA_SIMD_H

#include "trainer/data/aug.h"

#if AUG_X86
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2")))

/* The 8 R, G and B values of 8 packed RGB pixels (24 bytes from p; reads nothing beyond), as int32 lanes. */
AVX2 static inline void rgb8_load(const uint8_t *p, __m256i *r, __m256i *g, __m256i *b) {
    __m128i a = _mm_loadu_si128((const __m128i *)p);
    __m128i c = _mm_loadl_epi64((const __m128i *)(p + 16));
    const __m128i ra = _mm_setr_epi8(0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i rc = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, 2, 5, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i ga = _mm_setr_epi8(1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i gc = _mm_setr_epi8(-1, -1, -1, -1, -1, 0, 3, 6, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i ba = _mm_setr_epi8(2, 5, 8, 11, 14, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i bc = _mm_setr_epi8(-1, -1, -1, -1, -1, 1, 4, 7, -1, -1, -1, -1, -1, -1, -1, -1);
    *r = _mm256_cvtepu8_epi32(_mm_or_si128(_mm_shuffle_epi8(a, ra), _mm_shuffle_epi8(c, rc)));
    *g = _mm256_cvtepu8_epi32(_mm_or_si128(_mm_shuffle_epi8(a, ga), _mm_shuffle_epi8(c, gc)));
    *b = _mm256_cvtepu8_epi32(_mm_or_si128(_mm_shuffle_epi8(a, ba), _mm_shuffle_epi8(c, bc)));
}

/* The low bytes of 8 int32 lanes (values 0..255) as 8 bytes in the low half of an xmm. */
AVX2 static inline __m128i bytes8(__m256i x) {
    __m128i lo = _mm256_castsi256_si128(x), hi = _mm256_extracti128_si256(x, 1);
    __m128i w = _mm_packus_epi32(lo, hi);
    return _mm_packus_epi16(w, w);
}

/* Writes 8 pixels (24 bytes at p) from R, G, B int32 lanes with values 0..255. */
AVX2 static inline void rgb8_store(uint8_t *p, __m256i r, __m256i g, __m256i b) {
    /* x = R0..R7 G0..G7 (16 bytes), y = B0..B7 */
    __m128i x = _mm_unpacklo_epi64(bytes8(r), bytes8(g)), y = bytes8(b);
    const __m128i xa = _mm_setr_epi8(0, 8, -1, 1, 9, -1, 2, 10, -1, 3, 11, -1, 4, 12, -1, 5);
    const __m128i ya = _mm_setr_epi8(-1, -1, 0, -1, -1, 1, -1, -1, 2, -1, -1, 3, -1, -1, 4, -1);
    const __m128i xb = _mm_setr_epi8(13, -1, 6, 14, -1, 7, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i yb = _mm_setr_epi8(-1, 5, -1, -1, 6, -1, -1, 7, -1, -1, -1, -1, -1, -1, -1, -1);
    _mm_storeu_si128((__m128i *)p, _mm_or_si128(_mm_shuffle_epi8(x, xa), _mm_shuffle_epi8(y, ya)));
    _mm_storel_epi64((__m128i *)(p + 16), _mm_or_si128(_mm_shuffle_epi8(x, xb), _mm_shuffle_epi8(y, yb)));
}

/* Pillow's blend a + alpha (x - a) in float, clipped to [0, 255] and truncated, for 8 int32 lanes: the clip is a
 * no-op when 0 <= alpha <= 1 (Pillow skips it there), so one formula serves both of Pillow's branches. */
AVX2 static inline __m256i blend8(__m256i a, __m256i x, __m256 alpha) {
    __m256 t = _mm256_add_ps(_mm256_cvtepi32_ps(a), _mm256_mul_ps(alpha, _mm256_cvtepi32_ps(_mm256_sub_epi32(x, a))));
    t = _mm256_min_ps(_mm256_max_ps(t, _mm256_setzero_ps()), _mm256_set1_ps(255.0f));
    return _mm256_cvttps_epi32(t);
}
#endif

#endif
