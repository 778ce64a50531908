/* cuda_attention.cu: causal grouped-query attention, flash style: scores are
 * computed tile by tile in shared memory and never stored as T x T in global
 * memory. Layouts: q, out [B,T,Hq,D]; k, v [B,T,Hkv,D]; lse F32 [B,Hq,T] (the
 * log-sum-exp of the scaled scores); query head h uses key/value head
 * h / (Hq / Hkv). Scale 1/sqrt(D).
 *
 * Two implementations, both deterministic (no atomics):
 * - simple: fp32 math on any float dtype and any head dim, 16 x 16 tiles, one
 *   thread per tile entry. The reference and the fallback.
 * - tensor cores (WMMA, bf16 inputs, fp32 accumulation) for bf16 tensors with
 *   head dim 16, 32, 64 or 128 and 16-byte aligned data. Forward: a block owns
 *   64 queries (4 warps x 16 rows) and walks 32-key tiles with the online
 *   softmax; each warp keeps its output rows in shared memory (fp32), rescales
 *   them, then adds P V with WMMA (P rounded to bf16, its row sums taken from
 *   the rounded values).
 * Backward (both): D_i = rowsum(dout * out) is recomputed where needed;
 * P = exp(scale q.k - lse), dS = P (dout.v - D_i). dK, dV are accumulated by the
 * block that owns a key tile, looping over the query heads of its group and over
 * query tiles in order; dQ by a second kernel whose block owns a query tile and
 * loops over key tiles. Every output element is written once. */
#include "cuda/cuda_internal.h"

#include <cuda_bf16.h>
#include <mma.h>

namespace wmma = nvcuda::wmma;

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

typedef __nv_bfloat16 bf16;
typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> FragA;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> FragBRow;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> FragBCol;
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> FragC;

__host__ __device__ constexpr size_t a128(size_t x) { return (x + 127) / 128 * 128; }

/* Shared-memory layouts (byte offsets). Leading dimensions are padded (bf16 by 8,
 * float by 4): WMMA needs them to be multiples of 16 bytes, and every fragment
 * pointer below is a multiple of 32 bytes from a 128-byte aligned region. */
template <int D> struct FwdTC {
    static constexpr int BQ = 64, BK = 32, LD = D + 8, SLD = BK + 4, PLD = BK + 8, OLD = D + 4;
    static constexpr size_t oQ = 0;
    static constexpr size_t oK = a128(oQ + (size_t)BQ * LD * 2);
    static constexpr size_t oV = a128(oK + (size_t)BK * LD * 2);
    static constexpr size_t oS = a128(oV + (size_t)BK * LD * 2);
    static constexpr size_t oP = a128(oS + (size_t)4 * 16 * SLD * 4);
    static constexpr size_t oO = a128(oP + (size_t)4 * 16 * PLD * 2);
    static constexpr size_t oStat = a128(oO + (size_t)4 * 16 * OLD * 4);
    static constexpr size_t bytes = a128(oStat + (size_t)4 * 48 * 4);
};

template <int D> struct BwdKVTC {
    static constexpr int BK = 64, BQ = 32, LD = D + 8, SLD = BQ + 4, PLD = BQ + 8;
    static constexpr size_t oK = 0;
    static constexpr size_t oV = a128(oK + (size_t)BK * LD * 2);
    static constexpr size_t oQ = a128(oV + (size_t)BK * LD * 2);
    static constexpr size_t oDO = a128(oQ + (size_t)BQ * LD * 2);
    static constexpr size_t oStat = a128(oDO + (size_t)BQ * LD * 2); /* lse[BQ], Di[BQ] */
    static constexpr size_t oS = a128(oStat + (size_t)2 * BQ * 4);
    static constexpr size_t oDP = a128(oS + (size_t)4 * 16 * SLD * 4);
    static constexpr size_t oP = a128(oDP + (size_t)4 * 16 * SLD * 4);
    static constexpr size_t oDS = a128(oP + (size_t)4 * 16 * PLD * 2);
    static constexpr size_t bytes = a128(oDS + (size_t)4 * 16 * PLD * 2);
};

template <int D> struct BwdQTC {
    static constexpr int BQ = 64, BK = 32, LD = D + 8, SLD = BK + 4, PLD = BK + 8;
    static constexpr size_t oQ = 0;
    static constexpr size_t oDO = a128(oQ + (size_t)BQ * LD * 2);
    static constexpr size_t oK = a128(oDO + (size_t)BQ * LD * 2);
    static constexpr size_t oV = a128(oK + (size_t)BK * LD * 2);
    static constexpr size_t oStat = a128(oV + (size_t)BK * LD * 2); /* lse[BQ], Di[BQ] */
    static constexpr size_t oS = a128(oStat + (size_t)2 * BQ * 4);
    static constexpr size_t oDP = a128(oS + (size_t)4 * 16 * SLD * 4);
    static constexpr size_t oDS = a128(oDP + (size_t)4 * 16 * SLD * 4);
    static constexpr size_t bytes = a128(oDS + (size_t)4 * 16 * PLD * 2);
};

/* dst[r*ld + c] = src row t0 + r of head h (bf16), zero rows beyond T; 16-byte copies. */
template <int D>
__device__ __forceinline__ void load_rows_bf16(bf16 *dst, int ld, const uint16_t *src, int b, int t0, int nrows,
                                               int T, int H, int h) {
    constexpr int CH = D / 8; /* 16-byte chunks per row */
    for (int idx = threadIdx.x; idx < nrows * CH; idx += blockDim.x) {
        int r = idx / CH, c = idx - r * CH, t = t0 + r;
        uint4 val = make_uint4(0u, 0u, 0u, 0u);
        if (t < T) val = *(const uint4 *)(src + row_off(b, t, T, H, h, D) + c * 8);
        *(uint4 *)(dst + r * ld + c * 8) = val;
    }
}

/* C (16 x 16 per n, stored at out + 16 n, ld out_ld) = A rows (16 x D, row-major at a, ld lda)
 * times B^T where B rows are at b + 16 n * ldb (16 x D, row-major): i.e. out = A B^T. */
template <int D, int NT>
__device__ __forceinline__ void mma_abt(float *out, int out_ld, const bf16 *a, int lda, const bf16 *b, int ldb) {
#pragma unroll
    for (int n = 0; n < NT; n++) {
        FragC acc;
        wmma::fill_fragment(acc, 0.0f);
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            FragA fa;
            FragBCol fb;
            wmma::load_matrix_sync(fa, a + kk * 16, lda);
            wmma::load_matrix_sync(fb, b + n * 16 * ldb + kk * 16, ldb);
            wmma::mma_sync(acc, fa, fb, acc);
        }
        wmma::store_matrix_sync(out + n * 16, acc, out_ld, wmma::mem_row_major);
    }
}

template <int D>
__global__ void __launch_bounds__(ATT_THREADS)
    k_attn_fwd_tc(uint16_t *out, float *lse, const uint16_t *q, const uint16_t *k, const uint16_t *v, int T, int Hq,
                  int Hkv, float scale) {
    typedef FwdTC<D> L;
    extern __shared__ __align__(128) unsigned char smem_tc[];
    bf16 *Qs = (bf16 *)(smem_tc + L::oQ), *Ks = (bf16 *)(smem_tc + L::oK), *Vs = (bf16 *)(smem_tc + L::oV);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float *Ss = (float *)(smem_tc + L::oS) + warp * 16 * L::SLD;
    bf16 *Ps = (bf16 *)(smem_tc + L::oP) + warp * 16 * L::PLD;
    float *Os = (float *)(smem_tc + L::oO) + warp * 16 * L::OLD;
    float *sm = (float *)(smem_tc + L::oStat) + warp * 48, *sl = sm + 16, *sa = sm + 32;
    int bh = blockIdx.y, b = bh / Hq, h = bh % Hq, hk = h / (Hq / Hkv);
    int q0 = blockIdx.x * L::BQ, qw = q0 + 16 * warp;

    load_rows_bf16<D>(Qs, L::LD, q, b, q0, L::BQ, T, Hq, h);
    for (int idx = lane; idx < 16 * D; idx += 32) Os[(idx / D) * L::OLD + idx % D] = 0.0f;
    if (lane < 16) {
        sm[lane] = -INFINITY;
        sl[lane] = 0.0f;
        sa[lane] = 1.0f;
    }
    int kend = min(q0 + L::BQ, T);
    for (int k0 = 0; k0 < kend; k0 += L::BK) {
        __syncthreads(); /* Q is loaded; the previous K/V tile is no longer read */
        load_rows_bf16<D>(Ks, L::LD, k, b, k0, L::BK, T, Hkv, hk);
        load_rows_bf16<D>(Vs, L::LD, v, b, k0, L::BK, T, Hkv, hk);
        __syncthreads();
        if (qw >= T || k0 > qw + 15) continue; /* padding rows, or keys all after this warp's queries */

        /* S = Q_w K^T (16 x 32) */
        mma_abt<D, L::BK / 16>(Ss, L::SLD, Qs + 16 * warp * L::LD, L::LD, Ks, L::LD);
        __syncwarp();

        /* online softmax: lanes 2r and 2r+1 share row r, 16 columns each */
        {
            int r = lane >> 1, cb = (lane & 1) * 16, qi = qw + r;
            float m_old = sm[r], l_old = sl[r];
            float sv[16];
            float mloc = -INFINITY;
#pragma unroll
            for (int j = 0; j < 16; j++) {
                int kj = k0 + cb + j;
                float s = (kj <= qi && kj < T) ? Ss[r * L::SLD + cb + j] * scale : -INFINITY;
                sv[j] = s;
                mloc = fmaxf(mloc, s);
            }
            mloc = fmaxf(mloc, __shfl_xor_sync(0xffffffffu, mloc, 1));
            float m_new = fmaxf(m_old, mloc);
            float alpha = 1.0f, psum = 0.0f;
            if (m_new == -INFINITY) {
#pragma unroll
                for (int j = 0; j < 16; j++) Ps[r * L::PLD + cb + j] = __float2bfloat16(0.0f);
            } else {
                alpha = expf(m_old - m_new);
#pragma unroll
                for (int j = 0; j < 16; j++) {
                    bf16 pb = __float2bfloat16(sv[j] == -INFINITY ? 0.0f : expf(sv[j] - m_new));
                    Ps[r * L::PLD + cb + j] = pb;
                    psum += __bfloat162float(pb);
                }
            }
            psum += __shfl_xor_sync(0xffffffffu, psum, 1);
            __syncwarp(); /* both lanes of the row have read sm, sl */
            if ((lane & 1) == 0) {
                sm[r] = m_new;
                sl[r] = l_old * alpha + psum;
                sa[r] = alpha;
            }
        }
        __syncwarp();
        for (int idx = lane; idx < 16 * D; idx += 32) {
            int rr = idx / D, d = idx - rr * D;
            Os[rr * L::OLD + d] *= sa[rr];
        }
        __syncwarp();

        /* O_w += P V */
#pragma unroll
        for (int dn = 0; dn < D / 16; dn++) {
            FragC acc;
            wmma::load_matrix_sync(acc, Os + dn * 16, L::OLD, wmma::mem_row_major);
#pragma unroll
            for (int kk = 0; kk < L::BK / 16; kk++) {
                FragA fa;
                FragBRow fb;
                wmma::load_matrix_sync(fa, Ps + kk * 16, L::PLD);
                wmma::load_matrix_sync(fb, Vs + kk * 16 * L::LD + dn * 16, L::LD);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            wmma::store_matrix_sync(Os + dn * 16, acc, L::OLD, wmma::mem_row_major);
        }
        __syncwarp();
    }
    __syncwarp();
    if (qw >= T) return;
    for (int idx = lane; idx < 16 * D; idx += 32) {
        int rr = idx / D, d = idx - rr * D, t = qw + rr;
        if (t < T) out[row_off(b, t, T, Hq, h, D) + d] = ow_f32_to_bf16(Os[rr * L::OLD + d] / sl[rr]);
    }
    if (lane < 16 && qw + lane < T) lse[((int64_t)b * Hq + h) * T + qw + lane] = sm[lane] + logf(sl[lane]);
}

/* Writes a 16 x 16 accumulator tile to global rows t0 + r (r < 16, t0 + r < T), columns c0..c0+15
 * of head h, through the warp's staging buffer (16 x ld floats). */
template <int D>
__device__ __forceinline__ void store_tile_bf16(uint16_t *dst, const FragC &f, float *stage, int ld, int b, int t0,
                                                int T, int H, int h, int c0, int lane) {
    wmma::store_matrix_sync(stage, f, ld, wmma::mem_row_major);
    __syncwarp();
    for (int idx = lane; idx < 256; idx += 32) {
        int r = idx >> 4, c = idx & 15, t = t0 + r;
        if (t < T) dst[row_off(b, t, T, H, h, D) + c0 + c] = ow_f32_to_bf16(stage[r * ld + c]);
    }
    __syncwarp();
}

template <int D>
__global__ void __launch_bounds__(ATT_THREADS)
    k_attn_bwd_dkdv_tc(uint16_t *dk, uint16_t *dv, const uint16_t *q, const uint16_t *k, const uint16_t *v,
                       const uint16_t *o, const uint16_t *dout, const float *lse, int T, int Hq, int Hkv, float scale) {
    typedef BwdKVTC<D> L;
    extern __shared__ __align__(128) unsigned char smem_tc[];
    bf16 *Ks = (bf16 *)(smem_tc + L::oK), *Vs = (bf16 *)(smem_tc + L::oV);
    bf16 *Qs = (bf16 *)(smem_tc + L::oQ), *dOs = (bf16 *)(smem_tc + L::oDO);
    float *lse_s = (float *)(smem_tc + L::oStat), *Di = lse_s + L::BQ;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float *St = (float *)(smem_tc + L::oS) + warp * 16 * L::SLD;
    float *dPt = (float *)(smem_tc + L::oDP) + warp * 16 * L::SLD;
    bf16 *Pt = (bf16 *)(smem_tc + L::oP) + warp * 16 * L::PLD;
    bf16 *dSt = (bf16 *)(smem_tc + L::oDS) + warp * 16 * L::PLD;
    int bh = blockIdx.y, b = bh / Hkv, hk = bh % Hkv, G = Hq / Hkv;
    int k0 = blockIdx.x * L::BK, kw = k0 + 16 * warp;

    load_rows_bf16<D>(Ks, L::LD, k, b, k0, L::BK, T, Hkv, hk);
    load_rows_bf16<D>(Vs, L::LD, v, b, k0, L::BK, T, Hkv, hk);
    FragC dK[D / 16], dV[D / 16];
#pragma unroll
    for (int dn = 0; dn < D / 16; dn++) {
        wmma::fill_fragment(dK[dn], 0.0f);
        wmma::fill_fragment(dV[dn], 0.0f);
    }
    for (int g = 0; g < G; g++) {
        int h = hk * G + g;
        for (int q0 = k0; q0 < T; q0 += L::BQ) { /* k0 is a multiple of BQ: earlier queries see none of these keys */
            __syncthreads(); /* the previous query tile is no longer read */
            load_rows_bf16<D>(Qs, L::LD, q, b, q0, L::BQ, T, Hq, h);
            load_rows_bf16<D>(dOs, L::LD, dout, b, q0, L::BQ, T, Hq, h);
            if (threadIdx.x < L::BQ)
                lse_s[threadIdx.x] = q0 + (int)threadIdx.x < T ? lse[((int64_t)b * Hq + h) * T + q0 + threadIdx.x] : 0.0f;
            __syncthreads();
            { /* Di: 4 threads per query row (128 threads, 32 rows) */
                int row = threadIdx.x >> 2, part = threadIdx.x & 3, t = q0 + row;
                float acc = 0.0f;
                if (t < T) {
                    const uint16_t *orow = o + row_off(b, t, T, Hq, h, D);
                    for (int d = part; d < D; d += 4) acc += __bfloat162float(dOs[row * L::LD + d]) * ow_bf16_to_f32(orow[d]);
                }
                acc += __shfl_xor_sync(0xffffffffu, acc, 1);
                acc += __shfl_xor_sync(0xffffffffu, acc, 2);
                if (part == 0) Di[row] = acc;
            }
            __syncthreads();
            if (kw >= T || kw > q0 + L::BQ - 1) continue; /* no valid key, or all keys after all queries */

            /* S^T = K_w Q^T and dP^T = V_w dO^T (16 keys x 32 queries) */
            mma_abt<D, L::BQ / 16>(St, L::SLD, Ks + 16 * warp * L::LD, L::LD, Qs, L::LD);
            mma_abt<D, L::BQ / 16>(dPt, L::SLD, Vs + 16 * warp * L::LD, L::LD, dOs, L::LD);
            __syncwarp();
            for (int idx = lane; idx < 16 * L::BQ; idx += 32) {
                int r = idx / L::BQ, c = idx - r * L::BQ, key = kw + r, qi = q0 + c;
                float p = 0.0f, ds = 0.0f;
                if (key <= qi && qi < T && key < T) {
                    p = expf(St[r * L::SLD + c] * scale - lse_s[c]);
                    ds = p * (dPt[r * L::SLD + c] - Di[c]);
                }
                Pt[r * L::PLD + c] = __float2bfloat16(p);
                dSt[r * L::PLD + c] = __float2bfloat16(ds);
            }
            __syncwarp();
            /* dV_w += P^T dO, dK_w += dS^T Q */
#pragma unroll
            for (int dn = 0; dn < D / 16; dn++) {
#pragma unroll
                for (int kk = 0; kk < L::BQ / 16; kk++) {
                    FragA fa;
                    FragBRow fb;
                    wmma::load_matrix_sync(fa, Pt + kk * 16, L::PLD);
                    wmma::load_matrix_sync(fb, dOs + kk * 16 * L::LD + dn * 16, L::LD);
                    wmma::mma_sync(dV[dn], fa, fb, dV[dn]);
                    wmma::load_matrix_sync(fa, dSt + kk * 16, L::PLD);
                    wmma::load_matrix_sync(fb, Qs + kk * 16 * L::LD + dn * 16, L::LD);
                    wmma::mma_sync(dK[dn], fa, fb, dK[dn]);
                }
            }
        }
    }
    __syncwarp();
    if (kw >= T) return;
#pragma unroll
    for (int dn = 0; dn < D / 16; dn++) {
#pragma unroll
        for (int i = 0; i < dK[dn].num_elements; i++) dK[dn].x[i] *= scale;
        store_tile_bf16<D>(dk, dK[dn], St, L::SLD, b, kw, T, Hkv, hk, dn * 16, lane);
        store_tile_bf16<D>(dv, dV[dn], St, L::SLD, b, kw, T, Hkv, hk, dn * 16, lane);
    }
}

template <int D>
__global__ void __launch_bounds__(ATT_THREADS)
    k_attn_bwd_dq_tc(uint16_t *dq, const uint16_t *q, const uint16_t *k, const uint16_t *v, const uint16_t *o,
                     const uint16_t *dout, const float *lse, int T, int Hq, int Hkv, float scale) {
    typedef BwdQTC<D> L;
    extern __shared__ __align__(128) unsigned char smem_tc[];
    bf16 *Qs = (bf16 *)(smem_tc + L::oQ), *dOs = (bf16 *)(smem_tc + L::oDO);
    bf16 *Ks = (bf16 *)(smem_tc + L::oK), *Vs = (bf16 *)(smem_tc + L::oV);
    float *lse_s = (float *)(smem_tc + L::oStat), *Di = lse_s + L::BQ;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float *Sw = (float *)(smem_tc + L::oS) + warp * 16 * L::SLD;
    float *dPw = (float *)(smem_tc + L::oDP) + warp * 16 * L::SLD;
    bf16 *dSw = (bf16 *)(smem_tc + L::oDS) + warp * 16 * L::PLD;
    int bh = blockIdx.y, b = bh / Hq, h = bh % Hq, hk = h / (Hq / Hkv);
    int q0 = blockIdx.x * L::BQ, qw = q0 + 16 * warp;

    load_rows_bf16<D>(Qs, L::LD, q, b, q0, L::BQ, T, Hq, h);
    load_rows_bf16<D>(dOs, L::LD, dout, b, q0, L::BQ, T, Hq, h);
    if (threadIdx.x < L::BQ)
        lse_s[threadIdx.x] = q0 + (int)threadIdx.x < T ? lse[((int64_t)b * Hq + h) * T + q0 + threadIdx.x] : 0.0f;
    __syncthreads();
    { /* Di: 2 threads per query row (128 threads, 64 rows) */
        int row = threadIdx.x >> 1, part = threadIdx.x & 1, t = q0 + row;
        float acc = 0.0f;
        if (t < T) {
            const uint16_t *orow = o + row_off(b, t, T, Hq, h, D);
            for (int d = part; d < D; d += 2) acc += __bfloat162float(dOs[row * L::LD + d]) * ow_bf16_to_f32(orow[d]);
        }
        acc += __shfl_xor_sync(0xffffffffu, acc, 1);
        if (part == 0) Di[row] = acc;
    }
    FragC dQ[D / 16];
#pragma unroll
    for (int dn = 0; dn < D / 16; dn++) wmma::fill_fragment(dQ[dn], 0.0f);
    int kend = min(q0 + L::BQ, T);
    for (int k0 = 0; k0 < kend; k0 += L::BK) {
        __syncthreads(); /* Di is written; the previous K/V tile is no longer read */
        load_rows_bf16<D>(Ks, L::LD, k, b, k0, L::BK, T, Hkv, hk);
        load_rows_bf16<D>(Vs, L::LD, v, b, k0, L::BK, T, Hkv, hk);
        __syncthreads();
        if (qw >= T || k0 > qw + 15) continue;

        /* S_w = Q_w K^T, dP_w = dO_w V^T (16 queries x 32 keys) */
        mma_abt<D, L::BK / 16>(Sw, L::SLD, Qs + 16 * warp * L::LD, L::LD, Ks, L::LD);
        mma_abt<D, L::BK / 16>(dPw, L::SLD, dOs + 16 * warp * L::LD, L::LD, Vs, L::LD);
        __syncwarp();
        for (int idx = lane; idx < 16 * L::BK; idx += 32) {
            int r = idx / L::BK, c = idx - r * L::BK, qi = qw + r, kj = k0 + c;
            float ds = 0.0f;
            if (kj <= qi && kj < T && qi < T) {
                float p = expf(Sw[r * L::SLD + c] * scale - lse_s[16 * warp + r]);
                ds = p * (dPw[r * L::SLD + c] - Di[16 * warp + r]);
            }
            dSw[r * L::PLD + c] = __float2bfloat16(ds);
        }
        __syncwarp();
        /* dQ_w += dS K */
#pragma unroll
        for (int dn = 0; dn < D / 16; dn++) {
#pragma unroll
            for (int kk = 0; kk < L::BK / 16; kk++) {
                FragA fa;
                FragBRow fb;
                wmma::load_matrix_sync(fa, dSw + kk * 16, L::PLD);
                wmma::load_matrix_sync(fb, Ks + kk * 16 * L::LD + dn * 16, L::LD);
                wmma::mma_sync(dQ[dn], fa, fb, dQ[dn]);
            }
        }
    }
    __syncwarp();
    if (qw >= T) return;
#pragma unroll
    for (int dn = 0; dn < D / 16; dn++) {
#pragma unroll
        for (int i = 0; i < dQ[dn].num_elements; i++) dQ[dn].x[i] *= scale;
        store_tile_bf16<D>(dq, dQ[dn], Sw, L::SLD, b, qw, T, Hq, h, dn * 16, lane);
    }
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
    OW_CHECKF(tensor_same_shape(k, v) && k->shape[0] == s.B && k->shape[1] == s.T && k->shape[3] == s.D &&
                  s.Hkv > 0 && s.Hq % s.Hkv == 0,
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
    OW_CHECKF(bytes <= (size_t)ci->smem_optin, "attention kernel needs %zu bytes of shared memory; the device allows %d",
              bytes, ci->smem_optin);
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

template <int D>
static void launch_fwd_tc(CudaImpl *ci, const AttnShape &s, Tensor *out, Tensor *lse, const Tensor *q,
                          const Tensor *k, const Tensor *v, float scale) {
    typedef FwdTC<D> L;
    set_smem(ci, (const void *)k_attn_fwd_tc<D>, L::bytes);
    dim3 grid((unsigned)((s.T + L::BQ - 1) / L::BQ), (unsigned)(s.B * s.Hq));
    k_attn_fwd_tc<D><<<grid, ATT_THREADS, L::bytes, ci->stream>>>((uint16_t *)out->data, (float *)lse->data,
                                                                   (const uint16_t *)q->data, (const uint16_t *)k->data,
                                                                   (const uint16_t *)v->data, s.T, s.Hq, s.Hkv, scale);
    CUDA_LAUNCH_CHECK();
}

template <int D>
static void launch_bwd_tc(CudaImpl *ci, const AttnShape &s, Tensor *dq, Tensor *dk, Tensor *dv, const Tensor *dout,
                          const Tensor *q, const Tensor *k, const Tensor *v, const Tensor *out, const Tensor *lse,
                          float scale) {
    typedef BwdKVTC<D> LKV;
    typedef BwdQTC<D> LQ;
    set_smem(ci, (const void *)k_attn_bwd_dkdv_tc<D>, LKV::bytes);
    dim3 gkv((unsigned)((s.T + LKV::BK - 1) / LKV::BK), (unsigned)(s.B * s.Hkv));
    k_attn_bwd_dkdv_tc<D><<<gkv, ATT_THREADS, LKV::bytes, ci->stream>>>(
        (uint16_t *)dk->data, (uint16_t *)dv->data, (const uint16_t *)q->data, (const uint16_t *)k->data,
        (const uint16_t *)v->data, (const uint16_t *)out->data, (const uint16_t *)dout->data,
        (const float *)lse->data, s.T, s.Hq, s.Hkv, scale);
    CUDA_LAUNCH_CHECK();
    set_smem(ci, (const void *)k_attn_bwd_dq_tc<D>, LQ::bytes);
    dim3 gq((unsigned)((s.T + LQ::BQ - 1) / LQ::BQ), (unsigned)(s.B * s.Hq));
    k_attn_bwd_dq_tc<D><<<gq, ATT_THREADS, LQ::bytes, ci->stream>>>(
        (uint16_t *)dq->data, (const uint16_t *)q->data, (const uint16_t *)k->data, (const uint16_t *)v->data,
        (const uint16_t *)out->data, (const uint16_t *)dout->data, (const float *)lse->data, s.T, s.Hq, s.Hkv, scale);
    CUDA_LAUNCH_CHECK();
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
    k_attn_fwd_simple<<<grid, ATT_THREADS, bytes, ci->stream>>>(out->data, out->dtype, (float *)lse->data, q->data,
                                                                k->data, v->data, q->dtype, s.T, s.Hq, s.Hkv, s.D,
                                                                scale);
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
    if (use_tc(ci, s, ts, 8)) {
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
    k_attn_bwd_dq_simple<<<gq, ATT_THREADS, bq, ci->stream>>>(dq->data, dq->dtype, q->data, k->data, v->data,
                                                              out->data, dout->data, q->dtype,
                                                              (const float *)lse->data, s.T, s.Hq, s.Hkv, s.D, scale);
    CUDA_LAUNCH_CHECK();
    size_t bkv = (size_t)(4 * SK * s.D + 2 * SQ * s.D + 2 * SQ * SK + 2 * SQ) * sizeof(float);
    set_smem(ci, (const void *)k_attn_bwd_dkdv_simple, bkv);
    dim3 gkv((unsigned)((s.T + SK - 1) / SK), (unsigned)(s.B * s.Hkv));
    k_attn_bwd_dkdv_simple<<<gkv, ATT_THREADS, bkv, ci->stream>>>(dk->data, dv->data, dk->dtype, q->data, k->data,
                                                                  v->data, out->data, dout->data, q->dtype,
                                                                  (const float *)lse->data, s.T, s.Hq, s.Hkv, s.D,
                                                                  scale);
    CUDA_LAUNCH_CHECK();
}
