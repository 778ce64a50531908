/* test_cpu_ops.c: the CPU backend's memory ops (accounting, cap, alignment,
 * zeroing), dtype conversions of upload/download/copy, fill, dense algebra
 * (matmul in all transpose combinations, axpy, scale, sum, sum_squares) and
 * the OWL statistics, each against naive double loops written here. */
#include "cpu_test_util.h"

#include "core/dtype.h"

#include <stdint.h>
#include <string.h>

/* ---------------- memory ---------------- */

Test(cpu_mem, accounting_and_cap) {
    OwError err;
    Backend *be = backend_create_cpu(1, 1000, &err);
    cr_assert(be != NULL);
    cr_assert_str_eq(be->name, "cpu");
    cr_assert(be->act_dtype == OW_F32 && be->param_dtype == OW_F32);

    Tensor a = tensor_1d(OW_F32, 100); /* 400 B */
    cr_assert(be_alloc(be, &a, MEM_WEIGHTS, "a", &err) == 0, "%s", err.msg);
    cr_assert(((uintptr_t)a.data % 64) == 0, "64-byte alignment");
    for (int i = 0; i < 100; i++) cr_assert(ct_f(&a)[i] == 0.0f, "zeroed");
    Tensor b = tensor_2d(OW_BF16, 10, 10); /* 200 B */
    cr_assert(be_alloc(be, &b, MEM_ACTIVATIONS, "b", &err) == 0, "%s", err.msg);
    cr_assert_eq(be->mem.current[MEM_WEIGHTS], 400);
    cr_assert_eq(be->mem.current[MEM_ACTIVATIONS], 200);
    cr_assert_eq(be->mem.current_total, 600);
    cr_assert_eq(be->mem.peak_total, 600);

    Tensor c = tensor_1d(OW_F32, 101); /* 404 B: 1004 > 1000 */
    cr_assert(be_alloc(be, &c, MEM_OPTIM, "moments of layers.0.mlp", &err) == -1);
    cr_assert(c.data == NULL);
    cr_assert(strstr(err.msg, "memory cap exceeded") != NULL, "message: %s", err.msg);
    cr_assert(strstr(err.msg, "cpu") != NULL, "message names the device: %s", err.msg);
    cr_assert(strstr(err.msg, "moments of layers.0.mlp") != NULL, "message names the buffer: %s", err.msg);
    cr_assert_eq(be->mem.current_total, 600, "a failed alloc is not counted");
    cr_assert_eq(be->mem.current[MEM_OPTIM], 0);

    be_release(be, &b, MEM_ACTIVATIONS);
    cr_assert(b.data == NULL);
    be_release(be, &b, MEM_ACTIVATIONS); /* NULL data: no-op */
    cr_assert_eq(be->mem.current_total, 400);
    cr_assert_eq(be->mem.current[MEM_ACTIVATIONS], 0);
    cr_assert_eq(be->mem.peak[MEM_ACTIVATIONS], 200);

    Tensor d = tensor_1d(OW_F32, 150); /* 600 B: exactly at the cap */
    cr_assert(be_alloc(be, &d, MEM_OPTIM, "d", &err) == 0, "%s", err.msg);
    cr_assert_eq(be->mem.current_total, 1000);
    cr_assert_eq(be->mem.peak_total, 1000);
    cr_assert_eq(be->mem.peak_breakdown[MEM_WEIGHTS], 400);
    cr_assert_eq(be->mem.peak_breakdown[MEM_OPTIM], 600);
    cr_assert_eq(be->mem.peak_breakdown[MEM_ACTIVATIONS], 0);
    cr_assert_eq(be->mem.peak[MEM_ACTIVATIONS], 200);

    Tensor z = tensor_1d(OW_F32, 0); /* empty tensors allocate and count 0 bytes */
    cr_assert(be_alloc(be, &z, MEM_OTHER, "z", &err) == 0, "%s", err.msg);
    cr_assert(z.data != NULL);
    be_release(be, &z, MEM_OTHER);

    be_release(be, &a, MEM_WEIGHTS);
    be_release(be, &d, MEM_OPTIM);
    cr_assert_eq(be->mem.current_total, 0);
    cr_assert_eq(be->mem.peak_total, 1000);
    be->ops->destroy(be);
}

Test(cpu_mem, no_cap) {
    OwError err;
    Backend *be = backend_create_cpu(2, 0, &err);
    Tensor a = tensor_2d(OW_F32, 1024, 1024);
    cr_assert(be_alloc(be, &a, MEM_GRADS, "a", &err) == 0, "%s", err.msg);
    cr_assert_eq(be->mem.current[MEM_GRADS], 4u << 20);
    be_release(be, &a, MEM_GRADS);
    cr_assert_eq(be->mem.current_total, 0);
    be->ops->destroy(be);
}

/* ---------------- conversions ---------------- */

static float f_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

Test(cpu_mem, upload_download_copy_bf16_f32) {
    Backend *be = ct_backend(2);
    /* 1 + 2^-8 is halfway between bf16 1 and 1 + 2^-7: ties to even (1). 1 + 3*2^-8 is halfway between
     * 1 + 2^-7 (odd) and 1 + 2^-6 (even): 1 + 2^-6. A little above the first tie rounds up. */
    const float host[6] = {1.0f, -2.5f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-8f + 0x1p-20f, 1e-3f};
    const float want[5] = {1.0f, -2.5f, 1.0f, 1.0f + 0x1p-6f, 1.0f + 0x1p-7f};

    Tensor tb = ct_tensor(be, OW_BF16, 1, (int64_t[]){6});
    be->ops->upload(be, &tb, host, OW_F32);
    float back[6];
    be->ops->download(be, back, OW_F32, &tb);
    for (int i = 0; i < 5; i++) cr_assert(back[i] == want[i], "bf16 rounding of %d: %.9g vs %.9g", i, back[i], want[i]);
    cr_assert(fabsf(back[5] - 1e-3f) <= 1e-3f * 0x1p-8f, "bf16 of 1e-3: %.9g", back[5]);

    /* upload bf16 host data into an F32 tensor: exact widening (the bits move up by 16) */
    uint16_t hb[3] = {0x3f80, 0xc020, 0x0001};
    Tensor tf = CT_F32(be, 3);
    be->ops->upload(be, &tf, hb, OW_BF16);
    cr_assert(ct_f(&tf)[0] == 1.0f && ct_f(&tf)[1] == -2.5f && ct_f(&tf)[2] == f_from_bits(0x00010000u));
    /* download F32 as bf16 */
    uint16_t hb2[3];
    be->ops->download(be, hb2, OW_BF16, &tf);
    cr_assert(memcmp(hb, hb2, sizeof hb) == 0);

    /* copy F32 -> BF16 -> F32 */
    Tensor src = CT_F32(be, 2, 3);
    memcpy(src.data, host, sizeof host);
    Tensor mid = ct_tensor(be, OW_BF16, 2, (int64_t[]){3, 2}); /* same count, other shape */
    be->ops->copy(be, &mid, &src);
    Tensor dst = CT_F32(be, 6);
    be->ops->copy(be, &dst, &mid);
    for (int i = 0; i < 5; i++) cr_assert(ct_f(&dst)[i] == want[i], "copy rounding of %d", i);
    /* same-dtype copy is exact */
    Tensor dst2 = CT_F32(be, 6);
    be->ops->copy(be, &dst2, &src);
    cr_assert(memcmp(dst2.data, host, sizeof host) == 0);

    /* F16: 1 + 2^-11 ties to 1; 1 + 3*2^-11 ties to 1 + 2^-9 */
    const float h16[2] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f};
    Tensor th = ct_tensor(be, OW_F16, 1, (int64_t[]){2});
    be->ops->upload(be, &th, h16, OW_F32);
    float b16[2];
    be->ops->download(be, b16, OW_F32, &th);
    cr_assert(b16[0] == 1.0f && b16[1] == 1.0f + 0x1p-9f);

    /* I32 copies as is */
    int32_t ids[4] = {7, -100, 0, 123456789}, ids2[4];
    Tensor ti = CT_I32(be, 4);
    be->ops->upload(be, &ti, ids, OW_I32);
    be->ops->download(be, ids2, OW_I32, &ti);
    cr_assert(memcmp(ids, ids2, sizeof ids) == 0);

    Tensor *all[] = {&tb, &tf, &src, &mid, &dst, &dst2, &th, &ti};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ct_free(be, all[i]);
    be->ops->destroy(be);
}

Test(cpu_mem, large_conversion_parallel) {
    /* more than one conversion chunk, with 2 threads */
    Backend *be = ct_backend(2);
    int64_t n = 200003;
    float *host = malloc((size_t)n * sizeof(float));
    Rng r;
    rng_init(&r, 5, 99);
    ct_randn_buf(&r, host, n, 3.0);
    Tensor t = ct_tensor(be, OW_BF16, 1, (int64_t[]){n});
    be->ops->upload(be, &t, host, OW_F32);
    const uint16_t *h = t.data;
    for (int64_t i = 0; i < n; i++) cr_assert(h[i] == f32_to_bf16(host[i]), "element %lld", (long long)i);
    free(host);
    ct_free(be, &t);
    be->ops->destroy(be);
}

Test(cpu_mem, fill) {
    Backend *be = ct_backend(2);
    Tensor f = CT_F32(be, 3, 5);
    be->ops->fill(be, &f, -1.25f);
    for (int i = 0; i < 15; i++) cr_assert(ct_f(&f)[i] == -1.25f);
    Tensor b = ct_tensor(be, OW_BF16, 1, (int64_t[]){7});
    be->ops->fill(be, &b, 3.0f);
    for (int i = 0; i < 7; i++) cr_assert(((uint16_t *)b.data)[i] == 0x4040);
    Tensor i32 = CT_I32(be, 4);
    be->ops->fill(be, &i32, -100.0f);
    for (int i = 0; i < 4; i++) cr_assert(((int32_t *)i32.data)[i] == -100);
    ct_free(be, &f);
    ct_free(be, &b);
    ct_free(be, &i32);
    be->ops->destroy(be);
}

/* ---------------- matmul ---------------- */

/* element (i, j) of op(X) where X is stored row-major with `cols` columns */
static double op_at(const float *x, int64_t cols, int trans, int64_t i, int64_t j) {
    return trans ? (double)x[j * cols + i] : (double)x[i * cols + j];
}

static void check_matmul(Backend *be, int64_t M, int64_t K, int64_t N, int tA, int tB, float alpha, float beta,
                         int nan_c) {
    Rng r;
    rng_init(&r, (uint64_t)(M * 1000 + K * 100 + N * 10 + tA * 2 + tB), 1);
    Tensor A = tA ? CT_F32(be, K, M) : CT_F32(be, M, K);
    Tensor B = tB ? CT_F32(be, N, K) : CT_F32(be, K, N);
    Tensor C = CT_F32(be, M, N);
    ct_randn(&r, &A, 1.0);
    ct_randn(&r, &B, 1.0);
    ct_randn(&r, &C, 1.0);
    if (nan_c)
        for (int64_t i = 0; i < M * N; i++) ct_f(&C)[i] = NAN;
    double *ref = malloc((size_t)(M * N) * sizeof(double));
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0.0;
            for (int64_t k = 0; k < K; k++)
                s += op_at(ct_f(&A), tA ? M : K, tA, i, k) * op_at(ct_f(&B), tB ? K : N, tB, k, j);
            ref[i * N + j] = alpha * s + (beta != 0.0f ? beta * (double)ct_f(&C)[i * N + j] : 0.0);
        }
    be->ops->matmul(be, &C, &A, tA, &B, tB, alpha, beta);
    char what[96];
    snprintf(what, sizeof what, "matmul M%lld K%lld N%lld tA%d tB%d a%g b%g", (long long)M, (long long)K, (long long)N,
             tA, tB, alpha, beta);
    ct_assert_close(ct_f(&C), ref, M * N, 1e-5, 1e-5, what);
    free(ref);
    ct_free(be, &A);
    ct_free(be, &B);
    ct_free(be, &C);
}

Test(cpu_linalg, matmul_all_transposes) {
    Backend *be = ct_backend(2);
    const int64_t shapes[][3] = {{5, 3, 7}, {1, 4, 6},   {6, 4, 1},
                                 {1, 1, 1}, {17, 33, 9}, {1, 300, 70}}; /* M = 1: sgemv */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int tA = 0; tA < 2; tA++)
            for (int tB = 0; tB < 2; tB++) {
                check_matmul(be, shapes[s][0], shapes[s][1], shapes[s][2], tA, tB, 0.7f, -0.3f, 0);
                check_matmul(be, shapes[s][0], shapes[s][1], shapes[s][2], tA, tB, 1.0f, 1.0f, 0);
                check_matmul(be, shapes[s][0], shapes[s][1], shapes[s][2], tA, tB, -2.0f, 0.0f, 1);
            }
    be->ops->destroy(be);
}

Test(cpu_linalg, matmul_higher_rank_as_matrix) {
    /* A [2,3,4] is the matrix [6,4]; C [2,3,5] = A @ B [4,5] */
    Backend *be = ct_backend(1);
    Rng r;
    rng_init(&r, 3, 1);
    Tensor A = CT_F32(be, 2, 3, 4), B = CT_F32(be, 4, 5), C = CT_F32(be, 2, 3, 5);
    ct_randn(&r, &A, 1.0);
    ct_randn(&r, &B, 1.0);
    be->ops->matmul(be, &C, &A, 0, &B, 0, 1.0f, 0.0f);
    double ref[30];
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 5; j++) {
            double s = 0;
            for (int k = 0; k < 4; k++) s += (double)ct_f(&A)[i * 4 + k] * ct_f(&B)[k * 5 + j];
            ref[i * 5 + j] = s;
        }
    ct_assert_close(ct_f(&C), ref, 30, 1e-5, 1e-5, "rank-3 matmul");
    ct_free(be, &A);
    ct_free(be, &B);
    ct_free(be, &C);
    be->ops->destroy(be);
}

typedef struct {
    Backend *be;
    Tensor *A, *B, *C, *G;
} MatmulCtx;

static double matmul_loss(void *p) {
    MatmulCtx *c = p;
    c->be->ops->matmul(c->be, c->C, c->A, 0, c->B, 0, 1.0f, 0.0f);
    return ct_dot(ct_f(c->C), ct_f(c->G), ct_n(c->C));
}

Test(cpu_linalg, matmul_backward_identities_fd) {
    /* L = <G, A @ B>: dA = G @ B^T (transB), dB = A^T @ G (transA), checked by finite differences */
    Backend *be = ct_backend(2);
    Rng r;
    rng_init(&r, 11, 1);
    Tensor A = CT_F32(be, 4, 3), B = CT_F32(be, 3, 5), C = CT_F32(be, 4, 5), G = CT_F32(be, 4, 5);
    Tensor dA = CT_F32(be, 4, 3), dB = CT_F32(be, 3, 5);
    ct_randn(&r, &A, 1.0);
    ct_randn(&r, &B, 1.0);
    ct_randn(&r, &G, 1.0);
    be->ops->matmul(be, &dA, &G, 0, &B, 1, 1.0f, 0.0f);
    be->ops->matmul(be, &dB, &A, 1, &G, 0, 1.0f, 0.0f);
    MatmulCtx ctx = {be, &A, &B, &C, &G};
    double fdA[12], fdB[15];
    ct_fd_grad(matmul_loss, &ctx, ct_f(&A), 12, 1e-2, fdA);
    ct_fd_grad(matmul_loss, &ctx, ct_f(&B), 15, 1e-2, fdB);
    ct_assert_grad(ct_f(&dA), fdA, 12, 1e-3, "dA");
    ct_assert_grad(ct_f(&dB), fdB, 15, 1e-3, "dB");
    Tensor *all[] = {&A, &B, &C, &G, &dA, &dB};
    for (size_t i = 0; i < 6; i++) ct_free(be, all[i]);
    be->ops->destroy(be);
}

/* ---------------- axpy, scale, sum ---------------- */

Test(cpu_linalg, axpy_scale_sum) {
    Backend *be = ct_backend(2);
    Rng r;
    rng_init(&r, 12, 1);
    int64_t n = 1001;
    Tensor x = CT_F32(be, 7, 143), y = CT_F32(be, n);
    ct_randn(&r, &x, 1.0);
    ct_randn(&r, &y, 1.0);
    double ref[1001];
    for (int64_t i = 0; i < n; i++) ref[i] = (double)ct_f(&y)[i] + 0.37 * (double)ct_f(&x)[i];
    be->ops->axpy(be, &y, 0.37f, &x);
    ct_assert_close(ct_f(&y), ref, n, 1e-6, 1e-6, "axpy");
    for (int64_t i = 0; i < n; i++) ref[i] = (double)ct_f(&y)[i] * -1.5;
    be->ops->scale(be, &y, -1.5f);
    ct_assert_close(ct_f(&y), ref, n, 1e-6, 1e-6, "scale");
    double s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) {
        s += ct_f(&y)[i];
        ss += (double)ct_f(&y)[i] * ct_f(&y)[i];
    }
    cr_assert(fabs(be->ops->sum(be, &y) - s) <= 1e-9 * (1 + fabs(s)));
    cr_assert(fabs(be->ops->sum_squares(be, &y) - ss) <= 1e-9 * ss);
    ct_free(be, &x);
    ct_free(be, &y);
    be->ops->destroy(be);
}

Test(cpu_linalg, reductions_deterministic_across_threads) {
    Backend *b1 = ct_backend(1), *b2 = ct_backend(2);
    int64_t n = 300007; /* several reduction chunks */
    Tensor x = CT_F32(b1, n);
    Rng r;
    rng_init(&r, 13, 1);
    ct_randn(&r, &x, 1.0);
    double ref = 0, refsq = 0;
    for (int64_t i = 0; i < n; i++) {
        ref += ct_f(&x)[i];
        refsq += (double)ct_f(&x)[i] * ct_f(&x)[i];
    }
    double s1 = b1->ops->sum(b1, &x), s2 = b2->ops->sum(b2, &x);
    double q1 = b1->ops->sum_squares(b1, &x), q2 = b2->ops->sum_squares(b2, &x);
    cr_assert(s1 == s2 && q1 == q2, "thread count changed a reduction: %.17g %.17g / %.17g %.17g", s1, s2, q1, q2);
    cr_assert(fabs(s1 - ref) <= 1e-8 * (1 + fabs(ref)) && fabs(q1 - refsq) <= 1e-10 * refsq);
    Tensor e = CT_F32(b1, 0);
    cr_assert(b1->ops->sum(b1, &e) == 0.0 && b1->ops->sum_squares(b1, &e) == 0.0);
    ct_free(b1, &x);
    ct_free(b1, &e);
    b1->ops->destroy(b1);
    b2->ops->destroy(b2);
}

/* ---------------- OWL statistics ---------------- */

Test(cpu_owl, col_sumsq_accumulates) {
    Backend *be = ct_backend(2);
    Rng r;
    rng_init(&r, 14, 1);
    int64_t N = 9, C = 131; /* more than one column block, odd */
    Tensor x = CT_F32(be, 3, 3, C), acc = CT_F32(be, C);
    ct_randn(&r, &x, 2.0);
    ct_randn(&r, &acc, 1.0);
    double ref[131];
    for (int64_t c = 0; c < C; c++) {
        double s = 0;
        for (int64_t n = 0; n < N; n++) s += (double)ct_f(&x)[n * C + c] * ct_f(&x)[n * C + c];
        ref[c] = ct_f(&acc)[c] + s;
    }
    be->ops->col_sumsq(be, &acc, &x);
    ct_assert_close(ct_f(&acc), ref, C, 1e-6, 1e-6, "col_sumsq");
    ct_free(be, &x);
    ct_free(be, &acc);
    be->ops->destroy(be);
}

Test(cpu_owl, score_sum_and_count) {
    Backend *be = ct_backend(2);
    Rng r;
    rng_init(&r, 15, 1);
    int64_t M = 37, N = 29;
    Tensor W = CT_F32(be, M, N), cs = CT_F32(be, N);
    ct_randn(&r, &W, 1.0);
    for (int64_t j = 0; j < N; j++) ct_f(&cs)[j] = (float)(0.5 + rng_uniform(&r));
    double sum = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) sum += fabs((double)ct_f(&W)[i * N + j]) * ct_f(&cs)[j];
    cr_assert(fabs(be->ops->score_sum(be, &W, &cs) - sum) <= 1e-12 * sum);
    const double thr[] = {0.0, 0.3, 1.0, 2.5, 100.0};
    for (size_t t = 0; t < 5; t++) {
        int64_t cnt = 0;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                if (fabs((double)ct_f(&W)[i * N + j]) * ct_f(&cs)[j] > thr[t]) cnt++;
        cr_assert_eq(be->ops->score_count(be, &W, &cs, thr[t]), cnt, "threshold %g", thr[t]);
    }
    /* strict '>': a threshold equal to an exact score does not count it */
    ct_f(&W)[5] = 2.0f;
    ct_f(&cs)[5] = 1.5f;
    cr_assert_eq(be->ops->score_count(be, &W, &cs, 3.0) + 1, be->ops->score_count(be, &W, &cs, 2.9999999));
    ct_free(be, &W);
    ct_free(be, &cs);
    be->ops->destroy(be);
}
