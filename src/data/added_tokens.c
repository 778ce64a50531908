/* added_tokens.c: the added vocabulary (added_tokens of tokenizer.json):
 * lookups and the split of text on added tokens before the model.
 *
 * As tokenizers' AddedVocabulary: tokens with normalized=false are matched in
 * the raw text, the others in each normalized piece, by their normalized
 * content; matching is leftmost-longest and non-overlapping (one scan; a
 * match rejected by single_word still consumes its span). single_word keeps
 * a match only between non-word characters (Rust regex \w); lstrip/rstrip
 * extend it over the Unicode whitespace before/after it (never before the
 * end of the previous match). */
#include "data/tok_internal.h"

#include <stdlib.h>
#include <string.h>

struct TokTrieNode {
    int32_t first_child, next_sibling;
    int32_t tok; /* index into AddedVocab.toks, -1 when no pattern ends here */
    uint8_t byte;
};

static void trie_init(TokTrie *t) {
    memset(t, 0, sizeof *t);
    t->cap = 16;
    t->nodes = ow_xmalloc(t->cap * sizeof *t->nodes);
    t->nodes[0] = (struct TokTrieNode){-1, -1, -1, 0};
    t->n = 1;
}

static void trie_free(TokTrie *t) {
    free(t->nodes);
    memset(t, 0, sizeof *t);
}

static int32_t trie_child(const TokTrie *t, int32_t node, uint8_t b) {
    for (int32_t c = t->nodes[node].first_child; c >= 0; c = t->nodes[c].next_sibling)
        if (t->nodes[c].byte == b) return c;
    return -1;
}

/* Returns 0, or -1 when the pattern is already present. */
static int trie_insert(TokTrie *t, const char *s, size_t n, int32_t tok) {
    int32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)s[i];
        int32_t c = trie_child(t, node, b);
        if (c < 0) {
            if (t->n == t->cap) {
                t->cap *= 2;
                t->nodes = ow_xrealloc(t->nodes, t->cap * sizeof *t->nodes);
            }
            c = (int32_t)t->n++;
            t->nodes[c] = (struct TokTrieNode){-1, t->nodes[node].first_child, -1, b};
            t->nodes[node].first_child = c;
        }
        node = c;
    }
    if (t->nodes[node].tok >= 0) return -1;
    t->nodes[node].tok = tok;
    t->first[(uint8_t)s[0] >> 3] |= (uint8_t)(1u << ((uint8_t)s[0] & 7));
    return 0;
}

/* Longest pattern starting at s[0]; -1 when none. */
static int32_t trie_longest(const TokTrie *t, const char *s, size_t n, size_t *len) {
    int32_t node = 0, best = -1;
    for (size_t i = 0; i < n; i++) {
        node = trie_child(t, node, (uint8_t)s[i]);
        if (node < 0) break;
        if (t->nodes[node].tok >= 0) {
            best = t->nodes[node].tok;
            *len = i + 1;
        }
    }
    return best;
}

void added_init(AddedVocab *av) {
    memset(av, 0, sizeof *av);
    strmap_init(&av->by_content, 64);
    u64map_init(&av->by_id, 64);
    strmap_init(&av->special, 64);
    trie_init(&av->raw);
    trie_init(&av->norm);
}

void added_free(AddedVocab *av) {
    for (size_t i = 0; i < av->n; i++) {
        free(av->toks[i].content);
        free(av->toks[i].norm);
    }
    free(av->toks);
    strmap_free(&av->by_content);
    u64map_free(&av->by_id);
    strmap_free(&av->special);
    trie_free(&av->raw);
    trie_free(&av->norm);
    tokregex_free(av->re_word);
    tokregex_free(av->re_space);
    memset(av, 0, sizeof *av);
}

const AddedToken *added_by_id(const AddedVocab *av, int32_t id) {
    uint64_t v;
    if (id < 0 || !u64map_get(&av->by_id, (uint64_t)id, &v)) return NULL;
    return &av->toks[v];
}

int added_finish(Tokenizer *tok, OwError *err) {
    AddedVocab *av = &tok->added;
    TokBuf nb = {0};
    for (size_t i = 0; i < av->n; i++) {
        AddedToken *t = &av->toks[i];
        const char *pat = t->content;
        size_t plen = t->len;
        if (t->normalized && tok->n_norm > 0) {
            normalize_apply(tok, t->content, t->len, &nb);
            if (nb.len != t->len || memcmp(nb.data, t->content, t->len) != 0) {
                t->norm = ow_xmalloc(nb.len + 1);
                memcpy(t->norm, nb.data, nb.len);
                t->norm[nb.len] = '\0';
                t->norm_len = nb.len;
                pat = t->norm;
                plen = t->norm_len;
            }
        }
        if (trie_insert(t->normalized ? &av->norm : &av->raw, pat, plen, (int32_t)i) != 0) {
            tokbuf_free(&nb);
            return ow_fail(
                err, "%s: added_tokens: two added tokens match the same text \"%s\" (tokenizers refuses this too)",
                tok->path, pat);
        }
        if (t->single_word || t->lstrip || t->rstrip) av->need_classes = 1;
    }
    tokbuf_free(&nb);
    if (av->need_classes) {
        /* Rust regex (Unicode) \w and \s, for one character */
        av->re_word = tokregex_compile("[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]", 0, tok->path, err);
        if (!av->re_word) return -1;
        av->re_space = tokregex_compile("\\s", 0, tok->path, err);
        if (!av->re_space) return -1;
    }
    return 0;
}

static size_t char_start_before(const char *s, size_t i) {
    /* start of the character ending at i (i > 0) */
    size_t j = i - 1;
    while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
    return j;
}

static int ends_with_word(const AddedVocab *av, TokenizerWork *w, const char *s, size_t end) {
    if (end == 0) return 0;
    size_t j = char_start_before(s, end);
    return tokregex_match_here(av->re_word, w, s + j, end - j);
}

static size_t leftmost_space_at_end(const AddedVocab *av, TokenizerWork *w, const char *s, size_t end) {
    size_t p = end;
    while (p > 0) {
        size_t j = char_start_before(s, p);
        if (!tokregex_match_here(av->re_space, w, s + j, p - j)) break;
        p = j;
    }
    return p;
}

static size_t rightmost_space_at_start(const AddedVocab *av, TokenizerWork *w, const char *s, size_t n) {
    size_t p = 0;
    while (p < n) {
        size_t l = utf8_seq_len((unsigned char)s[p]);
        if (p + l > n) l = n - p;
        if (!tokregex_match_here(av->re_space, w, s + p, l)) break;
        p += l;
    }
    return p;
}

int added_split(const AddedVocab *av, const TokTrie *trie, TokenizerWork *w, const char *s, size_t n, TokSpanVec *out) {
    out->len = 0;
    if (n == 0) return 0;
    if (trie->n <= 1) {
        tokspans_push(out, 0, n, -1);
        return 0;
    }
    size_t start_offset = 0, i = 0;
    while (i < n) {
        uint8_t b = (uint8_t)s[i];
        if (!((trie->first[b >> 3] >> (b & 7)) & 1)) {
            i++;
            continue;
        }
        size_t len = 0;
        int32_t ti = trie_longest(trie, s + i, n - i, &len);
        if (ti < 0) {
            i++;
            continue;
        }
        size_t start = i, stop = i + len;
        i = stop;
        const AddedToken *t = &av->toks[ti];
        if (t->single_word) {
            int start_space = start == 0 || !ends_with_word(av, w, s, start);
            int stop_space = stop == n || !tokregex_match_here(av->re_word, w, s + stop, n - stop);
            if (!start_space || !stop_space) continue;
        }
        if (t->lstrip) {
            size_t ns = leftmost_space_at_end(av, w, s, start);
            start = ns > start_offset ? ns : start_offset;
        }
        if (t->rstrip) stop += rightmost_space_at_start(av, w, s + stop, n - stop);
        if (start_offset < start) tokspans_push(out, start_offset, start, -1);
        tokspans_push(out, start, stop, t->id);
        start_offset = stop;
    }
    if (start_offset != n) tokspans_push(out, start_offset, n, -1);
    return 0;
}
