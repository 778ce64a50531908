/* cuda_absent.c: the CUDA entry points of a build without the CUDA backend
 * (no nvcc at build time). They report that clearly instead of failing to link.
 * The arena figures of cuda/cuda_backend.h are 0: no CUDA backend exists here. */
#include "backend/backend.h"
#include "cuda/cuda_backend.h"

int backend_cuda_available(void) { return 0; }

Backend *backend_create_cuda(int device, size_t mem_cap, OwError *err) {
    ow_fail(err, "this owlore was built without the CUDA backend (hint: install the CUDA toolkit and rebuild, "
                 "or use --device cpu)");
    return NULL;
}

size_t backend_cuda_reserved_bytes(Backend *be) { return 0; }

void backend_cuda_set_dtypes(Backend *be, DType act, DType param) {
    (void)be;
    (void)act;
    (void)param;
}

size_t backend_cuda_peak_reserved_bytes(Backend *be) { return 0; }

size_t backend_cuda_arena_cap(Backend *be) { return 0; }

size_t backend_cuda_context_bytes(Backend *be) { return 0; }

size_t backend_cuda_peak_used_bytes(Backend *be) { return 0; }

void backend_cuda_sample_used(Backend *be) { (void)be; }
