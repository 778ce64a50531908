/* runtime.h: process-wide settings the math libraries read when they load.
 *
 * - OMP_WAIT_POLICY=passive: OpenMP threads that spin after a parallel region
 *   starve OpenBLAS's own threads on small machines (measured: 2x slower
 *   training on 2 cores).
 * - OPENBLAS_CORETYPE from the CPU's features: OpenBLAS picks its kernels
 *   from the CPU model, and on virtual machines that report a generic model
 *   it falls back to SSE3 kernels (measured: 3x slower training on an
 *   AVX-512 machine).
 * Both are read when the libraries load, before main, so when the user has
 * set neither, ow_runtime_setup sets them and re-executes the program once.
 * A user's own settings are always kept. */
#ifndef OWLORE_CORE_RUNTIME_H
#define OWLORE_CORE_RUNTIME_H

#include "core/error.h"

#include <stdint.h>

void ow_runtime_setup(char **argv);

/* --threads: 0 (all cores) up to OW_THREADS_PER_CORE online cores' worth; more
 * gains nothing and, in the hundreds of thousands, crashes the OpenMP runtime. */
#define OW_THREADS_PER_CORE 4
int ow_check_threads(int64_t threads, OwError *err);

#endif
