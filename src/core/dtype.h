/* dtype.h: element types and the conversions between them.
 *
 * bf16 and f16 are stored as uint16_t bit patterns. Conversion from f32
 * rounds to nearest even; NaN stays NaN. These helpers are the one place the
 * host converts; the CUDA backend has its own device twins. */
#ifndef OWLORE_CORE_DTYPE_H
#define OWLORE_CORE_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum {
    OW_F32 = 0,
    OW_BF16 = 1,
    OW_F16 = 2,
    OW_I32 = 3,
    OW_I64 = 4,
    OW_U8 = 5,
    OW_U16 = 6,
    OW_F64 = 7,
    OW_DTYPE_COUNT
} DType;

size_t dtype_size(DType t);
/* Safetensors spelling: "F32", "BF16", "F16", "I32", "I64", "U8". */
const char *dtype_name(DType t);
/* Returns 0 and sets *out when the name is known, -1 otherwise. */
int dtype_from_name(const char *name, DType *out);
int dtype_is_float(DType t);

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

/* Index of the first NaN or Inf among n elements of a float dtype (F32, BF16,
 * F16; data may be unaligned), or -1 when all are finite. */
int64_t dtype_first_nonfinite(const void *data, DType t, size_t n);

/* Converts n elements between float dtypes (F32, BF16, F16). */
void dtype_convert(void *dst, DType dst_t, const void *src, DType src_t, size_t n);

#endif
