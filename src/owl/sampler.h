/* sampler.h: which decoder blocks are trainable in each sampling period.
 *
 * Every `interval` optimizer steps the sampler draws `gamma` distinct blocks
 * with probabilities p (sequential sampling without replacement: draw one
 * block with probability proportional to p among those not yet drawn,
 * repeat), from its own seeded random stream. Modes give p:
 *   owl          p_l = D_l / sum D   (D: outlier ratios from a ratios file)
 *   uniform      p_l = 1 / L (LISA)
 *   owl_reverse  p_l = (max D - D_l) / sum (renormalised)
 *   increase     p_l proportional to l + 1 (deeper blocks more often)
 *   decrease     p_l proportional to L - l
 * The state (random stream position, current set, period) is plain data so
 * a checkpoint can save and restore it and a resumed run draws the same
 * blocks. A forced schedule (for tests and ablations) replaces the draws. */
#ifndef OWLORE_OWL_SAMPLER_H
#define OWLORE_OWL_SAMPLER_H

#include "core/error.h"
#include "core/rng.h"

#include <stdint.h>

typedef enum {
    SAMPLING_OWL = 0,
    SAMPLING_UNIFORM,
    SAMPLING_OWL_REVERSE,
    SAMPLING_INCREASE,
    SAMPLING_DECREASE,
    SAMPLING_ALL
} SamplingMode;

#define SAMPLER_MAX_LAYERS 512

typedef struct Sampler {
    int num_layers;
    int gamma;
    SamplingMode mode;
    double probs[SAMPLER_MAX_LAYERS];
    Rng rng;
    /* forced schedule: nforced periods, each a set of blocks (bitmask rows) */
    int nforced;
    uint8_t *forced; /* nforced * num_layers flags */
    /* current draw */
    int64_t period;                 /* index of the current period, -1 before the first draw */
    int active[SAMPLER_MAX_LAYERS]; /* sorted block indices */
    int nactive;
} Sampler;

/* Names indexed by SamplingMode, ending in NULL: "owl", "uniform", "owl_reverse",
 * "increase", "decrease", "all" (train_config parses with it). */
extern const char *const sampling_mode_names[];
const char *sampling_mode_name(SamplingMode m);

/* ratios: per-block outlier ratios (needed for owl and owl_reverse, else may be NULL). */
int sampler_init(Sampler *s, int num_layers, int gamma, SamplingMode mode, const double *ratios, uint64_t seed,
                 OwError *err);
void sampler_free(Sampler *s);
/* Parses "0,2;1,3;..." (one period per ';'); each period must name exactly gamma distinct blocks. */
int sampler_force(Sampler *s, const char *schedule, OwError *err);
/* Draws the set for the next period (period += 1). */
void sampler_draw(Sampler *s);
int sampler_is_active(const Sampler *s, int layer);

/* Exact inclusion probabilities of sequential sampling without replacement,
 * by enumeration over ordered draws (for tests; exponential in gamma). */
void sampler_inclusion_exact(const double *p, int n, int gamma, double *incl);

#endif
