/* eval.c: see eval.h. */
#include "train/eval.h"

#include "data/text_codec.h"
#include "data/tokenizer.h"

#include "core/fileio.h"
#include "core/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- loss and perplexity ---- */

int eval_loss(Model *m, const EvalBatches *src, int32_t *ids, int32_t *targets, EvalLoss *out, OwError *err) {
    memset(out, 0, sizeof *out);
    for (int64_t k = 0; k < src->count; k++) {
        src->fill(src->ctx, k, ids, targets);
        double s;
        int64_t n;
        if (model_forward_backward(m, ids, targets, 0.0f, NULL, &s, &n, err) != 0) return -1;
        out->loss_sum += s;
        out->tokens += n;
        out->batches++;
    }
    out->loss = out->tokens ? out->loss_sum / (double)out->tokens : NAN;
    out->ppl = exp(out->loss);
    return 0;
}

static void fill_validation(void *ctx, int64_t k, int32_t *ids, int32_t *targets) {
    batcher_val_batch(((EvalValidation *)ctx)->b, k, ids, targets);
}

EvalBatches eval_batches_validation(EvalValidation *v, const Batcher *b, int64_t max_batches) {
    v->b = b;
    int64_t nb = batcher_val_batches(b);
    if (max_batches > 0 && nb > max_batches) nb = max_batches;
    return (EvalBatches){nb, v, fill_validation};
}

static void fill_stream(void *ctx, int64_t k, int32_t *ids, int32_t *targets) {
    const EvalStream *s = ctx;
    const TokData *d = s->d;
    for (int64_t r = 0; r < s->B; r++) {
        int64_t w = k * s->B + r;
        int32_t *ri = ids + r * s->T, *rt = targets + r * s->T;
        for (int64_t i = 0; i < s->T; i++) {
            int64_t pos = w * s->T + i;
            int in = w < s->nwin && pos + 1 < d->count;
            ri[i] = in ? tokdata_id(d, pos) : 0;
            rt[i] = in && !(d->mask && !d->mask[pos + 1]) ? tokdata_id(d, pos + 1) : -100;
        }
    }
}

EvalBatches eval_batches_stream(EvalStream *s, const TokData *d, int64_t B, int64_t T) {
    s->d = d;
    s->B = B;
    s->T = T;
    s->nwin = d->count > 1 ? (d->count - 1 + T - 1) / T : 0;
    return (EvalBatches){(s->nwin + B - 1) / B, s, fill_stream};
}

/* ---- multiple choice: reading ---- */

/* The model's tokenizer, or bytes without one (ctx NULL); no special tokens, as lm-evaluation-harness
 * encodes contexts and continuations. */
static int encode_text(void *ctx, const char *text, size_t len, int32_t **ids, int64_t *n, OwError *err) {
    IdVec v = {0};
    if (text_encode((const Tokenizer *)ctx, text, len, 0, &v, err) != 0) {
        idvec_free(&v);
        return -1;
    }
    *n = (int64_t)v.len;
    *ids = ow_xmalloc((v.len ? v.len : 1) * sizeof(int32_t));
    if (v.len) memcpy(*ids, v.data, v.len * sizeof(int32_t));
    idvec_free(&v);
    return 0;
}

EvalEncoder eval_encoder_bytes(void) { return (EvalEncoder){NULL, encode_text, NULL, 0}; }

EvalEncoder eval_encoder_tokenizer(const Tokenizer *tok) {
    EvalEncoder e = {(void *)tok, encode_text, NULL, 0};
    const int32_t *after;
    size_t nafter;
    tokenizer_template(tok, &e.bos, &e.nbos, &after, &nafter);
    return e;
}

static void item_free(McItem *it) {
    for (int j = 0; j < it->nchoices; j++) {
        free(it->cont ? it->cont[j] : NULL);
        free(it->text ? it->text[j] : NULL);
    }
    free(it->cont);
    free(it->ncont);
    free(it->chars);
    free(it->text);
    free(it->ctx);
    memset(it, 0, sizeof *it);
}

void mc_set_free(McSet *s) {
    for (int64_t i = 0; i < s->n; i++) item_free(&s->items[i]);
    free(s->items);
    memset(s, 0, sizeof *s);
}

McItem *mc_set_push(McSet *s, int nc) {
    if ((s->n & (s->n - 1)) == 0) /* capacity: the next power of two */
        s->items = ow_xrealloc(s->items, (size_t)(s->n ? 2 * s->n : 1) * sizeof *s->items);
    McItem *it = &s->items[s->n];
    memset(it, 0, sizeof *it);
    it->nchoices = nc;
    it->cont = ow_xcalloc((size_t)nc, sizeof *it->cont);
    it->ncont = ow_xcalloc((size_t)nc, sizeof *it->ncont);
    it->chars = ow_xcalloc((size_t)nc, sizeof *it->chars);
    it->text = ow_xcalloc((size_t)nc, sizeof *it->text);
    return it;
}

void mc_set_commit(McSet *s) {
    s->nchoices_total += s->items[s->n].nchoices;
    s->n++;
}

void mc_set_drop(McSet *s) { item_free(&s->items[s->n]); }

/* prefix + encode(text[:len]) into a new heap array */
static int encode_prefixed(const EvalEncoder *enc, const int32_t *prefix, size_t np, const char *text, size_t len,
                           int32_t **ids, int64_t *n, OwError *err) {
    int32_t *body;
    int64_t nb;
    if (enc->encode(enc->ctx, text, len, &body, &nb, err) != 0) return -1;
    *n = (int64_t)np + nb;
    *ids = ow_xmalloc((size_t)(*n ? *n : 1) * sizeof(int32_t));
    if (np) memcpy(*ids, prefix, np * sizeof(int32_t));
    if (nb) memcpy(*ids + np, body, (size_t)nb * sizeof(int32_t));
    free(body);
    return 0;
}

int mc_item_encode(const EvalEncoder *enc, const int32_t *prefix, size_t nprefix, const char *context, size_t keep,
                   const char *const *cont, McItem *it, OwError *err) {
    size_t clen = strlen(context);
    if (encode_prefixed(enc, prefix, nprefix, context, keep, &it->ctx, &it->nctx, err) != 0) return -1;
    for (int j = 0; j < it->nchoices; j++) {
        size_t chl = strlen(cont[j]);
        char *whole = ow_xmalloc(clen + chl + 1);
        memcpy(whole, context, clen);
        memcpy(whole + clen, cont[j], chl + 1);
        int32_t *wids;
        int64_t wn;
        int rc = encode_prefixed(enc, prefix, nprefix, whole, clen + chl, &wids, &wn, err);
        free(whole);
        if (rc != 0) return -1;
        int64_t skip = it->nctx <= wn ? it->nctx : wn;
        it->ncont[j] = wn - skip;
        it->cont[j] = ow_xmalloc((size_t)(it->ncont[j] ? it->ncont[j] : 1) * sizeof(int32_t));
        memcpy(it->cont[j], wids + skip, (size_t)it->ncont[j] * sizeof(int32_t));
        free(wids);
    }
    return 0;
}

int64_t mc_text_chars(const char *s) {
    int64_t c = 0;
    for (; *s; s++) c += ((unsigned char)*s & 0xC0) != 0x80;
    return c;
}

int mc_item_check(const McItem *it, const char *where, OwError *err) {
    if (it->nctx < 1) return ow_fail(err, "%s: the context has no tokens (an empty context is not supported)", where);
    for (int j = 0; j < it->nchoices; j++)
        if (it->ncont[j] < 1) return ow_fail(err, "%s: choice %d has no tokens", where, j);
    return 0;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* An int array (token ids) into a new heap array. */
static int read_ids(const cJSON *a, int32_t **out, int64_t *n, const char *where, const char *what, OwError *err) {
    if (!cJSON_IsArray(a)) return ow_fail(err, "%s: %s must be an array of token ids", where, what);
    int k = cJSON_GetArraySize(a);
    int32_t *v = ow_xmalloc((size_t)(k ? k : 1) * sizeof(int32_t));
    for (int i = 0; i < k; i++) {
        const cJSON *x = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 2147483647.0 ||
            x->valuedouble != floor(x->valuedouble)) {
            free(v);
            return ow_fail(err, "%s: %s[%d] is not a token id (a non-negative integer)", where, what, i);
        }
        v[i] = (int32_t)x->valuedouble;
    }
    *out = v;
    *n = k;
    return 0;
}

static int parse_item(const cJSON *o, const EvalEncoder *enc, const char *where, McItem *it, OwError *err) {
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(o, "choices");
    int nc = it->nchoices;
    const char *context = NULL;
    int64_t label = -1;
    if (json_get_str(o, "context", 1, &context, where, err) != 0 ||
        json_get_int(o, "label", 1, &label, where, err) != 0)
        return -1;
    if (label < 0 || label >= nc)
        return ow_fail(err, "%s: label %lld is not a choice index (0..%d)", where, (long long)label, nc - 1);
    it->label = (int)label;
    for (int j = 0; j < nc; j++) {
        const cJSON *c = cJSON_GetArrayItem(choices, j);
        if (!cJSON_IsString(c)) return ow_fail(err, "%s: choices[%d] is not a string", where, j);
        it->text[j] = ow_xstrdup(c->valuestring);
        it->chars[j] = mc_text_chars(c->valuestring);
        if (it->chars[j] == 0) return ow_fail(err, "%s: choices[%d] is empty", where, j);
    }
    const cJSON *cids = cJSON_GetObjectItemCaseSensitive(o, "context_ids");
    const cJSON *chids = cJSON_GetObjectItemCaseSensitive(o, "choice_ids");
    if (cids || chids) {
        if (read_ids(cids, &it->ctx, &it->nctx, where, "context_ids", err) != 0) return -1;
        if (!cJSON_IsArray(chids) || cJSON_GetArraySize(chids) != nc)
            return ow_fail(err, "%s: choice_ids must hold one id array per choice (%d)", where, nc);
        for (int j = 0; j < nc; j++) {
            char what[32];
            snprintf(what, sizeof what, "choice_ids[%d]", j);
            if (read_ids(cJSON_GetArrayItem(chids, j), &it->cont[j], &it->ncont[j], where, what, err) != 0) return -1;
        }
    } else {
        if (!enc)
            return ow_fail(err,
                           "%s: the item has text but no way to tokenize it was given (hint: add \"context_ids\" "
                           "and \"choice_ids\" to each item)",
                           where);
        /* the harness moves the context's trailing whitespace to the continuation, and adds no special tokens */
        size_t keep = strlen(context);
        while (keep > 0 && is_space(context[keep - 1])) keep--;
        if (mc_item_encode(enc, NULL, 0, context, keep, (const char *const *)it->text, it, err) != 0)
            return ow_fail_prefix(err, "%s", where);
    }
    return mc_item_check(it, where, err);
}

int mc_read_jsonl(const char *path, const EvalEncoder *enc, McSet *out, OwError *err) {
    memset(out, 0, sizeof *out);
    char *text;
    size_t len;
    if (ow_read_file(path, &text, &len, err) != 0) return -1;
    int64_t lineno = 0;
    int rc = 0;
    char *p = text, *end = text + len;
    while (rc == 0 && p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        lineno++;
        char *q = p;
        while (q < le && is_space(*q)) q++;
        if (q < le) {
            char where[600];
            snprintf(where, sizeof where, "%s: line %lld", path, (long long)lineno);
            cJSON *o = json_parse(p, (size_t)(le - p), where, err);
            if (!o) {
                rc = -1;
                break;
            }
            const cJSON *choices = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "choices") : NULL;
            if (!cJSON_IsObject(o))
                rc = ow_fail(err, "%s: expected a JSON object {\"context\", \"choices\", \"label\"}", where);
            else if (!cJSON_IsArray(choices) || cJSON_GetArraySize(choices) < 1)
                rc = ow_fail(err, "%s: \"choices\" must be a non-empty array of strings", where);
            if (rc == 0) {
                McItem *it = mc_set_push(out, cJSON_GetArraySize(choices));
                rc = parse_item(o, enc, where, it, err);
                if (rc == 0)
                    mc_set_commit(out);
                else
                    mc_set_drop(out);
            }
            cJSON_Delete(o);
            if (rc != 0) break;
        }
        p = le + 1;
    }
    free(text);
    if (rc == 0 && out->n == 0) rc = ow_fail(err, "%s: no items (expected one JSON object per line)", path);
    if (rc != 0) mc_set_free(out);
    return rc;
}

/* ---- multiple choice: scoring ---- */

/* A row: one (item, choice) sequence; flat is its index among all choices, len its tokens less one (at most T). */
typedef struct McRow {
    int64_t item, flat, len;
    int choice;
} McRow;

static McRow *mc_rows(const McSet *set, int64_t T) {
    McRow *rows = ow_xmalloc((size_t)(set->nchoices_total ? set->nchoices_total : 1) * sizeof *rows);
    int64_t k = 0;
    for (int64_t i = 0; i < set->n; i++)
        for (int j = 0; j < set->items[i].nchoices; j++, k++) {
            int64_t len = set->items[i].nctx + set->items[i].ncont[j] - 1;
            rows[k] = (McRow){i, k, len < T ? len : T, j};
        }
    return rows;
}

/* Scores n <= B rows in one forward of B x T (the model prepared for it); ids, tg, losses: B*T scratch. */
static int score_batch(Model *m, int64_t B, int64_t T, const McSet *set, const McRow *rows, int64_t n, int32_t *ids,
                       int32_t *tg, float *losses, double *loglik, OwError *err) {
    for (int64_t r = 0; r < B; r++) {
        int32_t *ri = ids + r * T, *rt = tg + r * T;
        for (int64_t t = 0; t < T; t++) {
            ri[t] = 0;
            rt[t] = -100;
        }
        if (r >= n) continue;
        const McItem *it = &set->items[rows[r].item];
        int j = rows[r].choice;
        int64_t nc = it->nctx, S = nc + it->ncont[j];
        if (it->ncont[j] > T)
            return ow_fail(err,
                           "item %lld, choice %d: the continuation has %lld tokens, more than the block size %lld "
                           "(hint: a larger --block-size)",
                           (long long)rows[r].item + 1, j, (long long)it->ncont[j], (long long)T);
        int64_t start = S > T + 1 ? S - (T + 1) : 0;
        for (int64_t t = 0; start + t + 1 < S; t++) {
            int64_t a = start + t, b = a + 1;
            ri[t] = a < nc ? it->ctx[a] : it->cont[j][a - nc];
            rt[t] = b < nc ? -100 : it->cont[j][b - nc];
        }
    }
    if (model_forward_losses(m, ids, tg, losses, err) != 0) return -1;
    for (int64_t r = 0; r < n; r++) {
        double s = 0;
        for (int64_t t = 0; t < T; t++)
            if (tg[r * T + t] != -100) s += losses[r * T + t];
        loglik[rows[r].flat] = -s;
    }
    return 0;
}

int eval_mc_loglik(Model *m, int64_t B, int64_t T, const McSet *set, double *loglik, OwError *err) {
    int64_t total = set->nchoices_total, N = B * T;
    int32_t *ids = ow_xmalloc((size_t)N * sizeof(int32_t)), *tg = ow_xmalloc((size_t)N * sizeof(int32_t));
    float *losses = ow_xmalloc((size_t)N * sizeof(float));
    McRow *rows = mc_rows(set, T);
    int rc = 0;
    for (int64_t r0 = 0; rc == 0 && r0 < total; r0 += B)
        rc = score_batch(m, B, T, set, rows + r0, total - r0 < B ? total - r0 : B, ids, tg, losses, loglik, err);
    free(ids);
    free(tg);
    free(losses);
    free(rows);
    return rc;
}

static int row_longer_first(const void *pa, const void *pb) {
    const McRow *a = pa, *b = pb;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return (a->flat > b->flat) - (a->flat < b->flat);
}

int eval_mc_loglik_packed(Model *m, int64_t B, int64_t T, const McSet *set, double *loglik, EvalMcStats *st,
                          OwError *err) {
    int64_t total = set->nchoices_total, N = B * T;
    int32_t *ids = ow_xmalloc((size_t)N * sizeof(int32_t)), *tg = ow_xmalloc((size_t)N * sizeof(int32_t));
    float *losses = ow_xmalloc((size_t)N * sizeof(float));
    McRow *rows = mc_rows(set, T);
    qsort(rows, (size_t)total, sizeof *rows, row_longer_first);
    DType act = m->be->act_dtype;
    size_t budget = model_activation_bytes(&m->cfg, act, B, T, 1, 0, 0, 0);
    int64_t pB = 0, pT = 0;
    int rc = 0;
    memset(st, 0, sizeof *st);
    for (int64_t r0 = 0; rc == 0 && r0 < total;) {
        int64_t len = (rows[r0].len + 15) / 16 * 16, nb;
        if (len > T) len = T;
        for (nb = N / len; nb > B && model_activation_bytes(&m->cfg, act, nb, len, 1, 0, 0, 0) > budget;)
            nb = nb * 9 / 10 > B ? nb * 9 / 10 : B;
        if ((nb != pB || len != pT) && model_prepare(m, nb, len, 1, err) != 0) {
            rc = -1;
            break;
        }
        pB = nb;
        pT = len;
        int64_t n = total - r0 < nb ? total - r0 : nb;
        rc = score_batch(m, nb, len, set, rows + r0, n, ids, tg, losses, loglik, err);
        for (int64_t r = r0; r < r0 + n; r++) st->tokens += rows[r].len;
        st->forwards++;
        st->padded += nb * len;
        r0 += n;
    }
    free(ids);
    free(tg);
    free(losses);
    free(rows);
    return rc;
}

void eval_mc_accuracy(const McSet *set, const double *loglik, double *acc, double *acc_norm, int *pred,
                      int *pred_norm) {
    int64_t hit = 0, hit_norm = 0, k = 0;
    for (int64_t i = 0; i < set->n; i++) {
        const McItem *it = &set->items[i];
        int best = 0, best_norm = 0;
        for (int j = 1; j < it->nchoices; j++) {
            if (loglik[k + j] > loglik[k + best]) best = j;
            if (loglik[k + j] / (double)it->chars[j] > loglik[k + best_norm] / (double)it->chars[best_norm])
                best_norm = j;
        }
        if (pred) pred[i] = best;
        if (pred_norm) pred_norm[i] = best_norm;
        hit += best == it->label;
        hit_norm += best_norm == it->label;
        k += it->nchoices;
    }
    *acc = set->n ? (double)hit / (double)set->n : NAN;
    *acc_norm = set->n ? (double)hit_norm / (double)set->n : NAN;
}

double eval_mc_item_ce(const McItem *it, const double *item_loglik) {
    return -item_loglik[it->label] / (double)it->ncont[it->label];
}

void eval_mc_answer_ce(const McSet *set, const double *loglik, double *answer_ce, int64_t *tokens) {
    double sum = 0;
    int64_t ntok = 0, k = 0;
    for (int64_t i = 0; i < set->n; i++) {
        const McItem *it = &set->items[i];
        sum += eval_mc_item_ce(it, loglik + k);
        ntok += it->ncont[it->label];
        k += it->nchoices;
    }
    *answer_ce = set->n ? sum / (double)set->n : NAN;
    *tokens = ntok;
}
