/* cuda_gemm.cu: matmul through cuBLASLt (fp32 accumulation), with the
 * algorithm picked by cuBLASLt's heuristic once per shape and cached in the
 * backend (a fixed table, round-robin replacement). Shapes cuBLASLt offers no
 * algorithm for fall back to cublasGemmEx (same workspace, same stream).
 *
 * Row-major tensors are column-major transposes, so C = op(A) op(B) is
 * computed as C^T = op(B)^T op(A)^T in column-major terms: the first cuBLAS
 * operand is B's data, the second is A's, and each keeps its own transpose
 * flag. Supported: A, B BF16 with C BF16 or F32; A, B, C F32 (true FP32
 * compute, CUBLAS_COMPUTE_32F, no TF32, unless the caller asked
 * matmul_prec for MATMUL_FAST_F32 for an approximate computation). beta 0 does not
 * read C. matmul_add gives cuBLASLt a C input apart from its D output (the
 * residual adds: h = x + att Wo^T without copying x first). */
#include "cuda/cuda_internal.h"

#include <limits.h>
#include <string.h>

static int ptr_align(const void *p) {
    uintptr_t a = (uintptr_t)p;
    int al = 256;
    while (al > 1 && (a % (uintptr_t)al) != 0) al >>= 1;
    return al;
}

static cudaDataType_t cuda_dtype(DType d) {
    switch (d) {
    case OW_F32: return CUDA_R_32F;
    case OW_BF16: return CUDA_R_16BF;
    case OW_F16: return CUDA_R_16F;
    default: OW_CHECKF(0, "matmul dtype %d", (int)d);
    }
    return CUDA_R_32F;
}

static int key_equal(const GemmKey *a, const GemmKey *b) { return memcmp(a, b, sizeof *a) == 0; }

typedef struct LtCall {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
} LtCall;

static void lt_call_create(LtCall *c, const GemmKey *k, int64_t lda_rows, int64_t lda_cols, int64_t ldb_rows,
                           int64_t ldb_cols) {
    CUBLAS_CHECK(
        cublasLtMatmulDescCreate(&c->op, k->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t opa = (cublasOperation_t)k->opA, opb = (cublasOperation_t)k->opB;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(c->op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(c->op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    cudaDataType_t tab = cuda_dtype((DType)k->dtAB), tc = cuda_dtype((DType)k->dtC);
    /* stored (pre-op) column-major shapes; leading dimension = stored rows (contiguous) */
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&c->la, tab, (uint64_t)lda_rows, (uint64_t)lda_cols, lda_rows));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&c->lb, tab, (uint64_t)ldb_rows, (uint64_t)ldb_cols, ldb_rows));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&c->lc, tc, (uint64_t)k->m, (uint64_t)k->n, k->m));
}

static void lt_call_destroy(LtCall *c) {
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(c->la));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(c->lb));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(c->lc));
    CUBLAS_CHECK(cublasLtMatmulDescDestroy(c->op));
}

static GemmCacheEntry *cache_lookup(CudaImpl *ci, const GemmKey *k, LtCall *call) {
    for (int i = 0; i < GEMM_CACHE_SIZE; i++)
        if (ci->gemm_cache[i].valid && key_equal(&ci->gemm_cache[i].key, k)) return &ci->gemm_cache[i];
    GemmCacheEntry *e = &ci->gemm_cache[ci->gemm_cache_next];
    ci->gemm_cache_next = (ci->gemm_cache_next + 1) % GEMM_CACHE_SIZE;
    memset(e, 0, sizeof *e);
    e->key = *k;
    e->valid = 1;

    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = ci->lt_ws_size;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    uint32_t al_a = (uint32_t)k->alignA, al_b = (uint32_t)k->alignB, al_c = (uint32_t)k->alignC;
    CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a));
    CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b));
    CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c));
    CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof al_c));
    cublasLtMatmulHeuristicResult_t res;
    memset(&res, 0, sizeof res);
    int nres = 0;
    cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(ci->lt, call->op, call->la, call->lb, call->lc, call->lc, pref, 1, &res, &nres);
    CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    if (st == CUBLAS_STATUS_SUCCESS && nres > 0 && res.state == CUBLAS_STATUS_SUCCESS &&
        res.workspaceSize <= ci->lt_ws_size) {
        e->use_lt = 1;
        e->algo = res.algo;
    } else {
        e->use_lt = 0; /* cublasGemmEx handles every shape */
    }
    return e;
}

/* C = alpha op(A) op(B) + beta * Cin, where Cin is C's data or (beta 1) another buffer of
 * C's shape and dtype: cuBLASLt reads its C and writes its D; the cublasGemmEx fallback
 * works in place, so Cin is copied into C first there. */
static void gemm(Backend *be, Tensor *C, const Tensor *A, int transA, const Tensor *B, int transB, float alpha,
                 float beta, const void *Cin, MatmulPrecision prec) {
    CudaImpl *ci = cuda_impl(be);
    int64_t ra = tensor_rows(A), ca = tensor_cols(A), rb = tensor_rows(B), cb = tensor_cols(B);
    int64_t M = transA ? ca : ra, K = transA ? ra : ca;
    int64_t Kb = transB ? cb : rb, N = transB ? rb : cb;
    OW_CHECKF(K == Kb && tensor_rows(C) == M && tensor_cols(C) == N,
              "matmul shapes: op(A) %lldx%lld, op(B) %lldx%lld, C %lldx%lld", (long long)M, (long long)K, (long long)Kb,
              (long long)N, (long long)tensor_rows(C), (long long)tensor_cols(C));
    OW_CHECKF(A->dtype == B->dtype, "matmul: A is %s, B is %s", dtype_name(A->dtype), dtype_name(B->dtype));
    OW_CHECKF((A->dtype == OW_BF16 && (C->dtype == OW_BF16 || C->dtype == OW_F32)) ||
                  (A->dtype == OW_F32 && C->dtype == OW_F32),
              "matmul: unsupported dtypes A/B %s, C %s", dtype_name(A->dtype), dtype_name(C->dtype));
    OW_CHECK(Cin == C->data || beta == 1.0f);
    if (M == 0 || N == 0) return;
    if (K == 0) { /* op(A) op(B) is zero */
        if (Cin != C->data)
            CUDA_CHECK(cudaMemcpyAsync(C->data, Cin, tensor_nbytes(C), cudaMemcpyDeviceToDevice, ci->stream));
        else if (beta == 0.0f)
            cuda_fill(be, C, 0.0f);
        else if (beta != 1.0f)
            cuda_scale(be, C, beta);
        return;
    }
    OW_CHECKF(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX, "matmul dimensions exceed int");

    GemmKey key;
    memset(&key, 0, sizeof key);
    key.m = N;
    key.n = M;
    key.k = K;
    key.opA = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    key.opB = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    key.dtAB = A->dtype;
    key.dtC = C->dtype;
    key.beta_nonzero = beta != 0.0f;
    key.alignA = ptr_align(B->data);
    key.alignB = ptr_align(A->data);
    key.alignC = ptr_align(C->data) < ptr_align(Cin) ? ptr_align(C->data) : ptr_align(Cin);
    key.tf32 = prec == MATMUL_FAST_F32 && A->dtype == OW_F32;

    /* first cuBLAS operand: B's data, stored column-major as cb x rb; second: A's, ca x ra */
    LtCall call;
    lt_call_create(&call, &key, cb, rb, ca, ra);
    GemmCacheEntry *e = cache_lookup(ci, &key, &call);
    if (e->use_lt) {
        CUBLAS_CHECK(cublasLtMatmul(ci->lt, call.op, &alpha, B->data, call.la, A->data, call.lb, &beta, Cin, call.lc,
                                    C->data, call.lc, &e->algo, ci->lt_ws, ci->lt_ws_size, ci->stream));
    } else {
        if (Cin != C->data)
            CUDA_CHECK(cudaMemcpyAsync(C->data, Cin, tensor_nbytes(C), cudaMemcpyDeviceToDevice, ci->stream));
        CUBLAS_CHECK(cublasGemmEx(ci->blas, (cublasOperation_t)key.opA, (cublasOperation_t)key.opB, (int)N, (int)M,
                                  (int)K, &alpha, B->data, cuda_dtype(B->dtype), (int)cb, A->data, cuda_dtype(A->dtype),
                                  (int)ca, &beta, C->data, cuda_dtype(C->dtype), (int)N,
                                  key.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    lt_call_destroy(&call);
}

void cuda_matmul(Backend *be, Tensor *C, const Tensor *A, int transA, const Tensor *B, int transB, float alpha,
                 float beta) {
    gemm(be, C, A, transA, B, transB, alpha, beta, C->data, MATMUL_EXACT);
}

void cuda_matmul_prec(Backend *be, Tensor *C, const Tensor *A, int transA, const Tensor *B, int transB, float alpha,
                      float beta, MatmulPrecision prec) {
    gemm(be, C, A, transA, B, transB, alpha, beta, C->data, prec);
}

void cuda_matmul_add(Backend *be, Tensor *D, const Tensor *A, int transA, const Tensor *B, int transB, float alpha,
                     const Tensor *Cin) {
    OW_CHECKF(tensor_numel(Cin) == tensor_numel(D) && Cin->dtype == D->dtype, "matmul_add: Cin must match D");
    gemm(be, D, A, transA, B, transB, alpha, 1.0f, Cin->data, MATMUL_EXACT);
}
