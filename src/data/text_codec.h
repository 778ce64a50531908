/* text_codec.h: text to ids and back for generation: with a model's tokenizer,
 * or as bytes for byte-level models (no tokenizer.json: id = byte value), and
 * incremental detokenization of ids as they are generated.
 *
 * TextStream turns ids into text one id at a time, as transformers' streamers
 * and text-generation-inference do: it decodes from a few ids back
 * (decode(ids[prefix:]) against decode(ids[prefix:read])) so context-dependent
 * pieces (a SentencePiece word's leading space) come out as in a whole decode,
 * and it holds text back while it ends in an incomplete character (a
 * tokenizer's U+FFFD for byte-fallback pieces still to come, or an unfinished
 * UTF-8 sequence of a byte-level model), so no chunk ends in half a
 * character. The chunks concatenated are the decode of all ids. */
#ifndef OWLORE_DATA_TEXT_CODEC_H
#define OWLORE_DATA_TEXT_CODEC_H

#include "data/tokenizer.h"

/* tok NULL: bytes. add_special: the tokenizer's post-processor (BOS); bytes have none. out is cleared first. */
int text_encode(const Tokenizer *tok, const char *text, size_t len, int add_special, IdVec *out, OwError *err);
/* Special tokens are left out (skip_special_tokens); a byte-level model's ids past 255 have no text. *text is a
 * NUL-terminated heap string. */
int text_decode(const Tokenizer *tok, const int32_t *ids, size_t n, char **text, size_t *len, OwError *err);

typedef struct TextStream {
    const Tokenizer *tok; /* NULL: bytes */
    IdVec ids;
    size_t prefix, read;
} TextStream;

/* Starts a stream ({0} with tok set works too). */
void text_stream_init(TextStream *s, const Tokenizer *tok);
void text_stream_free(TextStream *s);
/* Adds an id; *out (heap, NUL-terminated) gets the text that became complete with it (*len may be 0). */
int text_stream_push(TextStream *s, int32_t id, char **out, size_t *len, OwError *err);
/* The text still held back (an incomplete character at the end comes out as decoded). */
int text_stream_finish(TextStream *s, char **out, size_t *len, OwError *err);

#endif
