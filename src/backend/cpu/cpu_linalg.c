/* cpu_linalg.c: dense algebra of the CPU backend: matmul (OpenBLAS sgemm; sgemv for one row),
 * axpy, scale, and the whole-tensor reductions sum / sum_squares.
 *
 * Reductions are split into fixed chunks of CPU_REDUCE_CHUNK elements summed
 * in double, then the chunk sums are added in order: the result does not
 * depend on the thread count. */
#include "backend/cpu/cpu_internal.h"

#include <cblas.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

void cpu_matmul(Backend *be, Tensor *C, const Tensor *A, int transA, const Tensor *B, int transB, float alpha,
                float beta) {
    float *c = cpu_f32(C);
    const float *a = cpu_f32(A), *b = cpu_f32(B);
    int64_t ar = tensor_rows(A), ac = tensor_cols(A), br = tensor_rows(B), bc = tensor_cols(B);
    int64_t M = transA ? ac : ar, K = transA ? ar : ac;
    int64_t Kb = transB ? bc : br, N = transB ? br : bc;
    OW_CHECKF(K == Kb && tensor_rows(C) == M && tensor_cols(C) == N,
              "matmul shapes: op(A) [%lld, %lld], op(B) [%lld, %lld], C [%lld, %lld]", (long long)M, (long long)K,
              (long long)Kb, (long long)N, (long long)tensor_rows(C), (long long)tensor_cols(C));
    OW_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && ac <= INT_MAX && bc <= INT_MAX);
    if (M == 0 || N == 0) return;
    if (beta == 0.0f) memset(c, 0, (size_t)(M * N) * sizeof(float)); /* never read C's old contents */
    if (K == 0) {
        if (beta != 0.0f && beta != 1.0f) cpu_scale(be, C, beta);
        return;
    }
    if (M == 1) { /* one row (a decoding step): sgemv reads B once, where sgemm would first pack all of it */
        cblas_sgemv(CblasRowMajor, transB ? CblasNoTrans : CblasTrans, (int)br, (int)bc, alpha, b, (int)bc, a, 1, beta,
                    c, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, (int)M, (int)N,
                (int)K, alpha, a, (int)(ac > 0 ? ac : 1), b, (int)(bc > 0 ? bc : 1), beta, c, (int)N);
}

void cpu_axpy(Backend *be, Tensor *y, float alpha, const Tensor *x) {
    float *yd = cpu_f32(y);
    const float *xd = cpu_f32(x);
    int64_t n = tensor_numel(y);
    OW_CHECKF(tensor_numel(x) == n, "axpy of %lld elements into %lld", (long long)tensor_numel(x), (long long)n);
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
    for (int64_t i = 0; i < n; i++) yd[i] += alpha * xd[i];
}

void cpu_scale(Backend *be, Tensor *x, float alpha) {
    float *xd = cpu_f32(x);
    int64_t n = tensor_numel(x);
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
    for (int64_t i = 0; i < n; i++) xd[i] *= alpha;
}

static double reduce(const Backend *be, const float *x, int64_t n, int squares) {
    if (n <= 0) return 0.0;
    int64_t nchunks = (n + CPU_REDUCE_CHUNK - 1) / CPU_REDUCE_CHUNK;
    double *part = ow_xmalloc((size_t)nchunks * sizeof(double));
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t i0 = c * CPU_REDUCE_CHUNK, i1 = i0 + CPU_REDUCE_CHUNK < n ? i0 + CPU_REDUCE_CHUNK : n;
        double s = 0.0;
        if (squares)
            for (int64_t i = i0; i < i1; i++) s += (double)x[i] * (double)x[i];
        else
            for (int64_t i = i0; i < i1; i++) s += (double)x[i];
        part[c] = s;
    }
    double total = 0.0;
    for (int64_t c = 0; c < nchunks; c++) total += part[c];
    free(part);
    return total;
}

double cpu_sum(Backend *be, const Tensor *x) { return reduce(be, cpu_f32(x), tensor_numel(x), 0); }

double cpu_sum_squares(Backend *be, const Tensor *x) { return reduce(be, cpu_f32(x), tensor_numel(x), 1); }

void cpu_matmul_prec(Backend *be, Tensor *C, const Tensor *A, int transA, const Tensor *B, int transB, float alpha,
                     float beta, MatmulPrecision prec) {
    (void)prec; /* BLAS sgemm computes in full fp32 */
    cpu_matmul(be, C, A, transA, B, transB, alpha, beta);
}

void cpu_matmul_add(Backend *be, Tensor *D, const Tensor *A, int transA, const Tensor *B, int transB, float alpha,
                    const Tensor *Cin) {
    OW_CHECK(tensor_numel(Cin) == tensor_numel(D));
    if (Cin->data != D->data) memcpy(D->data, Cin->data, tensor_nbytes(D));
    cpu_matmul(be, D, A, transA, B, transB, alpha, 1.0f);
}
