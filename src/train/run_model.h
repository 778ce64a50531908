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
/* Loads the run's model onto be. base_dir gets the base model directory
 * ("" for a preset) for tokenizer files. */
int run_load_model(Backend *be, const char *run_dir, const char *checkpoint, Model **out, char *base_dir, size_t cap,
                   OwError *err);

#endif
