/* cpu_optim.c: the optimizer ops of the CPU backend: full-rank AdamW
 * (adam_update, both AdamVariant formulas), GaLore's low-rank moments
 * (adam_moments), applying a projected-back update (apply_update), and
 * AdamW on rows of a parameter whose moments live in host memory
 * (adam_update_host: on the CPU all memory is host memory, so it is
 * adam_update's loop over the selected rows).
 *
 * Parameters, gradients and moments are F32 (the CPU backend's param_dtype),
 * so sr_seed is not used here. Bias corrections and scalar step sizes are
 * computed in double and rounded to float once; the elementwise math is
 * float, in the order the formulas in backend.h state. */
#include "backend/cpu/cpu_internal.h"

#include <math.h>
#include <string.h>

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

/* One parameter element's AdamW step, in float, in the order of backend.h:
 * HF: p = p - step * (m / (sqrt(v) + eps)); then p -= lr_wd * p when lr_wd != 0;
 * torch: p = p * keep; p = p - step * (m / (sqrt(v) / sqrt_bc2 + eps)). */
typedef struct {
    Moments c;
    int hf;
    float step, eps, lr_wd, sqrt_bc2, keep;
} AdamStep;

static AdamStep adam_step_of(const AdamHyper *h) {
    OW_CHECKF(h->step >= 1, "adam step %lld", (long long)h->step);
    OW_CHECK(h->variant == ADAM_VARIANT_HF || h->variant == ADAM_VARIANT_TORCH);
    const double bc1 = 1.0 - pow((double)h->beta1, (double)h->step);
    const double bc2 = 1.0 - pow((double)h->beta2, (double)h->step);
    AdamStep a = {moments_of(h), h->variant == ADAM_VARIANT_HF, 0, h->eps, 0, 0, 0};
    if (a.hf) {
        a.step = (float)((double)h->lr * sqrt(bc2) / bc1);
        a.lr_wd = (float)((double)h->lr * (double)h->weight_decay);
    } else {
        a.step = (float)((double)h->lr / bc1);
        a.sqrt_bc2 = (float)sqrt(bc2);
        a.keep = (float)(1.0 - (double)h->lr * (double)h->weight_decay);
    }
    return a;
}

static inline float adam_element(const AdamStep *a, float p, float g, float *m, float *v) {
    moments_update(&a->c, g, m, v);
    if (a->hf) {
        float pi = p - a->step * (*m / (sqrtf(*v) + a->eps));
        if (a->lr_wd != 0.0f) pi -= a->lr_wd * pi;
        return pi;
    }
    float pi = p * a->keep;
    return pi - a->step * (*m / (sqrtf(*v) / a->sqrt_bc2 + a->eps));
}

void cpu_adam_update(Backend *be, Tensor *param, const Tensor *grad, Tensor *m, Tensor *v, const AdamHyper *h) {
    float *p = cpu_f32(param), *md = cpu_f32(m), *vd = cpu_f32(v);
    const float *g = cpu_f32(grad);
    int64_t n = tensor_numel(param);
    OW_CHECK(tensor_numel(grad) == n && tensor_numel(m) == n && tensor_numel(v) == n);
    const AdamStep a = adam_step_of(h);
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
    for (int64_t i = 0; i < n; i++) p[i] = adam_element(&a, p[i], g[i], &md[i], &vd[i]);
}

int cpu_adam_update_host(Backend *be, Tensor *param, Tensor *grad, float *m, float *v, const Tensor *sel, AdamRows rows,
                         AdamHostFlags flags, const AdamHyper *h) {
    const int zero_grad = (flags & ADAM_HOST_ZERO_GRAD) != 0; /* ADAM_HOST_ASYNC: the CPU runs it at once */
    OW_CHECKF(param->ndim == 2 && param->dtype == OW_F32, "adam_update_host: F32 matrix parameter");
    const int64_t V = param->shape[0], C = param->shape[1];
    OW_CHECKF(sel == NULL || (sel->dtype == OW_I32 && tensor_numel(sel) == V), "adam_update_host: sel I32 [V]");
    OW_CHECKF(rows == ADAM_ROWS_PRESENT || rows == ADAM_ROWS_ABSENT, "adam_update_host: rows %d", rows);
    int absent = sel && rows == ADAM_ROWS_ABSENT;
    OW_CHECKF(absent || (grad && grad->dtype == OW_F32 && tensor_cols(grad) == C && (sel ? 1 : tensor_rows(grad) == V)),
              "adam_update_host: gradient F32 [%s, C]", sel ? "slots" : "V");
    const int32_t *slot = sel ? (const int32_t *)sel->data : NULL;
    const int64_t gslots = absent ? 0 : tensor_rows(grad);
    float *p = cpu_f32(param), *gd = absent ? NULL : cpu_f32(grad);
    const AdamStep a = adam_step_of(h);
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
    for (int64_t r = 0; r < V; r++) {
        int64_t s = slot ? slot[r] : r;
        if (slot && (absent ? s >= 0 : s < 0)) continue;
        OW_CHECKF(absent || s < gslots, "adam_update_host: slot %lld of row %lld outside the gradient's %lld rows",
                  (long long)s, (long long)r, (long long)gslots);
        float *pr = p + r * C, *mr = m + r * C, *vr = v + r * C;
        float *gr = absent ? NULL : gd + s * C;
        for (int64_t c = 0; c < C; c++) pr[c] = adam_element(&a, pr[c], gr ? gr[c] : 0.0f, &mr[c], &vr[c]);
        if (gr && zero_grad) memset(gr, 0, (size_t)C * sizeof(float));
    }
    return -1;
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
void cpu_apply_update(Backend *be, Tensor *param, const Tensor *delta, float alpha, float decay, uint64_t sr_seed,
                      int64_t sr_index0) {
    float *p = cpu_f32(param);
    const float *d = cpu_f32(delta);
    int64_t n = tensor_numel(param);
    OW_CHECK(tensor_numel(delta) == n);
    (void)sr_seed;
    (void)sr_index0;
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float pi = p[i] + alpha * d[i];
        if (decay != 0.0f) pi -= decay * pi;
        p[i] = pi;
    }
}
