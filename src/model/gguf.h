/* gguf.h: a strict reader of GGUF files (llama.cpp's model format), versions
 * 2 and 3 (little-endian; the two differ only in that v3 may be big-endian,
 * which is refused with a hint).
 *
 * Layout: magic "GGUF", u32 version, u64 tensor count, u64 key-value count,
 * the key-values (string key, u32 value type, value), the tensor infos
 * (string name, u32 n_dims, u64 ne[n_dims] with ne[0] the fastest-varying
 * dimension, u32 ggml type, u64 offset), padding to general.alignment
 * (default 32), then the data section; a tensor's bytes start at data +
 * offset. Strings are a u64 length and that many bytes (no NUL).
 *
 * gguf_open maps the file and validates everything before it returns: the
 * counts against the file size, every string and array inside the file,
 * known value and array element types (no nested arrays), keys non-empty,
 * without NUL bytes and unique, general.alignment a u32 power of two,
 * tensor names unique and non-empty, n_dims 1..4, every dimension positive
 * with no overflow of the element or byte count, known ggml types, rows
 * (ne[0]) a whole number of blocks, offsets aligned and inside the file, no
 * two tensors overlapping. Every error names the file, the field (key,
 * tensor or byte offset) and a hint; nothing is returned on failure.
 *
 * Values stay in the mapping: strings are views (GgufStr, not
 * NUL-terminated) valid until gguf_close. */
#ifndef OWLORE_MODEL_GGUF_H
#define OWLORE_MODEL_GGUF_H

#include "core/error.h"
#include "core/fileio.h"

#include <stddef.h>
#include <stdint.h>

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

typedef enum {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} GgufType;

typedef struct GgufStr {
    const char *s; /* into the mapping, not NUL-terminated */
    uint64_t len;
} GgufStr;

typedef struct GgufKv {
    char *key;
    GgufType type;
    GgufType elem_type;        /* arrays: the element type */
    uint64_t count;            /* arrays: the element count; 1 otherwise */
    const unsigned char *data; /* the value (arrays: the first element) */
    uint64_t offset;           /* byte offset of the value in the file */
} GgufKv;

typedef struct GgufTensor {
    char *name;
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] fastest; unused entries 1 */
    uint32_t type;             /* a ggml type (gguf_quant.h) */
    uint64_t offset;           /* from the start of the data section */
    const void *data;
    size_t nbytes;
    int64_t numel;
} GgufTensor;

typedef struct Gguf {
    MappedFile file; /* file.path names the source in messages */
    int borrowed;    /* gguf_open_memory: file.data is the caller's */
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset; /* of the data section in the file */
    int nkv;
    GgufKv *kv;
    int ntensors;
    GgufTensor *tensors; /* in file order */
} Gguf;

int gguf_open(const char *path, Gguf *g, OwError *err);
/* The same checks on bytes in memory (kept by the caller until gguf_close);
 * `name` stands for the file in messages. */
int gguf_open_memory(const void *data, size_t size, const char *name, Gguf *g, OwError *err);
void gguf_close(Gguf *g);

const char *gguf_type_name(GgufType t);
/* NULL when absent. */
const GgufKv *gguf_find_kv(const Gguf *g, const char *key);
const GgufTensor *gguf_find_tensor(const Gguf *g, const char *name);

/* Typed getters: -1 with a message naming the key and the expected and found
 * types when the key is absent or of another type. */
int gguf_get_str(const Gguf *g, const char *key, GgufStr *out, OwError *err);
/* A NUL-terminated heap copy (the value must hold no NUL byte). */
int gguf_get_strdup(const Gguf *g, const char *key, char **out, OwError *err);
int gguf_get_u32(const Gguf *g, const char *key, uint32_t *out, OwError *err);
int gguf_get_i32(const Gguf *g, const char *key, int32_t *out, OwError *err);
int gguf_get_u64(const Gguf *g, const char *key, uint64_t *out, OwError *err);
int gguf_get_f32(const Gguf *g, const char *key, float *out, OwError *err);
int gguf_get_bool(const Gguf *g, const char *key, int *out, OwError *err);
/* Any integer type (u8..i64), checked to lie in [0, INT64_MAX]. */
int gguf_get_count(const Gguf *g, const char *key, int64_t *out, OwError *err);
/* Any float type (f32 or f64). */
int gguf_get_float(const Gguf *g, const char *key, double *out, OwError *err);
/* Arrays: a heap array of *n elements (free it), of the stated element type. */
int gguf_get_str_array(const Gguf *g, const char *key, GgufStr **out, uint64_t *n, OwError *err);
int gguf_get_f32_array(const Gguf *g, const char *key, float **out, uint64_t *n, OwError *err);
int gguf_get_i32_array(const Gguf *g, const char *key, int32_t **out, uint64_t *n, OwError *err);

#endif
