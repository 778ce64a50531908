/* eval_generate.h: scoring commonsense sets by generation, the LLM-Adapters
 * way (`owlore eval --generate`): each item's context ids (the Alpaca prompt
 * with BOS, exactly the ids the log-likelihood scoring puts before every
 * option) are decoded greedily until a stop id or max_new tokens, the new
 * ids (the stop id left out) become text, and commonsense_extract_answer
 * names the chosen option (-1: none, counted as unparsed and wrong).
 *
 * Decoding is greedy on one decoder reused item after item (truncated to
 * empty before each): the ids equal generate_greedy's on the same prompt. A
 * context longer than max_position_embeddings - max_new keeps its last ids
 * (cut from the left, as the log-likelihood scoring cuts long contexts). */
#ifndef OWLORE_TRAIN_EVAL_GENERATE_H
#define OWLORE_TRAIN_EVAL_GENERATE_H

#include "data/tokenizer.h"
#include "model/model.h"
#include "train/eval.h"

/* The figures of a set scored by generation. */
typedef struct EvalGenScore {
    int64_t items, hit, unparsed;
    double acc; /* hit / items (NaN without items) */
} EvalGenScore;

/* The accounting: pred[i] (set->n entries) gets commonsense_extract_answer of texts[i] among item i's options
 * (McItem.text), and out the hits against the labels and the -1 extractions. */
void eval_generate_score(const McSet *set, const char *const *texts, int *pred, EvalGenScore *out);

typedef struct EvalGenOptions {
    int64_t max_new;         /* new tokens at most per item (>= 1) */
    const int32_t *stop_ids; /* decoding stops after one of these (it is not part of the text) */
    int nstop;
    const Tokenizer *tok; /* the ids' text (NULL: bytes) */
    double progress_s;    /* seconds between progress lines on stderr (0: none) */
} EvalGenOptions;

/* Generates after every item's context: texts[i] (heap, NUL-terminated; eval_generate_texts_free) and, when ids
 * is not NULL, ids[i] (the new ids, the stop id included as generate_greedy returns them; idvec_free each).
 * *seconds gets the wall time. -1 with a message (naming the item) when max_new leaves no room or the model fails. */
int eval_generate_texts(Model *m, const McSet *set, const EvalGenOptions *o, char **texts, IdVec *ids, double *seconds,
                        OwError *err);
void eval_generate_texts_free(char **texts, int64_t n);

#endif
