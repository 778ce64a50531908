/* export.h: `owlore export`: a training run's model as a Hugging Face
 * directory (config.json with torch_dtype, the base model's tokenizer files,
 * safetensors sharded with model.safetensors.index.json when larger than the
 * shard size), written under a temporary name and renamed into place.
 *
 * Nothing is loaded onto a device: each tensor, in the order of the
 * transformers state_dict, comes from the checkpoint when it changed during
 * training, else from the memory-mapped base model, converted to the output
 * dtype and written before the next one is read, so host memory holds one
 * tensor at a time (a 7B export needs a few hundred MB, not the model). A
 * run that started from a preset (random weights) has no base model and is
 * refused. */
#ifndef OWLORE_TRAIN_EXPORT_H
#define OWLORE_TRAIN_EXPORT_H

#include "core/dtype.h"
#include "core/error.h"

#include <stddef.h>

typedef struct ExportOptions {
    DType dtype;            /* OW_F32, OW_BF16 or OW_F16 */
    size_t shard_bytes;     /* 0: one file */
    const char *checkpoint; /* step-N or a checkpoint directory; NULL: the newest */
} ExportOptions;

/* used (may be NULL) gets the checkpoint's name. */
int export_run(const char *run_dir, const char *out_dir, const ExportOptions *opt, char *used, size_t used_cap,
               OwError *err);

#endif
