/* generate.c: see generate.h. */
#include "model/generate.h"

#include "core/log.h"

#include <stdlib.h>

static int is_stop(const GenerateOptions *o, int32_t id) {
    for (int i = 0; i < o->nstop; i++)
        if (o->stop_ids[i] == id) return 1;
    return 0;
}

int generate_tokens(Decoder *d, TokenSampler *s, const int32_t *prompt, int64_t n, const GenerateOptions *o, IdVec *out,
                    GenerateStats *st, OwError *err) {
    Model *m = decoder_model(d);
    float *logits = ow_xmalloc((size_t)m->cfg.vocab_size * sizeof(float));
    *st = (GenerateStats){n, 0, 0, 0.0, 0.0, GEN_STOP_MAX_NEW};
    double t0 = ow_now();
    int rc = decoder_feed(d, prompt, n, logits, err);
    double t1 = ow_now();
    st->prefill_s = t1 - t0;
    while (rc == 0 && st->new_tokens < o->max_new_tokens) {
        int32_t id = token_sampler_next(s, logits);
        idvec_push(out, id);
        st->new_tokens++;
        int caller_stop = o->on_token && o->on_token(o->ctx, id) != 0;
        if (is_stop(o, id)) {
            st->stop = GEN_STOP_ID;
            break;
        }
        if (caller_stop) {
            st->stop = GEN_STOP_CALLER;
            break;
        }
        if (st->new_tokens == o->max_new_tokens) break;
        if (decoder_len(d) == decoder_max_len(d)) {
            st->stop = GEN_STOP_CONTEXT;
            break;
        }
        rc = decoder_feed(d, &id, 1, logits, err);
        st->steps++;
    }
    st->decode_s = ow_now() - t1;
    free(logits);
    return rc;
}

int generate_greedy(Model *m, const int32_t *prompt, int64_t n, int64_t max_new, const int32_t *stop_ids, int nstop,
                    IdVec *out, OwError *err) {
    out->len = 0;
    int64_t ctx = n + (max_new > 0 ? max_new : 0);
    if (ctx > m->cfg.max_position_embeddings) ctx = m->cfg.max_position_embeddings;
    if (n < 1 || n > ctx)
        return ow_fail(err, "a prompt of %lld tokens does not fit the model's context of %lld positions", (long long)n,
                       (long long)m->cfg.max_position_embeddings);
    Decoder *d;
    if (decoder_create(m, ctx, DECODER_DEFAULT_CHUNK, &d, err) != 0) return -1;
    TokenSampler s;
    token_sampler_init(&s, m->cfg.vocab_size, 0.0, 1.0, 0);
    GenerateOptions o = {max_new, stop_ids, nstop, NULL, NULL};
    GenerateStats st;
    int rc = generate_tokens(d, &s, prompt, n, &o, out, &st, err);
    token_sampler_free(&s);
    decoder_free(d);
    return rc;
}

static void add_stop(const Model *m, int64_t id, int32_t *stops, int *n) {
    if (id < 0 || id >= m->cfg.vocab_size) return;
    for (int i = 0; i < *n; i++)
        if (stops[i] == id) return;
    stops[(*n)++] = (int32_t)id;
}

int generate_stop_ids(const Model *m, const Tokenizer *tok, const char *end_of_turn, int32_t stops[3]) {
    int n = 0;
    add_stop(m, m->cfg.eos_token_id, stops, &n);
    if (tok) {
        add_stop(m, tokenizer_eos_id(tok), stops, &n);
        if (end_of_turn) add_stop(m, tokenizer_token_id(tok, end_of_turn), stops, &n);
    }
    return n;
}
