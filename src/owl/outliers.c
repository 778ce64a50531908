/* outliers.c: see outliers.h. */
#include "owl/outliers.h"

#include "core/json.h"
#include "core/cancel.h"
#include "core/log.h"
#include "core/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const k_owl_module_names[OWL_MODULES] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                     "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                                     "mlp.down_proj"};
static const BlockWeight k_module_bw[OWL_MODULES] = {BW_Q, BW_K, BW_V, BW_O, BW_GATE, BW_UP, BW_DOWN};
/* which statistic feeds each module (see model_block_forward_stats) */
static const int k_module_stat[OWL_MODULES] = {0, 0, 0, 1, 2, 2, 3};

void owl_result_free(OutlierResult *r) {
    free(r->ratios);
    free(r->probs);
    free(r->block_mean);
    free(r->mod_count);
    free(r->mod_numel);
    memset(r, 0, sizeof *r);
}

int owl_compute_ids(Model *m, const int32_t *ids, int64_t nsamples, int64_t seqlen, double M, int64_t micro_batch,
                    OutlierResult *res, OwError *err) {
    memset(res, 0, sizeof *res);
    const ModelConfig *c = &m->cfg;
    Backend *be = m->be;
    int L = (int)c->num_layers;
    if (nsamples < 1 || seqlen < 1) return ow_fail(err, "nsamples and seqlen must be positive");
    if (micro_batch < 1) micro_batch = 1;
    if (micro_batch > nsamples) micro_batch = nsamples;
    while (nsamples % micro_batch) micro_batch--;
    if (model_prepare(m, micro_batch, seqlen, 1, err) != 0) return -1;
    int64_t C = c->hidden_size, Nmb = micro_batch * seqlen;
    size_t esz = dtype_size(be->act_dtype);
    size_t stream_bytes = (size_t)(nsamples * seqlen * C) * esz;
    char *stream = ow_try_malloc(stream_bytes, "calibration residual stream (host)", err);
    if (!stream) return -1;
    res->num_layers = L;
    res->M = M;
    res->nsamples = nsamples;
    res->seqlen = seqlen;
    res->ratios = ow_xcalloc((size_t)L, sizeof(double));
    res->probs = ow_xcalloc((size_t)L, sizeof(double));
    res->block_mean = ow_xcalloc((size_t)L, sizeof(double));
    res->mod_count = ow_xcalloc((size_t)L * OWL_MODULES, sizeof(int64_t));
    res->mod_numel = ow_xcalloc((size_t)L * OWL_MODULES, sizeof(int64_t));
    int64_t widths[4] = {C, c->num_heads * c->head_dim, C, c->intermediate_size};
    Tensor x = tensor_2d(be->act_dtype, Nmb, C), y = x, stats[4];
    for (int s = 0; s < 4; s++) stats[s] = tensor_1d(OW_F32, widths[s]);
    int rc = -1;
    float *host = NULL;
    if (be->ops->alloc(be, &x, MEM_ACTIVATIONS, "calibration input", err) ||
        be->ops->alloc(be, &y, MEM_ACTIVATIONS, "calibration output", err))
        goto done;
    for (int s = 0; s < 4; s++)
        if (be->ops->alloc(be, &stats[s], MEM_WORKSPACE, "calibration statistics", err)) goto done;
    host = ow_xmalloc((size_t)c->intermediate_size * sizeof(float) + (size_t)C * sizeof(float) * 4);
    /* embeddings of every sequence into the host stream */
    for (int64_t s0 = 0; s0 < nsamples; s0 += micro_batch) {
        if (model_embed_batch(m, ids + s0 * seqlen, &x, err) != 0) goto done;
        be->ops->download(be, stream + (size_t)(s0 * seqlen * C) * esz, be->act_dtype, &x);
    }
    double t0 = ow_now();
    for (int l = 0; l < L; l++) {
        if (model_block_acquire(m, l, err) != 0) goto done;
        for (int s = 0; s < 4; s++) be->ops->fill(be, &stats[s], 0.0f);
        for (int64_t s0 = 0; s0 < nsamples; s0 += micro_batch) {
            if (ow_cancelled()) {
                ow_fail_cancelled(err, "OWL outlier scoring");
                goto done;
            }
            char *chunk = stream + (size_t)(s0 * seqlen * C) * esz;
            be->ops->upload(be, &x, chunk, be->act_dtype);
            model_block_forward_stats(m, l, &x, &y, stats);
            be->ops->download(be, chunk, be->act_dtype, &y);
        }
        /* colscale = sqrt(s_j / nsamples) */
        for (int s = 0; s < 4; s++) {
            be->ops->download(be, host, OW_F32, &stats[s]);
            for (int64_t j = 0; j < widths[s]; j++) host[j] = (float)sqrt((double)host[j] / (double)nsamples);
            be->ops->upload(be, &stats[s], host, OW_F32);
        }
        double total = 0;
        int64_t numel = 0;
        for (int k = 0; k < OWL_MODULES; k++) {
            const Param *p = model_block_param(m, l, k_module_bw[k]);
            total += be->ops->score_sum(be, &p->w, &stats[k_module_stat[k]]);
            res->mod_numel[l * OWL_MODULES + k] = tensor_numel(&p->w);
            numel += tensor_numel(&p->w);
        }
        double mu = total / (double)numel;
        res->block_mean[l] = mu;
        int64_t count = 0;
        for (int k = 0; k < OWL_MODULES; k++) {
            const Param *p = model_block_param(m, l, k_module_bw[k]);
            int64_t n = be->ops->score_count(be, &p->w, &stats[k_module_stat[k]], M * mu);
            res->mod_count[l * OWL_MODULES + k] = n;
            count += n;
        }
        model_block_release(m, l);
        res->ratios[l] = 100.0 * (double)count / (double)numel;
        double el = ow_now() - t0;
        ow_progress("outliers: block %d/%d  ratio %.4f%%  (%.1f s, ETA %.0f s)", l + 1, L, res->ratios[l], el,
                    el / (l + 1) * (L - l - 1));
    }
    ow_progress_end();
    double sum = 0;
    for (int l = 0; l < L; l++) sum += res->ratios[l];
    for (int l = 0; l < L; l++) res->probs[l] = sum > 0 ? res->ratios[l] / sum : 1.0 / L;
    if (sum <= 0) OW_WARN("no block has outliers at M = %g: probabilities are uniform (hint: lower --M)", M);
    rc = 0;
done:
    free(host);
    free(stream);
    be->ops->release(be, &x, MEM_ACTIVATIONS);
    be->ops->release(be, &y, MEM_ACTIVATIONS);
    for (int s = 0; s < 4; s++) be->ops->release(be, &stats[s], MEM_WORKSPACE);
    model_acts_free(m);
    if (rc != 0) owl_result_free(res);
    return rc;
}

int owl_compute(Model *m, const TokData *data, int64_t nsamples, int64_t seqlen, double M, int64_t micro_batch,
                uint64_t seed, OutlierResult *res, OwError *err) {
    if (data->count < seqlen + 1)
        return ow_fail(err,
                       "the calibration data has %lld tokens, fewer than one sequence of %lld + 1 "
                       "(hint: more data or a smaller --seqlen)",
                       (long long)data->count, (long long)seqlen);
    Rng r;
    rng_init(&r, seed, RNG_STREAM_CALIB);
    int32_t *ids = ow_try_malloc((size_t)(nsamples * seqlen) * sizeof(int32_t), "calibration ids", err);
    if (!ids) return -1;
    uint64_t span = (uint64_t)(data->count - seqlen);
    for (int64_t s = 0; s < nsamples; s++) {
        int64_t start = (int64_t)rng_below(&r, span);
        for (int64_t t = 0; t < seqlen; t++) ids[s * seqlen + t] = tokdata_id(data, start + t);
    }
    int rc = owl_compute_ids(m, ids, nsamples, seqlen, M, micro_batch, res, err);
    free(ids);
    return rc;
}

int owl_write_json(const OutlierResult *r, const char *model_name, const char *path, OwError *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "format", "owlore-outliers");
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON_AddStringToObject(o, "model", model_name ? model_name : "");
    cJSON_AddNumberToObject(o, "M", r->M);
    cJSON_AddNumberToObject(o, "nsamples", (double)r->nsamples);
    cJSON_AddNumberToObject(o, "seqlen", (double)r->seqlen);
    cJSON_AddNumberToObject(o, "num_layers", r->num_layers);
    cJSON_AddItemToObject(o, "ratios", cJSON_CreateDoubleArray(r->ratios, r->num_layers));
    cJSON_AddItemToObject(o, "probabilities", cJSON_CreateDoubleArray(r->probs, r->num_layers));
    cJSON_AddItemToObject(o, "block_mean", cJSON_CreateDoubleArray(r->block_mean, r->num_layers));
    cJSON *mods = cJSON_AddArrayToObject(o, "modules");
    for (int l = 0; l < r->num_layers; l++) {
        for (int k = 0; k < OWL_MODULES; k++) {
            cJSON *e = cJSON_CreateObject();
            int64_t n = r->mod_count[l * OWL_MODULES + k], t = r->mod_numel[l * OWL_MODULES + k];
            cJSON_AddNumberToObject(e, "layer", l);
            cJSON_AddStringToObject(e, "module", k_owl_module_names[k]);
            cJSON_AddNumberToObject(e, "outliers", (double)n);
            cJSON_AddNumberToObject(e, "numel", (double)t);
            cJSON_AddNumberToObject(e, "ratio", 100.0 * (double)n / (double)t);
            cJSON_AddItemToArray(mods, e);
        }
    }
    int rc = json_write_file(path, o, err);
    cJSON_Delete(o);
    return rc;
}

int owl_read_ratios(const char *path, int num_layers, double *ratios, OwError *err) {
    char *text;
    size_t len;
    if (ow_read_file(path, &text, &len, err) != 0) return -1;
    int n = 0, rc = -1;
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r')) i++;
    if (i < len && (text[i] == '{' || text[i] == '[')) {
        cJSON *j = json_parse(text, len, path, err);
        if (!j) goto out;
        const cJSON *arr = cJSON_IsArray(j) ? j : cJSON_GetObjectItemCaseSensitive(j, "ratios");
        if (!cJSON_IsArray(arr)) {
            cJSON_Delete(j);
            ow_fail(err, "%s: expected a key \"ratios\" holding an array of per-block scores", path);
            goto out;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) {
            if (!cJSON_IsNumber(it)) {
                cJSON_Delete(j);
                ow_fail(err, "%s: ratios[%d] is not a number", path, n);
                goto out;
            }
            if (n < num_layers) ratios[n] = it->valuedouble;
            n++;
        }
        cJSON_Delete(j);
    } else {
        char *p = text, *end;
        for (;;) {
            while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r' || *p == ',') p++;
            if (!*p) break;
            double v = strtod(p, &end);
            if (end == p) {
                ow_fail(err, "%s: value %d is not a number (expected one score per block)", path, n);
                goto out;
            }
            if (n < num_layers) ratios[n] = v;
            n++;
            p = end;
        }
    }
    if (n != num_layers) {
        ow_fail(err,
                "%s: has %d per-block scores but the model has %d blocks (hint: compute them for this model with "
                "`owlore outliers`)",
                path, n, num_layers);
        goto out;
    }
    for (int l = 0; l < num_layers; l++) {
        if (!isfinite(ratios[l]) || ratios[l] < 0) {
            ow_fail(err, "%s: score of block %d is %g; scores must be finite and non-negative", path, l, ratios[l]);
            goto out;
        }
    }
    rc = 0;
out:
    free(text);
    return rc;
}
