/* cmd_outliers.c: `owlore outliers`: OWL outlier ratios of a model. */
#include "cmd/commands.h"
#include "train/run_model.h"
#include "core/args.h"
#include "core/log.h"
#include "owl/outliers.h"
#include "train/trainer.h"

#include <stdio.h>

int cmd_outliers(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *out = NULL, *device = "auto", *offload = "auto";
    int64_t nsamples = 128, seqlen = 2048, seed = 42, micro = 4, threads = 0;
    double M = 13.0;
    size_t gpu_mem = 0;
    ArgSpec specs[] = {
        {"model", ARG_STR, &model, "DIR", "Hugging Face model directory", NULL},
        {"data", ARG_STR, &data, "FILE",
         "calibration data: a token file, .txt or JSON lines of text/alpaca records (tokenized with the model's "
         "tokenizer.json and cached as train does; text as bytes for byte-level models)",
         NULL},
        {"out", ARG_STR, &out, "FILE", "where to write the ratios JSON", NULL},
        {"nsamples", ARG_INT, &nsamples, "N", "calibration sequences (default 128)", NULL},
        {"seqlen", ARG_INT, &seqlen, "T", "tokens per calibration sequence (default 2048)", NULL},
        {"M", ARG_FLOAT, &M, "M", "outlier threshold: a score above M times the block mean (default 13)", NULL},
        {"micro-batch", ARG_INT, &micro, "N", "sequences through a block at a time (default 4)", NULL},
        {"seed", ARG_INT, &seed, "N", "seed of the calibration sample (default 42)", NULL},
        {"offload", ARG_STR, &offload, "MODE",
         "auto: blocks the device cannot hold stream from page-locked host memory (default) | none | host", NULL},
        CMD_DEVICE_SPECS(&device, &gpu_mem, &threads),
    };
    int nspecs = (int)(sizeof specs / sizeof specs[0]);
    ArgsResult res;
    OwError err;
    int parsed = cmd_args(
        "outliers", argc, argv, specs, nspecs, "owlore outliers --model DIR --data FILE --out ratios.json [flags]",
        "Runs calibration sequences through the frozen model block by block and writes each block's\n"
        "OWL outlier ratio (percent of weights whose score |W_ij| * ||X_j|| exceeds M times the block\n"
        "mean), the layer-sampling probabilities, and per-module detail.",
        &res);
    if (parsed >= 0) return parsed;
    if (!model || !data || !out) {
        ow_fail(&err, "--model, --data and --out are required (see --help)");
        cmd_report_error("outliers", &err);
        return 2;
    }
    if (nsamples < 1 || seqlen < 2 || M <= 0) {
        ow_fail(&err, "--nsamples, --seqlen and --M must be positive");
        cmd_report_error("outliers", &err);
        return 2;
    }
    Backend *be = backend_create(device, &(BackendOptions){.threads = (int)threads, .mem_cap = gpu_mem}, &err);
    if (!be) return cmd_report_error("outliers", &err);
    Model *m = NULL;
    TokData d = {0};
    OutlierResult r;
    ModelConfig mc;
    int rc = 1;
    /* blocks the device cannot hold beside the calibration's buffers stream from host memory */
    int64_t mb = micro < nsamples ? micro : nsamples;
    if (model_config_of(model, &mc, &err) != 0) goto done;
    int64_t T = seqlen < mc.max_position_embeddings ? seqlen : mc.max_position_embeddings;
    size_t fwd = model_activation_bytes(&mc, be->act_dtype, mb, T, 1, 0, 0, 0) +
                 2 * (size_t)(mb * T * mc.hidden_size) * dtype_size(be->act_dtype);
    char base[4096];
    if (forward_model_load(be, model, 0, NULL, offload, &mc, fwd, &m, base, sizeof base, &err) != 0 ||
        train_load_data(data, model, m->cfg.vocab_size, &d, &err) != 0)
        goto done;
    if (seqlen > m->cfg.max_position_embeddings) {
        OW_WARN("--seqlen %lld exceeds the model's max_position_embeddings; using %lld", (long long)seqlen,
                (long long)m->cfg.max_position_embeddings);
        seqlen = m->cfg.max_position_embeddings;
    }
    if (owl_compute(m, &d, nsamples, seqlen, M, micro, (uint64_t)seed, &r, &err) != 0) goto done;
    if (owl_write_json(&r, model, out, &err) == 0) {
        printf("block  ratio(%%)  probability\n");
        for (int l = 0; l < r.num_layers; l++) printf("%5d  %8.4f  %.4f\n", l, r.ratios[l], r.probs[l]);
        printf("wrote %s\n", out);
        rc = 0;
    }
    owl_result_free(&r);
done:
    if (rc) cmd_report_error("outliers", &err);
    tokdata_free(&d);
    model_free(m);
    be->ops->destroy(be);
    return rc;
}
