/* eval_generate.c: see eval_generate.h. */
#include "train/eval_generate.h"

#include "core/log.h"
#include "data/text_codec.h"
#include "model/generate.h"
#include "train/eval_commonsense.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void eval_generate_score(const McSet *set, const char *const *texts, int *pred, EvalGenScore *out) {
    *out = (EvalGenScore){set->n, 0, 0, NAN};
    for (int64_t i = 0; i < set->n; i++) {
        const McItem *it = &set->items[i];
        pred[i] = commonsense_extract_answer(texts[i], (const char *const *)it->text, it->nchoices);
        out->hit += pred[i] == it->label;
        out->unparsed += pred[i] < 0;
    }
    if (set->n > 0) out->acc = (double)out->hit / (double)set->n;
}

void eval_generate_texts_free(char **texts, int64_t n) {
    for (int64_t i = 0; texts && i < n; i++) free(texts[i]);
}

/* One item: greedy ids after its context on the emptied decoder, then their text without the stop id. */
static int generate_item(Decoder *d, TokenSampler *s, const McItem *it, int64_t keep, const EvalGenOptions *o,
                         IdVec *ids, char **text, OwError *err) {
    decoder_truncate(d, 0);
    ids->len = 0;
    GenerateOptions go = {o->max_new, o->stop_ids, o->nstop, NULL, NULL};
    GenerateStats st;
    int64_t n = it->nctx < keep ? it->nctx : keep;
    if (generate_tokens(d, s, it->ctx + it->nctx - n, n, &go, ids, &st, err) != 0) return -1;
    size_t len, nt = ids->len - (st.stop == GEN_STOP_ID); /* a stop id ends ids */
    return text_decode(o->tok, ids->data, nt, text, &len, err);
}

/* The decoder's context: the longest item's context and max_new, at most the model's. */
static int64_t context_of(const Model *m, const McSet *set, int64_t max_new) {
    int64_t longest = 0, maxpos = m->cfg.max_position_embeddings;
    for (int64_t i = 0; i < set->n; i++)
        if (set->items[i].nctx > longest) longest = set->items[i].nctx;
    return longest + max_new < maxpos ? longest + max_new : maxpos;
}

int eval_generate_texts(Model *m, const McSet *set, const EvalGenOptions *o, char **texts, IdVec *ids, double *seconds,
                        OwError *err) {
    OW_CHECK(o->max_new >= 1);
    memset(texts, 0, (size_t)set->n * sizeof *texts);
    if (ids) memset(ids, 0, (size_t)set->n * sizeof *ids);
    int64_t ctx = context_of(m, set, o->max_new), keep = m->cfg.max_position_embeddings - o->max_new;
    if (keep < 1)
        return ow_fail(err, "--max-new-tokens %lld leaves no room for a prompt in the model's context of %lld",
                       (long long)o->max_new, (long long)m->cfg.max_position_embeddings);
    Decoder *d;
    if (decoder_create(m, ctx, DECODER_DEFAULT_CHUNK, &d, err) != 0) return -1;
    TokenSampler s;
    token_sampler_init(&s, m->cfg.vocab_size, 0.0, 1.0, 0);
    IdVec scratch = {0};
    double t0 = ow_now(), last = t0;
    int rc = 0;
    int64_t cut = 0;
    for (int64_t i = 0; rc == 0 && i < set->n; i++) {
        rc = generate_item(d, &s, &set->items[i], keep, o, ids ? &ids[i] : &scratch, &texts[i], err);
        cut += rc == 0 && set->items[i].nctx > keep;
        if (rc != 0) ow_fail_prefix(err, "item %lld", (long long)i);
        double now = ow_now();
        if (rc == 0 && o->progress_s > 0 && now - last >= o->progress_s && i + 1 < set->n) {
            OW_INFO("generate: %lld/%lld items, %.2f items/s", (long long)(i + 1), (long long)set->n,
                    (double)(i + 1) / (now - t0));
            last = now;
        }
    }
    *seconds = ow_now() - t0;
    if (cut > 0)
        OW_INFO("generate: %lld of %lld prompts kept their last %lld tokens to leave room for %lld new ones in the "
                "model's context",
                (long long)cut, (long long)set->n, (long long)keep, (long long)o->max_new);
    idvec_free(&scratch);
    token_sampler_free(&s);
    decoder_free(d);
    return rc;
}
