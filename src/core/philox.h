/* philox.h: the Philox-4x32-10 counter-based generator, shared verbatim by
 * host C and CUDA kernels so that both draw the same numbers from the same
 * (key, counter). Pure functions, no state. */
#ifndef OWLORE_CORE_PHILOX_H
#define OWLORE_CORE_PHILOX_H

#include <stdint.h>

#ifdef __CUDACC__
#define OW_HD __host__ __device__ __forceinline__
#else
#define OW_HD static inline
#endif

typedef struct {
    uint32_t v[4];
} Philox4;

OW_HD Philox4 philox4x32_10(uint64_t key, uint64_t ctr_lo, uint64_t ctr_hi) {
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    uint32_t c0 = (uint32_t)ctr_lo, c1 = (uint32_t)(ctr_lo >> 32);
    uint32_t c2 = (uint32_t)ctr_hi, c3 = (uint32_t)(ctr_hi >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    Philox4 out = {{c0, c1, c2, c3}};
    return out;
}

/* A uniform float in [0, 1) from 24 random bits. */
OW_HD float philox_u01f(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

#endif
