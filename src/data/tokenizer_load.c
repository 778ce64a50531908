/* tokenizer_load.c: parses tokenizer.json into a Tokenizer, strictly.
 *
 * Every key of every object is checked: what owlore implements is read, a
 * key or value it does not implement is refused with "FILE: JSON.PATH: what
 * and why", never skipped. Keys that only affect offsets (trim_offsets) or
 * are derived (str_rep) are accepted. The checks tokenizers makes at load
 * time are made too (merges naming tokens outside the vocabulary, added
 * token ids that tokenizers would assign differently, ...).
 *
 * Order as tokenizers builds a tokenizer: model, normalizer, pre-tokenizer,
 * post-processor, decoder, then the added tokens (which need the model's
 * vocabulary for their ids and the normalizer for their normalized form). */
#include "core/json.h"
#include "data/tok_internal.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VOCAB_ID (1 << 24)

typedef struct LoadCtx {
    Tokenizer *tok;
    const char *file;
    OwError *err;
} LoadCtx;

static int lfail(LoadCtx *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int lfail(LoadCtx *c, const char *path, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ow_fail(c->err, "%s: %s: %s", c->file, path, msg);
}

static int check_keys(LoadCtx *c, const cJSON *obj, const char *path, const char *const *allowed) {
    for (const cJSON *it = obj->child; it; it = it->next) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(it->string, *a) == 0) ok = 1;
        if (!ok) {
            char v[200];
            json_show(it, v, sizeof v);
            return lfail(c, path, "unknown key \"%s\" (value %s): owlore does not implement it, so it refuses the file",
                         it->string, v);
        }
    }
    return 0;
}

static const cJSON *get(const cJSON *obj, const char *key) { return cJSON_GetObjectItemCaseSensitive(obj, key); }
static int is_null(const cJSON *v) { return !v || cJSON_IsNull(v); }

static int need_object(LoadCtx *c, const cJSON *v, const char *path) {
    if (!cJSON_IsObject(v)) {
        char s[200];
        json_show(v, s, sizeof s);
        return lfail(c, path, "expected an object, got %s", s);
    }
    return 0;
}

/* The getters of core/json.h, with "FILE: JSON.PATH" as where. */
static const char *where_at(const LoadCtx *c, const char *path, char *buf, size_t cap) {
    snprintf(buf, cap, "%s: %s", c->file, path);
    return buf;
}

/* An optional string that is missing or null sets *out to NULL. */
static int get_string(LoadCtx *c, const cJSON *obj, const char *key, const char *path, int required, const char **out) {
    char w[1024];
    if (!required) *out = NULL;
    return json_get_str(obj, key, required, out, where_at(c, path, w, sizeof w), c->err);
}

/* Optional boolean (null or missing keeps *out). */
static int get_bool(LoadCtx *c, const cJSON *obj, const char *key, const char *path, int required, int *out) {
    char w[1024];
    return json_get_bool(obj, key, required, out, where_at(c, path, w, sizeof w), c->err);
}

static int get_uint(LoadCtx *c, const cJSON *obj, const char *key, const char *path, int64_t max, int64_t *out) {
    char w[1024];
    return json_get_uint(obj, key, 1, max, out, where_at(c, path, w, sizeof w), c->err);
}

/* A string of exactly one character; its code point in *cp. */
static int get_char(LoadCtx *c, const cJSON *obj, const char *key, const char *path, uint32_t *cp, char *utf8,
                    size_t *len) {
    const char *s = NULL;
    if (get_string(c, obj, key, path, 1, &s) != 0) return -1;
    size_t n = strlen(s), l = 0;
    if (n == 0 || utf8_valid_prefix(s, n) != n || (utf8_decode(s, n, &l), l != n))
        return lfail(c, path, "key \"%s\" must be exactly one character, got \"%s\"", key, s);
    *cp = utf8_decode(s, n, &l);
    if (utf8) memcpy(utf8, s, n);
    if (len) *len = n;
    return 0;
}

static int get_type(LoadCtx *c, const cJSON *obj, const char *path, const char **type) {
    if (need_object(c, obj, path) != 0) return -1;
    const cJSON *t = get(obj, "type");
    if (!cJSON_IsString(t))
        return lfail(c, path,
                     "missing \"type\" (owlore reads only the tagged tokenizer.json format of tokenizers >= 0.11)");
    *type = t->valuestring;
    return 0;
}

/* {"String": s} or {"Regex": r}: *is_regex set accordingly. */
static int get_pattern(LoadCtx *c, const cJSON *obj, const char *path, const char **pat, int *is_regex) {
    char p[512];
    snprintf(p, sizeof p, "%s.pattern", path);
    const cJSON *v = get(obj, "pattern");
    if (!cJSON_IsObject(v) || !v->child || v->child->next || !cJSON_IsString(v->child) ||
        (strcmp(v->child->string, "String") != 0 && strcmp(v->child->string, "Regex") != 0)) {
        char s[200];
        json_show(v, s, sizeof s);
        return lfail(c, p, "expected {\"String\": ...} or {\"Regex\": ...}, got %s", s);
    }
    *is_regex = strcmp(v->child->string, "Regex") == 0;
    *pat = v->child->valuestring;
    return 0;
}

/* A Replace normalizer or decoder (`what`): a non-empty String pattern and its content. */
static int get_replace(LoadCtx *c, const cJSON *n, const char *path, const char *what, const char **pat,
                       const char **content) {
    static const char *const keys[] = {"type", "pattern", "content", NULL};
    int is_regex = 0;
    if (check_keys(c, n, path, keys) != 0 || get_pattern(c, n, path, pat, &is_regex) != 0 ||
        get_string(c, n, "content", path, 1, content) != 0)
        return -1;
    char p[512];
    snprintf(p, sizeof p, "%s.pattern", path);
    if (is_regex)
        return lfail(c, p, "Regex \"%s\": a Replace %s with a regex is not supported (only String patterns)", *pat,
                     what);
    if (!**pat) return lfail(c, p, "the String pattern is empty (it would match between every character)");
    return 0;
}

/* {"type": "Sequence", key: [...]}: every element parsed by `parse`, at PATH.key[i]. */
typedef int (*ParseFn)(LoadCtx *c, const cJSON *n, const char *path);
static int parse_sequence(LoadCtx *c, const cJSON *n, const char *path, const char *key, ParseFn parse) {
    const char *const keys[] = {"type", key, NULL};
    if (check_keys(c, n, path, keys) != 0) return -1;
    const cJSON *list = get(n, key);
    if (!cJSON_IsArray(list)) return lfail(c, path, "\"%s\" must be an array", key);
    char p[512];
    size_t i = 0;
    for (const cJSON *it = list->child; it; it = it->next, i++) {
        snprintf(p, sizeof p, "%s.%s[%zu]", path, key, i);
        if (parse(c, it, p) != 0) return -1;
    }
    return 0;
}

/* ---- model ---- */

static int parse_merge(LoadCtx *c, const cJSON *m, size_t i, const char **a, size_t *alen, const char **b, size_t *blen,
                       int *skip) {
    char p[128];
    snprintf(p, sizeof p, "model.merges[%zu]", i);
    *skip = 0;
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring;
        if (strncmp(s, "#version", 8) == 0) {
            *skip = 1;
            return 0;
        }
        const char *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' '))
            return lfail(c, p,
                         "\"%s\" is not two tokens separated by one space (tokenizers: \"Merges text file invalid at "
                         "line %zu\")",
                         s, i + 1);
        *a = s;
        *alen = (size_t)(sp - s);
        *b = sp + 1;
        *blen = strlen(sp + 1);
        return 0;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) && cJSON_IsString(m->child->next)) {
        *a = m->child->valuestring;
        *alen = strlen(*a);
        *b = m->child->next->valuestring;
        *blen = strlen(*b);
        return 0;
    }
    char s[200];
    json_show(m, s, sizeof s);
    return lfail(c, p, "a merge must be \"a b\" or [\"a\", \"b\"], got %s", s);
}

static int parse_model(LoadCtx *c, const cJSON *m) {
    const char *type = NULL;
    if (get_type(c, m, "model", &type) != 0) return -1;
    if (strcmp(type, "BPE") != 0)
        return lfail(c, "model.type", "\"%s\" is not supported: owlore implements the BPE model only", type);
    static const char *const keys[] = {"type",
                                       "dropout",
                                       "unk_token",
                                       "continuing_subword_prefix",
                                       "end_of_word_suffix",
                                       "fuse_unk",
                                       "byte_fallback",
                                       "ignore_merges",
                                       "vocab",
                                       "merges",
                                       NULL};
    if (check_keys(c, m, "model", keys) != 0) return -1;
    BpeModel *bpe = &c->tok->bpe;
    const cJSON *d = get(m, "dropout");
    if (!is_null(d) && !(cJSON_IsNumber(d) && d->valuedouble == 0.0)) {
        char s[64];
        json_show(d, s, sizeof s);
        return lfail(c, "model.dropout",
                     "%s: BPE dropout is not supported (owlore encodes deterministically; set it to null)", s);
    }
    static const char *const affix[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        const char *s = NULL;
        char p[64];
        snprintf(p, sizeof p, "model.%s", affix[k]);
        if (get_string(c, m, affix[k], "model", 0, &s) != 0) return -1;
        if (s && *s) return lfail(c, p, "\"%s\" is not supported (owlore implements BPE without subword affixes)", s);
    }
    if (get_bool(c, m, "fuse_unk", "model", 0, &bpe->fuse_unk) != 0 ||
        get_bool(c, m, "byte_fallback", "model", 0, &bpe->byte_fallback) != 0 ||
        get_bool(c, m, "ignore_merges", "model", 0, &bpe->ignore_merges) != 0)
        return -1;
    const char *unk = NULL;
    if (get_string(c, m, "unk_token", "model", 0, &unk) != 0) return -1;

    const cJSON *vocab = get(m, "vocab"), *merges = get(m, "merges");
    if (is_null(vocab) || is_null(merges))
        return lfail(c, "model", "missing \"vocab\" or \"merges\" (tokenizers: Missing vocab/merges)");
    if (!cJSON_IsObject(vocab)) return lfail(c, "model.vocab", "must be an object mapping token strings to ids");
    if (!cJSON_IsArray(merges)) return lfail(c, "model.merges", "must be an array");
    size_t nv = (size_t)cJSON_GetArraySize(vocab);
    strmap_init(&bpe->vocab, nv);
    int32_t max_id = -1;
    for (const cJSON *it = vocab->child; it; it = it->next) {
        double v = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (!cJSON_IsNumber(it) || v < 0 || v != floor(v) || v >= MAX_VOCAB_ID) {
            char s[100];
            json_show(it, s, sizeof s);
            return lfail(c, "model.vocab", "token \"%s\": the id must be an integer in [0, %d), got %s", it->string,
                         MAX_VOCAB_ID, s);
        }
        int32_t id = (int32_t)v, prev;
        if (!strmap_put(&bpe->vocab, it->string, strlen(it->string), id, &prev))
            return lfail(c, "model.vocab", "token \"%s\" appears twice (ids %d and %d)", it->string, prev, id);
        if (id > max_id) max_id = id;
    }
    bpe->n_ids = max_id + 1;
    bpe->n_tokens = (int64_t)nv;
    bpe->id_str = ow_xcalloc((size_t)bpe->n_ids + 1, sizeof *bpe->id_str);
    bpe->id_len = ow_xcalloc((size_t)bpe->n_ids + 1, sizeof *bpe->id_len);
    for (size_t i = 0; i <= bpe->vocab.mask; i++) {
        const StrSlot *s = &bpe->vocab.slots[i];
        if (!s->used) continue;
        if (bpe->id_str[s->value])
            return lfail(c, "model.vocab", "id %d is given to two tokens, \"%s\" and \"%s\"", s->value,
                         bpe->id_str[s->value], bpe->vocab.arena + s->off);
        bpe->id_str[s->value] = bpe->vocab.arena + s->off;
        bpe->id_len[s->value] = s->len;
    }
    if (unk) {
        bpe->unk_id = strmap_get(&bpe->vocab, unk, strlen(unk));
        if (bpe->unk_id < 0)
            return lfail(c, "model.unk_token",
                         "\"%s\" is not in model.vocab (tokenizers fails on the first unknown character)", unk);
    }

    size_t nm = (size_t)cJSON_GetArraySize(merges), i = 0;
    u64map_init(&bpe->merges, nm);
    uint32_t rank = 0;
    int kind = -1; /* 0 strings, 1 pairs */
    char *cat = NULL;
    size_t cat_cap = 0;
    for (const cJSON *it = merges->child; it; it = it->next, i++) {
        int k = cJSON_IsString(it) ? 0 : 1;
        if (kind < 0) kind = k;
        if (k != kind) {
            free(cat);
            char p[64];
            snprintf(p, sizeof p, "model.merges[%zu]", i);
            return lfail(c, p, "mixes \"a b\" strings and [\"a\", \"b\"] pairs");
        }
        const char *a = NULL, *b = NULL;
        size_t alen = 0, blen = 0;
        int skip;
        if (parse_merge(c, it, i, &a, &alen, &b, &blen, &skip) != 0) {
            free(cat);
            return -1;
        }
        if (skip) continue;
        if (cat_cap < alen + blen + 1) {
            cat_cap = 2 * (alen + blen + 1);
            cat = ow_xrealloc(cat, cat_cap);
        }
        memcpy(cat, a, alen);
        memcpy(cat + alen, b, blen);
        cat[alen + blen] = '\0';
        int32_t ia = strmap_get(&bpe->vocab, a, alen), ib = strmap_get(&bpe->vocab, b, blen);
        int32_t in = strmap_get(&bpe->vocab, cat, alen + blen);
        if (ia < 0 || ib < 0 || in < 0) {
            char p[64];
            snprintf(p, sizeof p, "model.merges[%zu]", i);
            const char *miss = ia < 0 ? a : ib < 0 ? b : cat;
            size_t ml = ia < 0 ? alen : ib < 0 ? blen : alen + blen;
            int rc = lfail(c, p, "token \"%.*s\" is not in model.vocab (tokenizers: MergeTokenOutOfVocabulary)",
                           (int)ml, miss);
            free(cat);
            return rc;
        }
        u64map_set(&bpe->merges, ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib, ((uint64_t)rank << 32) | (uint32_t)in);
        rank++;
    }
    free(cat);
    bpe->n_merges = rank;
    return 0;
}

/* ---- normalizer ---- */

static int parse_normalizer(LoadCtx *c, const cJSON *n, const char *path) {
    const char *type = NULL;
    if (get_type(c, n, path, &type) != 0) return -1;
    Tokenizer *tok = c->tok;
    char p[512];
    if (strcmp(type, "Sequence") == 0) return parse_sequence(c, n, path, "normalizers", parse_normalizer);
    NormOp op = {0};
    if (strcmp(type, "Prepend") == 0) {
        static const char *const keys[] = {"type", "prepend", NULL};
        const char *s = NULL;
        if (check_keys(c, n, path, keys) != 0 || get_string(c, n, "prepend", path, 1, &s) != 0) return -1;
        op.kind = NORM_PREPEND;
        op.a = ow_xstrdup(s);
        op.alen = strlen(s);
    } else if (strcmp(type, "Replace") == 0) {
        const char *pat = NULL, *content = NULL;
        if (get_replace(c, n, path, "normalizer", &pat, &content) != 0) return -1;
        op.kind = NORM_REPLACE;
        op.a = ow_xstrdup(pat);
        op.alen = strlen(pat);
        op.b = ow_xstrdup(content);
        op.blen = strlen(content);
    } else {
        snprintf(p, sizeof p, "%s.type", path);
        return lfail(c, p, "\"%s\" is not supported: owlore implements the normalizers Prepend, Replace and Sequence",
                     type);
    }
    tok->norm = ow_xrealloc(tok->norm, (tok->n_norm + 1) * sizeof *tok->norm);
    tok->norm[tok->n_norm++] = op;
    return 0;
}

/* ---- pre-tokenizer ---- */

static int parse_prepend_scheme(LoadCtx *c, const cJSON *n, const char *path, PrependScheme *out) {
    const char *ps = NULL;
    int aps = -1;
    if (get_string(c, n, "prepend_scheme", path, 0, &ps) != 0 || get_bool(c, n, "add_prefix_space", path, 0, &aps) != 0)
        return -1;
    *out = PREPEND_ALWAYS; /* tokenizers' default */
    if (ps) {
        if (strcmp(ps, "always") == 0)
            *out = PREPEND_ALWAYS;
        else if (strcmp(ps, "first") == 0)
            *out = PREPEND_FIRST;
        else if (strcmp(ps, "never") == 0)
            *out = PREPEND_NEVER;
        else {
            char p[512];
            snprintf(p, sizeof p, "%s.prepend_scheme", path);
            return lfail(c, p, "\"%s\" is not one of first, always, never", ps);
        }
    }
    if (aps == 0) {
        if (*out != PREPEND_NEVER)
            return lfail(c, path,
                         "add_prefix_space is false but prepend_scheme is not \"never\" (tokenizers: add_prefix_space "
                         "does not match declared prepend_scheme)");
        *out = PREPEND_NEVER;
    }
    return 0;
}

static int add_stage(LoadCtx *c, const char *path, PreTokStage st) {
    Tokenizer *tok = c->tok;
    if (tok->n_stages >= TOK_MAX_STAGES) {
        if (st.re != tok->gpt2_re) tokregex_free(st.re);
        return lfail(c, path, "more than %d pre-tokenizers in sequence", TOK_MAX_STAGES);
    }
    if (tok->n_stages > 0 && tok->stages[tok->n_stages - 1].kind == PT_BYTELEVEL) {
        if (st.re != tok->gpt2_re) tokregex_free(st.re);
        return lfail(c, path,
                     "a pre-tokenizer after ByteLevel is not supported (owlore applies the byte mapping last)");
    }
    tok->stages[tok->n_stages++] = st;
    return 0;
}

static int parse_pretok(LoadCtx *c, const cJSON *n, const char *path) {
    const char *type = NULL;
    if (get_type(c, n, path, &type) != 0) return -1;
    char p[512];
    PreTokStage st;
    memset(&st, 0, sizeof st);
    if (strcmp(type, "Sequence") == 0) return parse_sequence(c, n, path, "pretokenizers", parse_pretok);
    if (strcmp(type, "Split") == 0) {
        static const char *const keys[] = {"type", "pattern", "behavior", "invert", NULL};
        const char *pat = NULL, *beh = NULL;
        int is_regex = 0, invert = 0;
        if (check_keys(c, n, path, keys) != 0 || get_pattern(c, n, path, &pat, &is_regex) != 0 ||
            get_string(c, n, "behavior", path, 1, &beh) != 0 || get_bool(c, n, "invert", path, 1, &invert) != 0)
            return -1;
        static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                            "Contiguous"};
        int b = -1;
        for (int k = 0; k < 5; k++)
            if (strcmp(beh, names[k]) == 0) b = k;
        snprintf(p, sizeof p, "%s.behavior", path);
        if (b < 0)
            return lfail(
                c, p,
                "\"%s\" is not a split behavior (Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous)",
                beh);
        snprintf(p, sizeof p, "%s.pattern", path);
        if (!is_regex && !*pat) return lfail(c, p, "the String pattern is empty");
        char where[600];
        snprintf(where, sizeof where, "%s: %s", c->file, p);
        st.kind = PT_SPLIT;
        st.re = tokregex_compile(pat, !is_regex, where, c->err);
        if (!st.re) return -1;
        st.behavior = (SplitBehavior)b;
        st.invert = invert;
        return add_stage(c, path, st);
    }
    if (strcmp(type, "Metaspace") == 0) {
        static const char *const keys[] = {"type",    "replacement", "prepend_scheme", "split", "add_prefix_space",
                                           "str_rep", NULL};
        uint32_t cp = 0;
        int split = 1;
        if (check_keys(c, n, path, keys) != 0 || get_char(c, n, "replacement", path, &cp, st.repl, &st.repl_len) != 0 ||
            parse_prepend_scheme(c, n, path, &st.prepend) != 0 || get_bool(c, n, "split", path, 0, &split) != 0)
            return -1;
        st.kind = PT_METASPACE;
        st.split = split;
        return add_stage(c, path, st);
    }
    if (strcmp(type, "ByteLevel") == 0) {
        static const char *const keys[] = {"type", "add_prefix_space", "trim_offsets", "use_regex", NULL};
        int aps = 0, trim = 0, use_regex = 1;
        if (check_keys(c, n, path, keys) != 0 || get_bool(c, n, "add_prefix_space", path, 1, &aps) != 0 ||
            get_bool(c, n, "trim_offsets", path, 1, &trim) != 0 ||
            get_bool(c, n, "use_regex", path, 0, &use_regex) != 0)
            return -1;
        st.kind = PT_BYTELEVEL;
        st.add_prefix_space = aps;
        st.use_regex = use_regex;
        if (use_regex) {
            if (!c->tok->gpt2_re) {
                c->tok->gpt2_re = tokregex_compile(k_gpt2_pattern, 0, path, c->err);
                if (!c->tok->gpt2_re) return -1;
            }
            st.re = c->tok->gpt2_re; /* owned by the tokenizer */
        }
        return add_stage(c, path, st);
    }
    snprintf(p, sizeof p, "%s.type", path);
    return lfail(
        c, p, "\"%s\" is not supported: owlore implements the pre-tokenizers Split, Metaspace, ByteLevel and Sequence",
        type);
}

/* ---- post-processor ---- */

typedef struct TemplateTokens {
    const cJSON *map; /* special_tokens object */
} TemplateTokens;

/* Validates a template; for the single one, fills the ids around $A. */
static int parse_template(LoadCtx *c, const cJSON *list, const char *path, const cJSON *specials, int single) {
    if (!cJSON_IsArray(list)) return lfail(c, path, "must be an array of pieces");
    Tokenizer *tok = c->tok;
    int seen_a = 0, seen_b = 0;
    size_t i = 0;
    char p[512];
    for (const cJSON *it = list->child; it; it = it->next, i++) {
        snprintf(p, sizeof p, "%s[%zu]", path, i);
        if (!cJSON_IsObject(it) || !it->child || it->child->next || !cJSON_IsObject(it->child))
            return lfail(c, p, "a piece must be {\"SpecialToken\": {...}} or {\"Sequence\": {...}}");
        const cJSON *body = it->child;
        static const char *const keys[] = {"id", "type_id", NULL};
        if (check_keys(c, body, p, keys) != 0) return -1;
        const char *id = NULL;
        int64_t type_id = 0;
        if (get_string(c, body, "id", p, 1, &id) != 0 || get_uint(c, body, "type_id", p, UINT32_MAX, &type_id) != 0)
            return -1;
        if (strcmp(body->string, "Sequence") == 0) {
            if (strcmp(id, "A") == 0) {
                if (seen_a++) return lfail(c, p, "$A appears twice");
            } else if (strcmp(id, "B") == 0) {
                if (single) return lfail(c, p, "the single template uses $B (there is no second sequence)");
                if (seen_b++) return lfail(c, p, "$B appears twice");
            } else {
                return lfail(c, p, "sequence id \"%s\" is not A or B", id);
            }
        } else if (strcmp(body->string, "SpecialToken") == 0) {
            const cJSON *sp = specials ? get(specials, id) : NULL;
            if (!sp) return lfail(c, p, "special token \"%s\" is not in post_processor special_tokens", id);
            if (single) {
                const cJSON *ids = get(sp, "ids");
                int32_t **dst = seen_a ? &tok->tmpl_after : &tok->tmpl_before;
                size_t *cnt = seen_a ? &tok->n_after : &tok->n_before;
                for (const cJSON *x = ids->child; x; x = x->next) {
                    *dst = ow_xrealloc(*dst, (*cnt + 1) * sizeof **dst);
                    (*dst)[(*cnt)++] = (int32_t)x->valuedouble;
                }
            }
        } else {
            return lfail(c, p, "\"%s\" is not a template piece (SpecialToken or Sequence)", body->string);
        }
    }
    if (!seen_a) return lfail(c, path, "the template has no $A");
    if (!single && !seen_b) return lfail(c, path, "the pair template has no $B");
    return 0;
}

static int parse_template_processing(LoadCtx *c, const cJSON *n, const char *path) {
    static const char *const keys[] = {"type", "single", "pair", "special_tokens", NULL};
    if (check_keys(c, n, path, keys) != 0) return -1;
    Tokenizer *tok = c->tok;
    if (tok->has_template) return lfail(c, path, "two TemplateProcessing post-processors");
    char p[512];
    const cJSON *sp = get(n, "special_tokens");
    snprintf(p, sizeof p, "%s.special_tokens", path);
    if (!cJSON_IsObject(sp)) return lfail(c, p, "must be an object");
    for (const cJSON *it = sp->child; it; it = it->next) {
        char q[700];
        snprintf(q, sizeof q, "%s.%s", p, it->string);
        static const char *const tkeys[] = {"id", "ids", "tokens", NULL};
        if (need_object(c, it, q) != 0 || check_keys(c, it, q, tkeys) != 0) return -1;
        const cJSON *ids = get(it, "ids"), *toks = get(it, "tokens");
        if (!cJSON_IsArray(ids) || !cJSON_IsArray(toks) || cJSON_GetArraySize(ids) != cJSON_GetArraySize(toks))
            return lfail(c, q, "\"ids\" and \"tokens\" must be arrays of the same length");
        for (const cJSON *x = ids->child; x; x = x->next) {
            if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble != floor(x->valuedouble) ||
                x->valuedouble >= MAX_VOCAB_ID)
                return lfail(c, q, "\"ids\" must hold token ids");
        }
    }
    snprintf(p, sizeof p, "%s.single", path);
    if (parse_template(c, get(n, "single"), p, sp, 1) != 0) return -1;
    snprintf(p, sizeof p, "%s.pair", path);
    if (parse_template(c, get(n, "pair"), p, sp, 0) != 0) return -1;
    tok->has_template = 1;
    return 0;
}

static int parse_post(LoadCtx *c, const cJSON *n, const char *path) {
    const char *type = NULL;
    if (get_type(c, n, path, &type) != 0) return -1;
    char p[512];
    if (strcmp(type, "Sequence") == 0) return parse_sequence(c, n, path, "processors", parse_post);
    if (strcmp(type, "TemplateProcessing") == 0) return parse_template_processing(c, n, path);
    if (strcmp(type, "ByteLevel") == 0) {
        /* only trims offsets: the ids are unchanged */
        static const char *const keys[] = {"type", "add_prefix_space", "trim_offsets", "use_regex", NULL};
        int b = 0;
        return check_keys(c, n, path, keys) != 0 || get_bool(c, n, "add_prefix_space", path, 0, &b) != 0 ||
                       get_bool(c, n, "trim_offsets", path, 0, &b) != 0 || get_bool(c, n, "use_regex", path, 0, &b) != 0
                   ? -1
                   : 0;
    }
    snprintf(p, sizeof p, "%s.type", path);
    return lfail(
        c, p,
        "\"%s\" is not supported: owlore implements the post-processors TemplateProcessing, ByteLevel and Sequence",
        type);
}

/* ---- decoder ---- */

static int parse_decoder(LoadCtx *c, const cJSON *n, const char *path) {
    const char *type = NULL;
    if (get_type(c, n, path, &type) != 0) return -1;
    Tokenizer *tok = c->tok;
    char p[512];
    DecOp op;
    memset(&op, 0, sizeof op);
    if (strcmp(type, "Sequence") == 0) return parse_sequence(c, n, path, "decoders", parse_decoder);
    if (strcmp(type, "Replace") == 0) {
        const char *pat = NULL, *content = NULL;
        if (get_replace(c, n, path, "decoder", &pat, &content) != 0) return -1;
        op.kind = DEC_REPLACE;
        op.a = ow_xstrdup(pat);
        op.alen = strlen(pat);
        op.b = ow_xstrdup(content);
        op.blen = strlen(content);
    } else if (strcmp(type, "ByteFallback") == 0 || strcmp(type, "Fuse") == 0) {
        static const char *const keys[] = {"type", NULL};
        if (check_keys(c, n, path, keys) != 0) return -1;
        op.kind = type[0] == 'B' ? DEC_BYTE_FALLBACK : DEC_FUSE;
    } else if (strcmp(type, "Strip") == 0) {
        static const char *const keys[] = {"type", "content", "start", "stop", NULL};
        int64_t a = 0, b = 0;
        if (check_keys(c, n, path, keys) != 0 || get_char(c, n, "content", path, &op.cp, NULL, NULL) != 0 ||
            get_uint(c, n, "start", path, INT32_MAX, &a) != 0 || get_uint(c, n, "stop", path, INT32_MAX, &b) != 0)
            return -1;
        op.kind = DEC_STRIP;
        op.start = (size_t)a;
        op.stop = (size_t)b;
    } else if (strcmp(type, "Metaspace") == 0) {
        static const char *const keys[] = {"type",    "replacement", "prepend_scheme", "split", "add_prefix_space",
                                           "str_rep", NULL};
        PrependScheme ps = PREPEND_ALWAYS;
        int split = 1;
        if (check_keys(c, n, path, keys) != 0 || get_char(c, n, "replacement", path, &op.cp, NULL, NULL) != 0 ||
            parse_prepend_scheme(c, n, path, &ps) != 0 || get_bool(c, n, "split", path, 0, &split) != 0)
            return -1;
        op.kind = DEC_METASPACE;
        op.prepend_never = ps == PREPEND_NEVER;
    } else if (strcmp(type, "ByteLevel") == 0) {
        static const char *const keys[] = {"type", "add_prefix_space", "trim_offsets", "use_regex", NULL};
        int b = 0;
        if (check_keys(c, n, path, keys) != 0 || get_bool(c, n, "add_prefix_space", path, 0, &b) != 0 ||
            get_bool(c, n, "trim_offsets", path, 0, &b) != 0 || get_bool(c, n, "use_regex", path, 0, &b) != 0)
            return -1;
        op.kind = DEC_BYTE_LEVEL;
    } else {
        snprintf(p, sizeof p, "%s.type", path);
        return lfail(c, p,
                     "\"%s\" is not supported: owlore implements the decoders ByteFallback, Fuse, Strip, Replace, "
                     "Metaspace, ByteLevel and Sequence",
                     type);
    }
    tok->dec = ow_xrealloc(tok->dec, (tok->n_dec + 1) * sizeof *tok->dec);
    tok->dec[tok->n_dec++] = op;
    return 0;
}

/* ---- added tokens ---- */

static int parse_added(LoadCtx *c, const cJSON *list) {
    if (!cJSON_IsArray(list)) return lfail(c, "added_tokens", "must be an array");
    Tokenizer *tok = c->tok;
    AddedVocab *av = &tok->added;
    /* tokenizers: ids of tokens outside the model vocabulary continue from
     * the vocabulary size (its number of entries) */
    int64_t next_id = tok->bpe.n_tokens;
    size_t i = 0;
    char p[128];
    for (const cJSON *it = list->child; it; it = it->next, i++) {
        snprintf(p, sizeof p, "added_tokens[%zu]", i);
        static const char *const keys[] = {"id",     "content",    "single_word", "lstrip",
                                           "rstrip", "normalized", "special",     NULL};
        if (need_object(c, it, p) != 0 || check_keys(c, it, p, keys) != 0) return -1;
        int64_t id = 0;
        const char *content = NULL;
        int sw = 0, ls = 0, rs = 0, norm = 0, special = 0;
        if (get_uint(c, it, "id", p, MAX_VOCAB_ID - 1, &id) != 0 || get_string(c, it, "content", p, 1, &content) != 0 ||
            get_bool(c, it, "single_word", p, 1, &sw) != 0 || get_bool(c, it, "lstrip", p, 1, &ls) != 0 ||
            get_bool(c, it, "rstrip", p, 1, &rs) != 0 || get_bool(c, it, "normalized", p, 1, &norm) != 0 ||
            get_bool(c, it, "special", p, 1, &special) != 0)
            return -1;
        size_t len = strlen(content);
        if (len == 0) continue; /* tokenizers ignores empty added tokens */
        if (strmap_get(&av->by_content, content, len) >= 0)
            return lfail(c, p, "\"%s\" is listed twice in added_tokens", content);
        int32_t want = strmap_get(&tok->bpe.vocab, content, len);
        if (want < 0) want = (int32_t)next_id++;
        if (want != id)
            return lfail(c, p,
                         "\"%s\" has id %lld, but tokenizers would give it id %d (%s); owlore refuses the mismatch",
                         content, (long long)id, want,
                         strmap_get(&tok->bpe.vocab, content, len) >= 0 ? "its id in model.vocab"
                                                                        : "the next id after the vocabulary");
        av->toks = ow_xrealloc(av->toks, (av->n + 1) * sizeof *av->toks);
        AddedToken *t = &av->toks[av->n];
        memset(t, 0, sizeof *t);
        t->content = ow_xstrdup(content);
        t->len = len;
        t->id = (int32_t)id;
        t->single_word = (uint8_t)sw;
        t->lstrip = (uint8_t)ls;
        t->rstrip = (uint8_t)rs;
        t->normalized = (uint8_t)norm;
        t->special = (uint8_t)special;
        strmap_put(&av->by_content, content, len, (int32_t)av->n, NULL);
        u64map_set(&av->by_id, (uint64_t)id, av->n);
        if (special) strmap_put(&av->special, content, len, 1, NULL);
        av->n++;
    }
    return 0;
}

int tokenizer_parse(Tokenizer *tok, const char *json, size_t len, OwError *err) {
    LoadCtx c = {tok, tok->path, err};
    cJSON *root = json_parse(json, len, tok->path, err);
    if (!root) return -1;
    int rc = -1;
    if (need_object(&c, root, "(top level)") != 0) goto done;
    static const char *const keys[] = {"version",       "truncation",     "padding", "added_tokens", "normalizer",
                                       "pre_tokenizer", "post_processor", "decoder", "model",        NULL};
    if (check_keys(&c, root, "(top level)", keys) != 0) goto done;
    const cJSON *v = get(root, "version");
    if (!is_null(v) && !(cJSON_IsString(v) && strcmp(v->valuestring, "1.0") == 0)) {
        char s[100];
        json_show(v, s, sizeof s);
        lfail(&c, "version", "%s: only version \"1.0\" is known", s);
        goto done;
    }
    if (!is_null(get(root, "truncation"))) {
        lfail(&c, "truncation",
              "truncation is set: owlore does not truncate inside the tokenizer (set it to null; block_size handles "
              "length)");
        goto done;
    }
    if (!is_null(get(root, "padding"))) {
        lfail(&c, "padding", "padding is set: owlore does not pad inside the tokenizer (set it to null)");
        goto done;
    }
    const cJSON *model = get(root, "model");
    if (is_null(model)) {
        lfail(&c, "model", "missing");
        goto done;
    }
    if (parse_model(&c, model) != 0) goto done;
    const cJSON *n = get(root, "normalizer");
    if (!is_null(n) && parse_normalizer(&c, n, "normalizer") != 0) goto done;
    n = get(root, "pre_tokenizer");
    if (!is_null(n) && parse_pretok(&c, n, "pre_tokenizer") != 0) goto done;
    int byte_level = tok->n_stages > 0 && tok->stages[tok->n_stages - 1].kind == PT_BYTELEVEL;
    bpe_finish(&tok->bpe, byte_level);
    n = get(root, "post_processor");
    if (!is_null(n) && parse_post(&c, n, "post_processor") != 0) goto done;
    n = get(root, "decoder");
    if (!is_null(n)) {
        tok->has_decoder = 1;
        if (parse_decoder(&c, n, "decoder") != 0) goto done;
    }
    n = get(root, "added_tokens");
    if (!is_null(n) && parse_added(&c, n) != 0) goto done;
    if (added_finish(tok, err) != 0) goto done;
    int64_t vs = tok->bpe.n_ids;
    for (size_t i = 0; i < tok->added.n; i++)
        if (tok->added.toks[i].id + 1 > vs) vs = tok->added.toks[i].id + 1;
    tok->vocab_size = vs;
    for (size_t i = 0; i < tok->n_before; i++)
        if (tok->tmpl_before[i] >= vs) {
            lfail(&c, "post_processor", "the template adds id %d, outside the vocabulary (size %lld)",
                  tok->tmpl_before[i], (long long)vs);
            goto done;
        }
    for (size_t i = 0; i < tok->n_after; i++)
        if (tok->tmpl_after[i] >= vs) {
            lfail(&c, "post_processor", "the template adds id %d, outside the vocabulary (size %lld)",
                  tok->tmpl_after[i], (long long)vs);
            goto done;
        }
    tok->bos_id = tok->n_before == 1 ? tok->tmpl_before[0] : -1;
    tok->eos_id = tok->n_after == 1 ? tok->tmpl_after[0] : -1;
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}
