/* model_save.h: writing a model as a Hugging Face directory (config.json,
 * safetensors shards with an index when sharded). The directory is built
 * under a temporary name beside the target and renamed into place at the
 * end, so a crash never leaves a half-written model. */
#ifndef OWLORE_MODEL_MODEL_SAVE_H
#define OWLORE_MODEL_MODEL_SAVE_H

#include "model/model.h"

/* dtype: OW_F32 or OW_BF16 (OW_F16 too). shard_bytes 0: one file.
 * tokenizer_src: a directory whose tokenizer files are copied (may be NULL). */
int model_save_hf(Model *m, const char *dir, DType dtype, size_t shard_bytes, const char *tokenizer_src, OwError *err);

#endif
