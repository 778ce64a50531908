/* tokenizer_mode.c: see tokenizer_mode.h. The transformers rebuild is done on
 * the JSON: the tokenizer.json is parsed, its pipeline keys replaced by the
 * ones LlamaTokenizer builds, printed again and loaded from memory (the
 * printed text is deterministic, so its hash identifies the rebuilt
 * tokenizer). */
#include "data/tokenizer_mode.h"

#include "core/fileio.h"
#include "core/json.h"

#include <stdlib.h>
#include <string.h>

const char *const tokenizer_mode_names[] = {"transformers", "tokenizers", NULL};

const char *tokenizer_mode_name(TokenizerMode mode) {
    return tokenizer_mode_names[mode == TOKENIZER_MODE_TOKENIZERS ? TOKENIZER_MODE_TOKENIZERS
                                                                  : TOKENIZER_MODE_TRANSFORMERS];
}

/* config value: a string, or {"content": string}; NULL when absent/null. */
static const char *config_token(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (v && cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return v && cJSON_IsString(v) ? v->valuestring : NULL;
}

/* a boolean config key: 1/0, or `dflt` when absent or null; -1 when of another type */
static int config_bool(const cJSON *cfg, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v || cJSON_IsNull(v)) return dflt;
    if (!cJSON_IsBool(v)) return -1;
    return cJSON_IsTrue(v);
}

static int is_llama_class(const cJSON *cfg) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(cfg, "tokenizer_class");
    return cJSON_IsString(c) &&
           (strcmp(c->valuestring, "LlamaTokenizer") == 0 || strcmp(c->valuestring, "LlamaTokenizerFast") == 0);
}

/* 1 when the pre-tokenizer is, or contains, ByteLevel (transformers then keeps the generic backend) */
static int has_byte_level(const cJSON *pre) {
    if (!cJSON_IsObject(pre)) return 0;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(pre, "type");
    if (cJSON_IsString(t) && strcmp(t->valuestring, "ByteLevel") == 0) return 1;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
    if (cJSON_IsArray(list))
        for (const cJSON *it = list->child; it; it = it->next)
            if (has_byte_level(it)) return 1;
    return 0;
}

static void set_item(cJSON *obj, const char *key, cJSON *value) {
    if (cJSON_GetObjectItemCaseSensitive(obj, key))
        cJSON_ReplaceItemInObjectCaseSensitive(obj, key, value);
    else
        cJSON_AddItemToObject(obj, key, value);
}

static cJSON *piece(const char *kind, const char *id, int type_id) {
    cJSON *o = cJSON_CreateObject(), *b = cJSON_AddObjectToObject(o, kind);
    cJSON_AddStringToObject(b, "id", id);
    cJSON_AddNumberToObject(b, "type_id", type_id);
    return o;
}

static void add_special(cJSON *specials, const char *tok, int32_t id) {
    if (cJSON_GetObjectItemCaseSensitive(specials, tok)) return;
    cJSON *s = cJSON_AddObjectToObject(specials, tok);
    cJSON_AddStringToObject(s, "id", tok);
    cJSON *ids = cJSON_AddArrayToObject(s, "ids");
    cJSON_AddItemToArray(ids, cJSON_CreateNumber(id));
    cJSON *toks = cJSON_AddArrayToObject(s, "tokens");
    cJSON_AddItemToArray(toks, cJSON_CreateString(tok));
}

/* id of a token string: an added token's, else the vocabulary's; -1 when absent */
static int32_t lookup_id(const cJSON *added, const cJSON *vocab, const char *tok) {
    for (const cJSON *it = added ? added->child : NULL; it; it = it->next) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content"),
                    *i = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (cJSON_IsString(c) && cJSON_IsNumber(i) && strcmp(c->valuestring, tok) == 0) return (int32_t)i->valuedouble;
    }
    const cJSON *v = vocab ? cJSON_GetObjectItemCaseSensitive(vocab, tok) : NULL;
    return cJSON_IsNumber(v) ? (int32_t)v->valuedouble : -1;
}

/* TemplateProcessing "[bos:0] $A:0 [eos:0]" / "... [bos:1] $B:1 [eos:1]" (transformers' update_post_processor) */
static int build_post(const cJSON *cfg, const cJSON *added, const cJSON *vocab, const char *cfg_path, cJSON **out,
                      OwError *err) {
    int add_bos = config_bool(cfg, "add_bos_token", 0), add_eos = config_bool(cfg, "add_eos_token", 0);
    if (add_bos < 0 || add_eos < 0)
        return ow_fail(err, "%s: add_bos_token and add_eos_token must be true or false", cfg_path);
    const char *bos = add_bos ? config_token(cfg, "bos_token") : NULL;
    const char *eos = add_eos ? config_token(cfg, "eos_token") : NULL;
    int32_t bos_id = bos ? lookup_id(added, vocab, bos) : -1, eos_id = eos ? lookup_id(added, vocab, eos) : -1;
    if ((bos && bos_id < 0) || (eos && eos_id < 0))
        return ow_fail(err, "%s: the %s \"%s\" is not a token of the tokenizer.json beside it", cfg_path,
                       bos && bos_id < 0 ? "bos_token" : "eos_token", bos && bos_id < 0 ? bos : eos);
    cJSON *pp = cJSON_CreateObject();
    cJSON_AddStringToObject(pp, "type", "TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(pp, "single"), *pair = cJSON_AddArrayToObject(pp, "pair");
    cJSON *specials = cJSON_AddObjectToObject(pp, "special_tokens");
    for (int part = 0; part < 2; part++) {
        cJSON *dst = part == 0 ? single : pair;
        for (int seq = 0; seq <= part; seq++) {
            if (bos) cJSON_AddItemToArray(dst, piece("SpecialToken", bos, seq));
            cJSON_AddItemToArray(dst, piece("Sequence", seq ? "B" : "A", seq));
            if (eos) cJSON_AddItemToArray(dst, piece("SpecialToken", eos, seq));
        }
    }
    if (bos) add_special(specials, bos, bos_id);
    if (eos) add_special(specials, eos, eos_id);
    *out = pp;
    return 0;
}

/* added_tokens from added_tokens_decoder ({"id": {content, lstrip, ...}}), sorted by id */
static int build_added(const cJSON *decoder, const char *cfg_path, cJSON **out, OwError *err) {
    int n = cJSON_GetArraySize(decoder);
    const cJSON **items = ow_xcalloc((size_t)(n ? n : 1), sizeof *items);
    long *ids = ow_xcalloc((size_t)(n ? n : 1), sizeof *ids);
    int k = 0;
    for (const cJSON *it = decoder->child; it; it = it->next, k++) {
        char *end;
        long id = strtol(it->string, &end, 10);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (*end || end == it->string || id < 0 || id >= (1l << 30) || !cJSON_IsObject(it) || !cJSON_IsString(c)) {
            free(items);
            free(ids);
            return ow_fail(err, "%s: added_tokens_decoder[\"%s\"] must be an id mapped to {\"content\": ...}", cfg_path,
                           it->string);
        }
        int j = k;
        while (j > 0 && ids[j - 1] > id) { /* insertion sort by id */
            ids[j] = ids[j - 1];
            items[j] = items[j - 1];
            j--;
        }
        ids[j] = id;
        items[j] = it;
    }
    cJSON *list = cJSON_CreateArray();
    static const char *const flags[] = {"single_word", "lstrip", "rstrip", "normalized", "special"};
    static const int dflt[] = {0, 0, 0, 1, 0};
    for (int i = 0; i < n; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "id", (double)ids[i]);
        cJSON_AddStringToObject(t, "content", cJSON_GetObjectItemCaseSensitive(items[i], "content")->valuestring);
        for (int f = 0; f < 5; f++) {
            int b = config_bool(items[i], flags[f], dflt[f]);
            if (b < 0) {
                long bad = ids[i];
                cJSON_Delete(t);
                cJSON_Delete(list);
                free(items);
                free(ids);
                return ow_fail(err, "%s: added_tokens_decoder[\"%ld\"].%s must be true or false", cfg_path, bad,
                               flags[f]);
            }
            cJSON_AddBoolToObject(t, flags[f], b);
        }
        cJSON_AddItemToArray(list, t);
    }
    free(items);
    free(ids);
    *out = list;
    return 0;
}

/* the bos/eos/unk/pad tokens named in the config that are not added tokens yet */
static int add_named_specials(const cJSON *cfg, cJSON *added, const cJSON *vocab, const char *cfg_path, OwError *err) {
    static const char *const keys[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    for (int k = 0; k < 4; k++) {
        const char *s = config_token(cfg, keys[k]);
        if (!s) continue;
        int present = 0;
        for (const cJSON *it = added->child; it; it = it->next) {
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
            present |= cJSON_IsString(c) && strcmp(c->valuestring, s) == 0;
        }
        if (present) continue;
        int32_t id = lookup_id(NULL, vocab, s);
        if (id < 0)
            return ow_fail(
                err, "%s: %s \"%s\" is neither an added token nor in the vocabulary of the tokenizer.json beside it",
                cfg_path, keys[k], s);
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "id", id);
        cJSON_AddStringToObject(t, "content", s);
        cJSON_AddBoolToObject(t, "single_word", 0);
        cJSON_AddBoolToObject(t, "lstrip", 0);
        cJSON_AddBoolToObject(t, "rstrip", 0);
        cJSON_AddBoolToObject(t, "normalized", 0);
        cJSON_AddBoolToObject(t, "special", 1);
        cJSON_AddItemToArray(added, t);
    }
    return 0;
}

/* Rewrites root (a parsed tokenizer.json) as LlamaTokenizer does. */
static int rebuild_llama(cJSON *root, const cJSON *cfg, const char *file, const char *cfg_path, OwError *err) {
    cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *type = model ? cJSON_GetObjectItemCaseSensitive(model, "type") : NULL;
    if (!cJSON_IsObject(model) || !cJSON_IsString(type) || strcmp(type->valuestring, "BPE") != 0)
        return ow_fail(
            err,
            "%s: tokenizer_config.json names LlamaTokenizer, which transformers rebuilds as a BPE "
            "tokenizer, but model.type is not \"BPE\" (hint: --tokenizer-mode tokenizers uses the file as is)",
            file);
    int add_prefix_space = config_bool(cfg, "add_prefix_space", 1), legacy = config_bool(cfg, "legacy", 0);
    if (add_prefix_space < 0 || legacy < 0)
        return ow_fail(err, "%s: add_prefix_space and legacy must be true, false or null", cfg_path);
    set_item(model, "dropout", cJSON_CreateNull());
    set_item(model, "unk_token", cJSON_CreateNull());
    set_item(model, "continuing_subword_prefix", cJSON_CreateNull());
    set_item(model, "end_of_word_suffix", cJSON_CreateNull());
    set_item(model, "fuse_unk", cJSON_CreateTrue());
    set_item(model, "byte_fallback", cJSON_CreateTrue());
    set_item(model, "ignore_merges", cJSON_CreateFalse());
    set_item(root, "normalizer", cJSON_CreateNull());
    cJSON *pre = cJSON_CreateObject();
    cJSON_AddStringToObject(pre, "type", "Metaspace");
    cJSON_AddStringToObject(pre, "replacement", "\xe2\x96\x81");
    cJSON_AddStringToObject(pre, "prepend_scheme", !add_prefix_space ? "never" : legacy ? "always" : "first");
    cJSON_AddBoolToObject(pre, "split", 0);
    set_item(root, "pre_tokenizer", pre);
    cJSON *dec = cJSON_CreateObject();
    cJSON_AddStringToObject(dec, "type", "Sequence");
    cJSON *decs = cJSON_AddArrayToObject(dec, "decoders");
    cJSON *rep = cJSON_CreateObject();
    cJSON_AddStringToObject(rep, "type", "Replace");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(rep, "pattern"), "String", "\xe2\x96\x81");
    cJSON_AddStringToObject(rep, "content", " ");
    cJSON_AddItemToArray(decs, rep);
    cJSON *bf = cJSON_CreateObject();
    cJSON_AddStringToObject(bf, "type", "ByteFallback");
    cJSON_AddItemToArray(decs, bf);
    cJSON *fuse = cJSON_CreateObject();
    cJSON_AddStringToObject(fuse, "type", "Fuse");
    cJSON_AddItemToArray(decs, fuse);
    if (add_prefix_space) {
        cJSON *strip = cJSON_CreateObject();
        cJSON_AddStringToObject(strip, "type", "Strip");
        cJSON_AddStringToObject(strip, "content", " ");
        cJSON_AddNumberToObject(strip, "start", 1);
        cJSON_AddNumberToObject(strip, "stop", 0);
        cJSON_AddItemToArray(decs, strip);
    }
    set_item(root, "decoder", dec);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *decoder = cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder");
    if (decoder && !cJSON_IsNull(decoder)) {
        if (!cJSON_IsObject(decoder)) return ow_fail(err, "%s: added_tokens_decoder must be an object", cfg_path);
        cJSON *added = NULL;
        if (build_added(decoder, cfg_path, &added, err) != 0) return -1;
        set_item(root, "added_tokens", added);
    }
    cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsArray(added)) {
        added = cJSON_CreateArray();
        set_item(root, "added_tokens", added);
    }
    if (add_named_specials(cfg, added, vocab, cfg_path, err) != 0) return -1;
    const cJSON *post = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    if (cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token") ||
        cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token") || !post || cJSON_IsNull(post)) {
        cJSON *pp = NULL;
        if (build_post(cfg, added, vocab, cfg_path, &pp, err) != 0) return -1;
        set_item(root, "post_processor", pp);
    }
    return 0;
}

int tokenizer_load_mode(const char *path_or_dir, TokenizerMode mode, Tokenizer **out, int *rebuilt, OwError *err) {
    *out = NULL;
    if (rebuilt) *rebuilt = 0;
    if (mode == TOKENIZER_MODE_TOKENIZERS) return tokenizer_load(path_or_dir, out, err);
    char *file = ow_is_dir(path_or_dir) ? ow_path_join(path_or_dir, "tokenizer.json") : ow_xstrdup(path_or_dir);
    char *dir = ow_path_dirname(file);
    char *cfg_path = ow_path_join(dir, "tokenizer_config.json");
    free(dir);
    cJSON *cfg = NULL, *root = NULL;
    char *text = NULL;
    int rc = -1;
    if (!ow_path_exists(file) || !ow_path_exists(cfg_path)) {
        rc = tokenizer_load(path_or_dir, out, err); /* nothing to rebuild from (or the file is missing: its message) */
        goto done;
    }
    cfg = json_parse_file_max(cfg_path, OW_JSON_CONFIG_MAX, err);
    if (!cfg) goto done;
    if (!cJSON_IsObject(cfg)) {
        ow_fail(err, "%s: expected a JSON object", cfg_path);
        goto done;
    }
    if (!is_llama_class(cfg)) {
        rc = tokenizer_load(path_or_dir, out, err);
        goto done;
    }
    root = json_parse_file(file, err);
    if (!root) goto done;
    if (!cJSON_IsObject(root)) {
        ow_fail(err, "%s: expected a JSON object", file);
        goto done;
    }
    if (has_byte_level(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"))) { /* transformers keeps it as is */
        rc = tokenizer_load(path_or_dir, out, err);
        goto done;
    }
    if (rebuild_llama(root, cfg, file, cfg_path, err) != 0) goto done;
    text = cJSON_PrintUnformatted(root);
    if (!text) {
        ow_fail(err, "%s: cannot serialise the rebuilt tokenizer", file);
        goto done;
    }
    rc = tokenizer_load_from_text(text, strlen(text), file, out, err);
    if (rc != 0) ow_fail_prefix(err, "tokenizer_mode transformers (the tokenizer as transformers rebuilds it)");
    if (rc == 0 && rebuilt) *rebuilt = 1;
done:
    if (text) cJSON_free(text);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    free(cfg_path);
    free(file);
    return rc;
}
