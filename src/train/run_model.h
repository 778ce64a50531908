/* run_model.h: the model of a training run directory: the base model named
 * by RUN_DIR/config.json (a Hugging Face directory, or a preset initialised
 * from the run's seed) with a checkpoint's changed tensors applied (the
 * newest, or one named step-N). Used by `owlore eval --model RUN_DIR`;
 * `owlore export` streams the same merge without loading the model. */
#ifndef OWLORE_TRAIN_RUN_MODEL_H
#define OWLORE_TRAIN_RUN_MODEL_H

#include "model/model.h"
#include "train/checkpoint.h"

/* Whether path is a training run directory (a config.json written by
 * `owlore train`, not a Hugging Face config). */
int run_dir_detect(const char *path);
/* Opens the named checkpoint (step-N, or a path to its directory) or, when
 * name is NULL, the newest; a run without checkpoints is an error. */
int run_open_checkpoint(const char *run_dir, const char *name, Checkpoint *ck, OwError *err);
/* Loads the run's model onto be (placement: NULL, every block on the device; else model_create_placed's).
 * base_dir gets the base model directory ("" for a preset) for tokenizer files. */
int run_load_model(Backend *be, const char *run_dir, const char *checkpoint, const BlockStoreConfig *placement,
                   Model **out, char *base_dir, size_t cap, OwError *err);
/* The configuration of the model at path: a Hugging Face directory, a preset, or a run directory's model. */
int model_config_of(const char *path, ModelConfig *mc, OwError *err);

/* Where a command that only runs forward passes (eval, outliers) keeps the blocks: all on the device when
 * they fit its cap beside the other weights and `forward_bytes` (its activations and buffers), else as many
 * as fit there and the rest streamed from page-locked host memory (offload_place; mode auto, or none, or
 * host: every block streams). */
typedef struct ForwardPlacement {
    BlockHome *homes; /* num_layers entries (heap) */
    BlockStoreConfig bc;
    int streaming;
} ForwardPlacement;
int forward_placement(Backend *be, const ModelConfig *mc, size_t forward_bytes, OffloadPlaceMode mode,
                      ForwardPlacement *fp, OwError *err);
/* --offload of a forward-only command: "auto" (the default), "none" or "host"; -1 naming the flag otherwise. */
int forward_offload_mode(const char *s, OffloadPlaceMode *mode, OwError *err);
/* &fp->bc when blocks stream, else NULL (every block a buffer of its own). */
const BlockStoreConfig *forward_placement_config(const ForwardPlacement *fp);
void forward_placement_free(ForwardPlacement *fp);

#endif
