/* dtype.c: see dtype.h. */
#include "core/dtype.h"

#include "core/error.h"

#include <math.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;
    int is_float;
} k_dtypes[OW_DTYPE_COUNT] = {
    [OW_F32] = {"F32", 4, 1}, [OW_BF16] = {"BF16", 2, 1}, [OW_F16] = {"F16", 2, 1}, [OW_I32] = {"I32", 4, 0},
    [OW_I64] = {"I64", 8, 0}, [OW_U8] = {"U8", 1, 0},     [OW_U16] = {"U16", 2, 0}, [OW_F64] = {"F64", 8, 0},
};

size_t dtype_size(DType t) {
    OW_CHECK(t >= 0 && t < OW_DTYPE_COUNT);
    return k_dtypes[t].size;
}

const char *dtype_name(DType t) {
    OW_CHECK(t >= 0 && t < OW_DTYPE_COUNT);
    return k_dtypes[t].name;
}

int dtype_from_name(const char *name, DType *out) {
    for (int i = 0; i < OW_DTYPE_COUNT; i++) {
        if (strcmp(name, k_dtypes[i].name) == 0) {
            *out = (DType)i;
            return 0;
        }
    }
    return -1;
}

int dtype_is_float(DType t) { return t >= 0 && t < OW_DTYPE_COUNT && k_dtypes[t].is_float; }

int64_t dtype_first_nonfinite(const void *data, DType t, size_t n) {
    const unsigned char *b = data;
    if (t == OW_F32) {
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, b + 4 * i, 4);
            if ((u & 0x7f800000u) == 0x7f800000u) return (int64_t)i;
        }
        return -1;
    }
    OW_CHECK(t == OW_BF16 || t == OW_F16);
    uint16_t exp = t == OW_BF16 ? 0x7f80u : 0x7c00u; /* all exponent bits set: Inf or NaN */
    for (size_t i = 0; i < n; i++) {
        uint16_t u;
        memcpy(&u, b + 2 * i, 2);
        if ((u & exp) == exp) return (int64_t)i;
    }
    return -1;
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: value = man * 2^-24 */
            float f = ldexpf((float)man, -24);
            memcpy(&u, &f, 4);
            u |= sign;
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 112u) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (absu >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* overflow (rounds to inf) */
    if (absu < 0x38800000u) {                                   /* subnormal or zero in f16 */
        float a;
        memcpy(&a, &absu, 4);
        float scaled = a * 16777216.0f; /* 2^24: units of the smallest subnormal */
        uint32_t m = (uint32_t)lrintf(scaled);
        return (uint16_t)(sign | m);
    }
    uint32_t exp = ((absu >> 23) - 112u) << 10;
    uint32_t man = (absu >> 13) & 0x3ffu;
    uint32_t rest = absu & 0x1fffu;
    uint32_t h = exp | man;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

void dtype_convert(void *dst, DType dst_t, const void *src, DType src_t, size_t n) {
    OW_CHECK(dtype_is_float(dst_t) && dtype_is_float(src_t));
    if (dst_t == src_t) {
        memmove(dst, src, n * dtype_size(dst_t));
        return;
    }
    const uint16_t *s16 = src;
    const float *s32 = src;
    uint16_t *d16 = dst;
    float *d32 = dst;
    for (size_t i = 0; i < n; i++) {
        float v = src_t == OW_F32 ? s32[i] : src_t == OW_BF16 ? bf16_to_f32(s16[i]) : f16_to_f32(s16[i]);
        if (dst_t == OW_F32)
            d32[i] = v;
        else if (dst_t == OW_BF16)
            d16[i] = f32_to_bf16(v);
        else
            d16[i] = f32_to_f16(v);
    }
}
