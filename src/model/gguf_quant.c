/* gguf_quant.c: see gguf_quant.h. Block layouts follow ggml (ggml-common.h);
 * the value formulas follow gguf-py's quants.py, operation for operation. */
#include "model/gguf_quant.h"

#include "core/dtype.h"

#include <stdio.h>
#include <string.h>

#define QK_K 256

typedef struct TypeRow {
    uint32_t type;
    GgmlTypeInfo info;
} TypeRow;

/* Every type ggml defines (gguf-py GGML_QUANT_SIZES), by number. */
static const TypeRow k_types[] = {
    {0, {"F32", 1, 4, 1}},
    {1, {"F16", 1, 2, 1}},
    {2, {"Q4_0", 32, 18, 1}},
    {3, {"Q4_1", 32, 20, 1}},
    {6, {"Q5_0", 32, 22, 1}},
    {7, {"Q5_1", 32, 24, 1}},
    {8, {"Q8_0", 32, 34, 1}},
    {9, {"Q8_1", 32, 40, 0}},
    {10, {"Q2_K", QK_K, 2 + 2 + QK_K / 16 + QK_K / 4, 0}},
    {11, {"Q3_K", QK_K, 2 + QK_K / 4 + QK_K / 8 + 12, 0}},
    {12, {"Q4_K", QK_K, 2 + 2 + QK_K / 2 + 12, 1}},
    {13, {"Q5_K", QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12, 1}},
    {14, {"Q6_K", QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16, 1}},
    {15, {"Q8_K", QK_K, 4 + QK_K + QK_K / 8, 0}},
    {16, {"IQ2_XXS", QK_K, 2 + QK_K / 4, 0}},
    {17, {"IQ2_XS", QK_K, 2 + QK_K / 4 + QK_K / 32, 0}},
    {18, {"IQ3_XXS", QK_K, 2 + QK_K / 4 + QK_K / 8, 0}},
    {19, {"IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16, 0}},
    {20, {"IQ4_NL", 32, 18, 0}},
    {21, {"IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4, 0}},
    {22, {"IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16, 0}},
    {23, {"IQ4_XS", QK_K, 2 + 2 + QK_K / 2 + QK_K / 64, 0}},
    {24, {"I8", 1, 1, 0}},
    {25, {"I16", 1, 2, 0}},
    {26, {"I32", 1, 4, 0}},
    {27, {"I64", 1, 8, 0}},
    {28, {"F64", 1, 8, 0}},
    {29, {"IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32, 0}},
    {30, {"BF16", 1, 2, 1}},
    {34, {"TQ1_0", QK_K, 2 + 4 * 13, 0}},
    {35, {"TQ2_0", QK_K, 2 + 64, 0}},
    {39, {"MXFP4", 32, 17, 0}},
};

const GgmlTypeInfo *ggml_type_info(uint32_t type) {
    for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++)
        if (k_types[i].type == type) return &k_types[i].info;
    return NULL;
}

const char *ggml_type_name(uint32_t type, char *buf, int bufsize) {
    const GgmlTypeInfo *t = ggml_type_info(type);
    if (t) return t->name;
    snprintf(buf, (size_t)bufsize, "type %u", type);
    return buf;
}

static float half_at(const uint8_t *p) { return f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

static uint32_t u32_at(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Q4_0 (d, qs[16]) and Q5_0 (d, qh[4], qs[16]): element j < 16 is the low
 * nibble of qs[j], j >= 16 the high nibble of qs[j - 16]; Q5 adds bit j of qh
 * as bit 4. value = d * (q - 8) or d * (q - 16). */
static void dq_q4_0(const uint8_t *b, float *y) {
    float d = half_at(b);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((b[2 + j] & 0x0F) - 8);
        y[j + 16] = d * (float)((b[2 + j] >> 4) - 8);
    }
}

static void dq_q5_0(const uint8_t *b, float *y) {
    float d = half_at(b);
    uint32_t qh = u32_at(b + 2);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 0x0F) | (int)((qh >> j) & 1u) << 4;
        int hi = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1u) << 4;
        y[j] = d * (float)(lo - 16);
        y[j + 16] = d * (float)(hi - 16);
    }
}

/* Q4_1 (d, m, qs[16]) and Q5_1 (d, m, qh[4], qs[16]): value = d * q + m. */
static void dq_q4_1(const uint8_t *b, float *y) {
    float d = half_at(b), m = half_at(b + 2);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)(b[4 + j] & 0x0F) + m;
        y[j + 16] = d * (float)(b[4 + j] >> 4) + m;
    }
}

static void dq_q5_1(const uint8_t *b, float *y) {
    float d = half_at(b), m = half_at(b + 2);
    uint32_t qh = u32_at(b + 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 0x0F) | (int)((qh >> j) & 1u) << 4;
        int hi = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1u) << 4;
        y[j] = d * (float)lo + m;
        y[j + 16] = d * (float)hi + m;
    }
}

/* Q8_0 (d, qs[32] int8): value = q * d. */
static void dq_q8_0(const uint8_t *b, float *y) {
    float d = half_at(b);
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

/* The 6-bit scales and mins of the 8 sub-blocks of Q4_K and Q5_K, packed in 12 bytes. */
static void k_scale_min(const uint8_t *s, uint8_t sc[8], uint8_t mn[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 0x3F;
        mn[j] = s[4 + j] & 0x3F;
        sc[4 + j] = (uint8_t)((s[8 + j] & 0x0F) | ((s[j] >> 2) & 0x30));
        mn[4 + j] = (uint8_t)((s[8 + j] >> 4) | ((s[4 + j] >> 2) & 0x30));
    }
}

/* Q4_K (d, dmin, scales[12], qs[128]) and Q5_K (the same with qh[32] before
 * qs): sub-block j (32 elements) takes the low (j even) or high nibble of
 * qs[32 * (j / 2) + l]; Q5_K adds bit j of qh[l] as bit 4.
 * value = (d * sc[j]) * q - (dmin * m[j]). */
static void dq_q45_k(const uint8_t *b, float *y, int five) {
    float d = half_at(b), dmin = half_at(b + 2);
    uint8_t sc[8], mn[8];
    k_scale_min(b + 4, sc, mn);
    const uint8_t *qh = b + 16, *qs = five ? b + 16 + QK_K / 8 : b + 16;
    for (int j = 0; j < 8; j++) {
        float ds = d * (float)sc[j], dm = dmin * (float)mn[j];
        const uint8_t *q = qs + 32 * (j / 2);
        for (int l = 0; l < 32; l++) {
            int v = (q[l] >> (4 * (j % 2))) & 0x0F;
            if (five) v |= ((qh[l] >> j) & 1) << 4;
            y[32 * j + l] = ds * (float)v - dm;
        }
    }
}

/* Q6_K (ql[128], qh[64], scales[16] int8, d): element i of the 256 is in half
 * h = i / 128; its low 4 bits are nibble (i % 128) / 64 of ql[64 h + i % 64],
 * its high 2 bits are pair (i % 128) / 32 of qh[32 h + i % 32].
 * value = (d * scales[i / 16]) * (q - 32). */
static void dq_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + QK_K / 2;
    const int8_t *sc = (const int8_t *)(b + QK_K / 2 + QK_K / 4);
    float d = half_at(b + QK_K / 2 + QK_K / 4 + QK_K / 16);
    for (int i = 0; i < QK_K; i++) {
        int h = i / 128, r = i % 128;
        int lo = (ql[64 * h + r % 64] >> (4 * (r / 64))) & 0x0F;
        int hi = (qh[32 * h + r % 32] >> (2 * (r / 32))) & 0x03;
        float ds = d * (float)sc[i / 16];
        y[i] = ds * (float)((lo | hi << 4) - 32);
    }
}

static void dq_scalar(uint32_t type, const uint8_t *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *p = src + i * (type == GGML_F32 ? 4 : 2);
        uint16_t h = (uint16_t)(p[0] | (p[1] << 8));
        if (type == GGML_F32)
            memcpy(&dst[i], p, 4);
        else
            dst[i] = type == GGML_F16 ? f16_to_f32(h) : bf16_to_f32(h);
    }
}

int ggml_dequantize(uint32_t type, const void *src, float *dst, int64_t n, const char *what, OwError *err) {
    char nb[32];
    const GgmlTypeInfo *t = ggml_type_info(type);
    if (!t || !t->dequant)
        return ow_fail(err,
                       "%s: ggml type %s cannot be converted (hint: owlore dequantises F32, F16, BF16, Q4_0, Q4_1, "
                       "Q5_0, Q5_1, Q8_0, Q4_K, Q5_K and Q6_K; requantise the model with one of those)",
                       what, ggml_type_name(type, nb, sizeof nb));
    if (n < 0 || n % t->block != 0)
        return ow_fail(err, "%s: %lld elements is not a whole number of %s blocks (%d elements each)", what,
                       (long long)n, t->name, t->block);
    const uint8_t *s = src;
    if (t->block == 1) {
        dq_scalar(type, s, dst, n);
        return 0;
    }
    int64_t nblocks = n / t->block;
    for (int64_t i = 0; i < nblocks; i++) {
        const uint8_t *b = s + i * t->bytes;
        float *y = dst + i * t->block;
        switch (type) {
        case GGML_Q4_0: dq_q4_0(b, y); break;
        case GGML_Q4_1: dq_q4_1(b, y); break;
        case GGML_Q5_0: dq_q5_0(b, y); break;
        case GGML_Q5_1: dq_q5_1(b, y); break;
        case GGML_Q8_0: dq_q8_0(b, y); break;
        case GGML_Q4_K: dq_q45_k(b, y, 0); break;
        case GGML_Q5_K: dq_q45_k(b, y, 1); break;
        case GGML_Q6_K: dq_q6_k(b, y); break;
        default: OW_CHECK(0);
        }
    }
    return 0;
}
