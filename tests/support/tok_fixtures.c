/* tok_fixtures.c: see tok_fixtures.h. */
#include "tok_fixtures.h"

#include "core/fileio.h"
#include "core/hash.h"
#include "core/json.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

void tf_load(const char *rel, TfFile *out) {
    memset(out, 0, sizeof *out);
    char *path = ts_fixture_path(rel);
    char *comp;
    size_t clen;
    OwError err;
    cr_assert(ow_read_file(path, &comp, &clen, &err) == 0, "%s", err.msg);
    unsigned long long n = ZSTD_getFrameContentSize(comp, clen);
    cr_assert(n != ZSTD_CONTENTSIZE_ERROR && n != ZSTD_CONTENTSIZE_UNKNOWN, "%s: not a zstd frame with a size", path);
    out->raw = malloc(n + 1);
    size_t got = ZSTD_decompress(out->raw, n, comp, clen);
    cr_assert(!ZSTD_isError(got) && got == n, "%s: zstd: %s", path,
              ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short");
    free(comp);
    const unsigned char *p = (const unsigned char *)out->raw, *end = p + n;
    cr_assert(n >= 12 && memcmp(p, "OWTKFIX1", 8) == 0, "%s: bad magic", path);
    size_t count = rd32(p + 8);
    p += 12;
    out->recs = calloc(count ? count : 1, sizeof *out->recs);
    for (size_t i = 0; i < count; i++) {
        TfRecord *r = &out->recs[i];
        cr_assert(p + 4 <= end, "%s: truncated", path);
        r->kind = p[0];
        r->flag = p[1];
        int width = p[2];
        p += 4;
        for (int k = 0; k < 2; k++) {
            size_t l = rd16(p);
            char *dst = k ? r->name : r->tok;
            size_t cap = k ? sizeof r->name : sizeof r->tok;
            cr_assert(l < cap && p + 2 + l <= end, "%s: bad name", path);
            memcpy(dst, p + 2, l);
            dst[l] = '\0';
            p += 2 + l;
        }
        r->text_len = rd32(p);
        r->text = (const char *)p + 4;
        p += 4 + r->text_len;
        r->digest = rd64(p);
        p += 8;
        r->n_ids = rd32(p);
        p += 4;
        cr_assert(p + r->n_ids * (size_t)width <= end, "%s: truncated ids", path);
        r->ids = malloc((r->n_ids ? r->n_ids : 1) * sizeof *r->ids);
        for (size_t j = 0; j < r->n_ids; j++)
            r->ids[j] = width == 2 ? (int32_t)rd16(p + 2 * j) : (int32_t)rd32(p + 4 * j);
        p += r->n_ids * (size_t)width;
        if (strncmp(r->name, "file:", 5) == 0) r->text = NULL;
        out->n++;
    }
    free(path);
}

void tf_free(TfFile *f) {
    for (size_t i = 0; i < f->n; i++) free(f->recs[i].ids);
    free(f->recs);
    free(f->raw);
    memset(f, 0, sizeof *f);
}

/* ---- registry ---- */

typedef struct TfEntry {
    char *name;
    char *path;
    Tokenizer *tok;
} TfEntry;

struct TfRegistry {
    cJSON *manifest;
    char *tmp;
    TfEntry *e;
    size_t n;
    const char **names;
};

TfRegistry *tf_registry_open(void) {
    TfRegistry *r = calloc(1, sizeof *r);
    char *p = ts_fixture_path("tokenizer/tokenizers.json");
    OwError err;
    r->manifest = json_parse_file(p, &err);
    cr_assert(r->manifest, "%s", err.msg);
    free(p);
    r->tmp = ts_tmpdir();
    const cJSON *bases = cJSON_GetObjectItem(r->manifest, "bases"),
                *vars = cJSON_GetObjectItem(r->manifest, "variants");
    size_t cap = (size_t)cJSON_GetArraySize(bases) + (size_t)cJSON_GetArraySize(vars);
    r->e = calloc(cap, sizeof *r->e);
    r->names = calloc(cap, sizeof *r->names);
    for (const cJSON *b = bases->child; b; b = b->next) r->e[r->n++].name = strdup(b->string);
    for (const cJSON *v = vars->child; v; v = v->next)
        r->e[r->n++].name = strdup(cJSON_GetObjectItem(v, "name")->valuestring);
    for (size_t i = 0; i < r->n; i++) r->names[i] = r->e[i].name;
    return r;
}

void tf_registry_close(TfRegistry *r) {
    for (size_t i = 0; i < r->n; i++) {
        free(r->e[i].name);
        free(r->e[i].path);
        tokenizer_free(r->e[i].tok);
    }
    free(r->e);
    free(r->names);
    cJSON_Delete(r->manifest);
    ts_rmtree(r->tmp);
    free(r->tmp);
    free(r);
}

size_t tf_names(TfRegistry *r, const char ***names) {
    *names = r->names;
    return r->n;
}

static TfEntry *entry(TfRegistry *r, const char *name) {
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->e[i].name, name) == 0) return &r->e[i];
    cr_assert_fail("tokenizer \"%s\" is not in tests/fixtures/tokenizer/tokenizers.json", name);
    return NULL;
}

static char *tmp_file(TfRegistry *r, const char *name) {
    char *dir = ow_path_join(r->tmp, name);
    OwError err;
    cr_assert(ow_mkdir_p(dir, &err) == 0, "%s", err.msg);
    char *p = ow_path_join(dir, "tokenizer.json");
    free(dir);
    return p;
}

/* obj[item's key] = copy of item (replaced or added) */
static void set_key(cJSON *obj, const cJSON *item) {
    cJSON *dup = cJSON_Duplicate(item, 1);
    if (cJSON_GetObjectItemCaseSensitive(obj, item->string))
        cr_assert(cJSON_ReplaceItemInObjectCaseSensitive(obj, item->string, dup));
    else
        cJSON_AddItemToObject(obj, item->string, dup);
}

const char *tf_path(TfRegistry *r, const char *name) {
    TfEntry *e = entry(r, name);
    if (e->path) return e->path;
    OwError err;
    const cJSON *base = cJSON_GetObjectItem(cJSON_GetObjectItem(r->manifest, "bases"), name);
    if (base) {
        const cJSON *file = cJSON_GetObjectItem(base, "file");
        if (file) {
            e->path = ts_shared_path(file->valuestring);
        } else {
            char *tmpl = ts_fixture_path(cJSON_GetObjectItem(base, "template")->valuestring);
            char *voc = ts_shared_path(cJSON_GetObjectItem(base, "vocab")->valuestring);
            char *mer = ts_shared_path(cJSON_GetObjectItem(base, "merges")->valuestring);
            e->path = tmp_file(r, name);
            cr_assert(tokenizer_build_json(tmpl, voc, mer, e->path, &err) == 0, "%s", err.msg);
            free(tmpl);
            free(voc);
            free(mer);
        }
        return e->path;
    }
    const cJSON *v = NULL;
    for (const cJSON *it = cJSON_GetObjectItem(r->manifest, "variants")->child; it; it = it->next)
        if (strcmp(cJSON_GetObjectItem(it, "name")->valuestring, name) == 0) v = it;
    const char *base_path = tf_path(r, cJSON_GetObjectItem(v, "base")->valuestring);
    cJSON *root = json_parse_file(base_path, &err);
    cr_assert(root, "%s", err.msg);
    const cJSON *rep = cJSON_GetObjectItem(v, "replace");
    for (const cJSON *it = rep ? rep->child : NULL; it; it = it->next) set_key(root, it);
    const cJSON *mod = cJSON_GetObjectItem(v, "model");
    cJSON *model = cJSON_GetObjectItem(root, "model");
    for (const cJSON *it = mod ? mod->child : NULL; it; it = it->next) set_key(model, it);
    const cJSON *drop = cJSON_GetObjectItem(v, "drop_vocab");
    for (const cJSON *it = drop ? drop->child : NULL; it; it = it->next)
        cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItem(model, "vocab"), it->valuestring);
    char *text = cJSON_PrintUnformatted(root);
    e->path = tmp_file(r, name);
    ts_write_file(e->path, text, strlen(text));
    cJSON_free(text);
    cJSON_Delete(root);
    return e->path;
}

Tokenizer *tf_get(TfRegistry *r, const char *name) {
    TfEntry *e = entry(r, name);
    if (e->tok) return e->tok;
    const char *p = tf_path(r, name);
    OwError err;
    cr_assert(tokenizer_load(p, &e->tok, &err) == 0, "loading %s: %s", name, err.msg);
    return e->tok;
}

static void window(const Tokenizer *tok, const int32_t *ids, size_t n, size_t at, char *out, size_t cap) {
    size_t a = at >= 4 ? at - 4 : 0, b = at + 5 < n ? at + 5 : n, o = 0;
    out[0] = '\0';
    for (size_t i = a; i < b && o + 64 < cap; i++) {
        const char *s = tokenizer_id_to_token(tok, ids[i]);
        o += (size_t)snprintf(out + o, cap - o, "%s%d(\"%.20s\")", i == at ? " >>" : " ", ids[i], s ? s : "?");
    }
}

long tf_compare(const Tokenizer *tok, const int32_t *got, size_t ng, const int32_t *exp, size_t ne, char *msg,
                size_t cap) {
    size_t i = 0;
    while (i < ng && i < ne && got[i] == exp[i]) i++;
    if (i == ng && i == ne) return -1;
    char a[1024], b[1024];
    window(tok, got, ng, i, a, sizeof a);
    window(tok, exp, ne, i, b, sizeof b);
    snprintf(msg, cap, "first difference at token %zu (owlore %zu tokens, HF %zu)\n  owlore:%s\n  HF:    %s", i, ng, ne,
             a, b);
    return (long)i;
}
