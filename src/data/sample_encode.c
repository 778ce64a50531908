/* sample_encode.c: see sample_encode.h. */
#include "data/sample_encode.h"

#include <string.h>

/* k_b: the number of the body's tokens that cover text[:b] exactly */
static int boundary(const Tokenizer *tok, TokenizerWork *work, const RenderedSample *s, size_t b, const IdVec *body,
                    IdVec *pre, int64_t *k, OwError *err) {
    if (b == 0) {
        *k = 0;
        return 0;
    }
    if (b == s->len) {
        *k = (int64_t)body->len;
        return 0;
    }
    if (tokenizer_encode_with(tok, work, s->text, b, 0, pre, err) != 0) return -1;
    if (pre->len > body->len || memcmp(pre->data, body->data, pre->len * sizeof(int32_t)) != 0) {
        size_t i = 0;
        while (i < pre->len && i < body->len && pre->data[i] == body->data[i]) i++;
        const char *a = i < pre->len ? tokenizer_id_to_token(tok, pre->data[i]) : NULL;
        const char *c = i < body->len ? tokenizer_id_to_token(tok, body->data[i]) : NULL;
        return ow_fail(
            err,
            "the loss mask cannot be exact: the text up to byte %zu (\"...%.*s\") encodes to tokens that are "
            "not a prefix of the whole sample's (they differ at token %zu: \"%s\" alone, \"%s\" in the sample), "
            "so a token straddles the boundary between prompt and response (hint: --train-on-prompt, or a "
            "template whose response starts after a space, newline or special token)",
            b, (int)(b < 24 ? b : 24), s->text + (b < 24 ? 0 : b - 24), i, a ? a : "(end)", c ? c : "(end)");
    }
    *k = (int64_t)pre->len;
    return 0;
}

void sample_scratch_free(SampleScratch *sc) {
    idvec_free(&sc->body);
    idvec_free(&sc->prefix);
}

int sample_encode(const Tokenizer *tok, TokenizerWork *work, const RenderedSample *s, IdVec *ids, ByteVec *mask,
                  SampleScratch *sc, OwError *err) {
    const int32_t *before, *after;
    size_t nb, na;
    tokenizer_template(tok, &before, &nb, &after, &na);
    if (!s->add_special) nb = na = 0;
    if (tokenizer_encode_with(tok, work, s->text, s->len, 0, &sc->body, err) != 0) return -1;
    const IdVec body = sc->body; /* a view: sc->prefix is the only buffer that changes below */
    size_t base = ids->len;
    for (size_t i = 0; i < nb; i++) idvec_push(ids, before[i]);
    for (size_t i = 0; i < body.len; i++) idvec_push(ids, body.data[i]);
    for (size_t i = 0; i < na; i++) idvec_push(ids, after[i]);
    int32_t eos = tokenizer_eos_id(tok);
    if (s->append_eos) {
        OW_CHECK(eos >= 0); /* the dataset checks this before encoding */
        if (ids->len == base || ids->data[ids->len - 1] != eos) idvec_push(ids, eos);
    }
    if (!mask) return 0;
    size_t n = ids->len - base;
    if (s->whole_loss) {
        for (size_t i = 0; i < n; i++) bytevec_push(mask, 1);
        return 0;
    }
    size_t mbase = mask->len;
    for (size_t i = 0; i < n; i++) bytevec_push(mask, 0);
    uint8_t *m = mask->data + mbase;
    for (size_t sp = 0; sp < s->nspans; sp++) {
        int64_t k0, k1;
        if (boundary(tok, work, s, s->spans[sp].start, &body, &sc->prefix, &k0, err) != 0 ||
            boundary(tok, work, s, s->spans[sp].end, &body, &sc->prefix, &k1, err) != 0) {
            mask->len = mbase;
            ids->len = base;
            return -1;
        }
        for (int64_t k = k0; k < k1; k++) m[nb + (size_t)k] = 1;
    }
    if (s->nspans > 0 && s->spans[s->nspans - 1].end == s->len)
        for (size_t i = nb + body.len; i < n; i++) m[i] = 1;
    return 0;
}
