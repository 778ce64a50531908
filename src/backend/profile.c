/* profile.c: see profile.h. The profiler is a backend table of its own
 * (profile_ops): enabling it points the instance at that table and keeps the
 * wrapped backend's table (BackendProfile.inner); each op of profile_ops
 * forwards to the inner op on the same instance, timing the compute ops. */
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
    const BackendOps *inner; /* the wrapped backend's own ops */
    ProfRow rows[PROF_ROWS];
    int nrows;
} BackendProfile;

static BackendProfile *prof(Backend *be) { return (BackendProfile *)be->profile; }

static void add(Backend *be, const char *name, double t0, double flops) {
    BackendProfile *p = prof(be);
    p->inner->sync(be);
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
    prof(be)->inner->sync(be);
    return ow_now();
}

/* A GEMM's row: shape, transposes and dtypes (with "+=" or "+C" for what it adds); its flops. */
static void add_gemm(Backend *be, double t0, const Tensor *D, const Tensor *A, int tA, int tB, const char *adds,
                     const char *prec) {
    int64_t M = tensor_rows(D), N = tensor_cols(D), K = tA ? tensor_rows(A) : tensor_cols(A);
    char name[96];
    snprintf(name, sizeof name, "matmul %lldx%lldx%lld %c%c %s%s->%s%s", (long long)M, (long long)N, (long long)K,
             tA ? 'T' : 'N', tB ? 'T' : 'N', dtype_name(A->dtype), adds, dtype_name(D->dtype), prec);
    add(be, name, t0, 2.0 * (double)M * (double)N * (double)K);
}

static void p_matmul(Backend *be, Tensor *C, const Tensor *A, int tA, const Tensor *B, int tB, float alpha,
                     float beta) {
    double t0 = start(be);
    prof(be)->inner->matmul(be, C, A, tA, B, tB, alpha, beta);
    add_gemm(be, t0, C, A, tA, tB, beta != 0.0f ? "+=" : "", "");
}

static void p_matmul_prec(Backend *be, Tensor *C, const Tensor *A, int tA, const Tensor *B, int tB, float alpha,
                          float beta, MatmulPrecision prec) {
    double t0 = start(be);
    prof(be)->inner->matmul_prec(be, C, A, tA, B, tB, alpha, beta, prec);
    add_gemm(be, t0, C, A, tA, tB, beta != 0.0f ? "+=" : "", prec == MATMUL_FAST_F32 ? " fast" : "");
}

static void p_matmul_add(Backend *be, Tensor *D, const Tensor *A, int tA, const Tensor *B, int tB, float alpha,
                         const Tensor *Cin) {
    double t0 = start(be);
    prof(be)->inner->matmul_add(be, D, A, tA, B, tB, alpha, Cin);
    add_gemm(be, t0, D, A, tA, tB, "+C", "");
}

#define WRAP(op, params, args)    \
    static void p_##op params {   \
        double t0 = start(be);    \
        prof(be)->inner->op args; \
        add(be, #op, t0, 0);      \
    }
/* untimed: allocation, synchronisation and host copies forward as they are */
#define FWD(op, params, args) \
    static void p_##op params { prof(be)->inner->op args; }
#define FWD_RET(type, op, params, args) \
    static type p_##op params { return prof(be)->inner->op args; }
#define WRAP_RET(type, op, params, args)      \
    static type p_##op params {               \
        double t0 = start(be);                \
        type ret_ = prof(be)->inner->op args; \
        add(be, #op, t0, 0);                  \
        return ret_;                          \
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
WRAP(attention_decode, (Backend * be, Tensor *o, const Tensor *q, const Tensor *k, const Tensor *v), (be, o, q, k, v))
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
         (Backend * be, Tensor *p, Tensor *g, float *m, float *v, const Tensor *sel, AdamRows rows, AdamHostFlags fl,
          const AdamHyper *h),
         (be, p, g, m, v, sel, rows, fl, h))
WRAP_RET(int, host_state_reserve, (Backend * be, OwError *err), (be, err))
WRAP_RET(int, svd_top, (Backend * be, Tensor *o, const Tensor *G, int r, int right, OwError *err),
         (be, o, G, r, right, err))
WRAP_RET(int, orthonormalize, (Backend * be, Tensor *A, OwError *err), (be, A, err))
WRAP(canonicalize_signs, (Backend * be, Tensor *P, int rows), (be, P, rows))
WRAP(fill_normal, (Backend * be, Tensor *t, uint64_t s, float sd), (be, t, s, sd))
/* the group ops, forwarded (called only where the inner backend has them) */
FWD_RET(int, group_id, (Backend * be, void *id, OwError *err), (be, id, err))
FWD_RET(int, group_join, (Backend * be, const void *id, int rank, int size, OwError *err), (be, id, rank, size, err))
FWD_RET(int, group_sum, (Backend * be, Tensor *t, int64_t n, OwError *err), (be, t, n, err))
FWD(group_wait, (Backend * be), (be))

FWD(destroy, (Backend * be), (be))
FWD_RET(int, set_dtypes, (Backend * be, DType a, DType p, OwError *err), (be, a, p, err))
FWD(mem_report, (Backend * be, BackendMemReport *out), (be, out))
FWD(sample_used, (Backend * be), (be))
FWD_RET(int, alloc, (Backend * be, Tensor *t, MemKind k, const char *w, OwError *err), (be, t, k, w, err))
FWD_RET(int, reserve, (Backend * be, size_t bytes, OwError *err), (be, bytes, err))
FWD(release, (Backend * be, Tensor *t, MemKind k), (be, t, k))
FWD(sync, (Backend * be), (be))
FWD(wait_compute, (Backend * be), (be))
FWD_RET(void *, host_alloc, (Backend * be, size_t bytes, OwError *err), (be, bytes, err))
FWD(host_free, (Backend * be, void *p), (be, p))
FWD_RET(int, copy_to_host, (Backend * be, void *h, const Tensor *s), (be, h, s))
FWD_RET(int, copy_from_host, (Backend * be, Tensor *d, const void *h), (be, d, h))
FWD(copy_wait, (Backend * be, int ticket), (be, ticket))
FWD(copy_sync, (Backend * be, int ticket), (be, ticket))
FWD(col_sumsq, (Backend * be, Tensor *acc, const Tensor *x), (be, acc, x))
FWD_RET(double, score_sum, (Backend * be, const Tensor *W, const Tensor *cs), (be, W, cs))
FWD_RET(int64_t, score_count, (Backend * be, const Tensor *W, const Tensor *cs, double th), (be, W, cs, th))

static const BackendOps profile_ops = {
    .destroy = p_destroy,
    .set_dtypes = p_set_dtypes,
    .mem_report = p_mem_report,
    .sample_used = p_sample_used,
    .alloc = p_alloc,
    .reserve = p_reserve,
    .release = p_release,
    .upload = p_upload,
    .download = p_download,
    .copy = p_copy,
    .fill = p_fill,
    .sync = p_sync,
    .wait_compute = p_wait_compute,
    .host_alloc = p_host_alloc,
    .host_free = p_host_free,
    .copy_to_host = p_copy_to_host,
    .copy_from_host = p_copy_from_host,
    .copy_wait = p_copy_wait,
    .copy_sync = p_copy_sync,
    .matmul = p_matmul,
    .matmul_prec = p_matmul_prec,
    .matmul_add = p_matmul_add,
    .axpy = p_axpy,
    .scale = p_scale,
    .sum = p_sum,
    .sum_squares = p_sum_squares,
    .norm_add = p_norm_add,
    .norm_take = p_norm_take,
    .embedding_forward = p_embedding_forward,
    .embedding_backward = p_embedding_backward,
    .rmsnorm_forward = p_rmsnorm_forward,
    .rmsnorm_backward = p_rmsnorm_backward,
    .rope = p_rope,
    .attention_forward = p_attention_forward,
    .attention_decode = p_attention_decode,
    .attention_backward = p_attention_backward,
    .swiglu_forward = p_swiglu_forward,
    .swiglu_backward = p_swiglu_backward,
    .cross_entropy = p_cross_entropy,
    .col_sumsq = p_col_sumsq,
    .score_sum = p_score_sum,
    .score_count = p_score_count,
    .adam_update = p_adam_update,
    .adam_moments = p_adam_moments,
    .apply_update = p_apply_update,
    .adam_update_host = p_adam_update_host,
    .host_state_reserve = p_host_state_reserve,
    .svd_top = p_svd_top,
    .orthonormalize = p_orthonormalize,
    .canonicalize_signs = p_canonicalize_signs,
    .fill_normal = p_fill_normal,
    .group_id = p_group_id,
    .group_join = p_group_join,
    .group_sum = p_group_sum,
    .group_wait = p_group_wait,
};

void backend_profile_enable(Backend *be) {
    if (be->profile) return;
    BackendProfile *p = ow_xcalloc(1, sizeof *p);
    p->inner = be->ops;
    be->profile = p;
    be->ops = &profile_ops;
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
    be->ops = p->inner;
    be->profile = NULL;
    free(p);
}
