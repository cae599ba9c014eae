/* torchvision 0.14's PIL adjust_hue: img.convert('HSV'), H += np.uint8(hue_factor * 255) (wrapping), convert('RGB').
 *
 * Pillow 9.4's rgb2hsv and hsv2rgb (libImaging/Convert.c) mix float and double arithmetic; the expressions below keep
 * the same types operation by operation (C's usual conversions then give the same roundings), so the result is
 * bit-identical. np.uint8(x) of a float truncates toward zero and wraps modulo 256 (checked with numpy 1.24:
 * np.uint8(-12.75) == 244).
 *
 * Pillow's H byte depends only on which channel is the maximum and on the other two channels' distances below it, and
 * its S byte only on (max - min, max): rgb_to_hsv fills tables of those once, and the per-pixel work is a lookup
 * (tests/data/test_aug_torch.c compares every 24-bit colour with PIL). */
#include "aug.h"

#include "trainer/core/error.h"

#include <math.h>
#include <pthread.h>

#include "simd.h"

static inline void rgb_to_hsv(int r, int g, int b, int *oh, int *os, int *ov) {
    int maxc = r > g ? (r > b ? r : b) : (g > b ? g : b);
    int minc = r < g ? (r < b ? r : b) : (g < b ? g : b);
    *ov = maxc;
    if (minc == maxc) {
        *oh = 0;
        *os = 0;
        return;
    }
    float cr = (float)(maxc - minc);
    float s = cr / (float)maxc;
    float h;
    /* only the two of Pillow's rc, gc, bc that the branch uses are computed (same values) */
    if (r == maxc) {
        float gc = (float)(maxc - g) / cr, bc = (float)(maxc - b) / cr;
        h = bc - gc;
    } else if (g == maxc) {
        float rc = (float)(maxc - r) / cr, bc = (float)(maxc - b) / cr;
        h = (float)(2.0 + rc - bc);
    } else {
        float rc = (float)(maxc - r) / cr, gc = (float)(maxc - g) / cr;
        h = (float)(4.0 + gc - rc);
    }
    /* fmod(h / 6 + 1, 1): the argument lies in [5/6, 11/6), where fmod is an exact subtraction */
    double t = h / 6.0 + 1.0;
    h = (float)(t >= 1.0 ? t - 1.0 : t);
    int ih = (int)(h * 255.0), is = (int)(s * 255.0);
    *oh = ih < 0 ? 0 : ih > 255 ? 255 : ih;
    *os = is < 0 ? 0 : is > 255 ? 255 : is;
}

/* hue_of[branch][d1][d2]: branch 0 (R is the maximum; d1 = max - G, d2 = max - B), 1 (G is, R is not; d1 = max - R,
 * d2 = max - B), 2 (B; d1 = max - G, d2 = max - R). sat_of[max - min][max]. Padded: the AVX2 gathers read 4 bytes. */
static struct {
    uint8_t hue_of[3][256][256];
    uint8_t sat_of[256][256];
    uint8_t pad[4];
} tables;
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void fill_tables(void) {
    /* the AVX2 path multiplies by 6/255 and 1/255 where Pillow divides; for every byte the float results agree */
    for (int k = 0; k < 256; k++) {
        double x = (float)k * 6.0 / 255.0, y = (double)k * (6.0 / 255.0);
        RSA_ASSERT(floor(x) == floor(y) && (float)(x - floor(x)) == (float)(y - floor(y)));
        RSA_ASSERT((float)((float)k / 255.0) == (float)((double)k * (1.0 / 255.0)));
    }
    int h, s, v;
    for (int d1 = 0; d1 < 256; d1++)
        for (int d2 = 0; d2 < 256; d2++) {
            rgb_to_hsv(255, 255 - d1, 255 - d2, &h, &s, &v);
            tables.hue_of[0][d1][d2] = (uint8_t)h;
            rgb_to_hsv(255 - d1, 255, 255 - d2, &h, &s, &v);
            tables.hue_of[1][d1][d2] = (uint8_t)h;
            rgb_to_hsv(255 - d2, 255 - d1, 255, &h, &s, &v);
            tables.hue_of[2][d1][d2] = (uint8_t)h;
        }
    for (int cr = 0; cr < 256; cr++)
        for (int maxc = cr; maxc < 256; maxc++) {
            rgb_to_hsv(maxc, maxc - cr, maxc - cr, &h, &s, &v);
            tables.sat_of[cr][maxc] = (uint8_t)s;
        }
}

static inline void rgb_to_hs_table(int r, int g, int b, int *oh, int *os, int *ov) {
    int maxc = r > g ? (r > b ? r : b) : (g > b ? g : b);
    int minc = r < g ? (r < b ? r : b) : (g < b ? g : b);
    int dr = maxc - r, dg = maxc - g, db = maxc - b;
    *oh = dr == 0 ? tables.hue_of[0][dg][db] : dg == 0 ? tables.hue_of[1][dr][db] : tables.hue_of[2][dg][dr];
    *os = tables.sat_of[maxc - minc][maxc];
    *ov = maxc;
}

/* CLIP8(round(v)) for 0 <= v < 2^31: C's round (half away from zero) done exactly without a libm call, since
 * v - trunc(v) is exact */
static inline uint8_t round_clip8(double v) {
    int i = (int)v;
    i += v - (double)i >= 0.5;
    return (uint8_t)(i > 255 ? 255 : i);
}

typedef struct {
    int sector[256];
    float frac[256], sat[256];
    int shift;
} HueTables;

static void hue_row_scalar(uint8_t *px, int n, const HueTables *tb) {
    for (int x = 0; x < n; x++, px += 3) {
        int h, s, v;
        rgb_to_hs_table(px[0], px[1], px[2], &h, &s, &v);
        h = (uint8_t)(h + tb->shift);
        if (s == 0) {
            px[0] = px[1] = px[2] = (uint8_t)v;
            continue;
        }
        float f = tb->frac[h], fs = tb->sat[s];
        uint8_t p = round_clip8((float)v * (1.0 - fs));
        uint8_t q = round_clip8((float)v * (1.0 - fs * f));
        uint8_t t = round_clip8((float)v * (1.0 - fs * (1.0 - f)));
        uint8_t vv = (uint8_t)v;
        switch (tb->sector[h]) {
        case 0: px[0] = vv, px[1] = t, px[2] = p; break;
        case 1: px[0] = q, px[1] = vv, px[2] = p; break;
        case 2: px[0] = p, px[1] = vv, px[2] = t; break;
        case 3: px[0] = p, px[1] = q, px[2] = vv; break;
        case 4: px[0] = t, px[1] = p, px[2] = vv; break;
        default: px[0] = vv, px[1] = p, px[2] = q; break;
        }
    }
}

#if AUG_X86
/* Eight pixels at a time: every float and double operation of the scalar code, lane by lane (IEEE division,
 * conversions that truncate or round to nearest as C does, no FMA), branches replaced by selects. */

AVX2 static inline __m256 f32_of_f64(__m256d lo, __m256d hi) {
    return _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
}
AVX2 static inline __m256d lo_f64(__m256 x) { return _mm256_cvtps_pd(_mm256_castps256_ps128(x)); }
AVX2 static inline __m256d hi_f64(__m256 x) { return _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)); }
/* (int)(x) for the doubles of two halves */
AVX2 static inline __m256i trunc_i32(__m256d lo, __m256d hi) {
    return _mm256_set_m128i(_mm256_cvttpd_epi32(hi), _mm256_cvttpd_epi32(lo));
}
/* C's round() for x >= 0: floor, plus one when the (exact) remainder is at least a half */
AVX2 static inline __m256d round_away(__m256d x) {
    __m256d fl = _mm256_round_pd(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m256d up = _mm256_cmp_pd(_mm256_sub_pd(x, fl), _mm256_set1_pd(0.5), _CMP_GE_OQ);
    return _mm256_add_pd(fl, _mm256_and_pd(up, _mm256_set1_pd(1.0)));
}
AVX2 static inline __m256i clip255(__m256i x) {
    return _mm256_max_epi32(_mm256_setzero_si256(), _mm256_min_epi32(x, _mm256_set1_epi32(255)));
}
AVX2 static inline __m256i sel(__m256i mask, __m256i yes, __m256i no) { return _mm256_blendv_epi8(no, yes, mask); }

AVX2 static void hue_row_avx2(uint8_t *px, int n, const HueTables *tb) {
    int x = 0;
    const __m256d one = _mm256_set1_pd(1.0);
    for (; x + 8 <= n; x += 8) {
        uint8_t *p = px + 3 * x;
        __m256i r, g, b;
        rgb8_load(p, &r, &g, &b);
        __m256i maxc = _mm256_max_epi32(r, _mm256_max_epi32(g, b));
        __m256i minc = _mm256_min_epi32(r, _mm256_min_epi32(g, b));
        __m256i grey = _mm256_cmpeq_epi32(maxc, minc);
        __m256 cr = _mm256_cvtepi32_ps(_mm256_sub_epi32(maxc, minc));
        __m256 s = _mm256_div_ps(cr, _mm256_cvtepi32_ps(maxc)); /* grey lanes (maybe 0/0) are discarded */
        __m256 rc = _mm256_div_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(maxc, r)), cr);
        __m256 gc = _mm256_div_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(maxc, g)), cr);
        __m256 bc = _mm256_div_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(maxc, b)), cr);
        __m256 h_r = _mm256_sub_ps(bc, gc);
        __m256 h_g = f32_of_f64(_mm256_sub_pd(_mm256_add_pd(_mm256_set1_pd(2.0), lo_f64(rc)), lo_f64(bc)),
                                _mm256_sub_pd(_mm256_add_pd(_mm256_set1_pd(2.0), hi_f64(rc)), hi_f64(bc)));
        __m256 h_b = f32_of_f64(_mm256_sub_pd(_mm256_add_pd(_mm256_set1_pd(4.0), lo_f64(gc)), lo_f64(rc)),
                                _mm256_sub_pd(_mm256_add_pd(_mm256_set1_pd(4.0), hi_f64(gc)), hi_f64(rc)));
        __m256 h = _mm256_blendv_ps(h_b, h_g, _mm256_castsi256_ps(_mm256_cmpeq_epi32(g, maxc)));
        h = _mm256_blendv_ps(h, h_r, _mm256_castsi256_ps(_mm256_cmpeq_epi32(r, maxc)));
        __m256d t_lo = _mm256_add_pd(_mm256_div_pd(lo_f64(h), _mm256_set1_pd(6.0)), one);
        __m256d t_hi = _mm256_add_pd(_mm256_div_pd(hi_f64(h), _mm256_set1_pd(6.0)), one);
        t_lo = _mm256_blendv_pd(t_lo, _mm256_sub_pd(t_lo, one), _mm256_cmp_pd(t_lo, one, _CMP_GE_OQ));
        t_hi = _mm256_blendv_pd(t_hi, _mm256_sub_pd(t_hi, one), _mm256_cmp_pd(t_hi, one, _CMP_GE_OQ));
        h = f32_of_f64(t_lo, t_hi);
        const __m256d k255 = _mm256_set1_pd(255.0);
        __m256i ih = clip255(trunc_i32(_mm256_mul_pd(lo_f64(h), k255), _mm256_mul_pd(hi_f64(h), k255)));
        __m256i is = clip255(trunc_i32(_mm256_mul_pd(lo_f64(s), k255), _mm256_mul_pd(hi_f64(s), k255)));
        ih = _mm256_andnot_si256(grey, ih);
        is = _mm256_andnot_si256(grey, is);
        __m256i v = maxc;
        ih = _mm256_and_si256(_mm256_add_epi32(ih, _mm256_set1_epi32(tb->shift)), _mm256_set1_epi32(255));
        /* hsv2rgb's i = floor(h * 6.0 / 255.0), f = h * 6.0 / 255.0 - i and fs = s / 255.0, computed as Pillow does */
        __m256 f, fs;
        __m256i sector;
        {
            const __m256d six_255 = _mm256_set1_pd(6.0 / 255.0), inv255 = _mm256_set1_pd(1.0 / 255.0);
            /* the multiplications give the same i and f as the divisions for all 256 h (checked in fill_tables) */
            __m256d x_lo = _mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(ih)), six_255);
            __m256d x_hi = _mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(ih, 1)), six_255);
            __m256d i_lo = _mm256_round_pd(x_lo, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
            __m256d i_hi = _mm256_round_pd(x_hi, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
            f = f32_of_f64(_mm256_sub_pd(x_lo, i_lo), _mm256_sub_pd(x_hi, i_hi));
            sector = trunc_i32(i_lo, i_hi);
            sector = _mm256_sub_epi32(sector, _mm256_and_si256(_mm256_cmpgt_epi32(sector, _mm256_set1_epi32(5)),
                                                               _mm256_set1_epi32(6)));
            fs = f32_of_f64(_mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(is)), inv255),
                            _mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(is, 1)), inv255));
        }
        __m256 fsf = _mm256_mul_ps(fs, f);
        __m256d vd_lo = _mm256_cvtepi32_pd(_mm256_castsi256_si128(v));
        __m256d vd_hi = _mm256_cvtepi32_pd(_mm256_extracti128_si256(v, 1));
        __m256d pq[3][2];
        for (int half = 0; half < 2; half++) {
            __m256d vd = half ? vd_hi : vd_lo;
            __m256d fsd = half ? hi_f64(fs) : lo_f64(fs), fd = half ? hi_f64(f) : lo_f64(f);
            __m256d fsfd = half ? hi_f64(fsf) : lo_f64(fsf);
            pq[0][half] = round_away(_mm256_mul_pd(vd, _mm256_sub_pd(one, fsd)));
            pq[1][half] = round_away(_mm256_mul_pd(vd, _mm256_sub_pd(one, fsfd)));
            pq[2][half] = round_away(_mm256_mul_pd(vd, _mm256_sub_pd(one, _mm256_mul_pd(fsd, _mm256_sub_pd(one, fd)))));
        }
        __m256i P = clip255(trunc_i32(pq[0][0], pq[0][1]));
        __m256i Q = clip255(trunc_i32(pq[1][0], pq[1][1]));
        __m256i T = clip255(trunc_i32(pq[2][0], pq[2][1]));
        __m256i s0 = _mm256_cmpeq_epi32(sector, _mm256_set1_epi32(0));
        __m256i s1 = _mm256_cmpeq_epi32(sector, _mm256_set1_epi32(1));
        __m256i s2 = _mm256_cmpeq_epi32(sector, _mm256_set1_epi32(2));
        __m256i s3 = _mm256_cmpeq_epi32(sector, _mm256_set1_epi32(3));
        __m256i s4 = _mm256_cmpeq_epi32(sector, _mm256_set1_epi32(4));
        /* sector: 0 (v t p) 1 (q v p) 2 (p v t) 3 (p q v) 4 (t p v) 5 (v p q) */
        __m256i R = sel(s1, Q, sel(_mm256_or_si256(s2, s3), P, sel(s4, T, v)));
        __m256i G = sel(s0, T, sel(_mm256_or_si256(s1, s2), v, sel(s3, Q, P)));
        __m256i B = sel(_mm256_or_si256(s0, s1), P, sel(s2, T, sel(_mm256_or_si256(s3, s4), v, Q)));
        __m256i flat = _mm256_cmpeq_epi32(is, _mm256_setzero_si256());
        R = sel(flat, v, R), G = sel(flat, v, G), B = sel(flat, v, B);
        rgb8_store(p, R, G, B);
    }
    hue_row_scalar(px + 3 * x, n - x, tb);
}
#endif

void aug_hue(Img *im, float factor) {
    /* per-hue sector and fraction, per-saturation fraction: pure functions of one byte */
    HueTables tb;
    for (int h = 0; h < 256; h++) {
        int i = (int)floor((float)h * 6.0 / 255.0);
        tb.sector[h] = i % 6;
        tb.frac[h] = (float)((float)h * 6.0 / 255.0 - (float)i);
    }
    for (int s = 0; s < 256; s++) tb.sat[s] = (float)((float)s / 255.0);
    tb.shift = (uint8_t)((int)((double)factor * 255.0) & 255);
    pthread_once(&tables_once, fill_tables);
#if AUG_X86
    if (aug_simd()) {
        for (int y = 0; y < im->h; y++) hue_row_avx2(img_row(im, y), im->w, &tb);
        return;
    }
#endif
    for (int y = 0; y < im->h; y++) hue_row_scalar(img_row(im, y), im->w, &tb);
}
