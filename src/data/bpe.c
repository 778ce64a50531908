/* bpe.c: the BPE model of tokenizer.json: one pre-token in, ids out.
 *
 * Same result as tokenizers' BPE::tokenize (models/bpe/model.rs, word.rs):
 *   1. ignore_merges: a pre-token that is itself in the vocabulary is emitted
 *      as that one id;
 *   2. initial symbols, one per character: its vocabulary id, else (with
 *      byte_fallback) the <0xNN> tokens of its bytes, else the unk token
 *      (consecutive unks fused into one when fuse_unk), else nothing;
 *   3. merges in order of (rank, position) from a min-heap, an entry being
 *      dropped when its symbol is gone or the pair now at its position does
 *      not produce the same new id.
 * Speed and memory: a word is cut at "barriers" (boundaries no merge can
 * ever cross: no merge has a left token ending with the code point before
 * the boundary and a right token starting with the one after), the segments
 * merged independently as they are found (the heap order restricted to each
 * is unchanged) and cached by their bytes in the TokenizerWork. This
 * matters for SentencePiece-style tokenizers, where a whole text without
 * added tokens is one pre-token: scratch memory follows the longest
 * segment, not the text.
 *
 * Byte-level mode: pre-tokens are raw bytes; byte b stands for the
 * character bytelevel_char(b) of the vocabulary strings. */
#include "data/tok_internal.h"

#include <stdlib.h>
#include <string.h>

#define CACHE_MAX_KEY 256
#define CACHE_MAX_ENTRIES (1u << 17)
#define CACHE_MAX_BYTES ((size_t)64 << 20)

void bpe_init(BpeModel *m) {
    memset(m, 0, sizeof *m);
    m->unk_id = -1;
}

void bpe_free(BpeModel *m) {
    strmap_free(&m->vocab);
    free(m->id_str);
    free(m->id_len);
    u64map_free(&m->merges);
    u64map_free(&m->char_id);
    free(m->first_cp);
    free(m->last_cp);
    u64map_free(&m->joinable);
    if (m->byte_level) strmap_free(&m->bl_vocab);
    memset(m, 0, sizeof *m);
}

static uint32_t last_cp_of(const char *s, size_t n) {
    size_t i = n - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    size_t l;
    return utf8_decode(s + i, n - i, &l);
}

static inline void join_set(BpeModel *m, uint32_t x, uint32_t y) {
    if (x < 512 && y < 512)
        m->join_small[x][y >> 3] |= (uint8_t)(1u << (y & 7));
    else
        u64map_set(&m->joinable, ((uint64_t)x << 32) | y, 1);
}

static inline int joinable(const BpeModel *m, int32_t l, int32_t r) {
    uint32_t x = m->last_cp[l], y = m->first_cp[r];
    if (x < 512 && y < 512) return (m->join_small[x][y >> 3] >> (y & 7)) & 1;
    return u64map_get(&m->joinable, ((uint64_t)x << 32) | y, NULL);
}

void bpe_finish(BpeModel *m, int byte_level) {
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char name[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
        m->byte_id[b] = strmap_get(&m->vocab, name, 6);
    }
    for (int c = 0; c < 128; c++) m->ascii_id[c] = -1;
    u64map_init(&m->char_id, 1024);
    m->first_cp = ow_xmalloc((size_t)m->n_ids * sizeof *m->first_cp);
    m->last_cp = ow_xmalloc((size_t)m->n_ids * sizeof *m->last_cp);
    for (int32_t id = 0; id < m->n_ids; id++) {
        const char *s = m->id_str[id];
        size_t n = s ? m->id_len[id] : 0;
        if (n == 0) {
            m->first_cp[id] = m->last_cp[id] = UINT32_MAX; /* never a symbol */
            continue;
        }
        size_t l;
        uint32_t cp = utf8_decode(s, n, &l);
        m->first_cp[id] = cp;
        m->last_cp[id] = last_cp_of(s, n);
        if (l == n) {
            if (cp < 128)
                m->ascii_id[cp] = id;
            else
                u64map_set(&m->char_id, cp, (uint64_t)id);
        }
    }
    memset(m->join_small, 0, sizeof m->join_small);
    u64map_init(&m->joinable, 64);
    for (size_t i = 0; i <= m->merges.mask; i++) {
        uint64_t key = m->merges.slots[i].key;
        if (key == UINT64_MAX) continue;
        int32_t l = (int32_t)(key >> 32), r = (int32_t)(key & 0xffffffffu);
        if (m->last_cp[l] == UINT32_MAX || m->first_cp[r] == UINT32_MAX) continue;
        join_set(m, m->last_cp[l], m->first_cp[r]);
    }
    /* out of order needs a character that falls back to bytes and one that
     * cannot (some <0xNN> present, some missing) */
    int have_byte = 0, missing_byte = 0;
    for (int b = 0; b < 256; b++) {
        if (m->byte_id[b] < 0)
            missing_byte = 1;
        else
            have_byte = 1;
    }
    m->may_disorder = m->byte_fallback && m->unk_id >= 0 && have_byte && missing_byte;
    m->byte_level = byte_level;
    if (byte_level) {
        for (int b = 0; b < 256; b++) {
            m->bl_char_len[b] = (uint8_t)utf8_encode(bytelevel_char((uint8_t)b), m->bl_char[b]);
            m->bl_id[b] = strmap_get(&m->vocab, m->bl_char[b], m->bl_char_len[b]);
        }
        strmap_init(&m->bl_vocab, (size_t)m->n_tokens);
        char *raw = NULL;
        size_t raw_cap = 0;
        for (int32_t id = 0; id < m->n_ids; id++) {
            const char *s = m->id_str[id];
            if (!s) continue;
            size_t n = m->id_len[id], k = 0, i = 0;
            if (raw_cap < n + 1) {
                raw_cap = n + 1;
                raw = ow_xrealloc(raw, raw_cap);
            }
            int ok = 1;
            while (i < n) {
                size_t l;
                int b = bytelevel_byte(utf8_decode(s + i, n - i, &l));
                if (b < 0) {
                    ok = 0;
                    break;
                }
                raw[k++] = (char)b;
                i += l;
            }
            if (ok && k > 0) strmap_put(&m->bl_vocab, raw, k, id, NULL);
        }
        free(raw);
    }
}

/* ---- the word cache (per TokenizerWork) ---- */

typedef struct CacheSlot {
    uint64_t hash;
    uint32_t key_off, key_len, ids_off, ids_len;
    uint32_t used;
} CacheSlot;

struct TokCache {
    CacheSlot *slots;
    size_t mask, count;
    TokBuf keys;
    int32_t *ids;
    size_t ids_len, ids_cap;
};

static TokCache *cache_new(void) {
    TokCache *c = ow_xcalloc(1, sizeof *c);
    c->mask = 4096 - 1;
    c->slots = ow_xcalloc(c->mask + 1, sizeof *c->slots);
    return c;
}

void tokcache_free(TokCache *c) {
    if (!c) return;
    free(c->slots);
    tokbuf_free(&c->keys);
    free(c->ids);
    free(c);
}

static void cache_clear(TokCache *c) {
    memset(c->slots, 0, (c->mask + 1) * sizeof *c->slots);
    c->count = 0;
    c->keys.len = 0;
    c->ids_len = 0;
}

/* A hit with no ids returns this (never NULL, which is a miss; c->ids and
 * c->keys.data are NULL until their first element, and no pointer arithmetic or
 * memcmp may touch them then). */
static const int32_t k_no_ids[1];

static const int32_t *cache_get(const TokCache *c, uint64_t h, const char *key, size_t n, size_t *nids) {
    size_t j = h & c->mask;
    while (c->slots[j].used) {
        const CacheSlot *s = &c->slots[j];
        if (s->hash == h && s->key_len == n && (n == 0 || memcmp(c->keys.data + s->key_off, key, n) == 0)) {
            *nids = s->ids_len;
            return s->ids_len ? c->ids + s->ids_off : k_no_ids;
        }
        j = (j + 1) & c->mask;
    }
    return NULL;
}

static void cache_put(TokCache *c, uint64_t h, const char *key, size_t n, const int32_t *ids, size_t nids) {
    if (c->count >= CACHE_MAX_ENTRIES || c->keys.len + n > CACHE_MAX_BYTES || c->ids_len + nids > CACHE_MAX_BYTES / 4)
        cache_clear(c);
    if ((c->count + 1) * 2 > c->mask + 1) {
        size_t cap = (c->mask + 1) * 2;
        CacheSlot *ns = ow_xcalloc(cap, sizeof *ns);
        for (size_t i = 0; i <= c->mask; i++) {
            if (!c->slots[i].used) continue;
            size_t j = c->slots[i].hash & (cap - 1);
            while (ns[j].used) j = (j + 1) & (cap - 1);
            ns[j] = c->slots[i];
        }
        free(c->slots);
        c->slots = ns;
        c->mask = cap - 1;
    }
    size_t j = h & c->mask;
    while (c->slots[j].used) j = (j + 1) & c->mask;
    if (c->ids_len + nids > c->ids_cap) {
        size_t cap = c->ids_cap ? c->ids_cap : 4096;
        while (cap < c->ids_len + nids) cap *= 2;
        c->ids = ow_xrealloc(c->ids, cap * sizeof *c->ids);
        c->ids_cap = cap;
    }
    c->slots[j] = (CacheSlot){h, (uint32_t)c->keys.len, (uint32_t)n, (uint32_t)c->ids_len, (uint32_t)nids, 1};
    tokbuf_append(&c->keys, key, n);
    if (nids) memcpy(c->ids + c->ids_len, ids, nids * sizeof *ids); /* c->ids is NULL until the first id */
    c->ids_len += nids;
    c->count++;
}

/* ---- symbols and the merge loop ---- */

static void work_reserve_symbols(TokenizerWork *w, size_t n) {
    if (n <= w->sym_cap) return;
    size_t cap = w->sym_cap ? w->sym_cap : 256;
    while (cap < n) cap *= 2;
    w->sym_id = ow_xrealloc(w->sym_id, cap * sizeof *w->sym_id);
    w->sym_prev = ow_xrealloc(w->sym_prev, cap * sizeof *w->sym_prev);
    w->sym_next = ow_xrealloc(w->sym_next, cap * sizeof *w->sym_next);
    w->sym_start = ow_xrealloc(w->sym_start, cap * sizeof *w->sym_start);
    w->sym_cap = cap;
}

static void heap_push(TokenizerWork *w, size_t *hn, uint64_t key, int32_t new_id) {
    if (*hn == w->heap_cap) {
        w->heap_cap = w->heap_cap ? w->heap_cap * 2 : 256;
        w->heap_key = ow_xrealloc(w->heap_key, w->heap_cap * sizeof *w->heap_key);
        w->heap_new = ow_xrealloc(w->heap_new, w->heap_cap * sizeof *w->heap_new);
    }
    size_t i = (*hn)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (w->heap_key[p] <= key) break;
        w->heap_key[i] = w->heap_key[p];
        w->heap_new[i] = w->heap_new[p];
        i = p;
    }
    w->heap_key[i] = key;
    w->heap_new[i] = new_id;
}

static void heap_pop(TokenizerWork *w, size_t *hn, uint64_t *key, int32_t *new_id) {
    *key = w->heap_key[0];
    *new_id = w->heap_new[0];
    size_t n = --(*hn);
    if (n == 0) return;
    uint64_t k = w->heap_key[n];
    int32_t v = w->heap_new[n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && w->heap_key[c + 1] < w->heap_key[c]) c++;
        if (w->heap_key[c] >= k) break;
        w->heap_key[i] = w->heap_key[c];
        w->heap_new[i] = w->heap_new[c];
        i = c;
    }
    w->heap_key[i] = k;
    w->heap_new[i] = v;
}

static inline int merge_lookup(const BpeModel *m, int32_t l, int32_t r, uint32_t *rank, int32_t *new_id) {
    uint64_t v;
    if (!u64map_get(&m->merges, ((uint64_t)(uint32_t)l << 32) | (uint32_t)r, &v)) return 0;
    *rank = (uint32_t)(v >> 32);
    *new_id = (int32_t)(v & 0xffffffffu);
    return 1;
}

/* Merges symbols [a, b) and appends the result to out. */
static void merge_segment(const BpeModel *m, TokenizerWork *w, size_t a, size_t b, IdVec *out) {
    int32_t *id = w->sym_id, *prev = w->sym_prev, *next = w->sym_next;
    if (b - a == 1) {
        idvec_push(out, id[a]);
        return;
    }
    size_t hn = 0;
    for (size_t i = a; i < b; i++) {
        prev[i] = i == a ? -1 : (int32_t)(i - 1);
        next[i] = i + 1 == b ? -1 : (int32_t)(i + 1);
    }
    for (size_t i = a; i + 1 < b; i++) {
        uint32_t rank;
        int32_t nid;
        if (merge_lookup(m, id[i], id[i + 1], &rank, &nid)) heap_push(w, &hn, ((uint64_t)rank << 32) | i, nid);
    }
    /* dead symbols: prev == -2 */
    while (hn > 0) {
        uint64_t key;
        int32_t top_new;
        heap_pop(w, &hn, &key, &top_new);
        size_t pos = (size_t)(key & 0xffffffffu);
        if (prev[pos] == -2) continue;
        int32_t nx = next[pos];
        if (nx == -1) continue;
        uint32_t rank;
        int32_t nid;
        if (!merge_lookup(m, id[pos], id[nx], &rank, &nid) || nid != top_new) continue;
        id[pos] = top_new;
        next[pos] = next[nx];
        prev[nx] = -2;
        if (next[nx] != -1) prev[next[nx]] = (int32_t)pos;
        if (prev[pos] >= 0 && merge_lookup(m, id[prev[pos]], id[pos], &rank, &nid))
            heap_push(w, &hn, ((uint64_t)rank << 32) | (uint32_t)prev[pos], nid);
        if (next[pos] != -1 && merge_lookup(m, id[pos], id[next[pos]], &rank, &nid))
            heap_push(w, &hn, ((uint64_t)rank << 32) | pos, nid);
    }
    for (int32_t i = (int32_t)a; i != -1; i = next[i]) idvec_push(out, id[i]);
}

/* The initial symbols of a word are produced in text order and cut into
 * segments at barriers as they come; each finished segment is merged (or
 * found in the cache) at once, so the scratch arrays only ever hold one
 * segment. When a tokenizer can emit symbols out of text order (a pending
 * unk flushed after later byte-fallback symbols, as tokenizers does when some
 * <0xNN> tokens are missing), the whole word is one segment instead. */
typedef struct SymStream {
    const BpeModel *m;
    TokenizerWork *w;
    const char *s;
    IdVec *out;
    size_t ns;          /* symbols of the current segment */
    int cut;            /* cut at barriers */
    int cache_segments; /* look segments up in the cache */
} SymStream;

static void seg_flush(SymStream *st, size_t end) {
    if (st->ns == 0) return;
    TokenizerWork *w = st->w;
    size_t from = w->sym_start[0], ns = st->ns;
    st->ns = 0;
    if (st->cache_segments && ns > 1 && end - from <= CACHE_MAX_KEY) {
        uint64_t h = tok_hash_bytes(st->s + from, end - from);
        size_t k;
        const int32_t *hit = cache_get(w->cache, h, st->s + from, end - from, &k);
        if (hit) {
            for (size_t j = 0; j < k; j++) idvec_push(st->out, hit[j]);
            return;
        }
        size_t o = st->out->len;
        merge_segment(st->m, w, 0, ns, st->out);
        cache_put(w->cache, h, st->s + from, end - from, st->out->data + o, st->out->len - o);
        return;
    }
    merge_segment(st->m, w, 0, ns, st->out);
}

static void sym_add(SymStream *st, int32_t id, size_t start) {
    TokenizerWork *w = st->w;
    if (st->cut && st->ns > 0 && start != w->sym_start[st->ns - 1] && !joinable(st->m, w->sym_id[st->ns - 1], id))
        seg_flush(st, start);
    if (st->ns == w->sym_cap) work_reserve_symbols(w, st->ns + 1);
    w->sym_id[st->ns] = id;
    w->sym_start[st->ns] = (uint32_t)start;
    st->ns++;
}

/* tokenizers' BPE::merge_word: one symbol per character (its id, its
 * <0xNN> byte tokens, or an unk fused with the unks before it). */
static void word_symbols(SymStream *st, const char *s, size_t n) {
    const BpeModel *m = st->m;
    int pending = 0;
    size_t pending_start = 0, i = 0;
    while (i < n) {
        const char *cs;
        size_t clen, blen;
        int32_t v;
        unsigned char c = (unsigned char)s[i];
        if (m->byte_level) {
            v = m->bl_id[c];
            cs = m->bl_char[c];
            clen = m->bl_char_len[c];
            blen = 1;
        } else if (c < 0x80) {
            v = m->ascii_id[c];
            cs = s + i;
            clen = blen = 1;
        } else {
            uint32_t cp = utf8_decode(s + i, n - i, &blen);
            uint64_t val;
            v = u64map_get(&m->char_id, cp, &val) ? (int32_t)val : -1;
            cs = s + i;
            clen = blen;
        }
        if (v >= 0) {
            if (pending) sym_add(st, m->unk_id, pending_start);
            pending = 0;
            sym_add(st, v, i);
        } else {
            int done = 0;
            if (m->byte_fallback) {
                int all = 1;
                for (size_t k = 0; k < clen; k++)
                    if (m->byte_id[(unsigned char)cs[k]] < 0) all = 0;
                if (all) {
                    for (size_t k = 0; k < clen; k++) sym_add(st, m->byte_id[(unsigned char)cs[k]], i);
                    done = 1;
                }
            }
            if (!done && m->unk_id >= 0) {
                if (pending && !m->fuse_unk) {
                    sym_add(st, m->unk_id, pending_start);
                    pending_start = i;
                } else if (!pending) {
                    pending = 1;
                    pending_start = i;
                }
            }
        }
        i += blen;
    }
    if (pending) sym_add(st, m->unk_id, pending_start);
    seg_flush(st, n);
}

void bpe_encode_word(const BpeModel *m, TokenizerWork *w, const char *s, size_t n, IdVec *out) {
    if (n == 0) return;
    if (m->ignore_merges) {
        int32_t v = m->byte_level ? strmap_get(&m->bl_vocab, s, n) : strmap_get(&m->vocab, s, n);
        if (v >= 0) {
            idvec_push(out, v);
            return;
        }
    }
    if (!w->cache) w->cache = cache_new();
    int small = n <= CACHE_MAX_KEY;
    uint64_t h = 0;
    if (small) {
        h = tok_hash_bytes(s, n);
        size_t k;
        const int32_t *hit = cache_get(w->cache, h, s, n, &k);
        if (hit) {
            for (size_t i = 0; i < k; i++) idvec_push(out, hit[i]);
            return;
        }
    }
    size_t out0 = out->len;
    SymStream st = {m, w, s, out, 0, !m->may_disorder, !small && !m->may_disorder};
    word_symbols(&st, s, n);
    /* a word may give no ids (no unk token): out->data may still be NULL */
    if (small) cache_put(w->cache, h, s, n, out->len > out0 ? out->data + out0 : NULL, out->len - out0);
}
