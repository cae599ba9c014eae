/* One augmented view: t1 (RandomResizedCrop + RandomHorizontalFlip) and t2 (RandomApply(ColorJitter),
 * RandomGrayscale, RandomApply(GaussianBlur), optionally Solarize), with the draws in the order torchvision's Compose
 * makes them. RandomApply applies when not (p < u), RandomGrayscale and RandomHorizontalFlip when u < p, for u
 * uniform in [0, 1). */
#include "aug.h"

AugRecipe aug_recipe_ssl(int size) {
    return (AugRecipe){.size = size,
                       .scale_lo = 0.2,
                       .scale_hi = 1.0,
                       .ratio_lo = 3.0 / 4.0,
                       .ratio_hi = 4.0 / 3.0,
                       .p_flip = 0.5f,
                       .p_jitter = 0.8f,
                       .jitter_b = 0.4f,
                       .jitter_c = 0.4f,
                       .jitter_s = 0.4f,
                       .jitter_h = 0.1f,
                       .p_gray = 0.2f,
                       .p_blur = 0.5f,
                       .sigma_lo = 0.1f,
                       .sigma_hi = 2.0f,
                       .p_solarize = 0.0f,
                       .solarize_threshold = 128};
}

AugRecipe aug_recipe_linear(int size) {
    return (AugRecipe){.size = size, .scale_lo = 0.08, .scale_hi = 1.0, .ratio_lo = 3.0 / 4.0, .ratio_hi = 4.0 / 3.0,
                       .p_flip = 0.5f, .solarize_threshold = 128};
}

void aug_sample_t1(Rng *r, const AugRecipe *rc, int height, int width, ViewParams *v) {
    v->crop = true;
    v->box = aug_rrc_sample(r, height, width, rc->scale_lo, rc->scale_hi, rc->ratio_lo, rc->ratio_hi);
    v->flip = rng_uniform(r) < rc->p_flip;
}

void aug_sample_t2(Rng *r, const AugRecipe *rc, ViewParams *v) {
    v->jitter = !(rc->p_jitter < rng_uniform(r));
    if (v->jitter) aug_jitter_sample(r, rc->jitter_b, rc->jitter_c, rc->jitter_s, rc->jitter_h, &v->jp);
    v->gray = rng_uniform(r) < rc->p_gray;
    v->blur = !(rc->p_blur < rng_uniform(r));
    if (v->blur) v->sigma = (float)rng_range(r, rc->sigma_lo, rc->sigma_hi);
    v->solarize = rc->p_solarize > 0 && !(rc->p_solarize < rng_uniform(r));
    v->solarize_threshold = rc->solarize_threshold;
}

void aug_apply_t1(const Img *src, const ViewParams *v, Img *dst, AugScratch *s) {
    if (v->crop)
        aug_resized_crop(src, v->box, dst, s);
    else
        aug_copy(src, dst);
    if (v->flip) aug_hflip(dst);
}

void aug_apply_t2(Img *im, const ViewParams *v, AugScratch *s) {
    if (v->jitter) aug_jitter(im, &v->jp);
    if (v->gray) aug_grayscale(im);
    if (v->blur) aug_gaussian_blur(im, v->sigma, s);
    if (v->solarize) aug_solarize(im, v->solarize_threshold);
}
