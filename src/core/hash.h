/* hash.h: XXH64 (written from the public specification), used to checksum
 * files we write and verify on load. Streaming and one-shot forms agree. */
#ifndef OWLORE_CORE_HASH_H
#define OWLORE_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t v[4];
    uint64_t total;
    uint8_t buf[32];
    size_t buffered;
    uint64_t seed;
} Xxh64;

void xxh64_init(Xxh64 *s, uint64_t seed);
void xxh64_update(Xxh64 *s, const void *data, size_t len);
uint64_t xxh64_final(const Xxh64 *s);
uint64_t xxh64(const void *data, size_t len, uint64_t seed);

#endif
