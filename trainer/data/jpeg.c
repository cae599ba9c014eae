/* JPEG decoding through TurboJPEG (libjpeg-turbo), matching what torchvision's ImageFolder loader gets from PIL:
 * Image.open(f).convert('RGB').
 *
 * PIL decodes with the same libjpeg-turbo, default settings (accurate integer IDCT, fancy upsampling), which are
 * TurboJPEG's defaults for decompression too, so a full decode is bit-identical. Grayscale JPEGs decode to RGB by
 * replication (PIL: 'L' -> 'RGB' replicates). 4-component JPEGs: PIL reads them as Adobe-inverted CMYK ("CMYK;I")
 * and converts with cmyk2rgb, R = clip(K' - round(C' K' / 255)) with C' = 255 - raw C and K' = raw K in its
 * MULDIV255 fixed point; we decode raw CMYK and do the same. */
#include "data.h"

#include "trainer/core/error.h"

#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

struct JpegDecoder {
    tjhandle tj;
    uint8_t *buf;
    size_t cap;
    uint8_t *cmyk;
    size_t cmyk_cap;
};

static const char *const HINT = "the file is corrupt or not a JPEG: re-download or re-extract it, or open the data set "
                                "with allow_corrupt to skip such images";

JpegDecoder *jpeg_decoder_new(void) {
    JpegDecoder *d = calloc(1, sizeof *d);
    if (!d) rsa_fatal("free memory", "out of memory");
    d->tj = tjInitDecompress();
    if (!d->tj) {
        free(d);
        rsa_fail("check the libjpeg-turbo installation (libturbojpeg0)", "cannot create a TurboJPEG decompressor: %s",
                 tjGetErrorStr2(NULL));
        return NULL;
    }
    return d;
}

void jpeg_decoder_free(JpegDecoder *d) {
    if (!d) return;
    tjDestroy(d->tj);
    free(d->buf);
    free(d->cmyk);
    free(d);
}

static void *grow(uint8_t **p, size_t *cap, size_t need) {
    if (*cap < need) {
        free(*p);
        *p = malloc(need);
        if (!*p) rsa_fatal("free memory", "out of memory (%zu bytes for a decoded image)", need);
        *cap = need;
    }
    return *p;
}

static int check_magic(const uint8_t *data, size_t size, const char *name) {
    if (size < 2)
        return rsa_fail(HINT, "%s: %zu bytes: a JPEG has at least the 2-byte start-of-image marker FF D8 at byte 0",
                        name, size);
    if (data[0] != 0xFF || data[1] != 0xD8)
        return rsa_fail(HINT, "%s: byte 0: expected the JPEG start-of-image marker FF D8, found %02X %02X", name,
                        data[0], data[1]);
    return 0;
}

static int read_header(JpegDecoder *d, const uint8_t *data, size_t size, const char *name, int *w, int *h, int *cs) {
    if (check_magic(data, size, name)) return -1;
    int sub = 0;
    *w = *h = 0;
    if (tjDecompressHeader3(d->tj, data, (unsigned long)size, w, h, &sub, cs) != 0)
        return rsa_fail(HINT, "%s (%zu bytes): bad JPEG header after byte 0: %s", name, size, tjGetErrorStr2(d->tj));
    if (*w <= 0 || *h <= 0) /* tables only, or the data end inside the header */
        return rsa_fail(HINT, "%s (%zu bytes): bad JPEG header after byte 0: no frame header (SOF) before the data end "
                        "at byte %zu", name, size, size);
    if ((int64_t)*w * *h > JPEG_MAX_PIXELS) /* a damaged header must not make a worker allocate gigabytes */
        return rsa_fail(HINT, "%s (%zu bytes): the header claims %dx%d pixels, more than the %d that PIL (and so "
                        "torchvision's loader) accepts as a decompression bomb", name, size, *w, *h, JPEG_MAX_PIXELS);
    return 0;
}

int jpeg_header(JpegDecoder *d, const uint8_t *data, size_t size, const char *name, int *height, int *width) {
    int w, h, cs;
    if (read_header(d, data, size, name, &w, &h, &cs)) return -1;
    *height = h, *width = w;
    return 0;
}

JpegScale jpeg_pick_scale(int height, int width, int min_h, int min_w) {
    int n;
    tjscalingfactor *f = tjGetScalingFactors(&n);
    JpegScale best = JPEG_FULL;
    if (!f) return best;
    for (int i = 0; i < n; i++) {
        /* only 1/2, 1/4, 1/8: libjpeg-turbo has SIMD reduced IDCTs for those; its M/8 factors run plain C and are
         * slower than a full decode */
        if (f[i].num != 1 || f[i].denom < 2) continue;
        if (TJSCALED(height, f[i]) < min_h || TJSCALED(width, f[i]) < min_w) continue;
        /* smaller factor: num/den < best.num/best.den */
        if ((long)f[i].num * best.den < (long)best.num * f[i].denom) best = (JpegScale){f[i].num, f[i].denom};
    }
    return best;
}

static int ends_with_eoi(const uint8_t *data, size_t size) {
    /* trailing zero or junk bytes after EOI are common; look for FF D9 near the end */
    size_t from = size > 64 ? size - 64 : 0;
    for (size_t i = size - 1; i > from; i--)
        if (data[i - 1] == 0xFF && data[i] == 0xD9) return 1;
    return 0;
}

int jpeg_decode(JpegDecoder *d, const uint8_t *data, size_t size, const char *name, JpegScale scale, Img *out) {
    int w, h, cs;
    if (read_header(d, data, size, name, &w, &h, &cs)) return -1;
    tjscalingfactor sf = {scale.num, scale.den};
    int sw = TJSCALED(w, sf), sh = TJSCALED(h, sf);
    bool cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
    uint8_t *dst = grow(&d->buf, &d->cap, (size_t)sw * sh * 3);
    uint8_t *raw = cmyk ? grow(&d->cmyk, &d->cmyk_cap, (size_t)sw * sh * 4) : dst;
    int rc = tjDecompress2(d->tj, data, (unsigned long)size, raw, sw, 0, sh, cmyk ? TJPF_CMYK : TJPF_RGB, 0);
    if (rc != 0) {
        const char *msg = tjGetErrorStr2(d->tj);
        bool fatal = tjGetErrorCode(d->tj) == TJERR_FATAL;
        bool truncated = strstr(msg, "Premature end") != NULL;
        if (fatal || truncated || strstr(msg, "no image")) {
            if (truncated || !ends_with_eoi(data, size))
                return rsa_fail(HINT, "%s: truncated JPEG: the data ends at byte %zu without the end-of-image marker "
                                "FF D9 (%s)", name, size, msg);
            return rsa_fail(HINT, "%s (%zu bytes): corrupt JPEG data: %s", name, size, msg);
        }
        /* other warnings (extraneous bytes, ...): PIL decodes such files too */
    }
    if (cmyk) {
        for (size_t p = 0; p < (size_t)sw * sh; p++) {
            int k = raw[4 * p + 3];
            for (int c = 0; c < 3; c++) {
                int t = (255 - raw[4 * p + c]) * k + 128;
                int v = k - (((t >> 8) + t) >> 8);
                dst[3 * p + c] = (uint8_t)(v <= 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
    *out = img_make(dst, sh, sw);
    return 0;
}
