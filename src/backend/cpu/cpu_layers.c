/* cpu_layers.c: the per-token layers of the CPU backend and their backwards:
 * embedding, RMSNorm, rotary embedding (rotate-half), SwiGLU.
 *
 * Row ops run one row per iteration (OpenMP over rows); column reductions
 * (embedding_backward's scatter-add, rmsnorm's dw) run one block of columns
 * per iteration with rows visited in order, so no two threads write the same
 * element and results do not depend on the thread count. */
#include "backend/cpu/cpu_internal.h"

#include <math.h>

#define COL_BLOCK 64

void cpu_embedding_forward(Backend *be, Tensor *out, const Tensor *ids, const Tensor *table) {
    float *o = cpu_f32(out);
    const float *tab = cpu_f32(table);
    const int32_t *id = cpu_i32(ids);
    int64_t N = tensor_numel(ids), C = tensor_cols(table), V = tensor_rows(table);
    OW_CHECKF(tensor_rows(out) == N && tensor_cols(out) == C, "embedding out [%lld, %lld] for %lld ids of width %lld",
              (long long)tensor_rows(out), (long long)tensor_cols(out), (long long)N, (long long)C);
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
    for (int64_t n = 0; n < N; n++) {
        int64_t t = id[n];
        OW_CHECKF(t >= 0 && t < V, "token id %lld outside the table of %lld rows", (long long)t, (long long)V);
        const float *src = tab + t * C;
        float *dst = o + n * C;
        for (int64_t c = 0; c < C; c++) dst[c] = src[c];
    }
}

void cpu_embedding_backward(Backend *be, Tensor *dtable, const Tensor *ids, const Tensor *dout) {
    float *dt = cpu_f32(dtable);
    const float *d = cpu_f32(dout);
    const int32_t *id = cpu_i32(ids);
    int64_t N = tensor_numel(ids), C = tensor_cols(dtable), V = tensor_rows(dtable);
    OW_CHECK(tensor_rows(dout) == N && tensor_cols(dout) == C);
    for (int64_t n = 0; n < N; n++)
        OW_CHECKF(id[n] >= 0 && id[n] < V, "token id %d outside the table of %lld rows", id[n], (long long)V);
    int64_t nblocks = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        int64_t c0 = blk * COL_BLOCK, c1 = c0 + COL_BLOCK < C ? c0 + COL_BLOCK : C;
        for (int64_t n = 0; n < N; n++) {
            float *dst = dt + (int64_t)id[n] * C;
            const float *src = d + n * C;
            for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
        }
    }
}

void cpu_rmsnorm_forward(Backend *be, Tensor *out, Tensor *rstd, const Tensor *x, const Tensor *w, float eps) {
    float *o = cpu_f32(out), *r = cpu_f32(rstd);
    const float *xd = cpu_f32(x), *wd = cpu_f32(w);
    int64_t N = tensor_rows(x), C = tensor_cols(x);
    OW_CHECK(tensor_numel(out) == N * C && tensor_cols(out) == C);
    OW_CHECK(tensor_numel(w) == C && tensor_numel(rstd) == N);
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const float *xr = xd + n * C;
        float *orow = o + n * C;
        double ss = 0.0;
        for (int64_t c = 0; c < C; c++) ss += (double)xr[c] * (double)xr[c];
        float rs = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
        r[n] = rs;
        for (int64_t c = 0; c < C; c++) orow[c] = wd[c] * (xr[c] * rs);
    }
}

/* out = w * x * r with r = (mean x^2 + eps)^-1/2 gives
 * dx_i = r w_i dout_i - x_i r^3 / C * sum_j dout_j w_j x_j and dw_i = sum_rows dout_i x_i r. */
void cpu_rmsnorm_backward(Backend *be, Tensor *dx, Tensor *dw, const Tensor *dout, const Tensor *x, const Tensor *w,
                          const Tensor *rstd) {
    float *dxd = cpu_f32(dx);
    const float *dd = cpu_f32(dout), *xd = cpu_f32(x), *wd = cpu_f32(w), *r = cpu_f32(rstd);
    int64_t N = tensor_rows(x), C = tensor_cols(x);
    OW_CHECK(tensor_numel(dx) == N * C && tensor_numel(dout) == N * C);
    OW_CHECK(tensor_numel(w) == C && tensor_numel(rstd) == N);
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const float *xr = xd + n * C, *dr = dd + n * C;
        float *dxr = dxd + n * C;
        double dot = 0.0;
        for (int64_t c = 0; c < C; c++) dot += (double)dr[c] * (double)wd[c] * (double)xr[c];
        double rn = r[n];
        float rs = r[n];
        float k = (float)(rn * rn * rn * dot / (double)C);
        for (int64_t c = 0; c < C; c++) dxr[c] += rs * wd[c] * dr[c] - xr[c] * k;
    }
    if (!dw) return;
    float *dwd = cpu_f32(dw);
    OW_CHECK(tensor_numel(dw) == C);
    int64_t nblocks = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        int64_t c0 = blk * COL_BLOCK, c1 = c0 + COL_BLOCK < C ? c0 + COL_BLOCK : C;
        double acc[COL_BLOCK] = {0};
        for (int64_t n = 0; n < N; n++) {
            const float *xr = xd + n * C, *dr = dd + n * C;
            double rn = r[n];
            for (int64_t c = c0; c < c1; c++) acc[c - c0] += (double)dr[c] * (double)xr[c] * rn;
        }
        for (int64_t c = c0; c < c1; c++) dwd[c] += (float)acc[c - c0];
    }
}

void cpu_rope(Backend *be, Tensor *x, const Tensor *cos, const Tensor *sin, int inverse) {
    float *xd = cpu_f32(x);
    const float *cs = cpu_f32(cos), *sn = cpu_f32(sin);
    OW_CHECKF(x->ndim == 4, "rope expects x [B, T, H, D], got %d dims", x->ndim);
    int64_t B = x->shape[0], T = x->shape[1], H = x->shape[2], D = x->shape[3], half = D / 2;
    OW_CHECKF(D % 2 == 0, "rope head dim %lld is odd", (long long)D);
    OW_CHECK(tensor_same_shape(cos, sin));
    OW_CHECKF(tensor_cols(cos) == half && tensor_rows(cos) >= T, "rope tables [%lld, %lld] for T %lld, D %lld",
              (long long)tensor_rows(cos), (long long)tensor_cols(cos), (long long)T, (long long)D);
    int64_t rows = B * T * H;
    float sgn = inverse ? -1.0f : 1.0f; /* the transpose of a rotation by +s is the rotation by -s */
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
    for (int64_t row = 0; row < rows; row++) {
        int64_t t = (row / H) % T;
        float *xr = xd + row * D;
        const float *cr = cs + t * half, *sr = sn + t * half;
        for (int64_t i = 0; i < half; i++) {
            float a = xr[i], b = xr[i + half], c = cr[i], s = sgn * sr[i];
            xr[i] = a * c - b * s;
            xr[i + half] = b * c + a * s;
        }
    }
}

void cpu_swiglu_forward(Backend *be, Tensor *out, const Tensor *gate, const Tensor *up) {
    float *o = cpu_f32(out);
    const float *g = cpu_f32(gate), *u = cpu_f32(up);
    int64_t n = tensor_numel(out);
    OW_CHECK(tensor_numel(gate) == n && tensor_numel(up) == n);
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
    for (int64_t i = 0; i < n; i++) o[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* silu'(g) = sig(g) (1 + g (1 - sig(g))). */
void cpu_swiglu_backward(Backend *be, Tensor *dgate, Tensor *dup, const Tensor *dout, const Tensor *gate,
                         const Tensor *up) {
    float *dg = cpu_f32(dgate), *du = cpu_f32(dup);
    const float *d = cpu_f32(dout), *g = cpu_f32(gate), *u = cpu_f32(up);
    int64_t n = tensor_numel(dout);
    OW_CHECK(tensor_numel(dgate) == n && tensor_numel(dup) == n && tensor_numel(gate) == n && tensor_numel(up) == n);
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float sig = 1.0f / (1.0f + expf(-g[i]));
        float silu = g[i] * sig;
        du[i] = d[i] * silu;
        dg[i] = d[i] * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
    }
}
