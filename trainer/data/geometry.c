/* Crops, flips and torchvision's crop-parameter rules (transforms.py / functional.py of torchvision 0.14). */
#include "aug.h"

#include "trainer/core/error.h"

#include <math.h>
#include <string.h>

/* torch.empty(1).uniform_(lo, hi) yields a float32; keep that granularity. */
static float uniform_f32(Rng *r, double lo, double hi) { return (float)rng_range(r, lo, hi); }

CropBox aug_rrc_sample(Rng *r, int height, int width, double scale_lo, double scale_hi, double ratio_lo,
                       double ratio_hi) {
    double area = (double)height * (double)width;
    /* torch.log(torch.tensor(ratio)) is float32 */
    float log_lo = logf((float)ratio_lo), log_hi = logf((float)ratio_hi);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target_area = area * (double)uniform_f32(r, scale_lo, scale_hi);
        double aspect = (double)expf(uniform_f32(r, log_lo, log_hi));
        /* int(round(x)): Python rounds half to even, as nearbyint does in the default rounding mode */
        int w = (int)nearbyint(sqrt(target_area * aspect));
        int h = (int)nearbyint(sqrt(target_area / aspect));
        if (0 < w && w <= width && 0 < h && h <= height) {
            int i = (int)rng_below(r, (uint32_t)(height - h + 1));
            int j = (int)rng_below(r, (uint32_t)(width - w + 1));
            return (CropBox){i, j, h, w};
        }
    }
    double in_ratio = (double)width / (double)height;
    double rmin = ratio_lo < ratio_hi ? ratio_lo : ratio_hi, rmax = ratio_lo < ratio_hi ? ratio_hi : ratio_lo;
    int w, h;
    if (in_ratio < rmin) {
        w = width;
        h = (int)nearbyint(w / rmin);
    } else if (in_ratio > rmax) {
        h = height;
        w = (int)nearbyint(h * rmax);
    } else {
        w = width;
        h = height;
    }
    return (CropBox){(height - h) / 2, (width - w) / 2, h, w};
}

CropBox aug_center_box(int height, int width, int crop_h, int crop_w) {
    RSA_ASSERT(crop_h <= height && crop_w <= width);
    /* int(round((H - h) / 2.0)): a half rounds to even */
    int top = (int)nearbyint((height - crop_h) / 2.0);
    int left = (int)nearbyint((width - crop_w) / 2.0);
    return (CropBox){top, left, crop_h, crop_w};
}

void aug_short_side(int height, int width, int size, int *out_h, int *out_w) {
    int shorter = width <= height ? width : height, longer = width <= height ? height : width;
    int new_long = (int)((double)size * longer / shorter); /* Python: int(size * long / short) */
    if (width <= height) {
        *out_w = size;
        *out_h = new_long;
    } else {
        *out_h = size;
        *out_w = new_long;
    }
}

Img aug_crop_view(const Img *src, CropBox c) {
    RSA_ASSERT(c.i >= 0 && c.j >= 0 && c.h > 0 && c.w > 0 && c.i + c.h <= src->h && c.j + c.w <= src->w);
    return (Img){src->px + (size_t)c.i * src->stride + 3 * (size_t)c.j, c.h, c.w, src->stride};
}

void aug_copy(const Img *src, Img *dst) {
    RSA_ASSERT(src->h == dst->h && src->w == dst->w);
    for (int y = 0; y < src->h; y++) memmove(img_row(dst, y), img_row(src, y), 3 * (size_t)src->w);
}

void aug_hflip(Img *im) {
    for (int y = 0; y < im->h; y++) {
        uint8_t *a = img_row(im, y), *b = a + 3 * (im->w - 1);
        for (; a < b; a += 3, b -= 3) {
            uint8_t t0 = a[0], t1 = a[1], t2 = a[2];
            a[0] = b[0], a[1] = b[1], a[2] = b[2];
            b[0] = t0, b[1] = t1, b[2] = t2;
        }
    }
}
