/* cpu_internal.h: what the files of the CPU reference backend share: the
 * backend's private state (CpuImpl) and the op functions that
 * backend_create_cpu puts into the Backend table.
 *
 * Invariants of the CPU backend:
 * - act_dtype = param_dtype = F32; all compute is fp32, with reductions that
 *   are cheap to do so accumulated in double. Ops other than
 *   upload/download/copy/fill accept F32 tensors only (OW_CHECK).
 * - Parallel loops use OpenMP with num_threads(cpu_threads(be)) and a static
 *   schedule, and every reduction is split into fixed parts that do not
 *   depend on the thread count, so results are deterministic (for element-
 *   wise and row ops, even bitwise independent of the thread count; only
 *   BLAS/LAPACK calls may depend on it).
 * - No global mutable state: scratch is allocated inside the call. */
#ifndef OWLORE_BACKEND_CPU_CPU_INTERNAL_H
#define OWLORE_BACKEND_CPU_CPU_INTERNAL_H

#include "backend/backend.h"

typedef struct CpuImpl {
    int threads;     /* OpenMP threads for our loops and the OpenBLAS thread count */
    double norm_acc; /* norm_add / norm_take */
} CpuImpl;

static inline int cpu_threads(const Backend *be) { return ((const CpuImpl *)be->impl)->threads; }

/* The data of an F32 tensor; aborts on another dtype (an internal error). */
static inline float *cpu_f32(const Tensor *t) {
    OW_CHECKF(t->dtype == OW_F32, "CPU op expects an F32 tensor, got %s", dtype_name(t->dtype));
    return (float *)t->data;
}

static inline const int32_t *cpu_i32(const Tensor *t) {
    OW_CHECKF(t->dtype == OW_I32, "CPU op expects an I32 tensor, got %s", dtype_name(t->dtype));
    return (const int32_t *)t->data;
}

/* Elements per part of a fixed-partition reduction. */
#define CPU_REDUCE_CHUNK ((int64_t)1 << 14)

/* cpu_backend.c: memory, copies, fill */
int cpu_alloc(Backend *be, Tensor *t, MemKind kind, const char *what, OwError *err);
void cpu_release(Backend *be, Tensor *t, MemKind kind);
void cpu_upload(Backend *be, Tensor *dst, const void *src, DType src_dtype);
void cpu_download(Backend *be, void *dst, DType dst_dtype, const Tensor *src);
void cpu_copy(Backend *be, Tensor *dst, const Tensor *src);
void cpu_fill(Backend *be, Tensor *t, float value);
void cpu_sync(Backend *be);

/* cpu_linalg.c */
void cpu_matmul(Backend *be, Tensor *C, const Tensor *A, int transA, const Tensor *B, int transB, float alpha,
                float beta);
void cpu_axpy(Backend *be, Tensor *y, float alpha, const Tensor *x);
void cpu_scale(Backend *be, Tensor *x, float alpha);
double cpu_sum(Backend *be, const Tensor *x);
double cpu_sum_squares(Backend *be, const Tensor *x);
void cpu_matmul_prec(Backend *be, Tensor *C, const Tensor *A, int transA, const Tensor *B, int transB, float alpha,
                     float beta, MatmulPrecision prec);
void cpu_matmul_add(Backend *be, Tensor *D, const Tensor *A, int transA, const Tensor *B, int transB, float alpha,
                    const Tensor *Cin);

/* cpu_layers.c: embedding, rmsnorm, rope, swiglu */
void cpu_embedding_forward(Backend *be, Tensor *out, const Tensor *ids, const Tensor *table);
void cpu_embedding_backward(Backend *be, Tensor *dtable, const Tensor *ids, const Tensor *dout);
void cpu_rmsnorm_forward(Backend *be, Tensor *out, Tensor *rstd, const Tensor *x, const Tensor *w, float eps);
void cpu_rmsnorm_backward(Backend *be, Tensor *dx, Tensor *dw, const Tensor *dout, const Tensor *x, const Tensor *w,
                          const Tensor *rstd);
void cpu_rope(Backend *be, Tensor *x, const Tensor *cos, const Tensor *sin, int inverse);
void cpu_swiglu_forward(Backend *be, Tensor *out, const Tensor *gate, const Tensor *up);
void cpu_swiglu_backward(Backend *be, Tensor *dgate, Tensor *dup, const Tensor *dout, const Tensor *gate,
                         const Tensor *up);

/* cpu_attention.c */
void cpu_attention_forward(Backend *be, Tensor *out, Tensor *lse, const Tensor *q, const Tensor *k, const Tensor *v);
void cpu_attention_decode(Backend *be, Tensor *out, const Tensor *q, const Tensor *k, const Tensor *v);
void cpu_attention_backward(Backend *be, Tensor *dq, Tensor *dk, Tensor *dv, const Tensor *dout, const Tensor *q,
                            const Tensor *k, const Tensor *v, const Tensor *out, const Tensor *lse);

/* cpu_loss.c */
void cpu_cross_entropy(Backend *be, Tensor *logits, Tensor *losses, const Tensor *targets, float grad_scale,
                       int want_grad);

/* cpu_owl.c */
void cpu_col_sumsq(Backend *be, Tensor *acc, const Tensor *x);
double cpu_score_sum(Backend *be, const Tensor *W, const Tensor *colscale);
int64_t cpu_score_count(Backend *be, const Tensor *W, const Tensor *colscale, double threshold);

/* cpu_optim.c */
void cpu_adam_update(Backend *be, Tensor *param, const Tensor *grad, Tensor *m, Tensor *v, const AdamHyper *h);
void cpu_adam_moments(Backend *be, Tensor *out, const Tensor *grad, Tensor *m, Tensor *v, const AdamHyper *h);
void cpu_apply_update(Backend *be, Tensor *param, const Tensor *delta, float alpha, float decay, uint64_t sr_seed,
                      int64_t sr_index0);
int cpu_adam_update_host(Backend *be, Tensor *param, Tensor *grad, float *m, float *v, const Tensor *sel, AdamRows rows,
                         AdamHostFlags flags, const AdamHyper *h);

/* cpu_proj.c */
int cpu_svd_top(Backend *be, Tensor *out, const Tensor *G, int rank, int right, OwError *err);
int cpu_orthonormalize(Backend *be, Tensor *A, OwError *err);
void cpu_canonicalize_signs(Backend *be, Tensor *P, int rows);
void cpu_fill_normal(Backend *be, Tensor *t, uint64_t seed, float stddev);

#endif
