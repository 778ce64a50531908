/* gguf_writer.h: a small GGUF writer for tests (synthetic files, hostile
 * variants). Key-values are serialised into a buffer as they are added; a
 * TgFile is assembled into bytes (header, key-values, tensor infos, padding,
 * data) with the counts, offsets and alignment given or computed. Nothing
 * here validates: tests write broken files on purpose. */
#ifndef OWLORE_TESTS_GGUF_WRITER_H
#define OWLORE_TESTS_GGUF_WRITER_H

#include <stddef.h>
#include <stdint.h>

typedef struct TgBuf {
    unsigned char *p;
    size_t n, cap;
} TgBuf;

void tg_put(TgBuf *b, const void *data, size_t n);
void tg_u32(TgBuf *b, uint32_t v);
void tg_u64(TgBuf *b, uint64_t v);
void tg_str(TgBuf *b, const char *s);
void tg_free(TgBuf *b);

#define TG_MAX_TENSORS 64

typedef struct TgTensor {
    char name[96];
    int nd;
    int64_t ne[4];
    uint32_t type;
    unsigned char *data; /* owned */
    size_t nbytes;
    int64_t offset; /* -1: placed after the previous one, aligned */
} TgTensor;

typedef struct TgFile {
    uint32_t version; /* 3 */
    uint32_t alignment;
    TgBuf kv;
    int nkv;
    TgTensor t[TG_MAX_TENSORS];
    int nt;
} TgFile;

void tg_init(TgFile *f);
void tg_close(TgFile *f);
void tg_kv_u32(TgFile *f, const char *key, uint32_t v);
void tg_kv_f32(TgFile *f, const char *key, float v);
void tg_kv_bool(TgFile *f, const char *key, int v);
void tg_kv_str(TgFile *f, const char *key, const char *v);
void tg_kv_strs(TgFile *f, const char *key, const char *const *v, int n);
void tg_kv_i32s(TgFile *f, const char *key, const int32_t *v, int n);
void tg_kv_f32s(TgFile *f, const char *key, const float *v, int n);
/* A tensor with a copy of data (nbytes); returns it for tweaks. */
TgTensor *tg_tensor(TgFile *f, const char *name, int nd, const int64_t *ne, uint32_t type, const void *data,
                    size_t nbytes);
/* The whole file in memory (out->p owned by the caller: tg_free). */
void tg_bytes(const TgFile *f, TgBuf *out);
void tg_write(const TgFile *f, const char *path);

/* A tiny complete LLaMA (2 blocks, hidden 32, 4 heads of 8, 2 kv heads,
 * intermediate 64, vocab 40; F32 weights: element (row r, column c) of every
 * 2-d tensor is r + c / 64 + the tensor's index, norms 1 + c / 64; tied unless
 * `untied`) with llama.* keys and no tokenizer keys. */
void tg_tiny_llama(TgFile *f, int untied);
#define TG_HIDDEN 32
#define TG_HEADS 4
#define TG_KV_HEADS 2
#define TG_HEAD_DIM 8
#define TG_INTER 64
#define TG_VOCAB 40
#define TG_LAYERS 2

#endif
