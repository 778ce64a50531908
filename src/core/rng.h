/* rng.h: seeded random streams. Every purpose has its own stream derived
 * from (--seed, purpose), so that a resumed run, a CPU run and a GPU run draw
 * the same numbers for the same purpose. A stream's whole state is
 * (key, counter): saving those two integers saves the stream. */
#ifndef OWLORE_CORE_RNG_H
#define OWLORE_CORE_RNG_H

#include <stdint.h>

typedef enum {
    RNG_STREAM_INIT = 1,        /* model initialisation */
    RNG_STREAM_DATA = 2,        /* data order, splits */
    RNG_STREAM_SAMPLER = 3,     /* layer sampling */
    RNG_STREAM_SROUND = 4,      /* stochastic rounding of bf16 updates */
    RNG_STREAM_RANGEFINDER = 5, /* randomized range finder test matrices */
    RNG_STREAM_DEMO = 6,        /* generated demo corpora */
    RNG_STREAM_CALIB = 7,       /* calibration sample selection */
    RNG_STREAM_GENERATE = 8,    /* token sampling of owlore generate */
} RngStream;

typedef struct Rng {
    uint64_t key;
    uint64_t counter;
} Rng;

/* Derives the key of stream `stream` from `seed` (splitmix64 mixing). */
void rng_init(Rng *r, uint64_t seed, uint64_t stream);
uint64_t rng_key_for(uint64_t seed, uint64_t stream);
uint32_t rng_u32(Rng *r);
uint64_t rng_u64(Rng *r);
/* Uniform double in [0, 1) with 53 random bits. */
double rng_uniform(Rng *r);
/* Uniform integer in [0, n) without modulo bias; n > 0. */
uint64_t rng_below(Rng *r, uint64_t n);
/* Standard normal (Box-Muller, one value per call). */
double rng_normal(Rng *r);

#endif
