/* dtype.h — storage dtypes of checkpoint tensors and their exact conversion to float32.
 *
 * Owns the dtype names of the safetensors format (docs/ARCHITECTURE.md, "safetensors") and the scalar
 * decoders BF16/F16/F8_E4M3 -> F32 (all exact in float32). No state; thread-safe.
 */
#ifndef DSV3_DTYPE_H
#define DSV3_DTYPE_H

#include <stdint.h>
#include <string.h>

typedef enum {
    DSV3_DT_BOOL,
    DSV3_DT_U8,
    DSV3_DT_I8,
    DSV3_DT_I16,
    DSV3_DT_U16,
    DSV3_DT_I32,
    DSV3_DT_U32,
    DSV3_DT_I64,
    DSV3_DT_U64,
    DSV3_DT_F16,
    DSV3_DT_BF16,
    DSV3_DT_F32,
    DSV3_DT_F64,
    DSV3_DT_F8_E4M3, /* e4m3fn: no infinities, 0x7F/0xFF are NaN, max 448 */
    DSV3_DT_F8_E5M2,
    DSV3_DT_COUNT
} dsv3_dtype;

/* The safetensors name of a dtype ("BF16"); "?" for an invalid value. */
const char *dsv3_dtype_name(dsv3_dtype dt);
/* Bytes per element; 0 for an invalid value. */
size_t dsv3_dtype_size(dsv3_dtype dt);
/* Looks a safetensors dtype name up; returns 0 and sets *out, or -1 if the name is unknown. */
int dsv3_dtype_parse(const char *name, dsv3_dtype *out);

/* BF16 -> F32: the 16 bits become the high half of the float (exact). */
static inline float dsv3_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* F32 -> BF16 with round-to-nearest-even on the dropped 16 bits; NaN stays NaN. */
static inline uint16_t dsv3_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* IEEE half -> F32 (exact, subnormals included). */
float dsv3_f16_to_f32(uint16_t h);

/* The 256-entry E4M3FN decode table (docs/ARCHITECTURE.md, "FP8 E4M3"), exact in float32. */
extern const float dsv3_e4m3_table[256];

#endif
