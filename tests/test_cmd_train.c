// ctest-labels: cpu
/* test_cmd_train.c: `owlore train` and `owlore outliers` through the binary:
 * a short run writes config.json, metrics.jsonl and a loadable model; bad
 * settings and bad data stop with a clear message before training starts. */
#include "backend/backend_cuda.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/rng.h"
#include "data/tokfile.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *dir, *model, *data;
} Env;

static void env_open(Env *e, int64_t vocab, int32_t bad_id) {
    e->dir = ts_tmpdir();
    e->model = ts_fixture_path("models/mha_untied");
    e->data = ow_path_join(e->dir, "data.bin");
    int32_t ids[2000];
    Rng r;
    rng_init(&r, 1, 2);
    for (int i = 0; i < 2000; i++) ids[i] = (int32_t)rng_below(&r, 97);
    if (bad_id >= 0) ids[1234] = bad_id;
    OwError err;
    cr_assert_eq(tokfile_write(e->data, ids, NULL, 2000, vocab, NULL, 0, 0, 0, &err), 0, "%s", err.msg);
}

static void env_close(Env *e) {
    ts_rmtree(e->dir);
    free(e->dir);
    free(e->model);
    free(e->data);
}

static int train(Env *e, const char *extra, char **out) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s train --model %s --data %s --out %s/run --device cpu --batch-size 2 --block-size 16 "
             "--steps 3 %s",
             ts_owlore_binary(), e->model, e->data, e->dir, extra);
    return ts_run(cmd, out);
}

static void expect_failure(const char *extra, const char *needle, int vocab, int bad_id) {
    Env e;
    env_open(&e, vocab, bad_id);
    char *out;
    int rc = train(&e, extra, &out);
    cr_assert_neq(rc, 0, "expected failure for '%s', output:\n%s", extra, out);
    cr_assert_lt(rc, 128, "crashed (status %d) for '%s':\n%s", rc, extra, out);
    cr_assert(strstr(out, needle) != NULL, "output for '%s' lacks \"%s\":\n%s", extra, needle, out);
    cr_assert(strstr(out, "step 1/") == NULL, "training started before the error:\n%s", out);
    char *model = ow_path_join(e.dir, "run/model");
    cr_assert(!ow_path_exists(model), "no model is written after an error");
    free(model);
    free(out);
    env_close(&e);
}

Test(cmd_train, short_run_writes_config_metrics_and_model) {
    Env e;
    env_open(&e, 97, -1);
    char *out;
    int rc = train(&e, "--method galore --rank 8 --val-split 0.2 --eval-every 2", &out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "validation loss") != NULL, "%s", out);
    char *cfg = ow_path_join(e.dir, "run/config.json"), *met = ow_path_join(e.dir, "run/metrics.jsonl");
    char *text;
    size_t len;
    OwError err;
    cr_assert_eq(ow_read_file(cfg, &text, &len, &err), 0);
    cJSON *j = cJSON_Parse(text);
    cr_assert_eq(cJSON_GetObjectItem(j, "rank")->valuedouble, 8);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "method")->valuestring, "galore");
    cJSON_Delete(j);
    free(text);
    cr_assert_eq(ow_read_file(met, &text, &len, &err), 0);
    int steps = 0, evals = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        cr_assert(o != NULL, "metrics line is JSON: %s", line);
        if (cJSON_GetObjectItem(o, "loss")) {
            steps++;
            const char *keys[] = {"step", "loss", "lr", "grad_norm", "tokens", "active_blocks", "seconds"};
            for (int k = 0; k < 7; k++) cr_assert(cJSON_GetObjectItem(o, keys[k]) != NULL, "missing %s", keys[k]);
        }
        if (cJSON_GetObjectItem(o, "eval_loss")) evals++;
        cJSON_Delete(o);
    }
    cr_assert_eq(steps, 3);
    cr_assert_eq(evals, 3, "evaluations at steps 0, 2 and 3");
    free(text);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s info %s/run/model", ts_owlore_binary(), e.dir);
    char *info;
    cr_assert_eq(ts_run(cmd, &info), 0, "the saved model is a valid HF directory:\n%s", info);
    free(info);
    free(cfg);
    free(met);
    free(out);
    env_close(&e);
}

Test(cmd_train, owlore_computes_ratios_when_none_given) {
    Env e;
    env_open(&e, 97, -1);
    char *out;
    int rc = train(&e, "--gamma 1 --interval 2 --rank 8 --nsamples 4 --seqlen 16 --M 3", &out);
    cr_assert_eq(rc, 0, "%s", out);
    char *ratios = ow_path_join(e.dir, "run/ratios.json");
    cr_assert(ow_path_exists(ratios), "ratios.json is written into the run");
    free(ratios);
    free(out);
    env_close(&e);
}

Test(cmd_train, unknown_method) {
    expect_failure("--method sgd", "allowed: owlore, owlore-fullrank, lisa, galore, full", 97, -1);
}
Test(cmd_train, unknown_sampling_mode) { expect_failure("--sampling random", "allowed: owl, uniform", 97, -1); }
Test(cmd_train, gamma_larger_than_layers) { expect_failure("--method lisa --gamma 3", "gamma", 97, -1); }
Test(cmd_train, rank_larger_than_matrix) {
    expect_failure("--method galore --rank 64", "rank 64 is larger than the matrix", 97, -1);
}
Test(cmd_train, token_id_outside_vocab) { expect_failure("--method full", "has id 150", 200, 150); }
Test(cmd_train, bf16_needs_a_backend_that_computes_in_bf16) {
    expect_failure("--precision bf16", "the cpu backend computes in fp32", 97, -1);
}
Test(cmd_train, bad_or_absent_device) {
    expect_failure("--device gpu", "device \"gpu\" is not known", 97, -1);
#ifdef OWLORE_HAVE_CUDA
    if (!backend_cuda_available()) expect_failure("--device cuda:1", "no CUDA device found", 97, -1);
#else
    expect_failure("--device cuda:1", "built without the CUDA backend", 97, -1);
#endif
}
Test(cmd_train, missing_model) {
    expect_failure("--method full --model /nonexistent/model", "/nonexistent/model", 97, -1);
}

/* Absurd sizes and thread counts are refused up front, naming the flag: --threads 100000 crashed the OpenMP
 * runtime, and batch x block products past int64 overflowed the shape arithmetic (in `plan` too); eval, which
 * takes --threads without the train keys, is refused the same way. */
Test(cmd_train, absurd_threads_and_sizes) {
    expect_failure("--threads 100000", "--threads 100000: must be 0 (all cores) to", 97, -1);
    expect_failure("--threads -1", "--threads -1: must be 0", 97, -1);
    expect_failure("--batch-size 100000000 --block-size 100000000", "more than 2147483648 tokens per step", 97, -1);
    expect_failure("--grad-accum 4611686018427387904", "--grad-accum 4611686018427387904", 97, -1);
    const char *cases[][2] = {
        {"plan --model llama2-7b --batch-size 100000000 --block-size 100000000", "tokens per step"},
        {"plan --model llama2-7b --threads 100000", "--threads 100000"},
        {"eval --model /nonexistent --data /nonexistent --device cpu --threads 100000", "--threads 100000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cmd[1024], *out;
        snprintf(cmd, sizeof cmd, "%s %s", ts_owlore_binary(), cases[i][0]);
        int rc = ts_run(cmd, &out);
        cr_assert(rc > 0 && rc < 128, "%s: status %d:\n%s", cases[i][0], rc, out);
        cr_assert(strstr(out, cases[i][1]) != NULL, "%s: lacks \"%s\":\n%s", cases[i][0], cases[i][1], out);
        free(out);
    }
}

static void ratios_case(const char *content, const char *needle) {
    Env e;
    env_open(&e, 97, -1);
    char *rp = ow_path_join(e.dir, "r.json");
    ts_write_file(rp, content, strlen(content));
    char extra[1024];
    snprintf(extra, sizeof extra, "--gamma 1 --rank 8 --ratios %s", rp);
    char *out;
    int rc = train(&e, extra, &out);
    cr_assert_neq(rc, 0, "%s", out);
    cr_assert(strstr(out, needle) != NULL, "lacks \"%s\":\n%s", needle, out);
    cr_assert(strstr(out, rp) != NULL, "names the file:\n%s", out);
    free(out);
    free(rp);
    env_close(&e);
}

Test(cmd_train, ratios_with_wrong_layer_count) {
    ratios_case("{\"ratios\": [0.1, 0.2, 0.3]}", "has 3 per-block scores but the model has 2");
}
Test(cmd_train, ratios_negative) { ratios_case("[0.1, -0.2]", "must be finite and non-negative"); }
Test(cmd_train, ratios_malformed) { ratios_case("{\"ratios\": [0.1,", "malformed JSON"); }

Test(cmd_train, help_lists_every_key) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s train --help", ts_owlore_binary());
    char *out;
    cr_assert_eq(ts_run(cmd, &out), 0);
    const char *keys[] = {"--method",     "--gamma",      "--interval", "--sampling",  "--ratios",
                          "--rank",       "--update-gap", "--scale",    "--projector", "--inactive-state",
                          "--lr",         "--schedule",   "--warmup",   "--clip",      "--batch-size",
                          "--block-size", "--grad-accum", "--steps",    "--epochs",    "--eval-every",
                          "--val-split",  "--seed"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_assert(strstr(out, keys[i]) != NULL, "help lacks %s", keys[i]);
    free(out);
}
