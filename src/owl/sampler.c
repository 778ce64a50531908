/* sampler.c: see sampler.h. */
#include "owl/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const sampling_mode_names[] = {"owl", "uniform", "owl_reverse", "increase", "decrease", "all", NULL};

const char *sampling_mode_name(SamplingMode m) { return sampling_mode_names[m]; }

int sampler_init(Sampler *s, int num_layers, int gamma, SamplingMode mode, const double *ratios, uint64_t seed,
                 OwError *err) {
    memset(s, 0, sizeof *s);
    if (num_layers < 1 || num_layers > SAMPLER_MAX_LAYERS)
        return ow_fail(err, "the sampler supports 1..%d blocks, the model has %d", SAMPLER_MAX_LAYERS, num_layers);
    if (mode == SAMPLING_ALL) gamma = num_layers;
    if (gamma < 1 || gamma > num_layers)
        return ow_fail(err, "gamma = %d sampled blocks is not possible: the model has %d blocks (hint: --gamma 1..%d)",
                       gamma, num_layers, num_layers);
    s->num_layers = num_layers;
    s->gamma = gamma;
    s->mode = mode;
    s->period = -1;
    rng_init(&s->rng, seed, RNG_STREAM_SAMPLER);
    double *p = s->probs, sum = 0, maxr = 0;
    for (int l = 0; l < num_layers; l++) {
        switch (mode) {
        case SAMPLING_OWL:
        case SAMPLING_OWL_REVERSE:
            if (!ratios)
                return ow_fail(err,
                               "sampling mode %s needs outlier ratios (hint: --ratios FILE from `owlore outliers`)",
                               sampling_mode_names[mode]);
            if (!(ratios[l] >= 0) || !isfinite(ratios[l]))
                return ow_fail(err, "outlier ratio of block %d is %g; ratios must be finite and non-negative", l,
                               ratios[l]);
            p[l] = ratios[l];
            if (ratios[l] > maxr) maxr = ratios[l];
            break;
        case SAMPLING_UNIFORM:
        case SAMPLING_ALL: p[l] = 1.0; break;
        case SAMPLING_INCREASE: p[l] = l + 1.0; break;
        case SAMPLING_DECREASE: p[l] = (double)(num_layers - l); break;
        }
    }
    if (mode == SAMPLING_OWL_REVERSE)
        for (int l = 0; l < num_layers; l++) p[l] = maxr - p[l];
    int nonzero = 0;
    for (int l = 0; l < num_layers; l++) {
        sum += p[l];
        nonzero += p[l] > 0;
    }
    if (nonzero < gamma)
        return ow_fail(err,
                       "sampling mode %s gives only %d blocks a non-zero probability, fewer than gamma = %d "
                       "(hint: lower --gamma or choose another --sampling mode)",
                       sampling_mode_names[mode], nonzero, gamma);
    for (int l = 0; l < num_layers; l++) p[l] /= sum;
    return 0;
}

void sampler_free(Sampler *s) {
    free(s->forced);
    s->forced = NULL;
    s->nforced = 0;
}

int sampler_force(Sampler *s, const char *schedule, OwError *err) {
    int L = s->num_layers;
    int periods = 1;
    for (const char *c = schedule; *c; c++) periods += *c == ';';
    uint8_t *f = ow_xcalloc((size_t)periods * (size_t)L, 1);
    const char *c = schedule;
    for (int per = 0; per < periods; per++) {
        int count = 0;
        while (*c && *c != ';') {
            char *end;
            long b = strtol(c, &end, 10);
            if (end == c || b < 0 || b >= L) {
                free(f);
                return ow_fail(err, "forced schedule \"%s\": period %d: expected block numbers 0..%d separated by ','",
                               schedule, per, L - 1);
            }
            if (f[per * L + b]) {
                free(f);
                return ow_fail(err, "forced schedule: period %d names block %ld twice", per, b);
            }
            f[per * L + b] = 1;
            count++;
            c = end;
            while (*c == ' ') c++;
            if (*c == ',') c++;
        }
        if (count != s->gamma) {
            free(f);
            return ow_fail(err, "forced schedule: period %d names %d blocks, gamma is %d", per, count, s->gamma);
        }
        if (*c == ';') c++;
    }
    free(s->forced);
    s->forced = f;
    s->nforced = periods;
    return 0;
}

void sampler_draw(Sampler *s) {
    int L = s->num_layers;
    s->period++;
    uint8_t chosen[SAMPLER_MAX_LAYERS];
    memset(chosen, 0, sizeof chosen);
    if (s->nforced) {
        memcpy(chosen, s->forced + (s->period % s->nforced) * L, (size_t)L);
    } else if (s->gamma == L) {
        memset(chosen, 1, (size_t)L);
    } else {
        for (int k = 0; k < s->gamma; k++) {
            double rest = 0;
            for (int l = 0; l < L; l++)
                if (!chosen[l]) rest += s->probs[l];
            double u = rng_uniform(&s->rng) * rest, acc = 0;
            int pick = -1;
            for (int l = 0; l < L; l++) {
                if (chosen[l] || s->probs[l] <= 0) continue;
                acc += s->probs[l];
                pick = l;
                if (u < acc) break;
            }
            OW_CHECK(pick >= 0);
            chosen[pick] = 1;
        }
    }
    s->nactive = 0;
    for (int l = 0; l < L; l++)
        if (chosen[l]) s->active[s->nactive++] = l;
}

int sampler_is_active(const Sampler *s, int layer) {
    for (int i = 0; i < s->nactive; i++)
        if (s->active[i] == layer) return 1;
    return 0;
}

static void incl_rec(const double *p, int n, int left, double prob, uint8_t *taken, double *incl) {
    if (left == 0) {
        for (int i = 0; i < n; i++)
            if (taken[i]) incl[i] += prob;
        return;
    }
    double rest = 0;
    for (int i = 0; i < n; i++)
        if (!taken[i]) rest += p[i];
    for (int i = 0; i < n; i++) {
        if (taken[i] || p[i] <= 0) continue;
        taken[i] = 1;
        incl_rec(p, n, left - 1, prob * p[i] / rest, taken, incl);
        taken[i] = 0;
    }
}

void sampler_inclusion_exact(const double *p, int n, int gamma, double *incl) {
    uint8_t taken[SAMPLER_MAX_LAYERS];
    memset(taken, 0, sizeof taken);
    for (int i = 0; i < n; i++) incl[i] = 0;
    incl_rec(p, n, gamma, 1.0, taken, incl);
}
