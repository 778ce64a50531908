/* tokenizer.c: the tokenizer's public API: loading (file, directory, memory),
 * the encode pipeline, decoding and lookups.
 *
 * Encode pipeline, as tokenizers' TokenizerImpl::encode:
 *   0. invalid UTF-8 replaced by U+FFFD (see tokenizer.h);
 *   1. split on non-normalized added tokens (raw text);
 *   2. each remaining piece normalized on its own, then split on normalized
 *      added tokens;
 *   3. each remaining piece pre-tokenized, each pre-token through BPE;
 *   4. the template's ids around the result when add_special.
 * An empty text has no pieces, so it encodes to the template ids only. */
#include "data/tokenizer.h"

#include "core/fileio.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/log.h"
#include "data/tok_internal.h"

#include <stdlib.h>
#include <string.h>

void idvec_push(IdVec *v, int32_t id) {
    if (v->len == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 256;
        v->data = ow_xrealloc(v->data, v->cap * sizeof *v->data);
    }
    v->data[v->len++] = id;
}

void idvec_free(IdVec *v) {
    free(v->data);
    memset(v, 0, sizeof *v);
}

/* ---- loading ---- */

static Tokenizer *tokenizer_new(const char *path, const char *json, size_t len) {
    Tokenizer *tok = ow_xcalloc(1, sizeof *tok);
    tok->path = ow_xstrdup(path);
    tok->hash = xxh64(json, len, 0);
    tok->bos_id = tok->eos_id = -1;
    bpe_init(&tok->bpe);
    added_init(&tok->added);
    return tok;
}

void tokenizer_free(Tokenizer *tok) {
    if (!tok) return;
    bpe_free(&tok->bpe);
    added_free(&tok->added);
    for (size_t i = 0; i < tok->n_norm; i++) {
        free(tok->norm[i].a);
        free(tok->norm[i].b);
    }
    free(tok->norm);
    for (size_t i = 0; i < tok->n_stages; i++)
        if (tok->stages[i].re != tok->gpt2_re) tokregex_free(tok->stages[i].re);
    tokregex_free(tok->gpt2_re);
    free(tok->tmpl_before);
    free(tok->tmpl_after);
    for (size_t i = 0; i < tok->n_dec; i++) {
        free(tok->dec[i].a);
        free(tok->dec[i].b);
    }
    free(tok->dec);
    free(tok->path);
    free(tok);
}

int tokenizer_load_from_memory(const char *json, size_t len, const char *name, Tokenizer **out, OwError *err) {
    *out = NULL;
    Tokenizer *tok = tokenizer_new(name, json, len);
    if (tokenizer_parse(tok, json, len, err) != 0) {
        tokenizer_free(tok);
        return -1;
    }
    *out = tok;
    return 0;
}

/* "bos_token"/"eos_token" of a transformers config: a string or {"content": ...}. */
static int config_token(const Tokenizer *tok, const cJSON *cfg, const char *key, const char *file, int32_t *id,
                        OwError *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(v))
        return ow_fail(err, "%s: \"%s\" must be a token string or an object with \"content\"", file, key);
    int32_t t = tokenizer_token_id(tok, v->valuestring);
    if (t < 0)
        return ow_fail(err, "%s: %s \"%s\" is not a token of the tokenizer.json beside it", file, key, v->valuestring);
    *id = t;
    return 0;
}

static int read_special_config(Tokenizer *tok, const char *dir, OwError *err) {
    static const char *const names[] = {"special_tokens_map.json", "tokenizer_config.json"}; /* later wins */
    for (int k = 0; k < 2; k++) {
        char *p = ow_path_join(dir, names[k]);
        if (!ow_path_exists(p)) {
            free(p);
            continue;
        }
        cJSON *cfg = json_parse_file_max(p, OW_JSON_CONFIG_MAX, err);
        if (!cfg) {
            free(p);
            return -1;
        }
        int rc = cJSON_IsObject(cfg) ? 0 : ow_fail(err, "%s: expected a JSON object", p);
        if (rc == 0) rc = config_token(tok, cfg, "bos_token", p, &tok->bos_id, err);
        if (rc == 0) rc = config_token(tok, cfg, "eos_token", p, &tok->eos_id, err);
        cJSON_Delete(cfg);
        free(p);
        if (rc != 0) return -1;
    }
    return 0;
}

int tokenizer_load_from_text(const char *json, size_t len, const char *file, Tokenizer **out, OwError *err) {
    *out = NULL;
    Tokenizer *tok = tokenizer_new(file, json, len);
    int rc = tokenizer_parse(tok, json, len, err);
    if (rc == 0) {
        char *dir = ow_path_dirname(file);
        rc = read_special_config(tok, dir, err);
        free(dir);
    }
    if (rc != 0) {
        tokenizer_free(tok);
        return -1;
    }
    *out = tok;
    return 0;
}

int tokenizer_load(const char *path_or_dir, Tokenizer **out, OwError *err) {
    *out = NULL;
    char *file = ow_is_dir(path_or_dir) ? ow_path_join(path_or_dir, "tokenizer.json") : ow_xstrdup(path_or_dir);
    if (!ow_path_exists(file)) {
        int rc = ow_is_dir(path_or_dir) ? ow_fail(err,
                                                  "%s: no tokenizer.json in this directory (hint: pass the Hugging "
                                                  "Face model directory or the file itself)",
                                                  path_or_dir)
                                        : ow_fail(err, "%s: no such file", path_or_dir);
        free(file);
        return rc;
    }
    MappedFile mf;
    if (ow_map_file(file, &mf, err) != 0) {
        free(file);
        return -1;
    }
    if (mf.size > OW_JSON_FILE_MAX) {
        int rc = ow_fail(
            err, "%s: %zu bytes, more than the %zu bytes a tokenizer.json may have (hint: is it the right file?)", file,
            mf.size, OW_JSON_FILE_MAX);
        ow_unmap_file(&mf);
        free(file);
        return rc;
    }
    int rc = tokenizer_load_from_text(mf.data ? (const char *)mf.data : "", mf.size, file, out, err);
    ow_unmap_file(&mf);
    free(file);
    return rc;
}

/* ---- work ---- */

TokenizerWork *tokenizer_work_new(void) { return ow_xcalloc(1, sizeof(TokenizerWork)); }

void tokenizer_work_free(TokenizerWork *w) {
    if (!w) return;
    tokbuf_free(&w->clean);
    tokbuf_free(&w->norm);
    for (int k = 0; k < TOK_MAX_STAGES; k++) {
        tokbuf_free(&w->stage_buf[k]);
    }
    tokspans_free(&w->outer);
    tokspans_free(&w->inner);
    if (w->md) pcre2_match_data_free(w->md);
    if (w->mctx) pcre2_match_context_free(w->mctx);
    if (w->jit_stack) pcre2_jit_stack_free(w->jit_stack);
    free(w->sym_id);
    free(w->sym_prev);
    free(w->sym_next);
    free(w->sym_start);
    free(w->heap_key);
    free(w->heap_new);
    tokcache_free(w->cache);
    free(w);
}

void tokwork_bind(TokenizerWork *w, const Tokenizer *tok) {
    if (w->owner == tok && w->owner_hash == tok->hash) return;
    tokcache_free(w->cache);
    w->cache = NULL;
    w->owner = tok;
    w->owner_hash = tok->hash;
}

/* ---- encoding ---- */

typedef struct EmitCtx {
    const Tokenizer *tok;
    TokenizerWork *w;
    IdVec *out;
} EmitCtx;

static void emit_model(void *ctx, const char *s, size_t n) {
    EmitCtx *e = ctx;
    bpe_encode_word(&e->tok->bpe, e->w, s, n, e->out);
}

int tokenizer_encode_with(const Tokenizer *tok, TokenizerWork *w, const char *text, size_t len, int add_special,
                          IdVec *out, OwError *err) {
    tokwork_bind(w, tok);
    out->len = 0;
    if (len > ((size_t)1 << 30))
        return ow_fail(err, "%s: a text of %zu bytes: owlore encodes at most 1 GiB in one call (split the text)",
                       tok->path, len);
    if (add_special)
        for (size_t i = 0; i < tok->n_before; i++) idvec_push(out, tok->tmpl_before[i]);
    const char *s = text;
    size_t n = len;
    if (utf8_valid_prefix(text, len) != len) {
        w->clean.len = 0;
        utf8_append_lossy(&w->clean, text, len);
        s = w->clean.data;
        n = w->clean.len;
    }
    EmitCtx ec = {tok, w, out};
    added_split(&tok->added, &tok->added.raw, w, s, n, &w->outer);
    for (size_t i = 0; i < w->outer.len; i++) {
        TokSpan sp = w->outer.data[i];
        if (sp.id >= 0) {
            idvec_push(out, sp.id);
            continue;
        }
        if (sp.end <= sp.start) continue;
        const char *p = s + sp.start;
        size_t pn = sp.end - sp.start;
        if (tok->n_norm) {
            normalize_apply(tok, p, pn, &w->norm);
            p = w->norm.data;
            pn = w->norm.len;
        }
        added_split(&tok->added, &tok->added.norm, w, p, pn, &w->inner);
        for (size_t j = 0; j < w->inner.len; j++) {
            TokSpan q = w->inner.data[j];
            if (q.id >= 0) {
                idvec_push(out, q.id);
                continue;
            }
            if (q.end <= q.start) continue;
            int is_first = sp.start == 0 && q.start == 0;
            if (pretok_run(tok, w, p + q.start, q.end - q.start, is_first, emit_model, &ec, err) != 0)
                return ow_fail_prefix(err, "%s: encoding", tok->path);
        }
    }
    if (add_special)
        for (size_t i = 0; i < tok->n_after; i++) idvec_push(out, tok->tmpl_after[i]);
    return 0;
}

int tokenizer_encode(const Tokenizer *tok, const char *text, size_t len, int add_special, IdVec *out, OwError *err) {
    TokenizerWork *w = tokenizer_work_new();
    int rc = tokenizer_encode_with(tok, w, text, len, add_special, out, err);
    tokenizer_work_free(w);
    return rc;
}

typedef struct PieceCtx {
    const char *base;
    TokenizerSpanFn fn;
    void *ctx;
} PieceCtx;

static void emit_piece(void *ctx, const char *s, size_t n) {
    PieceCtx *c = ctx;
    c->fn(c->ctx, (size_t)(s - c->base), (size_t)(s - c->base) + n);
}

int tokenizer_pre_tokenize(const Tokenizer *tok, TokenizerWork *w, const char *text, size_t len, TokenizerSpanFn fn,
                           void *ctx, OwError *err) {
    for (size_t i = 0; i < tok->n_stages; i++) {
        const PreTokStage *st = &tok->stages[i];
        if (st->kind == PT_METASPACE || (st->kind == PT_BYTELEVEL && st->add_prefix_space))
            return ow_fail(err,
                           "%s: the pre-tokenizer rewrites the text (Metaspace or a prefix space), so it has no spans "
                           "in the input",
                           tok->path);
    }
    if (utf8_valid_prefix(text, len) != len) return ow_fail(err, "tokenizer_pre_tokenize: the text is not valid UTF-8");
    tokwork_bind(w, tok);
    PieceCtx pc = {text, fn, ctx};
    return pretok_run(tok, w, text, len, 1, emit_piece, &pc, err);
}

/* ---- decoding and lookups ---- */

const char *tokenizer_id_to_token(const Tokenizer *tok, int32_t id) {
    const AddedToken *t = added_by_id(&tok->added, id);
    if (t) return t->norm ? t->norm : t->content;
    if (id >= 0 && id < tok->bpe.n_ids) return tok->bpe.id_str[id];
    return NULL;
}

int32_t tokenizer_token_id(const Tokenizer *tok, const char *token) {
    size_t n = strlen(token);
    int32_t i = strmap_get(&tok->added.by_content, token, n);
    if (i >= 0) return tok->added.toks[i].id;
    return strmap_get(&tok->bpe.vocab, token, n);
}

int tokenizer_is_special(const Tokenizer *tok, int32_t id) {
    const char *s = tokenizer_id_to_token(tok, id);
    return s && strmap_get(&tok->added.special, s, strlen(s)) >= 0;
}

int tokenizer_decode(const Tokenizer *tok, const int32_t *ids, size_t n, int skip_special, char **text, size_t *len,
                     OwError *err) {
    *text = NULL;
    if (len) *len = 0;
    const char **strs = ow_xmalloc((n ? n : 1) * sizeof *strs);
    size_t *lens = ow_xmalloc((n ? n : 1) * sizeof *lens);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = tokenizer_id_to_token(tok, ids[i]);
        if (!s) {
            free(strs);
            free(lens);
            return ow_fail(err, "%s: id %d (position %zu) is not a token of this tokenizer (ids run from 0 to %lld)",
                           tok->path, ids[i], i, (long long)tok->vocab_size - 1);
        }
        size_t sl = strlen(s);
        if (skip_special && strmap_get(&tok->added.special, s, sl) >= 0) continue;
        strs[k] = s;
        lens[k] = sl;
        k++;
    }
    TokBuf out = {0};
    int rc = decode_tokens(tok, strs, lens, k, &out, err);
    free(strs);
    free(lens);
    if (rc != 0) {
        tokbuf_free(&out);
        return -1;
    }
    *text = out.data;
    if (len) *len = out.len;
    return 0;
}

int64_t tokenizer_vocab_size(const Tokenizer *tok) { return tok->vocab_size; }
int32_t tokenizer_bos_id(const Tokenizer *tok) { return tok->bos_id; }
int32_t tokenizer_eos_id(const Tokenizer *tok) { return tok->eos_id; }
uint64_t tokenizer_hash(const Tokenizer *tok) { return tok->hash; }

void tokenizer_template(const Tokenizer *tok, const int32_t **before, size_t *n_before, const int32_t **after,
                        size_t *n_after) {
    *before = tok->tmpl_before;
    *n_before = tok->n_before;
    *after = tok->tmpl_after;
    *n_after = tok->n_after;
}
const char *tokenizer_path(const Tokenizer *tok) { return tok->path; }
