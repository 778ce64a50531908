/* text_codec.c: see text_codec.h. */
#include "data/text_codec.h"

#include "core/utf8.h"

#include <stdlib.h>
#include <string.h>

int text_encode(const Tokenizer *tok, const char *text, size_t len, int add_special, IdVec *out, OwError *err) {
    if (tok) return tokenizer_encode(tok, text, len, add_special, out, err);
    out->len = 0;
    for (size_t i = 0; i < len; i++) idvec_push(out, (unsigned char)text[i]);
    return 0;
}

int text_decode(const Tokenizer *tok, const int32_t *ids, size_t n, char **text, size_t *len, OwError *err) {
    if (tok) return tokenizer_decode(tok, ids, n, 1, text, len, err);
    char *s = ow_xmalloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < 256) s[k++] = (char)ids[i];
    s[k] = 0;
    *text = s;
    *len = k;
    return 0;
}

void text_stream_init(TextStream *s, const Tokenizer *tok) {
    memset(s, 0, sizeof *s);
    s->tok = tok;
}

void text_stream_free(TextStream *s) { idvec_free(&s->ids); }

/* Whether text ends in a complete character: not in U+FFFD nor in an unfinished UTF-8 sequence. */
static int ends_complete(const char *s, size_t n) {
    if (n >= 3 && memcmp(s + n - 3, "\xEF\xBF\xBD", 3) == 0) return 0;
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = (unsigned char)s[n - back];
        if ((c & 0xC0) == 0x80) continue; /* a continuation byte: look further back */
        return !(c >= 0xC0 && utf8_seq_len(c) > back);
    }
    return 1;
}

/* What decode(ids[prefix:]) adds to decode(ids[prefix:read]) once it ends in a complete character (at_end: whatever
 * it is); the offsets move on when something is given out. */
static int stream_emit(TextStream *s, int at_end, char **out, size_t *len, OwError *err) {
    char *old = NULL, *cur = NULL;
    size_t nold = 0, ncur = 0;
    *out = NULL;
    *len = 0;
    if (text_decode(s->tok, s->ids.data + s->prefix, s->read - s->prefix, &old, &nold, err) != 0 ||
        text_decode(s->tok, s->ids.data + s->prefix, s->ids.len - s->prefix, &cur, &ncur, err) != 0) {
        free(old);
        return -1;
    }
    if (ncur > nold && (at_end || ends_complete(cur, ncur))) {
        memmove(cur, cur + nold, ncur - nold + 1);
        *out = cur;
        *len = ncur - nold;
        s->prefix = s->read;
        s->read = s->ids.len;
    } else {
        free(cur);
        *out = ow_xstrdup("");
    }
    free(old);
    return 0;
}

int text_stream_push(TextStream *s, int32_t id, char **out, size_t *len, OwError *err) {
    idvec_push(&s->ids, id);
    return stream_emit(s, 0, out, len, err);
}

int text_stream_finish(TextStream *s, char **out, size_t *len, OwError *err) {
    return stream_emit(s, 1, out, len, err);
}
