// ctest-labels: cpu
/* test_outliers.c: OWL outlier ratios against the PyTorch implementation of
 * the OWL formula (tests/reference/make_owl_fixture.py): same per-module
 * counts, ratios within 1e-6, probabilities; and the `owlore outliers`
 * command's JSON and its errors. */
#include "backend/backend.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/rng.h"
#include "data/tokfile.h"
#include "model/safetensors.h"
#include "owl/outliers.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

Test(outliers, match_the_pytorch_owl_formula) {
    OwError err;
    char *model_dir = ts_fixture_path("trajectory/model"), *fx = ts_fixture_path("owl/owl.safetensors");
    Backend *be = backend_create_cpu(2, 0, &err);
    Model *m;
    cr_assert_eq(model_load_hf(be, model_dir, &m, &err), 0, "%s", err.msg);
    SafeTensors st;
    cr_assert_eq(safetensors_open(fx, &st, &err), 0, "%s", err.msg);
    const StTensor *ids = safetensors_find(&st, "calib_ids");
    const double *Ms = safetensors_find(&st, "M")->data, *ratios = safetensors_find(&st, "ratios")->data;
    const double *means = safetensors_find(&st, "block_mean")->data, *probs = safetensors_find(&st, "probs")->data;
    const int64_t *counts = safetensors_find(&st, "counts")->data, *numel = safetensors_find(&st, "numel")->data;
    int64_t ns = ids->shape[0], sl = ids->shape[1];
    int L = (int)m->cfg.num_layers;
    for (int k = 0; k < 2; k++) {
        /* micro-batches of 1 and of all sequences, and the MLP in row chunks, give the same statistics */
        for (int mb = 1; mb <= 4; mb += 3) {
            m->mlp_chunk_rows = mb == 4 ? 7 : 0;
            OutlierResult r;
            cr_assert_eq(owl_compute_ids(m, ids->data, ns, sl, Ms[k], mb, &r, &err), 0, "%s", err.msg);
            for (int l = 0; l < L; l++) {
                cr_assert_float_eq(r.ratios[l], ratios[k * L + l], 1e-6, "M=%g block %d: ratio %.8f vs %.8f", Ms[k], l,
                                   r.ratios[l], ratios[k * L + l]);
                cr_assert_float_eq(r.probs[l], probs[k * L + l], 1e-6);
                cr_assert_lt(fabs(r.block_mean[l] - means[k * L + l]) / means[k * L + l], 1e-5);
                for (int j = 0; j < OWL_MODULES; j++) {
                    cr_assert_eq(r.mod_count[l * OWL_MODULES + j], counts[(k * L + l) * OWL_MODULES + j],
                                 "M=%g block %d %s: %lld outliers vs %lld", Ms[k], l, k_owl_module_names[j],
                                 (long long)r.mod_count[l * OWL_MODULES + j],
                                 (long long)counts[(k * L + l) * OWL_MODULES + j]);
                    cr_assert_eq(r.mod_numel[l * OWL_MODULES + j], numel[l * OWL_MODULES + j]);
                }
            }
            owl_result_free(&r);
        }
    }
    safetensors_close(&st);
    model_free(m);
    be->ops->destroy(be);
    free(model_dir);
    free(fx);
}

static char *make_data(const char *dir) {
    char *p = ow_path_join(dir, "calib.bin");
    int32_t ids[600];
    Rng r;
    rng_init(&r, 5, 5);
    for (int i = 0; i < 600; i++) ids[i] = (int32_t)rng_below(&r, 97);
    OwError err;
    cr_assert_eq(tokfile_write(p, ids, NULL, 600, 97, NULL, 0, 0, 0, &err), 0);
    return p;
}

Test(outliers, command_writes_ratios_json) {
    char *dir = ts_tmpdir(), *data = make_data(dir), *model = ts_fixture_path("trajectory/model");
    char cmd[4096], *out;
    snprintf(cmd, sizeof cmd,
             "%s outliers --model %s --data %s --out %s/r.json --nsamples 8 --seqlen 32 --M 3 --device cpu",
             ts_owlore_binary(), model, data, dir);
    cr_assert_eq(ts_run(cmd, &out), 0, "%s", out);
    char *rp = ow_path_join(dir, "r.json");
    OwError err;
    cJSON *j = json_parse_file(rp, &err);
    cr_assert(j != NULL, "%s", err.msg);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "ratios")), 4);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "probabilities")), 4);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "modules")), 28, "7 modules per block");
    double sum = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "probabilities")) sum += it->valuedouble;
    cr_assert_float_eq(sum, 1.0, 1e-9);
    cJSON_Delete(j);
    /* the file feeds train --ratios */
    double ratios[4];
    cr_assert_eq(owl_read_ratios(rp, 4, ratios, &err), 0, "%s", err.msg);
    free(out);
    /* errors */
    snprintf(cmd, sizeof cmd, "%s outliers --model %s --data %s", ts_owlore_binary(), model, data);
    cr_assert_eq(ts_run(cmd, &out), 2, "--out missing: %s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s outliers --model %s --data /nonexistent.bin --out %s/x.json --device cpu",
             ts_owlore_binary(), model, dir);
    cr_assert_eq(ts_run(cmd, &out), 1);
    cr_assert(strstr(out, "/nonexistent.bin") != NULL, "%s", out);
    free(out);
    free(rp);
    free(data);
    free(model);
    ts_rmtree(dir);
    free(dir);
}
