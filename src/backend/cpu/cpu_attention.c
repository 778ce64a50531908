/* cpu_attention.c: causal grouped-query attention of the CPU backend, forward
 * and backward, with scale 1/sqrt(D).
 *
 * Layouts: q, out [B,T,Hq,D]; k, v [B,T,Hkv,D]; lse [B,Hq,T] (natural log of
 * the sum of exp of the scaled scores). Query head h reads kv head
 * h / (Hq / Hkv). The forward runs one (b, query head) per iteration; the
 * backward one (b, kv head) per iteration, which owns dk, dv of that kv head
 * and dq of its query heads, so there are no shared writes and results do not
 * depend on the thread count. Scratch is a few rows of T floats per thread,
 * allocated inside the call. The backward recomputes the probabilities from
 * lse and uses dS = P * (dP - rowsum(dout * out)).
 * attention_decode (the last n queries against a longer key cache) computes each
 * row as the forward does. */
#include "backend/cpu/cpu_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct AttnShape {
    int64_t B, T, Hq, Hkv, D, rep;
} AttnShape;

static AttnShape attn_shape(const Tensor *q, const Tensor *k, const Tensor *v) {
    OW_CHECKF(q->ndim == 4 && k->ndim == 4, "attention expects [B, T, H, D] tensors");
    AttnShape s = {q->shape[0], q->shape[1], q->shape[2], k->shape[2], q->shape[3], 0};
    OW_CHECK(tensor_same_shape(k, v));
    OW_CHECK(k->shape[0] == s.B && k->shape[1] == s.T && k->shape[3] == s.D);
    OW_CHECKF(s.Hkv > 0 && s.Hq % s.Hkv == 0, "query heads %lld not a multiple of kv heads %lld", (long long)s.Hq,
              (long long)s.Hkv);
    s.rep = s.Hq / s.Hkv;
    return s;
}

static inline float dotf(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* One query row against keys 0 .. last (k, v rows Hkv * D apart, kv head g): writes orow and returns the
 * log-sum-exp of the scaled scores (p: scratch of last + 1 floats). */
static float attend_row(float *orow, const float *qr, const float *kd, const float *vd, int64_t last, int64_t Hkv,
                        int64_t g, int64_t D, float scale, float *p) {
    float mx = -INFINITY;
    for (int64_t j = 0; j <= last; j++) {
        p[j] = dotf(qr, kd + (j * Hkv + g) * D, D) * scale;
        if (p[j] > mx) mx = p[j];
    }
    double sum = 0.0;
    for (int64_t j = 0; j <= last; j++) {
        p[j] = expf(p[j] - mx);
        sum += p[j];
    }
    memset(orow, 0, (size_t)D * sizeof(float));
    for (int64_t j = 0; j <= last; j++) {
        const float *vr = vd + (j * Hkv + g) * D;
        for (int64_t d = 0; d < D; d++) orow[d] += p[j] * vr[d];
    }
    float inv = (float)(1.0 / sum);
    for (int64_t d = 0; d < D; d++) orow[d] *= inv;
    return (float)((double)mx + log(sum));
}

void cpu_attention_forward(Backend *be, Tensor *out, Tensor *lse, const Tensor *q, const Tensor *k, const Tensor *v) {
    AttnShape s = attn_shape(q, k, v);
    float *o = cpu_f32(out), *l = cpu_f32(lse);
    const float *qd = cpu_f32(q), *kd = cpu_f32(k), *vd = cpu_f32(v);
    OW_CHECK(tensor_same_shape(out, q) && tensor_numel(lse) == s.B * s.Hq * s.T);
    if (s.T == 0 || s.D == 0) return;
    const float scale = (float)(1.0 / sqrt((double)s.D));
    const int64_t T = s.T, D = s.D, Hq = s.Hq, Hkv = s.Hkv;
#pragma omp parallel num_threads(cpu_threads(be))
    {
        float *p = ow_xmalloc((size_t)T * sizeof(float));
#pragma omp for schedule(static)
        for (int64_t bh = 0; bh < s.B * Hq; bh++) {
            int64_t b = bh / Hq, h = bh % Hq, g = h / s.rep, kv0 = b * T * Hkv * D;
            for (int64_t t = 0; t < T; t++) {
                int64_t qi = ((b * T + t) * Hq + h) * D;
                l[(b * Hq + h) * T + t] = attend_row(o + qi, qd + qi, kd + kv0, vd + kv0, t, Hkv, g, D, scale, p);
            }
        }
        free(p);
    }
}

void cpu_attention_decode(Backend *be, Tensor *out, const Tensor *q, const Tensor *k, const Tensor *v) {
    OW_CHECKF(q->ndim == 3 && k->ndim == 3 && tensor_same_shape(k, v) && tensor_same_shape(out, q),
              "attention_decode expects q, out [n, Hq, D] and k, v [Tk, Hkv, D]");
    const int64_t n = q->shape[0], Hq = q->shape[1], D = q->shape[2], Tk = k->shape[0], Hkv = k->shape[1];
    OW_CHECKF(k->shape[2] == D && Hkv > 0 && Hq % Hkv == 0 && Tk >= n,
              "attention_decode: q [%lld, %lld, %lld] against k [%lld, %lld, %lld]", (long long)n, (long long)Hq,
              (long long)D, (long long)Tk, (long long)Hkv, (long long)k->shape[2]);
    float *o = cpu_f32(out);
    const float *qd = cpu_f32(q), *kd = cpu_f32(k), *vd = cpu_f32(v);
    if (n == 0 || D == 0) return;
    const float scale = (float)(1.0 / sqrt((double)D));
    const int64_t rep = Hq / Hkv;
#pragma omp parallel num_threads(cpu_threads(be))
    {
        float *p = ow_xmalloc((size_t)Tk * sizeof(float));
#pragma omp for schedule(static)
        for (int64_t ih = 0; ih < n * Hq; ih++) {
            int64_t i = ih / Hq, h = ih % Hq;
            attend_row(o + ih * D, qd + ih * D, kd, vd, Tk - n + i, Hkv, h / rep, D, scale, p);
        }
        free(p);
    }
}

void cpu_attention_backward(Backend *be, Tensor *dq, Tensor *dk, Tensor *dv, const Tensor *dout, const Tensor *q,
                            const Tensor *k, const Tensor *v, const Tensor *out, const Tensor *lse) {
    AttnShape s = attn_shape(q, k, v);
    float *dqd = cpu_f32(dq), *dkd = cpu_f32(dk), *dvd = cpu_f32(dv);
    const float *dd = cpu_f32(dout), *qd = cpu_f32(q), *kd = cpu_f32(k), *vd = cpu_f32(v), *od = cpu_f32(out),
                *l = cpu_f32(lse);
    OW_CHECK(tensor_same_shape(dq, q) && tensor_same_shape(dout, q) && tensor_same_shape(out, q));
    OW_CHECK(tensor_same_shape(dk, k) && tensor_same_shape(dv, v));
    OW_CHECK(tensor_numel(lse) == s.B * s.Hq * s.T);
    if (s.T == 0 || s.D == 0) return;
    const float scale = (float)(1.0 / sqrt((double)s.D));
    const int64_t T = s.T, D = s.D, Hq = s.Hq, Hkv = s.Hkv;
#pragma omp parallel num_threads(cpu_threads(be))
    {
        float *p = ow_xmalloc((size_t)T * sizeof(float));
        float *ds = ow_xmalloc((size_t)T * sizeof(float));
#pragma omp for schedule(static)
        for (int64_t bg = 0; bg < s.B * Hkv; bg++) {
            int64_t b = bg / Hkv, g = bg % Hkv;
            for (int64_t t = 0; t < T; t++) {
                memset(dkd + ((b * T + t) * Hkv + g) * D, 0, (size_t)D * sizeof(float));
                memset(dvd + ((b * T + t) * Hkv + g) * D, 0, (size_t)D * sizeof(float));
            }
            for (int64_t h = g * s.rep; h < (g + 1) * s.rep; h++) {
                for (int64_t t = 0; t < T; t++) {
                    int64_t qi = ((b * T + t) * Hq + h) * D;
                    const float *qr = qd + qi, *dr = dd + qi;
                    float lt = l[(b * Hq + h) * T + t];
                    float delta = dotf(dr, od + qi, D);
                    for (int64_t j = 0; j <= t; j++) {
                        int64_t ki = ((b * T + j) * Hkv + g) * D;
                        p[j] = expf(dotf(qr, kd + ki, D) * scale - lt);
                        ds[j] = p[j] * (dotf(dr, vd + ki, D) - delta);
                    }
                    float *dqr = dqd + qi;
                    memset(dqr, 0, (size_t)D * sizeof(float));
                    for (int64_t j = 0; j <= t; j++) {
                        int64_t ki = ((b * T + j) * Hkv + g) * D;
                        const float *kr = kd + ki;
                        float *dkr = dkd + ki, *dvr = dvd + ki;
                        float a = ds[j] * scale;
                        for (int64_t d = 0; d < D; d++) {
                            dqr[d] += a * kr[d];
                            dkr[d] += a * qr[d];
                            dvr[d] += p[j] * dr[d];
                        }
                    }
                }
            }
        }
        free(p);
        free(ds);
    }
}
