// emu_ptx.h: the emulator's twins of cuda/cuda_mma.h (mma.sync m16n8k16 bf16,
// ldmatrix x4 plain/transposed, cp.async 16 bytes with zero fill, bf16x2 pack,
// ex2.approx.ftz as exp2f with results below 2^-126 flushed to 0).
// Warp-collective ops exchange the lanes' registers through EmuBlock slots
// (two buffers used alternately, one warp barrier per op), so the fragment
// layouts are the PTX ISA's, lane by lane. ldmatrix and cp.async abort on
// addresses that are not 16-byte aligned. cp.async copies are deferred to the
// cp.async.wait_group that covers them and their destination is poisoned
// (0xff bytes: bf16 NaN) when issued, so reading before the wait, or issuing
// into a buffer another warp still reads, shows up as NaN. A block that ends
// with copies pending aborts (emu_block_exit_check in emu.cpp).
#pragma once
#include "emu.h"
#include <vector>

struct EmuCpCopy { void *dst; const void *src; int valid; };
struct EmuCpState {
    std::vector<EmuCpCopy> open;                  // issued, not committed
    std::vector<std::vector<EmuCpCopy>> groups;   // committed, oldest first
};
extern thread_local EmuCpState emu_cp_state;
extern thread_local unsigned emu_xchg_parity;

// publish this lane's words, wait for the warp; returns the buffer of the op
static inline uint32_t (*emu_xchg_publish(const uint32_t *words, int n))[EMU_XCHG_WORDS] {
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    uint32_t(*buf)[EMU_XCHG_WORDS] = g_emu_block->xchg_u[emu_xchg_parity & 1][w];
    for (int i = 0; i < n; i++) buf[l][i] = words[i];
    emu_xchg_parity++;
    __syncwarp();
    return buf;
}

static inline float emu_bf16_lo(uint32_t u) { return __uint_as_float(u << 16); }
static inline float emu_bf16_hi(uint32_t u) { return __uint_as_float(u & 0xffff0000u); }

static inline void ow_mma_bf16(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    uint32_t mine[10] = {a[0], a[1], a[2], a[3], b0, b1, __float_as_uint(d[0]), __float_as_uint(d[1]),
                         __float_as_uint(d[2]), __float_as_uint(d[3])};
    uint32_t(*x)[EMU_XCHG_WORDS] = emu_xchg_publish(mine, 10);
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 4; i++) {
        int row = g + (i >> 1) * 8, col = 2 * t + (i & 1);
        float acc = __uint_as_float(x[lane][6 + i]);
        for (int k = 0; k < 16; k++) {
            // A(row, k): lane (row % 8) * 4 + (k % 8) / 2, register (row / 8) + 2 (k / 8)
            uint32_t ar = x[(row & 7) * 4 + ((k & 7) >> 1)][(row >> 3) + 2 * (k >> 3)];
            // B(k, col): lane col * 4 + (k % 8) / 2, register k / 8
            uint32_t br = x[col * 4 + ((k & 7) >> 1)][4 + (k >> 3)];
            float av = (k & 1) ? emu_bf16_hi(ar) : emu_bf16_lo(ar);
            float bv = (k & 1) ? emu_bf16_hi(br) : emu_bf16_lo(br);
            acc += av * bv;
        }
        d[i] = acc;
    }
}

static inline void emu_ldmatrix_x4(uint32_t r[4], const void *smem, bool trans) {
    if ((uintptr_t)smem % 16 != 0) { fprintf(stderr, "ldmatrix: address %p not 16-byte aligned\n", smem); abort(); }
    uint64_t p = (uint64_t)(uintptr_t)smem;
    uint32_t mine[2] = {(uint32_t)p, (uint32_t)(p >> 32)};
    uint32_t(*x)[EMU_XCHG_WORDS] = emu_xchg_publish(mine, 2);
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    for (int m = 0; m < 4; m++) {
        uint16_t e[2];
        for (int h = 0; h < 2; h++) {
            int src_lane = trans ? 8 * m + 2 * t + h : 8 * m + g;
            int col = trans ? g : 2 * t + h;
            const uint16_t *row = (const uint16_t *)(uintptr_t)((uint64_t)x[src_lane][0] | ((uint64_t)x[src_lane][1] << 32));
            e[h] = row[col];
        }
        r[m] = (uint32_t)e[0] | ((uint32_t)e[1] << 16);
    }
}
static inline void ow_ldmatrix_x4(uint32_t r[4], const void *smem) { emu_ldmatrix_x4(r, smem, false); }
static inline void ow_ldmatrix_x4_trans(uint32_t r[4], const void *smem) { emu_ldmatrix_x4(r, smem, true); }

static inline void ow_cp_async16(void *smem, const void *gmem, int valid) {
    if ((uintptr_t)smem % 16 || (uintptr_t)gmem % 16) {
        fprintf(stderr, "cp.async: addresses %p <- %p not 16-byte aligned\n", smem, gmem); abort();
    }
    memset(smem, 0xff, 16);
    emu_cp_state.open.push_back(EmuCpCopy{smem, gmem, valid});
}
static inline void ow_cp_async_commit(void) {
    emu_cp_state.groups.push_back(emu_cp_state.open);
    emu_cp_state.open.clear();
}
template <int N> static inline void ow_cp_async_wait(void) {
    std::vector<std::vector<EmuCpCopy>> &g = emu_cp_state.groups;
    while (g.size() > (size_t)N) {
        for (const EmuCpCopy &c : g.front()) {
            if (c.valid) memcpy(c.dst, c.src, 16);
            else memset(c.dst, 0, 16);
        }
        g.erase(g.begin());
    }
}
static inline uint32_t ow_pack_bf16x2(float lo, float hi) {
    return (uint32_t)__float2bfloat16(lo).b | ((uint32_t)__float2bfloat16(hi).b << 16);
}
static inline float ow_exp2(float x) {
    float r = exp2f(x);
    return r < 1.17549435e-38f ? 0.0f : r;
}
