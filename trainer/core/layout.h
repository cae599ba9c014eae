/* Memory layouts of 4-D activations (batch n, channels c, height h, width w).
 *
 * Checkpoints, fixtures and the reference ops use NCHW, torchvision's layout. Fast paths keep their own layout
 * inside a model (oneDNN's Winograd convolution wants channel blocks of 16, cuDNN's tensor cores want NHWC) and
 * convert only at the edges. A tensor with h = w = 1 is laid out identically in all three. */
#ifndef RSA_LAYOUT_H
#define RSA_LAYOUT_H

#include <stddef.h>

typedef enum { LAYOUT_NCHW = 0, LAYOUT_NHWC = 1, LAYOUT_NCHW16C = 2 } Layout;

const char *layout_name(Layout l);

/* Offset of element (n, c, y, x) of a tensor with c_total channels and h x w pixels. NCHW16C needs c_total % 16 == 0. */
static inline size_t layout_offset(Layout l, int c_total, int h, int w, int n, int c, int y, int x) {
    switch (l) {
    case LAYOUT_NHWC: return (((size_t)n * h + y) * w + x) * c_total + c;
    case LAYOUT_NCHW16C:
        return ((((size_t)n * (c_total / 16) + c / 16) * h + y) * w + x) * 16 + (c % 16);
    default: return (((size_t)n * c_total + c) * h + y) * w + x;
    }
}

/* Copies a tensor between layouts (src and dst must not overlap). */
void layout_convert(const float *src, Layout from, float *dst, Layout to, int n, int c, int h, int w);

#endif
