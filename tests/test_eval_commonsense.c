// ctest-labels: cpu
/* test_eval_commonsense.c: `owlore eval --format commonsense` (train/eval_commonsense.h): the
 * options of real records of the four LLM-Adapters test sets, the scored text byte for byte
 * against training's Alpaca rendering (every record of the four sets), the reader's errors, the
 * scores of a real model against a direct forward (model_forward_logits) and against
 * transformers (tests/reference/make_commonsense_fixture.py: TinyStories-656K on the first 50
 * boolq test records, ids and log-likelihoods), --json per item, several --data files, --format,
 * the LLM-Adapters answer extraction on real strings, and --generate (train/eval_generate.h): its
 * accounting on hand-made outputs, and on TinyStories-656K its ids against generate_greedy called
 * directly on the same prompt ids. The sets are read from ../shared. */
#include "core/fileio.h"
#include "core/json.h"
#include "data/prompt_template.h"
#include "data/text_codec.h"
#include "data/tokenizer_mode.h"
#include "model/generate.h"
#include "model/safetensors.h"
#include "test_support.h"
#include "train/eval_commonsense.h"
#include "train/eval_generate.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const k_sets[4] = {"boolq", "ARC-Easy", "ARC-Challenge", "openbookqa"};

static cJSON *load_set(const char *name, char **path) {
    char rel[128];
    snprintf(rel, sizeof rel, "data/real/commonsense/%s/test.json", name);
    *path = ts_shared_path(rel);
    OwError err;
    cJSON *a = json_parse_file(*path, &err);
    cr_assert(a && cJSON_IsArray(a), "%s", err.msg);
    return a;
}

static const char *str_of(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void expect_options(const char *instruction, const char *joined) {
    char **opts;
    int n;
    cr_assert_eq(commonsense_options(instruction, &opts, &n), 0, "%s", instruction);
    char buf[256] = "";
    for (int i = 0; i < n; i++) snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? "|" : "", opts[i]);
    cr_assert_str_eq(buf, joined);
    commonsense_options_free(opts, n);
}

Test(commonsense, options_of_real_records_and_edge_cases) {
    /* the first record of each set, and ARC's 3- and 5-option records */
    const char *want[4] = {"true|false", "answer1|answer2|answer3|answer4", "answer1|answer2|answer3|answer4",
                           "answer1|answer2|answer3|answer4"};
    int seen3 = 0, seen5 = 0;
    for (int s = 0; s < 4; s++) {
        char *path;
        cJSON *a = load_set(k_sets[s], &path);
        expect_options(str_of(cJSON_GetArrayItem(a, 0), "instruction"), want[s]);
        const cJSON *r;
        cJSON_ArrayForEach(r, a) {
            const char *ins = str_of(r, "instruction");
            size_t n = strlen(ins), k = strlen("format: answer1/answer2/answer3");
            if (!seen3 && n >= k && strcmp(ins + n - k, "format: answer1/answer2/answer3") == 0) {
                expect_options(ins, "answer1|answer2|answer3");
                seen3 = 1;
            }
            if (!seen5 && strstr(ins, "answer4/answer5")) {
                expect_options(ins, "answer1|answer2|answer3|answer4|answer5");
                seen5 = 1;
            }
        }
        cJSON_Delete(a);
        free(path);
    }
    cr_assert(seen3 && seen5, "ARC has records with 3 and 5 options");
    /* the last line that starts with the marker wins; spaces around options go; mid-line markers do not count */
    expect_options("Answer format: a/b\nq: x Answer format: c/d\nAnswer format:  yes / no \nmore", "yes|no");
    char **opts;
    int n;
    cr_assert_eq(commonsense_options("no options here", &opts, &n), -1);
    cr_assert_eq(commonsense_options("q\nAnswer format: a//b", &opts, &n), -2);
    cr_assert_eq(commonsense_options("q\nAnswer format: ", &opts, &n), -2);
    cr_assert_eq(n, 0);
}

/* With byte ids, context + continuation is the text itself: every record of the four sets must be
 * scored on exactly the bytes training renders for it (prompt_template.h), output included. */
Test(commonsense, scored_text_is_trainings_alpaca_text_byte_for_byte) {
    EvalEncoder enc = eval_encoder_bytes();
    RenderedSample rs = {0};
    int64_t records = 0;
    for (int s = 0; s < 4; s++) {
        char *path;
        cJSON *a = load_set(k_sets[s], &path);
        McSet set;
        OwError err;
        cr_assert_eq(commonsense_read(path, &enc, &set, &err), 0, "%s", err.msg);
        cr_assert_eq(set.n, cJSON_GetArraySize(a));
        for (int64_t i = 0; i < set.n; i++) {
            const cJSON *r = cJSON_GetArrayItem(a, (int)i);
            const McItem *it = &set.items[i];
            const char *ins = str_of(r, "instruction"), *inp = str_of(r, "input");
            cr_assert_str_eq(it->text[it->label], str_of(r, "answer"));
            for (int j = 0; j < it->nchoices; j++) {
                char out[128];
                snprintf(out, sizeof out, "the correct answer is %s", it->text[j]);
                alpaca_render(ins, strlen(ins), inp, inp ? strlen(inp) : 0, out, strlen(out), 0, &rs);
                cr_assert_eq(it->nctx + it->ncont[j], (int64_t)rs.len, "%s record %lld", k_sets[s], (long long)i);
                cr_assert_eq(it->nctx, (int64_t)rs.spans[0].start);
                for (int64_t t = 0; t < it->nctx; t++) cr_assert_eq(it->ctx[t], (unsigned char)rs.text[t]);
                for (int64_t t = 0; t < it->ncont[j]; t++)
                    cr_assert_eq(it->cont[j][t], (unsigned char)rs.text[it->nctx + t]);
                cr_assert_eq(it->chars[j], (int64_t)strlen(out));
            }
        }
        records += set.n;
        mc_set_free(&set);
        cJSON_Delete(a);
        free(path);
    }
    cr_assert_eq(records, 7318);
    sample_free(&rs);
}

static char *run_eval(const char *args, int want_rc) {
    char cmd[8192], *out;
    snprintf(cmd, sizeof cmd, "%s eval --device cpu --threads 2 %s", ts_owlore_binary(), args);
    int rc = ts_run(cmd, &out);
    cr_assert_eq(rc, want_rc, "%s\n%s", cmd, out);
    return out;
}

static void expect_error(const char *dir, const char *name, const char *content, const char *flags,
                         const char *needle) {
    char *p = ow_path_join(dir, name), *model = ts_fixture_path("eval/byte_model"), args[4096];
    ts_write_file(p, content, strlen(content));
    snprintf(args, sizeof args, "--model %s --data %s %s", model, p, flags);
    char *out = run_eval(args, 1);
    cr_assert(strstr(out, needle) != NULL, "lacks \"%s\":\n%s", needle, out);
    free(out);
    free(model);
    free(p);
}

#define REC(ins, answer) \
    "{\"instruction\": \"" ins "\", \"input\": \"\", \"output\": \"x\", \"answer\": \"" answer "\"}"

Test(commonsense, reader_errors_name_file_record_and_field) {
    char *dir = ts_tmpdir();
    const char *fc = "--format commonsense";
    expect_error(
        dir, "a.json",
        "[" REC("q?\\n\\nAnswer format: true/false", "true") ", " REC("q?\\n\\nAnswer format: true/false", "maybe") "]",
        fc, "a.json: record 1: field \"answer\" \"maybe\" is not one of the options true/false");
    expect_error(dir, "b.json", "[" REC("q? true or false", "true") "]", fc,
                 "b.json: record 0: field \"instruction\" has no \"Answer format: a/b/...\" line");
    expect_error(dir, "c.jsonl",
                 REC("q\\nAnswer format: a/b", "a") "\n\n{\"instruction\": \"q\\nAnswer format: a/b\"}\n", fc,
                 "c.jsonl: record 1 (line 3): missing field \"answer\"");
    expect_error(dir, "d.json", "[" REC("q\\nAnswer format: a//b", "a") "]", fc,
                 "d.json: record 0: field \"instruction\": its Answer format line names an empty option");
    expect_error(dir, "e.json", "[{\"instruction\": 3, \"answer\": \"a\"}]", fc,
                 "e.json: record 0: field \"instruction\" must be a string");
    expect_error(dir, "f.json", "[]", fc, "f.json: no records");
    expect_error(dir, "g.json", "[" REC("q\\nAnswer format: a/b", "a") ",", fc, "g.json");
    /* --format errors: an unknown name; each multiple-choice reader refuses the other's records */
    expect_error(dir, "h.json", "[" REC("q\\nAnswer format: a/b", "a") "]", "--format mc",
                 "h.json: line 1: expected a JSON object");
    expect_error(dir, "i.jsonl", "{\"context\": \"a\", \"choices\": [\"b\"], \"label\": 0}\n", fc,
                 "i.jsonl: record 0 (line 1): missing field \"instruction\"");
    char *model = ts_fixture_path("eval/byte_model"), args[4096];
    snprintf(args, sizeof args, "--model %s --data x.json --format csv", model);
    char *out = run_eval(args, 2);
    cr_assert(strstr(out, "--format \"csv\" is not one of auto, tokens, text, mc, commonsense") != NULL, "%s", out);
    free(out);
    free(model);
    ts_rmtree(dir);
    free(dir);
}

/* A few records written here (one with an input, one with five options), scored by the command and
 * directly: ids = BOS + encode(prompt + continuation) with the prompt spelled out in this test,
 * one forward of model_forward_logits per option, log-softmax summed over the continuation. */
static const char *k_small =
    "[{\"instruction\": \"Is the sun hot?\\n\\nAnswer format: true/false\", \"input\": \"\", \"answer\": \"true\"},\n"
    " {\"instruction\": \"Pick one.\\n\\nAnswer format: answer1/answer2/answer3/answer4/answer5\", \"input\": "
    "\"Lily had a red ball.\", \"answer\": \"answer2\"},\n"
    " {\"instruction\": \"Can a cat fly?\\nAnswer format: yes/no\", \"input\": null, \"answer\": \"no\"}]\n";

/* TinyStories-656K on the CPU and its tokenizer as training loads it. */
static Backend *load_tinystories(const char *mdir, Model **m, Tokenizer **tok) {
    OwError err;
    int rebuilt;
    Backend *be = backend_create_cpu(2, 0, &err);
    cr_assert(be, "%s", err.msg);
    cr_assert_eq(model_load_hf(be, mdir, m, &err), 0, "%s", err.msg);
    cr_assert_eq(tokenizer_load_mode(mdir, TOKENIZER_MODE_TRANSFORMERS, tok, &rebuilt, &err), 0, "%s", err.msg);
    return be;
}

static double direct_loglik(Model *m, const Tokenizer *tok, const char *prompt, const char *cont, int64_t *ntok) {
    OwError err;
    IdVec a = {0}, b = {0};
    size_t pl = strlen(prompt), cl = strlen(cont);
    char *whole = malloc(pl + cl + 1);
    memcpy(whole, prompt, pl);
    memcpy(whole + pl, cont, cl + 1);
    cr_assert_eq(tokenizer_encode(tok, prompt, pl, 1, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(tokenizer_encode(tok, whole, pl + cl, 1, &b, &err), 0, "%s", err.msg);
    cr_assert_eq(a.data[0], 1, "TinyStories' BOS first");
    int64_t T = (int64_t)b.len - 1, V = m->cfg.vocab_size;
    cr_assert_eq(model_prepare(m, 1, T, 1, &err), 0, "%s", err.msg);
    float *logits = malloc((size_t)(T * V) * sizeof(float));
    cr_assert_eq(model_forward_logits(m, b.data, logits, &err), 0, "%s", err.msg);
    double ll = 0;
    for (int64_t p = (int64_t)a.len - 1; p < T; p++) {
        const float *row = logits + p * V;
        double mx = row[0], s = 0;
        for (int64_t v = 1; v < V; v++) mx = fmax(mx, row[v]);
        for (int64_t v = 0; v < V; v++) s += exp(row[v] - mx);
        ll += row[b.data[p + 1]] - mx - log(s);
    }
    *ntok = T + 1 - (int64_t)a.len;
    free(logits);
    free(whole);
    idvec_free(&a);
    idvec_free(&b);
    return ll;
}

static cJSON *run_json(const char *args, const char *js) {
    char full[8192];
    snprintf(full, sizeof full, "%s --json %s", args, js);
    free(run_eval(full, 0));
    OwError err;
    cJSON *j = json_parse_file(js, &err);
    cr_assert(j, "%s", err.msg);
    return j;
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "key %s", key);
    return v->valuedouble;
}

Test(commonsense, scores_match_a_direct_forward_and_json_holds_every_item) {
    const char *head = "Below is an instruction that describes a task. Write a response that appropriately completes "
                       "the request.\n\n### Instruction:\n";
    const char *head_in = "Below is an instruction that describes a task, paired with an input that provides further "
                          "context. Write a response that appropriately completes the request.\n\n### Instruction:\n";
    char prompts[3][512];
    snprintf(prompts[0], 512, "%sIs the sun hot?\n\nAnswer format: true/false\n\n### Response:\n", head);
    snprintf(prompts[1], 512,
             "%sPick one.\n\nAnswer format: answer1/answer2/answer3/answer4/answer5\n\n### Input:\nLily had a red "
             "ball.\n\n### Response:\n",
             head_in);
    snprintf(prompts[2], 512, "%sCan a cat fly?\nAnswer format: yes/no\n\n### Response:\n", head);
    const char *opts[3][5] = {
        {"true", "false"}, {"answer1", "answer2", "answer3", "answer4", "answer5"}, {"yes", "no"}};
    int nopt[3] = {2, 5, 2}, label[3] = {0, 1, 1};
    char *mdir = ts_shared_path("data/real/hf/TinyStories-656K"), *dir = ts_tmpdir(),
         *p = ow_path_join(dir, "small.json"), *js = ow_path_join(dir, "r.json");
    ts_write_file(p, k_small, strlen(k_small));
    Model *m;
    Tokenizer *tok;
    Backend *be = load_tinystories(mdir, &m, &tok);
    char args[4096];
    snprintf(args, sizeof args, "--model %s --data %s", mdir, p); /* auto: detected as commonsense */
    cJSON *j = run_json(args, js);
    const cJSON *items = cJSON_GetObjectItem(j, "items_detail");
    cr_assert_eq(cJSON_GetArraySize(items), 3);
    double ce_sum = 0;
    int hits = 0;
    int64_t ce_tokens = 0;
    for (int i = 0; i < 3; i++) {
        const cJSON *e = cJSON_GetArrayItem(items, i);
        double ll[5], best = -INFINITY;
        int64_t nt[5];
        int pred = 0;
        cr_assert_eq((int)num(e, "index"), i);
        cr_assert_eq((int)num(e, "label"), label[i]);
        cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(e, "options")), nopt[i]);
        for (int k = 0; k < nopt[i]; k++) {
            char cont[64];
            snprintf(cont, sizeof cont, "the correct answer is %s", opts[i][k]);
            ll[k] = direct_loglik(m, tok, prompts[i], cont, &nt[k]);
            if (ll[k] > best) {
                best = ll[k];
                pred = k;
            }
            cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(e, "options"), k)->valuestring, opts[i][k]);
            double got = cJSON_GetArrayItem(cJSON_GetObjectItem(e, "loglik"), k)->valuedouble;
            cr_assert_lt(fabs(got - ll[k]), 1e-4 * fmax(1, fabs(ll[k])), "item %d option %d: %.6f vs direct %.6f", i, k,
                         got, ll[k]);
            cr_assert_eq((int64_t)cJSON_GetArrayItem(cJSON_GetObjectItem(e, "tokens"), k)->valuedouble, nt[k]);
        }
        double ce = -ll[label[i]] / (double)nt[label[i]];
        cr_assert_lt(fabs(num(e, "answer_ce") - ce), 1e-5, "item %d answer_ce", i);
        cr_assert_eq((int)num(e, "pred"), pred);
        cr_assert_eq(cJSON_IsTrue(cJSON_GetObjectItem(e, "correct")), pred == label[i]);
        ce_sum += ce;
        ce_tokens += nt[label[i]];
        hits += pred == label[i];
    }
    cr_assert_float_eq(num(j, "acc"), hits / 3.0, 1e-12);
    cr_assert_lt(fabs(num(j, "answer_ce") - ce_sum / 3), 1e-5);
    cr_assert_eq((int64_t)num(j, "answer_ce_tokens"), ce_tokens);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "loglik")), 3, "the multiple-choice keys of before");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "pred_norm")), 3);
    cJSON_Delete(j);
    tokenizer_free(tok);
    model_free(m);
    be->ops->destroy(be);
    ts_rmtree(dir);
    free(dir);
    free(p);
    free(js);
    free(mdir);
}

/* The first n boolq test records, written from the shared file into dir. */
static char *boolq_head(const char *dir, int n) {
    char *path;
    cJSON *a = load_set("boolq", &path);
    while (cJSON_GetArraySize(a) > n) cJSON_DeleteItemFromArray(a, n);
    char *out = ow_path_join(dir, "boolq_head.json"), *text = cJSON_PrintUnformatted(a);
    ts_write_file(out, text, strlen(text));
    free(text);
    cJSON_Delete(a);
    free(path);
    return out;
}

static const void *fx_data(const SafeTensors *st, const char *name) {
    const StTensor *t = safetensors_find(st, name);
    cr_assert(t, "fixture tensor %s", name);
    return t->data;
}

Test(commonsense, tinystories_boolq50_matches_transformers) {
    OwError err;
    char *dir = ts_tmpdir(), *data = boolq_head(dir, 50), *fx = ts_fixture_path("eval/commonsense_boolq50.safetensors"),
         *mdir = ts_shared_path("data/real/hf/TinyStories-656K");
    SafeTensors st;
    cr_assert_eq(safetensors_open(fx, &st, &err), 0, "%s", err.msg);
    Tokenizer *tok;
    int rebuilt;
    cr_assert_eq(tokenizer_load_mode(mdir, TOKENIZER_MODE_TRANSFORMERS, &tok, &rebuilt, &err), 0, "%s", err.msg);
    EvalEncoder enc = eval_encoder_tokenizer(tok);
    McSet set;
    cr_assert_eq(commonsense_read(data, &enc, &set, &err), 0, "%s", err.msg);
    cr_assert_eq(set.n, 50);
    /* the ids: transformers' tokenizer(prompt) with BOS, and the tail of tokenizer(prompt + continuation) */
    const int64_t *nctx = fx_data(&st, "nctx"), *ntok = fx_data(&st, "ntokens"), *label = fx_data(&st, "label");
    const int32_t *ctx = fx_data(&st, "ctx_ids"), *cont = fx_data(&st, "cont_ids");
    for (int64_t i = 0, k = 0; i < set.n; i++) {
        const McItem *it = &set.items[i];
        cr_assert_eq(it->nctx, nctx[i], "record %lld", (long long)i);
        cr_assert_eq(memcmp(it->ctx, ctx, (size_t)it->nctx * sizeof(int32_t)), 0, "record %lld", (long long)i);
        cr_assert_eq(it->label, label[i]);
        ctx += it->nctx;
        for (int j = 0; j < it->nchoices; j++, k++) {
            cr_assert_eq(it->ncont[j], ntok[k], "record %lld option %d", (long long)i, j);
            cr_assert_eq(memcmp(it->cont[j], cont, (size_t)it->ncont[j] * sizeof(int32_t)), 0);
            cont += it->ncont[j];
        }
    }
    mc_set_free(&set);
    tokenizer_free(tok);
    /* the command's figures and per-item log-likelihoods */
    char args[4096], *js = ow_path_join(dir, "r.json");
    snprintf(args, sizeof args, "--model %s --data %s --format commonsense", mdir, data);
    cJSON *j = run_json(args, js);
    const double *ref = fx_data(&st, "loglik"), *item_ce = fx_data(&st, "item_ce");
    const int64_t *pred = fx_data(&st, "pred"), *pred_norm = fx_data(&st, "pred_norm");
    double worst = 0;
    const cJSON *e;
    int i = 0, k = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "items_detail")) {
        const cJSON *v;
        cJSON_ArrayForEach(v, cJSON_GetObjectItem(e, "loglik")) {
            double d = fabs(v->valuedouble - ref[k]) / fmax(1.0, fabs(ref[k]));
            worst = fmax(worst, d);
            cr_assert_lt(d, 2e-6, "option %d: %.6f, transformers %.6f", k, v->valuedouble, ref[k]);
            k++;
        }
        cr_assert_eq((int64_t)num(e, "pred"), pred[i]);
        cr_assert_eq((int64_t)num(e, "pred_norm"), pred_norm[i]);
        cr_assert_lt(fabs(num(e, "answer_ce") - item_ce[i]), 1e-5);
        i++;
    }
    cr_assert_eq(i, 50);
    cr_assert_float_eq(num(j, "acc"), ((const double *)fx_data(&st, "acc"))[0], 1e-12);
    cr_assert_float_eq(num(j, "acc_norm"), ((const double *)fx_data(&st, "acc_norm"))[0], 1e-12);
    double ce = ((const double *)fx_data(&st, "answer_ce"))[0];
    cr_assert_lt(fabs(num(j, "answer_ce") - ce), 1e-6 * ce, "answer_ce %.7f, transformers %.7f", num(j, "answer_ce"),
                 ce);
    cr_assert_eq((int64_t)num(j, "answer_ce_tokens"), ((const int64_t *)fx_data(&st, "answer_ce_tokens"))[0]);
    cr_log_info("boolq[:50]: %d log-likelihoods within %.1e of transformers; answer_ce %.6f", k, worst, ce);
    cJSON_Delete(j);
    safetensors_close(&st);
    ts_rmtree(dir);
    free(dir);
    free(data);
    free(fx);
    free(mdir);
    free(js);
}

Test(commonsense, several_data_files_in_one_call) {
    char *dir = ts_tmpdir(), *data = boolq_head(dir, 50), *small = ow_path_join(dir, "small.json"),
         *js = ow_path_join(dir, "r.json"), *mdir = ts_shared_path("data/real/hf/TinyStories-656K");
    ts_write_file(small, k_small, strlen(k_small));
    char args[4096];
    snprintf(args, sizeof args, "--model %s --data %s", mdir, small);
    cJSON *one = run_json(args, js);
    snprintf(args, sizeof args, "--model %s --data %s,%s --json %s", mdir, data, small, js);
    char *out = run_eval(args, 0);
    OwError err;
    cJSON *j = json_parse_file(js, &err);
    cr_assert(j, "%s", err.msg);
    const cJSON *sets = cJSON_GetObjectItem(j, "sets"), *tot = cJSON_GetObjectItem(j, "total");
    cr_assert_eq(cJSON_GetArraySize(sets), 2);
    const cJSON *s1 = cJSON_GetArrayItem(sets, 1);
    cr_assert_str_eq(str_of(s1, "data"), small);
    cr_assert_str_eq(str_of(s1, "format"), "commonsense");
    /* a set's figures do not depend on the other sets of the call (its own forward shape) */
    cr_assert_float_eq(num(s1, "answer_ce"), num(one, "answer_ce"), 1e-9);
    cr_assert_float_eq(num(s1, "acc"), num(one, "acc"), 1e-12);
    cr_assert_eq((int)num(tot, "items"), 53);
    cr_assert_eq((int)num(tot, "sets"), 2);
    double a0 = num(cJSON_GetArrayItem(sets, 0), "acc"), a1 = num(s1, "acc");
    cr_assert_float_eq(num(tot, "acc"), (50 * a0 + 3 * a1) / 53, 1e-9);
    cr_assert_float_eq(num(tot, "mean_acc"), (a0 + a1) / 2, 1e-12);
    double c0 = num(cJSON_GetArrayItem(sets, 0), "answer_ce"), c1 = num(s1, "answer_ce");
    cr_assert_float_eq(num(tot, "answer_ce"), (50 * c0 + 3 * c1) / 53, 1e-9);
    char line[700];
    snprintf(line, sizeof line, "%s: multiple choice: 3 items", small);
    cr_assert(strstr(out, line) && strstr(out, "total: 2 sets, 53 items"), "%s", out);
    free(out);
    snprintf(args, sizeof args, "--model %s --data %s,", mdir, small);
    out = run_eval(args, 2);
    cr_assert(strstr(out, "an empty file name in the comma list"), "%s", out);
    free(out);
    cJSON_Delete(j);
    cJSON_Delete(one);
    ts_rmtree(dir);
    free(dir);
    free(data);
    free(small);
    free(js);
    free(mdir);
}

Test(commonsense, detection_looks_at_the_first_record) {
    char *dir = ts_tmpdir(), *boolq = ts_shared_path("data/real/commonsense/boolq/test.json");
    cr_assert(commonsense_detect(boolq));
    const char *cases[][2] = {
        {"a.jsonl", "\n" REC("q\\nAnswer format: a/b", "a") "\n"}, /* JSON lines: detected */
        {"b.jsonl", "{\"context\": \"a\", \"choices\": [\"b\"], \"label\": 0}\n"},
        {"c.json", "[" REC("no options line", "a") "]"},
        {"d.txt", "Answer format: a/b\n"},
        {"e.json", "[1, " REC("q\\nAnswer format: a/b", "a") "]"}, /* the first record decides */
    };
    for (int i = 0; i < 5; i++) {
        char *p = ow_path_join(dir, cases[i][0]);
        ts_write_file(p, cases[i][1], strlen(cases[i][1]));
        cr_assert_eq(commonsense_detect(p), i == 0, "%s", cases[i][0]);
        free(p);
    }
    char *tok = ow_path_join(dir, "t.bin");
    ts_write_random_tokens(tok, 1000, 2048, 7);
    cr_assert(!commonsense_detect(tok));
    cr_assert(!commonsense_detect("/nonexistent/x.json"));
    free(tok);
    free(boolq);
    ts_rmtree(dir);
    free(dir);
}

/* Packed scoring (rows sorted by length, shapes from the token budget) gives every row the score
 * of one fixed-shape pass, in fewer forwards: ARC records vary in length. */
Test(commonsense, packed_forwards_score_as_the_fixed_shape) {
    OwError err;
    char *path = ts_shared_path("data/real/commonsense/ARC-Easy/test.json"),
         *mdir = ts_shared_path("data/real/hf/TinyStories-656K");
    Model *m;
    Tokenizer *tok;
    Backend *be = load_tinystories(mdir, &m, &tok);
    EvalEncoder enc = eval_encoder_tokenizer(tok);
    McSet all, set = {0};
    cr_assert_eq(commonsense_read(path, &enc, &all, &err), 0, "%s", err.msg);
    set.items = all.items; /* the first 30 records */
    set.n = 30;
    for (int64_t i = 0; i < set.n; i++) set.nchoices_total += set.items[i].nchoices;
    int64_t n = set.nchoices_total, lo = INT64_MAX, hi = 0;
    for (int64_t i = 0; i < set.n; i++) {
        lo = set.items[i].nctx < lo ? set.items[i].nctx : lo;
        hi = set.items[i].nctx > hi ? set.items[i].nctx : hi;
    }
    cr_assert_gt(hi - lo, 32, "lengths vary over several 16-token steps (%lld..%lld)", (long long)lo, (long long)hi);
    double *fixed = malloc((size_t)n * sizeof(double)), *packed = malloc((size_t)n * sizeof(double));
    cr_assert_eq(model_prepare(m, 4, 512, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(eval_mc_loglik(m, 4, 512, &set, fixed, &err), 0, "%s", err.msg);
    EvalMcStats st;
    cr_assert_eq(eval_mc_loglik_packed(m, 4, 512, &set, packed, &st, &err), 0, "%s", err.msg);
    for (int64_t k = 0; k < n; k++)
        cr_assert_lt(fabs(packed[k] - fixed[k]), 1e-5 * fmax(1, fabs(fixed[k])), "row %lld: %.6f vs %.6f", (long long)k,
                     packed[k], fixed[k]);
    cr_assert_lt(st.forwards, n / 4, "%lld forwards for %lld rows", (long long)st.forwards, (long long)n);
    cr_assert_lt(st.padded, n * 512 / 2);
    cr_assert_leq(st.tokens, st.padded);
    free(fixed);
    free(packed);
    mc_set_free(&all);
    tokenizer_free(tok);
    model_free(m);
    be->ops->destroy(be);
    free(path);
    free(mdir);
}

/* Outputs of the kind LLM-Adapters' generations give (after "### Response:"), and its regexes' quirks. */
Test(commonsense, llm_adapters_answer_extraction) {
    const char *tf[] = {"true", "false"}, *arc4[] = {"answer1", "answer2", "answer3", "answer4"},
               *arc3[] = {"answer1", "answer2", "answer3"}, *own[] = {"red", "green", "blue"};
    cr_assert_eq(commonsense_extract_answer("the correct answer is false", tf, 2), 1);
    cr_assert_eq(commonsense_extract_answer("the correct answer is true</s>", tf, 2), 0);
    cr_assert_eq(commonsense_extract_answer("The correct answer is False", tf, 2), -1, "case-sensitive");
    cr_assert_eq(commonsense_extract_answer("It is untrue; the answer is false", tf, 2), 0, "no word boundaries");
    cr_assert_eq(commonsense_extract_answer("", tf, 2), -1);
    cr_assert_eq(commonsense_extract_answer("the correct answer is answer3", arc4, 4), 2);
    cr_assert_eq(commonsense_extract_answer("answer4 is wrong, the correct answer is answer2", arc4, 4), 3,
                 "the first match, not the last");
    cr_assert_eq(commonsense_extract_answer("the correct answer is answer10", arc4, 4), 0, "answer1 is found first");
    /* a 3-option record: answer4 matches LLM-Adapters' pattern first, which no option is: wrong, not answer2 */
    cr_assert_eq(commonsense_extract_answer("the correct answer is answer4, or answer2", arc3, 3), -1);
    cr_assert_eq(commonsense_extract_answer("the correct answer is Answer2", arc4, 4), -1);
    /* options outside LLM-Adapters' patterns: the options themselves */
    cr_assert_eq(commonsense_extract_answer("I would say blue, or green", own, 3), 2);
    cr_assert_eq(commonsense_extract_answer("nothing", own, 3), -1);
}

/* A hand-made set: options and labels, and generated texts whose extraction is known. */
Test(commonsense_generate, accounting_of_hits_and_unparsed) {
    McSet set = {0};
    const char *opts[4][4] = {{"true", "false"}, {"answer1", "answer2", "answer3"}, {"red", "green"}, {"yes", "no"}};
    int nopt[4] = {2, 3, 2, 2}, label[4] = {1, 1, 0, 0};
    for (int i = 0; i < 4; i++) {
        McItem *it = mc_set_push(&set, nopt[i]);
        for (int j = 0; j < nopt[i]; j++) it->text[j] = ow_xstrdup(opts[i][j]);
        it->label = label[i];
        mc_set_commit(&set);
    }
    const char *texts[4] = {"the correct answer is false", "the correct answer is answer4, or answer2",
                            "red, not green", "Yes."};
    int pred[4];
    EvalGenScore g;
    eval_generate_score(&set, texts, pred, &g);
    cr_assert_eq(pred[0], 1);
    cr_assert_eq(pred[1], -1, "answer4 matches LLM-Adapters' pattern first and is not an option");
    cr_assert_eq(pred[2], 0, "the first option word in the text");
    cr_assert_eq(pred[3], -1, "case-sensitive");
    cr_assert_eq(g.items, 4);
    cr_assert_eq(g.hit, 2);
    cr_assert_eq(g.unparsed, 2);
    cr_assert_float_eq(g.acc, 0.5, 1e-15);
    mc_set_free(&set);
    McSet empty = {0};
    eval_generate_score(&empty, NULL, NULL, &g);
    cr_assert(g.items == 0 && isnan(g.acc));
}

/* --generate on 8 boolq records: each item's new ids are generate_greedy's on the prompt ids the log-likelihood
 * scoring uses (called here directly, with the stop ids read here), their text and extraction follow. */
Test(commonsense_generate, tinystories_ids_equal_generate_greedy) {
    OwError err;
    enum { N = 8, MAX_NEW = 12 };
    char *dir = ts_tmpdir(), *data = boolq_head(dir, N), *js = ow_path_join(dir, "r.json"),
         *mdir = ts_shared_path("data/real/hf/TinyStories-656K"), args[4096];
    snprintf(args, sizeof args, "--model %s --data %s --generate --max-new-tokens %d", mdir, data, MAX_NEW);
    cJSON *j = run_json(args, js);
    Model *m;
    Tokenizer *tok;
    Backend *be = load_tinystories(mdir, &m, &tok);
    EvalEncoder enc = eval_encoder_tokenizer(tok);
    McSet set;
    cr_assert_eq(commonsense_read(data, &enc, &set, &err), 0, "%s", err.msg);
    int32_t stops[2] = {2, tokenizer_eos_id(tok)}; /* config.json's eos_token_id, the tokenizer's EOS */
    char *texts[N];
    IdVec lib[N];
    double secs;
    EvalGenOptions go = {MAX_NEW, stops, 2, tok, 0};
    cr_assert_eq(eval_generate_texts(m, &set, &go, texts, lib, &secs, &err), 0, "%s", err.msg);
    const cJSON *items = cJSON_GetObjectItem(j, "items_detail");
    int hits = 0, unparsed = 0, stopped = 0;
    for (int i = 0; i < N; i++) {
        const McItem *it = &set.items[i];
        IdVec want = {0};
        cr_assert_lt(it->nctx + MAX_NEW, m->cfg.max_position_embeddings, "item %d is not cut", i);
        cr_assert_eq(generate_greedy(m, it->ctx, it->nctx, MAX_NEW, stops, 2, &want, &err), 0, "%s", err.msg);
        cr_assert_eq(lib[i].len, want.len, "item %d", i);
        cr_assert_eq(memcmp(lib[i].data, want.data, want.len * sizeof(int32_t)), 0, "item %d ids", i);
        size_t n =
            want.len - (want.len > 0 && (want.data[want.len - 1] == stops[0] || want.data[want.len - 1] == stops[1]));
        stopped += n < want.len;
        char *text;
        size_t len;
        cr_assert_eq(text_decode(tok, want.data, n, &text, &len, &err), 0, "%s", err.msg);
        const cJSON *e = cJSON_GetArrayItem(items, i);
        cr_assert_str_eq(cJSON_GetObjectItem(e, "generated")->valuestring, text, "item %d", i);
        cr_assert_str_eq(texts[i], text, "item %d", i);
        int pred = commonsense_extract_answer(text, (const char *const *)it->text, it->nchoices);
        cr_assert_eq((int)num(e, "pred_generate"), pred, "item %d", i);
        cr_assert_eq(cJSON_IsTrue(cJSON_GetObjectItem(e, "correct_generate")), pred == it->label);
        hits += pred == it->label;
        unparsed += pred < 0;
        free(text);
        idvec_free(&want);
        idvec_free(&lib[i]);
    }
    cr_assert_float_eq(num(j, "acc_generate"), hits / (double)N, 1e-12);
    cr_assert_eq((int)num(j, "unparsed"), unparsed);
    cr_assert_eq((int)num(j, "max_new_tokens"), MAX_NEW);
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(j, "acc")) && cJSON_IsNumber(cJSON_GetObjectItem(j, "answer_ce")),
              "the log-likelihood figures are still there");
    cr_log_info("TinyStories-656K: %d of %d items stopped at EOS, %d unparsed", stopped, N, unparsed);
    eval_generate_texts_free(texts, N);
    /* --generate reads commonsense sets only, and wants room for a token */
    snprintf(args, sizeof args, "--model %s --data %s --generate --format mc", mdir, data);
    char *out = run_eval(args, 1);
    cr_assert(strstr(out, "--generate scores commonsense sets"), "%s", out);
    free(out);
    snprintf(args, sizeof args, "--model %s --data %s --generate --max-new-tokens 0", mdir, data);
    out = run_eval(args, 2);
    cr_assert(strstr(out, "--max-new-tokens must be at least 1"), "%s", out);
    free(out);
    mc_set_free(&set);
    cJSON_Delete(j);
    tokenizer_free(tok);
    model_free(m);
    be->ops->destroy(be);
    ts_rmtree(dir);
    free(dir);
    free(data);
    free(js);
    free(mdir);
}
