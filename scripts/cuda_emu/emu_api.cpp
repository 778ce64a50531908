// emu_api.cpp: host implementations of the CUDA runtime, cuBLAS(Lt) and
// cuSOLVER calls of the backend (see README.md).
#include "emu_api.h"
#include <deque>
#include <stdlib.h>
size_t g_emu_device_bytes = (size_t)16 << 30;
static size_t g_used = 0;
struct Alloc { void *p; size_t n; };
static std::vector<Alloc> g_allocs;
// devices: 1, or OWLORE_EMU_DEVICES (data-parallel ranks, one device each; all the same emulated one)
int cudaGetDeviceCount(int *n) { const char *e = getenv("OWLORE_EMU_DEVICES"); *n = e && atoi(e) > 0 ? atoi(e) : 1; return 0; }
int cudaSetDevice(int) { return 0; }
// shared memory per block the emulated device offers: the H200's, or OWLORE_EMU_SMEM_OPTIN
static int emu_smem_optin(void) {
    const char *e = getenv("OWLORE_EMU_SMEM_OPTIN");
    return e && atoi(e) > 0 ? atoi(e) : 232448;
}
int cudaGetDeviceProperties(cudaDeviceProp *p, int) { memset(p, 0, sizeof *p); strcpy(p->name, "Emulated H200"); p->major = 9; p->minor = 0; p->sharedMemPerBlockOptin = (size_t)emu_smem_optin(); p->multiProcessorCount = 132; return 0; }
// ---- streams and events ----
// By default a copy runs when it is queued (every stream is synchronous). With
// OWLORE_EMU_LATE_COPIES=1 a copy or memset queued on a copy stream (one that
// runs no kernel and no library call) is held in its stream's queue and runs
// as late as CUDA allows: when a stream waits for, or the host synchronises
// with, an event recorded after it, when its stream is synchronised, when a
// kernel or library call is bound to its stream, or when memory is freed. So
// a kernel that reads a copy's destination without waiting for it, a host
// that reuses a copy's source or reads its destination before copy_sync, or
// compute that overwrites the source of a pending copy, sees the wrong bytes.
struct EmuCopy { void *d; const void *s; size_t n; int set, v; };
// queued and done count every copy the stream ever held, so an event's mark stays valid
struct EmuStream { std::deque<EmuCopy> q; uint64_t queued = 0, done = 0; bool compute = false; };
struct EmuEvent { EmuStream *s = nullptr; uint64_t at = 0; };
static std::vector<EmuStream *> g_streams;
static int emu_late_copies(void) {
    static int v = -1;
    if (v < 0) { const char *e = getenv("OWLORE_EMU_LATE_COPIES"); v = e && e[0] == '1'; }
    return v;
}
static void emu_copy_run(const EmuCopy &c) { if (c.set) memset(c.d, c.v, c.n); else memmove(c.d, c.s, c.n); }
// runs the copies of s queued before mark `upto`
static void emu_stream_run(EmuStream *s, uint64_t upto) {
    while (s->done < upto && !s->q.empty()) { emu_copy_run(s->q.front()); s->q.pop_front(); s->done++; }
}
static void emu_run_all(void) { for (EmuStream *s : g_streams) emu_stream_run(s, s->queued); }
void emu_stream_compute(cudaStream_t st) {
    EmuStream *s = (EmuStream *)st;
    if (!s) { emu_run_all(); return; } // the legacy default stream
    s->compute = true;
    emu_stream_run(s, s->queued);
}
static int emu_queue(cudaStream_t st, const EmuCopy &c) {
    EmuStream *s = (EmuStream *)st;
    if (!emu_late_copies() || !s || s->compute) {
        if (s) emu_stream_run(s, s->queued); else emu_run_all();
        emu_copy_run(c);
        if (s) s->queued++, s->done++;
        return 0;
    }
    s->q.push_back(c);
    s->queued++;
    return 0;
}
int cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { g_streams.push_back(new EmuStream); *s = g_streams.back(); return 0; }
int cudaStreamDestroy(cudaStream_t st) {
    EmuStream *s = (EmuStream *)st;
    emu_stream_run(s, s->queued);
    for (size_t i = 0; i < g_streams.size(); i++) if (g_streams[i] == s) { g_streams.erase(g_streams.begin() + i); break; }
    delete s; return 0;
}
int cudaStreamSynchronize(cudaStream_t st) { if (st) emu_stream_run((EmuStream *)st, ((EmuStream *)st)->queued); else emu_run_all(); return 0; }
int cudaMalloc(void **p, size_t n) {
    if (g_used + n > g_emu_device_bytes) { *p = NULL; return cudaErrorMemoryAllocation; }
    if (posix_memalign(p, 256, n ? n : 1) != 0) return cudaErrorMemoryAllocation;
    memset(*p, 0xA5, n); // garbage, so missing zeroing shows
    g_used += n; g_allocs.push_back({*p, n}); return 0;
}
int cudaFree(void *p) {
    emu_run_all(); // cudaFree waits for the device
    for (size_t i = 0; i < g_allocs.size(); i++) if (g_allocs[i].p == p) { g_used -= g_allocs[i].n; g_allocs.erase(g_allocs.begin() + i); free(p); return 0; }
    fprintf(stderr, "cudaFree of unknown %p\n", p); abort();
}
int cudaMemGetInfo(size_t *f, size_t *t) { *f = g_emu_device_bytes - g_used; *t = g_emu_device_bytes; return 0; }
int cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind, cudaStream_t st) { return emu_queue(st, EmuCopy{d, s, n, 0, 0}); }
int cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t st) { return emu_queue(st, EmuCopy{d, NULL, n, 1, v}); }
int cudaFuncSetAttribute(const void *, cudaFuncAttribute, int v) { if (v > emu_smem_optin()) { fprintf(stderr, "smem %d too large\n", v); abort(); } return 0; }

static float ld(const void *p, int t, size_t i) {
    if (t == CUDA_R_32F) return ((const float *)p)[i];
    if (t == CUDA_R_16BF) return __uint_as_float((uint32_t)((const uint16_t *)p)[i] << 16);
    return f16_to_f32(((const uint16_t *)p)[i]);
}
static void st(void *p, int t, size_t i, float v) {
    if (t == CUDA_R_32F) ((float *)p)[i] = v;
    else if (t == CUDA_R_16BF) ((uint16_t *)p)[i] = __float2bfloat16(v).b;
    else ((uint16_t *)p)[i] = f32_to_f16(v);
}
// column-major D = alpha op(A) op(B) + beta C, m x n, k
static void gemm(int ta, int tb, int m, int n, int k, float alpha, const void *A, int at, int lda, const void *B, int bt, int ldb,
                 float beta, const void *C, void *D, int ct, int ldc) {
    for (int j = 0; j < n; j++) for (int i = 0; i < m; i++) {
        float s = 0;
        for (int p = 0; p < k; p++) {
            float a = ta ? ld(A, at, (size_t)p + (size_t)i * lda) : ld(A, at, (size_t)i + (size_t)p * lda);
            float b = tb ? ld(B, bt, (size_t)j + (size_t)p * ldb) : ld(B, bt, (size_t)p + (size_t)j * ldb);
            s += a * b;
        }
        float r = alpha * s;
        if (beta != 0.0f) r += beta * ld(C, ct, (size_t)i + (size_t)j * ldc);
        st(D, ct, (size_t)i + (size_t)j * ldc, r);
    }
}
int cublasCreate(cublasHandle_t *h) { *h = (void *)1; return 0; }
int cublasDestroy(cublasHandle_t) { return 0; }
int cublasSetStream(cublasHandle_t, cudaStream_t s) { emu_stream_compute(s); return 0; }
int cublasSetWorkspace(cublasHandle_t, void *, size_t) { return 0; }
int cudaDeviceSetLimit(cudaLimit, size_t) { return 0; }
int cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void *alpha, const void *A,
                 cudaDataType_t at, int lda, const void *B, cudaDataType_t bt, int ldb, const void *beta, void *C, cudaDataType_t ct,
                 int ldc, cublasComputeType_t, cublasGemmAlgo_t) {
    gemm(ta, tb, m, n, k, *(const float *)alpha, A, at, lda, B, bt, ldb, *(const float *)beta, C, C, ct, ldc); return 0;
}
int cublasLtCreate(cublasLtHandle_t *h) { *h = (void *)1; return 0; }
int cublasLtDestroy(cublasLtHandle_t) { return 0; }
int cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t, cudaDataType_t) { *d = new EmuLtDesc{0, 0}; return 0; }
int cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) { delete d; return 0; }
int cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a, const void *buf, size_t n) {
    if (n != sizeof(int)) abort();
    if (a == CUBLASLT_MATMUL_DESC_TRANSA) d->ta = *(const int *)buf; else d->tb = *(const int *)buf; return 0;
}
int cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t t, uint64_t rows, uint64_t cols, int64_t ld) {
    if (ld < (int64_t)rows) { fprintf(stderr, "layout ld %lld < rows %llu\n", (long long)ld, (unsigned long long)rows); abort(); }
    *l = new EmuLtLayout{t, rows, cols, ld}; return 0;
}
int cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) { delete l; return 0; }
int cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) { *p = (void *)1; return 0; }
int cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t) { return 0; }
int cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t, cublasLtMatmulPreferenceAttributes_t a, const void *, size_t n) {
    if (a == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES && n != 8) abort();
    if (a != CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES && n != 4) abort();
    return 0;
}
int cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                   cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatmulPreference_t, int,
                                   cublasLtMatmulHeuristicResult_t *res, int *nres) {
    // OWLORE_EMU_NO_LT=1: no algorithm, so the backend takes its cublasGemmEx fallback
    memset(res, 0, sizeof *res); *nres = getenv("OWLORE_EMU_NO_LT") ? 0 : 1; res->state = 0; return 0;
}
int cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t d, const void *alpha, const void *A, cublasLtMatrixLayout_t la, const void *B,
                   cublasLtMatrixLayout_t lb, const void *beta, const void *C, cublasLtMatrixLayout_t lc, void *D, cublasLtMatrixLayout_t ldd,
                   const cublasLtMatmulAlgo_t *, void *, size_t, cudaStream_t s) {
    emu_stream_compute(s);
    if (lc != ldd) abort(); // C may differ from D (matmul_add): read C, write D
    int m = (int)lc->rows, n = (int)lc->cols;
    int k = d->ta ? (int)la->rows : (int)la->cols;
    int am = d->ta ? (int)la->cols : (int)la->rows;
    int bk = d->tb ? (int)lb->cols : (int)lb->rows, bn = d->tb ? (int)lb->rows : (int)lb->cols;
    if (am != m || bk != k || bn != n) { fprintf(stderr, "Lt dims mismatch m %d/%d k %d/%d n %d/%d\n", am, m, bk, k, bn, n); abort(); }
    gemm(d->ta, d->tb, m, n, k, *(const float *)alpha, A, la->type, (int)la->ld, B, lb->type, (int)lb->ld, *(const float *)beta, C, D, lc->type, (int)lc->ld);
    return 0;
}
extern "C" {
void sgesvd_(const char *, const char *, const int *, const int *, float *, const int *, float *, float *, const int *, float *, const int *, float *, const int *, int *, size_t, size_t);
void sgeqrf_(const int *, const int *, float *, const int *, float *, float *, const int *, int *);
void sorgqr_(const int *, const int *, const int *, float *, const int *, const float *, float *, const int *, int *);
}
int cusolverDnCreate(cusolverDnHandle_t *h) { *h = (void *)1; return 0; }
int cusolverDnDestroy(cusolverDnHandle_t) { return 0; }
int cusolverDnSetStream(cusolverDnHandle_t, cudaStream_t s) { emu_stream_compute(s); return 0; }
int cusolverDnSgesvd_bufferSize(cusolverDnHandle_t, int m, int n, int *lwork) {
    if (m < n) { fprintf(stderr, "gesvd needs m >= n (%d, %d)\n", m, n); abort(); }
    *lwork = 5 * (m + n) + m * n; return 0;
}
int cusolverDnSgesvd(cusolverDnHandle_t, signed char ju, signed char jv, int m, int n, float *A, int lda, float *S, float *U, int ldu,
                     float *VT, int ldvt, float *work, int lwork, float *, int *info) {
    if (m < n) abort();
    char a = (char)ju, b = (char)jv;
    sgesvd_(&a, &b, &m, &n, A, &lda, S, U, &ldu, VT, &ldvt, work, &lwork, info, 1, 1); return 0;
}
int cusolverDnSgeqrf_bufferSize(cusolverDnHandle_t, int m, int n, float *, int, int *lwork) { *lwork = 64 * (m + n); return 0; }
int cusolverDnSgeqrf(cusolverDnHandle_t, int m, int n, float *A, int lda, float *tau, float *work, int lwork, int *info) {
    sgeqrf_(&m, &n, A, &lda, tau, work, &lwork, info); return 0;
}
int cusolverDnSorgqr_bufferSize(cusolverDnHandle_t, int m, int n, int, const float *, int, const float *, int *lwork) { *lwork = 64 * (m + n); return 0; }
int cusolverDnSorgqr(cusolverDnHandle_t, int m, int n, int k, float *A, int lda, const float *tau, float *work, int lwork, int *info) {
    sorgqr_(&m, &n, &k, A, &lda, tau, work, &lwork, info); return 0;
}
// fp64 BLAS / LAPACK of the Gram-matrix paths, column-major as cuBLAS / cuSOLVER
extern "C" {
void dgemm_(const char *, const char *, const int *, const int *, const int *, const double *, const double *, const int *,
            const double *, const int *, const double *, double *, const int *, size_t, size_t);
void dtrsm_(const char *, const char *, const char *, const char *, const int *, const int *, const double *, const double *,
            const int *, double *, const int *, size_t, size_t, size_t, size_t);
void dpotrf_(const char *, const int *, double *, const int *, int *, size_t);
void dsyevd_(const char *, const char *, const int *, double *, const int *, double *, double *, const int *, int *, const int *,
             int *, size_t, size_t);
}
int cublasDgemm(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const double *alpha,
                const double *A, int lda, const double *B, int ldb, const double *beta, double *C, int ldc) {
    char a = ta ? 'T' : 'N', b = tb ? 'T' : 'N';
    dgemm_(&a, &b, &m, &n, &k, alpha, A, &lda, B, &ldb, beta, C, &ldc, 1, 1); return 0;
}
int cublasDtrsm(cublasHandle_t, cublasSideMode_t side, cublasFillMode_t uplo, cublasOperation_t trans, cublasDiagType_t diag,
                int m, int n, const double *alpha, const double *A, int lda, double *B, int ldb) {
    char s = side ? 'R' : 'L', u = uplo ? 'U' : 'L', t = trans ? 'T' : 'N', d = diag ? 'U' : 'N';
    dtrsm_(&s, &u, &t, &d, &m, &n, alpha, A, &lda, B, &ldb, 1, 1, 1, 1); return 0;
}
int cusolverDnDpotrf_bufferSize(cusolverDnHandle_t, cublasFillMode_t, int n, double *, int, int *lwork) { *lwork = n; return 0; }
int cusolverDnDpotrf(cusolverDnHandle_t, cublasFillMode_t uplo, int n, double *A, int lda, double *, int, int *info) {
    char u = uplo ? 'U' : 'L';
    dpotrf_(&u, &n, A, &lda, info, 1); return 0;
}
// the workspace holds dsyevd's real work; its integer work is a host vector here
int cusolverDnDsyevd_bufferSize(cusolverDnHandle_t, cusolverEigMode_t, cublasFillMode_t, int n, const double *, int, const double *,
                                int *lwork) { *lwork = 1 + 6 * n + 2 * n * n; return 0; }
int cusolverDnDsyevd(cusolverDnHandle_t, cusolverEigMode_t jobz, cublasFillMode_t uplo, int n, double *A, int lda, double *W,
                     double *work, int lwork, int *info) {
    char j = jobz ? 'V' : 'N', u = uplo ? 'U' : 'L';
    int liwork = 3 + 5 * n;
    std::vector<int> iwork((size_t)liwork);
    dsyevd_(&j, &u, &n, A, &lda, W, work, &lwork, iwork.data(), &liwork, info, 1, 1); return 0;
}
static std::vector<Alloc> g_host_allocs;
int cudaHostAlloc(void **p, size_t n, unsigned) {
    if (posix_memalign(p, 4096, n ? n : 1) != 0) return cudaErrorMemoryAllocation;
    memset(*p, 0x5A, n); // garbage: the backend must zero it
    g_host_allocs.push_back({*p, n ? n : 1});
    return 0;
}
int cudaFreeHost(void *p) {
    emu_run_all(); // cudaFreeHost waits for the device
    for (size_t i = 0; i < g_host_allocs.size(); i++)
        if (g_host_allocs[i].p == p) { g_host_allocs.erase(g_host_allocs.begin() + i); break; }
    free(p); return 0;
}
static int emu_inside(const std::vector<Alloc> &v, const void *p) {
    for (const Alloc &a : v) if ((const char *)p >= (const char *)a.p && (const char *)p < (const char *)a.p + a.n) return 1;
    return 0;
}
int cudaPointerGetAttributes(cudaPointerAttributes *a, const void *p) {
    memset(a, 0, sizeof *a);
    a->type = emu_inside(g_host_allocs, p) ? cudaMemoryTypeHost : emu_inside(g_allocs, p) ? cudaMemoryTypeDevice : cudaMemoryTypeUnregistered;
    return 0;
}
int cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) { *e = new EmuEvent; return 0; }
int cudaEventDestroy(cudaEvent_t e) { delete (EmuEvent *)e; return 0; }
// an event marks its stream's queue as it is when recorded; waiting for it runs the copies before the mark
int cudaEventRecord(cudaEvent_t e, cudaStream_t st) {
    EmuEvent *ev = (EmuEvent *)e;
    ev->s = (EmuStream *)st;
    ev->at = st ? ev->s->queued : 0;
    if (!st) emu_run_all();
    return 0;
}
static void emu_event_reached(cudaEvent_t e) {
    EmuEvent *ev = (EmuEvent *)e;
    if (ev->s) emu_stream_run(ev->s, ev->at);
}
int cudaEventSynchronize(cudaEvent_t e) { emu_event_reached(e); return 0; }
int cudaStreamWaitEvent(cudaStream_t, cudaEvent_t e, unsigned) { emu_event_reached(e); return 0; }
