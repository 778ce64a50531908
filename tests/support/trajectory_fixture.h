/* trajectory_fixture.h: the 20-step recipes of tests/fixtures/trajectory
 * (made by tests/reference/make_trajectory_fixtures.py) as training settings,
 * shared by the CPU trajectory test and the GPU one. */
#ifndef OWLORE_TEST_TRAJECTORY_FIXTURE_H
#define OWLORE_TEST_TRAJECTORY_FIXTURE_H

#include "train/train_config.h"

/* Fills c with recipe `name` (fixture model; the fixture token stream written
 * as a token file under dir; out = dir/run-<device>) for `device`. Returns
 * the run directory (heap). */
char *ts_trajectory_config(const char *name, const char *dir, const char *device, TrainConfig *c);

#endif
