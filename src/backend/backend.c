/* backend.c: the one place device strings are read. backend_parse_device
 * checks a string ("auto", "cpu", "cuda", "cuda:N") and backend_create makes
 * the backend it names; every command goes through them, and code above the
 * backend asks Backend.caps and the ops, never the device's name. */
#include "backend/backend.h"

#include "backend/backend_cuda.h"
#include "core/log.h"
#include "core/runtime.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int backend_parse_device(const char *device, BackendDevice *out, OwError *err) {
    out->kind = BACKEND_DEVICE_AUTO;
    out->index = 0;
    if (device && strcmp(device, "auto") == 0) return 0;
    if (device && strcmp(device, "cpu") == 0) {
        out->kind = BACKEND_DEVICE_CPU;
        return 0;
    }
    if (device && strncmp(device, "cuda", 4) == 0) {
        out->kind = BACKEND_DEVICE_CUDA;
        if (device[4] == '\0') return 0;
        if (device[4] == ':' && device[5] >= '0' && device[5] <= '9') {
            char *end = NULL;
            errno = 0;
            long index = strtol(device + 5, &end, 10);
            if (*end == '\0' && errno == 0 && index <= 1024) {
                out->index = (int)index;
                return 0;
            }
        }
    }
    return ow_fail(err, "device \"%s\" is not known (allowed: auto, cpu, cuda, cuda:N with N the device number)",
                   device ? device : "(null)");
}

Backend *backend_create(const char *device, const BackendOptions *opts, OwError *err) {
    BackendDevice d;
    if (backend_parse_device(device, &d, err) != 0) return NULL;
    int64_t threads = opts ? opts->threads : 0;
    if (ow_check_threads(threads, err) != 0) return NULL;
    size_t cap = opts ? opts->mem_cap : 0;
    int offset = opts ? opts->device_offset : 0;
    switch (d.kind) {
    case BACKEND_DEVICE_CPU: return backend_create_cpu((int)threads, cap, err);
    case BACKEND_DEVICE_CUDA: return backend_create_cuda_card(d.index + offset, cap, err);
    case BACKEND_DEVICE_AUTO: break;
    }
    if (backend_cuda_available()) {
        OwError e2;
        Backend *be = backend_create_cuda_card(offset, cap, &e2);
        if (be) return be;
        OW_INFO("no usable CUDA device (%s); training on the CPU", e2.msg);
    }
    return backend_create_cpu((int)threads, cap, err);
}
