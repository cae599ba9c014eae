/* Every augmentation op against torchvision 0.14 + Pillow 9.4 (fixture aug.safetensors from
 * tests/oracle/make_aug_fixtures.py, made from real photographs).
 *
 * Target: max |ours - torchvision| <= 1 intensity level per byte. Each test prints the measured maximum and the
 * number of differing bytes; the ops replicate Pillow's integer and float arithmetic, so the measured difference
 * is 0 everywhere (bit-identical) and the tests fail on any difference above the target. */
#include "tests/util/testlib.h"
#include "trainer/core/error.h"
#include "trainer/core/fileio.h"
#include "trainer/data/aug.h"
#include "trainer/data/data.h"
#include "trainer/io/safetensors.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUG_FIXTURE_VERSION "1" /* must equal VERSION in tests/oracle/make_aug_fixtures.py */

static StFile fx;
static bool have_fx;
static AugScratch scratch;

static int fixture_open_aug(void) {
    const char *dirs[2] = {getenv("RSA_FIXTURES"), "tests/fixtures"};
    for (int i = 0; i < 2; i++) {
        if (!dirs[i]) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/aug.safetensors", dirs[i]);
        FILE *probe = fopen(path, "rb");
        if (!probe) continue;
        fclose(probe);
        if (st_open(&fx, path) != 0) {
            test_fail_at(__FILE__, __LINE__, "%s", rsa_error_message());
            return -1;
        }
        const char *v = st_meta(&fx, "fixture_version");
        if (!v || strcmp(v, AUG_FIXTURE_VERSION) != 0) {
            test_fail_at(__FILE__, __LINE__,
                         "fixture %s is version %s, the tests expect %s: regenerate it with `/usr/bin/python3 "
                         "tests/oracle/make_aug_fixtures.py %s`",
                         path, v ? v : "(none)", AUG_FIXTURE_VERSION, dirs[i]);
            st_close(&fx);
            return -1;
        }
        return 0;
    }
    test_fail_at(__FILE__, __LINE__,
                 "fixture aug.safetensors not found in $RSA_FIXTURES or tests/fixtures: install python3-torch, "
                 "python3-torchvision and mate-backgrounds (`make deps`) and run `make test`, or run "
                 "`/usr/bin/python3 tests/oracle/make_aug_fixtures.py DIR` and set RSA_FIXTURES=DIR");
    return -1;
}

static const StTensor *need(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const StTensor *need(const char *fmt, ...) {
    char name[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const StTensor *t = st_find(&fx, name);
    if (!t) {
        fprintf(stderr, "fixture lacks %s: regenerate it\n", name);
        exit(1);
    }
    return t;
}

static bool has(const char *fmt, int n) {
    char name[128];
    snprintf(name, sizeof name, fmt, n);
    return st_find(&fx, name) != NULL;
}

static int64_t geti(const StTensor *t, int k) {
    RSA_ASSERT(t->dtype == ST_I64 && (size_t)k < st_numel(t));
    int64_t v;
    memcpy(&v, (const char *)st_data(&fx, t) + 8 * k, 8);
    return v;
}

static float getf(const StTensor *t, int k) {
    RSA_ASSERT(t->dtype == ST_F32 && (size_t)k < st_numel(t));
    float v;
    memcpy(&v, (const char *)st_data(&fx, t) + 4 * k, 4);
    return v;
}

static double getd(const StTensor *t, int k) {
    RSA_ASSERT(t->dtype == ST_F64 && (size_t)k < st_numel(t));
    double v;
    memcpy(&v, (const char *)st_data(&fx, t) + 8 * k, 8);
    return v;
}

/* A copy of fixture image t (H x W x 3 uint8). */
static Img img_of(const StTensor *t) {
    RSA_ASSERT(t->dtype == ST_U8 && t->ndim == 3 && t->shape[2] == 3);
    Img im = img_make(malloc(st_numel(t)), (int)t->shape[0], (int)t->shape[1]);
    memcpy(im.px, st_data(&fx, t), st_numel(t));
    return im;
}

static Img source(const char *op, int n) { return img_of(need("img.%d", (int)geti(need("%s.%d.src", op, n), 0))); }

typedef struct {
    int max_diff;
    size_t differ, total;
} Diff;

static void diff_add(Diff *d, const Img *got, const StTensor *want, const char *what, int n) {
    if (want->ndim != 3 || want->shape[0] != got->h || want->shape[1] != got->w) {
        test_fail_at(__FILE__, __LINE__, "%s %d: shape %dx%d, torchvision %lldx%lld", what, n, got->h, got->w,
                     (long long)want->shape[0], (long long)want->shape[1]);
        return;
    }
    const uint8_t *w = st_data(&fx, want);
    int local = 0;
    for (int y = 0; y < got->h; y++)
        for (int x = 0; x < 3 * got->w; x++) {
            int e = abs((int)img_row(got, y)[x] - (int)w[(size_t)y * 3 * got->w + x]);
            if (e) d->differ++;
            if (e > local) local = e;
        }
    d->total += (size_t)got->h * got->w * 3;
    if (local > d->max_diff) d->max_diff = local;
    if (local > 1) test_fail_at(__FILE__, __LINE__, "%s case %d: max |diff| %d > 1", what, n, local);
}

static void diff_note(const Diff *d, const char *what, int cases) {
    test_note("%s: %d cases, max |diff| %d, %zu of %zu bytes differ", what, cases, d->max_diff, d->differ, d->total);
    CHECK(cases > 0, "no %s cases in the fixture", what);
}

static void test_resized_crop(void) {
    if (!have_fx) return;
    Diff d = {0};
    int n = 0;
    for (; has("rc.%d.src", n); n++) {
        Img src = source("rc", n);
        const StTensor *b = need("rc.%d.box", n), *sz = need("rc.%d.size", n);
        CropBox c = {(int)geti(b, 0), (int)geti(b, 1), (int)geti(b, 2), (int)geti(b, 3)};
        Img out = img_make(malloc((size_t)geti(sz, 0) * geti(sz, 1) * 3), (int)geti(sz, 0), (int)geti(sz, 1));
        aug_resized_crop(&src, c, &out, &scratch);
        diff_add(&d, &out, need("rc.%d.out", n), "resized_crop", n);
        free(src.px), free(out.px);
    }
    diff_note(&d, "RandomResizedCrop crop+resize (PIL BILINEAR)", n);
}

static void test_resize_center_crop(void) {
    if (!have_fx) return;
    Diff d = {0}, dc = {0};
    int n = 0;
    for (; has("short.%d.src", n); n++) {
        Img src = source("short", n);
        int oh, ow;
        aug_short_side(src.h, src.w, 256, &oh, &ow);
        Img mid = img_make(malloc((size_t)oh * ow * 3), oh, ow);
        aug_resize(&src, NULL, &mid, &scratch);
        diff_add(&d, &mid, need("short.%d.mid", n), "Resize(256)", n);
        Img cc = aug_crop_view(&mid, aug_center_box(oh, ow, 224, 224));
        diff_add(&dc, &cc, need("short.%d.out", n), "Resize(256)+CenterCrop(224)", n);
        free(src.px), free(mid.px);
    }
    diff_note(&d, "Resize(256)", n);
    diff_note(&dc, "Resize(256)+CenterCrop(224)", n);
}

static void test_boxes(void) {
    if (!have_fx) return;
    int n = 0;
    for (; has("center.%d", n); n++) {
        const StTensor *t = need("center.%d", n);
        CropBox c = aug_center_box((int)geti(t, 0), (int)geti(t, 1), (int)geti(t, 2), (int)geti(t, 3));
        CHECK(c.i == geti(t, 4) && c.j == geti(t, 5), "center crop %lldx%lld -> %lldx%lld: ours (%d, %d), "
              "torchvision (%lld, %lld)", (long long)geti(t, 0), (long long)geti(t, 1), (long long)geti(t, 2),
              (long long)geti(t, 3), c.i, c.j, (long long)geti(t, 4), (long long)geti(t, 5));
    }
    CHECK(n > 0, "no center crop cases");
    for (n = 0; has("shortside.%d", n); n++) {
        const StTensor *t = need("shortside.%d", n);
        int oh, ow;
        aug_short_side((int)geti(t, 0), (int)geti(t, 1), (int)geti(t, 2), &oh, &ow);
        CHECK(oh == geti(t, 3) && ow == geti(t, 4), "Resize(%lld) of %lldx%lld: ours %dx%d, torchvision %lldx%lld",
              (long long)geti(t, 2), (long long)geti(t, 0), (long long)geti(t, 1), oh, ow, (long long)geti(t, 3),
              (long long)geti(t, 4));
    }
    CHECK(n > 0, "no shorter-side cases");
}

static void color_op(const char *op, void (*fn)(Img *, float)) {
    Diff d = {0};
    int n = 0;
    char fmt[64];
    snprintf(fmt, sizeof fmt, "%s.%%d.src", op);
    for (; has(fmt, n); n++) {
        Img im = source(op, n);
        fn(&im, getf(need("%s.%d.factor", op, n), 0));
        diff_add(&d, &im, need("%s.%d.out", op, n), op, n);
        free(im.px);
    }
    diff_note(&d, op, n);
}

static void test_brightness(void) {
    if (have_fx) color_op("brightness", aug_brightness);
}
static void test_contrast(void) {
    if (have_fx) color_op("contrast", aug_contrast);
}
static void test_saturation(void) {
    if (have_fx) color_op("saturation", aug_saturation);
}
static void test_hue(void) {
    if (have_fx) color_op("hue", aug_hue);
}

static void simple_op(const char *op, void (*fn)(Img *)) {
    Diff d = {0};
    int n = 0;
    char fmt[64];
    snprintf(fmt, sizeof fmt, "%s.%%d.src", op);
    for (; has(fmt, n); n++) {
        Img im = source(op, n);
        fn(&im);
        diff_add(&d, &im, need("%s.%d.out", op, n), op, n);
        free(im.px);
    }
    diff_note(&d, op, n);
}

static void solarize128(Img *im) { aug_solarize(im, 128); }

static void test_gray_flip_solarize(void) {
    if (!have_fx) return;
    simple_op("gray", aug_grayscale);
    simple_op("flip", aug_hflip);
    simple_op("solarize", solarize128);
}

static void test_blur(void) {
    if (!have_fx) return;
    Diff d = {0};
    int n = 0;
    for (; has("blur.%d.src", n); n++) {
        Img im = source("blur", n);
        aug_gaussian_blur(&im, getf(need("blur.%d.sigma", n), 0), &scratch);
        diff_add(&d, &im, need("blur.%d.out", n), "GaussianBlur", n);
        free(im.px);
    }
    diff_note(&d, "GaussianBlur (PIL)", n);
}

static JitterParams jitter_of(const StTensor *order, const StTensor *factors) {
    JitterParams p;
    for (int i = 0; i < 4; i++) p.order[i] = (uint8_t)geti(order, i);
    p.brightness = getf(factors, 0), p.contrast = getf(factors, 1);
    p.saturation = getf(factors, 2), p.hue = getf(factors, 3);
    return p;
}

static void test_jitter(void) {
    if (!have_fx) return;
    Diff d = {0};
    int n = 0;
    for (; has("jitter.%d.src", n); n++) {
        Img im = source("jitter", n);
        JitterParams p = jitter_of(need("jitter.%d.order", n), need("jitter.%d.factors", n));
        aug_jitter(&im, &p);
        diff_add(&d, &im, need("jitter.%d.out", n), "ColorJitter", n);
        free(im.px);
    }
    diff_note(&d, "ColorJitter (forced order and factors)", n);
}

/* Weak and aggressive views through t1, t2, ToTensor and Normalize: floats compared exactly. */
static void test_views(void) {
    if (!have_fx) return;
    int n = 0;
    double worst = 0;
    size_t differ = 0, total = 0;
    for (; has("view.%d.src", n); n++) {
        Img src = source("view", n);
        const StTensor *b = need("view.%d.box", n), *fl = need("view.%d.flags", n);
        int size = (int)geti(need("view.%d.size", n), 0);
        ViewParams v = {0};
        v.crop = true;
        v.box = (CropBox){(int)geti(b, 0), (int)geti(b, 1), (int)geti(b, 2), (int)geti(b, 3)};
        v.flip = geti(fl, 0), v.jitter = geti(fl, 1), v.gray = geti(fl, 2), v.blur = geti(fl, 3);
        v.jp = jitter_of(need("view.%d.order", n), need("view.%d.factors", n));
        v.sigma = getf(need("view.%d.sigma", n), 0);
        float mean[3], std[3];
        for (int c = 0; c < 3; c++) mean[c] = getf(need("view.%d.mean", n), c), std[c] = getf(need("view.%d.std", n), c);
        NormLut lut;
        aug_norm_init(&lut, mean, std);
        Img weak = img_make(malloc((size_t)size * size * 3), size, size);
        aug_apply_t1(&src, &v, &weak, &scratch);
        size_t count = (size_t)3 * size * size;
        float *got = test_alloc(count);
        for (int which = 0; which < 2; which++) {
            if (which == 1) aug_apply_t2(&weak, &v, &scratch);
            aug_normalize(&weak, &lut, got);
            const StTensor *want_t = need(which ? "view.%d.aggressive" : "view.%d.weak", n);
            RSA_ASSERT(st_numel(want_t) == count);
            float *want = test_alloc(count); /* the fixture's data need not be aligned */
            memcpy(want, st_data(&fx, want_t), count * sizeof(float));
            for (size_t i = 0; i < count; i++) {
                double e = fabs((double)got[i] - (double)want[i]);
                if (e > worst) worst = e;
                if (e > 0) differ++;
            }
            total += count;
            free(want);
        }
        free(got), free(weak.px), free(src.px);
    }
    test_note("%d weak + %d aggressive views (t1, t2, ToTensor, Normalize): max |diff| %.3g, %zu of %zu floats differ",
              n, n, worst, differ, total);
    /* one intensity level is 1/255/std <= 0.0197 after normalisation */
    CHECK(worst <= 1.0 / 255.0 / 0.1994 + 1e-6, "views differ by more than one intensity level: %g", worst);
    CHECK(n > 0, "no view cases");
}

static void test_rrc_fallback(void) {
    if (!have_fx) return;
    int n = 0;
    for (; has("rrcfb.%d.hw", n); n++) {
        const StTensor *hw = need("rrcfb.%d.hw", n), *sc = need("rrcfb.%d.scale", n), *b = need("rrcfb.%d.box", n);
        Rng r;
        rng_init(&r, 5, RNG_TEST, 0, (uint32_t)n, 0);
        CropBox c = aug_rrc_sample(&r, (int)geti(hw, 0), (int)geti(hw, 1), getf(sc, 0), getf(sc, 1), 3.0 / 4.0,
                                   4.0 / 3.0);
        CHECK(c.i == geti(b, 0) && c.j == geti(b, 1) && c.h == geti(b, 2) && c.w == geti(b, 3),
              "fallback crop of %lldx%lld: ours (%d %d %d %d), torchvision (%lld %lld %lld %lld)",
              (long long)geti(hw, 0), (long long)geti(hw, 1), c.i, c.j, c.h, c.w, (long long)geti(b, 0),
              (long long)geti(b, 1), (long long)geti(b, 2), (long long)geti(b, 3));
    }
    CHECK(n > 0, "no fallback cases");
}

/* Our sampler's (i, j, h, w) moments against torchvision's over 20000 draws each: the means must agree within
 * 5 standard errors of the difference and the standard deviations within 5 %. */
static void test_rrc_distribution(void) {
    if (!have_fx) return;
    int n = 0;
    double worst_z = 0;
    for (; has("rrcstat.%d.hw", n); n++) {
        const StTensor *hw = need("rrcstat.%d.hw", n), *sc = need("rrcstat.%d.scale", n);
        int H = (int)geti(hw, 0), W = (int)geti(hw, 1);
        int count = (int)geti(need("rrcstat.%d.count", n), 0);
        double sum[4] = {0}, sq[4] = {0};
        for (int k = 0; k < count; k++) {
            Rng r;
            rng_init(&r, 99, RNG_TEST, (uint32_t)n, (uint32_t)k, 0);
            CropBox c = aug_rrc_sample(&r, H, W, getf(sc, 0), getf(sc, 1), 3.0 / 4.0, 4.0 / 3.0);
            double v[4] = {c.i, c.j, c.h, c.w};
            for (int q = 0; q < 4; q++) sum[q] += v[q], sq[q] += v[q] * v[q];
        }
        for (int q = 0; q < 4; q++) {
            double m = sum[q] / count, sd = sqrt(fmax(sq[q] / count - m * m, 0));
            double tm = getd(need("rrcstat.%d.mean", n), q), tsd = getd(need("rrcstat.%d.std", n), q);
            double se = sqrt((sd * sd + tsd * tsd) / count) + 1e-12;
            double z = fabs(m - tm) / se;
            if (z > worst_z) worst_z = z;
            CHECK(z < 5, "RandomResizedCrop %dx%d scale (%g, %g): mean of %c %.3f, torchvision %.3f (z = %.1f)", H, W,
                  getf(sc, 0), getf(sc, 1), "ijhw"[q], m, tm, z);
            CHECK(fabs(sd - tsd) <= 0.05 * tsd + 0.05, "RandomResizedCrop %dx%d: std of %c %.3f, torchvision %.3f", H,
                  W, "ijhw"[q], sd, tsd);
        }
    }
    test_note("%d sizes x 20000 draws: worst |z| of the moment differences %.2f", n, worst_z);
    CHECK(n > 0, "no distribution cases");
}

static void test_normalize_exact(void) {
    /* ToTensor + Normalize in float32, compared with the same expression evaluated step by step */
    const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.2023f, 0.1994f, 0.2010f};
    NormLut lut;
    aug_norm_init(&lut, mean, std);
    uint8_t px[2 * 3 * 3];
    for (int i = 0; i < 18; i++) px[i] = (uint8_t)(i * 15);
    Img im = {px, 3, 2, 6};
    float out[18];
    aug_normalize(&im, &lut, out);
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 6; p++) {
            volatile float x = (float)px[3 * p + c] / 255.0f;
            volatile float y = (x - mean[c]) / std[c];
            CHECK(out[c * 6 + p] == y, "normalize c%d p%d: %g vs %g", c, p, out[c * 6 + p], (double)y);
        }
}


static uint64_t checksum_weighted(const uint8_t *p, size_t n, uint64_t *plain) {
    uint64_t s = 0, ws = 0;
    for (size_t i = 0; i < n; i++) {
        s += p[i];
        ws += (uint64_t)p[i] * (uint64_t)(i % 65521 + 1);
    }
    *plain = s;
    return ws % ((1ull << 61) - 1);
}

/* Every 24-bit colour through hue, saturation, brightness and grayscale, against PIL's checksums. */
static void test_every_colour(void) {
    if (!have_fx) return;
    Img im = img_make(malloc((size_t)3 << 24), 4096, 4096);
    int n = 0;
    for (; has("every.%d.op", n); n++) {
        const StTensor *opt = need("every.%d.op", n), *sum = need("every.%d.sum", n);
        char op[32] = {0};
        memcpy(op, st_data(&fx, opt), st_numel(opt) < 31 ? st_numel(opt) : 31);
        float f = getf(need("every.%d.factor", n), 0);
        for (uint32_t k = 0; k < (1u << 24); k++)
            im.px[3 * k] = (uint8_t)(k >> 16), im.px[3 * k + 1] = (uint8_t)(k >> 8), im.px[3 * k + 2] = (uint8_t)k;
        if (strcmp(op, "hue") == 0)
            aug_hue(&im, f);
        else if (strcmp(op, "saturation") == 0)
            aug_saturation(&im, f);
        else if (strcmp(op, "brightness") == 0)
            aug_brightness(&im, f);
        else
            aug_grayscale(&im);
        uint64_t plain, weighted = checksum_weighted(im.px, (size_t)3 << 24, &plain);
        CHECK(plain == (uint64_t)geti(sum, 0) && weighted == (uint64_t)geti(sum, 1),
              "%s(%g) over all 2^24 colours differs from PIL", op, f);
    }
    test_note("%d ops over all 2^24 colours: %s", n, test_failed() ? "differences" : "identical to PIL");
    CHECK(n > 0, "no all-colour cases");
    free(im.px);
}

static void test_jpeg_decode(void) {
    if (!have_fx) return;
    JpegDecoder *dec = jpeg_decoder_new();
    CHECK(dec != NULL, "%s", rsa_error_message());
    if (!dec) return;
    Diff d = {0};
    int n = 0;
    for (; has("jpeg.%d.bytes", n); n++) {
        const StTensor *b = need("jpeg.%d.bytes", n);
        Img out;
        int rc = jpeg_decode(dec, st_data(&fx, b), st_numel(b), "fixture", JPEG_FULL, &out);
        CHECK(rc == 0, "jpeg %d: %s", n, rsa_error_message());
        if (rc == 0) diff_add(&d, &out, need("jpeg.%d.out", n), "JPEG decode", n);
    }
    diff_note(&d, "JPEG decode of PIL-encoded files (TurboJPEG vs PIL)", n);
    int files = 0;
    for (int t = 0; has("jpegfile.%d.path", t); t++) {
        const StTensor *p = need("jpegfile.%d.path", t), *sum = need("jpegfile.%d.sum", t);
        char path[512] = {0};
        memcpy(path, st_data(&fx, p), st_numel(p) < 511 ? st_numel(p) : 511);
        size_t size;
        char *bytes = read_file(path, &size);
        if (!bytes) { /* the fixture names the photographs of the machine that made it */
            rsa_error_clear();
            continue;
        }
        Img out;
        int rc = jpeg_decode(dec, (const uint8_t *)bytes, size, path, JPEG_FULL, &out);
        CHECK(rc == 0, "%s", rsa_error_message());
        if (rc == 0) {
            uint64_t plain, weighted = checksum_weighted(out.px, (size_t)out.h * out.w * 3, &plain);
            CHECK(out.h == geti(need("jpegfile.%d.hw", t), 0) && out.w == geti(need("jpegfile.%d.hw", t), 1) &&
                      plain == (uint64_t)geti(sum, 0) && weighted == (uint64_t)geti(sum, 1),
                  "%s decodes differently from PIL", path);
            files++;
        }
        free(bytes);
    }
    test_note("%d full-size photographs decode bit-identically to PIL", files);
    jpeg_decoder_free(dec);
}

static void test_fixture(void) { have_fx = fixture_open_aug() == 0; }

int main(void) {
    RUN(test_fixture);
    /* the hand-vectorised paths where the CPU has them, then the scalar code: both must match torchvision */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            if (!aug_simd()) break;
            aug_set_simd(false);
            test_note("again with the scalar code (aug_set_simd(false))");
        }
        RUN(test_normalize_exact);
        RUN(test_resized_crop);
        RUN(test_resize_center_crop);
        RUN(test_boxes);
        RUN(test_brightness);
        RUN(test_contrast);
        RUN(test_saturation);
        RUN(test_hue);
        RUN(test_gray_flip_solarize);
        RUN(test_blur);
        RUN(test_jitter);
        RUN(test_views);
        RUN(test_every_colour);
    }
    aug_set_simd(true);
    RUN(test_rrc_fallback);
    RUN(test_rrc_distribution);
    RUN(test_jpeg_decode);
    aug_scratch_free(&scratch);
    if (have_fx) st_close(&fx);
    return test_finish();
}
