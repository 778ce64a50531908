/* test_config.c: config.json parsing (transformers 4.x and 5.x spellings),
 * presets (parameter counts against transformers, via
 * tests/fixtures/config/preset_params.json), the writer round trip, preset
 * resolution, the expected tensor list, and the refusal of every key value
 * that changes the math. */
#include "core/fileio.h"
#include "core/json.h"
#include "model/config.h"
#include "model/preset.h"
#include "model/tensor_names.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A valid LLaMA config; tests edit it as text. */
static const char *k_base =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 64, "
    "\"intermediate_size\": 160, \"num_hidden_layers\": 3, \"num_attention_heads\": 8, \"num_key_value_heads\": 2, "
    "\"vocab_size\": 100, \"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, "
    "\"rope_scaling\": null, \"tie_word_embeddings\": false, \"attention_bias\": false, \"mlp_bias\": false, "
    "\"hidden_act\": \"silu\", \"attention_dropout\": 0.0, \"bos_token_id\": 1, \"eos_token_id\": 2, "
    "\"torch_dtype\": \"bfloat16\", \"some_future_key\": {\"x\": [1, 2]}}";

/* k_base with the first `from` replaced by `to`, written to <tmp>/config.json. */
static char *write_config(const char *dir, const char *from, const char *to) {
    const char *hit = from ? strstr(k_base, from) : NULL;
    if (from) cr_assert(hit != NULL, "%s not in the base config", from);
    size_t nb = strlen(k_base), nf = from ? strlen(from) : 0, nt = to ? strlen(to) : 0;
    char *text = malloc(nb - nf + nt + 1);
    size_t pre = hit ? (size_t)(hit - k_base) : nb;
    memcpy(text, k_base, pre);
    if (to) memcpy(text + pre, to, nt);
    memcpy(text + pre + nt, k_base + pre + nf, nb - pre - nf + 1);
    char *path = ow_path_join(dir, "config.json");
    ts_write_file(path, text, strlen(text));
    free(text);
    return path;
}

static void load_ok(const char *from, const char *to, ModelConfig *cfg) {
    char *dir = ts_tmpdir();
    char *path = write_config(dir, from, to);
    OwError err;
    cr_assert(model_config_load(path, cfg, &err) == 0, "%s", err.msg);
    free(path);
    ts_rmtree(dir);
    free(dir);
}

/* Loading must fail with a message naming the file and containing both fragments. */
static void load_fails(const char *from, const char *to, const char *frag1, const char *frag2) {
    char *dir = ts_tmpdir();
    char *path = write_config(dir, from, to);
    ModelConfig cfg;
    OwError err;
    err.msg[0] = '\0';
    cr_assert_eq(model_config_load(path, &cfg, &err), -1, "loading with %s should fail", to);
    cr_assert(strstr(err.msg, path) != NULL, "message does not name %s: %s", path, err.msg);
    if (frag1) cr_assert(strstr(err.msg, frag1) != NULL, "message lacks \"%s\": %s", frag1, err.msg);
    if (frag2) cr_assert(strstr(err.msg, frag2) != NULL, "message lacks \"%s\": %s", frag2, err.msg);
    free(path);
    ts_rmtree(dir);
    free(dir);
}

/* ------------------------------------------------------------ positive */

Test(config, base_config_fields) {
    ModelConfig c;
    load_ok(NULL, NULL, &c);
    cr_assert_str_eq(c.architecture, "LlamaForCausalLM");
    cr_assert_str_eq(c.model_type, "llama");
    cr_assert_eq(c.hidden_size, 64);
    cr_assert_eq(c.intermediate_size, 160);
    cr_assert_eq(c.num_layers, 3);
    cr_assert_eq(c.num_heads, 8);
    cr_assert_eq(c.num_kv_heads, 2);
    cr_assert_eq(c.head_dim, 8);
    cr_assert_eq(c.vocab_size, 100);
    cr_assert_eq(c.max_position_embeddings, 256);
    cr_assert_eq(c.rms_norm_eps, 1e-5);
    cr_assert_eq(c.rope_theta, 10000.0);
    cr_assert_eq(c.rope_scaling, ROPE_SCALING_NONE);
    cr_assert_eq(c.tie_word_embeddings, 0);
    cr_assert_eq(c.bos_token_id, 1);
    cr_assert_eq(c.eos_token_id, 2);
    cr_assert_eq(c.sliding_window, 0);
    cr_assert_str_eq(c.torch_dtype, "bfloat16");
    /* by hand: q 64*64, k,v 16*64 each, o 64*64, mlp 3*64*160, norms 2*64 */
    int64_t block = 64 * 64 * 2 + 16 * 64 * 2 + 3 * 64 * 160 + 2 * 64;
    cr_assert_eq(model_config_block_param_count(&c), block);
    cr_assert_eq(model_config_param_count(&c), 2 * 100 * 64 + 3 * block + 64);
}

Test(config, defaults_when_keys_absent) {
    ModelConfig c;
    /* only the required keys */
    char *dir = ts_tmpdir();
    char *path = ow_path_join(dir, "config.json");
    const char *t =
        "{\"model_type\": \"llama\", \"hidden_size\": 32, \"intermediate_size\": 64, \"num_hidden_layers\": 1, "
        "\"num_attention_heads\": 4, \"vocab_size\": 10}";
    ts_write_file(path, t, strlen(t));
    OwError err;
    cr_assert(model_config_load(path, &c, &err) == 0, "%s", err.msg);
    cr_assert_str_eq(c.architecture, "LlamaForCausalLM");
    cr_assert_eq(c.num_kv_heads, 4);
    cr_assert_eq(c.head_dim, 8);
    cr_assert_eq(c.rope_theta, 10000.0);
    cr_assert_eq(c.rms_norm_eps, 1e-6);
    cr_assert_eq(c.max_position_embeddings, 2048);
    cr_assert_eq(c.tie_word_embeddings, 0);
    cr_assert_eq(c.bos_token_id, -1);
    cr_assert_eq(c.eos_token_id, -1);
    cr_assert_str_eq(c.torch_dtype, "");
    free(path);
    ts_rmtree(dir);
    free(dir);
}

Test(config, explicit_head_dim_and_eos_list) {
    ModelConfig c;
    load_ok("\"num_key_value_heads\": 2,", "\"num_key_value_heads\": 2, \"head_dim\": 16,", &c);
    cr_assert_eq(c.head_dim, 16); /* heads * head_dim (128) need not equal hidden (64) */
    load_ok("\"eos_token_id\": 2", "\"eos_token_id\": [7, 8, 9]", &c);
    cr_assert_eq(c.eos_token_id, 7);
    load_ok("\"eos_token_id\": 2", "\"eos_token_id\": null", &c);
    cr_assert_eq(c.eos_token_id, -1);
}

Test(config, transformers5_spelling) {
    ModelConfig c;
    load_ok("\"rope_theta\": 10000.0, \"rope_scaling\": null",
            "\"rope_parameters\": {\"rope_theta\": 500000.0, \"rope_type\": \"llama3\", \"factor\": 8.0, "
            "\"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}",
            &c);
    cr_assert_eq(c.rope_theta, 500000.0);
    cr_assert_eq(c.rope_scaling, ROPE_SCALING_LLAMA3);
    cr_assert_eq(c.rope_factor, 8.0);
    cr_assert_eq(c.rope_original_max_pos, 8192);
    load_ok("\"torch_dtype\": \"bfloat16\"", "\"dtype\": \"float16\"", &c);
    cr_assert_str_eq(c.torch_dtype, "float16");
    /* the fixture transformers 5 wrote */
    char *p = ts_fixture_path("hf_sharded/config.json");
    OwError err;
    cr_assert(model_config_load(p, &c, &err) == 0, "%s", err.msg);
    cr_assert_eq(c.rope_theta, 10000.0);
    cr_assert_eq(c.rope_scaling, ROPE_SCALING_NONE);
    cr_assert_str_eq(c.torch_dtype, "bfloat16");
    cr_assert_eq(c.head_dim, 4);
    free(p);
}

Test(config, llama3_rope_scaling_type_key) {
    ModelConfig c;
    load_ok("\"rope_scaling\": null",
            "\"rope_scaling\": {\"type\": \"llama3\", \"factor\": 32.0, \"low_freq_factor\": 1.0, "
            "\"high_freq_factor\": 4.0, "
            "\"original_max_position_embeddings\": 8192}",
            &c);
    cr_assert_eq(c.rope_scaling, ROPE_SCALING_LLAMA3);
    cr_assert_eq(c.rope_factor, 32.0);
    cr_assert_eq(c.rope_low_freq_factor, 1.0);
    cr_assert_eq(c.rope_high_freq_factor, 4.0);
}

Test(config, tinystories_real_config) {
    char *p = ts_shared_path("data/real/hf/TinyStories-656K/config.json");
    ModelConfig c;
    OwError err;
    cr_assert(model_config_load(p, &c, &err) == 0, "%s", err.msg);
    cr_assert_eq(c.num_layers, 2);
    cr_assert_eq(c.num_heads, 8);
    cr_assert_eq(c.num_kv_heads, 4);
    cr_assert_eq(c.hidden_size, 128);
    cr_assert_eq(c.head_dim, 16);
    cr_assert_eq(c.vocab_size, 2048);
    cr_assert_eq(c.intermediate_size, 384);
    cr_assert_eq(c.tie_word_embeddings, 1);
    cr_assert_eq(c.rms_norm_eps, 1e-6);
    cr_assert_str_eq(c.torch_dtype, "float32");
    free(p);
}

/* Every preset loads, and its parameter counts equal those transformers
 * computes for the same config.json (fixture made by the reference script). */
Test(config, presets_match_transformers_counts) {
    char *fx = ts_fixture_path("config/preset_params.json");
    OwError err;
    cJSON *root = json_parse_file(fx, &err);
    cr_assert_not_null(root, "%s", err.msg);
    const cJSON *presets = cJSON_GetObjectItemCaseSensitive(root, "presets");
    char **names;
    int n = model_preset_list(&names);
    cr_assert_geq(n, 6);
    cr_assert_eq(n, cJSON_GetArraySize(presets),
                 "every preset needs a row in %s (rerun tests/reference/make_io_fixtures.py)", fx);
    for (int i = 0; i < n; i++) {
        char *path;
        int is_dir;
        ModelConfig c;
        cr_assert(model_preset_resolve(names[i], &c, &path, &is_dir, &err) == 0, "%s", err.msg);
        const cJSON *row = cJSON_GetObjectItemCaseSensitive(presets, names[i]);
        cr_assert_not_null(row, "%s missing from %s", names[i], fx);
        double params = cJSON_GetObjectItemCaseSensitive(row, "params")->valuedouble;
        double block = cJSON_GetObjectItemCaseSensitive(row, "block_params")->valuedouble;
        cr_assert_eq(model_config_param_count(&c), (int64_t)params, "%s", names[i]);
        cr_assert_eq(model_config_block_param_count(&c), (int64_t)block, "%s", names[i]);
        /* the expected tensor list adds up to the same count */
        int nt;
        ModelTensorSpec *spec = model_expected_tensors(&c, &nt);
        int64_t sum = 0;
        for (int k = 0; k < nt; k++) sum += spec[k].shape[0] * (spec[k].ndim == 2 ? spec[k].shape[1] : 1);
        cr_assert_eq(sum, (int64_t)params, "%s", names[i]);
        free(spec);
        free(path);
    }
    model_preset_list_free(names, n);
    cJSON_Delete(root);
    free(fx);
}

Test(config, preset_shapes_as_documented) {
    OwError err;
    char *p;
    int is_dir;
    ModelConfig c;
    cr_assert(model_preset_resolve("llama3-8b", &c, &p, &is_dir, &err) == 0, "%s", err.msg);
    cr_assert_eq(c.vocab_size, 128256);
    cr_assert_eq(c.intermediate_size, 14336);
    cr_assert_eq(c.num_kv_heads, 8);
    cr_assert_eq(c.rope_theta, 500000.0);
    cr_assert_eq(c.max_position_embeddings, 8192);
    cr_assert_eq(c.rope_scaling, ROPE_SCALING_NONE);
    free(p);
    cr_assert(model_preset_resolve("llama3.1-8b", &c, &p, &is_dir, &err) == 0, "%s", err.msg);
    cr_assert_eq(c.rope_scaling, ROPE_SCALING_LLAMA3);
    cr_assert_eq(c.rope_factor, 8.0);
    cr_assert_eq(c.rope_low_freq_factor, 1.0);
    cr_assert_eq(c.rope_high_freq_factor, 4.0);
    cr_assert_eq(c.rope_original_max_pos, 8192);
    cr_assert_eq(c.max_position_embeddings, 131072);
    cr_assert_eq(c.eos_token_id, 128001);
    free(p);
    cr_assert(model_preset_resolve("mistral-7b.json", &c, &p, &is_dir, &err) == 0, "%s", err.msg);
    cr_assert_str_eq(c.architecture, "MistralForCausalLM");
    cr_assert_str_eq(c.model_type, "mistral");
    cr_assert_eq(c.sliding_window, 4096);
    cr_assert_eq(c.vocab_size, 32000);
    cr_assert_eq(c.max_position_embeddings, 32768);
    free(p);
    cr_assert(model_preset_resolve("tiny", &c, &p, &is_dir, &err) == 0, "%s", err.msg);
    cr_assert_eq(c.hidden_size, 256);
    cr_assert_eq(c.intermediate_size, 688);
    cr_assert_eq(c.num_layers, 8);
    cr_assert_eq(c.num_heads, 8);
    cr_assert_eq(c.max_position_embeddings, 1024);
    free(p);
}

Test(config, to_json_round_trip) {
    char **names;
    int n = model_preset_list(&names);
    OwError err;
    for (int i = 0; i < n; i++) {
        char *p;
        int is_dir;
        ModelConfig a, b;
        cr_assert(model_preset_resolve(names[i], &a, &p, &is_dir, &err) == 0, "%s", err.msg);
        cJSON *j = model_config_to_json(&a);
        cr_assert(model_config_from_json(j, "round trip", &b, &err) == 0, "%s: %s", names[i], err.msg);
        cr_assert(memcmp(&a, &b, sizeof a) == 0, "%s does not survive to_json/from_json", names[i]);
        const cJSON *archs = cJSON_GetObjectItemCaseSensitive(j, "architectures");
        cr_assert_str_eq(cJSON_GetArrayItem(archs, 0)->valuestring, a.architecture);
        const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
        if (a.rope_scaling == ROPE_SCALING_LLAMA3)
            cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(rs, "rope_type")->valuestring, "llama3");
        else
            cr_assert(cJSON_IsNull(rs));
        cJSON_Delete(j);
        free(p);
    }
    model_preset_list_free(names, n);
}

Test(config, preset_resolution) {
    OwError err;
    char *p;
    int is_dir;
    ModelConfig c;
    /* a model directory */
    char *dir = ts_shared_path("data/real/hf/TinyStories-656K");
    cr_assert(model_preset_resolve(dir, &c, &p, &is_dir, &err) == 0, "%s", err.msg);
    cr_assert(strstr(p, "TinyStories-656K/config.json") != NULL, "%s", p);
    cr_assert(is_dir);
    cr_assert_eq(c.num_layers, 2);
    free(p);
    /* a config path */
    char *cfg = ts_shared_path("data/real/hf/TinyStories-656K/config.json");
    cr_assert(model_preset_resolve(cfg, &c, &p, &is_dir, &err) == 0, "%s", err.msg);
    cr_assert_str_eq(p, cfg);
    cr_assert(!is_dir);
    free(p);
    free(cfg);
    /* a compiled-in preset, found from any directory */
    cr_assert(model_preset_resolve("llama2-7b", &c, &p, &is_dir, &err) == 0, "%s", err.msg);
    cr_assert_str_eq(p, "preset llama2-7b");
    cr_assert_eq(c.hidden_size, 4096);
    free(p);
    /* an unknown name: the message lists the presets */
    cr_assert_eq(model_preset_resolve("llama9-1t", &c, &p, &is_dir, &err), -1);
    cr_assert(strstr(err.msg, "llama9-1t") && strstr(err.msg, "llama2-7b") && strstr(err.msg, "mistral-7b") &&
                  strstr(err.msg, "tiny"),
              "%s", err.msg);
    /* a directory without config.json */
    char *tmp = ts_tmpdir();
    cr_assert_eq(model_preset_resolve(tmp, &c, &p, &is_dir, &err), -1);
    cr_assert(strstr(err.msg, "config.json") != NULL, "%s", err.msg);
    /* OWLORE_CONFIG_DIR adds presets and is searched first */
    char *mine = ow_path_join(tmp, "mine.json");
    ts_write_file(mine, k_base, strlen(k_base));
    setenv("OWLORE_CONFIG_DIR", tmp, 1);
    cr_assert(model_preset_resolve("mine", &c, &p, &is_dir, &err) == 0, "%s", err.msg);
    cr_assert_str_eq(p, mine);
    free(p);
    char **names;
    int n = model_preset_list(&names);
    int found = 0;
    for (int i = 0; i < n; i++) found += strcmp(names[i], "mine") == 0 || strcmp(names[i], "llama2-7b") == 0;
    cr_assert_eq(found, 2, "the list holds both the user's and the compiled-in presets");
    model_preset_list_free(names, n);
    unsetenv("OWLORE_CONFIG_DIR");
    free(mine);
    ts_rmtree(tmp);
    free(tmp);
    free(dir);
}

Test(config, expected_tensor_names) {
    ModelConfig c;
    load_ok(NULL, NULL, &c);
    int n;
    ModelTensorSpec *s = model_expected_tensors(&c, &n);
    cr_assert_eq(n, 1 + 9 * 3 + 1 + 1);
    cr_assert_str_eq(s[0].name, "model.embed_tokens.weight");
    cr_assert_str_eq(s[1].name, "model.layers.0.self_attn.q_proj.weight");
    cr_assert_eq(s[1].shape[0], 64);
    cr_assert_str_eq(s[2].name, "model.layers.0.self_attn.k_proj.weight");
    cr_assert_eq(s[2].shape[0], 16);
    cr_assert_eq(s[2].shape[1], 64);
    cr_assert_str_eq(s[7].name, "model.layers.0.mlp.down_proj.weight");
    cr_assert_eq(s[7].shape[0], 64);
    cr_assert_eq(s[7].shape[1], 160);
    cr_assert_str_eq(s[9].name, "model.layers.0.post_attention_layernorm.weight");
    cr_assert_eq(s[9].ndim, 1);
    cr_assert_eq(s[9 + 9].layer, 1);
    cr_assert_str_eq(s[n - 2].name, "model.norm.weight");
    cr_assert_str_eq(s[n - 1].name, "lm_head.weight");
    free(s);
    c.tie_word_embeddings = 1;
    s = model_expected_tensors(&c, &n);
    cr_assert_eq(n, 1 + 9 * 3 + 1);
    cr_assert_str_eq(s[n - 1].name, "model.norm.weight");
    free(s);
}

Test(config, harmless_unknown_keys_ignored) {
    ModelConfig c;
    load_ok("\"torch_dtype\"", "\"pretraining_tp\": 1, \"use_cache\": true, \"torch_dtype\"", &c);
    cr_assert_eq(c.hidden_size, 64);
}

/* ------------------------------------------------------------ refused */

Test(config_bad, unknown_architecture) {
    load_fails("\"LlamaForCausalLM\"", "\"Qwen2ForCausalLM\"", "unknown architecture \"Qwen2ForCausalLM\"", "hint");
}
Test(config_bad, unknown_model_type) {
    load_fails("\"model_type\": \"llama\"", "\"model_type\": \"gpt2\"", "model_type", "gpt2");
}
Test(config_bad, zero_hidden_size) {
    load_fails("\"hidden_size\": 64", "\"hidden_size\": 0", "\"hidden_size\"", "positive");
}
Test(config_bad, negative_intermediate_size) {
    load_fails("\"intermediate_size\": 160", "\"intermediate_size\": -160", "\"intermediate_size\"", "positive");
}
Test(config_bad, zero_layers) {
    load_fails("\"num_hidden_layers\": 3", "\"num_hidden_layers\": 0", "num_hidden_layers", "positive");
}
Test(config_bad, negative_vocab) { load_fails("\"vocab_size\": 100", "\"vocab_size\": -1", "vocab_size", "positive"); }
Test(config_bad, zero_heads) {
    load_fails("\"num_attention_heads\": 8", "\"num_attention_heads\": 0", "num_attention_heads", "positive");
}
Test(config_bad, absurd_size) {
    load_fails("\"hidden_size\": 64", "\"hidden_size\": 1e12", "\"hidden_size\"", "larger than");
}
Test(config_bad, heads_not_dividing_hidden) {
    load_fails("\"num_attention_heads\": 8, \"num_key_value_heads\": 2",
               "\"num_attention_heads\": 6, \"num_key_value_heads\": 2", "not divisible by num_attention_heads 6",
               NULL);
}
Test(config_bad, kv_heads_not_dividing_heads) {
    load_fails("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3", "not a multiple of num_key_value_heads 3",
               NULL);
}
Test(config_bad, odd_head_dim) {
    load_fails("\"num_key_value_heads\": 2,", "\"num_key_value_heads\": 2, \"head_dim\": 7,", "head_dim 7 is odd",
               NULL);
}
Test(config_bad, attention_bias_true) {
    load_fails("\"attention_bias\": false", "\"attention_bias\": true", "\"attention_bias\"", "not implemented");
}
Test(config_bad, mlp_bias_true) {
    load_fails("\"mlp_bias\": false", "\"mlp_bias\": true", "\"mlp_bias\"", "not implemented");
}
Test(config_bad, hidden_act_gelu) {
    load_fails("\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", "\"hidden_act\"", "gelu");
}
Test(config_bad, rope_scaling_yarn) {
    load_fails("\"rope_scaling\": null", "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}", "\"yarn\"",
               "rope_scaling");
}
Test(config_bad, rope_scaling_linear_type_key) {
    load_fails("\"rope_scaling\": null", "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}", "\"linear\"",
               NULL);
}
Test(config_bad, rope_parameters_dynamic) {
    load_fails("\"rope_scaling\": null", "\"rope_parameters\": {\"rope_type\": \"dynamic\", \"factor\": 2.0}",
               "\"dynamic\"", "rope_parameters");
}
Test(config_bad, rope_scaling_without_type) {
    load_fails("\"rope_scaling\": null", "\"rope_scaling\": {\"factor\": 2.0}", "rope_type", NULL);
}
Test(config_bad, llama3_scaling_missing_factor) {
    load_fails("\"rope_scaling\": null",
               "\"rope_scaling\": {\"rope_type\": \"llama3\", \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
               "\"original_max_position_embeddings\": 8192}",
               "\"factor\"", "missing");
}
Test(config_bad, llama3_scaling_bad_factors) {
    load_fails("\"rope_scaling\": null",
               "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 4.0, "
               "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}",
               "low_freq_factor < high_freq_factor", NULL);
}
Test(config_bad, attention_dropout) {
    load_fails("\"attention_dropout\": 0.0", "\"attention_dropout\": 0.1", "\"attention_dropout\"", "not implemented");
}
Test(config_bad, missing_required_key) {
    load_fails("\"vocab_size\": 100,", "", "missing required key \"vocab_size\"", NULL);
}
Test(config_bad, wrong_type) {
    load_fails("\"hidden_size\": 64", "\"hidden_size\": \"64\"", "\"hidden_size\"", "integer");
}
Test(config_bad, fractional_size) {
    load_fails("\"hidden_size\": 64", "\"hidden_size\": 64.5", "\"hidden_size\"", "integer");
}
Test(config_bad, bad_dtype) {
    load_fails("\"torch_dtype\": \"bfloat16\"", "\"torch_dtype\": \"int4\"", "torch_dtype", "int4");
}
Test(config_bad, zero_rope_theta) {
    load_fails("\"rope_theta\": 10000.0", "\"rope_theta\": 0", "rope_theta", "positive");
}
Test(config_bad, negative_eps) {
    load_fails("\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": -1e-05", "rms_norm_eps", "positive");
}
Test(config_bad, two_architectures) {
    load_fails("[\"LlamaForCausalLM\"]", "[\"LlamaForCausalLM\", \"MistralForCausalLM\"]", "lists both", NULL);
}
Test(config_bad, malformed_json) {
    load_fails("\"vocab_size\": 100,", "\"vocab_size\": 100,,", "malformed JSON", "line 1");
}
Test(config_bad, not_an_object) {
    char *dir = ts_tmpdir();
    char *path = ow_path_join(dir, "config.json");
    ts_write_file(path, "[1, 2]", 6);
    ModelConfig c;
    OwError err;
    cr_assert_eq(model_config_load(path, &c, &err), -1);
    cr_assert(strstr(err.msg, path) && strstr(err.msg, "JSON object"), "%s", err.msg);
    free(path);
    ts_rmtree(dir);
    free(dir);
}
Test(config_bad, validate_names_the_source) {
    ModelConfig c;
    load_ok(NULL, NULL, &c);
    OwError err;
    c.num_kv_heads = 5;
    cr_assert_eq(model_config_validate(&c, "somewhere.json", &err), -1);
    cr_assert(strstr(err.msg, "somewhere.json") != NULL, "%s", err.msg);
    c.num_kv_heads = 2;
    c.head_dim = 0;
    cr_assert_eq(model_config_validate(&c, "somewhere.json", &err), -1);
    cr_assert(strstr(err.msg, "head_dim") != NULL, "%s", err.msg);
}
