/* runtime.c: see runtime.h. */
#include "core/runtime.h"

#include <stdlib.h>
#include <unistd.h>

int ow_check_threads(int64_t threads, OwError *err) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t max = (int64_t)(cores > 0 ? cores : 1) * OW_THREADS_PER_CORE;
    if (threads >= 0 && threads <= max) return 0;
    return ow_fail(err, "--threads %lld: must be 0 (all cores) to %lld (%d per online core; this machine has %ld)",
                   (long long)threads, (long long)max, OW_THREADS_PER_CORE, cores);
}

static const char *blas_coretype(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}

void ow_runtime_setup(char **argv) {
    if (getenv("OWLORE_RUNTIME_SET")) return; /* already re-executed once */
    int changed = 0;
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        changed = 1;
    }
    const char *core = blas_coretype();
    if (core && !getenv("OPENBLAS_CORETYPE")) {
        setenv("OPENBLAS_CORETYPE", core, 1);
        changed = 1;
    }
    if (!changed) return;
    setenv("OWLORE_RUNTIME_SET", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the libraries' defaults */
}
