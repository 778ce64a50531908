/* cpu_proj.c: the projector ops of the CPU backend: exact top-r SVD
 * (LAPACK sgesdd), thin-QR orthonormalisation (sgeqrf + sorgqr), sign
 * canonicalisation of singular vectors, and seeded normal fills.
 *
 * LAPACK is column-major: a row-major [m, n] matrix is, in LAPACK's eyes, the
 * column-major [n, m] matrix G^T. The SVD of G^T = V S U^T hands back G's
 * right singular vectors as its "U" (contiguous columns = our rows) and G's
 * left singular vectors as its "V^T", so no transposes are needed for the SVD.
 * Canonical signs: the largest-magnitude entry of each vector is made
 * positive; on ties the first such index counts. LAPACK scratch is host
 * memory owned by the call (not counted in be->mem). */
#include "backend/cpu/cpu_internal.h"

#include "core/philox.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Fortran LAPACK entry points exported by OpenBLAS (LP64: 32-bit integers).
 * Character arguments carry a hidden length argument at the end (gfortran ABI). */
void sgesdd_(const char *jobz, const int *m, const int *n, float *a, const int *lda, float *s, float *u, const int *ldu,
             float *vt, const int *ldvt, float *work, const int *lwork, int *iwork, int *info, size_t jobz_len);
void sgeqrf_(const int *m, const int *n, float *a, const int *lda, float *tau, float *work, const int *lwork,
             int *info);
void sorgqr_(const int *m, const int *n, const int *k, float *a, const int *lda, const float *tau, float *work,
             const int *lwork, int *info);

static int all_finite(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

/* LAPACK returns workspace sizes as floats; round up and keep at least 1. */
static int lwork_from(float w) {
    double d = ceil((double)w);
    if (d < 1.0) d = 1.0;
    return d > (double)INT_MAX ? INT_MAX : (int)d;
}

int cpu_svd_top(Backend *be, Tensor *out, const Tensor *G, int rank, int right, OwError *err) {
    const float *g = cpu_f32(G);
    float *o = cpu_f32(out);
    int64_t M = tensor_rows(G), N = tensor_cols(G), K = M < N ? M : N;
    OW_CHECKF(rank >= 1 && rank <= K, "svd_top rank %d of a [%lld, %lld] matrix", rank, (long long)M, (long long)N);
    OW_CHECKF(M <= INT_MAX && N <= INT_MAX && M * N <= INT_MAX, "svd_top matrix [%lld, %lld] too large for LAPACK",
              (long long)M, (long long)N);
    if (right)
        OW_CHECK(tensor_rows(out) == rank && tensor_cols(out) == N);
    else
        OW_CHECK(tensor_rows(out) == M && tensor_cols(out) == rank);
    if (!all_finite(g, M * N))
        return ow_fail(err,
                       "svd_top: the [%lld, %lld] matrix holds NaN or Inf (hint: the gradients diverged; lower "
                       "the learning rate or check the data)",
                       (long long)M, (long long)N);

    int m = (int)N, n = (int)M, k = (int)K; /* LAPACK's view: A = G^T is m x n column-major */
    int lda = m, ldu = m, ldvt = k, info = 0, lwork = -1;
    float *a = ow_try_malloc((size_t)(M * N) * sizeof(float), "svd_top input copy", err);
    float *s = ow_try_malloc((size_t)K * sizeof(float), "svd_top singular values", err);
    float *u = ow_try_malloc((size_t)(N * K) * sizeof(float), "svd_top right vectors", err);
    float *vt = ow_try_malloc((size_t)(K * M) * sizeof(float), "svd_top left vectors", err);
    int *iwork = ow_try_malloc((size_t)(8 * K) * sizeof(int), "svd_top integer workspace", err);
    float *work = NULL;
    int rc = -1;
    if (!a || !s || !u || !vt || !iwork) goto done;
    memcpy(a, g, (size_t)(M * N) * sizeof(float));
    float wq = 0.0f;
    sgesdd_("S", &m, &n, a, &lda, s, u, &ldu, vt, &ldvt, &wq, &lwork, iwork, &info, 1);
    if (info != 0) {
        ow_fail(err, "svd_top: LAPACK sgesdd workspace query failed (info %d) for a [%lld, %lld] matrix", info,
                (long long)M, (long long)N);
        goto done;
    }
    lwork = lwork_from(wq);
    work = ow_try_malloc((size_t)lwork * sizeof(float), "svd_top workspace", err);
    if (!work) goto done;
    sgesdd_("S", &m, &n, a, &lda, s, u, &ldu, vt, &ldvt, work, &lwork, iwork, &info, 1);
    if (info != 0) {
        ow_fail(err, "svd_top: LAPACK sgesdd failed (info %d%s) for a [%lld, %lld] matrix", info,
                info > 0 ? ": the SVD did not converge" : ": bad argument", (long long)M, (long long)N);
        goto done;
    }
    if (right) {
        memcpy(o, u, (size_t)rank * (size_t)N * sizeof(float)); /* column r of u = right vector r of G */
    } else {
        for (int64_t c = 0; c < M; c++)
            for (int64_t r = 0; r < rank; r++) o[c * rank + r] = vt[r + c * K];
    }
    cpu_canonicalize_signs(be, out, right);
    rc = 0;
done:
    free(a);
    free(s);
    free(u);
    free(vt);
    free(iwork);
    free(work);
    return rc;
}

int cpu_orthonormalize(Backend *be, Tensor *A, OwError *err) {
    float *x = cpu_f32(A);
    int64_t M = tensor_rows(A), K = tensor_cols(A);
    OW_CHECKF(M >= K, "orthonormalize needs rows >= cols, got [%lld, %lld]", (long long)M, (long long)K);
    OW_CHECK(M <= INT_MAX && M * K <= INT_MAX);
    if (K == 0) return 0;
    if (!all_finite(x, M * K))
        return ow_fail(err, "orthonormalize: the [%lld, %lld] matrix holds NaN or Inf", (long long)M, (long long)K);
    int m = (int)M, k = (int)K, lda = m, info = 0, lwork = -1;
    float *a = ow_try_malloc((size_t)(M * K) * sizeof(float), "orthonormalize copy", err);
    float *tau = ow_try_malloc((size_t)K * sizeof(float), "orthonormalize tau", err);
    float *work = NULL;
    int rc = -1;
    if (!a || !tau) goto done;
    /* column-major copy: a[i + j*m] = A[i][j] */
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < K; j++) a[i + j * M] = x[i * K + j];
    float wq1 = 0.0f, wq2 = 0.0f;
    sgeqrf_(&m, &k, a, &lda, tau, &wq1, &lwork, &info);
    if (info == 0) sorgqr_(&m, &k, &k, a, &lda, tau, &wq2, &lwork, &info);
    if (info != 0) {
        ow_fail(err, "orthonormalize: LAPACK workspace query failed (info %d) for [%lld, %lld]", info, (long long)M,
                (long long)K);
        goto done;
    }
    lwork = lwork_from(wq1 > wq2 ? wq1 : wq2);
    work = ow_try_malloc((size_t)lwork * sizeof(float), "orthonormalize workspace", err);
    if (!work) goto done;
    sgeqrf_(&m, &k, a, &lda, tau, work, &lwork, &info);
    if (info != 0) {
        ow_fail(err, "orthonormalize: LAPACK sgeqrf failed (info %d) for [%lld, %lld]", info, (long long)M,
                (long long)K);
        goto done;
    }
    sorgqr_(&m, &k, &k, a, &lda, tau, work, &lwork, &info);
    if (info != 0) {
        ow_fail(err, "orthonormalize: LAPACK sorgqr failed (info %d) for [%lld, %lld]", info, (long long)M,
                (long long)K);
        goto done;
    }
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < K; j++) x[i * K + j] = a[i + j * M];
    rc = 0;
done:
    free(a);
    free(tau);
    free(work);
    return rc;
}

void cpu_canonicalize_signs(Backend *be, Tensor *P, int rows) {
    float *p = cpu_f32(P);
    int64_t R = tensor_rows(P), C = tensor_cols(P);
    int64_t nvec = rows ? R : C, len = rows ? C : R;
    int64_t stride = rows ? 1 : C;  /* step between entries of one vector */
    int64_t vstride = rows ? C : 1; /* step between vectors */
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
    for (int64_t v = 0; v < nvec; v++) {
        float *x = p + v * vstride;
        int64_t best = 0;
        float bestabs = -1.0f;
        for (int64_t i = 0; i < len; i++) {
            float a = fabsf(x[i * stride]);
            if (a > bestabs) {
                bestabs = a;
                best = i;
            }
        }
        if (len > 0 && x[best * stride] < 0.0f)
            for (int64_t i = 0; i < len; i++) x[i * stride] = -x[i * stride];
    }
}

/* Element i of the tensor (row-major index) is
 *   r  = philox4x32_10(seed, i, 0)
 *   u1 = ((float)(r.v[0] >> 8) + 1.0f) * 2^-24      in (0, 1], exact in float
 *   u2 = (float)(r.v[1] >> 8) * 2^-24               in [0, 1), exact (philox_u01f)
 *   z  = sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2)
 *   t[i] = stddev * z                               (float; rounded to t's dtype)
 * all in float with the precise (not fast-math) logf/sqrtf/cosf. The CUDA
 * backend computes the same formula. */
void cpu_fill_normal(Backend *be, Tensor *t, uint64_t seed, float stddev) {
    int64_t n = tensor_numel(t);
    DType dt = t->dtype;
    OW_CHECKF(dt == OW_F32 || dt == OW_BF16 || dt == OW_F16, "fill_normal of a %s tensor", dtype_name(dt));
    float *f = t->data;
    uint16_t *h = t->data;
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        Philox4 r = philox4x32_10(seed, (uint64_t)i, 0);
        float u1 = ((float)(r.v[0] >> 8) + 1.0f) * (1.0f / 16777216.0f);
        float u2 = philox_u01f(r.v[1]);
        float z = sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
        float val = stddev * z;
        if (dt == OW_F32)
            f[i] = val;
        else
            h[i] = dt == OW_BF16 ? f32_to_bf16(val) : f32_to_f16(val);
    }
}
