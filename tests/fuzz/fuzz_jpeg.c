/* The JPEG path of the folder data sets, as the loader runs it (trainer/data/loader.c): the header, the views'
 * random parameters planned on its size, a full or DCT-reduced decode (jpeg.c), then the augmentations rendering
 * the views from the decoded image (sample.c, aug ops). Byte 0 picks the view mode, byte 1 the view size, byte 2
 * DCT scaling (bit 0), raw pixels (bit 7) and the sample index; the rest is the file. With raw pixels, bytes 3 and 4
 * give the image's height and width (1..256) and the pixels follow, so that the fuzzer steers the augmentations
 * directly (libjpeg-turbo itself is not instrumented: it gives the fuzzer no coverage to follow). */
#include "fuzz.h"
#include "trainer/data/data.h"
#include "trainer/data/sample.h"

static JpegDecoder *dec;
static AugScratch scratch;
static float *views[4];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    if (!dec && !(dec = jpeg_decoder_new())) abort();
    static const ViewMode modes[] = {VIEWS_MA, VIEWS_AA, VIEWS_AW, VIEWS_WW, VIEWS_EVAL_TRAIN, VIEWS_EVAL_TEST};
    LoaderSpec spec;
    if (loader_spec_default("imagenet", modes[data[0] % 6], 7, &spec) != 0) abort();
    spec.size = 1 + data[1] % 48;
    if (spec.mode == VIEWS_EVAL_TEST) spec.resize = data[0] & 0x80 ? spec.size + data[0] % 5 : 0;
    bool dct = data[2] & 1, raw = data[2] & 0x80;
    int64_t index = (data[2] >> 1) & 0x3f;
    data += 3, size -= 3;
    for (int v = 0; v < 4; v++)
        if (!views[v] && !(views[v] = malloc(sizeof(float) * 3 * 48 * 48))) abort();

    int h, w;
    rsa_error_clear();
    if (raw) {
        if (size < 2) return 0;
        h = 1 + data[0], w = 1 + data[1];
        if (size - 2 < (size_t)h * w * 3) return 0;
        static uint8_t px[256 * 256 * 3];
        memcpy(px, data + 2, (size_t)h * w * 3);
        Img img = img_make(px, h, w);
        ViewCfg cfg;
        if (view_cfg_init(&cfg, &spec) != 0) abort();
        ViewParams p[4];
        view_plan(&cfg, 0, index, h, w, p);
        if (view_render(&cfg, p, &img, h, w, &scratch, views) != 0) abort();
        return 0;
    }
    if (jpeg_header(dec, data, size, "fuzz.JPEG", &h, &w) != 0) {
        fuzz_check_message();
        return 0;
    }
    if (h < 1 || w < 1 || (int64_t)h * w > JPEG_MAX_PIXELS) abort();
    if ((int64_t)h * w > 4 << 20) return 0; /* valid but slow: the fuzzer is after bugs, not big images */
    ViewCfg cfg;
    if (view_cfg_init(&cfg, &spec) != 0) abort();
    ViewParams p[4];
    view_plan(&cfg, 0, index, h, w, p);
    JpegScale sc = JPEG_FULL;
    if (dct) {
        int mh, mw;
        view_min_source(&cfg, p, h, w, &mh, &mw);
        sc = jpeg_pick_scale(h, w, mh, mw);
    }
    Img img;
    if (jpeg_decode(dec, data, size, "fuzz.JPEG", sc, &img) != 0) {
        fuzz_check_message();
        return 0;
    }
    if (img.h < 1 || img.w < 1 || img.h > h || img.w > w) abort();
    if (view_render(&cfg, p, &img, h, w, &scratch, views) != 0) abort();
    for (int v = 0; v < view_count(spec.mode); v++)
        for (int k = 0; k < 3 * spec.size * spec.size; k++)
            if (!(views[v][k] > -10 && views[v][k] < 10)) abort(); /* normalised bytes: about -2.2 .. 2.7 */
    return 0;
}
