/* fuzz_tokenizer_load.c: libFuzzer target for the tokenizer.json loader.
 * The input is a tokenizer.json; when it loads, a few strings are encoded
 * and decoded with it (ids must stay inside the vocabulary).
 * Built by tests/fuzz/CMakeLists.txt (OWLORE_FUZZ=ON, clang); the body is
 * also replayed on the corpus and regressions by test_fuzz_regressions.c
 * (OWLORE_FUZZ_REPLAY defined). */
#include "data/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int fuzz_tokenizer_load_one(const uint8_t *data, size_t size);

int fuzz_tokenizer_load_one(const uint8_t *data, size_t size) {
    Tokenizer *tok = NULL;
    OwError err;
    if (tokenizer_load_from_memory((const char *)data, size, "fuzz.json", &tok, &err) != 0) {
        if (!strstr(err.msg, "fuzz.json")) abort(); /* every refusal names the file */
        return 0;
    }
    static const char *const texts[] = {"", "Hello world, it's 12345!",
                                        " <s>a</s> \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80", "ab\xff\xfe  \t\n\r\n x",
                                        "\xe2\x96\x81\xe2\x96\x81 <|begin_of_text|>"};
    IdVec ids = {0};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        if (tokenizer_encode(tok, texts[i], strlen(texts[i]), (int)(i & 1), &ids, &err) != 0) continue;
        for (size_t k = 0; k < ids.len; k++)
            if (ids.data[k] < 0 || ids.data[k] >= tokenizer_vocab_size(tok)) abort();
        char *text = NULL;
        size_t len;
        if (tokenizer_decode(tok, ids.data, ids.len, (int)(i & 1), &text, &len, &err) == 0) free(text);
    }
    idvec_free(&ids);
    tokenizer_free(tok);
    return 0;
}

#ifndef OWLORE_FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_tokenizer_load_one(data, size); }
#endif
