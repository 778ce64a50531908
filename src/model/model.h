/* model.h: a LLaMA-family model living on a Backend: its configuration, its
 * parameters (weights, and gradients for the trainable ones), the rotary
 * tables, and the activation buffers of one (batch, sequence) shape.
 *
 * Parameters are kept in one array in a fixed order: the embedding, then
 * for each block its 9 tensors (BlockWeight order), then the final norm, then
 * lm_head unless the embeddings are tied (then lm_head is the embedding).
 * A parameter's gradient exists (g.data != NULL) exactly while it is
 * trainable; gradients are F32 and accumulate across backward passes until
 * the optimizer consumes them. */
#ifndef OWLORE_MODEL_MODEL_H
#define OWLORE_MODEL_MODEL_H

#include "backend/backend.h"
#include "model/config.h"
#include "offload/block_store.h"
#include "offload/host_mem.h"

typedef enum { BW_ATTN_NORM = 0, BW_Q, BW_K, BW_V, BW_O, BW_MLP_NORM, BW_GATE, BW_UP, BW_DOWN, BW_COUNT } BlockWeight;

typedef enum { PK_EMBED = 0, PK_BLOCK = 1, PK_FINAL_NORM = 2, PK_LM_HEAD = 3 } ParamKind;

typedef struct Param {
    char name[96]; /* Hugging Face name, e.g. model.layers.3.self_attn.q_proj.weight */
    ParamKind kind;
    int layer;      /* block index, -1 outside blocks */
    BlockWeight bw; /* which block tensor (PK_BLOCK only) */
    int is_matrix;  /* a linear weight (GaLore projects these) or embedding/lm_head */
    Tensor w;       /* be->param_dtype */
    Tensor g;       /* F32, allocated while trainable */
    int trainable;
    int g_shared;     /* g is a view of a buffer the optimizer owns and shares between blocks */
    int g_fresh;      /* block linears: g holds no contribution yet, so the first weight-gradient
                        GEMM writes it instead of accumulating (the optimizer sets this instead of
                        zeroing g; whoever reads g first zeroes it if it is still set) */
    int ready_ticket; /* >= 0: an asynchronous update of w is in flight (a Backend copy_wait
                         ticket); the model waits for it before reading w; -1: none */
    float *g_host;    /* lm_head with Model.head_grad_host: the gradient's home between the
                         backward and the optimizer (page-locked, in Model.host; F32 of w's shape); g is
                         then a view of the activation pool, valid only during the backward */
} Param;

/* The compact embedding gradient (Model.embed_grad_rows > 0, untied embeddings):
 * instead of a dense [V, C] gradient, the embedding's g is F32 [cap, C] with one
 * row ("slot") per distinct token of the step, slots given in order of first
 * appearance. Rows without a slot have a zero gradient. The map lives until the
 * optimizer has consumed the gradient (model_embed_rows_reset). */
typedef struct EmbedRows {
    int64_t cap, count;
    int32_t *slot_of_row; /* host [V], -1: no slot */
    int32_t *row_of_slot; /* host [cap] */
    Tensor sel;           /* backend I32 [V]: slot_of_row, uploaded when it changes; a view of sel_buf[cur] */
    Tensor sel_buf[2];    /* two maps, alternating by step: an asynchronous update may still read
                             the previous step's map while the next one is uploaded */
    int cur;
    Tensor pos;   /* backend I32 [embed_grad_rows]: the slot of each position of a micro-batch */
    int dirty;    /* sel differs from slot_of_row */
    int complete; /* model_begin_step registered every token of the step */
} EmbedRows;

/* Called during backward as soon as gradients are complete for a part of the
 * model, so an optimizer can consume them early. Any may be NULL. */
typedef struct GradHooks {
    void *ctx;
    int (*head_done)(void *ctx, OwError *err);             /* lm_head and final norm */
    int (*block_done)(void *ctx, int layer, OwError *err); /* the 9 tensors of block `layer` */
    int (*embed_done)(void *ctx, OwError *err);            /* the embedding */
    /* one trainable attention linear (o, q, k, v, in that order) of a block, as soon as
     * its gradient is complete, before the next one's is computed (so they can share memory) */
    int (*param_done)(void *ctx, Param *p, OwError *err);
    /* the first block's forward is queued: the device has work, so the host can now queue
     * work that runs beside the step (the optimizer's early updates) without idling it */
    void (*forward_started)(void *ctx);
    /* layer-major accumulation: the hooks that follow are those of micro-batch `micro` (last: the step's
     * last), as optimizer_begin_micro tells the optimizer before each micro-batch's backward */
    void (*micro_begin)(void *ctx, int micro, int last);
} GradHooks;

typedef struct ModelActs ModelActs; /* activation buffers, private to llama.c */

typedef struct Model {
    ModelConfig cfg;
    Backend *be;
    int nparams;
    Param *params;
    Param *embed;
    Param *final_norm;
    Param *lm_head;            /* == embed when tied */
    Tensor rope_cos, rope_sin; /* F32 [max_T, head_dim/2] */
    int64_t rope_len;
    ModelActs *acts;
    int64_t logits_chunk_rows; /* rows of logits computed at once (bounds the logits buffer); 0: automatic */
    int64_t mlp_chunk_rows;    /* rows the MLP processes at once (bounds its buffers); 0: automatic */
    int offload_acts;          /* with recomputation: block inputs in host memory (llama.c); set before model_prepare */
    int64_t embed_grad_rows;   /* > 0: compact embedding gradient of this many rows (EmbedRows); set before the
                                  embedding becomes trainable; untied embeddings only */
    int head_grad_host;        /* untied lm_head: its gradient is computed in the activation pool and copied
                                  to host memory (Param.g_host) after the head's backward, so it takes no
                                  device memory of its own; for one backward per optimizer step (it does not
                                  accumulate). Set before model_prepare, which must precede making lm_head
                                  trainable */
    EmbedRows erows;
    int64_t keep_acts;   /* with recomputation: the top keep_acts blocks keep their activations for the backward
                            instead (memory for speed; the same bits); set before model_prepare */
    int64_t accum_micro; /* > 1: model_prepare also allocates layer-major accumulation over this many
                            micro-batches (model_forward_backward_layers); needs recomputation */
    /* Placed blocks (model_create_placed): each block's 9 weights are views, at block_off, of one
     * buffer of block_bytes that the store moves between its home and the device; a streamed
     * block's w.data is NULL except between model_block_acquire and model_block_release (llama.c
     * does this around each use). NULL: every weight is a buffer of its own on the backend. */
    BlockStore *store;
    size_t block_off[BW_COUNT];
    size_t block_bytes;
    int staged_block; /* a placed block written by model_param_upload, home at model_param_upload_flush (-1) */
    /* The run's host memory (offload/host_mem.h), owned here: the store's host homes and staging,
     * the offloaded block inputs, lm_head's gradient home and (through Optimizer.model) the
     * optimizer's host state count in it. Uncapped when made; the trainer caps it (--host-mem). */
    HostMem host;
} Model;

/* Allocates a model with zeroed weights on be. */
int model_create(Backend *be, const ModelConfig *cfg, Model **out, OwError *err);
void model_free(Model *m);
/* Loads config.json and the safetensors weights of a Hugging Face directory. */
int model_load_hf(Backend *be, const char *dir, Model **out, OwError *err);
/* The same, with the blocks in the homes placement->homes names (offload/block_store.h; its
 * block_bytes is filled in here: model_block_bytes). The caller writes every block (model_load_hf_placed
 * does, or model_init_random) and then calls model_seal. */
int model_create_placed(Backend *be, const ModelConfig *cfg, const BlockStoreConfig *placement, Model **out,
                        OwError *err);
int model_load_hf_placed(Backend *be, const char *dir, const BlockStoreConfig *placement, Model **out, OwError *err);
/* Every block written: the store file (if any) is finished. A no-op without placement. */
int model_seal(Model *m, OwError *err);
/* One block's bytes in the placed layout (its 9 tensors, each at a multiple of 256 bytes). */
size_t model_block_bytes(const ModelConfig *cfg, DType param);
/* transformers' init: linear and embedding weights N(0, std), norms 1; seeded per parameter. -1 only
 * when a placed block cannot be written to its home. */
int model_init_random(Model *m, uint64_t seed, double std, OwError *err);

/* The block at position pos of a training step's block order: the forward 0 .. L-1, then (backward) L-1 down to
 * lowest; pos wraps into the next step. Streamed blocks are prefetched along it; the cost model replays it. */
int model_step_order_block(int L, int lowest, int backward, int pos);
/* Block l's weights on the device (w.data set) until model_block_release: a no-op for blocks that
 * stay there (unplaced, device home, pinned). */
int model_block_acquire(Model *m, int l, OwError *err);
void model_block_release(Model *m, int l);
/* Asks for block l to be brought up ahead of its use (a no-op when it stays on the device). */
int model_block_prefetch(Model *m, int l, OwError *err);
/* A trained block stays on the device from pin to unpin; unpin copies it back to its home. */
int model_block_pin(Model *m, int l, OwError *err);
int model_block_unpin(Model *m, int l, OwError *err);
/* A parameter's weights to or from host memory wherever they live (download: converted to dtype;
 * upload: from dtype). A placed block written by uploads goes back to its home once, when an upload
 * turns to another block or at model_param_upload_flush, which must follow the last upload. */
int model_param_download(Model *m, Param *p, void *dst, DType dtype, OwError *err);
int model_param_upload(Model *m, Param *p, const void *src, DType dtype, OwError *err);
int model_param_upload_flush(Model *m, OwError *err);

Param *model_block_param(Model *m, int layer, BlockWeight bw);
Param *model_find_param(Model *m, const char *name);
/* Makes a parameter trainable (allocates its zeroed gradient) or frozen (frees it). */
int model_set_trainable(Model *m, Param *p, int trainable, OwError *err);
/* Zeroes every existing gradient. */
void model_zero_grads(Model *m);
/* A gradient whose home is host memory (Param.g_host) made zero once every queued update
 * has stopped reading it; the next backward writes the pool's view afresh (g_fresh). */
void model_zero_grad_host(Model *m, Param *p);
/* Whether p's gradient is the compact embedding gradient (EmbedRows). */
int model_grad_is_compact(const Model *m, const Param *p);
/* p's gradient as a dense F32 host array of p's shape (the compact embedding
 * gradient expanded; zero rows where no slot). */
void model_grad_download(Model *m, const Param *p, float *dense);
/* Registers the token ids of a whole step (all micro-batches) in the compact
 * embedding gradient's row map before the first micro-batch, so the rows that
 * get no gradient are known early (the optimizer updates them beside the
 * step's compute). A no-op without a compact embedding gradient. */
int model_begin_step(Model *m, const int32_t *ids, int64_t n, OwError *err);
/* Forgets the slots once their gradient has been consumed (the optimizer). */
void model_embed_rows_reset(Model *m);

/* Allocates activation buffers for batches of B sequences of T tokens.
 * recompute: keep only each block's input and recompute the rest in backward.
 * head_grad (model_activation_bytes): lm_head's gradient lives in the pool (Model.head_grad_host). */
int model_prepare(Model *m, int64_t B, int64_t T, int recompute, OwError *err);

/* Bytes model_prepare allocates on the backend for this shape (with the rotary
 * tables), and in host memory for offloaded block inputs (offload: the
 * Model.offload_acts setting; it applies with recompute and more than 3 blocks). */
size_t model_activation_bytes(const ModelConfig *cfg, DType act, int64_t B, int64_t T, int recompute, int64_t keep,
                              int offload, int head_grad);
size_t model_offload_host_bytes(const ModelConfig *cfg, DType act, int64_t B, int64_t T, int recompute, int offload);

/* Forward and backward on one micro-batch. ids and targets are host I32
 * [B*T] (targets already shifted: targets[t] is the token after ids[t];
 * -100 = ignored). The loss summed over non-ignored targets goes to
 * *loss_sum, their count to *ntargets; gradients of d(loss_sum * grad_scale)
 * accumulate into the trainable parameters' g. With grad_scale == 0 no
 * backward runs (evaluation). Hooks fire as parts of the gradient complete. */
int model_forward_backward(Model *m, const int32_t *ids, const int32_t *targets, float grad_scale,
                           const GradHooks *hooks, double *loss_sum, int64_t *ntargets, OwError *err);
/* The same for `micro` micro-batches at once (ids, targets: micro * B * T), layer-major: every
 * micro-batch passes block l before block l + 1, and in reverse in the backward, their block-boundary
 * activations in host memory, so a streamed block comes to the device once per step. Every parameter's
 * gradient accumulates its micro-batches' contributions in the same order as micro-batch after
 * micro-batch, so the bits are those of calling model_forward_backward per micro-batch, with one
 * exception that is refused: a trainable tied embedding (its head and embedding contributions would
 * interleave differently). Needs model_prepare with Model.accum_micro == micro and recomputation;
 * hooks->micro_begin is called before each micro-batch's part of the backward. */
int model_forward_backward_layers(Model *m, int micro, const int32_t *ids, const int32_t *targets, float grad_scale,
                                  const GradHooks *hooks, double *loss_sum, int64_t *ntargets, OwError *err);
/* Device and host bytes of layer-major accumulation over micro micro-batches (0 when micro <= 1). */
size_t model_layer_accum_bytes(const ModelConfig *cfg, DType act, int64_t B, int64_t T, int64_t micro);
size_t model_layer_accum_host_bytes(const ModelConfig *cfg, DType act, int64_t B, int64_t T, int64_t micro);
/* Forward only, writing F32 logits [B*T, V] to host memory. */
int model_forward_logits(Model *m, const int32_t *ids, float *logits, OwError *err);
/* Forward only, per-position losses (F32 [B*T], 0 where ignored) to host memory. */
int model_forward_losses(Model *m, const int32_t *ids, const int32_t *targets, float *losses, OwError *err);

/* Calibration (OWL statistics), one block at a time. model_prepare(m, B, T, 1)
 * must have been called. model_embed_batch writes the embeddings of host ids
 * [B*T] to x (act dtype [B*T, C]). model_block_forward_stats runs block
 * `layer` from x to out (both [B*T, C], may not alias) and, when stats is
 * non-NULL, accumulates into stats[0..3] (F32) the column sums of squares of
 * the inputs of the block's linears: [0] q/k/v input [C], [1] o_proj input
 * [Hq*D], [2] gate/up input [C], [3] down_proj input [F]. A placed model's block must be on the device
 * (model_block_acquire). */
int model_embed_batch(Model *m, const int32_t *ids, Tensor *x, OwError *err);
void model_block_forward_stats(Model *m, int layer, const Tensor *x, Tensor *out, Tensor *stats);

/* Frees the activation buffers (model_free does too); model_prepare allocates them again. */
void model_acts_free(Model *m);

#endif
