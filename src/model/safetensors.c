/* safetensors.c: see safetensors.h (the header comment is the format spec).
 *
 * Owns: header validation, the sharded index, alias resolution, and the
 * writers. Invariants of an open SafeTensors: every StTensor points inside
 * its file's mapping, tensors of one file tile that file's data section
 * exactly, names (tensor and alias) are unique, by_name is sorted. */
#include "model/safetensors.h"

#include "core/byte_span.h"
#include "core/json.h"
#include "core/name_index.h"
#include "core/utf8.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_HEADER 100000000ull      /* the HF library's own limit (100 MB) */
#define ST_MAX_EXACT 9007199254740992.0 /* 2^53: larger JSON numbers are not exact */
#define ST_INDEX_NAME "model.safetensors.index.json"
#define ST_SINGLE_NAME "model.safetensors"

/* ---------------------------------------------------------------- reading */

typedef struct OpenCtx {
    SafeTensors *st;
    int tcap, fcap, acap;
    cJSON **metas; /* __metadata__ of each file (owned), for aliases */
} OpenCtx;

int64_t st_tensor_numel(const StTensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static const char *file_path(const SafeTensors *st, int fi) { return st->files[fi].path; }

static int get_exact_u64(const cJSON *it, uint64_t *out) {
    if (!cJSON_IsNumber(it)) return -1;
    double v = it->valuedouble;
    if (!(v >= 0.0) || v > ST_MAX_EXACT || v != floor(v)) return -1;
    *out = (uint64_t)v;
    return 0;
}

static int add_file(OpenCtx *c, const char *path, OwError *err) {
    SafeTensors *st = c->st;
    if (st->nfiles == c->fcap) {
        c->fcap = c->fcap ? 2 * c->fcap : 4;
        st->files = ow_xrealloc(st->files, (size_t)c->fcap * sizeof *st->files);
        c->metas = ow_xrealloc(c->metas, (size_t)c->fcap * sizeof *c->metas);
    }
    if (ow_map_file(path, &st->files[st->nfiles], err) != 0) return -1;
    c->metas[st->nfiles] = NULL;
    st->nfiles++;
    return 0;
}

static StTensor *push_tensor(OpenCtx *c) {
    SafeTensors *st = c->st;
    if (st->ntensors == c->tcap) {
        c->tcap = c->tcap ? 2 * c->tcap : 64;
        st->tensors = ow_xrealloc(st->tensors, (size_t)c->tcap * sizeof *st->tensors);
    }
    StTensor *t = &st->tensors[st->ntensors++];
    memset(t, 0, sizeof *t);
    return t;
}

/* Parses one tensor entry; fills t (name set by the caller) and its span. */
static int parse_entry(const cJSON *e, const char *path, uint64_t data_size, StTensor *t, ByteSpan *sp, OwError *err) {
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return ow_fail(err, "%s: tensor \"%s\": header entry is not an object (hint: the file is corrupted)", path,
                       name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return ow_fail(err, "%s: tensor \"%s\": missing or non-string \"dtype\"", path, name);
    if (dtype_from_name(dt->valuestring, &t->dtype) != 0)
        return ow_fail(
            err, "%s: tensor \"%s\": unknown dtype \"%s\" (hint: owlore reads F32, F64, F16, BF16, I32, I64, U16, U8)",
            path, name, dt->valuestring);
    if (!cJSON_IsArray(shape))
        return ow_fail(err, "%s: tensor \"%s\": \"shape\" is missing or not an array of integers", path, name);
    int nd = cJSON_GetArraySize(shape);
    if (nd > OW_MAX_DIMS)
        return ow_fail(err, "%s: tensor \"%s\": %d dimensions, owlore handles at most %d", path, name, nd, OW_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    int overflow = 0, empty = 0;
    for (int i = 0; i < nd; i++) {
        uint64_t d;
        if (get_exact_u64(cJSON_GetArrayItem(shape, i), &d) != 0)
            return ow_fail(err, "%s: tensor \"%s\": shape entry %d is not a non-negative integer", path, name, i);
        t->shape[i] = (int64_t)d;
        if (d == 0) empty = 1;
        if (d != 0 && numel > UINT64_MAX / d) overflow = 1;
        if (!overflow) numel *= d;
    }
    size_t esz = dtype_size(t->dtype);
    if (empty) overflow = 0, numel = 0; /* a zero dimension makes any product empty */
    if (overflow || numel > UINT64_MAX / esz)
        return ow_fail(err, "%s: tensor \"%s\": shape is too large (element count overflows)", path, name);
    uint64_t nbytes = numel * esz;
    uint64_t b, en;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || get_exact_u64(cJSON_GetArrayItem(offs, 0), &b) != 0 ||
        get_exact_u64(cJSON_GetArrayItem(offs, 1), &en) != 0)
        return ow_fail(err, "%s: tensor \"%s\": \"data_offsets\" must be [begin, end] with non-negative integers", path,
                       name);
    if (b > en)
        return ow_fail(err, "%s: tensor \"%s\": data_offsets [%llu, %llu] has begin after end", path, name,
                       (unsigned long long)b, (unsigned long long)en);
    if (en > data_size)
        return ow_fail(
            err,
            "%s: tensor \"%s\": data_offsets [%llu, %llu] reach past the data section (%llu bytes) (hint: the "
            "file is truncated or corrupted)",
            path, name, (unsigned long long)b, (unsigned long long)en, (unsigned long long)data_size);
    if (en - b != nbytes)
        return ow_fail(
            err,
            "%s: tensor \"%s\": data_offsets [%llu, %llu] hold %llu bytes, but %s with %llu elements needs %llu "
            "(hint: dtype or shape do not match the data)",
            path, name, (unsigned long long)b, (unsigned long long)en, (unsigned long long)(en - b),
            dtype_name(t->dtype), (unsigned long long)numel, (unsigned long long)nbytes);
    t->nbytes = (size_t)nbytes;
    sp->begin = b;
    sp->end = en;
    return 0;
}

/* The spans of one file must tile [0, data_size) exactly. */
static int check_coverage(const SafeTensors *st, const char *path, ByteSpan *sp, int n, uint64_t data_size,
                          OwError *err) {
    byte_span_sort(sp, n);
    uint64_t pos = 0;
    for (int i = 0; i < n; i++) {
        const char *name = st->tensors[sp[i].tensor].name;
        if (sp[i].begin < pos)
            return ow_fail(
                err, "%s: tensor \"%s\": data_offsets [%llu, %llu] overlap tensor \"%s\" (hint: the file is corrupted)",
                path, name, (unsigned long long)sp[i].begin, (unsigned long long)sp[i].end,
                st->tensors[sp[i - 1].tensor].name);
        if (sp[i].begin > pos)
            return ow_fail(err,
                           "%s: tensor \"%s\": bytes [%llu, %llu) of the data section before it belong to no tensor",
                           path, name, (unsigned long long)pos, (unsigned long long)sp[i].begin);
        pos = sp[i].end;
    }
    if (pos != data_size)
        return ow_fail(err,
                       "%s: the data section has %llu bytes but the tensors cover %llu (hint: the file is corrupted)",
                       path, (unsigned long long)data_size, (unsigned long long)pos);
    return 0;
}

static int parse_metadata(OpenCtx *c, int fi, const cJSON *m, OwError *err) {
    const char *path = file_path(c->st, fi);
    if (c->metas[fi]) return ow_fail(err, "%s: \"__metadata__\" appears twice in the header", path);
    if (!cJSON_IsObject(m)) return ow_fail(err, "%s: \"__metadata__\" is not an object", path);
    const cJSON *e;
    cJSON_ArrayForEach(e, m) {
        if (!cJSON_IsString(e))
            return ow_fail(err, "%s: \"__metadata__\" entry \"%s\" is not a string (the format allows only strings)",
                           path, e->string);
    }
    c->metas[fi] = cJSON_Duplicate(m, 1);
    OW_CHECK(c->metas[fi] != NULL);
    return 0;
}

static int parse_file(OpenCtx *c, int fi, OwError *err) {
    SafeTensors *st = c->st;
    const MappedFile *mf = &st->files[fi];
    const char *path = mf->path;
    if (mf->size < 8)
        return ow_fail(
            err,
            "%s: file is %zu bytes, shorter than the 8-byte header length of a safetensors file (hint: the file is "
            "truncated)",
            path, mf->size);
    const unsigned char *p = mf->data;
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)p[i] << (8 * i);
    if (hlen > ST_MAX_HEADER)
        return ow_fail(err,
                       "%s: header length %llu is absurd (over 100 MB) (hint: not a safetensors file, or corrupted)",
                       path, (unsigned long long)hlen);
    if (hlen > mf->size - 8)
        return ow_fail(err,
                       "%s: header length %llu runs past the end of the file (%zu bytes) (hint: the file is truncated)",
                       path, (unsigned long long)hlen, mf->size);
    uint64_t data_size = (uint64_t)mf->size - 8 - hlen;
    const unsigned char *data = p + 8 + hlen;
    char where[4200];
    snprintf(where, sizeof where, "%s: header", path);
    cJSON *root = json_parse((const char *)p + 8, (size_t)hlen, where, err);
    if (!root) return -1;
    int rc = 0;
    if (!cJSON_IsObject(root))
        rc = ow_fail(err, "%s: the header is not a JSON object (hint: not a safetensors file)", path);
    int nspan = 0;
    ByteSpan *spans = NULL;
    if (rc == 0) {
        int n = cJSON_GetArraySize(root);
        spans = ow_xmalloc((size_t)(n > 0 ? n : 1) * sizeof *spans);
    }
    const cJSON *e = rc == 0 ? root->child : NULL;
    for (; rc == 0 && e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            rc = parse_metadata(c, fi, e, err);
            continue;
        }
        StTensor *t = push_tensor(c);
        t->name = ow_xstrdup(e->string);
        t->file = fi;
        ByteSpan *sp = &spans[nspan];
        rc = parse_entry(e, path, data_size, t, sp, err);
        if (rc != 0) break;
        t->data = data + sp->begin;
        sp->tensor = st->ntensors - 1;
        nspan++;
    }
    if (rc == 0) rc = check_coverage(st, path, spans, nspan, data_size, err);
    free(spans);
    cJSON_Delete(root);
    return rc;
}

static int build_name_index(SafeTensors *st, OwError *err) {
    int n = st->ntensors;
    NameIdx *v = ow_xmalloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    for (int i = 0; i < n; i++) v[i] = (NameIdx){st->tensors[i].name, i};
    qsort(v, (size_t)n, sizeof *v, name_idx_cmp);
    int rc = 0;
    for (int i = 1; i < n && rc == 0; i++) {
        if (strcmp(v[i - 1].name, v[i].name) != 0) continue;
        const StTensor *a = &st->tensors[v[i - 1].idx], *b = &st->tensors[v[i].idx];
        if (a->file == b->file)
            rc = ow_fail(err, "%s: tensor \"%s\" appears twice in the header", file_path(st, a->file), a->name);
        else
            rc = ow_fail(err, "tensor \"%s\" is stored in two shards: %s and %s (hint: the checkpoint is inconsistent)",
                         a->name, file_path(st, a->file), file_path(st, b->file));
    }
    st->by_name = ow_xmalloc((size_t)(n > 0 ? n : 1) * sizeof *st->by_name);
    for (int i = 0; i < n; i++) st->by_name[i] = v[i].idx;
    free(v);
    return rc;
}

static const StTensor *find_stored(const SafeTensors *st, const char *name) {
    int lo = 0, hi = st->ntensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const StTensor *t = &st->tensors[st->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

static int alias_index(const SafeTensors *st, const char *name) {
    for (int i = 0; i < st->naliases; i++)
        if (strcmp(st->alias_names[i], name) == 0) return i;
    return -1;
}

static void collect_aliases(OpenCtx *c) {
    SafeTensors *st = c->st;
    for (int fi = 0; fi < st->nfiles; fi++) {
        const cJSON *m = c->metas[fi];
        const cJSON *e;
        if (!m) continue;
        cJSON_ArrayForEach(e, m) {
            if (find_stored(st, e->string) || !find_stored(st, e->valuestring) || alias_index(st, e->string) >= 0)
                continue;
            if (st->naliases == c->acap) {
                c->acap = c->acap ? 2 * c->acap : 4;
                st->alias_names = ow_xrealloc(st->alias_names, (size_t)c->acap * sizeof *st->alias_names);
                st->alias_targets = ow_xrealloc(st->alias_targets, (size_t)c->acap * sizeof *st->alias_targets);
            }
            st->alias_names[st->naliases] = ow_xstrdup(e->string);
            st->alias_targets[st->naliases] = ow_xstrdup(e->valuestring);
            st->naliases++;
        }
    }
}

const StTensor *safetensors_find(const SafeTensors *st, const char *name) {
    const StTensor *t = find_stored(st, name);
    if (t) return t;
    int a = alias_index(st, name);
    return a >= 0 ? find_stored(st, st->alias_targets[a]) : NULL;
}

void safetensors_close(SafeTensors *st) {
    for (int i = 0; i < st->nfiles; i++) ow_unmap_file(&st->files[i]);
    free(st->files);
    for (int i = 0; i < st->ntensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    for (int i = 0; i < st->naliases; i++) {
        free(st->alias_names[i]);
        free(st->alias_targets[i]);
    }
    free(st->alias_names);
    free(st->alias_targets);
    cJSON_Delete(st->metadata);
    free(st->by_name);
    memset(st, 0, sizeof *st);
}

static int valid_shard_name(const char *s) {
    return s[0] && strchr(s, '/') == NULL && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Checks the index against the opened shards (shard i is file i). */
static int check_index(const SafeTensors *st, const char *index_path, NameIdx *wm, int nwm, char **shards,
                       OwError *err) {
    qsort(wm, (size_t)nwm, sizeof *wm, name_idx_cmp);
    for (int i = 1; i < nwm; i++)
        if (strcmp(wm[i - 1].name, wm[i].name) == 0)
            return ow_fail(err, "%s: tensor \"%s\" appears twice in weight_map", index_path, wm[i].name);
    for (int i = 0; i < nwm; i++) {
        const StTensor *t = find_stored(st, wm[i].name);
        int shard = wm[i].idx;
        if (!t) {
            int a = alias_index(st, wm[i].name);
            t = a >= 0 ? find_stored(st, st->alias_targets[a]) : NULL;
            if (t) continue; /* an alias (tied weight) listed in the index */
            return ow_fail(
                err,
                "%s: weight_map puts tensor \"%s\" in shard %s, which does not contain it (hint: the shard is "
                "incomplete or the index is stale)",
                index_path, wm[i].name, shards[shard]);
        }
        if (t->file != shard)
            return ow_fail(err, "%s: weight_map puts tensor \"%s\" in shard %s, but it is stored in %s", index_path,
                           wm[i].name, shards[shard], file_path(st, t->file));
    }
    for (int i = 0; i < st->ntensors; i++) {
        NameIdx key = {st->tensors[i].name, -1};
        int lo = 0, hi = nwm - 1, found = 0;
        while (lo <= hi && !found) {
            int mid = lo + (hi - lo) / 2;
            int c = strcmp(key.name, wm[mid].name);
            if (c == 0)
                found = 1;
            else if (c < 0)
                hi = mid - 1;
            else
                lo = mid + 1;
        }
        if (!found)
            return ow_fail(err, "%s: tensor \"%s\" of shard %s is not listed in weight_map (hint: the index is stale)",
                           index_path, st->tensors[i].name, file_path(st, st->tensors[i].file));
    }
    return 0;
}

static int open_index(OpenCtx *c, const char *index_path, OwError *err) {
    cJSON *root = json_parse_file(index_path, err);
    if (!root) return -1;
    int rc = 0;
    const cJSON *wmap = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(wmap))
        rc = ow_fail(err, "%s: missing object \"weight_map\" (hint: not a safetensors index)", index_path);
    int nwm = rc == 0 ? cJSON_GetArraySize(wmap) : 0;
    if (rc == 0 && nwm == 0) rc = ow_fail(err, "%s: \"weight_map\" is empty", index_path);
    NameIdx *wm = ow_xmalloc((size_t)(nwm > 0 ? nwm : 1) * sizeof *wm);
    char **shards = ow_xmalloc((size_t)(nwm > 0 ? nwm : 1) * sizeof *shards);
    int nshards = 0;
    const cJSON *e = rc == 0 ? wmap->child : NULL;
    for (; rc == 0 && e; e = e->next) {
        if (!cJSON_IsString(e) || !valid_shard_name(e->valuestring))
            rc = ow_fail(err, "%s: weight_map entry \"%s\" must be a shard file name in the same directory", index_path,
                         e->string);
        else
            shards[nshards++] = e->valuestring;
    }
    if (rc == 0) {
        qsort(shards, (size_t)nshards, sizeof *shards, cmp_str);
        int u = 0;
        for (int i = 0; i < nshards; i++)
            if (u == 0 || strcmp(shards[u - 1], shards[i]) != 0) shards[u++] = shards[i];
        nshards = u;
        int k = 0;
        for (e = wmap->child; e; e = e->next) {
            char **hit = bsearch(&e->valuestring, shards, (size_t)nshards, sizeof *shards, cmp_str);
            OW_CHECK(hit != NULL);
            wm[k++] = (NameIdx){e->string, (int)(hit - shards)};
        }
    }
    char *dir = ow_path_dirname(index_path);
    for (int i = 0; rc == 0 && i < nshards; i++) {
        char *sp = ow_path_join(dir, shards[i]);
        if (!ow_path_exists(sp))
            rc = ow_fail(err, "%s: names shard \"%s\", but %s does not exist (hint: the download is incomplete)",
                         index_path, shards[i], sp);
        else if (add_file(c, sp, err) != 0 || parse_file(c, c->st->nfiles - 1, err) != 0)
            rc = -1;
        free(sp);
    }
    free(dir);
    if (rc == 0) rc = build_name_index(c->st, err);
    if (rc == 0) {
        collect_aliases(c);
        rc = check_index(c->st, index_path, wm, nwm, shards, err);
    }
    free(wm);
    free(shards);
    cJSON_Delete(root);
    return rc;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int open_any(OpenCtx *c, const char *path, OwError *err) {
    if (ow_is_dir(path)) {
        char *idx = ow_path_join(path, ST_INDEX_NAME);
        char *single = ow_path_join(path, ST_SINGLE_NAME);
        int rc;
        if (ow_path_exists(idx))
            rc = open_index(c, idx, err);
        else if (ow_path_exists(single))
            rc = open_any(c, single, err);
        else
            rc = ow_fail(err, "%s: no %s or %s in this directory (hint: owlore reads safetensors weights only)", path,
                         ST_SINGLE_NAME, ST_INDEX_NAME);
        free(idx);
        free(single);
        return rc;
    }
    if (ends_with(path, ".json")) return open_index(c, path, err);
    if (add_file(c, path, err) != 0 || parse_file(c, 0, err) != 0) return -1;
    if (build_name_index(c->st, err) != 0) return -1;
    collect_aliases(c);
    return 0;
}

int safetensors_open(const char *path, SafeTensors *st, OwError *err) {
    memset(st, 0, sizeof *st);
    OpenCtx c = {.st = st};
    int rc = open_any(&c, path, err);
    if (rc == 0 && st->nfiles > 0) {
        st->metadata = c.metas[0];
        c.metas[0] = NULL;
    }
    for (int i = 0; i < st->nfiles; i++) cJSON_Delete(c.metas[i]);
    free(c.metas);
    if (rc != 0) safetensors_close(st);
    return rc;
}

StWriteTensor *safetensors_write_list(const SafeTensors *st) {
    StWriteTensor *w = ow_xcalloc((size_t)(st->ntensors > 0 ? st->ntensors : 1), sizeof *w);
    for (int i = 0; i < st->ntensors; i++) {
        const StTensor *t = &st->tensors[i];
        w[i].name = t->name;
        w[i].dtype = t->dtype;
        w[i].ndim = t->ndim;
        memcpy(w[i].shape, t->shape, sizeof w[i].shape);
        w[i].data = t->data;
    }
    return w;
}

/* ---------------------------------------------------------------- writing */

typedef struct StrBuf {
    char *s;
    size_t n, cap;
} StrBuf;

static void sb_put(StrBuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (b->n + n + 1 > cap) cap *= 2;
        b->s = ow_xrealloc(b->s, cap);
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_puts(StrBuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(StrBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(StrBuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    OW_CHECK(n >= 0 && (size_t)n < sizeof tmp);
    sb_put(b, tmp, (size_t)n);
}

/* A JSON string. ascii_only = 0: as serde_json writes it (the safetensors
 * header); 1: as Python's json.dumps with ensure_ascii (the index). */
static void sb_json_string(StrBuf *b, const char *str, int ascii_only) {
    sb_put(b, "\"", 1);
    const unsigned char *s = (const unsigned char *)str, *end = s + strlen(str);
    while (*s) {
        unsigned char ch = *s;
        const char *esc = NULL;
        switch (ch) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default: break;
        }
        if (esc) {
            sb_puts(b, esc);
            s++;
        } else if (ch < 0x20 || (ascii_only && ch == 0x7f)) {
            sb_printf(b, "\\u%04x", ch);
            s++;
        } else if (ch < 0x80 || !ascii_only) {
            sb_put(b, (const char *)s, 1);
            s++;
        } else {
            uint32_t cp;
            size_t n = utf8_decode_checked((const char *)s, (size_t)(end - s), &cp);
            if (n == 0) { /* not UTF-8: keep the byte */
                sb_put(b, (const char *)s, 1);
                s++;
                continue;
            }
            if (cp >= 0x10000) {
                cp -= 0x10000;
                sb_printf(b, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
            } else {
                sb_printf(b, "\\u%04x", cp);
            }
            s += n;
        }
    }
    sb_put(b, "\"", 1);
}

static int tensor_nbytes_checked(const StWriteTensor *t, const char *path, size_t *out, OwError *err) {
    if (!t->name || !t->name[0]) return ow_fail(err, "%s: a tensor to write has no name", path);
    if (strcmp(t->name, "__metadata__") == 0)
        return ow_fail(err, "%s: a tensor cannot be named \"__metadata__\"", path);
    if (t->dtype < 0 || t->dtype >= OW_DTYPE_COUNT)
        return ow_fail(err, "%s: tensor \"%s\": invalid dtype", path, t->name);
    if (t->ndim < 0 || t->ndim > OW_MAX_DIMS)
        return ow_fail(err, "%s: tensor \"%s\": %d dimensions (0 to %d allowed)", path, t->name, t->ndim, OW_MAX_DIMS);
    uint64_t n = dtype_size(t->dtype);
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0) return ow_fail(err, "%s: tensor \"%s\": negative dimension", path, t->name);
        uint64_t d = (uint64_t)t->shape[i];
        if (d && n > UINT64_MAX / d) return ow_fail(err, "%s: tensor \"%s\": shape too large", path, t->name);
        n *= d;
    }
    if (n > 0 && !t->data && !t->fetch) return ow_fail(err, "%s: tensor \"%s\": no data", path, t->name);
    *out = (size_t)n;
    return 0;
}

static int check_write_list(const char *path, const StWriteTensor *t, int n, const cJSON *metadata, size_t *sizes,
                            OwError *err) {
    for (int i = 0; i < n; i++)
        if (tensor_nbytes_checked(&t[i], path, &sizes[i], err) != 0) return -1;
    NameIdx *v = ow_xmalloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    for (int i = 0; i < n; i++) v[i] = (NameIdx){t[i].name, i};
    qsort(v, (size_t)n, sizeof *v, name_idx_cmp);
    int rc = 0;
    for (int i = 1; i < n && rc == 0; i++)
        if (strcmp(v[i - 1].name, v[i].name) == 0) rc = ow_fail(err, "%s: tensor \"%s\" given twice", path, v[i].name);
    free(v);
    if (rc == 0 && metadata) {
        if (!cJSON_IsObject(metadata)) return ow_fail(err, "%s: metadata must be an object of strings", path);
        const cJSON *e;
        cJSON_ArrayForEach(e, metadata) {
            if (!cJSON_IsString(e)) return ow_fail(err, "%s: metadata \"%s\" is not a string", path, e->string);
        }
    }
    return rc;
}

/* The padded header; offsets follow the given order. */
static void build_header(StrBuf *b, const StWriteTensor *t, const size_t *sizes, int n, const cJSON *metadata) {
    sb_put(b, "{", 1);
    int first = 1;
    if (metadata) {
        sb_puts(b, "\"__metadata__\":{");
        const cJSON *e;
        int f2 = 1;
        cJSON_ArrayForEach(e, metadata) {
            if (!f2) sb_put(b, ",", 1);
            f2 = 0;
            sb_json_string(b, e->string, 0);
            sb_put(b, ":", 1);
            sb_json_string(b, e->valuestring, 0);
        }
        sb_put(b, "}", 1);
        first = 0;
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        if (!first) sb_put(b, ",", 1);
        first = 0;
        sb_json_string(b, t[i].name, 0);
        sb_printf(b, ":{\"dtype\":\"%s\",\"shape\":[", dtype_name(t[i].dtype));
        for (int d = 0; d < t[i].ndim; d++) sb_printf(b, d ? ",%lld" : "%lld", (long long)t[i].shape[d]);
        sb_printf(b, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + sizes[i]));
        off += sizes[i];
    }
    sb_put(b, "}", 1);
    while (b->n % 8) sb_put(b, " ", 1);
}

/* The bytes of one tensor: from memory, or fetched into a temporary buffer. */
static int write_tensor_data(AtomicFile *af, const StWriteTensor *t, size_t nbytes, OwError *err) {
    if (t->data || nbytes == 0) return atomic_file_write(af, t->data, nbytes, err);
    void *buf = ow_try_malloc(nbytes, t->name, err);
    if (!buf) return -1;
    int rc = t->fetch(t->fetch_ctx, t->fetch_index, buf, nbytes, err);
    if (rc == 0) rc = atomic_file_write(af, buf, nbytes, err);
    free(buf);
    return rc;
}

int safetensors_write(const char *path, const StWriteTensor *tensors, int n, const cJSON *metadata, OwError *err) {
    OW_CHECK(n >= 0);
    size_t *sizes = ow_xmalloc((size_t)(n > 0 ? n : 1) * sizeof *sizes);
    if (check_write_list(path, tensors, n, metadata, sizes, err) != 0) {
        free(sizes);
        return -1;
    }
    StrBuf hb = {0};
    build_header(&hb, tensors, sizes, n, metadata);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hb.n >> (8 * i));
    AtomicFile af;
    int rc = atomic_file_open(&af, path, err);
    if (rc == 0) {
        rc = atomic_file_write(&af, len8, 8, err);
        if (rc == 0) rc = atomic_file_write(&af, hb.s, hb.n, err);
        for (int i = 0; rc == 0 && i < n; i++) rc = write_tensor_data(&af, &tensors[i], sizes[i], err);
        if (rc == 0)
            rc = atomic_file_commit(&af, err);
        else
            atomic_file_abort(&af);
    }
    free(hb.s);
    free(sizes);
    return rc;
}

/* Rank of a dtype in the HF library's Dtype enum (BOOL < U8 < ... < U16 < F16 <
 * BF16 < I32 < U32 < F32 < F64 < I64 < U64); it sorts descending. */
static int hf_dtype_rank(DType t) {
    switch (t) {
    case OW_U8: return 1;
    case OW_U16: return 2;
    case OW_F16: return 3;
    case OW_BF16: return 4;
    case OW_I32: return 5;
    case OW_F32: return 6;
    case OW_F64: return 7;
    case OW_I64: return 8;
    default: return 0;
    }
}

static int cmp_hf(const void *a, const void *b) {
    const StWriteTensor *x = a, *y = b;
    int rx = hf_dtype_rank(x->dtype), ry = hf_dtype_rank(y->dtype);
    if (rx != ry) return ry - rx;
    return strcmp(x->name, y->name);
}

void safetensors_sort_hf(StWriteTensor *tensors, int n) {
    if (n > 1) qsort(tensors, (size_t)n, sizeof *tensors, cmp_hf);
}

int safetensors_write_sharded(const char *dir, const StWriteTensor *tensors, int n, size_t shard_bytes,
                              const cJSON *metadata, OwError *err) {
    OW_CHECK(n >= 0);
    if (shard_bytes == 0) return ow_fail(err, "%s: the shard size must be positive", dir);
    size_t *sizes = ow_xmalloc((size_t)(n > 0 ? n : 1) * sizeof *sizes);
    if (check_write_list(dir, tensors, n, metadata, sizes, err) != 0) {
        free(sizes);
        return -1;
    }
    /* shard_of[i]: shard number of tensor i, assigned as huggingface_hub does:
     * the shard being filled gets its number when it is closed. */
    int *shard_of = ow_xmalloc((size_t)(n > 0 ? n : 1) * sizeof *shard_of);
    int *pending = ow_xmalloc((size_t)(n > 0 ? n : 1) * sizeof *pending);
    int nshards = 0, npending = 0;
    size_t cur_bytes = 0;
    uint64_t total_size = 0, total_params = 0;
    for (int i = 0; i <= n; i++) {
        int close = i == n ? npending > 0 : sizes[i] <= shard_bytes && cur_bytes + sizes[i] > shard_bytes;
        if (close) {
            for (int k = 0; k < npending; k++) shard_of[pending[k]] = nshards;
            nshards++;
            npending = 0;
            cur_bytes = 0;
        }
        if (i == n) break;
        total_size += sizes[i];
        total_params += sizes[i] / dtype_size(tensors[i].dtype);
        if (sizes[i] > shard_bytes) {
            shard_of[i] = nshards++;
        } else {
            pending[npending++] = i;
            cur_bytes += sizes[i];
        }
    }
    free(pending);
    int rc = 0;
    if (nshards <= 1) {
        char *p = ow_path_join(dir, ST_SINGLE_NAME);
        rc = safetensors_write(p, tensors, n, metadata, err);
        free(p);
        free(shard_of);
        free(sizes);
        return rc;
    }
    char name[64];
    StWriteTensor *sub = ow_xmalloc((size_t)n * sizeof *sub);
    char **names = ow_xcalloc((size_t)nshards, sizeof *names);
    for (int s = 0; s < nshards; s++) {
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, nshards);
        names[s] = ow_xstrdup(name);
    }
    for (int s = 0; rc == 0 && s < nshards; s++) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (shard_of[i] == s) sub[k++] = tensors[i];
        char *p = ow_path_join(dir, names[s]);
        rc = safetensors_write(p, sub, k, metadata, err);
        free(p);
    }
    if (rc == 0) {
        NameIdx *v = ow_xmalloc((size_t)n * sizeof *v);
        for (int i = 0; i < n; i++) v[i] = (NameIdx){tensors[i].name, shard_of[i]};
        qsort(v, (size_t)n, sizeof *v, name_idx_cmp);
        StrBuf b = {0};
        sb_printf(&b, "{\n  \"metadata\": {\n    \"total_parameters\": %llu,\n    \"total_size\": %llu\n  },\n",
                  (unsigned long long)total_params, (unsigned long long)total_size);
        sb_puts(&b, "  \"weight_map\": {");
        for (int i = 0; i < n; i++) {
            sb_puts(&b, i ? ",\n    " : "\n    ");
            sb_json_string(&b, v[i].name, 1);
            sb_puts(&b, ": ");
            sb_json_string(&b, names[v[i].idx], 1);
        }
        sb_puts(&b, "\n  }\n}\n");
        char *p = ow_path_join(dir, ST_INDEX_NAME);
        rc = ow_write_file_atomic(p, b.s, b.n, err);
        free(p);
        free(b.s);
        free(v);
    }
    for (int s = 0; s < nshards; s++) free(names[s]);
    free(names);
    free(sub);
    free(shard_of);
    free(sizes);
    return rc;
}
