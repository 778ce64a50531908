/* dataset.h: turning a dataset file into token data (ids, loss mask,
 * document offsets) with a Tokenizer, exactly as a transformers training
 * script would (public API).
 *
 * Formats (key `format`; auto picks by extension, then by the keys of the
 * first record that parses):
 *   text    plain text (.txt). Documents are split on doc_separator (e.g.
 *           "<|endoftext|>"; empty: the whole file is one document), each
 *           stripped of leading/trailing whitespace (Python's str.strip()),
 *           encoded with the post-processor (BOS) and followed by EOS
 *           (append_eos). Every token is in the loss.
 *   jsonl   JSON lines {"text": ...}: the text as is, with BOS (post-processor)
 *           and EOS (append_eos), every token in the loss.
 *   alpaca  {"instruction", "input" (optional), "output"} with the Stanford
 *           Alpaca prompt (prompt_template.h); loss on output + EOS.
 *   chat    {"messages": [{"role", "content"}, ...]} rendered with
 *           chat_template (chat_template.h); loss on the assistant turns.
 *   tokens  an owlore token file (tokfile.h): nothing to do here.
 * Records are one JSON object per line, or one JSON array of objects (a file
 * that starts with '[' and is not named .jsonl/.ndjson). A leading UTF-8 byte-order mark is
 * skipped. Invalid UTF-8 is replaced by U+FFFD first (Python's
 * errors="replace", which the tokenizer also applies), with a count.
 * train_on_prompt puts every token of alpaca/chat samples in the loss.
 *
 * EOS after text documents: a causal LM packed by concatenation needs to see
 * where a document ends, so owlore appends EOS by default (as GPT-style
 * pre-training pipelines do); append_eos false leaves it out. An EOS already
 * added by the post-processor is not doubled.
 *
 * Bad input: a malformed JSON line, a record with a missing or mistyped field,
 * an unknown role or a conversation out of order is reported with file and
 * line and skipped (a count in DataStats), or fatal with `strict`. A NUL in a
 * JSON string (\u0000: invalid record; a raw NUL byte: malformed) and a lone
 * UTF-16 surrogate escape (malformed) are refused the same way: owlore's text
 * is NUL-terminated, so a NUL would silently cut the record. Empty
 * samples (whitespace-only text or output, no assistant content) are skipped
 * with a count. A sample whose loss mask cannot be made exact
 * (sample_encode.h) is always fatal. No usable sample at all is an error.
 * Each kept sample is one document of the result (doc_offsets). */
#ifndef OWLORE_DATA_DATASET_H
#define OWLORE_DATA_DATASET_H

#include "data/chat_template.h"
#include "data/tokenizer.h"
#include "data/tokenizer_mode.h"
#include "data/tokfile.h"

typedef enum {
    DATA_FORMAT_AUTO = 0,
    DATA_FORMAT_TEXT = 1,
    DATA_FORMAT_JSONL = 2,
    DATA_FORMAT_ALPACA = 3,
    DATA_FORMAT_CHAT = 4,
    DATA_FORMAT_TOKENS = 5,
} DataFormat;

#define DATA_SEPARATOR_MAX 256

/* The keys that shape tokenized data (names as in train_config.c). */
typedef struct DataOptions {
    DataFormat format;
    ChatTemplateKind chat_template;
    TokenizerMode tokenizer_mode;
    char doc_separator[DATA_SEPARATOR_MAX]; /* "" = none */
    int append_eos;                         /* default 1 */
    int train_on_prompt;                    /* default 0 */
    int strict;                             /* default 0 */
} DataOptions;

void data_options_defaults(DataOptions *o);
/* Names indexed by DataFormat, ending in NULL (train_config parses with it). */
extern const char *const data_format_names[];
const char *data_format_name(DataFormat f);

typedef struct DataStats {
    DataFormat format;     /* the format used (auto resolved) */
    int64_t records;       /* documents / lines with a record / array elements seen */
    int64_t samples;       /* kept */
    int64_t malformed;     /* skipped: not JSON, or not an object */
    int64_t invalid;       /* skipped: missing/mistyped fields, bad roles or order */
    int64_t empty;         /* skipped: nothing to learn */
    int64_t utf8_replaced; /* invalid UTF-8 sequences replaced by U+FFFD */
    int64_t utf8_first_line;
    int64_t tokens, loss_tokens;
    char first_problem[512]; /* the first skipped record's message */
} DataStats;

/* The format of a file: `tokens` for an owlore token file; .txt -> text;
 * .jsonl/.json/other JSON -> by the keys of the first record that parses
 * ("messages" chat, "instruction" alpaca, "text" jsonl); else text. */
int dataset_detect_format(const char *path, DataFormat *out, OwError *err);
/* Whether a JSON dataset's text is one JSON array of records (it starts with '[', unless name ends in
 * .jsonl or .ndjson) rather than JSON lines. */
int dataset_is_json_array(const char *name, const char *data, size_t len);

/* Tokenizes a dataset file into out (heap data; tokdata_free). out gets the
 * tokenizer's vocab_size and hash, and source_hash = dataset_source_hash of
 * the file. stats may be NULL. Checks the options against the tokenizer
 * first (EOS for append_eos, the chat template's tokens). */
int dataset_tokenize_file(const char *path, const Tokenizer *tok, const DataOptions *opt, TokData *out,
                          DataStats *stats, OwError *err);
/* The same from bytes in memory; `name` stands for the file in messages and
 * format detection (by extension). */
int dataset_tokenize_buffer(const char *name, const char *data, size_t len, const Tokenizer *tok,
                            const DataOptions *opt, TokData *out, DataStats *stats, OwError *err);

/* The source hash of token data made from a file: xxh64 of its bytes,
 * combined with the resolved format and the options and tokenizer settings
 * that change the result (template, separator, append_eos, train_on_prompt,
 * BOS/EOS ids). With tokenizer_hash it keys the cache of train --data. */
int dataset_source_hash(const char *path, const Tokenizer *tok, const DataOptions *opt, uint64_t *hash, OwError *err);

/* Logs what a tokenization kept and skipped (one line, plus a warning when
 * records were skipped). */
void dataset_log_stats(const char *path, const DataStats *st);

#endif
