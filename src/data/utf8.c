/* utf8.c: UTF-8 validation and lossy repair for the tokenizer (decoding and
 * encoding: core/utf8.h).
 *
 * Validity follows the Unicode well-formed byte sequence table (no overlongs,
 * no surrogates, nothing above U+10FFFF). Repair replaces each maximal
 * subpart of an ill-formed sequence with one U+FFFD: a lead byte followed by
 * the continuation bytes that could still start a valid sequence counts as
 * one subpart; any other bad byte is a subpart of its own. This is what
 * Python's bytes.decode("utf-8", errors="replace") and Rust's
 * String::from_utf8_lossy do, so the repaired text equals what a
 * transformers user passes to the tokenizer. */
#include "data/tok_internal.h"

#include <string.h>

/* Length of the valid sequence at s[0..n), or 0 when ill-formed; *sub gets
 * the length of the maximal subpart (>= 1) when ill-formed. */
static size_t seq_check(const unsigned char *s, size_t n, size_t *sub) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *sub = 1;
        return 0;
    }
    size_t i = 1;
    for (; i <= need; i++) {
        if (i >= n) break;
        unsigned char b = s[i];
        unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (b < l || b > h) break;
    }
    if (i == need + 1) return need + 1;
    *sub = i;
    return 0;
}

size_t utf8_valid_prefix(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        /* fast path over ASCII, 8 bytes at a time */
        while (i + 8 <= n) {
            uint64_t v;
            memcpy(&v, s + i, 8);
            if (v & 0x8080808080808080ULL) break;
            i += 8;
        }
        if (i >= n) break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t sub;
        size_t k = seq_check(s + i, n - i, &sub);
        if (!k) return i;
        i += k;
    }
    return n;
}

void utf8_append_lossy(TokBuf *out, const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    tokbuf_reserve(out, n + 16);
    while (i < n) {
        size_t good = utf8_valid_prefix(str + i, n - i);
        tokbuf_append(out, str + i, good);
        i += good;
        if (i >= n) break;
        size_t sub = 1;
        seq_check(s + i, n - i, &sub);
        tokbuf_append(out, "\xEF\xBF\xBD", 3);
        i += sub;
    }
}
