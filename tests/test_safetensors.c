/* test_safetensors.c — strict validation of safetensors files and checkpoint directories.
 *
 * Builds safetensors images in memory (u64 header length, JSON header, data) and checks that
 * every malformed image is refused with the right dsv3_status and a message naming the file and
 * the tensor (safetensors.h, docs/ARCHITECTURE.md "safetensors"), and that valid corner cases
 * (scalar, zero-size, __metadata__, misaligned tensors) read back correctly. Checkpoint directories
 * (single file, index + shards) are written to a mkdtemp directory.
 *
 * Usage: test_safetensors [NAME_SUBSTRING]   runs the tests whose name contains the argument.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/runner.h"

#include "model/run/safetensors.h"

/* ---------------------------------------------------------------- checks --------------- */

/* Prints why a check failed; returns cond so tests can write `ok &= check(...)`. */
static int check(int cond, const char *what) {
    if (!cond) printf("    check failed: %s\n", what);
    return cond;
}

/* Checks st == want and that err names every non-NULL needle. */
static int expect_err(dsv3_status st, const dsv3_err *err, dsv3_status want, const char *needle1,
                      const char *needle2) {
    int ok = 1;
    if (st != want) {
        printf("    expected %s, got %s (\"%s\")\n", dsv3_status_name(want), dsv3_status_name(st),
               err->msg);
        ok = 0;
    }
    if (needle1 && !strstr(err->msg, needle1)) {
        printf("    message \"%s\" does not name \"%s\"\n", err->msg, needle1);
        ok = 0;
    }
    if (needle2 && !strstr(err->msg, needle2)) {
        printf("    message \"%s\" does not name \"%s\"\n", err->msg, needle2);
        ok = 0;
    }
    if (st != DSV3_OK && strncmp(err->msg, "safetensors: ", 13) != 0) {
        printf("    message \"%s\" does not start with \"safetensors: \"\n", err->msg);
        ok = 0;
    }
    return ok;
}

/* ---------------------------------------------------------------- image builder -------- */

#define WHERE "mem.safetensors"

/* An in-memory safetensors image, 64-byte aligned so that offsets decide alignment. */
typedef struct {
    unsigned char *bytes;
    size_t len;
} image;

static void image_free(image *im) {
    free(im->bytes);
    im->bytes = NULL;
    im->len = 0;
}

/* Raw image: the 8-byte header length field says hlen_field, followed by `header` as given
 * (no padding) and data_len bytes of data. */
static image image_raw(uint64_t hlen_field, const char *header, const void *data, size_t data_len) {
    size_t hl = strlen(header);
    image im = {NULL, 8 + hl + data_len};
    im.bytes = aligned_alloc(64, (im.len + 63) / 64 * 64);
    if (!im.bytes) {
        fprintf(stderr, "test_safetensors: out of memory\n");
        exit(1);
    }
    for (int i = 0; i < 8; i++)
        im.bytes[i] = (unsigned char)(hlen_field >> (8 * i));
    memcpy(im.bytes + 8, header, hl);
    if (data_len) memcpy(im.bytes + 8 + hl, data, data_len);
    return im;
}

/* Well-formed framing: the header is padded with spaces so the data section starts at an
 * 8-byte aligned offset, as the Python writer does. */
static image image_make(const char *header, const void *data, size_t data_len) {
    size_t hl = strlen(header), padded = (8 + hl + 7) / 8 * 8 - 8;
    char *h = malloc(padded + 1);
    if (!h) exit(1);
    memcpy(h, header, hl);
    memset(h + hl, ' ', padded - hl);
    h[padded] = 0;
    image im = image_raw(padded, h, data, data_len);
    free(h);
    return im;
}

/* Opens an image built from header + data_len zero bytes; returns the status, closes the file. */
static dsv3_status open_header(const char *header, size_t data_len, dsv3_err *err) {
    unsigned char *zeros = calloc(data_len ? data_len : 1, 1);
    image im = image_make(header, zeros, data_len);
    dsv3_st_file *f = NULL;
    dsv3_status st = dsv3_st_open_memory(&f, im.bytes, im.len, WHERE, err);
    if (st == DSV3_OK && f == NULL) st = DSV3_EINVAL; /* success must hand out a handle */
    dsv3_st_close(f);
    image_free(&im);
    free(zeros);
    return st;
}

/* ---------------------------------------------------------------- malformed images ----- */

static int test_safetensors_rejects_truncated_header(void) {
    int ok = 1;
    static const unsigned char bytes[8] = {16, 0, 0, 0, 0, 0, 0, 0};
    for (size_t len = 0; len < 8; len++) {
        dsv3_err err = {{0}};
        dsv3_st_file *f = (dsv3_st_file *)&err; /* must be reset to NULL */
        dsv3_status st = dsv3_st_open_memory(&f, bytes, len, WHERE, &err);
        ok &= expect_err(st, &err, DSV3_EFORMAT, WHERE, "truncated");
        ok &= check(f == NULL, "*out is NULL on failure");
    }
    return ok;
}

static int test_safetensors_rejects_header_longer_than_file(void) {
    int ok = 1;
    dsv3_err err = {{0}};
    const char *h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    float one = 1.0f;
    /* the length field claims one byte more than header + data */
    image im = image_raw(strlen(h) + 5, h, &one, 4);
    dsv3_st_file *f = NULL;
    ok &= expect_err(dsv3_st_open_memory(&f, im.bytes, im.len, WHERE, &err), &err, DSV3_EFORMAT,
                     WHERE, "larger than the file");
    image_free(&im);
    /* a header length field with nothing after it */
    im = image_raw(64, "", NULL, 0);
    ok &= expect_err(dsv3_st_open_memory(&f, im.bytes, im.len, WHERE, &err), &err, DSV3_EFORMAT,
                     WHERE, NULL);
    image_free(&im);
    return ok;
}

static int test_safetensors_rejects_huge_header_length(void) {
    int ok = 1;
    static const uint64_t lens[] = {((uint64_t)100 << 20) + 1, (uint64_t)1 << 40, UINT64_MAX - 7,
                                    UINT64_MAX};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        dsv3_err err = {{0}};
        image im = image_raw(lens[i], "{}", NULL, 0);
        dsv3_st_file *f = NULL;
        ok &= expect_err(dsv3_st_open_memory(&f, im.bytes, im.len, WHERE, &err), &err, DSV3_EFORMAT,
                         WHERE, "header length");
        ok &= check(f == NULL, "*out is NULL on failure");
        image_free(&im);
    }
    return ok;
}

static int test_safetensors_rejects_invalid_json_header(void) {
    static const char *const bad[] = {
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}",   /* unclosed */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],}}", /* trailing comma */
        "{a:1}",
        "",
        "\x01\x02\x03",
    };
    int ok = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dsv3_err err = {{0}};
        ok &= expect_err(open_header(bad[i], 4, &err), &err, DSV3_EFORMAT, WHERE, "JSON");
    }
    return ok;
}

/* The bytes after the JSON object may only be padding whitespace (docs/ARCHITECTURE.md
 * "safetensors"). */
static int test_safetensors_rejects_garbage_after_header_json(void) {
    dsv3_err err = {{0}};
    return expect_err(
        open_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}xyz", 4, &err),
        &err, DSV3_EFORMAT, WHERE, NULL);
}

static int test_safetensors_rejects_header_not_an_object(void) {
    static const char *const bad[] = {"[1,2,3]", "\"text\"", "42", "null", "true"};
    int ok = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dsv3_err err = {{0}};
        ok &= expect_err(open_header(bad[i], 0, &err), &err, DSV3_EFORMAT, WHERE, "object");
    }
    return ok;
}

static int test_safetensors_rejects_entry_not_an_object(void) {
    dsv3_err err = {{0}};
    int ok = expect_err(open_header("{\"w.weight\":[0,4]}", 4, &err), &err, DSV3_EFORMAT, WHERE,
                        "w.weight");
    ok &= expect_err(open_header("{\"__metadata__\":\"pt\"}", 0, &err), &err, DSV3_EFORMAT, WHERE,
                     "__metadata__");
    return ok;
}

static int test_safetensors_rejects_unknown_dtype(void) {
    static const char *const bad[] = {"F4", "bf16", "FLOAT", "", "F8_E4M3FNUZ"};
    int ok = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char h[256];
        snprintf(h, sizeof h,
                 "{\"w.weight\":{\"dtype\":\"%s\",\"shape\":[1],\"data_offsets\":[0,4]}}", bad[i]);
        dsv3_err err = {{0}};
        ok &= expect_err(open_header(h, 4, &err), &err, DSV3_EDTYPE, WHERE, "w.weight");
        ok &= check(strstr(err.msg, "dtype") != NULL, "message mentions dtype");
    }
    dsv3_err err = {{0}};
    ok &= expect_err(
        open_header("{\"w.weight\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, &err),
        &err, DSV3_EFORMAT, WHERE, "w.weight");
    ok &= expect_err(open_header("{\"w.weight\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, &err),
                     &err, DSV3_EFORMAT, WHERE, "w.weight");
    return ok;
}

static int test_safetensors_rejects_non_integer_shape(void) {
    static const char *const bad[] = {"[2.5]",  "[\"2\"]", "[-1]",   "[1e300]",
                                      "[null]", "[[1]]",   "[true]", "[2,-0.5]"};
    int ok = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char h[256];
        snprintf(h, sizeof h,
                 "{\"w.weight\":{\"dtype\":\"U8\",\"shape\":%s,\"data_offsets\":[0,2]}}", bad[i]);
        dsv3_err err = {{0}};
        ok &= expect_err(open_header(h, 2, &err), &err, DSV3_ESHAPE, WHERE, "w.weight");
    }
    /* shape that is not an array at all */
    dsv3_err err = {{0}};
    ok &= expect_err(
        open_header("{\"w.weight\":{\"dtype\":\"U8\",\"shape\":2,\"data_offsets\":[0,2]}}", 2,
                    &err),
        &err, DSV3_EFORMAT, WHERE, "w.weight");
    return ok;
}

static int test_safetensors_rejects_too_many_dims(void) {
    dsv3_err err = {{0}};
    return expect_err(open_header("{\"w.weight\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                                  "\"data_offsets\":[0,1]}}",
                                  1, &err),
                      &err, DSV3_ESHAPE, WHERE, "w.weight");
}

static int test_safetensors_rejects_shape_overflow(void) {
    dsv3_err err = {{0}};
    int ok = expect_err(open_header("{\"w.weight\":{\"dtype\":\"F64\",\"shape\":[4503599627370496,"
                                    "4503599627370496],\"data_offsets\":[0,8]}}",
                                    8, &err),
                        &err, DSV3_ESHAPE, WHERE, "w.weight");
    /* numel fits, numel * 8 bytes does not */
    ok &= expect_err(open_header("{\"w.weight\":{\"dtype\":\"F64\",\"shape\":[4503599627370496,"
                                 "4096],\"data_offsets\":[0,8]}}",
                                 8, &err),
                     &err, DSV3_ESHAPE, WHERE, "w.weight");
    return ok;
}

static int test_safetensors_rejects_offsets_out_of_range(void) {
    static const char *const bad[] = {
        "[0,12]", "[4,12]", "[12,16]", "[8,4]", "[0,18446744073709551615]", "[9007199254740992,4]"};
    int ok = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char h[256];
        snprintf(h, sizeof h,
                 "{\"w.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":%s}}", bad[i]);
        dsv3_err err = {{0}};
        ok &= expect_err(open_header(h, 8, &err), &err, DSV3_EFORMAT, WHERE, "w.weight");
    }
    return ok;
}

static int test_safetensors_rejects_malformed_offsets(void) {
    static const char *const bad[] = {"[0]",       "[0,4,8]",       "[\"0\",\"4\"]", "[-4,0]",
                                      "[0.5,4.5]", "{\"begin\":0}", "null"};
    int ok = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char h[256];
        snprintf(h, sizeof h,
                 "{\"w.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":%s}}", bad[i]);
        dsv3_err err = {{0}};
        ok &= expect_err(open_header(h, 4, &err), &err, DSV3_EFORMAT, WHERE, "w.weight");
    }
    return ok;
}

static int test_safetensors_rejects_overlapping_offsets(void) {
    dsv3_err err = {{0}};
    int ok = expect_err(
        open_header("{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                    12, &err),
        &err, DSV3_EFORMAT, WHERE, "b.weight");
    ok &= check(strstr(err.msg, "overlap") && strstr(err.msg, "a.weight"),
                "overlap message names both tensors");
    /* the same bytes claimed twice */
    ok &= expect_err(
        open_header("{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                    8, &err),
        &err, DSV3_EFORMAT, WHERE, "overlap");
    /* a zero-size tensor placed inside another tensor's bytes */
    ok &= expect_err(
        open_header("{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"z.weight\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
                    8, &err),
        &err, DSV3_EFORMAT, WHERE, "z.weight");
    return ok;
}

static int test_safetensors_rejects_gap_between_tensors(void) {
    dsv3_err err = {{0}};
    int ok = expect_err(
        open_header("{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                    "\"b.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                    12, &err),
        &err, DSV3_EFORMAT, WHERE, "b.weight");
    ok &= check(strstr(err.msg, "gap") != NULL, "message says gap");
    /* a gap before the first tensor */
    ok &= expect_err(
        open_header("{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
                    &err),
        &err, DSV3_EFORMAT, WHERE, "a.weight");
    return ok;
}

static int test_safetensors_rejects_trailing_bytes(void) {
    dsv3_err err = {{0}};
    int ok = expect_err(
        open_header("{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8,
                    &err),
        &err, DSV3_EFORMAT, WHERE, "trailing");
    /* no tensors at all, but data bytes */
    ok &= expect_err(open_header("{}", 8, &err), &err, DSV3_EFORMAT, WHERE, "trailing");
    return ok;
}

static int test_safetensors_rejects_size_mismatch(void) {
    static const char *const bad[] = {
        "{\"w.weight\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
        "{\"w.weight\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,8]}}",
        "{\"w.weight\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,8]}}",
        "{\"w.weight\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,8]}}",
    };
    int ok = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dsv3_err err = {{0}};
        ok &= expect_err(open_header(bad[i], 8, &err), &err, DSV3_ESHAPE, WHERE, "w.weight");
    }
    return ok;
}

static int test_safetensors_rejects_duplicate_tensor_name(void) {
    dsv3_err err = {{0}};
    int ok = expect_err(
        open_header("{\"w.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                    "\"w.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                    8, &err),
        &err, DSV3_EFORMAT, WHERE, "w.weight");
    /* names that differ only after an embedded NUL are the same C string */
    ok &= expect_err(
        open_header("{\"w\\u0000a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                    "\"w\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                    8, &err),
        &err, DSV3_EFORMAT, WHERE, NULL);
    return ok;
}

/* ---------------------------------------------------------------- valid corner cases --- */

static int test_safetensors_reads_scalar_shape(void) {
    float v = 1.5f;
    image im = image_make("{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", &v, 4);
    dsv3_err err = {{0}};
    dsv3_st_file *f = NULL;
    int ok = expect_err(dsv3_st_open_memory(&f, im.bytes, im.len, WHERE, &err), &err, DSV3_OK, NULL,
                        NULL);
    if (f) {
        const dsv3_st_tensor *t = dsv3_st_find(f, "s");
        ok &=
            check(t && t->ndim == 0 && t->numel == 1 && t->nbytes == 4, "scalar: ndim 0, numel 1");
        ok &= check(t && t->dtype == DSV3_DT_F32 && *(const float *)t->data == 1.5f,
                    "scalar value 1.5");
    }
    dsv3_st_close(f);
    image_free(&im);
    return ok;
}

static int test_safetensors_reads_zero_size_dims(void) {
    float v[2] = {3.0f, -4.0f};
    image im = image_make("{\"z\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[0,0]},"
                          "\"y\":{\"dtype\":\"BF16\",\"shape\":[7,0],\"data_offsets\":[8,8]},"
                          "\"v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                          v, 8);
    dsv3_err err = {{0}};
    dsv3_st_file *f = NULL;
    int ok = expect_err(dsv3_st_open_memory(&f, im.bytes, im.len, WHERE, &err), &err, DSV3_OK, NULL,
                        NULL);
    if (f) {
        const dsv3_st_tensor *z = dsv3_st_find(f, "z"), *y = dsv3_st_find(f, "y");
        const dsv3_st_tensor *t = dsv3_st_find(f, "v");
        ok &= check(dsv3_st_count(f) == 3, "3 tensors");
        ok &= check(z && z->ndim == 2 && z->shape[0] == 0 && z->shape[1] == 5 && z->numel == 0 &&
                        z->nbytes == 0,
                    "z: [0,5], 0 bytes");
        ok &= check(y && y->numel == 0 && y->nbytes == 0, "y: [7,0], 0 bytes");
        ok &= check(t && ((const float *)t->data)[1] == -4.0f, "v[1] == -4");
    }
    dsv3_st_close(f);
    image_free(&im);
    return ok;
}

static int test_safetensors_accepts_metadata(void) {
    float v = 2.0f;
    image im = image_make("{\"__metadata__\":{\"format\":\"pt\",\"note\":\"x\"},"
                          "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                          &v, 4);
    dsv3_err err = {{0}};
    dsv3_st_file *f = NULL;
    int ok = expect_err(dsv3_st_open_memory(&f, im.bytes, im.len, WHERE, &err), &err, DSV3_OK, NULL,
                        NULL);
    if (f) {
        ok &= check(dsv3_st_count(f) == 1, "__metadata__ is not a tensor");
        ok &= check(dsv3_st_find(f, "__metadata__") == NULL, "find(__metadata__) is NULL");
        ok &= check(dsv3_st_find(f, "w") != NULL, "w found");
    }
    dsv3_st_close(f);
    image_free(&im);
    return ok;
}

static int test_safetensors_accepts_trailing_whitespace_padding(void) {
    float v = 2.0f;
    int ok = 1;
    static const char *const pads[] = {"", " ", "       ", "\n", "\t \r\n  "};
    for (size_t i = 0; i < sizeof pads / sizeof pads[0]; i++) {
        char h[256];
        snprintf(h, sizeof h, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}%s",
                 pads[i]);
        image im = image_raw(strlen(h), h, &v, 4);
        dsv3_err err = {{0}};
        dsv3_st_file *f = NULL;
        ok &= expect_err(dsv3_st_open_memory(&f, im.bytes, im.len, WHERE, &err), &err, DSV3_OK,
                         NULL, NULL);
        ok &= check(f && dsv3_st_find(f, "w") && *(const float *)dsv3_st_find(f, "w")->data == 2.0f,
                    "w == 2");
        dsv3_st_close(f);
        image_free(&im);
    }
    return ok;
}

static int test_safetensors_accepts_empty_header(void) {
    image im = image_make("{}", NULL, 0);
    dsv3_err err = {{0}};
    dsv3_st_file *f = NULL;
    int ok = expect_err(dsv3_st_open_memory(&f, im.bytes, im.len, WHERE, &err), &err, DSV3_OK, NULL,
                        NULL);
    ok &= check(f && dsv3_st_count(f) == 0 && dsv3_st_at(f, 0) == NULL, "no tensors");
    ok &= check(f && dsv3_st_find(f, "x") == NULL, "find on empty file is NULL");
    dsv3_st_close(f);
    image_free(&im);
    return ok;
}

/* BF16 [3] occupies bytes [0, 6), so the F32 that follows starts 2 bytes off a 4-byte
 * boundary; it must still read back exactly (the reader hands out an aligned copy). */
static const char misaligned_header[] =
    "{\"h\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,6]},"
    "\"f\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[6,14]}}";

static void misaligned_data(unsigned char data[14]) {
    const uint16_t h[3] = {0x3f80, 0xc000, 0x4040}; /* 1, -2, 3 in BF16 */
    const float fv[2] = {0.25f, -1024.5f};
    memcpy(data, h, 6);
    memcpy(data + 6, fv, 8);
}

static int check_misaligned(const dsv3_st_file *f) {
    int ok = 1;
    const dsv3_st_tensor *h = dsv3_st_find(f, "h"), *t = dsv3_st_find(f, "f");
    ok &= check(h && t, "both tensors found");
    if (!ok) return 0;
    ok &= check((uintptr_t)t->data % 4 == 0, "F32 data aligned to 4 bytes");
    ok &= check((uintptr_t)h->data % 2 == 0, "BF16 data aligned to 2 bytes");
    float fv[2];
    memcpy(fv, t->data, 8);
    ok &= check(fv[0] == 0.25f && fv[1] == -1024.5f, "F32 values 0.25, -1024.5");
    ok &= check(((const float *)t->data)[1] == -1024.5f, "F32 readable through a float pointer");
    const uint16_t *hv = h->data;
    ok &= check(dsv3_bf16_to_f32(hv[0]) == 1.0f && dsv3_bf16_to_f32(hv[1]) == -2.0f &&
                    dsv3_bf16_to_f32(hv[2]) == 3.0f,
                "BF16 values 1, -2, 3");
    return ok;
}

static int test_safetensors_reads_misaligned_tensor(void) {
    unsigned char data[14];
    misaligned_data(data);
    image im = image_make(misaligned_header, data, sizeof data);
    dsv3_err err = {{0}};
    dsv3_st_file *f = NULL;
    int ok = expect_err(dsv3_st_open_memory(&f, im.bytes, im.len, WHERE, &err), &err, DSV3_OK, NULL,
                        NULL);
    if (f) ok &= check_misaligned(f);
    dsv3_st_close(f);
    image_free(&im);
    return ok;
}

static int test_safetensors_finds_tensors_by_name(void) {
    float v[4] = {1, 2, 3, 4};
    /* JSON order is not sorted order; offsets are not in name order either */
    image im = image_make(
        "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
        "\"lm_head.weight\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[0,4]},"
        "\"model.embed_tokens.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
        v, 16);
    dsv3_err err = {{0}};
    dsv3_st_file *f = NULL;
    int ok = expect_err(dsv3_st_open_memory(&f, im.bytes, im.len, WHERE, &err), &err, DSV3_OK, NULL,
                        NULL);
    if (!f) {
        image_free(&im);
        return 0;
    }
    static const struct {
        const char *name;
        float value;
    } want[] = {{"model.norm.weight", 3},
                {"lm_head.weight", 1},
                {"model.embed_tokens.weight", 4},
                {"a", 2}};
    for (size_t i = 0; i < 4; i++) {
        const dsv3_st_tensor *t = dsv3_st_find(f, want[i].name);
        ok &= check(t && strcmp(t->name, want[i].name) == 0, want[i].name);
        ok &= check(t && *(const float *)t->data == want[i].value, "value by name");
        ok &= check(t && t->file && strcmp(t->file, WHERE) == 0, "tensor->file names the image");
    }
    ok &= check(dsv3_st_find(f, "model.norm") == NULL, "prefix does not match");
    ok &= check(dsv3_st_find(f, "model.norm.weightx") == NULL, "longer name does not match");
    ok &= check(dsv3_st_find(f, "") == NULL, "empty name does not match");
    ok &= check(dsv3_st_count(f) == 4, "count 4");
    size_t seen = 0;
    for (size_t i = 0; i < dsv3_st_count(f); i++)
        seen += dsv3_st_at(f, i) != NULL;
    ok &= check(seen == 4 && dsv3_st_at(f, 4) == NULL, "dsv3_st_at covers 0..count-1");
    const dsv3_st_tensor *lm = dsv3_st_find(f, "lm_head.weight");
    ok &= check(lm && lm->ndim == 2 && lm->shape[0] == 1 && lm->shape[1] == 1, "lm_head shape");
    dsv3_st_close(f);
    image_free(&im);
    return ok;
}

static int test_safetensors_accepts_every_dtype(void) {
    static const struct {
        const char *name;
        size_t size;
        dsv3_dtype dt;
    } dts[] = {{"BOOL", 1, DSV3_DT_BOOL},      {"U8", 1, DSV3_DT_U8},
               {"I8", 1, DSV3_DT_I8},          {"I16", 2, DSV3_DT_I16},
               {"U16", 2, DSV3_DT_U16},        {"I32", 4, DSV3_DT_I32},
               {"U32", 4, DSV3_DT_U32},        {"I64", 8, DSV3_DT_I64},
               {"U64", 8, DSV3_DT_U64},        {"F16", 2, DSV3_DT_F16},
               {"BF16", 2, DSV3_DT_BF16},      {"F32", 4, DSV3_DT_F32},
               {"F64", 8, DSV3_DT_F64},        {"F8_E4M3", 1, DSV3_DT_F8_E4M3},
               {"F8_E5M2", 1, DSV3_DT_F8_E5M2}};
    int ok = 1;
    for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
        char h[256];
        snprintf(h, sizeof h, "{\"t\":{\"dtype\":\"%s\",\"shape\":[3],\"data_offsets\":[0,%zu]}}",
                 dts[i].name, 3 * dts[i].size);
        unsigned char zeros[24] = {0};
        image im = image_make(h, zeros, 3 * dts[i].size);
        dsv3_err err = {{0}};
        dsv3_st_file *f = NULL;
        ok &= expect_err(dsv3_st_open_memory(&f, im.bytes, im.len, WHERE, &err), &err, DSV3_OK,
                         NULL, NULL);
        const dsv3_st_tensor *t = f ? dsv3_st_find(f, "t") : NULL;
        ok &= check(t && t->dtype == dts[i].dt && t->nbytes == 3 * dts[i].size, dts[i].name);
        dsv3_st_close(f);
        image_free(&im);
    }
    return ok;
}

/* ---------------------------------------------------------------- files on disk -------- */

static char tmp_root[] = "/tmp/dsv3_test_st_XXXXXX";

static void path_in(char *out, size_t n, const char *dir, const char *name) {
    snprintf(out, n, "%s/%s", dir, name);
}

static int write_file(const char *path, const void *bytes, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t w = len ? fwrite(bytes, 1, len, f) : 0;
    return (fclose(f) == 0) & (w == len);
}

static int write_text(const char *path, const char *text) {
    return write_file(path, text, strlen(text));
}

/* A fresh subdirectory of the temporary root. */
static void make_dir(char *out, size_t n, const char *name) {
    path_in(out, n, tmp_root, name);
    mkdir(out, 0700);
}

/* Writes a safetensors file whose tensors are F32 [1] holding 1, 2, 3, ... in order. */
static int write_st(const char *path, const char *const *names, size_t count) {
    char h[2048];
    size_t at = (size_t)snprintf(h, sizeof h, "{");
    float v[16];
    for (size_t i = 0; i < count && i < 16; i++) {
        at += (size_t)snprintf(
            h + at, sizeof h - at,
            "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[%zu,%zu]}", i ? "," : "",
            names[i], 4 * i, 4 * i + 4);
        v[i] = (float)(i + 1);
    }
    snprintf(h + at, sizeof h - at, "}");
    image im = image_make(h, v, 4 * count);
    int ok = write_file(path, im.bytes, im.len);
    image_free(&im);
    return ok;
}

static int test_safetensors_open_reads_misaligned_file(void) {
    char dir[512], path[600];
    make_dir(dir, sizeof dir, "misaligned");
    path_in(path, sizeof path, dir, "model.safetensors");
    unsigned char data[14];
    misaligned_data(data);
    image im = image_make(misaligned_header, data, sizeof data);
    int ok = check(write_file(path, im.bytes, im.len), "write file");
    image_free(&im);
    dsv3_err err = {{0}};
    dsv3_st_file *f = NULL;
    ok &= expect_err(dsv3_st_open(&f, path, &err), &err, DSV3_OK, NULL, NULL);
    if (f) {
        ok &= check_misaligned(f);
        ok &= check(strcmp(dsv3_st_find(f, "f")->file, path) == 0, "tensor->file is the path");
    }
    dsv3_st_close(f);
    return ok;
}

static int test_safetensors_open_rejects_unreadable_paths(void) {
    char dir[512], path[600];
    make_dir(dir, sizeof dir, "unreadable");
    dsv3_err err = {{0}};
    dsv3_st_file *f = NULL;
    path_in(path, sizeof path, dir, "absent.safetensors");
    int ok = expect_err(dsv3_st_open(&f, path, &err), &err, DSV3_EIO, path, NULL);
    ok &= check(f == NULL, "*out is NULL on failure");
    ok &= expect_err(dsv3_st_open(&f, dir, &err), &err, DSV3_EIO, dir, NULL);
    path_in(path, sizeof path, dir, "empty.safetensors");
    ok &= check(write_file(path, "", 0), "write empty file");
    ok &= expect_err(dsv3_st_open(&f, path, &err), &err, DSV3_EFORMAT, path, "truncated");
    path_in(path, sizeof path, dir, "bad.safetensors");
    image im =
        image_make("{\"w\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", "abcd", 4);
    ok &= check(write_file(path, im.bytes, im.len), "write bad file");
    image_free(&im);
    ok &= expect_err(dsv3_st_open(&f, path, &err), &err, DSV3_EDTYPE, path, "tensor w");
    return ok;
}

/* ---------------------------------------------------------------- checkpoints ---------- */

static const char *const shard1_names[] = {"model.embed_tokens.weight", "model.norm.weight"};
static const char *const shard2_names[] = {"lm_head.weight", "model.layers.0.mlp.gate.weight",
                                           "extra.weight"};
static const char index_json[] =
    "{\"metadata\":{\"total_size\":20},\"weight_map\":{"
    "\"model.embed_tokens.weight\":\"model-00001-of-00002.safetensors\","
    "\"model.norm.weight\":\"model-00001-of-00002.safetensors\","
    "\"lm_head.weight\":\"model-00002-of-00002.safetensors\","
    "\"model.layers.0.mlp.gate.weight\":\"model-00002-of-00002.safetensors\","
    "\"extra.weight\":\"model-00002-of-00002.safetensors\"}}";

/* Writes the two shards of index_json into dir (and the index unless index is NULL). */
static int write_sharded(const char *dir, const char *index) {
    char p[600];
    int ok = 1;
    path_in(p, sizeof p, dir, "model-00001-of-00002.safetensors");
    ok &= write_st(p, shard1_names, 2);
    path_in(p, sizeof p, dir, "model-00002-of-00002.safetensors");
    ok &= write_st(p, shard2_names, 3);
    if (index) {
        path_in(p, sizeof p, dir, "model.safetensors.index.json");
        ok &= write_text(p, index);
    }
    return check(ok, "write checkpoint files");
}

static int test_ckpt_opens_single_file(void) {
    char dir[512], p[600];
    make_dir(dir, sizeof dir, "single");
    path_in(p, sizeof p, dir, "model.safetensors");
    static const char *const names[] = {"b.weight", "a.weight", "c.weight"};
    int ok = check(write_st(p, names, 3), "write model.safetensors");
    dsv3_err err = {{0}};
    dsv3_checkpoint *ck = NULL;
    ok &= expect_err(dsv3_ckpt_open(&ck, dir, &err), &err, DSV3_OK, NULL, NULL);
    if (!ck) return 0;
    ok &= check(dsv3_ckpt_count(ck) == 3, "3 tensors");
    for (size_t i = 0; i < 3; i++)
        ok &= check(dsv3_ckpt_unused(ck, i), "unused before find");
    const dsv3_st_tensor *a = dsv3_ckpt_find(ck, "a.weight");
    ok &= check(a && *(const float *)a->data == 2.0f, "a.weight == 2");
    ok &= check(dsv3_ckpt_find(ck, "d.weight") == NULL, "absent tensor is NULL");
    size_t unused = 0;
    for (size_t i = 0; i < dsv3_ckpt_count(ck); i++)
        unused += (size_t)dsv3_ckpt_unused(ck, i);
    ok &= check(unused == 2, "find marks exactly one tensor used");
    ok &= check(dsv3_ckpt_bytes(ck) > 12, "bytes counts the file");
    dsv3_ckpt_close(ck);
    return ok;
}

static int test_ckpt_opens_sharded_index(void) {
    char dir[512];
    make_dir(dir, sizeof dir, "sharded");
    int ok = write_sharded(dir, index_json);
    dsv3_err err = {{0}};
    dsv3_checkpoint *ck = NULL;
    ok &= expect_err(dsv3_ckpt_open(&ck, dir, &err), &err, DSV3_OK, NULL, NULL);
    if (!ck) return 0;
    ok &= check(dsv3_ckpt_count(ck) == 5, "5 tensors over 2 shards");
    const dsv3_st_tensor *n = dsv3_ckpt_find(ck, "model.norm.weight");
    const dsv3_st_tensor *g = dsv3_ckpt_find(ck, "model.layers.0.mlp.gate.weight");
    ok &= check(n && *(const float *)n->data == 2.0f && strstr(n->file, "model-00001-of-00002"),
                "model.norm.weight from shard 1");
    ok &= check(g && *(const float *)g->data == 2.0f && strstr(g->file, "model-00002-of-00002"),
                "gate from shard 2");
    dsv3_ckpt_close(ck);
    return ok;
}

static int test_ckpt_rejects_missing_shard(void) {
    char dir[512], p[600];
    make_dir(dir, sizeof dir, "missing_shard");
    int ok = write_sharded(dir, index_json);
    path_in(p, sizeof p, dir, "model-00002-of-00002.safetensors");
    unlink(p);
    dsv3_err err = {{0}};
    dsv3_checkpoint *ck = (dsv3_checkpoint *)&err;
    ok &= expect_err(dsv3_ckpt_open(&ck, dir, &err), &err, DSV3_EIO,
                     "model-00002-of-00002.safetensors", "missing");
    ok &= check(ck == NULL, "*out is NULL on failure");
    return ok;
}

static int test_ckpt_rejects_tensor_absent_from_shard(void) {
    char dir[512];
    make_dir(dir, sizeof dir, "absent_tensor");
    /* lm_head.weight is said to live in shard 1, which does not hold it */
    static const char idx[] =
        "{\"weight_map\":{"
        "\"model.embed_tokens.weight\":\"model-00001-of-00002.safetensors\","
        "\"model.norm.weight\":\"model-00001-of-00002.safetensors\","
        "\"lm_head.weight\":\"model-00001-of-00002.safetensors\","
        "\"model.layers.0.mlp.gate.weight\":\"model-00002-of-00002.safetensors\"}}";
    int ok = write_sharded(dir, idx);
    dsv3_err err = {{0}};
    dsv3_checkpoint *ck = NULL;
    ok &= expect_err(dsv3_ckpt_open(&ck, dir, &err), &err, DSV3_EFORMAT, "lm_head.weight",
                     "model-00001-of-00002.safetensors");
    /* a tensor named by the index that no shard holds */
    static const char idx2[] = "{\"weight_map\":{"
                               "\"model.embed_tokens.weight\":\"model-00001-of-00002.safetensors\","
                               "\"ghost.weight\":\"model-00002-of-00002.safetensors\"}}";
    char dir2[512];
    make_dir(dir2, sizeof dir2, "ghost_tensor");
    ok &= write_sharded(dir2, idx2);
    ok &= expect_err(dsv3_ckpt_open(&ck, dir2, &err), &err, DSV3_EFORMAT, "ghost.weight",
                     "model-00002-of-00002.safetensors");
    return ok;
}

static int test_ckpt_rejects_invalid_index_json(void) {
    static const char *const bad[] = {"{\"weight_map\":{\"a\":", "not json", ""};
    int ok = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char dir[512], name[64];
        snprintf(name, sizeof name, "bad_index_%zu", i);
        make_dir(dir, sizeof dir, name);
        ok &= write_sharded(dir, bad[i]);
        dsv3_err err = {{0}};
        dsv3_checkpoint *ck = NULL;
        ok &= expect_err(dsv3_ckpt_open(&ck, dir, &err), &err, DSV3_EFORMAT,
                         "model.safetensors.index.json", NULL);
    }
    return ok;
}

static int test_ckpt_rejects_index_without_weight_map(void) {
    static const char *const bad[] = {"{}", "{\"weight_map\":{}}", "{\"weight_map\":[1]}", "[]"};
    int ok = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char dir[512], name[64];
        snprintf(name, sizeof name, "no_weight_map_%zu", i);
        make_dir(dir, sizeof dir, name);
        ok &= write_sharded(dir, bad[i]);
        dsv3_err err = {{0}};
        dsv3_checkpoint *ck = NULL;
        ok &= expect_err(dsv3_ckpt_open(&ck, dir, &err), &err, DSV3_EFORMAT, "weight_map", NULL);
    }
    return ok;
}

static int test_ckpt_rejects_shard_name_outside_dir(void) {
    static const char *const bad[] = {"../model.safetensors", "/etc/passwd", ".hidden", "", "5"};
    int ok = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char dir[512], name[64], idx[256];
        snprintf(name, sizeof name, "escape_%zu", i);
        make_dir(dir, sizeof dir, name);
        if (i == 4)
            snprintf(idx, sizeof idx, "{\"weight_map\":{\"lm_head.weight\":5}}");
        else
            snprintf(idx, sizeof idx, "{\"weight_map\":{\"lm_head.weight\":\"%s\"}}", bad[i]);
        ok &= write_sharded(dir, idx);
        dsv3_err err = {{0}};
        dsv3_checkpoint *ck = NULL;
        ok &=
            expect_err(dsv3_ckpt_open(&ck, dir, &err), &err, DSV3_EFORMAT, "lm_head.weight", NULL);
    }
    return ok;
}

static int test_ckpt_rejects_tensor_in_two_shards(void) {
    char dir[512], p[600];
    make_dir(dir, sizeof dir, "twice");
    static const char *const a[] = {"x.weight", "dup.weight"}, *const b[] = {"dup.weight"};
    int ok = 1;
    path_in(p, sizeof p, dir, "s1.safetensors");
    ok &= write_st(p, a, 2);
    path_in(p, sizeof p, dir, "s2.safetensors");
    ok &= write_st(p, b, 1);
    path_in(p, sizeof p, dir, "model.safetensors.index.json");
    ok &= write_text(p, "{\"weight_map\":{\"x.weight\":\"s1.safetensors\","
                        "\"dup.weight\":\"s2.safetensors\"}}");
    dsv3_err err = {{0}};
    dsv3_checkpoint *ck = NULL;
    ok &= expect_err(dsv3_ckpt_open(&ck, dir, &err), &err, DSV3_EFORMAT, "dup.weight", "s1");
    return ok;
}

static int test_ckpt_rejects_broken_shard(void) {
    char dir[512], p[600];
    make_dir(dir, sizeof dir, "broken_shard");
    int ok = write_sharded(dir, index_json);
    path_in(p, sizeof p, dir, "model-00002-of-00002.safetensors");
    ok &= check(truncate(p, 20) == 0, "truncate shard 2");
    dsv3_err err = {{0}};
    dsv3_checkpoint *ck = NULL;
    ok &= expect_err(dsv3_ckpt_open(&ck, dir, &err), &err, DSV3_EFORMAT,
                     "model-00002-of-00002.safetensors", NULL);
    return ok;
}

static int test_ckpt_rejects_dir_without_weights(void) {
    char dir[512], p[600];
    make_dir(dir, sizeof dir, "empty");
    dsv3_err err = {{0}};
    dsv3_checkpoint *ck = NULL;
    int ok = expect_err(dsv3_ckpt_open(&ck, dir, &err), &err, DSV3_EIO, dir, "model.safetensors");
    path_in(p, sizeof p, tmp_root, "no_such_dir");
    ok &= expect_err(dsv3_ckpt_open(&ck, p, &err), &err, DSV3_EIO, "no_such_dir", NULL);
    /* shards alone, without the index, are not a checkpoint */
    char dir2[512];
    make_dir(dir2, sizeof dir2, "shards_no_index");
    ok &= write_sharded(dir2, NULL);
    ok &= expect_err(dsv3_ckpt_open(&ck, dir2, &err), &err, DSV3_EIO, dir2, NULL);
    return ok;
}

/* ---------------------------------------------------------------- runner --------------- */

static const dsv3_test tests[] = {
    {"test_safetensors_rejects_truncated_header", test_safetensors_rejects_truncated_header},
    {"test_safetensors_rejects_header_longer_than_file",
     test_safetensors_rejects_header_longer_than_file},
    {"test_safetensors_rejects_huge_header_length", test_safetensors_rejects_huge_header_length},
    {"test_safetensors_rejects_invalid_json_header", test_safetensors_rejects_invalid_json_header},
    {"test_safetensors_rejects_garbage_after_header_json",
     test_safetensors_rejects_garbage_after_header_json},
    {"test_safetensors_rejects_header_not_an_object",
     test_safetensors_rejects_header_not_an_object},
    {"test_safetensors_rejects_entry_not_an_object", test_safetensors_rejects_entry_not_an_object},
    {"test_safetensors_rejects_unknown_dtype", test_safetensors_rejects_unknown_dtype},
    {"test_safetensors_rejects_non_integer_shape", test_safetensors_rejects_non_integer_shape},
    {"test_safetensors_rejects_too_many_dims", test_safetensors_rejects_too_many_dims},
    {"test_safetensors_rejects_shape_overflow", test_safetensors_rejects_shape_overflow},
    {"test_safetensors_rejects_offsets_out_of_range",
     test_safetensors_rejects_offsets_out_of_range},
    {"test_safetensors_rejects_malformed_offsets", test_safetensors_rejects_malformed_offsets},
    {"test_safetensors_rejects_overlapping_offsets", test_safetensors_rejects_overlapping_offsets},
    {"test_safetensors_rejects_gap_between_tensors", test_safetensors_rejects_gap_between_tensors},
    {"test_safetensors_rejects_trailing_bytes", test_safetensors_rejects_trailing_bytes},
    {"test_safetensors_rejects_size_mismatch", test_safetensors_rejects_size_mismatch},
    {"test_safetensors_rejects_duplicate_tensor_name",
     test_safetensors_rejects_duplicate_tensor_name},
    {"test_safetensors_reads_scalar_shape", test_safetensors_reads_scalar_shape},
    {"test_safetensors_reads_zero_size_dims", test_safetensors_reads_zero_size_dims},
    {"test_safetensors_accepts_metadata", test_safetensors_accepts_metadata},
    {"test_safetensors_accepts_trailing_whitespace_padding",
     test_safetensors_accepts_trailing_whitespace_padding},
    {"test_safetensors_accepts_empty_header", test_safetensors_accepts_empty_header},
    {"test_safetensors_reads_misaligned_tensor", test_safetensors_reads_misaligned_tensor},
    {"test_safetensors_finds_tensors_by_name", test_safetensors_finds_tensors_by_name},
    {"test_safetensors_accepts_every_dtype", test_safetensors_accepts_every_dtype},
    {"test_safetensors_open_reads_misaligned_file", test_safetensors_open_reads_misaligned_file},
    {"test_safetensors_open_rejects_unreadable_paths",
     test_safetensors_open_rejects_unreadable_paths},
    {"test_ckpt_opens_single_file", test_ckpt_opens_single_file},
    {"test_ckpt_opens_sharded_index", test_ckpt_opens_sharded_index},
    {"test_ckpt_rejects_missing_shard", test_ckpt_rejects_missing_shard},
    {"test_ckpt_rejects_tensor_absent_from_shard", test_ckpt_rejects_tensor_absent_from_shard},
    {"test_ckpt_rejects_invalid_index_json", test_ckpt_rejects_invalid_index_json},
    {"test_ckpt_rejects_index_without_weight_map", test_ckpt_rejects_index_without_weight_map},
    {"test_ckpt_rejects_shard_name_outside_dir", test_ckpt_rejects_shard_name_outside_dir},
    {"test_ckpt_rejects_tensor_in_two_shards", test_ckpt_rejects_tensor_in_two_shards},
    {"test_ckpt_rejects_broken_shard", test_ckpt_rejects_broken_shard},
    {"test_ckpt_rejects_dir_without_weights", test_ckpt_rejects_dir_without_weights},
};

/* Removes the temporary tree (paths are ours, made by mkdtemp). */
static void remove_tmp(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0) fprintf(stderr, "test_safetensors: could not remove %s\n", tmp_root);
}

int main(int argc, char **argv) {
    if (!mkdtemp(tmp_root)) {
        perror("test_safetensors: mkdtemp");
        return 1;
    }
    const int rc = DSV3_RUN_BOOL_TESTS(tests, argc, argv);
    remove_tmp();
    return rc;
}
