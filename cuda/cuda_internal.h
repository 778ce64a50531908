/* cuda_internal.h: what the .cu files of cuda/ share and nothing outside cuda/
 * sees: the backend's private state (CudaImpl), the device arena, the error
 * check macros, device-side dtype conversions and reductions, and the op
 * functions each file provides to the table built in cuda_backend.cu.
 *
 * Invariants: every op runs asynchronously on impl->stream (the main stream),
 * so stream order alone orders ops, memory reuse and scratch use; the two
 * other streams carry only what the Backend interface names as asynchronous
 * (copy_stream: host copies; opt_stream: adam_update_host with async), each
 * started after the main stream's work so far and waited by copy_wait; no op
 * allocates device memory except svd_top / orthonormalize (which can report
 * failure); every device buffer comes from the arena. A failing
 * CUDA/cuBLAS/cuSOLVER call inside an op is a bug and aborts with file:line,
 * the call and the error string. */
#ifndef OWLORE_CUDA_CUDA_INTERNAL_H
#define OWLORE_CUDA_CUDA_INTERNAL_H

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>
#include <math.h>
#include <stdint.h>

extern "C" {
#include "backend/backend.h"
#include "backend/backend_cuda.h"
#include "core/error.h"
#include "core/memstats.h"
#include "core/tensor.h"
}
#include "core/philox.h"

/* ---- error checks (bugs: abort with file:line) ---- */

#define CUDA_CHECK(call)                                                                             \
    do {                                                                                             \
        cudaError_t ow_e_ = (call);                                                                  \
        if (ow_e_ != cudaSuccess)                                                                    \
            ow_check_failed(__FILE__, __LINE__, #call, "CUDA error %s: %s", cudaGetErrorName(ow_e_), \
                            cudaGetErrorString(ow_e_));                                              \
    } while (0)

#define CUBLAS_CHECK(call)                                                                \
    do {                                                                                  \
        cublasStatus_t ow_s_ = (call);                                                    \
        if (ow_s_ != CUBLAS_STATUS_SUCCESS)                                               \
            ow_check_failed(__FILE__, __LINE__, #call, "cuBLAS error %d: %s", (int)ow_s_, \
                            cublasGetStatusString(ow_s_));                                \
    } while (0)

#define CUSOLVER_CHECK(call)                                                                    \
    do {                                                                                        \
        cusolverStatus_t ow_s_ = (call);                                                        \
        if (ow_s_ != CUSOLVER_STATUS_SUCCESS)                                                   \
            ow_check_failed(__FILE__, __LINE__, #call, "cuSOLVER error status %d", (int)ow_s_); \
    } while (0)

/* After every kernel launch. */
#define CUDA_LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

/* ---- the device arena (cuda_arena.cu) ---- */

typedef struct ArenaBlock {
    uintptr_t addr;
    size_t size;
    int free;
    struct ArenaBlock *prev, *next; /* address order inside the segment */
} ArenaBlock;

typedef struct ArenaSegment {
    void *base;
    size_t size;
    ArenaBlock *first;
} ArenaSegment;

typedef struct CudaArena {
    size_t cap;         /* most bytes the segments may hold together */
    size_t min_segment; /* new segments are at least this big (while the cap allows) */
    size_t reserved;    /* bytes held in segments */
    size_t peak_reserved;
    size_t allocated; /* bytes in used blocks */
    ArenaSegment **segs;
    int nsegs, segs_cap;
} CudaArena;

#define ARENA_ALIGN 256

void arena_init(CudaArena *a, size_t cap, size_t min_segment);
/* Frees every segment (cudaFree); outstanding blocks become invalid. */
void arena_destroy(CudaArena *a);
/* bytes rounded up to ARENA_ALIGN (at least ARENA_ALIGN); *size_out gets that size.
 * -1 with a message when the cap or the device cannot hold it. Memory is not zeroed. */
int arena_alloc(CudaArena *a, size_t bytes, void **out, size_t *size_out, const char *what, OwError *err);
/* Returns the block's size; p must come from arena_alloc. */
size_t arena_free(CudaArena *a, void *p);
/* Makes the arena hold at least `bytes` free (the unused room of its segments counts),
 * adding one segment for what is missing, as far as the cap allows; from then on a new
 * segment is only as large as the allocation that needs it. -1 with a message when the
 * device cannot give the segment. */
int arena_reserve(CudaArena *a, size_t bytes, OwError *err);
/* Size of the largest free block (for messages). */
size_t arena_largest_free(const CudaArena *a);

/* ---- backend state ---- */

typedef struct GemmKey {
    int64_t m, n, k; /* cuBLAS (column-major) dims */
    int opA, opB;    /* cuBLAS ops (after the row-major swap) */
    int dtAB, dtC;   /* DType */
    int beta_nonzero;
    int alignA, alignB, alignC; /* pointer alignment in bytes (capped at 256) */
    int tf32;                   /* F32 GEMM on TF32 tensor cores (MATMUL_FAST_F32) */
} GemmKey;

typedef struct GemmCacheEntry {
    int valid;
    int use_lt; /* 0: cuBLASLt offered no algorithm; use cublasGemmEx */
    GemmKey key;
    cublasLtMatmulAlgo_t algo;
} GemmCacheEntry;

#define GEMM_CACHE_SIZE 64
#define CUDA_LT_WORKSPACE_BYTES BACKEND_CUDA_LT_WORKSPACE_BYTES
#ifndef CUDA_SCRATCH_BYTES /* the CPU emulator may build with a smaller one (scripts/cuda_emu/README.md) */
#define CUDA_SCRATCH_BYTES BACKEND_CUDA_SCRATCH_BYTES
#endif

#define CUDA_COPY_EVENTS 16              /* tickets of asynchronous host copies in flight (a ring) */
#define CUDA_SIDE_EVENTS 8               /* tickets of side-stream work (adam_update_host async) in flight */
#define CUDA_SIDE_TICKET 0x40000000      /* side tickets have this bit; copy tickets are below it */
#define HS_SLOTS 3                       /* staging slots of host-resident optimizer state */
#define HS_CHUNK_BYTES ((size_t)8 << 20) /* bytes of m (and of v) per staged chunk */
#define PIN_SLOTS 2                      /* page-locked staging of large pageable copies (cuda_backend.cu) */
#define PIN_CHUNK_BYTES ((size_t)16 << 20)
#define PIN_MIN_BYTES (2 * PIN_CHUNK_BYTES) /* same-type copies of at least this many bytes are staged */

typedef struct CudaImpl {
    int device;
    cudaStream_t stream;
    cudaStream_t copy_stream;                 /* host <-> device copies of offloaded activations */
    cudaEvent_t copy_ready[CUDA_COPY_EVENTS]; /* compute work a copy waits for */
    cudaEvent_t copy_done[CUDA_COPY_EVENTS];  /* a copy, for copy_wait */
    int copy_next;
    cudaStream_t opt_stream;                  /* side work: optimizer updates of host-resident state */
    cudaEvent_t side_ready[CUDA_SIDE_EVENTS]; /* compute work a side op waits for */
    cudaEvent_t side_done[CUDA_SIDE_EVENTS];  /* a side op, for copy_wait */
    int side_next;
    cudaStream_t hs_h2d, hs_d2h; /* copies of host-resident optimizer state (cuda_optim.cu) */
    cudaEvent_t hs_loaded[HS_SLOTS], hs_computed[HS_SLOTS], hs_free[HS_SLOTS];
    cudaEvent_t hs_start, hs_done;   /* a host-state op's loads may start; the last op is over */
    float *hs_stage;                 /* HS_SLOTS x (m, v) x HS_CHUNK_BYTES, from host_state_reserve */
    char *pin_stage;                 /* PIN_SLOTS x PIN_CHUNK_BYTES page-locked, made at the first use */
    cudaEvent_t pin_done[PIN_SLOTS]; /* the last copy between a slot and the device */
    int pin_failed;                  /* page-locked staging could not be had: the driver's path */
    cublasLtHandle_t lt;
    cublasHandle_t blas;
    cusolverDnHandle_t solver;
    CudaArena arena;
    void *lt_ws;      /* CUDA_LT_WORKSPACE_BYTES, shared by cuBLASLt and cuBLAS (same stream) */
    void *scratch;    /* CUDA_SCRATCH_BYTES: reduction partials, column partial sums, attention row statistics */
    double *norm_acc; /* norm_add's accumulator (its own arena block: scratch is reused by other ops) */
    size_t lt_ws_size, scratch_size;
    GemmCacheEntry gemm_cache[GEMM_CACHE_SIZE];
    int gemm_cache_next;
    int attn_tc;    /* use the tensor-core attention kernels where they apply */
    int smem_optin; /* max dynamic shared memory per block (bytes) */
    int num_sms;
    size_t context_bytes;    /* total - free after the handles, before the arena */
    size_t peak_used;        /* most total - free seen by backend_cuda_sample_used */
    struct CudaGroup *group; /* data-parallel ranks (cuda_group.cu); NULL until a group op */
} CudaImpl;

static inline CudaImpl *cuda_impl(Backend *be) { return (CudaImpl *)be->impl; }

/* ---- launch helpers ---- */

/* Blocks for a grid-stride loop over n items: enough to fill the device, never 0. */
static inline unsigned cuda_grid_for(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > 65535) b = 65535;
    return (unsigned)b;
}

/* ---- device helpers ---- */

__device__ __forceinline__ float ow_bf16_to_f32(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }

/* Round to nearest even, NaN stays NaN: the device twin of f32_to_bf16 (dtype.h). */
__device__ __forceinline__ uint16_t ow_f32_to_bf16(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* Element i of a float tensor of dtype dt (F32, BF16, F16), as float. */
__device__ __forceinline__ float ow_load(const void *p, int dt, int64_t i) {
    if (dt == OW_BF16) return ow_bf16_to_f32(((const uint16_t *)p)[i]);
    if (dt == OW_F32) return ((const float *)p)[i];
    return __half2float(__ushort_as_half(((const uint16_t *)p)[i]));
}

__device__ __forceinline__ void ow_store(void *p, int dt, int64_t i, float v) {
    if (dt == OW_BF16)
        ((uint16_t *)p)[i] = ow_f32_to_bf16(v);
    else if (dt == OW_F32)
        ((float *)p)[i] = v;
    else
        ((uint16_t *)p)[i] = __half_as_ushort(__float2half_rn(v));
}

/* Eight bf16 values in one 16-byte access (the vectorised fast paths of the
 * element-wise kernels; same per-element arithmetic as ow_load / ow_store). */
__device__ __forceinline__ void ow_bf16x8_load(const void *p, int64_t vec, float f[8]) {
    uint4 v = ((const uint4 *)p)[vec];
    uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int k = 0; k < 4; k++) {
        f[2 * k] = __uint_as_float(w[k] << 16);
        f[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
    }
}

__device__ __forceinline__ void ow_bf16x8_store(void *p, int64_t vec, const float f[8]) {
    uint32_t w[4];
#pragma unroll
    for (int k = 0; k < 4; k++)
        w[k] = (uint32_t)ow_f32_to_bf16(f[2 * k]) | ((uint32_t)ow_f32_to_bf16(f[2 * k + 1]) << 16);
    ((uint4 *)p)[vec] = make_uint4(w[0], w[1], w[2], w[3]);
}

/* Eight consecutive floats of an F32 or BF16 buffer (vector index vec). */
__device__ __forceinline__ void ow_x8_load(const void *p, int f32, int64_t vec, float f[8]) {
    if (!f32) {
        ow_bf16x8_load(p, vec, f);
        return;
    }
    float4 a = ((const float4 *)p)[2 * vec], b = ((const float4 *)p)[2 * vec + 1];
    f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
}

__device__ __forceinline__ void ow_x8_store(void *p, int f32, int64_t vec, const float f[8]) {
    if (!f32) {
        ow_bf16x8_store(p, vec, f);
        return;
    }
    ((float4 *)p)[2 * vec] = make_float4(f[0], f[1], f[2], f[3]);
    ((float4 *)p)[2 * vec + 1] = make_float4(f[4], f[5], f[6], f[7]);
}

/* Whether the vectorised (8 x bf16 / 16-byte) fast path applies to these buffers. */
static inline int ow_vec8_ok(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* Stochastic rounding to bf16 (the rule the CPU backend uses too): add the low
 * 16 bits of philox4x32_10(seed, index, 0).v[0] to the float's bit pattern and
 * truncate. Inf and NaN are rounded to nearest instead. */
__device__ __forceinline__ uint16_t ow_f32_to_bf16_sr(float f, uint64_t seed, uint64_t index) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7f800000u) == 0x7f800000u) return ow_f32_to_bf16(f);
    Philox4 r = philox4x32_10(seed, index, 0);
    u += r.v[0] & 0xffffu;
    return (uint16_t)(u >> 16);
}

/* Warp and block reductions by xor-shuffle butterflies: every lane ends with the
 * result, in a fixed order (deterministic). */
struct OwSumOp {
    template <typename T> __device__ __forceinline__ static T op(T a, T b) { return a + b; }
};
struct OwMaxOp {
    __device__ __forceinline__ static float op(float a, float b) { return fmaxf(a, b); }
};

template <typename Op, typename T> __device__ __forceinline__ T ow_warp_reduce(T v) {
    for (int o = 16; o > 0; o >>= 1) v = Op::op(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* blockDim.x must be a multiple of 32; sh has 32 elements; every thread must call;
 * identity: the value of the missing warps. */
template <typename Op, typename T> __device__ __forceinline__ T ow_block_reduce(T v, T *sh, T identity) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = ow_warp_reduce<Op>(v);
    __syncthreads(); /* sh may still be read by a previous call */
    if (lane == 0) sh[w] = v;
    __syncthreads();
    T r = lane < nw ? sh[lane] : identity;
    return ow_warp_reduce<Op>(r);
}

__device__ __forceinline__ float ow_warp_sum(float v) { return ow_warp_reduce<OwSumOp>(v); }
__device__ __forceinline__ double ow_warp_sum_d(double v) { return ow_warp_reduce<OwSumOp>(v); }
__device__ __forceinline__ float ow_warp_max(float v) { return ow_warp_reduce<OwMaxOp>(v); }
__device__ __forceinline__ float ow_block_sum(float v, float *sh) { return ow_block_reduce<OwSumOp>(v, sh, 0.0f); }
__device__ __forceinline__ double ow_block_sum_d(double v, double *sh) { return ow_block_reduce<OwSumOp>(v, sh, 0.0); }
__device__ __forceinline__ float ow_block_max(float v, float *sh) { return ow_block_reduce<OwMaxOp>(v, sh, -INFINITY); }

/* ---- ops, by file ---- */

/* cuda_backend.cu */
void cuda_sync(Backend *be);
/* Device memory in use (total - free, every process on the device). */
size_t cuda_device_used(void);
/* Side-stream work: cuda_side_begin makes opt_stream wait for the work queued on
 * the main stream so far and returns the ticket (CUDA_SIDE_TICKET | n); queue the
 * work on opt_stream, then cuda_side_end(ticket) marks its end for copy_wait. */
int cuda_side_begin(CudaImpl *ci);
void cuda_side_end(CudaImpl *ci, int ticket);

/* cuda_gemm.cu */
void cuda_matmul(Backend *be, Tensor *C, const Tensor *A, int transA, const Tensor *B, int transB, float alpha,
                 float beta);
void cuda_matmul_prec(Backend *be, Tensor *C, const Tensor *A, int transA, const Tensor *B, int transB, float alpha,
                      float beta, MatmulPrecision prec);
void cuda_matmul_add(Backend *be, Tensor *D, const Tensor *A, int transA, const Tensor *B, int transB, float alpha,
                     const Tensor *Cin);

/* cuda_misc.cu */
void cuda_copy(Backend *be, Tensor *dst, const Tensor *src);
void cuda_fill(Backend *be, Tensor *t, float value);
void cuda_axpy(Backend *be, Tensor *y, float alpha, const Tensor *x);
void cuda_scale(Backend *be, Tensor *x, float alpha);
double cuda_sum(Backend *be, const Tensor *x);
double cuda_sum_squares(Backend *be, const Tensor *x);
void cuda_norm_add(Backend *be, const Tensor *x);
double cuda_norm_take(Backend *be);
void cuda_embedding_forward(Backend *be, Tensor *out, const Tensor *ids, const Tensor *table);
void cuda_embedding_backward(Backend *be, Tensor *dtable, const Tensor *ids, const Tensor *dout);
void cuda_swiglu_forward(Backend *be, Tensor *out, const Tensor *gate, const Tensor *up);
void cuda_swiglu_backward(Backend *be, Tensor *dgate, Tensor *dup, const Tensor *dout, const Tensor *gate,
                          const Tensor *up);
void cuda_cross_entropy(Backend *be, Tensor *logits, Tensor *losses, const Tensor *targets, float grad_scale,
                        int want_grad);
void cuda_col_sumsq(Backend *be, Tensor *acc, const Tensor *x);
double cuda_score_sum(Backend *be, const Tensor *W, const Tensor *colscale);
int64_t cuda_score_count(Backend *be, const Tensor *W, const Tensor *colscale, double threshold);
/* Column reductions in two deterministic stages: a kernel writes partial sums
 * of row groups into scratch as double [groups, cols], then cuda_col_reduce_into
 * adds each column's partials, in group order, in double, and adds the total
 * (rounded to float) into acc[cols] (F32, +=), as the CPU backend does.
 * cuda_col_groups gives the number of row groups (>= 1) that fit the scratch. */
#define CUDA_COL_GROUPS_MAX 256
int cuda_col_groups(CudaImpl *ci, int64_t rows, int64_t cols);
void cuda_col_reduce_into(CudaImpl *ci, const double *partials, int groups, int64_t cols, float *acc);

/* cuda_norm_rope.cu */
void cuda_rmsnorm_forward(Backend *be, Tensor *out, Tensor *rstd, const Tensor *x, const Tensor *w, float eps);
void cuda_rmsnorm_backward(Backend *be, Tensor *dx, Tensor *dw, const Tensor *dout, const Tensor *x, const Tensor *w,
                           const Tensor *rstd);
void cuda_rope(Backend *be, Tensor *x, const Tensor *cos, const Tensor *sin, int inverse);

/* cuda_attention.cu */
void cuda_attention_forward(Backend *be, Tensor *out, Tensor *lse, const Tensor *q, const Tensor *k, const Tensor *v);
void cuda_attention_decode(Backend *be, Tensor *out, const Tensor *q, const Tensor *k, const Tensor *v);
void cuda_attention_backward(Backend *be, Tensor *dq, Tensor *dk, Tensor *dv, const Tensor *dout, const Tensor *q,
                             const Tensor *k, const Tensor *v, const Tensor *out, const Tensor *lse);
int cuda_attention_tc_applies(CudaImpl *ci, int64_t head_dim);

/* cuda_optim.cu */
void cuda_adam_update(Backend *be, Tensor *param, const Tensor *grad, Tensor *m, Tensor *v, const AdamHyper *h);
void cuda_adam_moments(Backend *be, Tensor *out, const Tensor *grad, Tensor *m, Tensor *v, const AdamHyper *h);
void cuda_apply_update(Backend *be, Tensor *param, const Tensor *delta, float alpha, float decay, uint64_t sr_seed,
                       int64_t sr_index0);
int cuda_adam_update_host(Backend *be, Tensor *param, Tensor *grad, float *m, float *v, const Tensor *sel,
                          AdamRows rows, AdamHostFlags flags, const AdamHyper *h);
int cuda_host_state_reserve(Backend *be, OwError *err);

/* cuda_solver.cu */
int cuda_svd_top(Backend *be, Tensor *out, const Tensor *G, int rank, int right, OwError *err);
int cuda_orthonormalize(Backend *be, Tensor *A, OwError *err);
void cuda_canonicalize_signs(Backend *be, Tensor *P, int rows);
void cuda_fill_normal(Backend *be, Tensor *t, uint64_t seed, float stddev);

/* cuda_group.cu */
int cuda_group_id(Backend *be, void *id, OwError *err);
int cuda_group_join(Backend *be, const void *id, int rank, int size, OwError *err);
int cuda_group_sum(Backend *be, Tensor *t, int64_t n, OwError *err);
void cuda_group_wait(Backend *be);
void cuda_group_free(Backend *be);

/* Workspace allocation for ops that may fail cleanly (solver workspaces):
 * from the arena, accounted as MEM_WORKSPACE. */
int cuda_ws_alloc(Backend *be, size_t bytes, void **out, const char *what, OwError *err);
void cuda_ws_free(Backend *be, void *p);

#endif
