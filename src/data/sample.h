/* sample.h: a training sample rendered to text, before tokenization: the
 * text (valid UTF-8), the character spans of it that are in the loss, and
 * how the tokenizer wraps it. Made by the prompt and chat templates, turned
 * into ids and a loss mask by sample_encode (dataset_encode.c).
 *
 * Invariants: spans are in order, disjoint, non-empty and inside the text.
 * whole_loss samples (plain text) have no spans: every token is in the loss. */
#ifndef OWLORE_DATA_SAMPLE_H
#define OWLORE_DATA_SAMPLE_H

#include "core/error.h"
#include "data/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

typedef struct LossSpan {
    size_t start, end; /* byte offsets in text, [start, end) */
} LossSpan;

typedef struct RenderedSample {
    char *text;
    size_t len, cap;
    LossSpan *spans;
    size_t nspans, spans_cap;
    int whole_loss;  /* every token is in the loss (plain text) */
    int add_special; /* encode with the post-processor (BOS/EOS of its template) */
    int append_eos;  /* the EOS id after the text, unless the post-processor already ended with it */
} RenderedSample;

/* Empties s for reuse (keeps its buffers). */
void sample_reset(RenderedSample *s);
void sample_free(RenderedSample *s);
void sample_append(RenderedSample *s, const char *p, size_t n);
void sample_append_str(RenderedSample *s, const char *p);
/* Marks [start, s->len) as a loss span (nothing when empty). */
void sample_add_span(RenderedSample *s, size_t start);

/* Python's str.strip(): the range [*b, *e) of s without leading and trailing
 * characters for which str.isspace() is true (s is valid UTF-8). */
void text_strip(const char *s, size_t n, size_t *b, size_t *e);

/* A growable byte array (loss masks). */
typedef struct ByteVec {
    uint8_t *data;
    size_t len, cap;
} ByteVec;
void bytevec_push(ByteVec *v, uint8_t x);
void bytevec_free(ByteVec *v);

#endif
