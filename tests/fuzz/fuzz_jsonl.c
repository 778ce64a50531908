/* fuzz_jsonl.c: libFuzzer target for the dataset readers (JSON lines, JSON
 * arrays, text documents), the record fields, the chat and prompt templates
 * and the exact-mask encoder. Byte 0 of the input picks the format (auto,
 * text, jsonl, alpaca, chat), the chat template, strict, train_on_prompt and
 * the file name (which drives detection); the rest is the file. The
 * tokenizer is a small SentencePiece-style one built in memory, with the
 * special tokens every template needs. Checked: the call returns 0 or -1
 * with a message naming the file; on success the document offsets run from
 * 0 to the token count, every id is inside the vocabulary, the mask is 0/1,
 * and the counts add up.
 * The body is also replayed by test_fuzz_regressions.c (OWLORE_FUZZ_REPLAY). */
#include "core/log.h"
#include "data/dataset.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fuzz_jsonl_one(const uint8_t *data, size_t size);

static Tokenizer *fj_build(void) {
    static const char *const specials[] = {"<unk>",
                                           "<s>",
                                           "</s>",
                                           "<|im_start|>",
                                           "<|im_end|>",
                                           "<|begin_of_text|>",
                                           "<|start_header_id|>",
                                           "<|end_header_id|>",
                                           "<|eot_id|>"};
    cJSON *root = cJSON_CreateObject(), *model = cJSON_CreateObject(), *vocab = cJSON_CreateObject();
    cJSON *merges = cJSON_CreateArray(), *added = cJSON_CreateArray();
    int id = 0;
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) {
        cJSON_AddNumberToObject(vocab, specials[i], id);
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "id", id++);
        cJSON_AddStringToObject(t, "content", specials[i]);
        cJSON_AddBoolToObject(t, "single_word", 0);
        cJSON_AddBoolToObject(t, "lstrip", 0);
        cJSON_AddBoolToObject(t, "rstrip", 0);
        cJSON_AddBoolToObject(t, "normalized", 0);
        cJSON_AddBoolToObject(t, "special", 1);
        cJSON_AddItemToArray(added, t);
    }
    for (int c = 0; c < 256; c++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", c);
        cJSON_AddNumberToObject(vocab, s, id++);
    }
    cJSON_AddNumberToObject(vocab, "\xe2\x96\x81", id++);
    for (char c = 'a'; c <= 'z'; c++) {
        char s[2] = {c, 0};
        cJSON_AddNumberToObject(vocab, s, id++);
    }
    static const char *const pairs[][2] = {
        {"\xe2\x96\x81", "t"}, {"h", "e"}, {"\xe2\x96\x81t", "he"},         {"i", "n"},
        {"\xe2\x96\x81", "a"}, {"e", "r"}, {"\xe2\x96\x81", "\xe2\x96\x81"}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        char m[32], t[32];
        snprintf(m, sizeof m, "%s %s", pairs[i][0], pairs[i][1]);
        snprintf(t, sizeof t, "%s%s", pairs[i][0], pairs[i][1]);
        cJSON_AddItemToArray(merges, cJSON_CreateString(m));
        if (!cJSON_GetObjectItemCaseSensitive(vocab, t)) cJSON_AddNumberToObject(vocab, t, id++);
    }
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddStringToObject(model, "unk_token", "<unk>");
    cJSON_AddBoolToObject(model, "fuse_unk", 1);
    cJSON_AddBoolToObject(model, "byte_fallback", 1);
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", merges);
    cJSON_AddItemToObject(root, "added_tokens", added);
    cJSON_AddItemToObject(root, "model", model);
    cJSON_AddNullToObject(root, "normalizer");
    cJSON_AddItemToObject(
        root, "pre_tokenizer",
        cJSON_Parse("{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"first\","
                    "\"split\":false}"));
    cJSON_AddItemToObject(
        root, "post_processor",
        cJSON_Parse(
            "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
            "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"SpecialToken\":{\"id\":\"</s>\",\"type_id\":0}}],"
            "\"pair\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}],"
            "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]},"
            "\"</s>\":{\"id\":\"</s>\",\"ids\":[2],\"tokens\":[\"</s>\"]}}}"));
    cJSON_AddNullToObject(root, "decoder");
    char *text = cJSON_PrintUnformatted(root);
    Tokenizer *tok = NULL;
    OwError err;
    if (tokenizer_load_from_memory(text, strlen(text), "fuzz-jsonl-tokenizer.json", &tok, &err) != 0) {
        fprintf(stderr, "fuzz_jsonl tokenizer: %s\n", err.msg);
        abort();
    }
    cJSON_free(text);
    cJSON_Delete(root);
    if (tokenizer_bos_id(tok) != 1 || tokenizer_eos_id(tok) != 2) abort();
    return tok;
}

int fuzz_jsonl_one(const uint8_t *data, size_t size) {
    static Tokenizer *tok; /* built once per process: fuzzing harness state */
    if (size < 1) return 0;
    if (!tok) tok = fj_build();
    uint8_t sel = data[0];
    static const DataFormat formats[] = {DATA_FORMAT_AUTO, DATA_FORMAT_JSONL, DATA_FORMAT_ALPACA, DATA_FORMAT_CHAT,
                                         DATA_FORMAT_TEXT, DATA_FORMAT_CHAT,  DATA_FORMAT_CHAT,   DATA_FORMAT_AUTO};
    static const char *const names[] = {"fuzz.jsonl", "fuzz.json", "fuzz.txt", "fuzz"};
    DataOptions o;
    data_options_defaults(&o);
    o.format = formats[sel & 7];
    o.chat_template = (ChatTemplateKind)(1 + ((sel >> 3) & 3));
    o.strict = (sel >> 5) & 1;
    o.train_on_prompt = (sel >> 6) & 1;
    if (sel >> 7) snprintf(o.doc_separator, sizeof o.doc_separator, "<|endoftext|>");
    const char *name = names[((sel >> 5) ^ (sel >> 1)) & 3];
    OwLogLevel level = ow_log_get_level();
    ow_log_set_level(OW_LOG_QUIET); /* skipped records warn: keep the fuzzer quiet */
    TokData d;
    DataStats st;
    OwError err;
    int rc = dataset_tokenize_buffer(name, (const char *)data + 1, size - 1, tok, &o, &d, &st, &err);
    ow_log_set_level(level);
    if (rc != 0) {
        if (rc != -1 || !strstr(err.msg, name)) abort(); /* every refusal names the file */
        return 0;
    }
    if (d.ndocs < 1 || d.ndocs != st.samples || !d.doc_offsets || d.doc_offsets[0] != 0 ||
        d.doc_offsets[d.ndocs] != (uint64_t)d.count || d.count != st.tokens)
        abort();
    for (int64_t k = 0; k < d.ndocs; k++)
        if (d.doc_offsets[k + 1] <= d.doc_offsets[k]) abort(); /* no empty sample is kept */
    for (int64_t i = 0; i < d.count; i++) {
        int32_t id = tokdata_id(&d, i);
        if (id < 0 || id >= d.vocab_size) abort();
        if (d.mask && d.mask[i] > 1) abort();
    }
    if (st.samples + st.malformed + st.invalid + st.empty != st.records) abort();
    if (st.loss_tokens < 0 || st.loss_tokens > st.tokens) abort();
    tokdata_free(&d);
    return 0;
}

#ifndef OWLORE_FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_jsonl_one(data, size); }
#endif
