/* tensor_names.c: see tensor_names.h. */
#include "model/tensor_names.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const k_block_suffix[MT_KIND_COUNT] = {
    [MT_ATTN_NORM] = "input_layernorm.weight", [MT_Q] = "self_attn.q_proj.weight",
    [MT_K] = "self_attn.k_proj.weight",        [MT_V] = "self_attn.v_proj.weight",
    [MT_O] = "self_attn.o_proj.weight",        [MT_MLP_NORM] = "post_attention_layernorm.weight",
    [MT_GATE] = "mlp.gate_proj.weight",        [MT_UP] = "mlp.up_proj.weight",
    [MT_DOWN] = "mlp.down_proj.weight",
};

void model_tensor_name(ModelTensorKind kind, int layer, char *buf, size_t cap) {
    OW_CHECK(kind >= 0 && kind < MT_KIND_COUNT);
    switch (kind) {
    case MT_EMBED: snprintf(buf, cap, "model.embed_tokens.weight"); break;
    case MT_FINAL_NORM: snprintf(buf, cap, "model.norm.weight"); break;
    case MT_LM_HEAD: snprintf(buf, cap, "lm_head.weight"); break;
    default: snprintf(buf, cap, "model.layers.%d.%s", layer, k_block_suffix[kind]); break;
    }
}

int model_tensor_shape(const ModelConfig *cfg, ModelTensorKind kind, int64_t shape[2]) {
    int64_t h = cfg->hidden_size, q = cfg->num_heads * cfg->head_dim, kv = cfg->num_kv_heads * cfg->head_dim;
    int64_t in = cfg->intermediate_size, v = cfg->vocab_size;
    shape[1] = 0;
    switch (kind) {
    case MT_EMBED:
    case MT_LM_HEAD: shape[0] = v, shape[1] = h; return 2;
    case MT_ATTN_NORM:
    case MT_MLP_NORM:
    case MT_FINAL_NORM: shape[0] = h; return 1;
    case MT_Q: shape[0] = q, shape[1] = h; return 2;
    case MT_K:
    case MT_V: shape[0] = kv, shape[1] = h; return 2;
    case MT_O: shape[0] = h, shape[1] = q; return 2;
    case MT_GATE:
    case MT_UP: shape[0] = in, shape[1] = h; return 2;
    case MT_DOWN: shape[0] = h, shape[1] = in; return 2;
    default: OW_CHECKF(0, "bad tensor kind %d", (int)kind);
    }
    return 0;
}

int model_tensor_count(const ModelConfig *cfg) {
    return 1 + MODEL_TENSORS_PER_BLOCK * (int)cfg->num_layers + 1 + (cfg->tie_word_embeddings ? 0 : 1);
}

static void fill(ModelTensorSpec *s, const ModelConfig *cfg, ModelTensorKind kind, int layer) {
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->layer = layer;
    model_tensor_name(kind, layer, s->name, sizeof s->name);
    s->ndim = model_tensor_shape(cfg, kind, s->shape);
}

ModelTensorSpec *model_expected_tensors(const ModelConfig *cfg, int *n) {
    static const ModelTensorKind block[MODEL_TENSORS_PER_BLOCK] = {MT_Q,  MT_K,    MT_V,         MT_O,       MT_GATE,
                                                                   MT_UP, MT_DOWN, MT_ATTN_NORM, MT_MLP_NORM};
    int count = model_tensor_count(cfg), k = 0;
    ModelTensorSpec *s = ow_xcalloc((size_t)count, sizeof *s);
    fill(&s[k++], cfg, MT_EMBED, -1);
    for (int l = 0; l < (int)cfg->num_layers; l++)
        for (int j = 0; j < MODEL_TENSORS_PER_BLOCK; j++) fill(&s[k++], cfg, block[j], l);
    fill(&s[k++], cfg, MT_FINAL_NORM, -1);
    if (!cfg->tie_word_embeddings) fill(&s[k++], cfg, MT_LM_HEAD, -1);
    OW_CHECK(k == count);
    *n = count;
    return s;
}

static void shape_str(int ndim, const int64_t *shape, char *buf, size_t cap) {
    size_t off = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && off < cap; i++)
        off += (size_t)snprintf(buf + off, cap - off, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (off < cap) snprintf(buf + off, cap - off, "]");
}

static int same_shape(const StTensor *t, int ndim, const int64_t *shape) {
    if (t->ndim != ndim) return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i]) return 0;
    return 1;
}

/* Collects problems: the first few are spelled out, the rest counted. */
#define PROBLEMS_SHOWN 3
typedef struct Problems {
    char text[PROBLEMS_SHOWN * 300];
    int count;
} Problems;

static void problem(Problems *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(Problems *p, const char *fmt, ...) {
    if (p->count++ < PROBLEMS_SHOWN) {
        size_t off = strlen(p->text);
        if (off) off += (size_t)snprintf(p->text + off, sizeof p->text - off, "; ");
        if (off >= sizeof p->text) return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->text + off, sizeof p->text - off, fmt, ap);
        va_end(ap);
    }
}

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

const StTensor *model_find_tensor(const ModelConfig *cfg, const SafeTensors *st, const char *name) {
    const StTensor *t = safetensors_find(st, name);
    char embed[64];
    model_tensor_name(MT_EMBED, -1, embed, sizeof embed);
    if (!t && cfg->tie_word_embeddings && strcmp(name, embed) == 0) t = safetensors_find(st, "lm_head.weight");
    return t;
}

int model_check_tensors(const ModelConfig *cfg, const SafeTensors *st, const char *where, OwError *err) {
    int n;
    ModelTensorSpec *spec = model_expected_tensors(cfg, &n);
    Problems p = {{0}, 0};
    char a[96], b[96];
    for (int i = 0; i < n; i++) {
        const StTensor *t = model_find_tensor(cfg, st, spec[i].name);
        shape_str(spec[i].ndim, spec[i].shape, b, sizeof b);
        int64_t bad = -1;
        if (!t) {
            problem(&p, "missing tensor %s (expected shape %s)", spec[i].name, b);
        } else if (!same_shape(t, spec[i].ndim, spec[i].shape)) {
            shape_str(t->ndim, t->shape, a, sizeof a);
            problem(&p, "tensor %s has shape %s, but the config implies %s", spec[i].name, a, b);
        } else if (!dtype_is_float(t->dtype)) {
            problem(&p, "tensor %s has dtype %s (expected F32, BF16 or F16)", spec[i].name, dtype_name(t->dtype));
        } else if ((bad = dtype_first_nonfinite(t->data, t->dtype, (size_t)st_tensor_numel(t))) >= 0) {
            float v;
            dtype_convert(&v, OW_F32, (const char *)t->data + (size_t)bad * dtype_size(t->dtype), t->dtype, 1);
            problem(&p, "tensor %s holds %s at element %lld (in %s; hint: the weights are corrupt or diverged)",
                    spec[i].name,
                    v != v  ? "NaN"
                    : v > 0 ? "+Inf"
                            : "-Inf",
                    (long long)bad, st->files[t->file].path);
        }
    }
    const char **names = ow_xmalloc((size_t)n * sizeof *names);
    for (int i = 0; i < n; i++) names[i] = spec[i].name;
    qsort(names, (size_t)n, sizeof *names, cmp_cstr);
    for (int i = 0; i < st->ntensors; i++) {
        const StTensor *t = &st->tensors[i];
        if (bsearch(&t->name, names, (size_t)n, sizeof *names, cmp_cstr)) continue;
        if (ends_with(t->name, ".rotary_emb.inv_freq")) continue; /* a buffer old checkpoints carry */
        if (cfg->tie_word_embeddings && strcmp(t->name, "lm_head.weight") == 0) {
            int64_t shape[2];
            int nd = model_tensor_shape(cfg, MT_LM_HEAD, shape);
            if (!same_shape(t, nd, shape)) {
                shape_str(t->ndim, t->shape, a, sizeof a);
                shape_str(nd, shape, b, sizeof b);
                problem(&p, "tensor lm_head.weight has shape %s, but the config implies %s", a, b);
            }
            continue;
        }
        problem(&p, "unexpected tensor %s (a bias, or more layers than num_hidden_layers = %lld?)", t->name,
                (long long)cfg->num_layers);
    }
    free(names);
    free(spec);
    if (p.count == 0) return 0;
    if (p.count <= PROBLEMS_SHOWN)
        return ow_fail(err, "%s: %s (hint: the weights do not match config.json)", where, p.text);
    int more = p.count - PROBLEMS_SHOWN;
    return ow_fail(err, "%s: %s; and %d more problem%s (hint: the weights do not match config.json)", where, p.text,
                   more, more > 1 ? "s" : "");
}

static int cmp_ptr(const void *a, const void *b) {
    uintptr_t x = (uintptr_t) * (const void *const *)a, y = (uintptr_t) * (const void *const *)b;
    return (x > y) - (x < y);
}

int64_t model_stored_param_count(const ModelConfig *cfg, const SafeTensors *st) {
    int n;
    ModelTensorSpec *spec = model_expected_tensors(cfg, &n);
    const StTensor **seen = ow_xmalloc((size_t)n * sizeof *seen);
    int k = 0;
    for (int i = 0; i < n; i++) {
        const StTensor *t = model_find_tensor(cfg, st, spec[i].name);
        if (t) seen[k++] = t;
    }
    qsort(seen, (size_t)k, sizeof *seen, cmp_ptr);
    int64_t total = 0;
    for (int i = 0; i < k; i++)
        if (i == 0 || seen[i] != seen[i - 1]) total += st_tensor_numel(seen[i]);
    free(seen);
    free(spec);
    return total;
}
