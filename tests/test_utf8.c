/* test_utf8.c: core/utf8.h, the decoder the tokenizer (trusting its input) and
 * the safetensors writer (checked: ensure_ascii escapes) share. */
#include "core/utf8.h"

#include <criterion/criterion.h>

Test(utf8, decode_and_encode_round_trip) {
    const uint32_t cps[] = {0x41, 0xE9, 0x7FF, 0x800, 0x20AC, 0xFFFD, 0x10000, 0x1F600, 0x10FFFF};
    for (size_t i = 0; i < sizeof cps / sizeof cps[0]; i++) {
        char buf[4];
        size_t n = utf8_encode(cps[i], buf), len = 0;
        cr_assert_eq(utf8_seq_len((unsigned char)buf[0]), n);
        cr_assert_eq(utf8_decode(buf, n, &len), cps[i]);
        cr_assert_eq(len, n);
        uint32_t cp = 0;
        cr_assert_eq(utf8_decode_checked(buf, n, &cp), n, "U+%X", cps[i]);
        cr_assert_eq(cp, cps[i]);
    }
}

Test(utf8, checked_decode_rejects_what_the_plain_one_trusts) {
    uint32_t cp = 0;
    size_t len = 0;
    cr_assert_eq(utf8_decode_checked("\x80", 1, &cp), 0, "a stray continuation byte");
    cr_assert_eq(utf8_decode_checked("\xF8\x80\x80\x80", 4, &cp), 0, "no lead byte");
    cr_assert_eq(utf8_decode_checked("\xC3", 1, &cp), 0, "runs past the end");
    cr_assert_eq(utf8_decode("\xC3", 1, &len), 0xC3u);
    cr_assert_eq(len, 1);
    cr_assert_eq(utf8_decode_checked("\xC3\x41", 2, &cp), 0, "a bad continuation byte");
    cr_assert_eq(utf8_decode("\xC3\x41", 2, &len), 0xC1u, "the plain decoder trusts its input");
    cr_assert_eq(len, 2);
    /* structure only: an overlong form decodes (full validation is data/utf8.c's) */
    cr_assert_eq(utf8_decode_checked("\xC0\x80", 2, &cp), 2);
    cr_assert_eq(cp, 0);
}
