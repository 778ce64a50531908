/* sampling.c: see sampling.h. Probabilities are exp((logit - max) / T) in
 * double, unnormalised (Z their sum). The nucleus is found by sorting the
 * tokens by probability (ties: lower id first) and taking the shortest prefix
 * whose mass reaches top_p * Z; to keep a 50k vocabulary cheap only the
 * candidates within 2^-40 of the top are sorted when the mass left out is
 * below 1 - top_p (then the nucleus is a prefix of them, as of the full
 * order). A draw u in [0, 1) picks the first token of the walk whose running
 * mass exceeds u times the kept mass. */
#include "model/sampling.h"

#include "core/error.h"

#include <math.h>
#include <stdlib.h>

/* a token and its probability, sorted together (qsort's comparator has no context) */
struct TokenCand {
    double p;
    int32_t id;
};

int32_t sample_greedy(const float *logits, int64_t n) {
    int32_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (logits[i] > logits[best] || (isnan(logits[best]) && !isnan(logits[i]))) best = (int32_t)i;
    return best;
}

void token_sampler_init(TokenSampler *s, int64_t vocab, double temperature, double top_p, uint64_t seed) {
    OW_CHECKF(vocab > 0 && temperature >= 0.0 && top_p > 0.0 && top_p <= 1.0,
              "token sampler: vocab %lld, temperature %g, top_p %g", (long long)vocab, temperature, top_p);
    s->temperature = temperature;
    s->top_p = top_p;
    s->vocab = vocab;
    rng_init(&s->rng, seed, RNG_STREAM_GENERATE);
    s->prob = ow_xmalloc((size_t)vocab * sizeof(double));
    s->cand = ow_xmalloc((size_t)vocab * sizeof(struct TokenCand));
}

void token_sampler_free(TokenSampler *s) {
    free(s->prob);
    free(s->cand);
    s->prob = NULL;
    s->cand = NULL;
}

static int cand_cmp(const void *a, const void *b) {
    const struct TokenCand *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* The nucleus, most probable first, in s->cand; returns its size and its mass in *kept. */
static int64_t nucleus(TokenSampler *s, double Z, double *kept) {
    const double cut = ldexp(1.0, -40); /* relative to the top token's 1.0 */
    int64_t V = s->vocab, nc = 0;
    double left_out = 0.0;
    for (int64_t i = 0; i < V; i++)
        if (s->prob[i] < cut) left_out += s->prob[i];
    int all = left_out >= (1.0 - s->top_p) * Z;
    struct TokenCand *c = s->cand;
    for (int64_t i = 0; i < V; i++)
        if (all || s->prob[i] >= cut) c[nc++] = (struct TokenCand){s->prob[i], (int32_t)i};
    qsort(c, (size_t)nc, sizeof *c, cand_cmp);
    double cum = 0.0;
    int64_t k = 0;
    while (k < nc) {
        cum += c[k++].p;
        if (cum >= s->top_p * Z) break;
    }
    *kept = cum;
    return k;
}

int32_t token_sampler_next(TokenSampler *s, const float *logits) {
    int64_t V = s->vocab;
    int32_t top = sample_greedy(logits, V);
    if (s->temperature == 0.0) return top;
    double mx = logits[top], Z = 0.0;
    for (int64_t i = 0; i < V; i++) {
        double p = isnan(logits[i]) ? 0.0 : exp(((double)logits[i] - mx) / s->temperature);
        s->prob[i] = p;
        Z += p;
    }
    double u = rng_uniform(&s->rng);
    if (s->top_p >= 1.0) { /* the whole distribution, in id order */
        double target = u * Z, cum = 0.0;
        int32_t last = top;
        for (int64_t i = 0; i < V; i++) {
            if (s->prob[i] <= 0.0) continue;
            cum += s->prob[i];
            last = (int32_t)i;
            if (cum > target) return last;
        }
        return last;
    }
    double kept;
    int64_t k = nucleus(s, Z, &kept);
    double target = u * kept, cum = 0.0;
    for (int64_t j = 0; j < k; j++) {
        cum += s->cand[j].p;
        if (cum > target) return s->cand[j].id;
    }
    return s->cand[k - 1].id;
}
