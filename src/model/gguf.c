/* gguf.c: see gguf.h (the header comment is the format and the checks).
 *
 * Owns: the parse of the header (key-values, tensor infos) with a bounds-
 * checked cursor, the validation of the data section, and the typed getters.
 * Invariants of an open Gguf: every view (strings, arrays, tensor data) lies
 * inside the mapping, keys and tensor names are unique NUL-free strings,
 * tensors do not overlap. */
#include "model/gguf.h"

#include "core/byte_span.h"
#include "core/name_index.h"
#include "model/gguf_quant.h"

#include <stdlib.h>
#include <string.h>

#define GGUF_MAX_NAME 65535u      /* keys and tensor names: the spec's u16 limit */
#define GGUF_MIN_KV_BYTES 14u     /* key length 8 + 1 byte + type 4 + 1 value byte */
#define GGUF_MIN_TENSOR_BYTES 33u /* name length 8 + 1 + n_dims 4 + ne 8 + type 4 + offset 8 */

typedef struct Cur {
    const unsigned char *base;
    uint64_t size, pos;
    const char *path;
} Cur;

static const char *k_type_names[GGUF_TYPE_COUNT] = {"uint8",  "int8",    "uint16", "int16",  "uint32",
                                                    "int32",  "float32", "bool",   "string", "array",
                                                    "uint64", "int64",   "float64"};
static const int k_type_sizes[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *gguf_type_name(GgufType t) { return t >= 0 && t < GGUF_TYPE_COUNT ? k_type_names[t] : "unknown"; }

static int need(Cur *c, uint64_t n, const char *what, OwError *err) {
    if (n <= c->size - c->pos) return 0;
    return ow_fail(err,
                   "%s: %s at byte %llu needs %llu bytes, but the file ends at byte %llu (hint: the file is truncated "
                   "or corrupted)",
                   c->path, what, (unsigned long long)c->pos, (unsigned long long)n, (unsigned long long)c->size);
}

static uint64_t le_at(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int read_u32(Cur *c, uint32_t *v, const char *what, OwError *err) {
    if (need(c, 4, what, err) != 0) return -1;
    *v = (uint32_t)le_at(c->base + c->pos, 4);
    c->pos += 4;
    return 0;
}

static int read_u64(Cur *c, uint64_t *v, const char *what, OwError *err) {
    if (need(c, 8, what, err) != 0) return -1;
    *v = le_at(c->base + c->pos, 8);
    c->pos += 8;
    return 0;
}

static int read_str(Cur *c, GgufStr *s, const char *what, OwError *err) {
    uint64_t at = c->pos, len;
    if (read_u64(c, &len, what, err) != 0) return -1;
    if (len > c->size - c->pos)
        return ow_fail(err,
                       "%s: %s at byte %llu has length %llu, past the end of the file (%llu bytes) (hint: the file is "
                       "truncated or corrupted)",
                       c->path, what, (unsigned long long)at, (unsigned long long)len, (unsigned long long)c->size);
    s->s = (const char *)c->base + c->pos;
    s->len = len;
    c->pos += len;
    return 0;
}

/* A key or tensor name: non-empty, no NUL byte, at most GGUF_MAX_NAME bytes; a heap copy. */
static int read_name(Cur *c, char **out, const char *what, OwError *err) {
    uint64_t at = c->pos;
    GgufStr s = {0};
    if (read_str(c, &s, what, err) != 0) return -1;
    if (s.len == 0 || s.len > GGUF_MAX_NAME || memchr(s.s, 0, (size_t)s.len))
        return ow_fail(err,
                       "%s: %s at byte %llu is %s (hint: names are 1 to %u bytes without NUL; the file is corrupted)",
                       c->path, what, (unsigned long long)at,
                       s.len == 0              ? "empty"
                       : s.len > GGUF_MAX_NAME ? "too long"
                                               : "holding a NUL byte",
                       GGUF_MAX_NAME);
    *out = ow_xmalloc((size_t)s.len + 1);
    memcpy(*out, s.s, (size_t)s.len);
    (*out)[s.len] = '\0';
    return 0;
}

static int check_value_type(Cur *c, uint32_t t, const char *key, const char *what, OwError *err) {
    if (t < GGUF_TYPE_COUNT) return 0;
    return ow_fail(err,
                   "%s: key \"%s\": unknown %s %u at byte %llu (hint: GGUF value types are 0 to 12; the file is "
                   "corrupted or from a newer format)",
                   c->path, key, what, t, (unsigned long long)(c->pos - 4));
}

/* The value of kv (type already read): scalars, strings, arrays, all checked inside the file. */
static int read_value(Cur *c, GgufKv *kv, OwError *err) {
    char what[96];
    snprintf(what, sizeof what, "the value of key \"%.40s\"", kv->key);
    kv->count = 1;
    if (kv->type == GGUF_TYPE_ARRAY) {
        uint32_t et;
        if (read_u32(c, &et, what, err) != 0 || check_value_type(c, et, kv->key, "array element type", err) != 0)
            return -1;
        if (et == GGUF_TYPE_ARRAY)
            return ow_fail(err, "%s: key \"%s\": nested arrays are not supported (byte %llu)", c->path, kv->key,
                           (unsigned long long)(c->pos - 4));
        kv->elem_type = (GgufType)et;
        if (read_u64(c, &kv->count, what, err) != 0) return -1;
    }
    kv->offset = c->pos;
    kv->data = c->base + c->pos;
    GgufType t = kv->type == GGUF_TYPE_ARRAY ? kv->elem_type : kv->type;
    if (t == GGUF_TYPE_STRING) {
        for (uint64_t i = 0; i < kv->count; i++) {
            GgufStr s = {0};
            if (read_str(c, &s, what, err) != 0) return -1;
        }
        return 0;
    }
    uint64_t esz = (uint64_t)k_type_sizes[t];
    if (kv->count > (c->size - c->pos) / esz)
        return ow_fail(err,
                       "%s: key \"%s\": %llu elements of %s at byte %llu run past the end of the file (hint: the file "
                       "is truncated or corrupted)",
                       c->path, kv->key, (unsigned long long)kv->count, gguf_type_name(t), (unsigned long long)c->pos);
    c->pos += kv->count * esz;
    return 0;
}

/* A name that appears twice among n (names[i] at stride bytes apart), or NULL. */
static const char *first_duplicate(const char *const *names, size_t stride, int n) {
    NameIdx *v = ow_xmalloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    for (int i = 0; i < n; i++) v[i] = (NameIdx){*(const char *const *)((const char *)names + (size_t)i * stride), i};
    const char *dup = name_idx_sort_find_duplicate(v, n);
    free(v);
    return dup;
}

static int parse_kvs(Cur *c, Gguf *g, uint64_t nkv, OwError *err) {
    g->kv = ow_xcalloc((size_t)(nkv > 0 ? nkv : 1), sizeof *g->kv);
    for (uint64_t i = 0; i < nkv; i++) {
        GgufKv *kv = &g->kv[i];
        char what[64];
        snprintf(what, sizeof what, "the key of key-value %llu", (unsigned long long)i);
        if (read_name(c, &kv->key, what, err) != 0) return -1;
        g->nkv++;
        uint32_t t;
        if (read_u32(c, &t, "a value type", err) != 0 || check_value_type(c, t, kv->key, "value type", err) != 0)
            return -1;
        kv->type = (GgufType)t;
        if (read_value(c, kv, err) != 0) return -1;
    }
    const char *dup = first_duplicate((const char *const *)&g->kv[0].key, sizeof *g->kv, g->nkv);
    if (dup) return ow_fail(err, "%s: key \"%s\" appears twice (hint: the file is corrupted)", c->path, dup);
    const GgufKv *al = gguf_find_kv(g, "general.alignment");
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    if (al) {
        uint32_t a = al->type == GGUF_TYPE_UINT32 ? (uint32_t)le_at(al->data, 4) : 0;
        if (a == 0 || (a & (a - 1)) != 0)
            return ow_fail(err, "%s: key \"general.alignment\" must be a uint32 power of two (found %s%s)", c->path,
                           gguf_type_name(al->type), al->type == GGUF_TYPE_UINT32 ? " that is not one" : "");
        g->alignment = a;
    }
    return 0;
}

/* One tensor info: name, dims, type, offset; sizes checked. */
static int parse_tensor_info(Cur *c, GgufTensor *t, uint64_t i, OwError *err) {
    char what[64];
    snprintf(what, sizeof what, "the name of tensor info %llu", (unsigned long long)i);
    if (read_name(c, &t->name, what, err) != 0) return -1;
    snprintf(what, sizeof what, "tensor \"%.40s\"", t->name);
    uint32_t nd, type;
    if (read_u32(c, &nd, what, err) != 0) return -1;
    if (nd < 1 || nd > GGUF_MAX_DIMS)
        return ow_fail(err, "%s: tensor \"%s\": %u dimensions at byte %llu (GGUF tensors have 1 to %d)", c->path,
                       t->name, nd, (unsigned long long)(c->pos - 4), GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    uint64_t numel = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t v;
        if (read_u64(c, &v, what, err) != 0) return -1;
        if (v == 0 || v > (uint64_t)INT64_MAX || numel > (uint64_t)INT64_MAX / v)
            return ow_fail(err, "%s: tensor \"%s\": dimension %u is %llu at byte %llu (%s)", c->path, t->name, d,
                           (unsigned long long)v, (unsigned long long)(c->pos - 8),
                           v == 0 ? "dimensions must be positive" : "the element count overflows");
        t->ne[d] = (int64_t)v;
        numel *= v;
    }
    if (read_u32(c, &type, what, err) != 0) return -1;
    char nb[32];
    const GgmlTypeInfo *ti = ggml_type_info(type);
    if (!ti)
        return ow_fail(err,
                       "%s: tensor \"%s\": unknown ggml type %u at byte %llu (hint: a newer ggml type, or the "
                       "file is corrupted)",
                       c->path, t->name, type, (unsigned long long)(c->pos - 4));
    if (t->ne[0] % ti->block != 0)
        return ow_fail(err,
                       "%s: tensor \"%s\": a row of %lld elements is not a whole number of %s blocks (%d elements "
                       "each) (hint: the file is corrupted)",
                       c->path, t->name, (long long)t->ne[0], ggml_type_name(type, nb, sizeof nb), ti->block);
    t->type = type;
    t->numel = (int64_t)numel;
    uint64_t blocks = numel / (uint64_t)ti->block;
    if (blocks > (c->size) / (uint64_t)ti->bytes)
        return ow_fail(err, "%s: tensor \"%s\": %llu elements of %s need more bytes than the file has (%llu)", c->path,
                       t->name, (unsigned long long)numel, ti->name, (unsigned long long)c->size);
    t->nbytes = (size_t)(blocks * (uint64_t)ti->bytes);
    return read_u64(c, &t->offset, what, err);
}

/* Offsets aligned and inside the data section, tensors disjoint; sets data pointers. */
static int place_tensors(Gguf *g, const char *path, OwError *err) {
    uint64_t data_size = g->file.size - g->data_offset;
    ByteSpan *sp = ow_xmalloc((size_t)(g->ntensors > 0 ? g->ntensors : 1) * sizeof *sp);
    int rc = 0;
    for (int i = 0; i < g->ntensors && rc == 0; i++) {
        GgufTensor *t = &g->tensors[i];
        if (t->offset % g->alignment != 0)
            rc = ow_fail(err,
                         "%s: tensor \"%s\": offset %llu is not a multiple of the alignment %u (hint: the file "
                         "is corrupted)",
                         path, t->name, (unsigned long long)t->offset, g->alignment);
        else if (t->offset > data_size || t->nbytes > data_size - t->offset)
            rc = ow_fail(err,
                         "%s: tensor \"%s\": bytes [%llu, %llu) of the data section reach past its end (%llu bytes) "
                         "(hint: the file is truncated)",
                         path, t->name, (unsigned long long)t->offset,
                         (unsigned long long)t->offset + (unsigned long long)t->nbytes, (unsigned long long)data_size);
        if (rc != 0) break;
        sp[i] = (ByteSpan){t->offset, t->offset + t->nbytes, i};
        t->data = (const unsigned char *)g->file.data + g->data_offset + t->offset;
    }
    if (rc == 0) byte_span_sort(sp, g->ntensors);
    for (int i = 1; i < g->ntensors && rc == 0; i++)
        if (sp[i].begin < sp[i - 1].end)
            rc = ow_fail(err,
                         "%s: tensor \"%s\" (bytes [%llu, %llu)) overlaps tensor \"%s\" (hint: the file is "
                         "corrupted)",
                         path, g->tensors[sp[i].tensor].name, (unsigned long long)sp[i].begin,
                         (unsigned long long)sp[i].end, g->tensors[sp[i - 1].tensor].name);
    free(sp);
    return rc;
}

static int parse_header(Cur *c, Gguf *g, OwError *err) {
    if (c->size < 4 || memcmp(c->base, "GGUF", 4) != 0)
        return ow_fail(err, "%s: no \"GGUF\" magic at byte 0 (hint: not a GGUF file)", c->path);
    c->pos = 4;
    uint64_t nt, nkv;
    if (read_u32(c, &g->version, "the version", err) != 0) return -1;
    if (g->version == 0x03000000u || g->version == 0x02000000u)
        return ow_fail(err, "%s: a big-endian GGUF file (hint: owlore reads little-endian GGUF files only)", c->path);
    if (g->version != 2 && g->version != 3)
        return ow_fail(err, "%s: GGUF version %u at byte 4 (hint: owlore reads versions 2 and 3)", c->path, g->version);
    if (read_u64(c, &nt, "the tensor count", err) != 0 || read_u64(c, &nkv, "the key-value count", err) != 0) return -1;
    if (nkv > c->size / GGUF_MIN_KV_BYTES || nkv > INT32_MAX)
        return ow_fail(err, "%s: key-value count %llu at byte 16 cannot fit in a %llu-byte file (hint: corrupted)",
                       c->path, (unsigned long long)nkv, (unsigned long long)c->size);
    if (nt > c->size / GGUF_MIN_TENSOR_BYTES || nt > INT32_MAX)
        return ow_fail(err, "%s: tensor count %llu at byte 8 cannot fit in a %llu-byte file (hint: corrupted)", c->path,
                       (unsigned long long)nt, (unsigned long long)c->size);
    if (parse_kvs(c, g, nkv, err) != 0) return -1;
    g->tensors = ow_xcalloc((size_t)(nt > 0 ? nt : 1), sizeof *g->tensors);
    for (uint64_t i = 0; i < nt; i++) {
        g->ntensors++;
        if (parse_tensor_info(c, &g->tensors[i], i, err) != 0) return -1;
    }
    const char *dup = first_duplicate((const char *const *)&g->tensors[0].name, sizeof *g->tensors, g->ntensors);
    if (dup) return ow_fail(err, "%s: tensor \"%s\" appears twice (hint: the file is corrupted)", c->path, dup);
    uint64_t pad = (g->alignment - c->pos % g->alignment) % g->alignment;
    if (pad > c->size - c->pos)
        return ow_fail(err, "%s: the data section (at byte %llu, aligned to %u) starts past the end of the file",
                       c->path, (unsigned long long)(c->pos + pad), g->alignment);
    g->data_offset = c->pos + pad;
    return place_tensors(g, c->path, err);
}

static int parse_or_close(Gguf *g, OwError *err) {
    Cur c = {g->file.data, g->file.size, 0, g->file.path};
    if (parse_header(&c, g, err) == 0) return 0;
    gguf_close(g);
    return -1;
}

int gguf_open(const char *path, Gguf *g, OwError *err) {
    memset(g, 0, sizeof *g);
    if (ow_map_file(path, &g->file, err) != 0) return -1;
    return parse_or_close(g, err);
}

int gguf_open_memory(const void *data, size_t size, const char *name, Gguf *g, OwError *err) {
    memset(g, 0, sizeof *g);
    g->borrowed = 1;
    g->file.data = (void *)(uintptr_t)data;
    g->file.size = size;
    g->file.path = ow_xstrdup(name);
    return parse_or_close(g, err);
}

void gguf_close(Gguf *g) {
    for (int i = 0; i < g->nkv; i++) free(g->kv[i].key);
    free(g->kv);
    for (int i = 0; i < g->ntensors; i++) free(g->tensors[i].name);
    free(g->tensors);
    if (g->borrowed)
        free(g->file.path);
    else
        ow_unmap_file(&g->file);
    memset(g, 0, sizeof *g);
}

const GgufKv *gguf_find_kv(const Gguf *g, const char *key) {
    for (int i = 0; i < g->nkv; i++)
        if (strcmp(g->kv[i].key, key) == 0) return &g->kv[i];
    return NULL;
}

const GgufTensor *gguf_find_tensor(const Gguf *g, const char *name) {
    for (int i = 0; i < g->ntensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

/* ---------------------------------------------------------------- getters */

static void type_text(GgufType t, GgufType et, char *buf, size_t n) {
    if (t == GGUF_TYPE_ARRAY)
        snprintf(buf, n, "an array of %s", gguf_type_name(et));
    else
        snprintf(buf, n, "%s", gguf_type_name(t));
}

/* The kv of `key` with type t (and element type et for arrays), or NULL with a message. */
static const GgufKv *typed_kv(const Gguf *g, const char *key, GgufType t, GgufType et, OwError *err) {
    const GgufKv *kv = gguf_find_kv(g, key);
    char want[48], found[48];
    type_text(t, et, want, sizeof want);
    if (!kv) {
        ow_fail(err, "%s: key \"%s\" (%s) is missing (hint: the file lacks metadata owlore needs)", g->file.path, key,
                want);
        return NULL;
    }
    if (kv->type != t || (t == GGUF_TYPE_ARRAY && kv->elem_type != et)) {
        type_text(kv->type, kv->elem_type, found, sizeof found);
        ow_fail(err, "%s: key \"%s\" is %s, expected %s", g->file.path, key, found, want);
        return NULL;
    }
    return kv;
}

static int get_scalar(const Gguf *g, const char *key, GgufType t, uint64_t *bits, OwError *err) {
    const GgufKv *kv = typed_kv(g, key, t, t, err);
    if (!kv) return -1;
    *bits = le_at(kv->data, k_type_sizes[t]);
    return 0;
}

int gguf_get_str(const Gguf *g, const char *key, GgufStr *out, OwError *err) {
    const GgufKv *kv = typed_kv(g, key, GGUF_TYPE_STRING, GGUF_TYPE_STRING, err);
    if (!kv) return -1;
    out->len = le_at(kv->data, 8);
    out->s = (const char *)kv->data + 8;
    return 0;
}

int gguf_get_strdup(const Gguf *g, const char *key, char **out, OwError *err) {
    GgufStr s;
    if (gguf_get_str(g, key, &s, err) != 0) return -1;
    if (memchr(s.s, 0, (size_t)s.len))
        return ow_fail(err, "%s: key \"%s\": the string holds a NUL byte", g->file.path, key);
    *out = ow_xmalloc((size_t)s.len + 1);
    memcpy(*out, s.s, (size_t)s.len);
    (*out)[s.len] = '\0';
    return 0;
}

int gguf_get_u32(const Gguf *g, const char *key, uint32_t *out, OwError *err) {
    uint64_t b;
    if (get_scalar(g, key, GGUF_TYPE_UINT32, &b, err) != 0) return -1;
    *out = (uint32_t)b;
    return 0;
}

int gguf_get_i32(const Gguf *g, const char *key, int32_t *out, OwError *err) {
    uint64_t b;
    if (get_scalar(g, key, GGUF_TYPE_INT32, &b, err) != 0) return -1;
    *out = (int32_t)(uint32_t)b;
    return 0;
}

int gguf_get_u64(const Gguf *g, const char *key, uint64_t *out, OwError *err) {
    return get_scalar(g, key, GGUF_TYPE_UINT64, out, err);
}

int gguf_get_f32(const Gguf *g, const char *key, float *out, OwError *err) {
    uint64_t b;
    if (get_scalar(g, key, GGUF_TYPE_FLOAT32, &b, err) != 0) return -1;
    uint32_t u = (uint32_t)b;
    memcpy(out, &u, 4);
    return 0;
}

int gguf_get_bool(const Gguf *g, const char *key, int *out, OwError *err) {
    uint64_t b;
    if (get_scalar(g, key, GGUF_TYPE_BOOL, &b, err) != 0) return -1;
    if (b > 1)
        return ow_fail(err, "%s: key \"%s\": bool value %llu is neither 0 nor 1", g->file.path, key,
                       (unsigned long long)b);
    *out = (int)b;
    return 0;
}

int gguf_get_count(const Gguf *g, const char *key, int64_t *out, OwError *err) {
    const GgufKv *kv = gguf_find_kv(g, key);
    if (!kv)
        return ow_fail(err, "%s: key \"%s\" (an integer) is missing (hint: the file lacks metadata owlore needs)",
                       g->file.path, key);
    GgufType t = kv->type;
    int is_signed = t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_INT64;
    int is_unsigned = t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_UINT64;
    if (!is_signed && !is_unsigned) {
        char found[48];
        type_text(t, kv->elem_type, found, sizeof found);
        return ow_fail(err, "%s: key \"%s\" is %s, expected an integer", g->file.path, key, found);
    }
    int sz = k_type_sizes[t];
    uint64_t b = le_at(kv->data, sz);
    int negative = is_signed && ((b >> (8 * sz - 1)) & 1u);
    if (negative || b > (uint64_t)INT64_MAX)
        return ow_fail(err, "%s: key \"%s\": %s is out of range (must be a non-negative count)", g->file.path, key,
                       negative ? "a negative value" : "the value");
    *out = (int64_t)b;
    return 0;
}

int gguf_get_float(const Gguf *g, const char *key, double *out, OwError *err) {
    const GgufKv *kv = gguf_find_kv(g, key);
    if (kv && kv->type == GGUF_TYPE_FLOAT64) {
        uint64_t b = le_at(kv->data, 8);
        memcpy(out, &b, 8);
        return 0;
    }
    float f;
    if (gguf_get_f32(g, key, &f, err) != 0) return -1;
    *out = (double)f;
    return 0;
}

int gguf_get_str_array(const Gguf *g, const char *key, GgufStr **out, uint64_t *n, OwError *err) {
    const GgufKv *kv = typed_kv(g, key, GGUF_TYPE_ARRAY, GGUF_TYPE_STRING, err);
    if (!kv) return -1;
    GgufStr *v = ow_xmalloc((size_t)(kv->count > 0 ? kv->count : 1) * sizeof *v);
    const unsigned char *p = kv->data; /* bounds were checked by gguf_open */
    for (uint64_t i = 0; i < kv->count; i++) {
        v[i].len = le_at(p, 8);
        v[i].s = (const char *)p + 8;
        p += 8 + v[i].len;
    }
    *out = v;
    *n = kv->count;
    return 0;
}

static int get_num_array(const Gguf *g, const char *key, GgufType et, void **out, uint64_t *n, OwError *err) {
    const GgufKv *kv = typed_kv(g, key, GGUF_TYPE_ARRAY, et, err);
    if (!kv) return -1;
    size_t bytes = (size_t)kv->count * (size_t)k_type_sizes[et];
    *out = ow_xmalloc(bytes > 0 ? bytes : 1);
    memcpy(*out, kv->data, bytes); /* the file and the host are little-endian */
    *n = kv->count;
    return 0;
}

int gguf_get_f32_array(const Gguf *g, const char *key, float **out, uint64_t *n, OwError *err) {
    return get_num_array(g, key, GGUF_TYPE_FLOAT32, (void **)out, n, err);
}

int gguf_get_i32_array(const Gguf *g, const char *key, int32_t **out, uint64_t *n, OwError *err) {
    return get_num_array(g, key, GGUF_TYPE_INT32, (void **)out, n, err);
}
