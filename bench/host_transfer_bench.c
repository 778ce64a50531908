/* host_transfer_bench.c: how fast a block's optimizer state parks in host
 * memory (device -> host into a fresh malloc'd buffer, as the optimizer did,
 * against one whose pages all cores touched first, as ow_try_malloc_touched
 * does now), the copy back, page-locked memory for comparison, and the
 * backend's own download / upload (staged through page-locked chunks). Prints one
 * line per measurement; --mib sets the size (default 1600: the AdamW state of
 * one LLaMA-2-7B block in fp32). Needs a build with the CUDA backend and a
 * device; otherwise it says so and exits 1. */
#include "backend/backend.h"
#include "backend/backend_cuda.h"
#include "core/args.h"
#include "core/error.h"
#include "core/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef OWLORE_HAVE_CUDA
#include <cuda_runtime.h>
#include <omp.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void line(const char *what, double s, size_t n) {
    printf("{\"bench\": \"host_transfer\", \"what\": \"%s\", \"seconds\": %.4f, \"gb_per_s\": %.2f}\n", what, s,
           (double)n / s / 1e9);
}

int main(int argc, char **argv) {
    int64_t mib = 1600;
    ArgSpec specs[] = {{"mib", ARG_INT, &mib, "N", "bytes per transfer, in MiB", NULL}};
    ArgsResult res;
    OwError err;
    if (args_parse(argc, argv, specs, 1, &res, &err) != 0) {
        fprintf(stderr, "host_transfer_bench: %s\n", err.msg);
        return 2;
    }
    if (res.help) {
        args_print_help(stdout, "host_transfer_bench [--mib N]", "host <-> device copies of parked optimizer state",
                        specs, 1);
        return 0;
    }
    size_t n = (size_t)mib << 20;
    void *d = NULL;
    if (cudaMalloc(&d, n) != cudaSuccess) {
        fprintf(stderr, "host_transfer_bench: no CUDA device or not %lld MiB free\n", (long long)mib);
        return 1;
    }
    cudaMemset(d, 1, n);
    cudaDeviceSynchronize();
    for (int rep = 0; rep < 2; rep++) {
        double t0 = now();
        char *h = ow_xmalloc(n);
        cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost);
        line("device->host, fresh malloc", now() - t0, n);
        t0 = now();
        cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost);
        line("device->host, reused pageable", now() - t0, n);
        t0 = now();
        cudaMemcpy(d, h, n, cudaMemcpyHostToDevice);
        line("host->device, pageable", now() - t0, n);
        free(h);
        t0 = now();
        h = ow_try_malloc_touched(n, "bench", &err);
        if (!h) {
            fprintf(stderr, "host_transfer_bench: %s\n", err.msg);
            return 1;
        }
        double tm = now();
        cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost);
        line("pages touched by all cores (ow_try_malloc_touched)", tm - t0, n);
        line("device->host after touching", now() - tm, n);
        line("touched + device->host", now() - t0, n);
        free(h);
        t0 = now();
        cudaHostAlloc((void **)&h, n, cudaHostAllocDefault);
        tm = now();
        cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost);
        line("cudaHostAlloc", tm - t0, n);
        line("device->host, page-locked", now() - tm, n);
        cudaFreeHost(h);
    }
    cudaFree(d);
    /* the backend's own copies (what the optimizer calls): staged through page-locked chunks */
    Backend *be = backend_create_cuda(0, 0, &err);
    if (!be) {
        fprintf(stderr, "host_transfer_bench: %s\n", err.msg);
        return 1;
    }
    Tensor t = tensor_1d(OW_F32, (int64_t)(n / 4));
    char *h = ow_try_malloc_touched(n, "bench", &err);
    if (!h || be->ops->alloc(be, &t, MEM_OTHER, "bench", &err) != 0) {
        fprintf(stderr, "host_transfer_bench: %s\n", err.msg);
        return 1;
    }
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        be->ops->download(be, h, OW_F32, &t);
        line("backend download into touched pageable", now() - t0, n);
        t0 = now();
        be->ops->upload(be, &t, h, OW_F32);
        be->ops->sync(be);
        line("backend upload from pageable", now() - t0, n);
    }
    be->ops->release(be, &t, MEM_OTHER);
    be->ops->destroy(be);
    free(h);
    printf("{\"bench\": \"host_transfer\", \"threads\": %d}\n", omp_get_max_threads());
    return 0;
}
#else
int main(void) {
    fprintf(stderr, "host_transfer_bench: this build has no CUDA backend\n");
    return 1;
}
#endif
