/* trainer.h: the training loop of `owlore train`.
 *
 * One step: (every `interval` steps) draw the trainable blocks and move
 * optimizer state of blocks leaving/entering the sample; run grad_accum
 * micro-batches of forward and backward (the loss of a step is the mean over
 * all its non-ignored targets); the optimizer absorbs each block's gradient
 * as soon as the last micro-batch's backward finishes it; clip and update.
 * Writes RUN_DIR/config.json (resolved settings), RUN_DIR/metrics.jsonl (one
 * JSON object per step and per evaluation, flushed as written) and the final
 * model as a Hugging Face directory RUN_DIR/model. */
#ifndef OWLORE_TRAIN_TRAINER_H
#define OWLORE_TRAIN_TRAINER_H

#include "data/tokfile.h"
#include "train/train_config.h"

typedef struct TrainSummary {
    int64_t steps;
    double first_loss, last_loss;
    double first_val, last_val; /* NaN without validation data */
    double seconds;
    double tokens_per_s;
    size_t peak_mem;
} TrainSummary;

int train_run(const TrainConfig *cfg, TrainSummary *summary, OwError *err);
/* Creates the backend that `device` (auto, cpu, cuda) names. */

Backend *train_create_backend(const char *device, size_t gpu_mem, int64_t threads, OwError *err);

/* Loads training data for a model: an owlore token file, or a text file read
 * as bytes (byte-level models). Every id is checked against vocab_size. */
int train_load_data(const char *path, const char *model_dir, int64_t vocab_size, TokData *out, OwError *err);

#endif
