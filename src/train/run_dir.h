/* run_dir.h: who may write a training run directory, and where a new run may
 * be written.
 *
 * Output guard: a fresh `owlore train --out DIR` writes config.json,
 * metrics.jsonl, checkpoints/ and model/ into DIR. DIR must be new, empty, or
 * an owlore run directory (its config.json written by `owlore train`; a run
 * with checkpoints is refused later with a hint to --resume); a non-empty
 * directory of anything else is refused unless --overwrite-out. The base
 * model's directory, or a directory inside it, is refused always (compared
 * by realpath), as is an --out that exists and is not a directory.
 *
 * Lock: RUN_DIR/.lock, taken with flock(2). `train` (fresh and --resume)
 * holds it exclusively from before its first write in RUN_DIR until it
 * exits, with its pid as the file's text; `export`, `eval --model RUN_DIR`
 * and `report` hold it shared while they read, so they never see a run
 * while a trainer writes it. Neither waits: a lock held by another process
 * is an error naming the pid written in the file. The kernel drops the lock
 * when the process dies (kill -9 included), so a stale .lock never blocks.
 * Readers of a run without .lock (written before locks, or a read-only
 * copy) read without one. */
#ifndef OWLORE_TRAIN_RUN_DIR_H
#define OWLORE_TRAIN_RUN_DIR_H

#include "core/error.h"

#define RUN_LOCK_FILE ".lock"

typedef struct RunLock {
    int fd; /* -1: not held */
} RunLock;

/* Whether a and b name the same existing file or directory. */
int run_dir_same_path(const char *a, const char *b);
/* Entries of a directory, "." and ".." and the run lock file not counted. */
int run_dir_entries(const char *dir);
/* Whether path is inside dir (or is dir), by realpath; 0 when either is missing. */
int run_dir_within(const char *path, const char *dir);

/* The output guard above for a fresh run writing to out from the model model. */
int run_dir_check_out(const char *out, const char *model, int overwrite, OwError *err);

/* Exclusive lock for a writer: creates run_dir/.lock and writes the pid. */
int run_lock_exclusive(const char *run_dir, RunLock *lk, OwError *err);
/* Shared lock for a reader (no lock file: nothing to wait for, lk stays unheld). */
int run_lock_shared(const char *run_dir, RunLock *lk, OwError *err);
/* Releases the lock (the file stays: removing it would let two processes lock two files). */
void run_lock_release(RunLock *lk);
/* For a run that failed before writing anything into the directory it
 * created: removes the lock file (still held), releases it and removes the
 * directory when it is empty. */
void run_dir_remove_unused(const char *run_dir, RunLock *lk);

#endif
