/* test_cpu_optim.c: the CPU backend's optimizer ops: adam_update (HF and
 * torch variants) over several steps against a scalar re-computation of the
 * backend.h formulas in double written here, adam_moments, apply_update. */
#include "cpu_test_util.h"

#include <string.h>

/* One AdamW step on a single scalar, in double, following backend.h. */
static void adam_scalar(double *p, double *m, double *v, double g, const AdamHyper *h) {
    double b1 = h->beta1, b2 = h->beta2, lr = h->lr, wd = h->weight_decay, eps = h->eps;
    double t = (double)h->step;
    g *= h->grad_scale;
    if (h->variant == ADAM_VARIANT_TORCH) *p *= 1.0 - lr * wd;
    *m = b1 * *m + (1 - b1) * g;
    *v = b2 * *v + (1 - b2) * g * g;
    double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
    if (h->variant == ADAM_VARIANT_HF) {
        double step = lr * sqrt(bc2) / bc1;
        *p -= step * (*m / (sqrt(*v) + eps));
        *p -= lr * wd * *p;
    } else {
        *p -= lr / bc1 * (*m / (sqrt(*v) / sqrt(bc2) + eps));
    }
}

static void run_adam(AdamVariant variant, float *final_params, int64_t n) {
    Backend *be = ct_backend(2);
    Rng r;
    rng_init(&r, 71, 1);
    Tensor p = CT_F32(be, n), g = CT_F32(be, n), m = CT_F32(be, n), v = CT_F32(be, n);
    ct_randn(&r, &p, 1.0);
    double *pr = malloc((size_t)n * sizeof(double)), *mr = calloc((size_t)n, sizeof(double)),
           *vr = calloc((size_t)n, sizeof(double));
    for (int64_t i = 0; i < n; i++) pr[i] = ct_f(&p)[i];
    AdamHyper h = {.lr = 1e-2f,
                   .beta1 = 0.9f,
                   .beta2 = 0.999f,
                   .eps = 1e-6f,
                   .weight_decay = 0.1f,
                   .variant = variant,
                   .grad_scale = 0.5f};
    for (int step = 1; step <= 6; step++) {
        ct_randn(&r, &g, 1.0);
        if (step == 3) ct_f(&g)[0] = 0.0f; /* a zero gradient still decays and moves by momentum */
        h.step = step;
        h.lr = 1e-2f * (float)(7 - step) / 6.0f; /* a changing schedule */
        for (int64_t i = 0; i < n; i++) adam_scalar(&pr[i], &mr[i], &vr[i], ct_f(&g)[i], &h);
        be->ops->adam_update(be, &p, &g, &m, &v, &h);
        char what[64];
        snprintf(what, sizeof what, "adam variant %d step %d param", (int)variant, step);
        ct_assert_close(ct_f(&p), pr, n, 1e-6, 1e-5, what);
        ct_assert_close(ct_f(&m), mr, n, 1e-7, 1e-5, "adam m");
        ct_assert_close(ct_f(&v), vr, n, 1e-9, 1e-5, "adam v");
    }
    memcpy(final_params, p.data, (size_t)n * sizeof(float));
    free(pr);
    free(mr);
    free(vr);
    Tensor *all[] = {&p, &g, &m, &v};
    for (size_t i = 0; i < 4; i++) ct_free(be, all[i]);
    be->ops->destroy(be);
}

Test(cpu_optim, adam_update_variants) {
    float hf[37], torch[37];
    run_adam(ADAM_VARIANT_HF, hf, 37);
    run_adam(ADAM_VARIANT_TORCH, torch, 37);
    /* the two variants are different formulas: the test would notice a swapped or ignored variant */
    double maxd = 0;
    for (int i = 0; i < 37; i++) maxd = fmax(maxd, fabs((double)hf[i] - torch[i]));
    cr_assert(maxd > 1e-5, "HF and torch AdamW gave the same parameters (max diff %g)", maxd);
}

Test(cpu_optim, adam_first_step_closed_form) {
    /* step 1, no decay: m = (1-b1) g, v = (1-b2) g^2, so both variants move by lr * g / (|g| + eps') ~ lr * sign(g) */
    Backend *be = ct_backend(1);
    Tensor p = CT_F32(be, 3), g = CT_F32(be, 3), m = CT_F32(be, 3), v = CT_F32(be, 3);
    const float gv[3] = {2.0f, -0.5f, 0.0f};
    for (int variant = 0; variant < 2; variant++) {
        be->ops->fill(be, &p, 1.0f);
        be->ops->fill(be, &m, 0.0f);
        be->ops->fill(be, &v, 0.0f);
        memcpy(g.data, gv, sizeof gv);
        AdamHyper h = {.lr = 0.1f,
                       .beta1 = 0.9f,
                       .beta2 = 0.999f,
                       .eps = 1e-8f,
                       .weight_decay = 0.0f,
                       .step = 1,
                       .variant = (AdamVariant)variant,
                       .grad_scale = 1.0f};
        be->ops->adam_update(be, &p, &g, &m, &v, &h);
        cr_assert(fabsf(ct_f(&p)[0] - 0.9f) < 1e-6f && fabsf(ct_f(&p)[1] - 1.1f) < 1e-6f && ct_f(&p)[2] == 1.0f,
                  "variant %d: %g %g %g", variant, ct_f(&p)[0], ct_f(&p)[1], ct_f(&p)[2]);
    }
    Tensor *all[] = {&p, &g, &m, &v};
    for (size_t i = 0; i < 4; i++) ct_free(be, all[i]);
    be->ops->destroy(be);
}

Test(cpu_optim, adam_moments) {
    Backend *be = ct_backend(2);
    Rng r;
    rng_init(&r, 72, 1);
    int64_t n = 5 * 13;
    Tensor out = CT_F32(be, 5, 13), g = CT_F32(be, 5, 13), m = CT_F32(be, 5, 13), v = CT_F32(be, 5, 13);
    ct_randn(&r, &m, 0.1);
    ct_randn(&r, &v, 0.01);
    for (int64_t i = 0; i < n; i++) ct_f(&v)[i] = fabsf(ct_f(&v)[i]);
    ct_randn(&r, &g, 1.0);
    AdamHyper h = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-6f, .step = 4, .grad_scale = 0.25f};
    double mr[65], vr[65], orf[65];
    for (int64_t i = 0; i < n; i++) {
        double gi = 0.25 * ct_f(&g)[i];
        mr[i] = 0.9 * ct_f(&m)[i] + 0.1 * gi;
        vr[i] = 0.999 * ct_f(&v)[i] + 0.001 * gi * gi;
        orf[i] = mr[i] / (sqrt(vr[i]) + 1e-6);
    }
    be->ops->fill(be, &out, NAN);
    be->ops->adam_moments(be, &out, &g, &m, &v, &h);
    ct_assert_close(ct_f(&m), mr, n, 1e-7, 1e-5, "moments m");
    ct_assert_close(ct_f(&v), vr, n, 1e-9, 1e-5, "moments v");
    ct_assert_close(ct_f(&out), orf, n, 1e-6, 1e-5, "moments out");
    Tensor *all[] = {&out, &g, &m, &v};
    for (size_t i = 0; i < 4; i++) ct_free(be, all[i]);
    be->ops->destroy(be);
}

Test(cpu_optim, apply_update) {
    Backend *be = ct_backend(2);
    Rng r;
    rng_init(&r, 73, 1);
    int64_t n = 101;
    Tensor p = CT_F32(be, n), d = CT_F32(be, n);
    ct_randn(&r, &p, 1.0);
    ct_randn(&r, &d, 1.0);
    double ref[101];
    for (int64_t i = 0; i < n; i++) ref[i] = (double)ct_f(&p)[i] - 0.03 * ct_f(&d)[i];
    be->ops->apply_update(be, &p, &d, -0.03f, 0.0f, 1, 0);
    ct_assert_close(ct_f(&p), ref, n, 1e-7, 1e-6, "apply_update");
    for (int64_t i = 0; i < n; i++) ref[i] = ((double)ct_f(&p)[i] + 0.5 * ct_f(&d)[i]) * (1.0 - 0.01);
    be->ops->apply_update(be, &p, &d, 0.5f, 0.01f, 2, 0);
    ct_assert_close(ct_f(&p), ref, n, 1e-7, 1e-6, "apply_update with decay");
    ct_free(be, &p);
    ct_free(be, &d);
    be->ops->destroy(be);
}
