/* generate.h: generating tokens after a prompt (greedy or sampled), for
 * `owlore generate` and for scoring by generation (`owlore eval --generate`).
 *
 * The prompt is fed to a Decoder at once (the prefill), then one token at a
 * time is chosen from the last logits (TokenSampler) and fed back (a step),
 * until a stop id (EOS, the chat template's end of turn), max_new_tokens, the
 * decoder's context or the caller says stop. The new ids are those transformers'
 * generate returns after the prompt: the stop id, when one ends it, is the last.
 * The stop id itself is not fed, so the decoder then holds the prompt and the
 * new tokens before it. */
#ifndef OWLORE_MODEL_GENERATE_H
#define OWLORE_MODEL_GENERATE_H

#include "data/tokenizer.h"
#include "model/decoder.h"
#include "model/sampling.h"

typedef enum {
    GEN_STOP_ID = 0,      /* a stop id was generated */
    GEN_STOP_MAX_NEW = 1, /* max_new_tokens were generated */
    GEN_STOP_CONTEXT = 2, /* the decoder's context is full */
    GEN_STOP_CALLER = 3,  /* on_token asked to stop */
} GenStop;

typedef struct GenerateOptions {
    int64_t max_new_tokens;
    const int32_t *stop_ids;
    int nstop;
    /* Called with each new id as soon as it is chosen (NULL: none); a nonzero return stops after it. */
    int (*on_token)(void *ctx, int32_t id);
    void *ctx;
} GenerateOptions;

typedef struct GenerateStats {
    int64_t prompt_tokens, new_tokens;
    int64_t steps;              /* tokens fed one at a time after the prefill (new_tokens - 1 at most) */
    double prefill_s, decode_s; /* wall time of the prefill, and of the steps (and draws) after it */
    GenStop stop;
} GenerateStats;

/* Feeds prompt[0..n) (n >= 1) after what the decoder holds and generates after it, appending the new ids to
 * out (not cleared). -1 with a message when the prompt does not fit the context or the model fails. */
int generate_tokens(Decoder *d, TokenSampler *s, const int32_t *prompt, int64_t n, const GenerateOptions *o, IdVec *out,
                    GenerateStats *st, OwError *err);

/* Greedy generation after prompt[0..n) on a fresh decoder of the model (context: n + max_new, at most the
 * model's max_position_embeddings): the new ids to out (cleared first). */
int generate_greedy(Model *m, const int32_t *prompt, int64_t n, int64_t max_new, const int32_t *stop_ids, int nstop,
                    IdVec *out, OwError *err);

/* The model's stop ids (at most 3, each once, those inside the vocabulary) into stops: config.json's
 * eos_token_id, the tokenizer's EOS and end_of_turn's id (a chat template's end of turn; NULL: none), tok may be
 * NULL (a byte-level model). Returns their count. */
int generate_stop_ids(const Model *m, const Tokenizer *tok, const char *end_of_turn, int32_t stops[3]);

#endif
