/* test_cpu_layers.c: the CPU backend's embedding, RMSNorm, rotary embedding,
 * SwiGLU and cross-entropy: forwards against naive double loops written
 * here, backwards against central finite differences, and the accumulate
 * (+=) versus write (=) semantics of each backward. */
#include "cpu_test_util.h"

#include <signal.h>
#include <string.h>

/* ---------------- embedding ---------------- */

typedef struct {
    Backend *be;
    Tensor *out, *ids, *table, *dout;
} EmbCtx;

static double emb_loss(void *p) {
    EmbCtx *c = p;
    c->be->ops->embedding_forward(c->be, c->out, c->ids, c->table);
    return ct_dot(ct_f(c->out), ct_f(c->dout), ct_n(c->out));
}

Test(cpu_layers, embedding_forward_backward) {
    Backend *be = ct_backend(2);
    Rng r;
    rng_init(&r, 21, 1);
    int64_t V = 7, C = 67, N = 6; /* C spans two column blocks */
    const int32_t idv[6] = {3, 0, 6, 3, 3, 1};
    Tensor table = CT_F32(be, V, C), ids = CT_I32(be, 2, 3), out = CT_F32(be, 2, 3, C), dout = CT_F32(be, 2, 3, C);
    Tensor dtable = CT_F32(be, V, C);
    memcpy(ids.data, idv, sizeof idv);
    ct_randn(&r, &table, 1.0);
    ct_randn(&r, &dout, 1.0);
    ct_randn(&r, &dtable, 1.0);
    be->ops->embedding_forward(be, &out, &ids, &table);
    for (int64_t n = 0; n < N; n++)
        cr_assert(memcmp(ct_f(&out) + n * C, ct_f(&table) + idv[n] * C, (size_t)C * sizeof(float)) == 0, "row %lld",
                  (long long)n);

    double *ref = malloc((size_t)(V * C) * sizeof(double));
    for (int64_t i = 0; i < V * C; i++) ref[i] = ct_f(&dtable)[i];
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) ref[idv[n] * C + c] += ct_f(&dout)[n * C + c];
    float *before = malloc((size_t)(V * C) * sizeof(float));
    memcpy(before, dtable.data, (size_t)(V * C) * sizeof(float));
    be->ops->embedding_backward(be, &dtable, &ids, &dout);
    ct_assert_close(ct_f(&dtable), ref, V * C, 1e-6, 1e-6, "dtable (accumulated)");

    /* finite differences of L = <dout, embedding(table)> give the increment */
    double *fd = malloc((size_t)(V * C) * sizeof(double));
    float *inc = malloc((size_t)(V * C) * sizeof(float));
    for (int64_t i = 0; i < V * C; i++) inc[i] = ct_f(&dtable)[i] - before[i];
    EmbCtx ctx = {be, &out, &ids, &table, &dout};
    ct_fd_grad(emb_loss, &ctx, ct_f(&table), V * C, 1e-2, fd);
    ct_assert_grad(inc, fd, V * C, 1e-3, "dtable vs finite differences");
    /* row 2, 4, 5 are never looked up: unchanged */
    for (int64_t c = 0; c < C; c++) cr_assert(ct_f(&dtable)[5 * C + c] == before[5 * C + c]);
    free(ref);
    free(before);
    free(fd);
    free(inc);
    Tensor *all[] = {&table, &ids, &out, &dout, &dtable};
    for (size_t i = 0; i < 5; i++) ct_free(be, all[i]);
    be->ops->destroy(be);
}

Test(cpu_layers, embedding_bad_id_aborts, .signal = SIGABRT) {
    Backend *be = ct_backend(1);
    Tensor table = CT_F32(be, 4, 3), ids = CT_I32(be, 2), out = CT_F32(be, 2, 3);
    ((int32_t *)ids.data)[1] = 4;
    be->ops->embedding_forward(be, &out, &ids, &table);
}

/* ---------------- rmsnorm ---------------- */

typedef struct {
    Backend *be;
    Tensor *out, *rstd, *x, *w, *dout;
    float eps;
} NormCtx;

static double norm_loss(void *p) {
    NormCtx *c = p;
    c->be->ops->rmsnorm_forward(c->be, c->out, c->rstd, c->x, c->w, c->eps);
    return ct_dot(ct_f(c->out), ct_f(c->dout), ct_n(c->out));
}

static void check_rmsnorm(int64_t N, int64_t C, float eps) {
    Backend *be = ct_backend(2);
    Rng r;
    rng_init(&r, (uint64_t)(N * 100 + C), 2);
    Tensor x = CT_F32(be, N, C), w = CT_F32(be, C), out = CT_F32(be, N, C), rstd = CT_F32(be, N);
    Tensor dout = CT_F32(be, N, C), dx = CT_F32(be, N, C), dw = CT_F32(be, C), dx2 = CT_F32(be, N, C);
    ct_randn(&r, &x, 1.5);
    for (int64_t c = 0; c < C; c++) ct_f(&w)[c] = (float)(1.0 + 0.5 * rng_normal(&r));
    ct_randn(&r, &dout, 1.0);
    ct_randn(&r, &dx, 1.0);
    ct_randn(&r, &dw, 1.0);
    be->ops->rmsnorm_forward(be, &out, &rstd, &x, &w, eps);
    double *ref = malloc((size_t)(N * C) * sizeof(double)), *rref = malloc((size_t)N * sizeof(double));
    for (int64_t n = 0; n < N; n++) {
        double ms = 0;
        for (int64_t c = 0; c < C; c++) ms += (double)ct_f(&x)[n * C + c] * ct_f(&x)[n * C + c];
        rref[n] = 1.0 / sqrt(ms / (double)C + eps);
        for (int64_t c = 0; c < C; c++) ref[n * C + c] = ct_f(&x)[n * C + c] * rref[n] * ct_f(&w)[c];
    }
    ct_assert_close(ct_f(&out), ref, N * C, 1e-6, 1e-5, "rmsnorm out");
    ct_assert_close(ct_f(&rstd), rref, N, 0, 1e-6, "rmsnorm rstd");

    float *dx0 = malloc((size_t)(N * C) * sizeof(float)), *dw0 = malloc((size_t)C * sizeof(float));
    memcpy(dx0, dx.data, (size_t)(N * C) * sizeof(float));
    memcpy(dw0, dw.data, (size_t)C * sizeof(float));
    be->ops->rmsnorm_backward(be, &dx, &dw, &dout, &x, &w, &rstd);
    float *gx = malloc((size_t)(N * C) * sizeof(float)), *gw = malloc((size_t)C * sizeof(float));
    for (int64_t i = 0; i < N * C; i++) gx[i] = ct_f(&dx)[i] - dx0[i];
    for (int64_t i = 0; i < C; i++) gw[i] = ct_f(&dw)[i] - dw0[i];

    NormCtx ctx = {be, &out, &rstd, &x, &w, &dout, eps};
    double *fdx = malloc((size_t)(N * C) * sizeof(double)), *fdw = malloc((size_t)C * sizeof(double));
    ct_fd_grad(norm_loss, &ctx, ct_f(&x), N * C, 1e-3, fdx);
    ct_fd_grad(norm_loss, &ctx, ct_f(&w), C, 1e-3, fdw);
    char what[64];
    snprintf(what, sizeof what, "rmsnorm N%lld C%lld dx", (long long)N, (long long)C);
    ct_assert_grad(gx, fdx, N * C, 5e-3, what);
    snprintf(what, sizeof what, "rmsnorm N%lld C%lld dw", (long long)N, (long long)C);
    ct_assert_grad(gw, fdw, C, 5e-3, what);

    /* dw NULL: dx accumulates the same */
    be->ops->rmsnorm_forward(be, &out, &rstd, &x, &w, eps);
    be->ops->rmsnorm_backward(be, &dx2, NULL, &dout, &x, &w, &rstd);
    ct_assert_close_ff(ct_f(&dx2), gx, N * C, 1e-6, 1e-5, "dx without dw");
    free(ref);
    free(rref);
    free(dx0);
    free(dw0);
    free(gx);
    free(gw);
    free(fdx);
    free(fdw);
    Tensor *all[] = {&x, &w, &out, &rstd, &dout, &dx, &dw, &dx2};
    for (size_t i = 0; i < 8; i++) ct_free(be, all[i]);
    be->ops->destroy(be);
}

Test(cpu_layers, rmsnorm) {
    check_rmsnorm(5, 7, 1e-5f);
    check_rmsnorm(1, 3, 1e-6f);
    check_rmsnorm(3, 1, 0.5f);    /* C = 1: out ~ w sign(x) unless eps is large enough to give a slope */
    check_rmsnorm(4, 130, 1e-5f); /* several dw column blocks */
}

/* ---------------- rope ---------------- */

static void rope_tables(Rng *r, Tensor *cs, Tensor *sn, int unit) {
    for (int64_t i = 0; i < ct_n(cs); i++) {
        if (unit) {
            double a = 6.283185307179586 * rng_uniform(r);
            ct_f(cs)[i] = (float)cos(a);
            ct_f(sn)[i] = (float)sin(a);
        } else { /* arbitrary values: the adjoint identity holds for any tables */
            ct_f(cs)[i] = (float)rng_normal(r);
            ct_f(sn)[i] = (float)rng_normal(r);
        }
    }
}

static void check_rope(int64_t B, int64_t T, int64_t H, int64_t D, int64_t Tmax) {
    Backend *be = ct_backend(2);
    Rng r;
    rng_init(&r, (uint64_t)(B * 1000 + T * 100 + H * 10 + D), 3);
    int64_t half = D / 2, n = B * T * H * D;
    Tensor x = CT_F32(be, B, T, H, D), y = CT_F32(be, B, T, H, D), cs = CT_F32(be, Tmax, half),
           sn = CT_F32(be, Tmax, half);
    ct_randn(&r, &x, 1.0);
    ct_randn(&r, &y, 1.0);
    rope_tables(&r, &cs, &sn, 0);
    float *x0 = malloc((size_t)n * sizeof(float)), *y0 = malloc((size_t)n * sizeof(float));
    memcpy(x0, x.data, (size_t)n * sizeof(float));
    memcpy(y0, y.data, (size_t)n * sizeof(float));

    /* forward against the formula: position t is the index along dim 1 */
    double *ref = malloc((size_t)n * sizeof(double));
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < H; h++) {
                const float *xr = x0 + ((b * T + t) * H + h) * D;
                double *o = ref + ((b * T + t) * H + h) * D;
                for (int64_t i = 0; i < half; i++) {
                    double c = ct_f(&cs)[t * half + i], s = ct_f(&sn)[t * half + i];
                    o[i] = xr[i] * c - xr[i + half] * s;
                    o[i + half] = xr[i + half] * c + xr[i] * s;
                }
            }
    be->ops->rope(be, &x, &cs, &sn, 0);
    ct_assert_close(ct_f(&x), ref, n, 1e-6, 1e-5, "rope forward");

    /* adjoint: <rope(x), y> = <x, rope_inverse(y)> */
    be->ops->rope(be, &y, &cs, &sn, 1);
    double lhs = ct_dot(ct_f(&x), y0, n), rhs = ct_dot(x0, ct_f(&y), n);
    cr_assert(fabs(lhs - rhs) <= 1e-5 * (1 + fabs(lhs)), "rope adjoint: %.9g vs %.9g", lhs, rhs);

    /* with unit-circle tables the inverse undoes the forward */
    rope_tables(&r, &cs, &sn, 1);
    memcpy(x.data, x0, (size_t)n * sizeof(float));
    be->ops->rope(be, &x, &cs, &sn, 0);
    be->ops->rope(be, &x, &cs, &sn, 1);
    ct_assert_close_ff(ct_f(&x), x0, n, 1e-6, 1e-5, "rope inverse(forward)");
    free(x0);
    free(y0);
    free(ref);
    Tensor *all[] = {&x, &y, &cs, &sn};
    for (size_t i = 0; i < 4; i++) ct_free(be, all[i]);
    be->ops->destroy(be);
}

Test(cpu_layers, rope) {
    check_rope(2, 3, 2, 4, 5);
    check_rope(1, 1, 1, 2, 1);
    check_rope(2, 5, 3, 2, 8);
    check_rope(1, 4, 2, 10, 4);
}

/* ---------------- swiglu ---------------- */

typedef struct {
    Backend *be;
    Tensor *out, *g, *u, *dout;
} SwiCtx;

static double swi_loss(void *p) {
    SwiCtx *c = p;
    c->be->ops->swiglu_forward(c->be, c->out, c->g, c->u);
    return ct_dot(ct_f(c->out), ct_f(c->dout), ct_n(c->out));
}

Test(cpu_layers, swiglu) {
    Backend *be = ct_backend(2);
    Rng r;
    rng_init(&r, 41, 1);
    int64_t n = 3 * 11;
    Tensor g = CT_F32(be, 3, 11), u = CT_F32(be, 3, 11), out = CT_F32(be, 3, 11), dout = CT_F32(be, 3, 11);
    Tensor dg = CT_F32(be, 3, 11), du = CT_F32(be, 3, 11);
    ct_randn(&r, &g, 2.0);
    ct_randn(&r, &u, 1.0);
    ct_randn(&r, &dout, 1.0);
    ct_f(&g)[0] = 30.0f;
    ct_f(&g)[1] = -30.0f;
    ct_f(&g)[2] = 0.0f;
    double ref[33];
    for (int64_t i = 0; i < n; i++) {
        double gi = ct_f(&g)[i];
        ref[i] = gi / (1.0 + exp(-gi)) * ct_f(&u)[i];
    }
    be->ops->swiglu_forward(be, &out, &g, &u);
    ct_assert_close(ct_f(&out), ref, n, 1e-6, 1e-5, "swiglu out");

    be->ops->fill(be, &dg, NAN); /* writes, does not accumulate */
    be->ops->fill(be, &du, NAN);
    be->ops->swiglu_backward(be, &dg, &du, &dout, &g, &u);
    SwiCtx ctx = {be, &out, &g, &u, &dout};
    double fdg[33], fdu[33];
    ct_fd_grad(swi_loss, &ctx, ct_f(&g), n, 1e-3, fdg);
    ct_fd_grad(swi_loss, &ctx, ct_f(&u), n, 1e-3, fdu);
    ct_assert_grad(ct_f(&dg), fdg, n, 2e-3, "swiglu dgate");
    ct_assert_grad(ct_f(&du), fdu, n, 2e-3, "swiglu dup");
    Tensor *all[] = {&g, &u, &out, &dout, &dg, &du};
    for (size_t i = 0; i < 6; i++) ct_free(be, all[i]);
    be->ops->destroy(be);
}

/* ---------------- cross entropy ---------------- */

typedef struct {
    Backend *be;
    Tensor *logits, *work, *losses, *targets;
} CeCtx;

static double ce_loss(void *p) {
    CeCtx *c = p;
    c->be->ops->copy(c->be, c->work, c->logits);
    c->be->ops->cross_entropy(c->be, c->work, c->losses, c->targets, 1.0f, 0);
    double s = 0;
    for (int64_t i = 0; i < ct_n(c->losses); i++) s += ct_f(c->losses)[i];
    return s;
}

static void check_ce(int64_t N, int64_t V, float offset) {
    Backend *be = ct_backend(2);
    Rng r;
    rng_init(&r, (uint64_t)(N * 1000 + V), 5);
    Tensor logits = CT_F32(be, N, V), work = CT_F32(be, N, V), losses = CT_F32(be, N), targets = CT_I32(be, N);
    ct_randn(&r, &logits, 2.0);
    for (int64_t i = 0; i < N * V; i++) ct_f(&logits)[i] += offset;
    int32_t *tg = targets.data;
    for (int64_t n = 0; n < N; n++) tg[n] = (int32_t)rng_below(&r, (uint64_t)V);
    if (N > 2) tg[1] = -100;

    double *lref = malloc((size_t)N * sizeof(double)), *gref = malloc((size_t)(N * V) * sizeof(double));
    for (int64_t n = 0; n < N; n++) {
        const float *x = ct_f(&logits) + n * V;
        double mx = -INFINITY, s = 0;
        for (int64_t i = 0; i < V; i++) mx = x[i] > mx ? x[i] : mx;
        for (int64_t i = 0; i < V; i++) s += exp(x[i] - mx);
        double lse = mx + log(s);
        lref[n] = tg[n] == -100 ? 0.0 : lse - x[tg[n]];
        for (int64_t i = 0; i < V; i++)
            gref[n * V + i] = tg[n] == -100 ? 0.0 : 0.5 * (exp(x[i] - lse) - (i == tg[n] ? 1.0 : 0.0));
    }
    /* without grad: logits untouched */
    be->ops->copy(be, &work, &logits);
    be->ops->fill(be, &losses, NAN);
    be->ops->cross_entropy(be, &work, &losses, &targets, 0.5f, 0);
    ct_assert_close(ct_f(&losses), lref, N, 1e-5, 1e-5, "ce losses");
    cr_assert(memcmp(work.data, logits.data, (size_t)(N * V) * sizeof(float)) == 0);
    /* with grad (grad_scale 0.5) */
    be->ops->cross_entropy(be, &work, &losses, &targets, 0.5f, 1);
    ct_assert_close(ct_f(&losses), lref, N, 1e-5, 1e-5, "ce losses (grad)");
    ct_assert_close(ct_f(&work), gref, N * V, 1e-7, 1e-5, "ce grad");
    /* against finite differences of the summed loss (grad_scale 1) */
    be->ops->copy(be, &work, &logits);
    be->ops->cross_entropy(be, &work, &losses, &targets, 1.0f, 1);
    float *g1 = malloc((size_t)(N * V) * sizeof(float));
    memcpy(g1, work.data, (size_t)(N * V) * sizeof(float));
    double *fd = malloc((size_t)(N * V) * sizeof(double));
    CeCtx ctx = {be, &logits, &work, &losses, &targets};
    ct_fd_grad(ce_loss, &ctx, ct_f(&logits), N * V, offset != 0.0f ? 2e-5 : 1e-2, fd);
    ct_assert_grad(g1, fd, N * V, offset != 0.0f ? 5e-3 : 3e-3, "ce grad vs finite differences");
    free(lref);
    free(gref);
    free(g1);
    free(fd);
    Tensor *all[] = {&logits, &work, &losses, &targets};
    for (size_t i = 0; i < 4; i++) ct_free(be, all[i]);
    be->ops->destroy(be);
}

Test(cpu_layers, cross_entropy) {
    check_ce(5, 11, 0.0f);
    check_ce(1, 1, 0.0f);
    check_ce(4, 300, 0.0f);
    check_ce(3, 7, 1000.0f); /* stable with large logits */
}

Test(cpu_layers, cross_entropy_all_ignored) {
    Backend *be = ct_backend(1);
    Tensor logits = CT_F32(be, 2, 3), losses = CT_F32(be, 2), targets = CT_I32(be, 2);
    be->ops->fill(be, &logits, 1.0f);
    be->ops->fill(be, &targets, -100.0f);
    be->ops->fill(be, &losses, 5.0f);
    be->ops->cross_entropy(be, &logits, &losses, &targets, 1.0f, 1);
    for (int i = 0; i < 6; i++) cr_assert(ct_f(&logits)[i] == 0.0f);
    cr_assert(ct_f(&losses)[0] == 0.0f && ct_f(&losses)[1] == 0.0f);
    ct_free(be, &logits);
    ct_free(be, &losses);
    ct_free(be, &targets);
    be->ops->destroy(be);
}

Test(cpu_layers, cross_entropy_bad_target_aborts, .signal = SIGABRT) {
    Backend *be = ct_backend(1);
    Tensor logits = CT_F32(be, 2, 3), losses = CT_F32(be, 2), targets = CT_I32(be, 2);
    ((int32_t *)targets.data)[0] = 3;
    be->ops->cross_entropy(be, &logits, &losses, &targets, 1.0f, 0);
}
