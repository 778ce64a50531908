/* utf8.h: the one UTF-8 decoder and encoder. A sequence's length comes from
 * its lead byte alone (1 for a stray byte, 2 for C0..DF, 3 for E0..EF, 4 for
 * F0..F7); the decoder trusts its input, the checked variant also requires a
 * lead byte and its continuation bytes. Neither rejects overlong forms or
 * surrogates: full validation (the Unicode table) is the tokenizer's
 * (data/utf8.c). */
#ifndef OWLORE_CORE_UTF8_H
#define OWLORE_CORE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length of the UTF-8 sequence led by byte c (1 for a stray byte). */
size_t utf8_seq_len(unsigned char c);
/* Decodes the code point at s (valid UTF-8, n >= 1); *len gets its length
 * (1, and the byte itself, when the sequence would run past n). */
uint32_t utf8_decode(const char *s, size_t n, size_t *len);
/* Decodes the sequence at s[0..n) into *cp and returns its length, or 0 when
 * s[0] leads no sequence, the sequence runs past n or a continuation byte is
 * not 10xxxxxx. */
size_t utf8_decode_checked(const char *s, size_t n, uint32_t *cp);
/* Encodes cp into out (4 bytes of room); returns the length. */
size_t utf8_encode(uint32_t cp, char *out);

#endif
