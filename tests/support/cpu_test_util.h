/* cpu_test_util.h: small header-only helpers for the CPU backend tests:
 * creating a backend and tensors, random fills, closeness checks against
 * double references, and central finite differences. The CPU backend's
 * tensors are host memory, so tests read and write t.data directly. */
#ifndef OWLORE_TESTS_CPU_TEST_UTIL_H
#define OWLORE_TESTS_CPU_TEST_UTIL_H

#include "backend/backend.h"
#include "core/rng.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static inline Backend *ct_backend(int threads) {
    OwError err;
    Backend *be = backend_create_cpu(threads, 0, &err);
    cr_assert(be != NULL, "backend_create_cpu: %s", err.msg);
    return be;
}

static inline Tensor ct_tensor(Backend *be, DType dt, int ndim, const int64_t *shape) {
    OwError err;
    Tensor t = tensor_desc(dt, ndim, shape);
    cr_assert(be_alloc(be, &t, MEM_OTHER, "test tensor", &err) == 0, "alloc: %s", err.msg);
    return t;
}

#define CT_F32(be, ...) \
    ct_tensor((be), OW_F32, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})
#define CT_I32(be, ...) \
    ct_tensor((be), OW_I32, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})

static inline void ct_free(Backend *be, Tensor *t) { be_release(be, t, MEM_OTHER); }

static inline float *ct_f(const Tensor *t) { return (float *)t->data; }

static inline int64_t ct_n(const Tensor *t) { return tensor_numel(t); }

/* scale * standard normal into every element of an F32 tensor. */
static inline void ct_randn(Rng *r, Tensor *t, double scale) {
    float *x = t->data;
    for (int64_t i = 0; i < tensor_numel(t); i++) x[i] = (float)(scale * rng_normal(r));
}

static inline void ct_randn_buf(Rng *r, float *x, int64_t n, double scale) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(scale * rng_normal(r));
}

/* Asserts |got - ref| <= atol + rtol |ref| elementwise. */
static inline void ct_assert_close(const float *got, const double *ref, int64_t n, double atol, double rtol,
                                   const char *what) {
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        cr_assert(d <= atol + rtol * fabs(ref[i]) && isfinite(got[i]), "%s[%lld]: got %.9g, expected %.9g (diff %.3g)",
                  what, (long long)i, (double)got[i], ref[i], d);
    }
}

/* Same for two float arrays. */
static inline void ct_assert_close_ff(const float *got, const float *ref, int64_t n, double atol, double rtol,
                                      const char *what) {
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        cr_assert(d <= atol + rtol * fabs((double)ref[i]) && isfinite(got[i]),
                  "%s[%lld]: got %.9g, expected %.9g (diff %.3g)", what, (long long)i, (double)got[i], (double)ref[i],
                  d);
    }
}

static inline double ct_dot(const float *a, const float *b, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}

static inline double ct_max_abs_d(const double *x, int64_t n) {
    double m = 0.0;
    for (int64_t i = 0; i < n; i++)
        if (fabs(x[i]) > m) m = fabs(x[i]);
    return m;
}

/* Central finite differences of loss(ctx) with respect to each of the n
 * floats at x (perturbed in place and restored): grad[i] = (L(x+e) - L(x-e)) / 2e,
 * where e is eps scaled by max(1, |x_i|). */
typedef double (*CtLossFn)(void *ctx);

static inline void ct_fd_grad(CtLossFn loss, void *ctx, float *x, int64_t n, double eps, double *grad) {
    for (int64_t i = 0; i < n; i++) {
        float x0 = x[i];
        float h = (float)(eps * (fabs((double)x0) > 1.0 ? fabs((double)x0) : 1.0));
        x[i] = x0 + h;
        float hp = x[i] - x0; /* the step actually taken in float */
        double lp = loss(ctx);
        x[i] = x0 - h;
        float hm = x0 - x[i];
        double lm = loss(ctx);
        x[i] = x0;
        grad[i] = (lp - lm) / ((double)hp + (double)hm);
    }
}

/* Compares an analytic gradient with a finite-difference one: every element
 * within tol * max(1e-2, max |fd|) (a scale-aware absolute tolerance). */
static inline void ct_assert_grad(const float *analytic, const double *fd, int64_t n, double tol, const char *what) {
    double scale = ct_max_abs_d(fd, n);
    if (scale < 1e-2) scale = 1e-2;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)analytic[i] - fd[i]);
        cr_assert(d <= tol * scale && isfinite(analytic[i]),
                  "%s[%lld]: analytic %.7g, finite difference %.7g (scale %.3g)", what, (long long)i,
                  (double)analytic[i], fd[i], scale);
    }
}

#endif
