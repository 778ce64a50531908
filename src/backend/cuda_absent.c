/* cuda_absent.c: the CUDA entry points of a build without the CUDA backend
 * (no nvcc at build time). They report that clearly instead of failing to link. */
#include "backend/backend.h"

int backend_cuda_available(void) { return 0; }

Backend *backend_create_cuda(int device, size_t mem_cap, OwError *err) {
    ow_fail(err, "this owlore was built without the CUDA backend (hint: install the CUDA toolkit and rebuild, "
                 "or use --device cpu)");
    return NULL;
}
