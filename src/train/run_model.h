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

/* The model of a forward-only command (eval, outliers; mc: model_config_of path). Its blocks stay on the device
 * when they fit its cap beside the other weights and forward_bytes (the command's activations and buffers),
 * else as many as fit there and the rest stream from page-locked host memory (offload_place; offload "auto",
 * "none", or "host": every block streams): a Hugging Face directory, or when runs is set a run directory
 * (its checkpoint: NULL the newest; a checkpoint needs a run). base_dir as run_load_model's. */
int forward_model_load(Backend *be, const char *path, int runs, const char *checkpoint, const char *offload,
                       const ModelConfig *mc, size_t forward_bytes, Model **out, char *base_dir, size_t cap,
                       OwError *err);

#endif
