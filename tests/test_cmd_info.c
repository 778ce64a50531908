/* test_cmd_info.c: `owlore info` on the real TinyStories-656K model, on the
 * transformers-written sharded fixture, on presets and config-only
 * directories, and its refusal (non-zero exit, message naming the file and
 * the problem) of broken model directories (non-finite weights, special or
 * oversized files included), which `train` refuses and accepts alike. */
#include "core/fileio.h"
#include "core/json.h"
#include "model/safetensors.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int run_info(const char *args, char **out) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' info %s", ts_owlore_binary(), args);
    int rc = ts_run(cmd, out);
    /* in the sanitizer build a leak or UB report must fail the test too */
    cr_assert(strstr(*out, "Sanitizer") == NULL && strstr(*out, "runtime error") == NULL, "%s", *out);
    return rc;
}

/* Parameter count and F32 bytes of a safetensors file, computed here straight
 * from its header with cJSON (not through owlore's reader). */
static void count_from_header(const char *path, long long *params, long long *bytes) {
    char *buf;
    size_t n;
    OwError err;
    cr_assert(ow_read_file(path, &buf, &n, &err) == 0, "%s", err.msg);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)(unsigned char)buf[i] << (8 * i);
    cJSON *h = cJSON_ParseWithLength(buf + 8, hlen);
    cr_assert_not_null(h);
    *params = 0;
    *bytes = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, h) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        cr_assert_str_eq(cJSON_GetObjectItem(e, "dtype")->valuestring, "F32");
        long long numel = 1;
        const cJSON *d;
        cJSON_ArrayForEach(d, cJSON_GetObjectItem(e, "shape")) numel *= (long long)d->valuedouble;
        *params += numel;
        const cJSON *off = cJSON_GetObjectItem(e, "data_offsets");
        *bytes += (long long)(cJSON_GetArrayItem(off, 1)->valuedouble - cJSON_GetArrayItem(off, 0)->valuedouble);
    }
    cJSON_Delete(h);
    free(buf);
}

Test(cmd_info, tinystories_text) {
    char *dir = ts_shared_path("data/real/hf/TinyStories-656K");
    char *st = ts_shared_path("data/real/hf/TinyStories-656K/model.safetensors");
    long long params, bytes;
    count_from_header(st, &params, &bytes);
    char args[4200], *out;
    snprintf(args, sizeof args, "'%s'", dir);
    int rc = run_info(args, &out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "LlamaForCausalLM") != NULL, "%s", out);
    cr_assert(strstr(out, "layers:            2\n") != NULL, "%s", out);
    cr_assert(strstr(out, "heads / kv heads:  8 / 4") != NULL, "%s", out);
    cr_assert(strstr(out, "vocab:             2048\n") != NULL, "%s", out);
    cr_assert(strstr(out, "tied embeddings:   yes") != NULL, "%s", out);
    char want[128];
    snprintf(want, sizeof want, "parameters:        %lld (counted from the tensors", params);
    cr_assert(strstr(out, want) != NULL, "want \"%s\" in:\n%s", want, out);
    snprintf(want, sizeof want, "F32 %lld", bytes);
    cr_assert(strstr(out, want) != NULL, "want \"%s\" in:\n%s", want, out);
    snprintf(want, sizeof want, "(%lld bytes)", params * 2);
    cr_assert(strstr(out, want) != NULL, "want \"%s\" in:\n%s", want, out);
    free(out);
    free(st);
    free(dir);
}

Test(cmd_info, tinystories_json) {
    char *dir = ts_shared_path("data/real/hf/TinyStories-656K");
    char *st = ts_shared_path("data/real/hf/TinyStories-656K/model.safetensors");
    long long params, bytes;
    count_from_header(st, &params, &bytes);
    char args[4200], *out;
    snprintf(args, sizeof args, "'%s' --json", dir);
    int rc = run_info(args, &out);
    cr_assert_eq(rc, 0, "%s", out);
    OwError err;
    cJSON *j = json_parse(out, strlen(out), "info --json output", &err);
    cr_assert_not_null(j, "%s\n%s", err.msg, out);
    cr_assert_eq(cJSON_GetObjectItem(j, "num_layers")->valuedouble, 2);
    cr_assert_eq(cJSON_GetObjectItem(j, "num_heads")->valuedouble, 8);
    cr_assert_eq(cJSON_GetObjectItem(j, "num_kv_heads")->valuedouble, 4);
    cr_assert_eq(cJSON_GetObjectItem(j, "vocab_size")->valuedouble, 2048);
    cr_assert_eq(cJSON_GetObjectItem(j, "head_dim")->valuedouble, 16);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "tie_word_embeddings")));
    cr_assert_eq((long long)cJSON_GetObjectItem(j, "param_count")->valuedouble, params);
    cr_assert_eq((long long)cJSON_GetObjectItem(j, "param_count_config")->valuedouble, params);
    cr_assert_eq((long long)cJSON_GetObjectItem(j, "bf16_bytes")->valuedouble, params * 2);
    const cJSON *w = cJSON_GetObjectItem(j, "weights");
    cr_assert(cJSON_IsObject(w));
    cr_assert_eq(cJSON_GetObjectItem(w, "aliases")->valuedouble, 1);
    cr_assert_eq((long long)cJSON_GetObjectItem(cJSON_GetObjectItem(w, "bytes_by_dtype"), "F32")->valuedouble, bytes);
    cJSON_Delete(j);
    free(out);
    free(st);
    free(dir);
}

Test(cmd_info, hf_sharded_fixture) {
    char *dir = ts_fixture_path("hf_sharded");
    char args[4200], *out;
    snprintf(args, sizeof args, "'%s'", dir);
    int rc = run_info(args, &out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "3 files, 21 tensors") != NULL, "%s", out);
    cr_assert(strstr(out, "parameters:        6736 ") != NULL, "%s", out); /* total_parameters transformers wrote */
    cr_assert(strstr(out, "BF16 13472") != NULL, "%s", out);
    free(out);
    free(dir);
}

Test(cmd_info, preset_and_config_only_dir) {
    char *out;
    cr_assert_eq(run_info("llama2-7b", &out), 0, "%s", out);
    cr_assert(strstr(out, "parameters:        6738415616 (from the config") != NULL, "%s", out);
    cr_assert(strstr(out, "config only") != NULL, "%s", out);
    free(out);
    cr_assert_eq(run_info("llama3.1-8b --json", &out), 0, "%s", out);
    cr_assert(strstr(out, "\"llama3\"") != NULL, "%s", out);
    free(out);
    /* a directory holding only config.json */
    char *tmp = ts_tmpdir();
    char *src = ts_shared_path("data/real/hf/TinyStories-656K/config.json");
    char *dst = ow_path_join(tmp, "config.json");
    OwError err;
    cr_assert(ow_copy_file(src, dst, &err) == 0, "%s", err.msg);
    char args[4200];
    snprintf(args, sizeof args, "'%s'", tmp);
    cr_assert_eq(run_info(args, &out), 0, "%s", out);
    cr_assert(strstr(out, "weights:           none (config only") != NULL, "%s", out);
    cr_assert(strstr(out, "parameters:        656000 (from the config") != NULL, "%s", out);
    free(out);
    ts_rmtree(tmp);
    free(tmp);
    free(src);
    free(dst);
}

Test(cmd_info, usage_errors) {
    char *out;
    cr_assert_eq(run_info("", &out), 2, "%s", out);
    free(out);
    cr_assert_eq(run_info("tiny --bogus", &out), 2, "%s", out);
    cr_assert(strstr(out, "--bogus") != NULL, "%s", out);
    free(out);
    cr_assert_eq(run_info("--help", &out), 0, "%s", out);
    cr_assert(strstr(out, "usage: owlore info") != NULL, "%s", out);
    free(out);
    cr_assert_eq(run_info("no-such-model", &out), 1, "%s", out);
    cr_assert(strstr(out, "presets:") && strstr(out, "llama3-8b"), "%s", out);
    free(out);
}

/* ------------------------------------------------------------ broken model dirs */

/* A temp model dir: TinyStories config (optionally edited) + its tensors
 * minus `drop`, with `rename_from` renamed to `rename_to` (all optional). */
static char *make_model_dir(const char *drop, const char *rename_from, const char *rename_to, int64_t reshape0) {
    char *tmp = ts_tmpdir();
    char *src = ts_shared_path("data/real/hf/TinyStories-656K/config.json");
    char *cfg = ow_path_join(tmp, "config.json");
    OwError err;
    cr_assert(ow_copy_file(src, cfg, &err) == 0, "%s", err.msg);
    char *stp = ts_shared_path("data/real/hf/TinyStories-656K/model.safetensors");
    SafeTensors st;
    cr_assert(safetensors_open(stp, &st, &err) == 0, "%s", err.msg);
    StWriteTensor *w = safetensors_write_list(&st);
    int n = 0;
    for (int i = 0; i < st.ntensors; i++) {
        if (drop && strcmp(w[i].name, drop) == 0) continue;
        StWriteTensor t = w[i];
        if (rename_from && strcmp(t.name, rename_from) == 0) {
            t.name = rename_to;
            if (reshape0 > 0) { /* same bytes, other shape */
                int64_t numel = 1;
                for (int d = 0; d < t.ndim; d++) numel *= t.shape[d];
                t.ndim = 2;
                t.shape[0] = reshape0;
                t.shape[1] = numel / reshape0;
            }
        }
        w[n++] = t;
    }
    char *out = ow_path_join(tmp, "model.safetensors");
    cr_assert(safetensors_write(out, w, n, st.metadata, &err) == 0, "%s", err.msg);
    free(w);
    safetensors_close(&st);
    free(out);
    free(stp);
    free(cfg);
    free(src);
    return tmp;
}

static void expect_info_fails(const char *dir, const char *frag1, const char *frag2) {
    char args[4200], *out;
    snprintf(args, sizeof args, "'%s'", dir);
    int rc = run_info(args, &out);
    cr_assert_neq(rc, 0, "info should fail on %s:\n%s", dir, out);
    cr_assert_lt(rc, 128, "info crashed (status %d):\n%s", rc, out);
    cr_assert(strstr(out, dir) != NULL, "message does not name %s:\n%s", dir, out);
    if (frag1) cr_assert(strstr(out, frag1) != NULL, "want \"%s\" in:\n%s", frag1, out);
    if (frag2) cr_assert(strstr(out, frag2) != NULL, "want \"%s\" in:\n%s", frag2, out);
    free(out);
}

Test(cmd_info_bad, missing_tensor) {
    char *dir = make_model_dir("model.layers.1.mlp.up_proj.weight", NULL, NULL, 0);
    expect_info_fails(dir, "missing tensor model.layers.1.mlp.up_proj.weight", "model.safetensors");
    ts_rmtree(dir);
    free(dir);
}

Test(cmd_info_bad, missing_embedding_when_alias_target_gone) {
    /* without lm_head.weight the alias has no target: the embedding is missing */
    char *dir = make_model_dir("lm_head.weight", NULL, NULL, 0);
    expect_info_fails(dir, "missing tensor model.embed_tokens.weight", NULL);
    ts_rmtree(dir);
    free(dir);
}

Test(cmd_info_bad, wrong_shape) {
    char *dir =
        make_model_dir(NULL, "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.q_proj.weight", 64);
    expect_info_fails(dir, "model.layers.0.self_attn.q_proj.weight has shape [64, 256]", "[128, 128]");
    ts_rmtree(dir);
    free(dir);
}

Test(cmd_info_bad, unexpected_tensor) {
    char *dir = make_model_dir(NULL, "model.norm.weight", "model.layers.0.self_attn.q_proj.bias", 0);
    expect_info_fails(dir, "unexpected tensor model.layers.0.self_attn.q_proj.bias",
                      "missing tensor model.norm.weight");
    ts_rmtree(dir);
    free(dir);
}

static char *good_dir_with_corrupt_weights(size_t keep_bytes, uint64_t new_hlen) {
    char *dir = make_model_dir(NULL, NULL, NULL, 0);
    char *p = ow_path_join(dir, "model.safetensors");
    char *buf;
    size_t n;
    OwError err;
    cr_assert(ow_read_file(p, &buf, &n, &err) == 0, "%s", err.msg);
    if (new_hlen)
        for (int i = 0; i < 8; i++) buf[i] = (char)(new_hlen >> (8 * i));
    ts_write_file(p, buf, keep_bytes ? keep_bytes : n);
    free(buf);
    free(p);
    return dir;
}

Test(cmd_info_bad, truncated_weights) {
    char *dir = good_dir_with_corrupt_weights(1000000, 0);
    expect_info_fails(dir, "model.safetensors", "reach past the data section");
    ts_rmtree(dir);
    free(dir);
    dir = good_dir_with_corrupt_weights(100, 0);
    expect_info_fails(dir, "model.safetensors", "runs past the end of the file");
    ts_rmtree(dir);
    free(dir);
}

Test(cmd_info_bad, header_length_past_end) {
    char *dir = good_dir_with_corrupt_weights(0, 50000000);
    expect_info_fails(dir, "header length 50000000 runs past the end", NULL);
    ts_rmtree(dir);
    free(dir);
}

static char *dir_with_config(const char *from, const char *to) {
    char *dir = make_model_dir(NULL, NULL, NULL, 0);
    char *p = ow_path_join(dir, "config.json");
    char *buf;
    size_t n;
    OwError err;
    cr_assert(ow_read_file(p, &buf, &n, &err) == 0, "%s", err.msg);
    char *hit = strstr(buf, from);
    cr_assert_not_null(hit, "%s", from);
    size_t nf = strlen(from), nt = strlen(to), pre = (size_t)(hit - buf);
    char *o = malloc(n - nf + nt + 1);
    memcpy(o, buf, pre);
    memcpy(o + pre, to, nt);
    memcpy(o + pre + nt, hit + nf, n - pre - nf);
    ts_write_file(p, o, n - nf + nt);
    free(o);
    free(buf);
    free(p);
    return dir;
}

Test(cmd_info_bad, unknown_architecture) {
    char *dir = dir_with_config("\"LlamaForCausalLM\"", "\"GPTNeoXForCausalLM\"");
    expect_info_fails(dir, "config.json", "unknown architecture \"GPTNeoXForCausalLM\"");
    ts_rmtree(dir);
    free(dir);
}

Test(cmd_info_bad, zero_size) {
    char *dir = dir_with_config("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 0");
    expect_info_fails(dir, "config.json", "\"num_hidden_layers\" must be positive");
    ts_rmtree(dir);
    free(dir);
}

Test(cmd_info_bad, negative_size) {
    char *dir = dir_with_config("\"hidden_size\": 128", "\"hidden_size\": -128");
    expect_info_fails(dir, "config.json", "\"hidden_size\" must be positive");
    ts_rmtree(dir);
    free(dir);
}

Test(cmd_info_bad, config_disagrees_with_weights) {
    char *dir = dir_with_config("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
    expect_info_fails(dir, "missing tensor model.layers.2.self_attn.q_proj.weight", "more problems");
    ts_rmtree(dir);
    free(dir);
}

Test(cmd_info_bad, index_names_missing_shard) {
    char *dir = make_model_dir(NULL, NULL, NULL, 0);
    char *single = ow_path_join(dir, "model.safetensors");
    char *idx = ow_path_join(dir, "model.safetensors.index.json");
    SafeTensors st;
    OwError err;
    cr_assert(safetensors_open(single, &st, &err) == 0, "%s", err.msg);
    StWriteTensor *w = safetensors_write_list(&st);
    cr_assert(safetensors_write_sharded(dir, w, st.ntensors, 600000, st.metadata, &err) == 0, "%s", err.msg);
    free(w);
    safetensors_close(&st);
    cr_assert(ow_path_exists(idx));
    cJSON *ij = json_parse_file(idx, &err);
    cr_assert_not_null(ij, "%s", err.msg);
    const cJSON *wm = cJSON_GetObjectItem(ij, "weight_map");
    char shard_name[128];
    snprintf(shard_name, sizeof shard_name, "%s",
             cJSON_GetObjectItem(wm, "model.layers.1.mlp.up_proj.weight")->valuestring);
    cJSON_Delete(ij);
    char *shard2 = ow_path_join(dir, shard_name);
    cr_assert(ow_path_exists(shard2));
    remove(single);
    /* the sharded directory is valid before the shard goes */
    char args[4200], *out;
    snprintf(args, sizeof args, "'%s'", dir);
    cr_assert_eq(run_info(args, &out), 0, "%s", out);
    cr_assert(strstr(out, "4 files") != NULL, "%s", out); /* lm_head alone, then ~600 kB groups */
    free(out);
    remove(shard2);
    expect_info_fails(dir, shard_name, "does not exist");
    free(shard2);
    free(idx);
    free(single);
    ts_rmtree(dir);
    free(dir);
}

/* Only regular files are read, each within its size cap: a config.json linked to /dev/zero, a directory or an
 * oversized one, and a FIFO as the weights are refused at once, naming the file (not read until memory runs out, not
 * waited on). */
Test(cmd_info_bad, special_and_oversized_files, .timeout = 120) {
    char *dir = make_model_dir(NULL, NULL, NULL, 0);
    char *cfg = ow_path_join(dir, "config.json"), *saved = ow_path_join(dir, "config.saved");
    char *weights = ow_path_join(dir, "model.safetensors");
    cr_assert_eq(rename(cfg, saved), 0);
    cr_assert_eq(symlink("/dev/zero", cfg), 0);
    expect_info_fails(dir, "config.json: is a character device, not a regular file", NULL);
    cr_assert_eq(remove(cfg), 0);
    cr_assert_eq(mkdir(cfg, 0755), 0);
    expect_info_fails(dir, "config.json", "is a directory, not a regular file");
    cr_assert_eq(rmdir(cfg), 0);
    ts_write_file(cfg, "{", 1);
    cr_assert_eq(truncate(cfg, 5 << 20), 0); /* sparse: 5 MiB past the 4 MiB cap of a config */
    expect_info_fails(dir, "config.json: 5242880 bytes, more than the 4194304 bytes", NULL);
    cr_assert_eq(rename(saved, cfg), 0);
    cr_assert_eq(remove(weights), 0);
    cr_assert_eq(mkfifo(weights, 0644), 0);
    expect_info_fails(dir, "model.safetensors: is a FIFO, not a regular file", NULL);
    free(weights);
    free(saved);
    free(cfg);
    ts_rmtree(dir);
    free(dir);
}

/* Rewrites dir's weights: `poison` (if any) gets `value` at element 5; sharded: as ~600 kB shards with an index and
 * no __metadata__ (so no alias: a tied model stores only lm_head.weight), the single file removed. */
static void rewrite_weights(const char *dir, const char *poison, float value, int sharded) {
    char *single = ow_path_join(dir, "model.safetensors"), *tmp = ow_path_join(dir, "new.safetensors");
    SafeTensors st;
    OwError err;
    cr_assert(safetensors_open(single, &st, &err) == 0, "%s", err.msg);
    StWriteTensor *w = safetensors_write_list(&st);
    float *copy = NULL;
    for (int i = 0; poison && i < st.ntensors; i++) {
        if (strcmp(w[i].name, poison) != 0) continue;
        cr_assert_eq(w[i].dtype, OW_F32);
        const StTensor *t = safetensors_find(&st, poison);
        copy = malloc(t->nbytes);
        memcpy(copy, t->data, t->nbytes);
        copy[5] = value;
        w[i].data = copy;
    }
    if (sharded)
        cr_assert(safetensors_write_sharded(dir, w, st.ntensors, 600000, NULL, &err) == 0, "%s", err.msg);
    else
        cr_assert(safetensors_write(tmp, w, st.ntensors, st.metadata, &err) == 0, "%s", err.msg);
    free(copy);
    free(w);
    safetensors_close(&st);
    if (sharded)
        cr_assert_eq(remove(single), 0);
    else
        cr_assert_eq(rename(tmp, single), 0);
    free(tmp);
    free(single);
}

/* `owlore train` ($B of issue 16) on dir, with a small text file (the directory has no tokenizer: bytes); the
 * run goes beside the model (train refuses a run directory inside it) and is removed. */
static int run_train(const char *dir, char **out) {
    char *data = ow_path_join(dir, "d.txt");
    char text[4096];
    for (size_t i = 0; i < sizeof text; i++) text[i] = (char)('a' + (i * 7) % 26);
    ts_write_file(data, text, sizeof text);
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "'%s' train --model '%s' --data '%s' --out '%s-run' --device cpu --batch-size 2 --block-size 64 "
             "--threads 1 --gamma 1 --rank 16 --steps 2",
             ts_owlore_binary(), dir, data, dir);
    free(data);
    int rc = ts_run(cmd, out);
    snprintf(cmd, sizeof cmd, "%s-run", dir);
    if (ow_path_exists(cmd)) ts_rmtree(cmd);
    cr_assert(strstr(*out, "Sanitizer") == NULL && strstr(*out, "runtime error") == NULL, "%s", *out);
    return rc;
}

static void expect_train_fails(const char *dir, const char *needle) {
    char *out;
    int rc = run_train(dir, &out);
    cr_assert(rc > 0 && rc < 128, "train should fail cleanly (status %d):\n%s", rc, out);
    cr_assert(strstr(out, needle) != NULL, "want \"%s\" in:\n%s", needle, out);
    cr_assert(strstr(out, "step 1/") == NULL, "training started:\n%s", out);
    free(out);
}

/* info and train validate weights the same way: more layers in the weights than in the config are unexpected
 * tensors for both (train used to drop them and train one block). */
Test(cmd_info_bad, train_refuses_what_info_refuses, .timeout = 300) {
    char *dir = dir_with_config("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1");
    expect_info_fails(dir, "unexpected tensor model.layers.1.", NULL);
    expect_train_fails(dir, "unexpected tensor model.layers.1.");
    ts_rmtree(dir);
    free(dir);
}

/* ... and the reverse: a sharded tied model whose shards hold lm_head.weight and no alias for the embedding is
 * accepted by both (transformers loads it so); info used to call the embedding missing. */
Test(cmd_info, tied_sharded_without_alias_agrees_with_train, .timeout = 300) {
    char *dir = make_model_dir(NULL, NULL, NULL, 0);
    rewrite_weights(dir, NULL, 0, 1);
    char args[4200], *out;
    snprintf(args, sizeof args, "'%s'", dir);
    cr_assert_eq(run_info(args, &out), 0, "%s", out);
    cr_assert(strstr(out, "files") != NULL, "%s", out);
    free(out);
    cr_assert_eq(run_train(dir, &out), 0, "%s", out);
    free(out);
    ts_rmtree(dir);
    free(dir);
}

/* A FIFO as --data is refused at once, naming it (the run's data digest opened it with a blocking fopen, before
 * the data loader's own check, and hung). */
Test(cmd_info_bad, train_refuses_a_fifo_as_data, .timeout = 120) {
    char *dir = make_model_dir(NULL, NULL, NULL, 0);
    char *fifo = ow_path_join(dir, "data.fifo");
    cr_assert_eq(mkfifo(fifo, 0644), 0);
    char cmd[8192], *out;
    snprintf(cmd, sizeof cmd,
             "timeout -s KILL 20 '%s' train --model '%s' --data '%s' --out '%s-run' --device cpu --steps 2",
             ts_owlore_binary(), dir, fifo, dir);
    int rc = ts_run(cmd, &out);
    cr_assert(rc > 0 && rc < 124, "train should fail cleanly, not hang (status %d):\n%s", rc, out);
    cr_assert(strstr(out, "data.fifo: is a FIFO, not a regular file") != NULL, "%s", out);
    free(out);
    free(fifo);
    ts_rmtree(dir);
    free(dir);
}

/* NaN or Inf weights are refused at load by info and train alike, naming the tensor and its file (train used to
 * fail later, blaming the learning rate or the sampler). */
Test(cmd_info_bad, nonfinite_weights, .timeout = 300) {
    char *dir = make_model_dir(NULL, NULL, NULL, 0);
    rewrite_weights(dir, "model.layers.1.mlp.up_proj.weight", NAN, 0);
    expect_info_fails(dir, "tensor model.layers.1.mlp.up_proj.weight holds NaN at element 5", "model.safetensors");
    expect_train_fails(dir, "tensor model.layers.1.mlp.up_proj.weight holds NaN at element 5");
    rewrite_weights(dir, "model.norm.weight", -INFINITY, 0);
    expect_info_fails(dir, "tensor model.norm.weight holds -Inf at element 5", NULL);
    ts_rmtree(dir);
    free(dir);
}
