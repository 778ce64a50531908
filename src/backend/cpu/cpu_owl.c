/* cpu_owl.c: the outlier statistics of OWL on the CPU backend: per-feature
 * sums of squared activations (col_sumsq) and the weight scores
 * A_ij = |W_ij| * colscale[j] summed (score_sum) and counted above a
 * threshold (score_count).
 *
 * A score is formed as the product of two floats in double, which is exact,
 * so the count is the same on every backend that does the same. Sums run over
 * fixed row chunks in double, added in order: independent of the thread
 * count. */
#include "backend/cpu/cpu_internal.h"

#include <math.h>
#include <stdlib.h>

#define COL_BLOCK 64

void cpu_col_sumsq(Backend *be, Tensor *acc, const Tensor *x) {
    float *a = cpu_f32(acc);
    const float *xd = cpu_f32(x);
    int64_t N = tensor_rows(x), C = tensor_cols(x);
    OW_CHECKF(tensor_numel(acc) == C, "col_sumsq: acc of %lld for %lld columns", (long long)tensor_numel(acc),
              (long long)C);
    int64_t nblocks = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        int64_t c0 = blk * COL_BLOCK, c1 = c0 + COL_BLOCK < C ? c0 + COL_BLOCK : C;
        double s[COL_BLOCK] = {0};
        for (int64_t n = 0; n < N; n++) {
            const float *xr = xd + n * C;
            for (int64_t c = c0; c < c1; c++) s[c - c0] += (double)xr[c] * (double)xr[c];
        }
        for (int64_t c = c0; c < c1; c++) a[c] += (float)s[c - c0];
    }
}

/* Rows per chunk so that a chunk holds about CPU_REDUCE_CHUNK elements. */
static int64_t rows_per_chunk(int64_t cols) {
    int64_t r = cols > 0 ? CPU_REDUCE_CHUNK / cols : 1;
    return r > 0 ? r : 1;
}

double cpu_score_sum(Backend *be, const Tensor *W, const Tensor *colscale) {
    const float *w = cpu_f32(W), *cs = cpu_f32(colscale);
    int64_t M = tensor_rows(W), N = tensor_cols(W);
    OW_CHECK(tensor_numel(colscale) == N);
    if (M == 0 || N == 0) return 0.0;
    int64_t rpc = rows_per_chunk(N), nchunks = (M + rpc - 1) / rpc;
    double *part = ow_xmalloc((size_t)nchunks * sizeof(double));
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t r1 = (c + 1) * rpc < M ? (c + 1) * rpc : M;
        double s = 0.0;
        for (int64_t r = c * rpc; r < r1; r++) {
            const float *wr = w + r * N;
            for (int64_t j = 0; j < N; j++) s += fabs((double)wr[j]) * (double)cs[j];
        }
        part[c] = s;
    }
    double total = 0.0;
    for (int64_t c = 0; c < nchunks; c++) total += part[c];
    free(part);
    return total;
}

int64_t cpu_score_count(Backend *be, const Tensor *W, const Tensor *colscale, double threshold) {
    const float *w = cpu_f32(W), *cs = cpu_f32(colscale);
    int64_t M = tensor_rows(W), N = tensor_cols(W);
    OW_CHECK(tensor_numel(colscale) == N);
    int64_t count = 0;
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static) reduction(+ : count)
    for (int64_t r = 0; r < M; r++) {
        const float *wr = w + r * N;
        for (int64_t j = 0; j < N; j++)
            if (fabs((double)wr[j]) * (double)cs[j] > threshold) count++;
    }
    return count;
}
