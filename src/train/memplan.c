/* memplan.c: see memplan.h. */
#include "train/memplan.h"

#include "backend/backend_cuda.h"
#include "model/model.h"
#include "model/tensor_names.h"

#include <stdio.h>
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

/* Layer-major accumulation's buffers (model_forward_backward_layers) added to a plan. */
static void layer_accum_bytes(const TrainConfig *c, const ModelConfig *mc, DType act, MemPlan *out) {
    size_t dev = model_layer_accum_bytes(mc, act, c->batch_size, c->block_size, c->grad_accum);
    out->bytes[MEM_ACTIVATIONS] += dev;
    out->host_activations += model_layer_accum_host_bytes(mc, act, c->batch_size, c->block_size, c->grad_accum);
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
    out->bytes[MEM_ACTIVATIONS] = model_activation_bytes(mc, act, c->batch_size, c->block_size, c->recompute,
                                                         c->keep_acts > 0 ? c->keep_acts : 0, offload, head_grad);
    out->keep_acts = c->recompute && c->keep_acts > 0 ? (c->keep_acts < L ? c->keep_acts : L) : 0;
    out->host_activations = model_offload_host_bytes(mc, act, c->batch_size, c->block_size, c->recompute, offload);
    if (train_config_accum_layered(c, mc->tie_word_embeddings, 0)) layer_accum_bytes(c, mc, act, out);
    out->bytes[MEM_WORKSPACE] +=
        (size_t)ws * f32 + (device_workspace ? (size_t)ws64 * 8 : 0) +
        (device_workspace ? BACKEND_CUDA_FIXED_WORKSPACE : 0); /* cuBLAS workspace, scratch, norm accumulator */
    for (int kind = 0; kind < MEM_KIND_COUNT; kind++) out->total += out->bytes[kind];
}

/* keep_acts auto (-1) under a cap the user gave (--gpu-mem): the top blocks keep their activations (no
 * recomputation) as far as the room the plan leaves under the cap allows, less a margin (memory for speed:
 * the same bits). Runs without a cap, with layer-major accumulation or with blocks streaming keep none
 * (streaming took the room; costmodel.h's cost_choose_plan may trade blocks for kept activations). */
#define KEEP_MARGIN ((size_t)512 << 20)
static void keep_in_room(const TrainConfig *c, const ModelConfig *mc, DType act, int device_workspace, size_t cap,
                         MemPlan *out) {
    if (c->keep_acts >= 0 || !cap || !c->gpu_mem || !c->recompute || !device_workspace ||
        train_config_accum_layered(c, mc->tie_word_embeddings, 0))
        return;
    int offload = train_config_offload_acts(c, device_workspace);
    int head_grad = train_config_head_grad_host(c, device_workspace, mc->tie_word_embeddings);
    size_t base = out->bytes[MEM_ACTIVATIONS], best = base;
    int64_t keep = 0;
    for (int64_t k = 1; k <= mc->num_layers; k++) {
        size_t a = model_activation_bytes(mc, act, c->batch_size, c->block_size, 1, k, offload, head_grad);
        if (out->total - base + a + KEEP_MARGIN > cap) break;
        keep = k;
        best = a;
    }
    out->keep_acts = keep;
    out->total += best - base;
    out->bytes[MEM_ACTIVATIONS] = best;
}

void train_resolve_optimizer_home(TrainConfig *c, const ModelConfig *mc, DType param, DType act, int device_workspace,
                                  size_t cap) {
    if (c->offload_optimizer != OFFLOAD_AUTO || !device_workspace || !cap || !c->gpu_mem) return;
    TrainConfig dev = *c;
    dev.offload_optimizer = OFFLOAD_OFF;
    dev.keep_acts = 0;
    MemPlan q;
    OwError e;
    if (train_memory_place(&dev, mc, param, act, device_workspace, cap, train_host_room(c), &q, NULL, &e) == 0 &&
        !q.place.streaming && q.total + KEEP_MARGIN <= cap)
        c->offload_optimizer = OFFLOAD_OFF;
}

size_t train_host_room(const TrainConfig *c) { return c->host_mem ? c->host_mem : offload_default_host_room(); }

/* The device room a cap leaves beside `used` bytes (SIZE_MAX without a cap). */
static size_t room_beside(size_t cap, size_t used) { return cap == 0 ? SIZE_MAX : cap > used ? cap - used : 0; }

/* The blocks' host homes share the page-locked room with the plan's other host figures (SIZE_MAX: unlimited). */
static size_t block_host_room(size_t host_room, const MemPlan *p) {
    size_t other = p->host_activations + p->host_optimizer + p->host_gradients;
    return host_room == SIZE_MAX ? SIZE_MAX : host_room > other ? host_room - other : 0;
}

int train_memory_place(const TrainConfig *c, const ModelConfig *mc, DType param, DType act, int device_workspace,
                       size_t cap, size_t host_room, MemPlan *out, BlockHome *homes, OwError *err) {
    train_memory_plan(c, mc, param, act, device_workspace, out);
    int L = (int)mc->num_layers;
    int64_t C = mc->hidden_size, head = mc->vocab_size * C * (mc->tie_word_embeddings ? 1 : 2);
    size_t other_weights = (size_t)(head + C) * dtype_size(param); /* embedding, lm_head, final norm */
    size_t resident_blocks = out->bytes[MEM_WEIGHTS] - other_weights;
    size_t rest = out->total - resident_blocks; /* every device byte but the blocks' */
    BlockHome *h = homes ? homes : ow_xmalloc((size_t)L * sizeof *h);
    OffloadRequest r = {
        /* blocks stream only where the device has memory of its own, or when asked for */
        .mode = c->offload == OFFLOAD_MODE_AUTO && !device_workspace ? OFFLOAD_MODE_NONE : c->offload,
        .n_blocks = L,
        .block_bytes = model_block_bytes(mc, param),
        .pinned = train_config_samples_blocks(c) ? (int)(c->gamma < L ? c->gamma : L) : L,
        .stream_slots = c->stream_slots ? (int)c->stream_slots : MEMPLAN_DEFAULT_SLOTS,
        .device_room = room_beside(cap, rest),
        .host_room = block_host_room(host_room, out),
        .have_disk = c->nvme_dir[0] != '\0',
    };
    int rc = offload_place(&r, h, &out->place, err);
    int tied = mc->tie_word_embeddings;
    if (rc == 0 && out->place.streaming && !train_config_accum_layered(c, tied, 0) &&
        train_config_accum_layered(c, tied, 1)) { /* auto: streaming turns layer-major on; place again with it */
        size_t before = out->bytes[MEM_ACTIVATIONS];
        layer_accum_bytes(c, mc, act, out);
        size_t more = out->bytes[MEM_ACTIVATIONS] - before;
        out->total += more;
        rest += more;
        r.device_room = room_beside(cap, rest);
        r.host_room = block_host_room(host_room, out);
        rc = offload_place(&r, h, &out->place, err);
    }
    if (rc == 0 && out->place.streaming) {
        out->bytes[MEM_WEIGHTS] = other_weights + out->place.device_bytes;
        out->total = rest + out->place.device_bytes;
        out->disk_bytes = out->place.disk_bytes;
    }
    if (rc == 0 && !out->place.streaming) keep_in_room(c, mc, act, device_workspace, cap, out);
    if (!homes) free(h);
    return rc;
}

/* The largest batch size <= max_batch whose plan fits in cap bytes: placed (train_memory_place under host_room)
 * or every block on the device. */
static int64_t largest_batch(const TrainConfig *c, const ModelConfig *mc, DType param, DType act, int device_workspace,
                             size_t cap, int placed, size_t host_room, int64_t max_batch) {
    TrainConfig t = *c;
    int64_t lo = 0, hi = max_batch;
    BlockHome *homes = ow_xmalloc((size_t)mc->num_layers * sizeof *homes);
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        t.batch_size = mid;
        MemPlan p;
        OwError ignored;
        int fits = 1;
        if (placed)
            fits = train_memory_place(&t, mc, param, act, device_workspace, cap, host_room, &p, homes, &ignored) == 0;
        else
            train_memory_plan(&t, mc, param, act, device_workspace, &p);
        if (fits && p.total <= cap)
            lo = mid;
        else
            hi = mid - 1;
    }
    free(homes);
    return lo;
}

int64_t train_memory_largest_batch(const TrainConfig *c, const ModelConfig *mc, DType param, DType act,
                                   int device_workspace, size_t cap, int64_t max_batch) {
    return largest_batch(c, mc, param, act, device_workspace, cap, 0, 0, max_batch);
}

int64_t train_memory_largest_placed_batch(const TrainConfig *c, const ModelConfig *mc, DType param, DType act,
                                          int device_workspace, size_t cap, size_t host_room, int64_t max_batch) {
    return largest_batch(c, mc, param, act, device_workspace, cap, 1, host_room, max_batch);
}

int train_memory_check(const TrainConfig *c, const ModelConfig *mc, DType param, DType act, int device_workspace,
                       const char *device, size_t cap, size_t host_room, MemPlan *out, BlockHome *homes, OwError *err) {
    if (train_memory_place(c, mc, param, act, device_workspace, cap, host_room, out, homes, err) != 0)
        return ow_fail_prefix(err, "placing the model's blocks (--offload %s)", offload_mode_names[c->offload]);
    if (!cap || out->total <= cap) return 0;
    char line[512], tot[32], capb[32], hint[256];
    memplan_format(out, line, sizeof line);
    int64_t fit = train_memory_largest_batch(c, mc, param, act, device_workspace, cap, c->batch_size);
    if (fit > 0)
        snprintf(hint, sizeof hint, "--batch-size %lld fits (with --grad-accum to keep the tokens per step)",
                 (long long)fit);
    else if (c->offload == OFFLOAD_MODE_NONE && device_workspace)
        snprintf(hint, sizeof hint, "--offload auto streams frozen blocks from host memory");
    else
        snprintf(hint, sizeof hint,
                 "even --batch-size 1 does not fit; train fewer blocks at once (--gamma), a lower --rank, "
                 "or --freeze-embeddings");
    return ow_fail(err,
                   "the run needs %s of %s memory but the cap (--gpu-mem) is %s\n  plan: %s\n  hint: %s; or lower "
                   "--block-size, --gamma or --rank",
                   format_size(out->total, tot, sizeof tot), device, format_size(cap, capb, sizeof capb), line, hint);
}

void memplan_format(const MemPlan *p, char *buf, size_t cap) { memstats_format(p->bytes, buf, cap); }
