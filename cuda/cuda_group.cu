/* cuda_group.cu: the group ops (backend.h): data-parallel ranks sum their
 * gradients in device memory with NCCL's all-reduce.
 *
 * NCCL is opened at run time (dlopen), so a build needs no nccl.h and a
 * machine that never runs several ranks needs no libnccl:
 * OWLORE_NCCL_LIBRARY names the library, else the loader looks for
 * libnccl.so.2 (Debian's libnccl2, or pip's nvidia-nccl-cu* wheel on
 * LD_LIBRARY_PATH). The few entry points used are declared below from
 * NCCL's documented C API (their ABI has been stable since NCCL 2.0).
 *
 * The sums run on a stream of their own (group_stream): each waits for the
 * main stream's work queued before it, so the backward of the blocks below
 * goes on beside it; group_wait makes the main stream wait for the last sum
 * started (an event, no host synchronisation). */
#include "cuda/cuda_internal.h"

extern "C" {
#include "core/log.h"
}

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

/* ---- NCCL's C API (nccl.h), as the library exports it ---- */
typedef struct {
    char internal[BACKEND_GROUP_ID_BYTES]; /* ncclUniqueId: NCCL_UNIQUE_ID_BYTES = 128 */
} NcclUniqueId;
typedef void *NcclComm;
enum { NCCL_SUCCESS = 0, NCCL_FLOAT32 = 7, NCCL_SUM = 0 }; /* ncclResult_t, ncclDataType_t, ncclRedOp_t */

typedef struct NcclApi {
    void *lib;
    int (*get_unique_id)(NcclUniqueId *id);
    int (*comm_init_rank)(NcclComm *comm, int nranks, NcclUniqueId id, int rank);
    int (*all_reduce)(const void *send, void *recv, size_t count, int dtype, int op, NcclComm comm,
                      cudaStream_t stream);
    int (*comm_destroy)(NcclComm comm);
    const char *(*error_string)(int result);
    int (*get_version)(int *version);
} NcclApi;

typedef struct CudaGroup {
    NcclApi api;
    NcclComm comm;
    cudaStream_t stream;
    cudaEvent_t ready, done; /* the main stream's work a sum waits for; the last sum started */
    int pending;             /* sums started since the last group_wait */
    int rank, size;
} CudaGroup;

static const char *nccl_error(const CudaGroup *g, int rc) {
    return g->api.error_string ? g->api.error_string(rc) : "unknown NCCL error";
}

/* NCCL's entry points, once per backend. */
static int nccl_load(CudaGroup *g, OwError *err) {
    if (g->api.lib) return 0;
    const char *name = getenv("OWLORE_NCCL_LIBRARY");
    if (!name || !*name) name = "libnccl.so.2";
    void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        return ow_fail(err,
                       "several ranks on GPUs sum their gradients with NCCL, which cannot be loaded (%s) (hint: "
                       "install NCCL: Debian's libnccl2 or pip's nvidia-nccl-cu12 / -cu13; or name the library "
                       "with OWLORE_NCCL_LIBRARY=/path/to/libnccl.so.2)",
                       dlerror());
    NcclApi a = {};
    a.lib = lib;
    *(void **)&a.get_unique_id = dlsym(lib, "ncclGetUniqueId");
    *(void **)&a.comm_init_rank = dlsym(lib, "ncclCommInitRank");
    *(void **)&a.all_reduce = dlsym(lib, "ncclAllReduce");
    *(void **)&a.comm_destroy = dlsym(lib, "ncclCommDestroy");
    *(void **)&a.error_string = dlsym(lib, "ncclGetErrorString");
    *(void **)&a.get_version = dlsym(lib, "ncclGetVersion");
    if (!a.get_unique_id || !a.comm_init_rank || !a.all_reduce || !a.comm_destroy) {
        dlclose(lib);
        return ow_fail(err, "%s does not export NCCL's API (ncclGetUniqueId, ncclCommInitRank, ncclAllReduce)", name);
    }
    g->api = a;
    int v = 0;
    if (a.get_version && a.get_version(&v) == NCCL_SUCCESS) OW_INFO("NCCL %d from %s", v, name);
    return 0;
}

static CudaGroup *group_of(Backend *be) {
    CudaImpl *ci = cuda_impl(be);
    if (!ci->group) ci->group = (CudaGroup *)ow_xcalloc(1, sizeof(CudaGroup));
    return ci->group;
}

int cuda_group_id(Backend *be, void *id, OwError *err) {
    CudaGroup *g = group_of(be);
    if (nccl_load(g, err) != 0) return -1;
    NcclUniqueId u;
    int rc = g->api.get_unique_id(&u);
    if (rc != NCCL_SUCCESS) return ow_fail(err, "ncclGetUniqueId: %s", nccl_error(g, rc));
    memcpy(id, u.internal, sizeof u.internal);
    return 0;
}

/* NCCL's device memory (its buffers, and what a first sum adds) is outside the arena: it counts against the
 * device's cap (--gpu-mem, or the free memory), so the plan made next leaves room for it. */
static int charge_buffers(Backend *be, CudaGroup *g, size_t before, OwError *err) {
    CudaImpl *ci = cuda_impl(be);
    int rc = g->api.all_reduce(ci->scratch, ci->scratch, 1, NCCL_FLOAT32, NCCL_SUM, g->comm, g->stream);
    cudaError_t e = rc == NCCL_SUCCESS ? cudaStreamSynchronize(g->stream) : cudaSuccess;
    if (rc != NCCL_SUCCESS || e != cudaSuccess)
        return ow_fail(err, "rank %d of %d: the group's first sum: %s", g->rank, g->size,
                       rc != NCCL_SUCCESS ? nccl_error(g, rc) : cudaGetErrorString(e));
    size_t after = cuda_device_used(), took = after > before ? after - before : 0;
    char s1[32], s2[32];
    if (took && be->mem.cap <= took + be->mem.current_total)
        return ow_fail(err,
                       "rank %d of %d: NCCL's buffers take %s of CUDA device %d, which leaves nothing of the cap of "
                       "%s for the run (hint: a larger --gpu-mem, or a smaller NCCL_BUFFSIZE)",
                       g->rank, g->size, format_size(took, s1, sizeof s1), ci->device,
                       format_size(be->mem.cap, s2, sizeof s2));
    ci->arena.cap -= took;
    be->mem.cap -= took;
    OW_INFO("rank %d of %d: NCCL holds %s of CUDA device %d, counted in its cap (%s left for the run)", g->rank,
            g->size, format_size(took, s1, sizeof s1), ci->device, format_size(be->mem.cap, s2, sizeof s2));
    return 0;
}

int cuda_group_join(Backend *be, const void *id, int rank, int size, OwError *err) {
    CudaImpl *ci = cuda_impl(be);
    CudaGroup *g = group_of(be);
    OW_CHECKF(!g->comm, "rank %d joins a second group", rank);
    if (nccl_load(g, err) != 0) return -1;
    cudaError_t e;
    if ((e = cudaSetDevice(ci->device)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking)) != cudaSuccess ||
        (e = cudaEventCreateWithFlags(&g->ready, cudaEventDisableTiming)) != cudaSuccess ||
        (e = cudaEventCreateWithFlags(&g->done, cudaEventDisableTiming)) != cudaSuccess)
        return ow_fail(err, "CUDA device %d: the group's stream and events: %s", ci->device, cudaGetErrorString(e));
    NcclUniqueId u;
    memcpy(u.internal, id, sizeof u.internal);
    /* NCCL connects its peers at init rather than at their first sum, so what its buffers take is known before
     * the run's memory is planned (a setting the user made is kept) */
    setenv("NCCL_RUNTIME_CONNECT", "0", 0);
    size_t before = cuda_device_used();
    int rc = g->api.comm_init_rank(&g->comm, size, u, rank);
    if (rc != NCCL_SUCCESS) {
        g->comm = NULL;
        return ow_fail(err,
                       "rank %d of %d: ncclCommInitRank on CUDA device %d: %s (hint: one GPU per rank on each "
                       "machine; NCCL_DEBUG=INFO says more)",
                       rank, size, ci->device, nccl_error(g, rc));
    }
    g->rank = rank;
    g->size = size;
    return charge_buffers(be, g, before, err);
}

int cuda_group_sum(Backend *be, Tensor *t, int64_t n, OwError *err) {
    CudaImpl *ci = cuda_impl(be);
    CudaGroup *g = ci->group;
    OW_CHECKF(g && g->comm, "a group sum before group_join");
    OW_CHECKF(t->dtype == OW_F32 && n >= 0 && n <= tensor_numel(t), "group sum of %lld elements of a %s tensor",
              (long long)n, dtype_name(t->dtype));
    if (n == 0) return 0;
    CUDA_CHECK(cudaEventRecord(g->ready, ci->stream)); /* the gradient is complete on the main stream */
    CUDA_CHECK(cudaStreamWaitEvent(g->stream, g->ready, 0));
    int rc = g->api.all_reduce(t->data, t->data, (size_t)n, NCCL_FLOAT32, NCCL_SUM, g->comm, g->stream);
    if (rc != NCCL_SUCCESS)
        return ow_fail(err, "rank %d of %d: ncclAllReduce of %lld floats: %s (a rank stopped?)", g->rank, g->size,
                       (long long)n, nccl_error(g, rc));
    g->pending = 1;
    return 0;
}

void cuda_group_wait(Backend *be) {
    CudaImpl *ci = cuda_impl(be);
    CudaGroup *g = ci->group;
    if (!g || !g->pending) return;
    CUDA_CHECK(cudaEventRecord(g->done, g->stream));
    CUDA_CHECK(cudaStreamWaitEvent(ci->stream, g->done, 0));
    g->pending = 0;
}

void cuda_group_free(Backend *be) {
    CudaImpl *ci = cuda_impl(be);
    CudaGroup *g = ci->group;
    if (!g) return;
    if (g->stream) (void)cudaStreamSynchronize(g->stream);
    if (g->comm) (void)g->api.comm_destroy(g->comm);
    if (g->ready) cudaEventDestroy(g->ready);
    if (g->done) cudaEventDestroy(g->done);
    if (g->stream) cudaStreamDestroy(g->stream);
    if (g->api.lib) dlclose(g->api.lib);
    free(g);
    ci->group = NULL;
}
