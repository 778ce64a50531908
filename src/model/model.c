/* model.c: creating a model on a backend, its parameter table, trainable
 * flags and gradients, random initialisation, and loading HF weights. */
#include "model/model.h"
#include "model/model_internal.h"

#include "core/cancel.h"
#include "core/log.h"
#include "core/rng.h"
#include "model/safetensors.h"
#include "model/tensor_names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parameter names and block tensor shapes come from tensor_names.h (their one definition). */
static const ModelTensorKind k_block_kind[BW_COUNT] = {
    [BW_ATTN_NORM] = MT_ATTN_NORM, [BW_Q] = MT_Q,       [BW_K] = MT_K,   [BW_V] = MT_V,       [BW_O] = MT_O,
    [BW_MLP_NORM] = MT_MLP_NORM,   [BW_GATE] = MT_GATE, [BW_UP] = MT_UP, [BW_DOWN] = MT_DOWN,
};

static void block_shape(const ModelConfig *c, BlockWeight bw, Tensor *t, DType dt) {
    int64_t s[2];
    *t = model_tensor_shape(c, k_block_kind[bw], s) == 1 ? tensor_1d(dt, s[0]) : tensor_2d(dt, s[0], s[1]);
}

size_t model_block_bytes(const ModelConfig *cfg, DType param) {
    size_t at = 0;
    for (int b = 0; b < BW_COUNT; b++) {
        Tensor t;
        block_shape(cfg, (BlockWeight)b, &t, param);
        at += (tensor_nbytes(&t) + 255) / 256 * 256;
    }
    return at;
}

/* Points block l's 9 weights into buf (data NULL: unbinds). */
static void block_bind(Model *m, int l, const Tensor *buf) {
    for (int b = 0; b < BW_COUNT; b++)
        model_block_param(m, l, (BlockWeight)b)->w.data = buf ? (unsigned char *)buf->data + m->block_off[b] : NULL;
}

/* The block store of a placed model, with the device-home blocks bound for good. */
static int place_blocks(Model *m, const BlockStoreConfig *placement, OwError *err) {
    size_t at = 0;
    for (int b = 0; b < BW_COUNT; b++) {
        m->block_off[b] = at;
        at += (tensor_nbytes(&model_block_param(m, 0, (BlockWeight)b)->w) + 255) / 256 * 256;
    }
    m->block_bytes = at;
    BlockStoreConfig bc = *placement;
    bc.n_blocks = (int)m->cfg.num_layers;
    bc.block_bytes = at;
    bc.host = &m->host;
    if (block_store_create(m->be, &bc, &m->store, err) != 0) return -1;
    for (int l = 0; l < m->cfg.num_layers; l++) {
        if (block_store_home(m->store, l) != BLOCK_HOME_DEVICE) continue;
        Tensor buf;
        if (block_store_acquire(m->store, l, &buf, err) != 0) return -1;
        block_bind(m, l, &buf);
    }
    return 0;
}

int model_seal(Model *m, OwError *err) { return m->store ? block_store_seal(m->store, err) : 0; }

int model_block_acquire(Model *m, int l, OwError *err) {
    if (!m->store || !block_store_streams(m->store, l)) return 0;
    Tensor buf;
    if (block_store_acquire(m->store, l, &buf, err) != 0) return -1;
    block_bind(m, l, &buf);
    return 0;
}

void model_block_release(Model *m, int l) {
    if (!m->store || !block_store_streams(m->store, l)) return;
    block_store_release(m->store, l);
    block_bind(m, l, NULL);
}

int model_block_prefetch(Model *m, int l, OwError *err) {
    return m->store ? block_store_prefetch(m->store, l, err) : 0;
}

int model_block_pin(Model *m, int l, OwError *err) {
    if (!m->store || !block_store_streams(m->store, l)) return 0;
    Tensor buf;
    if (block_store_pin(m->store, l, &buf, err) != 0) return -1;
    block_bind(m, l, &buf);
    return 0;
}

int model_block_unpin(Model *m, int l, OwError *err) {
    if (!m->store || block_store_home(m->store, l) == BLOCK_HOME_DEVICE || block_store_streams(m->store, l)) return 0;
    Backend *be = m->be;
    for (int b = 0; b < BW_COUNT; b++) { /* an asynchronous update of its weights lands first */
        Param *p = model_block_param(m, l, (BlockWeight)b);
        if (p->ready_ticket >= 0) be->ops->copy_wait(be, p->ready_ticket);
        p->ready_ticket = -1;
    }
    if (block_store_unpin(m->store, l, err) != 0) return -1;
    block_bind(m, l, NULL);
    return 0;
}

/* Whether p is a weight of a block that is streamed (its w.data is bound only while acquired). */
static int streamed(const Model *m, const Param *p) {
    return m->store && p->kind == PK_BLOCK && block_store_streams(m->store, p->layer);
}

int model_param_download(Model *m, Param *p, void *dst, DType dtype, OwError *err) {
    int s = streamed(m, p);
    if (s && model_block_acquire(m, p->layer, err) != 0) return -1;
    m->be->ops->download(m->be, dst, dtype, &p->w);
    if (s) model_block_release(m, p->layer);
    return 0;
}

/* Block l staged on the device for writing (streamed blocks), bound. */
static int block_stage(Model *m, int l, OwError *err) {
    Tensor buf;
    if (block_store_stage(m->store, l, &buf, err) != 0) return -1;
    block_bind(m, l, &buf);
    return 0;
}

/* The staged block l back to its home, unbound. */
static int block_commit(Model *m, int l, OwError *err) {
    int rc = block_store_commit(m->store, l, err);
    if (block_store_streams(m->store, l)) block_bind(m, l, NULL);
    return rc;
}

int model_param_upload(Model *m, Param *p, const void *src, DType dtype, OwError *err) {
    int placed = m->store && p->kind == PK_BLOCK && block_store_home(m->store, p->layer) != BLOCK_HOME_DEVICE;
    if (!placed) {
        m->be->ops->upload(m->be, &p->w, src, dtype);
        return 0;
    }
    /* the block stays staged for the uploads of its other tensors; home when another block comes or at flush */
    if (m->staged_block != p->layer) {
        if (model_param_upload_flush(m, err) != 0) return -1;
        if (block_store_streams(m->store, p->layer) && block_stage(m, p->layer, err) != 0) return -1;
        m->staged_block = p->layer;
    }
    m->be->ops->upload(m->be, &p->w, src, dtype);
    return 0;
}

int model_param_upload_flush(Model *m, OwError *err) {
    if (!m->store || m->staged_block < 0) return 0;
    int l = m->staged_block;
    m->staged_block = -1;
    return block_commit(m, l, err);
}

/* The parameter table; weights allocated on be, or (placement) blocks in a BlockStore whose
 * device-home blocks are bound now; fill: norms 1 (placed streamed blocks: written by the caller). */
static int model_create_impl(Backend *be, const ModelConfig *cfg, const BlockStoreConfig *placement, Model **out,
                             OwError *err) {
    *out = NULL;
    if (model_config_validate(cfg, "model config", err) != 0) return -1;
    Model *m = ow_xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    m->be = be;
    host_mem_init(&m->host, 0);
    int64_t L = cfg->num_layers;
    m->nparams = (int)(1 + L * BW_COUNT + 1 + (cfg->tie_word_embeddings ? 0 : 1));
    m->params = ow_xcalloc((size_t)m->nparams, sizeof(Param));
    DType dt = be->param_dtype;
    int k = 0;
    Param *p = &m->params[k++];
    model_tensor_name(MT_EMBED, -1, p->name, sizeof p->name);
    p->kind = PK_EMBED;
    p->layer = -1;
    p->is_matrix = 1;
    p->w = tensor_2d(dt, cfg->vocab_size, cfg->hidden_size);
    for (int64_t l = 0; l < L; l++) {
        for (int b = 0; b < BW_COUNT; b++) {
            p = &m->params[k++];
            model_tensor_name(k_block_kind[b], (int)l, p->name, sizeof p->name);
            p->kind = PK_BLOCK;
            p->layer = (int)l;
            p->bw = (BlockWeight)b;
            p->is_matrix = b != BW_ATTN_NORM && b != BW_MLP_NORM;
            block_shape(cfg, (BlockWeight)b, &p->w, dt);
        }
    }
    p = &m->params[k++];
    model_tensor_name(MT_FINAL_NORM, -1, p->name, sizeof p->name);
    p->kind = PK_FINAL_NORM;
    p->layer = -1;
    p->w = tensor_1d(dt, cfg->hidden_size);
    if (!cfg->tie_word_embeddings) {
        p = &m->params[k++];
        model_tensor_name(MT_LM_HEAD, -1, p->name, sizeof p->name);
        p->kind = PK_LM_HEAD;
        p->layer = -1;
        p->is_matrix = 1;
        p->w = tensor_2d(dt, cfg->vocab_size, cfg->hidden_size);
    }
    OW_CHECK(k == m->nparams);
    m->embed = &m->params[0];
    m->final_norm = &m->params[1 + L * BW_COUNT];
    m->lm_head = cfg->tie_word_embeddings ? m->embed : &m->params[2 + L * BW_COUNT];
    for (int i = 0; i < m->nparams; i++) m->params[i].ready_ticket = -1;
    m->staged_block = -1;
    if (placement && place_blocks(m, placement, err) != 0) {
        model_free(m);
        return -1;
    }
    for (int i = 0; i < m->nparams; i++) {
        Param *q = &m->params[i];
        if (m->store && q->kind == PK_BLOCK) continue;
        if (be->ops->alloc(be, &q->w, MEM_WEIGHTS, q->name, err) != 0) {
            model_free(m);
            return -1;
        }
        if (!q->is_matrix) be->ops->fill(be, &q->w, 1.0f);
    }
    *out = m;
    return 0;
}

int model_create(Backend *be, const ModelConfig *cfg, Model **out, OwError *err) {
    return model_create_impl(be, cfg, NULL, out, err);
}

int model_create_placed(Backend *be, const ModelConfig *cfg, const BlockStoreConfig *placement, Model **out,
                        OwError *err) {
    return model_create_impl(be, cfg, placement, out, err);
}

void model_free(Model *m) {
    if (!m) return;
    model_acts_free(m);
    Backend *be = m->be;
    for (int i = 0; i < m->nparams; i++) {
        if (m->store && m->params[i].kind == PK_BLOCK)
            m->params[i].w.data = NULL; /* a view of the store's buffers */
        else
            be->ops->release(be, &m->params[i].w, MEM_WEIGHTS);
        if (!m->params[i].g_shared) be->ops->release(be, &m->params[i].g, MEM_GRADS);
        host_mem_free(&m->host, be, m->params[i].g_host);
    }
    block_store_free(m->store);
    be->ops->release(be, &m->rope_cos, MEM_OTHER);
    be->ops->release(be, &m->rope_sin, MEM_OTHER);
    be->ops->release(be, &m->erows.sel_buf[0], MEM_GRADS);
    be->ops->release(be, &m->erows.sel_buf[1], MEM_GRADS);
    be->ops->release(be, &m->erows.pos, MEM_GRADS);
    free(m->erows.slot_of_row);
    free(m->erows.row_of_slot);
    free(m->params);
    host_mem_release(&m->host);
    free(m);
}

Param *model_block_param(Model *m, int layer, BlockWeight bw) {
    OW_CHECK(layer >= 0 && layer < m->cfg.num_layers && bw >= 0 && bw < BW_COUNT);
    return &m->params[1 + (int64_t)layer * BW_COUNT + bw];
}

Param *model_find_param(Model *m, const char *name) {
    for (int i = 0; i < m->nparams; i++)
        if (strcmp(m->params[i].name, name) == 0) return &m->params[i];
    return NULL;
}

int model_grad_is_compact(const Model *m, const Param *p) {
    return p == m->embed && p->kind == PK_EMBED && m->lm_head != m->embed && m->erows.cap > 0 && p->g.data != NULL;
}

static void embed_rows_release(Model *m, Param *p) {
    m->be->ops->release(m->be, &p->g, MEM_GRADS);
    m->be->ops->release(m->be, &m->erows.sel_buf[0], MEM_GRADS);
    m->be->ops->release(m->be, &m->erows.sel_buf[1], MEM_GRADS);
    m->erows.sel.data = NULL;
    m->be->ops->release(m->be, &m->erows.pos, MEM_GRADS);
    m->erows.cap = m->erows.count = 0;
}

/* The compact embedding gradient [cap, C] and its row map (see EmbedRows). */
static int embed_rows_alloc(Model *m, Param *p, OwError *err) {
    Backend *be = m->be;
    EmbedRows *r = &m->erows;
    int64_t V = m->cfg.vocab_size;
    r->cap = m->embed_grad_rows < V ? m->embed_grad_rows : V;
    r->count = 0;
    p->g = tensor_2d(OW_F32, r->cap, m->cfg.hidden_size);
    r->sel_buf[0] = r->sel_buf[1] = tensor_1d(OW_I32, V);
    r->pos = tensor_1d(OW_I32, m->embed_grad_rows);
    if (be->ops->alloc(be, &p->g, MEM_GRADS, "gradient of the embedding (rows of the step's tokens)", err) != 0 ||
        be->ops->alloc(be, &r->sel_buf[0], MEM_GRADS, "embedding gradient row map", err) != 0 ||
        be->ops->alloc(be, &r->sel_buf[1], MEM_GRADS, "embedding gradient row map", err) != 0 ||
        be->ops->alloc(be, &r->pos, MEM_GRADS, "embedding gradient row map", err) != 0) {
        embed_rows_release(m, p);
        return -1;
    }
    free(r->slot_of_row);
    free(r->row_of_slot);
    r->slot_of_row = ow_xmalloc((size_t)V * sizeof(int32_t));
    for (int64_t i = 0; i < V; i++) r->slot_of_row[i] = -1;
    r->row_of_slot = ow_xmalloc((size_t)r->cap * sizeof(int32_t));
    r->cur = 0;
    r->sel = r->sel_buf[0];
    r->dirty = 1;
    r->complete = 0;
    return 0;
}

int model_set_trainable(Model *m, Param *p, int trainable, OwError *err) {
    if (trainable && !p->g.data) {
        if (p == m->embed && m->lm_head != m->embed && m->embed_grad_rows > 0) {
            if (embed_rows_alloc(m, p, err) != 0) return -1;
        } else if (p == m->lm_head && m->lm_head != m->embed && m->head_grad_host) {
            void *view = model_acts_head_grad(m);
            OW_CHECKF(view != NULL, "%s: model_prepare (with head_grad_host) must come before it becomes trainable",
                      p->name);
            p->g_host = host_mem_alloc(&m->host, m->be, (size_t)tensor_numel(&p->w) * sizeof(float), HOST_GRADIENTS, 1,
                                       "lm_head's gradient", err);
            if (!p->g_host) return ow_fail_prefix(err, "host memory for the gradient of %s", p->name);
            p->g = tensor_desc(OW_F32, p->w.ndim, p->w.shape);
            p->g.data = view;
            p->g_shared = 1;
            p->g_fresh = 1;
        } else {
            p->g = tensor_desc(OW_F32, p->w.ndim, p->w.shape);
            char what[128];
            snprintf(what, sizeof what, "gradient of %s", p->name);
            if (m->be->ops->alloc(m->be, &p->g, MEM_GRADS, what, err) != 0) return -1;
        }
    } else if (!trainable && p->g.data) {
        if (p->g_host) {
            host_mem_free(&m->host, m->be, p->g_host);
            p->g_host = NULL;
        }
        if (p->g_shared)
            p->g.data = NULL;
        else if (model_grad_is_compact(m, p))
            embed_rows_release(m, p);
        else
            m->be->ops->release(m->be, &p->g, MEM_GRADS);
        p->g_shared = 0;
    }
    p->trainable = trainable;
    return 0;
}

void model_zero_grads(Model *m) {
    for (int i = 0; i < m->nparams; i++) {
        Param *p = &m->params[i];
        if (p->g_host) {
            model_zero_grad_host(m, p);
            continue;
        }
        if (p->g.data) m->be->ops->fill(m->be, &p->g, 0.0f);
        p->g_fresh = 0;
    }
    model_embed_rows_reset(m);
}

void model_zero_grad_host(Model *m, Param *p) {
    OW_CHECK(p->g_host != NULL);
    m->be->ops->sync(m->be); /* an asynchronous update may still be reading it */
    memset(p->g_host, 0, (size_t)tensor_numel(&p->w) * sizeof(float));
    p->g_fresh = 1;
}

void model_embed_rows_reset(Model *m) {
    EmbedRows *r = &m->erows;
    if (!r->slot_of_row) return;
    for (int64_t s = 0; s < r->count; s++) r->slot_of_row[r->row_of_slot[s]] = -1;
    if (r->count) { /* the next step's map goes to the other buffer */
        r->cur ^= 1;
        r->sel = r->sel_buf[r->cur];
        r->dirty = 1;
    }
    r->count = 0;
    r->complete = 0;
}

int model_embed_rows_add(Model *m, const int32_t *ids, int64_t n, int32_t *pos_slot, OwError *err) {
    EmbedRows *r = &m->erows;
    int64_t V = m->cfg.vocab_size;
    for (int64_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= V)
            return ow_fail(err, "token id %d at position %lld is outside the vocabulary [0, %lld)", id, (long long)i,
                           (long long)V);
        int32_t s = r->slot_of_row[id];
        if (s < 0) {
            OW_CHECKF(!r->complete, "token %d was not registered by model_begin_step", id);
            if (r->count >= r->cap)
                return ow_fail(err,
                               "the step has more distinct tokens than the %lld rows of the compact embedding "
                               "gradient (set Model.embed_grad_rows to the step's token count)",
                               (long long)r->cap);
            s = (int32_t)r->count++;
            r->slot_of_row[id] = s;
            r->row_of_slot[s] = id;
            r->dirty = 1;
        }
        if (pos_slot) pos_slot[i] = s;
    }
    if (r->dirty) {
        m->be->ops->upload(m->be, &r->sel, r->slot_of_row, OW_I32);
        r->dirty = 0;
    }
    return 0;
}

int model_begin_step(Model *m, const int32_t *ids, int64_t n, OwError *err) {
    if (!model_grad_is_compact(m, m->embed)) return 0;
    if (model_embed_rows_add(m, ids, n, NULL, err) != 0) return -1;
    m->erows.complete = 1;
    return 0;
}

void model_grad_download(Model *m, const Param *p, float *dense) {
    OW_CHECK(p->g.data != NULL);
    if (p->g_host) { /* its home (the pool's view is reused once the backward moves on) */
        m->be->ops->sync(m->be);
        memcpy(dense, p->g_host, (size_t)tensor_numel(&p->w) * sizeof(float));
        return;
    }
    if (!model_grad_is_compact(m, p)) {
        m->be->ops->download(m->be, dense, OW_F32, &p->g);
        return;
    }
    const EmbedRows *r = &m->erows;
    int64_t C = m->cfg.hidden_size;
    float *rows = ow_xmalloc((size_t)tensor_numel(&p->g) * sizeof(float));
    m->be->ops->download(m->be, rows, OW_F32, &p->g);
    memset(dense, 0, (size_t)tensor_numel(&p->w) * sizeof(float));
    for (int64_t s = 0; s < r->count; s++)
        memcpy(dense + (int64_t)r->row_of_slot[s] * C, rows + s * C, (size_t)C * sizeof(float));
    free(rows);
}

int model_lowest_trainable_block(const Model *m) {
    for (int i = 0; i < m->nparams; i++) {
        const Param *p = &m->params[i];
        if (p->kind == PK_BLOCK && p->trainable) return p->layer;
    }
    return (int)m->cfg.num_layers;
}

static void init_param(Model *m, int i, uint64_t seed, double std) {
    Param *p = &m->params[i];
    if (p->is_matrix)
        m->be->ops->fill_normal(m->be, &p->w, rng_key_for(seed, 1000 + (uint64_t)i), (float)std);
    else
        m->be->ops->fill(m->be, &p->w, 1.0f);
}

int model_init_random(Model *m, uint64_t seed, double std, OwError *err) {
    for (int i = 0; i < m->nparams; i++) {
        Param *p = &m->params[i];
        if (!m->store || p->kind != PK_BLOCK) init_param(m, i, seed, std);
    }
    if (!m->store) return 0;
    for (int l = 0; l < m->cfg.num_layers; l++) {          /* a placed block at a time, then home */
        if (block_store_disk_valid(m->store, l)) continue; /* a reused store holds the same bytes */
        int staged = block_store_streams(m->store, l);
        if (staged && block_stage(m, l, err) != 0) return -1;
        for (int b = 0; b < BW_COUNT; b++)
            init_param(m, (int)(model_block_param(m, l, (BlockWeight)b) - m->params), seed, std);
        if (block_commit(m, l, err) != 0) return -1; /* a device home too: a new store file takes it */
    }
    return 0;
}

/* Uploads weights from opened safetensors (shapes checked, dtypes converted). */
static int model_load_weights(Model *m, const SafeTensors *st, const char *where, OwError *err) {
    for (int i = 0; i < m->nparams; i++) {
        if (ow_cancelled()) return ow_fail_cancelled(err, where);
        Param *p = &m->params[i];
        int placed = m->store && p->kind == PK_BLOCK && block_store_home(m->store, p->layer) != BLOCK_HOME_DEVICE;
        if (placed && block_store_disk_valid(m->store, p->layer)) continue; /* a reused store holds it */
        if (placed && p->bw == 0 && block_stage(m, p->layer, err) != 0) return -1;
        const StTensor *t = model_find_tensor(&m->cfg, st, p->name);
        if (!t)
            return ow_fail(err, "%s: missing tensor %s (hint: the weights do not match config.json)", where, p->name);
        int ok = t->ndim == p->w.ndim;
        for (int d = 0; ok && d < t->ndim; d++) ok = t->shape[d] == p->w.shape[d];
        if (!ok) {
            char want[64];
            char got[64] = "[";
            for (int d = 0; d < t->ndim; d++) {
                size_t n = strlen(got);
                snprintf(got + n, sizeof got - n, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
            }
            strncat(got, "]", sizeof got - strlen(got) - 1);
            return ow_fail(err, "%s: tensor %s has shape %s, config.json implies %s", where, p->name, got,
                           tensor_shape_str(&p->w, want, sizeof want));
        }
        if (!dtype_is_float(t->dtype))
            return ow_fail(err, "%s: tensor %s has dtype %s; weights must be F32, F16 or BF16", where, p->name,
                           dtype_name(t->dtype));
        m->be->ops->upload(m->be, &p->w, t->data, t->dtype);
        /* every block's last tensor, a device home's too: a new store file takes every block */
        int last = m->store && p->kind == PK_BLOCK && p->bw == BW_COUNT - 1;
        if (last && block_commit(m, p->layer, err) != 0) return -1;
    }
    return 0;
}

static int model_load_hf_impl(Backend *be, const char *dir, const BlockStoreConfig *placement, Model **out,
                              OwError *err) {
    *out = NULL;
    char *cfg_path = ow_path_join(dir, "config.json");
    ModelConfig cfg;
    int rc = model_config_load(cfg_path, &cfg, err);
    free(cfg_path);
    if (rc != 0) return -1;
    SafeTensors st;
    if (safetensors_open(dir, &st, err) != 0) return -1;
    Model *m;
    if (model_check_tensors(&cfg, &st, dir, err) != 0 || model_create_impl(be, &cfg, placement, &m, err) != 0) {
        safetensors_close(&st);
        return -1;
    }
    rc = model_load_weights(m, &st, dir, err);
    safetensors_close(&st);
    if (rc != 0) {
        model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

int model_load_hf(Backend *be, const char *dir, Model **out, OwError *err) {
    return model_load_hf_impl(be, dir, NULL, out, err);
}

int model_load_hf_placed(Backend *be, const char *dir, const BlockStoreConfig *placement, Model **out, OwError *err) {
    return model_load_hf_impl(be, dir, placement, out, err);
}
