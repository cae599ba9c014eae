#include "layout.h"

#include <string.h>

const char *layout_name(Layout l) {
    switch (l) {
    case LAYOUT_NCHW: return "NCHW";
    case LAYOUT_NHWC: return "NHWC";
    case LAYOUT_NCHW16C: return "NCHW16C";
    }
    return "?";
}

void layout_convert(const float *src, Layout from, float *dst, Layout to, int n, int c, int h, int w) {
    if (from == to || h * w == 1) {
        memcpy(dst, src, sizeof(float) * (size_t)n * c * h * w);
        return;
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < c; k++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    dst[layout_offset(to, c, h, w, i, k, y, x)] = src[layout_offset(from, c, h, w, i, k, y, x)];
}
