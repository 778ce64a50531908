// ctest-labels: cpu
/* test_gguf.c: the GGUF reader (src/model/gguf.c), dequantisation
 * (gguf_quant.c) and `owlore convert --from-gguf` (gguf_model.c, cmd_convert.c):
 * hand-built blocks of every dequantised type with values known from their
 * definition, gguf-py's dequantisation of random blocks bit for bit, one
 * hostile file per validation rule (the message names the field), the
 * conversion of a synthetic model (names, shapes, the Q/K permutation undone,
 * tied/untied, bf16, atomic output), and the real SmolLM2-135M GGUF against
 * transformers' conversion (tests/reference/make_gguf_fixture.py). */
#include "backend/backend.h"
#include "core/dtype.h"
#include "core/fileio.h"
#include "core/json.h"
#include "data/tokenizer.h"
#include "data/tokenizer_gguf.h"
#include "gguf_writer.h"
#include "model/gguf.h"
#include "model/gguf_model.h"
#include "model/gguf_quant.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "test_support.h"
#include "ts_sha256.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------- dequantisation */

static void put_half(uint8_t *p, uint16_t h) {
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static void expect_dequant(uint32_t type, const uint8_t *blk, const float *want, int n) {
    float got[256];
    OwError err;
    cr_assert_eq(ggml_dequantize(type, blk, got, n, "test", &err), 0, "%s", err.msg);
    for (int i = 0; i < n; i++)
        cr_assert_eq(got[i], want[i], "type %u element %d: got %.9g, want %.9g", type, i, got[i], want[i]);
}

/* 4-bit and 5-bit legacy blocks: element j (j < 16) in the low nibble of
 * qs[j], element j + 16 in its high nibble; the fifth bit of element i is bit
 * i of qh. Values q are chosen per element; the block is packed from them. */
static void pack_nibbles(uint8_t *qs, const int *q) {
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((q[j] & 0xF) | (q[j + 16] & 0xF) << 4);
}

static void pack_qh(uint8_t *qh, const int *q) {
    uint32_t bits = 0;
    for (int i = 0; i < 32; i++) bits |= (uint32_t)((q[i] >> 4) & 1) << i;
    for (int i = 0; i < 4; i++) qh[i] = (uint8_t)(bits >> (8 * i));
}

Test(gguf_quant, legacy_blocks_give_their_defined_values) {
    int q4[32], q5[32];
    for (int i = 0; i < 32; i++) q4[i] = (i * 7 + 3) % 16, q5[i] = (i * 11 + 5) % 32;
    uint8_t b[40];
    float want[32];
    put_half(b, 0x3800); /* Q4_0: d = 0.5, value d * (q - 8) */
    pack_nibbles(b + 2, q4);
    for (int i = 0; i < 32; i++) want[i] = 0.5f * (float)(q4[i] - 8);
    expect_dequant(GGML_Q4_0, b, want, 32);
    put_half(b, 0x3400); /* Q4_1: d = 0.25, m = -1, value d * q + m */
    put_half(b + 2, 0xBC00);
    pack_nibbles(b + 4, q4);
    for (int i = 0; i < 32; i++) want[i] = 0.25f * (float)q4[i] - 1.0f;
    expect_dequant(GGML_Q4_1, b, want, 32);
    put_half(b, 0x3C00); /* Q5_0: d = 1, value q - 16 */
    pack_qh(b + 2, q5);
    pack_nibbles(b + 6, q5);
    for (int i = 0; i < 32; i++) want[i] = (float)(q5[i] - 16);
    expect_dequant(GGML_Q5_0, b, want, 32);
    put_half(b, 0x3800); /* Q5_1: d = 0.5, m = 2, value d * q + m */
    put_half(b + 2, 0x4000);
    pack_qh(b + 4, q5);
    pack_nibbles(b + 8, q5);
    for (int i = 0; i < 32; i++) want[i] = 0.5f * (float)q5[i] + 2.0f;
    expect_dequant(GGML_Q5_1, b, want, 32);
    put_half(b, 0x3000); /* Q8_0: d = 0.125, int8 values */
    for (int i = 0; i < 32; i++) b[2 + i] = (uint8_t)(int8_t)(i * 8 - 128);
    for (int i = 0; i < 32; i++) want[i] = (float)(i * 8 - 128) * 0.125f;
    expect_dequant(GGML_Q8_0, b, want, 32);
}

/* K-quant scales as ggml packs them (get_scale_min_k4): sub-blocks 0..3 in the
 * low 6 bits of bytes 0..3 (scale) and 4..7 (min); 4..7 split: low 4 bits in
 * bytes 8..11 (scale low nibble, min high nibble), high 2 bits in the top bits
 * of bytes 0..3 (scale) and 4..7 (min). */
static void pack_k_scales(uint8_t *s, const int *sc, const int *mn) {
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        s[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
        s[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | (mn[j + 4] & 0xF) << 4);
    }
}

Test(gguf_quant, k_quant_blocks_give_their_defined_values) {
    static const int sc[8] = {1, 2, 3, 4, 40, 50, 60, 63}, mn[8] = {0, 1, 2, 3, 33, 47, 62, 17};
    int q[256];
    for (int i = 0; i < 256; i++) q[i] = (i * 13 + 1) % 32;
    uint8_t b[256];
    float want[256];
    memset(b, 0, sizeof b);
    /* Q4_K / Q5_K: d = 0.5, dmin = 0.25; ggml's loop: per 64 elements c, 32 low
     * nibbles then 32 high nibbles of qs[32c ..]; Q5_K's bit 4 of sub-block j is bit j of qh[l]. */
    for (int five = 0; five < 2; five++) {
        put_half(b, 0x3800);
        put_half(b + 2, 0x3400);
        pack_k_scales(b + 4, sc, mn);
        uint8_t *qh = b + 16, *qs = b + 16 + (five ? 32 : 0);
        memset(qh, 0, 32);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                int lo = q[64 * c + l], hi = q[64 * c + 32 + l];
                if (!five) lo &= 0xF, hi &= 0xF;
                qs[32 * c + l] = (uint8_t)((lo & 0xF) | (hi & 0xF) << 4);
                if (five) qh[l] |= (uint8_t)(((lo >> 4) & 1) << (2 * c) | ((hi >> 4) & 1) << (2 * c + 1));
            }
        for (int i = 0; i < 256; i++) {
            int v = five ? q[i] : q[i] & 0xF, j = i / 32;
            want[i] = 0.5f * (float)sc[j] * (float)v - 0.25f * (float)mn[j];
        }
        expect_dequant(five ? GGML_Q5_K : GGML_Q4_K, b, want, 256);
    }
    /* Q6_K: ggml's loop per 128 elements: for l < 32, elements l, l+32, l+64, l+96
     * take ql[l] low, ql[l+32] low, ql[l] high, ql[l+32] high nibbles and bits
     * 0-1, 2-3, 4-5, 6-7 of qh[l]; scale of element i is scales[i / 16]; d = 0.5. */
    int q6[256];
    for (int i = 0; i < 256; i++) q6[i] = (i * 29 + 7) % 64;
    memset(b, 0, sizeof b);
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++)
            for (int g = 0; g < 4; g++) {
                int v = q6[128 * h + 32 * g + l];
                b[64 * h + l + 32 * (g & 1)] |= (uint8_t)((v & 0xF) << (4 * (g >> 1)));
                b[128 + 32 * h + l] |= (uint8_t)((v >> 4) << (2 * g));
            }
    for (int s = 0; s < 16; s++) b[192 + s] = (uint8_t)(int8_t)(s * 5 - 40);
    put_half(b + 208, 0x3800);
    for (int i = 0; i < 256; i++) want[i] = 0.5f * (float)((i / 16) * 5 - 40) * (float)(q6[i] - 32);
    expect_dequant(GGML_Q6_K, b, want, 256);
}

Test(gguf_quant, float_types_convert_exactly) {
    uint8_t b[16];
    float want[4] = {1.0f, -2.0f, ldexpf(1.0f, -24), 65504.0f};
    uint16_t halves[4] = {0x3C00, 0xC000, 0x0001, 0x7BFF};
    for (int i = 0; i < 4; i++) put_half(b + 2 * i, halves[i]);
    expect_dequant(GGML_F16, b, want, 4);
    float bw[2] = {1.0f, -3.0f};
    put_half(b, 0x3F80);
    put_half(b + 2, 0xC040);
    expect_dequant(GGML_BF16, b, bw, 2);
    float fw[2] = {3.25f, -0.0f};
    memcpy(b, fw, 8);
    expect_dequant(GGML_F32, b, fw, 2);
}

/* Random blocks of every type, dequantised by gguf-py (the fixture): bit for bit. */
Test(gguf_quant, matches_gguf_py_bit_for_bit) {
    static const char *names[] = {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"};
    static const uint32_t types[] = {0, 1, 30, 2, 3, 6, 7, 8, 12, 13, 14};
    char *path = ts_fixture_path("gguf/quant_blocks.safetensors");
    SafeTensors st;
    OwError err;
    cr_assert_eq(safetensors_open(path, &st, &err), 0, "%s", err.msg);
    for (int k = 0; k < 11; k++) {
        char nb[32], nf[32];
        snprintf(nb, sizeof nb, "%s.bytes", names[k]);
        snprintf(nf, sizeof nf, "%s.f32", names[k]);
        const StTensor *tb = safetensors_find(&st, nb), *tf = safetensors_find(&st, nf);
        cr_assert(tb && tf, "fixture lacks %s", names[k]);
        int64_t n = st_tensor_numel(tf);
        float *got = malloc((size_t)n * sizeof *got);
        cr_assert_eq(ggml_dequantize(types[k], tb->data, got, n, names[k], &err), 0, "%s", err.msg);
        cr_assert_eq(memcmp(got, tf->data, (size_t)n * 4), 0, "%s differs from gguf-py", names[k]);
        free(got);
    }
    safetensors_close(&st);
    free(path);
}

Test(gguf_quant, refuses_partial_blocks_and_unsupported_types) {
    uint8_t b[64] = {0};
    float y[64];
    OwError err;
    cr_assert_eq(ggml_dequantize(GGML_Q4_1, b, y, 33, "blk.0.attn_q.weight", &err), -1);
    cr_assert(strstr(err.msg, "blk.0.attn_q.weight") && strstr(err.msg, "Q4_1 blocks"), "%s", err.msg);
    cr_assert_eq(ggml_dequantize(10, b, y, 256, "t", &err), -1);
    cr_assert(strstr(err.msg, "Q2_K cannot be converted"), "%s", err.msg);
}

/* ------------------------------------------------------------- reading */

static char *write_tmp(const TgFile *f, char **dir) {
    *dir = ts_tmpdir();
    char *p = ow_path_join(*dir, "m.gguf");
    tg_write(f, p);
    return p;
}

static char *write_bytes(const TgBuf *b, char **dir) {
    *dir = ts_tmpdir();
    char *p = ow_path_join(*dir, "m.gguf");
    ts_write_file(p, b->p, b->n);
    return p;
}

/* gguf_open of the bytes fails with a message holding every `needles` entry (NULL-terminated). */
static void expect_open_error_bytes(const TgBuf *b, const char *const *needles) {
    char *dir, *p = write_bytes(b, &dir);
    Gguf g;
    OwError err;
    cr_assert_eq(gguf_open(p, &g, &err), -1, "a hostile file was accepted (want \"%s\")", needles[0]);
    cr_assert(strstr(err.msg, p) != NULL, "the message does not name the file: %s", err.msg);
    for (int i = 0; needles[i]; i++) cr_assert(strstr(err.msg, needles[i]), "want \"%s\" in: %s", needles[i], err.msg);
    ts_rmtree(dir);
    free(dir);
    free(p);
}

static void expect_open_error(const TgFile *f, const char *n1, const char *n2) {
    TgBuf b;
    tg_bytes(f, &b);
    const char *needles[] = {n1, n2, NULL};
    expect_open_error_bytes(&b, needles);
    tg_free(&b);
}

static void one_tensor_file(TgFile *f) {
    tg_init(f);
    tg_kv_str(f, "general.architecture", "llama");
    float v[64] = {0};
    int64_t ne[2] = {32, 2};
    tg_tensor(f, "a", 2, ne, GGML_F32, v, sizeof v);
}

Test(gguf_reader, reads_keys_and_tensors) {
    TgFile f;
    tg_init(&f);
    tg_kv_str(&f, "general.architecture", "llama");
    tg_kv_u32(&f, "n", 7);
    tg_kv_f32(&f, "x", 0.5f);
    tg_kv_bool(&f, "b", 1);
    const char *toks[] = {"a", "", "hello"};
    tg_kv_strs(&f, "toks", toks, 3);
    int32_t iv[3] = {1, -2, 3};
    tg_kv_i32s(&f, "ints", iv, 3);
    uint8_t q[2 * 20] = {0};
    int64_t ne[2] = {32, 2};
    tg_tensor(&f, "w", 2, ne, GGML_Q4_1, q, sizeof q);
    char *dir, *p = write_tmp(&f, &dir);
    Gguf g;
    OwError err;
    cr_assert_eq(gguf_open(p, &g, &err), 0, "%s", err.msg);
    uint32_t u;
    float x;
    int b;
    int64_t c;
    cr_assert_eq(gguf_get_u32(&g, "n", &u, &err), 0);
    cr_assert_eq(u, 7);
    cr_assert_eq(gguf_get_count(&g, "n", &c, &err), 0);
    cr_assert_eq(c, 7);
    cr_assert_eq(gguf_get_f32(&g, "x", &x, &err), 0);
    cr_assert_eq(x, 0.5f);
    cr_assert_eq(gguf_get_bool(&g, "b", &b, &err), 0);
    cr_assert_eq(b, 1);
    GgufStr *s;
    uint64_t n;
    cr_assert_eq(gguf_get_str_array(&g, "toks", &s, &n, &err), 0);
    cr_assert(n == 3 && s[1].len == 0 && s[2].len == 5 && memcmp(s[2].s, "hello", 5) == 0);
    free(s);
    int32_t *ia;
    cr_assert_eq(gguf_get_i32_array(&g, "ints", &ia, &n, &err), 0);
    cr_assert(n == 3 && ia[1] == -2);
    free(ia);
    const GgufTensor *t = gguf_find_tensor(&g, "w");
    cr_assert(t && t->type == GGML_Q4_1 && t->ne[0] == 32 && t->ne[1] == 2 && t->nbytes == 40 && t->numel == 64);
    cr_assert_eq((const char *)t->data - (const char *)g.file.data, (ptrdiff_t)g.data_offset);
    cr_assert_eq(g.data_offset % 32, 0);
    /* typed getters name the key and both types */
    cr_assert_eq(gguf_get_u32(&g, "x", &u, &err), -1);
    cr_assert(strstr(err.msg, "\"x\" is float32, expected uint32"), "%s", err.msg);
    cr_assert_eq(gguf_get_f32_array(&g, "toks", (float **)&ia, &n, &err), -1);
    cr_assert(strstr(err.msg, "\"toks\" is an array of string, expected an array of float32"), "%s", err.msg);
    cr_assert_eq(gguf_get_u32(&g, "absent", &u, &err), -1);
    cr_assert(strstr(err.msg, "\"absent\" (uint32) is missing"), "%s", err.msg);
    cr_assert_eq(gguf_get_count(&g, "general.architecture", &c, &err), -1);
    cr_assert(strstr(err.msg, "is string, expected an integer"), "%s", err.msg);
    gguf_close(&g);
    tg_close(&f);
    ts_rmtree(dir);
    free(dir);
    free(p);
}

Test(gguf_reader, version_2_reads_and_alignment_is_honoured) {
    TgFile f;
    one_tensor_file(&f);
    f.version = 2;
    f.alignment = 64;
    tg_kv_u32(&f, "general.alignment", 64);
    char *dir, *p = write_tmp(&f, &dir);
    Gguf g;
    OwError err;
    cr_assert_eq(gguf_open(p, &g, &err), 0, "%s", err.msg);
    cr_assert(g.alignment == 64 && g.data_offset % 64 == 0 && g.version == 2);
    gguf_close(&g);
    tg_close(&f);
    ts_rmtree(dir);
    free(dir);
    free(p);
}

Test(gguf_reader, refuses_bad_headers) {
    TgFile f;
    one_tensor_file(&f);
    TgBuf b;
    tg_bytes(&f, &b);
    b.p[0] = 'X';
    expect_open_error_bytes(&b, (const char *[]){"no \"GGUF\" magic at byte 0", NULL});
    b.p[0] = 'G';
    b.p[4] = 1;
    expect_open_error_bytes(&b, (const char *[]){"GGUF version 1 at byte 4", NULL});
    b.p[4] = 0, b.p[7] = 3;
    expect_open_error_bytes(&b, (const char *[]){"big-endian", NULL});
    b.p[7] = 0, b.p[4] = 3;
    b.p[8 + 6] = 1; /* tensor count 2^48 */
    expect_open_error_bytes(&b, (const char *[]){"tensor count", "at byte 8", NULL});
    b.p[8 + 6] = 0, b.p[16 + 5] = 1; /* kv count 2^40 */
    expect_open_error_bytes(&b, (const char *[]){"key-value count", NULL});
    b.p[16 + 5] = 0;
    TgBuf cut = {b.p, 37, b.cap}; /* inside the first key */
    expect_open_error_bytes(&cut,
                            (const char *[]){"the key of key-value 0 at byte 24 has length 20", "past the end", NULL});
    tg_free(&b);
    tg_close(&f);
}

/* A key-value written field by field: key, type, then (when >= 0) an element type and a count. */
static void expect_raw_kv_error(const char *key, uint32_t type, int64_t elem, int64_t count, const char *want) {
    TgFile f;
    tg_init(&f);
    tg_str(&f.kv, key);
    tg_u32(&f.kv, type);
    if (elem >= 0) tg_u32(&f.kv, (uint32_t)elem);
    if (count >= 0) tg_u64(&f.kv, (uint64_t)count);
    f.nkv++;
    expect_open_error(&f, want, NULL);
    tg_close(&f);
}

Test(gguf_reader, refuses_bad_key_values) {
    TgFile f;
    tg_init(&f);
    tg_kv_u32(&f, "k", 1);
    tg_kv_u32(&f, "k", 2);
    expect_open_error(&f, "key \"k\" appears twice", NULL);
    tg_close(&f);
    tg_init(&f);
    tg_kv_u32(&f, "", 1);
    expect_open_error(&f, "the key of key-value 0", "is empty");
    tg_close(&f);
    expect_raw_kv_error("odd", 13, -1, -1, "key \"odd\": unknown value type 13");
    expect_raw_kv_error("arr", 9, 9, 0, "key \"arr\": nested arrays");
    expect_raw_kv_error("arr", 9, 42, -1, "key \"arr\": unknown array element type 42");
    expect_raw_kv_error("big", 9, 4, 1 << 30, "run past the end of the file");
    expect_raw_kv_error("s", 8, -1, 1000, "the value of key \"s\"");
    tg_init(&f);
    tg_kv_u32(&f, "general.alignment", 48);
    expect_open_error(&f, "\"general.alignment\" must be a uint32 power of two", NULL);
    tg_close(&f);
    tg_init(&f);
    tg_kv_f32(&f, "general.alignment", 32.0f);
    expect_open_error(&f, "\"general.alignment\" must be a uint32 power of two", "found float32");
    tg_close(&f);
}

Test(gguf_reader, refuses_bad_tensor_infos) {
    TgFile f;
    float v[64] = {0};
    int64_t ne[5] = {32, 2, 1, 1, 1};
    one_tensor_file(&f);
    tg_tensor(&f, "a", 2, ne, GGML_F32, v, sizeof v);
    expect_open_error(&f, "tensor \"a\" appears twice", NULL);
    tg_close(&f);
    one_tensor_file(&f);
    f.t[0].nd = 0;
    expect_open_error(&f, "tensor \"a\": 0 dimensions", NULL);
    tg_close(&f);
    one_tensor_file(&f);
    f.t[0].ne[1] = 0;
    expect_open_error(&f, "tensor \"a\": dimension 1 is 0", "must be positive");
    f.t[0].ne[1] = (int64_t)1 << 40;
    f.t[0].nd = 3;
    f.t[0].ne[2] = (int64_t)1 << 40;
    expect_open_error(&f, "tensor \"a\": dimension 2", "overflows");
    f.t[0].nd = 2;
    f.t[0].ne[1] = 2;
    f.t[0].type = 99;
    expect_open_error(&f, "tensor \"a\": unknown ggml type 99", NULL);
    f.t[0].type = GGML_Q8_0;
    f.t[0].ne[0] = 48;
    expect_open_error(&f, "tensor \"a\": a row of 48 elements is not a whole number of Q8_0 blocks", NULL);
    f.t[0].type = GGML_F32;
    f.t[0].ne[0] = 32;
    f.t[0].offset = 8;
    expect_open_error(&f, "tensor \"a\": offset 8 is not a multiple of the alignment 32", NULL);
    f.t[0].offset = 0;
    f.t[0].ne[1] = 3; /* 384 bytes, the file holds 256 */
    expect_open_error(&f, "tensor \"a\": bytes [0, 384) of the data section reach past its end", NULL);
    f.t[0].ne[1] = 2;
    tg_tensor(&f, "b", 2, ne, GGML_F32, v, sizeof v)->offset = 128;
    expect_open_error(&f, "overlaps tensor", "\"a\"");
    tg_close(&f);
}

Test(gguf_reader, refuses_five_dimensions) {
    TgFile f;
    tg_init(&f);
    TgBuf b;
    tg_bytes(&f, &b);
    b.n = 24; /* the header alone; one tensor, written by hand */
    b.p[8] = 1;
    tg_str(&b, "t");
    tg_u32(&b, 5);
    for (int i = 0; i < 5; i++) tg_u64(&b, 1);
    tg_u32(&b, 0);
    tg_u64(&b, 0);
    expect_open_error_bytes(&b, (const char *[]){"tensor \"t\": 5 dimensions", NULL});
    tg_free(&b);
    tg_close(&f);
}

/* ---------------------------------------------------------- conversion */

static int run_convert(const char *gguf, const char *out, const char *extra, char **output) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' convert --from-gguf '%s' --out '%s' %s 2>&1", ts_owlore_binary(), gguf, out,
             extra ? extra : "");
    return ts_run(cmd, output);
}

static const StTensor *need_tensor(const SafeTensors *st, const char *name) {
    const StTensor *t = safetensors_find(st, name);
    cr_assert(t != NULL, "converted model lacks %s", name);
    return t;
}

/* The tiny model's value at (row r, col c) of the tensor with index `base` (tg_tiny_llama). */
static float tiny_value(int64_t r, int64_t c, int base) { return (float)r + (float)c / 64.0f + (float)base; }

static void check_tiny_tensors(const SafeTensors *st, int untied) {
    const StTensor *q = need_tensor(st, "model.layers.1.self_attn.q_proj.weight");
    const StTensor *k = need_tensor(st, "model.layers.1.self_attn.k_proj.weight");
    const StTensor *o = need_tensor(st, "model.layers.1.self_attn.o_proj.weight");
    cr_assert(q->ndim == 2 && q->shape[0] == TG_HEADS * TG_HEAD_DIM && q->shape[1] == TG_HIDDEN);
    cr_assert(o->shape[0] == TG_HIDDEN && o->shape[1] == TG_HEADS * TG_HEAD_DIM);
    /* llama.cpp stores HF row (head h, half a, i) at row h * head_dim + 2 i + a */
    int half = TG_HEAD_DIM / 2;
    for (int which = 0; which < 2; which++) {
        const StTensor *t = which ? k : q;
        int heads = which ? TG_KV_HEADS : TG_HEADS, base = 1 + 7 + which; /* block 1: after embd and block 0 */
        const float *w = t->data;
        for (int h = 0; h < heads; h++)
            for (int a = 0; a < 2; a++)
                for (int i = 0; i < half; i++)
                    for (int c = 0; c < TG_HIDDEN; c += 7) {
                        int hf_row = h * TG_HEAD_DIM + a * half + i, gg_row = h * TG_HEAD_DIM + 2 * i + a;
                        cr_assert_eq(w[hf_row * TG_HIDDEN + c], tiny_value(gg_row, c, base), "%s row %d col %d",
                                     which ? "k" : "q", hf_row, c);
                    }
    }
    const float *ow = o->data, *emb = need_tensor(st, "model.embed_tokens.weight")->data;
    cr_assert_eq(ow[5 * (TG_HEADS * TG_HEAD_DIM) + 3], tiny_value(5, 3, 1 + 7 + 3));
    cr_assert_eq(emb[39 * TG_HIDDEN + 31], tiny_value(39, 31, 0));
    const StTensor *norm = need_tensor(st, "model.norm.weight");
    cr_assert(norm->ndim == 1 && norm->shape[0] == TG_HIDDEN);
    cr_assert_eq((safetensors_find(st, "lm_head.weight") != NULL), untied);
    cr_assert_eq(st->ntensors, 2 + 9 * TG_LAYERS + untied);
}

Test(gguf_convert, tiny_model_names_shapes_and_unpermuted_qk) {
    for (int untied = 0; untied < 2; untied++) {
        TgFile f;
        tg_init(&f);
        tg_tiny_llama(&f, untied);
        char *dir, *p = write_tmp(&f, &dir), *out = ow_path_join(dir, "hf"), *log;
        cr_assert_eq(run_convert(p, out, NULL, &log), 0, "%s", log);
        cr_assert(strstr(log, "F32 ") && strstr(log, "wrote"), "%s", log);
        SafeTensors st;
        OwError err;
        cr_assert_eq(safetensors_open(out, &st, &err), 0, "%s", err.msg);
        check_tiny_tensors(&st, untied);
        safetensors_close(&st);
        char *cp = ow_path_join(out, "config.json");
        ModelConfig c;
        cr_assert_eq(model_config_load(cp, &c, &err), 0, "%s", err.msg);
        cr_assert(c.hidden_size == TG_HIDDEN && c.num_layers == TG_LAYERS && c.num_heads == TG_HEADS &&
                  c.num_kv_heads == TG_KV_HEADS && c.head_dim == TG_HEAD_DIM && c.intermediate_size == TG_INTER &&
                  c.vocab_size == TG_VOCAB && c.max_position_embeddings == 256 && c.rope_theta == 10000.0 &&
                  fabs(c.rms_norm_eps - 1e-5) < 1e-12 && c.tie_word_embeddings == !untied && c.bos_token_id == -1);
        cr_assert_str_eq(c.torch_dtype, "float32");
        free(cp);
        free(log);
        free(out);
        ts_rmtree(dir);
        free(dir);
        free(p);
        tg_close(&f);
    }
}

Test(gguf_convert, bf16_rounds_the_f32_values) {
    TgFile f;
    tg_init(&f);
    tg_tiny_llama(&f, 0);
    char *dir, *p = write_tmp(&f, &dir), *a = ow_path_join(dir, "a"), *b = ow_path_join(dir, "b"), *log;
    cr_assert_eq(run_convert(p, a, NULL, &log), 0, "%s", log);
    free(log);
    cr_assert_eq(run_convert(p, b, "--dtype bf16", &log), 0, "%s", log);
    free(log);
    SafeTensors sa, sb;
    OwError err;
    cr_assert_eq(safetensors_open(a, &sa, &err), 0, "%s", err.msg);
    cr_assert_eq(safetensors_open(b, &sb, &err), 0, "%s", err.msg);
    cr_assert_eq(sa.ntensors, sb.ntensors);
    for (int i = 0; i < sa.ntensors; i++) {
        const StTensor *x = &sa.tensors[i], *y = need_tensor(&sb, x->name);
        cr_assert_eq(y->dtype, OW_BF16);
        int64_t n = st_tensor_numel(x);
        for (int64_t j = 0; j < n; j++)
            cr_assert_eq(((const uint16_t *)y->data)[j], f32_to_bf16(((const float *)x->data)[j]), "%s[%lld]", x->name,
                         (long long)j);
    }
    safetensors_close(&sa);
    safetensors_close(&sb);
    tg_close(&f);
    ts_rmtree(dir);
    free(dir);
    free(a);
    free(b);
    free(p);
}

static int dir_entries(const char *dir) {
    char cmd[4200], *out;
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    cr_assert_eq(ts_run(cmd, &out), 0);
    int n = atoi(out);
    free(out);
    return n;
}

/* A failure in the middle of writing (a tensor of a type owlore cannot
 * convert) leaves no output directory and no temporary beside it. */
Test(gguf_convert, failure_leaves_nothing_and_existing_dir_is_kept) {
    TgFile f;
    tg_init(&f);
    tg_tiny_llama(&f, 0);
    TgTensor *t = NULL;
    for (int i = 0; i < f.nt; i++)
        if (strcmp(f.t[i].name, "blk.1.ffn_down.weight") == 0) t = &f.t[i];
    t->type = 9; /* Q8_1: known to the reader, not converted; 64-element rows = 2 blocks of 40 bytes */
    t->nbytes = (size_t)(t->ne[1] * 2 * 40);
    char *dir, *p = write_tmp(&f, &dir), *out = ow_path_join(dir, "hf"), *log;
    cr_assert_neq(run_convert(p, out, NULL, &log), 0, "%s", log);
    cr_assert(strstr(log, "blk.1.ffn_down.weight") && strstr(log, "Q8_1 cannot be converted"), "%s", log);
    free(log);
    cr_assert(!ow_path_exists(out), "a failed convert left %s", out);
    cr_assert_eq(dir_entries(dir), 1, "a failed convert left a temporary beside the model");
    tg_close(&f);
    /* an existing non-empty directory is refused, then replaced with --overwrite-out */
    tg_init(&f);
    tg_tiny_llama(&f, 0);
    tg_write(&f, p);
    cr_assert_eq(ow_mkdir_p(out, &(OwError){0}), 0);
    char *keep = ow_path_join(out, "keep.txt");
    ts_write_file(keep, "x", 1);
    cr_assert_neq(run_convert(p, out, NULL, &log), 0, "%s", log);
    cr_assert(strstr(log, "exists and is not empty") && strstr(log, "--overwrite-out"), "%s", log);
    free(log);
    cr_assert(ow_path_exists(keep));
    cr_assert_eq(run_convert(p, out, "--overwrite-out", &log), 0, "%s", log);
    free(log);
    cr_assert(!ow_path_exists(keep));
    free(keep);
    tg_close(&f);
    ts_rmtree(dir);
    free(dir);
    free(out);
    free(p);
}

static void expect_convert_error(TgFile *f, const char *n1, const char *n2) {
    char *dir, *p = write_tmp(f, &dir), *out = ow_path_join(dir, "hf"), *log;
    cr_assert_neq(run_convert(p, out, NULL, &log), 0, "%s", log);
    cr_assert(strstr(log, n1) && (!n2 || strstr(log, n2)), "want \"%s\" in: %s", n1, log);
    cr_assert(!ow_path_exists(out));
    free(log);
    ts_rmtree(dir);
    free(dir);
    free(out);
    free(p);
}

Test(gguf_convert, refuses_other_architectures_and_inconsistent_models) {
    TgFile f;
    tg_init(&f);
    tg_kv_str(&f, "general.architecture", "qwen2");
    expect_convert_error(&f, "\"general.architecture\" is \"qwen2\"", "llama");
    tg_close(&f);
    tg_init(&f);
    tg_tiny_llama(&f, 0);
    snprintf(f.t[3].name, sizeof f.t[3].name, "blk.0.attn_qkv.weight");
    expect_convert_error(&f, "tensor \"blk.0.attn_qkv.weight\" has no LLaMA counterpart", NULL);
    tg_close(&f);
    tg_init(&f);
    tg_tiny_llama(&f, 0);
    f.nt--; /* output_norm */
    free(f.t[f.nt].data);
    expect_convert_error(&f, "tensor \"output_norm.weight\" is missing", NULL);
    tg_close(&f);
    tg_init(&f);
    tg_tiny_llama(&f, 0);
    while (f.nt > 1 + 9) free(f.t[--f.nt].data); /* block 1 and the final norm gone */
    expect_convert_error(&f, "tensor \"blk.1.attn_q.weight\" is missing", NULL);
    tg_close(&f);
    tg_init(&f);
    tg_tiny_llama(&f, 0);
    tg_kv_str(&f, "llama.rope.scaling.type", "linear");
    expect_convert_error(&f, "\"llama.rope.scaling.type\" is \"linear\"", NULL);
    tg_close(&f);
    tg_init(&f);
    tg_tiny_llama(&f, 0);
    f.t[1].ne[1] = 16; /* blk.0.attn_q with 16 rows instead of heads x head_dim = 32 */
    f.t[1].nbytes = 16 * 32 * 4;
    expect_convert_error(&f, "tensor \"blk.0.attn_q.weight\" has the shape [16, 32]", "[32, 32]");
    tg_close(&f);
}

/* ------------------------------------------------------ the real SmolLM2 */

/* Every tensor of the converted model has transformers' shape and the sha256 of its bytes
 * (key "sha256_f32" for F32, "sha256_bf16" for BF16: torch's rounding of the F32 values). */
static void check_fixture_tensors(const char *out, const cJSON *fx, DType dtype) {
    SafeTensors st;
    OwError err;
    cr_assert_eq(safetensors_open(out, &st, &err), 0, "%s", err.msg);
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(fx, "tensors"), *e;
    int n = 0;
    cJSON_ArrayForEach(e, ts) {
        const StTensor *t = need_tensor(&st, e->string);
        cr_assert_eq(t->dtype, dtype);
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
        cr_assert_eq(t->ndim, cJSON_GetArraySize(shape), "%s", e->string);
        for (int d = 0; d < t->ndim; d++) cr_assert_eq(t->shape[d], (int64_t)cJSON_GetArrayItem(shape, d)->valuedouble);
        char hex[65];
        ts_sha256_hex(t->data, t->nbytes, hex);
        const char *key = dtype == OW_F32 ? "sha256_f32" : "sha256_bf16";
        cr_assert_str_eq(hex, cJSON_GetObjectItemCaseSensitive(e, key)->valuestring,
                         "%s is not bit-identical to transformers' conversion (%s)", e->string, dtype_name(dtype));
        n++;
    }
    cr_assert_eq(n, st.ntensors, "the conversion has %d tensors, transformers %d", st.ntensors, n);
    cr_log_info("%s: %d tensors bit-identical to transformers' %s", out, n, dtype_name(dtype));
    safetensors_close(&st);
}

static void check_smollm2_config(const char *out, const cJSON *fx) {
    char *cp = ow_path_join(out, "config.json");
    ModelConfig c;
    OwError err;
    cr_assert_eq(model_config_load(cp, &c, &err), 0, "%s", err.msg);
    const cJSON *fc = cJSON_GetObjectItemCaseSensitive(fx, "config");
#define FX(k) cJSON_GetObjectItemCaseSensitive(fc, k)->valuedouble
    cr_assert(c.hidden_size == FX("hidden_size") && c.num_layers == FX("num_hidden_layers") &&
              c.num_heads == FX("num_attention_heads") && c.num_kv_heads == FX("num_key_value_heads") &&
              c.head_dim == FX("head_dim") && c.intermediate_size == FX("intermediate_size") &&
              c.max_position_embeddings == FX("max_position_embeddings") && c.vocab_size == FX("vocab_size") &&
              c.bos_token_id == FX("bos_token_id") && c.eos_token_id == FX("eos_token_id") &&
              c.rope_theta == FX("rope_theta"));
    cr_assert(fabs(c.rms_norm_eps - FX("rms_norm_eps")) <= 1e-12 * FX("rms_norm_eps"));
#undef FX
    cr_assert_eq(c.tie_word_embeddings, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(fc, "tie_word_embeddings")));
    free(cp);
}

/* Logits of the first 16 text ids at the fixture's columns, within 1e-4 of transformers. */
static void check_smollm2_logits(const char *out) {
    char *fp = ts_fixture_path("gguf/smollm2_logits.safetensors");
    SafeTensors fx;
    OwError err;
    cr_assert_eq(safetensors_open(fp, &fx, &err), 0, "%s", err.msg);
    const StTensor *ids = need_tensor(&fx, "input_ids"), *cols = need_tensor(&fx, "columns");
    const StTensor *ref = need_tensor(&fx, "logits"), *amax = need_tensor(&fx, "argmax");
    int64_t T = ids->shape[0], nc = cols->shape[0];
    Backend *be = backend_create_cpu(2, 0, &err);
    cr_assert(be != NULL, "%s", err.msg);
    Model *m;
    cr_assert_eq(model_load_hf(be, out, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(model_prepare(m, 1, T, 0, &err), 0, "%s", err.msg);
    int64_t V = m->cfg.vocab_size;
    float *logits = malloc((size_t)(T * V) * sizeof *logits);
    cr_assert_eq(model_forward_logits(m, ids->data, logits, &err), 0, "%s", err.msg);
    double maxd = 0;
    const int32_t *cv = cols->data, *am = amax->data;
    for (int64_t t = 0; t < T; t++) {
        int64_t best = 0;
        for (int64_t v = 1; v < V; v++)
            if (logits[t * V + v] > logits[t * V + best]) best = v;
        cr_assert_eq(best, am[t], "position %lld: argmax %lld, transformers %d", (long long)t, (long long)best, am[t]);
        for (int64_t k = 0; k < nc; k++) {
            double d = fabs((double)logits[t * V + cv[k]] - (double)((const float *)ref->data)[t * nc + k]);
            if (d > maxd) maxd = d;
        }
    }
    cr_log_info("SmolLM2: max |logit diff| %.3g over %lld x %lld entries", maxd, (long long)T, (long long)nc);
    cr_assert_lt(maxd, 1e-4, "max |logit diff| %.3g", maxd);
    free(logits);
    model_free(m);
    be->ops->destroy(be);
    safetensors_close(&fx);
    free(fp);
}

/* The rebuilt tokenizer's ids of tinyshakespeare.txt equal transformers' (count, sha256, first 64). */
static void check_fixture_ids(const char *out, const cJSON *fx, int add_special) {
    Tokenizer *tok;
    OwError err;
    cr_assert_eq(tokenizer_load(out, &tok, &err), 0, "%s", err.msg);
    char *tp = ts_shared_path("data/real/text/tinyshakespeare.txt"), *text = ts_read_text(tp);
    IdVec ids = {0};
    cr_assert_eq(tokenizer_encode(tok, text, strlen(text), add_special, &ids, &err), 0, "%s", err.msg);
    const cJSON *ti = cJSON_GetObjectItemCaseSensitive(fx, "text_ids"),
                *first = cJSON_GetObjectItemCaseSensitive(ti, "first");
    cr_assert_eq((double)ids.len, cJSON_GetObjectItemCaseSensitive(ti, "count")->valuedouble);
    for (int i = 0; i < cJSON_GetArraySize(first); i++)
        cr_assert_eq(ids.data[i], (int32_t)cJSON_GetArrayItem(first, i)->valuedouble, "id %d", i);
    char hex[65];
    ts_sha256_hex(ids.data, ids.len * sizeof *ids.data, hex);
    cr_assert_str_eq(hex, cJSON_GetObjectItemCaseSensitive(ti, "sha256_i32")->valuestring);
    cr_log_info("%s: %zu tinyshakespeare ids identical to transformers'", out, ids.len);
    idvec_free(&ids);
    free(text);
    free(tp);
    tokenizer_free(tok);
}

Test(gguf_smollm2, converts_bit_identical_to_transformers) {
    char *gguf = ts_smollm2_gguf();
    if (!gguf) {
        cr_skip_test("SmolLM2 GGUF absent (scripts/get-smollm2.sh fetches it; tests skip without it)");
        return;
    }
    char *dir = ts_tmpdir(), *out = ow_path_join(dir, "hf"), *log;
    cr_assert_eq(run_convert(gguf, out, NULL, &log), 0, "%s", log);
    cr_assert(strstr(log, "Q4_1 210") && strstr(log, "Q8_0 1") && strstr(log, "F32 61"), "%s", log);
    free(log);
    char *fp = ts_fixture_path("gguf/smollm2.json");
    OwError err;
    cJSON *fx = json_parse_file(fp, &err);
    cr_assert(fx != NULL, "%s", err.msg);
    check_fixture_tensors(out, fx, OW_F32);
    check_smollm2_config(out, fx);
    check_smollm2_logits(out);
    check_fixture_ids(out, fx, 0);
    cr_assert_eq(run_convert(gguf, out, "--dtype bf16 --overwrite-out", &log), 0, "%s", log);
    free(log);
    check_fixture_tensors(out, fx, OW_BF16);
    cJSON_Delete(fx);
    free(fp);
    ts_rmtree(dir);
    free(dir);
    free(out);
    free(gguf);
}

/* ------------------------------------------------- tokenizer (synthetic) */

static cJSON *tokenizer_files_of(TgFile *f, GgufTokenizerFiles *tf, cJSON **cfg) {
    char *dir, *p = write_tmp(f, &dir);
    Gguf g;
    OwError err;
    cr_assert_eq(gguf_open(p, &g, &err), 0, "%s", err.msg);
    cr_assert_eq(tokenizer_files_from_gguf(&g, tf, &err), 0, "%s", err.msg);
    gguf_close(&g);
    ts_rmtree(dir);
    free(dir);
    free(p);
    cJSON *root = cJSON_Parse(tf->tokenizer_json);
    *cfg = cJSON_Parse(tf->config_json);
    cr_assert(root && *cfg);
    return root;
}

static const cJSON *jpath(const cJSON *o, const char *a, const char *b) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
    return b ? cJSON_GetObjectItemCaseSensitive(x, b) : x;
}

Test(gguf_tokenizer, gpt2_vocab_added_tokens_pre_tokenizer_and_template) {
    static const char *toks[] = {"<|endoftext|>",
                                 "<bos>",
                                 "a",
                                 "b",
                                 "ab",
                                 "\xc4\xa0",
                                 "\xc4\xa0"
                                 "a",
                                 "x y",
                                 "<ctl 1>",
                                 "<think>",
                                 "a"};
    static const int32_t types[] = {3, 3, 1, 1, 1, 1, 1, 1, 3, 4, 1};
    static const char *merges[] = {"a b", "\xc4\xa0 a"};
    TgFile f;
    tg_init(&f);
    tg_kv_str(&f, "tokenizer.ggml.model", "gpt2");
    tg_kv_str(&f, "tokenizer.ggml.pre", "llama3");
    tg_kv_strs(&f, "tokenizer.ggml.tokens", toks, 11);
    tg_kv_i32s(&f, "tokenizer.ggml.token_type", types, 11);
    tg_kv_strs(&f, "tokenizer.ggml.merges", merges, 2);
    tg_kv_u32(&f, "tokenizer.ggml.bos_token_id", 1);
    tg_kv_u32(&f, "tokenizer.ggml.eos_token_id", 0);
    tg_kv_bool(&f, "tokenizer.ggml.add_bos_token", 1);
    tg_kv_str(&f, "tokenizer.chat_template", "{{ messages }}");
    GgufTokenizerFiles tf;
    cJSON *cfg, *root = tokenizer_files_of(&f, &tf, &cfg);
    const cJSON *vocab = jpath(root, "model", "vocab");
    cr_assert_eq(cJSON_GetArraySize(vocab), 10, "a repeated token keeps one entry");
    cr_assert_eq(jpath(vocab, "a", NULL)->valuedouble, 10, "a repeated token keeps its last id");
    cr_assert_eq(jpath(vocab, "x\xc4\xa0y", NULL)->valuedouble, 7, "a token outside the byte alphabet is respelled");
    const cJSON *added = jpath(root, "added_tokens", NULL);
    cr_assert_eq(cJSON_GetArraySize(added), 3, "control 0 and 1 (special), user-defined 9; not the respelled 8");
    cr_assert_eq(jpath(cJSON_GetArrayItem(added, 2), "id", NULL)->valuedouble, 9);
    cr_assert(cJSON_IsFalse(jpath(cJSON_GetArrayItem(added, 2), "special", NULL)));
    cr_assert(cJSON_IsTrue(jpath(cJSON_GetArrayItem(added, 1), "special", NULL)));
    const cJSON *pre = jpath(root, "pre_tokenizer", "pretokenizers");
    cr_assert_str_eq(jpath(cJSON_GetArrayItem(pre, 0), "type", NULL)->valuestring, "Split");
    cr_assert(strncmp(jpath(cJSON_GetArrayItem(pre, 0), "pattern", "Regex")->valuestring, "(?i:'s|'t|", 10) == 0);
    cr_assert(cJSON_IsFalse(jpath(cJSON_GetArrayItem(pre, 1), "use_regex", NULL)));
    cr_assert_str_eq(jpath(cfg, "bos_token", NULL)->valuestring, "<bos>");
    cr_assert_str_eq(jpath(cfg, "chat_template", NULL)->valuestring, "{{ messages }}");
    cr_assert(cJSON_IsTrue(jpath(cfg, "add_bos_token", NULL)) && cJSON_IsNull(jpath(cfg, "pad_token", NULL)));
    Tokenizer *tok;
    OwError err;
    cr_assert_eq(tokenizer_load_from_memory(tf.tokenizer_json, tf.tokenizer_len, "gguf", &tok, &err), 0, "%s", err.msg);
    IdVec ids = {0};
    cr_assert_eq(tokenizer_encode(tok, "ab<think> a", 11, 1, &ids, &err), 0, "%s", err.msg);
    cr_assert(ids.len == 4 && ids.data[0] == 1 && ids.data[1] == 4 && ids.data[2] == 9 && ids.data[3] == 6,
              "ids %zu: %d %d %d", ids.len, ids.data[0], ids.len > 1 ? ids.data[1] : -1,
              ids.len > 2 ? ids.data[2] : -1);
    idvec_free(&ids);
    tokenizer_free(tok);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    tokenizer_files_free(&tf);
    tg_close(&f);
}

Test(gguf_tokenizer, refuses_unknown_models_and_bad_metadata) {
    static const char *toks[] = {"a", "b"};
    TgFile f;
    tg_init(&f);
    tg_kv_str(&f, "tokenizer.ggml.model", "bert");
    tg_kv_strs(&f, "tokenizer.ggml.tokens", toks, 2);
    char *dir, *p = write_tmp(&f, &dir);
    Gguf g;
    GgufTokenizerFiles tf;
    OwError err;
    cr_assert_eq(gguf_open(p, &g, &err), 0, "%s", err.msg);
    cr_assert_eq(tokenizer_files_from_gguf(&g, &tf, &err), -1);
    cr_assert(strstr(err.msg, "\"tokenizer.ggml.model\" is \"bert\""), "%s", err.msg);
    gguf_close(&g);
    tg_close(&f);
    tg_init(&f);
    tg_kv_str(&f, "tokenizer.ggml.model", "gpt2");
    tg_kv_strs(&f, "tokenizer.ggml.tokens", toks, 2);
    static const char *merges[] = {"ab"};
    tg_kv_strs(&f, "tokenizer.ggml.merges", merges, 1);
    tg_kv_u32(&f, "tokenizer.ggml.bos_token_id", 5);
    tg_write(&f, p);
    cr_assert_eq(gguf_open(p, &g, &err), 0, "%s", err.msg);
    cr_assert_eq(tokenizer_files_from_gguf(&g, &tf, &err), -1);
    cr_assert(strstr(err.msg, "tokenizer.ggml.merges[0] is not two tokens"), "%s", err.msg);
    gguf_close(&g);
    tg_close(&f);
    ts_rmtree(dir);
    free(dir);
    free(p);
}

/* A real SentencePiece vocabulary (TinyLlama's tokenizer.model, as llama.cpp
 * writes it: no merges) with a tiny random model, committed as
 * tests/fixtures/gguf/spm_tiny.gguf: tensors bit-identical, ids identical
 * (BOS added) to transformers' conversion. */
Test(gguf_tokenizer, sentencepiece_file_converts_like_transformers) {
    char *gguf = ts_fixture_path("gguf/spm_tiny.gguf"), *fp = ts_fixture_path("gguf/spm_tiny.json");
    char *dir = ts_tmpdir(), *out = ow_path_join(dir, "hf"), *log;
    cr_assert_eq(run_convert(gguf, out, NULL, &log), 0, "%s", log);
    cr_assert(strstr(log, "tokenizer: llama, 32000 tokens") && strstr(log, "derived from the vocabulary"), "%s", log);
    free(log);
    OwError err;
    cJSON *fx = json_parse_file(fp, &err);
    cr_assert(fx != NULL, "%s", err.msg);
    check_fixture_tensors(out, fx, OW_F32);
    check_fixture_ids(out, fx, 1);
    cJSON_Delete(fx);
    char *tp = ow_path_join(out, "tokenizer.json"); /* <unk> (named by unknown_token_id) is a special added token */
    cJSON *tj = json_parse_file(tp, &err);
    cr_assert(tj != NULL, "%s", err.msg);
    const cJSON *added = jpath(tj, "added_tokens", NULL);
    cr_assert_eq(cJSON_GetArraySize(added), 3);
    cr_assert_str_eq(jpath(cJSON_GetArrayItem(added, 0), "content", NULL)->valuestring, "<unk>");
    cJSON_Delete(tj);
    free(tp);
    ts_rmtree(dir);
    free(dir);
    free(out);
    free(fp);
    free(gguf);
}
