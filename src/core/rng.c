/* rng.c: see rng.h. Each draw consumes one Philox block (counter += 1). */
#include "core/rng.h"

#include "core/error.h"
#include "core/philox.h"

#include <math.h>

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t rng_key_for(uint64_t seed, uint64_t stream) {
    return splitmix64(splitmix64(seed) ^ (stream * 0xA24BAED4963EE407ull));
}

void rng_init(Rng *r, uint64_t seed, uint64_t stream) {
    r->key = rng_key_for(seed, stream);
    r->counter = 0;
}

static Philox4 next_block(Rng *r) {
    Philox4 b = philox4x32_10(r->key, r->counter, 0);
    r->counter++;
    return b;
}

uint32_t rng_u32(Rng *r) { return next_block(r).v[0]; }

uint64_t rng_u64(Rng *r) {
    Philox4 b = next_block(r);
    return ((uint64_t)b.v[0] << 32) | b.v[1];
}

double rng_uniform(Rng *r) { return (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

uint64_t rng_below(Rng *r, uint64_t n) {
    OW_CHECK(n > 0);
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
        uint64_t x = rng_u64(r);
        if (x < limit) return x % n;
    }
}

double rng_normal(Rng *r) {
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
