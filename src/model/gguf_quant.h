/* gguf_quant.h: ggml tensor types (the `type` of a GGUF tensor): their names,
 * block layouts and sizes, and dequantisation to F32.
 *
 * A type stores `block` elements in `bytes` bytes; a row (ne[0] elements) is a
 * whole number of blocks. ggml_dequantize reproduces gguf-py's numpy
 * dequantize bit for bit (transformers loads GGUF through it): scales come
 * from F16 exactly, and every value is computed with the same F32 operations
 * in the same order (e.g. Q4_1: d * q + m; Q4_K: (d * sc) * q - (dmin * m)),
 * never fused (this file is compiled with -ffp-contract=off). Dequantisable:
 * F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K; the other
 * known types are recognised (so a reader can validate sizes and name them)
 * but not converted. */
#ifndef OWLORE_MODEL_GGUF_QUANT_H
#define OWLORE_MODEL_GGUF_QUANT_H

#include "core/error.h"

#include <stdint.h>

typedef enum {
    GGML_F32 = 0,
    GGML_F16 = 1,
    GGML_Q4_0 = 2,
    GGML_Q4_1 = 3,
    GGML_Q5_0 = 6,
    GGML_Q5_1 = 7,
    GGML_Q8_0 = 8,
    GGML_Q4_K = 12,
    GGML_Q5_K = 13,
    GGML_Q6_K = 14,
    GGML_BF16 = 30,
} GgmlType;

typedef struct GgmlTypeInfo {
    const char *name; /* "Q4_1" */
    int block;        /* elements per block */
    int bytes;        /* bytes per block */
    int dequant;      /* 1 when ggml_dequantize converts it */
} GgmlTypeInfo;

/* The type's description, or NULL for a type number ggml does not define. */
const GgmlTypeInfo *ggml_type_info(uint32_t type);
/* "Q4_1", or "type 99" style text in buf for unknown numbers. */
const char *ggml_type_name(uint32_t type, char *buf, int bufsize);

/* Dequantises n elements (a multiple of the block size) of `type` from src
 * (n / block * bytes bytes, any alignment) into dst. `what` names the tensor
 * in messages. Fails for a type that is not dequantisable or a bad n. */
int ggml_dequantize(uint32_t type, const void *src, float *dst, int64_t n, const char *what, OwError *err);

#endif
