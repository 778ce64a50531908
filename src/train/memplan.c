/* memplan.c: see memplan.h. */
#include "train/memplan.h"

#include "backend/backend_cuda.h"
#include "model/model.h"
#include "model/tensor_names.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t rows, cols;
} Shape2;

/* The 7 linear weights of a block, in BlockWeight order from BW_Q (shapes: tensor_names.h). */
static void block_matrices(const ModelConfig *c, Shape2 mats[7]) {
    static const ModelTensorKind k_linears[7] = {MT_Q, MT_K, MT_V, MT_O, MT_GATE, MT_UP, MT_DOWN};
    for (int i = 0; i < 7; i++) {
        int64_t s[2];
        OW_CHECK(model_tensor_shape(c, k_linears[i], s) == 2);
        mats[i] = (Shape2){s[0], s[1]};
    }
}

/* GaLore's state per trainable block (R, m, v and P of each matrix), and the largest workspaces of a
 * projector refresh: galore_projector's Om, Y, Z, B, Sm (*ws, F32 elements) and the backend's fp64 copy
 * of the tallest of them with its [k, k] Gram matrix and eigensolver scratch (*ws64, device backends). */
static int64_t galore_block_state(const TrainConfig *c, const Shape2 mats[7], int64_t *ws, int64_t *ws64) {
    int64_t r = c->rank, k = c->rank + c->rf_oversample, state = 0;
    for (int i = 0; i < 7; i++) {
        int64_t m = mats[i].rows, n = mats[i].cols;
        int right = m >= n;
        state += right ? 3 * m * r + r * n : 3 * r * n + m * r;
        int64_t small = m < n ? m : n, tall = right ? m : n, dim = right ? n : m, other = right ? m : n;
        if (c->projector == PROJ_RANDOMIZED && k < small) {
            int64_t w = 2 * other * k + dim * k + tall * k + r * k;
            if (w > *ws) *ws = w;
            int64_t longest = other > dim ? other : dim, w64 = longest * k + 3 * k * k + 8 * k;
            if (w64 > *ws64) *ws64 = w64;
        }
    }
    return state;
}

void train_memory_plan(const TrainConfig *c, const ModelConfig *mc, DType param, DType act, int device_workspace,
                       MemPlan *out) {
    memset(out, 0, sizeof *out);
    const size_t f32 = 4, pw = dtype_size(param);
    int64_t C = mc->hidden_size, V = mc->vocab_size, L = mc->num_layers;
    Shape2 mats[7];
    block_matrices(mc, mats);
    int64_t block_mat = 0, largest = 0, widest = 0, attn = 0;
    for (int i = 0; i < 7; i++) {
        int64_t n = mats[i].rows * mats[i].cols;
        block_mat += n;
        if (n > largest) largest = n;
        if (mats[i].cols > widest) widest = mats[i].cols;
        if (i < 4 && n > attn) attn = n;
    }
    /* shared gradient buffers: one for the attention linears (absorbed one at a time), one per MLP linear */
    int64_t shared_mat = attn + block_mat -
                         (mats[0].rows * mats[0].cols + 2 * mats[1].rows * mats[1].cols + mats[3].rows * mats[3].cols);
    int64_t head = V * C * (mc->tie_word_embeddings ? 1 : 2);
    out->bytes[MEM_WEIGHTS] = (size_t)(head + L * (block_mat + 2 * C) + C) * pw;

    int sampling = train_config_samples_blocks(c);
    int64_t nb = sampling ? (c->gamma < L ? c->gamma : L) : L; /* trainable blocks at a time */
    int galore = c->optimizer == OPT_GALORE_ADAMW && c->rank > 0;
    int shared = galore && (c->grad_accum == 1 || c->accum_mode == ACCUM_PROJECTED);
    /* always-trainable tensors: embedding (unless frozen), lm_head when untied, final norm */
    int64_t head_trainable = C;
    if (!c->freeze_embeddings) head_trainable += V * C;
    if (!mc->tie_word_embeddings) head_trainable += V * C;
    /* untied: the embedding's gradient has a row per distinct token of a step (model.h EmbedRows),
     * with its row map (two I32 [V], alternating by step) and the slots of the step's positions (I32) */
    int64_t step_tokens = c->grad_accum * c->batch_size * c->block_size;
    int64_t embed_grad = V * C;
    if (!mc->tie_word_embeddings) embed_grad = (step_tokens < V ? step_tokens : V) * C + 2 * V + step_tokens;
    int64_t grads = head_trainable - (c->freeze_embeddings ? 0 : V * C - embed_grad) + nb * 2 * C +
                    (shared ? shared_mat : nb * block_mat);
    /* lm_head's gradient in the activation pool, its home in host memory (Model.head_grad_host) */
    int head_grad = train_config_head_grad_host(c, device_workspace, mc->tie_word_embeddings);
    if (head_grad) {
        grads -= V * C;
        out->host_gradients = (size_t)(V * C) * f32;
    }
    out->bytes[MEM_GRADS] = (size_t)grads * f32;

    /* AdamW m, v of everything not projected; the embedding's and lm_head's in host memory when offloaded */
    int64_t moments = 2 * (head_trainable + nb * 2 * C);
    if (train_config_offload_optimizer(c, device_workspace)) {
        int64_t host = 2 * (head_trainable - C);
        moments -= host;
        out->host_optimizer = (size_t)host * f32;
        if (device_workspace) out->bytes[MEM_WORKSPACE] += BACKEND_CUDA_HOST_STATE_STAGING;
    }
    int64_t galore_state = 0, ws = 0, ws64 = 0;
    int64_t delta = OPTIM_DELTA_CHUNK > widest ? OPTIM_DELTA_CHUNK : widest; /* the projected-back update scratch */
    if (galore)
        galore_state = nb * galore_block_state(c, mats, &ws, &ws64) + (largest < delta ? largest : delta);
    else
        moments += 2 * nb * block_mat;
    out->bytes[MEM_OPTIM] = (size_t)(moments + galore_state) * f32;
    int offload = train_config_offload_acts(c, device_workspace);
    out->bytes[MEM_ACTIVATIONS] =
        model_activation_bytes(mc, act, c->batch_size, c->block_size, c->recompute, offload, head_grad);
    out->host_activations = model_offload_host_bytes(mc, act, c->batch_size, c->block_size, c->recompute, offload);
    out->bytes[MEM_WORKSPACE] +=
        (size_t)ws * f32 + (device_workspace ? (size_t)ws64 * 8 : 0) +
        (device_workspace ? BACKEND_CUDA_FIXED_WORKSPACE : 0); /* cuBLAS workspace, scratch, norm accumulator */
    for (int kind = 0; kind < MEM_KIND_COUNT; kind++) out->total += out->bytes[kind];
}

size_t train_host_room(const TrainConfig *c) { return c->host_mem ? c->host_mem : offload_default_host_room(); }

int train_memory_place(const TrainConfig *c, const ModelConfig *mc, DType param, DType act, int device_workspace,
                       size_t cap, size_t host_room, MemPlan *out, BlockHome *homes, OwError *err) {
    train_memory_plan(c, mc, param, act, device_workspace, out);
    int L = (int)mc->num_layers;
    int64_t C = mc->hidden_size, head = mc->vocab_size * C * (mc->tie_word_embeddings ? 1 : 2);
    size_t other_weights = (size_t)(head + C) * dtype_size(param); /* embedding, lm_head, final norm */
    size_t resident_blocks = out->bytes[MEM_WEIGHTS] - other_weights;
    size_t rest = out->total - resident_blocks; /* every device byte but the blocks' */
    BlockHome *h = homes ? homes : ow_xmalloc((size_t)L * sizeof *h);
    /* the homes take the page-locked room the offloaded activations, moments and lm_head's gradient leave */
    size_t host_other = out->host_activations + out->host_optimizer + out->host_gradients;
    OffloadRequest r = {
        .mode = c->offload,
        .n_blocks = L,
        .block_bytes = model_block_bytes(mc, param),
        .pinned = train_config_samples_blocks(c) ? (int)(c->gamma < L ? c->gamma : L) : L,
        .stream_slots = (int)c->stream_slots,
        .device_room = cap == 0 ? SIZE_MAX : (cap > rest ? cap - rest : 0),
        .host_room = host_room > host_other ? host_room - host_other : 0,
        .have_disk = c->nvme_dir[0] != '\0',
    };
    int rc = offload_place(&r, h, &out->place, err);
    if (rc == 0 && out->place.streaming) {
        out->bytes[MEM_WEIGHTS] = other_weights + out->place.device_bytes;
        out->total = rest + out->place.device_bytes;
        out->disk_bytes = out->place.disk_bytes;
    }
    if (!homes) free(h);
    return rc;
}

int64_t train_memory_largest_batch(const TrainConfig *c, const ModelConfig *mc, DType param, DType act,
                                   int device_workspace, size_t cap, int64_t max_batch) {
    TrainConfig t = *c;
    int64_t lo = 0, hi = max_batch;
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        t.batch_size = mid;
        MemPlan p;
        train_memory_plan(&t, mc, param, act, device_workspace, &p);
        if (p.total <= cap)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

void memplan_format(const MemPlan *p, char *buf, size_t cap) { memstats_format(p->bytes, buf, cap); }
