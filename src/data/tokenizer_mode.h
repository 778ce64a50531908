/* tokenizer_mode.h: loading a tokenizer.json the way the user's training
 * script would see it (key tokenizer_mode).
 *
 * `tokenizers`: the tokenizer.json as it is (PyPI tokenizers'
 * Tokenizer.from_file; what tokenizer_load does).
 *
 * `transformers` (the default): what transformers 5 (checked against 5.24)
 * AutoTokenizer.from_pretrained gives. When tokenizer_config.json beside the
 * file names tokenizer_class LlamaTokenizer or LlamaTokenizerFast, the
 * tokenizer.json has a BPE model and no ByteLevel pre-tokenizer (transformers
 * sends byte-level ones to its generic backend), transformers does not run the
 * tokenizer.json pipeline: LlamaTokenizer.__init__ rebuilds the backend from
 * the vocabulary and merges alone:
 *   model          BPE(vocab, merges, fuse_unk, byte_fallback; no unk_token,
 *                  no dropout, ignore_merges false)
 *   normalizer     none
 *   pre_tokenizer  Metaspace("▁", split false, prepend_scheme "never" when
 *                  add_prefix_space is false, else "always" when legacy is
 *                  true, else "first"; legacy defaults to false and
 *                  add_prefix_space to true)
 *   decoder        Replace("▁", " "), ByteFallback, Fuse, and Strip(" ", 1, 0)
 *                  when add_prefix_space
 *   post_processor the tokenizer.json's, unless tokenizer_config.json sets
 *                  add_bos_token or add_eos_token (or the file has none): then
 *                  TemplateProcessing "[bos:0] $A:0 [eos:0]"
 *                  (update_post_processor)
 *   added tokens   tokenizer_config.json's added_tokens_decoder (the
 *                  tokenizer.json's when absent), plus bos/eos/unk/pad tokens
 *                  named there that are missing (special, not normalized).
 * The ids then differ from the plain tokenizer.json on leading spaces and on
 * text right after a special token. Everything else loads as is in both
 * modes. Not emulated: auto_map (remote code), a model type's own tokenizer
 * class chosen from config.json, MistralCommonBackend.
 *
 * The rewritten tokenizer.json text is what tokenizer_hash covers, so data
 * tokenized in one mode is never taken for the other. */
#ifndef OWLORE_DATA_TOKENIZER_MODE_H
#define OWLORE_DATA_TOKENIZER_MODE_H

#include "data/tokenizer.h"

typedef enum { TOKENIZER_MODE_TRANSFORMERS = 0, TOKENIZER_MODE_TOKENIZERS = 1 } TokenizerMode;

/* Names indexed by TokenizerMode, ending in NULL (train_config parses with it). */
extern const char *const tokenizer_mode_names[];
const char *tokenizer_mode_name(TokenizerMode mode);

/* tokenizer_load (a tokenizer.json or a directory holding one) in `mode`.
 * *rebuilt (may be NULL) is set to 1 when the transformers rebuild applied. */
int tokenizer_load_mode(const char *path_or_dir, TokenizerMode mode, Tokenizer **out, int *rebuilt, OwError *err);

#endif
