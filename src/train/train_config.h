/* train_config.h: every setting of a training run, with one table of keys
 * shared by recipe files (configs/recipes/<method>.json or --recipe FILE),
 * command-line flags (--update-gap is the key update_gap) and the resolved
 * RUN_DIR/config.json. Resolution order: built-in defaults, the method's
 * recipe, the user's --recipe file, then flags. A config error names the key,
 * the value and the allowed values. */
#ifndef OWLORE_TRAIN_TRAIN_CONFIG_H
#define OWLORE_TRAIN_TRAIN_CONFIG_H

#include "core/args.h"
#include "data/batcher.h"
#include "data/dataset.h"
#include "optim/optimizer.h"
#include "offload/block_store.h"
#include "optim/schedule.h"
#include "owl/sampler.h"

#include <cjson/cJSON.h>

#define TC_STR 512

typedef enum { ACCUM_FULL = 0, ACCUM_PROJECTED = 1 } AccumMode;
typedef enum { ACCUM_ORDER_AUTO = 0, ACCUM_ORDER_MICRO = 1, ACCUM_ORDER_LAYER = 2 } AccumOrder;
typedef enum { OFFLOAD_AUTO = 0, OFFLOAD_ON = 1, OFFLOAD_OFF = 2 } OffloadMode;
typedef enum { PRECISION_AUTO = 0, PRECISION_BF16 = 1, PRECISION_FP32 = 2 } Precision;

typedef struct TrainConfig {
    /* inputs and outputs */
    char model[TC_STR], data[TC_STR], out[TC_STR], recipe[TC_STR], ratios[TC_STR], forced_blocks[TC_STR];
    char device[16];
    /* data: how --data is read and tokenized (dataset.h), packed (batcher.h) and cached */
    DataOptions data_opt;
    BatchPacking packing;
    char data_cache[TC_STR];
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
    int projection_precision; /* OptimConfig.projection_precision: 0 auto, 1 fp32, 2 tf32 */
    InactivePolicy inactive_state;
    /* schedule */
    double lr;
    LrScheduleKind schedule;
    int64_t warmup;
    /* batches */
    int64_t batch_size, block_size, grad_accum, steps;
    double epochs;
    AccumMode accum_mode;
    AccumMode dp_reduce; /* several ranks (mpirun): what a GaLore tensor's sum over the ranks is (R or G) */
    int64_t check_every; /* several ranks: steps between comparisons of the ranks' weights (0: off) */
    AccumOrder accum_order;
    int shuffle, recompute;
    int64_t keep_acts; /* with recompute: top blocks that keep their activations instead; -1: auto (memplan.h) */
    OffloadMode offload_activations;
    OffloadMode offload_optimizer;
    Precision precision;
    /* evaluation and logging */
    int64_t eval_every, eval_batches, log_every;
    int save_model; /* write RUN_DIR/model at the end */
    /* checkpoints (checkpoint.h) */
    int64_t save_every;  /* steps between checkpoints; 0: only at the end and on SIGINT/SIGTERM; -1: never */
    int64_t keep;        /* checkpoints kept (the newest) */
    char resume[TC_STR]; /* RUN_DIR to continue (`--resume`); the run's settings come from its config.json */
    int resume_fallback; /* on a damaged newest checkpoint, resume from the previous good one */
    int overwrite_out;   /* a fresh run may write into a non-empty --out that is not a run (run_dir.h) */
    double init_std;     /* std of the random init when --model is a preset (no weights) */
    double val_split;
    /* OWL calibration when ratios are computed at the start of training */
    int64_t nsamples, seqlen;
    double M;
    /* runtime */
    int64_t seed, threads;
    size_t gpu_mem;
    /* frozen blocks' homes (offload/block_store.h) */
    OffloadPlaceMode offload;
    size_t host_mem;
    char nvme_dir[TC_STR];
    int64_t stream_slots;
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
/* Keys the trainer adds to RUN_DIR/config.json that are facts about the run,
 * not settings (total_steps, backend, data_tokens, base_digest, data_digest):
 * readers skip them. */
int train_config_is_run_fact(const char *key);
/* Parses `owlore train` flags into c (defaults, method recipe, --recipe, flags).
 * Returns 1 when --help was asked (nothing printed: the command prints its own
 * help with train_config_help), 0 on success, -1 on error. */
int train_config_from_args(TrainConfig *c, int argc, char **argv, OwError *err);
/* A run's settings: defaults, then every key of RUN_DIR/config.json (the
 * keys written next to them, total_steps and backend, are skipped; resume,
 * resume_fallback and overwrite_out are per invocation and stay off); out
 * becomes run_dir. */
int train_config_from_run(TrainConfig *c, const char *run_dir, OwError *err);
/* Keys that `--resume` accepts with a new value (they do not change what is
 * trained): log_every, eval_every, eval_batches, save_every, keep,
 * save_model, threads, device, gpu_mem, resume_fallback, overwrite_out, offload_optimizer. Any other key given
 * with --resume must equal the run's value, or it is refused. */
int train_config_resume_may_change(const char *key);
/* Checks values and relations that do not need the model: the required paths, then train_config_check_values. */
int train_config_validate(const TrainConfig *c, OwError *err);
/* The values alone (ranges, names, sizes whose products must not overflow), as `plan` needs them. */
int train_config_check_values(const TrainConfig *c, OwError *err);
/* Tokens one optimizer step may hold (batch_size x block_size x grad_accum): every size derived from them fits an
 * int64 with room to spare. */
#define TRAIN_MAX_STEP_TOKENS ((int64_t)1 << 31)
/* The resolved settings as a JSON object (every key). */
cJSON *train_config_to_json(const TrainConfig *c);
/* The help of a command that takes the train keys: "usage: <usage>", the
 * description, then every key with its flag spelling. */
void train_config_help(FILE *out, const char *usage, const char *description);
/* The keys that shape tokenized data (format ... tokenizer_mode), NULL-ended:
 * `owlore tokenize` takes them as flags too. */
extern const char *const train_config_data_keys[];
/* Help of a key for another command's flags: 0, or -1 when there is no such key. */
int train_config_key_info(const char *key, const char **metavar, const char **help, int *is_bool);
/* The optimizer settings derived from the config. */
OptimConfig train_config_optim(const TrainConfig *c);
/* Whether the method trains a sample of `gamma` blocks at a time (owlore, owlore-fullrank, lisa with
 * a sampling other than all); galore and full train every block at every step. */
int train_config_samples_blocks(const TrainConfig *c);

/* Whether micro-batches run layer-major (model_forward_backward_layers): asked (layer), or by default (auto)
 * when blocks stream and there are several micro-batches; never with one micro-batch, without
 * recomputation, or with a trainable tied embedding (whose accumulation order it cannot keep). */
int train_config_accum_layered(const TrainConfig *c, int tied, int streaming);
/* -1 with a message when accum_order = layer cannot apply (the reasons above). */
int train_config_check_accum_order(const TrainConfig *c, int tied, OwError *err);

/* Whether the block inputs go to host memory (Model.offload_acts): with
 * recomputation, when asked (on) or by default on a GPU (auto). */
int train_config_offload_acts(const TrainConfig *c, int gpu);
/* Whether the embedding's and lm_head's AdamW moments live in host memory
 * (OptimConfig.offload_head): when asked (on) or by default on a GPU (auto). */
int train_config_offload_optimizer(const TrainConfig *c, int gpu);
/* Whether an untied lm_head's gradient goes to host memory after the head's backward
 * (Model.head_grad_host): with its moments in host memory, recomputation (its room in
 * the activation pool is the block overlay's) and one micro-batch per step. */
int train_config_head_grad_host(const TrainConfig *c, int gpu, int tied);

#endif
