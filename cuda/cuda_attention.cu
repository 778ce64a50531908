/* cuda_attention.cu: causal grouped-query attention, flash style: scores are
 * computed tile by tile on chip and never stored as T x T in global memory.
 * Layouts: q, out [B,T,Hq,D]; k, v [B,T,Hkv,D]; lse F32 [B,Hq,T] (the
 * log-sum-exp of the scaled scores, natural log); query head h uses key/value
 * head h / (Hq / Hkv). Scale 1/sqrt(D).
 *
 * Two implementations, both deterministic (no atomics; every output element is
 * written once, by one thread, from sums in a fixed order):
 * - simple: fp32 math on any float dtype and any head dim, 16 x 16 tiles, one
 *   thread per tile entry. The reference and the fallback.
 * - tensor cores (bf16 tensors, head dim 16, 32, 64 or 128, 16-byte aligned
 *   data): FlashAttention-2 style kernels on mma.sync m16n8k16 (bf16 in, fp32
 *   accumulate) with ldmatrix and cp.async (cuda_mma.h), each warp owning 16
 *   rows whose accumulators stay in registers. Forward: online softmax in base 2.
 *   Backward in two passes: dQ per query tile (which also writes the row
 *   statistics lse log2 e and Di = rowsum(dout * out) to the backend scratch),
 *   then dK, dV per key tile, looping over the query heads of its group and the
 *   query tiles from the diagonal on. Probabilities and dS are rounded to bf16
 *   as mma operands; their row sums and dS use the fp32 values.
 * Backward (simple): D_i = rowsum(dout * out) is recomputed where needed;
 * P = exp(scale q.k - lse), dS = P (dout.v - D_i); dK, dV by the block owning a
 * key tile, dQ by a second kernel owning a query tile.
 * Decoding (attention_decode): the last n queries of a sequence against its whole key/value cache, one block
 * per (query, head), fp32 math on any float dtype, an online softmax over tiles of DEC_TILE keys. */
#include "cuda/cuda_internal.h"
#include "cuda/cuda_mma.h"

#define ATT_THREADS 128

/* ======================= simple kernels (any D, any float dtype) ======================= */

#define SQ 16 /* query rows per tile */
#define SK 16 /* key rows per tile */

__device__ __forceinline__ int64_t row_off(int b, int t, int T, int H, int h, int D) {
    return (((int64_t)b * T + t) * H + h) * D;
}

/* dst[r*D + d] = src row t0 + r (zero beyond T), as float */
__device__ __forceinline__ void load_tile_f32(float *dst, const void *src, int dt, int b, int t0, int nrows, int T,
                                              int H, int h, int D) {
    for (int idx = threadIdx.x; idx < nrows * D; idx += blockDim.x) {
        int r = idx / D, d = idx - r * D, t = t0 + r;
        dst[idx] = t < T ? ow_load(src, dt, row_off(b, t, T, H, h, D) + d) : 0.0f;
    }
}

__global__ void k_attn_fwd_simple(void *out, int odt, float *lse, const void *q, const void *k, const void *v, int dt,
                                  int T, int Hq, int Hkv, int D, float scale) {
    extern __shared__ float smem[];
    float *Qs = smem, *Ks = Qs + SQ * D, *Vs = Ks + SK * D, *Os = Vs + SK * D, *S = Os + SQ * D;
    float *sm = S + SQ * SK, *sl = sm + SQ, *sa = sl + SQ;
    int bh = blockIdx.y, b = bh / Hq, h = bh % Hq, hk = h / (Hq / Hkv);
    int q0 = blockIdx.x * SQ;
    load_tile_f32(Qs, q, dt, b, q0, SQ, T, Hq, h, D);
    for (int idx = threadIdx.x; idx < SQ * D; idx += blockDim.x) Os[idx] = 0.0f;
    for (int i = threadIdx.x; i < SQ; i += blockDim.x) {
        sm[i] = -INFINITY;
        sl[i] = 0.0f;
    }
    int kend = min(q0 + SQ, T);
    for (int k0 = 0; k0 < kend; k0 += SK) {
        __syncthreads(); /* the previous tile is no longer read */
        load_tile_f32(Ks, k, dt, b, k0, SK, T, Hkv, hk, D);
        load_tile_f32(Vs, v, dt, b, k0, SK, T, Hkv, hk, D);
        __syncthreads();
        for (int idx = threadIdx.x; idx < SQ * SK; idx += blockDim.x) {
            int i = idx / SK, j = idx - i * SK, qi = q0 + i, kj = k0 + j;
            float s = -INFINITY;
            if (kj <= qi && kj < T) {
                float dot = 0.0f;
                for (int d = 0; d < D; d++) dot += Qs[i * D + d] * Ks[j * D + d];
                s = dot * scale;
            }
            S[idx] = s;
        }
        __syncthreads();
        for (int i = threadIdx.x; i < SQ; i += blockDim.x) {
            float mx = sm[i];
            for (int j = 0; j < SK; j++) mx = fmaxf(mx, S[i * SK + j]);
            float alpha = 1.0f, sum = 0.0f;
            if (mx == -INFINITY) {
                for (int j = 0; j < SK; j++) S[i * SK + j] = 0.0f;
            } else {
                alpha = expf(sm[i] - mx); /* 0 when sm[i] is -inf */
                for (int j = 0; j < SK; j++) {
                    float s = S[i * SK + j];
                    float p = s == -INFINITY ? 0.0f : expf(s - mx);
                    S[i * SK + j] = p;
                    sum += p;
                }
            }
            sl[i] = sl[i] * alpha + sum;
            sm[i] = mx;
            sa[i] = alpha;
        }
        __syncthreads();
        for (int idx = threadIdx.x; idx < SQ * D; idx += blockDim.x) {
            int i = idx / D, d = idx - i * D;
            float acc = Os[idx] * sa[i];
            for (int j = 0; j < SK; j++) acc += S[i * SK + j] * Vs[j * D + d];
            Os[idx] = acc;
        }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < SQ * D; idx += blockDim.x) {
        int i = idx / D, d = idx - i * D, t = q0 + i;
        if (t < T) ow_store(out, odt, row_off(b, t, T, Hq, h, D) + d, Os[idx] / sl[i]);
    }
    for (int i = threadIdx.x; i < SQ; i += blockDim.x)
        if (q0 + i < T) lse[((int64_t)b * Hq + h) * T + q0 + i] = sm[i] + logf(sl[i]);
}

/* Di[i] = sum_d dO[i, d] * out[row t0 + i, d] for rows < T (else 0); dOs holds dO as float. */
__device__ __forceinline__ void simple_di(float *Di, const float *dOs, const void *o, int dt, int b, int t0, int T,
                                          int H, int h, int D) {
    for (int i = threadIdx.x; i < SQ; i += blockDim.x) {
        int t = t0 + i;
        float acc = 0.0f;
        if (t < T) {
            int64_t base = row_off(b, t, T, H, h, D);
            for (int d = 0; d < D; d++) acc += dOs[i * D + d] * ow_load(o, dt, base + d);
        }
        Di[i] = acc;
    }
}

__global__ void k_attn_bwd_dq_simple(void *dq, int qdt, const void *q, const void *k, const void *v, const void *o,
                                     const void *dout, int dt, const float *lse, int T, int Hq, int Hkv, int D,
                                     float scale) {
    extern __shared__ float smem[];
    float *Qs = smem, *dOs = Qs + SQ * D, *dQs = dOs + SQ * D, *Ks = dQs + SQ * D, *Vs = Ks + SK * D;
    float *dS = Vs + SK * D, *lse_s = dS + SQ * SK, *Di = lse_s + SQ;
    int bh = blockIdx.y, b = bh / Hq, h = bh % Hq, hk = h / (Hq / Hkv);
    int q0 = blockIdx.x * SQ;
    load_tile_f32(Qs, q, dt, b, q0, SQ, T, Hq, h, D);
    load_tile_f32(dOs, dout, dt, b, q0, SQ, T, Hq, h, D);
    for (int idx = threadIdx.x; idx < SQ * D; idx += blockDim.x) dQs[idx] = 0.0f;
    for (int i = threadIdx.x; i < SQ; i += blockDim.x)
        lse_s[i] = q0 + i < T ? lse[((int64_t)b * Hq + h) * T + q0 + i] : 0.0f;
    __syncthreads();
    simple_di(Di, dOs, o, dt, b, q0, T, Hq, h, D);
    int kend = min(q0 + SQ, T);
    for (int k0 = 0; k0 < kend; k0 += SK) {
        __syncthreads();
        load_tile_f32(Ks, k, dt, b, k0, SK, T, Hkv, hk, D);
        load_tile_f32(Vs, v, dt, b, k0, SK, T, Hkv, hk, D);
        __syncthreads();
        for (int idx = threadIdx.x; idx < SQ * SK; idx += blockDim.x) {
            int i = idx / SK, j = idx - i * SK, qi = q0 + i, kj = k0 + j;
            float ds = 0.0f;
            if (kj <= qi && kj < T && qi < T) {
                float s = 0.0f, dp = 0.0f;
                for (int d = 0; d < D; d++) {
                    s += Qs[i * D + d] * Ks[j * D + d];
                    dp += dOs[i * D + d] * Vs[j * D + d];
                }
                float p = expf(s * scale - lse_s[i]);
                ds = p * (dp - Di[i]);
            }
            dS[idx] = ds;
        }
        __syncthreads();
        for (int idx = threadIdx.x; idx < SQ * D; idx += blockDim.x) {
            int i = idx / D, d = idx - i * D;
            float acc = dQs[idx];
            for (int j = 0; j < SK; j++) acc += dS[i * SK + j] * Ks[j * D + d];
            dQs[idx] = acc;
        }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < SQ * D; idx += blockDim.x) {
        int i = idx / D, d = idx - i * D, t = q0 + i;
        if (t < T) ow_store(dq, qdt, row_off(b, t, T, Hq, h, D) + d, dQs[idx] * scale);
    }
}

__global__ void k_attn_bwd_dkdv_simple(void *dk, void *dv, int kvdt, const void *q, const void *k, const void *v,
                                       const void *o, const void *dout, int dt, const float *lse, int T, int Hq,
                                       int Hkv, int D, float scale) {
    extern __shared__ float smem[];
    float *Ks = smem, *Vs = Ks + SK * D, *dKs = Vs + SK * D, *dVs = dKs + SK * D, *Qs = dVs + SK * D;
    float *dOs = Qs + SQ * D, *P = dOs + SQ * D, *dS = P + SQ * SK, *lse_s = dS + SQ * SK, *Di = lse_s + SQ;
    int bh = blockIdx.y, b = bh / Hkv, hk = bh % Hkv, G = Hq / Hkv;
    int k0 = blockIdx.x * SK;
    load_tile_f32(Ks, k, dt, b, k0, SK, T, Hkv, hk, D);
    load_tile_f32(Vs, v, dt, b, k0, SK, T, Hkv, hk, D);
    for (int idx = threadIdx.x; idx < SK * D; idx += blockDim.x) {
        dKs[idx] = 0.0f;
        dVs[idx] = 0.0f;
    }
    for (int g = 0; g < G; g++) {
        int h = hk * G + g;
        for (int q0 = (k0 / SQ) * SQ; q0 < T; q0 += SQ) {
            __syncthreads(); /* the previous query tile is no longer read */
            load_tile_f32(Qs, q, dt, b, q0, SQ, T, Hq, h, D);
            load_tile_f32(dOs, dout, dt, b, q0, SQ, T, Hq, h, D);
            for (int i = threadIdx.x; i < SQ; i += blockDim.x)
                lse_s[i] = q0 + i < T ? lse[((int64_t)b * Hq + h) * T + q0 + i] : 0.0f;
            __syncthreads();
            simple_di(Di, dOs, o, dt, b, q0, T, Hq, h, D);
            __syncthreads();
            for (int idx = threadIdx.x; idx < SQ * SK; idx += blockDim.x) {
                int i = idx / SK, j = idx - i * SK, qi = q0 + i, kj = k0 + j;
                float p = 0.0f, ds = 0.0f;
                if (kj <= qi && kj < T && qi < T) {
                    float s = 0.0f, dp = 0.0f;
                    for (int d = 0; d < D; d++) {
                        s += Qs[i * D + d] * Ks[j * D + d];
                        dp += dOs[i * D + d] * Vs[j * D + d];
                    }
                    p = expf(s * scale - lse_s[i]);
                    ds = p * (dp - Di[i]);
                }
                P[idx] = p;
                dS[idx] = ds;
            }
            __syncthreads();
            for (int idx = threadIdx.x; idx < SK * D; idx += blockDim.x) {
                int j = idx / D, d = idx - j * D;
                float av = dVs[idx], ak = dKs[idx];
                for (int i = 0; i < SQ; i++) {
                    av += P[i * SK + j] * dOs[i * D + d];
                    ak += dS[i * SK + j] * Qs[i * D + d];
                }
                dVs[idx] = av;
                dKs[idx] = ak;
            }
        }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < SK * D; idx += blockDim.x) {
        int j = idx / D, d = idx - j * D, t = k0 + j;
        if (t < T) {
            ow_store(dk, kvdt, row_off(b, t, T, Hkv, hk, D) + d, dKs[idx] * scale);
            ow_store(dv, kvdt, row_off(b, t, T, Hkv, hk, D) + d, dVs[idx]);
        }
    }
}

/* ======================= tensor-core kernels (bf16, D in {16, 32, 64, 128}) ======================= */

/* Shared tiles hold bf16 bits, rows of D elements padded to LD = D + 8: the row
 * stride, 2 D + 16 bytes, is an odd multiple of 16 bytes, so the eight 16-byte
 * pieces of consecutive rows that one ldmatrix phase reads fall in distinct
 * banks for every D here, and rows stay 16-byte aligned for cp.async. */
#define ATT_BK 64 /* keys (forward, dQ) or queries (dK/dV) per pipeline step; also BQ of the backward */
#define ATT_LOG2E 1.4426950408889634f
/* Grids run the tiles of one head (x) before the next head (y): the blocks
 * resident at a time then cover few heads and share their K/V (or Q/dO) tiles
 * in L2, instead of streaming them from DRAM once per block. */

template <int D> struct AttnTile {
    static constexpr int LD = D + 8;
    static constexpr int CH = D / 8;                       /* 16-byte chunks per row */
    static constexpr int TILE = ATT_BK * LD;               /* elements of a 64-row tile */
    static constexpr size_t TILE_BYTES = (size_t)TILE * 2; /* 128 (D + 8): keeps tiles 128-byte aligned */
};

/* Tuning per head dim, chosen from ptxas figures (no spills; blocks per SM on
 * sm_90 by registers and shared memory: forward 2 at D = 128, 3 at D = 64;
 * dQ and dK/dV 2 at D = 128, 3 at D = 64):
 * - forward: FWD_WARPS warps per block (BQ = 16 FWD_WARPS rows, at most 8),
 *   FWD_MINB blocks per SM asked of the register allocator;
 * - dQ: scores in DQ_KSPLIT parts of 64 / DQ_KSPLIT keys (fewer live registers);
 * - dK/dV: queries in DKV_QSPLIT parts. Its Q/dO stages (2, or 1 where the
 *   device's shared memory is too small) are chosen at launch (launch_bwd_tc). */
template <int D> struct AttnCfg {
    static constexpr int FWD_WARPS = 4, FWD_MINB = D >= 128 ? 2 : 3;
    static constexpr int DQ_KSPLIT = D >= 64 ? 2 : 1;
    static constexpr int DKV_QSPLIT = D >= 64 ? 2 : 1;
};

/* Lane offsets inside a 16 x 16 block for ldmatrix.x4 (cuda_mma.h):
 * - A operand (row-major rows = M) and B operand stored k-major ([k][n], .trans):
 *   matrices (r0-7, c0-7), (r8-15, c0-7), (r0-7, c8-15), (r8-15, c8-15);
 * - B operand stored n-major ([n][k], plain): (r0-7, c0-7), (r0-7, c8-15), (r8-15, c0-7),
 *   (r8-15, c8-15), giving b0, b1 of n-tile 0 then of n-tile 1. */
__device__ __forceinline__ int lm_a_row(int lane) { return (lane & 7) + ((lane >> 3) & 1) * 8; }
__device__ __forceinline__ int lm_a_col(int lane) { return (lane >> 4) * 8; }
__device__ __forceinline__ int lm_b_row(int lane) { return (lane & 7) + (lane >> 4) * 8; }
__device__ __forceinline__ int lm_b_col(int lane) { return ((lane >> 3) & 1) * 8; }

/* Asynchronous copy of rows t0 .. t0 + NROWS - 1 of head h ([B, T, H, D] bf16) into
 * dst (row stride LD); rows at or beyond T become zeros. All NT threads call. */
template <int D, int NROWS, int NT>
__device__ __forceinline__ void cp_rows_async(uint16_t *dst, const uint16_t *src, int b, int t0, int T, int H, int h) {
    typedef AttnTile<D> L;
    constexpr int N = NROWS * L::CH;
#pragma unroll
    for (int it = 0; it < (N + NT - 1) / NT; it++) {
        int i = it * NT + (int)threadIdx.x;
        if (N % NT == 0 || i < N) {
            int r = i / L::CH, c = i - r * L::CH, t = t0 + r;
            const uint16_t *g = t < T ? src + row_off(b, t, T, H, h, D) + c * 8 : src;
            ow_cp_async16(dst + r * L::LD + c * 8, g, t < T);
        }
    }
}

/* Writes a warp's 16 x D fp32 accumulator rows (C fragments acc[D/8][4], times mul)
 * as bf16 rows t0 + r < T of head h, through the warp's 16 staging rows (stride LD)
 * so that global stores are 16-byte and row-contiguous. */
template <int D>
__device__ __forceinline__ void store_rows_bf16(uint16_t *dst, const float (*acc)[4], float mul0, float mul1,
                                                uint16_t *stage, int b, int t0, int T, int H, int h, int lane) {
    typedef AttnTile<D> L;
    int g = lane >> 2, t4 = lane & 3;
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
        *(uint32_t *)(stage + g * L::LD + 8 * n + 2 * t4) = ow_pack_bf16x2(acc[n][0] * mul0, acc[n][1] * mul0);
        *(uint32_t *)(stage + (g + 8) * L::LD + 8 * n + 2 * t4) = ow_pack_bf16x2(acc[n][2] * mul1, acc[n][3] * mul1);
    }
    __syncwarp();
    for (int i = lane; i < 16 * L::CH; i += 32) {
        int r = i / L::CH, c = i - r * L::CH, t = t0 + r;
        if (t < T) *(uint4 *)(dst + row_off(b, t, T, H, h, D) + c * 8) = *(const uint4 *)(stage + r * L::LD + c * 8);
    }
}

/* Forward. Block: NW warps, BQ = 16 NW query rows of one (batch, head); warp w owns
 * rows q0 + 16 w .. + 15 and keeps their Q fragments, the O accumulator (fp32),
 * and the running max m and sum l of its two rows per lane in registers. Key
 * tiles of 64 rows: K and V double-buffered in shared memory by cp.async (the
 * next tile loads while this one is used). Per tile: S = Q K^T (mma), causal
 * mask only where a key can exceed a row, online softmax in base 2
 * (exp2(s * scale * log2 e - m')), P rounded to bf16 straight from the S
 * registers into A fragments, O = O * alpha + P V. Grid: x = query tile, last
 * (most keys) first, y = (batch, head). Shared: 4 tiles (Q is staged in the
 * first two before the loop, the output in them after it). */
/* The bf16 A fragment (16 x 16) made of the fp32 accumulators of two adjacent
 * 16 x 8 mma tiles c0, c1: how a score tile feeds the next product. */
__device__ __forceinline__ void acc_pair_to_a(uint32_t a[4], const float c0[4], const float c1[4]) {
    a[0] = ow_pack_bf16x2(c0[0], c0[1]);
    a[1] = ow_pack_bf16x2(c0[2], c0[3]);
    a[2] = ow_pack_bf16x2(c1[0], c1[1]);
    a[3] = ow_pack_bf16x2(c1[2], c1[3]);
}

/* acc[0 .. D/8) (16 x D as D/8 mma tiles) += a (16 x 16) times the 16 x D bf16
 * tile whose rows start at B (AttnTile<D>::LD apart), read with ldmatrix.trans;
 * ar, ac: the lane's ldmatrix row and column (lm_a_row, lm_a_col). */
template <int D>
__device__ __forceinline__ void mma_a_rows(float (*acc)[4], const uint32_t a[4], const uint16_t *B, int ar, int ac) {
#pragma unroll
    for (int dn = 0; dn < D / 16; dn++) {
        uint32_t f[4];
        ow_ldmatrix_x4_trans(f, B + ar * AttnTile<D>::LD + 16 * dn + ac);
        ow_mma_bf16(acc[2 * dn], a, f[0], f[1]);
        ow_mma_bf16(acc[2 * dn + 1], a, f[2], f[3]);
    }
}

/* The K/V pipeline of the forward and dQ kernels (two stages of K and V tiles
 * at tiles + 2 s TILE): queues tile kb + 1 into the other stage, if any, and
 * waits until tile kb has landed (the caller's __syncthreads publishes it). */
template <int D, int BK, int NT>
__device__ __forceinline__ void kv_pipeline_next(uint16_t *tiles, const uint16_t *k, const uint16_t *v, int b, int kb,
                                                 int nkb, int T, int Hkv, int hk) {
    typedef AttnTile<D> L;
    if (kb + 1 < nkb) {
        uint16_t *nx = tiles + ((kb + 1) & 1) * 2 * L::TILE;
        cp_rows_async<D, BK, NT>(nx, k, b, (kb + 1) * BK, T, Hkv, hk);
        cp_rows_async<D, BK, NT>(nx + L::TILE, v, b, (kb + 1) * BK, T, Hkv, hk);
        ow_cp_async_commit();
        ow_cp_async_wait<1>();
    } else {
        ow_cp_async_wait<0>();
    }
}

template <int D, int NW>
__global__ void __launch_bounds__(NW * 32, AttnCfg<D>::FWD_MINB)
    k_attn_fwd_mma(uint16_t *out, float *lse, const uint16_t *q, const uint16_t *k, const uint16_t *v, int T, int Hq,
                   int Hkv, float scale, float scale_log2) {
    typedef AttnTile<D> L;
    constexpr int NT = NW * 32, BQ = 16 * NW, BK = ATT_BK, LD = L::LD;
    static_assert(BQ <= 2 * ATT_BK, "the Q tile is staged in the first two K/V tiles");
    extern __shared__ __align__(128) unsigned char smem_tc[];
    uint16_t *tiles = (uint16_t *)smem_tc; /* stage s: K at tiles + 2 s TILE, V at tiles + (2 s + 1) TILE */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
    const int nqb = (T + BQ - 1) / BQ, qb = nqb - 1 - (int)blockIdx.x;
    const int bh = blockIdx.y, b = bh / Hq, h = bh % Hq, hk = h / (Hq / Hkv);
    const int q0 = qb * BQ, qw = q0 + 16 * warp;
    const int ar = lm_a_row(lane), ac = lm_a_col(lane), br = lm_b_row(lane), bc = lm_b_col(lane);

    cp_rows_async<D, BQ, NT>(tiles, q, b, q0, T, Hq, h);
    ow_cp_async_commit();
    ow_cp_async_wait<0>();
    __syncthreads();
    uint32_t qf[D / 16][4];
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) ow_ldmatrix_x4(qf[kk], tiles + (16 * warp + ar) * LD + 16 * kk + ac);
    __syncthreads(); /* every warp has its Q fragments: the tiles are free */

    const int kend = min(q0 + BQ, T), nkb = (kend + BK - 1) / BK;
    cp_rows_async<D, BK, NT>(tiles, k, b, 0, T, Hkv, hk);
    cp_rows_async<D, BK, NT>(tiles + L::TILE, v, b, 0, T, Hkv, hk);
    ow_cp_async_commit();

    float o[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    const bool active = qw < T;
    for (int kb = 0; kb < nkb; kb++) {
        kv_pipeline_next<D, BK, NT>(tiles, k, v, b, kb, nkb, T, Hkv, hk);
        __syncthreads(); /* tile kb is in shared memory for every warp */
        const int k0 = kb * BK;
        if (active && k0 <= qw + 15) { /* else every key of the tile is after every row of the warp */
            const uint16_t *Ks = tiles + (kb & 1) * 2 * L::TILE, *Vs = Ks + L::TILE;
            /* 16-key groups j < jn hold a key some row of the warp sees (k0 <= qw: all when k0 + 63 <= qw) */
            const int jn = min(BK / 16, (qw + 15 - k0) / 16 + 1);
            float s[BK / 8][4];
#pragma unroll
            for (int n = 0; n < BK / 8; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
                for (int j = 0; j < BK / 16; j++) {
                    if (j < jn) {
                        uint32_t kf[4];
                        ow_ldmatrix_x4(kf, Ks + (16 * j + br) * LD + 16 * kk + bc);
                        ow_mma_bf16(s[2 * j], qf[kk], kf[0], kf[1]);
                        ow_mma_bf16(s[2 * j + 1], qf[kk], kf[2], kf[3]);
                    }
                }
            }
            if (k0 + BK - 1 > qw) { /* causal mask (covers keys >= T: such a key is after every valid row) */
#pragma unroll
                for (int n = 0; n < BK / 8; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        if (k0 + 8 * n + 2 * t4 + (e & 1) > qw + g + 8 * (e >> 1)) s[n][e] = -INFINITY;
            }
            float mx[2] = {m[0], m[1]};
#pragma unroll
            for (int n = 0; n < BK / 8; n++) {
                mx[0] = fmaxf(mx[0], fmaxf(s[n][0], s[n][1]));
                mx[1] = fmaxf(mx[1], fmaxf(s[n][2], s[n][3]));
            }
            float base[2], alpha[2], rs[2] = {0.0f, 0.0f};
#pragma unroll
            for (int r = 0; r < 2; r++) {
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
                base[r] = mx[r] == -INFINITY ? 0.0f : mx[r] * scale_log2;
                alpha[r] = ow_exp2(m[r] * scale_log2 - base[r]); /* 0 while m was -inf */
                m[r] = mx[r];
            }
#pragma unroll
            for (int n = 0; n < BK / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float p = ow_exp2(fmaf(s[n][e], scale_log2, -base[e >> 1]));
                    s[n][e] = p;
                    rs[e >> 1] += p;
                }
            l[0] = l[0] * alpha[0] + rs[0]; /* this lane's columns only; the quad is summed at the end */
            l[1] = l[1] * alpha[1] + rs[1];
#pragma unroll
            for (int n = 0; n < D / 8; n++) {
                o[n][0] *= alpha[0];
                o[n][1] *= alpha[0];
                o[n][2] *= alpha[1];
                o[n][3] *= alpha[1];
            }
#pragma unroll
            for (int j = 0; j < BK / 16; j++) {
                if (j < jn) {
                    uint32_t pa[4];
                    acc_pair_to_a(pa, s[2 * j], s[2 * j + 1]);
                    mma_a_rows<D>(o, pa, Vs + 16 * j * LD, ar, ac);
                }
            }
        }
        __syncthreads(); /* tile kb is no longer read: the next iteration may refill its buffers */
    }
    if (!active) return;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    }
    store_rows_bf16<D>(out, o, 1.0f / l[0], 1.0f / l[1], tiles + 16 * warp * LD, b, qw, T, Hq, h, lane);
    if (t4 == 0) {
        float *lrow = lse + ((int64_t)b * Hq + h) * T;
        if (qw + g < T) lrow[qw + g] = m[0] * scale + logf(l[0]);
        if (qw + g + 8 < T) lrow[qw + g + 8] = m[1] * scale + logf(l[1]);
    }
}

/* Backward, pass 1: dQ. Block: 4 warps, 64 query rows of one (batch, head); warp w
 * owns 16 rows (Q fragments and the dQ accumulator in registers). Before the loop
 * the block computes its rows' statistics, lse2 = lse log2 e (+inf beyond T, so P
 * is 0 there) and Di = rowsum(dO * O) (0 beyond T), into shared memory and into
 * the stats buffer ([query head of the chunk][2][Tp]: lse2 then Di) that pass 2
 * reads. Loop over 64-key tiles up to the diagonal (K, V double-buffered by
 * cp.async): S = Q K^T and dP = dO V^T in KSPLIT parts of 64 / KSPLIT keys (dO
 * fragments are read again from shared memory for each), P = exp2(S scale log2 e
 * - lse2), dS = P (dP - Di), dQ += dS K; finally dQ * scale. Grid: x = query
 * tile, last first, y = query head of the chunk. Shared: K, V x 2 stages, dO,
 * 64 + 64 floats. */
template <int D, int KSPLIT>
__global__ void __launch_bounds__(128, 2)
    k_attn_bwd_dq_mma(uint16_t *dq, float *stats, const uint16_t *q, const uint16_t *k, const uint16_t *v,
                      const uint16_t *o, const uint16_t *dout, const float *lse, int T, int Hq, int Hkv, int bh0,
                      int Tp, float scale, float scale_log2) {
    typedef AttnTile<D> L;
    constexpr int NT = 128, BQ = ATT_BK, BK = ATT_BK, LD = L::LD, KS = BK / KSPLIT;
    extern __shared__ __align__(128) unsigned char smem_tc[];
    uint16_t *tiles = (uint16_t *)smem_tc; /* stage s: K at 2 s, V at 2 s + 1 (in tiles); Q staged in tile 2 */
    uint16_t *dOs = tiles + 4 * L::TILE;
    float *lse2_s = (float *)(smem_tc + 5 * L::TILE_BYTES), *di_s = lse2_s + BQ;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
    const int nqb = (T + BQ - 1) / BQ, qb = nqb - 1 - (int)blockIdx.x;
    const int bh = bh0 + (int)blockIdx.y, b = bh / Hq, h = bh % Hq, hk = h / (Hq / Hkv);
    const int q0 = qb * BQ, qw = q0 + 16 * warp;
    const int ar = lm_a_row(lane), ac = lm_a_col(lane), br = lm_b_row(lane), bc = lm_b_col(lane);

    cp_rows_async<D, BQ, NT>(tiles + 2 * L::TILE, q, b, q0, T, Hq, h);
    cp_rows_async<D, BQ, NT>(dOs, dout, b, q0, T, Hq, h);
    cp_rows_async<D, BK, NT>(tiles, k, b, 0, T, Hkv, hk);
    cp_rows_async<D, BK, NT>(tiles + L::TILE, v, b, 0, T, Hkv, hk);
    ow_cp_async_commit();
    { /* row statistics: two threads per row, D / 2 elements each, from global memory */
        int r = threadIdx.x >> 1, part = threadIdx.x & 1, t = q0 + r;
        float acc = 0.0f;
        if (t < T) {
            const uint4 *po = (const uint4 *)(o + row_off(b, t, T, Hq, h, D)) + part * (L::CH / 2);
            const uint4 *pd = (const uint4 *)(dout + row_off(b, t, T, Hq, h, D)) + part * (L::CH / 2);
#pragma unroll
            for (int c = 0; c < L::CH / 2; c++) {
                uint4 a = po[c], d = pd[c];
                uint32_t av[4] = {a.x, a.y, a.z, a.w}, dv[4] = {d.x, d.y, d.z, d.w};
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    acc = fmaf(ow_bf16_to_f32((uint16_t)(av[e] & 0xffffu)), ow_bf16_to_f32((uint16_t)(dv[e] & 0xffffu)),
                               acc);
                    acc = fmaf(ow_bf16_to_f32((uint16_t)(av[e] >> 16)), ow_bf16_to_f32((uint16_t)(dv[e] >> 16)), acc);
                }
            }
        }
        acc += __shfl_xor_sync(0xffffffffu, acc, 1);
        if (part == 0) {
            float l2 = t < T ? lse[(int64_t)bh * T + t] * ATT_LOG2E : INFINITY, di = t < T ? acc : 0.0f;
            lse2_s[r] = l2;
            di_s[r] = di;
            float *srow = stats + (int64_t)(bh - bh0) * 2 * Tp;
            srow[t] = l2;
            srow[Tp + t] = di;
        }
    }
    ow_cp_async_wait<0>();
    __syncthreads();
    uint32_t qf[D / 16][4];
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
        ow_ldmatrix_x4(qf[kk], tiles + 2 * L::TILE + (16 * warp + ar) * LD + 16 * kk + ac);
    const float l2r[2] = {lse2_s[16 * warp + g], lse2_s[16 * warp + g + 8]};
    const float dir[2] = {di_s[16 * warp + g], di_s[16 * warp + g + 8]};
    __syncthreads(); /* tile 2 (Q) is free for stage 1 */

    const int kend = min(q0 + BQ, T), nkb = (kend + BK - 1) / BK;
    float dqa[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++) dqa[n][0] = dqa[n][1] = dqa[n][2] = dqa[n][3] = 0.0f;
    const bool active = qw < T;
    for (int kb = 0; kb < nkb; kb++) {
        kv_pipeline_next<D, BK, NT>(tiles, k, v, b, kb, nkb, T, Hkv, hk);
        __syncthreads();
        const int k0 = kb * BK;
        if (active && k0 <= qw + 15) {
            const uint16_t *Ks = tiles + (kb & 1) * 2 * L::TILE, *Vs = Ks + L::TILE;
            const int jn = min(BK / 16, (qw + 15 - k0) / 16 + 1);
            const bool masked = k0 + BK - 1 > qw;
#pragma unroll
            for (int part = 0; part < KSPLIT; part++) {
                const int kp = part * KS; /* first key of this part, relative to k0 */
                if (kp / 16 >= jn) continue;
                float s[KS / 8][4], dp[KS / 8][4];
#pragma unroll
                for (int n = 0; n < KS / 8; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.0f;
#pragma unroll
                for (int kk = 0; kk < D / 16; kk++) {
                    uint32_t df[4];
                    ow_ldmatrix_x4(df, dOs + (16 * warp + ar) * LD + 16 * kk + ac);
#pragma unroll
                    for (int j = 0; j < KS / 16; j++) {
                        if (kp / 16 + j < jn) {
                            uint32_t f[4];
                            ow_ldmatrix_x4(f, Ks + (kp + 16 * j + br) * LD + 16 * kk + bc);
                            ow_mma_bf16(s[2 * j], qf[kk], f[0], f[1]);
                            ow_mma_bf16(s[2 * j + 1], qf[kk], f[2], f[3]);
                            ow_ldmatrix_x4(f, Vs + (kp + 16 * j + br) * LD + 16 * kk + bc);
                            ow_mma_bf16(dp[2 * j], df, f[0], f[1]);
                            ow_mma_bf16(dp[2 * j + 1], df, f[2], f[3]);
                        }
                    }
                }
#pragma unroll
                for (int n = 0; n < KS / 8; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        int r = e >> 1;
                        float p = ow_exp2(fmaf(s[n][e], scale_log2, -l2r[r]));
                        if (masked && k0 + kp + 8 * n + 2 * t4 + (e & 1) > qw + g + 8 * r) p = 0.0f;
                        s[n][e] = p * (dp[n][e] - dir[r]); /* dS */
                    }
#pragma unroll
                for (int j = 0; j < KS / 16; j++) {
                    if (kp / 16 + j < jn) {
                        uint32_t sa[4];
                        acc_pair_to_a(sa, s[2 * j], s[2 * j + 1]);
                        mma_a_rows<D>(dqa, sa, Ks + (kp + 16 * j) * LD, ar, ac);
                    }
                }
            }
        }
        __syncthreads();
    }
    if (!active) return;
    store_rows_bf16<D>(dq, dqa, scale, scale, tiles + 16 * warp * LD, b, qw, T, Hq, h, lane);
}

/* Backward, pass 2: dK and dV. Block: 4 warps, 64 keys of one (batch, kv head);
 * warp w owns keys k0 + 16 w .. + 15 and their dK, dV accumulators (registers).
 * Loop over the query heads of the group and, for each, the 64-query tiles from
 * the diagonal on (earlier queries see none of these keys); Q, dO and the rows'
 * lse2, Di (from pass 1) double-buffered by cp.async. In the transposed view the
 * warp computes S^T = K Q^T and dP^T = V dO^T (K, V fragments from shared memory),
 * P^T = exp2(S^T scale log2 e - lse2), dS^T = P^T (dP^T - Di), then dV += P^T dO and
 * dK += dS^T Q with P^T, dS^T as A fragments straight from registers; queries in
 * QSPLIT parts of 64 / QSPLIT. Finally dK * scale. Grid: x = key tile, first
 * (most query tiles) first, y = (batch, kv head) of the chunk. Shared: K, V,
 * (Q, dO) x STAGES, (64 + 64 floats) x STAGES; with one stage the next step
 * loads after this one. */
template <int D, int QSPLIT, int STAGES>
__global__ void __launch_bounds__(128, 2)
    k_attn_bwd_dkdv_mma(uint16_t *dk, uint16_t *dv, const float *stats, const uint16_t *q, const uint16_t *k,
                        const uint16_t *v, const uint16_t *dout, int T, int Hq, int Hkv, int bkv0, int Tp, float scale,
                        float scale_log2) {
    typedef AttnTile<D> L;
    constexpr int NT = 128, BQ = ATT_BK, BK = ATT_BK, LD = L::LD, QS = BQ / QSPLIT;
    extern __shared__ __align__(128) unsigned char smem_tc[];
    uint16_t *Ks = (uint16_t *)smem_tc, *Vs = Ks + L::TILE; /* stage s: Q at tile 2 + 2 s, dO at tile 3 + 2 s */
    float *stat_s = (float *)(smem_tc + (2 + 2 * STAGES) * L::TILE_BYTES); /* stage s: lse2 at 128 s, Di at +64 */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
    const int kb = blockIdx.x, bkv = bkv0 + (int)blockIdx.y, b = bkv / Hkv, hk = bkv % Hkv, G = Hq / Hkv;
    const int k0 = kb * BK, kw = k0 + 16 * warp;
    const int nqb = (T + BQ - 1) / BQ, nq = nqb - kb, nit = G * nq;
    const int ar = lm_a_row(lane), ac = lm_a_col(lane), br = lm_b_row(lane), bc = lm_b_col(lane);

    cp_rows_async<D, BK, NT>(Ks, k, b, k0, T, Hkv, hk);
    cp_rows_async<D, BK, NT>(Vs, v, b, k0, T, Hkv, hk);
    for (int it = 0; it < STAGES && it < nit; it++) { /* fill the stages */
        int gi = it / nq, qb = kb + it % nq, h = hk * G + gi;
        uint16_t *st = Ks + (2 + 2 * it) * L::TILE;
        cp_rows_async<D, BQ, NT>(st, q, b, qb * BQ, T, Hq, h);
        cp_rows_async<D, BQ, NT>(st + L::TILE, dout, b, qb * BQ, T, Hq, h);
        if (threadIdx.x < 32) { /* 16 chunks of lse2, then 16 of Di */
            const float *srow = stats + (int64_t)((bkv - bkv0) * G + gi) * 2 * Tp + qb * BQ;
            int c = threadIdx.x;
            ow_cp_async16(stat_s + 128 * it + 4 * c, srow + (c < 16 ? 4 * c : Tp + 4 * (c - 16)), 1);
        }
        ow_cp_async_commit();
    }

    float dka[D / 8][4], dva[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) dka[n][e] = dva[n][e] = 0.0f;
    const bool active = kw < T;
    for (int it = 0; it < nit; it++) {
        if (STAGES == 2 && it + 1 < nit)
            ow_cp_async_wait<1>(); /* step it + 1 may still be in flight */
        else
            ow_cp_async_wait<0>();
        __syncthreads(); /* stage it % STAGES is in shared memory for every warp */
        const int sidx = it % STAGES, qb = kb + it % nq, q0 = qb * BQ;
        if (active) {
            const uint16_t *Qs = Ks + (2 + 2 * sidx) * L::TILE, *dOs = Qs + L::TILE;
            const float *l2s = stat_s + 128 * sidx, *dis = l2s + 64;
            const bool diag = qb == kb;
            const int j0 = diag ? warp : 0; /* 16-query groups j < j0 are all before the warp's first key */
#pragma unroll
            for (int part = 0; part < QSPLIT; part++) {
                const int qp = part * QS;
                if (qp / 16 + QS / 16 <= j0) continue;
                float sT[QS / 8][4], dpT[QS / 8][4];
#pragma unroll
                for (int n = 0; n < QS / 8; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++) sT[n][e] = dpT[n][e] = 0.0f;
#pragma unroll
                for (int kk = 0; kk < D / 16; kk++) {
                    uint32_t kf[4], vf[4];
                    ow_ldmatrix_x4(kf, Ks + (16 * warp + ar) * LD + 16 * kk + ac);
                    ow_ldmatrix_x4(vf, Vs + (16 * warp + ar) * LD + 16 * kk + ac);
#pragma unroll
                    for (int j = 0; j < QS / 16; j++) {
                        if (qp / 16 + j >= j0) {
                            uint32_t f[4];
                            ow_ldmatrix_x4(f, Qs + (qp + 16 * j + br) * LD + 16 * kk + bc);
                            ow_mma_bf16(sT[2 * j], kf, f[0], f[1]);
                            ow_mma_bf16(sT[2 * j + 1], kf, f[2], f[3]);
                            ow_ldmatrix_x4(f, dOs + (qp + 16 * j + br) * LD + 16 * kk + bc);
                            ow_mma_bf16(dpT[2 * j], vf, f[0], f[1]);
                            ow_mma_bf16(dpT[2 * j + 1], vf, f[2], f[3]);
                        }
                    }
                }
#pragma unroll
                for (int n = 0; n < QS / 8; n++) {
                    const int c = qp + 8 * n + 2 * t4; /* query column of e = 0 (and c + 1 of e = 1) */
                    const float2 l2 = *(const float2 *)(l2s + c), di = *(const float2 *)(dis + c);
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const float l2e = (e & 1) ? l2.y : l2.x, die = (e & 1) ? di.y : di.x;
                        float p = ow_exp2(fmaf(sT[n][e], scale_log2, -l2e));
                        if (diag && kw + g + 8 * (e >> 1) > q0 + c + (e & 1)) p = 0.0f;
                        sT[n][e] = p;
                        dpT[n][e] = p * (dpT[n][e] - die); /* dS^T */
                    }
                }
#pragma unroll
                for (int j = 0; j < QS / 16; j++) {
                    if (qp / 16 + j >= j0) {
                        uint32_t pa[4], da[4];
                        acc_pair_to_a(pa, sT[2 * j], sT[2 * j + 1]);
                        acc_pair_to_a(da, dpT[2 * j], dpT[2 * j + 1]);
                        mma_a_rows<D>(dva, pa, dOs + (qp + 16 * j) * LD, ar, ac);
                        mma_a_rows<D>(dka, da, Qs + (qp + 16 * j) * LD, ar, ac);
                    }
                }
            }
        }
        __syncthreads();         /* stage it % STAGES is no longer read */
        if (it + STAGES < nit) { /* refill it with step it + STAGES */
            int nx = it + STAGES, gi = nx / nq, qn = kb + nx % nq, h = hk * G + gi;
            uint16_t *st = Ks + (2 + 2 * sidx) * L::TILE;
            cp_rows_async<D, BQ, NT>(st, q, b, qn * BQ, T, Hq, h);
            cp_rows_async<D, BQ, NT>(st + L::TILE, dout, b, qn * BQ, T, Hq, h);
            if (threadIdx.x < 32) {
                const float *srow = stats + (int64_t)((bkv - bkv0) * G + gi) * 2 * Tp + qn * BQ;
                int c = threadIdx.x;
                ow_cp_async16(stat_s + 128 * sidx + 4 * c, srow + (c < 16 ? 4 * c : Tp + 4 * (c - 16)), 1);
            }
            ow_cp_async_commit();
        }
    }
    if (!active) return;
    /* the warp's own K and V rows are read by no one else: stage the outputs there */
    store_rows_bf16<D>(dk, dka, scale, scale, Ks + 16 * warp * LD, b, kw, T, Hkv, hk, lane);
    store_rows_bf16<D>(dv, dva, 1.0f, 1.0f, Vs + 16 * warp * LD, b, kw, T, Hkv, hk, lane);
}

/* ======================= host side ======================= */

typedef struct AttnShape {
    int B, T, Hq, Hkv, D;
} AttnShape;

static AttnShape attn_shape(const Tensor *q, const Tensor *k, const Tensor *v) {
    OW_CHECKF(q->ndim == 4 && k->ndim == 4 && v->ndim == 4, "attention: q, k, v must be [B, T, H, D]");
    AttnShape s;
    s.B = (int)q->shape[0];
    s.T = (int)q->shape[1];
    s.Hq = (int)q->shape[2];
    s.D = (int)q->shape[3];
    s.Hkv = (int)k->shape[2];
    OW_CHECKF(tensor_same_shape(k, v) && k->shape[0] == s.B && k->shape[1] == s.T && k->shape[3] == s.D && s.Hkv > 0 &&
                  s.Hq % s.Hkv == 0,
              "attention: k, v must be [%d, %d, Hkv, %d] with Hq %% Hkv == 0", s.B, s.T, s.D);
    OW_CHECKF((int64_t)s.B * s.Hq <= 65535 && s.T <= (1 << 24), "attention: B * Hq = %lld exceeds the grid",
              (long long)s.B * s.Hq);
    return s;
}

int cuda_attention_tc_applies(CudaImpl *ci, int64_t D) {
    return ci->attn_tc && (D == 16 || D == 32 || D == 64 || D == 128);
}

static int aligned16(const void *p) { return ((uintptr_t)p % 16) == 0; }

static void set_smem(CudaImpl *ci, const void *kernel, size_t bytes) {
    OW_CHECKF(bytes <= (size_t)ci->smem_optin,
              "attention kernel needs %zu bytes of shared memory; the device allows %d", bytes, ci->smem_optin);
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

template <int D>
static void launch_fwd_tc(CudaImpl *ci, const AttnShape &s, Tensor *out, Tensor *lse, const Tensor *q, const Tensor *k,
                          const Tensor *v, float scale) {
    constexpr int NW = AttnCfg<D>::FWD_WARPS, BQ = 16 * NW;
    const size_t bytes = 4 * AttnTile<D>::TILE_BYTES;
    set_smem(ci, (const void *)k_attn_fwd_mma<D, NW>, bytes);
    dim3 grid((unsigned)((s.T + BQ - 1) / BQ), (unsigned)(s.B * s.Hq));
    k_attn_fwd_mma<D, NW><<<grid, NW * 32, bytes, ci->stream>>>(
        (uint16_t *)out->data, (float *)lse->data, (const uint16_t *)q->data, (const uint16_t *)k->data,
        (const uint16_t *)v->data, s.T, s.Hq, s.Hkv, scale, scale * ATT_LOG2E);
    CUDA_LAUNCH_CHECK();
}

/* Query tiles of the backward (64 rows) and the kv heads whose row statistics
 * (lse2 and Di for the G query heads of each, 2 G Tp floats) fit the scratch
 * buffer at once; 0 when not even one does. */
static int64_t bwd_stats_heads(CudaImpl *ci, const AttnShape &s, int *Tp) {
    *Tp = (s.T + ATT_BK - 1) / ATT_BK * ATT_BK;
    int64_t per = (int64_t)2 * (s.Hq / s.Hkv) * *Tp * (int64_t)sizeof(float);
    return (int64_t)ci->scratch_size / per;
}

template <int D, int STAGES>
static void launch_bwd_tc_stages(CudaImpl *ci, const AttnShape &s, Tensor *dq, Tensor *dk, Tensor *dv,
                                 const Tensor *dout, const Tensor *q, const Tensor *k, const Tensor *v,
                                 const Tensor *out, const Tensor *lse, float scale) {
    constexpr int KSPLIT = AttnCfg<D>::DQ_KSPLIT, QSPLIT = AttnCfg<D>::DKV_QSPLIT;
    typedef AttnTile<D> L;
    const size_t bq = 5 * L::TILE_BYTES + 2 * ATT_BK * sizeof(float);
    const size_t bkv = (2 + 2 * STAGES) * L::TILE_BYTES + 2 * STAGES * ATT_BK * sizeof(float);
    set_smem(ci, (const void *)k_attn_bwd_dq_mma<D, KSPLIT>, bq);
    set_smem(ci, (const void *)k_attn_bwd_dkdv_mma<D, QSPLIT, STAGES>, bkv);
    const int G = s.Hq / s.Hkv, nt = (s.T + ATT_BK - 1) / ATT_BK;
    int Tp;
    const int64_t chunk = bwd_stats_heads(ci, s, &Tp), nbkv = (int64_t)s.B * s.Hkv;
    float *stats = (float *)ci->scratch;
    const float sl2 = scale * ATT_LOG2E;
    for (int64_t c0 = 0; c0 < nbkv; c0 += chunk) { /* (batch, kv head) ranges whose statistics fit the scratch */
        const int n = (int)(nbkv - c0 < chunk ? nbkv - c0 : chunk);
        dim3 gq((unsigned)nt, (unsigned)(n * G));
        k_attn_bwd_dq_mma<D, KSPLIT><<<gq, 128, bq, ci->stream>>>(
            (uint16_t *)dq->data, stats, (const uint16_t *)q->data, (const uint16_t *)k->data,
            (const uint16_t *)v->data, (const uint16_t *)out->data, (const uint16_t *)dout->data,
            (const float *)lse->data, s.T, s.Hq, s.Hkv, (int)(c0 * G), Tp, scale, sl2);
        CUDA_LAUNCH_CHECK();
        dim3 gkv((unsigned)nt, (unsigned)n);
        k_attn_bwd_dkdv_mma<D, QSPLIT, STAGES><<<gkv, 128, bkv, ci->stream>>>(
            (uint16_t *)dk->data, (uint16_t *)dv->data, stats, (const uint16_t *)q->data, (const uint16_t *)k->data,
            (const uint16_t *)v->data, (const uint16_t *)dout->data, s.T, s.Hq, s.Hkv, (int)c0, Tp, scale, sl2);
        CUDA_LAUNCH_CHECK();
    }
}

/* Two Q/dO stages in the dK/dV kernel where the device's shared memory holds them
 * (sm_80, sm_90), else one (sm_86, sm_89 at D = 128). */
template <int D>
static void launch_bwd_tc(CudaImpl *ci, const AttnShape &s, Tensor *dq, Tensor *dk, Tensor *dv, const Tensor *dout,
                          const Tensor *q, const Tensor *k, const Tensor *v, const Tensor *out, const Tensor *lse,
                          float scale) {
    if (6 * AttnTile<D>::TILE_BYTES + 4 * ATT_BK * sizeof(float) <= (size_t)ci->smem_optin)
        launch_bwd_tc_stages<D, 2>(ci, s, dq, dk, dv, dout, q, k, v, out, lse, scale);
    else
        launch_bwd_tc_stages<D, 1>(ci, s, dq, dk, dv, dout, q, k, v, out, lse, scale);
}

static int use_tc(CudaImpl *ci, const AttnShape &s, const Tensor *const *ts, int nts) {
    if (!cuda_attention_tc_applies(ci, s.D)) return 0;
    for (int i = 0; i < nts; i++)
        if (ts[i]->dtype != OW_BF16 || !aligned16(ts[i]->data)) return 0;
    return 1;
}

void cuda_attention_forward(Backend *be, Tensor *out, Tensor *lse, const Tensor *q, const Tensor *k, const Tensor *v) {
    CudaImpl *ci = cuda_impl(be);
    AttnShape s = attn_shape(q, k, v);
    OW_CHECKF(tensor_same_shape(out, q), "attention_forward: out must have q's shape");
    OW_CHECKF(lse->dtype == OW_F32 && tensor_numel(lse) == (int64_t)s.B * s.Hq * s.T,
              "attention_forward: lse must be F32 [B, Hq, T]");
    OW_CHECK(q->dtype == k->dtype && q->dtype == v->dtype);
    if ((int64_t)s.B * s.T * s.Hq * s.D == 0) return;
    float scale = 1.0f / sqrtf((float)s.D);
    const Tensor *ts[] = {out, q, k, v};
    if (use_tc(ci, s, ts, 4)) {
        switch (s.D) {
        case 16: launch_fwd_tc<16>(ci, s, out, lse, q, k, v, scale); break;
        case 32: launch_fwd_tc<32>(ci, s, out, lse, q, k, v, scale); break;
        case 64: launch_fwd_tc<64>(ci, s, out, lse, q, k, v, scale); break;
        default: launch_fwd_tc<128>(ci, s, out, lse, q, k, v, scale); break;
        }
        return;
    }
    size_t bytes = (size_t)(2 * SQ * s.D + 2 * SK * s.D + SQ * SK + 3 * SQ) * sizeof(float);
    set_smem(ci, (const void *)k_attn_fwd_simple, bytes);
    dim3 grid((unsigned)((s.T + SQ - 1) / SQ), (unsigned)(s.B * s.Hq));
    k_attn_fwd_simple<<<grid, ATT_THREADS, bytes, ci->stream>>>(
        out->data, out->dtype, (float *)lse->data, q->data, k->data, v->data, q->dtype, s.T, s.Hq, s.Hkv, s.D, scale);
    CUDA_LAUNCH_CHECK();
}

void cuda_attention_backward(Backend *be, Tensor *dq, Tensor *dk, Tensor *dv, const Tensor *dout, const Tensor *q,
                             const Tensor *k, const Tensor *v, const Tensor *out, const Tensor *lse) {
    CudaImpl *ci = cuda_impl(be);
    AttnShape s = attn_shape(q, k, v);
    OW_CHECKF(tensor_same_shape(dq, q) && tensor_same_shape(dk, k) && tensor_same_shape(dv, v) &&
                  tensor_same_shape(dout, q) && tensor_same_shape(out, q),
              "attention_backward: gradient shapes must match q, k, v");
    OW_CHECKF(lse->dtype == OW_F32 && tensor_numel(lse) == (int64_t)s.B * s.Hq * s.T,
              "attention_backward: lse must be F32 [B, Hq, T]");
    OW_CHECK(q->dtype == k->dtype && q->dtype == v->dtype && q->dtype == out->dtype && q->dtype == dout->dtype);
    OW_CHECK(dk->dtype == dv->dtype);
    if ((int64_t)s.B * s.T * s.Hq * s.D == 0) return;
    float scale = 1.0f / sqrtf((float)s.D);
    const Tensor *ts[] = {dq, dk, dv, dout, q, k, v, out};
    int Tp;
    if (use_tc(ci, s, ts, 8) && bwd_stats_heads(ci, s, &Tp) > 0) {
        switch (s.D) {
        case 16: launch_bwd_tc<16>(ci, s, dq, dk, dv, dout, q, k, v, out, lse, scale); break;
        case 32: launch_bwd_tc<32>(ci, s, dq, dk, dv, dout, q, k, v, out, lse, scale); break;
        case 64: launch_bwd_tc<64>(ci, s, dq, dk, dv, dout, q, k, v, out, lse, scale); break;
        default: launch_bwd_tc<128>(ci, s, dq, dk, dv, dout, q, k, v, out, lse, scale); break;
        }
        return;
    }
    size_t bq = (size_t)(3 * SQ * s.D + 2 * SK * s.D + SQ * SK + 2 * SQ) * sizeof(float);
    set_smem(ci, (const void *)k_attn_bwd_dq_simple, bq);
    dim3 gq((unsigned)((s.T + SQ - 1) / SQ), (unsigned)(s.B * s.Hq));
    k_attn_bwd_dq_simple<<<gq, ATT_THREADS, bq, ci->stream>>>(dq->data, dq->dtype, q->data, k->data, v->data, out->data,
                                                              dout->data, q->dtype, (const float *)lse->data, s.T, s.Hq,
                                                              s.Hkv, s.D, scale);
    CUDA_LAUNCH_CHECK();
    size_t bkv = (size_t)(4 * SK * s.D + 2 * SQ * s.D + 2 * SQ * SK + 2 * SQ) * sizeof(float);
    set_smem(ci, (const void *)k_attn_bwd_dkdv_simple, bkv);
    dim3 gkv((unsigned)((s.T + SK - 1) / SK), (unsigned)(s.B * s.Hkv));
    k_attn_bwd_dkdv_simple<<<gkv, ATT_THREADS, bkv, ci->stream>>>(
        dk->data, dv->data, dk->dtype, q->data, k->data, v->data, out->data, dout->data, q->dtype,
        (const float *)lse->data, s.T, s.Hq, s.Hkv, s.D, scale);
    CUDA_LAUNCH_CHECK();
}

/* ======================= decoding: the last n queries against a key/value cache ======================= */

#define DEC_THREADS 128
#define DEC_TILE 128 /* keys per tile */

/* One (query head h, query i) per block: scores of a tile of keys (a warp per key) into shared memory, then an
 * online softmax over the tiles, each thread owning output dims d. q, out [n, Hq, D]; k, v [Tk, Hkv, D]; query i
 * attends to keys 0 .. Tk - n + i. */
__global__ void k_attn_decode(void *out, const void *q, const void *k, const void *v, int dt, int n, int Tk, int Hq,
                              int Hkv, int D, float scale) {
    extern __shared__ float smem[];
    float *qs = smem, *s = qs + D, *acc = s + DEC_TILE;
    int h = blockIdx.x, i = blockIdx.y, g = h / (Hq / Hkv), nkeys = Tk - n + i + 1;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    int64_t qrow = ((int64_t)i * Hq + h) * D;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        qs[d] = ow_load(q, dt, qrow + d);
        acc[d] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    __syncthreads();
    for (int j0 = 0; j0 < nkeys; j0 += DEC_TILE) {
        int cnt = min(DEC_TILE, nkeys - j0);
        for (int r = warp; r < cnt; r += nwarps) {
            int64_t kr = ((int64_t)(j0 + r) * Hkv + g) * D;
            float dot = 0.0f;
            for (int d = lane; d < D; d += 32) dot += qs[d] * ow_load(k, dt, kr + d);
            dot = ow_warp_sum(dot);
            if (lane == 0) s[r] = dot * scale;
        }
        __syncthreads();
        float tmax = -INFINITY;
        for (int r = 0; r < cnt; r++) tmax = fmaxf(tmax, s[r]);
        float mnew = fmaxf(m, tmax), corr = expf(m - mnew);
        __syncthreads(); /* every thread has read the scores */
        for (int r = threadIdx.x; r < cnt; r += blockDim.x) s[r] = expf(s[r] - mnew);
        __syncthreads();
        float psum = 0.0f;
        for (int r = 0; r < cnt; r++) psum += s[r];
        l = l * corr + psum;
        for (int d = threadIdx.x; d < D; d += blockDim.x) {
            float a = acc[d] * corr;
            for (int r = 0; r < cnt; r++) a += s[r] * ow_load(v, dt, ((int64_t)(j0 + r) * Hkv + g) * D + d);
            acc[d] = a;
        }
        m = mnew;
        __syncthreads(); /* the probabilities are read before the next tile's scores */
    }
    for (int d = threadIdx.x; d < D; d += blockDim.x) ow_store(out, dt, qrow + d, acc[d] / l);
}

void cuda_attention_decode(Backend *be, Tensor *out, const Tensor *q, const Tensor *k, const Tensor *v) {
    CudaImpl *ci = cuda_impl(be);
    OW_CHECKF(q->ndim == 3 && k->ndim == 3 && tensor_same_shape(k, v) && tensor_same_shape(out, q),
              "attention_decode expects q, out [n, Hq, D] and k, v [Tk, Hkv, D]");
    int n = (int)q->shape[0], Hq = (int)q->shape[1], D = (int)q->shape[2], Tk = (int)k->shape[0];
    int Hkv = (int)k->shape[1];
    OW_CHECKF(k->shape[2] == D && Hkv > 0 && Hq % Hkv == 0 && Tk >= n && n <= 65535,
              "attention_decode: q [%d, %d, %d] against k [%d, %d, %lld]", n, Hq, D, Tk, Hkv, (long long)k->shape[2]);
    OW_CHECK(q->dtype == k->dtype && q->dtype == v->dtype && q->dtype == out->dtype);
    if ((int64_t)n * Hq * D == 0) return;
    size_t bytes = (size_t)(2 * D + DEC_TILE) * sizeof(float);
    set_smem(ci, (const void *)k_attn_decode, bytes);
    dim3 grid((unsigned)Hq, (unsigned)n);
    k_attn_decode<<<grid, DEC_THREADS, bytes, ci->stream>>>(out->data, q->data, k->data, v->data, q->dtype, n, Tk, Hq,
                                                            Hkv, D, 1.0f / sqrtf((float)D));
    CUDA_LAUNCH_CHECK();
}
