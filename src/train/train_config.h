/* train_config.h: every setting of a training run, with one table of keys
 * shared by recipe files (configs/recipes/<method>.json or --recipe FILE),
 * command-line flags (--update-gap is the key update_gap) and the resolved
 * RUN_DIR/config.json. Resolution order: built-in defaults, the method's
 * recipe, the user's --recipe file, then flags. A config error names the key,
 * the value and the allowed values. */
#ifndef OWLORE_TRAIN_TRAIN_CONFIG_H
#define OWLORE_TRAIN_TRAIN_CONFIG_H

#include "core/args.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "owl/sampler.h"

#include <cjson/cJSON.h>

#define TC_STR 512

typedef enum { ACCUM_FULL = 0, ACCUM_PROJECTED = 1 } AccumMode;

typedef struct TrainConfig {
    /* inputs and outputs */
    char model[TC_STR], data[TC_STR], out[TC_STR], recipe[TC_STR], ratios[TC_STR], forced_blocks[TC_STR];
    char device[16];
    /* method */
    char method[32];
    SamplingMode sampling;
    int64_t gamma, interval;
    int freeze_embeddings;
    /* optimizer */
    OptimizerKind optimizer;
    int64_t rank, update_gap, rf_oversample, rf_iters;
    double scale, beta1, beta2, eps, weight_decay, clip;
    ProjectorKind projector;
    InactivePolicy inactive_state;
    /* schedule */
    double lr;
    LrScheduleKind schedule;
    int64_t warmup;
    /* batches */
    int64_t batch_size, block_size, grad_accum, steps;
    double epochs;
    AccumMode accum_mode;
    int shuffle, recompute;
    /* evaluation and logging */
    int64_t eval_every, eval_batches, log_every;
    double val_split;
    /* OWL calibration when ratios are computed at the start of training */
    int64_t nsamples, seqlen;
    double M;
    /* runtime */
    int64_t seed, threads;
    size_t gpu_mem;
} TrainConfig;

/* Built-in defaults: the owlore recipe of DESIGN.md. */
void train_config_defaults(TrainConfig *c);
/* Sets one key from a string (flag value) or a JSON value (recipe). */
int train_config_set_string(TrainConfig *c, const char *key, const char *value, const char *where, OwError *err);
int train_config_set_json(TrainConfig *c, const char *key, const cJSON *value, const char *where, OwError *err);
/* Applies every key of a recipe object. */
int train_config_apply_json(TrainConfig *c, const cJSON *obj, const char *where, OwError *err);
/* Loads a method's built-in recipe (configs/recipes/<method>.json). */
int train_config_apply_method(TrainConfig *c, const char *method, OwError *err);
/* Parses `owlore train` flags into c (defaults, method recipe, --recipe, flags).
 * Returns 1 when --help was asked (help printed), 0 on success, -1 on error. */
int train_config_from_args(TrainConfig *c, int argc, char **argv, OwError *err);
/* Checks values and relations that do not need the model. */
int train_config_validate(const TrainConfig *c, OwError *err);
/* The resolved settings as a JSON object (every key). */
cJSON *train_config_to_json(const TrainConfig *c);
void train_config_help(FILE *out);
/* The optimizer settings derived from the config. */
OptimConfig train_config_optim(const TrainConfig *c);

#endif
