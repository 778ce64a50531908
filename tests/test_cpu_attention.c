/* test_cpu_attention.c: the CPU backend's causal grouped-query attention:
 * out and lse against a naive double implementation written here (MHA,
 * GQA with Hq = 2 Hkv and 4 Hkv, T = 1, D = 2, odd D), dq/dk/dv against
 * central finite differences, write (not accumulate) semantics, and
 * results independent of the thread count. */
#include "cpu_test_util.h"

#include <string.h>

typedef struct {
    int64_t B, T, Hq, Hkv, D;
} AttnCfg;

typedef struct {
    Backend *be;
    Tensor *out, *lse, *q, *k, *v, *dout;
} AttnCtx;

static double attn_loss(void *p) {
    AttnCtx *c = p;
    c->be->ops->attention_forward(c->be, c->out, c->lse, c->q, c->k, c->v);
    return ct_dot(ct_f(c->out), ct_f(c->dout), ct_n(c->out));
}

/* naive causal GQA attention in double */
static void attn_ref(const AttnCfg *a, const float *q, const float *k, const float *v, double *out, double *lse) {
    int64_t T = a->T, D = a->D, rep = a->Hq / a->Hkv;
    double scale = 1.0 / sqrt((double)D);
    double *s = malloc((size_t)T * sizeof(double));
    for (int64_t b = 0; b < a->B; b++)
        for (int64_t h = 0; h < a->Hq; h++)
            for (int64_t t = 0; t < T; t++) {
                const float *qr = q + ((b * T + t) * a->Hq + h) * D;
                double mx = -INFINITY;
                for (int64_t j = 0; j <= t; j++) {
                    const float *kr = k + ((b * T + j) * a->Hkv + h / rep) * D;
                    double d = 0;
                    for (int64_t i = 0; i < D; i++) d += (double)qr[i] * kr[i];
                    s[j] = d * scale;
                    mx = s[j] > mx ? s[j] : mx;
                }
                double z = 0;
                for (int64_t j = 0; j <= t; j++) z += exp(s[j] - mx);
                lse[(b * a->Hq + h) * T + t] = mx + log(z);
                double *o = out + ((b * T + t) * a->Hq + h) * D;
                for (int64_t i = 0; i < D; i++) o[i] = 0;
                for (int64_t j = 0; j <= t; j++) {
                    const float *vr = v + ((b * T + j) * a->Hkv + h / rep) * D;
                    double pj = exp(s[j] - mx) / z;
                    for (int64_t i = 0; i < D; i++) o[i] += pj * vr[i];
                }
            }
    free(s);
}

static void check_attention(AttnCfg a) {
    Backend *be = ct_backend(2);
    Rng r;
    rng_init(&r, (uint64_t)(a.B * 10000 + a.T * 1000 + a.Hq * 100 + a.Hkv * 10 + a.D), 6);
    int64_t nq = a.B * a.T * a.Hq * a.D, nk = a.B * a.T * a.Hkv * a.D, nl = a.B * a.Hq * a.T;
    Tensor q = CT_F32(be, a.B, a.T, a.Hq, a.D), k = CT_F32(be, a.B, a.T, a.Hkv, a.D),
           v = CT_F32(be, a.B, a.T, a.Hkv, a.D);
    Tensor out = CT_F32(be, a.B, a.T, a.Hq, a.D), lse = CT_F32(be, a.B, a.Hq, a.T),
           dout = CT_F32(be, a.B, a.T, a.Hq, a.D);
    Tensor dq = CT_F32(be, a.B, a.T, a.Hq, a.D), dk = CT_F32(be, a.B, a.T, a.Hkv, a.D),
           dv = CT_F32(be, a.B, a.T, a.Hkv, a.D);
    ct_randn(&r, &q, 1.0);
    ct_randn(&r, &k, 1.0);
    ct_randn(&r, &v, 1.0);
    ct_randn(&r, &dout, 1.0);
    be->ops->fill(be, &out, NAN);
    be->ops->fill(be, &lse, NAN);

    double *oref = malloc((size_t)nq * sizeof(double)), *lref = malloc((size_t)nl * sizeof(double));
    attn_ref(&a, ct_f(&q), ct_f(&k), ct_f(&v), oref, lref);
    be->ops->attention_forward(be, &out, &lse, &q, &k, &v);
    char what[96];
    snprintf(what, sizeof what, "B%lld T%lld Hq%lld Hkv%lld D%lld", (long long)a.B, (long long)a.T, (long long)a.Hq,
             (long long)a.Hkv, (long long)a.D);
    ct_assert_close(ct_f(&out), oref, nq, 1e-5, 1e-5, what);
    ct_assert_close(ct_f(&lse), lref, nl, 1e-5, 1e-5, what);

    be->ops->fill(be, &dq, NAN); /* the backward writes all three */
    be->ops->fill(be, &dk, NAN);
    be->ops->fill(be, &dv, NAN);
    be->ops->attention_backward(be, &dq, &dk, &dv, &dout, &q, &k, &v, &out, &lse);

    AttnCtx ctx = {be, &out, &lse, &q, &k, &v, &dout};
    double *fdq = malloc((size_t)nq * sizeof(double)), *fdk = malloc((size_t)nk * sizeof(double)),
           *fdv = malloc((size_t)nk * sizeof(double));
    ct_fd_grad(attn_loss, &ctx, ct_f(&q), nq, 1e-2, fdq);
    ct_fd_grad(attn_loss, &ctx, ct_f(&k), nk, 1e-2, fdk);
    ct_fd_grad(attn_loss, &ctx, ct_f(&v), nk, 1e-2, fdv);
    ct_assert_grad(ct_f(&dq), fdq, nq, 3e-3, "attention dq");
    ct_assert_grad(ct_f(&dk), fdk, nk, 3e-3, "attention dk");
    ct_assert_grad(ct_f(&dv), fdv, nk, 3e-3, "attention dv");

    /* the same numbers with one thread, bit for bit */
    Backend *b1 = ct_backend(1);
    Tensor out1 = CT_F32(b1, a.B, a.T, a.Hq, a.D), lse1 = CT_F32(b1, a.B, a.Hq, a.T);
    Tensor dq1 = CT_F32(b1, a.B, a.T, a.Hq, a.D), dk1 = CT_F32(b1, a.B, a.T, a.Hkv, a.D),
           dv1 = CT_F32(b1, a.B, a.T, a.Hkv, a.D);
    be->ops->attention_forward(be, &out, &lse, &q, &k, &v);
    be->ops->attention_backward(be, &dq, &dk, &dv, &dout, &q, &k, &v, &out, &lse);
    b1->ops->attention_forward(b1, &out1, &lse1, &q, &k, &v);
    b1->ops->attention_backward(b1, &dq1, &dk1, &dv1, &dout, &q, &k, &v, &out1, &lse1);
    cr_assert(memcmp(out.data, out1.data, (size_t)nq * 4) == 0 && memcmp(lse.data, lse1.data, (size_t)nl * 4) == 0);
    cr_assert(memcmp(dq.data, dq1.data, (size_t)nq * 4) == 0 && memcmp(dk.data, dk1.data, (size_t)nk * 4) == 0 &&
              memcmp(dv.data, dv1.data, (size_t)nk * 4) == 0);
    Tensor *t1[] = {&out1, &lse1, &dq1, &dk1, &dv1};
    for (size_t i = 0; i < 5; i++) ct_free(b1, t1[i]);
    b1->ops->destroy(b1);

    free(oref);
    free(lref);
    free(fdq);
    free(fdk);
    free(fdv);
    Tensor *all[] = {&q, &k, &v, &out, &lse, &dout, &dq, &dk, &dv};
    for (size_t i = 0; i < 9; i++) ct_free(be, all[i]);
    be->ops->destroy(be);
}

Test(cpu_attention, mha) { check_attention((AttnCfg){2, 3, 2, 2, 4}); }
Test(cpu_attention, gqa_4x_d2) { check_attention((AttnCfg){1, 5, 4, 1, 2}); }
Test(cpu_attention, gqa_2x) { check_attention((AttnCfg){2, 4, 4, 2, 8}); }
Test(cpu_attention, t1) { check_attention((AttnCfg){2, 1, 2, 1, 3}); }
Test(cpu_attention, odd_d_longer) { check_attention((AttnCfg){1, 9, 3, 3, 5}); }

Test(cpu_attention, first_position_copies_v) {
    /* causal: position 0 attends only to itself, so out[0] = v[0] and lse = its score */
    Backend *be = ct_backend(1);
    Rng r;
    rng_init(&r, 61, 1);
    Tensor q = CT_F32(be, 1, 3, 2, 4), k = CT_F32(be, 1, 3, 1, 4), v = CT_F32(be, 1, 3, 1, 4);
    Tensor out = CT_F32(be, 1, 3, 2, 4), lse = CT_F32(be, 1, 2, 3);
    ct_randn(&r, &q, 1.0);
    ct_randn(&r, &k, 1.0);
    ct_randn(&r, &v, 1.0);
    be->ops->attention_forward(be, &out, &lse, &q, &k, &v);
    for (int h = 0; h < 2; h++) {
        for (int i = 0; i < 4; i++) cr_assert(fabsf(ct_f(&out)[h * 4 + i] - ct_f(&v)[i]) < 1e-6f);
        double s = ct_dot(ct_f(&q) + h * 4, ct_f(&k), 4) / 2.0;
        cr_assert(fabs(ct_f(&lse)[h * 3] - s) < 1e-5);
    }
    Tensor *all[] = {&q, &k, &v, &out, &lse};
    for (size_t i = 0; i < 5; i++) ct_free(be, all[i]);
    be->ops->destroy(be);
}

/* attention_decode of the last n queries against T keys gives the forward's rows for those positions, bit for bit
 * (B = 1), for every n, GQA included. */
Test(cpu_attention, decode_equals_the_forward_rows) {
    Backend *be = ct_backend(2);
    Rng r;
    rng_init(&r, 62, 1);
    const int64_t T = 11, Hq = 6, Hkv = 2, D = 5;
    Tensor q = CT_F32(be, 1, T, Hq, D), k = CT_F32(be, 1, T, Hkv, D), v = CT_F32(be, 1, T, Hkv, D);
    Tensor out = CT_F32(be, 1, T, Hq, D), lse = CT_F32(be, 1, Hq, T);
    ct_randn(&r, &q, 1.5);
    ct_randn(&r, &k, 1.5);
    ct_randn(&r, &v, 1.0);
    be->ops->attention_forward(be, &out, &lse, &q, &k, &v);
    Tensor k3 = tensor_reshape(&k, 3, (int64_t[]){T, Hkv, D}), v3 = tensor_reshape(&v, 3, (int64_t[]){T, Hkv, D});
    for (int64_t n = 1; n <= T; n++) {
        Tensor dec = CT_F32(be, n, Hq, D);
        be->ops->fill(be, &dec, NAN);
        Tensor q2 = tensor_reshape(&q, 2, (int64_t[]){T, Hq * D}), qr = tensor_row_slice(&q2, T - n, n);
        Tensor qn = tensor_reshape(&qr, 3, (int64_t[]){n, Hq, D});
        be->ops->attention_decode(be, &dec, &qn, &k3, &v3);
        cr_expect(memcmp(dec.data, ct_f(&out) + (T - n) * Hq * D, (size_t)(n * Hq * D) * sizeof(float)) == 0,
                  "the last %lld rows differ from the forward's", (long long)n);
        ct_free(be, &dec);
    }
    Tensor *all[] = {&q, &k, &v, &out, &lse};
    for (size_t i = 0; i < 5; i++) ct_free(be, all[i]);
    be->ops->destroy(be);
}
