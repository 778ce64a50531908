/* dataset_internal.h: the state of one dataset tokenization, shared by the
 * driver (dataset.c: options, problems, encoding, assembly) and the readers
 * (dataset_read.c: documents, JSON lines and arrays, record fields). Not a
 * public API. */
#ifndef OWLORE_DATA_DATASET_INTERNAL_H
#define OWLORE_DATA_DATASET_INTERNAL_H

#include "data/dataset.h"
#include "data/sample.h"
#include "data/sample_encode.h"

#include <cjson/cJSON.h>

typedef struct DatasetBuild {
    const char *name; /* the file, for messages */
    const Tokenizer *tok;
    const DataOptions *opt;
    DataFormat format;
    int with_mask; /* alpaca/chat without train_on_prompt */
    ChatTemplate chat;
    TokenizerWork *work;
    SampleScratch scratch;
    RenderedSample sample;
    ChatMessage *msgs;
    size_t msgs_cap;
    IdVec ids;
    ByteVec mask;
    uint64_t *offsets; /* doc offsets, ndocs + 1 */
    size_t ndocs, offsets_cap;
    DataStats *st;
    int warned;
    OwError *err;
} DatasetBuild;

typedef enum { PROBLEM_MALFORMED, PROBLEM_INVALID, PROBLEM_EMPTY } ProblemKind;

/* A record that is skipped: counted, the first few logged with `where`; in
 * strict mode (malformed/invalid) it is the error instead. Returns 0 (skip)
 * or -1 (stop, message in b->err). */
int build_problem(DatasetBuild *b, ProblemKind kind, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Encodes b->sample and appends it as a document. Returns 0 or -1. */
int build_add_sample(DatasetBuild *b, const char *where);

/* Readers (dataset_read.c): call build_add_sample / build_problem per record. */
int read_text_documents(DatasetBuild *b, const char *data, size_t len);
int read_json_records(DatasetBuild *b, const char *data, size_t len);
/* The format named by a record's keys; DATA_FORMAT_AUTO when none fits. */
DataFormat record_format(const cJSON *obj);
/* The format of JSON data (lines or an array) from its first object record;
 * an error naming the keys when no format fits. */
int detect_json_format(const char *name, const char *data, size_t len, DataFormat *out, OwError *err);

#endif
