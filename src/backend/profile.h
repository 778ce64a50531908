/* profile.h: where a backend's time goes. backend_profile_enable hooks every
 * compute op of a Backend: each call is followed by a sync and its wall time
 * is added to the op's row (GEMMs to a row per shape and dtype, with the
 * achieved TFLOP/s). Syncing after every op serialises the device, so the
 * total is somewhat above an unprofiled run; the split is what it is for.
 * Enabled by OWLORE_PROFILE=1 in `owlore train`. */
#ifndef OWLORE_BACKEND_PROFILE_H
#define OWLORE_BACKEND_PROFILE_H

#include "backend/backend.h"

#include <stdio.h>

void backend_profile_enable(Backend *be);
/* Prints the table (most expensive first) and resets the counters. */
void backend_profile_report(Backend *be, FILE *out);
/* Restores the original ops and frees the profile (before be->destroy). */
void backend_profile_disable(Backend *be);

#endif
