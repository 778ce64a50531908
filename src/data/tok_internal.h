/* tok_internal.h: the Tokenizer's internal structures, shared by the files of
 * src/data that implement it (tokenizer_load.c parses, bpe.c runs the model,
 * pretok.c normalizes and pre-tokenizes, added_tokens.c matches added tokens,
 * decoders.c decodes, tokenizer.c drives the pipeline). Not a public API.
 *
 * Invariants once tokenizer_load returns: every structure here is read-only
 * (threads may share a Tokenizer); all ids are in [0, n_ids); every mutable
 * buffer lives in a TokenizerWork. */
#ifndef OWLORE_DATA_TOK_INTERNAL_H
#define OWLORE_DATA_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include "core/error.h"
#include "core/utf8.h"
#include "data/tok_map.h"
#include "data/tokenizer.h"

#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

/* ---- a growable byte buffer and span list (scratch, in TokenizerWork) ---- */
typedef struct TokBuf {
    char *data;
    size_t len, cap;
} TokBuf;
void tokbuf_reserve(TokBuf *b, size_t extra);
void tokbuf_append(TokBuf *b, const void *p, size_t n);
void tokbuf_free(TokBuf *b);

/* A span [start, end) with an added-token id (-1: plain text) or a match flag. */
typedef struct TokSpan {
    size_t start, end;
    int32_t id;
} TokSpan;
typedef struct TokSpanVec {
    TokSpan *data;
    size_t len, cap;
} TokSpanVec;
void tokspans_push(TokSpanVec *v, size_t start, size_t end, int32_t id);
void tokspans_free(TokSpanVec *v);

/* ---- UTF-8 (utf8.c) ---- */
/* Length of the valid UTF-8 prefix of s (== n when all valid). */
size_t utf8_valid_prefix(const char *s, size_t n);
/* Appends s to out with every maximal invalid subsequence replaced by U+FFFD
 * (Python errors="replace", Rust from_utf8_lossy). */
void utf8_append_lossy(TokBuf *out, const char *s, size_t n);
/* Decoding and encoding: core/utf8.h. */

/* ---- regexes (pretok.c) ---- */
typedef struct TokRegex {
    pcre2_code *code;
    char *pattern; /* as written in the file (for messages) */
    int jit;       /* JIT-compiled */
} TokRegex;
/* literal: the pattern is a plain string (Split/Replace "String" patterns).
 * `\s` and `\S` are rewritten to Unicode White_Space, which is what
 * Oniguruma (the engine of `tokenizers`) uses; PCRE2 would also count
 * U+180E. Returns NULL with a message naming `where`. */
TokRegex *tokregex_compile(const char *pattern, int literal, const char *where, OwError *err);
void tokregex_free(TokRegex *re);

/* ---- normalizer (pretok.c) ---- */
typedef enum { NORM_PREPEND, NORM_REPLACE } NormKind;
typedef struct NormOp {
    NormKind kind;
    char *a; /* prepend: the text; replace: the pattern */
    size_t alen;
    char *b; /* replace: the content */
    size_t blen;
} NormOp;

/* ---- pre-tokenizer (pretok.c) ---- */
typedef enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS } SplitBehavior;
typedef enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER } PrependScheme;
typedef enum { PT_SPLIT, PT_METASPACE, PT_BYTELEVEL } PreTokKind;
typedef struct PreTokStage {
    PreTokKind kind;
    TokRegex *re; /* split: the pattern; byte-level with use_regex: the GPT-2 pattern */
    SplitBehavior behavior;
    int invert;
    char repl[8]; /* metaspace replacement character, UTF-8 */
    size_t repl_len;
    PrependScheme prepend;
    int split;            /* metaspace: split on the replacement (MergedWithNext) */
    int add_prefix_space; /* byte-level */
    int use_regex;        /* byte-level */
} PreTokStage;
#define TOK_MAX_STAGES 8

/* ---- decoder (decoders.c) ---- */
typedef enum { DEC_REPLACE, DEC_BYTE_FALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE, DEC_BYTE_LEVEL } DecKind;
typedef struct DecOp {
    DecKind kind;
    char *a, *b; /* replace: pattern, content */
    size_t alen, blen;
    uint32_t cp;        /* strip: content char; metaspace: replacement */
    size_t start, stop; /* strip */
    int prepend_never;  /* metaspace: prepend_scheme == never */
} DecOp;

/* ---- BPE model (bpe.c) ---- */
typedef struct BpeModel {
    StrIdMap vocab;      /* token string -> id */
    const char **id_str; /* [n_ids] token string of each id (NULL: none) */
    uint32_t *id_len;
    int32_t n_ids;    /* 1 + largest vocabulary id */
    int64_t n_tokens; /* entries in the vocabulary */
    U64Map merges;    /* (left << 32 | right) -> (rank << 32 | new id) */
    size_t n_merges;
    int32_t unk_id; /* -1: no unk token */
    int fuse_unk, byte_fallback, ignore_merges;
    int may_disorder;     /* byte_fallback, unk, some <0xNN> missing: symbols can come out of text order */
    int32_t byte_id[256]; /* id of "<0xNN>", -1 when absent */
    int32_t ascii_id[128];
    U64Map char_id; /* code point -> id of the one-character token */
    /* Barriers: a merge joins a symbol ending in code point x to one starting
     * in y only if (x, y) is in this set; a boundary between two initial
     * symbols whose pair is not in it can never be merged across, so the word
     * is split there into independent segments (cached separately). */
    uint32_t *first_cp, *last_cp; /* [n_ids] */
    U64Map joinable;
    uint8_t join_small[512][64]; /* the set for code points < 512, as bits */
    /* Byte-level mode (a ByteLevel pre-tokenizer): the model receives raw
     * bytes, each standing for its bytes_to_unicode character. */
    int byte_level;
    int32_t bl_id[256];   /* id of the mapped character of each byte, -1 none */
    char bl_char[256][4]; /* UTF-8 of the mapped character */
    uint8_t bl_char_len[256];
    StrIdMap bl_vocab; /* raw bytes -> id, for ignore_merges */
} BpeModel;

/* ---- added tokens (added_tokens.c) ---- */
typedef struct AddedToken {
    char *content;
    size_t len;
    char *norm; /* normalized content when normalized and the normalizer changes it, else NULL */
    size_t norm_len;
    int32_t id;
    uint8_t single_word, lstrip, rstrip, normalized, special;
} AddedToken;

typedef struct TokTrie {
    /* nodes: child lists as (byte, child) arrays, sorted by byte */
    struct TokTrieNode *nodes;
    size_t n, cap;
    uint8_t first[32]; /* bitset of first bytes */
} TokTrie;

typedef struct AddedVocab {
    AddedToken *toks;
    size_t n;
    StrIdMap by_content; /* content -> index into toks */
    U64Map by_id;        /* id -> index into toks */
    StrIdMap special;    /* contents of special tokens -> 1 */
    TokTrie raw, norm;   /* patterns of non-normalized / normalized tokens */
    int need_classes;    /* some token uses single_word/lstrip/rstrip */
    TokRegex *re_word;   /* Rust regex \w (one character) */
    TokRegex *re_space;  /* Unicode White_Space (one character) */
} AddedVocab;

/* ---- the tokenizer ---- */
struct Tokenizer {
    char *path;
    uint64_t hash;
    BpeModel bpe;
    AddedVocab added;
    NormOp *norm;
    size_t n_norm;
    PreTokStage stages[TOK_MAX_STAGES];
    size_t n_stages;
    int32_t *tmpl_before, *tmpl_after; /* template single: ids around $A */
    size_t n_before, n_after;
    int has_template;
    DecOp *dec;
    size_t n_dec;
    int has_decoder;
    int64_t vocab_size; /* 1 + largest id over vocab and added tokens */
    int32_t bos_id, eos_id;
    TokRegex *gpt2_re; /* owned here when a ByteLevel stage uses the regex */
};

/* ---- per-thread scratch ---- */
typedef struct TokCache TokCache;
struct TokenizerWork {
    const Tokenizer *owner; /* the tokenizer the cache belongs to */
    uint64_t owner_hash;
    TokBuf clean, norm, stage_buf[TOK_MAX_STAGES];
    TokSpanVec outer, inner;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    /* BPE scratch */
    int32_t *sym_id, *sym_prev, *sym_next;
    uint32_t *sym_start;
    size_t sym_cap;
    uint64_t *heap_key;
    int32_t *heap_new;
    size_t heap_cap;
    TokCache *cache;
};

/* Resets a work's cache when it moves to another tokenizer. */
void tokwork_bind(TokenizerWork *w, const Tokenizer *tok);

/* ---- module entry points ---- */
/* bpe.c */
void bpe_init(BpeModel *m);
void bpe_free(BpeModel *m);
/* Computes the tables derived from vocab/merges (char ids, byte ids,
 * barriers, byte-level tables). Called by the loader once both are set. */
void bpe_finish(BpeModel *m, int byte_level);
/* Encodes one pre-token (UTF-8 text, or raw bytes in byte-level mode),
 * appending ids to out. */
void bpe_encode_word(const BpeModel *m, TokenizerWork *w, const char *s, size_t n, IdVec *out);
void tokcache_free(TokCache *c);

/* pretok.c */
/* Applies the normalizer to s into out (cleared first). */
void normalize_apply(const Tokenizer *tok, const char *s, size_t n, TokBuf *out);
/* Runs the pre-tokenizer stages on s; calls emit for every pre-token.
 * is_first: s starts at offset 0 of the original text (Metaspace "first"). */
typedef void (*PieceFn)(void *ctx, const char *s, size_t n);
int pretok_run(const Tokenizer *tok, TokenizerWork *w, const char *s, size_t n, int is_first, PieceFn emit, void *ctx,
               OwError *err);
/* 1 when re matches the single character at the start of s. */
int tokregex_match_here(const TokRegex *re, TokenizerWork *w, const char *s, size_t n);
/* The GPT-2 byte-to-character table (bytes_to_unicode). */
uint32_t bytelevel_char(uint8_t b);
/* Inverse: the byte of a code point of the table, -1 when not in it. */
int bytelevel_byte(uint32_t cp);
extern const char *const k_gpt2_pattern;

/* added_tokens.c */
void added_init(AddedVocab *av);
void added_free(AddedVocab *av);
/* Builds the tries (after the normalizer is known: normalized tokens are
 * matched in their normalized form). */
int added_finish(Tokenizer *tok, OwError *err);
/* Splits s into spans, added-token matches carrying their id (HF
 * AddedVocabulary::find_matches, with single_word/lstrip/rstrip). */
int added_split(const AddedVocab *av, const TokTrie *trie, TokenizerWork *w, const char *s, size_t n, TokSpanVec *out);
const AddedToken *added_by_id(const AddedVocab *av, int32_t id);

/* decoders.c */
int decode_tokens(const Tokenizer *tok, const char *const *strs, const size_t *lens, size_t n, TokBuf *out,
                  OwError *err);

/* tokenizer_load.c */
int tokenizer_parse(Tokenizer *tok, const char *json, size_t len, OwError *err);

#endif
