/* train_fixture.c: see train_fixture.h. */
#include "train_fixture.h"

#include "core/fileio.h"
#include "core/json.h"
#include "data/tokfile.h"
#include "model/safetensors.h"
#include "test_support.h"
#include "train/trainer.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ts_train_config(TrainConfig *c, const char *method, const char *model, const char *data, const char *out,
                     const char *device) {
    OwError err;
    train_config_defaults(c);
    cr_assert_eq(train_config_apply_method(c, method, &err), 0, "%s", err.msg);
    snprintf(c->model, sizeof c->model, "%s", model);
    snprintf(c->data, sizeof c->data, "%s", data);
    snprintf(c->out, sizeof c->out, "%s", out);
    snprintf(c->device, sizeof c->device, "%s", device);
    c->threads = 1;
}

void ts_small_synthetic_config(TrainConfig *c, const char *method, const char *out) {
    char *model = ts_fixture_path("trajectory/model");
    ts_train_config(c, method, model, "synthetic", out, "cpu");
    free(model);
    c->steps = 6;
    c->batch_size = 4;
    c->block_size = 16;
    c->val_split = 0;
    c->save_every = -1;
    c->save_model = 0;
    c->rank = 8;
    c->rf_oversample = 4;
}

char *ts_trajectory_config(const char *name, const char *dir, const char *device, TrainConfig *c) {
    OwError err;
    char *fx = ts_fixture_path("trajectory");
    char *rpath = ow_path_join(fx, "recipes.json");
    cJSON *all = json_parse_file(rpath, &err);
    cr_assert(all != NULL, "%s", err.msg);
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(all, name);
    cr_assert(rec != NULL, "recipe %s missing", name);
    /* the token stream as an owlore token file */
    char *spath = ow_path_join(fx, "stream.safetensors");
    SafeTensors st;
    cr_assert_eq(safetensors_open(spath, &st, &err), 0, "%s", err.msg);
    const StTensor *ids = safetensors_find(&st, "ids");
    char *data = ow_path_join(dir, "stream.bin");
    cr_assert_eq(tokfile_write(data, ids->data, NULL, ids->shape[0], 97, NULL, 0, 0, 0, &err), 0, "%s", err.msg);
    safetensors_close(&st);
    /* the recipe's settings as owlore keys */
    char run[64];
    snprintf(run, sizeof run, "run-%s", device);
    char *model = ow_path_join(fx, "model"), *out = ow_path_join(dir, run);
    ts_train_config(c, cJSON_GetObjectItemCaseSensitive(rec, "method")->valuestring, model, data, out, device);
    for (const cJSON *it = rec->child; it; it = it->next) {
        if (cJSON_IsNull(it)) continue;
        cr_assert_eq(train_config_set_json(c, it->string, it, "recipes.json", &err), 0, "%s", err.msg);
    }
    cJSON_Delete(all);
    free(model);
    free(data);
    free(spath);
    free(rpath);
    free(fx);
    return out;
}

void ts_train(const TrainConfig *c) {
    OwError err;
    TrainSummary s;
    cr_assert_eq(train_run(c, &s, &err), 0, "%s: %s", c->out, err.msg);
}

static char *model_bytes(const char *out, size_t *n) {
    char *p = ow_path_join(out, "model/model.safetensors"), *data;
    OwError err;
    cr_assert_eq(ow_read_file(p, &data, n, &err), 0, "%s", err.msg);
    free(p);
    return data;
}

#define SAME_RUN_MAX_STEPS 64

void ts_expect_same_run(const char *a, const char *b, int steps) {
    double la[SAME_RUN_MAX_STEPS], lb[SAME_RUN_MAX_STEPS], ga[SAME_RUN_MAX_STEPS], gb[SAME_RUN_MAX_STEPS];
    cr_assert(steps > 0 && steps <= SAME_RUN_MAX_STEPS);
    ts_read_metric(a, "loss", la, steps);
    ts_read_metric(b, "loss", lb, steps);
    ts_read_metric(a, "grad_norm", ga, steps);
    ts_read_metric(b, "grad_norm", gb, steps);
    int differ = 0;
    for (int i = 0; i < steps; i++) {
        int d = memcmp(&la[i], &lb[i], sizeof la[i]) != 0 || memcmp(&ga[i], &gb[i], sizeof ga[i]) != 0;
        differ += d;
        if (d)
            cr_log_warn("step %2d: loss %.17g vs %.17g, grad norm %.17g vs %.17g  <-- FAIL", i, la[i], lb[i], ga[i],
                        gb[i]);
    }
    cr_expect_eq(differ, 0, "%s vs %s: %d of %d steps differ", a, b, differ, steps);
    size_t na, nb;
    char *ma = model_bytes(a, &na), *mb = model_bytes(b, &nb);
    cr_expect(na == nb && memcmp(ma, mb, na) == 0, "the final weights of %s and %s differ", a, b);
    free(ma);
    free(mb);
}
