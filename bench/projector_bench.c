/* projector_bench.c: time of a GaLore projector refresh for one decoder block
 * (its 7 linear weights) of a preset's shape, on the CUDA backend, as the
 * trainer runs it (galore_projector, randomized range finder or exact SVD).
 * The first block is timed on its own (a cold start: first use of each kernel
 * in the process; --profile-cold times it op by op; --warm-up runs the
 * trainer's warm-up, galore_warm_up, before it).
 *
 * Each matrix G [m, n] is a gradient-like product G = A^T B of two
 * [--tokens, m] and [--tokens, n] normal matrices (a sum of outer products,
 * as a weight gradient is, with its decaying spectrum). After a warm-up block,
 * --reps blocks are timed (device synchronised before and after each matrix,
 * so the figure is the latency a refresh adds to a step) and the median block
 * time is printed with the per-shape medians; then one more block runs under
 * the backend profiler, whose table (time per op) goes to stderr.
 *
 * --solvers also times, at the size of the range finder's small eigenproblem
 * (rank + oversample), the candidates for it: cuSOLVER Dsyevd and Dsyevj on the
 * device, LAPACK dsyevd on the host CPU. One JSON line per figure. */
#include "backend/backend.h"
#include "backend/backend_cuda.h"
#include "backend/profile.h"
#include "core/args.h"
#include "core/error.h"
#include "core/log.h"
#include "core/tensor.h"
#include "model/preset.h"
#include "optim/optimizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef OWLORE_HAVE_CUDA
#include <cuda_runtime.h>
#include <cusolverDn.h>

/* LAPACK (OpenBLAS), LP64 */
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
                    double *work, const int *lwork, int *iwork, const int *liwork, int *info);

typedef struct {
    const char *name;
    int64_t m, n;
} Mat;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* G = A^T B with A [tokens, m], B [tokens, n] normal (seeded). */
static int make_gradient(Backend *be, Tensor *G, int64_t tokens, uint64_t seed, OwError *err) {
    Tensor A = tensor_2d(OW_F32, tokens, G->shape[0]), B = tensor_2d(OW_F32, tokens, G->shape[1]);
    if (be_alloc(be, &A, MEM_WORKSPACE, "bench factor", err) != 0) return -1;
    if (be_alloc(be, &B, MEM_WORKSPACE, "bench factor", err) != 0) {
        be_release(be, &A, MEM_WORKSPACE);
        return -1;
    }
    be->ops->fill_normal(be, &A, seed, 1.0f);
    be->ops->fill_normal(be, &B, seed + 1, 1.0f);
    be->ops->matmul(be, G, &A, 1, &B, 0, 1.0f, 0.0f);
    be->ops->sync(be);
    be_release(be, &A, MEM_WORKSPACE);
    be_release(be, &B, MEM_WORKSPACE);
    return 0;
}

/* Refreshes the 7 projectors of a block once; per-matrix seconds into secs[7]. */
static int refresh_block(Backend *be, Tensor *G, Tensor *P, const Mat *mats, int rank, ProjectorKind kind,
                         int oversample, int iters, uint64_t seed, double *secs, OwError *err) {
    for (int i = 0; i < 7; i++) {
        int right = mats[i].m >= mats[i].n;
        be->ops->sync(be);
        double t0 = ow_now();
        if (galore_projector(be, &P[i], &G[i], rank, right, kind, oversample, iters, seed + (uint64_t)i, err) != 0)
            return -1;
        be->ops->sync(be);
        secs[i] = ow_now() - t0;
    }
    return 0;
}

#define CHECK_SOLVER(call)                                          \
    do {                                                            \
        if ((call) != 0) {                                          \
            fprintf(stderr, "projector_bench: %s failed\n", #call); \
            goto out;                                               \
        }                                                           \
    } while (0)

/* Median milliseconds of the candidate eigensolvers on an n x n SPD matrix (a Gram matrix). */
static int bench_solvers(int n, int reps) {
    int rc = -1;
    size_t nn = (size_t)n * (size_t)n;
    double *h = malloc(nn * 8), *a = malloc(nn * 8), *w = malloc((size_t)n * 8), *times = malloc((size_t)reps * 8);
    double *dA = NULL, *dW = NULL, *dwork = NULL, *dG = NULL;
    int *dinfo = NULL, lwork = 0;
    cusolverDnHandle_t s = NULL;
    syevjInfo_t jp = NULL;
    if (!h || !a || !w || !times) goto out;
    /* a Gram matrix of a random [2n, n] factor, with a spread of eigenvalues like the range finder's */
    for (size_t i = 0; i < nn; i++) h[i] = 0.0;
    for (int r = 0; r < 2 * n; r++) {
        double *row = a; /* reuse a as one row of the factor */
        for (int j = 0; j < n; j++) row[j] = ((double)rand() / RAND_MAX - 0.5) * (1.0 + 100.0 / (1 + j));
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) h[(size_t)i * n + j] += row[i] * row[j];
    }
    /* host LAPACK */
    {
        int lw = -1, liw = -1, info = 0, iw_q = 0;
        double w_q = 0;
        dsyevd_("V", "U", &n, a, &n, w, &w_q, &lw, &iw_q, &liw, &info);
        lw = (int)w_q;
        liw = iw_q;
        double *work = malloc((size_t)lw * 8);
        int *iwork = malloc((size_t)liw * sizeof(int));
        for (int r = 0; r < reps; r++) {
            memcpy(a, h, nn * 8);
            double t0 = ow_now();
            dsyevd_("V", "U", &n, a, &n, w, work, &lw, iwork, &liw, &info);
            times[r] = ow_now() - t0;
        }
        free(work);
        free(iwork);
        printf(
            "{\"bench\": \"eigensolver\", \"solver\": \"lapack_dsyevd_host\", \"n\": %d, \"ms\": %.3f, \"info\": %d}\n",
            n, 1e3 * median(times, reps), info);
    }
    CHECK_SOLVER(cusolverDnCreate(&s));
    CHECK_SOLVER(cudaMalloc((void **)&dA, nn * 8));
    CHECK_SOLVER(cudaMalloc((void **)&dG, nn * 8));
    CHECK_SOLVER(cudaMalloc((void **)&dW, (size_t)n * 8));
    CHECK_SOLVER(cudaMalloc((void **)&dinfo, sizeof(int)));
    CHECK_SOLVER(cudaMemcpy(dG, h, nn * 8, cudaMemcpyHostToDevice));
    CHECK_SOLVER(
        cusolverDnDsyevd_bufferSize(s, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_UPPER, n, dA, n, dW, &lwork));
    CHECK_SOLVER(cudaMalloc((void **)&dwork, (size_t)(lwork > 0 ? lwork : 1) * 8));
    for (int r = 0; r <= reps; r++) {
        CHECK_SOLVER(cudaMemcpy(dA, dG, nn * 8, cudaMemcpyDeviceToDevice));
        CHECK_SOLVER(cudaDeviceSynchronize());
        double t0 = ow_now();
        CHECK_SOLVER(
            cusolverDnDsyevd(s, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_UPPER, n, dA, n, dW, dwork, lwork, dinfo));
        CHECK_SOLVER(cudaDeviceSynchronize());
        if (r) times[r - 1] = ow_now() - t0; /* the first call is a warm-up */
    }
    printf("{\"bench\": \"eigensolver\", \"solver\": \"cusolver_dsyevd\", \"n\": %d, \"ms\": %.3f}\n", n,
           1e3 * median(times, reps));
    CHECK_SOLVER(cusolverDnCreateSyevjInfo(&jp));
    CHECK_SOLVER(cusolverDnXsyevjSetTolerance(jp, 1e-14));
    CHECK_SOLVER(
        cusolverDnDsyevj_bufferSize(s, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_UPPER, n, dA, n, dW, &lwork, jp));
    CHECK_SOLVER(cudaFree(dwork));
    CHECK_SOLVER(cudaMalloc((void **)&dwork, (size_t)(lwork > 0 ? lwork : 1) * 8));
    for (int r = 0; r <= reps; r++) {
        CHECK_SOLVER(cudaMemcpy(dA, dG, nn * 8, cudaMemcpyDeviceToDevice));
        CHECK_SOLVER(cudaDeviceSynchronize());
        double t0 = ow_now();
        CHECK_SOLVER(cusolverDnDsyevj(s, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_UPPER, n, dA, n, dW, dwork, lwork,
                                      dinfo, jp));
        CHECK_SOLVER(cudaDeviceSynchronize());
        if (r) times[r - 1] = ow_now() - t0;
    }
    printf("{\"bench\": \"eigensolver\", \"solver\": \"cusolver_dsyevj\", \"n\": %d, \"ms\": %.3f}\n", n,
           1e3 * median(times, reps));
    rc = 0;
out:
    if (jp) cusolverDnDestroySyevjInfo(jp);
    if (s) cusolverDnDestroy(s);
    cudaFree(dA);
    cudaFree(dG);
    cudaFree(dW);
    cudaFree(dwork);
    cudaFree(dinfo);
    free(h);
    free(a);
    free(w);
    free(times);
    return rc;
}

static int run(Backend *be, const ModelConfig *mc, int rank, ProjectorKind kind, int oversample, int iters,
               int64_t tokens, int reps, int profile_cold, int warm_up, OwError *err) {
    int64_t C = mc->hidden_size, F = mc->intermediate_size, D = mc->head_dim;
    const Mat mats[7] = {{"q", mc->num_heads * D, C},
                         {"k", mc->num_kv_heads * D, C},
                         {"v", mc->num_kv_heads * D, C},
                         {"o", C, mc->num_heads * D},
                         {"gate", F, C},
                         {"up", F, C},
                         {"down", C, F}};
    Tensor G[7], P[7];
    int made = 0, rc = -1;
    for (; made < 7; made++) {
        int right = mats[made].m >= mats[made].n;
        G[made] = tensor_2d(OW_F32, mats[made].m, mats[made].n);
        P[made] = right ? tensor_2d(OW_F32, rank, mats[made].n) : tensor_2d(OW_F32, mats[made].m, rank);
        if (be_alloc(be, &G[made], MEM_GRADS, "bench gradient", err) != 0) goto done;
        if (be_alloc(be, &P[made], MEM_OPTIM, "bench projector", err) != 0) {
            be_release(be, &G[made], MEM_GRADS);
            goto done;
        }
        if (make_gradient(be, &G[made], tokens, 1000 + 2 * (uint64_t)made, err) != 0) {
            made++;
            goto done;
        }
    }
    double secs[7], *block = malloc((size_t)reps * sizeof(double)), *per = malloc((size_t)reps * 7 * sizeof(double));
    /* the first (cold) block: first use of each kernel and solver in the process, as a run's first step,
     * unless --warm-up ran the trainer's warm-up first */
    if (warm_up) {
        OptimConfig oc = {
            .kind = OPT_GALORE_ADAMW, .rank = rank, .projector = kind, .rf_oversample = oversample, .rf_iters = iters};
        double t0 = ow_now();
        if (galore_warm_up(be, &oc, err) != 0) goto freeb;
        printf("{\"bench\": \"projector_warm_up\", \"s\": %.4f}\n", ow_now() - t0);
    }
    if (profile_cold) backend_profile_enable(be);
    if (refresh_block(be, G, P, mats, rank, kind, oversample, iters, 1, secs, err) != 0) goto freeb;
    double cold = 0;
    for (int i = 0; i < 7; i++) cold += secs[i];
    printf("{\"bench\": \"projector_cold\", \"profiled\": %s, \"block_s\": %.4f", profile_cold ? "true" : "false",
           cold);
    for (int i = 0; i < 7; i++) printf(", \"%s_ms\": %.3f", mats[i].name, 1e3 * secs[i]);
    printf("}\n");
    fflush(stdout);
    if (profile_cold) {
        fprintf(stderr, "profile of the first (cold) block refresh (each op synchronised):\n");
        backend_profile_report(be, stderr);
        backend_profile_disable(be);
    }
    for (int r = 0; r < reps; r++) {
        if (refresh_block(be, G, P, mats, rank, kind, oversample, iters, 100 + 10 * (uint64_t)r, secs, err) != 0)
            goto freeb;
        block[r] = 0;
        for (int i = 0; i < 7; i++) {
            block[r] += secs[i];
            per[i * reps + r] = secs[i];
        }
    }
    printf("{\"bench\": \"projector\", \"kind\": \"%s\", \"rank\": %d, \"oversample\": %d, \"iters\": %d, "
           "\"tokens\": %lld, \"reps\": %d, \"block_s\": %.4f",
           kind == PROJ_EXACT ? "exact" : "randomized", rank, oversample, iters, (long long)tokens, reps,
           median(block, reps));
    for (int i = 0; i < 7; i++) printf(", \"%s_ms\": %.3f", mats[i].name, 1e3 * median(per + i * reps, reps));
    printf("}\n");
    fflush(stdout);
    backend_profile_enable(be);
    rc = refresh_block(be, G, P, mats, rank, kind, oversample, iters, 7, secs, err);
    fprintf(stderr, "profile of one block refresh (each op synchronised):\n");
    backend_profile_report(be, stderr);
    backend_profile_disable(be);
freeb:
    free(block);
    free(per);
done:
    for (int i = 0; i < made; i++) {
        be_release(be, &G[i], MEM_GRADS);
        be_release(be, &P[i], MEM_OPTIM);
    }
    return rc;
}
#endif

#define NSPECS 11

int main(int argc, char **argv) {
    int64_t rank = 256, oversample = 8, iters = 2, tokens = 2048, reps = 5, device = 0;
    int solvers = 0, profile_cold = 0, warm_up = 0;
    const char *shape = "llama2-7b", *projector = "randomized";
    const ArgSpec specs[NSPECS] = {
        {"shape", ARG_STR, &shape, "PRESET", "model preset whose block shapes are used", NULL},
        {"projector", ARG_STR, &projector, "KIND", "randomized or exact", NULL},
        {"rank", ARG_INT, &rank, "R", "GaLore rank", NULL},
        {"rf-oversample", ARG_INT, &oversample, "P", "range finder: extra columns", NULL},
        {"rf-iters", ARG_INT, &iters, "Q", "range finder: subspace iterations", NULL},
        {"tokens", ARG_INT, &tokens, "N", "rows of the factors of each gradient", NULL},
        {"reps", ARG_INT, &reps, "N", "timed blocks (the median is printed)", NULL},
        {"device", ARG_INT, &device, "N", "CUDA device", NULL},
        {"solvers", ARG_BOOL, &solvers, NULL, "also time the small eigensolvers at n = rank + oversample", NULL},
        {"profile-cold", ARG_BOOL, &profile_cold, NULL, "time the first (cold) block op by op (stderr)", NULL},
        {"warm-up", ARG_BOOL, &warm_up, NULL, "run the trainer's projector warm-up before the first block", NULL},
    };
    ArgsResult res;
    OwError err;
    if (args_parse(argc, argv, specs, NSPECS, &res, &err) != 0) {
        fprintf(stderr, "projector_bench: %s\n", err.msg);
        return 2;
    }
    if (res.help) {
        args_print_help(stdout, "projector_bench [--shape PRESET] [--projector randomized|exact] [--solvers]",
                        "GaLore projector refresh of one decoder block on the GPU: seconds per block (median), "
                        "milliseconds per matrix, and the time per op (stderr).",
                        specs, NSPECS);
        return 0;
    }
    ProjectorKind kind;
    if (strcmp(projector, "randomized") == 0)
        kind = PROJ_RANDOMIZED;
    else if (strcmp(projector, "exact") == 0)
        kind = PROJ_EXACT;
    else {
        fprintf(stderr, "projector_bench: --projector must be randomized or exact, got \"%s\"\n", projector);
        return 2;
    }
    if (rank < 1 || oversample < 0 || iters < 0 || tokens < 1 || reps < 1) {
        fprintf(stderr,
                "projector_bench: --rank, --tokens and --reps must be >= 1, --rf-oversample and --rf-iters >= 0\n");
        return 2;
    }
    ModelConfig mc;
    char *src = NULL;
    int is_dir = 0;
    if (model_preset_resolve(shape, &mc, &src, &is_dir, &err) != 0) {
        fprintf(stderr, "projector_bench: %s\n", err.msg);
        return 2;
    }
    free(src);
#ifdef OWLORE_HAVE_CUDA
    if (solvers && bench_solvers((int)(rank + oversample), (int)reps * 3) != 0) return 1;
    Backend *be = backend_create_cuda((int)device, 0, &err);
    if (!be) {
        fprintf(stderr, "projector_bench: %s\n", err.msg);
        return 1;
    }
    int rc = run(be, &mc, (int)rank, kind, (int)oversample, (int)iters, tokens, (int)reps, profile_cold, warm_up, &err);
    if (rc != 0) fprintf(stderr, "projector_bench: %s\n", err.msg);
    be->ops->destroy(be);
    return rc ? 1 : 0;
#else
    (void)solvers;
    (void)kind;
    fprintf(stderr, "projector_bench: this build has no CUDA backend (configure with -DOWLORE_CUDA=ON on a machine "
                    "with nvcc)\n");
    return 1;
#endif
}
