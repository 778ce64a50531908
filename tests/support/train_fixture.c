/* train_fixture.c: see train_fixture.h. */
#include "train_fixture.h"

#include "core/fileio.h"
#include "core/json.h"
#include "data/tokfile.h"
#include "model/safetensors.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

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
