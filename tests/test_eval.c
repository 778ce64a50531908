// ctest-labels: cpu
/* test_eval.c: evaluation against transformers (tests/reference/make_eval_fixture.py):
 * the real TinyStories-656K model's loss over consecutive windows of a token
 * stream, and its multiple-choice log-likelihoods on pre-tokenized items (the
 * HF tokenizer's ids); a tiny byte-level model through `owlore eval` on text
 * (loss) and on text-only multiple-choice JSONL (owlore tokenizes as bytes,
 * moves the context's trailing whitespace, normalises by characters); bad
 * input is refused with the file and line. */
#include "core/fileio.h"
#include "core/json.h"
#include "model/safetensors.h"
#include "test_support.h"
#include "train/eval.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double *ref_f64(const SafeTensors *st, const char *name, int64_t *n) {
    const StTensor *t = safetensors_find(st, name);
    cr_assert(t && t->dtype == OW_F64, "fixture tensor %s", name);
    if (n) *n = t->shape[0];
    return t->data;
}

Test(eval, tinystories_loss_over_windows_matches_transformers) {
    OwError err;
    char *fx = ts_fixture_path("eval/tinystories.safetensors"), *mdir = ts_shared_path("data/real/hf/TinyStories-656K");
    SafeTensors st;
    cr_assert_eq(safetensors_open(fx, &st, &err), 0, "%s", err.msg);
    const StTensor *ids = safetensors_find(&st, "ids");
    int32_t *copy = malloc((size_t)ids->shape[0] * sizeof(int32_t));
    memcpy(copy, ids->data, (size_t)ids->shape[0] * sizeof(int32_t));
    TokData d;
    tokdata_from_ids(&d, copy, ids->shape[0], 2048);
    Backend *be = backend_create_cpu(2, 0, &err);
    Model *m;
    cr_assert_eq(model_load_hf(be, mdir, &m, &err), 0, "%s", err.msg);
    /* B = 3 leaves a padded row in the last batch; T = 64 as the reference */
    cr_assert_eq(model_prepare(m, 3, 64, 1, &err), 0, "%s", err.msg);
    EvalStream es;
    EvalBatches src = eval_batches_stream(&es, &d, 3, 64);
    int32_t ib[3 * 64], tb[3 * 64];
    EvalLoss r;
    cr_assert_eq(eval_loss(m, &src, ib, tb, &r, &err), 0, "%s", err.msg);
    double ref = ref_f64(&st, "loss", NULL)[0];
    int64_t nref = ((const int64_t *)safetensors_find(&st, "ntokens")->data)[0];
    cr_assert_eq(r.tokens, nref);
    cr_assert_lt(fabs(r.loss - ref) / ref, 1e-6, "loss %.8f, transformers %.8f", r.loss, ref);
    cr_assert_lt(fabs(r.ppl - exp(ref)) / exp(ref), 1e-5);
    cr_log_info("TinyStories loss %.7f vs transformers %.7f (%lld tokens)", r.loss, ref, (long long)r.tokens);
    model_free(m);
    be->ops->destroy(be);
    tokdata_free(&d);
    safetensors_close(&st);
    free(fx);
    free(mdir);
}

static void check_logliks(const double *got, const double *ref, int64_t n) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(got[i] - ref[i]) / fmax(1.0, fabs(ref[i]));
        worst = fmax(worst, e);
        cr_assert_lt(e, 2e-6, "choice %lld: log-likelihood %.6f, transformers %.6f", (long long)i, got[i], ref[i]);
    }
    cr_log_info("%lld log-likelihoods within %.1e of transformers", (long long)n, worst);
}

Test(eval, tinystories_multiple_choice_matches_transformers) {
    OwError err;
    char *fx = ts_fixture_path("eval/tinystories.safetensors"), *jl = ts_fixture_path("eval/tinystories_mc.jsonl"),
         *mdir = ts_shared_path("data/real/hf/TinyStories-656K");
    SafeTensors st;
    cr_assert_eq(safetensors_open(fx, &st, &err), 0, "%s", err.msg);
    McSet set;
    /* no encoder: the items carry the HF tokenizer's ids */
    cr_assert_eq(mc_read_jsonl(jl, NULL, &set, &err), 0, "%s", err.msg);
    int64_t n;
    const double *ref = ref_f64(&st, "loglik", &n);
    cr_assert_eq(set.nchoices_total, n);
    Backend *be = backend_create_cpu(2, 0, &err);
    Model *m;
    cr_assert_eq(model_load_hf(be, mdir, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(model_prepare(m, 4, 32, 1, &err), 0, "%s", err.msg);
    double *ll = malloc((size_t)n * sizeof(double));
    cr_assert_eq(eval_mc_loglik(m, 4, 32, &set, ll, &err), 0, "%s", err.msg);
    check_logliks(ll, ref, n);
    double acc, acc_norm;
    int pred[16], pred_norm[16];
    eval_mc_accuracy(&set, ll, &acc, &acc_norm, pred, pred_norm);
    const int64_t *rp = safetensors_find(&st, "pred")->data, *rpn = safetensors_find(&st, "pred_norm")->data;
    for (int64_t i = 0; i < set.n; i++) {
        cr_assert_eq(pred[i], rp[i], "item %lld", (long long)i);
        cr_assert_eq(pred_norm[i], rpn[i], "item %lld", (long long)i);
    }
    cr_assert_float_eq(acc, ref_f64(&st, "acc", NULL)[0], 1e-12);
    cr_assert_float_eq(acc_norm, ref_f64(&st, "acc_norm", NULL)[0], 1e-12);
    /* a block smaller than context + continuation cuts the context from the left; the scores change */
    cr_assert_eq(model_prepare(m, 4, 4, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(eval_mc_loglik(m, 4, 4, &set, ll, &err), 0, "%s", err.msg);
    cr_assert(fabs(ll[0] - ref[0]) > 1e-3, "a 4-token window sees less context");
    free(ll);
    model_free(m);
    be->ops->destroy(be);
    mc_set_free(&set);
    safetensors_close(&st);
    free(fx);
    free(jl);
    free(mdir);
}

static cJSON *run_json(const char *args, const char *json_path) {
    char cmd[4096], *out;
    snprintf(cmd, sizeof cmd, "%s eval --device cpu --threads 2 %s --json %s", ts_owlore_binary(), args, json_path);
    int rc = ts_run(cmd, &out);
    cr_assert_eq(rc, 0, "%s\n%s", cmd, out);
    free(out);
    OwError err;
    cJSON *j = json_parse_file(json_path, &err);
    cr_assert(j != NULL, "%s", err.msg);
    return j;
}

Test(eval, byte_model_text_and_multiple_choice_through_the_command) {
    OwError err;
    char *dir = ts_tmpdir(), *js = ow_path_join(dir, "r.json");
    char *model = ts_fixture_path("eval/byte_model"), *text = ts_fixture_path("eval/byte_text.txt"),
         *mc = ts_fixture_path("eval/byte_mc.jsonl"), *fx = ts_fixture_path("eval/byte.safetensors");
    SafeTensors st;
    cr_assert_eq(safetensors_open(fx, &st, &err), 0, "%s", err.msg);
    char args[3000];
    snprintf(args, sizeof args, "--model %s --data %s --block-size 32 --batch-size 3", model, text);
    cJSON *j = run_json(args, js);
    double loss = cJSON_GetObjectItem(j, "loss")->valuedouble, ref = ref_f64(&st, "loss", NULL)[0];
    cr_assert_lt(fabs(loss - ref) / ref, 1e-6, "loss %.8f, transformers %.8f", loss, ref);
    cr_assert_eq((int64_t)cJSON_GetObjectItem(j, "tokens")->valuedouble,
                 ((const int64_t *)safetensors_find(&st, "ntokens")->data)[0]);
    cJSON_Delete(j);
    snprintf(args, sizeof args, "--model %s --data %s --block-size 64 --batch-size 5", model, mc);
    j = run_json(args, js);
    int64_t n;
    const double *rl = ref_f64(&st, "loglik", &n);
    double got[64];
    int k = 0;
    const cJSON *row, *v;
    cJSON_ArrayForEach(row, cJSON_GetObjectItem(j, "loglik")) { cJSON_ArrayForEach(v, row) got[k++] = v->valuedouble; }
    cr_assert_eq(k, n);
    check_logliks(got, rl, n);
    cr_assert_float_eq(cJSON_GetObjectItem(j, "acc")->valuedouble, ref_f64(&st, "acc", NULL)[0], 1e-12);
    cr_assert_float_eq(cJSON_GetObjectItem(j, "acc_norm")->valuedouble, ref_f64(&st, "acc_norm", NULL)[0], 1e-12);
    const int64_t *rp = safetensors_find(&st, "pred")->data, *rpn = safetensors_find(&st, "pred_norm")->data;
    k = 0;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(j, "pred")) cr_assert_eq((int64_t)v->valuedouble, rp[k++]);
    k = 0;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(j, "pred_norm")) {
        cr_assert_eq((int64_t)v->valuedouble, rpn[k], "item %d: acc_norm picks choice %d, the harness %lld", k,
                     (int)v->valuedouble, (long long)rpn[k]);
        k++;
    }
    cr_assert_eq(k, 5);
    /* answer_ce: with byte ids the labelled continuation has as many tokens as bytes (the context's trailing
     * whitespace moved to it), and the reference's log-likelihood gives its mean per token */
    char *lines = ts_read_text(mc), *save = NULL;
    double ce = 0;
    int64_t ce_tokens = 0, base = 0, items = 0;
    for (char *line = strtok_r(lines, "\n", &save); line; line = strtok_r(NULL, "\n", &save), items++) {
        cJSON *it = cJSON_Parse(line);
        const char *ctx = cJSON_GetObjectItem(it, "context")->valuestring;
        const cJSON *ch = cJSON_GetObjectItem(it, "choices");
        int label = cJSON_GetObjectItem(it, "label")->valueint;
        size_t ws = 0, clen = strlen(ctx);
        while (ws < clen && ctx[clen - 1 - ws] == ' ') ws++;
        int64_t nt = (int64_t)(ws + strlen(cJSON_GetArrayItem(ch, label)->valuestring));
        ce += -rl[base + label] / (double)nt;
        ce_tokens += nt;
        base += cJSON_GetArraySize(ch);
        cJSON_Delete(it);
    }
    free(lines);
    cr_assert_lt(fabs(cJSON_GetObjectItem(j, "answer_ce")->valuedouble - ce / (double)items), 1e-6, "answer_ce");
    cr_assert_eq((int64_t)cJSON_GetObjectItem(j, "answer_ce_tokens")->valuedouble, ce_tokens);
    cJSON_Delete(j);
    safetensors_close(&st);
    ts_rmtree(dir);
    free(dir);
    free(js);
    free(model);
    free(text);
    free(mc);
    free(fx);
}

static void expect_eval_error(const char *model_rel, int shared, const char *content, const char *needle) {
    char *dir = ts_tmpdir(), *p = ow_path_join(dir, "items.jsonl");
    ts_write_file(p, content, strlen(content));
    char *model = shared ? ts_shared_path(model_rel) : ts_fixture_path(model_rel);
    char cmd[4096], *out;
    snprintf(cmd, sizeof cmd, "%s eval --device cpu --model %s --data %s", ts_owlore_binary(), model, p);
    int rc = ts_run(cmd, &out);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, needle) != NULL, "lacks \"%s\":\n%s", needle, out);
    free(out);
    free(model);
    free(p);
    ts_rmtree(dir);
    free(dir);
}

Test(eval, bad_multiple_choice_input_is_named) {
    expect_eval_error("data/real/hf/TinyStories-656K", 1, "{\"context\": \"a\", \"choices\": [\"\"], \"label\": 0}\n",
                      "choices[0] is empty");
    expect_eval_error("eval/byte_model", 0,
                      "{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"label\": 0}\n{\"context\": \"a\", "
                      "\"choices\": [\"b\"], \"label\": 3}\n",
                      "items.jsonl: line 2: label 3 is not a choice index");
    expect_eval_error("eval/byte_model", 0,
                      "{\"context\": \"a\", \"choices\": [\"b\"], \"label\": 0}\n{\"context\": \"a\",\n", "line 2");
    expect_eval_error("eval/byte_model", 0, "{\"context\": \"\", \"choices\": [\"b\"], \"label\": 0}\n",
                      "context has no tokens");
    expect_eval_error("eval/byte_model", 0,
                      "{\"context\": \"x\", \"choices\": [\"b\"], \"label\": 0, \"context_ids\": [1], "
                      "\"choice_ids\": [[999]]}\n",
                      "outside the vocabulary");
    expect_eval_error("eval/byte_model", 0, "\n\n", "no items");
}

/* Text items on a model with a tokenizer.json go through the C tokenizer. */
Test(eval, multiple_choice_text_with_the_models_tokenizer) {
    char *dir = ts_tmpdir(), *p = ow_path_join(dir, "items.jsonl"),
         *model = ts_shared_path("data/real/hf/TinyStories-656K");
    /* (this tokenizer merges across word boundaries, so continuations are chosen that keep their own tokens,
     * as lm-evaluation-harness takes the continuation as the ids after the context's) */
    const char *items =
        "{\"context\": \"The cat sat on the\", \"choices\": [\" mat.\", \" sky.\"], \"label\": 0}\n"
        "{\"context\": \"Lily was very happy. She smiled and said,\", \"choices\": [\" \\\"Thank you, mom!\\\"\", "
        "\" \\\"Xylophone quantum!\\\"\"], \"label\": 0}\n";
    ts_write_file(p, items, strlen(items));
    char cmd[4096], *out;
    snprintf(cmd, sizeof cmd, "%s eval --device cpu --model %s --data %s", ts_owlore_binary(), model, p);
    cr_assert_eq(ts_run(cmd, &out), 0, "%s", out);
    cr_assert(strstr(out, "multiple choice: 2 items") != NULL, "%s", out);
    free(out);
    free(model);
    free(p);
    ts_rmtree(dir);
    free(dir);
}
