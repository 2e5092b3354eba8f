/* dtype.c — dtype names, sizes and exact decoders (see dtype.h). */
#include "kernels/dtype.h"

#include <math.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[DSV3_DT_COUNT] = {
    [DSV3_DT_BOOL] = {"BOOL", 1}, [DSV3_DT_U8] = {"U8", 1},     [DSV3_DT_I8] = {"I8", 1},
    [DSV3_DT_I16] = {"I16", 2},   [DSV3_DT_U16] = {"U16", 2},   [DSV3_DT_I32] = {"I32", 4},
    [DSV3_DT_U32] = {"U32", 4},   [DSV3_DT_I64] = {"I64", 8},   [DSV3_DT_U64] = {"U64", 8},
    [DSV3_DT_F16] = {"F16", 2},   [DSV3_DT_BF16] = {"BF16", 2}, [DSV3_DT_F32] = {"F32", 4},
    [DSV3_DT_F64] = {"F64", 8},   [DSV3_DT_F8_E4M3] = {"F8_E4M3", 1},
    [DSV3_DT_F8_E5M2] = {"F8_E5M2", 1},
};

const char *dsv3_dtype_name(dsv3_dtype dt) {
    return (unsigned)dt < DSV3_DT_COUNT ? dtypes[dt].name : "?";
}

size_t dsv3_dtype_size(dsv3_dtype dt) {
    return (unsigned)dt < DSV3_DT_COUNT ? dtypes[dt].size : 0;
}

int dsv3_dtype_parse(const char *name, dsv3_dtype *out) {
    for (int i = 0; i < DSV3_DT_COUNT; i++)
        if (strcmp(name, dtypes[i].name) == 0) {
            *out = (dsv3_dtype)i;
            return 0;
        }
    return -1;
}

float dsv3_f16_to_f32(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 0) v = ldexpf((float)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexpf((float)(m | 1024), e - 25);
    return s ? -v : v;
}

/* E4M3FN, bias 7: e in 1..15 -> 2^(e-7) (1 + m/8); e = 0 -> 2^-6 (m/8); 0x7F/0xFF NaN. The
 * table is written out so that decoding is a load, the same on every backend. */
#define E4(e, m) ((e) == 0 ? (m) / 512.0f : (float)(1 << (e)) / 128.0f * (1.0f + (m) / 8.0f))
#define ROW(e) E4(e, 0), E4(e, 1), E4(e, 2), E4(e, 3), E4(e, 4), E4(e, 5), E4(e, 6), E4(e, 7)
#define POS ROW(0), ROW(1), ROW(2), ROW(3), ROW(4), ROW(5), ROW(6), ROW(7), ROW(8), ROW(9), \
            ROW(10), ROW(11), ROW(12), ROW(13), ROW(14), E4(15, 0), E4(15, 1), E4(15, 2), \
            E4(15, 3), E4(15, 4), E4(15, 5), E4(15, 6)
#define NROW(e) -E4(e, 0), -E4(e, 1), -E4(e, 2), -E4(e, 3), -E4(e, 4), -E4(e, 5), -E4(e, 6), \
                -E4(e, 7)
#define NEG NROW(0), NROW(1), NROW(2), NROW(3), NROW(4), NROW(5), NROW(6), NROW(7), NROW(8), \
            NROW(9), NROW(10), NROW(11), NROW(12), NROW(13), NROW(14), -E4(15, 0), -E4(15, 1), \
            -E4(15, 2), -E4(15, 3), -E4(15, 4), -E4(15, 5), -E4(15, 6)
const float dsv3_e4m3_table[256] = {POS, NAN, NEG, -NAN};
