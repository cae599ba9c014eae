/* Internal: planning and rendering the views of one sample (sample.c), shared by the loader and data_make_views. */
#ifndef RSA_DATA_SAMPLE_H
#define RSA_DATA_SAMPLE_H

#include "trainer/data/data.h"

typedef struct {
    ViewMode mode;
    int size, resize, views;
    RngPurpose purpose;
    uint64_t seed;
    AugRecipe recipe;
    NormLut norm;
} ViewCfg;

int view_cfg_init(ViewCfg *c, const LoaderSpec *spec);
/* All random parameters of the sample's views (source image height x width), each view from its own stream. */
void view_plan(const ViewCfg *c, int epoch, int64_t index, int height, int width, ViewParams p[4]);
/* The smallest decoded size of the source that keeps every view's crop at >= size pixels per side. */
void view_min_source(const ViewCfg *c, const ViewParams p[4], int height, int width, int *min_h, int *min_w);
/* Renders the views into out[v] (3 x size x size floats each). src may be a reduced decode of a full_h x full_w
 * image (JPEG DCT scaling); the crops are then mapped onto it with fractional edges. */
int view_render(const ViewCfg *c, const ViewParams p[4], const Img *src, int full_h, int full_w, AugScratch *s,
                float *out[4]);

#endif
