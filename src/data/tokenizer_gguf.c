/* tokenizer_gguf.c: see tokenizer_gguf.h.
 *
 * Owns: reading tokenizer.ggml.* into a Vocab (token spellings, types,
 * scores, merges), the vocabulary and merges (given, or derived for
 * SentencePiece files), and the JSON of both files. Invariants of a built
 * Vocab: every spelling is NUL-free valid UTF-8 (JSON needs it), `keep[i]` is
 * 1 for the last id of each spelling (the one a Python dict keeps). */
#include "data/tokenizer_gguf.h"

#include "core/json.h"
#include "core/name_index.h"
#include "core/utf8.h"
#include "tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_CONTROL 3
#define TOKEN_USER_DEFINED 4

typedef struct PreSplit {
    const char *pre;   /* tokenizer.ggml.pre */
    const char *regex; /* the Split pattern transformers puts before ByteLevel */
} PreSplit;

/* transformers' GGUF_PRE_TOKENIZER_SPLITS (5.25) */
static const char k_split_llama3[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                     "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
                                     "\\s+(?!\\S)|\\s+";
static const char k_split_tekken[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?["
    "\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";
static const char k_split_gpt4o[] = "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}"
                                    "\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
                                    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}"
                                    "\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
                                    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char k_split_qwen2[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";
static const char k_split_qwen35[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const PreSplit k_pre_splits[] = {
    {"llama3", k_split_llama3},       {"llama-v3", k_split_llama3},
    {"llama-bpe", k_split_llama3},    {"falcon3", k_split_llama3},
    {"falcon-h1", k_split_llama3},    {"pixtral", k_split_llama3},
    {"midm-2.0", k_split_llama3},     {"lfm2", k_split_llama3},
    {"jina-v5-nano", k_split_llama3}, {"dbrx", k_split_llama3},
    {"smaug-bpe", k_split_llama3},    {"tekken", k_split_tekken},
    {"qwen2", k_split_qwen2},         {"deepseek-r1-qwen", k_split_qwen2},
    {"kormo", k_split_qwen2},         {"f2llmv2", k_split_qwen2},
    {"megrez", k_split_qwen2},        {"qwen35", k_split_qwen35},
    {"gpt-4o", k_split_gpt4o},        {"llama4", k_split_gpt4o},
    {"kanana2", k_split_gpt4o},       {"talkie", k_split_gpt4o},
    {"minimax-m2", k_split_gpt4o},
};

typedef struct Vocab {
    const char *path;
    int byte_level; /* gpt2 */
    int64_t n;
    char **spell;      /* the vocabulary key of each id */
    int32_t *type;     /* token types, or NULL */
    float *score;      /* scores, or NULL */
    char *keep;        /* 1: the id the vocabulary keeps for its spelling (its last) */
    char *first;       /* 1: the first id of its spelling (Python dict order) */
    char *respelled;   /* byte level: 1 when the token was respelled byte by byte */
    NameIdx *by_spell; /* sorted by spelling, then id (lookups) */
    int64_t nmerges;
    char **merge_l, **merge_r;
} Vocab;

static void vocab_free(Vocab *v) {
    for (int64_t i = 0; i < v->n; i++) free(v->spell[i]);
    for (int64_t i = 0; i < v->nmerges; i++) free(v->merge_l[i]), free(v->merge_r[i]);
    free(v->spell);
    free(v->type);
    free(v->score);
    free(v->keep);
    free(v->first);
    free(v->respelled);
    free(v->by_spell);
    free(v->merge_l);
    free(v->merge_r);
    memset(v, 0, sizeof *v);
}

/* 1 when every code point of the (valid UTF-8) token is one of the 256 characters of GPT-2's byte alphabet. */
static int in_byte_alphabet(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = utf8_decode_checked(s + i, n - i, &cp);
        if (k == 0 || cp > 0xFFFF || bytelevel_byte(cp) < 0) return 0;
        i += k;
    }
    return 1;
}

/* The vocabulary key of a token: as stored, or respelled: each byte as its byte-level character. */
static char *spelling(const GgufStr *t, int respell) {
    if (!respell) {
        char *s = ow_xmalloc((size_t)t->len + 1);
        memcpy(s, t->s, (size_t)t->len);
        s[t->len] = '\0';
        return s;
    }
    char *s = ow_xmalloc((size_t)t->len * 2 + 1), *o = s;
    for (uint64_t i = 0; i < t->len; i++) o += utf8_encode(bytelevel_char((uint8_t)t->s[i]), o);
    *o = '\0';
    return s;
}

static void index_spellings(Vocab *v) {
    v->by_spell = ow_xmalloc((size_t)(v->n > 0 ? v->n : 1) * sizeof *v->by_spell);
    for (int64_t i = 0; i < v->n; i++) v->by_spell[i] = (NameIdx){v->spell[i], (int)i};
    qsort(v->by_spell, (size_t)v->n, sizeof *v->by_spell, name_idx_cmp);
    v->keep = ow_xcalloc((size_t)(v->n > 0 ? v->n : 1), 1);
    v->first = ow_xcalloc((size_t)(v->n > 0 ? v->n : 1), 1);
    for (int64_t k = 0; k < v->n; k++) {
        if (k + 1 == v->n || strcmp(v->by_spell[k].name, v->by_spell[k + 1].name) != 0) v->keep[v->by_spell[k].idx] = 1;
        if (k == 0 || strcmp(v->by_spell[k].name, v->by_spell[k - 1].name) != 0) v->first[v->by_spell[k].idx] = 1;
    }
}

/* The id the vocabulary maps s to (the last id of that spelling), or -1. */
static int64_t vocab_lookup(const Vocab *v, const char *s, size_t n) {
    int64_t lo = 0, hi = v->n - 1, found = -1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        const char *m = v->by_spell[mid].name;
        int c = strncmp(s, m, n);
        if (c == 0 && m[n] != '\0') c = -1;
        if (c == 0) {
            found = v->by_spell[mid].idx;
            lo = mid + 1; /* the last of equal spellings */
        } else if (c < 0) {
            hi = mid - 1;
        } else {
            lo = mid + 1;
        }
    }
    return found;
}

/* ------------------------------------------------------------- reading */

static int check_text(const Vocab *v, const char *key, uint64_t i, const GgufStr *s, OwError *err) {
    for (uint64_t k = 0; k < s->len;) {
        uint32_t cp;
        size_t n = utf8_decode_checked(s->s + k, (size_t)(s->len - k), &cp);
        if (n == 0 || cp == 0)
            return ow_fail(err,
                           "%s: %s[%llu] is not NUL-free UTF-8 (byte %llu) (hint: the tokenizer metadata is "
                           "corrupted)",
                           v->path, key, (unsigned long long)i, (unsigned long long)k);
        k += n;
    }
    return 0;
}

static int read_merges(const Gguf *g, Vocab *v, OwError *err) {
    GgufStr *m;
    uint64_t n;
    if (gguf_get_str_array(g, "tokenizer.ggml.merges", &m, &n, err) != 0) return -1;
    v->merge_l = ow_xcalloc((size_t)(n > 0 ? n : 1), sizeof *v->merge_l);
    v->merge_r = ow_xcalloc((size_t)(n > 0 ? n : 1), sizeof *v->merge_r);
    int rc = 0;
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        rc = check_text(v, "tokenizer.ggml.merges", i, &m[i], err);
        const char *sp = rc == 0 ? memchr(m[i].s, ' ', (size_t)m[i].len) : NULL;
        if (rc == 0 && (!sp || memchr(sp + 1, ' ', (size_t)(m[i].s + m[i].len - sp - 1))))
            rc = ow_fail(err, "%s: tokenizer.ggml.merges[%llu] is not two tokens separated by one space", v->path,
                         (unsigned long long)i);
        if (rc != 0) break;
        size_t nl = (size_t)(sp - m[i].s), nr = (size_t)m[i].len - nl - 1;
        v->merge_l[i] = ow_xmalloc(nl + 1);
        v->merge_r[i] = ow_xmalloc(nr + 1);
        memcpy(v->merge_l[i], m[i].s, nl);
        memcpy(v->merge_r[i], sp + 1, nr);
        v->merge_l[i][nl] = v->merge_r[i][nr] = '\0';
        v->nmerges++;
    }
    free(m);
    return rc;
}

/* An optional per-token array: absent is fine, another length is an error. */
static int read_per_token(const Gguf *g, const Vocab *v, const char *key, int f32, void **out, OwError *err) {
    *out = NULL;
    if (!gguf_find_kv(g, key)) return 0;
    uint64_t n;
    int rc =
        f32 ? gguf_get_f32_array(g, key, (float **)out, &n, err) : gguf_get_i32_array(g, key, (int32_t **)out, &n, err);
    if (rc == 0 && n != (uint64_t)v->n)
        rc = ow_fail(err, "%s: %s has %llu entries for %lld tokens", v->path, key, (unsigned long long)n,
                     (long long)v->n);
    return rc;
}

static int read_vocab(const Gguf *g, Vocab *v, OwError *err) {
    GgufStr *t;
    uint64_t n;
    if (gguf_get_str_array(g, "tokenizer.ggml.tokens", &t, &n, err) != 0) return -1;
    int rc = n == 0 || n > INT32_MAX
                 ? ow_fail(err, "%s: tokenizer.ggml.tokens has %llu entries", v->path, (unsigned long long)n)
                 : 0;
    v->spell = ow_xcalloc((size_t)(n > 0 ? n : 1), sizeof *v->spell);
    v->respelled = ow_xcalloc((size_t)(n > 0 ? n : 1), 1);
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        rc = check_text(v, "tokenizer.ggml.tokens", i, &t[i], err);
        if (rc != 0) break;
        v->respelled[i] = (char)(v->byte_level && !in_byte_alphabet(t[i].s, (size_t)t[i].len));
        v->spell[v->n++] = spelling(&t[i], v->respelled[i]);
    }
    free(t);
    if (rc == 0) rc = read_per_token(g, v, "tokenizer.ggml.token_type", 0, (void **)&v->type, err);
    if (rc == 0) rc = read_per_token(g, v, "tokenizer.ggml.scores", 1, (void **)&v->score, err);
    if (rc == 0) index_spellings(v);
    if (rc == 0 && gguf_find_kv(g, "tokenizer.ggml.merges")) rc = read_merges(g, v, err);
    return rc;
}

/* --------------------------------------------- merges of a file without */

typedef struct Cand {
    int64_t l, r;   /* vocabulary ids of the two pieces */
    double val;     /* the merged token's score (or id without scores) */
    int lenl, lenr; /* code points */
    int64_t seq;    /* position before the final sort (stability) */
    int desc;       /* 1: sort val, lenl, lenr descending */
} Cand;

static int cmp_local(const void *a, const void *b) {
    const Cand *x = a, *y = b;
    if (x->l != y->l) return x->l < y->l ? -1 : 1;
    return (x->r > y->r) - (x->r < y->r);
}

static int cmp_final(const void *a, const void *b) {
    const Cand *x = a, *y = b;
    int c = x->val != y->val     ? (x->val < y->val ? -1 : 1)
            : x->lenl != y->lenl ? (x->lenl < y->lenl ? -1 : 1)
            : x->lenr != y->lenr ? (x->lenr < y->lenr ? -1 : 1)
                                 : 0;
    if (c) return x->desc ? -c : c;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* The candidate merges of one token: every split at a code point boundary into two vocabulary pieces. */
static int64_t token_splits(const Vocab *v, const char *s, double val, Cand *out) {
    size_t n = strlen(s);
    int total = 0, left = 0;
    for (size_t at = 0; at < n; at += utf8_seq_len((unsigned char)s[at])) total++;
    int64_t k = 0;
    for (size_t at = utf8_seq_len((unsigned char)s[0]); at < n; at += utf8_seq_len((unsigned char)s[at])) {
        left++;
        int64_t l = vocab_lookup(v, s, at), r = vocab_lookup(v, s + at, n - at);
        if (l >= 0 && r >= 0) out[k++] = (Cand){l, r, val, left, total - left, 0, 0};
    }
    qsort(out, (size_t)k, sizeof *out, cmp_local);
    return k;
}

/* transformers' generate_merges(vocab, scores): every token, in first-seen
 * order, with its value (the last score of its spelling, or its vocabulary id
 * without scores) yields its splits into two vocabulary pieces (by piece ids);
 * all are sorted by (value, pieces' lengths), descending with scores, stably. */
static void derive_merges(Vocab *v) {
    int64_t cap = 1024, n = 0;
    Cand *c = ow_xmalloc((size_t)cap * sizeof *c);
    for (int64_t i = 0; i < v->n; i++) {
        if (!v->first[i]) continue;
        int64_t last = vocab_lookup(v, v->spell[i], strlen(v->spell[i]));
        size_t len = strlen(v->spell[i]);
        if (n + (int64_t)len + 1 > cap) {
            while (n + (int64_t)len + 1 > cap) cap *= 2;
            c = ow_xrealloc(c, (size_t)cap * sizeof *c);
        }
        n += token_splits(v, v->spell[i], v->score ? (double)v->score[last] : (double)last, c + n);
    }
    for (int64_t k = 0; k < n; k++) c[k].seq = k, c[k].desc = v->score != NULL;
    qsort(c, (size_t)n, sizeof *c, cmp_final);
    v->merge_l = ow_xmalloc((size_t)(n > 0 ? n : 1) * sizeof *v->merge_l);
    v->merge_r = ow_xmalloc((size_t)(n > 0 ? n : 1) * sizeof *v->merge_r);
    for (int64_t k = 0; k < n; k++) {
        v->merge_l[k] = ow_xstrdup(v->spell[c[k].l]);
        v->merge_r[k] = ow_xstrdup(v->spell[c[k].r]);
    }
    v->nmerges = n;
    free(c);
}

/* ---------------------------------------------------------------- JSON */

static cJSON *build_model(const Vocab *v) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "type", "BPE");
    cJSON_AddNullToObject(m, "dropout");
    cJSON_AddNullToObject(m, "unk_token");
    if (v->byte_level) {
        cJSON_AddStringToObject(m, "continuing_subword_prefix", "");
        cJSON_AddStringToObject(m, "end_of_word_suffix", "");
    } else {
        cJSON_AddNullToObject(m, "continuing_subword_prefix");
        cJSON_AddNullToObject(m, "end_of_word_suffix");
    }
    cJSON_AddBoolToObject(m, "fuse_unk", !v->byte_level);
    cJSON_AddBoolToObject(m, "byte_fallback", !v->byte_level);
    cJSON_AddBoolToObject(m, "ignore_merges", 0);
    cJSON *vocab = cJSON_AddObjectToObject(m, "vocab");
    for (int64_t i = 0; i < v->n; i++)
        if (v->keep[i]) cJSON_AddItemToObject(vocab, v->spell[i], cJSON_CreateNumber((double)i));
    cJSON *merges = cJSON_AddArrayToObject(m, "merges");
    for (int64_t i = 0; i < v->nmerges; i++) {
        cJSON *pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, cJSON_CreateString(v->merge_l[i]));
        cJSON_AddItemToArray(pair, cJSON_CreateString(v->merge_r[i]));
        cJSON_AddItemToArray(merges, pair);
    }
    return m;
}

typedef struct Specials {
    int64_t bos, eos, unk, pad; /* -1 when absent */
    int add_bos, add_eos;
} Specials;

/* Control tokens and the bos/eos/unk/pad tokens (special), user-defined ones
 * (not special), in id order; byte level: not those respelled (transformers
 * skips a control token outside the byte alphabet). */
static cJSON *build_added(const Vocab *v, const Specials *sp, int64_t *count) {
    cJSON *a = cJSON_CreateArray();
    *count = 0;
    for (int64_t i = 0; i < v->n; i++) {
        int32_t type = v->type ? v->type[i] : 0;
        int named = i == sp->bos || i == sp->eos || i == sp->unk || i == sp->pad;
        int special = named || type == TOKEN_CONTROL;
        if ((!special && type != TOKEN_USER_DEFINED) || v->respelled[i] || !v->keep[i]) continue;
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "id", (double)i);
        cJSON_AddStringToObject(t, "content", v->spell[i]);
        cJSON_AddBoolToObject(t, "single_word", 0);
        cJSON_AddBoolToObject(t, "lstrip", 0);
        cJSON_AddBoolToObject(t, "rstrip", 0);
        cJSON_AddBoolToObject(t, "normalized", 0);
        cJSON_AddBoolToObject(t, "special", special);
        cJSON_AddItemToArray(a, t);
        (*count)++;
    }
    return a;
}

static cJSON *byte_level_obj(int add_prefix_space, int use_regex) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "ByteLevel");
    cJSON_AddBoolToObject(o, "add_prefix_space", add_prefix_space);
    cJSON_AddBoolToObject(o, "trim_offsets", 1);
    cJSON_AddBoolToObject(o, "use_regex", use_regex);
    return o;
}

static cJSON *build_pre(const Vocab *v, const char *pre) {
    if (!v->byte_level) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "Metaspace");
        cJSON_AddStringToObject(o, "replacement", "\xe2\x96\x81");
        cJSON_AddStringToObject(o, "prepend_scheme", "first");
        cJSON_AddBoolToObject(o, "split", 0);
        return o;
    }
    for (size_t k = 0; pre && k < sizeof k_pre_splits / sizeof k_pre_splits[0]; k++) {
        if (strcmp(pre, k_pre_splits[k].pre) != 0) continue;
        cJSON *seq = cJSON_CreateObject(), *split = cJSON_CreateObject();
        cJSON_AddStringToObject(seq, "type", "Sequence");
        cJSON *list = cJSON_AddArrayToObject(seq, "pretokenizers");
        cJSON_AddStringToObject(split, "type", "Split");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(split, "pattern"), "Regex", k_pre_splits[k].regex);
        cJSON_AddStringToObject(split, "behavior", "Isolated");
        cJSON_AddBoolToObject(split, "invert", 0);
        cJSON_AddItemToArray(list, split);
        cJSON_AddItemToArray(list, byte_level_obj(0, 0));
        return seq;
    }
    return byte_level_obj(0, 1);
}

static cJSON *build_decoder(const Vocab *v) {
    if (v->byte_level) return byte_level_obj(1, 1);
    cJSON *d = cJSON_CreateObject(), *rep = cJSON_CreateObject(), *strip = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "type", "Sequence");
    cJSON *list = cJSON_AddArrayToObject(d, "decoders");
    cJSON_AddStringToObject(rep, "type", "Replace");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(rep, "pattern"), "String", "\xe2\x96\x81");
    cJSON_AddStringToObject(rep, "content", " ");
    cJSON_AddItemToArray(list, rep);
    static const char *const plain[] = {"ByteFallback", "Fuse"};
    for (int k = 0; k < 2; k++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", plain[k]);
        cJSON_AddItemToArray(list, o);
    }
    cJSON_AddStringToObject(strip, "type", "Strip");
    cJSON_AddStringToObject(strip, "content", " ");
    cJSON_AddNumberToObject(strip, "start", 1);
    cJSON_AddNumberToObject(strip, "stop", 0);
    cJSON_AddItemToArray(list, strip);
    return d;
}

static void template_piece(cJSON *list, const char *special, const char *seq, int type_id) {
    cJSON *o = cJSON_CreateObject(), *in = cJSON_AddObjectToObject(o, special ? "SpecialToken" : "Sequence");
    cJSON_AddStringToObject(in, "id", special ? special : seq);
    cJSON_AddNumberToObject(in, "type_id", type_id);
    cJSON_AddItemToArray(list, o);
}

/* TemplateProcessing as transformers' update_post_processor builds it. */
static cJSON *build_post(const Vocab *v, const Specials *sp) {
    const char *bos = sp->add_bos && sp->bos >= 0 ? v->spell[sp->bos] : NULL;
    const char *eos = sp->add_eos && sp->eos >= 0 ? v->spell[sp->eos] : NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(o, "single"), *pair = cJSON_AddArrayToObject(o, "pair");
    for (int p = 0; p < 2; p++) {
        cJSON *list = p ? pair : single;
        for (int part = 0; part <= p; part++) {
            if (bos) template_piece(list, bos, NULL, part);
            template_piece(list, NULL, part ? "B" : "A", part);
            if (eos) template_piece(list, eos, NULL, part);
        }
    }
    cJSON *st = cJSON_AddObjectToObject(o, "special_tokens");
    int64_t ids[2] = {bos ? sp->bos : -1, eos ? sp->eos : -1};
    for (int k = 0; k < 2; k++) {
        if (ids[k] < 0 || cJSON_GetObjectItemCaseSensitive(st, v->spell[ids[k]])) continue;
        cJSON *e = cJSON_AddObjectToObject(st, v->spell[ids[k]]);
        cJSON_AddStringToObject(e, "id", v->spell[ids[k]]);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(e, "ids"), cJSON_CreateNumber((double)ids[k]));
        cJSON_AddItemToArray(cJSON_AddArrayToObject(e, "tokens"), cJSON_CreateString(v->spell[ids[k]]));
    }
    return o;
}

static int read_id(const Gguf *g, const Vocab *v, const char *key, int64_t *out, OwError *err) {
    *out = -1;
    if (!gguf_find_kv(g, key)) return 0;
    if (gguf_get_count(g, key, out, err) != 0) return -1;
    if (*out >= v->n)
        return ow_fail(err, "%s: %s is %lld, but there are %lld tokens", v->path, key, (long long)*out,
                       (long long)v->n);
    return 0;
}

static int read_flag(const Gguf *g, const char *key, int dflt, int *out, OwError *err) {
    *out = dflt;
    return gguf_find_kv(g, key) ? gguf_get_bool(g, key, out, err) : 0;
}

static int read_specials(const Gguf *g, const Vocab *v, Specials *sp, OwError *err) {
    if (read_id(g, v, "tokenizer.ggml.bos_token_id", &sp->bos, err) != 0 ||
        read_id(g, v, "tokenizer.ggml.eos_token_id", &sp->eos, err) != 0 ||
        read_id(g, v, "tokenizer.ggml.unknown_token_id", &sp->unk, err) != 0 ||
        read_id(g, v, "tokenizer.ggml.padding_token_id", &sp->pad, err) != 0)
        return -1;
    /* llama.cpp adds BOS to a SentencePiece vocabulary that does not say otherwise; transformers follows */
    if (read_flag(g, "tokenizer.ggml.add_bos_token", !v->byte_level, &sp->add_bos, err) != 0 ||
        read_flag(g, "tokenizer.ggml.add_eos_token", 0, &sp->add_eos, err) != 0)
        return -1;
    return 0;
}

static char *print_json(cJSON *root, size_t *len) {
    char *text = cJSON_PrintUnformatted(root);
    OW_CHECK(text != NULL);
    *len = strlen(text);
    char *out = ow_xmalloc(*len + 2);
    memcpy(out, text, *len);
    out[(*len)++] = '\n';
    out[*len] = '\0';
    cJSON_free(text);
    return out;
}

static char *build_config(const Gguf *g, const Vocab *v, const Specials *sp, size_t *len, OwError *err) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddBoolToObject(c, "add_bos_token", sp->add_bos);
    cJSON_AddBoolToObject(c, "add_eos_token", sp->add_eos);
    static const char *const keys[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    int64_t ids[4] = {sp->bos, sp->eos, sp->unk, sp->pad};
    for (int k = 0; k < 4; k++)
        cJSON_AddItemToObject(c, keys[k], ids[k] >= 0 ? cJSON_CreateString(v->spell[ids[k]]) : cJSON_CreateNull());
    if (gguf_find_kv(g, "tokenizer.chat_template")) {
        char *tmpl;
        if (gguf_get_strdup(g, "tokenizer.chat_template", &tmpl, err) != 0) {
            cJSON_Delete(c);
            return NULL;
        }
        cJSON_AddStringToObject(c, "chat_template", tmpl);
        free(tmpl);
    }
    cJSON_AddBoolToObject(c, "clean_up_tokenization_spaces", 0);
    cJSON_AddStringToObject(c, "tokenizer_class", "TokenizersBackend");
    char *out = print_json(c, len);
    cJSON_Delete(c);
    return out;
}

static int build_files(const Gguf *g, Vocab *v, const char *pre, GgufTokenizerFiles *out, OwError *err) {
    Specials sp;
    if (read_specials(g, v, &sp, err) != 0) return -1;
    if (v->nmerges == 0 && !gguf_find_kv(g, "tokenizer.ggml.merges")) derive_merges(v);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON_AddItemToObject(root, "added_tokens", build_added(v, &sp, &out->nadded));
    cJSON_AddNullToObject(root, "normalizer");
    cJSON_AddItemToObject(root, "pre_tokenizer", build_pre(v, pre));
    cJSON_AddItemToObject(root, "post_processor", build_post(v, &sp));
    cJSON_AddItemToObject(root, "decoder", build_decoder(v));
    cJSON_AddItemToObject(root, "model", build_model(v));
    out->tokenizer_json = print_json(root, &out->tokenizer_len);
    cJSON_Delete(root);
    out->ntokens = v->n;
    out->nmerges = v->nmerges;
    out->config_json = build_config(g, v, &sp, &out->config_len, err);
    return out->config_json ? 0 : -1;
}

int tokenizer_files_from_gguf(const Gguf *g, GgufTokenizerFiles *out, OwError *err) {
    memset(out, 0, sizeof *out);
    char *model = NULL, *pre = NULL;
    if (gguf_get_strdup(g, "tokenizer.ggml.model", &model, err) != 0) return -1;
    int rc = 0;
    if (strcmp(model, "gpt2") != 0 && strcmp(model, "llama") != 0)
        rc = ow_fail(err,
                     "%s: key \"tokenizer.ggml.model\" is \"%s\"; owlore rebuilds \"gpt2\" (byte-level BPE) and "
                     "\"llama\" (SentencePiece) tokenizers",
                     g->file.path, model);
    if (rc == 0 && gguf_find_kv(g, "tokenizer.ggml.pre")) rc = gguf_get_strdup(g, "tokenizer.ggml.pre", &pre, err);
    Vocab v = {.path = g->file.path, .byte_level = strcmp(model, "gpt2") == 0};
    if (rc == 0) rc = read_vocab(g, &v, err);
    if (rc == 0) rc = build_files(g, &v, pre, out, err);
    if (rc == 0) snprintf(out->model, sizeof out->model, "%s", model);
    vocab_free(&v);
    free(model);
    free(pre);
    if (rc != 0) tokenizer_files_free(out);
    return rc;
}

void tokenizer_files_free(GgufTokenizerFiles *f) {
    free(f->tokenizer_json);
    free(f->config_json);
    memset(f, 0, sizeof *f);
}
