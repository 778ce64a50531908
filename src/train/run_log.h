/* run_log.h: what a training run reports as it goes. RUN_DIR/metrics.jsonl
 * holds one JSON object per step and per evaluation, flushed as written; the
 * evaluation and progress lines go to the log; RUN_DIR/summary.json holds the
 * end-of-run figures a benchmark reports; and the backend's memory figures
 * in all of them are read here, in one place. The trainer owns the state and
 * hands the figures over; this file owns no training state and decides
 * nothing about the run.
 *
 * Invariant: a metrics.jsonl line depends only on the figures given (the
 * same step gives the same bytes), so a resumed run cut back to a
 * checkpoint's length (run_log_open) ends with the same lines as an
 * uninterrupted one. */
#ifndef OWLORE_TRAIN_RUN_LOG_H
#define OWLORE_TRAIN_RUN_LOG_H

#include "core/fileio.h"
#include "model/model.h"
#include "optim/optimizer.h"
#include "owl/sampler.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

#include <stdio.h>

typedef struct RunLog {
    AppendFile metrics;   /* RUN_DIR/metrics.jsonl, open for appending (records whole or not at all) */
    const char *out;      /* RUN_DIR (borrowed) */
    int64_t start;        /* this session's first step */
    double session_start; /* ow_now() when it began (the ETA of the progress line) */
} RunLog;

/* One finished step, as metrics.jsonl and the progress line show it. */
typedef struct StepLog {
    int64_t step, total_steps; /* steps done (this one included) and of the run */
    double loss, lr, gnorm;
    double tokens;  /* trained on so far */
    double seconds; /* of training so far, earlier sessions included */
    double step_seconds, resample_seconds;
    int64_t tokens_per_step;
    const Sampler *sampler;      /* the blocks trained in the step */
    const Backend *be;           /* device memory now and at peak */
    size_t host_optimizer_bytes; /* optimizer state parked in host memory now */
    OptimStats optim;            /* the step's projector refreshes */
    int progress;                /* also print the progress line */
} StepLog;

/* Opens RUN_DIR/metrics.jsonl: new when keep_bytes < 0, else cut back to
 * keep_bytes (the length a checkpoint recorded; opening the checkpoint for
 * resume checked that it ends with the checkpoint's step record) and appended
 * to: whatever followed (the records the resumed steps write again, or a torn
 * one from a kill or a full disk) goes. */
int run_log_open(RunLog *log, const char *out, int64_t keep_bytes, OwError *err);
void run_log_close(RunLog *log);
/* The step's metrics line; the progress line when s->progress. A failed write
 * (full disk) leaves the file on its last complete record and fails. */
int run_log_step(RunLog *log, const StepLog *s, OwError *err);
/* An evaluation's metrics line and log line (fails as run_log_step). */
int run_log_eval(RunLog *log, int64_t step, double loss, OwError *err);
/* Flushes metrics.jsonl to disk and gives its length (a checkpoint records it). */
int run_log_sync(RunLog *log, int64_t *bytes, OwError *err);
/* The first and last training and validation losses a resumed run's metrics.jsonl holds so far. */
void run_log_losses_so_far(const char *out, TrainSummary *summary);

/* Samples the device memory in use after a step (the peak summary.json reports). */
void run_log_sample_memory(Backend *be);
/* What the ranks of a data-parallel run exchanged (run_log_summary; ranks 1: one process, no figures). */
typedef struct RunDpFigures {
    int ranks;
    const char *reduce;        /* what a GaLore tensor's sum is: "projected" (R) or "full" (G) */
    double bytes_per_step;     /* gradient bytes each rank summed a step (R or G, refreshes' G included) */
    double ddp_bytes_per_step; /* what full-gradient DDP would sum: every trained tensor's whole F32 gradient */
} RunDpFigures;

/* RUN_DIR/summary.json from the run's progress (step times, tokens, refreshes),
 * summary's losses and seconds, the backend's memory peaks and (several ranks)
 * dp's figures; also into summary->result. host_optimizer_peak: the optimizer's
 * host state at peak. */
int run_log_summary(const TrainConfig *c, const RunDpFigures *dp, Backend *be, const Model *m,
                    size_t host_optimizer_peak, const CkptProgress *pg, TrainSummary *summary, OwError *err);

#endif
