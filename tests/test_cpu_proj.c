/* test_cpu_proj.c: the CPU backend's projector ops: svd_top on matrices
 * built here with known singular vectors (both sides, m < n and m > n,
 * orthonormality, reconstruction of a rank-r matrix, ordering, canonical
 * signs), orthonormalize (Q^T Q = I, same span, agreement with a
 * Gram-Schmidt written here), canonicalize_signs (ties), fill_normal
 * (statistics, reproducibility, the documented formula). */
#include "cpu_test_util.h"

#include "core/philox.h"
#include "test_support.h"

#include <string.h>

/* Orthonormal columns: Q [m, r] (row-major, double) by modified Gram-Schmidt of random columns. */
static void rand_orthonormal(Rng *rng, int64_t m, int64_t r, double *Q) {
    for (int64_t i = 0; i < m * r; i++) Q[i] = rng_normal(rng);
    ts_gram_schmidt(Q, m, r, r, 1);
}

/* Sign of column j of X [m, r] that makes its largest-|.| entry (first on ties) positive. */
static double canon_sign_col(const double *X, int64_t m, int64_t r, int64_t j) {
    int64_t best = 0;
    for (int64_t i = 1; i < m; i++)
        if (fabs(X[i * r + j]) > fabs(X[best * r + j])) best = i;
    return X[best * r + j] < 0 ? -1.0 : 1.0;
}

/* G [M, N] = U diag(s) V^T with r0 terms, s decreasing and well separated; returns U, V. */
static void make_matrix(Rng *rng, int64_t M, int64_t N, int64_t r0, float *G, double *U, double *V) {
    rand_orthonormal(rng, M, r0, U);
    rand_orthonormal(rng, N, r0, V);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < r0; k++) s += U[i * r0 + k] * (10.0 / (1.0 + 0.7 * (double)k)) * V[j * r0 + k];
            G[i * N + j] = (float)s;
        }
}

static void check_svd(int64_t M, int64_t N, int64_t r0, int rank) {
    Backend *be = ct_backend(2);
    Rng rng;
    rng_init(&rng, (uint64_t)(M * 1000 + N * 10 + r0), 8);
    double *U = malloc((size_t)(M * r0) * sizeof(double)), *V = malloc((size_t)(N * r0) * sizeof(double));
    Tensor G = CT_F32(be, M, N);
    make_matrix(&rng, M, N, r0, ct_f(&G), U, V);
    float *G0 = malloc((size_t)(M * N) * sizeof(float));
    memcpy(G0, G.data, (size_t)(M * N) * sizeof(float));
    OwError err;
    char what[96];

    /* right: P [rank, N], rows = top right singular vectors */
    Tensor P = CT_F32(be, rank, N);
    cr_assert(be->ops->svd_top(be, &P, &G, rank, 1, &err) == 0, "%s", err.msg);
    cr_assert(memcmp(G.data, G0, (size_t)(M * N) * sizeof(float)) == 0, "svd_top must not modify G");
    const float *p = ct_f(&P);
    for (int64_t a = 0; a < rank; a++) {
        for (int64_t b = 0; b < rank; b++) {
            double d = ct_dot(p + a * N, p + b * N, N);
            cr_assert(fabs(d - (a == b)) < 1e-5, "right P P^T [%lld,%lld] = %g", (long long)a, (long long)b, d);
        }
        if (a < r0) { /* known vector: column a of V with canonical sign */
            double sg = canon_sign_col(V, N, r0, a);
            double *ref = malloc((size_t)N * sizeof(double));
            for (int64_t j = 0; j < N; j++) ref[j] = sg * V[j * r0 + a];
            snprintf(what, sizeof what, "right vector %lld of [%lld, %lld]", (long long)a, (long long)M, (long long)N);
            ct_assert_close(p + a * N, ref, N, 1e-4, 0, what);
            free(ref);
        }
        int64_t best = 0; /* canonical sign: largest-magnitude entry positive */
        for (int64_t j = 1; j < N; j++)
            if (fabsf(p[a * N + j]) > fabsf(p[a * N + best])) best = j;
        cr_assert(p[a * N + best] > 0);
    }
    if (rank >= r0) { /* G P^T P = G for a rank-r0 G */
        double *ref = malloc((size_t)(M * N) * sizeof(double));
        for (int64_t i = 0; i < M * N; i++) ref[i] = G0[i];
        float *rec = calloc((size_t)(M * N), sizeof(float));
        for (int64_t i = 0; i < M; i++)
            for (int64_t a = 0; a < rank; a++) {
                double c = ct_dot(G0 + i * N, p + a * N, N);
                for (int64_t j = 0; j < N; j++) rec[i * N + j] += (float)(c * p[a * N + j]);
            }
        ct_assert_close(rec, ref, M * N, 1e-4, 0, "G P^T P");
        free(ref);
        free(rec);
    }

    /* left: Q [M, rank], columns = top left singular vectors */
    Tensor Q = CT_F32(be, M, rank);
    cr_assert(be->ops->svd_top(be, &Q, &G, rank, 0, &err) == 0, "%s", err.msg);
    const float *q = ct_f(&Q);
    for (int64_t a = 0; a < rank; a++) {
        for (int64_t b = 0; b < rank; b++) {
            double d = 0;
            for (int64_t i = 0; i < M; i++) d += (double)q[i * rank + a] * q[i * rank + b];
            cr_assert(fabs(d - (a == b)) < 1e-5, "left Q^T Q [%lld,%lld] = %g", (long long)a, (long long)b, d);
        }
        if (a < r0) {
            double sg = canon_sign_col(U, M, r0, a);
            for (int64_t i = 0; i < M; i++)
                cr_assert(fabs(q[i * rank + a] - sg * U[i * r0 + a]) < 1e-4, "left vector %lld entry %lld: %g vs %g",
                          (long long)a, (long long)i, q[i * rank + a], sg * U[i * r0 + a]);
        }
        int64_t best = 0;
        for (int64_t i = 1; i < M; i++)
            if (fabsf(q[i * rank + a]) > fabsf(q[best * rank + a])) best = i;
        cr_assert(q[best * rank + a] > 0);
    }
    if (rank >= r0) { /* Q Q^T G = G */
        double *ref = malloc((size_t)(M * N) * sizeof(double));
        for (int64_t i = 0; i < M * N; i++) ref[i] = G0[i];
        float *rec = calloc((size_t)(M * N), sizeof(float));
        for (int64_t a = 0; a < rank; a++)
            for (int64_t j = 0; j < N; j++) {
                double c = 0;
                for (int64_t i = 0; i < M; i++) c += (double)q[i * rank + a] * G0[i * N + j];
                for (int64_t i = 0; i < M; i++) rec[i * N + j] += (float)(c * q[i * rank + a]);
            }
        ct_assert_close(rec, ref, M * N, 1e-4, 0, "Q Q^T G");
        free(ref);
        free(rec);
    }
    free(U);
    free(V);
    free(G0);
    ct_free(be, &G);
    ct_free(be, &P);
    ct_free(be, &Q);
    be->ops->destroy(be);
}

Test(cpu_proj, svd_top_wide_and_tall) {
    check_svd(12, 7, 7, 3); /* m > n, full-rank G, top 3 */
    check_svd(7, 12, 7, 3); /* m < n */
    check_svd(12, 7, 3, 3); /* rank-3 G: reconstruction */
    check_svd(7, 12, 3, 3);
    check_svd(9, 6, 6, 6); /* rank = min(m, n) */
    check_svd(1, 5, 1, 1); /* one row */
    check_svd(5, 1, 1, 1); /* one column */
    check_svd(40, 33, 20, 8);
}

Test(cpu_proj, svd_top_non_finite_fails) {
    Backend *be = ct_backend(1);
    Tensor G = CT_F32(be, 4, 3), P = CT_F32(be, 2, 3);
    be->ops->fill(be, &G, 1.0f);
    ct_f(&G)[5] = NAN;
    OwError err;
    cr_assert(be->ops->svd_top(be, &P, &G, 2, 1, &err) == -1);
    cr_assert(strstr(err.msg, "NaN") != NULL, "%s", err.msg);
    ct_free(be, &G);
    ct_free(be, &P);
    be->ops->destroy(be);
}

static void check_orthonormalize(int64_t m, int64_t k) {
    Backend *be = ct_backend(2);
    Rng rng;
    rng_init(&rng, (uint64_t)(m * 100 + k), 9);
    Tensor A = CT_F32(be, m, k);
    ct_randn(&rng, &A, 3.0);
    float *A0 = malloc((size_t)(m * k) * sizeof(float));
    memcpy(A0, A.data, (size_t)(m * k) * sizeof(float));
    OwError err;
    cr_assert(be->ops->orthonormalize(be, &A, &err) == 0, "%s", err.msg);
    const float *q = ct_f(&A);
    for (int64_t a = 0; a < k; a++)
        for (int64_t b = 0; b < k; b++) {
            double d = 0;
            for (int64_t i = 0; i < m; i++) d += (double)q[i * k + a] * q[i * k + b];
            cr_assert(fabs(d - (a == b)) < 1e-5, "Q^T Q [%lld,%lld] = %g", (long long)a, (long long)b, d);
        }
    /* same span: Q Q^T A0 = A0 */
    double *ref = malloc((size_t)(m * k) * sizeof(double));
    float *rec = calloc((size_t)(m * k), sizeof(float));
    for (int64_t i = 0; i < m * k; i++) ref[i] = A0[i];
    for (int64_t a = 0; a < k; a++)
        for (int64_t j = 0; j < k; j++) {
            double c = 0;
            for (int64_t i = 0; i < m; i++) c += (double)q[i * k + a] * A0[i * k + j];
            for (int64_t i = 0; i < m; i++) rec[i * k + j] += (float)(c * q[i * k + a]);
        }
    ct_assert_close(rec, ref, m * k, 1e-4, 1e-5, "Q Q^T A");
    /* thin QR is unique up to column signs: Gram-Schmidt of A0 gives +-Q column by column */
    double *gs = malloc((size_t)(m * k) * sizeof(double));
    for (int64_t i = 0; i < m * k; i++) gs[i] = A0[i];
    ts_gram_schmidt(gs, m, k, k, 1);
    for (int64_t j = 0; j < k; j++) {
        double d = 0;
        for (int64_t i = 0; i < m; i++) d += gs[i * k + j] * q[i * k + j];
        cr_assert(fabs(fabs(d) - 1.0) < 1e-4, "column %lld: |<gs, q>| = %g", (long long)j, d);
    }
    free(A0);
    free(ref);
    free(rec);
    free(gs);
    ct_free(be, &A);
    be->ops->destroy(be);
}

Test(cpu_proj, orthonormalize) {
    check_orthonormalize(9, 4);
    check_orthonormalize(5, 5);
    check_orthonormalize(3, 1);
    check_orthonormalize(64, 17);
}

Test(cpu_proj, canonicalize_signs_rows_and_cols) {
    Backend *be = ct_backend(2);
    Tensor P = CT_F32(be, 3, 2);
    const float in[6] = {0.5f, -0.5f, -0.5f, 0.5f, 1.0f, -3.0f};
    memcpy(P.data, in, sizeof in);
    be->ops->canonicalize_signs(be, &P, 1);
    /* row 0: tie, first entry positive: kept; row 1: tie, first negative: flipped; row 2: -3 largest: flipped */
    const float want_rows[6] = {0.5f, -0.5f, 0.5f, -0.5f, -1.0f, 3.0f};
    cr_assert(memcmp(P.data, want_rows, sizeof want_rows) == 0);
    memcpy(P.data, in, sizeof in);
    be->ops->canonicalize_signs(be, &P, 0);
    /* column 0 = (0.5, -0.5, 1): kept; column 1 = (-0.5, 0.5, -3): flipped */
    const float want_cols[6] = {0.5f, 0.5f, -0.5f, -0.5f, 1.0f, 3.0f};
    cr_assert(memcmp(P.data, want_cols, sizeof want_cols) == 0);
    ct_free(be, &P);
    be->ops->destroy(be);
}

Test(cpu_proj, fill_normal) {
    Backend *be = ct_backend(2), *b1 = ct_backend(1);
    int64_t n = 200000;
    Tensor t = CT_F32(be, 400, 500), t2 = CT_F32(be, n), small = CT_F32(be, 10);
    be->ops->fill_normal(be, &t, 1234, 2.0f);
    double s = 0, ss = 0;
    int64_t within = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = ct_f(&t)[i];
        cr_assert(isfinite(x));
        s += x;
        ss += x * x;
        within += fabs(x) < 2.0;
    }
    double mean = s / (double)n, var = ss / (double)n - mean * mean;
    cr_assert(fabs(mean) < 0.03, "mean %g", mean);         /* sd of the mean: 2/sqrt(n) = 0.0045 */
    cr_assert(fabs(var - 4.0) < 0.07, "variance %g", var); /* sd of the variance: 4 sqrt(2/n) = 0.013 */
    cr_assert(fabs((double)within / (double)n - 0.682689) < 0.006, "fraction within 1 sd: %g", (double)within / n);

    /* reproducible: same seed (another thread count, another shape) gives the same bits; prefix property */
    b1->ops->fill_normal(b1, &t2, 1234, 2.0f);
    cr_assert(memcmp(t.data, t2.data, (size_t)n * sizeof(float)) == 0);
    be->ops->fill_normal(be, &small, 1234, 2.0f);
    cr_assert(memcmp(t.data, small.data, 10 * sizeof(float)) == 0);
    be->ops->fill_normal(be, &t2, 1235, 2.0f);
    cr_assert(memcmp(t.data, t2.data, 10 * sizeof(float)) != 0, "another seed gives other numbers");

    /* the documented formula, recomputed here */
    for (int64_t i = 0; i < 1000; i++) {
        Philox4 r = philox4x32_10(1234, (uint64_t)i, 0);
        float u1 = ((float)(r.v[0] >> 8) + 1.0f) / 16777216.0f;
        float u2 = (float)(r.v[1] >> 8) / 16777216.0f;
        float z = sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
        cr_assert(ct_f(&t)[i] == 2.0f * z, "element %lld", (long long)i);
    }
    ct_free(be, &t);
    ct_free(be, &t2);
    ct_free(be, &small);
    be->ops->destroy(be);
    b1->ops->destroy(b1);
}
