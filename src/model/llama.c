/* llama.c: forward and backward of a LLaMA/Mistral decoder over the Backend
 * interface, with optional per-block activation recomputation.
 *
 * Block l maps x[l] to x[l+1]:
 *   ln1 = rmsnorm(x, attn_norm); q,k,v = ln1 Wq^T, ln1 Wk^T, ln1 Wv^T; rope(q), rope(k)
 *   att = causal_gqa_attention(q, k, v); h = x + att Wo^T
 *   ln2 = rmsnorm(h, mlp_norm); a = silu(ln2 Wg^T) * (ln2 Wu^T); x' = h + a Wd^T
 * Head: lnf = rmsnorm(x[L], norm); logits = lnf Wlm^T, computed in row chunks
 * so a [B*T, V] logits buffer never exists; cross-entropy writes dlogits in
 * place of each chunk.
 * Backward keeps one running residual gradient (dres) and adds each
 * sub-layer's input gradient into it. Weight gradients are computed only for
 * trainable tensors; frozen blocks still pass input gradients down, and
 * blocks below the lowest trainable tensor are skipped entirely.
 *
 * Activation offload (with recomputation, Model.offload_acts): the block
 * inputs x[0..L-1] live in host memory. The device keeps a ring of ACT_SLOTS
 * buffers (x[l] is a view of slot l % ACT_SLOTS) and the last output x[L].
 * Forward copies each x[l] to the host while the next blocks run; backward
 * starts on the inputs still in the ring and fetches x[l - ACT_SLOTS] into the
 * slot block l has just freed, ACT_SLOTS - 1 blocks ahead of its use. The
 * values are the same bits either way: only where they wait differs.
 *
 * Shared memory: buffers that are never live at the same time share one pool
 * (ModelActs.pool), in overlays:
 *   block:     with recomputation the scratch layer's attention half (ln1, q, k, v,
 *              att, lse and the norm statistics), live through a block's forward
 *              and backward; after it, at the same offset, either of
 *     MLP:       with recomputation the scratch layer's h, ln2, gate, up and act;
 *                always dgate, dup (the MLP backward's row chunks)
 *     attention: datt, dq, dk, dv (a block's backward after its MLP norm)
 *   head:      from the pool's start: lnf, rstdf, lm_head's gradient when it lives
 *              here (Model.head_grad_host), logits (after the last block's forward,
 *              before the first block's backward)
 * Ops run in the order they are issued (one compute stream), and each overlay
 * is last read before another one is first written: in a block's backward h,
 * ln2 and the MLP chunks are last read by the MLP norm's backward, before datt
 * is written, and dq, dk, dv and the attention half by the q/k/v and attention
 * norm backward, before the next block's backward (or recompute) writes them
 * again; the last block's forward reads its buffers before the final norm
 * writes lnf, and the final norm's backward reads rstdf before the top block's
 * backward (or recompute) writes the block overlay. lm_head's gradient in the
 * pool is copied to host memory (Param.g_host) after the head's backward, and
 * the top block's backward waits for that copy. Without recomputation layers[l]
 * keep buffers of their own (they wait for the backward), as do the blocks that
 * keep their activations with it (Model.keep_acts), less ln1, ln2 and act: a
 * kept block's ln1, ln2 and act are the scratch layer's (its attention half and
 * MLP half when some blocks recompute, else only those three, in the same
 * overlays), written by its forward and, where a trained block's weight
 * gradients need them, recomputed by its backward: they cost a kept block a
 * third of its memory (LLaMA-2-7B) and the backward only element-wise ops.
 * The MLP backward's da overwrites the product act (its chunk, or layer l's
 * rows without recomputation): linear_backward reads act (the weight
 * gradient) before it writes da, and nothing reads act after. The ring slots,
 * x[L] and the host buffers take part in copies on the second stream: they
 * are never shared. */
#include "model/model.h"
#include "model/model_internal.h"

#include <stdlib.h>
#include <string.h>

#define ACT_SLOTS 3 /* device buffers of the block inputs when they are offloaded */

typedef struct LayerActs {
    Tensor ln1, rstd1, q, k, v, att, lse, h, ln2, rstd2, gate, up, act;
} LayerActs;

struct ModelActs {
    int64_t B, T, N;
    int recompute;
    int keep_from;    /* blocks l >= keep_from keep their activations for the backward (layers[l], buffers of their
                      own); the others recompute them in the scratch layers[L] (views of pool). Without
                      recomputation 0, with it num_layers - Model.keep_acts */
    int64_t mlp_rows; /* the MLP runs over row chunks of this size */
    Tensor ids, targets;
    Tensor *x;   /* num_layers + 1 residual streams [N, C] (views of the ring when offloading) */
    int offload; /* x[0..L-1] in host memory, see the top of this file */
    Tensor slot[ACT_SLOTS];
    int slot_ticket[ACT_SLOTS]; /* the last host copy into or out of each slot */
    unsigned char *host_x;      /* L host copies of x[l], x_bytes apart */
    size_t x_bytes;
    LayerActs *layers;       /* num_layers + 1 entries: kept blocks' own, then the scratch (see keep_from) */
    Tensor pool;             /* U8, the memory of the views below (see the top of this file) */
    Tensor lnf, rstdf;       /* views of pool */
    Tensor logits;           /* [chunk, V], a view of pool */
    Tensor head_grad;        /* F32 [V, C], a view of pool: lm_head's gradient (Model.head_grad_host) */
    Tensor losses;           /* [N] F32 */
    Tensor dres, dln;        /* [N, C] */
    Tensor dq, dk, dv, datt; /* [N, Hq*D], [N, Hkv*D] x2, [N, Hq*D], views of pool */
    Tensor dgate, dup;       /* [mlp_rows, F], views of pool */
    /* layer-major accumulation (Model.accum_micro > 1; see model_forward_backward_layers) */
    int micro;                  /* micro-batches per step, 0 without */
    Tensor lm_in[2], lm_out[2]; /* block inputs and outputs, alternating by position [N, C] */
    int lm_in_ticket[2], lm_out_ticket[2];
    Tensor *lm_dres;        /* micro residual gradients [N, C] */
    unsigned char *lm_host; /* micro * (L + 1) block boundaries, x_bytes apart */
};

/* ---- allocation ---- */

/* Allocates the activation buffers on a backend, or (be == NULL) only adds
 * up their sizes: model_prepare and model_activation_bytes share one layout. */
typedef struct {
    Backend *be;
    DType dt;
    OwError *err;
    int failed;
    size_t bytes;
} Allocator;

static void act_alloc(Allocator *a, Tensor *t, Tensor desc, const char *what) {
    *t = desc;
    if (!a->be) {
        a->bytes += tensor_nbytes(&desc);
        return;
    }
    if (a->failed) return;
    if (a->be->ops->alloc(a->be, t, MEM_ACTIVATIONS, what, a->err) != 0) a->failed = 1;
}

/* The layout of a pool: views in overlays; the views of one overlay lie one after
 * another, each overlay starts at a given offset (so it shares memory with the
 * earlier views from there on), and the pool is as large as its largest overlay.
 * Every view starts at a multiple of POOL_ALIGN (16-byte vector accesses, GEMM
 * operand alignment). */
#define POOL_ALIGN 256
#define POOL_VIEWS 32

typedef struct {
    size_t at, size; /* where the next view goes; the end of the largest overlay */
    int n;
    Tensor *view[POOL_VIEWS];
    size_t off[POOL_VIEWS];
} PoolLayout;

static void pool_view(PoolLayout *p, Tensor *t, Tensor desc) {
    OW_CHECK(p->n < POOL_VIEWS);
    *t = desc;
    p->view[p->n] = t;
    p->off[p->n++] = p->at;
    p->at += (tensor_nbytes(&desc) + POOL_ALIGN - 1) / POOL_ALIGN * POOL_ALIGN;
    if (p->at > p->size) p->size = p->at;
}

/* The views placed next start at offset `at`, sharing memory with the earlier views there. */
static void pool_overlay_at(PoolLayout *p, size_t at) { p->at = at; }

/* Allocates the pool's memory (or counts it) and points the views into it. */
static void pool_alloc(Allocator *a, PoolLayout *p, Tensor *mem, const char *what) {
    act_alloc(a, mem, tensor_1d(OW_U8, (int64_t)p->size), what);
    if (mem->data)
        for (int i = 0; i < p->n; i++) p->view[i]->data = (unsigned char *)mem->data + p->off[i];
}

/* A view of the pool when there is one, else a buffer of its own. */
static void act_place(Allocator *a, PoolLayout *pool, Tensor *t, Tensor desc, const char *what) {
    if (pool)
        pool_view(pool, t, desc);
    else
        act_alloc(a, t, desc, what);
}

/* The attention half's buffers of a layer (ln1 .. rstd2): views of pool when given, else
 * buffers of their own. A kept layer (pool NULL) has no ln1 of its own: see acts_layout. */
static void layer_attn_acts_alloc(Allocator *a, LayerActs *la, int64_t B, int64_t T, const ModelConfig *c,
                                  PoolLayout *pool) {
    DType dt = a->dt;
    int64_t N = B * T, C = c->hidden_size, D = c->head_dim, Hq = c->num_heads, Hkv = c->num_kv_heads;
    if (pool) pool_view(pool, &la->ln1, tensor_2d(dt, N, C));
    act_place(a, pool, &la->q, tensor_2d(dt, N, Hq * D), "activations (queries)");
    act_place(a, pool, &la->k, tensor_2d(dt, N, Hkv * D), "activations (keys)");
    act_place(a, pool, &la->v, tensor_2d(dt, N, Hkv * D), "activations (values)");
    act_place(a, pool, &la->att, tensor_2d(dt, N, Hq * D), "activations (attention output)");
    act_place(a, pool, &la->lse, tensor_3d(OW_F32, B, Hq, T), "activations (attention statistics)");
    act_place(a, pool, &la->rstd1, tensor_1d(OW_F32, N), "activations (norm statistics)");
    act_place(a, pool, &la->rstd2, tensor_1d(OW_F32, N), "activations (norm statistics)");
}

/* The MLP half's buffers of a layer; mlp_rows: rows of the gate/up/product buffers (all N
 * when the layer's activations are kept for backward, one chunk when they are recomputed);
 * mlp_pool: where h, ln2, gate, up and act go (NULL: buffers of their own, without ln2 and act,
 * see acts_layout) */
static void layer_mlp_acts_alloc(Allocator *a, LayerActs *la, int64_t N, int64_t mlp_rows, const ModelConfig *c,
                                 PoolLayout *mlp_pool) {
    DType dt = a->dt;
    int64_t C = c->hidden_size, F = c->intermediate_size;
    act_place(a, mlp_pool, &la->h, tensor_2d(dt, N, C), "activations (residual)");
    if (mlp_pool) pool_view(mlp_pool, &la->ln2, tensor_2d(dt, N, C));
    act_place(a, mlp_pool, &la->gate, tensor_2d(dt, mlp_rows, F), "activations (MLP gate)");
    act_place(a, mlp_pool, &la->up, tensor_2d(dt, mlp_rows, F), "activations (MLP up)");
    if (mlp_pool) pool_view(mlp_pool, &la->act, tensor_2d(dt, mlp_rows, F));
}

static void release_all(Backend *be, Tensor **ts, size_t n) {
    for (size_t i = 0; i < n; i++) be->ops->release(be, ts[i], MEM_ACTIVATIONS);
}

/* A kept layer's buffers of its own (its ln1, ln2 and act are the scratch layer's, views of the pool). */
static void layer_acts_free(Backend *be, LayerActs *la) {
    Tensor *own[] = {&la->rstd1, &la->q, &la->k, &la->v, &la->att, &la->lse, &la->rstd2, &la->h, &la->gate, &la->up};
    release_all(be, own, sizeof own / sizeof own[0]);
}

void model_acts_free(Model *m) {
    ModelActs *A = m->acts;
    if (!A) return;
    Backend *be = m->be;
    int64_t L = m->cfg.num_layers;
    if (A->offload) {
        for (int s = 0; s < ACT_SLOTS; s++) be->ops->release(be, &A->slot[s], MEM_ACTIVATIONS);
        if (A->x) be->ops->release(be, &A->x[L], MEM_ACTIVATIONS);
        if (A->host_x) host_mem_free(&m->host, be, A->host_x);
    } else if (A->x) {
        for (int64_t l = 0; l <= L; l++) be->ops->release(be, &A->x[l], MEM_ACTIVATIONS);
    }
    if (A->layers)
        for (int64_t l = A->keep_from; l < L; l++) layer_acts_free(be, &A->layers[l]);
    Tensor *ts[] = {&A->ids, &A->targets, &A->pool, &A->losses, &A->dres, &A->dln}; /* not the views of pool */
    release_all(be, ts, sizeof ts / sizeof ts[0]);
    if (A->micro) {
        Tensor *lm[] = {&A->lm_in[0], &A->lm_in[1], &A->lm_out[0], &A->lm_out[1]};
        release_all(be, lm, 4);
        for (int k = 0; k < A->micro; k++) be->ops->release(be, &A->lm_dres[k], MEM_ACTIVATIONS);
        if (A->lm_host) be->ops->host_free(be, A->lm_host);
    }
    free(A->lm_dres);
    free(A->x);
    free(A->layers);
    free(A);
    m->acts = NULL;
}

void *model_acts_head_grad(Model *m) { return m->acts ? m->acts->head_grad.data : NULL; }

static int64_t chunk_rows(int64_t N, int64_t target, int64_t min, int64_t override) {
    int64_t rows = override > 0 ? override : (target < min ? min : target);
    if (rows > N) rows = N;
    int64_t nchunks = (N + rows - 1) / rows; /* balanced chunks */
    return (N + nchunks - 1) / nchunks;
}

/* Every activation buffer of a (B, T) shape, in one place. */
/* Whether the block inputs can be offloaded for this shape and mode. */
static int offload_applies(const ModelConfig *c, int recompute, int offload) {
    return offload && recompute && c->num_layers > ACT_SLOTS;
}

static void acts_layout(Allocator *a, ModelActs *A, const ModelConfig *c, int64_t B, int64_t T, int recompute,
                        int64_t keep, int offload, int head_grad, int64_t micro, int64_t mlp_override,
                        int64_t logits_override) {
    A->B = B;
    A->T = T;
    A->N = B * T;
    A->recompute = recompute;
    int64_t N = A->N, C = c->hidden_size, F = c->intermediate_size, D = c->head_dim, V = c->vocab_size;
    int64_t L = c->num_layers, Hq = c->num_heads, Hkv = c->num_kv_heads;
    DType dt = a->dt;
    size_t es = dtype_size(dt);
    act_alloc(a, &A->ids, tensor_1d(OW_I32, N), "token ids");
    act_alloc(a, &A->targets, tensor_1d(OW_I32, N), "targets");
    A->x = ow_xcalloc((size_t)L + 1, sizeof(Tensor));
    A->offload = offload_applies(c, recompute, offload);
    A->x_bytes = (size_t)N * (size_t)C * es;
    if (A->offload) {
        for (int s = 0; s < ACT_SLOTS; s++) {
            act_alloc(a, &A->slot[s], tensor_2d(dt, N, C), "activations (block inputs, device ring)");
            A->slot_ticket[s] = -1;
        }
        for (int64_t l = 0; l < L; l++) A->x[l] = A->slot[l % ACT_SLOTS];
        act_alloc(a, &A->x[L], tensor_2d(dt, N, C), "activations (last block output)");
    } else {
        for (int64_t l = 0; l <= L; l++) act_alloc(a, &A->x[l], tensor_2d(dt, N, C), "activations (block inputs)");
    }
    /* the MLP in row chunks of ~64 MiB per [rows, F] buffer */
    A->mlp_rows = chunk_rows(N, (int64_t)(((size_t)64 << 20) / ((size_t)F * es)), 256, mlp_override);
    A->keep_from = recompute ? (int)(keep < L ? L - (keep > 0 ? keep : 0) : 0) : 0;
    A->layers = ow_xcalloc((size_t)L + 1, sizeof(LayerActs));
    /* the pool's overlays, see the top of this file; with recomputation the block overlay starts
     * with the scratch layer's attention half, which the MLP and attention-gradient overlays follow */
    PoolLayout pool = {0};
    size_t block_base = 0; /* where the MLP and attention-gradient overlays start */
    LayerActs *S = &A->layers[L];
    if (A->keep_from > 0) {
        layer_attn_acts_alloc(a, S, B, T, c, &pool);
        block_base = pool.at;
        layer_mlp_acts_alloc(a, S, N, A->mlp_rows, c, &pool);
    } else { /* every block keeps: the scratch holds only what kept blocks recompute (below) */
        pool_view(&pool, &S->ln1, tensor_2d(dt, N, C));
        block_base = pool.at;
        pool_view(&pool, &S->ln2, tensor_2d(dt, N, C));
        pool_view(&pool, &S->act, tensor_2d(dt, A->mlp_rows, F));
    }
    for (int64_t l = A->keep_from; l < L; l++) {
        layer_attn_acts_alloc(a, &A->layers[l], B, T, c, NULL);
        layer_mlp_acts_alloc(a, &A->layers[l], N, N, c, NULL);
    }
    pool_view(&pool, &A->dgate, tensor_2d(dt, A->mlp_rows, F));
    pool_view(&pool, &A->dup, tensor_2d(dt, A->mlp_rows, F));
    pool_overlay_at(&pool, block_base);
    pool_view(&pool, &A->datt, tensor_2d(dt, N, Hq * D));
    pool_view(&pool, &A->dq, tensor_2d(dt, N, Hq * D));
    pool_view(&pool, &A->dk, tensor_2d(dt, N, Hkv * D));
    pool_view(&pool, &A->dv, tensor_2d(dt, N, Hkv * D));
    pool_overlay_at(&pool, 0);
    pool_view(&pool, &A->lnf, tensor_2d(dt, N, C));
    pool_view(&pool, &A->rstdf, tensor_1d(OW_F32, N));
    if (head_grad) pool_view(&pool, &A->head_grad, tensor_2d(OW_F32, V, C));
    /* logits in row chunks as large as the pool's room after lnf (the head overlay takes what the
     * block's leaves), at least ~128 MiB and 1024 rows: the lm_head GEMMs, whose inner dimension
     * for the weight gradient is the chunk, are faster with fewer, longer chunks */
    size_t room = pool.size > pool.at ? pool.size - pool.at : 0;
    if (room < ((size_t)128 << 20)) room = (size_t)128 << 20;
    int64_t chunk = chunk_rows(N, (int64_t)(room / ((size_t)V * es)), 1024, logits_override);
    pool_view(&pool, &A->logits, tensor_2d(dt, chunk, V));
    pool_alloc(a, &pool, &A->pool,
               recompute ? "activations (MLP, attention gradients and logits, sharing memory)"
                         : "gradients (MLP, attention) and logits, sharing memory");
    /* A kept block keeps neither its norms' outputs ln1, ln2 nor the MLP product act: the backward
     * needs them only for the weight gradients of a trained block's linears, and recomputes them
     * there (an RMSNorm, the SwiGLU product: element-wise, the same bits) into the scratch layer's
     * buffers, whose row chunks the product then takes, like a recomputing block's. */
    for (int64_t l = A->keep_from; l < L; l++) {
        A->layers[l].ln1 = S->ln1;
        A->layers[l].ln2 = S->ln2;
        A->layers[l].act = S->act;
    }
    act_alloc(a, &A->losses, tensor_1d(OW_F32, N), "per-token losses");
    act_alloc(a, &A->dres, tensor_2d(dt, N, C), "gradients (residual)");
    act_alloc(a, &A->dln, tensor_2d(dt, N, C), "gradients (norm output)");
    if (micro > 1) {
        A->micro = micro;
        A->lm_dres = ow_xcalloc((size_t)micro, sizeof(Tensor));
        for (int i = 0; i < 2; i++) {
            act_alloc(a, &A->lm_in[i], tensor_2d(dt, N, C), "activations (layer-major block inputs)");
            act_alloc(a, &A->lm_out[i], tensor_2d(dt, N, C), "activations (layer-major block outputs)");
            A->lm_in_ticket[i] = A->lm_out_ticket[i] = -1;
        }
        for (int64_t k = 0; k < micro; k++)
            act_alloc(a, &A->lm_dres[k], tensor_2d(dt, N, C), "gradients (residual, per micro-batch)");
    }
}

size_t model_activation_bytes(const ModelConfig *c, DType act, int64_t B, int64_t T, int recompute, int64_t keep,
                              int offload, int head_grad) {
    ModelActs A;
    memset(&A, 0, sizeof A);
    Allocator a = {NULL, act, NULL, 0, 0};
    acts_layout(&a, &A, c, B, T, recompute, keep, offload, head_grad, 0, 0, 0);
    free(A.x);
    free(A.layers);
    return a.bytes + 2 * (size_t)T * (size_t)(c->head_dim / 2) * sizeof(float); /* + the rotary tables */
}

size_t model_layer_accum_bytes(const ModelConfig *c, DType act, int64_t B, int64_t T, int64_t micro) {
    return micro > 1 ? (size_t)(4 + micro) * (size_t)(B * T) * (size_t)c->hidden_size * dtype_size(act) : 0;
}

size_t model_layer_accum_host_bytes(const ModelConfig *c, DType act, int64_t B, int64_t T, int64_t micro) {
    return micro > 1 ? (size_t)micro * (size_t)(c->num_layers + 1) * (size_t)(B * T) * (size_t)c->hidden_size *
                           dtype_size(act)
                     : 0;
}

size_t model_offload_host_bytes(const ModelConfig *c, DType act, int64_t B, int64_t T, int recompute, int offload) {
    if (!offload_applies(c, recompute, offload)) return 0;
    return (size_t)c->num_layers * (size_t)(B * T) * (size_t)c->hidden_size * dtype_size(act);
}

int model_prepare(Model *m, int64_t B, int64_t T, int recompute, OwError *err) {
    const ModelConfig *c = &m->cfg;
    if (B <= 0 || T <= 0)
        return ow_fail(err, "batch size and block size must be positive (got %lld x %lld)", (long long)B, (long long)T);
    if (T > c->max_position_embeddings)
        return ow_fail(err,
                       "block size %lld exceeds the model's max_position_embeddings %lld (hint: lower --block-size)",
                       (long long)T, (long long)c->max_position_embeddings);
    if (c->sliding_window > 0 && T > c->sliding_window)
        return ow_fail(err,
                       "block size %lld exceeds the model's sliding_window %lld, which owlore does not implement "
                       "(hint: use --block-size %lld or less)",
                       (long long)T, (long long)c->sliding_window, (long long)c->sliding_window);
    model_acts_free(m);
    Backend *be = m->be;
    if (model_rope_prepare(m, T, err) != 0) return -1;
    ModelActs *A = ow_xcalloc(1, sizeof *A);
    m->acts = A;
    Allocator a = {be, be->act_dtype, err, 0, 0};
    int head_grad = m->head_grad_host && m->lm_head != m->embed;
    OW_CHECKF(m->accum_micro <= 1 || recompute, "layer-major accumulation needs recomputation");
    OW_CHECKF(m->accum_micro <= 1 || m->keep_acts <= 0, "layer-major accumulation recomputes every block");
    acts_layout(&a, A, c, B, T, recompute, m->keep_acts, m->offload_acts, head_grad, m->accum_micro, m->mlp_chunk_rows,
                m->logits_chunk_rows);
    if (!a.failed && A->offload) {
        A->host_x = host_mem_alloc(&m->host, be, (size_t)c->num_layers * A->x_bytes, HOST_ACTIVATIONS, 1,
                                   "the offloaded block inputs", err);
        if (!A->host_x) a.failed = 1;
    }
    if (!a.failed && A->micro) {
        A->lm_host = be->ops->host_alloc(be, (size_t)A->micro * (size_t)(c->num_layers + 1) * A->x_bytes, err);
        if (!A->lm_host) a.failed = 1;
    }
    if (a.failed) {
        model_acts_free(m);
        return -1;
    }
    if (head_grad && m->lm_head->trainable) m->lm_head->g.data = A->head_grad.data; /* a new pool */
    return 0;
}

int model_rope_prepare(Model *m, int64_t T, OwError *err) {
    if (m->rope_len >= T) return 0;
    Backend *be = m->be;
    be->ops->release(be, &m->rope_cos, MEM_OTHER);
    be->ops->release(be, &m->rope_sin, MEM_OTHER);
    m->rope_len = 0;
    int64_t half = m->cfg.head_dim / 2;
    m->rope_cos = tensor_2d(OW_F32, T, half);
    m->rope_sin = tensor_2d(OW_F32, T, half);
    if (be->ops->alloc(be, &m->rope_cos, MEM_OTHER, "rotary table", err) != 0 ||
        be->ops->alloc(be, &m->rope_sin, MEM_OTHER, "rotary table", err) != 0)
        return -1;
    float *cs = ow_xmalloc((size_t)(T * half) * sizeof(float) * 2);
    rope_tables(&m->cfg, T, cs, cs + T * half);
    be->ops->upload(be, &m->rope_cos, cs, OW_F32);
    be->ops->upload(be, &m->rope_sin, cs + T * half, OW_F32);
    free(cs);
    m->rope_len = T;
    return 0;
}

/* ---- building blocks ---- */

/* Whether block l recomputes its activations in the backward, and where they live. */
static int recomputes(const ModelActs *A, int l) { return l < A->keep_from; }
static LayerActs *acts_of(ModelActs *A, int64_t L, int l) { return recomputes(A, l) ? &A->layers[L] : &A->layers[l]; }

static Tensor view4(const Tensor *t, int64_t B, int64_t T, int64_t H, int64_t D) {
    return tensor_reshape(t, 4, (int64_t[]){B, T, H, D});
}

/* y = x W^T */
static void linear(Backend *be, Tensor *y, const Tensor *x, const Param *W) {
    be->ops->matmul(be, y, x, 0, &W->w, 1, 1.0f, 0.0f);
}

/* dx (= or +=) dy W; dW += dy^T x when trainable (dW = dy^T x when g is fresh). dW first: dx may
 * take x's memory (block_backward's da). */
static void linear_backward(Backend *be, Tensor *dx, float beta, const Tensor *dy, const Tensor *x, Param *W) {
    if (W->trainable) {
        be->ops->matmul(be, &W->g, dy, 1, x, 0, 1.0f, W->g_fresh ? 0.0f : 1.0f);
        W->g_fresh = 0;
    }
    if (dx) be->ops->matmul(be, dx, dy, 0, &W->w, 0, 1.0f, beta);
}

/* The attention half of block l: ln1, q, k, v (roped), att, lse, h = x + att Wo^T, ln2; h is
 * la->h or (a forward that keeps nothing for backward) the block's output buffer. */
static void block_forward_attention(Model *m, int l, const Tensor *x, LayerActs *la, Tensor *h) {
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    ModelActs *A = m->acts;
    int64_t B = A->B, T = A->T, D = c->head_dim;
    float eps = (float)c->rms_norm_eps;
    be->ops->rmsnorm_forward(be, &la->ln1, &la->rstd1, x, &model_block_param(m, l, BW_ATTN_NORM)->w, eps);
    linear(be, &la->q, &la->ln1, model_block_param(m, l, BW_Q));
    linear(be, &la->k, &la->ln1, model_block_param(m, l, BW_K));
    linear(be, &la->v, &la->ln1, model_block_param(m, l, BW_V));
    Tensor q4 = view4(&la->q, B, T, c->num_heads, D), k4 = view4(&la->k, B, T, c->num_kv_heads, D);
    Tensor v4 = view4(&la->v, B, T, c->num_kv_heads, D), a4 = view4(&la->att, B, T, c->num_heads, D);
    be->ops->rope(be, &q4, &m->rope_cos, &m->rope_sin, 0);
    be->ops->rope(be, &k4, &m->rope_cos, &m->rope_sin, 0);
    be->ops->attention_forward(be, &a4, &la->lse, &q4, &k4, &v4);
    be->ops->matmul_add(be, h, &la->att, 0, &model_block_param(m, l, BW_O)->w, 1, 1.0f, x);
    be->ops->rmsnorm_forward(be, &la->ln2, &la->rstd2, h, &model_block_param(m, l, BW_MLP_NORM)->w, eps);
}

/* The MLP's gate, up and product for rows [r0, r0 + n), into row views of the
 * layer's buffers (at r0 when they hold all rows, at 0 when they hold a chunk). */
typedef struct {
    Tensor ln2, gate, up, act;
} MlpRows;

static MlpRows mlp_rows_of(const ModelActs *A, LayerActs *la, int64_t r0, int64_t n) {
    int64_t at = tensor_rows(&la->gate) == A->N ? r0 : 0; /* act is always a chunk (see acts_layout) */
    return (MlpRows){tensor_row_slice(&la->ln2, r0, n), tensor_row_slice(&la->gate, at, n),
                     tensor_row_slice(&la->up, at, n), tensor_row_slice(&la->act, 0, n)};
}

static MlpRows mlp_rows_forward(Model *m, int l, LayerActs *la, int64_t r0, int64_t n) {
    Backend *be = m->be;
    MlpRows r = mlp_rows_of(m->acts, la, r0, n);
    linear(be, &r.gate, &r.ln2, model_block_param(m, l, BW_GATE));
    linear(be, &r.up, &r.ln2, model_block_param(m, l, BW_UP));
    be->ops->swiglu_forward(be, &r.act, &r.gate, &r.up);
    return r;
}

/* stats (may be NULL): OWL input statistics, see model_block_forward_stats */
static void block_forward(Model *m, int l, const Tensor *x, LayerActs *la, Tensor *out, Tensor *stats) {
    Backend *be = m->be;
    ModelActs *A = m->acts;
    /* with recomputation nothing of the forward is kept: h goes straight to out; without, la->h
     * waits for the backward and out starts as its copy. Either way the MLP adds into out in
     * place (the same GEMMs, so both modes give the same bits) */
    block_forward_attention(m, l, x, la, recomputes(A, l) ? out : &la->h);
    if (!recomputes(A, l)) be->ops->copy(be, out, &la->h);
    if (stats) {
        be->ops->col_sumsq(be, &stats[0], &la->ln1);
        be->ops->col_sumsq(be, &stats[1], &la->att);
        be->ops->col_sumsq(be, &stats[2], &la->ln2);
    }
    for (int64_t r0 = 0; r0 < A->N; r0 += A->mlp_rows) {
        int64_t n = A->N - r0 < A->mlp_rows ? A->N - r0 : A->mlp_rows;
        MlpRows r = mlp_rows_forward(m, l, la, r0, n);
        if (stats) be->ops->col_sumsq(be, &stats[3], &r.act);
        Tensor o = tensor_row_slice(out, r0, n);
        be->ops->matmul(be, &o, &r.act, 0, &model_block_param(m, l, BW_DOWN)->w, 1, 1.0f, 1.0f); /* out += a Wd^T */
    }
}

/* The hook of a trainable attention linear whose gradient has just been completed. */
static int param_done(const GradHooks *hooks, Param *p, OwError *err) {
    if (!p->trainable || !hooks || !hooks->param_done) return 0;
    return hooks->param_done(hooks->ctx, p, err);
}

/* dres holds d(out); on return it holds d(x). */
static int block_backward(Model *m, int l, const Tensor *x, LayerActs *la, const GradHooks *hooks, OwError *err) {
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    ModelActs *A = m->acts;
    int64_t B = A->B, T = A->T, D = c->head_dim;
    Param *Pn1 = model_block_param(m, l, BW_ATTN_NORM), *Pn2 = model_block_param(m, l, BW_MLP_NORM);
    int kept = !recomputes(A, l);
    float eps = (float)c->rms_norm_eps;
    /* a kept block's ln2, for the gate and up weight gradients (see acts_layout) */
    if (kept && (model_block_param(m, l, BW_GATE)->trainable || model_block_param(m, l, BW_UP)->trainable))
        be->ops->rmsnorm_forward(be, &la->ln2, &la->rstd2, &la->h, &Pn2->w, eps);
    /* MLP, in row chunks; with recomputation the chunk's gate/up/product are recomputed here
     * (the forward kept none of them), with the same chunking as the forward; a kept block
     * recomputes the product for the down weight's gradient */
    for (int64_t r0 = 0; r0 < A->N; r0 += A->mlp_rows) {
        int64_t n = A->N - r0 < A->mlp_rows ? A->N - r0 : A->mlp_rows;
        MlpRows r = kept ? mlp_rows_of(A, la, r0, n) : mlp_rows_forward(m, l, la, r0, n);
        if (kept && model_block_param(m, l, BW_DOWN)->trainable) be->ops->swiglu_forward(be, &r.act, &r.gate, &r.up);
        Tensor dres = tensor_row_slice(&A->dres, r0, n), dln = tensor_row_slice(&A->dln, r0, n);
        /* da takes the product's place: linear_backward reads r.act before it writes da */
        Tensor da = r.act, dgate = tensor_row_slice(&A->dgate, 0, n), dup = tensor_row_slice(&A->dup, 0, n);
        linear_backward(be, &da, 0.0f, &dres, &r.act, model_block_param(m, l, BW_DOWN));
        be->ops->swiglu_backward(be, &dgate, &dup, &da, &r.gate, &r.up);
        linear_backward(be, &dln, 0.0f, &dgate, &r.ln2, model_block_param(m, l, BW_GATE));
        linear_backward(be, &dln, 1.0f, &dup, &r.ln2, model_block_param(m, l, BW_UP));
    }
    be->ops->rmsnorm_backward(be, &A->dres, Pn2->trainable ? &Pn2->g : NULL, &A->dln, &la->h, &Pn2->w, &la->rstd2);
    /* attention */
    linear_backward(be, &A->datt, 0.0f, &A->dres, &la->att, model_block_param(m, l, BW_O));
    if (param_done(hooks, model_block_param(m, l, BW_O), err) != 0) return -1;
    Tensor q4 = view4(&la->q, B, T, c->num_heads, D), k4 = view4(&la->k, B, T, c->num_kv_heads, D);
    Tensor v4 = view4(&la->v, B, T, c->num_kv_heads, D), a4 = view4(&la->att, B, T, c->num_heads, D);
    Tensor dq4 = view4(&A->dq, B, T, c->num_heads, D), dk4 = view4(&A->dk, B, T, c->num_kv_heads, D);
    Tensor dv4 = view4(&A->dv, B, T, c->num_kv_heads, D), da4 = view4(&A->datt, B, T, c->num_heads, D);
    be->ops->attention_backward(be, &dq4, &dk4, &dv4, &da4, &q4, &k4, &v4, &a4, &la->lse);
    be->ops->rope(be, &dq4, &m->rope_cos, &m->rope_sin, 1);
    be->ops->rope(be, &dk4, &m->rope_cos, &m->rope_sin, 1);
    const Tensor *dqkv[3] = {&A->dq, &A->dk, &A->dv};
    /* a kept block's ln1, for the q, k and v weight gradients (see acts_layout) */
    if (kept && (model_block_param(m, l, BW_Q)->trainable || model_block_param(m, l, BW_K)->trainable ||
                 model_block_param(m, l, BW_V)->trainable))
        be->ops->rmsnorm_forward(be, &la->ln1, &la->rstd1, x, &Pn1->w, eps);
    for (int j = 0; j < 3; j++) {
        Param *W = model_block_param(m, l, (BlockWeight)(BW_Q + j));
        linear_backward(be, &A->dln, j ? 1.0f : 0.0f, dqkv[j], &la->ln1, W);
        if (param_done(hooks, W, err) != 0) return -1;
    }
    be->ops->rmsnorm_backward(be, &A->dres, Pn1->trainable ? &Pn1->g : NULL, &A->dln, x, &Pn1->w, &la->rstd1);
    return 0;
}

static int upload_batch(Model *m, const int32_t *ids, const int32_t *targets, OwError *err) {
    ModelActs *A = m->acts;
    if (!A) return ow_fail(err, "model_prepare was not called");
    int64_t V = m->cfg.vocab_size;
    for (int64_t i = 0; i < A->N; i++) {
        if (ids[i] < 0 || ids[i] >= V)
            return ow_fail(err, "token id %d at position %lld is outside the vocabulary [0, %lld)", ids[i],
                           (long long)i, (long long)V);
        if (targets && targets[i] != -100 && (targets[i] < 0 || targets[i] >= V))
            return ow_fail(err, "target id %d at position %lld is outside the vocabulary [0, %lld)", targets[i],
                           (long long)i, (long long)V);
    }
    m->be->ops->upload(m->be, &A->ids, ids, OW_I32);
    if (targets) m->be->ops->upload(m->be, &A->targets, targets, OW_I32);
    return 0;
}

/* The compact embedding gradient's slots of this micro-batch's positions (EmbedRows). */
static int upload_embed_slots(Model *m, const int32_t *ids, OwError *err) {
    int64_t N = m->acts->N;
    int32_t *pos = ow_xmalloc((size_t)N * sizeof(int32_t));
    int rc = model_embed_rows_add(m, ids, N, pos, err);
    if (rc == 0) {
        OW_CHECK(N <= tensor_numel(&m->erows.pos));
        Tensor t = tensor_slice(&m->erows.pos, 0, N);
        m->be->ops->upload(m->be, &t, pos, OW_I32);
    }
    free(pos);
    return rc;
}

/* p's weights, once an asynchronous update of them (the optimizer's) has landed. */
static const Tensor *weights(Backend *be, Param *p) {
    if (p->ready_ticket >= 0) {
        be->ops->copy_wait(be, p->ready_ticket);
        p->ready_ticket = -1;
    }
    return &p->w;
}

static void *host_x(ModelActs *A, int64_t l) { return A->host_x + (size_t)l * A->x_bytes; }

/* The order a step uses the blocks in (streamed blocks are prefetched along it): the forward 0 .. L-1,
 * then with a backward L-1 down to `lowest`, then the next step's forward again. */
typedef struct {
    int L, lowest, backward;
} StepOrder;

static StepOrder step_order(Model *m, int backward) {
    int lowest = m->embed->trainable ? 0 : model_lowest_trainable_block(m);
    return (StepOrder){(int)m->cfg.num_layers, lowest, backward && lowest < m->cfg.num_layers};
}

/* Positions of one step's order. */
static int order_len(const StepOrder *o) { return o->L + (o->backward ? o->L - o->lowest : 0); }

int model_step_order_block(int L, int lowest, int backward, int pos) {
    pos %= L + (backward ? L - lowest : 0);
    return pos < L ? pos : L - 1 - (pos - L);
}

static int order_block(const StepOrder *o, int pos) {
    return model_step_order_block(o->L, o->lowest, o->backward, pos);
}

/* Block order_block(pos) on the device for the work queued next, and the streamed blocks that follow it
 * on their way up (as many as there are other slots). */
static int block_enter(Model *m, const StepOrder *o, int pos, OwError *err) {
    if (!m->store) return 0;
    if (model_block_acquire(m, order_block(o, pos), err) != 0) return -1;
    int ahead = block_store_stream_slots(m->store) - 1, len = order_len(o);
    for (int q = pos + 1; ahead > 0 && q <= pos + len; q++) {
        int b = order_block(o, q);
        if (!block_store_streams(m->store, b)) continue;
        if (model_block_prefetch(m, b, err) != 0) return -1;
        ahead--;
    }
    return 0;
}

int model_forward_block_enter(Model *m, int l, OwError *err) {
    StepOrder order = step_order(m, 0);
    return block_enter(m, &order, l, err);
}

/* for_backward: keep the block inputs for a backward (copies them out when offloading) */
static int forward_blocks(Model *m, int for_backward, const GradHooks *hooks, OwError *err) {
    ModelActs *A = m->acts;
    Backend *be = m->be;
    int L = m->cfg.num_layers;
    StepOrder order = step_order(m, for_backward);
    if (A->offload) be->ops->copy_wait(be, A->slot_ticket[0]);
    be->ops->embedding_forward(be, &A->x[0], &A->ids, weights(be, m->embed));
    for (int l = 0; l < L; l++) {
        if (A->offload && for_backward)
            A->slot_ticket[l % ACT_SLOTS] = be->ops->copy_to_host(be, host_x(A, l), &A->x[l]);
        /* the slot x[l + 1] goes to may still be on its way to the host */
        if (A->offload && l + 1 < L) be->ops->copy_wait(be, A->slot_ticket[(l + 1) % ACT_SLOTS]);
        if (block_enter(m, &order, l, err) != 0) return -1;
        block_forward(m, l, &A->x[l], acts_of(A, L, l), &A->x[l + 1], NULL);
        model_block_release(m, l);
        if (l == 0 && hooks && hooks->forward_started) hooks->forward_started(hooks->ctx);
    }
    return 0;
}

static void final_norm_forward(Model *m, const Tensor *xL) {
    m->be->ops->rmsnorm_forward(m->be, &m->acts->lnf, &m->acts->rstdf, xL, &m->final_norm->w,
                                (float)m->cfg.rms_norm_eps);
}

/* The head of a micro-batch whose ids and targets are uploaded, from the last block's output xL: the final
 * norm, logits in row chunks and their cross-entropy (losses); with a gradient (grad_scale != 0) lm_head's
 * and the final norm's gradients, A->dres = d(loss)/d(xL), and head_done. */
static int head_pass(Model *m, const Tensor *xL, float grad_scale, const GradHooks *hooks, OwError *err) {
    ModelActs *A = m->acts;
    Backend *be = m->be;
    int64_t N = A->N;
    int want_grad = grad_scale != 0.0f;
    final_norm_forward(m, xL);
    if (want_grad) be->ops->fill(be, &A->dln, 0.0f);
    int64_t chunk = A->logits.shape[0];
    const Tensor *Wlm = weights(be, m->lm_head);
    /* a gradient in the pool holds nothing of an earlier step: the first chunk writes it */
    int head_grad_pooled = want_grad && m->lm_head->trainable && m->lm_head->g_host;
    if (head_grad_pooled) m->lm_head->g_fresh = 1;
    for (int64_t r0 = 0; r0 < N; r0 += chunk) {
        int64_t cn = N - r0 < chunk ? N - r0 : chunk;
        Tensor logits = tensor_row_slice(&A->logits, 0, cn);
        Tensor lnf = tensor_row_slice(&A->lnf, r0, cn);
        Tensor losses = tensor_slice(&A->losses, r0, cn);
        Tensor tg = tensor_slice(&A->targets, r0, cn);
        be->ops->matmul(be, &logits, &lnf, 0, Wlm, 1, 1.0f, 0.0f);
        be->ops->cross_entropy(be, &logits, &losses, &tg, grad_scale, want_grad);
        if (want_grad) {
            Tensor dlnf = tensor_row_slice(&A->dln, r0, cn);
            linear_backward(be, &dlnf, 0.0f, &logits, &lnf, m->lm_head);
        }
    }
    if (!want_grad) return 0;
    be->ops->fill(be, &A->dres, 0.0f);
    be->ops->rmsnorm_backward(be, &A->dres, m->final_norm->trainable ? &m->final_norm->g : NULL, &A->dln, xL,
                              &m->final_norm->w, &A->rstdf);
    if (hooks && hooks->head_done && hooks->head_done(hooks->ctx, err) != 0) return -1;
    if (head_grad_pooled) /* to its home in host memory before the block overlay takes the pool back */
        be->ops->copy_wait(be, be->ops->copy_to_host(be, m->lm_head->g_host, &m->lm_head->g));
    return 0;
}

/* The embedding's gradient from A->dres for the uploaded micro-batch (compact: into the slots of the step's
 * distinct tokens, in position order as the dense form), and embed_done. */
static int embed_backward(Model *m, int compact, const GradHooks *hooks, OwError *err) {
    ModelActs *A = m->acts;
    Tensor pos = compact ? tensor_slice(&m->erows.pos, 0, A->N) : A->ids;
    m->be->ops->embedding_backward(m->be, &m->embed->g, &pos, &A->dres);
    return hooks && hooks->embed_done && hooks->embed_done(hooks->ctx, err) != 0 ? -1 : 0;
}

int model_forward_backward(Model *m, const int32_t *ids, const int32_t *targets, float grad_scale,
                           const GradHooks *hooks, double *loss_sum, int64_t *ntargets, OwError *err) {
    if (upload_batch(m, ids, targets, err) != 0) return -1;
    ModelActs *A = m->acts;
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    int64_t N = A->N, L = c->num_layers;
    int want_grad = grad_scale != 0.0f;
    int compact = want_grad && model_grad_is_compact(m, m->embed);
    if (compact && upload_embed_slots(m, ids, err) != 0) return -1;
    int64_t count = 0;
    for (int64_t i = 0; i < N; i++) count += targets[i] != -100;
    *ntargets = count;

    if (forward_blocks(m, want_grad, hooks, err) != 0 || head_pass(m, &A->x[L], grad_scale, hooks, err) != 0) return -1;
    if (!want_grad) {
        *loss_sum = be->ops->sum(be, &A->losses);
        return 0;
    }

    StepOrder order = step_order(m, 1);
    int lowest = order.lowest;
    for (int l = (int)L - 1; l >= lowest; l--) {
        LayerActs *la = acts_of(A, L, l);
        if (block_enter(m, &order, (int)L + ((int)L - 1 - l), err) != 0) return -1;
        /* x[l] is still in the ring (the last ACT_SLOTS inputs) or was fetched ACT_SLOTS blocks ago */
        if (A->offload && l < L - ACT_SLOTS) be->ops->copy_wait(be, A->slot_ticket[l % ACT_SLOTS]);
        if (recomputes(A, l)) block_forward_attention(m, l, &A->x[l], la, &la->h); /* the MLP is recomputed in chunks */
        if (block_backward(m, l, &A->x[l], la, hooks, err) != 0) return -1;
        model_block_release(m, l);
        /* block l is done with its slot: fetch the input that shares it */
        if (A->offload && l - ACT_SLOTS >= lowest)
            A->slot_ticket[l % ACT_SLOTS] = be->ops->copy_from_host(be, &A->x[l - ACT_SLOTS], host_x(A, l - ACT_SLOTS));
        if (hooks && hooks->block_done && hooks->block_done(hooks->ctx, l, err) != 0) return -1;
    }
    if (m->embed->trainable && embed_backward(m, compact, hooks, err) != 0) return -1;
    *loss_sum = be->ops->sum(be, &A->losses); /* synchronous: read once the whole backward is queued */
    return 0;
}

/* ---- layer-major accumulation ---- */

/* The positions of a layer-major step, in order: the forward of block l for micro-batch k (l major), the
 * head of each micro-batch, the backward of block l (from the top down to `lowest`) for each micro-batch,
 * and the embedding's gradient of each. */
typedef enum { LM_FORWARD, LM_HEAD, LM_BACKWARD, LM_EMBED } LmKind;
typedef struct {
    LmKind kind;
    int l, k;
} LmPos;

typedef struct {
    int L, G, lowest, embed, count;
} LmPlan;

static LmPos lm_pos(const LmPlan *P, int p) {
    int G = P->G;
    if (p < P->L * G) return (LmPos){LM_FORWARD, p / G, p % G};
    p -= P->L * G;
    if (p < G) return (LmPos){LM_HEAD, P->L, p};
    p -= G;
    int nb = P->L - P->lowest;
    if (p < nb * G) return (LmPos){LM_BACKWARD, P->L - 1 - p / G, p % G};
    return (LmPos){LM_EMBED, 0, p - nb * G};
}

static void *lm_host_x(ModelActs *A, int L, int k, int l) {
    return A->lm_host + ((size_t)k * (size_t)(L + 1) + (size_t)l) * A->x_bytes;
}

/* Queues the copy of position p's block input from host memory into lm_in[p & 1] (none when p has none:
 * the embedding's positions, block 0's forward, or p past the end). */
static void lm_fetch_input(Model *m, const LmPlan *P, int p) {
    if (p >= P->count) return;
    LmPos q = lm_pos(P, p);
    if (q.kind == LM_EMBED || (q.kind == LM_FORWARD && q.l == 0)) return;
    ModelActs *A = m->acts;
    A->lm_in_ticket[p & 1] = m->be->ops->copy_from_host(m->be, &A->lm_in[p & 1], lm_host_x(A, P->L, q.k, q.l));
}

/* Position p: its micro-batch's ids (and targets) uploaded, its input in lm_in[p & 1], dres its gradient. */
static int lm_run(Model *m, const LmPlan *P, const StepOrder *order, int p, const int32_t *ids, const int32_t *targets,
                  float grad_scale, const GradHooks *hooks, double *loss_sum, OwError *err) {
    ModelActs *A = m->acts;
    Backend *be = m->be;
    LmPos q = lm_pos(P, p);
    int64_t N = A->N;
    const int32_t *ids_k = ids + (int64_t)q.k * N, *tg_k = targets + (int64_t)q.k * N;
    Tensor *in = &A->lm_in[p & 1], *out = &A->lm_out[p & 1];
    if (q.kind != LM_FORWARD && hooks && hooks->micro_begin) hooks->micro_begin(hooks->ctx, q.k, q.k == P->G - 1);
    A->dres = A->lm_dres[q.k];
    if (q.kind == LM_FORWARD && q.l == 0) { /* x[0]: the embedding, kept for block 0's backward */
        if (upload_batch(m, ids_k, NULL, err) != 0) return -1;
        be->ops->copy_wait(be, A->lm_in_ticket[p & 1]);
        be->ops->embedding_forward(be, in, &A->ids, weights(be, m->embed));
        A->lm_in_ticket[p & 1] = be->ops->copy_to_host(be, lm_host_x(A, P->L, q.k, 0), in);
    } else if (q.kind != LM_EMBED) {
        be->ops->copy_wait(be, A->lm_in_ticket[p & 1]);
    }
    if ((q.kind == LM_FORWARD || q.kind == LM_BACKWARD) && q.k == 0) {
        int opos = q.kind == LM_FORWARD ? q.l : P->L + (P->L - 1 - q.l);
        if (block_enter(m, order, opos, err) != 0) return -1;
    }
    switch (q.kind) {
    case LM_FORWARD:
        be->ops->copy_wait(be, A->lm_out_ticket[p & 1]); /* out's last copy to the host has left it */
        block_forward(m, q.l, in, &A->layers[P->L], out, NULL);
        A->lm_out_ticket[p & 1] = be->ops->copy_to_host(be, lm_host_x(A, P->L, q.k, q.l + 1), out);
        if (p == 0 && hooks && hooks->forward_started) hooks->forward_started(hooks->ctx);
        break;
    case LM_HEAD:
        if (upload_batch(m, ids_k, tg_k, err) != 0 || head_pass(m, in, grad_scale, hooks, err) != 0) return -1;
        *loss_sum += be->ops->sum(be, &A->losses);
        break;
    case LM_BACKWARD:
        block_forward_attention(m, q.l, in, &A->layers[P->L], &A->layers[P->L].h);
        if (block_backward(m, q.l, in, &A->layers[P->L], hooks, err) != 0) return -1;
        if (hooks && hooks->block_done && hooks->block_done(hooks->ctx, q.l, err) != 0) return -1;
        break;
    case LM_EMBED: {
        int compact = model_grad_is_compact(m, m->embed);
        if (upload_batch(m, ids_k, NULL, err) != 0 || (compact && upload_embed_slots(m, ids_k, err) != 0) ||
            embed_backward(m, compact, hooks, err) != 0)
            return -1;
        break;
    }
    }
    if ((q.kind == LM_FORWARD || q.kind == LM_BACKWARD) && q.k == P->G - 1) model_block_release(m, q.l);
    return 0;
}

int model_forward_backward_layers(Model *m, int micro, const int32_t *ids, const int32_t *targets, float grad_scale,
                                  const GradHooks *hooks, double *loss_sum, int64_t *ntargets, OwError *err) {
    ModelActs *A = m->acts;
    if (!A) return ow_fail(err, "model_prepare was not called");
    OW_CHECKF(A->micro == micro && micro > 1 && grad_scale != 0.0f,
              "layer-major accumulation prepared for %d micro-batches, asked for %d", A->micro, micro);
    OW_CHECKF(!(m->lm_head == m->embed && m->embed->trainable),
              "layer-major accumulation cannot keep a trainable tied embedding's accumulation order");
    OW_CHECKF(!m->lm_head->g_host, "lm_head's gradient in the activation pool does not accumulate");
    int64_t count = 0, n = (int64_t)micro * A->N;
    for (int64_t i = 0; i < n; i++) count += targets[i] != -100;
    *ntargets = count;
    StepOrder order = step_order(m, 1);
    int L = (int)m->cfg.num_layers;
    LmPlan P = {L, micro, order.lowest, m->embed->trainable, 0};
    P.count = L * micro + micro + (L - order.lowest) * micro + (P.embed ? micro : 0);
    Tensor dres = A->dres;
    double sum = 0;
    int rc = 0;
    for (int p = 0; p < P.count && rc == 0; p++) {
        lm_fetch_input(m, &P, p + 1); /* beside position p: it last read the buffer p - 1 used */
        rc = lm_run(m, &P, &order, p, ids, targets, grad_scale, hooks, &sum, err);
    }
    A->dres = dres;
    *loss_sum = sum;
    return rc;
}

int model_forward_logits(Model *m, const int32_t *ids, float *logits, OwError *err) {
    if (upload_batch(m, ids, NULL, err) != 0) return -1;
    ModelActs *A = m->acts;
    Backend *be = m->be;
    int64_t N = A->N, V = m->cfg.vocab_size, chunk = A->logits.shape[0];
    if (forward_blocks(m, 0, NULL, err) != 0) return -1;
    final_norm_forward(m, &A->x[m->cfg.num_layers]);
    const Tensor *Wlm = weights(be, m->lm_head);
    for (int64_t r0 = 0; r0 < N; r0 += chunk) {
        int64_t cn = N - r0 < chunk ? N - r0 : chunk;
        Tensor lg = tensor_row_slice(&A->logits, 0, cn);
        Tensor lnf = tensor_row_slice(&A->lnf, r0, cn);
        be->ops->matmul(be, &lg, &lnf, 0, Wlm, 1, 1.0f, 0.0f);
        be->ops->download(be, logits + r0 * V, OW_F32, &lg);
    }
    return 0;
}

int model_forward_losses(Model *m, const int32_t *ids, const int32_t *targets, float *losses, OwError *err) {
    double sum;
    int64_t n;
    if (model_forward_backward(m, ids, targets, 0.0f, NULL, &sum, &n, err) != 0) return -1;
    m->be->ops->download(m->be, losses, OW_F32, &m->acts->losses);
    return 0;
}

int model_embed_batch(Model *m, const int32_t *ids, Tensor *x, OwError *err) {
    if (upload_batch(m, ids, NULL, err) != 0) return -1;
    m->be->ops->embedding_forward(m->be, x, &m->acts->ids, weights(m->be, m->embed));
    return 0;
}

void model_block_forward_stats(Model *m, int layer, const Tensor *x, Tensor *out, Tensor *stats) {
    OW_CHECK(m->acts != NULL);
    OW_CHECKF(model_block_param(m, layer, BW_Q)->w.data != NULL, "block %d is not on the device (model_block_acquire)",
              layer);
    block_forward(m, layer, x, acts_of(m->acts, m->cfg.num_layers, layer), out, stats);
}
