/* gguf_writer.c: see gguf_writer.h. */
#include "gguf_writer.h"

#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tg_put(TgBuf *b, const void *data, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->n + n > cap) cap *= 2;
        b->p = ow_xrealloc(b->p, cap);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
}

void tg_u32(TgBuf *b, uint32_t v) {
    unsigned char x[4];
    for (int i = 0; i < 4; i++) x[i] = (unsigned char)(v >> (8 * i));
    tg_put(b, x, 4);
}

void tg_u64(TgBuf *b, uint64_t v) {
    unsigned char x[8];
    for (int i = 0; i < 8; i++) x[i] = (unsigned char)(v >> (8 * i));
    tg_put(b, x, 8);
}

void tg_str(TgBuf *b, const char *s) {
    tg_u64(b, strlen(s));
    tg_put(b, s, strlen(s));
}

void tg_free(TgBuf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

void tg_init(TgFile *f) {
    memset(f, 0, sizeof *f);
    f->version = 3;
    f->alignment = 32;
}

void tg_close(TgFile *f) {
    tg_free(&f->kv);
    for (int i = 0; i < f->nt; i++) free(f->t[i].data);
    memset(f, 0, sizeof *f);
}

static void kv_head(TgFile *f, const char *key, uint32_t type) {
    tg_str(&f->kv, key);
    tg_u32(&f->kv, type);
    f->nkv++;
}

void tg_kv_u32(TgFile *f, const char *key, uint32_t v) {
    kv_head(f, key, 4);
    tg_u32(&f->kv, v);
}

void tg_kv_f32(TgFile *f, const char *key, float v) {
    kv_head(f, key, 6);
    tg_put(&f->kv, &v, 4);
}

void tg_kv_bool(TgFile *f, const char *key, int v) {
    kv_head(f, key, 7);
    unsigned char x = (unsigned char)v;
    tg_put(&f->kv, &x, 1);
}

void tg_kv_str(TgFile *f, const char *key, const char *v) {
    kv_head(f, key, 8);
    tg_str(&f->kv, v);
}

static void array_head(TgFile *f, const char *key, uint32_t et, int n) {
    kv_head(f, key, 9);
    tg_u32(&f->kv, et);
    tg_u64(&f->kv, (uint64_t)n);
}

void tg_kv_strs(TgFile *f, const char *key, const char *const *v, int n) {
    array_head(f, key, 8, n);
    for (int i = 0; i < n; i++) tg_str(&f->kv, v[i]);
}

void tg_kv_i32s(TgFile *f, const char *key, const int32_t *v, int n) {
    array_head(f, key, 5, n);
    tg_put(&f->kv, v, (size_t)n * 4);
}

void tg_kv_f32s(TgFile *f, const char *key, const float *v, int n) {
    array_head(f, key, 6, n);
    tg_put(&f->kv, v, (size_t)n * 4);
}

TgTensor *tg_tensor(TgFile *f, const char *name, int nd, const int64_t *ne, uint32_t type, const void *data,
                    size_t nbytes) {
    OW_CHECK(f->nt < TG_MAX_TENSORS);
    TgTensor *t = &f->t[f->nt++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->nd = nd;
    for (int d = 0; d < 4; d++) t->ne[d] = d < nd ? ne[d] : 1;
    t->type = type;
    t->data = ow_xmalloc(nbytes ? nbytes : 1);
    memcpy(t->data, data, nbytes);
    t->nbytes = nbytes;
    t->offset = -1;
    return t;
}

static size_t align_up(size_t x, size_t a) { return a ? (x + a - 1) / a * a : x; }

void tg_bytes(const TgFile *f, TgBuf *out) {
    memset(out, 0, sizeof *out);
    tg_put(out, "GGUF", 4);
    tg_u32(out, f->version);
    tg_u64(out, (uint64_t)f->nt);
    tg_u64(out, (uint64_t)f->nkv);
    tg_put(out, f->kv.p, f->kv.n);
    uint64_t offs[TG_MAX_TENSORS], pos = 0;
    for (int i = 0; i < f->nt; i++) {
        const TgTensor *t = &f->t[i];
        offs[i] = t->offset >= 0 ? (uint64_t)t->offset : align_up(pos, f->alignment);
        pos = offs[i] + t->nbytes;
        tg_str(out, t->name);
        tg_u32(out, (uint32_t)t->nd);
        for (int d = 0; d < t->nd; d++) tg_u64(out, (uint64_t)t->ne[d]);
        tg_u32(out, t->type);
        tg_u64(out, offs[i]);
    }
    size_t data_start = align_up(out->n, f->alignment);
    static const unsigned char zeros[4096];
    tg_put(out, zeros, data_start - out->n);
    for (int i = 0; i < f->nt; i++) {
        size_t at = data_start + offs[i];
        if (at + f->t[i].nbytes > out->n) {
            size_t grow = at + f->t[i].nbytes - out->n;
            while (grow) {
                size_t k = grow < sizeof zeros ? grow : sizeof zeros;
                tg_put(out, zeros, k);
                grow -= k;
            }
        }
        memcpy(out->p + at, f->t[i].data, f->t[i].nbytes);
    }
}

void tg_write(const TgFile *f, const char *path) {
    TgBuf b;
    tg_bytes(f, &b);
    FILE *fp = fopen(path, "wb");
    OW_CHECK(fp != NULL);
    OW_CHECK(fwrite(b.p, 1, b.n, fp) == b.n);
    fclose(fp);
    tg_free(&b);
}

static void add_f32(TgFile *f, const char *name, int64_t rows, int64_t cols, float base) {
    float *v = ow_xmalloc((size_t)(rows * cols) * sizeof *v);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) v[r * cols + c] = (rows > 1 ? (float)r : 1.0f) + (float)c / 64.0f + base;
    int64_t ne[2] = {cols, rows};
    tg_tensor(f, name, rows > 1 ? 2 : 1, ne, 0, v, (size_t)(rows * cols) * sizeof *v);
    free(v);
}

void tg_tiny_llama(TgFile *f, int untied) {
    tg_kv_str(f, "general.architecture", "llama");
    tg_kv_u32(f, "llama.block_count", TG_LAYERS);
    tg_kv_u32(f, "llama.context_length", 256);
    tg_kv_u32(f, "llama.embedding_length", TG_HIDDEN);
    tg_kv_u32(f, "llama.feed_forward_length", TG_INTER);
    tg_kv_u32(f, "llama.attention.head_count", TG_HEADS);
    tg_kv_u32(f, "llama.attention.head_count_kv", TG_KV_HEADS);
    tg_kv_f32(f, "llama.rope.freq_base", 10000.0f);
    tg_kv_f32(f, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    tg_kv_u32(f, "llama.vocab_size", TG_VOCAB);
    int q = TG_HEADS * TG_HEAD_DIM, kv = TG_KV_HEADS * TG_HEAD_DIM, k = 0;
    add_f32(f, "token_embd.weight", TG_VOCAB, TG_HIDDEN, (float)k++);
    char name[64];
    for (int l = 0; l < TG_LAYERS; l++) {
        static const char *names[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
        const int rows[] = {q, kv, kv, TG_HIDDEN, TG_INTER, TG_INTER, TG_HIDDEN};
        const int cols[] = {TG_HIDDEN, TG_HIDDEN, TG_HIDDEN, q, TG_HIDDEN, TG_HIDDEN, TG_INTER};
        for (int i = 0; i < 7; i++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, names[i]);
            add_f32(f, name, rows[i], cols[i], (float)k++);
        }
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        add_f32(f, name, 1, TG_HIDDEN, 0.0f);
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        add_f32(f, name, 1, TG_HIDDEN, 0.0f);
    }
    add_f32(f, "output_norm.weight", 1, TG_HIDDEN, 0.0f);
    if (untied) add_f32(f, "output.weight", TG_VOCAB, TG_HIDDEN, (float)k++);
}
