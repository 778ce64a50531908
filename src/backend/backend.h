/* backend.h: the one interface between the device-free training logic
 * (model, optimizer, trainer) and the device (CPU reference, CUDA).
 *
 * A Backend is an instance (dtypes, memory counters, the backend's own state)
 * holding a pointer to its backend's one `static const BackendOps` table.
 * Model, optimizer and trainer code call only these ops (be->ops->op(be, ...));
 * they never call BLAS or CUDA directly, so the whole training logic is tested
 * on the CPU and the CUDA backend is tested against the CPU.
 *
 * Conventions, for every op:
 * - Tensors are row-major and contiguous; a tensor of any rank is used as a
 *   matrix [tensor_rows, tensor_cols] where an op says "matrix".
 * - Tensors passed to an op were allocated by the same backend (or are views
 *   of such tensors).
 * - Activations and their gradients use be->act_dtype; weights use
 *   be->param_dtype; row statistics (rstd, lse, losses) are always F32; token
 *   ids and targets are I32 (targets == -100 means "ignored").
 * - "accumulates" means +=, "writes" means =.
 * - Ops are asynchronous on devices that can be; the ops that return a host
 *   value (sum, sum_squares, score_*) synchronise.
 * Shape mismatches are bugs and abort via OW_CHECK. Allocation over the cap is
 * a user error returned as -1 with the breakdown in err. */
#ifndef OWLORE_BACKEND_BACKEND_H
#define OWLORE_BACKEND_BACKEND_H

#include "core/error.h"
#include "core/memstats.h"
#include "core/tensor.h"

#include <stdint.h>

typedef struct Backend Backend;

typedef enum {
    ADAM_VARIANT_HF = 0,    /* GaLore / transformers-legacy AdamW: n = m / (sqrt(v) + eps),
                               step = lr * sqrt(1 - b2^t) / (1 - b1^t); p -= step * n;
                               then p -= lr * wd * p */
    ADAM_VARIANT_TORCH = 1, /* torch.optim.AdamW: p *= 1 - lr * wd;
                               p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) */
} AdamVariant;

/* Row selections of adam_update_host. */
typedef enum { ADAM_ROWS_PRESENT = 0, ADAM_ROWS_ABSENT = 1 } AdamRows;

/* Flags of adam_update_host (or-ed; 0 for none). */
typedef enum {
    ADAM_HOST_ZERO_GRAD = 1 << 0, /* the gradient rows read are zeroed afterwards */
    ADAM_HOST_ASYNC = 1 << 1,     /* run beside later work where the device can (returns a ticket) */
} AdamHostFlags;

/* Precision of matmul_prec. MATMUL_FAST_F32 lets F32 GEMMs run on reduced-precision tensor
 * cores (TF32 on CUDA; the CPU computes exactly either way): only for approximate
 * computations (the randomized range finder's sketches, GaLore's projections of bf16
 * parameters, OptimConfig.projection_precision). Other dtypes are unaffected. */
typedef enum { MATMUL_EXACT = 0, MATMUL_FAST_F32 = 1 } MatmulPrecision;

typedef struct AdamHyper {
    float lr; /* scheduled learning rate for this step */
    float beta1, beta2, eps, weight_decay;
    int64_t step; /* this tensor's step count, 1 on its first update */
    AdamVariant variant;
    float grad_scale; /* incoming gradients are multiplied by this (clipping, accumulation) */
    uint64_t sr_seed; /* stochastic rounding seed when the parameter is bf16 */
} AdamHyper;

typedef struct BackendOps BackendOps;

/* What a backend can do: code above the backend decides from these, never from its name. */
typedef struct BackendCaps {
    /* Tensors live in device memory apart from host memory: mem.cap caps the device, the
     * memory plan counts the device's fixed workspaces, and optimizer state and activations
     * may be kept in host memory instead. */
    int device_memory;
    /* set_dtypes accepts BF16 activations and weights (else F32 only). */
    int bf16;
} BackendCaps;

/* Device memory figures beyond MemStats (all 0 without caps.device_memory). */
typedef struct BackendMemReport {
    size_t reserved;      /* bytes the device allocator holds now (its segments; >= allocated bytes) */
    size_t peak_reserved; /* the most it has held */
    size_t cap;           /* its cap on reserved bytes */
    size_t context;       /* device memory in use outside it when the backend was made (context, libraries) */
    size_t used_peak;     /* the most device memory in use by anyone, as sampled by sample_used */
} BackendMemReport;

struct Backend {
    const BackendOps *ops; /* the backend's static table (or the profiler's, backend/profile.h) */
    const char *name;      /* "cpu", "cuda": for messages and logs only (decide from caps) */
    char device_name
        [96]; /* the device's own name, "cpu" or the GPU's (e.g. "NVIDIA H200"): messages, probe cache keys */
    BackendCaps caps;
    DType act_dtype;
    DType param_dtype;
    MemStats mem;
    void *impl;
    void *profile; /* BackendProfile when profiling (backend/profile.h), else NULL */
};

struct BackendOps {
    void (*destroy)(Backend *be);

    /* ---- configuration and memory figures ---- */
    /* Storage dtypes of activations and weights: F32, or BF16 where caps.bf16 (with F32 the
     * CUDA backend runs the same kernels in fp32, GEMMs true FP32). Call before anything is
     * allocated for a model. -1 with a message for dtypes the backend cannot run. */
    int (*set_dtypes)(Backend *be, DType act, DType param, OwError *err);
    /* The device figures of BackendMemReport (zeros without caps.device_memory). */
    void (*mem_report)(Backend *be, BackendMemReport *out);
    /* Samples the device memory in use for used_peak (once per step; a no-op on the CPU). */
    void (*sample_used)(Backend *be);

    /* ---- memory ---- */
    /* t->dtype and t->shape are set by the caller; fills t->data (zeroed). */
    int (*alloc)(Backend *be, Tensor *t, MemKind kind, const char *what, OwError *err);
    /* Takes `bytes` of free
     * memory up front for the allocations to come (a run's memory plan), so the backend
     * holds one block of what the run needs rather than growing in steps whose unused
     * tails count against the cap (a no-op where memory is not reserved, as on the CPU).
     * -1 with a message when the device cannot give it. */
    int (*reserve)(Backend *be, size_t bytes, OwError *err);
    /* Frees t->data (NULL is fine) and sets it to NULL. `kind` as given to alloc. */
    void (*release)(Backend *be, Tensor *t, MemKind kind);
    /* Host -> backend, converting from src_dtype to dst->dtype (float dtypes, or same dtype). */
    void (*upload)(Backend *be, Tensor *dst, const void *src, DType src_dtype);
    /* Backend -> host, converting to dst_dtype. */
    void (*download)(Backend *be, void *dst, DType dst_dtype, const Tensor *src);
    /* dst = src (same element count), converting dtypes. */
    void (*copy)(Backend *be, Tensor *dst, const Tensor *src);
    void (*fill)(Backend *be, Tensor *t, float value);
    /* sync: every queue is idle (the ops below that run beside the compute included);
     * wait_compute: the main queue only, so asynchronous side work (host copies,
     * host-state updates) may run on into the next step (a step's timing). */
    void (*sync)(Backend *be);
    void (*wait_compute)(Backend *be);

    /* ---- asynchronous host copies (activation offload) ----
     * host_alloc: a zeroed host buffer the device copies to and from directly
     * (page-locked on CUDA), NULL with a message in err when it cannot be had;
     * host_free releases it after any copy that uses it. copy_to_host /
     * copy_from_host queue a copy of a whole tensor after the work queued so
     * far (on CUDA: on a copy stream, overlapping the compute that follows) and
     * return a ticket; copy_wait(ticket) makes the work queued after it wait for
     * that copy (a negative ticket is no copy; tickets of adam_update_host are
     * waited on the same way). Copies run in the order they are queued. The CPU
     * backend copies at once. host_free and sync wait for every queue. */
    void *(*host_alloc)(Backend *be, size_t bytes, OwError *err);
    void (*host_free)(Backend *be, void *p);
    int (*copy_to_host)(Backend *be, void *host, const Tensor *src);
    int (*copy_from_host)(Backend *be, Tensor *dst, const void *host);
    void (*copy_wait)(Backend *be, int ticket);
    /* The host waits until ticket's copy (copy_to_host / copy_from_host) has finished, so its
     * host buffer may be reused or read (a negative ticket returns at once; the CPU copies at once). */
    void (*copy_sync)(Backend *be, int ticket);

    /* ---- dense algebra ---- */
    /* C = alpha * op(A) @ op(B) + beta * C, all as matrices; op(X) = X^T when trans. */
    void (*matmul)(Backend *be, Tensor *C, const Tensor *A, int transA, const Tensor *B, int transB, float alpha,
                   float beta);
    /* matmul at the given precision (matmul is MATMUL_EXACT). */
    void (*matmul_prec)(Backend *be, Tensor *C, const Tensor *A, int transA, const Tensor *B, int transB, float alpha,
                        float beta, MatmulPrecision prec);
    /* D = alpha * op(A) @ op(B) + Cin (Cin of D's shape and dtype; Cin == D is matmul with
     * beta 1): the residual adds of a block without a copy. */
    void (*matmul_add)(Backend *be, Tensor *D, const Tensor *A, int transA, const Tensor *B, int transB, float alpha,
                       const Tensor *Cin);
    /* y += alpha * x (same element count). */
    void (*axpy)(Backend *be, Tensor *y, float alpha, const Tensor *x);
    /* x *= alpha. */
    void (*scale)(Backend *be, Tensor *x, float alpha);
    /* Sum and sum of squares of all elements, accumulated in double; synchronous. */
    double (*sum)(Backend *be, const Tensor *x);
    double (*sum_squares)(Backend *be, const Tensor *x);
    /* norm_add adds sum_squares(x) (the same double) to the backend's norm accumulator
     * without synchronising; norm_take returns the accumulator (synchronous) and resets it
     * to 0. Additions happen in call order, so the total is the same double as adding the
     * sum_squares results on the host in that order. */
    void (*norm_add)(Backend *be, const Tensor *x);
    double (*norm_take)(Backend *be);

    /* ---- model ops ---- */
    /* out[N,C] = table[ids[n], :]; ids I32 [N]. */
    void (*embedding_forward)(Backend *be, Tensor *out, const Tensor *ids, const Tensor *table);
    /* dtable[ids[n], :] += dout[n, :] (accumulates). */
    void (*embedding_backward)(Backend *be, Tensor *dtable, const Tensor *ids, const Tensor *dout);
    /* out = x * rstd * w over rows of [N,C]; rstd[N] (F32) = 1/sqrt(mean(x^2) + eps) (writes). */
    void (*rmsnorm_forward)(Backend *be, Tensor *out, Tensor *rstd, const Tensor *x, const Tensor *w, float eps);
    /* dx accumulates; dw accumulates when non-NULL. */
    void (*rmsnorm_backward)(Backend *be, Tensor *dx, Tensor *dw, const Tensor *dout, const Tensor *x, const Tensor *w,
                             const Tensor *rstd);
    /* Rotary embedding in place on x [B,T,H,D], rotate-half layout (as transformers):
     * for i < D/2: (x[i], x[i+D/2]) -> (x[i] c - x[i+D/2] s, x[i+D/2] c + x[i] s), c = cos[t,i], s = sin[t,i];
     * cos, sin are F32 [T_max >= T, D/2]. inverse != 0 applies the transpose (for backward). */
    void (*rope)(Backend *be, Tensor *x, const Tensor *cos, const Tensor *sin, int inverse);
    /* Causal grouped-query attention. q [B,T,Hq,D], k and v [B,T,Hkv,D] (Hq % Hkv == 0),
     * out [B,T,Hq,D] (writes), lse [B,Hq,T] F32 log-sum-exp of the scaled scores (writes).
     * Scale 1/sqrt(D). */
    void (*attention_forward)(Backend *be, Tensor *out, Tensor *lse, const Tensor *q, const Tensor *k, const Tensor *v);
    /* Attention of the last n positions of a sequence against all of its keys (incremental
     * decoding with a key/value cache). q, out [n, Hq, D]; k, v [Tk, Hkv, D] with Tk >= n, the
     * keys and values of positions 0 .. Tk-1; query i is position Tk - n + i and attends to the
     * keys 0 .. Tk - n + i (causal); Hq % Hkv == 0, scale 1/sqrt(D). Writes out. */
    void (*attention_decode)(Backend *be, Tensor *out, const Tensor *q, const Tensor *k, const Tensor *v);
    /* Writes dq, dk, dv. */
    void (*attention_backward)(Backend *be, Tensor *dq, Tensor *dk, Tensor *dv, const Tensor *dout, const Tensor *q,
                               const Tensor *k, const Tensor *v, const Tensor *out, const Tensor *lse);
    /* out = silu(gate) * up (writes). */
    void (*swiglu_forward)(Backend *be, Tensor *out, const Tensor *gate, const Tensor *up);
    /* Writes dgate and dup. */
    void (*swiglu_backward)(Backend *be, Tensor *dgate, Tensor *dup, const Tensor *dout, const Tensor *gate,
                            const Tensor *up);
    /* Rows of logits [N,V] (act or F32) against targets [N] (I32, -100 ignored): losses[N] (F32) gets
     * -log_softmax(logits)[target] (0 where ignored). When want_grad, logits is overwritten with
     * grad_scale * (softmax - onehot(target)), zero rows where ignored. */
    void (*cross_entropy)(Backend *be, Tensor *logits, Tensor *losses, const Tensor *targets, float grad_scale,
                          int want_grad);

    /* ---- outlier statistics (OWL) ---- */
    /* acc[C] (F32) += sum over rows of x[N,C]^2 (accumulates). */
    void (*col_sumsq)(Backend *be, Tensor *acc, const Tensor *x);
    /* sum_ij |W_ij| * colscale[j]  (W matrix [m,n], colscale F32 [n]); synchronous. */
    double (*score_sum)(Backend *be, const Tensor *W, const Tensor *colscale);
    /* #{ij : |W_ij| * colscale[j] > threshold}; synchronous. */
    int64_t (*score_count)(Backend *be, const Tensor *W, const Tensor *colscale, double threshold);

    /* ---- optimizer ---- */
    /* Full-rank AdamW on param with grad * h->grad_scale; m, v F32 same shape (updated). */
    void (*adam_update)(Backend *be, Tensor *param, const Tensor *grad, Tensor *m, Tensor *v, const AdamHyper *h);
    /* Low-rank moments for GaLore (HF variant): g = grad * grad_scale; m = b1 m + (1-b1) g;
     * v = b2 v + (1-b2) g^2; out = m / (sqrt(v) + eps) (writes out, F32). */
    void (*adam_moments)(Backend *be, Tensor *out, const Tensor *grad, Tensor *m, Tensor *v, const AdamHyper *h);
    /* param += alpha * delta, then param *= (1 - decay) when decay != 0; bf16 params are
     * rounded stochastically with sr_seed (deterministic per element: element i of param
     * uses counter sr_index0 + i, so a row slice of a tensor rounds as the whole would). */
    void (*apply_update)(Backend *be, Tensor *param, const Tensor *delta, float alpha, float decay, uint64_t sr_seed,
                         int64_t sr_index0);
    /* Full-rank AdamW (adam_update's arithmetic, bit for bit) on rows of a matrix param [V, C]
     * with moments m, v (F32 [V, C]) in host memory from host_alloc (read and written over the
     * bus on a GPU) or in backend memory (the data of F32 tensors of the backend). Which rows:
     *   sel == NULL: every row r, with gradient row r of grad (F32 [V, C]);
     *   sel (I32 [V] on the backend, the slot of each row or -1), rows == ADAM_ROWS_PRESENT:
     *     the rows r with sel[r] >= 0, with gradient row sel[r] of grad (F32 [slots, C]);
     *   rows == ADAM_ROWS_ABSENT: the rows with sel[r] < 0, with a zero gradient (grad unused).
     * grad may also be host memory from host_alloc (every row, sel == NULL, m and v in host
     * memory, no ADAM_HOST_ZERO_GRAD): it is read as m and v are.
     * flags & ADAM_HOST_ZERO_GRAD: the gradient rows read are zeroed afterwards. The bf16 rounding of element
     * (r, c) is that of element r * C + c of a whole-tensor adam_update with the same seed.
     * flags & ADAM_HOST_ASYNC: on a device that can, the update runs beside later work (on a side queue, after
     * the work queued so far) and a ticket is returned: work queued after copy_wait(ticket)
     * sees its results, and nothing queued later may touch the rows it updates, their
     * moments or its gradient rows before that wait. Otherwise (and on the CPU) it is queued
     * in order and -1 is returned. */
    int (*adam_update_host)(Backend *be, Tensor *param, Tensor *grad, float *m, float *v, const Tensor *sel,
                            AdamRows rows, AdamHostFlags flags, const AdamHyper *h);
    /* Reserves what adam_update_host needs for moments in host memory (on CUDA: staging
     * buffers of BACKEND_CUDA_HOST_STATE_STAGING bytes, backend_cuda.h); idempotent; call before the
     * first such update. */
    int (*host_state_reserve)(Backend *be, OwError *err);

    /* ---- projectors ---- */
    /* Top-`rank` singular vectors of G [m,n] (F32) by exact SVD: right (rank x n rows of V^T) when
     * `right`, else left (m x rank columns of U). out F32 of that shape (writes). Signs canonical:
     * the largest-magnitude entry of each vector is positive. */
    int (*svd_top)(Backend *be, Tensor *out, const Tensor *G, int rank, int right, OwError *err);
    /* In place: A [m,k] (m >= k) becomes the Q factor of its thin QR. */
    int (*orthonormalize)(Backend *be, Tensor *A, OwError *err);
    /* Makes the largest-magnitude entry of each vector positive: vectors are rows when
     * `rows`, else columns. */
    void (*canonicalize_signs)(Backend *be, Tensor *P, int rows);
    /* Fills t with independent standard normals from (seed, element index); reproducible
     * across backends. */
    void (*fill_normal)(Backend *be, Tensor *t, uint64_t seed, float stddev);

    /* ---- data parallel: a group of ranks, one backend each (NULL where tensors are host
     * memory, which dist/comm sums: the CPU backend) ---- */
    /* A new group's id (BACKEND_GROUP_ID_BYTES), made by one rank and sent to the others. */
    int (*group_id)(Backend *be, void *id, OwError *err);
    /* Joins the group `id` as rank of size; every rank calls it (it returns when all have). */
    int (*group_join)(Backend *be, const void *id, int rank, int size, OwError *err);
    /* Starts the in-place sum over the group of t's first n F32 elements, beside the work
     * queued after it (which must neither read nor write them before group_wait). */
    int (*group_sum)(Backend *be, Tensor *t, int64_t n, OwError *err);
    /* The work queued from now on waits for every sum started (asynchronous). */
    void (*group_wait)(Backend *be);
};

#define BACKEND_GROUP_ID_BYTES 128

/* Device strings: "auto" (CUDA device 0 when it can be had, else the CPU), "cpu", "cuda"
 * (device 0) and "cuda:N". */
typedef enum { BACKEND_DEVICE_AUTO, BACKEND_DEVICE_CPU, BACKEND_DEVICE_CUDA } BackendDeviceKind;
typedef struct BackendDevice {
    BackendDeviceKind kind;
    int index; /* the CUDA device number */
} BackendDevice;

typedef struct BackendOptions {
    int64_t threads;   /* CPU threads (0: all; at most a few per core, ow_check_threads) */
    size_t mem_cap;    /* bytes the backend may allocate (0: no cap; on CUDA the device's free memory) */
    int device_offset; /* added to the CUDA device number (a rank's local rank: one GPU per rank) */
} BackendOptions;

/* -1 with a message listing the allowed strings when `device` is not one of them. */
int backend_parse_device(const char *device, BackendDevice *out, OwError *err);
/* The backend `device` names (opts may be NULL: defaults); NULL with a message when the
 * string is not known, the device is absent or this build lacks its backend. */
Backend *backend_create(const char *device, const BackendOptions *opts, OwError *err);
Backend *backend_create_cpu(int threads, size_t mem_cap, OwError *err);

/* Convenience wrappers. */
static inline int be_alloc(Backend *be, Tensor *t, MemKind kind, const char *what, OwError *err) {
    return be->ops->alloc(be, t, kind, what, err);
}
static inline void be_release(Backend *be, Tensor *t, MemKind kind) { be->ops->release(be, t, kind); }

#endif
