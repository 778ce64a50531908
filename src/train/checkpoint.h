/* checkpoint.h: saving and restoring a training run, for exact resume.
 *
 * A checkpoint is the directory RUN_DIR/checkpoints/step-NNNNNN holding
 *   tensors.owt    (tensor_pack.h, zstd) "weights/<param>" for every tensor
 *                  that changed since the base model (trainable in at least
 *                  one step: the blocks ever sampled, embeddings, lm_head,
 *                  the final norm), "optim/<param>/m", ".../v" and ".../P"
 *                  (GaLore projector) for every tensor with optimizer state,
 *                  and "trainer/step_seconds" (F64, the step times so far);
 *   state.json     the step, tokens, elapsed seconds, the length in bytes of
 *                  metrics.jsonl at this step, the batcher position (epoch,
 *                  index), the sampler (random stream key and counter,
 *                  period, active blocks, the OWL ratios it samples with),
 *                  and per parameter: changed, trainable, where its optimizer
 *                  state lives (device, host, none), its step and refresh
 *                  counts and whether it has a projector, and "config": the
 *                  run's config.json when it was saved;
 *   manifest.json  every other file with its size and xxh64; written last.
 * Every other random stream is counter-based and derived from the seed and
 * saved counters (data order: (seed, epoch); projector test matrices: (seed,
 * tensor, refresh count); stochastic rounding: (seed, tensor, step)), so
 * this is the whole state: a resumed run repeats the uninterrupted one bit
 * for bit on the same device (CPU: the same thread count).
 *
 * Saving writes step-NNNNNN.tmp-<pid>/, fsyncs every file and the directory,
 * renames it into place and fsyncs checkpoints/; only then are checkpoints
 * beyond `keep` removed (renamed to *.del-<pid> first, so a crash never leaves
 * a half-deleted checkpoint under a valid name). Leftover *.tmp-* and
 * *.del-* entries are removed by the next save.
 *
 * Opening verifies every file of the manifest (present, size, xxh64) before
 * anything is read, then what the files say: state.json's format and version,
 * and every tensor it implies (weights of changed parameters, m and v of
 * those with optimizer state, P of those with a projector, the step times)
 * present in tensors.owt; a damaged checkpoint is reported with its
 * directory, the file and what failed.
 *
 * Test hook: OWLORE_TEST_SLOW_SAVE_MS=N sleeps N ms after each tensor and
 * file written during a save, so tests can kill a process mid-save. It is
 * for tests only and does nothing when unset. */
#ifndef OWLORE_TRAIN_CHECKPOINT_H
#define OWLORE_TRAIN_CHECKPOINT_H

#include "data/batcher.h"
#include "optim/optimizer.h"
#include "owl/sampler.h"
#include "train/tensor_pack.h"

#include <cjson/cJSON.h>

#define CKPT_SUBDIR "checkpoints"

/* The trainer's counters. */
typedef struct CkptProgress {
    int64_t step; /* optimizer steps done */
    int64_t total_steps;
    double tokens;          /* tokens trained on */
    double elapsed;         /* seconds of training */
    double refresh_seconds; /* projector refresh time, for summary.json */
    int64_t refreshes;
    int64_t metrics_bytes; /* length of metrics.jsonl after this step */
    double *step_seconds;  /* [total_steps]; the first `step` are saved and restored */
} CkptProgress;

/* The objects a checkpoint saves and restores (owned by the trainer). */
typedef struct CkptParts {
    Model *model;
    Optimizer *opt;
    Sampler *sampler;
    Batcher *batcher;
    uint8_t *changed;     /* [nparams]: updated in some step, so it differs from the base */
    const double *ratios; /* [num_layers]: the OWL ratios the sampler uses, or NULL */
} CkptParts;

typedef struct Checkpoint {
    char *dir;  /* .../checkpoints/step-NNNNNN */
    char *name; /* step-NNNNNN */
    int64_t step;
    cJSON *state; /* state.json */
    TensorPack pack;
} Checkpoint;

/* Saves the current state as RUN_DIR/checkpoints/step-<step>, then removes
 * all but the newest `keep`. The new directory's path goes to saved. */
int ckpt_save(const char *run_dir, const CkptParts *parts, const CkptProgress *prog, int64_t keep, char *saved,
              size_t saved_cap, OwError *err);

/* Names of the complete checkpoints of a run (step-N, no temporaries),
 * oldest first; *n = 0 when there are none. Free with ckpt_names_free. */
int ckpt_list(const char *run_dir, char ***names, int *n, OwError *err);
void ckpt_names_free(char **names, int n);

/* Opens and verifies one checkpoint directory. */
int ckpt_open(const char *dir, Checkpoint *ck, OwError *err);
/* Opens the newest checkpoint of a run: 0, or 1 when the run has none, or -1.
 * With resume, the checkpoint must also agree with the run directory:
 * metrics.jsonl's first metrics_bytes bytes end with the record of its step,
 * and RUN_DIR/config.json holds the settings it was saved with (state.json
 * "config"; the keys a resume may change excepted). A damaged or
 * disagreeing newest checkpoint is an error naming it, unless fallback: then
 * the next older good one is used, with a warning naming the failed ones. */
int ckpt_open_latest(const char *run_dir, int fallback, int resume, Checkpoint *ck, OwError *err);
void ckpt_close(Checkpoint *ck);

/* Copies the checkpoint's changed tensors into the model (converting the
 * dtype when the checkpoint comes from another backend) and marks them in
 * changed (may be NULL). */
int ckpt_apply_weights(const Checkpoint *ck, Model *m, uint8_t *changed, OwError *err);
/* The OWL ratios saved with the sampler: 1 when present (num_layers values
 * into out), 0 when the run samples without ratios, -1 on a bad file. */
int ckpt_ratios(const Checkpoint *ck, int num_layers, double *out, OwError *err);
/* Restores the sampler (after sampler_init with the same settings), the
 * batcher position and the counters (prog->step_seconds must have room for
 * total_steps values). */
int ckpt_restore_progress(const Checkpoint *ck, Sampler *s, Batcher *b, CkptProgress *prog, OwError *err);
/* Restores the optimizer state of every parameter. The trainable set must
 * already be the checkpoint's (the sampler's active blocks activated). */
int ckpt_restore_optimizer(const Checkpoint *ck, Optimizer *o, OwError *err);

#endif
