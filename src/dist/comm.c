/* comm.c: see comm.h. */
#define _GNU_SOURCE /* memfd_create */
#include "dist/comm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifdef OWLORE_HAVE_MPI
#include <mpi.h>
#endif

static Comm world = {.rank = 0, .size = 1, .local_rank = 0, .local_size = 1};

Comm *comm_world(void) { return &world; }

/* An integer environment variable, or -1 when unset or not a number. */
static int env_int(const char *name) {
    const char *s = getenv(name);
    if (!s || !*s) return -1;
    char *end;
    long v = strtol(s, &end, 10);
    return *end || v < 0 || v > 1 << 20 ? -1 : (int)v;
}

static int launched_size(void) {
    int n = env_int("OMPI_COMM_WORLD_SIZE");
    if (n < 0) n = env_int("PMIX_SIZE");
    if (n < 0) n = env_int("PMI_SIZE");
    if (n < 0) n = env_int(COMM_LOCAL_SIZE_ENV);
    return n;
}

/* ---- the local transport: ranks of one machine, through a shared memory segment ---- */

/* The segment: this header, then one slot of slot_bytes per rank at LOCAL_SLOTS_AT. */
typedef struct LocalHeader {
    _Atomic uint32_t arrived;    /* ranks in the barrier */
    _Atomic uint32_t generation; /* barriers passed */
    _Atomic int32_t failed;      /* 1 + the rank that failed, 0: none */
    uint32_t size;
    uint64_t slot_bytes;
} LocalHeader;

#define LOCAL_SLOTS_AT 4096
#define LOCAL_SLOT_BYTES ((uint64_t)4 << 20)

static size_t local_bytes(int size) { return LOCAL_SLOTS_AT + (size_t)size * LOCAL_SLOT_BYTES; }

int comm_local_create(int size, OwError *err) {
    int fd = memfd_create("owlore-ranks", 0); /* no name in /dev/shm: gone with the last process that maps it */
    if (fd < 0) return ow_fail(err, "shared memory for %d ranks: memfd_create: %s", size, strerror(errno));
    size_t bytes = local_bytes(size);
    if (ftruncate(fd, (off_t)bytes) != 0) {
        int e = errno;
        close(fd);
        return ow_fail(err, "shared memory: %zu bytes for %d ranks: %s (hint: too little memory?)", bytes, size,
                       strerror(e));
    }
    LocalHeader *h = mmap(NULL, sizeof *h, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (h == MAP_FAILED) {
        int e = errno;
        close(fd);
        return ow_fail(err, "shared memory for %d ranks: mmap: %s", size, strerror(e));
    }
    h->size = (uint32_t)size;
    h->slot_bytes = LOCAL_SLOT_BYTES;
    munmap(h, sizeof *h);
    return fd;
}

static int local_join(Comm *c, int size, OwError *err) {
    int fd = env_int(COMM_LOCAL_FD_ENV), rank = env_int(COMM_LOCAL_RANK_ENV);
    if (fd < 0 || rank < 0 || rank >= size)
        return ow_fail(err, "%s=%d needs %s (0..%d) and %s, as `owlore train --ranks %d` sets them",
                       COMM_LOCAL_SIZE_ENV, size, COMM_LOCAL_RANK_ENV, size - 1, COMM_LOCAL_FD_ENV, size);
    void *m = mmap(NULL, local_bytes(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the segment */
    unsetenv(COMM_LOCAL_FD_ENV);
    if (m == MAP_FAILED)
        return ow_fail(err, "rank %d: the shared memory of descriptor %d (%s): mmap: %s", rank, fd, COMM_LOCAL_FD_ENV,
                       strerror(e));
    if (((LocalHeader *)m)->size != (uint32_t)size) {
        munmap(m, local_bytes(size));
        return ow_fail(err, "rank %d: the shared memory of descriptor %d is for %u ranks, not %d", rank, fd,
                       ((LocalHeader *)m)->size, size);
    }
    c->shm = m;
    c->rank = c->local_rank = rank;
    c->size = c->local_size = size;
    return 0;
}

static char *local_slot(const Comm *c, int r) {
    return (char *)c->shm + LOCAL_SLOTS_AT + (size_t)r * ((LocalHeader *)c->shm)->slot_bytes;
}

/* Every rank arrives before any leaves; a rank that failed (comm_abort) fails the others' wait. */
static int local_barrier(Comm *c, OwError *err) {
    LocalHeader *h = c->shm;
    uint32_t gen = atomic_load(&h->generation);
    if (atomic_fetch_add(&h->arrived, 1) + 1 == h->size) {
        atomic_store(&h->arrived, 0);
        atomic_fetch_add(&h->generation, 1);
        return 0;
    }
    for (long spin = 0; atomic_load(&h->generation) == gen; spin++) {
        int32_t f = atomic_load(&h->failed);
        if (f) return ow_fail(err, "rank %d of %u stopped (its error is above)", f - 1, h->size);
        if (spin > 2000) nanosleep(&(struct timespec){0, 20000}, NULL);
    }
    return 0;
}

/* out[k] = the sum over the ranks' slots, in rank order (the same on every rank). */
static void local_add_f32(const Comm *c, float *out, int64_t k) {
    for (int64_t j = 0; j < k; j++) {
        float x = ((const float *)local_slot(c, 0))[j];
        for (int r = 1; r < c->size; r++) x += ((const float *)local_slot(c, r))[j];
        out[j] = x;
    }
}

static void local_add_f64(const Comm *c, double *out, int64_t k) {
    for (int64_t j = 0; j < k; j++) {
        double x = ((const double *)local_slot(c, 0))[j];
        for (int r = 1; r < c->size; r++) x += ((const double *)local_slot(c, r))[j];
        out[j] = x;
    }
}

/* In place: every rank's buf[n] (f64 or f32) summed in rank order, slot by slot, the same on every rank. */
static int local_sum(Comm *c, void *buf, int64_t n, int f64, OwError *err) {
    size_t elem = f64 ? sizeof(double) : sizeof(float);
    int64_t per = (int64_t)(((LocalHeader *)c->shm)->slot_bytes / elem);
    for (int64_t i = 0; i < n; i += per) {
        int64_t k = n - i < per ? n - i : per;
        char *mine = (char *)buf + (size_t)i * elem;
        memcpy(local_slot(c, c->rank), mine, (size_t)k * elem);
        if (local_barrier(c, err) != 0) return -1;
        if (f64)
            local_add_f64(c, (double *)mine, k);
        else
            local_add_f32(c, (float *)mine, k);
        if (local_barrier(c, err) != 0) return -1; /* the slots are free again */
    }
    return 0;
}

/* Every rank's `bytes` of v into all (rank order). */
static int local_gather(Comm *c, const void *v, size_t bytes, void *all, OwError *err) {
    memcpy(local_slot(c, c->rank), v, bytes);
    if (local_barrier(c, err) != 0) return -1;
    for (int r = 0; r < c->size; r++) memcpy((char *)all + (size_t)r * bytes, local_slot(c, r), bytes);
    return local_barrier(c, err);
}

int comm_launched(void) { return launched_size() > 1; }

#ifdef OWLORE_HAVE_MPI
/* An MPI call's failure as an OwError (the communicator returns errors instead of aborting). */
static int mpi_check(int rc, const char *what, OwError *err) {
    if (rc == MPI_SUCCESS) return 0;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return ow_fail(err, "%s across the ranks failed: %.*s (a rank stopped?)", what, len, msg);
}
#endif

int comm_init(Comm *c, OwError *err) {
    int n = launched_size();
    if (n <= 1) return 0;
    if (env_int(COMM_LOCAL_SIZE_ENV) > 1) return local_join(c, n, err);
#ifdef OWLORE_HAVE_MPI
    int provided = 0;
    if (mpi_check(MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided), "MPI_Init", err) != 0) return -1;
    c->mpi = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
        MPI_Comm_rank(local, &c->local_rank);
        MPI_Comm_size(local, &c->local_size);
        MPI_Comm_free(&local);
    }
    return 0;
#else
    (void)c;
    return ow_fail(err,
                   "started as one of %d ranks, but this owlore was built without MPI (hint: install libopenmpi-dev "
                   "(scripts/install-deps.sh) and rebuild, or run one process)",
                   n);
#endif
}

void comm_finalize(Comm *c) {
    if (c->shm) {
        OwError e;
        (void)local_barrier(c, &e);
        munmap(c->shm, local_bytes(c->size));
        c->shm = NULL;
        return;
    }
#ifdef OWLORE_HAVE_MPI
    if (!c->mpi) return;
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Finalize();
    c->mpi = 0;
    free(c->pending);
    c->pending = NULL;
#else
    (void)c;
#endif
}

void comm_abort(Comm *c, int code) {
    if (c->shm) { /* the others' waits fail; the launcher ends them */
        int32_t none = 0;
        atomic_compare_exchange_strong(&((LocalHeader *)c->shm)->failed, &none, c->rank + 1);
    }
#ifdef OWLORE_HAVE_MPI
    if (c->mpi && c->size > 1) MPI_Abort(MPI_COMM_WORLD, code);
#else
    (void)c;
#endif
    exit(code);
}

#ifdef OWLORE_HAVE_MPI
/* The slot for one more started sum's request (Comm.pending grows as needed). */
static MPI_Request *next_request(Comm *c) {
    if (c->n_pending == c->cap_pending) {
        c->cap_pending = c->cap_pending ? 2 * c->cap_pending : 64;
        c->pending = ow_xrealloc(c->pending, (size_t)c->cap_pending * sizeof(MPI_Request));
    }
    return (MPI_Request *)c->pending + c->n_pending;
}
#endif

/* In-place sum of n elements (double when f64, else float), in pieces MPI's int count can hold; `start`:
 * started only (MPI_Iallreduce, completed by comm_wait; the local transport sums at once). */
static int sum_in_place(Comm *c, void *buf, int64_t n, int f64, int start, OwError *err) {
    if (c->size <= 1 || n <= 0) return 0;
    if (c->shm) return local_sum(c, buf, n, f64, err);
#ifdef OWLORE_HAVE_MPI
    size_t elem = f64 ? sizeof(double) : sizeof(float);
    MPI_Datatype type = f64 ? MPI_DOUBLE : MPI_FLOAT;
    const int64_t piece = 1 << 28;
    for (int64_t i = 0; i < n; i += piece) {
        int k = (int)(n - i < piece ? n - i : piece);
        void *at = (char *)buf + (size_t)i * elem;
        int rc = start ? MPI_Iallreduce(MPI_IN_PLACE, at, k, type, MPI_SUM, MPI_COMM_WORLD, next_request(c))
                       : MPI_Allreduce(MPI_IN_PLACE, at, k, type, MPI_SUM, MPI_COMM_WORLD);
        if (mpi_check(rc, start ? "starting a gradient sum" : "a gradient sum", err) != 0) return -1;
        c->n_pending += start;
    }
#else
    (void)buf;
    (void)f64;
    (void)start;
    (void)err;
#endif
    return 0;
}

int comm_sum_f32(Comm *c, float *buf, int64_t n, OwError *err) { return sum_in_place(c, buf, n, 0, 0, err); }

int comm_sum_f32_start(Comm *c, float *buf, int64_t n, OwError *err) { return sum_in_place(c, buf, n, 0, 1, err); }

int comm_wait(Comm *c, OwError *err) {
    if (c->n_pending == 0) return 0;
#ifdef OWLORE_HAVE_MPI
    int n = c->n_pending;
    c->n_pending = 0;
    return mpi_check(MPI_Waitall(n, (MPI_Request *)c->pending, MPI_STATUSES_IGNORE), "a gradient sum", err);
#else
    (void)err;
    return 0;
#endif
}

int comm_bcast(Comm *c, void *buf, size_t len, int root, OwError *err) {
    if (c->size <= 1) return 0;
    if (c->shm) {
        OW_CHECK(len <= ((LocalHeader *)c->shm)->slot_bytes);
        if (c->rank == root) memcpy(local_slot(c, root), buf, len);
        if (local_barrier(c, err) != 0) return -1;
        if (c->rank != root) memcpy(buf, local_slot(c, root), len);
        return local_barrier(c, err);
    }
#ifdef OWLORE_HAVE_MPI
    OW_CHECK(len <= (size_t)INT32_MAX);
    return mpi_check(MPI_Bcast(buf, (int)len, MPI_BYTE, root, MPI_COMM_WORLD), "a broadcast", err);
#else
    (void)buf;
    (void)len;
    (void)root;
    (void)err;
    return 0;
#endif
}

int comm_sum_f64(Comm *c, double *buf, int64_t n, OwError *err) { return sum_in_place(c, buf, n, 1, 0, err); }

int comm_max_i64(Comm *c, int64_t *v, OwError *err) {
    if (c->size <= 1) return 0;
    if (c->shm) {
        int64_t *all = ow_xcalloc((size_t)c->size, sizeof *all);
        int rc = local_gather(c, v, sizeof *v, all, err);
        for (int r = 0; rc == 0 && r < c->size; r++)
            if (all[r] > *v) *v = all[r];
        free(all);
        return rc;
    }
#ifdef OWLORE_HAVE_MPI
    long long x = (long long)*v;
    if (mpi_check(MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD), "a flag", err) != 0)
        return -1;
    *v = (int64_t)x;
    return 0;
#else
    (void)err;
    return 0;
#endif
}

int comm_gather_u64(Comm *c, uint64_t v, uint64_t *all, OwError *err) {
    if (c->size <= 1) {
        all[0] = v;
        return 0;
    }
    if (c->shm) return local_gather(c, &v, sizeof v, all, err);
#ifdef OWLORE_HAVE_MPI
    unsigned long long x = v, *got = (unsigned long long *)all;
    _Static_assert(sizeof(unsigned long long) == sizeof(uint64_t), "u64");
    if (mpi_check(MPI_Allgather(&x, 1, MPI_UNSIGNED_LONG_LONG, got, 1, MPI_UNSIGNED_LONG_LONG, MPI_COMM_WORLD),
                  "a hash exchange", err) != 0)
        return -1;
    return 0;
#else
    (void)err;
    all[0] = v;
    return 0;
#endif
}

int comm_barrier(Comm *c, OwError *err) {
    if (c->size <= 1) return 0;
    if (c->shm) return local_barrier(c, err);
#ifdef OWLORE_HAVE_MPI
    return mpi_check(MPI_Barrier(MPI_COMM_WORLD), "a barrier", err);
#else
    (void)err;
    return 0;
#endif
}
