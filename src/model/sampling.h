/* sampling.h: choosing the next token from a row of logits: greedy, or a draw
 * at a temperature from the nucleus (top-p), as transformers' sampling does
 * (logits / T, softmax, the smallest set of the most probable tokens whose
 * mass reaches p, renormalised).
 *
 * Pure functions of the logits and the sampler's stream: the draws come from
 * the project's counter-based RNG (stream RNG_STREAM_GENERATE of the seed), one
 * uniform per sampled token, so the same seed and the same logits give the
 * same tokens on every run and every device. Ties in probability are broken
 * towards the lower id, so greedy picks the lowest id among equal maxima. */
#ifndef OWLORE_MODEL_SAMPLING_H
#define OWLORE_MODEL_SAMPLING_H

#include "core/rng.h"

#include <stdint.h>

typedef struct TokenSampler {
    double temperature; /* 0: greedy */
    double top_p;       /* in (0, 1]; 1: the whole distribution */
    Rng rng;
    int64_t vocab;
    double *prob;           /* scratch [vocab] */
    struct TokenCand *cand; /* scratch [vocab]: the nucleus's candidates, most probable first */
} TokenSampler;

/* The index of the largest logit (the lowest index among equal maxima; NaN never wins). */
int32_t sample_greedy(const float *logits, int64_t n);

/* A sampler over vocab tokens; temperature >= 0, top_p in (0, 1] (the caller checks the user's values). */
void token_sampler_init(TokenSampler *s, int64_t vocab, double temperature, double top_p, uint64_t seed);
void token_sampler_free(TokenSampler *s);
/* The next token for logits [vocab] (greedy when temperature is 0: no draw is used). */
int32_t token_sampler_next(TokenSampler *s, const float *logits);

#endif
