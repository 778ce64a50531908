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

/* adam_update_host's kernel, over rows [r0, r1) of a [V, C] parameter: one block per row
 * at a time (grid-stride over rows), its threads over the columns. Moment element (r, c)
 * is m[(r - mrow0) * C + c]: the whole tensor (mrow0 0; device memory, or host memory
 * read over the bus) or a staged chunk of rows starting at mrow0. mode: HS_ALL every row
 * with gradient row r; HS_PRESENT rows with sel[r] >= 0 and gradient row sel[r];
 * HS_ABSENT rows with sel[r] < 0 and a zero gradient. Gradient row s is
 * grad[(s - grow0) * C ...]: the whole gradient (grow0 0) or a staged chunk (HS_ALL).
 * Element (r, c) is element r * C + c of the whole tensor: k_adam_update's arithmetic
 * and rounding. */
enum { HS_ALL = 0, HS_PRESENT = 1, HS_ABSENT = 2 };

__global__ void k_adam_rows(void *param, int pdt, float *grad, int64_t grow0, float *m, float *v, int64_t mrow0,
                            const int32_t *sel, int mode, int zero_grad, int64_t r0, int64_t r1, int64_t C,
                            AdamScalars a, uint64_t seed) {
    for (int64_t r = r0 + blockIdx.x; r < r1; r += gridDim.x) {
        int64_t s = mode == HS_ALL ? r : sel[r];
        if (mode != HS_ALL && (mode == HS_ABSENT ? s >= 0 : s < 0)) continue;
        float *gr = mode == HS_ABSENT ? NULL : grad + (s - grow0) * C;
        float *mr = m + (r - mrow0) * C, *vr = v + (r - mrow0) * C;
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
            int64_t i = r * C + c;
            float mi, vi;
            moments(mr, vr, c, gr ? gr[c] : 0.0f, a, &mi, &vi);
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

/* ---- adam_update_host ----
 * Moments in host memory are moved by the copy engines, not read over the bus by
 * kernels: a kernel waiting on the bus would hold its multiprocessors for the whole
 * transfer (tens of ms) and slow the compute beside it. Dense passes (every row, or
 * the rows absent from a row map) stream chunks of HS_CHUNK_BYTES of m and v through
 * HS_SLOTS staging slots: H2D on hs_h2d, the update kernel on opt_stream, D2H on
 * hs_d2h, ordered by per-slot events, so the three overlap. A gradient in host
 * memory (lm_head's, Model.head_grad_host) is staged beside m and v (a slot then
 * holds three arrays of a third of its room each) and not copied back. The
 * scattered rows of a row map (present rows, a few thousand) are read and written
 * over the bus by a kernel of few blocks. Moments in device memory are updated in
 * place by one kernel.
 * Host-state ops run one after another (each waits for hs_done of the previous one,
 * D2H included), after the main stream's work queued before them; the ticket marks
 * the end of their last kernel (the parameter is updated). */

static_assert((size_t)HS_SLOTS * 2 * HS_CHUNK_BYTES == BACKEND_CUDA_HOST_STATE_STAGING,
              "staging size in backend_cuda.h");

int cuda_host_state_reserve(Backend *be, OwError *err) {
    CudaImpl *ci = cuda_impl(be);
    if (ci->hs_stage) return 0;
    return cuda_ws_alloc(be, (size_t)HS_SLOTS * 2 * HS_CHUNK_BYTES, (void **)&ci->hs_stage,
                         "staging of optimizer state in host memory", err);
}

static int is_host_memory(const void *p) {
    cudaPointerAttributes at;
    CUDA_CHECK(cudaPointerGetAttributes(&at, p));
    return at.type == cudaMemoryTypeHost;
}

int cuda_adam_update_host(Backend *be, Tensor *param, Tensor *grad, float *m, float *v, const Tensor *sel,
                          AdamRows rows, AdamHostFlags flags, const AdamHyper *h) {
    const int zero_grad = (flags & ADAM_HOST_ZERO_GRAD) != 0, async = (flags & ADAM_HOST_ASYNC) != 0;
    CudaImpl *ci = cuda_impl(be);
    check_param(param);
    OW_CHECKF(param->ndim == 2, "adam_update_host: matrix parameter");
    const int64_t V = param->shape[0], C = param->shape[1];
    OW_CHECKF(sel == NULL || (sel->dtype == OW_I32 && tensor_numel(sel) == V), "adam_update_host: sel I32 [V]");
    OW_CHECKF(rows == ADAM_ROWS_PRESENT || rows == ADAM_ROWS_ABSENT, "adam_update_host: rows %d", rows);
    int mode = !sel ? HS_ALL : rows == ADAM_ROWS_ABSENT ? HS_ABSENT : HS_PRESENT;
    OW_CHECKF(mode == HS_ABSENT ||
                  (grad && grad->dtype == OW_F32 && tensor_cols(grad) == C && (sel || tensor_rows(grad) == V)),
              "adam_update_host: gradient F32 [%s, C]", sel ? "slots" : "V");
    OW_CHECKF(h->step >= 1, "adam step %lld", (long long)h->step);
    if (V == 0 || C == 0) return -1;
    AdamScalars a = adam_scalars(h);
    float *g = mode == HS_ABSENT ? NULL : (float *)grad->data;
    const int32_t *sl = sel ? (const int32_t *)sel->data : NULL;
    int ticket = cuda_side_begin(ci); /* opt_stream after the main stream's work so far */
    CUDA_CHECK(cudaStreamWaitEvent(ci->opt_stream, ci->hs_done, 0));
    int host = is_host_memory(m);
    OW_CHECKF(host == is_host_memory(v), "adam_update_host: m and v in different memories");
    int host_grad = g && is_host_memory(g);
    OW_CHECKF(!host_grad || (host && mode == HS_ALL && !zero_grad),
              "adam_update_host: a gradient in host memory needs moments in host memory, every row and no zeroing");
    /* floats of each staged array: a slot holds m, v and (host_grad) g */
    const int64_t slot_floats = 2 * (int64_t)HS_CHUNK_BYTES / (int64_t)sizeof(float),
                  cf = slot_floats / (2 + host_grad);
    int64_t chunk = cf / C;
    OW_CHECKF(!host_grad || chunk >= 1, "adam_update_host: a row of %lld floats exceeds the staging", (long long)C);
    if (!host || mode == HS_PRESENT || chunk < 1) {
        /* device moments at full speed; scattered host rows over the bus with few blocks */
        OW_CHECKF(!host || mode == HS_PRESENT || chunk >= 1,
                  "adam_update_host: a row of %lld floats exceeds the staging", (long long)C);
        unsigned blocks = host ? 16 : 4 * (unsigned)ci->num_sms;
        k_adam_rows<<<blocks, OPT_THREADS, 0, ci->opt_stream>>>(param->data, param->dtype, g, 0, m, v, 0, sl, mode,
                                                                zero_grad, 0, V, C, a, h->sr_seed);
        CUDA_LAUNCH_CHECK();
        CUDA_CHECK(cudaEventRecord(ci->hs_done, ci->opt_stream));
    } else {
        OW_CHECKF(ci->hs_stage != NULL, "adam_update_host: host_state_reserve was not called");
        /* the loads start once opt_stream's waits (main stream, previous host-state op) are met */
        CUDA_CHECK(cudaEventRecord(ci->hs_start, ci->opt_stream));
        CUDA_CHECK(cudaStreamWaitEvent(ci->hs_h2d, ci->hs_start, 0));
        for (int64_t r0 = 0, k = 0; r0 < V; r0 += chunk, k++) {
            int64_t nr = V - r0 < chunk ? V - r0 : chunk;
            size_t bytes = (size_t)(nr * C) * sizeof(float);
            int slot = (int)(k % HS_SLOTS);
            float *sm = ci->hs_stage + (size_t)slot * (size_t)slot_floats, *sv = sm + cf, *sg = sv + cf;
            float *hm = m + r0 * C, *hv = v + r0 * C;
            if (k >= HS_SLOTS) CUDA_CHECK(cudaStreamWaitEvent(ci->hs_h2d, ci->hs_free[slot], 0));
            CUDA_CHECK(cudaMemcpyAsync(sm, hm, bytes, cudaMemcpyHostToDevice, ci->hs_h2d));
            CUDA_CHECK(cudaMemcpyAsync(sv, hv, bytes, cudaMemcpyHostToDevice, ci->hs_h2d));
            if (host_grad) CUDA_CHECK(cudaMemcpyAsync(sg, g + r0 * C, bytes, cudaMemcpyHostToDevice, ci->hs_h2d));
            CUDA_CHECK(cudaEventRecord(ci->hs_loaded[slot], ci->hs_h2d));
            CUDA_CHECK(cudaStreamWaitEvent(ci->opt_stream, ci->hs_loaded[slot], 0));
            unsigned blocks = (unsigned)(nr < 2 * ci->num_sms ? nr : 2 * ci->num_sms);
            k_adam_rows<<<blocks, OPT_THREADS, 0, ci->opt_stream>>>(param->data, param->dtype, host_grad ? sg : g,
                                                                    host_grad ? r0 : 0, sm, sv, r0, sl, mode, zero_grad,
                                                                    r0, r0 + nr, C, a, h->sr_seed);
            CUDA_LAUNCH_CHECK();
            CUDA_CHECK(cudaEventRecord(ci->hs_computed[slot], ci->opt_stream));
            CUDA_CHECK(cudaStreamWaitEvent(ci->hs_d2h, ci->hs_computed[slot], 0));
            CUDA_CHECK(cudaMemcpyAsync(hm, sm, bytes, cudaMemcpyDeviceToHost, ci->hs_d2h));
            CUDA_CHECK(cudaMemcpyAsync(hv, sv, bytes, cudaMemcpyDeviceToHost, ci->hs_d2h));
            CUDA_CHECK(cudaEventRecord(ci->hs_free[slot], ci->hs_d2h));
        }
        CUDA_CHECK(cudaEventRecord(ci->hs_done, ci->hs_d2h));
    }
    cuda_side_end(ci, ticket);
    if (async) return ticket;
    CUDA_CHECK(cudaStreamWaitEvent(ci->stream, ci->hs_done, 0));
    return -1;
}
