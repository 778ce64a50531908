/* cmd_eval.c: `owlore eval`: loss and perplexity of a model on token data or
 * text, or multiple-choice accuracy and answer cross-entropy on JSONL items
 * or LLM-Adapters commonsense files (train/eval.h, train/eval_commonsense.h),
 * for one data file or several with one model load (each set reported, then
 * a total over the multiple-choice sets). Commonsense sets may also be
 * scored by generation (--generate, train/eval_generate.h) beside the
 * log-likelihoods. The model is a Hugging Face directory or a training run
 * (its base model with its newest or named checkpoint). */
#include "cmd/commands.h"
#include "core/args.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "data/chat_template.h"
#include "model/generate.h"
#include "model/safetensors.h"
#include "data/tokenizer.h"
#include "data/tokenizer_mode.h"
#include "train/eval.h"
#include "train/eval_commonsense.h"
#include "train/eval_generate.h"
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

typedef enum { FMT_AUTO, FMT_TOKENS, FMT_TEXT, FMT_MC, FMT_COMMONSENSE, FMT_COUNT } EvalFormat;
static const char *const k_format_names[FMT_COUNT] = {"auto", "tokens", "text", "mc", "commonsense"};

/* What one call evaluates with: the model, its base directory and the shape budget. */
typedef struct EvalRun {
    Model *m;
    const char *base; /* the model's directory ("" for none) */
    int64_t B, T, max_batches;
    int64_t pB, pT; /* the shape the model is prepared for */
    const char *dump;
    Tokenizer *tok;       /* tokenizer.json as is (multiple-choice JSONL, as before) */
    Tokenizer *tok_train; /* as training loads it (commonsense) */
    int multi;            /* several data files: lines name their file */
    int64_t max_new;      /* --generate: new tokens at most per item (0: no generation) */
} EvalRun;

/* Sums over the multiple-choice sets, for the total line. */
typedef struct McTotals {
    int64_t sets, items, hit, hit_norm, ce_tokens;
    double ce_sum, acc_sum, acc_norm_sum, ce_mean_sum, seconds;
    int64_t gen_sets, gen_items, gen_hit, gen_unparsed; /* the sets scored by generation */
    double gen_acc_sum, gen_seconds;
} McTotals;

static int prepare(EvalRun *r, int64_t B, int64_t T, OwError *err) {
    if (r->pB == B && r->pT == T) return 0;
    if (model_prepare(r->m, B, T, 1, err) != 0) return -1;
    r->pB = B;
    r->pT = T;
    return 0;
}

static EvalFormat resolve_format(const char *path, EvalFormat f) {
    if (f != FMT_AUTO) return f;
    if (commonsense_detect(path)) return FMT_COMMONSENSE;
    return ends_with(path, ".jsonl") ? FMT_MC : FMT_TOKENS;
}

static void print_prefix(const EvalRun *r, const char *path) {
    if (r->multi) printf("%s: ", path);
}

static int eval_loss_file(EvalRun *r, const char *path, EvalFormat f, cJSON *o, OwError *err) {
    DataOptions opt;
    data_options_defaults(&opt);
    if (f == FMT_TEXT) opt.format = DATA_FORMAT_TEXT;
    TokData d = {0};
    int rc = -1;
    if (train_load_data_with(path, r->base[0] ? r->base : NULL, r->m->cfg.vocab_size, &opt, "", NULL, &d, NULL, err) !=
            0 ||
        prepare(r, r->B, r->T, err) != 0)
        goto out;
    EvalStream es;
    EvalBatches src = eval_batches_stream(&es, &d, r->B, r->T);
    if (src.count == 0) {
        ow_fail(err, "%s: fewer than 2 tokens, nothing to evaluate", path);
        goto out;
    }
    if (r->max_batches > 0 && src.count > r->max_batches) src.count = r->max_batches;
    if (r->dump && dump_logits(r->m, &src, r->B, r->T, r->dump, err) != 0) goto out;
    int32_t *ids = ow_xmalloc((size_t)(r->B * r->T) * sizeof(int32_t)),
            *tg = ow_xmalloc((size_t)(r->B * r->T) * sizeof(int32_t));
    EvalLoss l;
    rc = eval_loss(r->m, &src, ids, tg, &l, err);
    free(ids);
    free(tg);
    if (rc != 0) goto out;
    print_prefix(r, path);
    printf("loss %.6f, perplexity %.4f (%lld tokens scored in %lld batches of %lld x %lld)\n", l.loss, l.ppl,
           (long long)l.tokens, (long long)l.batches, (long long)r->B, (long long)r->T);
    cJSON_AddNumberToObject(o, "loss", l.loss);
    cJSON_AddNumberToObject(o, "perplexity", l.ppl);
    cJSON_AddNumberToObject(o, "tokens", (double)l.tokens);
out:
    tokdata_free(&d);
    return rc;
}

/* The encoder of a multiple-choice format: bytes without a tokenizer.json, else the tokenizer as the format wants. */
static int mc_encoder(EvalRun *r, EvalFormat f, EvalEncoder *enc, OwError *err) {
    *enc = eval_encoder_bytes();
    char *tokpath = r->base[0] ? ow_path_join(r->base, "tokenizer.json") : NULL;
    int has_tok = tokpath && ow_path_exists(tokpath), rc = 0;
    if (has_tok && f == FMT_MC) {
        if (!r->tok) rc = tokenizer_load(tokpath, &r->tok, err);
        if (rc == 0) *enc = eval_encoder_tokenizer(r->tok);
    } else if (has_tok) {
        int rebuilt;
        if (!r->tok_train) rc = tokenizer_load_mode(r->base, TOKENIZER_MODE_TRANSFORMERS, &r->tok_train, &rebuilt, err);
        if (rc == 0) *enc = eval_encoder_tokenizer(r->tok_train);
    }
    free(tokpath);
    return rc;
}

/* Per-item results: index, options, label, per-option log-likelihood and tokens, predictions, answer_ce. */
static void mc_items_json(cJSON *o, const McSet *set, const double *ll, const int *pred, const int *pred_norm) {
    cJSON *arr = cJSON_AddArrayToObject(o, "items_detail");
    for (int64_t i = 0, k = 0; i < set->n; i++) {
        const McItem *it = &set->items[i];
        cJSON *e = cJSON_CreateObject(), *opts = cJSON_AddArrayToObject(e, "options");
        cJSON *lj = cJSON_AddArrayToObject(e, "loglik"), *tj = cJSON_AddArrayToObject(e, "tokens");
        cJSON_AddNumberToObject(e, "index", (double)i);
        for (int j = 0; j < it->nchoices; j++) {
            cJSON_AddItemToArray(opts, cJSON_CreateString(it->text[j]));
            cJSON_AddItemToArray(lj, cJSON_CreateNumber(ll[k + j]));
            cJSON_AddItemToArray(tj, cJSON_CreateNumber((double)it->ncont[j]));
        }
        cJSON_AddNumberToObject(e, "label", it->label);
        cJSON_AddNumberToObject(e, "pred", pred[i]);
        cJSON_AddNumberToObject(e, "pred_norm", pred_norm[i]);
        cJSON_AddBoolToObject(e, "correct", pred[i] == it->label);
        cJSON_AddBoolToObject(e, "correct_norm", pred_norm[i] == it->label);
        cJSON_AddNumberToObject(e, "answer_ce", eval_mc_item_ce(it, ll + k));
        cJSON_AddItemToArray(arr, e);
        k += it->nchoices;
    }
}

/* The set's results into o (the keys of before: items, acc, acc_norm, loglik, pred, pred_norm; then the rest). */
static void mc_json(cJSON *o, const McSet *set, const double *ll, const int *pred, const int *pred_norm, double acc,
                    double acc_norm, double ce, int64_t ce_tokens, double items_per_s) {
    cJSON_AddNumberToObject(o, "items", (double)set->n);
    cJSON_AddNumberToObject(o, "acc", acc);
    cJSON_AddNumberToObject(o, "acc_norm", acc_norm);
    cJSON *arr = cJSON_AddArrayToObject(o, "loglik");
    for (int64_t i = 0, k = 0; i < set->n; i++) {
        cJSON *row = cJSON_CreateArray();
        for (int j = 0; j < set->items[i].nchoices; j++) cJSON_AddItemToArray(row, cJSON_CreateNumber(ll[k++]));
        cJSON_AddItemToArray(arr, row);
    }
    cJSON *pj = cJSON_AddArrayToObject(o, "pred"), *pn = cJSON_AddArrayToObject(o, "pred_norm");
    for (int64_t i = 0; i < set->n; i++) {
        cJSON_AddItemToArray(pj, cJSON_CreateNumber(pred[i]));
        cJSON_AddItemToArray(pn, cJSON_CreateNumber(pred_norm[i]));
    }
    cJSON_AddNumberToObject(o, "answer_ce", ce);
    cJSON_AddNumberToObject(o, "answer_ce_tokens", (double)ce_tokens);
    cJSON_AddNumberToObject(o, "items_per_s", items_per_s);
    mc_items_json(o, set, ll, pred, pred_norm);
}

/* The log-likelihoods of a set's options (eval_mc_loglik_packed; the model's shape changes). */
static int mc_score(EvalRun *r, const McSet *set, double *ll, OwError *err) {
    EvalMcStats st;
    r->pB = r->pT = 0;
    if (eval_mc_loglik_packed(r->m, r->B, r->T, set, ll, &st, err) != 0) return -1;
    OW_INFO("%lld items, %lld options: %lld forwards, %.0f%% of the positions computed are padding", (long long)set->n,
            (long long)set->nchoices_total, (long long)st.forwards,
            st.padded ? 100.0 * (double)(st.padded - st.tokens) / (double)st.padded : 0.0);
    return 0;
}

/* The generated text and extracted option of every item, into the items_detail of mc_items_json. */
static void gen_items_json(cJSON *o, const McSet *set, char *const *texts, const int *pred) {
    cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "items_detail")->child;
    for (int64_t i = 0; i < set->n; i++, e = e->next) {
        cJSON_AddStringToObject(e, "generated", texts[i]);
        cJSON_AddNumberToObject(e, "pred_generate", pred[i]);
        cJSON_AddBoolToObject(e, "correct_generate", pred[i] == set->items[i].label);
    }
}

/* --generate: every item's answer generated greedily after its prompt and extracted (the LLM-Adapters way). */
static int mc_generate(EvalRun *r, const char *path, const McSet *set, cJSON *o, McTotals *tot, OwError *err) {
    ChatTemplateKind kind = CHAT_TEMPLATE_NONE;
    if (r->base[0] && chat_template_detect_dir(r->base, &kind, err) != 0) return -1;
    int32_t stops[3];
    EvalGenOptions go = {r->max_new, stops, 0, r->tok_train, 5.0};
    go.nstop = generate_stop_ids(r->m, r->tok_train, chat_end_of_turn(kind), stops);
    char **texts = ow_xcalloc((size_t)set->n, sizeof *texts);
    double dt;
    int rc = eval_generate_texts(r->m, set, &go, texts, NULL, &dt, err);
    if (rc != 0) ow_fail_prefix(err, "%s: --generate", path);
    if (rc == 0) {
        int *pred = ow_xmalloc((size_t)set->n * sizeof(int));
        EvalGenScore g;
        eval_generate_score(set, (const char *const *)texts, pred, &g);
        double ips = dt > 0 ? (double)set->n / dt : 0.0;
        print_prefix(r, path);
        printf("generate: acc_generate %.4f (%lld unparsed; greedy, at most %lld new tokens, %.2f items/s)\n", g.acc,
               (long long)g.unparsed, (long long)r->max_new, ips);
        cJSON_AddNumberToObject(o, "acc_generate", g.acc);
        cJSON_AddNumberToObject(o, "unparsed", (double)g.unparsed);
        cJSON_AddNumberToObject(o, "max_new_tokens", (double)r->max_new);
        cJSON_AddNumberToObject(o, "generate_items_per_s", ips);
        gen_items_json(o, set, texts, pred);
        tot->gen_sets++;
        tot->gen_items += set->n;
        tot->gen_hit += g.hit;
        tot->gen_unparsed += g.unparsed;
        tot->gen_acc_sum += g.acc;
        tot->gen_seconds += dt;
        free(pred);
    }
    eval_generate_texts_free(texts, set->n);
    free(texts);
    return rc;
}

static int eval_mc_file(EvalRun *r, const char *path, EvalFormat f, cJSON *o, McTotals *tot, OwError *err) {
    EvalEncoder enc;
    McSet set = {0};
    if (r->dump) return ow_fail(err, "--dump-logits works with token data, not multiple choice");
    if (mc_encoder(r, f, &enc, err) != 0) return -1;
    if ((f == FMT_MC ? mc_read_jsonl(path, &enc, &set, err) : commonsense_read(path, &enc, &set, err)) != 0) return -1;
    double *ll = ow_xmalloc((size_t)set.nchoices_total * sizeof(double)), t0 = ow_now();
    int rc = mc_score(r, &set, ll, err);
    if (rc == 0) {
        double dt = ow_now() - t0, acc, acc_norm, ce;
        int64_t ce_tokens;
        int *pred = ow_xmalloc((size_t)set.n * sizeof(int)), *pred_norm = ow_xmalloc((size_t)set.n * sizeof(int));
        eval_mc_accuracy(&set, ll, &acc, &acc_norm, pred, pred_norm);
        eval_mc_answer_ce(&set, ll, &ce, &ce_tokens);
        print_prefix(r, path);
        printf("multiple choice: %lld items, acc %.4f, acc_norm %.4f, answer_ce %.4f nats/token (%lld tokens)\n",
               (long long)set.n, acc, acc_norm, ce, (long long)ce_tokens);
        OW_INFO("%s: %lld items scored in %.2f s (%.1f items/s)", path, (long long)set.n, dt,
                dt > 0 ? (double)set.n / dt : 0.0);
        mc_json(o, &set, ll, pred, pred_norm, acc, acc_norm, ce, ce_tokens, dt > 0 ? (double)set.n / dt : 0.0);
        tot->sets++;
        tot->items += set.n;
        tot->hit += (int64_t)llround(acc * (double)set.n);
        tot->hit_norm += (int64_t)llround(acc_norm * (double)set.n);
        tot->ce_sum += ce * (double)set.n;
        tot->ce_tokens += ce_tokens;
        tot->acc_sum += acc;
        tot->acc_norm_sum += acc_norm;
        tot->ce_mean_sum += ce;
        tot->seconds += dt;
        free(pred);
        free(pred_norm);
    }
    if (rc == 0 && r->max_new > 0) rc = mc_generate(r, path, &set, o, tot, err);
    free(ll);
    mc_set_free(&set);
    return rc;
}

/* The total over the multiple-choice sets: pooled over items, and the mean of the sets' figures. */
static void print_totals(const McTotals *t, cJSON *o) {
    double n = (double)t->items, s = (double)t->sets;
    printf("total: %lld sets, %lld items, acc %.4f, acc_norm %.4f, answer_ce %.4f (pooled over items); mean over "
           "sets: acc %.4f, acc_norm %.4f, answer_ce %.4f\n",
           (long long)t->sets, (long long)t->items, (double)t->hit / n, (double)t->hit_norm / n, t->ce_sum / n,
           t->acc_sum / s, t->acc_norm_sum / s, t->ce_mean_sum / s);
    OW_INFO("%lld items scored in %.2f s (%.1f items/s)", (long long)t->items, t->seconds,
            t->seconds > 0 ? n / t->seconds : 0.0);
    cJSON *j = cJSON_AddObjectToObject(o, "total");
    cJSON_AddNumberToObject(j, "sets", s);
    cJSON_AddNumberToObject(j, "items", n);
    cJSON_AddNumberToObject(j, "acc", (double)t->hit / n);
    cJSON_AddNumberToObject(j, "acc_norm", (double)t->hit_norm / n);
    cJSON_AddNumberToObject(j, "answer_ce", t->ce_sum / n);
    cJSON_AddNumberToObject(j, "answer_ce_tokens", (double)t->ce_tokens);
    cJSON_AddNumberToObject(j, "mean_acc", t->acc_sum / s);
    cJSON_AddNumberToObject(j, "mean_acc_norm", t->acc_norm_sum / s);
    cJSON_AddNumberToObject(j, "mean_answer_ce", t->ce_mean_sum / s);
    cJSON_AddNumberToObject(j, "items_per_s", t->seconds > 0 ? n / t->seconds : 0.0);
    if (t->gen_sets == 0) return;
    double gn = (double)t->gen_items;
    printf("total generate: acc_generate %.4f (pooled over items), %lld unparsed; mean over sets: acc_generate "
           "%.4f\n",
           (double)t->gen_hit / gn, (long long)t->gen_unparsed, t->gen_acc_sum / (double)t->gen_sets);
    cJSON_AddNumberToObject(j, "acc_generate", (double)t->gen_hit / gn);
    cJSON_AddNumberToObject(j, "unparsed", (double)t->gen_unparsed);
    cJSON_AddNumberToObject(j, "mean_acc_generate", t->gen_acc_sum / (double)t->gen_sets);
    cJSON_AddNumberToObject(j, "generate_items_per_s", t->gen_seconds > 0 ? gn / t->gen_seconds : 0.0);
}

/* Splits a comma list into paths (a heap copy in *buf that the paths point into). */
static int split_paths(const char *list, char **buf, const char ***paths, OwError *err) {
    *buf = ow_xstrdup(list);
    int n = 1;
    for (const char *p = list; *p; p++) n += *p == ',';
    *paths = ow_xcalloc((size_t)n, sizeof **paths);
    int k = 0;
    for (char *p = *buf, *q; p; p = q) {
        q = strchr(p, ',');
        if (q) *q++ = '\0';
        if (!*p) return ow_fail(err, "--data \"%s\": an empty file name in the comma list", list);
        (*paths)[k++] = p;
    }
    return n;
}

static int eval_files(EvalRun *r, const char *const *paths, int n, EvalFormat fmt, const char *json, OwError *err) {
    cJSON *root = cJSON_CreateObject(), *sets = n > 1 ? cJSON_AddArrayToObject(root, "sets") : NULL;
    McTotals tot = {0};
    int rc = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        EvalFormat f = resolve_format(paths[i], fmt);
        if (r->max_new > 0 && f != FMT_COMMONSENSE) {
            rc = ow_fail(err,
                         "%s: --generate scores commonsense sets (LLM-Adapters records), and this file is read as "
                         "%s (hint: --format commonsense)",
                         paths[i], k_format_names[f]);
            break;
        }
        cJSON *o = root;
        if (sets) {
            o = cJSON_CreateObject();
            cJSON_AddItemToArray(sets, o);
            cJSON_AddStringToObject(o, "data", paths[i]);
            cJSON_AddStringToObject(o, "format", k_format_names[f]);
        }
        rc = f == FMT_MC || f == FMT_COMMONSENSE ? eval_mc_file(r, paths[i], f, o, &tot, err)
                                                 : eval_loss_file(r, paths[i], f, o, err);
    }
    if (rc == 0 && sets && tot.sets > 0) print_totals(&tot, root);
    if (rc != 0) {
        cJSON_Delete(root);
        return -1;
    }
    return write_json(json, root, err);
}

/* The flags' values checked, and --format parsed into *fmt. */
static int check_args(int missing, const char *format, int64_t B, int64_t T, int64_t max_batches, int64_t max_new,
                      EvalFormat *fmt, OwError *err) {
    if (missing) return ow_fail(err, "--model and --data are required (see --help)");
    *fmt = FMT_COUNT;
    for (int i = 0; i < FMT_COUNT; i++)
        if (strcmp(format, k_format_names[i]) == 0) *fmt = (EvalFormat)i;
    if (*fmt == FMT_COUNT)
        return ow_fail(err, "--format \"%s\" is not one of auto, tokens, text, mc, commonsense", format);
    if (B < 1 || T < 0 || max_batches < 0)
        return ow_fail(err, "--batch-size must be at least 1, --block-size and --max-batches non-negative");
    if (max_new < 1) return ow_fail(err, "--max-new-tokens must be at least 1");
    return 0;
}

int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *device = "auto", *checkpoint = NULL, *json = NULL, *dump = NULL;
    const char *offload = "auto", *format = "auto";
    int64_t B = 8, T = 0, max_batches = 0, threads = 0, max_new = 32;
    int generate = 0;
    size_t gpu_mem = 0;
    ArgSpec specs[] = {
        {"model", ARG_STR, &model, "DIR|RUN_DIR", "a Hugging Face model directory, or a training run directory", NULL},
        {"data", ARG_STR, &data, "FILE[,FILE...]",
         "token file, text, multiple-choice .jsonl or commonsense .json; several files as a comma list (one model "
         "load; each set reported, then a total)",
         NULL},
        {"format", ARG_STR, &format, "FMT",
         "auto (default: commonsense when the first record's instruction has an Answer format line, mc for other "
         ".jsonl, else tokens) | tokens (loss over the data as training reads it) | text (loss over plain text) | mc "
         "| commonsense",
         NULL},
        {"generate", ARG_BOOL, &generate, NULL,
         "commonsense sets: also generate each answer greedily after the prompt (stopping at EOS) and extract the "
         "option the LLM-Adapters way: acc_generate and unparsed beside acc, acc_norm and answer_ce",
         NULL},
        {"max-new-tokens", ARG_INT, &max_new, "N", "with --generate: new tokens at most per item (default 32)", NULL},
        {"batch-size", ARG_INT, &B, "B",
         "sequences per forward pass (default 8); multiple choice fills the same B x T tokens with more, shorter "
         "rows",
         NULL},
        {"block-size", ARG_INT, &T, "T", "tokens per window (default: the model's context, at most 512)", NULL},
        {"max-batches", ARG_INT, &max_batches, "N", "evaluate only the first N batches (0: all)", NULL},
        {"checkpoint", ARG_STR, &checkpoint, "step-N", "with a run directory: this checkpoint instead of the newest",
         NULL},
        {"json", ARG_STR, &json, "FILE",
         "also write the results as JSON (multiple choice: per-item options, log-likelihoods, tokens, predictions "
         "and answer_ce; several files: \"sets\" and \"total\")",
         NULL},
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
        cmd_args("eval", argc, argv, specs, nspecs, "owlore eval --model DIR|RUN_DIR --data FILE[,FILE...] [flags]",
                 "Loss and perplexity on an owlore token file, text or a JSON dataset: the stream is cut into\n"
                 "consecutive windows of --block-size tokens and every token after the first is scored once.\n"
                 "Multiple choice on a .jsonl file of {\"context\": str, \"choices\": [str], \"label\": int}: each\n"
                 "choice scored by the log-likelihood of its tokens after the context (the model's tokenizer, or\n"
                 "pre-tokenized \"context_ids\" and \"choice_ids\"), reported as acc and acc_norm (log-likelihood\n"
                 "divided by the choice's length in characters), as lm-evaluation-harness does.\n"
                 "Commonsense sets (LLM-Adapters format, as the LISA and OwLore papers use): a JSON array or JSON\n"
                 "lines of alpaca records whose instruction ends with \"Answer format: a/b/...\"; each option o is\n"
                 "scored as \"the correct answer is o\" after the record's Alpaca prompt, as training renders it.\n"
                 "Every multiple-choice set also reports answer_ce: the mean over items of the correct answer's\n"
                 "mean negative log-likelihood per token (nats), a continuous measure beside acc.\n"
                 "--generate (commonsense sets) also scores them as LLM-Adapters does: the answer generated\n"
                 "greedily after the same prompt ids (one item at a time, stopping at EOS or --max-new-tokens), the\n"
                 "first option word found in it taken (none: unparsed, counted wrong), reported as acc_generate\n"
                 "beside the log-likelihood figures (acc, acc_norm, answer_ce), which are still computed.",
                 &res);
    if (parsed >= 0) return parsed;
    EvalFormat fmt = FMT_AUTO;
    if (check_args(res.npos > 0 || !model || !data, format, B, T, max_batches, max_new, &fmt, &err) != 0) {
        cmd_report_error("eval", &err);
        return 2;
    }
    char *buf;
    const char **paths;
    int npaths = split_paths(data, &buf, &paths, &err);
    if (npaths > 1 && dump) npaths = ow_fail(&err, "--dump-logits takes one --data file");
    if (npaths < 0) {
        free(buf);
        free(paths);
        cmd_report_error("eval", &err);
        return 2;
    }
    Backend *be = backend_create(device, &(BackendOptions){.threads = (int)threads, .mem_cap = gpu_mem}, &err);
    if (!be) return cmd_report_error("eval", &err);
    ModelConfig mc;
    char base[4096] = "";
    EvalRun r = {.B = B,
                 .max_batches = max_batches,
                 .dump = dump,
                 .multi = npaths > 1,
                 .base = base,
                 .max_new = generate ? max_new : 0};
    int rc = 1;
    if (model_config_of(model, &mc, &err) != 0) goto done;
    r.T = T ? T : mc.max_position_embeddings < 512 ? mc.max_position_embeddings : 512;
    /* blocks the device cannot hold beside the forward's activations stream from host memory */
    if (forward_model_load(be, model, 1, checkpoint, offload, &mc,
                           model_activation_bytes(&mc, be->act_dtype, B, r.T, 1, 0, 0, 0), &r.m, base, sizeof base,
                           &err) != 0)
        goto done;
    if (eval_files(&r, paths, npaths, fmt, json, &err) != 0) goto done;
    rc = 0;
done:
    if (rc) cmd_report_error("eval", &err);
    free(buf);
    free(paths);
    tokenizer_free(r.tok);
    tokenizer_free(r.tok_train);
    model_free(r.m);
    be->ops->destroy(be);
    return rc;
}
