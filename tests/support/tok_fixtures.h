/* tok_fixtures.h: the tokenizer fixtures of tests/fixtures/tokenizer (made by
 * tests/reference/make_tokenizer_fixtures.py): reading the zstd record files,
 * and a registry that loads the tokenizers they name (real ones from
 * ../shared, LLaMA-3 built from its GPT-2 style files, and variants). */
#ifndef OWLORE_TEST_TOK_FIXTURES_H
#define OWLORE_TEST_TOK_FIXTURES_H

#include "data/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

typedef struct TfRecord {
    int kind; /* 1 encode, 2 decode */
    int flag; /* add_special / skip_special */
    char tok[64];
    char name[256];
    const char *text; /* encode: input (NULL for "file:" inputs); decode: expected text */
    size_t text_len;
    uint64_t digest; /* xxh64 of the input (or file) / expected text */
    int32_t *ids;
    size_t n_ids;
} TfRecord;

typedef struct TfFile {
    TfRecord *recs;
    size_t n;
    char *raw;
} TfFile;

/* Reads tests/fixtures/<rel> (asserts on any problem). */
void tf_load(const char *rel, TfFile *out);
void tf_free(TfFile *f);

typedef struct TfRegistry TfRegistry;
TfRegistry *tf_registry_open(void);
void tf_registry_close(TfRegistry *r);
/* The tokenizer of a manifest name (loaded once per registry). */
Tokenizer *tf_get(TfRegistry *r, const char *name);
/* Path of its tokenizer.json (a temporary file for built ones and variants). */
const char *tf_path(TfRegistry *r, const char *name);
/* Names in the manifest (bases then variants); returns the count. */
size_t tf_names(TfRegistry *r, const char ***names);

/* Compares id sequences; on a difference fills msg with the first position,
 * the lengths and a window of ids and token strings around it; returns the
 * position, or -1 when equal. */
long tf_compare(const Tokenizer *tok, const int32_t *got, size_t ng, const int32_t *exp, size_t ne, char *msg,
                size_t cap);

#endif
