/* The views of one sample for each ViewMode: which random streams are drawn, in which order, and how the views are
 * rendered from the source image (see data.h for the modes). Shared by the loader and data_make_views. */
#include "sample.h"

#include "trainer/core/error.h"

#include <math.h>
#include <string.h>

int view_count(ViewMode m) {
    switch (m) {
    case VIEWS_MA: return 4;
    case VIEWS_AA:
    case VIEWS_AW:
    case VIEWS_WW: return 2;
    default: return 1;
    }
}

static const char *const MODE_NAMES[] = {"ma", "aa", "aw", "ww", "none", "eval-train", "eval-test"};

const char *view_mode_name(ViewMode m) {
    return (unsigned)m < sizeof MODE_NAMES / sizeof MODE_NAMES[0] ? MODE_NAMES[m] : "?";
}

int view_mode_parse(const char *name, ViewMode *out) {
    for (int i = 0; i < (int)(sizeof MODE_NAMES / sizeof MODE_NAMES[0]); i++)
        if (strcmp(name, MODE_NAMES[i]) == 0) {
            *out = (ViewMode)i;
            return 0;
        }
    return rsa_fail("use ma, aa, aw, ww, none, eval-train or eval-test", "unknown view mode '%s'", name);
}

int view_cfg_init(ViewCfg *c, const LoaderSpec *spec) {
    memset(c, 0, sizeof *c);
    c->mode = spec->mode;
    c->size = spec->size;
    c->resize = spec->resize;
    c->purpose = spec->eval ? RNG_EVAL_AUGMENT : RNG_AUGMENT;
    c->seed = spec->seed;
    c->views = view_count(spec->mode);
    if (spec->size < 1 || spec->size > 4096)
        return rsa_fail("use the data set's size (32, 64 or 224)", "view size %d is out of range", spec->size);
    if ((unsigned)spec->mode > VIEWS_EVAL_TEST) return rsa_fail("use a ViewMode", "bad view mode %d", spec->mode);
    for (int ch = 0; ch < 3; ch++)
        if (!(spec->std[ch] > 0))
            return rsa_fail("set mean and std (loader_spec_default fills them)", "std[%d] = %g is not positive", ch,
                            spec->std[ch]);
    c->recipe = spec->mode == VIEWS_EVAL_TRAIN ? aug_recipe_linear(spec->size) : aug_recipe_ssl(spec->size);
    if (spec->scale_lo > 0 || spec->scale_hi > 0) {
        if (!(spec->scale_lo > 0 && spec->scale_lo <= spec->scale_hi && spec->scale_hi <= 1))
            return rsa_fail("use 0 < scale_lo <= scale_hi <= 1", "bad crop scale (%g, %g)", spec->scale_lo,
                            spec->scale_hi);
        c->recipe.scale_lo = spec->scale_lo;
        c->recipe.scale_hi = spec->scale_hi;
    }
    aug_norm_init(&c->norm, spec->mean, spec->std);
    return 0;
}

void view_plan(const ViewCfg *c, int epoch, int64_t index, int height, int width, ViewParams p[4]) {
    memset(p, 0, 4 * sizeof *p);
    Rng r;
    uint32_t e = (uint32_t)epoch, i = (uint32_t)index;
    switch (c->mode) {
    case VIEWS_MA:
        for (int v = 0; v < 2; v++) {
            rng_init(&r, c->seed, c->purpose, e, i, (uint32_t)v);
            aug_sample_t1(&r, &c->recipe, height, width, &p[v]);
        }
        for (int v = 2; v < 4; v++) {
            rng_init(&r, c->seed, c->purpose, e, i, (uint32_t)v);
            p[v] = p[v - 2]; /* a_i starts from w_i: same crop and flip */
            aug_sample_t2(&r, &c->recipe, &p[v]);
        }
        break;
    case VIEWS_AA:
    case VIEWS_AW:
    case VIEWS_WW:
        for (int v = 0; v < 2; v++) {
            rng_init(&r, c->seed, c->purpose, e, i, (uint32_t)v);
            aug_sample_t1(&r, &c->recipe, height, width, &p[v]);
            bool aggressive = c->mode == VIEWS_AA || (c->mode == VIEWS_AW && v == 0);
            if (aggressive) aug_sample_t2(&r, &c->recipe, &p[v]);
        }
        break;
    case VIEWS_EVAL_TRAIN:
        rng_init(&r, c->seed, c->purpose, e, i, 0);
        aug_sample_t1(&r, &c->recipe, height, width, &p[0]);
        break;
    default: break; /* NONE, EVAL_TEST: nothing random */
    }
}

void view_min_source(const ViewCfg *c, const ViewParams p[4], int height, int width, int *min_h, int *min_w) {
    /* a crop of h x w source pixels that becomes size x size keeps enough detail if the reduced image still has
     * `size` pixels across the crop: h * scale >= size, i.e. the image must keep height * size / h pixels */
    double need_h = 0, need_w = 0;
    int n = c->mode == VIEWS_MA ? 2 : c->views;
    switch (c->mode) {
    case VIEWS_NONE: need_h = height, need_w = width; break;
    case VIEWS_EVAL_TEST:
        if (c->resize > 0) {
            int oh, ow;
            aug_short_side(height, width, c->resize, &oh, &ow);
            need_h = oh, need_w = ow;
        } else {
            need_h = height, need_w = width;
        }
        break;
    default:
        for (int v = 0; v < n; v++) {
            double sh = (double)height * c->size / p[v].box.h, sw = (double)width * c->size / p[v].box.w;
            if (sh > need_h) need_h = sh;
            if (sw > need_w) need_w = sw;
        }
    }
    *min_h = (int)ceil(need_h);
    *min_w = (int)ceil(need_w);
}

/* The sub-image of the decoded (possibly reduced) source covering crop c of the full-size image, and c's exact
 * position in it: Pillow's crop-then-resize with the crop's edges at fractional positions when reduced. */
static void t1_render(const Img *src, int full_h, int full_w, const ViewParams *p, Img *dst, AugScratch *s) {
    if (src->h == full_h && src->w == full_w) {
        aug_apply_t1(src, p, dst, s);
        return;
    }
    double fy = (double)src->h / full_h, fx = (double)src->w / full_w;
    double y0 = p->box.i * fy, y1 = (p->box.i + p->box.h) * fy, x0 = p->box.j * fx, x1 = (p->box.j + p->box.w) * fx;
    int iy0 = (int)y0, ix0 = (int)x0, iy1 = (int)ceil(y1), ix1 = (int)ceil(x1);
    if (iy1 > src->h) iy1 = src->h;
    if (ix1 > src->w) ix1 = src->w;
    Img sub = aug_crop_view(src, (CropBox){iy0, ix0, iy1 - iy0, ix1 - ix0});
    float box[4] = {(float)(x0 - ix0), (float)(y0 - iy0), (float)(x1 - ix0), (float)(y1 - iy0)};
    if (box[2] > sub.w) box[2] = (float)sub.w;
    if (box[3] > sub.h) box[3] = (float)sub.h;
    aug_resize(&sub, box, dst, s);
    if (p->flip) aug_hflip(dst);
}

/* torchvision's CenterCrop, padding with zeros where the crop is larger than the image. */
static void center_crop_to(const Img *src, int size, Img *dst) {
    int pad_y = 0, pad_x = 0, off_y = 0, off_x = 0;
    if (size > src->h)
        pad_y = (size - src->h) / 2;
    else
        off_y = (int)nearbyint((src->h - size) / 2.0);
    if (size > src->w)
        pad_x = (size - src->w) / 2;
    else
        off_x = (int)nearbyint((src->w - size) / 2.0);
    for (int y = 0; y < size; y++) {
        uint8_t *out = img_row(dst, y);
        int sy = y - pad_y + off_y;
        for (int x = 0; x < size; x++) {
            int sx = x - pad_x + off_x;
            bool in = sy >= 0 && sy < src->h && sx >= 0 && sx < src->w;
            const uint8_t *p = in ? img_row(src, sy) + 3 * sx : NULL;
            out[3 * x] = in ? p[0] : 0;
            out[3 * x + 1] = in ? p[1] : 0;
            out[3 * x + 2] = in ? p[2] : 0;
        }
    }
}

int view_render(const ViewCfg *c, const ViewParams p[4], const Img *src, int full_h, int full_w, AugScratch *s,
                float *out[4]) {
    int size = c->size;
    size_t frame = (size_t)size * size * 3;
    Img a = img_make(aug_scratch(s, 4, frame), size, size);
    Img b = img_make(aug_scratch(s, 5, frame), size, size);
    switch (c->mode) {
    case VIEWS_MA:
        t1_render(src, full_h, full_w, &p[0], &a, s);
        aug_normalize(&a, &c->norm, out[0]);
        t1_render(src, full_h, full_w, &p[1], &b, s);
        aug_normalize(&b, &c->norm, out[1]);
        aug_apply_t2(&a, &p[2], s);
        aug_normalize(&a, &c->norm, out[2]);
        aug_apply_t2(&b, &p[3], s);
        aug_normalize(&b, &c->norm, out[3]);
        break;
    case VIEWS_AA:
    case VIEWS_AW:
    case VIEWS_WW:
        for (int v = 0; v < 2; v++) {
            t1_render(src, full_h, full_w, &p[v], &a, s);
            if (c->mode == VIEWS_AA || (c->mode == VIEWS_AW && v == 0)) aug_apply_t2(&a, &p[v], s);
            aug_normalize(&a, &c->norm, out[v]);
        }
        break;
    case VIEWS_EVAL_TRAIN:
        t1_render(src, full_h, full_w, &p[0], &a, s);
        aug_normalize(&a, &c->norm, out[0]);
        break;
    case VIEWS_EVAL_TEST:
        if (c->resize > 0) {
            int oh, ow;
            aug_short_side(full_h, full_w, c->resize, &oh, &ow);
            Img mid = img_make(aug_scratch(s, 6, (size_t)oh * ow * 3), oh, ow);
            aug_resize(src, NULL, &mid, s);
            center_crop_to(&mid, size, &a);
        } else {
            if (src->h != full_h || src->w != full_w)
                return rsa_fail("this is a bug in rsa-repro", "eval-test without resize got a reduced image");
            center_crop_to(src, size, &a);
        }
        aug_normalize(&a, &c->norm, out[0]);
        break;
    case VIEWS_NONE:
        if (src->h != size || src->w != size)
            return rsa_fail("use the data set's native size with mode none, or eval-test to crop",
                            "mode none needs %dx%d images, this one is %dx%d", size, size, src->h, src->w);
        aug_normalize(src, &c->norm, out[0]);
        break;
    }
    return 0;
}

int data_make_views(const LoaderSpec *spec, const Img *img, int epoch, int64_t index, AugScratch *s,
                    float *out[4]) {
    ViewCfg c;
    if (view_cfg_init(&c, spec)) return -1;
    ViewParams p[4];
    view_plan(&c, epoch, index, img->h, img->w, p);
    return view_render(&c, p, img, img->h, img->w, s, out);
}
