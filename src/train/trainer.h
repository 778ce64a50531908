/* trainer.h: the training loop of `owlore train`.
 *
 * One step: (every `interval` steps) draw the trainable blocks and move
 * optimizer state of blocks leaving/entering the sample; run grad_accum
 * micro-batches of forward and backward (the loss of a step is the mean over
 * all its non-ignored targets); the optimizer absorbs each block's gradient
 * as soon as the last micro-batch's backward finishes it; clip and update.
 * Writes RUN_DIR/config.json (resolved settings; model, data and ratios
 * paths made absolute), RUN_DIR/metrics.jsonl (one JSON object per step and
 * per evaluation, each appended whole or not at all: a failed write stops the
 * run with the file and errno named, without a checkpoint of that step),
 * checkpoints (checkpoint.h: every
 * save_every steps, at the end, and when SIGINT/SIGTERM arrives, see
 * interrupt.h), summary.json, the final model as a Hugging Face directory
 * RUN_DIR/model, and report.html (report.h; also on an interrupted run).
 *
 * Resume (cfg->resume set, settings from RUN_DIR/config.json): the base
 * model is loaded again and the newest checkpoint's tensors, optimizer
 * state, sampler, batcher position and counters are restored;
 * metrics.jsonl is cut back to its length at that checkpoint
 * (run_log.h), so the finished file has the same lines as an
 * uninterrupted run. A run with no
 * checkpoint yet starts again from step 0. A fresh run refuses a RUN_DIR
 * that already holds checkpoints.
 *
 * A signal during setup or the session's first step (core/cancel.h) stops
 * the work: train_run returns TRAIN_INTERRUPTED with before_first_step set,
 * saves nothing, and removes the RUN_DIR a fresh run made.
 *
 * Data parallel (dist/comm.h: a process started by mpirun is one rank of
 * several): every rank reads the same global micro-batches (ranks x
 * batch_size sequences) and computes on its share (the rank-th batch_size);
 * the loss is the mean over the global batch; the optimizer gets the ranks'
 * sum of each gradient when it is complete (Optimizer.reduce: R of GaLore
 * tensors with --dp-reduce projected, G otherwise); the sampler, projectors
 * and updates are then the same on every rank, which check_every checks (a
 * hash of the trained weights). Rank 0 alone writes RUN_DIR (config,
 * metrics, checkpoints, summary, model, report); the others read its
 * checkpoint to resume. A resumed run may have another number of ranks: the
 * global batch is then ranks x the saved batch_size (the data position
 * carries over), and the sums' order, so the last bits, change with it.
 * Ranks stop together on a signal (the flag is exchanged every step).
 * On a GPU, a rank uses the device --device names plus its rank on the
 * machine, and the sums run over the backend's group (NCCL), beside the
 * backward of the blocks below; on the CPU, over MPI in host memory.
 * Test hooks: OWLORE_TEST_PERTURB_RANK=R:S makes rank R flip a bit of a
 * trained weight after step S (CPU); OWLORE_TEST_GROUP_OF_ONE=1 makes a
 * one-process GPU run join a group of one and sum every gradient through it
 * as ranks do (--dp-reduce full's path), so the transport runs on one GPU. */
#ifndef OWLORE_TRAIN_TRAINER_H
#define OWLORE_TRAIN_TRAINER_H

#include "data/tokfile.h"
#include "train/train_config.h"
#include "train/train_data.h"

/* train_run's return value when a signal stopped the run after a checkpoint. */
#define TRAIN_INTERRUPTED 1

typedef struct TrainSummary {
    int64_t steps; /* steps done */
    int64_t total_steps;
    int interrupted;       /* the signal that stopped the run (TRAIN_INTERRUPTED), else 0 */
    int before_first_step; /* the signal stopped setup or the session's first step (nothing saved) */
    char checkpoint[600];  /* the last checkpoint written ("" if none) */
    double first_loss, last_loss;
    double first_val, last_val; /* NaN without validation data */
    double seconds;
    double tokens_per_s;
    size_t peak_mem;
    char result[4096]; /* summary.json as one line (what `owlore train` prints after RESULT) */
} TrainSummary;

/* 0 when the run finished, TRAIN_INTERRUPTED after a signal (checkpoint
 * saved, summary->interrupted set), -1 on error. */
int train_run(const TrainConfig *cfg, TrainSummary *summary, OwError *err);

#endif
