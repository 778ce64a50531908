/* projector.h: GaLore's projector P of a gradient G [m, n]: the top `rank`
 * singular vectors, right ([rank, n], when m >= n) or left ([m, rank]), with
 * canonical signs, so the projector of a scaled gradient is the same. Exact
 * (the backend's SVD) or randomized: a range finder of rank + oversample
 * columns with subspace iterations, then the exact SVD of G within that
 * subspace. The optimizer refreshes projectors with it (optimizer.h). */
#ifndef OWLORE_OPTIM_PROJECTOR_H
#define OWLORE_OPTIM_PROJECTOR_H

#include "backend/backend.h"

typedef enum { PROJ_EXACT = 0, PROJ_RANDOMIZED = 1 } ProjectorKind;

/* Names indexed by ProjectorKind, ending in NULL (train_config parses with it). */
extern const char *const projector_kind_names[];

/* The projector of a gradient (exposed for tests): exact SVD or randomized
 * range finder, canonical signs. P must be allocated with the right shape. */
int galore_projector(Backend *be, Tensor *P, const Tensor *G, int rank, int right, ProjectorKind kind, int oversample,
                     int iters, uint64_t seed, OwError *err);

/* Runs one projector computation of cfg's kind on a small random matrix and
 * waits for it. On a GPU the first use of each kernel and solver in a process
 * costs 0.1-0.6 s (module loading, solver set-up); the trainer pays it here, at
 * setup, instead of inside the first step's refreshes. */
struct OptimConfig;
int galore_warm_up(Backend *be, const struct OptimConfig *cfg, OwError *err);

#endif
