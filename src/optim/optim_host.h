/* optim_host.h: the optimizer state that lives in host memory, private to
 * src/optim (the one part that knows these buffers). Two kinds, both
 * allocated in the run's host accounting (the model's HostMem,
 * offload/host_mem.h):
 *   - parked state (INACTIVE_KEEP, HOST_PARKED): the m, v (and P) of an
 *     inactive tensor in pageable buffers (ParamState.host_m, host_v,
 *     host_P), valid while `parked`; the buffers outlive a return to the
 *     device and are reused by the next park;
 *   - host-resident moments (OptimConfig.offload_head, HOST_MOMENTS): the m, v
 *     of an active tensor in page-locked host memory (ParamState.hm, hv),
 *     updated by the backend's adam_update_host; s->m and s->v then describe
 *     shapes only.
 * Optimizer.host totals the same buffers (the optimizer's share, for the
 * per-step metric and its peak): the one allocation and the one free below
 * count both, so it equals the HostMem's HOST_MOMENTS + HOST_PARKED. */
#ifndef OWLORE_OPTIM_OPTIM_HOST_H
#define OWLORE_OPTIM_OPTIM_HOST_H

#include "optim/optimizer.h"

/* Host-resident moments of the tensor p of s (zeroed); `what` names them in errors. */
int optim_host_moments_alloc(Optimizer *o, ParamState *s, const Param *p, const char *what, OwError *err);
/* Frees them (a no-op without). */
void optim_host_moments_free(Optimizer *o, ParamState *s);
/* m, v of an active state from / to host F32 arrays, wherever they live (the
 * backend, or host-resident: then the backend is waited for first, as an
 * asynchronous update may be using them). */
void optim_moments_from_host(Optimizer *o, ParamState *s, const float *m, const float *v);
void optim_moments_to_host(Optimizer *o, ParamState *s, float *m, float *v);

/* The park buffers of s for moments of nb bytes each and a projector of pb (0: none), made when missing. */
int optim_host_park_buffers(Optimizer *o, ParamState *s, size_t nb, size_t pb, OwError *err);
/* Copies the resident state of s (m, v, and P when it has one) to its park buffers; s becomes parked. */
int optim_host_park(Optimizer *o, ParamState *s, OwError *err);
/* Copies the parked state back into the freshly allocated resident state; the buffers stay. */
void optim_host_unpark(Optimizer *o, ParamState *s);
/* Frees the park buffers (the parked state is lost). */
void optim_host_park_free(Optimizer *o, ParamState *s);

#endif
