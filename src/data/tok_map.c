/* tok_map.c: see tok_map.h. */
#include "data/tok_map.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

static inline uint64_t load64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    return x;
}

uint64_t tok_hash_bytes(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)n * 0xff51afd7ed558ccdULL);
    while (n >= 8) {
        h = (h ^ mix64(load64(s))) * 0x9E3779B97F4A7C15ULL;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    uint64_t t = 0;
    for (size_t i = 0; i < n; i++) t |= (uint64_t)s[i] << (8 * i);
    h = (h ^ mix64(t ^ ((uint64_t)n << 59))) * 0x9E3779B97F4A7C15ULL;
    return mix64(h);
}

static size_t pow2_for(size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 + 2) cap <<= 1;
    return cap;
}

void strmap_init(StrIdMap *m, size_t expected) {
    memset(m, 0, sizeof *m);
    size_t cap = pow2_for(expected);
    m->slots = ow_xcalloc(cap, sizeof *m->slots);
    m->mask = cap - 1;
}

void strmap_free(StrIdMap *m) {
    free(m->slots);
    free(m->arena);
    memset(m, 0, sizeof *m);
}

static void strmap_grow(StrIdMap *m) {
    size_t cap = (m->mask + 1) * 2;
    StrSlot *ns = ow_xcalloc(cap, sizeof *ns);
    for (size_t i = 0; i <= m->mask; i++) {
        if (!m->slots[i].used) continue;
        size_t j = m->slots[i].hash & (cap - 1);
        while (ns[j].used) j = (j + 1) & (cap - 1);
        ns[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = ns;
    m->mask = cap - 1;
}

int strmap_put(StrIdMap *m, const char *key, size_t n, int32_t value, int32_t *existing) {
    OW_CHECK(n < UINT32_MAX);
    if ((m->count + 1) * 2 > m->mask + 1) strmap_grow(m);
    uint64_t h = tok_hash_bytes(key, n);
    size_t j = h & m->mask;
    while (m->slots[j].used) {
        StrSlot *s = &m->slots[j];
        if (s->hash == h && s->len == n && memcmp(m->arena + s->off, key, n) == 0) {
            if (existing) *existing = s->value;
            return 0;
        }
        j = (j + 1) & m->mask;
    }
    if (m->arena_len + n + 1 > m->arena_cap) {
        size_t cap = m->arena_cap ? m->arena_cap : 4096;
        while (cap < m->arena_len + n + 1) cap *= 2;
        m->arena = ow_xrealloc(m->arena, cap);
        m->arena_cap = cap;
    }
    OW_CHECK(m->arena_len + n + 1 < UINT32_MAX);
    memcpy(m->arena + m->arena_len, key, n);
    m->arena[m->arena_len + n] = '\0';
    m->slots[j] = (StrSlot){h, (uint32_t)m->arena_len, (uint32_t)n, value, 1};
    m->arena_len += n + 1;
    m->count++;
    return 1;
}

static const StrSlot *strmap_find(const StrIdMap *m, const char *key, size_t n) {
    if (!m->slots) return NULL;
    uint64_t h = tok_hash_bytes(key, n);
    size_t j = h & m->mask;
    while (m->slots[j].used) {
        const StrSlot *s = &m->slots[j];
        if (s->hash == h && s->len == n && memcmp(m->arena + s->off, key, n) == 0) return s;
        j = (j + 1) & m->mask;
    }
    return NULL;
}

int32_t strmap_get(const StrIdMap *m, const char *key, size_t n) {
    const StrSlot *s = strmap_find(m, key, n);
    return s ? s->value : -1;
}

const char *strmap_key(const StrIdMap *m, const char *key, size_t n) {
    const StrSlot *s = strmap_find(m, key, n);
    return s ? m->arena + s->off : NULL;
}

void u64map_init(U64Map *m, size_t expected) {
    size_t cap = pow2_for(expected);
    m->slots = ow_xmalloc(cap * sizeof *m->slots);
    for (size_t i = 0; i < cap; i++) m->slots[i].key = UINT64_MAX;
    m->mask = cap - 1;
    m->count = 0;
}

void u64map_free(U64Map *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static void u64map_grow(U64Map *m) {
    size_t cap = (m->mask + 1) * 2;
    U64Slot *ns = ow_xmalloc(cap * sizeof *ns);
    for (size_t i = 0; i < cap; i++) ns[i].key = UINT64_MAX;
    for (size_t i = 0; i <= m->mask; i++) {
        if (m->slots[i].key == UINT64_MAX) continue;
        size_t j = mix64(m->slots[i].key) & (cap - 1);
        while (ns[j].key != UINT64_MAX) j = (j + 1) & (cap - 1);
        ns[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = ns;
    m->mask = cap - 1;
}

void u64map_set(U64Map *m, uint64_t key, uint64_t value) {
    OW_CHECK(key != UINT64_MAX);
    if ((m->count + 1) * 2 > m->mask + 1) u64map_grow(m);
    size_t j = mix64(key) & m->mask;
    while (m->slots[j].key != UINT64_MAX) {
        if (m->slots[j].key == key) {
            m->slots[j].value = value;
            return;
        }
        j = (j + 1) & m->mask;
    }
    m->slots[j].key = key;
    m->slots[j].value = value;
    m->count++;
}

int u64map_get(const U64Map *m, uint64_t key, uint64_t *value) {
    if (!m->slots || key == UINT64_MAX) return 0;
    size_t j = mix64(key) & m->mask;
    for (;;) {
        uint64_t k = m->slots[j].key;
        if (k == key) {
            if (value) *value = m->slots[j].value;
            return 1;
        }
        if (k == UINT64_MAX) return 0;
        j = (j + 1) & m->mask;
    }
}
