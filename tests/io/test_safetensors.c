/* safetensors: round trip, and every way a file can be broken, each with a message naming the file and the
 * place. */
#include "tests/util/testlib.h"
#include "trainer/core/error.h"
#include "trainer/core/fileio.h"
#include "trainer/io/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_roundtrip(void) {
    char path[600];
    snprintf(path, sizeof path, "%s/rt.safetensors", test_tmpdir());
    float a[6] = {1, -2, 3.5f, 0, 1e-30f, -0.0f};
    int64_t counts[1] = {42};
    unsigned char bytes[3] = {0, 255, 7};
    int64_t sa[2] = {2, 3}, sb[1] = {3};
    StWriter *w = st_writer_new();
    st_add(w, "layer1.0.conv1.weight", ST_F32, 2, sa, a);
    st_add(w, "bn1.num_batches_tracked", ST_I64, 0, NULL, counts);
    st_add(w, "odd \"name\"\\with\tescapes", ST_U8, 1, sb, bytes);
    st_set_meta(w, "config", "{\"lr\": 0.1}\n");
    CHECK(st_write(w, path) == 0, "%s", rsa_error_message());
    st_writer_free(w);
    StFile f;
    CHECK(st_open(&f, path) == 0, "%s", rsa_error_message());
    float got[6];
    CHECK(st_read(&f, "layer1.0.conv1.weight", ST_F32, 2, sa, got) == 0, "%s", rsa_error_message());
    CHECK(memcmp(got, a, sizeof a) == 0, "float data changed");
    int64_t c;
    CHECK(st_read(&f, "bn1.num_batches_tracked", ST_I64, 0, NULL, &c) == 0 && c == 42, "scalar I64");
    unsigned char gb[3];
    CHECK(st_read(&f, "odd \"name\"\\with\tescapes", ST_U8, 1, sb, gb) == 0 && memcmp(gb, bytes, 3) == 0, "escapes");
    CHECK(st_meta(&f, "config") && strcmp(st_meta(&f, "config"), "{\"lr\": 0.1}\n") == 0, "metadata");
    CHECK(f.data_start % 8 == 0, "data section not 8-byte aligned");
    int64_t wrong[2] = {3, 2};
    CHECK(st_read(&f, "layer1.0.conv1.weight", ST_F32, 2, wrong, got) != 0 &&
              strstr(rsa_error_message(), "is F32 [2, 3], expected F32 [3, 2]"),
          "shape mismatch message: %s", rsa_error_message());
    CHECK(st_read(&f, "missing", ST_F32, 2, sa, got) != 0 && strstr(rsa_error_message(), "no tensor \"missing\""),
          "missing tensor message: %s", rsa_error_message());
    st_close(&f);
}

/* Parses a file made of an 8-byte length, a header and data; expects failure with `needle` in the message. */
static void expect_broken(const char *what, uint64_t hlen, const char *header, size_t data_bytes, const char *needle) {
    size_t hl = strlen(header), size = 8 + hl + data_bytes;
    unsigned char *buf = calloc(size, 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + 8, header, hl);
    StFile f;
    int rc = st_parse(&f, "broken.safetensors", buf, size); /* takes ownership of buf */
    CHECK(rc != 0, "%s: parsed without error", what);
    if (rc == 0) {
        st_close(&f);
        return;
    }
    const char *msg = rsa_error_message();
    CHECK(strstr(msg, "broken.safetensors") && strstr(msg, needle), "%s: message lacks \"%s\": %s", what, needle, msg);
    CHECK(strstr(msg, "hint:") != NULL, "%s: no hint in: %s", what, msg);
}

static void test_broken_files(void) {
    const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    expect_broken("header longer than the file", 1000, ok, 8, "header length 1000 at byte 0 exceeds the file");
    expect_broken("not JSON", 5, "hello", 0, "bad safetensors header at byte 8");
    expect_broken("truncated data", strlen(ok), ok, 4, "claims bytes [0, 8) of a 4-byte data section");
    const char *short3 = "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}";
    expect_broken("size not matching the shape", strlen(short3), short3, 8, "tensor \"a\" (F32, 3 elements)");
    const char *f99 = "{\"a\":{\"dtype\":\"F99\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    expect_broken("unknown dtype", strlen(f99), f99, 8, "unsupported dtype \"F99\"");
    const char *overlap = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
    expect_broken("overlapping tensors", strlen(overlap), overlap, 12, "overlap");
    const char *dup = "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                      "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}";
    expect_broken("duplicate names", strlen(dup), dup, 2, "appears twice");
    expect_broken("unterminated string", 6, "{\"abc:", 0, "unterminated string");
    const char *huge = "{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999],\"data_offsets\":[0,8]}}";
    expect_broken("huge dimension", strlen(huge), huge, 8, "dimension too large");
    unsigned char *tiny = calloc(4, 1);
    StFile f;
    CHECK(st_parse(&f, "tiny.safetensors", tiny, 4) != 0 && strstr(rsa_error_message(), "too short"),
          "4-byte file: %s", rsa_error_message());
}

static void test_atomic_write_keeps_old_file(void) {
    char path[600], bad[640];
    snprintf(path, sizeof path, "%s/keep.txt", test_tmpdir());
    CHECK(atomic_write_text(path, "old") == 0, "%s", rsa_error_message());
    /* a write into a directory that does not exist fails cleanly and names the path */
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.txt", test_tmpdir());
    CHECK(atomic_write_text(bad, "new") != 0 && strstr(rsa_error_message(), "no/such/dir/x.txt"), "message: %s",
          rsa_error_message());
    size_t n;
    char *s = read_file(path, &n);
    CHECK(s && strcmp(s, "old") == 0, "old file changed");
    free(s);
}

int main(void) {
    RUN(test_roundtrip);
    RUN(test_broken_files);
    RUN(test_atomic_write_keeps_old_file);
    return test_finish();
}
