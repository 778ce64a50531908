/* model_internal.h: what the files of src/model share between them and no
 * other module uses (model.c, llama.c, rope.c, decoder.c); tests that check these parts
 * include it explicitly. Everything public is in model.h. */
#ifndef OWLORE_MODEL_MODEL_INTERNAL_H
#define OWLORE_MODEL_MODEL_INTERNAL_H

#include "model/model.h"

/* Adds ids to the row map (new rows get the next slots) and uploads the map if it changed;
 * when pos_slot is given, writes the slot of each position to it (host I32 [n]). */
int model_embed_rows_add(Model *m, const int32_t *ids, int64_t n, int32_t *pos_slot, OwError *err);
/* Lowest block that has a trainable tensor, num_layers if none. */
int model_lowest_trainable_block(const Model *m);
/* The pool's view for lm_head's gradient (Model.head_grad_host; model_set_trainable). */
void *model_acts_head_grad(Model *m);
/* Model.rope_cos / rope_sin hold at least T positions (rebuilt when shorter). */
int model_rope_prepare(Model *m, int64_t T, OwError *err);
/* Block l on the device for a forward-only pass (model_block_acquire), with the streamed blocks that follow it
 * in forward order (wrapping to block 0) on their way up; model_block_release(m, l) after its use. */
int model_forward_block_enter(Model *m, int l, OwError *err);
/* Rotary tables for this config (llama3 scaling included), as transformers computes them. */
void rope_tables(const ModelConfig *cfg, int64_t T, float *cos_out, float *sin_out);

#endif
