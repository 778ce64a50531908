/* cuda_optim.cu: the fused optimizer kernels: full-rank AdamW (both
 * variants of backend.h), GaLore's low-rank moments, applying an update, and
 * AdamW on rows of a parameter whose moments live in host memory (read and
 * written over the bus, optionally on the side stream beside the compute).
 *
 * Parameters are BF16 (rounded stochastically: ow_f32_to_bf16_sr with the
 * element index as the Philox counter, so the rounding of element i depends
 * only on (sr_seed, i)) or F32 (no rounding). Moments and gradients are F32
 * (gradients of any float dtype are read as float). The new value of a
 * parameter is computed in fp32 from its stored value with the CPU backend's
 * operation order and no FMA contraction, so F32 results equal the CPU's bit for
 * bit. Bias corrections and step sizes are computed on the host in double and
 * rounded to float once, as the CPU backend does. */
#include "cuda/cuda_internal.h"

#include <math.h>
#include <string.h>

#define OPT_THREADS 256

__device__ __forceinline__ void store_param(void *p, int dt, int64_t i, float v, uint64_t seed) {
    if (dt == OW_BF16)
        ((uint16_t *)p)[i] = ow_f32_to_bf16_sr(v, seed, (uint64_t)i);
    else
        ((float *)p)[i] = v;
}

/* fp32 arithmetic without FMA contraction (nvcc would fuse a * b + c), so every
 * step rounds as the C expressions of the CPU backend (cpu_optim.c) do and an
 * F32 parameter gets bitwise the CPU's value. */
__device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float sub(float a, float b) { return __fsub_rn(a, b); }

/* Scalars shared by the kernels, all rounded to float once on the host. */
typedef struct AdamScalars {
    float b1, b2, omb1, omb2; /* omb = (float)(1 - (double)beta) */
    float eps, grad_scale;
    float step;     /* HF: lr sqrt(bc2) / bc1; torch: lr / bc1 */
    float bc2_sqrt; /* torch only */
    float lr_wd;    /* HF: lr * wd */
    float keep;     /* torch: 1 - lr * wd */
    int variant;
} AdamScalars;

/* g = grad * grad_scale; m = b1 m + omb1 g; v = b2 v + omb2 g g */
__device__ __forceinline__ void moments(float *m, float *v, int64_t i, float graw, const AdamScalars &a, float *mo,
                                        float *vo) {
    float g = mul(graw, a.grad_scale);
    float mi = add(mul(a.b1, m[i]), mul(a.omb1, g));
    float vi = add(mul(a.b2, v[i]), mul(mul(a.omb2, g), g));
    m[i] = mi;
    v[i] = vi;
    *mo = mi;
    *vo = vi;
}

/* One parameter element's step from its stored value p and its new moments mi, vi:
 * HF: p = p - step * (m / (sqrt(v) + eps)); then p = p - lr_wd * p when lr_wd != 0
 * torch: p = p * keep; p = p - step * (m / (sqrt(v) / bc2_sqrt + eps)) */
__device__ __forceinline__ float adam_param(float p, float mi, float vi, const AdamScalars &a) {
    if (a.variant == ADAM_VARIANT_HF) {
        p = sub(p, mul(a.step, mi / add(sqrtf(vi), a.eps)));
        if (a.lr_wd != 0.0f) p = sub(p, mul(a.lr_wd, p));
    } else {
        p = mul(p, a.keep);
        p = sub(p, mul(a.step, mi / add(sqrtf(vi) / a.bc2_sqrt, a.eps)));
    }
    return p;
}

__global__ void k_adam_update(void *param, int pdt, const void *grad, int gdt, float *m, float *v, int64_t n,
                              AdamScalars a, uint64_t seed) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float mi, vi;
        moments(m, v, i, ow_load(grad, gdt, i), a, &mi, &vi);
        store_param(param, pdt, i, adam_param(ow_load(param, pdt, i), mi, vi, a), seed);
    }
}

/* adam_update_host: one block per selected row at a time (grid-stride over rows), its
 * threads over the columns. m and v are host memory read and written over the bus
 * (mapped page-locked memory), the parameter and the gradient are device memory.
 * sel == NULL: every row, gradient row r; else rows with sel[r] >= 0 (present: gradient
 * row sel[r]) or with sel[r] < 0 (absent: zero gradient). Element (r, c) is element
 * r * C + c of the whole tensor: same arithmetic and rounding as k_adam_update. */
__global__ void k_adam_rows_host(void *param, int pdt, float *grad, float *m, float *v, const int32_t *sel,
                                 int absent, int zero_grad, int64_t V, int64_t C, AdamScalars a, uint64_t seed) {
    for (int64_t r = blockIdx.x; r < V; r += gridDim.x) {
        int64_t s = sel ? sel[r] : r;
        if (sel && (absent ? s >= 0 : s < 0)) continue;
        float *gr = absent ? NULL : grad + s * C;
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
            int64_t i = r * C + c;
            float mi, vi;
            moments(m, v, i, gr ? gr[c] : 0.0f, a, &mi, &vi);
            store_param(param, pdt, i, adam_param(ow_load(param, pdt, i), mi, vi, a), seed);
            if (gr && zero_grad) gr[c] = 0.0f;
        }
    }
}

__global__ void k_adam_moments(float *out, const void *grad, int gdt, float *m, float *v, int64_t n, AdamScalars a) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float mi, vi;
        moments(m, v, i, ow_load(grad, gdt, i), a, &mi, &vi);
        out[i] = mi / add(sqrtf(vi), a.eps);
    }
}

/* p = p + alpha * delta; then p = p - decay * p when decay != 0; element i rounds with counter i0 + i */
__global__ void k_apply_update(void *param, int pdt, const void *delta, int ddt, int64_t n, float alpha, float decay,
                               uint64_t seed, int64_t i0) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float p = add(ow_load(param, pdt, i), mul(alpha, ow_load(delta, ddt, i)));
        if (decay != 0.0f) p = sub(p, mul(decay, p));
        if (pdt == OW_BF16)
            ((uint16_t *)param)[i] = ow_f32_to_bf16_sr(p, seed, (uint64_t)(i0 + i));
        else
            ((float *)param)[i] = p;
    }
}

static AdamScalars adam_scalars(const AdamHyper *h) {
    AdamScalars a;
    memset(&a, 0, sizeof a);
    double bc1 = 1.0 - pow((double)h->beta1, (double)h->step);
    double bc2 = 1.0 - pow((double)h->beta2, (double)h->step);
    a.b1 = h->beta1;
    a.b2 = h->beta2;
    a.omb1 = (float)(1.0 - (double)h->beta1);
    a.omb2 = (float)(1.0 - (double)h->beta2);
    a.eps = h->eps;
    a.grad_scale = h->grad_scale;
    a.variant = (int)h->variant;
    if (h->variant == ADAM_VARIANT_HF) {
        a.step = (float)((double)h->lr * sqrt(bc2) / bc1);
        a.lr_wd = (float)((double)h->lr * (double)h->weight_decay);
    } else {
        a.step = (float)((double)h->lr / bc1);
        a.bc2_sqrt = (float)sqrt(bc2);
        a.keep = (float)(1.0 - (double)h->lr * (double)h->weight_decay);
    }
    return a;
}

static void check_param(const Tensor *p) {
    OW_CHECKF(p->dtype == OW_BF16 || p->dtype == OW_F32, "optimizer: parameter dtype %s (BF16 or F32 expected)",
              dtype_name(p->dtype));
}

void cuda_adam_update(Backend *be, Tensor *param, const Tensor *grad, Tensor *m, Tensor *v, const AdamHyper *h) {
    CudaImpl *ci = cuda_impl(be);
    int64_t n = tensor_numel(param);
    check_param(param);
    OW_CHECKF(tensor_numel(grad) == n && tensor_numel(m) == n && tensor_numel(v) == n && m->dtype == OW_F32 &&
                  v->dtype == OW_F32 && dtype_is_float(grad->dtype),
              "adam_update: grad, m, v must match the parameter (m, v F32)");
    OW_CHECKF(h->step >= 1, "adam step %lld", (long long)h->step);
    OW_CHECK(h->variant == ADAM_VARIANT_HF || h->variant == ADAM_VARIANT_TORCH);
    if (n == 0) return;
    k_adam_update<<<cuda_grid_for(n, OPT_THREADS), OPT_THREADS, 0, ci->stream>>>(
        param->data, param->dtype, grad->data, grad->dtype, (float *)m->data, (float *)v->data, n, adam_scalars(h),
        h->sr_seed);
    CUDA_LAUNCH_CHECK();
}

void cuda_adam_moments(Backend *be, Tensor *out, const Tensor *grad, Tensor *m, Tensor *v, const AdamHyper *h) {
    CudaImpl *ci = cuda_impl(be);
    int64_t n = tensor_numel(out);
    OW_CHECKF(out->dtype == OW_F32 && m->dtype == OW_F32 && v->dtype == OW_F32 && tensor_numel(grad) == n &&
                  tensor_numel(m) == n && tensor_numel(v) == n && dtype_is_float(grad->dtype),
              "adam_moments: out, m, v F32 of the gradient's size");
    if (n == 0) return;
    k_adam_moments<<<cuda_grid_for(n, OPT_THREADS), OPT_THREADS, 0, ci->stream>>>(
        (float *)out->data, grad->data, grad->dtype, (float *)m->data, (float *)v->data, n, adam_scalars(h));
    CUDA_LAUNCH_CHECK();
}

void cuda_apply_update(Backend *be, Tensor *param, const Tensor *delta, float alpha, float decay, uint64_t sr_seed,
                       int64_t sr_index0) {
    CudaImpl *ci = cuda_impl(be);
    int64_t n = tensor_numel(param);
    check_param(param);
    OW_CHECKF(tensor_numel(delta) == n && dtype_is_float(delta->dtype), "apply_update: delta size");
    if (n == 0) return;
    k_apply_update<<<cuda_grid_for(n, OPT_THREADS), OPT_THREADS, 0, ci->stream>>>(
        param->data, param->dtype, delta->data, delta->dtype, n, alpha, decay, sr_seed, sr_index0);
    CUDA_LAUNCH_CHECK();
}

int cuda_adam_update_host(Backend *be, Tensor *param, Tensor *grad, float *m, float *v, const Tensor *sel, int rows,
                          int zero_grad, int async, const AdamHyper *h) {
    CudaImpl *ci = cuda_impl(be);
    check_param(param);
    OW_CHECKF(param->ndim == 2, "adam_update_host: matrix parameter");
    const int64_t V = param->shape[0], C = param->shape[1];
    OW_CHECKF(sel == NULL || (sel->dtype == OW_I32 && tensor_numel(sel) == V), "adam_update_host: sel I32 [V]");
    OW_CHECKF(rows == ADAM_ROWS_PRESENT || rows == ADAM_ROWS_ABSENT, "adam_update_host: rows %d", rows);
    int absent = sel && rows == ADAM_ROWS_ABSENT;
    OW_CHECKF(absent || (grad && grad->dtype == OW_F32 && tensor_cols(grad) == C && (sel || tensor_rows(grad) == V)),
              "adam_update_host: gradient F32 [%s, C]", sel ? "slots" : "V");
    OW_CHECKF(h->step >= 1, "adam step %lld", (long long)h->step);
    if (V == 0 || C == 0) return -1;
    /* the bus, not the multiprocessors, bounds this kernel: a few blocks keep it busy
     * (measured on an H200, PCIe 5: 16 blocks of 512 threads read and write host memory
     * at ~42 GB/s each way) and leave the rest of the device to the compute beside it */
    unsigned blocks = async ? 32 : 4 * (unsigned)ci->num_sms;
    cudaStream_t st = async ? ci->opt_stream : ci->stream;
    int ticket = -1;
    if (async) ticket = cuda_side_begin(ci);
    k_adam_rows_host<<<blocks, OPT_THREADS, 0, st>>>(param->data, param->dtype, absent ? NULL : (float *)grad->data, m, v,
                                                    sel ? (const int32_t *)sel->data : NULL, absent, zero_grad, V, C,
                                                    adam_scalars(h), h->sr_seed);
    CUDA_LAUNCH_CHECK();
    if (async) cuda_side_end(ci, ticket);
    return ticket;
}
