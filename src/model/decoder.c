/* decoder.c: see decoder.h. Block l maps the new rows x [n, C] at positions
 * p0 .. p0 + n - 1 as llama.c's block_forward does:
 *   ln = rmsnorm(x); q = ln Wq^T; K[l][p0 .. p0+n) = ln Wk^T, V[l][p0 .. p0+n) = ln Wv^T;
 *   rope(q), rope(K rows) with the tables' rows p0 .. p0 + n - 1;
 *   att = attention_decode(q, K[l][0 .. p0+n), V[l][0 .. p0+n)); h = x + att Wo^T;
 *   ln = rmsnorm(h); x = h + (silu(ln Wg^T) * ln Wu^T) Wd^T
 * then the head on the last row only. One layout function (dec_layout) both
 * allocates the buffers and counts their bytes, so decoder_bytes is what
 * decoder_create takes. */
#include "model/decoder.h"
#include "model/model_internal.h"

#include <stdlib.h>
#include <string.h>

struct Decoder {
    Model *m;
    int64_t max_len, chunk, len;
    Tensor *k, *v;                                     /* per block [max_len, Hkv * D] */
    Tensor ids, x, h, ln, rstd, q, att, gate, up, act; /* [chunk, ...] */
    Tensor lnf, rstdf, logits;                         /* the last row's head: [1, C], [1], [1, V] */
};

/* Allocates t (be != NULL) or adds its bytes to *bytes. */
typedef struct {
    Backend *be;
    OwError *err;
    int failed;
    size_t bytes;
} DecAlloc;

static void dec_alloc(DecAlloc *a, Tensor *t, Tensor desc, const char *what) {
    *t = desc;
    a->bytes += tensor_nbytes(&desc);
    if (!a->be || a->failed) return;
    if (a->be->ops->alloc(a->be, t, MEM_ACTIVATIONS, what, a->err) != 0) a->failed = 1;
}

static void dec_layout(DecAlloc *a, Decoder *d, const ModelConfig *c, DType dt) {
    int64_t n = d->chunk, C = c->hidden_size, F = c->intermediate_size, QD = c->num_heads * c->head_dim;
    int64_t KD = c->num_kv_heads * c->head_dim;
    for (int64_t l = 0; l < c->num_layers; l++) {
        dec_alloc(a, &d->k[l], tensor_2d(dt, d->max_len, KD), "key cache");
        dec_alloc(a, &d->v[l], tensor_2d(dt, d->max_len, KD), "value cache");
    }
    dec_alloc(a, &d->ids, tensor_1d(OW_I32, n), "token ids");
    dec_alloc(a, &d->x, tensor_2d(dt, n, C), "decoder activations (residual)");
    dec_alloc(a, &d->h, tensor_2d(dt, n, C), "decoder activations (residual)");
    dec_alloc(a, &d->ln, tensor_2d(dt, n, C), "decoder activations (norm)");
    dec_alloc(a, &d->rstd, tensor_1d(OW_F32, n), "decoder activations (norm statistics)");
    dec_alloc(a, &d->q, tensor_2d(dt, n, QD), "decoder activations (queries)");
    dec_alloc(a, &d->att, tensor_2d(dt, n, QD), "decoder activations (attention output)");
    dec_alloc(a, &d->gate, tensor_2d(dt, n, F), "decoder activations (MLP gate)");
    dec_alloc(a, &d->up, tensor_2d(dt, n, F), "decoder activations (MLP up)");
    dec_alloc(a, &d->act, tensor_2d(dt, n, F), "decoder activations (MLP product)");
    dec_alloc(a, &d->lnf, tensor_2d(dt, 1, C), "decoder activations (final norm)");
    dec_alloc(a, &d->rstdf, tensor_1d(OW_F32, 1), "decoder activations (norm statistics)");
    dec_alloc(a, &d->logits, tensor_2d(dt, 1, c->vocab_size), "logits");
}

size_t decoder_bytes(const ModelConfig *cfg, DType act, int64_t max_len, int64_t chunk) {
    Decoder d = {0};
    d.max_len = max_len;
    d.chunk = chunk < max_len ? chunk : max_len;
    d.k = ow_xcalloc((size_t)cfg->num_layers, sizeof(Tensor));
    d.v = ow_xcalloc((size_t)cfg->num_layers, sizeof(Tensor));
    DecAlloc a = {NULL, NULL, 0, 0};
    dec_layout(&a, &d, cfg, act);
    free(d.k);
    free(d.v);
    return a.bytes + 2 * (size_t)max_len * (size_t)(cfg->head_dim / 2) * sizeof(float); /* + the rotary tables */
}

void decoder_free(Decoder *d) {
    if (!d) return;
    Backend *be = d->m->be;
    for (int64_t l = 0; l < d->m->cfg.num_layers; l++) {
        be->ops->release(be, &d->k[l], MEM_ACTIVATIONS);
        be->ops->release(be, &d->v[l], MEM_ACTIVATIONS);
    }
    Tensor *ts[] = {&d->ids,  &d->x,  &d->h,   &d->ln,  &d->rstd,  &d->q,     &d->att,
                    &d->gate, &d->up, &d->act, &d->lnf, &d->rstdf, &d->logits};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) be->ops->release(be, ts[i], MEM_ACTIVATIONS);
    free(d->k);
    free(d->v);
    free(d);
}

int decoder_create(Model *m, int64_t max_len, int64_t chunk, Decoder **out, OwError *err) {
    *out = NULL;
    const ModelConfig *c = &m->cfg;
    if (max_len < 1 || chunk < 1)
        return ow_fail(err, "the decoder's context (%lld) and chunk (%lld) must be positive", (long long)max_len,
                       (long long)chunk);
    if (max_len > c->max_position_embeddings)
        return ow_fail(err, "context %lld exceeds the model's max_position_embeddings %lld (hint: a smaller --max-len)",
                       (long long)max_len, (long long)c->max_position_embeddings);
    if (model_rope_prepare(m, max_len, err) != 0) return -1;
    Decoder *d = ow_xcalloc(1, sizeof *d);
    d->m = m;
    d->max_len = max_len;
    d->chunk = chunk < max_len ? chunk : max_len;
    d->k = ow_xcalloc((size_t)c->num_layers, sizeof(Tensor));
    d->v = ow_xcalloc((size_t)c->num_layers, sizeof(Tensor));
    DecAlloc a = {m->be, err, 0, 0};
    dec_layout(&a, d, c, m->be->act_dtype);
    if (a.failed) {
        decoder_free(d);
        return -1;
    }
    *out = d;
    return 0;
}

int64_t decoder_len(const Decoder *d) { return d->len; }
int64_t decoder_max_len(const Decoder *d) { return d->max_len; }
Model *decoder_model(const Decoder *d) { return d->m; }

void decoder_truncate(Decoder *d, int64_t len) {
    OW_CHECKF(len >= 0 && len <= d->len, "decoder_truncate to %lld of %lld positions", (long long)len,
              (long long)d->len);
    d->len = len;
}

/* y = x W^T */
static void linear(Backend *be, Tensor *y, const Tensor *x, BlockWeight bw, Model *m, int l) {
    be->ops->matmul(be, y, x, 0, &model_block_param(m, l, bw)->w, 1, 1.0f, 0.0f);
}

/* Rows [0, n) of a buffer */
static Tensor rows(const Tensor *t, int64_t n) { return tensor_row_slice(t, 0, n); }

/* Block l on rows x[0 .. n) at positions len .. len + n - 1 (the attention half). */
static void block_attention(Decoder *d, int l, int64_t n) {
    Model *m = d->m;
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    int64_t p0 = d->len, D = c->head_dim, Hq = c->num_heads, Hkv = c->num_kv_heads;
    float eps = (float)c->rms_norm_eps;
    Tensor x = rows(&d->x, n), h = rows(&d->h, n), ln = rows(&d->ln, n), rstd = tensor_slice(&d->rstd, 0, n);
    Tensor q = rows(&d->q, n), att = rows(&d->att, n);
    Tensor kn = tensor_row_slice(&d->k[l], p0, n), vn = tensor_row_slice(&d->v[l], p0, n);
    be->ops->rmsnorm_forward(be, &ln, &rstd, &x, &model_block_param(m, l, BW_ATTN_NORM)->w, eps);
    linear(be, &q, &ln, BW_Q, m, l);
    linear(be, &kn, &ln, BW_K, m, l);
    linear(be, &vn, &ln, BW_V, m, l);
    Tensor cs = tensor_row_slice(&m->rope_cos, p0, n), sn = tensor_row_slice(&m->rope_sin, p0, n);
    Tensor q4 = tensor_reshape(&q, 4, (int64_t[]){1, n, Hq, D}), k4 = tensor_reshape(&kn, 4, (int64_t[]){1, n, Hkv, D});
    be->ops->rope(be, &q4, &cs, &sn, 0);
    be->ops->rope(be, &k4, &cs, &sn, 0);
    Tensor kc = tensor_row_slice(&d->k[l], 0, p0 + n), vc = tensor_row_slice(&d->v[l], 0, p0 + n);
    Tensor q3 = tensor_reshape(&q, 3, (int64_t[]){n, Hq, D}), a3 = tensor_reshape(&att, 3, (int64_t[]){n, Hq, D});
    Tensor k3 = tensor_reshape(&kc, 3, (int64_t[]){p0 + n, Hkv, D});
    Tensor v3 = tensor_reshape(&vc, 3, (int64_t[]){p0 + n, Hkv, D});
    be->ops->attention_decode(be, &a3, &q3, &k3, &v3);
    be->ops->matmul_add(be, &h, &att, 0, &model_block_param(m, l, BW_O)->w, 1, 1.0f, &x);
}

/* The MLP half: x = h + (silu(ln2 Wg^T) * ln2 Wu^T) Wd^T. */
static void block_mlp(Decoder *d, int l, int64_t n) {
    Model *m = d->m;
    Backend *be = m->be;
    Tensor x = rows(&d->x, n), h = rows(&d->h, n), ln = rows(&d->ln, n), rstd = tensor_slice(&d->rstd, 0, n);
    Tensor gate = rows(&d->gate, n), up = rows(&d->up, n), act = rows(&d->act, n);
    be->ops->rmsnorm_forward(be, &ln, &rstd, &h, &model_block_param(m, l, BW_MLP_NORM)->w, (float)m->cfg.rms_norm_eps);
    linear(be, &gate, &ln, BW_GATE, m, l);
    linear(be, &up, &ln, BW_UP, m, l);
    be->ops->swiglu_forward(be, &act, &gate, &up);
    be->ops->matmul_add(be, &x, &act, 0, &model_block_param(m, l, BW_DOWN)->w, 1, 1.0f, &h);
}

/* The logits of row n - 1 of x, to host memory. */
static void head_last(Decoder *d, int64_t n, float *logits) {
    Model *m = d->m;
    Backend *be = m->be;
    Tensor last = tensor_row_slice(&d->x, n - 1, 1);
    be->ops->rmsnorm_forward(be, &d->lnf, &d->rstdf, &last, &m->final_norm->w, (float)m->cfg.rms_norm_eps);
    be->ops->matmul(be, &d->logits, &d->lnf, 0, &m->lm_head->w, 1, 1.0f, 0.0f);
    be->ops->download(be, logits, OW_F32, &d->logits);
}

/* n <= chunk positions through every block. */
static int feed_chunk(Decoder *d, const int32_t *ids, int64_t n, float *logits, OwError *err) {
    Model *m = d->m;
    Backend *be = m->be;
    Tensor idt = tensor_slice(&d->ids, 0, n), x = rows(&d->x, n);
    be->ops->upload(be, &idt, ids, OW_I32);
    be->ops->embedding_forward(be, &x, &idt, &m->embed->w);
    for (int l = 0; l < (int)m->cfg.num_layers; l++) {
        if (model_forward_block_enter(m, l, err) != 0) return -1;
        block_attention(d, l, n);
        block_mlp(d, l, n);
        model_block_release(m, l);
    }
    d->len += n;
    if (logits) head_last(d, n, logits);
    return 0;
}

int decoder_feed(Decoder *d, const int32_t *ids, int64_t n, float *logits, OwError *err) {
    int64_t V = d->m->cfg.vocab_size;
    if (n < 1) return ow_fail(err, "nothing to feed the decoder (0 tokens)");
    if (n > d->max_len - d->len)
        return ow_fail(err, "%lld more tokens do not fit the context: %lld of %lld positions are used", (long long)n,
                       (long long)d->len, (long long)d->max_len);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return ow_fail(err, "token id %d at position %lld is outside the vocabulary [0, %lld)", ids[i],
                           (long long)(d->len + i), (long long)V);
    for (int64_t off = 0; off < n; off += d->chunk) {
        int64_t c = n - off < d->chunk ? n - off : d->chunk;
        if (feed_chunk(d, ids + off, c, off + c == n ? logits : NULL, err) != 0) return -1;
    }
    return 0;
}
