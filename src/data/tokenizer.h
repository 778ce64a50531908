/* tokenizer.h: the Hugging Face tokenizer.json BPE tokenizer (public API).
 *
 * Loads a tokenizer.json and encodes/decodes exactly as the PyPI `tokenizers`
 * library (0.23) does, for the BPE pipelines LLaMA-family checkpoints use:
 *   - SentencePiece-style BPE (LLaMA-2, Mistral, TinyStories): normalizer
 *     Sequence[Prepend("▁"), Replace(" ", "▁")] or the Metaspace
 *     pre-tokenizer, byte_fallback to <0xNN>, unk token, fuse_unk;
 *   - byte-level BPE (LLaMA-3): Split(regex, run with PCRE2) + ByteLevel,
 *     ignore_merges;
 *   - added/special tokens matched before the model, TemplateProcessing, and
 *     the ByteFallback/Fuse/Strip/Replace/Metaspace/ByteLevel decoders.
 * Anything else in a tokenizer.json is refused at load time with a message
 * naming the file, the JSON path and the value; nothing is silently skipped.
 *
 * Invalid UTF-8 input: `tokenizers` only accepts valid Unicode strings, and
 * transformers users read text with errors="replace". tokenizer_encode does
 * the same first: every maximal invalid subsequence becomes U+FFFD (the
 * rule of Python's bytes.decode(errors="replace") and Rust's
 * String::from_utf8_lossy), then the text is encoded.
 *
 * A Tokenizer is immutable after loading and may be shared by threads. The
 * per-thread mutable state (regex match data, scratch buffers, word cache)
 * lives in a TokenizerWork; tokenizer_encode makes a temporary one per call,
 * tokenizer_encode_with reuses the caller's (faster for many small texts). */
#ifndef OWLORE_DATA_TOKENIZER_H
#define OWLORE_DATA_TOKENIZER_H

#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct Tokenizer Tokenizer;
typedef struct TokenizerWork TokenizerWork;

/* A growable array of token ids; {0} is an empty vector. */
typedef struct IdVec {
    int32_t *data;
    size_t len, cap;
} IdVec;

void idvec_push(IdVec *v, int32_t id);
void idvec_free(IdVec *v);

/* path_or_dir: a tokenizer.json, or a directory holding one. The
 * tokenizer_config.json / special_tokens_map.json next to it (when present)
 * give the BOS/EOS tokens. Returns 0, or -1 with a message in err. */
int tokenizer_load(const char *path_or_dir, Tokenizer **out, OwError *err);
/* The same from tokenizer.json bytes in memory; `name` is used in messages.
 * BOS/EOS come from the post-processor template only. */
int tokenizer_load_from_memory(const char *json, size_t len, const char *name, Tokenizer **out, OwError *err);
/* tokenizer_load from tokenizer.json text already in memory (e.g. rewritten by
 * tokenizer_load_mode): `file` is the tokenizer.json it stands for; it names
 * messages, and BOS/EOS come from the configs in its directory as in
 * tokenizer_load. tokenizer_hash is that of `json`. */
int tokenizer_load_from_text(const char *json, size_t len, const char *file, Tokenizer **out, OwError *err);
void tokenizer_free(Tokenizer *tok);

/* Encodes text (len bytes, any bytes: invalid UTF-8 is replaced first, see
 * above). add_special: apply the post-processor template (BOS/EOS), like
 * `encode(text, add_special_tokens=True)`. out is cleared, then filled. */
int tokenizer_encode(const Tokenizer *tok, const char *text, size_t len, int add_special, IdVec *out, OwError *err);

TokenizerWork *tokenizer_work_new(void);
void tokenizer_work_free(TokenizerWork *work);
/* tokenizer_encode with caller-owned scratch state (one per thread). The work
 * remembers which tokenizer it last served and resets its cache on a change. */
int tokenizer_encode_with(const Tokenizer *tok, TokenizerWork *work, const char *text, size_t len, int add_special,
                          IdVec *out, OwError *err);

/* Decodes ids into a new NUL-terminated heap string (*text, length *len), like
 * `decode(ids, skip_special_tokens=skip_special)`. An id that is neither in
 * the vocabulary nor an added token is an error naming it (HF drops it). */
int tokenizer_decode(const Tokenizer *tok, const int32_t *ids, size_t n, int skip_special, char **text, size_t *len,
                     OwError *err);

/* Id of a token string (added tokens by content, then the model vocabulary);
 * -1 when absent. */
int32_t tokenizer_token_id(const Tokenizer *tok, const char *token);
/* Token string of an id (as HF id_to_token: a normalized added token shows
 * its normalized form); NULL when the id has none. Valid while tok lives. */
const char *tokenizer_id_to_token(const Tokenizer *tok, int32_t id);
/* 1 + the largest id (model vocabulary and added tokens): the embedding rows
 * a model needs. */
int64_t tokenizer_vocab_size(const Tokenizer *tok);
/* BOS/EOS ids from tokenizer_config.json or special_tokens_map.json, else from
 * the template (the special token before / after $A); -1 when unknown. */
int32_t tokenizer_bos_id(const Tokenizer *tok);
int32_t tokenizer_eos_id(const Tokenizer *tok);
/* 1 when the id is a special added token (what skip_special removes). */
int tokenizer_is_special(const Tokenizer *tok, int32_t id);
/* The ids the post-processor (TemplateProcessing "single") puts before and
 * after the text when add_special is set; counts may be 0. Valid while tok lives. */
void tokenizer_template(const Tokenizer *tok, const int32_t **before, size_t *n_before, const int32_t **after,
                        size_t *n_after);
/* xxh64 (seed 0) of the tokenizer.json bytes: a key for caches of encoded data. */
uint64_t tokenizer_hash(const Tokenizer *tok);
/* The file it was loaded from (or the name given to load_from_memory). */
const char *tokenizer_path(const Tokenizer *tok);

/* Pre-tokenization only (normalizer and added tokens not applied), like
 * `tokenizer.pre_tokenizer.pre_tokenize_str(text)`: calls fn with the byte
 * range [start, end) in text of each pre-token. Refused (-1) when text is
 * not valid UTF-8 or when a stage rewrites the text (Metaspace, a ByteLevel
 * prefix space), since pre-tokens then have no range in the input. For
 * debugging and tests. */
typedef void (*TokenizerSpanFn)(void *ctx, size_t start, size_t end);
int tokenizer_pre_tokenize(const Tokenizer *tok, TokenizerWork *work, const char *text, size_t len, TokenizerSpanFn fn,
                           void *ctx, OwError *err);

/* Builds a tokenizer.json from a template tokenizer.json whose model.vocab and
 * model.merges are replaced by a GPT-2 style vocabulary file (a JSON object
 * token -> id, e.g. encoder.json / vocab.json) and merges file (one "a b" per
 * line, an optional "#version" first line; e.g. vocab.bpe / merges.txt).
 * Writes out_path atomically. */
int tokenizer_build_json(const char *template_json, const char *vocab_json, const char *merges_txt,
                         const char *out_path, OwError *err);

#endif
