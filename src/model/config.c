/* config.c: see config.h. Owns the mapping between Hugging Face config.json
 * keys and ModelConfig, and the list of keys whose values owlore refuses.
 *
 * Both spellings transformers has used are read: rope_theta + rope_scaling
 * (4.x) and rope_parameters (5.x), torch_dtype (4.x) and dtype (5.x). The
 * writer emits the 4.x spelling, which both versions load. */
#include "model/config.h"

#include "core/json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Sanity caps that keep every product in the parameter count inside int64. */
#define CFG_MAX_DIM ((int64_t)1 << 20) /* hidden, intermediate, heads * head_dim */
#define CFG_MAX_VOCAB ((int64_t)1 << 24)
#define CFG_MAX_LAYERS ((int64_t)1 << 12)
#define CFG_MAX_POS ((int64_t)1 << 30)

static const char *const k_hint_arch = "owlore implements LlamaForCausalLM and MistralForCausalLM";

static int get_arch(const cJSON *root, const char *where, ModelConfig *cfg, OwError *err) {
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const char *mt = NULL;
    if (json_get_str(root, "model_type", 0, &mt, where, err) != 0) return -1;
    if (mt) {
        if (strcmp(mt, "llama") != 0 && strcmp(mt, "mistral") != 0)
            return ow_fail(err, "%s: unknown model_type \"%s\" (hint: %s; model_type must be \"llama\" or \"mistral\")",
                           where, mt, k_hint_arch);
        snprintf(cfg->model_type, sizeof cfg->model_type, "%s", mt);
    }
    if (!archs || cJSON_IsNull(archs)) {
        if (!mt)
            return ow_fail(err, "%s: neither \"architectures\" nor \"model_type\" is given (hint: %s)", where,
                           k_hint_arch);
        snprintf(cfg->architecture, sizeof cfg->architecture, "%s",
                 strcmp(mt, "mistral") == 0 ? "MistralForCausalLM" : "LlamaForCausalLM");
        return 0;
    }
    if (!cJSON_IsArray(archs) || cJSON_GetArraySize(archs) < 1)
        return ow_fail(err, "%s: key \"architectures\" must be a non-empty list of strings", where);
    const cJSON *a;
    cJSON_ArrayForEach(a, archs) {
        if (!cJSON_IsString(a)) return ow_fail(err, "%s: key \"architectures\" must be a list of strings", where);
        const char *name = a->valuestring;
        if (strcmp(name, "LlamaForCausalLM") != 0 && strcmp(name, "MistralForCausalLM") != 0)
            return ow_fail(err, "%s: unknown architecture \"%s\" in key \"architectures\" (hint: %s)", where, name,
                           k_hint_arch);
        if (cfg->architecture[0] && strcmp(cfg->architecture, name) != 0)
            return ow_fail(err, "%s: key \"architectures\" lists both %s and %s (hint: give one architecture)", where,
                           cfg->architecture, name);
        snprintf(cfg->architecture, sizeof cfg->architecture, "%s", name);
    }
    if (!mt)
        snprintf(cfg->model_type, sizeof cfg->model_type, "%s",
                 strcmp(cfg->architecture, "MistralForCausalLM") == 0 ? "mistral" : "llama");
    return 0;
}

/* A token id: an integer, null, or a list of integers (the first is taken). */
static int get_token_id(const cJSON *root, const char *key, int64_t *out, const char *where, OwError *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = -1;
    if (!it || cJSON_IsNull(it)) return 0;
    if (cJSON_IsArray(it)) {
        const cJSON *first = cJSON_GetArrayItem(it, 0);
        if (!first) return 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, it) {
            if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 0)
                return ow_fail(err, "%s: key \"%s\" must be a non-negative integer or a list of them", where, key);
        }
        *out = (int64_t)first->valuedouble;
        return 0;
    }
    if (json_get_int(root, key, 1, out, where, err) != 0) return -1;
    if (*out < 0)
        return ow_fail(err, "%s: key \"%s\" must be a non-negative integer, got %lld", where, key, (long long)*out);
    return 0;
}

static int refuse_true(const cJSON *root, const char *key, const char *what, const char *where, OwError *err) {
    int v = 0;
    if (json_get_bool(root, key, 0, &v, where, err) != 0) return -1;
    if (v)
        return ow_fail(
            err, "%s: key \"%s\" is true: %s is not implemented (hint: owlore supports LLaMA/Mistral without biases)",
            where, key, what);
    return 0;
}

/* One rope object (rope_scaling of 4.x or rope_parameters of 5.x): null,
 * "default" or "llama3". */
static int parse_rope_obj(const cJSON *rs, const char *key, const char *where, ModelConfig *cfg, OwError *err) {
    if (!cJSON_IsObject(rs)) return ow_fail(err, "%s: key \"%s\" must be null or an object", where, key);
    char sub[600];
    snprintf(sub, sizeof sub, "%s: %s", where, key);
    if (json_get_num(rs, "rope_theta", 0, &cfg->rope_theta, sub, err) != 0) return -1;
    const char *type = NULL;
    if (json_get_str(rs, "rope_type", 0, &type, sub, err) != 0) return -1;
    if (!type && json_get_str(rs, "type", 0, &type, sub, err) != 0) return -1;
    if (!type)
        return ow_fail(err, "%s: key \"%s\" has no \"rope_type\" (hint: use null, or {\"rope_type\": \"llama3\", ...})",
                       where, key);
    if (strcmp(type, "default") == 0) {
        cfg->rope_scaling = ROPE_SCALING_NONE;
        return 0;
    }
    if (strcmp(type, "llama3") != 0)
        return ow_fail(err,
                       "%s: key \"%s\" has rope_type \"%s\", which owlore does not implement (hint: supported are no "
                       "scaling and \"llama3\"; linear, dynamic, yarn, longrope... are not)",
                       where, key, type);
    cfg->rope_scaling = ROPE_SCALING_LLAMA3;
    if (json_get_num(rs, "factor", 1, &cfg->rope_factor, sub, err) != 0 ||
        json_get_num(rs, "low_freq_factor", 1, &cfg->rope_low_freq_factor, sub, err) != 0 ||
        json_get_num(rs, "high_freq_factor", 1, &cfg->rope_high_freq_factor, sub, err) != 0 ||
        json_get_int(rs, "original_max_position_embeddings", 1, &cfg->rope_original_max_pos, sub, err) != 0)
        return -1;
    return 0;
}

/* rope_theta plus rope_scaling (4.x) and/or rope_parameters (5.x). When both
 * objects are given they must agree on the scaling type. */
static int get_rope(const cJSON *root, const char *where, ModelConfig *cfg, OwError *err) {
    if (json_get_num(root, "rope_theta", 0, &cfg->rope_theta, where, err) != 0) return -1;
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (scaling && !cJSON_IsNull(scaling) && parse_rope_obj(scaling, "rope_scaling", where, cfg, err) != 0) return -1;
    if (params && !cJSON_IsNull(params)) {
        RopeScalingType first = cfg->rope_scaling;
        int had_scaling = scaling && !cJSON_IsNull(scaling);
        if (parse_rope_obj(params, "rope_parameters", where, cfg, err) != 0) return -1;
        if (had_scaling && first != cfg->rope_scaling)
            return ow_fail(
                err, "%s: keys \"rope_scaling\" and \"rope_parameters\" disagree on the rope type (hint: keep one)",
                where);
    }
    return 0;
}

static int get_dtype(const cJSON *root, const char *where, ModelConfig *cfg, OwError *err) {
    const char *key = "torch_dtype";
    const char *dt = NULL;
    if (json_get_str(root, key, 0, &dt, where, err) != 0) return -1;
    if (!dt) {
        key = "dtype";
        if (json_get_str(root, key, 0, &dt, where, err) != 0) return -1;
    }
    if (!dt) return 0;
    if (strcmp(dt, "float32") != 0 && strcmp(dt, "bfloat16") != 0 && strcmp(dt, "float16") != 0)
        return ow_fail(err, "%s: key \"%s\" is \"%s\" (hint: allowed values are float32, bfloat16, float16)", where,
                       key, dt);
    snprintf(cfg->torch_dtype, sizeof cfg->torch_dtype, "%s", dt);
    return 0;
}

int model_config_from_json(const cJSON *root, const char *where, ModelConfig *cfg, OwError *err) {
    memset(cfg, 0, sizeof *cfg);
    if (!cJSON_IsObject(root)) return ow_fail(err, "%s: a model config must be a JSON object", where);
    if (get_arch(root, where, cfg, err) != 0) return -1;
    int mistral = strcmp(cfg->architecture, "MistralForCausalLM") == 0;

    if (json_get_int(root, "vocab_size", 1, &cfg->vocab_size, where, err) != 0 ||
        json_get_int(root, "hidden_size", 1, &cfg->hidden_size, where, err) != 0 ||
        json_get_int(root, "intermediate_size", 1, &cfg->intermediate_size, where, err) != 0 ||
        json_get_int(root, "num_hidden_layers", 1, &cfg->num_layers, where, err) != 0 ||
        json_get_int(root, "num_attention_heads", 1, &cfg->num_heads, where, err) != 0)
        return -1;
    cfg->num_kv_heads = cfg->num_heads;
    if (json_get_int(root, "num_key_value_heads", 0, &cfg->num_kv_heads, where, err) != 0) return -1;
    cfg->head_dim = 0;
    if (json_get_int(root, "head_dim", 0, &cfg->head_dim, where, err) != 0) return -1;
    int explicit_head_dim = cJSON_GetObjectItemCaseSensitive(root, "head_dim") &&
                            !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(root, "head_dim"));
    if (!explicit_head_dim) {
        if (cfg->num_heads > 0 && cfg->hidden_size > 0 && cfg->hidden_size % cfg->num_heads != 0)
            return ow_fail(
                err,
                "%s: hidden_size %lld is not divisible by num_attention_heads %lld (hint: fix the sizes or give "
                "head_dim explicitly)",
                where, (long long)cfg->hidden_size, (long long)cfg->num_heads);
        cfg->head_dim = cfg->num_heads > 0 ? cfg->hidden_size / cfg->num_heads : 0;
    }
    cfg->max_position_embeddings = mistral ? 131072 : 2048; /* the transformers defaults */
    if (json_get_int(root, "max_position_embeddings", 0, &cfg->max_position_embeddings, where, err) != 0) return -1;
    cfg->rms_norm_eps = 1e-6;
    if (json_get_num(root, "rms_norm_eps", 0, &cfg->rms_norm_eps, where, err) != 0) return -1;
    cfg->rope_theta = 10000.0;
    if (get_rope(root, where, cfg, err) != 0) return -1;
    if (json_get_bool(root, "tie_word_embeddings", 0, &cfg->tie_word_embeddings, where, err) != 0) return -1;
    if (get_token_id(root, "bos_token_id", &cfg->bos_token_id, where, err) != 0 ||
        get_token_id(root, "eos_token_id", &cfg->eos_token_id, where, err) != 0)
        return -1;
    if (json_get_int(root, "sliding_window", 0, &cfg->sliding_window, where, err) != 0) return -1;
    if (cfg->sliding_window < 0)
        return ow_fail(err, "%s: key \"sliding_window\" must be null or positive, got %lld", where,
                       (long long)cfg->sliding_window);
    if (get_dtype(root, where, cfg, err) != 0) return -1;

    /* Keys that would change the math. */
    const char *act = "silu";
    if (json_get_str(root, "hidden_act", 0, &act, where, err) != 0) return -1;
    if (strcmp(act, "silu") != 0)
        return ow_fail(
            err, "%s: key \"hidden_act\" is \"%s\", which owlore does not implement (hint: only \"silu\" (SwiGLU) is)",
            where, act);
    if (refuse_true(root, "attention_bias", "a bias in the q/k/v/o projections", where, err) != 0 ||
        refuse_true(root, "mlp_bias", "a bias in the MLP projections", where, err) != 0)
        return -1;
    double dropout = 0.0;
    if (json_get_num(root, "attention_dropout", 0, &dropout, where, err) != 0) return -1;
    if (dropout != 0.0)
        return ow_fail(
            err, "%s: key \"attention_dropout\" is %g: attention dropout is not implemented (hint: set it to 0.0)",
            where, dropout);
    return model_config_validate(cfg, where, err);
}

int model_config_load(const char *path, ModelConfig *cfg, OwError *err) {
    cJSON *root = json_parse_file_max(path, OW_JSON_CONFIG_MAX, err);
    if (!root) return -1;
    int rc = model_config_from_json(root, path, cfg, err);
    cJSON_Delete(root);
    return rc;
}

static int check_range(int64_t v, int64_t max, const char *key, const char *where, OwError *err) {
    if (v <= 0)
        return ow_fail(err, "%s: key \"%s\" must be positive, got %lld (hint: check the config)", where, key,
                       (long long)v);
    if (v > max)
        return ow_fail(err, "%s: key \"%s\" is %lld, larger than owlore accepts (%lld) (hint: check the config)", where,
                       key, (long long)v, (long long)max);
    return 0;
}

int model_config_validate(const ModelConfig *cfg, const char *where, OwError *err) {
    if (strcmp(cfg->architecture, "LlamaForCausalLM") != 0 && strcmp(cfg->architecture, "MistralForCausalLM") != 0)
        return ow_fail(err, "%s: unknown architecture \"%s\" (hint: %s)", where, cfg->architecture, k_hint_arch);
    if (check_range(cfg->vocab_size, CFG_MAX_VOCAB, "vocab_size", where, err) != 0 ||
        check_range(cfg->hidden_size, CFG_MAX_DIM, "hidden_size", where, err) != 0 ||
        check_range(cfg->intermediate_size, CFG_MAX_DIM, "intermediate_size", where, err) != 0 ||
        check_range(cfg->num_layers, CFG_MAX_LAYERS, "num_hidden_layers", where, err) != 0 ||
        check_range(cfg->num_heads, CFG_MAX_DIM, "num_attention_heads", where, err) != 0 ||
        check_range(cfg->num_kv_heads, CFG_MAX_DIM, "num_key_value_heads", where, err) != 0 ||
        check_range(cfg->head_dim, CFG_MAX_DIM, "head_dim", where, err) != 0 ||
        check_range(cfg->max_position_embeddings, CFG_MAX_POS, "max_position_embeddings", where, err) != 0)
        return -1;
    if (cfg->num_heads * cfg->head_dim > CFG_MAX_DIM)
        return ow_fail(err, "%s: num_attention_heads * head_dim = %lld is larger than owlore accepts (%lld)", where,
                       (long long)(cfg->num_heads * cfg->head_dim), (long long)CFG_MAX_DIM);
    if (cfg->head_dim % 2 != 0)
        return ow_fail(err, "%s: head_dim %lld is odd (hint: rotary embeddings need an even head_dim)", where,
                       (long long)cfg->head_dim);
    if (cfg->num_kv_heads > cfg->num_heads || cfg->num_heads % cfg->num_kv_heads != 0)
        return ow_fail(
            err,
            "%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld (hint: grouped-query "
            "attention needs whole groups)",
            where, (long long)cfg->num_heads, (long long)cfg->num_kv_heads);
    if (!(cfg->rms_norm_eps > 0.0) || !isfinite(cfg->rms_norm_eps))
        return ow_fail(err, "%s: key \"rms_norm_eps\" must be positive, got %g", where, cfg->rms_norm_eps);
    if (!(cfg->rope_theta > 0.0) || !isfinite(cfg->rope_theta))
        return ow_fail(err, "%s: key \"rope_theta\" must be positive, got %g", where, cfg->rope_theta);
    if (cfg->sliding_window < 0) return ow_fail(err, "%s: key \"sliding_window\" must not be negative", where);
    if (cfg->rope_scaling == ROPE_SCALING_LLAMA3) {
        if (!(cfg->rope_factor > 0.0) || !isfinite(cfg->rope_factor))
            return ow_fail(err, "%s: rope_scaling \"factor\" must be positive, got %g", where, cfg->rope_factor);
        if (!(cfg->rope_low_freq_factor > 0.0) || !(cfg->rope_high_freq_factor > cfg->rope_low_freq_factor) ||
            !isfinite(cfg->rope_high_freq_factor))
            return ow_fail(
                err,
                "%s: rope_scaling needs 0 < low_freq_factor < high_freq_factor, got %g and %g (hint: LLaMA-3.1 "
                "uses 1 and 4)",
                where, cfg->rope_low_freq_factor, cfg->rope_high_freq_factor);
        if (cfg->rope_original_max_pos <= 0)
            return ow_fail(err, "%s: rope_scaling \"original_max_position_embeddings\" must be positive, got %lld",
                           where, (long long)cfg->rope_original_max_pos);
    } else if (cfg->rope_scaling != ROPE_SCALING_NONE) {
        return ow_fail(err, "%s: unknown rope scaling type %d", where, (int)cfg->rope_scaling);
    }
    return 0;
}

cJSON *model_config_to_json(const ModelConfig *cfg) {
    int mistral = strcmp(cfg->architecture, "MistralForCausalLM") == 0;
    cJSON *o = cJSON_CreateObject();
    cJSON *archs = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(archs, cJSON_CreateString(cfg->architecture));
    cJSON_AddBoolToObject(o, "attention_bias", 0);
    cJSON_AddNumberToObject(o, "attention_dropout", 0.0);
    if (cfg->bos_token_id >= 0)
        cJSON_AddNumberToObject(o, "bos_token_id", (double)cfg->bos_token_id);
    else
        cJSON_AddNullToObject(o, "bos_token_id");
    if (cfg->eos_token_id >= 0)
        cJSON_AddNumberToObject(o, "eos_token_id", (double)cfg->eos_token_id);
    else
        cJSON_AddNullToObject(o, "eos_token_id");
    cJSON_AddNumberToObject(o, "head_dim", (double)cfg->head_dim);
    cJSON_AddStringToObject(o, "hidden_act", "silu");
    cJSON_AddNumberToObject(o, "hidden_size", (double)cfg->hidden_size);
    cJSON_AddNumberToObject(o, "initializer_range", 0.02);
    cJSON_AddNumberToObject(o, "intermediate_size", (double)cfg->intermediate_size);
    cJSON_AddNumberToObject(o, "max_position_embeddings", (double)cfg->max_position_embeddings);
    if (!mistral) cJSON_AddBoolToObject(o, "mlp_bias", 0);
    cJSON_AddStringToObject(o, "model_type", cfg->model_type[0] ? cfg->model_type : (mistral ? "mistral" : "llama"));
    cJSON_AddNumberToObject(o, "num_attention_heads", (double)cfg->num_heads);
    cJSON_AddNumberToObject(o, "num_hidden_layers", (double)cfg->num_layers);
    cJSON_AddNumberToObject(o, "num_key_value_heads", (double)cfg->num_kv_heads);
    cJSON_AddNumberToObject(o, "rms_norm_eps", cfg->rms_norm_eps);
    if (cfg->rope_scaling == ROPE_SCALING_LLAMA3) {
        cJSON *rs = cJSON_AddObjectToObject(o, "rope_scaling");
        cJSON_AddNumberToObject(rs, "factor", cfg->rope_factor);
        cJSON_AddNumberToObject(rs, "high_freq_factor", cfg->rope_high_freq_factor);
        cJSON_AddNumberToObject(rs, "low_freq_factor", cfg->rope_low_freq_factor);
        cJSON_AddNumberToObject(rs, "original_max_position_embeddings", (double)cfg->rope_original_max_pos);
        cJSON_AddStringToObject(rs, "rope_type", "llama3");
    } else {
        cJSON_AddNullToObject(o, "rope_scaling");
    }
    cJSON_AddNumberToObject(o, "rope_theta", cfg->rope_theta);
    if (mistral) {
        if (cfg->sliding_window > 0)
            cJSON_AddNumberToObject(o, "sliding_window", (double)cfg->sliding_window);
        else
            cJSON_AddNullToObject(o, "sliding_window");
    }
    cJSON_AddBoolToObject(o, "tie_word_embeddings", cfg->tie_word_embeddings);
    if (cfg->torch_dtype[0]) cJSON_AddStringToObject(o, "torch_dtype", cfg->torch_dtype);
    cJSON_AddBoolToObject(o, "use_cache", 1);
    cJSON_AddNumberToObject(o, "vocab_size", (double)cfg->vocab_size);
    return o;
}

int64_t model_config_block_param_count(const ModelConfig *cfg) {
    int64_t h = cfg->hidden_size, q = cfg->num_heads * cfg->head_dim, kv = cfg->num_kv_heads * cfg->head_dim;
    int64_t attn = h * q /* q_proj */ + 2 * h * kv /* k_proj, v_proj */ + q * h /* o_proj */;
    int64_t mlp = 3 * h * cfg->intermediate_size; /* gate, up, down */
    return attn + mlp + 2 * h;                    /* + input and post-attention RMSNorm */
}

int64_t model_config_param_count(const ModelConfig *cfg) {
    int64_t emb = cfg->vocab_size * cfg->hidden_size;
    return emb + cfg->num_layers * model_config_block_param_count(cfg) + cfg->hidden_size /* final norm */ +
           (cfg->tie_word_embeddings ? 0 : emb);
}
