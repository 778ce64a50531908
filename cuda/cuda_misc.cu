/* cuda_misc.cu: the memory-bound ops: copies with dtype conversion, fill,
 * axpy, scale, the synchronous reductions (sum, sum of squares, OWL scores),
 * column sums of squares, embedding forward/backward, SwiGLU forward/backward
 * and the fused cross-entropy.
 *
 * Every reduction is deterministic: a fixed grid (a function of the size
 * only) writes per-block partials (double) into the backend scratch, and one
 * block (or one thread per column) adds them in a fixed order; no atomics.
 * Math is fp32 (double for the host-returned reductions); storage dtypes are
 * read and written through ow_load / ow_store. */
#include "cuda/cuda_internal.h"

#include <math.h>
#include <string.h>

#define EW_THREADS 256
#define RED_THREADS 256
#define RED_MAX_BLOCKS 1024

/* ---- elementwise ---- */

__global__ void k_convert(void *dst, int ddt, const void *src, int sdt, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        ow_store(dst, ddt, i, ow_load(src, sdt, i));
}

__global__ void k_fill(void *dst, int dt, int64_t n, float v) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        ow_store(dst, dt, i, v);
}

__global__ void k_fill_i32(int32_t *dst, int64_t n, int32_t v) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = v;
}

__global__ void k_axpy(void *y, int ydt, float alpha, const void *x, int xdt, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        ow_store(y, ydt, i, ow_load(y, ydt, i) + alpha * ow_load(x, xdt, i));
}

__global__ void k_scale(void *x, int dt, float alpha, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        ow_store(x, dt, i, ow_load(x, dt, i) * alpha);
}

void cuda_copy(Backend *be, Tensor *dst, const Tensor *src) {
    CudaImpl *ci = cuda_impl(be);
    int64_t n = tensor_numel(dst);
    OW_CHECKF(n == tensor_numel(src), "copy: %lld vs %lld elements", (long long)n, (long long)tensor_numel(src));
    if (n == 0 || dst->data == src->data) return;
    if (dst->dtype == src->dtype) {
        CUDA_CHECK(cudaMemcpyAsync(dst->data, src->data, tensor_nbytes(dst), cudaMemcpyDeviceToDevice, ci->stream));
        return;
    }
    OW_CHECKF(dtype_is_float(dst->dtype) && dtype_is_float(src->dtype), "copy from %s to %s", dtype_name(src->dtype),
              dtype_name(dst->dtype));
    k_convert<<<cuda_grid_for(n, EW_THREADS), EW_THREADS, 0, ci->stream>>>(dst->data, dst->dtype, src->data, src->dtype,
                                                                           n);
    CUDA_LAUNCH_CHECK();
}

void cuda_fill(Backend *be, Tensor *t, float value) {
    CudaImpl *ci = cuda_impl(be);
    int64_t n = tensor_numel(t);
    if (n == 0) return;
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    if (bits == 0) { /* +0.0: all-zero bits in every dtype */
        CUDA_CHECK(cudaMemsetAsync(t->data, 0, tensor_nbytes(t), ci->stream));
        return;
    }
    if (t->dtype == OW_I32) {
        k_fill_i32<<<cuda_grid_for(n, EW_THREADS), EW_THREADS, 0, ci->stream>>>((int32_t *)t->data, n, (int32_t)value);
    } else {
        OW_CHECKF(dtype_is_float(t->dtype), "fill of %s", dtype_name(t->dtype));
        k_fill<<<cuda_grid_for(n, EW_THREADS), EW_THREADS, 0, ci->stream>>>(t->data, t->dtype, n, value);
    }
    CUDA_LAUNCH_CHECK();
}

void cuda_axpy(Backend *be, Tensor *y, float alpha, const Tensor *x) {
    CudaImpl *ci = cuda_impl(be);
    int64_t n = tensor_numel(y);
    OW_CHECKF(n == tensor_numel(x), "axpy: %lld vs %lld elements", (long long)n, (long long)tensor_numel(x));
    OW_CHECK(dtype_is_float(y->dtype) && dtype_is_float(x->dtype));
    if (n == 0) return;
    k_axpy<<<cuda_grid_for(n, EW_THREADS), EW_THREADS, 0, ci->stream>>>(y->data, y->dtype, alpha, x->data, x->dtype, n);
    CUDA_LAUNCH_CHECK();
}

void cuda_scale(Backend *be, Tensor *x, float alpha) {
    CudaImpl *ci = cuda_impl(be);
    int64_t n = tensor_numel(x);
    OW_CHECK(dtype_is_float(x->dtype));
    if (n == 0) return;
    k_scale<<<cuda_grid_for(n, EW_THREADS), EW_THREADS, 0, ci->stream>>>(x->data, x->dtype, alpha, n);
    CUDA_LAUNCH_CHECK();
}

/* ---- synchronous reductions into double ---- */

enum { RED_SUM = 0, RED_SUMSQ = 1, RED_SCORE_SUM = 2, RED_SCORE_COUNT = 3 };

/* mode RED_SCORE_*: x is W [n / ncols, ncols], colscale F32 [ncols]. */
__global__ void k_reduce_partial(const void *x, int dt, int64_t n, int mode, const float *colscale, int64_t ncols,
                                 double threshold, double *partials) {
    __shared__ double sh[32];
    double acc = 0.0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        double v = (double)ow_load(x, dt, i);
        if (mode == RED_SUM) {
            acc += v;
        } else if (mode == RED_SUMSQ) {
            acc += v * v;
        } else {
            double s = fabs(v) * (double)colscale[i % ncols];
            if (mode == RED_SCORE_SUM)
                acc += s;
            else
                acc += s > threshold ? 1.0 : 0.0;
        }
    }
    double s = ow_block_sum_d(acc, sh);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

/* accumulate: *out += total (the norm accumulator), else *out = total */
__global__ void k_reduce_final(const double *partials, int n, double *out, int accumulate) {
    __shared__ double sh[32];
    double acc = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) acc += partials[i];
    double s = ow_block_sum_d(acc, sh);
    if (threadIdx.x == 0) *out = accumulate ? *out + s : s;
}

/* The reduction of x on the stream: into *acc_out (+=) when given, else to the host (synchronous). */
static double reduce_to(Backend *be, const Tensor *x, int mode, const Tensor *colscale, double threshold,
                        double *acc_out) {
    CudaImpl *ci = cuda_impl(be);
    int64_t n = tensor_numel(x);
    if (n == 0) return 0.0;
    OW_CHECK(dtype_is_float(x->dtype));
    int64_t ncols = 1;
    const float *cs = NULL;
    if (colscale) {
        ncols = tensor_cols(x);
        OW_CHECKF(colscale->dtype == OW_F32 && tensor_numel(colscale) == ncols, "score: colscale must be F32 [%lld]",
                  (long long)ncols);
        cs = (const float *)colscale->data;
    }
    int64_t nb = (n + RED_THREADS - 1) / RED_THREADS;
    int blocks = (int)(nb < RED_MAX_BLOCKS ? nb : RED_MAX_BLOCKS);
    double *partials = (double *)ci->scratch;
    double *out = partials + RED_MAX_BLOCKS;
    k_reduce_partial<<<blocks, RED_THREADS, 0, ci->stream>>>(x->data, x->dtype, n, mode, cs, ncols, threshold,
                                                             partials);
    CUDA_LAUNCH_CHECK();
    k_reduce_final<<<1, RED_THREADS, 0, ci->stream>>>(partials, blocks, acc_out ? acc_out : out, acc_out != NULL);
    CUDA_LAUNCH_CHECK();
    if (acc_out) return 0.0;
    double h = 0.0;
    CUDA_CHECK(cudaMemcpyAsync(&h, out, sizeof h, cudaMemcpyDeviceToHost, ci->stream));
    CUDA_CHECK(cudaStreamSynchronize(ci->stream));
    return h;
}

double cuda_sum(Backend *be, const Tensor *x) { return reduce_to(be, x, RED_SUM, NULL, 0.0, NULL); }

double cuda_sum_squares(Backend *be, const Tensor *x) { return reduce_to(be, x, RED_SUMSQ, NULL, 0.0, NULL); }

void cuda_norm_add(Backend *be, const Tensor *x) { reduce_to(be, x, RED_SUMSQ, NULL, 0.0, cuda_impl(be)->norm_acc); }

double cuda_norm_take(Backend *be) {
    CudaImpl *ci = cuda_impl(be);
    double h = 0.0;
    CUDA_CHECK(cudaMemcpyAsync(&h, ci->norm_acc, sizeof h, cudaMemcpyDeviceToHost, ci->stream));
    CUDA_CHECK(cudaMemsetAsync(ci->norm_acc, 0, sizeof h, ci->stream));
    CUDA_CHECK(cudaStreamSynchronize(ci->stream));
    return h;
}

double cuda_score_sum(Backend *be, const Tensor *W, const Tensor *colscale) {
    return reduce_to(be, W, RED_SCORE_SUM, colscale, 0.0, NULL);
}

int64_t cuda_score_count(Backend *be, const Tensor *W, const Tensor *colscale, double threshold) {
    return (int64_t)llround(reduce_to(be, W, RED_SCORE_COUNT, colscale, threshold, NULL));
}

/* ---- column sums (two stages, deterministic) ---- */

int cuda_col_groups(CudaImpl *ci, int64_t rows, int64_t cols) {
    int64_t by_scratch = (int64_t)(ci->scratch_size / sizeof(double)) / (cols > 0 ? cols : 1);
    OW_CHECKF(by_scratch >= 1, "column reduction: %lld columns exceed the scratch buffer", (long long)cols);
    int64_t g = CUDA_COL_GROUPS_MAX;
    if (g > by_scratch) g = by_scratch;
    if (g > rows) g = rows;
    return (int)(g < 1 ? 1 : g);
}

__global__ void k_col_reduce(const double *partials, int groups, int64_t cols, float *acc) {
    int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (c >= cols) return;
    double s = 0.0;
    for (int g = 0; g < groups; g++) s += partials[(int64_t)g * cols + c];
    acc[c] += (float)s;
}

void cuda_col_reduce_into(CudaImpl *ci, const double *partials, int groups, int64_t cols, float *acc) {
    unsigned blocks = (unsigned)((cols + EW_THREADS - 1) / EW_THREADS);
    k_col_reduce<<<blocks, EW_THREADS, 0, ci->stream>>>(partials, groups, cols, acc);
    CUDA_LAUNCH_CHECK();
}

/* partials[g, c] = sum over rows r of group g of x[r, c]^2 (double, as the CPU backend) */
__global__ void k_col_sumsq_partial(const void *x, int dt, int64_t rows, int64_t cols, int64_t rows_per_group,
                                    double *partials) {
    int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    int64_t g = blockIdx.y;
    if (c >= cols) return;
    int64_t r0 = g * rows_per_group, r1 = r0 + rows_per_group < rows ? r0 + rows_per_group : rows;
    double s = 0.0;
    for (int64_t r = r0; r < r1; r++) {
        double v = (double)ow_load(x, dt, r * cols + c);
        s += v * v;
    }
    partials[g * cols + c] = s;
}

void cuda_col_sumsq(Backend *be, Tensor *acc, const Tensor *x) {
    CudaImpl *ci = cuda_impl(be);
    int64_t rows = tensor_rows(x), cols = tensor_cols(x);
    OW_CHECKF(acc->dtype == OW_F32 && tensor_numel(acc) == cols, "col_sumsq: acc must be F32 [%lld]", (long long)cols);
    if (rows == 0 || cols == 0) return;
    int groups = cuda_col_groups(ci, rows, cols);
    int64_t rpg = (rows + groups - 1) / groups;
    double *partials = (double *)ci->scratch;
    dim3 grid((unsigned)((cols + EW_THREADS - 1) / EW_THREADS), (unsigned)groups);
    k_col_sumsq_partial<<<grid, EW_THREADS, 0, ci->stream>>>(x->data, x->dtype, rows, cols, rpg, partials);
    CUDA_LAUNCH_CHECK();
    cuda_col_reduce_into(ci, partials, groups, cols, (float *)acc->data);
}

/* ---- embedding ---- */

__global__ void k_embedding_forward(void *out, int odt, const int32_t *ids, const void *table, int tdt, int64_t N,
                                    int64_t C, int64_t V) {
    int64_t total = N * C;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t n = i / C, c = i - n * C;
        int32_t id = ids[n];
        float v = (id >= 0 && id < V) ? ow_load(table, tdt, (int64_t)id * C + c) : 0.0f;
        ow_store(out, odt, i, v);
    }
}

#define EMB_BATCH 8

/* One thread per column c walks the tokens in order, EMB_BATCH at a time:
 * the batch's gradient values and table entries are loaded together, tokens
 * repeating an earlier id of the batch add into that earlier entry, so each
 * table entry receives its additions in token order: the result is bitwise
 * the sequential loop's, for any launch configuration. */
__global__ void k_embedding_backward(float *dtable, const int32_t *ids, const void *dout, int ddt, int64_t N, int64_t C,
                                     int64_t V) {
    int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (c >= C) return;
    for (int64_t n0 = 0; n0 < N; n0 += EMB_BATCH) {
        int id[EMB_BATCH], owner[EMB_BATCH];
        float d[EMB_BATCH], acc[EMB_BATCH];
#pragma unroll
        for (int j = 0; j < EMB_BATCH; j++) {
            id[j] = -1;
            d[j] = 0.0f;
            if (n0 + j < N) {
                int32_t t = ids[n0 + j];
                if (t >= 0 && t < V) {
                    id[j] = t;
                    d[j] = ow_load(dout, ddt, (n0 + j) * C + c);
                }
            }
        }
#pragma unroll
        for (int j = 0; j < EMB_BATCH; j++) {
            owner[j] = j;
#pragma unroll
            for (int k = 0; k < j; k++)
                if (owner[j] == j && id[k] == id[j]) owner[j] = k;
        }
#pragma unroll
        for (int j = 0; j < EMB_BATCH; j++)
            acc[j] = (id[j] >= 0 && owner[j] == j) ? dtable[(int64_t)id[j] * C + c] : 0.0f;
#pragma unroll
        for (int j = 0; j < EMB_BATCH; j++) {
#pragma unroll
            for (int k = 0; k <= j; k++)
                if (id[j] >= 0 && owner[j] == k) acc[k] += d[j];
        }
#pragma unroll
        for (int j = 0; j < EMB_BATCH; j++)
            if (id[j] >= 0 && owner[j] == j) dtable[(int64_t)id[j] * C + c] = acc[j];
    }
}

void cuda_embedding_forward(Backend *be, Tensor *out, const Tensor *ids, const Tensor *table) {
    CudaImpl *ci = cuda_impl(be);
    int64_t N = tensor_numel(ids), C = tensor_cols(table), V = tensor_rows(table);
    OW_CHECKF(ids->dtype == OW_I32 && tensor_rows(out) == N && tensor_cols(out) == C, "embedding_forward shapes");
    if (N == 0 || C == 0) return;
    k_embedding_forward<<<cuda_grid_for(N * C, EW_THREADS), EW_THREADS, 0, ci->stream>>>(
        out->data, out->dtype, (const int32_t *)ids->data, table->data, table->dtype, N, C, V);
    CUDA_LAUNCH_CHECK();
}

void cuda_embedding_backward(Backend *be, Tensor *dtable, const Tensor *ids, const Tensor *dout) {
    CudaImpl *ci = cuda_impl(be);
    int64_t N = tensor_numel(ids), C = tensor_cols(dtable), V = tensor_rows(dtable);
    OW_CHECKF(ids->dtype == OW_I32 && dtable->dtype == OW_F32 && tensor_rows(dout) == N && tensor_cols(dout) == C,
              "embedding_backward: dtable must be F32 [V, C], dout [N, C]");
    if (N == 0 || C == 0) return;
    const int threads = 64; /* more blocks for small C */
    unsigned blocks = (unsigned)((C + threads - 1) / threads);
    k_embedding_backward<<<blocks, threads, 0, ci->stream>>>((float *)dtable->data, (const int32_t *)ids->data,
                                                             dout->data, dout->dtype, N, C, V);
    CUDA_LAUNCH_CHECK();
}

/* ---- SwiGLU ---- */

__global__ void k_swiglu_forward(void *out, int odt, const void *gate, int gdt, const void *up, int udt, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float g = ow_load(gate, gdt, i), u = ow_load(up, udt, i);
        float sig = 1.0f / (1.0f + expf(-g));
        ow_store(out, odt, i, g * sig * u);
    }
}

__global__ void k_swiglu_backward(void *dgate, void *dup, int gdt_out, int udt_out, const void *dout, int ddt,
                                  const void *gate, int gdt, const void *up, int udt, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float g = ow_load(gate, gdt, i), u = ow_load(up, udt, i), d = ow_load(dout, ddt, i);
        float sig = 1.0f / (1.0f + expf(-g));
        float silu = g * sig;
        ow_store(dgate, gdt_out, i, d * u * sig * (1.0f + g * (1.0f - sig)));
        ow_store(dup, udt_out, i, d * silu);
    }
}

/* bf16 fast paths: eight elements per thread and 16-byte accesses, the same
 * per-element arithmetic as the kernels above (bit-identical results). */
__global__ void k_swiglu_forward_bf16(void *out, const void *gate, const void *up, int64_t nvec) {
    for (int64_t v = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; v < nvec; v += (int64_t)gridDim.x * blockDim.x) {
        float g[8], u[8], o[8];
        ow_bf16x8_load(gate, v, g);
        ow_bf16x8_load(up, v, u);
#pragma unroll
        for (int k = 0; k < 8; k++) {
            float sig = 1.0f / (1.0f + expf(-g[k]));
            o[k] = g[k] * sig * u[k];
        }
        ow_bf16x8_store(out, v, o);
    }
}

__global__ void k_swiglu_backward_bf16(void *dgate, void *dup, const void *dout, const void *gate, const void *up,
                                       int64_t nvec) {
    for (int64_t v = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; v < nvec; v += (int64_t)gridDim.x * blockDim.x) {
        float g[8], u[8], d[8], dg[8], du[8];
        ow_bf16x8_load(gate, v, g);
        ow_bf16x8_load(up, v, u);
        ow_bf16x8_load(dout, v, d);
#pragma unroll
        for (int k = 0; k < 8; k++) {
            float sig = 1.0f / (1.0f + expf(-g[k]));
            float silu = g[k] * sig;
            dg[k] = d[k] * u[k] * sig * (1.0f + g[k] * (1.0f - sig));
            du[k] = d[k] * silu;
        }
        ow_bf16x8_store(dgate, v, dg);
        ow_bf16x8_store(dup, v, du);
    }
}

static int all_bf16_vec8(int64_t n, const Tensor *const *ts, int count) {
    if (n % 8 != 0) return 0;
    for (int i = 0; i < count; i++)
        if (ts[i]->dtype != OW_BF16 || !ow_vec8_ok(ts[i]->data)) return 0;
    return 1;
}

void cuda_swiglu_forward(Backend *be, Tensor *out, const Tensor *gate, const Tensor *up) {
    CudaImpl *ci = cuda_impl(be);
    int64_t n = tensor_numel(out);
    OW_CHECKF(n == tensor_numel(gate) && n == tensor_numel(up), "swiglu_forward sizes");
    if (n == 0) return;
    const Tensor *ts[3] = {out, gate, up};
    if (all_bf16_vec8(n, ts, 3)) {
        k_swiglu_forward_bf16<<<cuda_grid_for(n / 8, EW_THREADS), EW_THREADS, 0, ci->stream>>>(out->data, gate->data,
                                                                                               up->data, n / 8);
        CUDA_LAUNCH_CHECK();
        return;
    }
    k_swiglu_forward<<<cuda_grid_for(n, EW_THREADS), EW_THREADS, 0, ci->stream>>>(out->data, out->dtype, gate->data,
                                                                                  gate->dtype, up->data, up->dtype, n);
    CUDA_LAUNCH_CHECK();
}

void cuda_swiglu_backward(Backend *be, Tensor *dgate, Tensor *dup, const Tensor *dout, const Tensor *gate,
                          const Tensor *up) {
    CudaImpl *ci = cuda_impl(be);
    int64_t n = tensor_numel(dout);
    OW_CHECKF(n == tensor_numel(gate) && n == tensor_numel(up) && n == tensor_numel(dgate) && n == tensor_numel(dup),
              "swiglu_backward sizes");
    if (n == 0) return;
    const Tensor *ts[5] = {dgate, dup, dout, gate, up};
    if (all_bf16_vec8(n, ts, 5)) {
        k_swiglu_backward_bf16<<<cuda_grid_for(n / 8, EW_THREADS), EW_THREADS, 0, ci->stream>>>(
            dgate->data, dup->data, dout->data, gate->data, up->data, n / 8);
        CUDA_LAUNCH_CHECK();
        return;
    }
    k_swiglu_backward<<<cuda_grid_for(n, EW_THREADS), EW_THREADS, 0, ci->stream>>>(
        dgate->data, dup->data, dgate->dtype, dup->dtype, dout->data, dout->dtype, gate->data, gate->dtype, up->data,
        up->dtype, n);
    CUDA_LAUNCH_CHECK();
}

/* ---- cross-entropy: one block per row ---- */

#define CE_THREADS 512

__global__ void k_cross_entropy(void *logits, int dt, int64_t V, float *losses, const int32_t *targets,
                                float grad_scale, int want_grad) {
    __shared__ float sh[32];
    int64_t row = blockIdx.x;
    int64_t base = row * V;
    int32_t tgt = targets[row];
    if (tgt == -100) { /* the whole block takes this branch */
        if (threadIdx.x == 0) losses[row] = 0.0f;
        if (want_grad)
            for (int64_t j = threadIdx.x; j < V; j += blockDim.x) ow_store(logits, dt, base + j, 0.0f);
        return;
    }
    /* online max and sum of exp over this thread's elements */
    float m = -INFINITY, s = 0.0f;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
        float x = ow_load(logits, dt, base + j);
        if (x > m) {
            s = (m == -INFINITY ? 0.0f : s * expf(m - x)) + 1.0f;
            m = x;
        } else if (x != -INFINITY) {
            s += expf(x - m);
        }
    }
    float M = ow_block_max(m, sh);
    float S = ow_block_sum(m == -INFINITY ? 0.0f : s * expf(m - M), sh);
    float lse = M + logf(S);
    if (threadIdx.x == 0) {
        float xt = (tgt >= 0 && tgt < V) ? ow_load(logits, dt, base + tgt) : NAN;
        losses[row] = lse - xt;
    }
    if (!want_grad) return;
    __syncthreads(); /* thread 0 has read the target logit before it is overwritten */
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
        float x = ow_load(logits, dt, base + j);
        float g = expf(x - lse) - (j == tgt ? 1.0f : 0.0f);
        ow_store(logits, dt, base + j, grad_scale * g);
    }
}

void cuda_cross_entropy(Backend *be, Tensor *logits, Tensor *losses, const Tensor *targets, float grad_scale,
                        int want_grad) {
    CudaImpl *ci = cuda_impl(be);
    int64_t N = tensor_rows(logits), V = tensor_cols(logits);
    OW_CHECKF(losses->dtype == OW_F32 && tensor_numel(losses) == N && targets->dtype == OW_I32 &&
                  tensor_numel(targets) == N,
              "cross_entropy: losses F32 [%lld], targets I32 [%lld]", (long long)N, (long long)N);
    OW_CHECK(dtype_is_float(logits->dtype));
    if (N == 0) return;
    OW_CHECK(N <= 0x7fffffff);
    k_cross_entropy<<<(unsigned)N, CE_THREADS, 0, ci->stream>>>(logits->data, logits->dtype, V, (float *)losses->data,
                                                                (const int32_t *)targets->data, grad_scale, want_grad);
    CUDA_LAUNCH_CHECK();
}
