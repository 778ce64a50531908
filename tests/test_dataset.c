/* test_dataset.c: dataset files to ids and loss masks, against transformers
 * (tests/fixtures/data, made by tests/reference/make_chat_fixtures.py):
 * chat templates (llama2, mistral, chatml, llama3) = apply_chat_template ids
 * and its assistant-token masks; alpaca = Stanford's prompt and masking;
 * text records and .txt documents = tok(text) + EOS; tokenizer_mode
 * transformers = AutoTokenizer's encode. Also format detection, JSON arrays,
 * train_on_prompt, the source hash and the transformers rebuild's scope. */
#include "core/fileio.h"
#include "core/hash.h"
#include "core/json.h"
#include "data/dataset.h"
#include "test_support.h"
#include "tok_fixtures.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

typedef struct TokCache {
    char *path[8];
    Tokenizer *tok[8];
    int n;
    TfRegistry *reg;
} TokCache;

/* a case's tokenizer: "data/real/..." under ../shared, or "registry:NAME" (tok_fixtures) */
static Tokenizer *get_tok(TokCache *c, const char *path) {
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->path[i], path) == 0) return c->tok[i];
    char *p;
    if (strncmp(path, "registry:", 9) == 0) {
        if (!c->reg) c->reg = tf_registry_open();
        p = strdup(tf_path(c->reg, path + 9));
    } else {
        p = ts_shared_path(path);
    }
    Tokenizer *tok;
    OwError err;
    cr_assert_eq(tokenizer_load_mode(p, TOKENIZER_MODE_TRANSFORMERS, &tok, NULL, &err), 0, "%s", err.msg);
    free(p);
    cr_assert_lt(c->n, 8);
    c->path[c->n] = strdup(path);
    c->tok[c->n++] = tok;
    return tok;
}

static void cache_free(TokCache *c) {
    for (int i = 0; i < c->n; i++) {
        free(c->path[i]);
        tokenizer_free(c->tok[i]);
    }
    if (c->reg) tf_registry_close(c->reg);
}

static cJSON *load_expected(void) {
    char *p = ts_fixture_path("data/expected.json");
    OwError err;
    cJSON *j = json_parse_file(p, &err);
    cr_assert(j, "%s", err.msg);
    free(p);
    return j;
}

static DataFormat format_of(const char *name) {
    static const char *const names[] = {"auto", "text", "jsonl", "alpaca", "chat", "tokens"};
    for (int i = 0; i < 6; i++)
        if (strcmp(names[i], name) == 0) return (DataFormat)i;
    cr_assert_fail("format %s", name);
    return DATA_FORMAT_AUTO;
}

static ChatTemplateKind template_of(const char *name) {
    static const char *const names[] = {"none", "llama2", "llama3", "mistral", "chatml"};
    for (int i = 0; i < 5; i++)
        if (strcmp(names[i], name) == 0) return (ChatTemplateKind)i;
    cr_assert_fail("template %s", name);
    return CHAT_TEMPLATE_NONE;
}

static void case_options(const cJSON *c, DataOptions *o) {
    data_options_defaults(o);
    o->format = format_of(cJSON_GetObjectItem(c, "format")->valuestring);
    const cJSON *t = cJSON_GetObjectItem(c, "chat_template");
    if (t) o->chat_template = template_of(t->valuestring);
    const cJSON *s = cJSON_GetObjectItem(c, "doc_separator");
    if (s) snprintf(o->doc_separator, sizeof o->doc_separator, "%s", s->valuestring);
}

/* Tokenizes a case's file and compares every sample's ids and mask. */
static void check_case(TokCache *tc, const cJSON *c, int train_on_prompt, size_t *n_samples, size_t *n_tokens,
                       size_t *n_mask) {
    Tokenizer *tok = get_tok(tc, cJSON_GetObjectItem(c, "path")->valuestring);
    DataOptions o;
    case_options(c, &o);
    o.train_on_prompt = train_on_prompt;
    char rel[256];
    snprintf(rel, sizeof rel, "data/%s", cJSON_GetObjectItem(c, "data")->valuestring);
    char *path = ts_fixture_path(rel);
    TokData d;
    DataStats st;
    OwError err;
    char label[300];
    snprintf(label, sizeof label, "%s on %s (%s%s%s)", cJSON_GetObjectItem(c, "tokenizer")->valuestring, rel,
             cJSON_GetObjectItem(c, "format")->valuestring, cJSON_GetObjectItem(c, "chat_template") ? ", " : "",
             cJSON_GetObjectItem(c, "chat_template") ? cJSON_GetObjectItem(c, "chat_template")->valuestring : "");
    cr_assert_eq(dataset_tokenize_file(path, tok, &o, &d, &st, &err), 0, "%s: %s", label, err.msg);
    const cJSON *samples = cJSON_GetObjectItem(c, "samples"), *masks = cJSON_GetObjectItem(c, "masks");
    cr_assert_eq(d.ndocs, cJSON_GetArraySize(samples), "%s: %lld samples, expected %d", label, (long long)d.ndocs,
                 cJSON_GetArraySize(samples));
    int with_mask = cJSON_IsArray(masks) && !train_on_prompt;
    cr_assert_eq(d.mask != NULL, with_mask, "%s: a mask only for instruction/chat data without train_on_prompt", label);
    cr_assert_eq(d.tokenizer_hash, tokenizer_hash(tok));
    int k = 0;
    for (const cJSON *s = samples->child; s; s = s->next, k++) {
        size_t ne = (size_t)cJSON_GetArraySize(s);
        int32_t *exp = malloc((ne ? ne : 1) * sizeof *exp);
        size_t j = 0;
        for (const cJSON *x = s->child; x; x = x->next) exp[j++] = (int32_t)x->valuedouble;
        int64_t a = (int64_t)d.doc_offsets[k], b = (int64_t)d.doc_offsets[k + 1];
        int32_t *got = malloc((size_t)(b - a + 1) * sizeof *got);
        for (int64_t i = a; i < b; i++) got[i - a] = tokdata_id(&d, i);
        char msg[4096];
        long at = tf_compare(tok, got, (size_t)(b - a), exp, ne, msg, sizeof msg);
        cr_assert_eq(at, -1, "%s, sample %d: %s", label, k, msg);
        if (with_mask) {
            const char *m = cJSON_GetArrayItem(masks, k)->valuestring;
            cr_assert_eq(strlen(m), ne);
            for (size_t i = 0; i < ne; i++) {
                const char *ts = tokenizer_id_to_token(tok, exp[i]);
                cr_assert_eq(d.mask[a + (int64_t)i], m[i] == '1',
                             "%s, sample %d, token %zu (%d \"%s\"): mask %d, "
                             "transformers' assistant mask %c",
                             label, k, i, exp[i], ts ? ts : "?", d.mask[a + (int64_t)i], m[i]);
                *n_mask += m[i] == '1';
            }
        }
        *n_tokens += ne;
        (*n_samples)++;
        free(got);
        free(exp);
    }
    tokdata_free(&d);
    free(path);
}

Test(dataset, ids_and_masks_equal_transformers, .timeout = 300) {
    cJSON *e = load_expected();
    TokCache tc = {0};
    size_t ns = 0, nt = 0, nm = 0, nc = 0;
    for (const cJSON *c = cJSON_GetObjectItem(e, "cases")->child; c; c = c->next, nc++)
        check_case(&tc, c, 0, &ns, &nt, &nm);
    cr_log_info("%zu cases, %zu samples, %zu tokens, %zu in transformers' loss masks: all equal", nc, ns, nt, nm);
    cr_expect_gt(nm, 300);
    cache_free(&tc);
    cJSON_Delete(e);
}

Test(dataset, train_on_prompt_keeps_the_ids_and_drops_the_mask, .timeout = 120) {
    cJSON *e = load_expected();
    TokCache tc = {0};
    size_t ns = 0, nt = 0, nm = 0;
    for (const cJSON *c = cJSON_GetObjectItem(e, "cases")->child; c; c = c->next)
        if (cJSON_IsArray(cJSON_GetObjectItem(c, "masks")) &&
            strcmp(cJSON_GetObjectItem(c, "tokenizer")->valuestring, "mistral") == 0)
            check_case(&tc, c, 1, &ns, &nt, &nm);
    cr_assert_gt(ns, 0);
    cache_free(&tc);
    cJSON_Delete(e);
}

Test(dataset, tokenizer_mode_transformers_encodes_as_autotokenizer, .timeout = 120) {
    cJSON *e = load_expected();
    TokCache tc = {0};
    size_t n = 0;
    for (const cJSON *c = cJSON_GetObjectItem(e, "encodes")->child; c; c = c->next, n++) {
        Tokenizer *tok = get_tok(&tc, cJSON_GetObjectItem(c, "path")->valuestring);
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        int add = cJSON_IsTrue(cJSON_GetObjectItem(c, "add_special"));
        IdVec ids = {0};
        OwError err;
        cr_assert_eq(tokenizer_encode(tok, text, strlen(text), add, &ids, &err), 0, "%s", err.msg);
        const cJSON *x = cJSON_GetObjectItem(c, "ids");
        size_t ne = (size_t)cJSON_GetArraySize(x), j = 0;
        int32_t exp[256];
        cr_assert_leq(ne, 256);
        for (const cJSON *y = x->child; y; y = y->next) exp[j++] = (int32_t)y->valuedouble;
        char msg[4096];
        cr_assert_eq(tf_compare(tok, ids.data, ids.len, exp, ne, msg, sizeof msg), -1,
                     "%s, \"%s\" (add_special %d): %s", cJSON_GetObjectItem(c, "path")->valuestring, text, add, msg);
        idvec_free(&ids);
    }
    cr_log_info("%zu encodes equal", n);
    cache_free(&tc);
    cJSON_Delete(e);
}

/* The rebuild applies to LlamaTokenizer configs only; the hash tells the modes apart. */
Test(dataset, tokenizer_mode_scope_and_hash) {
    char *dir = ts_shared_path("data/real/tokenizers/llama2-tinyllama");
    char *file = ow_path_join(dir, "tokenizer.json");
    char *bytes;
    size_t len;
    OwError err;
    cr_assert_eq(ow_read_file(file, &bytes, &len, &err), 0);
    Tokenizer *a, *b;
    int rb = -1;
    cr_assert_eq(tokenizer_load_mode(dir, TOKENIZER_MODE_TOKENIZERS, &a, &rb, &err), 0, "%s", err.msg);
    cr_assert_eq(rb, 0);
    cr_assert_eq(tokenizer_hash(a), xxh64(bytes, len, 0), "tokenizers mode is the file as is");
    cr_assert_eq(tokenizer_load_mode(dir, TOKENIZER_MODE_TRANSFORMERS, &b, &rb, &err), 0, "%s", err.msg);
    cr_assert_eq(rb, 1);
    cr_assert_neq(tokenizer_hash(a), tokenizer_hash(b));
    IdVec x = {0}, y = {0};
    cr_assert_eq(tokenizer_encode(a, "<s> hi", 6, 0, &x, &err), 0);
    cr_assert_eq(tokenizer_encode(b, "<s> hi", 6, 0, &y, &err), 0);
    cr_assert(x.len != y.len || memcmp(x.data, y.data, x.len * 4) != 0, "the modes differ after a special token");
    idvec_free(&x);
    idvec_free(&y);
    tokenizer_free(a);
    tokenizer_free(b);
    /* a tokenizer.json without tokenizer_config.json beside it loads as is */
    char *tmp = ts_tmpdir();
    char *copy = ow_path_join(tmp, "tokenizer.json");
    ts_write_file(copy, bytes, len);
    cr_assert_eq(tokenizer_load_mode(tmp, TOKENIZER_MODE_TRANSFORMERS, &a, &rb, &err), 0, "%s", err.msg);
    cr_assert_eq(rb, 0);
    cr_assert_eq(tokenizer_hash(a), xxh64(bytes, len, 0));
    tokenizer_free(a);
    /* nor with a config naming another class */
    char *cfg = ow_path_join(tmp, "tokenizer_config.json");
    const char *c1 = "{\"tokenizer_class\": \"PreTrainedTokenizerFast\", \"bos_token\": \"<s>\"}";
    ts_write_file(cfg, c1, strlen(c1));
    cr_assert_eq(tokenizer_load_mode(tmp, TOKENIZER_MODE_TRANSFORMERS, &a, &rb, &err), 0, "%s", err.msg);
    cr_assert_eq(rb, 0);
    tokenizer_free(a);
    /* add_bos_token/add_eos_token rebuild the template; legacy true prepends after every special token */
    const char *c2 = "{\"tokenizer_class\": \"LlamaTokenizer\", \"bos_token\": \"<s>\", \"eos_token\": \"</s>\", "
                     "\"add_bos_token\": false, \"add_eos_token\": true, \"legacy\": true}";
    ts_write_file(cfg, c2, strlen(c2));
    cr_assert_eq(tokenizer_load_mode(tmp, TOKENIZER_MODE_TRANSFORMERS, &a, &rb, &err), 0, "%s", err.msg);
    cr_assert_eq(rb, 1);
    cr_assert_eq(tokenizer_encode(a, "hi</s>hi", 8, 1, &x, &err), 0);
    /* ▁hi </s> ▁hi </s>: "always" puts ▁ before the piece after </s>; no BOS, an EOS */
    cr_assert_eq(x.len, 4, "got %zu ids", x.len);
    cr_assert_eq(x.data[0], x.data[2]);
    cr_assert_eq(x.data[1], 2);
    cr_assert_eq(x.data[3], 2);
    idvec_free(&x);
    tokenizer_free(a);
    /* a broken config is an error naming it */
    const char *c3 = "{\"tokenizer_class\": \"LlamaTokenizer\", \"legacy\": 3}";
    ts_write_file(cfg, c3, strlen(c3));
    cr_assert_eq(tokenizer_load_mode(tmp, TOKENIZER_MODE_TRANSFORMERS, &a, &rb, &err), -1);
    cr_assert(strstr(err.msg, "tokenizer_config.json") && strstr(err.msg, "legacy"), "%s", err.msg);
    ts_rmtree(tmp);
    free(tmp);
    free(cfg);
    free(copy);
    free(bytes);
    free(file);
    free(dir);
}

static char *write_tmp(const char *dir, const char *name, const char *text) {
    char *p = ow_path_join(dir, name);
    ts_write_file(p, text, strlen(text));
    return p;
}

Test(dataset, format_detection) {
    char *dir = ts_tmpdir();
    struct {
        const char *name, *text;
        DataFormat want;
    } cases[] = {
        {"a.txt", "{\"messages\": []}\n", DATA_FORMAT_TEXT}, /* the extension decides */
        {"a.jsonl", "\n{bad\n{\"messages\": [], \"text\": \"x\"}\n", DATA_FORMAT_CHAT},
        {"b.jsonl", "{\"instruction\": \"i\", \"output\": \"o\"}\n", DATA_FORMAT_ALPACA},
        {"c.jsonl", "{\"text\": \"t\", \"meta\": 1}\n", DATA_FORMAT_JSONL},
        {"d.json", "[{\"instruction\": \"i\", \"input\": \"\", \"output\": \"o\"}]", DATA_FORMAT_ALPACA},
        {"e.data", "  {\"text\": \"t\"}\n", DATA_FORMAT_JSONL},
        {"f.data", "plain words\n", DATA_FORMAT_TEXT},
        {"g", "OWLTOKS", DATA_FORMAT_TEXT}, /* 7 bytes: not the 8-byte magic */
        {"h.bin", "anything", DATA_FORMAT_TOKENS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = write_tmp(dir, cases[i].name, cases[i].text);
        DataFormat f;
        OwError err;
        cr_assert_eq(dataset_detect_format(p, &f, &err), 0, "%s: %s", cases[i].name, err.msg);
        cr_assert_eq(f, cases[i].want, "%s: detected %s, expected %s", cases[i].name, data_format_name(f),
                     data_format_name(cases[i].want));
        free(p);
    }
    char *p = write_tmp(dir, "x.jsonl", "{\"prompt\": \"p\", \"completion\": \"c\"}\n");
    DataFormat f;
    OwError err;
    cr_assert_eq(dataset_detect_format(p, &f, &err), -1);
    cr_assert(strstr(err.msg, "x.jsonl") && strstr(err.msg, "line 1") && strstr(err.msg, "\"prompt\"") &&
                  strstr(err.msg, "--format"),
              "%s", err.msg);
    free(p);
    p = write_tmp(dir, "y.jsonl", "not json\n[1, 2]\n");
    cr_assert_eq(dataset_detect_format(p, &f, &err), -1);
    cr_assert(strstr(err.msg, "no line is a JSON object"), "%s", err.msg);
    free(p);
    ts_rmtree(dir);
    free(dir);
}

/* A JSON array of records gives what the same records as JSON lines give. */
Test(dataset, json_array_equals_json_lines) {
    char *ts = ts_shared_path("data/real/hf/TinyStories-656K");
    Tokenizer *tok;
    OwError err;
    cr_assert_eq(tokenizer_load_mode(ts, TOKENIZER_MODE_TRANSFORMERS, &tok, NULL, &err), 0, "%s", err.msg);
    const char *lines =
        "{\"instruction\": \"Say hi\", \"output\": \"hi\"}\n{\"instruction\": \"Count\", \"input\": \"1 2\", "
        "\"output\": \"3 4\"}\n";
    const char *array =
        "[{\"instruction\": \"Say hi\", \"output\": \"hi\"},\n {\"instruction\": \"Count\", \"input\": \"1 2\", "
        "\"output\": \"3 4\"}]";
    DataOptions o;
    data_options_defaults(&o);
    TokData a, b;
    cr_assert_eq(dataset_tokenize_buffer("a.jsonl", lines, strlen(lines), tok, &o, &a, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(dataset_tokenize_buffer("b.json", array, strlen(array), tok, &o, &b, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(a.count, b.count);
    cr_assert_eq(a.ndocs, 2);
    cr_assert_eq(b.ndocs, 2);
    cr_assert(a.mask && b.mask);
    for (int64_t i = 0; i < a.count; i++) {
        cr_assert_eq(tokdata_id(&a, i), tokdata_id(&b, i));
        cr_assert_eq(a.mask[i], b.mask[i]);
    }
    cr_assert_neq(a.source_hash, b.source_hash, "other bytes, other source");
    tokdata_free(&a);
    tokdata_free(&b);
    tokenizer_free(tok);
    free(ts);
}

/* The source hash covers the bytes and the keys that change the result, nothing else. */
Test(dataset, source_hash_follows_the_data_keys) {
    char *ts = ts_shared_path("data/real/hf/TinyStories-656K");
    Tokenizer *tok;
    OwError err;
    cr_assert_eq(tokenizer_load_mode(ts, TOKENIZER_MODE_TRANSFORMERS, &tok, NULL, &err), 0, "%s", err.msg);
    char *dir = ts_tmpdir();
    char *p = write_tmp(dir, "d.txt", "one\n<|endoftext|>\ntwo\n");
    DataOptions o;
    data_options_defaults(&o);
    uint64_t h0, h;
    cr_assert_eq(dataset_source_hash(p, tok, &o, &h0, &err), 0, "%s", err.msg);
    TokData d;
    cr_assert_eq(dataset_tokenize_file(p, tok, &o, &d, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(d.source_hash, h0, "the hash in the data is dataset_source_hash");
    cr_assert_eq(d.ndocs, 1, "no separator: one document");
    tokdata_free(&d);
    o.strict = 1;
    o.chat_template = CHAT_TEMPLATE_LLAMA2; /* not used by text data */
    cr_assert_eq(dataset_source_hash(p, tok, &o, &h, &err), 0);
    cr_assert_eq(h, h0, "strict and chat_template do not change text data");
    snprintf(o.doc_separator, sizeof o.doc_separator, "<|endoftext|>");
    cr_assert_eq(dataset_source_hash(p, tok, &o, &h, &err), 0);
    cr_assert_neq(h, h0, "the separator does");
    cr_assert_eq(dataset_tokenize_file(p, tok, &o, &d, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(d.ndocs, 2);
    tokdata_free(&d);
    o.append_eos = 0;
    uint64_t h2;
    cr_assert_eq(dataset_source_hash(p, tok, &o, &h2, &err), 0);
    cr_assert_neq(h2, h, "append_eos does");
    ts_write_file(p, "one\n<|endoftext|>\ntwo!\n", 23);
    cr_assert_eq(dataset_source_hash(p, tok, &o, &h, &err), 0);
    cr_assert_neq(h, h2, "the bytes do");
    free(p);
    ts_rmtree(dir);
    free(dir);
    tokenizer_free(tok);
    free(ts);
}
