/* tokenizer_gguf.h: tokenizer.json and tokenizer_config.json rebuilt from a
 * GGUF file's tokenizer.ggml.* keys, as transformers' GGUF loading builds the
 * tokenizer (integrations/gguf/gguf_tokenizer_mapping.py, transformers 5.25):
 *
 * - "gpt2" (byte-level BPE): the tokens as vocabulary (a token with a
 *   character outside GPT-2's byte alphabet is respelled byte by byte; a
 *   repeated token keeps its last id), the merges in file order, ByteLevel
 *   pre-tokenizer and decoder, or for a known tokenizer.ggml.pre (llama3,
 *   qwen2, ...) a Split with that model's regex before a ByteLevel without
 *   its own regex;
 * - "llama" (SentencePiece BPE): LlamaTokenizer's pipeline (Metaspace with
 *   prepend "first", byte fallback, Replace/ByteFallback/Fuse/Strip decoder)
 *   with the merges from the file or derived from the vocabulary and scores
 *   as transformers' generate_merges does;
 *
 * both with control tokens (token type 3) and the bos/eos/unk/pad tokens as
 * special added tokens and user-defined ones (type 4) as plain added tokens
 * (gpt2: not those respelled, which transformers skips), a TemplateProcessing post-processor adding BOS/EOS per
 * tokenizer.ggml.add_bos_token / add_eos_token (llama defaults add_bos to
 * true), and tokenizer_config.json with bos/eos/unk/pad tokens and
 * tokenizer.chat_template as chat_template. */
#ifndef OWLORE_DATA_TOKENIZER_GGUF_H
#define OWLORE_DATA_TOKENIZER_GGUF_H

#include "core/error.h"
#include "model/gguf.h"

#include <stddef.h>

typedef struct GgufTokenizerFiles {
    char *tokenizer_json; /* heap, NUL-terminated */
    size_t tokenizer_len;
    char *config_json;
    size_t config_len;
    char model[16]; /* "gpt2" or "llama" */
    int64_t ntokens, nmerges, nadded;
} GgufTokenizerFiles;

int tokenizer_files_from_gguf(const Gguf *g, GgufTokenizerFiles *out, OwError *err);
void tokenizer_files_free(GgufTokenizerFiles *f);

#endif
