/* cmd_eval.c: `owlore eval`: loss and perplexity of a model on token data or
 * byte-level text, or multiple-choice accuracy on JSONL (train/eval.h). The
 * model is a Hugging Face directory or a training run (its base model with
 * its newest or named checkpoint). */
#include "cmd/commands.h"
#include "core/args.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "model/safetensors.h"
#include "data/tokenizer.h"
#include "train/eval.h"
#include "train/run_model.h"
#include "train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The logits of the first batch with its ids, for comparisons with other implementations. */
static int dump_logits(Model *m, const EvalBatches *src, int64_t B, int64_t T, const char *path, OwError *err) {
    int64_t V = m->cfg.vocab_size, N = B * T;
    int32_t *ids = ow_xmalloc((size_t)N * sizeof(int32_t)), *tg = ow_xmalloc((size_t)N * sizeof(int32_t));
    float *logits = ow_try_malloc((size_t)(N * V) * sizeof(float), "logits", err);
    int rc = -1;
    if (logits) {
        src->fill(src->ctx, 0, ids, tg);
        rc = model_forward_logits(m, ids, logits, err);
    }
    if (rc == 0) {
        StWriteTensor t[2] = {{.name = "ids", .dtype = OW_I32, .ndim = 2, .shape = {B, T}, .data = ids},
                              {.name = "logits", .dtype = OW_F32, .ndim = 3, .shape = {B, T, V}, .data = logits}};
        rc = safetensors_write(path, t, 2, NULL, err);
    }
    free(ids);
    free(tg);
    free(logits);
    return rc;
}

static int write_json(const char *path, cJSON *o, OwError *err) {
    int rc = path ? json_write_file(path, o, err) : 0;
    cJSON_Delete(o);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *device = "auto", *checkpoint = NULL, *json = NULL, *dump = NULL;
    const char *offload = "auto";
    int64_t B = 8, T = 0, max_batches = 0, threads = 0;
    size_t gpu_mem = 0;
    ArgSpec specs[] = {
        {"model", ARG_STR, &model, "DIR|RUN_DIR", "a Hugging Face model directory, or a training run directory", NULL},
        {"data", ARG_STR, &data, "FILE", "token file, text (byte-level models), or multiple-choice .jsonl", NULL},
        {"batch-size", ARG_INT, &B, "B", "sequences per forward pass (default 8)", NULL},
        {"block-size", ARG_INT, &T, "T", "tokens per window (default: the model's context, at most 512)", NULL},
        {"max-batches", ARG_INT, &max_batches, "N", "evaluate only the first N batches (0: all)", NULL},
        {"checkpoint", ARG_STR, &checkpoint, "step-N", "with a run directory: this checkpoint instead of the newest",
         NULL},
        {"json", ARG_STR, &json, "FILE",
         "also write the results as JSON (per-choice log-likelihoods for multiple choice)", NULL},
        {"dump-logits", ARG_STR, &dump, "FILE", "write the first batch's ids and logits (F32) as safetensors", NULL},
        {"offload", ARG_STR, &offload, "MODE",
         "auto: blocks the device cannot hold beside the activations stream from page-locked host memory (default) | "
         "none | host (every block streams)",
         NULL},
        CMD_DEVICE_SPECS(&device, &gpu_mem, &threads),
    };
    int nspecs = (int)(sizeof specs / sizeof specs[0]);
    ArgsResult res;
    OwError err;
    int parsed =
        cmd_args("eval", argc, argv, specs, nspecs, "owlore eval --model DIR|RUN_DIR --data FILE [flags]",
                 "Loss and perplexity on an owlore token file or on text (byte-level models): the stream is cut\n"
                 "into consecutive windows of --block-size tokens and every token after the first is scored once.\n"
                 "Multiple choice on a .jsonl file of {\"context\": str, \"choices\": [str], \"label\": int}: each\n"
                 "choice scored by the log-likelihood of its tokens after the context, reported as acc and\n"
                 "acc_norm (log-likelihood divided by the choice's length in characters), as\n"
                 "lm-evaluation-harness does. Items may carry pre-tokenized \"context_ids\" and \"choice_ids\";\n"
                 "models with a tokenizer.json need them for now.",
                 &res);
    if (parsed >= 0) return parsed;
    if (res.npos > 0 || !model || !data) {
        ow_fail(&err, "--model and --data are required (see --help)");
        cmd_report_error("eval", &err);
        return 2;
    }
    if (B < 1 || T < 0 || max_batches < 0) {
        ow_fail(&err, "--batch-size must be at least 1, --block-size and --max-batches non-negative");
        cmd_report_error("eval", &err);
        return 2;
    }
    Backend *be = backend_create(device, &(BackendOptions){.threads = (int)threads, .mem_cap = gpu_mem}, &err);
    if (!be) return cmd_report_error("eval", &err);
    Model *m = NULL;
    ModelConfig mc;
    TokData d = {0};
    McSet set = {0};
    Tokenizer *tok = NULL;
    double *ll = NULL;
    char base[4096];
    int rc = 1;
    if (model_config_of(model, &mc, &err) != 0) goto done;
    if (T == 0) T = mc.max_position_embeddings < 512 ? mc.max_position_embeddings : 512;
    /* blocks the device cannot hold beside the forward's activations stream from host memory */
    if (forward_model_load(be, model, 1, checkpoint, offload, &mc,
                           model_activation_bytes(&mc, be->act_dtype, B, T, 1, 0, 0, 0), &m, base, sizeof base,
                           &err) != 0)
        goto done;
    if (model_prepare(m, B, T, 1, &err) != 0) goto done;
    if (ends_with(data, ".jsonl")) {
        /* multiple choice; text becomes ids through an encoder (bytes here; a tokenizer plugs in the same way) */
        char *tokpath = base[0] ? ow_path_join(base, "tokenizer.json") : NULL;
        int has_tok = tokpath && ow_path_exists(tokpath);
        EvalEncoder enc = eval_encoder_bytes();
        if (has_tok) {
            if (tokenizer_load(tokpath, &tok, &err) != 0) {
                free(tokpath);
                goto done;
            }
            enc = eval_encoder_tokenizer(tok);
        }
        free(tokpath);
        if (mc_read_jsonl(data, &enc, &set, &err) != 0) goto done;
        if (dump) {
            ow_fail(&err, "--dump-logits works with token data, not multiple choice");
            goto done;
        }
        ll = ow_xmalloc((size_t)set.nchoices_total * sizeof(double));
        if (eval_mc_loglik(m, B, T, &set, ll, &err) != 0) goto done;
        double acc, acc_norm;
        int *pred = ow_xmalloc((size_t)set.n * sizeof(int)), *pred_norm = ow_xmalloc((size_t)set.n * sizeof(int));
        eval_mc_accuracy(&set, ll, &acc, &acc_norm, pred, pred_norm);
        printf("multiple choice: %lld items, acc %.4f, acc_norm %.4f\n", (long long)set.n, acc, acc_norm);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "items", (double)set.n);
        cJSON_AddNumberToObject(o, "acc", acc);
        cJSON_AddNumberToObject(o, "acc_norm", acc_norm);
        cJSON *arr = cJSON_AddArrayToObject(o, "loglik");
        for (int64_t i = 0, k = 0; i < set.n; i++) {
            cJSON *row = cJSON_CreateArray();
            for (int j = 0; j < set.items[i].nchoices; j++) cJSON_AddItemToArray(row, cJSON_CreateNumber(ll[k++]));
            cJSON_AddItemToArray(arr, row);
        }
        cJSON *pj = cJSON_AddArrayToObject(o, "pred"), *pn = cJSON_AddArrayToObject(o, "pred_norm");
        for (int64_t i = 0; i < set.n; i++) {
            cJSON_AddItemToArray(pj, cJSON_CreateNumber(pred[i]));
            cJSON_AddItemToArray(pn, cJSON_CreateNumber(pred_norm[i]));
        }
        free(pred);
        free(pred_norm);
        if (write_json(json, o, &err) != 0) goto done;
    } else {
        if (train_load_data(data, base[0] ? base : NULL, m->cfg.vocab_size, &d, &err) != 0) goto done;
        EvalStream es;
        EvalBatches src = eval_batches_stream(&es, &d, B, T);
        if (src.count == 0) {
            ow_fail(&err, "%s: fewer than 2 tokens, nothing to evaluate", data);
            goto done;
        }
        if (max_batches > 0 && src.count > max_batches) src.count = max_batches;
        if (dump && dump_logits(m, &src, B, T, dump, &err) != 0) goto done;
        int32_t *ids = ow_xmalloc((size_t)(B * T) * sizeof(int32_t)),
                *tg = ow_xmalloc((size_t)(B * T) * sizeof(int32_t));
        EvalLoss r;
        int erc = eval_loss(m, &src, ids, tg, &r, &err);
        free(ids);
        free(tg);
        if (erc != 0) goto done;
        printf("loss %.6f, perplexity %.4f (%lld tokens scored in %lld batches of %lld x %lld)\n", r.loss, r.ppl,
               (long long)r.tokens, (long long)r.batches, (long long)B, (long long)T);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "loss", r.loss);
        cJSON_AddNumberToObject(o, "perplexity", r.ppl);
        cJSON_AddNumberToObject(o, "tokens", (double)r.tokens);
        if (write_json(json, o, &err) != 0) goto done;
    }
    rc = 0;
done:
    if (rc) cmd_report_error("eval", &err);
    free(ll);
    mc_set_free(&set);
    tokenizer_free(tok);
    tokdata_free(&d);
    model_free(m);
    be->ops->destroy(be);
    return rc;
}
