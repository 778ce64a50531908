// ctest-labels: cpu
/* test_export.c: `owlore export` round trip. A short OwLore run (untied
 * fixture model with stub tokenizer files; and a tied-embedding model) is
 * exported; the export loads with model_load_hf and gives exactly the logits
 * of the run's own final model (RUN_DIR/model, saved from memory); bf16 halves
 * the size and keeps the logits close; a small shard size gives shards and
 * model.safetensors.index.json that load to the same logits; config.json
 * carries torch_dtype; tokenizer files are copied; a named checkpoint exports
 * that step; `owlore eval --model RUN_DIR` evaluates the same model; bad
 * requests are refused with names. */
#include "core/fileio.h"
#include "core/json.h"
#include "core/rng.h"
#include "data/tokfile.h"
#include "model/safetensors.h"
#include "test_support.h"
#include "train_fixture.h"
#include "train/export.h"
#include "train/run_model.h"
#include "train/trainer.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define B 2
#define T 16

typedef struct {
    char *dir, *base, *data, *run;
} Env;

/* A copy of a fixture model, a token file, a 6-step run (checkpoints every 2), then stub tokenizer files. */
static void env_open(Env *e, const char *fixture) {
    e->dir = ts_tmpdir();
    e->base = ow_path_join(e->dir, "base");
    e->data = ow_path_join(e->dir, "data.bin");
    e->run = ow_path_join(e->dir, "run");
    char *src = ts_fixture_path(fixture), cmd[4096];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", src, e->base);
    cr_assert_eq(system(cmd), 0);
    free(src);
    int32_t ids[600];
    Rng r;
    rng_init(&r, 3, 2);
    for (int i = 0; i < 600; i++) ids[i] = (int32_t)rng_below(&r, 97);
    OwError err;
    cr_assert_eq(tokfile_write(e->data, ids, NULL, 600, 97, NULL, 0, 0, 0, &err), 0, "%s", err.msg);
    TrainConfig c;
    ts_train_config(&c, "owlore", e->base, e->data, e->run, "cpu");
    c.sampling = SAMPLING_UNIFORM;
    c.gamma = 1;
    c.interval = 2;
    c.rank = 4;
    c.update_gap = 3;
    c.lr = 0.01;
    c.batch_size = B;
    c.block_size = T;
    c.steps = 6;
    c.save_every = 2;
    c.keep = 5;
    c.val_split = 0.1;
    TrainSummary s;
    cr_assert_eq(train_run(&c, &s, &err), 0, "%s", err.msg);
    /* after training: the byte-level token file is refused by a model with a tokenizer.json */
    char *tj = ow_path_join(e->base, "tokenizer.json"), *tc = ow_path_join(e->base, "tokenizer_config.json");
    ts_write_file(tj, "{\"stub\": \"tokenizer\"}\n", 22);
    ts_write_file(tc, "{\"stub\": \"config\"}\n", 19);
    free(tj);
    free(tc);
}

static void env_close(Env *e) {
    ts_rmtree(e->dir);
    free(e->dir);
    free(e->base);
    free(e->data);
    free(e->run);
}

/* Logits of a fixed batch under the model in dir (HF directory, or run directory). */
static float *logits_of(const char *dir, int is_run, int64_t *V) {
    OwError err;
    Backend *be = backend_create_cpu(1, 0, &err);
    Model *m;
    char base[4096];
    if (is_run)
        cr_assert_eq(run_load_model(be, dir, NULL, NULL, &m, base, sizeof base, &err), 0, "%s", err.msg);
    else
        cr_assert_eq(model_load_hf(be, dir, &m, &err), 0, "%s: %s", dir, err.msg);
    cr_assert_eq(model_prepare(m, B, T, 1, &err), 0, "%s", err.msg);
    int32_t ids[B * T];
    for (int i = 0; i < B * T; i++) ids[i] = (i * 37 + 11) % 97;
    *V = m->cfg.vocab_size;
    float *lg = malloc((size_t)(B * T * *V) * sizeof(float));
    cr_assert_eq(model_forward_logits(m, ids, lg, &err), 0, "%s", err.msg);
    model_free(m);
    be->ops->destroy(be);
    return lg;
}

static size_t dir_bytes(const char *dir, const char *suffix) {
    char cmd[4096], *out;
    snprintf(cmd, sizeof cmd, "cat '%s'/*%s | wc -c", dir, suffix);
    cr_assert_eq(ts_run(cmd, &out), 0);
    size_t n = (size_t)strtoull(out, NULL, 10);
    free(out);
    return n;
}

static void export_to(const Env *e, const char *name, DType dt, size_t shard, const char *ckpt, char **out_dir) {
    *out_dir = ow_path_join(e->dir, name);
    ExportOptions o = {dt, shard, ckpt};
    OwError err;
    char used[128];
    cr_assert_eq(export_run(e->run, *out_dir, &o, used, sizeof used, &err), 0, "%s", err.msg);
}

static void round_trip(const char *fixture) {
    Env e;
    env_open(&e, fixture);
    int64_t V;
    char *final = ow_path_join(e.run, "model");
    float *want = logits_of(final, 0, &V);
    size_t n = (size_t)(B * T * V);
    /* fp32: exactly the run's model */
    char *x32;
    export_to(&e, "x32", OW_F32, 0, NULL, &x32);
    float *got = logits_of(x32, 0, &V);
    cr_assert_arr_eq(got, want, n * sizeof(float), "the fp32 export gives the run's logits exactly");
    free(got);
    /* the run directory itself (base + newest checkpoint), as eval loads it */
    got = logits_of(e.run, 1, &V);
    cr_assert_arr_eq(got, want, n * sizeof(float));
    free(got);
    /* tokenizer files copied; config.json with torch_dtype */
    const char *tf[] = {"tokenizer.json", "tokenizer_config.json", "generation_config.json"};
    for (int i = 0; i < 3; i++) {
        char *a = ow_path_join(e.base, tf[i]), *b = ow_path_join(x32, tf[i]), *ta, *tb;
        size_t la, lb;
        OwError err;
        cr_assert_eq(ow_read_file(a, &ta, &la, &err), 0, "%s", err.msg);
        cr_assert_eq(ow_read_file(b, &tb, &lb, &err), 0, "%s copied: %s", tf[i], err.msg);
        cr_assert(la == lb && memcmp(ta, tb, la) == 0, "%s copied byte for byte", tf[i]);
        free(ta);
        free(tb);
        free(a);
        free(b);
    }
    /* bf16: half the bytes, close logits */
    char *x16;
    export_to(&e, "x16", OW_BF16, 0, NULL, &x16);
    size_t s32 = dir_bytes(x32, ".safetensors"), s16 = dir_bytes(x16, ".safetensors");
    cr_assert(s16 < s32 * 0.52 && s16 > s32 * 0.48, "bf16 %zu bytes, fp32 %zu", s16, s32);
    char *cj = ow_path_join(x16, "config.json");
    OwError err;
    cJSON *j = json_parse_file(cj, &err);
    cr_assert(j != NULL, "%s", err.msg);
    const cJSON *td = cJSON_GetObjectItem(j, "torch_dtype");
    cr_assert(td && cJSON_IsString(td) && strcmp(td->valuestring, "bfloat16") == 0, "torch_dtype bfloat16");
    cJSON_Delete(j);
    free(cj);
    got = logits_of(x16, 0, &V);
    double e16 = ts_rel_err(got, want, n);
    cr_assert_lt(e16, 5e-2, "bf16 logits within %.1e (bf16 keeps 8 significant bits)", e16);
    cr_assert_gt(e16, 0, "bf16 rounding shows");
    free(got);
    /* shards with an index */
    char *xs;
    export_to(&e, "xs", OW_F32, 40000, NULL, &xs);
    char *idx = ow_path_join(xs, "model.safetensors.index.json"), *one = ow_path_join(xs, "model.safetensors");
    cr_assert(ow_path_exists(idx) && !ow_path_exists(one), "sharded export has an index");
    got = logits_of(xs, 0, &V);
    cr_assert_arr_eq(got, want, n * sizeof(float), "the sharded export loads to the same logits");
    free(got);
    /* an older checkpoint by name: its model differs from the final one */
    char *xo;
    export_to(&e, "xo", OW_F32, 0, "step-000002", &xo);
    got = logits_of(xo, 0, &V);
    cr_assert_gt(ts_rel_err(got, want, n), 1e-4, "step 2 is not the final model");
    free(got);
    free(idx);
    free(one);
    free(xo);
    free(xs);
    free(x16);
    free(x32);
    free(want);
    free(final);
    env_close(&e);
}

Test(export, round_trip_untied) { round_trip("trajectory/model"); }
Test(export, round_trip_tied_embeddings) { round_trip("models/gqa_tied"); }

static void expect_cli_error(const char *args, int want_rc, const char *needle) {
    char cmd[4096], *out;
    snprintf(cmd, sizeof cmd, "%s export %s", ts_owlore_binary(), args);
    int rc = ts_run(cmd, &out);
    cr_assert_eq(rc, want_rc, "%s:\n%s", cmd, out);
    cr_assert(strstr(out, needle) != NULL, "lacks \"%s\":\n%s", needle, out);
    free(out);
}

Test(export, bad_requests_are_named) {
    Env e;
    env_open(&e, "trajectory/model");
    char args[4096];
    snprintf(args, sizeof args, "%s --out %s/x --dtype fp8", e.run, e.dir);
    expect_cli_error(args, 2, "allowed: bf16, fp32, fp16");
    snprintf(args, sizeof args, "%s --out %s/x --checkpoint step-000099", e.run, e.dir);
    expect_cli_error(args, 1, "step-000099");
    snprintf(args, sizeof args, "%s/nope --out %s/x", e.dir, e.dir);
    expect_cli_error(args, 1, "config.json");
    snprintf(args, sizeof args, "%s", e.run);
    expect_cli_error(args, 2, "--out");
    /* the output directory is replaced, so it may not be the run, nor a directory of other files */
    snprintf(args, sizeof args, "%s --out %s", e.run, e.run);
    expect_cli_error(args, 1, "is the run or its base model");
    snprintf(args, sizeof args, "%s --out %s", e.run, e.dir);
    expect_cli_error(args, 1, "is not a model directory");
    /* a run from a preset has no base model */
    char *fake = ow_path_join(e.dir, "preset_run"), *cfg = ow_path_join(fake, "config.json");
    OwError err;
    cr_assert_eq(ow_mkdir_p(fake, &err), 0);
    const char *text = "{\"method\": \"owlore\", \"model\": \"tiny\", \"data\": \"synthetic\", \"out\": \"x\"}";
    ts_write_file(cfg, text, strlen(text));
    snprintf(args, sizeof args, "%s --out %s/x", fake, e.dir);
    expect_cli_error(args, 1, "no base model to export");
    /* a run without checkpoints */
    char *ck = ow_path_join(e.run, "checkpoints");
    ts_rmtree(ck);
    snprintf(args, sizeof args, "%s --out %s/x", e.run, e.dir);
    expect_cli_error(args, 1, "has no checkpoint");
    char *x = ow_path_join(e.dir, "x");
    cr_assert(!ow_path_exists(x), "nothing written after an error");
    free(x);
    free(ck);
    free(fake);
    free(cfg);
    env_close(&e);
}

Test(export, command_writes_the_directory) {
    Env e;
    env_open(&e, "trajectory/model");
    char cmd[4096], *out;
    snprintf(cmd, sizeof cmd, "%s export %s --out %s/hf --dtype bf16 --shard-size 30KB", ts_owlore_binary(), e.run,
             e.dir);
    cr_assert_eq(ts_run(cmd, &out), 0, "%s", out);
    cr_assert(strstr(out, "step-000006") != NULL, "names the checkpoint it used:\n%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s info %s/hf", ts_owlore_binary(), e.dir);
    cr_assert_eq(ts_run(cmd, &out), 0, "owlore info reads the export:\n%s", out);
    free(out);
    env_close(&e);
}
