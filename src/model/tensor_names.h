/* tensor_names.h: the Hugging Face parameter names and shapes of a
 * LLaMA/Mistral model, and the check of a safetensors checkpoint against them.
 *
 * The list is the single source of truth for which tensors a model has: the
 * loader, `owlore info` and the exporter all walk it. Order: that of the
 * transformers state_dict (so sharded exports split as save_pretrained does):
 * embedding, then per block q, k, v, o, gate, up, down, input_layernorm,
 * post_attention_layernorm, then the final norm and (untied only) lm_head.
 * The sum of the element counts equals model_config_param_count(). */
#ifndef OWLORE_MODEL_TENSOR_NAMES_H
#define OWLORE_MODEL_TENSOR_NAMES_H

#include "model/config.h"
#include "model/safetensors.h"

#define MODEL_TENSOR_NAME_MAX 96

typedef enum {
    MT_EMBED = 0,  /* model.embed_tokens.weight [vocab, hidden] */
    MT_ATTN_NORM,  /* model.layers.N.input_layernorm.weight [hidden] */
    MT_Q,          /* model.layers.N.self_attn.q_proj.weight [heads*head_dim, hidden] */
    MT_K,          /* model.layers.N.self_attn.k_proj.weight [kv_heads*head_dim, hidden] */
    MT_V,          /* model.layers.N.self_attn.v_proj.weight [kv_heads*head_dim, hidden] */
    MT_O,          /* model.layers.N.self_attn.o_proj.weight [hidden, heads*head_dim] */
    MT_MLP_NORM,   /* model.layers.N.post_attention_layernorm.weight [hidden] */
    MT_GATE,       /* model.layers.N.mlp.gate_proj.weight [intermediate, hidden] */
    MT_UP,         /* model.layers.N.mlp.up_proj.weight [intermediate, hidden] */
    MT_DOWN,       /* model.layers.N.mlp.down_proj.weight [hidden, intermediate] */
    MT_FINAL_NORM, /* model.norm.weight [hidden] */
    MT_LM_HEAD,    /* lm_head.weight [vocab, hidden] (absent or aliased when tied) */
    MT_KIND_COUNT
} ModelTensorKind;

#define MODEL_TENSORS_PER_BLOCK 9

typedef struct ModelTensorSpec {
    char name[MODEL_TENSOR_NAME_MAX];
    ModelTensorKind kind;
    int layer; /* block index; -1 outside the blocks */
    int ndim;  /* 1 or 2 */
    int64_t shape[2];
} ModelTensorSpec;

/* "model.layers.3.mlp.up_proj.weight" into buf (layer ignored outside blocks). */
void model_tensor_name(ModelTensorKind kind, int layer, char *buf, size_t cap);
/* Shape of one parameter under cfg; returns ndim. */
int model_tensor_shape(const ModelConfig *cfg, ModelTensorKind kind, int64_t shape[2]);
/* Number of parameter tensors (lm_head only when untied). */
int model_tensor_count(const ModelConfig *cfg);
/* Heap array of model_tensor_count(cfg) specs in the order above; *n gets the count. */
ModelTensorSpec *model_expected_tensors(const ModelConfig *cfg, int *n);

/* The stored tensor behind an expected name: aliases followed, and with tied
 * embeddings a stored lm_head.weight stands for the embedding when the
 * embedding itself is absent (as transformers loads it). NULL when absent. */
const StTensor *model_find_tensor(const ModelConfig *cfg, const SafeTensors *st, const char *name);

/* The one validation of weights against a config (info, train, eval, export):
 * every expected tensor present (model_find_tensor) with the expected shape,
 * a float dtype and only finite values (a NaN or Inf is named with its file),
 * and no unexpected tensor (a bias, a layer beyond num_hidden_layers...;
 * rotary_emb.inv_freq buffers are ignored, and when tied a stored
 * lm_head.weight must have the embedding's shape). `where` names the weights
 * in messages: the first three problems, and how many more. */
int model_check_tensors(const ModelConfig *cfg, const SafeTensors *st, const char *where, OwError *err);
/* Parameters the model uses as stored: the element counts of the distinct
 * tensors behind the expected names (a tied/aliased tensor counts once). */
int64_t model_stored_param_count(const ModelConfig *cfg, const SafeTensors *st);

#endif
