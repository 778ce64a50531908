/* train_fixture.h: training settings for tests: a method's recipe with the
 * run's paths, and the 20-step recipes of tests/fixtures/trajectory (made by
 * tests/reference/make_trajectory_fixtures.py), shared by the CPU trajectory
 * test and the GPU one. */
#ifndef OWLORE_TEST_TRAIN_FIXTURE_H
#define OWLORE_TEST_TRAIN_FIXTURE_H

#include "train/train_config.h"

/* The defaults with `method`'s recipe, model, data, out and device set, and
 * one CPU thread; fails the test on an unknown method. */
void ts_train_config(TrainConfig *c, const char *method, const char *model, const char *data, const char *out,
                     const char *device);

/* A short CPU run of `method` on the trajectory fixture model (untied, 4 blocks) and synthetic tokens: 6 steps
 * of 4 x 16, no validation, checkpoints or saved model, GaLore rank 8 (randomized projector oversampling 4). */
void ts_small_synthetic_config(TrainConfig *c, const char *method, const char *out);

/* Fills c with recipe `name` (fixture model; the fixture token stream written
 * as a token file under dir; out = dir/run-<device>) for `device`. Returns
 * the run directory (heap). */
char *ts_trajectory_config(const char *name, const char *dir, const char *device, TrainConfig *c);

/* Trains c with train_run (fails the test on an error). */
void ts_train(const TrainConfig *c);
/* Two runs' first `steps` losses and gradient norms (metrics.jsonl) and final weights (RUN_DIR/model) are
 * bitwise equal; every differing step is logged. */
void ts_expect_same_run(const char *a, const char *b, int steps);

#endif
