/* cpu_loss.c: cross-entropy of the CPU backend over rows of logits [N,V]
 * with I32 targets (-100 = ignored).
 *
 * Per row: m = max, lse = m + log(sum exp(x - m)) with the sum in double;
 * loss = lse - x[target]. With want_grad the row is overwritten by
 * grad_scale * (softmax - onehot(target)), or zeros for an ignored row.
 * A target outside [0, V) other than -100 is an internal error. */
#include "backend/cpu/cpu_internal.h"

#include <math.h>
#include <string.h>

#define CE_IGNORE (-100)

void cpu_cross_entropy(Backend *be, Tensor *logits, Tensor *losses, const Tensor *targets, float grad_scale,
                       int want_grad) {
    float *x = cpu_f32(logits), *loss = cpu_f32(losses);
    const int32_t *tg = cpu_i32(targets);
    int64_t N = tensor_rows(logits), V = tensor_cols(logits);
    OW_CHECKF(tensor_numel(targets) == N && tensor_numel(losses) == N,
              "cross_entropy: %lld rows, %lld targets, %lld losses", (long long)N, (long long)tensor_numel(targets),
              (long long)tensor_numel(losses));
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
    for (int64_t n = 0; n < N; n++) {
        float *row = x + n * V;
        int32_t t = tg[n];
        if (t == CE_IGNORE) {
            loss[n] = 0.0f;
            if (want_grad) memset(row, 0, (size_t)V * sizeof(float));
            continue;
        }
        OW_CHECKF(t >= 0 && t < V, "target %d outside the vocabulary of %lld", t, (long long)V);
        float mx = -INFINITY;
        for (int64_t i = 0; i < V; i++)
            if (row[i] > mx) mx = row[i];
        double sum = 0.0;
        for (int64_t i = 0; i < V; i++) sum += exp((double)row[i] - (double)mx);
        double lse = (double)mx + log(sum);
        loss[n] = (float)(lse - (double)row[t]);
        if (want_grad) {
            double pt = exp((double)row[t] - lse);
            for (int64_t i = 0; i < V; i++) row[i] = grad_scale * (float)exp((double)row[i] - lse);
            row[t] = grad_scale * (float)(pt - 1.0);
        }
    }
}
