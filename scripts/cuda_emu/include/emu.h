// emu.h: a CPU emulation of the CUDA features the owlore kernels use:
// threads of a block run as pthreads with real barriers; blocks run one at a
// time (so function-scope `static` stands in for __shared__); warp shuffles
// and __syncwarp use per-warp barriers; WMMA fragments are emulated with a full
// 16x16 copy per lane (accumulator x[] = the lane's 8-element slice).
#pragma once
#include <cstdint>
#include <cstring>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <pthread.h>
#include <functional>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n)
#define __shared__ static
#define __CUDA_EMU__ 1

struct dim3 { unsigned x, y, z; dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {} };
struct alignas(16) uint4 { unsigned x, y, z, w; }; // 16-byte aligned as in CUDA: UBSan flags misaligned vector loads
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
static inline float4 make_float4(float a, float b, float c, float d) { float4 f = {a, b, c, d}; return f; }
static inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { uint4 u = {a, b, c, d}; return u; }

extern thread_local dim3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

#define EMU_XCHG_WORDS 12
struct EmuBlock {
    pthread_barrier_t block_bar;
    pthread_barrier_t warp_bar[32];
    float xchg_f[32][32];
    double xchg_d[32][32];
    uint32_t xchg_u[2][32][32][EMU_XCHG_WORDS]; // warp-collective PTX ops (emu_ptx.h), two alternating buffers
};
extern EmuBlock *g_emu_block;

static inline void __syncthreads() { pthread_barrier_wait(&g_emu_block->block_bar); }
static inline void __syncwarp(unsigned mask = 0xffffffffu) { (void)mask; pthread_barrier_wait(&g_emu_block->warp_bar[threadIdx.x >> 5]); }
static inline float __shfl_xor_sync(unsigned mask, float v, int o) {
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    g_emu_block->xchg_f[w][l] = v; __syncwarp(mask);
    float r = g_emu_block->xchg_f[w][l ^ o]; __syncwarp(mask); return r;
}
static inline double __shfl_xor_sync(unsigned mask, double v, int o) {
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    g_emu_block->xchg_d[w][l] = v; __syncwarp(mask);
    double r = g_emu_block->xchg_d[w][l ^ o]; __syncwarp(mask); return r;
}
static inline float __uint_as_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t __float_as_uint(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
static inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
static inline float __fsub_rn(float a, float b) { volatile float r = a - b; return r; }
static inline int min(int a, int b) { return a < b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }

extern "C" float f16_to_f32(uint16_t h);
extern "C" uint16_t f32_to_f16(float f);
struct __half { uint16_t b; };
static inline __half __ushort_as_half(uint16_t u) { __half h; h.b = u; return h; }
static inline uint16_t __half_as_ushort(__half h) { return h.b; }
static inline float __half2float(__half h) { return f16_to_f32(h.b); }
static inline __half __float2half_rn(float f) { __half h; h.b = f32_to_f16(f); return h; }

struct __nv_bfloat16 { uint16_t b; };
static inline __nv_bfloat16 __float2bfloat16(float f) {
    uint32_t u = __float_as_uint(f);
    __nv_bfloat16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) { r.b = (uint16_t)((u >> 16) | 0x40u); return r; }
    u += 0x7fffu + ((u >> 16) & 1u); r.b = (uint16_t)(u >> 16); return r;
}
static inline float __bfloat162float(__nv_bfloat16 h) { return __uint_as_float((uint32_t)h.b << 16); }

// launch: runs every block with blockDim.x threads. With smem_bytes > 0 the
// dynamic shared memory is filled with 0xff bytes (NaN as bf16 and f32) before
// each block, so reading what the block did not write shows, and a guard zone
// after smem_bytes is checked after each block (writes beyond the size abort).
void emu_launch(dim3 grid, dim3 block, size_t smem_bytes, const std::function<void()> &body);
// aborts when the calling thread ends its block with cp.async copies pending (emu_ptx.h)
void emu_block_exit_check(void);

// dummy handle types for cuda_internal.h
typedef int cudaError_t; typedef void *cudaStream_t; typedef void *cublasLtHandle_t; typedef void *cublasHandle_t;
typedef void *cusolverDnHandle_t; typedef struct { uint64_t data[8]; } cublasLtMatmulAlgo_t;
typedef int cublasStatus_t; typedef int cusolverStatus_t;
// a kernel or library call runs on stream s: the copies held on it run first (emu_api.cpp)
void emu_stream_compute(cudaStream_t s);
#define cudaSuccess 0
#define CUBLAS_STATUS_SUCCESS 0
#define CUSOLVER_STATUS_SUCCESS 0
static inline const char *cudaGetErrorName(int) { return "?"; }
static inline const char *cudaGetErrorString(int) { return "?"; }
static inline const char *cublasGetStatusString(int) { return "?"; }
static inline int cudaGetLastError() { return 0; }
