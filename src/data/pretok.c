/* pretok.c: normalizers and pre-tokenizers of the tokenizer, and the PCRE2
 * regexes they use.
 *
 * Normalizers: Prepend, Replace (literal pattern), applied in sequence to one
 * piece of text. Pre-tokenizers: Split (regex or literal, five delimiter
 * behaviors, invert), Metaspace (replace ' ', prepend scheme, split) and
 * ByteLevel (prefix space, GPT-2 regex), run as a chain of stages, each
 * splitting the pieces of the previous one, exactly like tokenizers'
 * PreTokenizedString::split. ByteLevel is always the last stage; its byte to
 * character mapping is not materialised: the BPE model works on the raw
 * bytes (see bpe.c).
 *
 * Regexes run with PCRE2 in UTF + UCP mode (JIT when available). The
 * pattern dialect of tokenizers is Oniguruma's; the patterns tokenizer.json
 * files use (GPT-2, LLaMA-3) mean the same in PCRE2 except that PCRE2's \s
 * also matches U+180E, so \s and \S are rewritten to the Unicode White_Space
 * set (what Oniguruma matches). Iteration follows the onig crate: after a
 * match ending at e, an empty match at e is skipped by one character. */
#define _GNU_SOURCE
#include "data/tok_internal.h"

#include <stdlib.h>
#include <string.h>

const char *const k_gpt2_pattern = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ---- buffers ---- */

void tokbuf_reserve(TokBuf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    b->data = ow_xrealloc(b->data, cap);
    b->cap = cap;
}

void tokbuf_append(TokBuf *b, const void *p, size_t n) {
    tokbuf_reserve(b, n);
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void tokbuf_free(TokBuf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

void tokspans_push(TokSpanVec *v, size_t start, size_t end, int32_t id) {
    if (v->len == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->data = ow_xrealloc(v->data, v->cap * sizeof *v->data);
    }
    v->data[v->len++] = (TokSpan){start, end, id};
}

void tokspans_free(TokSpanVec *v) {
    free(v->data);
    memset(v, 0, sizeof *v);
}

/* ---- byte level table (GPT-2 bytes_to_unicode) ---- */

uint32_t bytelevel_char(uint8_t b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
    if (b <= 0x20) return 256u + b;
    if (b >= 0x7F && b <= 0xA0) return 256u + 33u + (b - 0x7Fu);
    return 256u + 33u + 34u; /* 0xAD */
}

int bytelevel_byte(uint32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF)) return (int)cp;
    if (cp >= 256 && cp < 256 + 33) return (int)(cp - 256);
    if (cp >= 256 + 33 && cp < 256 + 67) return (int)(cp - 256 - 33 + 0x7F);
    if (cp == 256 + 67) return 0xAD;
    return -1;
}

/* ---- regexes ---- */

/* Unicode White_Space as PCRE2 class items (Oniguruma's \s). */
static const char k_white_space[] =
    "\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

/* Rewrites \s and \S (outside and inside classes) to White_Space. Returns
 * NULL (message in err) for \S inside a class. */
static char *rewrite_space_classes(const char *p, const char *where, OwError *err) {
    TokBuf out = {0};
    int in_class = 0;
    size_t n = strlen(p);
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char d = p[i + 1];
            if (d == 'Q') { /* quoted run up to \E */
                const char *e = strstr(p + i + 2, "\\E");
                size_t stop = e ? (size_t)(e - p) + 2 : n;
                tokbuf_append(&out, p + i, stop - i);
                i = stop - 1;
                continue;
            }
            if (d == 's' || d == 'S') {
                if (in_class) {
                    if (d == 'S') {
                        tokbuf_free(&out);
                        ow_fail(err, "%s: \\S inside a character class is not supported (pattern \"%s\")", where, p);
                        return NULL;
                    }
                    tokbuf_append(&out, k_white_space, strlen(k_white_space));
                } else {
                    tokbuf_append(&out, d == 's' ? "[" : "[^", d == 's' ? 1 : 2);
                    tokbuf_append(&out, k_white_space, strlen(k_white_space));
                    tokbuf_append(&out, "]", 1);
                }
                i++;
                continue;
            }
            tokbuf_append(&out, p + i, 2);
            i++;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = 1;
            tokbuf_append(&out, &c, 1);
            /* a ']' right after '[' or '[^' is a literal */
            if (i + 1 < n && p[i + 1] == '^') {
                tokbuf_append(&out, "^", 1);
                i++;
            }
            if (i + 1 < n && p[i + 1] == ']') {
                tokbuf_append(&out, "]", 1);
                i++;
            }
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && p[i + 1] == ':') { /* POSIX class [:name:] */
            const char *e = strstr(p + i + 2, ":]");
            if (e) {
                size_t stop = (size_t)(e - p) + 2;
                tokbuf_append(&out, p + i, stop - i);
                i = stop - 1;
                continue;
            }
        }
        if (in_class && c == ']') in_class = 0;
        tokbuf_append(&out, &c, 1);
    }
    if (!out.data) tokbuf_append(&out, "", 0);
    return out.data;
}

TokRegex *tokregex_compile(const char *pattern, int literal, const char *where, OwError *err) {
    char *src = literal ? ow_xstrdup(pattern) : rewrite_space_classes(pattern, where, err);
    if (!src) return NULL;
    int ecode = 0;
    PCRE2_SIZE eoff = 0;
    uint32_t opts = literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED, opts, &ecode, &eoff, NULL);
    free(src);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ecode, msg, sizeof msg);
        ow_fail(err, "%s: cannot compile the pattern \"%s\": %s (at offset %zu)", where, pattern, (const char *)msg,
                (size_t)eoff);
        return NULL;
    }
    TokRegex *re = ow_xcalloc(1, sizeof *re);
    re->code = code;
    re->pattern = ow_xstrdup(pattern);
    re->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
    return re;
}

void tokregex_free(TokRegex *re) {
    if (!re) return;
    pcre2_code_free(re->code);
    free(re->pattern);
    free(re);
}

static void work_regex_ready(TokenizerWork *w) {
    if (w->md) return;
    w->md = pcre2_match_data_create(16, NULL);
    w->mctx = pcre2_match_context_create(NULL);
    w->jit_stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, NULL);
    OW_CHECK(w->md && w->mctx && w->jit_stack);
    pcre2_jit_stack_assign(w->mctx, NULL, w->jit_stack);
}

/* Returns 1 and the match bounds, 0 when none, -1 on a matcher error. */
static int regex_next(const TokRegex *re, TokenizerWork *w, const char *s, size_t n, size_t from, uint32_t opts,
                      size_t *ms, size_t *me, OwError *err) {
    int rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, from, opts | PCRE2_NO_UTF_CHECK, w->md, w->mctx);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        return ow_fail(err, "regex \"%s\" failed on a %zu-byte piece: %s", re->pattern, n, (const char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(w->md);
    *ms = ov[0];
    *me = ov[1];
    return 1;
}

int tokregex_match_here(const TokRegex *re, TokenizerWork *w, const char *s, size_t n) {
    if (n == 0) return 0;
    work_regex_ready(w);
    size_t ms = 0, me = 0;
    OwError e;
    return regex_next(re, w, s, n, 0, PCRE2_ANCHORED, &ms, &me, &e) == 1;
}

/* ---- normalizer ---- */

static void replace_all(const char *s, size_t n, const char *pat, size_t plen, const char *rep, size_t rlen,
                        TokBuf *out) {
    size_t i = 0;
    while (i < n) {
        const char *hit = plen <= n - i ? memmem(s + i, n - i, pat, plen) : NULL;
        if (!hit) break;
        size_t at = (size_t)(hit - s);
        tokbuf_append(out, s + i, at - i);
        tokbuf_append(out, rep, rlen);
        i = at + plen;
    }
    tokbuf_append(out, s + i, n - i);
}

void normalize_apply(const Tokenizer *tok, const char *s, size_t n, TokBuf *out) {
    out->len = 0;
    tokbuf_append(out, s, n);
    TokBuf tmp = {0};
    for (size_t k = 0; k < tok->n_norm; k++) {
        const NormOp *op = &tok->norm[k];
        if (out->len == 0) continue; /* both ops leave an empty string empty */
        tmp.len = 0;
        if (op->kind == NORM_PREPEND) {
            tokbuf_append(&tmp, op->a, op->alen);
            tokbuf_append(&tmp, out->data, out->len);
        } else {
            replace_all(out->data, out->len, op->a, op->alen, op->b, op->blen, &tmp);
        }
        TokBuf t = *out;
        *out = tmp;
        tmp = t;
    }
    tokbuf_free(&tmp);
}

/* ---- the stage chain ---- */

typedef struct PtCtx {
    const Tokenizer *tok;
    TokenizerWork *w;
    PieceFn emit;
    void *ctx;
    OwError *err;
} PtCtx;

static int run_stage(PtCtx *c, size_t k, const char *s, size_t n, int is_first);

/* A streaming splitter (tokenizers' NormalizedString::split): fed the
 * (start, end, is_match) list of pattern.rs in order, it passes the pieces a
 * delimiter behavior keeps to the next stage, with one piece of look-behind,
 * so no list of matches is ever stored. Empty pieces are dropped. */
typedef struct Splitter {
    PtCtx *c;
    size_t k;
    const char *s;
    int is_first;
    SplitBehavior behavior;
    int invert;
    int have; /* a pending piece [ps, pe) */
    size_t ps, pe;
    int prev_match;
    size_t prev; /* end of the last match (pattern.rs) */
    int rc;
} Splitter;

static void sp_emit(Splitter *sp, size_t a, size_t b) {
    if (sp->rc == 0 && b > a) sp->rc = run_stage(sp->c, sp->k + 1, sp->s + a, b - a, sp->is_first && a == 0);
}

static void sp_pend(Splitter *sp, size_t a, size_t b) {
    if (sp->have) sp_emit(sp, sp->ps, sp->pe);
    sp->have = 1;
    sp->ps = a;
    sp->pe = b;
}

static void sp_event(Splitter *sp, size_t a, size_t b, int m) {
    if (sp->invert) m = !m;
    switch (sp->behavior) {
    case SPLIT_ISOLATED: sp_emit(sp, a, b); break;
    case SPLIT_REMOVED:
        if (!m) sp_emit(sp, a, b);
        break;
    case SPLIT_CONTIGUOUS:
        if (sp->have && m == sp->prev_match)
            sp->pe = b;
        else
            sp_pend(sp, a, b);
        sp->prev_match = m;
        break;
    case SPLIT_MERGED_PREV:
        if (m && !sp->prev_match && sp->have)
            sp->pe = b;
        else
            sp_pend(sp, a, b);
        sp->prev_match = m;
        break;
    case SPLIT_MERGED_NEXT: /* a match joins the non-match after it */
        if (m) {
            sp_pend(sp, a, b);
        } else if (sp->have) {
            sp->have = 0;
            sp_emit(sp, sp->ps, b);
        } else {
            sp_emit(sp, a, b);
        }
        break;
    }
}

static void sp_match(Splitter *sp, size_t ms, size_t me) {
    if (sp->prev != ms) sp_event(sp, sp->prev, ms, 0);
    sp_event(sp, ms, me, 1);
    sp->prev = me;
}

static int sp_finish(Splitter *sp, size_t n) {
    if (sp->prev != n) sp_event(sp, sp->prev, n, 0);
    if (sp->have) sp_emit(sp, sp->ps, sp->pe);
    return sp->rc;
}

static void sp_init(Splitter *sp, PtCtx *c, size_t k, const char *s, int is_first, SplitBehavior b, int invert) {
    memset(sp, 0, sizeof *sp);
    sp->c = c;
    sp->k = k;
    sp->s = s;
    sp->is_first = is_first;
    sp->behavior = b;
    sp->invert = invert;
}

/* Splits s (n > 0) on the matches of re. */
static int split_regex(PtCtx *c, size_t k, const TokRegex *re, SplitBehavior b, int invert, const char *s, size_t n,
                       int is_first) {
    Splitter sp;
    sp_init(&sp, c, k, s, is_first, b, invert);
    work_regex_ready(c->w);
    size_t pos = 0, last_end = 0;
    int have_last = 0;
    while (pos <= n && sp.rc == 0) {
        size_t ms = 0, me = 0;
        int rc = regex_next(re, c->w, s, n, pos, 0, &ms, &me, c->err);
        if (rc < 0) return -1;
        if (rc == 0) break;
        if (ms == me && have_last && last_end == me) { /* the onig crate's rule */
            if (pos >= n) break;
            pos += utf8_seq_len((unsigned char)s[pos]);
            continue;
        }
        sp_match(&sp, ms, me);
        have_last = 1;
        last_end = me;
        pos = me;
    }
    return sp.rc ? sp.rc : sp_finish(&sp, n);
}

static int run_stage(PtCtx *c, size_t k, const char *s, size_t n, int is_first) {
    if (n == 0) return 0;
    if (k == c->tok->n_stages) {
        c->emit(c->ctx, s, n);
        return 0;
    }
    const PreTokStage *st = &c->tok->stages[k];
    TokBuf *buf = &c->w->stage_buf[k]; /* deeper stages use their own */
    switch (st->kind) {
    case PT_SPLIT: return split_regex(c, k, st->re, st->behavior, st->invert, s, n, is_first);
    case PT_METASPACE: {
        /* the replaced text starts with the replacement iff s starts with ' ' or with it */
        int starts = s[0] == ' ' || (n >= st->repl_len && memcmp(s, st->repl, st->repl_len) == 0);
        int prepend = !starts && (st->prepend == PREPEND_ALWAYS || (st->prepend == PREPEND_FIRST && is_first));
        buf->len = 0;
        if (prepend) tokbuf_append(buf, st->repl, st->repl_len);
        replace_all(s, n, " ", 1, st->repl, st->repl_len, buf);
        if (!st->split) return run_stage(c, k + 1, buf->data, buf->len, is_first);
        /* each replacement character is a match; MergedWithNext */
        Splitter sp;
        sp_init(&sp, c, k, buf->data, is_first, SPLIT_MERGED_NEXT, 0);
        for (size_t i = 0; i + st->repl_len <= buf->len && sp.rc == 0;) {
            const char *hit = memmem(buf->data + i, buf->len - i, st->repl, st->repl_len);
            if (!hit) break;
            size_t at = (size_t)(hit - buf->data);
            sp_match(&sp, at, at + st->repl_len);
            i = at + st->repl_len;
        }
        return sp.rc ? sp.rc : sp_finish(&sp, buf->len);
    }
    case PT_BYTELEVEL: {
        const char *t = s;
        size_t tn = n;
        if (st->add_prefix_space && s[0] != ' ') {
            buf->len = 0;
            tokbuf_append(buf, " ", 1);
            tokbuf_append(buf, s, n);
            t = buf->data;
            tn = buf->len;
        }
        if (!st->use_regex) return run_stage(c, k + 1, t, tn, is_first);
        return split_regex(c, k, st->re, SPLIT_ISOLATED, 0, t, tn, is_first);
    }
    }
    return 0;
}

int pretok_run(const Tokenizer *tok, TokenizerWork *w, const char *s, size_t n, int is_first, PieceFn emit, void *ctx,
               OwError *err) {
    PtCtx c = {tok, w, emit, ctx, err};
    return run_stage(&c, 0, s, n, is_first);
}
