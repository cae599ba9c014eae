/* Bad input is reported, never crashes, never leaves anything half written (REPRODUCE.md, "Guarantees"). Extends
 * tests/data/test_datasets.c (short CIFAR/STL files, bad labels, wrong IDX magic, a gzip stream cut short, a JPEG
 * cut short) and tests/io/test_safetensors.c (header length, tensor bounds, dtypes, overlap) with what they lack:
 *
 * - data sets: CIFAR-100 coarse labels, data after the last record, an empty file; STL-10 sizes that are no whole
 *   number of images; corrupt deflate data and IDX files whose dimensions overflow or disagree (images vs labels,
 *   0 x 0 images, labels > 9); JPEG: another format in a .JPEG file, garbage instead of entropy-coded data, a header
 *   claiming more pixels than PIL accepts (decompression bomb); a decoded-data cache whose header would overflow the
 *   size check or whose labels leave the classes (ignored and rebuilt, never trusted);
 * - safetensors and checkpoints: a checkpoint cut at 60 points (each must fail with a message naming the file, none
 *   may crash), a tensor entry whose key has no ':' (leaked memory before; found by fuzz_checkpoint), a file of
 *   another format, format version, config hash or architecture, missing tensors, damaged metadata (negative or
 *   overflowing counters, a MoCo queue position outside the queue: found by review of the fuzz target), and that
 *   train_run refusing such a checkpoint leaves every file of the run directory as it was;
 * - divergence: a learning rate of 1e6 stops the run naming the step, the offending tensor and the last good
 *   checkpoint (path and step, or that there is none yet); the checkpoint on disk stays the good one (every value
 *   finite: before the fix a BN running variance had overflowed in it while the parameters were still finite) and
 *   steps.tsv holds only finite rows. */
#include "tests/reliability/relutil.h"
#include "tests/fuzz/fuzz_model.h"
#include "trainer/data/dataset_internal.h"
#include "trainer/train/checkpoint.h"

#include <omp.h>
#include <turbojpeg.h>

#define CHECK_FAILS_WITH(expr, needle)                                                                              \
    do {                                                                                                           \
        rsa_error_clear();                                                                                         \
        bool failed_ = (expr);                                                                                     \
        CHECK(failed_, "%s: accepted", #expr);                                                                     \
        CHECK(failed_ && strstr(rsa_error_message(), needle), "%s: message lacks \"%s\": %s", #expr, needle,       \
              rsa_error_message());                                                                                \
        CHECK(!failed_ || strstr(rsa_error_message(), "(hint: "), "%s: no hint: %s", #expr, rsa_error_message());  \
    } while (0)

/* ---- data sets ---- */

static void test_cifar(void) {
    size_t rec = 3074;
    uint8_t *buf = calloc(3 * rec + 5, 1);
    Dataset *ds = dataset_alloc_memory("cifar100", "test", 3, 32, 32, 100);
    buf[2 * rec] = 20; /* coarse label of record 2 */
    CHECK_FAILS_WITH(cifar_parse(ds, 0, 3, buf, 3 * rec, "test.bin", 2, 100) != 0,
                     "test.bin: byte 6148: coarse label 20 of record 2 is outside 0..19");
    buf[2 * rec] = 0;
    CHECK(cifar_parse(ds, 0, 3, buf, 3 * rec, "test.bin", 2, 100) == 0, "%s", rsa_error_message());
    CHECK_FAILS_WITH(cifar_parse(ds, 0, 3, buf, 3 * rec + 5, "test.bin", 2, 100) != 0,
                     "test.bin: 9227 bytes: unexpected data after the 3 records of 3074 bytes, from byte 9222");
    CHECK_FAILS_WITH(cifar_parse(ds, 0, 3, buf, 0, "test.bin", 2, 100) != 0, "record 0 is cut short at byte 0");
    dataset_close(ds);
    free(buf);
}

static void test_stl10(void) {
    uint8_t *x = calloc(2 * 27648 + 1, 1), y[2] = {1, 10};
    CHECK_FAILS_WITH(stl10_parse(x, 2 * 27648 + 1, y, 2, "train_X.bin", "train_y.bin") == NULL,
                     "train_X.bin: 55297 bytes is not a whole number of 27648-byte images: image 2 is cut short at "
                     "byte 55296");
    CHECK_FAILS_WITH(stl10_parse(x, 0, y, 0, "train_X.bin", "train_y.bin") == NULL, "train_X.bin: 0 bytes");
    CHECK_FAILS_WITH(stl10_parse(x, 27648, y, 2, "train_X.bin", "train_y.bin") == NULL,
                     "train_y.bin: 2 bytes, expected one label byte for each of the 1 images");
    Dataset *ds = stl10_parse(x, 2 * 27648, y, 2, "train_X.bin", "train_y.bin");
    CHECK(ds && dataset_label(ds, 1) == 9, "a valid pair: %s", rsa_error_message());
    dataset_close(ds);
    free(x);
}

static uint8_t *gz(const uint8_t *data, size_t n, size_t *out_n) {
    size_t cap = compressBound(n) + 64;
    uint8_t *out = malloc(cap);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (!out || deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
    zs.next_in = (Bytef *)data, zs.avail_in = (uInt)n, zs.next_out = out, zs.avail_out = (uInt)cap;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END) abort();
    *out_n = zs.total_out;
    deflateEnd(&zs);
    return out;
}

/* Parses images (n x h x w, magic) and labels (m of them) made here; NULL (and the message) or the data set. */
static Dataset *idx_pair(uint32_t magic, uint32_t n, uint32_t h, uint32_t w, size_t data_n, uint32_t m, uint8_t label,
                         bool corrupt) {
    uint8_t *img = calloc(16 + data_n, 1), *lab = calloc(8 + m, 1);
    rel_be32(img, magic), rel_be32(img + 4, n), rel_be32(img + 8, h), rel_be32(img + 12, w);
    for (size_t i = 0; i < data_n; i++) img[16 + i] = (uint8_t)(i * 7 + i / 300);
    rel_be32(lab, 0x801), rel_be32(lab + 4, m);
    for (uint32_t i = 0; i < m; i++) lab[8 + i] = i + 1 == m ? label : (uint8_t)(i % 10);
    size_t gi, gl;
    uint8_t *zi = gz(img, 16 + data_n, &gi), *zl = gz(lab, 8 + m, &gl);
    if (corrupt) /* inside the deflate data, well past the 10-byte gzip header */
        for (size_t k = gi / 2; k < gi / 2 + 8 && k < gi; k++) zi[k] ^= 0xA5;
    Dataset *ds = fashion_mnist_parse(zi, gi, zl, gl, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "test");
    free(img), free(lab), free(zi), free(zl);
    return ds;
}

static void test_idx(void) {
    Dataset *ds = idx_pair(0x803, 3, 28, 28, 3 * 784, 3, 7, false);
    CHECK(ds && dataset_count(ds) == 3 && dataset_label(ds, 2) == 7, "valid: %s", rsa_error_message());
    dataset_close(ds);
    CHECK_FAILS_WITH(idx_pair(0x803, 40, 28, 28, 40 * 784, 40, 7, true) == NULL,
                     "t10k-images-idx3-ubyte.gz: corrupt gzip data near byte");
    CHECK_FAILS_WITH(idx_pair(0x803, 3, 28, 28, 3 * 784, 2, 7, false) == NULL,
                     "t10k-labels-idx1-ubyte.gz has 2 labels for the 3 images of t10k-images-idx3-ubyte.gz");
    CHECK_FAILS_WITH(idx_pair(0x803, 3, 28, 28, 3 * 784, 3, 10, false) == NULL,
                     "t10k-labels-idx1-ubyte.gz: byte 10 (decompressed): label 10 is outside 0..9");
    CHECK_FAILS_WITH(idx_pair(0x803, 3, 0, 0, 0, 3, 1, false) == NULL, "t10k-images-idx3-ubyte.gz: images of 0x0");
    /* dimensions whose product wraps around 2^64 to the real data size (0 bytes): refused, not allocated */
    CHECK_FAILS_WITH(idx_pair(0x803, 1u << 31, 1u << 31, 4, 0, 1, 1, false) == NULL,
                     "t10k-images-idx3-ubyte.gz: byte 4 (decompressed): dimension 0 of 2147483648 is too large");
    CHECK_FAILS_WITH(idx_pair(0x803, 0x7FFFFFFF, 0x7FFFFFFF, 0x7FFFFFFF, 0, 1, 1, false) == NULL,
                     "byte 12 (decompressed): dimension 2 of 2147483647 is too large");
    CHECK_FAILS_WITH(idx_pair(0x0, 3, 28, 28, 3 * 784, 3, 1, false) == NULL, "bad IDX magic 0x00000000");
}

/* The decoded-data cache (cache.c) is read back from disk: a damaged one must be ignored (rebuilt), never trusted. */
static void test_cache(void) {
    uint8_t px[2 * 4 * 5 * 3];
    int32_t labels[2] = {1, -1};
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)i;
    Dataset *ds = dataset_from_memory("tinyimagenet", 2, 4, 5, px, labels, 3);
    char path[800];
    snprintf(path, sizeof path, "%s/cache.rsadset", test_tmpdir());
    CHECK(ds && data_cache_save(path, 77, ds) == 0, "%s", rsa_error_message());
    dataset_close(ds);
    size_t n;
    uint8_t *good = (uint8_t *)read_file(path, &n);
    ds = data_cache_load(path, 77, "tinyimagenet", "val");
    CHECK(ds && dataset_count(ds) == 2 && dataset_label(ds, 0) == 1, "the intact cache was not read back");
    dataset_close(ds);
    struct {
        const char *what;
        size_t at;
        uint64_t value;
    } edits[] = {
        /* 64 + n (4 + 4 * 5 * 3) wraps around 2^64 to the file's 192 bytes: before the fix, a 2^60-byte malloc */
        {"an image count whose size wraps around 2^64 to the file's", 16, ((uint64_t)1 << 58) + 2},
        {"a negative height", 24, (uint64_t)-5},
        {"a huge width", 32, (uint64_t)1 << 40},
        {"no classes", 40, 0},
        {"a label outside the classes", 64, 3},
    };
    for (size_t e = 0; e < sizeof edits / sizeof edits[0]; e++) {
        uint8_t *bad = malloc(n);
        memcpy(bad, good, n);
        for (int i = 0; i < (edits[e].at == 64 ? 4 : 8); i++)
            bad[edits[e].at + i] = (uint8_t)(edits[e].value >> (8 * i));
        const void *pieces[1] = {bad};
        if (atomic_write(path, pieces, &n, 1) != 0) rel_die("cache");
        ds = data_cache_load(path, 77, "tinyimagenet", "val");
        CHECK(ds == NULL, "a cache with %s was trusted", edits[e].what);
        dataset_close(ds);
        free(bad);
    }
    free(good);
}

static uint8_t *make_jpeg(int w, int h, unsigned long *size) {
    uint8_t *px = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++) px[i] = (uint8_t)(i * 31 + i / 97);
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    if (!tj || tjCompress2(tj, px, w, 0, h, TJPF_RGB, &jpg, size, TJSAMP_420, 90, 0) != 0) abort();
    tjDestroy(tj);
    free(px);
    uint8_t *out = malloc(*size);
    memcpy(out, jpg, *size);
    tjFree(jpg);
    return out;
}

static void test_jpeg(void) {
    JpegDecoder *d = jpeg_decoder_new();
    Img im;
    static const uint8_t png[16] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    CHECK_FAILS_WITH(jpeg_decode(d, png, sizeof png, "n01/x.JPEG", JPEG_FULL, &im) != 0,
                     "n01/x.JPEG: byte 0: expected the JPEG start-of-image marker FF D8, found 89 50");
    unsigned long n;
    uint8_t *j = make_jpeg(64, 48, &n);
    /* the frame header claims 60000 x 60000 pixels: refused before anything is allocated */
    for (unsigned long k = 0; k + 8 < n; k++)
        if (j[k] == 0xFF && j[k + 1] == 0xC0) {
            j[k + 5] = 0xEA, j[k + 6] = 0x60, j[k + 7] = 0xEA, j[k + 8] = 0x60;
            break;
        }
    CHECK_FAILS_WITH(jpeg_decode(d, j, n, "bomb.JPEG", JPEG_FULL, &im) != 0, "bomb.JPEG (");
    CHECK(strstr(rsa_error_message(), "claims 60000x60000 pixels, more than the 178956970"), "%s",
          rsa_error_message());
    free(j);
    /* garbage in place of the entropy-coded data, the end-of-image marker kept: decoded (as PIL does, libjpeg only
     * warns) or refused with a message; never a crash */
    j = make_jpeg(64, 48, &n);
    for (unsigned long k = n / 2; k < n - 2; k++) j[k] = (uint8_t)(k * 131);
    rsa_error_clear();
    if (jpeg_decode(d, j, n, "garbage.JPEG", JPEG_FULL, &im) == 0)
        CHECK(im.h == 48 && im.w == 64, "decoded garbage as %dx%d", im.h, im.w);
    else
        CHECK(strstr(rsa_error_message(), "garbage.JPEG"), "%s", rsa_error_message());
    free(j);
    jpeg_decoder_free(d);
}

/* ---- safetensors and checkpoints ---- */

static char ckpt_rsa[800], ckpt_moco[800];

/* Checkpoints of the small learners of tests/fuzz/fuzz_model.h (reference backend). */
static void make_checkpoints(void) {
    for (int i = 0; i < 2; i++) {
        TrainConfig c;
        fuzz_model_config(&c, i ? METHOD_MOCOV2 : METHOD_RSA);
        Learner *l = learner_new(&c, backend_by_name("ref"), FUZZ_BATCH, 100);
        if (!l || fuzz_model_step(l) != 0) rel_die("learner");
        char *path = i ? ckpt_moco : ckpt_rsa;
        snprintf(path, 800, "%s/%s.safetensors", test_tmpdir(), i ? "mocov2" : "rsa");
        if (checkpoint_save(l, (RunPosition){0, 1, 0}, "h", path) != 0) rel_die("checkpoint");
        learner_free(l);
    }
}

/* Loads the file at path (or the bytes given) into a fresh learner of `method`. */
static int load_bytes(MethodKind method, const char *name, const uint8_t *bytes, size_t size, const char *hash) {
    TrainConfig c;
    fuzz_model_config(&c, method);
    Learner *l = learner_new(&c, backend_by_name("ref"), FUZZ_BATCH, 100);
    unsigned char *copy = malloc(size ? size : 1);
    memcpy(copy, bytes, size);
    StFile f;
    RunPosition pos;
    int rc = st_parse(&f, name, copy, size);
    if (rc == 0) {
        rc = checkpoint_load_from(l, hash, &f, &pos);
        st_close(&f);
    }
    learner_free(l);
    return rc;
}

static void test_truncated_checkpoint(void) {
    size_t n;
    uint8_t *b = (uint8_t *)read_file(ckpt_rsa, &n);
    CHECK(load_bytes(METHOD_RSA, "rsa.safetensors", b, n, "h") == 0, "the intact checkpoint: %s",
          rsa_error_message());
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    int bad = 0;
    for (int k = 0; k < 60; k++) {
        /* cuts spread over the file, a third of them in the header */
        size_t cut = k < 20 ? (size_t)k * (8 + hlen) / 20 : 8 + hlen + (size_t)(k - 20) * (n - 8 - hlen) / 40;
        rsa_error_clear();
        if (load_bytes(METHOD_RSA, "cut.safetensors", b, cut, "h") == 0 ||
            !strstr(rsa_error_message(), "cut.safetensors") || !strstr(rsa_error_message(), "(hint: "))
            bad++, test_note("cut at byte %zu of %zu: %s", cut, n, rsa_error_message());
    }
    CHECK(bad == 0, "%d of 60 truncated checkpoints were not refused with a message", bad);
    free(b);
}

/* A copy of the checkpoint's bytes with its JSON header edited (old -> new, same length or not) */
static uint8_t *edit_header(const char *path, const char *old, const char *new, size_t *size) {
    size_t n;
    uint8_t *b = (uint8_t *)read_file(path, &n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    char *h = strndup((char *)b + 8, hlen);
    char *at = strstr(h, old);
    if (!at) {
        fprintf(stderr, "no \"%s\" in the header\n", old);
        exit(1);
    }
    size_t nh = hlen - strlen(old) + strlen(new);
    uint8_t *out = malloc(8 + nh + (n - 8 - hlen));
    size_t pre = (size_t)(at - h);
    memcpy(out + 8, h, pre);
    memcpy(out + 8 + pre, new, strlen(new));
    memcpy(out + 8 + pre + strlen(new), at + strlen(old), hlen - pre - strlen(old));
    memcpy(out + 8 + nh, b + 8 + hlen, n - 8 - hlen);
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)((uint64_t)nh >> (8 * i));
    *size = 8 + nh + (n - 8 - hlen);
    free(h), free(b);
    return out;
}

#define CHECK_EDIT_REFUSED(path, method, old, new, needle)                                                          \
    do {                                                                                                           \
        size_t n_;                                                                                                 \
        uint8_t *b_ = edit_header(path, old, new, &n_);                                                           \
        CHECK_FAILS_WITH(load_bytes(method, "edited.safetensors", b_, n_, "h") != 0, needle);                      \
        free(b_);                                                                                                  \
    } while (0)

static void test_checkpoint_refused(void) {
    CHECK_EDIT_REFUSED(ckpt_rsa, METHOD_RSA, "\"rsa-repro checkpoint\"", "\"something else\"",
                       "edited.safetensors is not an rsa-repro checkpoint");
    CHECK_EDIT_REFUSED(ckpt_rsa, METHOD_RSA, "\"version\":\"1\"", "\"version\":\"2\"",
                       "edited.safetensors has checkpoint format version 2, this build reads 1");
    CHECK_FAILS_WITH(load_bytes(METHOD_RSA, "x.safetensors", (const uint8_t *)"", 0, "h") != 0, "too short");
    size_t n;
    uint8_t *b = (uint8_t *)read_file(ckpt_rsa, &n);
    CHECK_FAILS_WITH(load_bytes(METHOD_RSA, "other.safetensors", b, n, "another") != 0,
                     "other.safetensors was written for config h, this run is config another");
    /* another architecture under the same config hash: the MoCo learner's heads differ */
    CHECK_FAILS_WITH(load_bytes(METHOD_MOCOV2, "rsa.safetensors", b, n, "h") != 0, "rsa.safetensors: ");
    free(b);
    CHECK_EDIT_REFUSED(ckpt_rsa, METHOD_RSA, "\"encoder_q.conv1.weight\"", "\"encoder_q.conv9.weight\"",
                       "no tensor \"encoder_q.conv1.weight\"");
    CHECK_EDIT_REFUSED(ckpt_rsa, METHOD_RSA, "\"step\":\"1\"", "\"step\":\"-1\"", "bad step \"-1\"");
    CHECK_EDIT_REFUSED(ckpt_rsa, METHOD_RSA, "\"step\":\"1\"", "\"step\":\"99999999999999999999\"", "bad step");
    CHECK_EDIT_REFUSED(ckpt_rsa, METHOD_RSA, "\"epoch\":\"0\"", "\"epoch\":\"4294967296\"", "out of range");
    CHECK_EDIT_REFUSED(ckpt_moco, METHOD_MOCOV2, "\"queue_next\":\"4\"", "\"queue_next\":\"1000000\"",
                       "queue_next 1000000 is outside the queue of 8 keys");
    /* fuzz_checkpoint's first finding: a tensor entry key without ':' leaked its name (LeakSanitizer, SAN=1) */
    CHECK_EDIT_REFUSED(ckpt_rsa, METHOD_RSA, "\"dtype\":", "\"dtype\" ", "expected ':'");
}

/* train_run refusing a checkpoint changes nothing in the run directory. */
static void test_refused_checkpoint_leaves_run_dir(void) {
    char dir[800];
    snprintf(dir, sizeof dir, "%s/refused", test_tmpdir());
    RelRun r = rel_run(METHOD_RSA);
    TrainConfig c = rel_config(&r, rel_data_root);
    TrainResult res;
    TrainHooks three = {.max_steps = 3};
    CHECK(train_run(&c, dir, "h", &three, &res) == 1, "%s", rsa_error_message());
    const char *files[] = {"checkpoint.safetensors", "steps.tsv", "epochs.tsv"};
    char *before[3];
    size_t sizes[3];
    for (int i = 0; i < 3; i++) {
        char p[900];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        before[i] = read_file(p, &sizes[i]);
    }
    CHECK_FAILS_WITH(train_run(&c, dir, "another", &(TrainHooks){0}, &res) != 0, "was written for config h");
    c.backbone.width = 32; /* another architecture under the same hash */
    CHECK_FAILS_WITH(train_run(&c, dir, "h", &(TrainHooks){0}, &res) != 0, "resuming from");
    for (int i = 0; i < 3; i++) {
        char p[900];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        size_t n;
        char *after = read_file(p, &n);
        CHECK(before[i] && after && n == sizes[i] && memcmp(before[i], after, n) == 0, "%s changed", files[i]);
        free(before[i]), free(after);
    }
}

/* ---- divergence ---- */

static void diverge(int64_t every, const char *name) {
    char dir[800];
    snprintf(dir, sizeof dir, "%s/%s", test_tmpdir(), name);
    RelRun r = rel_run(METHOD_RSA);
    r.lr = 1e6, r.checkpoint_every = every;
    TrainConfig c = rel_config(&r, rel_data_root);
    TrainResult res;
    int rc = train_run(&c, dir, "h", &(TrainHooks){0}, &res);
    const char *m = rsa_error_message();
    test_note("%s", m);
    CHECK(rc == -1, "a learning rate of 1e6 did not stop the run");
    int64_t ckpt = rel_checkpoint_step(dir), rows;
    rel_last_row(dir, &rows);
    char want[900];
    if (every > 0) snprintf(want, sizeof want, "the last good checkpoint: %s/checkpoint.safetensors (step %lld)", dir,
                            (long long)ckpt);
    else snprintf(want, sizeof want, "the last good checkpoint: none yet");
    CHECK(strstr(m, want), "message lacks \"%s\": %s", want, m);
    CHECK(strstr(m, " is not finite after step ") || strstr(m, ": not finite: "), "message names no tensor: %s", m);
    CHECK(strstr(m, " step "), "message names no step: %s", m);
    CHECK(every == 0 ? ckpt == -1 : ckpt >= 1, "checkpoint at step %lld", (long long)ckpt);
    char *text = run_step_metrics(dir);
    CHECK(text && !strstr(text, "nan") && !strstr(text, "inf"), "steps.tsv holds a non-finite row:\n%s", text);
    free(text);
    if (ckpt >= 1) { /* the good checkpoint: finite */
        char p[900];
        snprintf(p, sizeof p, "%s/checkpoint.safetensors", dir);
        StFile f;
        CHECK(st_open(&f, p) == 0, "%s", rsa_error_message());
        int nonfinite = 0;
        for (int i = 0; i < f.n_tensors; i++) {
            if (f.tensors[i].dtype != ST_F32) continue;
            const float *x = st_data(&f, &f.tensors[i]);
            int before = nonfinite;
            for (size_t k = 0; k < st_numel(&f.tensors[i]); k++) nonfinite += !isfinite(x[k]);
            if (nonfinite > before) test_note("non-finite: %s", f.tensors[i].name);
        }
        CHECK(nonfinite == 0, "the last good checkpoint holds %d non-finite values", nonfinite);
        st_close(&f);
    }
}

static void test_nan_divergence(void) {
    diverge(1, "diverged");
    diverge(0, "diverged-no-checkpoint");
}

int main(void) {
    omp_set_num_threads(1);
    rel_setup();
    make_checkpoints();
    RUN(test_cifar);
    RUN(test_stl10);
    RUN(test_idx);
    RUN(test_jpeg);
    RUN(test_cache);
    RUN(test_truncated_checkpoint);
    RUN(test_checkpoint_refused);
    RUN(test_refused_checkpoint_leaves_run_dir);
    RUN(test_nan_divergence);
    int rc = test_finish();
    if (rc == 0) rel_rm(test_tmpdir());
    return rc;
}
