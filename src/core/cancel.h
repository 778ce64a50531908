/* cancel.h: a request to stop long work early (SIGINT / SIGTERM during setup).
 *
 * One `volatile sig_atomic_t` holds the signal that asked to stop (0: none);
 * a signal handler sets it (ow_cancel_request is async-signal-safe). Long
 * loops below src/train (model loading, OWL calibration, tokenization, the
 * randomized range finder) poll ow_cancelled() between units of work that
 * take well under a second and return an error through ow_fail_cancelled,
 * leaving their outputs unwritten. The request only stops them while it is
 * armed (ow_cancel_arm): the trainer arms it for setup and the first step of
 * a session, where stopping loses nothing, and disarms it once a step is
 * done, so a later signal lets the step finish and save a checkpoint. */
#ifndef OWLORE_CORE_CANCEL_H
#define OWLORE_CORE_CANCEL_H

#include "core/error.h"

/* Records the signal sig (async-signal-safe). */
void ow_cancel_request(int sig);
/* The signal recorded since the last clear, 0 when none. */
int ow_cancel_signal(void);
/* Forgets a recorded signal and disarms. */
void ow_cancel_clear(void);
/* Whether a recorded signal stops long work (see above). */
void ow_cancel_arm(int on);
/* A signal is recorded and the request is armed. */
int ow_cancelled(void);
/* Fails with "<what>: interrupted by a signal"; returns -1. */
int ow_fail_cancelled(OwError *err, const char *what);

#endif
