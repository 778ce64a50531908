/* cpu_optim.c: the optimizer ops of the CPU backend: full-rank AdamW
 * (adam_update, both AdamVariant formulas), GaLore's low-rank moments
 * (adam_moments) and applying a projected-back update (apply_update).
 *
 * Parameters, gradients and moments are F32 (the CPU backend's param_dtype),
 * so sr_seed is not used here. Bias corrections and scalar step sizes are
 * computed in double and rounded to float once; the elementwise math is
 * float, in the order the formulas in backend.h state. */
#include "backend/cpu/cpu_internal.h"

#include <math.h>

/* The Adam moment coefficients of h, in float. */
typedef struct {
    float b1, omb1, b2, omb2, gs;
} Moments;

static Moments moments_of(const AdamHyper *h) {
    return (Moments){h->beta1, (float)(1.0 - (double)h->beta1), h->beta2, (float)(1.0 - (double)h->beta2),
                     h->grad_scale};
}

/* m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2 for the scaled gradient g. */
static inline void moments_update(const Moments *c, float g, float *m, float *v) {
    float gi = g * c->gs;
    *m = c->b1 * *m + c->omb1 * gi;
    *v = c->b2 * *v + c->omb2 * gi * gi;
}

void cpu_adam_update(Backend *be, Tensor *param, const Tensor *grad, Tensor *m, Tensor *v, const AdamHyper *h) {
    float *p = cpu_f32(param), *md = cpu_f32(m), *vd = cpu_f32(v);
    const float *g = cpu_f32(grad);
    int64_t n = tensor_numel(param);
    OW_CHECK(tensor_numel(grad) == n && tensor_numel(m) == n && tensor_numel(v) == n);
    OW_CHECKF(h->step >= 1, "adam step %lld", (long long)h->step);
    OW_CHECK(h->variant == ADAM_VARIANT_HF || h->variant == ADAM_VARIANT_TORCH);
    const double bc1 = 1.0 - pow((double)h->beta1, (double)h->step);
    const double bc2 = 1.0 - pow((double)h->beta2, (double)h->step);
    const Moments c = moments_of(h);
    const float eps = h->eps;
    const float lr_wd = (float)((double)h->lr * (double)h->weight_decay);
    if (h->variant == ADAM_VARIANT_HF) {
        const float step = (float)((double)h->lr * sqrt(bc2) / bc1);
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            moments_update(&c, g[i], &md[i], &vd[i]);
            float pi = p[i] - step * (md[i] / (sqrtf(vd[i]) + eps));
            if (lr_wd != 0.0f) pi -= lr_wd * pi;
            p[i] = pi;
        }
    } else {
        const float step = (float)((double)h->lr / bc1);
        const float sqrt_bc2 = (float)sqrt(bc2);
        const float keep = (float)(1.0 - (double)h->lr * (double)h->weight_decay);
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            moments_update(&c, g[i], &md[i], &vd[i]);
            float pi = p[i] * keep;
            p[i] = pi - step * (md[i] / (sqrtf(vd[i]) / sqrt_bc2 + eps));
        }
    }
}

void cpu_adam_moments(Backend *be, Tensor *out, const Tensor *grad, Tensor *m, Tensor *v, const AdamHyper *h) {
    float *o = cpu_f32(out), *md = cpu_f32(m), *vd = cpu_f32(v);
    const float *g = cpu_f32(grad);
    int64_t n = tensor_numel(grad);
    OW_CHECK(tensor_numel(out) == n && tensor_numel(m) == n && tensor_numel(v) == n);
    const Moments c = moments_of(h);
    const float eps = h->eps;
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        moments_update(&c, g[i], &md[i], &vd[i]);
        o[i] = md[i] / (sqrtf(vd[i]) + eps);
    }
}

/* param += alpha * delta; then, when decay != 0, param -= decay * param (as
 * transformers applies weight decay: p.add_(p, alpha=-lr*wd)). */
void cpu_apply_update(Backend *be, Tensor *param, const Tensor *delta, float alpha, float decay, uint64_t sr_seed) {
    float *p = cpu_f32(param);
    const float *d = cpu_f32(delta);
    int64_t n = tensor_numel(param);
    OW_CHECK(tensor_numel(delta) == n);
    (void)sr_seed;
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float pi = p[i] + alpha * d[i];
        if (decay != 0.0f) pi -= decay * pi;
        p[i] = pi;
    }
}
