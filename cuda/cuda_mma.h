/* cuda_mma.h: the warp-level PTX primitives of the tensor-core kernels (sm_80 and
 * later): bf16 mma.sync m16n8k16 with fp32 accumulation, ldmatrix (plain and
 * transposed, four 8x8 matrices), 16-byte cp.async with zero fill, the
 * bf16x2 pack and the hardware base-2 exponential. The CPU emulator (scripts/cuda_emu) defines the same functions
 * in emu_ptx.h with the layouts of the PTX ISA, so kernels using them run there.
 *
 * Fragment layouts (PTX ISA, mma.m16n8k16 .bf16; lane = 4 * g + t):
 * - A (16 x 16, row-major): a[0] = (row g, cols 2t, 2t+1), a[1] = (row g+8, same
 *   cols), a[2] = (row g, cols 2t+8, 2t+9), a[3] = (row g+8, cols 2t+8, 2t+9);
 *   the lower half of each register holds the lower column.
 * - B (16 x 8, k x n): b0 = (rows 2t, 2t+1, col g), b1 = (rows 2t+8, 2t+9, col g).
 * - C/D (16 x 8, fp32): c[0], c[1] = (row g, cols 2t, 2t+1), c[2], c[3] = (row g+8, ...).
 * ldmatrix.x4: lane L gives the shared address of row L % 8 of matrix L / 8 (16
 * bytes, 16-byte aligned); register i gets matrix i, row g, columns 2t, 2t+1
 * (.trans: the transpose, i.e. rows 2t, 2t+1 of column g). */
#ifndef OWLORE_CUDA_CUDA_MMA_H
#define OWLORE_CUDA_CUDA_MMA_H

#include <stdint.h>

#ifdef __CUDA_EMU__
#include "emu_ptx.h"
#else

__device__ __forceinline__ uint32_t ow_smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

/* d += a b (16 x 8 x 16, bf16 in, fp32 accumulate). */
__device__ __forceinline__ void ow_mma_bf16(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ow_ldmatrix_x4(uint32_t r[4], const void *smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(ow_smem_addr(smem))
                 : "memory");
}

__device__ __forceinline__ void ow_ldmatrix_x4_trans(uint32_t r[4], const void *smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(ow_smem_addr(smem))
                 : "memory");
}

/* 16 bytes global -> shared, asynchronously; valid == 0 writes 16 zero bytes
 * (gmem must still be a valid address). Both addresses 16-byte aligned. */
__device__ __forceinline__ void ow_cp_async16(void *smem, const void *gmem, int valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(ow_smem_addr(smem)), "l"(gmem),
                 "r"(valid ? 16 : 0)
                 : "memory");
}

__device__ __forceinline__ void ow_cp_async_commit(void) { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

/* Waits until at most N committed groups of this thread are still pending. */
template <int N> __device__ __forceinline__ void ow_cp_async_wait(void) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

/* bf16 pair (round to nearest even): lo in the lower half. */
__device__ __forceinline__ uint32_t ow_pack_bf16x2(float lo, float hi) {
    uint32_t r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

/* 2^x by the special function unit (ex2.approx.ftz: about 2 ulp; results below
 * 2^-126 flush to 0; -inf gives 0). exp2f without fast math wraps it in a
 * range reduction that the softmax (arguments <= 0) does not need. */
__device__ __forceinline__ float ow_exp2(float x) {
    float r;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(r) : "f"(x));
    return r;
}

#endif /* __CUDA_EMU__ */
#endif
