/* decoder.h: incremental decoding of one sequence with a key/value cache.
 *
 * A Decoder holds, for every block of a model, the keys and values of the
 * positions fed so far (act dtype [max_len, Hkv * D] each: position-major, so a
 * new position's keys are written in place by the k projection and
 * attention_decode reads a prefix of rows), and the buffers of up to `chunk`
 * new positions. decoder_feed runs new tokens through the model at the next
 * positions (a prompt's prefill, all positions of a chunk at once; a
 * generation step, one) and returns the logits of the last one: the same
 * arithmetic per position as model_forward_logits over the whole sequence
 * (RoPE at each position's angle, GQA, tied or untied lm_head). Streamed
 * blocks of a placed model come up one after another as in a forward.
 *
 * The model's weights must not change while a Decoder uses it; the model's
 * activation buffers (model_prepare) are not used. */
#ifndef OWLORE_MODEL_DECODER_H
#define OWLORE_MODEL_DECODER_H

#include "model/model.h"

typedef struct Decoder Decoder;

/* Positions fed at once by default (the prefill's chunk). */
#define DECODER_DEFAULT_CHUNK 256

/* A decoder for sequences of up to max_len positions (at most the model's max_position_embeddings), feeding at
 * most chunk positions per pass (longer inputs go in chunks). -1 with a message when the backend cannot hold it. */
int decoder_create(Model *m, int64_t max_len, int64_t chunk, Decoder **out, OwError *err);
void decoder_free(Decoder *d);
/* Device bytes decoder_create allocates (the cache, the buffers and the rotary tables). */
size_t decoder_bytes(const ModelConfig *cfg, DType act, int64_t max_len, int64_t chunk);

/* Runs ids[0..n) at positions len .. len + n - 1 (n >= 1), filling the cache, and writes the logits (F32 [V])
 * of the last one to host memory when logits is not NULL. -1 with a message when the ids do not fit the
 * remaining context (len + n > max_len) or one is outside the vocabulary; nothing is fed then. */
int decoder_feed(Decoder *d, const int32_t *ids, int64_t n, float *logits, OwError *err);
/* Forgets the positions from len on (len <= decoder_len): the next feed continues at len. */
void decoder_truncate(Decoder *d, int64_t len);
int64_t decoder_len(const Decoder *d);
int64_t decoder_max_len(const Decoder *d);
Model *decoder_model(const Decoder *d);

#endif
