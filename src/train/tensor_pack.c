/* tensor_pack.c: see tensor_pack.h. */
#include "train/tensor_pack.h"

#include "core/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define PACK_MAGIC "OWTPACK1"
#define PACK_TRAILER "OWTPEND1"
#define PACK_MAX_DIR (64u << 20) /* a directory larger than 64 MiB is not ours */

/* Writes and hashes. */
static int put(PackWriter *w, const void *data, size_t n, OwError *err) {
    if (atomic_file_write(&w->af, data, n, err) != 0) return -1;
    xxh64_update(&w->hash, data, n);
    w->off += n;
    return 0;
}

int pack_writer_open(PackWriter *w, const char *path, int level, OwError *err) {
    memset(w, 0, sizeof *w);
    if (atomic_file_open(&w->af, path, err) != 0) return -1;
    ZSTD_CCtx *c = ZSTD_createCCtx();
    OW_CHECK(c != NULL);
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
    w->cctx = c;
    w->out_cap = ZSTD_CStreamOutSize();
    w->out = ow_xmalloc(w->out_cap);
    w->dir = cJSON_CreateArray();
    xxh64_init(&w->hash, 0);
    if (put(w, PACK_MAGIC, 8, err) != 0) {
        pack_writer_abort(w);
        return -1;
    }
    return 0;
}

static void writer_free(PackWriter *w) {
    ZSTD_freeCCtx(w->cctx);
    free(w->out);
    cJSON_Delete(w->dir);
    memset(w, 0, sizeof *w);
}

void pack_writer_abort(PackWriter *w) {
    atomic_file_abort(&w->af);
    writer_free(w);
}

int pack_writer_add(PackWriter *w, const char *name, DType dtype, int ndim, const int64_t *shape, const void *data,
                    OwError *err) {
    OW_CHECK(ndim >= 0 && ndim <= OW_MAX_DIMS);
    size_t nbytes = dtype_size(dtype);
    for (int d = 0; d < ndim; d++) nbytes *= (size_t)shape[d];
    ZSTD_CCtx *c = w->cctx;
    ZSTD_CCtx_reset(c, ZSTD_reset_session_only);
    ZSTD_CCtx_setPledgedSrcSize(c, nbytes);
    ZSTD_inBuffer in = {data, nbytes, 0};
    uint64_t start = w->off;
    for (;;) {
        ZSTD_outBuffer out = {w->out, w->out_cap, 0};
        size_t left = ZSTD_compressStream2(c, &out, &in, ZSTD_e_end);
        if (ZSTD_isError(left))
            return ow_fail(err, "%s: compressing %s: %s", w->af.path, name, ZSTD_getErrorName(left));
        if (put(w, w->out, out.pos, err) != 0) return -1;
        if (left == 0) break;
    }
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "name", name);
    cJSON_AddStringToObject(e, "dtype", dtype_name(dtype));
    cJSON *sh = cJSON_AddArrayToObject(e, "shape");
    for (int d = 0; d < ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)shape[d]));
    cJSON_AddNumberToObject(e, "offset", (double)start);
    cJSON_AddNumberToObject(e, "csize", (double)(w->off - start));
    cJSON_AddItemToArray(w->dir, e);
    return 0;
}

int pack_writer_commit(PackWriter *w, uint64_t *size, uint64_t *xxh64, OwError *err) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "tensors", w->dir);
    w->dir = NULL;
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    uint64_t n = strlen(text);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(n >> (8 * i));
    int rc = put(w, text, n, err);
    cJSON_free(text);
    if (rc == 0) rc = put(w, len8, 8, err);
    if (rc == 0) rc = put(w, PACK_TRAILER, 8, err);
    *size = w->off;
    *xxh64 = xxh64_final(&w->hash);
    if (rc == 0) {
        rc = atomic_file_commit(&w->af, err);
    } else {
        atomic_file_abort(&w->af);
    }
    writer_free(w);
    return rc;
}

/* ---- reading ---- */

static int exact_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > 9007199254740992.0 ||
        v->valuedouble != floor(v->valuedouble))
        return -1;
    *out = (uint64_t)v->valuedouble;
    return 0;
}

static int parse_entry(const cJSON *o, const char *path, int idx, uint64_t data_end, PackEntry *e, OwError *err) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    if (!cJSON_IsString(name) || !name->valuestring[0])
        return ow_fail(err, "%s: directory entry %d has no name (the file is corrupted)", path, idx);
    const char *nm = name->valuestring;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(o, "dtype");
    if (!cJSON_IsString(dt) || dtype_from_name(dt->valuestring, &e->dtype) != 0)
        return ow_fail(err, "%s: tensor %s: missing or unknown dtype", path, nm);
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(o, "shape");
    int nd = cJSON_IsArray(sh) ? cJSON_GetArraySize(sh) : -1;
    if (nd < 0 || nd > OW_MAX_DIMS) return ow_fail(err, "%s: tensor %s: bad shape", path, nm);
    e->ndim = nd;
    uint64_t nbytes = dtype_size(e->dtype);
    for (int d = 0; d < nd; d++) {
        uint64_t v;
        if (exact_u64(cJSON_GetArrayItem(sh, d), &v) != 0 || (v && nbytes > (UINT64_MAX >> 1) / v))
            return ow_fail(err, "%s: tensor %s: bad shape", path, nm);
        e->shape[d] = (int64_t)v;
        nbytes *= v;
    }
    if (exact_u64(cJSON_GetObjectItemCaseSensitive(o, "offset"), &e->offset) != 0 ||
        exact_u64(cJSON_GetObjectItemCaseSensitive(o, "csize"), &e->csize) != 0)
        return ow_fail(err, "%s: tensor %s: bad offset or csize", path, nm);
    if (e->offset < 8 || e->csize > data_end || e->offset > data_end - e->csize)
        return ow_fail(err,
                       "%s: tensor %s: frame [%llu, +%llu) lies outside the data (the file is truncated or "
                       "corrupted)",
                       path, nm, (unsigned long long)e->offset, (unsigned long long)e->csize);
    e->nbytes = (size_t)nbytes;
    e->name = ow_xstrdup(nm);
    return 0;
}

static int cmp_entry_off(const void *a, const void *b) {
    const PackEntry *x = a, *y = b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

int pack_open(const char *path, TensorPack *p, OwError *err) {
    memset(p, 0, sizeof *p);
    if (ow_map_file(path, &p->map, err) != 0) return -1;
    const unsigned char *b = p->map.data;
    size_t size = p->map.size;
    if (size < 24 || memcmp(b, PACK_MAGIC, 8) != 0) {
        pack_close(p);
        return ow_fail(err, "%s: not an owlore tensor pack (bad magic or too short: %zu bytes)", path, size);
    }
    if (memcmp(b + size - 8, PACK_TRAILER, 8) != 0) {
        pack_close(p);
        return ow_fail(err, "%s: the end marker is missing (the file is truncated)", path);
    }
    uint64_t dlen = 0;
    for (int i = 0; i < 8; i++) dlen |= (uint64_t)b[size - 16 + i] << (8 * i);
    if (dlen > PACK_MAX_DIR || dlen > size - 24) {
        pack_close(p);
        return ow_fail(err, "%s: directory length %llu does not fit the file (corrupted)", path,
                       (unsigned long long)dlen);
    }
    uint64_t data_end = size - 16 - dlen;
    cJSON *root = json_parse((const char *)b + data_end, (size_t)dlen, path, err);
    if (!root) {
        pack_close(p);
        return -1;
    }
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "tensors");
    int rc = 0;
    if (!cJSON_IsArray(arr)) rc = ow_fail(err, "%s: the directory has no \"tensors\" array (corrupted)", path);
    int n = rc == 0 ? cJSON_GetArraySize(arr) : 0;
    p->e = ow_xcalloc((size_t)(n > 0 ? n : 1), sizeof *p->e);
    for (int i = 0; rc == 0 && i < n; i++) {
        rc = parse_entry(cJSON_GetArrayItem(arr, i), path, i, data_end, &p->e[i], err);
        if (rc == 0) p->n++;
    }
    cJSON_Delete(root);
    if (rc == 0) {
        /* frames in file order without overlap; names unique */
        qsort(p->e, (size_t)p->n, sizeof *p->e, cmp_entry_off);
        for (int i = 1; rc == 0 && i < p->n; i++)
            if (p->e[i].offset < p->e[i - 1].offset + p->e[i - 1].csize)
                rc = ow_fail(err, "%s: tensors %s and %s overlap (corrupted)", path, p->e[i - 1].name, p->e[i].name);
        for (int i = 0; rc == 0 && i < p->n; i++)
            for (int j = i + 1; rc == 0 && j < p->n; j++)
                if (strcmp(p->e[i].name, p->e[j].name) == 0)
                    rc = ow_fail(err, "%s: tensor %s appears twice", path, p->e[i].name);
    }
    if (rc != 0) pack_close(p);
    return rc;
}

const PackEntry *pack_find(const TensorPack *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->e[i].name, name) == 0) return &p->e[i];
    return NULL;
}

int pack_read(const TensorPack *p, const PackEntry *e, void *dst, OwError *err) {
    const char *src = (const char *)p->map.data + e->offset;
    unsigned long long declared = ZSTD_getFrameContentSize(src, e->csize);
    if (declared == ZSTD_CONTENTSIZE_ERROR || declared == ZSTD_CONTENTSIZE_UNKNOWN || declared != e->nbytes)
        return ow_fail(err, "%s: tensor %s: the compressed frame is damaged or does not hold %zu bytes", p->map.path,
                       e->name, e->nbytes);
    size_t got = ZSTD_decompress(dst, e->nbytes, src, e->csize);
    if (ZSTD_isError(got))
        return ow_fail(err, "%s: tensor %s: decompression failed: %s (the file is corrupted)", p->map.path, e->name,
                       ZSTD_getErrorName(got));
    if (got != e->nbytes)
        return ow_fail(err, "%s: tensor %s: %zu bytes after decompression, expected %zu", p->map.path, e->name, got,
                       e->nbytes);
    return 0;
}

void pack_close(TensorPack *p) {
    for (int i = 0; i < p->n; i++) free(p->e[i].name);
    free(p->e);
    ow_unmap_file(&p->map);
    memset(p, 0, sizeof *p);
}
