/* test_tokenizer.c: the tokenizer against Hugging Face tokenizers (fixtures
 * from tests/reference/make_tokenizer_fixtures.py): the torture strings on
 * every tokenizer and variant (add_special off and on), decoding, lookups,
 * threads, refusal of what is not implemented, and the encode/decode
 * commands. Whole text files and the regex sweep: test_tokenizer_files.c. */
#include "core/fileio.h"
#include "core/hash.h"
#include "core/json.h"
#include "data/tokenizer.h"
#include "test_support.h"
#include "tok_fixtures.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- encode: torture strings ---- */

Test(tokenizer, torture_strings_match_hf, .timeout = 900) {
    TfFile f;
    tf_load("tokenizer/torture.bin.zst", &f);
    TfRegistry *reg = tf_registry_open();
    TokenizerWork *w = tokenizer_work_new(); /* one work across tokenizers: its cache must follow */
    size_t strings = 0, tokens = 0, failures = 0;
    IdVec ids = {0};
    OwError err;
    for (size_t i = 0; i < f.n; i++) {
        const TfRecord *r = &f.recs[i];
        cr_assert_eq(r->kind, 1);
        cr_assert_eq(xxh64(r->text, r->text_len, 0), r->digest, "%s: input corrupted", r->name);
        Tokenizer *tok = tf_get(reg, r->tok);
        cr_assert(tokenizer_encode_with(tok, w, r->text, r->text_len, r->flag, &ids, &err) == 0, "%s %s: %s", r->tok,
                  r->name, err.msg);
        char msg[4096];
        if (tf_compare(tok, ids.data, ids.len, r->ids, r->n_ids, msg, sizeof msg) >= 0) {
            if (failures++ < 20) cr_log_error("%s / %s (add_special=%d): %s", r->tok, r->name, r->flag, msg);
        }
        strings++;
        tokens += r->n_ids;
    }
    cr_log_info("torture: %zu (tokenizer, string, add_special) cases, %zu tokens compared, %zu different", strings,
                tokens, failures);
    fprintf(stderr, "torture: %zu cases, %zu tokens compared with HF tokenizers, %zu different\n", strings, tokens,
            failures);
    cr_expect_eq(failures, 0, "%zu of %zu torture cases differ from HF tokenizers", failures, strings);
    cr_expect_gt(strings, 5000);
    idvec_free(&ids);
    tokenizer_work_free(w);
    tf_registry_close(reg);
    tf_free(&f);
}

/* ---- decode ---- */

Test(tokenizer, decode_matches_hf, .timeout = 900) {
    TfFile f;
    tf_load("tokenizer/decode.bin.zst", &f);
    TfRegistry *reg = tf_registry_open();
    size_t cases = 0, failures = 0;
    OwError err;
    for (size_t i = 0; i < f.n; i++) {
        const TfRecord *r = &f.recs[i];
        cr_assert_eq(r->kind, 2);
        Tokenizer *tok = tf_get(reg, r->tok);
        char *text;
        size_t len;
        cr_assert(tokenizer_decode(tok, r->ids, r->n_ids, r->flag, &text, &len, &err) == 0, "%s %s: %s", r->tok,
                  r->name, err.msg);
        if (len != r->text_len || memcmp(text, r->text, len) != 0) {
            if (failures++ < 20)
                cr_log_error("%s / %s (skip_special=%d): owlore \"%.200s\" (%zu bytes), HF \"%.*s\" (%zu bytes)",
                             r->tok, r->name, r->flag, text, len, (int)(r->text_len > 200 ? 200 : r->text_len), r->text,
                             r->text_len);
        }
        free(text);
        cases++;
    }
    fprintf(stderr, "decode: %zu id lists decoded, %zu different from HF\n", cases, failures);
    cr_expect_eq(failures, 0, "%zu of %zu decodes differ from HF tokenizers", failures, cases);
    tf_registry_close(reg);
    tf_free(&f);
}

Test(tokenizer, decode_refuses_unknown_ids) {
    TfRegistry *reg = tf_registry_open();
    Tokenizer *tok = tf_get(reg, "tinystories");
    int32_t ids[] = {5, 2048};
    char *text;
    size_t len;
    OwError err;
    cr_assert(tokenizer_decode(tok, ids, 2, 0, &text, &len, &err) != 0);
    cr_assert(strstr(err.msg, "id 2048") && strstr(err.msg, "position 1"), "%s", err.msg);
    int32_t neg[] = {-1};
    cr_assert(tokenizer_decode(tok, neg, 1, 0, &text, &len, &err) != 0);
    cr_assert(tokenizer_decode(tok, NULL, 0, 0, &text, &len, &err) == 0);
    cr_assert_eq(len, 0);
    free(text);
    tf_registry_close(reg);
}

/* ---- lookups ---- */

Test(tokenizer, lookups_match_hf_and_transformers, .timeout = 300) {
    char *p = ts_fixture_path("tokenizer/tokenizers.json");
    OwError err;
    cJSON *man = json_parse_file(p, &err);
    cr_assert(man, "%s", err.msg);
    free(p);
    TfRegistry *reg = tf_registry_open();
    for (const cJSON *e = cJSON_GetObjectItem(man, "expect")->child; e; e = e->next) {
        Tokenizer *tok = tf_get(reg, e->string);
        cr_expect_eq(tokenizer_vocab_size(tok), (int64_t)cJSON_GetObjectItem(e, "vocab_size")->valuedouble, "%s",
                     e->string);
        const cJSON *bos = cJSON_GetObjectItem(e, "bos"), *eos = cJSON_GetObjectItem(e, "eos");
        if (bos) cr_expect_eq(tokenizer_bos_id(tok), (int32_t)bos->valuedouble, "%s bos", e->string);
        if (eos) cr_expect_eq(tokenizer_eos_id(tok), (int32_t)eos->valuedouble, "%s eos", e->string);
        for (const cJSON *t = cJSON_GetObjectItem(e, "tokens")->child; t; t = t->next) {
            int32_t id = atoi(t->string);
            const char *s = tokenizer_id_to_token(tok, id);
            cr_expect(s && strcmp(s, t->valuestring) == 0, "%s: id_to_token(%d) = \"%s\", HF \"%s\"", e->string, id,
                      s ? s : "(null)", t->valuestring);
        }
        cr_expect_eq(tokenizer_id_to_token(tok, (int32_t)tokenizer_vocab_size(tok)), NULL);
        cr_expect_eq(tokenizer_id_to_token(tok, -3), NULL);
    }
    /* LLaMA-3 has no tokenizer_config.json here: BOS from the template, EOS unknown */
    Tokenizer *l3 = tf_get(reg, "llama3");
    cr_expect_eq(tokenizer_bos_id(l3), tokenizer_token_id(l3, "<|begin_of_text|>"));
    cr_expect_eq(tokenizer_eos_id(l3), -1);
    cr_expect_eq(tokenizer_token_id(l3, "<|eot_id|>"), tokenizer_token_id(l3, "<|begin_of_text|>") + 9);
    cr_expect_eq(tokenizer_token_id(l3, "no such token"), -1);
    cr_expect(tokenizer_is_special(l3, tokenizer_token_id(l3, "<|eot_id|>")));
    cr_expect(!tokenizer_is_special(l3, 100));
    /* TinyStories: normalized special tokens show their normalized form, as HF */
    Tokenizer *ts = tf_get(reg, "tinystories");
    cr_expect_eq(tokenizer_token_id(ts, "<|start_story|>"), 1);
    cr_expect(!tokenizer_is_special(ts, 1),
              "HF does not treat a normalized special token's id as special when decoding");
    /* the hash is xxh64 of the file bytes */
    char *text;
    size_t len;
    cr_assert(ow_read_file(tf_path(reg, "tinystories"), &text, &len, &err) == 0);
    cr_expect_eq(tokenizer_hash(ts), xxh64(text, len, 0));
    free(text);
    tf_registry_close(reg);
    cJSON_Delete(man);
}

/* ---- threads: one tokenizer, a work per thread ---- */

typedef struct ThreadArg {
    const Tokenizer *tok;
    const TfFile *f;
    const char *name;
    size_t start, failures;
} ThreadArg;

static void *thread_main(void *p) {
    ThreadArg *a = p;
    TokenizerWork *w = tokenizer_work_new();
    IdVec ids = {0};
    OwError err;
    for (size_t k = 0; k < a->f->n; k++) {
        const TfRecord *r = &a->f->recs[(k + a->start) % a->f->n];
        if (strcmp(r->tok, a->name) != 0) continue;
        if (tokenizer_encode_with(a->tok, w, r->text, r->text_len, r->flag, &ids, &err) != 0 || ids.len != r->n_ids ||
            (ids.len && memcmp(ids.data, r->ids, ids.len * sizeof *ids.data) != 0))
            a->failures++;
    }
    idvec_free(&ids);
    tokenizer_work_free(w);
    return NULL;
}

Test(tokenizer, shared_between_threads, .timeout = 300) {
    TfFile f;
    tf_load("tokenizer/torture.bin.zst", &f);
    TfRegistry *reg = tf_registry_open();
    static const char *const names[] = {"llama3", "tinystories-flags"};
    for (int t = 0; t < 2; t++) {
        Tokenizer *tok = tf_get(reg, names[t]);
        pthread_t th[4];
        ThreadArg args[4];
        for (int i = 0; i < 4; i++) {
            args[i] = (ThreadArg){tok, &f, names[t], (size_t)i * 997, 0};
            cr_assert(pthread_create(&th[i], NULL, thread_main, &args[i]) == 0);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            cr_expect_eq(args[i].failures, 0, "%s thread %d: %zu mismatches", names[t], i, args[i].failures);
        }
    }
    tf_registry_close(reg);
    tf_free(&f);
}

/* ---- refusals ---- */

static const char *k_tiny =
    "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,"
    "\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
    "\"normalized\":false,\"special\":true}],"
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\\u2581\"},"
    "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}]},"
    "\"pre_tokenizer\":null,"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<unk>\",\"type_id\":0}"
    "},"
    "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},"
    "{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}],\"special_tokens\":{\"<unk>\":{\"id\":\"<unk>\",\"ids\":[0],"
    "\"tokens\":[\"<unk>\"]}}},"
    "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}]},"
    "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":\"<unk>\",\"continuing_subword_prefix\":null,"
    "\"end_of_word_suffix\":null,\"fuse_unk\":true,\"byte_fallback\":true,\"ignore_merges\":false,"
    "\"vocab\":{\"<unk>\":0,\"a\":1,\"b\":2,\"ab\":3,\"\\u2581\":4},\"merges\":[\"a b\"]}}";

/* k_tiny with the first occurrence of `from` replaced by `to`. */
static char *tiny_with(const char *from, const char *to) {
    const char *at = strstr(k_tiny, from);
    cr_assert(at, "test bug: \"%s\" not in the tiny tokenizer", from);
    size_t n = strlen(k_tiny) - strlen(from) + strlen(to);
    char *s = malloc(n + 1);
    size_t a = (size_t)(at - k_tiny);
    memcpy(s, k_tiny, a);
    strcpy(s + a, to);
    strcat(s, at + strlen(from));
    return s;
}

/* Loading must fail with a message containing every needle. */
static void expect_refusal(const char *json, const char *const *needles) {
    Tokenizer *tok = NULL;
    OwError err;
    err.msg[0] = '\0';
    int rc = tokenizer_load_from_memory(json, strlen(json), "t.json", &tok, &err);
    cr_expect(rc != 0, "loaded a tokenizer it should refuse (expected: %s)", needles[0]);
    if (rc == 0) {
        tokenizer_free(tok);
        return;
    }
    for (const char *const *n = needles; *n; n++)
        cr_expect(strstr(err.msg, *n) != NULL, "message \"%s\" lacks \"%s\"", err.msg, *n);
}

Test(tokenizer, tiny_tokenizer_loads_and_works) {
    Tokenizer *tok;
    OwError err;
    cr_assert(tokenizer_load_from_memory(k_tiny, strlen(k_tiny), "t.json", &tok, &err) == 0, "%s", err.msg);
    IdVec ids = {0};
    cr_assert(tokenizer_encode(tok, "ab a", 4, 1, &ids, &err) == 0);
    /* "▁ab▁a": ▁(4) ab(3) ▁(4) a(1), after the template's <unk>; tokenizers 0.23 gives the same */
    int32_t exp[] = {0, 4, 3, 4, 1};
    cr_assert_eq(ids.len, 5);
    cr_expect_arr_eq(ids.data, exp, sizeof exp);
    idvec_free(&ids);
    tokenizer_free(tok);
}

Test(tokenizer, refuses_what_it_does_not_implement) {
    struct {
        const char *from, *to;
        const char *needles[4];
    } cases[] = {
        {"\"type\":\"BPE\"", "\"type\":\"WordPiece\"", {"t.json", "model.type", "WordPiece", NULL}},
        {"\"type\":\"BPE\"", "\"type\":\"Unigram\"", {"model.type", "Unigram", NULL}},
        {"{\"type\":\"Prepend\",\"prepend\":\"\\u2581\"}",
         "{\"type\":\"NFKC\"}",
         {"normalizer.normalizers[0].type", "NFKC", NULL}},
        {"\"pre_tokenizer\":null",
         "\"pre_tokenizer\":{\"type\":\"Whitespace\"}",
         {"pre_tokenizer.type", "Whitespace", NULL}},
        {"\"pre_tokenizer\":null",
         "\"pre_tokenizer\":{\"type\":\"Digits\",\"individual_digits\":true}",
         {"pre_tokenizer.type", "Digits", NULL}},
        {"{\"type\":\"Fuse\"}",
         "{\"type\":\"WordPiece\",\"prefix\":\"##\",\"cleanup\":true}",
         {"decoder.decoders[1].type", "WordPiece", NULL}},
        {"\"post_processor\":{\"type\":\"TemplateProcessing\"",
         "\"post_processor\":{\"type\":\"RobertaProcessing\"",
         {"post_processor.type", "RobertaProcessing", NULL}},
        {"\"dropout\":null", "\"dropout\":0.1", {"model.dropout", "0.1", NULL}},
        {"\"continuing_subword_prefix\":null",
         "\"continuing_subword_prefix\":\"##\"",
         {"model.continuing_subword_prefix", "##", NULL}},
        {"\"end_of_word_suffix\":null", "\"end_of_word_suffix\":\"</w>\"", {"model.end_of_word_suffix", "</w>", NULL}},
        {"\"truncation\":null", "\"truncation\":{\"max_length\":8}", {"truncation", NULL}},
        {"\"padding\":null", "\"padding\":{\"pad_id\":0}", {"padding", NULL}},
        {"\"version\":\"1.0\"", "\"version\":\"2.0\"", {"version", "2.0", NULL}},
        {"\"version\":\"1.0\"", "\"version\":\"1.0\",\"extra\":1", {"unknown key \"extra\"", NULL}},
        {"\"fuse_unk\":true", "\"fuse_unk\":true,\"cache_capacity\":5", {"model", "cache_capacity", NULL}},
        {"\"merges\":[\"a b\"]", "\"merges\":[\"a c\"]", {"model.merges[0]", "\"c\"", "not in model.vocab", NULL}},
        {"\"merges\":[\"a b\"]", "\"merges\":[\"b a\"]", {"model.merges[0]", "\"ba\"", NULL}},
        {"\"merges\":[\"a b\"]", "\"merges\":[\"a b c\"]", {"model.merges[0]", "line 1", NULL}},
        {"\"merges\":[\"a b\"]", "\"merges\":[\"a b\",[\"a\",\"b\"]]", {"model.merges[1]", "mixes", NULL}},
        {"\"merges\":[\"a b\"]", "\"merges\":[[\"a\"]]", {"model.merges[0]", NULL}},
        {",\"merges\":[\"a b\"]", "", {"model", "merges", NULL}},
        {"\"vocab\":{\"<unk>\":0,\"a\":1,\"b\":2,\"ab\":3,\"\\u2581\":4},", "", {"model", "vocab", NULL}},
        {"\"ab\":3", "\"ab\":-3", {"model.vocab", "\"ab\"", NULL}},
        {"\"ab\":3", "\"ab\":2", {"model.vocab", "id 2", NULL}},
        {"\"ab\":3", "\"a\":3", {"model.vocab", "\"a\" appears twice", NULL}},
        {"\"ab\":3", "\"ab\":99999999", {"model.vocab", "\"ab\"", NULL}},
        {"\"unk_token\":\"<unk>\"", "\"unk_token\":\"<nope>\"", {"model.unk_token", "<nope>", NULL}},
        {"{\"String\":\" \"},\"content\"",
         "{\"Regex\":\" +\"},\"content\"",
         {"normalizer.normalizers[1].pattern", "Regex", NULL}},
        {"{\"String\":\" \"},\"content\"", "{\"String\":\"\"},\"content\"", {"normalizers[1].pattern", "empty", NULL}},
        {"\"pre_tokenizer\":null",
         "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},\"behavior\":\"Isolated\",\"invert\":"
         "false}",
         {"pre_tokenizer.pattern", "cannot compile", NULL}},
        {"\"pre_tokenizer\":null",
         "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Sideways\",\"invert\":"
         "false}",
         {"pre_tokenizer.behavior", "Sideways", NULL}},
        {"\"pre_tokenizer\":null",
         "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"ByteLevel\",\"add_prefix_space\":"
         "false,"
         "\"trim_offsets\":true},{\"type\":\"Split\",\"pattern\":{\"String\":\"a\"},\"behavior\":\"Isolated\","
         "\"invert\":false}]}",
         {"pre_tokenizer.pretokenizers[1]", "after ByteLevel", NULL}},
        {"\"pre_tokenizer\":null",
         "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"ab\"}",
         {"pre_tokenizer", "replacement", "one character", NULL}},
        {"\"pre_tokenizer\":null",
         "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"_\",\"add_prefix_space\":false}",
         {"pre_tokenizer", "prepend_scheme", NULL}},
        {"\"pre_tokenizer\":null",
         "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"_\",\"prepend_scheme\":\"sometimes\"}",
         {"pre_tokenizer.prepend_scheme", "sometimes", NULL}},
        {"{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\"",
         "{\"Sequence\":{\"id\":\"B\",\"type_id\":0}}],\"pair\"",
         {"post_processor.single[1]", "$B", NULL}},
        {"{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}]",
         "{\"SpecialToken\":{\"id\":\"<unk>\",\"type_id\":1}}]",
         {"post_processor.pair", "no $B", NULL}},
        {"{\"SpecialToken\":{\"id\":\"<unk>\",\"type_id\":0}}",
         "{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}}",
         {"post_processor.single[0]", "<s>", NULL}},
        {"\"ids\":[0]", "\"ids\":[7]", {"post_processor", "id 7", NULL}},
        {"\"id\":0,\"content\":\"<unk>\"", "\"id\":5,\"content\":\"<unk>\"", {"added_tokens[0]", "id 5", "id 0", NULL}},
        {"\"id\":0,\"content\":\"<unk>\"",
         "\"id\":0,\"content\":\"<new>\"",
         {"added_tokens[0]", "<new>", "id 5", NULL}},
        {"\"single_word\":false,", "", {"added_tokens[0]", "single_word", NULL}},
        {"\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"ByteFallback\"}",
         "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Strip\",\"content\":\" "
         "\",\"start\":-1,\"stop\":0}",
         {"decoder.decoders[0]", "start", NULL}},
        {"\"normalizer\":{\"type\":\"Sequence\"",
         "\"normalizer\":{\"kind\":\"Sequence\"",
         {"normalizer", "missing \"type\"", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *json = tiny_with(cases[i].from, cases[i].to);
        expect_refusal(json, cases[i].needles);
        free(json);
    }
}

Test(tokenizer, refuses_malformed_and_truncated_files) {
    static const char *const m1[] = {"t.json", "malformed JSON", "line 1", NULL};
    expect_refusal("{\"model\": ", m1);
    static const char *const m2[] = {"t.json", "(top level)", "object", NULL};
    expect_refusal("[1, 2]", m2);
    static const char *const m3[] = {"t.json", "model", "missing", NULL};
    expect_refusal("{\"version\":\"1.0\"}", m3);
    static const char *const m4[] = {"malformed JSON", NULL};
    expect_refusal("", m4);
    /* every prefix of a real tokenizer.json is refused cleanly */
    char *p = ts_shared_path("data/real/hf/TinyStories-656K/tokenizer.json");
    char *text;
    size_t len;
    OwError err;
    cr_assert(ow_read_file(p, &text, &len, &err) == 0);
    size_t cuts = 0;
    for (size_t cut = 0; cut < len; cut += cut < 2000 ? 97 : 4099) {
        Tokenizer *tok = NULL;
        cr_expect(tokenizer_load_from_memory(text, cut, "cut.json", &tok, &err) != 0, "a %zu-byte prefix loaded", cut);
        cr_expect(strstr(err.msg, "cut.json") != NULL, "%s", err.msg);
        tokenizer_free(tok);
        cuts++;
    }
    Tokenizer *tok = NULL;
    cr_assert(tokenizer_load_from_memory(text, len, "whole.json", &tok, &err) == 0, "%s", err.msg);
    tokenizer_free(tok);
    free(text);
    free(p);
    cr_log_info("%zu truncated prefixes refused", cuts);
    /* missing files and directories */
    cr_expect(tokenizer_load("/nonexistent/tokenizer.json", &tok, &err) != 0);
    cr_expect(strstr(err.msg, "/nonexistent/tokenizer.json") != NULL, "%s", err.msg);
    char *dir = ts_tmpdir();
    cr_expect(tokenizer_load(dir, &tok, &err) != 0);
    cr_expect(strstr(err.msg, "no tokenizer.json") != NULL, "%s", err.msg);
    ts_rmtree(dir);
    free(dir);
}

/* A real broken file: LLaMA-2's tokenizer.json as committed in a public repo, whose
 * merges lost their NBSP characters (HF tokenizers cannot load it either). */
Test(tokenizer, refuses_the_real_malformed_llama2_file) {
    char *p = ts_shared_path("data/real/tokenizers/llama2-tinyllama/tokenizer.committed.json");
    Tokenizer *tok = NULL;
    OwError err;
    cr_assert(tokenizer_load(p, &tok, &err) != 0, "tokenizer.committed.json loaded; HF refuses it");
    cr_expect(strstr(err.msg, "tokenizer.committed.json") && strstr(err.msg, "model.merges[18917]") &&
                  strstr(err.msg, "line 18918"),
              "%s", err.msg);
    cr_log_info("tokenizer.committed.json: %s", err.msg);
    free(p);
}

Test(tokenizer, bad_special_config_is_reported) {
    char *dir = ts_tmpdir();
    char *tj = ow_path_join(dir, "tokenizer.json"), *cfg = ow_path_join(dir, "tokenizer_config.json");
    ts_write_file(tj, k_tiny, strlen(k_tiny));
    const char *c1 = "{\"bos_token\": \"<zzz>\"}";
    ts_write_file(cfg, c1, strlen(c1));
    Tokenizer *tok = NULL;
    OwError err;
    cr_expect(tokenizer_load(dir, &tok, &err) != 0);
    cr_expect(strstr(err.msg, "tokenizer_config.json") && strstr(err.msg, "<zzz>"), "%s", err.msg);
    const char *c2 = "{\"bos_token\": {\"content\": \"a\"}, \"eos_token\": \"ab\"}";
    ts_write_file(cfg, c2, strlen(c2));
    cr_assert(tokenizer_load(dir, &tok, &err) == 0, "%s", err.msg);
    cr_expect_eq(tokenizer_bos_id(tok), 1);
    cr_expect_eq(tokenizer_eos_id(tok), 3);
    tokenizer_free(tok);
    ts_write_file(cfg, "{", 1);
    cr_expect(tokenizer_load(dir, &tok, &err) != 0);
    cr_expect(strstr(err.msg, "tokenizer_config.json") != NULL, "%s", err.msg);
    ts_rmtree(dir);
    free(tj);
    free(cfg);
    free(dir);
}

/* Only regular files are read: a tokenizer.json linked to /dev/zero, or a FIFO as tokenizer_config.json, is refused
 * at once naming the file (not read until memory runs out, not waited on); an oversized tokenizer.json too. */
Test(tokenizer, special_and_oversized_files_are_refused, .timeout = 60) {
    char *dir = ts_tmpdir();
    char *tj = ow_path_join(dir, "tokenizer.json"), *cfg = ow_path_join(dir, "tokenizer_config.json");
    Tokenizer *tok = NULL;
    OwError err;
    cr_assert_eq(symlink("/dev/zero", tj), 0);
    cr_expect(tokenizer_load(dir, &tok, &err) != 0);
    cr_expect(strstr(err.msg, "tokenizer.json: is a character device, not a regular file") != NULL, "%s", err.msg);
    cr_assert_eq(remove(tj), 0);
    ts_write_file(tj, "{", 1);
    cr_assert_eq(truncate(tj, (off_t)(65 << 20)), 0); /* sparse, past the 64 MiB cap */
    cr_expect(tokenizer_load(dir, &tok, &err) != 0);
    cr_expect(strstr(err.msg, "tokenizer.json: 68157440 bytes, more than") != NULL, "%s", err.msg);
    ts_write_file(tj, k_tiny, strlen(k_tiny));
    cr_assert_eq(mkfifo(cfg, 0644), 0);
    cr_expect(tokenizer_load(dir, &tok, &err) != 0);
    cr_expect(strstr(err.msg, "tokenizer_config.json: is a FIFO, not a regular file") != NULL, "%s", err.msg);
    ts_rmtree(dir);
    free(tj);
    free(cfg);
    free(dir);
}

/* ---- invalid UTF-8 ---- */

Test(tokenizer, invalid_utf8_is_replaced_first) {
    TfRegistry *reg = tf_registry_open();
    Tokenizer *tok = tf_get(reg, "llama3");
    static const struct {
        const char *bad, *fixed;
    } cases[] = {
        {"abc\xff\xfe def", "abc\xEF\xBF\xBD\xEF\xBF\xBD def"},
        {"\xe2\x82", "\xEF\xBF\xBD"},
        {"\xf0\x9f\x98x", "\xEF\xBF\xBDx"},
        {"\xed\xa0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"\xc0\xaf", "\xEF\xBF\xBD\xEF\xBF\xBD"},
    };
    OwError err;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        IdVec a = {0}, b = {0};
        cr_assert(tokenizer_encode(tok, cases[i].bad, strlen(cases[i].bad), 0, &a, &err) == 0);
        cr_assert(tokenizer_encode(tok, cases[i].fixed, strlen(cases[i].fixed), 0, &b, &err) == 0);
        cr_expect(a.len == b.len && memcmp(a.data, b.data, a.len * sizeof *a.data) == 0, "case %zu", i);
        idvec_free(&a);
        idvec_free(&b);
    }
    tf_registry_close(reg);
}

/* ---- commands ---- */

Test(tokenizer, encode_and_decode_commands, .timeout = 300) {
    TfFile f;
    tf_load("tokenizer/torture.bin.zst", &f);
    TfRegistry *reg = tf_registry_open();
    char *dir = ts_tmpdir();
    char *in = ow_path_join(dir, "in.txt");
    const char *bin = ts_owlore_binary();
    size_t checked = 0;
    for (size_t i = 0; i < f.n; i++) {
        const TfRecord *r = &f.recs[i];
        int base = strcmp(r->tok, "mistral") == 0 || strcmp(r->tok, "tinystories") == 0;
        if (!base || !(strncmp(r->name, "special/", 8) == 0 || strncmp(r->name, "invalid/", 8) == 0 ||
                       strncmp(r->name, "ws/", 3) == 0))
            continue;
        ts_write_file(in, r->text, r->text_len);
        /* the directory form for TinyStories, the file form for Mistral */
        char *tp =
            strcmp(r->tok, "tinystories") == 0 ? ow_path_dirname(tf_path(reg, r->tok)) : strdup(tf_path(reg, r->tok));
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "'%s' encode --tokenizer '%s'%s < '%s'", bin, tp, r->flag ? " --add-special" : "",
                 in);
        char *out = NULL;
        int rc = ts_run(cmd, &out);
        cr_assert_eq(rc, 0, "%s: %s", cmd, out);
        /* expected line */
        char *exp = malloc(r->n_ids * 12 + 2);
        size_t o = 0;
        for (size_t k = 0; k < r->n_ids; k++) o += (size_t)sprintf(exp + o, k ? " %d" : "%d", r->ids[k]);
        strcpy(exp + o, "\n");
        cr_expect_str_eq(out, exp, "%s %s", r->tok, r->name);
        free(out);
        /* and back */
        if (!r->flag) {
            char *idf = ow_path_join(dir, "ids.txt");
            ts_write_file(idf, exp, strlen(exp));
            snprintf(cmd, sizeof cmd, "'%s' decode --tokenizer '%s' < '%s'", bin, tp, idf);
            rc = ts_run(cmd, &out);
            cr_assert_eq(rc, 0, "%s: %s", cmd, out);
            char *text;
            size_t len;
            OwError err;
            cr_assert(tokenizer_decode(tf_get(reg, r->tok), r->ids, r->n_ids, 0, &text, &len, &err) == 0);
            cr_expect(strlen(out) == len && memcmp(out, text, len) == 0, "decode of %s %s", r->tok, r->name);
            free(text);
            free(out);
            free(idf);
        }
        free(exp);
        free(tp);
        checked++;
    }
    cr_expect_gt(checked, 40);
    /* help, usage errors, bad input */
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd, "'%s' encode --help", bin);
    cr_expect_eq(ts_run(cmd, &out), 0);
    cr_expect(strstr(out, "--tokenizer") && strstr(out, "--add-special"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' decode --help", bin);
    cr_expect_eq(ts_run(cmd, &out), 0);
    cr_expect(strstr(out, "--skip-special") != NULL, "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "echo hi | '%s' encode", bin);
    cr_expect_eq(ts_run(cmd, &out), 2);
    cr_expect(strstr(out, "--tokenizer is required") != NULL, "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "echo '12 x7' | '%s' decode --tokenizer '%s'", bin, tf_path(reg, "mistral"));
    cr_expect_eq(ts_run(cmd, &out), 1);
    cr_expect(strstr(out, "id number 2") && strstr(out, "x7"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "echo '12 99999' | '%s' decode --tokenizer '%s'", bin, tf_path(reg, "mistral"));
    cr_expect_eq(ts_run(cmd, &out), 1);
    cr_expect(strstr(out, "id 99999") != NULL, "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "echo hi | '%s' encode --tokenizer /nonexistent", bin);
    cr_expect_eq(ts_run(cmd, &out), 1);
    cr_expect(strstr(out, "/nonexistent") != NULL, "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "printf '1 22557 1526' | '%s' decode --skip-special --tokenizer '%s'", bin,
             tf_path(reg, "mistral"));
    cr_expect_eq(ts_run(cmd, &out), 0);
    cr_expect_str_eq(out, "Hello world");
    free(out);
    ts_rmtree(dir);
    free(dir);
    free(in);
    tf_registry_close(reg);
    tf_free(&f);
}

/* ---- tokenizer_build_json ---- */

Test(tokenizer, build_json_from_gpt2_style_files) {
    char *dir = ts_tmpdir();
    char *tmpl = ow_path_join(dir, "template.json"), *voc = ow_path_join(dir, "vocab.json"),
         *mer = ow_path_join(dir, "merges.txt"), *out = ow_path_join(dir, "tokenizer.json");
    const char *t = "{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}";
    const char *v = "{\"a\":0,\"b\":1,\"ab\":2,\"c\":3,\"abc\":4}";
    const char *m = "#version: 0.2\r\na b\r\nab c\r\n";
    ts_write_file(tmpl, t, strlen(t));
    ts_write_file(voc, v, strlen(v));
    ts_write_file(mer, m, strlen(m));
    OwError err;
    cr_assert(tokenizer_build_json(tmpl, voc, mer, out, &err) == 0, "%s", err.msg);
    Tokenizer *tok;
    cr_assert(tokenizer_load(out, &tok, &err) == 0, "%s", err.msg);
    IdVec ids = {0};
    /* tokenizers 0.23 on the same files: "abcba" -> [4, 1, 0] */
    cr_assert(tokenizer_encode(tok, "abcba", 5, 0, &ids, &err) == 0);
    int32_t exp[] = {4, 1, 0};
    cr_assert_eq(ids.len, 3);
    cr_expect_arr_eq(ids.data, exp, sizeof exp);
    idvec_free(&ids);
    tokenizer_free(tok);
    /* an empty line inside the merges file is refused, as tokenizers does */
    const char *bad = "a b\n\nab c\n";
    ts_write_file(mer, bad, strlen(bad));
    cr_expect(tokenizer_build_json(tmpl, voc, mer, out, &err) != 0);
    cr_expect(strstr(err.msg, "merges.txt") && strstr(err.msg, "line 2"), "%s", err.msg);
    cr_expect(tokenizer_build_json(tmpl, "/nonexistent.json", mer, out, &err) != 0);
    cr_expect(strstr(err.msg, "/nonexistent.json") != NULL, "%s", err.msg);
    ts_rmtree(dir);
    free(tmpl);
    free(voc);
    free(mer);
    free(out);
    free(dir);
}
