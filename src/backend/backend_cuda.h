/* backend_cuda.h: the CUDA backend as the rest of owlore sees it, with or
 * without CUDA compiled in: the entry points that cuda/ implements (and
 * backend/cuda_absent.c answers with clear errors in a build without nvcc), and
 * the sizes of its fixed device workspaces, which the memory planner counts
 * (train/memplan.c) and cuda/ allocates, so plan and backend cannot drift.
 * Commands make backends with backend_create (backend.h), not with these. */
#ifndef OWLORE_BACKEND_BACKEND_CUDA_H
#define OWLORE_BACKEND_BACKEND_CUDA_H

#include "backend/backend.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* cuBLAS(Lt) workspace and reduction scratch, allocated when the backend is made. */
#define BACKEND_CUDA_LT_WORKSPACE_BYTES ((size_t)32 << 20)
#define BACKEND_CUDA_SCRATCH_BYTES ((size_t)8 << 20)
/* Device memory those take with the norm accumulator (one double in an aligned 256-byte block). */
#define BACKEND_CUDA_FIXED_WORKSPACE (BACKEND_CUDA_LT_WORKSPACE_BYTES + BACKEND_CUDA_SCRATCH_BYTES + 256)
/* Device workspace of host_state_reserve (3 staging slots of 8 MiB of m and of v). */
#define BACKEND_CUDA_HOST_STATE_STAGING ((size_t)48 << 20)

/* What the CUDA context (with cuBLAS and cuSOLVER) takes on the device outside the arena, as measured on
 * an H200 with CUDA 13 (315,424,768 bytes, rounded up): `owlore plan`, which has no device, takes it from a
 * --gpu-mem cap as the backend takes the context it measures (the cap is the card, context included). */
#define BACKEND_CUDA_CONTEXT_ESTIMATE ((size_t)320 << 20)

/* 1 when the CUDA backend is compiled in and a CUDA device is usable. */
int backend_cuda_available(void);
/* NULL with a message when CUDA is not compiled in or the device is absent or unusable. mem_cap: the
 * arena's cap (Backend.mem.cap; 0: the device's free memory less a margin). */
Backend *backend_create_cuda(int device, size_t mem_cap, OwError *err);
/* The same for a card of card_bytes to emulate (--gpu-mem; 0 as above): the device memory in use when it
 * is made (the context, libraries) counts against it, so the arena's cap is card_bytes less that. */
Backend *backend_create_cuda_card(int device, size_t card_bytes, OwError *err);

#ifdef __cplusplus
}
#endif

#endif
