/* tok_map.h: the hash tables of the tokenizer: byte strings -> int32 (the
 * vocabulary, added tokens) and 64-bit keys -> 64-bit values (merge ranks
 * keyed by the pair of ids, code points -> ids, sets of pairs).
 *
 * Open addressing with linear probing, power-of-two capacity, load <= 1/2.
 * A StrIdMap owns copies of its keys (in one arena, addressed by offset, so
 * growth never invalidates them). Keys of a U64Map may be any value except
 * UINT64_MAX (the empty marker). Neither supports removal. */
#ifndef OWLORE_DATA_TOK_MAP_H
#define OWLORE_DATA_TOK_MAP_H

#include <stddef.h>
#include <stdint.h>

uint64_t tok_hash_bytes(const void *p, size_t n);

typedef struct StrSlot {
    uint64_t hash;
    uint32_t off, len; /* key in the arena */
    int32_t value;
    uint32_t used;
} StrSlot;

typedef struct StrIdMap {
    StrSlot *slots;
    size_t mask, count;
    char *arena;
    size_t arena_len, arena_cap;
} StrIdMap;

void strmap_init(StrIdMap *m, size_t expected);
void strmap_free(StrIdMap *m);
/* Inserts key -> value when absent (returns 1); when present leaves it and
 * stores its value in *existing (returns 0). */
int strmap_put(StrIdMap *m, const char *key, size_t n, int32_t value, int32_t *existing);
/* The value of key, or -1 when absent. */
int32_t strmap_get(const StrIdMap *m, const char *key, size_t n);
/* The stored copy of a key present in the map (NUL-terminated), or NULL. */
const char *strmap_key(const StrIdMap *m, const char *key, size_t n);

typedef struct U64Slot {
    uint64_t key, value;
} U64Slot;

typedef struct U64Map {
    U64Slot *slots;
    size_t mask, count;
} U64Map;

void u64map_init(U64Map *m, size_t expected);
void u64map_free(U64Map *m);
/* Inserts or overwrites. */
void u64map_set(U64Map *m, uint64_t key, uint64_t value);
/* 1 and *value when present, else 0. */
int u64map_get(const U64Map *m, uint64_t key, uint64_t *value);

#endif
