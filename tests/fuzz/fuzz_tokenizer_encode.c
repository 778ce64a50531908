/* fuzz_tokenizer_encode.c: libFuzzer target for encoding and decoding.
 * Byte 0 of the input picks a small tokenizer built in memory (SentencePiece
 * style with byte fallback and flagged added tokens; LLaMA-3 style byte
 * level; Metaspace with split behaviors; GPT-2 ByteLevel regex) and whether
 * to add special tokens; the rest is the text. Checked: ids inside the
 * vocabulary; for the byte-level ones decode(encode(x)) == x with invalid
 * UTF-8 replaced, and pre-token spans that tile the text.
 * The body is also replayed by test_fuzz_regressions.c (OWLORE_FUZZ_REPLAY). */
#include "data/tok_internal.h"
#include "data/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fuzz_tokenizer_encode_one(const uint8_t *data, size_t size);

#define N_FUZZ_TOKS 4

/* vocab as a cJSON object plus merges array, grown by merge(a, b) */
typedef struct Builder {
    cJSON *vocab, *merges;
    int next;
} Builder;

static void add_token(Builder *b, const char *s) {
    if (!cJSON_GetObjectItemCaseSensitive(b->vocab, s)) cJSON_AddNumberToObject(b->vocab, s, b->next++);
}

static void merge(Builder *b, const char *l, const char *r) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s %s", l, r);
    cJSON_AddItemToArray(b->merges, cJSON_CreateString(buf));
    snprintf(buf, sizeof buf, "%s%s", l, r);
    add_token(b, buf);
}

static cJSON *added(int id, const char *content, int sw, int ls, int rs, int norm, int special) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "id", id);
    cJSON_AddStringToObject(t, "content", content);
    cJSON_AddBoolToObject(t, "single_word", sw);
    cJSON_AddBoolToObject(t, "lstrip", ls);
    cJSON_AddBoolToObject(t, "rstrip", rs);
    cJSON_AddBoolToObject(t, "normalized", norm);
    cJSON_AddBoolToObject(t, "special", special);
    return t;
}

static const char *const k_llama3_pattern = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                            "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static Tokenizer *build(int kind) {
    Builder b = {cJSON_CreateObject(), cJSON_CreateArray(), 0};
    cJSON *root = cJSON_CreateObject();
    cJSON *model = cJSON_CreateObject();
    cJSON *addl = cJSON_CreateArray();
    int byte_level = kind == 1 || kind == 3;
    if (byte_level) {
        for (int c = 0; c < 256; c++) {
            char s[5] = {0};
            utf8_encode(bytelevel_char((uint8_t)c), s);
            add_token(&b, s);
        }
        merge(&b, "\xc4\xa0", "t"); /* Ġ t */
        merge(&b, "h", "e");
        merge(&b, "\xc4\xa0t", "he");
        merge(&b, "i", "n");
        merge(&b, "\xc4\xa0", "a");
        merge(&b, "e", "r");
        merge(&b, "\xc4\xa0", "\xc4\xa0");
        merge(&b, "1", "2");
        merge(&b, "12", "3");
        merge(&b, "\xc3\xa4", "\xc2\xbd"); /* the bytes of U+4F60's start */
        cJSON_AddItemToArray(addl, added(b.next, "<|begin_of_text|>", 0, 0, 0, 0, 1));
        cJSON_AddItemToArray(addl, added(b.next + 1, "<|eot_id|>", 0, 0, 0, 0, 1));
        cJSON_AddItemToArray(addl,
                             added(b.next + 2, "<tool>", 1, 0, 0, 0, 0)); /* no strip: byte level must round-trip */
    } else {
        add_token(&b, "<unk>");
        add_token(&b, "<s>");
        add_token(&b, "</s>");
        for (int c = 0; c < 256; c += (kind == 2 ? 2 : 1)) { /* kind 2 lacks half the byte tokens: unk paths */
            char s[8];
            snprintf(s, sizeof s, "<0x%02X>", c);
            add_token(&b, s);
        }
        add_token(&b, "\xe2\x96\x81");
        for (char c = 'a'; c <= 'z'; c++) {
            char s[2] = {c, 0};
            add_token(&b, s);
        }
        merge(&b, "\xe2\x96\x81", "t");
        merge(&b, "h", "e");
        merge(&b, "\xe2\x96\x81t", "he");
        merge(&b, "e", "\xe2\x96\x81");
        merge(&b, "\xe2\x96\x81", "\xe2\x96\x81");
        merge(&b, "a", "b");
        merge(&b, "b", "c");
        merge(&b, "ab", "c");
        merge(&b, "a", "bc");
        cJSON_AddItemToArray(addl, added(0, "<unk>", 0, 0, 0, 0, 1));
        cJSON_AddItemToArray(addl, added(1, "<s>", 0, 0, 0, kind == 2, 1));
        cJSON_AddItemToArray(addl, added(2, "</s>", 1, 1, 1, 0, 1));
        cJSON_AddItemToArray(addl, added(b.next, " x y", 0, 1, 0, 1, 0));
        cJSON_AddItemToArray(addl, added(cJSON_GetObjectItem(b.vocab, "abc")->valueint, "abc", 1, 0, 1, 0, 0));
    }
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    if (byte_level)
        cJSON_AddNullToObject(model, "unk_token");
    else
        cJSON_AddStringToObject(model, "unk_token", "<unk>");
    cJSON_AddBoolToObject(model, "fuse_unk", kind == 0);
    cJSON_AddBoolToObject(model, "byte_fallback", !byte_level);
    cJSON_AddBoolToObject(model, "ignore_merges", byte_level);
    cJSON_AddItemToObject(model, "vocab", b.vocab);
    cJSON_AddItemToObject(model, "merges", b.merges);
    cJSON_AddItemToObject(root, "added_tokens", addl);
    cJSON_AddItemToObject(root, "model", model);
    const char *norm = "null", *pre = "null", *dec = "null", *post = "null";
    switch (kind) {
    case 0:
        norm = "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\\u2581\"},"
               "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}]}";
        dec = "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\\u2581\"},"
              "\"content\":\" \"},"
              "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" "
              "\",\"start\":1,\"stop\":1}]}";
        post = "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
               "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"SpecialToken\":{\"id\":\"</s>\",\"type_id\":0}}],"
               "\"pair\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}],"
               "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]},"
               "\"</s>\":{\"id\":\"</s>\",\"ids\":[2],\"tokens\":[\"</s>\"]}}}";
        break;
    case 2:
        pre =
            "{\"type\":\"Sequence\",\"pretokenizers\":["
            "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\d\"},\"behavior\":\"MergedWithNext\",\"invert\":false},"
            "{\"type\":\"Split\",\"pattern\":{\"String\":\",\"},\"behavior\":\"Removed\",\"invert\":false},"
            "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"x*\"},\"behavior\":\"MergedWithPrevious\",\"invert\":false},"
            "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\p{L}+\"},\"behavior\":\"Contiguous\",\"invert\":true},"
            "{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"first\",\"split\":true}]}";
        dec = "{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"first\",\"split\":true}";
        break;
    case 1:
        pre = "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"PATTERN\"},"
              "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
              "\"trim_offsets\":true,\"use_regex\":false}]}";
        dec = "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true}";
        break;
    case 3:
        pre = "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}";
        dec = "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true}";
        break;
    }
    cJSON *pre_j = cJSON_Parse(pre);
    if (kind == 1) {
        cJSON *split = cJSON_GetArrayItem(cJSON_GetObjectItem(pre_j, "pretokenizers"), 0);
        cJSON_ReplaceItemInObject(cJSON_GetObjectItem(split, "pattern"), "Regex", cJSON_CreateString(k_llama3_pattern));
    }
    cJSON_AddItemToObject(root, "normalizer", cJSON_Parse(norm));
    cJSON_AddItemToObject(root, "pre_tokenizer", pre_j);
    cJSON_AddItemToObject(root, "decoder", cJSON_Parse(dec));
    cJSON_AddItemToObject(root, "post_processor", cJSON_Parse(post));
    char *text = cJSON_PrintUnformatted(root);
    Tokenizer *tok = NULL;
    OwError err;
    if (tokenizer_load_from_memory(text, strlen(text), "fuzz-builtin.json", &tok, &err) != 0) {
        fprintf(stderr, "fuzz tokenizer %d: %s\n", kind, err.msg);
        abort();
    }
    cJSON_free(text);
    cJSON_Delete(root);
    return tok;
}

typedef struct SpanCheck {
    size_t next;
    int bad;
} SpanCheck;

static void span_check(void *ctx, size_t start, size_t end) {
    SpanCheck *c = ctx;
    if (start != c->next || end <= start) c->bad = 1;
    c->next = end;
}

int fuzz_tokenizer_encode_one(const uint8_t *data, size_t size) {
    static Tokenizer *toks[N_FUZZ_TOKS]; /* built once per process: fuzzing harness state */
    if (size < 1) return 0;
    int kind = data[0] % N_FUZZ_TOKS, add_special = (data[0] >> 2) & 1;
    if (!toks[kind]) toks[kind] = build(kind);
    const Tokenizer *tok = toks[kind];
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    IdVec ids = {0};
    OwError err;
    if (tokenizer_encode(tok, text, n, add_special, &ids, &err) != 0) abort();
    for (size_t k = 0; k < ids.len; k++)
        if (ids.data[k] < 0 || ids.data[k] >= tokenizer_vocab_size(tok)) abort();
    char *back = NULL;
    size_t blen;
    if (tokenizer_decode(tok, ids.data, ids.len, (data[0] >> 3) & 1, &back, &blen, &err) != 0) abort();
    if (kind == 1 || kind == 3) {
        TokBuf clean = {0};
        utf8_append_lossy(&clean, text, n);
        if (!add_special && ((data[0] >> 3) & 1) == 0 && (blen != clean.len || memcmp(back, clean.data, blen) != 0))
            abort(); /* byte level round-trips */
        TokenizerWork *w = tokenizer_work_new();
        SpanCheck sc = {0, 0};
        if (tokenizer_pre_tokenize(tok, w, clean.data, clean.len, span_check, &sc, &err) != 0) abort();
        if (sc.bad || sc.next != clean.len) abort(); /* Isolated splits tile the text */
        tokenizer_work_free(w);
        tokbuf_free(&clean);
    }
    free(back);
    idvec_free(&ids);
    return 0;
}

#ifndef OWLORE_FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_tokenizer_encode_one(data, size); }
#endif
