/* sample.c: see sample.h. */
#include "data/sample.h"

#include <stdlib.h>
#include <string.h>

void sample_reset(RenderedSample *s) {
    s->len = 0;
    s->nspans = 0;
    s->whole_loss = s->add_special = s->append_eos = 0;
    if (s->text) s->text[0] = '\0';
}

void sample_free(RenderedSample *s) {
    free(s->text);
    free(s->spans);
    memset(s, 0, sizeof *s);
}

void sample_append(RenderedSample *s, const char *p, size_t n) {
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < s->len + n + 1) cap *= 2;
        s->text = ow_xrealloc(s->text, cap);
        s->cap = cap;
    }
    if (n) memcpy(s->text + s->len, p, n);
    s->len += n;
    s->text[s->len] = '\0';
}

void sample_append_str(RenderedSample *s, const char *p) { sample_append(s, p, strlen(p)); }

void sample_add_span(RenderedSample *s, size_t start) {
    OW_CHECK(start <= s->len);
    OW_CHECK(s->nspans == 0 || s->spans[s->nspans - 1].end <= start);
    if (start == s->len) return;
    if (s->nspans == s->spans_cap) {
        s->spans_cap = s->spans_cap ? s->spans_cap * 2 : 8;
        s->spans = ow_xrealloc(s->spans, s->spans_cap * sizeof *s->spans);
    }
    s->spans[s->nspans++] = (LossSpan){start, s->len};
}

/* str.isspace() of one code point (Python 3: bidirectional class WS, B or S, or category Zs) */
static int py_isspace(uint32_t c) {
    if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* the code point starting at s[i] (valid UTF-8; a cut sequence counts as one
 * non-space byte), its length in *len */
static uint32_t cp_at(const unsigned char *s, size_t i, size_t total, size_t *len) {
    unsigned char c = s[i];
    size_t n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    if (n == 1 || i + n > total) {
        *len = 1;
        return c;
    }
    uint32_t v = c & (0x7F >> n);
    for (size_t k = 1; k < n; k++) v = (v << 6) | (s[i + k] & 0x3F);
    *len = n;
    return v;
}

void text_strip(const char *str, size_t n, size_t *b, size_t *e) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, len;
    while (i < n && py_isspace(cp_at(s, i, n, &len))) i += len;
    size_t j = n;
    while (j > i) {
        size_t k = j - 1;
        while (k > i && (s[k] & 0xC0) == 0x80) k--; /* start of the last character */
        if (!py_isspace(cp_at(s, k, n, &len))) break;
        j = k;
    }
    *b = i;
    *e = j;
}

void bytevec_push(ByteVec *v, uint8_t x) {
    if (v->len == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 256;
        v->data = ow_xrealloc(v->data, v->cap);
    }
    v->data[v->len++] = x;
}

void bytevec_free(ByteVec *v) {
    free(v->data);
    memset(v, 0, sizeof *v);
}
