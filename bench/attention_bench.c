/* attention_bench.c: speed of the CUDA attention forward and backward
 * (backend ops attention_forward / attention_backward, bf16, causal) at
 * LLaMA shapes. Per shape: inputs from fill_normal, a warm-up, then --iters
 * calls of each op between two CUDA events on the backend's stream; prints one
 * JSON line per op with the mean milliseconds per call and TFLOP/s.
 *
 * FLOP counts (causal, half the T x T scores): forward 4 B Hq T^2 D / 2
 * (Q K^T and P V); backward `tflops` counts 2 x forward (the dQ, dK, dV and dP
 * products), `tflops_fa` 2.5 x forward (FlashAttention's convention, which also
 * counts the recomputed Q K^T). The kernels' real work in the backward is 3.5 x
 * forward (dQ pass: S, dP, dQ; dK/dV pass: S, dP, dV, dK).
 *
 * Needs a build with the CUDA backend and a device; otherwise it says so and
 * exits 1. */
#include "backend/backend.h"
#include "core/args.h"
#include "core/error.h"
#include "core/tensor.h"

#include <stdio.h>
#include <string.h>

#ifdef OWLORE_HAVE_CUDA
#include "cuda/cuda_backend.h"

#include <cuda_runtime.h>

typedef struct BenchShape {
    const char *name;
    int B, T, Hq, Hkv, D;
} BenchShape;

static const BenchShape SHAPES[] = {
    {"llama2_7b_t512", 16, 512, 32, 32, 128},
    {"llama2_7b_t2048", 4, 2048, 32, 32, 128},
    {"llama2_7b_t4096", 2, 4096, 32, 32, 128},
    {"llama3_8b_gqa_t512", 16, 512, 32, 8, 128},
    {"llama3_8b_gqa_t2048", 4, 2048, 32, 8, 128},
    {"llama3_8b_gqa_t4096", 2, 4096, 32, 8, 128},
    {"d64_t512", 16, 512, 32, 32, 64},
    {"d64_gqa_t2048", 4, 2048, 32, 8, 64},
};
#define NSHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))

#define CHECK_CUDA(call)                                                                 \
    do {                                                                                 \
        cudaError_t e_ = (call);                                                         \
        if (e_ != cudaSuccess) {                                                         \
            fprintf(stderr, "attention_bench: %s: %s\n", #call, cudaGetErrorString(e_)); \
            return -1;                                                                   \
        }                                                                                \
    } while (0)

enum { T_Q, T_K, T_V, T_OUT, T_LSE, T_DOUT, T_DQ, T_DK, T_DV, T_COUNT };

/* Mean milliseconds of one call of forward (which == 0) or backward, over iters calls. */
static int time_op(Backend *be, Tensor *t, int which, int iters, cudaStream_t st, double *ms) {
    cudaEvent_t e0, e1;
    CHECK_CUDA(cudaEventCreate(&e0));
    CHECK_CUDA(cudaEventCreate(&e1));
    CHECK_CUDA(cudaEventRecord(e0, st));
    for (int i = 0; i < iters; i++) {
        if (which == 0)
            be->ops->attention_forward(be, &t[T_OUT], &t[T_LSE], &t[T_Q], &t[T_K], &t[T_V]);
        else
            be->ops->attention_backward(be, &t[T_DQ], &t[T_DK], &t[T_DV], &t[T_DOUT], &t[T_Q], &t[T_K], &t[T_V],
                                        &t[T_OUT], &t[T_LSE]);
    }
    CHECK_CUDA(cudaEventRecord(e1, st));
    CHECK_CUDA(cudaEventSynchronize(e1));
    float f = 0.0f;
    CHECK_CUDA(cudaEventElapsedTime(&f, e0, e1));
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    *ms = (double)f / iters;
    return 0;
}

static int bench_shape(Backend *be, const BenchShape *s, int warmup, int iters) {
    int64_t sq[4] = {s->B, s->T, s->Hq, s->D}, skv[4] = {s->B, s->T, s->Hkv, s->D}, sl[3] = {s->B, s->Hq, s->T};
    Tensor t[T_COUNT];
    const int64_t *shapes[T_COUNT] = {sq, skv, skv, sq, sl, sq, sq, skv, skv};
    int rc = -1, n = 0;
    OwError err;
    for (; n < T_COUNT; n++) {
        t[n] = tensor_desc(n == T_LSE ? OW_F32 : OW_BF16, n == T_LSE ? 3 : 4, shapes[n]);
        if (be_alloc(be, &t[n], MEM_ACTIVATIONS, "attention bench tensor", &err) != 0) {
            fprintf(stderr, "attention_bench: %s: %s\n", s->name, err.msg);
            goto done;
        }
    }
    be->ops->fill_normal(be, &t[T_Q], 1, 1.0f);
    be->ops->fill_normal(be, &t[T_K], 2, 1.0f);
    be->ops->fill_normal(be, &t[T_V], 3, 1.0f);
    be->ops->fill_normal(be, &t[T_DOUT], 4, 1.0f);
    cudaStream_t st = (cudaStream_t)backend_cuda_stream(be);
    double ms[2];
    for (int which = 0; which < 2; which++) {
        double warm;
        if (time_op(be, t, which, warmup, st, &warm) != 0 || time_op(be, t, which, iters, st, &ms[which]) != 0)
            goto done;
    }
    double fwd_flops = 4.0 * s->B * s->Hq * (double)s->T * s->T * s->D / 2.0;
    printf("{\"bench\": \"attention\", \"op\": \"forward\", \"shape\": \"%s\", \"B\": %d, \"T\": %d, \"Hq\": %d, "
           "\"Hkv\": %d, \"D\": %d, \"iters\": %d, \"ms\": %.4f, \"tflops\": %.1f}\n",
           s->name, s->B, s->T, s->Hq, s->Hkv, s->D, iters, ms[0], fwd_flops / (ms[0] * 1e9));
    printf("{\"bench\": \"attention\", \"op\": \"backward\", \"shape\": \"%s\", \"B\": %d, \"T\": %d, \"Hq\": %d, "
           "\"Hkv\": %d, \"D\": %d, \"iters\": %d, \"ms\": %.4f, \"tflops\": %.1f, \"tflops_fa\": %.1f}\n",
           s->name, s->B, s->T, s->Hq, s->Hkv, s->D, iters, ms[1], 2.0 * fwd_flops / (ms[1] * 1e9),
           2.5 * fwd_flops / (ms[1] * 1e9));
    fflush(stdout);
    rc = 0;
done:
    for (int i = 0; i < n; i++) be_release(be, &t[i], MEM_ACTIVATIONS);
    return rc;
}
#endif

#define NSPECS 4

int main(int argc, char **argv) {
    int64_t iters = 20, warmup = 3, device = 0;
    const char *only = "";
    const ArgSpec specs[NSPECS] = {
        {"iters", ARG_INT, &iters, "N", "timed calls per op and shape", NULL},
        {"warmup", ARG_INT, &warmup, "N", "untimed calls before them", NULL},
        {"device", ARG_INT, &device, "N", "CUDA device", NULL},
        {"shape", ARG_STR, &only, "NAME", "run only the shapes whose name contains NAME", NULL},
    };
    ArgsResult res;
    OwError err;
    if (args_parse(argc, argv, specs, NSPECS, &res, &err) != 0) {
        fprintf(stderr, "attention_bench: %s\n", err.msg);
        return 2;
    }
    if (res.help) {
        args_print_help(stdout, "attention_bench [--iters N] [--warmup N] [--shape NAME]",
                        "CUDA causal attention forward / backward: ms per call and TFLOP/s, one JSON line per op.",
                        specs, NSPECS);
        return 0;
    }
    if (iters < 1 || warmup < 0) {
        fprintf(stderr, "attention_bench: --iters must be >= 1 and --warmup >= 0\n");
        return 2;
    }
#ifdef OWLORE_HAVE_CUDA
    Backend *be = backend_create_cuda((int)device, 0, &err);
    if (!be) {
        fprintf(stderr, "attention_bench: %s\n", err.msg);
        return 1;
    }
    int rc = 0, ran = 0;
    for (int i = 0; i < NSHAPES && rc == 0; i++) {
        if (only[0] && !strstr(SHAPES[i].name, only)) continue;
        ran++;
        if (bench_shape(be, &SHAPES[i], (int)warmup, (int)iters) != 0) rc = 1;
    }
    be->ops->destroy(be);
    if (!ran) {
        fprintf(stderr, "attention_bench: no shape name contains \"%s\"\n", only);
        return 2;
    }
    return rc;
#else
    fprintf(stderr, "attention_bench: this build has no CUDA backend (configure with -DOWLORE_CUDA=ON on a machine "
                    "with nvcc)\n");
    return 1;
#endif
}
