/* sample_encode.h: a rendered sample (sample.h) to token ids and an exact
 * loss mask.
 *
 * Ids: the whole text is encoded in one call, as transformers does
 * (apply_chat_template encodes the rendered conversation with
 * add_special_tokens=False; a prompt template's text is encoded with
 * add_special_tokens=True: the post-processor's ids around it), then the EOS
 * id when append_eos asks for it and the last id is not EOS already.
 *
 * Mask: for every loss-span boundary b inside the text, the text before b is
 * encoded on its own; its ids must be a prefix of the whole text's ids, of
 * length k_b. Then the tokens of the whole text split exactly at b: tokens
 * before k_b cover text[:b] and the rest start at b. The mask is 1 on tokens
 * [k_start, k_end) of every span, so it covers exactly the tokens that
 * overlap a span (the rule transformers' return_assistant_tokens_mask applies
 * to offsets). When a token straddles a boundary (a merge across the end of
 * the prompt) the prefix check fails and the sample is an error: no
 * approximate mask is ever made. Ids added after the text (post-processor,
 * EOS) are in the loss when the last span reaches the end of the text; the
 * post-processor's ids before it never are. */
#ifndef OWLORE_DATA_SAMPLE_ENCODE_H
#define OWLORE_DATA_SAMPLE_ENCODE_H

#include "data/sample.h"

/* Reusable buffers of sample_encode ({0} to start; sample_scratch_free). */
typedef struct SampleScratch {
    IdVec body, prefix;
} SampleScratch;
void sample_scratch_free(SampleScratch *sc);

/* Appends the sample's ids to ids and, when mask is not NULL, its loss flags
 * to mask (0/1, one per id; all 1 for whole_loss samples). work is the
 * caller's tokenizer scratch. On error nothing is appended; the message says
 * which boundary broke (the caller adds file:line). */
int sample_encode(const Tokenizer *tok, TokenizerWork *work, const RenderedSample *s, IdVec *ids, ByteVec *mask,
                  SampleScratch *sc, OwError *err);

#endif
