/* decoders.c: turns the token strings of ids back into text, as tokenizers'
 * decoders do (decode_chain of each decoder in turn on a list of strings,
 * then the strings joined). Without a decoder the strings are joined with
 * single spaces, as tokenizers does.
 *
 * Where tokenizers would panic (Strip asked to cut more than a token holds)
 * the cut is clamped instead. */
#include "data/tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* A list of strings in one arena. */
typedef struct StrList {
    TokBuf arena;
    size_t *off, *len;
    size_t n, cap;
} StrList;

static void sl_push(StrList *l, const char *s, size_t n) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->off = ow_xrealloc(l->off, l->cap * sizeof *l->off);
        l->len = ow_xrealloc(l->len, l->cap * sizeof *l->len);
    }
    l->off[l->n] = l->arena.len;
    l->len[l->n] = n;
    l->n++;
    tokbuf_append(&l->arena, s, n);
}

/* Starts a new string; the caller appends to l->arena, then sl_end. */
static void sl_begin(StrList *l) { sl_push(l, "", 0); }
static void sl_end(StrList *l) { l->len[l->n - 1] = l->arena.len - l->off[l->n - 1]; }

static void sl_free(StrList *l) {
    tokbuf_free(&l->arena);
    free(l->off);
    free(l->len);
    memset(l, 0, sizeof *l);
}

#define SL_STR(l, i) ((l)->arena.data + (l)->off[i])

static void dec_replace(const DecOp *op, const StrList *in, StrList *out) {
    for (size_t i = 0; i < in->n; i++) {
        const char *s = SL_STR(in, i);
        size_t n = in->len[i], k = 0;
        sl_begin(out);
        while (k < n) {
            if (op->alen <= n - k && memcmp(s + k, op->a, op->alen) == 0) {
                tokbuf_append(&out->arena, op->b, op->blen);
                k += op->alen;
            } else {
                tokbuf_append(&out->arena, s + k, 1);
                k++;
            }
        }
        sl_end(out);
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "<0xNN>" -> NN as Rust's u8::from_str_radix(.., 16) reads it (which also
 * takes "+N"); -1 otherwise. */
static int byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int h = hexval(s[3]), l = hexval(s[4]);
    if (h >= 0 && l >= 0) return h * 16 + l;
    if (s[3] == '+' && l >= 0) return l;
    return -1;
}

static void flush_bytes(TokBuf *bytes, StrList *out) {
    if (bytes->len == 0) return;
    if (utf8_valid_prefix(bytes->data, bytes->len) == bytes->len) {
        sl_push(out, bytes->data, bytes->len);
    } else {
        for (size_t k = 0; k < bytes->len; k++) sl_push(out, "\xEF\xBF\xBD", 3);
    }
    bytes->len = 0;
}

static void dec_byte_fallback(const StrList *in, StrList *out) {
    TokBuf bytes = {0};
    for (size_t i = 0; i < in->n; i++) {
        int b = byte_token(SL_STR(in, i), in->len[i]);
        if (b >= 0) {
            char c = (char)b;
            tokbuf_append(&bytes, &c, 1);
        } else {
            flush_bytes(&bytes, out);
            sl_push(out, SL_STR(in, i), in->len[i]);
        }
    }
    flush_bytes(&bytes, out);
    tokbuf_free(&bytes);
}

static void dec_fuse(const StrList *in, StrList *out) {
    sl_begin(out);
    for (size_t i = 0; i < in->n; i++) tokbuf_append(&out->arena, SL_STR(in, i), in->len[i]);
    sl_end(out);
}

static void dec_strip(const DecOp *op, const StrList *in, StrList *out) {
    size_t *cs = NULL, cap = 0; /* byte offset of each character, plus the end */
    for (size_t i = 0; i < in->n; i++) {
        const char *s = SL_STR(in, i);
        size_t n = in->len[i], nc = 0;
        if (cap < n + 1) {
            cap = n + 1;
            cs = ow_xrealloc(cs, cap * sizeof *cs);
        }
        for (size_t k = 0; k < n;) {
            cs[nc++] = k;
            size_t l;
            utf8_decode(s + k, n - k, &l);
            k += l;
        }
        cs[nc] = n;
        size_t start_cut = 0, stop_cut = nc;
        for (size_t c = 0; c < op->start && c < nc; c++) {
            size_t l;
            if (utf8_decode(s + cs[c], n - cs[c], &l) != op->cp) break;
            start_cut = c + 1;
        }
        for (size_t k = 0; k < op->stop && k < nc; k++) {
            size_t c = nc - k - 1, l;
            if (utf8_decode(s + cs[c], n - cs[c], &l) != op->cp) break;
            stop_cut = c;
        }
        if (stop_cut < start_cut) stop_cut = start_cut;
        sl_push(out, s + cs[start_cut], cs[stop_cut] - cs[start_cut]);
    }
    free(cs);
}

static void dec_metaspace(const DecOp *op, const StrList *in, StrList *out) {
    for (size_t i = 0; i < in->n; i++) {
        const char *s = SL_STR(in, i);
        size_t n = in->len[i];
        sl_begin(out);
        for (size_t k = 0; k < n;) {
            size_t l;
            uint32_t cp = utf8_decode(s + k, n - k, &l);
            if (cp == op->cp) {
                if (!(i == 0 && !op->prepend_never)) tokbuf_append(&out->arena, " ", 1);
            } else {
                tokbuf_append(&out->arena, s + k, l);
            }
            k += l;
        }
        sl_end(out);
    }
}

static void dec_byte_level(const StrList *in, StrList *out) {
    TokBuf raw = {0};
    for (size_t i = 0; i < in->n; i++) {
        const char *s = SL_STR(in, i);
        size_t n = in->len[i], mark = raw.len;
        int ok = 1;
        for (size_t k = 0; k < n;) {
            size_t l;
            int b = bytelevel_byte(utf8_decode(s + k, n - k, &l));
            if (b < 0) {
                ok = 0;
                break;
            }
            char c = (char)b;
            tokbuf_append(&raw, &c, 1);
            k += l;
        }
        if (!ok) {
            raw.len = mark;
            tokbuf_append(&raw, s, n);
        }
    }
    sl_begin(out);
    utf8_append_lossy(&out->arena, raw.data ? raw.data : "", raw.len);
    sl_end(out);
    tokbuf_free(&raw);
}

int decode_tokens(const Tokenizer *tok, const char *const *strs, const size_t *lens, size_t n, TokBuf *out,
                  OwError *err) {
    out->len = 0;
    tokbuf_append(out, "", 0);
    if (!tok->has_decoder) {
        for (size_t i = 0; i < n; i++) {
            if (i) tokbuf_append(out, " ", 1);
            tokbuf_append(out, strs[i], lens[i]);
        }
        return 0;
    }
    StrList a = {0}, b = {0};
    for (size_t i = 0; i < n; i++) sl_push(&a, strs[i], lens[i]);
    for (size_t k = 0; k < tok->n_dec; k++) {
        const DecOp *op = &tok->dec[k];
        b.n = 0;
        b.arena.len = 0;
        switch (op->kind) {
        case DEC_REPLACE: dec_replace(op, &a, &b); break;
        case DEC_BYTE_FALLBACK: dec_byte_fallback(&a, &b); break;
        case DEC_FUSE: dec_fuse(&a, &b); break;
        case DEC_STRIP: dec_strip(op, &a, &b); break;
        case DEC_METASPACE: dec_metaspace(op, &a, &b); break;
        case DEC_BYTE_LEVEL: dec_byte_level(&a, &b); break;
        }
        StrList t = a;
        a = b;
        b = t;
    }
    for (size_t i = 0; i < a.n; i++) tokbuf_append(out, SL_STR(&a, i), a.len[i]);
    sl_free(&a);
    sl_free(&b);
    (void)err;
    return 0;
}
