/* model_save.h: writing a model as a Hugging Face directory (config.json,
 * safetensors shards with an index when sharded, tokenizer files). The
 * directory is built under a temporary name beside the target and renamed
 * into place at the end, so a crash never leaves a half-written model.
 * Tensor data is produced one tensor at a time (downloaded from the backend,
 * or fetched by the caller), so host memory holds one tensor, never the
 * whole model. */
#ifndef OWLORE_MODEL_MODEL_SAVE_H
#define OWLORE_MODEL_MODEL_SAVE_H

#include "model/model.h"
#include "model/safetensors.h"

/* dtype: OW_F32 or OW_BF16 (OW_F16 too). shard_bytes 0: one file.
 * tokenizer_src: a directory whose tokenizer files are copied (may be NULL). */
int model_save_hf(Model *m, const char *dir, DType dtype, size_t shard_bytes, const char *tokenizer_src, OwError *err);

/* The general form: writes `tensors` (data or fetch, see StWriteTensor) with
 * config.json from cfg (torch_dtype from dtype) into dir, atomically. */
int model_write_hf(const ModelConfig *cfg, const StWriteTensor *tensors, int n, const char *dir, DType dtype,
                   size_t shard_bytes, const char *tokenizer_src, OwError *err);

/* A file built in memory, written into the model directory (e.g. tokenizer
 * files rebuilt from a GGUF). */
typedef struct HfFile {
    const char *name; /* plain file name */
    const char *data;
    size_t len;
} HfFile;

/* model_write_hf, plus `files` written into the directory before it is
 * renamed into place (after the copied tokenizer files, so they win). */
int model_write_hf_files(const ModelConfig *cfg, const StWriteTensor *tensors, int n, const char *dir, DType dtype,
                         size_t shard_bytes, const char *tokenizer_src, const HfFile *files, int nfiles, OwError *err);

#endif
