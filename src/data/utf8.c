/* utf8.c: UTF-8 validation, lossy repair, decoding and encoding for the
 * tokenizer.
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

size_t utf8_seq_len(unsigned char c) {
    if (c < 0x80) return 1;
    if (c >= 0xC0 && c < 0xE0) return 2;
    if (c >= 0xE0 && c < 0xF0) return 3;
    if (c >= 0xF0 && c < 0xF8) return 4;
    return 1;
}

uint32_t utf8_decode(const char *str, size_t n, size_t *len) {
    const unsigned char *s = (const unsigned char *)str;
    unsigned char c = s[0];
    size_t k = utf8_seq_len(c);
    if (k > n) k = 1;
    *len = k;
    switch (k) {
    case 1: return c;
    case 2: return ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
    case 3: return ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    default:
        return ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) |
               (s[3] & 0x3F);
    }
}

size_t utf8_encode(uint32_t cp, char *o) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}
