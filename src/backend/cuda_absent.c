/* cuda_absent.c: the CUDA entry points of backend/backend_cuda.h in a build
 * without the CUDA backend (no nvcc at build time). They report that clearly
 * instead of failing to link. */
#include "backend/backend_cuda.h"

int backend_cuda_available(void) { return 0; }

Backend *backend_create_cuda(int device, size_t mem_cap, OwError *err) {
    (void)device;
    (void)mem_cap;
    ow_fail(err, "this owlore was built without the CUDA backend (hint: install the CUDA toolkit and rebuild, "
                 "or use --device cpu)");
    return NULL;
}

Backend *backend_create_cuda_card(int device, size_t card_bytes, OwError *err) {
    return backend_create_cuda(device, card_bytes, err);
}
