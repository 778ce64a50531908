/* cuda_optim.cu: the fused optimizer kernels: full-rank AdamW (both
 * variants of backend.h), GaLore's low-rank moments, and applying an update.
 *
 * Parameters are BF16 (rounded stochastically: ow_f32_to_bf16_sr with the
 * element index as the Philox counter, so the rounding of element i depends
 * only on (sr_seed, i)) or F32 (no rounding). Moments and gradients are F32
 * (gradients of any float dtype are read as float). The new value of a
 * parameter is computed in fp32 from its stored value, without FMA contraction
 * (each operation rounded as written). Bias corrections are computed on the
 * host in double, as the PyTorch optimizers do. */
#include "cuda/cuda_internal.h"

#include <math.h>

#define OPT_THREADS 256

__device__ __forceinline__ void store_param(void *p, int dt, int64_t i, float v, uint64_t seed) {
    if (dt == OW_BF16)
        ((uint16_t *)p)[i] = ow_f32_to_bf16_sr(v, seed, (uint64_t)i);
    else
        ((float *)p)[i] = v;
}

/* fp32 arithmetic without FMA contraction (nvcc would fuse a * b + c), so every
 * step rounds as the C expression written in backend.h does on the CPU. */
__device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }

/* m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g g */
__device__ __forceinline__ void moments(float *m, float *v, int64_t i, float g, float b1, float b2) {
    float mi = add(mul(b1, m[i]), mul(1.0f - b1, g));
    float vi = add(mul(b2, v[i]), mul(mul(1.0f - b2, g), g));
    m[i] = mi;
    v[i] = vi;
}

/* variant 0 (HF): p += -step * (m / (sqrt(v) + eps)); p += -lr_wd * p
 * variant 1 (torch): p *= 1 - lr_wd; p += -step * (m / (sqrt(v) / bc2_sqrt + eps)) */
__global__ void k_adam_update(void *param, int pdt, const void *grad, int gdt, float *m, float *v, int64_t n,
                              float grad_scale, float b1, float b2, float eps, float step, float bc2_sqrt, float lr_wd,
                              int variant, uint64_t seed) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float g = mul(ow_load(grad, gdt, i), grad_scale);
        moments(m, v, i, g, b1, b2);
        float mi = m[i], vi = v[i];
        float p = ow_load(param, pdt, i);
        if (variant == ADAM_VARIANT_HF) {
            p = add(p, mul(-step, mi / add(sqrtf(vi), eps)));
            if (lr_wd != 0.0f) p = add(p, mul(-lr_wd, p));
        } else {
            if (lr_wd != 0.0f) p = mul(p, 1.0f - lr_wd);
            p = add(p, mul(-step, mi / add(sqrtf(vi) / bc2_sqrt, eps)));
        }
        store_param(param, pdt, i, p, seed);
    }
}

__global__ void k_adam_moments(float *out, const void *grad, int gdt, float *m, float *v, int64_t n, float grad_scale,
                               float b1, float b2, float eps) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float g = mul(ow_load(grad, gdt, i), grad_scale);
        moments(m, v, i, g, b1, b2);
        out[i] = m[i] / add(sqrtf(v[i]), eps);
    }
}

/* p = p + alpha * delta; then p = p * keep when there is a decay */
__global__ void k_apply_update(void *param, int pdt, const void *delta, int ddt, int64_t n, float alpha, int has_decay,
                               float keep, uint64_t seed) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float p = add(ow_load(param, pdt, i), mul(alpha, ow_load(delta, ddt, i)));
        if (has_decay) p = mul(p, keep);
        store_param(param, pdt, i, p, seed);
    }
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
    OW_CHECK(h->step >= 1);
    if (n == 0) return;
    double bc1 = 1.0 - pow((double)h->beta1, (double)h->step);
    double bc2 = 1.0 - pow((double)h->beta2, (double)h->step);
    float step, bc2_sqrt = 1.0f;
    if (h->variant == ADAM_VARIANT_HF) {
        step = (float)((double)h->lr * sqrt(bc2) / bc1);
    } else {
        OW_CHECK(h->variant == ADAM_VARIANT_TORCH);
        step = (float)((double)h->lr / bc1);
        bc2_sqrt = (float)sqrt(bc2);
    }
    float lr_wd = (float)((double)h->lr * (double)h->weight_decay);
    k_adam_update<<<cuda_grid_for(n, OPT_THREADS), OPT_THREADS, 0, ci->stream>>>(
        param->data, param->dtype, grad->data, grad->dtype, (float *)m->data, (float *)v->data, n, h->grad_scale,
        h->beta1, h->beta2, h->eps, step, bc2_sqrt, lr_wd, (int)h->variant, h->sr_seed);
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
        (float *)out->data, grad->data, grad->dtype, (float *)m->data, (float *)v->data, n, h->grad_scale, h->beta1,
        h->beta2, h->eps);
    CUDA_LAUNCH_CHECK();
}

void cuda_apply_update(Backend *be, Tensor *param, const Tensor *delta, float alpha, float decay, uint64_t sr_seed) {
    CudaImpl *ci = cuda_impl(be);
    int64_t n = tensor_numel(param);
    check_param(param);
    OW_CHECKF(tensor_numel(delta) == n && dtype_is_float(delta->dtype), "apply_update: delta size");
    if (n == 0) return;
    k_apply_update<<<cuda_grid_for(n, OPT_THREADS), OPT_THREADS, 0, ci->stream>>>(
        param->data, param->dtype, delta->data, delta->dtype, n, alpha, decay != 0.0f, 1.0f - decay, sr_seed);
    CUDA_LAUNCH_CHECK();
}
