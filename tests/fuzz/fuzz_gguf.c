/* fuzz_gguf.c: libFuzzer target for the GGUF reader and what reads an open
 * file: the input is a GGUF file. Checked: gguf_open_memory returns 0 or -1
 * with a message naming the file; when it opens, every key is read through
 * the typed getters of its type, every dequantisable tensor (up to 1 MiB of
 * output) is dequantised, and the LLaMA config and the tokenizer files are
 * built or refused with a message naming the file; a built tokenizer.json is
 * loaded (a refusal by the loader is allowed: the GGUF may name merges of
 * tokens it lacks, which tokenizers refuses too).
 * Seeds: tests/fuzz/corpus/gguf/ (tests/fuzz/make_gguf_seeds.py writes them).
 * Built by tests/fuzz/CMakeLists.txt (OWLORE_FUZZ=ON, clang); the body is
 * also replayed on the corpus and regressions by test_fuzz_regressions.c
 * (OWLORE_FUZZ_REPLAY defined). */
#include "data/tokenizer.h"
#include "data/tokenizer_gguf.h"
#include "model/gguf.h"
#include "model/gguf_model.h"
#include "model/gguf_quant.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int fuzz_gguf_one(const uint8_t *data, size_t size);

#define FG_NAME "fuzz.gguf"

static void fg_check(int rc, const OwError *err) {
    if (rc != 0 && !strstr(err->msg, FG_NAME)) abort(); /* every refusal names the file */
}

/* Reads one key through the getter of its type; it must succeed. */
static void fg_read_kv(const Gguf *g, const GgufKv *kv) {
    OwError err;
    union {
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        float f;
        double d;
        int b;
        int64_t c;
        GgufStr s;
    } v;
    void *arr = NULL;
    uint64_t n = 0;
    int rc = 0;
    switch (kv->type) {
    case GGUF_TYPE_UINT32: rc = gguf_get_u32(g, kv->key, &v.u32, &err); break;
    case GGUF_TYPE_INT32: rc = gguf_get_i32(g, kv->key, &v.i32, &err); break;
    case GGUF_TYPE_UINT64: rc = gguf_get_u64(g, kv->key, &v.u64, &err); break;
    case GGUF_TYPE_FLOAT32: rc = gguf_get_float(g, kv->key, &v.d, &err); break;
    case GGUF_TYPE_FLOAT64: rc = gguf_get_float(g, kv->key, &v.d, &err); break;
    case GGUF_TYPE_STRING: rc = gguf_get_str(g, kv->key, &v.s, &err); break;
    case GGUF_TYPE_BOOL: fg_check(gguf_get_bool(g, kv->key, &v.b, &err), &err); break; /* may be 2..255 */
    case GGUF_TYPE_ARRAY:
        if (kv->elem_type == GGUF_TYPE_STRING) rc = gguf_get_str_array(g, kv->key, (GgufStr **)&arr, &n, &err);
        if (kv->elem_type == GGUF_TYPE_FLOAT32) rc = gguf_get_f32_array(g, kv->key, (float **)&arr, &n, &err);
        if (kv->elem_type == GGUF_TYPE_INT32) rc = gguf_get_i32_array(g, kv->key, (int32_t **)&arr, &n, &err);
        if (arr && n != kv->count) abort();
        break;
    default: fg_check(gguf_get_count(g, kv->key, &v.c, &err), &err); break; /* negative values refused */
    }
    if (rc != 0) abort();
    free(arr);
}

static void fg_dequantize(const GgufTensor *t) {
    const GgmlTypeInfo *ti = ggml_type_info(t->type);
    if (!ti || !ti->dequant || t->numel > (1 << 18)) return;
    float *y = malloc((size_t)t->numel * sizeof *y);
    OwError err;
    if (!y || ggml_dequantize(t->type, t->data, y, t->numel, t->name, &err) != 0) abort();
    free(y);
}

int fuzz_gguf_one(const uint8_t *data, size_t size) {
    Gguf g;
    OwError err;
    if (gguf_open_memory(data, size, FG_NAME, &g, &err) != 0) {
        fg_check(-1, &err);
        return 0;
    }
    for (int i = 0; i < g.nkv; i++) fg_read_kv(&g, &g.kv[i]);
    for (int i = 0; i < g.ntensors; i++) {
        if (gguf_find_tensor(&g, g.tensors[i].name) != &g.tensors[i]) abort();
        fg_dequantize(&g.tensors[i]);
    }
    ModelConfig cfg;
    fg_check(gguf_model_config(&g, &cfg, &err), &err);
    GgufTokenizerFiles tf;
    int rc = tokenizer_files_from_gguf(&g, &tf, &err);
    fg_check(rc, &err);
    if (rc == 0) {
        Tokenizer *tok = NULL;
        if (tokenizer_load_from_memory(tf.tokenizer_json, tf.tokenizer_len, "fuzz.json", &tok, &err) == 0) {
            IdVec ids = {0};
            if (tokenizer_encode(tok, "Hello world <s>", 15, 1, &ids, &err) == 0)
                for (size_t k = 0; k < ids.len; k++)
                    if (ids.data[k] < 0 || ids.data[k] >= tokenizer_vocab_size(tok)) abort();
            idvec_free(&ids);
            tokenizer_free(tok);
        }
        tokenizer_files_free(&tf);
    }
    gguf_close(&g);
    return 0;
}

#ifndef OWLORE_FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_gguf_one(data, size); }
#endif
