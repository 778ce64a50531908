/* profile.c: see profile.h. */
#include "backend/profile.h"

#include "core/log.h"

#include <stdlib.h>
#include <string.h>

#define PROF_ROWS 256

typedef struct {
    char name[96];
    double seconds, flops;
    int64_t calls;
} ProfRow;

typedef struct BackendProfile {
    Backend orig; /* the backend's own ops */
    ProfRow rows[PROF_ROWS];
    int nrows;
} BackendProfile;

static BackendProfile *prof(Backend *be) { return (BackendProfile *)be->profile; }

static void add(Backend *be, const char *name, double t0, double flops) {
    BackendProfile *p = prof(be);
    p->orig.sync(be);
    double dt = ow_now() - t0;
    int i = 0;
    while (i < p->nrows && strcmp(p->rows[i].name, name) != 0) i++;
    if (i == p->nrows) {
        if (p->nrows == PROF_ROWS)
            i = PROF_ROWS - 1; /* overflow lands in the last row */
        else
            snprintf(p->rows[p->nrows++].name, sizeof p->rows[0].name, "%s", name);
    }
    p->rows[i].seconds += dt;
    p->rows[i].flops += flops;
    p->rows[i].calls++;
}

static double start(Backend *be) {
    prof(be)->orig.sync(be);
    return ow_now();
}

static void p_matmul(Backend *be, Tensor *C, const Tensor *A, int tA, const Tensor *B, int tB, float alpha,
                     float beta) {
    double t0 = start(be);
    prof(be)->orig.matmul(be, C, A, tA, B, tB, alpha, beta);
    int64_t M = tensor_rows(C), N = tensor_cols(C), K = tA ? tensor_rows(A) : tensor_cols(A);
    char name[96];
    snprintf(name, sizeof name, "matmul %lldx%lldx%lld %c%c %s%s->%s", (long long)M, (long long)N, (long long)K,
             tA ? 'T' : 'N', tB ? 'T' : 'N', dtype_name(A->dtype), beta != 0.0f ? "+=" : "", dtype_name(C->dtype));
    add(be, name, t0, 2.0 * (double)M * (double)N * (double)K);
}

static void p_matmul_add(Backend *be, Tensor *D, const Tensor *A, int tA, const Tensor *B, int tB, float alpha,
                         const Tensor *Cin) {
    double t0 = start(be);
    prof(be)->orig.matmul_add(be, D, A, tA, B, tB, alpha, Cin);
    int64_t M = tensor_rows(D), N = tensor_cols(D), K = tA ? tensor_rows(A) : tensor_cols(A);
    char name[96];
    snprintf(name, sizeof name, "matmul %lldx%lldx%lld %c%c %s+C->%s", (long long)M, (long long)N, (long long)K,
             tA ? 'T' : 'N', tB ? 'T' : 'N', dtype_name(A->dtype), dtype_name(D->dtype));
    add(be, name, t0, 2.0 * (double)M * (double)N * (double)K);
}

#define WRAP(op, params, args)  \
    static void p_##op params { \
        double t0 = start(be);  \
        prof(be)->orig.op args; \
        add(be, #op, t0, 0);    \
    }
#define WRAP_RET(type, op, params, args)    \
    static type p_##op params {             \
        double t0 = start(be);              \
        type ret_ = prof(be)->orig.op args; \
        add(be, #op, t0, 0);                \
        return ret_;                        \
    }

WRAP(copy, (Backend * be, Tensor *d, const Tensor *s), (be, d, s))
WRAP(fill, (Backend * be, Tensor *t, float v), (be, t, v))
WRAP(upload, (Backend * be, Tensor *d, const void *s, DType st), (be, d, s, st))
WRAP(download, (Backend * be, void *d, DType dt, const Tensor *s), (be, d, dt, s))
WRAP(axpy, (Backend * be, Tensor *y, float a, const Tensor *x), (be, y, a, x))
WRAP(scale, (Backend * be, Tensor *x, float a), (be, x, a))
WRAP_RET(double, sum, (Backend * be, const Tensor *x), (be, x))
WRAP_RET(double, sum_squares, (Backend * be, const Tensor *x), (be, x))
WRAP(norm_add, (Backend * be, const Tensor *x), (be, x))
WRAP_RET(double, norm_take, (Backend * be), (be))
WRAP(embedding_forward, (Backend * be, Tensor *o, const Tensor *i, const Tensor *t), (be, o, i, t))
WRAP(embedding_backward, (Backend * be, Tensor *d, const Tensor *i, const Tensor *o), (be, d, i, o))
WRAP(rmsnorm_forward, (Backend * be, Tensor *o, Tensor *r, const Tensor *x, const Tensor *w, float e),
     (be, o, r, x, w, e))
WRAP(rmsnorm_backward,
     (Backend * be, Tensor *dx, Tensor *dw, const Tensor *d, const Tensor *x, const Tensor *w, const Tensor *r),
     (be, dx, dw, d, x, w, r))
WRAP(rope, (Backend * be, Tensor *x, const Tensor *c, const Tensor *s, int inv), (be, x, c, s, inv))
WRAP(attention_forward, (Backend * be, Tensor *o, Tensor *l, const Tensor *q, const Tensor *k, const Tensor *v),
     (be, o, l, q, k, v))
WRAP(attention_backward,
     (Backend * be, Tensor *dq, Tensor *dk, Tensor *dv, const Tensor *d, const Tensor *q, const Tensor *k,
      const Tensor *v, const Tensor *o, const Tensor *l),
     (be, dq, dk, dv, d, q, k, v, o, l))
WRAP(swiglu_forward, (Backend * be, Tensor *o, const Tensor *g, const Tensor *u), (be, o, g, u))
WRAP(swiglu_backward, (Backend * be, Tensor *dg, Tensor *du, const Tensor *d, const Tensor *g, const Tensor *u),
     (be, dg, du, d, g, u))
WRAP(cross_entropy, (Backend * be, Tensor *l, Tensor *ls, const Tensor *t, float gs, int wg), (be, l, ls, t, gs, wg))
WRAP(adam_update, (Backend * be, Tensor *p, const Tensor *g, Tensor *m, Tensor *v, const AdamHyper *h),
     (be, p, g, m, v, h))
WRAP(adam_moments, (Backend * be, Tensor *o, const Tensor *g, Tensor *m, Tensor *v, const AdamHyper *h),
     (be, o, g, m, v, h))
WRAP(apply_update, (Backend * be, Tensor *p, const Tensor *d, float a, float dc, uint64_t s, int64_t i0),
     (be, p, d, a, dc, s, i0))
WRAP_RET(int, adam_update_host,
         (Backend * be, Tensor *p, Tensor *g, float *m, float *v, const Tensor *sel, int rows, int zg, int as,
          const AdamHyper *h),
         (be, p, g, m, v, sel, rows, zg, as, h))
WRAP_RET(int, host_state_reserve, (Backend * be, OwError *err), (be, err))
WRAP_RET(int, svd_top, (Backend * be, Tensor *o, const Tensor *G, int r, int right, OwError *err),
         (be, o, G, r, right, err))
WRAP_RET(int, orthonormalize, (Backend * be, Tensor *A, OwError *err), (be, A, err))
WRAP(canonicalize_signs, (Backend * be, Tensor *P, int rows), (be, P, rows))
WRAP(fill_normal, (Backend * be, Tensor *t, uint64_t s, float sd), (be, t, s, sd))

void backend_profile_enable(Backend *be) {
    if (be->profile) return;
    BackendProfile *p = ow_xcalloc(1, sizeof *p);
    p->orig = *be;
    be->profile = p;
#define HOOK(op) be->op = p_##op
    HOOK(matmul);
    HOOK(copy);
    HOOK(fill);
    HOOK(upload);
    HOOK(download);
    HOOK(axpy);
    HOOK(scale);
    HOOK(sum);
    HOOK(sum_squares);
    HOOK(norm_add);
    HOOK(norm_take);
    HOOK(matmul_add);
    HOOK(embedding_forward);
    HOOK(embedding_backward);
    HOOK(rmsnorm_forward);
    HOOK(rmsnorm_backward);
    HOOK(rope);
    HOOK(attention_forward);
    HOOK(attention_backward);
    HOOK(swiglu_forward);
    HOOK(swiglu_backward);
    HOOK(cross_entropy);
    HOOK(adam_update);
    HOOK(adam_moments);
    HOOK(apply_update);
    HOOK(adam_update_host);
    HOOK(host_state_reserve);
    HOOK(svd_top);
    HOOK(orthonormalize);
    HOOK(canonicalize_signs);
    HOOK(fill_normal);
#undef HOOK
}

static int by_time(const void *a, const void *b) {
    double x = ((const ProfRow *)a)->seconds, y = ((const ProfRow *)b)->seconds;
    return (x < y) - (x > y);
}

void backend_profile_report(Backend *be, FILE *out) {
    BackendProfile *p = prof(be);
    if (!p) return;
    qsort(p->rows, (size_t)p->nrows, sizeof p->rows[0], by_time);
    double total = 0;
    for (int i = 0; i < p->nrows; i++) total += p->rows[i].seconds;
    fprintf(out, "profile (%s backend, synchronised after every op): %.3f s in ops\n", be->name, total);
    fprintf(out, "%9s %6s %9s %8s  %s\n", "seconds", "share", "calls", "TFLOP/s", "op");
    for (int i = 0; i < p->nrows; i++) {
        const ProfRow *r = &p->rows[i];
        char tf[16] = "";
        if (r->flops > 0) snprintf(tf, sizeof tf, "%.1f", r->flops / r->seconds / 1e12);
        fprintf(out, "%9.4f %5.1f%% %9lld %8s  %s\n", r->seconds, 100.0 * r->seconds / total, (long long)r->calls, tf,
                r->name);
    }
    p->nrows = 0;
}

void backend_profile_disable(Backend *be) {
    BackendProfile *p = prof(be);
    if (!p) return;
    MemStats mem = be->mem;
    void *impl = be->impl;
    *be = p->orig;
    be->mem = mem;
    be->impl = impl;
    be->profile = NULL;
    free(p);
}
