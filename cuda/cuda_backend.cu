/* cuda_backend.cu: the CUDA Backend: device selection, the stream, library
 * handles, memory (alloc/release through the arena, upload/download with
 * dtype conversion), and the op table.
 *
 * Invariants: ops go on the backend's main stream, created non-blocking (never
 * the legacy default stream), so ops are ordered by that stream alone; only
 * the asynchronous host copies (copy_stream) and adam_update_host (opt_stream,
 * with its copies on hs_h2d / hs_d2h) run beside it, each after an event of
 * the main stream, and sync waits for all of them; the memstats of the Backend count exactly the arena
 * blocks handed out (sizes rounded to ARENA_ALIGN), by kind; allocations are
 * zeroed. Downloads and the ops returning host values synchronise the stream. */
#include "cuda/cuda_backend.h"
#include "cuda/cuda_internal.h"

extern "C" {
#include "core/dtype.h"
#include "core/log.h"
}

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CUDA_MIN_SEGMENT ((size_t)256 << 20)
#define CUDA_STACK_BYTES 0 /* per-thread stack reserved with the context (cudaLimitStackSize) */
#define CUDA_AUTO_CAP_MARGIN ((size_t)512 << 20)
#define CUDA_CONVERT_CHUNK ((size_t)1 << 22) /* elements converted on the host at once */

/* ---- memory ---- */

static int alloc_block(Backend *be, size_t bytes, MemKind kind, const char *what, void **out, OwError *err) {
    CudaImpl *ci = cuda_impl(be);
    size_t size = (bytes ? bytes + ARENA_ALIGN - 1 : ARENA_ALIGN) / ARENA_ALIGN * ARENA_ALIGN;
    if (memstats_add(&be->mem, kind, size, what, "GPU", err) != 0) return -1;
    size_t got = 0;
    if (arena_alloc(&ci->arena, size, out, &got, what, err) != 0) {
        memstats_sub(&be->mem, kind, size);
        char msg[OW_ERROR_MSG_MAX], cur[512];
        snprintf(msg, sizeof msg, "%s", err->msg);
        memstats_format(be->mem.current, cur, sizeof cur);
        ow_fail(err, "%s\n  in use now: %s", msg, cur);
        return -1;
    }
    OW_CHECK(got == size);
    CUDA_CHECK(cudaMemsetAsync(*out, 0, size, ci->stream));
    return 0;
}

static void free_block(Backend *be, void *p, MemKind kind) {
    size_t size = arena_free(&cuda_impl(be)->arena, p);
    memstats_sub(&be->mem, kind, size);
}

int cuda_ws_alloc(Backend *be, size_t bytes, void **out, const char *what, OwError *err) {
    return alloc_block(be, bytes, MEM_WORKSPACE, what, out, err);
}

void cuda_ws_free(Backend *be, void *p) {
    if (p) free_block(be, p, MEM_WORKSPACE);
}

static int cuda_reserve(Backend *be, size_t bytes, OwError *err) {
    return arena_reserve(&cuda_impl(be)->arena, bytes, err);
}

static int cuda_alloc(Backend *be, Tensor *t, MemKind kind, const char *what, OwError *err) {
    t->data = NULL;
    void *p = NULL;
    if (alloc_block(be, tensor_nbytes(t), kind, what, &p, err) != 0) return -1;
    t->data = p;
    return 0;
}

static void cuda_release(Backend *be, Tensor *t, MemKind kind) {
    if (!t->data) return;
    free_block(be, t->data, kind);
    t->data = NULL;
}

/* ---- large copies between the device and pageable host memory ----
 * Parked optimizer state (0.1-2 GiB a tensor) moves between the device and
 * malloc'd memory. The driver stages pageable copies with one thread (on the
 * H200 host: 8 GB/s device to host, 6 GB/s back; page-locked: 55 GB/s). Here two
 * page-locked chunks take turns: the copy engine moves one while all cores
 * memcpy the other to or from the pageable buffer. A slot is written by the host
 * only after its last device copy (pin_done) is over. */

static_assert(PIN_SLOTS == 2, "pin_done events are created for two slots");

static int pin_staging(CudaImpl *ci, const void *host, size_t bytes) {
    if (bytes < PIN_MIN_BYTES || ci->pin_failed) return 0;
    cudaPointerAttributes at;
    if (cudaPointerGetAttributes(&at, host) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    if (at.type != cudaMemoryTypeUnregistered) return 0; /* page-locked already: the copy engine reads it */
    if (!ci->pin_stage) {
        void *p = NULL;
        if (cudaHostAlloc(&p, (size_t)PIN_SLOTS * PIN_CHUNK_BYTES, cudaHostAllocDefault) != cudaSuccess) {
            (void)cudaGetLastError();
            ci->pin_failed = 1;
            OW_WARN("no page-locked staging for host copies (%zu MiB): large copies take the driver's slower path",
                    (size_t)PIN_SLOTS * PIN_CHUNK_BYTES >> 20);
            return 0;
        }
        ci->pin_stage = (char *)p;
    }
    return 1;
}

/* Chunk k of a staged copy: its slot and its length. */
static char *pin_slot(CudaImpl *ci, size_t k) { return ci->pin_stage + (k % PIN_SLOTS) * PIN_CHUNK_BYTES; }
static cudaEvent_t pin_event(CudaImpl *ci, size_t k) { return ci->pin_done[k % PIN_SLOTS]; }
static size_t pin_len(size_t bytes, size_t k) {
    size_t off = k * PIN_CHUNK_BYTES;
    return bytes - off < PIN_CHUNK_BYTES ? bytes - off : PIN_CHUNK_BYTES;
}

static void upload_staged(CudaImpl *ci, void *dst, const void *src, size_t bytes) {
    for (size_t k = 0; k * PIN_CHUNK_BYTES < bytes; k++) {
        size_t off = k * PIN_CHUNK_BYTES, len = pin_len(bytes, k);
        CUDA_CHECK(cudaEventSynchronize(pin_event(ci, k)));
        ow_parallel_memcpy(pin_slot(ci, k), (const char *)src + off, len);
        CUDA_CHECK(cudaMemcpyAsync((char *)dst + off, pin_slot(ci, k), len, cudaMemcpyHostToDevice, ci->stream));
        CUDA_CHECK(cudaEventRecord(pin_event(ci, k), ci->stream));
    }
}

static void download_staged(CudaImpl *ci, void *dst, const void *src, size_t bytes) {
    size_t nchunks = (bytes + PIN_CHUNK_BYTES - 1) / PIN_CHUNK_BYTES;
    for (size_t k = 0; k <= nchunks; k++) {
        if (k < nchunks) { /* chunk k to its slot, behind the host's copy of chunk k - PIN_SLOTS out of it */
            CUDA_CHECK(cudaMemcpyAsync(pin_slot(ci, k), (const char *)src + k * PIN_CHUNK_BYTES, pin_len(bytes, k),
                                       cudaMemcpyDeviceToHost, ci->stream));
            CUDA_CHECK(cudaEventRecord(pin_event(ci, k), ci->stream));
        }
        if (k >= 1) { /* chunk k - 1 out of its slot while chunk k is on the bus */
            CUDA_CHECK(cudaEventSynchronize(pin_event(ci, k - 1)));
            ow_parallel_memcpy((char *)dst + (k - 1) * PIN_CHUNK_BYTES, pin_slot(ci, k - 1), pin_len(bytes, k - 1));
        }
    }
}

static void cuda_upload(Backend *be, Tensor *dst, const void *src, DType src_dtype) {
    CudaImpl *ci = cuda_impl(be);
    size_t n = (size_t)tensor_numel(dst);
    if (n == 0) return;
    if (src_dtype == dst->dtype) {
        if (pin_staging(ci, src, tensor_nbytes(dst)))
            upload_staged(ci, dst->data, src, tensor_nbytes(dst));
        else /* from pageable memory this returns once src has been staged */
            CUDA_CHECK(cudaMemcpyAsync(dst->data, src, tensor_nbytes(dst), cudaMemcpyHostToDevice, ci->stream));
        return;
    }
    OW_CHECKF(dtype_is_float(src_dtype) && dtype_is_float(dst->dtype), "upload from %s to %s", dtype_name(src_dtype),
              dtype_name(dst->dtype));
    size_t chunk = n < CUDA_CONVERT_CHUNK ? n : CUDA_CONVERT_CHUNK;
    size_t ssz = dtype_size(src_dtype), dsz = dtype_size(dst->dtype);
    void *tmp = ow_xmalloc(chunk * dsz);
    for (size_t off = 0; off < n; off += chunk) {
        size_t cn = n - off < chunk ? n - off : chunk;
        dtype_convert(tmp, dst->dtype, (const char *)src + off * ssz, src_dtype, cn);
        CUDA_CHECK(cudaMemcpyAsync((char *)dst->data + off * dsz, tmp, cn * dsz, cudaMemcpyHostToDevice, ci->stream));
    }
    /* the copies above have consumed tmp when they return (pageable source), but be explicit */
    CUDA_CHECK(cudaStreamSynchronize(ci->stream));
    free(tmp);
}

static void cuda_download(Backend *be, void *dst, DType dst_dtype, const Tensor *src) {
    CudaImpl *ci = cuda_impl(be);
    size_t n = (size_t)tensor_numel(src);
    if (n == 0) return;
    /* a side-stream update may still be writing src (a parameter): downloads are rare, wait for it */
    CUDA_CHECK(cudaStreamSynchronize(ci->opt_stream));
    if (dst_dtype == src->dtype) {
        if (pin_staging(ci, dst, tensor_nbytes(src))) {
            download_staged(ci, dst, src->data, tensor_nbytes(src));
            return;
        }
        CUDA_CHECK(cudaMemcpyAsync(dst, src->data, tensor_nbytes(src), cudaMemcpyDeviceToHost, ci->stream));
        CUDA_CHECK(cudaStreamSynchronize(ci->stream));
        return;
    }
    OW_CHECKF(dtype_is_float(src->dtype) && dtype_is_float(dst_dtype), "download from %s to %s", dtype_name(src->dtype),
              dtype_name(dst_dtype));
    size_t chunk = n < CUDA_CONVERT_CHUNK ? n : CUDA_CONVERT_CHUNK;
    size_t ssz = dtype_size(src->dtype), dsz = dtype_size(dst_dtype);
    void *tmp = ow_xmalloc(chunk * ssz);
    for (size_t off = 0; off < n; off += chunk) {
        size_t cn = n - off < chunk ? n - off : chunk;
        CUDA_CHECK(
            cudaMemcpyAsync(tmp, (const char *)src->data + off * ssz, cn * ssz, cudaMemcpyDeviceToHost, ci->stream));
        CUDA_CHECK(cudaStreamSynchronize(ci->stream));
        dtype_convert((char *)dst + off * dsz, dst_dtype, tmp, src->dtype, cn);
    }
    free(tmp);
}

void cuda_sync(Backend *be) {
    CudaImpl *ci = cuda_impl(be);
    CUDA_CHECK(cudaStreamSynchronize(ci->stream));
    CUDA_CHECK(cudaStreamSynchronize(ci->copy_stream));
    CUDA_CHECK(cudaStreamSynchronize(ci->opt_stream));
    CUDA_CHECK(cudaStreamSynchronize(ci->hs_h2d));
    CUDA_CHECK(cudaStreamSynchronize(ci->hs_d2h));
}

static void cuda_wait_compute(Backend *be) { CUDA_CHECK(cudaStreamSynchronize(cuda_impl(be)->stream)); }

int cuda_side_begin(CudaImpl *ci) {
    int n = ci->side_next;
    ci->side_next = (ci->side_next + 1) & (CUDA_SIDE_TICKET - 1);
    int slot = n % CUDA_SIDE_EVENTS;
    CUDA_CHECK(cudaEventRecord(ci->side_ready[slot], ci->stream));
    CUDA_CHECK(cudaStreamWaitEvent(ci->opt_stream, ci->side_ready[slot], 0));
    return CUDA_SIDE_TICKET | n;
}

void cuda_side_end(CudaImpl *ci, int ticket) {
    CUDA_CHECK(cudaEventRecord(ci->side_done[(ticket & (CUDA_SIDE_TICKET - 1)) % CUDA_SIDE_EVENTS], ci->opt_stream));
}

/* ---- asynchronous host copies ---- */

static void *cuda_host_alloc(Backend *be, size_t bytes, OwError *err) {
    (void)be;
    void *p = NULL;
    /* mapped: kernels read and write it directly (adam_update_host), DMA copies use it too */
    cudaError_t e = cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocMapped | cudaHostAllocPortable);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        char s1[32];
        ow_fail(err,
                "cannot allocate %s of page-locked host memory: %s (hint: --offload-activations off and "
                "--offload-optimizer off keep activations and optimizer state on the GPU)",
                format_size(bytes, s1, sizeof s1), cudaGetErrorString(e));
        return NULL;
    }
    memset(p, 0, bytes);
    return p;
}

static void cuda_host_free(Backend *be, void *p) {
    if (!p) return;
    cuda_sync(be);
    CUDA_CHECK(cudaFreeHost(p));
}

/* A copy on the copy stream after the compute work queued so far. */
static int copy_async(Backend *be, void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    CudaImpl *ci = cuda_impl(be);
    int t = ci->copy_next;
    ci->copy_next = (ci->copy_next + 1) & 0x3fffffff;
    int slot = t % CUDA_COPY_EVENTS;
    CUDA_CHECK(cudaEventRecord(ci->copy_ready[slot], ci->stream));
    CUDA_CHECK(cudaStreamWaitEvent(ci->copy_stream, ci->copy_ready[slot], 0));
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, ci->copy_stream));
    CUDA_CHECK(cudaEventRecord(ci->copy_done[slot], ci->copy_stream));
    return t;
}

static int cuda_copy_to_host(Backend *be, void *host, const Tensor *src) {
    return copy_async(be, host, src->data, tensor_nbytes(src), cudaMemcpyDeviceToHost);
}

static int cuda_copy_from_host(Backend *be, Tensor *dst, const void *host) {
    return copy_async(be, dst->data, host, tensor_nbytes(dst), cudaMemcpyHostToDevice);
}

/* A ticket older than its ring waits for a later op of the same stream, which
 * finishes after it: still correct, only stricter. */
static void cuda_copy_wait(Backend *be, int ticket) {
    if (ticket < 0) return;
    CudaImpl *ci = cuda_impl(be);
    if (ticket & CUDA_SIDE_TICKET)
        CUDA_CHECK(
            cudaStreamWaitEvent(ci->stream, ci->side_done[(ticket & (CUDA_SIDE_TICKET - 1)) % CUDA_SIDE_EVENTS], 0));
    else
        CUDA_CHECK(cudaStreamWaitEvent(ci->stream, ci->copy_done[ticket % CUDA_COPY_EVENTS], 0));
}

static void cuda_copy_sync(Backend *be, int ticket) {
    if (ticket < 0) return;
    CUDA_CHECK(cudaEventSynchronize(cuda_impl(be)->copy_done[ticket % CUDA_COPY_EVENTS]));
}

/* ---- lifetime ---- */

static Backend *create_cuda(int device, size_t mem_cap, int card, OwError *err);
extern "C" Backend *backend_create_cuda(int device, size_t mem_cap, OwError *err) {
    return create_cuda(device, mem_cap, 0, err);
}
extern "C" Backend *backend_create_cuda_card(int device, size_t card_bytes, OwError *err) {
    return create_cuda(device, card_bytes, 1, err);
}

static void impl_free(Backend *be) {
    CudaImpl *ci = cuda_impl(be);
    if (!ci) return;
    if (ci->stream) (void)cudaStreamSynchronize(ci->stream);
    cuda_group_free(be);
    if (ci->copy_stream) (void)cudaStreamSynchronize(ci->copy_stream);
    if (ci->opt_stream) (void)cudaStreamSynchronize(ci->opt_stream);
    if (ci->hs_h2d) (void)cudaStreamSynchronize(ci->hs_h2d);
    if (ci->hs_d2h) (void)cudaStreamSynchronize(ci->hs_d2h);
    if (ci->hs_stage) cuda_ws_free(be, ci->hs_stage);
    if (ci->lt_ws) cuda_ws_free(be, ci->lt_ws);
    if (ci->scratch) cuda_ws_free(be, ci->scratch);
    if (ci->norm_acc) cuda_ws_free(be, ci->norm_acc);
    arena_destroy(&ci->arena);
    if (ci->solver) cusolverDnDestroy(ci->solver);
    if (ci->blas) cublasDestroy(ci->blas);
    if (ci->lt) cublasLtDestroy(ci->lt);
    for (int i = 0; i < CUDA_COPY_EVENTS; i++) {
        if (ci->copy_ready[i]) cudaEventDestroy(ci->copy_ready[i]);
        if (ci->copy_done[i]) cudaEventDestroy(ci->copy_done[i]);
    }
    for (int i = 0; i < CUDA_SIDE_EVENTS; i++) {
        if (ci->side_ready[i]) cudaEventDestroy(ci->side_ready[i]);
        if (ci->side_done[i]) cudaEventDestroy(ci->side_done[i]);
    }
    for (int i = 0; i < HS_SLOTS; i++) {
        if (ci->hs_loaded[i]) cudaEventDestroy(ci->hs_loaded[i]);
        if (ci->hs_computed[i]) cudaEventDestroy(ci->hs_computed[i]);
        if (ci->hs_free[i]) cudaEventDestroy(ci->hs_free[i]);
    }
    for (int i = 0; i < PIN_SLOTS; i++)
        if (ci->pin_done[i]) cudaEventDestroy(ci->pin_done[i]);
    if (ci->pin_stage) cudaFreeHost(ci->pin_stage);
    if (ci->hs_start) cudaEventDestroy(ci->hs_start);
    if (ci->hs_done) cudaEventDestroy(ci->hs_done);
    if (ci->copy_stream) cudaStreamDestroy(ci->copy_stream);
    if (ci->opt_stream) cudaStreamDestroy(ci->opt_stream);
    if (ci->hs_h2d) cudaStreamDestroy(ci->hs_h2d);
    if (ci->hs_d2h) cudaStreamDestroy(ci->hs_d2h);
    if (ci->stream) cudaStreamDestroy(ci->stream);
    free(ci);
    be->impl = NULL;
}

static void cuda_destroy(Backend *be) {
    if (!be) return;
    impl_free(be);
    free(be);
}

static Backend *create_fail(Backend *be) {
    impl_free(be);
    free(be);
    return NULL;
}

extern "C" int backend_cuda_available(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n > 0;
}

static int cuda_set_dtypes(Backend *be, DType act, DType param, OwError *err) {
    if ((act != OW_BF16 && act != OW_F32) || (param != OW_BF16 && param != OW_F32))
        return ow_fail(err, "the CUDA backend stores activations and weights in bf16 or f32 (asked for %s and %s)",
                       dtype_name(act), dtype_name(param));
    be->act_dtype = act;
    be->param_dtype = param;
    return 0;
}

static void cuda_mem_report(Backend *be, BackendMemReport *out) {
    CudaImpl *ci = cuda_impl(be);
    out->reserved = ci->arena.reserved;
    out->peak_reserved = ci->arena.peak_reserved;
    out->cap = ci->arena.cap;
    out->context = ci->context_bytes;
    out->used_peak = ci->peak_used;
}

size_t cuda_device_used(void) {
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    return total_b - free_b;
}

static void cuda_sample_used(Backend *be) {
    CudaImpl *ci = cuda_impl(be);
    size_t used = cuda_device_used();
    if (used > ci->peak_used) ci->peak_used = used;
}

/* the planner (train/memplan.c) counts these fixed workspaces as BACKEND_CUDA_FIXED_WORKSPACE */
static_assert(BACKEND_CUDA_FIXED_WORKSPACE ==
                      BACKEND_CUDA_LT_WORKSPACE_BYTES + BACKEND_CUDA_SCRATCH_BYTES + ARENA_ALIGN &&
                  sizeof(double) <= ARENA_ALIGN,
              "cuBLAS workspace, scratch and the norm accumulator's aligned block");

static const BackendOps cuda_ops = {
    .destroy = cuda_destroy,
    .set_dtypes = cuda_set_dtypes,
    .mem_report = cuda_mem_report,
    .sample_used = cuda_sample_used,
    .alloc = cuda_alloc,
    .reserve = cuda_reserve,
    .release = cuda_release,
    .upload = cuda_upload,
    .download = cuda_download,
    .copy = cuda_copy,
    .fill = cuda_fill,
    .sync = cuda_sync,
    .wait_compute = cuda_wait_compute,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .copy_to_host = cuda_copy_to_host,
    .copy_from_host = cuda_copy_from_host,
    .copy_wait = cuda_copy_wait,
    .copy_sync = cuda_copy_sync,
    .matmul = cuda_matmul,
    .matmul_prec = cuda_matmul_prec,
    .matmul_add = cuda_matmul_add,
    .axpy = cuda_axpy,
    .scale = cuda_scale,
    .sum = cuda_sum,
    .sum_squares = cuda_sum_squares,
    .norm_add = cuda_norm_add,
    .norm_take = cuda_norm_take,
    .embedding_forward = cuda_embedding_forward,
    .embedding_backward = cuda_embedding_backward,
    .rmsnorm_forward = cuda_rmsnorm_forward,
    .rmsnorm_backward = cuda_rmsnorm_backward,
    .rope = cuda_rope,
    .attention_forward = cuda_attention_forward,
    .attention_decode = cuda_attention_decode,
    .attention_backward = cuda_attention_backward,
    .swiglu_forward = cuda_swiglu_forward,
    .swiglu_backward = cuda_swiglu_backward,
    .cross_entropy = cuda_cross_entropy,
    .col_sumsq = cuda_col_sumsq,
    .score_sum = cuda_score_sum,
    .score_count = cuda_score_count,
    .adam_update = cuda_adam_update,
    .adam_moments = cuda_adam_moments,
    .apply_update = cuda_apply_update,
    .adam_update_host = cuda_adam_update_host,
    .host_state_reserve = cuda_host_state_reserve,
    .svd_top = cuda_svd_top,
    .orthonormalize = cuda_orthonormalize,
    .canonicalize_signs = cuda_canonicalize_signs,
    .fill_normal = cuda_fill_normal,
    .group_id = cuda_group_id,
    .group_join = cuda_group_join,
    .group_sum = cuda_group_sum,
    .group_wait = cuda_group_wait,
};

/* card: mem_cap is the card's size, the context in use counted against it (backend_create_cuda_card). */
static Backend *create_cuda(int device, size_t mem_cap, int card, OwError *err) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        (void)cudaGetLastError();
        ow_fail(err, "no CUDA device found: %s (hint: check the NVIDIA driver with nvidia-smi, or use --device cpu)",
                e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports 0 devices");
        return NULL;
    }
    if (device < 0 || device >= n) {
        ow_fail(err, "CUDA device %d does not exist: this machine has %d (devices 0..%d)", device, n, n - 1);
        return NULL;
    }
    e = cudaSetDevice(device);
    if (e != cudaSuccess) {
        ow_fail(err, "cannot use CUDA device %d: %s", device, cudaGetErrorString(e));
        return NULL;
    }
    /* The context reserves every thread's stack the device can hold at once (1 KiB each by
     * default: ~260 MiB on an H100 / H200) outside any allocation of ours. No kernel here uses a
     * stack; the driver grows the reservation at launch for one that does. */
    if (cudaDeviceSetLimit(cudaLimitStackSize, CUDA_STACK_BYTES) != cudaSuccess) (void)cudaGetLastError();
    cudaDeviceProp prop;
    e = cudaGetDeviceProperties(&prop, device);
    if (e != cudaSuccess) {
        ow_fail(err, "cannot query CUDA device %d: %s", device, cudaGetErrorString(e));
        return NULL;
    }
    if (prop.major < 8) {
        ow_fail(err, "CUDA device %d (%s) has compute capability %d.%d; owlore needs 8.0 or newer (bf16 tensor cores)",
                device, prop.name, prop.major, prop.minor);
        return NULL;
    }

    Backend *be = (Backend *)ow_xcalloc(1, sizeof *be);
    CudaImpl *ci = (CudaImpl *)ow_xcalloc(1, sizeof *ci);
    be->impl = ci;
    be->name = "cuda";
    be->caps.device_memory = 1;
    be->caps.bf16 = 1;
    be->act_dtype = OW_BF16;
    be->param_dtype = OW_BF16;
    ci->device = device;
    ci->attn_tc = 1;
    ci->smem_optin = (int)prop.sharedMemPerBlockOptin;
    ci->num_sms = prop.multiProcessorCount;
    snprintf(be->device_name, sizeof be->device_name, "%.95s", prop.name); /* names are a few words */
    /* the first segment holds just the fixed workspaces below; later ones are larger */
    arena_init(&ci->arena, 0, CUDA_LT_WORKSPACE_BYTES + CUDA_SCRATCH_BYTES + ARENA_ALIGN);

    if ((e = cudaStreamCreateWithFlags(&ci->stream, cudaStreamNonBlocking)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&ci->copy_stream, cudaStreamNonBlocking)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&ci->opt_stream, cudaStreamNonBlocking)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&ci->hs_h2d, cudaStreamNonBlocking)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&ci->hs_d2h, cudaStreamNonBlocking)) != cudaSuccess) {
        ow_fail(err, "CUDA device %d: cannot create a stream: %s", device, cudaGetErrorString(e));
        return create_fail(be);
    }
    for (int i = 0; i < CUDA_COPY_EVENTS; i++)
        if ((e = cudaEventCreateWithFlags(&ci->copy_ready[i], cudaEventDisableTiming)) != cudaSuccess ||
            (e = cudaEventCreateWithFlags(&ci->copy_done[i], cudaEventDisableTiming)) != cudaSuccess) {
            ow_fail(err, "CUDA device %d: cannot create an event: %s", device, cudaGetErrorString(e));
            return create_fail(be);
        }
    for (int i = 0; i < CUDA_SIDE_EVENTS; i++)
        if ((e = cudaEventCreateWithFlags(&ci->side_ready[i], cudaEventDisableTiming)) != cudaSuccess ||
            (e = cudaEventCreateWithFlags(&ci->side_done[i], cudaEventDisableTiming)) != cudaSuccess) {
            ow_fail(err, "CUDA device %d: cannot create an event: %s", device, cudaGetErrorString(e));
            return create_fail(be);
        }
    for (int i = 0; i < HS_SLOTS; i++)
        if ((e = cudaEventCreateWithFlags(&ci->hs_loaded[i], cudaEventDisableTiming)) != cudaSuccess ||
            (e = cudaEventCreateWithFlags(&ci->hs_computed[i], cudaEventDisableTiming)) != cudaSuccess ||
            (e = cudaEventCreateWithFlags(&ci->hs_free[i], cudaEventDisableTiming)) != cudaSuccess) {
            ow_fail(err, "CUDA device %d: cannot create an event: %s", device, cudaGetErrorString(e));
            return create_fail(be);
        }
    if ((e = cudaEventCreateWithFlags(&ci->hs_start, cudaEventDisableTiming)) != cudaSuccess ||
        (e = cudaEventCreateWithFlags(&ci->hs_done, cudaEventDisableTiming)) != cudaSuccess ||
        (e = cudaEventCreateWithFlags(&ci->pin_done[0], cudaEventDisableTiming)) != cudaSuccess ||
        (e = cudaEventCreateWithFlags(&ci->pin_done[1], cudaEventDisableTiming)) != cudaSuccess) {
        ow_fail(err, "CUDA device %d: cannot create an event: %s", device, cudaGetErrorString(e));
        return create_fail(be);
    }
    /* cuBLAS would give our handle and cuSOLVER's own one a default workspace each (64 MiB on
     * Hopper) outside the arena; ours comes from the arena (cublasSetWorkspace below). A
     * setting the user made is kept. */
    setenv("CUBLAS_WORKSPACE_CONFIG", ":0:0", 0);
    if (cublasLtCreate(&ci->lt) != CUBLAS_STATUS_SUCCESS || cublasCreate(&ci->blas) != CUBLAS_STATUS_SUCCESS) {
        ow_fail(err, "CUDA device %d: cannot initialise cuBLAS (hint: check that libcublas matches the driver)",
                device);
        return create_fail(be);
    }
    if (cusolverDnCreate(&ci->solver) != CUSOLVER_STATUS_SUCCESS) {
        ow_fail(err, "CUDA device %d: cannot initialise cuSOLVER", device);
        return create_fail(be);
    }
    CUBLAS_CHECK(cublasSetStream(ci->blas, ci->stream));
    CUSOLVER_CHECK(cusolverDnSetStream(ci->solver, ci->stream));

    size_t cap = mem_cap;
    ci->context_bytes = ci->peak_used = cuda_device_used();
    if (cap && card) { /* --gpu-mem is the card: the context already in use counts against it */
        if (cap <= ci->context_bytes + CUDA_LT_WORKSPACE_BYTES + CUDA_SCRATCH_BYTES) {
            char s1[32], s2[32];
            ow_fail(err, "a cap of %s leaves nothing beside the %s the CUDA context takes (hint: a larger --gpu-mem)",
                    format_size(cap, s1, sizeof s1), format_size(ci->context_bytes, s2, sizeof s2));
            return create_fail(be);
        }
        cap -= ci->context_bytes;
    }
    if (cap == 0) {
        size_t free_b = 0, total_b = 0;
        CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
        if (free_b <= CUDA_AUTO_CAP_MARGIN + CUDA_LT_WORKSPACE_BYTES + CUDA_SCRATCH_BYTES) {
            char s1[32];
            ow_fail(err, "CUDA device %d (%s) has only %s free (hint: another process may be using it)", device,
                    prop.name, format_size(free_b, s1, sizeof s1));
            return create_fail(be);
        }
        cap = free_b - CUDA_AUTO_CAP_MARGIN;
    }
    ci->arena.cap = cap;
    be->mem.cap = cap;

    ci->lt_ws_size = CUDA_LT_WORKSPACE_BYTES;
    ci->scratch_size = CUDA_SCRATCH_BYTES;
    if (cuda_ws_alloc(be, ci->lt_ws_size, &ci->lt_ws, "cuBLAS workspace", err) != 0 ||
        cuda_ws_alloc(be, ci->scratch_size, &ci->scratch, "reduction scratch", err) != 0 ||
        cuda_ws_alloc(be, sizeof(double), (void **)&ci->norm_acc, "norm accumulator", err) != 0) {
        ow_fail_prefix(err, "CUDA device %d", device);
        return create_fail(be);
    }
    CUBLAS_CHECK(cublasSetWorkspace(ci->blas, ci->lt_ws, ci->lt_ws_size));
    CUDA_CHECK(cudaStreamSynchronize(ci->stream));
    ci->arena.min_segment = CUDA_MIN_SEGMENT;

    be->ops = &cuda_ops;
    return be;
}

/* ---- cuda_backend.h ---- */

static CudaImpl *checked_impl(Backend *be) {
    OW_CHECKF(be && be->name && strcmp(be->name, "cuda") == 0, "not a CUDA backend");
    return cuda_impl(be);
}

extern "C" size_t backend_cuda_reserved_bytes(Backend *be) { return checked_impl(be)->arena.reserved; }

extern "C" size_t backend_cuda_peak_reserved_bytes(Backend *be) { return checked_impl(be)->arena.peak_reserved; }

extern "C" size_t backend_cuda_arena_cap(Backend *be) { return checked_impl(be)->arena.cap; }

extern "C" int backend_cuda_set_attention_tensor_cores(Backend *be, int enable) {
    CudaImpl *ci = checked_impl(be);
    int prev = ci->attn_tc;
    ci->attn_tc = enable != 0;
    return prev;
}

extern "C" int backend_cuda_attention_uses_tensor_cores(Backend *be, int64_t head_dim) {
    return cuda_attention_tc_applies(checked_impl(be), head_dim);
}

extern "C" void *backend_cuda_stream(Backend *be) { return (void *)checked_impl(be)->stream; }
