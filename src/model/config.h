/* config.h: the model configuration, read from a Hugging Face config.json
 * (LlamaForCausalLM, MistralForCausalLM) or a preset in configs/models/.
 *
 * Invariants after model_config_load / model_config_from_json succeed:
 * every size is positive, hidden_size == num_heads * head_dim unless
 * head_dim is given explicitly, num_heads % num_kv_heads == 0, head_dim even.
 * Keys whose values would change the math in a way owlore does not implement
 * (attention/MLP bias, another activation, another rope scaling type,
 * dropout during training) are refused, never ignored. */
#ifndef OWLORE_MODEL_CONFIG_H
#define OWLORE_MODEL_CONFIG_H

#include "core/error.h"

#include <cjson/cJSON.h>
#include <stdint.h>

typedef enum { ROPE_SCALING_NONE = 0, ROPE_SCALING_LLAMA3 = 1 } RopeScalingType;

typedef struct ModelConfig {
    char architecture[64]; /* "LlamaForCausalLM" or "MistralForCausalLM" */
    char model_type[32];   /* "llama" or "mistral" */
    int64_t vocab_size;
    int64_t hidden_size;
    int64_t intermediate_size;
    int64_t num_layers;   /* num_hidden_layers */
    int64_t num_heads;    /* num_attention_heads */
    int64_t num_kv_heads; /* num_key_value_heads (defaults to num_heads) */
    int64_t head_dim;     /* explicit or hidden_size / num_heads */
    int64_t max_position_embeddings;
    double rms_norm_eps;
    double rope_theta;
    RopeScalingType rope_scaling;
    double rope_factor; /* llama3 scaling */
    double rope_low_freq_factor;
    double rope_high_freq_factor;
    int64_t rope_original_max_pos; /* original_max_position_embeddings */
    int tie_word_embeddings;
    int64_t bos_token_id;   /* -1 when absent */
    int64_t eos_token_id;   /* -1 when absent (first of a list) */
    int64_t sliding_window; /* Mistral; 0 when absent/null */
    char torch_dtype[16];   /* "float32", "bfloat16", "float16" or "" */
} ModelConfig;

/* Reads config.json at `path`. */
int model_config_load(const char *path, ModelConfig *cfg, OwError *err);
/* Parses an already-parsed config; `where` names the file in messages. */
int model_config_from_json(const cJSON *root, const char *where, ModelConfig *cfg, OwError *err);
/* Checks sizes and relations; `where` names the source in messages. */
int model_config_validate(const ModelConfig *cfg, const char *where, OwError *err);
/* A config.json object that transformers loads as the same model. */
cJSON *model_config_to_json(const ModelConfig *cfg);
/* Parameters, counting tied embeddings once. */
int64_t model_config_param_count(const ModelConfig *cfg);
/* Parameters of one decoder block (7 linears + 2 norms). */
int64_t model_config_block_param_count(const ModelConfig *cfg);

#endif
