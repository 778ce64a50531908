/* cuda_backend.h: the C-callable extras of the CUDA backend beyond the Backend
 * table (backend.h) and backend/backend_cuda.h, for GPU tests and benchmarks
 * only: arena figures, the
 * attention kernel choice (tests compare both kernels against the CPU), and the
 * backend's stream for benchmarks that time ops with CUDA events.
 *
 * Every function takes a Backend made by backend_create_cuda; they exist only
 * in CUDA builds (nothing under src/ includes this header). */
#ifndef OWLORE_CUDA_CUDA_BACKEND_H
#define OWLORE_CUDA_CUDA_BACKEND_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "backend/backend_cuda.h"

/* Bytes the device arena holds from CUDA now (its segments; >= allocated bytes). */
size_t backend_cuda_reserved_bytes(Backend *be);
/* The most the arena has held from CUDA since creation. */
size_t backend_cuda_peak_reserved_bytes(Backend *be);
/* The arena's cap on reserved bytes (the mem_cap given at creation, or the
 * device's free memory minus a margin when that was 0). */
size_t backend_cuda_arena_cap(Backend *be);

/* Attention kernels: 1 (default) uses the tensor-core (mma.sync bf16) kernels where
 * they apply (bf16 tensors, head_dim 16, 32, 64 or 128), 0 forces the simple fp32
 * tiled kernels everywhere. Returns the previous setting. */
int backend_cuda_set_attention_tensor_cores(Backend *be, int enable);
/* Whether attention on bf16 tensors with this head dimension would use the
 * tensor-core kernels now. */
int backend_cuda_attention_uses_tensor_cores(Backend *be, int64_t head_dim);

/* The one stream every op of the backend runs on (a cudaStream_t), e.g. for
 * cudaEventRecord around ops in a benchmark. */
void *backend_cuda_stream(Backend *be);

#ifdef __cplusplus
}
#endif

#endif
