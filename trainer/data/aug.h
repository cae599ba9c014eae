/* Image augmentations with torchvision 0.14 + Pillow 9.4 semantics, on 8-bit RGB images.
 *
 * Every op reproduces the arithmetic of the PIL path torchvision takes (Pillow's fixed-point resampling, its float
 * blend, its HSV conversion, its extended box blur), so an op given the same parameters gives the same bytes as
 * torchvision + PIL (tests/data/test_aug_torch.c measures the difference against fixtures written by
 * tests/oracle/make_aug_fixtures.py). Random parameters are never drawn inside an op: each op takes them
 * explicitly, and separate *_sample functions draw them from an Rng in torchvision's order, so tests can force them.
 *
 * Images are HWC, 3 bytes per pixel (R, G, B), rows `stride` bytes apart. Nothing here allocates except through an
 * AugScratch (one per thread), whose buffers grow on demand and are reused; running out of memory is fatal. */
#ifndef RSA_AUG_H
#define RSA_AUG_H

#include "trainer/core/rng.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *px; /* first byte of the top-left pixel */
    int h, w;
    int stride; /* bytes from one row to the next (>= 3 w) */
} Img;

/* The hot loops are compiled for AVX2 and for the x86-64 baseline and picked at run time (GCC function
 * multiversioning). Both do the same integer or IEEE float operations (AVX2 without FMA, so no contraction), hence the
 * same bytes. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#ifdef __SANITIZE_THREAD__ /* TSan's runtime is not up when ifunc resolvers run */
#define AUG_HOT
#else
#define AUG_HOT __attribute__((target_clones("avx2", "default")))
#endif
#define AUG_X86 1
#else
#define AUG_HOT
#define AUG_X86 0
#endif

/* Whether the hand-vectorised paths (AVX2: hue, horizontal resampling) run; they give the same bytes as the scalar
 * ones. On by default where the CPU has AVX2; aug_set_simd(false) forces the scalar code (tests compare the two). */
bool aug_simd(void);
void aug_set_simd(bool on);

static inline Img img_make(uint8_t *px, int h, int w) { return (Img){px, h, w, 3 * w}; }
static inline uint8_t *img_row(const Img *im, int y) { return im->px + (size_t)y * (size_t)im->stride; }

/* Per-thread scratch memory. Zero-initialise ({0}); free with aug_scratch_free. */
enum { AUG_SCRATCH_SLOTS = 8 };
typedef struct {
    void *buf[AUG_SCRATCH_SLOTS];
    size_t cap[AUG_SCRATCH_SLOTS];
} AugScratch;
void aug_scratch_free(AugScratch *s);
/* Buffer `slot` with at least `bytes` bytes (contents not kept across growth). Slots 0-3 are used by the ops
 * below; 4-7 are free for callers. */
void *aug_scratch(AugScratch *s, int slot, size_t bytes);

/* ---- geometry ---- */

/* A crop as torchvision's (top, left, height, width). */
typedef struct {
    int i, j, h, w;
} CropBox;

/* RandomResizedCrop.get_params: up to 10 tries of (area fraction U[scale), log aspect ratio U[log ratio)), accepting
 * the first that fits, with the position drawn uniformly (top first, then left); otherwise torchvision's central
 * fallback crop. Each try draws two uniforms, an accepted one two more integers. */
CropBox aug_rrc_sample(Rng *r, int height, int width, double scale_lo, double scale_hi, double ratio_lo,
                       double ratio_hi);
/* CenterCrop's box for a crop no larger than the image: top = round((H - h) / 2) with Python's round-half-even. */
CropBox aug_center_box(int height, int width, int crop_h, int crop_w);
/* Resize(size) with one int: the shorter side becomes `size`, the longer int(size * long / short) (torchvision). */
void aug_short_side(int height, int width, int size, int *out_h, int *out_w);

/* Pillow's Image.resize(dst size, BILINEAR, box) of `src`: separable triangle filter widened by the downscale factor
 * (antialiasing), coefficients in 22-bit fixed point, horizontal pass first (rounded to 8 bits), then vertical.
 * box = {x0, y0, x1, y1} in src pixels (NULL: the whole image); dst->h and dst->w give the output size. dst must not
 * overlap src. */
void aug_resize(const Img *src, const float *box, Img *dst, AugScratch *s);
/* torchvision's resized_crop on a PIL image: crop (the crop becomes an image of its own, so the filter never reads
 * outside it), then resize to dst's size. */
void aug_resized_crop(const Img *src, CropBox c, Img *dst, AugScratch *s);
/* The sub-image of src at box c (no copy). */
Img aug_crop_view(const Img *src, CropBox c);
void aug_copy(const Img *src, Img *dst); /* same size */
void aug_hflip(Img *im);

/* ---- colour (in place) ---- */

/* ImageEnhance.Brightness/Contrast/Color: Image.blend(degenerate, im, factor) with Pillow's float arithmetic;
 * the degenerate image is black, the rounded mean of the 'L' image, and the 'L' image respectively. */
void aug_brightness(Img *im, float factor);
void aug_contrast(Img *im, float factor);
void aug_saturation(Img *im, float factor);
/* torchvision's PIL adjust_hue: convert to Pillow's 8-bit HSV, add np.uint8(factor * 255) to H with wraparound,
 * convert back. factor in [-0.5, 0.5]. */
void aug_hue(Img *im, float factor);
/* convert('L') (ITU-R 601-2 in 16-bit fixed point, rounded), replicated to the 3 channels. */
void aug_grayscale(Img *im);
/* ImageOps.solarize: values >= threshold become 255 - value. */
void aug_solarize(Img *im, int threshold);
/* ImageFilter.GaussianBlur(radius=sigma): three passes of Pillow's extended box blur per direction. */
void aug_gaussian_blur(Img *im, float sigma, AugScratch *s);

/* ColorJitter: the four adjustments in order[0..3] (0 brightness, 1 contrast, 2 saturation, 3 hue). */
typedef struct {
    uint8_t order[4];
    float brightness, contrast, saturation, hue;
} JitterParams;
/* torchvision 0.14's ColorJitter.get_params for strengths (b, c, s, h): randperm(4), then the factors U[1-b, 1+b],
 * U[1-c, 1+c], U[1-s, 1+s], U[-h, h] in that order. */
void aug_jitter_sample(Rng *r, float b, float c, float s, float h, JitterParams *p);
void aug_jitter(Img *im, const JitterParams *p);

/* ---- to float ---- */

/* ToTensor + Normalize as torchvision computes them in float32: ((v / 255) - mean) / std, one table per channel. */
typedef struct {
    float lut[3][256];
    float mean[3], std[3];
} NormLut;
void aug_norm_init(NormLut *n, const float mean[3], const float std[3]);
/* Writes the 3 x h x w planes of im (CHW) to out. */
void aug_normalize(const Img *im, const NormLut *n, float *out);

/* ---- one view: t1 (crop, flip) and t2 (jitter, grayscale, blur, solarize) ---- */

typedef struct {
    int size; /* output side */
    /* t1: RandomResizedCrop(size, scale, ratio) then RandomHorizontalFlip(p_flip) */
    double scale_lo, scale_hi, ratio_lo, ratio_hi;
    float p_flip;
    /* t2 */
    float p_jitter, jitter_b, jitter_c, jitter_s, jitter_h;
    float p_gray;
    float p_blur, sigma_lo, sigma_hi;
    float p_solarize; /* 0: no draw at all */
    int solarize_threshold;
} AugRecipe;

/* The recipes of the official code: weak t1 = RandomResizedCrop(size, (0.2, 1)) + flip; t2 = ColorJitter(0.4, 0.4,
 * 0.4, 0.1) p=0.8, RandomGrayscale p=0.2, GaussianBlur sigma U[0.1, 2] p=0.5. `linear` gives linear evaluation's
 * RandomResizedCrop(size) (scale (0.08, 1)) + flip and no t2. */
AugRecipe aug_recipe_ssl(int size);
AugRecipe aug_recipe_linear(int size);

typedef struct {
    bool crop; /* false: no t1 (the view is its source image) */
    CropBox box;
    bool flip;
    bool jitter;
    JitterParams jp;
    bool gray;
    bool blur;
    float sigma;
    bool solarize;
    int solarize_threshold;
} ViewParams;

/* Draw t1's parameters for a source image of height x width, in torchvision's order (crop, then flip). */
void aug_sample_t1(Rng *r, const AugRecipe *rc, int height, int width, ViewParams *v);
/* Draw t2's parameters: apply-jitter, jitter params (only when applied), grayscale, apply-blur, sigma (only when
 * applied), solarize (only when the recipe has p_solarize > 0). */
void aug_sample_t2(Rng *r, const AugRecipe *rc, ViewParams *v);
/* t1: dst (size x size) = flip(resized_crop(src, box)). */
void aug_apply_t1(const Img *src, const ViewParams *v, Img *dst, AugScratch *s);
/* t2 in place. */
void aug_apply_t2(Img *im, const ViewParams *v, AugScratch *s);

#endif
