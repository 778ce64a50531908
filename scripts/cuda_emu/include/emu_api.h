// emu_api.h: host stand-ins for the CUDA runtime, cuBLAS(Lt) and cuSOLVER calls the backend makes.
#pragma once
#include "emu.h"
#undef cudaSuccess
#undef CUBLAS_STATUS_SUCCESS
#undef CUSOLVER_STATUS_SUCCESS
enum { cudaSuccess = 0, cudaErrorMemoryAllocation = 2, cudaErrorNoDevice = 100 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
enum { cudaStreamNonBlocking = 1 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
struct cudaDeviceProp { char name[256]; int major, minor; size_t sharedMemPerBlockOptin; int multiProcessorCount; };
int cudaGetDeviceCount(int *n);
int cudaSetDevice(int d);
int cudaGetDeviceProperties(cudaDeviceProp *p, int d);
int cudaStreamCreateWithFlags(cudaStream_t *s, unsigned f);
int cudaStreamDestroy(cudaStream_t s);
int cudaStreamSynchronize(cudaStream_t s);
int cudaMalloc(void **p, size_t n);
int cudaFree(void *p);
int cudaMemGetInfo(size_t *f, size_t *t);
int cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t st);
int cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t st);
int cudaFuncSetAttribute(const void *f, cudaFuncAttribute a, int v);
enum cudaLimit { cudaLimitStackSize = 0 };
int cudaDeviceSetLimit(cudaLimit l, size_t v);
// asynchronous host copies: copies run at once, or late on copy streams (OWLORE_EMU_LATE_COPIES, emu_api.cpp)
typedef void *cudaEvent_t;
enum { cudaEventDisableTiming = 2, cudaHostAllocDefault = 0, cudaHostAllocPortable = 1, cudaHostAllocMapped = 2 };
int cudaHostAlloc(void **p, size_t n, unsigned flags);
int cudaFreeHost(void *p);
int cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
int cudaEventDestroy(cudaEvent_t e);
int cudaEventRecord(cudaEvent_t e, cudaStream_t s);
int cudaEventSynchronize(cudaEvent_t e);
int cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags);
enum cudaMemoryType { cudaMemoryTypeUnregistered = 0, cudaMemoryTypeHost = 1, cudaMemoryTypeDevice = 2 };
struct cudaPointerAttributes { cudaMemoryType type; int device; void *devicePointer, *hostPointer; };
// host: inside a cudaHostAlloc block; device: inside a cudaMalloc block; else unregistered
int cudaPointerGetAttributes(cudaPointerAttributes *a, const void *p);
extern size_t g_emu_device_bytes; // fake device capacity

typedef enum { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 } cudaDataType_t;
typedef enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_SUPPORTED = 15 } cublasStatus_enum;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77 } cublasComputeType_t;
typedef enum { CUBLAS_GEMM_DEFAULT = -1 } cublasGemmAlgo_t;
typedef enum { CUBLASLT_MATMUL_DESC_TRANSA = 3, CUBLASLT_MATMUL_DESC_TRANSB = 4 } cublasLtMatmulDescAttributes_t;
typedef enum { CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,
               CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,
               CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8 } cublasLtMatmulPreferenceAttributes_t;
struct EmuLtDesc { int ta, tb; };
struct EmuLtLayout { int type; uint64_t rows, cols; int64_t ld; };
typedef EmuLtDesc *cublasLtMatmulDesc_t;
typedef EmuLtLayout *cublasLtMatrixLayout_t;
typedef void *cublasLtMatmulPreference_t;
typedef struct { cublasLtMatmulAlgo_t algo; size_t workspaceSize; cublasStatus_t state; float wavesCount; int reserved[4]; } cublasLtMatmulHeuristicResult_t;
int cublasCreate(cublasHandle_t *h);
int cublasDestroy(cublasHandle_t h);
int cublasSetStream(cublasHandle_t h, cudaStream_t s);
int cublasSetWorkspace(cublasHandle_t h, void *w, size_t n);
int cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void *alpha,
                 const void *A, cudaDataType_t at, int lda, const void *B, cudaDataType_t bt, int ldb, const void *beta,
                 void *C, cudaDataType_t ct, int ldc, cublasComputeType_t comp, cublasGemmAlgo_t algo);
int cublasLtCreate(cublasLtHandle_t *h);
int cublasLtDestroy(cublasLtHandle_t h);
int cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t c, cudaDataType_t s);
int cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d);
int cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a, const void *buf, size_t n);
int cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t t, uint64_t rows, uint64_t cols, int64_t ld);
int cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l);
int cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p);
int cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p);
int cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t a, const void *buf, size_t n);
int cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                   cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dd, cublasLtMatmulPreference_t p, int req,
                                   cublasLtMatmulHeuristicResult_t *res, int *nres);
int cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha, const void *A, cublasLtMatrixLayout_t la,
                   const void *B, cublasLtMatrixLayout_t lb, const void *beta, const void *C, cublasLtMatrixLayout_t lc, void *D,
                   cublasLtMatrixLayout_t ld, const cublasLtMatmulAlgo_t *algo, void *ws, size_t wsn, cudaStream_t s);
typedef enum { CUSOLVER_STATUS_SUCCESS = 0 } cusolverStatus_enum;
int cusolverDnCreate(cusolverDnHandle_t *h);
int cusolverDnDestroy(cusolverDnHandle_t h);
int cusolverDnSetStream(cusolverDnHandle_t h, cudaStream_t s);
int cusolverDnSgesvd_bufferSize(cusolverDnHandle_t h, int m, int n, int *lwork);
int cusolverDnSgesvd(cusolverDnHandle_t h, signed char ju, signed char jv, int m, int n, float *A, int lda, float *S, float *U,
                     int ldu, float *VT, int ldvt, float *work, int lwork, float *rwork, int *info);
int cusolverDnSgeqrf_bufferSize(cusolverDnHandle_t h, int m, int n, float *A, int lda, int *lwork);
int cusolverDnSgeqrf(cusolverDnHandle_t h, int m, int n, float *A, int lda, float *tau, float *work, int lwork, int *info);
int cusolverDnSorgqr_bufferSize(cusolverDnHandle_t h, int m, int n, int k, const float *A, int lda, const float *tau, int *lwork);
int cusolverDnSorgqr(cusolverDnHandle_t h, int m, int n, int k, float *A, int lda, const float *tau, float *work, int lwork, int *info);
// fp64 Gram-matrix paths of cuda_solver.cu
typedef enum { CUBLAS_SIDE_LEFT = 0, CUBLAS_SIDE_RIGHT = 1 } cublasSideMode_t;
typedef enum { CUBLAS_FILL_MODE_LOWER = 0, CUBLAS_FILL_MODE_UPPER = 1 } cublasFillMode_t;
typedef enum { CUBLAS_DIAG_NON_UNIT = 0, CUBLAS_DIAG_UNIT = 1 } cublasDiagType_t;
typedef enum { CUSOLVER_EIG_MODE_NOVECTOR = 0, CUSOLVER_EIG_MODE_VECTOR = 1 } cusolverEigMode_t;
int cublasDgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const double *alpha,
                const double *A, int lda, const double *B, int ldb, const double *beta, double *C, int ldc);
int cublasDtrsm(cublasHandle_t h, cublasSideMode_t side, cublasFillMode_t uplo, cublasOperation_t trans, cublasDiagType_t diag,
                int m, int n, const double *alpha, const double *A, int lda, double *B, int ldb);
int cusolverDnDpotrf_bufferSize(cusolverDnHandle_t h, cublasFillMode_t uplo, int n, double *A, int lda, int *lwork);
int cusolverDnDpotrf(cusolverDnHandle_t h, cublasFillMode_t uplo, int n, double *A, int lda, double *work, int lwork, int *info);
int cusolverDnDsyevd_bufferSize(cusolverDnHandle_t h, cusolverEigMode_t jobz, cublasFillMode_t uplo, int n, const double *A,
                                int lda, const double *W, int *lwork);
int cusolverDnDsyevd(cusolverDnHandle_t h, cusolverEigMode_t jobz, cublasFillMode_t uplo, int n, double *A, int lda, double *W,
                     double *work, int lwork, int *info);
