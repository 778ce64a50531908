/* cuda_solver.cu: the projector ops: top-r SVD (small matrices: fp64 Gram
 * matrix + syevd; otherwise, and as the fallback, cuSOLVER gesvd),
 * orthonormalisation (fp64 Cholesky QR twice; Householder geqrf + orgqr as the
 * fallback), canonical singular-vector signs, and seeded normal fills.
 *
 * cuSOLVER is column-major and gesvd needs rows >= cols. A row-major G [m,n]
 * is the column-major n x m matrix G^T: when n >= m that buffer (copied, since
 * gesvd overwrites its input) is factored as G^T = U' S V'^T, so G's left
 * vectors are V' and its right vectors U'; when m > n, G is transposed into a
 * column-major m x n buffer and factored directly. Workspaces come from the
 * arena (MEM_WORKSPACE) and are released before returning; a workspace that
 * does not fit the cap or a solver that does not converge is a clean -1.
 *
 * Canonical signs: the entry of largest magnitude of each vector is made
 * positive, the first such index on ties (as the CPU backend). Normal fills:
 * the formula of cpu_fill_normal (cpu_proj.c): with (v0, v1) the first two words
 * of philox4x32_10(seed, i, 0), u1 = ((v0 >> 8) + 1) 2^-24, u2 = (v1 >> 8) 2^-24,
 * element i = stddev * sqrtf(-2 logf(u1)) * cosf(2 pi u2) in float, so both
 * backends draw the same numbers (to the last ulp of logf / cosf). Like the
 * CPU backend, svd_top and orthonormalize refuse NaN / Inf input cleanly. */
#include "cuda/cuda_internal.h"

#include <math.h>

#define SOLVER_THREADS 256

/* dst row-major [cols, rows] = transpose of src row-major [rows, cols] */
__global__ void k_transpose(float *dst, const float *src, int64_t rows, int64_t cols) {
    int64_t total = rows * cols;
    for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
         idx += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = idx / cols, c = idx - r * cols;
        dst[c * rows + r] = src[idx];
    }
}

/* vector k (k < rank) of length len, entry r: from_u ? src[r + k ld] : src[k + r ld].
 * right: out [rank, len] (vectors are rows); else out [len, rank] (vectors are columns). */
__global__ void k_svd_gather(float *out, const float *src, int64_t ld, int from_u, int64_t len, int64_t rank,
                             int right) {
    int64_t total = len * rank;
    for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
         idx += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = idx / rank, k = idx - r * rank;
        float v = from_u ? src[r + k * ld] : src[k + r * ld];
        if (right)
            out[k * len + r] = v;
        else
            out[r * rank + k] = v;
    }
}

static void transpose(CudaImpl *ci, float *dst, const float *src, int64_t rows, int64_t cols) {
    k_transpose<<<cuda_grid_for(rows * cols, SOLVER_THREADS), SOLVER_THREADS, 0, ci->stream>>>(dst, src, rows, cols);
    CUDA_LAUNCH_CHECK();
}

/* A set of workspace buffers released together. */
typedef struct WsSet {
    Backend *be;
    void *p[8];
    int n;
} WsSet;

static int ws_get(WsSet *w, size_t bytes, void **out, const char *what, OwError *err) {
    OW_CHECK(w->n < 8);
    if (cuda_ws_alloc(w->be, bytes, out, what, err) != 0) return -1;
    w->p[w->n++] = *out;
    return 0;
}

static void ws_release(WsSet *w) {
    for (int i = 0; i < w->n; i++) cuda_ws_free(w->be, w->p[i]);
    w->n = 0;
}

static int read_info(CudaImpl *ci, const int *dinfo) {
    int h = 0;
    CUDA_CHECK(cudaMemcpyAsync(&h, dinfo, sizeof h, cudaMemcpyDeviceToHost, ci->stream));
    CUDA_CHECK(cudaStreamSynchronize(ci->stream));
    return h;
}

/* ---- fp64 Gram-matrix paths (fast; the Householder / gesvd paths are the fallback) ----
 * Both work on an fp64 copy D of a row-major fp32 matrix [rows, cols], which is
 * the column-major cols x rows matrix X = A^T (leading dimension cols). */

__global__ void k_f32_to_f64(double *d, const float *s, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        d[i] = (double)s[i];
}

__global__ void k_f64_to_f32(float *d, const double *s, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        d[i] = (float)s[i];
}

/* *flag = 1 when any of the n entries is NaN or Inf (a Gram matrix holds one
 * if its factor does; checking the small Gram avoids a pass over the factor). */
__global__ void k_flag_nonfinite(int *flag, const double *a, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        if (!isfinite(a[i])) *flag = 1;
}

/* eigenvector j (j < rank, largest eigenvalue first) of the column-major dim x
 * dim eigenvector matrix E (syevd: ascending eigenvalues, vectors in columns) ->
 * right: out [rank, dim] (vectors are rows); else out [dim, rank] (columns). */
__global__ void k_eig_gather(float *out, const double *E, int64_t dim, int64_t rank, int right) {
    int64_t total = dim * rank;
    for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
         idx += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = idx / rank, j = idx - r * rank;
        float v = (float)E[r + (dim - 1 - j) * dim];
        if (right)
            out[j * dim + r] = v;
        else
            out[r * rank + j] = v;
    }
}

static void to_f64(CudaImpl *ci, double *d, const float *s, int64_t n) {
    k_f32_to_f64<<<cuda_grid_for(n, SOLVER_THREADS), SOLVER_THREADS, 0, ci->stream>>>(d, s, n);
    CUDA_LAUNCH_CHECK();
}

static void flag_nonfinite(CudaImpl *ci, int *flag, const double *a, int64_t n) {
    CUDA_CHECK(cudaMemsetAsync(flag, 0, sizeof(int), ci->stream));
    k_flag_nonfinite<<<cuda_grid_for(n, SOLVER_THREADS), SOLVER_THREADS, 0, ci->stream>>>(flag, a, n);
    CUDA_LAUNCH_CHECK();
}

/* Workspaces of a fast path: a failure to get them sends the caller to the
 * fallback, which needs less; the error is dropped. */
static int ws_get_quiet(WsSet *w, size_t bytes, void **out, const char *what) {
    OwError e;
    ow_error_clear(&e);
    return ws_get(w, bytes, out, what, &e);
}

/* Top-r singular vectors of a small G from the fp64 Gram matrix of the side
 * they live on (right: G^T G [n, n], left: G G^T [m, m]) by a symmetric
 * eigensolver (syevd): on the [k, k] matrices of the randomized projector this
 * is an order of magnitude faster than gesvd, and in fp64 the squared condition
 * number costs nothing at fp32 precision. Returns 1 when the fallback should
 * run (workspace, solver failure), -1 on NaN / Inf input. */
static int svd_top_gram(Backend *be, Tensor *out, const Tensor *G, int rank, int right, OwError *err) {
    CudaImpl *ci = cuda_impl(be);
    int64_t m = tensor_rows(G), n = tensor_cols(G), dim = right ? n : m;
    WsSet w = {be, {0}, 0};
    double *D, *C, *W, *work;
    int *info, lwork = 0;
    if (ws_get_quiet(&w, (size_t)(m * n) * 8, (void **)&D, "Gram SVD fp64 copy") != 0 ||
        ws_get_quiet(&w, (size_t)(dim * dim) * 8, (void **)&C, "Gram SVD matrix") != 0 ||
        ws_get_quiet(&w, (size_t)dim * 8, (void **)&W, "Gram SVD eigenvalues") != 0 ||
        ws_get_quiet(&w, 2 * sizeof(int), (void **)&info, "Gram SVD info") != 0) {
        ws_release(&w);
        return 1;
    }
    CUSOLVER_CHECK(cusolverDnDsyevd_bufferSize(ci->solver, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_UPPER, (int)dim,
                                               C, (int)dim, W, &lwork));
    if (ws_get_quiet(&w, (size_t)(lwork > 0 ? lwork : 1) * 8, (void **)&work, "Gram SVD workspace") != 0) {
        ws_release(&w);
        return 1;
    }
    to_f64(ci, D, (const float *)G->data, m * n);
    const double one = 1.0, zero = 0.0;
    if (right) /* C = X X^T = G^T G */
        CUBLAS_CHECK(cublasDgemm(ci->blas, CUBLAS_OP_N, CUBLAS_OP_T, (int)n, (int)n, (int)m, &one, D, (int)n, D, (int)n,
                                 &zero, C, (int)n));
    else /* C = X^T X = G G^T */
        CUBLAS_CHECK(cublasDgemm(ci->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)m, (int)m, (int)n, &one, D, (int)n, D, (int)n,
                                 &zero, C, (int)m));
    flag_nonfinite(ci, info + 1, C, dim * dim);
    CUSOLVER_CHECK(cusolverDnDsyevd(ci->solver, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_UPPER, (int)dim, C, (int)dim,
                                    W, work, lwork, info));
    int h[2] = {0, 0};
    CUDA_CHECK(cudaMemcpyAsync(h, info, sizeof h, cudaMemcpyDeviceToHost, ci->stream));
    CUDA_CHECK(cudaStreamSynchronize(ci->stream));
    if (h[1]) {
        ws_release(&w);
        return ow_fail(err,
                       "svd_top: the [%lld, %lld] matrix holds NaN or Inf (hint: the gradients diverged; lower the "
                       "learning rate or check the data)",
                       (long long)m, (long long)n);
    }
    if (h[0] != 0) {
        ws_release(&w);
        return 1;
    }
    k_eig_gather<<<cuda_grid_for(dim * rank, SOLVER_THREADS), SOLVER_THREADS, 0, ci->stream>>>((float *)out->data, C,
                                                                                               dim, rank, right);
    CUDA_LAUNCH_CHECK();
    cuda_canonicalize_signs(be, out, right);
    ws_release(&w);
    return 0;
}

/* Cholesky QR, twice, in fp64 (CholeskyQR2): R from the Gram matrix A^T A by
 * potrf, A <- A R^-1 by trsm; the second pass restores orthogonality to fp64
 * level. Stable while cond(A) stays below ~1e7 (the fp64 Gram squares it),
 * which covers the range finder's bases; a rank-deficient or worse-conditioned
 * A makes potrf fail and the caller falls back to Householder QR. Only the
 * span and orthonormality of the result matter to the range finder, so the two
 * paths are interchangeable. Returns 1 for the fallback, -1 on NaN / Inf. */
static int orthonormalize_cholqr2(Backend *be, Tensor *A, OwError *err) {
    CudaImpl *ci = cuda_impl(be);
    int64_t m = tensor_rows(A), k = tensor_cols(A);
    WsSet w = {be, {0}, 0};
    double *D, *C, *work;
    int *info, lwork = 0;
    if (ws_get_quiet(&w, (size_t)(m * k) * 8, (void **)&D, "Cholesky QR fp64 copy") != 0 ||
        ws_get_quiet(&w, (size_t)(k * k) * 8, (void **)&C, "Cholesky QR Gram") != 0 ||
        ws_get_quiet(&w, 3 * sizeof(int), (void **)&info, "Cholesky QR info") != 0) {
        ws_release(&w);
        return 1;
    }
    CUSOLVER_CHECK(cusolverDnDpotrf_bufferSize(ci->solver, CUBLAS_FILL_MODE_UPPER, (int)k, C, (int)k, &lwork));
    if (ws_get_quiet(&w, (size_t)(lwork > 0 ? lwork : 1) * 8, (void **)&work, "Cholesky QR workspace") != 0) {
        ws_release(&w);
        return 1;
    }
    to_f64(ci, D, (const float *)A->data, m * k);
    const double one = 1.0, zero = 0.0;
    for (int pass = 0; pass < 2; pass++) {
        /* X = A^T (k x m, ld k): C = X X^T = A^T A; C = U^T U; X <- U^-T X, i.e. A <- A U^-1 */
        CUBLAS_CHECK(cublasDgemm(ci->blas, CUBLAS_OP_N, CUBLAS_OP_T, (int)k, (int)k, (int)m, &one, D, (int)k, D, (int)k,
                                 &zero, C, (int)k));
        if (pass == 0) flag_nonfinite(ci, info + 2, C, k * k);
        CUSOLVER_CHECK(
            cusolverDnDpotrf(ci->solver, CUBLAS_FILL_MODE_UPPER, (int)k, C, (int)k, work, lwork, info + pass));
        CUBLAS_CHECK(cublasDtrsm(ci->blas, CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_T, CUBLAS_DIAG_NON_UNIT,
                                 (int)k, (int)m, &one, C, (int)k, D, (int)k));
    }
    int h[3] = {0, 0, 0};
    CUDA_CHECK(cudaMemcpyAsync(h, info, sizeof h, cudaMemcpyDeviceToHost, ci->stream));
    CUDA_CHECK(cudaStreamSynchronize(ci->stream));
    if (h[2]) {
        ws_release(&w);
        return ow_fail(err, "orthonormalize: the [%lld, %lld] matrix holds NaN or Inf", (long long)m, (long long)k);
    }
    if (h[0] != 0 || h[1] != 0) { /* not numerically full rank: A is untouched, use Householder */
        ws_release(&w);
        return 1;
    }
    k_f64_to_f32<<<cuda_grid_for(m * k, SOLVER_THREADS), SOLVER_THREADS, 0, ci->stream>>>((float *)A->data, D, m * k);
    CUDA_LAUNCH_CHECK();
    ws_release(&w);
    return 0;
}

/* The Gram path of svd_top for matrices whose vectors' side is at most this long. */
#define SVD_GRAM_MAX_DIM 1024

int cuda_svd_top(Backend *be, Tensor *out, const Tensor *G, int rank, int right, OwError *err) {
    CudaImpl *ci = cuda_impl(be);
    int64_t m = tensor_rows(G), n = tensor_cols(G);
    int64_t mp = m > n ? m : n, np = m > n ? n : m;
    OW_CHECKF(G->dtype == OW_F32 && out->dtype == OW_F32, "svd_top: G and out must be F32");
    OW_CHECKF(rank >= 1 && rank <= np, "svd_top: rank %d of a %lldx%lld matrix", rank, (long long)m, (long long)n);
    if (right)
        OW_CHECKF(tensor_rows(out) == rank && tensor_cols(out) == n, "svd_top: out must be [%d, %lld]", rank,
                  (long long)n);
    else
        OW_CHECKF(tensor_rows(out) == m && tensor_cols(out) == rank, "svd_top: out must be [%lld, %d]", (long long)m,
                  rank);
    OW_CHECKF(mp <= 0x7fffffff && mp * np <= 0x7fffffff, "svd_top: matrix too large for cuSOLVER");
    if ((right ? n : m) <= SVD_GRAM_MAX_DIM && m * n <= ((int64_t)1 << 24)) {
        int rc = svd_top_gram(be, out, G, rank, right, err);
        if (rc <= 0) return rc;
    }
    if (!isfinite(cuda_sum_squares(be, G)))
        return ow_fail(err,
                       "svd_top: the [%lld, %lld] matrix holds NaN or Inf (hint: the gradients diverged; lower the "
                       "learning rate or check the data)",
                       (long long)m, (long long)n);

    int lwork = 0;
    CUSOLVER_CHECK(cusolverDnSgesvd_bufferSize(ci->solver, (int)mp, (int)np, &lwork));
    WsSet w = {be, {0}, 0};
    float *A, *S, *U, *VT, *rwork, *work;
    int *info;
    if (ws_get(&w, (size_t)(mp * np) * 4, (void **)&A, "SVD input copy", err) != 0 ||
        ws_get(&w, (size_t)np * 4, (void **)&S, "SVD singular values", err) != 0 ||
        ws_get(&w, (size_t)(mp * np) * 4, (void **)&U, "SVD left vectors", err) != 0 ||
        ws_get(&w, (size_t)(np * np) * 4, (void **)&VT, "SVD right vectors", err) != 0 ||
        ws_get(&w, (size_t)np * 4, (void **)&rwork, "SVD rwork", err) != 0 ||
        ws_get(&w, (size_t)(lwork > 0 ? lwork : 1) * 4, (void **)&work, "SVD workspace", err) != 0 ||
        ws_get(&w, sizeof(int), (void **)&info, "SVD info", err) != 0) {
        ws_release(&w);
        return ow_fail_prefix(err, "exact SVD of a %lldx%lld gradient", (long long)m, (long long)n);
    }
    if (n >= m) /* G's buffer is the column-major n x m matrix G^T */
        CUDA_CHECK(cudaMemcpyAsync(A, G->data, (size_t)(m * n) * 4, cudaMemcpyDeviceToDevice, ci->stream));
    else /* column-major m x n G == row-major [n, m] G^T */
        transpose(ci, A, (const float *)G->data, m, n);
    CUSOLVER_CHECK(cusolverDnSgesvd(ci->solver, 'S', 'S', (int)mp, (int)np, A, (int)mp, S, U, (int)mp, VT, (int)np,
                                    work, lwork, rwork, info));
    int h_info = read_info(ci, info);
    if (h_info != 0) {
        ws_release(&w);
        return ow_fail(err, "exact SVD of a %lldx%lld gradient failed (cuSOLVER gesvd info %d%s)", (long long)m,
                       (long long)n, h_info,
                       h_info > 0 ? ": not converged; the gradient may contain NaN or Inf" : ": invalid argument");
    }
    int from_u = (n >= m) ? right : !right;
    int64_t len = right ? n : m;
    k_svd_gather<<<cuda_grid_for(len * rank, SOLVER_THREADS), SOLVER_THREADS, 0, ci->stream>>>(
        (float *)out->data, from_u ? U : VT, from_u ? mp : np, from_u, len, rank, right);
    CUDA_LAUNCH_CHECK();
    cuda_canonicalize_signs(be, out, right);
    ws_release(&w);
    return 0;
}

int cuda_orthonormalize(Backend *be, Tensor *A, OwError *err) {
    CudaImpl *ci = cuda_impl(be);
    int64_t m = tensor_rows(A), k = tensor_cols(A);
    OW_CHECKF(A->dtype == OW_F32, "orthonormalize: A must be F32");
    OW_CHECKF(m >= k, "orthonormalize needs rows >= cols, got [%lld, %lld]", (long long)m, (long long)k);
    OW_CHECKF(m * k <= 0x7fffffff, "orthonormalize: matrix too large for cuSOLVER");
    if (k == 0) return 0;
    int rc = orthonormalize_cholqr2(be, A, err);
    if (rc <= 0) return rc;
    if (!isfinite(cuda_sum_squares(be, A)))
        return ow_fail(err, "orthonormalize: the [%lld, %lld] matrix holds NaN or Inf", (long long)m, (long long)k);
    WsSet w = {be, {0}, 0};
    float *W, *tau, *work;
    int *info;
    if (ws_get(&w, (size_t)(m * k) * 4, (void **)&W, "QR matrix", err) != 0 ||
        ws_get(&w, (size_t)k * 4, (void **)&tau, "QR tau", err) != 0 ||
        ws_get(&w, 2 * sizeof(int), (void **)&info, "QR info", err) != 0) {
        ws_release(&w);
        return ow_fail_prefix(err, "QR of a %lldx%lld matrix", (long long)m, (long long)k);
    }
    int lw1 = 0, lw2 = 0;
    CUSOLVER_CHECK(cusolverDnSgeqrf_bufferSize(ci->solver, (int)m, (int)k, W, (int)m, &lw1));
    CUSOLVER_CHECK(cusolverDnSorgqr_bufferSize(ci->solver, (int)m, (int)k, (int)k, W, (int)m, tau, &lw2));
    int lwork = lw1 > lw2 ? lw1 : lw2;
    if (ws_get(&w, (size_t)(lwork > 0 ? lwork : 1) * 4, (void **)&work, "QR workspace", err) != 0) {
        ws_release(&w);
        return ow_fail_prefix(err, "QR of a %lldx%lld matrix", (long long)m, (long long)k);
    }
    transpose(ci, W, (const float *)A->data, m, k); /* column-major m x k */
    CUSOLVER_CHECK(cusolverDnSgeqrf(ci->solver, (int)m, (int)k, W, (int)m, tau, work, lwork, info));
    CUSOLVER_CHECK(cusolverDnSorgqr(ci->solver, (int)m, (int)k, (int)k, W, (int)m, tau, work, lwork, info + 1));
    int infos[2] = {0, 0};
    CUDA_CHECK(cudaMemcpyAsync(infos, info, sizeof infos, cudaMemcpyDeviceToHost, ci->stream));
    CUDA_CHECK(cudaStreamSynchronize(ci->stream));
    if (infos[0] != 0 || infos[1] != 0) {
        ws_release(&w);
        return ow_fail(err, "QR of a %lldx%lld matrix failed (cuSOLVER info %d / %d)", (long long)m, (long long)k,
                       infos[0], infos[1]);
    }
    transpose(ci, (float *)A->data, W, k, m); /* row-major [k, m] (= column-major W) back to [m, k] */
    ws_release(&w);
    return 0;
}

/* One block per vector: find the first index of the largest |entry|, negate the
 * vector when that entry is negative. Entry j of vector v is at v * vstride + j * estride. */
__global__ void k_canonicalize(float *P, int64_t len, int64_t vstride, int64_t estride) {
    __shared__ float s_abs[SOLVER_THREADS];
    __shared__ int64_t s_idx[SOLVER_THREADS];
    __shared__ int s_neg;
    float *vec = P + (int64_t)blockIdx.x * vstride;
    float best = -1.0f;
    int64_t bi = -1;
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
        float a = fabsf(vec[j * estride]);
        if (a > best) { /* j grows: the first index wins ties within a thread */
            best = a;
            bi = j;
        }
    }
    s_abs[threadIdx.x] = best;
    s_idx[threadIdx.x] = bi;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) {
            float a2 = s_abs[threadIdx.x + half];
            int64_t i2 = s_idx[threadIdx.x + half];
            float a1 = s_abs[threadIdx.x];
            int64_t i1 = s_idx[threadIdx.x];
            if (i2 >= 0 && (i1 < 0 || a2 > a1 || (a2 == a1 && i2 < i1))) {
                s_abs[threadIdx.x] = a2;
                s_idx[threadIdx.x] = i2;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) s_neg = s_idx[0] >= 0 && vec[s_idx[0] * estride] < 0.0f;
    __syncthreads();
    if (s_neg)
        for (int64_t j = threadIdx.x; j < len; j += blockDim.x) vec[j * estride] = -vec[j * estride];
}

void cuda_canonicalize_signs(Backend *be, Tensor *P, int rows) {
    CudaImpl *ci = cuda_impl(be);
    OW_CHECKF(P->dtype == OW_F32, "canonicalize_signs: P must be F32");
    int64_t R = tensor_rows(P), C = tensor_cols(P);
    int64_t nvec = rows ? R : C, len = rows ? C : R;
    if (nvec == 0 || len == 0) return;
    OW_CHECK(nvec <= 0x7fffffff);
    int64_t vstride = rows ? C : 1, estride = rows ? 1 : C;
    k_canonicalize<<<(unsigned)nvec, SOLVER_THREADS, 0, ci->stream>>>((float *)P->data, len, vstride, estride);
    CUDA_LAUNCH_CHECK();
}

__global__ void k_fill_normal(void *t, int dt, int64_t n, uint64_t seed, float stddev) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        Philox4 r = philox4x32_10(seed, (uint64_t)i, 0);
        float u1 = ((float)(r.v[0] >> 8) + 1.0f) * (1.0f / 16777216.0f); /* (0, 1], exact */
        float u2 = philox_u01f(r.v[1]);                                  /* [0, 1), exact */
        float z = sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
        ow_store(t, dt, i, stddev * z);
    }
}

void cuda_fill_normal(Backend *be, Tensor *t, uint64_t seed, float stddev) {
    CudaImpl *ci = cuda_impl(be);
    int64_t n = tensor_numel(t);
    OW_CHECKF(dtype_is_float(t->dtype), "fill_normal of %s", dtype_name(t->dtype));
    if (n == 0) return;
    k_fill_normal<<<cuda_grid_for(n, SOLVER_THREADS), SOLVER_THREADS, 0, ci->stream>>>(t->data, t->dtype, n, seed,
                                                                                       stddev);
    CUDA_LAUNCH_CHECK();
}
