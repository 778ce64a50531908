/* cuda_norm_rope.cu: RMSNorm forward/backward and rotary embeddings.
 *
 * RMSNorm: one block per row, fp32 math on bf16 (or any float) storage, with
 * the row sums (x.x, dout.w.x) in double as the CPU backend. The weight
 * gradient (F32) is reduced in two deterministic stages (row-group partials in
 * double into scratch, then a per-column sum in group order), so results are
 * bitwise reproducible run to run. RoPE: one thread per rotated pair (eight
 * pairs with 16-byte accesses on the fast path), in place, rotate-half layout
 * (as transformers). */
#include "cuda/cuda_internal.h"

#define NORM_THREADS 256
#define EW_THREADS 256

__global__ void k_rmsnorm_forward(void *out, int odt, float *rstd, const void *x, int xdt, const void *w, int wdt,
                                  int64_t C, float eps) {
    __shared__ double sh[32];
    int64_t base = (int64_t)blockIdx.x * C;
    double ss = 0.0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        double v = (double)ow_load(x, xdt, base + c);
        ss += v * v;
    }
    double total = ow_block_sum_d(ss, sh);
    float r = (float)(1.0 / sqrt(total / (double)C + (double)eps));
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
        ow_store(out, odt, base + c, ow_load(w, wdt, c) * (ow_load(x, xdt, base + c) * r));
}

/* dx += (r w) dout - x k with k = r^3 (sum dout w x) / C (the sum in double, as the CPU) */
__global__ void k_rmsnorm_backward_dx(void *dx, int dxdt, const void *dout, int ddt, const void *x, int xdt,
                                      const void *w, int wdt, const float *rstd, int64_t C) {
    __shared__ double sh[32];
    int64_t base = (int64_t)blockIdx.x * C;
    double dot = 0.0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
        dot += (double)ow_load(dout, ddt, base + c) * (double)ow_load(w, wdt, c) * (double)ow_load(x, xdt, base + c);
    dot = ow_block_sum_d(dot, sh);
    float r = rstd[blockIdx.x];
    double rn = (double)r;
    float k = (float)(rn * rn * rn * dot / (double)C);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        float d = ow_load(dout, ddt, base + c), xv = ow_load(x, xdt, base + c);
        ow_store(dx, dxdt, base + c, ow_load(dx, dxdt, base + c) + (r * ow_load(w, wdt, c) * d - xv * k));
    }
}

/* partials[g, c] = sum over rows r of group g of dout[r, c] * x[r, c] * rstd[r], in double (as the CPU) */
__global__ void k_rmsnorm_dw_partial(const void *dout, int ddt, const void *x, int xdt, const float *rstd, int64_t rows,
                                     int64_t C, int64_t rows_per_group, double *partials) {
    int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    int64_t g = blockIdx.y;
    if (c >= C) return;
    int64_t r0 = g * rows_per_group, r1 = r0 + rows_per_group < rows ? r0 + rows_per_group : rows;
    double s = 0.0;
    for (int64_t r = r0; r < r1; r++)
        s += (double)ow_load(dout, ddt, r * C + c) * (double)ow_load(x, xdt, r * C + c) * (double)rstd[r];
    partials[g * C + c] = s;
}

/* Fast paths (C a multiple of 8, at most 8 NORM_THREADS NORM_VEC vectors, 16-byte
 * aligned rows): each thread keeps its NORM_VEC vectors of 8 in registers, so
 * a row is read once; F32 or BF16 storage per buffer; the same per-element
 * arithmetic as the kernels above, the double sums in another order. */
#define NORM_VEC 4

__global__ void k_rmsnorm_forward_v8(void *out, int of32, float *rstd, const void *x, int xf32, const void *w, int wf32,
                                     int C, float eps) {
    __shared__ double sh[32];
    const int C8 = C / 8;
    const int64_t rv = (int64_t)blockIdx.x * C8;
    float v[NORM_VEC][8];
    double ss = 0.0;
#pragma unroll
    for (int j = 0; j < NORM_VEC; j++) {
        int idx = threadIdx.x + j * blockDim.x;
        if (idx < C8) {
            ow_x8_load(x, xf32, rv + idx, v[j]);
#pragma unroll
            for (int k = 0; k < 8; k++) ss += (double)v[j][k] * (double)v[j][k];
        }
    }
    double total = ow_block_sum_d(ss, sh);
    float r = (float)(1.0 / sqrt(total / (double)C + (double)eps));
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
#pragma unroll
    for (int j = 0; j < NORM_VEC; j++) {
        int idx = threadIdx.x + j * blockDim.x;
        if (idx < C8) {
            float wv[8], o[8];
            ow_x8_load(w, wf32, idx, wv);
#pragma unroll
            for (int k = 0; k < 8; k++) o[k] = wv[k] * (v[j][k] * r);
            ow_x8_store(out, of32, rv + idx, o);
        }
    }
}

__global__ void k_rmsnorm_backward_dx_v8(void *dx, int dxf32, const void *dout, int df32, const void *x, int xf32,
                                         const void *w, int wf32, const float *rstd, int C) {
    __shared__ double sh[32];
    const int C8 = C / 8;
    const int64_t rv = (int64_t)blockIdx.x * C8;
    float dv[NORM_VEC][8], xv[NORM_VEC][8];
    double dot = 0.0;
#pragma unroll
    for (int j = 0; j < NORM_VEC; j++) {
        int idx = threadIdx.x + j * blockDim.x;
        if (idx < C8) {
            float wv[8];
            ow_x8_load(dout, df32, rv + idx, dv[j]);
            ow_x8_load(x, xf32, rv + idx, xv[j]);
            ow_x8_load(w, wf32, idx, wv);
#pragma unroll
            for (int k = 0; k < 8; k++) dot += (double)dv[j][k] * (double)wv[k] * (double)xv[j][k];
        }
    }
    dot = ow_block_sum_d(dot, sh);
    float r = rstd[blockIdx.x];
    double rn = (double)r;
    float kk = (float)(rn * rn * rn * dot / (double)C);
#pragma unroll
    for (int j = 0; j < NORM_VEC; j++) {
        int idx = threadIdx.x + j * blockDim.x;
        if (idx < C8) {
            float wv[8], o[8];
            ow_x8_load(w, wf32, idx, wv);
            ow_x8_load(dx, dxf32, rv + idx, o);
#pragma unroll
            for (int k = 0; k < 8; k++) o[k] = o[k] + (r * wv[k] * dv[j][k] - xv[j][k] * kk);
            ow_x8_store(dx, dxf32, rv + idx, o);
        }
    }
}

/* Whether the v8 kernels take these tensors (F32 or BF16 each, rows 16-byte aligned). */
static int norm_v8_ok(int64_t C, const Tensor *const *ts, int count) {
    if (C % 8 != 0 || C > 8 * NORM_THREADS * NORM_VEC) return 0;
    for (int i = 0; i < count; i++)
        if ((ts[i]->dtype != OW_BF16 && ts[i]->dtype != OW_F32) || !ow_vec8_ok(ts[i]->data)) return 0;
    return 1;
}

void cuda_rmsnorm_forward(Backend *be, Tensor *out, Tensor *rstd, const Tensor *x, const Tensor *w, float eps) {
    CudaImpl *ci = cuda_impl(be);
    int64_t N = tensor_rows(x), C = tensor_cols(x);
    OW_CHECKF(tensor_rows(out) == N && tensor_cols(out) == C && tensor_numel(w) == C && rstd->dtype == OW_F32 &&
                  tensor_numel(rstd) == N,
              "rmsnorm_forward shapes");
    if (N == 0) return;
    OW_CHECK(N <= 0x7fffffff);
    const Tensor *ts[3] = {out, x, w};
    if (norm_v8_ok(C, ts, 3)) {
        k_rmsnorm_forward_v8<<<(unsigned)N, NORM_THREADS, 0, ci->stream>>>(
            out->data, out->dtype == OW_F32, (float *)rstd->data, x->data, x->dtype == OW_F32, w->data,
            w->dtype == OW_F32, (int)C, eps);
        CUDA_LAUNCH_CHECK();
        return;
    }
    k_rmsnorm_forward<<<(unsigned)N, NORM_THREADS, 0, ci->stream>>>(out->data, out->dtype, (float *)rstd->data, x->data,
                                                                    x->dtype, w->data, w->dtype, C, eps);
    CUDA_LAUNCH_CHECK();
}

void cuda_rmsnorm_backward(Backend *be, Tensor *dx, Tensor *dw, const Tensor *dout, const Tensor *x, const Tensor *w,
                           const Tensor *rstd) {
    CudaImpl *ci = cuda_impl(be);
    int64_t N = tensor_rows(x), C = tensor_cols(x);
    OW_CHECKF(tensor_rows(dx) == N && tensor_cols(dx) == C && tensor_rows(dout) == N && tensor_cols(dout) == C &&
                  tensor_numel(w) == C && rstd->dtype == OW_F32 && tensor_numel(rstd) == N,
              "rmsnorm_backward shapes");
    if (N == 0) return;
    OW_CHECK(N <= 0x7fffffff);
    const Tensor *ts[4] = {dx, dout, x, w};
    if (norm_v8_ok(C, ts, 4))
        k_rmsnorm_backward_dx_v8<<<(unsigned)N, NORM_THREADS, 0, ci->stream>>>(
            dx->data, dx->dtype == OW_F32, dout->data, dout->dtype == OW_F32, x->data, x->dtype == OW_F32, w->data,
            w->dtype == OW_F32, (const float *)rstd->data, (int)C);
    else
        k_rmsnorm_backward_dx<<<(unsigned)N, NORM_THREADS, 0, ci->stream>>>(dx->data, dx->dtype, dout->data,
                                                                            dout->dtype, x->data, x->dtype, w->data,
                                                                            w->dtype, (const float *)rstd->data, C);
    CUDA_LAUNCH_CHECK();
    if (!dw) return;
    OW_CHECKF(dw->dtype == OW_F32 && tensor_numel(dw) == C, "rmsnorm_backward: dw must be F32 [%lld]", (long long)C);
    int groups = cuda_col_groups(ci, N, C);
    int64_t rpg = (N + groups - 1) / groups;
    double *partials = (double *)ci->scratch;
    dim3 grid((unsigned)((C + EW_THREADS - 1) / EW_THREADS), (unsigned)groups);
    k_rmsnorm_dw_partial<<<grid, EW_THREADS, 0, ci->stream>>>(dout->data, dout->dtype, x->data, x->dtype,
                                                              (const float *)rstd->data, N, C, rpg, partials);
    CUDA_LAUNCH_CHECK();
    cuda_col_reduce_into(ci, partials, groups, C, (float *)dw->data);
}

__global__ void k_rope(void *x, int dt, const float *cos_t, const float *sin_t, int64_t T, int64_t H, int64_t half,
                       int64_t npairs, int inverse) {
    for (int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; p < npairs; p += (int64_t)gridDim.x * blockDim.x) {
        int64_t row = p / half, i = p - row * half; /* row indexes (b, t, h) */
        int64_t t = (row / H) % T;
        int64_t i1 = row * 2 * half + i, i2 = i1 + half;
        float c = cos_t[t * half + i], s = sin_t[t * half + i];
        float x1 = ow_load(x, dt, i1), x2 = ow_load(x, dt, i2);
        if (inverse) {
            ow_store(x, dt, i1, x1 * c + x2 * s);
            ow_store(x, dt, i2, x2 * c - x1 * s);
        } else {
            ow_store(x, dt, i1, x1 * c - x2 * s);
            ow_store(x, dt, i2, x2 * c + x1 * s);
        }
    }
}

/* Fast path: eight pairs per thread (half a multiple of 8, 16-byte aligned
 * buffers), the same per-element arithmetic. */
__global__ void k_rope_v8(void *x, int f32, const float *cos_t, const float *sin_t, int64_t T, int64_t H, int64_t half,
                          int64_t nvec, int inverse) {
    const int64_t h8 = half / 8;
    for (int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; p < nvec; p += (int64_t)gridDim.x * blockDim.x) {
        int64_t row = p / h8, i8 = p - row * h8; /* row indexes (b, t, h) */
        int64_t t = (row / H) % T;
        int64_t v1 = row * 2 * h8 + i8, v2 = v1 + h8; /* vector indices of x1 and x2 */
        float x1[8], x2[8], c[8], s[8];
        ow_x8_load(x, f32, v1, x1);
        ow_x8_load(x, f32, v2, x2);
        ow_x8_load(cos_t, 1, t * h8 + i8, c);
        ow_x8_load(sin_t, 1, t * h8 + i8, s);
        float y1[8], y2[8];
#pragma unroll
        for (int k = 0; k < 8; k++) {
            if (inverse) {
                y1[k] = x1[k] * c[k] + x2[k] * s[k];
                y2[k] = x2[k] * c[k] - x1[k] * s[k];
            } else {
                y1[k] = x1[k] * c[k] - x2[k] * s[k];
                y2[k] = x2[k] * c[k] + x1[k] * s[k];
            }
        }
        ow_x8_store(x, f32, v1, y1);
        ow_x8_store(x, f32, v2, y2);
    }
}

void cuda_rope(Backend *be, Tensor *x, const Tensor *cos, const Tensor *sin, int inverse) {
    CudaImpl *ci = cuda_impl(be);
    OW_CHECKF(x->ndim == 4, "rope: x must be [B, T, H, D]");
    int64_t B = x->shape[0], T = x->shape[1], H = x->shape[2], D = x->shape[3], half = D / 2;
    OW_CHECKF(D % 2 == 0 && cos->dtype == OW_F32 && sin->dtype == OW_F32 && tensor_cols(cos) == half &&
                  tensor_cols(sin) == half && tensor_rows(cos) >= T && tensor_rows(sin) >= T,
              "rope: cos/sin must be F32 [>= %lld, %lld]", (long long)T, (long long)half);
    int64_t npairs = B * T * H * half;
    if (npairs == 0) return;
    if (half % 8 == 0 && (x->dtype == OW_BF16 || x->dtype == OW_F32) && ow_vec8_ok(x->data) && ow_vec8_ok(cos->data) &&
        ow_vec8_ok(sin->data) && tensor_cols(cos) == half && tensor_cols(sin) == half) {
        k_rope_v8<<<cuda_grid_for(npairs / 8, EW_THREADS), EW_THREADS, 0, ci->stream>>>(
            x->data, x->dtype == OW_F32, (const float *)cos->data, (const float *)sin->data, T, H, half, npairs / 8,
            inverse);
        CUDA_LAUNCH_CHECK();
        return;
    }
    k_rope<<<cuda_grid_for(npairs, EW_THREADS), EW_THREADS, 0, ci->stream>>>(
        x->data, x->dtype, (const float *)cos->data, (const float *)sin->data, T, H, half, npairs, inverse);
    CUDA_LAUNCH_CHECK();
}
