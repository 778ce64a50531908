/* cpu_backend.c: the CPU reference backend's creation and its memory ops
 * (alloc, release, upload, download, copy, fill, sync).
 *
 * Memory is host memory, 64-byte aligned and zeroed; every alloc and release
 * is counted in be->mem (tensor_nbytes bytes, device name "cpu"), so the cap
 * and the breakdown behave as on the GPU. upload/download/copy convert
 * between float dtypes (F32, BF16, F16); other dtypes are copied as they are
 * and must match. */
#include "backend/cpu/cpu_internal.h"

#include "core/dtype.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CPU_ALIGN 64
#define CPU_CONVERT_CHUNK ((int64_t)1 << 16)

int cpu_alloc(Backend *be, Tensor *t, MemKind kind, const char *what, OwError *err) {
    OW_CHECK(kind >= 0 && kind < MEM_KIND_COUNT);
    size_t bytes = tensor_nbytes(t);
    if (memstats_add(&be->mem, kind, bytes, what, "cpu", err) != 0) return -1;
    size_t rounded = (bytes + CPU_ALIGN - 1) / CPU_ALIGN * CPU_ALIGN;
    if (rounded == 0) rounded = CPU_ALIGN;
    void *p = aligned_alloc(CPU_ALIGN, rounded);
    if (!p) {
        memstats_sub(&be->mem, kind, bytes);
        char sz[32];
        return ow_fail(err,
                       "out of host memory: cannot allocate %s for %s (hint: lower --batch-size or the model size)",
                       format_size(bytes, sz, sizeof sz), what);
    }
    memset(p, 0, rounded);
    t->data = p;
    return 0;
}

void cpu_release(Backend *be, Tensor *t, MemKind kind) {
    if (!t->data) return;
    OW_CHECK(kind >= 0 && kind < MEM_KIND_COUNT);
    memstats_sub(&be->mem, kind, tensor_nbytes(t));
    free(t->data);
    t->data = NULL;
}

/* Converts n elements in parallel chunks; same-dtype non-float data is copied. */
static void convert_elems(const Backend *be, void *dst, DType dst_t, const void *src, DType src_t, int64_t n) {
    if (n <= 0) return;
    if (dst_t == src_t) {
        if (dst != src) memmove(dst, src, (size_t)n * dtype_size(dst_t));
        return;
    }
    OW_CHECKF(dtype_is_float(dst_t) && dtype_is_float(src_t), "cannot convert %s to %s", dtype_name(src_t),
              dtype_name(dst_t));
    OW_CHECK(dst != src);
    size_t ds = dtype_size(dst_t), ss = dtype_size(src_t);
    int64_t nchunks = (n + CPU_CONVERT_CHUNK - 1) / CPU_CONVERT_CHUNK;
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t i0 = c * CPU_CONVERT_CHUNK;
        int64_t cnt = n - i0 < CPU_CONVERT_CHUNK ? n - i0 : CPU_CONVERT_CHUNK;
        dtype_convert((char *)dst + (size_t)i0 * ds, dst_t, (const char *)src + (size_t)i0 * ss, src_t, (size_t)cnt);
    }
}

void cpu_upload(Backend *be, Tensor *dst, const void *src, DType src_dtype) {
    convert_elems(be, dst->data, dst->dtype, src, src_dtype, tensor_numel(dst));
}

void cpu_download(Backend *be, void *dst, DType dst_dtype, const Tensor *src) {
    convert_elems(be, dst, dst_dtype, src->data, src->dtype, tensor_numel(src));
}

void cpu_copy(Backend *be, Tensor *dst, const Tensor *src) {
    OW_CHECKF(tensor_numel(dst) == tensor_numel(src), "copy of %lld elements into %lld", (long long)tensor_numel(src),
              (long long)tensor_numel(dst));
    convert_elems(be, dst->data, dst->dtype, src->data, src->dtype, tensor_numel(src));
}

void cpu_fill(Backend *be, Tensor *t, float value) {
    int64_t n = tensor_numel(t);
    switch (t->dtype) {
    case OW_F32: {
        float *x = t->data;
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
        for (int64_t i = 0; i < n; i++) x[i] = value;
        break;
    }
    case OW_BF16:
    case OW_F16: {
        uint16_t h = t->dtype == OW_BF16 ? f32_to_bf16(value) : f32_to_f16(value);
        uint16_t *x = t->data;
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
        for (int64_t i = 0; i < n; i++) x[i] = h;
        break;
    }
    case OW_I32: {
        int32_t iv = (int32_t)value;
        int32_t *x = t->data;
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
        for (int64_t i = 0; i < n; i++) x[i] = iv;
        break;
    }
    default: OW_CHECKF(0, "fill of a %s tensor", dtype_name(t->dtype));
    }
}

void cpu_sync(Backend *be) { (void)be; }

static void *cpu_host_alloc(Backend *be, size_t bytes, OwError *err) {
    (void)be;
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) ow_fail(err, "cannot allocate %zu bytes of host memory for offloaded activations", bytes);
    return p;
}

static void cpu_host_free(Backend *be, void *p) {
    (void)be;
    free(p);
}

static int cpu_copy_to_host(Backend *be, void *host, const Tensor *src) {
    (void)be;
    memcpy(host, src->data, tensor_nbytes(src));
    return 0;
}

static int cpu_copy_from_host(Backend *be, Tensor *dst, const void *host) {
    (void)be;
    memcpy(dst->data, host, tensor_nbytes(dst));
    return 0;
}

static void cpu_norm_add(Backend *be, const Tensor *x) { ((CpuImpl *)be->impl)->norm_acc += cpu_sum_squares(be, x); }

static double cpu_norm_take(Backend *be) {
    CpuImpl *ci = be->impl;
    double v = ci->norm_acc;
    ci->norm_acc = 0.0;
    return v;
}

static int cpu_host_state_reserve(Backend *be, OwError *err) {
    (void)be;
    (void)err;
    return 0;
}

static void cpu_copy_wait(Backend *be, int ticket) {
    (void)be;
    (void)ticket;
}

static void cpu_copy_sync(Backend *be, int ticket) {
    (void)be;
    (void)ticket;
}

static int cpu_set_dtypes(Backend *be, DType act, DType param, OwError *err) {
    if (act != OW_F32 || param != OW_F32)
        return ow_fail(err,
                       "the CPU backend computes in fp32 (asked for %s activations and %s weights; hint: "
                       "--precision auto or fp32)",
                       dtype_name(act), dtype_name(param));
    (void)be;
    return 0;
}

static void cpu_mem_report(Backend *be, BackendMemReport *out) {
    (void)be;
    memset(out, 0, sizeof *out); /* host memory only: MemStats says it all */
}

static void cpu_sample_used(Backend *be) { (void)be; }

static int cpu_reserve(Backend *be, size_t bytes, OwError *err) {
    (void)be;
    (void)bytes;
    (void)err;
    return 0; /* host memory is taken per allocation */
}

static void cpu_destroy(Backend *be) {
    if (!be) return;
    free(be->impl);
    free(be);
}

static const BackendOps cpu_ops = {
    .destroy = cpu_destroy,
    .set_dtypes = cpu_set_dtypes,
    .mem_report = cpu_mem_report,
    .sample_used = cpu_sample_used,
    .alloc = cpu_alloc,
    .reserve = cpu_reserve,
    .release = cpu_release,
    .upload = cpu_upload,
    .download = cpu_download,
    .copy = cpu_copy,
    .fill = cpu_fill,
    .sync = cpu_sync,
    .wait_compute = cpu_sync,
    .host_alloc = cpu_host_alloc,
    .host_free = cpu_host_free,
    .copy_to_host = cpu_copy_to_host,
    .copy_from_host = cpu_copy_from_host,
    .copy_wait = cpu_copy_wait,
    .copy_sync = cpu_copy_sync,
    .matmul = cpu_matmul,
    .matmul_prec = cpu_matmul_prec,
    .matmul_add = cpu_matmul_add,
    .axpy = cpu_axpy,
    .scale = cpu_scale,
    .sum = cpu_sum,
    .sum_squares = cpu_sum_squares,
    .norm_add = cpu_norm_add,
    .norm_take = cpu_norm_take,
    .embedding_forward = cpu_embedding_forward,
    .embedding_backward = cpu_embedding_backward,
    .rmsnorm_forward = cpu_rmsnorm_forward,
    .rmsnorm_backward = cpu_rmsnorm_backward,
    .rope = cpu_rope,
    .attention_forward = cpu_attention_forward,
    .attention_decode = cpu_attention_decode,
    .attention_backward = cpu_attention_backward,
    .swiglu_forward = cpu_swiglu_forward,
    .swiglu_backward = cpu_swiglu_backward,
    .cross_entropy = cpu_cross_entropy,
    .col_sumsq = cpu_col_sumsq,
    .score_sum = cpu_score_sum,
    .score_count = cpu_score_count,
    .adam_update = cpu_adam_update,
    .adam_moments = cpu_adam_moments,
    .apply_update = cpu_apply_update,
    .adam_update_host = cpu_adam_update_host,
    .host_state_reserve = cpu_host_state_reserve,
    .svd_top = cpu_svd_top,
    .orthonormalize = cpu_orthonormalize,
    .canonicalize_signs = cpu_canonicalize_signs,
    .fill_normal = cpu_fill_normal,
};

Backend *backend_create_cpu(int threads, size_t mem_cap, OwError *err) {
    if (threads <= 0) threads = omp_get_max_threads();
    if (threads < 1) threads = 1;
    Backend *be = ow_xcalloc(1, sizeof *be);
    CpuImpl *impl = ow_xcalloc(1, sizeof *impl);
    impl->threads = threads;
    be->name = "cpu";
    snprintf(be->device_name, sizeof be->device_name, "cpu");
    be->caps = (BackendCaps){.device_memory = 0, .bf16 = 0};
    be->act_dtype = OW_F32;
    be->param_dtype = OW_F32;
    be->mem.cap = mem_cap;
    be->impl = impl;
    /* OpenBLAS keeps one process-wide thread count; the backend owns it while it lives. */
    openblas_set_num_threads(threads);

    be->ops = &cpu_ops;
    (void)err;
    return be;
}
