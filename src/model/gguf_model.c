/* gguf_model.c: see gguf_model.h.
 *
 * Owns: the llama.* keys -> ModelConfig mapping, the llama.cpp -> HF tensor
 * names, the shape checks, and the fetch that dequantises one tensor at a
 * time. Invariant of an open GgufModel: tensors[i] has the HF shape of
 * src[i] (reversed ne), and that shape matches cfg. */
#include "model/gguf_model.h"

#include "model/gguf_quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int key_count(const Gguf *g, const char *key, int64_t dflt, int64_t *out, OwError *err) {
    if (dflt >= 0 && !gguf_find_kv(g, key)) {
        *out = dflt;
        return 0;
    }
    return gguf_get_count(g, key, out, err);
}

static int check_arch(const Gguf *g, OwError *err) {
    char *arch = NULL;
    if (gguf_get_strdup(g, "general.architecture", &arch, err) != 0) return -1;
    int rc = 0;
    if (strcmp(arch, "llama") != 0)
        rc = ow_fail(err,
                     "%s: key \"general.architecture\" is \"%s\"; owlore converts \"llama\" (LLaMA-family models; "
                     "Mistral files use it too)",
                     g->file.path, arch);
    free(arch);
    const GgufKv *rs = gguf_find_kv(g, "llama.rope.scaling.type");
    if (rc == 0 && rs) {
        GgufStr s = {0};
        if (gguf_get_str(g, "llama.rope.scaling.type", &s, err) != 0) return -1;
        if (!(s.len == 4 && memcmp(s.s, "none", 4) == 0))
            rc = ow_fail(err,
                         "%s: key \"llama.rope.scaling.type\" is \"%.*s\": rope scaling is not converted (hint: "
                         "transformers' GGUF loading drops it too; use the model's Hugging Face release)",
                         g->file.path, (int)(s.len < 64 ? s.len : 64), s.s);
    }
    return rc;
}

static int vocab_size(const Gguf *g, int64_t *out, OwError *err) {
    if (gguf_find_kv(g, "llama.vocab_size")) return gguf_get_count(g, "llama.vocab_size", out, err);
    const GgufKv *t = gguf_find_kv(g, "tokenizer.ggml.tokens");
    if (!t || t->type != GGUF_TYPE_ARRAY)
        return ow_fail(err, "%s: neither \"llama.vocab_size\" nor \"tokenizer.ggml.tokens\" gives the vocabulary size",
                       g->file.path);
    *out = (int64_t)t->count;
    return 0;
}

static int token_id(const Gguf *g, const char *key, int64_t *out, OwError *err) {
    *out = -1;
    return gguf_find_kv(g, key) ? gguf_get_count(g, key, out, err) : 0;
}

int gguf_model_config(const Gguf *g, ModelConfig *cfg, OwError *err) {
    memset(cfg, 0, sizeof *cfg);
    if (check_arch(g, err) != 0) return -1;
    snprintf(cfg->architecture, sizeof cfg->architecture, "LlamaForCausalLM");
    snprintf(cfg->model_type, sizeof cfg->model_type, "llama");
    double eps, theta = 10000.0;
    if (key_count(g, "llama.embedding_length", -1, &cfg->hidden_size, err) != 0 ||
        key_count(g, "llama.block_count", -1, &cfg->num_layers, err) != 0 ||
        key_count(g, "llama.attention.head_count", -1, &cfg->num_heads, err) != 0 ||
        key_count(g, "llama.feed_forward_length", -1, &cfg->intermediate_size, err) != 0 ||
        key_count(g, "llama.context_length", -1, &cfg->max_position_embeddings, err) != 0 ||
        gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &eps, err) != 0)
        return -1;
    if (key_count(g, "llama.attention.head_count_kv", cfg->num_heads, &cfg->num_kv_heads, err) != 0) return -1;
    int64_t hd = cfg->num_heads > 0 ? cfg->hidden_size / cfg->num_heads : 0;
    if (key_count(g, "llama.rope.dimension_count", hd, &cfg->head_dim, err) != 0) return -1;
    if (gguf_find_kv(g, "llama.rope.freq_base") && gguf_get_float(g, "llama.rope.freq_base", &theta, err) != 0)
        return -1;
    cfg->rms_norm_eps = eps;
    cfg->rope_theta = theta;
    if (vocab_size(g, &cfg->vocab_size, err) != 0) return -1;
    if (token_id(g, "tokenizer.ggml.bos_token_id", &cfg->bos_token_id, err) != 0 ||
        token_id(g, "tokenizer.ggml.eos_token_id", &cfg->eos_token_id, err) != 0)
        return -1;
    cfg->tie_word_embeddings = gguf_find_tensor(g, "output.weight") == NULL;
    snprintf(cfg->torch_dtype, sizeof cfg->torch_dtype, "float32");
    return model_config_validate(cfg, g->file.path, err);
}

/* ------------------------------------------------------------------ names */

typedef struct NameMap {
    const char *gguf; /* suffix after "blk.N." (or the whole name for globals) */
    const char *hf;   /* suffix after "model.layers.N." */
} NameMap;

static const NameMap k_block_names[] = {
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
    {"attn_norm.weight", "input_layernorm.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
};
#define N_BLOCK_NAMES ((int)(sizeof k_block_names / sizeof k_block_names[0]))

static const NameMap k_global_names[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};

/* The HF shape (outermost first) a tensor must have; rows 0 for a norm (1-d: cols only). */
static void expected_shape(const ModelConfig *c, int slot, const char *global, int64_t *rows, int64_t *cols) {
    int64_t q = c->num_heads * c->head_dim, kv = c->num_kv_heads * c->head_dim, h = c->hidden_size;
    int64_t in = c->intermediate_size;
    *rows = 0;
    *cols = h;
    if (global) {
        if (strcmp(global, "output_norm.weight") != 0) *rows = c->vocab_size;
        return;
    }
    switch (slot) {
    case 0: *rows = q; break; /* q_proj [q, h] */
    case 1:
    case 2: *rows = kv; break;           /* k_proj, v_proj [kv, h] */
    case 3: *rows = h, *cols = q; break; /* o_proj [h, q] */
    case 4:
    case 5: *rows = in; break;            /* gate_proj, up_proj [in, h] */
    case 6: *rows = h, *cols = in; break; /* down_proj [h, in] */
    default: break;                       /* the norms [h] */
    }
}

/* The HF name of a GGUF tensor (heap) and its slot (block index, name slot), or NULL. */
static char *hf_name(const char *name, int64_t nlayers, int *block, int *slot, const char **global) {
    *block = -1;
    *slot = -1;
    *global = NULL;
    for (size_t i = 0; i < sizeof k_global_names / sizeof k_global_names[0]; i++)
        if (strcmp(name, k_global_names[i].gguf) == 0) {
            *global = k_global_names[i].gguf;
            return ow_xstrdup(k_global_names[i].hf);
        }
    long long n;
    int used = 0;
    if (sscanf(name, "blk.%lld.%n", &n, &used) != 1 || used == 0 || n < 0 || n >= nlayers) return NULL;
    char num[24];
    snprintf(num, sizeof num, "%lld", n);
    if (strncmp(name + 4, num, strlen(num)) != 0 || name[4 + strlen(num)] != '.') return NULL; /* "blk.01." */
    for (int s = 0; s < N_BLOCK_NAMES; s++)
        if (strcmp(name + used, k_block_names[s].gguf) == 0) {
            char buf[256];
            snprintf(buf, sizeof buf, "model.layers.%lld.%s", n, k_block_names[s].hf);
            *block = (int)n;
            *slot = s;
            return ow_xstrdup(buf);
        }
    return NULL;
}

/* ------------------------------------------------------------------ fetch */

/* Undoes llama.cpp's permute: rows (h, b, a) -> (h, a, b) with b < dim, a < 2, per head h. */
static void unpermute_rows(const float *in, float *out, int64_t rows, int64_t cols, int64_t heads) {
    int64_t dim = rows / heads / 2;
    for (int64_t h = 0; h < heads; h++)
        for (int64_t a = 0; a < 2; a++)
            for (int64_t b = 0; b < dim; b++)
                memcpy(out + ((h * 2 + a) * dim + b) * cols, in + (h * 2 * dim + b * 2 + a) * cols,
                       (size_t)cols * sizeof *out);
}

int gguf_model_tensor_f32(const GgufModel *m, int i, float *dst, OwError *err) {
    const GgufTensor *t = m->src[i];
    char what[512];
    snprintf(what, sizeof what, "%s: tensor \"%s\"", m->g.file.path, t->name);
    int heads = m->permute_heads[i];
    float *buf = heads ? ow_try_malloc((size_t)t->numel * sizeof *buf, t->name, err) : dst;
    if (!buf) return -1;
    int rc = ggml_dequantize(t->type, t->data, buf, t->numel, what, err);
    if (rc == 0 && heads) unpermute_rows(buf, dst, t->ne[1], t->ne[0], heads);
    if (heads) free(buf);
    return rc;
}

static int fetch_tensor(void *ctx, int i, void *dst, size_t nbytes, OwError *err) {
    GgufModel *m = ctx;
    const GgufTensor *t = m->src[i];
    OW_CHECK(nbytes == (size_t)t->numel * dtype_size(m->dtype));
    int rc;
    if (m->dtype == OW_F32) {
        rc = gguf_model_tensor_f32(m, i, dst, err);
    } else {
        float *f = ow_try_malloc((size_t)t->numel * sizeof *f, t->name, err);
        if (!f) return -1;
        rc = gguf_model_tensor_f32(m, i, f, err);
        if (rc == 0) dtype_convert(dst, m->dtype, f, OW_F32, (size_t)t->numel);
        free(f);
    }
    m->fetched++;
    if (rc == 0 && m->progress) m->progress(m->progress_ctx, m->fetched, m->ntensors, m->names[i]);
    return rc;
}

/* ------------------------------------------------------------------- open */

static int check_shape(const GgufModel *m, const GgufTensor *t, int slot, const char *global, OwError *err) {
    int64_t rows, cols;
    expected_shape(&m->cfg, slot, global, &rows, &cols);
    int nd = rows ? 2 : 1;
    if (t->n_dims == nd && t->ne[0] == cols && (nd == 1 || t->ne[1] == rows)) return 0;
    char got[96] = "", want[64];
    for (int d = t->n_dims - 1, k = 0; d >= 0; d--)
        k += snprintf(got + k, sizeof got - (size_t)k, d == t->n_dims - 1 ? "%lld" : ", %lld", (long long)t->ne[d]);
    if (rows)
        snprintf(want, sizeof want, "%lld, %lld", (long long)rows, (long long)cols);
    else
        snprintf(want, sizeof want, "%lld", (long long)cols);
    return ow_fail(err,
                   "%s: tensor \"%s\" has the shape [%s], but the config's sizes make it [%s] (hint: the "
                   "metadata does not describe these weights)",
                   m->g.file.path, t->name, got, want);
}

/* Maps tensor i of the file; marks it in seen (per block and slot, then the globals). */
static int add_tensor(GgufModel *m, const GgufTensor *t, char *seen, OwError *err) {
    int block, slot;
    const char *global;
    char *name = hf_name(t->name, m->cfg.num_layers, &block, &slot, &global);
    if (!name)
        return ow_fail(err,
                       "%s: tensor \"%s\" has no LLaMA counterpart owlore knows (hint: owlore converts the "
                       "blk.N.{attn_q,attn_k,attn_v,attn_output,ffn_gate,ffn_up,ffn_down,attn_norm,ffn_norm}, "
                       "token_embd, output_norm and output tensors of %lld blocks)",
                       m->g.file.path, t->name, (long long)m->cfg.num_layers);
    int k = m->ntensors++;
    m->names[k] = name;
    m->src[k] = t;
    int si = global ? (int)(m->cfg.num_layers * N_BLOCK_NAMES) + (int)(strcmp(global, "token_embd.weight") != 0) +
                          (int)(strcmp(global, "output.weight") == 0)
                    : block * N_BLOCK_NAMES + slot;
    seen[si] = 1;
    if (check_shape(m, t, slot, global, err) != 0) return -1;
    StWriteTensor *w = &m->tensors[k];
    w->name = name;
    w->dtype = m->dtype;
    w->ndim = t->n_dims;
    for (int d = 0; d < t->n_dims; d++) w->shape[d] = t->ne[t->n_dims - 1 - d];
    w->fetch = fetch_tensor;
    w->fetch_ctx = m;
    w->fetch_index = k;
    m->permute_heads[k] = slot == 0 ? (int)m->cfg.num_heads : slot == 1 ? (int)m->cfg.num_kv_heads : 0;
    return 0;
}

static int check_complete(const GgufModel *m, const char *seen, OwError *err) {
    int64_t nb = m->cfg.num_layers * N_BLOCK_NAMES;
    for (int64_t i = 0; i < nb; i++)
        if (!seen[i])
            return ow_fail(err, "%s: tensor \"blk.%lld.%s\" is missing (hint: the file is incomplete)", m->g.file.path,
                           (long long)(i / N_BLOCK_NAMES), k_block_names[i % N_BLOCK_NAMES].gguf);
    for (int i = 0; i < 2; i++)
        if (!seen[nb + i])
            return ow_fail(err, "%s: tensor \"%s\" is missing (hint: the file is incomplete)", m->g.file.path,
                           k_global_names[i].gguf);
    return 0;
}

int gguf_model_open(const char *path, DType dtype, GgufModel *m, OwError *err) {
    memset(m, 0, sizeof *m);
    OW_CHECK(dtype == OW_F32 || dtype == OW_BF16);
    m->dtype = dtype;
    if (gguf_open(path, &m->g, err) != 0) return -1;
    int n = m->g.ntensors, rc = gguf_model_config(&m->g, &m->cfg, err);
    m->tensors = ow_xcalloc((size_t)(n > 0 ? n : 1), sizeof *m->tensors);
    m->names = ow_xcalloc((size_t)(n > 0 ? n : 1), sizeof *m->names);
    m->src = ow_xcalloc((size_t)(n > 0 ? n : 1), sizeof *m->src);
    m->permute_heads = ow_xcalloc((size_t)(n > 0 ? n : 1), sizeof *m->permute_heads);
    if (rc == 0 && m->cfg.num_layers > n) /* bounds `seen`; check_complete names the first missing tensor */
        rc = ow_fail(err, "%s: key \"llama.block_count\" is %lld, but the file has only %d tensors", path,
                     (long long)m->cfg.num_layers, n);
    char *seen = rc == 0 ? ow_xcalloc((size_t)(m->cfg.num_layers * N_BLOCK_NAMES + 3), 1) : NULL;
    for (int i = 0; rc == 0 && i < n; i++) rc = add_tensor(m, &m->g.tensors[i], seen, err);
    if (rc == 0) rc = check_complete(m, seen, err);
    free(seen);
    if (rc != 0) gguf_model_close(m);
    return rc;
}

void gguf_model_close(GgufModel *m) {
    for (int i = 0; i < m->ntensors; i++) free(m->names[i]);
    free(m->names);
    free(m->tensors);
    free(m->src);
    free(m->permute_heads);
    gguf_close(&m->g);
    memset(m, 0, sizeof *m);
}
