/* cmd_info.c: `owlore info DIR|PRESET|CONFIG [--json]`: describes a model
 * (architecture, sizes, parameters, memory) from its config and, when the
 * directory holds safetensors weights, validates them against the config and
 * counts the parameters from the tensors themselves. */
#include "cmd/commands.h"

#include "core/args.h"
#include "core/fileio.h"
#include "core/memstats.h"
#include "model/config.h"
#include "model/preset.h"
#include "model/safetensors.h"
#include "model/tensor_names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct InfoFacts {
    char *config_path;
    char *weights_path; /* NULL when the directory has no safetensors weights */
    ModelConfig cfg;
    int64_t params_config;
    int64_t params; /* from the tensors when there are weights, else from the config */
    int64_t block_params;
    int nfiles, ntensors, naliases;
    size_t bytes_by_dtype[OW_DTYPE_COUNT];
} InfoFacts;

/* The weights next to the config: model.safetensors.index.json or model.safetensors. */
static char *find_weights(const char *config_path) {
    char *dir = ow_path_dirname(config_path);
    const char *names[] = {"model.safetensors.index.json", "model.safetensors"};
    char *found = NULL;
    for (int i = 0; i < 2 && !found; i++) {
        char *p = ow_path_join(dir, names[i]);
        if (ow_path_exists(p))
            found = p;
        else
            free(p);
    }
    free(dir);
    return found;
}

static int gather(const char *model, InfoFacts *f, OwError *err) {
    int is_dir;
    if (model_preset_resolve(model, &f->cfg, &f->config_path, &is_dir, err) != 0) return -1;
    f->params_config = model_config_param_count(&f->cfg);
    f->params = f->params_config;
    f->block_params = model_config_block_param_count(&f->cfg);
    f->weights_path = is_dir ? find_weights(f->config_path) : NULL;
    if (!f->weights_path) return 0;
    SafeTensors st;
    if (safetensors_open(f->weights_path, &st, err) != 0) return -1;
    int rc = model_check_tensors(&f->cfg, &st, f->weights_path, err);
    if (rc == 0) {
        f->params = model_stored_param_count(&f->cfg, &st);
        f->nfiles = st.nfiles;
        f->ntensors = st.ntensors;
        f->naliases = st.naliases;
        for (int i = 0; i < st.ntensors; i++) f->bytes_by_dtype[st.tensors[i].dtype] += st.tensors[i].nbytes;
    }
    safetensors_close(&st);
    return rc;
}

static cJSON *facts_json(const InfoFacts *f) {
    const ModelConfig *c = &f->cfg;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "config", f->config_path);
    cJSON_AddStringToObject(o, "architecture", c->architecture);
    cJSON_AddStringToObject(o, "model_type", c->model_type);
    cJSON_AddNumberToObject(o, "num_layers", (double)c->num_layers);
    cJSON_AddNumberToObject(o, "hidden_size", (double)c->hidden_size);
    cJSON_AddNumberToObject(o, "intermediate_size", (double)c->intermediate_size);
    cJSON_AddNumberToObject(o, "num_heads", (double)c->num_heads);
    cJSON_AddNumberToObject(o, "num_kv_heads", (double)c->num_kv_heads);
    cJSON_AddNumberToObject(o, "head_dim", (double)c->head_dim);
    cJSON_AddNumberToObject(o, "vocab_size", (double)c->vocab_size);
    cJSON_AddNumberToObject(o, "max_position_embeddings", (double)c->max_position_embeddings);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddNumberToObject(o, "rms_norm_eps", c->rms_norm_eps);
    cJSON_AddNumberToObject(o, "rope_theta", c->rope_theta);
    if (c->rope_scaling == ROPE_SCALING_LLAMA3) {
        cJSON *rs = cJSON_AddObjectToObject(o, "rope_scaling");
        cJSON_AddStringToObject(rs, "rope_type", "llama3");
        cJSON_AddNumberToObject(rs, "factor", c->rope_factor);
        cJSON_AddNumberToObject(rs, "low_freq_factor", c->rope_low_freq_factor);
        cJSON_AddNumberToObject(rs, "high_freq_factor", c->rope_high_freq_factor);
        cJSON_AddNumberToObject(rs, "original_max_position_embeddings", (double)c->rope_original_max_pos);
    } else {
        cJSON_AddNullToObject(o, "rope_scaling");
    }
    cJSON_AddNumberToObject(o, "sliding_window", (double)c->sliding_window);
    cJSON_AddStringToObject(o, "torch_dtype", c->torch_dtype);
    cJSON_AddNumberToObject(o, "param_count", (double)f->params);
    cJSON_AddNumberToObject(o, "param_count_config", (double)f->params_config);
    cJSON_AddNumberToObject(o, "block_param_count", (double)f->block_params);
    cJSON_AddNumberToObject(o, "bf16_bytes", (double)f->params * 2.0);
    cJSON_AddNumberToObject(o, "bf16_block_bytes", (double)f->block_params * 2.0);
    if (f->weights_path) {
        cJSON *w = cJSON_AddObjectToObject(o, "weights");
        cJSON_AddStringToObject(w, "path", f->weights_path);
        cJSON_AddNumberToObject(w, "files", f->nfiles);
        cJSON_AddNumberToObject(w, "tensors", f->ntensors);
        cJSON_AddNumberToObject(w, "aliases", f->naliases);
        cJSON_AddBoolToObject(w, "checked", 1);
        cJSON *b = cJSON_AddObjectToObject(w, "bytes_by_dtype");
        for (int d = 0; d < OW_DTYPE_COUNT; d++)
            if (f->bytes_by_dtype[d]) cJSON_AddNumberToObject(b, dtype_name((DType)d), (double)f->bytes_by_dtype[d]);
    } else {
        cJSON_AddNullToObject(o, "weights");
    }
    return o;
}

static void print_text(const InfoFacts *f) {
    const ModelConfig *c = &f->cfg;
    char s1[32], s2[32];
    printf("config:            %s\n", f->config_path);
    printf("architecture:      %s (%s)\n", c->architecture, c->model_type);
    printf("layers:            %lld\n", (long long)c->num_layers);
    printf("hidden size:       %lld\n", (long long)c->hidden_size);
    printf("intermediate size: %lld\n", (long long)c->intermediate_size);
    printf("heads / kv heads:  %lld / %lld%s\n", (long long)c->num_heads, (long long)c->num_kv_heads,
           c->num_kv_heads < c->num_heads ? " (grouped-query attention)" : "");
    printf("head dim:          %lld\n", (long long)c->head_dim);
    printf("vocab:             %lld\n", (long long)c->vocab_size);
    printf("max positions:     %lld\n", (long long)c->max_position_embeddings);
    printf("tied embeddings:   %s\n", c->tie_word_embeddings ? "yes" : "no");
    if (c->rope_scaling == ROPE_SCALING_LLAMA3)
        printf("rope:              theta %g, llama3 scaling (factor %g, low %g, high %g, original %lld)\n",
               c->rope_theta, c->rope_factor, c->rope_low_freq_factor, c->rope_high_freq_factor,
               (long long)c->rope_original_max_pos);
    else
        printf("rope:              theta %g, no scaling\n", c->rope_theta);
    printf("rms norm eps:      %g\n", c->rms_norm_eps);
    if (c->sliding_window > 0) printf("sliding window:    %lld\n", (long long)c->sliding_window);
    if (c->torch_dtype[0]) printf("dtype (config):    %s\n", c->torch_dtype);
    if (f->weights_path) {
        if (f->params == f->params_config)
            printf("parameters:        %lld (counted from the tensors, tied counted once; the config gives the same)\n",
                   (long long)f->params);
        else
            printf("parameters:        %lld (counted from the tensors, shared tensors once; the config implies %lld)\n",
                   (long long)f->params, (long long)f->params_config);
        printf("weights:           %s: %d file%s, %d tensors%s, all expected tensors present with the right shapes\n",
               f->weights_path, f->nfiles, f->nfiles == 1 ? "" : "s", f->ntensors,
               f->naliases ? (f->naliases == 1 ? " + 1 alias" : " + aliases") : "");
        printf("bytes by dtype:   ");
        for (int d = 0; d < OW_DTYPE_COUNT; d++)
            if (f->bytes_by_dtype[d])
                printf(" %s %zu (%s)", dtype_name((DType)d), f->bytes_by_dtype[d],
                       format_size(f->bytes_by_dtype[d], s1, sizeof s1));
        printf("\n");
    } else {
        printf("parameters:        %lld (from the config; tied counted once)\n", (long long)f->params);
        printf(
            "weights:           none (config only: no model.safetensors or model.safetensors.index.json beside it)\n");
    }
    printf("bf16 copy:         %s (%lld bytes); per block %s\n", format_size((size_t)f->params * 2, s1, sizeof s1),
           (long long)f->params * 2, format_size((size_t)f->block_params * 2, s2, sizeof s2));
}

int cmd_info(int argc, char **argv) {
    int json = 0;
    ArgSpec specs[] = {{"json", ARG_BOOL, &json, NULL, "print one JSON object with the same facts", NULL}};
    ArgsResult ar;
    OwError err;
    ow_error_clear(&err);
    int parsed = cmd_args(
        "info", argc, argv, specs, 1, "owlore info DIR|PRESET|CONFIG [--json]",
        "Describes a model: architecture, sizes, parameter count (tied embeddings counted once) and the memory\n"
        "a bf16 copy needs. DIR is a Hugging Face model directory (config.json, and safetensors weights which are\n"
        "then validated against the config), PRESET a name from configs/models (e.g. llama2-7b), CONFIG a\n"
        "config.json path.",
        &ar);
    if (parsed >= 0) return parsed;
    if (ar.npos != 1) {
        fprintf(stderr,
                "owlore info: error: expected one model (a directory, a preset name or a config.json; see --help)\n");
        return 2;
    }
    InfoFacts f;
    memset(&f, 0, sizeof f);
    int rc = gather(ar.pos[0], &f, &err);
    if (rc == 0) {
        if (json) {
            cJSON *o = facts_json(&f);
            char *s = cJSON_Print(o);
            printf("%s\n", s);
            cJSON_free(s);
            cJSON_Delete(o);
        } else {
            print_text(&f);
        }
    }
    free(f.config_path);
    free(f.weights_path);
    return rc == 0 ? 0 : cmd_report_error("info", &err);
}
